//! `GET /api/health`: whether the database answers. No secrets, no identity needed.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;

use super::AppState;
use crate::db;

/// How long a dependency may take to answer before it counts as unreachable.
const CHECK_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Debug, Serialize)]
pub(crate) struct Health {
    status: &'static str,
    checks: Checks,
}

#[derive(Debug, Serialize)]
struct Checks {
    database: &'static str,
}

pub(crate) async fn health(State(state): State<AppState>) -> (StatusCode, Json<Health>) {
    let database = match tokio::time::timeout(CHECK_TIMEOUT, db::ping(&state.pool)).await {
        Ok(Ok(())) => "ok",
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "health: database unreachable");
            "unreachable"
        }
        Err(_) => {
            tracing::warn!("health: database did not answer in time");
            "unreachable"
        }
    };
    let healthy = database == "ok";
    let status = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = Health {
        status: if healthy { "ok" } else { "unavailable" },
        checks: Checks { database },
    };
    (status, Json(body))
}
