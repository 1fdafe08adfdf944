//! Messages sync when things go wrong: a room that is gone, a burst of server errors, the
//! database going away in the middle of a room.

use cwsync::jobs::JobSpec as _;

use std::time::Duration;

use cwsync::jobs::{ItemStatus, JobConsumer, JobStatus};
use cwsync::sync::messages::MessagesSync;
use cwsync_tests::{TcpProxy, eventually};
use fake_chatwork::{FakeChatwork, Fault, FaultScope, RoomAccess};
use secrecy::ExposeSecret;
use sqlx::Connection;

use super::{Backend, SyncRig, messages_requests, poster, room_with_history, sync_context};

#[tokio::test]
async fn a_room_that_is_gone_records_its_error_and_is_not_retried() {
    let rig = SyncRig::new(
        Backend::Embedded,
        vec![room_with_history(2101, 3), room_with_history(2102, 3)],
    )
    .await;
    rig.rooms_sync().await;
    rig.messages_sync(None).await;
    rig.fake.post_message(2101, &poster(), "x").unwrap();
    rig.fake.post_message(2102, &poster(), "y").unwrap();
    rig.fake.set_room_access(2101, RoomAccess::Gone);
    rig.fake.set_room_access(2102, RoomAccess::Forbidden);

    let before = rig.fake.requests().len();
    let job = rig.messages_sync(None).await;
    assert_eq!(job.status, JobStatus::Failed, "every room failed: {job:?}");
    for item in rig.items(job.id).await {
        assert_eq!(item.status, ItemStatus::Failed);
        assert_eq!(item.attempts, 1, "no retry: {item:?}");
    }
    let requests = rig.requests_since(before);
    let mut asked = messages_requests(&requests);
    asked.sort();
    assert_eq!(asked, [2101, 2102], "one request each: {requests:?}");

    let gone = rig.room(2101).await;
    assert_eq!(gone.last_error_status, Some(404));
    let message = gone.last_error_message.unwrap();
    assert!(message.contains("404"), "{message}");
    assert!(!message.contains(FakeChatwork::DEFAULT_TOKEN));
    assert_eq!(rig.room(2102).await.last_error_status, Some(403));
    let result = job.result.unwrap();
    let errors = result["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 2);
    assert!(
        errors
            .iter()
            .any(|e| e["roomId"] == 2101 && e["message"].as_str().unwrap().contains("404"))
    );
    assert_eq!(rig.stored(2101).await.len(), 3, "stored messages stay");
    let error = job.error.unwrap();
    assert!(error.name.as_str().starts_with("Chatwork"));
}

#[tokio::test]
async fn a_burst_of_server_errors_is_retried_to_success() {
    let rig = SyncRig::new(Backend::Embedded, vec![room_with_history(2201, 5)]).await;
    rig.rooms_sync().await;
    // Six 503s: the client's four attempts of the first delivery, then two of the next.
    rig.fake
        .inject(FaultScope::Room(2201), Fault::Status(503), Some(6));
    let job = rig.start_messages_sync(None).await;

    let mut source = rig.source(MessagesSync::QUEUE);
    source.batch_size = 1;
    eventually("the first delivery", Duration::from_secs(30), || async {
        source.poll_once(&rig.messages).await.unwrap() > 0
    })
    .await;
    let failed = rig.room(2201).await;
    assert_eq!(
        failed.last_error_status,
        Some(503),
        "recorded while it retries"
    );
    assert_eq!(rig.items(job.id).await[0].status, ItemStatus::Processing);

    let job = rig.run_to_end(job.id).await;
    assert_eq!(job.status, JobStatus::Completed);
    let item = &rig.items(job.id).await[0];
    assert_eq!((item.status, item.attempts), (ItemStatus::Completed, 2));
    assert_eq!(messages_requests(&rig.fake.requests()).len(), 7);
    let room = rig.room(2201).await;
    assert_eq!(
        (room.last_error_status, room.last_error_message),
        (None, None),
        "cleared by the success"
    );
    assert!(room.synced);
    assert_eq!(rig.stored(2201).await.len(), 5);
}

/// A consumer whose database connections go through a proxy the test can cut.
async fn consumer_behind(rig: &SyncRig, proxy: &TcpProxy) -> JobConsumer<MessagesSync> {
    let mut config = rig.db.config_via(proxy.addr());
    config.acquire_timeout = Duration::from_secs(1);
    let pool = cwsync::db::pool(&config).unwrap();
    JobConsumer::new(
        pool.clone(),
        rig.queues.clone(),
        sync_context(&rig.fake, &pool),
    )
}

#[tokio::test]
async fn the_database_going_away_mid_room_fails_the_record_and_the_retry_completes_it() {
    let rig = SyncRig::new(
        Backend::Embedded,
        vec![room_with_history(2301, 8), room_with_history(2302, 8)],
    )
    .await;
    rig.rooms_sync().await;
    let proxy = TcpProxy::start(rig.db.server_addr()).await;
    let consumer = consumer_behind(&rig, &proxy).await;

    // Room 2301: the database goes away while Chatwork answers, before the write.
    rig.fake.inject(
        FaultScope::Room(2301),
        Fault::Hang(Duration::from_millis(800)),
        Some(1),
    );
    let job = rig.start_messages_sync(Some(2301)).await;
    let mut source = rig.source(MessagesSync::QUEUE);
    source.batch_size = 1;
    let polled = {
        let (source, consumer) = (source.clone(), consumer.clone());
        tokio::spawn(async move { source.poll_once(&consumer).await.unwrap() })
    };
    eventually(
        "room 2301's request in flight",
        Duration::from_secs(10),
        || async { messages_requests(&rig.fake.requests()).contains(&2301) },
    )
    .await;
    proxy.cut();
    assert_eq!(polled.await.unwrap(), 1);
    assert!(rig.stored(2301).await.is_empty(), "nothing was written");
    assert_eq!(rig.items(job.id).await[0].status, ItemStatus::Processing);

    proxy.restore();
    let job = rig
        .run_until_with(&consumer, job.id, "the retry", |j| j.status.is_terminal())
        .await;
    assert_eq!(job.status, JobStatus::Completed);
    let item = &rig.items(job.id).await[0];
    assert_eq!((item.status, item.attempts), (ItemStatus::Completed, 2));
    assert_eq!(item.fetched, 8);
    assert_eq!(rig.stored(2301).await.len(), 8);
    assert_eq!(
        messages_requests(&rig.fake.requests())
            .iter()
            .filter(|r| **r == 2301)
            .count(),
        2
    );

    // Room 2302: the database goes away while the write waits for the job row. The
    // write stores the messages, the room's state and the item's end in one statement:
    // none of it commits. The test holds a lock on the job row that the
    // write waits for; then the proxy is cut and the waiting backend terminated.
    rig.fake.inject(
        FaultScope::Room(2302),
        Fault::Hang(Duration::from_millis(800)),
        Some(1),
    );
    let job = rig.start_messages_sync(Some(2302)).await;
    let mut blocker = sqlx::PgConnection::connect(rig.db.config.url.expose_secret())
        .await
        .unwrap();
    let polled = {
        let (source, consumer) = (source.clone(), consumer.clone());
        tokio::spawn(async move { source.poll_once(&consumer).await.unwrap() })
    };
    // Once the messages request is out, the item has its snapshot (whose row refers to
    // the job row) and writes nothing else that needs the job row until its write.
    eventually(
        "room 2302's request in flight",
        Duration::from_secs(10),
        || async { messages_requests(&rig.fake.requests()).contains(&2302) },
    )
    .await;
    let mut tx = blocker.begin().await.unwrap();
    sqlx::query("SELECT 1 FROM jobs WHERE id = $1 FOR UPDATE")
        .bind(job.id)
        .execute(&mut *tx)
        .await
        .unwrap();
    let waiting = || async {
        sqlx::query_scalar::<_, i32>(
            "SELECT pid FROM pg_stat_activity
              WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .fetch_all(rig.pool())
        .await
        .unwrap()
    };
    eventually(
        "the write waiting for the job row",
        Duration::from_secs(10),
        || async { !waiting().await.is_empty() },
    )
    .await;
    proxy.cut();
    for pid in waiting().await {
        sqlx::query("SELECT pg_terminate_backend($1)")
            .bind(pid)
            .execute(rig.pool())
            .await
            .unwrap();
    }
    tx.rollback().await.unwrap();
    assert_eq!(polled.await.unwrap(), 1);
    assert!(rig.stored(2302).await.is_empty(), "nothing was written");
    let item = &rig.items(job.id).await[0];
    assert_eq!(
        (item.status, item.result.as_ref()),
        (ItemStatus::Processing, None)
    );

    proxy.restore();
    let before = rig.fake.requests().len();
    let job = rig
        .run_until_with(&consumer, job.id, "the retry", |j| j.status.is_terminal())
        .await;
    assert_eq!(job.status, JobStatus::Completed);
    let item = &rig.items(job.id).await[0];
    assert_eq!(
        (item.status, item.fetched, item.attempts),
        (ItemStatus::Completed, 8, 2)
    );
    assert_eq!(item.result.as_ref().unwrap()["stored"], 8);
    assert_eq!(
        messages_requests(&rig.requests_since(before)),
        [2302],
        "the retry fetched the room again"
    );
    assert_eq!(rig.stored(2302).await.len(), 8);
    assert_eq!(job.result.unwrap()["storedMessages"], 8);
}

/// The server ends the batch's connection while a room's request is out (as a restart
/// of Postgres does: SQLSTATE 57P01): the write meets the ended session, and the record
/// runs again at once on a new connection rather than waiting for a redelivery.
#[tokio::test]
async fn a_session_the_server_ended_mid_record_is_replaced_and_the_record_runs_again() {
    let rig = SyncRig::new(Backend::Embedded, vec![room_with_history(2351, 6)]).await;
    rig.rooms_sync().await;
    let pool = cwsync::db::pool(&rig.db.config).unwrap();
    let consumer = JobConsumer::<MessagesSync>::new(
        pool.clone(),
        rig.queues.clone(),
        sync_context(&rig.fake, &pool),
    );
    rig.fake.inject(
        FaultScope::Room(2351),
        Fault::Hang(Duration::from_millis(800)),
        Some(1),
    );
    let job = rig.start_messages_sync(Some(2351)).await;
    let source = rig.source(MessagesSync::QUEUE);
    let polled = {
        let (source, consumer) = (source.clone(), consumer.clone());
        tokio::spawn(async move { source.poll_once(&consumer).await.unwrap() })
    };
    eventually(
        "room 2351's request in flight",
        Duration::from_secs(10),
        || async { messages_requests(&rig.fake.requests()).contains(&2351) },
    )
    .await;
    // Every session of the database but this one ends, the batch's connection with them.
    let mut admin = sqlx::PgConnection::connect(rig.db.config.url.expose_secret())
        .await
        .unwrap();
    sqlx::query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
          WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    .execute(&mut admin)
    .await
    .unwrap();
    assert_eq!(polled.await.unwrap(), 1);

    // The record did not fail: the job ended within the same poll.
    let job = rig.job(job.id).await;
    assert_eq!(job.status, JobStatus::Completed, "{job:?}");
    let item = &rig.items(job.id).await[0];
    assert_eq!(
        (item.status, item.fetched, item.attempts),
        (ItemStatus::Completed, 6, 2)
    );
    assert_eq!(rig.stored(2351).await.len(), 6, "each message once");
    assert_eq!(
        messages_requests(&rig.fake.requests())
            .iter()
            .filter(|r| **r == 2351)
            .count(),
        2,
        "the second run fetched the room again"
    );
}

#[tokio::test]
async fn a_spent_rate_budget_is_waited_out_inside_the_invocation() {
    super::count_metrics();
    // Three requests per two seconds: the rooms sync (its room list and one
    // description) and the messages sync's room list spend the first window; its two
    // rooms wait for the next one.
    let rooms: Vec<_> = (1..=2).map(|i| room_with_history(2400 + i, 2)).collect();
    let settings = fake_chatwork::FakeSettings::default()
        .with_rooms(rooms)
        .with_rate_limit(3, Duration::from_secs(2));
    let rig = SyncRig::with_fake(Backend::Embedded, settings).await;
    let job = rig.rooms_sync().await;
    assert_eq!(job.status, JobStatus::Completed);
    let waits_before = super::counter("chatwork_rate_limit_waits", &[]);

    let job = rig.messages_sync(None).await;
    assert_eq!(job.status, JobStatus::Completed, "{job:?}");
    for item in rig.items(job.id).await {
        assert_eq!(
            (item.status, item.attempts),
            (ItemStatus::Completed, 1),
            "{item:?}"
        );
    }
    assert_eq!(
        rig.fake.rate_limited_count(),
        0,
        "no 429: the budget waited"
    );
    assert!(super::counter("chatwork_rate_limit_waits", &[]) > waits_before);
}
