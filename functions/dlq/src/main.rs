//! The dead-letter consumer: fed by the three dead-letter queues, it ends the items of
//! messages that exhausted their retries (see `cwsync::jobs::DeadLetterConsumer`).

use cwsync::jobs::DeadLetterConsumer;
use cwsync_lambda::{ColdStart, Error, run_sqs};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let start = ColdStart::new("dlq").await;
    let max_receive_count: u32 = start
        .or_exit(start.env.parse("MAX_RECEIVE_COUNT", "a whole number"))
        .unwrap_or(4);
    run_sqs(
        start.metrics,
        DeadLetterConsumer::new(start.pool, cwsync::job_types::registry(), max_receive_count),
    )
    .await
}
