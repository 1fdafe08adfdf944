//! Near Chatwork's ceiling: checks under a minute apart follow a hot room within one
//! scheduled invocation, and a check whose rooms need more than the budget gives says
//! which rooms lose and how much, on the status route.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use cwsync::chatwork::ChatworkClient;
use cwsync::jobs::JobSpec as _;
use cwsync::schedule;
use cwsync::sync::check::{CheckOutcome, RoomCheckSettings};
use cwsync::sync::messages::MessagesSync;
use fake_chatwork::FakeSettings;

use super::check::{SETTLE, api};
use super::{Backend, SyncRig, client_settings, messages_requests, poster, room_with_history};

#[tokio::test]
async fn a_hot_room_is_followed_between_checks() {
    // A window of 10 s (so that checks a second apart leave fetches to spend).
    let settings = FakeSettings::default()
        .with_rooms(vec![room_with_history(5801, 3), room_with_history(5802, 3)])
        .with_rate_limit(300, Duration::from_secs(10));
    let rig = Arc::new(SyncRig::with_fake(Backend::Embedded, settings).await);
    assert_eq!(rig.check(0).await.fetched, 2);
    tokio::time::sleep(SETTLE).await;

    // 120 messages within 3 s in room 5801: more than one fetch returns, unless it is
    // fetched more often than the minutely schedule fires.
    let poster_task = {
        let rig = rig.clone();
        tokio::spawn(async move {
            for i in 0..120 {
                rig.fake
                    .post_message(5801, &poster(), &format!("hot {i}"))
                    .unwrap();
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
        })
    };
    // The messages-sync consumer polls all the while, as its event source mapping does.
    let stop = Arc::new(AtomicBool::new(false));
    let consumer = {
        let (rig, stop) = (rig.clone(), stop.clone());
        tokio::spawn(async move {
            let work = rig.source(MessagesSync::QUEUE);
            while !stop.load(Ordering::Relaxed) {
                if work.poll_once(&rig.messages).await.unwrap() == 0 {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        })
    };
    let before = rig.fake.requests().len();
    // One scheduled invocation: four checks a second apart.
    let settings = RoomCheckSettings {
        cadence: Duration::from_secs(1),
        per_invocation: 4,
        reserve_percent: 0,
        window: Duration::from_secs(10),
        ..RoomCheckSettings::default()
    };
    let client = ChatworkClient::new(client_settings(&rig.fake), rig.pool().clone()).unwrap();
    let connections = cwsync::connections::Connections::of_client(client);
    let started = std::time::Instant::now();
    schedule::room_checks(rig.pool(), rig.queues.as_ref(), &connections, &settings)
        .await
        .unwrap();
    assert!(
        started.elapsed() >= Duration::from_secs(3),
        "four checks, 1 s apart"
    );
    poster_task.await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    consumer.await.unwrap();

    let during = rig.requests_since(before);
    let fetches = messages_requests(&during)
        .into_iter()
        .filter(|room| *room == 5801)
        .count();
    assert!(
        fetches >= 3,
        "the hot room is fetched at most checks of the invocation: {fetches}"
    );
    let checks: i64 =
        sqlx::query_scalar("SELECT count(*) FROM room_checks WHERE trigger = 'schedule'")
            .fetch_one(rig.pool())
            .await
            .unwrap();
    assert_eq!(checks, 1 + 4);

    // Whatever arrived after the last check of the invocation, the next one takes.
    tokio::time::sleep(SETTLE).await;
    rig.check(0).await;
    rig.holds_everything_of(5801).await;
    rig.holds_everything_of(5802).await;
    assert_eq!(rig.fake.rate_limited_count(), 0);
}

#[tokio::test]
async fn above_the_ceiling_the_status_route_names_the_rooms_that_lose() {
    let ids: Vec<i64> = (5951..=5960).collect();
    let settings = FakeSettings::default()
        .with_rooms(ids.iter().map(|id| room_with_history(*id, 3)).collect())
        .with_rate_limit(30, Duration::from_secs(600));
    let rig = SyncRig::with_fake(Backend::Embedded, settings).await;
    let every_five_minutes = RoomCheckSettings {
        cadence: Duration::from_secs(300),
        reserve_percent: 0,
        ..RoomCheckSettings::default()
    };
    // A share of 14 (half of the 28 the window can spend) for 10 rooms: all now.
    let first = rig.check_with(&every_five_minutes).await;
    assert_eq!(first.fetched, 10);
    assert_eq!(first.loss_per_min, 0.0, "{first:?}");
    let (status, body) = api(&rig, "GET", "/chatwork/status", None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["ceiling"]["aboveCeiling"], false, "{body}");
    assert_eq!(body["ceiling"]["supplyPerWindow"], 30);

    // 80 messages in every room within a second or two: each would pass 100 long
    // before the next check five minutes away, and the window has 18 requests left.
    for id in &ids {
        for i in 0..80 {
            rig.fake
                .post_message(*id, &poster(), &format!("m{i}"))
                .unwrap();
        }
    }
    let report = rig.check_with(&every_five_minutes).await;
    assert_eq!(report.outcome, CheckOutcome::Fetching);
    assert!(report.tight);
    assert!(report.fetched < 10, "{report:?}");
    assert!(report.loss_per_min > 0.0);
    assert!(report.demand_per_window > report.supply_per_window as f64);
    assert!(
        report.describe().contains("above the ceiling"),
        "{}",
        report.describe()
    );

    let (status, body) = api(&rig, "GET", "/chatwork/status", None).await;
    assert_eq!(status, 200, "{body}");
    let ceiling = &body["ceiling"];
    assert_eq!(ceiling["aboveCeiling"], true, "{body}");
    assert!(ceiling["lossPerMinute"].as_f64().unwrap() > 0.0);
    assert!(ceiling["tight"].as_bool().unwrap());
    let losing = ceiling["losingRooms"].as_array().unwrap();
    assert_eq!(
        losing.len(),
        10,
        "every room outruns a 5-minute check: {ceiling}"
    );
    for room in losing {
        let id = room["roomId"].as_i64().unwrap();
        assert!(ids.contains(&id));
        assert!(!room["name"].as_str().unwrap().is_empty(), "named: {room}");
        assert!(room["ratePerMinute"].as_f64().unwrap() > 20.0);
        assert!(room["lossPerMinute"].as_f64().unwrap() > 0.0);
        assert_eq!(room["outrunsCheck"], true);
    }
    assert_eq!(rig.fake.rate_limited_count(), 0);
}
