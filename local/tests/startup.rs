//! The `cwsync-local` binary as a person starts it.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use cwsync_tests::TestDb;
use secrecy::ExposeSecret;

const BIN: &str = env!("CARGO_BIN_EXE_cwsync-local");

#[test]
fn a_malformed_database_url_stops_start_up_with_one_line() {
    let output = Command::new(BIN)
        .arg("migrate")
        .env("DATABASE_URL", "mysql://user:hunter2@db/x")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("DATABASE_URL is malformed"), "{stderr}");
    assert!(
        !stderr.contains("hunter2") && !stderr.contains("panicked"),
        "{stderr}"
    );
}

#[test]
fn a_malformed_summary_setting_stops_start_up_with_one_line() {
    let output = Command::new(BIN)
        .arg("serve")
        // Nothing listens on port 1: the setting must be refused before any connection.
        .env("DATABASE_URL", "postgres://postgres@127.0.0.1:1/cwsync")
        .env("SUMMARY_MODEL_BASE_URL", "https://api.example.com/v1")
        .env("SUMMARY_MODEL", "m")
        .env("SUMMARY_MODEL_API_KEY", "sk-hunter2")
        .env("SUMMARY_CONTEXT_TOKENS", "lots")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("SUMMARY_CONTEXT_TOKENS is malformed"),
        "{stderr}"
    );
    assert!(!stderr.contains("sk-hunter2"), "{stderr}");
}

#[test]
fn a_time_zone_that_does_not_exist_stops_start_up_with_one_line() {
    let output = Command::new(BIN)
        .arg("serve")
        // Nothing listens on port 1: the setting must be refused before any connection.
        .env("DATABASE_URL", "postgres://postgres@127.0.0.1:1/cwsync")
        .env("SUMMARY_TIME_ZONE", "Asia/Tokio")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(
        stderr,
        "cwsync-local: SUMMARY_TIME_ZONE is malformed: expected an IANA time zone name such as Asia/Tokyo or UTC, got \"Asia/Tokio\"\n"
    );
}

#[test]
fn an_unreachable_database_is_one_clear_line() {
    let output = Command::new(BIN)
        .arg("migrate")
        // Port 1 on loopback: nothing listens there.
        .env("DATABASE_URL", "postgres://postgres@127.0.0.1:1/cwsync")
        .env("DATABASE_ACQUIRE_TIMEOUT_SECS", "2")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("could not reach Postgres"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[tokio::test]
async fn serve_migrates_answers_health_and_stops_on_ctrl_c() {
    let db = TestDb::empty().await;
    let mut child = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("DATABASE_URL", db.config.url.expose_secret())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    // Kept open until the child has stopped: it prints more after the URL, and a closed
    // pipe would make that print fail.
    let mut lines = BufReader::new(stdout).lines();
    let first = lines.next().unwrap().unwrap();
    let url = first
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("no URL in {first:?}"))
        .to_owned();
    let response = reqwest::get(format!("{url}/health")).await.unwrap();
    assert_eq!(response.status(), 200);
    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert!(applied >= 1);

    // SAFETY: sending a signal to our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    drop(lines);
}

/// Starts the runner with `args` and a room check every 2 s, waits until it printed its
/// banner and recorded `checks` room checks in its database, and stops it. Returns the
/// banner.
async fn checks_every_two_seconds(args: &[&str], checks: i64) -> Vec<String> {
    let db = TestDb::empty().await;
    let mut child = Command::new(BIN)
        .args(args)
        .env("DATABASE_URL", db.config.url.expose_secret())
        .env("LISTEN_ADDR", "127.0.0.1:0")
        .env("LOCAL_ROOM_CHECK_EVERY_SECS", "2")
        .env_remove("LOCAL_MESSAGES_SYNC_EVERY_MINUTES")
        .env_remove("CHATWORK_API_TOKEN")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut banner = Vec::new();
    while !banner
        .iter()
        .any(|l: &String| l.starts_with("Jobs show here"))
    {
        let line = rx
            .recv_timeout(std::time::Duration::from_secs(60))
            .expect("the banner");
        banner.push(line);
    }
    cwsync_tests::eventually(
        "the scheduled room checks",
        std::time::Duration::from_secs(30),
        || async {
            sqlx::query_scalar::<_, i64>(
                "SELECT count(*) FROM room_checks WHERE trigger = 'schedule'",
            )
            .fetch_one(&db.pool)
            .await
            .unwrap()
                >= checks
        },
    )
    .await;
    // SAFETY: sending a signal to our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    assert!(child.wait().unwrap().success());
    banner.extend(rx.iter());
    reader.join().unwrap();
    banner
}

#[tokio::test]
async fn the_room_check_cadence_is_honoured_with_and_without_the_serve_subcommand() {
    for args in [&[][..], &["serve"][..]] {
        let printed = checks_every_two_seconds(args, 3).await;
        assert!(
            printed
                .iter()
                .any(|l| l.trim_start().starts_with("room check: every 2 s")),
            "{args:?}: {printed:?}"
        );
        // The check replaces the fixed messages sync, which is off unless asked for.
        assert!(
            !printed.iter().any(|l| l.contains("fixed messages sync")),
            "{args:?}: {printed:?}"
        );
        // The first check registers the demo rooms and says so.
        assert!(
            printed.iter().any(|l| l.starts_with("[check] ")),
            "{args:?}: {printed:?}"
        );
    }
}
