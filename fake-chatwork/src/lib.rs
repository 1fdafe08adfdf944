//! A fake Chatwork API v2 server for cwsync's tests, its local runner and its benchmarks.
//!
//! It serves `GET /v2/rooms`, `GET /v2/rooms/{id}` and `GET /v2/rooms/{id}/messages` with
//! Chatwork's JSON shapes over real HTTP on a loopback port, and behaves like the real API
//! where cwsync depends on it:
//!
//! - The token travels in `X-ChatWorkToken`; an unknown or missing token is a 401.
//! - Every answer to a known token carries `x-ratelimit-limit`, `x-ratelimit-remaining`
//!   and `x-ratelimit-reset` (epoch seconds). Beyond the limit the answer is a 429, which
//!   is not counted; [`FakeChatwork::rate_limited_count`] says how many were sent. A
//!   test can change the limit and window mid-run ([`FakeChatwork::set_rate_limit`]) or
//!   spend a token's window as a second program would
//!   ([`FakeChatwork::spend_rate_limit`]), to prove a client survives a wrong belief.
//!   Windows are fixed, not sliding: see [`WindowKind`] for the two layouts the fake can
//!   play (Chatwork does not document its own).
//! - `force`: without it a token gets only the messages it has not fetched yet (the
//!   newest 100 of them); with `force=1` the newest 100. Nothing to answer is a 204 with
//!   an empty body. Messages come oldest first.
//! - Errors are `{"errors": ["..."]}`.
//!
//! A test changes the world while the fake runs (rooms, messages, edits, a room that is
//! gone or forbidden), injects faults ([`Fault`]: server errors, hangs, network delay,
//! a window reported spent for years, a body of garbage, for the next N requests, for
//! one room, or a random share), and reads back every request received
//! ([`FakeChatwork::requests`]). [`DemoData`] is a realistic data set of a dozen rooms
//! for the local runner and demos. In traffic mode ([`FakeChatwork::play`]) it plays an
//! organization's messages with time compressed.
//!
//! Webhooks ([`FakeChatwork::add_webhook`]): the fake POSTs Chatwork's signed
//! `message_created`, `message_updated` and `mention_to_me` events for every message it
//! adds or edits (by a test, or by traffic playback) to the URLs registered, in the
//! background, with Chatwork's rules (never re-sent, disabled after repeated failures,
//! five per account); a test can lose deliveries, read the delivery log and wait until
//! everything is sent. See the `webhook` module for the protocol.
//!
//! Edits move the room's `last_update_time` as posts do: a reader that only re-reads
//! rooms that moved still sees edits (with `force=1`, since an edited message that was
//! already fetched is not "new").

mod clock;
mod demo;
mod model;
mod server;
mod state;
mod traffic;
mod webhook;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use demo::DemoData;
pub use model::{
    Account, Fault, FaultScope, Message, RateLimitState, RateWindowRecord, RequestRecord, Room,
    RoomAccess, RoomType, WindowKind,
};
pub use state::MAX_MESSAGES;
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
use state::State;

/// How a fake starts.
#[derive(Debug, Clone)]
pub struct FakeSettings {
    /// The token the fake accepts (more can be added with [`FakeChatwork::add_token`]).
    pub token: String,
    /// Requests allowed per window and token (Chatwork: 300).
    pub rate_limit: u32,
    /// The window (Chatwork: 5 minutes). Keep it whole seconds so that the reset header,
    /// which has a resolution of one second, is exact.
    pub rate_window: Duration,
    pub window_kind: WindowKind,
    /// The rooms (with their messages) the fake starts with.
    pub rooms: Vec<Room>,
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
            seed: 7,
        }
    }
}

impl FakeSettings {
    /// The real limit with the demo data set.
    pub fn demo() -> Self {
        Self {
            rooms: DemoData::build().rooms,
            ..Self::default()
        }
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
        let shared: Shared = Arc::new(Mutex::new(State::new(
            settings.token,
            settings.rate_limit,
            settings.rate_window,
            settings.window_kind,
            settings.rooms,
            settings.seed,
        )));
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

    /// Accepts another token (with its own rate window and read positions).
    pub fn add_token(&self, token: &str) {
        lock(&self.shared).add_token(token.to_owned());
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

    /// The window of `token` as the headers would report it now.
    pub fn rate_limit_state(&self, token: &str) -> RateLimitState {
        lock(&self.shared).rate_state(token)
    }

    /// Uses up the rest of the current window of `token`, as another consumer would.
    pub fn use_up_rate_limit(&self, token: &str) {
        lock(&self.shared).use_up(token);
    }

    /// Counts up to `n` requests against the current window of `token` without a request,
    /// as a second program using the same token would behind the client's back; returns
    /// how many fit before the limit.
    pub fn spend_rate_limit(&self, token: &str, n: u32) -> u32 {
        lock(&self.shared).spend(token, n)
    }

    /// Changes the limit and the window while the fake runs, as Chatwork might: every
    /// token's current window ends now and the next request opens one of `window` with
    /// `limit` requests. Keep `window` whole seconds (see [`FakeSettings::rate_window`]).
    pub fn set_rate_limit(&self, limit: u32, window: Duration) {
        lock(&self.shared).set_rate_limit(limit, window);
    }

    /// Every rate window of `token` so far (when it started and ended, what it counted),
    /// oldest first.
    pub fn rate_windows(&self, token: &str) -> Vec<RateWindowRecord> {
        lock(&self.shared).windows(token)
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
    pub fn add_webhook(&self, webhook: Webhook) -> Result<String, WebhookError> {
        let (id, queue) = lock(&self.shared).webhooks.add(webhook)?;
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
