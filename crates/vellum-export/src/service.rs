//! The export service: queues exports, runs them as background jobs, and hands out links.
//!
//! **Invariants:**
//! - An export becomes `ready` only after its whole file is stored (a multipart upload is
//!   completed, or a local file renamed into place), so no partial file is ever served.
//! - Exports are jobs in the store, claimed under a lease ([`Store::claim_export`]): a worker of
//!   any process takes the oldest pending export nobody holds, renews the lease while it writes,
//!   and only the lease's holder records the outcome. So several processes on one database never
//!   write one export at once, and an export whose worker went away (stopped, or crashed and let
//!   its lease run out) is taken up again; one that keeps getting interrupted is failed after
//!   [`ExportSettings::max_attempts`] starts, with the reason.
//! - At most [`ExportSettings::workers`] exports run at once per process. They read through the
//!   store's read pool, page by page, so ingest (on the single writer) is never blocked by them.
//! - An export belongs to its organization: once the organization is deleted, the export is not
//!   found ([`ExportService::get`]), its links download nothing, and a pending one is failed
//!   instead of written.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use object_store::buffered::BufWriter;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;
use tracing::Instrument;
use vellum_core::checkpoint::NoteSigner;
use vellum_core::export::{
    Export, ExportFilter, ExportFormat, ExportState, ndjson_erased_line, ndjson_event_line, ndjson_header,
    ndjson_omitted_line, ndjson_proof_line, ndjson_purged_line,
};
use vellum_core::pagination::Cursor;
use vellum_core::{ExportId, Order, OrganizationId, PageRequest, Timestamp};
use vellum_jobs::{Job, JobError, JobWaker, Runner, Schedule, StepContext, StepOutcome};
use vellum_store::{EventFilter, ExportOutcome, Store, StoreError};

use crate::csv_file::CsvRows;
use crate::links::{LinkError, LinkSigner};
use crate::storage::Storage;

/// How exports run.
#[derive(Clone, Debug)]
pub struct ExportSettings {
    /// Exports running at once (per process).
    pub workers: usize,
    /// How long a ready export's file is kept.
    pub ttl: Duration,
    /// How long a download link is valid (WorkOS: 10 minutes).
    pub link_lifetime: Duration,
    /// Starts after which an export that keeps being interrupted is failed.
    pub max_attempts: u32,
    /// Events read per page.
    pub page_size: u32,
    /// How long a claim keeps other workers off an export; renewed every third of it while the
    /// export is written. After a crash, the export waits at most this long to be taken up again.
    pub lease: Duration,
}

impl Default for ExportSettings {
    fn default() -> Self {
        Self {
            workers: 2,
            ttl: Duration::from_secs(24 * 60 * 60),
            link_lifetime: Duration::from_secs(10 * 60),
            max_attempts: 3,
            page_size: 1000,
            lease: Duration::from_secs(30),
        }
    }
}

/// How often idle export workers look for exports queued by other processes, or left by a
/// worker whose lease ran out. (Exports queued through this process start at once: creating
/// one wakes a worker.)
const EXPORT_POLL: Duration = Duration::from_secs(5);

/// Why an export was not created.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    /// No event matches the filters (WorkOS answers 400 in this case).
    #[error("No audit log events found")]
    NoEvents,
    /// The store refused or failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why a download was refused.
#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    /// The link is not valid.
    #[error(transparent)]
    Link(#[from] LinkError),
    /// The export does not exist or has no file (any more).
    #[error("the export has no file to download")]
    NoFile,
    /// The store failed.
    #[error(transparent)]
    Store(StoreError),
    /// The file could not be read.
    #[error("the export file cannot be read: {0}")]
    Storage(#[from] object_store::Error),
}

struct Shared {
    store: Arc<dyn Store>,
    storage: Storage,
    log: Arc<NoteSigner>,
    settings: ExportSettings,
}

/// Queues exports and serves them; their files are written by [`ExportJob`] and deleted after
/// their time to live by [`ExpiredExportSweep`]. Cheap to share behind an `Arc`.
pub struct ExportService {
    shared: Arc<Shared>,
    links: LinkSigner,
    waker: JobWaker,
}

impl std::fmt::Debug for ExportService {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("ExportService")
            .field("storage", &self.shared.storage)
            .field("settings", &self.shared.settings)
            .finish_non_exhaustive()
    }
}

fn unix_seconds(timestamp: Timestamp) -> i64 {
    timestamp.unix_millis().div_euclid(1000)
}

impl ExportService {
    /// Starts the export workers and the sweep of expired files on `runner`, which stops them.
    /// Exports left pending by an earlier process are taken up as soon as no lease holds them.
    /// Call from within a Tokio runtime.
    pub fn start(
        store: Arc<dyn Store>,
        storage: Storage,
        links: LinkSigner,
        log: Arc<NoteSigner>,
        settings: ExportSettings,
        runner: &Runner,
    ) -> Self {
        let shared = Arc::new(Shared {
            store,
            storage,
            log,
            settings,
        });
        let waker = runner.spawn(Arc::new(ExportJob {
            shared: Arc::clone(&shared),
        }));
        runner.spawn(Arc::new(ExpiredExportSweep {
            shared: Arc::clone(&shared),
        }));
        Self { shared, links, waker }
    }

    /// Queues an export of a live organization's events, refusing one that would be empty.
    pub async fn create(
        &self,
        organization_id: OrganizationId,
        format: ExportFormat,
        filter: ExportFilter,
    ) -> Result<Export, CreateError> {
        let first = PageRequest {
            limit: 1,
            order: Order::Asc,
            cursor: None,
        };
        let probe = self
            .shared
            .store
            .list_events(organization_id, EventFilter::from(&filter), first)
            .await?;
        if probe.data.is_empty() {
            return Err(CreateError::NoEvents);
        }
        let export = self.shared.store.create_export(organization_id, format, filter).await?;
        metrics::counter!("vellum_exports_created_total").increment(1);
        // A worker of this process starts it now; if all are busy, the first to finish does.
        self.waker.wake();
        Ok(export)
    }

    /// Ends every ready export of an organization now: deletes its file and marks it `expired`
    /// (its link then answers as an expired one's). After an erasure, so that no file made
    /// before it keeps serving what it erased. Returns how many exports it ended.
    pub async fn expire_exports_of(&self, organization_id: OrganizationId) -> Result<usize, StoreError> {
        let shared = &self.shared;
        let Some(now) = Timestamp::from_unix_millis(vellum_store::now().unix_millis().saturating_add(1)) else {
            return Ok(0);
        };
        let ready = shared.store.exports_in_state(ExportState::Ready, now).await?;
        let mut ended = 0;
        for export in ready
            .into_iter()
            .filter(|export| export.organization_id == organization_id)
        {
            if let Some(path) = &export.object_path
                && let Err(error) = shared.storage.delete(path).await
            {
                return Err(StoreError::Unavailable(format!(
                    "cannot delete the file of export {}: {error}",
                    export.id
                )));
            }
            match shared.store.finish_export(export.id, ExportOutcome::Expired).await {
                Ok(_) | Err(StoreError::Conflict(_)) => ended += 1,
                Err(error) => return Err(error),
            }
        }
        Ok(ended)
    }

    /// Returns an export of a live organization. An export whose organization was deleted is
    /// `NotFound`, like an export that never existed (as every object of a deleted organization).
    pub async fn get(&self, id: ExportId) -> Result<Export, StoreError> {
        let export = self.shared.store.get_export(id).await?;
        if !organization_is_live(&*self.shared.store, export.organization_id).await? {
            return Err(StoreError::NotFound {
                kind: "Audit Log Export",
                id: id.to_string(),
            });
        }
        Ok(export)
    }

    /// A fresh download link for a ready export: a presigned bucket URL, or a link to
    /// `{base_url}/audit_logs/exports/{id}/download` signed by this server.
    pub async fn download_url(&self, export: &Export, base_url: &str) -> Result<Option<String>, object_store::Error> {
        let (ExportState::Ready, Some(path)) = (export.state, &export.object_path) else {
            return Ok(None);
        };
        let lifetime = self.shared.settings.link_lifetime;
        if let Some(url) = self.shared.storage.presigned_url(path, lifetime).await {
            return url.map(Some);
        }
        let expires = unix_seconds(vellum_store::now()) + i64::try_from(lifetime.as_secs()).unwrap_or(i64::MAX / 2);
        Ok(Some(format!(
            "{}/audit_logs/exports/{}/download?expires={expires}&signature={}",
            base_url.trim_end_matches('/'),
            export.id,
            self.links.sign(export.id, expires)
        )))
    }

    /// Checks a download link and opens the export's file.
    pub async fn open_download(
        &self,
        id: ExportId,
        expires: i64,
        signature: &str,
    ) -> Result<(Export, object_store::GetResult), DownloadError> {
        self.links
            .check(id, expires, signature, unix_seconds(vellum_store::now()))?;
        let export = match self.get(id).await {
            Ok(export) => export,
            Err(StoreError::NotFound { .. }) => return Err(DownloadError::NoFile),
            Err(error) => return Err(DownloadError::Store(error)),
        };
        let (ExportState::Ready, Some(path)) = (export.state, &export.object_path) else {
            return Err(DownloadError::NoFile);
        };
        let file = match self.shared.storage.get(path).await {
            Ok(file) => file,
            Err(object_store::Error::NotFound { .. }) => return Err(DownloadError::NoFile),
            Err(error) => return Err(error.into()),
        };
        Ok((export, file))
    }
}

/// Whether an organization is live (not deleted).
async fn organization_is_live(store: &dyn Store, organization_id: OrganizationId) -> Result<bool, StoreError> {
    match store.get_organization(organization_id).await {
        Ok(_) => Ok(true),
        Err(StoreError::NotFound { .. }) => Ok(false),
        Err(error) => Err(error),
    }
}

/// `now` plus `duration`, saturating.
fn later_by(now: Timestamp, duration: Duration) -> Timestamp {
    let millis = i64::try_from(duration.as_millis()).unwrap_or(i64::MAX);
    Timestamp::from_unix_millis(now.unix_millis().saturating_add(millis)).unwrap_or(Timestamp::MAX)
}

/// The export workers' job: each step claims the oldest pending export no lease holds and
/// writes it to its end (or until shutdown, which leaves it pending for the next claim).
pub struct ExportJob {
    shared: Arc<Shared>,
}

impl ExportJob {
    /// The job on its own, for running steps directly (tests; [`ExportService::start`] makes
    /// its own).
    pub fn new(store: Arc<dyn Store>, storage: Storage, log: Arc<NoteSigner>, settings: ExportSettings) -> Self {
        Self {
            shared: Arc::new(Shared {
                store,
                storage,
                log,
                settings,
            }),
        }
    }
}

#[async_trait]
impl Job for ExportJob {
    fn name(&self) -> &'static str {
        "exports"
    }

    fn schedule(&self) -> Schedule {
        Schedule::every(EXPORT_POLL).with_workers(self.shared.settings.workers)
    }

    async fn step(&self, context: &StepContext) -> Result<StepOutcome, JobError> {
        let now = vellum_store::now();
        let lease_until = later_by(now, self.shared.settings.lease);
        let Some(export) = self
            .shared
            .store
            .claim_export(context.worker(), now, lease_until)
            .await?
        else {
            return Ok(StepOutcome::Idle);
        };
        let span = tracing::info_span!("export", export_id = %export.id, organization = %export.organization_id);
        run(&self.shared, export, context).instrument(span).await?;
        Ok(StepOutcome::Worked)
    }
}

/// The sweep of expired export files: each step deletes the files of exports ready for longer
/// than the time to live and marks them `expired`.
pub struct ExpiredExportSweep {
    shared: Arc<Shared>,
}

impl ExpiredExportSweep {
    /// The sweep on its own, for running steps directly (tests; [`ExportService::start`] makes
    /// its own).
    pub fn new(store: Arc<dyn Store>, storage: Storage, log: Arc<NoteSigner>, settings: ExportSettings) -> Self {
        Self {
            shared: ExportJob::new(store, storage, log, settings).shared,
        }
    }
}

#[async_trait]
impl Job for ExpiredExportSweep {
    fn name(&self) -> &'static str {
        "expired-export-files"
    }

    fn schedule(&self) -> Schedule {
        Schedule::every((self.shared.settings.ttl / 10).clamp(Duration::from_secs(1), Duration::from_secs(300)))
    }

    async fn step(&self, _context: &StepContext) -> Result<StepOutcome, JobError> {
        delete_expired(&self.shared).await?;
        Ok(StepOutcome::Idle)
    }
}

/// Deletes the files of exports ready for longer than the time to live and marks them
/// `expired`. A file that cannot be deleted is tried again at the next sweep. Safe with
/// several processes sweeping at once: deleting a deleted file succeeds, and only one of them
/// moves the export to `expired`.
async fn delete_expired(shared: &Shared) -> Result<(), StoreError> {
    let ttl_millis = i64::try_from(shared.settings.ttl.as_millis()).unwrap_or(i64::MAX);
    let Some(cutoff) = Timestamp::from_unix_millis(vellum_store::now().unix_millis().saturating_sub(ttl_millis)) else {
        return Ok(());
    };
    let expired = shared.store.exports_in_state(ExportState::Ready, cutoff).await?;
    for export in expired {
        if let Some(path) = &export.object_path
            && let Err(error) = shared.storage.delete(path).await
        {
            tracing::warn!(export_id = %export.id, %error, "cannot delete an expired export file");
            continue;
        }
        match shared.store.finish_export(export.id, ExportOutcome::Expired).await {
            Ok(_) => tracing::info!(export_id = %export.id, "deleted an expired export file"),
            Err(StoreError::Conflict(_)) => {
                tracing::debug!(export_id = %export.id, "another process marked the export expired");
            }
            Err(error) => tracing::warn!(export_id = %export.id, %error, "cannot mark an export expired"),
        }
    }
    Ok(())
}

/// Runs one claimed export to its outcome, or leaves it pending when the worker stops or its
/// lease is lost. An error means the store failed; the export is then left for a later claim.
async fn run(shared: &Shared, export: Export, context: &StepContext) -> Result<(), StoreError> {
    let (id, worker) = (export.id, context.worker());
    if export.attempts > 1 {
        tracing::info!(export_id = %id, attempts = export.attempts, "resuming an unfinished export");
    }
    let path = shared.storage.path_for(&export);
    // Whatever an interrupted attempt at this export left behind is ours to remove: we hold its
    // lease, so no other worker is writing it.
    match shared.storage.remove_interrupted_uploads(&path) {
        Ok(0) => {}
        Ok(removed) => tracing::info!(export_id = %id, removed, "removed the partial files of interrupted attempts"),
        Err(error) => {
            tracing::warn!(export_id = %id, %error, "cannot remove the partial files of interrupted attempts")
        }
    }
    let live = match organization_is_live(&*shared.store, export.organization_id).await {
        Ok(live) => live,
        Err(error) => {
            release(shared, id, worker).await;
            return Err(error);
        }
    };
    let outcome = if !live {
        // Its organization was deleted while it waited: nothing of it is written.
        tracing::info!(export_id = %id, "not writing the export of a deleted organization");
        ExportOutcome::Failed(DELETED_ORGANIZATION.to_owned())
    } else if export.attempts > shared.settings.max_attempts {
        ExportOutcome::Failed(format!(
            "The export was interrupted {} times and was abandoned.",
            export.attempts - 1
        ))
    } else {
        let started = std::time::Instant::now();
        match write_under_lease(shared, &export, &path, context).await {
            Attempt::Finished(Ok((rows, bytes))) => {
                let seconds = started.elapsed().as_secs_f64();
                tracing::info!(
                    export_id = %id,
                    rows,
                    bytes,
                    seconds,
                    rows_per_second = (rows as f64 / seconds.max(1e-9)) as u64,
                    "export ready"
                );
                ExportOutcome::Ready {
                    object_path: path.to_string(),
                    rows,
                    bytes,
                }
            }
            Attempt::Finished(Err(WriteError::Store(StoreError::Unavailable(reason)))) => {
                // The store cannot be reached (or is closing): leave the export for later.
                tracing::info!(export_id = %id, %reason, "export interrupted");
                release(shared, id, worker).await;
                return Err(StoreError::Unavailable(reason));
            }
            Attempt::Finished(Err(error)) => {
                tracing::warn!(export_id = %id, %error, "export failed");
                ExportOutcome::Failed(error.to_string())
            }
            Attempt::Stopped => {
                tracing::info!(export_id = %id, "export interrupted by shutdown; it stays pending");
                release(shared, id, worker).await;
                return Ok(());
            }
            Attempt::LeaseLost => {
                tracing::warn!(export_id = %id, "another worker took the export over; stopping this attempt");
                return Ok(());
            }
        }
    };
    let label = match &outcome {
        ExportOutcome::Ready { .. } => "ready",
        _ => "error",
    };
    match shared.store.finish_leased_export(id, worker, outcome).await {
        Ok(_) => {
            metrics::counter!("vellum_exports_finished_total", "outcome" => label).increment(1);
            metrics::histogram!("vellum_export_duration_seconds")
                .record((vellum_store::now().unix_millis() - export.created_at.unix_millis()).max(0) as f64 / 1_000.0);
            Ok(())
        }
        Err(StoreError::Conflict(reason)) => {
            tracing::warn!(export_id = %id, %reason, "the outcome of an export was not recorded");
            Ok(())
        }
        Err(error) => {
            tracing::warn!(export_id = %id, %error, "cannot record the outcome of an export");
            Err(error)
        }
    }
}

/// Gives the export back so that the next claim takes it at once (best effort: if this fails,
/// the lease runs out instead).
async fn release(shared: &Shared, id: ExportId, worker: &str) {
    if let Err(error) = shared.store.release_export_lease(id, worker).await {
        tracing::debug!(export_id = %id, %error, "cannot release an export's lease; it will run out");
    }
}

/// How an attempt at writing an export ended.
enum Attempt {
    /// The file is complete (rows and bytes), or writing it failed.
    Finished(Result<(u64, u64), WriteError>),
    /// The worker is stopping; the file was left incomplete.
    Stopped,
    /// Another worker holds the export now; the file was left incomplete.
    LeaseLost,
}

/// Renews the lease; `false` once another worker holds it (or the export was finished).
async fn renew(shared: &Shared, id: ExportId, worker: &str) -> Result<bool, StoreError> {
    let lease_until = later_by(vellum_store::now(), shared.settings.lease);
    match shared.store.renew_export_lease(id, worker, lease_until).await {
        Ok(()) => Ok(true),
        Err(StoreError::Conflict(_)) => Ok(false),
        Err(error) => Err(error),
    }
}

/// Writes an export's file while renewing its lease, and completes the upload (which makes the
/// file visible) only after confirming the lease is still ours. Shutdown stops it between two
/// writes; the incomplete upload is removed by the export's next attempt (S3: by the bucket's
/// rule for incomplete multipart uploads).
async fn write_under_lease(
    shared: &Shared,
    export: &Export,
    path: &object_store::path::Path,
    context: &StepContext,
) -> Attempt {
    let worker = context.worker();
    let renew_every = (shared.settings.lease / 3).max(Duration::from_millis(10));
    let mut renewals = tokio::time::interval_at(tokio::time::Instant::now() + renew_every, renew_every);
    renewals.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let body = write_body(shared, export, path);
    let mut body = std::pin::pin!(body);
    let written = loop {
        // In this order: a stop is noticed before anything more is written.
        tokio::select! {
            biased;
            () = context.stopping() => return Attempt::Stopped,
            _ = renewals.tick() => match renew(shared, export.id, worker).await {
                Ok(true) => {}
                Ok(false) => return Attempt::LeaseLost,
                // Try again at the next tick; the lease lasts three of them.
                Err(error) => tracing::warn!(export_id = %export.id, %error, "cannot renew an export's lease"),
            },
            written = &mut body => break written,
        }
    };
    let (rows, mut output) = match written {
        Ok(written) => written,
        Err(error) => return Attempt::Finished(Err(error)),
    };
    // A worker that lost the lease must not make its file visible: the new holder writes it.
    let confirmed = renew(shared, export.id, worker).await;
    if !matches!(confirmed, Ok(true)) {
        if let Err(abort) = output.writer.abort().await {
            tracing::debug!(%abort, "aborting the upload of an export");
        }
        return match confirmed {
            Err(error) => Attempt::Finished(Err(error.into())),
            _ => Attempt::LeaseLost,
        };
    }
    // Completing the upload is what makes the file visible at its path.
    match output.writer.shutdown().await {
        Ok(()) => Attempt::Finished(Ok((rows, output.bytes))),
        Err(error) => Attempt::Finished(Err(error.into())),
    }
}

/// Why the pending export of a deleted organization was failed.
pub const DELETED_ORGANIZATION: &str = "The organization was deleted; its events are not exported.";

#[derive(Debug, thiserror::Error)]
enum WriteError {
    #[error("The export could not read events: {0}")]
    Store(#[from] StoreError),
    #[error("The export file could not be written: {0}")]
    Storage(#[from] object_store::Error),
    #[error("The export file could not be written: {0}")]
    Io(#[from] std::io::Error),
    #[error("The export could not be encoded: {0}")]
    Csv(#[from] csv::Error),
    #[error("The log is damaged at position {0}: {1}")]
    Log(u64, String),
}

/// Counts what goes into the object store.
struct Output {
    writer: BufWriter,
    bytes: u64,
}

impl Output {
    async fn write(&mut self, chunk: &[u8]) -> Result<(), WriteError> {
        self.writer.write_all(chunk).await?;
        self.bytes += chunk.len() as u64;
        Ok(())
    }
}

/// Part size of uploads: S3's minimum, so that at most a few parts are in memory.
const PART_BYTES: usize = 5 * 1024 * 1024;

/// Writes the file's contents and returns the row count with the upload, not yet completed.
/// A failed write aborts the upload.
async fn write_body(
    shared: &Shared,
    export: &Export,
    path: &object_store::path::Path,
) -> Result<(u64, Output), WriteError> {
    let writer = BufWriter::with_capacity(Arc::clone(shared.storage.objects()), path.clone(), PART_BYTES)
        .with_max_concurrency(2);
    let mut output = Output { writer, bytes: 0 };
    let written = match export.format {
        ExportFormat::Csv => write_csv(shared, export, &mut output).await,
        ExportFormat::Ndjson => write_ndjson(shared, export, &mut output).await,
    };
    match written {
        Ok(rows) => Ok((rows, output)),
        Err(error) => {
            if let Err(abort) = output.writer.abort().await {
                tracing::debug!(%abort, "aborting the upload of a failed export");
            }
            Err(error)
        }
    }
}

/// Aborts a task when dropped (so a failed or cancelled export stops its reader).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Pages read ahead of the encoder: while one page is encoded and uploaded, the next is read on
/// a store reader thread.
const PAGES_AHEAD: usize = 2;

async fn write_csv(shared: &Shared, export: &Export, output: &mut Output) -> Result<u64, WriteError> {
    let filter = EventFilter::from(&export.filter);
    let bounds = shared
        .store
        .event_bounds(export.organization_id, filter.clone())
        .await?;
    let mut rows = CsvRows::new(usize::try_from(bounds.max_targets).unwrap_or(usize::MAX));
    rows.header()?;
    let (pages, mut received) = mpsc::channel(PAGES_AHEAD);
    let (store, organization_id, page_size) = (
        Arc::clone(&shared.store),
        export.organization_id,
        shared.settings.page_size,
    );
    let _reader = AbortOnDrop(tokio::spawn(async move {
        let mut cursor = None;
        loop {
            let request = PageRequest {
                limit: page_size,
                order: Order::Asc,
                cursor: cursor.take().map(Cursor::After),
            };
            let (events, after) = match store.list_events(organization_id, filter.clone(), request).await {
                Ok(page) => (page.data, page.list_metadata.after),
                Err(error) => {
                    let _ = pages.send(Err(error)).await;
                    return;
                }
            };
            if pages.send(Ok(events)).await.is_err() {
                return;
            }
            match after {
                Some(after) => cursor = Some(after),
                None => return,
            }
        }
    }));
    let mut count = 0u64;
    while let Some(page) = received.recv().await {
        let events = page?;
        for event in &events {
            rows.event(event)?;
        }
        count += events.len() as u64;
        output.write(&rows.take()?).await?;
    }
    Ok(count)
}

async fn write_ndjson(shared: &Shared, export: &Export, output: &mut Output) -> Result<u64, WriteError> {
    let organization_id = export.organization_id;
    let store = &shared.store;
    let bounds = store
        .event_bounds(organization_id, EventFilter::from(&export.filter))
        .await?;
    let (start, end) = bounds.log_range.unwrap_or((0, 0));
    let origin = format!("{}/{organization_id}", shared.log.name());
    // The checkpoint first: it covers at least every position up to `end`.
    let signed = store
        .log_checkpoint(organization_id, Arc::clone(&shared.log), origin.clone())
        .await?;
    let left = store.log_frontier(organization_id, start).await?;
    output.write(&ndjson_header(export, &origin, start, &left)).await?;

    let (pages, mut received) = mpsc::channel(PAGES_AHEAD);
    let (reader_store, page) = (Arc::clone(store), u64::from(shared.settings.page_size));
    let _reader = AbortOnDrop(tokio::spawn(async move {
        let mut position = start;
        while position < end {
            let records = reader_store
                .log_scan(organization_id, position, page.min(end - position))
                .await
                .map(|scan| scan.records);
            position += page;
            if pages.send(records).await.is_err() {
                return;
            }
        }
    }));
    let mut count = 0u64;
    let mut position = start;
    let mut chunk = Vec::with_capacity(1 << 20);
    while let Some(records) = received.recv().await {
        let records = records?;
        if records.is_empty() {
            return Err(WriteError::Log(position, "the position has no event".into()));
        }
        for record in records {
            if u64::try_from(record.log_index).ok() != Some(position) {
                return Err(WriteError::Log(position, "the position has no event".into()));
            }
            if let (Some(purged_by), Some(leaf)) = (record.purged_by, record.stored_leaf) {
                chunk.extend_from_slice(&ndjson_purged_line(position, &leaf, purged_by));
                position += 1;
                continue;
            }
            let event = record.event.map_err(|reason| WriteError::Log(position, reason))?;
            if export.filter.matches(&event) && !vellum_core::canonical::leaf_is_recomputable(&event) {
                let leaf = record
                    .stored_leaf
                    .ok_or_else(|| WriteError::Log(position, "the position has no leaf hash".into()))?;
                chunk.extend_from_slice(&ndjson_erased_line(&event, &leaf));
                count += 1;
            } else if export.filter.matches(&event) {
                chunk.extend_from_slice(&ndjson_event_line(&event));
                count += 1;
            } else {
                let leaf = record
                    .stored_leaf
                    .ok_or_else(|| WriteError::Log(position, "the position has no leaf hash".into()))?;
                chunk.extend_from_slice(&ndjson_omitted_line(position, &leaf));
            }
            position += 1;
        }
        output.write(&chunk).await?;
        chunk.clear();
    }
    if position != end {
        return Err(WriteError::Log(position, "the position has no event".into()));
    }
    let tree_size = signed.checkpoint.size;
    let consistency = if end == 0 || end == tree_size {
        Vec::new()
    } else {
        store.log_consistency_proof(organization_id, end, tree_size).await?
    };
    output
        .write(&ndjson_proof_line(end, tree_size, &signed.note, &consistency))
        .await?;
    Ok(count)
}
