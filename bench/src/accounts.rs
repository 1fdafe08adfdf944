//! Measurement 10, the capture benchmark with three accounts: one organization whose
//! rooms are split over three Chatwork accounts (A, B and C, account managers with
//! customers of their own), measurement 8's traffic played at a load one token cannot
//! serve, synced by the room check every minute, twice: through one token (A's, the
//! bootstrap connection, as a single-token deployment runs), and through three
//! connections (A's bootstrap one, and B and C added with their API tokens, sealed under a
//! local key as `POST /api/chatwork/connections` stores them).
//!
//! The rooms: 40 % only A is a member of, 25 % only B, 25 % only C, and 10 % shared by two
//! or three of them. Each run starts from what its own connections can see: a rooms sync
//! and a messages sync through them, then one whole rate window of rest, so the measured
//! part starts with every budget whole. Time is compressed as in measurement 8.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use cwsync::chatwork::{ChatworkClient, ClientSettings};
use cwsync::connections::store::{self, NewConnection};
use cwsync::connections::{Connections, TokenCipher};
use cwsync::jobs::{self, JobConsumer, JobSpec as _, JobStatus};
use cwsync::schedule;
use cwsync::sync::SyncContext;
use cwsync::sync::check::RoomCheckSettings;
use cwsync::sync::messages::{MessagesSync, MessagesSyncPayload};
use cwsync::sync::rooms::{RoomsSync, RoomsSyncPayload};
use fake_chatwork::{FakeAccount, FakeChatwork, TrafficEvent, TrafficPlan, TrafficSettings};
use secrecy::SecretString;
use sqlx::PgPool;

use crate::capture::Quantiles;
use crate::world::{self, World, client_settings};

/// Accounts B and C (A is the fake's default account) and their API tokens.
const B: i64 = 3_000_002;
const C: i64 = 3_000_003;
const B_TOKEN: &str = "bench-account-b-api-token-0123456789ab";
const C_TOKEN: &str = "bench-account-c-api-token-0123456789ab";
/// The local key the connections' tokens are sealed under.
const KEY: [u8; 32] = [17; 32];

/// The accounts' labels, by index.
pub const LABELS: [&str; 3] = ["A", "B", "C"];

/// How the run reaches Chatwork.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setup {
    /// A's token only (the bootstrap connection), as today.
    OneToken,
    /// A's bootstrap connection, and B and C as API-token connections.
    ThreeConnections,
}

impl Setup {
    pub fn describe(self) -> &'static str {
        match self {
            Self::OneToken => "one token (A)",
            Self::ThreeConnections => "three connections (A, B, C)",
        }
    }

    /// The accounts it reads through (indices into [`LABELS`]).
    fn accounts(self) -> &'static [usize] {
        match self {
            Self::OneToken => &[0],
            Self::ThreeConnections => &[0, 1, 2],
        }
    }
}

/// The knobs of the run.
#[derive(Debug, Clone)]
pub struct AccountsSettings {
    pub rooms: usize,
    /// Simulated time played.
    pub duration: Duration,
    /// Simulated seconds per real second.
    pub speed: f64,
    /// Chatwork's limit: requests per (simulated) 300 s, per account.
    pub limit: u32,
    /// The scheduled room check's reserve, in percent of the window.
    pub reserve_percent: u32,
    /// Pollers of the messages queue.
    pub consumers: usize,
    /// How much busier the people rooms are than measurement 8's
    /// ([`TrafficSettings::people_rate_factor`]).
    pub rate_factor: f64,
}

impl Default for AccountsSettings {
    /// 600 rooms, people rooms 40 times as busy as measurement 8's, one simulated hour
    /// 30 times faster (2 real minutes), Chatwork's 300 per 5 minutes, a reserve of 10 %,
    /// two pollers.
    fn default() -> Self {
        Self {
            rooms: 600,
            duration: Duration::from_secs(3600),
            speed: 30.0,
            limit: 300,
            reserve_percent: 10,
            consumers: 2,
            rate_factor: 40.0,
        }
    }
}

impl AccountsSettings {
    /// The traffic both runs play.
    pub fn plan(&self) -> TrafficPlan {
        TrafficPlan::organization(&TrafficSettings {
            rooms: self.rooms,
            duration: self.duration,
            people_rate_factor: self.rate_factor,
            ..TrafficSettings::default()
        })
    }

    /// What a scheduled check may spend of one account's budget per simulated minute:
    /// the limit per 5 minutes, less the reserve.
    pub fn usable_per_minute(&self) -> f64 {
        f64::from(self.limit) / 5.0 * (1.0 - f64::from(self.reserve_percent) / 100.0)
    }
}

/// The accounts (indices into [`LABELS`]) that are members of the plan's room number
/// `index`: 8 of every 20 only A, 5 only B, 5 only C, and 2 shared (A and B, B and C,
/// A and C, or all three, in turn).
pub fn members_of(index: usize) -> &'static [usize] {
    let even = (index / 20).is_multiple_of(2);
    match index % 20 {
        0..=7 => &[0],
        8..=12 => &[1],
        13..=17 => &[2],
        18 if even => &[0, 1],
        18 => &[1, 2],
        _ if even => &[0, 2],
        _ => &[0, 1, 2],
    }
}

/// The plan's rooms and their members, by room id.
fn membership(plan: &TrafficPlan) -> BTreeMap<i64, &'static [usize]> {
    plan.profiles
        .iter()
        .enumerate()
        .map(|(index, p)| (p.room_id, members_of(index)))
        .collect()
}

/// The least a room check every minute must fetch: rooms with a new message in a
/// simulated minute, per minute, for every room and for each account's rooms.
#[derive(Debug, Clone, Copy)]
pub struct Demand {
    pub total: f64,
    pub by_account: [f64; 3],
    /// Posts per simulated minute, every room.
    pub posts: f64,
}

pub fn demand(plan: &TrafficPlan) -> Demand {
    let members = membership(plan);
    let minutes = plan.duration.as_secs_f64() / 60.0;
    let mut changed: HashSet<(i64, u64)> = HashSet::new();
    let mut posts = 0usize;
    for e in &plan.events {
        if let TrafficEvent::Post { room_id } = e.event {
            changed.insert((room_id, e.at.as_secs() / 60));
            posts += 1;
        }
    }
    let mut by_account = [0.0; 3];
    for (room, _) in &changed {
        for &m in members.get(room).copied().unwrap_or_default() {
            by_account[m] += 1.0 / minutes;
        }
    }
    Demand {
        total: changed.len() as f64 / minutes,
        by_account,
        posts: posts as f64 / minutes,
    }
}

/// What one account did in a run.
#[derive(Debug, Clone)]
pub struct AccountFigures {
    pub label: &'static str,
    /// Rooms it is a member of.
    pub rooms: usize,
    /// Whether the run reads through it.
    pub connected: bool,
    /// Requests with its token, of them message fetches, fetches of shared rooms, and
    /// 429s.
    pub requests: usize,
    pub fetches: usize,
    pub shared_fetches: usize,
    pub rate_limited: usize,
}

/// What one run did.
#[derive(Debug, Clone)]
pub struct AccountsFigures {
    pub setup: Setup,
    /// Rooms in the organization, and those the run's accounts are members of.
    pub rooms_exist: usize,
    pub rooms_visible: usize,
    /// Rooms with messages in the database at the end (the set-up's first fetch, or
    /// the run's).
    pub rooms_synced: i64,
    /// Rooms with a post during the run, and of them those whose every post was stored.
    pub rooms_with_traffic: usize,
    pub rooms_whole: usize,
    /// Rooms fetched during the measured part.
    pub rooms_fetched: usize,
    /// Posts, and those stored; the same for the rooms the run's accounts see.
    pub posted: usize,
    pub stored: usize,
    pub posted_visible: usize,
    pub stored_visible: usize,
    /// Simulated seconds from posted to stored, of the stored messages.
    pub freshness: Quantiles,
    pub accounts: Vec<AccountFigures>,
    /// What the limit allowed each account over the run's windows.
    pub allowed_per_account: u64,
    pub rooms_with_gaps: i64,
    /// Simulated minutes played.
    pub minutes: f64,
    /// Real time of the measured part.
    pub took: Duration,
}

impl AccountsFigures {
    /// Messages stored per simulated minute.
    pub fn throughput(&self) -> f64 {
        self.stored as f64 / self.minutes
    }

    pub fn coverage(&self) -> f64 {
        self.rooms_synced as f64 / self.rooms_exist.max(1) as f64
    }
}

fn account(account_id: i64, name: &str, of: &FakeAccount) -> FakeAccount {
    FakeAccount {
        account_id,
        name: name.to_owned(),
        organization_id: of.organization_id,
        organization_name: of.organization_name.clone(),
    }
}

/// Adds an account with its API token as `POST /api/chatwork/connections` does: `/me`
/// read with the token, then the connection stored sealed.
async fn connect(pool: &PgPool, connections: &Connections, token: &str) -> anyhow::Result<()> {
    let secret = SecretString::from(token.to_owned());
    let me = connections
        .whoami(
            &secret,
            false,
            tokio::time::Instant::now() + Duration::from_secs(10),
        )
        .await?;
    store::connect(
        pool,
        connections.cipher().context("the cipher")?,
        NewConnection {
            kind: "api_token",
            me: &me,
            connected_by: "bench",
            scopes: "",
            access_token: &secret,
            refresh_token: None,
            expires_at: None,
        },
    )
    .await?;
    Ok(())
}

/// The set-up: a rooms sync and a sync of all rooms through the run's connections, each
/// run to its end. The sync of all rooms (a room check as its first step, which reads
/// every connection's room list) rather than one of the active rooms: that one takes one
/// room list for the whole job, through the connection of whichever room asks first, so
/// the rooms of the other accounts are fetched without a count of their messages and
/// their next fetch reports a gap of everything they had.
async fn set_up(
    world: &World,
    pool: &PgPool,
    context: &Arc<SyncContext>,
    consumers: usize,
) -> anyhow::Result<()> {
    let timeout = Duration::from_secs(300);
    let rooms = jobs::start::<RoomsSync>(
        pool,
        world.queues.as_ref(),
        &RoomsSyncPayload::default(),
        Some("bench"),
    )
    .await?;
    let consumer: JobConsumer<RoomsSync> =
        JobConsumer::new(pool.clone(), world.queues.clone(), context.clone());
    let job = world
        .run_job(
            rooms.job.id,
            vec![(world.source(RoomsSync::QUEUE), consumer)],
            timeout,
        )
        .await?;
    anyhow::ensure!(
        job.status == JobStatus::Completed,
        "the set-up's rooms sync ended {:?}: {:?}",
        job.status,
        job.error
    );
    let sync = jobs::start::<MessagesSync>(
        pool,
        world.queues.as_ref(),
        &MessagesSyncPayload::All,
        Some("bench"),
    )
    .await?;
    let pairs = (0..consumers)
        .map(|_| {
            (
                world.source(MessagesSync::QUEUE),
                JobConsumer::<MessagesSync>::new(
                    pool.clone(),
                    world.queues.clone(),
                    context.clone(),
                ),
            )
        })
        .collect();
    let job = world.run_job(sync.job.id, pairs, timeout).await?;
    anyhow::ensure!(
        job.status == JobStatus::Completed,
        "the set-up's messages sync ended {:?}: {:?}",
        job.status,
        job.error
    );
    Ok(())
}

/// The room of a message fetch's path (`/v2/rooms/{id}/messages`).
fn fetched_room(path: &str) -> Option<i64> {
    path.strip_prefix("/v2/rooms/")?
        .strip_suffix("/messages")?
        .parse()
        .ok()
}

/// Plays the traffic and syncs it through `setup`'s connections with the room check
/// every minute.
pub async fn run(setup: Setup, s: &AccountsSettings) -> anyhow::Result<AccountsFigures> {
    let plan = s.plan();
    let members = membership(&plan);
    let window = Duration::from_secs_f64(300.0 / s.speed);
    let rooms = plan
        .profiles
        .iter()
        .map(|p| world::room(p.room_id, 5, 200))
        .collect();
    let world = World::new(rooms, (s.limit, window)).await;
    let fake = &world.fake;
    let a = fake.default_account();
    let accounts = [
        a.clone(),
        account(B, "高橋 美咲", &a),
        account(C, "伊藤 翔太", &a),
    ];
    let mut rooms_of: [Vec<i64>; 3] = Default::default();
    for (&room, &of) in &members {
        for &m in of {
            rooms_of[m].push(room);
        }
        if !of.contains(&0) {
            fake.set_member(FakeChatwork::DEFAULT_ACCOUNT_ID, room, false);
        }
    }
    fake.add_account(accounts[1].clone(), Some(B_TOKEN), &rooms_of[1]);
    fake.add_account(accounts[2].clone(), Some(C_TOKEN), &rooms_of[2]);

    let pool = world::pool(&world.db.config, s.consumers as u32 + 4)?;
    let mut settings = client_settings(fake, fake.token())?;
    settings.reset_margin = Duration::from_secs_f64(1.0 / s.speed);
    let bootstrap = ChatworkClient::new(settings.clone(), pool.clone())?;
    let connections = match setup {
        Setup::OneToken => Connections::of_client(bootstrap),
        Setup::ThreeConnections => {
            let connections = Connections::new(
                pool.clone(),
                ClientSettings {
                    token: SecretString::from(String::new()),
                    ..settings
                },
                Some(bootstrap),
                Some(TokenCipher::local(KEY)),
                None,
            );
            for token in [B_TOKEN, C_TOKEN] {
                connect(&pool, &connections, token).await?;
            }
            connections
        }
    };
    let context = Arc::new(SyncContext::with_connections(connections.clone()));
    set_up(&world, &pool, &context, s.consumers).await?;
    // A whole window of rest: every budget is whole when the measured part starts (and
    // the set-up's rooms have settled: Chatwork's times have a one-second resolution).
    tokio::time::sleep(window.max(Duration::from_millis(2100)) + Duration::from_millis(200)).await;

    let requests_before = fake.requests().len();
    let started_at = chrono::Utc::now();
    let began = Instant::now();
    let playback = fake.play(plan.clone(), s.speed);
    let stop = Arc::new(AtomicBool::new(false));
    let mut pollers = tokio::task::JoinSet::new();
    for _ in 0..s.consumers {
        let consumer: JobConsumer<MessagesSync> =
            JobConsumer::new(pool.clone(), world.queues.clone(), context.clone());
        let source = world.source(MessagesSync::QUEUE);
        let stop = stop.clone();
        pollers.spawn(async move {
            loop {
                let n = source.poll_once(&consumer).await?;
                if n == 0 && stop.load(Ordering::Relaxed) {
                    return anyhow::Ok(());
                }
            }
        });
    }
    // The room check every simulated minute through the traffic, and once more after it.
    let interval = Duration::from_secs(60).div_f64(s.speed);
    let ticks = (s.duration.as_secs_f64() / 60.0).ceil() as u32 + 1;
    let check_settings = RoomCheckSettings {
        cadence: interval,
        reserve_percent: s.reserve_percent,
        ..RoomCheckSettings::default()
    };
    let start = tokio::time::Instant::now();
    for tick in 1..=ticks {
        tokio::time::sleep_until(start + interval * tick).await;
        if let Err(e) =
            schedule::room_check(&pool, world.queues.as_ref(), &connections, &check_settings).await
        {
            eprintln!("    room check {tick} ({}) failed: {e}", setup.describe());
        }
    }
    let record = playback.await.context("the traffic playback")?;
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

    // What was stored of what was posted, and when.
    let ids: Vec<String> = record.posted.iter().map(|p| p.message_id.clone()).collect();
    let stored: HashMap<String, chrono::DateTime<chrono::Utc>> =
        sqlx::query_as("SELECT message_id, created_at FROM messages WHERE message_id = ANY($1)")
            .bind(&ids)
            .fetch_all(world.pool())
            .await?
            .into_iter()
            .collect();
    let visible = |room: i64| {
        members
            .get(&room)
            .is_some_and(|of| of.iter().any(|m| setup.accounts().contains(m)))
    };
    let mut freshness = Vec::new();
    let (mut posted_visible, mut stored_visible, mut stored_all) = (0, 0, 0);
    // Per room with traffic: whether every post was stored.
    let mut whole: BTreeMap<i64, bool> = BTreeMap::new();
    for posted in &record.posted {
        let at = stored.get(&posted.message_id);
        let entry = whole.entry(posted.room_id).or_insert(true);
        *entry &= at.is_some();
        if visible(posted.room_id) {
            posted_visible += 1;
        }
        if let Some(at) = at {
            stored_all += 1;
            if visible(posted.room_id) {
                stored_visible += 1;
            }
            let posted_at = chrono::DateTime::<chrono::Utc>::from(posted.at);
            let real = (*at - posted_at).num_microseconds().unwrap_or(0) as f64 / 1e6;
            freshness.push(real.max(0.0) * s.speed);
        }
    }
    let room_ids: Vec<i64> = members.keys().copied().collect();
    let rooms_synced: i64 =
        sqlx::query_scalar("SELECT count(DISTINCT room_id) FROM messages WHERE room_id = ANY($1)")
            .bind(&room_ids)
            .fetch_one(world.pool())
            .await?;
    let rooms_with_gaps: i64 =
        sqlx::query_scalar("SELECT count(*) FROM chatwork_rooms WHERE gap_detected_at >= $1")
            .bind(started_at)
            .fetch_one(world.pool())
            .await?;

    let requests = fake.requests();
    let measured = &requests[requests_before..];
    let mut rooms_fetched: HashSet<i64> = HashSet::new();
    let accounts: Vec<AccountFigures> = accounts
        .iter()
        .enumerate()
        .map(|(index, acc)| {
            let mine: Vec<_> = measured
                .iter()
                .filter(|r| r.account_id == Some(acc.account_id))
                .collect();
            let fetches: Vec<i64> = mine
                .iter()
                .filter(|r| r.status.is_some_and(|s| s < 300))
                .filter_map(|r| fetched_room(&r.path))
                .collect();
            rooms_fetched.extend(fetches.iter().copied());
            AccountFigures {
                label: LABELS[index],
                rooms: rooms_of[index].len(),
                connected: setup.accounts().contains(&index),
                requests: mine.len(),
                fetches: fetches.len(),
                shared_fetches: fetches
                    .iter()
                    .filter(|room| members.get(room).is_some_and(|of| of.len() > 1))
                    .count(),
                rate_limited: mine.iter().filter(|r| r.status == Some(429)).count(),
            }
        })
        .collect();
    let windows = (took.as_secs_f64() / window.as_secs_f64()).ceil() as u64;
    Ok(AccountsFigures {
        setup,
        rooms_exist: members.len(),
        rooms_visible: members.keys().filter(|&&room| visible(room)).count(),
        rooms_synced,
        rooms_with_traffic: whole.len(),
        rooms_whole: whole.values().filter(|&&w| w).count(),
        rooms_fetched: rooms_fetched.len(),
        posted: record.posted.len(),
        stored: stored_all,
        posted_visible,
        stored_visible,
        freshness: Quantiles::of(freshness),
        accounts,
        allowed_per_account: windows * u64::from(s.limit),
        rooms_with_gaps,
        minutes: s.duration.as_secs_f64() / 60.0,
        took,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rooms_are_split_forty_twenty_five_twenty_five_and_ten_shared() {
        let mut only = [0usize; 3];
        let mut shared = 0;
        for index in 0..600 {
            match members_of(index) {
                [one] => only[*one] += 1,
                _ => shared += 1,
            }
        }
        assert_eq!(only, [240, 150, 150]);
        assert_eq!(shared, 60);
        let seen_by = |m: usize| (0..600).filter(|&i| members_of(i).contains(&m)).count();
        // A is in three of the four kinds of shared room, B and C in three each too.
        assert_eq!([seen_by(0), seen_by(1), seen_by(2)], [285, 195, 195]);
    }

    #[test]
    fn the_default_load_is_more_than_one_token_can_check_and_less_than_three() {
        let s = AccountsSettings::default();
        let d = demand(&s.plan());
        let usable = s.usable_per_minute();
        assert!(d.total > usable, "{d:?} against {usable}");
        assert!(d.total < 3.0 * usable, "{d:?} against {usable}");
        assert!(d.by_account[0] > 0.7 * usable, "{d:?} against {usable}");
    }
}
