//! The scheduled tasks' routes: every start of a task recorded, run now (taken by the
//! scheduler's tick, never run in the request; a dry run changes nothing), no two runs
//! of a task at once, pause and resume (audited), admins only.

use std::collections::BTreeSet;

use cwsync::config::Env;
use cwsync::jobs::JobSpec as _;
use cwsync::queue::Queues;
use cwsync::schedule::runs::{self, RunStatus};
use cwsync::schedule::{self, ScheduleSettings, Task};
use cwsync::sync::messages::MessagesSync;
use cwsync::sync::rooms::RoomsSync;
use cwsync_tests::{TestApp, Who};
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

use super::{Api, seed};

fn settings() -> ScheduleSettings {
    ScheduleSettings::from_env(&Env::default()).unwrap()
}

/// The scheduler's minutely tick, as the Lambda and the local timer run it.
async fn tick(app: &TestApp) -> Vec<runs::Run> {
    let queues: &dyn Queues = &app.queues;
    schedule::tick(app.pool(), queues, &settings())
        .await
        .unwrap()
        .0
}

async fn fire(app: &TestApp, task: Task) -> runs::Run {
    let queues: &dyn Queues = &app.queues;
    runs::fire(app.pool(), queues, task, &settings())
        .await
        .unwrap()
}

/// Rows of the tables retention and the sweep change.
async fn counts(pool: &PgPool) -> Value {
    let row: (i64, i64, i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM jobs), (SELECT count(*) FROM job_items),
                (SELECT count(*) FROM room_checks),
                (SELECT count(*) FROM schedule_runs WHERE ended_at < now() - interval '1 day'),
                (SELECT count(*) FROM jobs WHERE status IN ('queued', 'processing'))",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    json!({"jobs": row.0, "items": row.1, "checks": row.2, "oldRuns": row.3, "openJobs": row.4})
}

/// A finished job, a room check and a run past retention (30 days), and an open job with
/// no progress for two hours (the sweep fails it).
async fn seed_old_rows(app: &TestApp) -> Uuid {
    let pool = app.pool();
    let company = seed::company(pool, "Acme").await;
    let old = seed::job(pool, app.queues(), company, "writer-1", 1).await;
    sqlx::query(
        "UPDATE jobs SET status = 'canceled', open_items = 0,
                         finished_at = now() - interval '40 days' WHERE id = $1",
    )
    .bind(old.id)
    .execute(pool)
    .await
    .unwrap();
    let stale = seed::job(pool, app.queues(), company, "writer-1", 2).await;
    sqlx::query("UPDATE jobs SET updated_at = now() - interval '2 hours' WHERE id = $1")
        .bind(stale.id)
        .execute(pool)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO room_checks (checked_at, trigger, outcome, cadence_secs)
         VALUES (now() - interval '40 days', 'schedule', 'current', 60)",
    )
    .execute(pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO schedule_runs (task, trigger, requested_at, started_at, ended_at, outcome)
         VALUES ('sweep', 'schedule', now() - interval '40 days', now() - interval '40 days',
                 now() - interval '40 days', 'completed')",
    )
    .execute(pool)
    .await
    .unwrap();
    stale.id
}

fn run_of(body: &Value) -> Uuid {
    body["id"].as_str().unwrap().parse().unwrap()
}

#[tokio::test]
async fn every_task_records_its_runs_and_the_list_shows_them() {
    let app = cwsync_tests::spawn_app().await;
    let pool = app.pool();
    seed::room(pool, 501, "Sales").await;
    for task in Task::ALL {
        let run = fire(&app, task).await;
        assert_eq!(run.trigger, "schedule");
        assert!(
            run.started_at.is_some() && run.ended_at.is_some(),
            "{run:?}"
        );
        if task == Task::RoomCheck {
            // This process has no Chatwork client: the failure is the run's outcome.
            assert_eq!(run.status, RunStatus::Failed, "{run:?}");
            assert!(run.error.as_deref().unwrap().contains("Chatwork client"));
            continue;
        }
        assert_eq!(run.status, RunStatus::Completed, "{task}: {run:?}");
        let report = run.report.as_ref().unwrap();
        assert_eq!(report["task"], task.as_str(), "{report}");
    }
    // The jobs the schedule started are the schedule's.
    let started: BTreeSet<(String, Option<String>)> =
        sqlx::query_as("SELECT type::text, user_id FROM jobs")
            .fetch_all(pool)
            .await
            .unwrap()
            .into_iter()
            .collect();
    let expected: BTreeSet<(String, Option<String>)> = [
        (RoomsSync::TYPE.as_str().to_owned(), None),
        (MessagesSync::TYPE.as_str().to_owned(), None),
    ]
    .into();
    assert_eq!(started, expected);

    let list = app.call(&Who::admin(), "GET", "/api/schedules", None).await;
    list.expect(200);
    let items = list.body["items"].as_array().unwrap();
    let names: Vec<&str> = items.iter().map(|i| i["task"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        vec![
            "room-check",
            "rooms-sync",
            "messages-sync",
            "sweep",
            "retention",
            "migrate"
        ]
    );
    for item in items {
        let task = item["task"].as_str().unwrap();
        let expected = if task == "room-check" {
            "failed"
        } else {
            "completed"
        };
        assert_eq!(item["lastRun"]["status"], expected, "{item}");
        assert_eq!(item["openRun"], Value::Null, "{item}");
        assert_eq!(item["paused"], Value::Null, "{item}");
    }
    let sweep = &items[3];
    assert_eq!(sweep["cadenceSecs"], 300);
    assert_eq!(sweep["hasDryRun"], true);
    let fired: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(sweep["lastRun"]["requestedAt"].clone()).unwrap();
    let due: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(sweep["nextDueAt"].clone()).unwrap();
    assert_eq!(due - fired, chrono::Duration::seconds(300));
    // Migrate runs after a deploy, not on a schedule; the messages sync is the room
    // check's fallback, off while the check is on.
    assert_eq!(items[5]["cadenceSecs"], Value::Null);
    assert_eq!(items[5]["nextDueAt"], Value::Null);
    assert_eq!(items[2]["cadenceSecs"], Value::Null);

    // The history, newest first, a page at a time.
    for _ in 0..2 {
        fire(&app, Task::Migrate).await;
    }
    let page = app
        .call(
            &Who::admin(),
            "GET",
            "/api/schedules/migrate/runs?limit=2",
            None,
        )
        .await;
    page.expect(200);
    assert_eq!(page.body["items"].as_array().unwrap().len(), 2);
    let cursor = page.body["nextCursor"].as_str().unwrap();
    let rest = app
        .call(
            &Who::admin(),
            "GET",
            &format!("/api/schedules/migrate/runs?limit=2&cursor={cursor}"),
            None,
        )
        .await;
    rest.expect(200);
    assert_eq!(rest.body["items"].as_array().unwrap().len(), 1);
    assert_eq!(rest.body["nextCursor"], Value::Null);
    assert_eq!(rest.body["items"][0]["trigger"], "schedule");
}

#[tokio::test]
async fn run_now_is_taken_by_the_scheduler_and_a_dry_run_changes_nothing() {
    let app = cwsync_tests::spawn_app().await;
    let pool = app.pool();
    let stale = seed_old_rows(&app).await;
    let before = counts(pool).await;
    assert_eq!(
        before,
        json!({"jobs": 2, "items": 2, "checks": 1, "oldRuns": 1, "openJobs": 1})
    );

    // Retention, dry: answered at once, requested; the tick runs it; nothing changed.
    let asked = app
        .call(
            &Who::admin(),
            "POST",
            "/api/schedules/retention/run",
            Some(json!({"dryRun": true})),
        )
        .await;
    asked.expect(202);
    assert_eq!(asked.body["status"], "requested", "{}", asked.text);
    assert_eq!(asked.body["trigger"], "admin-1");
    assert_eq!(asked.body["dryRun"], true);
    let id = run_of(&asked.body);
    let listed = app
        .call(&Who::admin(), "GET", "/api/schedules/retention/runs", None)
        .await;
    assert_eq!(listed.body["items"][0]["id"], json!(id));
    assert_eq!(listed.body["items"][0]["status"], "requested");
    let schedules = app.call(&Who::admin(), "GET", "/api/schedules", None).await;
    assert_eq!(schedules.body["items"][4]["openRun"]["id"], json!(id));
    assert_eq!(counts(pool).await, before, "nothing runs in the request");

    let done = tick(&app).await;
    assert_eq!(done.len(), 1);
    assert_eq!((done[0].id, done[0].status), (id, RunStatus::Completed));
    let report = done[0].report.clone().unwrap();
    assert_eq!(
        (
            &report["deletedJobs"],
            &report["deletedChecks"],
            &report["deletedRuns"]
        ),
        (&json!(1), &json!(1), &json!(1)),
        "{report}"
    );
    assert_eq!(counts(pool).await, before, "a dry run deletes nothing");

    // The sweep, dry: it would fail the stale job; the job stays open.
    let asked = app
        .call(
            &Who::admin(),
            "POST",
            "/api/schedules/sweep/run",
            Some(json!({"dryRun": true})),
        )
        .await;
    asked.expect(202);
    let done = tick(&app).await;
    assert_eq!(done.len(), 1);
    let report = done[0].report.clone().unwrap();
    assert_eq!(report["failedStale"], 1, "{report}");
    assert_eq!(counts(pool).await, before, "a dry sweep repairs nothing");

    // For real: the sweep fails the stale job; retention deletes the old rows.
    app.call(&Who::admin(), "POST", "/api/schedules/sweep/run", None)
        .await
        .expect(202);
    let done = tick(&app).await;
    assert_eq!(done[0].report.as_ref().unwrap()["failedStale"], 1);
    let status: String = sqlx::query_scalar("SELECT status::text FROM jobs WHERE id = $1")
        .bind(stale)
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(status, "failed");
    app.call(
        &Who::admin(),
        "POST",
        "/api/schedules/retention/run",
        Some(json!({})),
    )
    .await
    .expect(202);
    let done = tick(&app).await;
    assert_eq!(done[0].report.as_ref().unwrap()["deletedJobs"], 1);
    assert_eq!(
        counts(pool).await,
        json!({"jobs": 1, "items": 1, "checks": 0, "oldRuns": 0, "openJobs": 0})
    );

    // Every other task runs now too; the syncs start the schedule's jobs.
    seed::room(pool, 502, "Support").await;
    for task in ["rooms-sync", "messages-sync", "migrate"] {
        let asked = app
            .call(
                &Who::admin(),
                "POST",
                &format!("/api/schedules/{task}/run"),
                None,
            )
            .await;
        asked.expect(202);
        let done = tick(&app).await;
        assert_eq!(done.len(), 1);
        assert_eq!(
            done[0].status,
            RunStatus::Completed,
            "{task}: {:?}",
            done[0]
        );
        assert_eq!(done[0].trigger, "admin-1");
    }
    assert!(tick(&app).await.is_empty(), "nothing left to take");

    // A dry run only where a task has one; unknown tasks are 404.
    let refused = app
        .call(
            &Who::admin(),
            "POST",
            "/api/schedules/room-check/run",
            Some(json!({"dryRun": true})),
        )
        .await;
    assert_eq!((refused.status, refused.code()), (422, "invalid_field"));
    assert_eq!(refused.field(), Some("dryRun"));
    let refused = app
        .call(&Who::admin(), "POST", "/api/schedules/nap/run", None)
        .await;
    assert_eq!((refused.status, refused.code()), (404, "task_not_found"));
    let refused = app
        .call(&Who::admin(), "GET", "/api/schedules/nap/runs", None)
        .await;
    assert_eq!((refused.status, refused.code()), (404, "task_not_found"));
    let refused = app
        .call(
            &Who::admin(),
            "POST",
            "/api/schedules/sweep/run",
            Some(json!({"dryRun": "yes"})),
        )
        .await;
    assert_eq!((refused.status, refused.code()), (422, "invalid_field"));
}

#[tokio::test]
async fn runs_of_one_task_never_overlap() {
    let app = cwsync_tests::spawn_app().await;
    let pool = app.pool();
    // Two requests at once: one run, one 409.
    let admin = Who::admin();
    let (a, b) = tokio::join!(
        app.call(&admin, "POST", "/api/schedules/sweep/run", None),
        app.call(&admin, "POST", "/api/schedules/sweep/run", None),
    );
    let mut statuses = [a.status, b.status];
    statuses.sort();
    assert_eq!(statuses, [202, 409], "{} / {}", a.text, b.text);
    let refused = if a.status == 409 { &a } else { &b };
    assert_eq!(refused.code(), "task_run_active");
    // Another task is not held up.
    app.call(&admin, "POST", "/api/schedules/retention/run", None)
        .await
        .expect(202);

    // The schedule firing meanwhile records that it skipped.
    let skipped = fire(&app, Task::Sweep).await;
    assert_eq!(skipped.status, RunStatus::SkippedOverlap, "{skipped:?}");

    // Two schedulers ticking at once take each requested run once.
    let queues: &dyn Queues = &app.queues;
    let settings = settings();
    let (one, two) = tokio::join!(
        runs::run_requested(pool, queues, &settings),
        runs::run_requested(pool, queues, &settings),
    );
    let mut taken: Vec<Task> = one
        .unwrap()
        .into_iter()
        .chain(two.unwrap())
        .map(|r| r.task)
        .collect();
    taken.sort_by_key(|t| t.as_str());
    assert_eq!(taken, vec![Task::Retention, Task::Sweep]);

    // At no time were two runs of a task open (the index forbids it), and now none is.
    let open: i64 = sqlx::query_scalar("SELECT count(*) FROM schedule_runs WHERE ended_at IS NULL")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(open, 0);
    let overlapping: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM schedule_runs a JOIN schedule_runs b
            ON a.task = b.task AND a.id < b.id
           AND a.outcome NOT IN ('skipped_overlap', 'paused')
           AND b.outcome NOT IN ('skipped_overlap', 'paused')
           AND a.started_at < b.ended_at AND b.started_at < a.ended_at",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(overlapping, 0);
    // Once it ended, the task may run again.
    app.call(&admin, "POST", "/api/schedules/sweep/run", None)
        .await
        .expect(202);

    // A run whose process died is given up after a while, so it cannot block its task.
    sqlx::query(
        "UPDATE schedule_runs SET requested_at = now() - interval '1 hour'
          WHERE task = 'sweep' AND ended_at IS NULL",
    )
    .execute(pool)
    .await
    .unwrap();
    let run = fire(&app, Task::Sweep).await;
    assert_eq!(run.status, RunStatus::Completed, "{run:?}");
    let abandoned: String = sqlx::query_scalar(
        "SELECT error FROM schedule_runs WHERE task = 'sweep' AND trigger = 'admin-1'
          ORDER BY ended_at DESC LIMIT 1",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert!(abandoned.starts_with("abandoned"), "{abandoned}");
}

#[tokio::test]
async fn a_paused_task_records_paused_runs_and_pausing_is_audited() {
    let app = cwsync_tests::spawn_app().await;
    let pool = app.pool();
    let admin = Who::admin();
    let paused = app
        .call(
            &admin,
            "POST",
            "/api/schedules/retention/pause",
            Some(json!({"reason": "  restoring a backup  "})),
        )
        .await;
    paused.expect(200);
    assert_eq!(paused.body["paused"]["pausedBy"], "admin-1");
    assert_eq!(paused.body["paused"]["reason"], "restoring a backup");
    let request_id = paused.header("x-request-id").unwrap().to_owned();
    // Pausing again changes nothing and writes no second audit row.
    app.call(&admin, "POST", "/api/schedules/retention/pause", None)
        .await
        .expect(200);

    // The schedule still fires: the run says the task is paused, and nothing is deleted.
    seed_old_rows(&app).await;
    let before = counts(pool).await;
    let run = fire(&app, Task::Retention).await;
    assert_eq!(run.status, RunStatus::Paused, "{run:?}");
    assert_eq!(run.report.as_ref().unwrap()["pausedBy"], "admin-1");
    assert_eq!(counts(pool).await, before);
    // A person's run is refused while paused; a dry run is not.
    let refused = app
        .call(&admin, "POST", "/api/schedules/retention/run", None)
        .await;
    assert_eq!((refused.status, refused.code()), (409, "task_paused"));
    app.call(
        &admin,
        "POST",
        "/api/schedules/retention/run",
        Some(json!({"dryRun": true})),
    )
    .await
    .expect(202);
    let done = tick(&app).await;
    assert_eq!(done[0].status, RunStatus::Completed);
    assert_eq!(counts(pool).await, before);

    let resumed = app
        .call(&admin, "POST", "/api/schedules/retention/resume", None)
        .await;
    resumed.expect(200);
    assert_eq!(resumed.body["paused"], Value::Null);
    app.call(&admin, "POST", "/api/schedules/retention/resume", None)
        .await
        .expect(200);
    let run = fire(&app, Task::Retention).await;
    assert_eq!(run.status, RunStatus::Completed, "{run:?}");
    assert_eq!(run.report.as_ref().unwrap()["deletedJobs"], 1);

    let audit: Vec<(String, String, String, Value, Value, String)> = sqlx::query_as(
        "SELECT actor, action, resource_id, old_values, new_values, request_id
           FROM audit_logs WHERE resource_type = 'schedule' ORDER BY id",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    assert_eq!(audit.len(), 2, "{audit:?}");
    assert_eq!(
        (
            audit[0].0.as_str(),
            audit[0].1.as_str(),
            audit[0].2.as_str()
        ),
        ("admin-1", "schedule.pause", "retention")
    );
    assert_eq!(
        audit[0].4,
        json!({"paused": true, "reason": "restoring a backup"})
    );
    assert_eq!(audit[0].5, request_id);
    assert_eq!(audit[1].1, "schedule.resume");
    assert_eq!(audit[1].3["reason"], "restoring a backup");

    // A reason is bounded.
    let refused = app
        .call(
            &admin,
            "POST",
            "/api/schedules/sweep/pause",
            Some(json!({"reason": "x".repeat(501)})),
        )
        .await;
    assert_eq!((refused.status, refused.code()), (422, "invalid_field"));
    assert_eq!(refused.field(), Some("reason"));
    let refused = app
        .call(
            &admin,
            "POST",
            "/api/schedules/sweep/pause",
            Some(json!({"reason": "a\u{0}b"})),
        )
        .await;
    assert_eq!((refused.status, refused.code()), (422, "invalid_field"));
    let paused: i64 =
        sqlx::query_scalar("SELECT count(*) FROM schedule_tasks WHERE paused_at IS NOT NULL")
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!(paused, 0, "a refused pause pauses nothing");
}

#[tokio::test]
async fn only_admins_see_or_change_schedules() {
    let app = cwsync_tests::spawn_app().await;
    for who in [Who::writer(), Who::reader()] {
        for (method, path) in [
            ("GET", "/api/schedules"),
            ("GET", "/api/schedules/sweep/runs"),
            ("POST", "/api/schedules/sweep/run"),
            ("POST", "/api/schedules/sweep/pause"),
            ("POST", "/api/schedules/sweep/resume"),
        ] {
            let refused = app.call(&who, method, path, None).await;
            assert_eq!(
                (refused.status, refused.code()),
                (403, "forbidden"),
                "{method} {path}"
            );
        }
    }
    let nothing: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM schedule_runs)
              + (SELECT count(*) FROM schedule_tasks WHERE paused_at IS NOT NULL)",
    )
    .fetch_one(app.pool())
    .await
    .unwrap();
    assert_eq!(nothing, 0);
}

#[tokio::test]
async fn health_finds_overdue_tasks_and_long_runs() {
    let app = cwsync_tests::spawn_app().await;
    let pool = app.pool();
    let cadences = settings().cadences;
    assert_eq!(
        runs::health(pool, &cadences).await.unwrap(),
        runs::Health::default()
    );
    // As if set up an hour ago: the sweep (every 5 minutes) and the room check (every
    // minute) are overdue; retention (daily) is not yet.
    sqlx::query("UPDATE schedule_tasks SET created_at = now() - interval '1 hour'")
        .execute(pool)
        .await
        .unwrap();
    let health = runs::health(pool, &cadences).await.unwrap();
    assert_eq!(health.overdue, vec![Task::RoomCheck, Task::Sweep]);
    // A paused run counts: paused is not broken.
    sqlx::query(
        "UPDATE schedule_tasks SET paused_at = now(), paused_by = 'admin-1' WHERE task = 'sweep'",
    )
    .execute(pool)
    .await
    .unwrap();
    fire(&app, Task::Sweep).await;
    let health = runs::health(pool, &cadences).await.unwrap();
    assert_eq!(health.overdue, vec![Task::RoomCheck]);
    // A sweep running for 6 minutes is longer than its 5.
    sqlx::query(
        "INSERT INTO schedule_runs (task, trigger, requested_at, started_at)
         VALUES ('sweep', 'schedule', now() - interval '6 minutes', now() - interval '6 minutes')",
    )
    .execute(pool)
    .await
    .unwrap();
    let health = runs::health(pool, &cadences).await.unwrap();
    assert_eq!(health.overlong, vec![Task::Sweep]);
}
