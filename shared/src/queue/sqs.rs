//! SQS FIFO queues through `aws-sdk-sqs`.
//!
//! The SDK retries throttling and transient errors of each call itself (its standard
//! retry mode); on top of that, entries a batch call reports as failed by no fault of the
//! sender are sent again with backoff, a few times, before the send counts as failed.
//! Sends and deletes are both batch calls ([`BatchCall`]): one piece of code numbers the
//! entries and reads back the ones SQS did not accept.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::error::DisplayErrorContext;
use aws_sdk_sqs::types::{
    BatchResultErrorEntry, DeleteMessageBatchRequestEntry, MessageSystemAttributeName,
    MessageSystemAttributeNameForSends, MessageSystemAttributeValue, QueueAttributeName,
    SendMessageBatchRequestEntry,
};

use super::{
    Delivery, MAX_BATCH, OutgoingMessage, QueueConfig, QueueError, QueueName, Queues, SendError,
};
use crate::retry::Backoff;
use tracing::Instrument;

/// How the entries of one batch that SQS did not accept are sent again: 4 attempts in
/// all, pausing 100-200 ms, then 200-400 ms, ...
const SEND_BACKOFF: Backoff =
    Backoff::new(Duration::from_millis(200), Duration::from_millis(6400)).with_max_attempts(4);

/// cwsync's queues on SQS: a client and the URL of each queue.
#[derive(Clone)]
pub struct SqsQueues {
    client: Client,
    urls: HashMap<QueueName, String>,
    region: Option<String>,
}

impl SqsQueues {
    pub fn new(client: Client, urls: HashMap<QueueName, String>) -> Self {
        let region = client.config().region().map(|r| r.to_string());
        Self {
            client,
            urls,
            region,
        }
    }

    /// The queues of `config` with a client from the environment's AWS settings
    /// (region, credentials, and `AWS_ENDPOINT_URL_SQS`/`AWS_ENDPOINT_URL` for an
    /// SQS-compatible server). Each dead-letter queue's URL is its work queue's with
    /// `-dlq` before `.fifo`, as the template names them.
    pub async fn from_config(config: &QueueConfig) -> Self {
        let aws = aws_config::load_from_env().await;
        let client = Client::new(&aws);
        let mut urls = HashMap::new();
        for (queue, url) in &config.urls {
            urls.insert(*queue, url.clone());
            if let Some(base) = url.strip_suffix(".fifo") {
                urls.insert(queue.dead_letter(), format!("{base}-dlq.fifo"));
            }
        }
        Self::new(client, urls)
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn url(&self, queue: QueueName) -> Result<&str, QueueError> {
        self.urls
            .get(&queue)
            .map(String::as_str)
            .ok_or(QueueError::NotConfigured(queue))
    }

    fn service_error(queue: QueueName, error: impl std::error::Error) -> QueueError {
        QueueError::Service {
            queue,
            message: DisplayErrorContext(error).to_string(),
        }
    }

    /// Sends one batch; on failure, the deduplication ids not accepted and why.
    async fn send_chunk(
        &self,
        queue: QueueName,
        url: &str,
        chunk: &[OutgoingMessage],
    ) -> Result<(), (Vec<String>, String)> {
        let mut pending: Vec<&OutgoingMessage> = chunk.iter().collect();
        let mut retries = SEND_BACKOFF.start();
        loop {
            let attempt = retries.attempts();
            let rejected = match batch::<SendBatch>(&self.client, url, pending.iter().copied())
                .await
            {
                Ok(rejected) => rejected,
                Err(reason) => match retries.next_delay() {
                    Some(pause) => {
                        tracing::warn!(queue = %queue, attempt, error = %reason, "send failed; retrying");
                        tokio::time::sleep(pause).await;
                        continue;
                    }
                    None => {
                        let unsent = pending.iter().map(|m| m.deduplication_id.clone());
                        return Err((unsent.collect(), reason));
                    }
                },
            };
            if rejected.is_empty() {
                return Ok(());
            }
            let pause = if rejected.iter().any(|r| r.sender_fault) {
                None
            } else {
                retries.next_delay()
            };
            let not_accepted = rejected
                .iter()
                .filter_map(|r| pending.get(r.index).copied());
            let Some(pause) = pause else {
                let unsent = not_accepted.map(|m| m.deduplication_id.clone()).collect();
                return Err((unsent, rejected[0].reason.clone()));
            };
            tracing::warn!(queue = %queue, attempt, failed = rejected.len(), "some entries not accepted; retrying them");
            pending = not_accepted.collect();
            tokio::time::sleep(pause).await;
        }
    }

    fn to_delivery(
        &self,
        queue: QueueName,
        url: &str,
        message: aws_sdk_sqs::types::Message,
    ) -> Delivery {
        let mut delivery = Delivery::default();
        delivery.message_id = message.message_id;
        delivery.receipt_handle = message.receipt_handle;
        delivery.body = message.body;
        delivery.md5_of_body = message.md5_of_body;
        delivery.attributes = message
            .attributes
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k.as_str().to_owned(), v))
            .collect();
        delivery.event_source = Some("aws:sqs".into());
        delivery.aws_region = self.region.clone();
        // The URL ends in /<account>/<name>; the ARN is what Lambda would name.
        let mut parts = url.rsplit('/');
        let fallback = format!("{queue}.fifo");
        let name = parts.next().unwrap_or(&fallback);
        let account = parts.next().unwrap_or("000000000000");
        delivery.event_source_arn = Some(format!(
            "arn:aws:sqs:{}:{account}:{name}",
            self.region.as_deref().unwrap_or("us-east-1")
        ));
        delivery
    }
}

/// A batch call of SQS: the entries of its request are numbered by their place in the
/// batch, and SQS names each entry it did not accept by that number.
trait BatchCall {
    /// The SQS action (the name of the call's span).
    const ACTION: &'static str;
    /// What one entry is made of.
    type Item: ?Sized + Sync;
    type Entry: Send;

    /// The request entry for `item`, with `id`.
    fn entry(id: String, item: &Self::Item) -> Self::Entry;

    /// Makes the call.
    fn call(
        client: &Client,
        url: &str,
        entries: Vec<Self::Entry>,
    ) -> impl Future<Output = BatchAnswer> + Send;
}

/// What a batch call answers: the entries SQS did not accept, or the SDK's error.
type BatchAnswer =
    Result<Vec<BatchResultErrorEntry>, Box<dyn std::error::Error + Send + Sync + 'static>>;

/// `SendMessageBatch` of outgoing messages.
struct SendBatch;

impl BatchCall for SendBatch {
    const ACTION: &'static str = "SendMessageBatch";
    type Item = OutgoingMessage;
    type Entry = SendMessageBatchRequestEntry;

    fn entry(id: String, message: &OutgoingMessage) -> Self::Entry {
        let entry = SendMessageBatchRequestEntry::builder()
            .id(id)
            .message_group_id(&message.group_id)
            .message_deduplication_id(&message.deduplication_id)
            .message_body(&message.body);
        // The sender's trace travels with the message; the consumer continues it.
        let entry = match crate::trace::current() {
            Some(trace) => entry.message_system_attributes(
                MessageSystemAttributeNameForSends::AwsTraceHeader,
                MessageSystemAttributeValue::builder()
                    .data_type("String")
                    .string_value(trace.as_str())
                    .build()
                    .expect("the data type is set"),
            ),
            None => entry,
        };
        entry.build().expect("id and body are set")
    }

    async fn call(client: &Client, url: &str, entries: Vec<Self::Entry>) -> BatchAnswer {
        let request = client.send_message_batch().queue_url(url);
        Ok(request.set_entries(Some(entries)).send().await?.failed)
    }
}

/// `DeleteMessageBatch` of receipt handles.
struct DeleteBatch;

impl BatchCall for DeleteBatch {
    const ACTION: &'static str = "DeleteMessageBatch";
    type Item = str;
    type Entry = DeleteMessageBatchRequestEntry;

    fn entry(id: String, receipt_handle: &str) -> Self::Entry {
        let entry = DeleteMessageBatchRequestEntry::builder().id(id);
        let entry = entry.receipt_handle(receipt_handle).build();
        entry.expect("id and handle are set")
    }

    async fn call(client: &Client, url: &str, entries: Vec<Self::Entry>) -> BatchAnswer {
        let request = client.delete_message_batch().queue_url(url);
        Ok(request.set_entries(Some(entries)).send().await?.failed)
    }
}

/// An entry of a batch call that SQS did not accept.
struct Rejected {
    /// Its place among the call's items.
    index: usize,
    /// Whether SQS blames the request (retrying it the same would fail the same).
    sender_fault: bool,
    reason: String,
}

/// One batch call over `items` (at most [`MAX_BATCH`]): the entries SQS did not accept, or
/// why the call failed as a whole.
async fn batch<'a, C: BatchCall>(
    client: &Client,
    url: &str,
    items: impl Iterator<Item = &'a C::Item>,
) -> Result<Vec<Rejected>, String>
where
    C::Item: 'a,
{
    let entries: Vec<C::Entry> = items
        .enumerate()
        .map(|(i, item)| C::entry(i.to_string(), item))
        .collect();
    // One span per call (logged when it closes, with its duration and the trace id).
    let span = tracing::info_span!(
        "sqs",
        action = C::ACTION,
        queue = url.rsplit('/').next().unwrap_or(url),
        entries = entries.len(),
        failed = tracing::field::Empty,
    );
    let failed = C::call(client, url, entries)
        .instrument(span.clone())
        .await
        .map_err(|e| {
            span.record("failed", true);
            DisplayErrorContext(&*e).to_string()
        })?;
    Ok(failed
        .into_iter()
        .map(|f| Rejected {
            index: f.id.parse().unwrap_or(usize::MAX),
            sender_fault: f.sender_fault,
            reason: format!("{}: {}", f.code, f.message.as_deref().unwrap_or("")),
        })
        .collect())
}

#[async_trait]
impl Queues for SqsQueues {
    async fn send(&self, queue: QueueName, messages: &[OutgoingMessage]) -> Result<(), SendError> {
        let all_unsent = |from: usize, reason: String| SendError {
            queue,
            unsent: messages[from..]
                .iter()
                .map(|m| m.deduplication_id.clone())
                .collect(),
            reason,
        };
        let url = self.url(queue).map_err(|e| all_unsent(0, e.to_string()))?;
        for (index, chunk) in messages.chunks(MAX_BATCH).enumerate() {
            if let Err((mut unsent, reason)) = self.send_chunk(queue, url, chunk).await {
                // Later batches are not tried: what failed this one would fail them too,
                // and the caller retries or gives up on all of them together.
                let next = (index + 1) * MAX_BATCH;
                if next < messages.len() {
                    unsent.extend(all_unsent(next, String::new()).unsent);
                }
                return Err(SendError {
                    queue,
                    unsent,
                    reason,
                });
            }
        }
        Ok(())
    }

    async fn receive(
        &self,
        queue: QueueName,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<Delivery>, QueueError> {
        let url = self.url(queue)?;
        let output = self
            .client
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(max.clamp(1, MAX_BATCH) as i32)
            .wait_time_seconds(wait.as_secs().min(20) as i32)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await
            .map_err(|e| Self::service_error(queue, e))?;
        Ok(output
            .messages
            .unwrap_or_default()
            .into_iter()
            .map(|m| self.to_delivery(queue, url, m))
            .collect())
    }

    async fn delete(&self, queue: QueueName, receipt_handles: &[String]) -> Result<(), QueueError> {
        let url = self.url(queue)?;
        for chunk in receipt_handles.chunks(MAX_BATCH) {
            let rejected =
                batch::<DeleteBatch>(&self.client, url, chunk.iter().map(String::as_str))
                    .await
                    .map_err(|message| QueueError::Service { queue, message })?;
            for entry in rejected {
                // An undeleted message comes back after its visibility timeout; the
                // consumer then finds its item done and acknowledges it without work.
                tracing::warn!(queue = %queue, reason = %entry.reason, "delete not accepted");
            }
        }
        Ok(())
    }

    async fn depth(&self, queue: QueueName) -> Result<u64, QueueError> {
        let url = self.url(queue)?;
        let output = self
            .client
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .map_err(|e| Self::service_error(queue, e))?;
        Ok(output
            .attributes
            .unwrap_or_default()
            .values()
            .filter_map(|v| v.parse::<u64>().ok())
            .sum())
    }

    async fn ping(&self) -> Result<(), QueueError> {
        for (queue, url) in self.urls.iter().filter(|(q, _)| !q.is_dead_letter()) {
            let queue = *queue;
            {
                self.client
                    .get_queue_attributes()
                    .queue_url(url)
                    .attribute_names(QueueAttributeName::QueueArn)
                    .send()
                    .await
                    .map_err(|e| Self::service_error(queue, e))?;
            }
        }
        Ok(())
    }
}

/// [`SqsQueues`] built when first used rather than at start: the SQS client's set-up
/// (the AWS configuration, a TLS client with the system's trust store) is most of a
/// cold start, and many invocations never touch a queue (the API's reads, the
/// scheduler's retention task). Behaves as `SqsQueues::from_config(&config)` would.
pub struct LazySqsQueues {
    config: QueueConfig,
    queues: tokio::sync::OnceCell<SqsQueues>,
}

impl LazySqsQueues {
    pub fn new(config: QueueConfig) -> Self {
        Self {
            config,
            queues: tokio::sync::OnceCell::new(),
        }
    }

    async fn queues(&self) -> &SqsQueues {
        self.queues
            .get_or_init(|| SqsQueues::from_config(&self.config))
            .await
    }
}

#[async_trait]
impl Queues for LazySqsQueues {
    async fn send(&self, queue: QueueName, messages: &[OutgoingMessage]) -> Result<(), SendError> {
        self.queues().await.send(queue, messages).await
    }

    async fn receive(
        &self,
        queue: QueueName,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<Delivery>, QueueError> {
        self.queues().await.receive(queue, max, wait).await
    }

    async fn delete(&self, queue: QueueName, receipt_handles: &[String]) -> Result<(), QueueError> {
        self.queues().await.delete(queue, receipt_handles).await
    }

    async fn depth(&self, queue: QueueName) -> Result<u64, QueueError> {
        self.queues().await.depth(queue).await
    }

    async fn ping(&self) -> Result<(), QueueError> {
        self.queues().await.ping().await
    }
}
