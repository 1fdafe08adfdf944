//! A room's files: one `GET /rooms/{id}/files` (at most 100), one statement that upserts
//! their metadata, then a copy of each file still `pending`, each its own request for a
//! download URL that works for about 30 seconds.
//!
//! A copy: ask for a URL, download (size-capped, outside the rate budget), put it in the
//! store under a key made of ids, mark it `stored`. A URL refused as expired asks for a
//! new one, at most [`URLS_PER_COPY`] per copy. Over the cap (Chatwork's `filesize`, or
//! the bytes read) the file is `too_large`: recorded, never copied. A file Chatwork
//! refuses (403/404 for its URL) is `failed` with the reason. Any other failure of the
//! download or the store leaves it `pending` with one more attempt counted, and after
//! [`MAX_COPY_ATTEMPTS`] it is `failed`, so no file is asked for forever. A file that is
//! `stored` is never copied again. The room's files count as synced once none is left
//! `pending`.

use tokio::time::Instant;

use super::{PartError, PartReport, Target, as_int, clip};
use crate::chatwork::{ChatworkClient, ChatworkError, DownloadError};
use crate::files::{FileCopies, storage_key};
use crate::jobs::ItemRun;

/// Download URLs one copy may ask for (the first and two more after expiries).
pub const URLS_PER_COPY: u32 = 3;
/// Copies of one file (over several syncs) before it is `failed`.
pub const MAX_COPY_ATTEMPTS: i32 = 5;
/// Files copied per item at most; the rest wait for the next files sync.
const COPIES_PER_ITEM: i64 = 20;
/// Time a copy needs left before the item's deadline to start.
const COPY_MARGIN: std::time::Duration = std::time::Duration::from_secs(5);

const MAX_NAME_CHARS: usize = 255;
const MAX_FILENAME_CHARS: usize = 1_000;
const MAX_ERROR_CHARS: usize = 500;

pub(super) async fn sync(
    client: &ChatworkClient,
    item: &ItemRun,
    copies: Option<&FileCopies>,
    target: &Target,
) -> Result<Option<PartReport>, PartError> {
    let pool = &item.pool;
    let files = client
        .list_files(target.room_id, None, item.deadline)
        .await?;
    let listed: Vec<_> = files.iter().filter(|f| f.file_id > 0).collect();
    let ids: Vec<i64> = listed.iter().map(|f| f.file_id).collect();
    let accounts: Vec<i64> = listed.iter().map(|f| f.account.account_id).collect();
    let account_names: Vec<String> = listed
        .iter()
        .map(|f| clip(&f.account.name, MAX_NAME_CHARS))
        .collect();
    let message_ids: Vec<String> = listed
        .iter()
        .map(|f| f.message_id.clone().unwrap_or_default())
        .collect();
    let filenames: Vec<String> = listed
        .iter()
        .map(|f| {
            let name = clip(f.filename.trim(), MAX_FILENAME_CHARS);
            if name.is_empty() {
                format!("file-{}", f.file_id)
            } else {
                name
            }
        })
        .collect();
    let sizes: Vec<i64> = listed.iter().map(|f| f.filesize.max(0)).collect();
    let uploaded: Vec<chrono::DateTime<chrono::Utc>> =
        listed.iter().map(|f| f.uploaded_at()).collect();
    // Without a store, no file is over any cap: the content is simply not copied.
    let cap = copies.map_or(i64::MAX, |c| i64::try_from(c.max_bytes).unwrap_or(i64::MAX));
    sqlx::query!(
        r#"INSERT INTO chatwork_files AS f
                  (file_id, chatwork_room_id, room_id, account_id, account_name, message_id,
                   filename, filesize, upload_time, storage_state)
           SELECT t.file_id, $1, $2, t.account_id, t.account_name, nullif(t.message_id, ''),
                  t.filename, t.filesize, t.upload_time,
                  CASE WHEN t.filesize > $10 THEN 'too_large' ELSE 'pending' END
             FROM UNNEST($3::int8[], $4::int8[], $5::text[], $6::text[], $7::text[],
                         $8::int8[], $9::timestamptz[])
                    AS t(file_id, account_id, account_name, message_id, filename, filesize,
                         upload_time)
           ON CONFLICT (file_id) DO UPDATE
              SET account_id = excluded.account_id, account_name = excluded.account_name,
                  message_id = excluded.message_id, filename = excluded.filename,
                  filesize = excluded.filesize, upload_time = excluded.upload_time,
                  storage_state = CASE WHEN f.storage_state = 'pending' AND excluded.filesize > $10
                                       THEN 'too_large' ELSE f.storage_state END,
                  updated_at = now()
            WHERE (f.account_id, f.account_name, f.message_id, f.filename, f.filesize,
                   f.upload_time)
                  IS DISTINCT FROM
                  (excluded.account_id, excluded.account_name, excluded.message_id,
                   excluded.filename, excluded.filesize, excluded.upload_time)
               OR (f.storage_state = 'pending' AND excluded.filesize > $10)"#,
        target.room,
        target.room_id,
        &ids,
        &accounts,
        &account_names,
        &message_ids,
        &filenames,
        &sizes,
        &uploaded,
        cap,
    )
    .execute(pool)
    .await?;

    let mut report = PartReport {
        listed: listed.len() as i64,
        ..PartReport::default()
    };
    if let Some(copies) = copies {
        let pending = sqlx::query!(
            r#"SELECT file_id, copy_attempts FROM chatwork_files
                WHERE chatwork_room_id = $1 AND storage_state = 'pending'
                ORDER BY upload_time, file_id
                LIMIT $2"#,
            target.room,
            COPIES_PER_ITEM,
        )
        .fetch_all(pool)
        .await?;
        for file in pending {
            if item.deadline.saturating_duration_since(Instant::now()) < COPY_MARGIN
                || item.is_canceled().await?
            {
                break;
            }
            let copy = copy_one(client, copies, target.room_id, file.file_id, item.deadline).await;
            record(pool, file.file_id, file.copy_attempts, &copy, &mut report).await?;
            if let CopyOutcome::Retry(e) = copy {
                // Chatwork itself failed (5xx, timeouts, the budget): the item goes back to
                // its queue, and what was copied so far stays copied.
                return Err(PartError::Chatwork(e));
            }
        }
    } else if !ids.is_empty() {
        tracing::debug!(
            room_id = target.room_id,
            "no file storage configured: file content is not copied"
        );
    }
    let row = sqlx::query!(
        r#"WITH left_over AS (
               SELECT count(*) AS n FROM chatwork_files
                WHERE chatwork_room_id = $1 AND storage_state = 'pending'
           ), room AS (
               -- Without storage nothing is ever copied: the metadata is what syncs.
               UPDATE chatwork_rooms
                  SET synced_file_num = CASE WHEN (SELECT n FROM left_over) = 0 OR NOT $3
                                             THEN coalesce($2, synced_file_num)
                                             ELSE synced_file_num END,
                      files_synced_at = now(), updated_at = now()
                WHERE id = $1
           )
           SELECT n AS "pending!" FROM left_over"#,
        target.room,
        as_int(target.listed_count),
        copies.is_some(),
    )
    .fetch_one(pool)
    .await?;
    report.pending = row.pending;
    Ok(Some(report))
}

/// How one copy ended.
#[derive(Debug)]
enum CopyOutcome {
    Stored {
        key: String,
        bytes: i64,
        sha256: String,
    },
    TooLarge,
    /// For good: Chatwork refuses the file.
    Failed(String),
    /// Not this time (a download or the store failed): counted, tried again later.
    Again(String),
    /// Chatwork failed in a way another delivery may not: the item is retried.
    Retry(ChatworkError),
}

async fn copy_one(
    client: &ChatworkClient,
    copies: &FileCopies,
    room_id: i64,
    file_id: i64,
    deadline: Instant,
) -> CopyOutcome {
    let mut last = String::new();
    for url_number in 1..=URLS_PER_COPY {
        let detail = match client.file_download_url(room_id, file_id, deadline).await {
            Ok(detail) => detail,
            Err(e) if e.is_room_unavailable() => {
                return CopyOutcome::Failed(format!("Chatwork refuses the file: {e}"));
            }
            Err(e) if e.is_retryable() => return CopyOutcome::Retry(e),
            Err(e) => {
                return CopyOutcome::Failed(format!("Chatwork gives no download for it: {e}"));
            }
        };
        if u64::try_from(detail.file.filesize).is_ok_and(|n| n > copies.max_bytes) {
            return CopyOutcome::TooLarge;
        }
        let Some(url) = detail.download_url else {
            return CopyOutcome::Failed("Chatwork gave no download URL".into());
        };
        match client.download(&url, copies.max_bytes, deadline).await {
            Ok(downloaded) => {
                let key = storage_key(room_id, file_id);
                let bytes = downloaded.bytes.len() as i64;
                return match copies.store.put(&key, downloaded.bytes).await {
                    Ok(()) => CopyOutcome::Stored {
                        key,
                        bytes,
                        sha256: downloaded.sha256,
                    },
                    Err(e) => CopyOutcome::Again(e.to_string()),
                };
            }
            Err(DownloadError::TooLarge { .. }) => return CopyOutcome::TooLarge,
            Err(e) if e.wants_new_url() => {
                tracing::info!(
                    room_id,
                    file_id,
                    url_number,
                    "the download URL was refused (expired); asking for a new one"
                );
                last = e.to_string();
            }
            Err(e) => return CopyOutcome::Again(e.to_string()),
        }
    }
    CopyOutcome::Again(format!(
        "{URLS_PER_COPY} download URLs in a row were refused: {last}"
    ))
}

/// Writes how a copy ended on the file's row.
async fn record(
    pool: &sqlx::PgPool,
    file_id: i64,
    attempts: i32,
    copy: &CopyOutcome,
    report: &mut PartReport,
) -> Result<(), sqlx::Error> {
    let error = |text: &str| clip(text, MAX_ERROR_CHARS);
    match copy {
        CopyOutcome::Stored { key, bytes, sha256 } => {
            sqlx::query!(
                r#"UPDATE chatwork_files
                      SET storage_state = 'stored', storage_key = $2, stored_bytes = $3,
                          sha256 = $4, stored_at = now(), storage_error = NULL,
                          copy_attempts = copy_attempts + 1, updated_at = now()
                    WHERE file_id = $1 AND storage_state = 'pending'"#,
                file_id,
                key,
                bytes,
                sha256,
            )
            .execute(pool)
            .await?;
            report.copied += 1;
            metrics::counter!("files_copied").increment(1);
        }
        CopyOutcome::TooLarge => {
            sqlx::query!(
                r#"UPDATE chatwork_files
                      SET storage_state = 'too_large', copy_attempts = copy_attempts + 1,
                          updated_at = now()
                    WHERE file_id = $1 AND storage_state = 'pending'"#,
                file_id,
            )
            .execute(pool)
            .await?;
            report.too_large += 1;
            metrics::counter!("files_too_large").increment(1);
        }
        CopyOutcome::Failed(why) => {
            fail(pool, file_id, &error(why)).await?;
            report.failed += 1;
        }
        CopyOutcome::Again(why) if attempts + 1 >= MAX_COPY_ATTEMPTS => {
            let why = format!("{} copies failed; the last: {why}", attempts + 1);
            fail(pool, file_id, &error(&why)).await?;
            report.failed += 1;
        }
        CopyOutcome::Again(why) => {
            tracing::warn!(file_id, error = %why, "a file's copy failed; the next files sync tries again");
            sqlx::query!(
                r#"UPDATE chatwork_files
                      SET copy_attempts = copy_attempts + 1, updated_at = now()
                    WHERE file_id = $1 AND storage_state = 'pending'"#,
                file_id,
            )
            .execute(pool)
            .await?;
        }
        CopyOutcome::Retry(_) => {}
    }
    Ok(())
}

async fn fail(pool: &sqlx::PgPool, file_id: i64, why: &str) -> Result<(), sqlx::Error> {
    tracing::warn!(file_id, error = %why, "a file cannot be copied");
    metrics::counter!("files_failed").increment(1);
    sqlx::query!(
        r#"UPDATE chatwork_files
              SET storage_state = 'failed', storage_error = $2,
                  copy_attempts = copy_attempts + 1, updated_at = now()
            WHERE file_id = $1 AND storage_state = 'pending'"#,
        file_id,
        why,
    )
    .execute(pool)
    .await?;
    Ok(())
}
