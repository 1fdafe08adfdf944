//! A fake OpenAI-compatible chat-completions server on a loopback port, for the summary
//! tests: it records every request (headers and JSON body), answers scripted errors
//! first (429 with `retry-after`, 503, 401...), can hold requests until a test lets them
//! go, and otherwise answers a deterministic summary that cites the lines it was sent.
//!
//! Its answers: a map request (lines `[#n] ...`) gets `- part: messages #a to #b [#a][#b]`;
//! a combine request gets `- combined: ` and every `[#n]` of its parts, in order. Every
//! answer reports `usage` of 100 prompt and 20 completion tokens.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};
use tokio::sync::watch;

/// A request the fake received.
#[derive(Debug, Clone)]
pub struct ModelRequest {
    pub authorization: Option<String>,
    pub body: Value,
    pub at: Instant,
}

impl ModelRequest {
    pub fn system(&self) -> &str {
        self.body["messages"][0]["content"].as_str().unwrap_or("")
    }

    pub fn user(&self) -> &str {
        self.body["messages"][1]["content"].as_str().unwrap_or("")
    }

    /// Whether this request combines partial summaries (rather than reading messages).
    pub fn is_combine(&self) -> bool {
        let system = self.system();
        system.contains("combine partial summaries") || system.contains("部分要約をまとめ")
    }

    /// The `[#n]` numbers of the message lines it carries (map requests).
    pub fn line_numbers(&self) -> Vec<usize> {
        self.user()
            .lines()
            .filter_map(|l| l.strip_prefix("[#")?.split(']').next()?.parse().ok())
            .collect()
    }
}

/// A scripted answer, given before the default ones.
#[derive(Debug, Clone)]
pub struct ModelReply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl ModelReply {
    pub fn status(status: u16, body: &str) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: body.to_owned(),
        }
    }

    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }
}

#[derive(Default)]
struct FakeState {
    requests: Mutex<Vec<ModelRequest>>,
    script: Mutex<VecDeque<ModelReply>>,
    /// Requests still to hold at the gate.
    to_hold: Mutex<usize>,
}

/// See the module documentation. Stops when dropped.
pub struct FakeModel {
    /// `http://127.0.0.1:<port>/v1`
    pub base_url: String,
    state: Arc<FakeState>,
    gate: watch::Sender<bool>,
    server: tokio::task::JoinHandle<()>,
}

impl FakeModel {
    pub async fn start() -> Self {
        let state = Arc::new(FakeState::default());
        let (gate, _) = watch::channel(true);
        let app = Router::new()
            .route("/v1/chat/completions", post(complete))
            .with_state((state.clone(), gate.subscribe()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port");
        let address = listener.local_addr().expect("bound address");
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("fake model server");
        });
        Self {
            base_url: format!("http://{address}/v1"),
            state,
            gate,
            server,
        }
    }

    /// Answers `replies` to the next requests, in order.
    pub fn script(&self, replies: impl IntoIterator<Item = ModelReply>) {
        self.state.script.lock().unwrap().extend(replies);
    }

    /// Holds the next `n` requests until [`release`](Self::release).
    pub fn hold_next(&self, n: usize) {
        *self.state.to_hold.lock().unwrap() = n;
        self.gate.send_replace(false);
    }

    /// Lets held requests go (and no more are held).
    pub fn release(&self) {
        *self.state.to_hold.lock().unwrap() = 0;
        self.gate.send_replace(true);
    }

    pub fn requests(&self) -> Vec<ModelRequest> {
        self.state.requests.lock().unwrap().clone()
    }
}

impl Drop for FakeModel {
    fn drop(&mut self) {
        self.server.abort();
    }
}

type FakeContext = (Arc<FakeState>, watch::Receiver<bool>);

async fn complete(
    State((state, mut gate)): State<FakeContext>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let request = ModelRequest {
        authorization: headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        body: body.clone(),
        at: Instant::now(),
    };
    state.requests.lock().unwrap().push(request.clone());
    let hold = {
        let mut to_hold = state.to_hold.lock().unwrap();
        if *to_hold > 0 {
            *to_hold -= 1;
            true
        } else {
            false
        }
    };
    if hold {
        let _ = gate.wait_for(|open| *open).await;
    }
    let scripted = state.script.lock().unwrap().pop_front();
    if let Some(reply) = scripted {
        let mut response = (
            StatusCode::from_u16(reply.status).unwrap(),
            reply.body.clone(),
        )
            .into_response();
        for (name, value) in reply.headers {
            response.headers_mut().insert(
                axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        return response;
    }
    let content = if request.is_combine() {
        let refs = citations(request.user());
        format!("- combined: {}", refs.concat())
    } else {
        let numbers = request.line_numbers();
        match (numbers.first(), numbers.last()) {
            (Some(a), Some(b)) => format!("- part: messages #{a} to #{b} [#{a}][#{b}]"),
            _ => "- part: nothing".to_owned(),
        }
    };
    axum::Json(json!({
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "model": body["model"],
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": content},
            "finish_reason": "stop"
        }],
        "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120}
    }))
    .into_response()
}

/// Every `[#n]` in `text`, in order.
fn citations(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("[#") {
        let after = &rest[start + 2..];
        match after.find(']') {
            Some(end) if after[..end].chars().all(|c| c.is_ascii_digit()) && end > 0 => {
                out.push(format!("[#{}]", &after[..end]));
                rest = &after[end + 1..];
            }
            _ => rest = after,
        }
    }
    out
}
