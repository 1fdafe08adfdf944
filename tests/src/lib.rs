//! cwsync's test harness, in the spirit of zero2prod's `spawn_app`:
//!
//! - [`TestDb`]: a freshly created and migrated database per test on the server at
//!   `DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`), so tests run
//!   in parallel and never see each other's rows; dropped again when the test ends.
//! - [`sqs_emulator`]: moto's SQS-compatible server (S3, KMS and Secrets Manager too),
//!   started once per test process on a free loopback port.
//! - [`spawn_app`]: the API router served on a free loopback port over a fresh database
//!   and embedded queues, with bearer tokens; [`gateway_app`]: the same router behind
//!   `lambda_http`'s adapter, fed API Gateway v2 events with JWT authorizer claims.
//! - [`LambdaEmulator`]: `cargo lambda watch`, to invoke the function binaries with real
//!   events.
//! - [`FakeModel`]: a fake OpenAI-compatible chat-completions server, for summaries.
//! - [`AwsRecorder`]: a proxy in front of moto that keeps the AWS calls made through it.
//! - [`TcpProxy`]: a proxy a test can cut, to make Postgres unreachable for the code
//!   under test.
//! - [`settled_room`]: a fake Chatwork room with a settled history.
//! - [`Browser`]: a headless Chromium driven over WebDriver; [`FakeOidc`]: a stand-in
//!   identity provider for the console's sign-in.

mod app;
mod aws_recorder;
mod browser;
mod db;
mod lambda;
mod model;
mod oidc;
mod proxy;
mod rooms;
mod sqs;

pub use app::{
    ApiResponse, Body, GatewayApp, TEST_JWT_SECRET, TestApp, Who, gateway_app, gateway_app_with,
    gateway_claims, gateway_event, response_of, spawn_app, spawn_app_configured,
    spawn_app_connecting, spawn_app_on, spawn_app_with, spawn_app_with_connections,
};
pub use aws_recorder::{AwsCall, AwsRecorder};
pub use browser::{Browser, screenshot_dir};
pub use db::{TEST_DB_PREFIX, TestDb, eventually};
pub use lambda::LambdaEmulator;
pub use model::{FakeModel, ModelReply, ModelRequest};
pub use oidc::FakeOidc;
pub use proxy::{TcpProxy, WireCounts};
pub use rooms::{now_secs, settled_room};
pub use sqs::{
    SqsEmulator, create_test_bucket, create_test_queues, kms_client, s3_client, sqs_client,
    sqs_emulator,
};

/// The workspace's root folder (where `Cargo.toml` and `.venv` live).
pub fn workspace_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate sits inside the workspace")
        .to_path_buf()
}
