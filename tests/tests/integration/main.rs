//! One test binary for the cross-crate tests (one link instead of one per file).

mod chatwork;
mod harness;
mod health;
mod schema;
