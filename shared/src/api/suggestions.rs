//! `/api/companies/suggestions`: companies a room's members suggest (their organization
//! matches a company's name), for an admin to accept (which links the room as the link
//! route does) or dismiss. A room is never linked without an admin's word.
//!
//! Deciding is idempotent: accepting an accepted suggestion (or dismissing a dismissed
//! one) answers it as it stands and changes nothing; deciding it the other way is 409
//! `suggestion_decided`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::PgExecutor;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::audit::{self, AuditEntry};
use super::auth::{Admin, Caller};
use super::companies::{CompanyRoomPath, Link, link_room, require_company};
use super::error::ErrorBody;
use super::extract::{ApiPath, ApiQuery, RequestId};
use super::rooms::{RoomIds, resolve_room};
use super::{ApiError, AppState, ErrorCode, Limit};

/// A company a room's members suggest.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Suggestion {
    /// Our id of the room.
    pub chatwork_room_id: Uuid,
    /// Chatwork's id of the room.
    pub room_id: i64,
    pub room_name: String,
    pub company_id: Uuid,
    pub company_name: String,
    /// The members' organization name that matched the company's.
    pub organization_name: String,
    /// Members of that organization in the room when it was suggested.
    pub members: i32,
    /// `open`, `accepted` or `dismissed`.
    pub status: String,
    /// Who decided it (a JWT `sub`) and when; null while open.
    pub decided_by: Option<String>,
    pub decided_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SuggestionList {
    /// Oldest first.
    pub items: Vec<Suggestion>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct SuggestionQuery {
    /// How many, 1 to 100 (default 100): the oldest open ones, so that deciding them
    /// brings the next.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    limit: Option<Limit>,
}

/// A decision on a suggestion, and the link it stands for.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SuggestionDecision {
    pub suggestion: Suggestion,
    /// An accepted suggestion's link, when this request made it (with the messages it
    /// gave the company); null when the room was linked already, on a repeated accept,
    /// and for a dismissal.
    pub link: Option<Link>,
}

/// The open suggestions, oldest first.
#[utoipa::path(
    get, path = "/api/companies/suggestions", operation_id = "listCompanySuggestions", tag = "companies",
    params(SuggestionQuery),
    responses(
        (status = 200, description = "The open suggestions", body = SuggestionList),
        (status = 400, description = "A query parameter is unknown or invalid", body = ErrorBody),
        (status = 401, description = "No identity", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
    )
)]
pub(crate) async fn list(
    State(state): State<AppState>,
    _admin: Admin,
    ApiQuery(query): ApiQuery<SuggestionQuery>,
) -> Result<Json<SuggestionList>, ApiError> {
    let limit = query.limit.map_or(i64::from(Limit::MAX), Limit::get);
    let items = sqlx::query_as!(
        Suggestion,
        r#"SELECT s.chatwork_room_id, r.room_id, r.name AS room_name, s.company_id,
                  c.name AS company_name, s.organization_name, s.members, s.status,
                  s.decided_by, s.decided_at, s.created_at
             FROM company_room_suggestions s
             JOIN chatwork_rooms r ON r.id = s.chatwork_room_id
             JOIN companies c ON c.id = s.company_id
            WHERE s.status = 'open'
            ORDER BY s.created_at, s.chatwork_room_id, s.company_id
            LIMIT $1"#,
        limit,
    )
    .fetch_all(&state.pool)
    .await?;
    Ok(Json(SuggestionList { items }))
}

async fn suggestion(
    executor: impl PgExecutor<'_>,
    company: Uuid,
    room: RoomIds,
) -> Result<Suggestion, sqlx::Error> {
    sqlx::query_as!(
        Suggestion,
        r#"SELECT s.chatwork_room_id, r.room_id, r.name AS room_name, s.company_id,
                  c.name AS company_name, s.organization_name, s.members, s.status,
                  s.decided_by, s.decided_at, s.created_at
             FROM company_room_suggestions s
             JOIN chatwork_rooms r ON r.id = s.chatwork_room_id
             JOIN companies c ON c.id = s.company_id
            WHERE s.chatwork_room_id = $1 AND s.company_id = $2"#,
        room.id,
        company,
    )
    .fetch_one(executor)
    .await
}

/// Accepts or dismisses the suggestion of `path`, in one transaction with its audit row
/// (and, for an accept, the link and its own audit row).
async fn decide(
    state: &AppState,
    caller: &Caller,
    request_id: &RequestId,
    path: &CompanyRoomPath,
    accept: bool,
) -> Result<SuggestionDecision, ApiError> {
    let (wanted, other) = if accept {
        ("accepted", "dismissed")
    } else {
        ("dismissed", "accepted")
    };
    let mut tx = state.pool.begin().await?;
    require_company(&mut *tx, path.id).await?;
    let room = resolve_room(&mut *tx, path.room_id).await?;
    let status = sqlx::query_scalar!(
        "SELECT status FROM company_room_suggestions
          WHERE chatwork_room_id = $1 AND company_id = $2 FOR UPDATE",
        room.id,
        path.id,
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| {
        ApiError::not_found(
            ErrorCode::SuggestionNotFound,
            format!(
                "No suggestion links room {} to company {}.",
                path.room_id, path.id
            ),
        )
    })?;
    if status == wanted {
        let suggestion = suggestion(&mut *tx, path.id, room).await?;
        return Ok(SuggestionDecision {
            suggestion,
            link: None,
        });
    }
    if status == other {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            ErrorCode::SuggestionDecided,
            format!(
                "The suggestion of room {} for company {} was {other} already.",
                path.room_id, path.id
            ),
        ));
    }
    sqlx::query!(
        "UPDATE company_room_suggestions
            SET status = $3, decided_by = $4, decided_at = now()
          WHERE chatwork_room_id = $1 AND company_id = $2",
        room.id,
        path.id,
        wanted,
        caller.user_id,
    )
    .execute(&mut *tx)
    .await?;
    let link = if accept {
        link_room(&mut tx, path.id, room).await?
    } else {
        None
    };
    let suggestion = suggestion(&mut *tx, path.id, room).await?;
    let resource_id = format!("{}:{}", path.id, room.id);
    audit::record(
        &mut *tx,
        AuditEntry {
            caller,
            request_id,
            action: if accept {
                "company_room_suggestion.accept"
            } else {
                "company_room_suggestion.dismiss"
            },
            resource_type: "company_room_suggestion",
            resource_id: resource_id.clone(),
            old_values: Some(json!({"status": "open"})),
            new_values: Some(json!({
                "status": wanted,
                "organizationName": suggestion.organization_name,
                "roomId": room.room_id,
            })),
        },
    )
    .await?;
    if let Some(link) = &link {
        audit::record(
            &mut *tx,
            AuditEntry {
                caller,
                request_id,
                action: "company_room.link",
                resource_type: "company_room_link",
                resource_id,
                old_values: None,
                new_values: Some(serde_json::to_value(link).expect("a link serializes")),
            },
        )
        .await?;
    }
    tx.commit().await?;
    Ok(SuggestionDecision { suggestion, link })
}

/// Accepts a suggestion: links the room to the company as the link route does (the
/// room's stored messages without a company get this one).
#[utoipa::path(
    post, path = "/api/companies/{id}/suggestions/{roomId}/accept", operation_id = "acceptCompanySuggestion", tag = "companies",
    params(CompanyRoomPath),
    responses(
        (status = 200, description = "The suggestion, accepted, and the link this request made", body = SuggestionDecision),
        (status = 400, description = "Malformed id", body = ErrorBody),
        (status = 401, description = "No identity", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 404, description = "No such company, room or suggestion", body = ErrorBody),
        (status = 409, description = "The suggestion was dismissed (`suggestion_decided`)", body = ErrorBody),
    )
)]
pub(crate) async fn accept(
    State(state): State<AppState>,
    Admin(caller): Admin,
    request_id: RequestId,
    ApiPath(path): ApiPath<CompanyRoomPath>,
) -> Result<Json<SuggestionDecision>, ApiError> {
    decide(&state, &caller, &request_id, &path, true)
        .await
        .map(Json)
}

/// Dismisses a suggestion: the room stays as it is, and the same suggestion is not made
/// again.
#[utoipa::path(
    post, path = "/api/companies/{id}/suggestions/{roomId}/dismiss", operation_id = "dismissCompanySuggestion", tag = "companies",
    params(CompanyRoomPath),
    responses(
        (status = 200, description = "The suggestion, dismissed", body = SuggestionDecision),
        (status = 400, description = "Malformed id", body = ErrorBody),
        (status = 401, description = "No identity", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 404, description = "No such company, room or suggestion", body = ErrorBody),
        (status = 409, description = "The suggestion was accepted (`suggestion_decided`)", body = ErrorBody),
    )
)]
pub(crate) async fn dismiss(
    State(state): State<AppState>,
    Admin(caller): Admin,
    request_id: RequestId,
    ApiPath(path): ApiPath<CompanyRoomPath>,
) -> Result<Json<SuggestionDecision>, ApiError> {
    decide(&state, &caller, &request_id, &path, false)
        .await
        .map(Json)
}
