//! Summary drafts: requesting one starts a `summary_draft` job; drafts list newest first.

use cwsync::jobs::JobSpec as _;
use cwsync::summary::SummaryDraft;

use std::time::Duration;

use chrono::TimeDelta;
use cwsync::queue::{Queues, group_of};
use cwsync_tests::Who;
use serde_json::json;
use uuid::Uuid;

use super::{Api, seed};
use crate::both_ways;

async fn a_draft_request_starts_a_job_grouped_by_company(app: &impl Api) {
    let pool = app.pool();
    let acme = seed::company(pool, "Acme").await;
    let path = format!("/api/companies/{acme}/summaries/draft");
    let period = json!({
        "periodStart": "2025-01-01T00:00:00+09:00",
        "periodEnd": "2026-01-02T00:00:00+09:00",
    });
    let started = app
        .call(&Who::writer(), "POST", &path, Some(period.clone()))
        .await;
    started.expect(202);
    assert_eq!(started.body["type"], "summary_draft");
    assert_eq!(started.body["userId"], "writer-1");
    assert_eq!(
        started.body["payload"],
        json!({
            "companyId": acme,
            "periodStart": "2024-12-31T15:00:00Z",
            "periodEnd": "2026-01-01T15:00:00Z",
        }),
        "366 days is allowed; times are kept in UTC"
    );
    // The same company and period while it is active: the same job, 200, for its owner
    // and for an admin.
    for who in [Who::writer(), Who::admin()] {
        let again = app.call(&who, "POST", &path, Some(period.clone())).await;
        again.expect(200);
        assert_eq!(again.body["id"], started.body["id"]);
    }
    // Another writer learns neither the job nor its owner.
    let other = app
        .call(&Who::user("bob", "writer"), "POST", &path, Some(period))
        .await;
    assert_eq!((other.status, other.code()), (409, "job_already_active"));
    let id = started.body["id"].as_str().unwrap();
    assert!(
        !other.text.contains(id) && !other.text.contains("writer-1"),
        "{}",
        other.text
    );
    let sent = app
        .queues()
        .receive(SummaryDraft::QUEUE, 10, Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!(sent.len(), 1);
    assert_eq!(group_of(&sent[0]), format!("company-{acme}"));

    let missing = app
        .call(
            &Who::writer(),
            "POST",
            &format!("/api/companies/{}/summaries/draft", Uuid::new_v4()),
            Some(
                json!({"periodStart": "2025-01-01T00:00:00Z", "periodEnd": "2025-01-02T00:00:00Z"}),
            ),
        )
        .await;
    assert_eq!((missing.status, missing.code()), (404, "company_not_found"));
}
both_ways!(a_draft_request_starts_a_job_grouped_by_company);

async fn drafts_list_newest_first(app: &impl Api) {
    let pool = app.pool();
    let acme = seed::company(pool, "Acme").await;
    let other = seed::company(pool, "Other").await;
    let t0 = seed::t0();
    for (company, n) in [(acme, 1), (acme, 2), (acme, 3), (other, 4)] {
        sqlx::query(
            "INSERT INTO summary_drafts (company_id, period_start, period_end, content,
                                         source_links, model, token_usage, created_at)
             VALUES ($1, $2, $3, $4, $5, 'extractive', NULL, $6)",
        )
        .bind(company)
        .bind(t0)
        .bind(t0 + TimeDelta::days(7))
        .bind(format!("draft {n}"))
        .bind(json!([{"url": format!("https://www.chatwork.com/#!rid1-{n}")}]))
        .bind(t0 + TimeDelta::hours(n))
        .execute(pool)
        .await
        .unwrap();
    }
    let path = format!("/api/companies/{acme}/summaries");
    let list = app.call(&Who::reader(), "GET", &path, None).await;
    list.expect(200);
    let items = list.body["items"].as_array().unwrap();
    let contents: Vec<_> = items.iter().map(|d| d["content"].clone()).collect();
    assert_eq!(
        contents,
        [json!("draft 3"), json!("draft 2"), json!("draft 1")]
    );
    assert_eq!(items[0]["model"], "extractive");
    assert_eq!(items[0]["companyId"], acme.to_string());
    assert_eq!(items[0]["periodStart"], "2025-03-01T09:00:00Z");
    assert_eq!(
        items[0]["sourceLinks"],
        json!([{"url": "https://www.chatwork.com/#!rid1-3"}])
    );
    assert!(items[0]["jobId"].is_null());
    let limited = app
        .call(&Who::reader(), "GET", &format!("{path}?limit=1"), None)
        .await;
    limited.expect(200);
    assert_eq!(limited.body["items"].as_array().unwrap().len(), 1);
    let missing = app
        .call(
            &Who::reader(),
            "GET",
            &format!("/api/companies/{}/summaries", Uuid::new_v4()),
            None,
        )
        .await;
    assert_eq!((missing.status, missing.code()), (404, "company_not_found"));
}
both_ways!(drafts_list_newest_first);
