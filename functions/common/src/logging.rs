//! The functions' logging: what `lambda_runtime`'s default subscriber does (JSON lines when
//! the function's `LoggingConfig` says so, the level from `AWS_LAMBDA_LOG_LEVEL` or
//! `RUST_LOG`), plus the two things an operator follows a sync by (docs/architecture.md,
//! "Tracing"):
//!
//! - every JSON line carries `traceId`, the X-Ray trace the work belongs to
//!   ([`cwsync::trace::current`]: the trace a consumer continues from its record, else the
//!   invocation's own);
//! - every span is logged when it closes, with how long it took (`time.busy`,
//!   `time.idle`): the HTTP request, each record, each Chatwork request and each SQS call;
//! - in a sampled trace, each Chatwork request, SQS call and database statement also
//!   reaches X-Ray as a subsegment, when Lambda names its daemon ([`cwsync::trace::xray`]).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use cwsync::trace::xray::{self, XrayLayer};
use lambda_http::RequestExt;
use lambda_http::tower::Service;
use tracing::{Event, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::fmt::format::{FmtSpan, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::{Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;

/// Installs the subscriber (once; a second call keeps the first).
pub fn init() {
    let level = std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .or_else(|_| std::env::var("RUST_LOG"))
        .ok()
        .and_then(|l| l.parse::<LevelFilter>().ok())
        .unwrap_or(LevelFilter::INFO);
    let filter = EnvFilter::builder()
        .with_default_directive(level.into())
        .from_env_lossy();
    let json = std::env::var("AWS_LAMBDA_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let logs = tracing_subscriber::fmt::layer()
        .with_target(false)
        .without_time()
        .with_span_events(FmtSpan::CLOSE)
        .with_writer(std::io::stdout);
    // Subsegments for X-Ray, when Lambda's runtime names its daemon; with a filter of its
    // own, since the statements it sends are below the logs' level.
    let xray = XrayLayer::from_env();
    let _ = if json {
        let format = tracing_subscriber::fmt::format()
            .json()
            .with_target(false)
            .without_time();
        let logs = logs.json().event_format(WithTraceId(format));
        let registry = tracing_subscriber::registry().with(logs.with_filter(filter));
        registry
            .with(xray.map(|layer| layer.with_filter(xray::filter())))
            .try_init()
    } else {
        let registry = tracing_subscriber::registry().with(logs.with_filter(filter));
        registry
            .with(xray.map(|layer| layer.with_filter(xray::filter())))
            .try_init()
    };
}

/// A JSON event format with the current trace's id added as `traceId`.
struct WithTraceId<F>(F);

impl<S, N, F> FormatEvent<S, N> for WithTraceId<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut line = String::new();
        self.0.format_event(ctx, Writer::new(&mut line), event)?;
        writer.write_str(&with_trace_id(line, cwsync::trace::current().as_ref()))
    }
}

/// `line` (one JSON object and a newline) with `"traceId"` set, when there is a trace.
fn with_trace_id(line: String, trace: Option<&cwsync::trace::TraceHeader>) -> String {
    let Some(trace) = trace else {
        return line;
    };
    match serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(line.trim_end()) {
        Ok(mut object) => {
            object.insert("traceId".into(), trace.root().into());
            let mut line = serde_json::Value::Object(object).to_string();
            line.push('\n');
            line
        }
        Err(_) => line,
    }
}

/// The header of the invocation `context` belongs to, if Lambda traced it.
pub fn invocation_trace(context: &lambda_runtime::Context) -> Option<cwsync::trace::TraceHeader> {
    context
        .xray_trace_id
        .as_deref()
        .and_then(cwsync::trace::TraceHeader::parse)
}

/// A service that runs each request of the HTTP API function inside its invocation's
/// trace (so that the messages it sends carry it, whether or not the runtime also set
/// `_X_AMZN_TRACE_ID`).
#[derive(Clone)]
pub struct InvocationTrace<S>(pub S);

impl<S> Service<lambda_http::Request> for InvocationTrace<S>
where
    S: Service<lambda_http::Request>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: lambda_http::Request) -> Self::Future {
        let trace = request.lambda_context_ref().and_then(invocation_trace);
        Box::pin(cwsync::trace::continued(trace, self.0.call(request)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_json_line_gets_the_trace_id_and_other_lines_stay_as_they_are() {
        let trace = cwsync::trace::TraceHeader::parse(
            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
        )
        .unwrap();
        let line = with_trace_id("{\"message\":\"hi\"}\n".into(), Some(&trace));
        let value: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(value["traceId"], "1-5759e988-bd862e3fe1be46a994272793");
        assert_eq!(value["message"], "hi");
        assert!(line.ends_with('\n'));
        assert_eq!(with_trace_id("{\"a\":1}\n".into(), None), "{\"a\":1}\n");
        assert_eq!(
            with_trace_id("not json\n".into(), Some(&trace)),
            "not json\n"
        );
    }
}
