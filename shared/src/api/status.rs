//! `GET /api/chatwork/status`: what an operator needs to know about syncing: the last
//! room check (time, outcome, rooms changed, fetched and deferred), the token's budget as
//! it saw it, the rooms at risk of a gap, the gaps of the last 24 hours, the rooms
//! waiting for a fetch, the outage breaker (is Chatwork down?), and the free plan's
//! message limitation when Chatwork reported it.

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::auth::Admin;
use super::error::ErrorBody;
use super::{ApiError, AppState};
use crate::chatwork::MESSAGES_PER_REQUEST;
use crate::sync::check::CheckOutcome;

/// The cadence assumed before the first check.
const DEFAULT_CADENCE_SECS: f64 = 60.0;

/// A room is at risk when the messages it is expected to get between two checks (its
/// observed rate times the cadence) reach this share of the 100 one fetch returns, or
/// when it already has that many unseen.
const RISK_SHARE: f64 = 0.5;

/// The rooms at risk listed at most.
const MAX_AT_RISK: i64 = 50;

/// What the last room check saw and did.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LastCheck {
    pub id: Uuid,
    pub checked_at: DateTime<Utc>,
    /// `schedule` or `sync` (a messages sync of all rooms started over HTTP).
    pub trigger: String,
    /// `current` (nothing to fetch: no job), `fetching`, `deferred` (no budget to fetch
    /// now), `busy` (the previous fetches still run) or `failed`.
    #[schema(value_type = String)]
    pub outcome: CheckOutcome,
    pub rooms_listed: i32,
    /// Rooms new in Chatwork's list, registered by the check.
    pub rooms_registered: i32,
    /// Active rooms with new or edited messages.
    pub rooms_changed: i32,
    /// Rooms the check sent to be fetched.
    pub rooms_fetched: i32,
    /// Changed rooms left for the next check (the budget did not cover them).
    pub rooms_deferred: i32,
    /// The most unseen messages in one room (100 or more: a gap).
    pub unseen_max: i32,
    /// Fetches the budget allowed.
    pub allowance: i32,
    /// The job fetching the planned rooms.
    pub job_id: Option<Uuid>,
    /// Why the room list could not be read (a failed check).
    pub error: Option<String>,
}

/// Whether the rooms need more than Chatwork's budgets give, as the last check that read
/// a room list planned (docs/architecture.md, "The plan").
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CeilingView {
    pub checked_at: DateTime<Utc>,
    /// More rooms needed a fetch than the check's share of the budget: slow rooms
    /// gathered messages for a later fetch.
    pub tight: bool,
    /// Requests per rate window the rooms' observed rates need (each fetch bringing 100)
    /// plus the checks.
    pub demand_per_window: f64,
    /// Requests per rate window the connections' budgets give after the reserve.
    pub supply_per_window: i32,
    /// Messages are being lost: some room outruns the check, or the budget cannot serve
    /// every room before it passes 100 unseen.
    pub above_ceiling: bool,
    /// Messages a minute the plan expects lost (an estimate).
    pub loss_per_minute: f64,
    /// The rooms losing the most (at most 20).
    pub losing_rooms: Vec<LosingRoomView>,
}

/// A room losing messages by the last check's estimate.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LosingRoomView {
    pub room_id: i64,
    pub name: String,
    /// Its observed rate, messages per minute.
    pub rate_per_minute: f64,
    /// Messages a minute it loses.
    pub loss_per_minute: f64,
    /// Its rate passes 100 messages per check interval: only a Chatwork webhook on it
    /// makes it whole (README, "Chatwork webhooks").
    pub outruns_check: bool,
}

/// The token's budget as the last check that read it saw it.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BudgetView {
    /// Requests per window (Chatwork: 300 per 5 minutes).
    pub limit: i32,
    pub remaining: i32,
    pub reset_at: DateTime<Utc>,
    /// When the check saw it.
    pub seen_at: DateTime<Utc>,
}

/// The Chatwork outage breaker (README, "When Chatwork is down"): open while Chatwork
/// looks down, when requests stop but for one probe per interval and records fail fast
/// with "Chatwork unavailable".
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BreakerView {
    pub open: bool,
    /// Since when it is open; null while closed.
    pub opened_at: Option<DateTime<Utc>>,
    /// Failures (5xx, timeouts, no connection) in a row since the last success.
    pub failures: i32,
    pub last_failure_at: Option<DateTime<Utc>>,
    /// While open: when the next probe may be sent.
    pub next_probe_at: Option<DateTime<Utc>>,
}

/// A room whose rate puts it near the 100 messages one fetch returns.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RoomAtRisk {
    pub room_id: i64,
    pub name: String,
    /// Stored messages sent in the last 24 hours, per hour.
    pub messages_per_hour: f64,
    /// Messages expected between two checks at that rate (100 or more: gaps).
    pub expected_per_check: f64,
    /// Unseen messages as of the last check.
    pub unseen_messages: i32,
    /// When a Chatwork webhook last brought one of its messages; null when none did. A
    /// room at risk without one is a candidate for one of the account's 5 webhooks
    /// (README, "Chatwork webhooks").
    pub last_webhook_at: Option<DateTime<Utc>>,
}

/// A gap: a fetch found more new messages than one request returns.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GapView {
    pub room_id: i64,
    pub name: String,
    pub detected_at: DateTime<Utc>,
    /// How many messages could not be fetched (an estimate).
    pub missed_estimate: i32,
}

/// The free plan's limitation as Chatwork last reported it.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LimitationView {
    /// `chatwork-message-limitation-summary` (or `true` without a summary).
    pub summary: String,
    pub seen_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SyncStatus {
    /// Null before the first check.
    pub last_check: Option<LastCheck>,
    /// Seconds between two checks, as the last check planned with (60 before any).
    pub check_cadence_secs: f64,
    /// Checks in the last hour.
    pub checks_last_hour: i64,
    pub budget: Option<BudgetView>,
    /// The outage breaker of the Chatwork token (the open one first when more than one
    /// token was used); null when Chatwork never failed.
    pub chatwork_breaker: Option<BreakerView>,
    /// Active rooms waiting for a fetch, and since when the longest has waited.
    pub rooms_waiting: i64,
    pub oldest_wait_since: Option<DateTime<Utc>>,
    /// By expected messages per check, highest first.
    pub rooms_at_risk: Vec<RoomAtRisk>,
    /// Above Chatwork's ceiling or not, by the last check's plan; null before a check
    /// read a room list.
    pub ceiling: Option<CeilingView>,
    /// Newest first.
    pub gaps_last_24h: Vec<GapView>,
    /// Null when Chatwork never reported one (a paid plan).
    pub message_limitation: Option<LimitationView>,
    /// Each Chatwork connection: its status, rooms, budget and breaker, and its last
    /// room list (the bootstrap connection first).
    pub connections: Vec<ConnectionStatus>,
}

/// One connection as the status route shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionStatus {
    pub id: Uuid,
    pub account_name: Option<String>,
    pub bootstrap: bool,
    /// `active`, `reauth_required`, `revoked` or `disabled`.
    pub status: String,
    pub last_error: Option<String>,
    /// Rooms its account is a member of.
    pub rooms: i64,
    pub listed_at: Option<DateTime<Utc>>,
    pub list_error: Option<String>,
    /// Its rate window as the shared budget believes it; null before its first request.
    pub budget_limit: Option<i32>,
    pub budget_remaining: Option<i32>,
    pub budget_reset_at: Option<DateTime<Utc>>,
    /// Whether its outage breaker is open.
    pub breaker_open: bool,
}

/// The sync status: the last room check, the budget, rooms at risk and recent gaps.
#[utoipa::path(
    get, path = "/api/chatwork/status", operation_id = "getSyncStatus", tag = "chatwork",
    responses(
        (status = 200, description = "The sync status", body = SyncStatus),
        (status = 401, description = "No identity", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
    )
)]
pub(crate) async fn get(
    State(state): State<AppState>,
    Admin(_caller): Admin,
) -> Result<Json<SyncStatus>, ApiError> {
    let pool = &state.pool;
    let last = sqlx::query!(
        r#"SELECT id, checked_at, trigger, outcome, rooms_listed, rooms_registered,
                  rooms_changed, rooms_fetched, rooms_deferred, unseen_max, allowance, job_id,
                  error
             FROM room_checks ORDER BY checked_at DESC LIMIT 1"#
    )
    .fetch_optional(pool)
    .await?;
    let last_check = last.map(|c| LastCheck {
        id: c.id,
        checked_at: c.checked_at,
        trigger: c.trigger,
        outcome: CheckOutcome::parse(&c.outcome).unwrap_or(CheckOutcome::Failed),
        rooms_listed: c.rooms_listed,
        rooms_registered: c.rooms_registered,
        rooms_changed: c.rooms_changed,
        rooms_fetched: c.rooms_fetched,
        rooms_deferred: c.rooms_deferred,
        unseen_max: c.unseen_max,
        allowance: c.allowance,
        job_id: c.job_id,
        error: c.error,
    });
    let checks = sqlx::query!(
        r#"SELECT (SELECT count(*) FROM room_checks
                    WHERE checked_at > now() - interval '1 hour') AS "last_hour!",
                  (SELECT cadence_secs::float8 FROM room_checks
                    ORDER BY checked_at DESC LIMIT 1) AS cadence_secs"#
    )
    .fetch_one(pool)
    .await?;
    let cadence = checks
        .cadence_secs
        .filter(|s| *s > 0.0)
        .unwrap_or(DEFAULT_CADENCE_SECS);
    let budget = sqlx::query_as!(
        BudgetView,
        r#"SELECT budget_limit AS "limit!", budget_remaining AS "remaining!",
                  budget_reset_at AS "reset_at!", checked_at AS seen_at
             FROM room_checks
            WHERE budget_limit IS NOT NULL AND budget_remaining IS NOT NULL
              AND budget_reset_at IS NOT NULL
            ORDER BY checked_at DESC LIMIT 1"#
    )
    .fetch_optional(pool)
    .await?;
    let chatwork_breaker = sqlx::query_as!(
        BreakerView,
        r#"SELECT opened_at IS NOT NULL AS "open!", opened_at, failures, last_failure_at,
                  next_probe_at
             FROM chatwork_breakers
            ORDER BY opened_at IS NULL, updated_at DESC
            LIMIT 1"#
    )
    .fetch_optional(pool)
    .await?;
    let waiting = sqlx::query!(
        r#"SELECT count(*) AS "rooms!", min(fetch_wanted_since) AS oldest
             FROM chatwork_rooms
            WHERE fetch_wanted_since IS NOT NULL AND is_active AND left_at IS NULL"#
    )
    .fetch_one(pool)
    .await?;
    let risk = RISK_SHARE * MESSAGES_PER_REQUEST as f64;
    let rooms_at_risk = sqlx::query_as!(
        RoomAtRisk,
        r#"WITH rated AS (
               SELECT r.room_id, r.name,
                      (SELECT count(*) FROM messages m
                        WHERE m.chatwork_room_id = r.id
                          AND m.send_time > now() - interval '24 hours')::float8 / 24 AS per_hour,
                      cwsync_unseen(r.checked_message_num, r.synced_message_num,
                                    r.webhook_messages_since_fetch) AS unseen,
                      r.webhook_message_at
                 FROM chatwork_rooms r
                WHERE r.is_active AND r.left_at IS NULL
           )
           SELECT room_id AS "room_id!", name AS "name!", per_hour AS "messages_per_hour!",
                  per_hour * $1::float8 / 3600 AS "expected_per_check!",
                  unseen AS "unseen_messages!", webhook_message_at AS last_webhook_at
             FROM rated
            WHERE per_hour * $1::float8 / 3600 >= $2::float8 OR unseen >= $2::float8
            ORDER BY per_hour DESC, unseen DESC, room_id
            LIMIT $3"#,
        cadence,
        risk,
        MAX_AT_RISK,
    )
    .fetch_all(pool)
    .await?;
    let ceiling = ceiling(pool).await?;
    let gaps_last_24h = sqlx::query_as!(
        GapView,
        r#"SELECT room_id, name, gap_detected_at AS "detected_at!",
                  gap_missed_estimate AS "missed_estimate!"
             FROM chatwork_rooms
            WHERE gap_detected_at > now() - interval '24 hours'
            ORDER BY gap_detected_at DESC, room_id"#
    )
    .fetch_all(pool)
    .await?;
    let message_limitation = sqlx::query_as!(
        LimitationView,
        r#"SELECT summary AS "summary!", seen_at AS "seen_at!" FROM (
               SELECT message_limitation AS summary, message_limitation_at AS seen_at
                 FROM chatwork_rooms WHERE message_limitation IS NOT NULL
               UNION ALL
               SELECT message_limitation, checked_at FROM room_checks
                WHERE message_limitation IS NOT NULL
           ) seen
           ORDER BY seen_at DESC LIMIT 1"#
    )
    .fetch_optional(pool)
    .await?;
    let connections = sqlx::query_as!(
        ConnectionStatus,
        r#"SELECT c.id, c.account_name, c.bootstrap, c.status, c.last_error,
                  (SELECT count(*) FROM chatwork_room_connections m
                    WHERE m.connection_id = c.id AND m.refused_at IS NULL) AS "rooms!",
                  c.listed_at, c.list_error,
                  b.limit_count AS "budget_limit?",
                  CASE WHEN b.reset_at <= now() THEN b.limit_count ELSE b.remaining END
                      AS "budget_remaining?",
                  b.reset_at AS "budget_reset_at?",
                  coalesce(k.opened_at IS NOT NULL, false) AS "breaker_open!"
             FROM chatwork_connections c
             LEFT JOIN chatwork_rate_budgets b ON b.token_hash = c.budget_key
             LEFT JOIN chatwork_breakers k ON k.token_hash = c.budget_key
            ORDER BY c.bootstrap DESC, c.connected_at, c.id"#
    )
    .fetch_all(pool)
    .await?;
    Ok(Json(SyncStatus {
        connections,
        last_check,
        check_cadence_secs: cadence,
        checks_last_hour: checks.last_hour,
        budget,
        chatwork_breaker,
        rooms_waiting: waiting.rooms,
        oldest_wait_since: waiting.oldest,
        rooms_at_risk,
        ceiling,
        gaps_last_24h,
        message_limitation,
    }))
}

/// What the last check that read a room list planned against the ceiling, with the
/// losing rooms' names.
async fn ceiling(pool: &sqlx::PgPool) -> Result<Option<CeilingView>, sqlx::Error> {
    let Some(check) = sqlx::query!(
        r#"SELECT id, checked_at, tight, demand_per_window, supply_per_window, loss_per_min
             FROM room_checks
            WHERE outcome <> 'failed' AND demand_per_window IS NOT NULL
            ORDER BY checked_at DESC LIMIT 1"#
    )
    .fetch_optional(pool)
    .await?
    else {
        return Ok(None);
    };
    let losing_rooms = sqlx::query_as!(
        LosingRoomView,
        r#"SELECT (x->>'roomId')::int8 AS "room_id!", coalesce(r.name, '') AS "name!",
                  coalesce((x->>'ratePerMin')::float8, 0) AS "rate_per_minute!",
                  coalesce((x->>'lossPerMin')::float8, 0) AS "loss_per_minute!",
                  coalesce((x->>'outrunsCheck')::bool, false) AS "outruns_check!"
             FROM room_checks c
             CROSS JOIN LATERAL jsonb_array_elements(c.losing_rooms) WITH ORDINALITY AS e(x, n)
             LEFT JOIN chatwork_rooms r ON r.room_id = (x->>'roomId')::int8
            WHERE c.id = $1
            ORDER BY e.n"#,
        check.id
    )
    .fetch_all(pool)
    .await?;
    let loss = f64::from(check.loss_per_min);
    Ok(Some(CeilingView {
        checked_at: check.checked_at,
        tight: check.tight,
        demand_per_window: check.demand_per_window.map_or(0.0, f64::from),
        supply_per_window: check.supply_per_window.unwrap_or(0),
        above_ceiling: loss > 0.0,
        loss_per_minute: loss,
        losing_rooms,
    }))
}
