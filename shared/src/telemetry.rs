//! Logging set-up for processes that are not Lambda functions (the local runner, tools).
//! Lambda functions use the runtime's own initialisation, which reads the Lambda logging
//! configuration.

use tracing_subscriber::EnvFilter;

use crate::config::Env;

/// The filter used when `RUST_LOG` is unset: our own crates at info, chatty dependencies
/// at warn.
pub const DEFAULT_FILTER: &str =
    "info,sqlx=warn,hyper=warn,aws_config=warn,aws_smithy_runtime=warn";

/// Installs a subscriber that writes human-readable lines to stderr (JSON lines when
/// `LOG_FORMAT=json`), filtered by `RUST_LOG`. Calling it twice is harmless.
pub fn init_local(env: &Env) {
    init_local_with(env, DEFAULT_FILTER);
}

/// [`init_local`] with `default` as the filter when `RUST_LOG` is unset (or not a filter).
pub fn init_local_with(env: &Env, default: &str) {
    // Read through `env` rather than `EnvFilter::from_default_env`, so that the
    // environment is read in one place and a blank value counts as unset, as for every
    // other setting.
    let filter = env
        .get("RUST_LOG")
        .and_then(|dirs| EnvFilter::try_new(dirs).ok())
        .unwrap_or_else(|| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = if env.get("LOG_FORMAT") == Some("json") {
        builder.json().with_current_span(true).try_init()
    } else {
        builder.try_init()
    };
    // Already installed (a test that set up its own subscriber): keep that one.
    let _ = result;
}
