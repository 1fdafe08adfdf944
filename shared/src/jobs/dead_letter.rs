//! The consumer of the dead-letter queues. A message lands there after its first try and
//! three retries failed; its item can no longer succeed by waiting. The consumer logs the
//! whole body, counts it, ends the item failed with the reason (and the last error the
//! item recorded), and finishes the job when that was its last open item. A body that
//! names no job is logged and counted, and acknowledged: there is nothing to mark.

use async_trait::async_trait;
use aws_lambda_events::sqs::SqsBatchResponse;
use serde::Deserialize;
use sqlx::PgPool;
use tokio::time::Instant;
use uuid::Uuid;

use super::store;
use super::{ErrorInfo, ItemStatus, Registry};
use crate::consumer::BatchConsumer;
use crate::consumer::process_fifo_batch;
use crate::queue::Delivery;

/// Ends the items of dead-lettered messages.
#[derive(Clone)]
pub struct DeadLetterConsumer {
    pool: PgPool,
    registry: Registry,
    /// Receives before a message moves to a dead-letter queue (the redrive policy's
    /// `maxReceiveCount`), for the reason given.
    max_receive_count: u32,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Header {
    job_id: Uuid,
}

impl DeadLetterConsumer {
    pub fn new(pool: PgPool, registry: Registry, max_receive_count: u32) -> Self {
        Self {
            pool,
            registry,
            max_receive_count,
        }
    }

    pub async fn handle_batch(&self, records: Vec<Delivery>) -> SqsBatchResponse {
        process_fifo_batch(records, |record| self.handle(record)).await
    }

    async fn handle(&self, record: Delivery) -> Result<(), sqlx::Error> {
        let body = record.body.clone().unwrap_or_default();
        let queue = record.event_source_arn.as_deref().unwrap_or("unknown");
        metrics::counter!("dead_lettered_messages").increment(1);
        tracing::error!(queue, body = %body, "a message reached its dead-letter queue");
        let parsed: Option<(Header, serde_json::Value)> = serde_json::from_str(&body)
            .ok()
            .and_then(|value: serde_json::Value| {
                Some((serde_json::from_value(value.clone()).ok()?, value))
            });
        let Some((header, message)) = parsed else {
            tracing::error!("the dead-lettered body names no job; nothing to mark");
            return Ok(());
        };
        tracing::Span::current().record("job_id", tracing::field::display(header.job_id));
        let Some(item) = store::item_by_message(&self.pool, header.job_id, &message).await? else {
            tracing::error!("no item of the job matches the dead-lettered body; nothing to mark");
            return Ok(());
        };
        let last = item
            .error
            .as_ref()
            .map(|e| format!("; last error: {}", e.message))
            .unwrap_or_default();
        let error = ErrorInfo {
            stack: item.error.as_ref().and_then(|e| e.stack.clone()),
            ..ErrorInfo::new(
                "DeadLettered",
                format!(
                    "moved to the dead-letter queue after {} receives{last}",
                    self.max_receive_count
                ),
            )
        };
        let ended = store::end_items(
            &self.pool,
            header.job_id,
            std::slice::from_ref(&item.item_key),
            ItemStatus::Failed,
            item.fetched,
            item.result.as_ref(),
            Some(&error),
        )
        .await?;
        if ended.ended > 0 {
            tracing::warn!(item_key = %item.item_key, reason = %error.message, "item failed");
        }
        if ended.job_needs_finishing() {
            store::finalize(&self.pool, &self.registry, header.job_id).await?;
        }
        Ok(())
    }
}

#[async_trait]
impl BatchConsumer for DeadLetterConsumer {
    async fn consume(&self, records: Vec<Delivery>, _deadline: Instant) -> SqsBatchResponse {
        self.handle_batch(records).await
    }
}
