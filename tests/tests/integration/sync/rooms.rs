//! Rooms sync: created and updated counts, descriptions only for new or changed rooms,
//! rooms the account left, cancellation.

use cwsync::jobs::JobSpec as _;
use cwsync::sync::rooms::RoomsSync;

use std::time::Duration;

use cwsync::jobs::{ItemStatus, JobStatus};
use fake_chatwork::{Fault, FaultScope, RoomAccess};
use serde_json::json;

use super::{Backend, SyncRig, messages_requests, poster, room_with_history};

fn description_requests(requests: &[fake_chatwork::RequestRecord]) -> Vec<i64> {
    requests
        .iter()
        .filter_map(|r| r.path.strip_prefix("/v2/rooms/")?.parse().ok())
        .collect()
}

#[tokio::test]
async fn counts_created_and_updated_and_fetches_descriptions_of_new_or_changed_rooms() {
    let mut described = room_with_history(501, 3);
    described.description = "月次の定例".into();
    let rig = SyncRig::new(
        Backend::Embedded,
        vec![
            described,
            room_with_history(502, 2),
            room_with_history(503, 0),
        ],
    )
    .await;

    let job = rig.rooms_sync().await;
    assert_eq!(job.status, JobStatus::Completed, "{job:?}");
    let result = job.result.unwrap();
    assert_eq!(
        result,
        json!({"created": 3, "updated": 0, "total": 3, "left": 0, "descriptions": 3, "requests": 4,
               "connections": 1, "failedConnections": 0})
    );
    let room = rig.room(501).await;
    assert_eq!(room.name, "room 501");
    assert_eq!(room.message_count, 3);
    assert_eq!(room.description.as_deref(), Some("月次の定例"));
    assert!(!room.left);
    assert_eq!(rig.fake.requests().len(), 4);

    // Nothing changed in Chatwork: nothing is written, and no description is asked for.
    let before = rig.fake.requests().len();
    let job = rig.rooms_sync().await;
    assert_eq!(
        job.result.unwrap(),
        json!({"created": 0, "updated": 0, "total": 3, "left": 0, "descriptions": 0, "requests": 1,
               "connections": 1, "failedConnections": 0})
    );
    assert_eq!(rig.requests_since(before).len(), 1);

    // One room got a message (its last_update_time and message_num move), one is new.
    rig.fake
        .post_message(502, &poster(), "新しいメッセージ")
        .unwrap();
    rig.fake.add_room(room_with_history(504, 1));
    let before = rig.fake.requests().len();
    let job = rig.rooms_sync().await;
    assert_eq!(
        job.result.unwrap(),
        json!({"created": 1, "updated": 1, "total": 4, "left": 0, "descriptions": 2, "requests": 3,
               "connections": 1, "failedConnections": 0})
    );
    let mut described = description_requests(&rig.requests_since(before));
    described.sort();
    assert_eq!(described, [502, 504]);
    assert_eq!(rig.room(502).await.message_count, 3);
}

#[tokio::test]
async fn a_left_room_is_marked_kept_and_skipped_until_it_comes_back() {
    let rig = SyncRig::new(
        Backend::Embedded,
        vec![room_with_history(601, 2), room_with_history(602, 3)],
    )
    .await;
    rig.rooms_sync().await;
    let job = rig.messages_sync(None).await;
    assert_eq!(job.result.as_ref().unwrap()["processedRooms"], 2);
    assert_eq!(rig.stored(602).await.len(), 3);

    // The account leaves room 602: it is gone from GET /rooms.
    rig.fake.set_room_access(602, RoomAccess::Gone);
    let job = rig.rooms_sync().await;
    let result = job.result.unwrap();
    assert_eq!(
        (result["left"].clone(), result["total"].clone()),
        (json!(1), json!(1))
    );
    assert_eq!(result["updated"], 0);
    let left = rig.room(602).await;
    assert!(left.left);
    assert_eq!(rig.stored(602).await.len(), 3, "its messages stay");

    // Messages syncs skip it: no item, no request.
    rig.fake.post_message(601, &poster(), "hello").unwrap();
    let before = rig.fake.requests().len();
    let job = rig.messages_sync(None).await;
    assert_eq!(job.total_items, 1);
    assert_eq!(messages_requests(&rig.requests_since(before)), [601]);

    // A second rooms sync does not count it again.
    let job = rig.rooms_sync().await;
    assert_eq!(job.result.unwrap()["left"], 0);

    // The account joins it again: it is listed, so no longer left.
    rig.fake.set_room_access(602, RoomAccess::Open);
    let job = rig.rooms_sync().await;
    let result = job.result.unwrap();
    assert_eq!(
        (result["updated"].clone(), result["left"].clone()),
        (json!(1), json!(0))
    );
    assert!(!rig.room(602).await.left);
    let job = rig.messages_sync(None).await;
    assert_eq!(job.total_items, 2);
}

#[tokio::test]
async fn a_rooms_sync_canceled_while_chatwork_answers_writes_nothing() {
    let rig = SyncRig::new(Backend::Embedded, vec![room_with_history(701, 1)]).await;
    rig.fake.inject(
        FaultScope::Any,
        Fault::Hang(Duration::from_millis(1500)),
        Some(1),
    );
    let job = rig.start_rooms_sync().await;
    let source = rig.source(RoomsSync::QUEUE);
    let consumer = rig.rooms.clone();
    let polling = tokio::spawn(async move { source.poll_once(&consumer).await.unwrap() });
    // Cancel while GET /rooms is held.
    cwsync_tests::eventually("GET /rooms in flight", Duration::from_secs(10), || async {
        rig.fake.requests().iter().any(|r| r.path == "/v2/rooms")
    })
    .await;
    cwsync::jobs::cancel(rig.pool(), &cwsync::job_types::registry(), job.id)
        .await
        .unwrap();
    assert_eq!(polling.await.unwrap(), 1);

    let job = rig.job(job.id).await;
    assert_eq!(job.status, JobStatus::Canceled);
    assert_eq!(rig.items(job.id).await[0].status, ItemStatus::Canceled);
    let rooms: i64 = sqlx::query_scalar("SELECT count(*) FROM chatwork_rooms")
        .fetch_one(rig.pool())
        .await
        .unwrap();
    assert_eq!(rooms, 0, "no chunk was upserted after the cancel");
}
