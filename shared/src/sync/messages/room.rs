//! One room's item: start it with what it decides by, decide, fetch, store.
//!
//! 1. One statement starts the item and reads the room's state at its last successful
//!    sync, its entry in the job's room-list snapshot, and whether an earlier delivery
//!    already stored its messages (then that result stands). When the item has what it
//!    decides by, the same statement reserves the request in the rate budget.
//! 2. Without a room check's word and without a snapshot yet, the item takes the job's
//!    snapshot or waits for the consumer that does (see `super::super::snapshot`).
//! 3. Decide (here, only): a room the job names, or a room check planned, is fetched; any
//!    other room only when its `last_update_time` moved since its last sync; a room the
//!    account left is not, unless named.
//! 4. `GET /rooms/{id}/messages?force=1` (the latest 100) through the connection the
//!    check chose, or else the member with the most budget left; when Chatwork answers
//!    403 or 404 for that account, through the next member. Then one statement stores it
//!    all and ends the item (see [`super::write`]).
//!
//! Statements per changed room, on the batch's one connection: 2 (the start with the read
//! and the reservation; the write with the item's end and the budget's record).

use uuid::Uuid;

use super::fetch::{Fetch, RoomState, settled_update_time};
use super::{
    GapEstimate, ItemRead, ItemReport, MessagesSyncMessage, MessagesSyncPayload, RoomFetch, write,
};
use crate::chatwork::{
    ChatworkClient, ChatworkError, GrantGuard, Listed, MessagesOptions, RequestMeter,
};
use crate::connections::store as connection_store;
use crate::jobs::{
    BatchConnection, Begin, ErrorInfo, ItemError, ItemOutcome, ItemRun, JobType, Outcome,
};
use crate::sync::snapshot::{self, Entry, ListedRoom, SnapshotError};
use crate::sync::{SyncContext, chatwork_failure};

use super::MessagesSync;

/// Runs a room's item (see the module documentation).
pub(super) async fn run(
    context: &SyncContext,
    item: &ItemRun,
    room_id: i64,
    listed: Option<ListedRoom>,
    connection: Option<Uuid>,
    read: FirstRead,
) -> Result<Outcome<MessagesSync>, ItemError> {
    tracing::Span::current().record("room_id", room_id);
    let payload: MessagesSyncPayload = item.payload()?;
    // Rooms the job names (one, or a retry's) are fetched whatever the room list says.
    let single_room = payload.names_rooms();
    // A room check already read the room list and decided this room needs a fetch.
    let checked = listed.map(Entry::Listed);
    let pool = &item.pool;
    let FirstRead {
        state,
        prepaid,
        prepaid_on,
    } = read;
    if state.job_canceled {
        return Ok(ItemOutcome::Canceled);
    }
    if let Some(result) = state.written {
        // An earlier delivery stored the messages and crashed before ending the item.
        tracing::info!(room_id, "already stored by an earlier delivery");
        return Ok(ItemOutcome::Completed {
            fetched: result.fetched as i32,
            result: ItemReport::Room(result),
        });
    }
    let Some(room) = state.room else {
        return Err(ItemError::Fail(ErrorInfo::new(
            "RoomNotFound",
            format!("room {room_id} is not registered; run a rooms sync first"),
        )));
    };
    if room.left_at.is_some() && !single_room {
        release(prepaid).await;
        return Ok(unchanged(room_id, 0, "left"));
    }

    let meter = RequestMeter::default();
    let requests = || meter.snapshot().requests;
    let mut through = match connection.or(prepaid_on) {
        // Without a cipher only the bootstrap connection can speak: no choice to make.
        Some(id) if connection.is_some() || context.connections.cipher().is_none() => Some(id),
        _ => connection_store::fetcher_of(pool, room_id, &[]).await?,
    };
    let mut prepaid = match (prepaid, through) {
        (Some(grant), Some(id)) if Some(id) == prepaid_on => Some(grant),
        (grant, _) => {
            release(grant).await;
            None
        }
    };
    let Some(first) = through else {
        return Err(no_member(pool, room.id, room_id).await);
    };
    let mut client = match context.connections.client(first).await {
        Ok(client) => client.counted_by(&meter),
        Err(e) => return Err(chatwork_failure(pool, Some(room.id), e).await),
    };
    let mut tried = Vec::new();
    let entry = match checked.or(state.snapshot) {
        Some(entry) => entry,
        None => {
            let entry = loop {
                let lists = snapshot::Lists {
                    client: &client,
                    through: through.expect("a connection was chosen"),
                    connections: &context.connections,
                };
                let entry = snapshot::room_entry(
                    &item.db,
                    lists,
                    &context.settings,
                    item.job_id,
                    room_id,
                    item.deadline,
                )
                .await;
                match entry {
                    Ok(entry) => break entry,
                    // A connection that cannot be used: the list through the next member.
                    Err(SnapshotError::Chatwork(e @ ChatworkError::Connection { .. })) => {
                        let id = through.expect("a connection was chosen");
                        let Some(next) = failover(pool, room_id, id, &mut tried, &e).await? else {
                            return Err(chatwork_failure(pool, Some(room.id), e).await);
                        };
                        through = Some(next);
                        client = match context.connections.client(next).await {
                            Ok(c) => c.counted_by(&meter),
                            Err(e) => return Err(chatwork_failure(pool, Some(room.id), e).await),
                        };
                    }
                    Err(SnapshotError::Chatwork(e)) => {
                        return Err(chatwork_failure(pool, Some(room.id), e).await);
                    }
                    Err(e) => return Err(ItemError::Retry(e.into())),
                }
            };
            // Taking the snapshot (or waiting for it) took a while.
            if item.is_canceled().await? {
                return Ok(ItemOutcome::Canceled);
            }
            entry
        }
    };
    if !single_room && checked.is_none() && !room.changed(&entry) {
        release(prepaid).await;
        return Ok(unchanged(room_id, requests(), "unchanged"));
    }

    let (requested_at, listed_messages) = loop {
        let requested_at = chrono::Utc::now();
        let options = MessagesOptions::new(item.deadline)
            .force(true)
            .prepaid(prepaid.take())
            .defer_record();
        match client.list_messages(room_id, options).await {
            Ok(listed) => break (requested_at, listed),
            Err(e) => {
                let id = through.expect("a connection was chosen");
                let Some(next) = failover(pool, room_id, id, &mut tried, &e).await? else {
                    return Err(chatwork_failure(pool, Some(room.id), e).await);
                };
                tracing::info!(room_id, from = %id, to = %next, error = %e, "fetching the room through another member");
                through = Some(next);
                client = match context.connections.client(next).await {
                    Ok(c) => c.counted_by(&meter),
                    Err(e) => return Err(chatwork_failure(pool, Some(room.id), e).await),
                };
            }
        }
    };
    let fetched_at = requested_at.timestamp();
    let Listed {
        items: messages,
        limitation,
        deferred,
    } = listed_messages;
    let fetch = Fetch::analyse(messages, &room, &entry);
    let listed = match entry {
        Entry::Listed(listed) => Some(listed),
        Entry::NotListed => None,
    };
    let synced_update_time = listed.map(|l| settled_update_time(l.last_update_time, fetched_at));
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
    let written = write::write(
        item,
        requested_at,
        &room,
        &fetch,
        synced_update_time,
        limitation.as_deref(),
        &result,
        deferred,
    )
    .await?;
    let Some((result, ended)) = written else {
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
    Ok(ItemOutcome::Written {
        fetched: fetch.messages.len() as i32,
        ended,
    })
}

/// After `error` from connection `id` on a room: the next member to try, when the error
/// is about that account (403/404: recorded, so the room is fetched elsewhere until the
/// account lists it again; or a connection that cannot be used), else `None`.
async fn failover(
    pool: &sqlx::PgPool,
    room_id: i64,
    id: Uuid,
    tried: &mut Vec<Uuid>,
    error: &ChatworkError,
) -> Result<Option<Uuid>, sqlx::Error> {
    let about_account =
        error.is_room_unavailable() || matches!(error, ChatworkError::Connection { .. });
    if !about_account {
        return Ok(None);
    }
    if error.is_room_unavailable() {
        connection_store::record_refusal(pool, id, room_id).await?;
    }
    tried.push(id);
    connection_store::fetcher_of(pool, room_id, tried).await
}

/// A room no active connection can read: its error recorded, the item failed.
async fn no_member(pool: &sqlx::PgPool, room: Uuid, room_id: i64) -> ItemError {
    let error = ChatworkError::Connection {
        message: format!("no active connection is a member of room {room_id}"),
    };
    chatwork_failure(pool, Some(room), error).await
}

/// Gives back a reservation the item will not use.
async fn release(prepaid: Option<GrantGuard>) {
    if let Some(grant) = prepaid {
        grant.release().await;
    }
}

fn unchanged(room_id: i64, requests: u64, reason: &str) -> Outcome<MessagesSync> {
    ItemOutcome::Unchanged {
        result: ItemReport::Room(RoomFetch {
            room_id: Some(room_id),
            requests: requests as i64,
            reason: Some(reason.into()),
            ..RoomFetch::default()
        }),
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
/// reservation when it was taken with the read.
pub struct FirstRead {
    state: ItemState,
    prepaid: Option<GrantGuard>,
    /// The connection whose budget `prepaid` is.
    prepaid_on: Option<Uuid>,
}

/// Starts a room's item (the job core's start, `cwsync_begin_item`, as `store::begin_item`
/// runs it) and reads everything the item decides by, in one statement: the room's state
/// at its last successful sync, the room's entry in the job's snapshot, and whether an
/// earlier delivery already stored its messages. When the item will run on a registered
/// room it has not stored yet and has what it decides by (a room check's word in its
/// message, or the job's snapshot), the same statement reserves the request in the rate
/// budget (`cwsync_budget_reserve`): the decision itself is [`run`]'s, which gives the
/// reservation back when it decides not to fetch.
pub(super) async fn begin_and_read(
    context: &SyncContext,
    db: &BatchConnection,
    job_id: Uuid,
    item_key: &str,
    room_id: i64,
    message: &MessagesSyncMessage,
) -> Result<Begin<ItemRead>, sqlx::Error> {
    let decides_by_message = message.listed.is_some();
    // The request is reserved on the budget of the connection the check chose, or of the
    // bootstrap connection (the item may still choose another and give it back).
    let prepaid_on = match message.connection_id {
        Some(id) => Some(id),
        None => context.connections.bootstrap_id().await?,
    };
    let prepay: Option<ChatworkClient> = match prepaid_on {
        Some(id) => context.connections.client(id).await.ok(),
        None => None,
    };
    let budget = prepay.as_ref().map(|c| c.budget().reserve_args());
    let (key, lease, window) = match &budget {
        Some(b) => (Some(b.token_hash.to_vec()), b.lease, b.window),
        None => (None, 0.0, 0.0),
    };
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
                      s.rooms -> $4::text AS snapshot_entry
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
                  -- The item runs on a registered room it has not stored, and has what
                  -- it decides by: `run` decides at once (and gives an unused
                  -- reservation back).
                  CASE WHEN st.attempts IS NOT NULL AND st.written IS NULL
                            AND st.type = 'chatwork_messages_sync'
                            AND st.room_uuid IS NOT NULL
                            AND ($8 OR st.snapshot_taken)
                            AND $5::bytea IS NOT NULL
                       THEN cwsync_budget_reserve($5, $6, $7)
                  END AS "grant_window?"
             FROM state st"#,
        job_id,
        item_key,
        room_id,
        room_id.to_string(),
        key,
        lease,
        window,
        decides_by_message,
    )
    .fetch_optional(&mut *db.lock().await?)
    .await?;
    let Some(row) = row else {
        return Ok(Begin::Unknown { why: "no such job" });
    };
    let prepaid = match (row.grant_window, &prepay) {
        (Some(w), Some(client)) => Some(client.prepaid(w)),
        _ => None,
    };
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
    Ok(Begin::from_row(
        row.item_exists,
        row.job_open,
        row.attempts,
        (row.job_type, row.payload, row.user_id, row.created_at),
        ItemRead::Room(Box::new(FirstRead {
            state,
            prepaid,
            prepaid_on: prepaid_on.filter(|_| budget.is_some()),
        })),
    ))
}
