//! Measurement 9: a Postgres restart in the middle of a messages sync: the
//! real server restarted (`pg_ctl restart -m fast`: every session ended, a checkpoint, a new
//! postmaster), not a proxy cut. The benchmark runs its own temporary cluster (initdb
//! and pg_ctl on a free loopback port, in a temporary folder), so the shared server on
//! 5432 that tests and other builds use is never restarted.
//!
//! The sync runs as the local runner runs it: embedded queues, one messages consumer
//! (one pool, one Chatwork client) polled by two event sources. The fake Chatwork
//! answers each request after a latency so that the sync lasts long enough to restart
//! the server in its middle: once a quarter of the rooms have ended.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use async_trait::async_trait;
use aws_lambda_events::sqs::SqsBatchResponse;
use cwsync::chatwork::ChatworkClient;
use cwsync::consumer::{BatchConsumer, EventSource};
use cwsync::db::DatabaseConfig;
use cwsync::jobs::{self, JobConsumer, JobSpec, JobStatus};
use cwsync::queue::{Delivery, EmbeddedQueues, EmbeddedSettings};
use cwsync::sync::SyncContext;
use cwsync::sync::messages::{MessagesSync, MessagesSyncPayload};
use fake_chatwork::{FakeChatwork, FakeSettings};
use secrecy::SecretString;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::world::{self, client_settings, room};

/// What measurement 9 saw.
pub struct RestartFigures {
    pub rooms: usize,
    pub per_room: usize,
    /// From the job's start to its end.
    pub took: Duration,
    /// When the restart began (from the job's start), and how long `pg_ctl` took.
    pub restart_at: Duration,
    pub restart_took: Duration,
    /// Rooms ended when the restart began.
    pub ended_before: i64,
    pub job_status: JobStatus,
    /// Rows in `messages`, distinct `(room_id, message_id)` among them, and the
    /// messages the fake holds.
    pub rows: i64,
    pub distinct: i64,
    pub posted: usize,
    /// Records the consumer reported failed (each one waits for a redelivery).
    pub failed_records: u64,
    pub failed_items: i64,
    /// Items still `processing` (or not ended) after the job's end.
    pub open_items: i64,
    /// Item starts beyond the first (records run again: the restart met them).
    pub reruns: i64,
}

/// A temporary Postgres cluster of this benchmark: stopped and removed when dropped.
pub(crate) struct Cluster {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    log: PathBuf,
}

impl Cluster {
    /// `initdb` and `pg_ctl start` on a free loopback port, without fsync (this
    /// measurement counts what is lost, not how fast it is written).
    fn start() -> anyhow::Result<Cluster> {
        Self::start_with("restart", "-c fsync=off -c max_connections=50")
    }

    /// `initdb` and `pg_ctl start` on a free loopback port with the server `options`
    /// (`-c name=value` words), in a folder of its own named after `name`.
    pub(crate) fn start_with(name: &str, options: &str) -> anyhow::Result<Cluster> {
        let bin = postgres_bin()?;
        let dir =
            std::env::temp_dir().join(format!("cwsync-bench-pg-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        let data = dir.join("data");
        let log = dir.join("server.log");
        if is_root() {
            // Postgres refuses to run as root: the cluster belongs to `postgres`.
            run(Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&dir))?;
        }
        let port = free_port()?;
        let cluster = Cluster {
            bin,
            dir,
            port,
            log,
        };
        cluster.pg(
            "initdb",
            &[
                "-D",
                path(&data),
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
                "-E",
                "UTF8",
            ],
        )?;
        let options = format!(
            "-p {port} -c listen_addresses=127.0.0.1 -k {} {options}",
            path(&cluster.dir)
        );
        cluster.pg(
            "pg_ctl",
            &[
                "-D",
                path(&data),
                "-o",
                &options,
                "-l",
                path(&cluster.log),
                "-w",
                "start",
            ],
        )?;
        Ok(cluster)
    }

    pub(crate) fn url(&self) -> String {
        self.url_of("postgres")
    }

    /// The URL of `database` on this cluster.
    pub(crate) fn url_of(&self, database: &str) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/{database}?sslmode=disable",
            self.port
        )
    }

    /// `pg_ctl restart -m fast`, waiting until the server accepts connections again.
    fn restart(&self) -> anyhow::Result<Duration> {
        let started = Instant::now();
        self.pg(
            "pg_ctl",
            &[
                "-D",
                path(&self.dir.join("data")),
                "-l",
                path(&self.log),
                "-m",
                "fast",
                "-w",
                "restart",
            ],
        )?;
        Ok(started.elapsed())
    }

    /// Runs one of the server's programs, as `postgres` when this process is root.
    fn pg(&self, program: &str, args: &[&str]) -> anyhow::Result<()> {
        let program = self.bin.join(program);
        let mut command = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&program);
            c
        } else {
            Command::new(&program)
        };
        run(command.args(args))
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let data = self.dir.join("data");
        let _ = self.pg("pg_ctl", &["-D", path(&data), "-m", "immediate", "stop"]);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn path(p: &Path) -> &str {
    p.to_str().expect("temporary paths are UTF-8")
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

fn run(command: &mut Command) -> anyhow::Result<()> {
    let output = command
        .output()
        .with_context(|| format!("running {command:?}"))?;
    anyhow::ensure!(
        output.status.success(),
        "{command:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(())
}

/// The folder of `initdb` and `pg_ctl`: Debian's packages (what `scripts/lib.sh`'s
/// `ensure_postgres` installs) keep them in /usr/lib/postgresql/<version>/bin, off PATH;
/// the newest version there, else PATH's.
fn postgres_bin() -> anyhow::Result<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("pg_ctl").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Ok(bin);
    }
    let found = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .find(|dir| dir.join("pg_ctl").exists() && dir.join("initdb").exists());
    found.context("no initdb and pg_ctl (install PostgreSQL's server: scripts/lib.sh)")
}

fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0))?;
    Ok(listener.local_addr()?.port())
}

/// Counts the records a consumer reports failed.
struct Counting<C> {
    inner: C,
    failed: Arc<AtomicU64>,
}

#[async_trait]
impl<C: BatchConsumer> BatchConsumer for Counting<C> {
    async fn consume(
        &self,
        records: Vec<Delivery>,
        deadline: tokio::time::Instant,
    ) -> SqsBatchResponse {
        let response = self.inner.consume(records, deadline).await;
        self.failed
            .fetch_add(response.batch_item_failures.len() as u64, Ordering::SeqCst);
        response
    }
}

/// A messages sync of `rooms` rooms of `per_room` messages, the server restarted once a
/// quarter of the rooms have ended; `latency` per Chatwork request.
pub async fn restart_mid_sync(
    rooms: usize,
    per_room: usize,
    latency: Duration,
) -> anyhow::Result<RestartFigures> {
    let cluster = Cluster::start()?;
    let config = DatabaseConfig {
        url: SecretString::from(cluster.url()),
        // The local runner's pool.
        max_connections: 10,
        acquire_timeout: Duration::from_secs(10),
        statement_timeout: Duration::from_secs(30),
        idle_timeout: Duration::from_secs(60),
    };
    let pool = cwsync::db::pool(&config)?;
    cwsync::db::migrate(&pool).await?;

    let ids: Vec<i64> = (1..=rooms as i64).map(|i| 90_000 + i).collect();
    let fake = FakeChatwork::start(
        FakeSettings::default()
            .with_rooms(ids.iter().map(|&id| room(id, per_room, 300)).collect())
            .with_rate_limit(world::UNLIMITED.0, world::UNLIMITED.1),
    )
    .await;
    let queues = Arc::new(EmbeddedQueues::new(EmbeddedSettings {
        // A record that fails comes back after this (the local runner waits longer).
        visibility_timeout: Duration::from_secs(10),
        ..EmbeddedSettings::default()
    }));
    let client = ChatworkClient::new(client_settings(&fake, fake.token())?, pool.clone())?;
    let context = Arc::new(SyncContext::new(client));

    // Register the rooms.
    let rooms_job = jobs::start::<cwsync::sync::rooms::RoomsSync>(
        &pool,
        queues.as_ref(),
        &cwsync::sync::rooms::RoomsSyncPayload::default(),
        Some("bench"),
    )
    .await?;
    let rooms_consumer: JobConsumer<cwsync::sync::rooms::RoomsSync> =
        JobConsumer::new(pool.clone(), queues.clone(), context.clone());
    let source = EventSource::new(queues.clone(), cwsync::sync::rooms::RoomsSync::QUEUE);
    while source.poll_once(&rooms_consumer).await? > 0 {}
    let registered = jobs::get(&pool, rooms_job.job.id)
        .await?
        .context("the rooms sync")?;
    anyhow::ensure!(
        registered.status == JobStatus::Completed,
        "the rooms sync ended {:?}",
        registered.status
    );
    fake.set_latency(latency);

    // The sync, polled by two event sources as the local runner does.
    let failed = Arc::new(AtomicU64::new(0));
    let consumer: Arc<dyn BatchConsumer> = Arc::new(Counting {
        inner: JobConsumer::<MessagesSync>::new(pool.clone(), queues.clone(), context.clone()),
        failed: failed.clone(),
    });
    let started = Instant::now();
    let job = jobs::start::<MessagesSync>(
        &pool,
        queues.as_ref(),
        &MessagesSyncPayload::default(),
        Some("bench"),
    )
    .await?
    .job;
    let stop = CancellationToken::new();
    let mut pollers = tokio::task::JoinSet::new();
    for _ in 0..2 {
        let mut source = EventSource::new(queues.clone(), MessagesSync::QUEUE);
        source.wait = Duration::from_millis(20);
        let (consumer, stop) = (consumer.clone(), stop.clone());
        pollers.spawn(async move { source.run(consumer.as_ref(), stop).await });
    }

    // Restart once a quarter of the rooms have ended. The watcher has a pool of its own,
    // which finds its connections dead after the restart as the consumer's does.
    let watcher = cwsync::db::pool(&config)?;
    let ended = |pool: PgPool, job_id| async move {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM job_items
              WHERE job_id = $1 AND status IN ('completed', 'unchanged', 'failed', 'canceled')",
        )
        .bind(job_id)
        .fetch_one(&pool)
        .await
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    let ended_before = loop {
        let n = ended(watcher.clone(), job.id).await?;
        if n >= (rooms / 4) as i64 {
            break n;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the sync did not reach a quarter"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let restart_at = started.elapsed();
    let restart_took = tokio::task::spawn_blocking(move || {
        let took = cluster.restart();
        (cluster, took)
    })
    .await?;
    let (cluster, restart_took) = (restart_took.0, restart_took.1?);

    let finished = loop {
        // The watcher's own statements may meet the restart too: try again.
        if let Ok(Some(job)) = jobs::get(&watcher, job.id).await
            && job.status.is_terminal()
        {
            break job;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the sync did not end within 120 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let took = started.elapsed();
    stop.cancel();
    while pollers.join_next().await.is_some() {}

    let (rows, distinct): (i64, i64) =
        sqlx::query_as("SELECT count(*), count(DISTINCT (room_id, message_id)) FROM messages")
            .fetch_one(&watcher)
            .await?;
    let (failed_items, open_items, reruns): (i64, i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE status = 'failed'),
                count(*) FILTER (WHERE status IN ('pending', 'queued', 'processing')),
                coalesce(sum(greatest(attempts - 1, 0)), 0)::int8
           FROM job_items WHERE job_id = $1",
    )
    .bind(job.id)
    .fetch_one(&watcher)
    .await?;
    let posted = ids
        .iter()
        .filter_map(|&id| fake.room(id))
        .map(|r| r.messages.len())
        .sum();
    pool.close().await;
    watcher.close().await;
    drop(cluster);
    Ok(RestartFigures {
        rooms,
        per_room,
        took,
        restart_at,
        restart_took,
        ended_before,
        job_status: finished.status,
        rows,
        distinct,
        posted,
        failed_records: failed.load(Ordering::SeqCst),
        failed_items,
        open_items,
        reruns,
    })
}
