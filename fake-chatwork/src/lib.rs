//! A fake Chatwork API v2 server for cwsync's tests, its local runner and its benchmarks.
//!
//! It serves `GET /v2/me`, `GET /v2/rooms`, `GET /v2/rooms/{id}`,
//! `GET /v2/rooms/{id}/messages`, `GET /v2/rooms/{id}/tasks`, `GET /v2/rooms/{id}/files`,
//! `GET /v2/rooms/{id}/files/{file_id}` and `GET /v2/rooms/{id}/members` with Chatwork's
//! JSON shapes over real HTTP on a loopback port, with Chatwork's OAuth 2.0 pages beside
//! them on the same port, and behaves like the real API where cwsync depends on it:
//!
//! - Accounts ([`FakeAccount`]): every request speaks for one. The default token
//!   ([`FakeSettings::token`]) is [`FakeChatwork::DEFAULT_ACCOUNT_ID`]'s, a member of every
//!   room added without saying otherwise; [`FakeChatwork::add_account`] adds another with
//!   an API token of its own and its rooms, [`FakeChatwork::set_member`] changes who is in
//!   a room. A room is in `GET /rooms` of its members only; a non-member gets a 403 for
//!   it, a room that does not exist is a 404.
//! - The token travels in `X-ChatWorkToken`, or an OAuth access token in
//!   `Authorization: Bearer`; an unknown or missing token is a 401 (for a Bearer token an
//!   expired, revoked or unknown one, with `WWW-Authenticate: Bearer
//!   error="invalid_token"`). A grant without the scope a route needs is a 403.
//! - OAuth 2.0 as Chatwork documents it: the authorization code grant with PKCE (S256)
//!   for confidential clients ([`FakeChatwork::register_oauth_client`]); a consent page at
//!   [`FakeChatwork::oauth_authorize_url`] where a browser picks the account and allows
//!   or denies, and a token endpoint at [`FakeChatwork::oauth_token_url`] (HTTP Basic
//!   client authentication). Codes live a minute and work once, access tokens 15
//!   minutes, refresh tokens rotate on every refresh. A test expires access tokens
//!   ([`FakeChatwork::expire_access_tokens`]), revokes an account's grants as a user
//!   removing the app would ([`FakeChatwork::revoke_grants`]), and reads the token
//!   endpoint's log ([`FakeChatwork::token_requests`]). Expiry uses the real clock.
//! - Every answer to a known token carries `x-ratelimit-limit`, `x-ratelimit-remaining`
//!   and `x-ratelimit-reset` (epoch seconds). Beyond the limit the answer is a 429, which
//!   is not counted; [`FakeChatwork::rate_limited_count`] says how many were sent. The
//!   budget is the account's: its API token and all its access tokens spend one
//!   (Chatwork does not say whether it counts per token or per account; per account is
//!   the cautious reading), while a token added with [`FakeChatwork::add_token`] has one
//!   of its own. A test can change the limit and window mid-run
//!   ([`FakeChatwork::set_rate_limit`]) or spend a budget as a second program would
//!   ([`FakeChatwork::spend_rate_limit`], [`FakeChatwork::spend_rate_limit_of_account`]),
//!   to prove a client survives a wrong belief. Windows are fixed, not sliding: see
//!   [`WindowKind`] for the layouts the fake can play (Chatwork does not document its
//!   own).
//! - `force`: without it an account gets only the messages it has not fetched yet (the
//!   newest 100 of them); with `force=1` the newest 100. The read position is kept per
//!   account, like the budget (per token for a token added with `add_token`). Nothing
//!   to answer is a 204 with an empty body. Messages come oldest first.
//! - Errors are `{"errors": ["..."]}`; the token endpoint's are OAuth's
//!   `{"error", "error_description"}`.
//! - Tasks and files: at most 100 per answer (204 when none), with Chatwork's filters.
//!   The room list's `task_num` counts a room's open tasks (Chatwork does not say whether
//!   done ones count; this reading lets a reader of the list see a completion) and
//!   `file_num` its files. `create_download_url=1` adds a `download_url` that works for
//!   [`DOWNLOAD_URL_TTL`] of the real clock, like a presigned S3 URL: outside the API
//!   (no token, not counted against the rate budget), answering 403 once expired. A test
//!   expires URLs early ([`FakeChatwork::expire_download_urls`],
//!   [`FakeChatwork::expire_next_download_urls`]) and reads the downloads answered
//!   ([`FakeChatwork::downloads`]).
//!
//! A test changes the world while the fake runs (rooms, messages, edits, a room that is
//! gone or forbidden), injects faults ([`Fault`]: server errors, hangs, network delay,
//! a window reported spent for years, a body of garbage, for the next N requests, for
//! one room, or a random share), and reads back every request received
//! ([`FakeChatwork::requests`], with the account each spoke for). [`DemoData`] is a
//! realistic data set of a dozen rooms and two accounts of one company, who share one
//! room and each see rooms the other does not, for the local runner and demos. In traffic mode ([`FakeChatwork::play`]) it plays an
//! organization's messages with time compressed.
//!
//! Webhooks ([`FakeChatwork::add_webhook`]): the fake POSTs Chatwork's signed
//! `message_created`, `message_updated` and `mention_to_me` events for every message it
//! adds or edits (by a test, or by traffic playback) to the URLs registered, in the
//! background, with Chatwork's rules (never re-sent, disabled after repeated failures,
//! five per account). A webhook belongs to an account and hears only of the rooms that
//! account is a member of. A test can lose deliveries, read the delivery log and wait
//! until everything is sent. See the `webhook` module for the protocol.
//!
//! Edits move the room's `last_update_time` as posts do: a reader that only re-reads
//! rooms that moved still sees edits (with `force=1`, since an edited message that was
//! already fetched is not "new").

mod clock;
mod demo;
mod model;
mod oauth;
mod oauth_http;
mod server;
mod state;
mod traffic;
mod webhook;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use demo::DemoData;
pub use model::{
    Account, FakeAccount, FakeOAuthClient, Fault, FaultScope, File, LimitType, Member, Message,
    RateLimitState, RateWindowRecord, RequestRecord, Room, RoomAccess, RoomType, Task, TaskStatus,
    TokenOutcome, TokenRequestRecord, WindowKind,
};
pub use oauth::{ACCESS_TOKEN_TTL, CODE_TTL, KNOWN_SCOPES, REFRESH_TOKEN_TTL, s256_challenge};
pub use server::MAX_LISTED;
pub use state::{DOWNLOAD_URL_TTL, DownloadRecord, MAX_MESSAGES};
pub use traffic::{
    PlaybackRecord, Posted, RoomKind, RoomProfile, Scheduled, TrafficEvent, TrafficPlan,
    TrafficSettings,
};
pub use webhook::{
    DEFAULT_DELIVERY_TIMEOUT, DeliveryOutcome, DeliveryRecord, MAX_ANSWER_BYTES,
    MAX_WEBHOOKS_PER_ACCOUNT, USER_AGENT as WEBHOOK_USER_AGENT, WEBHOOK_FAILURE_LIMIT, Webhook,
    WebhookError, WebhookEventType, WebhookInfo, WebhookScope, webhook_token,
};

use server::{Shared, lock};
use state::{Principal, State};

/// An account a fake starts with, besides the default one (see
/// [`FakeChatwork::add_account`]).
#[derive(Debug, Clone)]
pub struct AccountSetup {
    pub account: FakeAccount,
    /// Its own API token, if it has one.
    pub api_token: Option<String>,
    /// Rooms of [`FakeSettings::rooms`] (or added later) it is a member of too.
    pub shared_rooms: Vec<i64>,
    /// Rooms of its own: only this account is a member.
    pub own_rooms: Vec<Room>,
}

/// How a fake starts.
#[derive(Debug, Clone)]
pub struct FakeSettings {
    /// The token the fake accepts (more can be added with [`FakeChatwork::add_token`]):
    /// the API token of the default account ([`FakeChatwork::DEFAULT_ACCOUNT_ID`]).
    pub token: String,
    /// Requests allowed per window and budget (an account's, or a token's of its own;
    /// Chatwork: 300).
    pub rate_limit: u32,
    /// The window (Chatwork: 5 minutes). Keep it whole seconds so that the reset header,
    /// which has a resolution of one second, is exact.
    pub rate_window: Duration,
    pub window_kind: WindowKind,
    /// The rooms (with their messages) the fake starts with; the default account is a
    /// member of each.
    pub rooms: Vec<Room>,
    /// More accounts, with their rooms.
    pub accounts: Vec<AccountSetup>,
    /// Seed of the random share of server errors, so a run can be repeated.
    pub seed: u64,
}

impl Default for FakeSettings {
    /// Chatwork's real limit (300 per 5 minutes), no rooms.
    fn default() -> Self {
        Self {
            token: FakeChatwork::DEFAULT_TOKEN.to_owned(),
            rate_limit: 300,
            rate_window: Duration::from_secs(300),
            window_kind: WindowKind::default(),
            rooms: Vec::new(),
            accounts: Vec::new(),
            seed: 7,
        }
    }
}

impl FakeSettings {
    /// The real limit with the demo data set: the default account's rooms, and a
    /// colleague ([`DemoData::SECOND_ACCOUNT_TOKEN`]) who shares one of them and has
    /// rooms of its own.
    pub fn demo() -> Self {
        let data = DemoData::build();
        Self {
            accounts: vec![data.second_account_setup()],
            rooms: data.rooms,
            ..Self::default()
        }
    }

    /// Another account to start with.
    pub fn with_account(mut self, account: AccountSetup) -> Self {
        self.accounts.push(account);
        self
    }

    /// A scaled-down rate limit (for tests: e.g. 30 per 3 s).
    pub fn with_rate_limit(mut self, limit: u32, window: Duration) -> Self {
        self.rate_limit = limit;
        self.rate_window = window;
        self
    }

    pub fn with_rooms(mut self, rooms: Vec<Room>) -> Self {
        self.rooms = rooms;
        self
    }

    pub fn with_token(mut self, token: impl Into<String>) -> Self {
        self.token = token.into();
        self
    }

    pub fn with_window_kind(mut self, kind: WindowKind) -> Self {
        self.window_kind = kind;
        self
    }
}

/// A running fake Chatwork. Dropping it stops the server.
pub struct FakeChatwork {
    addr: SocketAddr,
    token: String,
    shared: Shared,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    /// Where the webhooks' delivery tasks run (so that registering one needs no runtime
    /// context of its own).
    runtime: tokio::runtime::Handle,
    /// The webhooks' HTTP client, shared by their tasks.
    webhook_client: reqwest::Client,
}

impl FakeChatwork {
    /// The token of [`FakeSettings::default`].
    pub const DEFAULT_TOKEN: &'static str = "fake-chatwork-token-0123456789abcdef";

    /// The account of [`FakeSettings::token`] (and of tokens added with
    /// [`add_token`](Self::add_token)): 佐藤 健一 of 株式会社ニシカゼ, the demo data's owner.
    pub const DEFAULT_ACCOUNT_ID: i64 = state::DEFAULT_ACCOUNT_ID;

    /// Starts a fake on a free loopback port (inside a tokio runtime).
    pub async fn start(settings: FakeSettings) -> Self {
        Self::start_on(settings, SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .expect("bind a loopback port for the fake Chatwork")
    }

    /// Starts a fake with the demo data and the real rate limit.
    pub async fn demo() -> Self {
        Self::start(FakeSettings::demo()).await
    }

    /// Starts a fake listening on `addr`.
    pub async fn start_on(settings: FakeSettings, addr: SocketAddr) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let token = settings.token.clone();
        let mut state = State::new(
            settings.token,
            settings.rate_limit,
            settings.rate_window,
            settings.window_kind,
            settings.rooms,
            settings.seed,
        );
        for setup in settings.accounts {
            let id = setup.account.account_id;
            state.add_account(
                setup.account,
                setup.api_token.as_deref(),
                &setup.shared_rooms,
            );
            for room in setup.own_rooms {
                state.put_room_of(room, &[id]);
            }
        }
        let shared: Shared = Arc::new(Mutex::new(state));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let app = server::router(shared.clone());
        tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
            if let Err(e) = served {
                eprintln!("fake Chatwork stopped: {e}");
            }
        });
        let webhook_client = reqwest::Client::builder()
            // Deliveries go where the test said, never through a proxy of the environment.
            .no_proxy()
            .build()
            .map_err(std::io::Error::other)?;
        Ok(Self {
            addr,
            token,
            shared,
            stop: Some(stop),
            runtime: tokio::runtime::Handle::current(),
            webhook_client,
        })
    }

    /// `http://127.0.0.1:<port>/v2`, the value for `CHATWORK_API_BASE_URL`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v2", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The token given in [`FakeSettings::token`].
    pub fn token(&self) -> &str {
        &self.token
    }

    /// Accepts another token of the default account, with a rate budget and read
    /// positions of its own (not the account's).
    pub fn add_token(&self, token: &str) {
        lock(&self.shared).add_token(token.to_owned());
    }

    // ---- accounts ----

    /// Adds an account (or updates its name and organization) as a member of `rooms`
    /// (which may be added later), with an API token of its own if given. The account's
    /// API token and its OAuth access tokens share one rate budget and one set of read
    /// positions.
    pub fn add_account(&self, account: FakeAccount, api_token: Option<&str>, rooms: &[i64]) {
        lock(&self.shared).add_account(account, api_token, rooms);
    }

    /// Makes an account a member of a room, or not: a room is in `GET /rooms` of its
    /// members only, and a non-member gets a 403 for it. False when the account is
    /// unknown.
    pub fn set_member(&self, account_id: i64, room_id: i64, member: bool) -> bool {
        lock(&self.shared).set_member(account_id, room_id, member)
    }

    /// Adds (or replaces) a room whose only members are `members` (the default account
    /// only if listed).
    pub fn add_room_of(&self, room: Room, members: &[i64]) {
        lock(&self.shared).put_room_of(room, members);
    }

    /// Every account (the default one included), by id.
    pub fn accounts(&self) -> Vec<FakeAccount> {
        lock(&self.shared)
            .accounts
            .values()
            .map(|a| a.info.clone())
            .collect()
    }

    /// The default account ([`Self::DEFAULT_ACCOUNT_ID`]).
    pub fn default_account(&self) -> FakeAccount {
        lock(&self.shared)
            .accounts
            .get(&Self::DEFAULT_ACCOUNT_ID)
            .map_or_else(state::default_account, |a| a.info.clone())
    }

    /// The ids of the rooms an account is a member of (including gone ones).
    pub fn rooms_of(&self, account_id: i64) -> Vec<i64> {
        lock(&self.shared)
            .accounts
            .get(&account_id)
            .map(|a| a.rooms.iter().copied().collect())
            .unwrap_or_default()
    }

    // ---- OAuth 2.0 ----

    /// Registers a confidential OAuth client (or replaces the one with the same id).
    pub fn register_oauth_client(&self, client: FakeOAuthClient) {
        lock(&self.shared).oauth.register(client);
    }

    /// The consent page, `http://127.0.0.1:<port>/packages/oauth2/login.php` (Chatwork's:
    /// `https://www.chatwork.com/packages/oauth2/login.php`).
    pub fn oauth_authorize_url(&self) -> String {
        format!("http://{}{}", self.addr, oauth_http::CONSENT_PATH)
    }

    /// The token endpoint, `http://127.0.0.1:<port>/token` (Chatwork's:
    /// `https://oauth.chatwork.com/token`).
    pub fn oauth_token_url(&self) -> String {
        format!("http://{}{}", self.addr, oauth_http::TOKEN_PATH)
    }

    /// How long access tokens issued from now on live ([`ACCESS_TOKEN_TTL`] unless
    /// changed).
    pub fn set_access_token_ttl(&self, ttl: Duration) {
        lock(&self.shared).oauth.access_ttl = ttl;
    }

    /// How long codes issued from now on live ([`CODE_TTL`] unless changed).
    pub fn set_code_ttl(&self, ttl: Duration) {
        lock(&self.shared).oauth.code_ttl = ttl;
    }

    /// Every access token issued so far expires now (its refresh token still works).
    pub fn expire_access_tokens(&self) {
        lock(&self.shared)
            .oauth
            .expire_access_tokens(clock::now_ms());
    }

    /// As if the user removed the app in Chatwork: every access and refresh token issued
    /// for the account dies.
    pub fn revoke_grants(&self, account_id: i64) {
        lock(&self.shared).oauth.revoke_account(account_id);
    }

    /// Every request to the token endpoint so far, oldest first (the OAuth pages are not
    /// in [`requests`](Self::requests), which logs the API).
    pub fn token_requests(&self) -> Vec<TokenRequestRecord> {
        lock(&self.shared).oauth.log.clone()
    }

    /// Successful `refresh_token` grants so far.
    pub fn refresh_count(&self) -> usize {
        lock(&self.shared).oauth.refreshes
    }

    // ---- the world ----

    /// Adds (or replaces) a room.
    pub fn add_room(&self, room: Room) {
        lock(&self.shared).put_room(room);
    }

    /// Posts a message now; returns its id, or `None` when the room does not exist.
    /// The room's `last_update_time` and `message_num` move.
    pub fn post_message(&self, room_id: i64, account: &Account, body: &str) -> Option<String> {
        lock(&self.shared).post(room_id, account.clone(), body.to_owned(), None)
    }

    /// Posts a message with a chosen id (for ids longer than the usual 19 digits).
    pub fn post_message_with_id(
        &self,
        room_id: i64,
        message_id: &str,
        account: &Account,
        body: &str,
    ) -> Option<String> {
        lock(&self.shared).post(
            room_id,
            account.clone(),
            body.to_owned(),
            Some(message_id.to_owned()),
        )
    }

    /// Edits a message: new body, `update_time` now. False when there is no such message.
    pub fn edit_message(&self, room_id: i64, message_id: &str, body: &str) -> bool {
        lock(&self.shared).edit(room_id, message_id, body.to_owned())
    }

    /// Plays an organization's traffic (see [`TrafficPlan`]) on this fake, `speed` times
    /// faster than simulated time, in a task of its own; the task's result says which
    /// messages it posted and when. The plan's rooms must exist.
    pub fn play(&self, plan: TrafficPlan, speed: f64) -> tokio::task::JoinHandle<PlaybackRecord> {
        tokio::spawn(traffic::play(self.shared.clone(), plan, speed))
    }

    /// Answers as for a free plan from now on: every successful answer carries
    /// Chatwork's `chatwork-message-limitation: true` and, with `value` as the summary,
    /// `chatwork-message-limitation-summary` (`None`: a paid plan, neither header).
    pub fn set_message_limitation(&self, value: Option<&str>) {
        lock(&self.shared).message_limitation = value.map(str::to_owned);
    }

    /// Makes a room gone (404), forbidden (403) or open again.
    pub fn set_room_access(&self, room_id: i64, access: RoomAccess) {
        if let Some(stored) = lock(&self.shared).rooms.get_mut(&room_id) {
            stored.access = access;
        }
    }

    /// A snapshot of a room and its messages.
    pub fn room(&self, room_id: i64) -> Option<Room> {
        lock(&self.shared)
            .rooms
            .get(&room_id)
            .map(|r| r.room.clone())
    }

    /// The ids of every room the fake knows (including gone ones).
    pub fn room_ids(&self) -> Vec<i64> {
        lock(&self.shared).rooms.keys().copied().collect()
    }

    // ---- tasks, files, members ----

    /// Adds a task to a room (given an id when its `task_id` is 0); returns the id, or
    /// `None` when the room does not exist.
    pub fn add_task(&self, room_id: i64, task: Task) -> Option<i64> {
        lock(&self.shared).add_task(room_id, task)
    }

    /// Marks a task done; false when the room has no such task.
    pub fn complete_task(&self, room_id: i64, task_id: i64) -> bool {
        lock(&self.shared).complete_task(room_id, task_id)
    }

    /// Moves a task's deadline (`LimitType::None` removes it); false when the room has no
    /// such task.
    pub fn set_task_deadline(
        &self,
        room_id: i64,
        task_id: i64,
        limit_type: LimitType,
        limit_time: i64,
    ) -> bool {
        lock(&self.shared).set_task_deadline(room_id, task_id, limit_type, limit_time)
    }

    /// Uploads a file with these bytes to a room now (given an id when its `file_id` is
    /// 0); returns the id, or `None` when the room does not exist.
    pub fn add_file(&self, room_id: i64, file: File) -> Option<i64> {
        lock(&self.shared).add_file(room_id, file)
    }

    /// Sets who `GET /rooms/{id}/members` lists for a room (empty: the fake's accounts
    /// that are members of it). False when the room does not exist.
    pub fn set_room_members(&self, room_id: i64, members: Vec<Member>) -> bool {
        match lock(&self.shared).rooms.get_mut(&room_id) {
            Some(stored) => {
                stored.room.members = members;
                true
            }
            None => false,
        }
    }

    /// Every download URL issued so far stops working now (403).
    pub fn expire_download_urls(&self) {
        lock(&self.shared).downloads.expire_all();
    }

    /// The next `n` download URLs are issued already expired.
    pub fn expire_next_download_urls(&self, n: u32) {
        lock(&self.shared).downloads.expire_next(n);
    }

    /// Every request to a download URL so far, oldest first (they are not in
    /// [`requests`](Self::requests), which logs the API).
    pub fn downloads(&self) -> Vec<DownloadRecord> {
        lock(&self.shared).downloads.log.clone()
    }

    // ---- faults ----

    /// Applies `fault` to the next `times` requests in `scope` (`None`: until
    /// [`clear_faults`](Self::clear_faults)).
    pub fn inject(&self, scope: FaultScope, fault: Fault, times: Option<u32>) {
        lock(&self.shared).schedule(scope, fault, times);
    }

    /// The next `n` requests with a valid token are answered with `status`.
    pub fn fail_next(&self, n: u32, status: u16) {
        self.inject(FaultScope::Any, Fault::Status(status), Some(n));
    }

    /// The next `n` requests with a valid token are held for `hold` before answering.
    pub fn hang_next(&self, n: u32, hold: Duration) {
        self.inject(FaultScope::Any, Fault::Hang(hold), Some(n));
    }

    /// How many bytes of garbage answers ([`Fault::Garbage`]) have been sent so far: what
    /// a client that stops reading at its cap let out of the fake.
    pub fn garbage_sent(&self) -> u64 {
        lock(&self.shared)
            .garbage_sent
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// A share (0 to 1) of requests is answered with a random 500, 502 or 503.
    pub fn set_error_rate(&self, share: f64) {
        lock(&self.shared).set_error_rate(share);
    }

    /// Every request waits this long before it is handled (and counted).
    pub fn set_latency(&self, latency: Duration) {
        lock(&self.shared).set_latency(latency);
    }

    /// Removes every scheduled fault, the error share and the latency.
    pub fn clear_faults(&self) {
        lock(&self.shared).clear_faults();
    }

    // ---- the rate limit ----

    /// How many 429s the fake has sent.
    pub fn rate_limited_count(&self) -> u64 {
        lock(&self.shared).rate_limited
    }

    /// The window of `token`'s budget (its account's, for an account's API token or
    /// access token) as the headers would report it now.
    pub fn rate_limit_state(&self, token: &str) -> RateLimitState {
        let state = lock(&self.shared);
        state.rate_state(&state.principal_of_token(token))
    }

    /// Uses up the rest of the current window of `token`'s budget, as another consumer
    /// would.
    pub fn use_up_rate_limit(&self, token: &str) {
        let mut state = lock(&self.shared);
        let principal = state.principal_of_token(token);
        state.use_up(&principal);
    }

    /// Counts up to `n` requests against the current window of `token`'s budget without a
    /// request, as a second program using the same token would behind the client's back;
    /// returns how many fit before the limit.
    pub fn spend_rate_limit(&self, token: &str, n: u32) -> u32 {
        let mut state = lock(&self.shared);
        let principal = state.principal_of_token(token);
        state.spend(&principal, n)
    }

    /// The window of an account's budget (shared by its API token and its access
    /// tokens) as the headers would report it now.
    pub fn rate_state_of_account(&self, account_id: i64) -> RateLimitState {
        lock(&self.shared).rate_state(&Principal::Account(account_id))
    }

    /// Counts up to `n` requests against an account's current window, as another program
    /// of that account would; returns how many fit before the limit.
    pub fn spend_rate_limit_of_account(&self, account_id: i64, n: u32) -> u32 {
        lock(&self.shared).spend(&Principal::Account(account_id), n)
    }

    /// Every rate window of an account's budget so far, oldest first.
    pub fn rate_windows_of_account(&self, account_id: i64) -> Vec<RateWindowRecord> {
        lock(&self.shared).windows(&Principal::Account(account_id))
    }

    /// Changes the limit and the window while the fake runs, as Chatwork might: every
    /// token's current window ends now and the next request opens one of `window` with
    /// `limit` requests. Keep `window` whole seconds (see [`FakeSettings::rate_window`]).
    pub fn set_rate_limit(&self, limit: u32, window: Duration) {
        lock(&self.shared).set_rate_limit(limit, window);
    }

    /// Every rate window of `token`'s budget so far (when it started and ended, what it
    /// counted), oldest first.
    pub fn rate_windows(&self, token: &str) -> Vec<RateWindowRecord> {
        let state = lock(&self.shared);
        state.windows(&state.principal_of_token(token))
    }

    /// The configured limit and window.
    pub fn rate_limit(&self) -> (u32, Duration) {
        let state = lock(&self.shared);
        (state.limit, state.window)
    }

    // ---- webhooks ----

    /// Registers a webhook; returns its `webhook_setting_id`. From now on every message
    /// posted or edited in its scope is delivered to it. Refused beyond
    /// [`MAX_WEBHOOKS_PER_ACCOUNT`] for its owner, or with a token that is not base64.
    /// Its owner must be an account of the fake; it hears only of rooms the owner is a
    /// member of (at the time of each post or edit).
    pub fn add_webhook(&self, webhook: Webhook) -> Result<String, WebhookError> {
        let mut state = lock(&self.shared);
        if !state.accounts.contains_key(&webhook.owner) {
            return Err(WebhookError::UnknownAccount {
                account_id: webhook.owner,
            });
        }
        let (id, queue) = state.webhooks.add(webhook)?;
        drop(state);
        self.runtime.spawn(webhook::deliver(
            Arc::downgrade(&self.shared),
            |state: &mut State| &mut state.webhooks,
            self.webhook_client.clone(),
            queue,
        ));
        Ok(id)
    }

    /// Deletes a webhook (its place among the owner's five is free again); deliveries
    /// still queued for it are dropped. False when there is no such webhook.
    pub fn remove_webhook(&self, id: &str) -> bool {
        lock(&self.shared).webhooks.remove(id)
    }

    /// Disables a webhook, as a person can in Chatwork: no events while disabled, and
    /// deliveries still queued are dropped. False when there is no such webhook.
    pub fn disable_webhook(&self, id: &str) -> bool {
        lock(&self.shared).webhooks.set_enabled(id, false)
    }

    /// Enables a webhook again (also one the fake disabled after failures); its failure
    /// count starts over.
    pub fn enable_webhook(&self, id: &str) -> bool {
        lock(&self.shared).webhooks.set_enabled(id, true)
    }

    /// Every registered webhook, oldest first.
    pub fn webhooks(&self) -> Vec<WebhookInfo> {
        lock(&self.shared).webhooks.list()
    }

    /// The next `n` deliveries (of any webhook) are lost: logged as
    /// [`DeliveryOutcome::Lost`], never sent.
    pub fn lose_next_deliveries(&self, n: u32) {
        lock(&self.shared).webhooks.lose_next(n);
    }

    /// A share (0 to 1) of deliveries is lost, drawn from the fake's seed.
    pub fn set_delivery_loss(&self, share: f64) {
        lock(&self.shared).webhooks.set_loss_share(share);
    }

    /// How long a delivery waits for its answer ([`DEFAULT_DELIVERY_TIMEOUT`] unless
    /// changed).
    pub fn set_webhook_timeout(&self, timeout: Duration) {
        lock(&self.shared).webhooks.set_timeout(timeout);
    }

    /// Every delivery so far (lost and dropped ones included), in the order they ended;
    /// [`DeliveryRecord::seq`] gives the order the events happened in.
    pub fn deliveries(&self) -> Vec<DeliveryRecord> {
        lock(&self.shared).webhooks.log.clone()
    }

    /// Waits until every delivery queued so far has been sent and logged (or dropped).
    pub async fn wait_for_deliveries(&self) {
        let mut pending = lock(&self.shared).webhooks.pending();
        // The sender lives in the state, which outlives this borrow of the fake.
        let _ = pending.wait_for(|n| *n == 0).await;
    }

    // ---- what happened ----

    /// Every request received so far, oldest first.
    pub fn requests(&self) -> Vec<RequestRecord> {
        lock(&self.shared).log.clone()
    }

    /// How many requests were counted against a rate window (admitted with a valid
    /// token, not refused with a 429).
    pub fn counted_requests(&self) -> u64 {
        lock(&self.shared).counted
    }
}

impl Drop for FakeChatwork {
    fn drop(&mut self) {
        // The webhooks' tasks send what is queued and end.
        lock(&self.shared).webhooks.close();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
