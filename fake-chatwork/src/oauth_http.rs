//! The OAuth pages over HTTP: Chatwork's consent page (`/packages/oauth2/login.php`)
//! and token endpoint (`/token`), on the fake's own port. The rules are in `oauth`.
//!
//! The consent page stands for Chatwork's login too: a `<select id="account">` of the
//! fake's accounts picks who is logged in, and `<button id="allow">` or
//! `<button id="deny">` answers, so a browser test can click through it.

use std::collections::HashMap;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State as AxumState};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::json;

use crate::clock::now_ms;
use crate::oauth::{KNOWN_SCOPES, Refusal, Scopes};
use crate::server::{Shared, lock};

pub(crate) const CONSENT_PATH: &str = "/packages/oauth2/login.php";
pub(crate) const TOKEN_PATH: &str = "/token";

pub(crate) fn router(shared: Shared) -> Router {
    Router::new()
        .route(CONSENT_PATH, get(consent_page).post(consent_answer))
        .route(TOKEN_PATH, post(token))
        .with_state(shared)
}

// ---- the consent page ----

/// An authorization request that passed every check.
struct Authorization {
    client_id: String,
    redirect_uri: String,
    scopes: Scopes,
    state: Option<String>,
    challenge: String,
}

/// Why an authorization request cannot go on.
enum Failure {
    /// The client or its redirect URI cannot be trusted: an error page, no redirect.
    Page(&'static str),
    /// The redirect URI is the client's: the error goes back to it.
    Redirect {
        redirect_uri: String,
        error: &'static str,
        state: Option<String>,
    },
}

/// An S256 challenge is the base64url of 32 bytes: 43 characters; RFC 7636 allows 43
/// to 128 of the unreserved characters.
fn challenge_well_formed(challenge: &str) -> bool {
    (43..=128).contains(&challenge.len())
        && challenge
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

fn check(shared: &Shared, params: &HashMap<String, String>) -> Result<Authorization, Failure> {
    let get = |name: &str| params.get(name).map(String::as_str).unwrap_or("");
    let (client_id, redirect_uri) = (get("client_id"), get("redirect_uri"));
    {
        let state = lock(shared);
        if state.oauth.client(client_id).is_none() {
            return Err(Failure::Page("不明なクライアントです（client_id）。"));
        }
        if !state.oauth.redirect_allowed(client_id, redirect_uri)
            || reqwest::Url::parse(redirect_uri).is_err()
        {
            return Err(Failure::Page(
                "登録されていないリダイレクトURIです（redirect_uri）。",
            ));
        }
    }
    let state = params.get("state").cloned();
    let redirect = |error| Failure::Redirect {
        redirect_uri: redirect_uri.to_owned(),
        error,
        state: state.clone(),
    };
    if get("response_type") != "code" {
        return Err(redirect("unsupported_response_type"));
    }
    if get("code_challenge_method") != "S256" || !challenge_well_formed(get("code_challenge")) {
        return Err(redirect("invalid_request"));
    }
    let scopes = Scopes::parse(get("scope")).map_err(|_| redirect("invalid_scope"))?;
    Ok(Authorization {
        client_id: client_id.to_owned(),
        redirect_uri: redirect_uri.to_owned(),
        scopes,
        state: state.clone(),
        challenge: get("code_challenge").to_owned(),
    })
}

/// A 302 to the client's redirect URI with `pairs` (and `state`) added to its query.
fn redirect_to(redirect_uri: &str, pairs: &[(&str, &str)], state: Option<&str>) -> Response {
    let Ok(mut url) = reqwest::Url::parse(redirect_uri) else {
        return error_page(StatusCode::BAD_REQUEST, "リダイレクトURIが不正です。");
    };
    {
        let mut query = url.query_pairs_mut();
        for (name, value) in pairs {
            query.append_pair(name, value);
        }
        if let Some(state) = state {
            query.append_pair("state", state);
        }
    }
    let mut response = StatusCode::FOUND.into_response();
    if let Ok(location) = HeaderValue::from_str(url.as_str()) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

fn fail(failure: Failure) -> Response {
    match failure {
        Failure::Page(message) => error_page(StatusCode::BAD_REQUEST, message),
        Failure::Redirect {
            redirect_uri,
            error,
            state,
        } => redirect_to(&redirect_uri, &[("error", error)], state.as_deref()),
    }
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font-family:sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem;color:#222;line-height:1.6}\
h1{font-size:1.3rem}label{display:block;margin:1rem 0 .3rem}select{font-size:1rem;padding:.3rem}\
ul{padding-left:1.2rem}code{color:#555;font-size:.85rem}.buttons{margin-top:1.5rem;display:flex;gap:1rem}\
button{font-size:1rem;padding:.5rem 1.5rem;border-radius:4px;border:1px solid #888;cursor:pointer}\
#allow{background:#d43c2c;color:#fff;border-color:#d43c2c}.error{color:#b00}";

fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"ja\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{title} - Chatwork（fake）</title>\n<style>{STYLE}</style>\n</head>\n\
         <body>\n{body}\n</body>\n</html>\n",
        title = escape(title)
    )
}

fn error_page(status: StatusCode, message: &str) -> Response {
    let body = format!(
        "<h1>エラー</h1>\n<p class=\"error\" id=\"error\">{}</p>",
        escape(message)
    );
    (status, Html(page("エラー", &body))).into_response()
}

async fn consent_page(
    AxumState(shared): AxumState<Shared>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let request = match check(&shared, &params) {
        Ok(request) => request,
        Err(failure) => return fail(failure),
    };
    let state = lock(&shared);
    let accounts: String = state
        .accounts
        .values()
        .map(|a| {
            format!(
                "<option value=\"{}\">{}（{}）</option>",
                a.info.account_id,
                escape(&a.info.name),
                escape(&a.info.organization_name)
            )
        })
        .collect::<Vec<_>>()
        .join("\n");
    drop(state);
    let scopes: String = request
        .scopes
        .iter()
        .map(|s| {
            let label = KNOWN_SCOPES
                .iter()
                .find(|(name, _)| *name == s)
                .map_or("", |(_, label)| label);
            format!("<li>{} <code>{}</code></li>", escape(label), escape(s))
        })
        .collect::<Vec<_>>()
        .join("\n");
    let hidden: String = [
        ("response_type", "code"),
        ("client_id", request.client_id.as_str()),
        ("redirect_uri", request.redirect_uri.as_str()),
        ("scope", &request.scopes.to_string()),
        ("state", request.state.as_deref().unwrap_or("")),
        ("code_challenge", request.challenge.as_str()),
        ("code_challenge_method", "S256"),
    ]
    .iter()
    .filter(|(name, _)| *name != "state" || request.state.is_some())
    .map(|(name, value)| {
        format!(
            "<input type=\"hidden\" name=\"{name}\" value=\"{}\">",
            escape(value)
        )
    })
    .collect::<Vec<_>>()
    .join("\n");
    let body = format!(
        "<h1>アプリ連携の許可</h1>\n\
         <p>アプリ <strong id=\"client\">{client}</strong> があなたのChatworkアカウントへのアクセスを求めています。</p>\n\
         <form method=\"post\" action=\"{CONSENT_PATH}\">\n{hidden}\n\
         <label for=\"account\">ログインするアカウント</label>\n\
         <select id=\"account\" name=\"account\">\n{accounts}\n</select>\n\
         <p>許可される操作：</p>\n<ul id=\"scopes\">\n{scopes}\n</ul>\n\
         <div class=\"buttons\">\n\
         <button id=\"allow\" type=\"submit\" name=\"decision\" value=\"allow\">許可する</button>\n\
         <button id=\"deny\" type=\"submit\" name=\"decision\" value=\"deny\">拒否する</button>\n\
         </div>\n</form>",
        client = escape(&request.client_id),
    );
    Html(page("アプリ連携の許可", &body)).into_response()
}

/// A form body (`application/x-www-form-urlencoded`); `None` when a parameter is given
/// twice (RFC 6749 §3.1) or the content type is another.
fn form(headers: &HeaderMap, body: &[u8]) -> Option<HashMap<String, String>> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = content_type.split(';').next().unwrap_or("").trim();
    if !essence.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        return None;
    }
    let mut params = HashMap::new();
    for (name, value) in form_urlencoded::parse(body) {
        if params
            .insert(name.into_owned(), value.into_owned())
            .is_some()
        {
            return None;
        }
    }
    Some(params)
}

async fn consent_answer(
    AxumState(shared): AxumState<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(params) = form(&headers, &body) else {
        return error_page(StatusCode::BAD_REQUEST, "フォームの送信内容が不正です。");
    };
    let request = match check(&shared, &params) {
        Ok(request) => request,
        Err(failure) => return fail(failure),
    };
    let redirect = |pairs: &[(&str, &str)]| {
        redirect_to(&request.redirect_uri, pairs, request.state.as_deref())
    };
    match params.get("decision").map(String::as_str) {
        Some("deny") => redirect(&[("error", "access_denied")]),
        Some("allow") => {
            let account_id = params.get("account").and_then(|a| a.parse::<i64>().ok());
            let mut state = lock(&shared);
            let Some(account_id) = account_id.filter(|id| state.accounts.contains_key(id)) else {
                drop(state);
                return error_page(StatusCode::BAD_REQUEST, "アカウントを選んでください。");
            };
            let code = state.oauth.issue_code(
                &request.client_id,
                &request.redirect_uri,
                account_id,
                request.scopes.clone(),
                &request.challenge,
                now_ms(),
            );
            drop(state);
            redirect(&[("code", &code)])
        }
        _ => error_page(StatusCode::BAD_REQUEST, "許可か拒否を選んでください。"),
    }
}

// ---- the token endpoint ----

fn token_error(status: StatusCode, error: &str, description: &str) -> Response {
    let mut response = (
        status,
        axum::Json(json!({ "error": error, "error_description": description })),
    )
        .into_response();
    no_store(response.headers_mut());
    response
}

fn no_store(headers: &mut HeaderMap) {
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
}

/// The client id and secret of `Authorization: Basic …`: as sent, and form-decoded
/// (RFC 6749 §2.3.1 has a client form-encode both before base64; many clients do not,
/// so either is accepted).
fn basic_credentials(headers: &HeaderMap) -> Vec<(String, String)> {
    let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return Vec::new();
    };
    let Some((scheme, encoded)) = value.split_once(' ') else {
        return Vec::new();
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Vec::new();
    }
    let Some(decoded) = BASE64
        .decode(encoded.trim())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
    else {
        return Vec::new();
    };
    let Some((id, secret)) = decoded.split_once(':') else {
        return Vec::new();
    };
    let form_decoded = |text: &str| -> String {
        form_urlencoded::parse(format!("x={text}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    let mut candidates = vec![(id.to_owned(), secret.to_owned())];
    let unescaped = (form_decoded(id), form_decoded(secret));
    if unescaped != candidates[0] {
        candidates.push(unescaped);
    }
    candidates
}

async fn token(AxumState(shared): AxumState<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let candidates = basic_credentials(&headers);
    let params = form(&headers, &body);
    let grant_type = params
        .as_ref()
        .and_then(|p| p.get("grant_type").cloned())
        .unwrap_or_default();
    let mut state = lock(&shared);
    let authenticated = candidates
        .iter()
        .find(|(id, secret)| state.oauth.authenticate_client(id, secret))
        .map(|(id, _)| id.clone());
    let client_named = authenticated
        .clone()
        .or_else(|| candidates.first().map(|(id, _)| id.clone()));
    let Some(client_id) = authenticated else {
        state
            .oauth
            .record(&grant_type, client_named.as_deref(), Err("invalid_client"));
        drop(state);
        let mut response = token_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "Client authentication failed.",
        );
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(r#"Basic realm="chatwork""#),
        );
        return response;
    };
    let Some(params) = params else {
        state
            .oauth
            .record(&grant_type, Some(&client_id), Err("invalid_request"));
        return token_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "The body must be application/x-www-form-urlencoded, each parameter once.",
        );
    };
    let get = |name: &str| params.get(name).map(String::as_str);
    let now = now_ms();
    let outcome: Result<_, Refusal> = match grant_type.as_str() {
        "authorization_code" => match get("code") {
            Some(code) => state.oauth.exchange_code(
                &client_id,
                code,
                get("redirect_uri"),
                get("code_verifier"),
                now,
            ),
            None => Err(Refusal {
                error: "invalid_request",
                description: "The code is missing.",
            }),
        },
        "refresh_token" => match get("refresh_token") {
            Some(refresh) => state.oauth.refresh(&client_id, refresh, now),
            None => Err(Refusal {
                error: "invalid_request",
                description: "The refresh_token is missing.",
            }),
        },
        "" => Err(Refusal {
            error: "invalid_request",
            description: "The grant_type is missing.",
        }),
        _ => Err(Refusal {
            error: "unsupported_grant_type",
            description: "Only authorization_code and refresh_token are supported.",
        }),
    };
    match outcome {
        Ok(issued) => {
            state
                .oauth
                .record(&grant_type, Some(&client_id), Ok(issued.account_id));
            drop(state);
            let mut response = axum::Json(json!({
                "access_token": issued.access_token,
                "token_type": "Bearer",
                "expires_in": issued.expires_in,
                "refresh_token": issued.refresh_token,
                "scope": issued.scope,
            }))
            .into_response();
            no_store(response.headers_mut());
            response
        }
        Err(refusal) => {
            state
                .oauth
                .record(&grant_type, Some(&client_id), Err(refusal.error));
            drop(state);
            token_error(StatusCode::BAD_REQUEST, refusal.error, refusal.description)
        }
    }
}
