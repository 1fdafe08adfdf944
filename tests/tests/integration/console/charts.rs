//! The status page's charts in the browser: history recorded as the room check, the
//! webhook route and a fetch's gap record it, drawn for the last hour and the last day,
//! in English and Japanese, each chart with its text alternative; and the history route's
//! answers and refusals.

use cwsync::api::Role;
use cwsync_tests::Browser;
use serde_json::json;

use super::{open, set_language};

/// A room check `minutes_ago`, as `sync::check` records one.
async fn record_check(
    pool: &sqlx::PgPool,
    minutes_ago: i32,
    (changed, fetched, deferred): (i32, i32, i32),
    unseen_max: i32,
    remaining: i32,
) {
    sqlx::query(
        "INSERT INTO room_checks (checked_at, trigger, outcome, rooms_listed, rooms_changed,
                                  rooms_fetched, rooms_deferred, unseen_max, unseen_total,
                                  budget_limit, budget_remaining, budget_reset_at, allowance,
                                  cadence_secs)
         VALUES (now() - make_interval(mins => $1), 'schedule',
                 CASE WHEN $4 > 0 THEN 'deferred' ELSE 'fetching' END, 500, $2, $3, $4, $5, $5,
                 300, $6, now(), $3, 60)",
    )
    .bind(minutes_ago)
    .bind(changed)
    .bind(fetched)
    .bind(deferred)
    .bind(unseen_max)
    .bind(remaining)
    .execute(pool)
    .await
    .unwrap();
}

/// A JSON array of the texts `css` matches.
async fn texts(browser: &Browser, css: &str) -> Vec<String> {
    let found = browser
        .js(
            "return [...document.querySelectorAll(arguments[0])].map((e) => e.textContent)",
            json!([css]),
        )
        .await;
    serde_json::from_value(found).unwrap()
}

#[tokio::test]
async fn the_status_page_charts_recorded_history_in_both_languages() {
    let app = cwsync_tests::spawn_app().await;
    let pool = app.db.pool.clone();
    // The last hour: checks every few minutes, one running short of budget; 3 hours ago
    // one more (only in the day's charts).
    for (minutes, rooms, unseen, remaining) in [
        (50, (4, 4, 0), 12, 280),
        (40, (9, 9, 0), 30, 250),
        (30, (120, 60, 60), 140, 20),
        (20, (15, 15, 0), 35, 200),
        (5, (2, 2, 0), 4, 290),
        (180, (70, 70, 0), 80, 100),
    ] {
        record_check(&pool, minutes, rooms, unseen, remaining).await;
    }
    // Webhook deliveries counted by the route itself: three unsigned ones, refused.
    for _ in 0..3 {
        let refused = reqwest::Client::new()
            .post(format!("{}/webhooks/chatwork", app.address))
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 401);
    }
    // ...and as other processes added theirs.
    sqlx::query(
        "INSERT INTO activity_minutes (minute, webhook_stored, webhook_ignored)
         VALUES (date_trunc('minute', now() - interval '25 minutes'), 14, 2)
         ON CONFLICT (minute) DO UPDATE SET webhook_stored = 14, webhook_ignored = 2",
    )
    .execute(&pool)
    .await
    .unwrap();
    // A gap, as a fetch records it on the room (the trigger counts it in its minute).
    sqlx::query(
        "INSERT INTO chatwork_rooms (room_id, name, room_type) VALUES (301, 'busy room', 'group')",
    )
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query(
        "UPDATE chatwork_rooms SET gap_detected_at = now(), gap_missed_estimate = 40
          WHERE room_id = 301",
    )
    .execute(&pool)
    .await
    .unwrap();

    // The route: an hour by minute, bounded, and its refusals.
    let admin = app.token("admin-1", Role::Admin);
    let get = |path: &str, token: &str| {
        reqwest::Client::new()
            .get(format!("{}{path}", app.address))
            .bearer_auth(token)
            .send()
    };
    let hour: serde_json::Value = get("/api/chatwork/status/history", &admin)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let buckets = hour["buckets"].as_array().unwrap();
    assert_eq!((hour["bucketSecs"].as_i64(), buckets.len()), (Some(60), 60));
    let total = |key: &str| -> i64 { buckets.iter().map(|b| b[key].as_i64().unwrap()).sum() };
    assert_eq!(total("checks"), 5, "{hour}");
    assert_eq!(total("roomsDeferred"), 60);
    assert_eq!(total("webhookStored"), 14);
    assert_eq!(total("webhookRefused"), 3, "the route counted its refusals");
    assert_eq!((total("gaps"), total("gapMissed")), (1, 40));
    let most_used = buckets
        .iter()
        .filter_map(|b| b["budgetUsed"].as_i64())
        .max();
    assert_eq!(most_used, Some(280));
    let day: serde_json::Value = get("/api/chatwork/status/history?range=day", &admin)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(day["buckets"].as_array().unwrap().len(), 96);
    let day_checks: i64 = day["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["checks"].as_i64().unwrap())
        .sum();
    assert_eq!(day_checks, 6);
    let bad = get("/api/chatwork/status/history?range=week", &admin)
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let body: serde_json::Value = bad.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_parameter", "{body}");
    let reader = app.token("reader-1", Role::Reader);
    let refused = get("/api/chatwork/status/history", &reader).await.unwrap();
    assert_eq!(refused.status(), 403);

    // The page: five charts of the last hour with their sentences.
    let browser = Browser::start().await;
    browser.set_window(1280, 2200).await;
    browser.goto("about:blank").await;
    browser
        .goto(&format!("{}/#token={admin}", app.address))
        .await;
    browser
        .wait_for(
            "signed in",
            "return document.getElementById('who').textContent.includes('admin-1')",
        )
        .await;
    set_language(&browser, "en").await;
    open(&browser, "#/status", "#charts[data-range=hour] #chart-gaps").await;
    assert_eq!(browser.count("#charts figure svg[role=img]").await, 5);
    let summaries = texts(&browser, "#charts .chart-summary").await;
    assert_eq!(summaries.len(), 5);
    assert_eq!(
        summaries[0],
        "In the last hour, at most 280 of 300 requests of a window were used, over 5 room check(s)."
    );
    assert!(
        summaries[1].contains("150 changed room(s), sent 90 to be fetched and deferred 60"),
        "{}",
        summaries[1]
    );
    assert!(
        summaries[2].contains("were 140 (100 or more"),
        "{}",
        summaries[2]
    );
    assert_eq!(
        summaries[3],
        "In the last hour, webhook deliveries: 14 stored, 2 ignored, 3 refused, 0 not stored."
    );
    assert!(
        summaries[4].contains("1 gap(s), about 40"),
        "{}",
        summaries[4]
    );
    // Each drawing is named by its caption and its sentence; it has marks to see.
    let labelled = browser
        .js(
            "return [...document.querySelectorAll('#charts svg')].every((svg) => \
               svg.getAttribute('aria-labelledby').split(' ').every((id) => document.getElementById(id)) \
               && svg.querySelector('title').textContent.length > 0)",
            json!([]),
        )
        .await;
    assert_eq!(labelled, json!(true));
    for (chart, marks) in [
        ("#chart-budget", "polyline"),
        ("#chart-rooms", "rect[data-series=roomsDeferred]"),
        ("#chart-unseen", "line.reference"),
        ("#chart-webhooks", "rect[data-series=webhookRefused]"),
        ("#chart-gaps", "rect[data-series=gaps]"),
    ] {
        assert!(
            browser.count(&format!("{chart} svg {marks}")).await > 0,
            "{chart} draws {marks}"
        );
    }
    // The numbers behind a chart, as a table.
    browser.click("#chart-webhooks details summary").await;
    let cells = texts(&browser, "#chart-webhooks details td").await;
    assert!(cells.contains(&"14".to_owned()), "{cells:?}");
    browser.screenshot("status-charts-hour-en").await;

    // The last day: the check of 3 hours ago joins.
    browser.click("[data-range=day]").await;
    browser.find("#charts[data-range=day]").await;
    let summaries = texts(&browser, "#charts .chart-summary").await;
    assert!(
        summaries[0].starts_with("In the last 24 hours, at most 280 of 300")
            && summaries[0].ends_with("over 6 room check(s)."),
        "{}",
        summaries[0]
    );
    browser.screenshot("status-charts-day-en").await;

    // Japanese.
    set_language(&browser, "ja").await;
    browser
        .wait_for(
            "the charts in Japanese",
            "return document.querySelector('#chart-gaps figcaption')?.textContent === '検出された欠落'",
        )
        .await;
    let summaries = texts(&browser, "#charts .chart-summary").await;
    assert_eq!(
        summaries[0],
        "直近 1 時間で、1 ウィンドウの使用リクエスト数は最大 300 中 280（ルームチェック 5 回）。"
    );
    assert_eq!(
        summaries[3],
        "直近 1 時間の Webhook 受信：保存 14 件、無視 2 件、拒否 3 件、保存失敗 0 件。"
    );
    let captions = texts(&browser, "#charts figcaption").await;
    assert_eq!(captions[0], "ウィンドウごとのレート予算の使用量");
    browser.screenshot("status-charts-hour-ja").await;
}
