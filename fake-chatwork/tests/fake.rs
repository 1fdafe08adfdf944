//! The fake over real HTTP, as a client sees it.

use std::time::Duration;

use fake_chatwork::{
    Account, DemoData, FakeChatwork, FakeSettings, Fault, FaultScope, MAX_MESSAGES, Room,
    RoomAccess, RoomType, WindowKind,
};
use serde_json::Value;

const BIG_ROOM: i64 = 281_000_105;

async fn get(fake: &FakeChatwork, path: &str) -> reqwest::Response {
    get_as(fake, fake.token(), path).await
}

async fn get_as(fake: &FakeChatwork, token: &str, path: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(format!("{}{path}", fake.base_url()))
        .header("X-ChatWorkToken", token)
        .send()
        .await
        .expect("the fake answers")
}

fn header(response: &reqwest::Response, name: &str) -> Option<i64> {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

async fn messages(fake: &FakeChatwork, token: &str, room: i64, force: bool) -> (u16, Vec<Value>) {
    let query = if force { "?force=1" } else { "" };
    let response = get_as(fake, token, &format!("/rooms/{room}/messages{query}")).await;
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    if status == 204 {
        assert!(text.is_empty(), "a 204 has an empty body");
        return (status, Vec::new());
    }
    (status, serde_json::from_str(&text).unwrap())
}

#[tokio::test]
async fn rooms_have_chatworks_shapes_and_errors_are_chatworks() {
    let fake = FakeChatwork::demo().await;
    assert!(fake.base_url().ends_with("/v2"));

    let response = get(&fake, "/rooms").await;
    assert_eq!(response.status(), 200);
    assert!(header(&response, "x-ratelimit-limit").is_some());
    let rooms: Vec<Value> = response.json().await.unwrap();
    assert_eq!(rooms.len(), 12);
    for field in [
        "room_id",
        "name",
        "type",
        "role",
        "sticky",
        "unread_num",
        "mention_num",
        "mytask_num",
        "message_num",
        "file_num",
        "task_num",
        "icon_path",
        "last_update_time",
    ] {
        assert!(rooms[0].get(field).is_some(), "{field}");
    }
    assert!(rooms[0].get("description").is_none());

    let detail: Value = get(&fake, &format!("/rooms/{BIG_ROOM}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(detail["type"], "group");
    assert!(detail["message_num"].as_u64().unwrap() > 100);
    assert!(detail["description"].as_str().unwrap().contains("[info]"));

    let unknown = get(&fake, "/rooms/999").await;
    assert_eq!(unknown.status(), 404);
    assert!(header(&unknown, "x-ratelimit-remaining").is_some());
    let body: Value = unknown.json().await.unwrap();
    assert!(body["errors"][0].is_string());

    assert_eq!(get(&fake, "/rooms/abc").await.status(), 400);
    assert_eq!(get(&fake, "/nothing-here").await.status(), 404);

    let wrong = get_as(&fake, "not-the-token", "/rooms").await;
    assert_eq!(wrong.status(), 401);
    let body: Value = wrong.json().await.unwrap();
    assert!(body["errors"][0].as_str().unwrap().contains("token"));

    let log = fake.requests();
    let last = log.last().unwrap();
    assert_eq!(
        (last.method.as_str(), last.path.as_str()),
        ("GET", "/v2/rooms")
    );
    assert!(!last.token_valid);
    assert_eq!(last.status, Some(401));
    assert!(
        log.iter()
            .filter(|r| r.token_valid)
            .all(|r| r.status.is_some())
    );
}

#[tokio::test]
async fn force_and_the_per_token_read_position() {
    let fake = FakeChatwork::demo().await;
    let token = fake.token().to_owned();
    let total = fake.room(BIG_ROOM).unwrap().messages.len();
    assert!(total > MAX_MESSAGES);

    // A first read without force: the newest 100, oldest first.
    let (status, first) = messages(&fake, &token, BIG_ROOM, false).await;
    assert_eq!(status, 200);
    assert_eq!(first.len(), MAX_MESSAGES);
    let room = fake.room(BIG_ROOM).unwrap();
    assert_eq!(
        first.last().unwrap()["message_id"],
        room.messages.last().unwrap().message_id.as_str()
    );
    assert_eq!(
        first[0]["message_id"],
        room.messages[total - MAX_MESSAGES].message_id.as_str()
    );
    let m = &first[0];
    assert_eq!(m["message_id"].as_str().unwrap().len(), 19);
    assert!(m["account"]["account_id"].is_i64());
    assert!(m["account"]["avatar_image_url"].is_string());
    assert!(m["send_time"].is_i64() && m["update_time"].is_i64());

    // Nothing new: 204.
    assert_eq!(messages(&fake, &token, BIG_ROOM, false).await.0, 204);

    // Two new posts: exactly those.
    let author = Account::new(42, "Test");
    let a = fake.post_message(BIG_ROOM, &author, "one").unwrap();
    let b = fake.post_message(BIG_ROOM, &author, "two 🎉").unwrap();
    assert!(a.len() == 19 && b.len() == 19 && a < b);
    let (_, new) = messages(&fake, &token, BIG_ROOM, false).await;
    let ids: Vec<&str> = new
        .iter()
        .map(|m| m["message_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [a.as_str(), b.as_str()]);

    // force=1: the newest 100 again, whatever was read.
    let (_, forced) = messages(&fake, &token, BIG_ROOM, true).await;
    assert_eq!(forced.len(), MAX_MESSAGES);
    assert_eq!(forced.last().unwrap()["message_id"], b.as_str());

    // Another token has its own read position.
    fake.add_token("second-token");
    let (_, other) = messages(&fake, "second-token", BIG_ROOM, false).await;
    assert_eq!(other.len(), MAX_MESSAGES);

    // More than 100 new messages between two reads: the newest 100, the rest is a gap.
    for i in 0..105 {
        fake.post_message(BIG_ROOM, &author, &format!("flood {i}"));
    }
    let (_, flood) = messages(&fake, &token, BIG_ROOM, false).await;
    assert_eq!(flood.len(), MAX_MESSAGES);
    assert_eq!(flood[0]["body"], "flood 5");
}

#[tokio::test]
async fn posts_and_edits_move_the_room() {
    let mut room = Room::new(5_000_001, "empty", RoomType::Direct);
    room.last_update_time = 1_000;
    let fake = FakeChatwork::start(FakeSettings::default().with_rooms(vec![room])).await;
    let token = fake.token().to_owned();
    assert_eq!(messages(&fake, &token, 5_000_001, true).await.0, 204);

    let id = fake
        .post_message(5_000_001, &Account::new(7, "Bob"), "hello")
        .unwrap();
    let detail: Value = get(&fake, "/rooms/5000001").await.json().await.unwrap();
    assert_eq!(detail["message_num"], 1);
    let after_post = detail["last_update_time"].as_i64().unwrap();
    assert!(after_post > 1_000);

    assert!(fake.edit_message(5_000_001, &id, "hello, edited"));
    assert!(!fake.edit_message(5_000_001, "1", "no such message"));
    let (_, forced) = messages(&fake, &token, 5_000_001, true).await;
    assert_eq!(forced[0]["body"], "hello, edited");
    let update_time = forced[0]["update_time"].as_i64().unwrap();
    assert!(update_time > forced[0]["send_time"].as_i64().unwrap());
    let detail: Value = get(&fake, "/rooms/5000001").await.json().await.unwrap();
    assert!(detail["last_update_time"].as_i64().unwrap() >= update_time);

    // A 20-digit id sorts after 19-digit ones.
    let long = "12345678901234567890";
    fake.post_message_with_id(5_000_001, long, &Account::new(7, "Bob"), "long id");
    let (_, forced) = messages(&fake, &token, 5_000_001, true).await;
    assert_eq!(forced.last().unwrap()["message_id"], long);
    assert!(
        fake.post_message(999, &Account::new(7, "Bob"), "x")
            .is_none()
    );
}

#[tokio::test]
async fn the_rate_limit_counts_refuses_and_resets() {
    let fake =
        FakeChatwork::start(FakeSettings::default().with_rate_limit(3, Duration::from_secs(2)))
            .await;
    let first = get(&fake, "/rooms").await;
    assert_eq!(first.status(), 200);
    assert_eq!(header(&first, "x-ratelimit-limit"), Some(3));
    assert_eq!(header(&first, "x-ratelimit-remaining"), Some(2));
    let second = get(&fake, "/rooms").await;
    // (1 unless the window turned over in between, on a slow machine.)
    assert!(header(&second, "x-ratelimit-remaining").unwrap() <= 2);
    fake.use_up_rate_limit(fake.token());
    let refused = get(&fake, "/rooms").await;
    assert_eq!(refused.status(), 429);
    assert_eq!(header(&refused, "x-ratelimit-remaining"), Some(0));
    let reset = header(&refused, "x-ratelimit-reset").unwrap();
    let body: Value = refused.json().await.unwrap();
    assert!(body["errors"][0].is_string());
    assert_eq!(fake.rate_limited_count(), 1);
    let counted = fake.counted_requests();

    // After the reset the token is served again.
    let wait = reset * 1000 - now_ms() + 50;
    if wait > 0 {
        tokio::time::sleep(Duration::from_millis(wait as u64)).await;
    }
    let again = get(&fake, "/rooms").await;
    assert_eq!(again.status(), 200);
    assert!(header(&again, "x-ratelimit-reset").unwrap() > reset);
    assert_eq!(fake.counted_requests(), counted + 1);
    assert_eq!(fake.rate_limited_count(), 1);
}

#[tokio::test]
async fn the_limit_and_window_can_change_mid_run_and_a_second_program_can_spend() {
    let fake = FakeChatwork::start(FakeSettings::default()).await;
    let first = get(&fake, "/rooms").await;
    assert_eq!(header(&first, "x-ratelimit-limit"), Some(300));
    let old_reset = header(&first, "x-ratelimit-reset").unwrap();
    assert!(old_reset * 1000 > now_ms() + 200_000);

    fake.set_rate_limit(3, Duration::from_secs(2));
    assert_eq!(fake.rate_limit(), (3, Duration::from_secs(2)));
    let changed = get(&fake, "/rooms").await;
    assert_eq!(changed.status(), 200);
    assert_eq!(header(&changed, "x-ratelimit-limit"), Some(3));
    assert_eq!(header(&changed, "x-ratelimit-remaining"), Some(2));
    let reset = header(&changed, "x-ratelimit-reset").unwrap();
    assert!(reset < old_reset && reset * 1000 <= now_ms() + 2000);
    let windows = fake.rate_windows(fake.token());
    assert_eq!(windows.len(), 2);
    assert_eq!(windows[0].counted, 1);
    assert!(windows[0].end < windows[1].start + Duration::from_secs(1));

    // A second program spends what is left; more than that does not fit.
    assert_eq!(fake.spend_rate_limit(fake.token(), 5), 2);
    assert_eq!(fake.rate_limit_state(fake.token()).remaining, 0);
    let refused = get(&fake, "/rooms").await;
    assert_eq!(refused.status(), 429);
    assert_eq!(fake.rate_windows(fake.token())[1].counted, 3);
    assert_eq!(fake.counted_requests(), 2, "only requests over HTTP");
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[tokio::test]
async fn windows_from_the_first_request_end_on_a_whole_second() {
    let fake =
        FakeChatwork::start(FakeSettings::default().with_rate_limit(5, Duration::from_secs(2)))
            .await;
    let before = now_ms();
    let response = get(&fake, "/rooms").await;
    let reset = header(&response, "x-ratelimit-reset").unwrap();
    assert!(reset * 1000 > before + 1000);
    assert!(reset * 1000 <= now_ms() + 2000);
    assert_eq!(fake.rate_limit_state(fake.token()).remaining, 4);
}

#[tokio::test]
async fn unrounded_windows_report_a_reset_before_the_true_one() {
    let fake = FakeChatwork::start(
        FakeSettings::default()
            .with_rate_limit(1, Duration::from_millis(2500))
            .with_window_kind(WindowKind::Unrounded),
    )
    .await;
    // Start the window 300 ms into a second: it ends 800 ms into a later one, and the
    // header reports the start of that second.
    let into_second = now_ms() % 1000;
    tokio::time::sleep(Duration::from_millis(((1300 - into_second) % 1000) as u64)).await;
    let response = get(&fake, "/rooms").await;
    let reset = header(&response, "x-ratelimit-reset").unwrap();
    let wait = reset * 1000 + 100 - now_ms();
    if wait > 0 {
        tokio::time::sleep(Duration::from_millis(wait as u64)).await;
    }
    let sent_at = now_ms();
    let early = get(&fake, "/rooms").await;
    // Where the window really ends, as the fake recorded it (on a busy machine the first
    // request may be admitted later than planned, which moves the end).
    let window = fake.rate_windows(fake.token())[0];
    let end_ms = window
        .end
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    assert_eq!(window.reset, reset);
    assert!(
        end_ms >= reset * 1000,
        "the window outlives its reported reset"
    );
    if now_ms() < end_ms && sent_at >= reset * 1000 {
        assert_eq!(
            early.status(),
            429,
            "a request after the reported reset, inside the true window"
        );
    }
}

#[tokio::test]
async fn aligned_windows_sit_on_a_grid() {
    let fake = FakeChatwork::start(
        FakeSettings::default()
            .with_rate_limit(5, Duration::from_secs(2))
            .with_window_kind(WindowKind::Aligned),
    )
    .await;
    let response = get(&fake, "/rooms").await;
    let reset = header(&response, "x-ratelimit-reset").unwrap();
    assert_eq!(reset % 2, 0);
    assert!(reset * 1000 > now_ms() - 100 && reset * 1000 <= now_ms() + 2000);
}

#[tokio::test]
async fn faults_can_be_scheduled_and_rooms_can_go_away() {
    let fake = FakeChatwork::demo().await;
    fake.fail_next(2, 503);
    assert_eq!(get(&fake, "/rooms").await.status(), 503);
    let second = get(&fake, "/rooms").await;
    assert_eq!(second.status(), 503);
    assert!(
        header(&second, "x-ratelimit-remaining").is_some(),
        "a server error still counts"
    );
    assert_eq!(get(&fake, "/rooms").await.status(), 200);

    // A fault for one room leaves the others alone.
    fake.inject(FaultScope::Room(281_000_102), Fault::Status(500), Some(1));
    assert_eq!(get(&fake, "/rooms/281000101").await.status(), 200);
    assert_eq!(get(&fake, "/rooms/281000102").await.status(), 500);
    assert_eq!(get(&fake, "/rooms/281000102").await.status(), 200);

    fake.set_room_access(281_000_102, RoomAccess::Gone);
    assert_eq!(get(&fake, "/rooms/281000102/messages").await.status(), 404);
    let rooms: Vec<Value> = get(&fake, "/rooms").await.json().await.unwrap();
    assert_eq!(rooms.len(), 11);
    fake.set_room_access(281_000_103, RoomAccess::Forbidden);
    assert_eq!(get(&fake, "/rooms/281000103").await.status(), 403);
    fake.set_room_access(281_000_103, RoomAccess::Open);
    assert_eq!(get(&fake, "/rooms/281000103").await.status(), 200);

    fake.set_error_rate(1.0);
    let status = get(&fake, "/rooms").await.status().as_u16();
    assert!([500, 502, 503].contains(&status), "{status}");
    fake.clear_faults();
    assert_eq!(get(&fake, "/rooms").await.status(), 200);
}

#[tokio::test]
async fn a_hang_outlasts_a_client_timeout_and_stays_unanswered_in_the_log() {
    let fake = FakeChatwork::demo().await;
    fake.hang_next(1, Duration::from_secs(30));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let result = client
        .get(format!("{}/rooms", fake.base_url()))
        .header("X-ChatWorkToken", fake.token())
        .send()
        .await;
    assert!(result.unwrap_err().is_timeout());
    let log = fake.requests();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].status, None, "the client went away first");
    // The next request is served normally.
    assert_eq!(get(&fake, "/rooms").await.status(), 200);
}

#[tokio::test]
async fn demo_data_is_served_as_built() {
    let fake = FakeChatwork::demo().await;
    let data = DemoData::build();
    assert_eq!(
        fake.room_ids().len(),
        data.rooms.len() + data.second_rooms.len()
    );
    assert_eq!(data.owner().account_id, FakeChatwork::DEFAULT_ACCOUNT_ID);
    let my: Vec<Value> = get(&fake, "/rooms").await.json().await.unwrap();
    assert_eq!(
        my.len(),
        data.rooms.len(),
        "the owner's rooms, not the colleague's"
    );
    assert!(my.iter().any(|r| r["type"] == "my"));
    assert!(my.iter().any(|r| r["type"] == "direct"));
}

#[tokio::test]
async fn a_free_plan_answers_with_the_limitation_headers() {
    let fake = FakeChatwork::demo().await;
    let paid = get(&fake, "/rooms").await;
    assert!(paid.headers().get("chatwork-message-limitation").is_none());
    fake.set_message_limitation(Some("直近40日・5,000件"));
    let free = get(&fake, &format!("/rooms/{BIG_ROOM}/messages?force=1")).await;
    assert_eq!(free.status(), 200);
    assert_eq!(free.headers()["chatwork-message-limitation"], "true");
    assert_eq!(
        free.headers()["chatwork-message-limitation-summary"].as_bytes(),
        "直近40日・5,000件".as_bytes()
    );
    fake.set_message_limitation(None);
    let paid = get(&fake, "/rooms").await;
    assert!(paid.headers().get("chatwork-message-limitation").is_none());
}

#[tokio::test]
async fn traffic_mode_plays_a_plan_with_time_compressed() {
    use fake_chatwork::{TrafficPlan, TrafficSettings};
    let settings = TrafficSettings {
        rooms: 5,
        first_room_id: 9_001,
        duration: Duration::from_secs(600),
        bot_every: Duration::from_secs(30),
        burst_messages: 20,
        burst_within: Duration::from_secs(60),
        ..TrafficSettings::default()
    };
    let plan = TrafficPlan::organization(&settings);
    let rooms = plan
        .profiles
        .iter()
        .map(|p| Room::new(p.room_id, format!("room {}", p.room_id), RoomType::Group))
        .collect();
    let fake = FakeChatwork::start(FakeSettings::default().with_rooms(rooms)).await;
    // Ten simulated minutes in a second.
    let started = std::time::Instant::now();
    let record = fake.play(plan.clone(), 600.0).await.unwrap();
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(900), "{took:?}");
    assert_eq!(record.posted.len(), plan.posts());
    // The bot's 20 and the two bursts of 20 at least.
    assert!(record.posted.len() >= 60, "{}", record.posted.len());
    let listed: Vec<Value> = get(&fake, "/rooms").await.json().await.unwrap();
    let total: i64 = listed
        .iter()
        .map(|r| r["message_num"].as_i64().unwrap())
        .sum();
    assert_eq!(total as usize, record.posted.len());
    assert!(record.posted.windows(2).all(|w| w[0].at <= w[1].at));
}
