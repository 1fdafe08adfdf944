//! The messages sync consumer: fed by the messages-sync queue, it runs the items of
//! `chatwork_messages_sync` jobs, one room each (see `cwsync::sync::messages`).

use cwsync::jobs::JobConsumer;
use cwsync::sync::messages::MessagesSync;
use cwsync_lambda::{ColdStart, Error, run_sqs};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let start = ColdStart::new("messages-sync").await;
    let context = start.sync_context().await;
    let consumer = JobConsumer::<MessagesSync>::new(start.pool.clone(), start.queues(), context);
    run_sqs(start.metrics, consumer).await
}
