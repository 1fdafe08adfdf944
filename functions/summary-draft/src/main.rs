//! The summary draft consumer: fed by the summary-draft queue, it runs the item of
//! `summary_draft` jobs (see `cwsync::summary`), with the extractive summarizer or the
//! model the `SUMMARY_MODEL*` settings name (its key read from Secrets Manager once per
//! cold start).

use std::sync::Arc;

use cwsync::jobs::JobConsumer;
use cwsync::summary::{SummaryContext, SummaryDraft};
use cwsync_lambda::{ColdStart, Error, run_sqs};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let start = ColdStart::new("summary-draft").await;
    let summary = start.or_exit(start.secrets.summary().await);
    let context = start.or_exit(SummaryContext::from_config(&summary));
    let consumer =
        JobConsumer::<SummaryDraft>::new(start.pool.clone(), start.queues(), Arc::new(context));
    run_sqs(start.metrics, consumer).await
}
