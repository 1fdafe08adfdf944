//! Consumers: what processes a queue's batches, in Lambda and out of it.
//!
//! - [`BatchConsumer`]: something that processes a batch the way a consumer Lambda does
//!   (the job core's `jobs::JobConsumer`, the dead-letter consumer); the Lambda
//!   functions hand it their SQS events (`functions/common`'s `run_sqs`).
//! - [`process_fifo_batch`]: the FIFO batch runtime every consumer uses (skip the rest
//!   of a failed group).
//! - [`EventSource`]: what Lambda's SQS event source mapping does, for the local runner,
//!   tests and benchmarks.

mod event_source;
mod fifo;

use async_trait::async_trait;
use aws_lambda_events::sqs::SqsBatchResponse;
use tokio::time::Instant;

use crate::queue::Delivery;

pub use event_source::EventSource;
pub use fifo::process_fifo_batch;

/// Something that processes a batch the way a consumer Lambda does.
#[async_trait]
pub trait BatchConsumer: Send + Sync {
    /// Processes `records` in order and reports the ones to leave in the queue. `deadline`
    /// is when the batch's time is up (a Lambda's remaining time).
    async fn consume(&self, records: Vec<Delivery>, deadline: Instant) -> SqsBatchResponse;
}
