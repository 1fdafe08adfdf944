//! The dead-letter consumer: fed by the three dead-letter queues, it ends the items of
//! messages that exhausted their retries (see `cwsync::jobs::DeadLetterConsumer`).

use cwsync::config::Env;
use cwsync::jobs::DeadLetterConsumer;
use cwsync_lambda::{Error, Secrets, exit_on_startup_error, run_sqs};

const FUNCTION: &str = "dlq";

#[tokio::main]
async fn main() -> Result<(), Error> {
    let metrics = cwsync_lambda::init(FUNCTION);
    let env = Env::from_process();
    let secrets = Secrets::new(&env).await;
    let database = secrets
        .database()
        .await
        .unwrap_or_else(|e| exit_on_startup_error(FUNCTION, e));
    let pool = cwsync::db::pool(&database).unwrap_or_else(|e| exit_on_startup_error(FUNCTION, e));
    let max_receive_count: u32 = env
        .parse("MAX_RECEIVE_COUNT", "a whole number")
        .unwrap_or_else(|e| exit_on_startup_error(FUNCTION, e))
        .unwrap_or(4);
    run_sqs(metrics, DeadLetterConsumer::new(pool, max_receive_count)).await
}
