//! The FIFO batch runtime every consumer uses: records are processed one after another in
//! the order of the batch, each inside its own tracing span. When a record fails, it and
//! every later record of the same message group are reported failed (the later ones
//! without being processed: order within a group is the point of FIFO), while the other
//! groups go on. Powertools calls this skip-group-on-error. A handler that panics fails
//! its record like any failure (it is delivered again); the batch, and the poller or
//! Lambda invocation running it, go on.

use std::collections::HashSet;
use std::future::Future;
use std::panic::AssertUnwindSafe;

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse};
use futures_util::FutureExt;
use tracing::Instrument;

use crate::queue::{Delivery, group_of, receive_count_of};
use crate::trace;

/// Processes `records` in order with `handle`, returning the failures to report.
///
/// `handle` returns `Err` with a reason when the record must be retried (or, after its
/// retries, dead-lettered). The reason is logged inside the record's span.
pub async fn process_fifo_batch<F, Fut, E>(
    records: Vec<Delivery>,
    mut handle: F,
) -> SqsBatchResponse
where
    F: FnMut(Delivery) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    let mut response = SqsBatchResponse::default();
    let mut failed_groups: HashSet<String> = HashSet::new();
    for record in records {
        let message_id = record.message_id.clone().unwrap_or_default();
        let group = group_of(&record).to_owned();
        // The trace of whoever sent the message, continued by the record's work.
        let trace = record
            .attributes
            .get(trace::SQS_TRACE_ATTRIBUTE)
            .and_then(|h| trace::TraceHeader::parse(h));
        let span = tracing::info_span!(
            "record",
            message_id = %message_id,
            group = %group,
            trace_id = trace.as_ref().map(|t| t.root()),
            receive_count = receive_count_of(&record),
            job_id = tracing::field::Empty,
            room_id = tracing::field::Empty,
        );
        if failed_groups.contains(&group) {
            trace::continued_sync(trace, move || {
                span.in_scope(|| tracing::info!("skipped: an earlier record of its group failed"));
            });
            response.batch_item_failures.push(failure(message_id));
            continue;
        }
        // Everything of the record, its span's end included, is logged in its trace.
        let failed = trace::continued(trace, async {
            // Moved in, so that it ends (and is logged) inside the trace.
            let span = span;
            let work = handle(record).instrument(span.clone());
            let reason = match AssertUnwindSafe(work).catch_unwind().await {
                Ok(Ok(())) => return false,
                Ok(Err(reason)) => reason.to_string(),
                Err(panic) => {
                    metrics::counter!("record_handler_panics").increment(1);
                    format!("the handler panicked: {}", panic_message(panic.as_ref()))
                }
            };
            span.in_scope(|| tracing::warn!(%reason, "record failed; it will be retried"));
            true
        })
        .await;
        if failed {
            failed_groups.insert(group);
            response.batch_item_failures.push(failure(message_id));
        }
    }
    response
}

/// What a panic said, when it said it with a string.
pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("a panic without a message")
}

fn failure(message_id: String) -> BatchItemFailure {
    let mut failure = BatchItemFailure::default();
    failure.item_identifier = message_id;
    failure
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::queue::attributes;

    fn record(id: &str, group: &str) -> Delivery {
        let mut delivery = Delivery::default();
        delivery.message_id = Some(id.into());
        delivery.body = Some(id.into());
        delivery.attributes = HashMap::from([(attributes::MESSAGE_GROUP_ID.into(), group.into())]);
        delivery
    }

    #[tokio::test]
    async fn a_failed_record_skips_the_rest_of_its_group_only() {
        let batch = vec![
            record("a1", "A"),
            record("b1", "B"),
            record("a2", "A"),
            record("b2", "B"),
        ];
        let mut processed = Vec::new();
        let response = process_fifo_batch(batch, |r| {
            let id = r.body.clone().unwrap();
            processed.push(id.clone());
            async move { if id == "a1" { Err("boom") } else { Ok(()) } }
        })
        .await;
        assert_eq!(processed, ["a1", "b1", "b2"], "a2 is never processed");
        let failed: Vec<_> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        assert_eq!(failed, ["a1", "a2"]);
    }

    #[tokio::test]
    async fn a_panicking_record_fails_like_an_error_and_the_batch_goes_on() {
        let batch = vec![record("a1", "A"), record("a2", "A"), record("b1", "B")];
        let response = process_fifo_batch(batch, |r| async move {
            if r.body.as_deref() == Some("a1") {
                panic!("handler bug");
            }
            Ok::<_, String>(())
        })
        .await;
        let failed: Vec<_> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        assert_eq!(failed, ["a1", "a2"], "b1 was processed");
    }

    #[tokio::test]
    async fn a_clean_batch_reports_nothing() {
        let response = process_fifo_batch(vec![record("x", "G"), record("y", "G")], |_| async {
            Ok::<_, String>(())
        })
        .await;
        assert!(response.batch_item_failures.is_empty());
    }
}
