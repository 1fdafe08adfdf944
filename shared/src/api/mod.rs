//! The HTTP API as one axum [`Router`]. The API Lambda hands it to
//! `lambda_http`, the local runner serves it on a loopback port, and tests call it
//! directly, so all three run the same routes.
//!
//! - [`auth`]: who calls (JWT claims) and the role extractors.
//! - [`extract`]: body, query and path extractors whose every failure is a JSON error
//!   naming the field.
//! - [`error`]: the error shape; `scope`: request id, size limits and panics; `serve`:
//!   the HTTP server of the local runner and the tests.
//! - One module per resource: `rooms`, `room_extras` (a room's tasks, files and members,
//!   a company's tasks), `files` (a file's content), `sync`, `companies`, `suggestions`, `summaries`, `jobs`,
//!   `schedules`, `health`; `audit` writes the audit log; [`openapi`] the OpenAPI document.
//! - `webhook`: Chatwork's webhook deliveries at `/webhooks/chatwork` (no JWT: the
//!   signature authenticates).
//! - [`console`]: the admin console's files at `/` (outside the JSON API);
//!   [`oauth`]: its sign-in settings.

mod audit;
pub mod auth;
mod companies;
mod connections;
pub mod console;
mod cursor;
mod error;
pub mod extract;
mod files;
mod health;
mod history;
mod jobs;
pub mod oauth;
pub mod openapi;
mod room_extras;
mod rooms;
mod schedules;
mod scope;
mod serve;
mod status;
mod suggestions;
mod summaries;
mod sync;
pub mod time;
mod webhook;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::MethodRouter;
use serde::Deserialize;
use sqlx::PgPool;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::{PathItemExt, routes};

use crate::jobs::Registry;
use crate::queue::Queues;
use crate::schedule::Cadences;
use crate::webhook::{WebhookKeySource, WebhookKeys};

pub use auth::{AuthConfig, Caller, IdentitySource, MintError, Role};
pub use error::{ApiError, ErrorBody, ErrorCode};
pub use jobs::JobView;
pub use rooms::{ChatworkRoomId, Room, RoomRef};
pub use scope::{MAX_HEADER_BYTES, MAX_HEADER_COUNT, MAX_URI_BYTES, REQUEST_ID_HEADER};
pub use serve::{
    BodyTimedOut, HEAD_BUFFER_BYTES, PARSED_HEADER_COUNT, ServeOptions, serve, serve_with,
};
pub use webhook::{
    DELIVERY_LOG_TARGET, DeliveryTally, WebhookAck, WebhookHistory, WebhookOutcome,
    take_tally as take_webhook_tally,
};

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
    /// The Chatwork connections, to add and connect accounts (none: the routes that add
    /// one answer 409).
    pub connections: Option<crate::connections::Connections>,
    /// How often the scheduled tasks run, as the schedules route shows it.
    pub cadences: Arc<Cadences>,
    /// The webhook delivery counts not yet added to the status page's history.
    pub webhook_history: Arc<webhook::WebhookHistory>,
    /// Where the sync copied files' content (none: the file content route answers 503).
    pub files: Option<Arc<dyn crate::files::FileStore>>,
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
            connections: None,
            cadences: Arc::new(Cadences::default()),
            webhook_history: Arc::new(webhook::WebhookHistory::default()),
            files: None,
        }
    }

    /// The same state serving files' content from `store`.
    pub fn with_files(mut self, store: Arc<dyn crate::files::FileStore>) -> Self {
        self.files = Some(store);
        self
    }

    /// The same state adding and connecting Chatwork accounts through `connections`, and
    /// verifying webhook deliveries with the connections' webhook tokens too (give the
    /// configured keys first, with [`with_webhook_keys`](Self::with_webhook_keys)).
    pub fn with_connections(mut self, connections: crate::connections::Connections) -> Self {
        if let Some(cipher) = connections.cipher() {
            self.webhooks = Arc::new(crate::connections::webhooks::ConnectionWebhookKeys::new(
                self.webhooks.clone(),
                self.pool.clone(),
                cipher.clone(),
            ));
        }
        self.connections = Some(connections);
        self
    }

    /// The same state showing the scheduled tasks' `cadences`.
    pub fn with_cadences(mut self, cadences: Cadences) -> Self {
        self.cadences = Arc::new(cadences);
        self
    }

    /// The same state adding webhook counts to the history at most every `every`.
    pub fn with_webhook_history_every(mut self, every: std::time::Duration) -> Self {
        self.webhook_history = Arc::new(webhook::WebhookHistory::new(every));
        self
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

/// Every operation of the API, once: each line the handlers of one path, each handler
/// served at the method and path of its `#[utoipa::path]`. The list is expanded twice:
/// `routed` (the router, at every cold start: only each operation's method and path are
/// read) and `documented` (the OpenAPI document, built once on the first request for it,
/// see `openapi::serve`). A test fails when the router and the document differ.
macro_rules! operations {
    ($expand:ident) => {
        $expand! {
            health::health;
            openapi::serve;
            console::config;
            console::me;
            rooms::list;
            sync::rooms;
            rooms::update;
            rooms::messages;
            files::content;
            room_extras::room_tasks;
            room_extras::room_files;
            room_extras::room_members;
            sync::messages;
            status::get;
            connections::list, connections::add;
            connections::update, connections::delete;
            connections::start_oauth;
            connections::complete_oauth;
            connections::add_webhook;
            connections::delete_webhook;
            history::get;
            companies::list, companies::create;
            companies::get;
            companies::rooms, companies::link;
            companies::unlink;
            room_extras::company_tasks;
            suggestions::list;
            suggestions::accept;
            suggestions::dismiss;
            summaries::list;
            summaries::draft;
            jobs::list;
            jobs::get;
            jobs::cancel;
            jobs::retry;
            schedules::list;
            schedules::runs;
            schedules::run;
            schedules::pause;
            schedules::resume;
            webhook::chatwork;
        }
    };
}

/// The `operations!` as a router; utoipa's generated `__path_<handler>` names the method
/// and path of each.
macro_rules! routed {
    ($($($module:ident :: $handler:ident),+;)+) => {{
        let router = Router::new();
        $($(
            let router = utoipa_axum::paste! {
                route::<$module::[<__path_ $handler>], _, _>(router, $module::$handler)
            };
        )+)+
        router
    }};
}

/// The `operations!` with their documentation: utoipa-axum's `routes!` adds each
/// operation to the document.
macro_rules! documented {
    ($($($module:ident :: $handler:ident),+;)+) => {
        OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
            $(.routes(routes!($($module::$handler),+)))+
    };
}

/// The whole API, mounted under `/api`, and the console at `/`. Built at every cold start,
/// so it routes each operation without building its documentation (see [`operations!`]).
pub fn router(state: AppState) -> Router {
    let router = operations!(routed)
        .merge(console::routes())
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(DefaultBodyLimit::max(extract::MAX_BODY_BYTES));
    scope::wrap(router).with_state(state)
}

/// `router` with `handler` at the method(s) and path its operation `O` declares (a path
/// routed again gets the new methods beside the old).
fn route<O, H, T>(router: Router<AppState>, handler: H) -> Router<AppState>
where
    O: utoipa::Path,
    H: axum::handler::Handler<T, AppState>,
    T: 'static,
{
    let methods = O::methods()
        .iter()
        .fold(MethodRouter::new(), |methods, method| {
            methods.on(method.to_method_filter(), handler.clone())
        });
    router.route(&O::path(), methods)
}

/// Every route with its OpenAPI operation, for the document (see [`operations!`]).
pub(crate) fn documented_routes() -> OpenApiRouter<AppState> {
    operations!(documented)
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
