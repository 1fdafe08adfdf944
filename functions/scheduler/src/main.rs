//! The scheduled tasks: EventBridge schedules invoke this function with
//! `{"task": "room-check" | "messages-sync" | "rooms-sync" | "sweep" | "retention" | "migrate"}`
//! (each start recorded as a run, see `cwsync::schedule::runs`), and every minute with
//! `{"tick": true}`, which runs the runs people requested and measures the tasks'
//! health for the alarms.

// The handler's future nests the room check, the job start and the sweeper: a release
// build needs more than rustc's default depth to lay it out.
#![recursion_limit = "256"]

use std::sync::Arc;

use cwsync::queue::{LazySqsQueues, QueueConfig};
use cwsync::schedule::{self, Event, ScheduleSettings, runs};
use cwsync_lambda::{ColdStart, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let start = ColdStart::new("scheduler").await;
    // The room check reads Chatwork's room lists every minute: the connections' clients
    // (and their shared budgets) are built once per cold start.
    let connections = start.connections().await;
    let settings = start
        .or_exit(ScheduleSettings::from_env(&start.env))
        .with_connections(connections);
    let queue_config = start.or_exit(QueueConfig::from_env(
        &start.env,
        &cwsync::job_types::registry().work_queues(),
    ));
    // Built by the first task that needs a queue (retention and migrate never do).
    let queues = Arc::new(LazySqsQueues::new(queue_config));
    let pool = start.pool;
    let settings = Arc::new(settings);
    let handler = move |event: LambdaEvent<serde_json::Value>| {
        let (pool, queues, settings) = (pool.clone(), queues.clone(), settings.clone());
        async move {
            match schedule::event_of(&event.payload) {
                // A task's own failure is its run's outcome (recorded, counted in
                // `schedule_runs_failed`, alarmed), not the invocation's: EventBridge
                // retrying a failed invocation would only start the task again.
                Some(Event::Task(task)) => {
                    let run = runs::fire(&pool, queues.as_ref(), task, &settings).await?;
                    Ok(serde_json::to_value(run)?)
                }
                Some(Event::Tick) => {
                    let (done, health) = schedule::tick(&pool, queues.as_ref(), &settings).await?;
                    Ok(serde_json::json!({"requestedRuns": done, "health": health}))
                }
                None => Err(Error::from(format!(
                    "the event names no known task (expected {{\"task\": \"room-check|messages-sync|rooms-sync|sweep|retention|migrate\"}} or {{\"tick\": true}}): {}",
                    event.payload
                ))),
            }
        }
    };
    cwsync_lambda::metrics_run(start.metrics, handler).await
}
