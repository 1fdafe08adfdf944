//! The whole system in one process: the consumers of every queue (what Lambda's event
//! source mappings and consumer functions do in AWS), the scheduled tasks, and the queues
//! themselves (embedded, or SQS when the queue URLs are set).

use std::sync::Arc;
use std::time::Duration;

use cwsync::connections::Connections;
use cwsync::consumer::{BatchConsumer, EventSource};
use cwsync::jobs::{self, Contexts, DeadLetterConsumer, Registry};
use cwsync::queue::{EmbeddedQueues, EmbeddedSettings, QueueConfig, QueueName, Queues, SqsQueues};
use cwsync::schedule::{self, ScheduleSettings, Task, runs};
use cwsync::summary::SummaryContext;
use cwsync::sync::SyncContext;
use cwsync::sync::check::RoomCheckReport;
use sqlx::PgPool;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// How long a batch may run, as the consumer functions' timeout (360 s) less its margin:
/// long enough to wait out a whole Chatwork rate-limit window inside one batch.
const BATCH_TIMEOUT: Duration = Duration::from_secs(350);
/// Concurrent pollers per work queue (the event source mappings' MaximumConcurrency).
const POLLERS_PER_QUEUE: usize = 2;
/// Longest wait for batches in flight at shutdown.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Which queues carry the jobs.
pub enum QueueBackend {
    Embedded(EmbeddedQueues),
    Sqs(SqsQueues),
}

impl QueueBackend {
    /// SQS when every work queue's URL is set, the embedded queue when none is.
    pub async fn from_config(config: &QueueConfig, registry: &Registry) -> anyhow::Result<Self> {
        let queues = registry.work_queues();
        let missing = config.missing(&queues);
        if missing.is_empty() {
            return Ok(Self::Sqs(SqsQueues::from_config(config).await));
        }
        if missing.len() == queues.len() {
            return Ok(Self::Embedded(EmbeddedQueues::new(EmbeddedSettings {
                // Longer than a batch may take, so a batch still running is never
                // delivered twice.
                visibility_timeout: BATCH_TIMEOUT + Duration::from_secs(60),
                ..EmbeddedSettings::default()
            })));
        }
        let names: Vec<String> = queues.iter().map(|q| q.url_variable()).collect();
        anyhow::bail!(
            "set all of {} (SQS), or none (the embedded queue)",
            names.join(", ")
        )
    }

    pub fn queues(&self) -> Arc<dyn Queues> {
        match self {
            Self::Embedded(q) => Arc::new(q.clone()),
            Self::Sqs(q) => Arc::new(q.clone()),
        }
    }

    pub fn describe(&self) -> &'static str {
        match self {
            Self::Embedded(_) => {
                "embedded (in this process; set the *_QUEUE_URL variables for SQS)"
            }
            Self::Sqs(_) => "SQS",
        }
    }
}

/// The background work of the local system; stopped with [`Workers::stop`].
pub struct Workers {
    stop: CancellationToken,
    tasks: JoinSet<()>,
}

impl Workers {
    /// Starts pollers for every queue with its consumer.
    pub fn start(
        queues: Arc<dyn Queues>,
        consumers: Vec<(QueueName, Arc<dyn BatchConsumer>)>,
    ) -> Self {
        let stop = CancellationToken::new();
        let mut tasks = JoinSet::new();
        for (queue, consumer) in consumers {
            let pollers = if queue.is_dead_letter() {
                1
            } else {
                POLLERS_PER_QUEUE
            };
            for _ in 0..pollers {
                let mut source = EventSource::new(queues.clone(), queue);
                source.batch_timeout = BATCH_TIMEOUT;
                let (consumer, stop) = (consumer.clone(), stop.clone());
                tasks.spawn(async move { source.run(consumer.as_ref(), stop).await });
            }
        }
        Self { stop, tasks }
    }

    /// Adds a task that runs until the workers stop.
    pub fn spawn<F>(&mut self, work: impl FnOnce(CancellationToken) -> F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        self.tasks.spawn(work(self.stop.clone()));
    }

    /// Stops taking new work and waits (at most [`DRAIN_TIMEOUT`]) for batches in flight.
    /// Returns whether everything finished in time.
    pub async fn stop(mut self) -> bool {
        self.stop.cancel();
        tokio::time::timeout(DRAIN_TIMEOUT, async {
            while self.tasks.join_next().await.is_some() {}
        })
        .await
        .is_ok()
    }
}

/// The dead-letter consumers, one per dead-letter queue.
pub fn dead_letter_consumers(
    pool: &PgPool,
    registry: &Registry,
) -> Vec<(QueueName, Arc<dyn BatchConsumer>)> {
    let consumer: Arc<dyn BatchConsumer> = Arc::new(DeadLetterConsumer::new(
        pool.clone(),
        registry.clone(),
        EmbeddedSettings::default().max_receive_count,
    ));
    registry
        .dead_letter_queues()
        .into_iter()
        .map(|q| (q, consumer.clone()))
        .collect()
}

/// How often the local schedule runs each task.
#[derive(Debug, Clone)]
pub struct Cadence {
    pub sweep: Duration,
    /// `None`: no room check.
    pub room_check: Option<Duration>,
    /// `None`: no scheduled messages sync.
    pub messages_sync: Option<Duration>,
    pub retention: Duration,
}

impl Cadence {
    /// The same, as the API and the run records see it (the local timer runs no rooms
    /// sync).
    pub fn cadences(&self) -> schedule::Cadences {
        schedule::Cadences {
            room_check: self.room_check,
            rooms_sync: None,
            messages_sync: self.messages_sync,
            sweep: Some(self.sweep),
            retention: Some(self.retention),
        }
    }
}

/// How often the timer takes the runs people requested (`POST /api/schedules/{task}/run`):
/// the scheduler function's minutely tick, sooner.
pub const TICK: Duration = Duration::from_secs(2);

/// Runs the scheduled tasks on their cadence until `stop`, each start recorded (see
/// `cwsync::schedule::runs`), and every [`TICK`] the runs people requested.
pub async fn run_schedule(
    pool: PgPool,
    queues: Arc<dyn Queues>,
    settings: ScheduleSettings,
    cadence: Cadence,
    stop: CancellationToken,
) {
    let mut sweep = tokio::time::interval(cadence.sweep);
    let mut retention = tokio::time::interval(cadence.retention);
    let mut sync =
        tokio::time::interval(cadence.messages_sync.unwrap_or(Duration::from_secs(86400)));
    let mut check = tokio::time::interval(cadence.room_check.unwrap_or(Duration::from_secs(86400)));
    // A check that runs late (a slow Chatwork) is not followed by a burst of catch-ups.
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick of an interval is immediate; a sync should wait its first period.
    sync.tick().await;
    check.tick().await;
    loop {
        let task = tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => None,
            _ = sweep.tick() => Some(Task::Sweep),
            _ = retention.tick() => Some(Task::Retention),
            _ = sync.tick(), if cadence.messages_sync.is_some() => Some(Task::MessagesSync),
            _ = check.tick(), if cadence.room_check.is_some() => Some(Task::RoomCheck),
        };
        let ended = match task {
            Some(task) => runs::fire(&pool, queues.as_ref(), task, &settings)
                .await
                .map(|run| vec![run]),
            // The alarms' health is AWS's; locally, only the requested runs.
            None => runs::run_requested(&pool, queues.as_ref(), &settings).await,
        };
        match ended {
            Ok(ended) => ended.iter().for_each(say_run),
            Err(e) => {
                tracing::warn!(?task, error = %e, "could not record a scheduled task; it runs again next time");
            }
        }
    }
}

/// A room check's line, a failure's warning, a requested run's end.
fn say_run(run: &runs::Run) {
    match (run.status, &run.report) {
        (runs::RunStatus::Failed, _) => {
            tracing::warn!(task = %run.task, error = ?run.error, "scheduled task failed; it runs again next time");
        }
        (runs::RunStatus::Completed, Some(report)) if run.task == Task::RoomCheck => {
            // The report is the check's own, tagged with the task.
            if let Ok(report) = serde_json::from_value::<RoomCheckReport>(report.clone())
                && let Some(line) = crate::progress::check_line(&report)
            {
                crate::progress::say(&line);
            }
        }
        _ if run.trigger != runs::SCHEDULE_TRIGGER => crate::progress::say(&format!(
            "{} run requested by {} ended {:?}{}",
            run.task,
            run.trigger,
            run.status,
            if run.dry_run { " (dry run)" } else { "" }
        )),
        _ => {}
    }
}

/// Sends again what the embedded queue lost when the last run stopped.
pub async fn recover(
    pool: &PgPool,
    backend: &QueueBackend,
    registry: &Registry,
) -> anyhow::Result<usize> {
    match backend {
        QueueBackend::Embedded(queues) => {
            Ok(jobs::recover_unfinished(pool, queues, registry).await?)
        }
        // SQS kept them.
        QueueBackend::Sqs(_) => Ok(0),
    }
}

/// The consumers of the work queues, one per registered job type: the rooms and messages
/// syncs share one Chatwork client (and so one rate budget) and copy files to `files`;
/// the items a job grows by go
/// to `queues`; summaries are drafted by `summary` (the extractive summarizer, or
/// the model the `SUMMARY_MODEL*` settings name).
pub async fn work_consumers(
    pool: &PgPool,
    registry: &Registry,
    connections: &Connections,
    files: Option<cwsync::files::FileCopies>,
    room_check: cwsync::sync::check::RoomCheckSettings,
    summary: &SummaryContext,
    queues: Arc<dyn Queues>,
) -> anyhow::Result<Vec<(QueueName, Arc<dyn BatchConsumer>)>> {
    let mut sync = SyncContext::with_connections(connections.clone());
    sync.files = files;
    sync.settings.room_check = room_check;
    let contexts = Contexts::new()
        .with(Arc::new(sync))
        .with(Arc::new(summary.clone()));
    Ok(registry.consumers(pool, &queues, &contexts)?)
}
