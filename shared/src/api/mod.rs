//! The HTTP API (DESIGN section 3) as one axum [`Router`]. The API Lambda hands it to
//! `lambda_http`, the local runner serves it on a loopback port, and tests call it
//! directly, so all three run the same routes.

mod error;
mod health;

use axum::Router;
use axum::routing::get;
use sqlx::PgPool;

pub use error::ApiError;

/// What every request handler may use; built once per process.
#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
}

/// The whole API, mounted under `/api`.
pub fn router(state: AppState) -> Router {
    let api = Router::new().route("/health", get(health::health));
    Router::new()
        .nest("/api", api)
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .with_state(state)
}
