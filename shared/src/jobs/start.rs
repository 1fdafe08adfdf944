//! Starting a job: plan its items, write the job and its items in one transaction, then
//! send one queue message per item. A send that fails after the queue's retries fails the
//! items it could not send (and so the job, when none was sent): no job waits forever
//! for messages that were never sent. A crash between the write and the send leaves
//! items `pending`, which the sweeper sends later.

use sqlx::PgPool;
use uuid::Uuid;

use super::store::{self, JobRecord, NewItem, NewJob};
use super::{Envelope, ErrorInfo, ItemStatus, Job, JobKind, MESSAGE_VERSION, Registry};
use crate::queue::{OutgoingMessage, QueueName, Queues};

/// The longest item key: `<job uuid>:<key>` must fit SQS's 128-character
/// deduplication id.
pub const MAX_ITEM_KEY_CHARS: usize = 90;

/// A started job, or the active one that already does the same work.
#[derive(Debug, Clone)]
pub struct Started {
    pub job: Job,
    /// `false` when `job` is an existing active job returned instead of a new one.
    pub created: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("the job's payload or message does not serialize: {0}")]
    Serialize(#[from] serde_json::Error),
    #[error("item key {0:?} is longer than {MAX_ITEM_KEY_CHARS} characters")]
    ItemKeyTooLong(String),
}

/// The queue message of one item.
pub(crate) fn outgoing(
    job_id: Uuid,
    item_key: &str,
    group_id: &str,
    body: &serde_json::Value,
) -> OutgoingMessage {
    OutgoingMessage {
        group_id: group_id.to_owned(),
        deduplication_id: format!("{job_id}:{item_key}"),
        body: body.to_string(),
    }
}

/// Starts a job of kind `K` for `user_id` (`None`: the scheduler), or returns the job of
/// the same kind and active key that is already queued or processing.
pub async fn start<K: JobKind>(
    pool: &PgPool,
    queues: &dyn Queues,
    payload: &K::Payload,
    user_id: Option<&str>,
) -> Result<Started, StartError> {
    start_recorded::<K>(pool, queues, payload, user_id, None).await
}

/// [`start`], writing `record` in the transaction that writes the new job (nothing is
/// written when the active job is returned instead).
pub async fn start_recorded<K: JobKind>(
    pool: &PgPool,
    queues: &dyn Queues,
    payload: &K::Payload,
    user_id: Option<&str>,
    record: Option<&dyn JobRecord>,
) -> Result<Started, StartError> {
    let payload_json = serde_json::to_value(payload)?;
    let active_key = K::active_key(payload);
    // The planned items may differ from one attempt to the next; two attempts are
    // needed only when the active job ended between our insert and our look-up.
    for _ in 0..3 {
        let id = Uuid::new_v4();
        let planned = K::plan(pool, payload).await?;
        let mut items = Vec::with_capacity(planned.len());
        for item in planned {
            let key = K::item_key(&item.message);
            if key.chars().count() > MAX_ITEM_KEY_CHARS {
                return Err(StartError::ItemKeyTooLong(key));
            }
            let message = serde_json::to_value(Envelope {
                v: MESSAGE_VERSION,
                job_id: id,
                item: item.message,
            })?;
            items.push(NewItem {
                key,
                message,
                group: item.group_id,
                step: item.step,
            });
        }
        let new = NewJob {
            id,
            job_type: K::TYPE,
            payload: &payload_json,
            user_id,
            active_key: &active_key,
            items,
        };
        let outgoing_messages = outgoing_of(id, &new.items);
        match store::insert(pool, new, record).await? {
            Some(job) => {
                metrics::counter!("jobs_started", "type" => K::TYPE.as_str()).increment(1);
                tracing::info!(job_id = %job.id, job_type = K::TYPE.as_str(), items = job.total_items, "job started");
                let registry = Registry::of::<K>();
                if outgoing_messages.is_empty() {
                    // Nothing to do: the job is complete at once.
                    store::finalize(pool, &registry, job.id).await?;
                } else {
                    dispatch(
                        pool,
                        queues,
                        &registry,
                        K::QUEUE,
                        job.id,
                        &outgoing_messages,
                    )
                    .await?;
                }
                let job = store::get(pool, job.id).await?.unwrap_or(job);
                return Ok(Started { job, created: true });
            }
            None => {
                if let Some(job) = store::find_active(pool, K::TYPE, &active_key).await? {
                    return Ok(Started {
                        job,
                        created: false,
                    });
                }
            }
        }
    }
    // Three times an active job blocked the insert and was gone by the look-up: the
    // same work keeps starting and ending; the caller may try again.
    Err(StartError::Database(sqlx::Error::Protocol(
        "the active job of this kind kept changing; try again".into(),
    )))
}

/// The queue messages of `items` of job `job_id`.
pub(crate) fn outgoing_of(job_id: Uuid, items: &[NewItem]) -> Vec<OutgoingMessage> {
    items
        .iter()
        .map(|i| outgoing(job_id, &i.key, &i.group, &i.message))
        .collect()
}

/// Sends items' messages (a new job's, or those a job grew by) and records what was
/// sent; items that could not be sent end failed, and the job with them when nothing
/// else is open.
pub(crate) async fn dispatch(
    pool: &PgPool,
    queues: &dyn Queues,
    registry: &Registry,
    queue: QueueName,
    job_id: Uuid,
    messages: &[OutgoingMessage],
) -> Result<(), StartError> {
    if messages.is_empty() {
        return Ok(());
    }
    let unsent = match queues.send(queue, messages).await {
        Ok(()) => Vec::new(),
        Err(e) => {
            tracing::error!(job_id = %job_id, error = %e, "could not queue the job's items");
            e.unsent
                .iter()
                .filter_map(|dedup| dedup.split_once(':').map(|(_, key)| key.to_owned()))
                .map(|key| (key, e.reason.clone()))
                .collect::<Vec<_>>()
        }
    };
    let unsent_keys: Vec<String> = unsent.iter().map(|(k, _)| k.clone()).collect();
    let sent_keys: Vec<String> = messages
        .iter()
        .filter_map(|m| {
            m.deduplication_id
                .split_once(':')
                .map(|(_, key)| key.to_owned())
        })
        .filter(|key| !unsent_keys.contains(key))
        .collect();
    store::mark_sent(pool, job_id, &sent_keys).await?;
    if let Some((_, reason)) = unsent.first() {
        // The queue's own words (its URL, the SDK's error) are for admins.
        let error = ErrorInfo {
            stack: Some(reason.to_string()),
            ..ErrorInfo::new(
                "EnqueueFailed",
                format!(
                    "{} of {} item(s) could not be handed to the {} queue after retries",
                    unsent.len(),
                    messages.len(),
                    queue
                ),
            )
        };
        let ended = store::end_items(
            pool,
            job_id,
            &unsent_keys,
            ItemStatus::Failed,
            0,
            None,
            Some(&error),
        )
        .await?;
        if ended.job_needs_finishing() {
            store::finalize(pool, registry, job_id).await?;
        }
    }
    Ok(())
}
