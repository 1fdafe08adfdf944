//! `POST /api/chatwork/rooms/sync` and `POST /api/chatwork/messages/sync`: start the two
//! sync jobs.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::ToSchema;

use super::auth::Admin;
use super::error::ErrorBody;
use super::extract::{OptionalJson, RequestId};
use super::jobs::{self, JobView};
use super::rooms::{ChatworkRoomId, require_room};
use super::{ApiError, AppState};
use crate::sync::messages::{MessagesSync, MessagesSyncPayload};
use crate::sync::rooms::{RoomsSync, RoomsSyncPayload};

/// A rooms sync takes no parameters; the body may be left out or be `{}`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoomsSyncRequest {}

/// Starts a rooms sync (Chatwork's room list into the registered rooms).
#[utoipa::path(
    post, path = "/api/chatwork/rooms/sync", operation_id = "startRoomsSync", tag = "chatwork",
    request_body(content = Option<RoomsSyncRequest>, description = "Optional; `{}`"),
    responses(
        (status = 202, description = "A new rooms sync job", body = JobView),
        (status = 200, description = "The rooms sync already queued or running", body = JobView),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "No identity", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 422, description = "An unknown field", body = ErrorBody),
    )
)]
pub(crate) async fn rooms(
    State(state): State<AppState>,
    Admin(caller): Admin,
    request_id: RequestId,
    OptionalJson(_request): OptionalJson<RoomsSyncRequest>,
) -> Result<(StatusCode, Json<JobView>), ApiError> {
    jobs::start::<RoomsSync>(&state, &caller, &request_id, &RoomsSyncPayload::default()).await
}

/// Which rooms a messages sync covers; the body may be left out.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MessagesSyncRequest {
    /// Chatwork's id of the one room to sync; every active room when left out.
    #[schema(value_type = Option<i64>, minimum = 1, maximum = 9223372036854775807_i64)]
    #[serde(default)]
    pub room_id: Option<ChatworkRoomId>,
}

/// Starts a messages sync: of one room, or of every room that needs a fetch. The answer
/// is the one job that covers the whole sync: for all rooms, its first step is a room
/// check in the consumer, and the rooms it plans become items of the same job, so its
/// `totalRooms`, `processedRooms`, errors and gaps cover every room and it ends after
/// the last. A sync of all rooms started while another runs answers with that one (200).
#[utoipa::path(
    post, path = "/api/chatwork/messages/sync", operation_id = "startMessagesSync", tag = "chatwork",
    request_body(content = Option<MessagesSyncRequest>, description = "Optional; `{}` syncs every active room"),
    responses(
        (status = 202, description = "A new messages sync job", body = JobView),
        (status = 200, description = "The same sync already queued or running", body = JobView),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "No identity", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 404, description = "No such room", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 422, description = "A field is unknown or invalid", body = ErrorBody),
    )
)]
pub(crate) async fn messages(
    State(state): State<AppState>,
    Admin(caller): Admin,
    request_id: RequestId,
    OptionalJson(request): OptionalJson<MessagesSyncRequest>,
) -> Result<(StatusCode, Json<JobView>), ApiError> {
    if let Some(room_id) = request.room_id {
        require_room(&state, room_id).await?;
    }
    let payload = match request.room_id {
        Some(room_id) => MessagesSyncPayload::Room {
            room_id: room_id.get(),
        },
        // All rooms: the job's first step is a room check, in the consumer, so that a
        // slow or failing Chatwork never holds up or fails this request; the rooms it
        // plans join the same job.
        None => MessagesSyncPayload::All,
    };
    jobs::start::<MessagesSync>(&state, &caller, &request_id, &payload).await
}
