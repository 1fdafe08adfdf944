//! An HTTP proxy in front of the AWS emulator (moto) that keeps what each AWS JSON call
//! sent: the action (`X-Amz-Target`) and the body. A test points a function's
//! `AWS_ENDPOINT_URL` at it to see the requests the function made, e.g. the
//! `SendMessageBatch` entries' message system attributes, which moto 5.2 does not keep
//! for batches (it keeps them only for `SendMessage`).

use std::sync::{Arc, Mutex};

use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderName, StatusCode};
use axum::response::Response;
use serde_json::Value;

/// One AWS call as it went through.
#[derive(Debug, Clone)]
pub struct AwsCall {
    /// `X-Amz-Target`, e.g. `AmazonSQS.SendMessageBatch`.
    pub target: String,
    /// The request body as JSON (`Null` when it was not JSON).
    pub body: Value,
    /// The `X-Amzn-Trace-Id` header of the request, if any.
    pub trace_header: Option<String>,
}

/// The proxy; it serves until the test process ends.
pub struct AwsRecorder {
    /// `http://127.0.0.1:<port>`, for `AWS_ENDPOINT_URL`.
    pub endpoint: String,
    calls: Arc<Mutex<Vec<AwsCall>>>,
}

#[derive(Clone)]
struct Upstream {
    base: String,
    http: reqwest::Client,
    calls: Arc<Mutex<Vec<AwsCall>>>,
}

impl AwsRecorder {
    /// Starts the proxy in front of `upstream` (`http://host:port`).
    pub async fn start(upstream: &str) -> Self {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let state = Upstream {
            base: upstream.trim_end_matches('/').to_owned(),
            http: reqwest::Client::new(),
            calls: calls.clone(),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port");
        let endpoint = format!("http://{}", listener.local_addr().expect("bound"));
        let app = axum::Router::new().fallback(forward).with_state(state);
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { endpoint, calls }
    }

    /// The calls made so far with `target`.
    pub fn calls(&self, target: &str) -> Vec<AwsCall> {
        let calls = self.calls.lock().unwrap();
        calls
            .iter()
            .filter(|c| c.target == target)
            .cloned()
            .collect()
    }
}

async fn forward(State(upstream): State<Upstream>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = to_bytes(body, 16 * 1024 * 1024).await.unwrap_or_default();
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    upstream.calls.lock().unwrap().push(AwsCall {
        target: header("x-amz-target").unwrap_or_default(),
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        trace_header: header("x-amzn-trace-id"),
    });
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut sent = upstream
        .http
        .request(parts.method.clone(), format!("{}{path}", upstream.base))
        .body(body);
    for (name, value) in &parts.headers {
        if name != "host" && name != "content-length" {
            sent = sent.header(name, value);
        }
    }
    let answer = match sent.send().await {
        Ok(answer) => answer,
        Err(e) => {
            return Response::builder()
                .status(StatusCode::BAD_GATEWAY)
                .body(Body::from(e.to_string()))
                .expect("a response");
        }
    };
    let mut response = Response::builder().status(answer.status().as_u16());
    for (name, value) in answer.headers() {
        if name != "content-length" && name != "transfer-encoding" {
            response = response.header(
                HeaderName::from_bytes(name.as_ref()).unwrap(),
                value.as_bytes(),
            );
        }
    }
    let bytes = answer.bytes().await.unwrap_or_default();
    response.body(Body::from(bytes)).expect("a response")
}
