//! The admin console in a real headless Chromium (Debian's `chromium` and
//! `chromium-driver`, installed by `scripts/test`), against the real router, Postgres,
//! the embedded queues with every consumer running, and the fake Chatwork: what a person
//! does with it, end to end, in one browser session (starting Chromium is the slow part).
//!
//! Screenshots go to `target/console-screenshots/` (see [`cwsync_tests::screenshot_dir`]).

use std::sync::Arc;
use std::time::Duration;

use cwsync::api::{AuthConfig, Role};
use cwsync::config::Env;
use cwsync::consumer::EventSource;
use cwsync::jobs::Contexts;
use cwsync::queue::{EmbeddedQueues, EmbeddedSettings, Queues};
use cwsync::summary::SummaryContext;
use cwsync_tests::{Browser, FakeOidc, TEST_JWT_SECRET, TestApp, TestDb, eventually, settled_room};
use fake_chatwork::{Account, FakeChatwork, FakeSettings, RoomAccess};
use secrecy::SecretString;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::sync::client_settings;

mod charts;
mod room_extras;
mod schedules;

const XSS_ROOM_NAME: &str = r#"<img src=x onerror="window.__xss=1">"#;
const XSS_SCRIPT: &str = "<script>window.__xss=2</script>";
const XSS_IMG: &str = r#"<img src=x onerror="window.__xss=3">"#;

/// The API with every job type's consumer polling its queue, over the fake Chatwork.
struct System {
    app: TestApp,
    fake: FakeChatwork,
    stop: CancellationToken,
}

impl System {
    async fn start(env: &Env) -> Self {
        let mut markup = settled_room(101, 12, |i| {
            format!("営業の連絡 {i}: 見積もりを送付しました")
        });
        markup.name = "営業チーム".into();
        markup.messages[11].body =
            "[To:1001]佐藤さん\n[info][title]議事録[/title]来週の会議は水曜です[/info]".into();
        let mut hostile = settled_room(102, 3, |i| format!("plain {i}"));
        hostile.name = XSS_ROOM_NAME.into();
        hostile.messages[1].body = XSS_SCRIPT.into();
        hostile.messages[2].body = XSS_IMG.into();
        let mut rooms = vec![
            markup,
            hostile,
            settled_room(103, 4, |i| format!("note {i}")),
        ];
        rooms.extend((104..=115).map(|id| settled_room(id, 5, |i| format!("message {i} of {id}"))));
        let fake = FakeChatwork::start(FakeSettings::default().with_rooms(rooms)).await;

        let queues = EmbeddedQueues::new(EmbeddedSettings::default());
        let app = cwsync_tests::spawn_app_configured(
            TestDb::new().await,
            cwsync::job_types::registry(),
            Arc::new(queues.clone()),
            queues.clone(),
            env,
        )
        .await;
        let pool = app.db.pool.clone();
        // As the local runner has it: the items a sync grows by go to the same queues.
        let client = cwsync::chatwork::ChatworkClient::new(client_settings(&fake), pool.clone())
            .expect("a Chatwork client");
        let sync = cwsync::sync::SyncContext::new(client);
        let contexts = Contexts::new()
            .with(Arc::new(sync))
            .with(Arc::new(SummaryContext::extractive()));
        let shared: Arc<dyn Queues> = Arc::new(queues);
        let consumers = cwsync::job_types::registry()
            .consumers(&pool, &shared, &contexts)
            .expect("every context is given");
        let stop = CancellationToken::new();
        for (queue, consumer) in consumers {
            for _ in 0..2 {
                let source = EventSource::new(shared.clone(), queue);
                let (consumer, stop) = (consumer.clone(), stop.clone());
                tokio::spawn(async move { source.run(consumer.as_ref(), stop).await });
            }
        }
        Self { app, fake, stop }
    }

    fn token(&self, sub: &str, role: Role) -> String {
        self.app.token(sub, role)
    }
}

impl Drop for System {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// The sign-in from the fragment: the token ends in sessionStorage, not in the address.
async fn sign_in(browser: &Browser, system: &System, token: &str, who: &str) {
    browser.goto("about:blank").await;
    browser
        .goto(&format!("{}/#token={token}", system.app.address))
        .await;
    browser
        .wait_for(
            &format!("signed in as {who}"),
            &format!(
                "return document.getElementById('who').textContent.includes({})",
                json!(who)
            ),
        )
        .await;
    let href = browser.js("return location.href", json!([])).await;
    assert!(!href.as_str().unwrap().contains("token"), "{href}");
    let stored = browser
        .js("return sessionStorage.getItem('cwsync.token')", json!([]))
        .await;
    assert_eq!(stored, token);
}

async fn set_language(browser: &Browser, lang: &str) {
    browser
        .js(
            "const s = document.getElementById('lang-switch'); s.value = arguments[0]; \
             s.dispatchEvent(new Event('change'));",
            json!([lang]),
        )
        .await;
    let expected = if lang == "ja" { "同期" } else { "Sync" };
    browser
        .wait_for(
            &format!("the page in {lang}"),
            &format!(
                "return document.getElementById('nav-sync')?.textContent === {}",
                json!(expected)
            ),
        )
        .await;
}

async fn open(browser: &Browser, hash: &str, ready_css: &str) {
    browser
        .js("location.hash = arguments[0]", json!([hash]))
        .await;
    browser.find(ready_css).await;
}

/// Nothing the fake Chatwork sent ran as code.
async fn assert_no_script_ran(browser: &Browser) {
    let xss = browser.js("return window.__xss ?? null", json!([])).await;
    assert!(xss.is_null(), "a room name or message ran as code: {xss}");
    assert_eq!(browser.count("main img, main script").await, 0);
}

/// The sync card of the active job reaches 100 % and `completed`.
async fn wait_until_done(browser: &Browser, card: &str) {
    browser
        .wait_for_within(
            "the job to end at 100 %",
            &format!(
                "return !!document.querySelector('{card} .job-card[data-status=\"completed\"] [aria-valuenow=\"100\"]')"
            ),
            Duration::from_secs(60),
        )
        .await;
}

#[tokio::test]
async fn the_console_operates_cwsync_in_a_browser() {
    let system = System::start(&Env::default()).await;
    let pool = system.app.db.pool.clone();
    let browser = Browser::start().await;
    let admin = system.token("admin-1", Role::Admin);
    sign_in(&browser, &system, &admin, "admin-1").await;
    set_language(&browser, "en").await;

    // Sync: a rooms sync, then a messages sync (slowed so that it is seen mid-way, and
    // with one room Chatwork forbids), each to 100 %.
    browser.click("#sync-rooms").await;
    wait_until_done(&browser, "#active-job").await;
    let rooms: i64 = sqlx::query_scalar("SELECT count(*) FROM chatwork_rooms")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(rooms, 15);
    system.fake.set_room_access(103, RoomAccess::Forbidden);
    system.fake.set_latency(Duration::from_millis(400));
    browser.click("#sync-messages").await;
    browser
        .wait_for(
            "the messages sync under way",
            "const bar = document.querySelector('#active-job [role=progressbar]'); \
             return bar && Number(bar.getAttribute('aria-valuenow')) < 100",
        )
        .await;
    browser.screenshot("sync-mid-job-en").await;
    browser
        .wait_for_within(
            "the messages sync to end at 100 %",
            "return !!document.querySelector('#active-job .job-card[data-status=\"completed\"] [aria-valuenow=\"100\"]')",
            Duration::from_secs(60),
        )
        .await;
    system.fake.set_latency(Duration::ZERO);
    let notice = browser.text("#notice").await.unwrap_or_default();
    assert!(notice.contains("ended"), "{notice}");
    // One sync, one job: the card followed the job the button started to its end, and
    // that job holds every room, the forbidden one among its failures.
    let sync_id = browser
        .js(
            "return document.querySelector('#active-job .job-card').dataset.job",
            json!([]),
        )
        .await;
    let sync_id: uuid::Uuid = sync_id.as_str().unwrap().parse().unwrap();
    let sync = cwsync::jobs::get(&pool, sync_id).await.unwrap().unwrap();
    let result = sync.result.as_ref().unwrap();
    let total = result["totalRooms"].as_i64().unwrap();
    assert!(total > 1, "{result}");
    assert_eq!(result["failedRooms"], 1, "{result}");
    assert_eq!(result["check"]["jobId"], json!(sync_id));
    let card = browser
        .text("#active-job .job-card .progress-text")
        .await
        .unwrap();
    assert!(card.contains(&format!("{total} of {total}")), "{card}");
    assert!(
        browser
            .js(
                "return document.querySelectorAll('[data-action=fetch-job]').length",
                json!([])
            )
            .await
            == json!(0),
        "nothing else to follow"
    );
    browser.screenshot("sync-ended-en").await;
    open(
        &browser,
        &format!("#/jobs/{sync_id}"),
        "[data-failed-room=\"103\"]",
    )
    .await;
    let sync_id = sync_id.to_string();

    // The job's detail: the forbidden room failed; retry it once Chatwork allows it.
    browser.screenshot("job-detail-en").await;
    system.fake.set_room_access(103, RoomAccess::Open);
    browser.click("[data-action=retry]").await;
    browser
        .wait_for(
            "the retry's page",
            &format!(
                "return location.hash.startsWith('#/jobs/') && !location.hash.includes({})",
                json!(sync_id)
            ),
        )
        .await;
    browser
        .wait_for(
            "the retry to complete",
            "return document.getElementById('job-status')?.textContent === 'completed'",
        )
        .await;
    let payload = browser.text("#job-payload").await.unwrap();
    let payload: serde_json::Value = serde_json::from_str(&payload).unwrap();
    assert_eq!(payload, json!({"scope": "rooms", "roomIds": [103]}));
    let retry_id = browser
        .js("return location.hash.split('/')[2]", json!([]))
        .await;
    let retry_id = retry_id.as_str().unwrap().to_owned();

    // Status: the last room check (the sync of all rooms above) with its fetch job,
    // Chatwork answering; then the outage breaker open as the breaker writes it (the
    // outage itself is driven for real in sync/outage.rs), shown within a redraw.
    open(&browser, "#/status", "#check-outcome").await;
    assert_eq!(
        browser.text("#check-outcome").await.as_deref(),
        Some("fetching")
    );
    let linked = browser
        .js(
            "return document.querySelector('#status [data-action=fetch-job]').getAttribute('href')",
            json!([]),
        )
        .await;
    assert_eq!(linked, json!(format!("#/jobs/{sync_id}")));
    browser.find("#breaker[data-breaker=closed]").await;
    assert!(browser.count("#budget").await == 1);
    sqlx::query(
        "INSERT INTO chatwork_breakers (token_hash, failures, last_failure_at, opened_at, next_probe_at)
         VALUES (sha256('status page'::bytea), 8, now(), now() - interval '3 minutes',
                 now() + interval '20 seconds')",
    )
    .execute(&pool)
    .await
    .unwrap();
    browser
        .wait_for(
            "the page redrawn with the breaker open",
            "return !!document.querySelector('#breaker[data-breaker=open]')",
        )
        .await;
    let shown = browser.text("#breaker").await.unwrap();
    assert!(shown.contains("8 failures"), "{shown}");
    browser.screenshot("status-en").await;
    sqlx::query("DELETE FROM chatwork_breakers")
        .execute(&pool)
        .await
        .unwrap();

    // Rooms: the table, a toggle, the hostile name as text, a room's messages readable.
    open(&browser, "#/rooms", "tr[data-room=\"115\"]").await;
    let name = browser.text("tr[data-room=\"102\"] .room-name").await;
    assert_eq!(name.as_deref(), Some(XSS_ROOM_NAME));
    assert_no_script_ran(&browser).await;
    browser.screenshot("rooms-en").await;
    browser
        .click("tr[data-room=\"105\"] [data-action=toggle]")
        .await;
    eventually("room 105 switched off", Duration::from_secs(10), || async {
        let active: bool =
            sqlx::query_scalar("SELECT is_active FROM chatwork_rooms WHERE room_id = 105")
                .fetch_one(&pool)
                .await
                .unwrap();
        !active
    })
    .await;
    // The search finds by name, as text.
    browser.type_into("#room-search", "営業").await;
    browser
        .js(
            "document.querySelector('form[role=search]').requestSubmit()",
            json!([]),
        )
        .await;
    browser
        .wait_for(
            "one room found",
            "return document.querySelectorAll('#rooms-table tbody tr').length === 1",
        )
        .await;
    open(&browser, "#/room/102", ".message").await;
    let bodies = browser
        .js(
            "return [...document.querySelectorAll('.message .body')].map(e => e.textContent)",
            json!([]),
        )
        .await;
    let bodies: Vec<String> = serde_json::from_value(bodies).unwrap();
    assert_eq!(
        bodies.first().map(String::as_str),
        Some(XSS_IMG),
        "newest first"
    );
    assert!(bodies.iter().any(|b| b == XSS_SCRIPT), "{bodies:?}");
    assert_no_script_ran(&browser).await;
    open(&browser, "#/room/101", ".message").await;
    let newest = browser.text(".message .body").await.unwrap();
    assert_eq!(newest, "→ 佐藤さん\n【議事録】\n来週の会議は水曜です");

    // A slow job canceled: a one-room sync while Chatwork takes seconds to answer.
    system.fake.set_latency(Duration::from_secs(4));
    open(&browser, "#/rooms", "tr[data-room=\"104\"]").await;
    browser
        .click("tr[data-room=\"104\"] [data-action=sync-room]")
        .await;
    browser.click("[data-action=cancel]").await;
    browser
        .wait_for(
            "the job canceled",
            "return document.getElementById('job-status')?.textContent === 'canceled'",
        )
        .await;
    system.fake.set_latency(Duration::ZERO);

    // Companies: create one, link two rooms, unlink one, request a summary draft.
    open(&browser, "#/companies", "#company-name").await;
    browser.type_into("#company-name", "Acme 株式会社").await;
    browser.click("#company-create").await;
    browser.find("#company-title").await;
    let company_hash = browser.js("return location.hash", json!([])).await;
    for room in ["101", "102"] {
        browser
            .find(&format!("#link-room option[value=\"{room}\"]"))
            .await;
        browser
            .js(
                "document.getElementById('link-room').value = arguments[0]",
                json!([room]),
            )
            .await;
        browser.click("#link-submit").await;
        browser
            .find(&format!("#linked-rooms tr[data-room=\"{room}\"]"))
            .await;
    }
    browser
        .click("#linked-rooms tr[data-room=\"102\"] [data-action=unlink]")
        .await;
    browser
        .wait_for(
            "room 102 unlinked",
            "return !document.querySelector('#linked-rooms tr[data-room=\"102\"]')",
        )
        .await;
    let links: i64 = sqlx::query_scalar("SELECT count(*) FROM company_room_links")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(links, 1);
    browser.click("#draft-request").await;
    browser
        .wait_for_within(
            "the draft",
            "return !!document.querySelector('[data-draft]')",
            Duration::from_secs(60),
        )
        .await;
    browser.click("[data-action=read-draft]").await;
    browser.find(".draft-body:not([hidden])").await;
    let content = browser.text(".draft-content").await.unwrap();
    assert!(content.contains("営業チーム"), "{content}");
    let link = browser
        .js(
            "const a = document.querySelector('.draft-body a'); \
             return a && [a.href, a.target, a.rel]",
            json!([]),
        )
        .await;
    assert!(
        link[0]
            .as_str()
            .unwrap()
            .starts_with("https://www.chatwork.com/#!rid101-"),
        "{link}"
    );
    assert_eq!(link[1], "_blank");
    browser.screenshot("company-en").await;

    // The same pages in Japanese; a sync seen mid-way again.
    set_language(&browser, "ja").await;
    browser.find("#company-title").await;
    browser.find("[data-draft]").await;
    browser.screenshot("company-ja").await;
    open(
        &browser,
        &format!("#/jobs/{sync_id}"),
        "[data-failed-room=\"103\"]",
    )
    .await;
    browser.screenshot("job-detail-ja").await;
    open(&browser, "#/status", "#check-outcome").await;
    browser.screenshot("status-ja").await;
    open(&browser, "#/rooms", "tr[data-room=\"115\"]").await;
    browser.screenshot("rooms-ja").await;
    browser.set_window(360, 800).await;
    browser.screenshot("rooms-ja-360px").await;
    browser.set_window(1280, 900).await;
    for room in 101..=115 {
        system
            .fake
            .post_message(room, &Account::new(2002, "鈴木 花子"), "新しい連絡です");
    }
    system.fake.set_latency(Duration::from_millis(400));
    open(&browser, "#/sync", "#sync-messages").await;
    browser.click("#sync-messages").await;
    browser
        .wait_for(
            "the second messages sync under way",
            "const bar = document.querySelector('#active-job [role=progressbar]'); \
             return bar && Number(bar.getAttribute('aria-valuenow')) < 100",
        )
        .await;
    browser.screenshot("sync-mid-job-ja").await;
    wait_until_done(&browser, "#active-job").await;
    system.fake.set_latency(Duration::ZERO);
    let _ = retry_id;

    // A reader sees no button they cannot use.
    let reader = system.token("reader-1", Role::Reader);
    sign_in(&browser, &system, &reader, "reader-1").await;
    open(&browser, "#/sync", "main h1").await;
    assert_eq!(browser.count("#nav-rooms, #nav-status").await, 0);
    assert_eq!(browser.count("#sync-rooms, #sync-messages").await, 0);
    open(&browser, "#/companies", "tr[data-company]").await;
    assert_eq!(browser.count("#company-create").await, 0);
    open(&browser, company_hash.as_str().unwrap(), "[data-draft]").await;
    browser.find("#linked-rooms").await;
    assert_eq!(
        browser
            .count("#link-submit, [data-action=unlink], #draft-request, [data-action=cancel], [data-action=retry]")
            .await,
        0
    );

    // Signing out, and in again with a pasted token.
    browser.click("#sign-out").await;
    browser.find("#token-input").await;
    let stored = browser
        .js("return sessionStorage.getItem('cwsync.token')", json!([]))
        .await;
    assert!(stored.is_null(), "signing out forgets the token");
    browser.type_into("#token-input", &admin).await;
    browser.click("#token-submit").await;
    browser
        .wait_for(
            "signed in with the pasted token",
            "return document.getElementById('who').textContent.includes('admin-1')",
        )
        .await;

    // In AWS: OAuth 2.0 authorization code with PKCE against the identity provider.
    let auth = Arc::new(
        AuthConfig::local_jwt(&Env::default(), &SecretString::from(TEST_JWT_SECRET)).unwrap(),
    );
    let provider = FakeOidc::start(auth, "console-client", "oidc-user", "writer").await;
    let env = Env::default()
        .with("OAUTH_ISSUER", &provider.issuer)
        .with("OAUTH_CLIENT_ID", &provider.client_id)
        .with("OAUTH_SCOPES", "openid email");
    let aws = System::start(&env).await;
    browser.goto(&format!("{}/", aws.app.address)).await;
    browser.click("#oauth-sign-in").await;
    browser
        .wait_for(
            "signed in through the provider",
            "return document.getElementById('who')?.textContent.includes('oidc-user')",
        )
        .await;
    let search = browser.js("return location.search", json!([])).await;
    assert_eq!(search, "", "the code is cleared from the address");
    assert_eq!(provider.exchanges(), (1, 0));
    // The provider really checks the verifier: a code with the wrong one is refused.
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
    let redirect = client
        .get(format!("{}/authorize", provider.issuer))
        .query(&[
            ("response_type", "code"),
            ("client_id", "console-client"),
            ("redirect_uri", &format!("{}/", aws.app.address)),
            ("state", "s"),
            ("code_challenge", challenge),
            ("code_challenge_method", "S256"),
        ])
        .send()
        .await
        .unwrap();
    let location = url::Url::parse(redirect.headers()["location"].to_str().unwrap()).unwrap();
    let code = location
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    let refused = client
        .post(format!("{}/token", provider.issuer))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!(
            "grant_type=authorization_code&code={code}&client_id=console-client&redirect_uri={}&code_verifier=wrong",
            url::form_urlencoded::byte_serialize(format!("{}/", aws.app.address).as_bytes()).collect::<String>()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 400);
    assert_eq!(provider.exchanges(), (1, 1));
}

/// Anyone in a synced room can post `[info: ` 16,000 times (112 KB); the room's page
/// still renders it at once, because the markup scan is linear in the message's length.
#[tokio::test]
async fn a_hostile_markup_message_renders_at_once() {
    let app = cwsync_tests::spawn_app().await;
    let pool = app.db.pool.clone();
    let hostile = "[info: ".repeat(16_000);
    let room: uuid::Uuid = sqlx::query_scalar(
        "INSERT INTO chatwork_rooms (room_id, name, room_type, message_count)
         VALUES (201, 'hostile markup', 'group', 1) RETURNING id",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO messages (chatwork_room_id, room_id, message_id, account_id, account_name,
                               body, send_time)
         VALUES ($1, 201, '1', 7, 'Mallory', $2, now())",
    )
    .bind(room)
    .bind(&hostile)
    .execute(&pool)
    .await
    .unwrap();
    let browser = Browser::start().await;
    let admin = app.token("admin-1", Role::Admin);
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

    // The scan alone, timed in the page.
    let took = browser
        .js(
            "return import('/console/dom.js').then((dom) => { \
               const started = performance.now(); \
               const text = dom.readableMarkup(arguments[0]); \
               return [performance.now() - started, text.length]; })",
            json!([hostile]),
        )
        .await;
    println!("readableMarkup over {} bytes: {took}", hostile.len());
    assert_eq!(
        took[1],
        json!(hostile.trim().chars().count()),
        "no tag in it closes"
    );

    // The room's page shows it.
    let started = std::time::Instant::now();
    browser
        .js("location.hash = arguments[0]", json!(["#/room/201"]))
        .await;
    let length = browser
        .wait_for_within(
            "the hostile message on the room's page",
            "return document.querySelector('.message .body')?.textContent.length",
            Duration::from_secs(30),
        )
        .await;
    println!("the room's page rendered it in {:?}", started.elapsed());
    assert_eq!(length, json!(hostile.trim().chars().count()));
}

/// An admin connects a second Chatwork account through the console: *Connect with
/// Chatwork*, the fake's consent page (choosing the account, allowing), back to the
/// console, which completes it; the connection is listed, and its rooms sync runs.
#[tokio::test]
async fn an_admin_connects_a_chatwork_account_through_the_consent_page() {
    use cwsync::connections::{ChatworkOAuthConfig, Connections, TokenCipher, TokenEndpoint};
    use fake_chatwork::{FakeAccount, FakeOAuthClient};

    let fake = FakeChatwork::start(FakeSettings::default().with_rooms(vec![
        settled_room(101, 3, |i| format!("A {i}")),
        settled_room(201, 3, |i| format!("B {i}")),
    ]))
    .await;
    fake.add_account(
        FakeAccount {
            account_id: 3_000_002,
            name: "高橋 美咲".into(),
            organization_id: 77,
            organization_name: "テスト商事".into(),
        },
        None,
        &[201],
    );
    let fake_base = (fake.oauth_authorize_url(), fake.oauth_token_url());
    let registered = fake_base.clone();
    let app = cwsync_tests::spawn_app_connecting(TestDb::new().await, |address, pool| {
        let redirect = format!("{address}/oauth/chatwork");
        let env = Env::from_pairs([
            (
                ChatworkOAuthConfig::CLIENT_ID_VAR,
                "console-test-client".to_owned(),
            ),
            (
                ChatworkOAuthConfig::CLIENT_SECRET_VAR,
                "console-test-secret-0123".to_owned(),
            ),
            (ChatworkOAuthConfig::REDIRECT_URI_VAR, redirect),
            (ChatworkOAuthConfig::AUTHORIZE_URL_VAR, registered.0.clone()),
            (ChatworkOAuthConfig::TOKEN_URL_VAR, registered.1.clone()),
        ]);
        let oauth = ChatworkOAuthConfig::from_env(&env, None).unwrap().unwrap();
        let settings = client_settings(&fake);
        Connections::new(
            pool.clone(),
            settings,
            None,
            Some(TokenCipher::local([9; 32])),
            Some(TokenEndpoint::new(oauth).unwrap()),
        )
    })
    .await;
    let _ = fake_base;
    fake.register_oauth_client(FakeOAuthClient {
        client_id: "console-test-client".into(),
        client_secret: "console-test-secret-0123".into(),
        redirect_uris: vec![format!("{}/oauth/chatwork", app.address)],
    });
    let admin = app.token("admin-1", Role::Admin);

    let browser = Browser::start().await;
    browser
        .goto(&format!("{}/#token={admin}", app.address))
        .await;
    browser
        .wait_for(
            "signed in",
            "return document.getElementById('who').textContent.includes('admin-1')",
        )
        .await;
    browser
        .js("location.hash = '#/connections'", json!([]))
        .await;
    browser.find("#connect-chatwork").await;
    browser.screenshot("connections-before").await;
    browser.click("#connect-chatwork").await;
    // Chatwork's consent page (the fake's): log in as 高橋 and allow.
    browser.find("#allow").await;
    let consent = browser.js("return location.href", json!([])).await;
    assert!(
        consent
            .as_str()
            .unwrap()
            .starts_with(&fake.oauth_authorize_url()),
        "{consent}"
    );
    browser
        .js(
            "document.getElementById('account').value = '3000002'",
            json!([]),
        )
        .await;
    browser.screenshot("connections-consent").await;
    browser.click("#allow").await;
    // Back in the console, which completed the connection.
    browser
        .wait_for_within(
            "the new connection listed",
            "return [...document.querySelectorAll('#connection-list tr[data-connection]')].some((r) => r.textContent.includes('高橋 美咲') && r.dataset.status === 'active')",
            Duration::from_secs(20),
        )
        .await;
    let notice = browser.text("[data-notice]").await.unwrap_or_default();
    assert!(notice.contains("高橋 美咲"), "{notice}");
    let href = browser.js("return location.href", json!([])).await;
    assert!(href.as_str().unwrap().ends_with("/#/connections"), "{href}");
    assert!(!href.as_str().unwrap().contains("code="), "{href}");
    browser.screenshot("connections-after").await;
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM chatwork_connections WHERE account_id = 3000002 AND status = 'active'")
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
    assert_eq!(stored, 1);
}
