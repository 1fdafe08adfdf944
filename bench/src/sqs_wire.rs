//! An HTTP proxy in front of moto's SQS server that counts the SQS calls passing through
//! it by action (the `X-Amz-Target` header of the JSON protocol, or the `Action`
//! parameter of the query protocol): the calls as they are on the wire, retries
//! included.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

struct Shared {
    upstream: String,
    http: reqwest::Client,
    calls: Mutex<BTreeMap<String, u64>>,
}

/// A running counting proxy; stops when dropped.
pub struct SqsCallCounter {
    addr: std::net::SocketAddr,
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

impl SqsCallCounter {
    /// Forwards to `upstream` (`http://host:port`).
    pub async fn start(upstream: &str) -> anyhow::Result<Self> {
        let shared = Arc::new(Shared {
            upstream: upstream.trim_end_matches('/').to_owned(),
            http: reqwest::Client::new(),
            calls: Mutex::new(BTreeMap::new()),
        });
        let app = Router::new().fallback(forward).with_state(shared.clone());
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

    /// `http://127.0.0.1:<port>`, the endpoint for an SQS client.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Calls so far, by action.
    pub fn calls(&self) -> BTreeMap<String, u64> {
        self.shared.calls.lock().expect("the counts").clone()
    }

    /// An SQS client whose calls go through this proxy (moto accepts any credentials).
    pub fn client(&self) -> aws_sdk_sqs::Client {
        use aws_sdk_sqs::config::{BehaviorVersion, Credentials, Region};
        let config = aws_sdk_sqs::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url(self.endpoint())
            .credentials_provider(Credentials::new("test", "test", None, None, "cwsync-bench"))
            .build();
        aws_sdk_sqs::Client::from_conf(config)
    }
}

impl Drop for SqsCallCounter {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// The SQS action of a request: `AmazonSQS.SendMessageBatch` → `SendMessageBatch`.
fn action_of(headers: &HeaderMap, query: Option<&str>, body: &[u8]) -> String {
    if let Some(target) = headers.get("x-amz-target").and_then(|v| v.to_str().ok()) {
        return target.rsplit('.').next().unwrap_or(target).to_owned();
    }
    let form = [query.unwrap_or("").as_bytes(), body];
    form.iter()
        .flat_map(|part| url::form_urlencoded::parse(part))
        .find(|(k, _)| k == "Action")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| "unknown".into())
}

/// Headers that belong to one hop, not to the request.
fn hop_by_hop(name: &str) -> bool {
    matches!(
        name,
        "host" | "connection" | "content-length" | "transfer-encoding" | "keep-alive"
    )
}

async fn forward(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let Ok(body): Result<Bytes, _> = axum::body::to_bytes(body, 16 * 1024 * 1024).await else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let action = action_of(&parts.headers, parts.uri.query(), &body);
    *shared
        .calls
        .lock()
        .expect("the counts")
        .entry(action)
        .or_default() += 1;
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let mut upstream = shared
        .http
        .request(parts.method, format!("{}{path}", shared.upstream))
        .body(body);
    for (name, value) in &parts.headers {
        if !hop_by_hop(name.as_str()) {
            upstream = upstream.header(name, value);
        }
    }
    let answer = match upstream.send().await {
        Ok(answer) => answer,
        Err(e) => return (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    };
    let status = answer.status();
    let mut headers = HeaderMap::new();
    for (name, value) in answer.headers() {
        if !hop_by_hop(name.as_str()) {
            headers.insert(name, value.clone());
        }
    }
    let bytes = answer.bytes().await.unwrap_or_default();
    (status, headers, bytes).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_action_comes_from_the_target_header_or_the_query_protocols_parameter() {
        let mut json = HeaderMap::new();
        json.insert(
            "x-amz-target",
            "AmazonSQS.SendMessageBatch".parse().unwrap(),
        );
        assert_eq!(action_of(&json, None, b"{}"), "SendMessageBatch");
        let none = HeaderMap::new();
        assert_eq!(
            action_of(&none, None, b"Action=ReceiveMessage&Version=2012-11-05"),
            "ReceiveMessage"
        );
        assert_eq!(
            action_of(&none, Some("Action=DeleteMessage"), b""),
            "DeleteMessage"
        );
        assert_eq!(action_of(&none, None, b""), "unknown");
    }
}
