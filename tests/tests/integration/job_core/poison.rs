//! Failures no retry can fix never block a FIFO group: a permanent database error ends its
//! item at once, poison bodies are acknowledged, and the group's next message runs in the
//! same invocation; transient database errors are retried. Over both queues.

use std::time::Duration;

use cwsync::jobs::{ItemStatus, JobSpec as _, JobStatus};
use cwsync::queue::OutgoingMessage;
use cwsync::sync::messages::MessagesSync;
use cwsync_tests::eventually;

use super::probe::{Backend, Behaviour, DbFailure, Rig};
use crate::on_both_backends;

async fn permanent_database_errors_end_their_item_at_once(backend: Backend) {
    let rig = Rig::new(backend).await;
    let rooms: Vec<i64> = (1..=DbFailure::PERMANENT.len() as i64 + 1).collect();
    rig.rooms(&rooms).await;
    for (room, failure) in rooms.iter().zip(DbFailure::PERMANENT) {
        rig.context
            .set(*room, Behaviour::Database(failure, i32::MAX));
    }
    // One group: each failure would otherwise hold up every room after it.
    let started = rig.start_in("all", &rooms, Some("company-1")).await;
    let job = rig.run_to_end(started.job.id).await;
    assert_eq!(job.status, JobStatus::Completed, "the last room succeeded");
    for (room, failure) in rooms.iter().zip(DbFailure::PERMANENT) {
        assert_eq!(rig.context.runs_of(*room), 1, "{failure:?} is not retried");
    }
    let items = rig.items(job.id).await;
    for item in &items[..DbFailure::PERMANENT.len()] {
        assert_eq!(item.status, ItemStatus::Failed, "{}", item.item_key);
        let error = item.error.as_ref().unwrap();
        assert_eq!(error.name, "Refused");
        // For a person: no SQL, relation or constraint names; those are for admins.
        for internal in [
            "relation",
            "constraint",
            "summary_drafts",
            "sqlx",
            "SQLSTATE",
            "no_such_table",
        ] {
            assert!(
                !error.message.contains(internal),
                "{}: {}",
                item.item_key,
                error.message
            );
        }
        assert!(error.stack.is_some(), "admins keep the detail");
    }
    let check = items.iter().find(|i| i.item_key == "room-4").unwrap();
    assert!(
        check
            .error
            .as_ref()
            .unwrap()
            .stack
            .as_deref()
            .unwrap()
            .contains("summary_drafts"),
        "{check:?}"
    );
    assert_eq!(items.last().unwrap().status, ItemStatus::Completed);
}
on_both_backends!(permanent_database_errors_end_their_item_at_once);

async fn transient_database_errors_are_retried(backend: Backend) {
    let rig = Rig::new(backend).await;
    let rooms: Vec<i64> = (1..=DbFailure::TRANSIENT.len() as i64).collect();
    rig.rooms(&rooms).await;
    for (room, failure) in rooms.iter().zip(DbFailure::TRANSIENT) {
        rig.context.set(*room, Behaviour::Database(failure, 1));
    }
    let started = rig.start("all", &rooms).await;
    let job = rig.run_to_end(started.job.id).await;
    assert_eq!(job.status, JobStatus::Completed);
    for (room, failure) in rooms.iter().zip(DbFailure::TRANSIENT) {
        assert_eq!(rig.context.runs_of(*room), 2, "{failure:?} is retried");
    }
    assert_eq!(job.result.unwrap()["processedRooms"], rooms.len());
}
on_both_backends!(transient_database_errors_are_retried);

async fn a_poison_message_delays_its_group_by_at_most_one_invocation(backend: Backend) {
    let rig = Rig::new(backend).await;
    rig.rooms(&[1, 2, 3, 4]).await;
    rig.context
        .set(1, Behaviour::Database(DbFailure::OutOfRange, i32::MAX));
    let started = rig.start_in("all", &[1, 2, 3, 4], Some("company-1")).await;
    let work = rig.source(MessagesSync::QUEUE);
    let mut invocations = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while (2..=4).any(|room| rig.context.runs_of(room) == 0) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the group never moved"
        );
        if work.poll_once(&rig.consumer).await.unwrap() > 0 {
            invocations += 1;
        }
    }
    assert!(
        invocations <= 2,
        "the rest of the group waited {invocations} invocations"
    );
    assert_eq!(rig.context.runs_of(1), 1);
    let job = rig.job(started.job.id).await;
    assert_eq!(job.status, JobStatus::Completed);
}
on_both_backends!(a_poison_message_delays_its_group_by_at_most_one_invocation);

async fn poison_bodies_are_acknowledged_and_their_group_goes_on(backend: Backend) {
    let rig = Rig::new(backend).await;
    rig.rooms(&[1, 2]).await;
    // A job of another type whose item a copy on this queue names.
    let other = rig.start_in("other", &[2], Some("elsewhere")).await;
    sqlx::query("UPDATE jobs SET type = 'summary_draft' WHERE id = $1")
        .bind(other.job.id)
        .execute(&rig.db.pool)
        .await
        .unwrap();
    let bodies = [
        "not json".to_owned(),
        r#"{"v": 1, "jobId": "not a uuid"}"#.to_owned(),
        format!(
            r#"{{"v": 2, "jobId": "{}", "roomId": 1}}"#,
            uuid::Uuid::new_v4()
        ),
        format!(
            r#"{{"v": 1, "jobId": "{}", "roomId": 1}}"#,
            uuid::Uuid::new_v4()
        ),
        // A job that exists, an item it does not have.
        format!(r#"{{"v": 1, "jobId": "{}", "roomId": 77}}"#, other.job.id),
        // The other type's item, on this queue.
        format!(r#"{{"v": 1, "jobId": "{}", "roomId": 2}}"#, other.job.id),
    ];
    let poison: Vec<_> = bodies
        .iter()
        .enumerate()
        .map(|(i, body)| OutgoingMessage {
            group_id: "room-1".into(),
            deduplication_id: format!("poison-{i}"),
            body: body.clone(),
        })
        .collect();
    rig.queues.send(MessagesSync::QUEUE, &poison).await.unwrap();
    let started = rig.start("all", &[1]).await;
    let work = rig.source(MessagesSync::QUEUE);
    let mut invocations = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while rig.context.runs_of(1) == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the group never moved"
        );
        if work.poll_once(&rig.consumer).await.unwrap() > 0 {
            invocations += 1;
        }
    }
    assert!(invocations <= 2, "{invocations} invocations");
    let job = rig.run_to_end(started.job.id).await;
    assert_eq!(job.status, JobStatus::Completed);
    // The other job's own message is on this queue too (in its own group): acknowledged.
    eventually(
        "the work queue to drain",
        Duration::from_secs(30),
        || async {
            work.poll_once(&rig.consumer).await.unwrap();
            rig.queues.depth(MessagesSync::QUEUE).await.unwrap() == 0
        },
    )
    .await;
    assert_eq!(
        rig.queues
            .depth(MessagesSync::QUEUE.dead_letter())
            .await
            .unwrap(),
        0,
        "nothing waited for its retries to run out"
    );
    assert_eq!(
        rig.context.runs_of(2),
        0,
        "the other type's item is not run here"
    );
}
on_both_backends!(poison_bodies_are_acknowledged_and_their_group_goes_on);
