//! Retention: finished jobs (and, by cascade, their items) older than a number of days
//! are deleted. Open jobs are never touched, whatever their age (the sweeper ends them).

use std::time::Duration;

use sqlx::PgPool;

/// Rows deleted per statement, so one run never holds long locks.
const CHUNK: i64 = 1000;

/// Deletes jobs that finished more than `older_than` ago; returns how many.
pub async fn delete_finished_jobs(pool: &PgPool, older_than: Duration) -> Result<u64, sqlx::Error> {
    let secs = older_than.as_secs_f64();
    let mut deleted = 0;
    loop {
        let done = sqlx::query!(
            r#"DELETE FROM jobs WHERE id IN (
                   SELECT id FROM jobs
                    WHERE status IN ('completed', 'failed', 'canceled')
                      AND finished_at < now() - make_interval(secs => $1)
                    LIMIT $2)"#,
            secs,
            CHUNK,
        )
        .execute(pool)
        .await?
        .rows_affected();
        deleted += done;
        if done < CHUNK as u64 {
            break;
        }
    }
    if deleted > 0 {
        tracing::info!(deleted, "retention deleted finished jobs");
    }
    Ok(deleted)
}

/// How many jobs [`delete_finished_jobs`] would delete now (retention's dry run): the
/// same condition, counted.
pub async fn count_finished_jobs(pool: &PgPool, older_than: Duration) -> Result<u64, sqlx::Error> {
    let count = sqlx::query_scalar!(
        r#"SELECT count(*) AS "count!" FROM jobs
            WHERE status IN ('completed', 'failed', 'canceled')
              AND finished_at < now() - make_interval(secs => $1)"#,
        older_than.as_secs_f64(),
    )
    .fetch_one(pool)
    .await?;
    Ok(u64::try_from(count).unwrap_or(0))
}
