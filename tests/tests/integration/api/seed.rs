//! Rows the API tests start from, written with plain SQL (as a sync would leave them).

use chrono::{DateTime, TimeDelta, Utc};
use cwsync::jobs::{self, Job};
use cwsync::queue::EmbeddedQueues;
use cwsync::summary::{SummaryDraft, SummaryDraftPayload};
use sqlx::PgPool;
use uuid::Uuid;

/// A stored room's two ids.
#[derive(Debug, Clone, Copy)]
pub struct SeedRoom {
    pub id: Uuid,
    pub room_id: i64,
}

pub async fn room(pool: &PgPool, room_id: i64, name: &str) -> SeedRoom {
    let id: Uuid = sqlx::query_scalar(
        "INSERT INTO chatwork_rooms (room_id, name, room_type, message_count)
         VALUES ($1, $2, 'group', 3) RETURNING id",
    )
    .bind(room_id)
    .bind(name)
    .fetch_one(pool)
    .await
    .expect("insert a room");
    SeedRoom { id, room_id }
}

pub async fn company(pool: &PgPool, name: &str) -> Uuid {
    sqlx::query_scalar("INSERT INTO companies (name) VALUES ($1) RETURNING id")
        .bind(name)
        .fetch_one(pool)
        .await
        .expect("insert a company")
}

pub async fn link(pool: &PgPool, company: Uuid, room: SeedRoom) {
    sqlx::query("INSERT INTO company_room_links (company_id, chatwork_room_id) VALUES ($1, $2)")
        .bind(company)
        .bind(room.id)
        .execute(pool)
        .await
        .expect("insert a link");
}

/// A message of `room` sent at `send_time`.
pub async fn message(
    pool: &PgPool,
    room: SeedRoom,
    message_id: &str,
    send_time: DateTime<Utc>,
    company: Option<Uuid>,
) {
    sqlx::query(
        "INSERT INTO messages (chatwork_room_id, room_id, message_id, account_id, account_name,
                               body, send_time, company_id)
         VALUES ($1, $2, $3, 7, 'Tanaka', $4, $5, $6)",
    )
    .bind(room.id)
    .bind(room.room_id)
    .bind(message_id)
    .bind(format!("message {message_id}"))
    .bind(send_time)
    .bind(company)
    .execute(pool)
    .await
    .expect("insert a message");
}

/// A base time for seeded rows.
pub fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2025-03-01T09:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

/// A queued summary draft job of `user`, distinct from every other one by `n`.
pub async fn job(pool: &PgPool, queues: &EmbeddedQueues, company: Uuid, user: &str, n: i64) -> Job {
    let start = t0() + TimeDelta::days(n);
    let payload = SummaryDraftPayload {
        company_id: company,
        period_start: start,
        period_end: start + TimeDelta::days(1),
    };
    let started = jobs::start::<SummaryDraft>(pool, queues, &payload, Some(user))
        .await
        .expect("start a job");
    assert!(started.created);
    started.job
}

/// The audit rows, oldest first, as JSON objects.
pub async fn audit_rows(pool: &PgPool) -> Vec<serde_json::Value> {
    sqlx::query_scalar("SELECT to_jsonb(a) - 'id' - 'created_at' FROM audit_logs a ORDER BY id")
        .fetch_all(pool)
        .await
        .expect("read audit_logs")
}

/// A Chatwork task of `room` as a tasks sync stores it: assigned to Sato by Tanaka,
/// `limit` (`none`, `date` or `time`, with its instant), first seen at `seen`.
pub async fn task(
    pool: &PgPool,
    room: SeedRoom,
    task_id: i64,
    body: &str,
    limit: (&str, Option<DateTime<Utc>>),
    status: &str,
    seen: DateTime<Utc>,
) {
    sqlx::query(
        "INSERT INTO chatwork_tasks (task_id, chatwork_room_id, room_id, account_id, account_name,
                                     assigned_by_account_id, assigned_by_account_name, body,
                                     limit_type, limit_time, status, first_seen_at, done_seen_at)
         VALUES ($1, $2, $3, 1001, '佐藤 健一', 1002, '田中 花子', $4, $5, $6, $7, $8,
                 CASE WHEN $7 = 'done' THEN $8 END)",
    )
    .bind(task_id)
    .bind(room.id)
    .bind(room.room_id)
    .bind(body)
    .bind(limit.0)
    .bind(limit.1)
    .bind(status)
    .bind(seen)
    .execute(pool)
    .await
    .expect("insert a task");
}

/// A file of `room` uploaded at `at`, in `state` (`stored` gets a key and its bytes).
pub async fn file(
    pool: &PgPool,
    room: SeedRoom,
    file_id: i64,
    filename: &str,
    at: DateTime<Utc>,
    state: &str,
) {
    sqlx::query(
        "INSERT INTO chatwork_files (file_id, chatwork_room_id, room_id, account_id, account_name,
                                     filename, filesize, upload_time, storage_state, storage_key,
                                     stored_bytes, stored_at, storage_error)
         VALUES ($1, $2, $3, 1001, '佐藤 健一', $4, 2048, $5, $6,
                 CASE WHEN $6 = 'stored' THEN 'files/' || $1 END,
                 CASE WHEN $6 = 'stored' THEN 2048 END,
                 CASE WHEN $6 = 'stored' THEN now() END,
                 CASE WHEN $6 = 'failed' THEN 'Chatwork answered 404' END)",
    )
    .bind(file_id)
    .bind(room.id)
    .bind(room.room_id)
    .bind(filename)
    .bind(at)
    .bind(state)
    .execute(pool)
    .await
    .expect("insert a file");
}

/// A member of `room`, of `organization`.
pub async fn member(
    pool: &PgPool,
    room: SeedRoom,
    account_id: i64,
    name: &str,
    organization: Option<&str>,
) {
    sqlx::query(
        "INSERT INTO chatwork_members (chatwork_room_id, room_id, account_id, role, name,
                                       organization_name)
         VALUES ($1, $2, $3, 'member', $4, $5)",
    )
    .bind(room.id)
    .bind(room.room_id)
    .bind(account_id)
    .bind(name)
    .bind(organization)
    .execute(pool)
    .await
    .expect("insert a member");
}

/// An open suggestion that `room` belongs to `company`.
pub async fn suggestion(pool: &PgPool, room: SeedRoom, company: Uuid, organization: &str) {
    sqlx::query(
        "INSERT INTO company_room_suggestions (chatwork_room_id, company_id, organization_name,
                                               members)
         VALUES ($1, $2, $3, 2)",
    )
    .bind(room.id)
    .bind(company)
    .bind(organization)
    .execute(pool)
    .await
    .expect("insert a suggestion");
}
