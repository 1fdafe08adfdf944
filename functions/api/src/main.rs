//! The API Lambda function: cwsync's router (`cwsync::api`) behind API Gateway's HTTP API
//! and its JWT authorizer. Everything slow or fallible is built once per cold start; a
//! setting that is missing or malformed stops start-up with one line naming it.

use std::sync::Arc;

use cwsync::api::{self, AppState, AuthConfig};
use cwsync::config::{ConfigError, Env};
use cwsync::queue::{LazySqsQueues, QueueConfig};
use cwsync::{db, job_types};
use cwsync_lambda::{Error, Secrets, exit_on_startup_error};

const FUNCTION: &str = "api";

#[tokio::main]
async fn main() -> Result<(), Error> {
    let env = Env::from_process();
    let metrics = cwsync_lambda::init(FUNCTION, &env);
    let state = state(&env)
        .await
        .unwrap_or_else(|e| exit_on_startup_error(FUNCTION, e));
    cwsync_lambda::run_http(metrics, api::router(state)).await
}

async fn state(env: &Env) -> Result<AppState, Box<dyn std::error::Error>> {
    let database = Secrets::new(env).await.database().await?;
    let work_queues = job_types::registry().work_queues();
    let queues = QueueConfig::from_env(env, &work_queues)?;
    if let Some(queue) = queues.missing(&work_queues).first() {
        return Err(ConfigError::Missing {
            name: cwsync::text::intern(&queue.url_variable()),
            hint: "the API function sends jobs to SQS; set it to the queue's URL",
        }
        .into());
    }
    let auth = AuthConfig::api_gateway(env)?;
    // The pool connects lazily: a cold start does not wait for the database.
    let pool = db::pool(&database)?;
    // The SQS client is built by the first request that needs a queue: reads never do.
    let queues = LazySqsQueues::new(queues);
    // Chatwork's webhook tokens: from the environment, or a secret read on the first
    // delivery (most requests are not webhooks).
    let webhooks = cwsync_lambda::webhook_keys(env)?;
    // The scheduled tasks' cadences, from the same settings as the template's schedules.
    let cadences = cwsync::schedule::Cadences::from_env(env)?;
    let mut state = AppState::new(pool.clone(), Arc::new(queues), auth)
        .with_webhook_keys(webhooks)
        .with_cadences(cadences);
    // Files' content is read from the bucket the messages sync copies to.
    if let Some(store) = cwsync::files::FilesConfig::from_env(env, None)?
        .store()
        .await
    {
        state = state.with_files(store);
    }
    // Connecting accounts: only with a token key (the clients are built on first use).
    let secrets = Secrets::new(env).await;
    Ok(
        match cwsync_lambda::connections(env, &secrets, &pool).await? {
            Some(connections) => state.with_connections(connections),
            None => state,
        },
    )
}
