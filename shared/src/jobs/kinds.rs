//! The job types by their `job_type` value, for the code that handles jobs of any type
//! (the dead-letter consumer, the sweeper, cancellation). Each type's line names its spec.

use super::{ItemRecord, JobSpec, JobType};
use crate::summary::SummaryDraft;
use crate::sync::messages::MessagesSync;
use crate::sync::rooms::RoomsSync;

/// The result of a job of `job_type`, derived from its items.
pub fn summarize(job_type: JobType, items: &[ItemRecord]) -> serde_json::Value {
    match job_type {
        JobType::ChatworkRoomsSync => RoomsSync::summarize(items),
        JobType::ChatworkMessagesSync => MessagesSync::summarize(items),
        JobType::SummaryDraft => SummaryDraft::summarize(items),
    }
}
