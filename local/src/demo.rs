//! The demo world of a local run without a Chatwork token: the fake Chatwork serving the
//! demo data set, and one company (a customer of the demo's company) linked to the two
//! rooms where its people talk, so that messages land on it and a summary can be drafted.

use std::net::SocketAddr;
use std::time::Duration;

use fake_chatwork::{DemoData, FakeChatwork, FakeSettings};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// The demo company: the customer whose rooms' names carry its name.
pub const COMPANY: &str = "ミナトロジスティクス株式会社 (Minato Logistics)";
const COMPANY_MARK: &str = "ミナトロジスティクス";

/// Starts the fake Chatwork with the demo data on `addr` (port 0: any free port).
pub async fn start_fake(addr: SocketAddr) -> anyhow::Result<FakeChatwork> {
    Ok(FakeChatwork::start_on(FakeSettings::demo(), addr).await?)
}

/// The Chatwork ids of the demo rooms where the demo company talks.
pub fn company_rooms() -> Vec<i64> {
    DemoData::build()
        .rooms
        .iter()
        .filter(|r| r.name.contains(COMPANY_MARK))
        .map(|r| r.room_id)
        .collect()
}

/// Creates the demo company when it is missing; returns its id.
pub async fn ensure_company(pool: &PgPool) -> Result<Uuid, sqlx::Error> {
    if let Some(id) = sqlx::query_scalar::<_, Uuid>("SELECT id FROM companies WHERE name = $1")
        .bind(COMPANY)
        .fetch_optional(pool)
        .await?
    {
        return Ok(id);
    }
    sqlx::query_scalar("INSERT INTO companies (name) VALUES ($1) RETURNING id")
        .bind(COMPANY)
        .fetch_one(pool)
        .await
}

/// Links the demo company to its rooms once a rooms sync has brought them in (and gives
/// their stored messages the company, as linking through the API does). Stops when both
/// are linked, or at `stop`.
pub async fn link_when_rooms_arrive(pool: PgPool, company: Uuid, stop: CancellationToken) {
    let rooms = company_rooms();
    loop {
        let linked = sqlx::query_scalar::<_, i64>(
            "WITH linked AS (
                 INSERT INTO company_room_links (company_id, chatwork_room_id)
                 SELECT $1, r.id FROM chatwork_rooms r WHERE r.room_id = ANY($2)
                 ON CONFLICT DO NOTHING
                 RETURNING chatwork_room_id
             ), backfilled AS (
                 UPDATE messages SET company_id = $1
                  WHERE chatwork_room_id IN (SELECT chatwork_room_id FROM linked) AND company_id IS NULL
             )
             SELECT count(*) FROM company_room_links l JOIN chatwork_rooms r ON r.id = l.chatwork_room_id
              WHERE l.company_id = $1 AND r.room_id = ANY($2)",
        )
        .bind(company)
        .bind(&rooms)
        .fetch_one(&pool)
        .await;
        match linked {
            Ok(n) if n as usize >= rooms.len() => {
                tracing::info!(company = COMPANY, "demo company linked to its rooms");
                return;
            }
            Ok(_) => {}
            Err(e) => tracing::debug!(error = %e, "demo links not made yet"),
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}
