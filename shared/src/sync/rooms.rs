//! `chatwork_rooms_sync`: one `GET /rooms`, upserted into `chatwork_rooms`.
//!
//! The one item of a rooms sync:
//!
//! For each active connection (or the one the payload names: a new connection's first
//! sync), in turn:
//!
//! 1. `GET /rooms` with the connection's token; the rooms it lists become its rooms
//!    (`chatwork_room_connections`). A connection whose list fails is skipped (its
//!    error recorded on it) unless it is the only one, whose failure is the item's.
//! 2. Upserts the rooms by `room_id` in chunks of [`SyncSettings::rooms_per_chunk`],
//!    checking for cancellation before each: name, type, icon, `last_update_time`,
//!    `message_num`. A row is written only when one of those actually changed (or the
//!    room comes back after the account had left it), so a second identical sync
//!    changes nothing and counts nothing. New rooms are active.
//! 3. Marks the rooms no connection lists any more as left (`left_at`); they and their
//!    messages stay, and messages syncs skip them.
//! 4. Fetches descriptions (`GET /rooms/{id}`) of the rooms that are new or changed
//!    since their description was last fetched, within a share of the rate budget;
//!    rooms left over wait for the next rooms sync. Each connection fetches those of its
//!    own rooms, within its own budget.
//!
//! Each statement that counts adds its counts to the item's result in the same
//! statement, so a delivery that runs again after a crash adds only what it changed
//! itself: the result is that of one run.
//!
//! Result: `{created, updated, total, left, descriptions, requests}`: rooms inserted,
//! rooms whose stored fields changed, rooms Chatwork listed, rooms marked left, and the
//! descriptions and Chatwork requests of the delivery that ended the item.
//!
//! [`SyncSettings::rooms_per_chunk`]: super::SyncSettings::rooms_per_chunk

use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use uuid::Uuid;

use super::columns::RoomColumns;
use super::{SyncContext, chatwork_failure};
use crate::chatwork::{ChatworkClient, ChatworkError, RequestMeter, Room};
use crate::connections::{Active, store as connections};
use crate::jobs::{
    self, BatchConnection, Begin, ErrorInfo, ItemError, ItemOutcome, ItemRun, JobItem, JobKind,
    JobSpec, JobType, Outcome, PlannedItem,
};
use crate::queue::QueueName;

/// The rooms sync job type.
pub struct RoomsSync;

/// A rooms sync of every active connection, or of one (`connectionId`: the first sync
/// of a connection just made).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoomsSyncPayload {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_id: Option<Uuid>,
}

/// The queue message: `{v:1, jobId}`, and the connection when the payload names one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoomsSyncMessage {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_id: Option<Uuid>,
}

/// The result of a rooms sync (and of its one item): rooms inserted, rooms whose stored
/// fields changed, rooms Chatwork listed, rooms marked left, and the descriptions and
/// Chatwork requests of the delivery that ended the item.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RoomsSyncResult {
    pub created: i64,
    pub updated: i64,
    pub total: i64,
    pub left: i64,
    pub descriptions: i64,
    pub requests: i64,
    /// Connections whose room list was read, and those whose list failed.
    #[serde(default)]
    pub connections: i64,
    #[serde(default)]
    pub failed_connections: i64,
}

/// The item key of a rooms sync's only item.
pub const ITEM_KEY: &str = "rooms";

/// Descriptions fetched between two cancellation checks (and written per statement).
const DESCRIPTIONS_PER_CHUNK: usize = 20;

impl JobSpec for RoomsSync {
    const TYPE: JobType = JobType::new("chatwork_rooms_sync");
    const QUEUE: QueueName = QueueName::work("rooms-sync");
    const LABEL: &'static str = "rooms sync";
    type Payload = RoomsSyncPayload;
    type Message = RoomsSyncMessage;
    type ItemResult = RoomsSyncResult;
    type Result = RoomsSyncResult;

    fn active_key(payload: &RoomsSyncPayload) -> String {
        match payload.connection_id {
            None => "all".into(),
            Some(id) => format!("connection:{id}"),
        }
    }

    fn item_key(_: &RoomsSyncMessage) -> String {
        ITEM_KEY.into()
    }

    async fn plan(
        _pool: &PgPool,
        payload: &RoomsSyncPayload,
    ) -> Result<Vec<PlannedItem<RoomsSyncMessage>>, sqlx::Error> {
        Ok(vec![PlannedItem::work(
            RoomsSyncMessage {
                connection_id: payload.connection_id,
            },
            "rooms",
        )])
    }

    /// The item's own result (zeros before it ran).
    fn summarize(items: &[JobItem<RoomsSyncMessage, RoomsSyncResult>]) -> RoomsSyncResult {
        items
            .iter()
            .find_map(|i| i.result.clone())
            .unwrap_or_default()
    }

    fn describe(result: &RoomsSyncResult) -> String {
        format!(
            "{} rooms ({} new, {} changed)",
            result.total, result.created, result.updated
        )
    }
}

impl JobKind for RoomsSync {
    type Context = SyncContext;
    type Read = ();

    async fn begin(
        _context: &SyncContext,
        db: &BatchConnection,
        job_id: Uuid,
        item_key: &str,
        _message: &RoomsSyncMessage,
    ) -> Result<Begin, sqlx::Error> {
        jobs::begin_item(db, job_id, item_key).await
    }

    async fn run(
        context: &SyncContext,
        item: &ItemRun,
        message: RoomsSyncMessage,
        _read: (),
    ) -> Result<Outcome<Self>, ItemError> {
        let pool = &item.pool;
        let targets = match message.connection_id {
            Some(id) => vec![Active {
                id,
                bootstrap: false,
            }],
            None => context.connections.active().await?,
        };
        if targets.is_empty() {
            return Err(ItemError::Fail(ErrorInfo::new(
                "NoConnection",
                "no active Chatwork connection: connect an account first",
            )));
        }
        let meter = RequestMeter::default();
        let mut all_rooms = std::collections::BTreeSet::new();
        let (mut descriptions, mut listed_connections, mut failed) = (0usize, 0i64, 0i64);
        let mut last_error = None;
        for target in &targets {
            let listed = match self::list(context, target, &meter, item).await {
                Ok(rooms) => rooms,
                Err(e) => {
                    if let Err(db) =
                        connections::record_list_error(pool, target.id, &e.to_string()).await
                    {
                        tracing::warn!(error = %db, "could not record a connection's list error");
                    }
                    tracing::warn!(connection = %target.id, error = %e, "a connection's room list could not be read");
                    failed += 1;
                    last_error = Some(e);
                    continue;
                }
            };
            let (client, mut rooms) = listed;
            rooms.sort_by_key(|r| r.room_id);
            rooms.dedup_by_key(|r| r.room_id);
            for chunk in rooms.chunks(context.settings.rooms_per_chunk.max(1)) {
                if item.is_canceled().await? {
                    return Ok(ItemOutcome::Canceled);
                }
                upsert(pool, item.job_id, &item.item_key, chunk).await?;
            }
            if item.is_canceled().await? {
                return Ok(ItemOutcome::Canceled);
            }
            let ids: Vec<i64> = rooms.iter().map(|r| r.room_id).collect();
            if ids.is_empty() {
                // Every account has at least its own "my chat": an empty list is not the
                // account leaving every room, and forgetting them all would hide them.
                tracing::warn!(connection = %target.id, "Chatwork listed no rooms at all; the connection keeps its rooms");
            } else {
                connections::record_listing(pool, target.id, &ids).await?;
            }
            listed_connections += 1;
            all_rooms.extend(ids);
            let Some(fetched) = fetch_descriptions(context, &client, item, pool, target.id).await?
            else {
                return Ok(ItemOutcome::Canceled);
            };
            descriptions += fetched;
        }
        if listed_connections == 0 {
            let error = last_error.expect("every connection failed");
            return Err(chatwork_failure(pool, None, error).await);
        }
        let mut result = mark_left(pool, item.job_id, &item.item_key).await?;
        result.total = all_rooms.len() as i64;
        result.descriptions = descriptions as i64;
        result.requests = meter.snapshot().requests as i64;
        result.connections = listed_connections;
        result.failed_connections = failed;
        tracing::info!(
            created = result.created,
            updated = result.updated,
            left = result.left,
            total = all_rooms.len(),
            descriptions,
            connections = listed_connections,
            failed_connections = failed,
            "rooms synced"
        );
        Ok(ItemOutcome::Completed {
            fetched: all_rooms.len() as i32,
            result,
        })
    }
}

/// A connection's client (counting into `meter`) and its room list.
async fn list(
    context: &SyncContext,
    target: &Active,
    meter: &RequestMeter,
    item: &ItemRun,
) -> Result<(ChatworkClient, Vec<Room>), ChatworkError> {
    let client = context
        .connections
        .client(target.id)
        .await?
        .counted_by(meter);
    let listed = client.list_rooms(item.deadline).await?;
    Ok((client, listed.items))
}

/// Upserts one chunk of rooms and adds what it created and changed to the item's result.
async fn upsert(
    pool: &PgPool,
    job_id: Uuid,
    item_key: &str,
    rooms: &[Room],
) -> Result<(), sqlx::Error> {
    let columns = RoomColumns::of(rooms);
    sqlx::query!(
        r#"WITH listed AS (
               SELECT t.room_id, t.name, t.room_type, nullif(t.icon_path, '') AS icon_path,
                      CASE WHEN t.updated > 0 THEN to_timestamp(t.updated) END AS chatwork_updated_at,
                      least(greatest(t.message_num, 0), 2147483647)::int AS message_count
                 FROM UNNEST($3::int8[], $4::text[], $5::text[], $6::text[], $7::int8[], $8::int8[])
                        AS t(room_id, name, room_type, icon_path, updated, message_num)
           ), upserted AS (
               INSERT INTO chatwork_rooms AS r (room_id, name, room_type, icon_path,
                                                chatwork_updated_at, message_count,
                                                description_stale)
               SELECT room_id, name, room_type, icon_path, chatwork_updated_at, message_count, true
                 FROM listed
               ON CONFLICT (room_id) DO UPDATE
                  SET name = EXCLUDED.name, room_type = EXCLUDED.room_type,
                      icon_path = EXCLUDED.icon_path,
                      chatwork_updated_at = EXCLUDED.chatwork_updated_at,
                      message_count = EXCLUDED.message_count,
                      left_at = NULL, description_stale = true, updated_at = now()
                WHERE (r.name, r.room_type, r.icon_path, r.chatwork_updated_at, r.message_count,
                       r.left_at IS NOT NULL)
                      IS DISTINCT FROM
                      (EXCLUDED.name, EXCLUDED.room_type, EXCLUDED.icon_path,
                       EXCLUDED.chatwork_updated_at, EXCLUDED.message_count, false)
            RETURNING (xmax = 0) AS created
           ), counted AS (
               SELECT count(*) FILTER (WHERE created) AS created,
                      count(*) FILTER (WHERE NOT created) AS updated
                 FROM upserted
           )
           UPDATE job_items i
              SET result = coalesce(i.result, '{}'::jsonb) || jsonb_build_object(
                      'created', coalesce((i.result ->> 'created')::int, 0) + c.created,
                      'updated', coalesce((i.result ->> 'updated')::int, 0) + c.updated),
                  updated_at = now()
             FROM counted c
            WHERE i.job_id = $1 AND i.item_key = $2 AND i.status = 'processing'"#,
        job_id,
        item_key,
        &columns.ids,
        &columns.names,
        &columns.types,
        &columns.icons,
        &columns.updated,
        &columns.counts,
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// Marks the rooms no connection lists as left and returns the item's counts so far
/// (`created`, `updated`, `left`).
async fn mark_left(
    pool: &PgPool,
    job_id: Uuid,
    item_key: &str,
) -> Result<RoomsSyncResult, sqlx::Error> {
    let result = sqlx::query_scalar!(
        r#"WITH gone AS (
               UPDATE chatwork_rooms r
                  SET left_at = now(), updated_at = now()
                WHERE r.left_at IS NULL
                  AND NOT EXISTS (SELECT 1 FROM chatwork_room_connections m
                                   WHERE m.room_id = r.room_id)
            RETURNING room_id
           ), item AS (
               UPDATE job_items i
                  SET result = coalesce(i.result, '{}'::jsonb) || jsonb_build_object(
                          'left', coalesce((i.result ->> 'left')::int, 0)
                                  + (SELECT count(*) FROM gone)::int),
                      updated_at = now()
                WHERE i.job_id = $1 AND i.item_key = $2 AND i.status = 'processing'
            RETURNING i.result
           )
           SELECT (SELECT result FROM item) AS "result?""#,
        job_id,
        item_key,
    )
    .fetch_one(pool)
    .await?;
    // The statements that count store only their own counts: the others read as zero.
    Ok(result
        .and_then(|r| serde_json::from_value::<PartialCounts>(r).ok())
        .map(|c| RoomsSyncResult {
            created: c.created,
            updated: c.updated,
            left: c.left,
            ..RoomsSyncResult::default()
        })
        .unwrap_or_default())
}

/// The counts the item's statements add up in `job_items.result` as they go.
#[derive(Deserialize, Default)]
#[serde(default)]
struct PartialCounts {
    created: i64,
    updated: i64,
    left: i64,
}

/// Fetches and stores the descriptions of rooms marked stale, as many as the budget
/// allows. Returns how many were stored, or `None` when the job was canceled.
async fn fetch_descriptions(
    context: &SyncContext,
    client: &ChatworkClient,
    item: &ItemRun,
    pool: &PgPool,
    connection: Uuid,
) -> Result<Option<usize>, ItemError> {
    let allowance = description_allowance(client, context.settings.max_descriptions).await;
    if allowance == 0 {
        return Ok(Some(0));
    }
    let stale = sqlx::query_scalar!(
        "SELECT r.room_id FROM chatwork_rooms r
           JOIN chatwork_room_connections m ON m.room_id = r.room_id AND m.connection_id = $2
          WHERE r.description_stale AND r.left_at IS NULL AND m.refused_at IS NULL
          ORDER BY r.room_id LIMIT $1",
        allowance as i64,
        connection,
    )
    .fetch_all(pool)
    .await?;
    let mut stored = 0;
    for chunk in stale.chunks(DESCRIPTIONS_PER_CHUNK) {
        if item.is_canceled().await? {
            return Ok(None);
        }
        let mut ids = Vec::with_capacity(chunk.len());
        let mut descriptions = Vec::with_capacity(chunk.len());
        let mut stop = false;
        for &room_id in chunk {
            match client.get_room(room_id, item.deadline).await {
                Ok(detail) => {
                    ids.push(room_id);
                    descriptions.push(detail.description);
                }
                // Gone or forbidden since the list: the next rooms sync marks it.
                Err(e) if e.is_room_unavailable() => {
                    tracing::info!(room_id, error = %e, "no description: the room is unavailable");
                }
                Err(e) => {
                    // The room list is stored; descriptions can wait for the next sync.
                    tracing::warn!(room_id, error = %e, "stopped fetching descriptions");
                    stop = true;
                    break;
                }
            }
        }
        stored += store_descriptions(pool, &ids, &descriptions).await?;
        if stop {
            break;
        }
    }
    Ok(Some(stored))
}

/// How many descriptions this sync may fetch: at most `max`, and no more than would
/// leave half of the current rate window to other work. Nothing when the budget cannot
/// be read.
async fn description_allowance(client: &ChatworkClient, max: usize) -> usize {
    match client.budget().state().await {
        Ok(Some(state)) if state.limit_known => {
            let spare = state.remaining - state.limit_count / 2;
            usize::try_from(spare).unwrap_or(0).min(max)
        }
        Ok(_) => 0,
        Err(e) => {
            tracing::warn!(error = %e, "could not read the rate budget; no descriptions this time");
            0
        }
    }
}

async fn store_descriptions(
    pool: &PgPool,
    ids: &[i64],
    descriptions: &[String],
) -> Result<usize, sqlx::Error> {
    if ids.is_empty() {
        return Ok(0);
    }
    let done = sqlx::query!(
        r#"UPDATE chatwork_rooms r
              SET description = nullif(t.description, ''), description_stale = false,
                  updated_at = now()
             FROM UNNEST($1::int8[], $2::text[]) AS t(room_id, description)
            WHERE r.room_id = t.room_id"#,
        ids,
        descriptions,
    )
    .execute(pool)
    .await?;
    Ok(done.rows_affected() as usize)
}
