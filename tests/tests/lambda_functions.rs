//! The function binaries under the Lambda emulator (`cargo lambda watch`), invoked with
//! real events against real Postgres and moto's SQS: what Lambda would hand them.
//!
//! One emulator serves every function of the workspace; the tests run one after another
//! in one test so that each binary is built once.

use cwsync::jobs::JobSpec as _;
use cwsync::sync::messages::MessagesSync;

use std::collections::BTreeMap;
use std::time::Duration;

use aws_lambda_events::sqs::SqsEvent;
use cwsync::jobs::{self, ItemStatus, JobStatus};
use cwsync::queue::{QueueName, Queues, SqsQueues};
use cwsync::schedule::Task;
use cwsync::schedule::runs::{self, Requested, RunStatus};
use cwsync::summary::{SummaryDraft, SummaryDraftPayload};
use cwsync::sync::rooms::{RoomsSync, RoomsSyncPayload};
use cwsync_tests::{
    AwsRecorder, LambdaEmulator, SqsEmulator, TestDb, create_test_queues, sqs_emulator,
};
use fake_chatwork::{Account, FakeChatwork, FakeSettings, RoomType};
use secrecy::ExposeSecret;

struct World {
    db: TestDb,
    queues: SqsQueues,
    fake: FakeChatwork,
    emulator: LambdaEmulator,
    /// The functions' AWS calls, on their way to moto.
    aws: AwsRecorder,
    /// Where the functions' X-Ray daemon would listen (`AWS_XRAY_DAEMON_ADDRESS`).
    xray_daemon: std::net::UdpSocket,
}

/// Chatwork rooms 11 and 12 (which the scheduler's test registers too) and 13, with a
/// few messages each.
async fn fake_chatwork() -> FakeChatwork {
    let fake = FakeChatwork::start(FakeSettings::default()).await;
    let author = Account::new(7, "山田 太郎");
    for room_id in [11, 12, 13] {
        fake.add_room(fake_chatwork::Room::new(
            room_id,
            format!("room {room_id}"),
            RoomType::Group,
        ));
        for i in 0..3 {
            fake.post_message(room_id, &author, &format!("message {i}"))
                .unwrap();
        }
    }
    fake
}

async fn world() -> World {
    let db = TestDb::new().await;
    let fake = fake_chatwork().await;
    let queues = create_test_queues(1, 4).await;
    let url = |q| queues.url(q).unwrap().to_owned();
    let aws = AwsRecorder::start(&sqs_emulator().endpoint).await;
    let xray_daemon = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    xray_daemon.set_nonblocking(true).unwrap();
    let env = BTreeMap::from([
        (
            "AWS_XRAY_DAEMON_ADDRESS".to_owned(),
            xray_daemon.local_addr().unwrap().to_string(),
        ),
        (
            "DATABASE_URL".to_owned(),
            db.config.url.expose_secret().to_owned(),
        ),
        ("ROOMS_SYNC_QUEUE_URL".to_owned(), url(RoomsSync::QUEUE)),
        (
            "MESSAGES_SYNC_QUEUE_URL".to_owned(),
            url(MessagesSync::QUEUE),
        ),
        (
            "SUMMARY_DRAFT_QUEUE_URL".to_owned(),
            url(SummaryDraft::QUEUE),
        ),
        ("AWS_ENDPOINT_URL".to_owned(), aws.endpoint.clone()),
        ("AWS_REGION".to_owned(), SqsEmulator::REGION.to_owned()),
        ("AWS_ACCESS_KEY_ID".to_owned(), "test".to_owned()),
        ("AWS_SECRET_ACCESS_KEY".to_owned(), "test".to_owned()),
        ("RUST_LOG".to_owned(), "info".to_owned()),
        // One room check per invocation (deployed, four a minute 15 s apart: the
        // invocation would last 45 s).
        ("ROOM_CHECK_EVERY_SECONDS".to_owned(), "60".to_owned()),
        // What the template's LoggingConfig makes Lambda set.
        ("AWS_LAMBDA_LOG_FORMAT".to_owned(), "JSON".to_owned()),
        // The token as a deployed function gets it: from Secrets Manager, by ARN.
        (
            "CHATWORK_API_TOKEN_SECRET_ARN".to_owned(),
            sqs_emulator()
                .create_secret(
                    &format!("cwsync-test-{}", uuid::Uuid::new_v4()),
                    &serde_json::json!({"token": fake.token()}).to_string(),
                )
                .await,
        ),
        ("CHATWORK_API_BASE_URL".to_owned(), fake.base_url()),
        // The webhook tokens as the template gives them: a secret, by ARN.
        (
            "CHATWORK_WEBHOOK_TOKENS_SECRET_ARN".to_owned(),
            sqs_emulator()
                .create_secret(
                    &format!("cwsync-test-webhooks-{}", uuid::Uuid::new_v4()),
                    &serde_json::json!({"tokens": [WEBHOOK_TOKEN]}).to_string(),
                )
                .await,
        ),
    ]);
    World {
        emulator: LambdaEmulator::start(&env),
        db,
        queues,
        fake,
        aws,
        xray_daemon,
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
    api_answers_an_http_api_event(&world).await;
    dlq_fails_the_item_of_a_dead_lettered_message(&world).await;
    sync_functions_run_their_jobs(&world).await;
    summary_function_drafts_a_summary(&world).await;
    logs_and_metrics_reach_stdout_as_cloudwatch_reads_them(&world);
    scheduler_checks_the_rooms(&world).await;
    api_receives_a_chatwork_webhook(&world).await;
    a_sync_is_followed_by_its_trace_from_the_api_to_the_consumer(&world).await;
}

/// The trace Lambda gives the API function's invocation that starts a rooms sync: the
/// function sends it with the job's message (`AWSTraceHeader` on the `SendMessageBatch`
/// entry); SQS delivers it with the record, and the rooms-sync function continues it:
/// its log lines (the record, its Chatwork request) carry the same trace id, as do the
/// API function's (its SQS call).
async fn a_sync_is_followed_by_its_trace_from_the_api_to_the_consumer(world: &World) {
    let mut event: serde_json::Value = serde_json::from_str(include_str!(
        "integration/api/fixtures/apigw-v2-rooms-cognito-admin.json"
    ))
    .unwrap();
    event["rawPath"] = "/api/chatwork/rooms/sync".into();
    event["requestContext"]["http"]["path"] = "/api/chatwork/rooms/sync".into();
    event["requestContext"]["http"]["method"] = "POST".into();
    let sent_before = world.aws.calls("AmazonSQS.SendMessageBatch").len();
    // What earlier invocations sent to the daemon is not this trace's; drop it so that
    // the socket's buffer has room.
    while world.xray_daemon.recv(&mut [0; 65_536]).is_ok() {}
    let (status, response) = world.emulator.invoke("api", &event).await;
    assert_eq!(status, 200, "{response}");
    assert_eq!(response["statusCode"], 202, "{response}");
    let job: serde_json::Value = serde_json::from_str(response["body"].as_str().unwrap()).unwrap();
    let job_id: uuid::Uuid = job["id"].as_str().unwrap().parse().unwrap();

    // The header left the API function on its SQS call.
    let sends = world.aws.calls("AmazonSQS.SendMessageBatch");
    assert_eq!(sends.len(), sent_before + 1, "one SendMessageBatch");
    let entries = sends.last().unwrap().body["Entries"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(entries.len(), 1);
    let sent = entries[0]["MessageSystemAttributes"]["AWSTraceHeader"].clone();
    assert_eq!(sent["DataType"], "String", "{entries:?}");
    let sent = sent["StringValue"]
        .as_str()
        .expect("AWSTraceHeader")
        .to_owned();
    let header = cwsync::trace::TraceHeader::parse(&sent).expect("an X-Ray header");
    let root = header.root().to_owned();
    // It is the invocation's own trace, as Lambda gave it to the function.
    let lines = || -> Vec<serde_json::Value> {
        world
            .emulator
            .stdout_lines()
            .iter()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|l| l["traceId"] == root.as_str())
            .collect()
    };
    let api_call = lines()
        .into_iter()
        .find(|l| l["fields"]["message"] == "close" && l["span"]["name"] == "sqs")
        .unwrap_or_else(|| panic!("no SQS call logged with trace id {root}"));
    assert_eq!(api_call["span"]["action"], "SendMessageBatch", "{api_call}");
    let invocation_trace = api_call["spans"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|span| span["xrayTraceId"].as_str());
    assert!(
        invocation_trace.is_some_and(|t| t.contains(&root)),
        "the invocation's trace: {api_call}"
    );

    // SQS delivers it with the record. moto 5.2 keeps system attributes only from
    // SendMessage, not from SendMessageBatch; where it dropped it, the record gets what
    // SQS delivers: the header the entry carried.
    let mut batch = receive_batch(&world.queues, RoomsSync::QUEUE).await;
    let record = batch
        .records
        .iter_mut()
        .find(|r| {
            r.body
                .as_deref()
                .is_some_and(|b| b.contains(&job_id.to_string()))
        })
        .expect("the job's message");
    let delivered = record
        .attributes
        .entry(cwsync::trace::SQS_TRACE_ATTRIBUTE.to_owned())
        .or_insert_with(|| sent.clone());
    assert_eq!(*delivered, sent);
    let (status, response) = world
        .emulator
        .invoke("rooms-sync", &serde_json::to_value(&batch).unwrap())
        .await;
    assert_eq!(status, 200, "{response}");
    assert_eq!(
        response["batchItemFailures"],
        serde_json::json!([]),
        "{response}"
    );
    let job = jobs::get(&world.db.pool, job_id).await.unwrap().unwrap();
    assert_eq!(job.status, JobStatus::Completed, "{job:?}");

    // The consumer's lines of this record carry the same trace id: the record and its
    // Chatwork request (each span logged when it closes).
    let traced = lines();
    let closed = |name: &str| {
        traced
            .iter()
            .filter(|l| l["fields"]["message"] == "close" && l["span"]["name"] == name)
            .count()
    };
    assert!(
        closed("chatwork") >= 1,
        "the consumer's Chatwork request: {traced:?}"
    );
    assert_eq!(closed("record"), 1, "the consumer's record: {traced:?}");
    let record_line = traced
        .iter()
        .find(|l| l["span"]["name"] == "record")
        .unwrap();
    assert_eq!(
        record_line["span"]["trace_id"],
        root.as_str(),
        "{record_line}"
    );
    // The consumer's invocation has its own trace; the record's lines are the request's.
    assert!(
        traced
            .iter()
            .any(|l| l["span"]["name"] == "chatwork"
                && l["spans"].to_string().contains("\"record\"")),
        "{traced:?}"
    );

    // X-Ray's daemon got the trace's subsegments: the API function's SQS call, the
    // consumer's Chatwork request and statements, all under the header's parent.
    let mut buffer = [0; 65_536];
    let mut subsegments = Vec::new();
    while let Ok(size) = world.xray_daemon.recv(&mut buffer) {
        let datagram = std::str::from_utf8(&buffer[..size]).unwrap();
        let (head, document) = datagram.split_once('\n').expect("a header line");
        assert_eq!(head, r#"{"format": "json", "version": 1}"#);
        let document: serde_json::Value = serde_json::from_str(document).unwrap();
        if document["trace_id"] == root.as_str() {
            subsegments.push(document);
        }
    }
    let named = |name: &str| subsegments.iter().filter(|d| d["name"] == name).count();
    assert!(named("SQS") >= 1, "header {sent}: {subsegments:?}");
    assert!(named("chatwork") >= 1, "{subsegments:?}");
    assert!(named("postgres") >= 1, "{subsegments:?}");
    for document in &subsegments {
        assert_eq!(
            document["parent_id"],
            header.parent().unwrap(),
            "{document}"
        );
    }
}

/// The token of the webhook whose delivery `apigw-v2-chatwork-webhook.json` records.
const WEBHOOK_TOKEN: &str = "bGFtYmRhLXdlYmhvb2stdG9rZW4=";

/// A Chatwork webhook delivery as API Gateway hands it to the API function (the route
/// without the JWT authorizer): the signature verifies under the token the function
/// reads from Secrets Manager, and the message is stored before the answer. The same
/// event with its body changed is a 401 that stores nothing.
async fn api_receives_a_chatwork_webhook(world: &World) {
    let event: serde_json::Value = serde_json::from_str(include_str!(
        "integration/api/fixtures/apigw-v2-chatwork-webhook.json"
    ))
    .unwrap();
    let stored = || async {
        sqlx::query_scalar::<_, String>(
            "SELECT body FROM messages WHERE room_id = 11 AND message_id = '1764500000000000001'",
        )
        .fetch_optional(&world.db.pool)
        .await
        .unwrap()
    };
    let mut forged = event.clone();
    forged["body"] = event["body"]
        .as_str()
        .unwrap()
        .replace("recorded event", "forged event!")
        .into();
    let (status, response) = world.emulator.invoke("api", &forged).await;
    assert_eq!(status, 200, "{response}");
    assert_eq!(response["statusCode"], 401, "{response}");
    assert_eq!(stored().await, None);

    let (status, response) = world.emulator.invoke("api", &event).await;
    assert_eq!(status, 200, "{response}");
    assert_eq!(response["statusCode"], 200, "{response}");
    let body: serde_json::Value = serde_json::from_str(response["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["outcome"], "stored", "{body}");
    assert_eq!(
        stored().await.as_deref(),
        Some("webhook from the recorded event")
    );
}

/// The room check as EventBridge invokes it every minute: the scheduler reads the room
/// list with the token from Secrets Manager and sends only the rooms that need a fetch
/// (room 13 was registered by the rooms sync, never fetched), which the messages-sync
/// function then fetches.
async fn scheduler_checks_the_rooms(world: &World) {
    let pool = &world.db.pool;
    let (status, run) = world
        .emulator
        .invoke("scheduler", &serde_json::json!({"task": "room-check"}))
        .await;
    assert_eq!(status, 200, "{run}");
    assert_eq!(
        (&run["task"], &run["status"]),
        (
            &serde_json::json!("room-check"),
            &serde_json::json!("completed")
        ),
        "{run}"
    );
    let report = &run["report"];
    assert_eq!(report["task"], "room-check", "{report}");
    assert_eq!(report["outcome"], "fetching", "{report}");
    assert_eq!(report["listed"], 3, "{report}");
    assert!(
        report["planned"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!(13)),
        "{report}"
    );
    let job_id: uuid::Uuid = report["jobId"].as_str().unwrap().parse().unwrap();
    let job = feed_until_finished(world, MessagesSync::QUEUE, "messages-sync", job_id).await;
    assert_eq!(job.status, JobStatus::Completed, "{job:?}");
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM messages WHERE room_id = 13")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(stored, 3);
}

/// An API Gateway HTTP API (payload v2) request, as recorded, with a JWT authorizer's
/// claims naming an admin through `cognito:groups`.
async fn api_answers_an_http_api_event(world: &World) {
    let event: serde_json::Value = serde_json::from_str(include_str!(
        "integration/api/fixtures/apigw-v2-rooms-cognito-admin.json"
    ))
    .unwrap();
    let (status, response) = world.emulator.invoke("api", &event).await;
    assert_eq!(status, 200, "{response}");
    assert_eq!(response["statusCode"], 200, "{response}");
    let body: serde_json::Value =
        serde_json::from_str(response["body"].as_str().expect("a text body")).unwrap();
    let rooms: Vec<i64> = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["roomId"].as_i64().unwrap())
        .collect();
    // The rooms the scheduler's test registered.
    assert_eq!(rooms.len(), 2, "{body}");
    assert!(rooms.contains(&11) && rooms.contains(&12), "{body}");

    // Health reaches the queues (moto): the SQS client the function builds on first
    // use works.
    let mut health = event.clone();
    health["rawPath"] = "/api/health".into();
    health["requestContext"]["http"]["path"] = "/api/health".into();
    let (status, response) = world.emulator.invoke("api", &health).await;
    assert_eq!(status, 200, "{response}");
    assert_eq!(response["statusCode"], 200, "{response}");
    let body: serde_json::Value = serde_json::from_str(response["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["checks"]["queue"], "ok", "{body}");

    // Without the authorizer's claims: a JSON 401, not a crash.
    let mut anonymous = event.clone();
    anonymous["requestContext"]
        .as_object_mut()
        .unwrap()
        .remove("authorizer");
    let (status, response) = world.emulator.invoke("api", &anonymous).await;
    assert_eq!(status, 200, "{response}");
    assert_eq!(response["statusCode"], 401, "{response}");
}

/// The functions' stdout is what CloudWatch Logs receives: JSON log lines that carry the
/// Lambda request id, and inside a job the job and the room; and metrics in Embedded
/// Metric Format with the function as the only dimension and room ids never one.
fn logs_and_metrics_reach_stdout_as_cloudwatch_reads_them(world: &World) {
    let lines: Vec<serde_json::Value> = world
        .emulator
        .stdout_lines()
        .iter()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let metrics: Vec<&serde_json::Value> =
        lines.iter().filter(|l| l.get("_aws").is_some()).collect();
    let logs: Vec<&serde_json::Value> = lines.iter().filter(|l| l.get("_aws").is_none()).collect();
    assert!(!logs.is_empty() && !metrics.is_empty(), "{lines:?}");

    // Every log line written while a messages sync item ran names the request, the job
    // and the room.
    let synced: Vec<&&serde_json::Value> = logs
        .iter()
        .filter(|l| l.to_string().contains("room synced"))
        .collect();
    assert_eq!(synced.len(), 2, "{logs:?}");
    for line in &synced {
        let text = line.to_string();
        for field in ["requestId", "job_id", "room_id"] {
            assert!(text.contains(field), "{field} missing from {text}");
        }
    }

    let names = |metric: &serde_json::Value| -> Vec<String> {
        metric["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .map(|m| {
                m.iter()
                    .map(|m| m["Name"].as_str().unwrap().to_owned())
                    .collect()
            })
            .unwrap_or_default()
    };
    for metric in &metrics {
        assert_eq!(
            metric["_aws"]["CloudWatchMetrics"][0]["Namespace"],
            "cwsync"
        );
        let dimensions = &metric["_aws"]["CloudWatchMetrics"][0]["Dimensions"];
        assert!(
            !dimensions.to_string().contains("room"),
            "a room is never a dimension: {metric}"
        );
    }
    let emitted: std::collections::BTreeSet<String> =
        metrics.iter().flat_map(|m| names(m)).collect();
    for expected in [
        "jobs_started",
        "jobs_finished",
        "job_item_duration_ms",
        "chatwork_requests",
        "messages_stored",
        "dead_lettered_messages",
    ] {
        assert!(
            emitted.contains(expected),
            "no {expected} metric in {emitted:?}"
        );
    }
    let stored: f64 = metrics
        .iter()
        .filter_map(|m| m.get("messages_stored").and_then(|v| v.as_f64()))
        .sum();
    assert_eq!(stored, 6.0, "six messages stored, as the database says");
}

/// Receives batches of `queue` and hands them to `function` until the job is finished,
/// as the event source mapping would; every batch must be answered without failures.
async fn feed_until_finished(
    world: &World,
    queue: QueueName,
    function: &str,
    job_id: uuid::Uuid,
) -> cwsync::jobs::Job {
    for _ in 0..10 {
        let event = receive_batch(&world.queues, queue).await;
        let (status, response) = world
            .emulator
            .invoke(function, &serde_json::to_value(&event).unwrap())
            .await;
        assert_eq!(status, 200, "{function}: {response}");
        assert_eq!(
            response["batchItemFailures"],
            serde_json::json!([]),
            "{function}: {response}"
        );
        let job = jobs::get(&world.db.pool, job_id).await.unwrap().unwrap();
        if job.status.is_terminal() {
            return job;
        }
    }
    panic!("{function} did not finish job {job_id}");
}

async fn sync_functions_run_their_jobs(world: &World) {
    let pool = &world.db.pool;
    // The rooms sync: rooms 11 and 12 are registered already (by the scheduler's test),
    // 13 is new. The queue still holds the message of the job the DLQ test failed,
    // which the function acknowledges without work.
    let started = jobs::start::<RoomsSync>(pool, &world.queues, &RoomsSyncPayload::default(), None)
        .await
        .unwrap();
    let job = feed_until_finished(world, RoomsSync::QUEUE, "rooms-sync", started.job.id).await;
    assert_eq!(job.status, JobStatus::Completed, "{job:?}");
    let result = job.result.unwrap();
    assert_eq!(
        (&result["created"], &result["updated"], &result["total"]),
        (
            &serde_json::json!(1),
            &serde_json::json!(2),
            &serde_json::json!(3)
        ),
        "{result}"
    );

    // The messages sync the scheduler's test started for rooms 11 and 12.
    let job = jobs::list(
        pool,
        &jobs::JobFilter {
            job_type: Some(MessagesSync::TYPE),
            limit: 1,
            ..Default::default()
        },
    )
    .await
    .unwrap()
    .remove(0);
    let job = feed_until_finished(world, MessagesSync::QUEUE, "messages-sync", job.id).await;
    assert_eq!(job.status, JobStatus::Completed, "{job:?}");
    let result = job.result.unwrap();
    assert_eq!(result["processedRooms"], 2, "{result}");
    assert_eq!(result["storedMessages"], 6, "{result}");
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM messages WHERE room_id IN (11, 12)")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(stored, 6);
    // One room list and one messages request per room, besides the rooms sync's.
    let messages_requests = world
        .fake
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/messages"))
        .count();
    assert_eq!(messages_requests, 2);
}

async fn scheduler_runs_its_tasks(world: &World) {
    let pool = &world.db.pool;
    sqlx::query("INSERT INTO chatwork_rooms (room_id, name, room_type) VALUES (11, 'a', 'group'), (12, 'b', 'group')")
        .execute(pool)
        .await
        .unwrap();
    // A schedule's constant input; the answer is the run, recorded.
    let (status, run) = world
        .emulator
        .invoke("scheduler", &serde_json::json!({"task": "messages-sync"}))
        .await;
    assert_eq!(status, 200, "{run}");
    assert_eq!(run["status"], "completed", "{run}");
    let run_id: uuid::Uuid = run["id"].as_str().unwrap().parse().unwrap();
    let recorded = runs::get(pool, run_id)
        .await
        .unwrap()
        .expect("the run is recorded");
    assert_eq!(
        (recorded.task, recorded.trigger.as_str(), recorded.status),
        (Task::MessagesSync, "schedule", RunStatus::Completed)
    );
    let report = &run["report"];
    assert_eq!(report["task"], "messages-sync", "{report}");
    assert_eq!(recorded.report.as_ref(), Some(report));
    assert_eq!(report["created"], true);
    let job_id: uuid::Uuid = report["jobId"].as_str().unwrap().parse().unwrap();
    let job = jobs::get(pool, job_id).await.unwrap().unwrap();
    assert_eq!(
        (job.status, job.total_items, job.user_id),
        (JobStatus::Queued, 2, None)
    );
    assert_eq!(world.queues.depth(MessagesSync::QUEUE).await.unwrap(), 2);

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
    let (status, run) = world.emulator.invoke("scheduler", &scheduled).await;
    assert_eq!(status, 200, "{run}");
    assert_eq!(run["report"]["task"], "sweep", "{run}");

    let (status, run) = world
        .emulator
        .invoke("scheduler", &serde_json::json!({"task": "migrate"}))
        .await;
    assert_eq!(
        (status, &run["report"]["task"]),
        (200, &serde_json::json!("migrate")),
        "{run}"
    );

    // A person's dry run of retention, taken by the minutely tick.
    let Requested::Run(asked) = runs::request(pool, Task::Retention, "admin-1", true, "r-1")
        .await
        .unwrap()
    else {
        panic!("the run is requested");
    };
    let (status, ticked) = world
        .emulator
        .invoke("scheduler", &serde_json::json!({"tick": true}))
        .await;
    assert_eq!(status, 200, "{ticked}");
    let done = ticked["requestedRuns"].as_array().unwrap();
    assert_eq!(done.len(), 1, "{ticked}");
    assert_eq!(done[0]["id"], serde_json::json!(asked.id), "{ticked}");
    assert_eq!(done[0]["status"], "completed", "{ticked}");
    assert_eq!(done[0]["dryRun"], true, "{ticked}");
    let ended = runs::get(pool, asked.id).await.unwrap().unwrap();
    assert_eq!(ended.status, RunStatus::Completed);
    assert!(ticked["health"]["overdue"].is_array(), "{ticked}");

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
    let started = jobs::start::<RoomsSync>(
        pool,
        &world.queues,
        &RoomsSyncPayload::default(),
        Some("u1"),
    )
    .await
    .unwrap();
    // The message that exhausted its retries, as it sits in the dead-letter queue.
    let item = &jobs::items(pool, started.job.id).await.unwrap()[0];
    world
        .queues
        .send(
            RoomsSync::QUEUE.dead_letter(),
            &[cwsync::queue::OutgoingMessage {
                group_id: "rooms".into(),
                deduplication_id: format!("{}:rooms", started.job.id),
                body: item.message.to_string(),
            }],
        )
        .await
        .unwrap();
    let event = receive_batch(&world.queues, RoomsSync::QUEUE.dead_letter()).await;
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
        item.error
            .as_ref()
            .unwrap()
            .message
            .starts_with("moved to the dead-letter queue after 4 receives")
    );
}

/// The summary consumer, with the environment's defaults (no model: the extractive
/// summarizer), drafts the messages the sync functions stored in room 11 once the room
/// is linked to a company, plus one that carries a decision and an e-mail address.
async fn summary_function_drafts_a_summary(world: &World) {
    let pool = &world.db.pool;
    let company: uuid::Uuid =
        sqlx::query_scalar("INSERT INTO companies (name) VALUES ('Acme') RETURNING id")
            .fetch_one(pool)
            .await
            .unwrap();
    sqlx::query(
        "INSERT INTO company_room_links (company_id, chatwork_room_id)
         SELECT $1, id FROM chatwork_rooms WHERE room_id = 11",
    )
    .bind(company)
    .execute(pool)
    .await
    .unwrap();
    sqlx::query("UPDATE messages SET company_id = $1 WHERE room_id = 11")
        .bind(company)
        .execute(pool)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO messages (chatwork_room_id, room_id, message_id, account_id, account_name,
                               body, send_time, company_id)
         SELECT id, room_id, '99', 7, '山田 太郎', $2, now(), $1 FROM chatwork_rooms WHERE room_id = 11",
    )
    .bind(company)
    .bind("[To:8]佐藤さん\n来週の打ち合わせは火曜日に決定しました。連絡先は taro@example.jp です。")
    .execute(pool)
    .await
    .unwrap();
    let now = chrono::Utc::now();
    let started = jobs::start::<SummaryDraft>(
        pool,
        &world.queues,
        &SummaryDraftPayload {
            company_id: company,
            period_start: now - chrono::TimeDelta::days(1),
            period_end: now + chrono::TimeDelta::hours(1),
        },
        Some("writer-1"),
    )
    .await
    .unwrap();
    let job =
        feed_until_finished(world, SummaryDraft::QUEUE, "summary-draft", started.job.id).await;
    assert_eq!(job.status, JobStatus::Completed, "{job:?}");
    let draft = &job.result.unwrap()["draft"];
    assert_eq!(draft["model"], "extractive", "{draft}");
    let content = draft["content"].as_str().unwrap();
    assert!(
        content.contains("1つのルームで4件のメッセージ"),
        "{content}"
    );
    assert!(
        content.contains("来週の打ち合わせは火曜日に決定しました。連絡先は [email] です。 https://www.chatwork.com/#!rid11-99"),
        "{content}"
    );
    assert!(!content.contains("taro@example.jp"));
    assert_eq!(
        draft["sourceLinks"],
        serde_json::json!([{"url": "https://www.chatwork.com/#!rid11-99", "roomId": 11, "messageId": "99"}])
    );
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM summary_drafts WHERE job_id = $1")
        .bind(job.id)
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(stored, 1);
}
