//! The outage breaker of one Chatwork token, shared through Postgres by every process
//! that uses the token (table `chatwork_breakers`, one row per SHA-256 of the token, like
//! the rate budget).
//!
//! When Chatwork is down (5xx answers, timeouts, no connection), every consumer retrying
//! every record on its own would keep sending requests that cannot succeed, each record
//! spending its retries and its invocation's time. The breaker stops that:
//!
//! - **Closed** (no row, or a row without `opened_at`): requests go out. A failed attempt
//!   counts one failure (one statement); failures count up while each comes within
//!   [`BreakerSettings::failure_window`] of the previous one, and a success seen after a
//!   failure sets the count back to zero.
//! - **Open** once [`BreakerSettings::threshold`] failures are counted: every process
//!   that learns it (from the statement that records its own failure, or at its next
//!   probe time) stops sending. A call then fails at once with
//!   [`ChatworkError::Unavailable`](super::ChatworkError::Unavailable) ("Chatwork is
//!   unavailable"), which is retryable: the record goes back to its queue instead of
//!   spending retries.
//! - **One probe per interval**: when `next_probe_at` has come, the first process to ask
//!   claims the probe by moving `next_probe_at` one [`BreakerSettings::probe_interval`]
//!   forward in the same statement, so across all processes at most one probe goes out
//!   per interval; a probe whose process dies frees the next interval by itself. A probe
//!   that fails keeps the breaker open; the first success (of a probe, or of a request
//!   that was already on its way) closes it.
//!
//! **No cost while healthy.** A process keeps its own view: it reads the shared row only
//! after a failure of its own (to count it) and while it knows the breaker open (once per
//! probe interval, at its next probe time), and writes a success only after it saw a
//! failure. So a healthy token adds no database round trip, and a process that has not
//! failed yet learns of an open breaker from its first failure: while Chatwork is down,
//! the requests sent are the failures that open the breaker, at most one more per
//! request already in flight or per process, and one probe per interval. A process that
//! knows the breaker open learns that it closed at its next probe time, at most one
//! interval late.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use secrecy::SecretString;
use sqlx::PgPool;
use tokio::time::Instant;

use super::budget::token_hash;

/// Tuning of the breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerSettings {
    /// Failures (each within `failure_window` of the one before) that open the breaker.
    pub threshold: u32,
    /// How long two failures may be apart and still count as repeated.
    pub failure_window: Duration,
    /// While open, one probe per this interval.
    pub probe_interval: Duration,
}

impl Default for BreakerSettings {
    /// 8 failures in a row (a call makes up to 4 attempts: two calls' worth), each within
    /// 2 minutes of the last; then one probe every 30 s.
    fn default() -> Self {
        Self {
            threshold: 8,
            failure_window: Duration::from_secs(120),
            probe_interval: Duration::from_secs(30),
        }
    }
}

/// What the breaker says about the next attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Send it; `probe`: it is the one probe of this interval (no retry if it fails).
    Send { probe: bool },
    /// Do not: Chatwork is unavailable; the next probe may go out at `until`.
    Open { until: DateTime<Utc> },
}

/// The shared row as it stands (for tests, tools and logs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BreakerState {
    pub failures: i32,
    pub opened_at: Option<DateTime<Utc>>,
    pub next_probe_at: Option<DateTime<Utc>>,
}

/// This process's view of the shared breaker.
#[derive(Debug, Default)]
struct View {
    /// Known open: no request (and no statement) before this instant.
    open_until: Option<(Instant, DateTime<Utc>)>,
    /// A failure was counted since the last success this process recorded.
    failed: bool,
}

/// The breaker of one token. Clones share this process's view.
#[derive(Clone)]
pub struct OutageBreaker {
    pool: PgPool,
    token_hash: [u8; 32],
    settings: BreakerSettings,
    view: Arc<Mutex<View>>,
}

impl std::fmt::Debug for OutageBreaker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutageBreaker")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// `secs` from now, as an instant of this process and a time to show.
fn after(secs: f64) -> (Instant, DateTime<Utc>) {
    let wait = Duration::from_secs_f64(secs.clamp(0.0, 86_400.0));
    (
        Instant::now() + wait,
        Utc::now() + chrono::Duration::from_std(wait).unwrap_or_default(),
    )
}

impl OutageBreaker {
    pub fn new(pool: PgPool, token: &SecretString, settings: BreakerSettings) -> Self {
        Self::keyed(pool, token_hash(token), settings)
    }

    /// The breaker whose row is keyed by `key` (a token's hash, or a connection's key).
    pub fn keyed(pool: PgPool, key: [u8; 32], settings: BreakerSettings) -> Self {
        Self {
            pool,
            token_hash: key,
            settings,
            view: Arc::default(),
        }
    }

    pub fn settings(&self) -> BreakerSettings {
        self.settings
    }

    fn view(&self) -> MutexGuard<'_, View> {
        // A plain value: a panic elsewhere cannot leave it inconsistent.
        self.view.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether the next attempt may go out. No statement unless this process knows the
    /// breaker open and its next probe time has come.
    pub async fn admit(&self) -> Result<Admission, sqlx::Error> {
        let known_open = self.view().open_until;
        match known_open {
            None => return Ok(Admission::Send { probe: false }),
            Some((at, until)) if Instant::now() < at => return Ok(Admission::Open { until }),
            Some(_) => {}
        }
        let interval = self.settings.probe_interval.as_secs_f64();
        // The UPDATE claims the probe when its time has come; the SELECT sees the row
        // as it was before (one snapshot), so `opened_at` tells whether it is open.
        let row = sqlx::query!(
            r#"
            WITH claim AS (
                UPDATE chatwork_breakers
                SET next_probe_at = now() + make_interval(secs => $2::float8),
                    updated_at = now()
                WHERE token_hash = $1 AND opened_at IS NOT NULL AND next_probe_at <= now()
                RETURNING next_probe_at
            )
            SELECT EXISTS (SELECT 1 FROM claim) AS "probe!",
                   b.opened_at IS NOT NULL AS "open!",
                   GREATEST(EXTRACT(EPOCH FROM b.next_probe_at - now()), 0)::float8 AS "wait"
            FROM (SELECT 1) AS one
            LEFT JOIN chatwork_breakers AS b ON b.token_hash = $1
            "#,
            &self.token_hash[..],
            interval,
        )
        .fetch_one(&self.pool)
        .await?;
        let mut view = self.view();
        if row.probe {
            // Until this probe's outcome is known, this process sends nothing else.
            view.open_until = Some(after(interval));
            return Ok(Admission::Send { probe: true });
        }
        if !row.open {
            // Another process's success closed it.
            view.open_until = None;
            return Ok(Admission::Send { probe: false });
        }
        // Another process holds this interval's probe.
        let (at, until) = after(row.wait.unwrap_or(interval));
        view.open_until = Some((at, until));
        Ok(Admission::Open { until })
    }

    /// Counts a failed attempt (5xx, timeout, no connection); returns when the next
    /// probe may go out if the breaker is (now) open.
    pub async fn failed(&self) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
        let threshold = i32::try_from(self.settings.threshold.max(1)).unwrap_or(i32::MAX);
        let window = self.settings.failure_window.as_secs_f64();
        let interval = self.settings.probe_interval.as_secs_f64();
        let row = sqlx::query!(
            r#"
            INSERT INTO chatwork_breakers AS b
                (token_hash, failures, last_failure_at, opened_at, next_probe_at)
            VALUES ($1, 1, now(),
                    CASE WHEN $2::int4 <= 1 THEN now() END,
                    CASE WHEN $2::int4 <= 1
                         THEN now() + make_interval(secs => $4::float8) END)
            ON CONFLICT (token_hash) DO UPDATE SET
                failures = CASE WHEN b.last_failure_at > now() - make_interval(secs => $3::float8)
                                THEN b.failures + 1 ELSE 1 END,
                last_failure_at = now(),
                -- Opening keeps its first time; an open breaker keeps its probe time (a
                -- failed probe moved it forward when it was claimed).
                opened_at = CASE
                    WHEN b.opened_at IS NOT NULL THEN b.opened_at
                    WHEN (CASE WHEN b.last_failure_at > now() - make_interval(secs => $3::float8)
                               THEN b.failures + 1 ELSE 1 END) >= $2::int4 THEN now()
                    END,
                next_probe_at = CASE
                    WHEN b.opened_at IS NOT NULL THEN b.next_probe_at
                    WHEN (CASE WHEN b.last_failure_at > now() - make_interval(secs => $3::float8)
                               THEN b.failures + 1 ELSE 1 END) >= $2::int4
                    THEN now() + make_interval(secs => $4::float8)
                    END,
                updated_at = now()
            RETURNING opened_at IS NOT NULL AS "open!",
                      GREATEST(EXTRACT(EPOCH FROM next_probe_at - now()), 0)::float8 AS "wait"
            "#,
            &self.token_hash[..],
            threshold,
            window,
            interval,
        )
        .fetch_one(&self.pool)
        .await?;
        let mut view = self.view();
        view.failed = true;
        if !row.open {
            view.open_until = None;
            return Ok(None);
        }
        let (at, until) = after(row.wait.unwrap_or(interval));
        view.open_until = Some((at, until));
        Ok(Some(until))
    }

    /// Chatwork answered (anything but a 5xx): closes the breaker and clears the count,
    /// with a statement only if this process saw a failure or an open breaker.
    pub async fn succeeded(&self) -> Result<(), sqlx::Error> {
        {
            let view = self.view();
            if !view.failed && view.open_until.is_none() {
                return Ok(());
            }
        }
        sqlx::query!(
            r#"
            UPDATE chatwork_breakers
            SET failures = 0, opened_at = NULL, next_probe_at = NULL, updated_at = now()
            WHERE token_hash = $1 AND (failures > 0 OR opened_at IS NOT NULL)
            "#,
            &self.token_hash[..],
        )
        .execute(&self.pool)
        .await?;
        *self.view() = View::default();
        Ok(())
    }

    /// The shared row as it stands, if there is one.
    pub async fn state(&self) -> Result<Option<BreakerState>, sqlx::Error> {
        sqlx::query_as!(
            BreakerState,
            r#"
            SELECT failures, opened_at, next_probe_at
            FROM chatwork_breakers WHERE token_hash = $1
            "#,
            &self.token_hash[..],
        )
        .fetch_optional(&self.pool)
        .await
    }
}
