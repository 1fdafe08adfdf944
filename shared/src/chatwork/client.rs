//! The HTTP client: requests, retries, waiting for the shared budget, accounting.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use reqwest::header::HeaderValue;
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use sqlx::PgPool;
use tokio::time::Instant;
use tracing::Instrument;
use url::Url;

use super::ChatworkConfig;
use super::attempt::{Answer, Facts, NextStep, Outcome, classify};
use super::breaker::{Admission, BreakerSettings, OutageBreaker};
use super::budget::{
    BudgetSettings, Grant, RateBudget, RateHeaders, RecordArgs, Reservation, max_reset_ahead,
    token_hash,
};
use super::download::{DownloadError, Downloaded};
use super::error::{self, ChatworkError, clip};
use super::meter::RequestMeter;
use super::models::{
    FileDownload, FileInfo, Me, Member, Message, Room, RoomDetail, Storable, Task, TaskStatus,
    count_replaced,
};
use crate::retry::Backoff;

/// How the client talks to Chatwork.
#[derive(Debug, Clone)]
pub struct ClientSettings {
    /// The API token (sent only in the `X-ChatWorkToken` header), unless `connection`
    /// is set.
    pub token: SecretString,
    /// A connection's tokens, read per request from its source (which refreshes an
    /// OAuth access token before it expires), with the key of the connection's own rate
    /// budget and outage breaker. `None`: the API token above, whose budget is keyed by
    /// its hash.
    pub connection: Option<ConnectionAuth>,
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
            connection: None,
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

    /// These settings speaking as `connection` instead of an API token.
    pub fn for_connection(self, connection: ConnectionAuth) -> Self {
        Self {
            token: SecretString::from(String::new()),
            connection: Some(connection),
            ..self
        }
    }
}

/// A token a [`TokenSource`] gives for one request.
pub struct SourcedToken {
    pub secret: SecretString,
    /// An OAuth access token (`Authorization: Bearer`), else an API token
    /// (`X-ChatWorkToken`).
    pub bearer: bool,
}

/// Where a connection's client takes its token from, per request (the connection's
/// sealed row, opened only here, and refreshed when it is about to expire).
#[async_trait::async_trait]
pub trait TokenSource: Send + Sync {
    /// The token to send now.
    async fn token(&self, deadline: Instant) -> Result<SourcedToken, ChatworkError>;
    /// Chatwork answered 401 to `secret`: it must not be given out again (an OAuth
    /// connection refreshes; an API token's connection needs a person).
    async fn refused(&self, secret: &SecretString);
}

/// A connection's source of tokens and the key of its budget and breaker rows.
#[derive(Clone)]
pub struct ConnectionAuth {
    pub source: Arc<dyn TokenSource>,
    pub budget_key: [u8; 32],
}

impl std::fmt::Debug for ConnectionAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionAuth").finish_non_exhaustive()
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
    auth: Auth,
    /// The last token a source gave (scrubbed from errors as the static one is).
    last_token: std::sync::Mutex<Option<SecretString>>,
    budget: RateBudget,
    breaker: OutageBreaker,
    settings: ClientSettings,
}

/// How requests are authorized.
enum Auth {
    /// An API token, the same for every request.
    Static {
        header: HeaderValue,
        secret: SecretString,
    },
    /// A connection's token, asked for per request.
    Source(Arc<dyn TokenSource>),
}

/// The header one attempt sends, and the secret in it (to scrub from errors).
struct Sending {
    name: &'static str,
    value: HeaderValue,
    secret: SecretString,
}

/// A header value marked sensitive: printed as "Sensitive" by every Debug, and kept out
/// of HPACK tables.
fn header_of(secret: &SecretString) -> Result<HeaderValue, ChatworkError> {
    let mut value =
        HeaderValue::from_str(secret.expose_secret()).map_err(|_| ChatworkError::Setup {
            message: "the token is not a valid HTTP header value".into(),
        })?;
    value.set_sensitive(true);
    Ok(value)
}

impl std::fmt::Debug for ChatworkClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatworkClient")
            .field("base_url", &self.inner.base)
            .field("meters", &self.meters.len())
            .finish_non_exhaustive()
    }
}

/// Chatwork's `chatwork-message-limitation` response header: `true` when the account's
/// plan limits the messages it may read (the free plan: the latest 5,000 messages of the
/// last 40 days), absent otherwise. `chatwork-message-limitation-summary` describes the
/// limit; we keep the summary (or `true` without one), clipped to 200 characters.
pub const LIMITATION_HEADER: &str = "chatwork-message-limitation";
/// See [`LIMITATION_HEADER`].
pub const LIMITATION_SUMMARY_HEADER: &str = "chatwork-message-limitation-summary";

/// The most bytes read of an answer to `GET /rooms/{id}/messages`: at most 100 messages
/// (Chatwork's limit), which leaves each about 80 KiB, far more than an honest answer
/// carries. Caps keep an answer of garbage from growing memory without bound.
pub const MAX_MESSAGES_ANSWER_BYTES: usize = 8 << 20;
/// ... of `GET /rooms`: some 8,000 rooms at 2 KiB (a long name with every character
/// escaped), 40,000 of the usual size.
pub const MAX_ROOMS_ANSWER_BYTES: usize = 16 << 20;
/// ... of `GET /rooms/{id}`: one room and its description.
pub const MAX_ROOM_ANSWER_BYTES: usize = 1 << 20;
/// ... of `GET /rooms/{id}/tasks`: at most 100 tasks, each a message's worth of body at
/// most, as for messages.
pub const MAX_TASKS_ANSWER_BYTES: usize = 8 << 20;
/// ... of `GET /rooms/{id}/files`: at most 100 files' names and uploaders.
pub const MAX_FILES_ANSWER_BYTES: usize = 2 << 20;
/// ... of `GET /rooms/{id}/members`: a room of some 5,000 members at 800 bytes each.
pub const MAX_MEMBERS_ANSWER_BYTES: usize = 4 << 20;
/// ... of an error status, of which only an excerpt is kept: the rest is not read.
const MAX_ERROR_ANSWER_BYTES: usize = 64 << 10;

/// A list Chatwork answered, with the plan's message limitation when the response
/// carried one.
#[derive(Debug)]
pub struct Listed<T> {
    pub items: Vec<T>,
    pub limitation: Option<String>,
    /// The record of the answer in the rate budget, when the caller asked to fold it
    /// into a statement of its own ([`MessagesOptions::defer_record`]).
    pub(crate) deferred: Option<DeferredRecord>,
}

/// Which tasks [`ChatworkClient::list_tasks`] asks for (Chatwork's filters; all by
/// default).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TasksFilter {
    pub status: Option<TaskStatus>,
    /// The assignee.
    pub account_id: Option<i64>,
    pub assigned_by_account_id: Option<i64>,
}

/// How [`ChatworkClient::list_messages`] reads a room.
#[derive(Debug)]
pub struct MessagesOptions {
    /// Without it, the messages this token has not fetched yet (at most 100); with it,
    /// the latest 100 whatever was fetched before.
    pub force: bool,
    /// No wait of the call (budget, a 429's reset, retries) passes it.
    pub deadline: Instant,
    /// A reservation a statement of the caller took ahead, for the first attempt.
    prepaid: Option<GrantGuard>,
    /// Leave the record of a 2xx answer to the caller ([`Listed::deferred`]).
    defer_record: bool,
}

impl MessagesOptions {
    /// The unfetched messages, before `deadline`.
    pub fn new(deadline: Instant) -> Self {
        Self {
            force: false,
            deadline,
            prepaid: None,
            defer_record: false,
        }
    }

    /// With `force`, the latest 100 messages instead.
    pub fn force(self, force: bool) -> Self {
        Self { force, ..self }
    }

    /// The first attempt uses `grant` (when given) instead of reserving.
    pub(crate) fn prepaid(self, grant: Option<GrantGuard>) -> Self {
        Self {
            prepaid: grant,
            ..self
        }
    }

    /// A 2xx answer is not recorded in the rate budget by the client: the result carries
    /// its [`DeferredRecord`] for the caller's own statement.
    pub(crate) fn defer_record(self) -> Self {
        Self {
            defer_record: true,
            ..self
        }
    }
}

impl ChatworkClient {
    /// A client for `settings` whose rate budget lives in `pool`'s database.
    pub fn new(settings: ClientSettings, pool: PgPool) -> Result<Self, ChatworkError> {
        let setup = |message: String| ChatworkError::Setup { message };
        let auth = match &settings.connection {
            Some(connection) => Auth::Source(connection.source.clone()),
            None => Auth::Static {
                header: header_of(&settings.token)?,
                secret: settings.token.clone(),
            },
        };
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
        let budget_key = match &settings.connection {
            Some(connection) => connection.budget_key,
            None => token_hash(&settings.token),
        };
        let budget = RateBudget::keyed(
            pool.clone(),
            budget_key,
            BudgetSettings {
                lease: settings.request_timeout + Duration::from_secs(1),
                assumed_window: settings.assumed_window,
                reset_margin: settings.reset_margin,
            },
        );
        let breaker = OutageBreaker::keyed(pool, budget_key, settings.breaker);
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                base: settings.base_url.as_str().trim_end_matches('/').to_owned(),
                auth,
                last_token: std::sync::Mutex::new(None),
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

    /// A clone that also counts its requests into `meter` (one meter shared by the
    /// clients of several connections).
    pub fn counted_by(&self, meter: &RequestMeter) -> ChatworkClient {
        let mut client = self.clone();
        client.meters.push(meter.clone());
        client
    }

    /// How this client talks to Chatwork.
    pub fn settings(&self) -> &ClientSettings {
        &self.inner.settings
    }

    /// The token's shared budget.
    pub fn budget(&self) -> &RateBudget {
        &self.inner.budget
    }

    /// A reservation of this client's budget that a statement of the caller took
    /// (`cwsync_budget_reserve` returned `window_id`), for
    /// [`MessagesOptions::prepaid`]; given back if dropped unused.
    pub(crate) fn prepaid(&self, window_id: i64) -> GrantGuard {
        GrantGuard::new(Grant::taken(window_id), self.budget())
    }

    /// The token's outage breaker (shared with every process using the token).
    pub fn breaker(&self) -> &OutageBreaker {
        &self.inner.breaker
    }

    /// `GET /rooms`: every room of the token's account, with the plan's message
    /// limitation when Chatwork reported one.
    pub async fn list_rooms(&self, deadline: Instant) -> Result<Listed<Room>, ChatworkError> {
        let answer = self
            .get("/rooms", Vec::new(), MAX_ROOMS_ANSWER_BYTES, deadline)
            .await?;
        let limitation = answer.limitation.clone();
        let items = self.decode_list("GET /rooms", answer)?;
        Ok(Listed {
            items,
            limitation,
            deferred: None,
        })
    }

    /// `GET /me`: the account the token speaks for.
    pub async fn me(&self, deadline: Instant) -> Result<Me, ChatworkError> {
        let answer = self
            .get("/me", Vec::new(), MAX_ROOM_ANSWER_BYTES, deadline)
            .await?;
        self.decode("GET /me", &answer.body)
    }

    /// `GET /rooms/{room_id}`: one room with its description.
    pub async fn get_room(
        &self,
        room_id: i64,
        deadline: Instant,
    ) -> Result<RoomDetail, ChatworkError> {
        let path = format!("/rooms/{room_id}");
        let answer = self
            .get(&path, Vec::new(), MAX_ROOM_ANSWER_BYTES, deadline)
            .await?;
        self.decode(&format!("GET {path}"), &answer.body)
    }

    /// `GET /rooms/{room_id}/messages` as `options` say (see [`MessagesOptions`]), with
    /// the plan's message limitation when Chatwork reported one. Nothing new (204) is an
    /// empty list.
    pub async fn list_messages(
        &self,
        room_id: i64,
        options: MessagesOptions,
    ) -> Result<Listed<Message>, ChatworkError> {
        let MessagesOptions {
            force,
            deadline,
            prepaid,
            defer_record,
        } = options;
        let path = format!("/rooms/{room_id}/messages");
        let query = if force {
            vec![("force", "1".to_owned())]
        } else {
            Vec::new()
        };
        let request = Request::new(&self.inner.base, &path, query, defer_record)
            .capped(MAX_MESSAGES_ANSWER_BYTES);
        let (answer, deferred) = self.call(request, deadline, prepaid).await?;
        let endpoint = format!("GET {path}{}", if force { "?force=1" } else { "" });
        let limitation = answer.limitation.clone();
        match self.decode_list(&endpoint, answer) {
            Ok(items) => Ok(Listed {
                items,
                limitation,
                deferred,
            }),
            Err(e) => {
                if let Some(deferred) = deferred {
                    deferred.finish().await;
                }
                Err(e)
            }
        }
    }

    /// `GET /rooms/{room_id}/tasks`: at most 100 of the room's tasks (Chatwork has no
    /// paging), filtered as `filter` says. Nothing (204) is an empty list.
    pub async fn list_tasks(
        &self,
        room_id: i64,
        filter: &TasksFilter,
        deadline: Instant,
    ) -> Result<Vec<Task>, ChatworkError> {
        let path = format!("/rooms/{room_id}/tasks");
        let mut query = Vec::new();
        if let Some(status) = filter.status {
            query.push(("status", status.as_str().to_owned()));
        }
        if let Some(id) = filter.account_id {
            query.push(("account_id", id.to_string()));
        }
        if let Some(id) = filter.assigned_by_account_id {
            query.push(("assigned_by_account_id", id.to_string()));
        }
        let request =
            Request::new(&self.inner.base, &path, query, false).capped(MAX_TASKS_ANSWER_BYTES);
        let endpoint = request.endpoint.clone();
        let (answer, _) = self.call(request, deadline, None).await?;
        self.decode_list(&endpoint, answer)
    }

    /// `GET /rooms/{room_id}/files`: at most 100 of the room's files, those uploaded by
    /// `account_id` when given. Nothing (204) is an empty list.
    pub async fn list_files(
        &self,
        room_id: i64,
        account_id: Option<i64>,
        deadline: Instant,
    ) -> Result<Vec<FileInfo>, ChatworkError> {
        let path = format!("/rooms/{room_id}/files");
        let query = account_id
            .map(|id| vec![("account_id", id.to_string())])
            .unwrap_or_default();
        let request =
            Request::new(&self.inner.base, &path, query, false).capped(MAX_FILES_ANSWER_BYTES);
        let endpoint = request.endpoint.clone();
        let (answer, _) = self.call(request, deadline, None).await?;
        self.decode_list(&endpoint, answer)
    }

    /// `GET /rooms/{room_id}/files/{file_id}?create_download_url=1`: the file with a
    /// download URL that works for about 30 s (kept secret: see [`FileDownload`]). A
    /// request of the budget like any other; the download itself is not (see
    /// [`download`](Self::download)).
    pub async fn file_download_url(
        &self,
        room_id: i64,
        file_id: i64,
        deadline: Instant,
    ) -> Result<FileDownload, ChatworkError> {
        let path = format!("/rooms/{room_id}/files/{file_id}");
        let answer = self
            .get(
                &path,
                vec![("create_download_url", "1".to_owned())],
                MAX_ROOM_ANSWER_BYTES,
                deadline,
            )
            .await?;
        self.decode(&format!("GET {path}?create_download_url=1"), &answer.body)
    }

    /// `GET /rooms/{room_id}/members`: everyone in the room.
    pub async fn list_members(
        &self,
        room_id: i64,
        deadline: Instant,
    ) -> Result<Vec<Member>, ChatworkError> {
        let path = format!("/rooms/{room_id}/members");
        let answer = self
            .get(&path, Vec::new(), MAX_MEMBERS_ANSWER_BYTES, deadline)
            .await?;
        let endpoint = format!("GET {path}");
        self.decode_list(&endpoint, answer)
    }

    /// Downloads a file's content from a download URL
    /// ([`file_download_url`](Self::file_download_url)): not a request of the API, so
    /// neither the rate budget nor the outage breaker sees it, and no token goes with it.
    /// Reads at most `cap` bytes (a longer answer stops being read there:
    /// [`DownloadError::TooLarge`]); waits no longer than `deadline`. The URL is a
    /// credential while it works: it never reaches a log or an error.
    pub async fn download(
        &self,
        url: &SecretString,
        cap: u64,
        deadline: Instant,
    ) -> Result<Downloaded, DownloadError> {
        super::download::fetch(&self.inner.http, url, cap, deadline).await
    }

    fn decode_list<T: DeserializeOwned + Storable>(
        &self,
        endpoint: &str,
        answer: Answer,
    ) -> Result<Vec<T>, ChatworkError> {
        if answer.status == 204 || answer.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Vec::new());
        }
        self.decode(endpoint, &answer.body)
    }

    /// Decodes an answer and makes its text storable (the one place every answer passes).
    fn decode<T: DeserializeOwned + Storable>(
        &self,
        endpoint: &str,
        body: &[u8],
    ) -> Result<T, ChatworkError> {
        let mut decoded: T = serde_json::from_slice(body).map_err(|e| {
            let secret = self.scrubbed();
            let secret = secret.expose_secret();
            ChatworkError::Decode {
                endpoint: endpoint.to_owned(),
                message: clip(&error::scrub(&e.to_string(), secret), 200),
                body_excerpt: error::excerpt(body, secret),
            }
        })?;
        let replaced = decoded.make_storable();
        if replaced > 0 {
            tracing::warn!(
                endpoint,
                replaced,
                "Chatwork's answer holds NUL characters, which Postgres cannot store; \
                 each is stored as U+FFFD"
            );
            count_replaced("api", replaced);
        }
        Ok(decoded)
    }

    /// One call: budget, send, record, retry. Returns a 2xx answer or the error.
    async fn get(
        &self,
        path: &str,
        query: Vec<(&'static str, String)>,
        max_body: usize,
        deadline: Instant,
    ) -> Result<Answer, ChatworkError> {
        let request = Request::new(&self.inner.base, path, query, false).capped(max_body);
        let (answer, deferred) = self.call(request, deadline, None).await?;
        debug_assert!(deferred.is_none());
        Ok(answer)
    }

    /// [`get`](Self::get), whose first attempt may use `prepaid` (a reservation a
    /// statement of the caller took) instead of reserving, and which with `defer`
    /// leaves the record of a 2xx answer to the caller (to fold into a statement it runs
    /// anyway), as a [`DeferredRecord`].
    ///
    /// Each turn of the loop is one attempt: admission by the outage breaker, a unit of
    /// the budget, the request, its record; then [`classify`] says what comes next.
    async fn call(
        &self,
        request: Request,
        deadline: Instant,
        mut prepaid: Option<GrantGuard>,
    ) -> Result<(Answer, Option<DeferredRecord>), ChatworkError> {
        let settings = &self.inner.settings;
        let mut attempts = 0u32;
        let mut retries = settings.backoff().start();
        // A run of 429s without a reset to wait for backs off on a schedule of its own,
        // which any other failure ends.
        let rate_limited_backoff = Backoff::new(settings.backoff_initial, settings.backoff_max);
        let mut rate_limited = rate_limited_backoff.start();
        // After a 429: no request before its reported reset.
        let mut not_before: Option<Instant> = None;
        let mut reauthorized = false;
        loop {
            let probe = self.admit().await?;
            let grant = match prepaid.take() {
                Some(grant) => grant,
                None => GrantGuard::new(
                    self.acquire(&request.endpoint, deadline, not_before.take())
                        .await?,
                    self.budget(),
                ),
            };
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                grant.finish(None).await;
                return Err(ChatworkError::Deadline {
                    endpoint: request.endpoint,
                });
            }
            attempts += 1;
            let attempt = Try {
                number: attempts,
                timeout: settings.request_timeout.min(left),
                probe,
            };
            let token = match self.token(deadline).await {
                Ok(token) => token,
                Err(e) => {
                    grant.release().await;
                    return Err(e);
                }
            };
            let Attempted {
                outcome,
                rate,
                deferred,
                breaker_opened,
            } = self.try_once(&request, grant, attempt, &token).await;

            let now = Instant::now();
            let facts = Facts {
                now,
                wall: Utc::now(),
                deadline,
                reset_margin: settings.reset_margin,
                breaker_opened,
                retry_pause: retries.peek_pause(deadline),
                // The schedule has no limit on attempts: it never runs out.
                rate_limited_pause: rate_limited.peek_delay().unwrap_or(settings.backoff_max),
            };
            let shown = &request.shown;
            match classify(outcome, &facts) {
                NextStep::Done(answer) => return Ok((answer, deferred)),
                NextStep::WaitForReset { pause, backed_off } => {
                    // Not a failed attempt.
                    attempts -= 1;
                    if backed_off {
                        rate_limited.next_delay();
                    }
                    warn_rate_limited(shown, rate, pause);
                    not_before = Some(now + pause);
                }
                NextStep::ResetPastDeadline { pause, until } => {
                    warn_rate_limited(shown, rate, pause);
                    return Err(ChatworkError::RateLimited { until });
                }
                NextStep::BreakerOpened { until, failure } => {
                    tracing::warn!(
                        path = %shown,
                        error = %failure,
                        until = %until,
                        "Chatwork looks down: the outage breaker is open"
                    );
                    metrics::counter!("chatwork_unavailable").increment(1);
                    return Err(ChatworkError::Unavailable { until });
                }
                NextStep::Retry { pause, failure } => {
                    retries.next_delay();
                    rate_limited = rate_limited_backoff.start();
                    tracing::info!(
                        path = %shown,
                        attempt = attempts,
                        pause_ms = pause.as_millis() as u64,
                        error = %failure,
                        "retrying a Chatwork request"
                    );
                    tokio::time::sleep(pause).await;
                }
                NextStep::Fail(error) => {
                    // A connection's token Chatwork refused: once per call, its source
                    // refreshes it (or marks the connection for a person) and the call
                    // tries again with what it gives next.
                    if let (Some(401), Auth::Source(source), false) =
                        (error.status(), &self.inner.auth, reauthorized)
                    {
                        reauthorized = true;
                        attempts -= 1;
                        source.refused(&token.secret).await;
                        continue;
                    }
                    return Err(error);
                }
            }
        }
    }

    /// The token for the next attempt: the API token, or what the connection's source
    /// gives now.
    async fn token(&self, deadline: Instant) -> Result<Sending, ChatworkError> {
        match &self.inner.auth {
            Auth::Static { header, secret } => Ok(Sending {
                name: "X-ChatWorkToken",
                value: header.clone(),
                secret: secret.clone(),
            }),
            Auth::Source(source) => {
                let token = source.token(deadline).await?;
                let (name, value) = if token.bearer {
                    let value =
                        SecretString::from(format!("Bearer {}", token.secret.expose_secret()));
                    ("Authorization", header_of(&value)?)
                } else {
                    ("X-ChatWorkToken", header_of(&token.secret)?)
                };
                *self.inner.last_token.lock().expect("token") = Some(token.secret.clone());
                Ok(Sending {
                    name,
                    value,
                    secret: token.secret,
                })
            }
        }
    }

    /// The secret to scrub from what an error shows.
    fn scrubbed(&self) -> SecretString {
        match &self.inner.auth {
            Auth::Static { secret, .. } => secret.clone(),
            Auth::Source(_) => self
                .inner
                .last_token
                .lock()
                .expect("token")
                .clone()
                .unwrap_or_else(|| SecretString::from(String::new())),
        }
    }

    /// Asks the outage breaker whether a request may go out; `Ok(true)` for a probe.
    async fn admit(&self) -> Result<bool, ChatworkError> {
        // A Chatwork that is down gets one probe per interval from all processes
        // together; everything else fails fast, sending nothing.
        match self.inner.breaker.admit().await {
            Ok(Admission::Send { probe }) => Ok(probe),
            Ok(Admission::Open { until }) => {
                metrics::counter!("chatwork_unavailable").increment(1);
                Err(ChatworkError::Unavailable { until })
            }
            Err(e) => {
                // The breaker's database trouble never keeps a request back.
                tracing::warn!(error = %e, "could not read the Chatwork outage breaker");
                Ok(false)
            }
        }
    }

    /// Sends one attempt on `grant` and accounts for it: the budget records the answer
    /// (or, for a request that defers it, a 2xx's record is left to the caller), the
    /// outage breaker learns whether Chatwork is down, metrics and the log count it.
    async fn try_once(
        &self,
        request: &Request,
        mut grant: GrantGuard,
        attempt: Try,
        token: &Sending,
    ) -> Attempted {
        let sent_at = Instant::now();
        grant.sending();
        let (rate, result) = self.attempt(request, attempt.timeout, token).await;
        let elapsed_ms = sent_at.elapsed().as_millis() as u64;
        let deferred = match &result {
            Ok(answer)
                if request.defer
                    && (200..300).contains(&answer.status)
                    && answer.over_cap.is_none() =>
            {
                Some(grant.defer(rate))
            }
            _ => {
                grant.finish(rate).await;
                None
            }
        };
        let down = match &result {
            Ok(answer) => answer.status >= 500,
            Err(_) => true,
        };
        let breaker_opened = self.breaker_outcome(down, attempt.probe).await;
        Attempted {
            outcome: self.observe(result, rate, request, attempt, elapsed_ms, token),
            rate,
            deferred,
            breaker_opened,
        }
    }

    /// Counts and logs one attempt, and says what it came to, its error (if any) scrubbed
    /// of the token.
    fn observe(
        &self,
        result: Result<Answer, reqwest::Error>,
        rate: Option<RateHeaders>,
        request: &Request,
        attempt: Try,
        elapsed_ms: u64,
        token: &Sending,
    ) -> Outcome {
        let secret = token.secret.expose_secret();
        match result {
            Ok(answer) => {
                self.meter(|m| m.answered(answer.status));
                count_request(status_label(answer.status));
                tracing::debug!(
                    method = "GET",
                    path = %request.shown,
                    status = answer.status,
                    attempt = attempt.number,
                    elapsed_ms,
                    "chatwork request"
                );
                if let Some(limit) = answer.over_cap {
                    tracing::warn!(
                        path = %request.shown,
                        limit,
                        "Chatwork's answer is larger than its cap; the rest is not read"
                    );
                    metrics::counter!("chatwork_answers_too_large").increment(1);
                }
                let reset_in = rate.map(|r| r.reset_in());
                Outcome::answered(answer, reset_in, &request.endpoint, secret)
            }
            Err(e) if e.is_timeout() => {
                self.meter(RequestMeter::timed_out);
                count_request("timeout".into());
                tracing::debug!(
                    method = "GET",
                    path = %request.shown,
                    attempt = attempt.number,
                    elapsed_ms,
                    error = "timeout",
                    "chatwork request"
                );
                Outcome::Failed(ChatworkError::Timeout {
                    endpoint: request.endpoint.clone(),
                    after: attempt.timeout,
                    attempts: attempt.number,
                })
            }
            Err(e) => {
                self.meter(RequestMeter::failed);
                count_request("network".into());
                let message = clip(
                    &error::scrub(&crate::text::error_chain(&e.without_url()), secret),
                    200,
                );
                tracing::debug!(
                    method = "GET",
                    path = %request.shown,
                    attempt = attempt.number,
                    elapsed_ms,
                    error = %message,
                    "chatwork request"
                );
                Outcome::Failed(ChatworkError::Network {
                    endpoint: request.endpoint.clone(),
                    message,
                    attempts: attempt.number,
                })
            }
        }
    }

    /// Sends one request; returns the rate headers if an answer came, and the answer.
    async fn attempt(
        &self,
        request: &Request,
        timeout: Duration,
        token: &Sending,
    ) -> (Option<RateHeaders>, Result<Answer, reqwest::Error>) {
        // One span per request (logged when it closes, with its duration and the trace
        // id); the path as shown, without the token.
        let span = tracing::info_span!(
            "chatwork",
            path = %request.shown,
            status = tracing::field::Empty,
        );
        let answered = self
            .send_once(request, timeout, token)
            .instrument(span.clone())
            .await;
        if let (_, Ok(answer)) = &answered {
            span.record("status", answer.status);
        }
        answered
    }

    async fn send_once(
        &self,
        request: &Request,
        timeout: Duration,
        token: &Sending,
    ) -> (Option<RateHeaders>, Result<Answer, reqwest::Error>) {
        let mut sent = self
            .inner
            .http
            .get(&request.url)
            .header(token.name, token.value.clone())
            .timeout(timeout);
        if !request.query.is_empty() {
            sent = sent.query(&request.query);
        }
        let response = match sent.send().await {
            Ok(response) => response,
            Err(e) => return (None, Err(e)),
        };
        let status = response.status().as_u16();
        let rate = RateHeaders::from_headers(response.headers())
            .map(|r| self.bounded(r.answered_with(status), &request.shown));
        let headers = response.headers();
        let limitation = headers.get(LIMITATION_HEADER).map(|flag| {
            let shown = headers.get(LIMITATION_SUMMARY_HEADER).unwrap_or(flag);
            clip(String::from_utf8_lossy(shown.as_bytes()).trim(), 200)
        });
        let success = (200..300).contains(&status);
        let cap = if success {
            request.max_body
        } else {
            MAX_ERROR_ANSWER_BYTES
        };
        let body = read_capped(response, cap).await;
        (
            rate,
            body.map(|(body, over)| Answer {
                status,
                body,
                limitation,
                // An error's excerpt needs only its start.
                over_cap: (over && success).then_some(cap),
            }),
        )
    }

    /// `rate` with its reset no further ahead than one window allows, logged and
    /// counted when Chatwork reported one beyond (see [`RateHeaders::bounded`]).
    fn bounded(&self, rate: RateHeaders, shown: &str) -> RateHeaders {
        let (bounded, cut) = rate.bounded(max_reset_ahead(self.inner.settings.assumed_window));
        if cut {
            tracing::warn!(
                path = %shown,
                reported = rate.reset,
                date = rate.date,
                believed = bounded.reset,
                "Chatwork reported a rate reset beyond one window; believed only up to one window"
            );
            metrics::counter!("chatwork_rate_reset_capped").increment(1);
        }
        bounded
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

// By hand: the budget it holds has no Debug (it is keyed by a hash of the token).
impl std::fmt::Debug for GrantGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrantGuard")
            .field("grant", &self.grant)
            .field("sent", &self.sent)
            .finish_non_exhaustive()
    }
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

/// What a call sends, as its attempts send, log and report it.
struct Request {
    url: String,
    /// The query's pairs (none of them secret: they are logged).
    query: Vec<(&'static str, String)>,
    /// `GET /rooms/1/messages?force=1`, as errors name it.
    endpoint: String,
    /// The path and query alone, as logs show it.
    shown: String,
    /// Leave the record of a 2xx answer to the caller.
    defer: bool,
    /// The most bytes of a 2xx answer read (the endpoint's cap).
    max_body: usize,
}

impl Request {
    fn new(base: &str, path: &str, query: Vec<(&'static str, String)>, defer: bool) -> Self {
        let shown = if query.is_empty() {
            path.to_owned()
        } else {
            let pairs: Vec<String> = query.iter().map(|(k, v)| format!("{k}={v}")).collect();
            format!("{path}?{}", pairs.join("&"))
        };
        Self {
            url: format!("{base}{path}"),
            query,
            endpoint: format!("GET {shown}"),
            shown,
            defer,
            max_body: MAX_ROOM_ANSWER_BYTES,
        }
    }

    fn capped(self, max_body: usize) -> Self {
        Self { max_body, ..self }
    }
}

/// Reads `response`'s body up to `cap` bytes; `true` when there was more (then the rest
/// is not read: the connection is dropped, and only the first KiB is kept).
async fn read_capped(
    mut response: reqwest::Response,
    cap: usize,
) -> Result<(Vec<u8>, bool), reqwest::Error> {
    if response.content_length().is_some_and(|n| n > cap as u64) {
        return Ok((Vec::new(), true));
    }
    let mut body = Vec::with_capacity(response.content_length().unwrap_or(0) as usize);
    while let Some(chunk) = response.chunk().await? {
        if chunk.len() > cap - body.len() {
            body.extend_from_slice(&chunk[..(cap - body.len()).min(1024)]);
            body.truncate(1024);
            return Ok((body, true));
        }
        body.extend_from_slice(&chunk);
    }
    Ok((body, false))
}

/// One attempt of a request.
#[derive(Debug, Clone, Copy)]
struct Try {
    /// The first is 1.
    number: u32,
    /// What the request may take, body included.
    timeout: Duration,
    /// The outage breaker let it out as its probe.
    probe: bool,
}

/// An attempt, accounted for.
struct Attempted {
    outcome: Outcome,
    /// The rate headers of the answer, if one came.
    rate: Option<RateHeaders>,
    /// A 2xx's record, for a request that leaves it to the caller.
    deferred: Option<DeferredRecord>,
    /// When the attempt's failure opened the outage breaker: the next probe's time.
    breaker_opened: Option<chrono::DateTime<Utc>>,
}

/// Logs a 429 and how long the call means to wait (or would have had to).
fn warn_rate_limited(shown: &str, rate: Option<RateHeaders>, pause: Duration) {
    tracing::warn!(
        path = %shown,
        reset = rate.map(|r| r.reset),
        wait_ms = pause.as_millis() as u64,
        "Chatwork answered 429; waiting for the window to reset"
    );
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
