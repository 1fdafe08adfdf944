//! What wraps every request: its id, its tracing span, a body-size check before anything
//! else runs, the request id on every error, and a JSON 500 instead of a dropped
//! connection when a handler panics.

use std::panic::AssertUnwindSafe;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures_util::FutureExt;
use lambda_http::request::RequestContext;
use tracing::Instrument;

use super::ApiError;
use super::extract::{MAX_BODY_BYTES, RequestId, payload_too_large};

/// The response header that carries the request id.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

pub(crate) async fn request_scope(mut req: Request, next: Next) -> Response {
    let request_id = gateway_request_id(&req).unwrap_or_else(RequestId::generate);
    req.extensions_mut().insert(request_id.clone());
    let span = tracing::info_span!(
        "request",
        request_id = %request_id.as_str(),
        method = %req.method(),
        path = %req.uri().path(),
    );
    let declared_length = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let mut response = if declared_length.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        payload_too_large().into_response()
    } else {
        match AssertUnwindSafe(next.run(req).instrument(span.clone()))
            .catch_unwind()
            .await
        {
            Ok(response) => response,
            Err(panic) => {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a panic without a message".into());
                span.in_scope(|| tracing::error!(panic = %what, "handler panicked"));
                ApiError::internal().into_response()
            }
        }
    };
    if let Some(error) = response.extensions_mut().remove::<ApiError>() {
        let body = serde_json::to_vec(&error.body(Some(request_id.as_str())))
            .expect("an error body serializes");
        response.headers_mut().remove(header::CONTENT_LENGTH);
        *response.body_mut() = Body::from(body);
        if response.status().is_server_error() {
            span.in_scope(|| tracing::warn!(status = %response.status(), code = error.code, "server error answered"));
        }
    }
    if let Ok(value) = HeaderValue::from_str(request_id.as_str()) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    response
}

/// API Gateway's id of the request, when it came through API Gateway.
fn gateway_request_id(req: &Request) -> Option<RequestId> {
    match req.extensions().get::<RequestContext>()? {
        RequestContext::ApiGatewayV2(context) => context
            .request_id
            .as_deref()
            .filter(|id| !id.is_empty())
            .map(|id| RequestId(id.to_owned())),
        #[allow(unreachable_patterns)]
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::body::to_bytes;
    use axum::routing::get;
    use tower::ServiceExt;

    use super::*;

    #[tokio::test]
    async fn a_panicking_handler_answers_a_json_500_with_the_request_id() {
        let app = Router::new()
            .route(
                "/boom",
                get(|| async {
                    if true {
                        panic!("secret internals");
                    }
                    "unreachable"
                }),
            )
            .layer(axum::middleware::from_fn(request_scope));
        let response = app
            .oneshot(Request::get("/boom").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), 500);
        let id = response.headers()[REQUEST_ID_HEADER]
            .to_str()
            .unwrap()
            .to_owned();
        let body = to_bytes(response.into_body(), 10_000).await.unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["error"]["code"], "internal");
        assert_eq!(body["error"]["requestId"], id);
        assert!(!body.to_string().contains("secret"));
    }
}
