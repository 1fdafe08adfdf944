//! `/api/schedules`: the scheduled tasks for admins: each task's cadence, pause, last run
//! and next start; a task's runs, newest first; run a task now (never in the request: a
//! `requested` run the scheduler takes within a minute); pause and resume (audited).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};

use super::audit::{self, AuditEntry};
use super::auth::Admin;
use super::cursor::{TimeUuidCursor, page};
use super::error::ErrorBody;
use super::extract::{ApiPath, ApiQuery, OptionalJson, RequestId};
use super::{ApiError, AppState, ErrorCode, Limit};
use crate::schedule::Task;
use crate::schedule::runs::{self, Pause, Requested, Run, TaskState};

/// The longest pause reason.
const MAX_REASON_CHARS: usize = 500;

/// One scheduled task as an operator sees it.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleView {
    #[schema(schema_with = task_schema)]
    pub task: Task,
    /// Seconds between two scheduled starts; null when the task is not on a schedule
    /// (switched off, or `migrate`, which runs after a deploy).
    pub cadence_secs: Option<u64>,
    /// Whether retention or the sweep: a run now may be a dry run.
    pub has_dry_run: bool,
    /// Null while the task runs on its schedule.
    pub paused: Option<Pause>,
    /// The run requested or running now, if any (at most one: runs never overlap).
    pub open_run: Option<Run>,
    /// The last run that ended.
    pub last_run: Option<Run>,
    /// When the schedule should start it next (its last start plus its cadence); null
    /// when it is not on a schedule or was never started.
    pub next_due_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleList {
    /// Every task, in a fixed order.
    pub items: Vec<ScheduleView>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunList {
    /// Newest first.
    pub items: Vec<Run>,
    /// Pass as `cursor` for the next (older) page; null on the last page.
    pub next_cursor: Option<String>,
}

/// `task` is one of the task names.
fn task_schema() -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .description(Some("A scheduled task."))
        .enum_values(Some(Task::ALL.iter().map(|t| t.as_str())))
        .build()
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Path)]
pub(crate) struct TaskPath {
    /// The task's name.
    #[param(schema_with = task_schema)]
    task: String,
}

impl TaskPath {
    fn task(&self) -> Result<Task, ApiError> {
        Task::parse(&self.task).ok_or_else(|| {
            let names: Vec<&str> = Task::ALL.iter().map(|t| t.as_str()).collect();
            ApiError::not_found(
                ErrorCode::TaskNotFound,
                format!(
                    "There is no such scheduled task; the tasks are {}.",
                    names.join(", ")
                ),
            )
            .with_field("task")
        })
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct RunListQuery {
    /// `nextCursor` of the previous page.
    #[param(value_type = Option<String>)]
    cursor: Option<TimeUuidCursor>,
    /// How many runs, 1 to 100 (default 20).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    limit: Option<Limit>,
}

/// A run now; the body may be left out.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RunRequest {
    /// Say what the task would do and change nothing (retention and sweep only).
    #[serde(default)]
    pub dry_run: bool,
}

/// Why a task is paused; the body may be left out.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PauseRequest {
    /// Shown beside the pause: at most 500 characters, no control characters; trimmed,
    /// and a blank one is none.
    #[schema(max_length = 500, pattern = r"^[^\u0000-\u001f\u007f-\u009f]*$")]
    #[serde(default)]
    pub reason: Option<String>,
}

fn view(state: &AppState, task: TaskState) -> ScheduleView {
    let cadences = &state.cadences;
    ScheduleView {
        task: task.task,
        cadence_secs: cadences.of(task.task).map(|d| d.as_secs()),
        has_dry_run: task.task.has_dry_run(),
        next_due_at: runs::next_due(&task, cadences),
        paused: task.pause,
        open_run: task.open_run,
        last_run: task.last_run,
    }
}

async fn one(state: &AppState, task: Task) -> Result<ScheduleView, ApiError> {
    let found = runs::states(&state.pool)
        .await?
        .into_iter()
        .find(|s| s.task == task)
        .ok_or_else(|| ApiError::unexpected("a task without its row", task))?;
    Ok(view(state, found))
}

/// Every scheduled task with its cadence, pause, open and last run, and next start.
#[utoipa::path(
    get, path = "/api/schedules", operation_id = "listSchedules", tag = "schedules",
    responses(
        (status = 200, description = "Every scheduled task", body = ScheduleList),
        (status = 401, description = "No identity", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
    )
)]
pub(crate) async fn list(
    State(state): State<AppState>,
    Admin(_caller): Admin,
) -> Result<Json<ScheduleList>, ApiError> {
    let items = runs::states(&state.pool)
        .await?
        .into_iter()
        .map(|s| view(&state, s))
        .collect();
    Ok(Json(ScheduleList { items }))
}

/// A task's runs, newest first, a page at a time (kept as long as jobs).
#[utoipa::path(
    get, path = "/api/schedules/{task}/runs", operation_id = "listScheduleRuns", tag = "schedules",
    params(TaskPath, RunListQuery),
    responses(
        (status = 200, description = "A page of runs, newest first", body = RunList),
        (status = 400, description = "A query parameter is unknown or invalid", body = ErrorBody),
        (status = 401, description = "No identity", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 404, description = "No such task (`task_not_found`)", body = ErrorBody),
    )
)]
pub(crate) async fn runs(
    State(state): State<AppState>,
    Admin(_caller): Admin,
    ApiPath(path): ApiPath<TaskPath>,
    ApiQuery(query): ApiQuery<RunListQuery>,
) -> Result<Json<RunList>, ApiError> {
    let task = path.task()?;
    let limit = query.limit.unwrap_or(Limit::DEFAULT).get();
    let before = query.cursor.map(|c| (c.at, c.id));
    let found = runs::list(&state.pool, task, before, limit + 1).await?;
    let (items, next_cursor) = page(found, limit, |run| {
        TimeUuidCursor {
            at: run.requested_at,
            id: run.id,
        }
        .encode()
    });
    Ok(Json(RunList { items, next_cursor }))
}

/// Asks for a run of the task now. The run is recorded `requested` and answered at once;
/// the scheduler (its minutely tick in AWS, the local runner's timer) runs it, and the
/// task's runs show it go `running` and end. Runs of one task never overlap: while one
/// is requested or running, another is refused (`409 task_run_active`). A paused task
/// runs only a dry run (`409 task_paused`).
#[utoipa::path(
    post, path = "/api/schedules/{task}/run", operation_id = "runSchedule", tag = "schedules",
    params(TaskPath),
    request_body(content = Option<RunRequest>, description = "Optional; `{\"dryRun\": true}` for retention or the sweep"),
    responses(
        (status = 202, description = "The requested run", body = Run),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "No identity", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 404, description = "No such task (`task_not_found`)", body = ErrorBody),
        (status = 409, description = "A run of the task is requested or running (`task_run_active`), or the task is paused (`task_paused`)", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 422, description = "A field is unknown or invalid (`dryRun` for a task without a dry run)", body = ErrorBody),
    )
)]
pub(crate) async fn run(
    State(state): State<AppState>,
    Admin(caller): Admin,
    request_id: RequestId,
    ApiPath(path): ApiPath<TaskPath>,
    OptionalJson(request): OptionalJson<RunRequest>,
) -> Result<(StatusCode, Json<Run>), ApiError> {
    let task = path.task()?;
    if request.dry_run && !task.has_dry_run() {
        return Err(ApiError::invalid_field(
            "dryRun",
            format!("dryRun: {task} has no dry run (only retention and sweep do)"),
        ));
    }
    let asked = runs::request(
        &state.pool,
        task,
        &caller.user_id,
        request.dry_run,
        request_id.as_str(),
    )
    .await?;
    match asked {
        Requested::Run(run) => Ok((StatusCode::ACCEPTED, Json(run))),
        Requested::Active(open) => Err(ApiError::new(
            StatusCode::CONFLICT,
            ErrorCode::TaskRunActive,
            format!(
                "A run of {task} is already {} ({}); runs of one task never overlap.",
                if open.started_at.is_some() {
                    "running"
                } else {
                    "requested"
                },
                open.id
            ),
        )),
        Requested::Paused(pause) => Err(ApiError::new(
            StatusCode::CONFLICT,
            ErrorCode::TaskPaused,
            format!(
                "{task} is paused (since {}); resume it first{}.",
                pause.paused_at.to_rfc3339(),
                if task.has_dry_run() {
                    ", or ask for a dry run"
                } else {
                    ""
                }
            ),
        )),
    }
}

/// Pauses the task: its schedule still fires and records a `paused` run that does
/// nothing, so the task shows as paused rather than broken. Audited; pausing a paused
/// task changes nothing.
#[utoipa::path(
    post, path = "/api/schedules/{task}/pause", operation_id = "pauseSchedule", tag = "schedules",
    params(TaskPath),
    request_body(content = Option<PauseRequest>, description = "Optional; `{\"reason\": \"...\"}`"),
    responses(
        (status = 200, description = "The task, paused", body = ScheduleView),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "No identity", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 404, description = "No such task (`task_not_found`)", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 422, description = "A field is unknown or invalid", body = ErrorBody),
    )
)]
pub(crate) async fn pause(
    State(state): State<AppState>,
    Admin(caller): Admin,
    request_id: RequestId,
    ApiPath(path): ApiPath<TaskPath>,
    OptionalJson(request): OptionalJson<PauseRequest>,
) -> Result<Json<ScheduleView>, ApiError> {
    let task = path.task()?;
    if let Some(reason) = request.reason.as_deref() {
        if reason.chars().count() > MAX_REASON_CHARS {
            return Err(ApiError::invalid_field(
                "reason",
                format!("reason: at most {MAX_REASON_CHARS} characters"),
            ));
        }
        if reason.chars().any(char::is_control) {
            return Err(ApiError::invalid_field(
                "reason",
                "reason: must not contain control characters",
            ));
        }
    }
    // A blank reason is no reason.
    let reason = request
        .reason
        .as_deref()
        .map(str::trim)
        .filter(|r| !r.is_empty());
    let mut tx = state.pool.begin().await?;
    let (before, after) = runs::pause(&mut tx, task, &caller.user_id, reason).await?;
    if before.is_none() {
        audit::record(
            &mut *tx,
            AuditEntry {
                caller: &caller,
                request_id: &request_id,
                action: "schedule.pause",
                resource_type: "schedule",
                resource_id: task.as_str().to_owned(),
                old_values: Some(json!({"paused": false})),
                new_values: Some(json!({"paused": true, "reason": after.reason})),
            },
        )
        .await?;
    }
    tx.commit().await?;
    Ok(Json(one(&state, task).await?))
}

/// Resumes a paused task; its next scheduled start runs it (a room check then fetches
/// what changed meanwhile). Audited; resuming a running task changes nothing.
#[utoipa::path(
    post, path = "/api/schedules/{task}/resume", operation_id = "resumeSchedule", tag = "schedules",
    params(TaskPath),
    responses(
        (status = 200, description = "The task, running on its schedule", body = ScheduleView),
        (status = 401, description = "No identity", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 404, description = "No such task (`task_not_found`)", body = ErrorBody),
    )
)]
pub(crate) async fn resume(
    State(state): State<AppState>,
    Admin(caller): Admin,
    request_id: RequestId,
    ApiPath(path): ApiPath<TaskPath>,
) -> Result<Json<ScheduleView>, ApiError> {
    let task = path.task()?;
    let mut tx = state.pool.begin().await?;
    let lifted = runs::resume(&mut tx, task).await?;
    if let Some(lifted) = lifted {
        audit::record(
            &mut *tx,
            AuditEntry {
                caller: &caller,
                request_id: &request_id,
                action: "schedule.resume",
                resource_type: "schedule",
                resource_id: task.as_str().to_owned(),
                old_values: Some(json!({
                    "paused": true,
                    "pausedBy": lifted.paused_by,
                    "pausedAt": lifted.paused_at,
                    "reason": lifted.reason,
                })),
                new_values: Some(json!({"paused": false})),
            },
        )
        .await?;
    }
    tx.commit().await?;
    Ok(Json(one(&state, task).await?))
}
