//! The ceilings measured in the same run: the HTTP stack storing nothing, and the store alone.
//!
//! Both run in this process on a Tokio runtime of their own, with as many worker threads as
//! `vellum serve` uses (one per core), so that they compete for the cores as the server does and
//! never share a thread with the load generator.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::sync::oneshot;
use vellum_core::{NewOrganization, OrganizationId, ValidationErrors};
use vellum_store::prelude::*;
use vellum_store::{NewEvent, SqliteConfig, SqliteStore};

use crate::generator::{ORGANIZATIONS, action_schemas, organization_names};
use crate::load::{Latencies, RunResult, micros};
use crate::pool::Pool;

fn runtime(threads: usize, name: &str) -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .thread_name(name)
        .enable_all()
        .build()
        .context("cannot build a runtime")
}

/// `vellum_http::null_ingest_router` served by `vellum_http::serve` (the connection layer of
/// `vellum serve`) on a free port of 127.0.0.1.
pub(crate) struct NullServer {
    /// Where it listens.
    pub(crate) address: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<anyhow::Result<()>>>,
}

impl NullServer {
    /// Starts it on a runtime of `threads` worker threads.
    pub(crate) fn start(threads: usize) -> anyhow::Result<Self> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").context("cannot bind the ceiling server")?;
        listener.set_nonblocking(true)?;
        let address = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let runtime = runtime(threads, "bench-null-http")?;
        let thread = std::thread::Builder::new()
            .name("bench-null-http".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener)?;
                    vellum_http::serve(
                        listener,
                        vellum_http::null_ingest_router(),
                        vellum_http::ServerLimits::default(),
                        async move {
                            let _ = stopped.await;
                        },
                    )
                    .await
                    .context("the ceiling server failed")
                })
            })
            .context("cannot start the ceiling server's thread")?;
        Ok(Self {
            address,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Stops it and waits for its thread.
    pub(crate) async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let Some(thread) = self.thread.take() else {
            return Ok(());
        };
        tokio::task::spawn_blocking(move || thread.join())
            .await
            .context("cannot wait for the ceiling server")?
            .map_err(|_| anyhow::anyhow!("the ceiling server panicked"))?
    }
}

impl Drop for NullServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A direct batched insert: the pool's batches appended with `EventStore::append_events` to a
/// fresh embedded store in `data_dir`, from `tasks` tasks at once, for `duration`. Each event is
/// read and validated as the HTTP layer does and becomes the `NewEvent` the ingest service
/// would append (schema checks are not part of this ceiling).
pub(crate) async fn store_ceiling(
    data_dir: &Path,
    database_url: Option<String>,
    pool: Arc<Pool>,
    tasks: usize,
    duration: Duration,
    threads: usize,
) -> anyhow::Result<RunResult> {
    let data_dir = data_dir.to_owned();
    let runtime = runtime(threads, "bench-store")?;
    let (sender, receiver) = oneshot::channel();
    std::thread::Builder::new()
        .name("bench-store".into())
        .spawn(move || {
            let outcome = runtime.block_on(append_for(&data_dir, database_url, &pool, tasks, duration));
            let _ = sender.send(outcome);
        })
        .context("cannot start the store ceiling's thread")?;
    receiver.await.context("the store ceiling's thread stopped")?
}

async fn append_for(
    data_dir: &Path,
    database_url: Option<String>,
    pool: &Pool,
    tasks: usize,
    duration: Duration,
) -> anyhow::Result<RunResult> {
    let store: Arc<dyn Store> = match database_url {
        Some(url) => Arc::new(
            vellum_store::PostgresStore::open(&vellum_store::PostgresConfig::new(url))
                .await
                .context("cannot open the ceiling's PostgreSQL store")?,
        ),
        None => Arc::new(
            SqliteStore::open(&SqliteConfig::new(data_dir))
                .with_context(|| format!("cannot open a store in {}", data_dir.display()))?,
        ),
    };
    let outcome = append_to(&store, pool, tasks, duration).await;
    let closed = store.close().await.context("cannot close the ceiling's store");
    let outcome = outcome?;
    closed?;
    Ok(outcome)
}

async fn append_to(store: &Arc<dyn Store>, pool: &Pool, tasks: usize, duration: Duration) -> anyhow::Result<RunResult> {
    let mut organizations = Vec::with_capacity(ORGANIZATIONS);
    for index in 0..ORGANIZATIONS {
        let (name, external_id) = organization_names(index);
        let organization = store
            .create_organization(NewOrganization {
                name,
                external_id: Some(external_id),
                metadata: Default::default(),
                domains: Vec::new(),
                allow_profiles_outside_organization: false,
            })
            .await?;
        organizations.push(organization.id);
    }
    let mut versions = std::collections::HashMap::new();
    for (action, body) in action_schemas() {
        let definition = vellum_http::schema_definition_from_json(body)
            .map_err(|errors| anyhow::anyhow!("a benchmark schema is refused: {errors:?}"))?;
        let created = store.create_schema(action.to_owned(), definition).await?;
        versions.insert(action, created.schema.version);
    }
    let mut batches: Vec<(OrganizationId, Vec<NewEvent>)> = Vec::with_capacity(pool.requests.len());
    for request in &pool.requests {
        let mut events = Vec::with_capacity(request.events.len());
        for event in &request.events {
            let mut errors = ValidationErrors::new();
            let Some(input) = vellum_core::event::validate_event(event.raw(), "event", &mut errors) else {
                bail!("a generated event is refused: {errors:?}");
            };
            let schema_version = versions
                .get(event.action)
                .copied()
                .context("an action without schema")?;
            events.push(NewEvent { input, schema_version });
        }
        batches.push((organizations[request.organization], events));
    }
    let batches = Arc::new(batches);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let start = Instant::now();
    let deadline = start + duration;
    let mut running = tokio::task::JoinSet::new();
    for _ in 0..tasks.max(1) {
        let (store, batches, next) = (Arc::clone(store), Arc::clone(&batches), Arc::clone(&next));
        running.spawn(async move {
            let mut latencies = Vec::new();
            let mut events = 0u64;
            while Instant::now() < deadline {
                let index = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % batches.len();
                let (organization, batch) = &batches[index];
                let began = Instant::now();
                store.append_events(*organization, batch.clone(), None).await?;
                latencies.push(micros(began.elapsed()));
                events += batch.len() as u64;
            }
            anyhow::Ok((events, latencies, Instant::now()))
        });
    }
    let (mut events, mut all, mut finished) = (0, Vec::new(), start);
    while let Some(outcome) = running.join_next().await {
        let (count, latencies, at) = outcome.context("an append task panicked")??;
        events += count;
        all.extend(latencies);
        finished = finished.max(at);
    }
    Ok(RunResult {
        events,
        seconds: finished.duration_since(start).as_secs_f64(),
        latencies: Latencies::new(all),
    })
}
