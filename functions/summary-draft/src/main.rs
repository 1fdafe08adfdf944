//! The summary draft consumer: fed by the summary-draft queue, it runs the item of
//! `summary_draft` jobs (see `cwsync::summary`), with the extractive summarizer or the
//! model the `SUMMARY_MODEL*` settings name (its key read from Secrets Manager once per
//! cold start).

use std::sync::Arc;

use cwsync::config::Env;
use cwsync::jobs::JobConsumer;
use cwsync::summary::{SummaryContext, SummaryDraft};
use cwsync_lambda::{Error, Secrets, exit_on_startup_error, run_sqs};

const FUNCTION: &str = "summary-draft";

#[tokio::main]
async fn main() -> Result<(), Error> {
    let metrics = cwsync_lambda::init(FUNCTION);
    let env = Env::from_process();
    let secrets = Secrets::new(&env).await;
    let database = secrets
        .database()
        .await
        .unwrap_or_else(|e| exit_on_startup_error(FUNCTION, e));
    let summary = secrets
        .summary()
        .await
        .unwrap_or_else(|e| exit_on_startup_error(FUNCTION, e));
    let pool = cwsync::db::pool(&database).unwrap_or_else(|e| exit_on_startup_error(FUNCTION, e));
    let context = SummaryContext::from_config(&summary)
        .unwrap_or_else(|e| exit_on_startup_error(FUNCTION, e));
    run_sqs(
        metrics,
        JobConsumer::<SummaryDraft>::new(pool, Arc::new(context)),
    )
    .await
}
