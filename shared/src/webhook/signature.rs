//! Chatwork's webhook signature: the webhook's token is base64; its decoded bytes are the
//! HMAC-SHA256 key over the request body exactly as received, and the base64 of the
//! digest arrives in the `X-ChatWorkWebhookSignature` header (and, URL-encoded, in the
//! `chatwork_webhook_signature` query parameter).
//!
//! Several tokens are valid at once (one per webhook, and old and new during a
//! rotation): a body is authentic when its signature verifies under any of them. The
//! comparison is the `hmac` crate's, in constant time.
//!
//! A token may name the rooms it serves, `token@roomId+roomId` (`@` and digits are not
//! base64, so the form is unambiguous): its signature then vouches only for events of
//! those rooms. A token without rooms serves every room cwsync knows (see README,
//! "Security notes").

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use secrecy::{ExposeSecret, SecretBox, SecretString};
use sha2::Sha256;

/// The header Chatwork signs in.
pub const SIGNATURE_HEADER: &str = "x-chatworkwebhooksignature";

/// The query parameter Chatwork also signs in.
pub const SIGNATURE_QUERY: &str = "chatwork_webhook_signature";

/// The decoded keys of every webhook token we accept, each with the rooms it serves. Its
/// `Debug` prints how many.
#[derive(Clone, Default)]
pub struct WebhookKeys {
    keys: Vec<Key>,
}

#[derive(Clone)]
struct Key {
    secret: std::sync::Arc<SecretBox<Vec<u8>>>,
    /// `None`: every room.
    rooms: Option<std::sync::Arc<[i64]>>,
}

/// The rooms a verified signature vouches for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Serves {
    /// A token that names no rooms.
    AnyRoom,
    /// The rooms the signing token(s) named.
    Rooms(Vec<i64>),
}

impl Serves {
    pub fn room(&self, room_id: i64) -> bool {
        match self {
            Self::AnyRoom => true,
            Self::Rooms(rooms) => rooms.contains(&room_id),
        }
    }
}

impl std::fmt::Debug for WebhookKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WebhookKeys({} tokens)", self.keys.len())
    }
}

/// A token that is not base64, or whose room list is not `@id+id`. Names its position,
/// never its value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("token {position} of {count} {why}")]
pub struct InvalidToken {
    /// 1-based.
    pub position: usize,
    pub count: usize,
    pub why: &'static str,
}

const NOT_BASE64: &str = "is not base64 (Chatwork shows webhook tokens in base64)";
const BAD_ROOMS: &str =
    "names its rooms wrongly (token@roomId+roomId, each a positive decimal room id)";

/// `token` or `token@id+id`: the key and the rooms, or what is wrong.
fn parse_token(raw: &str) -> Result<Key, &'static str> {
    let (token, rooms) = match raw.trim().split_once('@') {
        Some((token, rooms)) => (token, Some(rooms)),
        None => (raw.trim(), None),
    };
    let secret = match STANDARD.decode(token) {
        Ok(key) if !key.is_empty() => std::sync::Arc::new(SecretBox::new(Box::new(key))),
        _ => return Err(NOT_BASE64),
    };
    let rooms = rooms
        .map(|list| {
            list.split('+')
                .map(|text| {
                    let digits = text.bytes().all(|b| b.is_ascii_digit());
                    match text.parse::<i64>() {
                        Ok(id) if digits && id > 0 && !text.starts_with('0') => Ok(id),
                        _ => Err(BAD_ROOMS),
                    }
                })
                .collect::<Result<std::sync::Arc<[i64]>, _>>()
        })
        .transpose()?;
    Ok(Key { secret, rooms })
}

impl WebhookKeys {
    /// The keys of `tokens` (base64, as Chatwork shows them, each optionally followed by
    /// `@roomId+roomId`). Surrounding blanks are ignored; an empty token is refused like
    /// any other that does not decode.
    pub fn from_tokens(tokens: &[SecretString]) -> Result<Self, InvalidToken> {
        let count = tokens.len();
        let keys = tokens
            .iter()
            .enumerate()
            .map(|(i, token)| {
                parse_token(token.expose_secret()).map_err(|why| InvalidToken {
                    position: i + 1,
                    count,
                    why,
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { keys })
    }

    /// These keys and those of `other`.
    pub fn merged(mut self, other: WebhookKeys) -> Self {
        self.keys.extend(other.keys);
        self
    }

    /// How many tokens name no rooms (they vouch for every room).
    pub fn unscoped(&self) -> usize {
        self.keys.iter().filter(|k| k.rooms.is_none()).count()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether `signature` (base64, as received) signs `body` under one of the keys.
    pub fn verify(&self, body: &[u8], signature: &str) -> bool {
        self.serves(body, signature).is_some()
    }

    /// The rooms `signature` vouches for when it signs `body` under one of the keys (the
    /// union when the same key is configured more than once); `None` when it does not.
    pub fn serves(&self, body: &[u8], signature: &str) -> Option<Serves> {
        let digest = STANDARD.decode(signature.trim()).ok()?;
        // Every key is tried, whether or not an earlier one matched, so the time taken
        // does not say which token (or whether the first) signed.
        let mut serves: Option<Serves> = None;
        for key in &self.keys {
            let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key.secret.expose_secret())
                .expect("HMAC takes a key of any length");
            mac.update(body);
            if mac.verify_slice(&digest).is_ok() {
                serves = Some(match (serves, &key.rooms) {
                    (Some(Serves::AnyRoom), _) | (_, None) => Serves::AnyRoom,
                    (None, Some(rooms)) => Serves::Rooms(rooms.to_vec()),
                    (Some(Serves::Rooms(mut had)), Some(rooms)) => {
                        had.extend(rooms.iter());
                        Serves::Rooms(had)
                    }
                });
            }
        }
        serves
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
        assert_eq!((err.position, err.count), (2, 2));
        assert!(!err.to_string().contains("secret value"));
        assert!(!format!("{:?}", keys(&[TOKEN])).contains(TOKEN));
    }

    #[test]
    fn a_token_may_name_the_rooms_it_serves() {
        let scoped = keys(&[&format!("{TOKEN}@281+9007199254740993")]);
        assert_eq!(
            scoped.serves(BODY, SIGNATURE),
            Some(Serves::Rooms(vec![281, 9_007_199_254_740_993]))
        );
        assert!(scoped.serves(BODY, SIGNATURE).unwrap().room(281));
        assert!(!scoped.serves(BODY, SIGNATURE).unwrap().room(282));
        assert_eq!(scoped.unscoped(), 0);
        // The same key also configured without rooms: every room.
        let both = keys(&[&format!("{TOKEN}@281"), TOKEN]);
        assert_eq!(both.serves(BODY, SIGNATURE), Some(Serves::AnyRoom));
        let twice = keys(&[&format!("{TOKEN}@1"), &format!("{TOKEN}@2")]);
        assert_eq!(
            twice.serves(BODY, SIGNATURE),
            Some(Serves::Rooms(vec![1, 2]))
        );
        for bad in ["@", "@1+", "@+1", "@0", "@-1", "@1x", "@+", "@01", "@1@2"] {
            let token = SecretString::from(format!("{TOKEN}{bad}"));
            let err = WebhookKeys::from_tokens(&[token]).unwrap_err();
            assert_eq!(err.why, BAD_ROOMS, "{bad}");
            assert!(!err.to_string().contains(TOKEN));
        }
    }
}
