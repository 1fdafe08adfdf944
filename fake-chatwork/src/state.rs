//! The fake's state and rules, free of HTTP: accounts, their tokens, rate budgets and room
//! memberships, rooms and the read positions behind `force`, faults, the request log.
//!
//! Who a request is: a [`Principal`] owns a rate budget and read positions. Every token of
//! an account (its API token and all its OAuth access tokens) is that account's
//! principal, so they share one budget (Chatwork does not say whether it counts per token
//! or per account; per account is the cautious reading). A token added with
//! `add_token` is a principal of its own that reads as the default account.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, UNIX_EPOCH};

use crate::clock::{now_ms, now_secs};
use crate::model::{
    Account, FakeAccount, Fault, FaultScope, File, LimitType, Member, Message, RateLimitState,
    RateWindowRecord, RequestRecord, Room, RoomAccess, Task, TaskStatus, WindowKind,
};
use crate::oauth::{OAuth, Scopes};
use crate::webhook::Webhooks;

/// The account the fake's default token belongs to: the demo data's owner, and the owner
/// of webhooks unless told otherwise.
pub const DEFAULT_ACCOUNT_ID: i64 = 1_001_001;

pub(crate) fn default_account() -> FakeAccount {
    FakeAccount {
        account_id: DEFAULT_ACCOUNT_ID,
        name: "佐藤 健一".to_owned(),
        organization_id: 870_001,
        organization_name: "株式会社ニシカゼ".to_owned(),
    }
}

/// Whose rate budget and read positions a request spends.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Principal {
    /// An account: its API token and every OAuth access token issued for it.
    Account(i64),
    /// A token added with `add_token`: a budget of its own, reading as the default
    /// account.
    Token(String),
}

/// Who a request is, once its token was accepted.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    pub principal: Principal,
    pub account_id: i64,
    /// The scopes of an OAuth access token; `None` for an API token (everything).
    pub scopes: Option<Scopes>,
}

/// The credential a request carried.
#[derive(Debug, Clone)]
pub(crate) enum Credential {
    None,
    ApiToken(String),
    Bearer(String),
}

/// Why a credential was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    ApiToken,
    /// Unknown, revoked, or (`expired`) past its lifetime.
    Bearer {
        expired: bool,
    },
}

/// An account the fake knows, and the rooms it is a member of.
#[derive(Debug)]
pub(crate) struct AccountState {
    pub info: FakeAccount,
    pub rooms: BTreeSet<i64>,
}

/// Chatwork answers at most this many messages per request.
pub const MAX_MESSAGES: usize = 100;

/// The numeric value of a message id, for ordering. Ids are decimal strings; ids the fake
/// makes fit easily, and a test that adds a longer one gets it ordered by length first.
fn id_key(id: &str) -> (usize, String) {
    let digits = id.trim_start_matches('0');
    (digits.len(), digits.to_owned())
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct RateWindow {
    used: u32,
    /// Epoch milliseconds at which the window ends (0: no window yet).
    ends_ms: u64,
}

/// One principal's rate budget and read positions.
#[derive(Debug, Default)]
pub(crate) struct Budget {
    window: Option<RateWindow>,
    /// Every window so far, the current one last.
    history: Vec<RateWindowRecord>,
    /// Per room, the key of the newest message this principal has fetched.
    fetched: HashMap<i64, (usize, String)>,
}

#[derive(Debug)]
pub(crate) struct StoredRoom {
    pub room: Room,
    pub access: RoomAccess,
}

#[derive(Debug)]
struct ScheduledFault {
    scope: FaultScope,
    fault: Fault,
    /// `None`: until cleared.
    times: Option<u32>,
}

/// What the rate limiter decided for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admission {
    Counted(RateLimitState),
    Limited(RateLimitState),
}

pub(crate) struct State {
    pub limit: u32,
    pub window: Duration,
    pub window_kind: WindowKind,
    /// Every account, the default one included.
    pub accounts: BTreeMap<i64, AccountState>,
    /// API tokens (`X-ChatWorkToken`) and whose they are.
    api_tokens: HashMap<String, Principal>,
    budgets: HashMap<Principal, Budget>,
    /// OAuth clients, codes, grants and tokens.
    pub oauth: OAuth,
    pub rooms: BTreeMap<i64, StoredRoom>,
    pub log: Vec<RequestRecord>,
    pub rate_limited: u64,
    /// Requests counted against a window (admitted, not refused).
    pub counted: u64,
    faults: Vec<ScheduledFault>,
    error_rate: f64,
    latency: Duration,
    rng: fastrand::Rng,
    last_id: u128,
    /// The `chatwork-message-limitation` header answers carry (a free plan's), if any.
    pub message_limitation: Option<String>,
    /// Registered webhooks and their deliveries: every post and edit goes through
    /// [`State::post`] and [`State::edit`], which hand it to them.
    pub webhooks: Webhooks,
    /// Bytes of garbage answers that left (`Fault::Garbage`), counted as they are sent.
    pub garbage_sent: Arc<AtomicU64>,
    /// Download URLs issued (`create_download_url=1`), by their secret part.
    pub downloads: Downloads,
    /// The last task and file ids given.
    last_task_id: i64,
    last_file_id: i64,
}

/// How long a download URL works (Chatwork's: about 30 s).
pub const DOWNLOAD_URL_TTL: Duration = Duration::from_secs(30);

/// The download URLs the fake issued, like presigned S3 URLs: anyone holding one gets
/// the file's bytes until it expires, and a 403 after.
#[derive(Debug, Default)]
pub(crate) struct Downloads {
    issued: HashMap<String, Download>,
    /// The next this many URLs are issued already expired.
    expire_next: u32,
    /// Downloads answered, with what.
    pub log: Vec<DownloadRecord>,
    counter: u64,
}

#[derive(Debug, Clone)]
struct Download {
    room_id: i64,
    file_id: i64,
    /// Epoch milliseconds.
    expires_ms: u64,
}

/// One request to a download URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DownloadRecord {
    pub room_id: Option<i64>,
    pub file_id: Option<i64>,
    /// 200, or 403 for an unknown or expired URL.
    pub status: u16,
}

impl Downloads {
    /// A new URL's secret for a file, valid [`DOWNLOAD_URL_TTL`] (or already expired when
    /// a test asked for that).
    fn issue(&mut self, room_id: i64, file_id: i64, rng: &mut fastrand::Rng) -> String {
        self.counter += 1;
        let secret = format!("{:016x}{:016x}{}", rng.u64(..), rng.u64(..), self.counter);
        let expires_ms = if self.expire_next > 0 {
            self.expire_next -= 1;
            now_ms().saturating_sub(1)
        } else {
            now_ms() + DOWNLOAD_URL_TTL.as_millis() as u64
        };
        self.issued.insert(
            secret.clone(),
            Download {
                room_id,
                file_id,
                expires_ms,
            },
        );
        secret
    }

    /// Every URL issued so far stops working now.
    pub fn expire_all(&mut self) {
        let now = now_ms().saturating_sub(1);
        for d in self.issued.values_mut() {
            d.expires_ms = d.expires_ms.min(now);
        }
    }

    /// The next `n` URLs are issued already expired.
    pub fn expire_next(&mut self, n: u32) {
        self.expire_next = self.expire_next.saturating_add(n);
    }
}

impl State {
    pub fn new(
        token: String,
        limit: u32,
        window: Duration,
        window_kind: WindowKind,
        rooms: Vec<Room>,
        seed: u64,
    ) -> Self {
        let mut state = Self {
            limit: limit.max(1),
            window: window.max(Duration::from_millis(1)),
            window_kind,
            accounts: BTreeMap::from([(
                DEFAULT_ACCOUNT_ID,
                AccountState {
                    info: default_account(),
                    rooms: BTreeSet::new(),
                },
            )]),
            api_tokens: HashMap::from([(token, Principal::Account(DEFAULT_ACCOUNT_ID))]),
            budgets: HashMap::new(),
            oauth: OAuth::new(),
            rooms: BTreeMap::new(),
            log: Vec::new(),
            rate_limited: 0,
            counted: 0,
            faults: Vec::new(),
            error_rate: 0.0,
            latency: Duration::ZERO,
            rng: fastrand::Rng::with_seed(seed),
            last_id: 0,
            message_limitation: None,
            webhooks: Webhooks::new(seed),
            garbage_sent: Arc::default(),
            downloads: Downloads::default(),
            last_task_id: 0,
            last_file_id: 0,
        };
        for room in rooms {
            state.put_room(room);
        }
        state
    }

    /// Adds (or replaces) a room; the default account is a member of it.
    pub fn put_room(&mut self, room: Room) {
        self.put_room_of(room, &[DEFAULT_ACCOUNT_ID]);
    }

    /// Adds (or replaces) a room with these members (accounts the fake does not know are
    /// left out).
    pub fn put_room_of(&mut self, mut room: Room, members: &[i64]) {
        for id in members {
            if let Some(account) = self.accounts.get_mut(id) {
                account.rooms.insert(room.room_id);
            }
        }
        room.messages.sort_by_key(|m| id_key(&m.message_id));
        for task in &mut room.tasks {
            if task.task_id <= 0 {
                self.last_task_id += 1;
                task.task_id = self.last_task_id;
            }
            self.last_task_id = self.last_task_id.max(task.task_id);
        }
        for file in &mut room.files {
            if file.file_id <= 0 {
                self.last_file_id += 1;
                file.file_id = self.last_file_id;
            }
            self.last_file_id = self.last_file_id.max(file.file_id);
        }
        for m in &room.messages {
            if let Ok(id) = m.message_id.parse::<u128>() {
                self.last_id = self.last_id.max(id);
            }
        }
        self.rooms.insert(
            room.room_id,
            StoredRoom {
                room,
                access: RoomAccess::Open,
            },
        );
    }

    pub fn add_token(&mut self, token: String) {
        self.api_tokens
            .entry(token.clone())
            .or_insert(Principal::Token(token));
    }

    /// Adds an account (or updates its name and organization), with an API token of its
    /// own if given, as a member of `rooms` (rooms added later keep the membership).
    pub fn add_account(&mut self, info: FakeAccount, api_token: Option<&str>, rooms: &[i64]) {
        let id = info.account_id;
        let account = self.accounts.entry(id).or_insert_with(|| AccountState {
            info: info.clone(),
            rooms: BTreeSet::new(),
        });
        account.info = info;
        account.rooms.extend(rooms.iter().copied());
        if let Some(token) = api_token {
            self.api_tokens
                .insert(token.to_owned(), Principal::Account(id));
        }
    }

    /// Makes an account a member of a room or not; false when the account is unknown.
    pub fn set_member(&mut self, account_id: i64, room_id: i64, member: bool) -> bool {
        let Some(account) = self.accounts.get_mut(&account_id) else {
            return false;
        };
        if member {
            account.rooms.insert(room_id);
        } else {
            account.rooms.remove(&room_id);
        }
        true
    }

    pub fn is_member(&self, account_id: i64, room_id: i64) -> bool {
        self.accounts
            .get(&account_id)
            .is_some_and(|a| a.rooms.contains(&room_id))
    }

    /// The account a principal reads as.
    fn account_of(principal: &Principal) -> i64 {
        match principal {
            Principal::Account(id) => *id,
            Principal::Token(_) => DEFAULT_ACCOUNT_ID,
        }
    }

    /// Who a credential speaks for, now.
    pub fn authenticate(&self, credential: &Credential) -> Result<Caller, Refused> {
        match credential {
            Credential::None => Err(Refused::ApiToken),
            Credential::ApiToken(token) => {
                let principal = self.api_tokens.get(token).ok_or(Refused::ApiToken)?;
                Ok(Caller {
                    account_id: Self::account_of(principal),
                    principal: principal.clone(),
                    scopes: None,
                })
            }
            Credential::Bearer(token) => {
                let (account_id, scopes) = self
                    .oauth
                    .access(token, now_ms())
                    .map_err(|expired| Refused::Bearer { expired })?;
                Ok(Caller {
                    principal: Principal::Account(account_id),
                    account_id,
                    scopes: Some(scopes),
                })
            }
        }
    }

    /// The principal whose budget a token spends: its account's for an API token of an
    /// account or an OAuth access token (live or not), its own otherwise.
    pub fn principal_of_token(&self, token: &str) -> Principal {
        if let Some(principal) = self.api_tokens.get(token) {
            return principal.clone();
        }
        match self.oauth.account_of_access(token) {
            Some(id) => Principal::Account(id),
            None => Principal::Token(token.to_owned()),
        }
    }

    /// Logs a request's arrival and picks the fault it meets, if any.
    pub fn arrive(
        &mut self,
        record: RequestRecord,
        room_id: Option<i64>,
    ) -> (usize, Duration, Option<Fault>) {
        let index = self.log.len();
        let valid = record.token_valid;
        self.log.push(record);
        let mut fault = None;
        if valid {
            if let Some(pos) = self.faults.iter().position(|f| match f.scope {
                FaultScope::Any => true,
                FaultScope::Room(id) => room_id == Some(id),
            }) {
                let scheduled = &mut self.faults[pos];
                fault = Some(scheduled.fault);
                if let Some(times) = scheduled.times.as_mut() {
                    *times -= 1;
                    if *times == 0 {
                        self.faults.remove(pos);
                    }
                }
            } else if self.error_rate > 0.0 && self.rng.f64() < self.error_rate {
                fault = Some(Fault::Status([500, 502, 503][self.rng.usize(0..3)]));
            }
        }
        (index, self.latency, fault)
    }

    pub fn finish(&mut self, index: usize, status: u16) {
        if let Some(record) = self.log.get_mut(index) {
            record.status = Some(status);
        }
    }

    fn window_end(&self, now_ms: u64) -> u64 {
        let len = self.window.as_millis().max(1) as u64;
        match self.window_kind {
            WindowKind::Aligned => (now_ms / len + 1) * len,
            WindowKind::FromFirstRequest => (now_ms / 1000) * 1000 + len,
            WindowKind::Unrounded => now_ms + len,
        }
    }

    /// The `x-ratelimit-reset` of a window ending at `ends_ms`.
    fn reset_header(&self, ends_ms: u64) -> i64 {
        match self.window_kind {
            WindowKind::Unrounded => (ends_ms / 1000) as i64,
            _ => ends_ms.div_ceil(1000) as i64,
        }
    }

    /// The principal's current window, a new one if the last has ended.
    fn current_window(&mut self, principal: &Principal, now: u64) -> &mut RateWindow {
        let ends_ms = self.window_end(now);
        let reset = self.reset_header(ends_ms);
        let len = self.window.as_millis() as u64;
        let entry = self.budgets.entry(principal.clone()).or_default();
        if entry.window.is_none_or(|w| now >= w.ends_ms) {
            entry.history.push(RateWindowRecord {
                start: UNIX_EPOCH + Duration::from_millis(ends_ms.saturating_sub(len)),
                end: UNIX_EPOCH + Duration::from_millis(ends_ms),
                reset,
                counted: 0,
            });
            entry.window = Some(RateWindow { used: 0, ends_ms });
        }
        entry.window.as_mut().expect("set above")
    }

    /// Counts a request against the principal's window, or refuses it when the window is
    /// used up (a refused request is not counted).
    pub fn admit(&mut self, principal: &Principal) -> Admission {
        let now = now_ms();
        let limit = self.limit;
        let window = self.current_window(principal, now);
        let ends_ms = window.ends_ms;
        let used = window.used;
        let reset = self.reset_header(ends_ms);
        if used >= limit {
            self.rate_limited += 1;
            return Admission::Limited(RateLimitState {
                limit,
                remaining: 0,
                reset,
            });
        }
        if let Some(entry) = self.budgets.get_mut(principal) {
            if let Some(window) = entry.window.as_mut() {
                window.used += 1;
            }
            if let Some(record) = entry.history.last_mut() {
                record.counted += 1;
            }
        }
        self.counted += 1;
        Admission::Counted(RateLimitState {
            limit,
            remaining: limit - used - 1,
            reset,
        })
    }

    /// The principal's window as the headers would show it without counting a request.
    pub fn rate_state(&self, principal: &Principal) -> RateLimitState {
        let now = now_ms();
        match self.budgets.get(principal).and_then(|t| t.window) {
            Some(w) if now < w.ends_ms => RateLimitState {
                limit: self.limit,
                remaining: self.limit.saturating_sub(w.used),
                reset: self.reset_header(w.ends_ms),
            },
            _ => RateLimitState {
                limit: self.limit,
                remaining: self.limit,
                reset: self.reset_header(self.window_end(now)),
            },
        }
    }

    /// Uses up what is left of the principal's current window, as another consumer of the
    /// same budget would.
    pub fn use_up(&mut self, principal: &Principal) {
        let limit = self.limit;
        self.current_window(principal, now_ms()).used = limit;
    }

    /// Counts up to `n` requests against the principal's current window, as another
    /// program using the same budget would; returns how many fit before the limit.
    pub fn spend(&mut self, principal: &Principal, n: u32) -> u32 {
        let limit = self.limit;
        let window = self.current_window(principal, now_ms());
        let spent = n.min(limit.saturating_sub(window.used));
        window.used += spent;
        if let Some(record) = self
            .budgets
            .get_mut(principal)
            .and_then(|t| t.history.last_mut())
        {
            record.counted += spent;
        }
        spent
    }

    /// From now on, `limit` requests per `window`. Every token's current window ends now
    /// (what it counted is forgotten), so the next request opens one of the new length:
    /// a client's belief about the old window is wrong from this moment on.
    pub fn set_rate_limit(&mut self, limit: u32, window: Duration) {
        self.limit = limit.max(1);
        self.window = window.max(Duration::from_millis(1));
        let now = now_ms();
        for entry in self.budgets.values_mut() {
            if let Some(current) = entry.window.take()
                && current.ends_ms > now
                && let Some(record) = entry.history.last_mut()
            {
                record.end = UNIX_EPOCH + Duration::from_millis(now);
            }
        }
    }

    /// Every rate window of the principal so far, oldest first.
    pub fn windows(&self, principal: &Principal) -> Vec<RateWindowRecord> {
        self.budgets
            .get(principal)
            .map(|t| t.history.clone())
            .unwrap_or_default()
    }

    pub fn schedule(&mut self, scope: FaultScope, fault: Fault, times: Option<u32>) {
        if times == Some(0) {
            return;
        }
        self.faults.push(ScheduledFault {
            scope,
            fault,
            times,
        });
    }

    pub fn set_error_rate(&mut self, share: f64) {
        self.error_rate = share.clamp(0.0, 1.0);
    }

    pub fn set_latency(&mut self, latency: Duration) {
        self.latency = latency;
    }

    pub fn clear_faults(&mut self) {
        self.faults.clear();
        self.error_rate = 0.0;
        self.latency = Duration::ZERO;
    }

    /// The next message id: above every id so far, and shaped like Chatwork's (19 digits
    /// that grow with time).
    fn next_id(&mut self) -> String {
        let from_clock = (now_secs() as u128) * 1_000_000_000;
        self.last_id = (self.last_id + 1).max(from_clock);
        self.last_id.to_string()
    }

    pub fn post(
        &mut self,
        room_id: i64,
        account: Account,
        body: String,
        id: Option<String>,
    ) -> Option<String> {
        let id = match id {
            Some(id) => {
                if let Ok(n) = id.parse::<u128>() {
                    self.last_id = self.last_id.max(n);
                }
                id
            }
            None => self.next_id(),
        };
        let members = self.members_of(room_id);
        let room = &mut self.rooms.get_mut(&room_id)?.room;
        let now = now_secs();
        let key = id_key(&id);
        let at = room
            .messages
            .partition_point(|m| id_key(&m.message_id) < key);
        let message = Message {
            message_id: id.clone(),
            account,
            body,
            send_time: now,
            update_time: 0,
        };
        self.webhooks
            .message_event(room_id, &message, false, |id| members.contains(&id));
        room.messages.insert(at, message);
        room.last_update_time = room.last_update_time.max(now);
        Some(id)
    }

    /// The accounts that are members of a room.
    fn members_of(&self, room_id: i64) -> BTreeSet<i64> {
        self.accounts
            .iter()
            .filter(|(_, a)| a.rooms.contains(&room_id))
            .map(|(id, _)| *id)
            .collect()
    }

    pub fn edit(&mut self, room_id: i64, message_id: &str, body: String) -> bool {
        let members = self.members_of(room_id);
        let Some(stored) = self.rooms.get_mut(&room_id) else {
            return false;
        };
        let room = &mut stored.room;
        let Some(message) = room
            .messages
            .iter_mut()
            .find(|m| m.message_id == message_id)
        else {
            return false;
        };
        // A later second than any earlier edit or the send, so that a reader comparing
        // update times always sees the edit as newer.
        let at = now_secs()
            .max(message.update_time + 1)
            .max(message.send_time + 1);
        message.body = body;
        message.update_time = at;
        self.webhooks
            .message_event(room_id, message, true, |id| members.contains(&id));
        room.last_update_time = room.last_update_time.max(at);
        true
    }

    /// The messages `principal` gets from `GET /rooms/{id}/messages`: with `force`, the
    /// latest [`MAX_MESSAGES`]; without, the latest [`MAX_MESSAGES`] of those it has not
    /// fetched yet (older unfetched ones are skipped, as Chatwork does). Either way the
    /// room counts as fetched up to its newest message afterwards.
    pub fn fetch_messages(
        &mut self,
        principal: &Principal,
        room_id: i64,
        force: bool,
    ) -> Vec<Message> {
        let Some(stored) = self.rooms.get(&room_id) else {
            return Vec::new();
        };
        let messages = &stored.room.messages;
        let entry = self.budgets.entry(principal.clone()).or_default();
        let unseen_from = match (force, entry.fetched.get(&room_id)) {
            (false, Some(seen)) => messages.partition_point(|m| &id_key(&m.message_id) <= seen),
            _ => 0,
        };
        let start = unseen_from.max(messages.len().saturating_sub(MAX_MESSAGES));
        if let Some(newest) = messages.last() {
            entry.fetched.insert(room_id, id_key(&newest.message_id));
        }
        messages[start..].to_vec()
    }
    // ---- tasks, files, members ----

    /// Adds a task to a room (a new id when its id is 0); returns the id, `None` when the
    /// room does not exist. The room's `last_update_time` moves, as a task's message does.
    pub fn add_task(&mut self, room_id: i64, mut task: Task) -> Option<i64> {
        let room = &mut self.rooms.get_mut(&room_id)?.room;
        if task.task_id <= 0 {
            self.last_task_id += 1;
            task.task_id = self.last_task_id;
        }
        self.last_task_id = self.last_task_id.max(task.task_id);
        let id = task.task_id;
        room.tasks.push(task);
        room.last_update_time = room.last_update_time.max(now_secs());
        Some(id)
    }

    /// Changes a task in place; false when there is no such task.
    pub fn change_task(&mut self, room_id: i64, task_id: i64, f: impl FnOnce(&mut Task)) -> bool {
        let Some(task) = self
            .rooms
            .get_mut(&room_id)
            .and_then(|r| r.room.tasks.iter_mut().find(|t| t.task_id == task_id))
        else {
            return false;
        };
        f(task);
        true
    }

    /// Marks a task done.
    pub fn complete_task(&mut self, room_id: i64, task_id: i64) -> bool {
        self.change_task(room_id, task_id, |t| t.status = TaskStatus::Done)
    }

    /// Moves a task's deadline.
    pub fn set_task_deadline(
        &mut self,
        room_id: i64,
        task_id: i64,
        limit_type: LimitType,
        limit_time: i64,
    ) -> bool {
        self.change_task(room_id, task_id, |t| {
            t.limit_type = limit_type;
            t.limit_time = if limit_type == LimitType::None {
                0
            } else {
                limit_time
            };
        })
    }

    /// Uploads a file to a room now (a new id when its id is 0); returns the id.
    pub fn add_file(&mut self, room_id: i64, mut file: File) -> Option<i64> {
        let room = &mut self.rooms.get_mut(&room_id)?.room;
        if file.file_id <= 0 {
            self.last_file_id += 1;
            file.file_id = self.last_file_id;
        }
        self.last_file_id = self.last_file_id.max(file.file_id);
        if file.upload_time == 0 {
            file.upload_time = now_secs();
        }
        let id = file.file_id;
        room.files.push(file);
        room.last_update_time = room.last_update_time.max(now_secs());
        Some(id)
    }

    /// A new download URL's secret for a file of a room; `None` when there is no such file.
    pub fn issue_download(&mut self, room_id: i64, file_id: i64) -> Option<String> {
        let exists = self
            .rooms
            .get(&room_id)
            .is_some_and(|r| r.room.files.iter().any(|f| f.file_id == file_id));
        exists.then(|| self.downloads.issue(room_id, file_id, &mut self.rng))
    }

    /// The bytes behind a download URL's secret while it is valid; logged either way.
    pub fn download(&mut self, secret: &str) -> Option<Vec<u8>> {
        let now = now_ms();
        let found = self.downloads.issued.get(secret).cloned();
        let bytes = found.as_ref().filter(|d| now < d.expires_ms).and_then(|d| {
            let room = &self.rooms.get(&d.room_id)?.room;
            let file = room.files.iter().find(|f| f.file_id == d.file_id)?;
            Some(file.bytes.clone())
        });
        self.downloads.log.push(DownloadRecord {
            room_id: found.as_ref().map(|d| d.room_id),
            file_id: found.as_ref().map(|d| d.file_id),
            status: if bytes.is_some() { 200 } else { 403 },
        });
        bytes
    }

    /// Who `GET /rooms/{id}/members` lists: the room's own list, else the fake's accounts
    /// that are members of it.
    pub fn room_members(&self, room_id: i64) -> Vec<Member> {
        let Some(stored) = self.rooms.get(&room_id) else {
            return Vec::new();
        };
        if !stored.room.members.is_empty() {
            return stored.room.members.clone();
        }
        self.accounts
            .values()
            .filter(|a| a.rooms.contains(&room_id))
            .map(|a| Member {
                organization_id: a.info.organization_id,
                ..Member::new(a.info.as_author(), a.info.organization_name.clone())
            })
            .collect()
    }
}
