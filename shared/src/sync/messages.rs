//! `chatwork_messages_sync`: one item per room, each storing the room's latest messages.
//!
//! A job fetches one room (`roomId`), the rooms a room check planned (`rooms`: see
//! [`check`](super::check); each comes with what the check's room list said of it, so
//! the item neither asks for the list again nor decides again: it fetches), or every
//! active room.
//!
//! An item, for one room:
//!
//! 1. One statement starts the item (the job core's start, folded in: see
//!    [`JobKind::begin`]) and reads what the decision needs: the room's state at its last
//!    successful sync, the room's entry in the job's room-list snapshot (see
//!    [`snapshot`](super::snapshot)), and whether an earlier delivery of this item already
//!    stored its messages (then its result is returned as it was). When that state says
//!    the room will be fetched, the same statement reserves the request in the rate
//!    budget.
//! 2. Without a snapshot yet, the item takes it or waits for the consumer that does, and
//!    checks for cancellation again.
//! 3. A room whose `last_update_time` in the snapshot is the one its last successful sync
//!    saw ends `unchanged` without a request (not for a room a check planned). A single-room sync always fetches; so does
//!    an all-rooms sync for a room the snapshot does not list (only the request can say
//!    whether it is gone or forbidden).
//! 4. `GET /rooms/{id}/messages?force=1` (the latest 100).
//! 5. One statement writes everything, unless the job was canceled meanwhile: new
//!    messages inserted (with the company when the room is linked to exactly one),
//!    identical ones ignored, edited ones (a later `update_time`) updated; the room's
//!    `last_message_id` (numeric maximum), `last_sync_at`, errors cleared, the snapshot's
//!    `last_update_time` and message count it was synced at, a gap when there was one,
//!    the plan's message limitation when Chatwork reported one, and that the room no
//!    longer waits for a fetch; and the item's result and end (the job core's end,
//!    folded in), which marks the room as done for a redelivery. The same statement
//!    records the request's answer in the rate budget, whatever the job's state.
//!
//! A room's `last_update_time` has a resolution of one second: when the snapshot's is
//! within [`SETTLE_SECS`] of the fetch, a message posted later in that same second would
//! not move it, so the sync records none and the next sync fetches the room again.
//!
//! Statements per room (issue 19: fewer round trips), all on the batch's one connection
//! (see [`BatchConnection`]): 2 for an unchanged room (the start with the read, the job
//! core's end of the item) and 2 for a changed one (the start with the read and the
//! reservation, the write with the end and the record); the item that takes the
//! snapshot spends 3 more (and the room list's request its own reservation and record).

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use uuid::Uuid;

use super::check::{self, CheckError, CheckTrigger, RoomCheckReport};
use super::snapshot::{self, Entry, ListedRoom, SnapshotError};
use super::{SyncContext, chatwork_failure};
use crate::chatwork::{DeferredRecord, GrantGuard, Message, MessagesOptions, compare_message_ids};
use crate::jobs::{
    BatchConnection, ErrorInfo, ItemError, ItemOutcome, ItemRun, ItemStart, ItemStatus, JobItem,
    JobKind, JobSpec, JobStatus, JobType, PlannedItem, store,
};
use crate::queue::QueueName;

/// The most messages one `GET /rooms/{id}/messages` returns: Chatwork has no paging into
/// older history, so a room that got more than this since its last sync has a gap.
pub const FETCH_LIMIT: usize = 100;

/// The messages sync job type.
pub struct MessagesSync;

/// `{roomId?, rooms?, roomIds?, check?}`: one room (Chatwork's id); the rooms a room
/// check planned, with what it saw of each; these rooms (a retry of a sync's failed
/// rooms); a room check first (`check: true`, a sync of all rooms started over HTTP: one
/// item checks, and the rooms that need a fetch get a job of their own); or (none of
/// them) every active room, the fixed schedule's fallback.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessagesSyncPayload {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room_id: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rooms: Option<Vec<CheckedRoom>>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub check: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room_ids: Option<Vec<i64>>,
}

/// A room a room check planned a fetch for, and what Chatwork's room list said of it:
/// the item decides and detects gaps by this instead of taking a room list of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckedRoom {
    pub room_id: i64,
    /// Chatwork's `last_update_time` (epoch seconds; 0 for a room without activity).
    pub last_update_time: i64,
    /// Chatwork's `message_num`.
    pub message_num: i64,
}

/// The queue message: `{v:1, jobId, roomId}`, or `{v:1, jobId}` for the room check
/// of a `check` job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessagesSyncMessage {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room_id: Option<i64>,
}

/// What one room's item did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoomFetch {
    /// The room; absent for a `check` job's room check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room_id: Option<i64>,
    /// Messages the request returned.
    pub fetched: i64,
    /// Chatwork requests of the delivery that ended the item.
    pub requests: i64,
    /// Messages that could not be fetched, when there was a gap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gap: Option<GapEstimate>,
    /// Messages inserted and edited (set by the statement that writes them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stored: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edited: Option<i64>,
    /// Why an unchanged room needed no request (`unchanged`, `left`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Chatwork's `chatwork-message-limitation` header, when the plan limits what it shows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_limitation: Option<String>,
    /// What a `check` job's room check saw and did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<RoomCheckReport>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GapEstimate {
    pub missed_estimate: i64,
}

/// The result of a messages sync, derived from its rooms' items.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MessagesSyncResult {
    pub total_rooms: i64,
    /// The completed and the unchanged rooms.
    pub processed_rooms: i64,
    pub unchanged_rooms: i64,
    pub canceled_rooms: i64,
    pub failed_rooms: i64,
    pub rooms: Vec<RoomOutcome>,
    pub errors: Vec<RoomFailure>,
    pub gaps: Vec<RoomGap>,
    pub stored_messages: i64,
    pub edited_messages: i64,
    /// Chatwork requests of the deliveries that ended the items.
    pub requests: i64,
    /// A `check` job's room check: what it saw and did, with the job that fetches the
    /// changed rooms (`jobId`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<RoomCheckReport>,
}

/// A processed room of a messages sync.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RoomOutcome {
    pub room_id: Option<i64>,
    pub fetched: i32,
    /// `completed` or `unchanged`.
    pub status: ItemStatus,
}

/// A failed room of a messages sync.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RoomFailure {
    pub room_id: Option<i64>,
    pub message: String,
}

/// A room of a messages sync whose history has a gap.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RoomGap {
    pub room_id: Option<i64>,
    pub missed_estimate: i64,
}

/// The item key of a `check` job's room check.
pub const CHECK_ITEM_KEY: &str = "check";

/// The item key of a room.
pub fn item_key(room_id: i64) -> String {
    format!("room-{room_id}")
}

impl JobSpec for MessagesSync {
    const TYPE: JobType = JobType::new("chatwork_messages_sync");
    const QUEUE: QueueName = QueueName::work("messages-sync");
    const LABEL: &'static str = "messages sync";
    const ITEMS: &'static str = "rooms";
    type Payload = MessagesSyncPayload;
    type Message = MessagesSyncMessage;
    type ItemResult = RoomFetch;
    type Result = MessagesSyncResult;

    fn active_key(payload: &MessagesSyncPayload) -> String {
        if let Some(room_id) = payload.room_id {
            return item_key(room_id);
        }
        if payload.rooms.is_some() {
            // One room check's fetches at a time: while they run, the next check finds
            // their rooms still changed and leaves them to this job.
            return "checked".into();
        }
        if let Some(room_ids) = &payload.room_ids {
            // A digest: the list may be long, and the key at most 200 characters.
            use sha2::Digest;
            let mut ids = room_ids.clone();
            ids.sort_unstable();
            let text: Vec<String> = ids.iter().map(i64::to_string).collect();
            let digest = sha2::Sha256::digest(text.join(",").as_bytes());
            let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
            return format!("rooms-{hex}");
        }
        if payload.check {
            "check".into()
        } else {
            "all".into()
        }
    }

    fn item_key(message: &MessagesSyncMessage) -> String {
        message
            .room_id
            .map_or_else(|| CHECK_ITEM_KEY.to_owned(), item_key)
    }

    /// The one room asked for, the rooms a check planned (in its order: riskiest
    /// first), or every active room the account has not left.
    async fn plan(
        pool: &PgPool,
        payload: &MessagesSyncPayload,
    ) -> Result<Vec<PlannedItem<MessagesSyncMessage>>, sqlx::Error> {
        let rooms = match (payload.room_id, &payload.rooms) {
            (Some(room_id), _) => vec![room_id],
            (None, Some(rooms)) => rooms.iter().map(|r| r.room_id).collect(),
            (None, None) if payload.room_ids.is_some() => {
                let mut ids = payload.room_ids.clone().unwrap_or_default();
                ids.sort_unstable();
                ids.dedup();
                ids
            }
            (None, None) if payload.check => {
                return Ok(vec![PlannedItem {
                    message: MessagesSyncMessage { room_id: None },
                    group_id: CHECK_ITEM_KEY.into(),
                }]);
            }
            (None, None) => {
                sqlx::query_scalar!(
                    "SELECT room_id FROM chatwork_rooms
                      WHERE is_active AND left_at IS NULL
                      ORDER BY room_id"
                )
                .fetch_all(pool)
                .await?
            }
        };
        Ok(rooms
            .into_iter()
            .map(|room_id| PlannedItem {
                message: MessagesSyncMessage {
                    room_id: Some(room_id),
                },
                // Rooms sync in parallel; each room in order.
                group_id: item_key(room_id),
            })
            .collect())
    }

    /// `processedRooms` counts the completed and the unchanged rooms; `requests` the
    /// Chatwork requests of the deliveries that ended the items. A `check` job's room
    /// check adds `check`: what it saw and did, with the job that fetches the changed
    /// rooms (`jobId`).
    fn summarize(items: &[JobItem<MessagesSyncMessage, RoomFetch>]) -> MessagesSyncResult {
        let check_item = items.iter().find(|i| i.item_key == CHECK_ITEM_KEY);
        let check = check_item.and_then(|i| i.result.as_ref()?.check.clone());
        let check_requests = check_item
            .and_then(|i| Some(i.result.as_ref()?.requests))
            .unwrap_or(0);
        let items: Vec<_> = items
            .iter()
            .filter(|i| i.item_key != CHECK_ITEM_KEY)
            .collect();
        let room_of = |item: &JobItem<MessagesSyncMessage, RoomFetch>| {
            item.message.as_ref().and_then(|m| m.room_id)
        };
        let sum = |field: fn(&RoomFetch) -> i64| {
            items
                .iter()
                .filter_map(|i| i.result.as_ref())
                .map(field)
                .sum::<i64>()
        };
        let count = |status: ItemStatus| items.iter().filter(|i| i.status == status).count() as i64;
        let rooms: Vec<RoomOutcome> = items
            .iter()
            .filter(|i| matches!(i.status, ItemStatus::Completed | ItemStatus::Unchanged))
            .map(|i| RoomOutcome {
                room_id: room_of(i),
                fetched: i.fetched,
                status: i.status,
            })
            .collect();
        let errors = items
            .iter()
            .filter(|i| i.status == ItemStatus::Failed)
            .map(|i| RoomFailure {
                room_id: room_of(i),
                message: i
                    .error
                    .as_ref()
                    .map_or_else(|| "failed".into(), |e| e.message.clone()),
            })
            .collect();
        let gaps = items
            .iter()
            .filter_map(|i| {
                let gap = i.result.as_ref()?.gap?;
                Some(RoomGap {
                    room_id: room_of(i),
                    missed_estimate: gap.missed_estimate,
                })
            })
            .collect();
        MessagesSyncResult {
            total_rooms: items.len() as i64,
            processed_rooms: rooms.len() as i64,
            unchanged_rooms: count(ItemStatus::Unchanged),
            canceled_rooms: count(ItemStatus::Canceled),
            failed_rooms: count(ItemStatus::Failed),
            rooms,
            errors,
            gaps,
            stored_messages: sum(|r| r.stored.unwrap_or(0)),
            edited_messages: sum(|r| r.edited.unwrap_or(0)),
            requests: check_requests + sum(|r| r.requests),
            check,
        }
    }

    /// The failed rooms, named: they are fetched whatever the room list says.
    fn retry_payload(
        _payload: &MessagesSyncPayload,
        failed: &[JobItem<MessagesSyncMessage, RoomFetch>],
    ) -> Option<MessagesSyncPayload> {
        // A room check's own item names no room: it is not retried (the next check
        // runs anyway).
        let room_ids: Vec<i64> = failed
            .iter()
            .filter_map(|i| i.message.as_ref()?.room_id)
            .collect();
        (!room_ids.is_empty()).then(|| MessagesSyncPayload {
            room_ids: Some(room_ids),
            ..MessagesSyncPayload::default()
        })
    }

    fn describe(result: &MessagesSyncResult) -> String {
        if let Some(check) = &result.check {
            // A sync of all rooms: its room check sent the changed rooms to a job of
            // their own.
            return check.describe();
        }
        let fetched: i64 = result.rooms.iter().map(|r| i64::from(r.fetched)).sum();
        format!(
            "{}/{} rooms ({} unchanged), {fetched} messages fetched, {} errors",
            result.processed_rooms,
            result.total_rooms,
            result.unchanged_rooms,
            result.errors.len()
        )
    }
}

impl JobKind for MessagesSync {
    type Context = SyncContext;

    /// A room's item starts in the statement that reads its state, and that also
    /// reserves the room's request in the rate budget when the state says it will be
    /// fetched (see [`begin_and_read`]). The room check's item starts as any item does.
    async fn begin(
        context: &SyncContext,
        db: &BatchConnection,
        job_id: Uuid,
        item_key: &str,
        message: &MessagesSyncMessage,
    ) -> Result<ItemStart, sqlx::Error> {
        match message.room_id {
            Some(room_id) => begin_and_read(context, db, job_id, item_key, room_id).await,
            None => Ok(ItemStart {
                begin: store::begin_item(&mut *db.lock().await?, job_id, item_key).await?,
                first_read: None,
            }),
        }
    }

    async fn run(
        context: &SyncContext,
        item: &ItemRun,
        message: MessagesSyncMessage,
    ) -> Result<ItemOutcome<RoomFetch>, ItemError> {
        let Some(room_id) = message.room_id else {
            return run_check(context, item).await;
        };
        tracing::Span::current().record("room_id", room_id);
        let payload: MessagesSyncPayload = item.payload()?;
        // Rooms named in the request (one, or a retry's) are fetched whatever the room
        // list says.
        let single_room = payload.room_id.is_some() || payload.room_ids.is_some();
        // A room check already read the room list and decided this room needs a fetch.
        let checked = payload
            .rooms
            .as_ref()
            .and_then(|rooms| rooms.iter().find(|r| r.room_id == room_id))
            .map(|r| {
                Entry::Listed(ListedRoom {
                    last_update_time: r.last_update_time,
                    message_num: r.message_num,
                })
            });
        let pool = &item.pool;

        let Some(FirstRead { state, mut prepaid }) = item.take_first_read::<FirstRead>() else {
            return Err(ItemError::Retry(anyhow::anyhow!(
                "the item started without its first read"
            )));
        };
        if state.job_canceled {
            return Ok(ItemOutcome::Canceled);
        }
        if let Some(result) = state.written {
            // An earlier delivery stored the messages and crashed before ending the item.
            tracing::info!(room_id, "already stored by an earlier delivery");
            return Ok(ItemOutcome::Completed {
                fetched: result.fetched as i32,
                result,
            });
        }
        let Some(room) = state.room else {
            return Err(ItemError::Fail(ErrorInfo::new(
                "RoomNotFound",
                format!("room {room_id} is not registered; run a rooms sync first"),
            )));
        };
        if room.left_at.is_some() && !single_room {
            return Ok(unchanged(room_id, 0, "left"));
        }

        let (client, meter) = context.chatwork.metered();
        let requests = || meter.snapshot().requests;
        let entry = match checked.or(state.snapshot) {
            Some(entry) => entry,
            None => {
                let entry = snapshot::room_entry(
                    &item.db,
                    &client,
                    &context.settings,
                    item.job_id,
                    room_id,
                    item.deadline,
                )
                .await;
                let entry = match entry {
                    Ok(entry) => entry,
                    Err(SnapshotError::Chatwork(e)) => {
                        return Err(chatwork_failure(pool, Some(room.id), e).await);
                    }
                    Err(e) => return Err(ItemError::Retry(e.into())),
                };
                // Taking the snapshot (or waiting for it) took a while.
                if item.is_canceled().await? {
                    return Ok(ItemOutcome::Canceled);
                }
                entry
            }
        };
        if !single_room && checked.is_none() && !room.changed(&entry) {
            if let Some(grant) = prepaid.take() {
                // The first read foresaw a fetch: not needed after all.
                grant.release().await;
            }
            return Ok(unchanged(room_id, requests(), "unchanged"));
        }

        let fetched_at = chrono::Utc::now().timestamp();
        let options = MessagesOptions::new(item.deadline)
            .force(true)
            .prepaid(prepaid)
            .defer_record();
        let (messages, limitation, deferred) = match client.list_messages(room_id, options).await {
            Ok(listed) => (listed.items, listed.limitation, listed.deferred),
            Err(e) => return Err(chatwork_failure(pool, Some(room.id), e).await),
        };
        let fetch = Fetch::analyse(messages, &room, &entry);
        let listed = match entry {
            Entry::Listed(listed) => Some(listed),
            Entry::NotListed => None,
        };
        let synced_update_time =
            listed.map(|l| settled_update_time(l.last_update_time, fetched_at));
        let result = RoomFetch {
            room_id: Some(room_id),
            fetched: fetch.messages.len() as i64,
            requests: requests() as i64,
            gap: fetch
                .gap
                .map(|missed_estimate| GapEstimate { missed_estimate }),
            message_limitation: limitation.clone(),
            ..RoomFetch::default()
        };
        let written = write(
            item,
            &room,
            &fetch,
            synced_update_time,
            limitation.as_deref(),
            &result,
            deferred,
        )
        .await?;
        let Some(result) = written else {
            return Ok(ItemOutcome::Canceled);
        };
        let count = |n: Option<i64>| u64::try_from(n.unwrap_or(0)).unwrap_or(0);
        metrics::counter!("messages_stored").increment(count(result.stored));
        metrics::counter!("messages_edited").increment(count(result.edited));
        if let Some(missed) = fetch.gap {
            metrics::counter!("sync_gaps_detected").increment(1);
            tracing::warn!(
                room_id,
                missed_estimate = missed,
                "gap: more messages arrived since the last sync than one request returns"
            );
        }
        tracing::info!(
            room_id,
            fetched = fetch.messages.len(),
            stored = result.stored,
            edited = result.edited,
            "room synced"
        );
        Ok(ItemOutcome::Completed {
            fetched: fetch.messages.len() as i32,
            result,
        })
    }
}

/// A `check` job's room check: the same check as the schedule's, whose fetches go to a
/// job of their own, started by the check job's own starter. A room list Chatwork does not give ends the item as any Chatwork
/// error does (retried, then failed), so the job records why.
async fn run_check(
    context: &SyncContext,
    item: &ItemRun,
) -> Result<ItemOutcome<RoomFetch>, ItemError> {
    let Some(queues) = context.queues.as_deref() else {
        return Err(ItemError::Fail(ErrorInfo::new(
            "NoQueues",
            "this consumer cannot send the fetches of a room check (no queues configured)",
        )));
    };
    let (client, meter) = context.chatwork.metered();
    let report = check::run(
        &item.pool,
        queues,
        &client,
        &context.settings.room_check,
        CheckTrigger::Sync,
        item.user_id.as_deref(),
    )
    .await;
    match report {
        Ok(report) => Ok(ItemOutcome::Completed {
            fetched: 0,
            result: RoomFetch {
                requests: meter.snapshot().requests as i64,
                check: Some(report),
                ..RoomFetch::default()
            },
        }),
        Err(CheckError::Chatwork { error, .. }) => {
            Err(chatwork_failure(&item.pool, None, error).await)
        }
        Err(e) => Err(ItemError::Retry(e.into())),
    }
}

fn unchanged(room_id: i64, requests: u64, reason: &str) -> ItemOutcome<RoomFetch> {
    ItemOutcome::Unchanged {
        result: RoomFetch {
            room_id: Some(room_id),
            requests: requests as i64,
            reason: Some(reason.into()),
            ..RoomFetch::default()
        },
    }
}

/// The room as its last successful sync left it.
#[derive(Debug, Clone)]
struct RoomState {
    id: Uuid,
    left_at: Option<chrono::DateTime<chrono::Utc>>,
    last_message_id: Option<String>,
    synced_last_update_time: Option<chrono::DateTime<chrono::Utc>>,
    synced_message_num: Option<i32>,
}

impl RoomState {
    /// Whether the room moved since its last successful sync, as far as the snapshot
    /// tells. A room the snapshot does not list counts as changed: only a request can
    /// tell what became of it.
    fn changed(&self, entry: &Entry) -> bool {
        match entry {
            Entry::Listed(listed) => {
                let now = chrono::DateTime::from_timestamp(listed.last_update_time, 0)
                    .filter(|_| listed.last_update_time > 0);
                now != self.synced_last_update_time
            }
            Entry::NotListed => true,
        }
    }
}

/// What [`begin_and_read`] found.
struct ItemState {
    job_canceled: bool,
    room: Option<RoomState>,
    /// The room's entry in the job's snapshot, once it is taken.
    snapshot: Option<Entry>,
    /// The result an earlier delivery wrote with the messages.
    written: Option<RoomFetch>,
}

/// The first read a room's item hands its handler: its state, and the room's request's
/// reservation when the read foresaw a fetch.
struct FirstRead {
    state: ItemState,
    prepaid: Option<GrantGuard>,
}

/// Starts a room's item (the job core's start, `cwsync_begin_item`, as `store::begin_item`
/// runs it) and reads everything the item decides by, in one statement: the
/// room's state at its last successful sync, the room's entry in the job's snapshot,
/// and whether an earlier delivery already stored its messages. When that state says
/// the room will be fetched now (the handler's decision, foreseen: the snapshot or the
/// check's plan has the room, and it moved or is fetched whatever it says), the same
/// statement reserves the request in the rate budget (`cwsync_budget_reserve`); a
/// reservation the handler does not use after all is given back.
async fn begin_and_read(
    context: &SyncContext,
    db: &BatchConnection,
    job_id: Uuid,
    item_key: &str,
    room_id: i64,
) -> Result<ItemStart, sqlx::Error> {
    let budget = context.chatwork.budget().reserve_args();
    let row = sqlx::query!(
        r#"WITH b AS (
               -- The item's start (migrations/0070_shared_rules.sql).
               SELECT * FROM cwsync_begin_item($1, $2)
           ), state AS (
               SELECT j.type, j.payload, j.user_id, j.created_at,
                      b.job_open, b.attempts, b.result AS written, b.item_exists,
                      r.id AS room_uuid, r.left_at, r.last_message_id,
                      r.synced_last_update_time, r.synced_message_num,
                      s.taken_at IS NOT NULL AS snapshot_taken,
                      s.rooms -> $4::text AS snapshot_entry,
                      -- The payload's kinds (MessagesSyncPayload): rooms named in the
                      -- request, or planned by a room check.
                      (j.payload ? 'roomId' OR j.payload ? 'roomIds') AS single_room,
                      coalesce(j.payload -> 'rooms'
                               @> jsonb_build_array(jsonb_build_object('roomId', $3::int8)),
                               false) AS checked
                 FROM b CROSS JOIN jobs j
                 LEFT JOIN chatwork_rooms r ON r.room_id = $3
                 LEFT JOIN job_room_snapshots s ON s.job_id = $1
                WHERE j.id = $1
           )
           SELECT st.type AS "job_type!: JobType", st.payload AS "payload!",
                  st.user_id AS "user_id?", st.created_at AS "created_at!",
                  st.job_open AS "job_open!", st.attempts AS "attempts?",
                  st.item_exists AS "item_exists!",
                  st.written AS "written?",
                  st.room_uuid AS "room_uuid?", st.left_at AS "left_at?",
                  st.last_message_id AS "last_message_id?",
                  st.synced_last_update_time AS "synced_last_update_time?",
                  st.synced_message_num AS "synced_message_num?",
                  st.snapshot_taken AS "snapshot_taken!", st.snapshot_entry AS "snapshot_entry?",
                  -- The handler's decision (`run`), foreseen: a fetch follows at once.
                  CASE WHEN st.attempts IS NOT NULL AND st.written IS NULL
                            AND st.type = 'chatwork_messages_sync'
                            AND st.room_uuid IS NOT NULL
                            AND (st.single_room OR st.left_at IS NULL)
                            AND (st.checked OR st.snapshot_taken)
                            AND (st.single_room OR st.checked OR st.snapshot_entry IS NULL
                                 OR (CASE WHEN (st.snapshot_entry ->> 'lastUpdateTime')::int8 > 0
                                          THEN to_timestamp((st.snapshot_entry ->> 'lastUpdateTime')::int8)
                                     END) IS DISTINCT FROM st.synced_last_update_time)
                       THEN cwsync_budget_reserve($5, $6, $7)
                  END AS "grant_window?"
             FROM state st"#,
        job_id,
        item_key,
        room_id,
        room_id.to_string(),
        &budget.token_hash[..],
        budget.lease,
        budget.window,
    )
    .fetch_optional(&mut *db.lock().await?)
    .await?;
    let Some(row) = row else {
        return Ok(ItemStart {
            begin: store::Begin::Unknown { why: "no such job" },
            first_read: None,
        });
    };
    let prepaid = row.grant_window.map(|w| context.chatwork.prepaid(w));
    let state = ItemState {
        job_canceled: !row.job_open,
        room: row.room_uuid.map(|id| RoomState {
            id,
            left_at: row.left_at,
            last_message_id: row.last_message_id,
            synced_last_update_time: row.synced_last_update_time,
            synced_message_num: row.synced_message_num,
        }),
        snapshot: row
            .snapshot_taken
            .then(|| Entry::from_stored(row.snapshot_entry)),
        written: row.written.and_then(|w| serde_json::from_value(w).ok()),
    };
    let begin = store::Begin::from_row(
        row.item_exists,
        row.job_open,
        row.attempts,
        (row.job_type, row.payload, row.user_id, row.created_at),
    );
    Ok(ItemStart {
        begin,
        first_read: Some(Box::new(FirstRead { state, prepaid })),
    })
}

/// One fetch of a room and what it tells.
#[derive(Debug, Clone, PartialEq)]
struct Fetch {
    /// The messages returned, each id once.
    messages: Vec<Message>,
    /// The numerically greatest id returned.
    newest_id: Option<String>,
    /// How many messages the room had at this sync, as far as we know: the baseline that
    /// the next sync compares `message_num` with. `None` without a snapshot entry.
    message_num: Option<i64>,
    /// The estimated number of messages that could not be fetched, when there is a gap.
    gap: Option<i64>,
}

impl Fetch {
    /// Detects a gap by two signs: every message returned is newer than the last one
    /// stored and a full page came back (there may be more before them), or the room's
    /// `message_num` grew by more than the new messages returned. The estimate is the
    /// second sign's shortfall, or at least 1 when only the first sign shows.
    fn analyse(mut messages: Vec<Message>, room: &RoomState, entry: &Entry) -> Fetch {
        messages.sort_by(|a, b| compare_message_ids(&a.message_id, &b.message_id));
        messages.dedup_by(|a, b| compare_message_ids(&a.message_id, &b.message_id).is_eq());
        let newest_id = messages.last().map(|m| m.message_id.clone());
        let last = room.last_message_id.as_deref();
        let new_count = messages
            .iter()
            .filter(|m| {
                last.is_none_or(|l| compare_message_ids(&m.message_id, l) == Ordering::Greater)
            })
            .count() as i64;
        let full_page_all_new =
            last.is_some() && messages.len() >= FETCH_LIMIT && new_count == messages.len() as i64;
        let before = i64::from(room.synced_message_num.unwrap_or(0));
        let (shortfall, message_num) = match entry {
            Entry::Listed(ListedRoom { message_num, .. }) => (
                Some(message_num - before - new_count).filter(|m| *m > 0),
                // Messages posted between the snapshot and the fetch were fetched too.
                Some((*message_num).max(before + new_count)),
            ),
            Entry::NotListed => (None, None),
        };
        let gap = match (shortfall, full_page_all_new) {
            (Some(missed), _) => Some(missed),
            (None, true) => Some(1),
            (None, false) => None,
        };
        Fetch {
            messages,
            newest_id,
            message_num,
            gap,
        }
    }
}

/// Seconds between a room's `last_update_time` and our fetch below which more messages
/// of that same second may have been posted after the fetch (Chatwork's times have a
/// resolution of one second; a second more for the clocks' skew).
const SETTLE_SECS: i64 = 2;

/// The `last_update_time` to record as synced after fetching at `fetched_at` (epoch
/// seconds): the snapshot's, unless it is so recent that a message posted in the same
/// second after our fetch would leave it unchanged; then none, so that the next sync
/// fetches the room again rather than miss that message.
fn settled_update_time(
    last_update_time: i64,
    fetched_at: i64,
) -> Option<chrono::DateTime<chrono::Utc>> {
    if last_update_time <= 0 || last_update_time > fetched_at - SETTLE_SECS {
        return None;
    }
    chrono::DateTime::from_timestamp(last_update_time, 0)
}

/// Stores a fetch: messages, the room's state, and the item's result with its end (the
/// job core's end of an item: see `store::end_items`, whose rules this statement keeps,
/// under the job row's lock), in one statement, only while the job is not canceled; and,
/// whatever the job's state, the rate budget's record of the request's answer
/// (`deferred`: `cwsync_budget_record`). `synced_update_time` is what to record as the
/// `last_update_time` the room was synced at (`None` when the snapshot did not list it:
/// the recorded one stays). Returns the item's result, or `None` when the job was
/// canceled (nothing is written then).
async fn write(
    item: &ItemRun,
    room: &RoomState,
    fetch: &Fetch,
    synced_update_time: Option<Option<chrono::DateTime<chrono::Utc>>>,
    limitation: Option<&str>,
    result: &RoomFetch,
    deferred: Option<DeferredRecord>,
) -> Result<Option<RoomFetch>, sqlx::Error> {
    let record = deferred.as_ref().and_then(DeferredRecord::args);
    let result_json = serde_json::to_value(result).map_err(|e| sqlx::Error::Encode(e.into()))?;
    let n = fetch.messages.len();
    let mut ids = Vec::with_capacity(n);
    let mut account_ids = Vec::with_capacity(n);
    let mut account_names = Vec::with_capacity(n);
    let mut avatars = Vec::with_capacity(n);
    let mut bodies = Vec::with_capacity(n);
    let mut send_times = Vec::with_capacity(n);
    let mut update_times = Vec::with_capacity(n);
    for m in &fetch.messages {
        ids.push(m.message_id.clone());
        account_ids.push(m.account.account_id);
        account_names.push(m.account.name.clone());
        avatars.push(m.account.avatar_image_url.clone());
        bodies.push(m.body.clone());
        send_times.push(m.send_time);
        update_times.push(m.update_time);
    }
    let message_num = fetch
        .message_num
        .map(|n| n.clamp(0, i64::from(i32::MAX)) as i32);
    let gap = fetch.gap.map(|g| g.clamp(1, i64::from(i32::MAX)) as i32);
    let row = sqlx::query!(
        r#"WITH job AS (
               SELECT id FROM jobs WHERE id = $1 AND status IN ('queued', 'processing')
                  FOR UPDATE
           ), room AS (
               SELECT r.id, r.room_id,
                      -- The company when the room is linked to exactly one.
                      (SELECT (array_agg(l.company_id))[1] FROM company_room_links l
                        WHERE l.chatwork_room_id = r.id HAVING count(*) = 1) AS company_id
                 FROM chatwork_rooms r
                WHERE r.id = $3 AND EXISTS (SELECT 1 FROM job)
           ), written AS (
               INSERT INTO messages AS m (chatwork_room_id, room_id, message_id, account_id,
                                          account_name, account_avatar_url, body, send_time,
                                          update_time, company_id)
               SELECT room.id, room.room_id, t.message_id, t.account_id, t.account_name,
                      nullif(t.avatar, ''), t.body, to_timestamp(t.send_time),
                      CASE WHEN t.update_time > 0 THEN to_timestamp(t.update_time) END,
                      room.company_id
                 FROM room,
                      UNNEST($4::text[], $5::int8[], $6::text[], $7::text[], $8::text[],
                             $9::int8[], $10::int8[])
                        AS t(message_id, account_id, account_name, avatar, body, send_time,
                             update_time)
               -- A newer version replaces the body; a message a webhook stored without
               -- its author's name gets the name (counted as edited).
               ON CONFLICT (room_id, message_id) DO UPDATE
                  SET body = CASE WHEN EXCLUDED.update_time > coalesce(m.update_time, '-infinity')
                                  THEN EXCLUDED.body ELSE m.body END,
                      update_time = greatest(m.update_time, EXCLUDED.update_time),
                      account_name = coalesce(m.account_name, EXCLUDED.account_name),
                      account_avatar_url = CASE WHEN m.account_name IS NULL
                                                THEN EXCLUDED.account_avatar_url
                                                ELSE m.account_avatar_url END
                WHERE EXCLUDED.update_time > coalesce(m.update_time, '-infinity')
                   OR m.account_name IS NULL
            RETURNING (xmax = 0) AS inserted
           ), counts AS (
               SELECT count(*) FILTER (WHERE inserted) AS stored,
                      count(*) FILTER (WHERE NOT inserted) AS edited
                 FROM written
           ), synced AS (
               UPDATE chatwork_rooms r
                  SET last_message_id = CASE
                          WHEN $11::text IS NULL THEN r.last_message_id
                          WHEN r.last_message_id IS NULL
                            OR $11::numeric > r.last_message_id::numeric THEN $11::text
                          ELSE r.last_message_id END,
                      last_sync_at = now(),
                      last_error_at = NULL, last_error_message = NULL, last_error_status = NULL,
                      synced_last_update_time = CASE WHEN $12 THEN $13 ELSE r.synced_last_update_time END,
                      synced_message_num = coalesce($14, r.synced_message_num),
                      gap_detected_at = CASE WHEN $15::int IS NULL THEN r.gap_detected_at ELSE now() END,
                      gap_missed_estimate = coalesce($15::int, r.gap_missed_estimate),
                      fetch_wanted_since = NULL,
                      -- This fetch's count covers what webhooks stored before it.
                      webhook_messages_since_fetch = 0,
                      author_names_wanted_since = NULL,
                      message_limitation = coalesce($17::text, r.message_limitation),
                      message_limitation_at = CASE WHEN $17::text IS NULL
                                                   THEN r.message_limitation_at ELSE now() END,
                      updated_at = now()
                WHERE r.id = (SELECT id FROM room)
            RETURNING 1
           ), item AS (
               UPDATE job_items i
                  SET result = $16::jsonb || jsonb_build_object('stored', c.stored, 'edited', c.edited),
                      status = 'completed', fetched = $18, error = NULL,
                      finished_at = now(), updated_at = now()
                 FROM counts c
                WHERE i.job_id = (SELECT id FROM job) AND i.item_key = $2
                  AND i.status = 'processing'
                  AND EXISTS (SELECT 1 FROM synced)
            RETURNING i.result
           ), ended AS (
               UPDATE jobs
                  SET open_items = open_items - (SELECT count(*) FROM item)::int, updated_at = now()
                WHERE id = $1 AND EXISTS (SELECT 1 FROM item)
            RETURNING open_items, status
           ), budget AS (
               SELECT cwsync_budget_record($19, $20, $21, $22, $23, $24, $25, $26, true)
                WHERE $20::int8 IS NOT NULL
           )
           SELECT EXISTS (SELECT 1 FROM job) AS "job_open!",
                  (SELECT stored FROM counts) AS "stored!",
                  (SELECT edited FROM counts) AS "edited!",
                  (SELECT result FROM item) AS "result?",
                  (SELECT count(*) FROM item) AS "ended!",
                  (SELECT open_items FROM ended) AS "open_items?",
                  (SELECT status FROM ended) AS "job_status?: JobStatus",
                  (SELECT count(*) FROM budget) AS "recorded!""#,
        item.job_id,
        item.item_key,
        room.id,
        &ids,
        &account_ids,
        &account_names,
        &avatars,
        &bodies,
        &send_times,
        &update_times,
        fetch.newest_id,
        synced_update_time.is_some(),
        synced_update_time.flatten(),
        message_num,
        gap,
        result_json,
        limitation,
        fetch.messages.len() as i32,
        record.as_ref().map(|r| &r.token_hash[..]),
        record.as_ref().map(|r| r.window_id),
        record.as_ref().and_then(|r| r.limit),
        record.as_ref().and_then(|r| r.remaining),
        record.as_ref().and_then(|r| r.reset),
        record.as_ref().and_then(|r| r.date),
        record.as_ref().map(|r| r.margin),
        record.as_ref().map(|r| r.refused),
    )
    .fetch_one(&mut *item.db.lock().await?)
    .await?;
    if let Some(deferred) = deferred
        && row.recorded > 0
    {
        deferred.recorded();
    }
    if row.ended > 0 {
        item.ended_by(store::Ended {
            ended: row.ended,
            open_items: row.open_items,
            job_status: row.job_status,
        });
    }
    if !row.job_open {
        return Ok(None);
    }
    // The item row is always there while this delivery runs; build the result anyway if
    // it was not (a job removed by retention mid-run).
    let stored = row.result.and_then(|r| serde_json::from_value(r).ok());
    Ok(Some(stored.unwrap_or_else(|| RoomFetch {
        stored: Some(row.stored),
        edited: Some(row.edited),
        ..result.clone()
    })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chatwork::MessageAccount;

    fn message(id: &str) -> Message {
        Message {
            message_id: id.into(),
            account: MessageAccount {
                account_id: 1,
                name: "a".into(),
                avatar_image_url: String::new(),
            },
            body: "b".into(),
            send_time: 1,
            update_time: 0,
        }
    }

    fn room(last: Option<&str>, synced_num: Option<i32>) -> RoomState {
        RoomState {
            id: Uuid::nil(),
            left_at: None,
            last_message_id: last.map(str::to_owned),
            synced_last_update_time: None,
            synced_message_num: synced_num,
        }
    }

    fn listed(message_num: i64) -> Entry {
        Entry::Listed(ListedRoom {
            last_update_time: 1,
            message_num,
        })
    }

    fn ids(from: u64, count: u64) -> Vec<Message> {
        (from..from + count)
            .map(|i| message(&i.to_string()))
            .collect()
    }

    #[test]
    fn a_last_update_time_too_recent_to_be_settled_is_not_recorded() {
        assert_eq!(settled_update_time(0, 1_000), None);
        assert_eq!(settled_update_time(1_000, 1_000), None);
        assert_eq!(settled_update_time(999, 1_000), None);
        assert_eq!(
            settled_update_time(998, 1_000).map(|t| t.timestamp()),
            Some(998)
        );
    }

    #[test]
    fn the_newest_id_is_the_numeric_maximum() {
        let fetch = Fetch::analyse(
            vec![message("100"), message("99"), message("100")],
            &room(None, None),
            &listed(2),
        );
        assert_eq!(fetch.newest_id.as_deref(), Some("100"));
        assert_eq!(fetch.messages.len(), 2, "duplicates dropped");
        assert_eq!(fetch.gap, None);
        // "99" was stored: "100" is newer although it sorts first as text.
        let fetch = Fetch::analyse(vec![message("100")], &room(Some("99"), Some(1)), &listed(2));
        assert_eq!(fetch.message_num, Some(2));
        assert_eq!(fetch.gap, None);
    }

    #[test]
    fn a_full_page_of_new_messages_is_a_gap() {
        // 250 arrived after the stored last id 1000; the page holds the newest 100.
        let page = ids(1151, 100);
        let fetch = Fetch::analyse(page.clone(), &room(Some("1000"), Some(10)), &listed(260));
        assert_eq!(fetch.gap, Some(150));
        assert_eq!(fetch.message_num, Some(260));
        // Without the room in the snapshot, only the first sign shows: at least one.
        let fetch = Fetch::analyse(page, &room(Some("1000"), Some(10)), &Entry::NotListed);
        assert_eq!(fetch.gap, Some(1));
        assert_eq!(fetch.message_num, None);
    }

    #[test]
    fn a_page_overlapping_what_is_stored_is_no_gap() {
        // 40 new after 1059: the page of 100 reaches back into stored messages.
        let fetch = Fetch::analyse(ids(1000, 100), &room(Some("1059"), Some(60)), &listed(100));
        assert_eq!(fetch.gap, None);
        assert_eq!(fetch.message_num, Some(100));
    }

    #[test]
    fn message_num_growth_beyond_the_new_messages_is_a_gap() {
        // The first sync of a room with 180 messages gets the latest 100.
        let fetch = Fetch::analyse(ids(1, 100), &room(None, None), &listed(180));
        assert_eq!(fetch.gap, Some(80));
        // Messages posted between the snapshot and the fetch are no gap, now or at the
        // next sync.
        let fetch = Fetch::analyse(ids(1, 12), &room(None, None), &listed(10));
        assert_eq!((fetch.gap, fetch.message_num), (None, Some(12)));
        let next = Fetch::analyse(ids(1, 12), &room(Some("12"), Some(12)), &listed(12));
        assert_eq!(next.gap, None);
    }
}
