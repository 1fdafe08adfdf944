//! Chatwork connections: every Chatwork account the team connected, each with its own
//! tokens (sealed at rest: [`cipher`]), rate budget, outage breaker and rooms
//! (docs/architecture.md, "Connections").
//!
//! - [`Connections`]: the process's registry. It hands out one [`ChatworkClient`] per
//!   connection (built on first use and shared), whose requests take their token from
//!   the connection's row ([`source`]) and whose budget and breaker rows are the
//!   connection's own. The connection of `CHATWORK_API_TOKEN` (the bootstrap connection)
//!   is the client the process was started with.
//! - [`store`]: the rows, memberships and the choice of the connection a room is fetched
//!   through.
//! - [`oauth`]: Chatwork's OAuth 2.0 client (consent page, token endpoint).

pub mod cipher;
pub mod oauth;
pub mod source;
pub mod store;
pub mod webhooks;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use sqlx::PgPool;
use uuid::Uuid;

pub use cipher::{CipherConfig, CipherError, TokenCipher};
pub use oauth::{ChatworkOAuthConfig, TokenEndpoint};
pub use store::Connection;

use crate::chatwork::{ChatworkClient, ChatworkError, ClientSettings, ConnectionAuth};

/// The process's connections and their clients. Cheap to clone.
#[derive(Clone)]
pub struct Connections {
    inner: Arc<Inner>,
}

struct Inner {
    pool: PgPool,
    /// Base URL, timeouts and retries every connection's client shares.
    settings: ClientSettings,
    bootstrap: Option<ChatworkClient>,
    bootstrap_id: tokio::sync::OnceCell<Option<Uuid>>,
    cipher: Option<TokenCipher>,
    endpoint: Option<TokenEndpoint>,
    clients: Mutex<HashMap<Uuid, ChatworkClient>>,
}

impl std::fmt::Debug for Connections {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connections")
            .field("bootstrap", &self.inner.bootstrap.is_some())
            .field("cipher", &self.inner.cipher)
            .finish_non_exhaustive()
    }
}

/// A connection a task works through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Active {
    pub id: Uuid,
    pub bootstrap: bool,
}

impl Connections {
    /// The registry of a process: `settings` for every client, `bootstrap` the client of
    /// `CHATWORK_API_TOKEN` when it is set, `cipher` to open stored tokens (without one,
    /// only the bootstrap connection works), `endpoint` to refresh OAuth tokens.
    pub fn new(
        pool: PgPool,
        settings: ClientSettings,
        bootstrap: Option<ChatworkClient>,
        cipher: Option<TokenCipher>,
        endpoint: Option<TokenEndpoint>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                pool,
                settings,
                bootstrap,
                bootstrap_id: tokio::sync::OnceCell::new(),
                cipher,
                endpoint,
                clients: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Only the bootstrap connection of `client` (single-token set-ups and tests).
    pub fn of_client(client: ChatworkClient) -> Self {
        let pool = client.budget().pool().clone();
        let settings = client.settings().clone();
        Self::new(pool, settings, Some(client), None, None)
    }

    pub fn pool(&self) -> &PgPool {
        &self.inner.pool
    }

    pub fn cipher(&self) -> Option<&TokenCipher> {
        self.inner.cipher.as_ref()
    }

    pub fn endpoint(&self) -> Option<&TokenEndpoint> {
        self.inner.endpoint.as_ref()
    }

    /// The client of `CHATWORK_API_TOKEN`, if the process has one.
    pub fn bootstrap(&self) -> Option<&ChatworkClient> {
        self.inner.bootstrap.as_ref()
    }

    /// The bootstrap connection's id (its row made on first use), if there is one.
    pub async fn bootstrap_id(&self) -> Result<Option<Uuid>, sqlx::Error> {
        let id = self
            .inner
            .bootstrap_id
            .get_or_try_init(|| async {
                match &self.inner.bootstrap {
                    None => Ok(None),
                    Some(client) => {
                        store::ensure_bootstrap(&self.inner.pool, &client.settings().token)
                            .await
                            .map(Some)
                    }
                }
            })
            .await?;
        Ok(*id)
    }

    /// The active connections this process can work through (the bootstrap first).
    pub async fn active(&self) -> Result<Vec<Active>, sqlx::Error> {
        let bootstrap = self.bootstrap_id().await?;
        let rows = sqlx::query!(
            "SELECT id, bootstrap FROM chatwork_connections
              WHERE status = 'active'
              ORDER BY bootstrap DESC, connected_at, id"
        )
        .fetch_all(&self.inner.pool)
        .await?;
        Ok(rows
            .into_iter()
            // Another process's bootstrap row is usable only where its token is.
            .filter(|r| !r.bootstrap || bootstrap == Some(r.id))
            .filter(|r| r.bootstrap || self.inner.cipher.is_some())
            .map(|r| Active {
                id: r.id,
                bootstrap: r.bootstrap,
            })
            .collect())
    }

    /// The client of connection `id`.
    pub async fn client(&self, id: Uuid) -> Result<ChatworkClient, ChatworkError> {
        let bootstrap = self
            .bootstrap_id()
            .await
            .map_err(|e| ChatworkError::Budget {
                message: e.to_string().chars().take(200).collect(),
            })?;
        if bootstrap == Some(id)
            && let Some(client) = &self.inner.bootstrap
        {
            return Ok(client.clone());
        }
        if let Some(client) = self.inner.clients.lock().expect("clients").get(&id) {
            return Ok(client.clone());
        }
        let cipher = self.inner.cipher.clone().ok_or_else(|| ChatworkError::Connection {
            message: "no token encryption key is configured (TOKEN_ENCRYPTION_KEY or TOKEN_KMS_KEY_ID)".into(),
        })?;
        let source = source::ConnectionSource::new(
            id,
            self.inner.pool.clone(),
            cipher,
            self.inner.endpoint.clone(),
        );
        let settings = self.inner.settings.clone().for_connection(ConnectionAuth {
            source: Arc::new(source),
            budget_key: store::budget_key_of(id),
        });
        let client = ChatworkClient::new(settings, self.inner.pool.clone())?;
        Ok(self
            .inner
            .clients
            .lock()
            .expect("clients")
            .entry(id)
            .or_insert(client)
            .clone())
    }
}

/// A token known before its connection is stored (the one being added), for the
/// requests that validate it.
struct Given {
    secret: secrecy::SecretString,
    bearer: bool,
}

#[async_trait::async_trait]
impl crate::chatwork::TokenSource for Given {
    async fn token(
        &self,
        _deadline: tokio::time::Instant,
    ) -> Result<crate::chatwork::SourcedToken, ChatworkError> {
        Ok(crate::chatwork::SourcedToken {
            secret: self.secret.clone(),
            bearer: self.bearer,
        })
    }

    async fn refused(&self, _secret: &secrecy::SecretString) {}
}

impl Connections {
    /// Reads `GET /me` with a token that is not stored yet (an API token an admin gives,
    /// or an OAuth access token just granted): who it speaks for, or Chatwork's refusal.
    /// Its request counts in a budget of its own (validations are rare and one request
    /// each).
    pub async fn whoami(
        &self,
        secret: &secrecy::SecretString,
        bearer: bool,
        deadline: tokio::time::Instant,
    ) -> Result<crate::chatwork::Me, ChatworkError> {
        let settings = self.inner.settings.clone().for_connection(ConnectionAuth {
            source: Arc::new(Given {
                secret: secret.clone(),
                bearer,
            }),
            budget_key: crate::chatwork::token_hash(&secrecy::SecretString::from(
                "cwsync-validation".to_owned(),
            )),
        });
        let client = ChatworkClient::new(settings, self.inner.pool.clone())?;
        client.me(deadline).await
    }
}
