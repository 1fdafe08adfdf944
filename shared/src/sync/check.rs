//! The room check: what decides which rooms a messages sync fetches.
//!
//! Chatwork returns only a room's latest 100 messages, so a room that receives more than
//! that between two fetches loses messages for good. One `GET /rooms` says, for every
//! room, how many messages it has now (`message_num`) and when it last moved
//! (`last_update_time`); a check compares those with what the room's last successful
//! fetch saw (unseen messages, edits, webhook messages without an author's name: see
//! docs/architecture.md, "The room check").
//!
//! A check, in order:
//!
//! 1. `GET /rooms` (its one request). A failure is recorded as a `failed` check.
//! 2. One statement registers the rooms it has not seen before, records what it saw on
//!    every listed room, marks since when a room needs a fetch, and returns the rooms
//!    that need one.
//! 3. Risk first: the rooms closest to 100 unseen messages first, then those waiting
//!    longest. A scheduled check plans no more fetches than the token's rate budget can
//!    serve before the next check, less a reserve (a share of the window) for syncs
//!    people start; the rest stay marked for the next check. A person's sync plans every
//!    room that needs a fetch: its job fetches them as the budget allows.
//! 4. Its caller turns the plan into a job's items ([`Check::planned`]) and records the
//!    check with that job ([`Check::record`]); the status route reads the latest.
//!
//! This module plans; it starts no job: the messages sync's first step
//! (`super::messages`) and the scheduled task (`crate::schedule`) do.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use tokio::time::Instant;
use uuid::Uuid;

use super::columns::RoomColumns;
use super::snapshot::ListedRoom;
use crate::chatwork::{ChatworkError, MESSAGES_PER_REQUEST, RequestMeter, Room};
use crate::config::{ConfigError, Env};
use crate::connections::{Connections, store as connection_store};

/// The knobs of the room check.
#[derive(Debug, Clone)]
pub struct RoomCheckSettings {
    /// Time between two scheduled checks: a check plans what the token's budget can
    /// serve before the next one.
    pub cadence: Duration,
    /// The share of every rate window, in percent, a scheduled check leaves to syncs
    /// people start over HTTP (rounded up to whole requests).
    pub reserve_percent: u32,
    /// The longest a check waits for Chatwork's room list.
    pub list_timeout: Duration,
    /// Which of a room's other parts a check plans besides its messages.
    pub extras: RoomExtras,
}

impl Default for RoomCheckSettings {
    /// Every minute, 10 % of each window kept back, 30 s for the room list, and messages
    /// only: what a program that builds its settings itself (a benchmark, a test of
    /// messages) measures. Deployed functions and the local runner read
    /// [`from_env`](Self::from_env), where an unset `ROOM_EXTRAS` means every part.
    fn default() -> Self {
        Self {
            cadence: Duration::from_secs(60),
            reserve_percent: 10,
            list_timeout: Duration::from_secs(30),
            extras: RoomExtras::NONE,
        }
    }
}

/// Which of a room's parts besides its messages a check plans fetches for
/// (`ROOM_EXTRAS`: a comma-separated list of `tasks`, `files`, `members`, or `none`).
/// Each costs one request when it is planned (a file's copy one more): see
/// docs/architecture.md, "Tasks, files and members".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoomExtras {
    pub tasks: bool,
    pub files: bool,
    pub members: bool,
}

impl RoomExtras {
    pub const ALL: Self = Self {
        tasks: true,
        files: true,
        members: true,
    };
    pub const NONE: Self = Self {
        tasks: false,
        files: false,
        members: false,
    };

    /// `tasks,files,members`, any of them, or `none`.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let mut extras = Self::NONE;
        for part in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part {
                "tasks" => extras.tasks = true,
                "files" => extras.files = true,
                "members" => extras.members = true,
                "none" => {}
                other => {
                    return Err(format!(
                        "unknown part {other:?} (expected tasks, files, members or none)"
                    ));
                }
            }
        }
        Ok(extras)
    }
}

impl RoomCheckSettings {
    /// `ROOM_CHECK_EVERY_MINUTES` (the schedule's rate; default 1),
    /// `ROOM_CHECK_RESERVE_PERCENT` (default 10, at most 90) and `ROOM_EXTRAS` (default
    /// `tasks,files,members`).
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let defaults = Self::default();
        let minutes: Option<u64> =
            env.parse("ROOM_CHECK_EVERY_MINUTES", "a whole number of minutes")?;
        if minutes == Some(0) {
            return Err(ConfigError::Invalid {
                name: "ROOM_CHECK_EVERY_MINUTES",
                reason: "expected at least 1 minute".into(),
            });
        }
        let reserve: Option<u32> =
            env.parse("ROOM_CHECK_RESERVE_PERCENT", "a whole number of percent")?;
        if reserve.is_some_and(|r| r > 90) {
            return Err(ConfigError::Invalid {
                name: "ROOM_CHECK_RESERVE_PERCENT",
                reason: "expected at most 90 (a check must be able to plan something)".into(),
            });
        }
        let extras = match env.get("ROOM_EXTRAS") {
            Some(raw) => RoomExtras::parse(raw).map_err(|reason| ConfigError::Invalid {
                name: "ROOM_EXTRAS",
                reason,
            })?,
            None => RoomExtras::ALL,
        };
        Ok(Self {
            cadence: minutes.map_or(defaults.cadence, |m| Duration::from_secs(m * 60)),
            reserve_percent: reserve.unwrap_or(defaults.reserve_percent),
            extras,
            ..defaults
        })
    }

    /// The requests of a window of `limit` a scheduled check leaves alone.
    pub fn reserve_of(&self, limit: i64) -> i64 {
        (limit.max(0) * i64::from(self.reserve_percent) + 99) / 100
    }
}

/// A room a room check planned a fetch for, and what Chatwork's room list said of it:
/// the fetch decides and detects gaps by this instead of taking a room list of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckedRoom {
    pub room_id: i64,
    /// The connection to fetch it through (absent in plans made before connections).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection: Option<Uuid>,
    /// Chatwork's `last_update_time` (epoch seconds; 0 for a room without activity).
    pub last_update_time: i64,
    /// Chatwork's `message_num`.
    pub message_num: i64,
    /// Whether its messages need a fetch (plans made before tasks and files: always).
    #[serde(default = "always", skip_serializing_if = "is_true")]
    pub messages: bool,
    /// Chatwork's `task_num`, when the room's tasks need a fetch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tasks: Option<i64>,
    /// Chatwork's `file_num`, when the room's files need a fetch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files: Option<i64>,
    /// Whether the room's members need a fetch.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub members: bool,
}

fn always() -> bool {
    true
}

fn is_true(value: &bool) -> bool {
    *value
}

impl CheckedRoom {
    /// A room whose messages alone need a fetch.
    pub fn messages_only(room_id: i64, last_update_time: i64, message_num: i64) -> Self {
        Self {
            room_id,
            connection: None,
            last_update_time,
            message_num,
            messages: true,
            tasks: None,
            files: None,
            members: false,
        }
    }

    /// The requests its fetches cost: one per part (a file's copy costs one more, counted
    /// when it is made).
    pub fn requests(&self) -> i64 {
        i64::from(self.messages)
            + i64::from(self.tasks.is_some())
            + i64::from(self.files.is_some())
            + i64::from(self.members)
    }

    /// What the room list said of it.
    pub(crate) fn listed(&self) -> ListedRoom {
        ListedRoom {
            last_update_time: self.last_update_time,
            message_num: self.message_num,
        }
    }
}

/// What started a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum CheckTrigger {
    /// The scheduled task.
    Schedule,
    /// A messages sync of all rooms started over HTTP.
    Sync,
}

impl CheckTrigger {
    fn as_str(self) -> &'static str {
        match self {
            Self::Schedule => "schedule",
            Self::Sync => "sync",
        }
    }
}

/// How a check ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum CheckOutcome {
    /// No room needs a fetch: a scheduled check starts no job.
    Current,
    /// A job fetches the planned rooms.
    Fetching,
    /// Rooms need a fetch, but the budget allows a scheduled check none before the next.
    Deferred,
    /// Another sync of all rooms still runs; a scheduled check leaves the changed rooms
    /// to it and to the next check.
    Busy,
    /// The room list could not be read.
    Failed,
}

impl CheckOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Current => "current",
            Self::Fetching => "fetching",
            Self::Deferred => "deferred",
            Self::Busy => "busy",
            Self::Failed => "failed",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        [
            Self::Current,
            Self::Fetching,
            Self::Deferred,
            Self::Busy,
            Self::Failed,
        ]
        .into_iter()
        .find(|o| o.as_str() == value)
    }
}

/// The token's budget as a check saw it after its own request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BudgetSeen {
    pub limit: i32,
    pub remaining: i32,
    pub reset_at: DateTime<Utc>,
}

/// What one check saw and did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RoomCheckReport {
    pub check_id: Uuid,
    pub outcome: CheckOutcome,
    /// Rooms in Chatwork's list.
    pub listed: usize,
    /// Rooms registered by this check (new in the list).
    pub registered: usize,
    /// Active rooms that need a fetch.
    pub changed: usize,
    /// Rooms this check planned a fetch for.
    pub fetched: usize,
    /// Changed rooms left for the next check.
    pub deferred: usize,
    /// The most unseen messages of one room.
    pub unseen_max: i64,
    /// Fetches the budget allowed before the next check (a scheduled check plans no more;
    /// a person's sync plans every changed room and waits for the budget).
    pub allowance: usize,
    pub budget: Option<BudgetSeen>,
    /// The job fetching the planned rooms: the sync whose step the check was, or the job
    /// a scheduled check started (with `busy`, the sync still running).
    pub job_id: Option<Uuid>,
    /// The rooms planned, in the order they were ranked.
    pub planned: Vec<i64>,
}

impl RoomCheckReport {
    /// What the check did, in words (`room check: 12 rooms listed (0 new), 3 changed, 3
    /// to fetch`).
    pub fn describe(&self) -> String {
        let mut detail = format!(
            "room check: {} rooms listed ({} new), {} changed, {} to fetch",
            self.listed, self.registered, self.changed, self.fetched
        );
        if self.deferred > 0 {
            detail.push_str(&format!(", {} left for the next check", self.deferred));
        }
        detail
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// The room list could not be read; the check is recorded as `failed`.
    #[error("the room list could not be read: {error}")]
    Chatwork {
        check_id: Uuid,
        error: ChatworkError,
    },
}

/// A room that needs a fetch, as the check ranks it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Candidate {
    pub room_id: i64,
    /// Messages the room has that no fetch has seen (0 for an edit).
    pub unseen: i64,
    /// Since when checks have found it needing a fetch.
    pub waiting_since: DateTime<Utc>,
    pub listed: CheckedRoom,
}

/// Ranks the rooms that need a fetch: the closest to [`MESSAGES_PER_REQUEST`] unseen
/// messages first (a room past it has a gap already and keeps losing), then the one
/// waiting longest, then by room id so that the order is total.
fn rank(candidates: &mut [Candidate]) {
    let limit = MESSAGES_PER_REQUEST as i64;
    candidates.sort_by(|a, b| {
        b.unseen
            .min(limit)
            .cmp(&a.unseen.min(limit))
            .then(a.waiting_since.cmp(&b.waiting_since))
            .then(a.room_id.cmp(&b.room_id))
    });
}

/// How many fetches the budget serves before the next check: what the current window has
/// left, plus the next window when it opens before the next check, each less `reserve`,
/// less one request for the next check itself.
fn allowance(
    budget: Option<BudgetSeen>,
    now: DateTime<Utc>,
    cadence: Duration,
    reserve: i64,
) -> usize {
    let Some(budget) = budget else {
        return 0;
    };
    let limit = i64::from(budget.limit);
    // A window whose reset passed is whole again (the next reservation rolls it over).
    let remaining = if budget.reset_at <= now {
        limit
    } else {
        i64::from(budget.remaining)
    };
    let mut can = (remaining - reserve).max(0);
    let cadence = chrono::Duration::from_std(cadence).unwrap_or(chrono::Duration::MAX);
    if budget.reset_at > now && budget.reset_at <= now + cadence {
        can += (limit - reserve).max(0);
    }
    usize::try_from(can - 1).unwrap_or(0)
}

/// A check that read the room list and planned, not yet recorded.
#[derive(Debug)]
pub struct Check {
    trigger: CheckTrigger,
    report: RoomCheckReport,
    planned: Vec<CheckedRoom>,
    unseen_total: i64,
    limitation: Option<String>,
}

impl Check {
    /// The rooms to fetch, riskiest first, with what the room list said of each.
    pub fn planned(&self) -> &[CheckedRoom] {
        &self.planned
    }

    /// Records the check (a `room_checks` row) with what became of its plan: `job` fetches
    /// it (the sync whose step the check is, or the job a scheduled check started), or,
    /// with `busy`, another sync of all rooms still runs and the plan waits. Returns the
    /// report as recorded.
    pub async fn record(
        self,
        pool: &PgPool,
        settings: &RoomCheckSettings,
        job: Option<Uuid>,
        busy: bool,
    ) -> Result<RoomCheckReport, sqlx::Error> {
        let mut report = self.report;
        report.job_id = job;
        if busy {
            report.outcome = CheckOutcome::Busy;
            report.fetched = 0;
            report.deferred = report.changed;
            report.planned.clear();
        }
        let check_id = record(
            pool,
            self.trigger,
            settings,
            &report,
            self.unseen_total,
            self.limitation,
        )
        .await?;
        report.check_id = check_id;
        metrics::counter!("room_checks", "outcome" => report.outcome.as_str()).increment(1);
        metrics::counter!("rooms_deferred").increment(report.deferred as u64);
        metrics::gauge!("unseen_messages_max").set(report.unseen_max as f64);
        tracing::info!(
            trigger = self.trigger.as_str(),
            outcome = report.outcome.as_str(),
            listed = report.listed,
            registered = report.registered,
            changed = report.changed,
            fetched = report.fetched,
            deferred = report.deferred,
            unseen_max = report.unseen_max,
            allowance = report.allowance,
            "room check"
        );
        Ok(report)
    }
}

/// Runs one check through every active connection and plans its fetches: see the
/// module documentation. The room lists are read side by side; a connection whose list
/// fails is left out of this check (its error recorded on it), and the check is
/// recorded `failed` only when no list could be read. `meter`, when given, counts the
/// requests.
pub async fn run(
    pool: &PgPool,
    connections: &Connections,
    meter: Option<&RequestMeter>,
    settings: &RoomCheckSettings,
    trigger: CheckTrigger,
) -> Result<Check, CheckError> {
    let deadline = Instant::now() + settings.list_timeout;
    let targets = connections.active().await?;
    let reads = targets.iter().map(|target| async move {
        let client = connections.client(target.id).await?;
        let client = match meter {
            Some(meter) => client.counted_by(meter),
            None => client,
        };
        let listed = client.list_rooms(deadline).await?;
        Ok::<_, ChatworkError>((client, listed))
    });
    let results = futures_util::future::join_all(reads).await;
    let mut lists = Vec::new();
    let mut first_error = None;
    for (target, result) in targets.iter().zip(results) {
        match result {
            Ok((client, listed)) => lists.push((target.id, client, listed)),
            Err(error) => {
                tracing::warn!(connection = %target.id, error = %error, "room check: a connection's room list could not be read");
                connection_store::record_list_error(pool, target.id, &error.to_string()).await?;
                first_error.get_or_insert(error);
            }
        }
    }
    if lists.is_empty() {
        let error = first_error.unwrap_or_else(|| ChatworkError::Connection {
            message: "no active Chatwork connection: connect an account first".into(),
        });
        let check_id = record_failure(pool, trigger, settings, &error).await?;
        metrics::counter!("room_checks", "outcome" => CheckOutcome::Failed.as_str()).increment(1);
        tracing::warn!(error = %error, "room check: the room list could not be read");
        return Err(CheckError::Chatwork { check_id, error });
    }

    // One list of every room any connection sees; a room several see is judged once,
    // by the entry that has moved furthest.
    let mut rooms: Vec<Room> = lists
        .iter()
        .flat_map(|(_, _, listed)| listed.items.iter().cloned())
        .collect();
    super::one_entry_per_room(&mut rooms);
    let limitation = lists.iter().find_map(|(_, _, l)| l.limitation.clone());

    let seen = observe(pool, &rooms, settings.extras).await?;
    let mut members: std::collections::HashMap<i64, Vec<usize>> = Default::default();
    for (index, (id, _, listed)) in lists.iter().enumerate() {
        let ids: Vec<i64> = listed.items.iter().map(|r| r.room_id).collect();
        if !ids.is_empty() {
            connection_store::record_listing(pool, *id, &ids).await?;
        }
        for room_id in ids {
            members.entry(room_id).or_default().push(index);
        }
    }
    let mut candidates = seen.candidates;
    rank(&mut candidates);
    let now = Utc::now();
    // Each connection's budget: what it can serve before the next check.
    let mut budgets = Vec::with_capacity(lists.len());
    for (_, client, _) in &lists {
        budgets.push(match client.budget().state().await? {
            Some(state) if state.limit_known => Some(BudgetSeen {
                limit: state.limit_count,
                remaining: state.remaining,
                reset_at: state.reset_at,
            }),
            _ => None,
        });
    }
    let mut left: Vec<i64> = budgets
        .iter()
        .map(|budget| {
            // Only the schedule leaves the reserve: it is there for syncs people start.
            let reserve = match (trigger, budget) {
                (CheckTrigger::Schedule, Some(b)) => settings.reserve_of(i64::from(b.limit)),
                _ => 0,
            };
            allowance(*budget, now, settings.cadence, reserve) as i64
        })
        .collect();
    let total_allowance = left.iter().sum::<i64>() as usize;
    // Each room goes to the member with the most left; a scheduled check plans a room
    // only while a member has some left.
    let mut planned = Vec::new();
    for candidate in &candidates {
        let Some(best) = members.get(&candidate.room_id).and_then(|m| {
            m.iter()
                .copied()
                .max_by_key(|&i| (left[i], std::cmp::Reverse(i)))
        }) else {
            continue;
        };
        if trigger == CheckTrigger::Schedule && left[best] <= 0 {
            continue;
        }
        left[best] -= candidate.listed.requests();
        planned.push(CheckedRoom {
            connection: Some(lists[best].0),
            ..candidate.listed
        });
    }
    let outcome = if candidates.is_empty() {
        CheckOutcome::Current
    } else if planned.is_empty() {
        CheckOutcome::Deferred
    } else {
        CheckOutcome::Fetching
    };
    let report = RoomCheckReport {
        check_id: Uuid::nil(),
        outcome,
        listed: rooms.len(),
        registered: seen.registered,
        changed: candidates.len(),
        fetched: planned.len(),
        deferred: candidates.len() - planned.len(),
        unseen_max: seen.unseen_max,
        allowance: total_allowance,
        budget: combined(&budgets),
        job_id: None,
        planned: planned.iter().map(|c| c.room_id).collect(),
    };
    Ok(Check {
        trigger,
        report,
        planned,
        unseen_total: seen.unseen_total,
        limitation,
    })
}

/// The budgets of the connections a check read through, as one: their limits and what
/// they have left added up, and the earliest reset.
fn combined(budgets: &[Option<BudgetSeen>]) -> Option<BudgetSeen> {
    budgets.iter().flatten().copied().reduce(|a, b| BudgetSeen {
        limit: a.limit.saturating_add(b.limit),
        remaining: a.remaining.saturating_add(b.remaining),
        reset_at: a.reset_at.min(b.reset_at),
    })
}

/// What [`observe`] found.
struct Seen {
    registered: usize,
    candidates: Vec<Candidate>,
    unseen_max: i64,
    unseen_total: i64,
}

/// Registers new rooms, records what the list says on every listed room whose state
/// moved, and returns the active rooms that need a fetch; one statement.
///
/// Besides its messages, a room needs (as far as `extras` allows) its tasks fetched when
/// `task_num` differs from what its last tasks sync saw, its files when `file_num` does,
/// and its members when it was never asked for them; a room that moved also refreshes
/// its tasks and members once a day (a task's new deadline or a member's new
/// organization moves no count).
async fn observe(pool: &PgPool, rooms: &[Room], extras: RoomExtras) -> Result<Seen, sqlx::Error> {
    let columns = RoomColumns::of(rooms);
    let task_nums: Vec<i64> = rooms.iter().map(|r| r.task_num).collect();
    let file_nums: Vec<i64> = rooms.iter().map(|r| r.file_num).collect();
    // A data-modifying CTE does not see the rows its siblings insert: a new room is
    // judged from the list alone (it was never fetched), an existing one by its row.
    let rows = sqlx::query!(
        r#"WITH listed AS (
               SELECT t.room_id, t.name, t.room_type, nullif(t.icon_path, '') AS icon_path,
                      t.updated,
                      CASE WHEN t.updated > 0 THEN to_timestamp(t.updated) END AS updated_at,
                      least(greatest(t.message_num, 0), 2147483647)::int AS message_num,
                      least(greatest(t.task_num, 0), 2147483647)::int AS task_num,
                      least(greatest(t.file_num, 0), 2147483647)::int AS file_num
                 FROM UNNEST($1::int8[], $2::text[], $3::text[], $4::text[], $5::int8[], $6::int8[],
                             $7::int8[], $8::int8[])
                        AS t(room_id, name, room_type, icon_path, updated, message_num,
                             task_num, file_num)
           ), registered AS (
               INSERT INTO chatwork_rooms AS r (room_id, name, room_type, icon_path,
                                                chatwork_updated_at, message_count,
                                                description_stale, checked_at,
                                                checked_message_num, checked_last_update_time,
                                                checked_task_num, checked_file_num,
                                                fetch_wanted_since)
               SELECT l.room_id, l.name, l.room_type, l.icon_path, l.updated_at, l.message_num,
                      true, now(), l.message_num, l.updated_at, l.task_num, l.file_num,
                      CASE WHEN l.message_num > 0 OR l.updated > 0 THEN now() END
                 FROM listed l
               ON CONFLICT (room_id) DO NOTHING
            RETURNING r.room_id, r.message_count AS message_num, r.chatwork_updated_at AS updated_at,
                      r.fetch_wanted_since, r.checked_task_num AS task_num,
                      r.checked_file_num AS file_num
           ), judged AS (
               -- Messages webhooks stored since the last fetch count as seen; a room
               -- holding a message whose author a webhook could not name is fetched to
               -- learn the name.
               SELECT r.id, l.room_id, l.message_num, l.updated, l.updated_at,
                      l.task_num, l.file_num,
                      l.name, l.room_type, l.icon_path, r.name = '' AS placeholder,
                      r.is_active AND r.left_at IS NULL AS syncable,
                      cwsync_unseen(l.message_num, r.synced_message_num,
                                    r.webhook_messages_since_fetch) AS unseen,
                      (l.updated_at IS DISTINCT FROM r.synced_last_update_time
                       OR r.author_names_wanted_since IS NOT NULL) AS edited,
                      r.fetch_wanted_since, r.synced_task_num, r.synced_file_num,
                      r.tasks_synced_at, r.members_synced_at
                 FROM listed l JOIN chatwork_rooms r ON r.room_id = l.room_id
           ), decided AS (
               SELECT j.*, (j.unseen > 0 OR j.edited) AND j.syncable AS wanted,
                      CASE WHEN (j.unseen > 0 OR j.edited) AND j.syncable
                           THEN coalesce(j.fetch_wanted_since, now()) END AS wanted_since,
                      coalesce($9 AND j.syncable
                        AND (j.task_num <> coalesce(j.synced_task_num, 0)
                             OR ((j.unseen > 0 OR j.edited)
                                 AND j.tasks_synced_at < now() - interval '1 day')), false)
                        AS tasks_wanted,
                      coalesce($10 AND j.syncable
                        AND j.file_num <> coalesce(j.synced_file_num, 0), false)
                        AS files_wanted,
                      coalesce($11 AND j.syncable
                        AND (j.members_synced_at IS NULL
                             OR ((j.unseen > 0 OR j.edited)
                                 AND j.members_synced_at < now() - interval '1 day')), false)
                        AS members_wanted
                 FROM judged j
           ), checked AS (
               -- Only rooms whose state moved are written: a check every minute must not
               -- rewrite every room every minute.
               -- A room a webhook registered has no name yet: the list gives it one.
               UPDATE chatwork_rooms r
                  SET checked_at = now(), checked_message_num = d.message_num,
                      checked_last_update_time = d.updated_at,
                      checked_task_num = d.task_num, checked_file_num = d.file_num,
                      fetch_wanted_since = d.wanted_since,
                      name = CASE WHEN d.placeholder THEN d.name ELSE r.name END,
                      room_type = CASE WHEN d.placeholder THEN d.room_type ELSE r.room_type END,
                      icon_path = CASE WHEN d.placeholder THEN d.icon_path ELSE r.icon_path END
                 FROM decided d
                WHERE r.id = d.id
                  AND ((r.checked_message_num, r.checked_last_update_time, r.fetch_wanted_since,
                        r.checked_task_num, r.checked_file_num)
                       IS DISTINCT FROM (d.message_num, d.updated_at, d.wanted_since,
                                         d.task_num, d.file_num)
                       OR (d.placeholder AND d.name <> ''))
           )
           SELECT d.room_id AS "room_id!", d.unseen AS "unseen!", d.wanted AS "wanted!",
                  d.wanted_since AS "wanted_since?", d.updated AS "updated!",
                  d.message_num AS "message_num!", false AS "registered!",
                  d.task_num AS "task_num!", d.file_num AS "file_num!",
                  d.tasks_wanted AS "tasks_wanted!", d.files_wanted AS "files_wanted!",
                  d.members_wanted AS "members_wanted!"
             FROM decided d
           UNION ALL
           SELECT g.room_id, g.message_num, g.fetch_wanted_since IS NOT NULL,
                  g.fetch_wanted_since, l.updated, g.message_num, true,
                  l.task_num, l.file_num, $9 AND l.task_num > 0, $10 AND l.file_num > 0, $11
             FROM registered g JOIN listed l ON l.room_id = g.room_id"#,
        &columns.ids,
        &columns.names,
        &columns.types,
        &columns.icons,
        &columns.updated,
        &columns.counts,
        &task_nums,
        &file_nums,
        extras.tasks,
        extras.files,
        extras.members,
    )
    .fetch_all(pool)
    .await?;
    let now = Utc::now();
    let mut seen = Seen {
        registered: 0,
        candidates: Vec::new(),
        unseen_max: 0,
        unseen_total: 0,
    };
    for row in rows {
        if row.registered {
            seen.registered += 1;
        }
        let unseen = i64::from(row.unseen);
        seen.unseen_max = seen.unseen_max.max(unseen);
        seen.unseen_total += unseen;
        let listed = CheckedRoom {
            room_id: row.room_id,
            connection: None,
            last_update_time: row.updated,
            message_num: i64::from(row.message_num),
            messages: row.wanted,
            tasks: row.tasks_wanted.then_some(i64::from(row.task_num)),
            files: row.files_wanted.then_some(i64::from(row.file_num)),
            members: row.members_wanted,
        };
        if listed.requests() > 0 {
            seen.candidates.push(Candidate {
                room_id: row.room_id,
                unseen,
                waiting_since: row.wanted_since.unwrap_or(now),
                listed,
            });
        }
    }
    Ok(seen)
}

/// Writes the check's row; returns its id.
async fn record(
    pool: &PgPool,
    trigger: CheckTrigger,
    settings: &RoomCheckSettings,
    report: &RoomCheckReport,
    unseen_total: i64,
    limitation: Option<String>,
) -> Result<Uuid, sqlx::Error> {
    let count = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
    sqlx::query_scalar!(
        r#"INSERT INTO room_checks (trigger, outcome, rooms_listed, rooms_registered,
                                    rooms_changed, rooms_fetched, rooms_deferred, unseen_max,
                                    unseen_total, budget_limit, budget_remaining,
                                    budget_reset_at, allowance, job_id, message_limitation,
                                    cadence_secs)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
           RETURNING id"#,
        trigger.as_str(),
        report.outcome.as_str(),
        count(report.listed),
        count(report.registered),
        count(report.changed),
        count(report.fetched),
        count(report.deferred),
        i32::try_from(report.unseen_max).unwrap_or(i32::MAX),
        unseen_total,
        report.budget.map(|b| b.limit),
        report.budget.map(|b| b.remaining),
        report.budget.map(|b| b.reset_at),
        count(report.allowance),
        report.job_id,
        limitation,
        cadence_secs(settings),
    )
    .fetch_one(pool)
    .await
}

/// Writes the row of a check whose room list could not be read.
async fn record_failure(
    pool: &PgPool,
    trigger: CheckTrigger,
    settings: &RoomCheckSettings,
    error: &ChatworkError,
) -> Result<Uuid, sqlx::Error> {
    let message: String = error.to_string().chars().take(500).collect();
    sqlx::query_scalar!(
        r#"INSERT INTO room_checks (trigger, outcome, error, cadence_secs)
           VALUES ($1, 'failed', $2, $3)
           RETURNING id"#,
        trigger.as_str(),
        message,
        cadence_secs(settings),
    )
    .fetch_one(pool)
    .await
}

/// The cadence as stored: whole seconds, at least 1.
fn cadence_secs(settings: &RoomCheckSettings) -> i32 {
    i32::try_from(settings.cadence.as_secs().max(1)).unwrap_or(i32::MAX)
}

/// Deletes the checks older than `age` (the retention task), and the status page's other
/// history of that age (`activity_minutes`); returns how many checks.
pub async fn delete_old_checks(pool: &PgPool, age: Duration) -> Result<u64, sqlx::Error> {
    let done = sqlx::query!(
        "DELETE FROM room_checks WHERE checked_at < now() - make_interval(secs => $1::float8)",
        age.as_secs_f64(),
    )
    .execute(pool)
    .await?;
    sqlx::query!(
        "DELETE FROM activity_minutes WHERE minute < now() - make_interval(secs => $1::float8)",
        age.as_secs_f64(),
    )
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}

/// How many checks [`delete_old_checks`] would delete now (retention's dry run).
pub async fn count_old_checks(pool: &PgPool, age: Duration) -> Result<u64, sqlx::Error> {
    let count = sqlx::query_scalar!(
        r#"SELECT count(*) AS "count!" FROM room_checks
            WHERE checked_at < now() - make_interval(secs => $1::float8)"#,
        age.as_secs_f64(),
    )
    .fetch_one(pool)
    .await?;
    Ok(u64::try_from(count).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate(room_id: i64, unseen: i64, waiting_secs: i64) -> Candidate {
        Candidate {
            room_id,
            unseen,
            waiting_since: DateTime::from_timestamp(1_800_000_000 - waiting_secs, 0).unwrap(),
            listed: CheckedRoom::messages_only(room_id, 1, unseen),
        }
    }

    #[test]
    fn the_rooms_closest_to_the_limit_come_first_then_the_longest_waiting() {
        let mut rooms = vec![
            candidate(1, 3, 600),
            candidate(2, 90, 0),
            candidate(3, 0, 900),
            candidate(4, 140, 0),
            candidate(5, 3, 1200),
            candidate(6, 100, 60),
        ];
        rank(&mut rooms);
        let order: Vec<i64> = rooms.iter().map(|c| c.room_id).collect();
        // 6 (100) and 4 (140, past the limit) both count as 100; 6 waited longer.
        assert_eq!(order, [6, 4, 2, 5, 1, 3]);
    }

    #[test]
    fn the_reserve_is_a_share_of_the_window() {
        let settings = RoomCheckSettings::default();
        assert_eq!(settings.reserve_of(300), 30);
        assert_eq!(settings.reserve_of(12), 2, "rounded up");
        assert_eq!(settings.reserve_of(0), 0);
        let none = RoomCheckSettings {
            reserve_percent: 0,
            ..RoomCheckSettings::default()
        };
        assert_eq!(none.reserve_of(300), 0);
    }

    #[test]
    fn the_allowance_is_what_the_budget_serves_before_the_next_check() {
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let cadence = Duration::from_secs(60);
        let allowance = |budget, now, reserve| allowance(budget, now, cadence, reserve);
        let budget = |remaining, reset_in: i64| {
            Some(BudgetSeen {
                limit: 300,
                remaining,
                reset_at: now + chrono::Duration::seconds(reset_in),
            })
        };
        // The window resets in 4 minutes: only what is left, less the reserve and the
        // next check.
        assert_eq!(allowance(budget(299, 240), now, 30), 268);
        assert_eq!(allowance(budget(20, 240), now, 30), 0);
        // Without the reserve (a person's sync), all that is left.
        assert_eq!(allowance(budget(20, 240), now, 0), 19);
        // It resets before the next check: the next window's share counts too.
        assert_eq!(allowance(budget(20, 30), now, 30), 269);
        // A window whose reset passed is whole again.
        assert_eq!(allowance(budget(0, -5), now, 30), 269);
        assert_eq!(allowance(None, now, 30), 0);
    }

    #[test]
    fn extras_are_a_list_of_parts() {
        assert_eq!(
            RoomExtras::parse("tasks, files,members").unwrap(),
            RoomExtras::ALL
        );
        assert_eq!(RoomExtras::parse("none").unwrap(), RoomExtras::NONE);
        let tasks = RoomExtras::parse("tasks").unwrap();
        assert!(tasks.tasks && !tasks.files && !tasks.members);
        assert!(RoomExtras::parse("tasks,todo").is_err());
        let env = Env::from_pairs([("ROOM_EXTRAS", "files")]);
        let files = RoomCheckSettings::from_env(&env).unwrap().extras;
        assert!(files.files && !files.tasks);
        let unset = RoomCheckSettings::from_env(&Env::default()).unwrap();
        assert_eq!(unset.extras, RoomExtras::ALL);
        let room = CheckedRoom {
            tasks: Some(3),
            members: true,
            ..CheckedRoom::messages_only(1, 2, 3)
        };
        assert_eq!(room.requests(), 3);
        let stored = serde_json::to_value(room).unwrap();
        assert_eq!(stored["tasks"], 3);
        assert!(stored.get("messages").is_none(), "messages: the default");
        let old: CheckedRoom = serde_json::from_value(serde_json::json!(
            {"roomId": 1, "lastUpdateTime": 2, "messageNum": 3}
        ))
        .unwrap();
        assert_eq!(old, CheckedRoom::messages_only(1, 2, 3));
    }

    #[test]
    fn settings_read_the_environment() {
        let env = Env::from_pairs([
            ("ROOM_CHECK_EVERY_MINUTES", "2"),
            ("ROOM_CHECK_RESERVE_PERCENT", "20"),
        ]);
        let settings = RoomCheckSettings::from_env(&env).unwrap();
        assert_eq!(settings.cadence, Duration::from_secs(120));
        assert_eq!(settings.reserve_percent, 20);
        let zero = Env::from_pairs([("ROOM_CHECK_EVERY_MINUTES", "0")]);
        assert!(RoomCheckSettings::from_env(&zero).is_err());
        let all = Env::from_pairs([("ROOM_CHECK_RESERVE_PERCENT", "95")]);
        assert!(RoomCheckSettings::from_env(&all).is_err());
    }
}
