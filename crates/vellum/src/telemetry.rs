//! Logging set-up: structured `tracing` events to standard error, as text or JSON lines.
//! The level comes from `VELLUM_LOG` (or `RUST_LOG`), e.g. `VELLUM_LOG=debug`; default `info`,
//! without the PostgreSQL client's relay of the database's notices ("relation already exists,
//! skipping" whenever partitions are checked), which are for a database administrator.

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Installs the global subscriber. Safe to call more than once (later calls do nothing).
pub fn init(format: LogFormat) {
    let filter = std::env::var("VELLUM_LOG")
        .ok()
        .or_else(|| std::env::var("RUST_LOG").ok())
        .and_then(|directives| EnvFilter::try_new(directives).ok())
        .unwrap_or_else(|| EnvFilter::new("info,tokio_postgres=warn"));
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colour);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}
