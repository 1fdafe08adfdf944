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
