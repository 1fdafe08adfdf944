//! The OpenAPI document: served as committed, every operation in it is a route of the
//! router, and the README's route table names every one.

use cwsync_tests::{Who, spawn_app, workspace_root};
use serde_json::Value;

fn operations() -> Vec<(String, String)> {
    let document: Value = serde_json::from_str(&cwsync::api::openapi::document()).unwrap();
    let mut operations = Vec::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            operations.push((method.to_ascii_uppercase(), path.clone()));
        }
    }
    operations
}

#[tokio::test]
async fn the_served_document_is_the_committed_one() {
    let app = spawn_app().await;
    let response = app.get("/api/openapi.json").await;
    assert_eq!(response.status(), 200);
    let served: Value = response.json().await.unwrap();
    let committed: Value = serde_json::from_str(
        &std::fs::read_to_string(workspace_root().join("openapi.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(served, committed);
    assert!(served["openapi"].as_str().unwrap().starts_with("3."));
}

#[tokio::test]
async fn every_documented_operation_is_routed() {
    let app = spawn_app().await;
    let admin = Who::admin();
    let operations = operations();
    assert_eq!(operations.len(), 45);
    for (method, path) in operations {
        let concrete = path
            .replace("{id}", "00000000-0000-0000-0000-000000000000")
            .replace("{roomId}", "1")
            .replace("{task}", "sweep");
        let response = app.call(&admin, &method, &concrete, None).await;
        assert!(
            !matches!(response.code(), "not_found" | "method_not_allowed"),
            "{method} {path} is documented but not routed: {}",
            response.text
        );
        assert!(response.status < 500, "{method} {path}: {}", response.text);
    }
}

#[test]
fn the_readme_lists_every_route() {
    let readme = std::fs::read_to_string(workspace_root().join("README.md")).unwrap();
    for (method, path) in operations() {
        let line = format!("`{method} {path}`");
        assert!(readme.contains(&line), "README.md does not list {line}");
    }
}
