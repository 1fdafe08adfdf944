//! What the admin console adds to the API: its files at `/` with a strict policy (over
//! HTTP and through the Lambda adapter, so the Lambda package carries them), its sign-in
//! settings and `/api/me`; rooms, companies and jobs a page at a time over thousands of
//! rows; and `POST /api/jobs/{id}/retry`.

use std::collections::HashSet;

use cwsync::jobs::{self, ErrorInfo, Job, JobStatus};
use cwsync::summary::{SummaryDraft, SummaryDraftPayload};
use cwsync::sync::messages::{MessagesSync, MessagesSyncPayload};
use cwsync_tests::Who;
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

use super::{Api, seed};
use crate::both_ways;

async fn the_console_is_served_with_a_strict_policy(app: &impl Api) {
    let page = app.call(&Who::Nobody, "GET", "/", None).await;
    page.expect(200);
    assert!(
        page.header("content-type")
            .unwrap()
            .starts_with("text/html")
    );
    assert!(
        page.text
            .contains(r#"<script type="module" src="/console/app.js">"#)
    );
    let csp = page.header("content-security-policy").unwrap();
    assert!(csp.contains("script-src 'self';"), "{csp}");
    assert!(csp.contains("default-src 'none'"), "{csp}");
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert_eq!(page.header("x-content-type-options"), Some("nosniff"));
    let script = app.call(&Who::Nobody, "GET", "/console/app.js", None).await;
    script.expect(200);
    assert!(
        script
            .header("content-type")
            .unwrap()
            .starts_with("text/javascript")
    );
    assert!(script.text.contains("import"));
    // Anything else outside /api is the JSON 404 it always was.
    let missing = app
        .call(&Who::Nobody, "GET", "/console/nope.js", None)
        .await;
    assert_eq!((missing.status, missing.code()), (404, "not_found"));

    let config = app
        .call(&Who::Nobody, "GET", "/api/console/config", None)
        .await;
    config.expect(200);
    assert_eq!(config.body, json!({"oauth": null}));
    let me = app.call(&Who::writer(), "GET", "/api/me", None).await;
    me.expect(200);
    assert_eq!(me.body, json!({"userId": "writer-1", "role": "writer"}));
    let nobody = app.call(&Who::Nobody, "GET", "/api/me", None).await;
    assert_eq!(nobody.status, 401);
}
both_ways!(the_console_is_served_with_a_strict_policy);

/// Every page of `path` (which has a `?`), following `nextCursor`: the items' `key`s.
async fn walk(app: &impl Api, who: &Who, path: &str, key: &str) -> Vec<String> {
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let url = match &cursor {
            Some(c) => format!("{path}&cursor={c}"),
            None => path.to_owned(),
        };
        let page = app.call(who, "GET", &url, None).await;
        page.expect(200);
        for item in page.body["items"].as_array().unwrap() {
            seen.push(match &item[key] {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            });
        }
        match page.body["nextCursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return seen,
        }
    }
}

#[tokio::test]
async fn rooms_page_by_name_over_thousands_of_rows_with_search_and_filters() {
    let app = cwsync_tests::spawn_app().await;
    let pool = &app.db.pool;
    // 3000 rooms; names repeat (the id breaks ties), every third inactive.
    sqlx::query(
        "INSERT INTO chatwork_rooms (room_id, name, room_type, message_count, is_active)
         SELECT n, 'room ' || lpad((n % 1000)::text, 4, '0'), 'group', 0, n % 3 <> 0
           FROM generate_series(1, 3000) n",
    )
    .execute(pool)
    .await
    .unwrap();
    let special = seed::room(pool, 5001, "50%_off sale").await;
    seed::room(pool, 5002, "500 off").await;
    let acme = seed::company(pool, "Acme").await;
    seed::link(pool, acme, special).await;

    let all = walk(
        &app,
        &Who::admin(),
        "/api/chatwork/rooms?limit=100",
        "roomId",
    )
    .await;
    assert_eq!(all.len(), 3002);
    assert_eq!(
        all.iter().collect::<HashSet<_>>().len(),
        3002,
        "no room twice"
    );
    let ordered: Vec<(String, i64)> =
        sqlx::query_as("SELECT name, room_id FROM chatwork_rooms ORDER BY name, room_id")
            .fetch_all(pool)
            .await
            .unwrap();
    let expected: Vec<String> = ordered.iter().map(|(_, id)| id.to_string()).collect();
    assert_eq!(all, expected, "pages follow the name order");

    // Without a limit, a page of 100 (older clients get the same `items`).
    let first = app
        .call(&Who::admin(), "GET", "/api/chatwork/rooms", None)
        .await;
    assert_eq!(first.body["items"].as_array().unwrap().len(), 100);
    assert!(first.body["nextCursor"].is_string());

    let inactive = walk(
        &app,
        &Who::admin(),
        "/api/chatwork/rooms?active=false&limit=100",
        "roomId",
    )
    .await;
    assert_eq!(inactive.len(), 1000);
    // `%` and `_` are searched for as themselves.
    let sale = walk(
        &app,
        &Who::admin(),
        "/api/chatwork/rooms?q=50%25_&limit=10",
        "name",
    )
    .await;
    assert_eq!(sale, ["50%_off sale"]);
    let named = walk(
        &app,
        &Who::admin(),
        "/api/chatwork/rooms?q=ROOM%200042&limit=2",
        "roomId",
    )
    .await;
    assert_eq!(named, ["42", "1042", "2042"]);
    let linked = walk(
        &app,
        &Who::admin(),
        "/api/chatwork/rooms?linked=true",
        "roomId",
    )
    .await;
    assert_eq!(linked, ["5001"]);
    let unlinked = walk(
        &app,
        &Who::admin(),
        "/api/chatwork/rooms?linked=false&q=off",
        "roomId",
    )
    .await;
    assert_eq!(unlinked, ["5002"]);

    let bad = app
        .call(
            &Who::admin(),
            "GET",
            "/api/chatwork/rooms?cursor=nonsense",
            None,
        )
        .await;
    assert_eq!((bad.status, bad.field()), (400, Some("cursor")));
    let reader = app
        .call(&Who::reader(), "GET", "/api/chatwork/rooms", None)
        .await;
    assert_eq!(reader.status, 403);
}

#[tokio::test]
async fn companies_page_by_name_over_thousands_of_rows() {
    let app = cwsync_tests::spawn_app().await;
    let pool = &app.db.pool;
    sqlx::query(
        "INSERT INTO companies (name)
         SELECT 'Company ' || lpad((n % 700)::text, 3, '0') FROM generate_series(1, 2100) n",
    )
    .execute(pool)
    .await
    .unwrap();
    let all = walk(&app, &Who::reader(), "/api/companies?limit=100", "id").await;
    assert_eq!(all.len(), 2100);
    assert_eq!(all.iter().collect::<HashSet<_>>().len(), 2100);
    let expected: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM companies ORDER BY name, id")
        .fetch_all(pool)
        .await
        .unwrap();
    let expected: Vec<String> = expected.iter().map(Uuid::to_string).collect();
    assert_eq!(all, expected);
    let some = walk(
        &app,
        &Who::reader(),
        "/api/companies?q=company%20012&limit=1",
        "name",
    )
    .await;
    assert_eq!(some, ["Company 012", "Company 012", "Company 012"]);

    let one = &expected[0];
    let company = app
        .call(
            &Who::reader(),
            "GET",
            &format!("/api/companies/{one}"),
            None,
        )
        .await;
    company.expect(200);
    assert_eq!(company.body["id"], one.as_str());
    let missing = app
        .call(
            &Who::reader(),
            "GET",
            &format!("/api/companies/{}", Uuid::new_v4()),
            None,
        )
        .await;
    assert_eq!((missing.status, missing.code()), (404, "company_not_found"));
}

#[tokio::test]
async fn jobs_page_newest_first_and_filter_by_who_started_them() {
    let app = cwsync_tests::spawn_app().await;
    let pool = &app.db.pool;
    // 1800 finished jobs: the schedule's, writer-1's and writer-2's in turn; many share
    // a creation time, which the id orders.
    sqlx::query(
        "INSERT INTO jobs (type, status, user_id, started_at, finished_at, created_at)
         SELECT 'chatwork_rooms_sync', 'completed',
                CASE n % 3 WHEN 0 THEN NULL WHEN 1 THEN 'writer-1' ELSE 'writer-2' END,
                now(), now(), now() - (n / 7) * interval '1 second'
           FROM generate_series(1, 1800) n",
    )
    .execute(pool)
    .await
    .unwrap();
    let all = walk(&app, &Who::admin(), "/api/jobs?limit=100", "id").await;
    let expected: Vec<Uuid> =
        sqlx::query_scalar("SELECT id FROM jobs ORDER BY created_at DESC, id DESC")
            .fetch_all(pool)
            .await
            .unwrap();
    let expected: Vec<String> = expected.iter().map(Uuid::to_string).collect();
    assert_eq!(all, expected, "every job once, newest first");

    let scheduled = walk(
        &app,
        &Who::admin(),
        "/api/jobs?startedBy=schedule&limit=100",
        "userId",
    )
    .await;
    assert_eq!(scheduled.len(), 600);
    assert!(scheduled.iter().all(|u| u == "null"));
    let writer2 = walk(
        &app,
        &Who::admin(),
        "/api/jobs?startedBy=writer-2&limit=100",
        "userId",
    )
    .await;
    assert_eq!(writer2.len(), 600);
    assert!(writer2.iter().all(|u| u == "writer-2"));
    // A non-admin sees only their own, whatever they ask for.
    let mine = walk(&app, &Who::writer(), "/api/jobs?limit=100", "userId").await;
    assert_eq!(mine.len(), 600);
    assert!(mine.iter().all(|u| u == "writer-1"));
    for others in ["schedule", "writer-2"] {
        let none = app
            .call(
                &Who::writer(),
                "GET",
                &format!("/api/jobs?startedBy={others}"),
                None,
            )
            .await;
        none.expect(200);
        assert_eq!(none.body["items"], json!([]));
    }
}

/// Ends a job's items as a sync would have: `failed` keys failed, the rest completed.
async fn finish(pool: &PgPool, job: &Job, failed: &[&str]) {
    let failed: Vec<String> = failed.iter().map(|s| s.to_string()).collect();
    sqlx::query(
        "UPDATE job_items
            SET status = CASE WHEN item_key = ANY($2) THEN 'failed' ELSE 'completed' END::job_item_status,
                error = CASE WHEN item_key = ANY($2) THEN $3 END,
                finished_at = now()
          WHERE job_id = $1",
    )
    .bind(job.id)
    .bind(&failed)
    .bind(sqlx::types::Json(ErrorInfo::new("ChatworkError", "Chatwork answered 500")))
    .execute(pool)
    .await
    .unwrap();
    sqlx::query(
        "UPDATE jobs SET status = 'processing', started_at = now(), open_items = 0 WHERE id = $1",
    )
    .bind(job.id)
    .execute(pool)
    .await
    .unwrap();
    jobs::finalize(pool, &cwsync::job_types::registry(), job.id)
        .await
        .unwrap();
}

#[tokio::test]
async fn retry_starts_a_job_over_the_failed_items_only() {
    let app = cwsync_tests::spawn_app().await;
    let pool = &app.db.pool;
    for id in [11, 12, 13] {
        seed::room(pool, id, &format!("room {id}")).await;
    }
    let sync = jobs::start::<MessagesSync>(
        pool,
        &app.queues,
        &MessagesSyncPayload::default(),
        Some("admin-2"),
    )
    .await
    .unwrap()
    .job;
    let path = format!("/api/jobs/{}/retry", sync.id);

    // Still open: 409.
    let open = app.call(&Who::admin(), "POST", &path, None).await;
    assert_eq!((open.status, open.code()), (409, "job_still_open"));

    finish(pool, &sync, &["room-11", "room-13"]).await;
    // Another user's job does not exist for them.
    let other = app.call(&Who::writer(), "POST", &path, None).await;
    assert_eq!((other.status, other.code()), (404, "job_not_found"));

    // An admin (not the starter) retries: a messages sync over rooms 11 and 13 only.
    let retried = app.call(&Who::admin(), "POST", &path, None).await;
    retried.expect(202);
    assert_eq!(retried.body["type"], "chatwork_messages_sync");
    assert_eq!(
        retried.body["payload"],
        json!({"scope": "rooms", "roomIds": [11, 13]})
    );
    assert_eq!(retried.body["totalItems"], 2);
    assert_eq!(retried.body["userId"], "admin-1");
    let new_id: Uuid = retried.body["id"].as_str().unwrap().parse().unwrap();
    let keys: Vec<String> = jobs::items(pool, new_id)
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.item_key)
        .collect();
    assert_eq!(keys, ["room-11", "room-13"]);
    // While that retry runs, asking again answers it.
    let again = app.call(&Who::admin(), "POST", &path, None).await;
    again.expect(200);
    assert_eq!(again.body["id"], new_id.to_string());

    // Audited in the new job's transaction.
    let audit = seed::audit_rows(pool).await;
    let row = audit.iter().find(|r| r["action"] == "job.retry").unwrap();
    assert_eq!(row["resource_id"], new_id.to_string());
    assert_eq!(row["actor"], "admin-1");
    assert_eq!(
        row["old_values"],
        json!({"retryOf": sync.id, "failedItems": 2})
    );
    assert_eq!(
        row["new_values"]["payload"],
        json!({"scope": "rooms", "roomIds": [11, 13]})
    );
}

/// Writer A's failed draft while writer B runs the same draft: A's retry meets B's job
/// and answers as A's own request for that draft does, 409 naming no job.
#[tokio::test]
async fn a_retry_never_shows_another_users_active_job() {
    let app = cwsync_tests::spawn_app().await;
    let pool = &app.db.pool;
    let acme = seed::company(pool, "Acme").await;
    let payload = SummaryDraftPayload {
        company_id: acme,
        period_start: seed::t0(),
        period_end: seed::t0() + chrono::TimeDelta::days(7),
    };
    let a = jobs::start::<SummaryDraft>(pool, &app.queues, &payload, Some("writer-1"))
        .await
        .unwrap()
        .job;
    finish(pool, &a, &["draft"]).await;
    let b = jobs::start::<SummaryDraft>(pool, &app.queues, &payload, Some("writer-2"))
        .await
        .unwrap();
    assert!(b.created);

    let direct = app
        .call(
            &Who::writer(),
            "POST",
            &format!("/api/companies/{acme}/summaries/draft"),
            Some(json!({"periodStart": payload.period_start, "periodEnd": payload.period_end})),
        )
        .await;
    direct.expect(409);
    assert_eq!(direct.body["error"]["code"], "job_already_active");
    let retried = app
        .call(
            &Who::writer(),
            "POST",
            &format!("/api/jobs/{}/retry", a.id),
            None,
        )
        .await;
    assert_eq!(retried.status, 409, "{}", retried.text);
    assert_eq!(retried.body["error"]["code"], direct.body["error"]["code"]);
    assert_eq!(
        retried.body["error"]["message"],
        direct.body["error"]["message"]
    );
    assert!(!retried.text.contains(&b.job.id.to_string()));
    assert!(!retried.text.contains("writer-2"));
    // An admin may see it.
    let admin = app
        .call(
            &Who::admin(),
            "POST",
            &format!("/api/jobs/{}/retry", a.id),
            None,
        )
        .await;
    admin.expect(200);
    assert_eq!(admin.body["id"], b.job.id.to_string());
}

#[tokio::test]
async fn the_owner_retries_a_failed_job_and_nothing_failed_is_409() {
    let app = cwsync_tests::spawn_app().await;
    let pool = &app.db.pool;
    let acme = seed::company(pool, "Acme").await;
    let payload = SummaryDraftPayload {
        company_id: acme,
        period_start: seed::t0(),
        period_end: seed::t0() + chrono::TimeDelta::days(7),
    };
    let draft = jobs::start::<SummaryDraft>(pool, &app.queues, &payload, Some("writer-1"))
        .await
        .unwrap()
        .job;
    finish(pool, &draft, &["draft"]).await;
    let failed = jobs::get(pool, draft.id).await.unwrap().unwrap();
    assert_eq!(failed.status, JobStatus::Failed);
    let path = format!("/api/jobs/{}/retry", draft.id);
    let reader = app.call(&Who::reader(), "POST", &path, None).await;
    assert_eq!(reader.status, 404, "not the reader's job");
    // The owner, a writer: the whole draft again (its one item failed).
    let retried = app.call(&Who::writer(), "POST", &path, None).await;
    retried.expect(202);
    assert_eq!(retried.body["type"], "summary_draft");
    assert_eq!(
        retried.body["payload"],
        serde_json::to_value(&payload).unwrap()
    );
    assert_eq!(retried.body["userId"], "writer-1");

    // A job whose items all succeeded: nothing to retry.
    let sync = jobs::start::<MessagesSync>(
        pool,
        &app.queues,
        &MessagesSyncPayload::Room { room_id: 77 },
        Some("admin-1"),
    )
    .await
    .unwrap()
    .job;
    finish(pool, &sync, &[]).await;
    let nothing = app
        .call(
            &Who::admin(),
            "POST",
            &format!("/api/jobs/{}/retry", sync.id),
            None,
        )
        .await;
    assert_eq!((nothing.status, nothing.code()), (409, "nothing_failed"));
}
