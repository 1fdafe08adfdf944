//! `cwsync-local`: the whole of cwsync in one process on a developer's machine: the API
//! on a loopback port, every consumer, the sweeper and the schedule, over the embedded
//! FIFO queue (or SQS), against Postgres, and, without a Chatwork token, a fake Chatwork
//! serving demo data.

mod config;
mod connections;
mod demo;
mod progress;
mod system;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, FromArgMatches, Parser, Subcommand};
use cwsync::api::{AuthConfig, Role};
use cwsync::chatwork::ChatworkConfig;
use cwsync::config::{ConfigError, Env};
use cwsync::db::{self, DatabaseConfig};
use cwsync::queue::QueueConfig;
use cwsync::schedule::ScheduleSettings;
use cwsync::summary::SummaryConfig;
use cwsync::webhook::WebhookConfig;
use cwsync::{api, telemetry};
use secrecy::{ExposeSecret, SecretString};

use crate::config::LocalConfig;
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
    Serve(ServeArgs),
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

/// The settings of `serve`, read the same way whether `serve` is named or implied.
#[derive(Args, Debug, Clone, PartialEq, Eq)]
struct ServeArgs {
    /// Address of the API (overrides LISTEN_ADDR; default 127.0.0.1:3000).
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Seconds between room checks (0: none): each reads Chatwork's room list and fetches
    /// the rooms with new or edited messages.
    #[arg(long, env = "LOCAL_ROOM_CHECK_EVERY_SECS", default_value_t = 15)]
    check_every_secs: u64,
    /// Minutes between fixed-interval messages syncs of every active room (0: none).
    /// Default: none while the room check runs, 15 when it is off.
    #[arg(long, env = "LOCAL_MESSAGES_SYNC_EVERY_MINUTES")]
    sync_every_minutes: Option<u64>,
    /// Seconds between the lines that sum up webhook deliveries (stored, ignored,
    /// refused), printed only when there were some (0: none).
    #[arg(long, env = "LOCAL_WEBHOOK_SUMMARY_EVERY_SECS", default_value_t = 60)]
    webhook_summary_every_secs: u64,
}

impl ServeArgs {
    /// What `cwsync-local` without a subcommand runs: `serve` with its settings from the
    /// environment and their defaults, exactly as if `serve` had been named.
    fn implied() -> Self {
        let command = Self::augment_args(clap::Command::new("serve"));
        let matches = command
            .try_get_matches_from(["serve"])
            .unwrap_or_else(|e| e.exit());
        Self::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
    }

    /// The fixed-interval messages sync's period, if any.
    fn messages_sync_every(&self) -> Option<Duration> {
        let default = if self.check_every_secs > 0 { 0 } else { 15 };
        let minutes = self.sync_every_minutes.unwrap_or(default);
        (minutes > 0).then(|| Duration::from_secs(minutes * 60))
    }

    fn webhook_summary_every(&self) -> Option<Duration> {
        (self.webhook_summary_every_secs > 0)
            .then(|| Duration::from_secs(self.webhook_summary_every_secs))
    }

    fn room_check_every(&self) -> Option<Duration> {
        (self.check_every_secs > 0).then(|| Duration::from_secs(self.check_every_secs))
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let env = Env::from_process();
    let serving = matches!(cli.command, None | Some(Command::Serve(_)));
    // Webhook deliveries are summarized once a minute (progress::webhook_lines) rather
    // than logged one by one, unless RUST_LOG asks for them.
    let quiet_deliveries = format!("{}=off", cwsync::api::DELIVERY_LOG_TARGET);
    if serving && std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        // On a terminal the live job view speaks; logs only when something is wrong
        // (unless RUST_LOG asks for more).
        telemetry::init_local_with(&env, &format!("warn,{quiet_deliveries}"));
    } else {
        telemetry::init_local_with(
            &env,
            &format!("{},{quiet_deliveries}", telemetry::DEFAULT_FILTER),
        );
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
        None | Some(Command::Serve(_)) => Some(SummaryConfig::from_env(env)?),
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
    match cli
        .command
        .unwrap_or_else(|| Command::Serve(ServeArgs::implied()))
    {
        Command::Migrate => {
            say(&format!(
                "Migrated database {:?}.\n",
                database.database_name()
            ));
            Ok(())
        }
        Command::Token { .. } => unreachable!("handled above"),
        Command::Serve(args) => {
            let summary = summary.expect("read for serve above");
            serve(env, &local, &summary, pool, &args).await
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
    args: &ServeArgs,
) -> anyhow::Result<()> {
    let addr = args.listen.unwrap_or(local.listen_addr);
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
    let mut webhooks = WebhookConfig::from_env(env)?;
    let configured_webhook_tokens = webhooks.keys.len();
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
            Some(Arc::new(fake))
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

    let connections = connections::build(env, &pool, &chatwork, fake.as_deref(), addr)
        .await
        .context("setting up the Chatwork connections")?;
    // Copied files: FILES_BUCKET or FILES_DIR, else a folder of the data folder.
    let files_config =
        cwsync::files::FilesConfig::from_env(env, Some(connections::data_dir(env).join("files")))?;
    let file_store = files_config.store().await;
    let file_copies = file_store.clone().map(|store| cwsync::files::FileCopies {
        store,
        max_bytes: files_config.max_bytes,
    });
    let mut consumers = system::dead_letter_consumers(&pool, &registry);
    consumers.extend(
        system::work_consumers(
            &pool,
            &registry,
            &connections.connections,
            file_copies,
            cwsync::sync::check::RoomCheckSettings::from_env(env)?,
            &summary,
            queues.clone(),
        )
        .await?,
    );
    let mut workers = Workers::start(queues.clone(), consumers);
    let mut settings =
        ScheduleSettings::from_env(env)?.with_connections(connections.connections.clone());
    let cadence = Cadence {
        sweep: Duration::from_secs(60),
        room_check: args.room_check_every(),
        messages_sync: args.messages_sync_every(),
        retention: Duration::from_secs(24 * 3600),
    };
    if let Some(every) = cadence.room_check {
        // The local schedule runs each check on its own tick.
        settings.room_check.cadence = every;
        settings.room_check.per_invocation = 1;
    }
    settings.cadences = cadence.cadences();
    let cadences = settings.cadences.clone();
    {
        let (pool, queues, cadence) = (pool.clone(), queues.clone(), cadence.clone());
        workers.spawn(move |stop| system::run_schedule(pool, queues, settings, cadence, stop));
    }
    {
        let pool = pool.clone();
        let registry = registry.clone();
        workers.spawn(move |stop| progress::watch(pool, registry, stop));
    }
    if let Some(every) = args.webhook_summary_every() {
        workers.spawn(move |stop| progress::webhook_lines(every, stop));
    }
    let mut demo_webhook = None;
    if let Some(fake) = &fake {
        let company = demo::ensure_company(&pool)
            .await
            .context("creating the demo company")?;
        let pool = pool.clone();
        workers.spawn(move |stop| demo::link_when_rooms_arrive(pool, company, stop));
        // One demo room fed by webhook: the fake delivers it to this run's own route,
        // signed with a token this run accepts, for that room only, besides the
        // configured ones.
        let url = format!("http://{addr}{}", cwsync::webhook::WEBHOOK_PATH);
        let token = demo::register_webhook(fake, &url).context("the demo's webhook")?;
        let configured = env.get(WebhookConfig::TOKENS_VAR).unwrap_or("");
        webhooks = WebhookConfig::from_tokens(
            WebhookConfig::TOKENS_VAR,
            &format!("{configured},{token}@{}", demo::WEBHOOK_ROOM),
        )?;
        let fed = fake.clone();
        workers.spawn(move |stop| demo::feed(fed, stop));
        demo_webhook = Some(url);
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
    banner.push_str(&connections.describe());
    banner.push_str(&format!("  queues: {}\n", backend.describe()));
    banner.push_str(&match configured_webhook_tokens {
        0 if demo_webhook.is_some() => format!(
            "  Chatwork webhooks: http://{addr}{} (the demo's token; add your webhooks' with CHATWORK_WEBHOOK_TOKENS)\n",
            cwsync::webhook::WEBHOOK_PATH
        ),
        0 => format!(
            "  Chatwork webhooks: http://{addr}{} refuses every delivery until CHATWORK_WEBHOOK_TOKENS holds a webhook's token\n",
            cwsync::webhook::WEBHOOK_PATH
        ),
        n => format!(
            "  Chatwork webhooks: http://{addr}{} ({n} token(s) from CHATWORK_WEBHOOK_TOKENS)\n",
            cwsync::webhook::WEBHOOK_PATH
        ),
    });
    if let (Some(url), Some(fake)) = (&demo_webhook, &fake) {
        let room = fake
            .room(demo::WEBHOOK_ROOM)
            .map(|r| r.name)
            .unwrap_or_default();
        banner.push_str(&format!(
            "  demo webhook: room {} ({room}) is fed by webhook: the fake posts a message there every {} s and delivers it to {url}, signed with a token this run accepts (no sync fetches it)\n",
            demo::WEBHOOK_ROOM,
            demo::FEED_EVERY.as_secs()
        ));
    }
    banner.push_str(&match cadence.room_check {
        Some(every) => format!(
            "  room check: every {} s (LOCAL_ROOM_CHECK_EVERY_SECS): one room list, then only the rooms with new or edited messages\n",
            every.as_secs()
        ),
        None => "  room check: off (LOCAL_ROOM_CHECK_EVERY_SECS=0)\n".to_owned(),
    });
    if let Some(every) = cadence.messages_sync {
        banner.push_str(&format!(
            "  fixed messages sync of every room: every {} min (LOCAL_MESSAGES_SYNC_EVERY_MINUTES)\n",
            every.as_secs() / 60
        ));
    }
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
        "  admin token (valid {TOKEN_HOURS} h): {admin_token}\n\nTry it:\n  export TOKEN={admin_token}\n  curl -s -X POST -H \"Authorization: Bearer $TOKEN\" {base}/chatwork/rooms/sync\n  curl -s -X POST -H \"Authorization: Bearer $TOKEN\" -H 'Content-Type: application/json' -d '{{}}' {base}/chatwork/messages/sync\n  curl -s -H \"Authorization: Bearer $TOKEN\" '{base}/jobs?limit=5'\n\nJobs show here as they run. Ctrl-C (or SIGTERM) stops (work in flight finishes first).\n"
    ));
    say(&banner);

    let mut state = api::AppState::new(pool.clone(), queues, auth)
        .with_registry(registry)
        .with_webhook_keys(Arc::new(webhooks.keys))
        .with_connections(connections.connections.clone())
        .with_cadences(cadences);
    if let Some(store) = file_store {
        state = state.with_files(store);
    }
    let app = api::router(state);
    // Our server rather than axum::serve: hyper's parser limits sit above the API's own,
    // so an oversized request gets our JSON error (see cwsync::api::serve).
    let stopping = tokio_util::sync::CancellationToken::new();
    let server = tokio::spawn(api::serve(
        listener,
        app,
        stopping.clone().cancelled_owned(),
    ));
    stop_requested().await;
    say("Stopping: no new work is taken; waiting for work in flight...\n");
    // The server (requests in flight get ServeOptions::drain, 5 s, then are dropped) and
    // the consumers stop side by side.
    stopping.cancel();
    let (served, drained) = tokio::join!(server, workers.stop());
    if let Err(e) = served {
        tracing::warn!(error = %e, "the API server ended abnormally");
    }
    if !drained {
        say("Some work was still running after 30 s; it runs again at the next start.\n");
    }
    drop(fake);
    say("Stopped.\n");
    Ok(())
}

/// Resolves at Ctrl-C (SIGINT) or SIGTERM, the signal systemd, Docker and Kubernetes stop
/// a process with: both drain the work in flight before the runner exits.
async fn stop_requested() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = terminate.recv() => {}
                }
                return;
            }
            Err(e) => tracing::warn!(error = %e, "cannot listen for SIGTERM; only Ctrl-C stops"),
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
