//! Three `vellum serve` processes over one PostgreSQL database, driven as a load balancer would:
//! 32 clients spread over them, writing into the same two organizations with repeated
//! idempotency keys, while one node is killed with `kill -9` in the middle of the load and of an
//! export it is writing.
//!
//! These tests always run on PostgreSQL (that is what they are about), whatever
//! `VELLUM_TEST_BACKEND` says; the PostgreSQL pass of `scripts/test` leaves them out since the
//! first pass ran them.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use reqwest::StatusCode;
use serde_json::{Value, json};
use vellum_store::postgres::testing::TestDatabase;

use crate::helpers::{ServerProcess, all_events_at, fresh_secret, vellum_binary};

const CLIENTS: usize = 32;
/// Events in the exported organization before the load starts: enough that the export is still
/// being written when its node is killed.
const EXPORTED_EVENTS: usize = 60_000;

/// A node: its process and address.
struct Node {
    server: ServerProcess,
    address: String,
}

fn start_node(data_dir: &std::path::Path, database_url: &str, secret: &str) -> Node {
    let server = ServerProcess::start(
        data_dir,
        &[],
        &[("VELLUM_API_KEY", secret), ("VELLUM_DATABASE_URL", database_url)],
    );
    let address = server.address.clone();
    Node { server, address }
}

async fn get_json(client: &reqwest::Client, key: &str, url: &str) -> Value {
    let response = client.get(url).bearer_auth(key).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK, "GET {url}");
    response.json().await.unwrap()
}

fn event(key: &str, occurred_at: &str) -> Value {
    json!({
        "action": "doc.edited", "occurred_at": occurred_at,
        "actor": {"id": "user_1", "type": "user"},
        "targets": [{"id": "doc_1", "type": "doc"}],
        "context": {"location": "192.0.2.1"},
        "metadata": {"key": key},
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_nodes_keep_every_acknowledged_event_once_through_a_kill_9() {
    let database = TestDatabase::create().await;
    // One directory for export files, as the nodes would mount a shared volume (or use S3).
    let shared = tempfile::tempdir().unwrap();
    let secret = fresh_secret();
    let key = secret.expose().to_owned();
    let http = reqwest::Client::new();

    // Node A alone first: it fills the exported organization and starts the export, so that A
    // is the one writing it when it dies.
    let mut a = start_node(shared.path(), database.url(), &key);
    let mut organizations = Vec::new();
    for name in ["Alpha", "Beta"] {
        let response = http
            .post(format!("{}/organizations", a.address))
            .bearer_auth(&key)
            .json(&json!({"name": name}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
        organizations.push(
            response.json::<Value>().await.unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let response = http
        .post(format!("{}/audit_logs/actions/doc.edited/schemas", a.address))
        .bearer_auth(&key)
        .json(&json!({"targets": [{"type": "doc"}], "metadata": {"type": "object", "properties": {"key": {"type": "string"}}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    // Four writers of batches of 1,000.
    let mut fills = Vec::new();
    for writer in 0..4 {
        let (http, key, url, organization) = (
            http.clone(),
            key.clone(),
            format!("{}/audit_logs/events/batch", a.address),
            organizations[0].clone(),
        );
        fills.push(tokio::spawn(async move {
            for chunk in (writer..EXPORTED_EVENTS / 1000).step_by(4) {
                let events: Vec<Value> = (0..1000)
                    .map(|n| event(&format!("fill-{chunk}-{n}"), "2026-01-15T00:00:00Z"))
                    .collect();
                let response = http
                    .post(&url)
                    .bearer_auth(&key)
                    .json(&json!({"organization_id": organization, "events": events}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), StatusCode::OK);
            }
        }));
    }
    for fill in fills {
        fill.await.unwrap();
    }
    let response = http
        .post(format!("{}/audit_logs/exports", a.address))
        .bearer_auth(&key)
        .json(&json!({"organization_id": organizations[0], "range_start": "2026-01-01T00:00:00Z", "range_end": "2026-02-01T00:00:00Z"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let export_id = response.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // Nodes B and C join; then 32 clients spread over the three write into both organizations.
    // Clients c and c + 16 send the same requests (same keys, same bodies) through different
    // nodes, so every key is raced across nodes.
    let b = start_node(shared.path(), database.url(), &key);
    let c = start_node(shared.path(), database.url(), &key);
    let addresses = [a.address.clone(), b.address.clone(), c.address.clone()];
    let acknowledged: Arc<Mutex<BTreeMap<String, usize>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for client in 0..CLIENTS {
        let address = addresses[client % 3].clone();
        let (http, key, organizations) = (http.clone(), key.clone(), organizations.clone());
        let (acknowledged, stop) = (Arc::clone(&acknowledged), Arc::clone(&stop));
        clients.push(tokio::spawn(async move {
            let mut sequence = 0;
            while !stop.load(Ordering::Relaxed) {
                let logical = client % 16;
                let idempotency = format!("load-{logical}-{sequence}");
                let organization = &organizations[(logical + sequence) % 2];
                sequence += 1;
                let sent = http
                    .post(format!("{address}/audit_logs/events"))
                    .bearer_auth(&key)
                    .header("Idempotency-Key", &idempotency)
                    .json(
                        &json!({"organization_id": organization, "event": event(&idempotency, "2026-07-01T00:00:00Z")}),
                    )
                    .send()
                    .await;
                match sent {
                    Ok(response) if response.status() == StatusCode::OK => {
                        *acknowledged.lock().unwrap().entry(idempotency).or_default() += 1;
                    }
                    Ok(response) => panic!("{idempotency}: {} {:?}", response.status(), response.text().await),
                    // Its node was killed: this client's load balancer would send it elsewhere.
                    Err(_) => return sequence,
                }
            }
            sequence
        }));
    }
    let wait_for = |count: usize| {
        let acknowledged = Arc::clone(&acknowledged);
        async move {
            let deadline = Instant::now() + Duration::from_secs(120);
            while acknowledged.lock().unwrap().len() < count {
                assert!(Instant::now() < deadline, "the load stalled");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    wait_for(600).await;
    // A checkpoint of each log signed by A while it is alive, to check against the others' later.
    let mut signed_by_a = Vec::new();
    for organization in &organizations {
        let response = http
            .get(format!(
                "{}/audit_logs/log/checkpoint?organization_id={organization}",
                a.address
            ))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        signed_by_a.push(response.text().await.unwrap());
    }
    // The export is still being written by A (its lease held, not renewed after the kill).
    let pending = get_json(&http, &key, &format!("{}/audit_logs/exports/{export_id}", b.address)).await;
    assert_eq!(
        pending["state"], "pending",
        "the export finished before its node could be killed"
    );
    a.server.kill_hard();
    let before = acknowledged.lock().unwrap().len();
    wait_for(before + 600).await;
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.await.unwrap();
    }

    // Every acknowledged event is stored exactly once, and both logs are one gap-free sequence.
    let acknowledged = acknowledged.lock().unwrap().clone();
    let mut stored: BTreeMap<String, usize> = BTreeMap::new();
    for organization in &organizations {
        let events = all_events_at(&http, &key, &c.address, organization).await;
        let mut positions: Vec<u64> = events
            .iter()
            .map(|event| event["log_index"].as_u64().unwrap())
            .collect();
        positions.sort_unstable();
        assert_eq!(
            positions,
            (0..events.len() as u64).collect::<Vec<_>>(),
            "{organization}: gap-free"
        );
        for event in events {
            let key = event["metadata"]["key"].as_str().unwrap().to_owned();
            if key.starts_with("load-") {
                *stored.entry(key).or_default() += 1;
            }
        }
    }
    for (key, count) in &stored {
        assert_eq!(*count, 1, "{key} was stored {count} times");
    }
    for key in acknowledged.keys() {
        assert!(stored.contains_key(key), "acknowledged {key} was lost");
    }
    assert!(
        acknowledged.values().any(|&count| count > 1),
        "some key was acknowledged through two nodes (a replay)"
    );

    // Checkpoints signed by all three nodes (A's before it died) verify under the one public key
    // every node serves, and are consistent with each other.
    let base64 = base64::engine::general_purpose::STANDARD;
    let key_b = get_json(&http, &key, &format!("{}/audit_logs/log/public_key", b.address)).await;
    let key_c = get_json(&http, &key, &format!("{}/audit_logs/log/public_key", c.address)).await;
    assert_eq!(key_b, key_c);
    let verifier = vellum_core::checkpoint::NoteVerifier::parse(key_b["verifier_key"].as_str().unwrap()).unwrap();
    for (organization, note_of_a) in organizations.iter().zip(&signed_by_a) {
        let mut checkpoints = vec![verifier.verify(note_of_a).expect("A's checkpoint verifies")];
        for address in [&b.address, &c.address, &b.address] {
            let note = http
                .get(format!(
                    "{address}/audit_logs/log/checkpoint?organization_id={organization}"
                ))
                .bearer_auth(&key)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            checkpoints.push(verifier.verify(&note).expect("a checkpoint verifies"));
        }
        let newest = checkpoints.iter().max_by_key(|checkpoint| checkpoint.size).unwrap();
        for checkpoint in &checkpoints {
            let proof = get_json(
                &http,
                &key,
                &format!(
                    "{}/audit_logs/log/proof/consistency?organization_id={organization}&first={}&second={}",
                    c.address, checkpoint.size, newest.size
                ),
            )
            .await;
            let hashes: Vec<[u8; 32]> = proof["hashes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|hash| base64.decode(hash.as_str().unwrap()).unwrap().try_into().unwrap())
                .collect();
            assert!(vellum_core::merkle::verify_consistency(
                checkpoint.size,
                newest.size,
                &checkpoint.root,
                &newest.root,
                &hashes
            ));
        }
    }

    // The export A was writing is taken over once its lease runs out, and completes.
    let deadline = Instant::now() + Duration::from_secs(180);
    let export = loop {
        let export = get_json(&http, &key, &format!("{}/audit_logs/exports/{export_id}", c.address)).await;
        if export["state"] != "pending" {
            break export;
        }
        assert!(Instant::now() < deadline, "the export was never taken over");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(export["state"], "ready", "{export}");
    let file = http.get(export["url"].as_str().unwrap()).send().await.unwrap();
    assert_eq!(file.status(), StatusCode::OK);
    let rows = file.text().await.unwrap().lines().count();
    assert_eq!(rows, EXPORTED_EVENTS + 1, "a header and every exported event");

    // And the whole store verifies, read from the database by the CLI.
    let output = tokio::task::spawn_blocking({
        let url = database.url().to_owned();
        move || {
            std::process::Command::new(vellum_binary())
                .args(["verify", "store"])
                .env("VELLUM_DATABASE_URL", url)
                .env_remove("VELLUM_CONFIG")
                .env_remove("VELLUM_DATA_DIR")
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    drop((b, c));
}

/// Log streams on three nodes: node A starts delivering three streams and dies with `kill -9`
/// mid-delivery; B and C, started after, take the streams over once A's leases run out. Every
/// event of each stream arrives in order, the only repeats are a batch in flight at the kill,
/// and no two requests of one stream ever overlap (one node at a time).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_nodes_deliver_each_stream_from_one_node_at_a_time_through_a_kill_9() {
    use crate::streams::{Receiver, Reply, event, generic_events, log_indexes};
    const EVENTS: usize = 12_000;
    const STREAMS: usize = 3;
    let database = TestDatabase::create().await;
    let receiver = Receiver::start_answering_after(Reply::status(200), Duration::from_millis(20)).await;
    let shared = tempfile::tempdir().unwrap();
    let secret = fresh_secret();
    let key = secret.expose().to_owned();
    let http = reqwest::Client::new();
    let envs = [
        ("VELLUM_API_KEY", key.as_str()),
        ("VELLUM_DATABASE_URL", database.url()),
        ("VELLUM_STREAM_ALLOW_PRIVATE_DESTINATIONS", "true"),
    ];
    let mut a = ServerProcess::start(shared.path(), &[], &envs);
    let post = |address: String, path: &str, body: Value| {
        http.post(format!("{address}{path}"))
            .bearer_auth(&key)
            .json(&body)
            .send()
    };
    let organization = post(a.address.clone(), "/organizations", json!({"name": "Streamed"}))
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let schema = post(
        a.address.clone(),
        "/audit_logs/actions/user.signed_in/schemas",
        json!({"targets": [{"type": "team"}]}),
    )
    .await
    .unwrap();
    assert_eq!(schema.status(), StatusCode::CREATED);
    for stream in 0..STREAMS {
        let created = post(
            a.address.clone(),
            "/audit_logs/streams",
            json!({"organization_id": organization, "type": "GenericHttps",
                   "config": {"url": format!("{}/stream-{stream}", receiver.address)}}),
        )
        .await
        .unwrap();
        assert_eq!(created.status(), StatusCode::CREATED);
    }
    let events: Vec<Value> = (0..EVENTS).map(event).collect();
    for chunk in events.chunks(1_000) {
        let response = post(
            a.address.clone(),
            "/audit_logs/events/batch",
            json!({"organization_id": organization, "events": chunk}),
        )
        .await
        .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
    let delivered = |requests: &[crate::streams::Received]| {
        requests
            .iter()
            .map(|request| generic_events(request).len())
            .sum::<usize>()
    };
    receiver
        .wait_for("A delivering", |requests| delivered(requests) >= EVENTS / 2)
        .await;
    a.kill_hard();
    let killed_at = Instant::now();
    let b = ServerProcess::start(shared.path(), &[], &envs);
    let c = ServerProcess::start(shared.path(), &[], &envs);
    let requests = receiver
        .wait_for("every stream delivered in full", |requests| {
            (0..STREAMS).all(|stream| {
                requests
                    .iter()
                    .filter(|request| request.path == format!("/stream-{stream}"))
                    .flat_map(generic_events)
                    .filter_map(|event| event["log_index"].as_u64())
                    .max()
                    == Some(EVENTS as u64 - 1)
            })
        })
        .await;
    for stream in 0..STREAMS {
        let path = format!("/stream-{stream}");
        let mine: Vec<_> = requests.iter().filter(|request| request.path == path).collect();
        let mut expected = 0_u64;
        let mut repeats = 0;
        for pair in mine.windows(2) {
            assert!(
                pair[0].answered <= pair[1].at,
                "{path}: two requests overlapped: two nodes delivered the stream at once"
            );
        }
        for request in &mine {
            let batch = log_indexes(&generic_events(request));
            let first = batch[0];
            if first != expected {
                assert!(
                    first < expected && request.at > killed_at,
                    "{path}: a batch starts at {first}, expected {expected}"
                );
                repeats += 1;
            }
            assert_eq!(batch, (first..first + batch.len() as u64).collect::<Vec<_>>());
            expected = first + batch.len() as u64;
        }
        assert_eq!(expected, EVENTS as u64, "{path}");
        assert!(repeats <= 1, "{path}: {repeats} repeats");
    }
    drop((b, c));
}
