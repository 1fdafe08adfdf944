//! The local runner's own settings: where the API listens and the key of its tokens.

use std::net::SocketAddr;

use cwsync::api::AuthConfig;
use cwsync::config::{ConfigError, Env};
use secrecy::SecretString;

/// Settings of the local runner.
#[derive(Debug, Clone)]
pub struct LocalConfig {
    /// `LISTEN_ADDR`, default `127.0.0.1:3000`.
    pub listen_addr: SocketAddr,
    /// `LOCAL_JWT_SECRET`: the HS256 key of the local runner's tokens; the runner
    /// generates (and prints) one when unset.
    pub jwt_secret: Option<SecretString>,
}

impl LocalConfig {
    pub const DEFAULT_LISTEN_ADDR: &'static str = "127.0.0.1:3000";

    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let listen_addr = env
            .parse("LISTEN_ADDR", "a socket address such as 127.0.0.1:3000")?
            .unwrap_or_else(|| Self::DEFAULT_LISTEN_ADDR.parse().expect("constant address"));
        Ok(Self {
            listen_addr,
            jwt_secret: env
                .get(AuthConfig::SECRET_VAR)
                .map(|s| SecretString::from(s.to_owned())),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_addr_is_parsed() {
        let config = LocalConfig::from_env(&Env::default()).unwrap();
        assert_eq!(config.listen_addr.to_string(), "127.0.0.1:3000");
        let bad = Env::from_pairs([("LISTEN_ADDR", "localhost")]);
        assert!(LocalConfig::from_env(&bad).is_err());
    }
}
