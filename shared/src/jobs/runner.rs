//! The consumer of one job type's queue: one record is one item of one job.
//!
//! For each record, in order: parse the body, start the item (a record whose job is
//! finished or canceled, or whose item already ended, is acknowledged without work), run
//! the kind's handler, and end the item, which finishes the job when it was the last one.
//!
//! A failure a retry can fix (see [`super::failure`]) fails the record; the item stays
//! `processing` and the next delivery runs it again. A failure no retry can fix never
//! fails the record, since a FIFO group waits for its head: a handler's permanent error
//! (a constraint or data error included) ends the item failed; a malformed or
//! unknown-version body, a message for a job or item that does not exist or on another
//! type's queue is logged whole at error level, counted (`poison_messages`) and
//! acknowledged. Either way the group's next record runs in the same invocation.
//!
//! A batch runs its records' statements on one connection ([`BatchConnection`]), given
//! back to the pool after a failed record and at the batch's end.

use std::sync::Arc;

use async_trait::async_trait;
use aws_lambda_events::sqs::SqsBatchResponse;
use sqlx::PgPool;
use tokio::time::Instant;
use uuid::Uuid;

use super::failure;
use super::start::{dispatch, outgoing_of};
use super::store::{self, Begin, NewItem};
use super::{
    BatchConnection, Envelope, ErrorInfo, ItemError, ItemOutcome, ItemRun, ItemStatus, JobKind,
    MESSAGE_VERSION, PlannedItem, Registry,
};
use crate::consumer::BatchConsumer;
use crate::consumer::process_fifo_batch;
use crate::queue::{Delivery, Queues};

/// Why a record could not be processed. [`RecordFailure::is_retryable`] tells whether it
/// is reported failed (delivered again) or acknowledged.
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

impl RecordFailure {
    /// Whether another delivery may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Malformed(_) | Self::Unknown(_) => false,
            Self::Database(e) => failure::is_transient(e),
            Self::Retry(e) => failure::is_retryable(e),
        }
    }

    /// Whether the database ended the connection's session under the record (see
    /// [`failure::is_session_ended`]).
    fn session_ended(&self) -> bool {
        match self {
            Self::Database(e) => failure::is_session_ended(e),
            Self::Retry(e) => failure::database_error(e).is_some_and(failure::is_session_ended),
            _ => false,
        }
    }

    fn reason(&self) -> &'static str {
        match self {
            Self::Malformed(_) => "malformed",
            Self::Unknown(_) => "unknown",
            Self::Database(_) | Self::Retry(_) => "permanent",
        }
    }
}

/// The item a record names, once its body parsed.
type ItemAt = Option<(Uuid, String)>;

/// Processes batches of one job type's queue.
pub struct JobConsumer<K: JobKind> {
    pool: PgPool,
    /// Where the items a job grows by are sent ([`ItemOutcome::Planned`]).
    queues: Arc<dyn Queues>,
    context: Arc<K::Context>,
    /// `K` alone: the jobs this consumer finishes are its type's.
    registry: Registry,
}

impl<K: JobKind> Clone for JobConsumer<K> {
    fn clone(&self) -> Self {
        Self {
            pool: self.pool.clone(),
            queues: self.queues.clone(),
            context: self.context.clone(),
            registry: self.registry.clone(),
        }
    }
}

impl<K: JobKind> JobConsumer<K> {
    pub fn new(pool: PgPool, queues: Arc<dyn Queues>, context: Arc<K::Context>) -> Self {
        Self {
            pool,
            queues,
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
        let db = BatchConnection::new(self.pool.clone());
        let response =
            process_fifo_batch(records, |record| self.handle_on(&db, record, deadline)).await;
        db.release().await;
        response
    }

    /// Processes one record: `Err` when it must be delivered again.
    pub async fn handle(&self, record: Delivery, deadline: Instant) -> Result<(), RecordFailure> {
        let db = BatchConnection::new(self.pool.clone());
        let handled = self.handle_on(&db, record, deadline).await;
        db.release().await;
        handled
    }

    /// [`handle`](Self::handle) on a batch's connection.
    async fn handle_on(
        &self,
        db: &BatchConnection,
        record: Delivery,
        deadline: Instant,
    ) -> Result<(), RecordFailure> {
        let body = record.body.clone().unwrap_or_default();
        let mut at: ItemAt = None;
        let mut processed = self.process(db, record.clone(), deadline, &mut at).await;
        if let Err(failure) = &processed
            && failure.session_ended()
        {
            // The server ended the batch's connection (it restarted while the connection
            // sat between statements): the statement that met it took no effect, and one
            // the pool checks works at once. Once, in place of a redelivery, which would
            // wait out the queue's visibility timeout.
            tracing::warn!(error = %failure, "the database ended the connection's session; the record runs again on a new one");
            db.release().await;
            processed = self.process(db, record, deadline, &mut at).await;
        }
        if processed.is_err() {
            // The failure may have been the connection's: the next record takes one the
            // pool checks first.
            db.release().await;
        }
        let failure = match processed {
            Ok(()) => return Ok(()),
            Err(failure) if failure.is_retryable() => return Err(failure),
            Err(failure) => failure,
        };
        metrics::counter!("poison_messages", "type" => K::TYPE.as_str(), "reason" => failure.reason())
            .increment(1);
        tracing::error!(error = %failure, body = %body, "no retry can fix this record; acknowledged");
        let Some((job_id, item_key)) = at else {
            return Ok(());
        };
        // The item can never succeed: end it (and the job, when it was the last), so that
        // it does not stay `processing` until the sweeper.
        let error = match &failure {
            RecordFailure::Database(e) => refused(e, &failure),
            RecordFailure::Retry(e) => match failure::database_error(e) {
                Some(db) => refused(db, &failure),
                None => ErrorInfo::new("Failed", "the item could not be processed"),
            },
            _ => ErrorInfo::new("Failed", "the item could not be processed"),
        };
        let ended = store::end_items(
            &self.pool,
            job_id,
            std::slice::from_ref(&item_key),
            ItemStatus::Failed,
            0,
            None,
            Some(&error),
        )
        .await?;
        if ended.job_needs_finishing() {
            store::finalize(&self.pool, &self.registry, job_id).await?;
        }
        Ok(())
    }

    async fn process(
        &self,
        db: &BatchConnection,
        record: Delivery,
        deadline: Instant,
        at: &mut ItemAt,
    ) -> Result<(), RecordFailure> {
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
        let start = K::begin(&self.context, db, job_id, &item_key, &envelope.item).await?;
        let (payload, user_id, job_created_at, attempt, read) = match start {
            Begin::Unknown { why } => return Err(RecordFailure::Unknown(why)),
            Begin::Done { why } => {
                tracing::info!(why, item_key, "acknowledged without work");
                // A crash between ending the last item and finishing the job leaves it
                // for the next delivery (or the sweeper) to finish.
                store::finalize_on(&mut *db.lock().await?, &self.registry, job_id).await?;
                return Ok(());
            }
            Begin::Run {
                job_type,
                payload,
                user_id,
                job_created_at,
                attempt,
                read,
            } => {
                if job_type != K::TYPE {
                    return Err(RecordFailure::Unknown(
                        "the job is of another type than this queue's",
                    ));
                }
                (payload, user_id, job_created_at, attempt, read)
            }
        };
        *at = Some((job_id, item_key.clone()));
        let item = ItemRun {
            pool: self.pool.clone(),
            db: db.clone(),
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
        let outcome = K::run(&self.context, &item, envelope.item, read).await;
        metrics::histogram!("job_item_duration_ms", "type" => K::TYPE.as_str())
            .record(started.elapsed().as_secs_f64() * 1000.0);
        let stored =
            |result: K::ItemResult| serde_json::to_value(result).map_err(anyhow::Error::from);
        let mut written = None;
        let (status, fetched, result, error) = match outcome {
            Ok(ItemOutcome::Completed { fetched, result }) => (
                ItemStatus::Completed,
                fetched,
                Some(stored(result).map_err(RecordFailure::Retry)?),
                None,
            ),
            Ok(ItemOutcome::Written { fetched, ended }) => {
                written = Some(ended);
                (ItemStatus::Completed, fetched, None, None)
            }
            Ok(ItemOutcome::Planned { result, items }) => {
                let result = stored(result).map_err(RecordFailure::Retry)?;
                return self.grow(db, &item, &result, items).await;
            }
            Ok(ItemOutcome::Unchanged { result }) => (
                ItemStatus::Unchanged,
                0,
                Some(stored(result).map_err(RecordFailure::Retry)?),
                None,
            ),
            Ok(ItemOutcome::Canceled) => (ItemStatus::Canceled, 0, None, None),
            Err(ItemError::Fail(error)) => (ItemStatus::Failed, 0, None, Some(error)),
            Err(ItemError::Retry(e)) if !failure::is_retryable(&e) => {
                tracing::error!(error = %format!("{e:#}"), "the item failed for good");
                let error = failure::database_error(&e).map_or_else(
                    || ErrorInfo::new("Failed", "the item could not be processed"),
                    |db| refused(db, &e),
                );
                (ItemStatus::Failed, 0, None, Some(error))
            }
            Err(ItemError::Retry(e)) => {
                // What a person reads says what happened; a database's own words (which
                // name relations and constraints) stay in the admins' `stack`.
                let error = match failure::database_error(&e) {
                    Some(db) => ErrorInfo {
                        name: "RetryableError".into(),
                        message: format!(
                            "{}; the item will be retried",
                            failure::describe_database_error(db)
                        ),
                        stack: Some(format!("{e:#}")),
                    },
                    None => ErrorInfo::new("RetryableError", format!("{e:#}")),
                };
                let kept = match db.lock().await {
                    Ok(mut conn) => {
                        store::record_retry_error(&mut *conn, job_id, &item_key, &error).await
                    }
                    Err(e) => Err(e),
                };
                if let Err(db) = kept {
                    tracing::warn!(error = %db, "could not keep the item's error");
                }
                return Err(RecordFailure::Retry(e));
            }
        };
        let ended = match written {
            // The handler's statement stored the result and ended the item.
            Some(ended) => ended,
            None => {
                store::end_items(
                    &mut *db.lock().await?,
                    job_id,
                    std::slice::from_ref(&item_key),
                    status,
                    fetched,
                    result.as_ref(),
                    error.as_ref(),
                )
                .await?
            }
        };
        if ended.ended > 0 {
            metrics::counter!("job_items_ended", "type" => K::TYPE.as_str(), "status" => status.as_str())
                .increment(1);
            tracing::info!(item_key, status = status.as_str(), fetched, "item ended");
        }
        if ended.job_needs_finishing() {
            store::finalize_on(&mut *db.lock().await?, &self.registry, job_id).await?;
        }
        Ok(())
    }

    /// Ends `item` with `result` after adding `planned` to its job
    /// ([`ItemOutcome::Planned`]), then sends the items added and finishes the job when
    /// nothing is left open (a plan of no items).
    async fn grow(
        &self,
        db: &BatchConnection,
        item: &ItemRun,
        result: &serde_json::Value,
        planned: Vec<PlannedItem<K::Message>>,
    ) -> Result<(), RecordFailure> {
        let mut items = Vec::with_capacity(planned.len());
        for planned in planned {
            let key = K::item_key(&planned.message);
            let message = serde_json::to_value(Envelope {
                v: MESSAGE_VERSION,
                job_id: item.job_id,
                item: planned.message,
            })
            .map_err(|e| RecordFailure::Retry(e.into()))?;
            items.push(NewItem {
                key,
                message,
                group: planned.group_id,
                step: planned.step,
            });
        }
        // The batch's connection is free for the transaction's own.
        db.release().await;
        let grown = store::grow(&self.pool, item.job_id, &item.item_key, &items, result).await?;
        items.retain(|i| grown.added.contains(&i.key));
        tracing::info!(
            item_key = item.item_key,
            added = grown.added.len(),
            "the job grew by the items its step planned"
        );
        let outgoing = outgoing_of(item.job_id, &items);
        dispatch(
            &self.pool,
            self.queues.as_ref(),
            &self.registry,
            K::QUEUE,
            item.job_id,
            &outgoing,
        )
        .await
        .map_err(|e| RecordFailure::Retry(e.into()))?;
        if grown.ended.ended > 0 {
            metrics::counter!("job_items_ended", "type" => K::TYPE.as_str(), "status" => "completed")
                .increment(1);
        }
        if grown.ended.job_needs_finishing() {
            store::finalize(&self.pool, &self.registry, item.job_id).await?;
        }
        Ok(())
    }
}

/// The stored error of an item a database refused: the kind for a person, the database's
/// words for admins.
fn refused(db: &sqlx::Error, detail: &dyn std::fmt::Display) -> ErrorInfo {
    ErrorInfo {
        name: "Refused".into(),
        message: failure::describe_database_error(db).into(),
        stack: Some(format!("{detail:#}")),
    }
}

#[async_trait]
impl<K: JobKind> BatchConsumer for JobConsumer<K> {
    async fn consume(&self, records: Vec<Delivery>, deadline: Instant) -> SqsBatchResponse {
        self.handle_batch(records, deadline).await
    }
}
