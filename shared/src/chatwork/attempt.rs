//! What one attempt of a call came to, and what the call does next.
//!
//! [`classify`] is the client's whole retry policy and nothing else: a pure function of
//! the attempt's [`Outcome`] and the call's [`Facts`] (the clocks, the deadline, the
//! outage breaker's verdict and what the two backoff schedules would give). The call's
//! loop in [`client`](super::client) does everything with effects around it: the
//! breaker, the budget, sending, metrics, logs and sleeping.

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::time::Instant;

use super::error::{self, ChatworkError};
use crate::retry::GiveUp;

/// One attempt's answer.
pub(super) struct Answer {
    pub(super) status: u16,
    pub(super) body: Vec<u8>,
    pub(super) limitation: Option<String>,
    /// A 2xx answer was larger than its endpoint's cap (this many bytes): `body` holds
    /// only its start.
    pub(super) over_cap: Option<usize>,
}

// Not derived: a body may echo the token, and a Debug line may reach a log.
impl std::fmt::Debug for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Answer")
            .field("status", &self.status)
            .field("body_bytes", &self.body.len())
            .field("limitation", &self.limitation)
            .field("over_cap", &self.over_cap)
            .finish()
    }
}

/// What one attempt came to.
#[derive(Debug)]
pub(super) enum Outcome {
    /// A 2xx answer.
    Success(Answer),
    /// A 429; `reset_in` is how long until the reset Chatwork reported, when its rate
    /// headers came with it.
    TooManyRequests { reset_in: Option<Duration> },
    /// An error status, a timeout or no connection, as the error the call would return.
    Failed(ChatworkError),
}

impl Outcome {
    /// The outcome of an answer to `endpoint`; an error status's body is scrubbed of
    /// `secret` (Chatwork may echo the token).
    pub(super) fn answered(
        answer: Answer,
        reset_in: Option<Duration>,
        endpoint: &str,
        secret: &str,
    ) -> Self {
        match answer.status {
            200..=299 => match answer.over_cap {
                None => Outcome::Success(answer),
                Some(limit) => Outcome::Failed(ChatworkError::TooLarge {
                    endpoint: endpoint.to_owned(),
                    limit,
                }),
            },
            429 => Outcome::TooManyRequests { reset_in },
            status => Outcome::Failed(ChatworkError::Status {
                status,
                endpoint: endpoint.to_owned(),
                errors: error::chatwork_errors(&answer.body, secret),
                body_excerpt: error::excerpt(&answer.body, secret),
            }),
        }
    }
}

/// What [`classify`] decides by besides the outcome, read just after the attempt.
#[derive(Debug, Clone)]
pub(super) struct Facts {
    /// Now, on the clock of the caller's deadline.
    pub(super) now: Instant,
    /// Now, on the wall clock (for the time a rate limit is reported until).
    pub(super) wall: DateTime<Utc>,
    pub(super) deadline: Instant,
    /// Added to a reset Chatwork reported (see [`ClientSettings`](super::ClientSettings)).
    pub(super) reset_margin: Duration,
    /// When this attempt's failure opened the outage breaker: the next probe's time.
    pub(super) breaker_opened: Option<DateTime<Utc>>,
    /// What the call's retry schedule would give for another attempt now.
    pub(super) retry_pause: Result<Duration, GiveUp>,
    /// The next pause of the current run of 429s that reported no reset.
    pub(super) rate_limited_pause: Duration,
}

/// What the call does after an attempt.
#[derive(Debug)]
pub(super) enum NextStep {
    /// Return the answer.
    Done(Answer),
    /// A 429 that is no failed attempt: Chatwork says the window is spent (the budget
    /// now holds it spent until the reported reset), so reserve again, but not before
    /// `pause` has passed. `backed_off`: the pause is the no-reset run's, which it takes.
    WaitForReset { pause: Duration, backed_off: bool },
    /// A 429 whose pause would end past the deadline: return
    /// [`ChatworkError::RateLimited`] until `until` at once, so that the caller can hand
    /// the work back to its queue.
    ResetPastDeadline {
        pause: Duration,
        until: DateTime<Utc>,
    },
    /// The failure opened the outage breaker: return [`ChatworkError::Unavailable`].
    BreakerOpened {
        until: DateTime<Utc>,
        failure: ChatworkError,
    },
    /// Try again after `pause` (taken from the retry schedule).
    Retry {
        pause: Duration,
        failure: ChatworkError,
    },
    /// Return the error.
    Fail(ChatworkError),
}

/// The step after an attempt that came to `outcome`.
pub(super) fn classify(outcome: Outcome, facts: &Facts) -> NextStep {
    match outcome {
        Outcome::Success(answer) => NextStep::Done(answer),
        Outcome::TooManyRequests { reset_in } => {
            // Only a 429 without a reset to wait for backs off on its own; a short
            // backoff before a known reset would only earn another 429.
            let (pause, backed_off) = match reset_in {
                Some(reset_in) => (reset_in + facts.reset_margin, false),
                None => (facts.rate_limited_pause, true),
            };
            if facts.now + pause > facts.deadline {
                NextStep::ResetPastDeadline {
                    pause,
                    until: facts.wall + pause,
                }
            } else {
                NextStep::WaitForReset { pause, backed_off }
            }
        }
        Outcome::Failed(failure) => {
            if let Some(until) = facts.breaker_opened {
                return NextStep::BreakerOpened { until, failure };
            }
            if !failure.is_retryable() {
                return NextStep::Fail(failure);
            }
            match facts.retry_pause {
                Ok(pause) => NextStep::Retry { pause, failure },
                Err(_) => NextStep::Fail(failure),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "0123456789abcdef0123456789abcdef";
    const ENDPOINT: &str = "GET /rooms/1/messages";

    fn facts() -> Facts {
        let now = Instant::now();
        Facts {
            now,
            wall: DateTime::from_timestamp(1_800_000_000, 0).unwrap(),
            deadline: now + Duration::from_secs(60),
            reset_margin: Duration::from_secs(1),
            breaker_opened: None,
            retry_pause: Ok(Duration::from_millis(250)),
            rate_limited_pause: Duration::from_millis(400),
        }
    }

    fn answer(status: u16, body: &str) -> Answer {
        Answer {
            status,
            body: body.as_bytes().to_vec(),
            limitation: None,
            over_cap: None,
        }
    }

    fn answered(status: u16, body: &str) -> Outcome {
        Outcome::answered(answer(status, body), None, ENDPOINT, TOKEN)
    }

    fn failure(status: u16) -> ChatworkError {
        ChatworkError::Status {
            status,
            endpoint: ENDPOINT.into(),
            errors: vec![],
            body_excerpt: String::new(),
        }
    }

    fn timeout() -> ChatworkError {
        ChatworkError::Timeout {
            endpoint: ENDPOINT.into(),
            after: Duration::from_secs(10),
            attempts: 1,
        }
    }

    fn network() -> ChatworkError {
        ChatworkError::Network {
            endpoint: ENDPOINT.into(),
            message: "connection refused".into(),
            attempts: 1,
        }
    }

    #[test]
    fn a_2xx_is_done_with_its_answer() {
        for status in [200, 204] {
            let outcome = answered(status, "[]");
            assert!(matches!(outcome, Outcome::Success(_)), "{status}");
            match classify(outcome, &facts()) {
                NextStep::Done(answer) => {
                    assert_eq!(answer.status, status);
                    assert_eq!(answer.body, b"[]");
                }
                other => panic!("{status}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_success_is_done_even_when_nothing_else_would_allow_another_attempt() {
        let facts = Facts {
            deadline: facts().now,
            retry_pause: Err(GiveUp::Attempts),
            ..facts()
        };
        assert!(matches!(
            classify(answered(200, "{}"), &facts),
            NextStep::Done(_)
        ));
    }

    #[test]
    fn a_429_with_a_reset_waits_for_it_and_its_margin() {
        let outcome = Outcome::answered(
            answer(429, ""),
            Some(Duration::from_secs(12)),
            ENDPOINT,
            TOKEN,
        );
        assert!(matches!(
            outcome,
            Outcome::TooManyRequests {
                reset_in: Some(reset)
            } if reset == Duration::from_secs(12)
        ));
        // The retry schedule has nothing to do with it: even one that gave up.
        let facts = Facts {
            retry_pause: Err(GiveUp::Attempts),
            ..facts()
        };
        match classify(outcome, &facts) {
            NextStep::WaitForReset { pause, backed_off } => {
                assert_eq!(pause, Duration::from_secs(13));
                assert!(!backed_off, "the no-reset run's pause is not taken");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_429_reporting_a_reset_already_past_waits_only_the_margin() {
        let outcome = Outcome::TooManyRequests {
            reset_in: Some(Duration::ZERO),
        };
        assert!(matches!(
            classify(outcome, &facts()),
            NextStep::WaitForReset { pause, backed_off: false } if pause == Duration::from_secs(1)
        ));
    }

    #[test]
    fn a_429_without_a_reset_backs_off_on_its_own_run() {
        let outcome = answered(429, r#"{"errors":["rate limit"]}"#);
        assert!(matches!(
            outcome,
            Outcome::TooManyRequests { reset_in: None }
        ));
        match classify(outcome, &facts()) {
            NextStep::WaitForReset { pause, backed_off } => {
                assert_eq!(pause, Duration::from_millis(400));
                assert!(backed_off);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_429_whose_wait_ends_past_the_deadline_gives_up_at_once() {
        let base = facts();
        let facts = Facts {
            deadline: base.now + Duration::from_secs(5),
            ..base
        };
        // The reset plus the margin is 6 s: past a deadline 5 s away.
        let outcome = Outcome::TooManyRequests {
            reset_in: Some(Duration::from_secs(5)),
        };
        match classify(outcome, &facts) {
            NextStep::ResetPastDeadline { pause, until } => {
                assert_eq!(pause, Duration::from_secs(6));
                assert_eq!(until, facts.wall + Duration::from_secs(6));
            }
            other => panic!("{other:?}"),
        }
        // Without a reset, the backoff's pause is held to the same deadline.
        let short = Facts {
            deadline: facts.now + Duration::from_millis(300),
            ..facts.clone()
        };
        assert!(matches!(
            classify(Outcome::TooManyRequests { reset_in: None }, &short),
            NextStep::ResetPastDeadline { pause, .. } if pause == Duration::from_millis(400)
        ));
        // A wait that ends exactly at the deadline still waits.
        let exact = Facts {
            deadline: facts.now + Duration::from_millis(400),
            ..facts
        };
        assert!(matches!(
            classify(Outcome::TooManyRequests { reset_in: None }, &exact),
            NextStep::WaitForReset { .. }
        ));
    }

    #[test]
    fn a_5xx_is_retried_after_the_schedules_pause_then_given_up() {
        for status in [500, 502, 503] {
            let outcome = answered(status, "<html>Service Unavailable</html>");
            match classify(outcome, &facts()) {
                NextStep::Retry { pause, failure } => {
                    assert_eq!(pause, Duration::from_millis(250));
                    assert_eq!(failure.status(), Some(status));
                }
                other => panic!("{status}: {other:?}"),
            }
        }
        for give_up in [GiveUp::Attempts, GiveUp::Elapsed, GiveUp::Deadline] {
            let facts = Facts {
                retry_pause: Err(give_up),
                ..facts()
            };
            match classify(answered(503, "down"), &facts) {
                NextStep::Fail(ChatworkError::Status {
                    status,
                    body_excerpt,
                    ..
                }) => {
                    assert_eq!(status, 503);
                    assert_eq!(body_excerpt, "down");
                }
                other => panic!("{give_up:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn network_errors_and_timeouts_are_retried_then_given_up() {
        for error in [network(), timeout()] {
            match classify(Outcome::Failed(error.clone()), &facts()) {
                NextStep::Retry { pause, failure } => {
                    assert_eq!(pause, Duration::from_millis(250));
                    assert_eq!(failure, error);
                }
                other => panic!("{other:?}"),
            }
            let spent = Facts {
                retry_pause: Err(GiveUp::Attempts),
                ..facts()
            };
            assert!(matches!(
                classify(Outcome::Failed(error.clone()), &spent),
                NextStep::Fail(e) if e == error
            ));
        }
    }

    #[test]
    fn a_2xx_over_its_cap_fails_at_once() {
        let over = Answer {
            over_cap: Some(8 << 20),
            ..answer(200, "[")
        };
        match classify(Outcome::answered(over, None, ENDPOINT, TOKEN), &facts()) {
            NextStep::Fail(ChatworkError::TooLarge { endpoint, limit }) => {
                assert_eq!((endpoint.as_str(), limit), (ENDPOINT, 8 << 20));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_4xx_other_than_429_fails_at_once() {
        for status in [400, 401, 403, 404] {
            let outcome = answered(status, r#"{"errors":["Invalid API token"]}"#);
            match classify(outcome, &facts()) {
                NextStep::Fail(ChatworkError::Status {
                    status: s, errors, ..
                }) => {
                    assert_eq!(s, status);
                    assert_eq!(errors, ["Invalid API token"]);
                }
                other => panic!("{status}: {other:?}"),
            }
        }
        // So is a redirect, which the client never follows.
        assert!(matches!(
            classify(answered(302, ""), &facts()),
            NextStep::Fail(ChatworkError::Status { status: 302, .. })
        ));
    }

    #[test]
    fn a_retry_that_would_pass_the_deadline_gives_up_with_the_failure() {
        let facts = Facts {
            retry_pause: Err(GiveUp::Deadline),
            ..facts()
        };
        for error in [failure(500), timeout(), network()] {
            assert!(matches!(
                classify(Outcome::Failed(error.clone()), &facts),
                NextStep::Fail(e) if e == error
            ));
        }
    }

    #[test]
    fn a_failure_that_opened_the_breaker_ends_the_call_whatever_the_schedule() {
        let until = DateTime::from_timestamp(1_800_000_060, 0).unwrap();
        let facts = Facts {
            breaker_opened: Some(until),
            ..facts()
        };
        for error in [failure(503), timeout(), network()] {
            match classify(Outcome::Failed(error.clone()), &facts) {
                NextStep::BreakerOpened { until: u, failure } => {
                    assert_eq!(u, until);
                    assert_eq!(failure, error);
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn the_token_reaches_neither_an_error_nor_a_debug_line() {
        let echoed = format!(r#"{{"errors":["Invalid API token: {TOKEN}"]}}"#);
        let outcome = answered(401, &echoed);
        let shown = format!("{outcome:?}");
        assert!(!shown.contains(TOKEN), "{shown}");
        let NextStep::Fail(error) = classify(outcome, &facts()) else {
            panic!("a 401 is permanent");
        };
        assert!(!error.to_string().contains(TOKEN), "{error}");
        assert!(!format!("{error:?}").contains(TOKEN), "{error:?}");
        assert!(error.to_string().contains("[redacted]"), "{error}");

        let plain = answered(500, &format!("oops {TOKEN}"));
        let NextStep::Retry { failure, .. } = classify(plain, &facts()) else {
            panic!("a 500 is retried");
        };
        assert!(!format!("{failure:?}").contains(TOKEN), "{failure:?}");

        // A 2xx body is not scrubbed (it is decoded, not shown), so its Debug omits it.
        let step = classify(answered(200, &format!("[\"{TOKEN}\"]")), &facts());
        let shown = format!("{step:?}");
        assert!(!shown.contains(TOKEN), "{shown}");
        assert!(shown.contains("body_bytes"), "{shown}");
    }
}
