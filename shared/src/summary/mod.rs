//! `summary_draft`: a draft summary of what was said with one company over a period.
//!
//! The job has one item. Its handler:
//!
//! 1. returns the draft an earlier delivery of the same job stored, if there is one (so a
//!    redelivered message neither drafts nor spends model tokens twice);
//! 2. reads the company's messages of the period (`company_id`, `periodStart <= send_time
//!    < periodEnd`), room by room in time order, and prepares them ([`transcript`]):
//!    markup resolved ([`markup`]), e-mail addresses and phone numbers masked ([`mask`]);
//!    and the Chatwork tasks of the company's rooms that were opened or done in the
//!    period or are overdue at its end;
//! 3. hands them to the process's [`Summarizer`]: the built-in [`extractive`] one, or an
//!    OpenAI-compatible model ([`chat_model`], over the HTTP client [`chat_client`]) when
//!    one is configured ([`SummaryConfig`]). Either writes in the language and time zone
//!    the settings give ([`locale`]). The summarizer asks the [`Checkpoint`] whether the
//!    job was canceled between its chunks;
//! 4. stores the draft in `summary_drafts` in one statement that writes only while the
//!    job is open and at most one draft per job (a unique index on `job_id`), and
//!    returns it as the job's result `{draft: {id, periodStart, periodEnd, content,
//!    sourceLinks, model, tokenUsage}}`.
//!
//! A period without messages ends completed, with a draft that says so.

pub mod chat_client;
pub mod chat_model;
mod config;
pub mod extractive;
pub mod locale;
pub mod markup;
pub mod mask;
pub mod transcript;

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use tokio::time::Instant;
use uuid::Uuid;

use crate::jobs::{
    self, BatchConnection, Begin, ErrorInfo, ItemError, ItemOutcome, ItemRun, JobItem, JobKind,
    JobSpec, JobType, Outcome, PlannedItem,
};
use crate::queue::QueueName;
use chat_client::{ChatModelSettings, ChatModelSetupError, TokenUsage};
use chat_model::ChatModel;
pub use config::{SummaryConfig, SummaryModelConfig};
use transcript::{SourceLink, StoredMessage, StoredTask, Transcript};

/// The summary draft job type.
pub struct SummaryDraft;

/// `{companyId, periodStart, periodEnd}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SummaryDraftPayload {
    pub company_id: Uuid,
    pub period_start: DateTime<Utc>,
    pub period_end: DateTime<Utc>,
}

/// The queue message: `{v:1, jobId}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SummaryDraftMessage {}

/// The item key of a summary's only item.
pub const ITEM_KEY: &str = "draft";

/// The result of a summary draft (and of its one item): the draft, `null` until there is
/// one.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SummaryDraftResult {
    #[schema(required = true)]
    pub draft: Option<DraftResult>,
}

impl JobSpec for SummaryDraft {
    const TYPE: JobType = JobType::new("summary_draft");
    const QUEUE: QueueName = QueueName::work("summary-draft");
    const LABEL: &'static str = "summary draft";
    type Payload = SummaryDraftPayload;
    type Message = SummaryDraftMessage;
    type ItemResult = SummaryDraftResult;
    type Result = SummaryDraftResult;

    /// One active draft per company and period, to the microsecond a period keeps.
    fn active_key(payload: &SummaryDraftPayload) -> String {
        format!(
            "company-{}:{}:{}",
            payload.company_id,
            payload.period_start.timestamp_micros(),
            payload.period_end.timestamp_micros()
        )
    }

    fn item_key(_: &SummaryDraftMessage) -> String {
        ITEM_KEY.into()
    }

    async fn plan(
        _pool: &PgPool,
        payload: &SummaryDraftPayload,
    ) -> Result<Vec<PlannedItem<SummaryDraftMessage>>, sqlx::Error> {
        Ok(vec![PlannedItem::work(
            SummaryDraftMessage {},
            format!("company-{}", payload.company_id),
        )])
    }

    /// The item's own result.
    fn summarize(items: &[JobItem<SummaryDraftMessage, SummaryDraftResult>]) -> SummaryDraftResult {
        items
            .iter()
            .find_map(|i| i.result.clone())
            .unwrap_or_default()
    }

    fn describe(result: &SummaryDraftResult) -> String {
        match &result.draft {
            Some(draft) => format!("draft {}", draft.id),
            None => "no draft".into(),
        }
    }
}

/// A draft as a summarizer writes it.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub content: String,
    /// The messages the draft's points come from, in the order the draft cites them.
    pub source_links: Vec<SourceLink>,
    /// `None` for the extractive summarizer.
    pub token_usage: Option<TokenUsage>,
    /// How many parts the messages were read in (rooms for the extractive summarizer,
    /// chunks for a model).
    pub chunks: usize,
}

/// Why a summarizer stopped without a draft.
#[derive(Debug, thiserror::Error)]
pub enum SummarizeError {
    /// The job was canceled; nothing more is done.
    #[error("the job was canceled")]
    Canceled,
    /// Worth another delivery (the model was unavailable, time ran out).
    #[error("{0:#}")]
    Retry(anyhow::Error),
    /// Cannot succeed by trying again (the model refused the request or the key).
    #[error("{}: {}", .0.name, .0.message)]
    Fail(ErrorInfo),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

/// What a summarizer asks while it works.
#[async_trait]
pub trait Checkpoint: Send + Sync {
    /// Whether the job was canceled (asked between chunks).
    async fn canceled(&self) -> Result<bool, sqlx::Error>;
    /// When the invocation's time is up.
    fn deadline(&self) -> Instant;
}

#[async_trait]
impl Checkpoint for ItemRun {
    async fn canceled(&self) -> Result<bool, sqlx::Error> {
        self.is_canceled().await
    }

    fn deadline(&self) -> Instant {
        self.deadline
    }
}

/// Writes a draft of a transcript.
#[async_trait]
pub trait Summarizer: Send + Sync + std::fmt::Debug {
    /// What `summary_drafts.model` records: `extractive`, or the model's name.
    fn model(&self) -> &str;

    async fn summarize(
        &self,
        transcript: &Transcript,
        checkpoint: &dyn Checkpoint,
    ) -> Result<Summary, SummarizeError>;
}

/// What the summary consumer runs with: the process's summarizer.
#[derive(Debug, Clone)]
pub struct SummaryContext {
    pub summarizer: Arc<dyn Summarizer>,
}

impl SummaryContext {
    /// The built-in extractive summarizer, drafting in the default style (the language
    /// of the messages, times in Asia/Tokyo).
    pub fn extractive() -> Self {
        Self::extractive_in(locale::DraftStyle::default())
    }

    /// The built-in extractive summarizer, drafting in `style`.
    pub fn extractive_in(style: locale::DraftStyle) -> Self {
        Self {
            summarizer: Arc::new(extractive::Extractive { style }),
        }
    }

    /// The model `config` names, else the extractive summarizer; either drafts in the
    /// language and time zone `config` sets.
    pub fn from_config(config: &SummaryConfig) -> Result<Self, ChatModelSetupError> {
        match ChatModelSettings::from_config(config) {
            None => Ok(Self::extractive_in(config.style)),
            Some(settings) => Ok(Self {
                summarizer: Arc::new(ChatModel::new(settings)?),
            }),
        }
    }

    /// `extractive`, or the model's name.
    pub fn describe(&self) -> &str {
        self.summarizer.model()
    }
}

/// A stored draft as the job's result shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DraftResult {
    pub id: Uuid,
    pub period_start: DateTime<Utc>,
    pub period_end: DateTime<Utc>,
    pub content: String,
    #[schema(value_type = Vec<SourceLink>)]
    pub source_links: serde_json::Value,
    pub model: String,
    /// `null` for the extractive summarizer.
    #[schema(value_type = Option<TokenUsage>)]
    pub token_usage: Option<serde_json::Value>,
}

impl JobKind for SummaryDraft {
    type Context = SummaryContext;
    type Read = ();

    async fn begin(
        _context: &SummaryContext,
        db: &BatchConnection,
        job_id: Uuid,
        item_key: &str,
        _message: &SummaryDraftMessage,
    ) -> Result<Begin, sqlx::Error> {
        jobs::begin_item(db, job_id, item_key).await
    }

    async fn run(
        context: &SummaryContext,
        item: &ItemRun,
        _message: SummaryDraftMessage,
        _read: (),
    ) -> Result<Outcome<Self>, ItemError> {
        let payload: SummaryDraftPayload = item.payload()?;
        let pool = &item.pool;
        if let Some(draft) = stored_draft(pool, item.job_id).await? {
            tracing::info!(draft_id = %draft.id, "already drafted by an earlier delivery");
            return Ok(completed(draft, 0));
        }
        let Some(company) = sqlx::query_scalar!(
            "SELECT name FROM companies WHERE id = $1",
            payload.company_id
        )
        .fetch_optional(pool)
        .await?
        else {
            return Err(ItemError::Fail(ErrorInfo::new(
                "CompanyNotFound",
                format!("company {} no longer exists", payload.company_id),
            )));
        };
        let messages = gather(pool, &payload).await?;
        let tasks = gather_tasks(pool, &payload).await?;
        let transcript =
            Transcript::prepare(&company, payload.period_start, payload.period_end, messages)
                .with_tasks(tasks);
        let count = transcript.message_count();
        if item.is_canceled().await? {
            return Ok(ItemOutcome::Canceled);
        }
        let summary = match context.summarizer.summarize(&transcript, item).await {
            Ok(summary) => summary,
            Err(SummarizeError::Canceled) => return Ok(ItemOutcome::Canceled),
            Err(SummarizeError::Retry(e)) => return Err(ItemError::Retry(e)),
            Err(SummarizeError::Fail(info)) => return Err(ItemError::Fail(info)),
            Err(SummarizeError::Database(e)) => return Err(ItemError::Retry(e.into())),
        };
        let model = context.summarizer.model();
        let Some(draft) = store(item, &payload, &summary, model).await? else {
            return Ok(ItemOutcome::Canceled);
        };
        metrics::counter!("summary_drafts_written", "summarizer" => summarizer_kind(model))
            .increment(1);
        if let Some(usage) = &summary.token_usage {
            metrics::counter!("summary_model_tokens").increment(usage.total_tokens);
        }
        tracing::info!(
            draft_id = %draft.id,
            messages = count,
            rooms = transcript.rooms.len(),
            chunks = summary.chunks,
            model,
            "summary drafted"
        );
        Ok(completed(draft, count))
    }
}

fn summarizer_kind(model: &str) -> &'static str {
    if model == extractive::MODEL_NAME {
        "extractive"
    } else {
        "model"
    }
}

fn completed(draft: DraftResult, messages: usize) -> Outcome<SummaryDraft> {
    ItemOutcome::Completed {
        fetched: i32::try_from(messages).unwrap_or(i32::MAX),
        result: SummaryDraftResult { draft: Some(draft) },
    }
}

/// The company's messages of the period, room by room (by name in byte order, so that the
/// order does not depend on the database's collation, then id), each room's in time order.
async fn gather(
    pool: &PgPool,
    payload: &SummaryDraftPayload,
) -> Result<Vec<StoredMessage>, sqlx::Error> {
    sqlx::query_as!(
        StoredMessage,
        r#"SELECT m.room_id, r.name AS room_name, m.message_id, m.account_id,
                  -- A webhook's message before a fetch named its author.
                  coalesce(m.account_name, 'ID:' || m.account_id) AS "account_name!",
                  m.body, m.send_time
             FROM messages m
             JOIN chatwork_rooms r ON r.id = m.chatwork_room_id
            WHERE m.company_id = $1 AND m.send_time >= $2 AND m.send_time < $3
            ORDER BY r.name COLLATE "C", m.room_id, m.send_time, m.message_seq"#,
        payload.company_id,
        payload.period_start,
        payload.period_end,
    )
    .fetch_all(pool)
    .await
}

/// The most tasks a draft reads (it lists at most `TASKS_PER_GROUP` of each group, and
/// counts the rest of those it read).
const MAX_TASKS: i64 = 500;

/// The Chatwork tasks of the company's rooms (linked now) that the period may have
/// something to say of: first seen before its end, and seen in it (first, or done), or
/// with a deadline before its end while open at the end. [`Transcript::with_tasks`]
/// sorts them into the draft's lists.
async fn gather_tasks(
    pool: &PgPool,
    payload: &SummaryDraftPayload,
) -> Result<Vec<StoredTask>, sqlx::Error> {
    sqlx::query_as!(
        StoredTask,
        r#"SELECT t.task_id, t.room_id, r.name AS room_name, t.account_name,
                  t.assigned_by_account_name, t.body, t.limit_type, t.limit_time, t.status,
                  t.first_seen_at, t.done_seen_at
             FROM chatwork_tasks t
             JOIN chatwork_rooms r ON r.id = t.chatwork_room_id
            WHERE t.chatwork_room_id IN (SELECT l.chatwork_room_id FROM company_room_links l
                                          WHERE l.company_id = $1)
              AND t.first_seen_at < $3
              AND (t.first_seen_at >= $2
                   OR (t.done_seen_at >= $2 AND t.done_seen_at < $3)
                   OR (t.limit_time < $3 AND (t.status = 'open' OR t.done_seen_at >= $3)))
            ORDER BY t.limit_time NULLS LAST, t.task_id
            LIMIT $4"#,
        payload.company_id,
        payload.period_start,
        payload.period_end,
        MAX_TASKS,
    )
    .fetch_all(pool)
    .await
}

/// The draft a delivery of this job stored.
async fn stored_draft(pool: &PgPool, job_id: Uuid) -> Result<Option<DraftResult>, sqlx::Error> {
    sqlx::query_as!(
        DraftResult,
        r#"SELECT id, period_start, period_end, content, source_links, model, token_usage
             FROM summary_drafts WHERE job_id = $1"#,
        job_id
    )
    .fetch_optional(pool)
    .await
}

/// Stores the draft unless the job was canceled (or finished) meanwhile; a draft this
/// job already has (a concurrent delivery's) is kept and returned instead. `None` when
/// the job is no longer open.
async fn store(
    item: &ItemRun,
    payload: &SummaryDraftPayload,
    summary: &Summary,
    model: &str,
) -> Result<Option<DraftResult>, sqlx::Error> {
    let links = serde_json::to_value(&summary.source_links).expect("links serialize");
    let usage = summary
        .token_usage
        .map(|u| serde_json::to_value(u).expect("usage serializes"));
    let row = sqlx::query!(
        r#"WITH job AS (
               SELECT 1 FROM jobs WHERE id = $1 AND status IN ('queued', 'processing')
           ), inserted AS (
               INSERT INTO summary_drafts (company_id, job_id, period_start, period_end,
                                           content, source_links, model, token_usage)
               SELECT $2, $1, $3, $4, $5, $6, $7, $8
                WHERE EXISTS (SELECT 1 FROM job)
               ON CONFLICT (job_id) WHERE job_id IS NOT NULL DO NOTHING
               RETURNING id
           )
           SELECT EXISTS (SELECT 1 FROM job) AS "job_open!",
                  (SELECT id FROM inserted) AS "inserted?""#,
        item.job_id,
        payload.company_id,
        payload.period_start,
        payload.period_end,
        summary.content,
        links,
        model,
        usage,
    )
    .fetch_one(&item.pool)
    .await?;
    if !row.job_open {
        return Ok(None);
    }
    if row.inserted.is_none() {
        tracing::info!("another delivery of this job stored its draft first; keeping that one");
    }
    stored_draft(&item.pool, item.job_id).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_a_microsecond_apart_are_different_work() {
        let start = DateTime::from_timestamp_micros(1_700_000_000_000_000).unwrap();
        let end = start + chrono::TimeDelta::days(1);
        let a = SummaryDraftPayload {
            company_id: Uuid::nil(),
            period_start: start,
            period_end: end,
        };
        let b = SummaryDraftPayload {
            period_start: start + chrono::TimeDelta::microseconds(1),
            ..a.clone()
        };
        assert_ne!(SummaryDraft::active_key(&a), SummaryDraft::active_key(&b));
        assert_eq!(
            SummaryDraft::active_key(&a),
            SummaryDraft::active_key(&a.clone())
        );
    }
}
