//! The HTTP API through the real router, over real Postgres and the embedded
//! queue: over HTTP with bearer tokens, and as API Gateway v2 events through
//! `lambda_http` with authorizer claims. Tests written against [`Api`] run both ways.

mod audit;
mod companies;
mod console;
mod gateway;
mod jobs;
mod matrix;
mod openapi;
mod room_extras;
mod rooms;
mod schedules;
mod seed;
mod summaries;
mod sync;
mod validation;
mod wire;

use std::future::Future;

use cwsync::queue::EmbeddedQueues;
use cwsync_tests::{ApiResponse, Body, GatewayApp, TestApp, Who};
use serde_json::Value;
use sqlx::PgPool;

/// What a test needs of an API, whichever way requests reach it.
pub trait Api {
    fn pool(&self) -> &PgPool;
    fn queues(&self) -> &EmbeddedQueues;
    fn send(
        &self,
        who: &Who,
        method: &str,
        path: &str,
        body: Option<Body>,
        headers: &[(&str, &str)],
    ) -> impl Future<Output = ApiResponse>;

    fn call(
        &self,
        who: &Who,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> impl Future<Output = ApiResponse> {
        self.send(who, method, path, body.map(Body::Json), &[])
    }
}

impl Api for TestApp {
    fn pool(&self) -> &PgPool {
        &self.db.pool
    }

    fn queues(&self) -> &EmbeddedQueues {
        &self.queues
    }

    fn send(
        &self,
        who: &Who,
        method: &str,
        path: &str,
        body: Option<Body>,
        headers: &[(&str, &str)],
    ) -> impl Future<Output = ApiResponse> {
        TestApp::send(self, who, method, path, body, headers)
    }
}

impl Api for GatewayApp {
    fn pool(&self) -> &PgPool {
        &self.db.pool
    }

    fn queues(&self) -> &EmbeddedQueues {
        &self.queues
    }

    fn send(
        &self,
        who: &Who,
        method: &str,
        path: &str,
        body: Option<Body>,
        headers: &[(&str, &str)],
    ) -> impl Future<Output = ApiResponse> {
        GatewayApp::send(self, who, method, path, body, headers)
    }
}

/// Runs an `async fn(&impl Api)` test over HTTP and through the Lambda adapter.
#[macro_export]
macro_rules! both_ways {
    ($name:ident) => {
        mod $name {
            #[tokio::test]
            async fn over_http() {
                let app = cwsync_tests::spawn_app().await;
                super::$name(&app).await;
            }

            #[tokio::test]
            async fn through_lambda() {
                let app = cwsync_tests::gateway_app().await;
                super::$name(&app).await;
            }
        }
    };
}
