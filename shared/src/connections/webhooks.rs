//! The webhook tokens of the connections (`chatwork_connection_webhooks`): an account's
//! webhooks are signed with tokens Chatwork shows its holder, and a delivery signed with
//! one is believed only for the rooms that account is a member of (its connection's
//! rooms, not refused). The API's key source combines them with the configured tokens
//! (`CHATWORK_WEBHOOK_TOKENS`), reading them again at most every [`REFRESH`] and after a
//! signature fails (at most every [`RELOAD_EVERY`]).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use sqlx::PgPool;
use tokio::time::Instant;
use uuid::Uuid;

use super::cipher::{TokenCipher, place};
use crate::chatwork::token_hash;
use crate::webhook::{WebhookKeySource, WebhookKeys};

/// How long the keys read from the database are used before they are read again.
pub const REFRESH: Duration = Duration::from_secs(60);
/// The least time between two reads caused by a signature that failed.
pub const RELOAD_EVERY: Duration = Duration::from_secs(10);
/// Chatwork lets an account create this many webhooks.
pub const MAX_PER_CONNECTION: i64 = 5;

/// Why a webhook token was not added.
#[derive(Debug, thiserror::Error)]
pub enum AddError {
    #[error("the token is not base64 (Chatwork shows webhook tokens in base64)")]
    NotBase64,
    #[error("the connection has its {MAX_PER_CONNECTION} webhook tokens already")]
    Full,
    #[error("this token is already added")]
    Duplicate,
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    #[error(transparent)]
    Cipher(#[from] super::CipherError),
}

/// Adds a webhook token to a connection, sealed; its id.
pub async fn add(
    pool: &PgPool,
    cipher: &TokenCipher,
    connection: Uuid,
    token: &SecretString,
    created_by: &str,
) -> Result<Uuid, AddError> {
    use base64::Engine as _;
    let raw = token.expose_secret().trim();
    if raw.is_empty()
        || base64::engine::general_purpose::STANDARD
            .decode(raw)
            .is_err()
    {
        return Err(AddError::NotBase64);
    }
    let id = Uuid::new_v4();
    let sealed = cipher
        .seal(&place(&id, "webhook_token"), raw.as_bytes())
        .await?;
    let hash = token_hash(&SecretString::from(raw.to_owned()));
    let added = sqlx::query_scalar!(
        r#"INSERT INTO chatwork_connection_webhooks
               (id, connection_id, token, key_id, wrapped_key, token_hash, created_by)
           SELECT $1, $2, $3, $4, $5, $6, $7
            WHERE (SELECT count(*) FROM chatwork_connection_webhooks WHERE connection_id = $2) < $8
           ON CONFLICT (token_hash) DO NOTHING
           RETURNING id"#,
        id,
        connection,
        sealed.bytes,
        sealed.key_id,
        sealed.wrapped_key,
        &hash[..],
        created_by,
        MAX_PER_CONNECTION,
    )
    .fetch_optional(pool)
    .await?;
    match added {
        Some(id) => Ok(id),
        None => {
            let exists = sqlx::query_scalar!(
                r#"SELECT count(*) AS "n!" FROM chatwork_connection_webhooks WHERE token_hash = $1"#,
                &hash[..]
            )
            .fetch_one(pool)
            .await?;
            Err(if exists > 0 {
                AddError::Duplicate
            } else {
                AddError::Full
            })
        }
    }
}

/// The keys of every active connection's webhooks, each for that connection's rooms.
pub async fn keys(pool: &PgPool, cipher: &TokenCipher) -> Result<WebhookKeys, sqlx::Error> {
    let rows = sqlx::query!(
        r#"SELECT w.id, w.token, w.key_id, w.wrapped_key,
                  array(SELECT m.room_id FROM chatwork_room_connections m
                         WHERE m.connection_id = w.connection_id AND m.refused_at IS NULL
                         ORDER BY m.room_id) AS "rooms!"
             FROM chatwork_connection_webhooks w
             JOIN chatwork_connections c ON c.id = w.connection_id
            WHERE c.status = 'active'"#
    )
    .fetch_all(pool)
    .await?;
    let mut tokens = Vec::with_capacity(rows.len());
    for row in rows {
        if row.rooms.is_empty() {
            // An account in no room yet: its webhooks vouch for nothing.
            continue;
        }
        let opened = cipher
            .open(
                &place(&row.id, "webhook_token"),
                &row.token,
                &row.key_id,
                row.wrapped_key.as_deref(),
            )
            .await;
        let Ok(token) = opened else {
            tracing::warn!(webhook = %row.id, "a connection's webhook token cannot be opened; it is skipped");
            continue;
        };
        let rooms: Vec<String> = row.rooms.iter().map(i64::to_string).collect();
        tokens.push(SecretString::from(format!(
            "{}@{}",
            token.expose_secret(),
            rooms.join("+")
        )));
    }
    // Stored tokens were checked when added: none is refused here.
    Ok(WebhookKeys::from_tokens(&tokens).unwrap_or_default())
}

/// The API's webhook keys: the configured ones and the connections'.
pub struct ConnectionWebhookKeys {
    fixed: Arc<dyn WebhookKeySource>,
    pool: PgPool,
    cipher: TokenCipher,
    cached: tokio::sync::Mutex<Option<(Instant, WebhookKeys)>>,
}

impl ConnectionWebhookKeys {
    pub fn new(fixed: Arc<dyn WebhookKeySource>, pool: PgPool, cipher: TokenCipher) -> Self {
        Self {
            fixed,
            pool,
            cipher,
            cached: tokio::sync::Mutex::new(None),
        }
    }

    /// The connections' keys, read again when older than `max_age`.
    async fn stored(&self, max_age: Duration) -> Option<WebhookKeys> {
        let mut cached = self.cached.lock().await;
        if let Some((at, keys)) = cached.as_ref()
            && at.elapsed() < max_age
        {
            return Some(keys.clone());
        }
        match keys(&self.pool, &self.cipher).await {
            Ok(keys) => {
                *cached = Some((Instant::now(), keys.clone()));
                Some(keys)
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not read the connections' webhook tokens");
                cached.as_ref().map(|(_, keys)| keys.clone())
            }
        }
    }
}

#[async_trait]
impl WebhookKeySource for ConnectionWebhookKeys {
    async fn keys(&self) -> WebhookKeys {
        let fixed = self.fixed.keys().await;
        match self.stored(REFRESH).await {
            Some(stored) => fixed.merged(stored),
            None => fixed,
        }
    }

    async fn forget(&self) {
        *self.cached.lock().await = None;
    }

    async fn reload(&self) -> Option<WebhookKeys> {
        let fixed = self.fixed.reload().await;
        let stored = {
            let fresh_enough = self
                .cached
                .lock()
                .await
                .as_ref()
                .is_some_and(|(at, _)| at.elapsed() < RELOAD_EVERY);
            if fresh_enough {
                None
            } else {
                self.stored(RELOAD_EVERY).await
            }
        };
        match (fixed, stored) {
            (None, None) => None,
            (fixed, stored) => {
                let fixed = match fixed {
                    Some(keys) => keys,
                    None => self.fixed.keys().await,
                };
                let stored = match stored {
                    Some(keys) => keys,
                    None => self.stored(REFRESH).await.unwrap_or_default(),
                };
                Some(fixed.merged(stored))
            }
        }
    }
}
