//! `GET /api/chatwork/status/history`: what the status page's charts draw, for the last
//! hour (60 one-minute buckets) or the last day (96 buckets of 15 minutes): per bucket,
//! the room checks (budget used against the window's limit; rooms changed, fetched and
//! deferred; the most unseen messages in one room), the webhook deliveries by outcome and
//! the gaps found.
//!
//! Its cost does not grow with the number of rooms: a room check is one row of
//! `room_checks` however many rooms it saw, and `activity_minutes` has one row per
//! minute. A call is two index range scans, over at most [`MAX_CHECK_ROWS`] checks and
//! 1,440 minutes, grouped into at most 96 buckets: a few milliseconds at 50,000 rooms as
//! at 5, and an answer of a few kilobytes.

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::Admin;
use super::error::ErrorBody;
use super::extract::ApiQuery;
use super::{ApiError, AppState};

/// The checks read at most (newest first): a day of checks every minute, and as many
/// again started by syncs of all rooms.
pub const MAX_CHECK_ROWS: i64 = 3_000;

/// The time a history covers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum HistoryRange {
    /// The last hour, by minute.
    #[default]
    Hour,
    /// The last 24 hours, by 15 minutes.
    Day,
}

impl HistoryRange {
    fn span_secs(self) -> i32 {
        match self {
            Self::Hour => 3_600,
            Self::Day => 86_400,
        }
    }

    fn bucket_secs(self) -> i32 {
        match self {
            Self::Hour => 60,
            Self::Day => 900,
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct HistoryQuery {
    /// `hour` (the default) or `day`.
    #[param(inline)]
    range: Option<HistoryRange>,
}

/// One bucket of the history. A bucket without a room check has no budget figures.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HistoryBucket {
    /// Where the bucket starts; it lasts `bucketSecs`.
    pub start: DateTime<Utc>,
    /// Room checks in the bucket.
    pub checks: i64,
    /// The rate window's limit (requests per window) as the checks saw it.
    pub budget_limit: Option<i32>,
    /// The most requests of the window used, as a check saw it after its own request.
    pub budget_used: Option<i32>,
    /// Rooms with new or edited messages, summed over the bucket's checks.
    pub rooms_changed: i64,
    /// Rooms the checks sent to be fetched.
    pub rooms_fetched: i64,
    /// Changed rooms the checks left for later (the budget did not cover them).
    pub rooms_deferred: i64,
    /// The most unseen messages in one room at a check (100 or more: a gap).
    pub unseen_max: i32,
    /// Webhook deliveries whose message was stored (or was on file already).
    pub webhook_stored: i64,
    /// Signed deliveries with nothing to store.
    pub webhook_ignored: i64,
    /// Deliveries refused for a missing or wrong signature.
    pub webhook_refused: i64,
    /// Deliveries the database failed to store.
    pub webhook_failed: i64,
    /// Gaps found by fetches, and the messages they missed by estimate.
    pub gaps: i64,
    pub gap_missed: i64,
}

/// The history the status page's charts draw.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SyncHistory {
    pub range: HistoryRange,
    pub bucket_secs: i32,
    /// Every bucket of the range, oldest first (60 for an hour, 96 for a day), the last
    /// one holding now.
    pub buckets: Vec<HistoryBucket>,
}

/// The recent history of room checks, webhook deliveries and gaps, in buckets.
#[utoipa::path(
    get, path = "/api/chatwork/status/history", operation_id = "getSyncHistory", tag = "chatwork",
    params(HistoryQuery),
    responses(
        (status = 200, description = "The history, oldest bucket first", body = SyncHistory),
        (status = 400, description = "A query parameter is unknown or invalid", body = ErrorBody),
        (status = 401, description = "No identity", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
    )
)]
pub(crate) async fn get(
    State(state): State<AppState>,
    Admin(_caller): Admin,
    ApiQuery(query): ApiQuery<HistoryQuery>,
) -> Result<Json<SyncHistory>, ApiError> {
    let range = query.range.unwrap_or_default();
    let (bucket, span) = (range.bucket_secs(), range.span_secs());
    let buckets = sqlx::query_as!(
        HistoryBucket,
        r#"WITH bounds AS (
               SELECT date_bin(make_interval(secs => $1), now(), timestamptz 'epoch')
                      + make_interval(secs => $1) AS end_at
           ), buckets AS (
               SELECT generate_series(end_at - make_interval(secs => $2),
                                      end_at - make_interval(secs => $1),
                                      make_interval(secs => $1)) AS start
                 FROM bounds
           ), checks AS (
               SELECT date_bin(make_interval(secs => $1), c.checked_at, timestamptz 'epoch') AS start,
                      count(*) AS checks,
                      max(c.budget_limit) AS budget_limit,
                      max(c.budget_limit - c.budget_remaining) AS budget_used,
                      sum(c.rooms_changed) AS rooms_changed,
                      sum(c.rooms_fetched) AS rooms_fetched,
                      sum(c.rooms_deferred) AS rooms_deferred,
                      max(c.unseen_max) AS unseen_max
                 FROM (SELECT * FROM room_checks
                        WHERE checked_at >= (SELECT end_at FROM bounds) - make_interval(secs => $2)
                        ORDER BY checked_at DESC
                        LIMIT $3) c
                GROUP BY 1
           ), activity AS (
               SELECT date_bin(make_interval(secs => $1), a.minute, timestamptz 'epoch') AS start,
                      sum(a.webhook_stored) AS webhook_stored,
                      sum(a.webhook_ignored) AS webhook_ignored,
                      sum(a.webhook_refused) AS webhook_refused,
                      sum(a.webhook_failed) AS webhook_failed,
                      sum(a.gaps) AS gaps,
                      sum(a.gap_missed) AS gap_missed
                 FROM activity_minutes a
                WHERE a.minute >= (SELECT end_at FROM bounds) - make_interval(secs => $2)
                GROUP BY 1
           )
           SELECT b.start AS "start!",
                  coalesce(c.checks, 0) AS "checks!",
                  c.budget_limit,
                  c.budget_used,
                  coalesce(c.rooms_changed, 0)::int8 AS "rooms_changed!",
                  coalesce(c.rooms_fetched, 0)::int8 AS "rooms_fetched!",
                  coalesce(c.rooms_deferred, 0)::int8 AS "rooms_deferred!",
                  coalesce(c.unseen_max, 0) AS "unseen_max!",
                  coalesce(a.webhook_stored, 0)::int8 AS "webhook_stored!",
                  coalesce(a.webhook_ignored, 0)::int8 AS "webhook_ignored!",
                  coalesce(a.webhook_refused, 0)::int8 AS "webhook_refused!",
                  coalesce(a.webhook_failed, 0)::int8 AS "webhook_failed!",
                  coalesce(a.gaps, 0)::int8 AS "gaps!",
                  coalesce(a.gap_missed, 0)::int8 AS "gap_missed!"
             FROM buckets b
             LEFT JOIN checks c ON c.start = b.start
             LEFT JOIN activity a ON a.start = b.start
            ORDER BY b.start"#,
        f64::from(bucket),
        f64::from(span),
        MAX_CHECK_ROWS,
    )
    .fetch_all(&state.pool)
    .await?;
    Ok(Json(SyncHistory {
        range,
        bucket_secs: bucket,
        buckets,
    }))
}
