//! A data directory written by an earlier release (schema version 7, `tests/fixtures/store-v7`)
//! upgrades in place: every event is kept, every listing answers exactly as that release did,
//! the log keeps growing consistently with the checkpoints it signed, and the store verifies.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::ServerProcess;
use crate::verify::verify;

const API_KEY: &str = "sk_fixture_0123456789abcdef0123";
const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/store-v7");

/// Copies the fixture's data directory into `into`, private as Vellum keeps it.
fn lay_down(into: &Path) {
    for name in ["vellum.sqlite3", "log-signing-key", "export-link-key"] {
        let to = into.join(name);
        std::fs::copy(Path::new(FIXTURE).join(name), &to).unwrap();
        std::fs::set_permissions(&to, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    }
}

async fn get(client: &reqwest::Client, server: &ServerProcess, path: &str) -> Value {
    let response = client.get(server.url(path)).bearer_auth(API_KEY).send().await.unwrap();
    assert_eq!(response.status(), 200, "{path}");
    response.json().await.unwrap()
}

/// Every page of a listing, as `capture.py` walked it: 37 per page, following `after`.
async fn listed(
    client: &reqwest::Client,
    server: &ServerProcess,
    organization: &str,
    query: &BTreeMap<String, String>,
) -> Vec<String> {
    let mut ids = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let mut params: Vec<(String, String)> = vec![
            ("organization_id".into(), organization.into()),
            ("limit".into(), "37".into()),
        ];
        params.extend(query.iter().map(|(key, value)| (key.clone(), value.clone())));
        if let Some(cursor) = &after {
            params.push(("after".into(), cursor.clone()));
        }
        let url = reqwest::Url::parse_with_params(&server.url("/audit_logs/events"), &params).unwrap();
        let response = client.get(url).bearer_auth(API_KEY).send().await.unwrap();
        assert_eq!(response.status(), 200);
        let page: Value = response.json().await.unwrap();
        ids.extend(
            page["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|event| event["id"].as_str().unwrap().to_owned()),
        );
        match page["list_metadata"]["after"].as_str() {
            Some(cursor) => after = Some(cursor.to_owned()),
            None => return ids,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_7_store_upgrades_answers_as_before_and_verifies() {
    let data_dir = tempfile::tempdir().unwrap();
    lay_down(data_dir.path());
    let mut server = ServerProcess::start(data_dir.path(), &[], &[("VELLUM_API_KEY", API_KEY)]);
    let client = reqwest::Client::new();

    let expected: BTreeMap<String, Vec<String>> =
        serde_json::from_str(&std::fs::read_to_string(Path::new(FIXTURE).join("expected-listings.json")).unwrap())
            .unwrap();
    assert_eq!(expected.len(), 24);
    for (case, ids) in &expected {
        let (organization, query) = case.split_once(' ').unwrap();
        let query: BTreeMap<String, String> = serde_json::from_str(query).unwrap();
        assert_eq!(&listed(&client, &server, organization, &query).await, ids, "{case}");
    }

    // The log grows from the checkpoint signed before the upgrade, consistently with it.
    let organization = "org_01M922E79PF7163WCYPCTZN9RN";
    let before = std::fs::read_to_string(Path::new(FIXTURE).join(format!("checkpoint-{organization}.txt"))).unwrap();
    assert!(before.contains("\n305\n"), "{before}");
    let batch = json!({"organization_id": organization, "events": [{
        "action": "user.signed_in", "occurred_at": "2026-04-01T00:00:00Z",
        "actor": {"id": "user_after", "type": "user"},
        "targets": [{"id": "team_after", "type": "team"}, {"id": "user_1", "type": "user"}],
        "context": {"location": "192.0.2.8"}, "metadata": {"note": "after the upgrade"}}]});
    let response = client
        .post(server.url("/audit_logs/events/batch"))
        .bearer_auth(API_KEY)
        .json(&batch)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let checkpoint = client
        .get(server.url(&format!("/audit_logs/log/checkpoint?organization_id={organization}")))
        .bearer_auth(API_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(
        checkpoint.status(),
        200,
        "a checkpoint consistent with the one signed before"
    );
    assert!(checkpoint.text().await.unwrap().contains("\n306\n"));
    let proof = get(
        &client,
        &server,
        &format!("/audit_logs/log/proof/consistency?organization_id={organization}&first=305&second=306"),
    )
    .await;
    assert!(!proof["hashes"].as_array().unwrap().is_empty());
    let newest = get(
        &client,
        &server,
        &format!("/audit_logs/events?organization_id={organization}&limit=1"),
    )
    .await;
    assert_eq!(newest["data"][0]["actor"]["id"], "user_after");
    let found = get(
        &client,
        &server,
        &format!("/audit_logs/events?organization_id={organization}&search=AFTER%20THE%20UPGRADE"),
    )
    .await;
    assert_eq!(found["data"].as_array().unwrap().len(), 1);

    server.signal("TERM");
    assert!(server.wait_exit(Duration::from_secs(30)).success());
    let (ok, output) = verify(&["verify", "store", "--data-dir", data_dir.path().to_str().unwrap()]);
    assert!(ok, "{output}");
    assert!(output.contains("306 entries"), "{output}");
    assert!(output.contains("signed checkpoint at 306 verified"), "{output}");
    assert!(data_dir.path().join(vellum_store::sqlite::SEARCH_FILE_NAME).exists());
}

/// A store created before incremental auto-vacuum was the default keeps its size after a purge
/// (freed pages are only reused); `vellum purge --compact`, run once with the server stopped,
/// rewrites it smaller in the mode that gives space back from then on, and it still verifies. On
/// PostgreSQL the option is refused before anything is touched, and a running server's store is
/// refused rather than waited for.
#[tokio::test]
async fn an_old_store_is_compacted_once_and_gives_space_back_from_then_on() {
    let dir = tempfile::tempdir().unwrap();
    lay_down(dir.path());
    let database = dir.path().join("vellum.sqlite3");
    let auto_vacuum = || -> i64 {
        rusqlite::Connection::open(&database)
            .unwrap()
            .query_row("pragma auto_vacuum", [], |row| row.get(0))
            .unwrap()
    };
    assert_eq!(auto_vacuum(), 0, "the fixture predates incremental auto-vacuum");
    let data_dir = dir.path().to_str().unwrap().to_owned();

    let refused = crate::helpers::run_vellum(
        &["purge", "--compact", "--data-dir", &data_dir],
        &[("VELLUM_DATABASE_URL", "postgres://nobody@127.0.0.1:1/none".to_owned())],
    );
    assert!(
        !refused.0 && refused.1.contains("--compact is for the embedded store"),
        "{}",
        refused.1
    );

    // Its events (March 2026) are past a 30-day default retention.
    let (ok, output) = crate::helpers::run_vellum(
        &["purge", "--default-retention-days", "30", "--data-dir", &data_dir],
        &[],
    );
    assert!(ok, "{output}");
    let before_compacting = std::fs::metadata(&database).unwrap().len();
    assert_eq!(auto_vacuum(), 0);

    let (ok, output) = crate::helpers::run_vellum(&["purge", "--compact", "--data-dir", &data_dir], &[]);
    assert!(ok, "{output}");
    assert!(output.contains("compacted"), "{output}");
    assert_eq!(auto_vacuum(), 2, "incremental from now on");
    let after = std::fs::metadata(&database).unwrap().len();
    assert!(after < before_compacting, "{after} < {before_compacting}");
    let (ok, output) = verify(&["verify", "store", "--data-dir", &data_dir]);
    assert!(ok, "{output}");
    assert!(output.contains("removed by"), "{output}");

    // With a server running on it, compacting is refused (the pass itself runs beside it), and
    // the file is left as it was.
    let server = ServerProcess::start(dir.path(), &[], &[("VELLUM_API_KEY", API_KEY)]);
    let client = reqwest::Client::new();
    let _ = get(&client, &server, "/audit_logs/log/public_key").await;
    let size = std::fs::metadata(&database).unwrap().len();
    let (ok, output) = crate::helpers::run_vellum(&["purge", "--compact", "--data-dir", &data_dir], &[]);
    assert!(!ok && output.contains("stop it before compacting"), "{output}");
    assert_eq!(std::fs::metadata(&database).unwrap().len(), size);
    drop(server);
}

/// Events logged before sealed parties (format v1) can be erased too: their content no longer
/// hashes to their leaves, so they are redacted, and every verifier takes their leaves on the
/// word of the erasure records, which must account for exactly them. An event logged after the
/// upgrade (format v2) in the same erasure keeps verifying in full.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_of_an_old_store_are_erased_as_redactions_and_still_verify() {
    let data_dir = tempfile::tempdir().unwrap();
    lay_down(data_dir.path());
    let mut server = ServerProcess::start(data_dir.path(), &[], &[("VELLUM_API_KEY", API_KEY)]);
    let client = reqwest::Client::new();
    let organization = "org_01M922E79PF7163WCYPCTZN9RN";
    let batch = json!({"organization_id": organization, "events": [{
        "action": "user.signed_in", "occurred_at": "2026-04-01T00:00:00Z",
        "actor": {"id": "user_3", "type": "user", "name": "User Ünïcode 3"},
        "targets": [{"id": "team_after", "type": "team"}], "context": {"location": "192.0.2.8"}}]});
    let response = client
        .post(server.url("/audit_logs/events/batch"))
        .bearer_auth(API_KEY)
        .json(&batch)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let erased: Value = client
        .post(server.url("/audit_logs/erasures"))
        .bearer_auth(API_KEY)
        .json(&json!({"organization_id": organization, "actor_id": "user_3"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let count = erased["events_erased"].as_u64().unwrap();
    assert!(
        count > 10,
        "user_3 acts in and is a target of many fixture events: {erased}"
    );
    let found = get(
        &client,
        &server,
        &format!("/audit_logs/events?organization_id={organization}&search=%C3%9Cn%C3%AFcode%203"),
    )
    .await;
    assert_eq!(found["data"].as_array().unwrap().len(), 0, "{found}");

    let key = get(&client, &server, "/audit_logs/log/public_key").await;
    let pinned = key["verifier_key"].as_str().unwrap().to_owned();
    let url = server.url("");
    let (ok, output) = verify(&[
        "verify",
        "log",
        "--url",
        url.trim_end_matches('/'),
        "--api-key",
        API_KEY,
        "--organization",
        organization,
        "--public-key",
        &pinned,
    ]);
    assert!(
        ok && output.contains(&format!("{count} with personal data erased by 1 erasure records")),
        "{output}"
    );
    server.signal("TERM");
    assert!(server.wait_exit(Duration::from_secs(30)).success());
    let (ok, output) = verify(&["verify", "store", "--data-dir", data_dir.path().to_str().unwrap()]);
    assert!(ok, "{output}");

    // Changing what is left of a redacted event is on the record's word, but removing the
    // record's account of it is not: an event claiming an erasure that did not name it is caught.
    let connection = rusqlite::Connection::open(data_dir.path().join("vellum.sqlite3")).unwrap();
    let record: i64 = connection
        .query_row(
            "select log_index from events where action = 'vellum.personal_data.erased'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    let changed = connection
        .execute(
            &format!(
                "update events set payload = json_set(payload, '$.erased_by', json_array({record})) \
                 where seq = (select min(seq) from events where payload not like '%erased_by%' \
                   and action not like 'vellum.%' and organization_seq = \
                   (select organization_seq from events where log_index = {record} and action like 'vellum.%'))"
            ),
            [],
        )
        .unwrap();
    assert_eq!(changed, 1);
    drop(connection);
    let (ok, output) = verify(&["verify", "store", "--data-dir", data_dir.path().to_str().unwrap()]);
    assert!(!ok && output.contains("erasure"), "{output}");
}
