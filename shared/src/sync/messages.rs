//! `chatwork_messages_sync`: one item per room, each storing the room's latest messages.

use serde::{Deserialize, Serialize};
use sqlx::PgPool;

use crate::jobs::{ItemRecord, ItemStatus, JobSpec, JobType, PlannedItem};

/// The messages sync job type.
pub struct MessagesSync;

/// `{roomId?}`: one room (Chatwork's id), or every active room.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessagesSyncPayload {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room_id: Option<i64>,
}

/// The queue message: `{v:1, jobId, roomId}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessagesSyncMessage {
    pub room_id: i64,
}

/// The item key of a room.
pub fn item_key(room_id: i64) -> String {
    format!("room-{room_id}")
}

impl JobSpec for MessagesSync {
    const TYPE: JobType = JobType::ChatworkMessagesSync;
    type Payload = MessagesSyncPayload;
    type Message = MessagesSyncMessage;

    fn active_key(payload: &MessagesSyncPayload) -> String {
        match payload.room_id {
            Some(room_id) => item_key(room_id),
            None => "all".into(),
        }
    }

    fn item_key(message: &MessagesSyncMessage) -> String {
        item_key(message.room_id)
    }

    async fn plan(
        pool: &PgPool,
        payload: &MessagesSyncPayload,
    ) -> Result<Vec<PlannedItem<MessagesSyncMessage>>, sqlx::Error> {
        let rooms = match payload.room_id {
            Some(room_id) => vec![room_id],
            None => {
                sqlx::query_scalar!(
                    "SELECT room_id FROM chatwork_rooms WHERE is_active ORDER BY room_id"
                )
                .fetch_all(pool)
                .await?
            }
        };
        Ok(rooms
            .into_iter()
            .map(|room_id| PlannedItem {
                message: MessagesSyncMessage { room_id },
                // Rooms sync in parallel; each room in order.
                group_id: item_key(room_id),
            })
            .collect())
    }

    /// `{totalRooms, processedRooms, rooms: [{roomId, fetched}], errors: [{roomId, message}],
    /// unchangedRooms, canceledRooms}`.
    fn summarize(items: &[ItemRecord]) -> serde_json::Value {
        let room_of = |item: &ItemRecord| item.message.get("roomId").cloned().unwrap_or_default();
        let rooms: Vec<_> = items
            .iter()
            .filter(|i| matches!(i.status, ItemStatus::Completed | ItemStatus::Unchanged))
            .map(|i| serde_json::json!({"roomId": room_of(i), "fetched": i.fetched}))
            .collect();
        let errors: Vec<_> = items
            .iter()
            .filter(|i| i.status == ItemStatus::Failed)
            .map(|i| {
                let message = i
                    .error
                    .as_ref()
                    .and_then(|e| e.get("message"))
                    .cloned()
                    .unwrap_or_else(|| "failed".into());
                serde_json::json!({"roomId": room_of(i), "message": message})
            })
            .collect();
        serde_json::json!({
            "totalRooms": items.len(),
            "processedRooms": rooms.len(),
            "unchangedRooms": items.iter().filter(|i| i.status == ItemStatus::Unchanged).count(),
            "canceledRooms": items.iter().filter(|i| i.status == ItemStatus::Canceled).count(),
            "rooms": rooms,
            "errors": errors,
        })
    }
}
