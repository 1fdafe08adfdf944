//! Messages sync: incremental by the job's room-list snapshot, stored once, edits,
//! companies, gaps, numeric ids, cancellation.

use cwsync::jobs::JobSpec as _;

use std::time::Duration;

use cwsync::jobs::{ItemStatus, JobConsumer, JobStatus};
use cwsync::sync::messages::MessagesSync;
use cwsync_tests::eventually;
use fake_chatwork::{Fault, FaultScope};
use serde_json::json;
use uuid::Uuid;

use super::{
    Backend, SyncRig, count_metrics, counter, messages_requests, now_secs, poster,
    room_list_requests, room_with_history, sync_context,
};

/// `GET /api/chatwork/rooms` as an admin, served over the rig's database.
async fn rooms_json(rig: &SyncRig) -> serde_json::Value {
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
    let response = reqwest::Client::new()
        .get(format!("http://{address}/api/chatwork/rooms"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body = response.json().await.unwrap();
    server.abort();
    body
}

async fn company(rig: &SyncRig, name: &str) -> Uuid {
    sqlx::query_scalar("INSERT INTO companies (name) VALUES ($1) RETURNING id")
        .bind(name)
        .fetch_one(rig.pool())
        .await
        .unwrap()
}

async fn link(rig: &SyncRig, company: Uuid, room_id: i64) {
    sqlx::query(
        "INSERT INTO company_room_links (company_id, chatwork_room_id)
         SELECT $1, id FROM chatwork_rooms WHERE room_id = $2",
    )
    .bind(company)
    .bind(room_id)
    .execute(rig.pool())
    .await
    .unwrap();
}

#[tokio::test]
async fn twenty_rooms_of_which_three_changed_cost_one_room_list_and_three_fetches() {
    let rooms: Vec<_> = (1..=20).map(|i| room_with_history(8000 + i, 5)).collect();
    let rig = SyncRig::new(Backend::Sqs, rooms).await;
    rig.rooms_sync().await;

    let before = rig.fake.requests().len();
    let job = rig.messages_sync(None).await;
    assert_eq!(job.status, JobStatus::Completed, "{job:?}");
    let requests = rig.requests_since(before);
    assert_eq!(room_list_requests(&requests), 1);
    assert_eq!(messages_requests(&requests).len(), 20);
    let result = job.result.unwrap();
    assert_eq!(result["processedRooms"], 20);
    assert_eq!(result["storedMessages"], 100);
    assert_eq!(result["requests"], 21);

    // Three rooms change; a rooms sync in between moves their `chatwork_updated_at` and
    // must not hide the change from the next messages sync.
    for room in [8003, 8011, 8017] {
        rig.fake.post_message(room, &poster(), "変更あり").unwrap();
    }
    rig.rooms_sync().await;
    let before = rig.fake.requests().len();
    let job = rig.messages_sync(None).await;
    let requests = rig.requests_since(before);
    assert_eq!(
        requests.len(),
        4,
        "one GET /rooms and three messages requests: {requests:?}"
    );
    assert_eq!(room_list_requests(&requests), 1);
    let mut fetched = messages_requests(&requests);
    fetched.sort();
    assert_eq!(fetched, [8003, 8011, 8017]);
    assert!(
        requests
            .iter()
            .all(|r| r.query.as_deref() != Some("force=1") || r.path.ends_with("/messages"))
    );
    let result = job.result.unwrap();
    assert_eq!(result["unchangedRooms"], 17);
    assert_eq!(result["processedRooms"], 20);
    assert_eq!(result["storedMessages"], 3);
    assert_eq!(result["requests"], 4);
    assert_eq!(result["errors"], json!([]));
    assert_eq!(rig.stored(8011).await.len(), 6);

    // A single-room sync always fetches, changed or not.
    let before = rig.fake.requests().len();
    let job = rig.messages_sync(Some(8005)).await;
    assert_eq!(rig.items(job.id).await[0].status, ItemStatus::Completed);
    assert_eq!(messages_requests(&rig.requests_since(before)), [8005]);
}

#[tokio::test]
async fn messages_are_stored_once_when_two_deliveries_run_the_same_room() {
    let rig = SyncRig::new(Backend::Embedded, vec![room_with_history(901, 30)]).await;
    rig.rooms_sync().await;
    // The messages request is held past the queue's visibility timeout (300 ms), so the
    // message is delivered again to a second consumer while the first still works.
    rig.fake.inject(
        FaultScope::Room(901),
        Fault::Hang(Duration::from_millis(1200)),
        Some(1),
    );
    let job = rig.start_messages_sync(None).await;
    let first = {
        let source = rig.source(MessagesSync::QUEUE);
        let consumer = rig.messages.clone();
        tokio::spawn(async move { source.poll_once(&consumer).await.unwrap() })
    };
    eventually(
        "the first delivery's request",
        Duration::from_secs(10),
        || async { messages_requests(&rig.fake.requests()).contains(&901) },
    )
    .await;
    let second_consumer: JobConsumer<MessagesSync> = JobConsumer::new(
        rig.db.another_pool(),
        rig.queues.clone(),
        sync_context(&rig.fake, rig.pool()),
    );
    let source = rig.source(MessagesSync::QUEUE);
    eventually("the redelivery", Duration::from_secs(10), || async {
        source.poll_once(&second_consumer).await.unwrap() > 0
    })
    .await;
    assert_eq!(first.await.unwrap(), 1);
    let job = rig.run_to_end(job.id).await;

    assert_eq!(job.status, JobStatus::Completed);
    let items = rig.items(job.id).await;
    assert_eq!(items[0].status, ItemStatus::Completed);
    assert_eq!(items[0].attempts, 2, "both deliveries started the item");
    let stored = rig.stored(901).await;
    assert_eq!(stored.len(), 30);
    let mut ids: Vec<_> = stored.iter().map(|(id, _, _)| id.clone()).collect();
    ids.dedup();
    assert_eq!(ids.len(), 30);
    assert_eq!(job.result.unwrap()["processedRooms"], 1);
}

#[tokio::test]
async fn an_edit_updates_the_stored_body() {
    let rig = SyncRig::new(Backend::Embedded, vec![room_with_history(1001, 4)]).await;
    rig.rooms_sync().await;
    rig.messages_sync(None).await;
    let id = rig.stored(1001).await[1].0.clone();

    assert!(rig.fake.edit_message(1001, &id, "修正しました"));
    let before = rig.fake.requests().len();
    let job = rig.messages_sync(None).await;
    assert_eq!(messages_requests(&rig.requests_since(before)), [1001]);
    let result = job.result.unwrap();
    assert_eq!(
        (
            result["editedMessages"].clone(),
            result["storedMessages"].clone()
        ),
        (json!(1), json!(0))
    );
    let stored = rig.stored(1001).await;
    assert_eq!(stored.len(), 4);
    assert_eq!(stored[1].1, "修正しました");
    let update_time: Option<chrono::DateTime<chrono::Utc>> =
        sqlx::query_scalar("SELECT update_time FROM messages WHERE message_id = $1")
            .bind(&id)
            .fetch_one(rig.pool())
            .await
            .unwrap();
    assert!(update_time.is_some());

    // The same edit seen again changes nothing.
    let job = rig.messages_sync(Some(1001)).await;
    assert_eq!(job.result.unwrap()["editedMessages"], 0);
    assert_eq!(rig.stored(1001).await[1].1, "修正しました");
}

#[tokio::test]
async fn new_messages_get_the_company_only_when_the_room_has_exactly_one() {
    let rig = SyncRig::new(
        Backend::Embedded,
        vec![
            room_with_history(1101, 2),
            room_with_history(1102, 2),
            room_with_history(1103, 2),
        ],
    )
    .await;
    rig.rooms_sync().await;
    let acme = company(&rig, "Acme").await;
    let globex = company(&rig, "Globex").await;
    link(&rig, acme, 1101).await;
    link(&rig, acme, 1103).await;
    link(&rig, globex, 1103).await;

    rig.messages_sync(None).await;
    let companies = |stored: Vec<(String, String, Option<Uuid>)>| {
        stored.into_iter().map(|(_, _, c)| c).collect::<Vec<_>>()
    };
    assert_eq!(companies(rig.stored(1101).await), [Some(acme), Some(acme)]);
    assert_eq!(companies(rig.stored(1102).await), [None, None]);
    assert_eq!(companies(rig.stored(1103).await), [None, None]);

    // Linked later to one company: new messages get it, stored ones keep theirs.
    link(&rig, globex, 1102).await;
    rig.fake.post_message(1102, &poster(), "later").unwrap();
    rig.messages_sync(None).await;
    assert_eq!(
        companies(rig.stored(1102).await),
        [None, None, Some(globex)]
    );
}

#[tokio::test]
async fn a_gap_is_detected_recorded_reported_and_counted() {
    count_metrics();
    let rig = SyncRig::new(Backend::Embedded, vec![room_with_history(1201, 10)]).await;
    rig.rooms_sync().await;
    let job = rig.messages_sync(None).await;
    assert_eq!(job.result.unwrap()["gaps"], json!([]));
    assert!(!rig.room(1201).await.gap);

    // 150 messages arrive before the next sync: one request returns the newest 100.
    for i in 0..150 {
        rig.fake
            .post_message(1201, &poster(), &format!("burst {i}"))
            .unwrap();
    }
    let gaps_before = counter("sync_gaps_detected", &[]);
    let stored_before = counter("messages_stored", &[]);
    let job = rig.messages_sync(None).await;
    let result = job.result.unwrap();
    assert_eq!(
        result["gaps"],
        json!([{"roomId": 1201, "missedEstimate": 50}])
    );
    assert_eq!(result["storedMessages"], 100);
    let room = rig.room(1201).await;
    assert!(room.gap);
    assert_eq!(room.gap_missed_estimate, Some(50));
    assert!(counter("sync_gaps_detected", &[]) > gaps_before);
    // Other tests of this process sync too: the counter grew by at least this job's.
    assert!(counter("messages_stored", &[]) >= stored_before + 100);
    assert!(counter("chatwork_requests", &[("status", "200")]) > 0);

    // The rooms API shows it.
    let rooms = rooms_json(&rig).await;
    let room = &rooms["items"][0];
    assert_eq!(room["gapMissedEstimate"], 50);
    assert!(room["gapDetectedAt"].is_string());
    assert_eq!(room["leftAt"], serde_json::Value::Null);
    assert!(room.get("syncedMessageNum").is_none());

    // A quiet sync after it reports no new gap, and the room keeps the one it had.
    rig.fake.post_message(1201, &poster(), "quiet").unwrap();
    let job = rig.messages_sync(None).await;
    assert_eq!(job.result.unwrap()["gaps"], json!([]));
    assert_eq!(rig.room(1201).await.gap_missed_estimate, Some(50));
}

#[tokio::test]
async fn message_ids_compare_as_numbers_not_text() {
    let rig = SyncRig::new(Backend::Embedded, vec![room_with_history(1301, 0)]).await;
    rig.rooms_sync().await;
    // As text "99" > "100" and "9999999999999999999" > "10000000000000000000".
    rig.fake
        .post_message_with_id(1301, "99", &poster(), "a")
        .unwrap();
    rig.fake
        .post_message_with_id(1301, "100", &poster(), "b")
        .unwrap();
    rig.messages_sync(None).await;
    assert_eq!(rig.room(1301).await.last_message_id.as_deref(), Some("100"));

    rig.fake
        .post_message_with_id(1301, "9999999999999999999", &poster(), "c")
        .unwrap();
    rig.fake
        .post_message_with_id(1301, "10000000000000000000", &poster(), "d")
        .unwrap();
    let job = rig.messages_sync(None).await;
    assert_eq!(job.result.unwrap()["storedMessages"], 2);
    assert_eq!(
        rig.room(1301).await.last_message_id.as_deref(),
        Some("10000000000000000000")
    );
    let order: Vec<_> = rig
        .stored(1301)
        .await
        .into_iter()
        .map(|(id, _, _)| id)
        .collect();
    assert_eq!(
        order,
        ["99", "100", "9999999999999999999", "10000000000000000000"]
    );
}

#[tokio::test]
async fn a_cancel_mid_job_stops_before_the_next_room() {
    let rig = SyncRig::new(
        Backend::Embedded,
        vec![
            room_with_history(1401, 2),
            room_with_history(1402, 2),
            room_with_history(1403, 2),
        ],
    )
    .await;
    rig.rooms_sync().await;
    rig.fake.inject(
        FaultScope::Room(1402),
        Fault::Hang(Duration::from_millis(1500)),
        Some(1),
    );
    let job = rig.start_messages_sync(None).await;
    // One batch, in order: 1401, then 1402 (held), then 1403.
    let source = rig.source(MessagesSync::QUEUE);
    let consumer = rig.messages.clone();
    let polling = tokio::spawn(async move { source.poll_once(&consumer).await.unwrap() });
    eventually(
        "room 1402's request in flight",
        Duration::from_secs(10),
        || async { messages_requests(&rig.fake.requests()).contains(&1402) },
    )
    .await;
    cwsync::jobs::cancel(rig.pool(), &cwsync::job_types::registry(), job.id)
        .await
        .unwrap();
    assert_eq!(polling.await.unwrap(), 3);

    let job = rig.job(job.id).await;
    assert_eq!(job.status, JobStatus::Canceled);
    let statuses: Vec<_> = rig.items(job.id).await.iter().map(|i| i.status).collect();
    assert_eq!(
        statuses,
        [
            ItemStatus::Completed,
            ItemStatus::Canceled,
            ItemStatus::Canceled
        ]
    );
    assert_eq!(rig.stored(1401).await.len(), 2);
    assert!(
        rig.stored(1402).await.is_empty(),
        "checked before the write"
    );
    assert!(!messages_requests(&rig.fake.requests()).contains(&1403));
    let result = job.result.unwrap();
    assert_eq!(
        (
            result["processedRooms"].clone(),
            result["canceledRooms"].clone()
        ),
        (json!(1), json!(2))
    );
}

#[tokio::test]
async fn concurrent_consumers_of_one_job_share_one_room_list() {
    let rig = SyncRig::new(
        Backend::Embedded,
        vec![room_with_history(1501, 1), room_with_history(1502, 1)],
    )
    .await;
    rig.rooms_sync().await;
    // The room list answers slowly, so both consumers need it at the same time.
    rig.fake.inject(
        FaultScope::Any,
        Fault::Delay(Duration::from_millis(800)),
        Some(1),
    );
    let before = rig.fake.requests().len();
    let job = rig.start_messages_sync(None).await;
    let mut pollers = Vec::new();
    for _ in 0..2 {
        let mut source = rig.source(MessagesSync::QUEUE);
        source.batch_size = 1;
        let consumer: JobConsumer<MessagesSync> = JobConsumer::new(
            rig.db.another_pool(),
            rig.queues.clone(),
            sync_context(&rig.fake, rig.pool()),
        );
        pollers.push(tokio::spawn(async move {
            source.poll_once(&consumer).await.unwrap()
        }));
    }
    for poller in pollers {
        assert_eq!(poller.await.unwrap(), 1);
    }
    let job = rig.run_to_end(job.id).await;
    assert_eq!(job.result.unwrap()["processedRooms"], 2);
    let requests = rig.requests_since(before);
    assert_eq!(room_list_requests(&requests), 1, "{requests:?}");
    assert_eq!(messages_requests(&requests).len(), 2);
}

#[tokio::test]
async fn a_claim_left_by_a_dead_consumer_is_taken_over() {
    let rig = SyncRig::new(Backend::Embedded, vec![room_with_history(1601, 1)]).await;
    rig.rooms_sync().await;
    let job = rig.start_messages_sync(None).await;
    // A consumer claimed the room list ten minutes ago and died.
    sqlx::query(
        "INSERT INTO job_room_snapshots (job_id, claim, claimed_at)
         VALUES ($1, gen_random_uuid(), now() - interval '10 minutes')",
    )
    .bind(job.id)
    .execute(rig.pool())
    .await
    .unwrap();
    let job = rig.run_to_end(job.id).await;
    assert_eq!(job.status, JobStatus::Completed);
    assert_eq!(job.result.unwrap()["processedRooms"], 1);
    let taken: bool =
        sqlx::query_scalar("SELECT taken_at >= $2 FROM job_room_snapshots WHERE job_id = $1")
            .bind(job.id)
            .bind(chrono::DateTime::from_timestamp(now_secs() - 120, 0).unwrap())
            .fetch_one(rig.pool())
            .await
            .unwrap();
    assert!(taken);
}
