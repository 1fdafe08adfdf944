//! The rooms sync consumer: fed by the rooms-sync queue, it runs the items of
//! `chatwork_rooms_sync` jobs (see `cwsync::sync::rooms`).

use cwsync::jobs::JobConsumer;
use cwsync::sync::rooms::RoomsSync;
use cwsync_lambda::{ColdStart, Error, run_sqs};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let start = ColdStart::new("rooms-sync").await;
    let context = start.sync_context().await;
    let consumer = JobConsumer::<RoomsSync>::new(start.pool.clone(), start.queues(), context);
    run_sqs(start.metrics, consumer).await
}
