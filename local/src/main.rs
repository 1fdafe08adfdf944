//! `cwsync-local`: the whole of cwsync in one process on a developer's machine: the API
//! on a loopback port, every consumer, the sweeper and the schedule, over the embedded
//! FIFO queue (or SQS), against Postgres, and, without a Chatwork token, a fake Chatwork
//! serving demo data.

mod demo;
mod progress;
mod system;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use cwsync::api::{AuthConfig, Role};
use cwsync::config::{
    ChatworkConfig, ConfigError, DatabaseConfig, Env, LocalConfig, QueueConfig, SummaryConfig,
};
use cwsync::schedule::ScheduleSettings;
use cwsync::{api, db, telemetry};
use secrecy::{ExposeSecret, SecretString};

use crate::progress::say;
use crate::system::{Cadence, QueueBackend, Workers};

/// The database the runner uses when `DATABASE_URL` is unset; it is created if missing.
const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/cwsync";
/// How long the printed admin token lives.
const TOKEN_HOURS: u64 = 12;

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
    /// Migrate the database, then run everything (the default).
    Serve {
        /// Address of the API (overrides LISTEN_ADDR; default 127.0.0.1:3000).
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Minutes between scheduled incremental messages syncs (0: none).
        #[arg(long, env = "LOCAL_MESSAGES_SYNC_EVERY_MINUTES", default_value_t = 15)]
        sync_every_minutes: u64,
    },
    /// Apply pending migrations and exit.
    Migrate,
    /// Print a token for the local API (needs LOCAL_JWT_SECRET, the running server's).
    Token {
        /// The user id (`sub`).
        #[arg(long, default_value = "local-admin")]
        sub: String,
        /// admin, writer or reader.
        #[arg(long, default_value = "admin")]
        role: String,
        /// Hours the token is valid.
        #[arg(long, default_value_t = TOKEN_HOURS)]
        hours: u64,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let env = Env::from_process();
    let serving = matches!(cli.command, None | Some(Command::Serve { .. }));
    if serving && std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        // On a terminal the live job view speaks; logs only when something is wrong
        // (unless RUST_LOG asks for more).
        telemetry::init_local_with("warn");
    } else {
        telemetry::init_local();
    }
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
    let local = LocalConfig::from_env(env)?;
    if let Some(Command::Token { sub, role, hours }) = &cli.command {
        return token(env, &local, sub, role, *hours);
    }
    let database = DatabaseConfig::from_env_or(env, DEFAULT_DATABASE_URL)?;
    // Settings the server needs are checked before anything connects.
    let summary = match &cli.command {
        None | Some(Command::Serve { .. }) => Some(SummaryConfig::from_env(env)?),
        _ => None,
    };
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
    match cli.command.unwrap_or(Command::Serve {
        listen: None,
        sync_every_minutes: 15,
    }) {
        Command::Migrate => {
            say(&format!(
                "Migrated database {:?}.\n",
                database.database_name()
            ));
            Ok(())
        }
        Command::Token { .. } => unreachable!("handled above"),
        Command::Serve {
            listen,
            sync_every_minutes,
        } => {
            let summary = summary.expect("read for serve above");
            serve(env, &local, &summary, pool, listen, sync_every_minutes).await
        }
    }
}

fn token(env: &Env, local: &LocalConfig, sub: &str, role: &str, hours: u64) -> anyhow::Result<()> {
    let Some(secret) = &local.jwt_secret else {
        anyhow::bail!(
            "LOCAL_JWT_SECRET is not set: set it to the secret the running cwsync-local printed (or the one you started it with)"
        );
    };
    let role = Role::parse(role)
        .with_context(|| format!("unknown role {role:?}: use admin, writer or reader"))?;
    let auth = AuthConfig::local_jwt(env, secret)?;
    let token = auth.mint_local_token(sub, role, Duration::from_secs(hours * 3600))?;
    say(&format!("{token}\n"));
    Ok(())
}

async fn serve(
    env: &Env,
    local: &LocalConfig,
    summary: &SummaryConfig,
    pool: sqlx::PgPool,
    listen: Option<SocketAddr>,
    sync_every_minutes: u64,
) -> anyhow::Result<()> {
    let addr = listen.unwrap_or(local.listen_addr);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("could not listen on {addr}"))?;
    let addr = listener.local_addr()?;
    let base = format!("http://{addr}/api");

    // Who may call: tokens signed with LOCAL_JWT_SECRET, or with a secret of this run.
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
    let admin_token = auth.mint_local_token(
        "local-admin",
        Role::Admin,
        Duration::from_secs(TOKEN_HOURS * 3600),
    )?;

    // Chatwork: the real one with a token, else the fake with the demo data.
    let mut chatwork = ChatworkConfig::from_env(env)?;
    let fake = match &chatwork.token {
        Some(_) => None,
        None => {
            let fake_addr: SocketAddr = env
                .parse(
                    "LOCAL_FAKE_CHATWORK_ADDR",
                    "a socket address such as 127.0.0.1:8090",
                )?
                .unwrap_or_else(|| "127.0.0.1:0".parse().expect("constant address"));
            let fake = demo::start_fake(fake_addr)
                .await
                .context("starting the fake Chatwork")?;
            chatwork.base_url = fake.base_url().parse().context("the fake's URL")?;
            chatwork.token = Some(SecretString::from(fake.token().to_owned()));
            Some(fake)
        }
    };

    let summary = cwsync::summary::SummaryContext::from_config(summary)?;

    let registry = cwsync::job_types::registry();
    let queue_config = QueueConfig::from_env(env, &registry.work_queues())?;
    let backend = QueueBackend::from_config(&queue_config, &registry).await?;
    let queues = backend.queues();
    let recovered = system::recover(&pool, &backend, &registry)
        .await
        .context("re-sending unfinished work")?;

    let mut consumers = system::dead_letter_consumers(&pool, &registry);
    consumers.extend(system::work_consumers(&pool, &registry, &chatwork, &summary).await?);
    let mut workers = Workers::start(queues.clone(), consumers);
    let settings = ScheduleSettings::from_env(env)?;
    let cadence = Cadence {
        sweep: Duration::from_secs(60),
        messages_sync: (sync_every_minutes > 0)
            .then(|| Duration::from_secs(sync_every_minutes * 60)),
        retention: Duration::from_secs(24 * 3600),
    };
    {
        let (pool, queues) = (pool.clone(), queues.clone());
        workers.spawn(move |stop| system::run_schedule(pool, queues, settings, cadence, stop));
    }
    {
        let pool = pool.clone();
        let registry = registry.clone();
        workers.spawn(move |stop| progress::watch(pool, registry, stop));
    }
    if fake.is_some() {
        let company = demo::ensure_company(&pool)
            .await
            .context("creating the demo company")?;
        let pool = pool.clone();
        workers.spawn(move |stop| demo::link_when_rooms_arrive(pool, company, stop));
    }

    // The console first: the token rides in the fragment, which the browser never
    // sends to a server; the page keeps it in the tab's sessionStorage.
    let mut banner = format!(
        "Open the console: http://{addr}/#token={admin_token}\n  (it signs you in as admin; the address carries this run's admin token)\n\ncwsync-local is serving the API at {base}\n"
    );
    match &fake {
        Some(fake) => banner.push_str(&format!(
            "  Chatwork: a fake with demo data at {} (set CHATWORK_API_TOKEN to use the real one)\n  demo company: {} (linked to its two rooms after the first rooms sync)\n",
            fake.base_url(),
            demo::COMPANY
        )),
        None => banner.push_str(&format!("  Chatwork: {}\n", chatwork.base_url)),
    }
    banner.push_str(&format!("  queues: {}\n", backend.describe()));
    banner.push_str(&match summary.describe() {
        "extractive" => "  summaries: the built-in extractive summarizer (set SUMMARY_MODEL_BASE_URL and SUMMARY_MODEL for a model)\n".to_owned(),
        model => format!("  summaries: model {model}\n"),
    });
    if recovered > 0 {
        banner.push_str(&format!(
            "  re-sent {recovered} unfinished item(s) of earlier jobs\n"
        ));
    }
    if generated {
        banner.push_str(&format!(
            "  LOCAL_JWT_SECRET was not set; this run's secret: {}\n  (more tokens: LOCAL_JWT_SECRET=<that secret> cwsync-local token --sub alice --role writer)\n",
            secret.expose_secret()
        ));
    }
    banner.push_str(&format!(
        "  admin token (valid {TOKEN_HOURS} h): {admin_token}\n\nTry it:\n  export TOKEN={admin_token}\n  curl -s -X POST -H \"Authorization: Bearer $TOKEN\" {base}/chatwork/rooms/sync\n  curl -s -X POST -H \"Authorization: Bearer $TOKEN\" -H 'Content-Type: application/json' -d '{{}}' {base}/chatwork/messages/sync\n  curl -s -H \"Authorization: Bearer $TOKEN\" '{base}/jobs?limit=5'\n\nJobs show here as they run. Ctrl-C stops (work in flight finishes first).\n"
    ));
    say(&banner);

    let app = api::router(api::AppState::new(pool.clone(), queues, auth).with_registry(registry));
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await;
    say("Stopping: no new work is taken; waiting for work in flight...\n");
    let drained = workers.stop().await;
    if !drained {
        say("Some work was still running after 30 s; it runs again at the next start.\n");
    }
    drop(fake);
    say("Stopped.\n");
    served.context("serving the API")
}
