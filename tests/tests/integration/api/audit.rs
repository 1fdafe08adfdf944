//! Every mutation writes one audit row (actor, role, action, resource, old and new values,
//! request id), in the mutation's transaction where it has one.

use cwsync::jobs::JobSpec as _;
use cwsync::queue::Queues as _;
use cwsync_tests::{ApiResponse, Who};
use serde_json::{Value, json};

use super::{Api, seed};
use crate::both_ways;

fn request_id(response: &ApiResponse) -> String {
    response
        .header("x-request-id")
        .expect("every answer has x-request-id")
        .to_owned()
}

async fn every_mutation_writes_its_audit_row(app: &impl Api) {
    let pool = app.pool();
    let room = seed::room(pool, 701, "Sales").await;
    let acme = seed::company(pool, "Acme").await;
    let admin = Who::admin();
    let writer = Who::writer();
    let mut expected: Vec<Value> = Vec::new();
    let row = |actor: &str,
               role: &str,
               action: &str,
               resource_type: &str,
               resource_id: String,
               old: Value,
               new: Value,
               response: &ApiResponse| {
        json!({
            "actor": actor, "role": role, "action": action,
            "resource_type": resource_type, "resource_id": resource_id,
            "old_values": old, "new_values": new, "request_id": request_id(response),
        })
    };

    let r = app
        .call(
            &admin,
            "PATCH",
            "/api/chatwork/rooms/701",
            Some(json!({"isActive": false})),
        )
        .await;
    r.expect(200);
    expected.push(row(
        "admin-1",
        "admin",
        "chatwork_room.update",
        "chatwork_room",
        room.id.to_string(),
        json!({"roomId": 701, "isActive": true}),
        json!({"roomId": 701, "isActive": false}),
        &r,
    ));

    let r = app
        .call(
            &admin,
            "POST",
            "/api/companies",
            Some(json!({"name": "Beta"})),
        )
        .await;
    r.expect(201);
    let beta = r.body["id"].as_str().unwrap().to_owned();
    expected.push(row(
        "admin-1",
        "admin",
        "company.create",
        "company",
        beta,
        Value::Null,
        json!({"name": "Beta"}),
        &r,
    ));

    let r = app
        .call(
            &admin,
            "POST",
            &format!("/api/companies/{acme}/chatwork-rooms"),
            Some(json!({"roomId": 701})),
        )
        .await;
    r.expect(201);
    expected.push(row(
        "admin-1",
        "admin",
        "company_room.link",
        "company_room_link",
        format!("{acme}:{}", room.id),
        Value::Null,
        json!({"companyId": acme, "chatworkRoomId": room.id, "roomId": 701,
               "linkedAt": r.body["linkedAt"], "backfilledMessages": 0}),
        &r,
    ));

    let r = app
        .call(
            &writer,
            "DELETE",
            &format!("/api/companies/{acme}/chatwork-rooms/701"),
            None,
        )
        .await;
    r.expect(204);
    let linked_at = expected.last().unwrap()["new_values"]["linkedAt"].clone();
    expected.push(row(
        "writer-1",
        "writer",
        "company_room.unlink",
        "company_room_link",
        format!("{acme}:{}", room.id),
        json!({"companyId": acme, "chatworkRoomId": room.id, "roomId": 701,
               "linkedAt": linked_at}),
        Value::Null,
        &r,
    ));

    let r = app
        .call(&admin, "POST", "/api/chatwork/rooms/sync", None)
        .await;
    r.expect(202);
    expected.push(row(
        "admin-1",
        "admin",
        "chatwork_rooms_sync.start",
        "job",
        r.body["id"].as_str().unwrap().to_owned(),
        Value::Null,
        json!({"type": "chatwork_rooms_sync", "status": "queued", "payload": {}}),
        &r,
    ));
    // Answered with the active job: nothing changed, nothing recorded.
    app.call(&admin, "POST", "/api/chatwork/rooms/sync", None)
        .await
        .expect(200);

    let r = app
        .call(
            &admin,
            "POST",
            "/api/chatwork/messages/sync",
            Some(json!({"roomId": 701})),
        )
        .await;
    r.expect(202);
    let messages_job = r.body["id"].as_str().unwrap().to_owned();
    expected.push(row(
        "admin-1",
        "admin",
        "chatwork_messages_sync.start",
        "job",
        messages_job.clone(),
        Value::Null,
        json!({"type": "chatwork_messages_sync", "status": "queued", "payload": {"scope": "room", "roomId": 701}}),
        &r,
    ));

    let r = app
        .call(
            &writer,
            "POST",
            &format!("/api/companies/{acme}/summaries/draft"),
            Some(
                json!({"periodStart": "2025-01-01T00:00:00Z", "periodEnd": "2025-02-01T00:00:00Z"}),
            ),
        )
        .await;
    r.expect(202);
    expected.push(row(
        "writer-1",
        "writer",
        "summary_draft.start",
        "job",
        r.body["id"].as_str().unwrap().to_owned(),
        Value::Null,
        json!({"type": "summary_draft", "status": "queued", "payload": {
            "companyId": acme, "periodStart": "2025-01-01T00:00:00Z",
            "periodEnd": "2025-02-01T00:00:00Z"}}),
        &r,
    ));

    let r = app
        .call(
            &admin,
            "POST",
            &format!("/api/jobs/{messages_job}/cancel"),
            None,
        )
        .await;
    r.expect(200);
    expected.push(row(
        "admin-1",
        "admin",
        "job.cancel",
        "job",
        messages_job,
        json!({"status": "queued"}),
        json!({"status": "canceled"}),
        &r,
    ));

    let rows = seed::audit_rows(pool).await;
    assert_eq!(rows.len(), expected.len(), "{rows:#?}");
    for (row, expected) in rows.iter().zip(&expected) {
        assert_eq!(row, expected);
    }
    // Reads and refusals write nothing.
    app.call(&admin, "GET", "/api/jobs", None).await.expect(200);
    app.call(
        &Who::reader(),
        "POST",
        "/api/companies",
        Some(json!({"name": "x"})),
    )
    .await
    .expect(403);
    assert_eq!(seed::audit_rows(pool).await.len(), expected.len());
}
both_ways!(every_mutation_writes_its_audit_row);

/// A change whose audit row cannot be written does not happen, and the caller gets a
/// 500 with a request id and no internals.
#[tokio::test]
async fn a_change_and_its_audit_row_commit_together() {
    let app = cwsync_tests::spawn_app().await;
    let pool = &app.db.pool;
    let room = seed::room(pool, 801, "Sales").await;
    let acme = seed::company(pool, "Acme").await;
    seed::message(pool, room, "1", seed::t0(), None).await;
    sqlx::query("ALTER TABLE audit_logs RENAME TO audit_logs_away")
        .execute(pool)
        .await
        .unwrap();
    let response = app
        .call(
            &Who::admin(),
            "POST",
            &format!("/api/companies/{acme}/chatwork-rooms"),
            Some(json!({"roomId": 801})),
        )
        .await;
    assert_eq!((response.status, response.code()), (500, "internal"));
    let error = &response.body["error"];
    assert_eq!(
        error["requestId"].as_str(),
        response.header("x-request-id"),
        "{}",
        response.text
    );
    for leak in ["audit_logs", "relation", "sqlx", "SELECT", "INSERT"] {
        assert!(!response.text.contains(leak), "{}", response.text);
    }
    sqlx::query("ALTER TABLE audit_logs_away RENAME TO audit_logs")
        .execute(pool)
        .await
        .unwrap();
    let links: i64 = sqlx::query_scalar("SELECT count(*) FROM company_room_links")
        .fetch_one(pool)
        .await
        .unwrap();
    let assigned: i64 =
        sqlx::query_scalar("SELECT count(*) FROM messages WHERE company_id IS NOT NULL")
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!(
        (links, assigned),
        (0, 0),
        "the link and its backfill rolled back"
    );
}

/// Starting and canceling a job are audited in the job core's own transaction: when the
/// audit row cannot be written, no job is started and no job is canceled, and the caller
/// gets a 500 for a change that did not happen.
#[tokio::test]
async fn a_job_start_or_cancel_whose_audit_row_fails_does_not_happen() {
    let app = cwsync_tests::spawn_app().await;
    let pool = &app.db.pool;
    let acme = seed::company(pool, "Acme").await;
    let queued = seed::job(pool, &app.queues, acme, "writer-1", 1).await;
    let jobs_before: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs")
        .fetch_one(pool)
        .await
        .unwrap();
    sqlx::query("ALTER TABLE audit_logs RENAME TO audit_logs_away")
        .execute(pool)
        .await
        .unwrap();

    let started = app
        .call(&Who::admin(), "POST", "/api/chatwork/rooms/sync", None)
        .await;
    assert_eq!((started.status, started.code()), (500, "internal"));
    let canceled = app
        .call(
            &Who::admin(),
            "POST",
            &format!("/api/jobs/{}/cancel", queued.id),
            None,
        )
        .await;
    assert_eq!((canceled.status, canceled.code()), (500, "internal"));
    for leak in ["audit_logs", "relation", "INSERT"] {
        assert!(!started.text.contains(leak), "{}", started.text);
        assert!(!canceled.text.contains(leak), "{}", canceled.text);
    }

    sqlx::query("ALTER TABLE audit_logs_away RENAME TO audit_logs")
        .execute(pool)
        .await
        .unwrap();
    let jobs_after: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(jobs_after, jobs_before, "no rooms sync was started");
    let status: String = sqlx::query_scalar("SELECT status::text FROM jobs WHERE id = $1")
        .bind(queued.id)
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(status, "queued", "the cancel rolled back");
    assert_eq!(
        app.queues
            .depth(cwsync::sync::rooms::RoomsSync::QUEUE)
            .await
            .unwrap(),
        0,
        "nothing was sent for a job that was never written"
    );

    // With the audit log back, the same requests go through and are recorded.
    app.call(&Who::admin(), "POST", "/api/chatwork/rooms/sync", None)
        .await
        .expect(202);
    app.call(
        &Who::admin(),
        "POST",
        &format!("/api/jobs/{}/cancel", queued.id),
        None,
    )
    .await
    .expect(200);
    let actions: Vec<String> = seed::audit_rows(pool)
        .await
        .iter()
        .map(|r| r["action"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(actions, ["chatwork_rooms_sync.start", "job.cancel"]);
}
