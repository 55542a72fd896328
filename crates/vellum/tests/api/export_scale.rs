//! A million-event export through the real binary: memory stays flat while it streams, and an
//! export interrupted by `kill -9` completes after a restart without a partial file ever served.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::exports::verify_export;
use crate::helpers::{ServerProcess, fresh_secret};

const EVENTS: usize = 1_000_000;
const BATCH: usize = 1_000;

struct Client {
    http: reqwest::Client,
    server: String,
    key: String,
}

impl Client {
    async fn send(&self, method: reqwest::Method, path: &str, body: Option<&Value>) -> Value {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.server))
            .bearer_auth(&self.key);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.expect("request sent");
        let status = response.status();
        let text = response.text().await.unwrap();
        assert!(status.is_success(), "{path}: {status}: {text}");
        serde_json::from_str(&text).unwrap()
    }

    async fn export(&self, id: &str) -> Value {
        self.send(reqwest::Method::GET, &format!("/audit_logs/exports/{id}"), None)
            .await
    }
}

/// Resident memory of a process, in bytes.
fn resident_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("procfs");
    let kilobytes: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/PID/status");
    kilobytes * 1024
}

fn bulk_event(index: usize) -> Value {
    json!({
        "action": "bulk.event",
        "occurred_at": format!(
            "2026-05-01T{:02}:{:02}:{:02}.{:03}Z",
            index / 3_600_000 % 24, index / 60_000 % 60, index / 1000 % 60, index % 1000
        ),
        "actor": {"id": format!("user_{}", index % 977), "type": "user", "name": format!("User {}", index % 977)},
        "targets": [{"id": format!("doc_{index}"), "type": "doc"}],
        "context": {"location": "192.0.2.1", "user_agent": "bulk/1.0"},
        "metadata": {"n": index, "note": "bulk"},
    })
}

fn start(data_dir: &Path, secret: &str) -> ServerProcess {
    ServerProcess::start(data_dir, &["--export-workers", "1"], &[("VELLUM_API_KEY", secret)])
}

fn stop(server: &mut ServerProcess) {
    server.signal("TERM");
    let status = server.wait_exit(Duration::from_secs(60));
    assert!(status.success(), "{status:?}");
}

/// A staged (incomplete) upload in the export directory, if any.
fn staged_upload(exports: &Path) -> Option<PathBuf> {
    std::fs::read_dir(exports)
        .ok()?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .find(|path| {
            path.file_name()
                .is_some_and(|name| name.to_string_lossy().contains('#'))
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_million_event_export_streams_in_flat_memory_and_survives_kill_9() {
    let data = tempfile::tempdir().unwrap();
    let secret = fresh_secret();
    let secret = secret.expose().to_owned();
    let mut server = start(data.path(), &secret);
    let client = Client {
        http: reqwest::Client::new(),
        server: server.address.clone(),
        key: secret.clone(),
    };
    let organization = client
        .send(reqwest::Method::POST, "/organizations", Some(&json!({"name": "Big"})))
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    client
        .send(
            reqwest::Method::POST,
            "/audit_logs/actions/bulk.event/schemas",
            Some(&json!({"targets": [{"type": "doc"}]})),
        )
        .await;
    let filling = Instant::now();
    let mut batches = tokio::task::JoinSet::new();
    let starts: Vec<usize> = (0..EVENTS).step_by(BATCH).collect();
    for chunk in starts.chunks(starts.len().div_ceil(4)) {
        let (http, url, key, organization, chunk) = (
            client.http.clone(),
            format!("{}/audit_logs/events/batch", client.server),
            secret.clone(),
            organization.clone(),
            chunk.to_vec(),
        );
        batches.spawn(async move {
            for first in chunk {
                let events: Vec<Value> = (first..first + BATCH).map(bulk_event).collect();
                let body = json!({"organization_id": organization, "events": events});
                let response = http.post(&url).bearer_auth(&key).json(&body).send().await.unwrap();
                assert_eq!(response.status(), StatusCode::OK);
            }
        });
    }
    while let Some(done) = batches.join_next().await {
        done.unwrap();
    }
    println!("stored {EVENTS} events in {:.1} s", filling.elapsed().as_secs_f64());

    // A fresh process: its resident size before the export is the idle baseline.
    stop(&mut server);
    let mut server = start(data.path(), &secret);
    let client = Client {
        server: server.address.clone(),
        ..client
    };
    let pid = server.child.id();
    let range = json!({
        "organization_id": organization,
        "range_start": "2026-01-01T00:00:00Z",
        "range_end": "2027-01-01T00:00:00Z",
    });
    client.send(reqwest::Method::GET, "/organizations", None).await;
    let idle = resident_bytes(pid);

    let exporting = Instant::now();
    let created = client
        .send(reqwest::Method::POST, "/audit_logs/exports", Some(&range))
        .await;
    let id = created["id"].as_str().unwrap().to_owned();
    let mut peak = idle;
    // Ingest is not held up by a running export: an event (outside the export's range) is
    // acknowledged while the export is still being written.
    client
        .send(
            reqwest::Method::POST,
            "/audit_logs/events",
            Some(&json!({"organization_id": organization, "event": {
                "action": "bulk.event", "occurred_at": "2025-12-31T23:59:59Z",
                "actor": {"id": "late", "type": "user"}, "targets": [{"id": "doc_late", "type": "doc"}],
                "context": {"location": "192.0.2.1"},
            }})),
        )
        .await;
    assert_eq!(
        client.export(&id).await["state"],
        "pending",
        "the export finished before the ingest"
    );
    let export = loop {
        peak = peak.max(resident_bytes(pid));
        let export = client.export(&id).await;
        if export["state"] != "pending" {
            break export;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(export["state"], "ready", "{export}");
    assert_eq!(export["events"], EVENTS);
    let seconds = exporting.elapsed().as_secs_f64();
    let growth = peak.saturating_sub(idle);
    println!(
        "CSV export of {EVENTS} events: {seconds:.1} s ({:.0} rows/s, debug build); resident {} MB idle, \
         {} MB peak (+{} MB)",
        EVENTS as f64 / seconds,
        idle >> 20,
        peak >> 20,
        growth >> 20
    );
    assert!(
        growth < 100 << 20,
        "resident memory grew by {} MB while exporting",
        growth >> 20
    );

    // The download streams too; count its rows without keeping it.
    let mut response = reqwest::get(export["url"].as_str().unwrap()).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut lines = 0usize;
    while let Some(chunk) = response.chunk().await.unwrap() {
        lines += chunk.iter().filter(|byte| **byte == b'\n').count();
        peak = peak.max(resident_bytes(pid));
    }
    assert_eq!(lines, EVENTS + 1, "a header and one row per event");
    assert!(peak.saturating_sub(idle) < 100 << 20);

    // An NDJSON export killed mid-way: never ready with a partial file, completed after restart.
    let mut ndjson = range.clone();
    ndjson["format"] = json!("ndjson");
    let created = client
        .send(reqwest::Method::POST, "/audit_logs/exports", Some(&ndjson))
        .await;
    let id = created["id"].as_str().unwrap().to_owned();
    let exports = data.path().join("exports/exports");
    let deadline = Instant::now() + Duration::from_secs(120);
    let staged = loop {
        if let Some(staged) = staged_upload(&exports) {
            break staged;
        }
        assert!(Instant::now() < deadline, "no upload was staged");
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let during = client.export(&id).await;
    assert_eq!(
        (during["state"].as_str(), &during["url"]),
        (Some("pending"), &Value::Null)
    );
    server.kill_hard();
    let final_file = exports.join(format!("{id}.ndjson"));
    assert!(!final_file.exists(), "a partial export is at its final path");
    println!("killed while {} held a partial upload", staged.display());

    let server = start(data.path(), &secret);
    let client = Client {
        server: server.address.clone(),
        ..client
    };
    let deadline = Instant::now() + Duration::from_secs(300);
    let export = loop {
        let export = client.export(&id).await;
        if export["state"] != "pending" {
            break export;
        }
        assert!(Instant::now() < deadline, "the interrupted export never finished");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(export["state"], "ready", "{export}");
    assert_eq!(export["events"], EVENTS);
    assert!(final_file.exists());
    assert!(
        !staged.exists(),
        "the interrupted attempt's partial file was not removed"
    );

    let file = data.path().join("downloaded.ndjson");
    let mut output = std::fs::File::create(&file).unwrap();
    let mut response = reqwest::get(export["url"].as_str().unwrap()).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    while let Some(chunk) = response.chunk().await.unwrap() {
        std::io::Write::write_all(&mut output, &chunk).unwrap();
    }
    drop(output);
    let key = client
        .send(reqwest::Method::GET, "/audit_logs/log/public_key", None)
        .await;
    let (ok, output) = verify_export(&file, key["verifier_key"].as_str().unwrap());
    assert!(ok, "{output}");
    assert!(output.contains(&format!("{EVENTS} events")), "{output}");
}
