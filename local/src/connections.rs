//! The local runner's Chatwork connections: the bootstrap connection (the real
//! Chatwork's `CHATWORK_API_TOKEN`, or the fake's demo account), stored connections
//! sealed under a key from `TOKEN_ENCRYPTION_KEY` or one this runner creates in its data
//! folder, and *Connect with Chatwork* (the `CHATWORK_OAUTH_*` settings, or the fake's
//! consent page with a client this runner registers there).

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use cwsync::chatwork::{ChatworkClient, ChatworkConfig, ClientSettings};
use cwsync::config::Env;
use cwsync::connections::{
    ChatworkOAuthConfig, CipherConfig, Connections, TokenCipher, TokenEndpoint,
};
use fake_chatwork::FakeChatwork;
use secrecy::SecretString;
use sqlx::PgPool;

/// What [`build`] set up, and how to say so.
pub struct Built {
    pub connections: Connections,
    key: KeySource,
    oauth: Option<String>,
    /// The fake's second account, not connected yet.
    colleague: Option<String>,
}

enum KeySource {
    Setting,
    File(PathBuf),
}

impl Built {
    /// The banner's lines about connections.
    pub fn describe(&self) -> String {
        let key = match &self.key {
            KeySource::Setting => "TOKEN_ENCRYPTION_KEY".to_owned(),
            KeySource::File(path) => format!(
                "{} (made by this runner; or set TOKEN_ENCRYPTION_KEY)",
                path.display()
            ),
        };
        let mut lines = format!("  connections: tokens sealed with the key in {key}\n");
        match &self.oauth {
            Some(what) => lines.push_str(&format!("  Connect with Chatwork: {what}\n")),
            None => lines.push_str("  Connect with Chatwork: off (set CHATWORK_OAUTH_CLIENT_ID, _SECRET and _REDIRECT_URI)\n"),
        }
        if let Some(name) = &self.colleague {
            lines.push_str(&format!(
                "  demo accounts: the fake's second account ({name}) shares one room and has rooms only she sees; connect her on the console's Connections page (Connect with Chatwork, choose her on the consent page)\n"
            ));
        }
        lines
    }
}

/// The data folder: `LOCAL_DATA_DIR`, else `cwsync/local` in the user's cache folder.
pub(crate) fn data_dir(env: &Env) -> PathBuf {
    if let Some(dir) = env.get("LOCAL_DATA_DIR") {
        return PathBuf::from(dir);
    }
    let cache = env
        .get("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| {
            env.get("HOME")
                .map(|home| PathBuf::from(home).join(".cache"))
        })
        .unwrap_or_else(std::env::temp_dir);
    cache.join("cwsync").join("local")
}

/// The key stored connections are sealed with.
fn cipher_config(env: &Env) -> anyhow::Result<(CipherConfig, KeySource)> {
    if let Some(config) = CipherConfig::from_env(env)? {
        return Ok((config, KeySource::Setting));
    }
    let dir = data_dir(env);
    let path = dir.join("token-encryption.key");
    let key = match std::fs::read_to_string(&path) {
        Ok(key) => key,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            let key = CipherConfig::generate_local_key();
            write_private(&path, &key)?;
            key
        }
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let env = env.with(CipherConfig::KEY_VAR, key.trim());
    let config = CipherConfig::from_env(&env)
        .with_context(|| format!("the key in {}", path.display()))?
        .expect("a key was just set");
    Ok((config, KeySource::File(path)))
}

/// Writes a file only its owner may read.
fn write_private(path: &std::path::Path, contents: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(contents.as_bytes())?;
    Ok(())
}

/// The connections of this run. With the fake, its demo account is the bootstrap
/// connection, and *Connect with Chatwork* goes through the fake's consent page.
pub async fn build(
    env: &Env,
    pool: &PgPool,
    chatwork: &ChatworkConfig,
    fake: Option<&FakeChatwork>,
    addr: SocketAddr,
) -> anyhow::Result<Built> {
    let (config, key) = cipher_config(env)?;
    let cipher = TokenCipher::new(&config, None)?;
    let (oauth, oauth_said) = match (fake, ChatworkOAuthConfig::from_env(env, None)?) {
        (_, Some(config)) => {
            let said = format!(
                "Chatwork's OAuth client {} (redirect {})",
                config.client_id, config.redirect_uri
            );
            (Some(config), Some(said))
        }
        (Some(fake), None) => {
            let redirect = format!("http://{addr}/oauth/chatwork");
            let config = crate::demo::register_oauth_client(fake, &redirect)?;
            (
                Some(config),
                Some(format!(
                    "the fake's consent page ({})",
                    fake.oauth_authorize_url()
                )),
            )
        }
        (None, None) => (None, None),
    };
    let endpoint = oauth
        .map(TokenEndpoint::new)
        .transpose()
        .map_err(|e| anyhow::anyhow!("the OAuth client: {e}"))?;
    let settings = ClientSettings::from_config(chatwork, SecretString::from(String::new()));
    let bootstrap = match &chatwork.token {
        Some(token) => Some(ChatworkClient::new(
            ClientSettings::from_config(chatwork, token.clone()),
            pool.clone(),
        )?),
        None => None,
    };
    let connections = Connections::new(pool.clone(), settings, bootstrap, Some(cipher), endpoint);
    let colleague = fake
        .and_then(|fake| {
            fake.accounts()
                .into_iter()
                .find(|a| a.account_id == fake_chatwork::DemoData::SECOND_ACCOUNT_ID)
        })
        .map(|a| a.name);
    Ok(Built {
        connections,
        key,
        oauth: oauth_said,
        colleague,
    })
}
