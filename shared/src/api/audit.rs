//! The audit log: one `audit_logs` row per mutation made through the API, written in
//! the mutation's own transaction where it has one, so a change and its record stand or
//! fall together.

use async_trait::async_trait;
use serde_json::Value;
use sqlx::{PgConnection, PgExecutor};

use super::auth::Caller;
use super::extract::RequestId;
use crate::jobs::{Job, JobRecord};

/// What an audit row says.
#[derive(Debug, Clone)]
pub(crate) struct AuditEntry<'a> {
    pub caller: &'a Caller,
    pub request_id: &'a RequestId,
    /// `<resource>.<verb>`: `chatwork_room.update`, `company_room.link`, `job.cancel`, ...
    pub action: &'a str,
    pub resource_type: &'static str,
    pub resource_id: String,
    pub old_values: Option<Value>,
    pub new_values: Option<Value>,
}

pub(crate) async fn record(
    executor: impl PgExecutor<'_>,
    entry: AuditEntry<'_>,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        r#"INSERT INTO audit_logs
               (actor, role, action, resource_type, resource_id, old_values, new_values, request_id)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"#,
        entry.caller.user_id,
        entry.caller.role.as_str(),
        entry.action,
        entry.resource_type,
        entry.resource_id,
        entry.old_values,
        entry.new_values,
        entry.request_id.as_str(),
    )
    .execute(executor)
    .await?;
    Ok(())
}

/// The audit row of a job change, written by the job core in the change's transaction.
pub(crate) struct JobAudit<'a> {
    pub caller: &'a Caller,
    pub request_id: &'a RequestId,
    pub action: String,
    pub old_values: Option<Value>,
    /// The new values, from the job as the change left it.
    pub new_values: fn(&Job) -> Value,
}

#[async_trait]
impl JobRecord for JobAudit<'_> {
    async fn write(&self, conn: &mut PgConnection, job: &Job) -> Result<(), sqlx::Error> {
        record(
            conn,
            AuditEntry {
                caller: self.caller,
                request_id: self.request_id,
                action: &self.action,
                resource_type: "job",
                resource_id: job.id.to_string(),
                old_values: self.old_values.clone(),
                new_values: Some((self.new_values)(job)),
            },
        )
        .await
    }
}
