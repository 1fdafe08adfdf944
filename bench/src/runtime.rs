//! A stub of the Lambda runtime API on a loopback port, and the function binaries run
//! against it as Lambda would run them: a fresh process with Lambda's environment,
//! polling `GET /2018-06-01/runtime/invocation/next` for events and posting answers.
//!
//! The stub hands out the events queued with [`StubRuntime::invoke`], one per poll; a
//! poll with nothing queued waits (as Lambda's does) until an event is queued or the stub
//! stops. It records when the first poll arrived (the end of the function's start-up)
//! and each answer.

use std::collections::{BTreeMap, VecDeque};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use axum::Router;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::sync::watch;

/// The function's memory setting the stub announces (`AWS_LAMBDA_FUNCTION_MEMORY_SIZE`).
pub const MEMORY_MB: u32 = 128;

/// How long an invocation may run, as the function's timeout.
const INVOCATION_TIMEOUT: Duration = Duration::from_secs(300);

/// An answer the function posted.
#[derive(Debug, Clone)]
pub struct Answer {
    pub request_id: String,
    /// When the event was handed out and when the answer came.
    pub handed_at: Instant,
    pub answered_at: Instant,
    /// `false` for `/error`.
    pub ok: bool,
    pub body: String,
}

impl Answer {
    pub fn duration(&self) -> Duration {
        self.answered_at.duration_since(self.handed_at)
    }
}

#[derive(Default)]
struct Inner {
    first_poll: Option<Instant>,
    queued: VecDeque<(String, String)>,
    handed: BTreeMap<String, Instant>,
    answers: Vec<Answer>,
    init_error: Option<String>,
}

struct Shared {
    inner: Mutex<Inner>,
    /// Bumped at every change, so that waiters look again.
    changed: watch::Sender<u64>,
}

impl Shared {
    fn update<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        let out = f(&mut self.inner.lock().expect("the stub's state"));
        self.changed.send_modify(|v| *v += 1);
        out
    }
}

/// A running stub runtime API; stops when dropped.
pub struct StubRuntime {
    addr: std::net::SocketAddr,
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

impl StubRuntime {
    pub async fn start() -> anyhow::Result<Self> {
        let (changed, _) = watch::channel(0);
        let shared = Arc::new(Shared {
            inner: Mutex::new(Inner::default()),
            changed,
        });
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(response),
            )
            .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self {
            addr,
            shared,
            server,
        })
    }

    /// `127.0.0.1:<port>`, the value of `AWS_LAMBDA_RUNTIME_API`.
    pub fn address(&self) -> String {
        self.addr.to_string()
    }

    /// Queues an event; returns its request id.
    pub fn invoke(&self, event: String) -> String {
        let id = uuid::Uuid::new_v4().to_string();
        let queued = id.clone();
        self.shared.update(|s| s.queued.push_back((queued, event)));
        id
    }

    /// Waits until `check` finds something in the stub's state, or `timeout` passes.
    async fn wait_for<T>(
        &self,
        timeout: Duration,
        what: &str,
        check: impl Fn(&Inner) -> Option<T>,
    ) -> anyhow::Result<T> {
        let mut changes = self.shared.changed.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            {
                let inner = self.shared.inner.lock().expect("the stub's state");
                if let Some(found) = check(&inner) {
                    return Ok(found);
                }
                if let Some(error) = &inner.init_error {
                    anyhow::bail!("the function failed to start: {error}");
                }
            }
            tokio::time::timeout_at(deadline, changes.changed())
                .await
                .with_context(|| format!("timed out waiting for {what}"))??;
        }
    }

    /// When the first poll for an event arrived.
    pub async fn first_poll(&self, timeout: Duration) -> anyhow::Result<Instant> {
        self.wait_for(timeout, "the first poll", |s| s.first_poll)
            .await
    }

    /// The answer to request `id`.
    pub async fn answer(&self, id: &str, timeout: Duration) -> anyhow::Result<Answer> {
        self.wait_for(timeout, "the function's answer", |s| {
            s.answers.iter().find(|a| a.request_id == id).cloned()
        })
        .await
    }
}

impl Drop for StubRuntime {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn next(State(shared): State<Arc<Shared>>) -> Response {
    let mut changes = shared.changed.subscribe();
    shared.update(|s| {
        s.first_poll.get_or_insert_with(Instant::now);
    });
    loop {
        // Only a change wakes the waiters: an empty look changes nothing.
        let event = {
            let mut inner = shared.inner.lock().expect("the stub's state");
            inner.queued.pop_front().map(|(id, body)| {
                inner.handed.insert(id.clone(), Instant::now());
                (id, body)
            })
        };
        if event.is_some() {
            shared.changed.send_modify(|v| *v += 1);
        }
        if let Some((id, body)) = event {
            let deadline = SystemTime::now() + INVOCATION_TIMEOUT;
            let deadline_ms = deadline
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_millis();
            let mut headers = HeaderMap::new();
            let header = |v: String| HeaderValue::from_str(&v).expect("an ASCII header value");
            headers.insert("lambda-runtime-aws-request-id", header(id));
            headers.insert(
                "lambda-runtime-deadline-ms",
                header(deadline_ms.to_string()),
            );
            headers.insert(
                "lambda-runtime-invoked-function-arn",
                header("arn:aws:lambda:us-east-1:123456789012:function:bench".into()),
            );
            headers.insert(
                "lambda-runtime-trace-id",
                header("Root=1-00000000-000000000000000000000000;Sampled=0".into()),
            );
            headers.insert("content-type", header("application/json".into()));
            return (StatusCode::OK, headers, body).into_response();
        }
        if changes.changed().await.is_err() {
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        }
    }
}

fn record_answer(shared: &Shared, id: String, ok: bool, body: String) {
    let answered_at = Instant::now();
    shared.update(|s| {
        let handed_at = s.handed.get(&id).copied().unwrap_or(answered_at);
        s.answers.push(Answer {
            request_id: id,
            handed_at,
            answered_at,
            ok,
            body,
        });
    });
}

async fn response(
    State(shared): State<Arc<Shared>>,
    UrlPath(id): UrlPath<String>,
    body: String,
) -> StatusCode {
    record_answer(&shared, id, true, body);
    StatusCode::ACCEPTED
}

async fn error(
    State(shared): State<Arc<Shared>>,
    UrlPath(id): UrlPath<String>,
    body: String,
) -> StatusCode {
    record_answer(&shared, id, false, body);
    StatusCode::ACCEPTED
}

async fn init_error(State(shared): State<Arc<Shared>>, body: String) -> StatusCode {
    shared.update(|s| s.init_error = Some(body));
    StatusCode::ACCEPTED
}

/// The environment Lambda gives every function, for `function` served by `runtime`,
/// plus `extra` (the function's own settings).
pub fn lambda_env(
    function: &str,
    runtime: &StubRuntime,
    extra: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut env: BTreeMap<String, String> = [
        ("AWS_LAMBDA_RUNTIME_API", runtime.address()),
        (
            "AWS_LAMBDA_FUNCTION_NAME",
            format!("cwsync-bench-{function}"),
        ),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", MEMORY_MB.to_string()),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".into()),
        (
            "AWS_LAMBDA_LOG_STREAM_NAME",
            "2025/01/01/[$LATEST]00000000000000000000000000000000".into(),
        ),
        (
            "AWS_LAMBDA_LOG_GROUP_NAME",
            format!("/aws/lambda/cwsync-bench-{function}"),
        ),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_DEFAULT_REGION", "us-east-1".into()),
        ("AWS_ACCESS_KEY_ID", "bench".into()),
        ("AWS_SECRET_ACCESS_KEY", "bench".into()),
        ("AWS_SESSION_TOKEN", "bench".into()),
        ("TZ", ":UTC".into()),
        ("LANG", "en_US.UTF-8".into()),
        ("PATH", "/usr/local/bin:/usr/bin/:/bin".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    env.extend(extra.iter().map(|(k, v)| (k.clone(), v.clone())));
    env
}

/// A function process, killed when dropped.
pub struct FunctionProcess {
    child: Child,
    pub spawned_at: Instant,
}

impl FunctionProcess {
    /// Starts `binary` with exactly `env`; its output goes to `log` (or nowhere). The
    /// process dies with this one's thread.
    pub fn spawn(
        binary: &Path,
        env: &BTreeMap<String, String>,
        log: Option<&Path>,
    ) -> anyhow::Result<Self> {
        let mut command = Command::new(binary);
        command.env_clear().envs(env).stdin(Stdio::null());
        match log {
            Some(path) => {
                let file = std::fs::File::create(path)?;
                command.stdout(file.try_clone()?).stderr(file);
            }
            None => {
                command.stdout(Stdio::null()).stderr(Stdio::null());
            }
        }
        // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let spawned_at = Instant::now();
        let child = command
            .spawn()
            .with_context(|| format!("start {}", binary.display()))?;
        Ok(Self { child, spawned_at })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The process's peak resident set so far (`VmHWM`), in bytes.
    pub fn peak_rss(&self) -> anyhow::Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))?;
        parse_vm_hwm(&status).context("no VmHWM in /proc/<pid>/status")
    }
}

impl Drop for FunctionProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `VmHWM` of a `/proc/<pid>/status`, in bytes.
fn parse_vm_hwm(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_peak_resident_set_is_read_from_vm_hwm_in_kib() {
        let status = "Name:\tbench\nVmPeak:\t  20000 kB\nVmHWM:\t    1536 kB\nVmRSS:\t 1024 kB\n";
        assert_eq!(parse_vm_hwm(status), Some(1536 * 1024));
        assert_eq!(parse_vm_hwm("Name:\tx\n"), None);
    }

    #[tokio::test]
    async fn the_stub_hands_out_queued_events_and_records_answers() {
        let stub = StubRuntime::start().await.unwrap();
        let base = format!("http://{}/2018-06-01/runtime", stub.address());
        let http = reqwest::Client::new();
        let id = stub.invoke(r#"{"n":1}"#.into());
        let event = http
            .get(format!("{base}/invocation/next"))
            .send()
            .await
            .unwrap();
        assert_eq!(
            event.headers()["lambda-runtime-aws-request-id"],
            id.as_str()
        );
        assert!(event.headers().contains_key("lambda-runtime-deadline-ms"));
        assert_eq!(event.text().await.unwrap(), r#"{"n":1}"#);
        stub.first_poll(Duration::from_secs(1)).await.unwrap();
        http.post(format!("{base}/invocation/{id}/response"))
            .body("done")
            .send()
            .await
            .unwrap();
        let answer = stub.answer(&id, Duration::from_secs(1)).await.unwrap();
        assert!(answer.ok);
        assert_eq!(answer.body, "done");
        // A poll with nothing queued waits for the next event.
        let waiting = tokio::spawn({
            let http = http.clone();
            let url = format!("{base}/invocation/next");
            async move { http.get(url).send().await.unwrap().text().await.unwrap() }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished());
        stub.invoke("second".into());
        assert_eq!(waiting.await.unwrap(), "second");
    }
}
