//! `chatwork_messages_sync`: one item per room, each storing the room's latest messages,
//! and, for a sync of all rooms, a first step that decides which rooms those are.
//!
//! What a job covers is its [`MessagesSyncPayload`]: one room, listed rooms, the rooms a
//! scheduled room check planned, every room that needs a fetch (a person's sync: its
//! first step is a room check, whose planned rooms become items of the same job, see
//! [`step`]), or every active room (the fixed-interval fallback). Whichever it is, the
//! job a person starts is the whole sync: its `totalRooms`, `processedRooms`, errors and
//! gaps cover every room, and it ends after the last.
//!
//! The modules: [`step`] (the room check as the job's first step), [`room`] (one room's
//! item: start, decide, fetch), [`fetch`] (what a fetch tells: gaps, the newest id) and
//! [`write`] (the one statement that stores a fetch and ends its item).

mod fetch;
mod room;
mod step;
mod write;

use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use uuid::Uuid;

use super::SyncContext;
use super::check::{CheckedRoom, RoomCheckReport};
use super::extras::{self, ExtrasResult, PartReport};
pub use super::snapshot::ListedRoom;
use crate::jobs::{
    self, BatchConnection, Begin, ItemError, ItemRun, ItemStatus, JobItem, JobKind, JobSpec,
    JobType, Outcome, PlannedItem,
};
use crate::queue::QueueName;

/// The messages sync job type.
pub struct MessagesSync;

/// Which rooms a messages sync covers. Stored as `{"scope": "room", "roomId": 42}`,
/// `{"scope": "rooms", "roomIds": [...]}`, `{"scope": "planned", "rooms": [...]}`,
/// `{"scope": "all"}` or `{"scope": "active"}`; payloads written before the scope was
/// named (`{roomId}`, `{roomIds}`, `{rooms}`, `{check: true}`, `{}`) still read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "scope",
    rename_all = "camelCase",
    rename_all_fields = "camelCase",
    try_from = "StoredPayload"
)]
pub enum MessagesSyncPayload {
    /// One room (Chatwork's id), fetched whatever the room list says.
    Room { room_id: i64 },
    /// These rooms, fetched whatever the room list says (a retry of a sync's failed
    /// rooms).
    Rooms { room_ids: Vec<i64> },
    /// The rooms a scheduled room check planned, with what its room list said of each.
    Planned { rooms: Vec<CheckedRoom> },
    /// Every room that needs a fetch: a room check is the job's first step, and the
    /// rooms it plans join the job (a sync of all rooms a person starts).
    All,
    /// Every active room, each fetched when the job's room list says it moved (the
    /// fixed-interval schedule's fallback for when the room check is off).
    #[default]
    Active,
}

/// A payload as stored, in either shape (see [`MessagesSyncPayload`]).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StoredPayload {
    scope: Option<String>,
    room_id: Option<i64>,
    room_ids: Option<Vec<i64>>,
    rooms: Option<Vec<CheckedRoom>>,
    #[serde(default)]
    check: bool,
}

impl TryFrom<StoredPayload> for MessagesSyncPayload {
    type Error = String;

    fn try_from(stored: StoredPayload) -> Result<Self, String> {
        let missing = |field: &str| format!("scope {:?} needs {field}", stored.scope);
        Ok(match stored.scope.as_deref() {
            Some("room") => Self::Room {
                room_id: stored.room_id.ok_or_else(|| missing("roomId"))?,
            },
            Some("rooms") => Self::Rooms {
                room_ids: stored.room_ids.clone().ok_or_else(|| missing("roomIds"))?,
            },
            Some("planned") => Self::Planned {
                rooms: stored.rooms.clone().ok_or_else(|| missing("rooms"))?,
            },
            Some("all") => Self::All,
            Some("active") => Self::Active,
            Some(other) => return Err(format!("unknown scope {other:?}")),
            // Written before the scope was named.
            None => match (stored.room_id, stored.room_ids, stored.rooms) {
                (Some(room_id), _, _) => Self::Room { room_id },
                (None, Some(room_ids), _) => Self::Rooms { room_ids },
                (None, None, Some(rooms)) => Self::Planned { rooms },
                (None, None, None) if stored.check => Self::All,
                (None, None, None) => Self::Active,
            },
        })
    }
}

impl MessagesSyncPayload {
    /// Whether the job names its rooms (fetched whatever the room list says).
    fn names_rooms(&self) -> bool {
        matches!(self, Self::Room { .. } | Self::Rooms { .. })
    }
}

/// The queue message: `{v:1, jobId, roomId, listed?}` for a room, `{v:1, jobId}` for
/// the room check step of a sync of all rooms.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessagesSyncMessage {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room_id: Option<i64>,
    /// What a room check's room list said of the room, when a check planned it: the
    /// item fetches it, and detects gaps by this, without a room list of its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listed: Option<ListedRoom>,
    /// The connection the check chose to fetch it through (else the item chooses).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_id: Option<Uuid>,
    /// Another part of the room than its messages (absent: the messages).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub part: Option<RoomPart>,
    /// What the room list counted of that part (`task_num`, `file_num`), recorded as
    /// synced once the fetch succeeds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listed_count: Option<i64>,
}

/// A part of a room a messages sync fetches besides its messages, as an item of its own
/// (one request each; see `crate::sync::extras`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RoomPart {
    Tasks,
    Files,
    Members,
}

impl RoomPart {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tasks => "tasks",
            Self::Files => "files",
            Self::Members => "members",
        }
    }
}

impl MessagesSyncMessage {
    /// The messages of a room the job names, or one of every active room.
    fn room(room_id: i64) -> Self {
        Self {
            room_id: Some(room_id),
            listed: None,
            connection_id: None,
            part: None,
            listed_count: None,
        }
    }
}

/// The items of a room a check planned: its messages and each other part that needs a
/// fetch, all in the room's group, so they run one after the other.
pub(crate) fn planned_items(room: &CheckedRoom) -> Vec<PlannedItem<MessagesSyncMessage>> {
    let base = MessagesSyncMessage {
        room_id: Some(room.room_id),
        listed: Some(room.listed()),
        connection_id: room.connection,
        part: None,
        listed_count: None,
    };
    let mut items = Vec::new();
    if room.messages {
        items.push(room_item(base.clone()));
    }
    let parts = [
        (RoomPart::Tasks, room.tasks.is_some(), room.tasks),
        (RoomPart::Files, room.files.is_some(), room.files),
        (RoomPart::Members, room.members, None),
    ];
    for (part, wanted, count) in parts {
        if wanted {
            items.push(PlannedItem::work(
                MessagesSyncMessage {
                    listed: None,
                    part: Some(part),
                    listed_count: count,
                    ..base.clone()
                },
                item_key(room.room_id),
            ));
        }
    }
    items
}

/// What one item did: the room check step, or one room.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ItemReport {
    /// The room check step: what it saw and planned, and its Chatwork requests.
    Check {
        check: RoomCheckReport,
        requests: i64,
    },
    /// Before `Room`: a part's report has a `listed`, which a room's never has.
    Part(PartReport),
    Room(RoomFetch),
}

/// What one room's item did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoomFetch {
    pub room_id: Option<i64>,
    /// Messages the request returned.
    pub fetched: i64,
    /// Chatwork requests of the delivery that ended the item.
    pub requests: i64,
    /// Messages that could not be fetched, when there was a gap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gap: Option<GapEstimate>,
    /// Messages inserted and edited (set by the statement that writes them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stored: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edited: Option<i64>,
    /// Why an unchanged room needed no request (`unchanged`, `left`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Chatwork's `chatwork-message-limitation` header, when the plan limits what it shows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_limitation: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GapEstimate {
    pub missed_estimate: i64,
}

/// The result of a messages sync, derived from its items.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MessagesSyncResult {
    /// The rooms the job covers (for a sync of all rooms, those its room check planned;
    /// 0 until the check has run).
    pub total_rooms: i64,
    /// The completed and the unchanged rooms.
    pub processed_rooms: i64,
    pub unchanged_rooms: i64,
    pub canceled_rooms: i64,
    pub failed_rooms: i64,
    pub rooms: Vec<RoomOutcome>,
    pub errors: Vec<RoomFailure>,
    pub gaps: Vec<RoomGap>,
    pub stored_messages: i64,
    pub edited_messages: i64,
    /// Chatwork requests of the deliveries that ended the items (the room check's too).
    pub requests: i64,
    /// A sync of all rooms: what its room check (the first step) saw and planned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<RoomCheckReport>,
    /// What the rooms' tasks, files and members items did (their failures are among
    /// `errors`, their requests in `requests`).
    #[serde(default)]
    pub extras: ExtrasResult,
}

/// A processed room of a messages sync.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RoomOutcome {
    pub room_id: Option<i64>,
    pub fetched: i32,
    /// `completed` or `unchanged`.
    pub status: ItemStatus,
}

/// A failed room of a messages sync (or its room check, without a room).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RoomFailure {
    pub room_id: Option<i64>,
    pub message: String,
}

/// A room of a messages sync whose history has a gap.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RoomGap {
    pub room_id: Option<i64>,
    pub missed_estimate: i64,
}

/// The item key of a sync's room check step.
pub const CHECK_ITEM_KEY: &str = "check";

/// The item key of a room('s messages).
pub fn item_key(room_id: i64) -> String {
    format!("room-{room_id}")
}

/// The item key of another part of a room: `tasks-<id>`, `files-<id>`, `members-<id>`.
pub fn part_item_key(part: RoomPart, room_id: i64) -> String {
    format!("{}-{room_id}", part.as_str())
}

/// What [`MessagesSync::begin`] read for the handler.
pub enum ItemRead {
    /// The room check step reads nothing there.
    Step,
    Room(Box<room::FirstRead>),
    /// Another part of a room reads nothing there either.
    Part,
}

type Item = JobItem<MessagesSyncMessage, ItemReport>;

impl JobSpec for MessagesSync {
    const TYPE: JobType = JobType::new("chatwork_messages_sync");
    const QUEUE: QueueName = QueueName::work("messages-sync");
    const LABEL: &'static str = "messages sync";
    const ITEMS: &'static str = "rooms";
    type Payload = MessagesSyncPayload;
    type Message = MessagesSyncMessage;
    type ItemResult = ItemReport;
    type Result = MessagesSyncResult;

    /// Syncs of all rooms (a person's, the schedule's planned or fixed-interval ones)
    /// share one key: a sync started while another runs answers with that one.
    fn active_key(payload: &MessagesSyncPayload) -> String {
        match payload {
            MessagesSyncPayload::Room { room_id } => item_key(*room_id),
            MessagesSyncPayload::Rooms { room_ids } => {
                // A digest: the list may be long, and the key at most 200 characters.
                use sha2::Digest;
                let mut ids = room_ids.clone();
                ids.sort_unstable();
                let text: Vec<String> = ids.iter().map(i64::to_string).collect();
                let digest = sha2::Sha256::digest(text.join(",").as_bytes());
                let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
                format!("rooms-{hex}")
            }
            MessagesSyncPayload::Planned { .. }
            | MessagesSyncPayload::All
            | MessagesSyncPayload::Active => "all".into(),
        }
    }

    fn item_key(message: &MessagesSyncMessage) -> String {
        match (message.room_id, message.part) {
            (Some(room_id), Some(part)) => part_item_key(part, room_id),
            (Some(room_id), None) => item_key(room_id),
            (None, _) => CHECK_ITEM_KEY.to_owned(),
        }
    }

    /// The rooms named, the rooms a check planned (in its order: riskiest first), every
    /// active room the account has not left, or, for a sync of all rooms, the room check
    /// step alone (it plans the rest).
    async fn plan(
        pool: &PgPool,
        payload: &MessagesSyncPayload,
    ) -> Result<Vec<PlannedItem<MessagesSyncMessage>>, sqlx::Error> {
        let rooms: Vec<MessagesSyncMessage> = match payload {
            MessagesSyncPayload::Room { room_id } => vec![MessagesSyncMessage::room(*room_id)],
            MessagesSyncPayload::Rooms { room_ids } => {
                let mut ids = room_ids.clone();
                ids.sort_unstable();
                ids.dedup();
                ids.into_iter().map(MessagesSyncMessage::room).collect()
            }
            MessagesSyncPayload::Planned { rooms } => {
                return Ok(rooms.iter().flat_map(planned_items).collect());
            }
            MessagesSyncPayload::All => {
                return Ok(vec![PlannedItem::step(
                    MessagesSyncMessage {
                        room_id: None,
                        listed: None,
                        connection_id: None,
                        part: None,
                        listed_count: None,
                    },
                    CHECK_ITEM_KEY,
                )]);
            }
            MessagesSyncPayload::Active => sqlx::query_scalar!(
                "SELECT room_id FROM chatwork_rooms
                  WHERE is_active AND left_at IS NULL
                  ORDER BY room_id"
            )
            .fetch_all(pool)
            .await?
            .into_iter()
            .map(MessagesSyncMessage::room)
            .collect(),
        };
        Ok(rooms.into_iter().map(room_item).collect())
    }

    /// `totalRooms` counts the rooms (not the room check step); `processedRooms` the
    /// completed and the unchanged ones; `requests` the Chatwork requests of the
    /// deliveries that ended the items, the check's included. A room check that failed
    /// is listed among the errors, without a room.
    fn summarize(items: &[Item]) -> MessagesSyncResult {
        let (steps, work): (Vec<&Item>, Vec<&Item>) = items.iter().partition(|i| i.step);
        let is_part = |i: &&Item| i.message.as_ref().is_some_and(|m| m.part.is_some());
        let (parts, rooms): (Vec<&Item>, Vec<&Item>) = work.into_iter().partition(is_part);
        let extras = extras::summarize(&parts);
        let check = steps.iter().find_map(|i| match &i.result {
            Some(ItemReport::Check { check, requests }) => Some((check.clone(), *requests)),
            _ => None,
        });
        let fetch_of = |item: &Item| match &item.result {
            Some(ItemReport::Room(fetch)) => Some(fetch.clone()),
            _ => None,
        };
        let room_of = |item: &Item| item.message.as_ref().and_then(|m| m.room_id);
        let fetches: Vec<RoomFetch> = rooms.iter().filter_map(|i| fetch_of(i)).collect();
        let sum = |field: fn(&RoomFetch) -> i64| fetches.iter().map(field).sum::<i64>();
        let count = |status: ItemStatus| rooms.iter().filter(|i| i.status == status).count() as i64;
        let processed: Vec<RoomOutcome> = rooms
            .iter()
            .filter(|i| matches!(i.status, ItemStatus::Completed | ItemStatus::Unchanged))
            .map(|i| RoomOutcome {
                room_id: room_of(i),
                fetched: i.fetched,
                status: i.status,
            })
            .collect();
        let errors = steps
            .iter()
            .chain(rooms.iter())
            .chain(parts.iter())
            .filter(|i| i.status == ItemStatus::Failed)
            .map(|i| RoomFailure {
                room_id: room_of(i),
                message: i
                    .error
                    .as_ref()
                    .map_or_else(|| "failed".into(), |e| e.message.clone()),
            })
            .collect();
        let gaps = rooms
            .iter()
            .filter_map(|i| {
                let gap = fetch_of(i)?.gap?;
                Some(RoomGap {
                    room_id: room_of(i),
                    missed_estimate: gap.missed_estimate,
                })
            })
            .collect();
        MessagesSyncResult {
            total_rooms: rooms.len() as i64,
            processed_rooms: processed.len() as i64,
            unchanged_rooms: count(ItemStatus::Unchanged),
            canceled_rooms: count(ItemStatus::Canceled),
            failed_rooms: count(ItemStatus::Failed),
            rooms: processed,
            errors,
            gaps,
            stored_messages: sum(|r| r.stored.unwrap_or(0)),
            edited_messages: sum(|r| r.edited.unwrap_or(0)),
            requests: check.as_ref().map_or(0, |c| c.1) + sum(|r| r.requests) + extras.requests,
            check: check.map(|c| c.0),
            extras,
        }
    }

    /// The failed rooms, named: they are fetched whatever the room list says. (A job
    /// whose room check failed has no room items: it is retried whole, see
    /// [`jobs::Registry`].)
    fn retry_payload(
        _payload: &MessagesSyncPayload,
        failed: &[Item],
    ) -> Option<MessagesSyncPayload> {
        let room_ids: Vec<i64> = failed
            .iter()
            .filter(|i| !i.step)
            .filter_map(|i| i.message.as_ref()?.room_id)
            .collect();
        (!room_ids.is_empty()).then_some(MessagesSyncPayload::Rooms { room_ids })
    }

    fn describe(result: &MessagesSyncResult) -> String {
        let fetched: i64 = result.rooms.iter().map(|r| i64::from(r.fetched)).sum();
        let rooms = format!(
            "{}/{} rooms ({} unchanged), {fetched} messages fetched, {} errors",
            result.processed_rooms,
            result.total_rooms,
            result.unchanged_rooms,
            result.errors.len()
        );
        match &result.check {
            Some(check) => format!("{}; {rooms}", check.describe()),
            None => rooms,
        }
    }
}

/// The item of one room: rooms sync in parallel, each room in order.
fn room_item(message: MessagesSyncMessage) -> PlannedItem<MessagesSyncMessage> {
    let group = MessagesSync::item_key(&message);
    PlannedItem::work(message, group)
}

impl JobKind for MessagesSync {
    type Context = SyncContext;
    type Read = ItemRead;

    /// A room's item starts in the statement that reads its state (see
    /// [`room::begin_and_read`]); the room check step starts as any item does.
    async fn begin(
        context: &SyncContext,
        db: &BatchConnection,
        job_id: Uuid,
        item_key: &str,
        message: &MessagesSyncMessage,
    ) -> Result<Begin<ItemRead>, sqlx::Error> {
        match (message.room_id, message.part) {
            (Some(room_id), None) => {
                room::begin_and_read(context, db, job_id, item_key, room_id, message).await
            }
            (Some(_), Some(_)) => Ok(jobs::begin_item(db, job_id, item_key)
                .await?
                .with_read(|()| ItemRead::Part)),
            (None, _) => Ok(jobs::begin_item(db, job_id, item_key)
                .await?
                .with_read(|()| ItemRead::Step)),
        }
    }

    async fn run(
        context: &SyncContext,
        item: &ItemRun,
        message: MessagesSyncMessage,
        read: ItemRead,
    ) -> Result<Outcome<Self>, ItemError> {
        match (message.room_id, read) {
            (Some(room_id), ItemRead::Part) => match message.part {
                Some(part) => {
                    extras::run(
                        context,
                        item,
                        room_id,
                        part,
                        message.listed_count,
                        message.connection_id,
                    )
                    .await
                }
                None => Err(ItemError::Retry(anyhow::anyhow!(
                    "the item's start and its message disagree"
                ))),
            },
            (Some(room_id), ItemRead::Room(read)) => {
                room::run(
                    context,
                    item,
                    room_id,
                    message.listed,
                    message.connection_id,
                    *read,
                )
                .await
            }
            (None, ItemRead::Step) => step::run(context, item).await,
            // `begin` reads by the message: the two always agree.
            _ => Err(ItemError::Retry(anyhow::anyhow!(
                "the item's start and its message disagree"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn payloads_name_their_scope_and_old_ones_still_read() {
        let cases = [
            (
                MessagesSyncPayload::Room { room_id: 5 },
                json!({"scope": "room", "roomId": 5}),
            ),
            (
                MessagesSyncPayload::Rooms {
                    room_ids: vec![1, 2],
                },
                json!({"scope": "rooms", "roomIds": [1, 2]}),
            ),
            (MessagesSyncPayload::All, json!({"scope": "all"})),
            (MessagesSyncPayload::Active, json!({"scope": "active"})),
        ];
        for (payload, stored) in cases {
            assert_eq!(serde_json::to_value(&payload).unwrap(), stored);
            assert_eq!(
                serde_json::from_value::<MessagesSyncPayload>(stored).unwrap(),
                payload
            );
        }
        let old = |v| serde_json::from_value::<MessagesSyncPayload>(v).unwrap();
        assert_eq!(
            old(json!({"roomId": 7})),
            MessagesSyncPayload::Room { room_id: 7 }
        );
        assert_eq!(old(json!({"check": true})), MessagesSyncPayload::All);
        assert_eq!(old(json!({})), MessagesSyncPayload::Active);
        assert!(serde_json::from_value::<MessagesSyncPayload>(json!({"scope": "room"})).is_err());
        assert!(serde_json::from_value::<MessagesSyncPayload>(json!({"scope": "x"})).is_err());
    }

    #[test]
    fn every_sync_of_all_rooms_shares_one_active_key() {
        let planned = MessagesSyncPayload::Planned { rooms: vec![] };
        for payload in [
            planned,
            MessagesSyncPayload::All,
            MessagesSyncPayload::Active,
        ] {
            assert_eq!(MessagesSync::active_key(&payload), "all");
        }
        assert_eq!(
            MessagesSync::active_key(&MessagesSyncPayload::Room { room_id: 3 }),
            "room-3"
        );
    }

    #[test]
    fn item_reports_read_back_as_what_they_are() {
        let room = ItemReport::Room(RoomFetch {
            room_id: Some(1),
            fetched: 3,
            requests: 1,
            stored: Some(3),
            ..RoomFetch::default()
        });
        let stored = serde_json::to_value(&room).unwrap();
        assert_eq!(stored["roomId"], 1);
        assert_eq!(serde_json::from_value::<ItemReport>(stored).unwrap(), room);
    }
}
