//! How the console signs in with an identity provider (`OAUTH_*`). Its own module because
//! two others read it: `auth` keeps it in the [`AuthConfig`](super::AuthConfig) every
//! request sees, and `console` hands it to the page and builds its Content-Security-Policy
//! from it.

use serde::Serialize;
use utoipa::ToSchema;

use crate::config::{ConfigError, Env};

/// How the console signs in against an OpenID Connect provider (authorization code with
/// PKCE): the issuer whose tokens API Gateway's JWT authorizer accepts, the app client's
/// id and the scopes to ask for. The endpoints are read from the issuer's discovery
/// document unless given (Cognito's hosted UI lives on another domain than its issuer).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OAuthSettings {
    pub issuer: String,
    pub client_id: String,
    /// Space-separated.
    pub scopes: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authorization_endpoint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_endpoint: Option<String>,
}

impl OAuthSettings {
    pub const ISSUER_VAR: &'static str = "OAUTH_ISSUER";
    pub const CLIENT_ID_VAR: &'static str = "OAUTH_CLIENT_ID";
    pub const SCOPES_VAR: &'static str = "OAUTH_SCOPES";
    pub const AUTHORIZATION_ENDPOINT_VAR: &'static str = "OAUTH_AUTHORIZATION_ENDPOINT";
    pub const TOKEN_ENDPOINT_VAR: &'static str = "OAUTH_TOKEN_ENDPOINT";

    /// The settings when `OAUTH_ISSUER` and `OAUTH_CLIENT_ID` are set; `None` when neither
    /// is (the console then only takes pasted tokens).
    pub fn from_env(env: &Env) -> Result<Option<Self>, ConfigError> {
        let issuer = env.get(Self::ISSUER_VAR);
        let client_id = env.get(Self::CLIENT_ID_VAR);
        let (issuer, client_id) = match (issuer, client_id) {
            (None, None) => return Ok(None),
            (Some(issuer), Some(client_id)) => (issuer, client_id),
            (None, Some(_)) => {
                return Err(ConfigError::Missing {
                    name: Self::ISSUER_VAR,
                    hint: "the console's sign-in needs the issuer with the client id",
                });
            }
            (Some(_), None) => {
                return Err(ConfigError::Missing {
                    name: Self::CLIENT_ID_VAR,
                    hint: "the console's sign-in needs the client id with the issuer",
                });
            }
        };
        let url = |name: &'static str, value: &str| -> Result<String, ConfigError> {
            match url::Url::parse(value) {
                Ok(url) if matches!(url.scheme(), "https" | "http") => {
                    Ok(value.trim_end_matches('/').to_owned())
                }
                _ => Err(ConfigError::Invalid {
                    name,
                    reason: format!("expected an http(s) URL, got {value:?}"),
                }),
            }
        };
        let optional = |name: &'static str| env.get(name).map(|v| url(name, v)).transpose();
        Ok(Some(Self {
            issuer: url(Self::ISSUER_VAR, issuer)?,
            client_id: client_id.to_owned(),
            scopes: env.get(Self::SCOPES_VAR).unwrap_or("openid").to_owned(),
            authorization_endpoint: optional(Self::AUTHORIZATION_ENDPOINT_VAR)?,
            token_endpoint: optional(Self::TOKEN_ENDPOINT_VAR)?,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_an_oauth_setting_is_an_error() {
        let env = Env::from_pairs([(OAuthSettings::CLIENT_ID_VAR, "client-1")]);
        assert!(OAuthSettings::from_env(&env).is_err());
        let env = Env::from_pairs([
            (OAuthSettings::ISSUER_VAR, "not a url"),
            (OAuthSettings::CLIENT_ID_VAR, "client-1"),
        ]);
        assert!(OAuthSettings::from_env(&env).is_err());
        assert_eq!(OAuthSettings::from_env(&Env::default()).unwrap(), None);
    }
}
