//! The one error type of the Chatwork client.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};

/// The longest `Display` of a [`ChatworkError`]: it fits `chatwork_rooms.last_error_message`.
pub const MAX_MESSAGE_CHARS: usize = 500;
const MAX_EXCERPT_CHARS: usize = 200;
const MAX_ERRORS_CHARS: usize = 240;

/// Why a Chatwork call failed. `Display` is one short line (at most
/// [`MAX_MESSAGE_CHARS`]) fit to store on a room row or show an admin; neither it nor
/// `Debug` ever contains the token (requests carry it only in a header, and bodies are
/// scrubbed of it).
#[derive(Debug, Clone, PartialEq)]
pub enum ChatworkError {
    /// Chatwork answered with an error status (other than a 429, which the client waits
    /// out).
    Status {
        status: u16,
        /// `GET /rooms/123/messages`
        endpoint: String,
        /// Chatwork's `errors[]`.
        errors: Vec<String>,
        /// The start of the body when it held no `errors[]`.
        body_excerpt: String,
    },
    /// The token's rate budget (or Chatwork's 429) allows no request before `until`,
    /// which is past the caller's deadline.
    RateLimited { until: DateTime<Utc> },
    /// No answer within the per-request timeout (or before the caller's deadline).
    Timeout {
        endpoint: String,
        after: Duration,
        attempts: u32,
    },
    /// Chatwork could not be reached (connection refused or reset, DNS, TLS).
    Network {
        endpoint: String,
        message: String,
        attempts: u32,
    },
    /// Chatwork answered 2xx with a body that is not what the API documents.
    Decode {
        endpoint: String,
        message: String,
        body_excerpt: String,
    },
    /// Chatwork answered 2xx with a body larger than such an answer can honestly be
    /// (`limit` bytes); the rest was not read.
    TooLarge { endpoint: String, limit: usize },
    /// The caller's deadline passed before the request could be sent.
    Deadline { endpoint: String },
    /// The shared rate budget in Postgres could not be used.
    Budget { message: String },
    /// Chatwork is down (repeated 5xx, timeouts or no connection): the token's outage
    /// breaker is open and no request goes out before `until` but one probe (see
    /// [`breaker`](super::breaker)). Sent nothing; try again later.
    Unavailable { until: DateTime<Utc> },
    /// The client could not be built (a token that is not a valid header value, TLS).
    Setup { message: String },
    /// The connection cannot speak to Chatwork until a person acts: it is disabled, or
    /// Chatwork refused its token or its refresh (`reauth_required`). Sent nothing.
    Connection { message: String },
}

impl ChatworkError {
    /// Whether trying again later can succeed: 5xx, 429, network failures, timeouts, an
    /// open outage breaker and an unreachable budget are; 400, 401, 403, 404,
    /// malformed answers and answers over their size cap are not (the same request
    /// would get the same answer, and each try costs a request and the cap in memory:
    /// the room fails and the next check asks again).
    pub fn is_retryable(&self) -> bool {
        match self {
            ChatworkError::Status { status, .. } => *status >= 500 || *status == 429,
            ChatworkError::RateLimited { .. }
            | ChatworkError::Timeout { .. }
            | ChatworkError::Network { .. }
            | ChatworkError::Deadline { .. }
            | ChatworkError::Budget { .. }
            | ChatworkError::Unavailable { .. } => true,
            ChatworkError::Decode { .. }
            | ChatworkError::TooLarge { .. }
            | ChatworkError::Setup { .. }
            | ChatworkError::Connection { .. } => false,
        }
    }

    /// The HTTP status behind the error: Chatwork's, or 429 for a rate limit.
    pub fn status(&self) -> Option<u16> {
        match self {
            ChatworkError::Status { status, .. } => Some(*status),
            ChatworkError::RateLimited { .. } => Some(429),
            _ => None,
        }
    }

    /// Whether the room is gone or no longer readable (404/403): a sync should mark it
    /// rather than retry.
    pub fn is_room_unavailable(&self) -> bool {
        matches!(self.status(), Some(403 | 404))
    }

    fn write_full(&self, f: &mut impl fmt::Write) -> fmt::Result {
        match self {
            ChatworkError::Status {
                status,
                endpoint,
                errors,
                body_excerpt,
            } => {
                write!(f, "Chatwork answered {status} to {endpoint}")?;
                if !errors.is_empty() {
                    write!(f, ": {}", errors.join("; "))
                } else if !body_excerpt.is_empty() {
                    write!(f, ": {body_excerpt}")
                } else {
                    Ok(())
                }
            }
            ChatworkError::RateLimited { until } => write!(
                f,
                "Chatwork rate limit: no request allowed before {}",
                until.to_rfc3339_opts(SecondsFormat::Secs, true)
            ),
            ChatworkError::Timeout {
                endpoint,
                after,
                attempts,
            } => write!(
                f,
                "Chatwork did not answer {endpoint} within {} ms (attempt {attempts})",
                after.as_millis()
            ),
            ChatworkError::Network {
                endpoint,
                message,
                attempts,
            } => write!(
                f,
                "could not reach Chatwork for {endpoint} (attempt {attempts}): {message}"
            ),
            ChatworkError::Decode {
                endpoint, message, ..
            } => write!(
                f,
                "unexpected answer from Chatwork to {endpoint}: {message}"
            ),
            ChatworkError::TooLarge { endpoint, limit } => write!(
                f,
                "Chatwork's answer to {endpoint} is larger than {} KiB, more than it can \
                 honestly hold; not read",
                limit / 1024
            ),
            ChatworkError::Deadline { endpoint } => write!(
                f,
                "no time left before the caller's deadline to send {endpoint}"
            ),
            ChatworkError::Budget { message } => {
                write!(
                    f,
                    "the shared Chatwork rate budget is unavailable: {message}"
                )
            }
            ChatworkError::Connection { message } => {
                write!(f, "the Chatwork connection cannot be used: {message}")
            }
            ChatworkError::Setup { message } => {
                write!(f, "the Chatwork client could not be built: {message}")
            }
            ChatworkError::Unavailable { until } => write!(
                f,
                "Chatwork unavailable: repeated server errors or timeouts opened the outage \
                 breaker; no request before {} but one probe",
                until.to_rfc3339_opts(SecondsFormat::Secs, true)
            ),
        }
    }
}

impl fmt::Display for ChatworkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut line = String::new();
        self.write_full(&mut line)?;
        f.write_str(&clip(&single_line(&line), MAX_MESSAGE_CHARS))
    }
}

impl std::error::Error for ChatworkError {}

/// `text` cut to `max` characters (with an ellipsis when cut).
pub(crate) fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

fn single_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// A short, single-line excerpt of a body with every occurrence of `secret` removed.
pub(crate) fn excerpt(body: &[u8], secret: &str) -> String {
    let text = String::from_utf8_lossy(body);
    let scrubbed = scrub(&text, secret);
    clip(single_line(&scrubbed).trim(), MAX_EXCERPT_CHARS)
}

/// `text` without `secret` (a token Chatwork might echo).
pub(crate) fn scrub(text: &str, secret: &str) -> String {
    if secret.is_empty() {
        text.to_owned()
    } else {
        text.replace(secret, "[redacted]")
    }
}

/// Chatwork's `{"errors": [...]}`, scrubbed and bounded; empty when the body has none.
pub(crate) fn chatwork_errors(body: &[u8], secret: &str) -> Vec<String> {
    #[derive(serde::Deserialize)]
    struct Errors {
        errors: Vec<String>,
    }
    let Ok(parsed) = serde_json::from_slice::<Errors>(body) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut used = 0;
    for e in parsed.errors {
        let e = clip(single_line(&scrub(&e, secret)).trim(), MAX_EXCERPT_CHARS);
        used += e.chars().count();
        if used > MAX_ERRORS_CHARS && !out.is_empty() {
            break;
        }
        out.push(e);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_one_bounded_line() {
        let err = ChatworkError::Status {
            status: 404,
            endpoint: "GET /rooms/1".into(),
            errors: vec!["Room not found".into()],
            body_excerpt: String::new(),
        };
        assert_eq!(
            err.to_string(),
            "Chatwork answered 404 to GET /rooms/1: Room not found"
        );
        assert!(!err.is_retryable());
        assert_eq!(err.status(), Some(404));
        assert!(err.is_room_unavailable());

        let long = ChatworkError::Decode {
            endpoint: "GET /rooms".into(),
            message: "x\ny".repeat(1000),
            body_excerpt: String::new(),
        };
        let line = long.to_string();
        assert!(line.chars().count() <= MAX_MESSAGE_CHARS);
        assert!(!line.contains('\n'));
    }

    #[test]
    fn retryable_or_not() {
        let status = |s| ChatworkError::Status {
            status: s,
            endpoint: String::new(),
            errors: vec![],
            body_excerpt: String::new(),
        };
        for s in [500, 502, 503, 429] {
            assert!(status(s).is_retryable(), "{s}");
        }
        for s in [400, 401, 403, 404] {
            assert!(!status(s).is_retryable(), "{s}");
        }
        let limited = ChatworkError::RateLimited {
            until: DateTime::from_timestamp(1_800_000_000, 0).unwrap(),
        };
        assert!(limited.is_retryable());
        assert_eq!(limited.status(), Some(429));
        let down = ChatworkError::Unavailable {
            until: DateTime::from_timestamp(1_800_000_000, 0).unwrap(),
        };
        assert!(down.is_retryable());
        assert_eq!(down.status(), None);
        assert!(
            down.to_string().starts_with("Chatwork unavailable: "),
            "{down}"
        );
        assert_eq!(
            limited.to_string(),
            "Chatwork rate limit: no request allowed before 2027-01-15T08:00:00Z"
        );
    }

    #[test]
    fn bodies_are_scrubbed_of_the_token() {
        let body = br#"{"errors": ["bad token abc123secret", "second"]}"#;
        let errors = chatwork_errors(body, "abc123secret");
        assert_eq!(errors, ["bad token [redacted]", "second"]);
        assert_eq!(
            excerpt(b"<html>abc123secret\n</html>", "abc123secret"),
            "<html>[redacted] </html>"
        );
        assert!(chatwork_errors(b"not json", "x").is_empty());
    }
}
