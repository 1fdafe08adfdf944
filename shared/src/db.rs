//! The Postgres pool and the embedded migrations.
//!
//! A process builds one pool at start (a Lambda at cold start) and shares it; the pool
//! connects lazily, so a cold start does not wait for the database until the first query
//! needs it.

use std::str::FromStr;

use secrecy::ExposeSecret;
use sqlx::migrate::{MigrateDatabase, MigrateError, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Postgres};

use crate::config::DatabaseConfig;

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
        .max_lifetime(Some(std::time::Duration::from_secs(30 * 60)))
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
