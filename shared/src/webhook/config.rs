//! The API's webhook setting (`CHATWORK_WEBHOOK_TOKENS`): which webhooks' deliveries it
//! accepts.

use secrecy::SecretString;

use super::WebhookKeys;
use crate::config::{ConfigError, Env};

/// The tokens of the Chatwork webhooks whose deliveries the API accepts.
#[derive(Clone, Default)]
pub struct WebhookConfig {
    /// The keys decoded from the tokens (none: every delivery is refused with a 401).
    pub keys: WebhookKeys,
}

impl std::fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WebhookConfig({} tokens)", self.keys.len())
    }
}

impl WebhookConfig {
    pub const TOKENS_VAR: &'static str = "CHATWORK_WEBHOOK_TOKENS";

    /// `CHATWORK_WEBHOOK_TOKENS`: the webhooks' tokens as Chatwork shows them (base64),
    /// separated by commas or white space; unset: none.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Self::from_tokens(Self::TOKENS_VAR, env.get(Self::TOKENS_VAR).unwrap_or(""))
    }

    /// The tokens in `raw` (commas or white space between them), read from `name`. A
    /// token that is not base64 is named by its position, never by its value.
    pub fn from_tokens(name: &'static str, raw: &str) -> Result<Self, ConfigError> {
        let tokens: Vec<SecretString> = raw
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|t| !t.is_empty())
            .map(|t| SecretString::from(t.to_owned()))
            .collect();
        let keys = WebhookKeys::from_tokens(&tokens).map_err(|e| ConfigError::Invalid {
            name,
            reason: e.to_string(),
        })?;
        Ok(Self { keys })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_tokens_are_several_and_never_echoed() {
        let env = Env::from_pairs([(
            "CHATWORK_WEBHOOK_TOKENS",
            " dG9rZW4tb25l, dG9rZW4tdHdv\ndG9rZW4tdGhyZWU= ",
        )]);
        let config = WebhookConfig::from_env(&env).unwrap();
        assert_eq!(config.keys.len(), 3);
        assert!(!format!("{config:?}").contains("dG9r"));
        assert!(
            WebhookConfig::from_env(&Env::default())
                .unwrap()
                .keys
                .is_empty()
        );
        let env = Env::from_pairs([("CHATWORK_WEBHOOK_TOKENS", "dG9rZW4tb25l,hunter2!")]);
        let line = WebhookConfig::from_env(&env).unwrap_err().to_string();
        assert!(
            line.starts_with("CHATWORK_WEBHOOK_TOKENS is malformed: token 2 of 2"),
            "{line}"
        );
        assert!(!line.contains("hunter2"), "{line}");
    }
}
