//! Chatwork's webhook signature: the webhook's token is base64; its decoded bytes are the
//! HMAC-SHA256 key over the request body exactly as received, and the base64 of the
//! digest arrives in the `X-ChatWorkWebhookSignature` header (and, URL-encoded, in the
//! `chatwork_webhook_signature` query parameter).
//!
//! Several tokens are valid at once (one per webhook, and old and new during a
//! rotation): a body is authentic when its signature verifies under any of them. The
//! comparison is the `hmac` crate's, in constant time.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use secrecy::{ExposeSecret, SecretBox, SecretString};
use sha2::Sha256;

/// The header Chatwork signs in.
pub const SIGNATURE_HEADER: &str = "x-chatworkwebhooksignature";

/// The query parameter Chatwork also signs in.
pub const SIGNATURE_QUERY: &str = "chatwork_webhook_signature";

/// The decoded keys of every webhook token we accept. Its `Debug` prints how many.
#[derive(Clone, Default)]
pub struct WebhookKeys {
    keys: Vec<std::sync::Arc<SecretBox<Vec<u8>>>>,
}

impl std::fmt::Debug for WebhookKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WebhookKeys({} tokens)", self.keys.len())
    }
}

/// A token that is not base64. Names its position, never its value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("token {position} of {count} is not base64 (Chatwork shows webhook tokens in base64)")]
pub struct InvalidToken {
    /// 1-based.
    pub position: usize,
    pub count: usize,
}

impl WebhookKeys {
    /// The keys of `tokens` (base64, as Chatwork shows them). Surrounding blanks are
    /// ignored; an empty token is refused like any other that does not decode.
    pub fn from_tokens(tokens: &[SecretString]) -> Result<Self, InvalidToken> {
        let count = tokens.len();
        let keys = tokens
            .iter()
            .enumerate()
            .map(|(i, token)| {
                let raw = token.expose_secret().trim();
                match STANDARD.decode(raw) {
                    Ok(key) if !key.is_empty() => {
                        Ok(std::sync::Arc::new(SecretBox::new(Box::new(key))))
                    }
                    _ => Err(InvalidToken {
                        position: i + 1,
                        count,
                    }),
                }
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { keys })
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether `signature` (base64, as received) signs `body` under one of the keys.
    pub fn verify(&self, body: &[u8], signature: &str) -> bool {
        let Ok(digest) = STANDARD.decode(signature.trim()) else {
            return false;
        };
        // Every key is tried, whether or not an earlier one matched, so the time taken
        // does not say which token (or whether the first) signed.
        let mut verified = false;
        for key in &self.keys {
            let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key.expose_secret())
                .expect("HMAC takes a key of any length");
            mac.update(body);
            verified |= mac.verify_slice(&digest).is_ok();
        }
        verified
    }
}

/// The signature of `body` under the base64 `token`, as Chatwork computes it; for the
/// fake Chatwork, tests and tools. `None` when the token is not base64.
pub fn sign(token: &str, body: &[u8]) -> Option<String> {
    let key = STANDARD.decode(token.trim()).ok()?;
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&key).ok()?;
    mac.update(body);
    Some(STANDARD.encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(tokens: &[&str]) -> WebhookKeys {
        let tokens: Vec<SecretString> = tokens.iter().map(|t| SecretString::from(*t)).collect();
        WebhookKeys::from_tokens(&tokens).unwrap()
    }

    // A vector computed outside this code (Python's hmac module):
    // key = b"chatwork-webhook-test-key", body = b'{"a":1}'
    // base64.b64encode(hmac.new(key, body, hashlib.sha256).digest())
    const TOKEN: &str = "Y2hhdHdvcmstd2ViaG9vay10ZXN0LWtleQ==";
    const BODY: &[u8] = br#"{"a":1}"#;
    const SIGNATURE: &str = "QZH+FqUorsqz03x8/7VUS9bte++l7BwXyRNzQAUAyzM=";

    #[test]
    fn a_known_vector_verifies_and_sign_reproduces_it() {
        assert_eq!(sign(TOKEN, BODY).as_deref(), Some(SIGNATURE));
        assert!(keys(&[TOKEN]).verify(BODY, SIGNATURE));
    }

    #[test]
    fn a_changed_byte_a_truncated_signature_or_another_token_fails() {
        let k = keys(&[TOKEN]);
        assert!(!k.verify(br#"{"a":2}"#, SIGNATURE));
        assert!(!k.verify(BODY, &SIGNATURE[..SIGNATURE.len() - 4]));
        assert!(!k.verify(BODY, "not base64!"));
        assert!(!k.verify(BODY, ""));
        assert!(!keys(&["b3RoZXIta2V5"]).verify(BODY, SIGNATURE));
        assert!(!WebhookKeys::default().verify(BODY, SIGNATURE));
    }

    #[test]
    fn any_of_several_tokens_verifies() {
        assert!(keys(&["b3RoZXIta2V5", TOKEN]).verify(BODY, SIGNATURE));
    }

    #[test]
    fn a_token_that_is_not_base64_is_named_by_position_only() {
        let tokens = [
            SecretString::from(TOKEN),
            SecretString::from("secret value!"),
        ];
        let err = WebhookKeys::from_tokens(&tokens).unwrap_err();
        assert_eq!(
            err,
            InvalidToken {
                position: 2,
                count: 2
            }
        );
        assert!(!err.to_string().contains("secret value"));
        assert!(!format!("{:?}", keys(&[TOKEN])).contains(TOKEN));
    }
}
