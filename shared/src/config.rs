//! The generic layer of configuration: a snapshot of the environment ([`Env`]), the one
//! error a setting can have ([`ConfigError`]) and the parsers settings share. Each module
//! owns its settings and reads them from an [`Env`] (`db::DatabaseConfig`,
//! `chatwork::ChatworkConfig`, `queue::QueueConfig`, `summary::SummaryConfig`,
//! `webhook::WebhookConfig`, `api::AuthConfig`, ...): a process reads only the sections it
//! needs, and this module, which they all use, imports none of them.
//!
//! [`Env::from_process`] is where our code reads the process environment (the AWS SDK
//! reads its own settings, region, credentials and endpoints, itself). Every failure
//! names the variable in one line ([`ConfigError`]); binaries print that line and exit
//! instead of panicking. Secret values (the database URL may carry a
//! password, the Chatwork token always is one) are held as `SecretString`, whose `Debug`
//! prints a placeholder.

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

use url::Url;

/// A setting that is missing or cannot be used. Its `Display` is the one line that start-up
/// prints; it never contains a secret value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("{name} is not set: {hint}")]
    Missing {
        name: &'static str,
        hint: &'static str,
    },
    #[error("{name} is malformed: {reason}")]
    Invalid { name: &'static str, reason: String },
}

/// A snapshot of the environment variables. Tests build one from pairs instead of touching
/// the process environment, which other tests share.
#[derive(Clone, Default)]
pub struct Env {
    vars: HashMap<String, String>,
}

impl Env {
    pub fn from_process() -> Self {
        Self {
            vars: std::env::vars().collect(),
        }
    }

    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Self {
            vars: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }

    /// The same variables with `name` set to `value` (secrets fetched at start-up join
    /// the environment this way, so one loader validates both).
    pub fn with(&self, name: &str, value: impl Into<String>) -> Self {
        let mut vars = self.vars.clone();
        vars.insert(name.to_owned(), value.into());
        Self { vars }
    }

    /// The value of `name`; an empty or blank value counts as unset, as most shells and
    /// templates produce one when they mean "no value".
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars
            .get(name)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
    }

    /// Parses `name` when it is set. `what` describes the expected form for the error line.
    pub fn parse<T: FromStr>(
        &self,
        name: &'static str,
        what: &str,
    ) -> Result<Option<T>, ConfigError> {
        match self.get(name) {
            None => Ok(None),
            Some(raw) => raw.parse().map(Some).map_err(|_| ConfigError::Invalid {
                name,
                reason: format!("expected {what}, got {raw:?}"),
            }),
        }
    }

    /// Whether this process runs inside AWS Lambda (the runtime always sets this).
    pub fn in_lambda(&self) -> bool {
        self.get("AWS_LAMBDA_FUNCTION_NAME").is_some()
    }

    /// `name` as a whole number of seconds; `default` seconds when unset.
    pub fn seconds(&self, name: &'static str, default: u64) -> Result<Duration, ConfigError> {
        let secs: u64 = self
            .parse(name, "a whole number of seconds")?
            .unwrap_or(default);
        Ok(Duration::from_secs(secs))
    }
}

/// `raw`, the value of `name`, as a URL. The error gives the parser's reason, not the
/// value.
pub fn parse_url(name: &'static str, raw: &str) -> Result<Url, ConfigError> {
    Url::parse(raw).map_err(|e| ConfigError::Invalid {
        name,
        reason: format!("not a URL ({e})"),
    })
}

/// [`parse_url`], and only an `http://` or `https://` one (an API's base URL).
pub fn parse_http_url(name: &'static str, raw: &str) -> Result<Url, ConfigError> {
    let url = parse_url(name, raw)?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(ConfigError::Invalid {
            name,
            reason: "the scheme must be http:// or https://".into(),
        });
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_and_urls_name_the_variable() {
        let env = Env::from_pairs([("A_SECS", "7"), ("B_SECS", "soon")]);
        assert_eq!(env.seconds("A_SECS", 1).unwrap(), Duration::from_secs(7));
        assert_eq!(env.seconds("C_SECS", 1).unwrap(), Duration::from_secs(1));
        let line = env.seconds("B_SECS", 1).unwrap_err().to_string();
        assert_eq!(
            line,
            "B_SECS is malformed: expected a whole number of seconds, got \"soon\""
        );
        assert!(parse_http_url("U", "https://example.com/v1").is_ok());
        let line = parse_http_url("U", "ftp://example.com")
            .unwrap_err()
            .to_string();
        assert_eq!(
            line,
            "U is malformed: the scheme must be http:// or https://"
        );
        let line = parse_url("U", "not a url").unwrap_err().to_string();
        assert!(line.starts_with("U is malformed: not a URL ("), "{line}");
    }
}
