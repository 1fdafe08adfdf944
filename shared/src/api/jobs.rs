//! `/api/jobs`: list (paged), read, cancel and retry jobs, and the job JSON every job route
//! answers with.
//!
//! A job that is not the caller's (and the caller is no admin) answers 404, exactly as a
//! job that does not exist, so its existence is not revealed.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::audit::JobAudit;
use super::auth::Caller;
use super::cursor::{TimeUuidCursor, page};
use super::error::ErrorBody;
use super::extract::{ApiPath, ApiQuery, RequestId};
use super::{ApiError, AppState, ErrorCode, Limit};
use crate::jobs::{
    self, CancelOutcome, ErrorInfo, Job, JobFilter, JobKind, JobStatus, JobType, Progress,
    RetryPlan,
};

/// A job as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobView {
    pub id: Uuid,
    #[serde(rename = "type")]
    #[schema(schema_with = job_type_schema)]
    pub job_type: JobType,
    pub status: JobStatus,
    /// What the job was asked to do (`{scope: "room", roomId}`, `{scope: "all"}`,
    /// `{companyId, periodStart, periodEnd}`, ...).
    #[schema(value_type = Object)]
    pub payload: Value,
    /// Derived from the job's items; its shape is its type's. In answers about one job,
    /// an open job's result so far; in lists, `null` until the job ends.
    #[schema(schema_with = result_schema)]
    pub result: Option<Value>,
    /// `{name, message}`; admins also see `stack` when there is one.
    pub error: Option<ErrorInfo>,
    /// The JWT `sub` of whoever started the job; null for scheduled jobs.
    pub user_id: Option<String>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Units of work (rooms of a messages sync, which grows as its room check plans them;
    /// 1 for the other types).
    pub total_items: i32,
    /// Units not finished yet.
    pub open_items: i32,
    /// Counted from the job's items; in answers about one job, not in lists.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub progress: Option<Progress>,
}

impl JobView {
    /// `job` as `caller` may see it.
    pub fn new(job: Job, caller: &Caller, progress: Option<Progress>) -> Self {
        let error = if caller.is_admin() {
            job.error
        } else {
            job.error.as_ref().map(ErrorInfo::public)
        };
        Self {
            id: job.id,
            job_type: job.job_type,
            status: job.status,
            payload: job.payload,
            result: job.result,
            error,
            user_id: job.user_id,
            started_at: job.started_at,
            finished_at: job.finished_at,
            created_at: job.created_at,
            updated_at: job.updated_at,
            total_items: job.total_items,
            open_items: job.open_items,
            progress,
        }
    }

    /// `job` with its progress, for answers about one job. A job still open shows the
    /// result its items make so far, so that whoever polls the one job they started
    /// sees its rooms, errors and gaps as they come.
    pub(crate) async fn with_progress(
        state: &AppState,
        mut job: Job,
        caller: &Caller,
    ) -> Result<Self, ApiError> {
        let progress = jobs::progress(&state.pool, job.id).await?;
        if !job.status.is_terminal() {
            let items = jobs::items(&state.pool, job.id).await?;
            if let Some(result) = state.registry.summarize(job.job_type, &items) {
                job.result = Some(result);
            }
        }
        Ok(Self::new(job, caller, Some(progress)))
    }
}

/// `type` is one of the registered job types.
fn job_type_schema() -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .description(Some("A job type."))
        .enum_values(Some(
            crate::job_types::names().into_iter().map(|t| t.as_str()),
        ))
        .build()
}

/// `result`: one of the job types' results, or `null`.
fn result_schema() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
    crate::job_types::result_schema()
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobList {
    /// Newest first.
    pub items: Vec<JobView>,
    /// Pass as `cursor` for the next (older) page; null on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct JobListQuery {
    /// Only jobs of this type.
    #[serde(rename = "type")]
    #[param(rename = "type", schema_with = job_type_schema)]
    job_type: Option<String>,
    /// Only jobs in this status.
    #[param(inline)]
    status: Option<JobStatus>,
    /// Only jobs started by this user (a JWT `sub`), or by the schedule (`schedule`).
    /// A non-admin sees only their own jobs whatever this says.
    #[serde(rename = "startedBy")]
    #[param(rename = "startedBy", max_length = 200)]
    started_by: Option<String>,
    /// `nextCursor` of the previous page.
    #[param(value_type = Option<String>)]
    cursor: Option<TimeUuidCursor>,
    /// How many jobs, 1 to 100 (default 20).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    limit: Option<Limit>,
}

/// `startedBy`'s documented `maxLength`.
const MAX_STARTED_BY_CHARS: usize = 200;

/// `startedBy`'s value for the jobs nobody started.
const SCHEDULE: &str = "schedule";

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Path)]
pub(crate) struct JobPath {
    /// The job's id.
    id: Uuid,
}

/// Jobs, newest first, a page at a time; a non-admin sees only the jobs they started.
#[utoipa::path(
    get, path = "/api/jobs", operation_id = "listJobs", tag = "jobs",
    params(JobListQuery),
    responses(
        (status = 200, description = "A page of jobs, newest first", body = JobList),
        (status = 400, description = "A query parameter is unknown or invalid", body = ErrorBody),
        (status = 401, description = "No identity", body = ErrorBody),
        (status = 403, description = "No role", body = ErrorBody),
    )
)]
pub(crate) async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<JobListQuery>,
) -> Result<Json<JobList>, ApiError> {
    let job_type = match query.job_type.as_deref() {
        None => None,
        Some(name) => {
            let known = state.registry.job_types();
            let found = known.iter().copied().find(|t| t.as_str() == name);
            Some(found.ok_or_else(|| {
                let names: Vec<&str> = known.iter().map(|t| t.as_str()).collect();
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    ErrorCode::InvalidParameter,
                    format!(
                        "type: unknown job type; expected one of {}",
                        names.join(", ")
                    ),
                )
                .with_field("type")
            })?)
        }
    };
    let started_by = query.started_by.as_deref().map(str::trim);
    if started_by.is_some_and(|s| s.chars().count() > MAX_STARTED_BY_CHARS) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidParameter,
            format!("startedBy: must be at most {MAX_STARTED_BY_CHARS} characters"),
        )
        .with_field("startedBy"));
    }
    let (user_id, scheduled) = match started_by {
        Some(SCHEDULE) => (None, true),
        Some(user) if !user.is_empty() => (Some(user.to_owned()), false),
        _ => (None, false),
    };
    let user_id = if caller.is_admin() {
        user_id
    } else if scheduled || user_id.as_ref().is_some_and(|u| *u != caller.user_id) {
        // Asked for others' jobs, which a non-admin does not see: there are none.
        return Ok(Json(JobList {
            items: Vec::new(),
            next_cursor: None,
        }));
    } else {
        Some(caller.user_id.clone())
    };
    let limit = query.limit.unwrap_or(Limit::DEFAULT).get();
    let filter = JobFilter {
        job_type,
        status: query.status,
        user_id,
        scheduled,
        before: query.cursor.map(|c| (c.at, c.id)),
        limit: limit + 1,
    };
    let found = jobs::list(&state.pool, &filter).await?;
    let (found, next_cursor) = page(found, limit, |job| {
        TimeUuidCursor {
            at: job.created_at,
            id: job.id,
        }
        .encode()
    });
    let items = found
        .into_iter()
        .map(|job| JobView::new(job, &caller, None))
        .collect();
    Ok(Json(JobList { items, next_cursor }))
}

/// A job the caller may see, or 404.
async fn visible_job(state: &AppState, caller: &Caller, id: Uuid) -> Result<Job, ApiError> {
    match jobs::get(&state.pool, id).await? {
        Some(job) if caller.may_see_job_of(job.user_id.as_deref()) => Ok(job),
        _ => Err(job_not_found()),
    }
}

/// The same work is queued or running for someone else.
pub(crate) fn already_active() -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        ErrorCode::JobAlreadyActive,
        "The same work is already queued or running for another user; its result will be \
         there when it finishes.",
    )
}

fn job_not_found() -> ApiError {
    ApiError::not_found(ErrorCode::JobNotFound, "There is no such job.")
}

/// One job with its progress (its starter or an admin).
#[utoipa::path(
    get, path = "/api/jobs/{id}", operation_id = "getJob", tag = "jobs",
    params(JobPath),
    responses(
        (status = 200, description = "The job", body = JobView),
        (status = 400, description = "The id is not a UUID", body = ErrorBody),
        (status = 401, description = "No identity", body = ErrorBody),
        (status = 403, description = "No role", body = ErrorBody),
        (status = 404, description = "No such job, or not the caller's", body = ErrorBody),
    )
)]
pub(crate) async fn get(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(path): ApiPath<JobPath>,
) -> Result<Json<JobView>, ApiError> {
    let job = visible_job(&state, &caller, path.id).await?;
    Ok(Json(JobView::with_progress(&state, job, &caller).await?))
}

/// Cancels a queued or processing job (its starter or an admin). Items not started are
/// canceled; items in progress stop at their next cancellation check.
#[utoipa::path(
    post, path = "/api/jobs/{id}/cancel", operation_id = "cancelJob", tag = "jobs",
    params(JobPath),
    responses(
        (status = 200, description = "The canceled job", body = JobView),
        (status = 400, description = "The id is not a UUID", body = ErrorBody),
        (status = 401, description = "No identity", body = ErrorBody),
        (status = 403, description = "No role", body = ErrorBody),
        (status = 404, description = "No such job, or not the caller's", body = ErrorBody),
        (status = 409, description = "The job is neither queued nor processing", body = ErrorBody),
    )
)]
pub(crate) async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    request_id: RequestId,
    ApiPath(path): ApiPath<JobPath>,
) -> Result<Json<JobView>, ApiError> {
    let before = visible_job(&state, &caller, path.id).await?;
    let audit = JobAudit {
        caller: &caller,
        request_id: &request_id,
        action: "job.cancel".into(),
        old_values: Some(json!({"status": before.status})),
        new_values: |job| json!({"status": job.status}),
    };
    match jobs::cancel_recorded(&state.pool, &state.registry, path.id, Some(&audit)).await? {
        CancelOutcome::Canceled(job) => {
            Ok(Json(JobView::with_progress(&state, *job, &caller).await?))
        }
        CancelOutcome::NotFound => Err(job_not_found()),
        CancelOutcome::NotCancelable(status) => Err(ApiError::new(
            StatusCode::CONFLICT,
            ErrorCode::NotCancelable,
            format!(
                "The job is {}; only queued or processing jobs can be canceled.",
                status.as_str()
            ),
        )),
    }
}

/// Starts a job of the same type over the failed items of a finished job (its starter
/// or an admin): a messages sync's failed rooms, or a whole job whose only item failed.
/// The new job is the caller's; starting it is audited in its own transaction.
#[utoipa::path(
    post, path = "/api/jobs/{id}/retry", operation_id = "retryJob", tag = "jobs",
    params(JobPath),
    responses(
        (status = 202, description = "A new job over the failed items", body = JobView),
        (status = 200, description = "The job over the same items already queued or running", body = JobView),
        (status = 400, description = "The id is not a UUID", body = ErrorBody),
        (status = 401, description = "No identity", body = ErrorBody),
        (status = 403, description = "No role", body = ErrorBody),
        (status = 404, description = "No such job, or not the caller's", body = ErrorBody),
        (status = 409, description = "The job is still queued or processing (`job_still_open`), no item failed (`nothing_failed`), its type cannot retry only some items (`not_retryable`), or the same work is active for another user (`job_already_active`, naming no job)", body = ErrorBody),
    )
)]
pub(crate) async fn retry(
    State(state): State<AppState>,
    caller: Caller,
    request_id: RequestId,
    ApiPath(path): ApiPath<JobPath>,
) -> Result<(StatusCode, Json<JobView>), ApiError> {
    let job = visible_job(&state, &caller, path.id).await?;
    if !job.status.is_terminal() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            ErrorCode::JobStillOpen,
            format!(
                "The job is {}; only a finished job's failed items can be retried.",
                job.status.as_str()
            ),
        ));
    }
    let Some(registered) = state.registry.get(job.job_type) else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            ErrorCode::NotRetryable,
            format!("This API does not run {} jobs.", job.job_type),
        ));
    };
    let items = jobs::items(&state.pool, job.id).await?;
    let (payload, failed) = match registered.retry_plan(&job.payload, &items) {
        RetryPlan::Start { payload, failed } => (payload, failed),
        RetryPlan::NothingFailed => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                ErrorCode::NothingFailed,
                "No item of this job failed; there is nothing to retry.",
            ));
        }
        RetryPlan::NotSupported => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                ErrorCode::NotRetryable,
                format!(
                    "A {} cannot be retried over only some of its items.",
                    registered.label()
                ),
            ));
        }
    };
    let audit = JobAudit {
        caller: &caller,
        request_id: &request_id,
        action: "job.retry".into(),
        old_values: Some(json!({"retryOf": job.id, "failedItems": failed})),
        new_values: |job| {
            json!({
                "type": job.job_type,
                "status": job.status,
                "payload": job.payload,
            })
        },
    };
    let started = registered
        .start(
            &state.pool,
            state.queues.as_ref(),
            &payload,
            Some(&caller.user_id),
            Some(&audit),
        )
        .await
        .map_err(|e| ApiError::unexpected("could not start a retry", e))?;
    started_answer(&state, &caller, started).await
}

/// Starts a job of kind `K` for `caller`: 202 with the new job, or 200 with the job of
/// the same kind that is already queued or processing when the caller may see it (theirs,
/// or any for an admin); 409 `job_already_active` naming no job when it is another
/// user's, so that neither its id nor its owner leaks. Starting one is audited in the
/// transaction that writes the job (a request answered with the active job changed
/// nothing, so it is not).
pub(crate) async fn start<K: JobKind>(
    state: &AppState,
    caller: &Caller,
    request_id: &RequestId,
    payload: &K::Payload,
) -> Result<(StatusCode, Json<JobView>), ApiError> {
    let audit = JobAudit {
        caller,
        request_id,
        action: format!("{}.start", K::TYPE.as_str()),
        old_values: None,
        new_values: |job| {
            json!({
                "type": job.job_type,
                "status": job.status,
                "payload": job.payload,
            })
        },
    };
    let started = jobs::start_recorded::<K>(
        &state.pool,
        state.queues.as_ref(),
        payload,
        Some(&caller.user_id),
        Some(&audit),
    )
    .await
    .map_err(|e| ApiError::unexpected("could not start a job", e))?;
    started_answer(state, caller, started).await
}

/// The answer of every route that starts a job: 202 with the new job; or, when the same
/// work was already active, 200 with that job if the caller may see it
/// ([`Caller::may_see_job_of`], the rule of every job answer), else 409 naming no job.
async fn started_answer(
    state: &AppState,
    caller: &Caller,
    started: jobs::Started,
) -> Result<(StatusCode, Json<JobView>), ApiError> {
    let status = if started.created {
        StatusCode::ACCEPTED
    } else if caller.may_see_job_of(started.job.user_id.as_deref()) {
        StatusCode::OK
    } else {
        return Err(already_active());
    };
    let view = JobView::with_progress(state, started.job, caller).await?;
    Ok((status, Json(view)))
}
