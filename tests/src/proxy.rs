//! A TCP proxy in front of Postgres that a test can cut (to make the database unreachable
//! for the code under test while the test keeps its own direct connection) and that
//! counts what clients send (statements and round trips, read off Postgres's wire
//! protocol).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// Forwards every connection on a loopback port to `upstream`. [`cut`](Self::cut) drops
/// the open connections at once and refuses new ones (the client sees its connection
/// reset, then closed as soon as it connects) until [`restore`](Self::restore). Stops
/// when dropped.
pub struct TcpProxy {
    addr: SocketAddr,
    state: Arc<Mutex<ProxyState>>,
    counts: Arc<Counters>,
    stop: CancellationToken,
}

struct ProxyState {
    cut: bool,
    /// Cancelled to drop every connection forwarded so far.
    connections: CancellationToken,
}

#[derive(Default)]
struct Counters {
    executes: AtomicU64,
    syncs: AtomicU64,
    simple_queries: AtomicU64,
    transactions: AtomicU64,
}

/// What clients sent through the proxy so far, read off Postgres's frontend messages
/// (only from connections without TLS: see [`TestDb::config_via`](crate::TestDb::config_via)).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WireCounts {
    /// Statements run with the extended protocol (`Execute` messages).
    pub executes: u64,
    /// Round trips: each `Sync` waits for the server's `ReadyForQuery` (sqlx sends one
    /// per statement, one more to prepare a statement new to the connection, and one
    /// alone to ping a connection before handing it out).
    pub syncs: u64,
    /// Simple-protocol queries (`Query` messages), each a round trip of its own.
    pub simple_queries: u64,
    /// Explicit transactions: `BEGIN` (or `START TRANSACTION`) queries, which sqlx sends
    /// with the simple protocol. A statement outside one is a transaction of its own.
    pub transactions: u64,
}

impl WireCounts {
    pub fn round_trips(&self) -> u64 {
        self.syncs + self.simple_queries
    }

    pub fn statements(&self) -> u64 {
        self.executes + self.simple_queries
    }
}

impl std::ops::Sub for WireCounts {
    type Output = WireCounts;
    fn sub(self, before: WireCounts) -> WireCounts {
        WireCounts {
            executes: self.executes - before.executes,
            syncs: self.syncs - before.syncs,
            simple_queries: self.simple_queries - before.simple_queries,
            transactions: self.transactions - before.transactions,
        }
    }
}

impl TcpProxy {
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("bind a loopback port for the proxy");
        let addr = listener.local_addr().expect("the proxy's address");
        let state = Arc::new(Mutex::new(ProxyState {
            cut: false,
            connections: CancellationToken::new(),
        }));
        let counts = Arc::new(Counters::default());
        let stop = CancellationToken::new();
        let (accept_state, accept_counts, accept_stop) =
            (state.clone(), counts.clone(), stop.clone());
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    _ = accept_stop.cancelled() => break,
                    accepted = listener.accept() => accepted,
                };
                let Ok((client, _)) = accepted else {
                    continue;
                };
                let token = {
                    let state = accept_state.lock().unwrap();
                    if state.cut {
                        // Dropping the socket closes it: the server is unreachable.
                        continue;
                    }
                    state.connections.clone()
                };
                let counts = accept_counts.clone();
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    // As the client and the server do: without it, Nagle's algorithm and
                    // delayed acknowledgements stall the small messages of the protocol.
                    let _ = client.set_nodelay(true);
                    let _ = server.set_nodelay(true);
                    tokio::select! {
                        _ = token.cancelled() => {}
                        _ = forward(client, server, counts) => {}
                    }
                });
            }
        });
        Self {
            addr,
            state,
            counts,
            stop,
        }
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Drops every open connection and refuses new ones.
    pub fn cut(&self) {
        let mut state = self.state.lock().unwrap();
        state.cut = true;
        state.connections.cancel();
        state.connections = CancellationToken::new();
    }

    /// Forwards new connections again.
    pub fn restore(&self) {
        self.state.lock().unwrap().cut = false;
    }

    /// What clients have sent so far.
    pub fn counts(&self) -> WireCounts {
        WireCounts {
            executes: self.counts.executes.load(Ordering::SeqCst),
            syncs: self.counts.syncs.load(Ordering::SeqCst),
            simple_queries: self.counts.simple_queries.load(Ordering::SeqCst),
            transactions: self.counts.transactions.load(Ordering::SeqCst),
        }
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.stop.cancel();
        self.state.lock().unwrap().connections.cancel();
    }
}

/// Copies both ways until either side closes, counting the client's messages.
async fn forward(client: TcpStream, server: TcpStream, counts: Arc<Counters>) {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let upstream = async {
        let mut parser = FrontendParser::default();
        let mut buffer = vec![0u8; 16 * 1024];
        loop {
            let read = match client_read.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            parser.feed(&buffer[..read], &counts);
            if server_write.write_all(&buffer[..read]).await.is_err() {
                break;
            }
        }
        let _ = server_write.shutdown().await;
    };
    let downstream = async {
        let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
        let _ = client_write.shutdown().await;
    };
    tokio::join!(upstream, downstream);
}

/// Splits the client's byte stream into Postgres frontend messages: first untyped
/// start-up packets (`int32 length, int32 code, ...`: an SSL or GSSAPI request, then the
/// startup message), then typed messages (`byte type, int32 length, ...`).
#[derive(Default)]
struct FrontendParser {
    started: bool,
    pending: Vec<u8>,
}

impl FrontendParser {
    fn feed(&mut self, bytes: &[u8], counts: &Counters) {
        self.pending.extend_from_slice(bytes);
        loop {
            let header = if self.started { 5 } else { 8 };
            if self.pending.len() < header {
                return;
            }
            let at = usize::from(self.started);
            let length = u32::from_be_bytes(self.pending[at..at + 4].try_into().unwrap()) as usize;
            let total = length + at;
            if self.pending.len() < total {
                return;
            }
            if self.started {
                match self.pending[0] {
                    b'E' => counts.executes.fetch_add(1, Ordering::SeqCst),
                    b'S' => counts.syncs.fetch_add(1, Ordering::SeqCst),
                    b'Q' => {
                        if begins_transaction(&self.pending[5..total]) {
                            counts.transactions.fetch_add(1, Ordering::SeqCst);
                        }
                        counts.simple_queries.fetch_add(1, Ordering::SeqCst)
                    }
                    _ => 0,
                };
            } else {
                let code = u32::from_be_bytes(self.pending[4..8].try_into().unwrap());
                // 80877103: SSLRequest, 80877104: GSSENCRequest; anything else starts up.
                self.started = !matches!(code, 80_877_103 | 80_877_104);
            }
            self.pending.drain(..total);
        }
    }
}

/// Whether a `Query` message's text opens a transaction.
fn begins_transaction(query: &[u8]) -> bool {
    let text = String::from_utf8_lossy(query);
    let text = text.trim_start().to_ascii_uppercase();
    text.starts_with("BEGIN") || text.starts_with("START TRANSACTION")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A typed frontend message: type, length (itself included), payload.
    fn message(kind: u8, payload: &[u8]) -> Vec<u8> {
        let mut bytes = vec![kind];
        bytes.extend_from_slice(&(payload.len() as u32 + 4).to_be_bytes());
        bytes.extend_from_slice(payload);
        bytes
    }

    #[test]
    fn the_parser_counts_statements_round_trips_and_transactions_across_reads() {
        let counts = Counters::default();
        let mut parser = FrontendParser::default();
        // Startup: length 8, protocol 3.0.
        let mut stream = vec![0, 0, 0, 8, 0, 3, 0, 0];
        stream.extend(message(b'Q', b"BEGIN ISOLATION LEVEL READ COMMITTED\0"));
        stream.extend(message(b'P', b"\0INSERT INTO t VALUES ($1)\0\0\0"));
        stream.extend(message(b'E', b"\0\0\0\0\0"));
        stream.extend(message(b'S', b""));
        stream.extend(message(b'Q', b"COMMIT\0"));
        stream.extend(message(b'Q', b" begin\0"));
        // Fed in pieces that split messages, as TCP reads may.
        for piece in stream.chunks(3) {
            parser.feed(piece, &counts);
        }
        assert_eq!(counts.executes.load(Ordering::SeqCst), 1);
        assert_eq!(counts.syncs.load(Ordering::SeqCst), 1);
        assert_eq!(counts.simple_queries.load(Ordering::SeqCst), 3);
        assert_eq!(counts.transactions.load(Ordering::SeqCst), 2);
    }
}
