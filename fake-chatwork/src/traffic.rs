//! Traffic mode: an organization's message traffic played against the fake, with time
//! compressed, for the capture benchmark.
//!
//! [`TrafficPlan::organization`] draws, from a seed, what happens in `duration` of
//! simulated time in `rooms` rooms: most rooms get a few messages a day and some one every
//! few minutes (rates from a heavy-tailed Pareto distribution), one bot room posts at a
//! steady high rate, two rooms each get a burst of 150 messages within two minutes, and a
//! share of messages is edited a little later. [`FakeChatwork::play`] posts and edits
//! them on the fake `speed` times faster than simulated time, and records when each
//! message was posted, so a benchmark can tell which messages were stored and how late.
//!
//! [`FakeChatwork::play`]: crate::FakeChatwork::play

use std::time::{Duration, SystemTime};

use crate::model::Account;
use crate::server::{Shared, lock};

/// What kind of room a room of the plan is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoomKind {
    /// A rate from the heavy-tailed distribution.
    People,
    /// A steady high rate.
    Bot,
    /// A quiet room with one burst of messages.
    Burst,
}

/// One room of a plan and its rate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RoomProfile {
    pub room_id: i64,
    pub kind: RoomKind,
    /// Messages per simulated hour, bursts left out.
    pub per_hour: f64,
}

/// What happens at one moment of simulated time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrafficEvent {
    /// A new message.
    Post { room_id: i64 },
    /// An edit of the plan's post number `post` (its index among the posts).
    Edit { room_id: i64, post: usize },
}

/// An event at a simulated time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scheduled {
    pub at: Duration,
    pub event: TrafficEvent,
}

/// How an organization's traffic is drawn.
#[derive(Debug, Clone)]
pub struct TrafficSettings {
    /// Rooms (at least 3: the bot room and the two burst rooms come first).
    pub rooms: usize,
    pub first_room_id: i64,
    /// Simulated time.
    pub duration: Duration,
    pub seed: u64,
    /// The bot room's steady interval.
    pub bot_every: Duration,
    /// Messages of each burst, and the time they arrive in.
    pub burst_messages: usize,
    pub burst_within: Duration,
    /// The share of posts edited later.
    pub edit_share: f64,
    /// Each people room's drawn rate is multiplied by this (still capped at one message
    /// a minute): 1 is an ordinary organization, more a busier one.
    pub people_rate_factor: f64,
}

impl Default for TrafficSettings {
    /// 300 rooms for two hours; the bot posts every 6 s (10 a minute, 150 in 15
    /// minutes); bursts of 150 in two minutes; 5 % of posts edited.
    fn default() -> Self {
        Self {
            rooms: 300,
            first_room_id: 700_001,
            duration: Duration::from_secs(2 * 3600),
            seed: 16,
            bot_every: Duration::from_secs(6),
            burst_messages: 150,
            burst_within: Duration::from_secs(120),
            edit_share: 0.05,
            people_rate_factor: 1.0,
        }
    }
}

/// An organization's traffic, drawn once, played any number of times.
#[derive(Debug, Clone)]
pub struct TrafficPlan {
    pub profiles: Vec<RoomProfile>,
    /// Ordered by time.
    pub events: Vec<Scheduled>,
    pub duration: Duration,
}

/// The people rooms' rates: Pareto with this minimum (messages per day) and shape (a
/// heavy tail), capped at one message a minute.
const PARETO_MIN_PER_DAY: f64 = 2.0;
const PARETO_SHAPE: f64 = 1.1;
const MAX_PER_HOUR: f64 = 60.0;

impl TrafficPlan {
    /// Draws the traffic `settings` describe.
    pub fn organization(settings: &TrafficSettings) -> Self {
        let mut rng = fastrand::Rng::with_seed(settings.seed);
        let duration = settings.duration.as_secs_f64();
        let mut profiles = Vec::with_capacity(settings.rooms);
        let mut times: Vec<(f64, i64)> = Vec::new();
        for index in 0..settings.rooms.max(3) {
            let room_id = settings.first_room_id + index as i64;
            let (kind, per_hour) = match index {
                0 => (RoomKind::Bot, 3600.0 / settings.bot_every.as_secs_f64()),
                1 | 2 => (RoomKind::Burst, 0.5),
                _ => {
                    // Inverse transform sampling; 1 - u is in (0, 1].
                    let u = 1.0 - rng.f64();
                    let per_day = PARETO_MIN_PER_DAY / u.powf(1.0 / PARETO_SHAPE);
                    (
                        RoomKind::People,
                        (per_day * settings.people_rate_factor / 24.0).min(MAX_PER_HOUR),
                    )
                }
            };
            profiles.push(RoomProfile {
                room_id,
                kind,
                per_hour,
            });
            if kind == RoomKind::Bot {
                let every = settings.bot_every.as_secs_f64();
                let mut t = every * rng.f64();
                while t < duration {
                    times.push((t, room_id));
                    t += every;
                }
            } else {
                // Poisson arrivals: exponential gaps.
                let rate = per_hour / 3600.0;
                let mut t = -(1.0 - rng.f64()).ln() / rate;
                while t < duration {
                    times.push((t, room_id));
                    t += -(1.0 - rng.f64()).ln() / rate;
                }
            }
            if kind == RoomKind::Burst {
                // The first burst a quarter in, the second past the middle.
                let start = duration * if index == 1 { 0.25 } else { 0.6 };
                let within = settings.burst_within.as_secs_f64();
                for i in 0..settings.burst_messages {
                    let t = start + within * i as f64 / settings.burst_messages as f64;
                    times.push((t, room_id));
                }
            }
        }
        times.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        let mut events: Vec<Scheduled> = Vec::with_capacity(times.len());
        for (post, &(t, room_id)) in times.iter().enumerate() {
            events.push(Scheduled {
                at: Duration::from_secs_f64(t),
                event: TrafficEvent::Post { room_id },
            });
            if rng.f64() < settings.edit_share {
                // Edited a few minutes later (exponential, 5 minutes on average).
                let later = t - 300.0 * (1.0 - rng.f64()).ln();
                if later < duration {
                    events.push(Scheduled {
                        at: Duration::from_secs_f64(later),
                        event: TrafficEvent::Edit { room_id, post },
                    });
                }
            }
        }
        events.sort_by_key(|e| e.at);
        Self {
            profiles,
            events,
            duration: settings.duration,
        }
    }

    /// The posts of the plan.
    pub fn posts(&self) -> usize {
        self.events
            .iter()
            .filter(|e| matches!(e.event, TrafficEvent::Post { .. }))
            .count()
    }
}

/// A message the playback posted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Posted {
    pub room_id: i64,
    pub message_id: String,
    /// When it was posted (the real clock).
    pub at: SystemTime,
}

/// What a playback did.
#[derive(Debug, Clone, Default)]
pub struct PlaybackRecord {
    pub posted: Vec<Posted>,
    pub edits: usize,
}

/// Plays `plan` on the fake's state, `speed` times faster than simulated time.
pub(crate) async fn play(shared: Shared, plan: TrafficPlan, speed: f64) -> PlaybackRecord {
    let author = Account::new(3003, "高橋 一郎");
    let start = tokio::time::Instant::now();
    let mut record = PlaybackRecord::default();
    // The message id of each post, by its index among the posts.
    let mut ids: Vec<Option<String>> = Vec::new();
    for scheduled in plan.events {
        let due = start + scheduled.at.div_f64(speed.max(1e-9));
        tokio::time::sleep_until(due).await;
        let mut state = lock(&shared);
        match scheduled.event {
            TrafficEvent::Post { room_id } => {
                let body = format!("traffic {} in room {room_id}", ids.len());
                let id = state.post(room_id, author.clone(), body, None);
                if let Some(id) = &id {
                    record.posted.push(Posted {
                        room_id,
                        message_id: id.clone(),
                        at: SystemTime::now(),
                    });
                }
                ids.push(id);
            }
            TrafficEvent::Edit { room_id, post } => {
                if let Some(Some(id)) = ids.get(post)
                    && state.edit(room_id, id, format!("edited: traffic {post}"))
                {
                    record.edits += 1;
                }
            }
        }
    }
    record
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plan_is_heavy_tailed_with_a_bot_and_two_bursts() {
        let settings = TrafficSettings::default();
        let plan = TrafficPlan::organization(&settings);
        assert_eq!(plan.profiles.len(), 300);
        let posts = |room_id: i64| {
            plan.events
                .iter()
                .filter(|e| e.event == TrafficEvent::Post { room_id })
                .count()
        };
        // The bot: one every 6 s for two hours.
        assert_eq!(posts(700_001), 1200);
        assert!(posts(700_002) >= 150 && posts(700_003) >= 150);
        // Most rooms are quiet, a few are busy.
        let mut rates: Vec<f64> = plan.profiles[3..].iter().map(|p| p.per_hour).collect();
        rates.sort_by(f64::total_cmp);
        assert!(rates[rates.len() / 2] < 0.5, "the median room: a few a day");
        assert!(
            rates[rates.len() - 1] > 5.0,
            "the busiest: every few minutes"
        );
        assert!(plan.events.windows(2).all(|w| w[0].at <= w[1].at));
        assert!(plan.events.iter().all(|e| e.at < settings.duration));
        // The same seed draws the same plan.
        assert_eq!(TrafficPlan::organization(&settings).events, plan.events);
    }

    #[test]
    fn a_rate_factor_makes_the_people_rooms_busier_up_to_one_message_a_minute() {
        let settings = TrafficSettings::default();
        let plan = TrafficPlan::organization(&settings);
        let busier = TrafficPlan::organization(&TrafficSettings {
            people_rate_factor: 40.0,
            ..settings.clone()
        });
        // The first people room's rate is drawn before any arrival (later draws follow
        // the arrivals, so the rooms after it differ).
        let (one, forty) = (plan.profiles[3], busier.profiles[3]);
        assert_eq!(one.kind, RoomKind::People);
        let expected = (one.per_hour * 40.0).min(MAX_PER_HOUR);
        assert!(
            (forty.per_hour - expected).abs() < 1e-9,
            "{one:?} {forty:?}"
        );
        assert!(
            busier
                .profiles
                .iter()
                .all(|p| p.kind != RoomKind::People || p.per_hour <= MAX_PER_HOUR)
        );
        // The bot and the bursts are as they were.
        assert_eq!(plan.profiles[..3], busier.profiles[..3]);
        // Many more posts in the people rooms.
        let people = |p: &TrafficPlan| {
            let rooms: Vec<i64> = p
                .profiles
                .iter()
                .filter(|r| r.kind == RoomKind::People)
                .map(|r| r.room_id)
                .collect();
            p.events
                .iter()
                .filter(|e| matches!(e.event, TrafficEvent::Post { room_id } if rooms.contains(&room_id)))
                .count()
        };
        assert!(
            people(&busier) > 10 * people(&plan),
            "{} {}",
            people(&busier),
            people(&plan)
        );
    }
}
