//! `/api/chatwork/rooms`: the registered rooms with their sync state, switching a room's
//! sync on or off, and a room's stored messages.

use std::fmt;
use std::str::FromStr;

use axum::Json;
use axum::extract::State;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::json;
use sqlx::PgExecutor;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::audit::{self, AuditEntry};
use super::auth::Admin;
use super::cursor::{NameIdCursor, NameSearch, page};
use super::error::ErrorBody;
use super::extract::{ApiJson, ApiPath, ApiQuery, RequestId};
use super::{ApiError, AppState, ErrorCode, Limit};

/// A registered Chatwork room with its sync state and last error.
//
// One field per column of `chatwork_rooms`, which `rooms_where` selects with `r.*`: a
// column added there is one line here (the build fails until it is), and the OpenAPI
// document follows.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Room {
    /// Our id of the room.
    pub id: Uuid,
    /// Chatwork's id of the room.
    pub room_id: i64,
    pub name: String,
    pub description: Option<String>,
    /// `my`, `direct` or `group`.
    pub room_type: String,
    pub icon_path: Option<String>,
    /// Chatwork's `last_update_time` as last seen.
    pub chatwork_updated_at: Option<DateTime<Utc>>,
    /// Chatwork's `message_num` as last seen.
    pub message_count: i32,
    /// Whether messages syncs include the room.
    pub is_active: bool,
    /// When the room's messages were last synced successfully.
    pub last_sync_at: Option<DateTime<Utc>>,
    /// The newest stored message id (a decimal string).
    pub last_message_id: Option<String>,
    /// When the last sync of the room failed; null once a sync succeeds.
    pub last_error_at: Option<DateTime<Utc>>,
    pub last_error_message: Option<String>,
    /// Chatwork's HTTP status of the last failure, when it had one.
    pub last_error_status: Option<i32>,
    /// When a rooms sync last found the room gone from the account's room list (the
    /// account left it); null while it is listed. Messages syncs skip a left room; its
    /// stored messages stay.
    pub left_at: Option<DateTime<Utc>>,
    /// When a sync last found that more messages arrived since the previous sync than one
    /// request returns (100), so that some could not be fetched; null if never.
    pub gap_detected_at: Option<DateTime<Utc>>,
    /// How many messages that gap missed (an estimate, at least 1).
    pub gap_missed_estimate: Option<i32>,
    /// Sync bookkeeping, not shown: Chatwork's `last_update_time` and `message_num` as of
    /// the last successful messages sync, and whether the description needs fetching.
    #[serde(skip)]
    pub synced_last_update_time: Option<DateTime<Utc>>,
    #[serde(skip)]
    pub synced_message_num: Option<i32>,
    #[serde(skip)]
    pub description_stale: bool,
    /// Since when room checks have found the room needing a fetch (new messages or an
    /// edit); null when the last check found it current.
    pub fetch_wanted_since: Option<DateTime<Utc>>,
    /// What Chatwork's room list said at the room checks: `message_num` and
    /// `last_update_time`, and when a check last found them (or the room's need of a
    /// fetch) changed.
    pub checked_at: Option<DateTime<Utc>>,
    pub checked_message_num: Option<i32>,
    pub checked_last_update_time: Option<DateTime<Utc>>,
    /// Chatwork's `chatwork-message-limitation` header on the room's last fetch that
    /// carried one: the account's plan shows only part of the history (the free plan: the
    /// latest 5,000 messages of the last 40 days). Null if never seen.
    pub message_limitation: Option<String>,
    pub message_limitation_at: Option<DateTime<Utc>>,
    /// Webhook bookkeeping, not shown: messages webhooks stored since the last fetch
    /// (they count as seen), and since when a webhook's message waits for its author's
    /// name.
    #[serde(skip)]
    pub webhook_messages_since_fetch: i32,
    #[serde(skip)]
    pub author_names_wanted_since: Option<DateTime<Utc>>,
    /// When a Chatwork webhook last stored or updated one of the room's messages; null
    /// when none did.
    #[serde(rename = "lastWebhookAt")]
    pub webhook_message_at: Option<DateTime<Utc>>,
    /// The room's message rate as the room checks observe it from `message_num`
    /// (a moving average), per minute: what the checks' plan predicts it by.
    #[serde(rename = "checkedRatePerMinute")]
    pub rate_per_min: f32,
    /// The plan's bookkeeping, not shown: the last sample of the rate, and the
    /// `message_num` and time it was taken from.
    #[serde(skip)]
    pub recent_rate_per_min: f32,
    #[serde(skip)]
    pub rate_base_num: Option<i32>,
    #[serde(skip)]
    pub rate_base_at: Option<DateTime<Utc>>,
    /// What Chatwork's room list said at the room checks of the room's tasks (its open
    /// ones, in the fake's reading) and files.
    pub checked_task_num: Option<i32>,
    pub checked_file_num: Option<i32>,
    /// Sync bookkeeping, not shown: the counts the last successful tasks and files syncs
    /// recorded.
    #[serde(skip)]
    pub synced_task_num: Option<i32>,
    #[serde(skip)]
    pub synced_file_num: Option<i32>,
    /// When the room's tasks, files and members were last synced; null if never.
    pub tasks_synced_at: Option<DateTime<Utc>>,
    pub files_synced_at: Option<DateTime<Utc>>,
    pub members_synced_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Messages not yet stored as of the last room check (its `message_num` less the one
    /// at the last successful fetch, less what webhooks stored since).
    pub unseen_messages: i32,
    /// The observed message rate: stored messages sent in the last 24 hours, per hour.
    pub messages_per_hour: f64,
    /// The companies the room is linked to.
    pub company_ids: Vec<Uuid>,
    /// When the room was linked to the company asked about (only in a company's rooms).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub linked_at: Option<DateTime<Utc>>,
}

impl Room {
    /// The room as a non-admin may see it among `company`'s rooms: what Chatwork and
    /// syncing said of it is the room list's (admins only), and so are its other links.
    pub(crate) fn hide_admin_detail(&mut self, company: Uuid) {
        self.description = None;
        self.last_error_at = None;
        self.last_error_message = None;
        self.last_error_status = None;
        self.message_limitation = None;
        self.message_limitation_at = None;
        self.company_ids.retain(|id| *id == company);
    }
}

/// Which rooms [`rooms_where`] returns; every condition given must hold.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct RoomFilter {
    pub id: Option<Uuid>,
    /// Only rooms linked to this company (and `linked_at` is the link's time).
    pub company_id: Option<Uuid>,
}

/// The one query that reads rooms for the API, ordered by name.
pub(crate) async fn rooms_where(
    executor: impl PgExecutor<'_>,
    filter: RoomFilter,
) -> Result<Vec<Room>, sqlx::Error> {
    sqlx::query_as!(
        Room,
        r#"SELECT r.*,
                  cwsync_unseen(r.checked_message_num, r.synced_message_num,
                                r.webhook_messages_since_fetch) AS "unseen_messages!",
                  (SELECT count(*) FROM messages m
                    WHERE m.chatwork_room_id = r.id
                      AND m.send_time > now() - interval '24 hours')::float8 / 24
                    AS "messages_per_hour!",
                  ARRAY(SELECT l.company_id FROM company_room_links l
                         WHERE l.chatwork_room_id = r.id ORDER BY l.company_id) AS "company_ids!",
                  (SELECT l.created_at FROM company_room_links l
                    WHERE l.chatwork_room_id = r.id AND l.company_id = $2) AS linked_at
             FROM chatwork_rooms r
            WHERE ($1::uuid IS NULL OR r.id = $1)
              AND ($2::uuid IS NULL OR EXISTS (SELECT 1 FROM company_room_links l
                                                WHERE l.chatwork_room_id = r.id AND l.company_id = $2))
            ORDER BY r.name, r.room_id"#,
        filter.id,
        filter.company_id,
    )
    .fetch_all(executor)
    .await
}

/// Chatwork's id of a room: a positive whole number. In JSON, any number with an integral
/// value (`42` or `42.0`, both a JSON Schema `integer`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(into = "i64")]
pub struct ChatworkRoomId(i64);

impl<'de> Deserialize<'de> for ChatworkRoomId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let number = serde_json::Number::deserialize(deserializer)?;
        let whole = number.as_i64().or_else(|| {
            number
                .as_f64()
                // Below 2^63: the largest f64 under i64::MAX converts exactly.
                .filter(|f| f.fract() == 0.0 && f.abs() < 9.223_372_036_854_775e18)
                .map(|f| f as i64)
        });
        let value = whole.ok_or_else(|| {
            serde::de::Error::custom(format!(
                "{number} is not a Chatwork room id (a positive whole number)"
            ))
        })?;
        Self::try_from(value).map_err(serde::de::Error::custom)
    }
}

impl ChatworkRoomId {
    pub fn get(self) -> i64 {
        self.0
    }
}

impl TryFrom<i64> for ChatworkRoomId {
    type Error = String;

    fn try_from(value: i64) -> Result<Self, Self::Error> {
        if value > 0 {
            Ok(Self(value))
        } else {
            Err(format!(
                "{value} is not a Chatwork room id (a positive whole number)"
            ))
        }
    }
}

impl From<ChatworkRoomId> for i64 {
    fn from(id: ChatworkRoomId) -> i64 {
        id.0
    }
}

/// A room named in a path: Chatwork's id (digits) or ours (a UUID).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoomRef {
    Chatwork(ChatworkRoomId),
    Ours(Uuid),
}

impl FromStr for RoomRef {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if !s.is_empty() && s.len() <= 19 && s.bytes().all(|b| b.is_ascii_digit()) {
            let n: i64 = s.parse().map_err(|_| format!("{s} is too large"))?;
            return ChatworkRoomId::try_from(n).map(Self::Chatwork);
        }
        Uuid::parse_str(s).map(Self::Ours).map_err(|_| {
            "expected Chatwork's room id (a positive whole number) or a room UUID".to_owned()
        })
    }
}

impl<'de> Deserialize<'de> for RoomRef {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for RoomRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Chatwork(id) => write!(f, "{}", id.get()),
            Self::Ours(id) => write!(f, "{id}"),
        }
    }
}

/// A stored room's two ids.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RoomIds {
    pub id: Uuid,
    pub room_id: i64,
}

/// The room `room` names, or 404 `room_not_found`.
pub(crate) async fn resolve_room(
    executor: impl PgExecutor<'_>,
    room: RoomRef,
) -> Result<RoomIds, ApiError> {
    let (ours, chatwork) = match room {
        RoomRef::Ours(id) => (Some(id), None),
        RoomRef::Chatwork(id) => (None, Some(id.get())),
    };
    sqlx::query_as!(
        RoomIds,
        "SELECT id, room_id FROM chatwork_rooms WHERE id = $1 OR room_id = $2",
        ours,
        chatwork,
    )
    .fetch_optional(executor)
    .await?
    .ok_or_else(|| room_not_found(room))
}

pub(crate) fn room_not_found(room: impl fmt::Display) -> ApiError {
    ApiError::not_found(ErrorCode::RoomNotFound, format!("There is no room {room}."))
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RoomList {
    /// Ordered by name (then Chatwork's id).
    pub items: Vec<Room>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct RoomListQuery {
    /// Only rooms whose name contains this text (case-insensitive), up to 200 characters.
    #[param(value_type = Option<String>, max_length = 200)]
    q: Option<NameSearch>,
    /// Only active (`true`) or inactive (`false`) rooms.
    active: Option<bool>,
    /// Only rooms linked to some company (`true`) or to none (`false`).
    linked: Option<bool>,
    /// `nextCursor` of the previous page.
    #[param(value_type = Option<String>)]
    cursor: Option<NameIdCursor>,
    /// How many rooms, 1 to 100 (default 100).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    limit: Option<Limit>,
}

/// The registered rooms with their sync state and last error, by name, a page at a time.
#[utoipa::path(
    get, path = "/api/chatwork/rooms", operation_id = "listRooms", tag = "chatwork",
    params(RoomListQuery),
    responses(
        (status = 200, description = "A page of rooms, by name", body = RoomList),
        (status = 400, description = "A query parameter is unknown or invalid", body = ErrorBody),
        (status = 401, description = "No identity", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
    )
)]
pub(crate) async fn list(
    State(state): State<AppState>,
    _admin: Admin,
    ApiQuery(query): ApiQuery<RoomListQuery>,
) -> Result<Json<RoomList>, ApiError> {
    // Without a limit, a page holds the most a page may (older clients read one list).
    let limit = query.limit.map_or(i64::from(Limit::MAX), Limit::get);
    let (after_name, after_id) = match query.cursor {
        Some(c) => (Some(c.name), Some(c.id)),
        None => (None, None),
    };
    let items = sqlx::query_as!(
        Room,
        r#"SELECT r.*,
                  cwsync_unseen(r.checked_message_num, r.synced_message_num,
                                r.webhook_messages_since_fetch) AS "unseen_messages!",
                  (SELECT count(*) FROM messages m
                    WHERE m.chatwork_room_id = r.id
                      AND m.send_time > now() - interval '24 hours')::float8 / 24
                    AS "messages_per_hour!",
                  ARRAY(SELECT l.company_id FROM company_room_links l
                         WHERE l.chatwork_room_id = r.id ORDER BY l.company_id) AS "company_ids!",
                  NULL::timestamptz AS linked_at
             FROM chatwork_rooms r
            WHERE ($1::text IS NULL OR r.name ILIKE $1)
              AND ($2::bool IS NULL OR r.is_active = $2)
              AND ($3::bool IS NULL
                   OR EXISTS (SELECT 1 FROM company_room_links l WHERE l.chatwork_room_id = r.id) = $3)
              AND ($4::text IS NULL OR (r.name, r.room_id) > ($4, $5::bigint))
            ORDER BY r.name, r.room_id
            LIMIT $6"#,
        NameSearch::pattern(query.q.as_ref()),
        query.active,
        query.linked,
        after_name,
        after_id,
        limit + 1,
    )
    .fetch_all(&state.pool)
    .await?;
    let (items, next_cursor) = page(items, limit, |r| {
        NameIdCursor {
            name: r.name.clone(),
            id: r.room_id,
        }
        .encode()
    });
    Ok(Json(RoomList { items, next_cursor }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Path)]
pub(crate) struct RoomPath {
    /// Chatwork's id of the room (digits, a positive 64-bit number) or ours (a UUID).
    #[param(value_type = String, pattern = r"^([1-9][0-9]{0,17}|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})$")]
    pub(crate) id: RoomRef,
}

/// What a room update may change.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RoomUpdate {
    /// Whether messages syncs include the room.
    pub is_active: bool,
}

/// Switches a room's sync on or off.
#[utoipa::path(
    patch, path = "/api/chatwork/rooms/{id}", operation_id = "updateRoom", tag = "chatwork",
    params(RoomPath),
    request_body = RoomUpdate,
    responses(
        (status = 200, description = "The room as updated", body = Room),
        (status = 400, description = "Malformed id or JSON", body = ErrorBody),
        (status = 401, description = "No identity", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 404, description = "No such room", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 422, description = "A field is missing, unknown or invalid", body = ErrorBody),
    )
)]
pub(crate) async fn update(
    State(state): State<AppState>,
    Admin(caller): Admin,
    request_id: RequestId,
    ApiPath(path): ApiPath<RoomPath>,
    ApiJson(update): ApiJson<RoomUpdate>,
) -> Result<Json<Room>, ApiError> {
    let mut tx = state.pool.begin().await?;
    let room = resolve_room(&mut *tx, path.id).await?;
    let was_active = sqlx::query_scalar!(
        "SELECT is_active FROM chatwork_rooms WHERE id = $1 FOR UPDATE",
        room.id
    )
    .fetch_one(&mut *tx)
    .await?;
    sqlx::query!(
        r#"UPDATE chatwork_rooms SET is_active = $2, updated_at = now()
            WHERE id = $1 AND is_active <> $2"#,
        room.id,
        update.is_active,
    )
    .execute(&mut *tx)
    .await?;
    audit::record(
        &mut *tx,
        AuditEntry {
            caller: &caller,
            request_id: &request_id,
            action: "chatwork_room.update",
            resource_type: "chatwork_room",
            resource_id: room.id.to_string(),
            old_values: Some(json!({"roomId": room.room_id, "isActive": was_active})),
            new_values: Some(json!({"roomId": room.room_id, "isActive": update.is_active})),
        },
    )
    .await?;
    tx.commit().await?;
    let room = rooms_where(
        &state.pool,
        RoomFilter {
            id: Some(room.id),
            ..RoomFilter::default()
        },
    )
    .await?
    .pop()
    .ok_or_else(|| room_not_found(path.id))?;
    Ok(Json(room))
}

/// A stored message.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Message {
    /// Chatwork's id of the message: a decimal string that may exceed 64 bits.
    pub message_id: String,
    /// Chatwork's id of the room.
    pub room_id: i64,
    /// Our id of the room.
    pub chatwork_room_id: Uuid,
    pub account_id: i64,
    /// Null until a fetch of the room fills it in: a message a Chatwork webhook stored
    /// from an account none of the stored messages names yet.
    pub account_name: Option<String>,
    pub account_avatar_url: Option<String>,
    pub body: String,
    pub send_time: DateTime<Utc>,
    /// When the message was last edited; null if never.
    pub update_time: Option<DateTime<Utc>>,
    /// The company the message is assigned to.
    pub company_id: Option<Uuid>,
    /// When cwsync stored it.
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MessagePage {
    /// Newest first.
    pub items: Vec<Message>,
    /// Pass as `cursor` for the next (older) page; null on the last page.
    pub next_cursor: Option<String>,
}

/// Where a page of messages starts: after the message with this send time and id in
/// newest-first order. Opaque to clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MessageCursor {
    send_time: DateTime<Utc>,
    message_id: String,
}

impl MessageCursor {
    fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!(
            "v1:{}:{}",
            self.send_time.timestamp_micros(),
            self.message_id
        ))
    }
}

impl FromStr for MessageCursor {
    type Err = &'static str;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        const INVALID: &str = "not a cursor this API gave out";
        let bytes = URL_SAFE_NO_PAD.decode(s).map_err(|_| INVALID)?;
        let text = String::from_utf8(bytes).map_err(|_| INVALID)?;
        let mut parts = text.splitn(3, ':');
        let (Some("v1"), Some(micros), Some(message_id)) =
            (parts.next(), parts.next(), parts.next())
        else {
            return Err(INVALID);
        };
        // A time the database cannot hold was never given out (and would be a 500).
        let send_time = micros
            .parse::<i64>()
            .ok()
            .and_then(super::time::storable_micros)
            .ok_or(INVALID)?;
        let valid_id =
            (1..=40).contains(&message_id.len()) && message_id.bytes().all(|b| b.is_ascii_digit());
        if !valid_id {
            return Err(INVALID);
        }
        Ok(Self {
            send_time,
            message_id: message_id.to_owned(),
        })
    }
}

impl<'de> Deserialize<'de> for MessageCursor {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct MessageQuery {
    /// How many messages, 1 to 100 (default 20).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    limit: Option<Limit>,
    /// `nextCursor` of the previous page, as given (opaque: base64url without padding;
    /// any other value is a 400).
    #[param(value_type = Option<String>, min_length = 1, pattern = r"^[A-Za-z0-9_-]+$")]
    cursor: Option<MessageCursor>,
}

/// A room's stored messages, newest first (by send time, then message id), a page at a
/// time.
#[utoipa::path(
    get, path = "/api/chatwork/rooms/{id}/messages", operation_id = "listRoomMessages", tag = "chatwork",
    params(RoomPath, MessageQuery),
    responses(
        (status = 200, description = "A page of messages", body = MessagePage),
        (status = 400, description = "Malformed id, limit or cursor", body = ErrorBody),
        (status = 401, description = "No identity", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 404, description = "No such room", body = ErrorBody),
    )
)]
pub(crate) async fn messages(
    State(state): State<AppState>,
    _admin: Admin,
    ApiPath(path): ApiPath<RoomPath>,
    ApiQuery(query): ApiQuery<MessageQuery>,
) -> Result<Json<MessagePage>, ApiError> {
    let room = resolve_room(&state.pool, path.id).await?;
    let limit = query.limit.unwrap_or(Limit::DEFAULT).get();
    let (after_time, after_id) = match query.cursor {
        Some(c) => (Some(c.send_time), Some(c.message_id)),
        None => (None, None),
    };
    let items = sqlx::query_as!(
        Message,
        r#"SELECT message_id, room_id, chatwork_room_id, account_id, account_name,
                  account_avatar_url, body, send_time, update_time, company_id, created_at
             FROM messages
            WHERE chatwork_room_id = $1
              AND ($2::timestamptz IS NULL
                   OR (send_time, message_seq) < ($2, $3::text::numeric))
            ORDER BY send_time DESC, message_seq DESC
            LIMIT $4"#,
        room.id,
        after_time,
        after_id,
        limit + 1,
    )
    .fetch_all(&state.pool)
    .await?;
    let (items, next_cursor) = page(items, limit, |m| {
        MessageCursor {
            send_time: m.send_time,
            message_id: m.message_id.clone(),
        }
        .encode()
    });
    Ok(Json(MessagePage { items, next_cursor }))
}

/// 404 unless the room exists; for routes that name a room by Chatwork's id in a body.
pub(crate) async fn require_room(
    state: &AppState,
    room_id: ChatworkRoomId,
) -> Result<RoomIds, ApiError> {
    resolve_room(&state.pool, RoomRef::Chatwork(room_id)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_refs_are_chatwork_ids_or_uuids() {
        assert_eq!(
            "42".parse::<RoomRef>().unwrap(),
            RoomRef::Chatwork(ChatworkRoomId(42))
        );
        let id = Uuid::new_v4();
        assert_eq!(
            id.to_string().parse::<RoomRef>().unwrap(),
            RoomRef::Ours(id)
        );
        for bad in [
            "0",
            "-1",
            "abc",
            "",
            "1.5",
            "99999999999999999999",
            "1; DROP TABLE x",
        ] {
            assert!(bad.parse::<RoomRef>().is_err(), "{bad}");
        }
    }

    #[test]
    fn room_ids_in_json_are_integral_numbers() {
        let id = |json: &str| serde_json::from_str::<ChatworkRoomId>(json).map(ChatworkRoomId::get);
        // JSON Schema's `integer` is a value: 42.0 is one (the fuzzer found it refused).
        assert_eq!(id("42").unwrap(), 42);
        assert_eq!(id("42.0").unwrap(), 42);
        assert_eq!(id("9223372036854775807").unwrap(), i64::MAX);
        for bad in [
            "0",
            "-1",
            "1.5",
            "\"42\"",
            "9223372036854775808",
            "1e23",
            "null",
        ] {
            assert!(id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let cursor = MessageCursor {
            send_time: DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap(),
            message_id: "1234567890123456789012".into(),
        };
        assert_eq!(cursor.encode().parse::<MessageCursor>().unwrap(), cursor);
        for bad in [
            "",
            "!!",
            "djE6eDox",
            &URL_SAFE_NO_PAD.encode("v1:1:abc"),
            &URL_SAFE_NO_PAD.encode("v2:1:1"),
            // A forged cursor whose time is before what Postgres stores.
            "djE6LTM3NzcwNTExNjgwMDAwMDAwMDox",
        ] {
            assert!(bad.parse::<MessageCursor>().is_err(), "{bad}");
        }
    }
}
