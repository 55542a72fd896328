//! The purge measurement (`--purge`): a fresh embedded store filled to `--events`, the
//! organizations holding about half of them given a 30-day retention (all the generator's
//! events are older), then `vellum purge` run while 8 clients send single events. It reports the
//! purge's rate, the space the database file gave back, and the clients' latency during the purge
//! against the same load just before it, in the same run.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use hyper::StatusCode;
use serde_json::json;

use super::{API_KEY, Bench, FILL_BATCH, Pools, figures, log_size, prepare, search_index_caught_up};
use crate::client::{Client, Target};
use crate::load::{self, Latencies, RunResult, Shape};
use crate::report::{LoadedPurge, PurgeReport, QuietPurge, RunFigures, TableBytes};

/// Clients sending single events during the purge (the figure).
const PURGE_CLIENTS: usize = 8;
/// Each chunk of load while the purge runs.
const CHUNK: Duration = Duration::from_secs(2);

pub(crate) async fn purge(config: crate::BenchConfig) -> anyhow::Result<PurgeReport> {
    if config.events < 2 * FILL_BATCH {
        bail!("--events must be at least {}", 2 * FILL_BATCH);
    }
    let (bench, date) = Bench::new(config)?;
    let server_version = bench.server_version().await?;
    let data_dir = bench.work.path().join("purge-store");
    let server = bench.start_server_on(&data_dir, None).await?;
    let prepared = bench.purge_prepare(&server, &data_dir).await;
    let stopped = server.stop().await.context("stopping the server");
    let prepared = prepared?;
    stopped?;

    // The space and the rate are measured on an identical copy purged with nothing else running:
    // the clients' events would otherwise count against the space given back.
    let quiet_dir = bench.work.path().join("purge-store-quiet");
    copy_store(&data_dir, &quiet_dir)?;
    let quiet = bench.quiet_purge(&quiet_dir, &prepared).await?;

    let server = bench.start_server_on(&data_dir, None).await?;
    let outcome = bench.loaded_purge(&server, &data_dir, &prepared).await;
    let stopped = server.stop().await.context("stopping the server");
    let loaded = outcome?;
    stopped?;
    let report = PurgeReport {
        date,
        cores: bench.threads,
        server_version,
        label: bench.config.label.clone(),
        events: prepared.events,
        events_filled: prepared.events_filled,
        events_to_purge: prepared.events_to_purge,
        quiet,
        loaded,
    };
    bench.progress.say("done");
    Ok(report)
}

/// Copies a stopped store's files (not its export files) into a new directory.
fn copy_store(from: &std::path::Path, to: &std::path::Path) -> anyhow::Result<()> {
    std::fs::create_dir(to).with_context(|| format!("cannot create {}", to.display()))?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name()))
                .with_context(|| format!("cannot copy {}", entry.path().display()))?;
        }
    }
    Ok(())
}

/// Bytes in pages and unused bytes within them, per table and index, from SQLite's `dbstat`.
fn breakdown(database: &std::path::Path) -> anyhow::Result<Vec<TableBytes>> {
    let connection = rusqlite::Connection::open_with_flags(database, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .with_context(|| format!("cannot open {}", database.display()))?;
    let mut statement = connection.prepare(
        "select name, sum(pgsize), sum(unused) from dbstat where aggregate = true group by name order by 2 desc",
    )?;
    let rows = statement
        .query_map([], |row| {
            Ok(TableBytes {
                name: row.get(0)?,
                bytes: row.get::<_, i64>(1)?.try_into().unwrap_or_default(),
                unused: row.get::<_, i64>(2)?.try_into().unwrap_or_default(),
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

fn file_bytes(path: &std::path::Path) -> u64 {
    std::fs::metadata(path).map_or(0, |metadata| metadata.len())
}

/// The database file, and the files of the whole store (WAL and search index included).
fn sizes(data_dir: &std::path::Path) -> anyhow::Result<(u64, u64)> {
    let mut total = 0;
    for entry in std::fs::read_dir(data_dir)? {
        let entry = entry?;
        if entry.file_name().to_string_lossy().starts_with("vellum") {
            total += entry.metadata()?.len();
        }
    }
    Ok((file_bytes(&data_dir.join("vellum.sqlite3")), total))
}

/// Runs the load in chunks until `done` resolves, and merges the chunks.
async fn load_until(
    target: &Target,
    workload: &load::Workload,
    done: &mut tokio::process::Child,
) -> anyhow::Result<(RunResult, std::process::ExitStatus)> {
    let mut events = 0;
    let mut seconds = 0.0;
    let mut latencies = Vec::new();
    loop {
        let shape = Shape {
            connections: PURGE_CLIENTS,
            duration: CHUNK,
            pace: None,
        };
        let chunk = load::run(target, workload, shape).await?;
        events += chunk.events;
        seconds += chunk.seconds;
        latencies.extend(chunk.latencies.micros());
        if let Some(status) = done.try_wait()? {
            return Ok((
                RunResult {
                    events,
                    seconds,
                    latencies: Latencies::new(latencies),
                },
                status,
            ));
        }
    }
}

/// The filled store, its organizations and which of them the purge will empty.
struct Prepared {
    tenants: super::Tenants,
    chosen: Vec<String>,
    /// Events in the store once filled and topped up.
    events: u64,
    events_filled: u64,
    /// Events of the chosen organizations.
    events_to_purge: u64,
}

/// Runs `vellum purge --data-dir` and returns the number it reports removing and its output.
async fn run_purge(bench: &Bench, data_dir: &std::path::Path) -> anyhow::Result<tokio::process::Child> {
    let mut command = bench.binary.command();
    command
        .arg("purge")
        .arg("--data-dir")
        .arg(data_dir)
        .env("VELLUM_LOG", &bench.binary.log_filter)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    command.spawn().context("cannot run vellum purge")
}

/// The number of events a finished `vellum purge` reported removing.
fn purged_count(status: std::process::ExitStatus, output: &std::process::Output) -> anyhow::Result<u64> {
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    if !status.success() {
        bail!("vellum purge failed ({status}): {printed}");
    }
    printed
        .lines()
        .find_map(|line| line.strip_prefix("purged ")?.split(' ').next()?.parse().ok())
        .context("vellum purge printed no total")
}

impl Bench {
    /// Fills the store, tops the organizations to purge up to exactly half, and gives them a
    /// 30-day retention (every generated event is older) and the others 3,650 days.
    async fn purge_prepare(
        &self,
        server: &super::ServerProcess,
        data_dir: &std::path::Path,
    ) -> anyhow::Result<Prepared> {
        let target = Target::new(server.address, API_KEY)?;
        let tenants = prepare(&target).await?;
        let fill = self.fill(server, &target, &tenants, 0).await?;
        search_index_caught_up(data_dir).await?;
        let mut client = Client::connect(&target).await?;

        // The organizations whose events add up closest to half, largest first, get 30 days.
        let mut sizes_by_organization = Vec::new();
        for organization in &tenants.organization_ids {
            sizes_by_organization.push((log_size(&mut client, organization).await?, organization.clone()));
        }
        sizes_by_organization.sort_by_key(|(size, _)| std::cmp::Reverse(*size));
        let total: u64 = sizes_by_organization.iter().map(|(size, _)| size).sum();
        let (mut chosen, mut to_purge) = (Vec::new(), 0);
        for (size, organization) in &sizes_by_organization {
            if to_purge + size <= total / 2 + total / 20 {
                to_purge += size;
                chosen.push(organization.clone());
            }
        }
        // The generator's organizations are of unequal sizes: top the chosen ones up (with
        // events as old as the rest) until they hold exactly half of the store.
        let top_up = total.saturating_sub(2 * to_purge);
        if top_up > 0 {
            self.progress
                .say(&format!("purge: {top_up} more events for the organizations to purge"));
            let ids: Arc<[String]> = (0..crate::generator::ORGANIZATIONS)
                .map(|index| chosen[index % chosen.len()].clone())
                .collect();
            let (batches, generator_thread) =
                load::spawn_fill_generator(Arc::clone(&self.generator), ids, total, total + top_up, FILL_BATCH)?;
            let result = load::fill(&target, batches, super::BATCH_CONNECTIONS, total, total + top_up).await;
            let generated = tokio::task::spawn_blocking(move || generator_thread.join()).await;
            if result?.events != top_up || !matches!(generated, Ok(Ok(()))) {
                bail!("the top-up did not send {top_up} events");
            }
            search_index_caught_up(data_dir).await?;
        }
        let total = total + top_up;
        for (_, organization) in &sizes_by_organization {
            let days = if chosen.contains(organization) { 30 } else { 3650 };
            let reply = client
                .send(
                    hyper::Method::PUT,
                    &format!("/organizations/{organization}/audit_logs_retention"),
                    Some(json!({"retention_period_in_days": days}).to_string().into()),
                    None,
                )
                .await?;
            if reply.status != StatusCode::OK {
                bail!("setting a retention answered {}: {}", reply.status, reply.excerpt());
            }
        }
        let mut events_to_purge = 0;
        for organization in &chosen {
            events_to_purge += log_size(&mut client, organization).await?;
        }
        self.progress.say(&format!(
            "purge: {} organizations with {events_to_purge} of {total} events get a 30-day retention",
            chosen.len()
        ));
        Ok(Prepared {
            tenants,
            chosen,
            events: total,
            events_filled: fill.events,
            events_to_purge,
        })
    }

    /// `vellum purge` on a stopped copy of the store, with nothing else running: the space it
    /// gives back and its rate alone.
    async fn quiet_purge(&self, data_dir: &std::path::Path, prepared: &Prepared) -> anyhow::Result<QuietPurge> {
        let database = data_dir.join("vellum.sqlite3");
        let tables_before = breakdown(&database)?;
        let (database_before, store_before) = sizes(data_dir)?;
        self.progress.say("purge: the quiet copy");
        let started = Instant::now();
        let purge = run_purge(self, data_dir).await?;
        let output = purge.wait_with_output().await?;
        let seconds = started.elapsed().as_secs_f64();
        let purged = purged_count(output.status, &output)?;
        let (database_after, store_after) = sizes(data_dir)?;
        let tables_after = breakdown(&database)?;
        self.progress.say(&format!(
            "purge: {purged} events in {seconds:.1} s; the database file {database_before} -> {database_after} bytes"
        ));
        let verify = self.verify(data_dir, None, 0).await?;
        Ok(QuietPurge {
            events_purged: purged,
            events_after: prepared.events.saturating_sub(purged),
            seconds,
            events_purged_per_second: purged as f64 / seconds.max(f64::EPSILON),
            database_bytes_before: database_before,
            database_bytes_after: database_after,
            store_bytes_before: store_before,
            store_bytes_after: store_after,
            tables_before,
            tables_after,
            verify_seconds: verify.seconds,
        })
    }

    /// `vellum purge` on the live store while 8 clients send single events, against the same
    /// load just before.
    async fn loaded_purge(
        &self,
        server: &super::ServerProcess,
        data_dir: &std::path::Path,
        prepared: &Prepared,
    ) -> anyhow::Result<LoadedPurge> {
        let target = Target::new(server.address, API_KEY)?;
        let mut client = Client::connect(&target).await?;
        let organizations = &prepared.tenants.organization_ids;
        // The same load before and during the purge, from events later than any stored.
        let pools = Pools::new(&self.generator, prepared.events);
        let workload = super::Kind::Single32.workload(&pools, organizations);
        let before = load::run(
            &target,
            &workload,
            Shape {
                connections: PURGE_CLIENTS,
                duration: self.duration,
                pace: None,
            },
        )
        .await?;
        let baseline = figures(&before);
        self.progress.say(&format!(
            "purge: {PURGE_CLIENTS} clients before: {:.0} ev/s, p99 {:.2} ms",
            baseline.events_per_second, baseline.p99_ms
        ));
        // The load's events occurred long ago too: the purge removes what the chosen
        // organizations hold when it reads their logs' sizes, some of the clients' events too.
        let mut to_purge = 0;
        for organization in &prepared.chosen {
            to_purge += log_size(&mut client, organization).await?;
        }
        let started = Instant::now();
        let mut purge = run_purge(self, data_dir).await?;
        let (during, status) = load_until(&target, &workload, &mut purge).await?;
        let seconds = started.elapsed().as_secs_f64();
        let output = purge.wait_with_output().await?;
        let purged = purged_count(status, &output)?;
        let during_figures: RunFigures = figures(&during);
        self.progress.say(&format!(
            "purge: {purged} events in {seconds:.1} s; {PURGE_CLIENTS} clients during: {:.0} ev/s, p99 {:.2} ms",
            during_figures.events_per_second, during_figures.p99_ms
        ));
        let verify = self.verify(data_dir, None, 0).await?;
        Ok(LoadedPurge {
            clients: PURGE_CLIENTS,
            events_to_purge: to_purge,
            events_purged: purged,
            seconds,
            events_sent: during.events,
            ingest_before: baseline,
            ingest_during: during_figures,
            verify_seconds: verify.seconds,
        })
    }
}
