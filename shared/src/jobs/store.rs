//! The SQL of jobs and items. Every state change is a single statement whose WHERE clause
//! names the states it may leave, so it is atomic on its own and races resolve in the
//! database. Statements that touch a job and one of its items lock the job row first.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgConnection, PgExecutor, PgPool};
use uuid::Uuid;

use super::{ErrorInfo, ItemRecord, ItemStatus, Job, JobStatus, JobType, Registry};

/// Something written in the transaction of a job change, so that the change and it stand
/// or fall together (the API's audit record of a start or a cancel).
#[async_trait]
pub trait JobRecord: Send + Sync {
    /// Writes it for `job` as the change left it.
    async fn write(&self, conn: &mut PgConnection, job: &Job) -> Result<(), sqlx::Error>;
}

/// A job and its items as they are first written.
pub(crate) struct NewJob<'a> {
    pub id: Uuid,
    pub job_type: JobType,
    pub payload: &'a serde_json::Value,
    pub user_id: Option<&'a str>,
    pub active_key: &'a str,
    pub items: Vec<NewItem>,
}

pub(crate) struct NewItem {
    pub key: String,
    pub message: serde_json::Value,
    pub group: String,
    /// A step of the job's own (see [`super::PlannedItem::step`]).
    pub step: bool,
}

/// Writes a job, its items and `record` in one transaction. `None` when a job of the same
/// type and active key is already queued or processing (nothing is written then).
pub(crate) async fn insert(
    pool: &PgPool,
    new: NewJob<'_>,
    record: Option<&dyn JobRecord>,
) -> Result<Option<Job>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let steps = new.items.iter().filter(|i| i.step).count() as i32;
    let count = new.items.len() as i32 - steps;
    let inserted = sqlx::query_scalar!(
        r#"INSERT INTO jobs (id, type, payload, user_id, active_key, total_items, open_items,
                             open_steps)
           VALUES ($1, $2, $3, $4, $5, $6, $6, $7)
           ON CONFLICT (type, active_key)
              WHERE status IN ('queued', 'processing') AND active_key IS NOT NULL
           DO NOTHING
           RETURNING id"#,
        new.id,
        new.job_type as JobType,
        new.payload,
        new.user_id,
        new.active_key,
        count,
        steps,
    )
    .fetch_optional(&mut *tx)
    .await?;
    let Some(id) = inserted else {
        return Ok(None);
    };
    insert_items(&mut tx, id, &new.items).await?;
    let job = get(&mut *tx, id).await?.ok_or(sqlx::Error::RowNotFound)?;
    if let Some(record) = record {
        record.write(&mut tx, &job).await?;
    }
    tx.commit().await?;
    Ok(Some(job))
}

/// Writes items of job `job_id` (its row locked or new in this transaction); items whose
/// key the job already has are left as they are. Returns the keys written.
async fn insert_items(
    conn: &mut PgConnection,
    job_id: Uuid,
    items: &[NewItem],
) -> Result<Vec<String>, sqlx::Error> {
    let keys: Vec<&str> = items.iter().map(|i| i.key.as_str()).collect();
    let messages: Vec<&serde_json::Value> = items.iter().map(|i| &i.message).collect();
    let groups: Vec<&str> = items.iter().map(|i| i.group.as_str()).collect();
    let steps: Vec<bool> = items.iter().map(|i| i.step).collect();
    sqlx::query_scalar!(
        r#"INSERT INTO job_items (job_id, item_key, message, message_group, step)
           SELECT $1, key, message, message_group, step
             FROM UNNEST($2::text[], $3::jsonb[], $4::text[], $5::bool[])
                    AS t(key, message, message_group, step)
           ON CONFLICT (job_id, item_key) DO NOTHING
           RETURNING item_key"#,
        job_id,
        &keys as &[&str],
        &messages as &[&serde_json::Value],
        &groups as &[&str],
        &steps,
    )
    .fetch_all(&mut *conn)
    .await
}

/// What [`grow`] did.
pub(crate) struct Grown {
    /// The items written (an item the job already had is not written again).
    pub added: Vec<String>,
    /// How the step's end went.
    pub ended: Ended,
}

/// Adds `items` to open job `job_id` and ends its step `step_key` completed with
/// `result`, in one transaction: the job's counts grow before the step ends, so the job
/// cannot finish between the two. A job no longer open gets no items (the step ends as
/// any item of a closed job does). Safe to repeat: items already there are not counted
/// again, and a step that already ended stays as it is.
pub(crate) async fn grow(
    pool: &PgPool,
    job_id: Uuid,
    step_key: &str,
    items: &[NewItem],
    result: &serde_json::Value,
) -> Result<Grown, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let open = sqlx::query_scalar!(
        r#"SELECT id FROM jobs WHERE id = $1 AND status IN ('queued', 'processing') FOR UPDATE"#,
        job_id
    )
    .fetch_optional(&mut *tx)
    .await?;
    let mut added = Vec::new();
    if open.is_some() {
        added = insert_items(&mut tx, job_id, items).await?;
        let steps = items
            .iter()
            .filter(|i| i.step && added.contains(&i.key))
            .count() as i32;
        let work = added.len() as i32 - steps;
        sqlx::query!(
            r#"UPDATE jobs
                  SET total_items = total_items + $2, open_items = open_items + $2,
                      open_steps = open_steps + $3, updated_at = now()
                WHERE id = $1"#,
            job_id,
            work,
            steps,
        )
        .execute(&mut *tx)
        .await?;
    }
    let ended = end_items(
        &mut *tx,
        job_id,
        &[step_key.to_owned()],
        ItemStatus::Completed,
        0,
        Some(result),
        None,
    )
    .await?;
    tx.commit().await?;
    Ok(Grown { added, ended })
}

/// The queued or processing job of a type with an active key.
pub(crate) async fn find_active(
    pool: &PgPool,
    job_type: JobType,
    active_key: &str,
) -> Result<Option<Job>, sqlx::Error> {
    let selection = Selection {
        job_type: Some(job_type),
        active_key: Some(active_key),
        limit: 1,
        ..Selection::default()
    };
    Ok(select(pool, &selection).await?.pop())
}

/// Marks pending items of a job as handed to the queue.
pub(crate) async fn mark_sent(
    pool: &PgPool,
    job_id: Uuid,
    sent: &[String],
) -> Result<u64, sqlx::Error> {
    if sent.is_empty() {
        return Ok(0);
    }
    let done = sqlx::query!(
        r#"UPDATE job_items SET status = 'queued', sent_at = now(), updated_at = now()
            WHERE job_id = $1 AND status = 'pending' AND item_key = ANY($2)"#,
        job_id,
        sent,
    )
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}

/// A job by id.
pub async fn get(executor: impl PgExecutor<'_>, id: Uuid) -> Result<Option<Job>, sqlx::Error> {
    let selection = Selection {
        id: Some(id),
        limit: 1,
        ..Selection::default()
    };
    Ok(select(executor, &selection).await?.pop())
}

/// Which jobs to list, newest first.
#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    pub job_type: Option<JobType>,
    pub status: Option<JobStatus>,
    /// Only the jobs this user started.
    pub user_id: Option<String>,
    /// Only the jobs nobody started (the schedule's).
    pub scheduled: bool,
    /// Only jobs older than this one (created earlier, or at the same time with a
    /// smaller id): the next page of a newest-first list.
    pub before: Option<(DateTime<Utc>, Uuid)>,
    pub limit: i64,
}

pub async fn list(pool: &PgPool, filter: &JobFilter) -> Result<Vec<Job>, sqlx::Error> {
    let selection = Selection {
        job_type: filter.job_type,
        status: filter.status,
        user_id: filter.user_id.as_deref(),
        scheduled: filter.scheduled,
        before: filter.before,
        limit: filter.limit,
        ..Selection::default()
    };
    select(pool, &selection).await
}

/// What [`select`] reads: every condition that is set holds.
#[derive(Default)]
struct Selection<'a> {
    id: Option<Uuid>,
    job_type: Option<JobType>,
    /// The open (queued or processing) job with this active key.
    active_key: Option<&'a str>,
    status: Option<JobStatus>,
    user_id: Option<&'a str>,
    scheduled: bool,
    before: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
}

/// Jobs, newest first: the one statement that reads jobs, so their columns are listed
/// once. Postgres plans each call for the conditions it sets (a lookup by id uses the
/// primary key).
async fn select(
    executor: impl PgExecutor<'_>,
    selection: &Selection<'_>,
) -> Result<Vec<Job>, sqlx::Error> {
    sqlx::query_as!(
        Job,
        r#"SELECT id, type AS "job_type: JobType", status AS "status: JobStatus", payload,
                  result, error AS "error: ErrorInfo", user_id, started_at, finished_at,
                  created_at, updated_at, active_key, total_items, open_items, open_steps
             FROM jobs
            WHERE ($1::uuid IS NULL OR id = $1)
              AND ($2::job_type IS NULL OR type = $2)
              AND ($3::text IS NULL OR (active_key = $3 AND status IN ('queued', 'processing')))
              AND ($4::job_status IS NULL OR status = $4)
              AND ($5::text IS NULL OR user_id = $5)
              AND (NOT $7 OR user_id IS NULL)
              AND ($8::timestamptz IS NULL OR (created_at, id) < ($8, $9::uuid))
            ORDER BY created_at DESC, id DESC
            LIMIT $6"#,
        selection.id,
        selection.job_type as Option<JobType>,
        selection.active_key,
        selection.status as Option<JobStatus>,
        selection.user_id,
        selection.limit,
        selection.scheduled,
        selection.before.map(|(at, _)| at),
        selection.before.map(|(_, id)| id),
    )
    .fetch_all(executor)
    .await
}

/// A job's items, in key order.
pub async fn items(
    executor: impl PgExecutor<'_>,
    job_id: Uuid,
) -> Result<Vec<ItemRecord>, sqlx::Error> {
    sqlx::query_as!(
        ItemRecord,
        r#"SELECT item_key, status AS "status: ItemStatus", fetched, result, error AS "error: ErrorInfo", attempts, message, step
             FROM job_items WHERE job_id = $1 ORDER BY item_key"#,
        job_id,
    )
    .fetch_all(executor)
    .await
}

/// How far a job has come, counted from its items (a step of the job's own, such as a
/// sync's room check, is not one of them).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Progress {
    pub total: i64,
    /// Items in a terminal state.
    pub finished: i64,
    pub completed: i64,
    pub unchanged: i64,
    pub failed: i64,
    pub canceled: i64,
    pub fetched: i64,
}

pub async fn progress(pool: &PgPool, job_id: Uuid) -> Result<Progress, sqlx::Error> {
    let row = sqlx::query!(
        r#"SELECT count(*) AS "total!",
                  count(*) FILTER (WHERE status IN ('completed', 'unchanged', 'failed', 'canceled')) AS "finished!",
                  count(*) FILTER (WHERE status = 'completed') AS "completed!",
                  count(*) FILTER (WHERE status = 'unchanged') AS "unchanged!",
                  count(*) FILTER (WHERE status = 'failed') AS "failed!",
                  count(*) FILTER (WHERE status = 'canceled') AS "canceled!",
                  coalesce(sum(fetched), 0)::bigint AS "fetched!"
             FROM job_items WHERE job_id = $1 AND NOT step"#,
        job_id,
    )
    .fetch_one(pool)
    .await?;
    Ok(Progress {
        total: row.total,
        finished: row.finished,
        completed: row.completed,
        unchanged: row.unchanged,
        failed: row.failed,
        canceled: row.canceled,
        fetched: row.fetched,
    })
}

/// What the start of an item's delivery found, with what the kind read in the same
/// statement (`read`, see [`super::JobKind::begin`]).
#[derive(Debug)]
pub enum Begin<R = ()> {
    /// Work on it: the job is now processing and so is the item.
    Run {
        job_type: JobType,
        payload: serde_json::Value,
        user_id: Option<String>,
        job_created_at: DateTime<Utc>,
        attempt: i32,
        read: R,
    },
    /// Acknowledge without work: the job is finished or canceled, or the item already ended.
    Done { why: &'static str },
    /// No such job (removed by retention) or no such item in it.
    Unknown { why: &'static str },
}

/// Starts an item's delivery: the job becomes processing and the item processing (another
/// attempt), both only from open states. An item of a job that ended is closed as
/// canceled.
pub(crate) async fn begin_item(
    executor: impl PgExecutor<'_>,
    job_id: Uuid,
    item_key: &str,
) -> Result<Begin, sqlx::Error> {
    let row = sqlx::query!(
        r#"WITH b AS (SELECT * FROM cwsync_begin_item($1, $2))
           SELECT j.type AS "job_type: JobType", j.payload, j.user_id, j.created_at,
                  b.job_open AS "job_open!", b.attempts AS "attempts?",
                  b.item_exists AS "item_exists!"
             FROM b, jobs j WHERE j.id = $1"#,
        job_id,
        item_key,
    )
    .fetch_optional(executor)
    .await?;
    Ok(match row {
        None => Begin::Unknown { why: "no such job" },
        Some(row) => Begin::from_row(
            row.item_exists,
            row.job_open,
            row.attempts,
            (row.job_type, row.payload, row.user_id, row.created_at),
            (),
        ),
    })
}

impl<R> Begin<R> {
    /// The same start with the kind's reading made by `f`.
    pub fn with_read<S>(self, f: impl FnOnce(R) -> S) -> Begin<S> {
        match self {
            Begin::Run {
                job_type,
                payload,
                user_id,
                job_created_at,
                attempt,
                read,
            } => Begin::Run {
                job_type,
                payload,
                user_id,
                job_created_at,
                attempt,
                read: f(read),
            },
            Begin::Done { why } => Begin::Done { why },
            Begin::Unknown { why } => Begin::Unknown { why },
        }
    }

    /// What a start found, from what its statement read (the job's type, payload, user
    /// and creation come with `job`; the kind's own reading with `read`): one reading for
    /// every statement that starts items.
    pub(crate) fn from_row(
        item_exists: bool,
        job_open: bool,
        attempts: Option<i32>,
        job: (JobType, serde_json::Value, Option<String>, DateTime<Utc>),
        read: R,
    ) -> Begin<R> {
        if !item_exists {
            return Begin::Unknown {
                why: "the job has no such item",
            };
        }
        if !job_open {
            return Begin::Done {
                why: "the job is already finished or canceled",
            };
        }
        let (job_type, payload, user_id, job_created_at) = job;
        match attempts {
            Some(attempt) => Begin::Run {
                job_type,
                payload,
                user_id,
                job_created_at,
                attempt,
                read,
            },
            None => Begin::Done {
                why: "the item already ended",
            },
        }
    }
}

/// How an item end went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ended {
    /// How many items this call ended (0: they had already ended).
    pub(crate) ended: i64,
    /// The job's open items and steps afterwards, and its status, when anything ended.
    pub(crate) open_items: Option<i32>,
    pub(crate) open_steps: Option<i32>,
    pub(crate) job_status: Option<JobStatus>,
}

impl Ended {
    /// Whether this call must finish the job: it ended the job's last open item or step,
    /// or the job was canceled and its result must take this item in.
    pub(crate) fn job_needs_finishing(&self) -> bool {
        self.ended > 0
            && ((self.open_items == Some(0) && self.open_steps == Some(0))
                || self.job_status == Some(JobStatus::Canceled))
    }
}

/// Ends open items of a job in a terminal state (`cwsync_end_items`, the one statement
/// of that rule: see migrations/0080_job_steps.sql).
pub(crate) async fn end_items(
    executor: impl PgExecutor<'_>,
    job_id: Uuid,
    keys: &[String],
    status: ItemStatus,
    fetched: i32,
    result: Option<&serde_json::Value>,
    error: Option<&ErrorInfo>,
) -> Result<Ended, sqlx::Error> {
    debug_assert!(status.is_terminal());
    let row = sqlx::query!(
        r#"SELECT ended AS "ended!", open_items, open_steps, job_status AS "job_status: JobStatus"
             FROM cwsync_end_items($1, $2, $3, $4, $5, $6)"#,
        job_id,
        keys,
        status as ItemStatus,
        fetched,
        result,
        error as Option<&ErrorInfo>,
    )
    .fetch_one(executor)
    .await?;
    Ok(Ended {
        ended: row.ended,
        open_items: row.open_items,
        open_steps: row.open_steps,
        job_status: row.job_status,
    })
}

/// Keeps the last error of an item that will be retried, for the dead-letter consumer.
pub(crate) async fn record_retry_error(
    executor: impl PgExecutor<'_>,
    job_id: Uuid,
    item_key: &str,
    error: &ErrorInfo,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        r#"UPDATE job_items SET error = $3, updated_at = now()
            WHERE job_id = $1 AND item_key = $2 AND status = 'processing'"#,
        job_id,
        item_key,
        error as &ErrorInfo,
    )
    .execute(executor)
    .await?;
    Ok(())
}

/// The item of a job whose queue message is `message` (compared as JSON values).
pub(crate) async fn item_by_message(
    pool: &PgPool,
    job_id: Uuid,
    message: &serde_json::Value,
) -> Result<Option<ItemRecord>, sqlx::Error> {
    sqlx::query_as!(
        ItemRecord,
        r#"SELECT item_key, status AS "status: ItemStatus", fetched, result, error AS "error: ErrorInfo", attempts, message, step
             FROM job_items WHERE job_id = $1 AND message = $2"#,
        job_id,
        message,
    )
    .fetch_optional(pool)
    .await
}

pub(crate) async fn is_canceled(
    executor: impl PgExecutor<'_>,
    job_id: Uuid,
) -> Result<bool, sqlx::Error> {
    let status = sqlx::query_scalar!(
        r#"SELECT status AS "status: JobStatus" FROM jobs WHERE id = $1"#,
        job_id
    )
    .fetch_optional(executor)
    .await?;
    // A job that is gone has nobody waiting for it: stop as if canceled.
    Ok(status.is_none_or(|s| s == JobStatus::Canceled))
}

/// Finishes a job whose items and steps have all ended: `failed` when every work item
/// failed, or a job without work items when its steps failed (the error is the first
/// failed item's), else `completed`; its result derived from the items by its type
/// in `registry` (a type the registry does not hold keeps the result it has). For a
/// canceled job, brings the result up to date with its items. Safe to call any number
/// of times and from racing callers: only a job with no open items changes state, once.
pub async fn finalize(
    pool: &PgPool,
    registry: &Registry,
    job_id: Uuid,
) -> Result<Option<JobStatus>, sqlx::Error> {
    let mut conn = pool.acquire().await?;
    finalize_on(&mut conn, registry, job_id).await
}

/// [`finalize`] on one connection (or in a transaction).
pub(crate) async fn finalize_on(
    conn: &mut PgConnection,
    registry: &Registry,
    job_id: Uuid,
) -> Result<Option<JobStatus>, sqlx::Error> {
    let Some(job) = get(&mut *conn, job_id).await? else {
        return Ok(None);
    };
    let items = items(&mut *conn, job_id).await?;
    let result = summarize(registry, &job, &items);
    if job.status == JobStatus::Canceled {
        sqlx::query!(
            r#"UPDATE jobs
                  SET result = $2, updated_at = now(),
                      open_items = (SELECT count(*) FROM job_items
                                     WHERE job_id = $1 AND NOT step
                                       AND status IN ('pending', 'queued', 'processing'))::int,
                      open_steps = (SELECT count(*) FROM job_items
                                     WHERE job_id = $1 AND step
                                       AND status IN ('pending', 'queued', 'processing'))::int
                WHERE id = $1 AND status = 'canceled'"#,
            job_id,
            result,
        )
        .execute(&mut *conn)
        .await?;
        return Ok(Some(JobStatus::Canceled));
    }
    if job.status.is_terminal() || job.open_items != 0 || job.open_steps != 0 {
        return Ok(None);
    }
    // The job failed when all its work failed; a job without work items (its step found
    // nothing to do, or failed) by its steps.
    let work: Vec<&ItemRecord> = items.iter().filter(|i| !i.step).collect();
    let judged: Vec<&ItemRecord> = if work.is_empty() {
        items.iter().collect()
    } else {
        work
    };
    let failed: Vec<&ItemRecord> = judged
        .iter()
        .copied()
        .filter(|i| i.status == ItemStatus::Failed)
        .collect();
    let all_failed = !judged.is_empty() && failed.len() == judged.len();
    let (status, error) = if all_failed {
        let error = failed[0]
            .error
            .clone()
            .unwrap_or_else(|| ErrorInfo::new("ItemFailed", "every item failed"));
        (JobStatus::Failed, Some(error))
    } else {
        (JobStatus::Completed, None)
    };
    let finished = sqlx::query_scalar!(
        r#"UPDATE jobs
              SET status = $2, result = $3, error = $4, started_at = coalesce(started_at, now()),
                  finished_at = now(), updated_at = now()
            WHERE id = $1 AND status IN ('queued', 'processing') AND open_items = 0
              AND open_steps = 0
        RETURNING status AS "status: JobStatus""#,
        job_id,
        status as JobStatus,
        result,
        error as Option<ErrorInfo>,
    )
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(status) = finished {
        metrics::counter!("jobs_finished", "type" => job.job_type.as_str(), "status" => status.as_str())
            .increment(1);
        tracing::info!(job_id = %job_id, job_type = job.job_type.as_str(), status = status.as_str(), "job finished");
    }
    Ok(finished)
}

/// Fails an open job with `error`: its open items end failed with it, and its result is
/// derived from what the items did.
pub(crate) async fn fail_job(
    pool: &PgPool,
    registry: &Registry,
    job_id: Uuid,
    error: &ErrorInfo,
) -> Result<bool, sqlx::Error> {
    let open: Vec<String> = sqlx::query_scalar!(
        r#"SELECT item_key FROM job_items
            WHERE job_id = $1 AND status IN ('pending', 'queued', 'processing')"#,
        job_id
    )
    .fetch_all(pool)
    .await?;
    end_items(
        pool,
        job_id,
        &open,
        ItemStatus::Failed,
        0,
        None,
        Some(error),
    )
    .await?;
    let Some(job) = get(pool, job_id).await? else {
        return Ok(false);
    };
    let items = items(pool, job_id).await?;
    let result = summarize(registry, &job, &items);
    let failed = sqlx::query!(
        r#"UPDATE jobs
              SET status = 'failed', result = $2, error = $3, finished_at = now(), updated_at = now()
            WHERE id = $1 AND status IN ('queued', 'processing')"#,
        job_id,
        result,
        error as &ErrorInfo,
    )
    .execute(pool)
    .await?;
    let failed = failed.rows_affected() == 1;
    if failed {
        metrics::counter!("jobs_finished", "type" => job.job_type.as_str(), "status" => "failed")
            .increment(1);
        tracing::warn!(job_id = %job_id, job_type = job.job_type.as_str(), error = %error.message, "job failed");
    }
    Ok(failed)
}

/// The result of `job` derived from `items` by its type, or the one it has when the
/// registry does not hold its type.
fn summarize(registry: &Registry, job: &Job, items: &[ItemRecord]) -> Option<serde_json::Value> {
    match registry.summarize(job.job_type, items) {
        Some(result) => Some(result),
        None => {
            tracing::error!(job_id = %job.id, job_type = %job.job_type, "no registered job type derives this job's result");
            job.result.clone()
        }
    }
}

/// How a cancel request went.
#[derive(Debug, Clone, PartialEq)]
pub enum CancelOutcome {
    Canceled(Box<Job>),
    NotFound,
    /// The job is neither queued nor processing.
    NotCancelable(JobStatus),
}

/// Cancels a queued or processing job. Its items that have not started are canceled with
/// it; items in progress stop at their handler's next cancellation check.
pub async fn cancel(
    pool: &PgPool,
    registry: &Registry,
    job_id: Uuid,
) -> Result<CancelOutcome, sqlx::Error> {
    cancel_recorded(pool, registry, job_id, None).await
}

/// [`cancel`], writing `record` in the cancel's transaction.
pub async fn cancel_recorded(
    pool: &PgPool,
    registry: &Registry,
    job_id: Uuid,
    record: Option<&dyn JobRecord>,
) -> Result<CancelOutcome, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let canceled = sqlx::query!(
        r#"WITH job AS (
               UPDATE jobs SET status = 'canceled', finished_at = now(), updated_at = now()
                WHERE id = $1 AND status IN ('queued', 'processing')
            RETURNING id, type
           ), items AS (
               UPDATE job_items SET status = 'canceled', finished_at = now(), updated_at = now()
                WHERE job_id = (SELECT id FROM job) AND status IN ('pending', 'queued')
            RETURNING 1
           )
           SELECT (SELECT type FROM job) AS "job_type: JobType", (SELECT count(*) FROM items) AS "items!""#,
        job_id,
    )
    .fetch_one(&mut *tx)
    .await?;
    let Some(job_type) = canceled.job_type else {
        drop(tx);
        return Ok(match get(pool, job_id).await? {
            None => CancelOutcome::NotFound,
            Some(job) => CancelOutcome::NotCancelable(job.status),
        });
    };
    finalize_on(&mut tx, registry, job_id).await?;
    let job = get(&mut *tx, job_id)
        .await?
        .ok_or(sqlx::Error::RowNotFound)?;
    if let Some(record) = record {
        record.write(&mut tx, &job).await?;
    }
    tx.commit().await?;
    metrics::counter!("jobs_finished", "type" => job_type.as_str(), "status" => "canceled")
        .increment(1);
    Ok(CancelOutcome::Canceled(Box::new(job)))
}
