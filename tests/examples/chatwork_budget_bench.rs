//! How much of Chatwork's allowed rate N processes sharing one token achieve through the
//! shared budget, and how many 429s they get. Each "process" is a client with a Postgres
//! pool of its own, running `--callers` concurrent loops of calls against the fake
//! Chatwork with a scaled rate limit, as fast as the budget lets them.
//!
//! ```sh
//! cargo run --release -p cwsync-tests --example chatwork_budget_bench -- --clients 3
//! ```
//!
//! The run lasts `--windows` + 2 windows. What is measured is the rate sustained over
//! whole windows: the requests Chatwork counted in each window, over the time from the
//! first measured window's start to the start of the window after the last one (a slow
//! client makes those starts drift apart); the ratio printed is that rate over the
//! allowed one (limit / window).

use std::time::Duration;

use clap::{Parser, ValueEnum};
use cwsync::chatwork::{ChatworkClient, ChatworkError, ClientSettings, MessagesOptions};
use cwsync::config::Env;
use cwsync::db::{self, DatabaseConfig};
use fake_chatwork::{FakeChatwork, FakeSettings, WindowKind};
use secrecy::SecretString;
use tokio::time::Instant;
use url::Url;

#[derive(Clone, Copy, ValueEnum)]
enum Windows {
    /// A window starts with the first request after the previous one ended.
    FirstRequest,
    /// Windows on a fixed grid.
    Aligned,
    /// Windows from the first request that end at a fraction of a second, with the reset
    /// header rounded down.
    Unrounded,
}

#[derive(Parser)]
#[command(about = "Achieved / allowed Chatwork rate and 429s for N processes on one token")]
struct Args {
    /// Processes (clients with pools of their own) sharing the token.
    #[arg(long, default_value_t = 3)]
    clients: usize,
    /// Concurrent callers per process.
    #[arg(long, default_value_t = 2)]
    callers: usize,
    /// Requests allowed per window.
    #[arg(long, default_value_t = 100)]
    limit: u32,
    /// Window length in seconds.
    #[arg(long, default_value_t = 30)]
    window_secs: u64,
    /// Windows measured (the run lasts two more).
    #[arg(long, default_value_t = 3)]
    windows: u32,
    /// How the fake lays out its windows.
    #[arg(long, value_enum, default_value_t = Windows::FirstRequest)]
    window_kind: Windows,
    /// The client's reset margin in milliseconds (default: the client's default).
    #[arg(long)]
    margin_ms: Option<u64>,
    /// Added network latency per request, in milliseconds.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let window = Duration::from_secs(args.window_secs.max(1));
    let kind = match args.window_kind {
        Windows::FirstRequest => WindowKind::FromFirstRequest,
        Windows::Aligned => WindowKind::Aligned,
        Windows::Unrounded => WindowKind::Unrounded,
    };
    let fake = FakeChatwork::start(
        FakeSettings::demo()
            .with_rate_limit(args.limit, window)
            .with_window_kind(kind),
    )
    .await;
    fake.set_latency(Duration::from_millis(args.latency_ms));
    // A database of its own, not named like the tests' (test runs drop those they find).
    let server = DatabaseConfig::from_env_or(
        &Env::from_process(),
        "postgres://postgres@127.0.0.1:5432/postgres",
    )
    .expect("DATABASE_URL");
    let database = server.with_database(&format!("cwsync_bench_{}", std::process::id()));
    db::create_database_if_missing(&database)
        .await
        .expect("create the benchmark database (is Postgres running?)");
    let migrated = db::pool(&database).expect("pool options");
    db::migrate(&migrated).await.expect("migrate");
    // A fresh budget: no row left from an earlier run with the same process id.
    sqlx::query("DELETE FROM chatwork_rate_budgets")
        .execute(&migrated)
        .await
        .expect("clear the budget");

    let mut settings = ClientSettings::new(
        SecretString::from(fake.token().to_owned()),
        Url::parse(&fake.base_url()).expect("the fake's URL"),
    );
    settings.assumed_window = window;
    if let Some(ms) = args.margin_ms {
        settings.reset_margin = Duration::from_millis(ms);
    }
    let margin = settings.reset_margin;

    // Long enough for a window in progress at the start plus the measured ones.
    let run = window * (args.windows + 2);
    let end = Instant::now() + run;
    let mut callers = tokio::task::JoinSet::new();
    for _ in 0..args.clients {
        let pool = db::pool(&database).expect("pool options");
        let client = ChatworkClient::new(settings.clone(), pool).expect("client");
        for caller in 0..args.callers {
            let client = client.clone();
            callers.spawn(async move {
                let mut i = caller;
                while Instant::now() < end {
                    let result = if i % 2 == 0 {
                        client.list_rooms(end).await.map(|_| ())
                    } else {
                        client
                            .list_messages(281_000_105, MessagesOptions::new(end).force(true))
                            .await
                            .map(|_| ())
                    };
                    match result {
                        Ok(()) => {}
                        // The run is over while waiting for the next window.
                        Err(ChatworkError::RateLimited { .. } | ChatworkError::Deadline { .. }) => {
                            break;
                        }
                        Err(e) => {
                            eprintln!("call failed: {e}");
                            tokio::time::sleep(Duration::from_millis(200)).await;
                        }
                    }
                    i += 1;
                }
            });
        }
    }
    while callers.join_next().await.is_some() {}

    // Each window's start to the next one's is one cycle of the shared budget: the rate
    // the clients sustain is what the windows counted over the time they spanned. The
    // last window is cut short by the end of the run; an aligned grid's first one began
    // before it.
    let windows = fake.rate_windows(fake.token());
    let first = match kind {
        WindowKind::Aligned => 1,
        _ => 0,
    };
    let last = windows.len().saturating_sub(1);
    let measured = &windows[first.min(last)..last];
    let in_span: u64 = measured.iter().map(|w| u64::from(w.counted)).sum();
    let span = match (measured.first(), windows.get(last)) {
        (Some(a), Some(b)) => b.start.duration_since(a.start).unwrap_or_default(),
        _ => Duration::ZERO,
    };
    let allowed = f64::from(args.limit) / window.as_secs_f64();
    let achieved = in_span as f64 / span.as_secs_f64().max(f64::EPSILON);
    println!(
        "clients={} callers={} limit={}/{}s windows={} kind={} margin={}ms latency={}ms",
        args.clients,
        args.callers,
        args.limit,
        window.as_secs(),
        args.windows,
        match args.window_kind {
            Windows::FirstRequest => "first-request",
            Windows::Aligned => "aligned",
            Windows::Unrounded => "unrounded",
        },
        margin.as_millis(),
        args.latency_ms
    );
    println!(
        "windows={} counted={in_span} span={:.1}s achieved={achieved:.3}/s allowed={allowed:.3}/s ratio={:.3} 429s={}",
        measured.len(),
        span.as_secs_f64(),
        achieved / allowed,
        fake.rate_limited_count()
    );
    migrated.close().await;
    drop_database(&server, &database).await;
    let per_window: Vec<String> = windows
        .iter()
        .map(|w| {
            let secs = |t: std::time::SystemTime| {
                t.duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_secs_f64()
            };
            format!(
                "{:.2}+{}",
                secs(w.start) - secs(windows[0].start),
                w.counted
            )
        })
        .collect();
    println!("per window (start s + counted): {}", per_window.join(" "));
}

async fn drop_database(server: &DatabaseConfig, database: &DatabaseConfig) {
    use secrecy::ExposeSecret;
    use sqlx::{Connection, Executor};
    let Ok(mut admin) = sqlx::PgConnection::connect(server.url.expose_secret()).await else {
        return;
    };
    // The name is ours (a prefix and the process id), never input.
    let sql = format!(
        r#"DROP DATABASE IF EXISTS "{}" WITH (FORCE)"#,
        database.database_name()
    );
    let _ = admin.execute(sqlx::raw_sql(sqlx::AssertSqlSafe(sql))).await;
}
