//! The X-Ray trace a piece of work belongs to, carried across the queues (see
//! docs/architecture.md, "Tracing").
//!
//! Lambda gives each invocation of a traced function a trace header (`Root=1-...;
//! Parent=...;Sampled=...`). The API function hands its header to every message it sends
//! (the SQS message system attribute `AWSTraceHeader`); a consumer reads it back from
//! each record and runs the record inside it ([`continued`]), so that what the consumer
//! logs, and the messages it sends in turn, belong to the trace of the request that
//! started the work. [`current`] is that trace: the one continued here, else the
//! invocation's own.

use std::future::Future;

pub mod xray;

/// The environment variable in which Lambda's runtime puts the invocation's header.
pub const LAMBDA_TRACE_VAR: &str = "_X_AMZN_TRACE_ID";

/// The SQS message system attribute that carries a trace header.
pub const SQS_TRACE_ATTRIBUTE: &str = "AWSTraceHeader";

/// An X-Ray trace header, reduced to the keys X-Ray defines (`Root`, `Parent`,
/// `Sampled`), with a well-formed root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceHeader {
    header: String,
    root_len: usize,
}

impl TraceHeader {
    /// Reads a header; `None` unless it has a root of the form `1-<8 hex>-<24 hex>`.
    /// A parent must be 16 hex digits and `Sampled` 0, 1 or `?`, or they are dropped.
    pub fn parse(text: &str) -> Option<Self> {
        let (mut root, mut parent, mut sampled) = (None, None, None);
        for pair in text.split(';') {
            let Some((key, value)) = pair.trim().split_once('=') else {
                continue;
            };
            match key {
                "Root" if is_root(value) => root = Some(value),
                "Parent" if value.len() == 16 && is_hex(value) => parent = Some(value),
                "Sampled" if matches!(value, "0" | "1" | "?") => sampled = Some(value),
                _ => {}
            }
        }
        let root = root?;
        let mut header = format!("Root={root}");
        if let Some(parent) = parent {
            header.push_str(";Parent=");
            header.push_str(parent);
        }
        if let Some(sampled) = sampled {
            header.push_str(";Sampled=");
            header.push_str(sampled);
        }
        Some(Self {
            header,
            root_len: root.len(),
        })
    }

    /// The trace id (`1-5759e988-bd862e3fe1be46a994272793`): what X-Ray's trace map and
    /// the `traceId` of every JSON log line show.
    pub fn root(&self) -> &str {
        &self.header["Root=".len().."Root=".len() + self.root_len]
    }

    /// The id of the segment the work hangs under (`Parent`), if the header names one.
    pub fn parent(&self) -> Option<&str> {
        self.value("Parent")
    }

    /// Whether X-Ray records this trace (`Sampled=1`).
    pub fn sampled(&self) -> bool {
        self.value("Sampled") == Some("1")
    }

    fn value(&self, key: &str) -> Option<&str> {
        self.header.split(';').find_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            (k == key).then_some(v)
        })
    }

    /// The header as it travels (`Root=...;Parent=...;Sampled=...`).
    pub fn as_str(&self) -> &str {
        &self.header
    }
}

impl std::fmt::Display for TraceHeader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.header)
    }
}

fn is_hex(text: &str) -> bool {
    text.bytes().all(|b| b.is_ascii_hexdigit())
}

fn is_root(value: &str) -> bool {
    let mut parts = value.split('-');
    matches!(
        (parts.next(), parts.next(), parts.next(), parts.next()),
        (Some("1"), Some(time), Some(id), None)
            if time.len() == 8 && is_hex(time) && id.len() == 24 && is_hex(id)
    )
}

tokio::task_local! {
    static CONTINUED: TraceHeader;
}

/// The trace the current work belongs to: the one [`continued`] around it, else the
/// invocation's (Lambda's `_X_AMZN_TRACE_ID`), else none (the local runner, tests).
pub fn current() -> Option<TraceHeader> {
    CONTINUED.try_with(Clone::clone).ok().or_else(|| {
        std::env::var(LAMBDA_TRACE_VAR)
            .ok()
            .and_then(|v| TraceHeader::parse(&v))
    })
}

/// Runs `work` as part of the trace `header` (nothing changes without one).
pub async fn continued<F: Future>(header: Option<TraceHeader>, work: F) -> F::Output {
    match header {
        Some(header) => CONTINUED.scope(header, work).await,
        None => work.await,
    }
}

/// [`continued`] for work that does not wait.
pub fn continued_sync<R>(header: Option<TraceHeader>, work: impl FnOnce() -> R) -> R {
    match header {
        Some(header) => CONTINUED.sync_scope(header, work),
        None => work(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOT: &str = "1-5759e988-bd862e3fe1be46a994272793";

    #[test]
    fn a_header_keeps_the_keys_xray_defines_and_needs_a_root() {
        let header = TraceHeader::parse(&format!(
            "Root={ROOT};Parent=53995c3f42cd8ad8;Sampled=1;Lineage=a:b"
        ))
        .unwrap();
        assert_eq!(header.root(), ROOT);
        assert_eq!(header.parent(), Some("53995c3f42cd8ad8"));
        assert!(header.sampled());
        assert_eq!(
            header.as_str(),
            format!("Root={ROOT};Parent=53995c3f42cd8ad8;Sampled=1")
        );
        let bare = TraceHeader::parse(&format!("Parent=zz;Root={ROOT}")).unwrap();
        assert_eq!(bare.as_str(), format!("Root={ROOT}"));
        assert_eq!(bare.parent(), None);
        assert!(!bare.sampled());
        for bad in [
            "",
            "Parent=53995c3f42cd8ad8",
            "Root=1-5759e988-short",
            "Root=2-5759e988-bd862e3fe1be46a994272793",
            "Root=1-5759e98g-bd862e3fe1be46a994272793",
            "Root=1-5759e988-bd862e3fe1be46a994272793-x",
        ] {
            assert_eq!(TraceHeader::parse(bad), None, "{bad}");
        }
    }

    #[tokio::test]
    async fn work_continued_in_a_trace_sees_it_and_other_work_does_not() {
        let header = TraceHeader::parse(&format!("Root={ROOT}"));
        let seen = continued(header.clone(), async { current() }).await;
        assert_eq!(seen, header);
        // The test process is no Lambda invocation.
        assert_eq!(continued(None, async { current() }).await, None);
    }
}
