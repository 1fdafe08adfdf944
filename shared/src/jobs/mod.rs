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
//! A job type is a [`JobSpec`] (its payload, its queue message, how it plans its items
//! and derives its result: all that starting a job needs) and a [`JobKind`] (how one item
//! runs, and what that needs). Adding a job type means a module implementing both, a value
//! of the `job_type` enum (a migration and [`JobType`]), its line in [`kinds`], and its
//! queue in the template.

mod dead_letter;
pub mod kinds;
mod retention;
mod runner;
mod start;
mod store;
mod sweeper;

use std::future::Future;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use tokio::time::Instant;
use uuid::Uuid;

use crate::queue::QueueName;

pub use dead_letter::DeadLetterConsumer;
pub use retention::delete_finished_jobs;
pub use runner::JobConsumer;
pub use start::{StartError, Started, start};
pub use store::{CancelOutcome, JobFilter, Progress, cancel, finalize, get, items, list, progress};
pub use sweeper::{SweepReport, SweepSettings, recover_unfinished, sweep};

/// The version of the queue message bodies this code writes and reads.
pub const MESSAGE_VERSION: u32 = 1;

/// The `job_type` enum.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    sqlx::Type,
    utoipa::ToSchema,
)]
#[sqlx(type_name = "job_type", rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum JobType {
    ChatworkRoomsSync,
    ChatworkMessagesSync,
    SummaryDraft,
}

impl JobType {
    pub const ALL: [JobType; 3] = [
        Self::ChatworkRoomsSync,
        Self::ChatworkMessagesSync,
        Self::SummaryDraft,
    ];

    /// The queue that carries this type's items.
    pub fn queue(self) -> QueueName {
        match self {
            Self::ChatworkRoomsSync => QueueName::RoomsSync,
            Self::ChatworkMessagesSync => QueueName::MessagesSync,
            Self::SummaryDraft => QueueName::SummaryDraft,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::ChatworkRoomsSync => "chatwork_rooms_sync",
            Self::ChatworkMessagesSync => "chatwork_messages_sync",
            Self::SummaryDraft => "summary_draft",
        }
    }
}

/// The `job_status` enum.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, sqlx::Type, utoipa::ToSchema,
)]
#[sqlx(type_name = "job_status", rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
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

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Processing => "processing",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Canceled => "canceled",
        }
    }
}

/// The `job_item_status` enum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, sqlx::Type)]
#[sqlx(type_name = "job_item_status", rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
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
}

/// What went wrong, as stored in `jobs.error` and `job_items.error`: `{name, message, stack?}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorInfo {
    pub name: String,
    pub message: String,
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

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("plain strings serialize")
    }
}

/// A job as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Job {
    pub id: Uuid,
    #[serde(rename = "type")]
    pub job_type: JobType,
    pub status: JobStatus,
    pub payload: serde_json::Value,
    pub result: Option<serde_json::Value>,
    pub error: Option<serde_json::Value>,
    pub user_id: Option<String>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[serde(skip)]
    pub active_key: Option<String>,
    pub total_items: i32,
    pub open_items: i32,
}

/// One item as its job's result is derived from it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ItemRecord {
    pub item_key: String,
    pub status: ItemStatus,
    pub fetched: i32,
    pub result: Option<serde_json::Value>,
    pub error: Option<serde_json::Value>,
    pub attempts: i32,
    /// The item's queue message.
    pub message: serde_json::Value,
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
}

/// How one item ended, when it ended as its handler intended.
#[derive(Debug, Clone, PartialEq)]
pub enum ItemOutcome {
    Completed {
        /// What the item fetched (messages of a room), for progress.
        fetched: i32,
        result: serde_json::Value,
    },
    /// There was nothing to do.
    Unchanged { result: serde_json::Value },
    /// The job was canceled; the handler stopped between steps.
    Canceled,
}

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
        store::is_canceled(&self.pool, self.job_id).await
    }

    /// The job's payload as the kind's type; a payload that does not parse fails the item.
    pub fn payload<P: DeserializeOwned>(&self) -> Result<P, ItemError> {
        serde_json::from_value(self.payload.clone()).map_err(|e| {
            ItemError::Fail(ErrorInfo::new(
                "InvalidPayload",
                format!("the job's payload does not parse: {e}"),
            ))
        })
    }

    /// Time left before the deadline.
    pub fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }
}

/// What a job type is: its payload, its queue message, and how a job plans its items and
/// derives its result. Enough to start jobs (the API, the scheduler); running them takes
/// [`JobKind`].
pub trait JobSpec: Send + Sync + Sized + 'static {
    /// Its value of the `job_type` enum.
    const TYPE: JobType;
    /// What a request to start the job carries (stored as `jobs.payload`).
    type Payload: Serialize + DeserializeOwned + Send + Sync;
    /// The item's part of a queue message (inside an [`Envelope`]).
    type Message: Serialize + DeserializeOwned + Send + Sync;

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
    fn summarize(items: &[ItemRecord]) -> serde_json::Value;
}

/// How a job type's items run. See the module documentation.
pub trait JobKind: JobSpec {
    /// What the handler needs besides the database (a Chatwork client, a summarizer, ...).
    type Context: Send + Sync + 'static;

    /// Does one item's work. It must be idempotent: after a crash anywhere in it, running
    /// it again leaves the database as one run would.
    fn run(
        context: &Self::Context,
        item: &ItemRun,
        message: Self::Message,
    ) -> impl Future<Output = Result<ItemOutcome, ItemError>> + Send;
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
