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
use super::plan::{self, Need, PlanSettings, Window};
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
    /// Checks one scheduled invocation runs, `cadence` apart (EventBridge fires at most
    /// once a minute; a cadence under a minute is several checks per invocation).
    pub per_invocation: u32,
    /// The share of every rate window, in percent, a scheduled check leaves to syncs
    /// people start over HTTP (rounded up to whole requests).
    pub reserve_percent: u32,
    /// The longest a check waits for Chatwork's room list.
    pub list_timeout: Duration,
    /// Chatwork's rate window (the plan paces each window's requests over its checks).
    pub window: Duration,
    /// Under a tight budget, the fewest unseen messages that get a room fetched before
    /// it is at risk or waiting past `freshness_bound`.
    pub gather_min: i64,
    /// The longest a room waits for its fetch under a tight budget.
    pub freshness_bound: Duration,
    /// Which of a room's other parts a check plans besides its messages.
    pub extras: RoomExtras,
}

impl Default for RoomCheckSettings {
    /// Every 15 s, one check per call (the deployed scheduler's four per minutely
    /// invocation come from [`RoomCheckSettings::from_env`]), 10 % of each window kept
    /// back, 30 s for the room list, Chatwork's 5-minute window, and under a tight budget
    /// rooms gather 50 messages for at most 2 minutes; messages only (what a program
    /// that builds its settings itself, a benchmark or a test of messages, measures:
    /// deployed functions and the local runner read [`from_env`](Self::from_env), where
    /// an unset `ROOM_EXTRAS` means every part).
    fn default() -> Self {
        Self {
            cadence: Duration::from_secs(15),
            per_invocation: 1,
            reserve_percent: 10,
            list_timeout: Duration::from_secs(30),
            window: Duration::from_secs(300),
            gather_min: 50,
            freshness_bound: Duration::from_secs(120),
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
    /// `ROOM_CHECK_EVERY_SECONDS` (5 to 60, dividing 60: checks per minute; default 15),
    /// or `ROOM_CHECK_EVERY_MINUTES` (the schedule's rate, one check per invocation),
    /// `ROOM_CHECK_RESERVE_PERCENT` (default 10, at most 90),
    /// `ROOM_CHECK_GATHER_MESSAGES` (default 50, 1 to 100) and
    /// `ROOM_CHECK_FRESHNESS_MINUTES` (default 2, at least 1) and `ROOM_EXTRAS` (default
    /// `tasks,files,members`).
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let defaults = Self::default();
        let invalid = |name: &'static str, reason: &str| ConfigError::Invalid {
            name,
            reason: reason.into(),
        };
        let minutes: Option<u64> =
            env.parse("ROOM_CHECK_EVERY_MINUTES", "a whole number of minutes")?;
        if minutes == Some(0) {
            return Err(invalid(
                "ROOM_CHECK_EVERY_MINUTES",
                "expected at least 1 minute",
            ));
        }
        let seconds: Option<u64> =
            env.parse("ROOM_CHECK_EVERY_SECONDS", "a whole number of seconds")?;
        if let Some(s) = seconds {
            if !(5..=60).contains(&s) || 60 % s != 0 {
                return Err(invalid(
                    "ROOM_CHECK_EVERY_SECONDS",
                    "expected 5 to 60 seconds, dividing a minute (5, 6, 10, 12, 15, 20, 30, 60)",
                ));
            }
            if minutes.is_some_and(|m| m > 1) {
                return Err(invalid(
                    "ROOM_CHECK_EVERY_SECONDS",
                    "checks under a minute apart need ROOM_CHECK_EVERY_MINUTES unset or 1",
                ));
            }
        }
        let reserve: Option<u32> =
            env.parse("ROOM_CHECK_RESERVE_PERCENT", "a whole number of percent")?;
        if reserve.is_some_and(|r| r > 90) {
            return Err(invalid(
                "ROOM_CHECK_RESERVE_PERCENT",
                "expected at most 90 (a check must be able to plan something)",
            ));
        }
        let gather: Option<i64> =
            env.parse("ROOM_CHECK_GATHER_MESSAGES", "a whole number of messages")?;
        if gather.is_some_and(|g| !(1..=MESSAGES_PER_REQUEST as i64).contains(&g)) {
            return Err(invalid(
                "ROOM_CHECK_GATHER_MESSAGES",
                "expected 1 to 100 (one fetch returns at most 100)",
            ));
        }
        let freshness: Option<u64> =
            env.parse("ROOM_CHECK_FRESHNESS_MINUTES", "a whole number of minutes")?;
        if freshness == Some(0) {
            return Err(invalid(
                "ROOM_CHECK_FRESHNESS_MINUTES",
                "expected at least 1 minute",
            ));
        }
        let extras = match env.get("ROOM_EXTRAS") {
            Some(raw) => RoomExtras::parse(raw).map_err(|reason| ConfigError::Invalid {
                name: "ROOM_EXTRAS",
                reason,
            })?,
            None => RoomExtras::ALL,
        };
        let (cadence, per_invocation) = match (seconds, minutes) {
            (Some(s), _) => (Duration::from_secs(s), (60 / s) as u32),
            (None, Some(m)) => (Duration::from_secs(m * 60), 1),
            (None, None) => (defaults.cadence, 4),
        };
        Ok(Self {
            cadence,
            per_invocation,
            reserve_percent: reserve.unwrap_or(defaults.reserve_percent),
            gather_min: gather.unwrap_or(defaults.gather_min),
            freshness_bound: freshness
                .map_or(defaults.freshness_bound, |m| Duration::from_secs(m * 60)),
            extras,
            ..defaults
        })
    }

    /// The plan's knobs, for a scheduled check or a person's sync.
    pub fn plan_settings(&self, trigger: CheckTrigger) -> PlanSettings {
        PlanSettings {
            cadence: self.cadence,
            window: self.window,
            reserve_percent: self.reserve_percent,
            gather_min: self.gather_min,
            freshness_bound: self.freshness_bound,
            scheduled: trigger == CheckTrigger::Schedule,
        }
    }

    /// The time constant of a room's observed rate: two rate windows.
    fn rate_time_constant(&self) -> Duration {
        self.window * 2
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

/// A room losing messages by a check's estimate: above Chatwork's ceiling.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LosingRoom {
    pub room_id: i64,
    /// Its observed rate, messages per minute.
    pub rate_per_min: f64,
    /// Messages a minute it loses (an estimate).
    pub loss_per_min: f64,
    /// Its rate passes 100 messages per check interval: only a webhook makes it whole.
    pub outruns_check: bool,
}

impl From<plan::Losing> for LosingRoom {
    fn from(l: plan::Losing) -> Self {
        Self {
            room_id: l.room_id,
            rate_per_min: l.rate_per_min,
            loss_per_min: l.loss_per_min,
            outruns_check: l.outruns_check,
        }
    }
}

/// What one check saw and did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
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
    /// More rooms needed a fetch than the scheduled check's share served: rooms that
    /// were neither at risk nor waiting long gathered messages for a later fetch.
    pub tight: bool,
    /// Requests per rate window the rooms' observed rates need (each fetch bringing
    /// 100) plus the checks, against what the budgets give after the reserve.
    pub demand_per_window: f64,
    pub supply_per_window: i64,
    /// Messages a minute the plan expects lost at these rates and this budget (0 below
    /// Chatwork's ceiling), and the rooms losing the most.
    pub loss_per_min: f64,
    pub losing_rooms: Vec<LosingRoom>,
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
        if self.loss_per_min > 0.0 {
            detail.push_str(&format!(
                "; above the ceiling: about {:.0} messages a minute lost in {} room(s)",
                self.loss_per_min,
                self.losing_rooms.len()
            ));
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

/// A room that needs a fetch, as the check saw it.
#[derive(Debug, Clone, PartialEq)]
struct Candidate {
    need: Need,
    listed: CheckedRoom,
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
        // Above Chatwork's ceiling: messages a minute the plan expects lost (alarmed).
        metrics::gauge!("predicted_lost_messages_per_min").set(report.loss_per_min);
        if report.loss_per_min > 0.0 {
            tracing::warn!(
                loss_per_min = report.loss_per_min,
                rooms = report.losing_rooms.len(),
                demand_per_window = report.demand_per_window,
                supply_per_window = report.supply_per_window,
                "room check: above Chatwork's ceiling, messages will be lost"
            );
        }
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
            tight = report.tight,
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

    let seen = observe(pool, &rooms, settings).await?;
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
    let windows: Vec<Option<Window>> = budgets
        .iter()
        .map(|b| {
            b.map(|b| Window {
                limit: i64::from(b.limit),
                remaining: i64::from(b.remaining),
                reset_at: b.reset_at,
            })
        })
        .collect();
    let needs: Vec<Need> = seen.candidates.iter().map(|c| c.need).collect();
    let plan = plan::plan(
        &needs,
        &members,
        &windows,
        now,
        &settings.plan_settings(trigger),
    );
    let listed_of: std::collections::HashMap<i64, CheckedRoom> = seen
        .candidates
        .iter()
        .map(|c| (c.need.room_id, c.listed))
        .collect();
    let planned: Vec<CheckedRoom> = plan
        .planned
        .iter()
        .map(|p| CheckedRoom {
            connection: Some(lists[p.connection].0),
            ..listed_of[&p.room_id]
        })
        .collect();
    let candidates = &seen.candidates;
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
        allowance: usize::try_from(plan.allowance).unwrap_or(0),
        tight: plan.tight,
        demand_per_window: plan.demand_per_window,
        supply_per_window: plan.supply_per_window,
        loss_per_min: plan.loss_per_min,
        losing_rooms: plan.losing.iter().copied().map(LosingRoom::from).collect(),
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
/// moved (and, when its `message_num` moved, a new sample of its rate), and returns the
/// active rooms that need a fetch; one statement.
///
/// Besides its messages, a room needs (as far as `settings.extras` allows) its tasks
/// fetched when `task_num` differs from what its last tasks sync saw, its files when
/// `file_num` does, and its members when it was never asked for them; a room that moved
/// also refreshes its tasks and members once a day (a task's new deadline or a member's
/// new organization moves no count).
async fn observe(
    pool: &PgPool,
    rooms: &[Room],
    settings: &RoomCheckSettings,
) -> Result<Seen, sqlx::Error> {
    let extras = settings.extras;
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
                                                fetch_wanted_since, rate_base_num, rate_base_at)
               SELECT l.room_id, l.name, l.room_type, l.icon_path, l.updated_at, l.message_num,
                      true, now(), l.message_num, l.updated_at, l.task_num, l.file_num,
                      CASE WHEN l.message_num > 0 OR l.updated > 0 THEN now() END,
                      l.message_num, now()
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
                      r.tasks_synced_at, r.members_synced_at,
                      r.rate_per_min::float8 AS old_rate, r.recent_rate_per_min::float8 AS old_recent,
                      r.rate_base_num, r.rate_base_at,
                      -- Minutes since the last sample (a room never sampled starts now).
                      greatest(extract(epoch FROM now() - coalesce(r.rate_base_at, now()))::float8, 0)
                          / 60 AS minutes
                 FROM listed l JOIN chatwork_rooms r ON r.room_id = l.room_id
           ), sampled AS (
               -- A sample when `message_num` moved: the messages since the last one over
               -- the minutes it spans, averaged in by the time it spans.
               SELECT j.*, s.moved,
                      CASE WHEN s.moved THEN s.sample * s.weight + j.old_rate * (1 - s.weight)
                           ELSE j.old_rate END AS rate,
                      CASE WHEN s.moved THEN s.recent_sample ELSE j.old_recent END AS recent,
                      CASE WHEN s.moved OR j.rate_base_num IS NULL THEN j.message_num
                           ELSE j.rate_base_num END AS base_num,
                      CASE WHEN s.moved OR j.rate_base_at IS NULL THEN now()
                           ELSE j.rate_base_at END AS base_at
                 FROM judged j
                 CROSS JOIN LATERAL (
                     SELECT j.rate_base_num IS NOT NULL AND j.message_num <> j.rate_base_num AS moved,
                            greatest(j.message_num - coalesce(j.rate_base_num, j.message_num), 0)::float8
                                AS moved_by,
                            1 - exp(-j.minutes / $12::float8) AS weight
                 ) m
                 CROSS JOIN LATERAL (
                     -- The average's sample spans the time since the last one; the recent
                     -- one at most a check interval: the check before saw the room
                     -- unchanged, so a burst in a quiet room shows at its full rate.
                     SELECT m.moved, m.weight,
                            m.moved_by / greatest(j.minutes, 1.0 / 60) AS sample,
                            m.moved_by / greatest(least(j.minutes, $13::float8), 1.0 / 60)
                                AS recent_sample
                 ) s
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
                 FROM sampled j
           ), checked AS (
               -- Only rooms whose state moved are written: a check every few seconds must
               -- not rewrite every room every time.
               -- A room a webhook registered has no name yet: the list gives it one.
               UPDATE chatwork_rooms r
                  SET checked_at = now(), checked_message_num = d.message_num,
                      checked_last_update_time = d.updated_at,
                      checked_task_num = d.task_num, checked_file_num = d.file_num,
                      fetch_wanted_since = d.wanted_since,
                      name = CASE WHEN d.placeholder THEN d.name ELSE r.name END,
                      room_type = CASE WHEN d.placeholder THEN d.room_type ELSE r.room_type END,
                      icon_path = CASE WHEN d.placeholder THEN d.icon_path ELSE r.icon_path END,
                      rate_per_min = least(d.rate, 1e6)::real,
                      recent_rate_per_min = least(d.recent, 1e6)::real,
                      rate_base_num = d.base_num, rate_base_at = d.base_at
                 FROM decided d
                WHERE r.id = d.id
                  AND ((r.checked_message_num, r.checked_last_update_time, r.fetch_wanted_since,
                        r.checked_task_num, r.checked_file_num, r.rate_base_num)
                       IS DISTINCT FROM (d.message_num, d.updated_at, d.wanted_since,
                                         d.task_num, d.file_num, d.base_num)
                       OR (d.placeholder AND d.name <> ''))
           )
           SELECT d.room_id AS "room_id!", d.unseen AS "unseen!", d.wanted AS "wanted!",
                  d.wanted_since AS "wanted_since?", d.updated AS "updated!",
                  d.message_num AS "message_num!", false AS "registered!",
                  d.task_num AS "task_num!", d.file_num AS "file_num!",
                  d.tasks_wanted AS "tasks_wanted!", d.files_wanted AS "files_wanted!",
                  d.members_wanted AS "members_wanted!",
                  d.rate AS "rate!", d.recent AS "recent!", d.base_at AS "base_at!"
             FROM decided d
           UNION ALL
           SELECT g.room_id, g.message_num, g.fetch_wanted_since IS NOT NULL,
                  g.fetch_wanted_since, l.updated, g.message_num, true,
                  l.task_num, l.file_num, $9 AND l.task_num > 0, $10 AND l.file_num > 0, $11,
                  0::float8, 0::float8, now()
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
        settings.rate_time_constant().as_secs_f64() / 60.0,
        settings.cadence.as_secs_f64() / 60.0,
    )
    .fetch_all(pool)
    .await?;
    let now = Utc::now();
    // The last sample counts while it is recent (a burst shows in it before the
    // average catches up); after two intervals without a move, the average alone.
    let recent_for = chrono::Duration::from_std(settings.cadence * 2).unwrap_or_default();
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
            let rate = if now - row.base_at <= recent_for {
                row.rate.max(row.recent)
            } else {
                row.rate
            };
            seen.candidates.push(Candidate {
                need: Need {
                    room_id: row.room_id,
                    unseen,
                    rate_per_min: rate.max(0.0),
                    waiting_since: row.wanted_since.unwrap_or(now),
                    requests: listed.requests(),
                },
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
                                    cadence_secs, tight, demand_per_window, supply_per_window,
                                    loss_per_min, losing_rooms)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17,
                   $18, $19, $20, $21)
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
        report.tight,
        report.demand_per_window as f32,
        i32::try_from(report.supply_per_window).unwrap_or(i32::MAX),
        report.loss_per_min as f32,
        serde_json::to_value(&report.losing_rooms).unwrap_or_default(),
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

    #[test]
    fn the_reserve_is_a_share_of_the_window() {
        let settings = RoomCheckSettings::default().plan_settings(CheckTrigger::Schedule);
        assert_eq!(settings.reserve_of(300), 30);
        assert_eq!(settings.reserve_of(12), 2, "rounded up");
        assert_eq!(settings.reserve_of(0), 0);
        let none = RoomCheckSettings {
            reserve_percent: 0,
            ..RoomCheckSettings::default()
        };
        assert_eq!(
            none.plan_settings(CheckTrigger::Schedule).reserve_of(300),
            0
        );
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

        // By default four checks a minute, one invocation each minute.
        let defaults = RoomCheckSettings::from_env(&Env::default()).unwrap();
        assert_eq!(defaults.cadence, Duration::from_secs(15));
        assert_eq!(defaults.per_invocation, 4);
        let env = Env::from_pairs([
            ("ROOM_CHECK_EVERY_SECONDS", "20"),
            ("ROOM_CHECK_GATHER_MESSAGES", "80"),
            ("ROOM_CHECK_FRESHNESS_MINUTES", "5"),
        ]);
        let settings = RoomCheckSettings::from_env(&env).unwrap();
        assert_eq!(settings.cadence, Duration::from_secs(20));
        assert_eq!(settings.per_invocation, 3);
        assert_eq!(settings.gather_min, 80);
        assert_eq!(settings.freshness_bound, Duration::from_secs(300));
        // A minute's schedule: one check per invocation.
        let minute = Env::from_pairs([("ROOM_CHECK_EVERY_MINUTES", "1")]);
        assert_eq!(
            RoomCheckSettings::from_env(&minute).unwrap().per_invocation,
            1
        );
        for (name, value) in [
            ("ROOM_CHECK_EVERY_SECONDS", "7"),
            ("ROOM_CHECK_EVERY_SECONDS", "90"),
            ("ROOM_CHECK_EVERY_SECONDS", "2"),
            ("ROOM_CHECK_GATHER_MESSAGES", "0"),
            ("ROOM_CHECK_GATHER_MESSAGES", "101"),
            ("ROOM_CHECK_FRESHNESS_MINUTES", "0"),
        ] {
            let env = Env::from_pairs([(name, value)]);
            assert!(RoomCheckSettings::from_env(&env).is_err(), "{name}={value}");
        }
        let both = Env::from_pairs([
            ("ROOM_CHECK_EVERY_SECONDS", "15"),
            ("ROOM_CHECK_EVERY_MINUTES", "5"),
        ]);
        assert!(RoomCheckSettings::from_env(&both).is_err());
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
}
