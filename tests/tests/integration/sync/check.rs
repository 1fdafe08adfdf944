//! The room check: one room list decides which rooms are fetched, riskiest first within
//! the token's budget; nothing changed costs one request and no job; new rooms, edits
//! and the free plan's limitation header. Through the consumer runtime, both queues.

use std::time::Duration;

use cwsync::chatwork::ChatworkClient;
use cwsync::jobs::{ItemStatus, JobSpec as _, JobStatus};
use cwsync::schedule;
use cwsync::sync::check::{CheckOutcome, RoomCheckReport, RoomCheckSettings};
use cwsync::sync::messages::MessagesSync;
use fake_chatwork::FakeSettings;
use serde_json::{Value, json};

use super::{
    Backend, SyncRig, client_settings, count_metrics, counter, messages_requests, poster,
    room_list_requests, room_with_history,
};

/// Chatwork's `last_update_time` has a resolution of one second, so a fetch in the same
/// second as the last message records the room as unsettled and the next check fetches
/// it again (see the messages sync). Tests that want the next check to find a room
/// current wait this long after posting.
pub(super) const SETTLE: Duration = Duration::from_millis(2_300);

impl SyncRig {
    /// Runs one scheduled room check keeping `reserve_percent` % of the window back, and
    /// the job it started to its end.
    pub(super) async fn check(&self, reserve_percent: u32) -> RoomCheckReport {
        self.check_with(&RoomCheckSettings {
            cadence: Duration::from_secs(60),
            reserve_percent,
            ..RoomCheckSettings::default()
        })
        .await
    }

    /// [`check`](Self::check) with its settings.
    pub(super) async fn check_with(&self, settings: &RoomCheckSettings) -> RoomCheckReport {
        let client = ChatworkClient::new(client_settings(&self.fake), self.pool().clone()).unwrap();
        let connections = cwsync::connections::Connections::of_client(client);
        let report =
            schedule::room_check(self.pool(), self.queues.as_ref(), &connections, settings)
                .await
                .unwrap();
        if let (CheckOutcome::Fetching, Some(job_id)) = (report.outcome, report.job_id) {
            let job = self.run_to_end(job_id).await;
            assert_eq!(job.status, JobStatus::Completed, "{job:?}");
            assert_eq!(
                job.user_id, None,
                "the schedule's check starts the schedule's job"
            );
        }
        report
    }

    async fn job_count(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM jobs")
            .fetch_one(self.pool())
            .await
            .unwrap()
    }

    /// Whether the messages queue hands out anything now.
    async fn messages_queue_is_empty(&self) -> bool {
        let source = self.source(MessagesSync::QUEUE);
        source.poll_once(&self.messages).await.unwrap() == 0
    }

    /// Every message the fake holds for `room_id` is stored, with its current body.
    pub(super) async fn holds_everything_of(&self, room_id: i64) {
        let posted: Vec<(String, String)> = self
            .fake
            .room(room_id)
            .unwrap()
            .messages
            .into_iter()
            .map(|m| (m.message_id, m.body))
            .collect();
        let stored: Vec<(String, String)> = self
            .stored(room_id)
            .await
            .into_iter()
            .map(|(id, body, _)| (id, body))
            .collect();
        assert_eq!(stored, posted, "room {room_id}");
        assert!(!self.room(room_id).await.gap, "room {room_id} has no gap");
    }
}

async fn nothing_changed_sends_nothing(backend: Backend) {
    let rooms: Vec<_> = (1..=10).map(|i| room_with_history(5100 + i, 3)).collect();
    let rig = SyncRig::new(backend, rooms).await;
    // The first check registers every room and fetches each once.
    let first = rig.check(0).await;
    assert_eq!(first.outcome, CheckOutcome::Fetching);
    assert_eq!(
        (first.listed, first.registered, first.changed),
        (10, 10, 10)
    );
    assert_eq!(first.fetched, 10);
    for i in 1..=10 {
        rig.holds_everything_of(5100 + i).await;
    }

    let jobs = rig.job_count().await;
    let before = rig.fake.requests().len();
    count_metrics();
    let current = counter("room_checks", &[("outcome", "current")]);
    let report = rig.check(0).await;
    assert_eq!(report.outcome, CheckOutcome::Current, "{report:?}");
    assert!(counter("room_checks", &[("outcome", "current")]) > current);
    assert_eq!((report.changed, report.fetched, report.deferred), (0, 0, 0));
    assert_eq!(report.job_id, None);
    assert_eq!(rig.job_count().await, jobs, "no job");
    let requests = rig.requests_since(before);
    assert_eq!(requests.len(), 1, "only the room list: {requests:?}");
    assert_eq!(room_list_requests(&requests), 1);
    assert!(rig.messages_queue_is_empty().await, "nothing sent");

    // What it saw is recorded all the same.
    let (outcome, listed): (String, i32) =
        sqlx::query_as("SELECT outcome, rooms_listed FROM room_checks WHERE id = $1")
            .bind(report.check_id)
            .fetch_one(rig.pool())
            .await
            .unwrap();
    assert_eq!((outcome.as_str(), listed), ("current", 10));
}

#[tokio::test]
async fn a_check_with_nothing_changed_sends_nothing_and_creates_no_job_embedded() {
    nothing_changed_sends_nothing(Backend::Embedded).await;
}

#[tokio::test]
async fn a_check_with_nothing_changed_sends_nothing_and_creates_no_job_sqs() {
    nothing_changed_sends_nothing(Backend::Sqs).await;
}

async fn three_of_fifty(backend: Backend) {
    let rooms: Vec<_> = (1..=50).map(|i| room_with_history(5200 + i, 2)).collect();
    let rig = SyncRig::new(backend, rooms).await;
    rig.check(0).await;

    for room in [5207, 5231, 5249] {
        rig.fake.post_message(room, &poster(), "新着").unwrap();
    }
    let before = rig.fake.requests().len();
    let report = rig.check(0).await;
    let requests = rig.requests_since(before);
    assert_eq!(requests.len(), 1 + 3, "{requests:?}");
    assert_eq!(room_list_requests(&requests), 1);
    let mut fetched = messages_requests(&requests);
    fetched.sort();
    assert_eq!(fetched, [5207, 5231, 5249]);
    assert_eq!(report.outcome, CheckOutcome::Fetching);
    assert_eq!((report.changed, report.fetched, report.deferred), (3, 3, 0));

    // Three queue messages: the job has three items, each sent once and completed.
    let job_id = report.job_id.unwrap();
    let job = rig.job(job_id).await;
    assert_eq!(job.total_items, 3);
    let items = rig.items(job_id).await;
    assert!(
        items
            .iter()
            .all(|i| i.status == ItemStatus::Completed && i.attempts == 1)
    );
    let result = job.result.unwrap();
    assert_eq!(result["storedMessages"], 3);
    assert_eq!(
        result["requests"], 3,
        "no item asked for the room list again"
    );
    for room in [5207, 5231, 5249] {
        rig.holds_everything_of(room).await;
    }
}

#[tokio::test]
async fn three_changed_rooms_of_fifty_cost_one_list_three_fetches_and_three_messages_embedded() {
    three_of_fifty(Backend::Embedded).await;
}

#[tokio::test]
async fn three_changed_rooms_of_fifty_cost_one_list_three_fetches_and_three_messages_sqs() {
    three_of_fifty(Backend::Sqs).await;
}

#[tokio::test]
async fn a_new_room_in_the_list_is_registered_active_and_fetched() {
    let rig = SyncRig::new(Backend::Embedded, vec![room_with_history(5301, 2)]).await;
    rig.check(0).await;

    rig.fake.add_room(room_with_history(5302, 7));
    let before = rig.fake.requests().len();
    let report = rig.check(0).await;
    assert_eq!((report.registered, report.fetched), (1, 1));
    assert_eq!(messages_requests(&rig.requests_since(before)), [5302]);
    let active: bool =
        sqlx::query_scalar("SELECT is_active FROM chatwork_rooms WHERE room_id = 5302")
            .fetch_one(rig.pool())
            .await
            .unwrap();
    assert!(active);
    rig.holds_everything_of(5302).await;
    // Its description is left to the rooms sync.
    let stale: bool =
        sqlx::query_scalar("SELECT description_stale FROM chatwork_rooms WHERE room_id = 5302")
            .fetch_one(rig.pool())
            .await
            .unwrap();
    assert!(stale);
}

#[tokio::test]
async fn an_edit_without_new_messages_is_fetched() {
    let rig = SyncRig::new(Backend::Embedded, vec![room_with_history(5401, 4)]).await;
    rig.check(0).await;
    let message_id = rig.fake.room(5401).unwrap().messages[2].message_id.clone();
    assert!(rig.fake.edit_message(5401, &message_id, "直しました"));
    tokio::time::sleep(SETTLE).await;

    let report = rig.check(0).await;
    assert_eq!(report.planned, [5401]);
    assert_eq!(report.unseen_max, 0, "no new message, only an edit");
    let result = rig.job(report.job_id.unwrap()).await.result.unwrap();
    assert_eq!(result["editedMessages"], 1);
    rig.holds_everything_of(5401).await;
    // Fetched and settled: the next check finds it current.
    assert_eq!(rig.check(0).await.outcome, CheckOutcome::Current);
}

#[tokio::test]
async fn under_a_short_budget_the_riskiest_rooms_go_first_and_the_rest_next_time() {
    // Rooms 1..6 of 5500; the budget: 30 requests in a window that outlasts the test,
    // and a check every 300 s: two checks per window, each spending about half of what
    // is left.
    let room = |n: i64| 5500 + n;
    let rooms: Vec<_> = (1..=6).map(|n| room_with_history(room(n), 5)).collect();
    let settings = FakeSettings::default()
        .with_rooms(rooms)
        .with_rate_limit(30, Duration::from_secs(600));
    let rig = SyncRig::with_fake(Backend::Embedded, settings).await;
    let every_five_minutes = |reserve_percent| RoomCheckSettings {
        cadence: Duration::from_secs(300),
        reserve_percent,
        ..RoomCheckSettings::default()
    };
    // 29 left after the list, one for the next check: half of 28 now, for six rooms.
    let first = rig.check_with(&every_five_minutes(0)).await;
    assert_eq!(first.allowance, 14);
    assert_eq!(first.fetched, 6); // 7 requests used, 23 left.
    assert!(!first.tight);

    // Room 4 changes first, and a check with no budget to spare defers it; a room
    // that fast with nothing to fetch it is reported lost.
    for _ in 0..5 {
        rig.fake.post_message(room(4), &poster(), "早い").unwrap();
    }
    count_metrics();
    let deferred_before = counter("rooms_deferred", &[]);
    let starved = rig.check_with(&every_five_minutes(90)).await; // 22 left, a reserve of 27.
    assert!(counter("rooms_deferred", &[]) > deferred_before);
    assert_eq!(starved.outcome, CheckOutcome::Deferred);
    assert_eq!(
        (starved.changed, starved.fetched, starved.deferred),
        (1, 0, 1)
    );
    assert_eq!(starved.job_id, None);
    assert!(starved.loss_per_min > 0.0, "{starved:?}");
    assert_eq!(starved.losing_rooms[0].room_id, room(4));

    // Then room 1 nears the limit, room 2 is busy, room 3 gets as many as room 4, and
    // room 5 has an edit only; room 6 is quiet.
    for i in 0..90 {
        rig.fake
            .post_message(room(1), &poster(), &format!("a{i}"))
            .unwrap();
    }
    for i in 0..40 {
        rig.fake
            .post_message(room(2), &poster(), &format!("b{i}"))
            .unwrap();
    }
    for _ in 0..5 {
        rig.fake.post_message(room(3), &poster(), "遅い").unwrap();
    }
    let edited = rig.fake.room(room(5)).unwrap().messages[0]
        .message_id
        .clone();
    assert!(rig.fake.edit_message(room(5), &edited, "edited"));
    tokio::time::sleep(SETTLE).await;

    // 21 left after the list: a reserve of 17 (56 % of 30, rounded up) and the next
    // check's request leave 3, half of it now, for five rooms: tight.
    let report = rig.check_with(&every_five_minutes(56)).await;
    assert_eq!(report.outcome, CheckOutcome::Fetching);
    assert_eq!(report.allowance, 2);
    assert!(report.tight);
    assert_eq!((report.changed, report.fetched, report.deferred), (5, 2, 3));
    // The room closest to 100 and fastest first; the edit, at no risk, waits.
    assert_eq!(report.planned[0], room(1), "{report:?}");
    assert!(!report.planned.contains(&room(5)));
    assert_eq!(report.unseen_max, 90);
    for n in &report.planned {
        rig.holds_everything_of(*n).await;
    }
    let waiting: Vec<i64> = sqlx::query_scalar(
        "SELECT room_id FROM chatwork_rooms WHERE fetch_wanted_since IS NOT NULL ORDER BY room_id",
    )
    .fetch_all(rig.pool())
    .await
    .unwrap();
    assert_eq!(waiting.len(), 3, "the deferred rooms stay changed");
    assert!(waiting.contains(&room(5)));

    // More arrives in a deferred room; the next check (no reserve) fetches the rest,
    // nothing lost.
    for _ in 0..3 {
        rig.fake.post_message(room(3), &poster(), "さらに").unwrap();
    }
    tokio::time::sleep(SETTLE).await;
    let next = rig.check_with(&every_five_minutes(0)).await;
    assert_eq!(next.planned.len(), 3, "{next:?}");
    assert_eq!(next.deferred, 0);
    for n in 1..=6 {
        rig.holds_everything_of(room(n)).await;
    }
    assert_eq!(
        rig.check_with(&every_five_minutes(0)).await.outcome,
        CheckOutcome::Current
    );
    assert!(rig.fake.rate_limited_count() == 0, "never over the limit");
}

#[tokio::test]
async fn the_free_plans_limitation_header_is_recorded_on_the_check_and_the_room() {
    let rig = SyncRig::new(Backend::Embedded, vec![room_with_history(5601, 3)]).await;
    let summary = "latest 5000 messages of the last 40 days";
    rig.fake.set_message_limitation(Some(summary));
    let report = rig.check(0).await;
    let on_check: Option<String> =
        sqlx::query_scalar("SELECT message_limitation FROM room_checks WHERE id = $1")
            .bind(report.check_id)
            .fetch_one(rig.pool())
            .await
            .unwrap();
    assert_eq!(on_check.as_deref(), Some(summary));
    let (on_room, seen): (Option<String>, bool) = sqlx::query_as(
        "SELECT message_limitation, message_limitation_at IS NOT NULL
           FROM chatwork_rooms WHERE room_id = 5601",
    )
    .fetch_one(rig.pool())
    .await
    .unwrap();
    assert_eq!((on_room.as_deref(), seen), (Some(summary), true));
    let items = rig.items(report.job_id.unwrap()).await;
    assert_eq!(
        items[0].result.as_ref().unwrap()["messageLimitation"],
        json!(summary)
    );
}

/// Calls the API as an admin, served over the rig's database and queues.
pub(super) async fn api(
    rig: &SyncRig,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    use cwsync::api::{AppState, AuthConfig, Role};
    let auth = AuthConfig::local_jwt(
        &cwsync::config::Env::default(),
        &secrecy::SecretString::from(cwsync_tests::TEST_JWT_SECRET),
    )
    .unwrap();
    let token = auth
        .mint_local_token("admin-1", Role::Admin, Duration::from_secs(600))
        .unwrap();
    let state = AppState::new(rig.pool().clone(), rig.queues.clone(), auth);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        axum::serve(listener, cwsync::api::router(state))
            .await
            .unwrap();
    });
    let mut request = reqwest::Client::new()
        .request(
            method.parse().unwrap(),
            format!("http://{address}/api{path}"),
        )
        .bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let body = response.json().await.unwrap();
    server.abort();
    (status, body)
}

/// What a client that polls only the job it got saw of it.
struct Watched {
    /// `(status, totalRooms, processedRooms)` of each poll, in order.
    polls: Vec<(String, i64, i64)>,
    last: Value,
}

impl SyncRig {
    /// Polls `GET /api/jobs/{id}` as the console does, feeding the queues one record at a
    /// time between two polls, until the job ends.
    async fn watch(&self, id: &str) -> Watched {
        let work = {
            let mut source = self.source(MessagesSync::QUEUE);
            source.batch_size = 1;
            source
        };
        let dead = self.source(MessagesSync::QUEUE.dead_letter());
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        let mut polls = Vec::new();
        loop {
            let (status, job) = api(self, "GET", &format!("/jobs/{id}"), None).await;
            assert_eq!(status, 200, "{job}");
            let count = |field: &str| job["result"][field].as_i64().unwrap_or(0);
            let state = job["status"].as_str().unwrap().to_owned();
            polls.push((state.clone(), count("totalRooms"), count("processedRooms")));
            if !["queued", "processing"].contains(&state.as_str()) {
                return Watched { polls, last: job };
            }
            assert!(tokio::time::Instant::now() < deadline, "{job}");
            let mut polled = work.poll_once(&self.messages).await.unwrap();
            polled += dead.poll_once(&self.dead_letters).await.unwrap();
            if polled == 0 {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn one_sync_one_job(backend: Backend) {
    let rooms: Vec<_> = (1..=6).map(|i| room_with_history(5700 + i, 3)).collect();
    let rig = SyncRig::new(backend, rooms).await;
    rig.check(0).await;
    // Four rooms change: one by 130 messages (a gap of 30), one is gone from Chatwork
    // (404), two by a message each; two stay as they are.
    for room in [5701, 5703, 5705] {
        rig.fake.post_message(room, &poster(), "HTTP").unwrap();
    }
    for i in 0..130 {
        rig.fake
            .post_message(5702, &poster(), &format!("m{i}"))
            .unwrap();
    }
    rig.fake.inject(
        fake_chatwork::FaultScope::Room(5705),
        fake_chatwork::Fault::Status(404),
        None,
    );

    let before = rig.fake.requests().len();
    let (status, started) = api(&rig, "POST", "/chatwork/messages/sync", Some(json!({}))).await;
    assert_eq!(status, 202, "{started}");
    assert_eq!(started["payload"], json!({"scope": "all"}));
    assert_eq!(started["status"], "queued");
    assert_eq!(
        rig.fake.requests().len(),
        before,
        "the request never waits for Chatwork"
    );

    let id = started["id"].as_str().unwrap();
    let watched = rig.watch(id).await;
    let job = &watched.last;
    assert_eq!(job["status"], "completed", "{job}");
    let result = &job["result"];
    assert_eq!(result["totalRooms"], 4, "{result}");
    assert_eq!(result["processedRooms"], 3, "{result}");
    assert_eq!(result["failedRooms"], 1, "{result}");
    assert_eq!(
        job["totalItems"], 4,
        "the rooms; the check is a step of the job"
    );
    assert_eq!(job["progress"]["total"], 4);
    assert_eq!(job["progress"]["finished"], 4);
    // The 404 room's error and the gap are in the job the client holds.
    assert_eq!(result["errors"][0]["roomId"], 5705, "{result}");
    assert!(
        result["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("404"),
        "{result}"
    );
    assert_eq!(result["gaps"][0]["roomId"], 5702, "{result}");
    assert_eq!(result["gaps"][0]["missedEstimate"], 30, "{result}");
    let check = &result["check"];
    assert_eq!(check["outcome"], "fetching", "{check}");
    assert_eq!(check["jobId"], json!(id), "the check names its own job");
    assert_eq!(
        (check["changed"].as_i64(), check["fetched"].as_i64()),
        (Some(4), Some(4))
    );

    // The client saw the job open with its rooms known, and their count rise to the end.
    let open: Vec<&(String, i64, i64)> = watched
        .polls
        .iter()
        .filter(|(status, ..)| status != "completed")
        .collect();
    assert!(
        open.iter()
            .any(|(_, total, processed)| *total == 4 && *processed < 3),
        "{:?}",
        watched.polls
    );
    let processed: Vec<i64> = watched.polls.iter().map(|p| p.2).collect();
    assert!(processed.windows(2).all(|w| w[0] <= w[1]), "{processed:?}");
    assert!(
        processed.windows(2).filter(|w| w[0] < w[1]).count() >= 2,
        "it rose step by step: {processed:?}"
    );

    // One job: no other job was started for the sync.
    let jobs: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs WHERE user_id = 'admin-1'")
        .fetch_one(rig.pool())
        .await
        .unwrap();
    assert_eq!(jobs, 1);
    let requests = rig.requests_since(before);
    assert_eq!(room_list_requests(&requests), 1, "{requests:?}");
    let mut fetched = messages_requests(&requests);
    fetched.sort();
    fetched.dedup();
    assert_eq!(fetched, [5701, 5702, 5703, 5705]);
    rig.holds_everything_of(5701).await;
    rig.holds_everything_of(5703).await;
    let trigger: String =
        sqlx::query_scalar("SELECT trigger FROM room_checks ORDER BY checked_at DESC LIMIT 1")
            .fetch_one(rig.pool())
            .await
            .unwrap();
    assert_eq!(trigger, "sync");

    // Retrying it fetches the failed room by name.
    rig.fake.clear_faults();
    let (status, retried) = api(&rig, "POST", &format!("/jobs/{id}/retry"), None).await;
    assert_eq!(status, 202, "{retried}");
    assert_eq!(
        retried["payload"],
        json!({"scope": "rooms", "roomIds": [5705]})
    );
    let again = rig
        .run_to_end(retried["id"].as_str().unwrap().parse().unwrap())
        .await;
    assert_eq!(again.status, JobStatus::Completed, "{again:?}");
    rig.holds_everything_of(5705).await;

    // One room by name still always fetches that room.
    let before = rig.fake.requests().len();
    let (status, one) = api(
        &rig,
        "POST",
        "/chatwork/messages/sync",
        Some(json!({"roomId": 5706})),
    )
    .await;
    assert_eq!(status, 202, "{one}");
    rig.run_to_end(one["id"].as_str().unwrap().parse().unwrap())
        .await;
    assert_eq!(messages_requests(&rig.requests_since(before)), [5706]);
}

#[tokio::test]
async fn a_sync_of_all_rooms_is_one_job_that_ends_after_its_last_room_embedded() {
    one_sync_one_job(Backend::Embedded).await;
}

#[tokio::test]
async fn a_sync_of_all_rooms_is_one_job_that_ends_after_its_last_room_sqs() {
    one_sync_one_job(Backend::Sqs).await;
}

async fn a_person_s_sync_waits_for_the_budget(backend: Backend) {
    let rooms: Vec<_> = (1..=20).map(|i| room_with_history(6100 + i, 3)).collect();
    let rig = SyncRig::new(backend, rooms).await;
    rig.check(0).await;
    for i in 1..=20 {
        rig.fake.post_message(6100 + i, &poster(), "again").unwrap();
    }
    // Chatwork's window shrinks to 12 requests per 4 s: less than the 20 rooms, and less
    // than the 30 a fixed reserve used to hold back.
    rig.fake.set_rate_limit(12, Duration::from_secs(4));
    let limited_before = rig.fake.rate_limited_count();
    let (status, started) = api(&rig, "POST", "/chatwork/messages/sync", None).await;
    assert_eq!(status, 202, "{started}");
    let watched = rig.watch(started["id"].as_str().unwrap()).await;
    let job = &watched.last;
    assert_eq!(job["status"], "completed", "{job}");
    assert_eq!(job["result"]["totalRooms"], 20, "{job}");
    assert_eq!(job["result"]["processedRooms"], 20, "{job}");
    assert_eq!(
        job["result"]["check"]["deferred"], 0,
        "a person's sync defers nothing"
    );
    for i in 1..=20 {
        assert_eq!(rig.stored(6100 + i).await.len(), 4, "room {}", 6100 + i);
    }
    assert_eq!(rig.fake.rate_limited_count(), limited_before, "no 429");
    assert!(
        rig.fake.rate_windows(rig.fake.token()).len() >= 2,
        "it waited for the next window"
    );
}

#[tokio::test]
async fn a_person_s_sync_of_twenty_changed_rooms_in_a_window_of_twelve_stores_all_twenty_embedded()
{
    a_person_s_sync_waits_for_the_budget(Backend::Embedded).await;
}

#[tokio::test]
async fn a_person_s_sync_of_twenty_changed_rooms_in_a_window_of_twelve_stores_all_twenty_sqs() {
    a_person_s_sync_waits_for_the_budget(Backend::Sqs).await;
}

#[tokio::test]
async fn a_sync_started_while_another_covers_the_same_rooms_answers_with_that_one() {
    let rooms: Vec<_> = (1..=3).map(|i| room_with_history(6200 + i, 3)).collect();
    let rig = SyncRig::new(Backend::Embedded, rooms).await;
    rig.check(0).await;
    rig.fake.post_message(6201, &poster(), "x").unwrap();
    let (status, first) = api(&rig, "POST", "/chatwork/messages/sync", None).await;
    assert_eq!(status, 202, "{first}");
    let (status, again) = api(&rig, "POST", "/chatwork/messages/sync", None).await;
    assert_eq!(status, 200, "the running sync: {again}");
    assert_eq!(again["id"], first["id"]);

    // A scheduled check while it runs leaves the rooms to it: no second job.
    let report = rig.check(0).await;
    assert_eq!(report.outcome, CheckOutcome::Busy, "{report:?}");
    assert_eq!(
        report.job_id.map(|j| j.to_string()),
        first["id"].as_str().map(str::to_owned)
    );
    let job = rig
        .run_to_end(first["id"].as_str().unwrap().parse().unwrap())
        .await;
    assert_eq!(job.status, JobStatus::Completed, "{job:?}");
    rig.holds_everything_of(6201).await;

    // And a person's sync while a scheduled check's job runs gets that job.
    rig.fake.post_message(6202, &poster(), "y").unwrap();
    tokio::time::sleep(SETTLE).await;
    let client = ChatworkClient::new(client_settings(&rig.fake), rig.pool().clone()).unwrap();
    let scheduled = schedule::room_check(
        rig.pool(),
        rig.queues.as_ref(),
        &cwsync::connections::Connections::of_client(client),
        &RoomCheckSettings::default(),
    )
    .await
    .unwrap();
    assert_eq!(scheduled.outcome, CheckOutcome::Fetching, "{scheduled:?}");
    let (status, theirs) = api(&rig, "POST", "/chatwork/messages/sync", None).await;
    assert_eq!(status, 200, "{theirs}");
    assert_eq!(theirs["id"], json!(scheduled.job_id.unwrap()));
    assert_eq!(theirs["userId"], Value::Null, "the schedule's job");
    rig.run_to_end(scheduled.job_id.unwrap()).await;
    rig.holds_everything_of(6202).await;
}

#[tokio::test]
async fn a_sync_started_over_http_while_chatwork_is_down_answers_at_once_and_the_job_says_why() {
    let rig = SyncRig::new(Backend::Embedded, vec![room_with_history(5801, 2)]).await;
    rig.fake.inject(
        fake_chatwork::FaultScope::Any,
        fake_chatwork::Fault::Status(503),
        None,
    );
    let (status, started) = api(&rig, "POST", "/chatwork/messages/sync", None).await;
    assert_eq!(status, 202, "{started}");
    let job = rig
        .run_to_end(started["id"].as_str().unwrap().parse().unwrap())
        .await;
    assert_eq!(job.status, JobStatus::Failed, "{job:?}");
    let items = rig.items(job.id).await;
    // Chatwork's 503s, or the outage breaker they opened, are the reason given.
    let says_why = |text: &str| text.contains("503") || text.contains("Chatwork unavailable");
    let error = serde_json::to_string(items[0].error.as_ref().unwrap()).unwrap();
    assert!(says_why(&error), "{error}");
    let (outcome, recorded): (String, Option<String>) =
        sqlx::query_as("SELECT outcome, error FROM room_checks ORDER BY checked_at DESC LIMIT 1")
            .fetch_one(rig.pool())
            .await
            .unwrap();
    assert_eq!(outcome, "failed");
    let recorded = recorded.unwrap();
    assert!(says_why(&recorded), "{recorded}");
}

#[tokio::test]
async fn the_status_route_shows_the_last_check_the_budget_the_risks_and_the_gaps() {
    let rooms = vec![room_with_history(5901, 3), room_with_history(5902, 3)];
    let rig = SyncRig::new(Backend::Embedded, rooms).await;
    let (status, empty) = api(&rig, "GET", "/chatwork/status", None).await;
    assert_eq!(status, 200, "{empty}");
    assert_eq!(empty["lastCheck"], Value::Null);
    rig.check(0).await;

    // Room 5901 gets 130 messages between two checks: a gap, and a rate that puts it at
    // risk; the free plan's header shows.
    for i in 0..130 {
        rig.fake
            .post_message(5901, &poster(), &format!("m{i}"))
            .unwrap();
    }
    rig.fake.set_message_limitation(Some("free plan"));
    let report = rig.check(0).await;
    assert_eq!(report.planned, [5901]);
    assert_eq!(report.unseen_max, 130);

    // Room 5902 is a bot room: 75,000 messages in the last day, 52 a minute, more than
    // half of a fetch per one-minute check (stored as if fetched, to give it the rate).
    sqlx::query(
        "INSERT INTO messages (chatwork_room_id, room_id, message_id, account_id, account_name,
                               body, send_time)
         SELECT r.id, r.room_id, (9000000000 + n)::text, 1, 'bot', 'tick',
                now() - n * interval '1 second'
           FROM chatwork_rooms r, generate_series(1, 75000) AS n
          WHERE r.room_id = 5902",
    )
    .execute(rig.pool())
    .await
    .unwrap();

    let (status, body) = api(&rig, "GET", "/chatwork/status", None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["checkCadenceSecs"], 60.0);
    let last = &body["lastCheck"];
    assert_eq!(last["id"], json!(report.check_id));
    assert_eq!(last["outcome"], "fetching");
    assert_eq!(
        (last["roomsChanged"].as_i64(), last["roomsFetched"].as_i64()),
        (Some(1), Some(1))
    );
    assert_eq!(last["roomsDeferred"], 0);
    assert_eq!(last["unseenMax"], 130);
    assert_eq!(body["budget"]["limit"], 300);
    assert!(body["budget"]["remaining"].as_i64().unwrap() < 300);
    assert_eq!(body["checksLastHour"], 2);
    assert_eq!(
        body["chatworkBreaker"],
        Value::Null,
        "Chatwork never failed"
    );
    assert_eq!(body["gapsLast24h"][0]["roomId"], 5901, "{body}");
    assert_eq!(body["gapsLast24h"][0]["missedEstimate"], 30);
    let at_risk = body["roomsAtRisk"].as_array().unwrap();
    assert_eq!(at_risk.len(), 1, "only the bot room: {body}");
    assert_eq!(at_risk[0]["roomId"], 5902);
    let expected = at_risk[0]["expectedPerCheck"].as_f64().unwrap();
    // With its 3 older messages: 75,003 a day, per minute.
    assert!(
        (expected - 75_003.0 / 24.0 / 60.0).abs() < 1e-6,
        "{expected}"
    );
    assert_eq!(body["messageLimitation"]["summary"], "free plan");

    // The room list shows each room's observed rate and the limitation.
    let (status, rooms) = api(&rig, "GET", "/chatwork/rooms", None).await;
    assert_eq!(status, 200);
    let busy = rooms["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["roomId"] == 5901)
        .unwrap();
    // Its 3 first messages and 100 of the 130 were stored, all sent within the last
    // day: 103 / 24 per hour.
    assert!(
        (busy["messagesPerHour"].as_f64().unwrap() - 103.0 / 24.0).abs() < 1e-9,
        "{busy}"
    );
    assert_eq!(busy["messageLimitation"], "free plan");
    assert_eq!(busy["unseenMessages"], 0);

    // A reader may not look.
    let auth = cwsync::api::AuthConfig::local_jwt(
        &cwsync::config::Env::default(),
        &secrecy::SecretString::from(cwsync_tests::TEST_JWT_SECRET),
    )
    .unwrap();
    let reader = auth
        .mint_local_token("r", cwsync::api::Role::Reader, Duration::from_secs(60))
        .unwrap();
    let state = cwsync::api::AppState::new(rig.pool().clone(), rig.queues.clone(), auth);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        axum::serve(listener, cwsync::api::router(state))
            .await
            .unwrap();
    });
    let response = reqwest::Client::new()
        .get(format!("http://{address}/api/chatwork/status"))
        .bearer_auth(reader)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    server.abort();
}
