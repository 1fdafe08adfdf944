use cwsync::jobs::JobSpec as _;
use cwsync::sync::rooms::RoomsSync;
use std::collections::HashMap;
use std::sync::Arc;

use cwsync::queue::{EmbeddedQueues, EmbeddedSettings, SqsQueues};
use cwsync_tests::{create_test_queues, spawn_app, spawn_app_with, sqs_client, sqs_emulator};

#[tokio::test]
async fn health_is_ok_when_the_database_and_queues_answer() {
    let app = spawn_app().await;
    let response = app.get("/api/health").await;
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["status"], "ok");
    assert_eq!(body["checks"]["database"], "ok");
    assert_eq!(body["checks"]["queue"], "ok");
}

#[tokio::test]
async fn health_pings_sqs_queues() {
    let queues = create_test_queues(30, 4).await;
    let app = spawn_app_with(
        Arc::new(queues),
        EmbeddedQueues::new(EmbeddedSettings::default()),
    )
    .await;
    let response = app.get("/api/health").await;
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["checks"]["queue"], "ok");
}

#[tokio::test]
async fn health_is_503_when_a_queue_is_gone() {
    let missing = format!(
        "{}/123456789012/no-such-queue.fifo",
        sqs_emulator().endpoint
    );
    let queues = SqsQueues::new(
        sqs_client(),
        HashMap::from([(RoomsSync::QUEUE, missing.clone())]),
    );
    let app = spawn_app_with(
        Arc::new(queues),
        EmbeddedQueues::new(EmbeddedSettings::default()),
    )
    .await;
    let response = app.get("/api/health").await;
    assert_eq!(response.status(), 503);
    let text = response.text().await.unwrap();
    let body: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["status"], "unavailable");
    assert_eq!(body["checks"]["database"], "ok");
    assert_eq!(body["checks"]["queue"], "unreachable");
    assert!(!text.contains("no-such-queue"), "no internals: {text}");
}

#[tokio::test]
async fn health_is_503_when_the_database_is_gone() {
    let app = spawn_app().await;
    // Closing the pool makes every acquire fail, as an unreachable server would.
    app.db.pool.close().await;
    let response = app.get("/api/health").await;
    assert_eq!(response.status(), 503);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["status"], "unavailable");
    assert_eq!(body["checks"]["database"], "unreachable");
    assert_eq!(body["checks"]["queue"], "ok");
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_json() {
    let app = spawn_app().await;
    let response = app.get("/api/no-such-route").await;
    assert_eq!(response.status(), 404);
    assert!(response.headers().contains_key("x-request-id"));
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_found");
    assert!(body["error"]["requestId"].is_string());

    let response = app
        .http
        .delete(format!("{}/api/health", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "method_not_allowed");
}
