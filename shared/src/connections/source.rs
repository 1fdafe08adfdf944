//! A connection's tokens for its Chatwork client: opened from the sealed row only when a
//! request is about to be sent, and an OAuth access token refreshed before it expires,
//! **once** however many callers need it at that moment: callers of one process queue on
//! the connection's lock, and processes on the row's lock (`SELECT ... FOR UPDATE`),
//! each looking again after it got the lock whether another already refreshed. Two
//! refreshes must not race: Chatwork may rotate the refresh token, and the loser's
//! refresh token would be dead.

use std::time::Duration;

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use sqlx::PgPool;
use tokio::time::Instant;
use uuid::Uuid;

use super::cipher::{TokenCipher, place};
use super::oauth::{GrantError, TokenEndpoint};
use super::store::{SealedTokens, seal_tokens};
use crate::chatwork::{ChatworkError, SourcedToken, TokenSource};

/// An access token is refreshed this long before it expires.
pub const REFRESH_AHEAD: Duration = Duration::from_secs(5 * 60);

/// The token source of one stored connection.
pub struct ConnectionSource {
    id: Uuid,
    pool: PgPool,
    cipher: TokenCipher,
    endpoint: Option<TokenEndpoint>,
    cached: tokio::sync::Mutex<Option<Cached>>,
}

struct Cached {
    secret: SecretString,
    bearer: bool,
    expires_at: Option<DateTime<Utc>>,
    refreshed_at: Option<DateTime<Utc>>,
}

/// The row's token columns.
struct Row {
    kind: String,
    status: String,
    access_token: Option<Vec<u8>>,
    refresh_token: Option<Vec<u8>>,
    key_id: Option<String>,
    wrapped_key: Option<Vec<u8>>,
    access_token_expires_at: Option<DateTime<Utc>>,
    refreshed_at: Option<DateTime<Utc>>,
}

impl ConnectionSource {
    pub fn new(
        id: Uuid,
        pool: PgPool,
        cipher: TokenCipher,
        endpoint: Option<TokenEndpoint>,
    ) -> Self {
        Self {
            id,
            pool,
            cipher,
            endpoint,
            cached: tokio::sync::Mutex::new(None),
        }
    }

    fn unusable(&self, message: impl Into<String>) -> ChatworkError {
        ChatworkError::Connection {
            message: message.into(),
        }
    }

    fn db_error(&self, e: sqlx::Error) -> ChatworkError {
        ChatworkError::Budget {
            message: format!("the connection's row could not be read: {e}")
                .chars()
                .take(200)
                .collect(),
        }
    }

    async fn open(
        &self,
        row: &Row,
        field: &str,
        bytes: &[u8],
    ) -> Result<SecretString, ChatworkError> {
        let key_id = row.key_id.as_deref().unwrap_or_default();
        self.cipher
            .open(
                &place(&self.id, field),
                bytes,
                key_id,
                row.wrapped_key.as_deref(),
            )
            .await
            .map_err(|e| self.unusable(format!("its token cannot be opened: {e}")))
    }

    /// Whether `expires_at` is near enough to refresh now.
    fn due(expires_at: Option<DateTime<Utc>>) -> bool {
        match expires_at {
            None => false,
            Some(at) => {
                at - chrono::Duration::from_std(REFRESH_AHEAD).expect("5 minutes") <= Utc::now()
            }
        }
    }

    async fn read(
        &self,
        lock: bool,
    ) -> Result<(Row, Option<sqlx::Transaction<'static, sqlx::Postgres>>), sqlx::Error> {
        let mut tx = None;
        let row = if lock {
            let mut t = self.pool.begin().await?;
            let row = sqlx::query_as!(
                Row,
                "SELECT kind, status, access_token, refresh_token, key_id, wrapped_key,
                        access_token_expires_at, refreshed_at
                   FROM chatwork_connections WHERE id = $1 FOR UPDATE",
                self.id
            )
            .fetch_optional(&mut *t)
            .await?;
            tx = Some(t);
            row
        } else {
            sqlx::query_as!(
                Row,
                "SELECT kind, status, access_token, refresh_token, key_id, wrapped_key,
                        access_token_expires_at, refreshed_at
                   FROM chatwork_connections WHERE id = $1",
                self.id
            )
            .fetch_optional(&self.pool)
            .await?
        };
        let row = row.ok_or(sqlx::Error::RowNotFound)?;
        Ok((row, tx))
    }

    /// The access token of `row`, refreshed first if `row` is due and this process holds
    /// the row's lock (`tx`).
    async fn usable(
        &self,
        row: Row,
        tx: Option<sqlx::Transaction<'static, sqlx::Postgres>>,
    ) -> Result<Cached, ChatworkError> {
        if row.status != "active" {
            return Err(self.unusable(format!("its status is {}", row.status)));
        }
        let bearer = row.kind == "oauth";
        if bearer && Self::due(row.access_token_expires_at) {
            let Some(tx) = tx else {
                unreachable!("a due token is only used under the row's lock");
            };
            return self.refresh(row, tx).await;
        }
        if let Some(tx) = tx {
            // Nothing to refresh: another caller did it while this one waited.
            let _ = tx.commit().await;
        }
        let access = row
            .access_token
            .as_deref()
            .ok_or_else(|| self.unusable("it has no token"))?;
        let secret = self.open(&row, "access_token", access).await?;
        if let Some(key_id) = &row.key_id
            && !self.cipher.is_current(key_id)
        {
            self.reseal(&row, &secret).await;
        }
        Ok(Cached {
            secret,
            bearer,
            expires_at: row.access_token_expires_at,
            refreshed_at: row.refreshed_at,
        })
    }

    /// Spends the refresh token, under the row's lock.
    async fn refresh(
        &self,
        row: Row,
        mut tx: sqlx::Transaction<'static, sqlx::Postgres>,
    ) -> Result<Cached, ChatworkError> {
        let endpoint = self
            .endpoint
            .as_ref()
            .ok_or_else(|| self.unusable("no OAuth client is configured to refresh its token"))?;
        let stored = row
            .refresh_token
            .as_deref()
            .ok_or_else(|| self.unusable("it has no refresh token"))?;
        let refresh_token = self.open(&row, "refresh_token", stored).await?;
        match endpoint.refresh(&refresh_token).await {
            Ok(granted) => {
                let new_refresh = granted.refresh_token.unwrap_or(refresh_token);
                let SealedTokens {
                    access: access_sealed,
                    refresh: refresh_sealed,
                    key_id,
                    wrapped_key: wrapped,
                } = seal_tokens(
                    &self.cipher,
                    self.id,
                    &granted.access_token,
                    Some(&new_refresh),
                )
                .await
                .map_err(|e| self.unusable(format!("its new token cannot be sealed: {e}")))?;
                let expires_at =
                    Utc::now() + chrono::Duration::from_std(granted.expires_in).unwrap_or_default();
                let refreshed_at = sqlx::query_scalar!(
                    r#"UPDATE chatwork_connections
                          SET access_token = $2, refresh_token = $3, key_id = $4, wrapped_key = $5,
                              access_token_expires_at = $6, refreshed_at = now(),
                              scopes = CASE WHEN $7 = '' THEN scopes ELSE $7 END,
                              last_error = NULL, updated_at = now()
                        WHERE id = $1
                    RETURNING refreshed_at AS "refreshed_at!""#,
                    self.id,
                    access_sealed,
                    refresh_sealed,
                    key_id,
                    wrapped,
                    expires_at,
                    granted.scope.chars().take(1000).collect::<String>(),
                )
                .fetch_one(&mut *tx)
                .await
                .map_err(|e| self.db_error(e))?;
                tx.commit().await.map_err(|e| self.db_error(e))?;
                metrics::counter!("chatwork_token_refreshes", "outcome" => "refreshed")
                    .increment(1);
                tracing::info!(connection = %self.id, "refreshed a Chatwork access token");
                Ok(Cached {
                    secret: granted.access_token,
                    bearer: true,
                    expires_at: Some(expires_at),
                    refreshed_at: Some(refreshed_at),
                })
            }
            Err(GrantError::Refused { error, description }) => {
                let message = format!(
                    "Chatwork refused to refresh its token ({error}{}); an admin must connect the account again",
                    description.map(|d| format!(": {d}")).unwrap_or_default()
                );
                sqlx::query!(
                    "UPDATE chatwork_connections
                        SET status = 'reauth_required', status_changed_at = now(),
                            last_error = $2, updated_at = now()
                      WHERE id = $1",
                    self.id,
                    message.chars().take(500).collect::<String>(),
                )
                .execute(&mut *tx)
                .await
                .map_err(|e| self.db_error(e))?;
                tx.commit().await.map_err(|e| self.db_error(e))?;
                metrics::counter!("chatwork_token_refreshes", "outcome" => "refused").increment(1);
                metrics::counter!("chatwork_connections_reauth_required").increment(1);
                tracing::error!(connection = %self.id, error = %message, "a Chatwork connection needs to be connected again");
                Err(self.unusable(message))
            }
            Err(GrantError::Unavailable { message }) => {
                let _ = tx.rollback().await;
                metrics::counter!("chatwork_token_refreshes", "outcome" => "unavailable")
                    .increment(1);
                Err(ChatworkError::Network {
                    endpoint: "POST /token".into(),
                    message,
                    attempts: 1,
                })
            }
        }
    }

    /// Seals a token again under the current key (after a key rotation), best effort.
    async fn reseal(&self, row: &Row, access: &SecretString) {
        let refresh = match &row.refresh_token {
            Some(bytes) => match self.open(row, "refresh_token", bytes).await {
                Ok(secret) => Some(secret),
                Err(_) => return,
            },
            None => None,
        };
        let Ok(SealedTokens {
            access: access_sealed,
            refresh: refresh_sealed,
            key_id,
            wrapped_key: wrapped,
        }) = seal_tokens(&self.cipher, self.id, access, refresh.as_ref()).await
        else {
            return;
        };
        let done = sqlx::query!(
            "UPDATE chatwork_connections
                SET access_token = $2, refresh_token = $3, key_id = $4, wrapped_key = $5
              WHERE id = $1 AND key_id = $6 AND access_token = $7",
            self.id,
            access_sealed,
            refresh_sealed,
            key_id,
            wrapped,
            row.key_id,
            row.access_token,
        )
        .execute(&self.pool)
        .await;
        if let Err(e) = done {
            tracing::warn!(connection = %self.id, error = %e, "could not seal a token under the current key");
        }
    }
}

#[async_trait::async_trait]
impl TokenSource for ConnectionSource {
    async fn token(&self, deadline: Instant) -> Result<SourcedToken, ChatworkError> {
        // One caller of this process at a time: the others wait here and find what it did.
        let mut cached = tokio::time::timeout_at(deadline, self.cached.lock())
            .await
            .map_err(|_| ChatworkError::Deadline {
                endpoint: "the connection's token".into(),
            })?;
        if let Some(c) = cached.as_ref()
            && !(c.bearer && Self::due(c.expires_at))
        {
            return Ok(SourcedToken {
                secret: c.secret.clone(),
                bearer: c.bearer,
            });
        }
        let (row, _) = self.read(false).await.map_err(|e| self.db_error(e))?;
        let due = row.kind == "oauth" && Self::due(row.access_token_expires_at);
        let fresh = if due {
            // The row's lock: one refresh across processes. After waiting for it, the
            // row read under it says whether another process refreshed meanwhile.
            let (row, tx) = self.read(true).await.map_err(|e| self.db_error(e))?;
            self.usable(row, tx).await
        } else {
            self.usable(row, None).await
        };
        match fresh {
            Ok(fresh) => {
                let token = SourcedToken {
                    secret: fresh.secret.clone(),
                    bearer: fresh.bearer,
                };
                *cached = Some(fresh);
                Ok(token)
            }
            Err(e) => {
                *cached = None;
                Err(e)
            }
        }
    }

    async fn refused(&self, secret: &SecretString) {
        let mut cached = self.cached.lock().await;
        let Some(c) = cached.take() else { return };
        if c.secret.expose_secret() != secret.expose_secret() {
            // A newer token is already here.
            *cached = Some(c);
            return;
        }
        let result = if c.bearer {
            // Due now: the next caller refreshes (unless another process already did).
            sqlx::query!(
                "UPDATE chatwork_connections SET access_token_expires_at = now()
                  WHERE id = $1 AND refreshed_at IS NOT DISTINCT FROM $2",
                self.id,
                c.refreshed_at,
            )
            .execute(&self.pool)
            .await
        } else {
            metrics::counter!("chatwork_connections_reauth_required").increment(1);
            tracing::error!(connection = %self.id, "Chatwork refused a connection's API token");
            sqlx::query!(
                "UPDATE chatwork_connections
                    SET status = 'reauth_required', status_changed_at = now(),
                        last_error = 'Chatwork refused the API token (401); an admin must add a valid token',
                        updated_at = now()
                  WHERE id = $1 AND status = 'active'",
                self.id,
            )
            .execute(&self.pool)
            .await
        };
        if let Err(e) = result {
            tracing::warn!(connection = %self.id, error = %e, "could not record a refused token");
        }
    }
}
