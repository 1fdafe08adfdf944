//! Who is calling: the [`Caller`] extractor, and the [`Admin`] and [`Writer`] extractors
//! that also check the role.
//!
//! The identity comes from exactly one source, fixed when the process builds its
//! [`AuthConfig`] and never chosen by a request:
//!
//! - [`IdentitySource::ApiGateway`] (the Lambda function): the claims that API Gateway's
//!   JWT authorizer verified, from `requestContext.authorizer.jwt.claims`. Headers are
//!   not looked at; a request without claims is 401.
//! - [`IdentitySource::LocalJwt`] (the local runner and tests): `Authorization: Bearer
//!   <token>`, an HS256 JWT verified against `LOCAL_JWT_SECRET`, with `sub`, the role claim
//!   and `exp`; `exp` and, when present, `nbf` are checked with [`CLOCK_LEEWAY_SECS`] of
//!   leeway (the library's default is 60 s, a minute of life after expiry).
//!
//! The user id is `sub`. The role is the highest of `admin`, `writer` and `reader` found
//! in the role claim (`JWT_ROLE_CLAIM`, default `role`) and in `cognito:groups`. A claim
//! may hold one role, a JSON array of roles, or roles separated by spaces or commas (API
//! Gateway hands an array claim over as a string such as `[admin writer]`); values that
//! are not roles are ignored. An identity without any role is 403 `no_role`: the token
//! is genuine, so 401 would send the client to sign in again for nothing, and treating it
//! as a reader would hand data to tokens that were issued for something else.

use std::fmt;
use std::time::Duration;

use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use lambda_http::request::RequestContext;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::oauth::OAuthSettings;
use super::{ApiError, AppState, ErrorCode};
use crate::config::{ConfigError, Env};

/// A caller's role, in increasing order of power.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Reader,
    Writer,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Reader => "reader",
            Self::Writer => "writer",
            Self::Admin => "admin",
        }
    }

    /// One role name, case-insensitively.
    pub fn parse(name: &str) -> Option<Role> {
        match name.trim().to_ascii_lowercase().as_str() {
            "reader" => Some(Self::Reader),
            "writer" => Some(Self::Writer),
            "admin" => Some(Self::Admin),
            _ => None,
        }
    }

    /// The highest role in a claim's value (see the module documentation for the forms).
    pub fn highest_in(claim: &Value) -> Option<Role> {
        match claim {
            Value::String(s) => Self::highest_in_text(s),
            Value::Array(items) => items
                .iter()
                .filter_map(|i| i.as_str().and_then(Self::highest_in_text))
                .max(),
            _ => None,
        }
    }

    fn highest_in_text(text: &str) -> Option<Role> {
        let text = text.trim();
        // A JSON array serialized into a string claim.
        if text.starts_with('[')
            && let Ok(Value::Array(items)) = serde_json::from_str::<Value>(text)
        {
            return Self::highest_in(&Value::Array(items));
        }
        text.trim_start_matches('[')
            .trim_end_matches(']')
            .split(|c: char| c == ',' || c.is_whitespace())
            .map(|part| part.trim_matches(|c| c == '"' || c == '\''))
            .filter_map(Role::parse)
            .max()
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::parse(s).ok_or_else(|| format!("{s:?} is not a role (admin, writer, reader)"))
    }
}

/// Where identities come from; see the module documentation.
#[derive(Clone)]
pub enum IdentitySource {
    ApiGateway,
    LocalJwt(LocalJwtKeys),
}

impl fmt::Debug for IdentitySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ApiGateway => f.write_str("ApiGateway"),
            Self::LocalJwt(_) => f.write_str("LocalJwt([redacted])"),
        }
    }
}

/// The HS256 keys of the local runner's tokens.
#[derive(Clone)]
pub struct LocalJwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl LocalJwtKeys {
    /// Shortest `LOCAL_JWT_SECRET` accepted.
    pub const MIN_SECRET_BYTES: usize = 16;

    pub fn new(secret: &SecretString) -> Result<Self, ConfigError> {
        let bytes = secret.expose_secret().as_bytes();
        if bytes.len() < Self::MIN_SECRET_BYTES {
            return Err(ConfigError::Invalid {
                name: AuthConfig::SECRET_VAR,
                reason: format!(
                    "use at least {} characters for an HS256 key",
                    Self::MIN_SECRET_BYTES
                ),
            });
        }
        Ok(Self {
            encoding: EncodingKey::from_secret(bytes),
            decoding: DecodingKey::from_secret(bytes),
        })
    }
}

/// How the API knows who calls it.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    pub source: IdentitySource,
    /// `JWT_ROLE_CLAIM`, default `role`.
    pub role_claim: String,
    /// How the console signs in with the identity provider (`OAUTH_*`), when set.
    pub oauth: Option<OAuthSettings>,
}

/// Why a token could not be minted.
#[derive(Debug, thiserror::Error)]
pub enum MintError {
    #[error("tokens are minted only with a local JWT secret (LOCAL_JWT_SECRET)")]
    NotLocal,
    #[error("the subject must not be empty")]
    EmptySubject,
    #[error("could not sign the token: {0}")]
    Sign(#[from] jsonwebtoken::errors::Error),
}

impl AuthConfig {
    pub const ROLE_CLAIM_VAR: &'static str = "JWT_ROLE_CLAIM";
    pub const SECRET_VAR: &'static str = "LOCAL_JWT_SECRET";
    pub const DEFAULT_ROLE_CLAIM: &'static str = "role";
    /// Cognito's group claim, always read besides the role claim.
    pub const COGNITO_GROUPS: &'static str = "cognito:groups";

    /// The Lambda function's: claims from API Gateway's JWT authorizer.
    pub fn api_gateway(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            source: IdentitySource::ApiGateway,
            role_claim: role_claim(env)?,
            oauth: OAuthSettings::from_env(env)?,
        })
    }

    /// The local runner's: HS256 bearer tokens signed with `secret`.
    pub fn local_jwt(env: &Env, secret: &SecretString) -> Result<Self, ConfigError> {
        Ok(Self {
            source: IdentitySource::LocalJwt(LocalJwtKeys::new(secret)?),
            role_claim: role_claim(env)?,
            oauth: OAuthSettings::from_env(env)?,
        })
    }

    /// A token for `sub` with `role` that expires after `ttl`, as the local runner's
    /// `token` command prints it. Only for [`IdentitySource::LocalJwt`].
    pub fn mint_local_token(
        &self,
        sub: &str,
        role: Role,
        ttl: Duration,
    ) -> Result<String, MintError> {
        if !matches!(self.source, IdentitySource::LocalJwt(_)) {
            return Err(MintError::NotLocal);
        }
        if sub.trim().is_empty() {
            return Err(MintError::EmptySubject);
        }
        let mut claims = Map::new();
        claims.insert("sub".into(), Value::from(sub));
        claims.insert(self.role_claim.clone(), Value::from(role.as_str()));
        self.mint_local_claims(&claims, ttl)
    }

    /// A token carrying exactly `claims` (an `exp` is added when they have none), for
    /// tests and tools that need unusual claims. Only for [`IdentitySource::LocalJwt`].
    pub fn mint_local_claims(
        &self,
        claims: &Map<String, Value>,
        ttl: Duration,
    ) -> Result<String, MintError> {
        let IdentitySource::LocalJwt(keys) = &self.source else {
            return Err(MintError::NotLocal);
        };
        let mut claims = claims.clone();
        claims
            .entry("exp")
            .or_insert_with(|| Value::from(chrono::Utc::now().timestamp() + ttl.as_secs() as i64));
        Ok(jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &keys.encoding,
        )?)
    }

    /// The caller of a request, from this configuration's one source.
    fn caller(&self, parts: &Parts) -> Result<Caller, ApiError> {
        let claims = match &self.source {
            IdentitySource::ApiGateway => gateway_claims(parts)?,
            IdentitySource::LocalJwt(keys) => bearer_claims(parts, keys)?,
        };
        self.caller_from_claims(&claims)
    }

    fn caller_from_claims(&self, claims: &Map<String, Value>) -> Result<Caller, ApiError> {
        let user_id = claims
            .get("sub")
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                unauthenticated(ErrorCode::InvalidToken, "The token names no subject (sub).")
            })?;
        let role = [self.role_claim.as_str(), Self::COGNITO_GROUPS]
            .iter()
            .filter_map(|name| claims.get(*name))
            .filter_map(Role::highest_in)
            .max()
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::FORBIDDEN,
                    ErrorCode::NoRole,
                    "Your token carries no cwsync role (admin, writer or reader).",
                )
            })?;
        Ok(Caller {
            user_id: user_id.to_owned(),
            role,
        })
    }
}

fn role_claim(env: &Env) -> Result<String, ConfigError> {
    match env.get(AuthConfig::ROLE_CLAIM_VAR) {
        None => Ok(AuthConfig::DEFAULT_ROLE_CLAIM.to_owned()),
        Some(name) if name.len() <= 100 && !name.contains(char::is_whitespace) => {
            Ok(name.to_owned())
        }
        Some(_) => Err(ConfigError::Invalid {
            name: AuthConfig::ROLE_CLAIM_VAR,
            reason: "expected a claim name without spaces".into(),
        }),
    }
}

fn unauthenticated(code: ErrorCode, message: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, code, message)
}

/// The claims API Gateway's JWT authorizer put on the request (through lambda_http).
fn gateway_claims(parts: &Parts) -> Result<Map<String, Value>, ApiError> {
    let claims = parts
        .extensions
        .get::<RequestContext>()
        .and_then(RequestContext::authorizer)
        .and_then(|a| a.jwt.as_ref())
        .map(|jwt| &jwt.claims)
        .filter(|claims| !claims.is_empty())
        .ok_or_else(|| {
            unauthenticated(
                ErrorCode::Unauthenticated,
                "This route needs a signed-in caller; the request carries no verified claims.",
            )
        })?;
    Ok(claims
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect())
}

/// How far the clocks of the token's issuer and ours may disagree, in seconds.
pub const CLOCK_LEEWAY_SECS: u64 = 5;

/// The claims of a verified `Authorization: Bearer` token.
fn bearer_claims(parts: &Parts, keys: &LocalJwtKeys) -> Result<Map<String, Value>, ApiError> {
    let header = parts
        .headers
        .get(axum::http::header::AUTHORIZATION)
        .ok_or_else(|| {
            unauthenticated(
                ErrorCode::Unauthenticated,
                "This route needs `Authorization: Bearer <token>`.",
            )
        })?;
    let token = header
        .to_str()
        .ok()
        .and_then(|v| {
            let (scheme, token) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        })
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            unauthenticated(
                ErrorCode::InvalidToken,
                "The Authorization header must be `Bearer <token>`.",
            )
        })?;
    let mut validation = Validation::new(Algorithm::HS256);
    validation.set_required_spec_claims(&["exp", "sub"]);
    validation.leeway = CLOCK_LEEWAY_SECS;
    validation.validate_nbf = true;
    jsonwebtoken::decode::<Map<String, Value>>(token, &keys.decoding, &validation)
        .map(|data| data.claims)
        .map_err(|e| {
            use jsonwebtoken::errors::ErrorKind;
            let message = match e.kind() {
                ErrorKind::ExpiredSignature => "The token has expired.",
                ErrorKind::ImmatureSignature => "The token is not valid yet (its nbf).",
                _ => "The token is not valid.",
            };
            unauthenticated(ErrorCode::InvalidToken, message)
        })
}

/// Whoever sent the request: a user id (the JWT `sub`) and a role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub user_id: String,
    pub role: Role,
}

impl Caller {
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    /// Whether this caller may see a job that `owner` started.
    pub fn may_see_job_of(&self, owner: Option<&str>) -> bool {
        self.is_admin() || owner == Some(self.user_id.as_str())
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        state.auth.caller(parts)
    }
}

/// A caller with the `admin` role; any other is 403.
#[derive(Debug, Clone)]
pub struct Admin(pub Caller);

/// A caller with the `writer` or `admin` role; any other is 403.
#[derive(Debug, Clone)]
pub struct Writer(pub Caller);

fn at_least(caller: Caller, role: Role) -> Result<Caller, ApiError> {
    if caller.role >= role {
        Ok(caller)
    } else {
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            ErrorCode::Forbidden,
            format!(
                "This route needs the {role} role{}; you are a {}.",
                if role == Role::Admin {
                    ""
                } else {
                    " or higher"
                },
                caller.role
            ),
        ))
    }
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        at_least(state.auth.caller(parts)?, Role::Admin).map(Self)
    }
}

impl FromRequestParts<AppState> for Writer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        at_least(state.auth.caller(parts)?, Role::Writer).map(Self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_highest_role_of_a_claim_wins() {
        let cases = [
            (json!("admin"), Some(Role::Admin)),
            (json!("Writer"), Some(Role::Writer)),
            (json!(["reader", "admin"]), Some(Role::Admin)),
            (json!("[reader writer]"), Some(Role::Writer)),
            (json!("reader, admin"), Some(Role::Admin)),
            (json!("[\"reader\",\"writer\"]"), Some(Role::Writer)),
            (json!(["staff", "writer"]), Some(Role::Writer)),
            (json!("superuser"), None),
            (json!(""), None),
            (json!(3), None),
            (json!({"role": "admin"}), None),
            (json!("administrator"), None),
        ];
        for (claim, expected) in cases {
            assert_eq!(Role::highest_in(&claim), expected, "{claim}");
        }
    }

    fn config(role_claim: &str) -> AuthConfig {
        let env = Env::from_pairs([(AuthConfig::ROLE_CLAIM_VAR, role_claim)]);
        AuthConfig::local_jwt(&env, &SecretString::from("0123456789abcdef0123")).unwrap()
    }

    fn claims(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn callers_come_from_sub_and_the_role_claims() {
        let auth = config("role");
        let caller = auth
            .caller_from_claims(&claims(json!({"sub": "u1", "role": "writer"})))
            .unwrap();
        assert_eq!(caller.user_id, "u1");
        assert_eq!(caller.role, Role::Writer);
        let caller = auth
            .caller_from_claims(&claims(
                json!({"sub": "u1", "role": "reader", "cognito:groups": ["admin"]}),
            ))
            .unwrap();
        assert_eq!(caller.role, Role::Admin);
        let e = auth
            .caller_from_claims(&claims(json!({"sub": "u1", "role": "root"})))
            .unwrap_err();
        assert_eq!((e.status.as_u16(), e.code), (403, ErrorCode::NoRole));
        let e = auth
            .caller_from_claims(&claims(json!({"role": "admin"})))
            .unwrap_err();
        assert_eq!((e.status.as_u16(), e.code), (401, ErrorCode::InvalidToken));
        // Another claim name: `role` means nothing any more.
        let auth = config("custom:role");
        let e = auth
            .caller_from_claims(&claims(json!({"sub": "u1", "role": "admin"})))
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::NoRole);
        let caller = auth
            .caller_from_claims(&claims(json!({"sub": "u1", "custom:role": "admin"})))
            .unwrap();
        assert_eq!(caller.role, Role::Admin);
    }

    #[test]
    fn minted_tokens_verify_and_carry_the_claims() {
        let auth = config("role");
        let IdentitySource::LocalJwt(keys) = &auth.source else {
            unreachable!()
        };
        let token = auth
            .mint_local_token("alice", Role::Admin, Duration::from_secs(60))
            .unwrap();
        let parts = parts_with(&format!("Bearer {token}"));
        let claims = bearer_claims(&parts, keys).unwrap();
        assert_eq!(claims["sub"], "alice");
        assert_eq!(claims["role"], "admin");
        assert!(
            auth.mint_local_token(" ", Role::Admin, Duration::from_secs(60))
                .is_err()
        );
        let other = config("role");
        // Same secret: a token of one verifies with the other.
        let IdentitySource::LocalJwt(other_keys) = &other.source else {
            unreachable!()
        };
        assert!(bearer_claims(&parts, other_keys).is_ok());
    }

    #[test]
    fn bad_tokens_are_401() {
        let auth = config("role");
        let IdentitySource::LocalJwt(keys) = &auth.source else {
            unreachable!()
        };
        let stranger = AuthConfig::local_jwt(
            &Env::default(),
            &SecretString::from("another secret of enough length"),
        )
        .unwrap();
        let forged = stranger
            .mint_local_token("mallory", Role::Admin, Duration::from_secs(60))
            .unwrap();
        let expired = {
            let mut claims = Map::new();
            claims.insert("sub".into(), "alice".into());
            claims.insert("role".into(), "admin".into());
            claims.insert("exp".into(), (chrono::Utc::now().timestamp() - 3600).into());
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &keys.encoding).unwrap()
        };
        let token_with = |times: &[(&str, i64)]| {
            let mut claims = Map::new();
            claims.insert("sub".into(), "alice".into());
            claims.insert("role".into(), "admin".into());
            let now = chrono::Utc::now().timestamp();
            claims.insert("exp".into(), (now + 3600).into());
            for (claim, offset) in times {
                claims.insert((*claim).into(), (now + offset).into());
            }
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &keys.encoding).unwrap()
        };
        // 10 s past `exp` (the library's default leeway would accept it: 60 s), and an
        // `nbf` a minute ahead (the library ignores `nbf` by default).
        let just_expired = token_with(&[("exp", -10)]);
        let not_yet = token_with(&[("nbf", 60)]);
        for good in [token_with(&[]), token_with(&[("nbf", -10)])] {
            assert!(bearer_claims(&parts_with(&format!("Bearer {good}")), keys).is_ok());
        }
        let unsigned = {
            use base64::Engine;
            let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
            format!(
                "{}.{}.",
                b64.encode(r#"{"alg":"none","typ":"JWT"}"#),
                b64.encode(r#"{"sub":"mallory","role":"admin","exp":9999999999}"#)
            )
        };
        for header in [
            format!("Bearer {forged}"),
            format!("Bearer {expired}"),
            format!("Bearer {just_expired}"),
            format!("Bearer {not_yet}"),
            format!("Bearer {unsigned}"),
            "Bearer".to_owned(),
            "Basic YWRtaW46YWRtaW4=".to_owned(),
            "Bearer not.a.token".to_owned(),
        ] {
            let e = bearer_claims(&parts_with(&header), keys).unwrap_err();
            assert_eq!(e.status.as_u16(), 401, "{header}");
        }
    }

    #[test]
    fn short_secrets_are_refused_and_debug_hides_keys() {
        let e = AuthConfig::local_jwt(&Env::default(), &SecretString::from("short")).unwrap_err();
        assert!(e.to_string().starts_with("LOCAL_JWT_SECRET is malformed"));
        let auth = config("role");
        assert!(format!("{auth:?}").contains("redacted"));
    }

    fn parts_with(authorization: &str) -> Parts {
        let (parts, ()) = axum::http::Request::builder()
            .header("authorization", authorization)
            .body(())
            .unwrap()
            .into_parts();
        parts
    }
}
