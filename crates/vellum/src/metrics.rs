//! Prometheus metrics: the recorder every crate's `metrics::counter!`/`histogram!`/`gauge!`
//! calls reach, what each metric means (its `# HELP`), and the job that refreshes the figures
//! only the store knows (sizes, backlogs, stream lag). `GET /metrics` renders them
//! (`vellum_http::router`, or the `--metrics-listen` listener).
//!
//! Names follow Prometheus conventions: a `vellum_` prefix, base units in the name (`_seconds`,
//! `_bytes`), `_total` for counters. Labels take a few fixed values each (method, route
//! template, status, outcome, state, reason, source): never an organization, stream or export
//! id, so the number of series stays bounded however many organizations a server holds.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use vellum_core::export::ExportState;
use vellum_core::stream::StreamState;
use vellum_jobs::{Job, JobError, Schedule, StepContext, StepOutcome};
use vellum_store::Store;

/// How often the figures read from the store are refreshed.
pub const STORE_GAUGES_INTERVAL: Duration = Duration::from_secs(15);

/// The most streams whose lag one refresh reads.
const MAX_STREAMS_MEASURED: u32 = 10_000;

/// Buckets of latencies, in seconds: 0.5 ms to 60 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// Buckets of long-running work (exports, purge passes), in seconds: 0.1 s to 2 h.
const LONG_BUCKETS: &[f64] = &[0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0];

/// Buckets of writes per group commit.
const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0];

/// The process's recorder, installed on first use (one per process: every server a process
/// runs records into it).
pub fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_duration_seconds".into()), LATENCY_BUCKETS)
            .and_then(|builder| {
                builder.set_buckets_for_metric(Matcher::Full("vellum_export_duration_seconds".into()), LONG_BUCKETS)
            })
            .and_then(|builder| {
                builder.set_buckets_for_metric(Matcher::Full("vellum_purge_pass_duration_seconds".into()), LONG_BUCKETS)
            })
            .and_then(|builder| {
                builder.set_buckets_for_metric(Matcher::Full("vellum_store_commit_batch_size".into()), BATCH_BUCKETS)
            })
            .expect("bucket lists are not empty");
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        // Another recorder may already be installed (a test harness's): then this one only
        // renders what reaches it, which is nothing, and that is the harness's choice.
        let _ = metrics::set_global_recorder(recorder);
        describe();
        metrics::gauge!("vellum_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
        handle
    })
}

/// Renders the exposition, after folding in what histograms gathered since the last render.
pub fn renderer() -> vellum_http::MetricsRenderer {
    let handle = handle();
    Arc::new(move || {
        handle.run_upkeep();
        handle.render()
    })
}

/// The `# HELP` of every metric (and the unit of those that have one).
fn describe() {
    describe_gauge!(
        "vellum_build_info",
        "Always 1; the version label says which release runs."
    );
    describe_counter!(
        "vellum_http_requests_total",
        "HTTP requests answered, by method, matched route template (or `unmatched`) and status."
    );
    describe_histogram!(
        "vellum_http_request_duration_seconds",
        Unit::Seconds,
        "Time from receiving a request's head to its response's head, by method and route."
    );
    describe_counter!(
        "vellum_events_ingested_total",
        "Events stored durably, by source: single, batch, legacy (Audit Trail API) or system (Vellum's own records)."
    );
    describe_counter!(
        "vellum_events_rejected_total",
        "Events (or whole requests) refused, by source and reason: invalid, schema, idempotency, organization or store."
    );
    describe_counter!("vellum_store_commits_total", "Group commits of the store.");
    describe_histogram!("vellum_store_commit_batch_size", "Writes taken into one group commit.");
    describe_histogram!(
        "vellum_store_commit_duration_seconds",
        Unit::Seconds,
        "Time one group commit took, durable write included."
    );
    describe_gauge!(
        "vellum_store_write_queue_depth",
        "Writes queued for the embedded store's writer and not yet taken into a commit."
    );
    describe_gauge!("vellum_store_size_bytes", Unit::Bytes, "Bytes the store occupies.");
    describe_counter!("vellum_log_checkpoints_signed_total", "Checkpoints signed.");
    describe_gauge!(
        "vellum_logs",
        "Organizations with a log (deleted ones included until purged)."
    );
    describe_gauge!("vellum_log_entries", "Entries in all logs together.");
    describe_counter!("vellum_exports_created_total", "Exports queued.");
    describe_counter!(
        "vellum_exports_finished_total",
        "Exports finished, by outcome: ready or error."
    );
    describe_histogram!(
        "vellum_export_duration_seconds",
        Unit::Seconds,
        "Time from an export's creation to its outcome."
    );
    describe_gauge!("vellum_exports_pending", "Exports queued or being written.");
    describe_counter!(
        "vellum_stream_deliveries_total",
        "Deliveries to log stream destinations, by outcome: delivered, failed (retried) or invalid (stopped until updated)."
    );
    describe_counter!(
        "vellum_stream_events_delivered_total",
        "Events delivered by log streams."
    );
    describe_gauge!(
        "vellum_streams",
        "Log streams, by state: active, error, invalid or inactive."
    );
    describe_gauge!(
        "vellum_stream_lag_events",
        "Log positions not yet delivered, for the stream furthest behind (inactive streams excepted)."
    );
    describe_gauge!(
        "vellum_stream_lag_seconds",
        Unit::Seconds,
        "Age of the oldest event not yet delivered, for the stream furthest behind (inactive streams excepted)."
    );
    describe_counter!("vellum_purge_passes_total", "Purge passes run.");
    describe_counter!("vellum_purge_events_removed_total", "Events removed by purges.");
    describe_counter!(
        "vellum_purge_bytes_reclaimed_total",
        Unit::Bytes,
        "Bytes purges gave back to the file system."
    );
    describe_histogram!(
        "vellum_purge_pass_duration_seconds",
        Unit::Seconds,
        "Time one purge pass took."
    );
    describe_gauge!("vellum_live_tail_subscribers", "Clients following the live tail.");
    describe_counter!(
        "vellum_live_tail_disconnected_total",
        "Live tail clients disconnected by the server, by reason: slow (fell too far behind) or shutdown."
    );
}

/// Refreshes the figures only the store knows, every [`STORE_GAUGES_INTERVAL`]: its size, its
/// logs, exports waiting, streams by state and the largest stream lag.
pub struct StoreGauges {
    store: Arc<dyn Store>,
    streams: Arc<vellum_streams::StreamService>,
}

impl StoreGauges {
    /// The job over this store and its streams.
    pub fn new(store: Arc<dyn Store>, streams: Arc<vellum_streams::StreamService>) -> Self {
        Self { store, streams }
    }
}

#[async_trait]
impl Job for StoreGauges {
    fn name(&self) -> &'static str {
        "store-gauges"
    }

    fn schedule(&self) -> Schedule {
        Schedule::every(STORE_GAUGES_INTERVAL)
    }

    async fn step(&self, _context: &StepContext) -> Result<StepOutcome, JobError> {
        metrics::gauge!("vellum_store_size_bytes").set(self.store.store_size().await? as f64);

        let policies = self.store.retention_policies().await?;
        let logs = policies.iter().filter(|policy| policy.log_size > 0).count();
        let entries: u64 = policies.iter().map(|policy| policy.log_size).sum();
        metrics::gauge!("vellum_logs").set(logs as f64);
        metrics::gauge!("vellum_log_entries").set(entries as f64);

        let pending = self
            .store
            .exports_in_state(ExportState::Pending, vellum_store::now())
            .await?
            .len();
        metrics::gauge!("vellum_exports_pending").set(pending as f64);

        let streams = self.store.all_streams(MAX_STREAMS_MEASURED).await?;
        let (mut lag_events, mut lag_seconds) = (0_u64, 0_f64);
        for state in [
            StreamState::Active,
            StreamState::Error,
            StreamState::Invalid,
            StreamState::Inactive,
        ] {
            let count = streams.iter().filter(|stream| stream.state == state).count();
            metrics::gauge!("vellum_streams", "state" => state.as_str()).set(count as f64);
        }
        for stream in streams.iter().filter(|stream| stream.state != StreamState::Inactive) {
            match self.streams.lag(stream).await {
                Ok(lag) => {
                    lag_events = lag_events.max(lag.events);
                    lag_seconds = lag_seconds.max(lag.seconds);
                }
                // Deleted meanwhile, or the store is failing: the next refresh tells.
                Err(error) => tracing::debug!(stream = %stream.id, %error, "cannot measure a stream's lag"),
            }
        }
        metrics::gauge!("vellum_stream_lag_events").set(lag_events as f64);
        metrics::gauge!("vellum_stream_lag_seconds").set(lag_seconds);
        Ok(StepOutcome::Idle)
    }
}
