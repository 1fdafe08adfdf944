//! The API two ways, over a fresh database and the embedded queue:
//!
//! - [`spawn_app`]: served over real HTTP on a free loopback port, identities from
//!   HS256 bearer tokens (the local runner's way);
//! - [`gateway_app`]: driven with API Gateway HTTP API (payload v2) events through
//!   `lambda_http`'s adapter, identities from the JWT authorizer's claims (the Lambda
//!   function's way).
//!
//! Both answer [`ApiResponse`]s to the same calls ([`Who`], method, path, body), so a test
//! can run the same requests through either.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use cwsync::api::{self, AppState, AuthConfig, Role};
use cwsync::config::Env;
use cwsync::queue::{EmbeddedQueues, EmbeddedSettings, Queues};
use lambda_http::request::LambdaRequest;
use lambda_http::tower::ServiceExt;
use lambda_http::{Adapter, Context, LambdaEvent, Service};
use secrecy::SecretString;
use serde_json::{Map, Value, json};

use crate::TestDb;

/// The HS256 secret of the test API's tokens.
pub const TEST_JWT_SECRET: &str = "cwsync-tests-local-jwt-secret";

/// Who makes a request: nobody, or a user with these JWT claims.
#[derive(Debug, Clone)]
pub enum Who {
    Nobody,
    Claims(Map<String, Value>),
}

impl Who {
    /// `sub` with `role` in the `role` claim.
    pub fn user(sub: &str, role: &str) -> Self {
        let mut claims = Map::new();
        claims.insert("sub".into(), sub.into());
        claims.insert("role".into(), role.into());
        Self::Claims(claims)
    }

    pub fn admin() -> Self {
        Self::user("admin-1", "admin")
    }

    pub fn writer() -> Self {
        Self::user("writer-1", "writer")
    }

    pub fn reader() -> Self {
        Self::user("reader-1", "reader")
    }

    /// A genuine identity with no cwsync role.
    pub fn no_role(sub: &str) -> Self {
        let mut claims = Map::new();
        claims.insert("sub".into(), sub.into());
        Self::Claims(claims)
    }

    /// The same identity with one more claim.
    pub fn with_claim(self, name: &str, value: Value) -> Self {
        match self {
            Self::Nobody => {
                let mut claims = Map::new();
                claims.insert(name.into(), value);
                Self::Claims(claims)
            }
            Self::Claims(mut claims) => {
                claims.insert(name.into(), value);
                Self::Claims(claims)
            }
        }
    }

    pub fn sub(&self) -> Option<&str> {
        match self {
            Self::Nobody => None,
            Self::Claims(c) => c.get("sub").and_then(Value::as_str),
        }
    }
}

/// An API answer, its body parsed as JSON when it is JSON.
#[derive(Debug, Clone)]
pub struct ApiResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    /// `Value::Null` when the body is empty or not JSON.
    pub body: Value,
    pub text: String,
}

impl ApiResponse {
    fn new(status: u16, headers: Vec<(String, String)>, text: String) -> Self {
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Self {
            status,
            headers,
            body,
            text,
        }
    }

    /// `error.code`, or "" when the answer is no error.
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }

    /// `error.field`, when the error names one.
    pub fn field(&self) -> Option<&str> {
        self.body["error"]["field"].as_str()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Panics with the whole answer unless the status is `expected`.
    #[track_caller]
    pub fn expect(&self, expected: u16) -> &Self {
        assert_eq!(
            self.status, expected,
            "expected {expected}, got {}: {}",
            self.status, self.text
        );
        self
    }
}

/// A request body: JSON, or raw bytes with a content type.
#[derive(Debug, Clone)]
pub enum Body {
    Json(Value),
    Raw {
        content_type: Option<String>,
        bytes: Vec<u8>,
    },
}

/// A running API over HTTP and the database and queues behind it.
pub struct TestApp {
    /// `http://127.0.0.1:<port>`
    pub address: String,
    pub db: TestDb,
    pub http: reqwest::Client,
    pub queues: EmbeddedQueues,
    pub auth: Arc<AuthConfig>,
}

impl TestApp {
    /// `GET {address}{path}` without identity.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.address))
            .send()
            .await
            .expect("request to the test API")
    }

    /// A bearer token for `sub` with `role`, as the local runner mints them.
    pub fn token(&self, sub: &str, role: Role) -> String {
        self.auth
            .mint_local_token(sub, role, Duration::from_secs(3600))
            .expect("mint a token")
    }

    /// A token with exactly these claims.
    pub fn token_for(&self, claims: &Map<String, Value>) -> String {
        self.auth
            .mint_local_claims(claims, Duration::from_secs(3600))
            .expect("mint a token")
    }

    /// Sends a request as `who` with extra headers; `path` may carry a query.
    pub async fn send(
        &self,
        who: &Who,
        method: &str,
        path: &str,
        body: Option<Body>,
        headers: &[(&str, &str)],
    ) -> ApiResponse {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("an HTTP method");
        let mut request = self.http.request(method, format!("{}{path}", self.address));
        if let Who::Claims(claims) = who {
            request = request.bearer_auth(self.token_for(claims));
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request = match body {
            None => request,
            Some(Body::Json(value)) => request.json(&value),
            Some(Body::Raw {
                content_type,
                bytes,
            }) => {
                if let Some(ct) = content_type {
                    request = request.header("content-type", ct);
                }
                request.body(bytes)
            }
        };
        let response = request.send().await.expect("request to the test API");
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or("").to_owned()))
            .collect();
        let text = response.text().await.expect("response body");
        ApiResponse::new(status, headers, text)
    }

    pub async fn call(
        &self,
        who: &Who,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> ApiResponse {
        self.send(who, method, path, body.map(Body::Json), &[])
            .await
    }
}

fn embedded_queues() -> EmbeddedQueues {
    EmbeddedQueues::new(EmbeddedSettings::default())
}

/// Starts the API on `127.0.0.1:0` over a freshly migrated database and embedded queues,
/// taking HS256 tokens signed with [`TEST_JWT_SECRET`].
pub async fn spawn_app() -> TestApp {
    let queues = embedded_queues();
    spawn_app_with(Arc::new(queues.clone()), queues).await
}

/// [`spawn_app`] with the API sending to `api_queues` (SQS, say); `queues` is what
/// [`TestApp::queues`] holds.
pub async fn spawn_app_with(api_queues: Arc<dyn Queues>, queues: EmbeddedQueues) -> TestApp {
    let db = TestDb::new().await;
    spawn_app_on(db, cwsync::job_types::registry(), api_queues, queues).await
}

/// [`spawn_app_with`] over `db` (already migrated) for the job types of `registry`.
pub async fn spawn_app_on(
    db: TestDb,
    registry: cwsync::jobs::Registry,
    api_queues: Arc<dyn Queues>,
    queues: EmbeddedQueues,
) -> TestApp {
    spawn_app_configured(db, registry, api_queues, queues, &Env::default()).await
}

/// [`spawn_app_on`] with `env` for the API's settings (`JWT_ROLE_CLAIM`, `OAUTH_*`).
pub async fn spawn_app_configured(
    db: TestDb,
    registry: cwsync::jobs::Registry,
    api_queues: Arc<dyn Queues>,
    queues: EmbeddedQueues,
    env: &Env,
) -> TestApp {
    spawn_app_stated(db, registry, api_queues, queues, env, |state, _| state).await
}

/// [`spawn_app`] whose API adds and connects Chatwork accounts through `connections`.
pub async fn spawn_app_with_connections(
    db: TestDb,
    connections: cwsync::connections::Connections,
) -> TestApp {
    spawn_app_connecting(db, move |_, _| connections).await
}

/// [`spawn_app_with_connections`] with connections made knowing the app's address
/// (`http://127.0.0.1:<port>`), for an OAuth redirect that comes back to it.
pub async fn spawn_app_connecting(
    db: TestDb,
    connections: impl FnOnce(&str, &sqlx::PgPool) -> cwsync::connections::Connections,
) -> TestApp {
    let queues = embedded_queues();
    spawn_app_stated(
        db,
        cwsync::job_types::registry(),
        Arc::new(queues.clone()),
        queues,
        &Env::default(),
        move |state, address| {
            let connections = connections(address, &state.pool);
            state.with_connections(connections)
        },
    )
    .await
}

async fn spawn_app_stated(
    db: TestDb,
    registry: cwsync::jobs::Registry,
    api_queues: Arc<dyn Queues>,
    queues: EmbeddedQueues,
    env: &Env,
    shape: impl FnOnce(AppState, &str) -> AppState,
) -> TestApp {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port");
    let address = format!("http://{}", listener.local_addr().expect("bound address"));
    let auth = AuthConfig::local_jwt(env, &SecretString::from(TEST_JWT_SECRET))
        .expect("the test secret is long enough");
    // Webhook counts reach the status page's history with each delivery, so that a test
    // reads them at once.
    let state = shape(
        AppState::new(db.pool.clone(), api_queues, auth)
            .with_registry(registry)
            .with_webhook_history_every(std::time::Duration::ZERO),
        &address,
    );
    let auth = state.auth.clone();
    let app = api::router(state);
    tokio::spawn(async move {
        // Served as the local runner serves it.
        api::serve(listener, app, std::future::pending()).await;
    });
    TestApp {
        address,
        db,
        http: reqwest::Client::new(),
        queues,
        auth,
    }
}

/// The API as the Lambda function runs it: the router behind `lambda_http`'s adapter,
/// identities from API Gateway's JWT authorizer.
pub struct GatewayApp {
    pub db: TestDb,
    pub queues: EmbeddedQueues,
    router: Router,
}

/// The gateway flavour of [`spawn_app`], with `env` for the API's settings
/// (`JWT_ROLE_CLAIM`).
pub async fn gateway_app_with(env: &Env) -> GatewayApp {
    let db = TestDb::new().await;
    let queues = embedded_queues();
    let auth = AuthConfig::api_gateway(env).expect("gateway auth settings");
    let router = api::router(AppState::new(
        db.pool.clone(),
        Arc::new(queues.clone()),
        auth,
    ));
    GatewayApp { db, queues, router }
}

pub async fn gateway_app() -> GatewayApp {
    gateway_app_with(&Env::default()).await
}

/// The claims as API Gateway's JWT authorizer hands them over: every value a string, an
/// array flattened to `[a b]`.
pub fn gateway_claims(claims: &Map<String, Value>) -> Map<String, Value> {
    claims
        .iter()
        .map(|(k, v)| {
            let text = match v {
                Value::String(s) => s.clone(),
                Value::Array(items) => format!(
                    "[{}]",
                    items
                        .iter()
                        .map(|i| i
                            .as_str()
                            .map(str::to_owned)
                            .unwrap_or_else(|| i.to_string()))
                        .collect::<Vec<_>>()
                        .join(" ")
                ),
                other => other.to_string(),
            };
            (k.clone(), Value::String(text))
        })
        .collect()
}

/// An API Gateway HTTP API (payload v2) event as the Lambda function receives it.
pub fn gateway_event(
    who: &Who,
    method: &str,
    path_and_query: &str,
    body: Option<Body>,
    headers: &[(&str, &str)],
) -> Value {
    let (path, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query, ""));
    let mut header_map = Map::new();
    header_map.insert("host".into(), "api.cwsync.example".into());
    header_map.insert("user-agent".into(), "cwsync-tests".into());
    let (body, base64) = match body {
        None => (Value::Null, false),
        Some(Body::Json(value)) => {
            header_map.insert("content-type".into(), "application/json".into());
            (Value::String(value.to_string()), false)
        }
        Some(Body::Raw {
            content_type,
            bytes,
        }) => {
            if let Some(ct) = content_type {
                header_map.insert("content-type".into(), ct.into());
            }
            match String::from_utf8(bytes) {
                Ok(text) => (Value::String(text), false),
                Err(e) => {
                    use base64::Engine;
                    let encoded = base64::engine::general_purpose::STANDARD.encode(e.into_bytes());
                    (Value::String(encoded), true)
                }
            }
        }
    };
    for (name, value) in headers {
        header_map.insert(name.to_ascii_lowercase(), (*value).into());
    }
    let now = chrono::Utc::now();
    let mut context = json!({
        "accountId": "123456789012",
        "apiId": "a1b2c3d4e5",
        "domainName": "api.cwsync.example",
        "domainPrefix": "api",
        "http": {
            "method": method,
            "path": path,
            "protocol": "HTTP/1.1",
            "sourceIp": "192.0.2.10",
            "userAgent": "cwsync-tests"
        },
        "requestId": format!("gw-{}", uuid::Uuid::new_v4().simple()),
        "routeKey": "$default",
        "stage": "$default",
        "time": now.format("%d/%b/%Y:%H:%M:%S +0000").to_string(),
        "timeEpoch": now.timestamp_millis(),
    });
    if let Who::Claims(claims) = who {
        let mut claims = gateway_claims(claims);
        claims
            .entry("iss")
            .or_insert_with(|| "https://cognito-idp.ap-northeast-1.amazonaws.com/pool".into());
        claims
            .entry("exp")
            .or_insert_with(|| (now.timestamp() + 3600).to_string().into());
        context["authorizer"] = json!({"jwt": {"claims": claims, "scopes": null}});
    }
    let mut event = json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": query,
        "headers": header_map,
        "requestContext": context,
        "isBase64Encoded": base64,
    });
    if !body.is_null() {
        event["body"] = body;
    }
    event
}

impl GatewayApp {
    /// Hands an event (JSON text, as Lambda delivers it) to the function's adapter and
    /// returns what the function answers API Gateway with.
    pub async fn invoke(&self, event: &str) -> Value {
        let request: LambdaRequest = serde_json::from_str(event).expect("an API Gateway v2 event");
        let mut adapter = Adapter::from(self.router.clone());
        let response = adapter
            .ready()
            .await
            .expect("the adapter is ready")
            .call(LambdaEvent::new(request, Context::default()))
            .await
            .expect("the router never fails");
        serde_json::to_value(response).expect("the Lambda response serializes")
    }

    /// The gateway's answer as an [`ApiResponse`].
    pub async fn send(
        &self,
        who: &Who,
        method: &str,
        path: &str,
        body: Option<Body>,
        headers: &[(&str, &str)],
    ) -> ApiResponse {
        let event = gateway_event(who, method, path, body, headers);
        let response = self.invoke(&event.to_string()).await;
        response_of(&response)
    }

    pub async fn call(
        &self,
        who: &Who,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> ApiResponse {
        self.send(who, method, path, body.map(Body::Json), &[])
            .await
    }
}

/// An API Gateway v2 response (`{statusCode, headers, body, isBase64Encoded}`) as an
/// [`ApiResponse`].
pub fn response_of(response: &Value) -> ApiResponse {
    let status = response["statusCode"].as_u64().expect("a status code") as u16;
    let headers = response["headers"]
        .as_object()
        .map(|h| {
            h.iter()
                .map(|(n, v)| (n.clone(), v.as_str().unwrap_or("").to_owned()))
                .collect()
        })
        .unwrap_or_default();
    let text = match &response["body"] {
        Value::String(s) if response["isBase64Encoded"] == true => {
            use base64::Engine;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(s)
                .expect("base64 body");
            String::from_utf8_lossy(&bytes).into_owned()
        }
        Value::String(s) => s.clone(),
        _ => String::new(),
    };
    ApiResponse::new(status, headers, text)
}
