//! cwsync's shared library. Every Lambda function, the local runner and the tests are thin
//! shells over what is here, so the same code runs in all three (DESIGN section 1).
//!
//! - [`config`]: typed configuration from the environment.
//! - [`db`]: the Postgres pool and the embedded migrations.
//! - [`api`]: the HTTP API as an axum router.
//! - [`chatwork`]: the Chatwork API client and the token's shared rate budget.
//! - [`telemetry`]: logging set-up.

pub mod api;
pub mod chatwork;
pub mod config;
pub mod db;
pub mod telemetry;
