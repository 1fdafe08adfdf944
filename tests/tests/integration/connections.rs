//! Chatwork connections against the fake Chatwork (several accounts, its OAuth pages and
//! token endpoint) and a real Postgres: the OAuth round trip through the API, what a
//! `state` and a code may be used for, one refresh however many need it, a refused
//! refresh, rooms through the member with the most budget (and another when one is
//! refused), budgets of their own, tokens sealed, and KMS against moto.

use std::sync::Arc;
use std::time::Duration;

use cwsync::chatwork::{ChatworkClient, ClientSettings, Me};
use cwsync::connections::store::{self, NewConnection};
use cwsync::connections::{
    ChatworkOAuthConfig, CipherConfig, Connections, TokenCipher, TokenEndpoint,
};
use cwsync::jobs::{self, JobConsumer, JobSpec as _, JobStatus};
use cwsync::queue::Queues;
use cwsync::sync::SyncContext;
use cwsync::sync::messages::{MessagesSync, MessagesSyncPayload};
use cwsync::sync::rooms::{RoomsSync, RoomsSyncPayload};
use cwsync_tests::{TestDb, Who, kms_client, spawn_app_with_connections};
use fake_chatwork::{FakeAccount, FakeChatwork, FakeOAuthClient, FakeSettings};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

use crate::sync::{client_settings, room_with_history};

const CLIENT_ID: &str = "cwsync-test-client";
const CLIENT_SECRET: &str = "cwsync-test-client-secret-0123";
const REDIRECT: &str = "http://127.0.0.1:9/oauth/chatwork";
/// Account B: an account manager with rooms of their own.
const B: i64 = 3_000_002;
const B_TOKEN: &str = "b-api-token-0123456789abcdef0123";
/// Rooms: 101 and 102 only the default account (A) sees, 201 and 202 only B, 300 both.
const A_ONLY: [i64; 2] = [101, 102];
const B_ONLY: [i64; 2] = [201, 202];
const SHARED: i64 = 300;

fn account_b() -> FakeAccount {
    FakeAccount {
        account_id: B,
        name: "高橋 美咲".into(),
        organization_id: 77,
        organization_name: "テスト商事".into(),
    }
}

/// A fake with accounts A (the default, bootstrap) and B and the OAuth client.
async fn two_accounts() -> FakeChatwork {
    let rooms = A_ONLY
        .iter()
        .chain(B_ONLY.iter())
        .chain([SHARED].iter())
        .map(|&id| room_with_history(id, 5))
        .collect();
    let fake = FakeChatwork::start(FakeSettings::default().with_rooms(rooms)).await;
    fake.add_account(account_b(), Some(B_TOKEN), &[B_ONLY[0], B_ONLY[1], SHARED]);
    for room in B_ONLY {
        fake.set_member(FakeChatwork::DEFAULT_ACCOUNT_ID, room, false);
    }
    fake.register_oauth_client(FakeOAuthClient {
        client_id: CLIENT_ID.into(),
        client_secret: CLIENT_SECRET.into(),
        redirect_uris: vec![REDIRECT.into()],
    });
    fake
}

fn oauth_config(fake: &FakeChatwork) -> ChatworkOAuthConfig {
    let env = cwsync::config::Env::from_pairs([
        (ChatworkOAuthConfig::CLIENT_ID_VAR, CLIENT_ID.to_owned()),
        (
            ChatworkOAuthConfig::CLIENT_SECRET_VAR,
            CLIENT_SECRET.to_owned(),
        ),
        (ChatworkOAuthConfig::REDIRECT_URI_VAR, REDIRECT.to_owned()),
        (
            ChatworkOAuthConfig::AUTHORIZE_URL_VAR,
            fake.oauth_authorize_url(),
        ),
        (ChatworkOAuthConfig::TOKEN_URL_VAR, fake.oauth_token_url()),
    ]);
    ChatworkOAuthConfig::from_env(&env, None).unwrap().unwrap()
}

const KEY: [u8; 32] = [42; 32];

/// The connections of one process: the bootstrap client of the fake's default token,
/// the test key, the fake's token endpoint.
fn connections_for(fake: &FakeChatwork, pool: &PgPool) -> Connections {
    let settings = client_settings(fake);
    let bootstrap = ChatworkClient::new(settings.clone(), pool.clone()).unwrap();
    Connections::new(
        pool.clone(),
        ClientSettings {
            token: SecretString::from(String::new()),
            ..settings
        },
        Some(bootstrap),
        Some(TokenCipher::local(KEY)),
        Some(TokenEndpoint::new(oauth_config(fake)).unwrap()),
    )
}

/// Chatwork's consent page answered as the account holder would: the redirect's query.
async fn consent(authorization_url: &str, account: i64, decision: &str) -> Vec<(String, String)> {
    let url = url::Url::parse(authorization_url).unwrap();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let page = http.get(url.clone()).send().await.unwrap();
    assert_eq!(page.status(), 200, "the consent page");
    let mut form: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    form.push(("account".into(), account.to_string()));
    form.push(("decision".into(), decision.into()));
    let mut post = url.clone();
    post.set_query(None);
    let answer = http
        .post(post)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(serde_urlencoded::to_string(&form).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 302, "the consent page redirects");
    let location = answer.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.starts_with(REDIRECT), "{location}");
    url::Url::parse(&location)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect()
}

fn param<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Drives every rooms and messages item of the app's queues until `id` finishes.
async fn run_job(pool: &PgPool, queues: Arc<dyn Queues>, context: Arc<SyncContext>, id: Uuid) {
    let rooms = JobConsumer::<RoomsSync>::new(pool.clone(), queues.clone(), context.clone());
    let messages = JobConsumer::<MessagesSync>::new(pool.clone(), queues.clone(), context);
    let mut rooms_source = cwsync::consumer::EventSource::new(queues.clone(), RoomsSync::QUEUE);
    rooms_source.wait = Duration::from_millis(50);
    let mut messages_source =
        cwsync::consumer::EventSource::new(queues.clone(), MessagesSync::QUEUE);
    messages_source.wait = Duration::from_millis(50);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let job = jobs::get(pool, id).await.unwrap().unwrap();
        if !matches!(job.status, JobStatus::Queued | JobStatus::Processing) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "job {id} did not finish: {job:?}"
        );
        let polled = rooms_source.poll_once(&rooms).await.unwrap()
            + messages_source.poll_once(&messages).await.unwrap();
        if polled == 0 {
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
    }
}

async fn connection_row(pool: &PgPool, id: Uuid) -> Value {
    sqlx::query_scalar!(
        r#"SELECT row_to_json(c)::jsonb AS "row!" FROM chatwork_connections c WHERE id = $1"#,
        id
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

/// The whole table as text, as a person with `psql` would read it.
async fn table_text(pool: &PgPool) -> String {
    sqlx::query_scalar!(
        r#"SELECT coalesce(string_agg(c::text, E'\n'), '') AS "t!" FROM chatwork_connections c"#
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn the_oauth_round_trip_stores_a_sealed_connection_whose_first_rooms_sync_reads_its_rooms() {
    let fake = two_accounts().await;
    let db = TestDb::new().await;
    let pool = db.pool.clone();
    let connections = connections_for(&fake, &pool);
    let app = spawn_app_with_connections(db, connections.clone()).await;
    let admin = Who::user("admin-1", "admin");

    let started = app
        .call(&admin, "POST", "/api/chatwork/connections/oauth", None)
        .await;
    started.expect(201);
    let url = started.body["authorizationUrl"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(url.starts_with(&fake.oauth_authorize_url()), "{url}");
    assert!(url.contains("code_challenge_method=S256"), "{url}");
    let back = consent(&url, B, "allow").await;
    let (state, code) = (
        param(&back, "state").unwrap(),
        param(&back, "code").unwrap(),
    );

    let done = app
        .call(
            &admin,
            "POST",
            "/api/chatwork/connections/oauth/complete",
            Some(json!({"state": state, "code": code})),
        )
        .await;
    done.expect(201);
    let connection = &done.body["connection"];
    assert_eq!(connection["accountId"], B);
    assert_eq!(connection["accountName"], "高橋 美咲");
    assert_eq!(connection["organizationName"], "テスト商事");
    assert_eq!(connection["kind"], "oauth");
    assert_eq!(connection["status"], "active");
    assert_eq!(connection["connectedBy"], "admin-1");
    assert!(
        connection["scopes"]
            .as_str()
            .unwrap()
            .contains("rooms.messages:read")
    );
    let id: Uuid = connection["id"].as_str().unwrap().parse().unwrap();

    // Sealed: the access token (opened with the test's key) is nowhere in the row's text.
    let row = connection_row(&pool, id).await;
    assert!(row["access_token"].is_string() && row["refresh_token"].is_string());
    let access = TokenCipher::local(KEY)
        .open(
            &cwsync::connections::cipher::place(&id, "access_token"),
            &sqlx::query_scalar!(
                "SELECT access_token FROM chatwork_connections WHERE id = $1",
                id
            )
            .fetch_one(&pool)
            .await
            .unwrap()
            .unwrap(),
            row["key_id"].as_str().unwrap(),
            None,
        )
        .await
        .unwrap();
    assert!(access.expose_secret().len() >= 16);
    let text = table_text(&pool).await;
    assert!(
        !text.contains(access.expose_secret()),
        "the token in plain text"
    );
    assert!(
        !done.text.contains(access.expose_secret()),
        "the token in the answer"
    );
    let listed = app
        .call(&admin, "GET", "/api/chatwork/connections", None)
        .await;
    listed.expect(200);
    assert!(!listed.text.contains(access.expose_secret()));

    // Its first rooms sync reads B's rooms through B.
    let job: Uuid = done.body["roomsSyncJobId"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let context = Arc::new(SyncContext::with_connections(connections));
    run_job(&pool, Arc::new(app.queues.clone()), context, job).await;
    let job = jobs::get(&pool, job).await.unwrap().unwrap();
    assert_eq!(job.status, JobStatus::Completed, "{job:?}");
    let seen: Vec<i64> = sqlx::query_scalar!(
        "SELECT room_id FROM chatwork_room_connections WHERE connection_id = $1 ORDER BY room_id",
        id
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(seen, vec![B_ONLY[0], B_ONLY[1], SHARED]);
    // A request with B's bearer token went to Chatwork; none carried it in the URL.
    assert!(
        fake.requests()
            .iter()
            .all(|r| !r.path.contains(access.expose_secret()))
    );
}

#[tokio::test]
async fn a_state_works_once_for_its_admin_within_ten_minutes_and_a_code_once() {
    let fake = two_accounts().await;
    let db = TestDb::new().await;
    let pool = db.pool.clone();
    let app = spawn_app_with_connections(db, connections_for(&fake, &pool)).await;
    let admin = Who::user("admin-1", "admin");
    let other = Who::user("admin-2", "admin");
    let start = || async {
        let started = app
            .call(&admin, "POST", "/api/chatwork/connections/oauth", None)
            .await;
        started.expect(201);
        started.body["authorizationUrl"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let complete = |who: Who, body: Value| {
        let app = &app;
        async move {
            app.call(
                &who,
                "POST",
                "/api/chatwork/connections/oauth/complete",
                Some(body),
            )
            .await
        }
    };
    let count = || async {
        sqlx::query_scalar!(
            r#"SELECT count(*) AS "n!" FROM chatwork_connections WHERE NOT bootstrap"#
        )
        .fetch_one(&pool)
        .await
        .unwrap()
    };

    // Another admin's state: refused, and it stays usable for its own admin.
    let back = consent(&start().await, B, "allow").await;
    let body = json!({"state": param(&back, "state"), "code": param(&back, "code")});
    let refused = complete(other.clone(), body.clone()).await;
    refused.expect(400);
    assert_eq!(refused.code(), "oauth_state_invalid");
    assert!(
        refused.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("another admin")
    );
    complete(admin.clone(), body.clone()).await.expect(201);
    // Used: refused.
    let again = complete(admin.clone(), body).await;
    again.expect(400);
    assert_eq!(again.code(), "oauth_state_invalid");
    assert_eq!(count().await, 1);
    sqlx::query!("DELETE FROM chatwork_connections WHERE NOT bootstrap")
        .execute(&pool)
        .await
        .unwrap();

    // Expired (started over ten minutes ago): refused, nothing stored.
    let back = consent(&start().await, B, "allow").await;
    sqlx::query!("UPDATE chatwork_oauth_states SET expires_at = now() - interval '1 second' WHERE used_at IS NULL")
        .execute(&pool)
        .await
        .unwrap();
    let expired = complete(
        admin.clone(),
        json!({"state": param(&back, "state"), "code": param(&back, "code")}),
    )
    .await;
    expired.expect(400);
    assert_eq!(expired.code(), "oauth_state_invalid");
    // Unknown.
    let unknown = complete(admin.clone(), json!({"state": "made-up", "code": "x"})).await;
    unknown.expect(400);
    assert_eq!(unknown.code(), "oauth_state_invalid");

    // A code used before, under a new state: Chatwork refuses it.
    let first = consent(&start().await, B, "allow").await;
    complete(
        admin.clone(),
        json!({"state": param(&first, "state"), "code": param(&first, "code")}),
    )
    .await
    .expect(201);
    sqlx::query!("DELETE FROM chatwork_connections WHERE NOT bootstrap")
        .execute(&pool)
        .await
        .unwrap();
    let second = consent(&start().await, B, "allow").await;
    let reused = complete(
        admin.clone(),
        json!({"state": param(&second, "state"), "code": param(&first, "code")}),
    )
    .await;
    reused.expect(400);
    assert_eq!(reused.code(), "oauth_refused");
    assert_eq!(count().await, 0);

    // Consent refused: said so, nothing stored.
    let denied = consent(&start().await, B, "deny").await;
    assert_eq!(param(&denied, "error"), Some("access_denied"));
    let answer = complete(
        admin.clone(),
        json!({"state": param(&denied, "state"), "error": "access_denied"}),
    )
    .await;
    answer.expect(400);
    assert_eq!(answer.code(), "oauth_refused");
    assert_eq!(count().await, 0);

    // A wrong PKCE verifier: the stored verifier replaced by another sealed the same way.
    let back = consent(&start().await, B, "allow").await;
    let state = param(&back, "state").unwrap();
    let hash = cwsync::chatwork::token_hash(&SecretString::from(state.to_owned()));
    let place = cwsync::connections::cipher::place(
        &Uuid::from_slice(&hash[..16]).unwrap(),
        "code_verifier",
    );
    let wrong = TokenCipher::local(KEY)
        .seal(&place, b"another-verifier-another-verifier-another-v")
        .await
        .unwrap();
    sqlx::query!(
        "UPDATE chatwork_oauth_states SET code_verifier = $2 WHERE state_hash = $1",
        &hash[..],
        wrong.bytes
    )
    .execute(&pool)
    .await
    .unwrap();
    let pkce = complete(
        admin.clone(),
        json!({"state": state, "code": param(&back, "code")}),
    )
    .await;
    pkce.expect(400);
    assert_eq!(pkce.code(), "oauth_refused");
    assert_eq!(count().await, 0);

    // Writers and readers: 403 on every route.
    for role in ["writer", "reader"] {
        let token = Who::user("someone", role);
        for (method, path) in [
            ("GET", "/api/chatwork/connections"),
            ("POST", "/api/chatwork/connections/oauth"),
        ] {
            let answer = app.call(&token, method, path, None).await;
            answer.expect(403);
        }
    }
}

/// Stores an OAuth connection of B as the callback would, with tokens from the fake.
async fn connect_b_by_oauth(fake: &FakeChatwork, pool: &PgPool, connections: &Connections) -> Uuid {
    let endpoint = connections.endpoint().unwrap();
    let verifier = cwsync::connections::oauth::random_token();
    let url = endpoint
        .config()
        .authorization_url("s", &cwsync::connections::oauth::challenge_of(&verifier));
    let back = consent(url.as_str(), B, "allow").await;
    let granted = endpoint
        .exchange(param(&back, "code").unwrap(), &verifier)
        .await
        .unwrap();
    let _ = fake;
    let me = Me {
        account_id: B,
        name: "高橋 美咲".into(),
        organization_id: Some(77),
        organization_name: "テスト商事".into(),
    };
    let (id, created) = store::connect(
        pool,
        connections.cipher().unwrap(),
        NewConnection {
            kind: "oauth",
            me: &me,
            connected_by: "admin-1",
            scopes: &granted.scope,
            access_token: &granted.access_token,
            refresh_token: granted.refresh_token.as_ref(),
            expires_at: Some(chrono::Utc::now() + chrono::Duration::minutes(15)),
        },
    )
    .await
    .unwrap();
    assert!(created);
    id
}

#[tokio::test]
async fn five_consumers_needing_a_token_as_it_expires_cause_exactly_one_refresh() {
    let fake = two_accounts().await;
    let db = TestDb::new().await;
    let first = connections_for(&fake, &db.pool);
    let id = connect_b_by_oauth(&fake, &db.pool, &first).await;
    // The access token expires now, at Chatwork and in our row.
    fake.expire_access_tokens();
    sqlx::query!(
        "UPDATE chatwork_connections SET access_token_expires_at = now() WHERE id = $1",
        id
    )
    .execute(&db.pool)
    .await
    .unwrap();
    // Five processes (each its own registry and pool) need it in the same moment.
    let calls = (0..5).map(|_| {
        let connections = connections_for(&fake, &db.another_pool());
        async move {
            let client = connections.client(id).await.unwrap();
            client
                .list_rooms(tokio::time::Instant::now() + Duration::from_secs(20))
                .await
        }
    });
    let results = futures_util::future::join_all(calls).await;
    for result in &results {
        assert_eq!(result.as_ref().unwrap().items.len(), 3, "{result:?}");
    }
    assert_eq!(fake.refresh_count(), 1, "{:?}", fake.token_requests());
    let row = connection_row(&db.pool, id).await;
    assert_eq!(row["status"], "active");
}

#[tokio::test]
async fn a_refused_refresh_asks_for_a_reconnect_and_the_room_goes_through_another_member() {
    let fake = two_accounts().await;
    let db = TestDb::new().await;
    let pool = db.pool.clone();
    let connections = connections_for(&fake, &pool);
    let b = connect_b_by_oauth(&fake, &pool, &connections).await;
    let context = Arc::new(SyncContext::with_connections(connections.clone()));
    let queues: Arc<dyn Queues> = Arc::new(cwsync_tests_queues());
    let rooms =
        jobs::start::<RoomsSync>(&pool, queues.as_ref(), &RoomsSyncPayload::default(), None)
            .await
            .unwrap();
    run_job(&pool, queues.clone(), context.clone(), rooms.job.id).await;

    // B removed cwsync in Chatwork; its token is due.
    fake.revoke_grants(B);
    sqlx::query!(
        "UPDATE chatwork_connections SET access_token_expires_at = now() WHERE id = $1",
        b
    )
    .execute(&pool)
    .await
    .unwrap();
    // Make B the member with the most budget left for the shared room.
    fake.spend_rate_limit(fake.token(), 250);
    let sync = jobs::start::<MessagesSync>(
        &pool,
        queues.as_ref(),
        &MessagesSyncPayload::Room { room_id: SHARED },
        None,
    )
    .await
    .unwrap();
    run_job(&pool, queues.clone(), context.clone(), sync.job.id).await;
    let job = jobs::get(&pool, sync.job.id).await.unwrap().unwrap();
    assert_eq!(job.status, JobStatus::Completed, "{job:?}");
    let row = connection_row(&pool, b).await;
    assert_eq!(row["status"], "reauth_required", "{row}");
    assert!(
        row["last_error"]
            .as_str()
            .unwrap()
            .contains("connect the account again")
    );
    let stored: i64 = sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM messages m JOIN chatwork_rooms r ON r.id = m.chatwork_room_id WHERE r.room_id = $1"#,
        SHARED
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(stored, 5);
}

fn cwsync_tests_queues() -> cwsync::queue::EmbeddedQueues {
    cwsync::queue::EmbeddedQueues::new(cwsync::queue::EmbeddedSettings {
        visibility_timeout: Duration::from_millis(300),
        max_receive_count: 4,
        deduplication_window: Duration::from_secs(300),
    })
}

/// Adds B with its API token, as `POST /api/chatwork/connections` does.
async fn connect_b_by_token(pool: &PgPool, connections: &Connections) -> Uuid {
    let me = connections
        .whoami(
            &SecretString::from(B_TOKEN.to_owned()),
            false,
            tokio::time::Instant::now() + Duration::from_secs(10),
        )
        .await
        .unwrap();
    assert_eq!(me.account_id, B);
    store::connect(
        pool,
        connections.cipher().unwrap(),
        NewConnection {
            kind: "api_token",
            me: &me,
            connected_by: "admin-1",
            scopes: "",
            access_token: &SecretString::from(B_TOKEN.to_owned()),
            refresh_token: None,
            expires_at: None,
        },
    )
    .await
    .unwrap()
    .0
}

fn message_fetches(fake: &FakeChatwork, room: i64) -> usize {
    let path = format!("/v2/rooms/{room}/messages");
    fake.requests().iter().filter(|r| r.path == path).count()
}

#[tokio::test]
async fn every_room_of_both_accounts_is_synced_a_shared_room_once_each_budget_its_own() {
    let fake = two_accounts().await;
    let db = TestDb::new().await;
    let pool = db.pool.clone();
    let connections = connections_for(&fake, &pool);
    let b = connect_b_by_token(&pool, &connections).await;
    let context = Arc::new(SyncContext::with_connections(connections.clone()));
    let queues: Arc<dyn Queues> = Arc::new(cwsync_tests_queues());
    let rooms =
        jobs::start::<RoomsSync>(&pool, queues.as_ref(), &RoomsSyncPayload::default(), None)
            .await
            .unwrap();
    run_job(&pool, queues.clone(), context.clone(), rooms.job.id).await;
    let result = jobs::get(&pool, rooms.job.id)
        .await
        .unwrap()
        .unwrap()
        .result
        .unwrap();
    assert_eq!(result["total"], 5, "{result}");
    assert_eq!(result["connections"], 2, "{result}");

    // A is at its limit: nothing of B's waits for it.
    fake.spend_rate_limit(fake.token(), 10_000);
    let sync = jobs::start::<MessagesSync>(&pool, queues.as_ref(), &MessagesSyncPayload::All, None)
        .await
        .unwrap();
    let started = tokio::time::Instant::now();
    let b_rooms_done = async {
        loop {
            let done: i64 = sqlx::query_scalar!(
                r#"SELECT count(*) AS "n!" FROM chatwork_rooms WHERE room_id = ANY($1) AND synced_message_num IS NOT NULL"#,
                &[B_ONLY[0], B_ONLY[1], SHARED][..]
            )
            .fetch_one(&pool)
            .await
            .unwrap();
            if done == 3 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let driver = run_job(&pool, queues.clone(), context.clone(), sync.job.id);
    tokio::select! {
        _ = b_rooms_done => {}
        _ = driver => {}
    }
    // B's rooms (the shared one through B, which has budget) came while A waits for its
    // window (the fake's is 5 minutes).
    assert!(started.elapsed() < Duration::from_secs(30));
    for room in A_ONLY {
        assert_eq!(
            message_fetches(&fake, room),
            0,
            "room {room} went through A's spent budget"
        );
    }
    assert_eq!(
        message_fetches(&fake, SHARED),
        1,
        "the shared room fetched once"
    );
    assert_eq!(message_fetches(&fake, B_ONLY[0]), 1);
    let _ = b;
}

#[tokio::test]
async fn an_api_token_connection_is_checked_sealed_and_managed_through_the_api() {
    let fake = two_accounts().await;
    let db = TestDb::new().await;
    let pool = db.pool.clone();
    let app = spawn_app_with_connections(db, connections_for(&fake, &pool)).await;
    let admin = Who::user("admin-1", "admin");

    let refused = app
        .call(
            &admin,
            "POST",
            "/api/chatwork/connections",
            Some(json!({"token": "not-a-known-token"})),
        )
        .await;
    refused.expect(422);
    assert_eq!(refused.code(), "chatwork_token_refused");
    let blank = app
        .call(
            &admin,
            "POST",
            "/api/chatwork/connections",
            Some(json!({"token": "a b"})),
        )
        .await;
    blank.expect(422);

    let added = app
        .call(
            &admin,
            "POST",
            "/api/chatwork/connections",
            Some(json!({"token": B_TOKEN})),
        )
        .await;
    added.expect(201);
    assert!(!added.text.contains(B_TOKEN));
    assert_eq!(added.body["connection"]["kind"], "api_token");
    assert_eq!(added.body["connection"]["accountId"], B);
    assert_eq!(added.body["reconnected"], false);
    let id = added.body["connection"]["id"].as_str().unwrap().to_owned();
    assert!(
        !table_text(&pool).await.contains(B_TOKEN),
        "the token in plain text"
    );
    // The same account again: reconnected, one row.
    let again = app
        .call(
            &admin,
            "POST",
            "/api/chatwork/connections",
            Some(json!({"token": B_TOKEN})),
        )
        .await;
    again.expect(201);
    assert_eq!(again.body["reconnected"], true);
    assert_eq!(again.body["connection"]["id"], id.as_str());

    let list = app
        .call(&admin, "GET", "/api/chatwork/connections", None)
        .await;
    list.expect(200);
    assert_eq!(list.body["canAdd"], true);
    assert_eq!(list.body["canConnectOauth"], true);
    assert!(!list.text.contains(B_TOKEN));

    let path = format!("/api/chatwork/connections/{id}");
    let disabled = app
        .call(&admin, "PATCH", &path, Some(json!({"status": "disabled"})))
        .await;
    disabled.expect(200);
    assert_eq!(disabled.body["status"], "disabled");
    let bad = app
        .call(&admin, "PATCH", &path, Some(json!({"status": "revoked"})))
        .await;
    bad.expect(422);
    app.call(&admin, "PATCH", &path, Some(json!({"status": "active"})))
        .await
        .expect(200);
    let writer = Who::writer();
    app.call(&writer, "DELETE", &path, None).await.expect(403);
    app.call(&admin, "DELETE", &path, None).await.expect(204);
    let gone = app.call(&admin, "DELETE", &path, None).await;
    gone.expect(404);
    assert_eq!(gone.code(), "connection_not_found");
    let audits: Vec<String> = sqlx::query_scalar!(
        "SELECT action FROM audit_logs WHERE resource_type = 'chatwork_connection' ORDER BY id"
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        audits,
        [
            "chatwork_connection.connect",
            "chatwork_connection.reconnect",
            "chatwork_connection.update",
            "chatwork_connection.update",
            "chatwork_connection.delete"
        ]
    );
}

#[tokio::test]
async fn kms_seals_under_a_data_key_it_made_once_and_opens_in_another_process() {
    let kms = kms_client();
    let key = kms.create_key().send().await.unwrap();
    let key_id = key.key_metadata().unwrap().arn().unwrap().to_owned();
    let config = CipherConfig::Kms { key_id };
    let writer = TokenCipher::new(&config, Some(kms.clone())).unwrap();
    let one = writer
        .seal("cwsync:a:access_token", b"token-one")
        .await
        .unwrap();
    let two = writer
        .seal("cwsync:b:access_token", b"token-two")
        .await
        .unwrap();
    // One data key per process: both rows carry the same wrapped key.
    assert_eq!(one.wrapped_key, two.wrapped_key);
    let wrapped = one.wrapped_key.clone().unwrap();
    assert!(!wrapped.windows(9).any(|w| w == b"token-one"));
    // Another process opens it through KMS's Decrypt.
    let reader = TokenCipher::new(&config, Some(kms_client())).unwrap();
    let opened = reader
        .open(
            "cwsync:a:access_token",
            &one.bytes,
            &one.key_id,
            Some(&wrapped),
        )
        .await
        .unwrap();
    assert_eq!(opened.expose_secret(), "token-one");
    // A wrapped key KMS did not make does not open.
    let mut forged = wrapped.clone();
    let last = forged.len() - 1;
    forged[last] ^= 1;
    assert!(
        reader
            .open(
                "cwsync:b:access_token",
                &two.bytes,
                &two.key_id,
                Some(&forged)
            )
            .await
            .is_err()
    );
}

/// A delivery signed with B's webhook token, for `room_id`, as Chatwork sends it: the
/// route's answer.
async fn deliver_signed(
    app: &cwsync_tests::TestApp,
    token: &str,
    room_id: i64,
    message_id: &str,
) -> Value {
    let now = cwsync_tests::now_secs();
    let body = serde_json::to_vec(&json!({
        "webhook_setting_id": "5001",
        "webhook_event_type": "message_created",
        "webhook_event_time": now,
        "webhook_event": {
            "message_id": message_id,
            "room_id": room_id,
            "account_id": B,
            "body": "webhook body",
            "send_time": now,
            "update_time": 0,
        }
    }))
    .unwrap();
    let answer = reqwest::Client::new()
        .post(format!("{}{}", app.address, cwsync::webhook::WEBHOOK_PATH))
        .header("content-type", "application/json")
        .header(
            cwsync::webhook::SIGNATURE_HEADER,
            cwsync::webhook::sign(token, &body).unwrap(),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    answer.json().await.unwrap()
}

#[tokio::test]
async fn a_connections_webhook_token_speaks_for_its_accounts_rooms_only() {
    let fake = two_accounts().await;
    let db = TestDb::new().await;
    let pool = db.pool.clone();
    let connections = connections_for(&fake, &pool);
    let b = connect_b_by_token(&pool, &connections).await;
    let context = Arc::new(SyncContext::with_connections(connections.clone()));
    let queues: Arc<dyn Queues> = Arc::new(cwsync_tests_queues());
    let rooms =
        jobs::start::<RoomsSync>(&pool, queues.as_ref(), &RoomsSyncPayload::default(), None)
            .await
            .unwrap();
    run_job(&pool, queues.clone(), context, rooms.job.id).await;
    let app = spawn_app_with_connections(db, connections).await;
    let admin = Who::user("admin-1", "admin");
    let token = fake_chatwork::webhook_token();
    let path = format!("/api/chatwork/connections/{b}/webhooks");

    let bad = app
        .call(
            &admin,
            "POST",
            &path,
            Some(json!({"token": "not base64 !"})),
        )
        .await;
    bad.expect(422);
    let added = app
        .call(&admin, "POST", &path, Some(json!({"token": token})))
        .await;
    added.expect(201);
    assert!(!added.text.contains(&token));
    let twice = app
        .call(&admin, "POST", &path, Some(json!({"token": token})))
        .await;
    twice.expect(409);
    assert_eq!(twice.code(), "webhook_already_added");
    assert!(!table_text(&pool).await.contains(&token));
    let sealed: Vec<u8> = sqlx::query_scalar!("SELECT token FROM chatwork_connection_webhooks")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(!sealed.windows(token.len()).any(|w| w == token.as_bytes()));

    // B's room: stored. A room only A is in: acknowledged, stored nowhere.
    let mine = deliver_signed(&app, &token, B_ONLY[0], "9000000000000000001").await;
    assert_eq!(mine["outcome"], "stored", "{mine}");
    let not_mine = deliver_signed(&app, &token, A_ONLY[0], "9000000000000000002").await;
    assert_eq!(not_mine["outcome"], "room_not_served", "{not_mine}");
    let stored: i64 = sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM messages WHERE message_id IN ('9000000000000000001', '9000000000000000002')"#
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(stored, 1);

    // Removed: refused once the tokens are read again.
    let id = added.body["id"].as_str().unwrap();
    app.call(&admin, "DELETE", &format!("{path}/{id}"), None)
        .await
        .expect(204);
    tokio::time::sleep(cwsync::connections::webhooks::RELOAD_EVERY).await;
    let gone = reqwest::Client::new()
        .post(format!("{}{}", app.address, cwsync::webhook::WEBHOOK_PATH))
        .header("content-type", "application/json")
        .header(
            cwsync::webhook::SIGNATURE_HEADER,
            cwsync::webhook::sign(&token, b"{}").unwrap(),
        )
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), 401);
}

#[derive(Clone, Default)]
struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

/// Every secret a connection's life touches (its API token, OAuth access and refresh
/// tokens before and after a refresh, the client secret, a webhook token) stays out of
/// every log line at TRACE.
#[tokio::test]
async fn no_token_of_a_connection_reaches_the_logs() {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(captured.clone())
        .finish();
    // This test runs on one thread, so every task it starts logs here.
    let _guard = tracing::subscriber::set_default(subscriber);
    tracing::callsite::rebuild_interest_cache();

    let fake = two_accounts().await;
    let db = TestDb::new().await;
    let pool = db.pool.clone();
    let connections = connections_for(&fake, &pool);
    let app = spawn_app_with_connections(db, connections.clone()).await;
    let admin = Who::user("admin-1", "admin");
    app.call(
        &admin,
        "POST",
        "/api/chatwork/connections",
        Some(json!({"token": B_TOKEN})),
    )
    .await
    .expect(201);
    // B again, by OAuth (a reconnect of the same account).
    let started = app
        .call(&admin, "POST", "/api/chatwork/connections/oauth", None)
        .await;
    let back = consent(
        started.body["authorizationUrl"].as_str().unwrap(),
        B,
        "allow",
    )
    .await;
    let done = app
        .call(
            &admin,
            "POST",
            "/api/chatwork/connections/oauth/complete",
            Some(json!({"state": param(&back, "state"), "code": param(&back, "code")})),
        )
        .await;
    done.expect(201);
    let id: Uuid = done.body["connection"]["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let secrets_of = |pool: PgPool| async move {
        let row = sqlx::query!(
            "SELECT access_token, refresh_token, key_id FROM chatwork_connections WHERE id = $1",
            id
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        let cipher = TokenCipher::local(KEY);
        let key_id = row.key_id.unwrap();
        let open = |field: &'static str, bytes: Vec<u8>| {
            let cipher = cipher.clone();
            let key_id = key_id.clone();
            async move {
                cipher
                    .open(
                        &cwsync::connections::cipher::place(&id, field),
                        &bytes,
                        &key_id,
                        None,
                    )
                    .await
                    .unwrap()
                    .expose_secret()
                    .to_owned()
            }
        };
        vec![
            open("access_token", row.access_token.unwrap()).await,
            open("refresh_token", row.refresh_token.unwrap()).await,
        ]
    };
    let mut secrets = secrets_of(pool.clone()).await;
    // A refresh, and a request with the new token. (Interest computed again first: a
    // statement another test's thread reached first may keep what it computed without
    // this subscriber.)
    tracing::callsite::rebuild_interest_cache();
    fake.expire_access_tokens();
    sqlx::query!(
        "UPDATE chatwork_connections SET access_token_expires_at = now() WHERE id = $1",
        id
    )
    .execute(&pool)
    .await
    .unwrap();
    connections
        .client(id)
        .await
        .unwrap()
        .list_rooms(tokio::time::Instant::now() + Duration::from_secs(20))
        .await
        .unwrap();
    assert_eq!(fake.refresh_count(), 1);
    secrets.extend(secrets_of(pool.clone()).await);
    let webhook = fake_chatwork::webhook_token();
    app.call(
        &admin,
        "POST",
        &format!("/api/chatwork/connections/{id}/webhooks"),
        Some(json!({"token": webhook})),
    )
    .await
    .expect(201);
    secrets.extend([B_TOKEN.to_owned(), CLIENT_SECRET.to_owned(), webhook]);

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("refreshed a Chatwork access token"),
        "the logs were captured"
    );
    for secret in &secrets {
        assert!(secret.len() >= 16);
        assert!(!logs.contains(secret.as_str()), "a secret in the logs");
    }
}

/// One account's open outage breaker leaves another's requests alone.
#[tokio::test]
async fn one_connections_open_breaker_never_stops_another() {
    let fake = two_accounts().await;
    let db = TestDb::new().await;
    let pool = db.pool.clone();
    let connections = connections_for(&fake, &pool);
    let b = connect_b_by_token(&pool, &connections).await;
    let deadline = || tokio::time::Instant::now() + Duration::from_secs(5);
    let a = connections.bootstrap_id().await.unwrap().unwrap();
    // A's account fails until its breaker opens (as after a run of 5xx for it).
    let client_of_a = connections.client(a).await.unwrap();
    let mut opened = None;
    for _ in 0..20 {
        opened = client_of_a.breaker().failed().await.unwrap();
        if opened.is_some() {
            break;
        }
    }
    assert!(opened.is_some(), "A's breaker opened");
    let from_a = connections
        .client(a)
        .await
        .unwrap()
        .list_rooms(deadline())
        .await;
    assert!(
        matches!(
            from_a,
            Err(cwsync::chatwork::ChatworkError::Unavailable { .. })
        ),
        "{from_a:?}"
    );
    let from_b = connections
        .client(b)
        .await
        .unwrap()
        .list_rooms(deadline())
        .await
        .unwrap();
    assert_eq!(from_b.items.len(), 3);
}

/// The memberships of a connection, each with its row version and whether it is refused.
async fn memberships(pool: &PgPool, connection: Uuid) -> Vec<(i64, String, bool)> {
    sqlx::query_as(
        "SELECT room_id, xmin::text, refused_at IS NOT NULL FROM chatwork_room_connections
          WHERE connection_id = $1 ORDER BY room_id",
    )
    .bind(connection)
    .fetch_all(pool)
    .await
    .unwrap()
}

/// Every room check records its connections' room lists: a list read again as it was
/// rewrites no membership, a room listed again after a refusal is no longer refused, a
/// room no longer listed is no longer the connection's. So it stays on a connection that
/// has run the statement more than five times (after which Postgres may run a cached
/// generic plan).
#[tokio::test]
async fn a_room_list_writes_only_the_memberships_that_changed() {
    let db = TestDb::new().await;
    let mut config = db.config.clone();
    config.max_connections = 1;
    let pool = cwsync::db::pool(&config).unwrap();
    let connection: Uuid = sqlx::query_scalar(
        "INSERT INTO chatwork_connections (kind, bootstrap, connected_by, budget_key)
         VALUES ('api_token', true, 'bootstrap', decode(repeat('ab', 32), 'hex'))
         RETURNING id",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO chatwork_rooms (room_id, name, room_type)
         SELECT g, 'room ' || g, 'group' FROM generate_series(1, 5) g",
    )
    .execute(&pool)
    .await
    .unwrap();
    // Room 99 is not registered: no membership for it.
    store::record_listing(&pool, connection, &[1, 2, 3, 4, 99])
        .await
        .unwrap();
    let first = memberships(&pool, connection).await;
    let rooms = |rows: &[(i64, String, bool)]| rows.iter().map(|r| r.0).collect::<Vec<_>>();
    assert_eq!(rooms(&first), [1, 2, 3, 4]);

    for _ in 0..7 {
        store::record_listing(&pool, connection, &[4, 3, 2, 1])
            .await
            .unwrap();
    }
    assert_eq!(
        memberships(&pool, connection).await,
        first,
        "the same list again rewrites nothing"
    );

    store::record_refusal(&pool, connection, 2).await.unwrap();
    assert!(memberships(&pool, connection).await[1].2, "room 2 refused");
    store::record_listing(&pool, connection, &[2, 3, 4, 5])
        .await
        .unwrap();
    let after = memberships(&pool, connection).await;
    assert_eq!(rooms(&after), [2, 3, 4, 5], "room 1 gone, room 5 added");
    assert!(
        after.iter().all(|r| !r.2),
        "room 2 listed again: no longer refused"
    );
    assert_eq!(after[1], first[2], "room 3 untouched");
    assert_eq!(after[2], first[3], "room 4 untouched");
    let listed: i32 =
        sqlx::query_scalar("SELECT rooms_listed FROM chatwork_connections WHERE id = $1")
            .bind(connection)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(listed, 4);
}
