//! Measurement 8, the capture benchmark: an organization's traffic (the fake's
//! traffic mode: 300 rooms with heavy-tailed rates, a bot room, two bursts of 150
//! messages in two minutes, edits) played against the fake Chatwork with time
//! compressed, synced by one strategy, and what it captured, how fresh, and at what cost.
//!
//! Time is compressed `speed` times: the rate-limit window (300 requests per 300 s
//! becomes 300 per 300 s / speed), the reset margin (1 s becomes 1 s / speed, as
//! measurement 1 scales it), the schedules and the traffic together. Freshness is
//! reported in simulated seconds. Every strategy starts from the same state: every room
//! registered and fetched once, with a set-up token whose requests are not counted.
//!
//! The third strategy adds Chatwork webhooks to the room check: the fake
//! delivers every post and edit of the plan's five busiest rooms (Chatwork's limit per
//! account) to the real API router served on a loopback port, so each message reaches
//! `POST /webhooks/chatwork` as it would from Chatwork; a share of the deliveries is lost
//! on purpose (Chatwork never re-sends one), and the check repairs what they missed.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use cwsync::api::{self, AppState, AuthConfig};
use cwsync::chatwork::ChatworkClient;
use cwsync::config::Env;
use cwsync::jobs::{self, JobConsumer, JobSpec as _};
use cwsync::schedule;
use cwsync::sync::SyncContext;
use cwsync::sync::check::RoomCheckSettings;
use cwsync::sync::messages::{MessagesSync, MessagesSyncPayload};
use cwsync::webhook::{WEBHOOK_PATH, WebhookKeys};
use cwsync_tests::TcpProxy;
use fake_chatwork::{
    DeliveryOutcome, MAX_WEBHOOKS_PER_ACCOUNT, RoomKind, TrafficEvent, TrafficPlan,
    TrafficSettings, Webhook, WebhookEventType, webhook_token,
};
use secrecy::SecretString;

use crate::stats::{Cost, PRICES, SQS_REQUESTS_PER_QUEUE_MESSAGE};
use crate::world::{self, World, client_settings, messages_consumer};

/// A token of the fake for set-up work only (see measurement 1's).
const SETUP_TOKEN: &str = "fake-chatwork-capture-setup-token-01";

/// How a strategy syncs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// Today's: a messages sync of every active room every 15 minutes (its job takes one
    /// room list and fetches the rooms that moved).
    Fixed,
    /// The room check every minute: only changed rooms, riskiest first, within the
    /// budget.
    RoomCheck,
    /// The room check every minute, and webhooks on the five busiest rooms delivering to
    /// the API's webhook route (a share of them lost: [`CaptureSettings::webhook_loss`]).
    Webhooks,
}

impl Strategy {
    pub fn describe(self) -> &'static str {
        match self {
            Self::Fixed => "every active room every 15 min",
            Self::RoomCheck => "room check every 1 min",
            Self::Webhooks => "room check every 1 min + webhooks on the 5 busiest rooms",
        }
    }

    /// Its interval in simulated time.
    fn interval(self) -> Duration {
        match self {
            Self::Fixed => Duration::from_secs(15 * 60),
            Self::RoomCheck | Self::Webhooks => Duration::from_secs(60),
        }
    }
}

/// The knobs of the run.
#[derive(Debug, Clone)]
pub struct CaptureSettings {
    pub rooms: usize,
    /// Simulated time played.
    pub duration: Duration,
    /// Simulated seconds per real second.
    pub speed: f64,
    /// Chatwork's limit: requests per (simulated) 300 s.
    pub limit: u32,
    /// The scheduled room check's reserve, in percent of the window.
    pub reserve_percent: u32,
    /// Pollers of the messages queue (the event source mapping's MaximumConcurrency).
    pub consumers: usize,
    /// The share of webhook deliveries lost on the way (never sent), for the check to
    /// repair.
    pub webhook_loss: f64,
}

impl Default for CaptureSettings {
    /// 300 rooms, two hours 30 times faster (4 real minutes), Chatwork's 300 per 5
    /// minutes, a reserve of 10 % (30 of 300), two pollers, 5 % of webhook deliveries lost.
    fn default() -> Self {
        Self {
            rooms: 300,
            duration: Duration::from_secs(2 * 3600),
            speed: 30.0,
            limit: 300,
            reserve_percent: 10,
            consumers: 2,
            webhook_loss: 0.05,
        }
    }
}

/// A room's capture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoomCapture {
    pub room_id: i64,
    pub posted: usize,
    pub stored: usize,
}

/// What one strategy did.
#[derive(Debug, Clone)]
pub struct CaptureFigures {
    pub strategy: Strategy,
    pub posted: usize,
    /// Of the posted messages, those stored.
    pub stored: usize,
    pub edits: usize,
    /// The room with the lowest share stored.
    pub worst: RoomCapture,
    pub bursts: Vec<RoomCapture>,
    /// The bot room.
    pub bot: RoomCapture,
    /// Simulated seconds from posted to stored, of the stored messages.
    pub freshness_p50: f64,
    pub freshness_p99: f64,
    pub freshness_max: f64,
    pub requests: usize,
    /// What the limit allowed over the run's windows.
    pub allowed: u64,
    pub rate_limited: u64,
    pub queue_messages: i64,
    /// Every statement of the consumers, the schedule and the rate budget.
    pub statements: u64,
    /// Messages stored in the run (new rows).
    pub stored_rows: i64,
    /// Scheduled invocations and consumer batches (Lambda invocations).
    pub invocations: u64,
    /// Time spent in them (what Lambda bills, at this machine's speed).
    pub busy: Duration,
    pub cost: Cost,
    /// Real time of the measured part.
    pub took: Duration,
    pub rooms_with_gaps: i64,
    /// Freshness of the burst rooms' stored messages.
    pub burst_freshness: Quantiles,
    /// What the webhooks did (the webhook strategy only).
    pub webhooks: Option<WebhookFigures>,
}

/// p50, p99 and the maximum of a set of delays (simulated seconds), and how many.
#[derive(Debug, Clone, Copy, Default)]
pub struct Quantiles {
    pub count: usize,
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
}

impl Quantiles {
    pub fn of(mut values: Vec<f64>) -> Self {
        values.sort_by(f64::total_cmp);
        let at = |q: f64| {
            if values.is_empty() {
                return 0.0;
            }
            values[((values.len() as f64 - 1.0) * q).round() as usize]
        };
        Self {
            count: values.len(),
            p50: at(0.5),
            p99: at(0.99),
            max: values.last().copied().unwrap_or(0.0),
        }
    }
}

/// The webhook strategy's deliveries and what they were worth.
#[derive(Debug, Clone)]
pub struct WebhookFigures {
    /// The watched rooms, busiest first.
    pub rooms: Vec<i64>,
    /// Deliveries sent (answered or not), lost on purpose, and answered with a 200.
    pub sent: usize,
    pub lost: usize,
    pub succeeded: usize,
    pub loss_share: f64,
    /// Freshness of the watched rooms' new messages whose delivery arrived.
    pub delivered: Quantiles,
    /// New messages whose delivery was lost, and the delay until the check stored them
    /// (`count`: how many were stored by the end).
    pub lost_created: usize,
    pub repaired: Quantiles,
    /// Edits whose delivery was lost (the check fetches a room whose times moved, but
    /// an edit does not change its message count).
    pub lost_edits: usize,
    /// The API's time answering deliveries (request to answer, as the fake saw it).
    pub api_busy: Duration,
}

/// The `n` rooms of `plan` with the most posts, busiest first.
fn busiest_rooms(plan: &TrafficPlan, n: usize) -> Vec<i64> {
    let mut posts: std::collections::HashMap<i64, usize> = Default::default();
    for e in &plan.events {
        if let TrafficEvent::Post { room_id } = e.event {
            *posts.entry(room_id).or_default() += 1;
        }
    }
    let mut rooms: Vec<(i64, usize)> = posts.into_iter().collect();
    rooms.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    rooms.into_iter().take(n).map(|(room, _)| room).collect()
}

/// Serves the API (the router Lambda and the local runner serve) on a loopback port,
/// accepting webhook deliveries signed with `tokens`; returns the webhook URL.
async fn serve_api(
    pool: &sqlx::PgPool,
    queues: Arc<dyn cwsync::queue::Queues>,
    tokens: &[String],
) -> anyhow::Result<String> {
    let secrets: Vec<SecretString> = tokens
        .iter()
        .map(|t| SecretString::from(t.clone()))
        .collect();
    let keys = WebhookKeys::from_tokens(&secrets)?;
    let auth = AuthConfig::local_jwt(
        &Env::default(),
        &SecretString::from("capture-benchmark-api-secret-0123456789abcdef"),
    )?;
    let state = AppState::new(pool.clone(), queues, auth).with_webhook_keys(Arc::new(keys));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, api::router(state)).await {
            eprintln!("    the benchmark's API stopped: {e}");
        }
    });
    Ok(format!("http://{addr}{WEBHOOK_PATH}"))
}

/// Plays the traffic and syncs it with `strategy`.
pub async fn capture(strategy: Strategy, s: &CaptureSettings) -> anyhow::Result<CaptureFigures> {
    let plan = TrafficPlan::organization(&TrafficSettings {
        rooms: s.rooms,
        duration: s.duration,
        ..TrafficSettings::default()
    });
    let window = Duration::from_secs_f64(300.0 / s.speed);
    let rooms = plan
        .profiles
        .iter()
        .map(|p| world::room(p.room_id, 5, 200))
        .collect();
    let world = World::new(rooms, (s.limit, window)).await;
    world.fake.add_token(SETUP_TOKEN);
    world.rooms_sync(SETUP_TOKEN).await?;
    let setup = messages_consumer(
        world.pool().clone(),
        world.pool().clone(),
        client_settings(&world.fake, SETUP_TOKEN)?,
    )?;
    world.messages_sync(&[setup]).await?;
    // Let the set-up fetches' rooms settle (Chatwork's times have a one-second
    // resolution).
    tokio::time::sleep(Duration::from_millis(2100)).await;

    // Everything measured reaches Postgres through one counting proxy.
    let proxy = TcpProxy::start(world.db.server_addr()).await;
    let pool = world::pool(&world.db.config_via(proxy.addr()), 6)?;
    let mut settings = client_settings(&world.fake, world.fake.token())?;
    settings.reset_margin = Duration::from_secs_f64(1.0 / s.speed);
    let client = ChatworkClient::new(settings, pool.clone())?;
    let connections = cwsync::connections::Connections::of_client(client.clone());
    let context = Arc::new(SyncContext::new(client.clone()));
    let watched = if strategy == Strategy::Webhooks {
        let rooms = busiest_rooms(&plan, MAX_WEBHOOKS_PER_ACCOUNT);
        let tokens: Vec<String> = rooms.iter().map(|_| webhook_token()).collect();
        let url = serve_api(&pool, world.queues.clone(), &tokens).await?;
        for (room, token) in rooms.iter().zip(tokens) {
            world
                .fake
                .add_webhook(Webhook::room(url.clone(), token, *room))?;
        }
        world.fake.set_delivery_loss(s.webhook_loss);
        rooms
    } else {
        Vec::new()
    };
    let requests_before = world.fake.requests().len();
    let limited_before = world.fake.rate_limited_count();
    let counts_before = proxy.counts();
    let started_at = chrono::Utc::now();
    let began = Instant::now();

    let playback = world.fake.play(plan.clone(), s.speed);
    let stop = Arc::new(AtomicBool::new(false));
    let batches = Arc::new(AtomicU64::new(0));
    let busy_us = Arc::new(AtomicU64::new(0));
    let mut pollers = tokio::task::JoinSet::new();
    for _ in 0..s.consumers {
        let consumer: JobConsumer<MessagesSync> =
            JobConsumer::new(pool.clone(), world.queues.clone(), context.clone());
        let source = world.source(MessagesSync::QUEUE);
        let (stop, batches, busy_us) = (stop.clone(), batches.clone(), busy_us.clone());
        pollers.spawn(async move {
            loop {
                let t = Instant::now();
                let n = source.poll_once(&consumer).await?;
                if n > 0 {
                    batches.fetch_add(1, Ordering::Relaxed);
                    busy_us.fetch_add(t.elapsed().as_micros() as u64, Ordering::Relaxed);
                } else if stop.load(Ordering::Relaxed) {
                    return anyhow::Ok(());
                }
            }
        });
    }

    // The schedule: every interval through the traffic, and once more after it to
    // fetch what its last interval brought.
    let interval = strategy.interval().div_f64(s.speed);
    let ticks = (s.duration.as_secs_f64() / strategy.interval().as_secs_f64()).ceil() as u32 + 1;
    let check_settings = RoomCheckSettings {
        cadence: interval,
        reserve_percent: s.reserve_percent,
        ..RoomCheckSettings::default()
    };
    let start = tokio::time::Instant::now();
    let mut scheduler_busy = Duration::ZERO;
    for tick in 1..=ticks {
        tokio::time::sleep_until(start + interval * tick).await;
        let t = Instant::now();
        match strategy {
            Strategy::Fixed => {
                let payload = MessagesSyncPayload::default();
                jobs::start::<MessagesSync>(&pool, world.queues.as_ref(), &payload, None).await?;
            }
            Strategy::RoomCheck | Strategy::Webhooks => {
                if let Err(e) = schedule::room_check(
                    &pool,
                    world.queues.as_ref(),
                    &connections,
                    &check_settings,
                )
                .await
                {
                    eprintln!("    room check {tick} failed: {e}");
                }
            }
        }
        scheduler_busy += t.elapsed();
    }
    let record = playback.await.context("the traffic playback")?;
    world.fake.wait_for_deliveries().await;
    // Then the fetches of the last tick.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let open: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM jobs WHERE status IN ('queued', 'processing')",
        )
        .fetch_one(world.pool())
        .await?;
        if open == 0 || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.store(true, Ordering::Relaxed);
    while let Some(done) = pollers.join_next().await {
        done??;
    }
    let took = began.elapsed();
    crate::measure::settled(&[&pool]).await;
    let wire = proxy.counts() - counts_before;

    // What was stored of what was posted, and when.
    let ids: Vec<String> = record.posted.iter().map(|p| p.message_id.clone()).collect();
    let stored: Vec<(String, chrono::DateTime<chrono::Utc>)> =
        sqlx::query_as("SELECT message_id, created_at FROM messages WHERE message_id = ANY($1)")
            .bind(&ids)
            .fetch_all(world.pool())
            .await?;
    let stored: std::collections::HashMap<String, chrono::DateTime<chrono::Utc>> =
        stored.into_iter().collect();
    let mut freshness = Vec::new();
    // Simulated seconds from posted to stored, by message id.
    let mut delay: std::collections::HashMap<&str, f64> = Default::default();
    let mut by_room: std::collections::BTreeMap<i64, RoomCapture> = Default::default();
    for posted in &record.posted {
        let room = by_room.entry(posted.room_id).or_insert(RoomCapture {
            room_id: posted.room_id,
            posted: 0,
            stored: 0,
        });
        room.posted += 1;
        if let Some(at) = stored.get(&posted.message_id) {
            room.stored += 1;
            let posted_at = chrono::DateTime::<chrono::Utc>::from(posted.at);
            let real = (*at - posted_at).num_microseconds().unwrap_or(0) as f64 / 1e6;
            freshness.push(real.max(0.0) * s.speed);
            delay.insert(&posted.message_id, real.max(0.0) * s.speed);
        }
    }
    freshness.sort_by(f64::total_cmp);
    let quantile = |q: f64| -> f64 {
        if freshness.is_empty() {
            return 0.0;
        }
        let index = ((freshness.len() as f64 - 1.0) * q).round() as usize;
        freshness[index]
    };
    let share = |r: &RoomCapture| r.stored as f64 / r.posted.max(1) as f64;
    let worst = by_room
        .values()
        .copied()
        .min_by(|a, b| share(a).total_cmp(&share(b)).then(b.posted.cmp(&a.posted)))
        .context("rooms with traffic")?;
    let of_kind = |kind: RoomKind| -> Vec<RoomCapture> {
        plan.profiles
            .iter()
            .filter(|p| p.kind == kind)
            .filter_map(|p| by_room.get(&p.room_id).copied())
            .collect()
    };
    let bot = *of_kind(RoomKind::Bot).first().context("the bot room")?;
    let queue_messages: i64 = sqlx::query_scalar(
        "SELECT coalesce(sum(total_items), 0)::int8 FROM jobs WHERE created_at >= $1",
    )
    .bind(started_at)
    .fetch_one(world.pool())
    .await?;
    let stored_rows: i64 =
        sqlx::query_scalar("SELECT count(*) FROM messages WHERE created_at >= $1")
            .bind(started_at)
            .fetch_one(world.pool())
            .await?;
    let rooms_with_gaps: i64 =
        sqlx::query_scalar("SELECT count(*) FROM chatwork_rooms WHERE gap_detected_at >= $1")
            .bind(started_at)
            .fetch_one(world.pool())
            .await?;
    let burst_rooms: Vec<i64> = of_kind(RoomKind::Burst).iter().map(|r| r.room_id).collect();
    let burst_freshness = Quantiles::of(
        record
            .posted
            .iter()
            .filter(|p| burst_rooms.contains(&p.room_id))
            .filter_map(|p| delay.get(p.message_id.as_str()).copied())
            .collect(),
    );
    let webhooks = (!watched.is_empty()).then(|| {
        let log = world.fake.deliveries();
        let lost_ids: std::collections::HashSet<&str> = log
            .iter()
            .filter(|d| {
                d.outcome == DeliveryOutcome::Lost
                    && d.event_type == WebhookEventType::MessageCreated
            })
            .map(|d| d.message_id.as_str())
            .collect();
        let delivered = record
            .posted
            .iter()
            .filter(|p| watched.contains(&p.room_id) && !lost_ids.contains(p.message_id.as_str()))
            .filter_map(|p| delay.get(p.message_id.as_str()).copied())
            .collect();
        let repaired = lost_ids
            .iter()
            .filter_map(|id| delay.get(id).copied())
            .collect();
        WebhookFigures {
            rooms: watched.clone(),
            sent: log.iter().filter(|d| d.sent_at.is_some()).count(),
            lost: log
                .iter()
                .filter(|d| d.outcome == DeliveryOutcome::Lost)
                .count(),
            succeeded: log.iter().filter(|d| d.succeeded()).count(),
            loss_share: s.webhook_loss,
            delivered: Quantiles::of(delivered),
            lost_created: lost_ids.len(),
            repaired: Quantiles::of(repaired),
            lost_edits: log
                .iter()
                .filter(|d| {
                    d.outcome == DeliveryOutcome::Lost
                        && d.event_type == WebhookEventType::MessageUpdated
                })
                .count(),
            api_busy: log.iter().filter_map(|d| d.latency).sum(),
        }
    });
    let windows = (took.as_secs_f64() / window.as_secs_f64()).ceil() as u64;
    // Each delivery is an invocation of the API function, busy while it answers.
    let (api_invocations, api_busy) = webhooks
        .as_ref()
        .map_or((0, Duration::ZERO), |w| (w.sent as u64, w.api_busy));
    let invocations = batches.load(Ordering::Relaxed) + u64::from(ticks) + api_invocations;
    let busy = Duration::from_micros(busy_us.load(Ordering::Relaxed)) + scheduler_busy + api_busy;
    Ok(CaptureFigures {
        strategy,
        posted: record.posted.len(),
        stored: record
            .posted
            .iter()
            .filter(|p| stored.contains_key(&p.message_id))
            .count(),
        edits: record.edits,
        worst,
        bursts: of_kind(RoomKind::Burst),
        bot,
        freshness_p50: quantile(0.5),
        freshness_p99: quantile(0.99),
        freshness_max: freshness.last().copied().unwrap_or(0.0),
        requests: world.fake.requests().len() - requests_before,
        allowed: windows * u64::from(s.limit),
        rate_limited: world.fake.rate_limited_count() - limited_before,
        queue_messages,
        statements: wire.statements(),
        stored_rows,
        invocations,
        busy,
        cost: cost_per_million(invocations, busy, queue_messages, stored_rows),
        took,
        rooms_with_gaps,
        burst_freshness,
        webhooks,
    })
}

/// The cost per million stored messages of a run: Lambda at 128 MB for the time spent
/// (consumer batches and scheduled invocations, at this machine's speed), a Lambda
/// request per invocation, and SQS per queue message (send, receive and delete, each a
/// tenth of a batch call), with the benchmark's prices.
fn cost_per_million(invocations: u64, busy: Duration, queue_messages: i64, stored: i64) -> Cost {
    let per = 1e6 / stored.max(1) as f64;
    let gb = 128.0 / 1024.0;
    Cost {
        lambda_duration: per * busy.as_secs_f64() * gb * PRICES.lambda_arm64_per_gb_second,
        lambda_requests: per * invocations as f64 * PRICES.lambda_per_million_requests / 1e6,
        sqs: per
            * queue_messages as f64
            * SQS_REQUESTS_PER_QUEUE_MESSAGE
            * PRICES.sqs_fifo_per_million_requests
            / 1e6,
    }
}
