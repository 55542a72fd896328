//! Logging set-up: structured `tracing` events to standard error, as text or JSON lines, and,
//! when an OpenTelemetry collector is configured, spans exported to it over OTLP/HTTP.
//!
//! The log's level comes from `VELLUM_LOG` (or `RUST_LOG`), e.g. `VELLUM_LOG=debug`; default
//! `info`, without the PostgreSQL client's relay of the database's notices ("relation already
//! exists, skipping" whenever partitions are checked), which are for a database administrator.
//!
//! Traces (cargo feature `otel`, on by default) are sent when `OTEL_EXPORTER_OTLP_ENDPOINT` (or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set, with the standard `OTEL_*` variables for the
//! protocol (`http/protobuf` by default, or `http/json`), headers, timeout and batching, and
//! `OTEL_SERVICE_NAME` (default `vellum`). Every span is exported, the hot paths' `debug`
//! ones (`ingest`, `commit`) included, whatever the log's level; events at `info` and above
//! ride along as span events.

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

use crate::config::LogFormat;

/// Installs the global subscriber. Safe to call more than once (later calls do nothing).
pub fn init(format: LogFormat) {
    let filter = std::env::var("VELLUM_LOG")
        .ok()
        .or_else(|| std::env::var("RUST_LOG").ok())
        .and_then(|directives| EnvFilter::try_new(directives).ok())
        .unwrap_or_else(|| EnvFilter::new("info,tokio_postgres=warn"));
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let Some(traces) = traces() else {
        // Logs alone: one global filter, so that what is filtered out costs nothing at all
        // (per-layer filters, needed only beside the traces' layer, add work to every span).
        let builder = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .with_ansi(colour);
        let _ = match format {
            LogFormat::Text => builder.try_init(),
            LogFormat::Json => builder.json().flatten_event(true).try_init(),
        };
        return;
    };
    let log: Box<dyn Layer<Registry> + Send + Sync> = match format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(colour)
            .with_filter(filter)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_writer(std::io::stderr)
            .with_filter(filter)
            .boxed(),
    };
    let _ = tracing_subscriber::registry().with(vec![log, traces]).try_init();
}

/// Flushes the spans not yet exported (at the end of `vellum serve`).
pub fn shutdown() {
    #[cfg(feature = "otel")]
    otel::shutdown();
}

#[cfg(not(feature = "otel"))]
fn traces() -> Option<Box<dyn Layer<Registry> + Send + Sync>> {
    None
}

#[cfg(feature = "otel")]
fn traces() -> Option<Box<dyn Layer<Registry> + Send + Sync>> {
    otel::layer()
}

#[cfg(feature = "otel")]
mod otel {
    use std::sync::OnceLock;

    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_sdk::Resource;
    use opentelemetry_sdk::trace::SdkTracerProvider;
    use tracing::Level;
    use tracing_subscriber::{Layer, Registry};

    static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();

    fn configured() -> bool {
        ["OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"]
            .iter()
            .any(|name| std::env::var_os(name).is_some_and(|value| !value.is_empty()))
    }

    pub(super) fn layer() -> Option<Box<dyn Layer<Registry> + Send + Sync>> {
        if !configured() {
            return None;
        }
        let exporter = match opentelemetry_otlp::SpanExporter::builder().with_http().build() {
            Ok(exporter) => exporter,
            Err(error) => {
                eprintln!("warning: OpenTelemetry traces are off: {error}");
                return None;
            }
        };
        let mut resource = Resource::builder();
        if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
            resource = resource.with_service_name("vellum");
        }
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource.build())
            .build();
        let tracer = provider.tracer("vellum");
        let _ = PROVIDER.set(provider);
        // Spans down to `debug` (the hot paths'), events from `info` up.
        let filter = tracing_subscriber::filter::filter_fn(|metadata| {
            if metadata.is_span() {
                *metadata.level() <= Level::DEBUG
            } else {
                *metadata.level() <= Level::INFO
            }
        });
        Some(
            tracing_opentelemetry::layer()
                .with_tracer(tracer)
                .with_filter(filter)
                .boxed(),
        )
    }

    pub(super) fn shutdown() {
        if let Some(provider) = PROVIDER.get()
            && let Err(error) = provider.shutdown()
        {
            tracing::warn!(%error, "flushing OpenTelemetry traces failed");
        }
    }
}
