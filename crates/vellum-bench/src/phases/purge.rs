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
use crate::report::{PurgeReport, RunFigures};

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
    let outcome = bench.purge_phase(&server, &data_dir).await;
    let stopped = server.stop().await.context("stopping the server");
    let mut report = outcome?;
    stopped?;
    report.date = date;
    report.server_version = server_version;
    report.label = bench.config.label.clone();
    report.cores = bench.threads;
    bench.progress.say("done");
    Ok(report)
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

impl Bench {
    async fn purge_phase(
        &self,
        server: &super::ServerProcess,
        data_dir: &std::path::Path,
    ) -> anyhow::Result<PurgeReport> {
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
        self.progress.say(&format!(
            "purge: {} organizations with half of {total} events get a 30-day retention",
            chosen.len()
        ));

        // The same load before and during the purge, from events later than any stored.
        let pools = Pools::new(&self.generator, total);
        let workload = super::Kind::Single32.workload(&pools, &tenants.organization_ids);
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
        let (database_before, store_before) = sizes(data_dir)?;
        // The load's events occurred long ago too: what the purge will remove is what the chosen
        // organizations hold now.
        let mut to_purge = 0;
        for organization in &chosen {
            to_purge += log_size(&mut client, organization).await?;
        }
        let mut events_before = 0;
        for organization in &tenants.organization_ids {
            events_before += log_size(&mut client, organization).await?;
        }

        let mut command = self.binary.command();
        command
            .arg("purge")
            .arg("--data-dir")
            .arg(data_dir)
            .env("VELLUM_LOG", &self.binary.log_filter)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        let started = Instant::now();
        let mut purge = command.spawn().context("cannot run vellum purge")?;
        let (during, status) = load_until(&target, &workload, &mut purge).await?;
        let purge_seconds = started.elapsed().as_secs_f64();
        let output = purge.wait_with_output().await?;
        let printed = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        if !status.success() {
            bail!("vellum purge failed ({status}): {printed}");
        }
        let purged: u64 = printed
            .lines()
            .find_map(|line| line.strip_prefix("purged ")?.split(' ').next()?.parse().ok())
            .context("vellum purge printed no total")?;
        let during_figures: RunFigures = figures(&during);
        self.progress.say(&format!(
            "purge: {purged} events in {purge_seconds:.1} s; {PURGE_CLIENTS} clients during: {:.0} ev/s, p99 {:.2} ms",
            during_figures.events_per_second, during_figures.p99_ms
        ));
        // The server's checkpointer copies the WAL back within a moment: measure once it has.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let (database_after, store_after) = sizes(data_dir)?;
        // Live events after: every log's size, less what was purged and the purge records.
        let mut positions_after = 0;
        for organization in &tenants.organization_ids {
            positions_after += log_size(&mut client, organization).await?;
        }
        let events_after = positions_after.saturating_sub(purged);
        let verify = self.verify(data_dir, None, 0).await?;
        Ok(PurgeReport {
            date: String::new(),
            cores: 0,
            server_version: String::new(),
            label: None,
            events: events_before,
            events_filled: fill.events,
            events_after,
            events_to_purge: to_purge,
            events_purged: purged,
            purge_seconds,
            events_purged_per_second: purged as f64 / purge_seconds.max(f64::EPSILON),
            database_bytes_before: database_before,
            database_bytes_after: database_after,
            store_bytes_before: store_before,
            store_bytes_after: store_after,
            clients: PURGE_CLIENTS,
            ingest_before: baseline,
            ingest_during: during_figures,
            verify_seconds: verify.seconds,
        })
    }
}
