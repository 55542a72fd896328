//! The loop, driven by fake jobs under Tokio's paused clock: every sleep completes as soon as
//! nothing else can run, so the tests are exact about time and take none.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use tokio::sync::mpsc;
use tokio::time::Instant;

use super::*;

/// What a scripted step does when called.
enum Act {
    Work,
    Idle,
    Fail,
    Panic,
    /// Stays in the step until the sender sends (or goes away), then is idle.
    Block(tokio::sync::oneshot::Receiver<()>),
}

/// A job that plays a script (then stays idle) and reports each call with its time.
struct Scripted {
    script: Mutex<VecDeque<Act>>,
    schedule: Schedule,
    calls: mpsc::UnboundedSender<(Instant, String)>,
}

impl Scripted {
    fn start(
        runner: &Runner,
        schedule: Schedule,
        script: impl IntoIterator<Item = Act>,
    ) -> (JobWaker, mpsc::UnboundedReceiver<(Instant, String)>) {
        let (calls, received) = mpsc::unbounded_channel();
        let job = Arc::new(Self {
            script: Mutex::new(script.into_iter().collect()),
            schedule,
            calls,
        });
        (runner.spawn(job), received)
    }
}

#[async_trait]
impl Job for Scripted {
    fn name(&self) -> &'static str {
        "scripted"
    }

    fn schedule(&self) -> Schedule {
        self.schedule
    }

    async fn step(&self, context: &StepContext) -> Result<StepOutcome, JobError> {
        let _ = self.calls.send((Instant::now(), context.worker().to_owned()));
        let act = self.script.lock().unwrap().pop_front().unwrap_or(Act::Idle);
        match act {
            Act::Work => Ok(StepOutcome::Worked),
            Act::Idle => Ok(StepOutcome::Idle),
            Act::Fail => Err("scripted failure".into()),
            Act::Panic => panic!("scripted panic"),
            Act::Block(release) => {
                let _ = release.await;
                Ok(StepOutcome::Idle)
            }
        }
    }
}

/// The times of the next `count` calls, relative to `start`.
async fn next_calls(calls: &mut mpsc::UnboundedReceiver<(Instant, String)>, start: Instant, count: usize) -> Vec<u64> {
    let mut times = Vec::new();
    for _ in 0..count {
        let (at, _) = calls.recv().await.expect("the loop is running");
        times.push(u64::try_from((at - start).as_millis()).unwrap());
    }
    times
}

const HOUR: Duration = Duration::from_secs(3600);

fn backoff(first_seconds: u64, max_seconds: u64) -> Backoff {
    Backoff {
        first: Duration::from_secs(first_seconds),
        max: Duration::from_secs(max_seconds),
    }
}

#[test]
fn backoff_doubles_from_first_and_stops_at_max() {
    let backoff = backoff(1, 60);
    let waits: Vec<u64> = (0..10).map(|failures| backoff.after(failures).as_secs()).collect();
    assert_eq!(waits, [0, 1, 2, 4, 8, 16, 32, 60, 60, 60]);
    assert_eq!(backoff.after(u32::MAX), Duration::from_secs(60));
}

#[tokio::test(start_paused = true)]
async fn failures_back_off_doubling_up_to_the_cap_and_a_success_resets_it() {
    let runner = Runner::new("run");
    let start = Instant::now();
    let script = [
        Act::Fail,
        Act::Fail,
        Act::Fail,
        Act::Fail,
        Act::Fail,
        Act::Work,
        Act::Fail,
        Act::Idle,
    ];
    let schedule = Schedule::every(HOUR).with_backoff(backoff(1, 4));
    let (_waker, mut calls) = Scripted::start(&runner, schedule, script);
    // Five failures (waits 1, 2, 4, 4, 4 s), a success (called again at once), a failure
    // (the backoff starts over at 1 s), then idle (the next call an hour later).
    let times = next_calls(&mut calls, start, 9).await;
    assert_eq!(
        times,
        [0, 1_000, 3_000, 7_000, 11_000, 15_000, 15_000, 16_000, 3_616_000]
    );
    assert!(runner.shutdown(Duration::from_secs(1)).await);
}

#[tokio::test(start_paused = true)]
async fn an_idle_job_waits_for_its_interval_or_a_wake() {
    let runner = Runner::new("run");
    let start = Instant::now();
    let (release, blocked) = tokio::sync::oneshot::channel();
    let script = [Act::Idle, Act::Idle, Act::Idle, Act::Block(blocked)];
    let (waker, mut calls) = Scripted::start(&runner, Schedule::every(Duration::from_secs(10)), script);
    assert_eq!(next_calls(&mut calls, start, 2).await, [0, 10_000]);

    tokio::time::sleep(Duration::from_secs(3)).await;
    waker.wake();
    assert_eq!(next_calls(&mut calls, start, 2).await, [13_000, 23_000]);

    // The step called at 23 s is busy until 24 s; a wake meanwhile is not lost: the idle wait
    // after that step ends at once.
    waker.wake();
    tokio::time::sleep(Duration::from_secs(1)).await;
    release.send(()).unwrap();
    assert_eq!(next_calls(&mut calls, start, 2).await, [24_000, 34_000]);
    assert!(runner.shutdown(Duration::from_secs(1)).await);
}

#[tokio::test(start_paused = true)]
async fn a_wake_does_not_cut_a_backoff_short() {
    let runner = Runner::new("run");
    let start = Instant::now();
    let schedule = Schedule::every(HOUR).with_backoff(backoff(8, 60));
    let (waker, mut calls) = Scripted::start(&runner, schedule, [Act::Fail]);
    assert_eq!(next_calls(&mut calls, start, 1).await, [0]);
    tokio::time::sleep(Duration::from_secs(1)).await;
    waker.wake();
    // The retry comes after the backoff; the wake is then still pending and ends the first
    // idle wait at once.
    assert_eq!(next_calls(&mut calls, start, 2).await, [8_000, 8_000]);
    assert!(runner.shutdown(Duration::from_secs(1)).await);
}

#[tokio::test(start_paused = true)]
async fn a_panicking_step_fails_alone_and_the_loops_carry_on() {
    let runner = Runner::new("run");
    let start = Instant::now();
    let schedule = Schedule::every(HOUR).with_backoff(backoff(2, 60));
    let (_, mut panicking) = Scripted::start(&runner, schedule, [Act::Panic, Act::Panic, Act::Work]);
    let (_, mut other) = Scripted::start(&runner, Schedule::every(Duration::from_secs(5)), []);
    // Each panic counts as a failure; the step after the backoff runs normally.
    assert_eq!(next_calls(&mut panicking, start, 4).await, [0, 2_000, 6_000, 6_000]);
    assert_eq!(next_calls(&mut other, start, 3).await, [0, 5_000, 10_000]);
    assert!(runner.shutdown(Duration::from_secs(1)).await);
}

/// A job whose step runs until shutdown, then takes `cleanup` to reach a safe point, or never
/// looks at the shutdown signal at all.
struct LongStep {
    cleanup: Duration,
    heeds_shutdown: bool,
    started: mpsc::UnboundedSender<()>,
    steps: AtomicUsize,
    finished: AtomicBool,
    dropped_unfinished: AtomicBool,
}

/// Records a step dropped before it finished.
struct NoticeUnfinishedDrop<'a>(&'a LongStep);

impl Drop for NoticeUnfinishedDrop<'_> {
    fn drop(&mut self) {
        if !self.0.finished.load(Ordering::SeqCst) {
            self.0.dropped_unfinished.store(true, Ordering::SeqCst);
        }
    }
}

#[async_trait]
impl Job for LongStep {
    fn name(&self) -> &'static str {
        "long"
    }

    fn schedule(&self) -> Schedule {
        Schedule::every(HOUR)
    }

    async fn step(&self, context: &StepContext) -> Result<StepOutcome, JobError> {
        self.steps.fetch_add(1, Ordering::SeqCst);
        let _notice = NoticeUnfinishedDrop(self);
        let _ = self.started.send(());
        if self.heeds_shutdown {
            context.stopping().await;
            tokio::time::sleep(self.cleanup).await;
        } else {
            tokio::time::sleep(HOUR * 24).await;
        }
        self.finished.store(true, Ordering::SeqCst);
        Ok(StepOutcome::Worked)
    }
}

fn long_step(heeds_shutdown: bool) -> (Arc<LongStep>, mpsc::UnboundedReceiver<()>) {
    let (started, receiver) = mpsc::unbounded_channel();
    let job = Arc::new(LongStep {
        cleanup: Duration::from_secs(2),
        heeds_shutdown,
        started,
        steps: AtomicUsize::new(0),
        finished: AtomicBool::new(false),
        dropped_unfinished: AtomicBool::new(false),
    });
    (job, receiver)
}

#[tokio::test(start_paused = true)]
async fn shutdown_waits_for_the_step_in_flight_and_starts_no_other() {
    let runner = Runner::new("run");
    let (job, mut started) = long_step(true);
    runner.spawn(job.clone());
    let (_, mut idle) = Scripted::start(&runner, Schedule::every(HOUR), []);
    started.recv().await.unwrap();
    idle.recv().await.unwrap();

    let stopping = Instant::now();
    assert!(runner.shutdown(Duration::from_secs(60)).await);
    // The long step reached its safe point (2 s of cleanup) and returned `Worked`, yet was
    // not called again; the idle job stopped at once.
    assert_eq!(stopping.elapsed(), Duration::from_secs(2));
    assert!(job.finished.load(Ordering::SeqCst));
    assert_eq!(job.steps.load(Ordering::SeqCst), 1);
    assert!(idle.try_recv().is_err());
}

#[tokio::test(start_paused = true)]
async fn an_idle_runner_stops_at_once() {
    let runner = Runner::new("run");
    let schedule = Schedule::every(HOUR).with_workers(3);
    let (_, mut calls) = Scripted::start(&runner, schedule, []);
    for _ in 0..3 {
        calls.recv().await.unwrap();
    }
    let stopping = Instant::now();
    assert!(runner.shutdown(Duration::from_secs(60)).await);
    assert_eq!(stopping.elapsed(), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn a_step_that_ignores_shutdown_is_dropped_after_the_grace_period() {
    let runner = Runner::new("run");
    let (job, mut started) = long_step(false);
    runner.spawn(job.clone());
    started.recv().await.unwrap();

    let stopping = Instant::now();
    assert!(!runner.shutdown(Duration::from_secs(5)).await);
    assert_eq!(stopping.elapsed(), Duration::from_secs(5));
    assert!(!job.finished.load(Ordering::SeqCst));
    assert!(job.dropped_unfinished.load(Ordering::SeqCst), "the step still runs");
}

#[tokio::test(start_paused = true)]
async fn a_job_added_after_shutdown_never_runs() {
    let runner = Runner::new("run");
    assert!(runner.shutdown(Duration::from_secs(1)).await);
    let (_, mut calls) = Scripted::start(&runner, Schedule::every(HOUR), []);
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert!(calls.try_recv().is_err());
}

/// A job whose steps wait for each other: it only finishes if its workers run at once.
struct Rendezvous {
    workers: usize,
    barrier: tokio::sync::Barrier,
    seen: Mutex<Vec<String>>,
}

#[async_trait]
impl Job for Rendezvous {
    fn name(&self) -> &'static str {
        "rendezvous"
    }

    fn schedule(&self) -> Schedule {
        Schedule::every(HOUR).with_workers(self.workers)
    }

    async fn step(&self, context: &StepContext) -> Result<StepOutcome, JobError> {
        self.seen.lock().unwrap().push(context.worker().to_owned());
        self.barrier.wait().await;
        Ok(StepOutcome::Idle)
    }
}

#[tokio::test(start_paused = true)]
async fn workers_of_one_job_run_at_once_under_distinct_ids() {
    let runner = Runner::new("run-1");
    let job = Arc::new(Rendezvous {
        workers: 3,
        barrier: tokio::sync::Barrier::new(3),
        seen: Mutex::new(Vec::new()),
    });
    runner.spawn(job.clone());
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut seen = job.seen.lock().unwrap().clone();
    seen.sort();
    assert_eq!(seen, ["run-1/rendezvous/0", "run-1/rendezvous/1", "run-1/rendezvous/2"]);
    assert!(runner.shutdown(Duration::from_secs(1)).await);
}

#[tokio::test(start_paused = true)]
async fn a_standalone_context_stops_when_triggered() {
    let (context, trigger) = StepContext::standalone("test");
    assert_eq!(context.worker(), "test");
    assert!(!context.is_stopping());
    trigger.stop();
    assert!(context.is_stopping());
    context.stopping().await;
    drop(trigger);
    assert!(context.is_stopping());
}
