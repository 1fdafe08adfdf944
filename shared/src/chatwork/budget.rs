//! The rate budget of one Chatwork token, shared through Postgres by every process that
//! uses the token (table `chatwork_rate_budgets`, one row per SHA-256 of the token).
//!
//! The row is a model of Chatwork's current window: `limit_count`, `remaining` (what is
//! left after our own reservations), and `reset_at` (when we may count on a fresh window,
//! on the database's clock). Two statements change it, each atomic on its own (a single
//! `INSERT ... ON CONFLICT DO UPDATE` and a single `UPDATE`, which Postgres applies to the
//! newest version of the row under its row lock), so processes never race between a read
//! and a write:
//!
//! **Reserve** ([`RateBudget::try_reserve`], before every request, retries included):
//! - no row yet: insert it as a *probe*: a limit of one request, until that request's
//!   response reports the real limit. Others wait for it (polling every ~100 ms).
//! - `reset_at` has passed: the window rolls over in the same statement: a new
//!   `window_id`, `remaining = limit - carried - 1`, `reset_at` = now + the assumed
//!   window (Chatwork's 5 minutes) until a response reports the real reset. `carried`
//!   is the number of reservations of the old window still in flight (only if one was
//!   granted within the last request timeout: older ones are finished or abandoned), as
//!   those may still land in Chatwork's new window. Because the roll-over is decided by
//!   time alone, a crashed process cannot hold budget past a reset: what it had in
//!   flight costs at most the one window after it.
//! - otherwise: take one unit if `remaining > 0`. When none is left the statement
//!   changes nothing and returns no row; the caller then learns how long until
//!   `reset_at` and waits (or gives up at its deadline).
//!
//! **Record** ([`RateBudget::record`], after every attempt, whatever its outcome) with the
//! `x-ratelimit-*` headers, the `Date` header and whether the answer was a 429. The
//! reservation's `window_id` says which of our windows it belongs to; Chatwork's
//! `x-ratelimit-reset` says which of Chatwork's windows counted it. Two rules come first,
//! because the row is only a belief (another program may use the token, Chatwork may
//! change or count its window differently from our model), while Chatwork's answers are
//! facts:
//!
//! - **A 429 is the truth** (`spent`): whatever the row believes, it is spent until the
//!   reset the 429 reports (converted with its `Date`, below), earlier or later than the
//!   row's. Only a 429 that is a late answer to a request of an older window and reports
//!   another Chatwork window than the row's is ignored (it says nothing about now).
//! - **A fresh answer says when the window resets** (`move`): an answer to a request of
//!   the row's current window (sent in it, answered now) whose reset names another
//!   Chatwork window than the row's, later *or earlier*, moves the row to that window at
//!   once: Chatwork's limit, `remaining = reported - (our other reservations in flight)`,
//!   its reset. Our other reservations still in flight become `carried` in a new
//!   `window_id`, so that their answers, which may still report the old window, are late
//!   and cannot move the row back.
//!
//! Otherwise:
//! - `adopt`: the first response of a window (or of the probe): take Chatwork's limit
//!   and reset; the probe takes `remaining` from the header too.
//! - `same`: a later response of the current window: `reset_at` moves earlier if this
//!   response's estimate is tighter.
//! - In both, `remaining` only ever goes down, and only when Chatwork reports less than
//!   we think is left (someone else uses the token, our roll-over came too early, or a
//!   crash lost reservations): then to `reported - (other reservations in flight) -
//!   carried`. Otherwise our own count stands: it already holds every reservation,
//!   while the header misses those still on their way, and subtracting those in flight
//!   from it would count the ones that already arrived twice.
//! - a late response of the previous window (`carried`): if Chatwork counted it in
//!   that old window (its reset is the old window's), its unit is given back to the
//!   current one.
//! - a response older than that changes nothing: an old response never overwrites a
//!   newer window's state.
//! - an attempt without headers (network error, timeout) only ends its reservation
//!   (and gives the unit back while probing, so the probe can be retried).
//!
//! **Clocks.** `reset_at` lives on the database's clock, the one clock every process
//! shares. Chatwork's reset is an absolute epoch second on Chatwork's clock, so it is
//! converted with Chatwork's own `Date` header: `reset_at = now() + (reset - date)`.
//! Since `date` is Chatwork's time rounded down and `now()` is read after the response
//! arrived, this estimate is never earlier than the true reset, whatever the skew between
//! Chatwork, the database and the process; of all the estimates a window's responses give,
//! the earliest (tightest) is kept. Then a margin (default 1 s) is added because the
//! reset header itself has one-second resolution and Chatwork does not document how it
//! rounds. Without a `Date` header the reset is read as an absolute time.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use sqlx::PgPool;

/// SHA-256 of the token: the key of its budget row. The token itself is never stored.
pub fn token_hash(token: &SecretString) -> [u8; 32] {
    Sha256::digest(token.expose_secret().as_bytes()).into()
}

/// What a response's headers said about Chatwork's window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateHeaders {
    /// `x-ratelimit-limit`
    pub limit: i32,
    /// `x-ratelimit-remaining`
    pub remaining: i32,
    /// `x-ratelimit-reset`, epoch seconds on Chatwork's clock.
    pub reset: i64,
    /// The `Date` header, epoch seconds on Chatwork's clock.
    pub date: Option<i64>,
    /// The answer was a 429: Chatwork refused the request because the window is spent.
    pub rate_limited: bool,
}

impl RateHeaders {
    /// Reads the rate-limit headers; `None` unless all three are present and sane.
    pub fn from_headers(headers: &reqwest::header::HeaderMap) -> Option<Self> {
        let number =
            |name: &str| -> Option<i64> { headers.get(name)?.to_str().ok()?.trim().parse().ok() };
        let limit = number("x-ratelimit-limit")?;
        let remaining = number("x-ratelimit-remaining")?;
        let reset = number("x-ratelimit-reset")?;
        if limit <= 0 || remaining < 0 || reset <= 0 {
            return None;
        }
        let date = headers
            .get(reqwest::header::DATE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| chrono::DateTime::parse_from_rfc2822(v).ok())
            .map(|d| d.timestamp());
        Some(Self {
            limit: limit.min(i64::from(i32::MAX)) as i32,
            remaining: remaining.min(limit) as i32,
            reset,
            date,
            rate_limited: false,
        })
    }

    /// The same headers of an answer with `status` (a 429 says the window is spent).
    pub fn answered_with(self, status: u16) -> Self {
        Self {
            rate_limited: status == 429,
            ..self
        }
    }

    /// How long after the answer Chatwork's window resets, read on Chatwork's own clock
    /// (`reset - Date`; against this process's clock when there is no `Date`).
    pub fn reset_in(&self) -> Duration {
        let now = self.date.unwrap_or_else(|| chrono::Utc::now().timestamp());
        Duration::from_secs(self.reset.saturating_sub(now).clamp(0, 86_400) as u64)
    }
}

/// A unit of budget taken for one request. Hand it back to [`RateBudget::record`]
/// (which consumes it, so no answer is recorded twice).
#[derive(Debug, PartialEq, Eq)]
#[must_use = "a reservation must be recorded once its request is done"]
pub struct Grant {
    window_id: i64,
}

/// The outcome of one reservation attempt.
#[derive(Debug, PartialEq, Eq)]
pub enum Reservation {
    Granted(Grant),
    /// Nothing left until the window resets in `wait`. `unconfirmed`: the window is not
    /// confirmed by a response yet (a probe is in flight), so it may open much sooner.
    Exhausted {
        wait: Duration,
        unconfirmed: bool,
    },
}

/// The budget row as it stands (for tests, tools and logs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetState {
    pub limit_count: i32,
    pub limit_known: bool,
    pub remaining: i32,
    pub reset_at: chrono::DateTime<chrono::Utc>,
    pub window_id: i64,
    pub server_reset: Option<i64>,
    pub in_flight: i32,
    pub carried: i32,
}

/// Tuning of the budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BudgetSettings {
    /// The longest a granted request can be in flight (the per-request timeout plus a
    /// little): how long a probe holds the budget, and how recent a grant must be for the
    /// old window's in-flight requests to be carried into the new one.
    pub lease: Duration,
    /// The window assumed after a roll-over until a response reports the real reset.
    pub assumed_window: Duration,
    /// Added to every reset estimate (the reset header has one-second resolution).
    pub reset_margin: Duration,
}

/// The shared budget of one token.
#[derive(Clone)]
pub struct RateBudget {
    pool: PgPool,
    token_hash: [u8; 32],
    settings: BudgetSettings,
}

impl std::fmt::Debug for RateBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateBudget")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl RateBudget {
    pub fn new(pool: PgPool, token: &SecretString, settings: BudgetSettings) -> Self {
        Self {
            pool,
            token_hash: token_hash(token),
            settings,
        }
    }

    /// Takes one unit of budget if there is one (one statement; see the module doc).
    pub async fn try_reserve(&self) -> Result<Reservation, sqlx::Error> {
        let lease = self.settings.lease.as_secs_f64();
        let window = self.settings.assumed_window.as_secs_f64();
        let granted = sqlx::query_scalar!(
            r#"
            INSERT INTO chatwork_rate_budgets AS b
                (token_hash, limit_count, remaining, reset_at, limit_known, window_id,
                 in_flight, carried, last_grant_at)
            -- The probe: one request until a response reports the real limit.
            VALUES ($1, 1, 0, now() + make_interval(secs => $2::float8), false, 1, 1, 0, now())
            ON CONFLICT (token_hash) DO UPDATE SET
                window_id = b.window_id + CASE WHEN b.reset_at <= now() THEN 1 ELSE 0 END,
                prev_server_reset = CASE WHEN b.reset_at <= now()
                    THEN b.server_reset ELSE b.prev_server_reset END,
                server_reset = CASE WHEN b.reset_at <= now() THEN NULL ELSE b.server_reset END,
                carried = CASE WHEN b.reset_at <= now()
                    THEN LEAST(
                        CASE WHEN b.last_grant_at > now() - make_interval(secs => $2::float8)
                             THEN b.in_flight ELSE 0 END,
                        b.limit_count - 1)
                    ELSE b.carried END,
                in_flight = CASE WHEN b.reset_at <= now() THEN 1 ELSE b.in_flight + 1 END,
                remaining = CASE WHEN b.reset_at <= now()
                    THEN b.limit_count - 1 - LEAST(
                        CASE WHEN b.last_grant_at > now() - make_interval(secs => $2::float8)
                             THEN b.in_flight ELSE 0 END,
                        b.limit_count - 1)
                    ELSE b.remaining - 1 END,
                reset_at = CASE WHEN b.reset_at > now() THEN b.reset_at
                    WHEN b.limit_known THEN now() + make_interval(secs => $3::float8)
                    ELSE now() + make_interval(secs => $2::float8) END,
                last_grant_at = now(),
                updated_at = now()
            WHERE b.reset_at <= now() OR b.remaining > 0
            RETURNING window_id
            "#,
            &self.token_hash[..],
            lease,
            window,
        )
        .fetch_optional(&self.pool)
        .await?;
        if let Some(window_id) = granted {
            return Ok(Reservation::Granted(Grant { window_id }));
        }
        // The row may have changed since the statement above (an answer recorded, a
        // unit given back): then there is no reason to wait.
        let row = sqlx::query!(
            r#"
            SELECT CASE WHEN remaining > 0 THEN 0
                        ELSE GREATEST(EXTRACT(EPOCH FROM reset_at - now()), 0)
                   END::float8 AS "wait!",
                   (server_reset IS NULL) AS "unconfirmed!"
            FROM chatwork_rate_budgets WHERE token_hash = $1
            "#,
            &self.token_hash[..],
        )
        .fetch_optional(&self.pool)
        .await?;
        Ok(match row {
            Some(row) => Reservation::Exhausted {
                wait: Duration::from_secs_f64(row.wait.clamp(0.0, 86_400.0)),
                unconfirmed: row.unconfirmed,
            },
            // The row vanished in between (someone deleted it): try again at once.
            None => Reservation::Exhausted {
                wait: Duration::ZERO,
                unconfirmed: true,
            },
        })
    }

    /// Ends a reservation and corrects the budget from the response's headers (`None`
    /// when the attempt got no usable headers). One statement; see the module doc.
    pub async fn record(
        &self,
        grant: Grant,
        headers: Option<RateHeaders>,
    ) -> Result<(), sqlx::Error> {
        let margin = self.settings.reset_margin.as_secs_f64();
        sqlx::query!(
            r#"
            WITH input AS (
                SELECT $2::int8 AS grant_window,
                       $3::int4 AS lim,
                       -- A 429 leaves nothing, whatever its header says.
                       CASE WHEN $8::bool THEN 0 ELSE $4::int4 END AS rem,
                       $5::int8 AS reset,
                       $8::bool AS refused,
                       -- When Chatwork's window ends, on the database's clock (module doc).
                       CASE WHEN $5::int8 IS NULL THEN NULL
                            WHEN $6::int8 IS NULL THEN to_timestamp($5::int8)
                            ELSE now() + make_interval(secs => ($5::int8 - $6::int8)::float8)
                       END + make_interval(secs => $7::float8) AS est
            )
            UPDATE chatwork_rate_budgets AS b
            SET (window_id, prev_server_reset, server_reset, limit_count, limit_known,
                 remaining, reset_at, in_flight, carried, updated_at) = (
                SELECT
                    CASE k.kind WHEN 'move' THEN b.window_id + 1 ELSE b.window_id END,
                    CASE k.kind WHEN 'move' THEN b.server_reset ELSE b.prev_server_reset END,
                    CASE WHEN k.kind IN ('adopt', 'move', 'spent') THEN i.reset
                         ELSE b.server_reset END,
                    CASE WHEN k.kind IN ('adopt', 'move', 'same', 'spent', 'spent_carried')
                         THEN GREATEST(i.lim, 1)
                         ELSE b.limit_count END,
                    CASE WHEN k.kind IN ('adopt', 'move', 'same', 'spent', 'spent_carried')
                         THEN true
                         ELSE b.limit_known END,
                    CASE k.kind
                        WHEN 'spent' THEN 0
                        WHEN 'spent_carried' THEN 0
                        WHEN 'adopt' THEN LEAST(
                            GREATEST(i.lim, 1),
                            CASE WHEN NOT b.limit_known OR i.rem < b.remaining
                                 THEN GREATEST(i.rem - (b.in_flight - 1) - b.carried, 0)
                                 ELSE b.remaining END)
                        WHEN 'move' THEN LEAST(
                            GREATEST(i.lim, 1),
                            GREATEST(i.rem - (b.in_flight - 1), 0))
                        WHEN 'same' THEN LEAST(
                            GREATEST(i.lim, 1),
                            CASE WHEN i.rem < b.remaining
                                 THEN GREATEST(i.rem - (b.in_flight - 1) - b.carried, 0)
                                 ELSE b.remaining END)
                        WHEN 'blind' THEN CASE WHEN b.limit_known THEN b.remaining
                                               ELSE LEAST(b.remaining + 1, b.limit_count) END
                        -- Only a unit that was taken for it can come back.
                        WHEN 'carried_old' THEN CASE WHEN b.carried > 0
                            THEN LEAST(b.remaining + 1, b.limit_count)
                            ELSE b.remaining END
                        ELSE b.remaining
                    END,
                    CASE WHEN k.kind IN ('adopt', 'move') THEN GREATEST(i.est, now())
                         WHEN k.kind = 'same' THEN LEAST(b.reset_at, GREATEST(i.est, now()))
                         -- Spent until the reset the 429 reports: Chatwork's word over the
                         -- row's, earlier or later, unless it confirms the row's window.
                         WHEN k.kind IN ('spent', 'spent_carried') THEN CASE
                             WHEN b.server_reset IS NOT NULL
                                  AND abs(i.reset - b.server_reset) <= 1
                             THEN LEAST(b.reset_at, GREATEST(i.est, now()))
                             ELSE GREATEST(i.est, now()) END
                         ELSE b.reset_at END,
                    CASE WHEN k.kind IN ('adopt', 'same', 'spent', 'blind')
                              THEN GREATEST(b.in_flight - 1, 0)
                         WHEN k.kind = 'move' THEN 0
                         ELSE b.in_flight END,
                    -- As many as `remaining` was lowered for (none after a 429).
                    CASE WHEN k.kind = 'move'
                              THEN LEAST(GREATEST(b.in_flight - 1, 0), GREATEST(i.rem, 0))
                         WHEN k.kind IN ('carried', 'carried_old', 'spent_carried')
                              THEN GREATEST(b.carried - 1, 0)
                         ELSE b.carried END,
                    now()
                FROM (SELECT CASE
                    -- Fresh: sent in the row's current window and answered now.
                    WHEN i.grant_window = b.window_id THEN CASE
                        WHEN i.reset IS NULL OR i.lim IS NULL OR i.rem IS NULL THEN 'blind'
                        -- One second of slack: a reset reported for the same window may be
                        -- rounded differently from one response to the next.
                        WHEN i.refused AND (b.server_reset IS NULL
                                            OR abs(i.reset - b.server_reset) <= 1) THEN 'spent'
                        WHEN b.server_reset IS NULL OR NOT b.limit_known THEN 'adopt'
                        -- Chatwork counts in another window than the row's, later or
                        -- earlier (its window changed, or the row was wrong): move there.
                        WHEN abs(i.reset - b.server_reset) > 1 THEN 'move'
                        ELSE 'same' END
                    -- Late: a request of the previous window, still on its way at the
                    -- roll-over. Only a 429 about the current window is news.
                    WHEN i.grant_window = b.window_id - 1 THEN CASE
                        WHEN i.refused AND b.server_reset IS NOT NULL
                             AND abs(i.reset - b.server_reset) <= 1 THEN 'spent_carried'
                        WHEN i.reset IS NOT NULL AND b.prev_server_reset IS NOT NULL
                             AND abs(i.reset - b.prev_server_reset) <= 1 THEN 'carried_old'
                        ELSE 'carried' END
                    ELSE 'old'
                END AS kind) AS k
            )
            FROM input AS i
            WHERE b.token_hash = $1
            "#,
            &self.token_hash[..],
            grant.window_id,
            headers.map(|h| h.limit),
            headers.map(|h| h.remaining),
            headers.map(|h| h.reset),
            headers.and_then(|h| h.date),
            margin,
            headers.is_some_and(|h| h.rate_limited),
        )
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The row as it stands, if there is one.
    pub async fn state(&self) -> Result<Option<BudgetState>, sqlx::Error> {
        sqlx::query_as!(
            BudgetState,
            r#"
            SELECT limit_count, limit_known, remaining, reset_at, window_id, server_reset,
                   in_flight, carried
            FROM chatwork_rate_budgets WHERE token_hash = $1
            "#,
            &self.token_hash[..],
        )
        .fetch_optional(&self.pool)
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_sha256_of_the_token() {
        let hash = token_hash(&SecretString::from("abc"));
        // SHA-256("abc"), FIPS 180-2 appendix B.1.
        assert_eq!(hash[..4], [0xba, 0x78, 0x16, 0xbf]);
        assert_eq!(hash[28..], [0xf2, 0x00, 0x15, 0xad]);
    }

    #[test]
    fn rate_headers_need_all_three() {
        use reqwest::header::{HeaderMap, HeaderValue};
        let mut headers = HeaderMap::new();
        headers.insert("x-ratelimit-limit", HeaderValue::from_static("300"));
        headers.insert("x-ratelimit-remaining", HeaderValue::from_static("299"));
        assert_eq!(RateHeaders::from_headers(&headers), None);
        headers.insert("x-ratelimit-reset", HeaderValue::from_static("1747008300"));
        headers.insert(
            "date",
            HeaderValue::from_static("Mon, 12 May 2025 00:00:00 GMT"),
        );
        assert_eq!(
            RateHeaders::from_headers(&headers),
            Some(RateHeaders {
                limit: 300,
                remaining: 299,
                reset: 1_747_008_300,
                date: Some(1_747_008_000),
                rate_limited: false,
            })
        );
        let refused = RateHeaders::from_headers(&headers)
            .unwrap()
            .answered_with(429);
        assert!(refused.rate_limited);
        assert_eq!(refused.reset_in(), Duration::from_secs(300));
        headers.insert("x-ratelimit-limit", HeaderValue::from_static("zero"));
        assert_eq!(RateHeaders::from_headers(&headers), None);
    }
}
