//! Files Vellum writes are its user's alone: directories 0700, files 0600, whatever the umask.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{ServerProcess, fresh_secret};

/// Every directory and file under `root` with its permission bits.
fn modes(root: &Path) -> Vec<(PathBuf, bool, u32)> {
    let mut found = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(path) = pending.pop() {
        let metadata = std::fs::symlink_metadata(&path).unwrap();
        found.push((path.clone(), metadata.is_dir(), metadata.permissions().mode() & 0o777));
        if metadata.is_dir() {
            for entry in std::fs::read_dir(&path).unwrap() {
                pending.push(entry.unwrap().path());
            }
        }
    }
    found
}

fn assert_private(root: &Path) {
    let found = modes(root);
    for (path, is_dir, mode) in &found {
        let expected = if *is_dir { 0o700 } else { 0o600 };
        assert_eq!(*mode, expected, "{} is {mode:o}", path.display());
    }
    let names: Vec<String> = found
        .iter()
        .map(|(path, _, _)| path.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for expected in [
        "vellum.sqlite3",
        "vellum.sqlite3-wal",
        "vellum.sqlite3-shm",
        "vellum-search.sqlite3",
        "log-signing-key",
        "export-link-key",
        "stream-secrets-key",
    ] {
        assert!(
            names.iter().any(|name| name == expected),
            "{expected} missing in {names:?}"
        );
    }
    assert!(
        names.iter().any(|name| name.ends_with(".csv")),
        "an export file in {names:?}"
    );
}

/// Sends one API request and returns its status and JSON body.
async fn call(
    server: &ServerProcess,
    key: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut request = reqwest::Client::new()
        .request(method, server.url(path))
        .bearer_auth(key);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap())
}

/// Writes to every kind of file: the store, an export file, both keys.
async fn write_everything(server: &ServerProcess, key: &str) {
    let post = reqwest::Method::POST;
    let (_, organization) = call(
        server,
        key,
        post.clone(),
        "/organizations",
        Some(json!({ "name": "Private Corp" })),
    )
    .await;
    let organization_id = organization["id"].as_str().unwrap();
    let schema = json!({ "targets": [{ "type": "team" }] });
    let (status, _) = call(
        server,
        key,
        post.clone(),
        "/audit_logs/actions/user.signed_in/schemas",
        Some(schema),
    )
    .await;
    assert!(status.is_success(), "{status}");
    let event = json!({
        "organization_id": organization_id,
        "event": {
            "action": "user.signed_in",
            "occurred_at": "2026-01-15T12:00:00.000Z",
            "actor": { "id": "user_1", "type": "user" },
            "targets": [{ "id": "team_1", "type": "team" }],
            "context": { "location": "192.0.2.1" },
        },
    });
    let (status, _) = call(server, key, post.clone(), "/audit_logs/events", Some(event)).await;
    assert_eq!(status, StatusCode::OK);
    let range = json!({
        "organization_id": organization_id,
        "range_start": "2026-01-01T00:00:00.000Z",
        "range_end": "2026-02-01T00:00:00.000Z",
    });
    let (_, export) = call(server, key, post, "/audit_logs/exports", Some(range)).await;
    let path = format!("/audit_logs/exports/{}", export["id"].as_str().unwrap());
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, export) = call(server, key, reqwest::Method::GET, &path, None).await;
        if export["state"] == "ready" {
            break;
        }
        assert_eq!(export["state"], "pending", "{export}");
        assert!(Instant::now() < deadline, "export still pending");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn everything_under_the_data_directory_is_private_whatever_the_umask() {
    let root = tempfile::tempdir().unwrap();
    let data_dir = root.path().join("data");
    let secret = fresh_secret();
    let key = secret.expose().to_owned();
    let server = ServerProcess::start_after_shell("umask 000", &data_dir, &[], &[("VELLUM_API_KEY", &key)]);
    write_everything(&server, &key).await;
    assert_private(&data_dir);
}

#[tokio::test]
async fn a_data_directory_left_readable_is_made_private_at_start() {
    let root = tempfile::tempdir().unwrap();
    let data_dir = root.path().join("data");
    let secret = fresh_secret();
    let key = secret.expose().to_owned();
    let mut server = ServerProcess::start(&data_dir, &[], &[("VELLUM_API_KEY", &key)]);
    write_everything(&server, &key).await;
    server.signal("TERM");
    assert!(server.wait_exit(Duration::from_secs(30)).success());
    // As an older version, or a careless copy, left it.
    let operators_note = data_dir.join("README.operator");
    std::fs::write(&operators_note, "kept as it is").unwrap();
    for (path, is_dir, _) in modes(&data_dir) {
        let loose = if is_dir { 0o755 } else { 0o644 };
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(loose)).unwrap();
    }
    let server = ServerProcess::start(&data_dir, &[], &[("VELLUM_API_KEY", &key)]);
    write_everything(&server, &key).await;
    let note_mode = std::fs::metadata(&operators_note).unwrap().permissions().mode() & 0o777;
    assert_eq!(note_mode, 0o644, "a file that is not Vellum's is left alone");
    std::fs::remove_file(&operators_note).unwrap();
    assert_private(&data_dir);
    drop(server);
}
