//! Companies, and linking rooms to them: backfill on link, 409 on a duplicate, 404s, and
//! an unlink that leaves stored messages as they are.

use chrono::TimeDelta;
use cwsync_tests::Who;
use serde_json::json;
use uuid::Uuid;

use super::{Api, seed};
use crate::both_ways;

async fn companies_are_listed_by_name_and_created_by_admins(app: &impl Api) {
    let admin = Who::admin();
    for name in ["Zeta", "Alpha"] {
        let created = app
            .call(
                &admin,
                "POST",
                "/api/companies",
                Some(json!({"name": name})),
            )
            .await;
        created.expect(201);
        assert_eq!(created.body["name"], name);
        assert!(Uuid::parse_str(created.body["id"].as_str().unwrap()).is_ok());
        assert!(created.body["createdAt"].is_string());
    }
    let list = app
        .call(&Who::writer(), "GET", "/api/companies", None)
        .await;
    list.expect(200);
    let names: Vec<_> = list.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["Alpha", "Zeta"]);
}
both_ways!(companies_are_listed_by_name_and_created_by_admins);

async fn message_companies(app: &impl Api, room: Uuid) -> Vec<(String, Option<Uuid>)> {
    sqlx::query_as(
        "SELECT message_id, company_id FROM messages WHERE chatwork_room_id = $1
          ORDER BY message_seq",
    )
    .bind(room)
    .fetch_all(app.pool())
    .await
    .unwrap()
}

async fn linking_backfills_and_unlinking_keeps_messages(app: &impl Api) {
    let pool = app.pool();
    let acme = seed::company(pool, "Acme").await;
    let other = seed::company(pool, "Other").await;
    let room = seed::room(pool, 501, "Sales").await;
    let second = seed::room(pool, 502, "Support").await;
    let t0 = seed::t0();
    seed::message(pool, room, "1", t0, None).await;
    seed::message(pool, room, "2", t0 + TimeDelta::minutes(1), Some(other)).await;
    seed::message(pool, room, "3", t0 + TimeDelta::minutes(2), None).await;
    seed::message(pool, second, "4", t0, None).await;
    let admin = Who::admin();
    let path = format!("/api/companies/{acme}/chatwork-rooms");

    // By Chatwork's id: messages without a company get Acme's; others keep theirs.
    let linked = app
        .call(&admin, "POST", &path, Some(json!({"roomId": 501})))
        .await;
    linked.expect(201);
    assert_eq!(linked.body["companyId"], acme.to_string());
    assert_eq!(linked.body["chatworkRoomId"], room.id.to_string());
    assert_eq!(linked.body["roomId"], 501);
    assert_eq!(linked.body["backfilledMessages"], 2);
    assert!(linked.body["linkedAt"].is_string());
    assert_eq!(
        message_companies(app, room.id).await,
        [
            ("1".to_owned(), Some(acme)),
            ("2".to_owned(), Some(other)),
            ("3".to_owned(), Some(acme)),
        ]
    );
    assert_eq!(
        message_companies(app, second.id).await,
        [("4".to_owned(), None)],
        "another room's messages are untouched"
    );

    // A duplicate, by either id, is 409 and changes nothing.
    for body in [json!({"roomId": 501}), json!({"chatworkRoomId": room.id})] {
        let duplicate = app.call(&admin, "POST", &path, Some(body)).await;
        assert_eq!(
            (duplicate.status, duplicate.code()),
            (409, "already_linked")
        );
    }
    // By our id.
    let linked = app
        .call(
            &admin,
            "POST",
            &path,
            Some(json!({"chatworkRoomId": second.id})),
        )
        .await;
    linked.expect(201);
    assert_eq!(linked.body["roomId"], 502);
    assert_eq!(linked.body["backfilledMessages"], 1);

    // The company's rooms, by name, with when they were linked.
    let rooms = app.call(&Who::reader(), "GET", &path, None).await;
    rooms.expect(200);
    let items = rooms.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["name"], "Sales");
    assert_eq!(items[1]["name"], "Support");
    assert!(items.iter().all(|r| r["linkedAt"].is_string()));
    assert_eq!(items[0]["companyIds"], json!([acme]));
    // Another company has none.
    let none = app
        .call(
            &Who::reader(),
            "GET",
            &format!("/api/companies/{other}/chatwork-rooms"),
            None,
        )
        .await;
    none.expect(200);
    assert_eq!(none.body["items"], json!([]));

    // Unlink (a writer may): stored messages keep their company.
    let unlinked = app
        .call(&Who::writer(), "DELETE", &format!("{path}/501"), None)
        .await;
    unlinked.expect(204);
    assert!(unlinked.text.is_empty());
    assert_eq!(
        message_companies(app, room.id).await,
        [
            ("1".to_owned(), Some(acme)),
            ("2".to_owned(), Some(other)),
            ("3".to_owned(), Some(acme)),
        ]
    );
    let again = app
        .call(&Who::writer(), "DELETE", &format!("{path}/501"), None)
        .await;
    assert_eq!((again.status, again.code()), (404, "link_not_found"));
    // By our id.
    app.call(&admin, "DELETE", &format!("{path}/{}", second.id), None)
        .await
        .expect(204);
    let links: i64 = sqlx::query_scalar("SELECT count(*) FROM company_room_links")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(links, 0);
}
both_ways!(linking_backfills_and_unlinking_keeps_messages);

async fn links_to_what_does_not_exist_are_404(app: &impl Api) {
    let pool = app.pool();
    let acme = seed::company(pool, "Acme").await;
    seed::room(pool, 601, "Sales").await;
    let admin = Who::admin();
    let nowhere = Uuid::new_v4();
    let cases = [
        (
            "POST",
            format!("/api/companies/{nowhere}/chatwork-rooms"),
            Some(json!({"roomId": 601})),
            "company_not_found",
        ),
        (
            "POST",
            format!("/api/companies/{acme}/chatwork-rooms"),
            Some(json!({"roomId": 602})),
            "room_not_found",
        ),
        (
            "POST",
            format!("/api/companies/{acme}/chatwork-rooms"),
            Some(json!({"chatworkRoomId": Uuid::new_v4()})),
            "room_not_found",
        ),
        (
            "DELETE",
            format!("/api/companies/{nowhere}/chatwork-rooms/601"),
            None,
            "company_not_found",
        ),
        (
            "DELETE",
            format!("/api/companies/{acme}/chatwork-rooms/602"),
            None,
            "room_not_found",
        ),
        (
            "DELETE",
            format!("/api/companies/{acme}/chatwork-rooms/601"),
            None,
            "link_not_found",
        ),
        (
            "GET",
            format!("/api/companies/{nowhere}/chatwork-rooms"),
            None,
            "company_not_found",
        ),
    ];
    for (method, path, body, code) in cases {
        let response = app.call(&admin, method, &path, body).await;
        assert_eq!(
            (response.status, response.code()),
            (404, code),
            "{method} {path}: {}",
            response.text
        );
    }
    let audit: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_logs")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(audit, 0, "nothing changed, nothing audited");
}
both_ways!(links_to_what_does_not_exist_are_404);

/// The room list is admins' alone; a company's rooms show a non-admin no more of a room
/// than the company's view needs: no description, last error or message limitation, and
/// no other company's id.
async fn a_companys_rooms_show_non_admins_only_what_their_role_allows(app: &impl Api) {
    let pool = app.pool();
    let acme = seed::company(pool, "Acme").await;
    let other = seed::company(pool, "Other").await;
    let room = seed::room(pool, 31, "Shared room").await;
    seed::link(pool, acme, room).await;
    seed::link(pool, other, room).await;
    sqlx::query(
        "UPDATE chatwork_rooms
            SET description = 'secret plans', last_error_at = now(),
                last_error_message = 'Chatwork answered 403', last_error_status = 403,
                message_limitation = 'latest 5000', message_limitation_at = now()
          WHERE id = $1",
    )
    .bind(room.id)
    .execute(pool)
    .await
    .unwrap();
    let path = format!("/api/companies/{acme}/chatwork-rooms");
    let admin = app.call(&Who::admin(), "GET", &path, None).await;
    admin.expect(200);
    let seen = &admin.body["items"][0];
    assert_eq!(seen["description"], "secret plans");
    assert_eq!(seen["lastErrorStatus"], 403);
    assert_eq!(seen["companyIds"].as_array().unwrap().len(), 2);
    for who in [Who::reader(), Who::writer()] {
        let answer = app.call(&who, "GET", &path, None).await;
        answer.expect(200);
        let seen = &answer.body["items"][0];
        assert_eq!(seen["roomId"], 31);
        assert_eq!(seen["name"], "Shared room");
        for field in [
            "description",
            "lastErrorAt",
            "lastErrorMessage",
            "lastErrorStatus",
            "messageLimitation",
            "messageLimitationAt",
        ] {
            assert!(seen[field].is_null(), "{field}: {seen}");
        }
        assert_eq!(seen["companyIds"], json!([acme]));
        assert!(!answer.text.contains(&other.to_string()), "{}", answer.text);
    }
}
both_ways!(a_companys_rooms_show_non_admins_only_what_their_role_allows);
