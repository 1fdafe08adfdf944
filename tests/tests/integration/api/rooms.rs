//! The rooms routes: sync state and errors, switching a room off and on, and its
//! messages newest first, a page at a time.

use chrono::TimeDelta;
use cwsync_tests::Who;
use serde_json::json;

use super::{Api, seed};
use crate::both_ways;

async fn rooms_show_their_sync_state_and_errors(app: &impl Api) {
    let pool = app.pool();
    let synced = seed::room(pool, 201, "Synced").await;
    let failing = seed::room(pool, 202, "Failing").await;
    let company = seed::company(pool, "Acme").await;
    seed::link(pool, company, synced).await;
    sqlx::query(
        "UPDATE chatwork_rooms SET last_sync_at = $2, last_message_id = '1234567890123456789012'
          WHERE id = $1",
    )
    .bind(synced.id)
    .bind(seed::t0())
    .execute(pool)
    .await
    .unwrap();
    sqlx::query(
        "UPDATE chatwork_rooms SET last_error_at = $2, last_error_message = 'Chatwork answered 404',
                last_error_status = 404, is_active = false
          WHERE id = $1",
    )
    .bind(failing.id)
    .bind(seed::t0())
    .execute(pool)
    .await
    .unwrap();

    let response = app
        .call(&Who::admin(), "GET", "/api/chatwork/rooms", None)
        .await;
    response.expect(200);
    let items = response.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    // By name: Failing, then Synced.
    let (failing_json, synced_json) = (&items[0], &items[1]);
    assert_eq!(synced_json["roomId"], 201);
    assert_eq!(synced_json["id"], synced.id.to_string());
    assert_eq!(synced_json["isActive"], true);
    assert_eq!(synced_json["lastSyncAt"], "2025-03-01T09:00:00Z");
    assert_eq!(synced_json["lastMessageId"], "1234567890123456789012");
    assert_eq!(synced_json["lastErrorAt"], serde_json::Value::Null);
    assert_eq!(synced_json["companyIds"], json!([company]));
    assert_eq!(synced_json["roomType"], "group");
    assert_eq!(synced_json["messageCount"], 3);
    assert!(synced_json.get("linkedAt").is_none());
    assert_eq!(failing_json["isActive"], false);
    assert_eq!(failing_json["lastErrorMessage"], "Chatwork answered 404");
    assert_eq!(failing_json["lastErrorStatus"], 404);
    assert_eq!(failing_json["lastErrorAt"], "2025-03-01T09:00:00Z");
    assert_eq!(failing_json["companyIds"], json!([]));
}
both_ways!(rooms_show_their_sync_state_and_errors);

async fn a_room_is_switched_off_and_on_by_either_id(app: &impl Api) {
    let pool = app.pool();
    let room = seed::room(pool, 301, "Sales").await;
    let admin = Who::admin();
    let off = app
        .call(
            &admin,
            "PATCH",
            "/api/chatwork/rooms/301",
            Some(json!({"isActive": false})),
        )
        .await;
    off.expect(200);
    assert_eq!(off.body["isActive"], false);
    assert_eq!(off.body["roomId"], 301);
    let on = app
        .call(
            &admin,
            "PATCH",
            &format!("/api/chatwork/rooms/{}", room.id),
            Some(json!({"isActive": true})),
        )
        .await;
    on.expect(200);
    assert_eq!(on.body["isActive"], true);
    let active: bool = sqlx::query_scalar("SELECT is_active FROM chatwork_rooms WHERE id = $1")
        .bind(room.id)
        .fetch_one(pool)
        .await
        .unwrap();
    assert!(active);
    let missing = app
        .call(
            &admin,
            "PATCH",
            "/api/chatwork/rooms/999",
            Some(json!({"isActive": false})),
        )
        .await;
    assert_eq!((missing.status, missing.code()), (404, "room_not_found"));
    let missing = app
        .call(
            &admin,
            "PATCH",
            &format!("/api/chatwork/rooms/{}", uuid::Uuid::new_v4()),
            Some(json!({"isActive": false})),
        )
        .await;
    assert_eq!((missing.status, missing.code()), (404, "room_not_found"));
}
both_ways!(a_room_is_switched_off_and_on_by_either_id);

async fn messages_come_newest_first_a_page_at_a_time(app: &impl Api) {
    let pool = app.pool();
    let room = seed::room(pool, 401, "Sales").await;
    let other = seed::room(pool, 402, "Other").await;
    let t0 = seed::t0();
    // Three messages share a send time: their order is by the numeric id, where "99" <
    // "100" and ids outgrow 64 bits.
    let rows = [
        ("99", t0 + TimeDelta::minutes(5)),
        ("100", t0 + TimeDelta::minutes(5)),
        ("18446744073709551616000", t0 + TimeDelta::minutes(5)),
        ("5", t0 + TimeDelta::minutes(9)),
        ("7", t0),
        ("6", t0 + TimeDelta::minutes(1)),
        ("1000", t0 + TimeDelta::minutes(2)),
    ];
    for (id, at) in rows {
        seed::message(pool, room, id, at, None).await;
    }
    seed::message(pool, other, "8", t0 + TimeDelta::hours(1), None).await;
    let expected = [
        "5",
        "18446744073709551616000",
        "100",
        "99",
        "1000",
        "6",
        "7",
    ];

    let admin = Who::admin();
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            None => "/api/chatwork/rooms/401/messages?limit=3".to_owned(),
            Some(c) => format!("/api/chatwork/rooms/401/messages?limit=3&cursor={c}"),
        };
        let page = app.call(&admin, "GET", &path, None).await;
        page.expect(200);
        pages += 1;
        for m in page.body["items"].as_array().unwrap() {
            assert_eq!(m["roomId"], 401);
            assert_eq!(m["chatworkRoomId"], room.id.to_string());
            seen.push(m["messageId"].as_str().unwrap().to_owned());
        }
        match page.body["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
        assert!(pages < 10, "the cursor does not advance");
    }
    assert_eq!(seen, expected);
    assert_eq!(pages, 3);

    // By our id too; the default page holds them all.
    let page = app
        .call(
            &admin,
            "GET",
            &format!("/api/chatwork/rooms/{}/messages", room.id),
            None,
        )
        .await;
    page.expect(200);
    assert_eq!(page.body["items"].as_array().unwrap().len(), 7);
    assert!(page.body["nextCursor"].is_null());
    let first = &page.body["items"][0];
    assert_eq!(first["body"], "message 5");
    assert_eq!(first["accountName"], "Tanaka");
    assert_eq!(first["sendTime"], "2025-03-01T09:09:00Z");
    assert!(first["updateTime"].is_null());
    // A room without messages.
    seed::room(pool, 403, "Quiet").await;
    let empty = app
        .call(&admin, "GET", "/api/chatwork/rooms/403/messages", None)
        .await;
    empty.expect(200);
    assert_eq!(empty.body["items"], json!([]));
    assert!(empty.body["nextCursor"].is_null());
}
both_ways!(messages_come_newest_first_a_page_at_a_time);
