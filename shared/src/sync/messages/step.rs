//! The first step of a sync of all rooms: a room check in the consumer (so the HTTP
//! answer never waits on Chatwork), whose planned rooms join the same job as its items.
//! A person's sync plans every room that needs a fetch, whatever the budget has left
//! now: the items wait for the shared budget as it reopens.

use super::{ItemReport, MessagesSync, planned_items};
use crate::chatwork::RequestMeter;
use crate::jobs::{ItemError, ItemOutcome, ItemRun, Outcome};
use crate::sync::check::{self, CheckError, CheckTrigger};
use crate::sync::{SyncContext, chatwork_failure};

/// Runs the check and plans its rooms. A room list Chatwork does not give ends the step
/// as any Chatwork error ends an item (retried, or failed with why), and with it the job.
pub(super) async fn run(
    context: &SyncContext,
    item: &ItemRun,
) -> Result<Outcome<MessagesSync>, ItemError> {
    let meter = RequestMeter::default();
    let settings = &context.settings.room_check;
    let check = match check::run(
        &item.pool,
        &context.connections,
        Some(&meter),
        settings,
        CheckTrigger::Sync,
    )
    .await
    {
        Ok(check) => check,
        Err(CheckError::Chatwork { error, .. }) => {
            return Err(chatwork_failure(&item.pool, None, error).await);
        }
        Err(e) => return Err(ItemError::Retry(e.into())),
    };
    let items = check.planned().iter().flat_map(planned_items).collect();
    let report = check
        .record(&item.pool, settings, Some(item.job_id), false)
        .await?;
    Ok(ItemOutcome::Planned {
        result: ItemReport::Check {
            check: report,
            requests: meter.snapshot().requests as i64,
        },
        items,
    })
}
