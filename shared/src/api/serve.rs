//! Serving the router over HTTP/1.1 on a TCP listener: the local runner does, and the
//! tests do (in AWS, API Gateway and `lambda_http` stand in its place).
//!
//! Why not `axum::serve`: it keeps hyper's parser limits, under which hyper refuses a
//! large head itself, with an empty body, before any of our code runs. Here hyper's limits
//! sit well above the API's own ([`MAX_URI_BYTES`](super::scope::MAX_URI_BYTES),
//! [`MAX_HEADER_BYTES`](super::scope::MAX_HEADER_BYTES),
//! [`MAX_HEADER_COUNT`](super::scope::MAX_HEADER_COUNT)), so those requests reach the
//! router and get our JSON 414 or 431. What hyper still answers itself (the README's
//! "Below the router"): a head over [`HEAD_BUFFER_BYTES`] or with more than
//! [`PARSED_HEADER_COUNT`] lines (431), a request target over 64 KiB (414, a limit fixed
//! in hyper) and a head that is not HTTP, such as a control byte in a header value (400).

use std::future::Future;
use std::io;
use std::time::Duration;

use axum::Router;
use axum::http::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tower::ServiceExt;

/// The most a request head (request line and headers) may take in hyper's read buffer
/// before hyper answers 431 itself (checked between reads, so a head a read's worth larger
/// may still get through). A connection's buffer only grows this far while a head this
/// large arrives.
pub const HEAD_BUFFER_BYTES: usize = 2 * 1024 * 1024;
/// The most header lines hyper parses before it answers 431 itself.
pub const PARSED_HEADER_COUNT: usize = 1000;
/// How long a client may take to send a request head (hyper's default, which needs a
/// timer to take effect).
const HEAD_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Serves `router` on `listener` until `shutdown` resolves, then stops accepting and waits
/// for the requests in flight to be answered (idle connections close at once).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send,
) {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.max_buf_size(HEAD_BUFFER_BYTES)
        .max_headers(PARSED_HEADER_COUNT)
        .timer(TokioTimer::new())
        .header_read_timeout(HEAD_READ_TIMEOUT);
    let connections = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => stream,
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Answers are small and written whole: no reason to wait for Nagle.
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let service = hyper::service::service_fn(move |request: Request<Incoming>| {
            router.clone().oneshot(request)
        });
        let connection = connections.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            // A client that hung up or sent what hyper refused; nothing of ours failed.
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    connections.shutdown().await;
}

/// An accept that failed: a connection reset before it was taken is nothing; anything
/// else (out of file descriptors, say) is logged and waited out briefly instead of spun on.
async fn accept_failed(e: io::Error) {
    use io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        e.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        return;
    }
    tracing::warn!(error = %e, "accepting a connection failed");
    tokio::time::sleep(Duration::from_secs(1)).await;
}
