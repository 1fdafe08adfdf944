//! The rest of a room besides its messages: its tasks, its files (their content copied to
//! a [`FileStore`](crate::files::FileStore)) and its members, each an item of the same
//! messages sync as the room's messages (keys `tasks-<id>`, `files-<id>`,
//! `members-<id>`, in the room's queue group), planned by the room check when the room
//! list's `task_num` or `file_num` moved or the members are due (see
//! `super::check::RoomExtras`; docs/architecture.md, "Tasks, files and members").
//!
//! Each item costs one request (a file's copy one more, for its download URL), spends the
//! connection's shared budget like any other, and is safe to run again: every write is an
//! upsert, and a copied file is never copied again. A Chatwork error ends the item as it
//! ends a room's messages (recorded on the room; retried or failed), and the room's
//! `synced_*` counts move only after a successful fetch.

mod files;
mod members;
mod tasks;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::messages::{ItemReport, MessagesSync, RoomPart};
use super::{SyncContext, chatwork_failure};
use crate::chatwork::{ChatworkError, RequestMeter};
use crate::connections::store as connection_store;
use crate::jobs::{ErrorInfo, ItemError, ItemOutcome, ItemRun, ItemStatus, JobItem, Outcome};

/// What one part's item did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PartReport {
    pub part: Option<RoomPart>,
    pub room_id: i64,
    /// Tasks, files or members Chatwork listed.
    pub listed: i64,
    /// Chatwork requests of the delivery that ended the item.
    pub requests: i64,
    /// Tasks new to cwsync, or changed (done, a new deadline, ...).
    #[serde(default)]
    pub changed: i64,
    /// Files copied to storage by this item.
    #[serde(default)]
    pub copied: i64,
    /// Files over the cap (recorded, not copied).
    #[serde(default)]
    pub too_large: i64,
    /// Files whose copy failed for good.
    #[serde(default)]
    pub failed: i64,
    /// Files still waiting for a copy.
    #[serde(default)]
    pub pending: i64,
    /// Members gone from the room (deleted).
    #[serde(default)]
    pub removed: i64,
    /// Company suggestions the members made.
    #[serde(default)]
    pub suggestions: i64,
}

/// The tasks, files and members items of a messages sync, added up.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExtrasResult {
    /// Items that ended `completed`, by part.
    pub tasks_rooms: i64,
    pub files_rooms: i64,
    pub members_rooms: i64,
    /// Items that failed (listed among the job's errors).
    pub failed_items: i64,
    pub tasks_changed: i64,
    pub files_copied: i64,
    pub files_too_large: i64,
    pub files_failed: i64,
    pub files_pending: i64,
    pub suggestions: i64,
    pub requests: i64,
}

type Item = JobItem<super::messages::MessagesSyncMessage, ItemReport>;

/// Adds up the part items of a job.
pub(crate) fn summarize(items: &[&Item]) -> ExtrasResult {
    let mut result = ExtrasResult::default();
    for item in items {
        if item.status == ItemStatus::Failed {
            result.failed_items += 1;
        }
        let Some(ItemReport::Part(report)) = &item.result else {
            continue;
        };
        if item.status == ItemStatus::Completed {
            match report.part {
                Some(RoomPart::Tasks) => result.tasks_rooms += 1,
                Some(RoomPart::Files) => result.files_rooms += 1,
                Some(RoomPart::Members) => result.members_rooms += 1,
                None => {}
            }
        }
        result.tasks_changed += report.changed;
        result.files_copied += report.copied;
        result.files_too_large += report.too_large;
        result.files_failed += report.failed;
        result.files_pending += report.pending;
        result.suggestions += report.suggestions;
        result.requests += report.requests;
    }
    result
}

/// Why a part's sync stopped.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PartError {
    #[error(transparent)]
    Chatwork(#[from] ChatworkError),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("file storage: {0}")]
    Storage(#[from] crate::files::FileStoreError),
}

/// Runs one part's item of `room_id`: through the connection the check chose, else the
/// member with the most budget left.
pub(crate) async fn run(
    context: &SyncContext,
    item: &ItemRun,
    room_id: i64,
    part: RoomPart,
    listed_count: Option<i64>,
    connection: Option<Uuid>,
) -> Result<Outcome<MessagesSync>, ItemError> {
    tracing::Span::current().record("room_id", room_id);
    if item.is_canceled().await? {
        return Ok(ItemOutcome::Canceled);
    }
    let pool = &item.pool;
    let room = sqlx::query_scalar!("SELECT id FROM chatwork_rooms WHERE room_id = $1", room_id)
        .fetch_optional(pool)
        .await?;
    let Some(room) = room else {
        return Err(ItemError::Fail(ErrorInfo::new(
            "RoomNotFound",
            format!("room {room_id} is not registered; run a rooms sync first"),
        )));
    };
    let through = match connection {
        Some(id) => Some(id),
        None => connection_store::fetcher_of(pool, room_id, &[]).await?,
    };
    let Some(through) = through else {
        let error = ChatworkError::Connection {
            message: format!("no active connection is a member of room {room_id}"),
        };
        return Err(chatwork_failure(pool, Some(room), error).await);
    };
    let meter = RequestMeter::default();
    let client = match context.connections.client(through).await {
        Ok(client) => client.counted_by(&meter),
        Err(e) => return Err(chatwork_failure(pool, Some(room), e).await),
    };
    let target = Target {
        room,
        room_id,
        listed_count,
    };
    let done = match part {
        RoomPart::Tasks => tasks::sync(&client, pool, &target, item.deadline).await,
        RoomPart::Files => files::sync(&client, item, context.files.as_ref(), &target).await,
        RoomPart::Members => members::sync(&client, pool, &target, item.deadline).await,
    };
    match done {
        Ok(Some(mut report)) => {
            report.part = Some(part);
            report.room_id = room_id;
            report.requests = meter.snapshot().requests as i64;
            tracing::info!(
                room_id,
                part = part.as_str(),
                listed = report.listed,
                changed = report.changed,
                copied = report.copied,
                suggestions = report.suggestions,
                "room part synced"
            );
            Ok(ItemOutcome::Completed {
                fetched: i32::try_from(report.listed).unwrap_or(i32::MAX),
                result: ItemReport::Part(report),
            })
        }
        Ok(None) => Ok(ItemOutcome::Canceled),
        Err(PartError::Chatwork(e)) => Err(chatwork_failure(pool, Some(room), e).await),
        Err(e) => Err(ItemError::Retry(e.into())),
    }
}

/// The room a part's item works on.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Target {
    /// `chatwork_rooms.id`.
    pub room: Uuid,
    pub room_id: i64,
    /// What the room list counted when the check planned the item (recorded as synced).
    pub listed_count: Option<i64>,
}

/// `text` cut to `max` characters, for columns Chatwork's text could overflow.
pub(crate) fn clip(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}

/// A count as the database's `integer`.
pub(crate) fn as_int(n: Option<i64>) -> Option<i32> {
    n.map(|n| i32::try_from(n.max(0)).unwrap_or(i32::MAX))
}
