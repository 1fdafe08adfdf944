//! The one backoff schedule of cwsync's retry loops (the model client, the SQS sender, the
//! Chatwork client): exponential from an initial delay, doubling up to a cap, each pause
//! jittered to between half and all of its step so that callers failing together do not
//! retry together. The schedule is `backon`'s exponential backoff; the loops keep their
//! own sleeping, because each also waits for other things (a `retry-after`, a rate
//! window) and logs and counts its retries in its own terms.
//!
//! [`Backoff`] says how a loop retries; [`Backoff::start`] starts one call's
//! [`Retries`], which hands out the pause before each retry and says when to stop: after
//! `max_attempts` attempts, when the pause would end later than `max_elapsed` after the
//! start, or when it would end at or after the caller's deadline. A loop that also backs
//! off for another reason that costs no attempt (the Chatwork client's runs of 429s)
//! starts a schedule of its own for each run: `Backoff::new(initial, max).start()` and
//! [`Retries::next_delay`], which never runs out without `max_attempts`. A loop that
//! decides in a pure function of its own what to do next can look at both answers first
//! ([`Retries::peek_pause`], [`Retries::peek_delay`]) and take only the one it uses.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};
// Tokio's clock, as the callers' deadlines are: tests that pause time see the same.
use tokio::time::Instant;

/// How a retry loop backs off and when it stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The first retry's step; each next one doubles.
    pub initial: Duration,
    /// The largest step.
    pub max: Duration,
    /// Attempts in all, the first included; `None` for no limit.
    pub max_attempts: Option<u32>,
    /// No retry starts later than this after the first attempt; `None` for no limit.
    pub max_elapsed: Option<Duration>,
}

/// Why a loop stops retrying.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GiveUp {
    /// `max_attempts` attempts were made.
    Attempts,
    /// The next retry would start later than `max_elapsed` after the first attempt.
    Elapsed,
    /// The pause would not end before the caller's deadline.
    Deadline,
}

impl Backoff {
    /// Steps from `initial` doubling up to `max`, without a limit on attempts or time.
    pub const fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max,
            max_attempts: None,
            max_elapsed: None,
        }
    }

    /// The same with at most `attempts` attempts (the first included).
    pub const fn with_max_attempts(self, attempts: u32) -> Self {
        Self {
            max_attempts: Some(attempts),
            ..self
        }
    }

    /// The same, starting no retry later than `elapsed` after the first attempt.
    pub const fn with_max_elapsed(self, elapsed: Duration) -> Self {
        Self {
            max_elapsed: Some(elapsed),
            ..self
        }
    }

    /// The retries of one call whose first attempt starts now.
    pub fn start(&self) -> Retries {
        // backon adds a jitter of up to one step on top of the step: halving the steps
        // gives pauses between half and all of ours.
        let max = self.max / 2;
        let mut builder = ExponentialBuilder::new()
            .with_factor(2.0)
            .with_min_delay((self.initial / 2).min(max))
            .with_max_delay(max)
            .with_jitter();
        builder = match self.max_attempts {
            Some(attempts) => builder.with_max_times(attempts.saturating_sub(1) as usize),
            None => builder.without_max_times(),
        };
        let mut delays = builder.build();
        Retries {
            upcoming: delays.next(),
            delays,
            started: Instant::now(),
            max_elapsed: self.max_elapsed,
            attempts: 1,
        }
    }
}

/// One call's retries: call [`Retries::pause_before_next`] (or
/// [`Retries::next_delay`]) after each failed attempt.
#[derive(Debug)]
pub struct Retries {
    delays: ExponentialBackoff,
    /// The next pause, drawn ahead so that it can be looked at before it is taken.
    upcoming: Option<Duration>,
    started: Instant,
    max_elapsed: Option<Duration>,
    attempts: u32,
}

impl Retries {
    /// The attempts made so far: 1 before the first retry.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// The pause before the next attempt, counting it as made; `None` when the attempts
    /// are used up. For loops that check time themselves.
    pub fn next_delay(&mut self) -> Option<Duration> {
        let delay = self.upcoming?;
        self.upcoming = self.delays.next();
        self.attempts += 1;
        Some(delay)
    }

    /// What [`next_delay`](Self::next_delay) would give now, without taking it.
    pub fn peek_delay(&self) -> Option<Duration> {
        self.upcoming
    }

    /// The pause before the next attempt, or why there is none: the attempts are used
    /// up, the retry would start past `max_elapsed`, or the pause would not end before
    /// `deadline`.
    pub fn pause_before_next(&mut self, deadline: Instant) -> Result<Duration, GiveUp> {
        let verdict = self.peek_pause(deadline);
        self.next_delay();
        verdict
    }

    /// What [`pause_before_next`](Self::pause_before_next) would answer now, without
    /// taking the pause: take it with [`next_delay`](Self::next_delay) if it is used.
    pub fn peek_pause(&self, deadline: Instant) -> Result<Duration, GiveUp> {
        let pause = self.upcoming.ok_or(GiveUp::Attempts)?;
        if self
            .max_elapsed
            .is_some_and(|max| self.started.elapsed() + pause > max)
        {
            return Err(GiveUp::Elapsed);
        }
        if Instant::now() + pause >= deadline {
            return Err(GiveUp::Deadline);
        }
        Ok(pause)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAR: Duration = Duration::from_secs(3600);

    fn delays(backoff: Backoff) -> Vec<Duration> {
        let mut retries = backoff.start();
        std::iter::from_fn(|| retries.next_delay())
            .take(50)
            .collect()
    }

    #[test]
    fn each_pause_is_between_half_and_all_of_its_doubling_step() {
        let backoff = Backoff::new(Duration::from_millis(200), Duration::from_millis(6400));
        // Many draws, so that a jitter outside the bounds would show.
        for _ in 0..200 {
            for (n, pause) in delays(backoff).into_iter().enumerate() {
                let step = (Duration::from_millis(200) * 2u32.pow(n.min(5) as u32))
                    .min(Duration::from_millis(6400));
                assert!(
                    pause >= step / 2 && pause <= step,
                    "retry {}: {pause:?} is not within {:?}..={step:?}",
                    n + 1,
                    step / 2
                );
            }
        }
    }

    #[test]
    fn the_pauses_double_up_to_the_cap_and_stay_there() {
        let backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(16));
        let pauses = delays(backoff);
        assert_eq!(pauses.len(), 50, "without a limit the schedule goes on");
        assert!(pauses[0] <= Duration::from_secs(1));
        assert!(pauses[3] >= Duration::from_secs(4), "{:?}", pauses[3]);
        for pause in &pauses[4..] {
            assert!(
                *pause >= Duration::from_secs(8) && *pause <= Duration::from_secs(16),
                "{pause:?}"
            );
        }
        // The cap holds even for an initial step above it.
        let upside_down = Backoff::new(Duration::from_secs(10), Duration::from_secs(2));
        assert!(
            delays(upside_down)
                .iter()
                .all(|p| *p <= Duration::from_secs(2))
        );
    }

    #[test]
    fn max_attempts_counts_the_first_attempt() {
        let backoff = Backoff::new(Duration::from_millis(1), Duration::from_millis(4));
        let mut retries = backoff.with_max_attempts(4).start();
        assert_eq!(retries.attempts(), 1);
        for attempt in 2..=4 {
            assert!(retries.pause_before_next(Instant::now() + FAR).is_ok());
            assert_eq!(retries.attempts(), attempt);
        }
        assert_eq!(
            retries.pause_before_next(Instant::now() + FAR),
            Err(GiveUp::Attempts)
        );
        assert_eq!(retries.attempts(), 4);
        assert_eq!(delays(backoff.with_max_attempts(1)), Vec::<Duration>::new());
    }

    #[test]
    fn a_peek_takes_nothing_and_shows_the_pause_that_is_taken_next() {
        let backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        let mut retries = backoff.with_max_attempts(3).start();
        let far = Instant::now() + FAR;
        for attempt in 2..=3 {
            let peeked = retries.peek_pause(far).unwrap();
            assert_eq!(retries.peek_pause(far), Ok(peeked), "a peek is repeatable");
            assert_eq!(retries.peek_delay(), Some(peeked));
            assert_eq!(retries.attempts(), attempt - 1, "a peek is no attempt");
            assert_eq!(retries.pause_before_next(far), Ok(peeked));
        }
        assert_eq!(retries.peek_pause(far), Err(GiveUp::Attempts));
        assert_eq!(retries.peek_delay(), None);
        assert_eq!(retries.attempts(), 3);
        // A pause that would end past the deadline is shown as such, and still there.
        let mut retries = backoff.start();
        let soon = Instant::now() + Duration::from_millis(10);
        assert_eq!(retries.peek_pause(soon), Err(GiveUp::Deadline));
        assert!(retries.next_delay().is_some());
    }

    #[test]
    fn a_pause_past_max_elapsed_or_the_deadline_gives_up() {
        let backoff = Backoff::new(Duration::from_secs(2), Duration::from_secs(8));
        let mut retries = backoff.with_max_elapsed(Duration::from_millis(500)).start();
        assert_eq!(
            retries.pause_before_next(Instant::now() + FAR),
            Err(GiveUp::Elapsed)
        );
        let mut retries = backoff.with_max_elapsed(FAR).start();
        assert_eq!(
            retries.pause_before_next(Instant::now() + Duration::from_millis(500)),
            Err(GiveUp::Deadline)
        );
        let mut retries = backoff.start();
        let pause = retries.pause_before_next(Instant::now() + FAR).unwrap();
        assert!(pause >= Duration::from_secs(1) && pause <= Duration::from_secs(2));
    }
}
