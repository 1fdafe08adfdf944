//! The Chatwork webhook tokens of the API function: `CHATWORK_WEBHOOK_TOKENS` when set
//! (local runs and tests), else the Secrets Manager secret in
//! `CHATWORK_WEBHOOK_TOKENS_SECRET_ARN` (its value: the tokens separated by commas or
//! white space, or JSON `{"tokens": [...]}`).
//!
//! The secret is read on the first delivery, not at cold start (most requests of the API
//! function are not webhooks), and read again when a signature fails to verify and the
//! last read is more than [`RELOAD_AFTER`] old: a token added in Chatwork and to the secret
//! is accepted without a deploy, and a flood of forged deliveries reads it at most once a
//! minute.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_secretsmanager::Client;
use cwsync::config::{ConfigError, Env};
use cwsync::webhook::{WebhookConfig, WebhookKeySource, WebhookKeys};
use tokio::sync::Mutex;
use tokio::time::Instant;

/// The variable naming the secret.
pub const TOKENS_SECRET_VAR: &str = "CHATWORK_WEBHOOK_TOKENS_SECRET_ARN";

/// The shortest time between two reads of the secret.
pub const RELOAD_AFTER: Duration = Duration::from_secs(60);

/// The webhook keys the API function verifies with.
pub fn webhook_keys(env: &Env) -> Result<Arc<dyn WebhookKeySource>, ConfigError> {
    if env.get(WebhookConfig::TOKENS_VAR).is_some() {
        return Ok(Arc::new(WebhookConfig::from_env(env)?.keys));
    }
    Ok(match env.get(TOKENS_SECRET_VAR) {
        Some(arn) => Arc::new(SecretKeys {
            arn: arn.to_owned(),
            state: Mutex::new(None),
        }),
        None => Arc::new(WebhookKeys::default()),
    })
}

/// Keys read from a Secrets Manager secret.
struct SecretKeys {
    arn: String,
    /// The client (built on first use) and the keys of the last read, when it was made.
    state: Mutex<Option<Loaded>>,
}

struct Loaded {
    client: Client,
    keys: WebhookKeys,
    read_at: Instant,
}

impl SecretKeys {
    /// Reads the secret. A failure is logged and yields no keys (every delivery is then
    /// refused until a read succeeds); it never carries the secret's value.
    async fn read(&self, client: &Client) -> WebhookKeys {
        let value = match client.get_secret_value().secret_id(&self.arn).send().await {
            Ok(output) => output.secret_string.unwrap_or_default(),
            Err(e) => {
                tracing::error!(
                    error = %aws_sdk_secretsmanager::error::DisplayErrorContext(e),
                    "the webhook tokens secret ({TOKENS_SECRET_VAR}) could not be read"
                );
                return WebhookKeys::default();
            }
        };
        match parse_secret(&value) {
            Ok(config) => config.keys,
            Err(e) => {
                tracing::error!(error = %e, "the webhook tokens secret is malformed");
                WebhookKeys::default()
            }
        }
    }

    async fn load(&self, force: bool) -> Option<WebhookKeys> {
        let mut state = self.state.lock().await;
        if let Some(loaded) = state.as_ref() {
            if !force {
                return Some(loaded.keys.clone());
            }
            if loaded.read_at.elapsed() < RELOAD_AFTER {
                return None;
            }
        }
        let client = match state.as_ref() {
            Some(loaded) => loaded.client.clone(),
            None => Client::new(&aws_config::load_from_env().await),
        };
        let keys = self.read(&client).await;
        *state = Some(Loaded {
            client,
            keys: keys.clone(),
            read_at: Instant::now(),
        });
        Some(keys)
    }
}

#[async_trait]
impl WebhookKeySource for SecretKeys {
    async fn keys(&self) -> WebhookKeys {
        self.load(false).await.unwrap_or_default()
    }

    async fn reload(&self) -> Option<WebhookKeys> {
        self.load(true).await
    }
}

/// The tokens in the secret's value: JSON `{"tokens": [..]}` (or a string of tokens), or
/// the tokens themselves.
fn parse_secret(value: &str) -> Result<WebhookConfig, ConfigError> {
    let name = TOKENS_SECRET_VAR;
    if value.trim_start().starts_with('{') {
        let json: serde_json::Value =
            serde_json::from_str(value).map_err(|_| ConfigError::Invalid {
                name,
                reason: "the secret is JSON but not an object with \"tokens\"".into(),
            })?;
        let tokens = match json.get("tokens") {
            Some(serde_json::Value::Array(items)) => items
                .iter()
                .filter_map(|t| t.as_str())
                .collect::<Vec<_>>()
                .join(","),
            Some(serde_json::Value::String(s)) => s.clone(),
            _ => {
                return Err(ConfigError::Invalid {
                    name,
                    reason: "the secret's JSON has no \"tokens\" list".into(),
                });
            }
        };
        return WebhookConfig::from_tokens(name, &tokens);
    }
    WebhookConfig::from_tokens(name, value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_secret_holds_tokens_as_text_or_json() {
        assert_eq!(parse_secret("dG9rZW4x, dG9rZW4y").unwrap().keys.len(), 2);
        assert_eq!(
            parse_secret(r#"{"tokens": ["dG9rZW4x", "dG9rZW4y", "dG9rZW4z"]}"#)
                .unwrap()
                .keys
                .len(),
            3
        );
        assert_eq!(
            parse_secret(r#"{"tokens": "dG9rZW4x"}"#)
                .unwrap()
                .keys
                .len(),
            1
        );
        let line = parse_secret(r#"{"token": "hunter2"}"#)
            .unwrap_err()
            .to_string();
        assert!(!line.contains("hunter2"), "{line}");
        let line = parse_secret("hunter2!").unwrap_err().to_string();
        assert!(!line.contains("hunter2"), "{line}");
    }

    #[tokio::test]
    async fn the_environment_wins_and_no_setting_refuses_everything() {
        let env = Env::from_pairs([
            ("CHATWORK_WEBHOOK_TOKENS", "dG9rZW4x"),
            (
                TOKENS_SECRET_VAR,
                "arn:aws:secretsmanager:us-east-1:1:secret:x",
            ),
        ]);
        assert_eq!(webhook_keys(&env).unwrap().keys().await.len(), 1);
        assert!(
            webhook_keys(&Env::default())
                .unwrap()
                .keys()
                .await
                .is_empty()
        );
    }
}
