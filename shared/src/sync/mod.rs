//! The two sync job types: [`rooms::RoomsSync`] (Chatwork's room list into
//! `chatwork_rooms`) and [`messages::MessagesSync`] (each room's messages into
//! `messages`, and its tasks, files and members: [`extras`], planned by the room check:
//! [`check`]), and what they share: the
//! [`SyncContext`] their consumers run with, and how a Chatwork error ends an item.
//!
//! Both are written to be run again after a crash anywhere: every write is one statement
//! that is correct to repeat, and what an item has written is recorded in the same
//! statement as the write, so that a redelivered message neither counts twice nor asks
//! Chatwork again for work that is already stored.

pub mod check;
mod columns;
pub mod extras;
pub mod messages;
pub mod plan;
pub mod rooms;
mod snapshot;

use std::time::Duration;

use sqlx::PgPool;
use uuid::Uuid;

use crate::chatwork::{ChatworkClient, ChatworkError};
use crate::connections::Connections;
use crate::files::FileCopies;
use crate::jobs::{ErrorInfo, ItemError};

/// What the sync consumers run with: the process's Chatwork connections (each with its
/// client, rate budget and breaker, shared) and the knobs below.
#[derive(Debug, Clone)]
pub struct SyncContext {
    pub connections: Connections,
    pub settings: SyncSettings,
    /// Where the files' content is copied, and the cap (none: files are recorded, their
    /// content not copied).
    pub files: Option<FileCopies>,
}

impl SyncContext {
    /// A context with only the bootstrap connection of `chatwork` and the default
    /// [`SyncSettings`].
    pub fn new(chatwork: ChatworkClient) -> Self {
        Self::with_connections(Connections::of_client(chatwork))
    }

    /// A context over `connections` with the default [`SyncSettings`].
    pub fn with_connections(connections: Connections) -> Self {
        Self {
            connections,
            settings: SyncSettings::default(),
            files: None,
        }
    }

    /// The same context copying files to `files`.
    pub fn with_files(mut self, files: FileCopies) -> Self {
        self.files = Some(files);
        self
    }
}

/// Several connections' room lists as one: a room several list appears once, by the entry
/// that has moved furthest (the most messages, then the latest update).
pub(crate) fn one_entry_per_room(rooms: &mut Vec<crate::chatwork::Room>) {
    rooms.sort_by(|a, b| {
        a.room_id
            .cmp(&b.room_id)
            .then(b.message_num.cmp(&a.message_num))
            .then(b.last_update_time.cmp(&a.last_update_time))
    });
    rooms.dedup_by_key(|r| r.room_id);
}

/// Tuning of the sync handlers.
#[derive(Debug, Clone)]
pub struct SyncSettings {
    /// Rooms per upsert statement of a rooms sync (it checks cancellation between them).
    pub rooms_per_chunk: usize,
    /// The most room descriptions (`GET /rooms/{id}`) one rooms sync fetches; it also
    /// leaves at least half of the current rate window to other work. Rooms left over are
    /// fetched by the next rooms sync.
    pub max_descriptions: usize,
    /// How long a consumer may hold the claim to take a messages sync's room-list
    /// snapshot. Its own `GET /rooms` never runs longer; a claim older than this was
    /// left by a consumer that died, and another takes it over.
    pub snapshot_claim_lease: Duration,
    /// How often a consumer waiting for another's snapshot looks again.
    pub snapshot_poll: Duration,
    /// The room check that is the first step of a sync of all rooms.
    pub room_check: check::RoomCheckSettings,
}

impl Default for SyncSettings {
    /// 500 rooms per chunk, 100 descriptions per rooms sync, a 90 s snapshot claim, looked
    /// at every 200 ms.
    fn default() -> Self {
        Self {
            rooms_per_chunk: 500,
            max_descriptions: 100,
            snapshot_claim_lease: Duration::from_secs(90),
            snapshot_poll: Duration::from_millis(200),
            room_check: check::RoomCheckSettings::default(),
        }
    }
}

/// How a Chatwork error ends an item. The error is recorded on the room (`room`) first,
/// except for a rate limit or a deadline, which say nothing about the room:
///
/// - a rate limit that opens only after the invocation's deadline, a deadline, or an
///   unreachable budget: retry (the record goes back to the queue);
/// - 5xx, network errors and timeouts (the client already retried them): retry;
/// - 401, 403, 404 and anything else that cannot succeed by trying again: the item fails.
///
/// When the room's error cannot be written, the item is retried rather than failed, so
/// that a failure is never left without its error on the room.
pub(crate) async fn chatwork_failure(
    pool: &PgPool,
    room: Option<Uuid>,
    error: ChatworkError,
) -> ItemError {
    match &error {
        ChatworkError::RateLimited { until } => {
            tracing::warn!(
                until = %until,
                "the Chatwork rate budget opens only after this invocation's deadline; \
                 the record goes back to the queue"
            );
            return ItemError::Retry(anyhow::Error::new(error));
        }
        ChatworkError::Deadline { .. } | ChatworkError::Budget { .. } => {
            return ItemError::Retry(anyhow::Error::new(error));
        }
        // Not the room's fault, and nothing was sent: back to the queue, no room error.
        ChatworkError::Unavailable { until } => {
            tracing::warn!(
                until = %until,
                "Chatwork is unavailable (the outage breaker is open); the record goes back to the queue"
            );
            return ItemError::Retry(anyhow::Error::new(error));
        }
        _ => {}
    }
    if let Some(room) = room
        && let Err(db) = record_room_error(pool, room, &error).await
    {
        // The database error stays in the chain: the job core tells from it whether to retry.
        return ItemError::Retry(
            anyhow::Error::new(db)
                .context(format!("could not record the room's error after: {error}")),
        );
    }
    if error.is_retryable() {
        tracing::warn!(error = %error, "Chatwork failed; the record goes back to the queue");
        ItemError::Retry(anyhow::Error::new(error))
    } else {
        tracing::warn!(error = %error, "Chatwork refused; the item fails without retries");
        let name = match error.status() {
            Some(401) => "ChatworkUnauthorized",
            Some(403) => "ChatworkForbidden",
            Some(404) => "ChatworkNotFound",
            _ => "ChatworkError",
        };
        ItemError::Fail(ErrorInfo::new(name, error.to_string()))
    }
}

/// Records a Chatwork error on the room: when, what (one line of at most 500 characters,
/// never the token: see [`ChatworkError`]) and the HTTP status when there was one.
async fn record_room_error(
    pool: &PgPool,
    room: Uuid,
    error: &ChatworkError,
) -> Result<(), sqlx::Error> {
    let status = error.status().map(i32::from);
    sqlx::query!(
        r#"UPDATE chatwork_rooms
              SET last_error_at = now(), last_error_message = $2, last_error_status = $3,
                  updated_at = now()
            WHERE id = $1"#,
        room,
        error.to_string(),
        status,
    )
    .execute(pool)
    .await?;
    Ok(())
}
