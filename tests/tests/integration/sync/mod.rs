//! The two sync job types through the consumer runtime (job core, embedded queue or
//! moto's SQS, event source) against the fake Chatwork and a real Postgres.

use cwsync::jobs::JobSpec as _;

mod ceiling;
mod check;
mod cost;
mod extras;
mod faults;
mod hostile;
mod messages;
mod outage;
mod rate;
mod rooms;
mod schedule;
mod webhooks;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use cwsync::chatwork::{ChatworkClient, ClientSettings};
use cwsync::consumer::EventSource;
use cwsync::jobs::{self, DeadLetterConsumer, ItemRecord, Job, JobConsumer};
use cwsync::queue::{EmbeddedQueues, EmbeddedSettings, QueueName, Queues};
use cwsync::sync::SyncContext;
use cwsync::sync::messages::{MessagesSync, MessagesSyncPayload};
use cwsync::sync::rooms::{RoomsSync, RoomsSyncPayload};
use cwsync_tests::{TestDb, create_test_queues, settled_room};
use fake_chatwork::{Account, FakeChatwork, FakeSettings, RequestRecord};
use secrecy::SecretString;
use sqlx::PgPool;
use url::Url;
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Embedded,
    Sqs,
}

/// Receives before a message moves to its dead-letter queue.
pub const MAX_RECEIVES: u32 = 4;

pub use cwsync_tests::now_secs;

/// A group room of `count` settled messages (see [`settled_room`]).
pub fn room_with_history(room_id: i64, count: usize) -> fake_chatwork::Room {
    settled_room(room_id, count, |i| format!("message {i} of room {room_id}"))
}

pub fn poster() -> Account {
    Account::new(2002, "鈴木 花子")
}

/// Client settings for `fake`, with short backoffs so that retries do not drag a test.
pub fn client_settings(fake: &FakeChatwork) -> ClientSettings {
    let mut settings = ClientSettings::new(
        SecretString::from(fake.token().to_owned()),
        Url::parse(&fake.base_url()).unwrap(),
    );
    settings.request_timeout = Duration::from_secs(5);
    settings.backoff_initial = Duration::from_millis(20);
    settings.backoff_max = Duration::from_millis(200);
    settings.assumed_window = fake.rate_limit().1;
    settings
}

pub fn sync_context(fake: &FakeChatwork, pool: &PgPool) -> Arc<SyncContext> {
    let client = ChatworkClient::new(client_settings(fake), pool.clone()).unwrap();
    Arc::new(SyncContext::new(client))
}

/// A database, a fake Chatwork, the queues of one backend and the sync consumers.
pub struct SyncRig {
    pub db: TestDb,
    pub fake: FakeChatwork,
    pub backend: Backend,
    pub queues: Arc<dyn Queues>,
    pub rooms: JobConsumer<RoomsSync>,
    pub messages: JobConsumer<MessagesSync>,
    pub dead_letters: DeadLetterConsumer,
}

impl SyncRig {
    pub async fn new(backend: Backend, rooms: Vec<fake_chatwork::Room>) -> Self {
        Self::with_fake(backend, FakeSettings::default().with_rooms(rooms)).await
    }

    pub async fn with_fake(backend: Backend, settings: FakeSettings) -> Self {
        let fake = FakeChatwork::start(settings).await;
        let db = TestDb::new().await;
        let queues: Arc<dyn Queues> = match backend {
            Backend::Embedded => Arc::new(EmbeddedQueues::new(EmbeddedSettings {
                visibility_timeout: Duration::from_millis(300),
                max_receive_count: MAX_RECEIVES,
                deduplication_window: Duration::from_secs(300),
            })),
            Backend::Sqs => Arc::new(create_test_queues(1, MAX_RECEIVES).await),
        };
        let client = ChatworkClient::new(client_settings(&fake), db.pool.clone()).unwrap();
        let context = Arc::new(SyncContext::new(client));
        Self {
            rooms: JobConsumer::new(db.pool.clone(), queues.clone(), context.clone()),
            messages: JobConsumer::new(db.pool.clone(), queues.clone(), context),
            dead_letters: DeadLetterConsumer::new(
                db.pool.clone(),
                cwsync::job_types::registry(),
                MAX_RECEIVES,
            ),
            db,
            fake,
            backend,
            queues,
        }
    }

    pub fn pool(&self) -> &PgPool {
        &self.db.pool
    }

    pub fn source(&self, queue: QueueName) -> EventSource {
        let mut source = EventSource::new(self.queues.clone(), queue);
        source.wait = Duration::from_millis(match self.backend {
            Backend::Embedded => 50,
            // moto long-polls in whole seconds; 0 answers at once.
            Backend::Sqs => 0,
        });
        source.batch_timeout = Duration::from_secs(60);
        source
    }

    pub async fn start_rooms_sync(&self) -> Job {
        let started = jobs::start::<RoomsSync>(
            self.pool(),
            self.queues.as_ref(),
            &RoomsSyncPayload::default(),
            Some("admin-1"),
        )
        .await
        .unwrap();
        assert!(started.created, "a new rooms sync");
        started.job
    }

    pub async fn start_messages_sync(&self, room_id: Option<i64>) -> Job {
        let started = jobs::start::<MessagesSync>(
            self.pool(),
            self.queues.as_ref(),
            &match room_id {
                Some(room_id) => MessagesSyncPayload::Room { room_id },
                None => MessagesSyncPayload::Active,
            },
            Some("admin-1"),
        )
        .await
        .unwrap();
        assert!(started.created, "a new messages sync");
        started.job
    }

    pub async fn job(&self, id: Uuid) -> Job {
        jobs::get(self.pool(), id).await.unwrap().unwrap()
    }

    pub async fn items(&self, id: Uuid) -> Vec<ItemRecord> {
        jobs::items(self.pool(), id).await.unwrap()
    }

    /// Feeds every queue to its consumer (dead-letter queues to the dead-letter consumer)
    /// until `done` holds for the job.
    pub async fn run_until(&self, id: Uuid, what: &str, done: impl Fn(&Job) -> bool) -> Job {
        self.run_until_with(&self.messages, id, what, done).await
    }

    /// [`run_until`](Self::run_until) with another messages consumer.
    pub async fn run_until_with(
        &self,
        messages: &JobConsumer<MessagesSync>,
        id: Uuid,
        what: &str,
        done: impl Fn(&Job) -> bool,
    ) -> Job {
        let rooms = self.source(RoomsSync::QUEUE);
        let work = self.source(MessagesSync::QUEUE);
        let dead = [
            self.source(RoomsSync::QUEUE.dead_letter()),
            self.source(MessagesSync::QUEUE.dead_letter()),
        ];
        let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
        loop {
            let job = self.job(id).await;
            if done(&job) {
                return job;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}; job is {job:?}"
            );
            let mut polled = rooms.poll_once(&self.rooms).await.unwrap();
            polled += work.poll_once(messages).await.unwrap();
            for source in &dead {
                polled += source.poll_once(&self.dead_letters).await.unwrap();
            }
            if polled == 0 {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }

    pub async fn run_to_end(&self, id: Uuid) -> Job {
        self.run_until(id, "the job to finish", |j| j.status.is_terminal())
            .await
    }

    /// Starts a rooms sync and runs it to its end.
    pub async fn rooms_sync(&self) -> Job {
        let job = self.start_rooms_sync().await;
        self.run_to_end(job.id).await
    }

    /// Starts a messages sync and runs it to its end.
    pub async fn messages_sync(&self, room_id: Option<i64>) -> Job {
        let job = self.start_messages_sync(room_id).await;
        self.run_to_end(job.id).await
    }

    /// The requests the fake received after the first `from`.
    pub fn requests_since(&self, from: usize) -> Vec<RequestRecord> {
        self.fake.requests().into_iter().skip(from).collect()
    }

    pub async fn room(&self, room_id: i64) -> StoredRoom {
        sqlx::query_as(
            "SELECT name, description, message_count, left_at IS NOT NULL AS left,
                    last_message_id, last_sync_at IS NOT NULL AS synced, last_error_message,
                    last_error_status, gap_detected_at IS NOT NULL AS gap, gap_missed_estimate
               FROM chatwork_rooms WHERE room_id = $1",
        )
        .bind(room_id)
        .fetch_one(self.pool())
        .await
        .unwrap()
    }

    /// A room's stored messages, oldest first: (id, body, company).
    pub async fn stored(&self, room_id: i64) -> Vec<(String, String, Option<Uuid>)> {
        sqlx::query_as(
            "SELECT message_id, body, company_id FROM messages WHERE room_id = $1 ORDER BY message_seq",
        )
        .bind(room_id)
        .fetch_all(self.pool())
        .await
        .unwrap()
    }
}

/// A room row as the tests look at it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StoredRoom {
    pub name: String,
    pub description: Option<String>,
    pub message_count: i32,
    pub left: bool,
    pub last_message_id: Option<String>,
    pub synced: bool,
    pub last_error_message: Option<String>,
    pub last_error_status: Option<i32>,
    pub gap: bool,
    pub gap_missed_estimate: Option<i32>,
}

/// Messages requests (`GET /v2/rooms/{id}/messages`) among `requests`, by room.
pub fn messages_requests(requests: &[RequestRecord]) -> Vec<i64> {
    requests
        .iter()
        .filter_map(|r| {
            r.path
                .strip_prefix("/v2/rooms/")?
                .strip_suffix("/messages")?
                .parse()
                .ok()
        })
        .collect()
}

/// How many `GET /v2/rooms` are among `requests`.
pub fn room_list_requests(requests: &[RequestRecord]) -> usize {
    requests.iter().filter(|r| r.path == "/v2/rooms").count()
}

/// Counters recorded by this test process's metrics recorder (installed on first use),
/// by name and labels. Tests run in parallel, so compare increases, at least.
pub fn counter(name: &str, labels: &[(&str, &str)]) -> u64 {
    let key = counter_key(name, labels);
    recorder()
        .counters
        .lock()
        .unwrap()
        .get(&key)
        .map_or(0, |c| c.load(Ordering::Relaxed))
}

fn counter_key(name: &str, labels: &[(&str, &str)]) -> String {
    let mut labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    labels.sort();
    format!("{name}{{{}}}", labels.join(","))
}

#[derive(Default)]
struct CountingRecorder {
    counters: Mutex<std::collections::HashMap<String, Arc<AtomicU64>>>,
}

struct Count(Arc<AtomicU64>);

impl metrics::CounterFn for Count {
    fn increment(&self, value: u64) {
        self.0.fetch_add(value, Ordering::Relaxed);
    }
    fn absolute(&self, value: u64) {
        self.0.fetch_max(value, Ordering::Relaxed);
    }
}

impl metrics::Recorder for &'static CountingRecorder {
    fn describe_counter(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn describe_gauge(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn describe_histogram(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }

    fn register_counter(&self, key: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Counter {
        let labels: Vec<(&str, &str)> = key.labels().map(|l| (l.key(), l.value())).collect();
        let name = counter_key(key.name(), &labels);
        let cell = self
            .counters
            .lock()
            .unwrap()
            .entry(name)
            .or_default()
            .clone();
        metrics::Counter::from_arc(Arc::new(Count(cell)))
    }

    fn register_gauge(&self, _: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Gauge {
        metrics::Gauge::noop()
    }

    fn register_histogram(
        &self,
        _: &metrics::Key,
        _: &metrics::Metadata<'_>,
    ) -> metrics::Histogram {
        metrics::Histogram::noop()
    }
}

fn recorder() -> &'static CountingRecorder {
    static RECORDER: OnceLock<&'static CountingRecorder> = OnceLock::new();
    RECORDER.get_or_init(|| {
        let recorder: &'static CountingRecorder = Box::leak(Box::default());
        metrics::set_global_recorder(recorder).expect("no other metrics recorder in the tests");
        recorder
    })
}

/// Installs the counting recorder (before the code under test registers its metrics).
pub fn count_metrics() {
    recorder();
}
