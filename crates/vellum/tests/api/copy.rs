//! `vellum copy`: an embedded store moved into PostgreSQL, as a user outgrowing one machine does
//! it. A server on the embedded store takes events (with an idempotency key, through the legacy
//! API, in an organization later deleted) and signs a checkpoint that a client remembers; after
//! the copy, a node on PostgreSQL serves the same events, answers a retry with the same ids,
//! serves the export made before, and proves its log consistent with the checkpoint the client
//! remembered, under the same key.
//!
//! These tests always run on PostgreSQL (that is what they are about), whatever
//! `VELLUM_TEST_BACKEND` says; the PostgreSQL pass of `scripts/test` leaves them out since the
//! first pass ran them.

use std::path::Path;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use vellum_store::postgres::testing::{TestDatabase, table_digests};

use crate::helpers::{ServerProcess, all_events_at, fresh_secret, run_vellum};

fn vellum(args: &[&str]) -> (bool, String) {
    run_vellum(args, &[])
}

fn copy(from: &Path, to: &str) -> (bool, String) {
    vellum(&["copy", "--from", from.to_str().unwrap(), "--to", to])
}

/// A client of one server.
struct Client {
    http: reqwest::Client,
    base: String,
    key: String,
}

impl Client {
    fn of(server: &ServerProcess, key: &str) -> Self {
        Self {
            http: reqwest::Client::new(),
            base: server.address.clone(),
            key: key.to_owned(),
        }
    }

    async fn send(&self, method: reqwest::Method, path: &str, body: Option<&Value>) -> (StatusCode, Value) {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.key);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str) -> Value {
        let (status, body) = self.send(reqwest::Method::GET, path, None).await;
        assert_eq!(status, StatusCode::OK, "GET {path}: {body}");
        body
    }

    async fn post(&self, path: &str, body: &Value, expected: StatusCode) -> Value {
        let (status, answer) = self.send(reqwest::Method::POST, path, Some(body)).await;
        assert_eq!(status, expected, "POST {path}: {answer}");
        answer
    }

    /// Posts one event with an idempotency key; returns the answer.
    async fn post_keyed(&self, organization: &str, key: &str, event: &Value) -> Value {
        let response = self
            .http
            .post(format!("{}/audit_logs/events", self.base))
            .bearer_auth(&self.key)
            .header("Idempotency-Key", key)
            .json(&json!({"organization_id": organization, "event": event}))
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "{}", response.status());
        response.json().await.unwrap()
    }

    async fn all_events(&self, organization: &str) -> Vec<Value> {
        all_events_at(&self.http, &self.key, &self.base, organization).await
    }

    async fn finished_export(&self, body: &Value) -> Value {
        let created = self.post("/audit_logs/exports", body, StatusCode::CREATED).await;
        let id = created["id"].as_str().unwrap().to_owned();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let export = self.get(&format!("/audit_logs/exports/{id}")).await;
            if export["state"] != "pending" {
                return export;
            }
            assert!(Instant::now() < deadline, "export {id} still pending");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn event(action: &str, key: usize) -> Value {
    json!({
        "action": action, "occurred_at": "2026-11-02T10:00:00.000Z",
        "actor": {"id": format!("user_{}", key % 7), "type": "user", "name": "Jane"},
        "targets": [{"id": format!("doc_{key}"), "type": "doc"}, {"id": "team_1", "type": "team"}],
        "context": {"location": "192.0.2.1", "user_agent": "copy-test"},
        "metadata": {"n": key.to_string()},
    })
}

/// Creates the schemas of the actions these tests use.
async fn create_schemas(client: &Client) {
    for action in ["doc.edited", "doc.viewed", "doc.shared"] {
        let schema = json!({
            "targets": [{"type": "doc"}, {"type": "team"}],
            "metadata": {"type": "object", "properties": {"n": {"type": "string"}}},
        });
        client
            .post(
                &format!("/audit_logs/actions/{action}/schemas"),
                &schema,
                StatusCode::CREATED,
            )
            .await;
    }
}

async fn ingest(client: &Client, organization: &str, action: &str, count: usize) {
    let events: Vec<Value> = (0..count).map(|key| event(action, key)).collect();
    for chunk in events.chunks(500) {
        let body = json!({"organization_id": organization, "events": chunk});
        let result = client.post("/audit_logs/events/batch", &body, StatusCode::OK).await;
        assert_eq!(result["succeeded"], chunk.len(), "{}", result["data"][0]);
    }
}

/// `vellum verify log` with a state file: remembers the checkpoint, and on later runs proves the
/// log consistent with it.
fn verify_log(client: &Client, organization: &str, state: &Path, public_key: &str) -> (bool, String) {
    vellum(&[
        "verify",
        "log",
        "--url",
        &client.base,
        "--api-key",
        &client.key,
        "--organization",
        organization,
        "--public-key",
        public_key,
        "--state",
        state.to_str().unwrap(),
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_embedded_store_moves_into_postgres_with_every_log_intact() {
    let data_dir = tempfile::tempdir().unwrap();
    let state_dir = tempfile::tempdir().unwrap();
    let state = state_dir.path().join("verify-state.json");
    let secret = fresh_secret();
    let embedded = ServerProcess::start(data_dir.path(), &[], &[("VELLUM_API_KEY", secret.expose())]);
    let client = Client::of(&embedded, secret.expose());
    create_schemas(&client).await;

    let kept = client
        .post("/organizations", &json!({"name": "Kept"}), StatusCode::CREATED)
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let deleted = client
        .post("/organizations", &json!({"name": "Deleted later"}), StatusCode::CREATED)
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    ingest(&client, &kept, "doc.edited", 2_500).await;
    ingest(&client, &deleted, "doc.viewed", 300).await;
    let first = client.post_keyed(&kept, "retry-me", &event("doc.shared", 1)).await;
    client
        .post(
            "/events",
            &json!({
                "group": "legacy.example", "location": "192.0.2.8", "action": "document.updated",
                "action_type": "U", "actor_name": "jane@legacy.example", "actor_id": "user_1",
                "target_name": "Plan", "target_id": "document_1",
                "occurred_at": "2026-11-02T10:00:00.000Z",
            }),
            StatusCode::CREATED,
        )
        .await;
    let public_key = client.get("/audit_logs/log/public_key").await;
    let verifier_key = public_key["verifier_key"].as_str().unwrap().to_owned();
    // A client pins the log as it is now: the checkpoint signed before the move.
    let (ok, output) = verify_log(&client, &kept, &state, &verifier_key);
    assert!(ok, "{output}");
    ingest(&client, &kept, "doc.edited", 700).await;
    let export = client
        .finished_export(&json!({
            "organization_id": kept, "format": "ndjson",
            "range_start": "2026-01-01T00:00:00Z", "range_end": "2027-01-01T00:00:00Z",
        }))
        .await;
    assert_eq!(export["state"], "ready", "{export}");
    let exported = reqwest::get(export["url"].as_str().unwrap())
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    // The organization deleted later keeps 30 days: its events are purged before the move, so
    // the copy carries purged positions (leaf and record) too.
    let (status, _) = client
        .send(
            reqwest::Method::PUT,
            &format!("/organizations/{deleted}/audit_logs_retention"),
            Some(&json!({"retention_period_in_days": 30})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = client
        .send(reqwest::Method::DELETE, &format!("/organizations/{deleted}"), None)
        .await;
    assert!(status.is_success(), "{status}");
    // A stream moves too, its sealed secrets still readable on PostgreSQL.
    let stream = client
        .post(
            "/audit_logs/streams",
            &json!({"organization_id": kept, "type": "Splunk", "state": "inactive",
                    "config": {"url": "https://splunk.example.com:8088", "token": "copied-token"}}),
            StatusCode::CREATED,
        )
        .await;
    let before = client.all_events(&kept).await;
    assert_eq!(before.len(), 3_201);
    let mut embedded = embedded;
    embedded.signal("TERM");
    assert!(embedded.wait_exit(Duration::from_secs(30)).success());

    let (ok, output) = vellum(&["purge", "--data-dir", data_dir.path().to_str().unwrap()]);
    assert!(
        ok && output.contains("purged 300 events from 1 organizations"),
        "{output}"
    );

    let database = TestDatabase::create().await;
    let (ok, output) = copy(data_dir.path(), database.url());
    assert!(ok, "{output}");
    assert!(output.contains("copied 3503 events in 3 logs"), "{output}");
    assert!(output.contains("(deleted organization)"), "{output}");
    assert!(!output.contains("FAILED"), "{output}");

    // A second copy into the same database is refused and changes nothing.
    let digests = table_digests(database.url());
    let (ok, output) = copy(data_dir.path(), database.url());
    assert!(!ok, "{output}");
    assert!(output.contains("already holds data"), "{output}");
    assert_eq!(table_digests(database.url()), digests);

    // A node on PostgreSQL (with the data directory's export files) serves the same trail.
    let node = ServerProcess::start(data_dir.path(), &[], &[("VELLUM_DATABASE_URL", database.url())]);
    let client = Client::of(&node, secret.expose());
    assert_eq!(client.all_events(&kept).await, before);
    assert_eq!(client.get("/audit_logs/log/public_key").await, public_key);
    let (ok, output) = verify_log(&client, &kept, &state, &verifier_key);
    assert!(
        ok,
        "the log is consistent with the checkpoint pinned before the move: {output}"
    );
    assert!(output.contains("3201 entries"), "{output}");
    let replayed = client.post_keyed(&kept, "retry-me", &event("doc.shared", 1)).await;
    assert_eq!(replayed, first);
    assert_eq!(
        client.all_events(&kept).await.len(),
        3_201,
        "a retry after the move is answered from the copied key, not stored again"
    );
    let streams = client.get(&format!("/audit_logs/streams?organization_id={kept}")).await;
    assert_eq!(streams["data"][0]["id"], stream["id"], "{streams}");
    assert_eq!(streams["data"][0]["next_log_index"], stream["next_log_index"]);
    // An update that keeps the settings opens the secrets: refused if the key had not moved.
    let (status, updated) = client
        .send(
            reqwest::Method::PUT,
            &format!("/audit_logs/streams/{}", stream["id"].as_str().unwrap()),
            Some(&json!({"state": "inactive"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    let legacy = client.get("/events?limit=10").await;
    assert_eq!(legacy["data"].as_array().unwrap().len(), 1, "{legacy}");
    let export = client
        .get(&format!("/audit_logs/exports/{}", export["id"].as_str().unwrap()))
        .await;
    assert_eq!(export["state"], "ready", "{export}");
    let again = reqwest::get(export["url"].as_str().unwrap()).await.unwrap();
    assert_eq!(again.status(), StatusCode::OK);
    assert_eq!(again.text().await.unwrap(), exported);
    let (status, _) = client
        .send(reqwest::Method::GET, &format!("/organizations/{deleted}"), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "a deleted organization stays deleted");
    // The log goes on where it stopped.
    client
        .post_keyed(&kept, "after-the-move", &event("doc.shared", 2))
        .await;
    let after = client.all_events(&kept).await;
    assert_eq!(after.len(), 3_202);
    let appended = after
        .iter()
        .find(|event| event["metadata"]["n"] == "2" && event["action"] == "doc.shared");
    assert_eq!(appended.unwrap()["log_index"], 3_201, "{appended:?}");
    let (ok, output) = verify_log(&client, &kept, &state, &verifier_key);
    assert!(ok, "{output}");
    drop(node);
    let (ok, output) = vellum(&["verify", "store", "--database-url", database.url()]);
    assert!(ok, "{output}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_store_or_a_database_in_use_is_not_copied_into() {
    let data_dir = tempfile::tempdir().unwrap();
    let secret = fresh_secret();
    let embedded = ServerProcess::start(data_dir.path(), &[], &[("VELLUM_API_KEY", secret.expose())]);
    let client = Client::of(&embedded, secret.expose());
    create_schemas(&client).await;
    let organization = client
        .post("/organizations", &json!({"name": "Acme"}), StatusCode::CREATED)
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    ingest(&client, &organization, "doc.edited", 20).await;
    drop(client);
    let mut embedded = embedded;
    embedded.signal("TERM");
    assert!(embedded.wait_exit(Duration::from_secs(30)).success());

    // A database a node already started on holds its own signing key: refused, unchanged.
    let database = TestDatabase::create().await;
    let node = ServerProcess::start(data_dir.path(), &[], &[("VELLUM_DATABASE_URL", database.url())]);
    drop(node);
    let digests = table_digests(database.url());
    let (ok, output) = copy(data_dir.path(), database.url());
    assert!(!ok, "{output}");
    assert!(output.contains("already holds another log signing key"), "{output}");
    assert_eq!(table_digests(database.url()), digests);

    // An edited event: the copy stops before touching the database.
    let connection = rusqlite::Connection::open(data_dir.path().join("vellum.sqlite3")).unwrap();
    connection
        .execute_batch("update events set action = 'doc.deleted' where log_index = 7")
        .unwrap();
    drop(connection);
    let fresh = TestDatabase::create().await;
    let (ok, output) = copy(data_dir.path(), fresh.url());
    assert!(!ok, "{output}");
    assert!(output.contains("does not verify"), "{output}");
    assert!(table_digests(fresh.url()).is_empty(), "nothing was created");
}
