//! How to reach Chatwork (`CHATWORK_*`): the token, the base URL, and the limits of one
//! call's requests and retries.

use std::time::Duration;

use secrecy::SecretString;
use url::Url;

use crate::config::{ConfigError, Env, parse_http_url};

/// How to reach Chatwork.
#[derive(Debug, Clone)]
pub struct ChatworkConfig {
    /// `CHATWORK_API_TOKEN`. Unset inside AWS, where the token comes from Secrets Manager;
    /// unset locally, where the local runner starts the fake Chatwork instead.
    pub token: Option<SecretString>,
    /// `CHATWORK_API_BASE_URL`, default [`ChatworkConfig::DEFAULT_BASE_URL`].
    pub base_url: Url,
    /// `CHATWORK_REQUEST_TIMEOUT_SECS` (default 10): the longest one request may take.
    pub request_timeout: Duration,
    /// `CHATWORK_MAX_ATTEMPTS` (default 4, 1 to 10): attempts per call on 5xx, network
    /// errors and timeouts, the first included.
    pub max_attempts: u32,
    /// `CHATWORK_RETRY_MAX_SECS` (default 30): no retry starts later than this after a
    /// call's first attempt.
    pub retry_max_elapsed: Duration,
    /// `CHATWORK_RATE_RESET_MARGIN_MS` (default 1000): added to Chatwork's reset time
    /// before the shared budget counts on a fresh window.
    pub rate_reset_margin: Duration,
}

impl ChatworkConfig {
    pub const DEFAULT_BASE_URL: &'static str = "https://api.chatwork.com/v2";

    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let base_url = match env.get("CHATWORK_API_BASE_URL") {
            None => Url::parse(Self::DEFAULT_BASE_URL).expect("constant URL"),
            Some(raw) => parse_http_url("CHATWORK_API_BASE_URL", raw)?,
        };
        let request_timeout = env.seconds("CHATWORK_REQUEST_TIMEOUT_SECS", 10)?;
        if request_timeout.is_zero() {
            return Err(ConfigError::Invalid {
                name: "CHATWORK_REQUEST_TIMEOUT_SECS",
                reason: "expected at least 1 second, got 0".into(),
            });
        }
        let max_attempts: u32 = env
            .parse("CHATWORK_MAX_ATTEMPTS", "a whole number from 1 to 10")?
            .unwrap_or(4);
        if !(1..=10).contains(&max_attempts) {
            return Err(ConfigError::Invalid {
                name: "CHATWORK_MAX_ATTEMPTS",
                reason: format!("expected a whole number from 1 to 10, got {max_attempts}"),
            });
        }
        let margin_ms: u64 = env
            .parse(
                "CHATWORK_RATE_RESET_MARGIN_MS",
                "a whole number of milliseconds",
            )?
            .unwrap_or(1000);
        Ok(Self {
            token: env
                .get("CHATWORK_API_TOKEN")
                .map(|t| SecretString::from(t.to_owned())),
            base_url,
            request_timeout,
            max_attempts,
            retry_max_elapsed: env.seconds("CHATWORK_RETRY_MAX_SECS", 30)?,
            rate_reset_margin: Duration::from_millis(margin_ms),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chatwork_token_is_secret_and_base_url_defaults() {
        let env = Env::from_pairs([("CHATWORK_API_TOKEN", "tok-123")]);
        let config = ChatworkConfig::from_env(&env).unwrap();
        assert!(!format!("{config:?}").contains("tok-123"));
        assert_eq!(config.base_url.as_str(), "https://api.chatwork.com/v2");
        let bad = Env::from_pairs([("CHATWORK_API_BASE_URL", "ftp://x")]);
        assert!(ChatworkConfig::from_env(&bad).is_err());
        assert_eq!(config.request_timeout, Duration::from_secs(10));
        assert_eq!(config.max_attempts, 4);
        assert_eq!(config.retry_max_elapsed, Duration::from_secs(30));
        assert_eq!(config.rate_reset_margin, Duration::from_millis(1000));
    }

    #[test]
    fn chatwork_retry_settings_are_read_and_checked() {
        let env = Env::from_pairs([
            ("CHATWORK_REQUEST_TIMEOUT_SECS", "3"),
            ("CHATWORK_MAX_ATTEMPTS", "2"),
            ("CHATWORK_RETRY_MAX_SECS", "5"),
            ("CHATWORK_RATE_RESET_MARGIN_MS", "0"),
        ]);
        let config = ChatworkConfig::from_env(&env).unwrap();
        assert_eq!(config.request_timeout, Duration::from_secs(3));
        assert_eq!(config.max_attempts, 2);
        assert_eq!(config.retry_max_elapsed, Duration::from_secs(5));
        assert!(config.rate_reset_margin.is_zero());
        for (name, value) in [
            ("CHATWORK_MAX_ATTEMPTS", "0"),
            ("CHATWORK_MAX_ATTEMPTS", "many"),
            ("CHATWORK_REQUEST_TIMEOUT_SECS", "0"),
            ("CHATWORK_RATE_RESET_MARGIN_MS", "-1"),
        ] {
            let line = ChatworkConfig::from_env(&Env::from_pairs([(name, value)]))
                .unwrap_err()
                .to_string();
            assert!(line.starts_with(&format!("{name} is malformed")), "{line}");
        }
    }
}
