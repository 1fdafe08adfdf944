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
//! - `webhook`: Chatwork's webhook deliveries at `/webhooks/chatwork` (no JWT: the
//!   signature authenticates).
//! - [`console`]: the admin console's files at `/` (outside the JSON API) and its
//!   sign-in settings.

mod audit;
pub mod auth;
mod companies;
pub mod console;
mod cursor;
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
pub mod time;
mod webhook;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use serde::Deserialize;
use sqlx::PgPool;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::jobs::Registry;
use crate::queue::Queues;
use crate::webhook::{WebhookKeySource, WebhookKeys};

pub use auth::{AuthConfig, Caller, IdentitySource, MintError, Role};
pub use error::{ApiError, ErrorBody};
pub use jobs::JobView;
pub use rooms::{ChatworkRoomId, Room, RoomRef};
pub use scope::REQUEST_ID_HEADER;
pub use webhook::{WebhookAck, WebhookOutcome};

/// What every request handler may use; built once per process (a Lambda's cold start).
#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub queues: Arc<dyn Queues>,
    pub auth: Arc<AuthConfig>,
    /// The job types the API starts, cancels and lists.
    pub registry: Registry,
    /// The keys Chatwork's webhook deliveries are verified with (none: every delivery is
    /// refused).
    pub webhooks: Arc<dyn WebhookKeySource>,
}

impl AppState {
    /// The state of an API that serves every job type of cwsync.
    pub fn new(pool: PgPool, queues: Arc<dyn Queues>, auth: AuthConfig) -> Self {
        Self {
            pool,
            queues,
            auth: Arc::new(auth),
            registry: crate::job_types::registry(),
            webhooks: Arc::new(WebhookKeys::default()),
        }
    }

    /// The same state verifying webhook deliveries with `keys`.
    pub fn with_webhook_keys(mut self, keys: Arc<dyn WebhookKeySource>) -> Self {
        self.webhooks = keys;
        self
    }

    /// The same state serving the job types of `registry`.
    pub fn with_registry(mut self, registry: Registry) -> Self {
        self.registry = registry;
        self
    }
}

/// The whole API, mounted under `/api`, and the console at `/`.
pub fn router(state: AppState) -> Router {
    let (routes, _document) = documented_routes().split_for_parts();
    let router = routes
        .merge(console::routes())
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(DefaultBodyLimit::max(extract::MAX_BODY_BYTES));
    scope::wrap(router).with_state(state)
}

/// Every route with its OpenAPI operation. `routes!` routes each handler at the method and
/// path of its `#[utoipa::path]` and adds that operation to the document, so a route and
/// its documentation are one line; handlers of one path go in one `routes!`. A test fails
/// when the router has a route the document does not.
pub(crate) fn documented_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(health::health))
        .routes(routes!(openapi::serve))
        .routes(routes!(console::config))
        .routes(routes!(console::me))
        .routes(routes!(rooms::list))
        .routes(routes!(sync::rooms))
        .routes(routes!(rooms::update))
        .routes(routes!(rooms::messages))
        .routes(routes!(sync::messages))
        .routes(routes!(status::get))
        .routes(routes!(companies::list, companies::create))
        .routes(routes!(companies::get))
        .routes(routes!(companies::rooms, companies::link))
        .routes(routes!(companies::unlink))
        .routes(routes!(summaries::list))
        .routes(routes!(summaries::draft))
        .routes(routes!(jobs::list))
        .routes(routes!(jobs::get))
        .routes(routes!(jobs::cancel))
        .routes(routes!(jobs::retry))
        .routes(routes!(webhook::chatwork))
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
