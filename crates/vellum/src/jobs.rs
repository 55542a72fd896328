//! The background jobs of `vellum serve` that belong to no other crate, and the run id that
//! names this process's workers. (Export jobs live in `vellum-export`; all of them run on one
//! [`vellum_jobs::Runner`], started and stopped by [`crate::startup`].)

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use vellum_core::Timestamp;
use vellum_jobs::{Job, JobError, Schedule, StepContext, StepOutcome};
use vellum_store::Store;

/// A fresh id for this process run: the process id and six random bytes, so that worker ids
/// (and the export leases they own) never repeat across processes or restarts.
pub fn new_run_id() -> std::io::Result<String> {
    let random = vellum_store::random_bytes()?;
    let suffix: String = random[..6].iter().map(|byte| format!("{byte:02x}")).collect();
    Ok(format!("{}-{suffix}", std::process::id()))
}

/// How often idempotency keys older than 24 hours are deleted. (Expired keys are already
/// ignored when they are looked up; this only reclaims their space.)
pub const IDEMPOTENCY_PURGE_INTERVAL: Duration = Duration::from_secs(600);

/// Forgets idempotency keys claimed more than [`vellum_store::IDEMPOTENCY_WINDOW_MILLIS`] ago.
/// One delete by age per step, so any number of processes may run it at once.
pub struct IdempotencyKeyPurge {
    store: Arc<dyn Store>,
    clock: Arc<dyn Fn() -> Timestamp + Send + Sync>,
}

impl IdempotencyKeyPurge {
    /// The purge, on the system clock.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self::with_clock(store, Arc::new(vellum_store::now))
    }

    /// The purge, on another clock (tests).
    pub fn with_clock(store: Arc<dyn Store>, clock: Arc<dyn Fn() -> Timestamp + Send + Sync>) -> Self {
        Self { store, clock }
    }
}

#[async_trait]
impl Job for IdempotencyKeyPurge {
    fn name(&self) -> &'static str {
        "idempotency-purge"
    }

    fn schedule(&self) -> Schedule {
        Schedule::every(IDEMPOTENCY_PURGE_INTERVAL)
    }

    async fn step(&self, _context: &StepContext) -> Result<StepOutcome, JobError> {
        let now = (self.clock)().unix_millis();
        let Some(cutoff) = Timestamp::from_unix_millis(now.saturating_sub(vellum_store::IDEMPOTENCY_WINDOW_MILLIS))
        else {
            return Ok(StepOutcome::Idle);
        };
        let removed = self.store.purge_idempotency_keys(cutoff).await?;
        if removed > 0 {
            tracing::debug!(removed, "forgot expired idempotency keys");
        }
        Ok(StepOutcome::Idle)
    }
}

#[cfg(test)]
mod tests {
    use vellum_store::{AppendOutcome, IdempotencyClaim, NewEvent, SqliteConfig, SqliteStore};

    use super::*;

    fn event() -> NewEvent {
        vellum_store::conformance::event_at(1_000, "user.signed_in", "user_1", &[])
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_purge_step_forgets_only_keys_older_than_the_window() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&SqliteConfig::new(dir.path())).unwrap());
        let organization = store
            .create_organization(vellum_store::conformance::new_organization("Keys"))
            .await
            .unwrap()
            .id;
        let claim = IdempotencyClaim {
            key_hash: [1; 16],
            request_hash: [2; 16],
            record: None,
        };
        store
            .append_events(organization, vec![event()], Some(claim.clone()))
            .await
            .unwrap();
        let (context, _stop) = StepContext::standalone("run/idempotency-purge/0");

        // Now, the key is within its window: kept, so a retry is still answered by a replay.
        let purge = IdempotencyKeyPurge::new(Arc::clone(&store));
        assert_eq!(purge.schedule().idle, IDEMPOTENCY_PURGE_INTERVAL);
        assert_eq!(purge.step(&context).await.unwrap(), StepOutcome::Idle);
        assert!(matches!(
            store.check_idempotency(organization, &claim).await.unwrap(),
            Some(AppendOutcome::Replayed { .. })
        ));

        // A day and an hour later, it is gone.
        let tomorrow = IdempotencyKeyPurge::with_clock(
            Arc::clone(&store),
            Arc::new(|| Timestamp::from_unix_millis(vellum_store::now().unix_millis() + 25 * 3_600_000).unwrap()),
        );
        assert_eq!(tomorrow.step(&context).await.unwrap(), StepOutcome::Idle);
        assert_eq!(store.check_idempotency(organization, &claim).await.unwrap(), None);
        store.close().await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_purge_on_a_closed_store_fails_so_the_runner_backs_off() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&SqliteConfig::new(dir.path())).unwrap());
        store.close().await.unwrap();
        let (context, _stop) = StepContext::standalone("run/idempotency-purge/0");
        assert!(IdempotencyKeyPurge::new(store).step(&context).await.is_err());
    }

    #[test]
    fn run_ids_differ() {
        assert_ne!(new_run_id().unwrap(), new_run_id().unwrap());
    }
}
