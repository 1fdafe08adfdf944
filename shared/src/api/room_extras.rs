//! What a room holds besides its messages, as syncs stored it: its tasks, its files (the
//! metadata and whether the content is in object storage) and its members, under
//! `/api/chatwork/rooms/{id}/…`; and a company's tasks across its linked rooms.
//!
//! Who may read a room's: admins any room's; anyone else a room linked to some company
//! (a company's rooms are anyone's to read, see `companies.rs`), and an unlinked room is
//! 404 to them as if it did not exist. The company routes join `company_room_links` at
//! read time, so a link or unlink shows at once.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::auth::Caller;
use super::companies::{CompanyPath, require_company};
use super::cursor::{TaskCursor, TimeIdCursor, page};
use super::error::ErrorBody;
use super::extract::{ApiPath, ApiQuery};
use super::rooms::{RoomIds, RoomPath, RoomRef, resolve_room, room_not_found};
use super::{ApiError, AppState, ErrorCode, Limit};

/// The room `room` names, if `caller` may read what it holds (see the module
/// documentation); else 404 `room_not_found`.
pub(crate) async fn readable_room(
    state: &AppState,
    caller: &Caller,
    room: RoomRef,
) -> Result<RoomIds, ApiError> {
    let ids = resolve_room(&state.pool, room).await?;
    if caller.is_admin() {
        return Ok(ids);
    }
    let linked = sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM company_room_links WHERE chatwork_room_id = $1)
           AS "linked!""#,
        ids.id
    )
    .fetch_one(&state.pool)
    .await?;
    if linked {
        Ok(ids)
    } else {
        Err(room_not_found(room))
    }
}

/// A task's state in Chatwork.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TaskStatus {
    Open,
    Done,
}

impl TaskStatus {
    fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Done => "done",
        }
    }
}

/// The order tasks are listed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TaskOrder {
    /// Newest first (by Chatwork's task id, which grows as tasks are made).
    #[default]
    Newest,
    /// Earliest deadline first, tasks without a deadline last.
    Deadline,
}

/// A task of a Chatwork room, as the last sync of the room's tasks saw it.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Task {
    /// Chatwork's id of the task.
    pub task_id: i64,
    /// Chatwork's id of the room.
    pub room_id: i64,
    /// Our id of the room.
    pub chatwork_room_id: Uuid,
    pub room_name: String,
    /// The assignee.
    pub account_id: i64,
    pub account_name: String,
    /// Who assigned it, when Chatwork says.
    pub assigned_by_account_id: Option<i64>,
    pub assigned_by_account_name: Option<String>,
    /// The message the task was made from, when Chatwork names one.
    pub message_id: Option<String>,
    pub body: String,
    /// `none` (no deadline), `date` (a day: `limitTime` is that day's end in Tokyo, as
    /// Chatwork gives it) or `time` (an instant).
    pub limit_type: String,
    pub limit_time: Option<DateTime<Utc>>,
    /// `open` or `done`.
    pub status: String,
    /// Open with a deadline already past.
    pub overdue: bool,
    /// When a sync first saw the task, and first saw it done.
    pub first_seen_at: DateTime<Utc>,
    pub done_seen_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TaskPage {
    /// In the order asked for.
    pub items: Vec<Task>,
    /// Pass as `cursor` for the next page (with the same `sort`); null on the last page.
    pub next_cursor: Option<String>,
    /// When the room's tasks were last synced; null if never, and in a company's list.
    pub synced_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct RoomTaskQuery {
    /// Only open or only done tasks (default: both).
    #[param(inline)]
    status: Option<TaskStatus>,
    /// `newest` (default) or `deadline`.
    #[param(inline)]
    sort: Option<TaskOrder>,
    /// `nextCursor` of the previous page (of the same `sort`).
    #[param(value_type = Option<String>)]
    cursor: Option<TaskCursor>,
    /// How many tasks, 1 to 100 (default 20).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    limit: Option<Limit>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct CompanyTaskQuery {
    /// Open (default) or done tasks.
    #[param(inline)]
    status: Option<TaskStatus>,
    /// `nextCursor` of the previous page.
    #[param(value_type = Option<String>)]
    cursor: Option<TaskCursor>,
    /// How many tasks, 1 to 100 (default 100).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    limit: Option<Limit>,
}

/// Which tasks [`tasks_where`] reads, in which order, from where.
struct TaskFilter {
    room: Option<Uuid>,
    company: Option<Uuid>,
    status: Option<TaskStatus>,
    order: TaskOrder,
    cursor: Option<TaskCursor>,
    limit: i64,
}

fn cursor_of_other_order() -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        ErrorCode::InvalidParameter,
        "cursor: it continues a list in another order (pass the same sort).",
    )
    .with_field("cursor")
}

/// A page of the tasks `filter` names (a room's, or a company's linked rooms').
async fn tasks_where(state: &AppState, filter: TaskFilter) -> Result<TaskPage, ApiError> {
    let by_deadline = filter.order == TaskOrder::Deadline;
    if filter.cursor.is_some_and(|c| c.by_deadline != by_deadline) {
        return Err(cursor_of_other_order());
    }
    let (after_deadline, after_id) = match filter.cursor {
        Some(c) => (c.deadline, Some(c.task_id)),
        None => (None, None),
    };
    // One statement for both orders: `sort` picks the ORDER BY key, and the cursor's
    // condition is the one of that order (after the last row's deadline and id, a
    // deadline after every deadline being none).
    let items = sqlx::query_as!(
        Task,
        r#"SELECT t.task_id, t.room_id, t.chatwork_room_id, r.name AS room_name,
                  t.account_id, t.account_name, t.assigned_by_account_id,
                  t.assigned_by_account_name, t.message_id, t.body, t.limit_type,
                  t.limit_time, t.status,
                  -- No deadline is never overdue (a NULL comparison is not false).
                  (t.status = 'open' AND coalesce(t.limit_time < now(), false)) AS "overdue!",
                  t.first_seen_at, t.done_seen_at, t.updated_at
             FROM chatwork_tasks t
             JOIN chatwork_rooms r ON r.id = t.chatwork_room_id
            WHERE ($1::uuid IS NULL OR t.chatwork_room_id = $1)
              AND ($2::uuid IS NULL OR t.chatwork_room_id IN
                   (SELECT l.chatwork_room_id FROM company_room_links l WHERE l.company_id = $2))
              AND ($3::text IS NULL OR t.status = $3)
              AND ($5::bigint IS NULL
                   OR (NOT $4::bool AND t.task_id < $5)
                   OR ($4 AND $6::timestamptz IS NULL AND t.limit_time IS NULL AND t.task_id > $5)
                   OR ($4 AND $6 IS NOT NULL
                       AND (t.limit_time IS NULL OR (t.limit_time, t.task_id) > ($6, $5))))
            ORDER BY CASE WHEN $4 THEN t.limit_time END ASC NULLS LAST,
                     CASE WHEN $4 THEN t.task_id END ASC,
                     t.task_id DESC
            LIMIT $7"#,
        filter.room,
        filter.company,
        filter.status.map(TaskStatus::as_str),
        by_deadline,
        after_id,
        after_deadline,
        filter.limit + 1,
    )
    .fetch_all(&state.pool)
    .await?;
    let (items, next_cursor) = page(items, filter.limit, |t| {
        TaskCursor {
            by_deadline,
            deadline: t.limit_time,
            task_id: t.task_id,
        }
        .encode()
    });
    Ok(TaskPage {
        items,
        next_cursor,
        synced_at: None,
    })
}

/// A room's tasks, newest first or by deadline, a page at a time.
#[utoipa::path(
    get, path = "/api/chatwork/rooms/{id}/tasks", operation_id = "listRoomTasks", tag = "chatwork",
    params(RoomPath, RoomTaskQuery),
    responses(
        (status = 200, description = "A page of the room's tasks, with when they were last synced", body = TaskPage),
        (status = 400, description = "Malformed id, status, sort, limit or cursor", body = ErrorBody),
        (status = 401, description = "No identity", body = ErrorBody),
        (status = 403, description = "No role", body = ErrorBody),
        (status = 404, description = "No such room (or, for a non-admin, one linked to no company)", body = ErrorBody),
    )
)]
pub(crate) async fn room_tasks(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(path): ApiPath<RoomPath>,
    ApiQuery(query): ApiQuery<RoomTaskQuery>,
) -> Result<Json<TaskPage>, ApiError> {
    let room = readable_room(&state, &caller, path.id).await?;
    let mut page = tasks_where(
        &state,
        TaskFilter {
            room: Some(room.id),
            company: None,
            status: query.status,
            order: query.sort.unwrap_or_default(),
            cursor: query.cursor,
            limit: query.limit.unwrap_or(Limit::DEFAULT).get(),
        },
    )
    .await?;
    let synced_at = sqlx::query_scalar!(
        "SELECT tasks_synced_at FROM chatwork_rooms WHERE id = $1",
        room.id
    )
    .fetch_one(&state.pool)
    .await?;
    page.synced_at = synced_at;
    Ok(Json(page))
}

/// A company's tasks across its linked rooms, earliest deadline first (tasks without one
/// last), a page at a time.
#[utoipa::path(
    get, path = "/api/companies/{id}/tasks", operation_id = "listCompanyTasks", tag = "companies",
    params(CompanyPath, CompanyTaskQuery),
    responses(
        (status = 200, description = "A page of the tasks of the company's rooms, by deadline", body = TaskPage),
        (status = 400, description = "Malformed id, status, limit or cursor", body = ErrorBody),
        (status = 401, description = "No identity", body = ErrorBody),
        (status = 403, description = "No role", body = ErrorBody),
        (status = 404, description = "No such company", body = ErrorBody),
    )
)]
pub(crate) async fn company_tasks(
    State(state): State<AppState>,
    _caller: Caller,
    ApiPath(path): ApiPath<CompanyPath>,
    ApiQuery(query): ApiQuery<CompanyTaskQuery>,
) -> Result<Json<TaskPage>, ApiError> {
    require_company(&state.pool, path.id).await?;
    let page = tasks_where(
        &state,
        TaskFilter {
            room: None,
            company: Some(path.id),
            status: Some(query.status.unwrap_or(TaskStatus::Open)),
            order: TaskOrder::Deadline,
            cursor: query.cursor,
            limit: query.limit.map_or(i64::from(Limit::MAX), Limit::get),
        },
    )
    .await?;
    Ok(Json(page))
}

/// A file of a Chatwork room: what Chatwork says of it, and its copy in object storage.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RoomFile {
    /// Chatwork's id of the file.
    pub file_id: i64,
    /// Chatwork's id of the room.
    pub room_id: i64,
    /// Our id of the room.
    pub chatwork_room_id: Uuid,
    /// Who uploaded it.
    pub account_id: i64,
    pub account_name: String,
    /// The message the file came with, when Chatwork names one.
    pub message_id: Option<String>,
    pub filename: String,
    /// Bytes, as Chatwork says.
    pub filesize: i64,
    pub upload_time: DateTime<Utc>,
    /// The copy: `pending` (not copied yet), `stored` (download it at `contentPath`),
    /// `too_large` (over the configured cap: recorded, not copied) or `failed` (a copy
    /// that cannot succeed).
    pub storage_state: String,
    /// For a stored file: the bytes stored, their SHA-256 (hex) and when.
    pub stored_bytes: Option<i64>,
    pub sha256: Option<String>,
    pub stored_at: Option<DateTime<Utc>>,
    /// Why a `failed` copy failed (admins only; null for anyone else).
    pub storage_error: Option<String>,
    /// Where a stored file's content is served (same origin, with the caller's token);
    /// null unless `stored`.
    pub content_path: Option<String>,
    pub first_seen_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FilePage {
    /// Newest upload first.
    pub items: Vec<RoomFile>,
    /// Pass as `cursor` for the next (older) page; null on the last page.
    pub next_cursor: Option<String>,
    /// When the room's files were last synced; null if never.
    pub synced_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct FileQuery {
    /// `nextCursor` of the previous page.
    #[param(value_type = Option<String>)]
    cursor: Option<TimeIdCursor>,
    /// How many files, 1 to 100 (default 20).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    limit: Option<Limit>,
}

/// The path of the route that serves a stored file's content.
pub(crate) fn content_path(room_id: i64, file_id: i64) -> String {
    format!("/api/chatwork/rooms/{room_id}/files/{file_id}/content")
}

/// A room's files, newest upload first, a page at a time: metadata, and whether and where
/// the content can be downloaded.
#[utoipa::path(
    get, path = "/api/chatwork/rooms/{id}/files", operation_id = "listRoomFiles", tag = "chatwork",
    params(RoomPath, FileQuery),
    responses(
        (status = 200, description = "A page of the room's files", body = FilePage),
        (status = 400, description = "Malformed id, limit or cursor", body = ErrorBody),
        (status = 401, description = "No identity", body = ErrorBody),
        (status = 403, description = "No role", body = ErrorBody),
        (status = 404, description = "No such room (or, for a non-admin, one linked to no company)", body = ErrorBody),
    )
)]
pub(crate) async fn room_files(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(path): ApiPath<RoomPath>,
    ApiQuery(query): ApiQuery<FileQuery>,
) -> Result<Json<FilePage>, ApiError> {
    let room = readable_room(&state, &caller, path.id).await?;
    let limit = query.limit.unwrap_or(Limit::DEFAULT).get();
    let (after_time, after_id) = match query.cursor {
        Some(c) => (Some(c.at), Some(c.id)),
        None => (None, None),
    };
    let rows = sqlx::query!(
        r#"SELECT file_id, room_id, chatwork_room_id, account_id, account_name, message_id,
                  filename, filesize, upload_time, storage_state, stored_bytes, sha256,
                  stored_at, storage_error, first_seen_at, updated_at
             FROM chatwork_files
            WHERE chatwork_room_id = $1
              AND ($2::timestamptz IS NULL OR (upload_time, file_id) < ($2, $3::bigint))
            ORDER BY upload_time DESC, file_id DESC
            LIMIT $4"#,
        room.id,
        after_time,
        after_id,
        limit + 1,
    )
    .fetch_all(&state.pool)
    .await?;
    let admin = caller.is_admin();
    let items: Vec<RoomFile> = rows
        .into_iter()
        .map(|f| RoomFile {
            content_path: (f.storage_state == "stored").then(|| content_path(f.room_id, f.file_id)),
            file_id: f.file_id,
            room_id: f.room_id,
            chatwork_room_id: f.chatwork_room_id,
            account_id: f.account_id,
            account_name: f.account_name,
            message_id: f.message_id,
            filename: f.filename,
            filesize: f.filesize,
            upload_time: f.upload_time,
            storage_state: f.storage_state,
            stored_bytes: f.stored_bytes,
            sha256: f.sha256,
            stored_at: f.stored_at,
            storage_error: f.storage_error.filter(|_| admin),
            first_seen_at: f.first_seen_at,
            updated_at: f.updated_at,
        })
        .collect();
    let (items, next_cursor) = page(items, limit, |f: &RoomFile| {
        TimeIdCursor {
            at: f.upload_time,
            id: f.file_id,
        }
        .encode()
    });
    let synced_at = sqlx::query_scalar!(
        "SELECT files_synced_at FROM chatwork_rooms WHERE id = $1",
        room.id
    )
    .fetch_one(&state.pool)
    .await?;
    Ok(Json(FilePage {
        items,
        next_cursor,
        synced_at,
    }))
}

/// A member of a Chatwork room, as the last sync of the room's members saw them.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Member {
    pub account_id: i64,
    /// `admin`, `member` or `readonly`.
    pub role: String,
    pub name: String,
    pub chatwork_id: Option<String>,
    pub organization_id: Option<i64>,
    pub organization_name: Option<String>,
    pub department: Option<String>,
    pub avatar_image_url: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MemberList {
    /// By name (then account id). Every member: Chatwork's list of a room is one page.
    pub items: Vec<Member>,
    /// When the room's members were last synced; null if never.
    pub synced_at: Option<DateTime<Utc>>,
}

/// A room's members with their organizations.
#[utoipa::path(
    get, path = "/api/chatwork/rooms/{id}/members", operation_id = "listRoomMembers", tag = "chatwork",
    params(RoomPath),
    responses(
        (status = 200, description = "The room's members", body = MemberList),
        (status = 400, description = "Malformed id", body = ErrorBody),
        (status = 401, description = "No identity", body = ErrorBody),
        (status = 403, description = "No role", body = ErrorBody),
        (status = 404, description = "No such room (or, for a non-admin, one linked to no company)", body = ErrorBody),
    )
)]
pub(crate) async fn room_members(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(path): ApiPath<RoomPath>,
) -> Result<Json<MemberList>, ApiError> {
    let room = readable_room(&state, &caller, path.id).await?;
    let items = sqlx::query_as!(
        Member,
        r#"SELECT account_id, role, name, chatwork_id, organization_id, organization_name,
                  department, avatar_image_url
             FROM chatwork_members
            WHERE chatwork_room_id = $1
            ORDER BY name, account_id"#,
        room.id,
    )
    .fetch_all(&state.pool)
    .await?;
    let synced_at = sqlx::query_scalar!(
        "SELECT members_synced_at FROM chatwork_rooms WHERE id = $1",
        room.id
    )
    .fetch_one(&state.pool)
    .await?;
    Ok(Json(MemberList { items, synced_at }))
}
