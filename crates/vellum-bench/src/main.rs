//! `vellum-bench`: runs the benchmark harness, prints the table and writes the JSON report.

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use vellum_bench::BenchConfig;

/// Measures a `vellum` binary on a store of many events; prints a table of figures with their
/// ratios to ceilings measured in the same run, and writes them as JSON.
#[derive(Debug, Parser)]
#[command(version)]
struct Arguments {
    /// The `vellum` binary to measure.
    #[arg(long, default_value = "target/release/vellum")]
    server_binary: PathBuf,
    /// Keep the measured store in this directory (reused, and filled up to --events, by later
    /// runs). Default: a temporary directory, removed at the end.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// The store size to measure at, in events.
    #[arg(long, default_value_t = 10_000_000)]
    events: u64,
    /// Seconds per measured run.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Runs per throughput measurement (the median run is reported).
    #[arg(long, default_value_t = 3)]
    repeats: usize,
    /// Requests per kind of read.
    #[arg(long, default_value_t = 200)]
    read_requests: usize,
    /// The servers' log filter (VELLUM_LOG).
    #[arg(long, default_value = "warn")]
    server_log: String,
    /// A label recorded in the report, such as a commit.
    #[arg(long)]
    label: Option<String>,
    /// Where to write the JSON report.
    #[arg(long, default_value = "bench/results.json")]
    output: PathBuf,
    /// No progress lines on standard error.
    #[arg(long)]
    quiet: bool,
    /// Measure ingest on the embedded store and on PostgreSQL with one and three nodes instead
    /// (`--scale-out --postgres-url URL`): a table of its own, and its JSON in --output.
    #[arg(long, requires = "postgres_url")]
    scale_out: bool,
    /// A PostgreSQL server whose user may create databases (one fresh database per run), for
    /// --scale-out and --on-postgres. Its settings are measured too: keep fsync and
    /// synchronous_commit on.
    #[arg(long, env = "VELLUM_BENCH_POSTGRES_URL", hide_env_values = true)]
    postgres_url: Option<String>,
    /// Measure the whole table on PostgreSQL (`--on-postgres --postgres-url URL`): every store
    /// is a database there; the measured one, `vellum_bench_store`, is kept with --data-dir.
    #[arg(long, requires = "postgres_url", conflicts_with = "scale_out")]
    on_postgres: bool,
    /// Measure a purge instead (`--purge --events 2000000`): a fresh embedded store of --events,
    /// about half of them past retention, purged by `vellum purge` while 8 clients ingest.
    #[arg(long, conflicts_with_all = ["scale_out", "on_postgres"])]
    purge: bool,
    /// Measure a log stream catching up instead (`--streams --events 1000000`): one organization
    /// of --events, replayed to a receiver in this process while 8 clients ingest.
    #[arg(long, conflicts_with_all = ["scale_out", "on_postgres", "purge"])]
    streams: bool,
}

fn main() -> anyhow::Result<()> {
    let arguments = Arguments::parse();
    let config = BenchConfig {
        server_binary: arguments.server_binary,
        data_dir: arguments.data_dir,
        events: arguments.events,
        seconds: arguments.seconds,
        repeats: arguments.repeats,
        read_requests: arguments.read_requests,
        server_log: arguments.server_log,
        label: arguments.label,
        quiet: arguments.quiet,
        postgres_url: arguments.postgres_url,
        on_postgres: arguments.on_postgres,
    };
    // The load generator gets one thread: the server under test needs the cores more.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot build the runtime")?;
    // On Ctrl-C the run is dropped, which stops its servers and removes its temporary stores.
    let (table, json) = if arguments.streams {
        let report = runtime.block_on(interruptible(vellum_bench::streams(config)))?;
        (report.render(), serde_json::to_string_pretty(&report))
    } else if arguments.purge {
        let report = runtime.block_on(interruptible(vellum_bench::purge(config)))?;
        (report.render(), serde_json::to_string_pretty(&report))
    } else if arguments.scale_out {
        let report = runtime.block_on(interruptible(vellum_bench::scale_out(config)))?;
        (report.render(), serde_json::to_string_pretty(&report))
    } else {
        let report = runtime.block_on(interruptible(vellum_bench::run(config)))?;
        (report.render(), serde_json::to_string_pretty(&report))
    };
    let json = json.context("cannot encode the report")?;
    print!("{table}");
    if let Some(parent) = arguments
        .output
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
    {
        std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
    }
    std::fs::write(&arguments.output, json + "\n")
        .with_context(|| format!("cannot write {}", arguments.output.display()))?;
    eprintln!("report written to {}", arguments.output.display());
    Ok(())
}

/// Runs `run` unless Ctrl-C comes first.
async fn interruptible<T>(run: impl std::future::Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    tokio::select! {
        report = run => report,
        interrupted = tokio::signal::ctrl_c() => {
            interrupted.context("cannot listen for Ctrl-C")?;
            anyhow::bail!("interrupted")
        }
    }
}
