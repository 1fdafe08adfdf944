//! Chatwork's JSON shapes as typed models, and the ordering of message ids.

use std::cmp::Ordering;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};

/// The three kinds of room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RoomType {
    My,
    Direct,
    Group,
}

impl RoomType {
    /// The text stored in `chatwork_rooms.room_type`.
    pub fn as_str(self) -> &'static str {
        match self {
            RoomType::My => "my",
            RoomType::Direct => "direct",
            RoomType::Group => "group",
        }
    }
}

/// A room as `GET /rooms` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Room {
    pub room_id: i64,
    pub name: String,
    #[serde(rename = "type")]
    pub room_type: RoomType,
    /// `admin`, `member` or `readonly`.
    #[serde(default)]
    pub role: String,
    #[serde(default)]
    pub sticky: bool,
    #[serde(default)]
    pub unread_num: i64,
    #[serde(default)]
    pub mention_num: i64,
    #[serde(default)]
    pub mytask_num: i64,
    /// How many messages the room holds.
    #[serde(default)]
    pub message_num: i64,
    #[serde(default)]
    pub file_num: i64,
    #[serde(default)]
    pub task_num: i64,
    #[serde(default)]
    pub icon_path: String,
    /// Epoch seconds of the room's last activity.
    #[serde(default)]
    pub last_update_time: i64,
}

impl Room {
    /// `last_update_time` as a time; `None` for 0 (no activity reported).
    pub fn last_updated_at(&self) -> Option<DateTime<Utc>> {
        epoch_or_none(self.last_update_time)
    }
}

/// A room as `GET /rooms/{id}` answers: the list fields and the description.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomDetail {
    #[serde(flatten)]
    pub room: Room,
    #[serde(default)]
    pub description: String,
}

/// The account a token speaks for, as `GET /me` answers (the fields cwsync keeps).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Me {
    pub account_id: i64,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub organization_id: Option<i64>,
    #[serde(default)]
    pub organization_name: String,
}

impl Storable for Me {
    fn make_storable(&mut self) -> usize {
        replace_nul(&mut self.name) + replace_nul(&mut self.organization_name)
    }
}

/// The author of a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageAccount {
    pub account_id: i64,
    pub name: String,
    #[serde(default)]
    pub avatar_image_url: String,
}

/// The most messages one `GET /rooms/{id}/messages` returns: Chatwork has no paging into
/// older history, so a room that got more than this since its last fetch has a gap.
pub const MESSAGES_PER_REQUEST: usize = 100;

/// A message as `GET /rooms/{id}/messages` answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// A decimal string of 19 digits or more: kept as text, ordered with
    /// [`compare_message_ids`]. Decoding rejects anything but 1 to 40 digits.
    #[serde(deserialize_with = "message_id")]
    pub message_id: String,
    pub account: MessageAccount,
    pub body: String,
    /// Epoch seconds.
    pub send_time: i64,
    /// Epoch seconds of the last edit; 0 when never edited.
    #[serde(default)]
    pub update_time: i64,
}

impl Message {
    /// When it was sent. An impossible timestamp reads as the epoch rather than failing.
    pub fn sent_at(&self) -> DateTime<Utc> {
        DateTime::from_timestamp(self.send_time, 0).unwrap_or_default()
    }

    /// When it was last edited; `None` when never (Chatwork sends 0).
    pub fn updated_at(&self) -> Option<DateTime<Utc>> {
        epoch_or_none(self.update_time)
    }
}

fn epoch_or_none(secs: i64) -> Option<DateTime<Utc>> {
    if secs <= 0 {
        None
    } else {
        DateTime::from_timestamp(secs, 0)
    }
}

/// Whether `id` has the form of a Chatwork message id (what the database accepts too).
pub fn is_message_id(id: &str) -> bool {
    (1..=40).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_digit())
}

fn message_id<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Text(String),
        Number(u64),
    }
    let id = match Raw::deserialize(deserializer)? {
        Raw::Text(text) => text,
        // Chatwork sends a string; a number is accepted for robustness.
        Raw::Number(n) => n.to_string(),
    };
    if is_message_id(&id) {
        Ok(id)
    } else {
        Err(serde::de::Error::custom(format!(
            "message_id must be 1 to 40 decimal digits, got {:?}",
            id.chars().take(45).collect::<String>()
        )))
    }
}

/// What stands in for a character of Chatwork's text that Postgres cannot store.
pub const REPLACEMENT_CHAR: char = '\u{FFFD}';

/// Replaces each NUL in `text` (which Postgres refuses in `text` and `jsonb`) by
/// [`REPLACEMENT_CHAR`], so that a reader sees where it was; returns how many. The rule
/// for every Chatwork text cwsync stores, fetched or pushed by a webhook.
pub fn replace_nul(text: &mut String) -> usize {
    let count = text.bytes().filter(|b| *b == 0).count();
    if count > 0 {
        *text = text.replace('\0', REPLACEMENT_CHAR.encode_utf8(&mut [0; 4]));
    }
    count
}

/// Counts the characters of Chatwork's text replaced to be storable, by where the text
/// came from (`api`, `webhook`).
pub(crate) fn count_replaced(source: &'static str, replaced: usize) {
    metrics::counter!("chatwork_text_replaced", "source" => source).increment(replaced as u64);
}

/// A decoded answer made storable: every text field through [`replace_nul`].
pub trait Storable {
    /// Replaces what Postgres cannot store; returns how many characters.
    fn make_storable(&mut self) -> usize;
}

impl<T: Storable> Storable for Vec<T> {
    fn make_storable(&mut self) -> usize {
        self.iter_mut().map(Storable::make_storable).sum()
    }
}

impl Storable for Room {
    fn make_storable(&mut self) -> usize {
        replace_nul(&mut self.name) + replace_nul(&mut self.role) + replace_nul(&mut self.icon_path)
    }
}

impl Storable for RoomDetail {
    fn make_storable(&mut self) -> usize {
        self.room.make_storable() + replace_nul(&mut self.description)
    }
}

impl Storable for MessageAccount {
    fn make_storable(&mut self) -> usize {
        replace_nul(&mut self.name) + replace_nul(&mut self.avatar_image_url)
    }
}

impl Storable for Message {
    fn make_storable(&mut self) -> usize {
        self.account.make_storable() + replace_nul(&mut self.body)
    }
}

/// The most tasks or files one `GET /rooms/{id}/tasks` (`/files`) returns.
pub const LISTED_PER_REQUEST: usize = 100;

/// A person as a task or a file names them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountRef {
    pub account_id: i64,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub avatar_image_url: String,
}

impl Storable for AccountRef {
    fn make_storable(&mut self) -> usize {
        replace_nul(&mut self.name) + replace_nul(&mut self.avatar_image_url)
    }
}

/// Whether a task is still to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskStatus {
    Open,
    Done,
}

impl TaskStatus {
    /// The text stored in `chatwork_tasks.status`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Done => "done",
        }
    }
}

/// What a task's `limit_time` means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LimitType {
    /// No deadline.
    None,
    /// A day (`limit_time` is that day's end, as Chatwork gives it).
    Date,
    /// An instant.
    Time,
}

impl LimitType {
    /// The text stored in `chatwork_tasks.limit_type`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Date => "date",
            Self::Time => "time",
        }
    }
}

/// A task as `GET /rooms/{id}/tasks` answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Task {
    pub task_id: i64,
    /// The assignee.
    pub account: AccountRef,
    pub assigned_by_account: Option<AccountRef>,
    /// The message the task was made from; `None` when Chatwork names none (or an id
    /// that is not one).
    #[serde(default, deserialize_with = "optional_message_id")]
    pub message_id: Option<String>,
    #[serde(default)]
    pub body: String,
    /// Epoch seconds; 0 for none.
    #[serde(default)]
    pub limit_time: i64,
    pub status: TaskStatus,
    #[serde(default = "no_limit")]
    pub limit_type: LimitType,
}

fn no_limit() -> LimitType {
    LimitType::None
}

impl Task {
    /// The deadline as stored: `None` without one (Chatwork's `none`, or a time of 0).
    pub fn deadline(&self) -> (LimitType, Option<DateTime<Utc>>) {
        match (self.limit_type, epoch_or_none(self.limit_time)) {
            (LimitType::None, _) | (_, None) => (LimitType::None, None),
            (kind, at) => (kind, at),
        }
    }
}

impl Storable for Task {
    fn make_storable(&mut self) -> usize {
        self.account.make_storable()
            + self
                .assigned_by_account
                .as_mut()
                .map_or(0, Storable::make_storable)
            + replace_nul(&mut self.body)
    }
}

/// A file as `GET /rooms/{id}/files` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileInfo {
    pub file_id: i64,
    /// Who uploaded it.
    pub account: AccountRef,
    #[serde(default, deserialize_with = "optional_message_id")]
    pub message_id: Option<String>,
    #[serde(default)]
    pub filename: String,
    /// Bytes, as Chatwork says.
    #[serde(default)]
    pub filesize: i64,
    /// Epoch seconds.
    #[serde(default)]
    pub upload_time: i64,
}

impl FileInfo {
    pub fn uploaded_at(&self) -> DateTime<Utc> {
        DateTime::from_timestamp(self.upload_time.max(0), 0).unwrap_or_default()
    }
}

impl Storable for FileInfo {
    fn make_storable(&mut self) -> usize {
        self.account.make_storable() + replace_nul(&mut self.filename)
    }
}

/// A file as `GET /rooms/{id}/files/{file_id}?create_download_url=1` answers: its
/// download URL works for about 30 s and is a credential while it does, so its `Debug`
/// never shows it.
#[derive(Clone, Deserialize)]
pub struct FileDownload {
    #[serde(flatten)]
    pub file: FileInfo,
    #[serde(default)]
    pub download_url: Option<secrecy::SecretString>,
}

impl std::fmt::Debug for FileDownload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileDownload")
            .field("file", &self.file)
            .field(
                "download_url",
                &self.download_url.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

impl Storable for FileDownload {
    fn make_storable(&mut self) -> usize {
        self.file.make_storable()
    }
}

/// A member of a room as `GET /rooms/{id}/members` answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub account_id: i64,
    /// `admin`, `member` or `readonly`.
    #[serde(default)]
    pub role: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub chatwork_id: String,
    #[serde(default)]
    pub organization_id: Option<i64>,
    #[serde(default)]
    pub organization_name: String,
    #[serde(default)]
    pub department: String,
    #[serde(default)]
    pub avatar_image_url: String,
}

impl Storable for Member {
    fn make_storable(&mut self) -> usize {
        replace_nul(&mut self.role)
            + replace_nul(&mut self.name)
            + replace_nul(&mut self.chatwork_id)
            + replace_nul(&mut self.organization_name)
            + replace_nul(&mut self.department)
            + replace_nul(&mut self.avatar_image_url)
    }
}

/// A message id that may be missing: an empty string, a 0 or anything that is not an id
/// reads as `None` rather than failing the whole list.
fn optional_message_id<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Text(String),
        Number(u64),
        Nothing(()),
    }
    let id = match Raw::deserialize(deserializer)? {
        Raw::Text(text) => text,
        Raw::Number(n) => n.to_string(),
        Raw::Nothing(()) => return Ok(None),
    };
    Ok((is_message_id(&id) && !id.trim_start_matches('0').is_empty()).then_some(id))
}

/// Orders two message ids by their numeric value, for decimal strings of any length
/// ("99" < "100"; leading zeros do not count). Ids are never parsed into a machine
/// integer: Chatwork's already have 19 digits and will outgrow `u64`. Strings that are
/// not decimal digits are ordered by the same rule, which keeps the order total.
pub fn compare_message_ids(a: &str, b: &str) -> Ordering {
    let a = a.trim_start_matches('0');
    let b = b.trim_start_matches('0');
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

/// The numerically greatest id, or `None` when there are none.
pub fn latest_message_id<'a, I>(ids: I) -> Option<&'a str>
where
    I: IntoIterator<Item = &'a str>,
{
    ids.into_iter().max_by(|a, b| compare_message_ids(a, b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_ids_compare_as_numbers_of_any_length() {
        assert_eq!(compare_message_ids("99", "100"), Ordering::Less);
        assert_eq!(compare_message_ids("100", "99"), Ordering::Greater);
        assert_eq!(compare_message_ids("0100", "100"), Ordering::Equal);
        assert_eq!(compare_message_ids("0", "000"), Ordering::Equal);
        let nineteen = "1234567890123456789";
        let twenty = "12345678901234567890";
        let twenty_five = "9999999999999999999999999";
        assert_eq!(compare_message_ids(nineteen, twenty), Ordering::Less);
        assert_eq!(compare_message_ids(twenty_five, twenty), Ordering::Greater);
        // As text, "9..." > "1..."; as numbers, the longer id is later.
        assert_eq!(
            compare_message_ids("9223372036854775807", "18446744073709551616"),
            Ordering::Less
        );
    }

    #[test]
    fn latest_message_id_picks_the_numeric_maximum() {
        assert_eq!(latest_message_id(Vec::<&str>::new()), None);
        assert_eq!(latest_message_id(["99", "100", "7"]), Some("100"));
        let ids = [
            "1747008000105000001".to_owned(),
            "100000000000000000000".to_owned(),
            "9999999999999999999".to_owned(),
        ];
        assert_eq!(
            latest_message_id(ids.iter().map(String::as_str)),
            Some("100000000000000000000")
        );
    }

    #[test]
    fn messages_decode_from_chatworks_json() {
        let json = r#"{
            "message_id": "1747008000105000001",
            "account": {"account_id": 123, "name": "佐藤 健一", "avatar_image_url": "https://example.com/a.png"},
            "body": "[To:1001002]鈴木さん\nよろしくお願いします🙏",
            "send_time": 1747008000,
            "update_time": 0
        }"#;
        let m: Message = serde_json::from_str(json).unwrap();
        assert_eq!(m.message_id, "1747008000105000001");
        assert_eq!(m.sent_at().timestamp(), 1_747_008_000);
        assert_eq!(m.updated_at(), None);
        let edited = Message {
            update_time: 1_747_008_060,
            ..m
        };
        assert_eq!(edited.updated_at().unwrap().timestamp(), 1_747_008_060);

        let numeric: Message = serde_json::from_str(
            r#"{"message_id": 5, "account": {"account_id": 1, "name": "a"}, "body": "", "send_time": 1}"#,
        )
        .unwrap();
        assert_eq!(numeric.message_id, "5");
        for bad in [r#""12a""#, r#""""#, r#""-1""#] {
            let json = format!(
                r#"{{"message_id": {bad}, "account": {{"account_id": 1, "name": "a"}}, "body": "", "send_time": 1}}"#
            );
            assert!(serde_json::from_str::<Message>(&json).is_err(), "{bad}");
        }
    }

    #[test]
    fn nul_is_replaced_visibly_and_counted() {
        let mut text = "a\0b\0".to_owned();
        assert_eq!(replace_nul(&mut text), 2);
        assert_eq!(text, "a\u{FFFD}b\u{FFFD}");
        assert_eq!(replace_nul(&mut text), 0, "already storable");
        let mut messages: Vec<Message> = serde_json::from_str(
            r#"[{"message_id": "1", "account": {"account_id": 1, "name": "a\u0000"},
                 "body": "x\u0000y", "send_time": 1}]"#,
        )
        .unwrap();
        assert_eq!(messages.make_storable(), 2);
        assert_eq!(messages[0].body, "x\u{FFFD}y");
        assert_eq!(messages[0].account.name, "a\u{FFFD}");
        let mut detail: RoomDetail = serde_json::from_str(
            r#"{"room_id": 1, "name": "\u0000", "type": "my", "description": "d\u0000"}"#,
        )
        .unwrap();
        assert_eq!(detail.make_storable(), 2);
        assert_eq!(detail.room.name, "\u{FFFD}");
    }

    #[test]
    fn rooms_decode_list_and_detail_shapes() {
        let list = r#"[{"room_id": 281000105, "name": "開発", "type": "group", "role": "admin",
            "sticky": false, "unread_num": 1, "mention_num": 0, "mytask_num": 0,
            "message_num": 146, "file_num": 0, "task_num": 0,
            "icon_path": "https://example.com/i.png", "last_update_time": 1747008000}]"#;
        let rooms: Vec<Room> = serde_json::from_str(list).unwrap();
        assert_eq!(rooms[0].room_type, RoomType::Group);
        assert_eq!(rooms[0].room_type.as_str(), "group");
        assert_eq!(
            rooms[0].last_updated_at().unwrap().timestamp(),
            1_747_008_000
        );
        let detail: RoomDetail = serde_json::from_str(
            r#"{"room_id": 1, "name": "me", "type": "my", "last_update_time": 0, "description": "メモ"}"#,
        )
        .unwrap();
        assert_eq!(detail.room.room_type, RoomType::My);
        assert_eq!(detail.description, "メモ");
        assert_eq!(detail.room.last_updated_at(), None);
    }
}
