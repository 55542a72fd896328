//! Retention: the purge pass, the job that runs it periodically, and legal holds
//! (`docs/retention.md`).
//!
//! A purge pass visits every organization with a log, deleted ones included. For each one not
//! under a legal hold it removes the events whose `occurred_at` is older than its retention
//! period (its own, else the server's default), in steps of at most [`STEP_EVENTS`] events: each
//! step is one commit that also appends the purge record accounting for exactly the positions it
//! removed, so the log verifies after every step, and a pass stopped anywhere (a crash, a
//! shutdown) leaves nothing half done. Between steps it yields, so ingest is never held for longer
//! than one step. At the end it gives the freed space back to the file system.
//!
//! Several processes may run passes at once (nodes over one PostgreSQL database): each step
//! takes the log's own lock, so they divide the work.

use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument;

use async_trait::async_trait;
use vellum_core::log_record::{MAX_HOLD_REASON_CHARS, RecordedBy, legal_hold_input};
use vellum_core::retention::effective_retention_days;
use vellum_core::seal::ErasureSubject;
use vellum_core::{Event, OrganizationId, Timestamp};
use vellum_jobs::{Job, JobError, Schedule, StepContext, StepOutcome};
use vellum_store::{EraseStep, LegalHold, PurgeRule, PurgeStep, Store, StoreError};

/// Events removed per step (per commit) at most. A step of this size takes tens of
/// milliseconds on the embedded store's single writer; ingest waits for at most one.
pub const STEP_EVENTS: u32 = 2_000;

/// How often `vellum serve` runs a purge pass, unless configured.
pub const DEFAULT_PURGE_INTERVAL: Duration = Duration::from_secs(3_600);

const DAY_MILLIS: i64 = 24 * 60 * 60 * 1000;

/// What a pass did for one organization.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrganizationPurge {
    /// The organization.
    pub organization_id: OrganizationId,
    /// Whether it was deleted.
    pub deleted: bool,
    /// The retention period applied.
    pub retention_period_in_days: u32,
    /// Events that occurred before this were removed.
    pub occurred_before: Timestamp,
    /// Whether a legal hold kept everything.
    pub held: bool,
    /// Events removed.
    pub events: u64,
    /// Purge records appended.
    pub records: u64,
    /// Bytes of stored event details removed.
    pub payload_bytes: u64,
}

/// What one pass did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PassSummary {
    /// Per organization with a log.
    pub organizations: Vec<OrganizationPurge>,
    /// Bytes the store occupied before the pass.
    pub size_before: u64,
    /// Bytes it occupies after.
    pub size_after: u64,
    /// Bytes given back to the file system.
    pub reclaimed: u64,
    /// Whether the pass stopped early (shutdown).
    pub interrupted: bool,
}

impl PassSummary {
    /// Events removed in all.
    pub fn events(&self) -> u64 {
        self.organizations.iter().map(|organization| organization.events).sum()
    }
}

/// Runs purge passes against a store.
#[derive(Clone)]
pub struct PurgeService {
    store: Arc<dyn Store>,
    default_retention_days: u32,
    step_events: u32,
}

impl PurgeService {
    /// A service applying `default_retention_days` to organizations that set no period.
    pub fn new(store: Arc<dyn Store>, default_retention_days: u32) -> Self {
        Self {
            store,
            default_retention_days,
            step_events: STEP_EVENTS,
        }
    }

    /// The same, removing at most `step_events` events per commit (tests and measurements).
    pub fn with_step_events(mut self, step_events: u32) -> Self {
        self.step_events = step_events.max(1);
        self
    }

    /// One pass at time `now`. `stopping` is polled between steps; when it says so, the pass ends
    /// after the step in flight.
    pub async fn run_pass(
        &self,
        now: Timestamp,
        stopping: &(dyn Fn() -> bool + Send + Sync),
    ) -> Result<PassSummary, StoreError> {
        let started = std::time::Instant::now();
        let summary = self
            .run_pass_unobserved(now, stopping)
            .instrument(tracing::info_span!("purge"))
            .await?;
        metrics::counter!("vellum_purge_passes_total").increment(1);
        metrics::counter!("vellum_purge_events_removed_total").increment(summary.events());
        metrics::counter!("vellum_purge_bytes_reclaimed_total").increment(summary.reclaimed);
        metrics::histogram!("vellum_purge_pass_duration_seconds").record(started.elapsed().as_secs_f64());
        Ok(summary)
    }

    async fn run_pass_unobserved(
        &self,
        now: Timestamp,
        stopping: &(dyn Fn() -> bool + Send + Sync),
    ) -> Result<PassSummary, StoreError> {
        let mut summary = PassSummary {
            size_before: self.store.store_size().await?,
            ..PassSummary::default()
        };
        for policy in self.store.retention_policies().await? {
            let days = effective_retention_days(policy.retention_period_in_days, self.default_retention_days);
            let cutoff = Timestamp::from_unix_millis(now.unix_millis().saturating_sub(i64::from(days) * DAY_MILLIS))
                .unwrap_or(now);
            let mut outcome = OrganizationPurge {
                organization_id: policy.organization_id,
                deleted: policy.deleted,
                retention_period_in_days: days,
                occurred_before: cutoff,
                held: policy.legal_hold.is_some(),
                events: 0,
                records: 0,
                payload_bytes: 0,
            };
            let rule = PurgeRule {
                occurred_before: cutoff,
                below_log_index: policy.log_size,
                retention_period_in_days: days,
            };
            while !outcome.held {
                if stopping() {
                    summary.interrupted = true;
                    break;
                }
                match self
                    .store
                    .purge_step(policy.organization_id, rule, self.step_events)
                    .await?
                {
                    PurgeStep::Held => outcome.held = true,
                    PurgeStep::Done => break,
                    PurgeStep::Purged(chunk) => {
                        outcome.events += chunk.events;
                        outcome.records += 1;
                        outcome.payload_bytes += chunk.payload_bytes;
                        // Let waiting appends in before the next step.
                        tokio::task::yield_now().await;
                    }
                }
            }
            if outcome.events > 0 {
                tracing::info!(
                    organization_id = %outcome.organization_id,
                    events = outcome.events,
                    records = outcome.records,
                    retention_period_in_days = days,
                    "purged events past retention"
                );
            }
            summary.organizations.push(outcome);
            if summary.interrupted {
                break;
            }
        }
        while !stopping() {
            let freed = self.store.reclaim_space().await?;
            if freed == 0 {
                break;
            }
            summary.reclaimed += freed;
            tokio::task::yield_now().await;
        }
        summary.size_after = self.store.store_size().await?;
        Ok(summary)
    }
}

/// The periodic purge of `vellum serve`.
pub struct PurgeJob {
    service: PurgeService,
    interval: Duration,
    clock: Arc<dyn Fn() -> Timestamp + Send + Sync>,
}

impl PurgeJob {
    /// A job running a pass every `interval`, on the system clock.
    pub fn new(service: PurgeService, interval: Duration) -> Self {
        Self::with_clock(service, interval, Arc::new(vellum_store::now))
    }

    /// The same on another clock (tests).
    pub fn with_clock(
        service: PurgeService,
        interval: Duration,
        clock: Arc<dyn Fn() -> Timestamp + Send + Sync>,
    ) -> Self {
        Self {
            service,
            interval,
            clock,
        }
    }
}

#[async_trait]
impl Job for PurgeJob {
    fn name(&self) -> &'static str {
        "retention-purge"
    }

    fn schedule(&self) -> Schedule {
        Schedule::every(self.interval)
    }

    async fn step(&self, context: &StepContext) -> Result<StepOutcome, JobError> {
        let summary = self.service.run_pass((self.clock)(), &|| context.is_stopping()).await?;
        if summary.events() > 0 || summary.reclaimed > 0 {
            tracing::info!(
                events = summary.events(),
                reclaimed_bytes = summary.reclaimed,
                "purge pass finished"
            );
        }
        Ok(StepOutcome::Idle)
    }
}

/// Why a legal hold request was refused.
#[derive(Debug)]
pub enum HoldError {
    /// The reason is too long or holds control characters.
    InvalidReason(String),
    /// The store failed (or the organization does not exist).
    Store(StoreError),
}

impl From<StoreError> for HoldError {
    fn from(error: StoreError) -> Self {
        Self::Store(error)
    }
}

/// The outcome of setting or lifting a hold.
#[derive(Clone, Debug, PartialEq)]
pub struct HoldChange {
    /// The hold now in force.
    pub hold: Option<LegalHold>,
    /// The record appended to the organization's log, if anything changed.
    pub record: Option<Event>,
}

/// Sets (`held`) or lifts an organization's legal hold, recording the change in its log.
pub async fn set_legal_hold(
    store: &dyn Store,
    organization_id: OrganizationId,
    held: bool,
    reason: Option<String>,
    by: &RecordedBy,
) -> Result<HoldChange, HoldError> {
    if let Some(reason) = &reason
        && (reason.chars().count() > MAX_HOLD_REASON_CHARS || vellum_core::validation::has_control_characters(reason))
    {
        return Err(HoldError::InvalidReason(format!(
            "reason is at most {MAX_HOLD_REASON_CHARS} characters, without control characters"
        )));
    }
    let reason = reason.filter(|reason| !reason.trim().is_empty());
    let record = legal_hold_input(
        &organization_id.to_string(),
        held,
        reason.as_deref(),
        by,
        vellum_store::now(),
    );
    let (hold, record) = store
        .set_legal_hold(organization_id, held.then_some(reason), record)
        .await?;
    Ok(HoldChange { hold, record })
}

/// Why an erasure was refused.
#[derive(Debug)]
pub enum ErasureError {
    /// The organization is under a legal hold: nothing was erased.
    Held,
    /// The store failed (or the organization does not exist). Steps that committed before stay
    /// committed, each with its record; running the erasure again finishes it.
    Store(StoreError),
}

impl From<StoreError> for ErasureError {
    fn from(error: StoreError) -> Self {
        Self::Store(error)
    }
}

/// What an erasure did.
#[derive(Clone, Debug, PartialEq)]
pub struct Erasure {
    /// How many events had personal data removed.
    pub events_erased: u64,
    /// The erasure records appended (one per step of at most [`STEP_EVENTS`] events).
    pub records: Vec<Event>,
}

/// Erases a subject's personal data from every event of an organization's log, a bounded step
/// at a time (each step one commit with its record, so ingest never waits long). Refused while
/// the organization is under a legal hold, checked in each step's commit.
pub async fn erase(
    store: &dyn Store,
    organization_id: OrganizationId,
    subject: &ErasureSubject,
    by: &RecordedBy,
) -> Result<Erasure, ErasureError> {
    let mut erasure = Erasure {
        events_erased: 0,
        records: Vec::new(),
    };
    loop {
        match store.erase_step(organization_id, subject, by, STEP_EVENTS).await? {
            EraseStep::Held => return Err(ErasureError::Held),
            EraseStep::Done => return Ok(erasure),
            EraseStep::Erased { record, events } => {
                erasure.events_erased += events;
                erasure.records.push(record);
            }
        }
    }
}

#[cfg(test)]
mod tests;
