//! The fake's webhooks as a receiver sees them: a tiny HTTP server on a loopback port
//! records every request, and the tests check the signature themselves (their own
//! HMAC-SHA256 over the raw body, keyed with the token's decoded bytes), in both the
//! header and the query parameter.

use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::routing::post;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use fake_chatwork::{
    Account, DeliveryOutcome, FakeAccount, FakeChatwork, FakeSettings, MAX_ANSWER_BYTES, Room,
    RoomType, WEBHOOK_FAILURE_LIMIT, Webhook, WebhookError, WebhookEventType, webhook_token,
};
use hmac::{Hmac, KeyInit as _, Mac as _};
use serde_json::Value;
use sha2::Sha256;

const ROOM: i64 = 6_000_001;
const OTHER_ROOM: i64 = 6_000_002;

/// One request the receiver got, as it arrived.
#[derive(Debug, Clone)]
struct Received {
    headers: HeaderMap,
    /// The raw query string, still URL-encoded.
    query: Option<String>,
    body: Bytes,
}

impl Received {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }

    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_else(|| panic!("header {name}"))
    }

    /// The `chatwork_webhook_signature` parameter, decoded.
    fn query_signature(&self) -> String {
        let query = self.query.as_deref().expect("a query string");
        let raw = query
            .split('&')
            .find_map(|pair| pair.strip_prefix("chatwork_webhook_signature="))
            .expect("the signature parameter");
        percent_decode(raw)
    }
}

fn percent_decode(raw: &str) -> String {
    let bytes = raw.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
            out.push(u8::from_str_radix(hex, 16).unwrap());
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

/// The signature a receiver expects, computed here without the fake's code.
fn expected_signature(token: &str, body: &[u8]) -> String {
    let key = BASE64.decode(token).unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(body);
    BASE64.encode(mac.finalize().into_bytes())
}

/// A receiver: records every request and answers with `status` and a body of
/// `answer_bytes` bytes.
#[derive(Clone, Default)]
struct Receiver {
    received: Arc<Mutex<Vec<Received>>>,
    status: Arc<AtomicU16>,
    answer_bytes: Arc<AtomicUsize>,
}

impl Receiver {
    async fn start() -> (Self, String) {
        let receiver = Self::default();
        receiver.answer(200);
        let app = Router::new()
            .route("/webhooks/chatwork", post(receive))
            .with_state(receiver.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "http://{}/webhooks/chatwork",
            listener.local_addr().unwrap()
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
        (receiver, url)
    }

    fn answer(&self, status: u16) {
        self.status.store(status, Ordering::SeqCst);
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

async fn receive(
    State(receiver): State<Receiver>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    receiver.received.lock().unwrap().push(Received {
        headers,
        query: uri.query().map(str::to_owned),
        body,
    });
    let status = StatusCode::from_u16(receiver.status.load(Ordering::SeqCst)).unwrap();
    (
        status,
        "x".repeat(receiver.answer_bytes.load(Ordering::SeqCst)),
    )
}

async fn fake() -> FakeChatwork {
    let rooms = vec![
        Room::new(ROOM, "watched", RoomType::Group),
        Room::new(OTHER_ROOM, "not watched", RoomType::Group),
    ];
    FakeChatwork::start(FakeSettings::default().with_rooms(rooms)).await
}

fn alice() -> Account {
    Account::new(1_001_002, "Alice")
}

/// Alice as an account of the fake (a member of `rooms`).
fn alice_account(fake: &FakeChatwork, rooms: &[i64]) {
    fake.add_account(
        FakeAccount {
            account_id: 1_001_002,
            name: "Alice".into(),
            organization_id: 1,
            organization_name: "Org".into(),
        },
        None,
        rooms,
    );
}

fn bob() -> Account {
    Account::new(1_001_003, "Bob")
}

#[tokio::test]
async fn posts_and_edits_arrive_in_order_signed_in_the_header_and_the_query() {
    let fake = fake().await;
    let (receiver, url) = Receiver::start().await;
    let token = webhook_token();
    let id = fake
        .add_webhook(Webhook::room(url, token.clone(), ROOM))
        .unwrap();

    let first = fake
        .post_message(ROOM, &alice(), "おはようございます")
        .unwrap();
    let second = fake.post_message(ROOM, &bob(), "hello \"quoted\"").unwrap();
    fake.post_message(OTHER_ROOM, &bob(), "not watched")
        .unwrap();
    assert!(fake.edit_message(ROOM, &first, "おはようございます (edited)"));
    fake.wait_for_deliveries().await;

    let received = receiver.received();
    assert_eq!(
        received.len(),
        3,
        "two posts and an edit of the watched room"
    );
    for request in &received {
        let expected = expected_signature(&token, &request.body);
        assert_eq!(request.header("x-chatworkwebhooksignature"), expected);
        assert_eq!(request.query_signature(), expected);
        // URL-encoded: base64's `+`, `/` and `=` never appear raw in the query.
        let raw = request.query.as_deref().unwrap();
        let value = raw.split_once('=').unwrap().1;
        assert!(!value.contains(['+', '/', '=']), "{raw}");
        assert_eq!(request.header("content-type"), "application/json");
        assert!(
            request
                .header("user-agent")
                .starts_with("ChatWork-Webhook/")
        );
        // A wrong token or a changed body would not verify.
        assert_ne!(
            expected_signature(&webhook_token(), &request.body),
            expected
        );
        let mut changed = request.body.to_vec();
        changed[10] ^= 1;
        assert_ne!(expected_signature(&token, &changed), expected);
    }

    let events: Vec<Value> = received.iter().map(Received::json).collect();
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["webhook_event_type"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["message_created", "message_created", "message_updated"]
    );
    for event in &events {
        assert_eq!(event["webhook_setting_id"], id.as_str());
        assert!(event["webhook_event_time"].as_i64().unwrap() > 0);
        assert_eq!(event["webhook_event"]["room_id"], ROOM);
    }
    let created = &events[0]["webhook_event"];
    assert_eq!(created["message_id"], first.as_str(), "a string");
    assert_eq!(created["account_id"], 1_001_002);
    assert_eq!(created["body"], "おはようございます");
    assert_eq!(created["update_time"], 0);
    assert!(created["send_time"].as_i64().unwrap() > 0);
    assert_eq!(events[1]["webhook_event"]["message_id"], second.as_str());
    assert_eq!(events[1]["webhook_event"]["body"], "hello \"quoted\"");
    let updated = &events[2]["webhook_event"];
    assert_eq!(updated["message_id"], first.as_str());
    assert_eq!(updated["body"], "おはようございます (edited)");
    assert!(updated["update_time"].as_i64().unwrap() > created["send_time"].as_i64().unwrap());
    assert_eq!(
        events[2]["webhook_event"].as_object().unwrap().len(),
        6,
        "message_id, room_id, account_id, body, send_time, update_time"
    );

    let log = fake.deliveries();
    assert_eq!(log.len(), 3);
    assert!(log.iter().all(|d| d.succeeded() && d.latency.is_some()));
    assert_eq!(log[2].event_type, WebhookEventType::MessageUpdated);
    assert_eq!(log[0].message_id, first);
}

#[tokio::test]
async fn many_posts_arrive_in_the_order_they_were_made() {
    let fake = fake().await;
    let (receiver, url) = Receiver::start().await;
    fake.add_webhook(Webhook::room(url, webhook_token(), ROOM))
        .unwrap();
    let posted: Vec<String> = (0..60)
        .map(|i| fake.post_message(ROOM, &alice(), &format!("{i}")).unwrap())
        .collect();
    fake.wait_for_deliveries().await;
    let arrived: Vec<String> = receiver
        .received()
        .iter()
        .map(|r| {
            r.json()["webhook_event"]["message_id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(arrived, posted);
}

#[tokio::test]
async fn mentions_of_an_account_arrive_as_mention_to_me() {
    let fake = fake().await;
    let (receiver, url) = Receiver::start().await;
    let token = webhook_token();
    // Alice is in the other room only: a mention in a room she is not in is not hers to
    // hear of.
    alice_account(&fake, &[OTHER_ROOM]);
    fake.add_webhook(Webhook::mentions(url, token.clone(), 1_001_002))
        .unwrap();

    fake.post_message(OTHER_ROOM, &bob(), "no mention here")
        .unwrap();
    fake.post_message(ROOM, &bob(), "[To:1001002]Alice さん\nこちらは見えません")
        .unwrap();
    fake.post_message(OTHER_ROOM, &alice(), "[To:1001002] a note to myself")
        .unwrap();
    let mention = fake
        .post_message(
            OTHER_ROOM,
            &bob(),
            "[To:1001002]Alice さん\n確認お願いします",
        )
        .unwrap();
    fake.wait_for_deliveries().await;

    let received = receiver.received();
    assert_eq!(received.len(), 1);
    assert_eq!(
        received[0].header("x-chatworkwebhooksignature"),
        expected_signature(&token, &received[0].body)
    );
    let event = received[0].json();
    assert_eq!(event["webhook_event_type"], "mention_to_me");
    let body = &event["webhook_event"];
    assert_eq!(body["from_account_id"], 1_001_003);
    assert_eq!(body["to_account_id"], 1_001_002);
    assert_eq!(body["room_id"], OTHER_ROOM);
    assert_eq!(body["message_id"], mention.as_str());
    assert_eq!(body["update_time"], 0);
}

#[tokio::test]
async fn lost_deliveries_are_never_sent() {
    let fake = fake().await;
    let (receiver, url) = Receiver::start().await;
    fake.add_webhook(Webhook::room(url, webhook_token(), ROOM))
        .unwrap();
    fake.lose_next_deliveries(2);
    let ids: Vec<String> = (0..4)
        .map(|i| fake.post_message(ROOM, &alice(), &format!("{i}")).unwrap())
        .collect();
    fake.wait_for_deliveries().await;

    let arrived: Vec<String> = receiver
        .received()
        .iter()
        .map(|r| {
            r.json()["webhook_event"]["message_id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(arrived, ids[2..]);
    let mut log = fake.deliveries();
    log.sort_by_key(|d| d.seq);
    assert_eq!(log.len(), 4);
    for lost in &log[..2] {
        assert_eq!(lost.outcome, DeliveryOutcome::Lost);
        assert!(lost.sent_at.is_none() && !lost.succeeded());
    }
    assert!(log[2..].iter().all(|d| d.succeeded()));

    // A share of them, drawn from the seed: all lost at 1.
    fake.set_delivery_loss(1.0);
    fake.post_message(ROOM, &alice(), "lost").unwrap();
    fake.wait_for_deliveries().await;
    assert_eq!(receiver.received().len(), 2);
}

#[tokio::test]
async fn repeated_failures_disable_a_webhook_and_nothing_is_sent_again() {
    let fake = fake().await;
    let (receiver, url) = Receiver::start().await;
    receiver.answer(500);
    let id = fake
        .add_webhook(Webhook::room(url, webhook_token(), ROOM))
        .unwrap();
    for i in 0..WEBHOOK_FAILURE_LIMIT {
        fake.post_message(ROOM, &alice(), &format!("{i}")).unwrap();
    }
    fake.wait_for_deliveries().await;
    // Each failure was sent once, never again.
    assert_eq!(receiver.received().len(), WEBHOOK_FAILURE_LIMIT as usize);
    let info = &fake.webhooks()[0];
    assert!(!info.enabled && info.disabled_by_failures);
    assert!(fake.deliveries().iter().all(|d| !d.succeeded()
        && d.outcome
            == DeliveryOutcome::Answered {
                status: 500,
                body_bytes: 0
            }));

    fake.post_message(ROOM, &alice(), "while disabled").unwrap();
    fake.wait_for_deliveries().await;
    assert_eq!(receiver.received().len(), WEBHOOK_FAILURE_LIMIT as usize);

    // A person enables it again.
    receiver.answer(200);
    assert!(fake.enable_webhook(&id));
    fake.post_message(ROOM, &alice(), "after").unwrap();
    fake.wait_for_deliveries().await;
    assert_eq!(
        receiver.received().len(),
        WEBHOOK_FAILURE_LIMIT as usize + 1
    );
    assert_eq!(fake.webhooks()[0].consecutive_failures, 0);
}

#[tokio::test]
async fn an_oversized_answer_or_an_absent_receiver_is_a_failure() {
    let fake = fake().await;
    let (receiver, url) = Receiver::start().await;
    receiver
        .answer_bytes
        .store(MAX_ANSWER_BYTES + 1, Ordering::SeqCst);
    fake.add_webhook(Webhook::room(url, webhook_token(), ROOM))
        .unwrap();
    // Nothing listens on the port of a listener that was bound and dropped.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let nowhere = format!("http://{}/webhooks/chatwork", closed.local_addr().unwrap());
    drop(closed);
    fake.add_webhook(Webhook::room(nowhere, webhook_token(), ROOM))
        .unwrap();
    fake.post_message(ROOM, &alice(), "x").unwrap();
    fake.wait_for_deliveries().await;

    let log = fake.deliveries();
    assert_eq!(log.len(), 2);
    assert!(log.iter().all(|d| !d.succeeded()));
    assert!(log.iter().any(|d| matches!(
        d.outcome,
        DeliveryOutcome::Answered { status: 200, body_bytes } if body_bytes > MAX_ANSWER_BYTES
    )));
    assert!(
        log.iter()
            .any(|d| matches!(d.outcome, DeliveryOutcome::Failed(_)))
    );
    assert!(
        fake.webhooks()
            .iter()
            .all(|w| w.consecutive_failures == 1 && w.enabled)
    );
}

#[tokio::test]
async fn disabled_and_removed_webhooks_get_nothing_and_five_is_the_limit() {
    let fake = fake().await;
    let (receiver, url) = Receiver::start().await;
    let id = fake
        .add_webhook(Webhook::room(url.clone(), webhook_token(), ROOM))
        .unwrap();
    assert!(fake.disable_webhook(&id));
    fake.post_message(ROOM, &alice(), "while disabled").unwrap();
    fake.wait_for_deliveries().await;
    assert!(receiver.received().is_empty());
    assert!(!fake.webhooks()[0].disabled_by_failures);

    assert!(fake.enable_webhook(&id));
    fake.post_message(ROOM, &alice(), "enabled").unwrap();
    fake.wait_for_deliveries().await;
    assert_eq!(receiver.received().len(), 1);

    for room in 1..5 {
        fake.add_webhook(Webhook::room(url.clone(), webhook_token(), room))
            .unwrap();
    }
    let sixth = fake.add_webhook(Webhook::room(url.clone(), webhook_token(), OTHER_ROOM));
    assert!(sixth.unwrap_err().to_string().contains("5 webhooks"));

    assert!(fake.remove_webhook(&id));
    assert!(!fake.remove_webhook(&id));
    assert_eq!(fake.webhooks().len(), 4);
    fake.post_message(ROOM, &alice(), "after removal").unwrap();
    fake.wait_for_deliveries().await;
    assert_eq!(receiver.received().len(), 1);
    // Its place is free again.
    fake.add_webhook(Webhook::room(url, webhook_token(), OTHER_ROOM))
        .unwrap();
}

#[tokio::test]
async fn traffic_playback_is_delivered_with_its_edits() {
    use fake_chatwork::{TrafficEvent, TrafficPlan, TrafficSettings};
    let settings = TrafficSettings {
        rooms: 4,
        first_room_id: 9_101,
        duration: Duration::from_secs(300),
        bot_every: Duration::from_secs(10),
        burst_messages: 10,
        burst_within: Duration::from_secs(30),
        edit_share: 0.3,
        ..TrafficSettings::default()
    };
    let plan = TrafficPlan::organization(&settings);
    let rooms = plan
        .profiles
        .iter()
        .map(|p| Room::new(p.room_id, format!("room {}", p.room_id), RoomType::Group))
        .collect();
    let fake = FakeChatwork::start(FakeSettings::default().with_rooms(rooms)).await;
    let (receiver, url) = Receiver::start().await;
    let bot = settings.first_room_id;
    fake.add_webhook(Webhook::room(url, webhook_token(), bot))
        .unwrap();
    let record = fake.play(plan.clone(), 3000.0).await.unwrap();
    fake.wait_for_deliveries().await;

    let posted: Vec<&str> = record
        .posted
        .iter()
        .filter(|p| p.room_id == bot)
        .map(|p| p.message_id.as_str())
        .collect();
    let edits = plan
        .events
        .iter()
        .filter(|e| matches!(e.event, TrafficEvent::Edit { room_id, .. } if room_id == bot))
        .count();
    let received: Vec<Value> = receiver.received().iter().map(Received::json).collect();
    let created: Vec<&str> = received
        .iter()
        .filter(|e| e["webhook_event_type"] == "message_created")
        .map(|e| e["webhook_event"]["message_id"].as_str().unwrap())
        .collect();
    assert_eq!(created, posted);
    let updated = received
        .iter()
        .filter(|e| e["webhook_event_type"] == "message_updated")
        .count();
    assert_eq!(updated, edits);
    assert!(edits > 0, "the plan edits some of the bot's posts");
}

#[tokio::test]
async fn a_webhook_belongs_to_an_account_and_hears_only_of_its_rooms() {
    let fake = fake().await;
    let (receiver, url) = Receiver::start().await;
    // An owner the fake does not know is refused.
    assert_eq!(
        fake.add_webhook(Webhook::room(url.clone(), webhook_token(), ROOM).owned_by(1_001_002))
            .unwrap_err(),
        WebhookError::UnknownAccount {
            account_id: 1_001_002
        }
    );
    alice_account(&fake, &[OTHER_ROOM]);
    // Alice's webhook for a room she is not in: nothing arrives until she joins it.
    let id = fake
        .add_webhook(Webhook::room(url.clone(), webhook_token(), ROOM).owned_by(1_001_002))
        .unwrap();
    fake.post_message(ROOM, &bob(), "before Alice joins")
        .unwrap();
    fake.wait_for_deliveries().await;
    assert!(receiver.received().is_empty());
    assert!(fake.set_member(1_001_002, ROOM, true));
    let after = fake
        .post_message(ROOM, &bob(), "after Alice joined")
        .unwrap();
    fake.wait_for_deliveries().await;
    let received = receiver.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].json()["webhook_setting_id"], id.as_str());
    assert_eq!(
        received[0].json()["webhook_event"]["message_id"],
        after.as_str()
    );
    // She leaves it: silence again. The default account's webhook still hears.
    fake.set_member(1_001_002, ROOM, false);
    fake.add_webhook(Webhook::room(url, webhook_token(), ROOM))
        .unwrap();
    fake.post_message(ROOM, &bob(), "after Alice left").unwrap();
    fake.wait_for_deliveries().await;
    let received = receiver.received();
    assert_eq!(received.len(), 2);
    assert_ne!(received[1].json()["webhook_setting_id"], id.as_str());
}
