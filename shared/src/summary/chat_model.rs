//! A summarizer backed by any OpenAI-compatible chat-completions API
//! (`POST <base>/chat/completions`).
//!
//! # Chunks
//!
//! Each message is one line, `[#n] time room / author: text` (the time local to
//! `SUMMARY_TIME_ZONE`), numbered across the period. When the lines do not fit the context budget (`SUMMARY_CONTEXT_TOKENS`, less
//! the answer's share and the instructions), they are split into chunks that do; each
//! chunk is summarized on its own (map), and the partial summaries are combined (reduce),
//! in more than one round when even they do not fit. Tokens are estimated, not counted:
//! a quarter token per ASCII character and one per other character, which overestimates
//! English and is about right for Japanese. Cancellation is checked before every request.
//!
//! # Language and structure
//!
//! The instructions and requests are written in the draft's language (`SUMMARY_LANGUAGE`,
//! or the language most of the period is written in), and ask the model to write in it,
//! in the extractive draft's groups and order: decisions, requests and deadlines, open
//! questions (no later message answers or quotes them), other notable points. The draft
//! opens with the same heading as the extractive one (company, period, zone).
//!
//! # Citations
//!
//! The model is asked to cite the lines it used as `[#n]`. The draft renumbers the
//! citations it finds in order of first use (`[1]`, `[2]`, ...), lists their links under
//! "Sources" (「出典」), and stores them as the draft's `sourceLinks`; a citation of a line that
//! does not exist is dropped.
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

use std::sync::LazyLock;
use std::time::Duration;

use async_trait::async_trait;
use regex_lite::Regex;
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::time::Instant;
use url::Url;

use super::locale::{DraftStyle, Language, Locale};
use super::transcript::{Line, SourceLink, Transcript};
use super::{Checkpoint, SummarizeError, Summarizer, Summary};
use crate::config::{SummaryConfig, SummaryModelConfig};
use crate::jobs::ErrorInfo;
use crate::retry::Backoff;

/// How the client talks to the model.
#[derive(Debug, Clone)]
pub struct ChatModelSettings {
    /// Requests go to `<base_url>/chat/completions`.
    pub base_url: Url,
    pub model: String,
    pub api_key: Option<SecretString>,
    pub request_timeout: Duration,
    /// The context window as budgeted (see the module documentation).
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

/// See the module documentation.
pub struct ChatModel {
    http: reqwest::Client,
    endpoint: String,
    auth: Option<HeaderValue>,
    settings: ChatModelSettings,
}

impl std::fmt::Debug for ChatModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatModel")
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

impl ChatModel {
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

    /// Tokens one chunk of lines may take, besides the instructions and the answer.
    fn chunk_budget(&self, instructions: &str) -> usize {
        let fixed = self.settings.answer_tokens() as usize + estimate_tokens(instructions) + 64;
        (self.settings.context_tokens as usize)
            .saturating_sub(fixed)
            .max(64)
    }

    /// One chat completion, retried as the module documentation says.
    async fn complete(
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

/// Estimated tokens of `text` (see the module documentation).
pub fn estimate_tokens(text: &str) -> usize {
    let (ascii, other) = text.chars().fold((0usize, 0usize), |(a, o), c| {
        if c.is_ascii() { (a + 1, o) } else { (a, o + 1) }
    });
    ascii.div_ceil(4) + other
}

/// `text` cut so that it is estimated at most `budget` tokens.
fn fit(text: &str, budget: usize) -> String {
    if estimate_tokens(text) <= budget {
        return text.to_owned();
    }
    let mut out = String::new();
    let mut used = 0.0f64;
    for c in text.chars() {
        let cost = if c.is_ascii() { 0.25 } else { 1.0 };
        if used + cost + 1.0 > budget as f64 {
            break;
        }
        used += cost;
        out.push(c);
    }
    out.push('…');
    out
}

const MAP_INSTRUCTIONS_EN: &str = "You draft summaries of business chat between our team and one customer company, \
for a colleague who will review and edit the draft. Write in English. \
Be factual and brief and invent nothing; leave out greetings and small talk. \
Group the points under these headings, in this order, leaving out a heading with nothing under it: \
\"### Decisions\", \"### Requests and deadlines\" (who asked whom for what, with the deadline when a message states one), \
\"### Open questions\" (questions no later message answers or quotes), \"### Other notable messages\". \
Each message is one line: [#n] time room / author: text. Lines starting with > inside a message quote an earlier message. \
Cite the messages each point comes from right after it, as [#n] for each. \
Personal data was replaced by [email] and [phone]; keep these placeholders as they are.";

const MAP_INSTRUCTIONS_JA: &str = "あなたは、当社のチームと顧客企業1社とのビジネスチャットの要約案を書きます。\
読み手は、この案を確認して手直しする同僚です。日本語で、事実だけを簡潔に書き、推測で補わないでください。あいさつや雑談は省きます。\
要点は次の見出しの順にまとめ、該当のない見出しは省いてください：\
「### 決定事項」「### 依頼・期限」（誰が誰に何を依頼したか。メッセージに期限があればその期限も）\
「### 未回答の質問」（後のメッセージで回答も引用もされていない質問）「### その他の注目メッセージ」。\
メッセージは1行に1件、「[#n] 日時 ルーム / 発言者: 本文」の形です。本文中の > で始まる行は、以前のメッセージの引用です。\
各要点の直後に、根拠となったメッセージを [#n] の形で挙げてください。\
個人情報は [email] と [phone] に置き換えてあります。この表記はそのまま残してください。";

/// The English reduce instructions; the fake model of the tests tells a combine request
/// by its "combine partial summaries" (「部分要約をまとめ」 in Japanese).
const REDUCE_INSTRUCTIONS_EN: &str = "You combine partial summaries of consecutive parts of one period of business chat \
between our team and one customer company into one summary, for a colleague who will review and edit it. \
Write in English. Merge points that repeat, keep every decision, request, deadline, \
open question and next step, and invent nothing. Keep the headings and their order: \
\"### Decisions\", \"### Requests and deadlines\", \"### Open questions\", \"### Other notable messages\"; \
a question that a later part answers is no longer open. \
Keep the citations [#n] of every point you keep, exactly as written. \
Keep the placeholders [email] and [phone] as they are.";

const REDUCE_INSTRUCTIONS_JA: &str = "あなたは、当社のチームと顧客企業1社とのビジネスチャットについて、\
1つの期間を順に区切った部分要約をまとめ、1つの要約にします。読み手は、これを確認して手直しする同僚です。\
日本語で書き、重複する要点はまとめ、決定事項・依頼・期限・未回答の質問・次の対応はすべて残し、推測で補わないでください。\
見出しとその順序「### 決定事項」「### 依頼・期限」「### 未回答の質問」「### その他の注目メッセージ」は保ってください。\
後の部分で回答された質問は、未回答ではありません。\
残す要点の [#n] の引用は、書かれたとおりに残してください。[email] と [phone] の表記もそのまま残してください。";

/// What a draft's requests say, in its language.
struct Wording {
    locale: Locale,
}

impl Wording {
    fn map_instructions(&self) -> &'static str {
        match self.locale.language {
            Language::Japanese => MAP_INSTRUCTIONS_JA,
            Language::English => MAP_INSTRUCTIONS_EN,
        }
    }

    fn reduce_instructions(&self) -> &'static str {
        match self.locale.language {
            Language::Japanese => REDUCE_INSTRUCTIONS_JA,
            Language::English => REDUCE_INSTRUCTIONS_EN,
        }
    }

    /// `Company: Acme. Period: ...` / `会社：Acme。期間：...。`
    fn context(&self, transcript: &Transcript) -> String {
        let period = self
            .locale
            .period(transcript.period_start, transcript.period_end);
        match self.locale.language {
            Language::Japanese => format!("会社：{}。期間：{period}。", transcript.company),
            Language::English => format!("Company: {}. Period: {period}.", transcript.company),
        }
    }

    fn map_request(&self, part: Option<(usize, usize)>, lines: &str) -> String {
        match (self.locale.language, part) {
            (Language::Japanese, None) => {
                format!("次のメッセージを要約してください。\n\n{lines}")
            }
            (Language::Japanese, Some((i, n))) => {
                format!("全{n}部のうち第{i}部です。次のメッセージを要約してください。\n\n{lines}")
            }
            (Language::English, None) => format!("Summarize these messages.\n\n{lines}"),
            (Language::English, Some((i, n))) => {
                format!("Part {i} of {n}. Summarize these messages.\n\n{lines}")
            }
        }
    }

    fn reduce_request(&self, parts: &[String]) -> String {
        let japanese = self.locale.language == Language::Japanese;
        let intro = if japanese {
            "次の部分要約を、順にまとめて1つにしてください。"
        } else {
            "Combine these partial summaries, in order, into one."
        };
        let parts: Vec<String> = parts
            .iter()
            .enumerate()
            .map(|(i, p)| {
                if japanese {
                    format!("### 第{}部\n{p}", i + 1)
                } else {
                    format!("### Part {}\n{p}", i + 1)
                }
            })
            .collect();
        format!("{intro}\n\n{}", parts.join("\n\n"))
    }
}

#[async_trait]
impl Summarizer for ChatModel {
    fn model(&self) -> &str {
        &self.settings.model
    }

    async fn summarize(
        &self,
        transcript: &Transcript,
        checkpoint: &dyn Checkpoint,
    ) -> Result<Summary, SummarizeError> {
        let mut usage = TokenUsage::default();
        let locale = self.settings.style.locale(transcript.texts());
        let wording = Wording { locale };
        if transcript.is_empty() {
            return Ok(Summary {
                content: locale.no_messages(
                    &transcript.company,
                    transcript.period_start,
                    transcript.period_end,
                ),
                source_links: Vec::new(),
                token_usage: Some(usage),
                chunks: 0,
            });
        }
        let lines: Vec<(&str, &Line)> = transcript
            .rooms
            .iter()
            .flat_map(|room| room.lines.iter().map(move |l| (room.name.as_str(), l)))
            .collect();
        let budget = self.chunk_budget(wording.map_instructions());
        let rendered: Vec<String> = lines
            .iter()
            .enumerate()
            .map(|(i, (room, line))| {
                let text = line.text.replace('\n', " ⏎ ");
                fit(
                    &format!(
                        "[#{}] {} {} / {}: {}",
                        i + 1,
                        line.send_time
                            .with_timezone(&locale.time_zone)
                            .format("%Y-%m-%d %H:%M"),
                        room,
                        line.account_name,
                        text
                    ),
                    budget,
                )
            })
            .collect();
        let chunks = pack(&rendered, budget, 1);
        let context = wording.context(transcript);
        let mut partials = Vec::with_capacity(chunks.len());
        for (i, chunk) in chunks.iter().enumerate() {
            if checkpoint.canceled().await? {
                return Err(SummarizeError::Canceled);
            }
            let part = (chunks.len() > 1).then_some((i + 1, chunks.len()));
            let user = format!(
                "{context}\n{}",
                wording.map_request(part, &chunk.join("\n"))
            );
            partials.push(
                self.complete(
                    wording.map_instructions(),
                    &user,
                    checkpoint.deadline(),
                    &mut usage,
                )
                .await?,
            );
        }
        let reduce_budget = self.chunk_budget(wording.reduce_instructions());
        let mut rounds = 0;
        while partials.len() > 1 {
            rounds += 1;
            if rounds > 8 {
                return Err(SummarizeError::Fail(ErrorInfo::new(
                    "SummaryTooLong",
                    "the partial summaries did not combine within 8 rounds; raise SUMMARY_CONTEXT_TOKENS",
                )));
            }
            let groups = pack(&partials, reduce_budget, 2);
            let mut next = Vec::with_capacity(groups.len());
            for group in groups {
                if group.len() == 1 {
                    next.push(group[0].clone());
                    continue;
                }
                if checkpoint.canceled().await? {
                    return Err(SummarizeError::Canceled);
                }
                let user = format!("{context}\n{}", wording.reduce_request(&group));
                next.push(
                    self.complete(
                        wording.reduce_instructions(),
                        &user,
                        checkpoint.deadline(),
                        &mut usage,
                    )
                    .await?,
                );
            }
            partials = next;
        }
        let summary = partials.pop().unwrap_or_default();
        let (body, source_links) = resolve_citations(&summary, &lines);
        let mut content = format!(
            "{}\n{}\n",
            locale.heading(
                &transcript.company,
                transcript.period_start,
                transcript.period_end
            ),
            body.trim()
        );
        if !source_links.is_empty() {
            content.push_str(&format!("\n{}\n", locale.sources()));
            for (i, link) in source_links.iter().enumerate() {
                content.push_str(&format!("[{}] {}\n", i + 1, link.url));
            }
        }
        Ok(Summary {
            content,
            source_links,
            token_usage: Some(usage),
            chunks: chunks.len(),
        })
    }
}

/// Consecutive groups of `items` whose estimated tokens fit `budget`, each of at least
/// `min_per_group` items (when there are that many left).
fn pack(items: &[String], budget: usize, min_per_group: usize) -> Vec<Vec<String>> {
    let mut groups: Vec<Vec<String>> = Vec::new();
    let mut current: Vec<String> = Vec::new();
    let mut used = 0;
    for item in items {
        let cost = estimate_tokens(item) + 1;
        if !current.is_empty() && used + cost > budget && current.len() >= min_per_group {
            groups.push(std::mem::take(&mut current));
            used = 0;
        }
        used += cost;
        current.push(item.clone());
    }
    if !current.is_empty() {
        // A last group too small to combine joins the one before it.
        if current.len() < min_per_group
            && let Some(last) = groups.last_mut()
        {
            last.extend(current);
        } else {
            groups.push(current);
        }
    }
    groups
}

static CITATION: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\[#\d+(?:\s*,\s*#?\d+)*\]").expect("a valid pattern"));

/// Renumbers the `[#n]` citations of `text` by first use and returns their links.
fn resolve_citations(text: &str, lines: &[(&str, &Line)]) -> (String, Vec<SourceLink>) {
    let mut order: Vec<usize> = Vec::new();
    let out = CITATION.replace_all(text, |caps: &regex_lite::Captures<'_>| {
        let numbers: Vec<String> = caps[0]
            .trim_matches(['[', ']'])
            .split(',')
            .filter_map(|n| n.trim().trim_start_matches('#').parse::<usize>().ok())
            .filter(|n| (1..=lines.len()).contains(n))
            .map(|n| {
                let position = match order.iter().position(|o| *o == n) {
                    Some(p) => p,
                    None => {
                        order.push(n);
                        order.len() - 1
                    }
                };
                format!("[{}]", position + 1)
            })
            .collect();
        numbers.concat()
    });
    let links = order.iter().map(|n| lines[n - 1].1.link()).collect();
    (out.into_owned(), links)
}

#[cfg(test)]
mod tests {
    use chrono::DateTime;

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

    fn line(id: &str) -> Line {
        Line {
            room_id: 7,
            message_id: id.into(),
            account_id: 1,
            account_name: "a".into(),
            send_time: DateTime::from_timestamp(0, 0).unwrap(),
            text: "t".into(),
            mentions: 0,
            reply: false,
            answers: Vec::new(),
        }
    }

    #[test]
    fn citations_are_renumbered_by_first_use_and_unknown_ones_dropped() {
        let (l1, l2, l3) = (line("100"), line("200"), line("300"));
        let lines = vec![("r", &l1), ("r", &l2), ("r", &l3)];
        let (text, links) = resolve_citations(
            "- 決定事項 [#3]\n- Task [#1, #3] and [#9]\n- more [#2][#1]",
            &lines,
        );
        assert_eq!(text, "- 決定事項 [1]\n- Task [2][1] and \n- more [3][2]");
        let urls: Vec<_> = links.iter().map(|l| l.url.as_str()).collect();
        assert_eq!(
            urls,
            [
                "https://www.chatwork.com/#!rid7-300",
                "https://www.chatwork.com/#!rid7-100",
                "https://www.chatwork.com/#!rid7-200",
            ]
        );
    }

    #[test]
    fn items_are_packed_to_fit_the_budget() {
        let items: Vec<String> = (0..10).map(|_| "あ".repeat(30)).collect();
        let groups = pack(&items, 100, 1);
        assert_eq!(groups.len(), 4, "three of 31 tokens fit in 100");
        assert_eq!(groups.iter().map(Vec::len).sum::<usize>(), 10);
        // Combining always makes progress: at least two per group.
        let groups = pack(&items, 10, 2);
        assert!(groups.iter().all(|g| g.len() >= 2));
        assert_eq!(groups.len(), 5);
    }

    #[test]
    fn tokens_are_estimated_and_long_lines_cut() {
        assert_eq!(estimate_tokens("abcd"), 1);
        assert_eq!(estimate_tokens("abcde"), 2);
        assert_eq!(estimate_tokens("日本語"), 3);
        let cut = fit(&"x".repeat(1000), 50);
        assert!(estimate_tokens(&cut) <= 50, "{}", estimate_tokens(&cut));
        assert!(cut.ends_with('…'));
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
        let model = ChatModel::new(settings.clone()).unwrap();
        assert!(!format!("{model:?}").contains("sk-top-secret"));
        assert!(!format!("{settings:?}").contains("sk-top-secret"));
        assert_eq!(model.redact("bad key sk-top-secret"), "bad key [redacted]");
    }
}
