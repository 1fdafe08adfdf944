//! `fake-chatwork`: serves the demo data as a fake Chatwork API v2 until Ctrl-C.

use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use fake_chatwork::{DemoData, FakeChatwork, FakeSettings, WindowKind};

#[derive(Parser)]
#[command(
    name = "fake-chatwork",
    version,
    about = "A fake Chatwork API v2 with demo data, for local runs and benchmarks"
)]
struct Cli {
    /// Port to listen on (0: any free port).
    #[arg(long, default_value_t = 8090)]
    port: u16,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// The API token the fake accepts.
    #[arg(long, env = "FAKE_CHATWORK_TOKEN", default_value = FakeChatwork::DEFAULT_TOKEN)]
    token: String,
    /// Requests allowed per window.
    #[arg(long, default_value_t = 300)]
    rate_limit: u32,
    /// Length of a rate-limit window in seconds.
    #[arg(long, default_value_t = 300)]
    window_secs: u64,
    /// Lay windows on a fixed grid since the epoch, instead of starting one with the
    /// first request after the last one ended.
    #[arg(long)]
    aligned_windows: bool,
    /// Start without the demo rooms (and without the demo's second account).
    #[arg(long)]
    empty: bool,
    /// Registers the demo OAuth client with this redirect URI (repeat for more).
    #[arg(long = "oauth-redirect-uri")]
    oauth_redirect_uris: Vec<String>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut settings = if cli.empty {
        FakeSettings::default()
    } else {
        FakeSettings::demo()
    };
    settings = settings
        .with_token(cli.token)
        .with_rate_limit(cli.rate_limit, Duration::from_secs(cli.window_secs.max(1)));
    if cli.aligned_windows {
        settings = settings.with_window_kind(WindowKind::Aligned);
    }
    let rooms = settings.rooms.len()
        + settings
            .accounts
            .iter()
            .map(|a| a.own_rooms.len())
            .sum::<usize>();
    let accounts = 1 + settings.accounts.len();
    let fake = match FakeChatwork::start_on(settings, SocketAddr::new(cli.host, cli.port)).await {
        Ok(fake) => fake,
        Err(e) => {
            eprintln!(
                "fake-chatwork: could not listen on {}:{}: {e}",
                cli.host, cli.port
            );
            return ExitCode::FAILURE;
        }
    };
    println!(
        "fake-chatwork is serving {rooms} rooms of {accounts} accounts at {} (limit {} per {} s)",
        fake.base_url(),
        cli.rate_limit,
        cli.window_secs
    );
    println!("  CHATWORK_API_BASE_URL={}", fake.base_url());
    if !cli.empty {
        println!(
            "  a second account ({}) has the token {}",
            DemoData::SECOND_ACCOUNT_ID,
            DemoData::SECOND_ACCOUNT_TOKEN
        );
    }
    if !cli.oauth_redirect_uris.is_empty() {
        fake.register_oauth_client(DemoData::oauth_client(cli.oauth_redirect_uris));
        println!(
            "  OAuth: client {} at {} and {}",
            DemoData::OAUTH_CLIENT_ID,
            fake.oauth_authorize_url(),
            fake.oauth_token_url()
        );
    }
    println!(
        "  try: curl -s -H 'X-ChatWorkToken: <token>' {}/rooms",
        fake.base_url()
    );
    let _ = tokio::signal::ctrl_c().await;
    ExitCode::SUCCESS
}
