//! The messages sync consumer: fed by the messages-sync queue, it runs the items of
//! `chatwork_messages_sync` jobs, one room each (see `cwsync::sync::messages`).

use std::sync::Arc;

use cwsync::chatwork::ChatworkClient;
use cwsync::config::Env;
use cwsync::jobs::JobConsumer;
use cwsync::sync::SyncContext;
use cwsync::sync::messages::MessagesSync;
use cwsync_lambda::{Error, Secrets, exit_on_startup_error, run_sqs};

const FUNCTION: &str = "messages-sync";

#[tokio::main]
async fn main() -> Result<(), Error> {
    let metrics = cwsync_lambda::init(FUNCTION);
    let env = Env::from_process();
    let secrets = Secrets::new(&env).await;
    let database = secrets
        .database()
        .await
        .unwrap_or_else(|e| exit_on_startup_error(FUNCTION, e));
    let chatwork = secrets
        .chatwork()
        .await
        .unwrap_or_else(|e| exit_on_startup_error(FUNCTION, e));
    let pool = cwsync::db::pool(&database).unwrap_or_else(|e| exit_on_startup_error(FUNCTION, e));
    let client = ChatworkClient::from_config(&chatwork, pool.clone())
        .unwrap_or_else(|e| exit_on_startup_error(FUNCTION, e));
    let context = Arc::new(SyncContext::new(client));
    run_sqs(metrics, JobConsumer::<MessagesSync>::new(pool, context)).await
}
