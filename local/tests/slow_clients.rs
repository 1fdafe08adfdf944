//! Slow clients against the `cwsync-local` binary, measured: the runner's RSS with 300
//! stalled webhook uploads open, and its time to exit after SIGTERM with one stalled
//! upload open. A measurement, not a check (figures depend on the machine), so ignored by
//! default:
//!
//! ```sh
//! cargo test -p cwsync-local --test slow_clients -- --ignored --nocapture
//! # another build of the runner (an older commit, say):
//! CWSYNC_LOCAL_BIN=/path/to/cwsync-local cargo test -p cwsync-local --test slow_clients -- --ignored --nocapture
//! ```

use std::io::{BufRead, BufReader, ErrorKind, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cwsync_tests::TestDb;
use secrecy::ExposeSecret;

const UPLOADS: usize = 300;
/// What each upload sends of the 1 MiB its head promises before it stalls.
const SENT: usize = 1024 * 1024 - 1024;

fn start(db: &TestDb) -> (Child, String) {
    let bin = std::env::var("CWSYNC_LOCAL_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_cwsync-local").to_owned());
    let mut child = Command::new(bin)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("DATABASE_URL", db.config.url.expose_secret())
        .env("LOCAL_MESSAGES_SYNC_EVERY_MINUTES", "0")
        .env("LOCAL_ROOM_CHECK_EVERY_SECS", "0")
        .env("RUST_LOG", "error")
        .env_remove("CHATWORK_API_TOKEN")
        .stdout(Stdio::piped())
        .spawn()
        .expect("start cwsync-local");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let host = loop {
        let line = lines.next().expect("the banner").unwrap();
        if let Some(at) = line.find("serving the API at http://") {
            let url = &line[at + "serving the API at http://".len()..];
            break url.trim().trim_end_matches("/api").to_owned();
        }
    };
    // Keep reading so that the runner's prints never block.
    std::thread::spawn(move || for _ in lines.map_while(Result::ok) {});
    (child, host)
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

/// Opens `n` uploads to the webhook route, each sending [`SENT`] bytes (as far as the
/// server takes them within a few seconds), then stalling.
fn stalled_uploads(host: &str, n: usize, signed: bool) -> Vec<TcpStream> {
    let head = format!(
        "POST /webhooks/chatwork HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n{}\r\n",
        1024 * 1024,
        if signed {
            "x-chatworkwebhooksignature: AAAA\r\n"
        } else {
            ""
        }
    );
    let mut streams: Vec<(TcpStream, usize)> = (0..n)
        .map(|_| {
            let mut s = TcpStream::connect(host).unwrap();
            s.write_all(head.as_bytes()).unwrap();
            s.set_nonblocking(true).unwrap();
            (s, 0)
        })
        .collect();
    let body = vec![b' '; SENT];
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline && streams.iter().any(|(_, sent)| *sent < SENT) {
        for (stream, sent) in &mut streams {
            while *sent < SENT {
                match stream.write(&body[*sent..]) {
                    Ok(0) => break,
                    Ok(k) => *sent += k,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    // Answered and closed by the server.
                    Err(_) => {
                        *sent = SENT;
                        break;
                    }
                }
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    streams.into_iter().map(|(s, _)| s).collect()
}

fn seconds_to_exit(child: &mut Child) -> f64 {
    let signaled = Instant::now();
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    loop {
        if child.try_wait().unwrap().is_some() {
            return signaled.elapsed().as_secs_f64();
        }
        if signaled.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            let _ = child.wait();
            return f64::INFINITY;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test]
#[ignore = "a measurement; run with --ignored --nocapture"]
async fn measure_stalled_uploads() {
    for signed in [false, true] {
        let db = TestDb::empty().await;
        let (mut child, host) = start(&db);
        std::thread::sleep(Duration::from_secs(2));
        let idle = rss_kib(child.id());
        let uploads = stalled_uploads(&host, UPLOADS, signed);
        std::thread::sleep(Duration::from_secs(2));
        let loaded = rss_kib(child.id());
        drop(uploads);
        std::thread::sleep(Duration::from_secs(1));
        let one = stalled_uploads(&host, 1, signed);
        std::thread::sleep(Duration::from_millis(300));
        let exit = seconds_to_exit(&mut child);
        drop(one);
        println!(
            "{} uploads: RSS idle {:.0} MB, with {UPLOADS} stalled {:.0} MB; exit after SIGTERM with one stalled: {exit:.1} s",
            if signed { "signed (bogus)" } else { "unsigned" },
            idle as f64 / 1024.0,
            loaded as f64 / 1024.0,
        );
    }
}
