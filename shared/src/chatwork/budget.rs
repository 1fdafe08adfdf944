//! The rate budget of one Chatwork token, shared through Postgres by every process that
//! uses the token (table `chatwork_rate_budgets`, one row per SHA-256 of the token).
//!
//! The row is a model of Chatwork's current window: `limit_count`, `remaining` (what is
//! left after our own reservations), and `reset_at` (when we may count on a fresh window,
//! on the database's clock). Two operations change it, each atomic on its own (a single
//! `INSERT ... ON CONFLICT DO UPDATE` and a single `UPDATE`, which Postgres applies to the
//! newest version of the row under its row lock), so processes never race between a read
//! and a write. Both are SQL functions (`cwsync_budget_reserve`, `cwsync_budget_record`,
//! migration 0050): a statement of their own here, or a part of a statement the caller
//! runs anyway (a messages sync reserves in its item's first read and records in its
//! write, one round trip less each), with the same rules either way.
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
//! - a reservation never sent ([`RateBudget::release`]: taken ahead by a statement, then
//!   not needed) gives its unit back to the window it was taken from, if that is still
//!   the row's.
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
//!
//! **Bounds.** A reset further ahead than one window and a little
//! ([`max_reset_ahead`]) is cut to that before anything uses it
//! ([`RateHeaders::bounded`], logged and counted by the client): a spent window with a
//! reset years ahead would otherwise keep every request back, and with no request sent
//! no answer could correct it. For the same reason the reserve rolls over a row whose
//! `reset_at` lies more than two windows and a lease ahead (migration 0090), which no
//! bounded answer can leave: the budget never holds every request back for much longer
//! than a window without letting one through.

use std::time::Duration;

use aws_lc_rs::digest::{SHA256, digest};
use secrecy::{ExposeSecret, SecretString};
use sqlx::PgPool;

/// SHA-256 of the token: the key of its budget row. The token itself is never stored.
/// Computed at every cold start, with aws-lc (the crypto rustls already starts for the
/// client) rather than the `sha2` crate, whose own probe of the CPU's features would
/// cost the start more CPUID instructions, each a trap to the hypervisor in a VM
/// (BENCHMARKS.md, measurement 5).
pub fn token_hash(token: &SecretString) -> [u8; 32] {
    digest(&SHA256, token.expose_secret().as_bytes())
        .as_ref()
        .try_into()
        .expect("SHA-256 has 32 bytes")
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
        Duration::from_secs(
            self.reset
                .saturating_sub(self.answered_at())
                .clamp(0, 86_400) as u64,
        )
    }

    /// The headers with a reset no later than `max_ahead` after the answer (its `Date`, or
    /// this process's clock without one), and whether it had to be cut. A window cannot
    /// end later than one window after an answer, so a reset beyond is not believed: it
    /// would keep every request back with no answer to correct it (docs/architecture.md,
    /// "Chatwork's rate budget and outage breaker").
    pub fn bounded(self, max_ahead: Duration) -> (Self, bool) {
        let latest = self
            .answered_at()
            .saturating_add(max_ahead.as_secs().min(i64::MAX as u64) as i64);
        if self.reset > latest {
            (
                Self {
                    reset: latest,
                    ..self
                },
                true,
            )
        } else {
            (self, false)
        }
    }

    fn answered_at(&self) -> i64 {
        self.date.unwrap_or_else(|| chrono::Utc::now().timestamp())
    }
}

/// The furthest ahead of an answer a reset is believed, for a window of `window`: the
/// window and a tenth of it (at least 2 s) for the reset's rounding and the skew between
/// Chatwork's clocks.
pub fn max_reset_ahead(window: Duration) -> Duration {
    window + (window / 10).max(Duration::from_secs(2))
}

/// A unit of budget taken for one request. Hand it back to [`RateBudget::record`]
/// (which consumes it, so no answer is recorded twice).
#[derive(Debug, PartialEq, Eq)]
#[must_use = "a reservation must be recorded once its request is done"]
pub struct Grant {
    window_id: i64,
}

impl Grant {
    /// A reservation another statement took with `cwsync_budget_reserve`.
    pub(crate) fn taken(window_id: i64) -> Self {
        Self { window_id }
    }
}

/// The arguments of `cwsync_budget_reserve(token, lease, window)`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReserveArgs {
    pub token_hash: [u8; 32],
    pub lease: f64,
    pub window: f64,
}

/// The arguments of `cwsync_budget_record(token, window, limit, remaining, reset, date,
/// margin, refused, sent)`: one reservation's end.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RecordArgs {
    pub token_hash: [u8; 32],
    pub window_id: i64,
    pub limit: Option<i32>,
    pub remaining: Option<i32>,
    pub reset: Option<i64>,
    pub date: Option<i64>,
    pub margin: f64,
    pub refused: bool,
    pub sent: bool,
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
        Self::keyed(pool, token_hash(token), settings)
    }

    /// The database the budget lives in.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The budget whose row is keyed by `key` (a token's hash, or a connection's key).
    pub fn keyed(pool: PgPool, key: [u8; 32], settings: BudgetSettings) -> Self {
        Self {
            pool,
            token_hash: key,
            settings,
        }
    }

    /// Takes one unit of budget if there is one (one statement; see the module doc).
    pub async fn try_reserve(&self) -> Result<Reservation, sqlx::Error> {
        let args = self.reserve_args();
        let granted = sqlx::query_scalar!(
            r#"SELECT cwsync_budget_reserve($1, $2, $3) AS "window_id?""#,
            &args.token_hash[..],
            args.lease,
            args.window,
        )
        .fetch_one(&self.pool)
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
        self.end(grant, headers, true).await
    }

    /// Gives back a reservation whose request was never sent: its unit is whole again
    /// (when the window it was taken from is still the row's).
    pub async fn release(&self, grant: Grant) -> Result<(), sqlx::Error> {
        self.end(grant, None, false).await
    }

    async fn end(
        &self,
        grant: Grant,
        headers: Option<RateHeaders>,
        sent: bool,
    ) -> Result<(), sqlx::Error> {
        let args = self.record_args(&grant, headers, sent);
        sqlx::query!(
            "SELECT cwsync_budget_record($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            &args.token_hash[..],
            args.window_id,
            args.limit,
            args.remaining,
            args.reset,
            args.date,
            args.margin,
            args.refused,
            args.sent,
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(())
    }

    /// What a statement passes to `cwsync_budget_reserve` to take a unit itself.
    pub(crate) fn reserve_args(&self) -> ReserveArgs {
        ReserveArgs {
            token_hash: self.token_hash,
            lease: self.settings.lease.as_secs_f64(),
            window: self.settings.assumed_window.as_secs_f64(),
        }
    }

    /// What a statement passes to `cwsync_budget_record` to end `grant` itself.
    pub(crate) fn record_args(
        &self,
        grant: &Grant,
        headers: Option<RateHeaders>,
        sent: bool,
    ) -> RecordArgs {
        RecordArgs {
            token_hash: self.token_hash,
            window_id: grant.window_id,
            limit: headers.map(|h| h.limit),
            remaining: headers.map(|h| h.remaining),
            reset: headers.map(|h| h.reset),
            date: headers.and_then(|h| h.date),
            margin: self.settings.reset_margin.as_secs_f64(),
            refused: headers.is_some_and(|h| h.rate_limited),
            sent,
        }
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

    #[test]
    fn a_reset_beyond_one_window_is_cut_to_it() {
        let window = Duration::from_secs(300);
        assert_eq!(max_reset_ahead(window), Duration::from_secs(330));
        assert_eq!(
            max_reset_ahead(Duration::from_secs(4)),
            Duration::from_secs(6)
        );
        let date = 1_747_008_000;
        let answer = |reset| RateHeaders {
            limit: 300,
            remaining: 0,
            reset,
            date: Some(date),
            rate_limited: false,
        };
        // Chatwork's own window, rounded up a second: believed.
        assert_eq!(
            answer(date + 301).bounded(max_reset_ahead(window)),
            (answer(date + 301), false)
        );
        // Ten years ahead: one window and its slack after the answer.
        let (cut, was_cut) = answer(date + 315_360_000).bounded(max_reset_ahead(window));
        assert!(was_cut);
        assert_eq!(cut.reset, date + 330);
        assert_eq!(cut.reset_in(), Duration::from_secs(330));
        let (far, _) = answer(i64::MAX).bounded(Duration::MAX);
        assert_eq!(far.reset, i64::MAX);
    }
}
