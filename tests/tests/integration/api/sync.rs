//! The sync routes start jobs: 202 with a new job, 200 with the one already active.

use cwsync::jobs::JobSpec as _;
use cwsync::sync::messages::MessagesSync;
use cwsync::sync::rooms::RoomsSync;

use cwsync::queue::Queues;
use cwsync_tests::{Body, Who};
use serde_json::json;

use super::{Api, seed};
use crate::both_ways;

async fn a_rooms_sync_starts_once_while_active(app: &impl Api) {
    let admin = Who::admin();
    let first = app
        .call(&admin, "POST", "/api/chatwork/rooms/sync", None)
        .await;
    first.expect(202);
    assert_eq!(first.body["type"], "chatwork_rooms_sync");
    assert_eq!(first.body["status"], "queued");
    assert_eq!(first.body["userId"], "admin-1");
    assert_eq!(first.body["payload"], json!({}));
    assert_eq!(first.body["progress"]["total"], 1);
    assert_eq!(first.body["progress"]["finished"], 0);
    assert_eq!(
        app.queues().depth(RoomsSync::QUEUE).await.unwrap(),
        1,
        "one queue message"
    );
    // An explicit `{}` is the same request; the active job comes back with 200.
    let again = app
        .send(
            &admin,
            "POST",
            "/api/chatwork/rooms/sync",
            Some(Body::Json(json!({}))),
            &[],
        )
        .await;
    again.expect(200);
    assert_eq!(again.body["id"], first.body["id"]);
    // So is `null`, as the document's `oneOf [object, null]` says (it once answered 422).
    let null = app
        .send(
            &admin,
            "POST",
            "/api/chatwork/rooms/sync",
            Some(Body::Json(serde_json::Value::Null)),
            &[],
        )
        .await;
    null.expect(200);
    assert_eq!(null.body["id"], first.body["id"]);
    assert_eq!(app.queues().depth(RoomsSync::QUEUE).await.unwrap(), 1);
}
both_ways!(a_rooms_sync_starts_once_while_active);

async fn a_messages_sync_of_all_rooms_starts_with_one_room_check(app: &impl Api) {
    let pool = app.pool();
    for id in [11, 12, 13] {
        seed::room(pool, id, &format!("room {id}")).await;
    }
    sqlx::query("UPDATE chatwork_rooms SET is_active = false WHERE room_id = 13")
        .execute(pool)
        .await
        .unwrap();
    let admin = Who::admin();
    let all = app
        .call(&admin, "POST", "/api/chatwork/messages/sync", None)
        .await;
    all.expect(202);
    assert_eq!(all.body["type"], "chatwork_messages_sync");
    // The job's first step, a room check, decides which rooms need a fetch (they join
    // this job) once a consumer runs it: the request never waits for Chatwork. The step
    // is no room: the job counts none yet.
    assert_eq!(all.body["payload"], json!({"scope": "all"}));
    assert_eq!(all.body["totalItems"], 0, "no room before the check");
    assert_eq!(all.body["progress"]["total"], 0);
    assert_eq!(all.body["result"]["totalRooms"], 0);
    assert_eq!(app.queues().depth(MessagesSync::QUEUE).await.unwrap(), 1);
    // One room (an inactive one may be asked for by name).
    let one = app
        .call(
            &admin,
            "POST",
            "/api/chatwork/messages/sync",
            Some(json!({"roomId": 13})),
        )
        .await;
    one.expect(202);
    assert_eq!(one.body["payload"], json!({"scope": "room", "roomId": 13}));
    assert_eq!(one.body["totalItems"], 1);
    let same = app
        .call(
            &admin,
            "POST",
            "/api/chatwork/messages/sync",
            Some(json!({"roomId": 13})),
        )
        .await;
    same.expect(200);
    assert_eq!(same.body["id"], one.body["id"]);
    let unknown = app
        .call(
            &admin,
            "POST",
            "/api/chatwork/messages/sync",
            Some(json!({"roomId": 14})),
        )
        .await;
    assert_eq!((unknown.status, unknown.code()), (404, "room_not_found"));
    assert_eq!(app.queues().depth(MessagesSync::QUEUE).await.unwrap(), 2);
}
both_ways!(a_messages_sync_of_all_rooms_starts_with_one_room_check);
