//! Vellum's benchmark harness: one run measures a `vellum` binary on a store of millions of
//! events and reports every figure with its ratio to a ceiling measured in the same run.
//!
//! [`run`] starts `vellum serve` as its own process and drives it over HTTP only (plus the
//! `vellum verify store` command and the store's public traits for the store ceiling):
//!
//! 1. **Ceilings.** The HTTP stack storing nothing (`vellum_http::null_ingest_router` behind
//!    `vellum_http::serve`, in this process on a runtime of its own), and a direct batched
//!    insert (`EventStore::append_events` on a fresh embedded store).
//! 2. **Empty store.** Single events from 1 and 32 clients (each request with its own
//!    `Idempotency-Key`), 32 clients paced at half the 32-client rate (the latency target),
//!    batches of 100 and 1,000 over 4 connections; every run on a fresh store.
//! 3. **Fill** to the target size with batches of 1,000 over 4 connections: the rate over each
//!    tenth, and the server's peak resident memory.
//! 4. **Full store.** The same ingest measurements; reads of the largest organization (the
//!    newest page with each single filter, a deep cursor, a rare-word search, inclusion and
//!    consistency proofs); `vellum verify store`; a CSV export through the API (rows per second,
//!    memory growth); bytes on disk per event against the events' JSON.
//!
//! Events come from a deterministic generator ([`generator`]); load comes from hyper's
//! low-level HTTP/1.1 client over kept-alive connections with bodies serialised before each run
//! starts, on the caller's runtime (the `vellum-bench` binary gives it one thread).

pub mod generator;
pub mod report;

mod ceiling;
mod client;
mod load;
mod phases;
mod pool;
mod server;

use std::path::PathBuf;

pub use report::{LoadedPurge, PurgeReport, QuietPurge, Report, ScaleOut, StreamsReport, TableBytes};

/// What to measure, and how long.
#[derive(Clone, Debug)]
pub struct BenchConfig {
    /// The `vellum` binary to measure.
    pub server_binary: PathBuf,
    /// Keep the measured store here (created if missing; a store filled by an earlier run is
    /// reused and filled up to `events`). `None`: a temporary directory, removed at the end.
    pub data_dir: Option<PathBuf>,
    /// The store size to measure at.
    pub events: u64,
    /// Seconds per measured run.
    pub seconds: f64,
    /// Runs per throughput measurement; the median run is reported.
    pub repeats: usize,
    /// Requests per kind of read.
    pub read_requests: usize,
    /// The servers' log filter (`VELLUM_LOG`): `warn` keeps the per-request log lines out of the
    /// measurement.
    pub server_log: String,
    /// A label recorded in the report (a commit, a machine).
    pub label: Option<String>,
    /// No progress lines on standard error.
    pub quiet: bool,
    /// A PostgreSQL server (a URL whose user may create databases) for [`scale_out`], and for
    /// [`run`] when `on_postgres`.
    pub postgres_url: Option<String>,
    /// Measure [`run`] on PostgreSQL (`postgres_url`): every store of the run is a database
    /// there (a fresh one per empty-store run; the measured one is `vellum_bench_store`, kept
    /// when `data_dir` is set, like the embedded store).
    pub on_postgres: bool,
}

impl Default for BenchConfig {
    fn default() -> Self {
        Self {
            server_binary: PathBuf::from("target/release/vellum"),
            data_dir: None,
            events: 10_000_000,
            seconds: 10.0,
            repeats: 3,
            read_requests: 200,
            server_log: "warn".to_owned(),
            label: None,
            quiet: false,
            postgres_url: None,
            on_postgres: false,
        }
    }
}

/// Runs every phase and returns the figures (and the table, [`Report::render`]).
pub async fn run(config: BenchConfig) -> anyhow::Result<Report> {
    phases::run(config).await
}

/// Measures ingest on the embedded store, on PostgreSQL with one node, and on PostgreSQL with
/// three nodes sharing one database (`config.postgres_url`), in one run: single events from 32
/// clients and batches of 1,000 over 4 connections, each run on a fresh store, the connections
/// spread over the nodes in turn.
pub async fn scale_out(config: BenchConfig) -> anyhow::Result<ScaleOut> {
    phases::scale_out(config).await
}

/// Measures a purge (`--purge`): a fresh embedded store filled to `config.events`, about half of
/// them past their organization's retention, purged by `vellum purge` while 8 clients send
/// single events: the purge's rate, the space the database file gave back, and the clients'
/// latency during the purge against the same load just before.
pub async fn purge(config: BenchConfig) -> anyhow::Result<PurgeReport> {
    phases::purge(config).await
}

/// Measures a log stream catching up (`--streams`): one organization of `config.events` events,
/// a generic HTTPS stream replayed from its first position to a receiver in this process while
/// 8 clients send single events: the catch-up rate, and the clients' latency during it against
/// the same load without a stream.
pub async fn streams(config: BenchConfig) -> anyhow::Result<StreamsReport> {
    phases::streams(config).await
}
