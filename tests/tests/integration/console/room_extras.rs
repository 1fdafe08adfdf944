//! A company's open tasks and a room's files, tasks and members in a real headless
//! Chromium, for a reader, in English and Japanese; an admin's link suggestions.

use chrono::{DateTime, TimeDelta, Utc};
use cwsync::api::Role;
use cwsync::summary::extractive;
use cwsync::summary::locale::DraftStyle;
use cwsync::summary::transcript::{StoredTask, Transcript};
use cwsync_tests::Browser;
use serde_json::json;
use uuid::Uuid;

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

async fn exec(pool: &sqlx::PgPool, sql: &'static str, room: Uuid) {
    sqlx::query(sql).bind(room).execute(pool).await.unwrap();
}

async fn task(
    pool: &sqlx::PgPool,
    room: Uuid,
    id: i64,
    body: &str,
    limit: (&str, Option<DateTime<Utc>>),
) {
    sqlx::query(
        "INSERT INTO chatwork_tasks (task_id, chatwork_room_id, room_id, account_id, account_name,
                                     assigned_by_account_name, body, limit_type, limit_time, status)
         SELECT $1, id, room_id, 1001, '佐藤 健一', '田中 花子', $3, $4, $5, 'open'
           FROM chatwork_rooms WHERE id = $2",
    )
    .bind(id)
    .bind(room)
    .bind(body)
    .bind(limit.0)
    .bind(limit.1)
    .execute(pool)
    .await
    .unwrap();
}

#[tokio::test]
async fn the_console_shows_a_companys_open_tasks_and_a_rooms_files() {
    let app = cwsync_tests::spawn_app().await;
    let pool = app.db.pool.clone();
    let company: Uuid = sqlx::query_scalar(
        "INSERT INTO companies (name) VALUES ('ミナトロジスティクス株式会社') RETURNING id",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    let room: Uuid = sqlx::query_scalar(
        "INSERT INTO chatwork_rooms (room_id, name, room_type) VALUES (281000106, '配送管理システム導入', 'group')
         RETURNING id",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    let unlinked: Uuid = sqlx::query_scalar(
        "INSERT INTO chatwork_rooms (room_id, name, room_type) VALUES (281000107, 'ミナト様 情報共有', 'group')
         RETURNING id",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    exec(
        &pool,
        "INSERT INTO company_room_links (company_id, chatwork_room_id)
         SELECT id, $1 FROM companies",
        room,
    )
    .await;
    let now = Utc::now();
    task(
        &pool,
        room,
        901,
        "見積書を送付する",
        ("time", Some(now - TimeDelta::hours(3))),
    )
    .await;
    task(
        &pool,
        room,
        902,
        "契約書を確認する",
        ("date", Some(now + TimeDelta::days(5))),
    )
    .await;
    task(&pool, room, 903, "議事録を共有する", ("none", None)).await;
    task(
        &pool,
        room,
        904,
        "<img src=x onerror=\"window.__xss=1\">",
        ("time", Some(now + TimeDelta::days(1))),
    )
    .await;
    exec(
        &pool,
        "INSERT INTO chatwork_files (file_id, chatwork_room_id, room_id, account_id, account_name,
                                     filename, filesize, upload_time, storage_state, storage_key,
                                     stored_bytes, stored_at)
         SELECT 801, id, room_id, 1001, '佐藤 健一', '見積書.pdf', 183500, now() - interval '1 day',
                'stored', 'files/801', 183500, now()
           FROM chatwork_rooms WHERE id = $1",
        room,
    )
    .await;
    exec(
        &pool,
        "INSERT INTO chatwork_files (file_id, chatwork_room_id, room_id, account_id, account_name,
                                     filename, filesize, upload_time, storage_state)
         SELECT 802, id, room_id, 1002, '伊藤 大輔', 'demo-video.mp4', 734003200, now(), 'too_large'
           FROM chatwork_rooms WHERE id = $1",
        room,
    )
    .await;
    exec(
        &pool,
        "INSERT INTO chatwork_members (chatwork_room_id, room_id, account_id, role, name,
                                       organization_name, department)
         SELECT id, room_id, 1002, 'member', '伊藤 大輔', 'ミナトロジスティクス株式会社', '物流部'
           FROM chatwork_rooms WHERE id = $1",
        room,
    )
    .await;
    exec(
        &pool,
        "INSERT INTO company_room_suggestions (chatwork_room_id, company_id, organization_name, members)
         SELECT $1, id, 'ミナトロジスティクス株式会社', 2 FROM companies",
        unlinked,
    )
    .await;

    // A draft as the extractive summarizer writes it for a period with an overdue task.
    let (start, end) = (now - TimeDelta::days(7), now);
    let transcript = Transcript::prepare("ミナトロジスティクス株式会社", start, end, Vec::new())
        .with_tasks(vec![StoredTask {
            task_id: 901,
            room_id: 281000106,
            room_name: "配送管理システム導入".into(),
            account_name: "佐藤 健一".into(),
            assigned_by_account_name: Some("田中 花子".into()),
            body: "見積書を送付する".into(),
            limit_type: "time".into(),
            limit_time: Some(now - TimeDelta::hours(3)),
            status: "open".into(),
            first_seen_at: start,
            done_seen_at: None,
        }]);
    let content = extractive::draft(&transcript, &DraftStyle::default()).content;
    assert!(
        content.contains("### 期限切れ（未完了）\n- 佐藤 健一 担当"),
        "{content}"
    );
    sqlx::query(
        "INSERT INTO summary_drafts (company_id, period_start, period_end, content, model)
         VALUES ($1, $2, $3, $4, 'extractive')",
    )
    .bind(company)
    .bind(start)
    .bind(end)
    .bind(&content)
    .execute(&pool)
    .await
    .unwrap();
    exec(
        &pool,
        "UPDATE chatwork_rooms SET tasks_synced_at = now(), files_synced_at = now(),
                members_synced_at = now() WHERE id = $1",
        room,
    )
    .await;

    let browser = Browser::start().await;
    let reader = app.token("reader-1", Role::Reader);
    sign_in_as(&browser, &app.address, &reader, "reader-1").await;
    set_language(&browser, "en").await;

    // The company's open tasks by deadline, the overdue one first and marked.
    open(&browser, &format!("#/companies/{company}"), "#open-tasks").await;
    let order = browser
        .js(
            "return [...document.querySelectorAll('#open-tasks tbody tr')].map(r => Number(r.dataset.task))",
            json!([]),
        )
        .await;
    assert_eq!(order, json!([901, 904, 902, 903]));
    let overdue = browser
        .text("#open-tasks tr[data-task=\"901\"]")
        .await
        .unwrap();
    assert!(overdue.contains("overdue"), "{overdue}");
    assert!(overdue.contains("佐藤 健一"), "{overdue}");
    assert!(overdue.contains("田中 花子"), "{overdue}");
    assert!(overdue.contains("配送管理システム導入"), "{overdue}");
    let none = browser
        .text("#open-tasks tr[data-task=\"903\"]")
        .await
        .unwrap();
    assert!(none.contains("none"), "{none}");
    let hostile = browser
        .text("#open-tasks tr[data-task=\"904\"] .task-body")
        .await;
    assert_eq!(
        hostile.as_deref(),
        Some("<img src=x onerror=\"window.__xss=1\">")
    );
    assert_eq!(
        browser.js("return window.__xss ?? null", json!([])).await,
        json!(null)
    );
    browser.screenshot("company-tasks-en").await;

    // The room's files: the stored one links to the content route, the large one says so.
    browser.click("#open-tasks tr[data-task=\"901\"] a").await;
    browser.find("#files-table tr[data-file=\"801\"]").await;
    let href = browser
        .js(
            "return document.querySelector('#files-table tr[data-file=\"801\"] a').href",
            json!([]),
        )
        .await;
    assert_eq!(
        href,
        json!(format!(
            "{}/api/chatwork/rooms/281000106/files/801/content",
            app.address
        ))
    );
    let large = browser
        .text("#files-table tr[data-file=\"802\"]")
        .await
        .unwrap();
    assert!(large.contains("too large to copy"), "{large}");
    assert!(large.contains("700 MB"), "{large}");
    assert_eq!(
        browser.count("#files-table tr[data-file=\"802\"] a").await,
        0,
        "nothing to download"
    );
    browser.find("#tasks-table tr[data-task=\"901\"]").await;
    let member = browser
        .text("#room-members tr[data-member=\"1002\"]")
        .await
        .unwrap();
    assert!(member.contains("ミナトロジスティクス株式会社"), "{member}");
    assert_eq!(browser.count(".message").await, 0, "messages are admins'");
    browser.screenshot("room-files-en").await;

    // The same in Japanese.
    set_language(&browser, "ja").await;
    browser.find("#files-table tr[data-file=\"802\"]").await;
    let large = browser
        .text("#files-table tr[data-file=\"802\"]")
        .await
        .unwrap();
    assert!(large.contains("大きすぎるためコピーしません"), "{large}");
    browser.screenshot("room-files-ja").await;
    open(&browser, &format!("#/companies/{company}"), "#open-tasks").await;
    let overdue = browser
        .text("#open-tasks tr[data-task=\"901\"]")
        .await
        .unwrap();
    assert!(overdue.contains("期限切れ"), "{overdue}");
    let none = browser
        .text("#open-tasks tr[data-task=\"903\"]")
        .await
        .unwrap();
    assert!(none.contains("なし"), "{none}");
    browser.screenshot("company-tasks-ja").await;
    // The summary draft shows its tasks, line by line as written.
    browser.click("[data-action=\"read-draft\"]").await;
    let shown = browser.text(".draft-content").await.unwrap();
    assert!(
        shown.contains("## Chatworkのタスク\n### 期限切れ（未完了）\n"),
        "{shown}"
    );
    let lines = browser
        .js(
            "const e = document.querySelector('.draft-content'); \
             return e.getClientRects().length && getComputedStyle(e).whiteSpace",
            json!([]),
        )
        .await;
    assert_eq!(lines, json!("pre-wrap"), "the draft's lines stay lines");
    browser
        .js(
            "document.querySelector('.draft-content').scrollIntoView()",
            json!([]),
        )
        .await;
    browser.screenshot("summary-tasks-ja").await;

    // An admin accepts the suggestion of the other room from the companies page.
    let admin = app.token("admin-1", Role::Admin);
    sign_in_as(&browser, &app.address, &admin, "admin-1").await;
    open(&browser, "#/companies", "#suggestions tr[data-suggestion]").await;
    browser.screenshot("suggestions-ja").await;
    browser.click("#suggestions [data-action=\"accept\"]").await;
    browser
        .wait_for(
            "the suggestion decided",
            "return document.querySelectorAll('#suggestions tr[data-suggestion]').length === 0",
        )
        .await;
    let linked: i64 =
        sqlx::query_scalar("SELECT count(*) FROM company_room_links WHERE chatwork_room_id = $1")
            .bind(unlinked)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(linked, 1);
}
