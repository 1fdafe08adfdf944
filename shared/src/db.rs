//! The database settings (`DATABASE_*`), the Postgres pool and the embedded migrations.
//!
//! A process builds one pool at start (a Lambda at cold start) and shares it; the pool
//! connects lazily, so a cold start does not wait for the database until the first query
//! needs it.

use std::str::FromStr;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use sqlx::migrate::{MigrateDatabase, MigrateError, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Postgres};
use url::Url;

use crate::config::{ConfigError, Env};

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

/// The migrations of `migrations/`, compiled into every binary.
pub static MIGRATOR: Migrator = sqlx::migrate!("../migrations");

/// The connection options of `config`, with the server-side statement timeout.
pub fn connect_options(config: &DatabaseConfig) -> Result<PgConnectOptions, sqlx::Error> {
    let statement_timeout = format!("{}ms", config.statement_timeout.as_millis());
    Ok(PgConnectOptions::from_str(config.url.expose_secret())?
        .application_name("cwsync")
        .options([("statement_timeout", statement_timeout.as_str())]))
}

/// Builds the process's pool. No connection is opened until the first query.
pub fn pool(config: &DatabaseConfig) -> Result<PgPool, sqlx::Error> {
    Ok(PgPoolOptions::new()
        .max_connections(config.max_connections)
        .min_connections(0)
        .acquire_timeout(config.acquire_timeout)
        .idle_timeout(Some(config.idle_timeout))
        // A connection that sat in a frozen Lambda may be dead; checking it costs one
        // round trip and saves a failed statement.
        .test_before_acquire(true)
        .max_lifetime(Some(Duration::from_secs(30 * 60)))
        .connect_lazy_with(connect_options(config)?))
}

/// Applies every pending migration. Safe to run concurrently and repeatedly: sqlx takes an
/// advisory lock and skips what is already applied.
pub async fn migrate(pool: &PgPool) -> Result<(), MigrateError> {
    MIGRATOR.run(pool).await
}

/// Creates the database `config` points at when it does not exist yet (the local runner
/// does this so that a newcomer needs nothing but a running server).
pub async fn create_database_if_missing(config: &DatabaseConfig) -> Result<bool, sqlx::Error> {
    let url = config.url.expose_secret();
    if Postgres::database_exists(url).await? {
        return Ok(false);
    }
    match Postgres::create_database(url).await {
        Ok(()) => Ok(true),
        // Another process created it between the check and the create.
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42P04") => Ok(false),
        Err(e) => Err(e),
    }
}

/// Whether the database answers a trivial query.
pub async fn ping(pool: &PgPool) -> Result<(), sqlx::Error> {
    sqlx::query_scalar!("SELECT 1 AS \"one!\"")
        .fetch_one(pool)
        .await
        .map(|_| ())
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
}
