//! The job types by their `job_type` value, for the code that handles jobs of any type
//! (the dead-letter consumer, the sweeper). Each type's line names its [`JobKind`].

use super::{ItemRecord, ItemStatus, JobType};

/// The result of a job of `job_type`, derived from its items.
pub fn summarize(job_type: JobType, items: &[ItemRecord]) -> serde_json::Value {
    match job_type {
        // Until a type has its own kind, its result is the generic item tally.
        JobType::ChatworkRoomsSync | JobType::ChatworkMessagesSync | JobType::SummaryDraft => {
            item_tally(items)
        }
    }
}

/// Counts of items by outcome, and each item's own result or error: a result any job
/// type can fall back on.
pub fn item_tally(items: &[ItemRecord]) -> serde_json::Value {
    let count = |status: ItemStatus| items.iter().filter(|i| i.status == status).count();
    serde_json::json!({
        "totalItems": items.len(),
        "completed": count(ItemStatus::Completed),
        "unchanged": count(ItemStatus::Unchanged),
        "failed": count(ItemStatus::Failed),
        "canceled": count(ItemStatus::Canceled),
        "items": items.iter().map(|i| serde_json::json!({
            "key": i.item_key,
            "status": i.status,
            "fetched": i.fetched,
            "result": i.result,
            "error": i.error,
        })).collect::<Vec<_>>(),
    })
}
