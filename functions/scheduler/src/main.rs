//! The scheduled tasks: EventBridge schedules invoke this function with
//! `{"task": "messages-sync" | "rooms-sync" | "sweep" | "retention"}`.

use std::sync::Arc;

use cwsync::config::{Env, QueueConfig};
use cwsync::queue::SqsQueues;
use cwsync::schedule::{self, ScheduleSettings};
use cwsync_lambda::{Error, LambdaEvent, Secrets, exit_on_startup_error};

const FUNCTION: &str = "scheduler";

#[tokio::main]
async fn main() -> Result<(), Error> {
    let metrics = cwsync_lambda::init(FUNCTION);
    let env = Env::from_process();
    let fail = |e: &dyn std::fmt::Display| -> ! { exit_on_startup_error(FUNCTION, e) };
    let settings = ScheduleSettings::from_env(&env).unwrap_or_else(|e| fail(&e));
    let queue_config = QueueConfig::from_env(&env).unwrap_or_else(|e| fail(&e));
    let secrets = Secrets::new(&env).await;
    let database = secrets.database().await.unwrap_or_else(|e| fail(&e));
    let pool = cwsync::db::pool(&database).unwrap_or_else(|e| fail(&e));
    let queues = Arc::new(SqsQueues::from_config(&queue_config).await);
    let settings = Arc::new(settings);
    let handler = move |event: LambdaEvent<serde_json::Value>| {
        let (pool, queues, settings) = (pool.clone(), queues.clone(), settings.clone());
        async move {
            let Some(task) = schedule::task_of(&event.payload) else {
                return Err(Error::from(format!(
                    "the event names no known task (expected {{\"task\": \"messages-sync|rooms-sync|sweep|retention\"}}): {}",
                    event.payload
                )));
            };
            let report = schedule::run(&pool, queues.as_ref(), task, &settings).await?;
            Ok(serde_json::to_value(report)?)
        }
    };
    cwsync_lambda::metrics_run(metrics, handler).await
}
