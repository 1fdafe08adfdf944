//! Chatwork webhooks: the messages Chatwork pushes as they are posted or edited.
//!
//! Polling cannot keep up with a room that gets more than 100 messages between two
//! checks; a webhook brings each message as it happens. `POST /webhooks/chatwork`
//! (`api::webhook`) verifies the signature ([`signature`]), parses the event
//! ([`PushedEvent::parse`]) and stores it with [`store`]: one statement, through the same
//! unique key (`room_id`, `message_id`) as the polling path, so the same event twice and
//! an update before its create leave one row with the newest `update_time`'s body.
//!
//! A webhook is believed only as far as it can be checked (docs/architecture.md,
//! "Webhooks"): a token vouches only for the rooms it names, a room cwsync does not know
//! stores nothing, times beyond [`MAX_FUTURE_SKEW_SECS`] ahead are refused, and a fetch
//! replaces a body a webhook stored before the fetch was sent (`webhook_stored_at`).
//!
//! What a webhook stores counts for the room check: each message a webhook inserts adds
//! one to the room's `webhook_messages_since_fetch` and moves the `last_update_time` the
//! room counts as synced, so a room whose new messages all came by webhook needs no
//! fetch, and one whose `message_num` grew by more than that (a delivery Chatwork lost;
//! it never re-sends) is fetched by the next check.
//!
//! An event names the author's account but not their name: the message takes the newest
//! name our stored messages give that account; when none does, the name stays NULL and
//! the room asks the next check for a fetch, which fills it in.

mod config;
pub mod signature;

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::Value;
use sqlx::PgPool;
use utoipa::ToSchema;

pub use config::WebhookConfig;
pub use signature::{InvalidToken, SIGNATURE_HEADER, SIGNATURE_QUERY, Serves, WebhookKeys, sign};

/// The path Chatwork posts to.
pub const WEBHOOK_PATH: &str = "/webhooks/chatwork";

/// The largest webhook body accepted (a 413 beyond). Chatwork's own message length limit
/// is far below this even with every character escaped in the JSON.
pub const MAX_WEBHOOK_BODY_BYTES: usize = 1024 * 1024;

/// How far ahead of our clock an event's `send_time` or `update_time` may be (clocks
/// drift); beyond, the event is refused, since a future `update_time` would outrank every
/// later edit.
pub const MAX_FUTURE_SKEW_SECS: i64 = 300;

/// The kinds of event cwsync stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
pub enum EventKind {
    MessageCreated,
    MessageUpdated,
    MentionToMe,
}

/// A message as a webhook event carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushedMessage {
    pub room_id: i64,
    /// Decimal digits, as Chatwork's message ids are.
    pub message_id: String,
    /// The author (`from_account_id` of a mention).
    pub account_id: i64,
    pub body: String,
    /// Epoch seconds.
    pub send_time: i64,
    /// Epoch seconds; 0 when never edited.
    pub update_time: i64,
}

/// A webhook body that carries a message to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushedEvent {
    pub kind: EventKind,
    /// Chatwork's id of the webhook that sent it.
    pub setting_id: String,
    pub message: PushedMessage,
}

/// Why a body with a valid signature is acknowledged without storing anything.
#[derive(Debug, Clone, PartialEq, Eq, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
pub enum Ignored {
    /// Not JSON, or not the envelope Chatwork sends.
    Malformed,
    /// An event type cwsync does not store (the name is kept for the log).
    UnknownEvent(String),
    /// A message event whose fields cannot be stored (an id that is not decimal digits,
    /// a time out of range, ...).
    InvalidEvent(&'static str),
}

/// The envelope every webhook body has: what the route parses, and the request body its
/// OpenAPI document shows (the route reads the raw bytes first, since the signature covers
/// them exactly as sent).
#[derive(Deserialize, ToSchema)]
pub struct ChatworkWebhook {
    /// The webhook's id in Chatwork (a string or a number).
    #[schema(value_type = String, example = "12345")]
    webhook_setting_id: Value,
    /// `message_created`, `message_updated` or `mention_to_me` are stored; other types
    /// are acknowledged and ignored.
    #[schema(example = "message_created")]
    webhook_event_type: String,
    /// Epoch seconds (not used).
    #[allow(dead_code)]
    #[schema(value_type = Option<i64>)]
    webhook_event_time: Option<Value>,
    /// For message events `{message_id, room_id, account_id, body, send_time,
    /// update_time}`; for `mention_to_me` `{from_account_id, to_account_id, room_id,
    /// message_id, body, send_time, update_time}`.
    #[schema(value_type = Object)]
    webhook_event: Value,
}

/// `message_created`, `message_updated`.
#[derive(Deserialize)]
struct MessageFields {
    message_id: Value,
    room_id: i64,
    account_id: i64,
    body: String,
    send_time: i64,
    #[serde(default)]
    update_time: i64,
}

/// `mention_to_me`.
#[derive(Deserialize)]
struct MentionFields {
    message_id: Value,
    room_id: i64,
    from_account_id: i64,
    body: String,
    send_time: i64,
    #[serde(default)]
    update_time: i64,
}

/// The latest time Postgres's `timestamptz` and our API hold: the end of year 9999.
const MAX_EPOCH_SECS: i64 = 253_402_300_799;

/// An id that is a string or a number in the JSON, as text.
fn id_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) if n.is_u64() => Some(n.to_string()),
        _ => None,
    }
}

impl PushedEvent {
    /// The event in `body`, or why it is acknowledged without storing; `now` is our
    /// clock (epoch seconds).
    pub fn parse(body: &[u8], now: i64) -> Result<Self, Ignored> {
        let envelope: ChatworkWebhook =
            serde_json::from_slice(body).map_err(|_| Ignored::Malformed)?;
        let setting_id = id_text(&envelope.webhook_setting_id).unwrap_or_default();
        let kind = match envelope.webhook_event_type.as_str() {
            "message_created" => EventKind::MessageCreated,
            "message_updated" => EventKind::MessageUpdated,
            "mention_to_me" => EventKind::MentionToMe,
            other => {
                let name: String = other.chars().take(64).collect();
                return Err(Ignored::UnknownEvent(name));
            }
        };
        let invalid = |_| Ignored::InvalidEvent("fields missing or of the wrong type");
        let (message_id, message) = match kind {
            EventKind::MessageCreated | EventKind::MessageUpdated => {
                let f: MessageFields =
                    serde_json::from_value(envelope.webhook_event).map_err(invalid)?;
                (
                    f.message_id,
                    PushedMessage {
                        room_id: f.room_id,
                        message_id: String::new(),
                        account_id: f.account_id,
                        body: f.body,
                        send_time: f.send_time,
                        update_time: f.update_time,
                    },
                )
            }
            EventKind::MentionToMe => {
                let f: MentionFields =
                    serde_json::from_value(envelope.webhook_event).map_err(invalid)?;
                (
                    f.message_id,
                    PushedMessage {
                        room_id: f.room_id,
                        message_id: String::new(),
                        account_id: f.from_account_id,
                        body: f.body,
                        send_time: f.send_time,
                        update_time: f.update_time,
                    },
                )
            }
        };
        let message_id = id_text(&message_id)
            .filter(|id| (1..=40).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_digit()))
            .ok_or(Ignored::InvalidEvent(
                "message_id is not a Chatwork message id",
            ))?;
        if message.room_id <= 0 {
            return Err(Ignored::InvalidEvent("room_id is not a Chatwork room id"));
        }
        if !(1..=MAX_EPOCH_SECS).contains(&message.send_time) {
            return Err(Ignored::InvalidEvent("send_time is out of range"));
        }
        if !(0..=MAX_EPOCH_SECS).contains(&message.update_time) {
            return Err(Ignored::InvalidEvent("update_time is out of range"));
        }
        let latest = now.saturating_add(MAX_FUTURE_SKEW_SECS);
        if message.send_time > latest || message.update_time > latest {
            return Err(Ignored::InvalidEvent(
                "send_time or update_time is in the future",
            ));
        }
        let mut message = message;
        let replaced = crate::chatwork::models::replace_nul(&mut message.body);
        if replaced > 0 {
            // The rule of a fetched message, so that either path stores the same text.
            tracing::warn!(
                message_id = %message_id,
                replaced,
                "a webhook's message holds NUL characters, which Postgres cannot store; \
                 each is stored as U+FFFD"
            );
            crate::chatwork::models::count_replaced("webhook", replaced);
        }
        Ok(Self {
            kind,
            setting_id,
            message: PushedMessage {
                message_id,
                ..message
            },
        })
    }
}

/// What storing an event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
pub enum Stored {
    /// A new message row.
    Inserted,
    /// A newer version of a stored message (an edit).
    Updated,
    /// Nothing newer than what is stored: a duplicate, or an older version.
    Unchanged,
    /// The room is deactivated in cwsync: its messages are not synced.
    RoomInactive,
    /// No room of this id is registered: nothing stored (Chatwork's room list, not a
    /// webhook, says which rooms exist).
    RoomUnknown,
    /// The token that signed names other rooms: not stored (the route decides this).
    NotServed,
}

/// Stores `message` as the polling path would (see the module documentation), in a room
/// cwsync already knows. One statement.
pub async fn store(pool: &PgPool, m: &PushedMessage) -> Result<Stored, sqlx::Error> {
    let row = sqlx::query!(
        r#"WITH input AS (
               SELECT $1::int8 AS room_id, $2::text AS message_id, $3::int8 AS account_id,
                      $4::text AS body, to_timestamp($5::int8) AS send_time,
                      CASE WHEN $6::int8 > 0 THEN to_timestamp($6::int8) END AS update_time
           ), author AS (
               -- The newest name our messages give the account.
               SELECT m.account_name, m.account_avatar_url
                 FROM messages m, input i
                WHERE m.account_id = i.account_id AND m.account_name IS NOT NULL
                ORDER BY m.id DESC LIMIT 1
           ), room AS (
               SELECT r.id, r.room_id, r.is_active AND r.left_at IS NULL AS syncable,
                      -- The company when the room is linked to exactly one.
                      (SELECT (array_agg(l.company_id))[1] FROM company_room_links l
                        WHERE l.chatwork_room_id = r.id HAVING count(*) = 1) AS company_id
                 FROM chatwork_rooms r JOIN input i ON i.room_id = r.room_id
           ), written AS (
               INSERT INTO messages AS m (chatwork_room_id, room_id, message_id, account_id,
                                          account_name, account_avatar_url, body, send_time,
                                          update_time, company_id, webhook_stored_at)
               SELECT room.id, room.room_id, i.message_id, i.account_id,
                      (SELECT account_name FROM author), (SELECT account_avatar_url FROM author),
                      i.body, i.send_time, i.update_time, room.company_id, now()
                 FROM room, input i
                WHERE room.syncable
               ON CONFLICT (room_id, message_id) DO UPDATE
                  SET body = EXCLUDED.body, update_time = EXCLUDED.update_time,
                      webhook_stored_at = now()
                WHERE EXCLUDED.update_time > coalesce(m.update_time, '-infinity')
            RETURNING (xmax = 0) AS inserted, m.account_name IS NULL AS unnamed
           ), noted AS (
               -- Runs although nothing reads it: Postgres runs every data-modifying CTE.
               UPDATE chatwork_rooms r
                  SET webhook_messages_since_fetch = r.webhook_messages_since_fetch
                          + CASE WHEN w.inserted THEN 1 ELSE 0 END,
                      -- Chatwork's `last_update_time` moves with each post and edit.
                      synced_last_update_time = greatest(r.synced_last_update_time,
                                                         coalesce(i.update_time, i.send_time)),
                      webhook_message_at = now(),
                      author_names_wanted_since = CASE WHEN w.unnamed
                          THEN coalesce(r.author_names_wanted_since, now())
                          ELSE r.author_names_wanted_since END
                 FROM written w, input i
                WHERE r.id = (SELECT id FROM room)
            RETURNING 1
           )
           SELECT EXISTS (SELECT 1 FROM room) AS "room_found!",
                  (SELECT syncable FROM room) AS syncable,
                  (SELECT inserted FROM written) AS inserted"#,
        m.room_id,
        m.message_id,
        m.account_id,
        m.body,
        m.send_time,
        m.update_time,
    )
    .fetch_one(pool)
    .await?;
    if !row.room_found {
        return Ok(Stored::RoomUnknown);
    }
    Ok(match (row.syncable, row.inserted) {
        (Some(false), _) => Stored::RoomInactive,
        (_, Some(true)) => Stored::Inserted,
        (_, Some(false)) => Stored::Updated,
        (_, None) => Stored::Unchanged,
    })
}

/// Where the API finds the webhook keys. The local runner and tests hold them fixed; in
/// AWS they come from a Secrets Manager secret, read on first use and read again after a
/// signature fails (a token added in Chatwork and to the secret works without a deploy).
#[async_trait]
pub trait WebhookKeySource: Send + Sync {
    /// The keys to verify with.
    async fn keys(&self) -> WebhookKeys;

    /// Newer keys after a signature failed to verify, when the source can and may read
    /// them again now; `None` otherwise.
    async fn reload(&self) -> Option<WebhookKeys> {
        None
    }

    /// The keys changed here (a token added or removed through this process): the next
    /// delivery reads them again.
    async fn forget(&self) {}
}

#[async_trait]
impl WebhookKeySource for WebhookKeys {
    async fn keys(&self) -> WebhookKeys {
        self.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(event_type: &str, event: Value) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "webhook_setting_id": "12345",
            "webhook_event_type": event_type,
            "webhook_event_time": 1_700_000_100,
            "webhook_event": event,
        }))
        .unwrap()
    }

    impl PushedEvent {
        fn parse_now(body: &[u8]) -> Result<Self, Ignored> {
            Self::parse(body, 1_700_000_000)
        }
    }

    #[test]
    fn times_beyond_the_skew_are_refused() {
        let now = 1_700_000_000;
        for (field, at, ok) in [
            ("send_time", now + MAX_FUTURE_SKEW_SECS, true),
            ("send_time", now + MAX_FUTURE_SKEW_SECS + 1, false),
            ("update_time", now + MAX_FUTURE_SKEW_SECS, true),
            ("update_time", MAX_EPOCH_SECS, false),
        ] {
            let mut event = message_event();
            event[field] = at.into();
            let parsed = PushedEvent::parse(&body("message_updated", event), now);
            assert_eq!(parsed.is_ok(), ok, "{field} {at}: {parsed:?}");
        }
    }

    fn message_event() -> Value {
        serde_json::json!({
            "message_id": "1234567890123456789",
            "room_id": 281000101,
            "account_id": 42,
            "body": "[info]hello[/info]",
            "send_time": 1_700_000_000,
            "update_time": 0,
        })
    }

    #[test]
    fn message_events_parse() {
        let created = PushedEvent::parse_now(&body("message_created", message_event())).unwrap();
        assert_eq!(created.kind, EventKind::MessageCreated);
        assert_eq!(created.setting_id, "12345");
        assert_eq!(
            created.message,
            PushedMessage {
                room_id: 281000101,
                message_id: "1234567890123456789".into(),
                account_id: 42,
                body: "[info]hello[/info]".into(),
                send_time: 1_700_000_000,
                update_time: 0,
            }
        );
        let mut edited = message_event();
        edited["update_time"] = 1_700_000_050.into();
        let updated = PushedEvent::parse_now(&body("message_updated", edited)).unwrap();
        assert_eq!(updated.kind, EventKind::MessageUpdated);
        assert_eq!(updated.message.update_time, 1_700_000_050);
    }

    #[test]
    fn a_mention_stores_its_message_with_the_sender_as_author() {
        let event = serde_json::json!({
            "from_account_id": 7, "to_account_id": 8, "room_id": 5,
            "message_id": "99", "body": "[To:8] hi", "send_time": 1_700_000_000,
            "update_time": 0,
        });
        let mention = PushedEvent::parse_now(&body("mention_to_me", event)).unwrap();
        assert_eq!(mention.kind, EventKind::MentionToMe);
        assert_eq!(mention.message.account_id, 7);
        assert_eq!(mention.message.room_id, 5);
    }

    #[test]
    fn what_cannot_be_stored_is_ignored_with_a_reason() {
        assert_eq!(PushedEvent::parse_now(b"not json"), Err(Ignored::Malformed));
        assert_eq!(PushedEvent::parse_now(b"{}"), Err(Ignored::Malformed));
        assert_eq!(
            PushedEvent::parse_now(&body("room_deleted", Value::Null)),
            Err(Ignored::UnknownEvent("room_deleted".into()))
        );
        for (field, value) in [
            ("message_id", Value::from("12a")),
            ("message_id", Value::from("")),
            ("room_id", Value::from(0)),
            ("send_time", Value::from(0)),
            ("send_time", Value::from(MAX_EPOCH_SECS + 1)),
            ("update_time", Value::from(-1)),
            ("account_id", Value::from("x")),
        ] {
            let mut event = message_event();
            event[field] = value;
            assert!(
                matches!(
                    PushedEvent::parse_now(&body("message_created", event)),
                    Err(Ignored::InvalidEvent(_))
                ),
                "{field}"
            );
        }
        // Stored as a fetch would store it, not dropped.
        let mut event = message_event();
        event["body"] = Value::from("a\0b");
        let parsed = PushedEvent::parse_now(&body("message_created", event)).unwrap();
        assert_eq!(parsed.message.body, "a\u{FFFD}b");
    }
}
