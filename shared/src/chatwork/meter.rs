//! Per-job accounting of Chatwork requests, for clients shared by concurrent handlers.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::Serialize;

/// What the requests of one metered client cost.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestStats {
    /// HTTP requests sent to Chatwork, retries included (each took a unit of budget).
    pub requests: u64,
    /// Answers by status code (429s included).
    pub by_status: BTreeMap<u16, u64>,
    /// Attempts that got no answer within the timeout.
    pub timeouts: u64,
    /// Attempts that failed without an answer otherwise (connection refused or reset).
    pub network_errors: u64,
    /// Times a call waited for the rate budget (or a 429's reset) before sending.
    pub rate_limit_waits: u64,
    /// Total time spent in those waits, in milliseconds.
    pub rate_limit_wait_ms: u64,
}

impl RequestStats {
    /// How many answers had `status`.
    pub fn status_count(&self, status: u16) -> u64 {
        self.by_status.get(&status).copied().unwrap_or(0)
    }
}

/// A live view of a metered client's [`RequestStats`] (see
/// [`ChatworkClient::metered`](super::ChatworkClient::metered)).
#[derive(Debug, Clone, Default)]
pub struct RequestMeter {
    stats: Arc<Mutex<RequestStats>>,
}

impl RequestMeter {
    /// The counts so far.
    pub fn snapshot(&self) -> RequestStats {
        self.lock().clone()
    }

    fn lock(&self) -> MutexGuard<'_, RequestStats> {
        // Counters cannot be left inconsistent by a panic elsewhere; keep counting.
        self.stats.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn answered(&self, status: u16) {
        let mut stats = self.lock();
        stats.requests += 1;
        *stats.by_status.entry(status).or_default() += 1;
    }

    pub(crate) fn timed_out(&self) {
        let mut stats = self.lock();
        stats.requests += 1;
        stats.timeouts += 1;
    }

    pub(crate) fn failed(&self) {
        let mut stats = self.lock();
        stats.requests += 1;
        stats.network_errors += 1;
    }

    pub(crate) fn waited(&self, waits: u64, wait: Duration) {
        let mut stats = self.lock();
        stats.rate_limit_waits += waits;
        stats.rate_limit_wait_ms += wait.as_millis() as u64;
    }
}
