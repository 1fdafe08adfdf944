//! A newcomer's first five minutes, as a test: start `cwsync-local` with nothing but
//! Postgres, read the URL and the admin token it prints, run a rooms sync and a messages
//! sync through the API with the printed commands' requests, wait for the jobs to
//! complete, and find the rooms and messages in the database, then the messages of the
//! demo room fed by webhook arriving with no sync. Once over the embedded queue, once
//! over moto's SQS.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cwsync_tests::{SqsEmulator, TestDb, create_test_queues, sqs_emulator};
use secrecy::ExposeSecret;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_cwsync-local");
/// The demo room the fake feeds by webhook (the demo company's project room).
const WEBHOOK_ROOM: i64 = 281_000_106;

/// The running binary and what it printed so far.
struct Runner {
    child: Child,
    out: Arc<Mutex<Vec<String>>>,
    /// Its log lines (stderr).
    logs: Arc<Mutex<Vec<String>>>,
}

/// Collects the lines of `from` as they come.
fn collect(from: impl std::io::Read + Send + 'static) -> Arc<Mutex<Vec<String>>> {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let into = lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(from).lines().map_while(Result::ok) {
            into.lock().unwrap().push(line);
        }
    });
    lines
}

impl Runner {
    fn start(db: &TestDb, extra_env: &[(String, String)]) -> Self {
        let mut child = Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env("DATABASE_URL", db.config.url.expose_secret())
            .env("LOCAL_MESSAGES_SYNC_EVERY_MINUTES", "0")
            // The pasted commands decide when to sync; no scheduled check interferes.
            .env("LOCAL_ROOM_CHECK_EVERY_SECS", "0")
            // Its own default filter, as a newcomer's first run has it.
            .env_remove("RUST_LOG")
            .env_remove("CHATWORK_API_TOKEN")
            .env_remove("LOCAL_JWT_SECRET")
            .env("LOCAL_WEBHOOK_SUMMARY_EVERY_SECS", "2")
            .envs(extra_env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start cwsync-local");
        let out = collect(child.stdout.take().expect("piped stdout"));
        let logs = collect(child.stderr.take().expect("piped stderr"));
        Self { child, out, logs }
    }

    /// Waits for a printed line that starts with `prefix` (after indentation).
    fn printed(&self, prefix: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(line) = self
                .out
                .lock()
                .unwrap()
                .iter()
                .find(|l| l.trim_start().starts_with(prefix))
            {
                return line.trim_start()[prefix.len()..].trim().to_owned();
            }
            assert!(
                Instant::now() < deadline,
                "cwsync-local never printed {prefix:?}; it printed {:?}",
                self.out.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn stop(self) -> Vec<String> {
        self.stop_with(libc::SIGINT)
    }

    /// Sends `signal` (SIGINT as Ctrl-C, SIGTERM as systemd or Docker) and waits for a
    /// clean exit.
    fn stop_with(mut self, signal: i32) -> Vec<String> {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as i32, signal) };
        let status = self.child.wait().expect("cwsync-local exits");
        assert!(status.success(), "exit status {status:?}");
        std::thread::sleep(Duration::from_millis(100));
        self.out.lock().unwrap().clone()
    }
}

/// The API as the printed curl commands use it.
struct Api {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl Api {
    async fn post(&self, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("the API answers");
        (
            response.status().as_u16(),
            response.json().await.expect("JSON"),
        )
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .expect("the API answers");
        (
            response.status().as_u16(),
            response.json().await.expect("JSON"),
        )
    }

    /// Polls the job until it is no longer queued or processing.
    async fn wait_for(&self, job: &Value) -> Value {
        let id = job["id"].as_str().expect("a job id");
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let (status, job) = self.get(&format!("/jobs/{id}")).await;
            assert_eq!(status, 200, "{job}");
            if !matches!(job["status"].as_str(), Some("queued" | "processing")) {
                return job;
            }
            assert!(Instant::now() < deadline, "job still running: {job}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// The `curl` commands the runner printed under "Try it:", in order.
fn printed_commands(runner: &Runner) -> Vec<String> {
    let out = runner.out.lock().unwrap();
    out.iter()
        .map(|l| l.trim())
        .filter(|l| l.starts_with("curl "))
        .map(str::to_owned)
        .collect()
}

/// Runs a printed command as a person pasting it would: in a shell, with `TOKEN`
/// exported; returns what it printed, as JSON.
fn paste(command: &str, token: &str) -> Value {
    let output = Command::new("bash")
        .args(["-c", command])
        .env("TOKEN", token)
        .output()
        .expect("run bash");
    assert!(output.status.success(), "{command}: {output:?}");
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{command} printed no JSON ({e}): {output:?}"))
}

/// The README's walkthrough shows the commands the runner prints (on its default port).
fn the_readme_shows(commands: &[String], base: &str) {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .expect("README.md");
    for command in commands {
        let as_documented = command.replace(base, "http://127.0.0.1:3000/api");
        assert!(
            readme.lines().any(|l| l.trim() == as_documented),
            "README.md does not show the printed command {as_documented:?}"
        );
    }
    assert!(readme.contains("scripts/run-local"));
}

/// The README's two commands that find the demo company and ask for a summary draft of
/// its last 7 days, as one script pointed at `base`.
fn the_readme_asks_for_a_summary(base: &str) -> String {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .expect("README.md");
    let line = |what: &str, test: &dyn Fn(&str) -> bool| -> String {
        readme
            .lines()
            .map(str::trim)
            .find(|l| test(l))
            .unwrap_or_else(|| panic!("README.md does not show how to {what}"))
            .replace("http://127.0.0.1:3000/api", base)
    };
    let company = line("find the demo company", &|l| {
        l.starts_with("COMPANY=$(curl ")
    });
    let draft = line("ask for a summary draft", &|l| {
        l.starts_with("curl ") && l.contains("/summaries/draft")
    });
    assert!(draft.contains("7 days ago"), "{draft}");
    format!("set -e\n{company}\n{draft}")
}

async fn first_five_minutes(extra_env: Vec<(String, String)>) {
    let db = TestDb::empty().await;
    let runner = Runner::start(&db, &extra_env);
    let base = runner.printed("cwsync-local is serving the API at");
    let token = runner.printed("export TOKEN=");
    runner.printed("Jobs show here as they run.");
    // The banner leads with the console, signed in by the token in the fragment.
    let console = runner.printed("Open the console:");
    let origin = base.trim_end_matches("/api").to_owned();
    assert_eq!(console, format!("{origin}/#token={token}"));
    let page = reqwest::get(format!("{origin}/")).await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("/console/app.js"));
    let commands = printed_commands(&runner);
    assert_eq!(commands.len(), 3, "three commands to paste: {commands:?}");
    the_readme_shows(&commands, &base);
    let api = Api {
        base,
        token,
        http: reqwest::Client::new(),
    };

    let (status, health) = api.get("/health").await;
    assert_eq!(
        (status, &health["status"]),
        (200, &Value::from("ok")),
        "{health}"
    );

    // The first printed command: a rooms sync.
    let job = paste(&commands[0], &api.token);
    assert_eq!(job["type"], "chatwork_rooms_sync", "{job}");
    let job = api.wait_for(&job).await;
    assert_eq!(job["status"], "completed", "{job}");
    assert_eq!(job["result"]["total"], 12, "{job}");
    let rooms: i64 = sqlx::query_scalar("SELECT count(*) FROM chatwork_rooms")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(rooms, 12);

    // The demo company gets linked to its two rooms once they exist.
    cwsync_tests::eventually(
        "the demo company's links",
        Duration::from_secs(20),
        || async {
            sqlx::query_scalar::<_, i64>("SELECT count(*) FROM company_room_links")
                .fetch_one(&db.pool)
                .await
                .unwrap()
                == 2
        },
    )
    .await;

    // The second: a messages sync of every room, one job: its room check plans the rooms
    // that need a fetch (all twelve, the first time), which join the same job.
    let job = paste(&commands[1], &api.token);
    assert_eq!(job["type"], "chatwork_messages_sync", "{job}");
    let job = api.wait_for(&job).await;
    assert_eq!(job["status"], "completed", "{job}");
    let check = &job["result"]["check"];
    assert_eq!(check["fetched"], 12, "{job}");
    assert_eq!(check["jobId"], job["id"], "{job}");
    assert_eq!(job["result"]["totalRooms"], 12, "{job}");
    assert_eq!(job["result"]["processedRooms"], 12, "{job}");
    let (messages, with_company): (i64, i64) =
        sqlx::query_as("SELECT count(*), count(company_id) FROM messages")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert!(messages > 100, "{messages} messages stored");
    assert!(
        with_company > 0,
        "the demo company's rooms' messages carry it"
    );

    // One demo room is fed by webhook, as the runner says: from now on no sync runs, yet
    // the messages the fake posts there reach the database, through the runner's
    // `POST /webhooks/chatwork` (the room counts them as arrived by webhook).
    let fed = runner.printed("demo webhook:");
    assert!(
        fed.starts_with(&format!("room {WEBHOOK_ROOM} "))
            && fed.contains(&format!("{origin}/webhooks/chatwork")),
        "{fed}"
    );
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .expect("README.md");
    let as_documented = format!("demo webhook: {fed}").replace(&origin, "http://127.0.0.1:3000");
    assert!(
        readme.lines().any(|l| l.trim() == as_documented),
        "README.md does not show {as_documented:?}"
    );
    let since = chrono::Utc::now();
    cwsync_tests::eventually(
        "a message the fake delivered by webhook",
        Duration::from_secs(60),
        || async {
            let (pushed, counted): (i64, i32) = sqlx::query_as(
                "SELECT (SELECT count(*) FROM messages m WHERE m.chatwork_room_id = r.id AND m.created_at > $2),
                        r.webhook_messages_since_fetch
                   FROM chatwork_rooms r WHERE r.room_id = $1",
            )
            .bind(WEBHOOK_ROOM)
            .bind(since)
            .fetch_one(&db.pool)
            .await
            .unwrap();
            pushed > 0 && counted > 0
        },
    )
    .await;
    let (status, jobs) = api.get("/jobs?limit=10").await;
    assert_eq!(status, 200);
    assert_eq!(
        jobs["items"].as_array().map(Vec::len),
        Some(2),
        "no job fetched it: {jobs}"
    );

    // As the README says: a summary draft of the demo company's last 7 days (the
    // extractive summarizer: no model is configured), with the README's command.
    let command = the_readme_asks_for_a_summary(&api.base);
    let job = paste(&command, &api.token);
    assert_eq!(job["type"], "summary_draft", "{job}");
    let job = api.wait_for(&job).await;
    assert_eq!(job["status"], "completed", "{job}");
    let draft = &job["result"]["draft"];
    assert_eq!(draft["model"], "extractive", "{job}");
    let seven_days = chrono::DateTime::parse_from_rfc3339(draft["periodEnd"].as_str().unwrap())
        .unwrap()
        - chrono::DateTime::parse_from_rfc3339(draft["periodStart"].as_str().unwrap()).unwrap();
    assert_eq!(seven_days, chrono::TimeDelta::days(7), "{job}");
    // The demo's messages are of the last two weeks: the last 7 days have the project's
    // kickoff and progress, drafted in Japanese with Tokyo times.
    let content = draft["content"].as_str().unwrap();
    assert!(
        content.starts_with("要約案：ミナトロジスティクス株式会社 (Minato Logistics)\n期間："),
        "{content}"
    );
    assert!(content.contains("（日本時間）\n"), "{content}");
    for group in ["### 依頼・期限", "### 未回答の質問"] {
        assert!(content.contains(group), "{group}: {content}");
    }
    // And the company's Chatwork tasks as the first sync read them, deadlines in Tokyo
    // time (the demo's review is due at 10:30 in Tokyo).
    assert!(content.contains("## Chatworkのタスク"), "{content}");
    assert!(
        content
            .lines()
            .any(|l| l.contains("次回定例で配送ステータス画面の実機デモ") && l.contains("10:30")),
        "{content}"
    );
    assert!(
        draft["sourceLinks"]
            .as_array()
            .is_some_and(|l| !l.is_empty()),
        "{job}"
    );
    println!("The demo company's draft of the last 7 days:\n{content}");
    let company: uuid::Uuid =
        sqlx::query_scalar("SELECT company_id FROM summary_drafts WHERE id = $1")
            .bind(draft["id"].as_str().unwrap().parse::<uuid::Uuid>().unwrap())
            .fetch_one(&db.pool)
            .await
            .unwrap();
    let (status, drafts) = api.get(&format!("/companies/{company}/summaries")).await;
    assert_eq!(status, 200);
    assert_eq!(drafts["items"][0]["id"], draft["id"], "{drafts}");

    // The third: watching jobs.
    let jobs = paste(&commands[2], &api.token);
    assert_eq!(jobs["items"].as_array().map(Vec::len), Some(3), "{jobs}");

    // As the README says: a second messages sync finds nothing moved.
    let (status, job) = api
        .post("/chatwork/messages/sync", Some(serde_json::json!({})))
        .await;
    assert_eq!(status, 202, "{job}");
    let job = api.wait_for(&job).await;
    assert_eq!(job["result"]["check"]["outcome"], "current", "{job}");
    assert_eq!(job["result"]["totalRooms"], 0, "nothing to fetch: {job}");
    assert_eq!(job["result"]["requests"], 1, "{job}");

    // The webhook deliveries are summed up (every 2 s here, a minute by default), not
    // logged one by one.
    let summary = runner.printed("[webhooks] the last 2 s:");
    assert!(
        summary.ends_with(" stored, 0 ignored, 0 refused"),
        "{summary}"
    );
    let logs = runner.logs.clone();
    let printed = runner.stop();
    let logs = logs.lock().unwrap();
    assert!(
        !logs
            .iter()
            .any(|l| l.contains("cwsync::webhook::delivery") || l.contains("cwsync::api::webhook")),
        "a log line per delivery: {logs:?}"
    );
    assert!(
        printed
            .iter()
            .any(|l| l.starts_with("[done] messages sync")),
        "a summary line per job: {printed:?}"
    );
    assert!(
        printed
            .iter()
            .any(|l| l.starts_with("[done] summary draft")),
        "{printed:?}"
    );
    assert!(printed.iter().any(|l| l == "Stopped."), "{printed:?}");
}

#[tokio::test]
async fn over_the_embedded_queue() {
    first_five_minutes(Vec::new()).await;
}

#[tokio::test]
async fn over_sqs() {
    let queues = create_test_queues(30, 4).await;
    let mut env: Vec<(String, String)> = cwsync::job_types::registry()
        .work_queues()
        .into_iter()
        .map(|q| (q.url_variable(), queues.url(q).unwrap().to_owned()))
        .collect();
    env.extend([
        ("AWS_ENDPOINT_URL".into(), sqs_emulator().endpoint.clone()),
        ("AWS_REGION".into(), SqsEmulator::REGION.into()),
        ("AWS_ACCESS_KEY_ID".into(), "test".into()),
        ("AWS_SECRET_ACCESS_KEY".into(), "test".into()),
    ]);
    first_five_minutes(env).await;
}

/// Work that was queued when the runner stopped is done after the next start: the
/// embedded queue lives in the process, but every job and item is in Postgres, and the
/// runner re-sends the unfinished items when it starts.
#[tokio::test]
async fn work_queued_when_the_runner_stopped_is_done_after_the_next_start() {
    let db = TestDb::empty().await;
    let runner = Runner::start(&db, &[]);
    let api = Api {
        base: runner.printed("cwsync-local is serving the API at"),
        token: runner.printed("export TOKEN="),
        http: reqwest::Client::new(),
    };
    let (status, job) = api.post("/chatwork/rooms/sync", None).await;
    assert_eq!(status, 202, "{job}");
    assert_eq!(api.wait_for(&job).await["status"], "completed");
    runner.stop();

    // A messages sync whose messages went into a queue that is gone, as the embedded
    // queue of a runner that stopped before handing them out.
    let lost = cwsync::queue::EmbeddedQueues::new(cwsync::queue::EmbeddedSettings::default());
    let started = cwsync::jobs::start::<cwsync::sync::messages::MessagesSync>(
        &db.pool,
        &lost,
        &cwsync::sync::messages::MessagesSyncPayload::default(),
        Some("local-admin"),
    )
    .await
    .expect("start a job");
    drop(lost);
    assert_eq!(started.job.total_items, 12);

    let runner = Runner::start(&db, &[]);
    let resent = runner.printed("re-sent");
    assert!(resent.starts_with("12 unfinished item"), "{resent}");
    let api = Api {
        base: runner.printed("cwsync-local is serving the API at"),
        token: runner.printed("export TOKEN="),
        http: reqwest::Client::new(),
    };
    let job = api
        .wait_for(&serde_json::json!({"id": started.job.id.to_string()}))
        .await;
    assert_eq!(job["status"], "completed", "{job}");
    assert_eq!(job["result"]["processedRooms"], 12, "{job}");
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM messages")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert!(stored > 100, "{stored} messages stored");
    runner.stop();
}

/// Ctrl-C and SIGTERM both stop the runner the same way: no new work is taken, the work
/// in flight ends, "Stopped." is printed and the exit status is 0; no item is left
/// `processing` for the next start to redo.
#[tokio::test]
async fn sigterm_drains_like_ctrl_c() {
    for (name, signal) in [("SIGINT", libc::SIGINT), ("SIGTERM", libc::SIGTERM)] {
        let db = TestDb::empty().await;
        let runner = Runner::start(&db, &[]);
        let api = Api {
            base: runner.printed("cwsync-local is serving the API at"),
            token: runner.printed("export TOKEN="),
            http: reqwest::Client::new(),
        };
        let (status, job) = api.post("/chatwork/rooms/sync", None).await;
        assert_eq!(status, 202, "{job}");
        assert_eq!(api.wait_for(&job).await["status"], "completed");
        // Work in flight when the signal comes: a sync of every room.
        let (status, job) = api
            .post("/chatwork/messages/sync", Some(serde_json::json!({})))
            .await;
        assert_eq!(status, 202, "{job}");
        let printed = runner.stop_with(signal);
        assert!(
            printed.iter().any(|l| l == "Stopped."),
            "{name}: {printed:?}"
        );
        let processing: i64 =
            sqlx::query_scalar("SELECT count(*) FROM job_items WHERE status = 'processing'")
                .fetch_one(&db.pool)
                .await
                .unwrap();
        assert_eq!(processing, 0, "{name}: items left processing");
    }
}

/// The runner's server takes a head far larger than the API does, so an oversized header
/// gets our JSON 431 rather than the parser's empty one (README, "Below the router"); a
/// client idle on a kept-alive connection does not hold up the stop.
#[tokio::test]
async fn an_oversized_header_is_our_json_and_an_idle_connection_does_not_hold_up_the_stop() {
    use std::io::{Read, Write};
    let db = TestDb::empty().await;
    let runner = Runner::start(&db, &[]);
    let base = runner.printed("cwsync-local is serving the API at");
    let host = base
        .trim_start_matches("http://")
        .trim_end_matches("/api")
        .to_owned();

    let mut stream = std::net::TcpStream::connect(&host).unwrap();
    let request = format!(
        "GET /api/health HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\nx-big: {}\r\n\r\n",
        "a".repeat(1_000_000)
    );
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 431 "), "{answer}");
    let body = &answer[answer.find("\r\n\r\n").unwrap() + 4..];
    let body: Value = serde_json::from_str(body).unwrap();
    assert_eq!(body["error"]["code"], "headers_too_large", "{body}");

    let mut idle = std::net::TcpStream::connect(&host).unwrap();
    idle.write_all(format!("GET /api/health HTTP/1.1\r\nhost: {host}\r\n\r\n").as_bytes())
        .unwrap();
    let mut first = [0u8; 12];
    idle.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"HTTP/1.1 200");
    let printed = runner.stop_with(libc::SIGTERM);
    assert!(printed.iter().any(|l| l == "Stopped."), "{printed:?}");
    drop(idle);
}

/// A stalled upload does not hold up the stop: SIGTERM ends the runner within the
/// server's drain bound (5 s) plus the consumers' stop, not when the client gives up; and
/// a stalled upload without a signature is answered at once, before its body.
#[tokio::test]
async fn a_stalled_upload_neither_waits_for_its_body_nor_holds_up_the_stop() {
    use std::io::{Read, Write};
    let db = TestDb::empty().await;
    let mut runner = Runner::start(&db, &[]);
    let base = runner.printed("cwsync-local is serving the API at");
    let host = base
        .trim_start_matches("http://")
        .trim_end_matches("/api")
        .to_owned();
    let head = |signed: bool| {
        format!(
            "POST /webhooks/chatwork HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\ncontent-length: 1048576\r\n{}\r\n",
            if signed {
                "x-chatworkwebhooksignature: AAAA\r\n"
            } else {
                ""
            }
        )
    };

    let mut unsigned = std::net::TcpStream::connect(&host).unwrap();
    unsigned
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    unsigned.write_all(head(false).as_bytes()).unwrap();
    unsigned.write_all(&[b' '; 1000]).unwrap();
    let mut answer = String::new();
    unsigned
        .read_to_string(&mut answer)
        .expect("answered without waiting for the body");
    let answer = answer.to_lowercase();
    assert!(answer.starts_with("http/1.1 401 "), "{answer}");
    assert!(answer.contains("connection: close"), "{answer}");

    // Signed (wrongly, which only the body would show): its body is awaited.
    let mut stalled = std::net::TcpStream::connect(&host).unwrap();
    stalled.write_all(head(true).as_bytes()).unwrap();
    stalled.write_all(&[b' '; 1000]).unwrap();
    std::thread::sleep(Duration::from_millis(300));

    let signaled = Instant::now();
    // SAFETY: signalling our own child.
    unsafe { libc::kill(runner.child.id() as i32, libc::SIGTERM) };
    let status = loop {
        if let Some(status) = runner.child.try_wait().unwrap() {
            break status;
        }
        if signaled.elapsed() > Duration::from_secs(40) {
            let _ = runner.child.kill();
            panic!("still running 40 s after SIGTERM with a stalled upload open");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");
    // The drain bound (5 s) and the consumers' stop, side by side; far less than the
    // body's own deadline would be had the stop waited for it.
    assert!(
        signaled.elapsed() < Duration::from_secs(14),
        "exit took {:?}",
        signaled.elapsed()
    );
    drop(stalled);
}

/// `cwsync-local token` mints a token for any user and role, signed with the running
/// server's LOCAL_JWT_SECRET; the API gives each role what it may have.
#[tokio::test]
async fn the_token_subcommand_mints_tokens_the_server_accepts_with_their_role() {
    const SECRET: &str = "a-local-secret-for-tests-0123456789";
    let db = TestDb::empty().await;
    let runner = Runner::start(&db, &[("LOCAL_JWT_SECRET".into(), SECRET.into())]);
    let base = runner.printed("cwsync-local is serving the API at");
    let mint = |sub: &str, role: &str| {
        let output = Command::new(BIN)
            .args(["token", "--sub", sub, "--role", role])
            .env("LOCAL_JWT_SECRET", SECRET)
            .output()
            .expect("run cwsync-local token");
        assert!(output.status.success(), "{output:?}");
        String::from_utf8(output.stdout).unwrap().trim().to_owned()
    };
    let as_user = |token: String| Api {
        base: base.clone(),
        token,
        http: reqwest::Client::new(),
    };

    let reader = as_user(mint("alice", "reader"));
    assert_eq!(reader.get("/companies").await.0, 200);
    let (status, body) = reader.post("/chatwork/rooms/sync", None).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (403, &Value::from("forbidden"))
    );

    let admin = as_user(mint("carol", "admin"));
    let (status, job) = admin.post("/chatwork/rooms/sync", None).await;
    assert_eq!(status, 202, "{job}");
    assert_eq!(job["userId"], "carol");

    // Without the secret, or with a role that does not exist: one line, no token.
    for (env, args, expected) in [
        (
            None,
            ["token", "--role", "admin"],
            "LOCAL_JWT_SECRET is not set",
        ),
        (Some(SECRET), ["token", "--role", "root"], "unknown role"),
    ] {
        let mut command = Command::new(BIN);
        command.args(args).env_remove("LOCAL_JWT_SECRET");
        if let Some(secret) = env {
            command.env("LOCAL_JWT_SECRET", secret);
        }
        let output = command.output().unwrap();
        assert!(!output.status.success());
        assert!(output.stdout.is_empty());
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains(expected), "{stderr}");
    }
    runner.stop();
}
