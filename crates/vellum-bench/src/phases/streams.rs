//! The log-stream measurement (`--streams`): a fresh embedded store whose one organization holds
//! `--events` events, 8 clients sending single events for `--seconds` without a stream, then a
//! generic HTTPS stream replayed from position 0 (so `--events` behind) to a receiver in this
//! process while the same clients keep sending, until the stream has caught up. It reports the
//! catch-up rate and the clients' latency during it against the same load just before.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use http_body_util::BodyExt;
use hyper::StatusCode;
use serde_json::{Value, json};

use super::{API_KEY, BATCH_CONNECTIONS, Bench, FILL_BATCH, Pools, figures, log_size, prepare};
use crate::client::{Client, Target};
use crate::load::{self, Latencies, RunResult, Shape};
use crate::report::StreamsReport;

/// Clients sending single events (as the purge measurement).
const CLIENTS: usize = 8;
/// Each chunk of load while the stream catches up.
const CHUNK: Duration = Duration::from_secs(2);

/// What the receiver has seen.
#[derive(Default)]
struct Received {
    events: AtomicU64,
    requests: AtomicU64,
    /// One more than the highest `log_index` received.
    next: AtomicU64,
}

/// Accepts every request at once, counting NDJSON lines and the highest `log_index`.
async fn receive(listener: tokio::net::TcpListener, received: Arc<Received>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            return;
        };
        let received = Arc::clone(&received);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                let received = Arc::clone(&received);
                async move {
                    let body = request.into_body().collect().await.map(|body| body.to_bytes());
                    if let Ok(body) = body {
                        let lines = body.split(|byte| *byte == b'\n').filter(|line| !line.is_empty());
                        let mut count = 0;
                        let mut last = None;
                        for line in lines {
                            count += 1;
                            last = Some(line);
                        }
                        let highest = last
                            .and_then(|line| serde_json::from_slice::<Value>(line).ok())
                            .and_then(|event| event["log_index"].as_u64());
                        received.events.fetch_add(count, Ordering::Relaxed);
                        received.requests.fetch_add(1, Ordering::Relaxed);
                        if let Some(highest) = highest {
                            received.next.fetch_max(highest + 1, Ordering::Relaxed);
                        }
                    }
                    Ok::<_, Infallible>(hyper::Response::new(http_body_util::Empty::<hyper::body::Bytes>::new()))
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
        });
    }
}

pub(crate) async fn streams(config: crate::BenchConfig) -> anyhow::Result<StreamsReport> {
    if config.events < FILL_BATCH {
        bail!("--events must be at least {FILL_BATCH}");
    }
    let (bench, date) = Bench::new(config)?;
    let server_version = bench.server_version().await?;
    let data_dir = bench.work.path().join("streams-store");
    let server = bench.start_server_on(&data_dir, None).await?;
    let outcome = bench.streams_phase(&server).await;
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

impl Bench {
    async fn streams_phase(&self, server: &super::ServerProcess) -> anyhow::Result<StreamsReport> {
        let target = Target::new(server.address, API_KEY)?;
        let tenants = prepare(&target).await?;
        let streamed = tenants.organization_ids[0].clone();
        let total = self.config.events;
        self.progress
            .say(&format!("streams: {total} events into one organization"));
        let ids: Arc<[String]> = (0..crate::generator::ORGANIZATIONS).map(|_| streamed.clone()).collect();
        let (batches, generator_thread) =
            load::spawn_fill_generator(Arc::clone(&self.generator), ids, 0, total, FILL_BATCH)?;
        let filled = load::fill(&target, batches, BATCH_CONNECTIONS, 0, total).await;
        let generated = tokio::task::spawn_blocking(move || generator_thread.join()).await;
        if filled?.events != total || !matches!(generated, Ok(Ok(()))) {
            bail!("the fill did not send {total} events");
        }
        let mut client = Client::connect(&target).await?;

        // The same load without a stream, then while one catches up.
        let pools = Pools::new(&self.generator, total);
        let workload = super::Kind::Single32.workload(&pools, &tenants.organization_ids);
        let shape = Shape {
            connections: CLIENTS,
            duration: self.duration,
            pace: None,
        };
        let before = figures(&load::run(&target, &workload, shape).await?);
        self.progress.say(&format!(
            "streams: {CLIENTS} clients without a stream: {:.0} ev/s, p99 {:.2} ms",
            before.events_per_second, before.p99_ms
        ));

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let receiver_address = listener.local_addr()?;
        let received = Arc::new(Received::default());
        let receiver = tokio::spawn(receive(listener, Arc::clone(&received)));
        let (status, created) = client
            .post_json(
                "/audit_logs/streams",
                &json!({"organization_id": streamed, "type": "GenericHttps",
                        "config": {"url": format!("http://{receiver_address}/"), "format": "ndjson"}}),
            )
            .await?;
        if status != StatusCode::CREATED {
            bail!("creating the stream answered {status}: {created}");
        }
        let id = created["id"].as_str().context("a stream without id")?.to_owned();
        let behind = log_size(&mut client, &streamed).await?;
        let started = Instant::now();
        let (status, replayed) = client
            .post_json(
                &format!("/audit_logs/streams/{id}/replay"),
                &json!({"from_log_index": 0}),
            )
            .await?;
        if status != StatusCode::OK {
            bail!("the replay answered {status}: {replayed}");
        }
        let mut events = 0;
        let mut seconds = 0.0;
        let mut latencies = Vec::new();
        let caught_up = loop {
            let chunk = load::run(
                &target,
                &workload,
                Shape {
                    duration: CHUNK,
                    ..shape
                },
            )
            .await?;
            events += chunk.events;
            seconds += chunk.seconds;
            latencies.extend(chunk.latencies.micros());
            if received.next.load(Ordering::Relaxed) >= behind {
                break started.elapsed().as_secs_f64();
            }
            if started.elapsed() > Duration::from_secs(3_600) {
                bail!("the stream did not catch up within an hour");
            }
        };
        receiver.abort();
        let during = figures(&RunResult {
            events,
            seconds,
            latencies: Latencies::new(latencies),
        });
        let rate = behind as f64 / caught_up.max(f64::EPSILON);
        self.progress.say(&format!(
            "streams: caught up {behind} events in {caught_up:.1} s ({rate:.0} ev/s); {CLIENTS} clients during: {:.0} ev/s, p99 {:.2} ms",
            during.events_per_second, during.p99_ms
        ));
        Ok(StreamsReport {
            date: String::new(),
            cores: 0,
            server_version: String::new(),
            label: None,
            events_behind: behind,
            catch_up_seconds: caught_up,
            catch_up_events_per_second: rate,
            requests: received.requests.load(Ordering::Relaxed),
            events_received: received.events.load(Ordering::Relaxed),
            clients: CLIENTS,
            ingest_without_stream: before,
            ingest_during_catch_up: during,
        })
    }
}
