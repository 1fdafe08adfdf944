//! Webhooks: the fake pushes Chatwork's webhook events for the messages it adds or edits,
//! signed as Chatwork signs them, so that a receiver can be tested against the real
//! protocol.
//!
//! What Chatwork does, and so the fake (developer.chatwork.com, "Webhook"):
//! - An HTTP `POST` of a JSON object `{webhook_setting_id, webhook_event_type,
//!   webhook_event_time, webhook_event}` with `Content-Type: application/json` and a
//!   `User-Agent` of `ChatWork-Webhook/<version>`.
//! - A webhook is about one room (`message_created`, `message_updated`) or about its
//!   account (`mention_to_me`). An account has at most [`MAX_WEBHOOKS_PER_ACCOUNT`], and
//!   hears only of the rooms it is a member of.
//! - The signature: the webhook's token is base64; its decoded bytes are the HMAC-SHA256
//!   key over the body as sent; the digest, base64, travels in the
//!   `X-ChatWorkWebhookSignature` header and, URL-encoded, in the
//!   `chatwork_webhook_signature` query parameter.
//! - A failed delivery is never sent again, and a webhook that keeps failing is disabled
//!   until a person enables it again. Chatwork does not say after how many failures; the
//!   fake disables it after [`WEBHOOK_FAILURE_LIMIT`] failures in a row. A delivery
//!   succeeds when the answer is a 200 with a body of at most [`MAX_ANSWER_BYTES`].
//!
//! Deliveries leave in the background: one task per webhook, fed by a channel, so each
//! webhook's events arrive in the order they happened while a slow receiver holds up
//! only its own webhook. The fake's state is never locked across a request.
//!
//! What tests add: lose deliveries on purpose (never sent, as a delivery lost on the way
//! would be), read the log of every delivery, and wait until nothing is pending.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Mutex, Weak};
use std::time::{Duration, Instant, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, KeyInit as _, Mac as _};
use serde::Serialize;
use sha2::Sha256;
use tokio::sync::{mpsc, watch};

use crate::clock::now_secs;
use crate::model::Message;

/// Chatwork's limit of webhooks per account.
pub const MAX_WEBHOOKS_PER_ACCOUNT: usize = 5;

/// Failed deliveries in a row after which the fake disables a webhook. Chatwork disables
/// a webhook that fails "too often" without a number; ten in a row is enough that one
/// restart of a receiver does not cost its webhook, and few enough that a test can reach
/// it quickly.
pub const WEBHOOK_FAILURE_LIMIT: u32 = 10;

/// How long the fake waits for a receiver's answer before it counts the delivery as
/// failed (changed with [`FakeChatwork::set_webhook_timeout`]).
///
/// [`FakeChatwork::set_webhook_timeout`]: crate::FakeChatwork::set_webhook_timeout
pub const DEFAULT_DELIVERY_TIMEOUT: Duration = Duration::from_secs(5);

/// The largest answer body Chatwork accepts from a receiver.
pub const MAX_ANSWER_BYTES: usize = 2048;

/// The `User-Agent` of the fake's deliveries (Chatwork's: `ChatWork-Webhook/<version>`).
pub const USER_AGENT: &str = "ChatWork-Webhook/1.0.0";

/// What a webhook is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookScope {
    /// Every message posted (`message_created`) or edited (`message_updated`) in a room.
    Room(i64),
    /// Every message that mentions the account (`[To:{account_id}]` in its body), posted
    /// or edited, by anyone else (`mention_to_me`).
    Mentions(i64),
}

/// A webhook to register: where it delivers, its token, what it is about and whose it
/// is (the account its [`MAX_WEBHOOKS_PER_ACCOUNT`] counts against).
#[derive(Clone, PartialEq, Eq)]
pub struct Webhook {
    /// The full URL to POST to, e.g. `http://127.0.0.1:3000/webhooks/chatwork`.
    pub url: String,
    /// Base64, as Chatwork issues it ([`webhook_token`] makes one).
    pub token: String,
    pub scope: WebhookScope,
    /// The account the webhook belongs to.
    pub owner: i64,
}

impl Webhook {
    /// The account that owns room webhooks unless told otherwise: the demo data's owner,
    /// the account the fake's token stands for
    /// ([`FakeChatwork::DEFAULT_ACCOUNT_ID`](crate::FakeChatwork::DEFAULT_ACCOUNT_ID)).
    pub const DEFAULT_OWNER: i64 = crate::state::DEFAULT_ACCOUNT_ID;

    /// A webhook for one room's message events, owned by [`Self::DEFAULT_OWNER`].
    pub fn room(url: impl Into<String>, token: impl Into<String>, room_id: i64) -> Self {
        Self {
            url: url.into(),
            token: token.into(),
            scope: WebhookScope::Room(room_id),
            owner: Self::DEFAULT_OWNER,
        }
    }

    /// A webhook for the mentions of `account_id`, owned by that account.
    pub fn mentions(url: impl Into<String>, token: impl Into<String>, account_id: i64) -> Self {
        Self {
            url: url.into(),
            token: token.into(),
            scope: WebhookScope::Mentions(account_id),
            owner: account_id,
        }
    }

    /// The same webhook owned by another account.
    pub fn owned_by(mut self, account_id: i64) -> Self {
        self.owner = account_id;
        self
    }
}

impl fmt::Debug for Webhook {
    // The token is a secret: never printed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Webhook")
            .field("url", &self.url)
            .field("token", &"<redacted>")
            .field("scope", &self.scope)
            .field("owner", &self.owner)
            .finish()
    }
}

/// A fresh random webhook token: 32 random bytes in base64, the shape of Chatwork's.
pub fn webhook_token() -> String {
    let mut bytes = [0u8; 32];
    bytes.iter_mut().for_each(|b| *b = fastrand::u8(..));
    BASE64.encode(bytes)
}

/// Why a webhook could not be registered or changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebhookError {
    /// The owner already has [`MAX_WEBHOOKS_PER_ACCOUNT`] webhooks (disabled ones count).
    TooMany { account_id: i64 },
    /// The token is not base64 (or is empty).
    InvalidToken,
    /// The URL is not an absolute `http` or `https` URL.
    InvalidUrl(String),
    /// The owner is not an account of the fake
    /// ([`FakeChatwork::add_account`](crate::FakeChatwork::add_account) first).
    UnknownAccount { account_id: i64 },
}

impl fmt::Display for WebhookError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooMany { account_id } => write!(
                f,
                "account {account_id} already has {MAX_WEBHOOKS_PER_ACCOUNT} webhooks (Chatwork's limit)"
            ),
            Self::InvalidToken => f.write_str("the webhook token is not base64"),
            Self::InvalidUrl(url) => write!(f, "not an http(s) URL: {url}"),
            Self::UnknownAccount { account_id } => {
                write!(f, "account {account_id} is not an account of the fake")
            }
        }
    }
}

impl std::error::Error for WebhookError {}

/// Chatwork's event types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WebhookEventType {
    MessageCreated,
    MessageUpdated,
    MentionToMe,
}

impl WebhookEventType {
    /// The `webhook_event_type` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MessageCreated => "message_created",
            Self::MessageUpdated => "message_updated",
            Self::MentionToMe => "mention_to_me",
        }
    }
}

/// A registered webhook as it stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookInfo {
    /// Its `webhook_setting_id`.
    pub id: String,
    pub url: String,
    pub scope: WebhookScope,
    pub owner: i64,
    pub enabled: bool,
    /// Disabled by the fake after [`WEBHOOK_FAILURE_LIMIT`] failures in a row (not by a
    /// test).
    pub disabled_by_failures: bool,
    pub consecutive_failures: u32,
}

/// How one delivery ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryOutcome {
    /// Sent and answered. A success only when the status is 200 and the body at most
    /// [`MAX_ANSWER_BYTES`] (see [`DeliveryRecord::succeeded`]).
    Answered { status: u16, body_bytes: usize },
    /// Sent, no answer: refused, reset, or no answer within the timeout.
    Failed(String),
    /// Lost on purpose ([`FakeChatwork::lose_next_deliveries`],
    /// [`FakeChatwork::set_delivery_loss`]): never sent.
    ///
    /// [`FakeChatwork::lose_next_deliveries`]: crate::FakeChatwork::lose_next_deliveries
    /// [`FakeChatwork::set_delivery_loss`]: crate::FakeChatwork::set_delivery_loss
    Lost,
    /// Not sent: the webhook was disabled or removed before its turn came.
    Dropped,
}

/// One delivery (or a lost or dropped one), as the fake's log keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryRecord {
    /// The order in which the events happened, across webhooks.
    pub seq: u64,
    pub webhook_setting_id: String,
    pub event_type: WebhookEventType,
    pub room_id: i64,
    pub message_id: String,
    /// When the event happened (the post or the edit).
    pub event_time: SystemTime,
    /// When the request left (`None`: never sent).
    pub sent_at: Option<SystemTime>,
    /// From the request leaving to its answer or failure.
    pub latency: Option<Duration>,
    pub outcome: DeliveryOutcome,
}

impl DeliveryRecord {
    /// Whether Chatwork would count it as delivered: a 200 with a small enough body.
    pub fn succeeded(&self) -> bool {
        matches!(
            self.outcome,
            DeliveryOutcome::Answered { status: 200, body_bytes } if body_bytes <= MAX_ANSWER_BYTES
        )
    }
}

/// A delivery waiting in its webhook's queue: the body is made when the event happens,
/// so it carries the message as it was then.
#[derive(Debug)]
pub(crate) struct Delivery {
    seq: u64,
    hook: u64,
    setting_id: String,
    url: String,
    /// The token's decoded bytes: the HMAC key.
    key: Vec<u8>,
    body: Vec<u8>,
    event_type: WebhookEventType,
    room_id: i64,
    message_id: String,
    event_time: SystemTime,
}

struct Registered {
    spec: Webhook,
    key: Vec<u8>,
    enabled: bool,
    disabled_by_failures: bool,
    consecutive_failures: u32,
    /// `None` once the fake shuts down (its task then finishes what is queued).
    queue: Option<mpsc::UnboundedSender<Delivery>>,
}

/// Every webhook of a fake, the loss the test asked for, and the delivery log. Lives in
/// the fake's state, under its lock.
pub(crate) struct Webhooks {
    hooks: BTreeMap<u64, Registered>,
    last_id: u64,
    next_seq: u64,
    lose_next: u32,
    loss_share: f64,
    rng: fastrand::Rng,
    timeout: Duration,
    pub log: Vec<DeliveryRecord>,
    /// Deliveries queued and not yet logged.
    pending: watch::Sender<usize>,
}

#[derive(Serialize)]
struct Envelope<'a, E: Serialize> {
    webhook_setting_id: &'a str,
    webhook_event_type: &'static str,
    webhook_event_time: i64,
    webhook_event: E,
}

#[derive(Serialize)]
struct MessageEvent<'a> {
    message_id: &'a str,
    room_id: i64,
    account_id: i64,
    body: &'a str,
    send_time: i64,
    update_time: i64,
}

#[derive(Serialize)]
struct MentionEvent<'a> {
    from_account_id: i64,
    to_account_id: i64,
    room_id: i64,
    message_id: &'a str,
    body: &'a str,
    send_time: i64,
    update_time: i64,
}

fn mentions(body: &str, account_id: i64) -> bool {
    body.contains(&format!("[To:{account_id}]"))
}

impl Webhooks {
    pub fn new(seed: u64) -> Self {
        Self {
            hooks: BTreeMap::new(),
            // Chatwork's setting ids are numbers in strings; these look alike.
            last_id: 7000,
            next_seq: 0,
            lose_next: 0,
            loss_share: 0.0,
            rng: fastrand::Rng::with_seed(seed ^ 0x5eed_0f40),
            timeout: DEFAULT_DELIVERY_TIMEOUT,
            log: Vec::new(),
            pending: watch::channel(0).0,
        }
    }

    /// Registers a webhook; its deliveries come out of the returned queue.
    pub fn add(
        &mut self,
        spec: Webhook,
    ) -> Result<(String, mpsc::UnboundedReceiver<Delivery>), WebhookError> {
        let key = BASE64
            .decode(spec.token.trim())
            .ok()
            .filter(|k| !k.is_empty())
            .ok_or(WebhookError::InvalidToken)?;
        let url_ok = ["http://", "https://"]
            .iter()
            .any(|p| spec.url.starts_with(p) && spec.url.len() > p.len());
        if !url_ok {
            return Err(WebhookError::InvalidUrl(spec.url));
        }
        let owned = self
            .hooks
            .values()
            .filter(|h| h.spec.owner == spec.owner)
            .count();
        if owned >= MAX_WEBHOOKS_PER_ACCOUNT {
            return Err(WebhookError::TooMany {
                account_id: spec.owner,
            });
        }
        self.last_id += 1;
        let (queue, deliveries) = mpsc::unbounded_channel();
        self.hooks.insert(
            self.last_id,
            Registered {
                spec,
                key,
                enabled: true,
                disabled_by_failures: false,
                consecutive_failures: 0,
                queue: Some(queue),
            },
        );
        Ok((self.last_id.to_string(), deliveries))
    }

    fn find(&mut self, id: &str) -> Option<&mut Registered> {
        self.hooks.get_mut(&id.parse().ok()?)
    }

    pub fn remove(&mut self, id: &str) -> bool {
        id.parse()
            .ok()
            .and_then(|n| self.hooks.remove(&n))
            .is_some()
    }

    pub fn set_enabled(&mut self, id: &str, enabled: bool) -> bool {
        let Some(hook) = self.find(id) else {
            return false;
        };
        hook.enabled = enabled;
        hook.disabled_by_failures = false;
        hook.consecutive_failures = 0;
        true
    }

    pub fn list(&self) -> Vec<WebhookInfo> {
        self.hooks
            .iter()
            .map(|(id, h)| WebhookInfo {
                id: id.to_string(),
                url: h.spec.url.clone(),
                scope: h.spec.scope,
                owner: h.spec.owner,
                enabled: h.enabled,
                disabled_by_failures: h.disabled_by_failures,
                consecutive_failures: h.consecutive_failures,
            })
            .collect()
    }

    pub fn lose_next(&mut self, n: u32) {
        self.lose_next = self.lose_next.saturating_add(n);
    }

    pub fn set_loss_share(&mut self, share: f64) {
        self.loss_share = share.clamp(0.0, 1.0);
    }

    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    pub fn pending(&self) -> watch::Receiver<usize> {
        self.pending.subscribe()
    }

    /// Stops taking events: every webhook's task sends what is queued, then ends.
    pub fn close(&mut self) {
        self.hooks.values_mut().for_each(|h| h.queue = None);
    }

    /// Queues the events a message that was just posted (`edited`: edited) causes, for
    /// the webhooks whose owner `is_member` of the room (an account hears only of the
    /// rooms it is in).
    pub fn message_event(
        &mut self,
        room_id: i64,
        message: &Message,
        edited: bool,
        is_member: impl Fn(i64) -> bool,
    ) {
        if self.hooks.is_empty() {
            return;
        }
        let now = SystemTime::now();
        let event_secs = now_secs();
        let mut queued = Vec::new();
        for (&hook, registered) in &self.hooks {
            if !registered.enabled
                || registered.queue.is_none()
                || !is_member(registered.spec.owner)
            {
                continue;
            }
            let setting_id = hook.to_string();
            let (event_type, webhook_event) = match registered.spec.scope {
                WebhookScope::Room(id) if id == room_id => {
                    let event_type = if edited {
                        WebhookEventType::MessageUpdated
                    } else {
                        WebhookEventType::MessageCreated
                    };
                    (
                        event_type,
                        serde_json::to_value(MessageEvent {
                            message_id: &message.message_id,
                            room_id,
                            account_id: message.account.account_id,
                            body: &message.body,
                            send_time: message.send_time,
                            update_time: message.update_time,
                        }),
                    )
                }
                WebhookScope::Mentions(to)
                    if to != message.account.account_id && mentions(&message.body, to) =>
                {
                    (
                        WebhookEventType::MentionToMe,
                        serde_json::to_value(MentionEvent {
                            from_account_id: message.account.account_id,
                            to_account_id: to,
                            room_id,
                            message_id: &message.message_id,
                            body: &message.body,
                            send_time: message.send_time,
                            update_time: message.update_time,
                        }),
                    )
                }
                _ => continue,
            };
            let body = serde_json::to_vec(&Envelope {
                webhook_setting_id: &setting_id,
                webhook_event_type: event_type.as_str(),
                webhook_event_time: event_secs,
                webhook_event: webhook_event.expect("plain fields serialize"),
            })
            .expect("plain fields serialize");
            queued.push(Delivery {
                seq: 0,
                hook,
                setting_id,
                url: registered.spec.url.clone(),
                key: registered.key.clone(),
                body,
                event_type,
                room_id,
                message_id: message.message_id.clone(),
                event_time: now,
            });
        }
        for mut delivery in queued {
            delivery.seq = self.next_seq;
            self.next_seq += 1;
            let lost = if self.lose_next > 0 {
                self.lose_next -= 1;
                true
            } else {
                self.loss_share > 0.0 && self.rng.f64() < self.loss_share
            };
            if lost {
                self.log
                    .push(record(&delivery, None, None, DeliveryOutcome::Lost));
                continue;
            }
            let queue = self
                .hooks
                .get(&delivery.hook)
                .and_then(|h| h.queue.as_ref());
            if let Some(queue) = queue {
                self.pending.send_modify(|n| *n += 1);
                if let Err(mpsc::error::SendError(delivery)) = queue.send(delivery) {
                    // The task is gone (the runtime is shutting down).
                    self.pending.send_modify(|n| *n -= 1);
                    self.log
                        .push(record(&delivery, None, None, DeliveryOutcome::Dropped));
                }
            }
        }
    }

    /// Whether a queued delivery may still be sent, and with what timeout.
    fn may_send(&self, hook: u64) -> Option<Duration> {
        self.hooks
            .get(&hook)
            .filter(|h| h.enabled)
            .map(|_| self.timeout)
    }

    /// Logs how a delivery ended and counts its webhook's failures.
    fn finish(&mut self, delivery: &Delivery, done: DeliveryRecord) {
        let succeeded = done.succeeded();
        let sent = done.sent_at.is_some();
        self.log.push(done);
        if sent && let Some(hook) = self.hooks.get_mut(&delivery.hook) {
            if succeeded {
                hook.consecutive_failures = 0;
            } else {
                hook.consecutive_failures += 1;
                if hook.consecutive_failures >= WEBHOOK_FAILURE_LIMIT {
                    hook.enabled = false;
                    hook.disabled_by_failures = true;
                }
            }
        }
        self.pending.send_modify(|n| *n = n.saturating_sub(1));
    }
}

fn record(
    delivery: &Delivery,
    sent_at: Option<SystemTime>,
    latency: Option<Duration>,
    outcome: DeliveryOutcome,
) -> DeliveryRecord {
    DeliveryRecord {
        seq: delivery.seq,
        webhook_setting_id: delivery.setting_id.clone(),
        event_type: delivery.event_type,
        room_id: delivery.room_id,
        message_id: delivery.message_id.clone(),
        event_time: delivery.event_time,
        sent_at,
        latency,
        outcome,
    }
}

/// The signature Chatwork sends: base64 of HMAC-SHA256 keyed with the token's bytes.
pub(crate) fn sign(key: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(body);
    BASE64.encode(mac.finalize().into_bytes())
}

fn lock<S>(state: &Mutex<S>) -> std::sync::MutexGuard<'_, S> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

/// One webhook's deliveries, in order, until the fake closes its queue. Holds the fake's
/// state weakly: a fake that is dropped is not kept alive by its webhooks. `webhooks`
/// picks the [`Webhooks`] out of that state, so that this module needs nothing else of
/// it (the state holds the webhooks, not the other way round).
pub(crate) async fn deliver<S>(
    state: Weak<Mutex<S>>,
    webhooks: fn(&mut S) -> &mut Webhooks,
    client: reqwest::Client,
    mut queue: mpsc::UnboundedReceiver<Delivery>,
) {
    while let Some(delivery) = queue.recv().await {
        let Some(shared) = state.upgrade() else {
            return;
        };
        let timeout = webhooks(&mut lock(&shared)).may_send(delivery.hook);
        let Some(timeout) = timeout else {
            let dropped = record(&delivery, None, None, DeliveryOutcome::Dropped);
            webhooks(&mut lock(&shared)).finish(&delivery, dropped);
            continue;
        };
        // Not kept across the request: the fake can go away meanwhile.
        drop(shared);
        let signature = sign(&delivery.key, &delivery.body);
        let sent_at = SystemTime::now();
        let started = Instant::now();
        let request = client
            .post(&delivery.url)
            .query(&[("chatwork_webhook_signature", signature.as_str())])
            .header("Content-Type", "application/json")
            .header("User-Agent", USER_AGENT)
            .header("X-ChatWorkWebhookSignature", &signature)
            .body(delivery.body.clone())
            .timeout(timeout)
            .send();
        let outcome = match request.await {
            Ok(response) => {
                let status = response.status().as_u16();
                match response.bytes().await {
                    Ok(body) => DeliveryOutcome::Answered {
                        status,
                        body_bytes: body.len(),
                    },
                    Err(e) => DeliveryOutcome::Failed(format!("reading the answer: {e}")),
                }
            }
            Err(e) if e.is_timeout() => {
                DeliveryOutcome::Failed(format!("no answer within {timeout:?}"))
            }
            Err(e) => DeliveryOutcome::Failed(error_chain(&e)),
        };
        let done = record(&delivery, Some(sent_at), Some(started.elapsed()), outcome);
        let Some(shared) = state.upgrade() else {
            return;
        };
        webhooks(&mut lock(&shared)).finish(&delivery, done);
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_matches_a_known_vector() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        let digest = sign(b"Jefe", b"what do ya want for nothing?");
        let hex: String = BASE64
            .decode(digest)
            .unwrap()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            hex,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn tokens_are_random_base64_of_32_bytes() {
        let (a, b) = (webhook_token(), webhook_token());
        assert_ne!(a, b);
        assert_eq!(BASE64.decode(&a).unwrap().len(), 32);
    }

    #[test]
    fn the_limit_is_five_per_account_and_bad_tokens_and_urls_are_refused() {
        let mut hooks = Webhooks::new(1);
        let url = "http://127.0.0.1:9/webhooks/chatwork";
        for room in 0..5 {
            hooks
                .add(Webhook::room(url, webhook_token(), room))
                .unwrap();
        }
        let sixth = hooks.add(Webhook::room(url, webhook_token(), 6));
        assert_eq!(
            sixth.unwrap_err(),
            WebhookError::TooMany {
                account_id: Webhook::DEFAULT_OWNER
            }
        );
        // Another account has its own five.
        hooks
            .add(Webhook::mentions(url, webhook_token(), 42))
            .unwrap();
        assert_eq!(
            hooks
                .add(Webhook::room(url, "not base64!", 1).owned_by(43))
                .unwrap_err(),
            WebhookError::InvalidToken
        );
        assert!(matches!(
            hooks.add(Webhook::room("ftp://x", webhook_token(), 1).owned_by(43)),
            Err(WebhookError::InvalidUrl(_))
        ));
        // A removed webhook frees its place.
        let first = hooks.list()[0].id.clone();
        assert!(hooks.remove(&first));
        hooks.add(Webhook::room(url, webhook_token(), 6)).unwrap();
    }

    #[test]
    fn a_webhooks_debug_hides_its_token() {
        let token = webhook_token();
        let text = format!("{:?}", Webhook::room("http://h/x", token.clone(), 1));
        assert!(!text.contains(&token));
    }
}
