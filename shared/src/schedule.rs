//! The scheduled tasks (EventBridge schedules in AWS, a timer in the local runner): the
//! room check (every minute: it decides which rooms need a fetch, see
//! [`check`](crate::sync::check)), the rooms sync, the fixed-interval messages sync (a
//! fallback for when the check is switched off), the sweeper, and the retention cleanup.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use sqlx::PgPool;

use crate::chatwork::ChatworkClient;
use crate::config::{ConfigError, Env};
use crate::connections::Connections;
use crate::jobs::{self, StartError, SweepSettings};
use crate::queue::Queues;
use crate::sync::check::{self, CheckError, CheckTrigger, RoomCheckReport, RoomCheckSettings};
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

/// What a task did.
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
}

impl ScheduleSettings {
    /// `RETENTION_DAYS`, `SWEEP_RESEND_AFTER_SECS`, `JOB_STALE_AFTER_SECS` and the room
    /// check's settings (see [`RoomCheckSettings::from_env`]); no Chatwork client yet
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
}

/// Runs one task.
pub async fn run(
    pool: &PgPool,
    queues: &dyn Queues,
    task: Task,
    settings: &ScheduleSettings,
) -> Result<TaskReport, TaskError> {
    let report = match task {
        Task::RoomCheck => {
            let connections = settings.connections.as_ref().ok_or(TaskError::NoChatwork)?;
            TaskReport::RoomCheck(
                room_check(pool, queues, connections, &settings.room_check).await?,
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
            TaskReport::Retention {
                deleted_jobs,
                deleted_checks,
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
