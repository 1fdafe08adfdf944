//! A job type made for tests, and a rig that runs it over either queue implementation.
//!
//! `Probe` is an ordinary `JobKind`: its items store messages of a room in the real
//! `messages` table (idempotently, as real handlers must), and each room can be told how
//! to behave: succeed, fail for a while, fail for good, crash after its write, wait for a
//! cancel, or meet another item at a barrier.

use cwsync::sync::messages::MessagesSync;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cwsync::consumer::EventSource;
use cwsync::jobs::{
    self, BatchConnection, Begin, DeadLetterConsumer, ErrorInfo, ItemError, ItemOutcome,
    ItemRecord, ItemRun, Job, JobConsumer, JobItem, JobKind, JobSpec, JobType, Outcome,
    PlannedItem, Registry, Started,
};
use cwsync::queue::{EmbeddedQueues, EmbeddedSettings, QueueName, Queues};
use cwsync::sync::messages::{ItemReport, MessagesSyncResult, RoomFetch};
use cwsync_tests::{TestDb, create_test_queues};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;

pub struct Probe;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProbePayload {
    pub key: String,
    pub rooms: Vec<i64>,
    /// Message group of every item instead of `room-<id>` (to make sends fail).
    #[serde(default)]
    pub group_override: Option<String>,
}

/// The messages sync's own message: the probe claims to be a messages sync.
pub type ProbeMessage = cwsync::sync::messages::MessagesSyncMessage;

#[derive(Clone)]
pub enum Behaviour {
    /// Store this many messages of the room.
    Store(u32),
    /// A retryable error every time.
    FailAlways,
    /// A retryable error on the first `n` attempts, then store.
    FailTimes(i32, u32),
    /// Store, then fail the first attempt as if the process died before ending the item.
    WriteThenCrash(u32),
    /// The item can never succeed.
    Permanent,
    /// Store half, then wait (checking between steps) until the job is canceled.
    WaitForCancel(u32),
    /// Store, then wait at the barrier before ending the item.
    Barrier(u32, Arc<tokio::sync::Barrier>),
    /// A database error of this kind on the first `n` attempts (every attempt with
    /// `i32::MAX`), then store 3 messages.
    Database(DbFailure, i32),
}

/// A database error a handler meets, made for real where Postgres can make it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbFailure {
    /// `timestamp out of range` (22008): a date Postgres cannot store.
    OutOfRange,
    /// `invalid input syntax` (22P02).
    BadInput,
    /// A unique violation (23505).
    Duplicate,
    /// A check constraint (23514), like the summary draft's period check.
    Check,
    /// An unknown relation (42P01).
    UndefinedTable,
    /// No row where one was required (sqlx's `RowNotFound`).
    RowNotFound,
    /// An error raised by the server with this SQLSTATE (connection lost, serialization
    /// failure, deadlock, out of connections, admin shutdown, I/O error).
    Raised(&'static str),
    /// The pool had no connection in time.
    PoolTimedOut,
    /// The connection broke.
    Io,
}

impl DbFailure {
    pub const PERMANENT: [DbFailure; 6] = [
        DbFailure::OutOfRange,
        DbFailure::BadInput,
        DbFailure::Duplicate,
        DbFailure::Check,
        DbFailure::UndefinedTable,
        DbFailure::RowNotFound,
    ];
    pub const TRANSIENT: [DbFailure; 9] = [
        DbFailure::Raised("08006"),
        DbFailure::Raised("40001"),
        DbFailure::Raised("40P01"),
        DbFailure::Raised("53300"),
        DbFailure::Raised("57P01"),
        DbFailure::Raised("57P03"),
        DbFailure::Raised("58030"),
        DbFailure::PoolTimedOut,
        DbFailure::Io,
    ];

    async fn cause(self, pool: &PgPool, room: i64) -> sqlx::Error {
        let sql = match self {
            DbFailure::OutOfRange => {
                "SELECT make_timestamptz(-5000, 1, 1, 0, 0, 0)::text".to_owned()
            }
            DbFailure::BadInput => "SELECT 'alice'::int::text".to_owned(),
            DbFailure::Duplicate => format!(
                "INSERT INTO chatwork_rooms (room_id, name, room_type) VALUES ({room}, 'again', 'group') RETURNING ''"
            ),
            // A real check constraint of the schema: a draft whose period ends at its
            // start (as a period whose end differs from its start by nanoseconds only).
            DbFailure::Check => {
                "INSERT INTO summary_drafts (company_id, period_start, period_end, content, model)
                 VALUES (gen_random_uuid(), '2025-01-01', '2025-01-01', 'x', 'probe') RETURNING ''"
                    .to_owned()
            }
            DbFailure::UndefinedTable => "SELECT name FROM no_such_table".to_owned(),
            DbFailure::RowNotFound => "SELECT ''::text WHERE false".to_owned(),
            DbFailure::Raised(code) => format!(
                "DO $$ BEGIN RAISE EXCEPTION 'raised for the test' USING ERRCODE = '{code}'; END $$"
            ),
            DbFailure::PoolTimedOut => return sqlx::Error::PoolTimedOut,
            DbFailure::Io => {
                return sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
            }
        };
        if matches!(self, DbFailure::Raised(_)) {
            return sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
                .execute(pool)
                .await
                .expect_err("raised");
        }
        sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(sql))
            .fetch_one(pool)
            .await
            .expect_err("the statement fails")
    }
}

#[derive(Default)]
pub struct ProbeContext {
    behaviour: Mutex<HashMap<i64, Behaviour>>,
    /// Every handler run: (room, attempt).
    pub runs: Mutex<Vec<(i64, i32)>>,
}

impl ProbeContext {
    pub fn set(&self, room: i64, behaviour: Behaviour) {
        self.behaviour.lock().unwrap().insert(room, behaviour);
    }

    pub fn runs_of(&self, room: i64) -> usize {
        self.runs
            .lock()
            .unwrap()
            .iter()
            .filter(|(r, _)| *r == room)
            .count()
    }

    pub fn total_runs(&self) -> usize {
        self.runs.lock().unwrap().len()
    }
}

/// Stores `count` messages of `room` the way a sync does: one statement, duplicates ignored.
async fn store_messages(
    pool: &PgPool,
    room: i64,
    from: u32,
    count: u32,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO messages (chatwork_room_id, room_id, message_id, account_id, account_name, body, send_time)
         SELECT r.id, r.room_id, g::text, 1, 'probe', 'message ' || g, now()
           FROM chatwork_rooms r, generate_series($2::int, $3::int) g
          WHERE r.room_id = $1
         ON CONFLICT (room_id, message_id) DO NOTHING",
    )
    .bind(room)
    .bind(from as i32 + 1)
    .bind((from + count) as i32)
    .execute(pool)
    .await?;
    Ok(())
}

fn stored(count: u32) -> Result<Outcome<Probe>, ItemError> {
    Ok(ItemOutcome::Completed {
        fetched: count as i32,
        result: ItemReport::Room(RoomFetch {
            fetched: i64::from(count),
            ..RoomFetch::default()
        }),
    })
}

impl JobSpec for Probe {
    const TYPE: JobType = MessagesSync::TYPE;
    const QUEUE: cwsync::queue::QueueName = MessagesSync::QUEUE;
    const LABEL: &'static str = "probe";
    type Payload = ProbePayload;
    type Message = ProbeMessage;
    type ItemResult = ItemReport;
    type Result = MessagesSyncResult;

    fn active_key(payload: &ProbePayload) -> String {
        payload.key.clone()
    }

    fn item_key(message: &ProbeMessage) -> String {
        MessagesSync::item_key(message)
    }

    async fn plan(
        _pool: &PgPool,
        payload: &ProbePayload,
    ) -> Result<Vec<PlannedItem<ProbeMessage>>, sqlx::Error> {
        Ok(payload
            .rooms
            .iter()
            .map(|&room_id| {
                PlannedItem::work(
                    ProbeMessage {
                        room_id: Some(room_id),
                        listed: None,
                        connection_id: None,
                        part: None,
                        listed_count: None,
                    },
                    payload
                        .group_override
                        .clone()
                        .unwrap_or_else(|| format!("room-{room_id}")),
                )
            })
            .collect())
    }

    /// As the type it claims to be.
    fn summarize(items: &[JobItem<ProbeMessage, ItemReport>]) -> MessagesSyncResult {
        MessagesSync::summarize(items)
    }

    fn describe(result: &MessagesSyncResult) -> String {
        MessagesSync::describe(result)
    }
}

impl JobKind for Probe {
    type Context = ProbeContext;
    type Read = ();

    async fn begin(
        _context: &ProbeContext,
        db: &BatchConnection,
        job_id: uuid::Uuid,
        item_key: &str,
        _message: &ProbeMessage,
    ) -> Result<Begin, sqlx::Error> {
        jobs::begin_item(db, job_id, item_key).await
    }

    async fn run(
        context: &ProbeContext,
        item: &ItemRun,
        message: ProbeMessage,
        _read: (),
    ) -> Result<Outcome<Probe>, ItemError> {
        let room = message.room_id.expect("the probe's messages name a room");
        context.runs.lock().unwrap().push((room, item.attempt));
        let behaviour = context
            .behaviour
            .lock()
            .unwrap()
            .get(&room)
            .cloned()
            .unwrap_or(Behaviour::Store(3));
        match behaviour {
            Behaviour::Store(n) => {
                store_messages(&item.pool, room, 0, n).await?;
                stored(n)
            }
            Behaviour::FailAlways => Err(ItemError::Retry(anyhow::anyhow!("upstream 503"))),
            Behaviour::FailTimes(times, n) => {
                if item.attempt <= times {
                    return Err(ItemError::Retry(anyhow::anyhow!(
                        "upstream 503, attempt {}",
                        item.attempt
                    )));
                }
                store_messages(&item.pool, room, 0, n).await?;
                stored(n)
            }
            Behaviour::WriteThenCrash(n) => {
                store_messages(&item.pool, room, 0, n).await?;
                if item.attempt == 1 {
                    return Err(ItemError::Retry(anyhow::anyhow!(
                        "process died after its write"
                    )));
                }
                stored(n)
            }
            Behaviour::Permanent => {
                Err(ItemError::Fail(ErrorInfo::new("NotFound", "room is gone")))
            }
            Behaviour::WaitForCancel(n) => {
                store_messages(&item.pool, room, 0, n / 2).await?;
                for _ in 0..1500 {
                    if item.is_canceled().await? {
                        return Ok(ItemOutcome::Canceled);
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(ItemError::Retry(anyhow::anyhow!("never canceled")))
            }
            Behaviour::Barrier(n, barrier) => {
                store_messages(&item.pool, room, 0, n).await?;
                barrier.wait().await;
                stored(n)
            }
            Behaviour::Database(failure, times) => {
                if item.attempt <= times {
                    // As a handler does: `?` on a database error.
                    return Err(failure.cause(&item.pool, room).await.into());
                }
                store_messages(&item.pool, room, 0, 3).await?;
                stored(3)
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Embedded,
    Sqs,
}

/// Receives before a message moves to its dead-letter queue.
pub const MAX_RECEIVES: u32 = 4;

/// A database, the queues of one backend, and the probe's consumers.
pub struct Rig {
    pub db: TestDb,
    pub backend: Backend,
    pub queues: Arc<dyn Queues>,
    pub context: Arc<ProbeContext>,
    pub consumer: JobConsumer<Probe>,
    pub dead_letters: DeadLetterConsumer,
}

impl Rig {
    pub async fn new(backend: Backend) -> Self {
        let db = TestDb::new().await;
        let queues: Arc<dyn Queues> = match backend {
            Backend::Embedded => Arc::new(EmbeddedQueues::new(EmbeddedSettings {
                visibility_timeout: Duration::from_millis(300),
                max_receive_count: MAX_RECEIVES,
                deduplication_window: Duration::from_secs(300),
            })),
            Backend::Sqs => Arc::new(create_test_queues(1, MAX_RECEIVES).await),
        };
        let context = Arc::new(ProbeContext::default());
        Self {
            consumer: JobConsumer::new(db.pool.clone(), queues.clone(), context.clone()),
            dead_letters: DeadLetterConsumer::new(
                db.pool.clone(),
                Registry::of::<Probe>(),
                MAX_RECEIVES,
            ),
            db,
            backend,
            queues,
            context,
        }
    }

    /// The probe's registry: the job type the rig runs.
    pub fn registry(&self) -> Registry {
        Registry::of::<Probe>()
    }

    pub fn source(&self, queue: QueueName) -> EventSource {
        let mut source = EventSource::new(self.queues.clone(), queue);
        source.wait = Duration::from_millis(match self.backend {
            Backend::Embedded => 50,
            // moto long-polls in whole seconds; 0 answers at once.
            Backend::Sqs => 0,
        });
        source.batch_timeout = Duration::from_secs(30);
        source
    }

    /// Rooms the probe can store messages for.
    pub async fn rooms(&self, ids: &[i64]) {
        for id in ids {
            sqlx::query("INSERT INTO chatwork_rooms (room_id, name, room_type) VALUES ($1, 'room', 'group')")
                .bind(id)
                .execute(&self.db.pool)
                .await
                .unwrap();
        }
    }

    pub async fn start(&self, key: &str, rooms: &[i64]) -> Started {
        self.start_in(key, rooms, None).await
    }

    /// Starts a job whose items all go in message group `group` (when given).
    pub async fn start_in(&self, key: &str, rooms: &[i64], group: Option<&str>) -> Started {
        let payload = ProbePayload {
            key: key.into(),
            rooms: rooms.to_vec(),
            group_override: group.map(str::to_owned),
        };
        jobs::start::<Probe>(
            &self.db.pool,
            self.queues.as_ref(),
            &payload,
            Some("user-1"),
        )
        .await
        .unwrap()
    }

    pub async fn job(&self, id: uuid::Uuid) -> Job {
        jobs::get(&self.db.pool, id).await.unwrap().unwrap()
    }

    /// Feeds the work queue to the probe's consumer and the dead-letter queue to the
    /// dead-letter consumer until `done` holds for the job.
    pub async fn run_until(&self, id: uuid::Uuid, what: &str, done: impl Fn(&Job) -> bool) -> Job {
        let work = self.source(MessagesSync::QUEUE);
        let dead = self.source(MessagesSync::QUEUE.dead_letter());
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let job = self.job(id).await;
            if done(&job) {
                return job;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}; job is {job:?}"
            );
            let a = work.poll_once(&self.consumer).await.unwrap();
            let b = dead.poll_once(&self.dead_letters).await.unwrap();
            if a + b == 0 {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }

    /// Runs the job until it is finished.
    pub async fn run_to_end(&self, id: uuid::Uuid) -> Job {
        self.run_until(id, "the job to finish", |j| j.status.is_terminal())
            .await
    }

    /// Every stored message as (room, message id, body), for comparing database states.
    pub async fn stored_messages(&self) -> Vec<(i64, String, String)> {
        sqlx::query_as(
            "SELECT room_id, message_id, body FROM messages ORDER BY room_id, message_seq",
        )
        .fetch_all(&self.db.pool)
        .await
        .unwrap()
    }

    pub async fn items(&self, id: uuid::Uuid) -> Vec<ItemRecord> {
        jobs::items(&self.db.pool, id).await.unwrap()
    }
}

/// Declares a test that runs once per queue backend.
#[macro_export]
macro_rules! on_both_backends {
    ($name:ident) => {
        mod $name {
            use super::*;
            #[tokio::test]
            async fn embedded() {
                super::$name(Backend::Embedded).await;
            }
            #[tokio::test]
            async fn sqs() {
                super::$name(Backend::Sqs).await;
            }
        }
    };
}
