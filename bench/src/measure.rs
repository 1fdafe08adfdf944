//! Measurements 1 to 7: rate-limit efficiency, incremental cost, fan-out, storage, cold
//! start, memory (the cost is computed from these in `stats`). Each returns figures;
//! `main` puts them in the table against their goals.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, UNIX_EPOCH};

use anyhow::Context as _;
use async_trait::async_trait;
use aws_lambda_events::sqs::SqsEvent;
use cwsync::jobs::{self, JobSpec, JobStatus};
use cwsync::queue::{
    Delivery, EmbeddedQueues, EmbeddedSettings, OutgoingMessage, QueueError, QueueName, Queues,
    SendError, SqsQueues,
};
use cwsync::sync::messages::{MessagesSync, MessagesSyncPayload};
use cwsync_tests::{TcpProxy, TestDb, WireCounts, create_test_queues, sqs_emulator};
use secrecy::ExposeSecret;
use sqlx::PgPool;

use crate::runtime::{FunctionProcess, StubRuntime, lambda_env};
use crate::sqs_wire::SqsCallCounter;
use crate::stats::{Window, median, sustained_ratio};
use crate::world::{self, World, client_settings, messages_consumer, poster, room};

/// A second token of the fake for set-up work, so that it stays out of the measured
/// token's rate windows.
const SETUP_TOKEN: &str = "fake-chatwork-setup-token-0123456789";

/// Waits until every connection of `pools` is back and idle: sqlx pings a connection
/// it takes back in a task of its own, so counts are read only after that.
pub(crate) async fn settled(pools: &[&PgPool]) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline && pools.iter().any(|p| p.num_idle() != p.size() as usize) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
}

// ---- 1. rate-limit efficiency ----

pub struct RateFigures {
    pub consumers: usize,
    pub ratio: f64,
    pub rate_limited: u64,
    pub requests: u64,
    pub windows: usize,
    pub took: Duration,
}

/// A messages sync of `rooms` changed rooms by `consumers` concurrent consumers (each
/// with pools and a Chatwork client of its own, as separate Lambda instances have)
/// sharing one token against a fake enforcing `limit` per `window`.
pub async fn rate_limit(
    consumers: usize,
    rooms: usize,
    limit: u32,
    window: Duration,
    reset_margin: Duration,
) -> anyhow::Result<RateFigures> {
    let rooms = (1..=rooms as i64)
        .map(|i| room(10_000 + i, 3, 200))
        .collect();
    let world = World::new(rooms, (limit, window)).await;
    world.fake.add_token(SETUP_TOKEN);
    world.rooms_sync(SETUP_TOKEN).await?;
    let mut settings = client_settings(&world.fake, world.fake.token())?;
    settings.reset_margin = reset_margin;
    let list = (0..consumers)
        .map(|_| {
            messages_consumer(
                world::pool(&world.db.config, 2)?,
                world::pool(&world.db.config, 2)?,
                settings.clone(),
            )
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let limited_before = world.fake.rate_limited_count();
    let (_, took) = world.messages_sync(&list).await?;
    let windows: Vec<Window> = world
        .fake
        .rate_windows(world.fake.token())
        .iter()
        .map(|w| Window {
            start_secs: w
                .start
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs_f64(),
            counted: w.counted,
        })
        .collect();
    Ok(RateFigures {
        consumers,
        ratio: sustained_ratio(&windows, limit, window).context("fewer than two windows")?,
        rate_limited: world.fake.rate_limited_count() - limited_before,
        requests: windows.iter().map(|w| u64::from(w.counted)).sum(),
        windows: windows.len(),
        took,
    })
}

// ---- 2. incremental cost ----

pub struct IncrementalFigures {
    pub rooms: usize,
    pub changed: usize,
    pub requests: usize,
}

/// Messages syncs of `rooms` rooms with each count of changed rooms in `changes`.
pub async fn incremental(
    rooms: usize,
    changes: &[usize],
) -> anyhow::Result<Vec<IncrementalFigures>> {
    let ids: Vec<i64> = (1..=rooms as i64).map(|i| 20_000 + i).collect();
    let world = World::new(
        ids.iter().map(|&id| room(id, 5, 200)).collect(),
        world::UNLIMITED,
    )
    .await;
    world.rooms_sync(world.fake.token()).await?;
    let settings = client_settings(&world.fake, world.fake.token())?;
    let consumer = messages_consumer(world.pool().clone(), world.pool().clone(), settings)?;
    // The first sync fetches every room.
    world.messages_sync(std::slice::from_ref(&consumer)).await?;
    let mut figures = Vec::new();
    for (round, &changed) in changes.iter().enumerate() {
        for &id in ids.iter().cycle().skip(round * 7).take(changed) {
            world
                .fake
                .post_message(id, &poster(), "a new message")
                .context("a room of the fake")?;
        }
        // A room's last_update_time has a resolution of one second: a sync records it
        // only once it is settled (2 s), so that a message posted later in that same
        // second is not missed. Wait that out so the sync is steady-state.
        tokio::time::sleep(Duration::from_millis(3100)).await;
        let from = world.fake.requests().len();
        world.messages_sync(std::slice::from_ref(&consumer)).await?;
        figures.push(IncrementalFigures {
            rooms,
            changed,
            requests: world.fake.requests().len() - from,
        });
    }
    Ok(figures)
}

// ---- 3. fan-out ----

/// Counts calls through the [`Queues`] trait (for the embedded queue, which has no wire).
struct CountingQueues {
    inner: Arc<dyn Queues>,
    sends: AtomicU64,
}

#[async_trait]
impl Queues for CountingQueues {
    async fn send(&self, queue: QueueName, messages: &[OutgoingMessage]) -> Result<(), SendError> {
        self.sends.fetch_add(1, Ordering::SeqCst);
        self.inner.send(queue, messages).await
    }
    async fn receive(
        &self,
        queue: QueueName,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<Delivery>, QueueError> {
        self.inner.receive(queue, max, wait).await
    }
    async fn delete(&self, queue: QueueName, handles: &[String]) -> Result<(), QueueError> {
        self.inner.delete(queue, handles).await
    }
    async fn depth(&self, queue: QueueName) -> Result<u64, QueueError> {
        self.inner.depth(queue).await
    }
    async fn ping(&self) -> Result<(), QueueError> {
        self.inner.ping().await
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Moto,
    Embedded,
}

pub struct FanOutFigures {
    pub rooms: usize,
    /// SQS calls on the wire, by action (moto only).
    pub sqs_calls: BTreeMap<String, u64>,
    /// `Queues::send` calls.
    pub trait_sends: u64,
    pub wire: WireCounts,
    pub took: Duration,
    pub queued: u64,
}

/// Starting a messages sync of `rooms` registered rooms: its SQS calls, statements and
/// transactions, and its time.
pub async fn fan_out(backend: Backend, rooms: usize) -> anyhow::Result<FanOutFigures> {
    let db = TestDb::new().await;
    sqlx::query(
        "INSERT INTO chatwork_rooms (room_id, name, room_type)
         SELECT g, 'room ' || g, 'group' FROM generate_series(1, $1::bigint) AS g",
    )
    .bind(rooms as i64)
    .execute(&db.pool)
    .await?;
    let proxy = TcpProxy::start(db.server_addr()).await;
    let pool = world::pool(&db.config_via(proxy.addr()), 2)?;
    let (inner, counter): (Arc<dyn Queues>, Option<SqsCallCounter>) = match backend {
        Backend::Embedded => (
            Arc::new(EmbeddedQueues::new(EmbeddedSettings::default())),
            None,
        ),
        Backend::Moto => {
            // Fresh queues: moto slows down as a queue fills.
            let direct = create_test_queues(600, 4).await;
            let counter = SqsCallCounter::start(&sqs_emulator().endpoint).await?;
            let mut urls = HashMap::new();
            for queue in cwsync::job_types::registry().work_queues() {
                urls.insert(queue, direct.url(queue)?.to_owned());
                let dlq = queue.dead_letter();
                urls.insert(dlq, direct.url(dlq)?.to_owned());
            }
            (
                Arc::new(SqsQueues::new(counter.client(), urls)),
                Some(counter),
            )
        }
    };
    let queues = CountingQueues {
        inner: inner.clone(),
        sends: AtomicU64::new(0),
    };
    let before = proxy.counts();
    let begun = Instant::now();
    let started = jobs::start::<MessagesSync>(
        &pool,
        &queues,
        &MessagesSyncPayload::default(),
        Some("bench"),
    )
    .await?;
    let took = begun.elapsed();
    settled(&[&pool]).await;
    let wire = proxy.counts() - before;
    let sqs_calls = counter.as_ref().map(|c| c.calls()).unwrap_or_default();
    anyhow::ensure!(
        started.job.total_items == rooms as i32 && started.job.status == JobStatus::Queued,
        "the job was not queued whole: {:?}",
        started.job
    );
    let queued = inner.depth(MessagesSync::QUEUE).await?;
    Ok(FanOutFigures {
        rooms,
        sqs_calls,
        trait_sends: queues.sends.load(Ordering::SeqCst),
        wire,
        took,
        queued,
    })
}

// ---- 4. storage ----

pub struct StorageRound {
    pub what: &'static str,
    pub rooms: usize,
    pub stored: i64,
    pub edited: i64,
    pub took: Duration,
    /// The consumer's own pool (job core and sync).
    pub sync: WireCounts,
    /// The Chatwork client's rate budget.
    pub budget: WireCounts,
}

/// Two messages syncs of `rooms` rooms through one consumer, the budget out of the way
/// and Chatwork at zero latency: the first stores `per_room` new messages per room, the
/// second `edits` edited and `edits` new ones per room. The consumer's pool and its
/// Chatwork client's budget pool each reach Postgres through a counting proxy.
pub async fn storage(
    rooms: usize,
    per_room: usize,
    edits: usize,
) -> anyhow::Result<Vec<StorageRound>> {
    let ids: Vec<i64> = (1..=rooms as i64).map(|i| 30_000 + i).collect();
    let world = World::new(
        ids.iter().map(|&id| room(id, per_room, 300)).collect(),
        world::UNLIMITED,
    )
    .await;
    world.rooms_sync(world.fake.token()).await?;
    let sync_proxy = TcpProxy::start(world.db.server_addr()).await;
    let budget_proxy = TcpProxy::start(world.db.server_addr()).await;
    let sync_pool = world::pool(&world.db.config_via(sync_proxy.addr()), 2)?;
    let budget_pool = world::pool(&world.db.config_via(budget_proxy.addr()), 2)?;
    let consumer = messages_consumer(
        sync_pool.clone(),
        budget_pool.clone(),
        client_settings(&world.fake, world.fake.token())?,
    )?;
    let mut rounds = Vec::new();
    for what in ["new messages", "edits and new messages"] {
        if !rounds.is_empty() {
            for &id in &ids {
                let room = world.fake.room(id).context("a room of the fake")?;
                for message in room.messages.iter().rev().take(edits) {
                    world
                        .fake
                        .edit_message(id, &message.message_id, "edited: see the new figures");
                }
                for i in 0..edits {
                    world
                        .fake
                        .post_message(id, &poster(), &world::body_of(300, i))
                        .context("a room of the fake")?;
                }
            }
            // Let the rooms' last_update_time settle (see `incremental`).
            tokio::time::sleep(Duration::from_millis(3100)).await;
        }
        settled(&[&sync_pool, &budget_pool]).await;
        let (sync_before, budget_before) = (sync_proxy.counts(), budget_proxy.counts());
        let (job, took) = world.messages_sync(std::slice::from_ref(&consumer)).await?;
        settled(&[&sync_pool, &budget_pool]).await;
        let result = job.result.unwrap_or_default();
        let number = |field: &str| result.get(field).and_then(|v| v.as_i64()).unwrap_or(0);
        rounds.push(StorageRound {
            what,
            rooms,
            stored: number("storedMessages"),
            edited: number("editedMessages"),
            took,
            sync: sync_proxy.counts() - sync_before,
            budget: budget_proxy.counts() - budget_before,
        });
    }
    Ok(rounds)
}

// ---- 5. cold start ----

/// A function binary of the workspace.
#[derive(Debug, Clone)]
pub struct Function {
    /// The binary's name (as Lambda's handler and `cargo lambda` know it).
    pub name: String,
    pub path: PathBuf,
}

/// The binary names of `functions/*` (every crate there but the shared glue), read from
/// their `Cargo.toml`, so a new function is measured without touching the benchmark.
pub fn function_binaries(workspace: &Path) -> anyhow::Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(workspace.join("functions"))? {
        let manifest = entry?.path().join("Cargo.toml");
        let Ok(text) = std::fs::read_to_string(&manifest) else {
            continue;
        };
        if let Some(name) = bin_name(&text) {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

/// The name of the first `[[bin]]` of a manifest.
fn bin_name(manifest: &str) -> Option<String> {
    let mut in_bin = false;
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_bin = line == "[[bin]]";
            continue;
        }
        if in_bin && let Some(value) = line.strip_prefix("name") {
            let value = value.trim_start().strip_prefix('=')?.trim();
            return Some(value.trim_matches('"').to_owned());
        }
    }
    None
}

pub struct ColdStart {
    pub function: String,
    pub median: Duration,
    pub runs: Vec<Duration>,
    pub size: u64,
    pub arm64_size: Option<u64>,
}

/// The time from exec to the first poll of the runtime API, `runs` times per binary
/// (taking turns, so that a busy moment of the machine spreads over all of them).
pub async fn cold_starts(
    functions: &[Function],
    target_dir: &Path,
    env: &BTreeMap<String, String>,
    runs: usize,
) -> anyhow::Result<Vec<ColdStart>> {
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); functions.len()];
    for _ in 0..runs {
        for (function, times) in functions.iter().zip(times.iter_mut()) {
            let stub = StubRuntime::start().await?;
            let process = FunctionProcess::spawn(
                &function.path,
                &lambda_env(&function.name, &stub, env),
                None,
            )?;
            let polled = stub
                .first_poll(Duration::from_secs(30))
                .await
                .with_context(|| format!("{} did not poll", function.name))?;
            times.push(polled.duration_since(process.spawned_at));
        }
    }
    functions
        .iter()
        .zip(times)
        .map(|(function, runs)| {
            let arm64 = target_dir
                .join("lambda")
                .join(&function.name)
                .join("bootstrap");
            Ok(ColdStart {
                function: function.name.clone(),
                median: median(&runs).context("no runs")?,
                runs,
                size: std::fs::metadata(&function.path)?.len(),
                arm64_size: std::fs::metadata(arm64).ok().map(|m| m.len()),
            })
        })
        .collect()
}

// ---- 6. memory (and the durations of 7) ----

pub struct MemoryFigures {
    /// Exec to the first poll.
    pub init: Duration,
    pub invocations: Vec<InvocationFigures>,
    pub log: PathBuf,
}

pub struct InvocationFigures {
    pub what: String,
    pub records: usize,
    pub messages: i64,
    pub duration: Duration,
    /// Peak RSS of the process so far.
    pub peak_rss: u64,
}

/// Receives `count` messages of `queue` (moto) as an event source mapping would, in as
/// many receives as it takes.
async fn receive_event(
    queues: &SqsQueues,
    queue: QueueName,
    count: usize,
) -> anyhow::Result<SqsEvent> {
    let mut event = SqsEvent::default();
    let deadline = Instant::now() + Duration::from_secs(30);
    while event.records.len() < count {
        anyhow::ensure!(
            Instant::now() < deadline,
            "{queue} did not deliver {count} messages"
        );
        let batch = queues
            .receive(queue, count - event.records.len(), Duration::ZERO)
            .await?;
        event.records.extend(batch);
    }
    Ok(event)
}

/// The messages-sync function binary handling SQS events of `rooms` rooms of `per_room`
/// messages of `body_bytes` each, through the stub runtime API, against moto's SQS, the
/// fake Chatwork and Postgres: a first (cold) invocation, a second (warm) one on other
/// rooms, and a third on the first rooms with one new message each.
pub async fn memory(
    binary: &Path,
    rooms: usize,
    per_room: usize,
    body_bytes: usize,
) -> anyhow::Result<MemoryFigures> {
    let ids: Vec<i64> = (1..=2 * rooms as i64).map(|i| 40_000 + i).collect();
    let world = World::new(
        ids.iter()
            .map(|&id| room(id, per_room, body_bytes))
            .collect(),
        world::UNLIMITED,
    )
    .await;
    world.rooms_sync(world.fake.token()).await?;
    let queues = create_test_queues(600, 4).await;
    let mut env: BTreeMap<String, String> = [
        (
            "DATABASE_URL",
            world.db.config.url.expose_secret().to_owned(),
        ),
        ("CHATWORK_API_TOKEN", world.fake.token().to_owned()),
        ("CHATWORK_API_BASE_URL", world.fake.base_url()),
        ("AWS_ENDPOINT_URL", sqs_emulator().endpoint.clone()),
        ("RUST_LOG", "info".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    for queue in cwsync::job_types::registry().work_queues() {
        env.insert(queue.url_variable(), queues.url(queue)?.to_owned());
    }
    let stub = StubRuntime::start().await?;
    let log = std::env::temp_dir().join(format!(
        "cwsync-bench-messages-sync-{}.log",
        std::process::id()
    ));
    let (first, second) = ids.split_at(rooms);
    let mut process = None;
    let mut invocations = Vec::new();
    let rounds: [(&str, &[i64]); 3] = [
        ("cold: first invocation of the process", first),
        ("warm: another 10 rooms", second),
        ("warm: 1 new message in each of 10 rooms", first),
    ];
    for (index, (what, active)) in rounds.into_iter().enumerate() {
        if index == 2 {
            for &id in first {
                world
                    .fake
                    .post_message(id, &poster(), &world::body_of(body_bytes, 0))
                    .context("a room of the fake")?;
            }
            tokio::time::sleep(Duration::from_millis(3100)).await;
        }
        sqlx::query("UPDATE chatwork_rooms SET is_active = (room_id = ANY($1))")
            .bind(active)
            .execute(world.pool())
            .await?;
        let started = jobs::start::<MessagesSync>(
            world.pool(),
            &queues,
            &MessagesSyncPayload::default(),
            Some("bench"),
        )
        .await?;
        let event = receive_event(&queues, MessagesSync::QUEUE, rooms).await?;
        let handles: Vec<String> = event
            .records
            .iter()
            .filter_map(|r| r.receipt_handle.clone())
            .collect();
        let id = stub.invoke(serde_json::to_string(&event)?);
        if process.is_none() {
            process = Some(FunctionProcess::spawn(
                binary,
                &lambda_env("messages-sync", &stub, &env),
                Some(&log),
            )?);
        }
        let answer = stub
            .answer(&id, Duration::from_secs(240))
            .await
            .with_context(|| {
                format!(
                    "the messages-sync function's answer (its log: {})",
                    log.display()
                )
            })?;
        let response: serde_json::Value = serde_json::from_str(&answer.body).unwrap_or_default();
        anyhow::ensure!(
            answer.ok && response["batchItemFailures"] == serde_json::json!([]),
            "the function failed the batch: {} (log: {})",
            answer.body,
            log.display()
        );
        queues.delete(MessagesSync::QUEUE, &handles).await?;
        let job = jobs::get(world.pool(), started.job.id)
            .await?
            .context("the job")?;
        anyhow::ensure!(
            job.status == JobStatus::Completed,
            "the job ended {:?}",
            job.status
        );
        let result = job.result.unwrap_or_default();
        let number = |f: &str| result.get(f).and_then(|v| v.as_i64()).unwrap_or(0);
        // VmHWM is updated lazily by the kernel: keep the highest reading.
        let previous = invocations
            .last()
            .map_or(0, |i: &InvocationFigures| i.peak_rss);
        let peak_rss = process
            .as_ref()
            .context("the function")?
            .peak_rss()?
            .max(previous);
        invocations.push(InvocationFigures {
            what: what.to_owned(),
            records: event.records.len(),
            messages: number("storedMessages") + number("editedMessages"),
            duration: answer.duration(),
            peak_rss,
        });
    }
    let process = process.context("the function")?;
    let init = stub
        .first_poll(Duration::from_secs(1))
        .await?
        .duration_since(process.spawned_at);
    Ok(MemoryFigures {
        init,
        invocations,
        log,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_functions_binary_name_is_its_first_bin_sections_name() {
        let manifest =
            "[package]\nname = \"cwsync-dlq\"\n\n[[bin]]\nname = \"dlq\"\npath = \"src/main.rs\"\n";
        assert_eq!(bin_name(manifest).as_deref(), Some("dlq"));
        assert_eq!(bin_name("[package]\nname = \"cwsync-lambda\"\n"), None);
    }

    #[test]
    fn every_function_crate_but_the_glue_is_found() {
        let names = function_binaries(&cwsync_tests::workspace_root()).unwrap();
        for expected in ["api", "dlq", "messages-sync", "rooms-sync", "scheduler"] {
            assert!(names.iter().any(|n| n == expected), "{names:?}");
        }
        assert!(!names.iter().any(|n| n == "common"), "{names:?}");
    }
}
