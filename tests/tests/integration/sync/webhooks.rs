//! Chatwork webhooks (`POST /webhooks/chatwork`) against the real router over HTTP, a
//! real Postgres and the fake Chatwork's messages: signatures (computed here with the
//! `hmac` crate, not cwsync's code), idempotent storing next to the polling path, and the
//! room check counting what webhooks stored.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use cwsync::api::{AppState, AuthConfig};
use cwsync::webhook::WebhookKeys;
use fake_chatwork::Message;
use hmac::{Hmac, KeyInit, Mac};
use secrecy::SecretString;
use serde_json::{Value, json};
use sha2::Sha256;

use super::check::SETTLE;
use super::{
    Backend, SyncRig, count_metrics, counter, messages_requests, poster, room_with_history,
};

/// Two webhooks' tokens, as Chatwork shows them (base64).
const TOKEN: &str = "d2ViaG9vay10b2tlbi1vbmUtZm9yLXRoZS10ZXN0cw==";
const OTHER_TOKEN: &str = "YW5vdGhlci13ZWJob29rLXRva2Vu";
/// A token nobody configured.
const STRANGER: &str = "c29tZWJvZHktZWxzZQ==";

/// base64(HMAC-SHA256(base64-decoded token, body)), computed without cwsync's code.
fn signature(token: &str, body: &[u8]) -> String {
    let key = STANDARD.decode(token).unwrap();
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&key).unwrap();
    mac.update(body);
    STANDARD.encode(mac.finalize().into_bytes())
}

/// How a delivery carries its signature.
#[derive(Clone, Copy)]
enum Signed<'a> {
    Header(&'a str),
    Query(&'a str),
    /// This exact signature text in the header.
    Raw(&'a str),
    Unsigned,
}

/// The API (with the two tokens configured) served over the rig's database.
struct Receiver {
    address: String,
    http: reqwest::Client,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl Receiver {
    async fn start(rig: &SyncRig) -> Self {
        Self::start_with(rig, &[OTHER_TOKEN, TOKEN]).await
    }

    /// With these tokens configured (`token@room+room` names a token's rooms).
    async fn start_with(rig: &SyncRig, tokens: &[&str]) -> Self {
        let auth = AuthConfig::local_jwt(
            &cwsync::config::Env::default(),
            &SecretString::from(cwsync_tests::TEST_JWT_SECRET),
        )
        .unwrap();
        let tokens: Vec<SecretString> = tokens.iter().map(|t| SecretString::from(*t)).collect();
        let keys = WebhookKeys::from_tokens(&tokens).unwrap();
        let state = AppState::new(rig.pool().clone(), rig.queues.clone(), auth)
            .with_webhook_keys(std::sync::Arc::new(keys));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            // The runner's server: its body deadline and `Connection: close` apply.
            cwsync::api::serve(listener, cwsync::api::router(state), std::future::pending()).await;
        });
        Self {
            address,
            http: reqwest::Client::new(),
            server,
        }
    }

    /// POSTs `body` as Chatwork would; the status and the answer's JSON.
    async fn post(&self, body: &[u8], signed: Signed<'_>) -> (u16, Value) {
        let mut url = format!("{}/webhooks/chatwork", self.address);
        let mut request = self.http.post(&url);
        match signed {
            Signed::Header(token) => {
                request = request.header("X-ChatWorkWebhookSignature", signature(token, body));
            }
            Signed::Query(token) => {
                let query: String = url::form_urlencoded::Serializer::new(String::new())
                    .append_pair("chatwork_webhook_signature", &signature(token, body))
                    .finish();
                url = format!("{url}?{query}");
                request = self.http.post(&url);
            }
            Signed::Raw(text) => request = request.header("X-ChatWorkWebhookSignature", text),
            Signed::Unsigned => {}
        }
        let response = request
            .header("content-type", "application/json")
            .body(body.to_vec())
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        assert!(text.len() <= 2048, "Chatwork wants at most 2,048 bytes");
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Delivers `event` signed in the header with [`TOKEN`]; the answer's outcome.
    async fn deliver(&self, event: &Value) -> String {
        let body = serde_json::to_vec(event).unwrap();
        let (status, answer) = self.post(&body, Signed::Header(TOKEN)).await;
        assert_eq!(status, 200, "{answer}");
        answer["outcome"].as_str().unwrap().to_owned()
    }
}

/// The body Chatwork sends for `message` of `room_id`.
fn event(kind: &str, room_id: i64, message: &Message) -> Value {
    json!({
        "webhook_setting_id": "4001",
        "webhook_event_type": kind,
        "webhook_event_time": message.send_time.max(message.update_time),
        "webhook_event": {
            "message_id": message.message_id,
            "room_id": room_id,
            "account_id": message.account.account_id,
            "body": message.body,
            "send_time": message.send_time,
            "update_time": message.update_time,
        }
    })
}

/// The newest message of `room_id` in the fake.
fn newest(rig: &SyncRig, room_id: i64) -> Message {
    rig.fake
        .room(room_id)
        .unwrap()
        .messages
        .last()
        .unwrap()
        .clone()
}

/// The author of the history of a room made by `room_with_history`: stored by the first
/// check, so a webhook finds the name.
fn regular(room_id: i64) -> fake_chatwork::Account {
    fake_chatwork::Account::new(1000 + room_id % 7, "佐藤 健一")
}

/// Posts a message by the room's regular author to the fake; the message as the fake
/// holds it.
fn post(rig: &SyncRig, room_id: i64, body: &str) -> Message {
    post_as(rig, room_id, &regular(room_id), body)
}

fn post_as(rig: &SyncRig, room_id: i64, author: &fake_chatwork::Account, body: &str) -> Message {
    rig.fake.post_message(room_id, author, body).unwrap();
    newest(rig, room_id)
}

async fn message_count(rig: &SyncRig) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM messages")
        .fetch_one(rig.pool())
        .await
        .unwrap()
}

/// (body, update_time epoch seconds or 0, account_name) of the stored rows of a message.
async fn rows_of(
    rig: &SyncRig,
    room_id: i64,
    message_id: &str,
) -> Vec<(String, i64, Option<String>)> {
    sqlx::query_as(
        "SELECT body, coalesce(extract(epoch FROM update_time)::int8, 0), account_name
           FROM messages WHERE room_id = $1 AND message_id = $2",
    )
    .bind(room_id)
    .bind(message_id)
    .fetch_all(rig.pool())
    .await
    .unwrap()
}

#[tokio::test]
async fn only_a_signature_of_a_configured_token_over_the_exact_body_is_accepted() {
    let rig = SyncRig::new(Backend::Embedded, vec![room_with_history(6101, 2)]).await;
    rig.check(0).await;
    let receiver = Receiver::start(&rig).await;
    let message = post(&rig, 6101, "signed");
    let body = serde_json::to_vec(&event("message_created", 6101, &message)).unwrap();
    let before = message_count(&rig).await;
    count_metrics();
    let rejected = |reason| counter("webhook_rejected", &[("reason", reason)]);
    let (missing, invalid) = (rejected("missing"), rejected("invalid"));

    let mut changed = body.clone();
    let at = changed.iter().position(|b| *b == b's').unwrap();
    changed[at] = b'S';
    let truncated = signature(TOKEN, &body);
    let truncated = &truncated[..truncated.len() - 8];
    for (what, bytes, signed) in [
        ("no signature", &body, Signed::Unsigned),
        ("a token nobody configured", &body, Signed::Header(STRANGER)),
        (
            "a token nobody configured, query",
            &body,
            Signed::Query(STRANGER),
        ),
        (
            "a changed body byte",
            &changed,
            Signed::Raw(&signature(TOKEN, &body)),
        ),
        ("a truncated signature", &body, Signed::Raw(truncated)),
        ("not base64", &body, Signed::Raw("%%%")),
    ] {
        let (status, answer) = receiver.post(bytes, signed).await;
        assert_eq!(status, 401, "{what}: {answer}");
        assert_eq!(answer["error"]["code"], "invalid_signature", "{what}");
        assert!(
            !answer.to_string().contains("signed"),
            "the body is not echoed"
        );
    }
    assert_eq!(message_count(&rig).await, before, "nothing stored");
    assert!(rejected("missing") > missing);
    assert!(rejected("invalid") >= invalid + 5);

    // The header form, and the query form (URL-encoded) of either configured token.
    let (status, answer) = receiver.post(&body, Signed::Query(OTHER_TOKEN)).await;
    assert_eq!((status, answer["outcome"].as_str()), (200, Some("stored")));
    let (status, answer) = receiver.post(&body, Signed::Header(TOKEN)).await;
    assert_eq!(
        (status, answer["outcome"].as_str()),
        (200, Some("unchanged"))
    );
    assert_eq!(message_count(&rig).await, before + 1);
}

#[tokio::test]
async fn duplicates_and_events_out_of_order_leave_one_row_with_the_newest_body() {
    let rig = SyncRig::new(Backend::Embedded, vec![room_with_history(6201, 1)]).await;
    rig.check(0).await;
    let receiver = Receiver::start(&rig).await;
    let created = post(&rig, 6201, "first words");
    assert!(
        rig.fake
            .edit_message(6201, &created.message_id, "second words")
    );
    let edited = newest(&rig, 6201);
    assert!(edited.update_time > 0);
    assert!(
        rig.fake
            .edit_message(6201, &created.message_id, "third words")
    );
    let edited_again = newest(&rig, 6201);

    // The update arrives before its create; the older edit after the newer one; each
    // twice.
    for (step, (kind, message, outcome)) in [
        ("message_updated", &edited, "stored"),
        ("message_updated", &edited, "unchanged"),
        ("message_created", &created, "unchanged"),
        ("message_updated", &edited_again, "updated"),
        ("message_updated", &edited, "unchanged"),
        ("message_created", &created, "unchanged"),
    ]
    .into_iter()
    .enumerate()
    {
        let answer = receiver.deliver(&event(kind, 6201, message)).await;
        assert_eq!(answer, outcome, "delivery {step}: {kind}");
    }
    let rows = rows_of(&rig, 6201, &created.message_id).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].0, "third words");
    assert_eq!(rows[0].1, edited_again.update_time);
    // The author's name comes from the messages the first check stored.
    assert_eq!(rows[0].2.as_deref(), Some("佐藤 健一"));

    // A mention of us carries the same message: still one row.
    let mention = json!({
        "webhook_setting_id": "4002",
        "webhook_event_type": "mention_to_me",
        "webhook_event_time": edited_again.update_time,
        "webhook_event": {
            "from_account_id": regular(6201).account_id, "to_account_id": 1,
            "room_id": 6201, "message_id": created.message_id, "body": "third words",
            "send_time": created.send_time, "update_time": edited_again.update_time,
        }
    });
    assert_eq!(receiver.deliver(&mention).await, "unchanged");
    assert_eq!(rows_of(&rig, 6201, &created.message_id).await.len(), 1);
}

#[tokio::test]
async fn a_room_fed_by_webhooks_needs_no_fetch_and_a_lost_delivery_is_fetched() {
    let rooms = vec![room_with_history(6301, 5), room_with_history(6302, 5)];
    let rig = SyncRig::new(Backend::Sqs, rooms).await;
    rig.check(0).await;
    let receiver = Receiver::start(&rig).await;

    // Room 6301 gets three messages, all delivered; 6302 three, the middle one lost.
    for i in 0..3 {
        let message = post(&rig, 6301, &format!("pushed {i}"));
        assert_eq!(
            receiver
                .deliver(&event("message_created", 6301, &message))
                .await,
            "stored"
        );
        let message = post(&rig, 6302, &format!("pushed {i}"));
        if i != 1 {
            assert_eq!(
                receiver
                    .deliver(&event("message_created", 6302, &message))
                    .await,
                "stored"
            );
        }
    }
    // An edit delivered keeps the room current too.
    let first = rig.fake.room(6301).unwrap().messages[0].clone();
    assert!(
        rig.fake
            .edit_message(6301, &first.message_id, "edited by webhook")
    );
    let edited = rig
        .fake
        .room(6301)
        .unwrap()
        .messages
        .into_iter()
        .find(|m| m.message_id == first.message_id)
        .unwrap();
    assert_eq!(
        receiver
            .deliver(&event("message_updated", 6301, &edited))
            .await,
        "updated"
    );
    tokio::time::sleep(SETTLE).await;

    let before = rig.fake.requests().len();
    let report = rig.check(0).await;
    assert_eq!(report.changed, 1, "{report:?}");
    assert_eq!(report.planned, [6302], "only the room with a lost delivery");
    assert_eq!(messages_requests(&rig.requests_since(before)), [6302]);
    rig.holds_everything_of(6301).await;
    rig.holds_everything_of(6302).await;
    // The fetch found the lost message among messages it already had: no gap.
    assert!(!rig.room(6302).await.gap);

    // Both rooms are current now.
    tokio::time::sleep(SETTLE).await;
    let report = rig.check(0).await;
    assert_eq!(report.changed, 0, "{report:?}");
}

#[tokio::test]
async fn webhooks_and_polls_overlapping_store_each_message_once() {
    let rig = SyncRig::new(Backend::Embedded, vec![room_with_history(6401, 3)]).await;
    rig.check(0).await;
    let receiver = Receiver::start(&rig).await;
    let mut pushed = Vec::new();
    // By an author no stored message names: the webhook stores no name, the poll fills
    // it in.
    for i in 0..6 {
        pushed.push(post_as(&rig, 6401, &poster(), &format!("both ways {i}")));
    }
    // Half arrive before the poll, half after it.
    for message in &pushed[..3] {
        receiver
            .deliver(&event("message_created", 6401, message))
            .await;
    }
    let job = rig.messages_sync(Some(6401)).await;
    assert_eq!(job.status, cwsync::jobs::JobStatus::Completed);
    for message in &pushed[3..] {
        assert_eq!(
            receiver
                .deliver(&event("message_created", 6401, message))
                .await,
            "unchanged"
        );
    }
    rig.holds_everything_of(6401).await;
    let keys: i64 =
        sqlx::query_scalar("SELECT count(DISTINCT message_id) FROM messages WHERE room_id = 6401")
            .fetch_one(rig.pool())
            .await
            .unwrap();
    assert_eq!(keys, message_count(&rig).await);
    assert_eq!(keys, 9);
    let unnamed: i64 =
        sqlx::query_scalar("SELECT count(*) FROM messages WHERE account_name IS NULL")
            .fetch_one(rig.pool())
            .await
            .unwrap();
    assert_eq!(
        unnamed, 0,
        "the poll named the authors the webhooks could not"
    );
}

#[tokio::test]
async fn an_event_for_a_room_nobody_registered_is_acknowledged_and_stored_nowhere() {
    let rig = SyncRig::new(Backend::Embedded, vec![room_with_history(6501, 2)]).await;
    let receiver = Receiver::start(&rig).await;
    count_metrics();
    let unknown = || {
        counter(
            "webhook_events",
            &[("event", "message_created"), ("outcome", "room_unknown")],
        )
    };
    let before = unknown();
    // Nothing is registered yet: no check has run. A made-up room neither.
    let message = post(&rig, 6501, "hello from a new room");
    for room_id in [6501, 999_999_999_001] {
        assert_eq!(
            receiver
                .deliver(&event("message_created", room_id, &message))
                .await,
            "room_unknown"
        );
    }
    assert_eq!(message_count(&rig).await, 0);
    let rooms: i64 = sqlx::query_scalar("SELECT count(*) FROM chatwork_rooms")
        .fetch_one(rig.pool())
        .await
        .unwrap();
    assert_eq!(rooms, 0, "a webhook registers no room");
    assert!(unknown() >= before + 2);
    // The check registers the room; the message arrives with its fetch.
    rig.check(0).await;
    rig.holds_everything_of(6501).await;
}

#[tokio::test]
async fn a_token_that_names_its_rooms_speaks_for_those_only() {
    let rooms = vec![room_with_history(6551, 1), room_with_history(6552, 1)];
    let rig = SyncRig::new(Backend::Embedded, rooms).await;
    rig.check(0).await;
    let receiver = Receiver::start_with(&rig, &[&format!("{TOKEN}@6551+1")]).await;
    count_metrics();
    let not_served = || {
        counter(
            "webhook_events",
            &[("event", "message_created"), ("outcome", "room_not_served")],
        )
    };
    let before = (message_count(&rig).await, not_served());
    let other = post(&rig, 6552, "forged into another room");
    assert_eq!(
        receiver
            .deliver(&event("message_created", 6552, &other))
            .await,
        "room_not_served"
    );
    assert_eq!(message_count(&rig).await, before.0);
    assert!(not_served() > before.1);
    let own = post(&rig, 6551, "in its own room");
    assert_eq!(
        receiver
            .deliver(&event("message_created", 6551, &own))
            .await,
        "stored"
    );
    assert_eq!(message_count(&rig).await, before.0 + 1);
}

#[tokio::test]
async fn a_future_time_is_refused_and_a_fetch_replaces_what_a_webhook_claimed() {
    let rig = SyncRig::new(Backend::Embedded, vec![room_with_history(6581, 2)]).await;
    rig.check(0).await;
    let receiver = Receiver::start(&rig).await;
    let genuine = newest(&rig, 6581);
    let now = chrono::Utc::now().timestamp();

    // Far in the future: refused, as Chatwork cannot have sent it.
    let mut pinned = genuine.clone();
    pinned.body = "forged forever".into();
    pinned.update_time = 253_402_300_799;
    assert_eq!(
        receiver
            .deliver(&event("message_updated", 6581, &pinned))
            .await,
        "ignored"
    );
    assert_eq!(
        rows_of(&rig, 6581, &genuine.message_id).await[0].0,
        genuine.body
    );

    // Within the clocks' skew: stored, until a fetch says otherwise.
    let mut forged = genuine.clone();
    forged.body = "forged for a while".into();
    forged.update_time = now + 120;
    assert_eq!(
        receiver
            .deliver(&event("message_updated", 6581, &forged))
            .await,
        "updated"
    );
    assert_eq!(
        rows_of(&rig, 6581, &genuine.message_id).await[0].0,
        "forged for a while"
    );
    let job = rig.messages_sync(Some(6581)).await;
    assert_eq!(job.status, cwsync::jobs::JobStatus::Completed);
    let rows = rows_of(&rig, 6581, &genuine.message_id).await;
    assert_eq!(
        rows,
        [(
            genuine.body.clone(),
            genuine.update_time,
            Some("佐藤 健一".into())
        )],
        "Chatwork's fetch is the truth"
    );
    let from_webhook: Option<chrono::DateTime<chrono::Utc>> = sqlx::query_scalar(
        "SELECT webhook_stored_at FROM messages WHERE room_id = 6581 AND message_id = $1",
    )
    .bind(&genuine.message_id)
    .fetch_one(rig.pool())
    .await
    .unwrap();
    assert_eq!(from_webhook, None);
}

#[tokio::test]
async fn no_signature_is_refused_before_the_body_arrives() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rig = SyncRig::new(Backend::Embedded, vec![]).await;
    let receiver = Receiver::start(&rig).await;
    let host = receiver.address.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&host).await.unwrap();
    // A head promising 1 MiB, and not a byte of it.
    let head = format!(
        "POST /webhooks/chatwork HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\ncontent-length: 1048576\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read_to_end(&mut answer),
    )
    .await;
    assert!(read.is_ok(), "no answer while the body is awaited");
    let answer = String::from_utf8_lossy(&answer).to_lowercase();
    assert!(answer.starts_with("http/1.1 401 "), "{answer}");
    assert!(answer.contains("connection: close"), "{answer}");
}

#[tokio::test]
async fn signed_bodies_cwsync_cannot_use_are_acknowledged_and_store_nothing() {
    let rig = SyncRig::new(Backend::Embedded, vec![room_with_history(6601, 1)]).await;
    rig.check(0).await;
    let receiver = Receiver::start(&rig).await;
    let before = message_count(&rig).await;
    let message = newest(&rig, 6601);
    let mut bad_id = event("message_created", 6601, &message);
    bad_id["webhook_event"]["message_id"] = "not-an-id".into();
    let mut bad_time = event("message_created", 6601, &message);
    bad_time["webhook_event"]["send_time"] = (-5).into();
    for body in [
        b"{not json".to_vec(),
        b"[]".to_vec(),
        serde_json::to_vec(
            &json!({"webhook_setting_id": "1", "webhook_event_type": "room_renamed",
                                   "webhook_event_time": 1, "webhook_event": {}}),
        )
        .unwrap(),
        serde_json::to_vec(&bad_id).unwrap(),
        serde_json::to_vec(&bad_time).unwrap(),
    ] {
        let (status, answer) = receiver.post(&body, Signed::Header(TOKEN)).await;
        assert_eq!(
            (status, answer["outcome"].as_str()),
            (200, Some("ignored")),
            "{answer}"
        );
    }
    assert_eq!(message_count(&rig).await, before);

    // A long message (over the API's 64 KiB for JSON bodies) is within the webhook's
    // own limit.
    let long = post(&rig, 6601, &"長い".repeat(20_000));
    assert_eq!(
        receiver
            .deliver(&event("message_created", 6601, &long))
            .await,
        "stored"
    );
    assert_eq!(message_count(&rig).await, before + 1);

    // Too large: a 413 before the signature is even looked at.
    let huge = vec![b' '; cwsync::webhook::MAX_WEBHOOK_BODY_BYTES + 1];
    let (status, answer) = receiver.post(&huge, Signed::Header(TOKEN)).await;
    assert_eq!(status, 413, "{answer}");
    assert_eq!(answer["error"]["code"], "payload_too_large");

    // A room deactivated in cwsync stores nothing.
    sqlx::query("UPDATE chatwork_rooms SET is_active = false WHERE room_id = 6601")
        .execute(rig.pool())
        .await
        .unwrap();
    let message = post(&rig, 6601, "while inactive");
    assert_eq!(
        receiver
            .deliver(&event("message_created", 6601, &message))
            .await,
        "room_inactive"
    );
    assert_eq!(message_count(&rig).await, before + 1);
}

#[tokio::test]
async fn a_webhook_message_lands_on_the_rooms_company() {
    let rig = SyncRig::new(Backend::Embedded, vec![room_with_history(6701, 1)]).await;
    rig.check(0).await;
    let company: uuid::Uuid =
        sqlx::query_scalar("INSERT INTO companies (name) VALUES ('Webhook Co') RETURNING id")
            .fetch_one(rig.pool())
            .await
            .unwrap();
    sqlx::query(
        "INSERT INTO company_room_links (company_id, chatwork_room_id)
         SELECT $1, id FROM chatwork_rooms WHERE room_id = 6701",
    )
    .bind(company)
    .execute(rig.pool())
    .await
    .unwrap();
    let receiver = Receiver::start(&rig).await;
    let message = post(&rig, 6701, "for the company");
    receiver
        .deliver(&event("message_created", 6701, &message))
        .await;
    let stored = rig.stored(6701).await;
    let row = stored
        .iter()
        .find(|(id, ..)| *id == message.message_id)
        .unwrap();
    assert_eq!(row.2, Some(company));
}
