//! The Lambda function's way in: API Gateway HTTP API (payload v2) events, as API Gateway
//! sends them, through `lambda_http`'s adapter. Only the JWT authorizer's claims identify
//! the caller; headers never do.

use cwsync::config::Env;
use cwsync_tests::{Body, Who, gateway_app, gateway_app_with, response_of};
use serde_json::{Value, json};

use super::seed;

const ROOMS_AS_COGNITO_ADMIN: &str = include_str!("fixtures/apigw-v2-rooms-cognito-admin.json");
const CREATE_COMPANY_BASE64: &str = include_str!("fixtures/apigw-v2-create-company-base64.json");

#[tokio::test]
async fn a_recorded_event_with_cognito_groups_reaches_the_router() {
    let app = gateway_app().await;
    seed::room(&app.db.pool, 901, "営業部").await;
    let raw = app.invoke(ROOMS_AS_COGNITO_ADMIN).await;
    assert_eq!(raw["statusCode"], 200, "{raw}");
    assert_eq!(raw["isBase64Encoded"], false);
    let response = response_of(&raw);
    assert!(
        response
            .header("content-type")
            .is_some_and(|ct| ct.starts_with("application/json"))
    );
    assert_eq!(response.header("x-request-id"), Some("ABCdEfGhIjKlMnO="));
    assert_eq!(response.body["items"][0]["name"], "営業部");
}

#[tokio::test]
async fn a_base64_body_is_decoded_and_audited_with_the_gateway_request_id() {
    let app = gateway_app().await;
    let response = response_of(&app.invoke(CREATE_COMPANY_BASE64).await);
    response.expect(201);
    assert_eq!(response.body["name"], "株式会社テスト");
    let rows = seed::audit_rows(&app.db.pool).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["actor"], "auth0|0123456789");
    assert_eq!(rows[0]["role"], "admin");
    assert_eq!(rows[0]["request_id"], "XyZ0123456789ab=");
}

fn without_authorizer(event: &str) -> String {
    let mut event: Value = serde_json::from_str(event).unwrap();
    event["requestContext"]
        .as_object_mut()
        .unwrap()
        .remove("authorizer");
    event.to_string()
}

#[tokio::test]
async fn without_authorizer_claims_every_route_but_health_is_401() {
    let app = gateway_app().await;
    // The recorded event carries an Authorization header; without the authorizer's
    // claims it counts for nothing.
    let response = response_of(
        &app.invoke(&without_authorizer(ROOMS_AS_COGNITO_ADMIN))
            .await,
    );
    assert_eq!((response.status, response.code()), (401, "unauthenticated"));
    assert_eq!(response.body["error"]["requestId"], "ABCdEfGhIjKlMnO=");
    // Nor does a genuine local token: the Lambda function never reads headers.
    let local = cwsync_tests::spawn_app().await;
    let token = local.token("admin-1", cwsync::api::Role::Admin);
    let authorization = format!("Bearer {token}");
    let response = app
        .send(
            &Who::Nobody,
            "GET",
            "/api/companies",
            None,
            &[("authorization", authorization.as_str())],
        )
        .await;
    assert_eq!((response.status, response.code()), (401, "unauthenticated"));
    let response = app
        .send(
            &Who::reader(),
            "GET",
            "/api/chatwork/rooms",
            None,
            &[("authorization", authorization.as_str())],
        )
        .await;
    assert_eq!((response.status, response.code()), (403, "forbidden"));
    // Claims without a subject are no identity.
    let response = app
        .call(
            &Who::Nobody.with_claim("role", json!("admin")),
            "GET",
            "/api/companies",
            None,
        )
        .await;
    assert_eq!((response.status, response.code()), (401, "invalid_token"));
    app.call(&Who::Nobody, "GET", "/api/health", None)
        .await
        .expect(200);
}

#[tokio::test]
async fn the_role_claim_name_is_configurable() {
    let app = gateway_app_with(&Env::from_pairs([("JWT_ROLE_CLAIM", "custom:cwsync_role")])).await;
    let custom = Who::no_role("u1").with_claim("custom:cwsync_role", json!("admin"));
    app.call(&custom, "GET", "/api/chatwork/rooms", None)
        .await
        .expect(200);
    // `role` is just another claim now.
    let plain = Who::user("u1", "admin");
    let response = app.call(&plain, "GET", "/api/chatwork/rooms", None).await;
    assert_eq!((response.status, response.code()), (403, "no_role"));
    // cognito:groups is always understood, flattened by API Gateway or not.
    for groups in ["[reader writer]", "writer", "reader,writer"] {
        let grouped = Who::no_role("u2").with_claim("cognito:groups", json!(groups));
        let response = app
            .send(
                &grouped,
                "DELETE",
                "/api/companies/00000000-0000-0000-0000-000000000000/chatwork-rooms/1",
                None,
                &[],
            )
            .await;
        assert_eq!(
            (response.status, response.code()),
            (404, "company_not_found"),
            "{groups}: a writer gets past the role check"
        );
    }
}

#[tokio::test]
async fn a_body_over_the_limit_is_413_without_a_content_length() {
    let app = gateway_app().await;
    let response = app
        .send(
            &Who::admin(),
            "POST",
            "/api/companies",
            Some(Body::Raw {
                content_type: Some("application/json".into()),
                bytes: format!(r#"{{"name": "{}"}}"#, "x".repeat(100_000)).into_bytes(),
            }),
            &[],
        )
        .await;
    assert_eq!(
        (response.status, response.code()),
        (413, "payload_too_large")
    );
}
