//! A room's members: one `GET /rooms/{id}/members`, one statement that upserts them,
//! deletes those gone, records the room's members as synced, and makes the company
//! suggestions they imply.
//!
//! A suggestion: members whose organization name equals a company's name (trimmed, case
//! ignored) in a room not linked to that company. It is only a suggestion: an admin
//! accepts it (which links the room) or dismisses it, and one that exists in any state is
//! never made again, so a dismissed suggestion stays dismissed.

use sqlx::PgPool;
use tokio::time::Instant;

use super::{PartError, PartReport, Target, clip};
use crate::chatwork::{ChatworkClient, Member};

const MAX_TEXT_CHARS: usize = 255;
const MAX_URL_CHARS: usize = 2_000;

pub(super) async fn sync(
    client: &ChatworkClient,
    pool: &PgPool,
    target: &Target,
    deadline: Instant,
) -> Result<Option<PartReport>, PartError> {
    let mut members = client.list_members(target.room_id, deadline).await?;
    members.sort_by_key(|m| m.account_id);
    members.dedup_by_key(|m| m.account_id);
    let ids: Vec<i64> = members.iter().map(|m| m.account_id).collect();
    let roles: Vec<String> = members
        .iter()
        .map(|m| match m.role.as_str() {
            role @ ("admin" | "member" | "readonly") => role.to_owned(),
            // A role Chatwork adds later reads as an ordinary member.
            _ => "member".to_owned(),
        })
        .collect();
    let text = |f: fn(&Member) -> &str| -> Vec<String> {
        members
            .iter()
            .map(|m| clip(f(m).trim(), MAX_TEXT_CHARS))
            .collect()
    };
    let names = text(|m| m.name.as_str());
    let chatwork_ids = text(|m| m.chatwork_id.as_str());
    let organizations = text(|m| m.organization_name.as_str());
    let departments = text(|m| m.department.as_str());
    let organization_ids: Vec<i64> = members
        .iter()
        .map(|m| m.organization_id.unwrap_or(0))
        .collect();
    let avatars: Vec<String> = members
        .iter()
        .map(|m| clip(&m.avatar_image_url, MAX_URL_CHARS))
        .collect();
    let row = sqlx::query!(
        r#"WITH m AS (
               SELECT * FROM UNNEST($3::int8[], $4::text[], $5::text[], $6::text[], $7::int8[],
                                    $8::text[], $9::text[], $10::text[])
                        AS m(account_id, role, name, chatwork_id, organization_id,
                             organization_name, department, avatar)
           ), gone AS (
               DELETE FROM chatwork_members
                WHERE chatwork_room_id = $1 AND account_id <> ALL($3::int8[])
            RETURNING 1
           ), upserted AS (
               INSERT INTO chatwork_members AS c
                      (chatwork_room_id, room_id, account_id, role, name, chatwork_id,
                       organization_id, organization_name, department, avatar_image_url)
               SELECT $1, $2, m.account_id, m.role, m.name, nullif(m.chatwork_id, ''),
                      nullif(m.organization_id, 0), nullif(m.organization_name, ''),
                      nullif(m.department, ''), nullif(m.avatar, '')
                 FROM m
               ON CONFLICT (room_id, account_id) DO UPDATE
                  SET role = excluded.role, name = excluded.name,
                      chatwork_id = excluded.chatwork_id,
                      organization_id = excluded.organization_id,
                      organization_name = excluded.organization_name,
                      department = excluded.department,
                      avatar_image_url = excluded.avatar_image_url, synced_at = now()
            RETURNING 1
           ), room AS (
               UPDATE chatwork_rooms SET members_synced_at = now(), updated_at = now()
                WHERE id = $1
           ), suggested AS (
               INSERT INTO company_room_suggestions
                      (chatwork_room_id, company_id, organization_name, members)
               SELECT $1, c.id, min(m.organization_name), count(*)
                 FROM m JOIN companies c
                   ON lower(btrim(c.name)) = lower(btrim(m.organization_name))
                WHERE btrim(m.organization_name) <> ''
                  AND NOT EXISTS (SELECT 1 FROM company_room_links l
                                   WHERE l.company_id = c.id AND l.chatwork_room_id = $1)
                GROUP BY c.id
               ON CONFLICT (chatwork_room_id, company_id) DO NOTHING
            RETURNING 1
           )
           SELECT (SELECT count(*) FROM gone) AS "removed!",
                  (SELECT count(*) FROM upserted) AS "stored!",
                  (SELECT count(*) FROM suggested) AS "suggested!""#,
        target.room,
        target.room_id,
        &ids,
        &roles,
        &names,
        &chatwork_ids,
        &organization_ids,
        &organizations,
        &departments,
        &avatars,
    )
    .fetch_one(pool)
    .await?;
    if row.suggested > 0 {
        metrics::counter!("company_suggestions_made").increment(row.suggested as u64);
        tracing::info!(
            room_id = target.room_id,
            suggestions = row.suggested,
            "the room's members suggest a company"
        );
    }
    Ok(Some(PartReport {
        listed: row.stored,
        removed: row.removed,
        suggestions: row.suggested,
        ..PartReport::default()
    }))
}
