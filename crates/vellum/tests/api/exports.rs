//! Exports: WorkOS's create/get with every filter, the CSV file, signed download links, NDJSON
//! files checked by `vellum verify export`, and file expiry.

use std::process::Command;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, json_ok, json_status, vellum_binary};

/// Four events with every field the CSV has, including cells a spreadsheet would run.
pub async fn seed(app: &TestApp) -> (String, Vec<String>) {
    let organization = app.organization("Exported").await;
    app.create_schema("user.signed_in", &json!({"targets": [{"type": "team"}]}))
        .await;
    app.create_schema(
        "user.signed_out",
        &json!({"targets": [{"type": "team"}, {"type": "doc"}]}),
    )
    .await;
    app.create_schema("doc.viewed", &json!({"targets": [{"type": "doc"}]}))
        .await;
    let ids = app
        .ingest_batch(
            &organization,
            vec![
                json!({
                    "action": "user.signed_in", "occurred_at": "2026-01-01T00:00:00Z",
                    "actor": {"id": "u1", "type": "user", "name": "Alice", "metadata": {"role": "admin"}},
                    "targets": [{"id": "t1", "type": "team", "name": "Team 1"}],
                    "context": {"location": "192.0.2.1", "user_agent": "Mozilla/5.0"},
                }),
                json!({
                    "action": "user.signed_out", "occurred_at": "2026-01-02T00:00:00Z",
                    "actor": {"id": "u2", "type": "user", "name": "Bob"},
                    "targets": [{"id": "t2", "type": "team"}, {"id": "d1", "type": "doc", "metadata": {"pages": 3}}],
                    "context": {"location": "192.0.2.2"},
                }),
                json!({
                    "action": "doc.viewed", "occurred_at": "2026-01-03T00:00:00Z",
                    "actor": {"id": "u1", "type": "user", "name": "Alice"},
                    "targets": [{"id": "d2", "type": "doc", "name": "=HYPERLINK(\"http://evil\")"}],
                    "context": {"location": "192.0.2.1"},
                    "metadata": {"note": "a, \"quoted\"\nline", "count": -4},
                }),
                json!({
                    "action": "user.signed_in", "occurred_at": "2026-02-01T00:00:00Z",
                    "actor": {"id": "u3", "type": "user", "name": "@Mallory"},
                    "targets": [{"id": "t3", "type": "team"}],
                    "context": {"location": "-192.0.2.3"},
                }),
            ],
        )
        .await;
    (organization, ids)
}

/// Requests an export and waits until it is no longer pending.
pub async fn finished_export(app: &TestApp, body: Value) -> Value {
    let created = json_status(app.post_json("/audit_logs/exports", &body).await, StatusCode::CREATED).await;
    assert_eq!(created["object"], "audit_log_export");
    assert_eq!(created["state"], "pending");
    assert!(created["id"].as_str().unwrap().starts_with("audit_log_export_"));
    wait_for_export(app, created["id"].as_str().unwrap()).await
}

/// Polls an export until it is no longer pending.
pub async fn wait_for_export(app: &TestApp, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let export = json_ok(app.get(&format!("/audit_logs/exports/{id}")).await).await;
        if export["state"] != "pending" {
            return export;
        }
        assert!(Instant::now() < deadline, "export {id} still pending");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Downloads a ready export's file (without an API key: the link is the credential).
pub async fn download(url: &str) -> String {
    let response = reqwest::get(url).await.unwrap();
    let status = response.status();
    let body = response.text().await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

fn rows(csv_text: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let mut reader = csv::Reader::from_reader(csv_text.as_bytes());
    let header = reader.headers().unwrap().iter().map(str::to_owned).collect();
    let rows = reader
        .records()
        .map(|record| record.unwrap().iter().map(str::to_owned).collect())
        .collect();
    (header, rows)
}

fn range(organization: &str, start: &str, end: &str) -> Value {
    json!({"organization_id": organization, "range_start": start, "range_end": end})
}

#[tokio::test]
async fn csv_exports_hold_exactly_the_events_each_filter_selects() {
    let app = TestApp::spawn().await;
    let (organization, ids) = seed(&app).await;
    let all = range(&organization, "2025-01-01T00:00:00Z", "2027-01-01T00:00:00Z");
    let with = |extra: Value| {
        let mut body = all.clone();
        body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        body
    };
    let cases = [
        (all.clone(), vec![0, 1, 2, 3]),
        (
            range(&organization, "2026-01-02T00:00:00Z", "2026-02-01T00:00:00Z"),
            vec![1, 2],
        ),
        (with(json!({"actions": ["user.signed_in"]})), vec![0, 3]),
        (with(json!({"actors": ["Alice"]})), vec![0, 2]),
        (with(json!({"actor_names": ["Bob", "@Mallory"]})), vec![1, 3]),
        (with(json!({"actor_ids": ["u1", "u3"]})), vec![0, 2, 3]),
        (with(json!({"targets": ["doc"]})), vec![1, 2]),
        (
            with(json!({"actions": ["user.signed_in", "doc.viewed"], "actor_ids": ["u1"], "targets": ["doc"]})),
            vec![2],
        ),
    ];
    for (body, expected) in cases {
        let export = finished_export(&app, body.clone()).await;
        assert_eq!(export["state"], "ready", "{body}: {export}");
        assert_eq!(export["events"], expected.len(), "{body}");
        let (header, rows) = rows(&download(export["url"].as_str().unwrap()).await);
        let exported: Vec<&str> = rows.iter().map(|row| row[0].as_str()).collect();
        let wanted: Vec<&str> = expected.iter().map(|index| ids[*index].as_str()).collect();
        assert_eq!(exported, wanted, "{body}");
        assert!(rows.iter().all(|row| row.len() == header.len()));
        // One group of target columns per target of the widest exported event.
        let widest = if expected.contains(&1) { 2 } else { 1 };
        assert_eq!(header.len(), 14 + 4 * widest, "{header:?}");
    }

    let export = finished_export(&app, all).await;
    let (header, rows) = rows(&download(export["url"].as_str().unwrap()).await);
    let column = |name: &str| header.iter().position(|column| column == name).unwrap();
    assert_eq!(
        &header[..7],
        [
            "id",
            "organization_id",
            "action",
            "occurred_at",
            "received_at",
            "version",
            "log_index"
        ]
    );
    let alice = &rows[0];
    assert_eq!(alice[column("organization_id")], organization);
    assert_eq!(alice[column("occurred_at")], "2026-01-01T00:00:00.000Z");
    assert_eq!(alice[column("actor_name")], "Alice");
    assert_eq!(alice[column("actor_metadata")], r#"{"role":"admin"}"#);
    assert_eq!(alice[column("context_user_agent")], "Mozilla/5.0");
    assert_eq!(alice[column("target_name_1")], "Team 1");
    assert_eq!(alice[column("target_id_2")], "");
    let bob = &rows[1];
    assert_eq!(bob[column("target_type_2")], "doc");
    assert_eq!(bob[column("target_metadata_2")], r#"{"pages":3}"#);
    // Quoting survives a round trip; formulas are neutralised.
    let viewed = &rows[2];
    let metadata: Value = serde_json::from_str(&viewed[column("metadata")]).unwrap();
    assert_eq!(metadata, json!({"note": "a, \"quoted\"\nline", "count": -4}));
    assert_eq!(viewed[column("target_name_1")], "'=HYPERLINK(\"http://evil\")");
    let mallory = &rows[3];
    assert_eq!(mallory[column("actor_name")], "'@Mallory");
    assert_eq!(mallory[column("context_location")], "'-192.0.2.3");
}

#[tokio::test]
async fn export_requests_are_validated_like_workos() {
    let app = TestApp::spawn().await;
    let (organization, _) = seed(&app).await;
    let post = |body: Value| {
        let app = &app;
        async move { app.post_json("/audit_logs/exports", &body).await }
    };
    let missing = json_status(post(json!({})).await, StatusCode::UNPROCESSABLE_ENTITY).await;
    let fields: Vec<&str> = missing["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|error| error["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["organization_id", "range_start", "range_end"]);

    let mut bad = range(&organization, "yesterday", "2027-01-01T00:00:00Z");
    bad["actions"] = json!("user.signed_in");
    bad["format"] = json!("xlsx");
    let invalid = json_status(post(bad).await, StatusCode::UNPROCESSABLE_ENTITY).await;
    let fields: Vec<&str> = invalid["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|error| error["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["range_start", "actions", "format"]);

    let backwards = range(&organization, "2027-01-01T00:00:00Z", "2026-01-01T00:00:00Z");
    let error = json_status(post(backwards).await, StatusCode::BAD_REQUEST).await;
    assert_eq!(
        error,
        json!({"message": "Invalid date range", "code": "invalid_audit_log_export_range_date"})
    );

    let empty = range(&organization, "2020-01-01T00:00:00Z", "2021-01-01T00:00:00Z");
    let error = json_status(post(empty).await, StatusCode::BAD_REQUEST).await;
    assert_eq!(error["message"], "No audit log events found");

    let unknown = range(
        "org_01HZZZZZZZZZZZZZZZZZZZZZZZ",
        "2020-01-01T00:00:00Z",
        "2027-01-01T00:00:00Z",
    );
    let error = json_status(post(unknown).await, StatusCode::NOT_FOUND).await;
    assert_eq!(
        error["message"],
        "Organization not found: 'org_01HZZZZZZZZZZZZZZZZZZZZZZZ'."
    );

    let error = json_status(
        app.get("/audit_logs/exports/audit_log_export_01HZZZZZZZZZZZZZZZZZZZZZZZ")
            .await,
        StatusCode::NOT_FOUND,
    )
    .await;
    assert_eq!(
        error["message"],
        "Audit Log Export not found: 'audit_log_export_01HZZZZZZZZZZZZZZZZZZZZZZZ'."
    );
    json_status(app.get("/audit_logs/exports/nonsense").await, StatusCode::NOT_FOUND).await;

    // Without an API key, exports are neither created nor read.
    let anonymous = app
        .client
        .post(app.url("/audit_logs/exports"))
        .json(&range(&organization, "2020-01-01T00:00:00Z", "2027-01-01T00:00:00Z"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    // None of the refused requests queued anything.
    let listing = std::fs::read_dir(app.data_dir.path().join("exports"))
        .map(|entries| entries.count())
        .unwrap_or(0);
    assert_eq!(listing, 0);
}

fn with_query(url: &str, name: &str, value: &str) -> String {
    let (base, query) = url.split_once('?').unwrap();
    let pairs: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((key, _)) if key == name => format!("{key}={value}"),
            _ => pair.to_owned(),
        })
        .collect();
    format!("{base}?{}", pairs.join("&"))
}

fn query_value(url: &str, name: &str) -> String {
    url.split_once('?')
        .unwrap()
        .1
        .split('&')
        .find_map(|pair| pair.strip_prefix(&format!("{name}=")))
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn download_links_are_refused_when_altered_expired_or_for_another_export() {
    // Long enough that the checks below run inside it on a loaded machine, short enough to wait out.
    let app = TestApp::spawn_with(|settings| settings.exports.link_lifetime = Duration::from_secs(4)).await;
    let (organization, _) = seed(&app).await;
    let body = range(&organization, "2025-01-01T00:00:00Z", "2027-01-01T00:00:00Z");
    let second = finished_export(&app, body.clone()).await;
    let first = finished_export(&app, body).await;
    let url = first["url"].as_str().unwrap().to_owned();
    assert!(url.starts_with(&app.address), "{url}");
    assert!(!download(&url).await.is_empty());

    let refused = |url: String| async move {
        let response = reqwest::get(&url).await.unwrap();
        json_status(response, StatusCode::FORBIDDEN).await
    };
    let signature = query_value(&url, "signature");
    let mut altered = signature.clone().into_bytes();
    altered[0] = if altered[0] == b'a' { b'b' } else { b'a' };
    let error = refused(with_query(&url, "signature", std::str::from_utf8(&altered).unwrap())).await;
    assert_eq!(error["code"], "invalid_download_link");
    let later = query_value(&url, "expires").parse::<i64>().unwrap() + 3600;
    let error = refused(with_query(&url, "expires", &later.to_string())).await;
    assert_eq!(error["code"], "invalid_download_link");
    let other_id = second["id"].as_str().unwrap();
    let first_id = first["id"].as_str().unwrap();
    let error = refused(url.replace(first_id, other_id)).await;
    assert_eq!(error["code"], "invalid_download_link");
    let error = refused(url.split_once('?').unwrap().0.to_owned()).await;
    assert_eq!(error["code"], "invalid_download_link");

    // The link dies with its lifetime; getting the export again signs a fresh one.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let response = reqwest::get(&url).await.unwrap();
        if response.status() == StatusCode::FORBIDDEN {
            let error: Value = response.json().await.unwrap();
            assert_eq!(error["code"], "download_link_expired");
            break;
        }
        assert_eq!(response.status(), StatusCode::OK);
        assert!(Instant::now() < deadline, "the link never expired");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let again = json_ok(app.get(&format!("/audit_logs/exports/{first_id}")).await).await;
    assert_ne!(again["url"], first["url"]);
    assert!(!download(again["url"].as_str().unwrap()).await.is_empty());
}

#[tokio::test]
async fn expired_export_files_are_deleted() {
    let app = TestApp::spawn_with(|settings| settings.exports.ttl = Duration::from_secs(1)).await;
    let (organization, _) = seed(&app).await;
    let export = finished_export(
        &app,
        range(&organization, "2025-01-01T00:00:00Z", "2027-01-01T00:00:00Z"),
    )
    .await;
    assert_eq!(export["state"], "ready");
    let id = export["id"].as_str().unwrap();
    let file = app.data_dir.path().join("exports/exports").join(format!("{id}.csv"));
    assert!(file.exists());
    let deadline = Instant::now() + Duration::from_secs(30);
    let expired = loop {
        let current = json_ok(app.get(&format!("/audit_logs/exports/{id}")).await).await;
        if current["state"] == "expired" {
            break current;
        }
        assert!(Instant::now() < deadline, "the export never expired: {current}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(expired["url"], Value::Null);
    assert!(!file.exists(), "the expired file was not deleted");
    let response = reqwest::get(export["url"].as_str().unwrap()).await.unwrap();
    assert_ne!(response.status(), StatusCode::OK);
}

/// Runs `vellum verify export` on a file.
pub fn verify_export(path: &std::path::Path, public_key: &str) -> (bool, String) {
    crate::verify::verify(&["verify", "export", path.to_str().unwrap(), "--public-key", public_key])
}

#[tokio::test]
async fn ndjson_exports_verify_offline_and_each_kind_of_tampering_is_named() {
    let app = TestApp::spawn().await;
    let (organization, ids) = seed(&app).await;
    let keys = json_ok(app.get("/audit_logs/log/public_key").await).await;
    let verifier_key = keys["verifier_key"].as_str().unwrap().to_owned();
    let raw_key = keys["public_key"].as_str().unwrap().to_owned();
    // A filter that leaves out a position in the middle of the slice it covers.
    let mut body = range(&organization, "2025-01-01T00:00:00Z", "2027-01-01T00:00:00Z");
    body["actor_ids"] = json!(["u1"]);
    body["format"] = json!("ndjson");
    let export = finished_export(&app, body).await;
    assert_eq!(
        (export["state"].as_str(), export["format"].as_str()),
        (Some("ready"), Some("ndjson"))
    );
    let text = download(export["url"].as_str().unwrap()).await;
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 5, "header, positions 0..=2, proof:\n{text}");
    let kinds: Vec<String> = lines
        .iter()
        .map(|line| {
            serde_json::from_str::<Value>(line).unwrap()["type"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(kinds, ["header", "event", "omitted", "event", "proof"]);
    let event: Value = serde_json::from_str(lines[1]).unwrap();
    assert_eq!(event["event"]["id"], ids[0]);

    let directory = tempfile::tempdir().unwrap();
    let write = |name: &str, lines: &[&str]| {
        let path = directory.path().join(name);
        std::fs::write(&path, lines.iter().map(|line| format!("{line}\n")).collect::<String>()).unwrap();
        path
    };
    let intact = write("intact.ndjson", &lines);
    for key in [&verifier_key, &raw_key] {
        let (ok, output) = verify_export(&intact, key);
        assert!(ok, "{output}");
        assert!(output.contains("2 events and 1 omitted"), "{output}");
    }

    let mut removed = lines.clone();
    removed.remove(2);
    let (ok, output) = verify_export(&write("removed.ndjson", &removed), &verifier_key);
    assert!(
        !ok && output.contains("line 3: expected position 1 here but found position 2"),
        "{output}"
    );

    let mut swapped = lines.clone();
    swapped.swap(1, 2);
    let (ok, output) = verify_export(&write("swapped.ndjson", &swapped), &verifier_key);
    assert!(
        !ok && output.contains("line 2: expected position 0 here but found position 1"),
        "{output}"
    );

    let altered_line = lines[3].replace("192.0.2.1", "198.51.100.7");
    let mut altered = lines.clone();
    altered[3] = &altered_line;
    let (ok, output) = verify_export(&write("altered.ndjson", &altered), &verifier_key);
    assert!(
        !ok && output.contains("line 4") && output.contains("content was changed"),
        "{output}"
    );

    let (ok, output) = verify_export(&write("truncated.ndjson", &lines[..4]), &verifier_key);
    assert!(!ok && output.contains("truncated"), "{output}");

    let other_key = "vellum+00000000+AQ".to_owned() + &"A".repeat(42) + "=";
    let (ok, output) = verify_export(&intact, &other_key);
    assert!(!ok, "{output}");
}

#[tokio::test]
async fn vellum_export_downloads_a_file_through_the_api() {
    let app = TestApp::spawn().await;
    let (organization, ids) = seed(&app).await;
    let directory = tempfile::tempdir().unwrap();
    let run = |args: Vec<String>| {
        let key = app.api_key.clone();
        let url = app.address.clone();
        async move {
            tokio::task::spawn_blocking(move || {
                Command::new(vellum_binary())
                    .arg("export")
                    .args(["--url", &url])
                    .args(args)
                    .env("VELLUM_API_KEY", key)
                    .env_remove("VELLUM_CONFIG")
                    .output()
                    .expect("vellum runs")
            })
            .await
            .unwrap()
        }
    };
    let csv_path = directory.path().join("signed-in.csv");
    let output = run(vec![
        "--organization".into(),
        organization.clone(),
        "--action".into(),
        "user.signed_in".into(),
        "--output".into(),
        csv_path.to_str().unwrap().into(),
    ])
    .await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // Not a terminal: no progress output, one summary line.
    assert!(output.stderr.is_empty(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("2 events exported to"), "{stdout}");
    let (_, rows) = rows(&std::fs::read_to_string(&csv_path).unwrap());
    assert_eq!(
        rows.iter().map(|row| row[0].as_str()).collect::<Vec<_>>(),
        [ids[0].as_str(), ids[3].as_str()]
    );

    let ndjson_path = directory.path().join("all.ndjson");
    let output = run(vec![
        "--organization".into(),
        organization.clone(),
        "--format".into(),
        "ndjson".into(),
        "--output".into(),
        ndjson_path.to_str().unwrap().into(),
    ])
    .await;
    assert!(output.status.success());
    let keys = json_ok(app.get("/audit_logs/log/public_key").await).await;
    let (ok, text) = verify_export(&ndjson_path, keys["public_key"].as_str().unwrap());
    assert!(ok && text.contains("4 events and 0 omitted"), "{text}");

    // A refused export says why and exits non-zero.
    let output = run(vec![
        "--organization".into(),
        organization,
        "--action".into(),
        "nothing.matches".into(),
    ])
    .await;
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("No audit log events found"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
