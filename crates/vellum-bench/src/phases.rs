//! The phases of a run, in order: ceilings, the empty store, the fill, the full store (ingest,
//! reads, `verify store`, an export), and the disk.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use hyper::StatusCode;
use serde_json::{Value, json};
use time::format_description::well_known::Rfc3339;

use crate::BenchConfig;
use crate::ceiling::{NullServer, store_ceiling};
use crate::client::{Client, Target, query_value};
use crate::generator::{Generator, ORGANIZATIONS, RARE_TOKEN, SplitMix64, action_schemas, organization_names};
use crate::load::{self, RunResult, Shape, Workload};
use crate::pool::Pool;
use crate::report::{
    Ceilings, Disk, Export, Fill, Ingest, Measured, ReadFigure, Reads, Report, RunFigures, Settings, Verify,
};
use crate::server::{Binary, RssSampler, ServerProcess, children_cpu_seconds, resident_bytes};
use vellum_store::postgres::testing::TestDatabase;

mod purge;
mod streams;
pub(crate) use purge::purge;
pub(crate) use streams::streams;

/// The API key every server of a run is given (and a reused store keeps).
const API_KEY: &str = "sk_bench_0123456789abcdef0123";
/// The organization id in the ceiling's requests.
const CEILING_ORGANIZATION: &str = "org_01EHWNCE74X7JSDV0X3SZ3KJNY";
/// Events per fill request, and connections sending them.
const FILL_BATCH: u64 = 1000;
const BATCH_CONNECTIONS: usize = 4;
const MANY_CLIENTS: usize = 32;
/// Requests in each pool: enough that a run cycles through varied events.
const SINGLE_POOL: u64 = 20_000;
const BATCH_100_POOL: u64 = 200;
const BATCH_1000_POOL: u64 = 50;
/// The most time one kind of read may take (an unindexed search of millions of events is slow);
/// it still makes at least `MIN_READS` requests.
const READ_BUDGET: Duration = Duration::from_secs(30);
const MIN_READS: usize = 5;
/// Events whose JSON size is averaged (spread over the store).
const JSON_SAMPLE: u64 = 20_000;
/// How often the export's state and the server's memory are sampled, and how long it may take.
const EXPORT_POLL: Duration = Duration::from_millis(50);
const EXPORT_TIMEOUT: Duration = Duration::from_secs(3600);

/// The measured store's database on PostgreSQL (`--on-postgres`).
const MEASURED_DATABASE: &str = "vellum_bench_store";

/// The measured database: kept for later runs, or dropped at the end.
enum MeasuredDatabase {
    Kept(String),
    Fresh(TestDatabase),
}

impl MeasuredDatabase {
    fn url(&self) -> &str {
        match self {
            Self::Kept(url) => url,
            Self::Fresh(database) => database.url(),
        }
    }
}

/// Progress lines on standard error.
struct Progress {
    start: Instant,
    quiet: bool,
}

impl Progress {
    fn say(&self, message: &str) {
        if !self.quiet {
            eprintln!("[{:>7.1} s] {message}", self.start.elapsed().as_secs_f64());
        }
    }
}

/// The pools of one phase.
struct Pools {
    single: Arc<Pool>,
    batch_100: Arc<Pool>,
    batch_1000: Arc<Pool>,
}

impl Pools {
    fn new(generator: &Generator, first_event: u64) -> Self {
        let single = Pool::new(generator, first_event, SINGLE_POOL, 1);
        let batch_100 = Pool::new(generator, first_event + single.events(), BATCH_100_POOL, 100);
        let batch_1000 = Pool::new(
            generator,
            first_event + single.events() + batch_100.events(),
            BATCH_1000_POOL,
            1000,
        );
        Self {
            single: Arc::new(single),
            batch_100: Arc::new(batch_100),
            batch_1000: Arc::new(batch_1000),
        }
    }
}

/// The five ingest measurements, in the order they run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Single1,
    Single32,
    Single32HalfRate,
    Batch100,
    Batch1000,
}

impl Kind {
    const ALL: [Self; 5] = [
        Self::Single1,
        Self::Single32,
        Self::Single32HalfRate,
        Self::Batch100,
        Self::Batch1000,
    ];

    fn name(self) -> &'static str {
        match self {
            Self::Single1 => "single event, 1 client",
            Self::Single32 => "single event, 32 clients",
            Self::Single32HalfRate => "single event, 32 clients at half rate",
            Self::Batch100 => "batch of 100, 4 connections",
            Self::Batch1000 => "batch of 1,000, 4 connections",
        }
    }

    fn pool(self, pools: &Pools) -> &Arc<Pool> {
        match self {
            Self::Single1 | Self::Single32 | Self::Single32HalfRate => &pools.single,
            Self::Batch100 => &pools.batch_100,
            Self::Batch1000 => &pools.batch_1000,
        }
    }

    fn workload(self, pools: &Pools, organization_ids: &[String]) -> Workload {
        let pool = self.pool(pools);
        let single = pool.events_per_request == 1;
        Workload {
            path: if single {
                "/audit_logs/events"
            } else {
                "/audit_logs/events/batch"
            },
            bodies: pool.bodies(organization_ids),
            events_per_request: pool.events_per_request,
            idempotency_keys: single,
        }
    }

    fn shape(self, duration: Duration, half_rate: f64) -> Shape {
        let (connections, pace) = match self {
            Self::Single1 => (1, None),
            Self::Single32 => (MANY_CLIENTS, None),
            Self::Single32HalfRate => (MANY_CLIENTS, Some(half_rate)),
            Self::Batch100 | Self::Batch1000 => (BATCH_CONNECTIONS, None),
        };
        Shape {
            connections,
            duration,
            pace,
        }
    }
}

fn figures(result: &RunResult) -> RunFigures {
    RunFigures {
        events: result.events,
        seconds: result.seconds,
        events_per_second: result.events_per_second(),
        requests: result.latencies.len(),
        p50_ms: result.latencies.percentile_ms(50.0),
        p99_ms: result.latencies.percentile_ms(99.0),
    }
}

/// One run of the harness.
struct Bench {
    config: BenchConfig,
    binary: Binary,
    generator: Arc<Generator>,
    threads: usize,
    duration: Duration,
    work: tempfile::TempDir,
    progress: Progress,
    servers_started: AtomicUsize,
}

/// What was measured on the full store.
struct FullStore {
    store_events: u64,
    store_events_at_end: u64,
    fill: Fill,
    ingest: Ingest,
    reads: Reads,
    verify: Verify,
    export: Export,
}

/// The organizations of a store, by index.
struct Tenants {
    organization_ids: Vec<String>,
}

pub(crate) async fn run(config: BenchConfig) -> anyhow::Result<Report> {
    if config.events < FILL_BATCH {
        bail!("--events must be at least {FILL_BATCH}");
    }
    let (bench, date) = Bench::new(config)?;
    bench.run(date).await
}

pub(crate) async fn scale_out(config: BenchConfig) -> anyhow::Result<crate::report::ScaleOut> {
    let Some(admin_url) = config.postgres_url.clone() else {
        bail!("the scale-out measurement needs --postgres-url");
    };
    let (bench, date) = Bench::new(config)?;
    let server_version = bench.server_version().await?;
    let pools = Pools::new(&bench.generator, 0);
    let mut setups = Vec::new();
    for (name, postgres, nodes) in [
        ("embedded store, 1 node", false, 1),
        ("PostgreSQL, 1 node", true, 1),
        ("PostgreSQL, 3 nodes", true, 3),
    ] {
        let mut measured = Vec::with_capacity(2);
        for kind in [Kind::Single32, Kind::Batch1000] {
            let label = format!("scale-out, {name}: {}", kind.name());
            measured.push(
                bench
                    .repeat(&label, async || {
                        bench
                            .ingest_on_fresh_nodes(&pools, kind, postgres.then_some(admin_url.as_str()), nodes)
                            .await
                    })
                    .await?,
            );
        }
        let batch_1000 = measured.pop().context("two measurements")?;
        let single_32_clients = measured.pop().context("two measurements")?;
        setups.push(crate::report::ScaleOutSetup {
            name: name.to_owned(),
            nodes,
            single_32_clients,
            batch_1000,
        });
    }
    bench.progress.say("done");
    Ok(crate::report::ScaleOut {
        date,
        cores: bench.threads,
        server_version,
        label: bench.config.label.clone(),
        seconds: bench.config.seconds,
        repeats: bench.config.repeats,
        setups,
    })
}

impl Bench {
    /// Checks the settings and makes the work directory.
    fn new(config: BenchConfig) -> anyhow::Result<(Self, String)> {
        if config.repeats == 0 || config.read_requests == 0 || !config.seconds.is_finite() || config.seconds <= 0.0 {
            bail!("--repeats, --read-requests and --seconds must be positive");
        }
        let started = Instant::now();
        let date = time::OffsetDateTime::now_utc()
            .replace_nanosecond(0)
            .context("the current time")?
            .format(&Rfc3339)
            .context("cannot format the date")?;
        let threads = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        // Scratch stores live next to the measured store, on the same file system.
        let scratch_parent = match &config.data_dir {
            Some(data_dir) => {
                std::fs::create_dir_all(data_dir).with_context(|| format!("cannot create {}", data_dir.display()))?;
                data_dir
                    .canonicalize()?
                    .parent()
                    .map(Path::to_owned)
                    .unwrap_or_else(std::env::temp_dir)
            }
            None => std::env::temp_dir(),
        };
        let work = tempfile::Builder::new()
            .prefix("vellum-bench-")
            .tempdir_in(&scratch_parent)
            .with_context(|| format!("cannot create a work directory in {}", scratch_parent.display()))?;
        let binary = Binary {
            path: config.server_binary.clone(),
            api_key: API_KEY.to_owned(),
            log_filter: config.server_log.clone(),
        };
        let bench = Bench {
            duration: Duration::from_secs_f64(config.seconds),
            progress: Progress {
                start: started,
                quiet: config.quiet,
            },
            config,
            binary,
            generator: Arc::new(Generator::new()),
            threads,
            work,
            servers_started: AtomicUsize::new(0),
        };
        Ok((bench, date))
    }

    /// One run of `kind` on a fresh store served by `nodes` fresh servers: a fresh database on
    /// the PostgreSQL server of `postgres` (shared by the nodes), else a fresh embedded store
    /// (one node only). The connections are spread over the nodes in turn.
    async fn ingest_on_fresh_nodes(
        &self,
        pools: &Pools,
        kind: Kind,
        postgres: Option<&str>,
        nodes: usize,
    ) -> anyhow::Result<RunResult> {
        let database = match postgres {
            Some(admin_url) => Some(
                vellum_store::postgres::testing::TestDatabase::create_on(admin_url)
                    .await
                    .map_err(anyhow::Error::msg)?,
            ),
            None if nodes > 1 => bail!("several nodes need PostgreSQL"),
            None => None,
        };
        let mut scratches = Vec::with_capacity(nodes);
        let mut servers = Vec::with_capacity(nodes);
        let started = async {
            for _ in 0..nodes {
                let scratch = self.scratch_dir("scale-out-")?;
                let server = self
                    .start_server_on(scratch.path(), database.as_ref().map(|database| database.url()))
                    .await;
                scratches.push(scratch);
                servers.push(server?);
            }
            anyhow::Ok(())
        }
        .await;
        let outcome = match started {
            Ok(()) => {
                async {
                    let targets = servers
                        .iter()
                        .map(|server| Target::new(server.address, API_KEY))
                        .collect::<anyhow::Result<Vec<_>>>()?;
                    let tenants = prepare(&targets[0]).await?;
                    load::run_spread(
                        &targets,
                        &kind.workload(pools, &tenants.organization_ids),
                        kind.shape(self.duration, 0.0),
                    )
                    .await
                }
                .await
            }
            Err(error) => Err(error),
        };
        for server in servers {
            server.stop().await.context("stopping a scale-out server")?;
        }
        outcome
    }
}

impl Bench {
    async fn run(&self, date: String) -> anyhow::Result<Report> {
        let server_version = self.server_version().await?;
        self.progress.say(&format!(
            "{server_version} at {}; {} cores; work directory {}",
            self.binary.path.display(),
            self.threads,
            self.work.path().display()
        ));
        let event_json_bytes = self.generator.mean_event_json_bytes(self.config.events, JSON_SAMPLE);
        let (ceilings, empty_store) = {
            // The ceilings and the empty store get the same events, the first ones.
            let pools = Pools::new(&self.generator, 0);
            (self.ceilings(&pools).await?, self.empty_store(&pools).await?)
        };

        let data_dir = match &self.config.data_dir {
            Some(data_dir) => data_dir.clone(),
            None => self.work.path().join("store"),
        };
        let database = self.measured_database().await?;
        let database_url = database.as_ref().map(MeasuredDatabase::url);
        let server = self.start_server_on(&data_dir, database_url).await?;
        let outcome = self.full_store(&server, &data_dir, database_url).await;
        let stopped = server.stop().await.context("stopping the measured server");
        let full = outcome?;
        stopped?;
        let disk = match database_url {
            Some(url) => database_disk(url, full.store_events_at_end, event_json_bytes).await?,
            None => disk(&data_dir, full.store_events_at_end, event_json_bytes)?,
        };
        let mut report = Report {
            date,
            cores: self.threads,
            server_binary: self.binary.path.display().to_string(),
            server_version,
            backend: if database_url.is_some() {
                "PostgreSQL"
            } else {
                "embedded"
            }
            .to_owned(),
            label: self.config.label.clone(),
            settings: Settings {
                events: self.config.events,
                seconds: self.config.seconds,
                repeats: self.config.repeats,
                read_requests: self.config.read_requests,
                server_log: self.config.server_log.clone(),
            },
            event_json_bytes,
            store_events: full.store_events,
            store_events_at_end: full.store_events_at_end,
            ceilings,
            empty_store,
            fill: full.fill,
            full_store: full.ingest,
            reads: full.reads,
            verify: full.verify,
            export: full.export,
            disk,
            table: Vec::new(),
        };
        report.table = crate::report::table(&report);
        self.progress.say("done");
        Ok(report)
    }

    async fn server_version(&self) -> anyhow::Result<String> {
        let output = self
            .binary
            .command()
            .arg("--version")
            .output()
            .await
            .with_context(|| format!("cannot run {}", self.binary.path.display()))?;
        if !output.status.success() {
            bail!("{} --version failed", self.binary.path.display());
        }
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
    }

    /// On PostgreSQL (`--on-postgres`), a fresh database, dropped with the value; else `None`.
    async fn fresh_database(&self) -> anyhow::Result<Option<TestDatabase>> {
        match self.measured_on_postgres() {
            Some(admin_url) => Ok(Some(
                TestDatabase::create_on(admin_url).await.map_err(anyhow::Error::msg)?,
            )),
            None => Ok(None),
        }
    }

    /// On PostgreSQL, the measured store's database: `vellum_bench_store`, kept (and filled
    /// further by later runs) when `--data-dir` keeps the embedded store too, else a fresh one.
    async fn measured_database(&self) -> anyhow::Result<Option<MeasuredDatabase>> {
        let Some(admin_url) = self.measured_on_postgres() else {
            return Ok(None);
        };
        Ok(Some(if self.config.data_dir.is_some() {
            MeasuredDatabase::Kept(
                vellum_store::postgres::testing::kept_database_on(admin_url, MEASURED_DATABASE)
                    .await
                    .map_err(anyhow::Error::msg)?,
            )
        } else {
            MeasuredDatabase::Fresh(TestDatabase::create_on(admin_url).await.map_err(anyhow::Error::msg)?)
        }))
    }

    /// The PostgreSQL server the whole table is measured on, if `--on-postgres`.
    fn measured_on_postgres(&self) -> Option<&str> {
        self.config.postgres_url.as_deref().filter(|_| self.config.on_postgres)
    }

    async fn start_server_on(&self, data_dir: &Path, database_url: Option<&str>) -> anyhow::Result<ServerProcess> {
        let number = self.servers_started.fetch_add(1, Ordering::Relaxed) + 1;
        let log = self.work.path().join(format!("server-{number}.log"));
        ServerProcess::start(&self.binary, data_dir, database_url, &log).await
    }

    fn scratch_dir(&self, name: &str) -> anyhow::Result<tempfile::TempDir> {
        tempfile::Builder::new()
            .prefix(name)
            .tempdir_in(self.work.path())
            .context("cannot create a scratch directory")
    }

    async fn repeat(
        &self,
        label: &str,
        mut one: impl AsyncFnMut() -> anyhow::Result<RunResult>,
    ) -> anyhow::Result<Measured> {
        let mut runs = Vec::with_capacity(self.config.repeats);
        for index in 0..self.config.repeats {
            let result = one().await.with_context(|| format!("{label}, run {}", index + 1))?;
            let run = figures(&result);
            self.progress.say(&format!(
                "{label}, run {}/{}: {:.0} ev/s, p50 {:.2} ms, p99 {:.2} ms",
                index + 1,
                self.config.repeats,
                run.events_per_second,
                run.p50_ms,
                run.p99_ms
            ));
            runs.push(run);
        }
        Ok(Measured::of(runs))
    }

    async fn ceilings(&self, pools: &Pools) -> anyhow::Result<Ceilings> {
        let null = NullServer::start(self.threads)?;
        let target = Target::new(null.address, API_KEY)?;
        // The null router reads organization ids but looks none up.
        let ids = vec![CEILING_ORGANIZATION.to_owned(); ORGANIZATIONS];
        let single = Kind::Single32.workload(pools, &ids);
        let batch = Kind::Batch1000.workload(pools, &ids);
        let measured = async {
            let http_single_32_clients = self
                .repeat("ceiling: HTTP stack, no store: single event, 32 clients", async || {
                    load::run(&target, &single, Kind::Single32.shape(self.duration, 0.0)).await
                })
                .await?;
            let http_batch_1000 = self
                .repeat("ceiling: HTTP stack, no store: batch of 1,000", async || {
                    load::run(&target, &batch, Kind::Batch1000.shape(self.duration, 0.0)).await
                })
                .await?;
            anyhow::Ok((http_single_32_clients, http_batch_1000))
        }
        .await;
        null.stop().await?;
        let (http_single_32_clients, http_batch_1000) = measured?;
        let store_batch_1000 = self
            .repeat("ceiling: store append_events, batch of 1,000", async || {
                let scratch = self.scratch_dir("store-ceiling-")?;
                let database = self.fresh_database().await?;
                store_ceiling(
                    scratch.path(),
                    database.as_ref().map(|database| database.url().to_owned()),
                    Arc::clone(&pools.batch_1000),
                    BATCH_CONNECTIONS,
                    self.duration,
                    self.threads,
                )
                .await
            })
            .await?;
        Ok(Ceilings {
            http_single_32_clients,
            http_batch_1000,
            store_batch_1000,
        })
    }

    /// Each run on a fresh store of its own, served by a fresh server.
    async fn empty_store(&self, pools: &Pools) -> anyhow::Result<Ingest> {
        let mut measured = Vec::with_capacity(Kind::ALL.len());
        for kind in Kind::ALL {
            let shape = kind.shape(self.duration, half_rate(&measured));
            let label = format!("empty store: {}", kind.name());
            measured.push(
                self.repeat(&label, async || {
                    let scratch = self.scratch_dir("empty-")?;
                    let database = self.fresh_database().await?;
                    let server = self
                        .start_server_on(scratch.path(), database.as_ref().map(|database| database.url()))
                        .await?;
                    let outcome = async {
                        let target = Target::new(server.address, API_KEY)?;
                        let tenants = prepare(&target).await?;
                        load::run(&target, &kind.workload(pools, &tenants.organization_ids), shape).await
                    }
                    .await;
                    let stopped = server.stop().await;
                    let result = outcome?;
                    stopped?;
                    Ok(result)
                })
                .await?,
            );
        }
        ingest_of(measured)
    }

    /// Ingest on one running server, all runs on the same store.
    async fn ingest_on(
        &self,
        phase: &str,
        target: &Target,
        tenants: &Tenants,
        pools: &Pools,
    ) -> anyhow::Result<Ingest> {
        let mut measured: Vec<Measured> = Vec::with_capacity(Kind::ALL.len());
        for kind in Kind::ALL {
            let half_rate = half_rate(&measured);
            let workload = kind.workload(pools, &tenants.organization_ids);
            let shape = kind.shape(self.duration, half_rate);
            measured.push(
                self.repeat(&format!("{phase}: {}", kind.name()), async || {
                    load::run(target, &workload, shape).await
                })
                .await?,
            );
        }
        ingest_of(measured)
    }

    async fn full_store(
        &self,
        server: &ServerProcess,
        data_dir: &Path,
        database_url: Option<&str>,
    ) -> anyhow::Result<FullStore> {
        let target = Target::new(server.address, API_KEY)?;
        let tenants = prepare(&target).await?;
        let before = store_size(&target, &tenants).await?;
        let fill = self.fill(server, &target, &tenants, before).await?;

        let store_events = store_size(&target, &tenants).await?;
        // Measured from rest, as the empty store is: the search index finishes the fill first
        // (PostgreSQL has none of its own).
        let search_index_after_fill_s = match database_url {
            Some(_) => 0.0,
            None => search_index_caught_up(data_dir).await?,
        };
        let phase = format!("{} events", crate::report::thousands(store_events as f64));
        // Later events than any stored, so that `occurred_at` keeps increasing.
        let pools = Pools::new(&self.generator, store_events);
        let ingest = self.ingest_on(&phase, &target, &tenants, &pools).await?;
        drop(pools);

        let largest = &tenants.organization_ids[0];
        let search_index_wait_s = match database_url {
            Some(_) => 0.0,
            None => search_index_caught_up(data_dir).await?,
        };
        let mut reads = self.reads(&target, largest).await?;
        reads.search_index_wait_s = search_index_wait_s;
        reads.search_index_after_fill_s = search_index_after_fill_s;
        let verify = self
            .verify(data_dir, database_url, store_size(&target, &tenants).await?)
            .await?;
        let export = self.export(server, &target, largest).await?;
        let store_events_at_end = store_size(&target, &tenants).await?;
        Ok(FullStore {
            store_events,
            store_events_at_end,
            fill,
            ingest,
            reads,
            verify,
            export,
        })
    }

    async fn fill(
        &self,
        server: &ServerProcess,
        target: &Target,
        tenants: &Tenants,
        existing: u64,
    ) -> anyhow::Result<Fill> {
        let goal = self.config.events;
        self.progress.say(&format!(
            "fill: from {} to {} events",
            crate::report::thousands(existing as f64),
            crate::report::thousands(goal as f64)
        ));
        let sampler = RssSampler::start(server.pid(), Duration::from_millis(100))?;
        let result = if existing < goal {
            let (batches, generator_thread) = load::spawn_fill_generator(
                Arc::clone(&self.generator),
                tenants.organization_ids.clone().into(),
                existing,
                goal,
                FILL_BATCH,
            )?;
            let result = load::fill(target, batches, BATCH_CONNECTIONS, existing, goal).await;
            let generated = tokio::task::spawn_blocking(move || generator_thread.join()).await;
            let result = result?;
            if !matches!(generated, Ok(Ok(()))) {
                bail!("the fill generator failed");
            }
            if result.events != goal - existing {
                bail!("the fill sent {} events instead of {}", result.events, goal - existing);
            }
            Some(result)
        } else {
            None
        };
        let server_rss_peak_bytes = sampler.stop(server.pid());
        let fill = match result {
            Some(result) => {
                for point in &result.curve {
                    self.progress.say(&format!(
                        "fill: {} events at {:.1} s, {:.0} ev/s over the last tenth",
                        crate::report::thousands(point.store_events as f64),
                        point.seconds,
                        point.events_per_second
                    ));
                }
                Fill {
                    target_events: goal,
                    events_before: existing,
                    events: result.events,
                    seconds: result.seconds,
                    events_per_second: if result.seconds > 0.0 {
                        result.events as f64 / result.seconds
                    } else {
                        0.0
                    },
                    curve: result.curve,
                    server_rss_peak_bytes,
                }
            }
            None => Fill {
                target_events: goal,
                events_before: existing,
                events: 0,
                seconds: 0.0,
                events_per_second: 0.0,
                curve: Vec::new(),
                server_rss_peak_bytes,
            },
        };
        Ok(fill)
    }

    async fn reads(&self, target: &Target, organization: &str) -> anyhow::Result<Reads> {
        let mut client = Client::connect(target).await?;
        let size = log_size(&mut client, organization).await?;
        if size == 0 {
            bail!("the largest organization has no events to read");
        }
        let count = self.config.read_requests;
        let mut draw = SplitMix64::new(0x5EAD);
        let mut samples = Vec::with_capacity(count);
        let mut cursors = Vec::with_capacity(count);
        for index in 0..count {
            samples.push(sample(&mut client, organization, draw.below(size)).await?);
            // Cursors from the middle fifth of the organization's events.
            let middle = size * 2 / 5 + draw.below((size / 5).max(1));
            cursors.push(sample(&mut client, organization, middle.min(size - 1)).await?);
            if index == 0 {
                self.progress.say(&format!(
                    "reads: {} events in the largest organization, {count} samples",
                    crate::report::thousands(size as f64)
                ));
            }
        }
        let mut measures = Vec::with_capacity(Read::ALL.len());
        for read in Read::ALL {
            let name = read.name();
            let path = |index: usize| read.path(organization, size, &samples[index], &cursors[index]);
            let started = Instant::now();
            let mut latencies = Vec::with_capacity(count);
            for index in 0..count {
                if index >= MIN_READS && started.elapsed() > READ_BUDGET {
                    break;
                }
                let path = path(index);
                let began = Instant::now();
                let reply = client.send(hyper::Method::GET, &path, None, None).await?;
                latencies.push(load::micros(began.elapsed()));
                if reply.status != StatusCode::OK {
                    bail!("GET {path} answered {}: {}", reply.status, reply.excerpt());
                }
            }
            let requests = latencies.len();
            let latencies = load::Latencies::new(latencies);
            let figure = ReadFigure {
                name: name.to_owned(),
                has_target: read.has_target(),
                example: path(0),
                requests,
                p50_ms: latencies.percentile_ms(50.0),
                p99_ms: latencies.percentile_ms(99.0),
            };
            self.progress.say(&format!(
                "reads: {name}: p50 {:.2} ms, p99 {:.2} ms over {requests} requests",
                figure.p50_ms, figure.p99_ms
            ));
            measures.push(figure);
        }
        Ok(Reads {
            organization_events: size,
            search_index_wait_s: 0.0,
            search_index_after_fill_s: 0.0,
            measures,
        })
    }

    /// `vellum verify store` on the store while the server runs (which it allows).
    async fn verify(&self, data_dir: &Path, database_url: Option<&str>, events: u64) -> anyhow::Result<Verify> {
        self.progress.say("verify store");
        let mut command = self.binary.command();
        command
            .arg("verify")
            .arg("store")
            .arg("--data-dir")
            .arg(data_dir)
            .env("VELLUM_LOG", &self.binary.log_filter);
        if let Some(url) = database_url {
            command.env("VELLUM_DATABASE_URL", url);
        }
        let mut command = command.into_std();
        let outcome = tokio::task::spawn_blocking(move || {
            let cpu_before = children_cpu_seconds()?;
            let started = Instant::now();
            let output = command.output().context("cannot run vellum verify store")?;
            let seconds = started.elapsed().as_secs_f64();
            let cpu_seconds = children_cpu_seconds()? - cpu_before;
            anyhow::Ok((output, seconds, cpu_seconds))
        })
        .await
        .context("verify store")?;
        let (output, seconds, cpu_seconds) = outcome?;
        if !output.status.success() {
            bail!(
                "vellum verify store failed ({}): {}{}",
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        let verify = Verify {
            events,
            seconds,
            cpu_seconds,
            events_per_second: events as f64 / seconds,
            events_per_cpu_second: if cpu_seconds > 0.0 {
                events as f64 / cpu_seconds
            } else {
                0.0
            },
        };
        self.progress.say(&format!(
            "verify store: {events} events in {seconds:.1} s ({cpu_seconds:.1} s CPU)"
        ));
        Ok(verify)
    }

    /// A CSV export of the organization through the API, from request to ready.
    async fn export(&self, server: &ServerProcess, target: &Target, organization: &str) -> anyhow::Result<Export> {
        self.progress.say("export (CSV) of the largest organization");
        let mut client = Client::connect(target).await?;
        let rss_before_bytes = resident_bytes(server.pid())?;
        let mut rss_peak_bytes = rss_before_bytes;
        let started = Instant::now();
        let (status, created) = client
            .post_json(
                "/audit_logs/exports",
                &json!({
                    "organization_id": organization,
                    "range_start": "2000-01-01T00:00:00Z",
                    "range_end": "2100-01-01T00:00:00Z",
                    "format": "csv",
                }),
            )
            .await?;
        if status != StatusCode::CREATED {
            bail!("POST /audit_logs/exports answered {status}: {created}");
        }
        let id = created["id"].as_str().context("an export without id")?.to_owned();
        let mut ticks = tokio::time::interval(EXPORT_POLL);
        let export = loop {
            ticks.tick().await;
            rss_peak_bytes = rss_peak_bytes.max(resident_bytes(server.pid())?);
            let export = client.get_json(&format!("/audit_logs/exports/{id}")).await?;
            if export["state"] != "pending" {
                break export;
            }
            if started.elapsed() > EXPORT_TIMEOUT {
                bail!("the export was still pending after {EXPORT_TIMEOUT:?}");
            }
        };
        let seconds = started.elapsed().as_secs_f64();
        if export["state"] != "ready" {
            bail!("the export ended {}: {export}", export["state"]);
        }
        let rows = export["events"]
            .as_u64()
            .context("a ready export without its events count")?;
        let figure = Export {
            format: "csv".to_owned(),
            rows,
            file_bytes: export["bytes"].as_u64().unwrap_or_default(),
            seconds,
            rows_per_second: rows as f64 / seconds,
            rss_before_bytes,
            rss_peak_bytes,
            rss_growth_bytes: rss_peak_bytes - rss_before_bytes,
        };
        self.progress.say(&format!(
            "export: {rows} rows in {seconds:.1} s, resident memory {:.1} MB before, {:.1} MB peak",
            rss_before_bytes as f64 / 1048576.0,
            rss_peak_bytes as f64 / 1048576.0
        ));
        Ok(figure)
    }
}

/// Half the rate of the 32-client run measured just before (the third kind follows the second).
fn half_rate(measured: &[Measured]) -> f64 {
    measured
        .get(1)
        .map_or(0.0, |single_32| single_32.events_per_second / 2.0)
}

fn ingest_of(measured: Vec<Measured>) -> anyhow::Result<Ingest> {
    let [
        single_1_client,
        single_32_clients,
        single_32_clients_half_rate,
        batch_100,
        batch_1000,
    ]: [Measured; 5] = measured
        .try_into()
        .map_err(|_| anyhow::anyhow!("an ingest measurement is missing"))?;
    Ok(Ingest {
        single_1_client,
        single_32_clients,
        single_32_clients_half_rate,
        batch_100,
        batch_1000,
    })
}

/// Makes sure the store has the benchmark's organizations (found by external id, created if
/// missing) and the current schema of every action.
async fn prepare(target: &Target) -> anyhow::Result<Tenants> {
    let mut client = Client::connect(target).await?;
    let mut organization_ids = Vec::with_capacity(ORGANIZATIONS);
    for index in 0..ORGANIZATIONS {
        let (name, external_id) = organization_names(index);
        let reply = client
            .send(
                hyper::Method::GET,
                &format!("/organizations/external_id/{external_id}"),
                None,
                None,
            )
            .await?;
        let organization: Value = match reply.status {
            StatusCode::OK => serde_json::from_slice(&reply.body).context("an organization")?,
            StatusCode::NOT_FOUND => {
                let (status, created) = client
                    .post_json("/organizations", &json!({"name": name, "external_id": external_id}))
                    .await?;
                if status != StatusCode::CREATED {
                    bail!("POST /organizations answered {status}: {created}");
                }
                created
            }
            other => bail!(
                "GET /organizations/external_id/{external_id} answered {other}: {}",
                reply.excerpt()
            ),
        };
        organization_ids.push(
            organization["id"]
                .as_str()
                .context("an organization without id")?
                .to_owned(),
        );
    }
    for (action, body) in action_schemas() {
        let path = format!("/audit_logs/actions/{action}/schemas");
        let (status, answer) = client.post_json(&path, &body).await?;
        if status != StatusCode::CREATED {
            bail!("POST {path} answered {status}: {answer}");
        }
    }
    Ok(Tenants { organization_ids })
}

/// The size of an organization's log: its event count.
async fn log_size(client: &mut Client, organization: &str) -> anyhow::Result<u64> {
    let entries = client
        .get_json(&format!(
            "/audit_logs/log/entries?organization_id={organization}&start=0&end=0"
        ))
        .await?;
    entries["tree_size"].as_u64().context("a log without tree_size")
}

/// The events of every organization.
async fn store_size(target: &Target, tenants: &Tenants) -> anyhow::Result<u64> {
    let mut client = Client::connect(target).await?;
    let mut events = 0;
    for organization in &tenants.organization_ids {
        events += log_size(&mut client, organization).await?;
    }
    Ok(events)
}

/// The kinds of read measured.
#[derive(Clone, Copy, Debug)]
enum Read {
    Newest,
    Action,
    ActorId,
    ActorName,
    TargetType,
    TargetId,
    TimeRange,
    Cursor,
    Search,
    Inclusion,
    Consistency,
}

impl Read {
    const ALL: [Self; 11] = [
        Self::Newest,
        Self::Action,
        Self::ActorId,
        Self::ActorName,
        Self::TargetType,
        Self::TargetId,
        Self::TimeRange,
        Self::Cursor,
        Self::Search,
        Self::Inclusion,
        Self::Consistency,
    ];

    fn name(self) -> &'static str {
        match self {
            Self::Newest => "newest page",
            Self::Action => "newest page, one action",
            Self::ActorId => "newest page, one actor id",
            Self::ActorName => "newest page, one actor name",
            Self::TargetType => "newest page, one target type",
            Self::TargetId => "newest page, one target id",
            Self::TimeRange => "newest page, one minute's time range",
            Self::Cursor => "page after a cursor mid-organization",
            Self::Search => "newest page, search for a rare word",
            Self::Inclusion => "inclusion proof",
            Self::Consistency => "consistency proof",
        }
    }

    /// Whether the product's latency target applies (the newest page with one filter or a search).
    fn has_target(self) -> bool {
        !matches!(self, Self::Cursor | Self::Inclusion | Self::Consistency)
    }

    /// The request, for an organization of `size` events, about `sample` (`cursor` for the
    /// cursor page).
    fn path(self, organization: &str, size: u64, sample: &Sample, cursor: &Sample) -> String {
        let list = format!("/audit_logs/events?organization_id={organization}&limit=10");
        match self {
            Self::Newest => list,
            Self::Action => format!("{list}&actions={}", query_value(&sample.action)),
            Self::ActorId => format!("{list}&actor_ids={}", query_value(&sample.actor_id)),
            Self::ActorName => format!("{list}&actor_names={}", query_value(&sample.actor_name)),
            Self::TargetType => format!("{list}&targets={}", query_value(&sample.target_type)),
            Self::TargetId => format!("{list}&target_ids={}", query_value(&sample.target_id)),
            Self::TimeRange => {
                let (start, end) = &sample.minute;
                format!(
                    "{list}&range_start={}&range_end={}",
                    query_value(start),
                    query_value(end)
                )
            }
            Self::Cursor => format!("{list}&after={}", cursor.id),
            Self::Search => format!("{list}&search={RARE_TOKEN}"),
            Self::Inclusion => format!(
                "/audit_logs/log/proof/inclusion?organization_id={organization}&event_id={}",
                sample.id
            ),
            Self::Consistency => {
                let first = 1 + sample.position.min(size.saturating_sub(2));
                format!("/audit_logs/log/proof/consistency?organization_id={organization}&first={first}&second={size}")
            }
        }
    }
}

/// An event of the organization, found by log position, and the filters that select it.
struct Sample {
    position: u64,
    id: String,
    action: String,
    actor_id: String,
    actor_name: String,
    target_type: String,
    target_id: String,
    /// A minute around its `occurred_at`.
    minute: (String, String),
}

async fn sample(client: &mut Client, organization: &str, position: u64) -> anyhow::Result<Sample> {
    let path = format!(
        "/audit_logs/log/entries?organization_id={organization}&start={position}&end={}",
        position + 1
    );
    let entries = client.get_json(&path).await?;
    let entry = &entries["data"][0];
    let event = &entry["event"];
    let text = |value: &Value| {
        value
            .as_str()
            .map(str::to_owned)
            .context("a sampled event lacks a field")
    };
    let occurred = time::OffsetDateTime::parse(&text(&event["occurred_at"])?, &Rfc3339)
        .context("a sampled event's occurred_at")?;
    let half_minute = time::Duration::seconds(30);
    Ok(Sample {
        position,
        id: text(&entry["id"])?,
        action: text(&event["action"])?,
        actor_id: text(&event["actor"]["id"])?,
        actor_name: text(&event["actor"]["name"])?,
        target_type: text(&event["targets"][0]["type"])?,
        target_id: text(&event["targets"][0]["id"])?,
        minute: (
            (occurred - half_minute).format(&Rfc3339)?,
            (occurred + half_minute).format(&Rfc3339)?,
        ),
    })
}

/// Waits until the store's search index covers every stored event, as it does on a store at
/// rest (it follows ingest by a moment, and by more after a long burst on busy cores; searches
/// meanwhile check the events it has not covered one by one). Reads its state from the files:
/// how far behind the index is is not part of the API. Returns the seconds waited.
async fn search_index_caught_up(data_dir: &Path) -> anyhow::Result<f64> {
    let store = data_dir.join(vellum_store::sqlite::DATABASE_FILE_NAME);
    let index = data_dir.join(vellum_store::sqlite::SEARCH_FILE_NAME);
    let started = Instant::now();
    if !index.exists() {
        // A build from before the search index (`--server-binary` to compare builds).
        return Ok(0.0);
    }
    tokio::task::spawn_blocking(move || -> anyhow::Result<f64> {
        let connection = rusqlite::Connection::open_with_flags(&store, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .with_context(|| format!("cannot open {}", store.display()))?;
        connection
            .execute("attach database ?1 as search", [index.to_string_lossy()])
            .context("cannot open the search index")?;
        let deadline = started + Duration::from_secs(3_600);
        loop {
            let lag: i64 = connection.query_row(
                "select (select coalesce(max(seq), 0) from events)
                      - (select indexed_seq from search.search_state where id = 1)",
                [],
                |row| row.get(0),
            )?;
            if lag <= 0 {
                return Ok(started.elapsed().as_secs_f64());
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "the search index is still {lag} events behind after an hour"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    })
    .await?
}

/// The size of the measured PostgreSQL database (tables, indexes, TOAST; the server's WAL is
/// not counted).
async fn database_disk(url: &str, events: u64, json_bytes_per_event: f64) -> anyhow::Result<Disk> {
    let database_bytes = vellum_store::postgres::testing::database_size(url)
        .await
        .map_err(anyhow::Error::msg)?;
    let bytes_per_event = database_bytes as f64 / events.max(1) as f64;
    Ok(Disk {
        database_bytes,
        search_index_bytes: 0,
        events,
        bytes_per_event,
        json_bytes_per_event,
        ratio_to_json: bytes_per_event / json_bytes_per_event,
    })
}

/// The database files of a stopped store.
fn disk(data_dir: &Path, events: u64, json_bytes_per_event: f64) -> anyhow::Result<Disk> {
    let (mut database_bytes, mut search_index_bytes) = (0, 0);
    for entry in std::fs::read_dir(data_dir).with_context(|| format!("cannot list {}", data_dir.display()))? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("vellum.sqlite3") {
            database_bytes += entry.metadata()?.len();
        } else if name.starts_with("vellum-search.sqlite3") {
            search_index_bytes += entry.metadata()?.len();
        }
    }
    if database_bytes == 0 {
        bail!("no vellum.sqlite3 files in {}", data_dir.display());
    }
    let bytes_per_event = (database_bytes + search_index_bytes) as f64 / events.max(1) as f64;
    Ok(Disk {
        database_bytes,
        search_index_bytes,
        events,
        bytes_per_event,
        json_bytes_per_event,
        ratio_to_json: bytes_per_event / json_bytes_per_event,
    })
}
