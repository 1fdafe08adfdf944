//! Subsegments for X-Ray (docs/architecture.md, "Tracing"): a tracing layer that turns
//! each closed Chatwork request span ("chatwork"), SQS call span ("sqs") and database
//! statement (sqlx's `sqlx::query` event, logged as a statement ends) into an independent
//! subsegment of the current trace ([`super::current`]) and sends it to the X-Ray daemon
//! over UDP, the way Lambda's runtime takes them (`AWS_XRAY_DAEMON_ADDRESS`).
//!
//! Only work in a sampled trace whose header names a parent is sent. Sending never waits
//! and never fails the work: the socket does not block, and a datagram the daemon cannot
//! take (none listening, buffer full) is dropped. The documents carry the request's path
//! as the spans show it (never a token), its status and its times; a statement's SQL as
//! sqlx logs it (with its `$n` placeholders, never the values bound to them).

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs, UdpSocket};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value, json};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

/// Where Lambda's runtime says its X-Ray daemon listens (`host:port`, or
/// `tcp:host:port udp:host:port`).
pub const DAEMON_ADDRESS_VAR: &str = "AWS_XRAY_DAEMON_ADDRESS";

/// What precedes every document in a datagram to the daemon.
pub const DATAGRAM_HEADER: &str = "{\"format\": \"json\", \"version\": 1}\n";

/// The largest datagram sent; a bigger document (which ours never are) is dropped.
const MAX_DATAGRAM: usize = 8 * 1024;

/// The longest text kept in a field (X-Ray's limit for most strings).
const MAX_TEXT: usize = 250;

/// The longest SQL kept of a statement.
const MAX_SQL: usize = 2000;

/// The target of sqlx's event for each statement run.
const STATEMENT_TARGET: &str = "sqlx::query";

/// The layer: sends one subsegment per closed "chatwork" or "sqs" span.
#[derive(Debug)]
pub struct XrayLayer {
    socket: UdpSocket,
}

impl XrayLayer {
    /// The layer for the daemon `AWS_XRAY_DAEMON_ADDRESS` names; `None` without one (the
    /// local runner, tests) or when it cannot be read or no socket can be opened.
    pub fn from_env() -> Option<Self> {
        let value = std::env::var(DAEMON_ADDRESS_VAR).ok()?;
        Self::to(daemon_udp_address(&value)?).ok()
    }

    /// The layer for the daemon at `daemon`.
    pub fn to(daemon: SocketAddr) -> std::io::Result<Self> {
        let local: SocketAddr = if daemon.is_ipv4() {
            (Ipv4Addr::UNSPECIFIED, 0).into()
        } else {
            (Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let socket = UdpSocket::bind(local)?;
        socket.connect(daemon)?;
        socket.set_nonblocking(true)?;
        Ok(Self { socket })
    }

    fn send(&self, document: &Value) {
        let mut datagram = String::from(DATAGRAM_HEADER);
        datagram.push_str(&document.to_string());
        if datagram.len() <= MAX_DATAGRAM {
            // Dropped on any error: tracing never holds up or fails the work.
            let _ = self.socket.send(datagram.as_bytes());
        }
    }
}

/// The UDP address in the daemon variable's value.
fn daemon_udp_address(value: &str) -> Option<SocketAddr> {
    let value = value.trim();
    let udp = value
        .split_whitespace()
        .find_map(|part| part.strip_prefix("udp:"))
        .unwrap_or(value);
    udp.to_socket_addrs().ok()?.next()
}

/// Which of our spans a subsegment is made of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Chatwork,
    Sqs,
    Statement,
}

impl Kind {
    fn of(metadata: &Metadata<'_>) -> Option<Self> {
        // sqlx asks `enabled!` (a hint, not an event) before it builds the event.
        if metadata.target() == STATEMENT_TARGET && !metadata.is_span() {
            return Some(Self::Statement);
        }
        if !metadata.is_span() || !metadata.target().starts_with("cwsync") {
            return None;
        }
        match metadata.name() {
            "chatwork" => Some(Self::Chatwork),
            "sqs" => Some(Self::Sqs),
            _ => None,
        }
    }
}

/// What the span's fields said.
#[derive(Debug, Default)]
struct Fields {
    path: Option<String>,
    summary: Option<String>,
    sql: Option<String>,
    status: Option<u64>,
    action: Option<String>,
    queue: Option<String>,
    entries: Option<u64>,
    elapsed_secs: f64,
    failed: bool,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        let slot = match field.name() {
            "path" => &mut self.path,
            "action" => &mut self.action,
            "queue" => &mut self.queue,
            "summary" => &mut self.summary,
            "db.statement" => {
                let sql = value.trim();
                if !sql.is_empty() {
                    self.sql = Some(clip_to(sql, MAX_SQL));
                }
                return;
            }
            _ => return,
        };
        *slot = Some(clip(value));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        // `%path` arrives here, as its Display.
        self.record_str(field, &format!("{value:?}"));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        match field.name() {
            "status" => self.status = Some(value),
            "entries" => self.entries = Some(value),
            _ => {}
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        if let Ok(value) = u64::try_from(value) {
            self.record_u64(field, value);
        }
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        if field.name() == "elapsed_secs" {
            self.elapsed_secs = value;
        }
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        if field.name() == "failed" {
            self.failed = value;
        }
    }
}

fn clip(text: &str) -> String {
    clip_to(text, MAX_TEXT)
}

fn clip_to(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((end, _)) => text[..end].to_owned(),
        None => text.to_owned(),
    }
}

/// A span on its way to a subsegment.
#[derive(Debug)]
struct Open {
    kind: Kind,
    trace_id: String,
    parent_id: String,
    start: SystemTime,
    fields: Fields,
}

impl Open {
    /// The independent subsegment document for this span, ended at `end`, with `id`.
    fn document(&self, id: u64, end: SystemTime) -> Value {
        let mut document = json!({
            "id": format!("{id:016x}"),
            "trace_id": self.trace_id,
            "parent_id": self.parent_id,
            "type": "subsegment",
            "start_time": epoch_secs(self.start),
            "end_time": epoch_secs(end.max(self.start)),
        });
        let object = document.as_object_mut().expect("an object");
        let fields = &self.fields;
        match self.kind {
            Kind::Chatwork => {
                object.insert("name".into(), "chatwork".into());
                object.insert("namespace".into(), "remote".into());
                let mut http = Map::new();
                http.insert(
                    "request".into(),
                    json!({ "method": "GET", "url": fields.path.as_deref().unwrap_or("") }),
                );
                match fields.status {
                    Some(status) => {
                        http.insert("response".into(), json!({ "status": status }));
                        if (400..500).contains(&status) {
                            object.insert("error".into(), true.into());
                        }
                        if status == 429 {
                            object.insert("throttle".into(), true.into());
                        }
                        if status >= 500 {
                            object.insert("fault".into(), true.into());
                        }
                    }
                    // No answer: the request failed on the way (network, timeout).
                    None => {
                        object.insert("fault".into(), true.into());
                    }
                }
                object.insert("http".into(), http.into());
            }
            Kind::Sqs => {
                object.insert("name".into(), "SQS".into());
                object.insert("namespace".into(), "aws".into());
                let mut aws = Map::new();
                if let Some(action) = &fields.action {
                    aws.insert("operation".into(), action.as_str().into());
                }
                object.insert("aws".into(), aws.into());
                let mut call = Map::new();
                if let Some(queue) = &fields.queue {
                    call.insert("queue".into(), queue.as_str().into());
                }
                if let Some(entries) = fields.entries {
                    call.insert("entries".into(), entries.into());
                }
                object.insert("metadata".into(), json!({ "cwsync": call }));
                if fields.failed {
                    object.insert("fault".into(), true.into());
                }
            }
            Kind::Statement => {
                object.insert("name".into(), "postgres".into());
                object.insert("namespace".into(), "remote".into());
                // sqlx gives the whole SQL only when it is longer than its summary.
                let query = fields.sql.as_ref().or(fields.summary.as_ref());
                object.insert(
                    "sql".into(),
                    json!({
                        "database_type": "PostgreSQL",
                        "sanitized_query": query.map(String::as_str).unwrap_or(""),
                    }),
                );
            }
        }
        document
    }
}

fn epoch_secs(time: SystemTime) -> f64 {
    time.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Where a subsegment of the current work hangs: the root and parent of a sampled trace.
fn sampled_trace() -> Option<(String, String)> {
    let trace = super::current().filter(|t| t.sampled())?;
    let parent = trace.parent()?.to_owned();
    Some((trace.root().to_owned(), parent))
}

/// The layer's own filter for a subscriber whose log level would hide sqlx's statement
/// events (`DEBUG`): lets our spans and those events through to this layer, the events
/// only while the work runs in a sampled trace, and every other callsite stays off.
/// (Beside other per-layer filters, sqlx still builds its event for each statement, a
/// short summary of its SQL, which the other layers then drop.)
pub fn filter<S>() -> impl tracing_subscriber::layer::Filter<S> {
    tracing_subscriber::filter::DynFilterFn::new(|metadata: &Metadata<'_>, _| {
        metadata.target() != STATEMENT_TARGET || sampled_trace().is_some()
    })
    .with_callsite_filter(|metadata| {
        if Kind::of(metadata).is_some() {
            tracing::subscriber::Interest::sometimes()
        } else {
            tracing::subscriber::Interest::never()
        }
    })
    .with_max_level_hint(tracing_subscriber::filter::LevelFilter::DEBUG)
}

/// A random subsegment id (64 bits, never zero).
fn subsegment_id() -> u64 {
    fastrand::u64(1..)
}

impl<S> Layer<S> for XrayLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(kind) = Kind::of(attrs.metadata()) else {
            return;
        };
        // The trace is read where the span opens: the work's own task.
        let Some((trace_id, parent_id)) = sampled_trace() else {
            return;
        };
        let Some(span) = ctx.span(id) else {
            return;
        };
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        span.extensions_mut().insert(Open {
            kind,
            trace_id,
            parent_id,
            start: SystemTime::now(),
            fields,
        });
    }

    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        if Kind::of(event.metadata()) != Some(Kind::Statement) {
            return;
        }
        // sqlx logs a statement as it ends, with how long it took.
        let Some((trace_id, parent_id)) = sampled_trace() else {
            return;
        };
        let end = SystemTime::now();
        let mut fields = Fields::default();
        event.record(&mut fields);
        let took = Duration::try_from_secs_f64(fields.elapsed_secs).unwrap_or_default();
        let open = Open {
            kind: Kind::Statement,
            trace_id,
            parent_id,
            start: end.checked_sub(took).unwrap_or(end),
            fields,
        };
        self.send(&open.document(subsegment_id(), end));
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id)
            && let Some(open) = span.extensions_mut().get_mut::<Open>()
        {
            values.record(&mut open.fields);
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else {
            return;
        };
        let Some(open) = span.extensions_mut().remove::<Open>() else {
            return;
        };
        self.send(&open.document(subsegment_id(), SystemTime::now()));
    }
}

#[cfg(test)]
mod tests {
    use tracing_subscriber::layer::Layer as _;
    use tracing_subscriber::layer::SubscriberExt;

    use super::super::{TraceHeader, continued_sync};
    use super::*;

    const ROOT: &str = "1-5759e988-bd862e3fe1be46a994272793";
    const PARENT: &str = "53995c3f42cd8ad8";

    fn open(kind: Kind, fields: Fields) -> Open {
        Open {
            kind,
            trace_id: ROOT.into(),
            parent_id: PARENT.into(),
            start: UNIX_EPOCH + Duration::from_millis(1_700_000_000_250),
            fields,
        }
    }

    #[test]
    fn a_chatwork_request_becomes_a_remote_subsegment_flagged_by_its_status() {
        let end = UNIX_EPOCH + Duration::from_millis(1_700_000_000_750);
        let ok = open(
            Kind::Chatwork,
            Fields {
                path: Some("/rooms/42/messages".into()),
                status: Some(200),
                ..Fields::default()
            },
        )
        .document(0xabc, end);
        assert_eq!(
            ok,
            json!({
                "name": "chatwork",
                "id": "0000000000000abc",
                "trace_id": ROOT,
                "parent_id": PARENT,
                "type": "subsegment",
                "start_time": 1_700_000_000.25,
                "end_time": 1_700_000_000.75,
                "namespace": "remote",
                "http": {
                    "request": { "method": "GET", "url": "/rooms/42/messages" },
                    "response": { "status": 200 },
                },
            })
        );
        let flags = |status: Option<u64>| {
            let document = open(
                Kind::Chatwork,
                Fields {
                    status,
                    ..Fields::default()
                },
            )
            .document(1, end);
            ["error", "throttle", "fault"].map(|flag| document.get(flag) == Some(&true.into()))
        };
        assert_eq!(flags(Some(204)), [false, false, false]);
        assert_eq!(flags(Some(404)), [true, false, false]);
        assert_eq!(flags(Some(429)), [true, true, false]);
        assert_eq!(flags(Some(503)), [false, false, true]);
        assert_eq!(flags(None), [false, false, true]);
        // An end before the start (a clock step) never makes a negative duration.
        let stepped = open(Kind::Chatwork, Fields::default()).document(1, UNIX_EPOCH);
        assert_eq!(stepped["end_time"], stepped["start_time"]);
    }

    #[test]
    fn an_sqs_call_becomes_an_aws_subsegment() {
        let end = UNIX_EPOCH + Duration::from_secs(1_700_000_001);
        let fields = Fields {
            action: Some("SendMessageBatch".into()),
            queue: Some("rooms.fifo".into()),
            entries: Some(3),
            failed: true,
            ..Fields::default()
        };
        let document = open(Kind::Sqs, fields).document(7, end);
        assert_eq!(document["name"], "SQS");
        assert_eq!(document["namespace"], "aws");
        assert_eq!(document["aws"]["operation"], "SendMessageBatch");
        assert_eq!(document["metadata"]["cwsync"]["queue"], "rooms.fifo");
        assert_eq!(document["metadata"]["cwsync"]["entries"], 3);
        assert_eq!(document["fault"], true);
        assert_eq!(document["parent_id"], PARENT);
    }

    #[test]
    fn the_daemon_address_is_read_in_both_forms() {
        let udp: SocketAddr = "127.0.0.2:2001".parse().unwrap();
        assert_eq!(daemon_udp_address(" 127.0.0.2:2001 "), Some(udp));
        assert_eq!(
            daemon_udp_address("tcp:127.0.0.1:2000 udp:127.0.0.2:2001"),
            Some(udp)
        );
        assert_eq!(daemon_udp_address("nonsense"), None);
        assert!(clip(&"é".repeat(300)).chars().count() == MAX_TEXT);
    }

    /// What the daemon receives when `work` runs inside `header`'s trace, with the layer
    /// filtered as the functions filter it.
    fn received_from(header: Option<&str>, work: impl FnOnce()) -> Option<Value> {
        let daemon = UdpSocket::bind("127.0.0.1:0").unwrap();
        daemon
            .set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let layer = XrayLayer::to(daemon.local_addr().unwrap()).unwrap();
        let subscriber = tracing_subscriber::registry().with(layer.with_filter(filter()));
        tracing::subscriber::with_default(subscriber, || {
            continued_sync(header.and_then(TraceHeader::parse), work)
        });
        let mut buffer = [0; MAX_DATAGRAM];
        let size = daemon.recv(&mut buffer).ok()?;
        let text = std::str::from_utf8(&buffer[..size]).unwrap();
        let document = text.strip_prefix(DATAGRAM_HEADER).expect("the header line");
        let document = serde_json::from_str(document).unwrap();
        // One datagram per span or statement.
        assert!(daemon.recv(&mut buffer).is_err());
        Some(document)
    }

    /// A "chatwork" span (ours, or of another target) closed inside `header`'s trace.
    fn received(header: &str, target_is_ours: bool) -> Option<Value> {
        received_from(Some(header), || {
            let span = if target_is_ours {
                tracing::info_span!("chatwork", path = %"/me", status = tracing::field::Empty)
            } else {
                tracing::info_span!(target: "elsewhere", "chatwork", status = 200)
            };
            span.record("status", 401_u16);
        })
    }

    fn statement() {
        tracing::debug!(
            target: "sqlx::query",
            summary = "select cwsync_budget_reserve($1, …",
            db.statement = "\n\nselect cwsync_budget_reserve($1, $2)\n",
            elapsed_secs = 0.25,
        );
    }

    #[test]
    fn a_statement_in_a_sampled_trace_reaches_the_daemon_with_its_sql() {
        let header = format!("Root={ROOT};Parent={PARENT};Sampled=1");
        let document = received_from(Some(&header), statement).expect("a datagram");
        assert_eq!(document["name"], "postgres");
        assert_eq!(document["namespace"], "remote");
        assert_eq!(document["trace_id"], ROOT);
        assert_eq!(document["parent_id"], PARENT);
        assert_eq!(
            document["sql"],
            json!({
                "database_type": "PostgreSQL",
                "sanitized_query": "select cwsync_budget_reserve($1, $2)",
            })
        );
        let took =
            document["end_time"].as_f64().unwrap() - document["start_time"].as_f64().unwrap();
        assert!((took - 0.25).abs() < 0.001, "{took}");

        let unsampled = format!("Root={ROOT};Parent={PARENT};Sampled=0");
        assert_eq!(received_from(Some(&unsampled), statement), None);
        assert_eq!(received_from(None, statement), None);
    }

    #[test]
    fn the_filter_leaves_every_other_callsite_off() {
        let daemon = UdpSocket::bind("127.0.0.1:0").unwrap();
        let layer = XrayLayer::to(daemon.local_addr().unwrap()).unwrap();
        let subscriber = tracing_subscriber::registry().with(layer.with_filter(filter()));
        tracing::subscriber::with_default(subscriber, || {
            continued_sync(
                TraceHeader::parse(&format!("Root={ROOT};Parent={PARENT};Sampled=1")),
                || {
                    assert!(tracing::enabled!(target: "sqlx::query", tracing::Level::DEBUG));
                    assert!(!tracing::enabled!(target: "hyper", tracing::Level::DEBUG));
                    assert!(!tracing::enabled!(target: "cwsync::x", tracing::Level::INFO));
                    assert!(!tracing::enabled!(target: "sqlx::query", tracing::Level::TRACE));
                },
            )
        });
    }

    #[test]
    fn a_closed_span_in_a_sampled_trace_reaches_the_daemon_and_others_do_not() {
        let document =
            received(&format!("Root={ROOT};Parent={PARENT};Sampled=1"), true).expect("a datagram");
        assert_eq!(document["trace_id"], ROOT);
        assert_eq!(document["parent_id"], PARENT);
        assert_eq!(document["http"]["request"]["url"], "/me");
        assert_eq!(document["http"]["response"]["status"], 401);
        assert_eq!(document["error"], true);
        let id = document["id"].as_str().unwrap();
        assert!(id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit()));
        assert!(document["end_time"].as_f64() >= document["start_time"].as_f64());

        for header in [
            format!("Root={ROOT};Parent={PARENT};Sampled=0"),
            format!("Root={ROOT};Parent={PARENT}"),
            format!("Root={ROOT};Sampled=1"),
        ] {
            assert_eq!(received(&header, true), None, "{header}");
        }
        let other = received(&format!("Root={ROOT};Parent={PARENT};Sampled=1"), false);
        assert_eq!(other, None);
    }

    #[test]
    fn no_daemon_listening_costs_nothing_but_the_datagram() {
        // A port nobody listens on: sending fails or vanishes, the span closes all the same.
        let port = UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let layer = XrayLayer::to(port).unwrap();
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            continued_sync(
                TraceHeader::parse(&format!("Root={ROOT};Parent={PARENT};Sampled=1")),
                || {
                    for _ in 0..3 {
                        let _span = tracing::info_span!("sqs", action = "SendMessageBatch");
                    }
                },
            )
        });
    }
}
