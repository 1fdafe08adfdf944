//! The Schedules page in a real headless Chromium: the list, a dry run of retention that
//! the scheduler's tick takes (nothing deleted), the task's history with its report,
//! pause with a reason and resume (audited), both languages; hidden from writers.

use std::time::Duration;

use cwsync::api::Role;
use cwsync::config::Env;
use cwsync::queue::Queues;
use cwsync::schedule::{self, ScheduleSettings};
use cwsync_tests::Browser;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::{open, set_language};

async fn sign_in_as(browser: &Browser, address: &str, token: &str, who: &str) {
    browser.goto("about:blank").await;
    browser.goto(&format!("{address}/#token={token}")).await;
    browser
        .wait_for(
            &format!("signed in as {who}"),
            &format!(
                "return document.getElementById('who').textContent.includes({})",
                json!(who)
            ),
        )
        .await;
}

async fn count(pool: &sqlx::PgPool, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

#[tokio::test]
async fn the_schedules_page_runs_pauses_and_resumes_tasks() {
    let app = cwsync_tests::spawn_app().await;
    let pool = app.db.pool.clone();
    // A finished job past retention, which a dry run must leave alone.
    sqlx::query(
        "INSERT INTO jobs (type, status, payload, active_key, total_items, open_items,
                           created_at, finished_at)
         VALUES ('chatwork_rooms_sync', 'canceled', '{}', 'old', 0, 0,
                 now() - interval '41 days', now() - interval '40 days')",
    )
    .execute(&pool)
    .await
    .unwrap();
    // The scheduler's tick, as the local runner runs it.
    let stop = CancellationToken::new();
    {
        let (pool, queues, stop) = (pool.clone(), app.queues.clone(), stop.clone());
        tokio::spawn(async move {
            let settings = ScheduleSettings::from_env(&Env::default()).unwrap();
            let queues: &dyn Queues = &queues;
            while !stop.is_cancelled() {
                schedule::tick(&pool, queues, &settings).await.unwrap();
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        });
    }
    let _stop = stop.drop_guard();

    let browser = Browser::start().await;
    let admin = app.token("admin-1", Role::Admin);
    sign_in_as(&browser, &app.address, &admin, "admin-1").await;
    set_language(&browser, "en").await;
    browser.click("#nav-schedules").await;
    browser
        .find("#schedule-list tr[data-task=\"retention\"]")
        .await;
    assert_eq!(browser.count("#schedule-list tbody tr").await, 6);
    assert_eq!(
        browser
            .count("tr[data-task=\"room-check\"] [data-action=\"dry-run\"]")
            .await,
        0,
        "only retention and the sweep have a dry run"
    );

    // A dry run of retention: requested, taken by the tick, completed; nothing deleted.
    browser
        .click("tr[data-task=\"retention\"] [data-action=\"dry-run\"]")
        .await;
    browser
        .wait_for_within(
            "the dry run to end",
            "return !!document.querySelector('tr[data-task=\"retention\"] td[data-last=\"completed\"]')",
            Duration::from_secs(20),
        )
        .await;
    assert_eq!(count(&pool, "SELECT count(*) FROM jobs").await, 1);
    browser.screenshot("schedules-en").await;

    // Its history: the run, by whom, with the report of what it would delete.
    browser.click("tr[data-task=\"retention\"] a").await;
    browser
        .find("#schedule-runs tr[data-status=\"completed\"]")
        .await;
    let report = browser
        .js(
            "return document.querySelector('#schedule-runs pre[data-report]').textContent",
            json!([]),
        )
        .await;
    let report: serde_json::Value = serde_json::from_str(report.as_str().unwrap()).unwrap();
    assert_eq!(report["deletedJobs"], 1, "{report}");
    let by = browser
        .text("#schedule-runs tbody tr td:nth-child(2)")
        .await;
    assert_eq!(by.as_deref(), Some("admin-1"));

    // Pause the room check with a reason, in Japanese.
    open(&browser, "#/schedules", "#schedule-list").await;
    set_language(&browser, "ja").await;
    browser
        .find("#schedule-list tr[data-task=\"room-check\"]")
        .await;
    browser
        .type_into("#pause-reason", "Chatwork を再接続中")
        .await;
    browser
        .click("tr[data-task=\"room-check\"] [data-action=\"pause\"]")
        .await;
    browser
        .wait_for(
            "the room check paused",
            "return !!document.querySelector('tr[data-task=\"room-check\"] td[data-state=\"paused\"]')",
        )
        .await;
    let state = browser
        .text("tr[data-task=\"room-check\"] td[data-state]")
        .await
        .unwrap();
    assert!(state.contains("一時停止中"), "{state}");
    assert!(state.contains("Chatwork を再接続中"), "{state}");
    let run_disabled = browser
        .js(
            "return document.querySelector('tr[data-task=\"room-check\"] [data-action=\"run\"]').disabled",
            json!([]),
        )
        .await;
    assert_eq!(run_disabled, json!(true), "a paused task offers no run");
    let nav = browser.text("#nav-schedules").await;
    assert_eq!(nav.as_deref(), Some("スケジュール"));
    browser.screenshot("schedules-paused-ja").await;

    // Resume.
    browser
        .click("tr[data-task=\"room-check\"] [data-action=\"resume\"]")
        .await;
    browser
        .wait_for(
            "the room check resumed",
            "return !!document.querySelector('tr[data-task=\"room-check\"] td[data-state=\"scheduled\"]')",
        )
        .await;
    let audited: Vec<String> = sqlx::query_scalar(
        "SELECT action FROM audit_logs WHERE resource_type = 'schedule' ORDER BY id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(audited, ["schedule.pause", "schedule.resume"]);
    let reason: serde_json::Value =
        sqlx::query_scalar("SELECT new_values FROM audit_logs WHERE action = 'schedule.pause'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(reason["reason"], "Chatwork を再接続中");

    // A writer has no Schedules page.
    let writer = app.token("writer-1", Role::Writer);
    sign_in_as(&browser, &app.address, &writer, "writer-1").await;
    assert_eq!(browser.count("#nav-schedules").await, 0);
}
