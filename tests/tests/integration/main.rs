//! One test binary for the cross-crate tests (one link instead of one per file).

mod api;
mod chatwork;
mod connections;
mod console;
mod harness;
mod health;
mod job_core;
mod pool;
mod schema;
mod summary;
mod sync;
