//! The record of scheduled work: every run of a task (`schedule_runs`), whatever started
//! it, and the tasks an operator paused (`schedule_tasks`).
//!
//! - [`fire`]: the schedule's start of a task. A paused task records a `paused` run and
//!   does nothing; a task with an open run records `skipped_overlap`; otherwise the run
//!   is recorded open, the task runs, and the run ends `completed` or `failed`.
//! - [`request`]: a person's "run now", written as a `requested` run; never run in the
//!   request. [`run_requested`] (the scheduler's minutely tick, the local timer) takes
//!   requested runs one at a time and runs them.
//! - A partial unique index allows one open run per task, so no two runs of a task ever
//!   overlap, whoever starts them. An open run older than [`ABANDON_AFTER`] (a process
//!   that died mid-run) is closed `failed` before the next start, so it cannot block its
//!   task for good.
//! - [`health`]: the tasks overdue (no run for three intervals) and the runs longer than
//!   their interval, as gauges the alarms watch.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures_util::FutureExt;
use serde::Serialize;
use serde_json::{Value, json};
use sqlx::{PgConnection, PgPool};
use utoipa::ToSchema;
use uuid::Uuid;

use super::{Cadences, ScheduleSettings, Task, run_task};
use crate::queue::Queues;

/// An open run older than this is taken for a process that died: longer than the
/// scheduler function's timeout (5 minutes) with room to spare.
pub const ABANDON_AFTER: Duration = Duration::from_secs(15 * 60);

/// The `trigger` of a run the schedule started.
pub const SCHEDULE_TRIGGER: &str = "schedule";

/// A run that ended this recently still counts in [`Health::overlong`] when it lasted
/// longer than its interval: longer than the alarm's period.
const RECENT: Duration = Duration::from_secs(10 * 60);

/// A run is late after this many of its task's intervals without one.
pub const OVERDUE_INTERVALS: u32 = 3;

/// Where a run is: open (`requested`, `running`) or how it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Asked for by a person; no scheduler took it yet.
    Requested,
    Running,
    Completed,
    Failed,
    /// The task was paused: it did nothing.
    Paused,
    /// Another run of the task was open: this one did nothing.
    SkippedOverlap,
}

impl RunStatus {
    fn of(started: bool, outcome: Option<&str>) -> Self {
        match outcome {
            None if started => Self::Running,
            None => Self::Requested,
            Some("completed") => Self::Completed,
            Some("paused") => Self::Paused,
            Some("skipped_overlap") => Self::SkippedOverlap,
            Some(_) => Self::Failed,
        }
    }

    pub fn is_open(self) -> bool {
        matches!(self, Self::Requested | Self::Running)
    }
}

/// One run of a scheduled task.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Run {
    pub id: Uuid,
    #[schema(value_type = String, example = "retention")]
    pub task: Task,
    /// `schedule`, or the JWT `sub` of the admin who asked for it.
    pub trigger: String,
    /// A dry run (retention, sweep): its report says what the task would do; nothing
    /// changed.
    pub dry_run: bool,
    pub status: RunStatus,
    pub requested_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    /// What the task did (its own shape per task); for a paused run, who paused it and
    /// why.
    #[schema(value_type = Option<Object>)]
    pub report: Option<Value>,
    /// Why the run failed.
    pub error: Option<String>,
}

struct RunRow {
    id: Uuid,
    task: String,
    trigger: String,
    dry_run: bool,
    requested_at: DateTime<Utc>,
    started_at: Option<DateTime<Utc>>,
    ended_at: Option<DateTime<Utc>>,
    outcome: Option<String>,
    report: Option<Value>,
    error: Option<String>,
}

impl RunRow {
    fn into_run(self) -> Option<Run> {
        Some(Run {
            id: self.id,
            task: Task::parse(&self.task)?,
            trigger: self.trigger,
            dry_run: self.dry_run,
            status: RunStatus::of(self.started_at.is_some(), self.outcome.as_deref()),
            requested_at: self.requested_at,
            started_at: self.started_at,
            ended_at: self.ended_at,
            report: self.report,
            error: self.error,
        })
    }
}

fn runs(rows: Vec<RunRow>) -> Vec<Run> {
    rows.into_iter().filter_map(RunRow::into_run).collect()
}

/// Who paused a task, when and why.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Pause {
    pub paused_at: DateTime<Utc>,
    /// The JWT `sub` of the admin who paused it.
    pub paused_by: String,
    pub reason: Option<String>,
}

/// What the schedule does while a task is paused, written into the `paused` run.
fn paused_report(pause: &Pause) -> Value {
    json!({
        "paused": true,
        "pausedAt": pause.paused_at,
        "pausedBy": pause.paused_by,
        "reason": pause.reason,
        "message": "the task is paused: it did nothing (no Chatwork request, no job, no change)",
    })
}

/// The task's pause, if it is paused.
pub async fn pause_of(
    executor: impl sqlx::PgExecutor<'_>,
    task: Task,
) -> Result<Option<Pause>, sqlx::Error> {
    let row = sqlx::query!(
        r#"SELECT paused_at, paused_by, reason FROM schedule_tasks WHERE task = $1"#,
        task.as_str()
    )
    .fetch_optional(executor)
    .await?;
    Ok(row.and_then(|r| {
        Some(Pause {
            paused_at: r.paused_at?,
            paused_by: r.paused_by?,
            reason: r.reason,
        })
    }))
}

/// Pauses `task` (in the caller's transaction, beside its audit row). Returns the pause
/// before and after; pausing a paused task changes nothing.
pub async fn pause(
    conn: &mut PgConnection,
    task: Task,
    by: &str,
    reason: Option<&str>,
) -> Result<(Option<Pause>, Pause), sqlx::Error> {
    let before = lock_pause(conn, task).await?;
    if let Some(before) = before {
        return Ok((Some(before.clone()), before));
    }
    let row = sqlx::query!(
        r#"UPDATE schedule_tasks
              SET paused_at = now(), paused_by = $2, reason = $3, updated_at = now()
            WHERE task = $1
        RETURNING paused_at AS "paused_at!", paused_by AS "paused_by!", reason"#,
        task.as_str(),
        by,
        reason,
    )
    .fetch_one(&mut *conn)
    .await?;
    Ok((
        None,
        Pause {
            paused_at: row.paused_at,
            paused_by: row.paused_by,
            reason: row.reason,
        },
    ))
}

/// Resumes `task`; returns the pause it lifted (none: it was not paused, nothing changed).
pub async fn resume(conn: &mut PgConnection, task: Task) -> Result<Option<Pause>, sqlx::Error> {
    let before = lock_pause(conn, task).await?;
    if before.is_some() {
        sqlx::query!(
            r#"UPDATE schedule_tasks
                  SET paused_at = NULL, paused_by = NULL, reason = NULL, updated_at = now()
                WHERE task = $1"#,
            task.as_str(),
        )
        .execute(&mut *conn)
        .await?;
    }
    Ok(before)
}

/// The task's pause, its row locked until the transaction ends.
async fn lock_pause(conn: &mut PgConnection, task: Task) -> Result<Option<Pause>, sqlx::Error> {
    let row = sqlx::query!(
        r#"SELECT paused_at, paused_by, reason FROM schedule_tasks WHERE task = $1 FOR UPDATE"#,
        task.as_str()
    )
    .fetch_one(&mut *conn)
    .await?;
    Ok(row.paused_at.zip(row.paused_by).map(|(at, by)| Pause {
        paused_at: at,
        paused_by: by,
        reason: row.reason,
    }))
}

/// Closes the open runs of `task` that nobody ended within [`ABANDON_AFTER`].
async fn abandon_stale(pool: &PgPool, task: Task) -> Result<(), sqlx::Error> {
    let abandoned = sqlx::query_scalar!(
        r#"UPDATE schedule_runs
              SET ended_at = now(), started_at = coalesce(started_at, now()),
                  outcome = 'failed',
                  error = CASE WHEN started_at IS NULL
                               THEN 'abandoned: no scheduler took the requested run in time'
                               ELSE 'abandoned: the run did not end in time (its process stopped?)'
                          END
            WHERE task = $1 AND ended_at IS NULL
              AND coalesce(started_at, requested_at) < now() - make_interval(secs => $2)
        RETURNING id"#,
        task.as_str(),
        ABANDON_AFTER.as_secs_f64(),
    )
    .fetch_all(pool)
    .await?;
    for id in &abandoned {
        tracing::warn!(%task, run_id = %id, "a run of the task never ended; closed as failed");
        metrics::counter!("schedule_runs_failed").increment(1);
    }
    Ok(())
}

/// Writes a run that did nothing, closed at once.
async fn record_closed(
    pool: &PgPool,
    task: Task,
    trigger: &str,
    outcome: &str,
    report: Value,
) -> Result<Run, sqlx::Error> {
    let row = sqlx::query_as!(
        RunRow,
        r#"INSERT INTO schedule_runs (task, trigger, started_at, ended_at, outcome, report)
           VALUES ($1, $2, now(), now(), $3, $4)
        RETURNING id, task, trigger, dry_run, requested_at, started_at, ended_at, outcome,
                  report, error"#,
        task.as_str(),
        trigger,
        outcome,
        report,
    )
    .fetch_one(pool)
    .await?;
    Ok(row.into_run().expect("a task we wrote"))
}

/// The schedule's start of `task`: recorded `paused` while paused, `skipped_overlap`
/// while another run is open, or run and recorded. Only a database failure is an error;
/// the task's own failure is the run's outcome.
pub async fn fire(
    pool: &PgPool,
    queues: &dyn Queues,
    task: Task,
    settings: &ScheduleSettings,
) -> Result<Run, sqlx::Error> {
    abandon_stale(pool, task).await?;
    if let Some(pause) = pause_of(pool, task).await? {
        tracing::info!(%task, paused_by = %pause.paused_by, "the task is paused; its schedule did nothing");
        metrics::counter!("schedule_runs_paused").increment(1);
        return record_closed(
            pool,
            task,
            SCHEDULE_TRIGGER,
            "paused",
            paused_report(&pause),
        )
        .await;
    }
    let opened = sqlx::query_as!(
        RunRow,
        r#"INSERT INTO schedule_runs (task, trigger, started_at)
           VALUES ($1, 'schedule', now())
           ON CONFLICT (task) WHERE ended_at IS NULL DO NOTHING
        RETURNING id, task, trigger, dry_run, requested_at, started_at, ended_at, outcome,
                  report, error"#,
        task.as_str(),
    )
    .fetch_optional(pool)
    .await?;
    let Some(run) = opened.and_then(RunRow::into_run) else {
        let open = open_run(pool, task).await?;
        tracing::info!(%task, open_run = ?open.as_ref().map(|r| r.id), "another run of the task is open; this one is skipped");
        let report = json!({
            "openRunId": open.map(|r| r.id),
            "message": "another run of this task was still open: runs of one task never overlap",
        });
        return record_closed(pool, task, SCHEDULE_TRIGGER, "skipped_overlap", report).await;
    };
    execute(pool, queues, settings, run).await
}

/// The task's open run (requested or running), if any.
pub async fn open_run(pool: &PgPool, task: Task) -> Result<Option<Run>, sqlx::Error> {
    let row = sqlx::query_as!(
        RunRow,
        r#"SELECT id, task, trigger, dry_run, requested_at, started_at, ended_at, outcome,
                  report, error
             FROM schedule_runs WHERE task = $1 AND ended_at IS NULL"#,
        task.as_str(),
    )
    .fetch_optional(pool)
    .await?;
    Ok(row.and_then(RunRow::into_run))
}

/// Runs an open, started run and records how it ended.
async fn execute(
    pool: &PgPool,
    queues: &dyn Queues,
    settings: &ScheduleSettings,
    run: Run,
) -> Result<Run, sqlx::Error> {
    let began = Instant::now();
    let work = run_task(pool, queues, run.task, settings, run.dry_run);
    let result = std::panic::AssertUnwindSafe(work).catch_unwind().await;
    let (outcome, report, error) = match result {
        Ok(Ok(report)) => (
            "completed",
            serde_json::to_value(&report).ok(),
            None::<String>,
        ),
        Ok(Err(e)) => ("failed", None, Some(e.to_string())),
        Err(_) => ("failed", None, Some("the task panicked".to_owned())),
    };
    let elapsed = began.elapsed();
    if outcome == "failed" {
        tracing::warn!(task = %run.task, run_id = %run.id, error = ?error, "a scheduled task failed");
        metrics::counter!("schedule_runs_failed").increment(1);
    }
    if settings
        .cadences
        .of(run.task)
        .is_some_and(|every| elapsed > every)
    {
        tracing::warn!(task = %run.task, run_id = %run.id, secs = elapsed.as_secs(), "a run took longer than its task's interval");
        // The alarm's gauge (see [`health`]), set by the invocation that saw it.
        metrics::gauge!("schedule_runs_overlong").set(1.0);
    }
    metrics::histogram!("schedule_run_duration_ms", "task" => run.task.as_str())
        .record(elapsed.as_secs_f64() * 1000.0);
    let row = sqlx::query_as!(
        RunRow,
        r#"UPDATE schedule_runs SET ended_at = now(), outcome = $2, report = $3, error = $4
            WHERE id = $1
        RETURNING id, task, trigger, dry_run, requested_at, started_at, ended_at, outcome,
                  report, error"#,
        run.id,
        outcome,
        report,
        error,
    )
    .fetch_one(pool)
    .await?;
    Ok(row.into_run().expect("a task we wrote"))
}

/// What became of a person's request to run a task now.
#[derive(Debug)]
pub enum Requested {
    /// Written as `requested`; a scheduler runs it within a minute.
    Run(Run),
    /// The task is paused (only a dry run may be asked for while it is).
    Paused(Pause),
    /// A run of the task is open (requested or running): runs never overlap.
    Active(Run),
}

/// Records a person's request to run `task` now; the scheduler runs it (see
/// [`run_requested`]).
pub async fn request(
    pool: &PgPool,
    task: Task,
    by: &str,
    dry_run: bool,
    request_id: &str,
) -> Result<Requested, sqlx::Error> {
    abandon_stale(pool, task).await?;
    if !dry_run && let Some(pause) = pause_of(pool, task).await? {
        return Ok(Requested::Paused(pause));
    }
    let row = sqlx::query_as!(
        RunRow,
        r#"INSERT INTO schedule_runs (task, trigger, dry_run, request_id)
           VALUES ($1, $2, $3, $4)
           ON CONFLICT (task) WHERE ended_at IS NULL DO NOTHING
        RETURNING id, task, trigger, dry_run, requested_at, started_at, ended_at, outcome,
                  report, error"#,
        task.as_str(),
        by,
        dry_run,
        request_id,
    )
    .fetch_optional(pool)
    .await?;
    if let Some(run) = row.and_then(RunRow::into_run) {
        return Ok(Requested::Run(run));
    }
    match open_run(pool, task).await? {
        Some(open) => Ok(Requested::Active(open)),
        // The open run ended in between: ask again, once.
        None => Box::pin(request(pool, task, by, dry_run, request_id)).await,
    }
}

/// Runs every requested run, oldest first, one at a time. Each is claimed in one
/// statement (`FOR UPDATE SKIP LOCKED`), so schedulers running side by side never take
/// the same one. A run whose task was paused after it was requested ends `paused`
/// (a dry run still runs: it changes nothing).
pub async fn run_requested(
    pool: &PgPool,
    queues: &dyn Queues,
    settings: &ScheduleSettings,
) -> Result<Vec<Run>, sqlx::Error> {
    let mut done = Vec::new();
    // At most one open run per task: a bound, not a limit one reaches.
    for _ in 0..Task::ALL.len() * 2 {
        let claimed = sqlx::query_as!(
            RunRow,
            r#"UPDATE schedule_runs SET started_at = now()
                WHERE id = (SELECT id FROM schedule_runs
                             WHERE started_at IS NULL AND ended_at IS NULL
                             ORDER BY requested_at
                             LIMIT 1 FOR UPDATE SKIP LOCKED)
            RETURNING id, task, trigger, dry_run, requested_at, started_at, ended_at,
                      outcome, report, error"#,
        )
        .fetch_optional(pool)
        .await?;
        let Some(row) = claimed else { break };
        let Some(run) = row.into_run() else { break };
        let pause = if run.dry_run {
            None
        } else {
            pause_of(pool, run.task).await?
        };
        let ended = match pause {
            Some(pause) => {
                let row = sqlx::query_as!(
                    RunRow,
                    r#"UPDATE schedule_runs SET ended_at = now(), outcome = 'paused', report = $2
                        WHERE id = $1
                    RETURNING id, task, trigger, dry_run, requested_at, started_at, ended_at,
                              outcome, report, error"#,
                    run.id,
                    paused_report(&pause),
                )
                .fetch_one(pool)
                .await?;
                row.into_run().expect("a task we wrote")
            }
            None => {
                tracing::info!(task = %run.task, run_id = %run.id, by = %run.trigger, dry_run = run.dry_run, "running a requested run");
                execute(pool, queues, settings, run).await?
            }
        };
        done.push(ended);
    }
    Ok(done)
}

/// One task's state: its pause, its open run, its last finished run, its last run the
/// schedule started.
#[derive(Debug, Clone)]
pub struct TaskState {
    pub task: Task,
    pub pause: Option<Pause>,
    pub open_run: Option<Run>,
    pub last_run: Option<Run>,
    /// When the schedule last started it (whatever came of it).
    pub last_fired_at: Option<DateTime<Utc>>,
    /// When it was set up (the migration), the start of its lateness before a first run.
    pub since: DateTime<Utc>,
    /// When it last ran or deliberately did not (`completed`, `failed`, `paused`).
    pub last_ran_at: Option<DateTime<Utc>>,
}

/// Every task's state, in [`Task::ALL`]'s order.
pub async fn states(pool: &PgPool) -> Result<Vec<TaskState>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"SELECT t.task, t.paused_at, t.paused_by, t.reason, t.created_at,
                  (SELECT max(requested_at) FROM schedule_runs r
                    WHERE r.task = t.task AND r.trigger = 'schedule') AS last_fired_at,
                  (SELECT max(coalesce(started_at, requested_at)) FROM schedule_runs r
                    WHERE r.task = t.task
                      AND r.outcome IN ('completed', 'failed', 'paused')) AS last_ran_at,
                  (SELECT id FROM schedule_runs r WHERE r.task = t.task AND r.ended_at IS NULL)
                      AS open_id,
                  (SELECT id FROM schedule_runs r WHERE r.task = t.task AND r.ended_at IS NOT NULL
                    ORDER BY requested_at DESC, id DESC LIMIT 1) AS last_id
             FROM schedule_tasks t"#
    )
    .fetch_all(pool)
    .await?;
    let ids: Vec<Uuid> = rows
        .iter()
        .flat_map(|r| [r.open_id, r.last_id])
        .flatten()
        .collect();
    let found = runs(
        sqlx::query_as!(
            RunRow,
            r#"SELECT id, task, trigger, dry_run, requested_at, started_at, ended_at, outcome,
                      report, error
                 FROM schedule_runs WHERE id = ANY($1)"#,
            &ids,
        )
        .fetch_all(pool)
        .await?,
    );
    let by_id = |id: Option<Uuid>| id.and_then(|id| found.iter().find(|r| r.id == id).cloned());
    let mut states: Vec<TaskState> = rows
        .into_iter()
        .filter_map(|r| {
            Some(TaskState {
                task: Task::parse(&r.task)?,
                pause: r.paused_at.zip(r.paused_by).map(|(at, by)| Pause {
                    paused_at: at,
                    paused_by: by,
                    reason: r.reason,
                }),
                open_run: by_id(r.open_id),
                last_run: by_id(r.last_id),
                last_fired_at: r.last_fired_at,
                since: r.created_at,
                last_ran_at: r.last_ran_at,
            })
        })
        .collect();
    states.sort_by_key(|s| Task::ALL.iter().position(|t| *t == s.task));
    Ok(states)
}

/// A page of `task`'s runs, newest first, after the `(requested_at, id)` of `before`.
pub async fn list(
    pool: &PgPool,
    task: Task,
    before: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> Result<Vec<Run>, sqlx::Error> {
    let (at, id) = before.unzip();
    let rows = sqlx::query_as!(
        RunRow,
        r#"SELECT id, task, trigger, dry_run, requested_at, started_at, ended_at, outcome,
                  report, error
             FROM schedule_runs
            WHERE task = $1
              AND ($2::timestamptz IS NULL OR (requested_at, id) < ($2, $3::uuid))
            ORDER BY requested_at DESC, id DESC
            LIMIT $4"#,
        task.as_str(),
        at,
        id,
        limit,
    )
    .fetch_all(pool)
    .await?;
    Ok(runs(rows))
}

/// One run by id.
pub async fn get(pool: &PgPool, id: Uuid) -> Result<Option<Run>, sqlx::Error> {
    let row = sqlx::query_as!(
        RunRow,
        r#"SELECT id, task, trigger, dry_run, requested_at, started_at, ended_at, outcome,
                  report, error
             FROM schedule_runs WHERE id = $1"#,
        id,
    )
    .fetch_optional(pool)
    .await?;
    Ok(row.and_then(RunRow::into_run))
}

/// When the schedule next starts the task: its last start plus its interval (null when
/// it is not on a schedule or never started yet, since a rate's phase is EventBridge's).
pub fn next_due(state: &TaskState, cadences: &Cadences) -> Option<DateTime<Utc>> {
    let every = chrono::Duration::from_std(cadences.of(state.task)?).ok()?;
    Some(state.last_fired_at? + every)
}

/// The scheduled tasks' health, as the alarms see it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Health {
    /// Scheduled tasks with no run (completed, failed or paused) for
    /// [`OVERDUE_INTERVALS`] of their intervals.
    pub overdue: Vec<Task>,
    /// Tasks whose open run has lasted longer than their interval, or whose last run,
    /// ended within 10 minutes, did.
    pub overlong: Vec<Task>,
}

/// Measures [`Health`] and sets the gauges `schedule_tasks_overdue` and
/// `schedule_runs_overlong` (the alarms' metrics).
pub async fn health(pool: &PgPool, cadences: &Cadences) -> Result<Health, sqlx::Error> {
    let now = Utc::now();
    let mut health = Health::default();
    for state in states(pool).await? {
        let Some(every) = cadences
            .of(state.task)
            .and_then(|d| chrono::Duration::from_std(d).ok())
        else {
            continue;
        };
        let last = state.last_ran_at.unwrap_or(state.since).max(state.since);
        if now - last > every * OVERDUE_INTERVALS as i32 {
            health.overdue.push(state.task);
        }
        let open_long = state
            .open_run
            .as_ref()
            .and_then(|r| r.started_at)
            .is_some_and(|started| now - started > every);
        let ended_long = state.last_run.as_ref().is_some_and(|r| {
            let (Some(started), Some(ended)) = (r.started_at, r.ended_at) else {
                return false;
            };
            now - ended < chrono::Duration::from_std(RECENT).unwrap_or_default()
                && ended - started > every
        });
        if open_long || ended_long {
            health.overlong.push(state.task);
        }
    }
    metrics::gauge!("schedule_tasks_overdue").set(health.overdue.len() as f64);
    metrics::gauge!("schedule_runs_overlong").set(health.overlong.len() as f64);
    Ok(health)
}

/// Deletes runs that ended more than `age` ago (retention); returns how many.
pub async fn delete_old_runs(pool: &PgPool, age: Duration) -> Result<u64, sqlx::Error> {
    let done = sqlx::query!(
        "DELETE FROM schedule_runs WHERE ended_at < now() - make_interval(secs => $1::float8)",
        age.as_secs_f64(),
    )
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}

/// How many runs [`delete_old_runs`] would delete now (retention's dry run).
pub async fn count_old_runs(pool: &PgPool, age: Duration) -> Result<u64, sqlx::Error> {
    let count = sqlx::query_scalar!(
        r#"SELECT count(*) AS "count!" FROM schedule_runs
            WHERE ended_at < now() - make_interval(secs => $1::float8)"#,
        age.as_secs_f64(),
    )
    .fetch_one(pool)
    .await?;
    Ok(u64::try_from(count).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_runs_status_follows_its_columns() {
        assert_eq!(RunStatus::of(false, None), RunStatus::Requested);
        assert_eq!(RunStatus::of(true, None), RunStatus::Running);
        assert_eq!(RunStatus::of(true, Some("paused")), RunStatus::Paused);
        assert_eq!(
            RunStatus::of(true, Some("skipped_overlap")),
            RunStatus::SkippedOverlap
        );
        assert_eq!(RunStatus::of(true, Some("failed")), RunStatus::Failed);
        assert!(RunStatus::Requested.is_open() && !RunStatus::Completed.is_open());
    }

    #[test]
    fn the_next_start_is_the_last_plus_the_interval() {
        let at = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let state = TaskState {
            task: Task::Sweep,
            pause: None,
            open_run: None,
            last_run: None,
            last_fired_at: Some(at),
            since: at,
            last_ran_at: Some(at),
        };
        let cadences = Cadences::default();
        assert_eq!(
            next_due(&state, &cadences),
            Some(at + chrono::Duration::seconds(300))
        );
        let migrate = TaskState {
            task: Task::Migrate,
            ..state
        };
        assert_eq!(next_due(&migrate, &cadences), None);
    }
}
