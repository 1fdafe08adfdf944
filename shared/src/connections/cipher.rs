//! Tokens at rest: AES-256-GCM with a fresh 96-bit nonce per value and the value's place
//! (connection id and field) as associated data, so a sealed token copied into another
//! row or field does not open (docs/architecture.md, "Connections").
//!
//! The key is a 256-bit data key:
//! - **in AWS**, one that KMS generates (`GenerateDataKey` under `TOKEN_KMS_KEY_ID`) once
//!   per process; each row stores the data key as KMS encrypted it (`wrapped_key`) and the
//!   KMS key's id, so any process can open it with one `Decrypt` (cached per wrapped key)
//!   and a rotated or replaced KMS key still opens old rows;
//! - **locally**, the key in `TOKEN_ENCRYPTION_KEY` (base64 of 32 bytes; the local runner
//!   creates one in its data folder), with `TOKEN_ENCRYPTION_PREVIOUS_KEYS` still opening
//!   what older keys sealed. Each row names its key by a fingerprint (`local:` and the
//!   first 16 hex digits of the key's SHA-256), never the key.
//!
//! Nothing here logs, and no error carries a token or a key.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::digest::{SHA256, digest};
use base64::Engine as _;
use secrecy::{ExposeSecret, SecretBox, SecretString};

use crate::config::{ConfigError, Env};

/// Why sealing or opening failed. Never carries a secret.
#[derive(Debug, thiserror::Error)]
pub enum CipherError {
    #[error("the sealed value does not open (wrong key, or moved to another place)")]
    Open,
    #[error("no key named {key_id} is configured")]
    UnknownKey { key_id: String },
    #[error("KMS refused: {message}")]
    Kms { message: String },
    #[error("could not seal: {message}")]
    Seal { message: String },
}

/// Where the key comes from (settings `TOKEN_*`).
#[derive(Clone)]
pub enum CipherConfig {
    /// `TOKEN_KMS_KEY_ID`: a KMS key (id, alias or ARN) that wraps per-process data keys.
    Kms { key_id: String },
    /// `TOKEN_ENCRYPTION_KEY` and `TOKEN_ENCRYPTION_PREVIOUS_KEYS`.
    Local {
        key: Arc<SecretBox<[u8; 32]>>,
        previous: Vec<Arc<SecretBox<[u8; 32]>>>,
    },
}

impl std::fmt::Debug for CipherConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Kms { key_id } => f.debug_struct("Kms").field("key_id", key_id).finish(),
            Self::Local { previous, .. } => f
                .debug_struct("Local")
                .field("previous_keys", &previous.len())
                .finish_non_exhaustive(),
        }
    }
}

impl CipherConfig {
    pub const KEY_VAR: &'static str = "TOKEN_ENCRYPTION_KEY";
    pub const PREVIOUS_VAR: &'static str = "TOKEN_ENCRYPTION_PREVIOUS_KEYS";
    pub const KMS_VAR: &'static str = "TOKEN_KMS_KEY_ID";

    /// `None` when neither `TOKEN_KMS_KEY_ID` nor `TOKEN_ENCRYPTION_KEY` is set (then no
    /// connection can store a token; the bootstrap connection still works).
    pub fn from_env(env: &Env) -> Result<Option<Self>, ConfigError> {
        if let Some(key_id) = env.get(Self::KMS_VAR) {
            return Ok(Some(Self::Kms {
                key_id: key_id.to_owned(),
            }));
        }
        let Some(raw) = env.get(Self::KEY_VAR) else {
            return Ok(None);
        };
        let key = parse_key(Self::KEY_VAR, raw)?;
        let previous = env
            .get(Self::PREVIOUS_VAR)
            .map(|list| {
                list.split(',')
                    .map(str::trim)
                    .filter(|k| !k.is_empty())
                    .map(|k| parse_key(Self::PREVIOUS_VAR, k))
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()?
            .unwrap_or_default();
        Ok(Some(Self::Local { key, previous }))
    }

    /// A fresh random local key, base64 (what the local runner writes to its data folder).
    pub fn generate_local_key() -> String {
        let mut key = [0u8; 32];
        aws_lc_rs::rand::fill(&mut key).expect("the system's random source");
        base64::engine::general_purpose::STANDARD.encode(key)
    }
}

fn parse_key(name: &'static str, raw: &str) -> Result<Arc<SecretBox<[u8; 32]>>, ConfigError> {
    let invalid = || ConfigError::Invalid {
        name,
        reason: "expected the base64 of 32 random bytes (a 256-bit key)".into(),
    };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(raw.trim())
        .map_err(|_| invalid())?;
    let key: [u8; 32] = bytes.try_into().map_err(|_| invalid())?;
    Ok(Arc::new(SecretBox::new(Box::new(key))))
}

/// One data key, ready to seal and open.
struct DataKey {
    key: LessSafeKey,
    /// What rows store as `key_id`.
    key_id: String,
    /// The data key as KMS encrypted it (KMS only).
    wrapped: Option<Vec<u8>>,
}

impl DataKey {
    fn new(bytes: &[u8], key_id: String, wrapped: Option<Vec<u8>>) -> Result<Self, CipherError> {
        let unbound = UnboundKey::new(&AES_256_GCM, bytes).map_err(|_| CipherError::Seal {
            message: "the data key is not 256 bits".into(),
        })?;
        Ok(Self {
            key: LessSafeKey::new(unbound),
            key_id,
            wrapped,
        })
    }

    fn local(key: &SecretBox<[u8; 32]>) -> Self {
        let secret = key.expose_secret();
        let fingerprint = digest(&SHA256, secret);
        let id = format!("local:{}", hex(&fingerprint.as_ref()[..8]));
        Self::new(secret, id, None).expect("a 32-byte key")
    }
}

/// The place a value is sealed for: its associated data.
pub fn place(owner: &uuid::Uuid, field: &str) -> String {
    format!("cwsync:{owner}:{field}")
}

/// A sealed value and the key that sealed it.
#[derive(Clone, PartialEq, Eq)]
pub struct Sealed {
    pub bytes: Vec<u8>,
    pub key_id: String,
    pub wrapped_key: Option<Vec<u8>>,
}

impl std::fmt::Debug for Sealed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealed")
            .field("key_id", &self.key_id)
            .field("bytes", &self.bytes.len())
            .finish_non_exhaustive()
    }
}

/// Seals and opens tokens. Cheap to clone; build one per process.
#[derive(Clone)]
pub struct TokenCipher {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for TokenCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.inner.source {
            Source::Local { current, .. } => f
                .debug_struct("TokenCipher")
                .field("key_id", &current.key_id)
                .finish(),
            Source::Kms { key_id, .. } => f
                .debug_struct("TokenCipher")
                .field("kms_key_id", key_id)
                .finish(),
        }
    }
}

struct Inner {
    source: Source,
}

enum Source {
    Local {
        current: Arc<DataKey>,
        all: HashMap<String, Arc<DataKey>>,
    },
    Kms {
        client: aws_sdk_kms::Client,
        key_id: String,
        /// This process's data key for sealing, made on first use.
        current: tokio::sync::OnceCell<Arc<DataKey>>,
        /// Data keys opened by `Decrypt`, by their wrapped bytes.
        opened: Mutex<HashMap<Vec<u8>, Arc<DataKey>>>,
    },
}

impl TokenCipher {
    /// A cipher under the local keys of `config`, or under KMS with `kms` (which the
    /// caller builds from the AWS configuration, so that tests can point it at a local
    /// KMS).
    pub fn new(
        config: &CipherConfig,
        kms: Option<aws_sdk_kms::Client>,
    ) -> Result<Self, CipherError> {
        let source = match config {
            CipherConfig::Local { key, previous } => {
                let current = Arc::new(DataKey::local(key));
                let mut all = HashMap::new();
                for old in previous {
                    let old = Arc::new(DataKey::local(old));
                    all.insert(old.key_id.clone(), old);
                }
                all.insert(current.key_id.clone(), current.clone());
                Source::Local { current, all }
            }
            CipherConfig::Kms { key_id } => Source::Kms {
                client: kms.ok_or_else(|| CipherError::Kms {
                    message: "no KMS client".into(),
                })?,
                key_id: key_id.clone(),
                current: tokio::sync::OnceCell::new(),
                opened: Mutex::new(HashMap::new()),
            },
        };
        Ok(Self {
            inner: Arc::new(Inner { source }),
        })
    }

    /// A cipher under one local key (tests and tools).
    pub fn local(key: [u8; 32]) -> Self {
        Self::new(
            &CipherConfig::Local {
                key: Arc::new(SecretBox::new(Box::new(key))),
                previous: Vec::new(),
            },
            None,
        )
        .expect("a local key")
    }

    /// Seals `values` (each with its place), all under the same data key, as one row's
    /// fields must be.
    pub async fn seal_all(
        &self,
        values: &[(&str, &[u8])],
    ) -> Result<(Vec<Vec<u8>>, String, Option<Vec<u8>>), CipherError> {
        let key = self.sealing_key().await?;
        let mut sealed = Vec::with_capacity(values.len());
        for (place, plain) in values {
            sealed.push(seal_with(&key, place, plain)?);
        }
        Ok((sealed, key.key_id.clone(), key.wrapped.clone()))
    }

    /// Seals one value for `place`.
    pub async fn seal(&self, place: &str, plain: &[u8]) -> Result<Sealed, CipherError> {
        let (mut bytes, key_id, wrapped_key) = self.seal_all(&[(place, plain)]).await?;
        Ok(Sealed {
            bytes: bytes.pop().expect("one value"),
            key_id,
            wrapped_key,
        })
    }

    /// Opens a value sealed for `place` by the key `key_id` (`wrapped`: its KMS-wrapped
    /// data key).
    pub async fn open(
        &self,
        place: &str,
        bytes: &[u8],
        key_id: &str,
        wrapped: Option<&[u8]>,
    ) -> Result<SecretString, CipherError> {
        let key = self.opening_key(key_id, wrapped).await?;
        if bytes.len() < NONCE_LEN {
            return Err(CipherError::Open);
        }
        let (nonce, sealed) = bytes.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| CipherError::Open)?;
        let mut buffer = sealed.to_vec();
        let plain = key
            .key
            .open_in_place(nonce, Aad::from(place.as_bytes()), &mut buffer)
            .map_err(|_| CipherError::Open)?;
        let text = String::from_utf8(plain.to_vec()).map_err(|_| CipherError::Open)?;
        zero(&mut buffer);
        Ok(SecretString::from(text))
    }

    /// Whether values sealed under `key_id` should be sealed again (they are under an
    /// older key than the current one).
    pub fn is_current(&self, key_id: &str) -> bool {
        match &self.inner.source {
            Source::Local { current, .. } => current.key_id == key_id,
            Source::Kms {
                key_id: current, ..
            } => current == key_id,
        }
    }

    async fn sealing_key(&self) -> Result<Arc<DataKey>, CipherError> {
        match &self.inner.source {
            Source::Local { current, .. } => Ok(current.clone()),
            Source::Kms {
                client,
                key_id,
                current,
                opened,
            } => {
                let key = current
                    .get_or_try_init(|| async {
                        let made = client
                            .generate_data_key()
                            .key_id(key_id)
                            .key_spec(aws_sdk_kms::types::DataKeySpec::Aes256)
                            .send()
                            .await
                            .map_err(kms_error)?;
                        let plain = made.plaintext().ok_or_else(|| CipherError::Kms {
                            message: "GenerateDataKey returned no key".into(),
                        })?;
                        let wrapped = made
                            .ciphertext_blob()
                            .ok_or_else(|| CipherError::Kms {
                                message: "GenerateDataKey returned no wrapped key".into(),
                            })?
                            .as_ref()
                            .to_vec();
                        let id = made.key_id().unwrap_or(key_id).to_owned();
                        let key =
                            Arc::new(DataKey::new(plain.as_ref(), id, Some(wrapped.clone()))?);
                        opened
                            .lock()
                            .expect("cipher cache")
                            .insert(wrapped, key.clone());
                        Ok::<_, CipherError>(key)
                    })
                    .await?;
                Ok(key.clone())
            }
        }
    }

    async fn opening_key(
        &self,
        key_id: &str,
        wrapped: Option<&[u8]>,
    ) -> Result<Arc<DataKey>, CipherError> {
        match &self.inner.source {
            Source::Local { all, .. } => {
                all.get(key_id)
                    .cloned()
                    .ok_or_else(|| CipherError::UnknownKey {
                        key_id: key_id.to_owned(),
                    })
            }
            Source::Kms { client, opened, .. } => {
                let wrapped = wrapped.ok_or_else(|| CipherError::UnknownKey {
                    key_id: key_id.to_owned(),
                })?;
                if let Some(key) = opened.lock().expect("cipher cache").get(wrapped) {
                    return Ok(key.clone());
                }
                let out = client
                    .decrypt()
                    .key_id(key_id)
                    .ciphertext_blob(aws_sdk_kms::primitives::Blob::new(wrapped))
                    .send()
                    .await
                    .map_err(kms_error)?;
                let plain = out.plaintext().ok_or_else(|| CipherError::Kms {
                    message: "Decrypt returned no key".into(),
                })?;
                let key = Arc::new(DataKey::new(
                    plain.as_ref(),
                    key_id.to_owned(),
                    Some(wrapped.to_vec()),
                )?);
                opened
                    .lock()
                    .expect("cipher cache")
                    .insert(wrapped.to_vec(), key.clone());
                Ok(key)
            }
        }
    }
}

fn seal_with(key: &DataKey, place: &str, plain: &[u8]) -> Result<Vec<u8>, CipherError> {
    let mut nonce = [0u8; NONCE_LEN];
    aws_lc_rs::rand::fill(&mut nonce).map_err(|_| CipherError::Seal {
        message: "no random nonce".into(),
    })?;
    let mut buffer = plain.to_vec();
    key.key
        .seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(place.as_bytes()),
            &mut buffer,
        )
        .map_err(|_| CipherError::Seal {
            message: "AES-GCM refused".into(),
        })?;
    let mut out = Vec::with_capacity(NONCE_LEN + buffer.len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&buffer);
    Ok(out)
}

fn kms_error<E: std::error::Error + 'static>(e: aws_sdk_kms::error::SdkError<E>) -> CipherError {
    CipherError::Kms {
        message: aws_sdk_kms::error::DisplayErrorContext(e)
            .to_string()
            .chars()
            .take(300)
            .collect(),
    }
}

fn zero(buffer: &mut [u8]) {
    for b in buffer.iter_mut() {
        // Volatile so the wipe is not optimised away.
        unsafe { std::ptr::write_volatile(b, 0) };
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_sealed_value_opens_only_in_its_place_and_under_its_key() {
        let cipher = TokenCipher::local([7; 32]);
        let sealed = cipher.seal("cwsync:a:access", b"tok-secret").await.unwrap();
        assert!(!sealed.bytes.windows(10).any(|w| w == b"tok-secret"));
        let opened = cipher
            .open("cwsync:a:access", &sealed.bytes, &sealed.key_id, None)
            .await
            .unwrap();
        assert_eq!(opened.expose_secret(), "tok-secret");
        // Another place (row or field): refused.
        assert!(matches!(
            cipher
                .open("cwsync:b:access", &sealed.bytes, &sealed.key_id, None)
                .await,
            Err(CipherError::Open)
        ));
        // A flipped bit: refused.
        let mut bent = sealed.bytes.clone();
        *bent.last_mut().unwrap() ^= 1;
        assert!(
            cipher
                .open("cwsync:a:access", &bent, &sealed.key_id, None)
                .await
                .is_err()
        );
        // Two seals of one value differ (a fresh nonce each).
        let again = cipher.seal("cwsync:a:access", b"tok-secret").await.unwrap();
        assert_ne!(again.bytes, sealed.bytes);
        // Another key does not know it.
        let other = TokenCipher::local([8; 32]);
        assert!(matches!(
            other
                .open("cwsync:a:access", &sealed.bytes, &sealed.key_id, None)
                .await,
            Err(CipherError::UnknownKey { .. })
        ));
        assert!(!format!("{cipher:?} {sealed:?}").contains("tok-secret"));
    }

    #[tokio::test]
    async fn a_previous_key_still_opens_what_it_sealed() {
        let old = TokenCipher::local([1; 32]);
        let sealed = old.seal("p", b"value").await.unwrap();
        let env = Env::from_pairs([
            (
                CipherConfig::KEY_VAR,
                base64::engine::general_purpose::STANDARD.encode([2u8; 32]),
            ),
            (
                CipherConfig::PREVIOUS_VAR,
                base64::engine::general_purpose::STANDARD.encode([1u8; 32]),
            ),
        ]);
        let config = CipherConfig::from_env(&env).unwrap().unwrap();
        let rotated = TokenCipher::new(&config, None).unwrap();
        assert!(!rotated.is_current(&sealed.key_id));
        let opened = rotated
            .open("p", &sealed.bytes, &sealed.key_id, None)
            .await
            .unwrap();
        assert_eq!(opened.expose_secret(), "value");
        let resealed = rotated.seal("p", b"value").await.unwrap();
        assert!(rotated.is_current(&resealed.key_id));
    }

    #[test]
    fn a_malformed_key_is_refused_by_name() {
        for bad in ["short", "AAAA", ""] {
            let env = Env::from_pairs([(CipherConfig::KEY_VAR, bad)]);
            match CipherConfig::from_env(&env) {
                Err(e) => assert!(e.to_string().starts_with("TOKEN_ENCRYPTION_KEY"), "{e}"),
                Ok(c) => assert!(bad.is_empty() || c.is_none(), "{bad} accepted"),
            }
        }
        let key = CipherConfig::generate_local_key();
        let env = Env::from_pairs([(CipherConfig::KEY_VAR, key.as_str())]);
        let config = CipherConfig::from_env(&env).unwrap().unwrap();
        assert!(!format!("{config:?}").contains(&key));
    }
}
