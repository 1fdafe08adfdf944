//! A messages sync through a Chatwork outage (every request answered 503), with the
//! outage breaker at a test's scale: while Chatwork is down it gets the failures that
//! open the breaker and one probe per interval, the records fail fast as "Chatwork
//! unavailable" and go back to their queue until the queue moves them to its DLQ (whose
//! consumer fails the item: no job stays `processing`), and the next sync after Chatwork
//! is back stores every message. Prints the counts (`--nocapture` shows them).

use std::sync::Arc;
use std::time::Duration;

use cwsync::chatwork::{BreakerSettings, ChatworkClient};
use cwsync::jobs::{ItemStatus, JobConsumer, JobStatus};
use cwsync::sync::SyncContext;
use cwsync::sync::messages::MessagesSync;
use fake_chatwork::{Fault, FaultScope};
use serde_json::{Value, json};
use tokio::time::Instant;

use super::{Backend, MAX_RECEIVES, SyncRig, client_settings, room_with_history};

#[tokio::test]
async fn an_outage_gets_only_the_probes_and_the_next_sync_catches_up() {
    let rooms: Vec<_> = (1..=4).map(|i| room_with_history(2800 + i, 5)).collect();
    let rig = SyncRig::new(Backend::Embedded, rooms).await;
    assert_eq!(rig.rooms_sync().await.status, JobStatus::Completed);
    let breaker = BreakerSettings {
        threshold: 4,
        failure_window: Duration::from_secs(10),
        probe_interval: Duration::from_millis(500),
    };
    let mut settings = client_settings(&rig.fake);
    settings.breaker = breaker;
    let client = ChatworkClient::new(settings, rig.pool().clone()).unwrap();
    let consumer: JobConsumer<MessagesSync> = JobConsumer::new(
        rig.pool().clone(),
        rig.queues.clone(),
        Arc::new(SyncContext::new(client)),
    );

    rig.fake.inject(FaultScope::Any, Fault::Status(503), None);
    let before = rig.fake.requests().len();
    let started = Instant::now();
    let job = rig.start_messages_sync(None).await;
    let job = rig
        .run_until_with(&consumer, job.id, "the job to end", |j| {
            j.status.is_terminal()
        })
        .await;
    let down_for = started.elapsed();
    let sent = rig.requests_since(before).len();
    let items = rig.items(job.id).await;
    let dead = items
        .iter()
        .filter(|i| {
            i.error
                .as_ref()
                .is_some_and(|e| e.message.contains("dead-letter"))
        })
        .count();
    println!(
        "outage: {sent} requests in {down_for:?} for {} rooms x {MAX_RECEIVES} receives; \
         {dead} of {} items ended through the DLQ",
        items.len(),
        items.len()
    );
    for item in &items {
        assert_eq!(item.status, ItemStatus::Failed, "{item:?}");
    }
    assert!(
        items.iter().any(|i| i
            .error
            .as_ref()
            .is_some_and(|e| e.message.contains("Chatwork unavailable"))),
        "{items:?}"
    );
    // The failures that opened the breaker, one probe per interval (and a last failure
    // on its way when it opened).
    let probes = (down_for.as_millis() / breaker.probe_interval.as_millis()) as usize + 1;
    let bound = breaker.threshold as usize + 1 + probes;
    assert!(sent <= bound, "{sent} requests while down, bound {bound}");
    // The operator's view: the status route shows the breaker open.
    let (status, body) = super::check::api(&rig, "GET", "/chatwork/status", None).await;
    assert_eq!(status, 200, "{body}");
    let shown = &body["chatworkBreaker"];
    assert_eq!(shown["open"], true, "{body}");
    assert!(
        shown["openedAt"].is_string() && shown["nextProbeAt"].is_string(),
        "{shown}"
    );
    assert!(
        shown["failures"].as_i64().unwrap() >= i64::from(breaker.threshold),
        "{shown}"
    );

    // Chatwork is back: after the next probe time the next sync stores everything.
    rig.fake.clear_faults();
    tokio::time::sleep(breaker.probe_interval).await;
    let job = rig.start_messages_sync(None).await;
    let job = rig
        .run_until_with(&consumer, job.id, "the sync after the outage", |j| {
            j.status.is_terminal()
        })
        .await;
    assert_eq!(job.status, JobStatus::Completed, "{job:?}");
    for room in 2801..=2804 {
        assert_eq!(rig.stored(room).await.len(), 5, "room {room}");
    }
    let (_, body) = super::check::api(&rig, "GET", "/chatwork/status", None).await;
    let shown = &body["chatworkBreaker"];
    assert_eq!(
        (&shown["open"], &shown["failures"], &shown["nextProbeAt"]),
        (&json!(false), &json!(0), &Value::Null),
        "closed by the first success: {body}"
    );
}
