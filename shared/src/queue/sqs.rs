//! SQS FIFO queues through `aws-sdk-sqs`.
//!
//! The SDK retries throttling and transient errors of each call itself (its standard
//! retry mode); on top of that, entries a batch call reports as failed by no fault of the
//! sender are sent again with backoff, a few times, before the send counts as failed.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{
    DeleteMessageBatchRequestEntry, MessageSystemAttributeName, QueueAttributeName,
    SendMessageBatchRequestEntry,
};

use super::{Delivery, MAX_BATCH, OutgoingMessage, QueueError, QueueName, Queues, SendError};
use crate::config::QueueConfig;

/// Attempts at the entries of one batch that SQS did not accept.
const SEND_ATTEMPTS: u32 = 4;

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
            message: aws_sdk_sqs::error::DisplayErrorContext(error).to_string(),
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
        let mut attempt = 0;
        loop {
            attempt += 1;
            let entries = pending
                .iter()
                .enumerate()
                .map(|(i, m)| {
                    SendMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .message_group_id(&m.group_id)
                        .message_deduplication_id(&m.deduplication_id)
                        .message_body(&m.body)
                        .build()
                        .expect("id and body are set")
                })
                .collect::<Vec<_>>();
            let result = self
                .client
                .send_message_batch()
                .queue_url(url)
                .set_entries(Some(entries))
                .send()
                .await;
            let failed: Vec<(usize, bool, String)> = match result {
                Ok(output) => output
                    .failed
                    .iter()
                    .map(|f| {
                        let index = f.id.parse::<usize>().unwrap_or(usize::MAX);
                        let reason = format!("{}: {}", f.code, f.message.as_deref().unwrap_or(""));
                        (index, f.sender_fault, reason)
                    })
                    .collect(),
                Err(e) if attempt < SEND_ATTEMPTS => {
                    tracing::warn!(queue = %queue, attempt, error = %aws_sdk_sqs::error::DisplayErrorContext(&e), "send failed; retrying");
                    tokio::time::sleep(backoff(attempt)).await;
                    continue;
                }
                Err(e) => {
                    let reason = aws_sdk_sqs::error::DisplayErrorContext(&e).to_string();
                    return Err((
                        pending.iter().map(|m| m.deduplication_id.clone()).collect(),
                        reason,
                    ));
                }
            };
            if failed.is_empty() {
                return Ok(());
            }
            let give_up = attempt >= SEND_ATTEMPTS || failed.iter().any(|(_, sender, _)| *sender);
            if give_up {
                let reason = failed[0].2.clone();
                let unsent = failed
                    .iter()
                    .filter_map(|(i, _, _)| pending.get(*i).map(|m| m.deduplication_id.clone()))
                    .collect();
                return Err((unsent, reason));
            }
            tracing::warn!(queue = %queue, attempt, failed = failed.len(), "some entries not accepted; retrying them");
            pending = failed
                .iter()
                .filter_map(|(i, _, _)| pending.get(*i).copied())
                .collect();
            tokio::time::sleep(backoff(attempt)).await;
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

/// Exponential backoff with full jitter: up to 100 ms, 200 ms, 400 ms, ...
fn backoff(attempt: u32) -> Duration {
    let cap_ms = 100u64 << attempt.min(6);
    Duration::from_millis(fastrand::u64(cap_ms / 2..=cap_ms))
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
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, handle)| {
                    DeleteMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(handle)
                        .build()
                        .expect("id and handle are set")
                })
                .collect::<Vec<_>>();
            let output = self
                .client
                .delete_message_batch()
                .queue_url(url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| Self::service_error(queue, e))?;
            for failed in output.failed {
                // An undeleted message comes back after its visibility timeout; the
                // consumer then finds its item done and acknowledges it without work.
                tracing::warn!(queue = %queue, code = %failed.code, message = ?failed.message, "delete not accepted");
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
