//! A room's tasks, files and members, a company's open tasks, and the company suggestions:
//! what each shows, its order and pages, who may read it, and bad input as 400/404.

use chrono::{TimeDelta, Utc};
use cwsync_tests::Who;
use serde_json::{Value, json};

use super::{Api, seed};
use crate::both_ways;

fn ids(body: &Value, field: &str) -> Vec<i64> {
    body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i[field].as_i64().unwrap())
        .collect()
}

/// Every page of `path` (which has no query yet besides `first`), following `nextCursor`.
async fn all_pages(app: &impl Api, who: &Who, path: &str, first: &str, field: &str) -> Vec<i64> {
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let url = match &cursor {
            Some(c) => format!("{path}?{first}&cursor={c}"),
            None => format!("{path}?{first}"),
        };
        let page = app.call(who, "GET", &url, None).await;
        page.expect(200);
        seen.extend(ids(&page.body, field));
        match page.body["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return seen,
        }
        assert!(seen.len() < 100, "the pages never end");
    }
}

async fn a_rooms_tasks_are_listed_newest_or_by_deadline(app: &impl Api) {
    let pool = app.pool();
    let room = seed::room(pool, 701, "営業").await;
    let company = seed::company(pool, "Acme").await;
    seed::link(pool, company, room).await;
    let seen = seed::t0();
    let past = Utc::now() - TimeDelta::days(1);
    let future = Utc::now() + TimeDelta::days(3);
    seed::task(
        pool,
        room,
        11,
        "見積書を送る",
        ("time", Some(future)),
        "open",
        seen,
    )
    .await;
    seed::task(pool, room, 12, "議事録", ("none", None), "open", seen).await;
    seed::task(pool, room, 13, "請求書", ("date", Some(past)), "open", seen).await;
    seed::task(pool, room, 14, "契約書", ("time", Some(past)), "done", seen).await;
    seed::task(pool, room, 15, "日程調整", ("none", None), "open", seen).await;
    let reader = Who::reader();

    let newest = app
        .call(&reader, "GET", "/api/chatwork/rooms/701/tasks", None)
        .await;
    newest.expect(200);
    assert_eq!(ids(&newest.body, "taskId"), [15, 14, 13, 12, 11]);
    assert_eq!(newest.body["syncedAt"], Value::Null);
    let overdue = &newest.body["items"][2];
    assert_eq!(overdue["overdue"], true);
    assert_eq!(overdue["limitType"], "date");
    assert_eq!(overdue["accountName"], "佐藤 健一");
    assert_eq!(overdue["assignedByAccountName"], "田中 花子");
    assert_eq!(overdue["roomName"], "営業");
    assert_eq!(
        newest.body["items"][1]["overdue"], false,
        "a done task is not overdue"
    );

    // By deadline, no deadline last, paged two at a time; by our id too.
    let by_deadline = all_pages(
        app,
        &reader,
        &format!("/api/chatwork/rooms/{}/tasks", room.id),
        "sort=deadline&limit=2",
        "taskId",
    )
    .await;
    assert_eq!(by_deadline, [13, 14, 11, 12, 15]);
    let open = all_pages(
        app,
        &reader,
        "/api/chatwork/rooms/701/tasks",
        "status=open&limit=1",
        "taskId",
    )
    .await;
    assert_eq!(open, [15, 13, 12, 11]);
    let done = app
        .call(
            &reader,
            "GET",
            "/api/chatwork/rooms/701/tasks?status=done",
            None,
        )
        .await;
    assert_eq!(ids(&done.body, "taskId"), [14]);

    // A cursor of one order is refused in the other; bad filters are 400s.
    let first = app
        .call(
            &reader,
            "GET",
            "/api/chatwork/rooms/701/tasks?sort=deadline&limit=1",
            None,
        )
        .await;
    let cursor = first.body["nextCursor"].as_str().unwrap();
    let mixed = app
        .call(
            &reader,
            "GET",
            &format!("/api/chatwork/rooms/701/tasks?cursor={cursor}"),
            None,
        )
        .await;
    assert_eq!((mixed.status, mixed.code()), (400, "invalid_parameter"));
    assert_eq!(mixed.body["error"]["field"], "cursor");
    for (query, field) in [
        ("status=closed", "status"),
        ("sort=oldest", "sort"),
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("cursor=abc", "cursor"),
    ] {
        let bad = app
            .call(
                &reader,
                "GET",
                &format!("/api/chatwork/rooms/701/tasks?{query}"),
                None,
            )
            .await;
        assert_eq!(
            (bad.status, bad.code()),
            (400, "invalid_parameter"),
            "{query}"
        );
        assert_eq!(bad.body["error"]["field"], field, "{query}");
    }
    let unknown = app
        .call(&reader, "GET", "/api/chatwork/rooms/701/tasks?x=1", None)
        .await;
    assert_eq!((unknown.status, unknown.code()), (400, "unknown_parameter"));
}
both_ways!(a_rooms_tasks_are_listed_newest_or_by_deadline);

async fn only_admins_read_a_room_linked_to_no_company(app: &impl Api) {
    let pool = app.pool();
    let unlinked = seed::room(pool, 702, "Internal").await;
    seed::task(
        pool,
        unlinked,
        21,
        "内部",
        ("none", None),
        "open",
        seed::t0(),
    )
    .await;
    for what in ["tasks", "files", "members"] {
        let path = format!("/api/chatwork/rooms/702/{what}");
        for who in [Who::reader(), Who::writer()] {
            let hidden = app.call(&who, "GET", &path, None).await;
            assert_eq!(
                (hidden.status, hidden.code()),
                (404, "room_not_found"),
                "{path}"
            );
        }
        app.call(&Who::admin(), "GET", &path, None)
            .await
            .expect(200);
        let missing = app
            .call(
                &Who::admin(),
                "GET",
                &format!("/api/chatwork/rooms/9999/{what}"),
                None,
            )
            .await;
        assert_eq!((missing.status, missing.code()), (404, "room_not_found"));
        let malformed = app
            .call(
                &Who::admin(),
                "GET",
                &format!("/api/chatwork/rooms/abc/{what}"),
                None,
            )
            .await;
        assert_eq!(
            (malformed.status, malformed.code()),
            (400, "invalid_path_parameter")
        );
        let nobody = app.call(&Who::Nobody, "GET", &path, None).await;
        assert_eq!(nobody.status, 401);
    }
}
both_ways!(only_admins_read_a_room_linked_to_no_company);

async fn a_rooms_files_show_their_copy_and_members_their_organization(app: &impl Api) {
    let pool = app.pool();
    let room = seed::room(pool, 703, "Support").await;
    let company = seed::company(pool, "Acme").await;
    seed::link(pool, company, room).await;
    let t0 = seed::t0();
    seed::file(pool, room, 31, "見積書.pdf", t0, "stored").await;
    seed::file(
        pool,
        room,
        32,
        "video.mp4",
        t0 + TimeDelta::hours(1),
        "too_large",
    )
    .await;
    seed::file(
        pool,
        room,
        33,
        "gone.txt",
        t0 + TimeDelta::hours(2),
        "failed",
    )
    .await;
    seed::file(
        pool,
        room,
        34,
        "new.png",
        t0 + TimeDelta::hours(2),
        "pending",
    )
    .await;
    sqlx::query(
        "UPDATE chatwork_rooms SET files_synced_at = $2, members_synced_at = $2 WHERE id = $1",
    )
    .bind(room.id)
    .bind(t0)
    .execute(pool)
    .await
    .unwrap();

    let files = all_pages(
        app,
        &Who::reader(),
        "/api/chatwork/rooms/703/files",
        "limit=3",
        "fileId",
    )
    .await;
    assert_eq!(files, [34, 33, 32, 31], "newest upload first, then id");
    let page = app
        .call(&Who::reader(), "GET", "/api/chatwork/rooms/703/files", None)
        .await;
    page.expect(200);
    assert_eq!(page.body["syncedAt"], "2025-03-01T09:00:00Z");
    let by_id = |id: i64| {
        page.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["fileId"] == id)
            .unwrap()
            .clone()
    };
    let stored = by_id(31);
    assert_eq!(stored["storageState"], "stored");
    assert_eq!(stored["filename"], "見積書.pdf");
    assert_eq!(stored["storedBytes"], 2048);
    assert_eq!(
        stored["contentPath"],
        "/api/chatwork/rooms/703/files/31/content"
    );
    let large = by_id(32);
    assert_eq!(large["storageState"], "too_large");
    assert_eq!(large["contentPath"], Value::Null);
    assert_eq!(by_id(34)["contentPath"], Value::Null);
    // Why a copy failed is for admins.
    assert_eq!(by_id(33)["storageError"], Value::Null);
    let admin = app
        .call(&Who::admin(), "GET", "/api/chatwork/rooms/703/files", None)
        .await;
    let failed = admin.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["fileId"] == 33)
        .unwrap();
    assert_eq!(failed["storageError"], "Chatwork answered 404");

    seed::member(pool, room, 2002, "山田 次郎", Some("Acme")).await;
    seed::member(pool, room, 2001, "Alice", None).await;
    let members = app
        .call(
            &Who::reader(),
            "GET",
            "/api/chatwork/rooms/703/members",
            None,
        )
        .await;
    members.expect(200);
    assert_eq!(ids(&members.body, "accountId"), [2001, 2002], "by name");
    assert_eq!(members.body["items"][1]["organizationName"], "Acme");
    assert_eq!(members.body["items"][0]["organizationName"], Value::Null);
    assert_eq!(members.body["syncedAt"], "2025-03-01T09:00:00Z");
}
both_ways!(a_rooms_files_show_their_copy_and_members_their_organization);

async fn a_companys_open_tasks_come_from_its_linked_rooms_by_deadline(app: &impl Api) {
    let pool = app.pool();
    let company = seed::company(pool, "Acme").await;
    let sales = seed::room(pool, 711, "Sales").await;
    let support = seed::room(pool, 712, "Support").await;
    let other = seed::room(pool, 713, "Other").await;
    seed::link(pool, company, sales).await;
    seed::link(pool, company, support).await;
    let seen = seed::t0();
    let soon = Utc::now() + TimeDelta::hours(5);
    let past = Utc::now() - TimeDelta::hours(5);
    seed::task(
        pool,
        sales,
        41,
        "later",
        ("time", Some(soon + TimeDelta::days(2))),
        "open",
        seen,
    )
    .await;
    seed::task(
        pool,
        support,
        42,
        "overdue",
        ("time", Some(past)),
        "open",
        seen,
    )
    .await;
    seed::task(pool, sales, 43, "no deadline", ("none", None), "open", seen).await;
    seed::task(
        pool,
        support,
        44,
        "soon",
        ("date", Some(soon)),
        "open",
        seen,
    )
    .await;
    seed::task(pool, sales, 45, "done", ("time", Some(past)), "done", seen).await;
    seed::task(
        pool,
        other,
        46,
        "another company's",
        ("time", Some(past)),
        "open",
        seen,
    )
    .await;

    let path = format!("/api/companies/{company}/tasks");
    let open = app
        .call(&Who::reader(), "GET", &format!("{path}?status=open"), None)
        .await;
    open.expect(200);
    assert_eq!(ids(&open.body, "taskId"), [42, 44, 41, 43]);
    let items = open.body["items"].as_array().unwrap();
    assert_eq!(items[0]["overdue"], true);
    assert_eq!(items[0]["roomId"], 712);
    assert_eq!(items[0]["roomName"], "Support");
    assert_eq!(items[0]["chatworkRoomId"], support.id.to_string());
    assert_eq!(items[1]["overdue"], false);
    assert_eq!(items[3]["limitTime"], Value::Null);
    // Open is the default; done on asking; pages by deadline.
    let default = app.call(&Who::writer(), "GET", &path, None).await;
    assert_eq!(ids(&default.body, "taskId"), [42, 44, 41, 43]);
    let done = app
        .call(&Who::reader(), "GET", &format!("{path}?status=done"), None)
        .await;
    assert_eq!(ids(&done.body, "taskId"), [45]);
    let paged = all_pages(app, &Who::reader(), &path, "limit=3", "taskId").await;
    assert_eq!(paged, [42, 44, 41, 43]);
    // Unlinking takes the room's tasks away at once.
    sqlx::query("DELETE FROM company_room_links WHERE chatwork_room_id = $1")
        .bind(support.id)
        .execute(pool)
        .await
        .unwrap();
    let after = app.call(&Who::reader(), "GET", &path, None).await;
    assert_eq!(ids(&after.body, "taskId"), [41, 43]);

    let missing = app
        .call(
            &Who::reader(),
            "GET",
            "/api/companies/00000000-0000-0000-0000-000000000000/tasks",
            None,
        )
        .await;
    assert_eq!((missing.status, missing.code()), (404, "company_not_found"));
    let malformed = app
        .call(&Who::reader(), "GET", "/api/companies/acme/tasks", None)
        .await;
    assert_eq!(
        (malformed.status, malformed.code()),
        (400, "invalid_path_parameter")
    );
    let bad = app
        .call(&Who::reader(), "GET", &format!("{path}?status=all"), None)
        .await;
    assert_eq!((bad.status, bad.code()), (400, "invalid_parameter"));
    let unknown = app
        .call(&Who::reader(), "GET", &format!("{path}?sort=newest"), None)
        .await;
    assert_eq!((unknown.status, unknown.code()), (400, "unknown_parameter"));
}
both_ways!(a_companys_open_tasks_come_from_its_linked_rooms_by_deadline);

async fn an_admin_accepts_or_dismisses_a_suggestion_once(app: &impl Api) {
    let pool = app.pool();
    let acme = seed::company(pool, "Acme").await;
    let beta = seed::company(pool, "Beta").await;
    let room = seed::room(pool, 721, "Acme 様").await;
    let second = seed::room(pool, 722, "Beta 様").await;
    seed::message(pool, room, "1", seed::t0(), None).await;
    seed::suggestion(pool, room, acme, "Acme").await;
    seed::suggestion(pool, second, beta, "Beta").await;
    let admin = Who::admin();

    let open = app
        .call(&admin, "GET", "/api/companies/suggestions", None)
        .await;
    open.expect(200);
    let items = open.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["roomId"], 721);
    assert_eq!(items[0]["companyName"], "Acme");
    assert_eq!(items[0]["organizationName"], "Acme");
    assert_eq!(items[0]["members"], 2);
    assert_eq!(items[0]["status"], "open");
    for who in [Who::reader(), Who::writer()] {
        let refused = app
            .call(&who, "GET", "/api/companies/suggestions", None)
            .await;
        assert_eq!((refused.status, refused.code()), (403, "forbidden"));
        let refused = app
            .call(
                &who,
                "POST",
                &format!("/api/companies/{acme}/suggestions/721/accept"),
                None,
            )
            .await;
        assert_eq!((refused.status, refused.code()), (403, "forbidden"));
    }

    // Accepting links the room as the link route does: its messages get the company.
    let accept = format!("/api/companies/{acme}/suggestions/721/accept");
    let accepted = app.call(&admin, "POST", &accept, None).await;
    accepted.expect(200);
    assert_eq!(accepted.body["suggestion"]["status"], "accepted");
    assert_eq!(accepted.body["suggestion"]["decidedBy"], "admin-1");
    assert!(accepted.body["suggestion"]["decidedAt"].is_string());
    assert_eq!(accepted.body["link"]["roomId"], 721);
    assert_eq!(accepted.body["link"]["backfilledMessages"], 1);
    let company: Option<uuid::Uuid> =
        sqlx::query_scalar("SELECT company_id FROM messages WHERE chatwork_room_id = $1")
            .bind(room.id)
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!(company, Some(acme));
    let linked: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM company_room_links WHERE company_id = $1 AND chatwork_room_id = $2",
    )
    .bind(acme)
    .bind(room.id)
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(linked, 1);
    // Again (by our id this time): the same answer, nothing more done.
    let again = app
        .call(
            &admin,
            "POST",
            &format!("/api/companies/{acme}/suggestions/{}/accept", room.id),
            None,
        )
        .await;
    again.expect(200);
    assert_eq!(again.body["suggestion"]["status"], "accepted");
    assert_eq!(again.body["link"], Value::Null);
    let dismissed_late = app
        .call(
            &admin,
            "POST",
            &format!("/api/companies/{acme}/suggestions/721/dismiss"),
            None,
        )
        .await;
    assert_eq!(
        (dismissed_late.status, dismissed_late.code()),
        (409, "suggestion_decided")
    );

    // Dismissing leaves the room unlinked; accepting it afterwards is 409.
    let dismiss = format!("/api/companies/{beta}/suggestions/722/dismiss");
    let dismissed = app.call(&admin, "POST", &dismiss, None).await;
    dismissed.expect(200);
    assert_eq!(dismissed.body["suggestion"]["status"], "dismissed");
    assert_eq!(dismissed.body["link"], Value::Null);
    app.call(&admin, "POST", &dismiss, None).await.expect(200);
    let late = app
        .call(
            &admin,
            "POST",
            &format!("/api/companies/{beta}/suggestions/722/accept"),
            None,
        )
        .await;
    assert_eq!((late.status, late.code()), (409, "suggestion_decided"));
    let links: i64 =
        sqlx::query_scalar("SELECT count(*) FROM company_room_links WHERE chatwork_room_id = $1")
            .bind(second.id)
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!(links, 0);
    let open = app
        .call(&admin, "GET", "/api/companies/suggestions", None)
        .await;
    assert_eq!(open.body["items"], json!([]));

    // Audited in the decision's transaction: accept (with its link), dismiss.
    let actions: Vec<String> = seed::audit_rows(pool)
        .await
        .iter()
        .map(|r| r["action"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        actions,
        [
            "company_room_suggestion.accept",
            "company_room.link",
            "company_room_suggestion.dismiss"
        ]
    );

    // No such suggestion, room or company; malformed ids.
    for (path, status, code) in [
        (
            format!("/api/companies/{beta}/suggestions/721/accept"),
            404,
            "suggestion_not_found",
        ),
        (
            format!("/api/companies/{acme}/suggestions/9999/accept"),
            404,
            "room_not_found",
        ),
        (
            "/api/companies/00000000-0000-0000-0000-000000000000/suggestions/721/dismiss"
                .to_owned(),
            404,
            "company_not_found",
        ),
        (
            format!("/api/companies/{acme}/suggestions/abc/accept"),
            400,
            "invalid_path_parameter",
        ),
        (
            "/api/companies/acme/suggestions/721/accept".to_owned(),
            400,
            "invalid_path_parameter",
        ),
    ] {
        let response = app.call(&admin, "POST", &path, None).await;
        assert_eq!((response.status, response.code()), (status, code), "{path}");
    }
    let bad = app
        .call(&admin, "GET", "/api/companies/suggestions?limit=0", None)
        .await;
    assert_eq!((bad.status, bad.code()), (400, "invalid_parameter"));
}
both_ways!(an_admin_accepts_or_dismisses_a_suggestion_once);
