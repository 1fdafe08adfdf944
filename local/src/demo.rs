//! The demo world of a local run without a Chatwork token: the fake Chatwork serving the
//! demo data set, and one company (a customer of the demo's company) linked to the two
//! rooms where its people talk, so that messages land on it and a summary can be drafted.
//! One of those rooms is fed by webhook: a conversation goes on in it while the runner
//! runs, and the fake Chatwork delivers each message to the runner's own webhook route.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use fake_chatwork::{DemoData, FakeChatwork, FakeSettings};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// The demo company: the customer whose rooms' names carry its name, named as the fake's
/// members name their organization (so its people in a room it is not linked to
/// suggest it).
pub const COMPANY: &str = DemoData::CUSTOMER_ORGANIZATION;
const COMPANY_MARK: &str = "ミナトロジスティクス";

/// Starts the fake Chatwork with the demo data on `addr` (port 0: any free port).
pub async fn start_fake(addr: SocketAddr) -> anyhow::Result<FakeChatwork> {
    Ok(FakeChatwork::start_on(FakeSettings::demo(), addr).await?)
}

/// The Chatwork ids of the demo rooms where the demo company talks.
pub fn company_rooms() -> Vec<i64> {
    DemoData::build()
        .rooms
        .iter()
        .filter(|r| r.name.contains(COMPANY_MARK))
        .map(|r| r.room_id)
        .collect()
}

/// Creates the demo company when it is missing; returns its id.
pub async fn ensure_company(pool: &PgPool) -> Result<Uuid, sqlx::Error> {
    if let Some(id) = sqlx::query_scalar::<_, Uuid>("SELECT id FROM companies WHERE name = $1")
        .bind(COMPANY)
        .fetch_optional(pool)
        .await?
    {
        return Ok(id);
    }
    sqlx::query_scalar("INSERT INTO companies (name) VALUES ($1) RETURNING id")
        .bind(COMPANY)
        .fetch_one(pool)
        .await
}

/// Links the demo company to its rooms once a rooms sync has brought them in (and gives
/// their stored messages the company, as linking through the API does). Stops when both
/// are linked, or at `stop`.
pub async fn link_when_rooms_arrive(pool: PgPool, company: Uuid, stop: CancellationToken) {
    let rooms = company_rooms();
    loop {
        let linked = sqlx::query_scalar::<_, i64>(
            "WITH linked AS (
                 INSERT INTO company_room_links (company_id, chatwork_room_id)
                 SELECT $1, r.id FROM chatwork_rooms r WHERE r.room_id = ANY($2)
                 ON CONFLICT DO NOTHING
                 RETURNING chatwork_room_id
             ), backfilled AS (
                 UPDATE messages SET company_id = $1
                  WHERE chatwork_room_id IN (SELECT chatwork_room_id FROM linked) AND company_id IS NULL
             )
             SELECT count(*) FROM company_room_links l JOIN chatwork_rooms r ON r.id = l.chatwork_room_id
              WHERE l.company_id = $1 AND r.room_id = ANY($2)",
        )
        .bind(company)
        .bind(&rooms)
        .fetch_one(&pool)
        .await;
        match linked {
            Ok(n) if n as usize >= rooms.len() => {
                tracing::info!(company = COMPANY, "demo company linked to its rooms");
                return;
            }
            Ok(_) => {}
            Err(e) => tracing::debug!(error = %e, "demo links not made yet"),
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

/// The demo room fed by webhook: the demo company's project room, where the conversation
/// goes on while the runner runs.
pub const WEBHOOK_ROOM: i64 = 281_000_106;
/// How often the live conversation in [`WEBHOOK_ROOM`] gets a message.
pub const FEED_EVERY: Duration = Duration::from_secs(15);

/// Registers a webhook on the fake for [`WEBHOOK_ROOM`] that delivers to `url` (the
/// runner's own webhook route) with a new token; returns the token, which the runner must
/// accept.
pub fn register_webhook(fake: &FakeChatwork, url: &str) -> anyhow::Result<String> {
    let token = fake_chatwork::webhook_token();
    fake.add_webhook(fake_chatwork::Webhook::room(
        url,
        token.clone(),
        WEBHOOK_ROOM,
    ))?;
    Ok(token)
}

/// What the people of the webhook-fed room say, in turn: the acceptance test of the
/// delivery system goes on (the demo company's 伊藤 and our 佐藤 and 鈴木).
const FEED: [(i64, &str, &str); 6] = [
    (
        1_001_006,
        "伊藤 大輔",
        "受入テストを開始しました。まずは出荷データの取込から確認します。",
    ),
    (
        1_001_001,
        "佐藤 健一",
        "[To:1001006]伊藤様\nありがとうございます。取込結果の画面で件数をご確認ください。",
    ),
    (
        1_001_006,
        "伊藤 大輔",
        "取込完了しました。件数は元データと一致しています👍",
    ),
    (
        1_001_002,
        "鈴木 美咲",
        "配送ステータス画面の表示も確認をお願いします。気になる点があればこちらにどうぞ。",
    ),
    (
        1_001_006,
        "伊藤 大輔",
        "[To:1001001]佐藤様\nステータスの色分け、とても見やすいです。現場にも見せてみます。",
    ),
    (
        1_001_001,
        "佐藤 健一",
        "ありがとうございます！引き続きよろしくお願いいたします。",
    ),
];

/// Keeps the conversation in [`WEBHOOK_ROOM`] going: a message every [`FEED_EVERY`] (the
/// first one after a few seconds) until `stop`. The fake delivers each to the webhook;
/// nothing polls for it.
pub async fn feed(fake: Arc<FakeChatwork>, stop: CancellationToken) {
    let mut tick = tokio::time::interval_at(
        tokio::time::Instant::now() + Duration::from_secs(5),
        FEED_EVERY,
    );
    for n in 0.. {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let (account_id, name, body) = FEED[n % FEED.len()];
        let account = fake_chatwork::Account::new(account_id, name);
        if fake.post_message(WEBHOOK_ROOM, &account, body).is_none() {
            return;
        }
    }
}

/// Registers this run's OAuth client with the fake (its consent page sends the browser
/// back to `redirect`) and returns the settings that use it.
pub fn register_oauth_client(
    fake: &FakeChatwork,
    redirect: &str,
) -> anyhow::Result<cwsync::connections::ChatworkOAuthConfig> {
    fake.register_oauth_client(fake_chatwork::FakeOAuthClient {
        client_id: DemoData::OAUTH_CLIENT_ID.to_owned(),
        client_secret: DemoData::OAUTH_CLIENT_SECRET.to_owned(),
        redirect_uris: vec![redirect.to_owned()],
    });
    let env = cwsync::config::Env::from_pairs([
        (
            cwsync::connections::ChatworkOAuthConfig::CLIENT_ID_VAR,
            DemoData::OAUTH_CLIENT_ID,
        ),
        (
            cwsync::connections::ChatworkOAuthConfig::CLIENT_SECRET_VAR,
            DemoData::OAUTH_CLIENT_SECRET,
        ),
        (
            cwsync::connections::ChatworkOAuthConfig::REDIRECT_URI_VAR,
            redirect,
        ),
        (
            cwsync::connections::ChatworkOAuthConfig::AUTHORIZE_URL_VAR,
            &fake.oauth_authorize_url(),
        ),
        (
            cwsync::connections::ChatworkOAuthConfig::TOKEN_URL_VAR,
            &fake.oauth_token_url(),
        ),
    ]);
    Ok(
        cwsync::connections::ChatworkOAuthConfig::from_env(&env, None)?
            .expect("a client id was just set"),
    )
}
