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
//!
//! Slow clients cost little: a body must arrive within [`ServeOptions::body_timeout`] of
//! its head (else reading it fails, which the routes answer 408); an answer given before
//! the body was read says `Connection: close`, so a keep-alive client does not send its
//! next request into a connection we are about to close; and a stop waits at most
//! [`ServeOptions::drain`] for the requests in flight, then drops them.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderValue, Request, header};
use http_body::{Body, Frame, SizeHint};
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

/// What bounds a slow client and a stop.
#[derive(Debug, Clone, Copy)]
pub struct ServeOptions {
    /// How long a request's body may take to arrive after its head.
    pub body_timeout: Duration,
    /// How long a stop waits for the requests in flight before it drops them.
    pub drain: Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            body_timeout: Duration::from_secs(15),
            drain: Duration::from_secs(5),
        }
    }
}

/// Serves `router` on `listener` until `shutdown` resolves, then stops accepting, waits
/// for the requests in flight to be answered (idle connections close at once) for at most
/// [`ServeOptions::drain`], and drops those still open.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send,
) {
    serve_with(listener, router, shutdown, ServeOptions::default()).await;
}

/// [`serve`] with other bounds.
pub async fn serve_with(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send,
    options: ServeOptions,
) {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.max_buf_size(HEAD_BUFFER_BYTES)
        .max_headers(PARSED_HEADER_COUNT)
        .timer(TokioTimer::new())
        .header_read_timeout(HEAD_READ_TIMEOUT);
    let connections = GracefulShutdown::new();
    let mut tasks = tokio::task::JoinSet::new();
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
            let read = Arc::new(AtomicBool::new(request.body().is_end_stream()));
            let request = request.map(|body| {
                axum::body::Body::new(Deadline {
                    inner: body,
                    sleep: Box::pin(tokio::time::sleep(options.body_timeout)),
                    read: read.clone(),
                })
            });
            let answer = router.clone().oneshot(request);
            async move {
                let mut response = answer.await?;
                if !read.load(Ordering::Relaxed) {
                    // hyper closes a connection whose body was left unread; say so.
                    response
                        .headers_mut()
                        .insert(header::CONNECTION, HeaderValue::from_static("close"));
                }
                Ok::<_, std::convert::Infallible>(response)
            }
        });
        let connection = connections.watch(http.serve_connection(TokioIo::new(stream), service));
        tasks.spawn(async move {
            // A client that hung up or sent what hyper refused; nothing of ours failed.
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
        // Reap the connections that ended, so the set does not grow.
        while tasks.try_join_next().is_some() {}
    }
    drop(listener);
    if tokio::time::timeout(options.drain, connections.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            open = tasks.len(),
            "requests still in flight after the drain bound; dropping them"
        );
    }
    // Dropping the set aborts every connection still open.
    tasks.shutdown().await;
}

/// A request body that fails once its deadline passes and tells whether it was read to
/// its end.
struct Deadline {
    inner: Incoming,
    sleep: Pin<Box<tokio::time::Sleep>>,
    read: Arc<AtomicBool>,
}

/// The error of a body that did not arrive in time.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive in time")]
pub struct BodyTimedOut;

impl Body for Deadline {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(None) => {
                this.read.store(true, Ordering::Relaxed);
                Poll::Ready(None)
            }
            Poll::Ready(Some(frame)) => {
                if this.inner.is_end_stream() {
                    this.read.store(true, Ordering::Relaxed);
                }
                Poll::Ready(Some(frame.map_err(Into::into)))
            }
            Poll::Pending => match this.sleep.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(BodyTimedOut.into()))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
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

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use axum::body::to_bytes;
    use axum::extract::Request as AxumRequest;
    use axum::http::StatusCode;
    use axum::routing::post;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    use super::*;

    /// A server whose `/read` reads the whole body and `/refuse` answers without it; the
    /// sender that stops it, and its task.
    async fn start(
        options: ServeOptions,
    ) -> (
        SocketAddr,
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<()>,
    ) {
        let router = Router::new()
            .route(
                "/read",
                post(|request: AxumRequest| async move {
                    match to_bytes(request.into_body(), 1 << 20).await {
                        Ok(_) => StatusCode::OK,
                        Err(_) => StatusCode::REQUEST_TIMEOUT,
                    }
                }),
            )
            .route("/refuse", post(|| async { StatusCode::UNAUTHORIZED }));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve_with(
            listener,
            router,
            async {
                let _ = stopped.await;
            },
            options,
        ));
        (addr, stop, server)
    }

    /// Sends a head promising 1,000 bytes to `path` and 10 of them, then stalls.
    async fn stalled_upload(addr: SocketAddr, path: &str) -> TcpStream {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let head = format!("POST {path} HTTP/1.1\r\nhost: x\r\ncontent-length: 1000\r\n\r\n");
        stream.write_all(head.as_bytes()).await.unwrap();
        stream.write_all(&[b'a'; 10]).await.unwrap();
        stream
    }

    async fn answer(stream: &mut TcpStream) -> String {
        let mut answer = Vec::new();
        tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut answer))
            .await
            .expect("an answer, and the connection closed")
            .unwrap();
        String::from_utf8_lossy(&answer).to_lowercase()
    }

    #[tokio::test]
    async fn a_stalled_upload_is_cut_after_the_body_deadline_and_told_connection_close() {
        let options = ServeOptions {
            body_timeout: Duration::from_millis(500),
            ..ServeOptions::default()
        };
        let (addr, _stop, _server) = start(options).await;
        let mut stream = stalled_upload(addr, "/read").await;
        let answer = answer(&mut stream).await;
        assert!(answer.starts_with("http/1.1 408 "), "{answer}");
        assert!(answer.contains("connection: close"), "{answer}");
    }

    #[tokio::test]
    async fn an_answer_before_the_body_says_connection_close_and_one_after_does_not() {
        let (addr, _stop, _server) = start(ServeOptions::default()).await;
        let mut stream = stalled_upload(addr, "/refuse").await;
        let answer = answer(&mut stream).await;
        assert!(answer.starts_with("http/1.1 401 "), "{answer}");
        assert!(answer.contains("connection: close"), "{answer}");

        let mut stream = TcpStream::connect(addr).await.unwrap();
        let request = "POST /read HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\nab";
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut head = [0u8; 512];
        let n = stream.read(&mut head).await.unwrap();
        let head = String::from_utf8_lossy(&head[..n]).to_lowercase();
        assert!(head.starts_with("http/1.1 200 "), "{head}");
        assert!(!head.contains("connection: close"), "{head}");
    }

    #[tokio::test]
    async fn a_stop_drops_a_stalled_upload_after_the_drain_bound() {
        let options = ServeOptions {
            body_timeout: Duration::from_secs(600),
            drain: Duration::from_millis(500),
        };
        let (addr, stop, server) = start(options).await;
        let mut stream = stalled_upload(addr, "/read").await;
        // Let the server take the head before the stop.
        tokio::time::sleep(Duration::from_millis(100)).await;
        stop.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(20), server)
            .await
            .expect("the server stops within its drain bound, not the body's 600 s")
            .unwrap();
        // The upload's connection is gone.
        let mut rest = Vec::new();
        let read =
            tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut rest)).await;
        assert!(read.is_ok(), "the connection is closed");
    }
}
