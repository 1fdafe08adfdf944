//! The audit log: one `audit_logs` row per mutation made through the API, written in
//! the mutation's own transaction where it has one, so a change and its record stand or
//! fall together.

use serde_json::Value;
use sqlx::PgExecutor;

use super::auth::Caller;
use super::extract::RequestId;

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
