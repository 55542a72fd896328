//! The export jobs' step functions, driven directly (no runner, no HTTP) against a real SQLite
//! store and local file storage: what one step claims, writes, leaves pending or fails, and
//! what the sweep of expired files does.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use vellum_core::checkpoint::NoteSigner;
use vellum_core::export::{Export, ExportFilter, ExportFormat, ExportState};
use vellum_core::{OrganizationId, Timestamp};
use vellum_export::{ExpiredExportSweep, ExportJob, ExportSettings, Storage, StorageSettings};
use vellum_jobs::{Job, StepContext, StepOutcome};
use vellum_store::prelude::*;
use vellum_store::{ExportOutcome, NewEvent, SqliteConfig, SqliteStore};

struct Fixture {
    store: Arc<dyn Store>,
    storage: Storage,
    root: PathBuf,
    organization: OrganizationId,
    _dir: tempfile::TempDir,
}

fn event(millis: i64) -> NewEvent {
    vellum_store::conformance::event_at(millis, "user.signed_in", "user_1", &[])
}

/// A store with one organization holding `events` events, and local export storage.
async fn fixture(events: i64) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&SqliteConfig::new(dir.path().join("data"))).unwrap();
    let organization = store
        .create_organization(vellum_store::conformance::new_organization("Jobs"))
        .await
        .unwrap()
        .id;
    let batch: Vec<NewEvent> = (0..events).map(|index| event(1_000 + index)).collect();
    for chunk in batch.chunks(1000) {
        store.append_events(organization, chunk.to_vec(), None).await.unwrap();
    }
    let root = dir.path().join("exports");
    let storage = Storage::open(&StorageSettings::Local { root: root.clone() }).unwrap();
    Fixture {
        store: Arc::new(store),
        storage,
        root,
        organization,
        _dir: dir,
    }
}

fn signer() -> Arc<NoteSigner> {
    Arc::new(NoteSigner::new("vellum.test", &[5; 32]).unwrap())
}

fn everything() -> ExportFilter {
    ExportFilter {
        range_start: Timestamp::MIN,
        range_end: Timestamp::MAX,
        actions: Vec::new(),
        actor_names: Vec::new(),
        actor_ids: Vec::new(),
        target_types: Vec::new(),
    }
}

impl Fixture {
    fn job(&self, settings: ExportSettings) -> ExportJob {
        ExportJob::new(Arc::clone(&self.store), self.storage.clone(), signer(), settings)
    }

    async fn queue(&self, format: ExportFormat) -> Export {
        self.store
            .create_export(self.organization, format, everything())
            .await
            .unwrap()
    }

    async fn export(&self, export: &Export) -> Export {
        self.store.get_export(export.id).await.unwrap()
    }

    fn file(&self, export: &Export) -> PathBuf {
        self.root
            .join("exports")
            .join(format!("{}.{}", export.id, export.format.extension()))
    }
}

fn in_seconds(seconds: i64) -> Timestamp {
    Timestamp::from_unix_millis(vellum_store::now().unix_millis() + seconds * 1000).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_step_writes_the_oldest_pending_export_and_then_the_job_is_idle() {
    let fixture = fixture(3).await;
    let job = fixture.job(ExportSettings::default());
    let (context, _stop) = StepContext::standalone("run/exports/0");
    let first = fixture.queue(ExportFormat::Csv).await;
    let second = fixture.queue(ExportFormat::Ndjson).await;

    assert_eq!(job.step(&context).await.unwrap(), StepOutcome::Worked);
    let written = fixture.export(&first).await;
    assert_eq!(
        (written.state, written.rows, written.attempts),
        (ExportState::Ready, Some(3), 1)
    );
    let csv = std::fs::read_to_string(fixture.file(&first)).unwrap();
    assert_eq!(csv.lines().count(), 4, "a header and three rows: {csv}");
    assert_eq!(fixture.export(&second).await.state, ExportState::Pending);

    assert_eq!(job.step(&context).await.unwrap(), StepOutcome::Worked);
    assert_eq!(fixture.export(&second).await.state, ExportState::Ready);
    assert!(fixture.file(&second).exists());

    assert_eq!(job.step(&context).await.unwrap(), StepOutcome::Idle);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_another_worker_holds_is_left_alone() {
    let fixture = fixture(3).await;
    let job = fixture.job(ExportSettings::default());
    let queued = fixture.queue(ExportFormat::Csv).await;
    let held = fixture
        .store
        .claim_export("other-process/exports/0", vellum_store::now(), in_seconds(3600))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(held.id, queued.id);
    let (context, _stop) = StepContext::standalone("run/exports/0");
    assert_eq!(job.step(&context).await.unwrap(), StepOutcome::Idle);
    assert_eq!(fixture.export(&queued).await.state, ExportState::Pending);
    assert!(!fixture.file(&queued).exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_stopped_by_shutdown_stays_pending_and_the_next_claim_takes_it_at_once() {
    let fixture = fixture(3).await;
    let job = fixture.job(ExportSettings::default());
    let queued = fixture.queue(ExportFormat::Csv).await;
    // What an attempt interrupted by a crash left behind.
    let staged = fixture.root.join("exports").join(format!("{}.csv#7", queued.id));
    std::fs::create_dir_all(staged.parent().unwrap()).unwrap();
    std::fs::write(&staged, "id,organization_id\n").unwrap();
    // A staged file of another export is not this export's to remove.
    let other_staged = fixture.root.join("exports").join("audit_log_export_other.csv#1");
    std::fs::write(&other_staged, "partial").unwrap();

    // Shutdown has begun when the step starts: it claims the export, then stops before writing.
    let (stopping, stop) = StepContext::standalone("run-1/exports/0");
    stop.stop();
    assert_eq!(job.step(&stopping).await.unwrap(), StepOutcome::Worked);
    let interrupted = fixture.export(&queued).await;
    assert_eq!(
        (interrupted.state, interrupted.attempts, interrupted.error),
        (ExportState::Pending, 0, None),
        "a clean stop gives its start back"
    );
    assert!(!fixture.file(&queued).exists());
    assert!(
        !staged.exists(),
        "the claim removed the interrupted attempt's staged file"
    );
    assert!(other_staged.exists());

    // The lease was given back: a worker of the next process run claims the export at once.
    let (context, _stop) = StepContext::standalone("run-2/exports/0");
    assert_eq!(job.step(&context).await.unwrap(), StepOutcome::Worked);
    let resumed = fixture.export(&queued).await;
    assert_eq!((resumed.state, resumed.attempts), (ExportState::Ready, 1));
    assert!(fixture.file(&queued).exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_whose_lease_is_taken_over_leaves_the_export_to_the_new_holder() {
    let fixture = fixture(5_000).await;
    // A lease that runs out at once, and one event per page: the export takes a while to write,
    // and any other worker may take it over meanwhile.
    let settings = ExportSettings {
        lease: Duration::ZERO,
        page_size: 1,
        ..ExportSettings::default()
    };
    let job = fixture.job(settings);
    let queued = fixture.queue(ExportFormat::Csv).await;
    let (context, _stop) = StepContext::standalone("slow/exports/0");
    let step = tokio::spawn(async move { job.step(&context).await.unwrap() });
    while fixture.export(&queued).await.attempts == 0 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let taken = fixture
        .store
        .claim_export("thief/exports/0", vellum_store::now(), in_seconds(3600))
        .await
        .unwrap()
        .expect("a lease that ran out is taken over");
    assert_eq!((taken.id, taken.attempts), (queued.id, 2));

    assert_eq!(step.await.unwrap(), StepOutcome::Worked);
    let left = fixture.export(&queued).await;
    assert_eq!(
        left.state,
        ExportState::Pending,
        "the worker that lost the lease finished it"
    );
    assert!(
        !fixture.file(&queued).exists(),
        "the worker that lost the lease completed its file"
    );
    fixture
        .store
        .finish_leased_export(queued.id, "thief/exports/0", ExportOutcome::Failed("test".into()))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_interrupted_too_often_or_of_a_deleted_organization_is_failed() {
    let fixture = fixture(3).await;
    let job = fixture.job(ExportSettings::default());
    let (context, _stop) = StepContext::standalone("run/exports/0");

    let restarted = fixture.queue(ExportFormat::Csv).await;
    // Graceful stops give their starts back: any number of them leave the export to be written.
    for attempt in 1..=5 {
        let worker = format!("stopped-{attempt}/exports/0");
        let claimed = fixture
            .store
            .claim_export(&worker, vellum_store::now(), in_seconds(30))
            .await
            .unwrap()
            .unwrap();
        fixture.store.release_export_lease(claimed.id, &worker).await.unwrap();
    }
    assert_eq!(fixture.export(&restarted).await.attempts, 0);
    // Three workers that died holding it (their leases ran out unreleased) use up its attempts.
    for attempt in 1..=3 {
        fixture
            .store
            .claim_export(
                &format!("crashed-{attempt}/exports/0"),
                vellum_store::now(),
                vellum_store::now(),
            )
            .await
            .unwrap()
            .unwrap();
    }
    assert_eq!(job.step(&context).await.unwrap(), StepOutcome::Worked);
    let abandoned = fixture.export(&restarted).await;
    assert_eq!(
        (abandoned.state, abandoned.error.as_deref()),
        (
            ExportState::Error,
            Some("The export was interrupted 3 times and was abandoned.")
        )
    );

    let orphaned = fixture.queue(ExportFormat::Csv).await;
    fixture.store.delete_organization(fixture.organization).await.unwrap();
    assert_eq!(job.step(&context).await.unwrap(), StepOutcome::Worked);
    let failed = fixture.export(&orphaned).await;
    assert_eq!(
        (failed.state, failed.error.as_deref()),
        (ExportState::Error, Some(vellum_export::DELETED_ORGANIZATION))
    );
    assert!(!fixture.file(&orphaned).exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweep_deletes_expired_files_and_marks_their_exports_expired() {
    let fixture = fixture(3).await;
    let settings = ExportSettings {
        ttl: Duration::from_millis(1),
        ..ExportSettings::default()
    };
    let job = fixture.job(settings.clone());
    let (context, _stop) = StepContext::standalone("run/exports/0");
    let kept_file = fixture.queue(ExportFormat::Csv).await;
    let gone_file = fixture.queue(ExportFormat::Csv).await;
    assert_eq!(job.step(&context).await.unwrap(), StepOutcome::Worked);
    assert_eq!(job.step(&context).await.unwrap(), StepOutcome::Worked);
    // Another process's sweep already deleted one file.
    std::fs::remove_file(fixture.file(&gone_file)).unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;

    let sweep = ExpiredExportSweep::new(Arc::clone(&fixture.store), fixture.storage.clone(), signer(), settings);
    assert_eq!(sweep.schedule().idle, Duration::from_secs(1));
    let (context, _stop) = StepContext::standalone("run/expired-export-files/0");
    assert_eq!(sweep.step(&context).await.unwrap(), StepOutcome::Idle);
    for export in [&kept_file, &gone_file] {
        let swept = fixture.export(export).await;
        assert_eq!(swept.state, ExportState::Expired);
        assert!(!fixture.file(export).exists());
    }
    assert_eq!(sweep.step(&context).await.unwrap(), StepOutcome::Idle);
}
