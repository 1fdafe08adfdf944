//! A Chatwork that answers what it cannot mean: a window spent for ten years, text
//! Postgres cannot store, a body of garbage. Each may fail what it touches once, but
//! never stops syncing for longer than a window.

use std::time::Duration;

use cwsync::jobs::{ItemStatus, JobStatus};
use fake_chatwork::{Account, FakeSettings, Fault, FaultScope};
use tokio::time::Instant;

use super::{Backend, SyncRig, count_metrics, counter, poster, room_with_history};

/// The fake's window in these tests (12 requests per 4 s).
const WINDOW: Duration = Duration::from_secs(4);
/// Ten years, as an answer's reset.
const TEN_YEARS: Duration = Duration::from_secs(10 * 365 * 86_400);
/// How long syncing may be held back after a hostile answer: a window, its slack (2 s)
/// and the reset margin (1 s), and time for the sync itself.
const AT_MOST: Duration = Duration::from_secs(4 + 2 + 1 + 5);

async fn rig(rooms: Vec<fake_chatwork::Room>) -> SyncRig {
    count_metrics();
    SyncRig::with_fake(
        Backend::Embedded,
        FakeSettings::default()
            .with_rate_limit(12, WINDOW)
            .with_rooms(rooms),
    )
    .await
}

/// After the sync that met a hostile answer: a new message in `room_id` is synced, and
/// within [`AT_MOST`].
async fn syncing_resumes(rig: &SyncRig, room_id: i64) {
    let body = format!("after the hostile answer to {room_id}");
    rig.fake.post_message(room_id, &poster(), &body).unwrap();
    let started = Instant::now();
    let job = rig.messages_sync(Some(room_id)).await;
    let took = started.elapsed();
    assert_eq!(job.status, JobStatus::Completed, "{job:?}");
    assert!(took <= AT_MOST, "syncing was held back {took:?}");
    let stored = rig.stored(room_id).await;
    assert_eq!(stored.last().unwrap().1, body);
}

async fn reset_at_within(rig: &SyncRig, within: Duration) -> bool {
    sqlx::query_scalar(
        "SELECT bool_and(reset_at <= now() + make_interval(secs => $1))
           FROM chatwork_rate_budgets",
    )
    .bind(within.as_secs_f64())
    .fetch_one(rig.pool())
    .await
    .unwrap()
}

#[tokio::test]
async fn a_window_reported_spent_for_ten_years_holds_syncing_back_at_most_a_window() {
    let rig = rig(vec![room_with_history(8101, 3)]).await;
    rig.rooms_sync().await;
    let capped = counter("chatwork_rate_reset_capped", &[]);
    rig.fake.inject(
        FaultScope::Any,
        Fault::SpentFor {
            ahead: TEN_YEARS,
            refused: false,
        },
        Some(1),
    );
    let job = rig.messages_sync(Some(8101)).await;
    assert_eq!(
        job.status,
        JobStatus::Completed,
        "the answer itself is good: {job:?}"
    );
    assert!(
        reset_at_within(&rig, WINDOW * 2).await,
        "the budget believes no reset years ahead"
    );
    assert!(counter("chatwork_rate_reset_capped", &[]) > capped);
    syncing_resumes(&rig, 8101).await;
}

#[tokio::test]
async fn a_429_reporting_a_reset_ten_years_ahead_holds_syncing_back_at_most_a_window() {
    let rig = rig(vec![room_with_history(8111, 3)]).await;
    rig.rooms_sync().await;
    rig.fake.inject(
        FaultScope::Any,
        Fault::SpentFor {
            ahead: TEN_YEARS,
            refused: true,
        },
        Some(1),
    );
    rig.fake.post_message(8111, &poster(), "first").unwrap();
    let started = Instant::now();
    let job = rig.messages_sync(Some(8111)).await;
    assert_eq!(job.status, JobStatus::Completed, "{job:?}");
    assert!(started.elapsed() <= AT_MOST, "{:?}", started.elapsed());
    assert!(reset_at_within(&rig, WINDOW * 2).await);
    syncing_resumes(&rig, 8111).await;
}

#[tokio::test]
async fn a_budget_left_spent_for_years_lets_a_request_through() {
    let rig = rig(vec![room_with_history(8121, 3)]).await;
    rig.rooms_sync().await;
    // As an answer believed before answers were bounded left it.
    sqlx::query(
        "UPDATE chatwork_rate_budgets
            SET remaining = 0, reset_at = now() + interval '10 years',
                server_reset = extract(epoch FROM now() + interval '10 years')::int8",
    )
    .execute(rig.pool())
    .await
    .unwrap();
    syncing_resumes(&rig, 8121).await;
    assert!(reset_at_within(&rig, WINDOW * 2).await);
}

#[tokio::test]
async fn nul_in_room_names_and_descriptions_is_stored_visibly_and_counted() {
    let mut room = room_with_history(8201, 2);
    room.name = "営業\0部".into();
    room.description = "説明\0".into();
    let rig = rig(vec![room, room_with_history(8202, 2)]).await;
    let replaced = counter("chatwork_text_replaced", &[("source", "api")]);

    // The room check registers rooms by their listed names.
    rig.check(0).await;
    let job = rig.rooms_sync().await;
    assert_eq!(job.status, JobStatus::Completed, "{job:?}");
    let stored = rig.room(8201).await;
    assert_eq!(stored.name, "営業\u{FFFD}部");
    assert_eq!(stored.description.as_deref(), Some("説明\u{FFFD}"));
    assert_eq!(rig.room(8202).await.name, "room 8202");
    assert!(counter("chatwork_text_replaced", &[("source", "api")]) >= replaced + 2);

    let job = rig.messages_sync(None).await;
    assert_eq!(job.status, JobStatus::Completed, "{job:?}");
    assert_eq!(rig.stored(8201).await.len(), 2);
}

#[tokio::test]
async fn nul_in_a_message_and_its_authors_name_is_stored_visibly_and_counted() {
    let rig = rig(vec![room_with_history(8301, 2)]).await;
    rig.rooms_sync().await;
    rig.messages_sync(None).await;
    let replaced = counter("chatwork_text_replaced", &[("source", "api")]);
    let author = Account::new(4242, "名前\0");
    rig.fake.post_message(8301, &author, "本文\0です").unwrap();

    let job = rig.messages_sync(Some(8301)).await;
    assert_eq!(job.status, JobStatus::Completed, "{job:?}");
    let stored = rig.stored(8301).await;
    assert_eq!(stored.last().unwrap().1, "本文\u{FFFD}です");
    let name: Option<String> = sqlx::query_scalar(
        "SELECT account_name FROM messages WHERE room_id = 8301 AND account_id = 4242",
    )
    .fetch_one(rig.pool())
    .await
    .unwrap();
    assert_eq!(name.as_deref(), Some("名前\u{FFFD}"));
    assert!(counter("chatwork_text_replaced", &[("source", "api")]) >= replaced + 2);
    syncing_resumes(&rig, 8301).await;
}

/// 64 MiB: more than any cap, and more than a loopback connection buffers.
const GARBAGE: usize = 64 << 20;

#[tokio::test]
async fn a_messages_answer_of_garbage_is_read_only_to_its_cap_and_fails_the_room_once() {
    let rig = rig(vec![room_with_history(8401, 2), room_with_history(8402, 2)]).await;
    rig.rooms_sync().await;
    rig.fake
        .inject(FaultScope::Room(8401), Fault::Garbage(GARBAGE), Some(1));

    let job = rig.messages_sync(Some(8401)).await;
    assert_eq!(job.status, JobStatus::Failed, "{job:?}");
    let item = &rig.items(job.id).await[0];
    assert_eq!(
        (item.status, item.attempts),
        (ItemStatus::Failed, 1),
        "not retried: the same request would get the same answer"
    );
    let sent = rig.fake.garbage_sent();
    assert!(sent < (32 << 20), "read {sent} bytes of garbage");
    let error = rig.room(8401).await.last_error_message.unwrap();
    assert!(error.contains("larger than 8192 KiB"), "{error}");

    syncing_resumes(&rig, 8401).await;
    assert_eq!(rig.room(8401).await.last_error_message, None);
}

#[tokio::test]
async fn a_room_list_of_garbage_is_read_only_to_its_cap_and_fails_one_rooms_sync() {
    let rig = rig(vec![room_with_history(8501, 2)]).await;
    rig.fake
        .inject(FaultScope::Any, Fault::Garbage(GARBAGE), Some(1));

    let job = rig.rooms_sync().await;
    assert_eq!(job.status, JobStatus::Failed, "{job:?}");
    let sent = rig.fake.garbage_sent();
    assert!(sent < (48 << 20), "read {sent} bytes of garbage");
    let error = job.error.unwrap();
    assert!(error.message.contains("larger than"), "{error:?}");

    let job = rig.rooms_sync().await;
    assert_eq!(job.status, JobStatus::Completed, "{job:?}");
    syncing_resumes(&rig, 8501).await;
}
