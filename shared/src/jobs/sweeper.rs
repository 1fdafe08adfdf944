//! The sweeper, run on a schedule, repairs what a crash or a lost message can leave:
//!
//! 1. items written but never sent (`pending` past a grace period) are sent;
//! 2. open jobs whose items have all ended are finished;
//! 3. open jobs without progress past a deadline fail, with their open items, and say why.
//!
//! [`recover_unfinished`] is the local runner's variant of step 1 at start: its embedded
//! queue forgets everything when the process ends, so every unfinished item is sent again.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use super::start::outgoing;
use super::store;
use super::{ErrorInfo, JobType, Registry};
use crate::queue::Queues;

/// The sweeper's knobs.
#[derive(Debug, Clone)]
pub struct SweepSettings {
    /// An item still `pending` this long after it was written was never sent.
    pub resend_after: Duration,
    /// An open job with no progress for this long has failed.
    pub stale_after: Duration,
    /// Most items re-sent per sweep.
    pub batch_limit: i64,
}

impl Default for SweepSettings {
    fn default() -> Self {
        Self {
            resend_after: Duration::from_secs(120),
            stale_after: Duration::from_secs(60 * 60),
            batch_limit: 1000,
        }
    }
}

/// What a sweep did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SweepReport {
    pub resent: usize,
    pub finished: usize,
    pub failed_stale: usize,
}

struct Unsent {
    job_type: JobType,
    job_id: Uuid,
    item_key: String,
    message: serde_json::Value,
    message_group: String,
}

/// Runs the three repairs once.
pub async fn sweep(
    pool: &PgPool,
    queues: &dyn Queues,
    registry: &Registry,
    settings: &SweepSettings,
) -> Result<SweepReport, sqlx::Error> {
    let mut report = SweepReport::default();
    let resend_after = settings.resend_after.as_secs_f64();
    let unsent = sqlx::query_as!(
        Unsent,
        r#"SELECT j.type AS "job_type: JobType", i.job_id, i.item_key, i.message, i.message_group
             FROM job_items i JOIN jobs j ON j.id = i.job_id
            WHERE i.status = 'pending' AND j.status IN ('queued', 'processing')
              AND i.created_at < now() - make_interval(secs => $1)
            ORDER BY i.created_at
            LIMIT $2"#,
        resend_after,
        settings.batch_limit,
    )
    .fetch_all(pool)
    .await?;
    report.resent = resend(pool, queues, registry, unsent).await?;

    let finishable = sqlx::query_scalar!(
        r#"SELECT id FROM jobs WHERE status IN ('queued', 'processing') AND open_items = 0"#
    )
    .fetch_all(pool)
    .await?;
    for id in finishable {
        if store::finalize(pool, registry, id).await?.is_some() {
            report.finished += 1;
        }
    }

    let stale_after = settings.stale_after.as_secs_f64();
    let stale = sqlx::query_scalar!(
        r#"SELECT id FROM jobs
            WHERE status IN ('queued', 'processing') AND updated_at < now() - make_interval(secs => $1)"#,
        stale_after,
    )
    .fetch_all(pool)
    .await?;
    for id in stale {
        let error = ErrorInfo::new(
            "Stale",
            format!(
                "no progress for {} minutes: the job's remaining items were given up",
                settings.stale_after.as_secs() / 60
            ),
        );
        if store::fail_job(pool, registry, id, &error).await? {
            metrics::counter!("jobs_failed_stale").increment(1);
            report.failed_stale += 1;
        }
    }
    if report != SweepReport::default() {
        tracing::info!(?report, "sweep repaired jobs");
    }
    Ok(report)
}

/// What [`sweep`] would do now, changing nothing (the scheduled task's dry run): the
/// items it would send (at most its batch), the open jobs whose items have all ended,
/// and the open jobs without progress it would fail.
pub async fn sweep_preview(
    pool: &PgPool,
    settings: &SweepSettings,
) -> Result<SweepReport, sqlx::Error> {
    let counts = sqlx::query!(
        r#"SELECT
             (SELECT count(*) FROM (
                 SELECT 1 FROM job_items i JOIN jobs j ON j.id = i.job_id
                  WHERE i.status = 'pending' AND j.status IN ('queued', 'processing')
                    AND i.created_at < now() - make_interval(secs => $1)
                  LIMIT $2) unsent) AS "resend!",
             (SELECT count(*) FROM jobs
               WHERE status IN ('queued', 'processing') AND open_items = 0
                 AND open_steps = 0) AS "finish!",
             (SELECT count(*) FROM jobs
               WHERE status IN ('queued', 'processing')
                 AND updated_at < now() - make_interval(secs => $3)) AS "stale!""#,
        settings.resend_after.as_secs_f64(),
        settings.batch_limit,
        settings.stale_after.as_secs_f64(),
    )
    .fetch_one(pool)
    .await?;
    let count = |n: i64| usize::try_from(n).unwrap_or(0);
    Ok(SweepReport {
        resent: count(counts.resend),
        finished: count(counts.finish),
        failed_stale: count(counts.stale),
    })
}

/// Sends every item of an open job that has not ended, whatever its state: for a queue
/// that lost its messages (the embedded queue across a restart). Items that were in fact
/// delivered meanwhile are harmless: their consumer finds them ended, or runs them again,
/// which handlers make idempotent.
pub async fn recover_unfinished(
    pool: &PgPool,
    queues: &dyn Queues,
    registry: &Registry,
) -> Result<usize, sqlx::Error> {
    let unfinished = sqlx::query_as!(
        Unsent,
        r#"SELECT j.type AS "job_type: JobType", i.job_id, i.item_key, i.message, i.message_group
             FROM job_items i JOIN jobs j ON j.id = i.job_id
            WHERE i.status IN ('pending', 'queued', 'processing') AND j.status IN ('queued', 'processing')
            ORDER BY i.created_at"#,
    )
    .fetch_all(pool)
    .await?;
    resend(pool, queues, registry, unfinished).await
}

/// Sends items by their stored messages, grouped per queue, and marks the pending ones
/// sent. What cannot be sent stays as it is for the next sweep, and so do the items of a
/// type this registry does not hold (another application's, or a newer version's).
async fn resend(
    pool: &PgPool,
    queues: &dyn Queues,
    registry: &Registry,
    items: Vec<Unsent>,
) -> Result<usize, sqlx::Error> {
    let mut by_type: BTreeMap<(JobType, Uuid), Vec<Unsent>> = BTreeMap::new();
    for item in items {
        by_type
            .entry((item.job_type, item.job_id))
            .or_default()
            .push(item);
    }
    let mut sent = 0;
    for ((job_type, job_id), items) in by_type {
        let Some(queue) = registry.get(job_type).map(|t| t.queue()) else {
            tracing::warn!(job_id = %job_id, %job_type, "no registered job type has this job's queue; left as it is");
            continue;
        };
        let messages: Vec<_> = items
            .iter()
            .map(|i| outgoing(i.job_id, &i.item_key, &i.message_group, &i.message))
            .collect();
        let unsent: Vec<String> = match queues.send(queue, &messages).await {
            Ok(()) => Vec::new(),
            Err(e) => {
                tracing::warn!(job_id = %job_id, error = %e, "could not re-send items; the next sweep tries again");
                e.unsent
                    .iter()
                    .filter_map(|d| d.split_once(':').map(|(_, key)| key.to_owned()))
                    .collect()
            }
        };
        let sent_keys: Vec<String> = items
            .iter()
            .map(|i| i.item_key.clone())
            .filter(|key| !unsent.contains(key))
            .collect();
        store::mark_sent(pool, job_id, &sent_keys).await?;
        sent += sent_keys.len();
    }
    Ok(sent)
}
