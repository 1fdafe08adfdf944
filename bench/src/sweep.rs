//! Measurement 12, the load sweep: measurement 8's question (what does the room check
//! capture, how fresh, at what cost) asked from 1 % to 150 % of one token's ceiling
//! (100 messages per request × 300 requests per 5 minutes: 100 messages a second).
//!
//! At those loads a real run would store up to 150 messages a second for a simulated day;
//! this machine cannot play that in minutes, so the sweep is a discrete-event model of
//! what is around the plan, with the plan itself taken from production:
//! `cwsync::sync::plan` decides every check of the new strategies, exactly as the room
//! check does. Modelled: Chatwork (each room's messages as a Poisson stream; a fetch
//! returns the newest 100 unseen, older ones are lost; `message_num` exact in the room
//! list), the rate windows (300 requests per 300 s, every request waits for a window
//! with room, so nothing is ever refused), the job's fetches (run in plan order by the
//! consumers, each taking the request's latency), a check finding the previous check's
//! fetches still running (`busy`: it plans nothing), and the rate estimate the check's
//! statement keeps (the same moving average). Not modelled: edits, webhooks, people's
//! syncs (the reserve stays unused), the database.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::time::Duration;

use chrono::{DateTime, Utc};
use cwsync::chatwork::MESSAGES_PER_REQUEST;
use cwsync::sync::plan::{self, Need, PlanSettings, Window};

use crate::stats::{Cost, PRICES, SQS_REQUESTS_PER_QUEUE_MESSAGE};

/// One token's ceiling: messages a second.
pub const CEILING_PER_SEC: f64 = 100.0;

/// How a strategy plans.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// The plan before this measurement: the rooms closest to 100 unseen first, as many
    /// as the window has left (less the reserve), a check every minute.
    Before,
    /// The plan (`cwsync::sync::plan`) with a check every minute.
    PlanMinute,
    /// The plan with a check every 15 s (the default).
    Plan15s,
}

impl Strategy {
    pub const ALL: [Strategy; 3] = [Self::Before, Self::PlanMinute, Self::Plan15s];

    pub fn describe(self) -> &'static str {
        match self {
            Self::Before => "before: closest to 100 first, spend what is left, every 1 min",
            Self::PlanMinute => "plan: predicted loss first, paced, gathering, every 1 min",
            Self::Plan15s => "plan every 15 s (default)",
        }
    }

    pub fn short(self) -> &'static str {
        match self {
            Self::Before => "before (1 min)",
            Self::PlanMinute => "plan (1 min)",
            Self::Plan15s => "plan (15 s)",
        }
    }

    fn cadence(self) -> f64 {
        match self {
            Self::Before | Self::PlanMinute => 60.0,
            Self::Plan15s => 15.0,
        }
    }
}

/// The knobs of the sweep.
#[derive(Debug, Clone)]
pub struct SweepSettings {
    pub rooms: usize,
    /// Simulated time of each scenario.
    pub duration: Duration,
    /// Loads, as shares of one token's ceiling.
    pub loads: Vec<f64>,
    pub seed: u64,
    /// Seconds a Chatwork request takes (the fetch's whole time in a consumer).
    pub latency: f64,
    /// Pollers of the messages queue.
    pub consumers: usize,
    /// Bursts of 150 messages within 30 s in a quiet room, per simulated hour.
    pub bursts_per_hour: f64,
}

impl Default for SweepSettings {
    fn default() -> Self {
        Self {
            rooms: 2000,
            duration: Duration::from_secs(6 * 3600),
            loads: vec![0.01, 0.10, 0.50, 0.80, 1.00, 1.50],
            seed: 27,
            latency: 0.3,
            consumers: 2,
            bursts_per_hour: 2.0,
        }
    }
}

/// Room-rate bands, messages per minute: the upper bounds.
pub const BANDS: [(f64, &str); 5] = [
    (0.1, "< 0.1/min"),
    (1.0, "0.1–1/min"),
    (10.0, "1–10/min"),
    (100.0, "10–100/min"),
    (f64::INFINITY, "≥ 100/min"),
];

fn band_of(rate_per_min: f64) -> usize {
    BANDS
        .iter()
        .position(|(upper, _)| rate_per_min < *upper)
        .unwrap_or(BANDS.len() - 1)
}

/// Freshness samples kept as a histogram of whole seconds (and everything over an hour
/// in the last bucket): p50 and p99 to the second.
#[derive(Debug, Clone)]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
}

impl Histogram {
    const LAST: usize = 3600;

    fn new() -> Self {
        Self {
            counts: vec![0; Self::LAST + 1],
            total: 0,
        }
    }

    fn add(&mut self, secs: f64) {
        let bucket = (secs.max(0.0).ceil() as usize).min(Self::LAST);
        self.counts[bucket] += 1;
        self.total += 1;
    }

    /// The `q` quantile in seconds (an hour or more shows as 3600).
    pub fn quantile(&self, q: f64) -> f64 {
        if self.total == 0 {
            return 0.0;
        }
        let rank = ((self.total as f64 - 1.0) * q).round() as u64;
        let mut seen = 0;
        for (secs, n) in self.counts.iter().enumerate() {
            seen += n;
            if seen > rank {
                return secs as f64;
            }
        }
        Self::LAST as f64
    }
}

/// A band's figures.
#[derive(Debug, Clone)]
pub struct BandFigures {
    pub rooms: usize,
    pub posted: u64,
    pub stored: u64,
    pub freshness: Histogram,
}

/// What one strategy did at one load.
#[derive(Debug, Clone)]
pub struct ScenarioFigures {
    pub load: f64,
    pub strategy: Strategy,
    pub posted: u64,
    pub stored: u64,
    /// The lowest share stored of one room, among rooms under 100 messages per check
    /// interval with at least 10 messages posted.
    pub worst_under: f64,
    pub bands: Vec<BandFigures>,
    pub burst_posted: u64,
    pub burst_stored: u64,
    pub checks: u64,
    pub fetches: u64,
    /// What the windows allowed over the run.
    pub allowed: u64,
    /// Requests refused with a 429: none, by construction of the model (every request
    /// waits for a window with room, as the client's budget makes it).
    pub rate_limited: u64,
    pub busy_checks: u64,
    /// The plan's own report: checks that found themselves above the ceiling, and the
    /// loss they predicted on average (messages a minute).
    pub above_ceiling_checks: u64,
    pub predicted_loss_per_min: f64,
    pub cost: Cost,
}

impl ScenarioFigures {
    pub fn capture(&self) -> f64 {
        self.stored as f64 / self.posted.max(1) as f64
    }

    /// Of rooms under 100 messages per check interval.
    pub fn capture_under(&self) -> f64 {
        let cut = 100.0 / (self.strategy.cadence() / 60.0);
        let (posted, stored) = self
            .bands
            .iter()
            .zip(BANDS)
            .filter(|(_, (upper, _))| *upper <= cut)
            .fold((0, 0), |(p, s), (b, _)| (p + b.posted, s + b.stored));
        stored as f64 / posted.max(1) as f64
    }

    pub fn messages_per_request(&self) -> f64 {
        self.stored as f64 / self.fetches.max(1) as f64
    }

    pub fn requests(&self) -> u64 {
        self.checks + self.fetches
    }
}

/// The organization: each room's rate (messages a second), scaled so that they add up to
/// `load` of the ceiling; room 0 is quiet but for bursts.
fn rates(s: &SweepSettings, load: f64) -> Vec<f64> {
    let mut rng = fastrand::Rng::with_seed(s.seed);
    // Measurement 8's shape: Pareto, shape 1.1, a heavy tail; here capped at 4 a second
    // (240 a minute, 60 per 15 s check) and scaled to the load.
    let raw: Vec<f64> = (0..s.rooms)
        .map(|_| 1.0 / (1.0 - rng.f64()).max(1e-12).powf(1.0 / 1.1))
        .collect();
    let cap = 4.0;
    let target = load * CEILING_PER_SEC;
    let total = |f: f64| raw.iter().skip(1).map(|r| (r * f).min(cap)).sum::<f64>();
    let (mut lo, mut hi) = (0.0, 1.0);
    while total(hi) < target && hi < 1e12 {
        hi *= 2.0;
    }
    for _ in 0..100 {
        let mid = (lo + hi) / 2.0;
        if total(mid) < target {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    let mut rates: Vec<f64> = raw.iter().map(|r| (r * hi).min(cap)).collect();
    rates[0] = 0.0;
    rates
}

/// A time of the model, ordered totally (the event queue's key).
#[derive(Debug, Clone, Copy)]
struct At(f64);

impl PartialEq for At {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other).is_eq()
    }
}

impl Eq for At {}

impl PartialOrd for At {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for At {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Event {
    /// A fetch's snapshot (it sees what was posted up to now).
    Fetch(usize),
    Check,
    Post(usize),
}

/// A room in the model: what Chatwork holds unseen and what the check keeps.
#[derive(Debug, Clone, Default)]
struct Room {
    posted: u64,
    stored: u64,
    /// Posting times of the messages no fetch has seen, oldest first.
    unseen: VecDeque<f64>,
    /// `message_num` at the last fetch.
    synced: u64,
    /// Since when checks found it needing a fetch.
    wanted_since: Option<f64>,
    /// The rate estimate, as the check's statement keeps it.
    rate: f64,
    recent: f64,
    base_num: u64,
    base_at: f64,
}

/// The rate windows of one token: requests taken per window of 300 s.
struct Windows {
    limit: u64,
    length: f64,
    used: HashMap<u64, u64>,
}

impl Windows {
    /// The first time at or after `t` with room in its window; takes one request there.
    fn take(&mut self, t: f64) -> f64 {
        let mut index = (t / self.length).floor() as u64;
        let mut at = t;
        loop {
            let used = self.used.entry(index).or_default();
            if *used < self.limit {
                *used += 1;
                return at;
            }
            index += 1;
            at = index as f64 * self.length;
        }
    }

    /// The window at `t` as the check sees it.
    fn seen(&self, t: f64) -> (u64, f64) {
        let index = (t / self.length).floor() as u64;
        let used = self.used.get(&index).copied().unwrap_or(0);
        (
            self.limit.saturating_sub(used),
            (index + 1) as f64 * self.length,
        )
    }
}

const LIMIT: u64 = 300;
const WINDOW: f64 = 300.0;
const RESERVE_PERCENT: u32 = 10;

fn time(t: f64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000, 0).unwrap()
        + chrono::Duration::milliseconds((t * 1000.0) as i64)
}

/// Runs one strategy at one load.
pub fn scenario(s: &SweepSettings, load: f64, strategy: Strategy) -> ScenarioFigures {
    let rates = rates(s, load);
    let end = s.duration.as_secs_f64();
    let cadence = strategy.cadence();
    let mut rng = fastrand::Rng::with_seed(s.seed ^ 0x5eed);
    let mut rooms = vec![Room::default(); rates.len()];
    let mut events: BinaryHeap<Reverse<(At, Event)>> = BinaryHeap::new();
    for (i, r) in rates.iter().enumerate() {
        if *r > 0.0 {
            let first = -(1.0 - rng.f64()).ln() / r;
            events.push(Reverse((At(first), Event::Post(i))));
        }
    }
    // The bursts: 150 messages within 30 s of room 0, at random times.
    let bursts = (s.bursts_per_hour * end / 3600.0).round() as usize;
    let mut burst_posted = 0;
    for _ in 0..bursts {
        let start = rng.f64() * (end - 60.0);
        for _ in 0..150 {
            events.push(Reverse((At(start + rng.f64() * 30.0), Event::Post(0))));
            burst_posted += 1;
        }
    }
    let mut t = cadence;
    while t <= end + cadence {
        events.push(Reverse((At(t), Event::Check)));
        t += cadence;
    }

    let mut windows = Windows {
        limit: LIMIT,
        length: WINDOW,
        used: HashMap::new(),
    };
    let settings = PlanSettings {
        cadence: Duration::from_secs_f64(cadence),
        window: Duration::from_secs_f64(WINDOW),
        reserve_percent: RESERVE_PERCENT,
        gather_min: 50,
        freshness_bound: Duration::from_secs(120),
        scheduled: true,
    };
    let tau = 2.0 * WINDOW / 60.0;
    let mut consumers = vec![0.0f64; s.consumers.max(1)];
    let mut pending_until = 0.0f64;
    let mut freshness: Vec<Histogram> = BANDS.iter().map(|_| Histogram::new()).collect();
    let (mut checks, mut fetches, mut busy, mut above, mut loss_sum) = (0u64, 0u64, 0, 0, 0.0);
    let mut last_request = 0.0f64;
    let members: HashMap<i64, Vec<usize>> = (0..rooms.len()).map(|i| (i as i64, vec![0])).collect();

    while let Some(Reverse((At(now), event))) = events.pop() {
        match event {
            Event::Post(i) => {
                if now <= end {
                    let room = &mut rooms[i];
                    room.posted += 1;
                    room.unseen.push_back(now);
                    if rates[i] > 0.0 {
                        let next = now - (1.0 - rng.f64()).ln() / rates[i];
                        events.push(Reverse((At(next), Event::Post(i))));
                    }
                }
            }
            Event::Fetch(i) => {
                let room = &mut rooms[i];
                let keep = room.unseen.len().min(MESSAGES_PER_REQUEST);
                let lost = room.unseen.len() - keep;
                room.unseen.drain(..lost);
                for posted_at in room.unseen.drain(..) {
                    freshness[band_of(rates[i] * 60.0)].add(now - posted_at);
                }
                room.stored += keep as u64;
                room.synced = room.posted;
                room.wanted_since = None;
                last_request = last_request.max(now);
            }
            Event::Check => {
                let at = windows.take(now);
                checks += 1;
                last_request = last_request.max(at);
                // The room list: message_num of every room; a new sample of the rate of
                // every room whose count moved (the check's statement).
                let mut needs = Vec::new();
                for (i, room) in rooms.iter_mut().enumerate() {
                    let message_num = room.posted;
                    if message_num != room.base_num {
                        let minutes = ((at - room.base_at) / 60.0).max(0.0);
                        let moved_by = (message_num - room.base_num) as f64;
                        let sample = moved_by / minutes.max(1.0 / 60.0);
                        let weight = 1.0 - (-minutes / tau).exp();
                        room.rate = sample * weight + room.rate * (1.0 - weight);
                        room.recent = moved_by / minutes.min(cadence / 60.0).max(1.0 / 60.0);
                        room.base_num = message_num;
                        room.base_at = at;
                    }
                    let unseen = message_num - room.synced;
                    if unseen > 0 {
                        let since = *room.wanted_since.get_or_insert(at);
                        let rate = if at - room.base_at <= 2.0 * cadence {
                            room.rate.max(room.recent)
                        } else {
                            room.rate
                        };
                        needs.push(Need {
                            room_id: i as i64,
                            unseen: unseen as i64,
                            rate_per_min: rate,
                            waiting_since: time(since),
                            requests: 1,
                        });
                    }
                }
                if pending_until > at {
                    // The previous check's fetches still run: this one plans nothing.
                    busy += 1;
                    continue;
                }
                let (remaining, reset) = windows.seen(at);
                let window = Window {
                    limit: LIMIT as i64,
                    remaining: remaining as i64,
                    reset_at: time(reset),
                };
                let planned: Vec<usize> = match strategy {
                    Strategy::Before => before(&needs, remaining, reset - at, cadence),
                    Strategy::PlanMinute | Strategy::Plan15s => {
                        let plan =
                            plan::plan(&needs, &members, &[Some(window)], time(at), &settings);
                        if plan.above_ceiling() {
                            above += 1;
                            loss_sum += plan.loss_per_min;
                        }
                        plan.planned.iter().map(|p| p.room_id as usize).collect()
                    }
                };
                // The job's fetches, in plan order, on the first free consumer, each when
                // its window has room; its snapshot halfway through the request.
                for i in planned {
                    let consumer = consumers
                        .iter_mut()
                        .min_by(|a, b| a.total_cmp(b))
                        .expect("a consumer");
                    let start = windows.take(consumer.max(at + 0.05));
                    *consumer = start + s.latency;
                    fetches += 1;
                    pending_until = pending_until.max(*consumer);
                    events.push(Reverse((At(start + s.latency / 2.0), Event::Fetch(i))));
                }
            }
        }
    }

    let mut bands: Vec<BandFigures> = freshness
        .into_iter()
        .map(|freshness| BandFigures {
            rooms: 0,
            posted: 0,
            stored: 0,
            freshness,
        })
        .collect();
    let cut = 100.0 / (cadence / 60.0);
    let mut worst_under = 1.0f64;
    for (i, room) in rooms.iter().enumerate().skip(1) {
        let band = &mut bands[band_of(rates[i] * 60.0)];
        band.rooms += 1;
        band.posted += room.posted;
        band.stored += room.stored;
        if rates[i] * 60.0 < cut && room.posted >= 10 {
            worst_under = worst_under.min(room.stored as f64 / room.posted as f64);
        }
    }
    let posted: u64 = rooms.iter().map(|r| r.posted).sum();
    let stored: u64 = rooms.iter().map(|r| r.stored).sum();
    let span = last_request.max(end);
    let allowed = ((span / WINDOW).ceil() as u64) * LIMIT;
    ScenarioFigures {
        load,
        strategy,
        posted,
        stored,
        worst_under,
        bands,
        burst_posted,
        burst_stored: rooms[0].stored,
        checks,
        fetches,
        allowed,
        rate_limited: 0,
        busy_checks: busy,
        above_ceiling_checks: above,
        predicted_loss_per_min: if above > 0 {
            loss_sum / above as f64
        } else {
            0.0
        },
        cost: cost(strategy, checks, fetches, stored, s.latency),
    }
}

/// The plan before: the rooms closest to 100 unseen first (then the longest waiting), as
/// many as what is left of the window less the reserve and the next check (and the next
/// window's share when it opens before the next check).
fn before(needs: &[Need], remaining: u64, reset_in: f64, cadence: f64) -> Vec<usize> {
    let reserve = (LIMIT * u64::from(RESERVE_PERCENT)).div_ceil(100) as i64;
    let mut can = (remaining as i64 - reserve).max(0);
    if reset_in <= cadence {
        can += LIMIT as i64 - reserve;
    }
    let allowance = usize::try_from(can - 1).unwrap_or(0);
    let limit = MESSAGES_PER_REQUEST as i64;
    let mut ranked: Vec<&Need> = needs.iter().collect();
    ranked.sort_by(|a, b| {
        b.unseen
            .min(limit)
            .cmp(&a.unseen.min(limit))
            .then(a.waiting_since.cmp(&b.waiting_since))
            .then(a.room_id.cmp(&b.room_id))
    });
    ranked
        .into_iter()
        .take(allowance)
        .map(|n| n.room_id as usize)
        .collect()
}

/// What the run costs per million stored messages, with measurement 7's prices: Lambda at
/// 128 MB for each fetch (the request's latency and 20 ms of our own work, measurement
/// 8's order) and each scheduler invocation (one a minute; with checks under a minute
/// apart it lasts until its last check: 45 s of every minute at 15 s), a Lambda request
/// per fetch and per invocation, and SQS per queue message (one per fetch).
fn cost(strategy: Strategy, checks: u64, fetches: u64, stored: u64, latency: f64) -> Cost {
    let per = 1e6 / stored.max(1) as f64;
    let gb = 128.0 / 1024.0;
    let per_invocation = (60.0 / strategy.cadence()).round();
    let invocations = (checks as f64 / per_invocation).ceil();
    let check_secs = 0.05;
    let scheduler_secs = invocations * ((per_invocation - 1.0) * strategy.cadence() + check_secs);
    let fetch_secs = fetches as f64 * (latency + 0.02);
    Cost {
        lambda_duration: per
            * (scheduler_secs + fetch_secs)
            * gb
            * PRICES.lambda_arm64_per_gb_second,
        lambda_requests: per * (invocations + fetches as f64) * PRICES.lambda_per_million_requests
            / 1e6,
        sqs: per
            * fetches as f64
            * SQS_REQUESTS_PER_QUEUE_MESSAGE
            * PRICES.sqs_fifo_per_million_requests
            / 1e6,
    }
}

/// Every strategy at every load.
pub fn sweep(s: &SweepSettings) -> Vec<ScenarioFigures> {
    let mut out = Vec::new();
    for &load in &s.loads {
        for strategy in Strategy::ALL {
            out.push(scenario(s, load, strategy));
        }
    }
    out
}

/// The plot: capture (left) and messages per request (right) against the load, one line
/// per strategy, as an SVG.
pub fn plot(figures: &[ScenarioFigures]) -> String {
    let (w, h) = (920.0, 380.0);
    let colors = ["#9a9a9a", "#e08a1e", "#1f6fb2"];
    let mut svg = format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">
<rect width="{w}" height="{h}" fill="white"/>
"##
    );
    let loads: Vec<f64> = {
        let mut l: Vec<f64> = figures.iter().map(|f| f.load).collect();
        l.sort_by(f64::total_cmp);
        l.dedup();
        l
    };
    // The load axis is by position (1 % and 150 % would not share a linear axis).
    let panel = |svg: &mut String,
                 x0: f64,
                 title: &str,
                 max: f64,
                 ticks: &[f64],
                 label: &dyn Fn(f64) -> String,
                 value: &dyn Fn(&ScenarioFigures) -> f64| {
        let (pw, ph, top) = (360.0, 250.0, 40.0);
        let x = |i: usize| x0 + 20.0 + i as f64 * (pw - 40.0) / (loads.len().max(2) - 1) as f64;
        let y = |v: f64| top + ph - (v / max).clamp(0.0, 1.0) * ph;
        svg.push_str(&format!(
            r##"<text x="{}" y="24" font-size="14" font-weight="bold">{title}</text>
<rect x="{x0}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#444"/>
"##,
            x0
        ));
        for t in ticks {
            svg.push_str(&format!(
                r##"<line x1="{x0}" x2="{}" y1="{y}" y2="{y}" stroke="#ddd"/><text x="{}" y="{}" text-anchor="end">{}</text>
"##,
                x0 + pw,
                x0 - 6.0,
                y(*t) + 4.0,
                label(*t),
                y = y(*t)
            ));
        }
        for (i, load) in loads.iter().enumerate() {
            svg.push_str(&format!(
                r##"<text x="{}" y="{}" text-anchor="middle">{:.0} %</text>
"##,
                x(i),
                top + ph + 18.0,
                load * 100.0
            ));
        }
        svg.push_str(&format!(
            r##"<text x="{}" y="{}" text-anchor="middle">load (share of one token's 100 messages/s)</text>
"##,
            x0 + pw / 2.0,
            top + ph + 36.0
        ));
        for (k, strategy) in Strategy::ALL.iter().enumerate() {
            let points: Vec<String> = loads
                .iter()
                .enumerate()
                .filter_map(|(i, load)| {
                    figures
                        .iter()
                        .find(|f| f.strategy == *strategy && f.load == *load)
                        .map(|f| format!("{:.1},{:.1}", x(i), y(value(f))))
                })
                .collect();
            svg.push_str(&format!(
                r##"<polyline fill="none" stroke="{c}" stroke-width="2.5" points="{}"/>
"##,
                points.join(" "),
                c = colors[k]
            ));
            for p in &points {
                let (px, py) = p.split_once(',').unwrap_or(("0", "0"));
                svg.push_str(&format!(
                    r##"<circle cx="{px}" cy="{py}" r="3.5" fill="{}"/>
"##,
                    colors[k]
                ));
            }
        }
    };
    panel(
        &mut svg,
        60.0,
        "Messages captured",
        1.0,
        &[0.0, 0.25, 0.5, 0.75, 0.9, 1.0],
        &|t| format!("{:.0} %", t * 100.0),
        &|f| f.capture(),
    );
    panel(
        &mut svg,
        520.0,
        "Messages per fetch (of 100)",
        100.0,
        &[0.0, 20.0, 40.0, 60.0, 80.0, 100.0],
        &|t| format!("{t:.0}"),
        &|f| f.messages_per_request(),
    );
    for (k, strategy) in Strategy::ALL.iter().enumerate() {
        let y = h - 14.0;
        let x = 60.0 + k as f64 * 290.0;
        svg.push_str(&format!(
            r##"<line x1="{x}" x2="{}" y1="{}" y2="{}" stroke="{c}" stroke-width="3"/><text x="{}" y="{y}">{}</text>
"##,
            x + 24.0,
            y - 4.0,
            y - 4.0,
            x + 30.0,
            strategy.short(),
            c = colors[k]
        ));
    }
    svg.push_str("</svg>\n");
    svg
}
