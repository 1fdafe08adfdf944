//! The HTTP client: requests, retries, waiting for the shared budget, accounting.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use reqwest::header::HeaderValue;
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use sqlx::PgPool;
use tokio::time::Instant;
use url::Url;

use super::ChatworkConfig;
use super::breaker::{Admission, BreakerSettings, OutageBreaker};
use super::budget::{BudgetSettings, Grant, RateBudget, RateHeaders, RecordArgs, Reservation};
use super::error::{self, ChatworkError, clip};
use super::meter::RequestMeter;
use super::models::{Message, Room, RoomDetail};
use crate::retry::{Backoff, Retries};

/// How the client talks to Chatwork.
#[derive(Debug, Clone)]
pub struct ClientSettings {
    /// The API token (sent only in the `X-ChatWorkToken` header).
    pub token: SecretString,
    /// `https://api.chatwork.com/v2` or a fake's.
    pub base_url: Url,
    /// The longest one request may take, body included.
    pub request_timeout: Duration,
    /// Attempts per call for 5xx, network errors and timeouts (the first included).
    /// Waiting out a rate limit does not use attempts.
    pub max_attempts: u32,
    /// No retry starts later than this after the call's first attempt.
    pub retry_max_elapsed: Duration,
    /// The first retry's backoff; each next one doubles, up to `backoff_max`, and each
    /// is jittered down to between half and all of it.
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    /// Safety margin added to Chatwork's reset time (see [`budget`](super::budget)).
    pub reset_margin: Duration,
    /// The rate window assumed before Chatwork reports one (Chatwork's is 5 minutes).
    pub assumed_window: Duration,
    /// When Chatwork counts as down, and how often it is probed then (see
    /// [`breaker`](super::breaker)).
    pub breaker: BreakerSettings,
}

impl ClientSettings {
    /// The margin added to Chatwork's reset time unless configured otherwise.
    pub const DEFAULT_RESET_MARGIN: Duration = Duration::from_secs(1);

    /// How a call retries 5xx, network errors and timeouts.
    pub fn backoff(&self) -> Backoff {
        Backoff::new(self.backoff_initial, self.backoff_max)
            .with_max_attempts(self.max_attempts)
            .with_max_elapsed(self.retry_max_elapsed)
    }

    /// The defaults: 10 s per request, 4 attempts within 30 s, backoff from 250 ms to
    /// 4 s, a reset margin of 1 s, a 5-minute window.
    pub fn new(token: SecretString, base_url: Url) -> Self {
        Self {
            token,
            base_url,
            request_timeout: Duration::from_secs(10),
            max_attempts: 4,
            retry_max_elapsed: Duration::from_secs(30),
            backoff_initial: Duration::from_millis(250),
            backoff_max: Duration::from_secs(4),
            reset_margin: Self::DEFAULT_RESET_MARGIN,
            assumed_window: Duration::from_secs(300),
            breaker: BreakerSettings::default(),
        }
    }

    /// The settings of `config` (`CHATWORK_*` variables) with `token`, which comes from
    /// the environment locally and from Secrets Manager in AWS.
    pub fn from_config(config: &ChatworkConfig, token: SecretString) -> Self {
        Self {
            request_timeout: config.request_timeout,
            max_attempts: config.max_attempts,
            retry_max_elapsed: config.retry_max_elapsed,
            reset_margin: config.rate_reset_margin,
            ..Self::new(token, config.base_url.clone())
        }
    }
}

/// The Chatwork API client. Build one per process and share it: clones are cheap and
/// share the connection pool and the token's rate budget.
///
/// Every call takes the caller's `deadline` (a Lambda's remaining time less a margin):
/// waits for the budget, for a 429's reset or between retries never pass it.
#[derive(Clone)]
pub struct ChatworkClient {
    inner: Arc<Inner>,
    meters: Vec<RequestMeter>,
}

struct Inner {
    http: reqwest::Client,
    /// The base URL without a trailing slash.
    base: String,
    token_header: HeaderValue,
    token: SecretString,
    budget: RateBudget,
    breaker: OutageBreaker,
    settings: ClientSettings,
}

impl std::fmt::Debug for ChatworkClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatworkClient")
            .field("base_url", &self.inner.base)
            .field("meters", &self.meters.len())
            .finish_non_exhaustive()
    }
}

/// One attempt's answer.
struct Answer {
    status: u16,
    body: Vec<u8>,
    limitation: Option<String>,
}

/// Chatwork's `chatwork-message-limitation` response header: `true` when the account's
/// plan limits the messages it may read (the free plan: the latest 5,000 messages of the
/// last 40 days), absent otherwise. `chatwork-message-limitation-summary` describes the
/// limit; we keep the summary (or `true` without one), clipped to 200 characters.
pub const LIMITATION_HEADER: &str = "chatwork-message-limitation";
/// See [`LIMITATION_HEADER`].
pub const LIMITATION_SUMMARY_HEADER: &str = "chatwork-message-limitation-summary";

/// A list Chatwork answered, with the plan's message limitation when the response
/// carried one.
#[derive(Debug, Clone)]
pub struct Listed<T> {
    pub items: Vec<T>,
    pub limitation: Option<String>,
}

impl ChatworkClient {
    /// A client for `settings` whose rate budget lives in `pool`'s database.
    pub fn new(settings: ClientSettings, pool: PgPool) -> Result<Self, ChatworkError> {
        let setup = |message: String| ChatworkError::Setup { message };
        let mut token_header = HeaderValue::from_str(settings.token.expose_secret())
            .map_err(|_| setup("the token is not a valid HTTP header value".into()))?;
        // Printed as "Sensitive" by every Debug, and kept out of HPACK tables.
        token_header.set_sensitive(true);
        let http = reqwest::Client::builder()
            // Compiled-in roots: no certificate files read at cold start (see `tls`).
            .tls_backend_preconfigured(super::tls::client_config().map_err(setup)?)
            .user_agent(concat!("cwsync/", env!("CARGO_PKG_VERSION")))
            // A redirect would carry the token header to wherever it points.
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(settings.request_timeout.min(Duration::from_secs(5)))
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| setup(clip(&e.without_url().to_string(), 200)))?;
        let budget = RateBudget::new(
            pool.clone(),
            &settings.token,
            BudgetSettings {
                lease: settings.request_timeout + Duration::from_secs(1),
                assumed_window: settings.assumed_window,
                reset_margin: settings.reset_margin,
            },
        );
        let breaker = OutageBreaker::new(pool, &settings.token, settings.breaker);
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                base: settings.base_url.as_str().trim_end_matches('/').to_owned(),
                token_header,
                token: settings.token.clone(),
                budget,
                breaker,
                settings,
            }),
            meters: Vec::new(),
        })
    }

    /// A client for the `CHATWORK_*` settings of `config`, whose token must be set (the
    /// consumer functions read it from the environment or Secrets Manager first).
    pub fn from_config(config: &ChatworkConfig, pool: PgPool) -> Result<Self, ChatworkError> {
        let token = config.token.clone().ok_or_else(|| ChatworkError::Setup {
            message: "no Chatwork API token (CHATWORK_API_TOKEN)".into(),
        })?;
        Self::new(ClientSettings::from_config(config, token), pool)
    }

    /// A clone that also counts its own requests into a new [`RequestMeter`]: a handler
    /// takes one per job and reports what the job cost, however many handlers share the
    /// client. Meters stack: a clone of a metered client counts into both.
    pub fn metered(&self) -> (ChatworkClient, RequestMeter) {
        let meter = RequestMeter::default();
        let mut client = self.clone();
        client.meters.push(meter.clone());
        (client, meter)
    }

    /// The token's shared budget.
    pub fn budget(&self) -> &RateBudget {
        &self.inner.budget
    }

    /// A reservation of this client's budget that a statement of the caller took
    /// (`cwsync_budget_reserve` returned `window_id`), for
    /// [`list_messages_prepaid`](Self::list_messages_prepaid); given back if dropped
    /// unused.
    pub(crate) fn prepaid(&self, window_id: i64) -> GrantGuard {
        GrantGuard::new(Grant::taken(window_id), self.budget())
    }

    /// The token's outage breaker (shared with every process using the token).
    pub fn breaker(&self) -> &OutageBreaker {
        &self.inner.breaker
    }

    /// `GET /rooms`: every room of the token's account.
    pub async fn list_rooms(&self, deadline: Instant) -> Result<Vec<Room>, ChatworkError> {
        Ok(self.list_rooms_listed(deadline).await?.items)
    }

    /// `GET /rooms`, with the plan's message limitation when Chatwork reported one.
    pub async fn list_rooms_listed(
        &self,
        deadline: Instant,
    ) -> Result<Listed<Room>, ChatworkError> {
        let answer = self.get("/rooms", None, deadline).await?;
        let limitation = answer.limitation.clone();
        let items = self.decode_list("GET /rooms", answer)?;
        Ok(Listed { items, limitation })
    }

    /// `GET /rooms/{room_id}`: one room with its description.
    pub async fn get_room(
        &self,
        room_id: i64,
        deadline: Instant,
    ) -> Result<RoomDetail, ChatworkError> {
        let path = format!("/rooms/{room_id}");
        let answer = self.get(&path, None, deadline).await?;
        self.decode(&format!("GET {path}"), &answer.body)
    }

    /// `GET /rooms/{room_id}/messages`: without `force`, the messages this token has not
    /// fetched yet (at most 100); with `force`, the latest 100. Nothing new (204) is an
    /// empty list.
    pub async fn list_messages(
        &self,
        room_id: i64,
        force: bool,
        deadline: Instant,
    ) -> Result<Vec<Message>, ChatworkError> {
        Ok(self
            .list_messages_listed(room_id, force, deadline)
            .await?
            .items)
    }

    /// [`list_messages`](Self::list_messages), with the plan's message limitation when
    /// Chatwork reported one.
    pub async fn list_messages_listed(
        &self,
        room_id: i64,
        force: bool,
        deadline: Instant,
    ) -> Result<Listed<Message>, ChatworkError> {
        let path = format!("/rooms/{room_id}/messages");
        let query = force.then_some(("force", "1"));
        let answer = self.get(&path, query, deadline).await?;
        let endpoint = format!("GET {path}{}", if force { "?force=1" } else { "" });
        let limitation = answer.limitation.clone();
        let items = self.decode_list(&endpoint, answer)?;
        Ok(Listed { items, limitation })
    }

    /// [`list_messages_listed`](Self::list_messages_listed), whose first attempt uses
    /// `prepaid` when given (a reservation the caller's statement took ahead) and whose
    /// 2xx answer is recorded by the caller: the [`DeferredRecord`] it returns.
    pub(crate) async fn list_messages_prepaid(
        &self,
        room_id: i64,
        force: bool,
        deadline: Instant,
        prepaid: Option<GrantGuard>,
    ) -> Result<(Listed<Message>, Option<DeferredRecord>), ChatworkError> {
        let path = format!("/rooms/{room_id}/messages");
        let query = force.then_some(("force", "1"));
        let (answer, deferred) = self.call(&path, query, deadline, prepaid, true).await?;
        let endpoint = format!("GET {path}{}", if force { "?force=1" } else { "" });
        let limitation = answer.limitation.clone();
        match self.decode_list(&endpoint, answer) {
            Ok(items) => Ok((Listed { items, limitation }, deferred)),
            Err(e) => {
                if let Some(deferred) = deferred {
                    deferred.finish().await;
                }
                Err(e)
            }
        }
    }

    fn decode_list<T: DeserializeOwned>(
        &self,
        endpoint: &str,
        answer: Answer,
    ) -> Result<Vec<T>, ChatworkError> {
        if answer.status == 204 || answer.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Vec::new());
        }
        self.decode(endpoint, &answer.body)
    }

    fn decode<T: DeserializeOwned>(&self, endpoint: &str, body: &[u8]) -> Result<T, ChatworkError> {
        serde_json::from_slice(body).map_err(|e| {
            let secret = self.inner.token.expose_secret();
            ChatworkError::Decode {
                endpoint: endpoint.to_owned(),
                message: clip(&error::scrub(&e.to_string(), secret), 200),
                body_excerpt: error::excerpt(body, secret),
            }
        })
    }

    /// One call: budget, send, record, retry. Returns a 2xx answer or the error.
    async fn get(
        &self,
        path: &str,
        query: Option<(&str, &str)>,
        deadline: Instant,
    ) -> Result<Answer, ChatworkError> {
        let (answer, deferred) = self.call(path, query, deadline, None, false).await?;
        debug_assert!(deferred.is_none());
        Ok(answer)
    }

    /// [`get`](Self::get), whose first attempt may use `prepaid` (a reservation a
    /// statement of the caller took) instead of reserving, and which with `defer`
    /// leaves the record of a 2xx answer to the caller (to fold into a statement it runs
    /// anyway), as a [`DeferredRecord`].
    async fn call(
        &self,
        path: &str,
        query: Option<(&str, &str)>,
        deadline: Instant,
        mut prepaid: Option<GrantGuard>,
        defer: bool,
    ) -> Result<(Answer, Option<DeferredRecord>), ChatworkError> {
        let settings = &self.inner.settings;
        let shown = match query {
            Some((k, v)) => format!("{path}?{k}={v}"),
            None => path.to_owned(),
        };
        let endpoint = format!("GET {shown}");
        let url = format!("{}{path}", self.inner.base);
        let mut attempts = 0u32;
        let mut retries = settings.backoff().start();
        // A run of 429s without a reset to wait for backs off on a schedule of its own.
        let mut rate_limited: Option<Retries> = None;
        // After a 429: no request before its reported reset.
        let mut not_before: Option<Instant> = None;
        loop {
            // A Chatwork that is down gets one probe per interval from all processes
            // together; everything else fails fast, sending nothing.
            let probe = match self.inner.breaker.admit().await {
                Ok(Admission::Send { probe }) => probe,
                Ok(Admission::Open { until }) => {
                    metrics::counter!("chatwork_unavailable").increment(1);
                    return Err(ChatworkError::Unavailable { until });
                }
                Err(e) => {
                    // The breaker's database trouble never keeps a request back.
                    tracing::warn!(error = %e, "could not read the Chatwork outage breaker");
                    false
                }
            };
            let mut grant = match prepaid.take() {
                Some(grant) => grant,
                None => GrantGuard::new(
                    self.acquire(&endpoint, deadline, not_before.take()).await?,
                    self.budget(),
                ),
            };
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                grant.finish(None).await;
                return Err(ChatworkError::Deadline { endpoint });
            }
            let timeout = settings.request_timeout.min(left);
            attempts += 1;
            let sent_at = Instant::now();
            grant.sending();
            let (rate, outcome) = self.attempt(&url, query, timeout).await;
            let elapsed_ms = sent_at.elapsed().as_millis() as u64;
            let deferred = match &outcome {
                Ok(answer) if defer && (200..300).contains(&answer.status) => {
                    Some(grant.defer(rate))
                }
                _ => {
                    grant.finish(rate).await;
                    None
                }
            };
            let down = match &outcome {
                Ok(answer) => answer.status >= 500,
                Err(_) => true,
            };
            let opened = self.breaker_outcome(down, probe).await;

            let failure = match outcome {
                Ok(answer) => {
                    self.meter(|m| m.answered(answer.status));
                    count_request(status_label(answer.status));
                    tracing::debug!(
                        method = "GET",
                        path = %shown,
                        status = answer.status,
                        attempt = attempts,
                        elapsed_ms,
                        "chatwork request"
                    );
                    if (200..300).contains(&answer.status) {
                        return Ok((answer, deferred));
                    }
                    if answer.status == 429 {
                        // Not a failed attempt: Chatwork says the window is spent (the
                        // budget now holds it spent until the reported reset), so the
                        // next attempt waits for that reset, or the call gives up at
                        // once when it lies past the deadline. Only a 429 without a
                        // reset to wait for backs off on its own.
                        attempts -= 1;
                        let pause = match rate {
                            Some(rate) => rate.reset_in() + settings.reset_margin,
                            None => rate_limited
                                .get_or_insert_with(|| {
                                    Backoff::new(settings.backoff_initial, settings.backoff_max)
                                        .start()
                                })
                                .next_delay()
                                .unwrap_or(settings.backoff_max),
                        };
                        tracing::warn!(
                            path = %shown,
                            reset = rate.map(|r| r.reset),
                            wait_ms = pause.as_millis() as u64,
                            "Chatwork answered 429; waiting for the window to reset"
                        );
                        if Instant::now() + pause > deadline {
                            return Err(ChatworkError::RateLimited {
                                until: Utc::now() + pause,
                            });
                        }
                        not_before = Some(Instant::now() + pause);
                        continue;
                    }
                    let secret = self.inner.token.expose_secret();
                    ChatworkError::Status {
                        status: answer.status,
                        endpoint: endpoint.clone(),
                        errors: error::chatwork_errors(&answer.body, secret),
                        body_excerpt: error::excerpt(&answer.body, secret),
                    }
                }
                Err(e) if e.is_timeout() => {
                    self.meter(RequestMeter::timed_out);
                    count_request("timeout".into());
                    tracing::debug!(
                        method = "GET",
                        path = %shown,
                        attempt = attempts,
                        elapsed_ms,
                        error = "timeout",
                        "chatwork request"
                    );
                    ChatworkError::Timeout {
                        endpoint: endpoint.clone(),
                        after: timeout,
                        attempts,
                    }
                }
                Err(e) => {
                    self.meter(RequestMeter::failed);
                    count_request("network".into());
                    let message = clip(
                        &error::scrub(
                            &crate::text::error_chain(&e.without_url()),
                            self.inner.token.expose_secret(),
                        ),
                        200,
                    );
                    tracing::debug!(
                        method = "GET",
                        path = %shown,
                        attempt = attempts,
                        elapsed_ms,
                        error = %message,
                        "chatwork request"
                    );
                    ChatworkError::Network {
                        endpoint: endpoint.clone(),
                        message,
                        attempts,
                    }
                }
            };
            rate_limited = None;
            if let Some(until) = opened {
                tracing::warn!(
                    path = %shown,
                    error = %failure,
                    until = %until,
                    "Chatwork looks down: the outage breaker is open"
                );
                metrics::counter!("chatwork_unavailable").increment(1);
                return Err(ChatworkError::Unavailable { until });
            }
            if !failure.is_retryable() {
                return Err(failure);
            }
            let Ok(pause) = retries.pause_before_next(deadline) else {
                return Err(failure);
            };
            tracing::info!(
                path = %shown,
                attempt = attempts,
                pause_ms = pause.as_millis() as u64,
                error = %failure,
                "retrying a Chatwork request"
            );
            tokio::time::sleep(pause).await;
        }
    }

    /// Sends one request; returns the rate headers if an answer came, and the answer.
    async fn attempt(
        &self,
        url: &str,
        query: Option<(&str, &str)>,
        timeout: Duration,
    ) -> (Option<RateHeaders>, Result<Answer, reqwest::Error>) {
        let mut request = self
            .inner
            .http
            .get(url)
            .header("X-ChatWorkToken", self.inner.token_header.clone())
            .timeout(timeout);
        if let Some(pair) = query {
            request = request.query(&[pair]);
        }
        let response = match request.send().await {
            Ok(response) => response,
            Err(e) => return (None, Err(e)),
        };
        let status = response.status().as_u16();
        let rate = RateHeaders::from_headers(response.headers()).map(|r| r.answered_with(status));
        let headers = response.headers();
        let limitation = headers.get(LIMITATION_HEADER).map(|flag| {
            let shown = headers.get(LIMITATION_SUMMARY_HEADER).unwrap_or(flag);
            clip(String::from_utf8_lossy(shown.as_bytes()).trim(), 200)
        });
        let body = response.bytes().await.map(|b| b.to_vec());
        (
            rate,
            body.map(|body| Answer {
                status,
                body,
                limitation,
            }),
        )
    }

    /// Tells the outage breaker how an attempt went (`down`: a 5xx, a timeout or no
    /// connection); returns when the next probe may go out if the breaker is open.
    async fn breaker_outcome(&self, down: bool, probe: bool) -> Option<chrono::DateTime<Utc>> {
        let breaker = &self.inner.breaker;
        if down {
            match breaker.failed().await {
                Ok(open) => open,
                Err(e) => {
                    tracing::warn!(error = %e, probe, "could not count a Chatwork failure in the outage breaker");
                    None
                }
            }
        } else {
            if let Err(e) = breaker.succeeded().await {
                tracing::warn!(error = %e, "could not close the Chatwork outage breaker");
            }
            None
        }
    }

    /// Waits for a unit of the shared budget, never past `deadline`, and not before
    /// `not_before` (a 429's reset) either.
    async fn acquire(
        &self,
        endpoint: &str,
        deadline: Instant,
        not_before: Option<Instant>,
    ) -> Result<Grant, ChatworkError> {
        let mut waited = Duration::ZERO;
        let mut announced = false;
        if let Some(at) = not_before {
            let pause = at.saturating_duration_since(Instant::now());
            tokio::time::sleep(pause).await;
            waited += pause;
        }
        let outcome = loop {
            let reservation =
                self.budget()
                    .try_reserve()
                    .await
                    .map_err(|e| ChatworkError::Budget {
                        message: clip(&e.to_string(), 200),
                    });
            match reservation {
                Err(e) => break Err(e),
                Ok(Reservation::Granted(grant)) => break Ok(grant),
                Ok(Reservation::Exhausted { wait, unconfirmed }) => {
                    let now = Instant::now();
                    // An unconfirmed window (a probe in flight) may open any moment: poll
                    // it until the deadline. A confirmed one opens at its reset: give up
                    // now if that is past the deadline.
                    if now >= deadline || (!unconfirmed && now + wait > deadline) {
                        let until = Utc::now() + wait;
                        tracing::info!(
                            endpoint,
                            until = %until,
                            "the Chatwork rate budget is spent past the caller's deadline"
                        );
                        break Err(ChatworkError::RateLimited { until });
                    }
                    if !announced && !unconfirmed {
                        announced = true;
                        tracing::info!(
                            endpoint,
                            wait_ms = wait.as_millis() as u64,
                            "waiting for the shared Chatwork rate budget"
                        );
                    }
                    // Wake up now and then to notice a window that opens early (a
                    // response reported Chatwork's reset), with a little jitter so that
                    // waiting processes do not arrive together.
                    let cap = if unconfirmed {
                        Duration::from_millis(100)
                    } else {
                        Duration::from_secs(2)
                    };
                    let jitter = Duration::from_millis(fastrand::u64(0..20));
                    let nap = (wait.min(cap) + jitter).min(deadline - now);
                    tokio::time::sleep(nap).await;
                    waited += nap;
                }
            }
        };
        if !waited.is_zero() {
            self.meter(|m| m.waited(1, waited));
            count_wait(waited);
        }
        outcome
    }

    fn meter(&self, f: impl Fn(&RequestMeter)) {
        for meter in &self.meters {
            f(meter);
        }
    }
}

/// A reservation on its way to being recorded. If the call is dropped mid-request (the
/// caller gave up), the reservation is still ended, from a task of its own; one whose
/// request was never sent is given back.
pub(crate) struct GrantGuard {
    grant: Option<Grant>,
    budget: RateBudget,
    sent: bool,
}

impl GrantGuard {
    fn new(grant: Grant, budget: &RateBudget) -> Self {
        Self {
            grant: Some(grant),
            budget: budget.clone(),
            sent: false,
        }
    }

    /// Gives back a reservation whose request was never sent.
    pub(crate) async fn release(mut self) {
        if let Some(grant) = self.grant.take()
            && let Err(e) = self.budget.release(grant).await
        {
            tracing::warn!(error = %e, "could not give back an unused Chatwork rate reservation");
        }
    }

    /// The request is going out: from now on the unit is spent.
    fn sending(&mut self) {
        self.sent = true;
    }

    /// Leaves the record of the answer to the caller.
    fn defer(mut self, rate: Option<RateHeaders>) -> DeferredRecord {
        DeferredRecord {
            pending: self.grant.take().map(|grant| (grant, rate)),
            budget: self.budget.clone(),
        }
    }

    async fn finish(mut self, rate: Option<RateHeaders>) {
        if let Some(grant) = self.grant.take()
            && let Err(e) = self.budget.record(grant, rate).await
        {
            // The reservation stays counted as in flight until the window rolls over:
            // the budget errs on the safe side.
            tracing::warn!(error = %e, "could not record a Chatwork response in the rate budget");
        }
    }
}

impl Drop for GrantGuard {
    fn drop(&mut self) {
        if let Some(grant) = self.grant.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            let budget = self.budget.clone();
            let sent = self.sent;
            runtime.spawn(async move {
                let _ = if sent {
                    budget.record(grant, None).await
                } else {
                    budget.release(grant).await
                };
            });
        }
    }
}

/// The record of a 2xx answer that the caller folds into a statement of its own
/// ([`RecordArgs`] for `cwsync_budget_record`), then marks [`recorded`](Self::recorded).
/// Dropped unrecorded (that statement failed or never ran), it records itself from a
/// task of its own, as [`GrantGuard`] does.
#[must_use = "a deferred record must be recorded"]
pub(crate) struct DeferredRecord {
    pending: Option<(Grant, Option<RateHeaders>)>,
    budget: RateBudget,
}

impl std::fmt::Debug for DeferredRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeferredRecord")
            .field("pending", &self.pending.is_some())
            .finish_non_exhaustive()
    }
}

impl DeferredRecord {
    /// What the caller's statement passes to `cwsync_budget_record`.
    pub(crate) fn args(&self) -> Option<RecordArgs> {
        let (grant, rate) = self.pending.as_ref()?;
        Some(self.budget.record_args(grant, *rate, true))
    }

    /// The caller's statement recorded it.
    pub(crate) fn recorded(mut self) {
        self.pending = None;
    }

    /// Records it with a statement of its own.
    pub(crate) async fn finish(mut self) {
        if let Some((grant, rate)) = self.pending.take()
            && let Err(e) = self.budget.record(grant, rate).await
        {
            tracing::warn!(error = %e, "could not record a Chatwork response in the rate budget");
        }
    }
}

impl Drop for DeferredRecord {
    fn drop(&mut self) {
        if let Some((grant, rate)) = self.pending.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            let budget = self.budget.clone();
            runtime.spawn(async move {
                let _ = budget.record(grant, rate).await;
            });
        }
    }
}

/// Counts one request in the process's metrics by what became of it: the HTTP status,
/// or `timeout` / `network` when no answer came. Never a room or a path as a label:
/// labels become CloudWatch dimensions, and each distinct value a metric of its own.
fn count_request(status: std::borrow::Cow<'static, str>) {
    metrics::counter!("chatwork_requests", "status" => status).increment(1);
}

fn status_label(status: u16) -> std::borrow::Cow<'static, str> {
    match status {
        // The usual answers without an allocation each.
        200 => "200".into(),
        204 => "204".into(),
        other => other.to_string().into(),
    }
}

/// Counts one wait for the rate budget (or a 429's reset) and how long it took.
fn count_wait(waited: Duration) {
    metrics::counter!("chatwork_rate_limit_waits").increment(1);
    metrics::histogram!("chatwork_rate_limit_wait_ms").record(waited.as_secs_f64() * 1000.0);
}
