//! The room list a messages sync decides by: one `GET /rooms` per job, taken by
//! whichever of the job's consumers needs it first and shared with the others through
//! `job_room_snapshots`. Taken after the job started, it is never older than the job, so
//! a change made just before a sync is never missed.
//!
//! Exactly one consumer asks Chatwork: the first to insert the job's row holds the claim;
//! the others look again every [`SyncSettings::snapshot_poll`] until the answer is stored.
//! The claimant's request never runs past [`SyncSettings::snapshot_claim_lease`]; a claim
//! older than that was left by a consumer that died, and the next consumer to look takes
//! it over. A claimant whose request fails gives the claim back at once.
//!
//! [`SyncSettings::snapshot_poll`]: super::SyncSettings::snapshot_poll
//! [`SyncSettings::snapshot_claim_lease`]: super::SyncSettings::snapshot_claim_lease

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use uuid::Uuid;

use super::SyncSettings;
use crate::chatwork::{ChatworkClient, ChatworkError, Room};
use crate::connections::Connections;
use crate::jobs::BatchConnection;

/// One room as a room list (the job's snapshot, or a room check's) saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListedRoom {
    /// Chatwork's `last_update_time` (epoch seconds; 0 for a room without activity).
    pub last_update_time: i64,
    /// Chatwork's `message_num`.
    pub message_num: i64,
}

/// What the job's snapshot says about one room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Entry {
    Listed(ListedRoom),
    /// The account's room list does not have it (left, deleted, or never joined).
    NotListed,
}

impl Entry {
    /// Reads a room's entry as stored: `entry` is `rooms -> '<room_id>'`.
    pub fn from_stored(entry: Option<serde_json::Value>) -> Entry {
        entry
            .and_then(|value| serde_json::from_value(value).ok())
            .map_or(Entry::NotListed, Entry::Listed)
    }
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum SnapshotError {
    #[error(transparent)]
    Chatwork(#[from] ChatworkError),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("the room list of the job was not taken before the invocation's deadline")]
    Deadline,
}

/// `room_id`'s entry in the job's snapshot, taking the snapshot when nobody has.
pub(crate) async fn room_entry(
    db: &BatchConnection,
    lists: Lists<'_>,
    settings: &SyncSettings,
    job_id: Uuid,
    room_id: i64,
    deadline: Instant,
) -> Result<Entry, SnapshotError> {
    let key = room_id.to_string();
    let claim = Uuid::new_v4();
    loop {
        let look = sqlx::query!(
            r#"WITH claimed AS (
                   INSERT INTO job_room_snapshots AS s (job_id, claim)
                   VALUES ($1, $2)
                   ON CONFLICT (job_id) DO UPDATE SET claim = EXCLUDED.claim, claimed_at = now()
                    WHERE s.rooms IS NULL
                      AND s.claimed_at < now() - make_interval(secs => $3::float8)
                RETURNING 1
               )
               SELECT EXISTS (SELECT 1 FROM claimed) AS "mine!",
                      s.taken_at IS NOT NULL AS "taken!",
                      s.rooms -> $4::text AS entry
                 FROM (SELECT 1) AS one
                 LEFT JOIN job_room_snapshots s ON s.job_id = $1"#,
            job_id,
            claim,
            settings.snapshot_claim_lease.as_secs_f64(),
            key,
        )
        .fetch_one(&mut *db.lock().await?)
        .await?;
        if look.taken {
            return Ok(Entry::from_stored(look.entry));
        }
        if look.mine {
            return take(db, lists, settings, job_id, claim, &key, deadline).await;
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(SnapshotError::Deadline);
        }
        tokio::time::sleep(settings.snapshot_poll.min(deadline - now)).await;
    }
}

/// Where a snapshot's room list comes from: the client of the item that takes it (its
/// failure is the item's), and the other active connections, whose lists join it so
/// that a room only another account sees is listed too (one of those failing leaves
/// only its own rooms out).
#[derive(Clone, Copy)]
pub(crate) struct Lists<'a> {
    pub client: &'a ChatworkClient,
    pub through: Uuid,
    pub connections: &'a Connections,
}

impl Lists<'_> {
    async fn read(&self, deadline: Instant) -> Result<Vec<Room>, ChatworkError> {
        let mut rooms = self.client.list_rooms(deadline).await?.items;
        let others = match self.connections.active().await {
            Ok(active) => active,
            Err(e) => {
                tracing::warn!(error = %e, "the other connections could not be read; the room list is one connection's");
                Vec::new()
            }
        };
        for other in others.into_iter().filter(|c| c.id != self.through) {
            let listed = match self.connections.client(other.id).await {
                Ok(client) => client.list_rooms(deadline).await,
                Err(e) => Err(e),
            };
            match listed {
                Ok(listed) => rooms.extend(listed.items),
                Err(e) => {
                    tracing::warn!(connection = %other.id, error = %e, "a connection's room list is missing from the job's")
                }
            }
        }
        super::one_entry_per_room(&mut rooms);
        Ok(rooms)
    }
}

/// Asks Chatwork for the room list under our claim and stores it (unless another
/// consumer stored one first: then theirs is the job's).
async fn take(
    db: &BatchConnection,
    lists: Lists<'_>,
    settings: &SyncSettings,
    job_id: Uuid,
    claim: Uuid,
    key: &str,
    deadline: Instant,
) -> Result<Entry, SnapshotError> {
    let lease_end = Instant::now() + settings.snapshot_claim_lease;
    let rooms = match lists.read(deadline.min(lease_end)).await {
        Ok(rooms) => rooms,
        Err(e) => {
            // Give the claim back, so that the next consumer asks at once.
            sqlx::query!(
                "DELETE FROM job_room_snapshots WHERE job_id = $1 AND claim = $2 AND rooms IS NULL",
                job_id,
                claim,
            )
            .execute(&mut *db.lock().await?)
            .await?;
            return Err(e.into());
        }
    };
    tracing::info!(rooms = rooms.len(), "took the job's room list");
    let stored = sqlx::query!(
        r#"WITH stored AS (
               UPDATE job_room_snapshots SET rooms = $2, taken_at = now()
                WHERE job_id = $1 AND rooms IS NULL
            RETURNING rooms
           )
           SELECT coalesce((SELECT rooms FROM stored),
                           (SELECT rooms FROM job_room_snapshots WHERE job_id = $1)) -> $3::text AS entry"#,
        job_id,
        as_json(&rooms),
        key,
    )
    .fetch_one(&mut *db.lock().await?)
    .await?;
    Ok(Entry::from_stored(stored.entry))
}

/// The stored form of a room list: `{"<room_id>": {"lastUpdateTime", "messageNum"}}`.
fn as_json(rooms: &[Room]) -> serde_json::Value {
    let map: BTreeMap<String, ListedRoom> = rooms
        .iter()
        .map(|r| {
            (
                r.room_id.to_string(),
                ListedRoom {
                    last_update_time: r.last_update_time,
                    message_num: r.message_num,
                },
            )
        })
        .collect();
    serde_json::to_value(map).expect("plain numbers serialize")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_read_back_what_was_stored() {
        let listed = ListedRoom {
            last_update_time: 1_747_008_000,
            message_num: 146,
        };
        let stored = serde_json::to_value(listed).unwrap();
        assert_eq!(
            stored,
            serde_json::json!({"lastUpdateTime": 1_747_008_000, "messageNum": 146})
        );
        assert_eq!(Entry::from_stored(Some(stored)), Entry::Listed(listed));
        assert_eq!(Entry::from_stored(None), Entry::NotListed);
    }
}
