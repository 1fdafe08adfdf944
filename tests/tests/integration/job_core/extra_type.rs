//! A job type added the way the `jobs` module documentation says, and nothing more: its
//! module (here, in the test), a value of the `job_type` enum (the migration a real type
//! would ship, applied to this test's database), and its line in the registry
//! (`cwsync::job_types::registry()` plus this type). It then runs end to end over the
//! embedded queue: started, consumed, dead-lettered, finished with its typed result, and
//! seen through the API, which accepts its `type` because the registry holds it.
//!
//! The same type proves that a handler panic fails its record, not its poller: the
//! panicking item is delivered again and completes, and the poller goes on.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use cwsync::consumer::EventSource;
use cwsync::jobs::{
    self, BatchConnection, Begin, Contexts, DeadLetterConsumer, ItemError, ItemOutcome, ItemRun,
    ItemStatus, JobItem, JobKind, JobSpec, JobStatus, JobType, Outcome, PlannedItem, Registry,
};
use cwsync::queue::{EmbeddedQueues, EmbeddedSettings, QueueName, Queues};
use cwsync_tests::{TestDb, Who, spawn_app_on};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Echoes words: one item per word.
struct Echo;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct EchoPayload {
    words: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct EchoMessage {
    word: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Echoed {
    word: String,
    length: usize,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct EchoResult {
    echoed: Vec<String>,
    failed_words: usize,
}

/// Counts handler runs; `boom` panics on its first run, `never` always asks for a retry.
#[derive(Default)]
struct EchoContext {
    runs: AtomicUsize,
}

impl JobSpec for Echo {
    const TYPE: JobType = JobType::new("echo_test");
    const QUEUE: QueueName = QueueName::work("echo-test");
    const LABEL: &'static str = "echo";
    const ITEMS: &'static str = "words";
    type Payload = EchoPayload;
    type Message = EchoMessage;
    type ItemResult = Echoed;
    type Result = EchoResult;

    fn active_key(payload: &EchoPayload) -> String {
        payload.words.join(" ")
    }

    fn item_key(message: &EchoMessage) -> String {
        message.word.clone()
    }

    async fn plan(
        _pool: &PgPool,
        payload: &EchoPayload,
    ) -> Result<Vec<PlannedItem<EchoMessage>>, sqlx::Error> {
        Ok(payload.words.iter().map(|word| planned(word)).collect())
    }

    fn summarize(items: &[JobItem<EchoMessage, Echoed>]) -> EchoResult {
        EchoResult {
            echoed: items
                .iter()
                .filter_map(|i| i.result.as_ref().map(|r| r.word.clone()))
                .collect(),
            failed_words: items
                .iter()
                .filter(|i| i.status == ItemStatus::Failed)
                .count(),
        }
    }

    fn describe(result: &EchoResult) -> String {
        format!("{} echoed", result.echoed.len())
    }
}

/// A word's item; `more:a+b` is a step of the job, which adds the words `a` and `b`.
fn planned(word: &str) -> PlannedItem<EchoMessage> {
    let message = EchoMessage {
        word: word.to_owned(),
    };
    let group = format!("word-{}", word.replace(['+', ':'], "-"));
    if word.starts_with("more:") {
        PlannedItem::step(message, group)
    } else {
        PlannedItem::work(message, group)
    }
}

impl JobKind for Echo {
    type Context = EchoContext;
    type Read = ();

    async fn begin(
        _context: &EchoContext,
        db: &BatchConnection,
        job_id: Uuid,
        item_key: &str,
        _message: &EchoMessage,
    ) -> Result<Begin, sqlx::Error> {
        jobs::begin_item(db, job_id, item_key).await
    }

    async fn run(
        context: &EchoContext,
        item: &ItemRun,
        message: EchoMessage,
        _read: (),
    ) -> Result<Outcome<Echo>, ItemError> {
        context.runs.fetch_add(1, Ordering::SeqCst);
        if let Some(more) = message.word.strip_prefix("more:") {
            return Ok(ItemOutcome::Planned {
                result: Echoed {
                    word: message.word.clone(),
                    length: 0,
                },
                items: more.split('+').map(planned).collect(),
            });
        }
        match message.word.as_str() {
            "never" => Err(ItemError::Retry(anyhow::anyhow!("never echoes"))),
            "boom" if item.attempt == 1 => panic!("the echo handler fell over"),
            word => Ok(ItemOutcome::Completed {
                fetched: 1,
                result: Echoed {
                    word: word.to_owned(),
                    length: word.chars().count(),
                },
            }),
        }
    }
}

/// The database with the type's enum value, as its migration would add it.
async fn database() -> TestDb {
    let db = TestDb::new().await;
    sqlx::query("ALTER TYPE job_type ADD VALUE 'echo_test'")
        .execute(&db.pool)
        .await
        .unwrap();
    db
}

fn shared(queues: &EmbeddedQueues) -> Arc<dyn Queues> {
    Arc::new(queues.clone())
}

fn queues() -> EmbeddedQueues {
    EmbeddedQueues::new(EmbeddedSettings {
        visibility_timeout: Duration::from_millis(200),
        max_receive_count: 2,
        deduplication_window: Duration::from_secs(300),
    })
}

#[tokio::test]
async fn a_job_type_added_in_its_own_module_runs_end_to_end() {
    let db = database().await;
    let pool = db.pool.clone();
    let registry = cwsync::job_types::registry().register::<Echo>();
    assert!(registry.work_queues().contains(&Echo::QUEUE));
    let queues = queues();
    let context = Arc::new(EchoContext::default());
    let consumer = registry
        .get(Echo::TYPE)
        .expect("registered")
        .consumer(
            &pool,
            &shared(&queues),
            &Contexts::new().with(context.clone()),
        )
        .expect("its context is there");
    let dead_letters = DeadLetterConsumer::new(pool.clone(), registry.clone(), 2);

    let payload = EchoPayload {
        words: vec!["hello".into(), "world".into(), "never".into()],
    };
    let started = jobs::start::<Echo>(&pool, &queues, &payload, Some("writer-1"))
        .await
        .unwrap();
    assert!(started.created);
    assert_eq!(queues.depth(Echo::QUEUE).await.unwrap(), 3);

    let mut work = EventSource::new(Arc::new(queues.clone()), Echo::QUEUE);
    work.wait = Duration::from_millis(50);
    let mut dead = EventSource::new(Arc::new(queues.clone()), Echo::QUEUE.dead_letter());
    dead.wait = Duration::from_millis(50);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let job = loop {
        let job = jobs::get(&pool, started.job.id).await.unwrap().unwrap();
        if job.status.is_terminal() {
            break job;
        }
        assert!(tokio::time::Instant::now() < deadline, "{job:?}");
        work.poll_once(consumer.as_ref()).await.unwrap();
        dead.poll_once(&dead_letters).await.unwrap();
    };
    assert_eq!(job.status, JobStatus::Completed);
    assert_eq!(
        job.result_as::<Echo>(),
        Some(EchoResult {
            echoed: vec!["hello".into(), "world".into()],
            failed_words: 1,
        })
    );
    let items = jobs::items(&pool, job.id).await.unwrap();
    let never = items.iter().find(|i| i.item_key == "never").unwrap();
    assert_eq!(never.status, ItemStatus::Failed);
    assert_eq!(never.error.as_ref().unwrap().name, "DeadLettered");
    assert_eq!(
        registry
            .get(Echo::TYPE)
            .unwrap()
            .describe(job.result.as_ref().unwrap()),
        Some("2 echoed".into())
    );

    // The API lists and shows it: its `type` is one the registry holds.
    let app = spawn_app_on(db, registry, Arc::new(queues.clone()), queues).await;
    let listed = app
        .call(&Who::writer(), "GET", "/api/jobs?type=echo_test", None)
        .await;
    listed.expect(200);
    assert_eq!(listed.body["items"][0]["id"], job.id.to_string());
    assert_eq!(listed.body["items"][0]["type"], "echo_test");
    let shown = app
        .call(
            &Who::writer(),
            "GET",
            &format!("/api/jobs/{}", job.id),
            None,
        )
        .await;
    shown.expect(200);
    assert_eq!(shown.body["result"]["echoed"][1], "world");
    assert_eq!(shown.body["progress"]["failed"], 1);
}

#[tokio::test]
async fn a_handler_panic_fails_its_record_and_the_poller_keeps_running() {
    let db = database().await;
    let pool = db.pool.clone();
    let registry = Registry::of::<Echo>();
    let queues = queues();
    let context = Arc::new(EchoContext::default());
    let consumer = registry
        .get(Echo::TYPE)
        .unwrap()
        .consumer(
            &pool,
            &shared(&queues),
            &Contexts::new().with(context.clone()),
        )
        .unwrap();
    let mut source = EventSource::new(Arc::new(queues.clone()), Echo::QUEUE);
    source.wait = Duration::from_millis(50);
    let stop = CancellationToken::new();
    let poller = {
        let stop = stop.clone();
        tokio::spawn(async move { source.run(consumer.as_ref(), stop).await })
    };

    let boom = jobs::start::<Echo>(
        &pool,
        &queues,
        &EchoPayload {
            words: vec!["boom".into()],
        },
        None,
    )
    .await
    .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let job = loop {
        let job = jobs::get(&pool, boom.job.id).await.unwrap().unwrap();
        if job.status.is_terminal() {
            break job;
        }
        assert!(!poller.is_finished(), "the poller died with the handler");
        assert!(tokio::time::Instant::now() < deadline, "{job:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        job.status,
        JobStatus::Completed,
        "the second delivery echoed"
    );
    let item = &jobs::items(&pool, job.id).await.unwrap()[0];
    assert_eq!(item.attempts, 2, "the panic cost one delivery");

    // The same poller takes the next job.
    let after = jobs::start::<Echo>(
        &pool,
        &queues,
        &EchoPayload {
            words: vec!["again".into()],
        },
        None,
    )
    .await
    .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !jobs::get(&pool, after.job.id)
        .await
        .unwrap()
        .unwrap()
        .status
        .is_terminal()
    {
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(context.runs.load(Ordering::SeqCst), 3);
    stop.cancel();
    poller.await.expect("the poller ends cleanly when told to");
}

#[tokio::test]
async fn a_step_grows_its_job_and_the_job_ends_after_the_items_it_planned() {
    let db = database().await;
    let pool = db.pool.clone();
    let registry = Registry::of::<Echo>();
    let queues = queues();
    let context = Arc::new(EchoContext::default());
    let consumer = registry
        .get(Echo::TYPE)
        .unwrap()
        .consumer(
            &pool,
            &shared(&queues),
            &Contexts::new().with(context.clone()),
        )
        .unwrap();
    // A step that plans `c` (which the job already has) and `d`, beside the work item `c`.
    let payload = EchoPayload {
        words: vec!["more:c+d".into(), "c".into()],
    };
    let started = jobs::start::<Echo>(&pool, &queues, &payload, None)
        .await
        .unwrap();
    assert_eq!(
        started.job.total_items, 1,
        "the step is not one of its items"
    );
    assert_eq!(started.job.open_items, 1);
    assert_eq!(queues.depth(Echo::QUEUE).await.unwrap(), 2);

    let mut work = EventSource::new(Arc::new(queues.clone()), Echo::QUEUE);
    work.wait = Duration::from_millis(50);
    work.batch_size = 1;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let job = loop {
        let job = jobs::get(&pool, started.job.id).await.unwrap().unwrap();
        if job.status.is_terminal() {
            break job;
        }
        assert!(tokio::time::Instant::now() < deadline, "{job:?}");
        work.poll_once(consumer.as_ref()).await.unwrap();
    };
    // Every item ran once: the step, c, and d, which the step added.
    assert_eq!(context.runs.load(Ordering::SeqCst), 3);
    assert_eq!(job.status, JobStatus::Completed, "{job:?}");
    assert_eq!(job.total_items, 2, "c and d: c is not planned twice");
    assert_eq!((job.open_items, job.open_steps), (0, 0));
    let items = jobs::items(&pool, job.id).await.unwrap();
    let keys: Vec<(&str, bool, ItemStatus)> = items
        .iter()
        .map(|i| (i.item_key.as_str(), i.step, i.status))
        .collect();
    assert_eq!(
        keys,
        [
            ("c", false, ItemStatus::Completed),
            ("d", false, ItemStatus::Completed),
            ("more:c+d", true, ItemStatus::Completed),
        ]
    );
    let progress = jobs::progress(&pool, job.id).await.unwrap();
    assert_eq!((progress.total, progress.completed), (2, 2));
    let result = job.result_as::<Echo>().unwrap();
    assert!(result.echoed.contains(&"d".to_owned()), "{result:?}");

    // A step delivered again (its end lost) plans nothing twice and counts nothing twice.
    sqlx::query(
        "UPDATE job_items SET status = 'processing', finished_at = NULL
          WHERE job_id = $1 AND item_key = 'more:c+d'",
    )
    .bind(job.id)
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query(
        "UPDATE jobs SET status = 'processing', finished_at = NULL, open_steps = 1 WHERE id = $1",
    )
    .bind(job.id)
    .execute(&pool)
    .await
    .unwrap();
    let body = serde_json::json!({"v": 1, "jobId": job.id, "word": "more:c+d"}).to_string();
    queues
        .send(
            Echo::QUEUE,
            &[cwsync::queue::OutgoingMessage {
                group_id: "again".into(),
                deduplication_id: "again".into(),
                body,
            }],
        )
        .await
        .unwrap();
    work.poll_once(consumer.as_ref()).await.unwrap();
    let again = jobs::get(&pool, job.id).await.unwrap().unwrap();
    assert_eq!(again.status, JobStatus::Completed, "{again:?}");
    assert_eq!(again.total_items, 2);
    assert_eq!(
        queues.depth(Echo::QUEUE).await.unwrap(),
        0,
        "nothing sent again"
    );
}
