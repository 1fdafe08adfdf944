//! `GET /api/health`: whether the database and the queues answer. No secrets, no
//! identity needed.

use std::future::Future;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use crate::db;

/// How long a dependency may take to answer before it counts as unreachable.
const CHECK_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok` when every check is, else `unavailable`.
    #[schema(example = "ok")]
    status: &'static str,
    checks: Checks,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Checks {
    /// `ok` or `unreachable`.
    database: &'static str,
    /// `ok` or `unreachable`.
    queue: &'static str,
}

async fn check<E: std::fmt::Display>(
    what: &str,
    probe: impl Future<Output = Result<(), E>>,
) -> &'static str {
    match tokio::time::timeout(CHECK_TIMEOUT, probe).await {
        Ok(Ok(())) => "ok",
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "health: {what} unreachable");
            "unreachable"
        }
        Err(_) => {
            tracing::warn!("health: {what} did not answer in time");
            "unreachable"
        }
    }
}

/// Whether the database and the queues answer.
#[utoipa::path(
    get, path = "/api/health", operation_id = "health", tag = "operations",
    security(()),
    responses(
        (status = 200, description = "Everything answers", body = Health),
        (status = 503, description = "The database or the queues do not answer", body = Health),
    )
)]
pub(crate) async fn health(State(state): State<AppState>) -> (StatusCode, Json<Health>) {
    let (database, queue) = tokio::join!(
        check("database", db::ping(&state.pool)),
        check("queue", state.queues.ping()),
    );
    let healthy = database == "ok" && queue == "ok";
    let status = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = Health {
        status: if healthy { "ok" } else { "unavailable" },
        checks: Checks { database, queue },
    };
    (status, Json(body))
}
