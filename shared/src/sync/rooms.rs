//! `chatwork_rooms_sync`: one `GET /rooms`, upserted into `chatwork_rooms`.

use serde::{Deserialize, Serialize};
use sqlx::PgPool;

use crate::jobs::{ItemRecord, JobSpec, JobType, PlannedItem};

/// The rooms sync job type.
pub struct RoomsSync;

/// A rooms sync takes no parameters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomsSyncPayload {}

/// The queue message: `{v:1, jobId}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomsSyncMessage {}

/// The item key of a rooms sync's only item.
pub const ITEM_KEY: &str = "rooms";

impl JobSpec for RoomsSync {
    const TYPE: JobType = JobType::ChatworkRoomsSync;
    type Payload = RoomsSyncPayload;
    type Message = RoomsSyncMessage;

    fn active_key(_: &RoomsSyncPayload) -> String {
        "all".into()
    }

    fn item_key(_: &RoomsSyncMessage) -> String {
        ITEM_KEY.into()
    }

    async fn plan(
        _pool: &PgPool,
        _payload: &RoomsSyncPayload,
    ) -> Result<Vec<PlannedItem<RoomsSyncMessage>>, sqlx::Error> {
        Ok(vec![PlannedItem {
            message: RoomsSyncMessage {},
            group_id: "rooms".into(),
        }])
    }

    /// `{created, updated, total, ...}`: the item's own result (zeros before it ran).
    fn summarize(items: &[ItemRecord]) -> serde_json::Value {
        items
            .iter()
            .find_map(|i| i.result.clone())
            .unwrap_or_else(|| serde_json::json!({"created": 0, "updated": 0, "total": 0}))
    }
}
