//! `/api/companies/{id}/summaries`: request a summary draft of a period (a job) and list
//! a company's drafts.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::auth::{Caller, Writer};
use super::companies::{CompanyPath, require_company};
use super::error::ErrorBody;
use super::extract::{ApiJson, ApiPath, ApiQuery, RequestId};
use super::jobs::{self, JobView};
use super::time::ApiTime;
use super::{ApiError, AppState, Limit};
use crate::summary::{SummaryDraft, SummaryDraftPayload};

/// The longest period one draft may cover.
pub const MAX_PERIOD_DAYS: i64 = 366;

/// The period to summarize: RFC 3339 times in the years 1970 to 9999, compared at
/// microsecond precision (finer digits are cut), `periodStart` before `periodEnd`, at
/// most 366 days apart.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DraftRequest {
    #[schema(value_type = String, format = DateTime, pattern = "^(19[7-9][0-9]|[2-9][0-9]{3})-", example = "2025-01-01T00:00:00Z")]
    pub period_start: ApiTime,
    #[schema(value_type = String, format = DateTime, pattern = "^(19[7-9][0-9]|[2-9][0-9]{3})-", example = "2025-02-01T00:00:00Z")]
    pub period_end: ApiTime,
}

/// Starts a summary draft of what was said with the company over the period.
#[utoipa::path(
    post, path = "/api/companies/{id}/summaries/draft", operation_id = "requestSummaryDraft", tag = "summaries",
    params(CompanyPath),
    request_body = DraftRequest,
    responses(
        (status = 202, description = "A new summary draft job", body = JobView),
        (status = 200, description = "The draft of this company and period already queued or running, the caller's (or any, for an admin)", body = JobView),
        (status = 400, description = "Malformed id or JSON", body = ErrorBody),
        (status = 401, description = "No identity", body = ErrorBody),
        (status = 403, description = "Neither writer nor admin", body = ErrorBody),
        (status = 404, description = "No such company", body = ErrorBody),
        (status = 409, description = "The draft of this company and period is already queued or running for another user (`job_already_active`)", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 422, description = "A field is missing, unknown or invalid, or the period is empty or too long", body = ErrorBody),
    )
)]
pub(crate) async fn draft(
    State(state): State<AppState>,
    Writer(caller): Writer,
    request_id: RequestId,
    ApiPath(path): ApiPath<CompanyPath>,
    ApiJson(request): ApiJson<DraftRequest>,
) -> Result<(StatusCode, Json<JobView>), ApiError> {
    if request.period_end <= request.period_start {
        return Err(ApiError::invalid_field(
            "periodEnd",
            "periodEnd must be after periodStart.",
        ));
    }
    if request.period_end.get() - request.period_start.get() > TimeDelta::days(MAX_PERIOD_DAYS) {
        return Err(ApiError::invalid_field(
            "periodEnd",
            format!("A draft covers at most {MAX_PERIOD_DAYS} days."),
        ));
    }
    require_company(&state.pool, path.id).await?;
    let payload = SummaryDraftPayload {
        company_id: path.id,
        period_start: request.period_start.get(),
        period_end: request.period_end.get(),
    };
    jobs::start::<SummaryDraft>(&state, &caller, &request_id, &payload).await
}

/// A stored summary draft.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Draft {
    pub id: Uuid,
    pub company_id: Uuid,
    /// The job that wrote it.
    pub job_id: Option<Uuid>,
    pub period_start: DateTime<Utc>,
    pub period_end: DateTime<Utc>,
    pub content: String,
    /// Links to the Chatwork messages the draft's points come from.
    #[schema(value_type = Vec<Object>)]
    pub source_links: serde_json::Value,
    /// `extractive` for the built-in summarizer, else the model's name.
    pub model: String,
    #[schema(value_type = Option<Object>)]
    pub token_usage: Option<serde_json::Value>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DraftList {
    /// Newest first.
    pub items: Vec<Draft>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct DraftQuery {
    /// How many drafts, 1 to 100 (default 20).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    limit: Option<Limit>,
}

/// A company's summary drafts, newest first.
#[utoipa::path(
    get, path = "/api/companies/{id}/summaries", operation_id = "listSummaryDrafts", tag = "summaries",
    params(CompanyPath, DraftQuery),
    responses(
        (status = 200, description = "The drafts", body = DraftList),
        (status = 400, description = "Malformed id or limit", body = ErrorBody),
        (status = 401, description = "No identity", body = ErrorBody),
        (status = 403, description = "No role", body = ErrorBody),
        (status = 404, description = "No such company", body = ErrorBody),
    )
)]
pub(crate) async fn list(
    State(state): State<AppState>,
    _caller: Caller,
    ApiPath(path): ApiPath<CompanyPath>,
    ApiQuery(query): ApiQuery<DraftQuery>,
) -> Result<Json<DraftList>, ApiError> {
    require_company(&state.pool, path.id).await?;
    let items = sqlx::query_as!(
        Draft,
        r#"SELECT id, company_id, job_id, period_start, period_end, content, source_links,
                  model, token_usage, created_at
             FROM summary_drafts
            WHERE company_id = $1
            ORDER BY created_at DESC, id DESC
            LIMIT $2"#,
        path.id,
        query.limit.unwrap_or(Limit::DEFAULT).get(),
    )
    .fetch_all(&state.pool)
    .await?;
    Ok(Json(DraftList { items }))
}
