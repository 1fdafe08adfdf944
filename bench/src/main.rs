//! cwsync's benchmarks: how close the system runs to Chatwork's rate limit,
//! what a sync costs in Chatwork requests, SQS calls and database statements, how fast
//! it stores, and the Lambda functions' cold start, memory and cost. Prints one table,
//! every figure against its goal. Figures are printed, never asserted.
//!
//! Run it with `scripts/bench` (which builds the release binaries it needs, and starts
//! Postgres and moto's SQS server's venv first).

mod accounts;
mod capture;
mod growth;
mod measure;
mod restart;
mod runtime;
mod sqs_wire;
mod stats;
mod sweep;
mod world;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Parser;
use cwsync::chatwork::ClientSettings;

use measure::{Backend, Function, InvocationFigures};
use stats::{Invocation, PRICES, PRICES_SOURCE, cost_per_million_messages, mib};

#[derive(Parser)]
#[command(about = "cwsync's benchmarks: one table of every figure against its goal")]
struct Args {
    /// Measurements to run (1 to 12; 7 needs 6). Default: all.
    #[arg(long, value_delimiter = ',')]
    only: Vec<u8>,
    /// Rooms of the rate-limit benchmark (1).
    #[arg(long, default_value_t = 150)]
    rate_rooms: usize,
    /// The fake Chatwork's scaled rate limit for (1): requests per window.
    #[arg(long, default_value_t = 30)]
    rate_limit: u32,
    /// The window of (1), in seconds.
    #[arg(long, default_value_t = 3)]
    rate_window_secs: u64,
    /// The budget's reset margin in (1), in milliseconds. By default it is scaled with
    /// the window as the window is from Chatwork's (1 s in 300 s: 10 ms in 3 s), so the
    /// scaled run models production; a last row also runs the unscaled 1 s margin.
    #[arg(long)]
    rate_margin_ms: Option<u64>,
    /// Runs per binary of the cold-start benchmark (5).
    #[arg(long, default_value_t = 11)]
    cold_start_runs: usize,
    /// Simulated seconds per real second in the capture benchmark (8): two simulated
    /// hours take 7200 / speed real seconds (4 minutes at 30).
    #[arg(long, default_value_t = 30.0)]
    capture_speed: f64,
    /// Rooms of the capture benchmark (8).
    #[arg(long, default_value_t = 300)]
    capture_rooms: usize,
    /// The share of webhook deliveries lost in the capture benchmark's webhook strategy
    /// (8), for the room check to repair.
    #[arg(long, default_value_t = 0.05)]
    capture_webhook_loss: f64,
    /// Rooms of the capture benchmark with three accounts (10), split over them.
    #[arg(long, default_value_t = 600)]
    accounts_rooms: usize,
    /// How much busier (10)'s people rooms are than (8)'s: the load.
    #[arg(long, default_value_t = 40.0)]
    accounts_rate_factor: f64,
    /// Pollers of (10)'s messages queue, per run.
    #[arg(long, default_value_t = 6)]
    accounts_consumers: usize,
    /// Simulated minutes of (10).
    #[arg(long, default_value_t = 40)]
    accounts_minutes: u64,
    /// Simulated seconds per real second in (10): half of (8)'s, for this machine to
    /// store what three budgets fetch.
    #[arg(long, default_value_t = 15.0)]
    accounts_speed: f64,
    /// Rooms, and messages per room, of the Postgres restart benchmark (9).
    #[arg(long, default_value_t = 40)]
    restart_rooms: usize,
    #[arg(long, default_value_t = 100)]
    restart_messages: usize,
    /// Rooms of the load sweep (12).
    #[arg(long, default_value_t = 2000)]
    sweep_rooms: usize,
    /// Simulated hours of each scenario of the load sweep (12).
    #[arg(long, default_value_t = 24.0)]
    sweep_hours: f64,
    /// Loads of the sweep (12), in percent of one token's ceiling.
    #[arg(long, value_delimiter = ',', default_values_t = [1.0, 10.0, 50.0, 80.0, 100.0, 150.0])]
    sweep_loads: Vec<f64>,
    /// Where the sweep (12) writes its plot (relative to the working directory).
    #[arg(long, default_value = "docs/capture-sweep.svg")]
    sweep_plot: PathBuf,
    /// Rooms of the room check's database curve (11).
    #[arg(long, value_delimiter = ',', default_values_t = [1_000, 10_000, 50_000])]
    growth_rooms: Vec<usize>,
    /// Checks of each kind per size in (11); the median is reported. More than five
    /// shows the plan Postgres caches after five runs of a statement on a connection.
    #[arg(long, default_value_t = 11)]
    growth_check_runs: usize,
    /// Sizes of the `messages` table in (11), in rows, smallest first (100 M takes
    /// about an hour and 40 GB on a 2-core machine).
    #[arg(long, value_delimiter = ',', default_values_t = [1_000_000, 10_000_000])]
    growth_messages: Vec<i64>,
    /// Rooms the generated messages of (11) are spread over (1 % linked to the company
    /// drafted).
    #[arg(long, default_value_t = 10_000)]
    growth_message_rooms: i64,
    /// Messages a day of (11)'s generated history: a bigger table is a longer history,
    /// and the drafted week holds as many messages at every size.
    #[arg(long, default_value_t = 50_000)]
    growth_per_day: i64,
    /// Syncs and drafts per size of the `messages` table in (11).
    #[arg(long, default_value_t = 5)]
    growth_runs: usize,
    /// Only one half of (11): `check` (the room check) or `messages`.
    #[arg(long)]
    growth_only: Option<String>,
    /// Where the release binaries are (default: next to this one).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Meets,
    Misses,
    /// A figure without a goal of its own.
    Info,
}

struct Row {
    id: &'static str,
    what: String,
    figure: String,
    goal: String,
    verdict: Verdict,
}

fn row(
    id: &'static str,
    what: impl Into<String>,
    figure: impl Into<String>,
    goal: impl Into<String>,
    verdict: Verdict,
) -> Row {
    Row {
        id,
        what: what.into(),
        figure: figure.into(),
        goal: goal.into(),
        verdict,
    }
}

fn verdict(meets: bool) -> Verdict {
    if meets {
        Verdict::Meets
    } else {
        Verdict::Misses
    }
}

fn say(line: impl AsRef<str>) {
    eprintln!("==> {}", line.as_ref());
}

/// The table's rows and the notes printed under it, in the order the measurements add
/// them.
#[derive(Default)]
struct Report {
    rows: Vec<Row>,
    notes: Vec<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let wanted = |n: u8| args.only.is_empty() || args.only.contains(&n);
    let bin_dir = match &args.bin_dir {
        Some(dir) => dir.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("this binary's folder")?
            .to_path_buf(),
    };
    let target_dir = target_dir(&bin_dir)?;
    let started = Instant::now();
    let mut report = Report::default();

    if wanted(1) {
        rate_limit(&args, &mut report).await?;
    }
    if wanted(2) {
        incremental(&mut report).await?;
    }
    if wanted(3) {
        fan_out(&mut report).await?;
    }
    if wanted(4) {
        storage(&mut report).await?;
    }
    if wanted(5) {
        cold_start(&args, &bin_dir, &target_dir, &mut report).await?;
    }
    // 7 prices the invocations of 6, which therefore runs for either.
    let invocations = if wanted(6) || wanted(7) {
        memory(&bin_dir, &mut report).await?
    } else {
        Vec::new()
    };
    if wanted(7) {
        cost(&invocations, &mut report);
    }
    if wanted(8) {
        capture_strategies(&args, &mut report).await?;
    }
    if wanted(10) {
        capture_accounts(&args, &mut report).await?;
    }
    if wanted(12) {
        load_sweep(&args, &mut report)?;
    }
    let restart_lost = if wanted(9) {
        restart_mid_sync(&args, &mut report).await?
    } else {
        None
    };
    if wanted(11) {
        growth_curves(&args, &mut report).await?;
    }

    println!("{}", table(&report.rows));
    for note in &report.notes {
        println!("- {note}");
    }
    println!(
        "- machine: {}; whole run {:.0} s",
        machine(),
        started.elapsed().as_secs_f64()
    );
    // What measurement 9 guards is correctness, not speed: a loss fails the run.
    if let Some(lost) = restart_lost {
        anyhow::bail!(lost);
    }
    Ok(())
}

/// Cargo's target folder above `bin_dir`: `release/` is in it, or in `<triple>/` when the
/// build named its target, as `scripts/bench` does (both folders hold a CACHEDIR.TAG).
fn target_dir(bin_dir: &Path) -> anyhow::Result<PathBuf> {
    let mut target_dir = bin_dir.parent().context("the target folder")?.to_path_buf();
    while let Some(up) = target_dir.parent() {
        if !up.join("CACHEDIR.TAG").exists() {
            break;
        }
        target_dir = up.to_path_buf();
    }
    Ok(target_dir)
}

/// Measurement 1: how close consumers sharing one token run to the allowed rate, and
/// their 429s.
async fn rate_limit(args: &Args, report: &mut Report) -> anyhow::Result<()> {
    let window = Duration::from_secs(args.rate_window_secs);
    let scaled = Duration::from_millis(args.rate_margin_ms.unwrap_or_else(|| {
        // Production: a 1 s margin on Chatwork's 300 s window.
        (1000 * window.as_millis() / 300_000) as u64
    }));
    let production = ClientSettings::DEFAULT_RESET_MARGIN;
    let runs = [(1, scaled), (3, scaled), (5, scaled), (3, production)];
    for (consumers, margin) in runs {
        say(format!(
            "1. rate limit: {consumers} consumer(s), {} rooms, {} per {} s, reset margin {} ms",
            args.rate_rooms,
            args.rate_limit,
            window.as_secs(),
            margin.as_millis()
        ));
        let f = measure::rate_limit(consumers, args.rate_rooms, args.rate_limit, window, margin)
            .await?;
        report.rows.push(row(
            "1",
            format!(
                "rate-limit efficiency, {} consumer(s) on one token ({} per {} s, {} rooms, reset margin {} ms)",
                f.consumers,
                args.rate_limit,
                window.as_secs(),
                args.rate_rooms,
                margin.as_millis()
            ),
            format!(
                "{:.3} of allowed, {} 429s ({} requests, {} windows, {:.1} s)",
                f.ratio,
                f.rate_limited,
                f.requests,
                f.windows,
                f.took.as_secs_f64()
            ),
            "≥ 0.95, 0 429s",
            verdict(f.ratio >= 0.95 && f.rate_limited == 0),
        ));
    }
    report.notes.push(format!(
        "1: the reset margin (default 1 s, for the one-second resolution of x-ratelimit-reset) is scaled with the window: {} ms in {} s as 1 s in Chatwork's 300 s. The last run keeps the production 1 s in the {} s window, which costs 1/({}+1) of every window: a cost of the scale model, 0.3 % at Chatwork's real window.",
        scaled.as_millis(),
        window.as_secs(),
        window.as_secs(),
        window.as_secs()
    ));
    Ok(())
}

/// Measurement 2: Chatwork requests per sync when few rooms changed.
async fn incremental(report: &mut Report) -> anyhow::Result<()> {
    say("2. incremental cost: 100 rooms, 0, 5 and 50 changed");
    for f in measure::incremental(100, &[0, 5, 50]).await? {
        let ratio = f.requests as f64 / (1 + f.changed) as f64;
        report.rows.push(row(
            "2",
            format!("incremental cost, {} rooms, {} changed", f.rooms, f.changed),
            format!(
                "{ratio:.2} ({} Chatwork requests / (1 + {}))",
                f.requests, f.changed
            ),
            "1.00",
            verdict((ratio - 1.0).abs() < 1e-9),
        ));
    }
    Ok(())
}

/// Measurement 3: the queue calls, statements and time of fanning a sync out to 1,000
/// rooms.
async fn fan_out(report: &mut Report) -> anyhow::Result<()> {
    for backend in [Backend::Moto, Backend::Embedded] {
        let name = match backend {
            Backend::Moto => "moto SQS",
            Backend::Embedded => "embedded queue",
        };
        say(format!("3. fan-out of 1,000 rooms, {name}"));
        let f = measure::fan_out(backend, 1000).await?;
        let batches = f.rooms.div_ceil(cwsync::queue::MAX_BATCH);
        let (figure, meets) = match backend {
            Backend::Moto => {
                let sends = f.sqs_calls.get("SendMessageBatch").copied().unwrap_or(0);
                let total: u64 = f.sqs_calls.values().sum();
                let calls: Vec<String> = f
                    .sqs_calls
                    .iter()
                    .map(|(k, v)| format!("{v} {k}"))
                    .collect();
                (
                    format!(
                        "{sends} batch sends, {total} SQS calls on the wire ({}); {} queued",
                        calls.join(", "),
                        f.queued
                    ),
                    sends == batches as u64 && total == sends,
                )
            }
            Backend::Embedded => (
                format!(
                    "{} Queues::send call(s) for {} messages (in process, no wire); {} queued",
                    f.trait_sends, f.rooms, f.queued
                ),
                f.trait_sends == 1,
            ),
        };
        report.rows.push(row(
            "3",
            format!("fan-out of {} rooms, {name}: queue calls", f.rooms),
            figure,
            format!("⌈N/10⌉ = {batches} batch sends"),
            verdict(meets),
        ));
        report.rows.push(row(
            "3",
            format!("fan-out of {} rooms, {name}: database", f.rooms),
            format!(
                "{} statements, {} transaction(s) (BEGIN), {} round trips",
                f.wire.statements(),
                f.wire.transactions,
                f.wire.round_trips()
            ),
            "one transaction",
            verdict(f.wire.transactions == 1),
        ));
        report.rows.push(row(
            "3",
            format!("fan-out of {} rooms, {name}: time", f.rooms),
            format!("{:.0} ms", f.took.as_secs_f64() * 1000.0),
            "(figure)",
            Verdict::Info,
        ));
    }
    report.notes.push(
        "3: moto gets slower as a queue fills, so each fan-out sends to fresh queues; the 1,000 messages are left in them (moto is stopped at the end). The first statements on the pool's fresh connection include connecting and preparing.".to_owned(),
    );
    Ok(())
}

/// Measurement 4: how fast one consumer stores messages, and its database round trips
/// per room.
async fn storage(report: &mut Report) -> anyhow::Result<()> {
    say("4. storage: 100 rooms x 100 messages, then 10 edits + 10 new per room");
    for r in measure::storage(100, 100, 10).await? {
        let messages = r.stored + r.edited;
        let per_room = |n: u64| n as f64 / r.rooms as f64;
        report.rows.push(row(
            "4",
            format!("storage rate, {} ({} rooms, one consumer)", r.what, r.rooms),
            format!(
                "{:.0} messages/s ({} stored + {} edited in {:.2} s)",
                messages as f64 / r.took.as_secs_f64(),
                r.stored,
                r.edited,
                r.took.as_secs_f64()
            ),
            "(figure)",
            Verdict::Info,
        ));
        // The rate budget's own statements count too.
        let trips = per_room(r.sync.round_trips() + r.budget.round_trips());
        report.rows.push(row(
            "4",
            format!("database round trips per room, {}", r.what),
            format!(
                "{trips:.2} ({:.2} statements): consumer {:.2} round trips ({:.2} statements) + rate budget's own {:.2} ({:.2})",
                per_room(r.sync.statements() + r.budget.statements()),
                per_room(r.sync.round_trips()),
                per_room(r.sync.statements()),
                per_room(r.budget.round_trips()),
                per_room(r.budget.statements()),
            ),
            "≤ 3, budget included",
            verdict(trips <= 3.0),
        ));
    }
    Ok(())
}

/// Measurement 5: each function's cold start against a hello-world baseline, and binary
/// sizes.
async fn cold_start(
    args: &Args,
    bin_dir: &Path,
    target_dir: &Path,
    report: &mut Report,
) -> anyhow::Result<()> {
    let functions = cold_start_binaries(bin_dir, report)?;
    say(format!(
        "5. cold start: {} binaries x {} runs",
        functions.len(),
        args.cold_start_runs
    ));
    let env = cold_start_env();
    let results = measure::cold_starts(&functions, target_dir, &env, args.cold_start_runs).await?;
    let hello = results
        .iter()
        .find(|r| r.function == "hello-lambda")
        .context("the hello-world baseline")?;
    let hello_median = hello.median;
    for r in &results {
        let ms = r.median.as_secs_f64() * 1000.0;
        if r.function == "hello-lambda" {
            report.rows.push(row(
                "5",
                "cold start, hello-world lambda_runtime (baseline)",
                format!("{ms:.2} ms median of {}", r.runs.len()),
                "(baseline)",
                Verdict::Info,
            ));
        } else {
            let ratio = r.median.as_secs_f64() / hello_median.as_secs_f64();
            report.rows.push(row(
                "5",
                format!("cold start, {}", r.function),
                format!("{ms:.2} ms median of {} = {ratio:.2}x hello", r.runs.len()),
                "≤ 1.5x",
                verdict(ratio <= 1.5),
            ));
        }
    }
    for r in &results {
        report.rows.push(row(
            "5",
            format!("binary size, {}", r.function),
            format!(
                "x86_64 {:.1} MiB; arm64 {}",
                mib(r.size),
                r.arm64_size
                    .map(|s| format!("{:.1} MiB", mib(s)))
                    .unwrap_or_else(|| "not built".into())
            ),
            "(figure)",
            Verdict::Info,
        ));
    }
    report.notes.push(format!(
        "5: x86_64 release binaries on this machine (stripped, as the release profile says); arm64 sizes are the bootstraps `cargo lambda build --release --arm64` left in {}/lambda, when present. Each run is a new process against a stub runtime API on loopback; the functions get every setting they need, and no network is touched before the first poll (pools connect lazily).",
        target_dir.display()
    ));
    Ok(())
}

/// The binaries measurement 5 starts: every function built in `bin_dir` (a note for each
/// one that is not), then the baseline.
fn cold_start_binaries(bin_dir: &Path, report: &mut Report) -> anyhow::Result<Vec<Function>> {
    let workspace = cwsync_tests::workspace_root();
    let mut functions: Vec<Function> = Vec::new();
    for name in measure::function_binaries(&workspace)? {
        let path = bin_dir.join(&name);
        if path.exists() {
            functions.push(Function { name, path });
        } else {
            report.notes.push(format!(
                "5: {name} is not built in {}: skipped",
                bin_dir.display()
            ));
        }
    }
    functions.push(Function {
        name: "hello-lambda".into(),
        path: bin_dir.join("hello-lambda"),
    });
    Ok(functions)
}

/// Every setting the functions need to start, none of which they reach before their
/// first poll.
fn cold_start_env() -> BTreeMap<String, String> {
    [
        (
            "DATABASE_URL",
            "postgres://postgres@127.0.0.1:5432/postgres",
        ),
        ("CHATWORK_API_TOKEN", "bench-token-0123456789abcdef"),
        ("CHATWORK_API_BASE_URL", "http://127.0.0.1:9/v2"),
        (
            "ROOMS_SYNC_QUEUE_URL",
            "http://127.0.0.1:9/123456789012/rooms-sync.fifo",
        ),
        (
            "MESSAGES_SYNC_QUEUE_URL",
            "http://127.0.0.1:9/123456789012/messages-sync.fifo",
        ),
        (
            "SUMMARY_DRAFT_QUEUE_URL",
            "http://127.0.0.1:9/123456789012/summary-draft.fifo",
        ),
        ("RUST_LOG", "info"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// Measurement 6: the messages-sync function's peak memory and durations; its
/// invocations are what measurement 7 prices.
async fn memory(bin_dir: &Path, report: &mut Report) -> anyhow::Result<Vec<InvocationFigures>> {
    say("6. memory: messages-sync, 10 rooms x 100 messages of 2 KB, via the stub runtime API");
    let f = measure::memory(&bin_dir.join("messages-sync"), 10, 100, 2048).await?;
    for i in &f.invocations {
        report.rows.push(row(
            "6",
            format!("messages-sync, {} ({} records)", i.what, i.records),
            format!(
                "{:.0} ms for {} messages; peak RSS so far {:.1} MB",
                i.duration.as_secs_f64() * 1000.0,
                i.messages,
                i.peak_rss as f64 / 1e6
            ),
            if i.records == 10 && i.messages >= 1000 {
                "≤ 32 MB"
            } else {
                "(figure)"
            },
            if i.messages >= 1000 {
                verdict(i.peak_rss <= 32 * 1_000_000)
            } else {
                Verdict::Info
            },
        ));
    }
    report.rows.push(row(
        "6",
        "messages-sync, exec to first poll with an event waiting",
        format!("{:.1} ms", f.init.as_secs_f64() * 1000.0),
        "(figure)",
        Verdict::Info,
    ));
    report.notes.push(format!(
        "6: peak RSS is VmHWM of the function's process (/proc/<pid>/status) after each invocation; durations run from the stub handing out the event to the function's answer, against the fake Chatwork on loopback at zero latency. The function's log: {}",
        f.log.display()
    ));
    Ok(f.invocations)
}

/// Measurement 7: what a million synced messages cost at measurement 6's durations.
fn cost(invocations: &[InvocationFigures], report: &mut Report) {
    let memory_mb = runtime::MEMORY_MB;
    for i in invocations.iter().skip(1) {
        let cost = cost_per_million_messages(
            Invocation {
                duration: i.duration,
                messages: i.messages.max(1) as u64,
                records: i.records as u64,
            },
            memory_mb,
            PRICES,
        );
        report.rows.push(row(
            "7",
            format!(
                "cost per 1 M synced messages, arm64 {memory_mb} MB, as in \"{}\"",
                i.what
            ),
            format!(
                "${:.4} (Lambda duration ${:.4} + requests ${:.4} + SQS ${:.4})",
                cost.total(),
                cost.lambda_duration,
                cost.lambda_requests,
                cost.sqs
            ),
            "≤ $0.20",
            verdict(cost.total() <= 0.20),
        ));
    }
    let per_100ms = 1e6 * 0.1 * f64::from(memory_mb) / 1024.0 * PRICES.lambda_arm64_per_gb_second;
    report.notes.push(format!(
        "7: prices: Lambda arm64 ${}/GB-s, ${:.2} per 1 M requests; SQS FIFO ${:.2} per 1 M requests (64 KB chunks); {:.1} SQS requests per queue message (send batch/10, receive/10, delete batch/10). Source: {PRICES_SOURCE}. Durations are x86_64 on this machine with Chatwork at zero latency: each 100 ms a real Chatwork request takes adds ${per_100ms:.3} per 1 M requests-per-message (e.g. 1 request per message when each room brings one message).",
        PRICES.lambda_arm64_per_gb_second,
        PRICES.lambda_per_million_requests,
        PRICES.sqs_fifo_per_million_requests,
        stats::SQS_REQUESTS_PER_QUEUE_MESSAGE,
    ));
}

/// Measurement 8: capture, freshness and cost of the three strategies, run side by
/// side.
async fn capture_strategies(args: &Args, report: &mut Report) -> anyhow::Result<()> {
    let settings = capture::CaptureSettings {
        speed: args.capture_speed,
        rooms: args.capture_rooms,
        webhook_loss: args.capture_webhook_loss,
        ..capture::CaptureSettings::default()
    };
    say(format!(
        "8. capture: {} rooms, {:.0} simulated minutes {}x faster, three strategies side by side",
        settings.rooms,
        settings.duration.as_secs_f64() / 60.0,
        settings.speed
    ));
    let (fixed, checked, pushed) = tokio::join!(
        capture::capture(capture::Strategy::Fixed, &settings),
        capture::capture(capture::Strategy::RoomCheck, &settings),
        capture::capture(capture::Strategy::Webhooks, &settings)
    );
    let (fixed, checked, pushed) = (fixed?, checked?, pushed?);
    capture_rows(&mut report.rows, &fixed, &[&checked, &pushed]);
    if let Some(w) = &pushed.webhooks {
        webhook_rows(&mut report.rows, w);
    }
    report.notes.push(format!(
        "8: time is compressed {0}x: Chatwork's window of 300 requests per 300 s is 300 per {1:.1} s, the budget's reset margin 1 s / {0}, the schedules (15 min, 1 min) and the traffic likewise; freshness is in simulated seconds. The three strategies run at once, each with its own fake Chatwork and database, from the same start (every room registered and fetched once with a set-up token). The webhook strategy serves the API's router on a loopback port; the fake delivers the five busiest rooms' posts and edits to its POST /webhooks/chatwork, signed, and loses {2:.0} % of them at random (never sent); each delivery counts as an API invocation, busy for its round trip. Chatwork's times keep their one-second resolution in real time, i.e. {0} simulated seconds: a room fetched within 2 real seconds of its last message is fetched again by the next check (the settle rule), which costs the room check requests it would not pay at Chatwork's real speed. The cost counts Lambda at 128 MB for the consumers' batches and every scheduled invocation (this machine's speed, Chatwork at zero latency) and SQS per queue message, per million messages stored, with measurement 7's prices.",
        settings.speed,
        300.0 / settings.speed,
        100.0 * settings.webhook_loss
    ));
    Ok(())
}

/// Measurement 12: the load sweep (see `sweep`), its rows and its plot.
fn load_sweep(args: &Args, report: &mut Report) -> anyhow::Result<()> {
    let settings = sweep::SweepSettings {
        rooms: args.sweep_rooms,
        duration: Duration::from_secs_f64(args.sweep_hours * 3600.0),
        loads: args.sweep_loads.iter().map(|l| l / 100.0).collect(),
        ..sweep::SweepSettings::default()
    };
    say(format!(
        "12. load sweep: {} rooms, {} simulated hours per scenario, loads {:?} % of one token's ceiling, {} strategies",
        settings.rooms,
        args.sweep_hours,
        args.sweep_loads,
        sweep::Strategy::ALL.len()
    ));
    let t = Instant::now();
    let figures = sweep::sweep(&settings);
    for f in &figures {
        sweep_rows(&mut report.rows, f);
    }
    if let Some(dir) = args
        .sweep_plot
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
    {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&args.sweep_plot, sweep::plot(&figures))
        .with_context(|| format!("writing {}", args.sweep_plot.display()))?;
    report.notes.push(format!(
        "12: a discrete-event model around production's plan (cwsync::sync::plan decides every check of the plan strategies): {} rooms, Pareto rates (shape 1.1, at most 240 a minute) scaled to each load, room 1 quiet but for {:.0} bursts of 150 messages within 30 s per hour, {} simulated hours per scenario, 300 requests per 300 s, {} consumers, {:.1} s per Chatwork request; plot written to {}; took {:.1} s. Strategies: {}. Goals apply to the default (plan every 15 s).",
        settings.rooms,
        settings.bursts_per_hour,
        args.sweep_hours,
        settings.consumers,
        settings.latency,
        args.sweep_plot.display(),
        t.elapsed().as_secs_f64(),
        sweep::Strategy::ALL
            .iter()
            .map(|s| s.describe())
            .collect::<Vec<_>>()
            .join("; ")
    ));
    Ok(())
}

fn sweep_rows(rows: &mut Vec<Row>, f: &sweep::ScenarioFigures) {
    let load = f.load * 100.0;
    let default = f.strategy == sweep::Strategy::Plan15s;
    let goal_of = |applies: bool, goal: &str, meets: bool| {
        if default && applies {
            (goal.to_string(), verdict(meets))
        } else {
            (String::new(), Verdict::Info)
        }
    };
    let what = |w: &str| format!("{w}, {load:.0} % load, {}", f.strategy.short());
    let under = f.capture_under();
    let (goal, v) = if load <= 50.0 {
        goal_of(
            true,
            "1.000 (rooms under 100 per check interval)",
            under >= 0.9995,
        )
    } else if load <= 80.0 {
        goal_of(
            true,
            "≥ 0.99 (rooms under 100 per check interval)",
            under >= 0.99,
        )
    } else {
        goal_of(false, "", true)
    };
    rows.push(row(
        "12",
        what("capture"),
        format!(
            "{:.4} overall ({} of {}); {:.4} of rooms under 100 per check interval; worst such room {:.3}; burst room {} of {}",
            f.capture(),
            f.stored,
            f.posted,
            under,
            f.worst_under,
            f.burst_stored,
            f.burst_posted
        ),
        goal,
        v,
    ));
    let (goal, v) = goal_of(
        true,
        "every burst of 150 in 30 s whole",
        f.burst_stored == f.burst_posted,
    );
    rows.push(row(
        "12",
        what("bursts"),
        format!("{} of {} stored", f.burst_stored, f.burst_posted),
        goal,
        v,
    ));
    let by_band: Vec<String> = f
        .bands
        .iter()
        .zip(sweep::BANDS)
        .filter(|(b, _)| b.rooms > 0)
        .map(|(b, (_, name))| {
            format!(
                "{name}: {} rooms, {:.4}, p50 {:.0} s, p99 {:.0} s",
                b.rooms,
                b.stored as f64 / b.posted.max(1) as f64,
                b.freshness.quantile(0.5),
                b.freshness.quantile(0.99)
            )
        })
        .collect();
    let interval = if f.strategy == sweep::Strategy::Plan15s {
        15.0
    } else {
        60.0
    };
    let fresh = f
        .bands
        .iter()
        .filter(|b| b.rooms > 0 && b.stored > 0)
        .all(|b| b.freshness.quantile(0.99) <= 2.0 * interval);
    let (goal, v) = goal_of(
        load <= 10.0,
        "p99 ≤ two check intervals in every band",
        fresh,
    );
    rows.push(row(
        "12",
        what("capture and freshness by room rate"),
        by_band.join("; "),
        goal,
        v,
    ));
    let (goal, v) = goal_of(
        (79.0..=81.0).contains(&load),
        "≥ 80 on average",
        f.messages_per_request() >= 80.0,
    );
    rows.push(row(
        "12",
        what("messages per fetch"),
        format!("{:.1} of 100", f.messages_per_request()),
        goal,
        v,
    ));
    let (goal, v) = goal_of(true, "0 429s", f.rate_limited == 0);
    rows.push(row(
        "12",
        what("Chatwork requests"),
        format!(
            "{} of {} allowed ({:.1} %): {} checks ({} busy), {} fetches; {} 429s; above the ceiling in {} checks (predicted loss {:.0} messages/min on average)",
            f.requests(),
            f.allowed,
            100.0 * f.requests() as f64 / f.allowed.max(1) as f64,
            f.checks,
            f.busy_checks,
            f.fetches,
            f.rate_limited,
            f.above_ceiling_checks,
            f.predicted_loss_per_min
        ),
        goal,
        v,
    ));
    rows.push(row(
        "12",
        what("cost per 1 M stored messages"),
        format!(
            "${:.3} (Lambda duration ${:.3} + requests ${:.3} + SQS ${:.3})",
            f.cost.total(),
            f.cost.lambda_duration,
            f.cost.lambda_requests,
            f.cost.sqs
        ),
        String::new(),
        Verdict::Info,
    ));
}

/// Measurement 10: the capture benchmark over one organization's rooms split over three
/// accounts, through one token and through three connections, one after the other.
async fn capture_accounts(args: &Args, report: &mut Report) -> anyhow::Result<()> {
    let settings = accounts::AccountsSettings {
        rooms: args.accounts_rooms,
        duration: Duration::from_secs(60 * args.accounts_minutes),
        speed: args.accounts_speed,
        rate_factor: args.accounts_rate_factor,
        consumers: args.accounts_consumers,
        ..accounts::AccountsSettings::default()
    };
    let demand = accounts::demand(&settings.plan());
    say(format!(
        "10. capture with three accounts: {} rooms, {} simulated minutes {}x faster, one token, then three connections",
        settings.rooms, args.accounts_minutes, settings.speed
    ));
    let usable = settings.usable_per_minute();
    report.rows.push(row(
        "10",
        format!(
            "load: {} rooms over accounts A, B, C, people rooms {}x measurement 8's",
            settings.rooms, settings.rate_factor
        ),
        format!(
            "{:.0} posts per simulated minute; rooms with a new message per minute {:.1} (A's {:.1}, B's {:.1}, C's {:.1}) against {usable:.0} requests a token's room check may spend per minute",
            demand.posts,
            demand.total,
            demand.by_account[0],
            demand.by_account[1],
            demand.by_account[2]
        ),
        "more than one token can serve",
        verdict(demand.total > usable),
    ));
    // One after the other: on a small machine the two at once would measure its CPU.
    let one = accounts::run(accounts::Setup::OneToken, &settings).await?;
    let three = accounts::run(accounts::Setup::ThreeConnections, &settings).await?;
    let pct = |a: usize, b: usize| 100.0 * a as f64 / b.max(1) as f64;
    for f in [&one, &three] {
        let name = f.setup.describe();
        let three_way = f.setup == accounts::Setup::ThreeConnections;
        let judged = |ok: bool| {
            if three_way {
                verdict(ok)
            } else {
                Verdict::Info
            }
        };
        let goal = |text: &str| {
            if three_way {
                text.to_owned()
            } else {
                "(today's)".to_owned()
            }
        };
        report.rows.push(row(
            "10",
            format!("coverage, {name}"),
            format!(
                "{:.1} % ({} of {} rooms synced; its accounts are members of {}); {} rooms fetched during the run; {} of {} rooms with traffic captured whole",
                100.0 * f.coverage(),
                f.rooms_synced,
                f.rooms_exist,
                f.rooms_visible,
                f.rooms_fetched,
                f.rooms_whole,
                f.rooms_with_traffic
            ),
            goal("100 %"),
            judged(f.rooms_synced as usize == f.rooms_exist),
        ));
        report.rows.push(row(
            "10",
            format!("messages captured, {name}"),
            format!(
                "{:.2} % ({} of {} posted); of the rooms its accounts see {:.2} % ({} of {}); {} room(s) with a gap",
                pct(f.stored, f.posted),
                f.stored,
                f.posted,
                pct(f.stored_visible, f.posted_visible),
                f.stored_visible,
                f.posted_visible,
                f.rooms_with_gaps
            ),
            goal("100 %"),
            judged(f.stored == f.posted),
        ));
        let q = f.freshness;
        report.rows.push(row(
            "10",
            format!("throughput, {name}"),
            format!(
                "{:.0} messages stored per simulated minute ({:.0} posted); freshness p50 {:.0} s, p99 {:.0} s, max {:.0} s",
                f.throughput(),
                f.posted as f64 / f.minutes,
                q.p50,
                q.p99,
                q.max
            ),
            "(figure)",
            Verdict::Info,
        ));
        let per_account: Vec<String> = f
            .accounts
            .iter()
            .map(|a| {
                if a.connected {
                    format!(
                        "{} ({} rooms): {} requests, {} fetches ({} of shared rooms), {} 429s",
                        a.label, a.rooms, a.requests, a.fetches, a.shared_fetches, a.rate_limited
                    )
                } else {
                    format!("{} ({} rooms): not connected", a.label, a.rooms)
                }
            })
            .collect();
        let limited: usize = f.accounts.iter().map(|a| a.rate_limited).sum();
        let over = f
            .accounts
            .iter()
            .any(|a| a.requests as u64 > f.allowed_per_account);
        report.rows.push(row(
            "10",
            format!("Chatwork requests per account, {name}"),
            format!(
                "{}; {} allowed per account",
                per_account.join("; "),
                f.allowed_per_account
            ),
            "within each budget, 0 429s",
            verdict(limited == 0 && !over),
        ));
        report.rows.push(row(
            "10",
            format!("real time of the run, {name}"),
            format!("{:.0} s", f.took.as_secs_f64()),
            "≤ 300 s",
            verdict(f.took.as_secs_f64() <= 300.0),
        ));
    }
    let ratio = |a: f64, b: f64| a / b.max(f64::MIN_POSITIVE);
    report.rows.push(row(
        "10",
        "three connections against one token",
        format!(
            "coverage {:.2}x, messages stored {:.2}x, throughput {:.2}x",
            ratio(three.coverage(), one.coverage()),
            ratio(three.stored as f64, one.stored as f64),
            ratio(three.throughput(), one.throughput())
        ),
        "(figure)",
        Verdict::Info,
    ));
    report.notes.push(format!(
        "10: measurement 8's traffic (seed, bot room, bursts, edits) over {0} rooms whose people rooms are {1}x as busy, time compressed {2}x as in 8 (each account's window 300 per {3:.1} s); A is the fake's default account (the bootstrap token), B and C accounts of the same organization added with their API tokens and stored sealed (a local key). Rooms: 40 % only A, 25 % only B, 25 % only C, 10 % shared by two or three. Each run starts from what its own connections see (a rooms sync and a sync of all rooms through them, then a whole window of rest) and runs the room check every simulated minute; the two runs one after the other, each with its own fake and database. Rooms synced: rooms with messages in the database at the end; throughput: messages of the run stored per simulated minute.",
        settings.rooms,
        settings.rate_factor,
        settings.speed,
        300.0 / settings.speed
    ));
    Ok(())
}

/// Measurement 9: a sync that outlives a Postgres restart; what it lost or duplicated,
/// if anything.
async fn restart_mid_sync(args: &Args, report: &mut Report) -> anyhow::Result<Option<String>> {
    let latency = Duration::from_millis(150);
    say(format!(
        "9. Postgres restart mid-sync: {} rooms x {} messages, a temporary cluster restarted with pg_ctl restart -m fast",
        args.restart_rooms, args.restart_messages
    ));
    let f = restart::restart_mid_sync(args.restart_rooms, args.restart_messages, latency).await?;
    let whole = f.job_status == cwsync::jobs::JobStatus::Completed
        && f.rows == f.posted as i64
        && f.distinct == f.rows
        && f.failed_items == 0
        && f.open_items == 0;
    report.rows.push(row(
        "9",
        format!(
            "Postgres restart mid-sync ({} rooms x {} messages, local runner's consumers)",
            f.rooms, f.per_room
        ),
        format!(
            "job {} in {:.1} s; restarted at {:.1} s ({} rooms ended), pg_ctl took {:.1} s",
            f.job_status.as_str(),
            f.took.as_secs_f64(),
            f.restart_at.as_secs_f64(),
            f.ended_before,
            f.restart_took.as_secs_f64()
        ),
        "completes",
        verdict(f.job_status == cwsync::jobs::JobStatus::Completed),
    ));
    report.rows.push(row(
        "9",
        "messages stored after the restart",
        format!(
            "{} rows, {} distinct keys, the fake's {}; {} failed items, {} items left open, {} records failed (redelivered), {} items started again",
            f.rows, f.distinct, f.posted, f.failed_items, f.open_items, f.failed_records, f.reruns
        ),
        "every message once, no item failed or left open",
        verdict(whole),
    ));
    report.notes.push(format!(
        "9: a temporary cluster of this machine's PostgreSQL (initdb in a temporary folder, pg_ctl on a free loopback port), never the shared server; the fake answers each request after {} ms so that the restart lands mid-sync; two event sources poll one consumer on embedded queues (visibility timeout 10 s), as the local runner polls.",
        latency.as_millis()
    ));
    if !whole {
        return Ok(Some(format!(
            "measurement 9 lost or duplicated work: {} rows, {} distinct, {} posted, job {}, {} failed items, {} open",
            f.rows,
            f.distinct,
            f.posted,
            f.job_status.as_str(),
            f.failed_items,
            f.open_items
        )));
    }
    Ok(None)
}

/// Measurement 11: the room check's database cost at growing room counts, and storing
/// and drafting at growing sizes of `messages`.
async fn growth_curves(args: &Args, report: &mut Report) -> anyhow::Result<()> {
    let only = args.growth_only.as_deref();
    anyhow::ensure!(
        matches!(only, None | Some("check") | Some("messages")),
        "--growth-only is `check` or `messages`"
    );
    if only != Some("messages") {
        let figures = growth::room_check_curve(&args.growth_rooms, args.growth_check_runs).await?;
        growth_check_rows(&mut report.rows, &figures);
        report.notes.push(format!(
            "11: the room check through its public path (`sync::check::run` and the check's record) against the fake Chatwork listing every room, on a pool of one connection (a warm Lambda's), on a temporary cluster of this machine's PostgreSQL (shared_buffers 512 MB, fsync on, no autovacuum: the set-up vacuums). Medians of {} checks per kind (worst in brackets); statement times are the server's (pg_stat_statements); rows from pg_stat_user_tables; WAL from pg_current_wal_insert_lsn. Each kind starts on a new connection, so its first five runs are planned for their own parameters and the rest may use the generic plan Postgres caches. The first check runs on an empty table each time; then every room is marked synced (as if fetched) for the others.",
            args.growth_check_runs
        ));
    }
    if only != Some("check") {
        let settings = growth::MessagesSettings {
            sizes: args.growth_messages.clone(),
            rooms: args.growth_message_rooms,
            per_day: args.growth_per_day,
            runs: args.growth_runs,
        };
        let figures = growth::messages_curve(&settings).await?;
        growth_messages_rows(&mut report.rows, &figures);
        report.notes.push(format!(
            "11: `messages` filled with generated rows (INSERT ... SELECT generate_series, its indexes and keys dropped and built again, then VACUUM ANALYZE) over {} rooms, {} messages a day of history (1 M rows = {:.0} days), 1 % of the rooms linked to the company drafted. Storing: a messages sync of one room (also linked) bringing 100 new messages, through the job consumer, request to end; drafting: the summary job with the extractive summarizer over the last week but a day of the history. Medians of {} runs (worst in brackets); statement times are the server's (pg_stat_statements).",
            settings.rooms,
            settings.per_day,
            1_000_000.0 / settings.per_day as f64,
            settings.runs
        ));
    }
    Ok(())
}

fn ms(spread: growth::Spread) -> String {
    format!("{:.1} ms [{:.1}]", spread.median, spread.max)
}

/// Measurement 11's rows of the room check, and whether its time grows linearly.
fn growth_check_rows(rows: &mut Vec<Row>, figures: &[growth::CheckFigures]) {
    for f in figures {
        let unchanged = f.kind == growth::CheckKind::Unchanged;
        let wrote_nothing = f.rooms_inserted.max == 0.0 && f.rooms_updated.max == 0.0;
        rows.push(row(
            "11",
            format!("room check, {} rooms, {}", f.rooms, f.kind.describe()),
            format!(
                "{} per check (median of {} [worst]): check statement {}, membership statement {}; rows written: rooms {:.0} inserted + {:.0} updated [{:.0}], memberships {:.0} [{:.0}]; WAL {:.1} kB [{:.1}]; {} rooms found changed",
                ms(f.took_ms),
                f.runs,
                ms(f.statement_ms),
                ms(f.listing_ms),
                f.rooms_inserted.median,
                f.rooms_updated.median,
                f.rooms_updated.max,
                f.memberships_written.median,
                f.memberships_written.max,
                f.wal_bytes.median / 1024.0,
                f.wal_bytes.max / 1024.0,
                f.changed
            ),
            if unchanged {
                "no room row written"
            } else {
                "(figure)"
            },
            if unchanged {
                verdict(wrote_nothing)
            } else {
                Verdict::Info
            },
        ));
    }
    // Linear or better: the largest size's time per room at most the smallest's (10 %
    // for noise).
    for kind in [
        growth::CheckKind::First,
        growth::CheckKind::Unchanged,
        growth::CheckKind::OnePercent,
    ] {
        let of_kind: Vec<&growth::CheckFigures> =
            figures.iter().filter(|f| f.kind == kind).collect();
        let (Some(small), Some(large)) = (of_kind.first(), of_kind.last()) else {
            continue;
        };
        if small.rooms == large.rooms {
            continue;
        }
        let per_room = |f: &growth::CheckFigures| f.took_ms.median / f.rooms as f64;
        let ratio = per_room(large) / per_room(small).max(f64::MIN_POSITIVE);
        rows.push(row(
            "11",
            format!("room check's growth, {}", kind.describe()),
            format!(
                "time per room at {} rooms {:.2}x that at {} ({:.1} → {:.1} ms for {:.0}x the rooms)",
                large.rooms,
                ratio,
                small.rooms,
                small.took_ms.median,
                large.took_ms.median,
                large.rooms as f64 / small.rooms as f64
            ),
            "≤ 1.1x (no faster than linear)",
            verdict(ratio <= 1.1),
        ));
    }
}

/// Measurement 11's rows of the `messages` table.
fn growth_messages_rows(rows: &mut Vec<Row>, figures: &[growth::MessagesFigures]) {
    for f in figures {
        let millions = f.rows as f64 / 1e6;
        rows.push(row(
            "11",
            format!("messages table at {millions:.1} M rows: size"),
            format!(
                "{:.0} MiB table + {:.0} MiB indexes; filled in {:.0} s",
                mib(f.table_bytes.max(0) as u64),
                mib(f.index_bytes.max(0) as u64),
                f.fill.as_secs_f64()
            ),
            "(figure)",
            Verdict::Info,
        ));
        rows.push(row(
            "11",
            format!("messages table at {millions:.1} M rows: storing 100 messages in one room"),
            format!(
                "{} per sync (request to end); its statements {}, of which the write {}",
                ms(f.store_ms),
                ms(f.store_db_ms),
                ms(f.write_ms)
            ),
            "(figure)",
            Verdict::Info,
        ));
        rows.push(row(
            "11",
            format!("messages table at {millions:.1} M rows: drafting a company summary"),
            format!(
                "{} per draft of {} messages (request to end); its statements {}, of which the query of the messages {}",
                ms(f.draft_ms),
                f.drafted_messages,
                ms(f.draft_db_ms),
                ms(f.gather_ms)
            ),
            "(figure)",
            Verdict::Info,
        ));
    }
}

/// Measurement 8's rows: today's strategy, then the others, figure by figure.
fn capture_rows(
    rows: &mut Vec<Row>,
    fixed: &capture::CaptureFigures,
    others: &[&capture::CaptureFigures],
) {
    let pct = |a: usize, b: usize| 100.0 * a as f64 / b.max(1) as f64;
    for f in std::iter::once(fixed).chain(others.iter().copied()) {
        let is_check = f.strategy != capture::Strategy::Fixed;
        let name = f.strategy.describe();
        let goal = |text: &str| {
            if is_check {
                text.to_owned()
            } else {
                "(today's)".to_owned()
            }
        };
        let judged = |ok: bool| if is_check { verdict(ok) } else { Verdict::Info };
        let everything = f.stored == f.posted;
        rows.push(row(
            "8",
            format!("capture, {name}"),
            format!(
                "{:.2} % ({} of {} posted; {} edits); worst room {}: {} of {} ({:.1} %); bot room {} of {}",
                pct(f.stored, f.posted),
                f.stored,
                f.posted,
                f.edits,
                f.worst.room_id,
                f.worst.stored,
                f.worst.posted,
                pct(f.worst.stored, f.worst.posted),
                f.bot.stored,
                f.bot.posted,
            ),
            goal("100 % in every room under 100 messages per check interval"),
            judged(everything),
        ));
        let bursts: Vec<String> = f
            .bursts
            .iter()
            .map(|b| format!("room {}: {} of {}", b.room_id, b.stored, b.posted))
            .collect();
        let b = f.burst_freshness;
        rows.push(row(
            "8",
            format!("burst rooms (150 messages in 2 min), {name}"),
            format!(
                "{}; freshness p50 {:.0} s, p99 {:.0} s, max {:.0} s; {} room(s) with a gap",
                bursts.join(", "),
                b.p50,
                b.p99,
                b.max,
                f.rooms_with_gaps
            ),
            "(figure)",
            Verdict::Info,
        ));
        rows.push(row(
            "8",
            format!("freshness (simulated s, posted to stored), {name}"),
            format!(
                "p50 {:.0} s, p99 {:.0} s, max {:.0} s",
                f.freshness_p50, f.freshness_p99, f.freshness_max
            ),
            goal("p99 ≤ 120 s (two check intervals)"),
            judged(f.freshness_p99 <= 120.0),
        ));
        rows.push(row(
            "8",
            format!("Chatwork requests, {name}"),
            format!(
                "{} of {} allowed ({:.1} %), {} 429s",
                f.requests,
                f.allowed,
                100.0 * f.requests as f64 / f.allowed.max(1) as f64,
                f.rate_limited
            ),
            goal("within the budget, 0 429s"),
            judged(f.rate_limited == 0 && f.requests as u64 <= f.allowed),
        ));
        rows.push(row(
            "8",
            format!("queue messages and database, {name}"),
            format!(
                "{} queue messages; {} statements for {} stored messages ({:.1} per message); {} invocations, {:.1} s busy",
                f.queue_messages,
                f.statements,
                f.stored_rows,
                f.statements as f64 / f.stored_rows.max(1) as f64,
                f.invocations,
                f.busy.as_secs_f64()
            ),
            "(figure)",
            Verdict::Info,
        ));
        rows.push(row(
            "8",
            format!("cost per 1 M stored messages, {name}"),
            format!(
                "${:.3} (Lambda duration ${:.3} + requests ${:.3} + SQS ${:.3})",
                f.cost.total(),
                f.cost.lambda_duration,
                f.cost.lambda_requests,
                f.cost.sqs
            ),
            goal(&format!("< today's ${:.3}", fixed.cost.total())),
            judged(f.cost.total() < fixed.cost.total()),
        ));
        rows.push(row(
            "8",
            format!("real time of the run, {name}"),
            format!("{:.0} s", f.took.as_secs_f64()),
            "≤ 300 s",
            verdict(f.took.as_secs_f64() <= 300.0),
        ));
    }
}

/// Measurement 8's rows of the webhook strategy's own: what arrived by webhook and how
/// fresh, and what a lost delivery cost until the check repaired it.
fn webhook_rows(rows: &mut Vec<Row>, w: &capture::WebhookFigures) {
    let rooms: Vec<String> = w.rooms.iter().map(i64::to_string).collect();
    rows.push(row(
        "8",
        "webhook deliveries (rooms ".to_owned() + &rooms.join(", ") + ")",
        format!(
            "{} sent, {} answered 200, {} lost on purpose ({:.0} % asked)",
            w.sent,
            w.succeeded,
            w.lost,
            100.0 * w.loss_share
        ),
        "every sent delivery answered 200",
        verdict(w.succeeded == w.sent),
    ));
    let d = w.delivered;
    rows.push(row(
        "8",
        "freshness of messages delivered by webhook (simulated s)".to_owned(),
        format!(
            "p50 {:.1} s, p99 {:.1} s, max {:.1} s ({} messages)",
            d.p50, d.p99, d.max, d.count
        ),
        "p99 ≤ 30 s (one real second)",
        verdict(d.count > 0 && d.p99 <= 30.0),
    ));
    let r = w.repaired;
    rows.push(row(
        "8",
        "cost of a lost delivery: delay until the check stored the message (simulated s)"
            .to_owned(),
        format!(
            "{} of {} lost new messages repaired; p50 {:.0} s, p99 {:.0} s, max {:.0} s; {} lost edit(s)",
            r.count, w.lost_created, r.p50, r.p99, r.max, w.lost_edits
        ),
        "all repaired, p99 ≤ 120 s (two check intervals)",
        verdict(r.count == w.lost_created && r.p99 <= 120.0),
    ));
}

/// The rows as a Markdown table (readable as text, pasteable into BENCHMARKS.md).
fn table(rows: &[Row]) -> String {
    let mut out =
        String::from("| # | measurement | figure | goal | vs goal |\n|---|---|---|---|---|\n");
    for r in rows {
        let verdict = match r.verdict {
            Verdict::Meets => "meets",
            Verdict::Misses => "MISSES",
            Verdict::Info => "",
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} |",
            r.id, r.what, r.figure, r.goal, verdict
        );
    }
    out
}

/// `nproc`, the CPU model and the memory, from /proc.
fn machine() -> String {
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map(str::trim)
        .unwrap_or("unknown CPU")
        .to_owned();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kib: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    format!(
        "{cpus} CPUs ({model}), {:.1} GiB memory, {} {}",
        mem_kib as f64 / (1024.0 * 1024.0),
        std::env::consts::OS,
        std::env::consts::ARCH
    )
}
