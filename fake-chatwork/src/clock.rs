//! The wall clock as Chatwork's fields count it: epoch milliseconds and seconds. Its own
//! module because both the state (rate windows, send times) and the webhooks (event
//! times) read it, and neither should reach into the other for it.

use std::time::{SystemTime, UNIX_EPOCH};

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

pub(crate) fn now_secs() -> i64 {
    (now_ms() / 1000) as i64
}
