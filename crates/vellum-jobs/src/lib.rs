//! Vellum's background jobs: one shape for work that runs beside the HTTP server (exports, the
//! sweep of expired export files, the purge of old idempotency keys; later log-stream delivery
//! and retention).
//!
//! A job is a [`Job`]: a **step function** that does one unit of work and says how it went
//! ([`StepOutcome::Worked`]: call again now; [`StepOutcome::Idle`]: nothing to do; an error:
//! retry later). The [`Runner`] owns the only loop: it calls the step, sleeps the job's idle
//! interval (cut short by a [`JobWaker`]) or a backoff after failures, and stops on shutdown.
//! Tests drive step functions directly and never need the loop.
//!
//! **Invariants:**
//! - A step that fails or panics is retried after a backoff that doubles with each consecutive
//!   failure up to [`Backoff::max`] and resets after a success. A panic fails that one step;
//!   the loop and every other job carry on.
//! - On [`Runner::shutdown`] no loop starts a new step. A step in flight sees
//!   [`StepContext::stopping`] and returns at its next safe point; one that has not returned
//!   within the grace period is dropped where it stands.
//! - This crate knows nothing of the store or of HTTP. Whatever must hold across processes
//!   (two workers never take the same unit of work) is the step's business, done as a store
//!   operation that claims the unit; the runner only decides *when* steps run.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{Notify, watch};
use tokio::task::{AbortHandle, JoinSet};

/// What one step did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StepOutcome {
    /// It did a unit of work; there may be more, so the step is called again at once.
    Worked,
    /// There was nothing to do; the step is called again after the job's idle interval, or
    /// earlier when the job is woken.
    Idle,
}

/// Why a step failed. The loop logs it and retries after a backoff.
pub struct JobError(Box<dyn std::error::Error + Send + Sync>);

impl<E> From<E> for JobError
where
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    fn from(error: E) -> Self {
        Self(error.into())
    }
}

impl fmt::Display for JobError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, formatter)
    }
}

impl fmt::Debug for JobError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, formatter)
    }
}

/// How long to wait after consecutive failures: `first`, doubled with each further failure,
/// never more than `max`. No jitter: workers of one process fail together anyway (the store is
/// down), and several processes are spread by their different start times.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// The wait after the first failure.
    pub first: Duration,
    /// The longest wait.
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            first: Duration::from_secs(1),
            max: Duration::from_secs(60),
        }
    }
}

impl Backoff {
    /// The wait after `failures` consecutive failures (zero after none).
    pub fn after(&self, failures: u32) -> Duration {
        if failures == 0 {
            return Duration::ZERO;
        }
        let doublings = (failures - 1).min(31);
        self.first.saturating_mul(1 << doublings).min(self.max)
    }
}

/// When and how often a job's step runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Schedule {
    /// The wait after an idle step (unless the job is woken first).
    pub idle: Duration,
    /// Loops running the step at once (each with its own worker id).
    pub workers: usize,
    /// The wait after failed steps.
    pub backoff: Backoff,
}

impl Schedule {
    /// One worker, called again `idle` after it found nothing to do.
    pub fn every(idle: Duration) -> Self {
        Self {
            idle,
            workers: 1,
            backoff: Backoff::default(),
        }
    }

    /// The same schedule with `workers` loops (at least one).
    #[must_use]
    pub fn with_workers(self, workers: usize) -> Self {
        Self {
            workers: workers.max(1),
            ..self
        }
    }

    /// The same schedule with another backoff.
    #[must_use]
    pub fn with_backoff(self, backoff: Backoff) -> Self {
        Self { backoff, ..self }
    }
}

/// A kind of background work.
#[async_trait]
pub trait Job: Send + Sync + 'static {
    /// A short name for logs and worker ids (`exports`, `idempotency-purge`).
    fn name(&self) -> &'static str;

    /// When the step runs.
    fn schedule(&self) -> Schedule;

    /// Runs one unit of work. A step that claims work must claim it through the store under
    /// `context.worker()`, so that several processes can run the same job on one database.
    /// A long step should return soon after `context.stopping()` completes, leaving its unit of
    /// work to be taken up again later.
    async fn step(&self, context: &StepContext) -> Result<StepOutcome, JobError>;
}

/// What a step knows about the loop that runs it.
#[derive(Clone, Debug)]
pub struct StepContext {
    worker: Arc<str>,
    stop: watch::Receiver<bool>,
}

impl StepContext {
    /// A context outside any runner, for calling a step directly (tests, one-off commands),
    /// and the trigger of its `stopping` signal.
    pub fn standalone(worker: impl Into<String>) -> (Self, StopTrigger) {
        let (sender, stop) = watch::channel(false);
        let context = Self {
            worker: Arc::from(worker.into()),
            stop,
        };
        (context, StopTrigger(sender))
    }

    /// The id of the worker running this step: unique among every worker of every process
    /// (`<run id>/<job>/<index>`). Store claims record it as the owner of their lease.
    pub fn worker(&self) -> &str {
        &self.worker
    }

    /// Whether shutdown has begun.
    pub fn is_stopping(&self) -> bool {
        *self.stop.borrow() || self.stop.has_changed().is_err()
    }

    /// Completes once shutdown has begun (at once if it already has).
    pub async fn stopping(&self) {
        let mut stop = self.stop.clone();
        // An error means the runner is gone, which is a shutdown too.
        let _ = stop.wait_for(|stopped| *stopped).await;
    }
}

/// Begins the shutdown a [`StepContext::standalone`] context sees.
#[derive(Debug)]
pub struct StopTrigger(watch::Sender<bool>);

impl StopTrigger {
    /// Makes the context's `stopping` complete.
    pub fn stop(&self) {
        self.0.send_replace(true);
    }
}

/// Wakes an idle job so that its step runs now rather than after its idle interval (a newly
/// queued export starts at once). A wake while every worker is busy is kept for the next
/// worker that would go idle, so none is lost.
#[derive(Clone, Debug, Default)]
pub struct JobWaker(Arc<Notify>);

impl JobWaker {
    /// Wakes one idle worker of the job.
    pub fn wake(&self) {
        self.0.notify_one();
    }
}

/// Runs jobs: one loop per worker of each job, until [`Runner::shutdown`].
#[derive(Debug)]
pub struct Runner {
    run_id: Arc<str>,
    stop: watch::Sender<bool>,
    loops: Mutex<JoinSet<()>>,
}

impl Runner {
    /// A runner whose workers are named after `run_id`, which must be unique among every
    /// process run that shares the store (a random id drawn at start).
    pub fn new(run_id: impl Into<String>) -> Self {
        Self {
            run_id: Arc::from(run_id.into()),
            stop: watch::channel(false).0,
            loops: Mutex::new(JoinSet::new()),
        }
    }

    /// The id this runner's workers are named after.
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// Starts a job's loops and returns the handle that wakes them. Call from within a Tokio
    /// runtime. A job added after shutdown began never runs.
    pub fn spawn<J: Job>(&self, job: Arc<J>) -> JobWaker {
        let job: Arc<dyn Job> = job;
        let waker = JobWaker::default();
        let schedule = job.schedule();
        let mut loops = self.loops.lock().unwrap_or_else(PoisonError::into_inner);
        for index in 0..schedule.workers.max(1) {
            let context = StepContext {
                worker: Arc::from(format!("{}/{}/{index}", self.run_id, job.name())),
                stop: self.stop.subscribe(),
            };
            loops.spawn(work_loop(Arc::clone(&job), schedule, context, waker.clone()));
        }
        waker
    }

    /// Stops every loop: none starts another step, steps in flight are told to stop and given
    /// `grace` to return, and whatever is still running then is dropped. Returns whether every
    /// loop ended within `grace`.
    pub async fn shutdown(&self, grace: Duration) -> bool {
        self.stop.send_replace(true);
        let mut loops = std::mem::take(&mut *self.loops.lock().unwrap_or_else(PoisonError::into_inner));
        let drained = tokio::time::timeout(grace, async { while loops.join_next().await.is_some() {} })
            .await
            .is_ok();
        if !drained {
            tracing::warn!(
                grace_seconds = grace.as_secs_f64(),
                unfinished = loops.len(),
                "background jobs did not stop in time; dropping them"
            );
            loops.shutdown().await;
        }
        drained
    }
}

/// Aborts the step's task when the loop is dropped (a shutdown past its grace period), so that
/// no step outlives its runner.
struct AbortStepOnDrop(AbortHandle);

impl Drop for AbortStepOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// One worker's loop: step, then pause as the outcome says, until shutdown.
async fn work_loop(job: Arc<dyn Job>, schedule: Schedule, context: StepContext, waker: JobWaker) {
    let name = job.name();
    let mut failures: u32 = 0;
    while !context.is_stopping() {
        // The step runs as its own task, so that a panic fails this step only.
        let step = {
            let (job, context) = (Arc::clone(&job), context.clone());
            tokio::spawn(async move { job.step(&context).await })
        };
        let _abort = AbortStepOnDrop(step.abort_handle());
        let failure = match step.await {
            Ok(Ok(StepOutcome::Worked)) => {
                failures = 0;
                // Let other tasks run between units of a long backlog.
                tokio::task::yield_now().await;
                continue;
            }
            Ok(Ok(StepOutcome::Idle)) => {
                failures = 0;
                tokio::select! {
                    () = tokio::time::sleep(schedule.idle) => {}
                    () = waker.0.notified() => {}
                    () = context.stopping() => {}
                }
                continue;
            }
            Ok(Err(error)) => error.to_string(),
            Err(join_error) if join_error.is_panic() => "the step panicked".to_owned(),
            // Cancelled: only when the runtime itself is going away.
            Err(_) => return,
        };
        failures = failures.saturating_add(1);
        let retry_in = schedule.backoff.after(failures);
        tracing::warn!(
            job = name,
            worker = context.worker(),
            failures,
            retry_in_ms = u64::try_from(retry_in.as_millis()).unwrap_or(u64::MAX),
            error = %failure,
            "background job step failed"
        );
        // A wake does not cut a backoff short: the failure is likelier to recur than not.
        tokio::select! {
            () = tokio::time::sleep(retry_in) => {}
            () = context.stopping() => {}
        }
    }
}

#[cfg(test)]
mod tests;
