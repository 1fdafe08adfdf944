//! The API Lambda function: cwsync's router (`cwsync::api`) behind API Gateway's HTTP API
//! and its JWT authorizer. Everything slow or fallible is built once per cold start; a
//! setting that is missing or malformed stops start-up with one line naming it.

use std::process::ExitCode;
use std::sync::Arc;

use cwsync::api::{self, AppState, AuthConfig};
use cwsync::config::{ConfigError, DatabaseConfig, Env, QueueConfig};
use cwsync::db;
use cwsync::queue::SqsQueues;

#[tokio::main]
async fn main() -> ExitCode {
    lambda_http::tracing::init_default_subscriber();
    let state = match state(&Env::from_process()).await {
        Ok(state) => state,
        Err(e) => {
            eprintln!("api: {e}");
            return ExitCode::FAILURE;
        }
    };
    match lambda_http::run(api::router(state)).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("api: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn state(env: &Env) -> Result<AppState, ConfigError> {
    let database = DatabaseConfig::from_env(env)?;
    let queues = QueueConfig::from_env(env)?;
    for (name, url) in [
        ("ROOMS_SYNC_QUEUE_URL", &queues.rooms_sync_url),
        ("MESSAGES_SYNC_QUEUE_URL", &queues.messages_sync_url),
        ("SUMMARY_DRAFT_QUEUE_URL", &queues.summary_draft_url),
    ] {
        if url.is_none() {
            return Err(ConfigError::Missing {
                name,
                hint: "the API function sends jobs to SQS; set it to the queue's URL",
            });
        }
    }
    let auth = AuthConfig::api_gateway(env)?;
    // The pool connects lazily: a cold start does not wait for the database.
    let pool = db::pool(&database).map_err(|e| ConfigError::Invalid {
        name: DatabaseConfig::URL_VAR,
        reason: e.to_string(),
    })?;
    let queues = SqsQueues::from_config(&queues).await;
    Ok(AppState::new(pool, Arc::new(queues), auth))
}
