//! The scheduled tasks (EventBridge schedules in AWS, a timer in the local runner): the
//! room check (every minute: it decides which rooms need a fetch, see
//! [`check`](crate::sync::check)), the rooms sync, the fixed-interval messages sync (a
//! fallback for when the check is switched off), the sweeper, and the retention cleanup.
//!
//! Every run is recorded, paused tasks are skipped and runs of one task never overlap:
//! see [`runs`] and docs/architecture.md, "Scheduled tasks".

pub mod runs;

use std::time::Duration;

use serde::{Deserialize, Serialize};
use sqlx::PgPool;

use crate::chatwork::ChatworkClient;
use crate::config::{ConfigError, Env};
use crate::connections::Connections;
use crate::jobs::{self, StartError, SweepSettings};
use crate::queue::Queues;
use crate::sync::check::{
    self, CheckError, CheckOutcome, CheckTrigger, RoomCheckReport, RoomCheckSettings,
};
use crate::sync::messages::{MessagesSync, MessagesSyncPayload};
use crate::sync::rooms::{RoomsSync, RoomsSyncPayload};

/// One scheduled task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Task {
    /// Check the room list and fetch the rooms that need it, riskiest first, within the
    /// token's budget.
    RoomCheck,
    /// Start a rooms sync (new rooms, renamed rooms, rooms left).
    RoomsSync,
    /// Start an incremental messages sync of every active room (the fallback when the
    /// room check is off).
    MessagesSync,
    /// Repair what crashes leave (see [`jobs::sweep`]).
    Sweep,
    /// Delete finished jobs past the retention period.
    Retention,
    /// Apply pending database migrations (an operator runs it after a deploy).
    Migrate,
}

impl Task {
    /// Every task, in the order the API lists them.
    pub const ALL: [Task; 6] = [
        Task::RoomCheck,
        Task::RoomsSync,
        Task::MessagesSync,
        Task::Sweep,
        Task::Retention,
        Task::Migrate,
    ];

    /// The task's name (`room-check`, ...), as events, the API and the database write it.
    pub fn as_str(self) -> &'static str {
        match self {
            Task::RoomCheck => "room-check",
            Task::RoomsSync => "rooms-sync",
            Task::MessagesSync => "messages-sync",
            Task::Sweep => "sweep",
            Task::Retention => "retention",
            Task::Migrate => "migrate",
        }
    }

    pub fn parse(name: &str) -> Option<Task> {
        Self::ALL.into_iter().find(|t| t.as_str() == name)
    }

    /// Whether the task can say what it would do without doing it (only the two that
    /// change or delete data on their own).
    pub fn has_dry_run(self) -> bool {
        matches!(self, Task::Retention | Task::Sweep)
    }
}

impl std::fmt::Display for Task {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How often each task is scheduled; `None`: not on a schedule (switched off, or
/// `migrate`, which an operator runs). The API shows it and the health check measures
/// lateness and long runs by it, so it must say what EventBridge (or the local timer)
/// really does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cadences {
    pub room_check: Option<Duration>,
    pub rooms_sync: Option<Duration>,
    pub messages_sync: Option<Duration>,
    pub sweep: Option<Duration>,
    pub retention: Option<Duration>,
}

impl Default for Cadences {
    /// The template's defaults: the room check every minute (and so no fixed messages
    /// sync), rooms every 6 hours, the sweep every 5 minutes, retention daily.
    fn default() -> Self {
        Self {
            room_check: Some(Duration::from_secs(60)),
            rooms_sync: Some(Duration::from_secs(6 * 3600)),
            messages_sync: None,
            sweep: Some(Duration::from_secs(300)),
            retention: Some(Duration::from_secs(86400)),
        }
    }
}

impl Cadences {
    /// `ROOM_CHECK_ENABLED` (default true), `ROOM_CHECK_EVERY_MINUTES` (1),
    /// `MESSAGES_SYNC_EVERY_MINUTES` (15, only while the room check is off) and
    /// `ROOMS_SYNC_EVERY_HOURS` (6): the template passes its parameters to both the API
    /// and the scheduler.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let at_least_one = |name: &'static str, value: Option<u64>| match value {
            Some(0) => Err(ConfigError::Invalid {
                name,
                reason: "expected at least 1".into(),
            }),
            other => Ok(other),
        };
        let check_on: bool = env
            .parse("ROOM_CHECK_ENABLED", "true or false")?
            .unwrap_or(true);
        let check_minutes = at_least_one(
            "ROOM_CHECK_EVERY_MINUTES",
            env.parse("ROOM_CHECK_EVERY_MINUTES", "a whole number of minutes")?,
        )?
        .unwrap_or(1);
        let sync_minutes = at_least_one(
            "MESSAGES_SYNC_EVERY_MINUTES",
            env.parse("MESSAGES_SYNC_EVERY_MINUTES", "a whole number of minutes")?,
        )?
        .unwrap_or(15);
        let rooms_hours = at_least_one(
            "ROOMS_SYNC_EVERY_HOURS",
            env.parse("ROOMS_SYNC_EVERY_HOURS", "a whole number of hours")?,
        )?
        .unwrap_or(6);
        Ok(Self {
            room_check: check_on.then(|| Duration::from_secs(check_minutes * 60)),
            messages_sync: (!check_on).then(|| Duration::from_secs(sync_minutes * 60)),
            rooms_sync: Some(Duration::from_secs(rooms_hours * 3600)),
            ..Self::default()
        })
    }

    /// How often `task` is scheduled.
    pub fn of(&self, task: Task) -> Option<Duration> {
        match task {
            Task::RoomCheck => self.room_check,
            Task::RoomsSync => self.rooms_sync,
            Task::MessagesSync => self.messages_sync,
            Task::Sweep => self.sweep,
            Task::Retention => self.retention,
            Task::Migrate => None,
        }
    }
}

/// What a task did; for a dry run (retention and sweep), what it would do.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase", tag = "task")]
pub enum TaskReport {
    #[serde(rename = "room-check")]
    RoomCheck(RoomCheckReport),
    #[serde(rename = "rooms-sync", rename_all = "camelCase")]
    RoomsSync { job_id: uuid::Uuid, created: bool },
    #[serde(rename = "messages-sync", rename_all = "camelCase")]
    MessagesSync { job_id: uuid::Uuid, created: bool },
    #[serde(rename = "sweep")]
    Sweep(jobs::SweepReport),
    #[serde(rename = "retention", rename_all = "camelCase")]
    Retention {
        deleted_jobs: u64,
        deleted_checks: u64,
        /// Recorded runs of scheduled tasks.
        deleted_runs: u64,
    },
    #[serde(rename = "migrate", rename_all = "camelCase")]
    Migrate { applied_migrations: usize },
}

/// The knobs of the scheduled tasks.
#[derive(Debug, Clone)]
pub struct ScheduleSettings {
    pub sweep: SweepSettings,
    /// `RETENTION_DAYS` (default 30): finished jobs and room checks older than this are
    /// deleted.
    pub retention: Duration,
    pub room_check: RoomCheckSettings,
    /// The Chatwork connections the room check reads the room lists through; without
    /// them the task fails (the other tasks never call Chatwork).
    pub connections: Option<Connections>,
    /// How often each task is scheduled (see [`Cadences`]).
    pub cadences: Cadences,
}

impl ScheduleSettings {
    /// `RETENTION_DAYS`, `SWEEP_RESEND_AFTER_SECS`, `JOB_STALE_AFTER_SECS`, the room
    /// check's settings (see [`RoomCheckSettings::from_env`]) and the cadences (see
    /// [`Cadences::from_env`]); no Chatwork client yet
    /// (see [`with_chatwork`](Self::with_chatwork)).
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let defaults = SweepSettings::default();
        let days: u64 = env
            .parse("RETENTION_DAYS", "a whole number of days")?
            .unwrap_or(30);
        let resend: Option<u64> =
            env.parse("SWEEP_RESEND_AFTER_SECS", "a whole number of seconds")?;
        let stale: Option<u64> = env.parse("JOB_STALE_AFTER_SECS", "a whole number of seconds")?;
        Ok(Self {
            sweep: SweepSettings {
                resend_after: resend.map_or(defaults.resend_after, Duration::from_secs),
                stale_after: stale.map_or(defaults.stale_after, Duration::from_secs),
                ..defaults
            },
            retention: Duration::from_secs(days * 24 * 60 * 60),
            room_check: RoomCheckSettings::from_env(env)?,
            connections: None,
            cadences: Cadences::from_env(env)?,
        })
    }

    /// The settings with only the bootstrap connection of `chatwork`.
    pub fn with_chatwork(self, chatwork: ChatworkClient) -> Self {
        self.with_connections(Connections::of_client(chatwork))
    }

    /// The settings with the connections the room check reads through.
    pub fn with_connections(mut self, connections: Connections) -> Self {
        self.connections = Some(connections);
        self
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Start(#[from] StartError),
    #[error("migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("room check: {0}")]
    Check(#[from] CheckError),
    #[error("the room check needs a Chatwork client, and this process has none")]
    NoChatwork,
    #[error("{0} has no dry run")]
    NoDryRun(Task),
}

/// What retention would delete now: each delete's own count, beside it.
async fn retention_preview(pool: &PgPool, retention: Duration) -> Result<TaskReport, sqlx::Error> {
    Ok(TaskReport::Retention {
        deleted_jobs: jobs::count_finished_jobs(pool, retention).await?,
        deleted_checks: check::count_old_checks(pool, retention).await?,
        deleted_runs: runs::count_old_runs(pool, retention).await?,
    })
}

/// Runs one task now, unrecorded (the scheduler records its runs with
/// [`runs::fire`] and [`runs::run_requested`]).
pub async fn run(
    pool: &PgPool,
    queues: &dyn Queues,
    task: Task,
    settings: &ScheduleSettings,
) -> Result<TaskReport, TaskError> {
    run_task(pool, queues, task, settings, false).await
}

/// Runs one task; a `dry_run` of retention or the sweep counts what it would do and
/// changes nothing (the other tasks have no dry run and refuse one).
pub async fn run_task(
    pool: &PgPool,
    queues: &dyn Queues,
    task: Task,
    settings: &ScheduleSettings,
    dry_run: bool,
) -> Result<TaskReport, TaskError> {
    if dry_run {
        return match task {
            Task::Sweep => Ok(TaskReport::Sweep(
                jobs::sweep_preview(pool, &settings.sweep).await?,
            )),
            Task::Retention => Ok(retention_preview(pool, settings.retention).await?),
            other => Err(TaskError::NoDryRun(other)),
        };
    }
    let report = match task {
        Task::RoomCheck => {
            let connections = settings.connections.as_ref().ok_or(TaskError::NoChatwork)?;
            TaskReport::RoomCheck(
                room_checks(pool, queues, connections, &settings.room_check).await?,
            )
        }
        Task::RoomsSync => {
            let started =
                jobs::start::<RoomsSync>(pool, queues, &RoomsSyncPayload::default(), None).await?;
            TaskReport::RoomsSync {
                job_id: started.job.id,
                created: started.created,
            }
        }
        Task::MessagesSync => {
            let payload = MessagesSyncPayload::default();
            let started = jobs::start::<MessagesSync>(pool, queues, &payload, None).await?;
            TaskReport::MessagesSync {
                job_id: started.job.id,
                created: started.created,
            }
        }
        Task::Sweep => TaskReport::Sweep(
            jobs::sweep(pool, queues, &crate::job_types::registry(), &settings.sweep).await?,
        ),
        Task::Retention => {
            let deleted_jobs = jobs::delete_finished_jobs(pool, settings.retention).await?;
            let deleted_checks = check::delete_old_checks(pool, settings.retention).await?;
            let deleted_runs = runs::delete_old_runs(pool, settings.retention).await?;
            TaskReport::Retention {
                deleted_jobs,
                deleted_checks,
                deleted_runs,
            }
        }
        Task::Migrate => {
            crate::db::migrate(pool).await?;
            TaskReport::Migrate {
                applied_migrations: crate::db::MIGRATOR.iter().count(),
            }
        }
    };
    tracing::debug!(?report, "scheduled task done");
    Ok(report)
}

/// The room-check task: [`RoomCheckSettings::per_invocation`] checks, `cadence` apart
/// (EventBridge fires a schedule at most once a minute; checks every 15 s are four per
/// invocation, idle in between: see docs/architecture.md, "Checks under a minute
/// apart"). Returns the report of the last check that was not `busy` (the checks after
/// one that started a job usually find it still running), else the last; a check that
/// fails ends the run.
pub async fn room_checks(
    pool: &PgPool,
    queues: &dyn Queues,
    connections: &Connections,
    settings: &RoomCheckSettings,
) -> Result<RoomCheckReport, TaskError> {
    let start = tokio::time::Instant::now();
    let mut report = room_check(pool, queues, connections, settings).await?;
    for n in 1..settings.per_invocation.max(1) {
        tokio::time::sleep_until(start + settings.cadence * n).await;
        let next = room_check(pool, queues, connections, settings).await?;
        if next.outcome != CheckOutcome::Busy || report.outcome == CheckOutcome::Busy {
            report = next;
        }
    }
    Ok(report)
}

/// The scheduled room check: when it plans rooms, one messages sync job fetches exactly
/// those; nothing to fetch, no job. While another sync of all rooms runs, the plan is left
/// to it and to the next check (`busy`).
pub async fn room_check(
    pool: &PgPool,
    queues: &dyn Queues,
    connections: &Connections,
    settings: &RoomCheckSettings,
) -> Result<RoomCheckReport, TaskError> {
    let check = check::run(pool, connections, None, settings, CheckTrigger::Schedule).await?;
    if check.planned().is_empty() {
        return Ok(check.record(pool, settings, None, false).await?);
    }
    let payload = MessagesSyncPayload::Planned {
        rooms: check.planned().to_vec(),
    };
    let started = jobs::start::<MessagesSync>(pool, queues, &payload, None).await?;
    Ok(check
        .record(pool, settings, Some(started.job.id), !started.created)
        .await?)
}

/// What a scheduler invocation is asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// `{"task": "<name>"}`: the task's schedule fired ([`runs::fire`]).
    Task(Task),
    /// `{"tick": true}`, every minute: run what people requested ([`runs::run_requested`])
    /// and measure the tasks' health ([`runs::health`]).
    Tick,
}

/// The event a scheduler invocation carries (see [`Event`]).
pub fn event_of(event: &serde_json::Value) -> Option<Event> {
    let tick = event
        .get("tick")
        .or_else(|| event.get("detail").and_then(|d| d.get("tick")));
    if tick == Some(&serde_json::Value::Bool(true)) {
        return Some(Event::Tick);
    }
    task_of(event).map(Event::Task)
}

/// The tick: every requested run, then the health gauges.
pub async fn tick(
    pool: &PgPool,
    queues: &dyn Queues,
    settings: &ScheduleSettings,
) -> Result<(Vec<runs::Run>, runs::Health), sqlx::Error> {
    let done = runs::run_requested(pool, queues, settings).await?;
    let health = runs::health(pool, &settings.cadences).await?;
    if health != runs::Health::default() {
        tracing::warn!(?health, "scheduled tasks are late or running long");
    }
    Ok((done, health))
}

/// The task a scheduled event names: `{"task": "sweep"}` (a schedule's constant input),
/// or an EventBridge event whose `detail` is that.
pub fn task_of(event: &serde_json::Value) -> Option<Task> {
    let task = event
        .get("task")
        .or_else(|| event.get("detail").and_then(|d| d.get("task")))?;
    serde_json::from_value(task.clone()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tasks_come_from_the_input_or_the_detail() {
        let input = serde_json::json!({"task": "sweep"});
        assert_eq!(task_of(&input), Some(Task::Sweep));
        let event = serde_json::json!({
            "version": "0", "detail-type": "Scheduled Event", "source": "aws.events",
            "detail": {"task": "messages-sync"}
        });
        assert_eq!(task_of(&event), Some(Task::MessagesSync));
        assert_eq!(
            task_of(&serde_json::json!({"task": "room-check"})),
            Some(Task::RoomCheck)
        );
        assert_eq!(task_of(&serde_json::json!({"task": "nap"})), None);
        assert_eq!(task_of(&serde_json::json!({})), None);
        assert_eq!(
            event_of(&serde_json::json!({"tick": true})),
            Some(Event::Tick)
        );
        assert_eq!(
            event_of(&serde_json::json!({"task": "retention"})),
            Some(Event::Task(Task::Retention))
        );
        assert_eq!(event_of(&serde_json::json!({"tick": "yes"})), None);
    }

    #[test]
    fn task_names_round_trip() {
        for task in Task::ALL {
            assert_eq!(Task::parse(task.as_str()), Some(task));
            assert_eq!(
                serde_json::to_value(task).unwrap(),
                serde_json::json!(task.as_str())
            );
        }
        assert_eq!(Task::parse("nap"), None);
    }

    #[test]
    fn cadences_follow_the_room_check_switch() {
        let on = Cadences::from_env(&Env::from_pairs([("ROOM_CHECK_EVERY_MINUTES", "2")])).unwrap();
        assert_eq!(on.of(Task::RoomCheck), Some(Duration::from_secs(120)));
        assert_eq!(on.of(Task::MessagesSync), None);
        let off = Cadences::from_env(&Env::from_pairs([
            ("ROOM_CHECK_ENABLED", "false"),
            ("MESSAGES_SYNC_EVERY_MINUTES", "20"),
            ("ROOMS_SYNC_EVERY_HOURS", "3"),
        ]))
        .unwrap();
        assert_eq!(off.of(Task::RoomCheck), None);
        assert_eq!(off.of(Task::MessagesSync), Some(Duration::from_secs(1200)));
        assert_eq!(off.of(Task::RoomsSync), Some(Duration::from_secs(3 * 3600)));
        assert_eq!(off.of(Task::Migrate), None);
        assert!(Cadences::from_env(&Env::from_pairs([("ROOMS_SYNC_EVERY_HOURS", "0")])).is_err());
    }

    #[test]
    fn settings_read_the_environment() {
        let env = Env::from_pairs([("RETENTION_DAYS", "7"), ("JOB_STALE_AFTER_SECS", "600")]);
        let settings = ScheduleSettings::from_env(&env).unwrap();
        assert_eq!(settings.retention, Duration::from_secs(7 * 86400));
        assert_eq!(settings.sweep.stale_after, Duration::from_secs(600));
        assert!(ScheduleSettings::from_env(&Env::from_pairs([("RETENTION_DAYS", "-1")])).is_err());
    }
}
