//! Jobs: the state machine, fan-out into items, and the job-type abstraction.
//!
//! A job moves `queued → processing → completed | failed | canceled`; it may also be
//! canceled or failed while still queued. Each transition is one UPDATE whose WHERE clause
//! names the states it may leave, so of two racing writers only one can win.
//!
//! A job's work is split into items (one per room of a messages sync, one for the other
//! types), each carried by one queue message. An item reaches a terminal state once: the
//! UPDATE that ends it only matches an open item, and in the same statement decrements the
//! job's `open_items` under the job row's lock. Exactly one item end sees the count reach
//! zero and finishes the job, whose result is then derived from all its items, so a
//! redelivered message can neither count twice nor end the job twice.
//!
//! This module knows no job type. A job type is a [`JobSpec`] (its `job_type` value, its
//! queue, its payload, queue message, item result and job result, each a type; how it
//! plans its items and derives its result) and a [`JobKind`] (how one item runs, and
//! what that needs). The [`Registry`] holds the types an application runs; the code that
//! handles jobs of any type (the sweeper, the dead-letter consumer, cancel, finalize, the
//! API, the local runner) reads it. Adding a job type touches exactly:
//!
//! 1. its module, implementing [`JobSpec`] and [`JobKind`];
//! 2. a migration adding its value to the `job_type` enum;
//! 3. its line in `cwsync::job_types::registry` (the one list of job types; queue names,
//!    queue URL settings, queue set-up, the API function's check and the local runner's
//!    consumers and job view are derived from it);
//! 4. a function crate under `functions/` (its consumer Lambda);
//! 5. `template.yaml`: its queue, dead-letter queue, function and alarms.
//!
//! `tests/tests/integration/job_core/extra_type.rs` adds a job type with steps 1 to 3 and
//! runs it end to end over the embedded queue.

mod connection;
mod dead_letter;
pub mod failure;
mod registry;
mod retention;
mod runner;
mod start;
pub(crate) mod store;
mod sweeper;

use std::borrow::Cow;
use std::future::Future;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use sqlx::postgres::{PgArgumentBuffer, PgTypeInfo, PgValueRef};
use tokio::time::Instant;
use uuid::Uuid;

use crate::queue::QueueName;

pub use connection::BatchConnection;
pub use dead_letter::DeadLetterConsumer;
pub use registry::{Contexts, MissingContext, RegisteredType, Registry, RetryPlan};
pub use retention::{count_finished_jobs, delete_finished_jobs};
pub use runner::{JobConsumer, RecordFailure};
pub use start::{StartError, Started, start, start_recorded};
pub use store::{
    Begin, CancelOutcome, Ended, JobFilter, JobRecord, Progress, cancel, cancel_recorded, finalize,
    get, items, list, progress,
};
pub use sweeper::{SweepReport, SweepSettings, recover_unfinished, sweep, sweep_preview};

/// The version of the queue message bodies this code writes and reads.
pub const MESSAGE_VERSION: u32 = 1;

/// A value of the `job_type` enum: which job type a job is. Open, so that a job type is
/// a module of its own and not a variant here; the values a database accepts are its
/// enum's, and the ones an application runs are its [`Registry`]'s.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JobType(&'static str);

impl JobType {
    pub const fn new(name: &'static str) -> Self {
        Self(name)
    }

    /// A name read from the database or a request (interned: they are the enum's few
    /// values).
    pub fn from_name(name: &str) -> Self {
        Self(crate::text::intern(name))
    }

    pub fn as_str(self) -> &'static str {
        self.0
    }
}

impl std::fmt::Debug for JobType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "JobType({})", self.0)
    }
}

impl std::fmt::Display for JobType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl Serialize for JobType {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.0)
    }
}

impl<'de> Deserialize<'de> for JobType {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = Cow::<'de, str>::deserialize(deserializer)?;
        Ok(Self::from_name(&name))
    }
}

impl sqlx::Type<sqlx::Postgres> for JobType {
    fn type_info() -> PgTypeInfo {
        PgTypeInfo::with_name("job_type")
    }
}

impl sqlx::Encode<'_, sqlx::Postgres> for JobType {
    fn encode_by_ref(
        &self,
        buf: &mut PgArgumentBuffer,
    ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
        <&str as sqlx::Encode<sqlx::Postgres>>::encode_by_ref(&self.0, buf)
    }
}

impl sqlx::Decode<'_, sqlx::Postgres> for JobType {
    fn decode(value: PgValueRef<'_>) -> Result<Self, sqlx::error::BoxDynError> {
        let name = <&str as sqlx::Decode<sqlx::Postgres>>::decode(value)?;
        Ok(Self::from_name(name))
    }
}

/// The `job_status` enum.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    sqlx::Type,
    utoipa::ToSchema,
    strum::IntoStaticStr,
)]
#[sqlx(type_name = "job_status", rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum JobStatus {
    Queued,
    Processing,
    Completed,
    Failed,
    Canceled,
}

impl JobStatus {
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::Canceled)
    }

    /// Whether the state machine allows `self → next`. The SQL of each transition states
    /// the same rule in its WHERE clause; this is the rule in one place, for code and tests.
    pub fn can_become(self, next: JobStatus) -> bool {
        use JobStatus::*;
        matches!(
            (self, next),
            (Queued, Processing)
                | (Queued, Canceled)
                | (Queued, Failed)
                | (Processing, Completed)
                | (Processing, Failed)
                | (Processing, Canceled)
        )
    }

    /// The enum value (`queued`, ...), as in the database and the API.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// The `job_item_status` enum.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    sqlx::Type,
    utoipa::ToSchema,
    strum::IntoStaticStr,
)]
#[sqlx(type_name = "job_item_status", rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum ItemStatus {
    /// Written, not yet handed to the queue.
    Pending,
    /// Handed to the queue.
    Queued,
    Processing,
    Completed,
    /// Nothing to do (a room that did not move since its last sync).
    Unchanged,
    Failed,
    Canceled,
}

impl ItemStatus {
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::Completed | Self::Unchanged | Self::Failed | Self::Canceled
        )
    }

    /// The enum value (`pending`, ...), as in the database.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// What went wrong, as stored in `jobs.error` and `job_items.error`: `{name, message, stack?}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErrorInfo {
    /// What kind of failure (`RoomNotFound`, `DeadLettered`, `Stale`, ...).
    pub name: String,
    /// What happened, for a person.
    pub message: String,
    /// Details for operators; only admins see it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stack: Option<String>,
}

impl ErrorInfo {
    pub fn new(name: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            message: message.into(),
            stack: None,
        }
    }

    /// The error as a non-admin may see it: without its `stack`, and without a message
    /// that carries a database's or a library's own words (errors stored before failures
    /// were told for people, or a path that still lets one through), which name relations,
    /// constraints and internal types.
    pub fn public(&self) -> Self {
        if internal_detail(&self.message) {
            return Self::new(
                self.name.clone(),
                "the work failed for a reason an administrator can see in the job's details",
            );
        }
        Self::new(self.name.clone(), self.message.clone())
    }
}

/// Whether a message reads like a database's or a library's error rather than ours.
fn internal_detail(message: &str) -> bool {
    const MARKERS: [&str; 12] = [
        "error returned from database",
        "violates",
        "relation \"",
        "constraint",
        "SQLSTATE",
        "sqlx",
        "syntax error",
        "out of range",
        "pool timed out",
        "::",
        "column \"",
        "invalid input syntax",
    ];
    let lower = message.to_ascii_lowercase();
    MARKERS
        .iter()
        .any(|marker| lower.contains(&marker.to_ascii_lowercase()))
}

// Stored as JSONB: the database keeps JSON, the code reads and writes this type.
impl sqlx::Type<sqlx::Postgres> for ErrorInfo {
    fn type_info() -> PgTypeInfo {
        <sqlx::types::Json<Self> as sqlx::Type<sqlx::Postgres>>::type_info()
    }
}

impl sqlx::Encode<'_, sqlx::Postgres> for ErrorInfo {
    fn encode_by_ref(
        &self,
        buf: &mut PgArgumentBuffer,
    ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
        <sqlx::types::Json<&Self> as sqlx::Encode<sqlx::Postgres>>::encode(
            sqlx::types::Json(self),
            buf,
        )
    }
}

impl sqlx::Decode<'_, sqlx::Postgres> for ErrorInfo {
    fn decode(value: PgValueRef<'_>) -> Result<Self, sqlx::error::BoxDynError> {
        Ok(<sqlx::types::Json<Self> as sqlx::Decode<sqlx::Postgres>>::decode(value)?.0)
    }
}

/// A job as stored. `payload` and `result` are kept as JSON here, where the job's type is
/// not known; [`Job::payload_as`] and [`Job::result_as`] read them as their type's types.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Job {
    pub id: Uuid,
    #[serde(rename = "type")]
    pub job_type: JobType,
    pub status: JobStatus,
    pub payload: serde_json::Value,
    pub result: Option<serde_json::Value>,
    pub error: Option<ErrorInfo>,
    pub user_id: Option<String>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[serde(skip)]
    pub active_key: Option<String>,
    pub total_items: i32,
    pub open_items: i32,
    /// Steps not finished yet (see [`PlannedItem::step`]).
    #[serde(skip)]
    pub open_steps: i32,
}

impl Job {
    /// The payload as `K`'s type; `None` for a job of another type or one that does not
    /// parse.
    pub fn payload_as<K: JobSpec>(&self) -> Option<K::Payload> {
        (self.job_type == K::TYPE)
            .then(|| serde_json::from_value(self.payload.clone()).ok())
            .flatten()
    }

    /// The result as `K`'s type; `None` before the job has one, or for another type.
    pub fn result_as<K: JobSpec>(&self) -> Option<K::Result> {
        (self.job_type == K::TYPE)
            .then(|| serde_json::from_value(self.result.clone()?).ok())
            .flatten()
    }
}

/// One item as stored; its job's type reads it as a [`JobItem`].
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ItemRecord {
    pub item_key: String,
    pub status: ItemStatus,
    pub fetched: i32,
    pub result: Option<serde_json::Value>,
    pub error: Option<ErrorInfo>,
    pub attempts: i32,
    /// The item's queue message.
    pub message: serde_json::Value,
    /// A step of the job's own (see [`PlannedItem::step`]).
    pub step: bool,
}

/// One item as its job type reads it: its queue message and result as that type's types.
#[derive(Debug, Clone, PartialEq)]
pub struct JobItem<M, R> {
    pub item_key: String,
    pub status: ItemStatus,
    pub fetched: i32,
    /// `None` before it has one (or when a stored one no longer parses).
    pub result: Option<R>,
    pub error: Option<ErrorInfo>,
    pub attempts: i32,
    /// `None` when the stored message no longer parses.
    pub message: Option<M>,
    /// A step of the job's own (see [`PlannedItem::step`]).
    pub step: bool,
}

impl ItemRecord {
    /// The item as job type `K` reads it. A stored result or message that no longer
    /// parses (written by another version) reads as absent, with a warning, rather than
    /// stopping the job from finishing.
    pub fn typed<K: JobSpec>(&self) -> JobItem<K::Message, K::ItemResult> {
        fn read<T: DeserializeOwned>(
            what: &str,
            key: &str,
            value: &serde_json::Value,
        ) -> Option<T> {
            serde_json::from_value(value.clone())
                .map_err(|e| tracing::warn!(item_key = key, error = %e, "a stored {what} does not parse"))
                .ok()
        }
        JobItem {
            item_key: self.item_key.clone(),
            status: self.status,
            fetched: self.fetched,
            result: self
                .result
                .as_ref()
                .and_then(|r| read("result", &self.item_key, r)),
            error: self.error.clone(),
            attempts: self.attempts,
            message: read::<Envelope<K::Message>>("message", &self.item_key, &self.message)
                .map(|e| e.item),
            step: self.step,
        }
    }
}

/// A queue message body: the version and the job, then the item's own fields
/// (`{v:1, jobId}`, `{v:1, jobId, roomId}`, ...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Envelope<M> {
    pub v: u32,
    pub job_id: Uuid,
    #[serde(flatten)]
    pub item: M,
}

/// One item a job plans: its queue message and the message group it goes in.
#[derive(Debug, Clone)]
pub struct PlannedItem<M> {
    pub message: M,
    /// SQS MessageGroupId (`room-<id>`, `rooms`, `company-<id>`).
    pub group_id: String,
    /// A step of the job's own work rather than a unit of what it was asked to do (a
    /// messages sync's room check, which plans the rooms): the job does not finish while
    /// a step is open, but steps are not counted among its items or in its progress.
    pub step: bool,
}

impl<M> PlannedItem<M> {
    /// A unit of the job's work.
    pub fn work(message: M, group_id: impl Into<String>) -> Self {
        Self {
            message,
            group_id: group_id.into(),
            step: false,
        }
    }

    /// A step of the job's own (see [`PlannedItem::step`]); its handler usually ends it
    /// with [`ItemOutcome::Planned`].
    pub fn step(message: M, group_id: impl Into<String>) -> Self {
        Self {
            message,
            group_id: group_id.into(),
            step: true,
        }
    }
}

/// How one item ended, when it ended as its handler intended.
#[derive(Debug, Clone)]
pub enum ItemOutcome<M, R> {
    Completed {
        /// What the item fetched (messages of a room), for progress.
        fetched: i32,
        result: R,
    },
    /// Completed, and the handler's own statement already stored the result and ended
    /// the item with `cwsync_end_items` (one round trip instead of two): `ended` is how
    /// that went, and the job core only finishes the job when it was the last.
    Written { fetched: i32, ended: store::Ended },
    /// There was nothing to do.
    Unchanged { result: R },
    /// The job grows: `items` join it, then the item (usually a step) ends completed with
    /// `result`, in one transaction, and the new items are sent to the type's queue. The
    /// job ends only after them.
    Planned {
        result: R,
        items: Vec<PlannedItem<M>>,
    },
    /// The job was canceled; the handler stopped between steps.
    Canceled,
}

/// The outcome of one of `K`'s items.
pub type Outcome<K> = ItemOutcome<<K as JobSpec>::Message, <K as JobSpec>::ItemResult>;

/// Why an item could not end as intended.
#[derive(Debug)]
pub enum ItemError {
    /// Worth another try (a 5xx, a network or database error): the queue record fails, SQS
    /// delivers it again, and after its retries moves it to the dead-letter queue.
    Retry(anyhow::Error),
    /// Can never succeed (a 404 room, a bad payload): the item ends failed now.
    Fail(ErrorInfo),
}

impl<E: Into<anyhow::Error>> From<E> for ItemError {
    fn from(e: E) -> Self {
        Self::Retry(e.into())
    }
}

/// What a handler gets besides its message: the job, the database and the time it has.
#[derive(Debug, Clone)]
pub struct ItemRun {
    pub pool: PgPool,
    /// The batch's connection, on which the job core runs the record's statements (see
    /// [`BatchConnection`]); a handler may run its own on it too.
    pub db: BatchConnection,
    pub job_id: Uuid,
    pub job_type: JobType,
    pub payload: serde_json::Value,
    pub user_id: Option<String>,
    pub job_created_at: DateTime<Utc>,
    pub item_key: String,
    /// 1 on the first delivery that started this item, 2 on the next, ...
    pub attempt: i32,
    /// When the handler's time is up (the Lambda's deadline less a margin).
    pub deadline: Instant,
}

impl ItemRun {
    /// Whether the job was canceled since the item started. Handlers ask between steps.
    pub async fn is_canceled(&self) -> Result<bool, sqlx::Error> {
        store::is_canceled(&mut *self.db.lock().await?, self.job_id).await
    }

    /// The job's payload as the kind's type; a payload that does not parse fails the item.
    pub fn payload<P: DeserializeOwned>(&self) -> Result<P, ItemError> {
        serde_json::from_value(self.payload.clone()).map_err(|e| {
            ItemError::Fail(ErrorInfo {
                stack: Some(format!("the job's payload does not parse: {e}")),
                ..ErrorInfo::new("InvalidPayload", "the job's request could not be read")
            })
        })
    }

    /// Time left before the deadline.
    pub fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }
}

/// What a job type is: its `job_type` value and queue, its payload, queue message, item
/// result and job result, and how a job plans its items and derives its result. Enough to
/// start jobs (the API, the scheduler); running them takes [`JobKind`].
pub trait JobSpec: Send + Sync + Sized + 'static {
    /// Its value of the `job_type` enum.
    const TYPE: JobType;
    /// The work queue that carries its items (its dead-letter queue follows from it).
    const QUEUE: QueueName;
    /// What people call a job of this type (`rooms sync`), in logs and the local view.
    const LABEL: &'static str;
    /// What its items are, in progress lines (`3/12 rooms`).
    const ITEMS: &'static str = "items";
    /// What a request to start the job carries (stored as `jobs.payload`).
    type Payload: Serialize + DeserializeOwned + Send + Sync;
    /// The item's part of a queue message (inside an [`Envelope`]).
    type Message: Serialize + DeserializeOwned + Send + Sync;
    /// What one item's run yields (stored as `job_items.result`).
    type ItemResult: Serialize + DeserializeOwned + Send + Sync;
    /// The job's result, derived from its items (stored as `jobs.result`).
    type Result: Serialize + DeserializeOwned + Send + Sync;

    /// Names the work a job does; while one job of this type with this key is queued or
    /// processing, a request for another gets that one back.
    fn active_key(payload: &Self::Payload) -> String;

    /// The item a message carries (unique within its job).
    fn item_key(message: &Self::Message) -> String;

    /// The job's items.
    fn plan(
        pool: &PgPool,
        payload: &Self::Payload,
    ) -> impl Future<Output = Result<Vec<PlannedItem<Self::Message>>, sqlx::Error>> + Send;

    /// The job's result, derived from all its items.
    fn summarize(items: &[JobItem<Self::Message, Self::ItemResult>]) -> Self::Result;

    /// A finished job's result in a few words, for a terminal line
    /// (`12 rooms (12 new, 0 changed)`).
    fn describe(result: &Self::Result) -> String;

    /// The payload of a job that does again only `failed`, the failed items (at least
    /// one) of a finished job that had `payload` (`POST /api/jobs/{id}/retry`); `None`
    /// when this type cannot start a job over some of its items only. Whatever this
    /// says, a job whose every item failed can be retried whole with its own payload
    /// (see [`Registry`]), so a type with a single item needs nothing here.
    fn retry_payload(
        payload: &Self::Payload,
        failed: &[JobItem<Self::Message, Self::ItemResult>],
    ) -> Option<Self::Payload> {
        let _ = (payload, failed);
        None
    }
}

/// Starts item `item_key` of job `job_id` on the batch's connection, reading nothing
/// else: [`JobKind::begin`] of a kind whose `Read` is `()`.
pub async fn begin_item(
    db: &BatchConnection,
    job_id: Uuid,
    item_key: &str,
) -> Result<Begin, sqlx::Error> {
    store::begin_item(&mut *db.lock().await?, job_id, item_key).await
}

/// How a job type's items run. See the module documentation.
pub trait JobKind: JobSpec {
    /// What the handler needs besides the database (a Chatwork client, a summarizer, ...).
    type Context: Send + Sync + 'static;

    /// What [`JobKind::begin`] reads for the handler besides the item's start (`()` for
    /// a kind that reads nothing there).
    type Read: Send;

    /// Starts an item's delivery on the batch's connection: the job core's one statement
    /// ([`begin_item`]), or a statement of the kind's that also reads what its handler
    /// reads first (one round trip instead of two), handed to [`JobKind::run`] as `read`.
    fn begin(
        context: &Self::Context,
        db: &BatchConnection,
        job_id: Uuid,
        item_key: &str,
        message: &Self::Message,
    ) -> impl Future<Output = Result<Begin<Self::Read>, sqlx::Error>> + Send;

    /// Does one item's work. It must be idempotent: after a crash anywhere in it, running
    /// it again leaves the database as one run would.
    fn run(
        context: &Self::Context,
        item: &ItemRun,
        message: Self::Message,
        read: Self::Read,
    ) -> impl Future<Output = Result<Outcome<Self>, ItemError>> + Send;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_machine_allows_only_its_transitions() {
        use JobStatus::*;
        let all = [Queued, Processing, Completed, Failed, Canceled];
        let allowed: Vec<_> = all
            .iter()
            .flat_map(|a| all.iter().map(move |b| (*a, *b)))
            .filter(|(a, b)| a.can_become(*b))
            .collect();
        assert_eq!(
            allowed,
            [
                (Queued, Processing),
                (Queued, Failed),
                (Queued, Canceled),
                (Processing, Completed),
                (Processing, Failed),
                (Processing, Canceled),
            ]
        );
        for terminal in [Completed, Failed, Canceled] {
            assert!(terminal.is_terminal());
            assert!(all.iter().all(|next| !terminal.can_become(*next)));
        }
    }

    #[test]
    fn the_public_error_keeps_our_words_and_drops_the_database_s() {
        let ours = ErrorInfo {
            stack: Some("detail".into()),
            ..ErrorInfo::new("ChatworkNotFound", "Chatwork answered 404 on GET /rooms/5")
        };
        assert_eq!(
            ours.public(),
            ErrorInfo::new("ChatworkNotFound", "Chatwork answered 404 on GET /rooms/5")
        );
        let stored = ErrorInfo::new(
            "RetryableError",
            "error returned from database: new row for relation \"summary_drafts\" violates check constraint \"summary_drafts_check\"",
        );
        let public = stored.public();
        assert_eq!(public.name, "RetryableError");
        for internal in ["summary_drafts", "constraint", "relation", "database"] {
            assert!(!public.message.contains(internal), "{}", public.message);
        }
    }

    #[test]
    fn envelopes_carry_the_version_the_job_and_the_item() {
        #[derive(Debug, PartialEq, Serialize, Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Room {
            room_id: i64,
        }
        let id = Uuid::nil();
        let body = serde_json::to_value(Envelope {
            v: 1,
            job_id: id,
            item: Room { room_id: 42 },
        })
        .unwrap();
        assert_eq!(
            body,
            serde_json::json!({"v": 1, "jobId": "00000000-0000-0000-0000-000000000000", "roomId": 42})
        );
        #[derive(Debug, PartialEq, Serialize, Deserialize)]
        struct Nothing {}
        let body = serde_json::to_string(&Envelope {
            v: 1,
            job_id: id,
            item: Nothing {},
        })
        .unwrap();
        assert_eq!(
            body,
            r#"{"v":1,"jobId":"00000000-0000-0000-0000-000000000000"}"#
        );
    }
}
