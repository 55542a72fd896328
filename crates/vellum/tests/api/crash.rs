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
