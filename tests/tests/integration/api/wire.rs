//! Requests written as bytes on a TCP connection to the API as the local runner serves it
//! (`cwsync::api::serve`), for the heads no HTTP client would send: oversized request
//! lines and header sections, and bytes HTTP does not allow. Those within the server's
//! parser limits get our JSON error; those beyond answer as the README's "Below the
//! router" says, and the tests hold them to that too.

use cwsync::api::{HEAD_BUFFER_BYTES, MAX_HEADER_COUNT, MAX_URI_BYTES, PARSED_HEADER_COUNT};
use cwsync_tests::{TestApp, spawn_app};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// An answer read off the wire.
struct Answer {
    status: u16,
    /// The header section, lowercased.
    head: String,
    body: Vec<u8>,
}

impl Answer {
    /// The body as our error shape: its code, after checking the shape.
    fn json_code(&self) -> String {
        assert!(
            self.head.contains("content-type: application/json"),
            "{}",
            self.head
        );
        let body: Value = serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body))
        });
        let error = &body["error"];
        assert!(error["message"].is_string(), "{body}");
        let id = self
            .head
            .lines()
            .find_map(|l| l.strip_prefix("x-request-id: "))
            .unwrap_or_else(|| panic!("no request id in {}", self.head));
        assert_eq!(error["requestId"], id, "{body}");
        error["code"].as_str().expect("a code").to_owned()
    }
}

/// Writes `request` (a whole head, `connection: close` included) to `app` and reads the
/// answer. The write runs beside the read: the server may answer before it has read it
/// all.
async fn exchange(app: &TestApp, request: Vec<u8>) -> Answer {
    let address = app.address.trim_start_matches("http://");
    let stream = TcpStream::connect(address).await.expect("connect");
    let (mut reader, mut writer) = stream.into_split();
    let writing = tokio::spawn(async move {
        // The server closes once it has answered; what it did not read is not ours to fail.
        let _ = writer.write_all(&request).await;
        writer
    });
    let mut bytes = Vec::new();
    let read = reader.read_to_end(&mut bytes).await;
    assert!(
        read.is_ok() || !bytes.is_empty(),
        "no answer: {:?}",
        read.err()
    );
    drop(writing.await);
    let split = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no head in {:?}", String::from_utf8_lossy(&bytes)));
    let head = String::from_utf8(bytes[..split].to_vec())
        .expect("an ASCII head")
        .to_lowercase();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head}"));
    let body = bytes[split + 4..].to_vec();
    if let Some(length) = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
    {
        assert_eq!(length.parse::<usize>().unwrap(), body.len(), "{head}");
    }
    Answer { status, head, body }
}

/// `GET target` with `headers` (each `name: value`), closing the connection after.
fn get(target: &str, headers: &[String]) -> Vec<u8> {
    let mut request = format!("GET {target} HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n");
    for header in headers {
        request.push_str(header);
        request.push_str("\r\n");
    }
    request.push_str("\r\n");
    request.into_bytes()
}

#[tokio::test]
async fn a_well_formed_request_over_the_wire_is_answered() {
    let app = spawn_app().await;
    let answer = exchange(&app, get("/api/health", &[])).await;
    assert_eq!(answer.status, 200, "{}", answer.head);
}

#[tokio::test]
async fn a_one_megabyte_header_is_our_json_431() {
    let app = spawn_app().await;
    let big = format!("x-big: {}", "a".repeat(1_000_000));
    let answer = exchange(&app, get("/api/health", &[big])).await;
    assert_eq!(answer.status, 431);
    assert_eq!(answer.json_code(), "headers_too_large");
}

#[tokio::test]
async fn more_headers_than_the_api_takes_are_our_json_431() {
    let app = spawn_app().await;
    let many: Vec<String> = (0..=MAX_HEADER_COUNT)
        .map(|i| format!("x-h{i}: v"))
        .collect();
    let answer = exchange(&app, get("/api/health", &many)).await;
    assert_eq!(answer.status, 431);
    assert_eq!(answer.json_code(), "headers_too_large");
}

#[tokio::test]
async fn a_path_or_query_over_the_limit_is_our_json_414() {
    let app = spawn_app().await;
    for target in [
        format!("/api/{}", "p".repeat(16 * 1024)),
        format!("/api/health?q={}", "q".repeat(MAX_URI_BYTES)),
        // Where hyper's own limit (64 KiB) is near, ours still answers.
        format!("/api/{}", "p".repeat(60 * 1024)),
    ] {
        let answer = exchange(&app, get(&target, &[])).await;
        assert_eq!(answer.status, 414, "{}", target.len());
        assert_eq!(answer.json_code(), "uri_too_long");
    }
}

/// Below the router (README): a request target over 64 KiB is refused by hyper, whose
/// limit is fixed, with an empty 414.
#[tokio::test]
async fn a_hundred_kilobyte_path_is_hypers_empty_414() {
    let app = spawn_app().await;
    let target = format!("/api/{}", "p".repeat(100 * 1024));
    let answer = exchange(&app, get(&target, &[])).await;
    assert_eq!(answer.status, 414, "{}", answer.head);
    assert!(
        answer.body.is_empty(),
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    assert!(!answer.head.contains("x-request-id"), "{}", answer.head);
}

/// Below the router (README): a control byte in a header value is not HTTP; hyper's
/// parser refuses the head, before there is a request to route, with an empty 400.
#[tokio::test]
async fn a_control_byte_in_a_header_is_hypers_empty_400() {
    let app = spawn_app().await;
    let answer = exchange(&app, get("/api/health", &["x-bad: a\u{1}b".to_owned()])).await;
    assert_eq!(answer.status, 400, "{}", answer.head);
    assert!(
        answer.body.is_empty(),
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
}

/// Below the router (README): a head past the server's buffer, with more header lines
/// than it parses, or with a header name longer than a name may be, is refused by hyper
/// with an empty 431. (hyper checks the buffer between
/// reads, so a head just over it may still arrive whole: this one is well past it.)
#[tokio::test]
async fn a_head_past_the_servers_limits_is_hypers_empty_431() {
    let app = spawn_app().await;
    let huge = format!("x-big: {}", "a".repeat(4 * HEAD_BUFFER_BYTES));
    let answer = exchange(&app, get("/api/health", &[huge])).await;
    assert_eq!(answer.status, 431, "{}", answer.head);
    assert!(
        answer.body.is_empty(),
        "{}",
        String::from_utf8_lossy(&answer.body)
    );

    let many: Vec<String> = (0..=PARSED_HEADER_COUNT)
        .map(|i| format!("x-h{i}: v"))
        .collect();
    let answer = exchange(&app, get("/api/health", &many)).await;
    assert_eq!(answer.status, 431, "{}", answer.head);
    assert!(
        answer.body.is_empty(),
        "{}",
        String::from_utf8_lossy(&answer.body)
    );

    let long_name = format!("{}: v", "x".repeat(70_000));
    let answer = exchange(&app, get("/api/health", &[long_name])).await;
    assert_eq!(answer.status, 431, "{}", answer.head);
    assert!(
        answer.body.is_empty(),
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
}

/// A 401 given before the body arrives says `connection: close`, so a keep-alive client
/// opens a new connection for its next request instead of writing into a closed one.
#[tokio::test]
async fn a_refusal_before_the_body_says_connection_close() {
    let app = spawn_app().await;
    let address = app.address.trim_start_matches("http://");
    let mut stream = TcpStream::connect(address).await.expect("connect");
    // Only the head: the body (100 bytes declared) never comes.
    stream
        .write_all(
            b"POST /api/companies HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n",
        )
        .await
        .unwrap();
    let mut bytes = Vec::new();
    let mut buffer = [0u8; 4096];
    while !bytes.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tokio::time::timeout(std::time::Duration::from_secs(10), stream.read(&mut buffer))
            .await
            .expect("an answer before the body")
            .unwrap();
        assert!(n > 0, "closed without an answer");
        bytes.extend_from_slice(&buffer[..n]);
    }
    let head = String::from_utf8_lossy(&bytes).to_lowercase();
    assert!(head.starts_with("http/1.1 401"), "{head}");
    assert!(head.contains("connection: close"), "{head}");
}
