//! An in-process FIFO queue with the semantics of SQS FIFO that cwsync relies on:
//!
//! - order within a message group, and one in-flight batch per group: a group whose
//!   oldest message is in flight yields nothing until that message is deleted or its
//!   visibility timeout passes;
//! - a visibility timeout, after which an undeleted message is delivered again;
//! - a receive count, and a move to the queue's dead-letter queue when a message that was
//!   already received `max_receive_count` times would be received again;
//! - a deduplication window: a send whose deduplication id was seen within the window is
//!   accepted and dropped (also after the first message was deleted, as in SQS).
//!
//! State lives in memory; the local runner re-sends unfinished job items at start, so a
//! restart loses no work.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::{Delivery, OutgoingMessage, QueueError, QueueName, Queues, SendError, attributes};

/// SQS's limits on a message, kept so that what runs locally also fits SQS.
const MAX_BODY_BYTES: usize = 256 * 1024;
const MAX_ID_CHARS: usize = 128;

/// The knobs of the embedded queues (all queues share them).
#[derive(Debug, Clone)]
pub struct EmbeddedSettings {
    pub visibility_timeout: Duration,
    /// Receives before a message moves to the dead-letter queue (the first try and three
    /// retries: 4).
    pub max_receive_count: u32,
    pub deduplication_window: Duration,
}

impl Default for EmbeddedSettings {
    fn default() -> Self {
        Self {
            visibility_timeout: Duration::from_secs(60),
            max_receive_count: 4,
            deduplication_window: Duration::from_secs(5 * 60),
        }
    }
}

/// The six queues of cwsync, in memory. Cheap to clone; clones share the queues.
#[derive(Clone)]
pub struct EmbeddedQueues {
    inner: Arc<Inner>,
}

struct Inner {
    settings: EmbeddedSettings,
    /// Each queue comes into being on its first use, as every queue a job type names
    /// exists in the template.
    state: Mutex<HashMap<QueueName, QueueState>>,
}

#[derive(Default)]
struct QueueState {
    /// Message groups in order of their oldest message's sequence number.
    groups: HashMap<String, VecDeque<Stored>>,
    /// Deduplication id → when it may be used again.
    seen: HashMap<String, Instant>,
    next_sequence: u64,
    /// Wakes the receivers waiting on the queue.
    notify: Arc<Notify>,
}

struct Stored {
    message_id: String,
    sequence: u64,
    group_id: String,
    deduplication_id: String,
    body: String,
    sent_at_ms: u128,
    receive_count: u32,
    first_receive_ms: Option<u128>,
    in_flight: Option<InFlight>,
}

struct InFlight {
    receipt_handle: String,
    visible_at: Instant,
}

fn epoch_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0)
}

impl EmbeddedQueues {
    pub fn new(settings: EmbeddedSettings) -> Self {
        Self {
            inner: Arc::new(Inner {
                settings,
                state: Mutex::new(HashMap::new()),
            }),
        }
    }

    pub fn settings(&self) -> &EmbeddedSettings {
        &self.inner.settings
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<QueueName, QueueState>> {
        // A panic while holding the lock cannot leave the maps half-updated in a way
        // that matters more than losing the queue, so a poisoned lock is taken over.
        self.inner.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn wake(&self, queue: QueueName) {
        self.notifier(queue).notify_waiters();
    }

    fn notifier(&self, queue: QueueName) -> Arc<Notify> {
        self.lock().entry(queue).or_default().notify.clone()
    }

    /// Takes up to `max` deliverable messages. Returns them and, when none was
    /// deliverable, the earliest moment an in-flight message becomes visible again.
    fn take(&self, queue: QueueName, max: usize) -> (Vec<Delivery>, Option<Instant>) {
        let now = Instant::now();
        let settings = &self.inner.settings;
        let dead_letter = (!queue.is_dead_letter()).then(|| queue.dead_letter());
        let mut state = self.lock();
        let mut moved: Vec<Stored> = Vec::new();
        let mut batch = Vec::new();
        let mut next_visible: Option<Instant> = None;
        let queue_state = state.entry(queue).or_default();

        let mut order: Vec<(u64, String)> = queue_state
            .groups
            .iter()
            .filter_map(|(group, messages)| messages.front().map(|m| (m.sequence, group.clone())))
            .collect();
        order.sort();
        for (_, group) in order {
            if batch.len() >= max {
                break;
            }
            let messages = queue_state.groups.get_mut(&group).expect("listed above");
            let mut index = 0;
            while index < messages.len() && batch.len() < max {
                let message = &mut messages[index];
                if let Some(flight) = &message.in_flight {
                    if flight.visible_at > now {
                        // In flight: nothing after it in this group may be delivered.
                        next_visible = Some(
                            next_visible.map_or(flight.visible_at, |n| n.min(flight.visible_at)),
                        );
                        break;
                    }
                    message.in_flight = None;
                }
                if dead_letter.is_some() && message.receive_count >= settings.max_receive_count {
                    moved.push(messages.remove(index).expect("index is in range"));
                    continue;
                }
                message.receive_count += 1;
                let first_receive = *message.first_receive_ms.get_or_insert_with(epoch_ms);
                let receipt_handle = uuid::Uuid::new_v4().to_string();
                message.in_flight = Some(InFlight {
                    receipt_handle: receipt_handle.clone(),
                    visible_at: now + settings.visibility_timeout,
                });
                batch.push(delivery(queue, message, receipt_handle, first_receive));
                index += 1;
            }
        }
        queue_state
            .groups
            .retain(|_, messages| !messages.is_empty());

        if let Some(dlq) = dead_letter.filter(|_| !moved.is_empty()) {
            let dlq_state = state.entry(dlq).or_default();
            for mut message in moved {
                tracing::warn!(
                    queue = %queue,
                    message_id = %message.message_id,
                    receives = message.receive_count,
                    "moving a message to its dead-letter queue"
                );
                message.receive_count = 0;
                message.first_receive_ms = None;
                message.in_flight = None;
                message.sequence = dlq_state.next_sequence;
                dlq_state.next_sequence += 1;
                dlq_state
                    .groups
                    .entry(message.group_id.clone())
                    .or_default()
                    .push_back(message);
            }
            drop(state);
            self.wake(dlq);
        }
        (batch, next_visible)
    }
}

fn delivery(
    queue: QueueName,
    message: &Stored,
    receipt_handle: String,
    first_receive: u128,
) -> Delivery {
    let mut delivery = Delivery::default();
    delivery.message_id = Some(message.message_id.clone());
    delivery.receipt_handle = Some(receipt_handle);
    delivery.body = Some(message.body.clone());
    delivery.event_source = Some("aws:sqs".into());
    delivery.event_source_arn = Some(format!("arn:aws:sqs:local:000000000000:{queue}.fifo"));
    delivery.aws_region = Some("local".into());
    delivery.attributes = HashMap::from([
        (
            attributes::MESSAGE_GROUP_ID.into(),
            message.group_id.clone(),
        ),
        (
            attributes::MESSAGE_DEDUPLICATION_ID.into(),
            message.deduplication_id.clone(),
        ),
        (
            attributes::APPROXIMATE_RECEIVE_COUNT.into(),
            message.receive_count.to_string(),
        ),
        (
            attributes::SEQUENCE_NUMBER.into(),
            format!("{:020}", message.sequence),
        ),
        (
            attributes::SENT_TIMESTAMP.into(),
            message.sent_at_ms.to_string(),
        ),
        (
            "ApproximateFirstReceiveTimestamp".into(),
            first_receive.to_string(),
        ),
    ]);
    delivery
}

fn validate(message: &OutgoingMessage) -> Result<(), String> {
    let invalid = |what: &str| format!("InvalidParameterValue: {what}");
    for (name, value) in [
        ("MessageGroupId", &message.group_id),
        ("MessageDeduplicationId", &message.deduplication_id),
    ] {
        if value.is_empty()
            || value.chars().count() > MAX_ID_CHARS
            || !value.chars().all(|c| c.is_ascii_graphic())
        {
            return Err(invalid(&format!(
                "{name} must be 1 to 128 printable ASCII characters"
            )));
        }
    }
    if message.body.is_empty() || message.body.len() > MAX_BODY_BYTES {
        return Err(invalid("the body must be 1 byte to 256 KiB"));
    }
    Ok(())
}

#[async_trait]
impl Queues for EmbeddedQueues {
    async fn send(&self, queue: QueueName, messages: &[OutgoingMessage]) -> Result<(), SendError> {
        // Like a batch call, an invalid entry fails the whole send before anything is queued.
        if let Err(reason) = messages.iter().try_for_each(validate) {
            return Err(SendError {
                queue,
                unsent: messages
                    .iter()
                    .map(|m| m.deduplication_id.clone())
                    .collect(),
                reason,
            });
        }
        let now = Instant::now();
        let window = self.inner.settings.deduplication_window;
        {
            let mut state = self.lock();
            let queue_state = state.entry(queue).or_default();
            queue_state.seen.retain(|_, until| *until > now);
            for message in messages {
                if queue_state.seen.contains_key(&message.deduplication_id) {
                    tracing::debug!(queue = %queue, deduplication_id = %message.deduplication_id, "duplicate send dropped");
                    continue;
                }
                queue_state
                    .seen
                    .insert(message.deduplication_id.clone(), now + window);
                let sequence = queue_state.next_sequence;
                queue_state.next_sequence += 1;
                queue_state
                    .groups
                    .entry(message.group_id.clone())
                    .or_default()
                    .push_back(Stored {
                        message_id: uuid::Uuid::new_v4().to_string(),
                        sequence,
                        group_id: message.group_id.clone(),
                        deduplication_id: message.deduplication_id.clone(),
                        body: message.body.clone(),
                        sent_at_ms: epoch_ms(),
                        receive_count: 0,
                        first_receive_ms: None,
                        in_flight: None,
                    });
            }
        }
        self.wake(queue);
        Ok(())
    }

    async fn receive(
        &self,
        queue: QueueName,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<Delivery>, QueueError> {
        let max = max.clamp(1, super::MAX_BATCH);
        let deadline = Instant::now() + wait;
        let notify = self.notifier(queue);
        loop {
            // Registered before looking, so a send between the look and the wait wakes us.
            let notified = notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let (batch, next_visible) = self.take(queue, max);
            if !batch.is_empty() {
                return Ok(batch);
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(batch);
            }
            let until = next_visible.map_or(deadline, |v| v.min(deadline));
            tokio::select! {
                _ = &mut notified => {}
                _ = tokio::time::sleep_until(until) => {}
            }
        }
    }

    async fn delete(&self, queue: QueueName, receipt_handles: &[String]) -> Result<(), QueueError> {
        {
            let mut state = self.lock();
            let queue_state = state.entry(queue).or_default();
            for handle in receipt_handles {
                let mut found = false;
                for messages in queue_state.groups.values_mut() {
                    if let Some(index) = messages.iter().position(|m| {
                        m.in_flight
                            .as_ref()
                            .is_some_and(|f| &f.receipt_handle == handle)
                    }) {
                        messages.remove(index);
                        found = true;
                        break;
                    }
                }
                if !found {
                    // Already deleted, or received again since (a newer handle): SQS
                    // also leaves the message for its newer receiver.
                    tracing::debug!(queue = %queue, "delete with a stale receipt handle ignored");
                }
            }
            queue_state
                .groups
                .retain(|_, messages| !messages.is_empty());
        }
        self.wake(queue);
        Ok(())
    }

    async fn depth(&self, queue: QueueName) -> Result<u64, QueueError> {
        let state = self.lock();
        Ok(state.get(&queue).map_or(0, |q| {
            q.groups
                .values()
                .map(|messages| messages.len() as u64)
                .sum()
        }))
    }

    async fn ping(&self) -> Result<(), QueueError> {
        Ok(())
    }
}
