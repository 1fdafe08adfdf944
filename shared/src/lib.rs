//! cwsync's shared library. Every Lambda function, the local runner and the tests are thin
//! shells over what is here, so the same code runs in all three (docs/architecture.md
//! draws the whole and says where each part lives).
//!
//! - [`config`]: the environment and the parsers every module's settings share; each
//!   module reads its own settings (`db::DatabaseConfig`, `summary::SummaryConfig`, ...).
//! - [`db`]: the Postgres pool and the embedded migrations.
//! - [`jobs`]: the job state machine, job types, starting, running, the dead-letter
//!   consumer and the sweeper.
//! - [`queue`]: the FIFO queues (SQS and embedded) and the local event source.
//! - [`consumer`]: what processes a queue's batches: the FIFO batch runtime
//!   (skip-group-on-error) and, out of Lambda, the event source.
//! - [`sync`], [`summary`]: the job types; [`job_types`]: the one list of them.
//! - [`schedule`]: the scheduled tasks (syncs, sweeper, retention).
//! - [`api`]: the HTTP API as an axum router.
//! - [`chatwork`]: the Chatwork API client and the token's shared rate budget.
//! - [`files`]: where copied Chatwork files are kept (S3, or a folder locally).
//! - [`webhook`]: Chatwork's webhook deliveries, verified and stored.
//! - [`telemetry`]: logging set-up; [`trace`]: the X-Ray trace carried across the
//!   queues; [`text`]: small helpers for messages.

pub mod api;
pub mod chatwork;
pub mod config;
pub mod connections;
pub mod consumer;
pub mod db;
pub mod files;
pub mod job_types;
pub mod jobs;
pub mod queue;
pub mod retry;
pub mod schedule;
pub mod summary;
pub mod sync;
pub mod telemetry;
pub mod text;
pub mod trace;
pub mod webhook;
