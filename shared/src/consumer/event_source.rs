//! What Lambda's SQS event source mapping does, for processes that are not Lambda (the
//! local runner, tests, benchmarks): receive a batch, hand it to a consumer as an
//! `SqsEvent`'s records, and delete the records the consumer did not report failed.
//! Failed records stay in the queue and come back after their visibility timeout.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::BatchConsumer;
use crate::queue::{QueueError, QueueName, Queues};

/// A poller of one queue feeding one consumer.
#[derive(Clone)]
pub struct EventSource {
    pub queues: Arc<dyn Queues>,
    pub queue: QueueName,
    /// Records per batch (at most 10, as for a FIFO event source).
    pub batch_size: usize,
    /// Long-poll wait of each receive.
    pub wait: Duration,
    /// How long a batch may run, as a function timeout would allow.
    pub batch_timeout: Duration,
}

impl EventSource {
    pub fn new(queues: Arc<dyn Queues>, queue: QueueName) -> Self {
        Self {
            queues,
            queue,
            batch_size: crate::queue::MAX_BATCH,
            wait: Duration::from_secs(1),
            batch_timeout: Duration::from_secs(50),
        }
    }

    /// Receives one batch, lets `consumer` process it and deletes what succeeded.
    /// Returns how many records the batch had (0: the queue had nothing).
    pub async fn poll_once(&self, consumer: &dyn BatchConsumer) -> Result<usize, QueueError> {
        let records = self
            .queues
            .receive(self.queue, self.batch_size, self.wait)
            .await?;
        if records.is_empty() {
            return Ok(0);
        }
        let count = records.len();
        let handles: Vec<(String, String)> = records
            .iter()
            .filter_map(|r| Some((r.message_id.clone()?, r.receipt_handle.clone()?)))
            .collect();
        let response = consumer
            .consume(records, Instant::now() + self.batch_timeout)
            .await;
        let failed: std::collections::HashSet<&str> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        let done: Vec<String> = handles
            .into_iter()
            .filter(|(id, _)| !failed.contains(id.as_str()))
            .map(|(_, handle)| handle)
            .collect();
        if !done.is_empty() {
            self.queues.delete(self.queue, &done).await?;
        }
        Ok(count)
    }

    /// Polls until `shutdown` is cancelled. A batch in progress is finished first, so
    /// stopping loses nothing; a failing queue is retried with a pause.
    pub async fn run(&self, consumer: &dyn BatchConsumer, shutdown: CancellationToken) {
        while !shutdown.is_cancelled() {
            // Not raced against the shutdown: a batch that was received is processed and
            // acknowledged before the loop looks at the token again. A panic that escapes
            // the consumer leaves its batch to come back after the visibility timeout;
            // the poller goes on.
            let polled = AssertUnwindSafe(self.poll_once(consumer))
                .catch_unwind()
                .await
                .unwrap_or_else(|panic| {
                    tracing::error!(
                        queue = %self.queue,
                        panic = super::fifo::panic_message(panic.as_ref()),
                        "a batch's consumer panicked; its records come back later"
                    );
                    Ok(0)
                });
            if let Err(e) = polled {
                tracing::warn!(queue = %self.queue, error = %e, "polling failed; retrying shortly");
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        }
    }
}
