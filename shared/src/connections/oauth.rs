//! Chatwork's OAuth 2.0 (authorization code with PKCE S256, a confidential client):
//! the settings (`CHATWORK_OAUTH_*`), the consent page's URL, and the token endpoint
//! (a code exchanged, a refresh token spent for new tokens). Nothing here logs a token,
//! and no error carries one.

use std::time::Duration;

use aws_lc_rs::digest::{SHA256, digest};
use base64::Engine as _;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use url::Url;

use crate::config::{ConfigError, Env, parse_http_url};

/// The OAuth client cwsync is registered as with Chatwork.
#[derive(Clone)]
pub struct ChatworkOAuthConfig {
    /// `CHATWORK_OAUTH_CLIENT_ID`.
    pub client_id: String,
    /// `CHATWORK_OAUTH_CLIENT_SECRET` (in AWS a Secrets Manager secret,
    /// `CHATWORK_OAUTH_CLIENT_SECRET_ARN`).
    pub client_secret: SecretString,
    /// `CHATWORK_OAUTH_REDIRECT_URI`: the callback route as registered with Chatwork,
    /// `https://<api>/api/chatwork/connections/oauth/callback`.
    pub redirect_uri: Url,
    /// `CHATWORK_OAUTH_AUTHORIZE_URL`, default Chatwork's consent page.
    pub authorize_url: Url,
    /// `CHATWORK_OAUTH_TOKEN_URL`, default Chatwork's token endpoint.
    pub token_url: Url,
    /// `CHATWORK_OAUTH_SCOPES`, space-separated.
    pub scopes: String,
}

impl std::fmt::Debug for ChatworkOAuthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatworkOAuthConfig")
            .field("client_id", &self.client_id)
            .field("redirect_uri", &self.redirect_uri.as_str())
            .field("authorize_url", &self.authorize_url.as_str())
            .field("token_url", &self.token_url.as_str())
            .field("scopes", &self.scopes)
            .finish_non_exhaustive()
    }
}

impl ChatworkOAuthConfig {
    pub const CLIENT_ID_VAR: &'static str = "CHATWORK_OAUTH_CLIENT_ID";
    pub const CLIENT_SECRET_VAR: &'static str = "CHATWORK_OAUTH_CLIENT_SECRET";
    pub const REDIRECT_URI_VAR: &'static str = "CHATWORK_OAUTH_REDIRECT_URI";
    pub const AUTHORIZE_URL_VAR: &'static str = "CHATWORK_OAUTH_AUTHORIZE_URL";
    pub const TOKEN_URL_VAR: &'static str = "CHATWORK_OAUTH_TOKEN_URL";
    pub const SCOPES_VAR: &'static str = "CHATWORK_OAUTH_SCOPES";
    pub const DEFAULT_AUTHORIZE_URL: &'static str =
        "https://www.chatwork.com/packages/oauth2/login.php";
    pub const DEFAULT_TOKEN_URL: &'static str = "https://oauth.chatwork.com/token";
    /// What cwsync reads: the room list, messages, the account itself, and a refresh
    /// token that lives until revoked.
    pub const DEFAULT_SCOPES: &'static str =
        "rooms.all:read rooms.messages:read users.profile.me:read offline_access";

    /// `None` when `CHATWORK_OAUTH_CLIENT_ID` is unset (connections then take API tokens
    /// only). `client_secret` comes from the caller when it is kept elsewhere (Secrets
    /// Manager).
    pub fn from_env(
        env: &Env,
        client_secret: Option<SecretString>,
    ) -> Result<Option<Self>, ConfigError> {
        let Some(client_id) = env.get(Self::CLIENT_ID_VAR) else {
            return Ok(None);
        };
        let client_secret = client_secret
            .or_else(|| {
                env.get(Self::CLIENT_SECRET_VAR)
                    .map(|s| SecretString::from(s.to_owned()))
            })
            .ok_or(ConfigError::Missing {
                name: Self::CLIENT_SECRET_VAR,
                hint: "the OAuth client's secret, with CHATWORK_OAUTH_CLIENT_ID",
            })?;
        let redirect_uri = env
            .get(Self::REDIRECT_URI_VAR)
            .ok_or(ConfigError::Missing {
                name: Self::REDIRECT_URI_VAR,
                hint: "the callback URL registered with Chatwork, with CHATWORK_OAUTH_CLIENT_ID",
            })
            .and_then(|raw| parse_http_url(Self::REDIRECT_URI_VAR, raw))?;
        let url = |name: &'static str, default: &str| match env.get(name) {
            Some(raw) => parse_http_url(name, raw),
            None => Ok(Url::parse(default).expect("constant URL")),
        };
        Ok(Some(Self {
            client_id: client_id.to_owned(),
            client_secret,
            redirect_uri,
            authorize_url: url(Self::AUTHORIZE_URL_VAR, Self::DEFAULT_AUTHORIZE_URL)?,
            token_url: url(Self::TOKEN_URL_VAR, Self::DEFAULT_TOKEN_URL)?,
            scopes: env
                .get(Self::SCOPES_VAR)
                .unwrap_or(Self::DEFAULT_SCOPES)
                .to_owned(),
        }))
    }

    /// The consent page's URL for one round trip.
    pub fn authorization_url(&self, state: &str, challenge: &str) -> Url {
        let mut url = self.authorize_url.clone();
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.client_id)
            .append_pair("redirect_uri", self.redirect_uri.as_str())
            .append_pair("scope", &self.scopes)
            .append_pair("state", state)
            .append_pair("code_challenge", challenge)
            .append_pair("code_challenge_method", "S256");
        url
    }
}

/// 32 random bytes, base64url without padding (43 characters): a `state` or a PKCE
/// verifier.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    aws_lc_rs::rand::fill(&mut bytes).expect("the system's random source");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The S256 challenge of a PKCE verifier.
pub fn challenge_of(verifier: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest(&SHA256, verifier.as_bytes()))
}

/// What the token endpoint gave.
pub struct Granted {
    pub access_token: SecretString,
    pub refresh_token: Option<SecretString>,
    pub expires_in: Duration,
    pub scope: String,
}

/// Why the token endpoint gave nothing.
#[derive(Debug, thiserror::Error)]
pub enum GrantError {
    /// Chatwork refused the grant (`invalid_grant`: the code or refresh token is dead;
    /// `invalid_client`: our client's credentials): trying again cannot help.
    #[error("Chatwork's token endpoint refused: {error}{}", description.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    Refused {
        error: String,
        description: Option<String>,
    },
    /// No usable answer (network, timeout, 5xx, a body that is not a token): another
    /// try may succeed.
    #[error("Chatwork's token endpoint did not answer usably: {message}")]
    Unavailable { message: String },
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    #[serde(default)]
    refresh_token: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
    #[serde(default)]
    scope: Option<String>,
}

#[derive(Deserialize)]
struct ErrorAnswer {
    error: String,
    #[serde(default)]
    error_description: Option<String>,
}

/// The token endpoint's client.
#[derive(Clone, Debug)]
pub struct TokenEndpoint {
    http: reqwest::Client,
    config: std::sync::Arc<ChatworkOAuthConfig>,
}

/// Access tokens are believed to live at most this long, whatever an answer says.
const MAX_ACCESS_LIFETIME: Duration = Duration::from_secs(24 * 3600);
/// An answer of the token endpoint is read up to this size.
const MAX_TOKEN_ANSWER_BYTES: usize = 64 << 10;

impl TokenEndpoint {
    pub fn new(config: ChatworkOAuthConfig) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(crate::chatwork::tls_client_config()?)
            .user_agent(concat!("cwsync/", env!("CARGO_PKG_VERSION")))
            // The client secret travels in a header: never to where a redirect points.
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| e.without_url().to_string())?;
        Ok(Self {
            http,
            config: std::sync::Arc::new(config),
        })
    }

    pub fn config(&self) -> &ChatworkOAuthConfig {
        &self.config
    }

    /// Exchanges an authorization code (with its PKCE verifier).
    pub async fn exchange(&self, code: &str, verifier: &str) -> Result<Granted, GrantError> {
        self.post(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", self.config.redirect_uri.as_str()),
            ("code_verifier", verifier),
        ])
        .await
    }

    /// Spends a refresh token for new tokens (Chatwork may rotate the refresh token).
    pub async fn refresh(&self, refresh_token: &SecretString) -> Result<Granted, GrantError> {
        self.post(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token.expose_secret()),
        ])
        .await
    }

    async fn post(&self, form: &[(&str, &str)]) -> Result<Granted, GrantError> {
        let unavailable = |message: String| GrantError::Unavailable { message };
        let response = self
            .http
            .post(self.config.token_url.clone())
            .basic_auth(
                &self.config.client_id,
                Some(self.config.client_secret.expose_secret()),
            )
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(serde_urlencoded::to_string(form).map_err(|e| unavailable(e.to_string()))?)
            .send()
            .await
            .map_err(|e| unavailable(e.without_url().to_string()))?;
        let status = response.status().as_u16();
        let mut body = Vec::new();
        let mut response = response;
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| unavailable(e.without_url().to_string()))?
        {
            if body.len() + chunk.len() > MAX_TOKEN_ANSWER_BYTES {
                return Err(unavailable("the answer is too large".into()));
            }
            body.extend_from_slice(&chunk);
        }
        if (200..300).contains(&status) {
            let answer: TokenAnswer = serde_json::from_slice(&body)
                .map_err(|_| unavailable(format!("HTTP {status} without a token")))?;
            let expires_in =
                Duration::from_secs(answer.expires_in.unwrap_or(900)).min(MAX_ACCESS_LIFETIME);
            return Ok(Granted {
                access_token: SecretString::from(answer.access_token),
                refresh_token: answer.refresh_token.map(SecretString::from),
                expires_in,
                scope: answer.scope.unwrap_or_default(),
            });
        }
        if (400..500).contains(&status)
            && let Ok(answer) = serde_json::from_slice::<ErrorAnswer>(&body)
        {
            let clip = |s: String| s.chars().take(200).collect::<String>();
            return Err(GrantError::Refused {
                error: clip(answer.error),
                description: answer.error_description.map(clip),
            });
        }
        Err(unavailable(format!("HTTP {status}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_authorization_url_carries_pkce_and_state() {
        let env = Env::from_pairs([
            (ChatworkOAuthConfig::CLIENT_ID_VAR, "client-1"),
            (ChatworkOAuthConfig::CLIENT_SECRET_VAR, "s3cret"),
            (
                ChatworkOAuthConfig::REDIRECT_URI_VAR,
                "https://api.example.com/api/chatwork/connections/oauth/callback",
            ),
        ]);
        let config = ChatworkOAuthConfig::from_env(&env, None).unwrap().unwrap();
        assert!(!format!("{config:?}").contains("s3cret"));
        let verifier = random_token();
        assert_eq!(verifier.len(), 43);
        let url = config.authorization_url("st", &challenge_of(&verifier));
        let pairs: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
        assert_eq!(pairs["code_challenge_method"], "S256");
        assert_eq!(pairs["state"], "st");
        assert_eq!(pairs["client_id"], "client-1");
        assert!(
            url.as_str()
                .starts_with(ChatworkOAuthConfig::DEFAULT_AUTHORIZE_URL)
        );
        // RFC 7636's example.
        assert_eq!(
            challenge_of("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        let missing = Env::from_pairs([(ChatworkOAuthConfig::CLIENT_ID_VAR, "c")]);
        assert!(ChatworkOAuthConfig::from_env(&missing, None).is_err());
    }
}
