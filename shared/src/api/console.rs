//! The admin console: a few static files (HTML, one JS module per concern, CSS) compiled
//! into the binary, so the Lambda package and the local runner carry them and nothing is
//! fetched from elsewhere at run time; plus the two small JSON routes the page needs
//! before and after signing in: `GET /api/console/config` (public: how to sign in) and
//! `GET /api/me` (who the token says the caller is, so the page shows only the buttons
//! the caller's role can use; the API stays the enforcer).
//!
//! The files are served outside `/api` at `/` and `/console/<file>`: they are pages,
//! not operations of the JSON API, so the OpenAPI document leaves them out and its test
//! checks that exactly [`ASSET_PATHS`] are the routes it does not document.
//!
//! Every file is answered with a strict Content-Security-Policy: scripts only from this
//! origin (no inline script, no `eval`), no framing, no plugins, connections only to this
//! origin and the identity provider's. The page writes all data with `textContent`.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;
use utoipa::ToSchema;

use super::auth::{Caller, Role};
use super::error::ErrorBody;
use super::oauth::OAuthSettings;
use super::{ApiError, AppState};

/// One file of the console: its path, media type and bytes.
struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static str,
}

macro_rules! asset {
    ($path:literal, $file:literal, $type:expr) => {
        Asset {
            path: $path,
            content_type: $type,
            body: include_str!(concat!("../../console/", $file)),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";

static ASSETS: &[Asset] = &[
    asset!("/", "index.html", "text/html; charset=utf-8"),
    // Where Chatwork sends the admin's browser back after its consent page: the console
    // completes the connection from there.
    asset!("/oauth/chatwork", "index.html", "text/html; charset=utf-8"),
    asset!("/console/style.css", "style.css", "text/css; charset=utf-8"),
    asset!("/console/app.js", "app.js", JS),
    asset!("/console/api.js", "api.js", JS),
    asset!("/console/auth.js", "auth.js", JS),
    asset!("/console/i18n.js", "i18n.js", JS),
    asset!("/console/dom.js", "dom.js", JS),
    asset!("/console/pages.js", "pages.js", JS),
    asset!("/console/charts.js", "charts.js", JS),
];

/// The paths the console's files are served at (what the OpenAPI test expects to find
/// undocumented).
pub const ASSET_PATHS: [&str; 10] = [
    "/",
    "/oauth/chatwork",
    "/console/style.css",
    "/console/app.js",
    "/console/api.js",
    "/console/auth.js",
    "/console/i18n.js",
    "/console/dom.js",
    "/console/pages.js",
    "/console/charts.js",
];

/// The routes of the console's files.
pub(crate) fn routes() -> Router<AppState> {
    ASSETS.iter().fold(Router::new(), |router, asset| {
        router.route(
            asset.path,
            get(move |State(state): State<AppState>| async move { serve(&state, asset) }),
        )
    })
}

fn serve(state: &AppState, asset: &'static Asset) -> Response {
    let csp = content_security_policy(state.auth.oauth.as_ref());
    let mut response = asset.body.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    // A new binary may carry new files under the same names: always ask again.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // The address may carry an OAuth code; no other site needs to see it.
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if let Ok(value) = HeaderValue::from_str(&csp) {
        headers.insert(header::CONTENT_SECURITY_POLICY, value);
    }
    response
}

/// The policy of every console file: nothing but this origin, and the identity
/// provider's origins for the token request.
pub fn content_security_policy(oauth: Option<&OAuthSettings>) -> String {
    let mut connect = vec!["'self'".to_owned()];
    if let Some(oauth) = oauth {
        for url in [Some(&oauth.issuer), oauth.token_endpoint.as_ref()]
            .into_iter()
            .flatten()
        {
            if let Some(origin) = origin_of(url)
                && !connect.contains(&origin)
            {
                connect.push(origin);
            }
        }
    }
    format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         connect-src {}; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        connect.join(" ")
    )
}

fn origin_of(raw: &str) -> Option<String> {
    let url = url::Url::parse(raw).ok()?;
    Some(url.origin().ascii_serialization()).filter(|o| o != "null")
}

/// What the console needs to know before anyone signs in.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConsoleConfig {
    /// How to sign in with the identity provider; null when the console only takes a
    /// pasted token (the local runner prints one).
    pub oauth: Option<OAuthSettings>,
}

/// How the console signs in (public: the page reads it before it has a token).
#[utoipa::path(
    get, path = "/api/console/config", operation_id = "consoleConfig", tag = "operations",
    security(()),
    responses((status = 200, description = "The console's sign-in settings", body = ConsoleConfig))
)]
pub(crate) async fn config(State(state): State<AppState>) -> Json<ConsoleConfig> {
    Json(ConsoleConfig {
        oauth: state.auth.oauth.clone(),
    })
}

/// Who the caller is.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Me {
    /// The JWT `sub`.
    pub user_id: String,
    pub role: Role,
}

/// The caller's identity and role, as the API sees them.
#[utoipa::path(
    get, path = "/api/me", operation_id = "me", tag = "operations",
    responses(
        (status = 200, description = "The caller", body = Me),
        (status = 401, description = "No identity", body = ErrorBody),
        (status = 403, description = "No role", body = ErrorBody),
    )
)]
pub(crate) async fn me(caller: Caller) -> Result<Json<Me>, ApiError> {
    Ok(Json(Me {
        user_id: caller.user_id,
        role: caller.role,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Env;

    #[test]
    fn every_asset_is_listed_and_has_content() {
        let paths: Vec<&str> = ASSETS.iter().map(|a| a.path).collect();
        assert_eq!(paths, ASSET_PATHS);
        for asset in ASSETS {
            assert!(!asset.body.trim().is_empty(), "{} is empty", asset.path);
        }
    }

    #[test]
    fn no_asset_uses_inner_html_or_inline_script() {
        for asset in ASSETS {
            for banned in [
                "innerHTML",
                "outerHTML",
                "insertAdjacentHTML",
                "eval(",
                "document.write",
            ] {
                assert!(!asset.body.contains(banned), "{} uses {banned}", asset.path);
            }
        }
        let index = ASSETS[0].body;
        assert!(
            !index.contains("<script>"),
            "index.html has an inline script"
        );
        let handler = regex_lite::Regex::new(r"\son[a-z]+\s*=").unwrap();
        assert!(!handler.is_match(index), "index.html has an inline handler");
        assert!(!index.contains("style="), "index.html has an inline style");
    }

    #[test]
    fn the_policy_names_the_providers_origins() {
        assert!(content_security_policy(None).contains("connect-src 'self';"));
        let env = Env::from_pairs([
            (OAuthSettings::ISSUER_VAR, "https://idp.example.com/pool/"),
            (OAuthSettings::CLIENT_ID_VAR, "client-1"),
            (
                OAuthSettings::TOKEN_ENDPOINT_VAR,
                "https://auth.example.com/oauth2/token",
            ),
        ]);
        let oauth = OAuthSettings::from_env(&env).unwrap().unwrap();
        assert_eq!(oauth.issuer, "https://idp.example.com/pool");
        assert_eq!(oauth.scopes, "openid");
        let csp = content_security_policy(Some(&oauth));
        assert!(
            csp.contains("connect-src 'self' https://idp.example.com https://auth.example.com;"),
            "{csp}"
        );
        assert!(csp.contains("script-src 'self';"));
    }
}
