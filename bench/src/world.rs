//! What the sync benchmarks share: a fresh database, a fake Chatwork with rooms of chosen
//! size, Chatwork clients, and messages syncs run through the consumer path (the job
//! core's `JobConsumer` fed by an `EventSource`, as the local runner and Lambda's event
//! source mappings feed it).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use cwsync::chatwork::{ChatworkClient, ClientSettings};
use cwsync::consumer::EventSource;
use cwsync::db::DatabaseConfig;
use cwsync::jobs::{self, Job, JobConsumer, JobSpec};
use cwsync::queue::{EmbeddedQueues, EmbeddedSettings, QueueName, Queues};
use cwsync::sync::SyncContext;
use cwsync::sync::messages::{MessagesSync, MessagesSyncPayload};
use cwsync::sync::rooms::{RoomsSync, RoomsSyncPayload};
use cwsync_tests::{TestDb, settled_room};
use fake_chatwork::{Account, FakeChatwork, FakeSettings};
use secrecy::SecretString;
use sqlx::PgPool;
use url::Url;

/// A rate limit so high that the budget never waits (for benchmarks of other limits).
pub const UNLIMITED: (u32, Duration) = (1_000_000, Duration::from_secs(300));

/// A message body of about `bytes` bytes (Japanese and ASCII mixed, as chats are).
pub fn body_of(bytes: usize, seed: usize) -> String {
    let mut body = format!("[{seed}] 打ち合わせの件、承知しました。 ");
    let filler = "The quarterly report draft is attached; please review section 3. ";
    while body.len() < bytes {
        body.push_str(filler);
    }
    let mut end = bytes.min(body.len());
    while !body.is_char_boundary(end) {
        end -= 1;
    }
    body.truncate(end);
    body
}

/// A group room with `count` settled messages of about `body_bytes` each.
pub fn room(room_id: i64, count: usize, body_bytes: usize) -> fake_chatwork::Room {
    settled_room(room_id, count, |i| body_of(body_bytes, i))
}

pub fn poster() -> Account {
    Account::new(2002, "鈴木 花子")
}

/// Client settings for `fake` with `token`, assuming the fake's window.
pub fn client_settings(fake: &FakeChatwork, token: &str) -> anyhow::Result<ClientSettings> {
    let mut settings = ClientSettings::new(
        SecretString::from(token.to_owned()),
        Url::parse(&fake.base_url())?,
    );
    settings.request_timeout = Duration::from_secs(10);
    settings.backoff_initial = Duration::from_millis(50);
    settings.backoff_max = Duration::from_millis(500);
    settings.assumed_window = fake.rate_limit().1;
    Ok(settings)
}

/// A pool of `connections` on `config`'s database.
pub fn pool(config: &DatabaseConfig, connections: u32) -> anyhow::Result<PgPool> {
    let mut config = config.clone();
    config.max_connections = connections;
    Ok(cwsync::db::pool(&config)?)
}

/// A consumer as one process (one Lambda instance) would have it: its own pool for the
/// job core and the sync, and a Chatwork client whose rate budget uses `budget_pool`.
pub fn messages_consumer(
    pool: PgPool,
    budget_pool: PgPool,
    settings: ClientSettings,
) -> anyhow::Result<JobConsumer<MessagesSync>> {
    let client = ChatworkClient::new(settings, budget_pool)?;
    // No job of the measured scopes grows: nothing is sent.
    let queues = Arc::new(EmbeddedQueues::new(EmbeddedSettings::default()));
    Ok(JobConsumer::new(
        pool,
        queues,
        Arc::new(SyncContext::new(client)),
    ))
}

/// A fresh database and a fake Chatwork with `rooms` and the rate limit `limit`.
pub struct World {
    pub db: TestDb,
    pub fake: FakeChatwork,
    /// The queues the syncs run on (embedded unless a benchmark says otherwise).
    pub queues: Arc<dyn Queues>,
}

impl World {
    pub async fn new(rooms: Vec<fake_chatwork::Room>, limit: (u32, Duration)) -> Self {
        let fake = FakeChatwork::start(
            FakeSettings::default()
                .with_rooms(rooms)
                .with_rate_limit(limit.0, limit.1),
        )
        .await;
        let db = TestDb::new().await;
        let queues: Arc<dyn Queues> = Arc::new(EmbeddedQueues::new(EmbeddedSettings {
            // Longer than any batch here: no record is delivered twice.
            visibility_timeout: Duration::from_secs(600),
            ..EmbeddedSettings::default()
        }));
        Self { db, fake, queues }
    }

    pub fn pool(&self) -> &PgPool {
        &self.db.pool
    }

    /// Registers the fake's rooms with a rooms sync through its consumer, using `token`
    /// (a second token keeps the set-up out of the measured token's rate windows).
    pub async fn rooms_sync(&self, token: &str) -> anyhow::Result<Job> {
        let client = ChatworkClient::new(client_settings(&self.fake, token)?, self.pool().clone())?;
        let consumer: JobConsumer<RoomsSync> = JobConsumer::new(
            self.pool().clone(),
            self.queues.clone(),
            Arc::new(SyncContext::new(client)),
        );
        let started = jobs::start::<RoomsSync>(
            self.pool(),
            self.queues.as_ref(),
            &RoomsSyncPayload::default(),
            Some("bench"),
        )
        .await?;
        let source = self.source(RoomsSync::QUEUE);
        let job = self
            .run_job(
                started.job.id,
                vec![(source, consumer)],
                Duration::from_secs(300),
            )
            .await?;
        anyhow::ensure!(
            job.status == jobs::JobStatus::Completed,
            "the rooms sync ended {:?}: {:?}",
            job.status,
            job.error
        );
        Ok(job)
    }

    /// An event source on `queue` with batches of ten, as a FIFO event source mapping.
    pub fn source(&self, queue: QueueName) -> EventSource {
        let mut source = EventSource::new(self.queues.clone(), queue);
        source.wait = Duration::from_millis(50);
        source.batch_timeout = Duration::from_secs(300);
        source
    }

    /// Starts a messages sync of every active room and runs it with `consumers` (one
    /// poller each, concurrently) to its end. Returns the job and how long it took from
    /// the start (the request) to the end of the last item.
    pub async fn messages_sync(
        &self,
        consumers: &[JobConsumer<MessagesSync>],
    ) -> anyhow::Result<(Job, Duration)> {
        let begun = Instant::now();
        let started = jobs::start::<MessagesSync>(
            self.pool(),
            self.queues.as_ref(),
            &MessagesSyncPayload::default(),
            Some("bench"),
        )
        .await?;
        let pairs: Vec<_> = consumers
            .iter()
            .map(|c| (self.source(MessagesSync::QUEUE), c.clone()))
            .collect();
        let job = self
            .run_job(started.job.id, pairs, Duration::from_secs(300))
            .await?;
        let finished = job.finished_at.context("a finished job has its end")?;
        let took = (finished - job.created_at)
            .to_std()
            .unwrap_or_else(|_| begun.elapsed());
        anyhow::ensure!(
            job.status == jobs::JobStatus::Completed,
            "the messages sync ended {:?}: {:?}",
            job.status,
            job.error
        );
        Ok((job, took))
    }

    /// Polls with every (source, consumer) pair concurrently until the job has ended.
    pub async fn run_job<K: cwsync::jobs::JobKind>(
        &self,
        job_id: uuid::Uuid,
        pairs: Vec<(EventSource, JobConsumer<K>)>,
        timeout: Duration,
    ) -> anyhow::Result<Job>
    where
        JobConsumer<K>: cwsync::consumer::BatchConsumer,
    {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut tasks = tokio::task::JoinSet::new();
        for (source, consumer) in pairs {
            let pool = self.pool().clone();
            tasks.spawn(async move {
                loop {
                    let polled = source.poll_once(&consumer).await?;
                    if polled == 0 {
                        let job = jobs::get(&pool, job_id).await?.context("the job")?;
                        if job.status.is_terminal() {
                            return anyhow::Ok(());
                        }
                        anyhow::ensure!(
                            tokio::time::Instant::now() < deadline,
                            "the job did not end in time: {job:?}"
                        );
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            });
        }
        while let Some(done) = tasks.join_next().await {
            done??;
        }
        jobs::get(self.pool(), job_id).await?.context("the job")
    }
}
