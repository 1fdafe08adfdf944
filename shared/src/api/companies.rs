//! `/api/companies`: the company list (paged, searchable), one company, create, and
//! linking rooms to companies.
//!
//! Linking a room assigns the company to the room's stored messages that have none, in
//! the link's transaction; unlinking leaves stored messages as they are.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::json;
use sqlx::{PgConnection, PgExecutor};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::audit::{self, AuditEntry};
use super::auth::{Admin, Caller, Writer};
use super::cursor::{NameSearch, NameUuidCursor, page};
use super::error::ErrorBody;
use super::extract::{ApiJson, ApiPath, ApiQuery, RequestId};
use super::rooms::{ChatworkRoomId, Room, RoomFilter, RoomIds, RoomRef, resolve_room, rooms_where};
use super::{ApiError, AppState, ErrorCode, Limit};

#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Company {
    pub id: Uuid,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CompanyList {
    /// By name.
    pub items: Vec<Company>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// A company's name: 1 to 200 characters once trimmed, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompanyName(String);

impl CompanyName {
    pub const MAX_CHARS: usize = 200;

    pub fn parse(raw: &str) -> Result<Self, String> {
        let name = raw.trim();
        if name.is_empty() {
            return Err("the name must not be blank".into());
        }
        if name.chars().count() > Self::MAX_CHARS {
            return Err(format!(
                "the name must be at most {} characters",
                Self::MAX_CHARS
            ));
        }
        if name.chars().any(char::is_control) {
            return Err("the name must not contain control characters".into());
        }
        Ok(Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for CompanyName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        Self::parse(&raw).map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewCompany {
    /// 1 to 200 characters once trimmed, not blank, no control characters.
    #[schema(value_type = String, min_length = 1, max_length = 200, pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$")]
    pub name: CompanyName,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Path)]
pub(crate) struct CompanyPath {
    /// The company's id.
    pub(crate) id: Uuid,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Path)]
pub(crate) struct CompanyRoomPath {
    /// The company's id.
    pub(crate) id: Uuid,
    /// Chatwork's id of the room (digits, a positive 64-bit number) or ours (a UUID).
    #[param(rename = "roomId", value_type = String, pattern = r"^([1-9][0-9]{0,17}|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})$")]
    pub(crate) room_id: RoomRef,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct CompanyListQuery {
    /// Only companies whose name contains this text (case-insensitive), up to 200
    /// characters.
    #[param(value_type = Option<String>, max_length = 200)]
    q: Option<NameSearch>,
    /// `nextCursor` of the previous page.
    #[param(value_type = Option<String>)]
    cursor: Option<NameUuidCursor>,
    /// How many companies, 1 to 100 (default 100).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    limit: Option<Limit>,
}

/// The companies by name, a page at a time.
#[utoipa::path(
    get, path = "/api/companies", operation_id = "listCompanies", tag = "companies",
    params(CompanyListQuery),
    responses(
        (status = 200, description = "A page of companies", body = CompanyList),
        (status = 400, description = "A query parameter is unknown or invalid", body = ErrorBody),
        (status = 401, description = "No identity", body = ErrorBody),
        (status = 403, description = "No role", body = ErrorBody),
    )
)]
pub(crate) async fn list(
    State(state): State<AppState>,
    _caller: Caller,
    ApiQuery(query): ApiQuery<CompanyListQuery>,
) -> Result<Json<CompanyList>, ApiError> {
    // Without a limit, a page holds the most a page may (older clients read one list).
    let limit = query.limit.map_or(i64::from(Limit::MAX), Limit::get);
    let (after_name, after_id) = match query.cursor {
        Some(c) => (Some(c.name), Some(c.id)),
        None => (None, None),
    };
    let items = sqlx::query_as!(
        Company,
        r#"SELECT id, name, created_at, updated_at FROM companies
            WHERE ($1::text IS NULL OR name ILIKE $1)
              AND ($2::text IS NULL OR (name, id) > ($2, $3::uuid))
            ORDER BY name, id
            LIMIT $4"#,
        NameSearch::pattern(query.q.as_ref()),
        after_name,
        after_id,
        limit + 1,
    )
    .fetch_all(&state.pool)
    .await?;
    let (items, next_cursor) = page(items, limit, |c| {
        NameUuidCursor {
            name: c.name.clone(),
            id: c.id,
        }
        .encode()
    });
    Ok(Json(CompanyList { items, next_cursor }))
}

/// One company.
#[utoipa::path(
    get, path = "/api/companies/{id}", operation_id = "getCompany", tag = "companies",
    params(CompanyPath),
    responses(
        (status = 200, description = "The company", body = Company),
        (status = 400, description = "The id is not a UUID", body = ErrorBody),
        (status = 401, description = "No identity", body = ErrorBody),
        (status = 403, description = "No role", body = ErrorBody),
        (status = 404, description = "No such company", body = ErrorBody),
    )
)]
pub(crate) async fn get(
    State(state): State<AppState>,
    _caller: Caller,
    ApiPath(path): ApiPath<CompanyPath>,
) -> Result<Json<Company>, ApiError> {
    let company = sqlx::query_as!(
        Company,
        "SELECT id, name, created_at, updated_at FROM companies WHERE id = $1",
        path.id
    )
    .fetch_optional(&state.pool)
    .await?
    .ok_or_else(|| {
        ApiError::not_found(
            ErrorCode::CompanyNotFound,
            format!("There is no company {}.", path.id),
        )
    })?;
    Ok(Json(company))
}

/// Creates a company.
#[utoipa::path(
    post, path = "/api/companies", operation_id = "createCompany", tag = "companies",
    request_body = NewCompany,
    responses(
        (status = 201, description = "The new company", body = Company),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "No identity", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 422, description = "A field is missing, unknown or invalid", body = ErrorBody),
    )
)]
pub(crate) async fn create(
    State(state): State<AppState>,
    Admin(caller): Admin,
    request_id: RequestId,
    ApiJson(new): ApiJson<NewCompany>,
) -> Result<(StatusCode, Json<Company>), ApiError> {
    let mut tx = state.pool.begin().await?;
    let company = sqlx::query_as!(
        Company,
        "INSERT INTO companies (name) VALUES ($1) RETURNING id, name, created_at, updated_at",
        new.name.as_str(),
    )
    .fetch_one(&mut *tx)
    .await?;
    audit::record(
        &mut *tx,
        AuditEntry {
            caller: &caller,
            request_id: &request_id,
            action: "company.create",
            resource_type: "company",
            resource_id: company.id.to_string(),
            old_values: None,
            new_values: Some(json!({"name": company.name})),
        },
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(company)))
}

/// 404 `company_not_found` unless the company exists. Inside a transaction that changes
/// what belongs to the company, the row is locked against a concurrent delete.
pub(crate) async fn require_company(
    executor: impl PgExecutor<'_>,
    id: Uuid,
) -> Result<(), ApiError> {
    let found = sqlx::query_scalar!(
        r#"SELECT 1 AS "one!" FROM companies WHERE id = $1 FOR KEY SHARE"#,
        id
    )
    .fetch_optional(executor)
    .await?;
    match found {
        Some(_) => Ok(()),
        None => Err(ApiError::not_found(
            ErrorCode::CompanyNotFound,
            format!("There is no company {id}."),
        )),
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LinkedRoomList {
    /// The rooms linked to the company, by name, each with `linkedAt`. The room list is
    /// admins' alone, so for anyone else a room's description, last error and message
    /// limitation are null and `companyIds` names only this company.
    pub items: Vec<Room>,
}

/// The rooms linked to a company.
#[utoipa::path(
    get, path = "/api/companies/{id}/chatwork-rooms", operation_id = "listCompanyRooms", tag = "companies",
    params(CompanyPath),
    responses(
        (status = 200, description = "The linked rooms", body = LinkedRoomList),
        (status = 400, description = "The id is not a UUID", body = ErrorBody),
        (status = 401, description = "No identity", body = ErrorBody),
        (status = 403, description = "No role", body = ErrorBody),
        (status = 404, description = "No such company", body = ErrorBody),
    )
)]
pub(crate) async fn rooms(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(path): ApiPath<CompanyPath>,
) -> Result<Json<LinkedRoomList>, ApiError> {
    require_company(&state.pool, path.id).await?;
    let mut items = rooms_where(
        &state.pool,
        RoomFilter {
            company_id: Some(path.id),
            ..RoomFilter::default()
        },
    )
    .await?;
    if !caller.is_admin() {
        for room in &mut items {
            room.hide_admin_detail(path.id);
        }
    }
    Ok(Json(LinkedRoomList { items }))
}

/// The room to link: exactly one of Chatwork's id and ours.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewLink {
    /// Chatwork's id of the room.
    #[serde(default)]
    pub room_id: Option<ChatworkRoomId>,
    /// Our id of the room.
    #[serde(default)]
    pub chatwork_room_id: Option<Uuid>,
}

// Written out: "exactly one of two nullable fields" is a `oneOf` that the derive cannot
// state.
impl utoipa::PartialSchema for NewLink {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        serde_json::from_value(json!({
            "description": "The room to link: exactly one of Chatwork's id (`roomId`) and ours (`chatworkRoomId`); the other left out or null.",
            "allOf": [
                {
                    "type": "object",
                    "additionalProperties": false,
                    "properties": {
                        "roomId": {
                            "type": ["integer", "null"], "format": "int64",
                            "minimum": 1, "maximum": i64::MAX,
                            "description": "Chatwork's id of the room."
                        },
                        "chatworkRoomId": {
                            "type": ["string", "null"], "format": "uuid",
                            "description": "Our id of the room."
                        }
                    }
                },
                {
                    "oneOf": [
                        {"type": "object", "required": ["roomId"], "properties": {"roomId": {"type": "integer"}}},
                        {"type": "object", "required": ["chatworkRoomId"], "properties": {"chatworkRoomId": {"type": "string"}}}
                    ]
                }
            ]
        }))
        .expect("the schema of NewLink is a schema")
    }
}

impl utoipa::ToSchema for NewLink {
    fn name() -> std::borrow::Cow<'static, str> {
        "NewLink".into()
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Link {
    pub company_id: Uuid,
    /// Our id of the room.
    pub chatwork_room_id: Uuid,
    /// Chatwork's id of the room.
    pub room_id: i64,
    pub linked_at: DateTime<Utc>,
    /// Stored messages of the room that had no company and now have this one.
    pub backfilled_messages: u64,
}

/// Links a room to a company and assigns the company to the room's stored messages that
/// have none.
#[utoipa::path(
    post, path = "/api/companies/{id}/chatwork-rooms", operation_id = "linkCompanyRoom", tag = "companies",
    params(CompanyPath),
    request_body = NewLink,
    responses(
        (status = 201, description = "The new link", body = Link),
        (status = 400, description = "Malformed id or JSON", body = ErrorBody),
        (status = 401, description = "No identity", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 404, description = "No such company or room", body = ErrorBody),
        (status = 409, description = "Already linked", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 422, description = "Not exactly one of roomId and chatworkRoomId, or a field is invalid", body = ErrorBody),
    )
)]
pub(crate) async fn link(
    State(state): State<AppState>,
    Admin(caller): Admin,
    request_id: RequestId,
    ApiPath(path): ApiPath<CompanyPath>,
    ApiJson(new): ApiJson<NewLink>,
) -> Result<(StatusCode, Json<Link>), ApiError> {
    let room_ref = match (new.room_id, new.chatwork_room_id) {
        (Some(id), None) => RoomRef::Chatwork(id),
        (None, Some(id)) => RoomRef::Ours(id),
        _ => {
            return Err(ApiError::invalid_field(
                "roomId",
                "Give exactly one of roomId (Chatwork's id) and chatworkRoomId (ours).",
            ));
        }
    };
    let mut tx = state.pool.begin().await?;
    require_company(&mut *tx, path.id).await?;
    let room = resolve_room(&mut *tx, room_ref).await?;
    let link = link_room(&mut tx, path.id, room).await?.ok_or_else(|| {
        ApiError::new(
            StatusCode::CONFLICT,
            ErrorCode::AlreadyLinked,
            format!(
                "Room {} is already linked to company {}.",
                room.room_id, path.id
            ),
        )
    })?;
    audit::record(
        &mut *tx,
        AuditEntry {
            caller: &caller,
            request_id: &request_id,
            action: "company_room.link",
            resource_type: "company_room_link",
            resource_id: format!("{}:{}", path.id, room.id),
            old_values: None,
            new_values: Some(serde_json::to_value(&link).expect("a link serializes")),
        },
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(link)))
}

/// Links `room` to `company` and gives the company to the room's stored messages that
/// have none, in the caller's transaction; `None` when they were linked already (nothing
/// changes). The link route and an accepted suggestion link the same way.
pub(crate) async fn link_room(
    tx: &mut PgConnection,
    company: Uuid,
    room: RoomIds,
) -> Result<Option<Link>, sqlx::Error> {
    let Some(linked_at) = sqlx::query_scalar!(
        r#"INSERT INTO company_room_links (company_id, chatwork_room_id) VALUES ($1, $2)
           ON CONFLICT DO NOTHING
           RETURNING created_at"#,
        company,
        room.id,
    )
    .fetch_optional(&mut *tx)
    .await?
    else {
        return Ok(None);
    };
    let backfilled = sqlx::query!(
        "UPDATE messages SET company_id = $1 WHERE chatwork_room_id = $2 AND company_id IS NULL",
        company,
        room.id,
    )
    .execute(&mut *tx)
    .await?
    .rows_affected();
    Ok(Some(Link {
        company_id: company,
        chatwork_room_id: room.id,
        room_id: room.room_id,
        linked_at,
        backfilled_messages: backfilled,
    }))
}

/// Unlinks a room from a company. The room's stored messages keep their company.
#[utoipa::path(
    delete, path = "/api/companies/{id}/chatwork-rooms/{roomId}", operation_id = "unlinkCompanyRoom", tag = "companies",
    params(CompanyRoomPath),
    responses(
        (status = 204, description = "Unlinked"),
        (status = 400, description = "Malformed id", body = ErrorBody),
        (status = 401, description = "No identity", body = ErrorBody),
        (status = 403, description = "Neither writer nor admin", body = ErrorBody),
        (status = 404, description = "No such company, room or link", body = ErrorBody),
    )
)]
pub(crate) async fn unlink(
    State(state): State<AppState>,
    Writer(caller): Writer,
    request_id: RequestId,
    ApiPath(path): ApiPath<CompanyRoomPath>,
) -> Result<StatusCode, ApiError> {
    let mut tx = state.pool.begin().await?;
    require_company(&mut *tx, path.id).await?;
    let room = resolve_room(&mut *tx, path.room_id).await?;
    let linked_at = sqlx::query_scalar!(
        r#"DELETE FROM company_room_links WHERE company_id = $1 AND chatwork_room_id = $2
           RETURNING created_at"#,
        path.id,
        room.id,
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| {
        ApiError::not_found(
            ErrorCode::LinkNotFound,
            format!(
                "Room {} is not linked to company {}.",
                path.room_id, path.id
            ),
        )
    })?;
    audit::record(
        &mut *tx,
        AuditEntry {
            caller: &caller,
            request_id: &request_id,
            action: "company_room.unlink",
            resource_type: "company_room_link",
            resource_id: format!("{}:{}", path.id, room.id),
            old_values: Some(json!({
                "companyId": path.id,
                "chatworkRoomId": room.id,
                "roomId": room.room_id,
                "linkedAt": linked_at,
            })),
            new_values: None,
        },
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
