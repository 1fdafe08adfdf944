//! The `chatwork_connections` rows: what the API shows of them, and the statements that
//! add, reconnect, change and remove them. Sealed tokens are written here and read only
//! by [`super::source`].

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use super::cipher::{CipherError, TokenCipher, place};
use crate::chatwork::{Me, token_hash};

/// A connection as the API shows it (never its tokens).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Connection {
    pub id: Uuid,
    /// `oauth` or `api_token`.
    pub kind: String,
    /// The connection of `CHATWORK_API_TOKEN`: its token lives in that setting, not here.
    pub bootstrap: bool,
    pub account_id: Option<i64>,
    pub account_name: Option<String>,
    pub organization_id: Option<i64>,
    pub organization_name: Option<String>,
    /// The `sub` of the admin who connected it (`bootstrap` for the bootstrap one).
    pub connected_by: String,
    pub connected_at: DateTime<Utc>,
    /// OAuth scopes granted, space-separated.
    pub scopes: String,
    /// `active`, `reauth_required` (an admin must connect the account again), `revoked`
    /// or `disabled`.
    pub status: String,
    pub status_changed_at: DateTime<Utc>,
    pub last_error: Option<String>,
    pub access_token_expires_at: Option<DateTime<Utc>>,
    pub refreshed_at: Option<DateTime<Utc>>,
    /// When its room list was last read, how many rooms it had, and the last failure.
    pub listed_at: Option<DateTime<Utc>>,
    pub rooms_listed: Option<i32>,
    pub list_error: Option<String>,
    /// Rooms its account is a member of (as its room lists said).
    pub rooms: i64,
    /// Webhook tokens of its account added here.
    pub webhooks: i64,
}

/// The key of a (non-bootstrap) connection's rate budget and breaker rows.
pub fn budget_key_of(id: Uuid) -> [u8; 32] {
    token_hash(&SecretString::from(format!("cwsync-connection:{id}")))
}

pub async fn list(pool: &PgPool) -> Result<Vec<Connection>, sqlx::Error> {
    sqlx::query_as!(
        Connection,
        r#"SELECT c.id, c.kind, c.bootstrap, c.account_id, c.account_name, c.organization_id,
                  c.organization_name, c.connected_by, c.connected_at, c.scopes, c.status,
                  c.status_changed_at, c.last_error, c.access_token_expires_at, c.refreshed_at,
                  c.listed_at, c.rooms_listed, c.list_error,
                  (SELECT count(*) FROM chatwork_room_connections m
                    WHERE m.connection_id = c.id AND m.refused_at IS NULL) AS "rooms!",
                  (SELECT count(*) FROM chatwork_connection_webhooks w
                    WHERE w.connection_id = c.id) AS "webhooks!"
             FROM chatwork_connections c
            ORDER BY c.bootstrap DESC, c.connected_at, c.id"#
    )
    .fetch_all(pool)
    .await
}

pub async fn get(pool: &PgPool, id: Uuid) -> Result<Option<Connection>, sqlx::Error> {
    Ok(list(pool).await?.into_iter().find(|c| c.id == id))
}

/// The bootstrap connection's row for `token` (made on first use; a changed token keeps
/// the row and moves its budget key to the new token's). Its token is never stored.
pub async fn ensure_bootstrap(pool: &PgPool, token: &SecretString) -> Result<Uuid, sqlx::Error> {
    let key = token_hash(token);
    let moved = sqlx::query_scalar!(
        r#"INSERT INTO chatwork_connections (kind, bootstrap, connected_by, budget_key)
           VALUES ('api_token', true, 'bootstrap', $1)
           ON CONFLICT (bootstrap) WHERE bootstrap DO UPDATE
              SET budget_key = EXCLUDED.budget_key, updated_at = now()
            WHERE chatwork_connections.budget_key <> EXCLUDED.budget_key
           RETURNING id"#,
        &key[..],
    )
    .fetch_optional(pool)
    .await?;
    match moved {
        Some(id) => Ok(id),
        None => {
            sqlx::query_scalar!("SELECT id FROM chatwork_connections WHERE bootstrap")
                .fetch_one(pool)
                .await
        }
    }
}

/// A connection's tokens as sealed for its row, under one data key.
pub(crate) struct SealedTokens {
    pub access: Vec<u8>,
    pub refresh: Option<Vec<u8>>,
    pub key_id: String,
    pub wrapped_key: Option<Vec<u8>>,
}

/// Seals a connection's access token (and refresh token) for its row `id`.
pub(crate) async fn seal_tokens(
    cipher: &TokenCipher,
    id: Uuid,
    access: &SecretString,
    refresh: Option<&SecretString>,
) -> Result<SealedTokens, CipherError> {
    let access_place = place(&id, "access_token");
    let refresh_place = place(&id, "refresh_token");
    let mut values: Vec<(&str, &[u8])> = vec![(&access_place, access.expose_secret().as_bytes())];
    if let Some(refresh) = refresh {
        values.push((&refresh_place, refresh.expose_secret().as_bytes()));
    }
    let (mut sealed, key_id, wrapped_key) = cipher.seal_all(&values).await?;
    let refresh = refresh.map(|_| sealed.pop().expect("two values"));
    Ok(SealedTokens {
        access: sealed.pop().expect("one value"),
        refresh,
        key_id,
        wrapped_key,
    })
}

/// What an admin connected: the account (`/me`) and its tokens.
pub struct NewConnection<'a> {
    pub kind: &'a str,
    pub me: &'a Me,
    pub connected_by: &'a str,
    pub scopes: &'a str,
    pub access_token: &'a SecretString,
    pub refresh_token: Option<&'a SecretString>,
    pub expires_at: Option<DateTime<Utc>>,
}

/// Why a connection could not be stored.
#[derive(Debug, thiserror::Error)]
pub enum SaveError {
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    #[error(transparent)]
    Cipher(#[from] CipherError),
}

/// Stores a connection, sealed. An account that is already connected (not revoked) is
/// reconnected: same row and id, new tokens, `active` again. Returns its id and whether
/// it is new.
pub async fn connect(
    pool: &PgPool,
    cipher: &TokenCipher,
    new: NewConnection<'_>,
) -> Result<(Uuid, bool), SaveError> {
    let existing = sqlx::query_scalar!(
        "SELECT id FROM chatwork_connections
          WHERE account_id = $1 AND NOT bootstrap AND status <> 'revoked'",
        new.me.account_id,
    )
    .fetch_optional(pool)
    .await?;
    let id = existing.unwrap_or_else(Uuid::new_v4);
    let SealedTokens {
        access,
        refresh,
        key_id,
        wrapped_key: wrapped,
    } = seal_tokens(cipher, id, new.access_token, new.refresh_token).await?;
    let key = budget_key_of(id);
    let org_name = Some(new.me.organization_name.as_str()).filter(|n| !n.is_empty());
    sqlx::query!(
        r#"INSERT INTO chatwork_connections
               (id, kind, account_id, account_name, organization_id, organization_name,
                connected_by, scopes, access_token, refresh_token, key_id, wrapped_key,
                access_token_expires_at, refreshed_at, budget_key)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, now(), $14)
           ON CONFLICT (id) DO UPDATE
              SET kind = EXCLUDED.kind, account_name = EXCLUDED.account_name,
                  organization_id = EXCLUDED.organization_id,
                  organization_name = EXCLUDED.organization_name,
                  connected_by = EXCLUDED.connected_by, connected_at = now(),
                  scopes = EXCLUDED.scopes, access_token = EXCLUDED.access_token,
                  refresh_token = EXCLUDED.refresh_token, key_id = EXCLUDED.key_id,
                  wrapped_key = EXCLUDED.wrapped_key,
                  access_token_expires_at = EXCLUDED.access_token_expires_at,
                  refreshed_at = now(), status = 'active', status_changed_at = now(),
                  last_error = NULL, updated_at = now()"#,
        id,
        new.kind,
        new.me.account_id,
        clip(&new.me.name, 200),
        new.me.organization_id,
        org_name.map(|n| clip(n, 200)),
        new.connected_by,
        clip(new.scopes, 1000),
        access,
        refresh,
        key_id,
        wrapped,
        new.expires_at,
        &key[..],
    )
    .execute(pool)
    .await?;
    Ok((id, existing.is_none()))
}

/// Sets a connection's status (and its last error, cleared with `None`). Returns whether
/// it exists.
pub async fn set_status(
    executor: impl sqlx::PgExecutor<'_>,
    id: Uuid,
    status: &str,
    error: Option<&str>,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query!(
        "UPDATE chatwork_connections
            SET status = $2, last_error = $3, updated_at = now(),
                status_changed_at = CASE WHEN status = $2 THEN status_changed_at ELSE now() END
          WHERE id = $1",
        id,
        status,
        error.map(|e| clip(e, 500)),
    )
    .execute(executor)
    .await?;
    Ok(done.rows_affected() > 0)
}

/// Records what a connection's room list said: the rooms its account is a member of
/// now (each one listed again is no longer refused), and when. A room it no longer
/// lists is no longer one of its rooms.
///
/// Every room check lists every room, so only what changed is written: a new
/// membership, a refusal the list lifts, a membership gone. A membership listed again
/// as it was is left alone (rewriting it cost a row version and some 370 bytes of WAL
/// per room per check), so a row's `listed_at` is when the account was last found a
/// member after not being one (first listed, or listed again after a refusal), and the
/// connection's `listed_at` when its list was last read. The rooms no longer listed are
/// found with an anti-join, not `<> ALL(array)`: once Postgres caches a generic plan for
/// the statement (after five runs on one connection), that comparison walks the whole
/// array for every row, which took 10 s at 50,000 rooms. A refusal to lift is found
/// through the partial index of refused memberships, so only those few meet the array
/// (docs/architecture.md, "Connections").
pub async fn record_listing(pool: &PgPool, id: Uuid, rooms: &[i64]) -> Result<(), sqlx::Error> {
    sqlx::query!(
        r#"WITH listed AS (
               SELECT DISTINCT t.room_id FROM UNNEST($2::int8[]) AS t(room_id)
                 JOIN chatwork_rooms r ON r.room_id = t.room_id
           ), added AS (
               INSERT INTO chatwork_room_connections (room_id, connection_id)
               SELECT l.room_id, $1 FROM listed l
                WHERE NOT EXISTS (SELECT 1 FROM chatwork_room_connections m
                                   WHERE m.room_id = l.room_id AND m.connection_id = $1)
               ON CONFLICT (room_id, connection_id) DO NOTHING
           ), lifted AS (
               UPDATE chatwork_room_connections m
                  SET listed_at = now(), refused_at = NULL
                WHERE m.connection_id = $1 AND m.refused_at IS NOT NULL
                  AND m.room_id = ANY($2::int8[])
           ), gone AS (
               DELETE FROM chatwork_room_connections m
                WHERE m.connection_id = $1
                  AND NOT EXISTS (SELECT 1 FROM UNNEST($2::int8[]) AS t(room_id)
                                   WHERE t.room_id = m.room_id)
           )
           UPDATE chatwork_connections
              SET listed_at = now(), rooms_listed = cardinality($2::int8[]), list_error = NULL
            WHERE id = $1"#,
        id,
        rooms,
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// Records that a connection's room list could not be read.
pub async fn record_list_error(pool: &PgPool, id: Uuid, error: &str) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE chatwork_connections SET list_error = $2 WHERE id = $1",
        id,
        clip(error, 500),
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// Records that Chatwork answered 403 or 404 for a connection's account on a room: the
/// room is fetched through another member until the account lists it again.
pub async fn record_refusal(pool: &PgPool, id: Uuid, room_id: i64) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE chatwork_room_connections SET refused_at = now()
          WHERE connection_id = $1 AND room_id = $2",
        id,
        room_id,
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// The connection a room is fetched through: an active member not refused on it, and
/// not in `tried`, the one with the most budget left (a window already past its reset
/// counts as whole); `None` when no member is left. A room no connection has listed yet
/// (rows from before connections, or a room a webhook registered) is fetched through the
/// bootstrap connection.
pub async fn fetcher_of(
    pool: &PgPool,
    room_id: i64,
    tried: &[Uuid],
) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar!(
        r#"SELECT c.id AS "id!"
             FROM chatwork_connections c
             LEFT JOIN chatwork_room_connections m
                    ON m.connection_id = c.id AND m.room_id = $1
             LEFT JOIN chatwork_rate_budgets b ON b.token_hash = c.budget_key
            WHERE c.status = 'active' AND c.id <> ALL($2::uuid[])
              AND ((m.room_id IS NOT NULL AND m.refused_at IS NULL)
                   OR (c.bootstrap AND NOT EXISTS (
                          SELECT 1 FROM chatwork_room_connections x WHERE x.room_id = $1)))
            ORDER BY CASE WHEN b.reset_at IS NULL THEN 2147483647
                          WHEN b.reset_at <= now() THEN b.limit_count
                          ELSE b.remaining END DESC,
                     c.bootstrap DESC, c.connected_at, c.id
            LIMIT 1"#,
        room_id,
        tried,
    )
    .fetch_optional(pool)
    .await
}

fn clip(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}
