//! The function binaries under the Lambda emulator (`cargo lambda watch`), invoked with
//! real events against real Postgres and moto's SQS: what Lambda would hand them.
//!
//! One emulator serves every function of the workspace; the tests run one after another
//! in one test so that each binary is built once.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_lambda_events::sqs::SqsEvent;
use cwsync::jobs::{self, ItemStatus, JobStatus};
use cwsync::queue::{QueueName, Queues, SqsQueues};
use cwsync::sync::rooms::{RoomsSync, RoomsSyncPayload};
use cwsync_tests::{LambdaEmulator, SqsEmulator, TestDb, create_test_queues, sqs_emulator};
use secrecy::ExposeSecret;

struct World {
    db: TestDb,
    queues: SqsQueues,
    emulator: LambdaEmulator,
}

async fn world() -> World {
    let db = TestDb::new().await;
    let queues = create_test_queues(1, 4).await;
    let url = |q| queues.url(q).unwrap().to_owned();
    let env = BTreeMap::from([
        (
            "DATABASE_URL".to_owned(),
            db.config.url.expose_secret().to_owned(),
        ),
        ("ROOMS_SYNC_QUEUE_URL".to_owned(), url(QueueName::RoomsSync)),
        (
            "MESSAGES_SYNC_QUEUE_URL".to_owned(),
            url(QueueName::MessagesSync),
        ),
        (
            "SUMMARY_DRAFT_QUEUE_URL".to_owned(),
            url(QueueName::SummaryDraft),
        ),
        (
            "AWS_ENDPOINT_URL".to_owned(),
            sqs_emulator().endpoint.clone(),
        ),
        ("AWS_REGION".to_owned(), SqsEmulator::REGION.to_owned()),
        ("AWS_ACCESS_KEY_ID".to_owned(), "test".to_owned()),
        ("AWS_SECRET_ACCESS_KEY".to_owned(), "test".to_owned()),
        ("RUST_LOG".to_owned(), "info".to_owned()),
    ]);
    World {
        emulator: LambdaEmulator::start(&env),
        db,
        queues,
    }
}

/// Receives what is in `queue` (moto), as Lambda's event source mapping would.
async fn receive_batch(queues: &SqsQueues, queue: QueueName) -> SqsEvent {
    let mut event = SqsEvent::default();
    for _ in 0..50 {
        event.records = queues.receive(queue, 10, Duration::ZERO).await.unwrap();
        if !event.records.is_empty() {
            return event;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("nothing arrived in {queue}");
}

#[tokio::test]
async fn function_binaries_answer_real_events() {
    let world = world().await;
    scheduler_runs_its_tasks(&world).await;
    dlq_fails_the_item_of_a_dead_lettered_message(&world).await;
}

async fn scheduler_runs_its_tasks(world: &World) {
    let pool = &world.db.pool;
    sqlx::query("INSERT INTO chatwork_rooms (room_id, name, room_type) VALUES (11, 'a', 'group'), (12, 'b', 'group')")
        .execute(pool)
        .await
        .unwrap();
    // A schedule's constant input.
    let (status, report) = world
        .emulator
        .invoke("scheduler", &serde_json::json!({"task": "messages-sync"}))
        .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["task"], "messages-sync", "{report}");
    assert_eq!(report["created"], true);
    let job_id: uuid::Uuid = report["jobId"].as_str().unwrap().parse().unwrap();
    let job = jobs::get(pool, job_id).await.unwrap().unwrap();
    assert_eq!(
        (job.status, job.total_items, job.user_id),
        (JobStatus::Queued, 2, None)
    );
    assert_eq!(
        world.queues.depth(QueueName::MessagesSync).await.unwrap(),
        2
    );

    // An EventBridge event carrying the task in its detail.
    let scheduled = serde_json::json!({
        "version": "0",
        "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": "2026-11-22T03:30:00Z",
        "region": "us-east-1",
        "resources": ["arn:aws:events:us-east-1:123456789012:rule/cwsync-sweep"],
        "detail": {"task": "sweep"}
    });
    let (status, report) = world.emulator.invoke("scheduler", &scheduled).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["task"], "sweep", "{report}");

    let (status, report) = world
        .emulator
        .invoke("scheduler", &serde_json::json!({"task": "migrate"}))
        .await;
    assert_eq!(
        (status, &report["task"]),
        (200, &serde_json::json!("migrate")),
        "{report}"
    );

    // An event that names no task is an error, not a crash.
    let (status, answer) = world
        .emulator
        .invoke("scheduler", &serde_json::json!({"task": "nap"}))
        .await;
    assert_ne!(status, 200, "{answer}");
    assert!(
        answer.to_string().contains("names no known task"),
        "{answer}"
    );
}

async fn dlq_fails_the_item_of_a_dead_lettered_message(world: &World) {
    let pool = &world.db.pool;
    let started = jobs::start::<RoomsSync>(pool, &world.queues, &RoomsSyncPayload {}, Some("u1"))
        .await
        .unwrap();
    // The message that exhausted its retries, as it sits in the dead-letter queue.
    let item = &jobs::items(pool, started.job.id).await.unwrap()[0];
    world
        .queues
        .send(
            QueueName::RoomsSyncDlq,
            &[cwsync::queue::OutgoingMessage {
                group_id: "rooms".into(),
                deduplication_id: format!("{}:rooms", started.job.id),
                body: item.message.to_string(),
            }],
        )
        .await
        .unwrap();
    let event = receive_batch(&world.queues, QueueName::RoomsSyncDlq).await;
    let (status, response) = world
        .emulator
        .invoke("dlq", &serde_json::to_value(&event).unwrap())
        .await;
    assert_eq!(status, 200, "{response}");
    assert_eq!(
        response["batchItemFailures"],
        serde_json::json!([]),
        "{response}"
    );
    let job = jobs::get(pool, started.job.id).await.unwrap().unwrap();
    assert_eq!(job.status, JobStatus::Failed);
    let item = &jobs::items(pool, job.id).await.unwrap()[0];
    assert_eq!(item.status, ItemStatus::Failed);
    assert!(
        item.error.as_ref().unwrap()["message"]
            .as_str()
            .unwrap()
            .starts_with("moved to the dead-letter queue after 4 receives")
    );
}
