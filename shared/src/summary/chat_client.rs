//! The HTTP client of an OpenAI-compatible chat-completions API
//! (`POST <base>/chat/completions`): a system and a user message in, the answer's text
//! out, the tokens it used added up. What the requests say, and how a period is cut into
//! them, is the summarizer's (`chat_model`).
//!
//! # Requests
//!
//! One request takes at most `SUMMARY_MODEL_TIMEOUT_SECS` and never runs past the
//! invocation's deadline. 429 and 5xx answers, network errors and timeouts are retried
//! (at most [`ChatModelSettings::max_attempts`] attempts), waiting what `retry-after-ms`
//! or `retry-after` asks, else an exponential backoff with jitter; a wait longer than
//! [`ChatModelSettings::max_retry_after`] or past the deadline hands the item back to
//! its queue instead. Other 4xx answers fail the item. Token usage is summed from each
//! answer's `usage`.
//!
//! The API key is sent only in the `Authorization` header (marked sensitive), redirects
//! are not followed, and it appears in no error, log line or `Debug` output; an error
//! body that echoes it has it replaced.

use std::time::Duration;

use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::time::Instant;
use url::Url;

use super::SummarizeError;
use super::config::{SummaryConfig, SummaryModelConfig};
use super::locale::DraftStyle;
use crate::jobs::ErrorInfo;
use crate::retry::Backoff;

/// How the client talks to the model. The summarizer reads two fields besides: the
/// context it budgets its requests to, and the style it drafts in.
#[derive(Debug, Clone)]
pub struct ChatModelSettings {
    /// Requests go to `<base_url>/chat/completions`.
    pub base_url: Url,
    pub model: String,
    pub api_key: Option<SecretString>,
    pub request_timeout: Duration,
    /// The context window as budgeted: an answer may take a quarter of it (256 to
    /// 2048 tokens, [`ChatModelSettings::answer_tokens`]), and the summarizer fits its
    /// requests into the rest (see `chat_model`).
    pub context_tokens: u32,
    /// Attempts per request on 429, 5xx, network errors and timeouts, the first included.
    pub max_attempts: u32,
    /// The first retry's backoff (without `retry-after`); doubling up to `backoff_max`.
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    /// The longest `retry-after` waited inside an invocation.
    pub max_retry_after: Duration,
    /// The language and time zone of the drafts (and so of the instructions).
    pub style: DraftStyle,
}

impl ChatModelSettings {
    /// The settings of `model` with 4 attempts, backoff from 1 s to 16 s, and waits for
    /// `retry-after` of up to 60 s.
    pub fn new(model: &SummaryModelConfig, context_tokens: u32, style: DraftStyle) -> Self {
        Self {
            base_url: model.base_url.clone(),
            model: model.model.clone(),
            api_key: model.api_key.clone(),
            request_timeout: model.timeout,
            context_tokens,
            max_attempts: 4,
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(16),
            max_retry_after: Duration::from_secs(60),
            style,
        }
    }

    /// How a request is retried: [`Self::max_attempts`] attempts, backing off from
    /// [`Self::backoff_initial`] to [`Self::backoff_max`].
    pub fn backoff(&self) -> Backoff {
        Backoff::new(self.backoff_initial, self.backoff_max).with_max_attempts(self.max_attempts)
    }

    /// The settings of a configuration that names a model.
    pub fn from_config(config: &SummaryConfig) -> Option<Self> {
        config
            .model
            .as_ref()
            .map(|m| Self::new(m, config.context_tokens, config.style))
    }

    /// Tokens of the answer to each request.
    pub fn answer_tokens(&self) -> u32 {
        (self.context_tokens / 4).clamp(256, 2048)
    }
}

/// Tokens a draft used, summed over its requests (`tokenUsage` of a draft).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenUsage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
    /// Requests answered (a retried one counts once).
    pub requests: u32,
}

/// A client of one model's API; see the module documentation.
pub struct ChatClient {
    http: reqwest::Client,
    endpoint: String,
    auth: Option<HeaderValue>,
    settings: ChatModelSettings,
}

impl std::fmt::Debug for ChatClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatClient")
            .field("endpoint", &self.endpoint)
            .field("model", &self.settings.model)
            .field("api_key", &self.auth.as_ref().map(|_| "[redacted]"))
            .finish_non_exhaustive()
    }
}

/// Why a client could not be built.
#[derive(Debug, thiserror::Error)]
#[error("summary model client: {0}")]
pub struct ChatModelSetupError(String);

impl ChatClient {
    pub fn new(settings: ChatModelSettings) -> Result<Self, ChatModelSetupError> {
        let auth = match &settings.api_key {
            None => None,
            Some(key) => {
                let mut value = HeaderValue::from_str(&format!("Bearer {}", key.expose_secret()))
                    .map_err(|_| {
                    ChatModelSetupError(
                        "SUMMARY_MODEL_API_KEY is not a valid HTTP header value".into(),
                    )
                })?;
                value.set_sensitive(true);
                Some(value)
            }
        };
        let http = reqwest::Client::builder()
            .user_agent(concat!("cwsync/", env!("CARGO_PKG_VERSION")))
            // A redirect would carry the key to wherever it points.
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(settings.request_timeout.min(Duration::from_secs(10)))
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| ChatModelSetupError(e.without_url().to_string()))?;
        let endpoint = format!(
            "{}/chat/completions",
            settings.base_url.as_str().trim_end_matches('/')
        );
        Ok(Self {
            http,
            endpoint,
            auth,
            settings,
        })
    }

    pub fn settings(&self) -> &ChatModelSettings {
        &self.settings
    }

    /// One chat completion, retried as the module documentation says: the answer's text,
    /// its tokens added to `usage`.
    pub(super) async fn complete(
        &self,
        system: &str,
        user: &str,
        deadline: Instant,
        usage: &mut TokenUsage,
    ) -> Result<String, SummarizeError> {
        let body = json!({
            "model": self.settings.model,
            "messages": [
                {"role": "system", "content": system},
                {"role": "user", "content": user},
            ],
            "temperature": 0,
            "max_tokens": self.settings.answer_tokens(),
        });
        let mut retries = self.settings.backoff().start();
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining < Duration::from_secs(1) {
                return Err(SummarizeError::Retry(anyhow::anyhow!(
                    "the invocation's time ran out before the model answered"
                )));
            }
            let mut request = self
                .http
                .post(&self.endpoint)
                .timeout(self.settings.request_timeout.min(remaining))
                .json(&body);
            if let Some(auth) = &self.auth {
                request = request.header(AUTHORIZATION, auth.clone());
            }
            let (problem, asked_wait) = match request.send().await {
                Ok(response) => {
                    let status = response.status().as_u16();
                    metrics::counter!("summary_model_requests", "status" => status_class(status))
                        .increment(1);
                    let asked_wait = retry_after(response.headers());
                    if response.status().is_success() {
                        return self.answer(response, usage).await;
                    }
                    let text = response.text().await.unwrap_or_default();
                    let detail = self.redact(&clip(&text, 300));
                    if status != 429 && status < 500 {
                        return Err(SummarizeError::Fail(refusal(status, &detail)));
                    }
                    (format!("the model answered {status}: {detail}"), asked_wait)
                }
                Err(e) => {
                    metrics::counter!("summary_model_requests", "status" => "error").increment(1);
                    let kind = if e.is_timeout() {
                        "timed out"
                    } else {
                        "failed"
                    };
                    (
                        format!(
                            "the request {kind}: {}",
                            self.redact(&crate::text::error_chain(&e))
                        ),
                        None,
                    )
                }
            };
            let attempt = retries.attempts();
            let Some(backoff) = retries.next_delay() else {
                return Err(SummarizeError::Retry(anyhow::anyhow!(
                    "{problem} (after {attempt} attempts)"
                )));
            };
            let wait = match asked_wait {
                Some(wait) if wait > self.settings.max_retry_after => {
                    return Err(SummarizeError::Retry(anyhow::anyhow!(
                        "{problem}; it asks to wait {} s, longer than an invocation waits",
                        wait.as_secs()
                    )));
                }
                Some(wait) => wait,
                None => backoff,
            };
            if Instant::now() + wait + Duration::from_secs(1) > deadline {
                return Err(SummarizeError::Retry(anyhow::anyhow!(
                    "{problem}; no time is left in this invocation to try again"
                )));
            }
            metrics::counter!("summary_model_retries").increment(1);
            tracing::warn!(attempt, wait_ms = wait.as_millis() as u64, %problem, "retrying the model request");
            tokio::time::sleep(wait).await;
        }
    }

    async fn answer(
        &self,
        response: reqwest::Response,
        usage: &mut TokenUsage,
    ) -> Result<String, SummarizeError> {
        let bad = |message: String| {
            SummarizeError::Fail(ErrorInfo::new("ModelBadAnswer", self.redact(&message)))
        };
        let bytes = response.bytes().await.map_err(|e| {
            SummarizeError::Retry(anyhow::anyhow!(
                "reading the model's answer failed: {}",
                self.redact(&crate::text::error_chain(&e))
            ))
        })?;
        let parsed: ChatResponse = serde_json::from_slice(&bytes).map_err(|e| {
            bad(format!(
                "the answer is not a chat completion ({e}): {}",
                clip(&String::from_utf8_lossy(&bytes), 200)
            ))
        })?;
        usage.requests += 1;
        if let Some(u) = parsed.usage {
            usage.prompt_tokens += u.prompt_tokens;
            usage.completion_tokens += u.completion_tokens;
            usage.total_tokens += u
                .total_tokens
                .unwrap_or(u.prompt_tokens + u.completion_tokens);
        }
        let content = parsed
            .choices
            .into_iter()
            .next()
            .and_then(|c| c.message.content)
            .map(|c| c.trim().to_owned())
            .unwrap_or_default();
        if content.is_empty() {
            return Err(bad("the answer has no text".into()));
        }
        Ok(content)
    }

    /// `text` without the API key, should an answer or error echo it.
    fn redact(&self, text: &str) -> String {
        match &self.settings.api_key {
            Some(key) if !key.expose_secret().is_empty() => {
                text.replace(key.expose_secret(), "[redacted]")
            }
            _ => text.to_owned(),
        }
    }
}

#[derive(Deserialize)]
struct ChatResponse {
    #[serde(default)]
    choices: Vec<Choice>,
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct Choice {
    message: ChoiceMessage,
}

#[derive(Deserialize)]
struct ChoiceMessage {
    content: Option<String>,
}

#[derive(Deserialize)]
struct Usage {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
    total_tokens: Option<u64>,
}

fn status_class(status: u16) -> &'static str {
    match status {
        200..=299 => "2xx",
        429 => "429",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

/// A 4xx other than 429: trying again cannot help.
fn refusal(status: u16, detail: &str) -> ErrorInfo {
    match status {
        // The body of a refused key may quote part of it: say nothing of it.
        401 | 403 => ErrorInfo::new(
            "ModelUnauthorized",
            format!("the model API refused the key ({status}); check SUMMARY_MODEL_API_KEY"),
        ),
        // The body is the model provider's words (it may echo the prompt): only admins
        // see it, as the stack.
        _ => ErrorInfo {
            stack: Some(format!("the model API answered {status}: {detail}")),
            ..ErrorInfo::new(
                "ModelRejected",
                format!(
                    "the model API refused the request ({status}); an administrator can see its answer in the job's details"
                ),
            )
        },
    }
}

/// What `retry-after-ms` (milliseconds) or `retry-after` (seconds, or an HTTP date)
/// asks to wait.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let text = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    if let Some(ms) = text("retry-after-ms").and_then(|v| v.parse::<f64>().ok())
        && ms.is_finite()
        && ms >= 0.0
    {
        return Some(Duration::from_millis(ms as u64));
    }
    let value = text("retry-after")?;
    if let Ok(secs) = value.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let wait = at.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some(wait.to_std().unwrap_or_default())
}

/// At most `max` characters of `text`, on one line.
fn clip(text: &str, max: usize) -> String {
    let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() <= max {
        one_line
    } else {
        format!("{}…", one_line.chars().take(max).collect::<String>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusals_body_is_for_admins_only() {
        let error = refusal(400, "your prompt: confidential words");
        assert_eq!(error.name, "ModelRejected");
        assert!(
            error
                .stack
                .as_deref()
                .unwrap()
                .contains("confidential words")
        );
        let public = error.public();
        assert!(
            !format!("{public:?}").contains("confidential"),
            "{public:?}"
        );
        assert!(public.message.contains("400"), "{public:?}");
    }

    #[test]
    fn retry_after_is_read_in_its_three_forms() {
        let mut headers = HeaderMap::new();
        headers.insert("retry-after", HeaderValue::from_static("2"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(2)));
        headers.insert("retry-after-ms", HeaderValue::from_static("150"));
        assert_eq!(retry_after(&headers), Some(Duration::from_millis(150)));
        let mut headers = HeaderMap::new();
        headers.insert(
            "retry-after",
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&headers), Some(Duration::ZERO), "in the past");
        headers.insert("retry-after", HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&headers), None);
    }

    #[test]
    fn debug_never_shows_the_key() {
        let settings = ChatModelSettings {
            base_url: Url::parse("http://127.0.0.1:1/v1").unwrap(),
            model: "m".into(),
            api_key: Some(SecretString::from("sk-top-secret")),
            request_timeout: Duration::from_secs(1),
            context_tokens: 2048,
            max_attempts: 1,
            backoff_initial: Duration::from_millis(1),
            backoff_max: Duration::from_millis(1),
            max_retry_after: Duration::from_secs(1),
            style: DraftStyle::default(),
        };
        let client = ChatClient::new(settings.clone()).unwrap();
        assert!(!format!("{client:?}").contains("sk-top-secret"));
        assert!(!format!("{settings:?}").contains("sk-top-secret"));
        assert_eq!(client.redact("bad key sk-top-secret"), "bad key [redacted]");
    }
}
