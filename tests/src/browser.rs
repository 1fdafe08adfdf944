//! A headless Chromium driven through chromedriver's W3C WebDriver protocol (plain JSON
//! over HTTP with reqwest), for the tests that use the console as a person would.
//!
//! [`Browser::start`] runs `chromedriver` on a free loopback port and opens one session
//! with a fresh profile; tests share one session where they can, since starting Chromium
//! is the slow part. Waiting is polling a condition in the page ([`Browser::wait_for`]),
//! never a fixed sleep.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};

/// The W3C name of an element reference in WebDriver answers.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// How long [`Browser::wait_for`] waits by default.
pub const WAIT: Duration = Duration::from_secs(30);

/// chromedriver and one browser session; both end when this is dropped.
pub struct Browser {
    driver: Child,
    base: String,
    session: String,
    http: reqwest::Client,
    _profile: TempDir,
}

/// A folder removed on drop (Chromium's fresh profile).
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

impl Browser {
    /// Starts chromedriver and a headless Chromium (`--headless=new --no-sandbox`, as
    /// root in CI) with a fresh profile, English as its language, 1280×900.
    pub async fn start() -> Self {
        let port = free_port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("run chromedriver (scripts/test installs Debian's chromium-driver)");
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let started = Instant::now();
        while http.get(format!("{base}/status")).send().await.is_err() {
            assert!(started.elapsed() < WAIT, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let profile =
            std::env::temp_dir().join(format!("cwsync-chromium-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&profile).expect("a profile folder");
        let args = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--lang=en-US",
            "--window-size=1280,900",
        ]
        .iter()
        .map(|a| a.to_string())
        .chain([format!("--user-data-dir={}", profile.display())])
        .collect::<Vec<_>>();
        let answer: Value = http
            .post(format!("{base}/session"))
            .json(&json!({"capabilities": {"alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {"args": args, "prefs": {"intl.accept_languages": "en-US"}},
            }}}))
            .send()
            .await
            .expect("create a session")
            .json()
            .await
            .expect("a session answer");
        let session = answer["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("chromedriver did not open a session: {answer}"))
            .to_owned();
        Self {
            driver,
            base,
            session,
            http,
            _profile: TempDir(profile),
        }
    }

    async fn command(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let mut request = self.http.request(method, url);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let answer: Value = request
            .send()
            .await
            .expect("a WebDriver answer")
            .json()
            .await
            .expect("WebDriver answers JSON");
        if let Some(error) = answer["value"]["error"].as_str() {
            panic!(
                "WebDriver {path}: {error}: {}",
                answer["value"]["message"].as_str().unwrap_or("")
            );
        }
        answer["value"].clone()
    }

    pub async fn goto(&self, url: &str) {
        self.command(reqwest::Method::POST, "/url", Some(json!({"url": url})))
            .await;
    }

    /// Runs `script` (a function body; `arguments[i]` are `args`) and answers its return.
    pub async fn js(&self, script: &str, args: Value) -> Value {
        self.command(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({"script": script, "args": args})),
        )
        .await
    }

    /// Waits until `script` returns something truthy; panics with `what` after `WAIT`.
    pub async fn wait_for(&self, what: &str, script: &str) -> Value {
        self.wait_for_within(what, script, WAIT).await
    }

    pub async fn wait_for_within(&self, what: &str, script: &str, limit: Duration) -> Value {
        let started = Instant::now();
        loop {
            let value = self.js(script, json!([])).await;
            let truthy = match &value {
                Value::Null => false,
                Value::Bool(b) => *b,
                Value::String(s) => !s.is_empty(),
                Value::Number(n) => n.as_f64() != Some(0.0),
                _ => true,
            };
            if truthy {
                return value;
            }
            if started.elapsed() > limit {
                let notice = self
                    .js(
                        "return document.getElementById('notice')?.textContent || ''",
                        json!([]),
                    )
                    .await;
                let main = self
                    .js(
                        "return document.querySelector('main')?.innerText || ''",
                        json!([]),
                    )
                    .await;
                panic!("waited {limit:?} for {what}; notice: {notice}; page: {main}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The element `css` matches (waiting for it to appear).
    pub async fn find(&self, css: &str) -> String {
        self.wait_for(
            &format!("an element {css}"),
            &format!("return !!document.querySelector({})", json!(css)),
        )
        .await;
        let found = self
            .command(
                reqwest::Method::POST,
                "/element",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
        found[ELEMENT].as_str().expect("an element id").to_owned()
    }

    /// Clicks `css` as a person would (WebDriver's pointer click).
    pub async fn click(&self, css: &str) {
        let element = self.find(css).await;
        self.command(
            reqwest::Method::POST,
            &format!("/element/{element}/click"),
            Some(json!({})),
        )
        .await;
    }

    /// Types `text` into `css` after clearing it.
    pub async fn type_into(&self, css: &str, text: &str) {
        let element = self.find(css).await;
        self.command(
            reqwest::Method::POST,
            &format!("/element/{element}/clear"),
            Some(json!({})),
        )
        .await;
        self.command(
            reqwest::Method::POST,
            &format!("/element/{element}/value"),
            Some(json!({"text": text})),
        )
        .await;
    }

    /// The `textContent` of `css`, or `None` when nothing matches.
    pub async fn text(&self, css: &str) -> Option<String> {
        self.js(
            "const e = document.querySelector(arguments[0]); return e ? e.textContent : null",
            json!([css]),
        )
        .await
        .as_str()
        .map(str::to_owned)
    }

    /// How many elements `css` matches.
    pub async fn count(&self, css: &str) -> usize {
        self.js(
            "return document.querySelectorAll(arguments[0]).length",
            json!([css]),
        )
        .await
        .as_u64()
        .unwrap_or(0) as usize
    }

    pub async fn set_window(&self, width: u32, height: u32) {
        self.command(
            reqwest::Method::POST,
            "/window/rect",
            Some(json!({"width": width, "height": height})),
        )
        .await;
    }

    /// Saves a PNG of the viewport as `<target>/console-screenshots/<name>.png`.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let data = self
            .command(reqwest::Method::GET, "/screenshot", None)
            .await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(data.as_str().expect("a base64 screenshot"))
            .expect("base64");
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).expect("the screenshot folder");
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).expect("write a screenshot");
        path
    }
}

/// `target/console-screenshots` (under `CARGO_TARGET_DIR` when it is set).
pub fn screenshot_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::workspace_root().join("target"))
        .join("console-screenshots")
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Ends the session (and so Chromium) before chromedriver, with a plain blocking
        // request: no runtime may be left to run an async one.
        use std::io::{Read, Write};
        let address = self.base.trim_start_matches("http://");
        if let Ok(mut stream) = std::net::TcpStream::connect(address) {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
            let request = format!(
                "DELETE /session/{} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
                self.session
            );
            if stream.write_all(request.as_bytes()).is_ok() {
                let _ = stream.read_to_end(&mut Vec::new());
            }
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
