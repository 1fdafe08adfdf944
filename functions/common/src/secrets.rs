//! Secrets for a function, read once per cold start. A secret can come from the
//! environment (local runs and tests: `DATABASE_URL`, `CHATWORK_API_TOKEN`, ...) or from
//! Secrets Manager (in AWS: `DATABASE_SECRET_ARN`, `CHATWORK_API_TOKEN_SECRET_ARN`,
//! ...); the environment wins when both are set.

use aws_sdk_secretsmanager::Client;
use cwsync::chatwork::ChatworkConfig;
use cwsync::config::{ConfigError, Env};
use cwsync::db::DatabaseConfig;
use cwsync::summary::SummaryConfig;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use url::Url;

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Never carries the secret's value.
    #[error("secret {variable} could not be read from Secrets Manager: {reason}")]
    Fetch {
        variable: &'static str,
        reason: String,
    },
}

/// Reads secrets from the environment or from Secrets Manager.
pub struct Secrets {
    env: Env,
    client: Option<Client>,
}

/// The JSON of an RDS-managed database secret (only the fields cwsync uses).
#[derive(Deserialize)]
struct DatabaseSecret {
    username: String,
    password: String,
    host: Option<String>,
    port: Option<u16>,
    dbname: Option<String>,
}

impl Secrets {
    /// Builds a Secrets Manager client only when some secret is to come from there.
    pub async fn new(env: &Env) -> Self {
        let needs_client = [
            "DATABASE_SECRET_ARN",
            "CHATWORK_API_TOKEN_SECRET_ARN",
            "SUMMARY_MODEL_API_KEY_SECRET_ARN",
            "CHATWORK_OAUTH_CLIENT_SECRET_ARN",
        ]
        .iter()
        .any(|name| env.get(name).is_some());
        let client = if needs_client {
            Some(Client::new(&aws_config::load_from_env().await))
        } else {
            None
        };
        Self {
            env: env.clone(),
            client,
        }
    }

    /// The value of the secret whose ARN is in `variable`.
    async fn fetch(&self, variable: &'static str) -> Result<Option<SecretString>, SecretError> {
        let (Some(arn), Some(client)) = (self.env.get(variable), &self.client) else {
            return Ok(None);
        };
        let output = client
            .get_secret_value()
            .secret_id(arn)
            .send()
            .await
            .map_err(|e| SecretError::Fetch {
                variable,
                reason: aws_sdk_secretsmanager::error::DisplayErrorContext(e).to_string(),
            })?;
        let value = output.secret_string.ok_or(SecretError::Fetch {
            variable,
            reason: "the secret has no string value".into(),
        })?;
        Ok(Some(SecretString::from(value)))
    }

    /// The database settings: `DATABASE_URL`, or a URL built from the RDS secret in
    /// `DATABASE_SECRET_ARN` (with `DATABASE_HOST`, e.g. the RDS Proxy endpoint, and
    /// `DATABASE_NAME` overriding the secret's host and database, and TLS required).
    pub async fn database(&self) -> Result<DatabaseConfig, SecretError> {
        if self.env.get(DatabaseConfig::URL_VAR).is_some() {
            return Ok(DatabaseConfig::from_env(&self.env)?);
        }
        let Some(secret) = self.fetch("DATABASE_SECRET_ARN").await? else {
            return Ok(DatabaseConfig::from_env(&self.env)?);
        };
        let invalid = |reason: &str| SecretError::Fetch {
            variable: "DATABASE_SECRET_ARN",
            reason: reason.to_owned(),
        };
        let parsed: DatabaseSecret =
            serde_json::from_str(secret.expose_secret()).map_err(|_| {
                invalid("the secret is not an RDS secret (JSON with username and password)")
            })?;
        let host = self
            .env
            .get("DATABASE_HOST")
            .map(str::to_owned)
            .or(parsed.host)
            .ok_or_else(|| invalid("no host: set DATABASE_HOST"))?;
        let name = self
            .env
            .get("DATABASE_NAME")
            .map(str::to_owned)
            .or(parsed.dbname)
            .unwrap_or_else(|| "postgres".into());
        let mut url = Url::parse("postgres://localhost/").expect("constant URL");
        url.set_host(Some(&host))
            .map_err(|_| invalid("the host is not valid"))?;
        url.set_port(Some(parsed.port.unwrap_or(5432))).ok();
        url.set_username(&parsed.username).ok();
        url.set_password(Some(&parsed.password)).ok();
        url.set_path(&format!("/{name}"));
        url.set_query(Some("sslmode=require"));
        Ok(DatabaseConfig::from_env(
            &self.env.with(DatabaseConfig::URL_VAR, url.to_string()),
        )?)
    }

    /// The Chatwork settings, with the token required: `CHATWORK_API_TOKEN`, or the
    /// secret in `CHATWORK_API_TOKEN_SECRET_ARN` (the token itself, or JSON `{"token"}`).
    pub async fn chatwork(&self) -> Result<ChatworkConfig, SecretError> {
        let mut config = ChatworkConfig::from_env(&self.env)?;
        if config.token.is_none() {
            config.token = self
                .fetch("CHATWORK_API_TOKEN_SECRET_ARN")
                .await?
                .map(|secret| unwrap_json_field(secret, "token"));
        }
        if config.token.is_none() {
            return Err(ConfigError::Missing {
                name: "CHATWORK_API_TOKEN",
                hint: "set it, or CHATWORK_API_TOKEN_SECRET_ARN to a Secrets Manager secret",
            }
            .into());
        }
        Ok(config)
    }

    /// The Chatwork settings with the token when one is given (the stored connections
    /// may do without it).
    pub async fn chatwork_optional(&self) -> Result<ChatworkConfig, SecretError> {
        match self.chatwork().await {
            Err(SecretError::Config(ConfigError::Missing { .. })) => {
                Ok(ChatworkConfig::from_env(&self.env)?)
            }
            other => other,
        }
    }

    /// The summary settings. With a model configured and no `SUMMARY_MODEL_API_KEY`, the
    /// key is the secret in `SUMMARY_MODEL_API_KEY_SECRET_ARN` (the key itself, or JSON
    /// `{"apiKey"}`); without one, no key is sent (a local model server may need none).
    /// Without a model, no secret is read.
    pub async fn summary(&self) -> Result<SummaryConfig, SecretError> {
        let mut config = SummaryConfig::from_env(&self.env)?;
        if let Some(model) = &mut config.model
            && model.api_key.is_none()
        {
            model.api_key = self
                .optional("SUMMARY_MODEL_API_KEY", "SUMMARY_MODEL_API_KEY_SECRET_ARN")
                .await?;
        }
        Ok(config)
    }

    /// An optional secret: the variable itself, or the secret named by `<variable>_SECRET_ARN`.
    pub async fn optional(
        &self,
        variable: &'static str,
        arn_variable: &'static str,
    ) -> Result<Option<SecretString>, SecretError> {
        if let Some(value) = self.env.get(variable) {
            return Ok(Some(SecretString::from(value.to_owned())));
        }
        Ok(self
            .fetch(arn_variable)
            .await?
            .map(|s| unwrap_json_field(s, "apiKey")))
    }
}

/// A secret stored as JSON `{"<field>": "..."}` yields the field; any other value is
/// the secret itself.
fn unwrap_json_field(secret: SecretString, field: &str) -> SecretString {
    serde_json::from_str::<serde_json::Value>(secret.expose_secret())
        .ok()
        .and_then(|v| v.get(field).and_then(|f| f.as_str()).map(str::to_owned))
        .map(SecretString::from)
        .unwrap_or(secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_environment_is_used_without_secrets_manager() {
        let env = Env::from_pairs([
            ("DATABASE_URL", "postgres://u:pw@db:5432/x"),
            ("CHATWORK_API_TOKEN", "tok"),
        ]);
        let secrets = Secrets::new(&env).await;
        assert!(secrets.client.is_none());
        assert_eq!(secrets.database().await.unwrap().database_name(), "x");
        let chatwork = secrets.chatwork().await.unwrap();
        assert_eq!(chatwork.token.unwrap().expose_secret(), "tok");
    }

    #[tokio::test]
    async fn a_missing_token_names_both_ways_to_give_it() {
        let env = Env::from_pairs([("DATABASE_URL", "postgres://u@db/x")]);
        let line = Secrets::new(&env)
            .await
            .chatwork()
            .await
            .unwrap_err()
            .to_string();
        assert!(
            line.contains("CHATWORK_API_TOKEN") && line.contains("SECRET_ARN"),
            "{line}"
        );
    }

    #[tokio::test]
    async fn summaries_need_no_secret_without_a_model() {
        // An ARN alone, without a model, reads nothing (the template sets the variable
        // empty or to a secret that only matters with a model).
        let env = Env::from_pairs([("DATABASE_URL", "postgres://u@db/x")]);
        let config = Secrets::new(&env).await.summary().await.unwrap();
        assert!(config.model.is_none());
        let env = Env::from_pairs([
            ("SUMMARY_MODEL_BASE_URL", "http://127.0.0.1:9/v1"),
            ("SUMMARY_MODEL", "m"),
            ("SUMMARY_MODEL_API_KEY", "sk-1"),
        ]);
        let config = Secrets::new(&env).await.summary().await.unwrap();
        let model = config.model.unwrap();
        assert_eq!(model.api_key.unwrap().expose_secret(), "sk-1");
        let line = Secrets::new(&Env::from_pairs([("SUMMARY_MODEL", "m")]))
            .await
            .summary()
            .await
            .unwrap_err()
            .to_string();
        assert!(
            line.starts_with("SUMMARY_MODEL_BASE_URL is not set"),
            "{line}"
        );
    }

    #[test]
    fn json_secrets_yield_their_field() {
        let token = unwrap_json_field(SecretString::from(r#"{"token": "abc"}"#), "token");
        assert_eq!(token.expose_secret(), "abc");
        let plain = unwrap_json_field(SecretString::from("abc"), "token");
        assert_eq!(plain.expose_secret(), "abc");
    }
}
