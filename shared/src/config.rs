//! Typed configuration from the environment (DESIGN section 6).
//!
//! Each part of the system reads only the sections it needs, so a consumer does not
//! demand the local runner's settings. Every failure names the variable in one line
//! ([`ConfigError`]); binaries print that line and exit instead of panicking. Values that
//! are secret (the database URL may carry a password, the Chatwork token always is one)
//! are held as [`SecretString`], whose `Debug` prints a placeholder.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
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
pub fn url(name: &'static str, raw: &str) -> Result<Url, ConfigError> {
    Url::parse(raw).map_err(|e| ConfigError::Invalid {
        name,
        reason: format!("not a URL ({e})"),
    })
}

/// [`url`], and only an `http://` or `https://` one (an API's base URL).
pub fn http_url(name: &'static str, raw: &str) -> Result<Url, ConfigError> {
    let url = url(name, raw)?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(ConfigError::Invalid {
            name,
            reason: "the scheme must be http:// or https://".into(),
        });
    }
    Ok(url)
}

/// How to reach Postgres and how large a pool to keep.
#[derive(Debug, Clone)]
pub struct DatabaseConfig {
    /// `DATABASE_URL`, validated to be a `postgres://` URL.
    pub url: SecretString,
    /// `DATABASE_MAX_CONNECTIONS`: 2 inside Lambda (one invocation at a time, and RDS
    /// Proxy multiplexes), 10 elsewhere.
    pub max_connections: u32,
    /// `DATABASE_ACQUIRE_TIMEOUT_SECS` (default 5): the longest wait for a connection,
    /// including opening one. A thawed Lambda whose connection died must fail fast and
    /// let the queue retry, not sit out its whole timeout.
    pub acquire_timeout: Duration,
    /// `DATABASE_STATEMENT_TIMEOUT_SECS` (default 30): server-side limit per statement.
    pub statement_timeout: Duration,
    /// `DATABASE_IDLE_TIMEOUT_SECS` (default 60): idle connections are closed after this,
    /// so a frozen Lambda does not hold connections the proxy already dropped.
    pub idle_timeout: Duration,
}

impl DatabaseConfig {
    pub const URL_VAR: &'static str = "DATABASE_URL";

    /// Reads the database settings; `DATABASE_URL` is required.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Self::build(env, None)
    }

    /// Reads the database settings, using `default_url` when `DATABASE_URL` is unset
    /// (the local runner and the tests have a well-known local server).
    pub fn from_env_or(env: &Env, default_url: &str) -> Result<Self, ConfigError> {
        Self::build(env, Some(default_url))
    }

    fn build(env: &Env, default_url: Option<&str>) -> Result<Self, ConfigError> {
        let raw = match (env.get(Self::URL_VAR), default_url) {
            (Some(url), _) => url,
            (None, Some(default)) => default,
            (None, None) => {
                return Err(ConfigError::Missing {
                    name: Self::URL_VAR,
                    hint: "set it to postgres://user[:password]@host[:port]/database",
                });
            }
        };
        validate_postgres_url(raw)?;
        let default_max = if env.in_lambda() { 2 } else { 10 };
        let max_connections: u32 = env
            .parse("DATABASE_MAX_CONNECTIONS", "a whole number from 1 to 100")?
            .unwrap_or(default_max);
        if !(1..=100).contains(&max_connections) {
            return Err(ConfigError::Invalid {
                name: "DATABASE_MAX_CONNECTIONS",
                reason: format!("expected a whole number from 1 to 100, got {max_connections}"),
            });
        }
        Ok(Self {
            url: SecretString::from(raw.to_owned()),
            max_connections,
            acquire_timeout: env.seconds("DATABASE_ACQUIRE_TIMEOUT_SECS", 5)?,
            statement_timeout: env.seconds("DATABASE_STATEMENT_TIMEOUT_SECS", 30)?,
            idle_timeout: env.seconds("DATABASE_IDLE_TIMEOUT_SECS", 60)?,
        })
    }

    /// The same settings pointed at another database on the same server (the test
    /// harness makes one database per test; the local runner creates its own).
    pub fn with_database(&self, database: &str) -> Self {
        let mut url = Url::parse(self.url.expose_secret()).expect("validated at load");
        url.set_path(&format!("/{database}"));
        Self {
            url: SecretString::from(url.to_string()),
            ..self.clone()
        }
    }

    /// The database name the URL points at.
    pub fn database_name(&self) -> String {
        let url = Url::parse(self.url.expose_secret()).expect("validated at load");
        url.path().trim_start_matches('/').to_owned()
    }
}

/// Checks the form of a database URL without ever echoing it: it may carry a password.
fn validate_postgres_url(raw: &str) -> Result<(), ConfigError> {
    let invalid = |reason: &str| ConfigError::Invalid {
        name: DatabaseConfig::URL_VAR,
        reason: reason.to_owned(),
    };
    let url = Url::parse(raw).map_err(|e| invalid(&format!("not a URL ({e})")))?;
    if !matches!(url.scheme(), "postgres" | "postgresql") {
        return Err(invalid("the scheme must be postgres:// or postgresql://"));
    }
    if url.host_str().is_none_or(str::is_empty) && !url.query().is_some_and(|q| q.contains("host="))
    {
        return Err(invalid("it names no host"));
    }
    if url.path().trim_start_matches('/').is_empty() {
        return Err(invalid(
            "it names no database (add /<database> after the host)",
        ));
    }
    Ok(())
}

/// Settings of the local runner.
#[derive(Debug, Clone)]
pub struct LocalConfig {
    /// `LISTEN_ADDR`, default `127.0.0.1:3000`.
    pub listen_addr: SocketAddr,
    /// `LOCAL_JWT_SECRET`: the HS256 key of the local runner's tokens; the runner
    /// generates (and prints) one when unset.
    pub jwt_secret: Option<SecretString>,
}

impl LocalConfig {
    pub const DEFAULT_LISTEN_ADDR: &'static str = "127.0.0.1:3000";

    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let listen_addr = env
            .parse("LISTEN_ADDR", "a socket address such as 127.0.0.1:3000")?
            .unwrap_or_else(|| Self::DEFAULT_LISTEN_ADDR.parse().expect("constant address"));
        Ok(Self {
            listen_addr,
            jwt_secret: env
                .get("LOCAL_JWT_SECRET")
                .map(|s| SecretString::from(s.to_owned())),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_database_url_names_the_variable_in_one_line() {
        let err = DatabaseConfig::from_env(&Env::default()).unwrap_err();
        let line = err.to_string();
        assert!(line.starts_with("DATABASE_URL is not set"), "{line}");
        assert!(!line.contains('\n'));
    }

    #[test]
    fn blank_counts_as_unset() {
        let env = Env::from_pairs([("DATABASE_URL", "  ")]);
        assert!(matches!(
            DatabaseConfig::from_env(&env),
            Err(ConfigError::Missing {
                name: "DATABASE_URL",
                ..
            })
        ));
    }

    #[test]
    fn malformed_database_url_never_echoes_the_password() {
        for raw in [
            "mysql://u:hunter2@db/x",
            "postgres://u:hunter2@db",
            "not a url hunter2",
        ] {
            let env = Env::from_pairs([("DATABASE_URL", raw)]);
            let line = DatabaseConfig::from_env(&env).unwrap_err().to_string();
            assert!(line.starts_with("DATABASE_URL is malformed"), "{line}");
            assert!(!line.contains("hunter2"), "{line}");
        }
    }

    #[test]
    fn debug_of_database_config_hides_the_url() {
        let env = Env::from_pairs([("DATABASE_URL", "postgres://u:hunter2@db:5432/x")]);
        let config = DatabaseConfig::from_env(&env).unwrap();
        let debug = format!("{config:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
        assert_eq!(config.database_name(), "x");
        assert_eq!(config.with_database("y").database_name(), "y");
    }

    #[test]
    fn pool_size_defaults_to_two_inside_lambda() {
        let url = ("DATABASE_URL", "postgres://u@db/x");
        let local = DatabaseConfig::from_env(&Env::from_pairs([url])).unwrap();
        let lambda =
            DatabaseConfig::from_env(&Env::from_pairs([url, ("AWS_LAMBDA_FUNCTION_NAME", "f")]))
                .unwrap();
        assert_eq!(local.max_connections, 10);
        assert_eq!(lambda.max_connections, 2);
        let bad = Env::from_pairs([url, ("DATABASE_MAX_CONNECTIONS", "0")]);
        assert!(DatabaseConfig::from_env(&bad).is_err());
        let bad = Env::from_pairs([url, ("DATABASE_ACQUIRE_TIMEOUT_SECS", "soon")]);
        let line = DatabaseConfig::from_env(&bad).unwrap_err().to_string();
        assert!(
            line.starts_with("DATABASE_ACQUIRE_TIMEOUT_SECS is malformed"),
            "{line}"
        );
    }

    #[test]
    fn listen_addr_is_parsed() {
        let config = LocalConfig::from_env(&Env::default()).unwrap();
        assert_eq!(config.listen_addr.to_string(), "127.0.0.1:3000");
        let bad = Env::from_pairs([("LISTEN_ADDR", "localhost")]);
        assert!(LocalConfig::from_env(&bad).is_err());
    }
}
