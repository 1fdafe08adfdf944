//! A stand-in OpenID Connect provider for the console's sign-in (OAuth 2.0 authorization
//! code with PKCE), served on a free loopback port:
//!
//! - `GET /.well-known/openid-configuration`: the discovery document;
//! - `GET /authorize`: checks the client and that a S256 challenge came, then sends the
//!   browser straight back to `redirect_uri` with a one-time code and the `state` (the
//!   person is taken to have signed in);
//! - `POST /token`: exchanges a code once, only with the verifier whose SHA-256 is the
//!   challenge and with the same client and `redirect_uri`, for an access token the test
//!   API accepts (an HS256 JWT from its own [`AuthConfig`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cwsync::api::AuthConfig;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

/// A code handed out and not yet exchanged.
struct Grant {
    challenge: String,
    client_id: String,
    redirect_uri: String,
}

struct Provider {
    issuer: String,
    client_id: String,
    /// The identity every sign-in yields: `sub` and the role claim.
    claims: Map<String, Value>,
    auth: Arc<AuthConfig>,
    grants: Mutex<HashMap<String, Grant>>,
    /// Token requests answered with a token, and refused.
    exchanged: Mutex<(u32, u32)>,
}

/// The running provider.
pub struct FakeOidc {
    pub issuer: String,
    pub client_id: String,
    provider: Arc<Provider>,
}

impl FakeOidc {
    /// A provider for `client_id` whose sign-ins are `sub` with `role`, its tokens minted
    /// with `auth` (the test API's).
    pub async fn start(auth: Arc<AuthConfig>, client_id: &str, sub: &str, role: &str) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port");
        let issuer = format!("http://{}", listener.local_addr().expect("an address"));
        let mut claims = Map::new();
        claims.insert("sub".into(), sub.into());
        claims.insert(auth.role_claim.clone(), role.into());
        claims.insert("client_id".into(), client_id.into());
        claims.insert("iss".into(), issuer.clone().into());
        let provider = Arc::new(Provider {
            issuer: issuer.clone(),
            client_id: client_id.to_owned(),
            claims,
            auth,
            grants: Mutex::new(HashMap::new()),
            exchanged: Mutex::new((0, 0)),
        });
        let app = Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/authorize", get(authorize))
            .route("/token", post(token))
            .with_state(provider.clone());
        tokio::spawn(async move {
            axum::serve(listener, app).await.expect("the fake provider");
        });
        Self {
            issuer,
            client_id: client_id.to_owned(),
            provider,
        }
    }

    /// Token requests answered with a token, and refused.
    pub fn exchanges(&self) -> (u32, u32) {
        *self.provider.exchanged.lock().unwrap()
    }
}

/// A browser's cross-origin `fetch` may read the answer.
fn cors(response: impl IntoResponse) -> Response {
    ([(header::ACCESS_CONTROL_ALLOW_ORIGIN, "*")], response).into_response()
}

async fn discovery(State(p): State<Arc<Provider>>) -> Response {
    cors(axum::Json(json!({
        "issuer": p.issuer,
        "authorization_endpoint": format!("{}/authorize", p.issuer),
        "token_endpoint": format!("{}/token", p.issuer),
        "response_types_supported": ["code"],
        "code_challenge_methods_supported": ["S256"],
    })))
}

fn refuse(error: &str) -> Response {
    cors((StatusCode::BAD_REQUEST, axum::Json(json!({"error": error}))))
}

async fn authorize(
    State(p): State<Arc<Provider>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let field = |name: &str| query.get(name).cloned().unwrap_or_default();
    if field("response_type") != "code" || field("client_id") != p.client_id {
        return refuse("unauthorized_client");
    }
    if field("code_challenge_method") != "S256" || field("code_challenge").len() < 43 {
        return refuse("invalid_request");
    }
    let code = uuid::Uuid::new_v4().simple().to_string();
    p.grants.lock().unwrap().insert(
        code.clone(),
        Grant {
            challenge: field("code_challenge"),
            client_id: field("client_id"),
            redirect_uri: field("redirect_uri"),
        },
    );
    let mut back = url::Url::parse(&field("redirect_uri")).expect("a redirect URI");
    back.query_pairs_mut()
        .append_pair("code", &code)
        .append_pair("state", &field("state"));
    Redirect::to(back.as_str()).into_response()
}

async fn token(State(p): State<Arc<Provider>>, body: Bytes) -> Response {
    let form: HashMap<String, String> = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    let field = |name: &str| form.get(name).cloned().unwrap_or_default();
    let grant = p.grants.lock().unwrap().remove(&field("code"));
    let verified = grant.is_some_and(|g| {
        field("grant_type") == "authorization_code"
            && g.client_id == field("client_id")
            && g.redirect_uri == field("redirect_uri")
            && URL_SAFE_NO_PAD.encode(Sha256::digest(field("code_verifier").as_bytes()))
                == g.challenge
    });
    let mut exchanged = p.exchanged.lock().unwrap();
    if !verified {
        exchanged.1 += 1;
        return refuse("invalid_grant");
    }
    exchanged.0 += 1;
    let access = p
        .auth
        .mint_local_claims(&p.claims, Duration::from_secs(3600))
        .expect("the test API mints tokens");
    cors(axum::Json(json!({
        "access_token": access,
        "token_type": "Bearer",
        "expires_in": 3600,
    })))
}
