//! `summary_draft`: a draft summary of what was said with one company over a period.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use uuid::Uuid;

use crate::jobs::{ItemRecord, JobSpec, JobType, PlannedItem};

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

impl JobSpec for SummaryDraft {
    const TYPE: JobType = JobType::SummaryDraft;
    type Payload = SummaryDraftPayload;
    type Message = SummaryDraftMessage;

    /// One active draft per company and period.
    fn active_key(payload: &SummaryDraftPayload) -> String {
        format!(
            "company-{}:{}:{}",
            payload.company_id,
            payload.period_start.timestamp(),
            payload.period_end.timestamp()
        )
    }

    fn item_key(_: &SummaryDraftMessage) -> String {
        ITEM_KEY.into()
    }

    async fn plan(
        _pool: &PgPool,
        payload: &SummaryDraftPayload,
    ) -> Result<Vec<PlannedItem<SummaryDraftMessage>>, sqlx::Error> {
        Ok(vec![PlannedItem {
            message: SummaryDraftMessage {},
            group_id: format!("company-{}", payload.company_id),
        }])
    }

    /// `{draft: {...}}`: the item's own result.
    fn summarize(items: &[ItemRecord]) -> serde_json::Value {
        items
            .iter()
            .find_map(|i| i.result.clone())
            .unwrap_or_else(|| serde_json::json!({"draft": null}))
    }
}
