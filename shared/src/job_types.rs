//! The job types of cwsync: the one list. Everything that differs per job type and is not
//! the type's own module is derived from [`registry`]: the queue names and their URL
//! settings (`QueueName`, `QueueConfig`), the queues' set-up (SQS and embedded), the API
//! function's check of its settings, the local runner's consumers and job view, the
//! values the API accepts for `type` and the OpenAPI document's result schemas.
//!
//! See the `jobs` module for the steps of adding a job type.

use utoipa::PartialSchema;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{OneOfBuilder, Schema};

use crate::jobs::{JobSpec, JobType, Registry};
use crate::summary::SummaryDraft;
use crate::sync::messages::MessagesSync;
use crate::sync::rooms::RoomsSync;

/// Every job type cwsync runs.
pub fn registry() -> Registry {
    Registry::new()
        .register::<RoomsSync>()
        .register::<MessagesSync>()
        .register::<SummaryDraft>()
}

/// The `job_type` values, as the OpenAPI document lists them.
pub fn names() -> Vec<JobType> {
    registry().job_types()
}

/// The OpenAPI schema of a job's `result`: one of the types' results, told apart by the
/// job's `type`, or `null` before the job has one.
pub fn result_schema() -> RefOr<Schema> {
    fn of<K: JobSpec>() -> RefOr<Schema>
    where
        K::Result: PartialSchema,
    {
        K::Result::schema()
    }
    OneOfBuilder::new()
        .item(of::<RoomsSync>())
        .item(of::<MessagesSync>())
        .item(of::<SummaryDraft>())
        .item(
            utoipa::openapi::ObjectBuilder::new().schema_type(utoipa::openapi::schema::Type::Null),
        )
        .description(Some(
            "Derived from the job's items; its shape is the job type's: a rooms sync's, a \
             messages sync's or a summary draft's.",
        ))
        .into()
}
