//! What a room costs the database, counted on the wire: the messages consumer's pool
//! reaches Postgres through a [`TcpProxy`] that reads the protocol (one connection, its
//! statements already prepared by a first sync), and the consumer handles one record per
//! batch, so each room's statements and round trips are the counters' difference. The
//! Chatwork client's rate budget uses a pool of its own (for the room list's request);
//! a room's request is reserved and recorded inside the room's two statements, which
//! are counted here. Prints a table (`--nocapture` shows it):
//!
//! ```sh
//! scripts/test -- -p cwsync-tests --test integration statements_per_room -- --nocapture
//! ```

use cwsync::jobs::JobSpec as _;

use std::time::Duration;

use cwsync::jobs::{ItemStatus, JobConsumer};
use cwsync::sync::messages::MessagesSync;
use cwsync_tests::{TcpProxy, eventually};

use super::{Backend, SyncRig, poster, room_with_history, sync_context};

#[tokio::test]
async fn statements_per_room() {
    let rooms: Vec<_> = (1..=6).map(|i| room_with_history(3000 + i, 4)).collect();
    let rig = SyncRig::new(Backend::Embedded, rooms).await;
    rig.rooms_sync().await;
    let proxy = TcpProxy::start(rig.db.server_addr()).await;
    let mut config = rig.db.config_via(proxy.addr());
    config.max_connections = 1;
    let pool = cwsync::db::pool(&config).unwrap();
    let context = sync_context(&rig.fake, rig.pool());
    let consumer: JobConsumer<MessagesSync> =
        JobConsumer::new(pool.clone(), rig.queues.clone(), context.clone());
    // sqlx gives a connection back to the pool after a ping of its own, in a task of its
    // own: count a record's statements once its connection is back.
    let settled = || async {
        eventually(
            "the connection back in the pool",
            Duration::from_secs(10),
            || async { pool.num_idle() == pool.size() as usize },
        )
        .await;
        proxy.counts()
    };

    // A first sync prepares every statement on the connection.
    let job = rig.start_messages_sync(None).await;
    rig.run_until_with(&consumer, job.id, "the first sync", |j| {
        j.status.is_terminal()
    })
    .await;

    // The second: two rooms changed, four did not.
    rig.fake.post_message(3002, &poster(), "a").unwrap();
    rig.fake.post_message(3005, &poster(), "b").unwrap();
    let job = rig.start_messages_sync(None).await;
    let mut source = rig.source(MessagesSync::QUEUE);
    source.batch_size = 1;
    let mut rows = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !rig.job(job.id).await.status.is_terminal() {
        assert!(tokio::time::Instant::now() < deadline, "the second sync");
        let ended_before: Vec<String> = ended(&rig, job.id).await;
        let before = settled().await;
        if source.poll_once(&consumer).await.unwrap() == 0 {
            continue;
        }
        let cost = settled().await - before;
        let room = ended(&rig, job.id)
            .await
            .into_iter()
            .find(|k| !ended_before.contains(k))
            .expect("the record ended its item");
        rows.push((room, cost));
    }

    let items = rig.items(job.id).await;
    let changed = |key: &str| {
        items
            .iter()
            .any(|i| i.item_key == key && i.status == ItemStatus::Completed)
    };
    println!("room        changed  statements  round trips  also");
    for (index, (room, cost)) in rows.iter().enumerate() {
        let mut also = Vec::new();
        if index == 0 {
            also.push("took the room list");
        }
        if index == rows.len() - 1 {
            also.push("finished the job");
        }
        println!(
            "{room:<10}  {:7}  {:10}  {:11}  {}",
            changed(room),
            cost.statements(),
            cost.round_trips(),
            also.join(", ")
        );
    }
    assert_eq!(rows.len(), 6);
    // The first sync fetched every room, so the job core's own end of an item (for an
    // unchanged room) is new to the connection at the first unchanged room: one more
    // round trip to prepare it.
    let first_unchanged = rows.iter().position(|(room, _)| !changed(room));
    for (index, (room, cost)) in rows.iter().enumerate() {
        // The item's start with the read (and the request's reservation, if changed),
        // and its end: with the write (and the request's record) if changed.
        let mut expected = 2;
        if index == 0 {
            // Claiming and storing the room list, and a cancellation check after it.
            expected += 3;
        }
        if index == rows.len() - 1 {
            // Finishing the job: the job, its items, the update.
            expected += 3;
        }
        // Each statement waits for its answer, all on the batch's one connection: sqlx
        // pings it when the pool hands it out (`test_before_acquire`) and when it takes
        // it back.
        let mut round_trips = expected + 2;
        if Some(index) == first_unchanged {
            round_trips += 1;
        }
        assert_eq!(cost.statements(), expected, "{room}: {cost:?}");
        assert_eq!(cost.round_trips(), round_trips, "{room}: {cost:?}");
    }
    // Every reservation, those the rooms' statements took included, was recorded.
    let budget = context
        .connections
        .bootstrap()
        .unwrap()
        .budget()
        .state()
        .await
        .unwrap()
        .unwrap();
    assert_eq!(budget.in_flight, 0, "{budget:?}");
    let fetched: Vec<_> = rows
        .iter()
        .filter(|(room, _)| changed(room))
        .map(|(room, _)| room.as_str())
        .collect();
    assert_eq!(fetched, ["room-3002", "room-3005"]);
}

/// The keys of the job's items that have ended.
async fn ended(rig: &SyncRig, job_id: uuid::Uuid) -> Vec<String> {
    rig.items(job_id)
        .await
        .into_iter()
        .filter(|i| i.status.is_terminal())
        .map(|i| i.item_key)
        .collect()
}
