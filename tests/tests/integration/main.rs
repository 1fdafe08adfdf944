//! One test binary for the cross-crate tests (one link instead of one per file).

mod api;
mod harness;
mod health;
mod job_core;
mod schema;
