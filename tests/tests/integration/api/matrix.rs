//! Every route × every kind of caller, with the status each cell must answer, run over
//! HTTP and through the Lambda adapter. A job route is run on the caller's own job and on
//! another user's.

use serde_json::{Value, json};
use uuid::Uuid;

use super::{Api, seed};
use crate::both_ways;
use cwsync_tests::Who;

/// The callers of every row, in the order the cells run.
const CALLERS: [&str; 5] = ["nobody", "no role", "reader", "writer", "admin"];

fn who(caller: &str) -> Who {
    match caller {
        "nobody" => Who::Nobody,
        "no role" => Who::no_role("nobody-special"),
        "reader" => Who::reader(),
        "writer" => Who::writer(),
        "admin" => Who::admin(),
        other => unreachable!("{other}"),
    }
}

/// What one row needs from the seeded rows, by caller.
struct Fixture {
    company: Uuid,
    /// Each caller's own jobs (to read, to cancel), by sub.
    own: Vec<(String, Uuid, Uuid)>,
    /// Jobs of someone else (to read, to cancel).
    other_read: Uuid,
    other_cancel: Uuid,
}

impl Fixture {
    fn own(&self, caller: &Who, cancel: bool) -> Uuid {
        let sub = caller.sub().unwrap_or("admin-1");
        let (_, read, to_cancel) = self
            .own
            .iter()
            .find(|(s, _, _)| s == sub)
            .or_else(|| self.own.iter().find(|(s, _, _)| s == "admin-1"))
            .expect("an own job");
        if cancel { *to_cancel } else { *read }
    }
}

struct Row {
    method: &'static str,
    /// The route as the README's route table names it (for the failure message).
    route: &'static str,
    path: fn(&Fixture, &Who) -> String,
    body: fn(&Who) -> Option<Value>,
    /// Statuses for nobody, no role, reader, writer, admin.
    expect: [u16; 5],
}

fn no_body(_: &Who) -> Option<Value> {
    None
}

fn rows() -> Vec<Row> {
    vec![
        Row {
            method: "GET",
            route: "/api/health",
            path: |_, _| "/api/health".into(),
            body: no_body,
            expect: [200, 200, 200, 200, 200],
        },
        Row {
            method: "GET",
            route: "/api/openapi.json",
            path: |_, _| "/api/openapi.json".into(),
            body: no_body,
            expect: [200, 200, 200, 200, 200],
        },
        // Chatwork's webhook deliveries: a JWT, whatever its role, is no signature.
        Row {
            method: "POST",
            route: "/webhooks/chatwork",
            path: |_, _| "/webhooks/chatwork".into(),
            body: |_| Some(json!({"webhook_event_type": "message_created"})),
            expect: [401, 401, 401, 401, 401],
        },
        Row {
            method: "GET",
            route: "/api/chatwork/rooms",
            path: |_, _| "/api/chatwork/rooms".into(),
            body: no_body,
            expect: [401, 403, 403, 403, 200],
        },
        Row {
            method: "PATCH",
            route: "/api/chatwork/rooms/{id}",
            path: |_, _| "/api/chatwork/rooms/101".into(),
            body: |_| Some(json!({"isActive": false})),
            expect: [401, 403, 403, 403, 200],
        },
        Row {
            method: "POST",
            route: "/api/chatwork/rooms/sync",
            path: |_, _| "/api/chatwork/rooms/sync".into(),
            body: no_body,
            expect: [401, 403, 403, 403, 202],
        },
        Row {
            method: "POST",
            route: "/api/chatwork/messages/sync",
            path: |_, _| "/api/chatwork/messages/sync".into(),
            body: |_| Some(json!({"roomId": 101})),
            expect: [401, 403, 403, 403, 202],
        },
        Row {
            method: "GET",
            route: "/api/chatwork/status",
            path: |_, _| "/api/chatwork/status".into(),
            body: no_body,
            expect: [401, 403, 403, 403, 200],
        },
        // Connections: admins only. Without connections configured, adding one is 503
        // (the matrix's app has no token key); reading the list works.
        Row {
            method: "GET",
            route: "/api/chatwork/connections",
            path: |_, _| "/api/chatwork/connections".into(),
            body: no_body,
            expect: [401, 403, 403, 403, 200],
        },
        Row {
            method: "POST",
            route: "/api/chatwork/connections",
            path: |_, _| "/api/chatwork/connections".into(),
            body: |_| Some(json!({"token": "abc"})),
            expect: [401, 403, 403, 403, 409],
        },
        Row {
            method: "PATCH",
            route: "/api/chatwork/connections/{id}",
            path: |_, _| "/api/chatwork/connections/00000000-0000-0000-0000-000000000000".into(),
            body: |_| Some(json!({"status": "disabled"})),
            expect: [401, 403, 403, 403, 404],
        },
        Row {
            method: "DELETE",
            route: "/api/chatwork/connections/{id}",
            path: |_, _| "/api/chatwork/connections/00000000-0000-0000-0000-000000000000".into(),
            body: no_body,
            expect: [401, 403, 403, 403, 404],
        },
        Row {
            method: "POST",
            route: "/api/chatwork/connections/oauth",
            path: |_, _| "/api/chatwork/connections/oauth".into(),
            body: no_body,
            expect: [401, 403, 403, 403, 409],
        },
        Row {
            method: "POST",
            route: "/api/chatwork/connections/oauth/complete",
            path: |_, _| "/api/chatwork/connections/oauth/complete".into(),
            body: |_| Some(json!({"state": "s", "code": "c"})),
            expect: [401, 403, 403, 403, 409],
        },
        Row {
            method: "POST",
            route: "/api/chatwork/connections/{id}/webhooks",
            path: |_, _| {
                "/api/chatwork/connections/00000000-0000-0000-0000-000000000000/webhooks".into()
            },
            body: |_| Some(json!({"token": "dG9rZW4="})),
            expect: [401, 403, 403, 403, 409],
        },
        Row {
            method: "DELETE",
            route: "/api/chatwork/connections/{id}/webhooks/{webhookId}",
            path: |_, _| {
                "/api/chatwork/connections/00000000-0000-0000-0000-000000000000/webhooks/00000000-0000-0000-0000-000000000000".into()
            },
            body: no_body,
            expect: [401, 403, 403, 403, 404],
        },
        Row {
            method: "GET",
            route: "/api/chatwork/status/history",
            path: |_, _| "/api/chatwork/status/history?range=day".into(),
            body: no_body,
            expect: [401, 403, 403, 403, 200],
        },
        Row {
            method: "GET",
            route: "/api/chatwork/rooms/{id}/messages",
            path: |_, _| "/api/chatwork/rooms/101/messages".into(),
            body: no_body,
            expect: [401, 403, 403, 403, 200],
        },
        // Any role may read a file; none is stored here (the content itself:
        // sync::extras).
        Row {
            method: "GET",
            route: "/api/chatwork/rooms/{id}/files/{fileId}/content",
            path: |_, _| "/api/chatwork/rooms/101/files/1/content".into(),
            body: no_body,
            expect: [401, 403, 404, 404, 404],
        },
        Row {
            method: "GET",
            route: "/api/companies",
            path: |_, _| "/api/companies".into(),
            body: no_body,
            expect: [401, 403, 200, 200, 200],
        },
        Row {
            method: "POST",
            route: "/api/companies",
            path: |_, _| "/api/companies".into(),
            body: |_| Some(json!({"name": "株式会社テスト"})),
            expect: [401, 403, 403, 403, 201],
        },
        Row {
            method: "GET",
            route: "/api/companies/{id}/chatwork-rooms",
            path: |f, _| format!("/api/companies/{}/chatwork-rooms", f.company),
            body: no_body,
            expect: [401, 403, 200, 200, 200],
        },
        Row {
            method: "POST",
            route: "/api/companies/{id}/chatwork-rooms",
            path: |f, _| format!("/api/companies/{}/chatwork-rooms", f.company),
            body: |_| Some(json!({"roomId": 103})),
            expect: [401, 403, 403, 403, 201],
        },
        Row {
            method: "DELETE",
            route: "/api/companies/{id}/chatwork-rooms/{roomId}",
            // The writer unlinks room 101, the admin room 102: each cell its own link.
            path: |f, w| {
                let room = if w.sub() == Some("admin-1") { 102 } else { 101 };
                format!("/api/companies/{}/chatwork-rooms/{room}", f.company)
            },
            body: no_body,
            expect: [401, 403, 403, 204, 204],
        },
        Row {
            method: "POST",
            route: "/api/companies/{id}/summaries/draft",
            path: |f, _| format!("/api/companies/{}/summaries/draft", f.company),
            // A period per caller, so that no cell meets another's active job.
            body: |w| {
                let day = if w.sub() == Some("admin-1") { 10 } else { 11 };
                Some(json!({
                    "periodStart": format!("2025-04-{day}T00:00:00Z"),
                    "periodEnd": format!("2025-04-{}T00:00:00Z", day + 7),
                }))
            },
            expect: [401, 403, 403, 202, 202],
        },
        Row {
            method: "GET",
            route: "/api/companies/{id}/summaries",
            path: |f, _| format!("/api/companies/{}/summaries", f.company),
            body: no_body,
            expect: [401, 403, 200, 200, 200],
        },
        Row {
            method: "GET",
            route: "/api/jobs",
            path: |_, _| "/api/jobs".into(),
            body: no_body,
            expect: [401, 403, 200, 200, 200],
        },
        Row {
            method: "GET",
            route: "/api/jobs/{id} (own job)",
            path: |f, w| format!("/api/jobs/{}", f.own(w, false)),
            body: no_body,
            expect: [401, 403, 200, 200, 200],
        },
        Row {
            method: "GET",
            route: "/api/jobs/{id} (another user's job)",
            path: |f, _| format!("/api/jobs/{}", f.other_read),
            body: no_body,
            expect: [401, 403, 404, 404, 200],
        },
        Row {
            method: "POST",
            route: "/api/jobs/{id}/cancel (own job)",
            path: |f, w| format!("/api/jobs/{}/cancel", f.own(w, true)),
            body: no_body,
            expect: [401, 403, 200, 200, 200],
        },
        Row {
            method: "POST",
            route: "/api/jobs/{id}/cancel (another user's job)",
            path: |f, _| format!("/api/jobs/{}/cancel", f.other_cancel),
            body: no_body,
            expect: [401, 403, 404, 404, 200],
        },
        Row {
            method: "POST",
            route: "/api/jobs/{id}/retry (own job, still queued)",
            path: |f, w| format!("/api/jobs/{}/retry", f.own(w, false)),
            body: no_body,
            expect: [401, 403, 409, 409, 409],
        },
        Row {
            method: "POST",
            route: "/api/jobs/{id}/retry (another user's job)",
            path: |f, _| format!("/api/jobs/{}/retry", f.other_read),
            body: no_body,
            expect: [401, 403, 404, 404, 409],
        },
        Row {
            method: "GET",
            route: "/api/schedules",
            path: |_, _| "/api/schedules".into(),
            body: no_body,
            expect: [401, 403, 403, 403, 200],
        },
        Row {
            method: "GET",
            route: "/api/schedules/{task}/runs",
            path: |_, _| "/api/schedules/sweep/runs".into(),
            body: no_body,
            expect: [401, 403, 403, 403, 200],
        },
        Row {
            method: "POST",
            route: "/api/schedules/{task}/run",
            path: |_, _| "/api/schedules/sweep/run".into(),
            body: no_body,
            expect: [401, 403, 403, 403, 202],
        },
        Row {
            method: "POST",
            route: "/api/schedules/{task}/pause",
            path: |_, _| "/api/schedules/retention/pause".into(),
            body: no_body,
            expect: [401, 403, 403, 403, 200],
        },
        Row {
            method: "POST",
            route: "/api/schedules/{task}/resume",
            path: |_, _| "/api/schedules/retention/resume".into(),
            body: no_body,
            expect: [401, 403, 403, 403, 200],
        },
        Row {
            method: "GET",
            route: "/api/console/config",
            path: |_, _| "/api/console/config".into(),
            body: no_body,
            expect: [200, 200, 200, 200, 200],
        },
        Row {
            method: "GET",
            route: "/api/me",
            path: |_, _| "/api/me".into(),
            body: no_body,
            expect: [401, 403, 200, 200, 200],
        },
        Row {
            method: "GET",
            route: "/api/companies/{id}",
            path: |f, _| format!("/api/companies/{}", f.company),
            body: no_body,
            expect: [401, 403, 200, 200, 200],
        },
        // A room's tasks, files and members: anyone with a role, for a linked room (103,
        // linked by the admin's cell of the link row above).
        Row {
            method: "GET",
            route: "/api/chatwork/rooms/{id}/tasks",
            path: |_, _| "/api/chatwork/rooms/103/tasks".into(),
            body: no_body,
            expect: [401, 403, 200, 200, 200],
        },
        Row {
            method: "GET",
            route: "/api/chatwork/rooms/{id}/files",
            path: |_, _| "/api/chatwork/rooms/103/files".into(),
            body: no_body,
            expect: [401, 403, 200, 200, 200],
        },
        Row {
            method: "GET",
            route: "/api/chatwork/rooms/{id}/members",
            path: |_, _| "/api/chatwork/rooms/103/members".into(),
            body: no_body,
            expect: [401, 403, 200, 200, 200],
        },
        Row {
            method: "GET",
            route: "/api/companies/{id}/tasks",
            path: |f, _| format!("/api/companies/{}/tasks", f.company),
            body: no_body,
            expect: [401, 403, 200, 200, 200],
        },
        Row {
            method: "GET",
            route: "/api/companies/suggestions",
            path: |_, _| "/api/companies/suggestions".into(),
            body: no_body,
            expect: [401, 403, 403, 403, 200],
        },
        Row {
            method: "POST",
            route: "/api/companies/{id}/suggestions/{roomId}/accept",
            path: |f, _| format!("/api/companies/{}/suggestions/103/accept", f.company),
            body: no_body,
            expect: [401, 403, 403, 403, 200],
        },
        Row {
            method: "POST",
            route: "/api/companies/{id}/suggestions/{roomId}/dismiss",
            path: |f, _| format!("/api/companies/{}/suggestions/101/dismiss", f.company),
            body: no_body,
            expect: [401, 403, 403, 403, 200],
        },
    ]
}

async fn fixture(app: &impl Api) -> Fixture {
    let pool = app.pool();
    let company = seed::company(pool, "Acme").await;
    let r101 = seed::room(pool, 101, "Sales").await;
    let r102 = seed::room(pool, 102, "Support").await;
    let r103 = seed::room(pool, 103, "Ops").await;
    seed::link(pool, company, r101).await;
    seed::link(pool, company, r102).await;
    // One suggestion for the admin to accept, one to dismiss.
    seed::suggestion(pool, r103, company, "Acme").await;
    seed::suggestion(pool, r101, company, "Acme").await;
    let mut own = Vec::new();
    let mut n = 0;
    for sub in ["reader-1", "writer-1", "admin-1"] {
        let read = seed::job(pool, app.queues(), company, sub, n).await.id;
        let cancel = seed::job(pool, app.queues(), company, sub, n + 1).await.id;
        own.push((sub.to_owned(), read, cancel));
        n += 2;
    }
    Fixture {
        company,
        own,
        other_read: seed::job(pool, app.queues(), company, "someone-else", 100)
            .await
            .id,
        other_cancel: seed::job(pool, app.queues(), company, "someone-else", 101)
            .await
            .id,
    }
}

async fn every_route_answers_every_caller_as_designed(app: &impl Api) {
    let fixture = fixture(app).await;
    let mut failures = Vec::new();
    let rows = rows();
    for row in &rows {
        for (i, caller) in CALLERS.iter().enumerate() {
            let who = who(caller);
            let path = (row.path)(&fixture, &who);
            let response = app.call(&who, row.method, &path, (row.body)(&who)).await;
            let expected = row.expect[i];
            if response.status != expected {
                failures.push(format!(
                    "{} {} as {caller}: expected {expected}, got {} {}",
                    row.method, row.route, response.status, response.text
                ));
                continue;
            }
            // Every answer but a 204 is JSON; refusals carry the code that says why.
            if expected != 204 {
                assert!(
                    !response.body.is_null(),
                    "{} {} as {caller}: not JSON: {}",
                    row.method,
                    row.route,
                    response.text
                );
            }
            let code = match (expected, *caller) {
                (401, _) if row.route == "/webhooks/chatwork" => Some("invalid_signature"),
                (401, _) => Some("unauthenticated"),
                (403, "no role") => Some("no_role"),
                (403, _) => Some("forbidden"),
                (404, _) if row.route.starts_with("/api/chatwork/connections") => {
                    Some("connection_not_found")
                }
                (404, _) if row.route.ends_with("/content") => Some("not_found"),
                (404, _) => Some("job_not_found"),
                _ => None,
            };
            if let Some(code) = code {
                assert_eq!(
                    response.code(),
                    code,
                    "{} {} as {caller}",
                    row.method,
                    row.route
                );
                assert!(response.body["error"]["requestId"].is_string());
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} cell(s) of the matrix failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // The matrix covers every route of the OpenAPI document.
    let document: Value = serde_json::from_str(&cwsync::api::openapi::document()).unwrap();
    for (path, item) in document["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            let method = method.to_ascii_uppercase();
            assert!(
                rows.iter()
                    .any(|r| r.method == method && r.route.split(' ').next() == Some(path)),
                "the matrix has no row for {method} {path}"
            );
        }
    }
}
both_ways!(every_route_answers_every_caller_as_designed);

/// Nothing but the verified claims decides the role: not headers, not the query, not
/// the body.
async fn no_header_query_or_body_raises_a_role(app: &impl Api) {
    let reader = Who::reader();
    let headers = [
        ("x-role", "admin"),
        ("x-cwsync-role", "admin"),
        ("x-amzn-oidc-data", "admin"),
        ("x-forwarded-user", "admin-1"),
    ];
    let response = app
        .send(
            &reader,
            "GET",
            "/api/chatwork/rooms?role=admin",
            None,
            &headers,
        )
        .await;
    assert_eq!((response.status, response.code()), (403, "forbidden"));
    let response = app
        .send(
            &reader,
            "POST",
            "/api/companies",
            Some(cwsync_tests::Body::Json(
                json!({"name": "x", "role": "admin"}),
            )),
            &headers,
        )
        .await;
    assert_eq!((response.status, response.code()), (403, "forbidden"));
    // A role claim that is not a role does not count either.
    let odd = Who::user("u", "superadmin").with_claim("cognito:groups", json!(["administrators"]));
    let response = app.call(&odd, "GET", "/api/companies", None).await;
    assert_eq!((response.status, response.code()), (403, "no_role"));
    // Groups do raise a role when they name one: they come from the verified token.
    let grouped = Who::user("u", "reader").with_claim("cognito:groups", json!(["staff", "admin"]));
    app.call(&grouped, "GET", "/api/chatwork/rooms", None)
        .await
        .expect(200);
}
both_ways!(no_header_query_or_body_raises_a_role);
