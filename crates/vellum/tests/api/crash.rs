//! `kill -9` during concurrent writes loses nothing that was acknowledged.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::sync::Notify;

use crate::helpers::{ServerProcess, fresh_secret};

const CLIENTS: usize = 8;
/// How many acknowledged creations to wait for before killing the server.
const ACKNOWLEDGED_BEFORE_KILL: usize = 400;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_loses_no_acknowledged_organization() {
    let data_dir = tempfile::tempdir().unwrap();
    let secret = fresh_secret();
    let mut server = ServerProcess::start(data_dir.path(), &[], &[("VELLUM_API_KEY", secret.expose())]);
    let url = server.url("/organizations");

    let acknowledged: Arc<Mutex<BTreeMap<String, String>>> = Arc::default();
    let enough = Arc::new(Notify::new());
    let mut clients = Vec::new();
    for client_index in 0..CLIENTS {
        let (url, key, acknowledged, enough) = (
            url.clone(),
            secret.expose().to_owned(),
            Arc::clone(&acknowledged),
            Arc::clone(&enough),
        );
        clients.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            // Bounded: the server is killed long before this many requests.
            for sequence in 0..100_000 {
                let name = format!("client-{client_index}-{sequence}");
                let Ok(response) = client
                    .post(&url)
                    .bearer_auth(&key)
                    .json(&json!({ "name": name }))
                    .send()
                    .await
                else {
                    return;
                };
                if response.status() != StatusCode::CREATED {
                    return;
                }
                let Ok(body) = response.json::<Value>().await else {
                    return;
                };
                let id = body["id"].as_str().expect("id").to_owned();
                let count = {
                    let mut acknowledged = acknowledged.lock().unwrap();
                    acknowledged.insert(id, name);
                    acknowledged.len()
                };
                if count >= ACKNOWLEDGED_BEFORE_KILL {
                    enough.notify_one();
                }
            }
        }));
    }
    enough.notified().await;
    server.kill_hard();
    for client in clients {
        client.await.unwrap();
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(acknowledged.len() >= ACKNOWLEDGED_BEFORE_KILL);

    let server = ServerProcess::start(data_dir.path(), &[], &[("VELLUM_API_KEY", secret.expose())]);
    let client = reqwest::Client::new();
    let mut stored = BTreeMap::new();
    let mut after: Option<String> = None;
    loop {
        let path = match &after {
            Some(cursor) => format!("/organizations?limit=100&after={cursor}"),
            None => "/organizations?limit=100".to_owned(),
        };
        let response = client
            .get(server.url(&path))
            .bearer_auth(secret.expose())
            .send()
            .await
            .unwrap();
        let page: Value = response.json().await.unwrap();
        for organization in page["data"].as_array().unwrap() {
            stored.insert(
                organization["id"].as_str().unwrap().to_owned(),
                organization["name"].as_str().unwrap().to_owned(),
            );
        }
        match page["list_metadata"]["after"].as_str() {
            Some(cursor) => after = Some(cursor.to_owned()),
            None => break,
        }
    }
    for (id, name) in &acknowledged {
        assert_eq!(stored.get(id), Some(name), "acknowledged organization {id} was lost");
    }
    // Requests in flight at the kill may or may not have committed, but nothing else appears.
    assert!(
        stored.len() <= acknowledged.len() + CLIENTS,
        "{} stored, {} acknowledged",
        stored.len(),
        acknowledged.len()
    );
}

/// How many acknowledged events to wait for before killing the server under event load.
const EVENTS_BEFORE_KILL: usize = 3_000;
const EVENT_CLIENTS: usize = 32;

/// One ingest request: a single event with its own idempotency key, or a batch of 25.
fn ingest_request(client: usize, sequence: usize, organization: &str) -> (String, Value, Vec<String>) {
    let event = |marker: &str| {
        json!({
            "action": "crash.tested", "occurred_at": "2026-06-01T00:00:00Z",
            "actor": {"id": format!("client-{client}"), "type": "user"},
            "targets": [{"id": marker, "type": "doc"}],
            "context": {"location": "192.0.2.1"}, "metadata": {"marker": marker}
        })
    };
    if client.is_multiple_of(2) {
        let marker = format!("c{client}-s{sequence}");
        let body = json!({"organization_id": organization, "event": event(&marker)});
        ("/audit_logs/events".into(), body, vec![marker])
    } else {
        let markers: Vec<String> = (0..25).map(|item| format!("c{client}-s{sequence}-{item}")).collect();
        let body =
            json!({"organization_id": organization, "events": markers.iter().map(|m| event(m)).collect::<Vec<_>>()});
        ("/audit_logs/events/batch".into(), body, markers)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_under_32_clients_of_event_ingest_loses_no_acknowledged_event() {
    let data_dir = tempfile::tempdir().unwrap();
    let secret = fresh_secret();
    let envs = [("VELLUM_API_KEY", secret.expose())];
    let mut server = ServerProcess::start(data_dir.path(), &[], &envs);
    let client = reqwest::Client::new();
    let organization = client
        .post(server.url("/organizations"))
        .bearer_auth(secret.expose())
        .json(&json!({"name": "Crash"}))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let schema = client
        .post(server.url("/audit_logs/actions/crash.tested/schemas"))
        .bearer_auth(secret.expose())
        .json(&json!({"targets": [{"type": "doc"}]}))
        .send()
        .await
        .unwrap();
    assert!(schema.status().is_success());

    let acknowledged: Arc<Mutex<Vec<String>>> = Arc::default();
    let enough = Arc::new(Notify::new());
    let mut clients = Vec::new();
    for client_index in 0..EVENT_CLIENTS {
        let (base, key, organization, acknowledged, enough) = (
            server.url(""),
            secret.expose().to_owned(),
            organization.clone(),
            Arc::clone(&acknowledged),
            Arc::clone(&enough),
        );
        clients.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            // Bounded: the server is killed long before this many requests.
            for sequence in 0..100_000 {
                let (path, body, markers) = ingest_request(client_index, sequence, &organization);
                let Ok(response) = client
                    .post(format!("{base}{path}"))
                    .bearer_auth(&key)
                    .header("Idempotency-Key", format!("crash-{client_index}-{sequence}"))
                    .json(&body)
                    .send()
                    .await
                else {
                    return;
                };
                if response.status() != StatusCode::OK {
                    return;
                }
                let Ok(answer) = response.json::<Value>().await else {
                    return;
                };
                if path.ends_with("batch") {
                    assert!(
                        answer["data"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .all(|item| item["success"] == true),
                        "{answer}"
                    );
                }
                let count = {
                    let mut acknowledged = acknowledged.lock().unwrap();
                    acknowledged.extend(markers);
                    acknowledged.len()
                };
                if count >= EVENTS_BEFORE_KILL {
                    enough.notify_one();
                }
            }
        }));
    }
    enough.notified().await;
    server.kill_hard();
    for client in clients {
        client.await.unwrap();
    }
    let acknowledged = acknowledged.lock().unwrap().clone();

    let server = ServerProcess::start(data_dir.path(), &[], &envs);
    let mut stored: BTreeMap<String, usize> = BTreeMap::new();
    let mut after: Option<String> = None;
    loop {
        let mut url = server.url(&format!("/audit_logs/events?organization_id={organization}&limit=100"));
        if let Some(cursor) = &after {
            url.push_str(&format!("&after={cursor}"));
        }
        let page: Value = client
            .get(url)
            .bearer_auth(secret.expose())
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        for event in page["data"].as_array().unwrap() {
            *stored
                .entry(event["metadata"]["marker"].as_str().unwrap().to_owned())
                .or_default() += 1;
        }
        match page["list_metadata"]["after"].as_str() {
            Some(cursor) => after = Some(cursor.to_owned()),
            None => break,
        }
    }
    for marker in &acknowledged {
        assert_eq!(stored.get(marker), Some(&1), "acknowledged event {marker} was lost");
    }
    assert!(stored.values().all(|count| *count == 1), "an event was stored twice");
    // In-flight requests may or may not have committed, but nothing else appears.
    assert!(stored.len() <= acknowledged.len() + EVENT_CLIENTS * 25);
    drop(server);

    let (ok, output) = crate::verify::verify(&["verify", "store", "--data-dir", data_dir.path().to_str().unwrap()]);
    assert!(ok, "the log verifies after the crash: {output}");
}
