//! The job routes: lists filtered and scoped to the caller, one job with its progress,
//! errors trimmed for non-admins, and cancellation.

use cwsync::jobs;
use cwsync::sync::rooms::{RoomsSync, RoomsSyncPayload};
use cwsync_tests::Who;
use serde_json::{Value, json};

use super::{Api, seed};
use crate::both_ways;

fn ids(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_str().unwrap().to_owned())
        .collect()
}

async fn job_lists_are_filtered_and_scoped_to_the_caller(app: &impl Api) {
    let pool = app.pool();
    let acme = seed::company(pool, "Acme").await;
    let w1 = seed::job(pool, app.queues(), acme, "writer-1", 1).await;
    let w2 = seed::job(pool, app.queues(), acme, "writer-1", 2).await;
    let other = seed::job(pool, app.queues(), acme, "writer-2", 3).await;
    // A scheduled job has no user.
    let scheduled =
        jobs::start::<RoomsSync>(pool, app.queues(), &RoomsSyncPayload::default(), None)
            .await
            .unwrap()
            .job;
    // Distinct creation times, so "newest first" is observable.
    for (i, id) in [w1.id, w2.id, other.id, scheduled.id].iter().enumerate() {
        sqlx::query("UPDATE jobs SET created_at = $2 WHERE id = $1")
            .bind(id)
            .bind(seed::t0() + chrono::TimeDelta::minutes(i as i64))
            .execute(pool)
            .await
            .unwrap();
    }
    jobs::cancel(pool, &cwsync::job_types::registry(), w1.id)
        .await
        .unwrap();

    let mine = app.call(&Who::writer(), "GET", "/api/jobs", None).await;
    mine.expect(200);
    assert_eq!(ids(&mine.body), [w2.id.to_string(), w1.id.to_string()]);
    assert!(mine.body["items"][0].get("progress").is_none());
    let all = app.call(&Who::admin(), "GET", "/api/jobs", None).await;
    assert_eq!(
        ids(&all.body),
        [scheduled.id, other.id, w2.id, w1.id].map(|i| i.to_string())
    );
    assert!(all.body["items"][0]["userId"].is_null());
    let readers = app.call(&Who::reader(), "GET", "/api/jobs", None).await;
    assert_eq!(readers.body["items"], json!([]));

    let by_type = app
        .call(
            &Who::admin(),
            "GET",
            "/api/jobs?type=chatwork_rooms_sync",
            None,
        )
        .await;
    assert_eq!(ids(&by_type.body), [scheduled.id.to_string()]);
    let by_status = app
        .call(&Who::writer(), "GET", "/api/jobs?status=canceled", None)
        .await;
    assert_eq!(ids(&by_status.body), [w1.id.to_string()]);
    let both = app
        .call(
            &Who::admin(),
            "GET",
            "/api/jobs?type=summary_draft&status=queued&limit=1",
            None,
        )
        .await;
    assert_eq!(ids(&both.body), [other.id.to_string()]);
    // The default limit is 20, the maximum 100.
    for n in 10..35 {
        seed::job(pool, app.queues(), acme, "writer-3", n).await;
    }
    let page = app
        .call(&Who::user("writer-3", "writer"), "GET", "/api/jobs", None)
        .await;
    assert_eq!(page.body["items"].as_array().unwrap().len(), 20);
    let page = app
        .call(
            &Who::user("writer-3", "writer"),
            "GET",
            "/api/jobs?limit=100",
            None,
        )
        .await;
    assert_eq!(page.body["items"].as_array().unwrap().len(), 25);
}
both_ways!(job_lists_are_filtered_and_scoped_to_the_caller);

async fn one_job_shows_its_progress_and_errors_by_role(app: &impl Api) {
    let pool = app.pool();
    let acme = seed::company(pool, "Acme").await;
    let job = seed::job(pool, app.queues(), acme, "writer-1", 1).await;
    let path = format!("/api/jobs/{}", job.id);
    let seen = app.call(&Who::writer(), "GET", &path, None).await;
    seen.expect(200);
    let body = &seen.body;
    for key in [
        "id",
        "type",
        "status",
        "payload",
        "result",
        "error",
        "userId",
        "startedAt",
        "finishedAt",
        "createdAt",
        "updatedAt",
    ] {
        assert!(body.get(key).is_some(), "the job JSON has {key}: {body}");
    }
    assert_eq!(body["status"], "queued");
    assert_eq!(
        body["progress"],
        json!({"total": 1, "finished": 0, "completed": 0, "unchanged": 0, "failed": 0,
               "canceled": 0, "fetched": 0})
    );

    // A failed job: the owner sees name and message only, an admin everything.
    let error = json!({"name": "ChatworkError", "message": "Chatwork answered 500",
                       "stack": "at cwsync::sync (secret internals)"});
    sqlx::query("UPDATE jobs SET status = 'failed', error = $2, finished_at = now() WHERE id = $1")
        .bind(job.id)
        .bind(&error)
        .execute(pool)
        .await
        .unwrap();
    let owner = app.call(&Who::writer(), "GET", &path, None).await;
    assert_eq!(
        owner.body["error"],
        json!({"name": "ChatworkError", "message": "Chatwork answered 500"})
    );
    assert!(!owner.text.contains("secret internals"));
    let listed = app.call(&Who::writer(), "GET", "/api/jobs", None).await;
    assert!(!listed.text.contains("secret internals"));
    let admin = app.call(&Who::admin(), "GET", &path, None).await;
    assert_eq!(admin.body["error"], error);

    // A database's words stored as the message never reach a non-admin.
    let error = json!({"name": "RetryableError",
                       "message": "error returned from database: new row for relation \"summary_drafts\" violates check constraint \"summary_drafts_check\""});
    sqlx::query("UPDATE jobs SET error = $2 WHERE id = $1")
        .bind(job.id)
        .bind(&error)
        .execute(pool)
        .await
        .unwrap();
    for seen in [
        app.call(&Who::writer(), "GET", &path, None).await,
        app.call(&Who::writer(), "GET", "/api/jobs", None).await,
    ] {
        for internal in ["summary_drafts", "constraint", "relation", "database"] {
            assert!(!seen.text.contains(internal), "{}", seen.text);
        }
    }
    let admin = app.call(&Who::admin(), "GET", &path, None).await;
    assert_eq!(admin.body["error"], error, "admins see what was stored");

    // Not the caller's, or not there: the same 404.
    let stranger = app
        .call(&Who::user("writer-2", "writer"), "GET", &path, None)
        .await;
    let nowhere = app
        .call(
            &Who::writer(),
            "GET",
            &format!("/api/jobs/{}", uuid::Uuid::new_v4()),
            None,
        )
        .await;
    for response in [&stranger, &nowhere] {
        assert_eq!((response.status, response.code()), (404, "job_not_found"));
        assert_eq!(
            response.body["error"]["message"],
            nowhere.body["error"]["message"]
        );
    }
}
both_ways!(one_job_shows_its_progress_and_errors_by_role);

async fn only_queued_or_processing_jobs_cancel(app: &impl Api) {
    let pool = app.pool();
    let acme = seed::company(pool, "Acme").await;
    let job = seed::job(pool, app.queues(), acme, "writer-1", 1).await;
    let path = format!("/api/jobs/{}/cancel", job.id);
    let canceled = app.call(&Who::writer(), "POST", &path, None).await;
    canceled.expect(200);
    assert_eq!(canceled.body["status"], "canceled");
    assert!(canceled.body["finishedAt"].is_string());
    assert_eq!(canceled.body["progress"]["canceled"], 1);
    let again = app.call(&Who::writer(), "POST", &path, None).await;
    assert_eq!((again.status, again.code()), (409, "not_cancelable"));
    assert!(
        again.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("canceled")
    );
    // A completed one.
    let done = seed::job(pool, app.queues(), acme, "writer-1", 2).await;
    sqlx::query(
        "UPDATE jobs SET status = 'completed', started_at = now(), finished_at = now()
          WHERE id = $1",
    )
    .bind(done.id)
    .execute(pool)
    .await
    .unwrap();
    let response = app
        .call(
            &Who::admin(),
            "POST",
            &format!("/api/jobs/{}/cancel", done.id),
            None,
        )
        .await;
    assert_eq!((response.status, response.code()), (409, "not_cancelable"));
    // A processing one cancels.
    let running = seed::job(pool, app.queues(), acme, "writer-1", 3).await;
    sqlx::query("UPDATE jobs SET status = 'processing', started_at = now() WHERE id = $1")
        .bind(running.id)
        .execute(pool)
        .await
        .unwrap();
    app.call(
        &Who::writer(),
        "POST",
        &format!("/api/jobs/{}/cancel", running.id),
        None,
    )
    .await
    .expect(200);
    let missing = app
        .call(
            &Who::admin(),
            "POST",
            &format!("/api/jobs/{}/cancel", uuid::Uuid::new_v4()),
            None,
        )
        .await;
    assert_eq!((missing.status, missing.code()), (404, "job_not_found"));
}
both_ways!(only_queued_or_processing_jobs_cancel);
