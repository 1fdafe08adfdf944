//! What wraps every request, in this order (outermost first):
//!
//! 1. The request id (tower-http's `SetRequestId`, then `PropagateRequestId` back onto the
//!    answer as `x-request-id`): API Gateway's id of the request when it came through API
//!    Gateway, else a new UUID. A client's own `x-request-id` is dropped first: the id
//!    names audit rows and log lines, so the caller does not get to choose it.
//! 2. [`request_scope`], what tower-http has no layer for: the tracing span (request id,
//!    method, path), the size checks before anything else runs (a JSON 414 for a long
//!    path and query, 431 for a large header section, 413 for a declared body over the
//!    limit), and the request id filled into the body of every [`ApiError`] answer.
//! 3. tower-http's `CatchPanic`: a handler's panic answers our JSON 500 `internal` instead
//!    of a dropped connection; what the panic said is logged, never answered.

use std::any::Any;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use lambda_http::request::RequestContext;
use tower::ServiceBuilder;
use tower::util::MapRequestLayer;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestId, PropagateRequestIdLayer, SetRequestIdLayer};
use tracing::Instrument;

use super::extract::{RequestId, body_limit, payload_too_large_of};
use super::{ApiError, ErrorCode};

/// The response header that carries the request id.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The longest path and query (bytes) a request may have: 414 `uri_too_long` beyond. No
/// route of ours needs a fraction of it; a longer one is a mistake or a probe.
pub const MAX_URI_BYTES: usize = 8 * 1024;
/// The largest header section (bytes: each name, value and the 4 bytes of `: ` and CRLF)
/// a request may have: 431 `headers_too_large` beyond. Room for a large JWT many times.
pub const MAX_HEADER_BYTES: usize = 64 * 1024;
/// The most header lines a request may have: 431 `headers_too_large` beyond.
pub const MAX_HEADER_COUNT: usize = 100;

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
    let declares_body = declares_body(&req);
    let mut response = match refused_early(&req) {
        Some(error) => error.into_response(),
        None => next.run(req).instrument(span.clone()).await,
    };
    // A refusal of who or how much comes before the body is read, and the server then
    // drops the connection with the body unread: say so, or a keep-alive client sends its
    // next request into a closed connection.
    if declares_body
        && matches!(
            response.status(),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN | StatusCode::PAYLOAD_TOO_LARGE
        )
    {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    if let Some(error) = response.extensions_mut().remove::<ApiError>() {
        let body = serde_json::to_vec(&error.body(Some(request_id.as_str())))
            .expect("an error body serializes");
        response.headers_mut().remove(header::CONTENT_LENGTH);
        *response.body_mut() = Body::from(body);
        if response.status().is_server_error() {
            span.in_scope(|| tracing::warn!(status = %response.status(), code = error.code.as_str(), "server error answered"));
        }
    }
    response
}

/// Whether a body follows the request's head.
fn declares_body(req: &Request) -> bool {
    let headers = req.headers();
    headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim() != "0")
}

/// The error of a request refused before any handler runs, for its size: its path and
/// query, its header section, or the body it declares. The local server's own limits are
/// far higher (see `serve`), so these answers are our JSON; in AWS, API Gateway's limits
/// are lower still and it answers first.
fn refused_early(req: &Request) -> Option<ApiError> {
    let uri_bytes = req.uri().path_and_query().map_or(0, |pq| pq.as_str().len());
    if uri_bytes > MAX_URI_BYTES {
        return Some(ApiError::new(
            StatusCode::URI_TOO_LONG,
            ErrorCode::UriTooLong,
            format!("The request's path and query are longer than {MAX_URI_BYTES} bytes."),
        ));
    }
    let headers = req.headers();
    let header_bytes: usize = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    if headers.len() > MAX_HEADER_COUNT || header_bytes > MAX_HEADER_BYTES {
        return Some(ApiError::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ErrorCode::HeadersTooLarge,
            format!(
                "The request's headers are more than {MAX_HEADER_COUNT} or larger than {MAX_HEADER_BYTES} bytes."
            ),
        ));
    }
    let declared_length = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let limit = body_limit(req.uri().path());
    declared_length
        .is_some_and(|n| n > limit as u64)
        .then(|| payload_too_large_of(limit))
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

    /// A request to a route that answers 200 when the request gets through.
    async fn refused(request: Request) -> (u16, serde_json::Value) {
        let app = Router::new().route("/{*rest}", get(|| async { "through" }));
        let (status, id, body) = call(app, request).await;
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        if status != 200 {
            assert_eq!(body["error"]["requestId"], id, "{body}");
        }
        (status, body)
    }

    #[tokio::test]
    async fn a_path_and_query_over_the_limit_answer_a_json_414() {
        let at_limit = format!("/{}", "a".repeat(MAX_URI_BYTES - 1));
        let request = Request::get(at_limit.as_str()).body(Body::empty()).unwrap();
        assert_eq!(refused(request).await.0, 200);
        let over = format!("/a?q={}", "b".repeat(MAX_URI_BYTES));
        let (status, body) =
            refused(Request::get(over.as_str()).body(Body::empty()).unwrap()).await;
        assert_eq!(status, 414);
        assert_eq!(body["error"]["code"], "uri_too_long");
    }

    #[tokio::test]
    async fn a_header_section_over_the_limits_answers_a_json_431() {
        let request = Request::get("/a")
            .header("x-big", "v".repeat(MAX_HEADER_BYTES))
            .body(Body::empty())
            .unwrap();
        let (status, body) = refused(request).await;
        assert_eq!(status, 431);
        assert_eq!(body["error"]["code"], "headers_too_large");

        let mut request = Request::get("/a");
        for i in 0..=MAX_HEADER_COUNT {
            request = request.header(format!("x-h{i}"), "v");
        }
        let (status, body) = refused(request.body(Body::empty()).unwrap()).await;
        assert_eq!(status, 431);
        assert_eq!(body["error"]["code"], "headers_too_large");

        let mut request = Request::get("/a");
        // The request id header is added before the check: room for it.
        for i in 0..MAX_HEADER_COUNT - 1 {
            request = request.header(format!("x-h{i}"), "v");
        }
        assert_eq!(refused(request.body(Body::empty()).unwrap()).await.0, 200);
    }
}
