//! What wraps every request, in this order (outermost first):
//!
//! 1. The request id (tower-http's `SetRequestId`, then `PropagateRequestId` back onto the
//!    answer as `x-request-id`): API Gateway's id of the request when it came through API
//!    Gateway, else a new UUID. A client's own `x-request-id` is dropped first: the id
//!    names audit rows and log lines, so the caller does not get to choose it.
//! 2. [`request_scope`], what tower-http has no layer for: the tracing span (request id,
//!    method, path), the body-size check before anything else runs (a JSON 413), and the
//!    request id filled into the body of every [`ApiError`] answer.
//! 3. tower-http's `CatchPanic`: a handler's panic answers our JSON 500 `internal` instead
//!    of a dropped connection; what the panic said is logged, never answered.

use std::any::Any;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use lambda_http::request::RequestContext;
use tower::ServiceBuilder;
use tower::util::MapRequestLayer;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestId, PropagateRequestIdLayer, SetRequestIdLayer};
use tracing::Instrument;

use super::ApiError;
use super::extract::{RequestId, body_limit, payload_too_large_of};

/// The response header that carries the request id.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// `router` with every route (and its fallbacks) wrapped as the module documentation says.
pub(crate) fn wrap<S: Clone + Send + Sync + 'static>(router: Router<S>) -> Router<S> {
    let header = HeaderName::from_static(REQUEST_ID_HEADER);
    router.layer(
        ServiceBuilder::new()
            .layer(MapRequestLayer::new(|mut req: Request| {
                req.headers_mut().remove(REQUEST_ID_HEADER);
                req
            }))
            .layer(SetRequestIdLayer::new(header.clone(), GatewayOrNewId))
            .layer(PropagateRequestIdLayer::new(header))
            .layer(axum::middleware::from_fn(request_scope))
            .layer(CatchPanicLayer::custom(answer_panic)),
    )
}

/// The id of each request: API Gateway's when the request came through API Gateway (so
/// that our logs and API Gateway's access logs name it alike), else a new UUID.
#[derive(Debug, Clone, Copy)]
struct GatewayOrNewId;

impl MakeRequestId for GatewayOrNewId {
    fn make_request_id<B>(
        &mut self,
        request: &axum::http::Request<B>,
    ) -> Option<tower_http::request_id::RequestId> {
        let value = gateway_request_id(request)
            .and_then(|id| HeaderValue::from_str(id).ok())
            // Our RequestId is a string: an id that is not plain ASCII is not taken.
            .filter(|value| value.to_str().is_ok())
            .unwrap_or_else(|| {
                HeaderValue::from_str(RequestId::generate().as_str()).expect("a UUID is a header")
            });
        Some(tower_http::request_id::RequestId::new(value))
    }
}

/// API Gateway's id of the request, when it came through API Gateway.
fn gateway_request_id<B>(req: &axum::http::Request<B>) -> Option<&str> {
    match req.extensions().get::<RequestContext>()? {
        RequestContext::ApiGatewayV2(context) => {
            context.request_id.as_deref().filter(|id| !id.is_empty())
        }
        #[allow(unreachable_patterns)]
        _ => None,
    }
}

async fn request_scope(mut req: Request, next: Next) -> Response {
    let request_id = req
        .extensions()
        .get::<tower_http::request_id::RequestId>()
        .and_then(|id| id.header_value().to_str().ok())
        .map(|id| RequestId(id.to_owned()))
        .unwrap_or_else(RequestId::generate);
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
    let limit = body_limit(req.uri().path());
    let mut response = if declared_length.is_some_and(|n| n > limit as u64) {
        payload_too_large_of(limit).into_response()
    } else {
        next.run(req).instrument(span.clone()).await
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
    response
}

/// The answer to a handler's panic: a 500 `internal` (whose body [`request_scope`] gives
/// the request id). Runs inside the request's span, so the log line names the request.
fn answer_panic(panic: Box<dyn Any + Send + 'static>) -> Response {
    let what = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into());
    tracing::error!(panic = %what, "handler panicked");
    ApiError::internal().into_response()
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::body::{Bytes, to_bytes};
    use axum::routing::get;
    use tower::ServiceExt;

    use super::*;

    /// `request` through `app` wrapped: the status, the `x-request-id` and the body.
    async fn call(app: Router, request: Request) -> (u16, String, Bytes) {
        let response = wrap(app).oneshot(request).await.unwrap();
        let status = response.status().as_u16();
        let id = response.headers()[REQUEST_ID_HEADER].to_str().unwrap();
        let id = id.to_owned();
        (
            status,
            id,
            to_bytes(response.into_body(), 10_000).await.unwrap(),
        )
    }

    #[tokio::test]
    async fn a_panicking_handler_answers_a_json_500_with_the_request_id() {
        let app = Router::new().route(
            "/boom",
            get(|| async {
                if true {
                    panic!("secret internals");
                }
                "unreachable"
            }),
        );
        let (status, id, body) =
            call(app, Request::get("/boom").body(Body::empty()).unwrap()).await;
        assert_eq!(status, 500);
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["error"]["code"], "internal");
        assert_eq!(body["error"]["requestId"], id);
        assert!(!body.to_string().contains("secret"));
    }

    #[tokio::test]
    async fn a_request_id_chosen_by_the_client_is_not_taken() {
        let app = Router::new().route(
            "/id",
            get(|id: RequestId| async move { id.as_str().to_owned() }),
        );
        let request = Request::get("/id").header(REQUEST_ID_HEADER, "chosen-by-the-client");
        let (status, id, body) = call(app, request.body(Body::empty()).unwrap()).await;
        assert_eq!(status, 200);
        assert_ne!(id, "chosen-by-the-client");
        assert!(uuid::Uuid::parse_str(&id).is_ok(), "{id}");
        assert_eq!(
            body,
            id.as_bytes(),
            "the handler sees the id the answer carries"
        );
    }
}
