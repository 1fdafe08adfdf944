//! The one statement that stores a room's fetch and ends its item.

use super::fetch::{Fetch, RoomState};
use super::{ItemReport, RoomFetch};
use crate::chatwork::DeferredRecord;
use crate::jobs::{Ended, ItemRun, JobStatus};

/// Stores a fetch: messages, the room's state, and the item's result with its end (the
/// job core's `cwsync_end_items`), in one statement, only while the job is not canceled;
/// and, whatever the job's state, the rate budget's record of the request's answer
/// (`deferred`: `cwsync_budget_record`). `synced_update_time` is what to record as the
/// `last_update_time` the room was synced at (`None` when the snapshot did not list it:
/// the recorded one stays). Returns the item's result and how its end went, or `None`
/// when the job was canceled (nothing is written then). `requested_at` is when the fetch
/// was sent: a body a webhook stored before then yields to the fetch's.
#[allow(clippy::too_many_arguments)]
pub(super) async fn write(
    item: &ItemRun,
    requested_at: chrono::DateTime<chrono::Utc>,
    room: &RoomState,
    fetch: &Fetch,
    synced_update_time: Option<Option<chrono::DateTime<chrono::Utc>>>,
    limitation: Option<&str>,
    result: &RoomFetch,
    deferred: Option<DeferredRecord>,
) -> Result<Option<(RoomFetch, Ended)>, sqlx::Error> {
    let record = deferred.as_ref().and_then(DeferredRecord::args);
    let result_json = serde_json::to_value(ItemReport::Room(result.clone()))
        .map_err(|e| sqlx::Error::Encode(e.into()))?;
    let n = fetch.messages.len();
    let mut ids = Vec::with_capacity(n);
    let mut account_ids = Vec::with_capacity(n);
    let mut account_names = Vec::with_capacity(n);
    let mut avatars = Vec::with_capacity(n);
    let mut bodies = Vec::with_capacity(n);
    let mut send_times = Vec::with_capacity(n);
    let mut update_times = Vec::with_capacity(n);
    for m in &fetch.messages {
        ids.push(m.message_id.clone());
        account_ids.push(m.account.account_id);
        account_names.push(m.account.name.clone());
        avatars.push(m.account.avatar_image_url.clone());
        bodies.push(m.body.clone());
        send_times.push(m.send_time);
        update_times.push(m.update_time);
    }
    let message_num = fetch
        .message_num
        .map(|n| n.clamp(0, i64::from(i32::MAX)) as i32);
    let gap = fetch.gap.map(|g| g.clamp(1, i64::from(i32::MAX)) as i32);
    let row = sqlx::query!(
        r#"WITH job AS (
               SELECT id FROM jobs WHERE id = $1 AND status IN ('queued', 'processing')
                  FOR UPDATE
           ), room AS (
               SELECT r.id, r.room_id,
                      -- The company when the room is linked to exactly one.
                      (SELECT (array_agg(l.company_id))[1] FROM company_room_links l
                        WHERE l.chatwork_room_id = r.id HAVING count(*) = 1) AS company_id
                 FROM chatwork_rooms r
                WHERE r.id = $3 AND EXISTS (SELECT 1 FROM job)
           ), written AS (
               INSERT INTO messages AS m (chatwork_room_id, room_id, message_id, account_id,
                                          account_name, account_avatar_url, body, send_time,
                                          update_time, company_id)
               SELECT room.id, room.room_id, t.message_id, t.account_id, t.account_name,
                      nullif(t.avatar, ''), t.body, to_timestamp(t.send_time),
                      CASE WHEN t.update_time > 0 THEN to_timestamp(t.update_time) END,
                      room.company_id
                 FROM room,
                      UNNEST($4::text[], $5::int8[], $6::text[], $7::text[], $8::text[],
                             $9::int8[], $10::int8[])
                        AS t(message_id, account_id, account_name, avatar, body, send_time,
                             update_time)
               -- A newer version replaces the body, and so does any other version
               -- than a webhook stored before this fetch was sent: Chatwork's answer is
               -- the truth (docs/architecture.md, "Webhooks"). A message a webhook
               -- stored without its author's name gets the name (counted as edited).
               ON CONFLICT (room_id, message_id) DO UPDATE
                  SET (body, update_time, webhook_stored_at) = (
                      SELECT CASE WHEN r THEN EXCLUDED.body ELSE m.body END,
                             CASE WHEN r THEN EXCLUDED.update_time ELSE m.update_time END,
                             CASE WHEN r THEN NULL ELSE m.webhook_stored_at END
                        FROM (SELECT (EXCLUDED.update_time > coalesce(m.update_time, '-infinity')
                             OR (m.webhook_stored_at < $27
                                 AND (m.body, m.update_time)
                                     IS DISTINCT FROM (EXCLUDED.body, EXCLUDED.update_time))) AS r) d),
                      account_name = coalesce(m.account_name, EXCLUDED.account_name),
                      account_avatar_url = CASE WHEN m.account_name IS NULL
                                                THEN EXCLUDED.account_avatar_url
                                                ELSE m.account_avatar_url END
                WHERE (EXCLUDED.update_time > coalesce(m.update_time, '-infinity')
                           OR (m.webhook_stored_at < $27
                               AND (m.body, m.update_time)
                                   IS DISTINCT FROM (EXCLUDED.body, EXCLUDED.update_time)))
                   OR m.account_name IS NULL
            RETURNING (xmax = 0) AS inserted
           ), unconfirmed AS (
               -- A webhook's version stored after this fetch was sent and unlike it:
               -- perhaps an edit the fetch came too early to see, perhaps a lie; the
               -- room stays unsynced so that the next check fetches it again.
               SELECT 1 FROM room, messages m,
                      UNNEST($4::text[], $8::text[], $10::int8[]) AS t(message_id, body, update_time)
                WHERE m.room_id = room.room_id AND m.message_id = t.message_id
                  AND m.webhook_stored_at >= $27
                  AND (m.body, m.update_time) IS DISTINCT FROM
                      (t.body, CASE WHEN t.update_time > 0 THEN to_timestamp(t.update_time) END)
                LIMIT 1
           ), counts AS (
               SELECT count(*) FILTER (WHERE inserted) AS stored,
                      count(*) FILTER (WHERE NOT inserted) AS edited
                 FROM written
           ), synced AS (
               UPDATE chatwork_rooms r
                  SET last_message_id = CASE
                          WHEN $11::text IS NULL THEN r.last_message_id
                          WHEN r.last_message_id IS NULL
                            OR $11::numeric > r.last_message_id::numeric THEN $11::text
                          ELSE r.last_message_id END,
                      last_sync_at = now(),
                      last_error_at = NULL, last_error_message = NULL, last_error_status = NULL,
                      synced_last_update_time = CASE WHEN EXISTS (SELECT 1 FROM unconfirmed) THEN NULL
                                                     WHEN $12 THEN $13
                                                     ELSE r.synced_last_update_time END,
                      synced_message_num = coalesce($14, r.synced_message_num),
                      gap_detected_at = CASE WHEN $15::int IS NULL THEN r.gap_detected_at ELSE now() END,
                      gap_missed_estimate = coalesce($15::int, r.gap_missed_estimate),
                      fetch_wanted_since = NULL,
                      -- This fetch's count covers what webhooks stored before it.
                      webhook_messages_since_fetch = 0,
                      author_names_wanted_since = NULL,
                      message_limitation = coalesce($17::text, r.message_limitation),
                      message_limitation_at = CASE WHEN $17::text IS NULL
                                                   THEN r.message_limitation_at ELSE now() END,
                      updated_at = now()
                WHERE r.id = (SELECT id FROM room)
            RETURNING 1
           ), ended AS (
               -- The job core's end of the item (migrations/0080_job_steps.sql), once
               -- the room is written: a NULL job ends nothing.
               SELECT e.* FROM cwsync_end_items(
                   CASE WHEN EXISTS (SELECT 1 FROM synced) THEN $1::uuid END,
                   ARRAY[$2::text], 'completed', $18,
                   (SELECT $16::jsonb || jsonb_build_object('stored', c.stored, 'edited', c.edited)
                      FROM counts c),
                   NULL) e
           ), budget AS (
               SELECT cwsync_budget_record($19, $20, $21, $22, $23, $24, $25, $26, true)
                WHERE $20::int8 IS NOT NULL
           )
           SELECT EXISTS (SELECT 1 FROM job) AS "job_open!",
                  (SELECT stored FROM counts) AS "stored!",
                  (SELECT edited FROM counts) AS "edited!",
                  (SELECT ended FROM ended) AS "ended!",
                  (SELECT open_items FROM ended) AS "open_items?",
                  (SELECT open_steps FROM ended) AS "open_steps?",
                  (SELECT job_status FROM ended) AS "job_status?: JobStatus",
                  (SELECT count(*) FROM budget) AS "recorded!""#,
        item.job_id,
        item.item_key,
        room.id,
        &ids,
        &account_ids,
        &account_names,
        &avatars,
        &bodies,
        &send_times,
        &update_times,
        fetch.newest_id,
        synced_update_time.is_some(),
        synced_update_time.flatten(),
        message_num,
        gap,
        result_json,
        limitation,
        fetch.messages.len() as i32,
        record.as_ref().map(|r| &r.token_hash[..]),
        record.as_ref().map(|r| r.window_id),
        record.as_ref().and_then(|r| r.limit),
        record.as_ref().and_then(|r| r.remaining),
        record.as_ref().and_then(|r| r.reset),
        record.as_ref().and_then(|r| r.date),
        record.as_ref().map(|r| r.margin),
        record.as_ref().map(|r| r.refused),
        requested_at,
    )
    .fetch_one(&mut *item.db.lock().await?)
    .await?;
    if let Some(deferred) = deferred
        && row.recorded > 0
    {
        deferred.recorded();
    }
    if !row.job_open {
        return Ok(None);
    }
    let ended = Ended {
        ended: row.ended,
        open_items: row.open_items,
        open_steps: row.open_steps,
        job_status: row.job_status,
    };
    let stored = RoomFetch {
        stored: Some(row.stored),
        edited: Some(row.edited),
        ..result.clone()
    };
    Ok(Some((stored, ended)))
}
