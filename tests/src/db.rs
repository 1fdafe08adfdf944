//! A database per test.

use std::time::Duration;

use cwsync::config::Env;
use cwsync::db::DatabaseConfig;
use secrecy::ExposeSecret;
// The names are generated here (a prefix and a UUID), never taken from input.
use sqlx::{AssertSqlSafe, Connection, Executor, PgConnection, PgPool};

/// The server the tests use when `DATABASE_URL` is unset.
pub const DEFAULT_SERVER_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// Prefix of every test database; `scripts/test` drops leftovers of killed runs.
pub const TEST_DB_PREFIX: &str = "cwsync_test_";

/// A database of its own for one test. Dropping it drops the database (set
/// `CWSYNC_KEEP_TEST_DBS=1` to keep it for a look after a failure).
pub struct TestDb {
    pub pool: PgPool,
    pub config: DatabaseConfig,
    pub name: String,
    server: DatabaseConfig,
}

impl TestDb {
    /// A new database with every migration applied.
    pub async fn new() -> Self {
        let db = Self::empty().await;
        cwsync::db::migrate(&db.pool)
            .await
            .expect("migrations apply to a fresh database");
        db
    }

    /// A new database with nothing in it (for tests of the migrations themselves).
    pub async fn empty() -> Self {
        let server = DatabaseConfig::from_env_or(&Env::from_process(), DEFAULT_SERVER_URL)
            .expect("DATABASE_URL for the tests");
        // The creation time in the name lets scripts/test drop leftovers of killed runs
        // without touching the databases of a run still going.
        let created = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let name = format!(
            "{TEST_DB_PREFIX}{created}_{}",
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        );
        let mut admin = PgConnection::connect(server.url.expose_secret())
            .await
            .expect("the test Postgres server is reachable (is it running? see scripts/test)");
        admin
            .execute(sqlx::raw_sql(AssertSqlSafe(format!(
                r#"CREATE DATABASE "{name}""#
            ))))
            .await
            .expect("create the test database");
        admin.close().await.ok();
        let mut config = server.with_database(&name);
        // Many tests (and test processes) share one server of 100 connections: keep each
        // test's pool small, and let idle connections go quickly.
        config.max_connections = config.max_connections.min(4);
        config.idle_timeout = std::time::Duration::from_secs(5);
        let pool = cwsync::db::pool(&config).expect("pool options");
        Self {
            pool,
            config,
            name,
            server,
        }
    }

    /// A second, independent pool on the same database (a "second process").
    pub fn another_pool(&self) -> PgPool {
        cwsync::db::pool(&self.config).expect("pool options")
    }

    /// The address of the database server, for a [`TcpProxy`](crate::TcpProxy) in front
    /// of it.
    pub fn server_addr(&self) -> std::net::SocketAddr {
        use std::net::ToSocketAddrs;
        let url = url::Url::parse(self.config.url.expose_secret()).expect("validated at load");
        let host = url.host_str().expect("a host").to_owned();
        (host.as_str(), url.port().unwrap_or(5432))
            .to_socket_addrs()
            .expect("the server's host resolves")
            .next()
            .expect("an address")
    }

    /// This database's settings with the server reached at `addr` instead (a proxy), in
    /// plain TCP so that the proxy can read the protocol.
    pub fn config_via(&self, addr: std::net::SocketAddr) -> DatabaseConfig {
        let mut url = url::Url::parse(self.config.url.expose_secret()).expect("validated at load");
        url.set_host(Some(&addr.ip().to_string()))
            .expect("an IP host");
        url.set_port(Some(addr.port())).expect("a port");
        let query: Vec<(String, String)> = url
            .query_pairs()
            .filter(|(k, _)| k != "sslmode")
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        url.query_pairs_mut()
            .clear()
            .extend_pairs(query)
            .append_pair("sslmode", "disable");
        DatabaseConfig {
            url: secrecy::SecretString::from(url.to_string()),
            ..self.config.clone()
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if std::env::var_os("CWSYNC_KEEP_TEST_DBS").is_some() {
            eprintln!("kept test database {}", self.name);
            return;
        }
        let url = self.server.url.expose_secret().to_owned();
        let name = self.name.clone();
        // Drop runs inside the test's runtime, which cannot block on a future: do the
        // work on a thread of its own with a runtime of its own.
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime to drop the test database");
            rt.block_on(async move {
                let mut admin = PgConnection::connect(&url).await?;
                admin
                    .execute(sqlx::raw_sql(AssertSqlSafe(format!(
                        r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#
                    ))))
                    .await?;
                admin.close().await
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!(
                "could not drop test database {}; scripts/test drops leftovers",
                self.name
            );
        }
    }
}

/// Waits until `check` holds, polling; for assertions on work that another task finishes.
pub async fn eventually<F, Fut>(what: &str, timeout: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if check().await {
            return;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
