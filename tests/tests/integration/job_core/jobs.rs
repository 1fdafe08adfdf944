//! Jobs end to end through the queues: completion, redelivery, crashes, races,
//! cancellation, the dead-letter path, enqueue failures and the sweeper.

use cwsync::jobs::JobSpec as _;
use cwsync::sync::messages::MessagesSync;

use std::sync::Arc;
use std::time::Duration;

use cwsync::jobs::{self, CancelOutcome, ItemStatus, JobStatus, SweepSettings};
use cwsync::queue::{OutgoingMessage, Queues, SqsQueues};
use cwsync_tests::{eventually, sqs_client, sqs_emulator};
use uuid::Uuid;

use super::probe::{Backend, Behaviour, Probe, ProbePayload, Rig};
use crate::on_both_backends;

async fn a_job_runs_to_completion(backend: Backend) {
    let rig = Rig::new(backend).await;
    rig.rooms(&[1, 2, 3]).await;
    let started = rig.start("all", &[1, 2, 3]).await;
    assert!(started.created);
    assert_eq!(started.job.status, JobStatus::Queued);
    assert_eq!(started.job.total_items, 3);
    let job = rig.run_to_end(started.job.id).await;
    assert_eq!(job.status, JobStatus::Completed);
    assert!(job.started_at.is_some() && job.finished_at.is_some());
    assert_eq!(job.open_items, 0);
    let result = job.result.unwrap();
    assert_eq!(result["processedRooms"], 3);
    let progress = jobs::progress(&rig.db.pool, job.id).await.unwrap();
    assert_eq!(
        (progress.total, progress.finished, progress.fetched),
        (3, 3, 9)
    );
    assert_eq!(rig.stored_messages().await.len(), 9);
}
on_both_backends!(a_job_runs_to_completion);

/// Sends every item's message `extra` more times, as an at-least-once queue may.
async fn duplicate_every_message(rig: &Rig, job: Uuid, extra: usize) {
    let items = rig.items(job).await;
    for copy in 0..extra {
        let messages: Vec<_> = items
            .iter()
            .map(|i| OutgoingMessage {
                group_id: i.item_key.clone(),
                deduplication_id: format!("{job}:{}:copy{copy}", i.item_key),
                body: i.message.to_string(),
            })
            .collect();
        rig.queues
            .send(MessagesSync::QUEUE, &messages)
            .await
            .unwrap();
    }
}

async fn drain(rig: &Rig) {
    let source = rig.source(MessagesSync::QUEUE);
    eventually(
        "the work queue to drain",
        Duration::from_secs(30),
        || async {
            source.poll_once(&rig.consumer).await.unwrap();
            rig.queues.depth(MessagesSync::QUEUE).await.unwrap() == 0
        },
    )
    .await;
}

async fn duplicate_delivery_changes_nothing(backend: Backend) {
    let mut states = Vec::new();
    for deliveries in [1, 2, 3] {
        let rig = Rig::new(backend).await;
        rig.rooms(&[1, 2, 3, 4]).await;
        rig.context.set(2, Behaviour::Store(7));
        let started = rig.start("all", &[1, 2, 3, 4]).await;
        duplicate_every_message(&rig, started.job.id, deliveries - 1).await;
        let job = rig.run_to_end(started.job.id).await;
        drain(&rig).await;
        let job = rig.job(job.id).await;
        let progress = jobs::progress(&rig.db.pool, job.id).await.unwrap();
        let items: Vec<_> = rig
            .items(job.id)
            .await
            .into_iter()
            .map(|i| (i.item_key, i.status, i.fetched, i.attempts))
            .collect();
        assert_eq!(
            rig.context.total_runs(),
            4,
            "duplicates are acknowledged without work"
        );
        states.push((
            job.status,
            job.result,
            progress.fetched,
            items,
            rig.stored_messages().await,
        ));
    }
    assert_eq!(states[0].2, 3 + 7 + 3 + 3, "progress is exact");
    assert_eq!(states[0], states[1], "twice leaves what once leaves");
    assert_eq!(states[0], states[2], "three times too");
}
on_both_backends!(duplicate_delivery_changes_nothing);

async fn a_lost_acknowledgement_loses_and_duplicates_nothing(backend: Backend) {
    let rig = Rig::new(backend).await;
    rig.rooms(&[1, 2]).await;
    let started = rig.start("all", &[1, 2]).await;
    // Process a batch fully, then "crash" before deleting it.
    let mut batch = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while batch.len() < 2 {
        assert!(tokio::time::Instant::now() < deadline);
        batch.extend(
            rig.queues
                .receive(MessagesSync::QUEUE, 10, Duration::ZERO)
                .await
                .unwrap(),
        );
    }
    let response = rig
        .consumer
        .handle_batch(batch, tokio::time::Instant::now() + Duration::from_secs(30))
        .await;
    assert!(response.batch_item_failures.is_empty());
    let before = rig.stored_messages().await;
    let job = rig.job(started.job.id).await;
    assert_eq!(job.status, JobStatus::Completed);
    // The messages come back after their visibility timeout and are acknowledged.
    drain(&rig).await;
    assert_eq!(rig.context.total_runs(), 2);
    assert_eq!(rig.stored_messages().await, before);
    assert_eq!(rig.job(job.id).await, job);
}
on_both_backends!(a_lost_acknowledgement_loses_and_duplicates_nothing);

async fn a_crash_after_the_write_is_redone_without_doubling(backend: Backend) {
    let rig = Rig::new(backend).await;
    rig.rooms(&[1]).await;
    rig.context.set(1, Behaviour::WriteThenCrash(4));
    let started = rig.start("all", &[1]).await;
    let job = rig.run_to_end(started.job.id).await;
    assert_eq!(job.status, JobStatus::Completed);
    assert_eq!(rig.context.runs_of(1), 2);
    assert_eq!(rig.stored_messages().await.len(), 4);
    let item = &rig.items(job.id).await[0];
    assert_eq!(
        (item.status, item.fetched, item.attempts),
        (ItemStatus::Completed, 4, 2)
    );
    assert_eq!(item.error, None, "a completed item carries no error");
}
on_both_backends!(a_crash_after_the_write_is_redone_without_doubling);

async fn transient_failures_are_retried_to_success(backend: Backend) {
    let rig = Rig::new(backend).await;
    rig.rooms(&[1]).await;
    rig.context.set(1, Behaviour::FailTimes(2, 3));
    let started = rig.start("all", &[1]).await;
    let job = rig.run_to_end(started.job.id).await;
    assert_eq!(job.status, JobStatus::Completed);
    assert_eq!(rig.context.runs_of(1), 3);
}
on_both_backends!(transient_failures_are_retried_to_success);

async fn a_permanent_failure_is_not_retried(backend: Backend) {
    let rig = Rig::new(backend).await;
    rig.rooms(&[1, 2]).await;
    rig.context.set(1, Behaviour::Permanent);
    rig.context.set(2, Behaviour::Permanent);
    let started = rig.start("all", &[1, 2]).await;
    let job = rig.run_to_end(started.job.id).await;
    assert_eq!(job.status, JobStatus::Failed, "every item failed");
    assert_eq!(job.error.as_ref().unwrap().name, "NotFound");
    assert_eq!(rig.context.total_runs(), 2);
}
on_both_backends!(a_permanent_failure_is_not_retried);

async fn the_redrive_fails_the_item_with_the_reason(backend: Backend) {
    let rig = Rig::new(backend).await;
    rig.rooms(&[1, 2]).await;
    rig.context.set(1, Behaviour::FailAlways);
    let started = rig.start("all", &[1, 2]).await;
    let job = rig.run_to_end(started.job.id).await;
    assert_eq!(rig.context.runs_of(1), 4, "the first try and three retries");
    // One room failed, one succeeded: the job completes and reports the failure.
    assert_eq!(job.status, JobStatus::Completed);
    let result = job.result.as_ref().unwrap();
    assert_eq!(
        (
            result["totalRooms"].as_i64(),
            result["processedRooms"].as_i64()
        ),
        (Some(2), Some(1))
    );
    assert_eq!(result["errors"][0]["roomId"], 1);
    let items = rig.items(job.id).await;
    let failed = items.iter().find(|i| i.item_key == "room-1").unwrap();
    assert_eq!(failed.status, ItemStatus::Failed);
    let error = failed.error.as_ref().unwrap();
    assert_eq!(error.name, "DeadLettered");
    let message = error.message.as_str();
    assert!(
        message.starts_with("moved to the dead-letter queue after 4 receives")
            && message.contains("upstream 503"),
        "{message}"
    );
    assert_eq!(
        rig.queues
            .depth(MessagesSync::QUEUE.dead_letter())
            .await
            .unwrap(),
        0
    );

    // When the only item is dead-lettered, the job fails with the reason.
    let rig = Rig::new(backend).await;
    rig.rooms(&[1]).await;
    rig.context.set(1, Behaviour::FailAlways);
    let started = rig.start("all", &[1]).await;
    let job = rig.run_to_end(started.job.id).await;
    assert_eq!(job.status, JobStatus::Failed);
    let error = job.error.unwrap();
    assert_eq!(error.name, "DeadLettered");
    assert!(error.message.contains("after 4 receives"));
}
on_both_backends!(the_redrive_fails_the_item_with_the_reason);

/// Records every transition of a job into a terminal state, so a test can count them.
async fn count_job_finishes(rig: &Rig) {
    for statement in [
        "CREATE TABLE job_finishes (job_id uuid NOT NULL, status job_status NOT NULL)",
        "CREATE FUNCTION note_job_finish() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN INSERT INTO job_finishes VALUES (NEW.id, NEW.status); RETURN NEW; END $$",
        "CREATE TRIGGER note_job_finish AFTER UPDATE OF status ON jobs FOR EACH ROW
         WHEN (OLD.status IS DISTINCT FROM NEW.status
               AND NEW.status IN ('completed', 'failed', 'canceled'))
         EXECUTE FUNCTION note_job_finish()",
    ] {
        sqlx::query(statement).execute(&rig.db.pool).await.unwrap();
    }
}

async fn two_last_items_ending_at_once_end_the_job_once(backend: Backend) {
    let rig = Rig::new(backend).await;
    count_job_finishes(&rig).await;
    let rounds = 6;
    for round in 0..rounds {
        let (a, b) = (100 + 2 * round, 101 + 2 * round);
        rig.rooms(&[a, b]).await;
        let barrier = Arc::new(tokio::sync::Barrier::new(2));
        rig.context.set(a, Behaviour::Barrier(2, barrier.clone()));
        rig.context.set(b, Behaviour::Barrier(2, barrier));
        let started = rig.start(&format!("round-{round}"), &[a, b]).await;
        // Two consumers, one item each, both ending the job's last items at once.
        let mut source = rig.source(MessagesSync::QUEUE);
        source.batch_size = 1;
        let work = |source: cwsync::consumer::EventSource,
                    consumer: cwsync::jobs::JobConsumer<Probe>| async move {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
            while source.poll_once(&consumer).await.unwrap() == 0 {
                assert!(tokio::time::Instant::now() < deadline);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        let one = tokio::spawn(work(source.clone(), rig.consumer.clone()));
        let two = tokio::spawn(work(source, rig.consumer.clone()));
        one.await.unwrap();
        two.await.unwrap();
        let job = rig.job(started.job.id).await;
        assert_eq!(job.status, JobStatus::Completed, "round {round}");
        assert_eq!(job.result.as_ref().unwrap()["processedRooms"], 2);
    }
    let finishes: Vec<(Uuid, JobStatus)> =
        sqlx::query_as("SELECT job_id, status FROM job_finishes")
            .fetch_all(&rig.db.pool)
            .await
            .unwrap();
    assert_eq!(
        finishes.len(),
        rounds as usize,
        "each job finished exactly once: {finishes:?}"
    );
}
on_both_backends!(two_last_items_ending_at_once_end_the_job_once);

async fn cancel_while_queued(backend: Backend) {
    let rig = Rig::new(backend).await;
    rig.rooms(&[1, 2, 3]).await;
    let started = rig.start("all", &[1, 2, 3]).await;
    let CancelOutcome::Canceled(job) = jobs::cancel(&rig.db.pool, &rig.registry(), started.job.id)
        .await
        .unwrap()
    else {
        panic!("a queued job can be canceled");
    };
    assert_eq!(job.status, JobStatus::Canceled);
    assert!(job.finished_at.is_some() && job.started_at.is_none());
    drain(&rig).await;
    assert_eq!(
        rig.context.total_runs(),
        0,
        "its messages are acknowledged without work"
    );
    let job = rig.job(job.id).await;
    assert_eq!(job.status, JobStatus::Canceled);
    assert_eq!(job.result.unwrap()["canceledRooms"], 3);
    assert!(
        rig.items(job.id)
            .await
            .iter()
            .all(|i| i.status == ItemStatus::Canceled)
    );
    // Canceling again, or canceling what does not exist, is refused.
    assert_eq!(
        jobs::cancel(&rig.db.pool, &rig.registry(), job.id)
            .await
            .unwrap(),
        CancelOutcome::NotCancelable(JobStatus::Canceled)
    );
    assert_eq!(
        jobs::cancel(&rig.db.pool, &rig.registry(), Uuid::new_v4())
            .await
            .unwrap(),
        CancelOutcome::NotFound
    );
}
on_both_backends!(cancel_while_queued);

async fn cancel_while_processing(backend: Backend) {
    let rig = Rig::new(backend).await;
    rig.rooms(&[1]).await;
    rig.context.set(1, Behaviour::WaitForCancel(4));
    let started = rig.start("all", &[1]).await;
    let source = rig.source(MessagesSync::QUEUE);
    let consumer = rig.consumer.clone();
    let worker = tokio::spawn(async move {
        for _ in 0..200 {
            if source.poll_once(&consumer).await.unwrap() > 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("nothing received");
    });
    eventually("the item to start", Duration::from_secs(20), || async {
        rig.context.runs_of(1) == 1
    })
    .await;
    assert_eq!(rig.job(started.job.id).await.status, JobStatus::Processing);
    let outcome = jobs::cancel(&rig.db.pool, &rig.registry(), started.job.id)
        .await
        .unwrap();
    assert!(matches!(outcome, CancelOutcome::Canceled(_)), "{outcome:?}");
    worker.await.unwrap();
    let job = rig.job(started.job.id).await;
    assert_eq!(job.status, JobStatus::Canceled);
    let item = &rig.items(job.id).await[0];
    assert_eq!(item.status, ItemStatus::Canceled);
    assert_eq!(
        job.result.unwrap()["canceledRooms"],
        1,
        "the result includes the stopped item"
    );
    assert_eq!(
        rig.stored_messages().await.len(),
        2,
        "what was stored before the stop stays"
    );
    // A completed job cannot be canceled.
    rig.context.set(1, Behaviour::Store(1));
    let again = rig.start("all", &[1]).await;
    let done = rig.run_to_end(again.job.id).await;
    assert_eq!(
        jobs::cancel(&rig.db.pool, &rig.registry(), done.id)
            .await
            .unwrap(),
        CancelOutcome::NotCancelable(JobStatus::Completed)
    );
}
on_both_backends!(cancel_while_processing);

async fn a_second_request_returns_the_active_job(backend: Backend) {
    let rig = Rig::new(backend).await;
    rig.rooms(&[1, 2]).await;
    let first = rig.start("all", &[1, 2]).await;
    let second = rig.start("all", &[1, 2]).await;
    assert!(first.created && !second.created);
    assert_eq!(second.job.id, first.job.id);
    // Another key is other work.
    let single = rig.start("room-1", &[1]).await;
    assert!(single.created && single.job.id != first.job.id);
    // Racing requests: one job.
    let racers: Vec<_> = (0..6)
        .map(|_| {
            let pool = rig.db.pool.clone();
            let queues = rig.queues.clone();
            tokio::spawn(async move {
                let payload = ProbePayload {
                    key: "race".into(),
                    rooms: vec![1],
                    group_override: None,
                };
                jobs::start::<Probe>(&pool, queues.as_ref(), &payload, None)
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut ids = std::collections::HashSet::new();
    let mut created = 0;
    for racer in racers {
        let started = racer.await.unwrap();
        ids.insert(started.job.id);
        created += started.created as usize;
    }
    assert_eq!((ids.len(), created), (1, 1));
    // Once the active job ends, a request starts a new one.
    rig.run_to_end(first.job.id).await;
    let third = rig.start("all", &[1, 2]).await;
    assert!(third.created && third.job.id != first.job.id);
}
on_both_backends!(a_second_request_returns_the_active_job);

async fn a_job_that_cannot_be_queued_fails_with_a_clear_error(backend: Backend) {
    let rig = Rig::new(backend).await;
    rig.rooms(&[1]).await;
    let queues: Arc<dyn Queues> = match backend {
        // The embedded queue refuses what SQS would refuse.
        Backend::Embedded => rig.queues.clone(),
        // A queue that does not exist on the server.
        Backend::Sqs => {
            let url = format!(
                "{}/000000000000/missing-{}.fifo",
                sqs_emulator().endpoint,
                Uuid::new_v4().simple()
            );
            Arc::new(SqsQueues::new(
                sqs_client(),
                [(MessagesSync::QUEUE, url)].into(),
            ))
        }
    };
    let payload = ProbePayload {
        key: "all".into(),
        rooms: vec![1],
        group_override: (backend == Backend::Embedded).then(|| "not a valid group".into()),
    };
    let started = jobs::start::<Probe>(&rig.db.pool, queues.as_ref(), &payload, None)
        .await
        .unwrap();
    assert_eq!(started.job.status, JobStatus::Failed);
    let error = started.job.error.unwrap();
    assert_eq!(error.name, "EnqueueFailed");
    assert!(
        error
            .message
            .contains("could not be handed to the messages-sync queue"),
        "{error:?}"
    );
    assert!(
        error.stack.is_some(),
        "the queue's own words are kept for admins"
    );
    // The failed job does not block the next request.
    let next = rig.start("all", &[1]).await;
    assert!(next.created);
}
on_both_backends!(a_job_that_cannot_be_queued_fails_with_a_clear_error);

async fn the_sweeper_repairs_what_crashes_leave(backend: Backend) {
    let rig = Rig::new(backend).await;
    rig.rooms(&[1, 2]).await;
    let pool = &rig.db.pool;
    // A job written whose messages were never sent (a crash between commit and send).
    let unsent = Uuid::new_v4();
    sqlx::query("INSERT INTO jobs (id, type, active_key, total_items, open_items, created_at, updated_at)
                 VALUES ($1, 'chatwork_messages_sync', 'unsent', 2, 2, now() - interval '10 minutes', now() - interval '10 minutes')")
        .bind(unsent).execute(pool).await.unwrap();
    for room in [1, 2] {
        sqlx::query(
            "INSERT INTO job_items (job_id, item_key, message, message_group, created_at)
                     VALUES ($1, $2, $3, $4, now() - interval '10 minutes')",
        )
        .bind(unsent)
        .bind(format!("room-{room}"))
        .bind(serde_json::json!({"v": 1, "jobId": unsent, "roomId": room}))
        .bind(format!("room-{room}"))
        .execute(pool)
        .await
        .unwrap();
    }
    // A job whose last item ended but which was never finished.
    let finishable = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO jobs (id, type, status, started_at, active_key, total_items, open_items)
                 VALUES ($1, 'chatwork_messages_sync', 'processing', now(), 'finishable', 1, 0)",
    )
    .bind(finishable)
    .execute(pool)
    .await
    .unwrap();
    sqlx::query("INSERT INTO job_items (job_id, item_key, status, fetched, finished_at, message, message_group)
                 VALUES ($1, 'room-1', 'completed', 5, now(), '{}', 'room-1')")
        .bind(finishable).execute(pool).await.unwrap();
    // A job stuck in processing for two hours.
    let stale = Uuid::new_v4();
    sqlx::query("INSERT INTO jobs (id, type, status, started_at, active_key, total_items, open_items, updated_at)
                 VALUES ($1, 'chatwork_messages_sync', 'processing', now() - interval '2 hours', 'stale', 1, 1, now() - interval '2 hours')")
        .bind(stale).execute(pool).await.unwrap();
    sqlx::query(
        "INSERT INTO job_items (job_id, item_key, status, message, message_group)
                 VALUES ($1, 'room-2', 'processing', '{}', 'room-2')",
    )
    .bind(stale)
    .execute(pool)
    .await
    .unwrap();

    let report = jobs::sweep(
        pool,
        rig.queues.as_ref(),
        &rig.registry(),
        &SweepSettings::default(),
    )
    .await
    .unwrap();
    assert_eq!(
        (report.resent, report.finished, report.failed_stale),
        (2, 1, 1),
        "{report:?}"
    );
    assert_eq!(rig.job(finishable).await.status, JobStatus::Completed);
    let stale_job = rig.job(stale).await;
    assert_eq!(stale_job.status, JobStatus::Failed);
    assert_eq!(stale_job.error.as_ref().unwrap().name, "Stale");
    assert!(
        stale_job
            .error
            .unwrap()
            .message
            .contains("no progress for 60 minutes")
    );
    assert_eq!(rig.items(stale).await[0].status, ItemStatus::Failed);
    // The re-sent items run; a second sweep finds nothing to do.
    let job = rig.run_to_end(unsent).await;
    assert_eq!(job.status, JobStatus::Completed);
    assert_eq!(rig.stored_messages().await.len(), 6);
    let report = jobs::sweep(
        pool,
        rig.queues.as_ref(),
        &rig.registry(),
        &SweepSettings::default(),
    )
    .await
    .unwrap();
    assert_eq!(report, Default::default());
}
on_both_backends!(the_sweeper_repairs_what_crashes_leave);

#[tokio::test]
async fn recovery_resends_every_unfinished_item() {
    // The embedded queue loses its messages with its process; recovery sends them again.
    let rig = Rig::new(Backend::Embedded).await;
    rig.rooms(&[1, 2]).await;
    let started = rig.start("all", &[1, 2]).await;
    let fresh = Rig::new(Backend::Embedded).await;
    let sent = jobs::recover_unfinished(&rig.db.pool, fresh.queues.as_ref(), &rig.registry())
        .await
        .unwrap();
    assert_eq!(sent, 2);
    assert_eq!(fresh.queues.depth(MessagesSync::QUEUE).await.unwrap(), 2);
    let _ = started;
}
