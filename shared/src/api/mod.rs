//! The HTTP API (DESIGN section 3) as one axum [`Router`]. The API Lambda hands it to
//! `lambda_http`, the local runner serves it on a loopback port, and tests call it
//! directly, so all three run the same routes.
//!
//! - [`auth`]: who calls (JWT claims) and the role extractors.
//! - [`extract`]: body, query and path extractors whose every failure is a JSON error
//!   naming the field.
//! - [`error`]: the error shape; `scope`: request id, body limit and panics.
//! - One module per resource: `rooms`, `sync`, `companies`, `summaries`, `jobs`,
//!   `health`; `audit` writes the audit log; [`openapi`] the OpenAPI document.

mod audit;
pub mod auth;
mod companies;
mod error;
pub mod extract;
mod health;
mod jobs;
pub mod openapi;
mod rooms;
mod scope;
mod status;
mod summaries;
mod sync;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{delete, get, patch, post};
use serde::Deserialize;
use sqlx::PgPool;

use crate::queue::Queues;

pub use auth::{AuthConfig, Caller, IdentitySource, MintError, Role};
pub use error::{ApiError, ErrorBody};
pub use jobs::JobView;
pub use rooms::{ChatworkRoomId, Room, RoomRef};
pub use scope::REQUEST_ID_HEADER;

/// What every request handler may use; built once per process (a Lambda's cold start).
#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub queues: Arc<dyn Queues>,
    pub auth: Arc<AuthConfig>,
}

impl AppState {
    pub fn new(pool: PgPool, queues: Arc<dyn Queues>, auth: AuthConfig) -> Self {
        Self {
            pool,
            queues,
            auth: Arc::new(auth),
        }
    }
}

/// The whole API, mounted under `/api`.
pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/health", get(health::health))
        .route("/openapi.json", get(openapi::serve))
        .route("/chatwork/rooms", get(rooms::list))
        .route("/chatwork/rooms/sync", post(sync::rooms))
        .route("/chatwork/rooms/{id}", patch(rooms::update))
        .route("/chatwork/rooms/{id}/messages", get(rooms::messages))
        .route("/chatwork/messages/sync", post(sync::messages))
        .route("/chatwork/status", get(status::get))
        .route("/companies", get(companies::list).post(companies::create))
        .route(
            "/companies/{id}/chatwork-rooms",
            get(companies::rooms).post(companies::link),
        )
        .route(
            "/companies/{id}/chatwork-rooms/{roomId}",
            delete(companies::unlink),
        )
        .route("/companies/{id}/summaries", get(summaries::list))
        .route("/companies/{id}/summaries/draft", post(summaries::draft))
        .route("/jobs", get(jobs::list))
        .route("/jobs/{id}", get(jobs::get))
        .route("/jobs/{id}/cancel", post(jobs::cancel));
    Router::new()
        .nest("/api", api)
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(DefaultBodyLimit::max(extract::MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn(scope::request_scope))
        .with_state(state)
}

/// How many items a list answers with: 1 to [`Limit::MAX`], default [`Limit::DEFAULT`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "u32")]
pub struct Limit(u32);

impl Limit {
    pub const DEFAULT: Limit = Limit(20);
    pub const MAX: u32 = 100;

    pub fn get(self) -> i64 {
        i64::from(self.0)
    }
}

impl TryFrom<u32> for Limit {
    type Error = String;

    fn try_from(value: u32) -> Result<Self, Self::Error> {
        if (1..=Self::MAX).contains(&value) {
            Ok(Self(value))
        } else {
            Err(format!("must be from 1 to {}, got {value}", Self::MAX))
        }
    }
}
