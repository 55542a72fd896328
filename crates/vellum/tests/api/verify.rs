//! The verifiable log: endpoints, `vellum verify`, and tampering with the store being caught.

use std::path::Path;
use std::sync::Arc;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, json_ok, json_status};

async fn app_with_events(count: usize) -> (TestApp, String, Vec<String>) {
    let app = TestApp::spawn().await;
    let organization = app.organization("Logged").await;
    app.create_schema("doc.edited", &json!({"targets": [{"type": "doc"}]}))
        .await;
    let events: Vec<Value> = (0..count)
        .map(|index| {
            json!({
                "action": "doc.edited",
                "occurred_at": format!("2026-02-01T00:00:{:02}.000Z", index % 60),
                "actor": {"id": format!("user_{index}"), "type": "user"},
                "targets": [{"id": format!("doc_{index}"), "type": "doc"}],
                "context": {"location": "192.0.2.9"},
                "metadata": {"words": index * 10, "title": format!("draft {index}")},
            })
        })
        .collect();
    let ids = app.ingest_batch(&organization, events).await;
    (app, organization, ids)
}

/// The signed checkpoint note of an organization's log, as served.
async fn checkpoint_note(app: &TestApp, organization: &str) -> String {
    let response = app
        .get(&format!("/audit_logs/log/checkpoint?organization_id={organization}"))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    response.text().await.unwrap()
}

/// Runs `vellum ARGS…` (no data directory or config from the environment): success and output.
pub fn verify(args: &[&str]) -> (bool, String) {
    let data_dir = args
        .iter()
        .position(|arg| *arg == "--data-dir")
        .and_then(|at| args.get(at + 1));
    let envs = data_dir
        .map(|dir| crate::helpers::backend_env(std::path::Path::new(dir)))
        .unwrap_or_default();
    crate::helpers::run_vellum(args, &envs)
}

fn verify_store(data_dir: &Path) -> (bool, String) {
    verify(&["verify", "store", "--data-dir", data_dir.to_str().unwrap()])
}

#[tokio::test]
async fn the_log_endpoints_serve_proofs_that_verify() {
    let (app, organization, ids) = app_with_events(13).await;
    let note = app
        .get(&format!("/audit_logs/log/checkpoint?organization_id={organization}"))
        .await;
    assert_eq!(note.status(), StatusCode::OK);
    assert!(
        note.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let note = note.text().await.unwrap();
    let key = json_ok(app.get("/audit_logs/log/public_key").await).await;
    assert_eq!(key["algorithm"], "ed25519");
    let verifier = vellum_core::checkpoint::NoteVerifier::parse(key["verifier_key"].as_str().unwrap()).unwrap();
    let checkpoint = verifier.verify(&note).unwrap();
    assert_eq!(checkpoint.size, 13);
    assert_eq!(checkpoint.origin, format!("vellum/{organization}"));

    // Every event's inclusion proof leads from its canonical bytes to the signed root.
    let entries = json_ok(
        app.get(&format!(
            "/audit_logs/log/entries?organization_id={organization}&start=0&end=13"
        ))
        .await,
    )
    .await;
    use base64::Engine;
    let base64 = base64::engine::general_purpose::STANDARD;
    for (index, id) in ids.iter().enumerate() {
        let entry = &entries["data"][index];
        assert_eq!(entry["id"], id.as_str());
        assert_eq!(entry["log_index"], index);
        let leaf = vellum_core::merkle::leaf_hash(&base64.decode(entry["canonical"].as_str().unwrap()).unwrap());
        let proof = json_ok(
            app.get(&format!(
                "/audit_logs/log/proof/inclusion?organization_id={organization}&event_id={id}&tree_size=13"
            ))
            .await,
        )
        .await;
        assert_eq!(proof["leaf_index"], index);
        let hashes: Vec<[u8; 32]> = proof["hashes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|hash| base64.decode(hash.as_str().unwrap()).unwrap().try_into().unwrap())
            .collect();
        assert!(
            vellum_core::merkle::verify_inclusion(index as u64, 13, &leaf, &hashes, &checkpoint.root),
            "event {index}"
        );
    }
    let event = json_ok(app.get(&format!("/audit_logs/events/{}", ids[4])).await).await;
    assert_eq!(event["log_index"], 4, "read API objects carry their log position");

    // Bad proof requests.
    for path in [
        format!(
            "/audit_logs/log/proof/inclusion?organization_id={organization}&event_id={}&tree_size=99",
            ids[0]
        ),
        format!(
            "/audit_logs/log/proof/inclusion?organization_id={organization}&event_id={}&tree_size=3",
            ids[5]
        ),
        format!("/audit_logs/log/proof/consistency?organization_id={organization}&first=9&second=3"),
        format!("/audit_logs/log/entries?organization_id={organization}&start=0&end=5000"),
        "/audit_logs/log/checkpoint".to_owned(),
    ] {
        json_status(app.get(&path).await, StatusCode::UNPROCESSABLE_ENTITY).await;
    }
    json_status(
        app.get("/audit_logs/log/checkpoint?organization_id=org_01EHWNCE74X7JSDV0X3SZ3KJNY")
            .await,
        StatusCode::NOT_FOUND,
    )
    .await;
    app.stop().await.unwrap();
}

#[tokio::test]
async fn the_signing_key_is_private_and_an_empty_log_has_a_checkpoint() {
    let app = TestApp::spawn().await;
    let key_file = app.data_dir.path().join("log-signing-key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the signing key is readable by its owner only");
    }
    let organization = app.organization("Quiet").await;
    let note = checkpoint_note(&app, &organization).await;
    let key = json_ok(app.get("/audit_logs/log/public_key").await).await;
    let verifier = vellum_core::checkpoint::NoteVerifier::parse(key["verifier_key"].as_str().unwrap()).unwrap();
    let checkpoint = verifier.verify(&note).unwrap();
    assert_eq!(
        (checkpoint.size, checkpoint.root),
        (0, vellum_core::merkle::empty_root())
    );
    app.stop().await.unwrap();
}

#[tokio::test]
async fn verify_log_checks_a_live_server_and_remembers_its_checkpoint() {
    let (app, organization, _) = app_with_events(25).await;
    let state = app.data_dir.path().join("verify-state.json");
    let key = json_ok(app.get("/audit_logs/log/public_key").await).await;
    let pinned = key["verifier_key"].as_str().unwrap().to_owned();
    let args = |state: &Path| {
        vec![
            "verify".to_owned(),
            "log".to_owned(),
            "--url".to_owned(),
            app.address.clone(),
            "--api-key".to_owned(),
            app.api_key.clone(),
            "--organization".to_owned(),
            organization.clone(),
            "--public-key".to_owned(),
            pinned.clone(),
            "--state".to_owned(),
            state.to_str().unwrap().to_owned(),
        ]
    };
    let run = |args: Vec<String>| {
        tokio::task::spawn_blocking(move || verify(&args.iter().map(String::as_str).collect::<Vec<_>>()))
    };
    let (ok, output) = run(args(&state)).await.unwrap();
    assert!(ok, "{output}");
    assert!(output.contains("25 entries"), "{output}");

    // The log grows; the next run checks consistency with the remembered checkpoint.
    let more = json!({"organization_id": organization, "events": [{
        "action": "doc.edited", "occurred_at": "2026-02-02T00:00:00Z", "actor": {"id": "u", "type": "user"},
        "targets": [{"id": "d", "type": "doc"}], "context": {"location": "x"}}]});
    json_ok(app.post_json("/audit_logs/events/batch", &more).await).await;
    let (ok, output) = run(args(&state)).await.unwrap();
    assert!(ok, "{output}");
    assert!(output.contains("26 entries"), "{output}");

    // A remembered checkpoint the server's log does not extend is caught.
    let mut remembered: Value = serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    remembered["root"] = json!("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=");
    std::fs::write(&state, remembered.to_string()).unwrap();
    let (ok, output) = run(args(&state)).await.unwrap();
    assert!(!ok && output.contains("not consistent"), "{output}");

    // A wrong pinned key is caught.
    let mut wrong = args(&app.data_dir.path().join("other-state.json"));
    let position = wrong.iter().position(|arg| arg == "--public-key").unwrap();
    wrong[position + 1] = vellum_core::checkpoint::NoteSigner::new("vellum", &[3; 32])
        .unwrap()
        .verifier_key();
    let (ok, output) = run(wrong).await.unwrap();
    assert!(!ok && output.contains("does not verify"), "{output}");
    app.stop().await.unwrap();
}

/// A stopped store with 20 events and a signed checkpoint, and a way to copy it for tampering.
struct Stored {
    _app_dir: tempfile::TempDir,
    original: std::path::PathBuf,
    ids: Vec<String>,
}

impl Stored {
    async fn new() -> Self {
        let (app, organization, ids) = app_with_events(20).await;
        let response = app
            .get(&format!("/audit_logs/log/checkpoint?organization_id={organization}"))
            .await;
        assert_eq!(response.status(), StatusCode::OK);
        let dir = app.stop_keeping_data().await;
        let original = dir.path().to_owned();
        Self {
            _app_dir: dir,
            original,
            ids,
        }
    }

    /// A copy of the store with `tamper` applied to its database.
    fn tampered(&self, tamper: &str) -> tempfile::TempDir {
        let copy = tempfile::tempdir().unwrap();
        for name in ["vellum.sqlite3", "log-signing-key"] {
            std::fs::copy(self.original.join(name), copy.path().join(name)).unwrap();
        }
        let connection = rusqlite::Connection::open(copy.path().join("vellum.sqlite3")).unwrap();
        connection.execute_batch(tamper).unwrap();
        copy
    }
}

#[tokio::test]
async fn verify_store_names_every_kind_of_tampering() {
    let stored = Stored::new().await;
    let (ok, output) = verify_store(&stored.original);
    assert!(ok, "the untouched store verifies: {output}");
    assert!(output.contains("20 entries"), "{output}");

    let cases = [
        (
            "change one metadata value",
            "update events set payload = replace(payload, '\"draft 7\"', '\"final 7\"') where log_index = 7;",
            7,
        ),
        ("change an occurred_at", "update events set occurred_at = occurred_at + 3600000 where log_index = 3;", 3),
        ("delete an event", "delete from events where log_index = 5;", 5),
        (
            "swap two events' contents",
            "create temp table saved as select log_index, payload, actor_id from events where log_index in (2, 9);
             update events set payload = (select payload from saved where log_index = 9),
                 actor_id = (select actor_id from saved where log_index = 9) where log_index = 2;
             update events set payload = (select payload from saved where log_index = 2),
                 actor_id = (select actor_id from saved where log_index = 2) where log_index = 9;",
            2,
        ),
        (
            "insert a forged row",
            "insert into events (id, organization_seq, log_index, occurred_at, received_at, action, actor_id, actor_name,
                                 schema_version, payload, leaf_hash)
             select randomblob(16), organization_seq, 20, occurred_at, received_at, action, 'mallory', null, schema_version,
                    replace(payload, 'user_0', 'mallory'), leaf_hash from events where log_index = 0;",
            20,
        ),
        ("delete the newest event", "delete from events where log_index = 19;", 19),
        (
            "rewrite an event and its leaf",
            "update events set payload = replace(payload, '\"draft 4\"', '\"final 4\"') where log_index = 4;
             update events set leaf_hash = randomblob(32) where log_index = 4;",
            4,
        ),
    ];
    // A rewritten stored subtree hash leaves every event intact: it is the stored nodes that no
    // longer match, and proofs served from them would not verify.
    let copy = stored.tampered("update log_nodes set hash = randomblob(32) where level = 2 and node_index = 1;");
    let (ok, output) = verify_store(copy.path());
    assert!(
        !ok && output.contains("stored log node at level 2 covering positions 4..8"),
        "rewritten node: {output}"
    );

    for (name, tamper, position) in cases {
        let copy = stored.tampered(tamper);
        let (ok, output) = verify_store(copy.path());
        assert!(!ok, "{name}: verify must fail, it said: {output}");
        assert!(output.contains("FAILED"), "{name}: {output}");
        assert!(
            output.contains(&format!("position {position}")),
            "{name}: the position is named: {output}"
        );
        if position < 19 && !name.starts_with("delete") {
            assert!(
                output.contains(&stored.ids[position]),
                "{name}: the event is named: {output}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixteen_concurrent_clients_produce_a_gapless_log_that_verifies() {
    let app = Arc::new(TestApp::spawn().await);
    let organization = app.organization("Busy").await;
    app.create_schema("doc.edited", &json!({"targets": [{"type": "doc"}]}))
        .await;
    let mut clients = Vec::new();
    for client in 0..16 {
        let (app, organization) = (Arc::clone(&app), organization.clone());
        clients.push(tokio::spawn(async move {
            for sequence in 0..25 {
                let body = json!({"organization_id": organization, "event": {
                    "action": "doc.edited", "occurred_at": "2026-02-03T00:00:00Z",
                    "actor": {"id": format!("client_{client}"), "type": "user"},
                    "targets": [{"id": format!("doc_{sequence}"), "type": "doc"}], "context": {"location": "x"}}});
                let response = app.post_json("/audit_logs/events", &body).await;
                assert_eq!(response.status(), StatusCode::OK);
            }
        }));
    }
    for client in clients {
        client.await.unwrap();
    }
    let mut positions: Vec<u64> = app
        .all_events(&organization)
        .await
        .iter()
        .map(|event| event["log_index"].as_u64().unwrap())
        .collect();
    positions.sort_unstable();
    assert_eq!(
        positions,
        (0..400).collect::<Vec<_>>(),
        "positions 0..400, no gaps, no duplicates"
    );
    let note = checkpoint_note(&app, &organization).await;
    assert!(note.contains("\n400\n"), "{note}");
    let data_dir = app.data_dir.path().to_owned();
    let (ok, output) = tokio::task::spawn_blocking(move || verify_store(&data_dir))
        .await
        .unwrap();
    assert!(
        ok && output.contains("400 entries"),
        "verified while the server runs: {output}"
    );
}
