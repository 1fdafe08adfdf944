//! A room's tasks: one `GET /rooms/{id}/tasks` (at most 100, open and done alike), one
//! statement that upserts them and records the room's tasks as synced. A task seen done
//! for the first time gets `done_seen_at`; a new deadline, body or assignee replaces the
//! old. Rows change only when something in them did.

use sqlx::PgPool;
use tokio::time::Instant;

use super::{PartError, PartReport, Target, as_int, clip};
use crate::chatwork::{ChatworkClient, LimitType, TasksFilter};

/// Longest stored body (the column's check).
const MAX_BODY_CHARS: usize = 20_000;
const MAX_NAME_CHARS: usize = 255;

pub(super) async fn sync(
    client: &ChatworkClient,
    pool: &PgPool,
    target: &Target,
    deadline: Instant,
) -> Result<Option<PartReport>, PartError> {
    let tasks = client
        .list_tasks(target.room_id, &TasksFilter::default(), deadline)
        .await?;
    let mut ids = Vec::with_capacity(tasks.len());
    let mut assignees = Vec::with_capacity(tasks.len());
    let mut assignee_names = Vec::with_capacity(tasks.len());
    // 0 and "": no one assigned it (Chatwork names someone; robustness only).
    let mut by_ids = Vec::with_capacity(tasks.len());
    let mut by_names = Vec::with_capacity(tasks.len());
    // "": no message.
    let mut message_ids = Vec::with_capacity(tasks.len());
    let mut bodies = Vec::with_capacity(tasks.len());
    let mut limit_types = Vec::with_capacity(tasks.len());
    // Epoch seconds; 0 without a deadline.
    let mut limit_times = Vec::with_capacity(tasks.len());
    let mut statuses = Vec::with_capacity(tasks.len());
    for task in tasks.iter().filter(|t| t.task_id > 0) {
        ids.push(task.task_id);
        assignees.push(task.account.account_id);
        assignee_names.push(clip(&task.account.name, MAX_NAME_CHARS));
        let by = task.assigned_by_account.as_ref();
        by_ids.push(by.map_or(0, |a| a.account_id));
        by_names.push(by.map_or_else(String::new, |a| clip(&a.name, MAX_NAME_CHARS)));
        message_ids.push(task.message_id.clone().unwrap_or_default());
        bodies.push(clip(&task.body, MAX_BODY_CHARS));
        let (kind, at) = task.deadline();
        limit_types.push(kind.as_str().to_owned());
        limit_times.push(match kind {
            LimitType::None => 0,
            _ => at.map_or(0, |t| t.timestamp()),
        });
        statuses.push(task.status.as_str().to_owned());
    }
    let changed = sqlx::query_scalar!(
        r#"WITH t AS (
               SELECT * FROM UNNEST($3::int8[], $4::int8[], $5::text[], $6::int8[], $7::text[],
                                    $8::text[], $9::text[], $10::text[], $11::int8[], $12::text[])
                        AS t(task_id, account_id, account_name, by_id, by_name, message_id,
                             body, limit_type, limit_time, status)
           ), upserted AS (
               INSERT INTO chatwork_tasks AS k
                      (task_id, chatwork_room_id, room_id, account_id, account_name,
                       assigned_by_account_id, assigned_by_account_name, message_id, body,
                       limit_type, limit_time, status, done_seen_at)
               SELECT t.task_id, $1, $2, t.account_id, t.account_name,
                      nullif(t.by_id, 0), CASE WHEN t.by_id <> 0 THEN t.by_name END,
                      nullif(t.message_id, ''), t.body, t.limit_type,
                      CASE WHEN t.limit_type <> 'none' THEN to_timestamp(t.limit_time) END,
                      t.status, CASE WHEN t.status = 'done' THEN now() END
                 FROM t
               ON CONFLICT (task_id) DO UPDATE
                  SET account_id = excluded.account_id, account_name = excluded.account_name,
                      assigned_by_account_id = excluded.assigned_by_account_id,
                      assigned_by_account_name = excluded.assigned_by_account_name,
                      message_id = excluded.message_id, body = excluded.body,
                      limit_type = excluded.limit_type, limit_time = excluded.limit_time,
                      status = excluded.status,
                      done_seen_at = CASE WHEN excluded.status = 'done'
                                          THEN coalesce(k.done_seen_at, now()) END,
                      updated_at = now()
                WHERE (k.account_id, k.account_name, k.assigned_by_account_id,
                       k.assigned_by_account_name, k.message_id, k.body, k.limit_type,
                       k.limit_time, k.status)
                      IS DISTINCT FROM
                      (excluded.account_id, excluded.account_name,
                       excluded.assigned_by_account_id, excluded.assigned_by_account_name,
                       excluded.message_id, excluded.body, excluded.limit_type,
                       excluded.limit_time, excluded.status)
            RETURNING 1
           ), room AS (
               UPDATE chatwork_rooms
                  SET synced_task_num = coalesce($13, synced_task_num),
                      tasks_synced_at = now(), updated_at = now()
                WHERE id = $1
           )
           SELECT count(*) AS "changed!" FROM upserted"#,
        target.room,
        target.room_id,
        &ids,
        &assignees,
        &assignee_names,
        &by_ids,
        &by_names,
        &message_ids,
        &bodies,
        &limit_types,
        &limit_times,
        &statuses,
        as_int(target.listed_count),
    )
    .fetch_one(pool)
    .await?;
    let count = |n: i64| u64::try_from(n).unwrap_or(0);
    metrics::counter!("chatwork_tasks_changed").increment(count(changed));
    Ok(Some(PartReport {
        listed: tasks.len() as i64,
        changed,
        ..PartReport::default()
    }))
}
