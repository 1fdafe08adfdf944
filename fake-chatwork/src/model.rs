//! The fake's data and the knobs a test turns: rooms, messages, accounts, faults, the
//! request log.

use std::time::{Duration, SystemTime};

use serde::Serialize;

/// A Chatwork account as it appears on a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Account {
    pub account_id: i64,
    pub name: String,
    pub avatar_image_url: String,
}

impl Account {
    /// An account with Chatwork's default avatar.
    pub fn new(account_id: i64, name: impl Into<String>) -> Self {
        Self {
            account_id,
            name: name.into(),
            avatar_image_url: format!(
                "https://appdata.chatwork.com/avatar/ico_default_{}.png",
                ["blue", "green", "orange", "purple", "red"][(account_id % 5) as usize]
            ),
        }
    }
}

/// Chatwork's three kinds of room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RoomType {
    /// The owner's private notes ("マイチャット").
    My,
    /// A one-to-one chat.
    Direct,
    /// A group chat.
    Group,
}

/// Whether the token can still read a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RoomAccess {
    #[default]
    Open,
    /// The room was deleted or the token's account left it: every request about it is a
    /// 404, and it is gone from `GET /rooms`.
    Gone,
    /// The account lost the right to read it: every request about it is a 403 (it stays
    /// in `GET /rooms`).
    Forbidden,
}

/// A message as the fake stores and serves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// A decimal string (19 digits in the demo data; any length is served as given).
    pub message_id: String,
    pub account: Account,
    pub body: String,
    /// Epoch seconds.
    pub send_time: i64,
    /// Epoch seconds of the last edit; 0 when never edited.
    pub update_time: i64,
}

/// A room as the fake stores and serves it, with its messages (oldest first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Room {
    pub room_id: i64,
    pub name: String,
    pub room_type: RoomType,
    /// `admin`, `member` or `readonly`.
    pub role: String,
    pub sticky: bool,
    pub icon_path: String,
    pub description: String,
    /// Epoch seconds; moves when a message is posted or edited.
    pub last_update_time: i64,
    pub messages: Vec<Message>,
    /// Its tasks, oldest first (`task_num` counts the open ones).
    pub tasks: Vec<Task>,
    /// Its files, oldest first (`file_num` counts them).
    pub files: Vec<File>,
    /// Who `GET /rooms/{id}/members` lists; empty: the fake's accounts that are members
    /// of the room, with their organizations.
    pub members: Vec<Member>,
}

impl Room {
    /// An empty room with the usual defaults for its type.
    pub fn new(room_id: i64, name: impl Into<String>, room_type: RoomType) -> Self {
        let icon = match room_type {
            RoomType::My => "ico_my",
            RoomType::Direct => "ico_direct",
            RoomType::Group => "ico_group",
        };
        Self {
            room_id,
            name: name.into(),
            room_type,
            role: if room_type == RoomType::Group {
                "member".into()
            } else {
                "admin".into()
            },
            sticky: false,
            icon_path: format!("https://appdata.chatwork.com/icon/{icon}.png"),
            description: String::new(),
            last_update_time: 0,
            messages: Vec::new(),
            tasks: Vec::new(),
            files: Vec::new(),
            members: Vec::new(),
        }
    }
}

/// Whether a task is still to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskStatus {
    Open,
    Done,
}

/// What a task's `limit_time` means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LimitType {
    /// No deadline (`limit_time` 0).
    None,
    /// A day: `limit_time` is that day's end.
    Date,
    /// An instant.
    Time,
}

/// A task of a room, as the fake stores and serves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Task {
    /// Unique across the fake; [`FakeChatwork::add_task`](crate::FakeChatwork::add_task)
    /// gives one when it is 0.
    pub task_id: i64,
    /// The assignee.
    pub account: Account,
    pub assigned_by: Account,
    /// The message the task was made from (a decimal string; empty for none).
    pub message_id: String,
    pub body: String,
    /// Epoch seconds; 0 for [`LimitType::None`].
    pub limit_time: i64,
    pub limit_type: LimitType,
    pub status: TaskStatus,
}

impl Task {
    /// An open task without a deadline.
    pub fn new(account: Account, assigned_by: Account, body: impl Into<String>) -> Self {
        Self {
            task_id: 0,
            account,
            assigned_by,
            message_id: String::new(),
            body: body.into(),
            limit_time: 0,
            limit_type: LimitType::None,
            status: TaskStatus::Open,
        }
    }

    /// The same task due at `limit_time` (epoch seconds) of `limit_type`.
    pub fn due(self, limit_type: LimitType, limit_time: i64) -> Self {
        let limit_time = if limit_type == LimitType::None {
            0
        } else {
            limit_time
        };
        Self {
            limit_type,
            limit_time,
            ..self
        }
    }
}

/// A file uploaded to a room, with its bytes (served through download URLs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct File {
    /// Unique across the fake; [`FakeChatwork::add_file`](crate::FakeChatwork::add_file)
    /// gives one when it is 0.
    pub file_id: i64,
    /// Who uploaded it.
    pub account: Account,
    /// The message that announced it (a decimal string; empty for none).
    pub message_id: String,
    pub filename: String,
    pub bytes: Vec<u8>,
    /// Epoch seconds.
    pub upload_time: i64,
    /// What `filesize` says; `None`: the length of `bytes` (a test may make Chatwork's
    /// word differ from what the download holds).
    pub declared_size: Option<u64>,
}

impl File {
    pub fn new(account: Account, filename: impl Into<String>, bytes: Vec<u8>) -> Self {
        Self {
            file_id: 0,
            account,
            message_id: String::new(),
            filename: filename.into(),
            bytes,
            upload_time: 0,
            declared_size: None,
        }
    }

    /// The `filesize` Chatwork reports.
    pub fn filesize(&self) -> u64 {
        self.declared_size.unwrap_or(self.bytes.len() as u64)
    }
}

/// A member of a room as `GET /rooms/{id}/members` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub account: Account,
    /// `admin`, `member` or `readonly`.
    pub role: String,
    pub chatwork_id: String,
    pub organization_id: i64,
    pub organization_name: String,
    pub department: String,
}

impl Member {
    /// A `member` of `organization_name`.
    pub fn new(account: Account, organization_name: impl Into<String>) -> Self {
        Self {
            chatwork_id: format!("user{}", account.account_id),
            organization_id: 0,
            organization_name: organization_name.into(),
            department: String::new(),
            role: "member".into(),
            account,
        }
    }
}

/// Something going wrong, as a test schedules it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Answer with this status and a Chatwork error body. The request counts against the
    /// rate limit, as a real server error after the limiter would.
    Status(u16),
    /// Hold the request this long after it was counted, then answer normally (a client
    /// with a shorter timeout gives up first).
    Hang(Duration),
    /// Hold the request this long before it reaches the rate limiter (a slow network):
    /// a request sent late in a window is counted in the next one.
    Delay(Duration),
    /// Report the window spent (`x-ratelimit-remaining: 0`) until `ahead` from now,
    /// however long that is: on a normal answer, or on a 429 when `refused`.
    SpentFor { ahead: Duration, refused: bool },
    /// Answer 200 with this many bytes of garbage, sent as they are produced and without
    /// a `Content-Length` (a reader learns the size only by reading);
    /// [`FakeChatwork::garbage_sent`](crate::FakeChatwork::garbage_sent) counts the
    /// bytes that left.
    Garbage(usize),
}

/// Which requests a scheduled fault applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultScope {
    /// Any request with a valid token.
    Any,
    /// Requests about this room (`/rooms/{id}` and everything under it).
    Room(i64),
}

/// How the fake's rate-limit windows are laid out in time. Chatwork documents only
/// "300 requests per 5 minutes" and a reset in whole epoch seconds; these are the
/// plausible readings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WindowKind {
    /// A window starts with the first counted request after the previous one ended (at
    /// the start of that second) and lasts the window's length; the reset header is
    /// exact. A test that starts a fake sees no reset for a whole window.
    #[default]
    FromFirstRequest,
    /// Windows on a fixed grid of the window's length since the epoch; the reset header
    /// is exact.
    Aligned,
    /// A window starts with the first counted request and ends exactly the window's
    /// length later, at a fraction of a second, while the reset header is rounded down:
    /// the worst case for a client, which then has to wait past the reported reset.
    Unrounded,
}

/// One request the fake received. The token itself is never recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRecord {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    /// Whether the request carried a token the fake accepts (an API token, or a live
    /// OAuth access token).
    pub token_valid: bool,
    /// The account that token speaks for (`None` when it is not valid).
    pub account_id: Option<i64>,
    /// The status answered; `None` while it is being handled, or when the client went
    /// away first (a hang past its timeout).
    pub status: Option<u16>,
    /// When it arrived.
    pub at: SystemTime,
}

/// The rate-limit state of one budget (an account's, or a token's of its own), as the
/// headers would report it now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitState {
    pub limit: u32,
    pub remaining: u32,
    /// Epoch seconds (`x-ratelimit-reset`).
    pub reset: i64,
}

/// One rate window of a token, as it happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateWindowRecord {
    pub start: SystemTime,
    /// When the window really ended (or will end).
    pub end: SystemTime,
    /// The `x-ratelimit-reset` it reported.
    pub reset: i64,
    /// Requests it counted.
    pub counted: u32,
}

/// A Chatwork account as an API principal: whose token a request carries, whose rooms it
/// sees, whose rate budget it spends (see [`FakeChatwork::add_account`]).
///
/// [`FakeChatwork::add_account`]: crate::FakeChatwork::add_account
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeAccount {
    pub account_id: i64,
    pub name: String,
    pub organization_id: i64,
    pub organization_name: String,
}

impl FakeAccount {
    /// The account as it appears on a message (Chatwork's default avatar).
    pub fn as_author(&self) -> Account {
        Account::new(self.account_id, self.name.clone())
    }
}

/// A confidential OAuth 2.0 client registered with the fake, as a developer registers
/// one in Chatwork's settings.
#[derive(Clone, PartialEq, Eq)]
pub struct FakeOAuthClient {
    pub client_id: String,
    pub client_secret: String,
    /// Exact URIs the consent page may send the browser back to.
    pub redirect_uris: Vec<String>,
}

impl std::fmt::Debug for FakeOAuthClient {
    // The secret is never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeOAuthClient")
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("redirect_uris", &self.redirect_uris)
            .finish()
    }
}

/// How a request to the token endpoint ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenOutcome {
    /// Tokens were issued.
    Ok,
    /// Refused with this OAuth error code (`invalid_client`, `invalid_grant`,
    /// `invalid_request`, `unsupported_grant_type`).
    Error(String),
}

/// One request to the token endpoint. Codes, tokens and secrets are never recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRequestRecord {
    /// As sent (empty when missing).
    pub grant_type: String,
    /// The client of the Basic credentials, when they named one.
    pub client_id: Option<String>,
    /// The account the tokens were issued for (on success).
    pub account_id: Option<i64>,
    pub outcome: TokenOutcome,
    pub at: SystemTime,
}
