//! `cwsync-local`: the whole of cwsync in one process on a developer's machine.

use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use cwsync::api::{AuthConfig, Role};
use cwsync::config::{ConfigError, DatabaseConfig, Env, LocalConfig};
use cwsync::queue::{EmbeddedQueues, EmbeddedSettings};
use cwsync::{api, db, telemetry};
use secrecy::SecretString;

/// The database the runner uses when `DATABASE_URL` is unset; it is created if missing.
const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/cwsync";

#[derive(Parser)]
#[command(
    name = "cwsync-local",
    version,
    about = "Runs cwsync locally in one process"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Migrate the database, then serve the API (the default).
    Serve {
        /// Address to listen on (overrides LISTEN_ADDR; default 127.0.0.1:3000).
        #[arg(long)]
        listen: Option<SocketAddr>,
    },
    /// Apply pending migrations and exit.
    Migrate,
}

#[tokio::main]
async fn main() -> ExitCode {
    telemetry::init_local();
    let cli = Cli::parse();
    let env = Env::from_process();
    match run(cli, &env).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            match e.downcast_ref::<ConfigError>() {
                Some(config) => eprintln!("cwsync-local: {config}"),
                None => eprintln!("cwsync-local: {e:#}"),
            }
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli, env: &Env) -> anyhow::Result<()> {
    let database = DatabaseConfig::from_env_or(env, DEFAULT_DATABASE_URL)?;
    let local = LocalConfig::from_env(env)?;
    db::create_database_if_missing(&database)
        .await
        .with_context(|| {
            format!(
                "could not reach Postgres to create database {:?}",
                database.database_name()
            )
        })?;
    let pool = db::pool(&database)?;
    db::migrate(&pool).await.context("migrating the database")?;
    match cli.command.unwrap_or(Command::Serve { listen: None }) {
        Command::Migrate => {
            println!("Migrated database {:?}.", database.database_name());
            Ok(())
        }
        Command::Serve { listen } => {
            let addr = listen.unwrap_or(local.listen_addr);
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("could not listen on {addr}"))?;
            let addr = listener.local_addr()?;
            // Without LOCAL_JWT_SECRET, a secret for this run only, and a token for it.
            let (secret, generated) = match &local.jwt_secret {
                Some(secret) => (secret.clone(), false),
                None => {
                    let random = format!(
                        "{}{}",
                        uuid::Uuid::new_v4().simple(),
                        uuid::Uuid::new_v4().simple()
                    );
                    (SecretString::from(random), true)
                }
            };
            let auth = AuthConfig::local_jwt(env, &secret)?;
            let mut banner = format!(
                "cwsync-local is serving the API at http://{addr}/api\n  health: curl -s http://{addr}/api/health\n"
            );
            if generated {
                let token = auth.mint_local_token(
                    "local-admin",
                    Role::Admin,
                    Duration::from_secs(12 * 3600),
                )?;
                banner.push_str(&format!(
                    "  admin token (valid 12 h, this run only): {token}\n"
                ));
            }
            // Whoever started us may stop reading stdout; that is no reason to stop serving.
            let _ = std::io::stdout().write_all(banner.as_bytes());
            let _ = std::io::stdout().flush();
            let queues = Arc::new(EmbeddedQueues::new(EmbeddedSettings::default()));
            let app = api::router(api::AppState::new(pool, queues, auth));
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = tokio::signal::ctrl_c().await;
                    tracing::info!("stopping: Ctrl-C received");
                })
                .await
                .context("serving the API")
        }
    }
}
