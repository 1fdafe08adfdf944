//! The FIFO queues that carry jobs (docs/architecture.md, "The shape"), behind one trait
//! with two implementations: [`SqsQueues`] (SQS FIFO through `aws-sdk-sqs`, in AWS and
//! against an SQS-compatible server) and [`EmbeddedQueues`] (in-process, for the local
//! runner and tests, with SQS FIFO's semantics).
//!
//! In AWS, Lambda's event source mappings receive and delete; the consumers only see
//! batches. Locally, `consumer::EventSource` does the event source mapping's part over
//! either implementation, so the same consumer code runs in both places.

mod config;
mod embedded;
mod sqs;

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use aws_lambda_events::sqs::SqsMessage;

pub use config::QueueConfig;
pub use embedded::{EmbeddedQueues, EmbeddedSettings};
pub use sqs::{LazySqsQueues, SqsQueues};

/// SQS accepts at most this many entries per batch call.
pub const MAX_BATCH: usize = 10;

/// One of cwsync's queues: a job type's work queue, or its dead-letter queue. Job types
/// name their work queue (`JobSpec::QUEUE`); everything else about it (its dead-letter
/// queue, its name in the template, its URL setting) follows from that one name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QueueName {
    /// The work queue's base name, as in the template (`<base>.fifo`, `<base>-dlq.fifo`).
    base: &'static str,
    dead_letter: bool,
}

impl QueueName {
    /// The work queue named `base` (`rooms-sync`).
    pub const fn work(base: &'static str) -> Self {
        Self {
            base,
            dead_letter: false,
        }
    }

    /// The dead-letter queue of this queue's work queue.
    pub const fn dead_letter(self) -> QueueName {
        Self {
            base: self.base,
            dead_letter: true,
        }
    }

    /// The work queue this queue belongs to (itself, for a work queue).
    pub const fn work_queue(self) -> QueueName {
        Self::work(self.base)
    }

    pub const fn is_dead_letter(self) -> bool {
        self.dead_letter
    }

    /// The queue's name, as in the template without `.fifo` (`rooms-sync`,
    /// `rooms-sync-dlq`).
    pub fn name(self) -> String {
        self.to_string()
    }

    /// The setting that holds the work queue's URL (`ROOMS_SYNC_QUEUE_URL`).
    pub fn url_variable(self) -> String {
        format!(
            "{}_QUEUE_URL",
            self.base.to_ascii_uppercase().replace('-', "_")
        )
    }
}

impl fmt::Display for QueueName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.base)?;
        if self.dead_letter {
            f.write_str("-dlq")?;
        }
        Ok(())
    }
}

/// A message to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingMessage {
    /// SQS's MessageGroupId: order holds within a group.
    pub group_id: String,
    /// SQS's MessageDeduplicationId: a second send with the same id inside the
    /// deduplication window is accepted and dropped.
    pub deduplication_id: String,
    pub body: String,
}

/// A received message: the shape Lambda hands a function, so consumers take the same
/// type from both.
pub type Delivery = SqsMessage;

/// The attributes of a delivery that cwsync reads.
pub mod attributes {
    pub const MESSAGE_GROUP_ID: &str = "MessageGroupId";
    pub const MESSAGE_DEDUPLICATION_ID: &str = "MessageDeduplicationId";
    pub const APPROXIMATE_RECEIVE_COUNT: &str = "ApproximateReceiveCount";
    pub const SEQUENCE_NUMBER: &str = "SequenceNumber";
    pub const SENT_TIMESTAMP: &str = "SentTimestamp";
}

/// The message group of a delivery ("" when absent, which no FIFO message is).
pub fn group_of(delivery: &Delivery) -> &str {
    delivery
        .attributes
        .get(attributes::MESSAGE_GROUP_ID)
        .map(String::as_str)
        .unwrap_or("")
}

/// How many times the delivery has been received, this time included.
pub fn receive_count_of(delivery: &Delivery) -> u32 {
    delivery
        .attributes
        .get(attributes::APPROXIMATE_RECEIVE_COUNT)
        .and_then(|c| c.parse().ok())
        .unwrap_or(1)
}

/// Why a queue call failed.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("queue {0} is not configured")]
    NotConfigured(QueueName),
    #[error("{queue}: {message}")]
    Service { queue: QueueName, message: String },
}

/// A send that did not get every message into the queue, even after retries.
#[derive(Debug, thiserror::Error)]
#[error("{queue}: {} message(s) not accepted: {reason}", .unsent.len())]
pub struct SendError {
    pub queue: QueueName,
    /// The deduplication ids of the messages that may not have been accepted. The others
    /// were; sending these again is safe either way (deduplication).
    pub unsent: Vec<String>,
    pub reason: String,
}

/// The queue operations cwsync uses. All methods are safe to call concurrently.
#[async_trait]
pub trait Queues: Send + Sync + 'static {
    /// Sends messages in batches of [`MAX_BATCH`], retrying what the service throttles or
    /// fails; the error names the messages that may not have been accepted.
    async fn send(&self, queue: QueueName, messages: &[OutgoingMessage]) -> Result<(), SendError>;

    /// Receives up to `max` messages, waiting up to `wait` for the first one. Within a
    /// message group, messages come in order and a group with a message in flight
    /// yields nothing until it is deleted or becomes visible again.
    async fn receive(
        &self,
        queue: QueueName,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<Delivery>, QueueError>;

    /// Deletes received messages by their receipt handles.
    async fn delete(&self, queue: QueueName, receipt_handles: &[String]) -> Result<(), QueueError>;

    /// Approximate number of messages in the queue (visible and in flight).
    async fn depth(&self, queue: QueueName) -> Result<u64, QueueError>;

    /// Whether the queues can be reached (for `/api/health`).
    async fn ping(&self) -> Result<(), QueueError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_work_queue_names_its_dead_letter_queue_and_its_setting() {
        let queue = QueueName::work("rooms-sync");
        let dlq = queue.dead_letter();
        assert!(dlq.is_dead_letter() && !queue.is_dead_letter());
        assert_eq!(dlq.name(), "rooms-sync-dlq");
        assert_eq!(dlq.work_queue(), queue);
        assert_eq!(queue.url_variable(), "ROOMS_SYNC_QUEUE_URL");
    }
}
