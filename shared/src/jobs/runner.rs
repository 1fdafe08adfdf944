//! The consumer of one job type's queue: one record is one item of one job.
//!
//! For each record, in order: parse the body (a malformed body fails the record, so it
//! ends in the dead-letter queue), start the item (a record whose job is finished or
//! canceled, or whose item already ended, is acknowledged without work), run the kind's
//! handler, and end the item, which finishes the job when it was the last one. A handler
//! error worth retrying fails the record; the item stays `processing` and the next
//! delivery runs it again.

use std::sync::Arc;

use async_trait::async_trait;
use aws_lambda_events::sqs::SqsBatchResponse;
use sqlx::PgPool;
use tokio::time::Instant;

use super::store::{self, Begin};
use super::{
    Envelope, ErrorInfo, ItemError, ItemOutcome, ItemRun, ItemStatus, JobKind, MESSAGE_VERSION,
    Registry,
};
use crate::consumer::process_fifo_batch;
use crate::queue::{BatchConsumer, Delivery};

/// Why a record is reported failed (it will be delivered again).
#[derive(Debug, thiserror::Error)]
pub enum RecordFailure {
    #[error("malformed message body: {0}")]
    Malformed(String),
    #[error("{0}")]
    Unknown(&'static str),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("{0:#}")]
    Retry(anyhow::Error),
}

/// Processes batches of one job type's queue.
pub struct JobConsumer<K: JobKind> {
    pool: PgPool,
    context: Arc<K::Context>,
    /// `K` alone: the jobs this consumer finishes are its type's.
    registry: Registry,
}

impl<K: JobKind> Clone for JobConsumer<K> {
    fn clone(&self) -> Self {
        Self {
            pool: self.pool.clone(),
            context: self.context.clone(),
            registry: self.registry.clone(),
        }
    }
}

impl<K: JobKind> JobConsumer<K> {
    pub fn new(pool: PgPool, context: Arc<K::Context>) -> Self {
        Self {
            pool,
            context,
            registry: Registry::of::<K>(),
        }
    }

    /// Processes a batch as a Lambda invocation would, reporting the records to retry.
    pub async fn handle_batch(
        &self,
        records: Vec<Delivery>,
        deadline: Instant,
    ) -> SqsBatchResponse {
        process_fifo_batch(records, |record| self.handle(record, deadline)).await
    }

    /// Processes one record.
    pub async fn handle(&self, record: Delivery, deadline: Instant) -> Result<(), RecordFailure> {
        let body = record.body.as_deref().unwrap_or_default();
        let envelope: Envelope<K::Message> =
            serde_json::from_str(body).map_err(|e| RecordFailure::Malformed(e.to_string()))?;
        if envelope.v != MESSAGE_VERSION {
            return Err(RecordFailure::Malformed(format!(
                "version {} (this code reads {MESSAGE_VERSION})",
                envelope.v
            )));
        }
        let job_id = envelope.job_id;
        tracing::Span::current().record("job_id", tracing::field::display(job_id));
        let item_key = K::item_key(&envelope.item);
        let begin = store::begin_item(&self.pool, job_id, &item_key).await?;
        let (payload, user_id, job_created_at, attempt) = match begin {
            Begin::Unknown { why } => return Err(RecordFailure::Unknown(why)),
            Begin::Done { why } => {
                tracing::info!(why, item_key, "acknowledged without work");
                // A crash between ending the last item and finishing the job leaves it
                // for the next delivery (or the sweeper) to finish.
                store::finalize(&self.pool, &self.registry, job_id).await?;
                return Ok(());
            }
            Begin::Run {
                job_type,
                payload,
                user_id,
                job_created_at,
                attempt,
            } => {
                if job_type != K::TYPE {
                    return Err(RecordFailure::Unknown(
                        "the job is of another type than this queue's",
                    ));
                }
                (payload, user_id, job_created_at, attempt)
            }
        };
        let item = ItemRun {
            pool: self.pool.clone(),
            job_id,
            job_type: K::TYPE,
            payload,
            user_id,
            job_created_at,
            item_key: item_key.clone(),
            attempt,
            deadline,
        };
        let started = Instant::now();
        let outcome = K::run(&self.context, &item, envelope.item).await;
        metrics::histogram!("job_item_duration_ms", "type" => K::TYPE.as_str())
            .record(started.elapsed().as_secs_f64() * 1000.0);
        let stored =
            |result: K::ItemResult| serde_json::to_value(result).map_err(anyhow::Error::from);
        let (status, fetched, result, error) = match outcome {
            Ok(ItemOutcome::Completed { fetched, result }) => (
                ItemStatus::Completed,
                fetched,
                Some(stored(result).map_err(RecordFailure::Retry)?),
                None,
            ),
            Ok(ItemOutcome::Unchanged { result }) => (
                ItemStatus::Unchanged,
                0,
                Some(stored(result).map_err(RecordFailure::Retry)?),
                None,
            ),
            Ok(ItemOutcome::Canceled) => (ItemStatus::Canceled, 0, None, None),
            Err(ItemError::Fail(error)) => (ItemStatus::Failed, 0, None, Some(error)),
            Err(ItemError::Retry(e)) => {
                let error = ErrorInfo::new("RetryableError", format!("{e:#}"));
                if let Err(db) =
                    store::record_retry_error(&self.pool, job_id, &item_key, &error).await
                {
                    tracing::warn!(error = %db, "could not keep the item's error");
                }
                return Err(RecordFailure::Retry(e));
            }
        };
        let ended = store::end_items(
            &self.pool,
            job_id,
            std::slice::from_ref(&item_key),
            status,
            fetched,
            result.as_ref(),
            error.as_ref(),
        )
        .await?;
        if ended.ended > 0 {
            metrics::counter!("job_items_ended", "type" => K::TYPE.as_str(), "status" => status.as_str())
                .increment(1);
            tracing::info!(item_key, status = status.as_str(), fetched, "item ended");
        }
        if ended.job_needs_finishing() {
            store::finalize(&self.pool, &self.registry, job_id).await?;
        }
        Ok(())
    }
}

#[async_trait]
impl<K: JobKind> BatchConsumer for JobConsumer<K> {
    async fn consume(&self, records: Vec<Delivery>, deadline: Instant) -> SqsBatchResponse {
        self.handle_batch(records, deadline).await
    }
}
