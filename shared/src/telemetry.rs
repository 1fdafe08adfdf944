//! Logging set-up for processes that are not Lambda functions (the local runner, tools).
//! Lambda functions use the runtime's own initialisation, which reads the Lambda logging
//! configuration.

use tracing_subscriber::EnvFilter;

/// The filter used when `RUST_LOG` is unset: our own crates at info, chatty dependencies
/// at warn.
pub const DEFAULT_FILTER: &str =
    "info,sqlx=warn,hyper=warn,aws_config=warn,aws_smithy_runtime=warn";

/// Installs a subscriber that writes human-readable lines to stderr (JSON lines when
/// `LOG_FORMAT=json`). Calling it twice is harmless.
pub fn init_local() {
    init_local_with(DEFAULT_FILTER);
}

/// [`init_local`] with `default` as the filter when `RUST_LOG` is unset.
pub fn init_local_with(default: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = if std::env::var("LOG_FORMAT").is_ok_and(|f| f == "json") {
        builder.json().with_current_span(true).try_init()
    } else {
        builder.try_init()
    };
    // Already installed (a test that set up its own subscriber): keep that one.
    let _ = result;
}
