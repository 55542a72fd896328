//! Load: timed runs of many connections sending pre-serialised bodies, and the fill.
//!
//! A run opens its connections first, then starts the clock; each connection sends a request,
//! reads the whole answer, checks it and records the latency (microseconds), until the run's
//! time is up. A paced run sends on a fixed schedule instead, and measures each latency from
//! the moment the request was due, so that a slow answer also counts against the requests it
//! delayed.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use hyper::body::Bytes;
use hyper::header::HeaderValue;
use hyper::{Method, StatusCode};
use serde::Serialize;
use tokio::sync::{Mutex, mpsc};

use crate::client::{Client, Reply, Target};
use crate::generator::Generator;

/// What a run sends.
#[derive(Clone, Debug)]
pub(crate) struct Workload {
    /// The path every request goes to.
    pub(crate) path: &'static str,
    /// The bodies, used in turn (round robin over every connection).
    pub(crate) bodies: Arc<[Bytes]>,
    /// How many events one body holds.
    pub(crate) events_per_request: u64,
    /// Whether each request carries its own `Idempotency-Key`, as the WorkOS SDKs send.
    pub(crate) idempotency_keys: bool,
}

/// How a run sends.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Shape {
    /// Connections sending at once.
    pub(crate) connections: usize,
    /// How long the run lasts.
    pub(crate) duration: Duration,
    /// Requests per second over all connections; `None` sends as fast as answers come.
    pub(crate) pace: Option<f64>,
}

/// Latencies in microseconds, sorted.
#[derive(Clone, Debug, Default)]
pub(crate) struct Latencies(Vec<u32>);

impl Latencies {
    /// Sorts recorded latencies.
    pub(crate) fn new(mut micros: Vec<u32>) -> Self {
        micros.sort_unstable();
        Self(micros)
    }

    /// The `percent` percentile (nearest rank), in milliseconds; 0 when nothing was recorded.
    pub(crate) fn percentile_ms(&self, percent: f64) -> f64 {
        if self.0.is_empty() {
            return 0.0;
        }
        let count = self.0.len() as f64;
        let rank = (percent / 100.0 * count).ceil().max(1.0) as usize;
        f64::from(self.0[rank.min(self.0.len()) - 1]) / 1000.0
    }

    /// How many latencies there are.
    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    /// The latencies, in microseconds.
    pub(crate) fn micros(&self) -> impl Iterator<Item = u32> + '_ {
        self.0.iter().copied()
    }
}

/// What a run achieved.
#[derive(Clone, Debug)]
pub(crate) struct RunResult {
    /// Events stored (or accepted, for a ceiling).
    pub(crate) events: u64,
    /// From the start of the clock to the last answer.
    pub(crate) seconds: f64,
    /// One per request.
    pub(crate) latencies: Latencies,
}

impl RunResult {
    pub(crate) fn events_per_second(&self) -> f64 {
        if self.seconds > 0.0 {
            self.events as f64 / self.seconds
        } else {
            0.0
        }
    }
}

/// Microseconds, saturating.
pub(crate) fn micros(elapsed: Duration) -> u32 {
    u32::try_from(elapsed.as_micros()).unwrap_or(u32::MAX)
}

/// A tag that makes this process's idempotency keys unique (a reused store remembers keys for
/// 24 hours).
fn run_tag() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_nanos())
        .unwrap_or_default();
    format!("{:x}-{}", nanos, std::process::id())
}

/// Checks an ingest answer: `200`, and for a batch, no refused item.
fn check(reply: &Reply, path: &str, batch: bool) -> anyhow::Result<()> {
    if reply.status != StatusCode::OK {
        bail!("POST {path} answered {}: {}", reply.status, reply.excerpt());
    }
    // `{"object":"audit_log_event_batch","succeeded":N,"failed":0,…`: look near the start only.
    if batch {
        let head = &reply.body[..reply.body.len().min(128)];
        if !head.windows(11).any(|window| window == b"\"failed\":0,") {
            bail!("POST {path} refused events: {}", reply.excerpt());
        }
    }
    Ok(())
}

/// Runs `workload` against `target` in `shape`.
pub(crate) async fn run(target: &Target, workload: &Workload, shape: Shape) -> anyhow::Result<RunResult> {
    run_spread(std::slice::from_ref(target), workload, shape).await
}

/// Runs `workload` in `shape` with its connections spread over `targets` in turn (as a load
/// balancer would spread clients over several nodes).
pub(crate) async fn run_spread(targets: &[Target], workload: &Workload, shape: Shape) -> anyhow::Result<RunResult> {
    if workload.bodies.is_empty() || shape.connections == 0 || targets.is_empty() {
        bail!("a run needs bodies, connections and a server");
    }
    let mut clients = Vec::with_capacity(shape.connections);
    for index in 0..shape.connections {
        clients.push(Client::connect(&targets[index % targets.len()]).await?);
    }
    let shared = Arc::new(Shared {
        workload: workload.clone(),
        next: AtomicU64::new(0),
        tag: run_tag(),
    });
    let start = Instant::now();
    let deadline = start + shape.duration;
    let interval = shape
        .pace
        .filter(|rate| *rate > 0.0)
        .map(|rate| Duration::from_secs_f64(shape.connections as f64 / rate));
    let mut tasks = tokio::task::JoinSet::new();
    for (index, client) in clients.into_iter().enumerate() {
        let offset = interval.map_or(Duration::ZERO, |interval| {
            interval.mul_f64(index as f64 / shape.connections as f64)
        });
        tasks.spawn(drive(client, Arc::clone(&shared), start + offset, deadline, interval));
    }
    let mut requests = 0u64;
    let mut all = Vec::new();
    let mut finished = start;
    while let Some(outcome) = tasks.join_next().await {
        let (count, latencies, at) = outcome.context("a load connection panicked")??;
        requests += count;
        all.extend(latencies);
        finished = finished.max(at);
    }
    Ok(RunResult {
        events: requests * workload.events_per_request,
        seconds: finished.duration_since(start).as_secs_f64(),
        latencies: Latencies::new(all),
    })
}

struct Shared {
    workload: Workload,
    next: AtomicU64,
    tag: String,
}

async fn drive(
    mut client: Client,
    shared: Arc<Shared>,
    first: Instant,
    deadline: Instant,
    interval: Option<Duration>,
) -> anyhow::Result<(u64, Vec<u32>, Instant)> {
    let workload = &shared.workload;
    let batch = workload.events_per_request > 1;
    let mut latencies = Vec::with_capacity(4096);
    let mut scheduled = first;
    loop {
        let due = match interval {
            None => {
                let now = Instant::now();
                if now >= deadline {
                    break;
                }
                now
            }
            Some(interval) => {
                if scheduled >= deadline {
                    break;
                }
                tokio::time::sleep_until(scheduled.into()).await;
                let due = scheduled;
                scheduled += interval;
                due
            }
        };
        let number = shared.next.fetch_add(1, Ordering::Relaxed);
        let body = workload.bodies[usize::try_from(number).unwrap_or(0) % workload.bodies.len()].clone();
        let key = if workload.idempotency_keys {
            Some(HeaderValue::from_str(&format!("vellum-bench-{}-{number}", shared.tag)).context("idempotency key")?)
        } else {
            None
        };
        let reply = client.send(Method::POST, workload.path, Some(body), key).await?;
        check(&reply, workload.path, batch)?;
        latencies.push(micros(due.elapsed()));
    }
    Ok((latencies.len() as u64, latencies, Instant::now()))
}

/// One request of the fill.
#[derive(Debug)]
pub(crate) struct FillBatch {
    pub(crate) body: Bytes,
    pub(crate) events: u64,
}

/// The fill's rate over one tenth of the target.
#[derive(Clone, Debug, Serialize)]
pub struct CurvePoint {
    /// Events in the store at the end of the interval.
    pub store_events: u64,
    /// Seconds since the fill began, at the end of the interval.
    pub seconds: f64,
    /// Events per second over the interval.
    pub events_per_second: f64,
}

/// What a fill did.
#[derive(Debug)]
pub(crate) struct FillResult {
    pub(crate) events: u64,
    pub(crate) seconds: f64,
    pub(crate) curve: Vec<CurvePoint>,
}

#[derive(Debug, Default)]
struct Curve {
    total: u64,
    boundaries: Vec<u64>,
    last_events: u64,
    last_seconds: f64,
    points: Vec<CurvePoint>,
}

impl Curve {
    /// Counts `events` more, stored at `seconds`. A batch that crosses several boundaries at
    /// once (a batch larger than a tenth) makes one point, at the last of them.
    fn record(&mut self, events: u64, seconds: f64) {
        self.total += events;
        let crossed = self
            .boundaries
            .iter()
            .take_while(|&&boundary| boundary <= self.total)
            .count();
        if crossed == 0 {
            return;
        }
        self.boundaries.drain(..crossed);
        let interval = seconds - self.last_seconds;
        let rate = if interval > 0.0 {
            (self.total - self.last_events) as f64 / interval
        } else {
            0.0
        };
        self.points.push(CurvePoint {
            store_events: self.total,
            seconds,
            events_per_second: rate,
        });
        self.last_events = self.total;
        self.last_seconds = seconds;
    }
}

/// Sends the batches `batches` yields over `connections` connections, recording the rate over
/// each tenth of `target` events (the store holds `existing` to begin with).
pub(crate) async fn fill(
    target: &Target,
    batches: mpsc::Receiver<FillBatch>,
    connections: usize,
    existing: u64,
    target_events: u64,
) -> anyhow::Result<FillResult> {
    let boundaries = (1..=10)
        .map(|tenth| target_events * tenth / 10)
        .filter(|&boundary| boundary > existing)
        .collect();
    let curve = Arc::new(std::sync::Mutex::new(Curve {
        total: existing,
        boundaries,
        last_events: existing,
        last_seconds: 0.0,
        points: Vec::new(),
    }));
    let batches = Arc::new(Mutex::new(batches));
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..connections {
        let mut client = Client::connect(target).await?;
        let batches = Arc::clone(&batches);
        let curve = Arc::clone(&curve);
        tasks.spawn(async move {
            loop {
                let Some(batch) = batches.lock().await.recv().await else {
                    return anyhow::Ok(());
                };
                let path = "/audit_logs/events/batch";
                let reply = client.send(Method::POST, path, Some(batch.body), None).await?;
                check(&reply, path, true)?;
                let seconds = start.elapsed().as_secs_f64();
                curve
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .record(batch.events, seconds);
            }
        });
    }
    while let Some(outcome) = tasks.join_next().await {
        outcome.context("a fill connection panicked")??;
    }
    let seconds = start.elapsed().as_secs_f64();
    let curve = std::mem::take(&mut *curve.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
    Ok(FillResult {
        events: curve.total - existing,
        seconds,
        curve: curve.points,
    })
}

/// Makes the fill's batches on a thread of its own (so that generating never waits for the
/// network and the network never waits long for generating): events `existing..target`, in
/// batches of `batch_size` aligned on multiples of it, batch `b` to organization
/// `organization_of_request(b)`.
pub(crate) fn spawn_fill_generator(
    generator: Arc<Generator>,
    organization_ids: Arc<[String]>,
    existing: u64,
    target: u64,
    batch_size: u64,
) -> anyhow::Result<(mpsc::Receiver<FillBatch>, std::thread::JoinHandle<()>)> {
    let (sender, receiver) = mpsc::channel(8);
    let thread = std::thread::Builder::new()
        .name("bench-fill-generator".into())
        .spawn(move || {
            let mut batch = existing / batch_size;
            loop {
                let low = (batch * batch_size).max(existing);
                let high = ((batch + 1) * batch_size).min(target);
                if low >= high {
                    break;
                }
                let organization = &organization_ids[generator.organization_of_request(batch)];
                let body = crate::pool::batch_body(organization, (low..high).map(|n| generator.event_json(n)));
                if sender
                    .blocking_send(FillBatch {
                        body,
                        events: high - low,
                    })
                    .is_err()
                {
                    // The fill stopped (an error): nothing more to make.
                    break;
                }
                batch += 1;
            }
        })
        .context("cannot start the fill generator")?;
    Ok((receiver, thread))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let latencies = Latencies::new((1..=100).rev().map(|ms| ms * 1000).collect());
        assert_eq!(latencies.percentile_ms(50.0), 50.0);
        assert_eq!(latencies.percentile_ms(99.0), 99.0);
        assert_eq!(latencies.percentile_ms(100.0), 100.0);
        assert_eq!(Latencies::new(vec![7000]).percentile_ms(99.0), 7.0);
    }

    #[test]
    fn the_curve_records_each_tenth() {
        let mut curve = Curve {
            total: 0,
            boundaries: (1..=10).map(|tenth| 1000 * tenth / 10).collect(),
            ..Curve::default()
        };
        for step in 1..=10 {
            curve.record(100, f64::from(step));
        }
        assert_eq!(curve.points.len(), 10);
        assert_eq!(curve.points[9].store_events, 1000);
        assert!((curve.points[0].events_per_second - 100.0).abs() < 1e-9);
    }

    #[test]
    fn a_batch_larger_than_a_tenth_makes_one_point() {
        let mut curve = Curve {
            total: 0,
            boundaries: (1..=10).map(|tenth| 1000 * tenth / 10).collect(),
            ..Curve::default()
        };
        curve.record(250, 1.0);
        curve.record(750, 2.0);
        let points: Vec<(u64, f64)> = curve
            .points
            .iter()
            .map(|point| (point.store_events, point.events_per_second))
            .collect();
        assert_eq!(points, [(250, 250.0), (1000, 750.0)]);
    }
}
