//! `POST /webhooks/chatwork`: Chatwork's webhook deliveries (see [`crate::webhook`]).
//!
//! No JWT: the signature over the raw body is the authentication. What the route answers,
//! and why:
//!
//! - No signature at all: 401 JSON before the body is read (the server then closes the
//!   connection), so an unsigned upload costs nothing.
//! - A wrong signature: 401 JSON, nothing stored, a `webhook_rejected` metric and a
//!   warning log without the body.
//! - A body over [`MAX_WEBHOOK_BODY_BYTES`]: 413 JSON; one that does not arrive within
//!   the server's body deadline: 408. At most [`BODIES_READ_AT_ONCE`] bodies are read at
//!   once; more wait, so slow uploads hold a bounded amount of memory.
//! - A signed event for a room its token does not name, or a room cwsync does not know:
//!   200 `room_not_served` / `room_unknown`, stored nowhere, logged and counted (see
//!   docs/architecture.md, "Webhooks").
//! - A signed body cwsync cannot use (not JSON, an event type it does not store, fields
//!   out of range): 200, logged and counted. Chatwork disables a webhook that fails too
//!   often, and sending the same body again would not change the answer.
//! - A signed message event: stored before the answer (Lambda does no work after its
//!   response), then 200 with a tiny JSON body saying what happened.
//! - Storing failed (the database is down): logged as an error and counted, and still a
//!   200: Chatwork never re-sends, so an error answer would only bring the webhook closer
//!   to being disabled, while the room check repairs the miss (the room's counts do not
//!   move, so the next check fetches it).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Json;
use axum::body::{Bytes, to_bytes};
use axum::extract::{Request, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::ErrorBody;
use super::{ApiError, AppState, ErrorCode};
use crate::webhook::{
    self, ChatworkWebhook, Ignored, MAX_WEBHOOK_BODY_BYTES, PushedEvent, SIGNATURE_HEADER,
    SIGNATURE_QUERY, Serves, Stored,
};

/// How many webhook bodies are read at once, process-wide; a delivery beyond waits for
/// one to finish. Chatwork's deliveries are a few KiB and arrive whole, so only slow or
/// hostile uploads ever wait; the memory they hold is bounded by this times 1 MiB.
pub const BODIES_READ_AT_ONCE: usize = 16;

static READING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(BODIES_READ_AT_ONCE);

/// The log target of the line each delivery writes. The local runner turns it off and
/// prints [`take_tally`]'s summary instead (a delivery every few seconds would drown its
/// job view); `RUST_LOG=debug` shows the lines again.
pub const DELIVERY_LOG_TARGET: &str = "cwsync::webhook::delivery";

/// Deliveries by what became of them, counted process-wide since the last [`take_tally`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DeliveryTally {
    /// A message stored, updated or already on file.
    pub stored: u64,
    /// Signed, but nothing to store: an event cwsync does not keep, or a room it does not
    /// serve (unknown, deactivated, or not named by the token that signed).
    pub ignored: u64,
    /// Refused: the signature was missing or did not verify.
    pub refused: u64,
    /// Signed and storable, but the database failed (the next room check repairs it).
    pub failed: u64,
}

impl DeliveryTally {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// Counts of deliveries by outcome, taken (and started again) at once.
#[derive(Debug, Default)]
struct Counts([AtomicU64; 4]);

const STORED: usize = 0;
const IGNORED: usize = 1;
const REFUSED: usize = 2;
const FAILED: usize = 3;

impl Counts {
    const fn new() -> Self {
        Self([const { AtomicU64::new(0) }; 4])
    }

    fn add(&self, which: usize, n: u64) {
        self.0[which].fetch_add(n, Ordering::Relaxed);
    }

    fn take(&self) -> DeliveryTally {
        let take = |which: usize| self.0[which].swap(0, Ordering::Relaxed);
        DeliveryTally {
            stored: take(STORED),
            ignored: take(IGNORED),
            refused: take(REFUSED),
            failed: take(FAILED),
        }
    }

    fn put_back(&self, tally: DeliveryTally) {
        self.add(STORED, tally.stored);
        self.add(IGNORED, tally.ignored);
        self.add(REFUSED, tally.refused);
        self.add(FAILED, tally.failed);
    }
}

/// The process's deliveries since the last [`take_tally`] (the local runner's summary).
static TALLY: Counts = Counts::new();

/// The deliveries counted since the last call, which starts the count again.
pub fn take_tally() -> DeliveryTally {
    TALLY.take()
}

/// How often at most an API's delivery counts are added to `activity_minutes` (the
/// status page's history), unless set otherwise.
pub const HISTORY_FLUSH_EVERY: Duration = Duration::from_secs(5);

/// The delivery counts an API has not yet added to `activity_minutes`. A delivery adds
/// them when the last addition is [`every`](Self::every) old or more, so deliveries cost
/// at most one write per that time per process, refusals included (a flood of forged
/// deliveries is one row update every few seconds). Counts a process holds when it stops
/// are lost; counts added late land in the minute they are added in.
#[derive(Debug)]
pub struct WebhookHistory {
    pending: Counts,
    last_flush: std::sync::Mutex<Option<std::time::Instant>>,
    every: Duration,
}

impl WebhookHistory {
    pub fn new(every: Duration) -> Self {
        Self {
            pending: Counts::new(),
            last_flush: std::sync::Mutex::new(None),
            every,
        }
    }

    /// Counts one delivery, and adds the pending counts to the history when it is time.
    async fn note(&self, pool: &sqlx::PgPool, which: usize) {
        TALLY.add(which, 1);
        self.pending.add(which, 1);
        let due = {
            let mut last = self.last_flush.lock().unwrap_or_else(|e| e.into_inner());
            match *last {
                Some(at) if at.elapsed() < self.every => false,
                _ => {
                    *last = Some(std::time::Instant::now());
                    true
                }
            }
        };
        if due {
            self.flush(pool).await;
        }
    }

    /// Adds the pending counts to the current minute's row.
    async fn flush(&self, pool: &sqlx::PgPool) {
        let tally = self.pending.take();
        if tally.is_empty() {
            return;
        }
        let n = |v: u64| i32::try_from(v).unwrap_or(i32::MAX);
        let added = sqlx::query!(
            r#"INSERT INTO activity_minutes AS a
                      (minute, webhook_stored, webhook_ignored, webhook_refused, webhook_failed)
               VALUES (date_trunc('minute', now()), $1, $2, $3, $4)
               ON CONFLICT (minute) DO UPDATE
                  SET webhook_stored = a.webhook_stored + EXCLUDED.webhook_stored,
                      webhook_ignored = a.webhook_ignored + EXCLUDED.webhook_ignored,
                      webhook_refused = a.webhook_refused + EXCLUDED.webhook_refused,
                      webhook_failed = a.webhook_failed + EXCLUDED.webhook_failed"#,
            n(tally.stored),
            n(tally.ignored),
            n(tally.refused),
            n(tally.failed),
        )
        .execute(pool)
        .await;
        if let Err(e) = added {
            // Kept for the next addition; the history is a picture, not a ledger.
            self.pending.put_back(tally);
            tracing::warn!(error = %e, "webhook counts not added to the history; kept for the next try");
        }
    }
}

impl Default for WebhookHistory {
    fn default() -> Self {
        Self::new(HISTORY_FLUSH_EVERY)
    }
}

/// What the route did with a delivery.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, strum::IntoStaticStr,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum WebhookOutcome {
    /// A new message was stored.
    Stored,
    /// A newer version of a stored message was stored.
    Updated,
    /// Nothing newer than what is stored (a duplicate or an older version).
    Unchanged,
    /// The room is deactivated in cwsync; nothing stored.
    RoomInactive,
    /// The token that signed names other rooms; nothing stored.
    RoomNotServed,
    /// No room of this id is registered in cwsync; nothing stored.
    RoomUnknown,
    /// Signed, but not an event cwsync stores (logged and counted).
    Ignored,
    /// The database failed; logged. The next room check fetches the room.
    NotStored,
}

/// The answer to a delivery (Chatwork wants at most 2,048 bytes).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WebhookAck {
    pub outcome: WebhookOutcome,
}

/// Receives a Chatwork webhook delivery: verifies its signature and stores its message.
#[utoipa::path(
    post, path = "/webhooks/chatwork", operation_id = "receiveChatworkWebhook",
    tag = "webhooks",
    security(()),
    params(
        ("X-ChatWorkWebhookSignature" = Option<String>, Header,
         description = "base64(HMAC-SHA256(key = the base64-decoded webhook token, the raw body))"),
        ("chatwork_webhook_signature" = Option<String>, Query,
         description = "The same signature, URL-encoded (used when the header is absent)"),
    ),
    request_body(content = ChatworkWebhook, content_type = "application/json"),
    responses(
        (status = 200, description = "Verified and stored, or acknowledged and ignored", body = WebhookAck),
        (status = 401, description = "The signature is missing or does not verify under any configured token; nothing stored", body = ErrorBody),
        (status = 408, description = "The body did not arrive within the server's body deadline", body = ErrorBody),
        (status = 413, description = "The body is larger than 1 MiB", body = ErrorBody),
        (status = 500, description = "Unexpected failure", body = ErrorBody),
    )
)]
pub(crate) async fn chatwork(
    State(state): State<AppState>,
    request: Request,
) -> Result<Json<WebhookAck>, ApiError> {
    let header_signature = request
        .headers()
        .get(SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let signature = header_signature.or_else(|| query_signature(request.uri().query()));
    let history = &state.webhook_history;
    let Some(signature) = signature else {
        history.note(&state.pool, REFUSED).await;
        return Err(rejected("missing", 0));
    };
    let body = read_body(request).await?;
    let Some(serves) = verified(&state, &body, &signature).await else {
        history.note(&state.pool, REFUSED).await;
        return Err(rejected("invalid", body.len()));
    };
    let now = chrono::Utc::now().timestamp();
    let event = match PushedEvent::parse(&body, now) {
        Ok(event) => event,
        Err(ignored) => {
            let reason: &'static str = (&ignored).into();
            let detail = match &ignored {
                Ignored::UnknownEvent(name) => name.as_str(),
                Ignored::InvalidEvent(why) => why,
                Ignored::Malformed => "",
            };
            history.note(&state.pool, IGNORED).await;
            tracing::warn!(
                target: DELIVERY_LOG_TARGET,
                reason,
                detail,
                bytes = body.len(),
                "webhook acknowledged, not stored"
            );
            metrics::counter!("webhook_events", "event" => "unknown", "outcome" => "ignored")
                .increment(1);
            return Ok(Json(WebhookAck {
                outcome: WebhookOutcome::Ignored,
            }));
        }
    };
    let kind: &'static str = event.kind.into();
    let message = &event.message;
    let stored = if serves.room(message.room_id) {
        webhook::store(&state.pool, message).await
    } else {
        Ok(Stored::NotServed)
    };
    let outcome = match stored {
        Ok(Stored::Inserted) => WebhookOutcome::Stored,
        Ok(Stored::Updated) => WebhookOutcome::Updated,
        Ok(Stored::Unchanged) => WebhookOutcome::Unchanged,
        Ok(Stored::RoomInactive) => WebhookOutcome::RoomInactive,
        Ok(Stored::NotServed) => WebhookOutcome::RoomNotServed,
        Ok(Stored::RoomUnknown) => WebhookOutcome::RoomUnknown,
        Err(e) => {
            tracing::error!(
                error = %e, event = kind, room_id = message.room_id,
                message_id = %message.message_id,
                "webhook message not stored; the next room check fetches the room"
            );
            WebhookOutcome::NotStored
        }
    };
    let outcome_name = outcome_name(outcome);
    let counted = match outcome {
        WebhookOutcome::Stored | WebhookOutcome::Updated | WebhookOutcome::Unchanged => STORED,
        WebhookOutcome::NotStored => FAILED,
        _ => IGNORED,
    };
    history.note(&state.pool, counted).await;
    metrics::counter!("webhook_events", "event" => kind, "outcome" => outcome_name).increment(1);
    if matches!(
        outcome,
        WebhookOutcome::RoomNotServed | WebhookOutcome::RoomUnknown
    ) {
        tracing::warn!(
            target: DELIVERY_LOG_TARGET,
            event = kind,
            outcome = outcome_name,
            room_id = message.room_id,
            webhook_setting_id = %event.setting_id,
            "webhook for a room its token may not speak for; acknowledged, not stored"
        );
        return Ok(Json(WebhookAck { outcome }));
    }
    tracing::debug!(
        target: DELIVERY_LOG_TARGET,
        event = kind,
        outcome = outcome_name,
        room_id = message.room_id,
        message_id = %message.message_id,
        webhook_setting_id = %event.setting_id,
        "webhook"
    );
    Ok(Json(WebhookAck { outcome }))
}

fn outcome_name(outcome: WebhookOutcome) -> &'static str {
    outcome.into()
}

/// The signature in the query string, URL-decoded. A `+` that arrived unencoded reads as a
/// space in a query; base64 has no spaces, so it is put back.
fn query_signature(query: Option<&str>) -> Option<String> {
    form_urlencoded::parse(query?.as_bytes())
        .find(|(name, _)| name == SIGNATURE_QUERY)
        .map(|(_, value)| value.replace(' ', "+"))
}

/// The body, read once one of [`BODIES_READ_AT_ONCE`] is free: 413 past the limit, 408
/// when the server's body deadline cut it (or the client went away).
async fn read_body(request: Request) -> Result<Bytes, ApiError> {
    let _reading = READING
        .acquire()
        .await
        .expect("the semaphore is never closed");
    to_bytes(request.into_body(), MAX_WEBHOOK_BODY_BYTES)
        .await
        .map_err(|e| {
            let too_large =
                std::iter::successors(Some(&e as &(dyn std::error::Error + 'static)), |e| {
                    e.source()
                })
                .any(|e| e.is::<http_body_util::LengthLimitError>());
            if too_large {
                super::extract::payload_too_large_of(MAX_WEBHOOK_BODY_BYTES)
            } else {
                ApiError::new(
                    StatusCode::REQUEST_TIMEOUT,
                    ErrorCode::RequestTimeout,
                    "The request body did not arrive in time.",
                )
            }
        })
}

/// The rooms `signature` vouches for when it signs `body` under the configured keys,
/// read again once when the source allows (a token rotated since they were read).
async fn verified(state: &AppState, body: &[u8], signature: &str) -> Option<Serves> {
    if let Some(serves) = state.webhooks.keys().await.serves(body, signature) {
        return Some(serves);
    }
    state.webhooks.reload().await?.serves(body, signature)
}

/// The 401 for a delivery whose signature is `reason` (`missing` or `invalid`).
fn rejected(reason: &'static str, bytes: usize) -> ApiError {
    metrics::counter!("webhook_rejected", "reason" => reason).increment(1);
    tracing::warn!(
        target: DELIVERY_LOG_TARGET,
        reason,
        bytes,
        "webhook rejected: its signature is {reason} (nothing stored)"
    );
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        ErrorCode::InvalidSignature,
        "The webhook signature is missing or does not match any configured webhook token.",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_signature_is_url_decoded_and_survives_an_unencoded_plus() {
        assert_eq!(
            query_signature(Some("chatwork_webhook_signature=ab%2Bc%2Fd%3D")).as_deref(),
            Some("ab+c/d=")
        );
        assert_eq!(
            query_signature(Some("x=1&chatwork_webhook_signature=ab+c/d=")).as_deref(),
            Some("ab+c/d=")
        );
        assert_eq!(query_signature(Some("x=1")), None);
        assert_eq!(query_signature(None), None);
    }

    #[test]
    fn every_outcome_has_its_snake_case_name() {
        for outcome in [
            WebhookOutcome::Stored,
            WebhookOutcome::Updated,
            WebhookOutcome::Unchanged,
            WebhookOutcome::RoomInactive,
            WebhookOutcome::RoomNotServed,
            WebhookOutcome::RoomUnknown,
            WebhookOutcome::Ignored,
            WebhookOutcome::NotStored,
        ] {
            assert_eq!(
                serde_json::to_value(outcome).unwrap(),
                serde_json::Value::from(outcome_name(outcome))
            );
        }
    }
}
