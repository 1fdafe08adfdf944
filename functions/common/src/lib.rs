//! What every cwsync Lambda function does alike, so that each `functions/*` binary is a
//! few lines: logging and metrics at cold start, configuration with secrets from Secrets
//! Manager (read once per cold start), and the adapter from an SQS event to a consumer.

pub mod logging;
mod secrets;
mod webhooks;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use cwsync::consumer::BatchConsumer;
pub use lambda_runtime::{Context, Error, LambdaEvent, service_fn};
use metrics_cloudwatch_embedded::Collector;

pub use secrets::{SecretError, Secrets};
pub use webhooks::{TOKENS_SECRET_VAR, webhook_keys};

/// The CloudWatch namespace of cwsync's metrics (`METRICS_NAMESPACE` overrides it).
pub const DEFAULT_NAMESPACE: &str = "cwsync";

/// Time kept back from a Lambda's deadline so that a handler can end its item and the
/// runtime can answer before the function is cut off.
pub const DEADLINE_MARGIN: Duration = Duration::from_secs(10);

/// Starts logging (as the runtime's own set-up does: JSON when the function's
/// `LoggingConfig` says so, level from `AWS_LAMBDA_LOG_LEVEL` or `RUST_LOG`; with the trace
/// id on every line and a line per closed span, see [`logging`]) and the metrics collector
/// (CloudWatch Embedded Metric Format on stdout, flushed after each invocation, with the
/// function as the only dimension and the request id as a property).
pub fn init(function: &'static str, env: &cwsync::config::Env) -> &'static Collector {
    logging::init();
    let namespace = env
        .get("METRICS_NAMESPACE")
        .unwrap_or(DEFAULT_NAMESPACE)
        .to_owned();
    match metrics_cloudwatch_embedded::Builder::new()
        .cloudwatch_namespace(namespace)
        .with_dimension("function", function)
        .lambda_cold_start_metric("ColdStart")
        .with_lambda_request_id("requestId")
        .init()
    {
        Ok(collector) => collector,
        Err(e) => exit_on_startup_error(function, e),
    }
}

/// What every consumer and the scheduler build first at cold start: logging and metrics,
/// the environment, the secrets reader and the database pool (lazy: no connection yet).
/// A setting that is missing or malformed stops the start with one line naming it.
pub struct ColdStart {
    pub function: &'static str,
    pub metrics: &'static Collector,
    pub env: cwsync::config::Env,
    pub secrets: Secrets,
    pub pool: sqlx::PgPool,
}

impl ColdStart {
    pub async fn new(function: &'static str) -> Self {
        let env = cwsync::config::Env::from_process();
        let metrics = init(function, &env);
        let secrets = Secrets::new(&env).await;
        let database = secrets
            .database()
            .await
            .unwrap_or_else(|e| exit_on_startup_error(function, e));
        let pool =
            cwsync::db::pool(&database).unwrap_or_else(|e| exit_on_startup_error(function, e));
        Self {
            function,
            metrics,
            env,
            secrets,
            pool,
        }
    }

    /// The work queues (SQS, built on first use): where a consumer sends the items a
    /// job grows by (a sync of all rooms: the rooms its room check plans).
    pub fn queues(&self) -> Arc<dyn cwsync::queue::Queues> {
        let queues = self.or_exit(cwsync::queue::QueueConfig::from_env(
            &self.env,
            &cwsync::job_types::registry().work_queues(),
        ));
        Arc::new(cwsync::queue::LazySqsQueues::new(queues))
    }

    /// What the sync consumers run with: a Chatwork client (its token from the
    /// environment or Secrets Manager) whose rate budget lives in the pool's database,
    /// the room check's settings, and the bucket files are copied to (`FILES_BUCKET`,
    /// `FILE_MAX_BYTES`).
    pub async fn sync_context(&self) -> Arc<cwsync::sync::SyncContext> {
        let connections = self.connections().await;
        let mut context = cwsync::sync::SyncContext::with_connections(connections);
        context.settings.room_check =
            self.or_exit(cwsync::sync::check::RoomCheckSettings::from_env(&self.env));
        // Files' content: the bucket of FILES_BUCKET (no folder default in Lambda).
        let files = self.or_exit(cwsync::files::FilesConfig::from_env(&self.env, None));
        if let Some(store) = files.store().await {
            context.files = Some(cwsync::files::FileCopies {
                store,
                max_bytes: files.max_bytes,
            });
        }
        Arc::new(context)
    }

    /// The Chatwork connections (see [`connections`]); without a token key, the token
    /// of the bootstrap connection is required, as before connections.
    pub async fn connections(&self) -> cwsync::connections::Connections {
        match self.or_exit(connections(&self.env, &self.secrets, &self.pool).await) {
            Some(connections) => connections,
            None => match self.secrets.chatwork().await {
                Err(missing) => exit_on_startup_error(self.function, missing),
                Ok(_) => exit_on_startup_error(self.function, "the Chatwork token vanished"),
            },
        }
    }

    /// The value, or one line naming what is wrong and an exit.
    pub fn or_exit<T, E: std::fmt::Display>(&self, result: Result<T, E>) -> T {
        result.unwrap_or_else(|e| exit_on_startup_error(self.function, e))
    }
}

/// Prints one line naming what is wrong and exits: Lambda reports the failed start, and
/// the next invocation tries again.
pub fn exit_on_startup_error(function: &str, error: impl std::fmt::Display) -> ! {
    eprintln!("cwsync {function}: cannot start: {error}");
    std::process::exit(1)
}

/// When an invocation's time is up, less [`DEADLINE_MARGIN`], as a tokio instant.
pub fn deadline_of(context: &Context) -> tokio::time::Instant {
    let remaining = remaining_time(context.deadline, SystemTime::now());
    tokio::time::Instant::now() + remaining.saturating_sub(DEADLINE_MARGIN)
}

/// Deadlines before this (2001-09-09, in epoch milliseconds) are no Lambda's.
const EARLIEST_DEADLINE_MS: u64 = 1_000_000_000_000;

/// The time left before `deadline_ms` (Lambda's `Lambda-Runtime-Deadline-Ms`, epoch
/// milliseconds). `cargo lambda watch`, the local emulator the tests run the functions
/// under, sends its invocation timeout there instead (600000, ten minutes): a value that
/// small is taken as the time left, not as a moment in 1970.
fn remaining_time(deadline_ms: u64, now: SystemTime) -> Duration {
    if deadline_ms < EARLIEST_DEADLINE_MS {
        return Duration::from_millis(deadline_ms);
    }
    (SystemTime::UNIX_EPOCH + Duration::from_millis(deadline_ms))
        .duration_since(now)
        .unwrap_or_default()
}

/// Runs an SQS-triggered function: each invocation's records go to `consumer`, and its
/// report of failed records goes back to the event source mapping
/// (`ReportBatchItemFailures`).
pub async fn run_sqs<C: BatchConsumer + 'static>(
    metrics: &'static Collector,
    consumer: C,
) -> Result<(), Error> {
    let consumer = Arc::new(consumer);
    let handler = service_fn(move |event: LambdaEvent<SqsEvent>| {
        let consumer = consumer.clone();
        async move {
            let deadline = deadline_of(&event.context);
            // The invocation's trace, for what is not a record's (each record continues
            // the trace of its sender).
            let trace = logging::invocation_trace(&event.context);
            let response: SqsBatchResponse =
                cwsync::trace::continued(trace, consumer.consume(event.payload.records, deadline))
                    .await;
            Ok::<_, Error>(response)
        }
    });
    metrics_cloudwatch_embedded::lambda::service::run(metrics, handler).await
}

/// Runs a function of any event type with the tracing and metrics layers.
pub async fn metrics_run<A, R, F, Fut>(metrics: &'static Collector, handler: F) -> Result<(), Error>
where
    F: FnMut(LambdaEvent<A>) -> Fut,
    Fut: std::future::Future<Output = Result<R, Error>>,
    A: for<'de> serde::Deserialize<'de>,
    R: serde::Serialize,
{
    let mut handler = handler;
    let traced = move |event: LambdaEvent<A>| {
        let trace = logging::invocation_trace(&event.context);
        cwsync::trace::continued(trace, handler(event))
    };
    metrics_cloudwatch_embedded::lambda::handler::run(metrics, traced).await
}

/// Runs the HTTP API function: `router` behind `lambda_http`'s adapter, with the tracing
/// and metrics layers.
pub async fn run_http<S>(metrics: &'static Collector, router: S) -> Result<(), Error>
where
    S: lambda_http::tower::Service<lambda_http::Request, Error = std::convert::Infallible>
        + Send
        + 'static,
    S::Response: lambda_http::IntoResponse,
    S::Future: Send + 'static,
{
    metrics_cloudwatch_embedded::lambda::service::run_http(
        metrics,
        logging::InvocationTrace(router),
    )
    .await
}

/// The Chatwork connections of a function: the bootstrap connection of
/// `CHATWORK_API_TOKEN` (or its secret) when set, and the stored connections when a token
/// key is configured (`TOKEN_KMS_KEY_ID` in AWS, `TOKEN_ENCRYPTION_KEY` elsewhere), with
/// the OAuth client that connects accounts and refreshes their tokens
/// (`CHATWORK_OAUTH_*`, its secret from `CHATWORK_OAUTH_CLIENT_SECRET_ARN`). `None` when
/// there is neither a key nor a token.
pub async fn connections(
    env: &cwsync::config::Env,
    secrets: &Secrets,
    pool: &sqlx::PgPool,
) -> Result<Option<cwsync::connections::Connections>, Box<dyn std::error::Error>> {
    use cwsync::connections::{
        ChatworkOAuthConfig, CipherConfig, Connections, TokenCipher, TokenEndpoint,
    };
    let cipher = match CipherConfig::from_env(env)? {
        None => None,
        Some(config @ CipherConfig::Kms { .. }) => {
            let aws = aws_config::load_from_env().await;
            Some(TokenCipher::new(
                &config,
                Some(aws_sdk_kms::Client::new(&aws)),
            )?)
        }
        Some(config) => Some(TokenCipher::new(&config, None)?),
    };
    let chatwork = secrets.chatwork_optional().await?;
    if cipher.is_none() && chatwork.token.is_none() {
        return Ok(None);
    }
    let client_secret = secrets
        .optional(
            ChatworkOAuthConfig::CLIENT_SECRET_VAR,
            "CHATWORK_OAUTH_CLIENT_SECRET_ARN",
        )
        .await?;
    let endpoint = ChatworkOAuthConfig::from_env(env, client_secret)?
        .map(TokenEndpoint::new)
        .transpose()?;
    let settings = cwsync::chatwork::ClientSettings::from_config(
        &chatwork,
        secrecy::SecretString::from(String::new()),
    );
    let bootstrap = match &chatwork.token {
        Some(token) => Some(cwsync::chatwork::ChatworkClient::new(
            cwsync::chatwork::ClientSettings::from_config(&chatwork, token.clone()),
            pool.clone(),
        )?),
        None => None,
    };
    Ok(Some(Connections::new(
        pool.clone(),
        settings,
        bootstrap,
        cipher,
        endpoint,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_time_left_comes_from_lambdas_deadline_or_the_emulators_timeout() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_000_000);
        let in_a_minute = 1_795_000_060_000;
        assert_eq!(remaining_time(in_a_minute, now), Duration::from_secs(60));
        assert_eq!(remaining_time(1_794_999_000_000, now), Duration::ZERO);
        // cargo lambda watch's constant.
        assert_eq!(remaining_time(600_000, now), Duration::from_secs(600));
    }
}
