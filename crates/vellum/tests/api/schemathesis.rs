//! schemathesis (from PyPI, pinned by `tests/schemathesis/requirements.txt` and installed by
//! `scripts/test` into `.sdk/schemathesis`) against a real server, driven by the committed
//! `docs/openapi.json`: no 5xx, and every answer has a documented status, content type and
//! body shape.
//!
//! The server gets a fresh store and an API key, and is seeded (an organization, a schema,
//! events of both APIs, a finished export) so that generated requests reach real objects:
//! a config file binds path, query and body ids to the seeded ones for most examples.
//! `VELLUM_TEST_SCHEMATHESIS` may name another `schemathesis` executable;
//! `VELLUM_SCHEMATHESIS_MAX_EXAMPLES` (default 40) and `VELLUM_SCHEMATHESIS_SEED` make a longer
//! or different hunt. Without one, the test
//! fails and says how to set it up: it never skips.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::{TestApp, json_ok, json_status};

fn repository_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repository root")
}

fn schemathesis() -> PathBuf {
    if let Some(executable) = std::env::var_os("VELLUM_TEST_SCHEMATHESIS") {
        return PathBuf::from(executable);
    }
    let executable = repository_root().join(".sdk/schemathesis/bin/schemathesis");
    assert!(
        executable.exists(),
        "schemathesis is not installed in .sdk/schemathesis: run `scripts/test` (it installs it), \
         or set VELLUM_TEST_SCHEMATHESIS to a schemathesis executable of the version in \
         tests/schemathesis/requirements.txt"
    );
    executable
}

/// The ids of the seeded objects.
struct Seeded {
    organization: String,
    external_id: String,
    event: String,
    export: String,
}

async fn seed(app: &TestApp) -> Seeded {
    let external_id = "schemathesis-seed".to_owned();
    let organization = app
        .create_organization(&json!({
            "name": "Seeded",
            "external_id": external_id,
            "domain_data": [{"domain": "seeded.example.com", "state": "verified"}],
            "metadata": {"tier": "gold"},
        }))
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.create_schema(
        "user.signed_in",
        &json!({
            "targets": [{"type": "team"}],
            "actor": {"metadata": {"type": "object", "properties": {"role": {"type": "string"}}}},
        }),
    )
    .await;
    let event = |day: u32, actor: &str| {
        json!({
            "action": "user.signed_in",
            "occurred_at": format!("2026-01-{day:02}T00:00:00.000Z"),
            "actor": {"id": actor, "type": "user", "name": actor, "metadata": {"role": "admin"}},
            "targets": [{"id": "team_1", "type": "team", "name": "Team"}],
            "context": {"location": "192.0.2.1", "user_agent": "schemathesis"},
            "metadata": {"n": 1, "ok": true},
        })
    };
    let ids = app
        .ingest_batch(
            &organization,
            vec![event(1, "user_1"), event(2, "user_2"), event(3, "user_1")],
        )
        .await;
    let legacy = app
        .post_json(
            "/events",
            &json!({
                "group": external_id, "location": "192.0.2.1", "action": "user.login",
                "action_type": "R", "actor_name": "Alice", "actor_id": "user_1",
                "target_name": "Team", "target_id": "team_1",
                "occurred_at": "2026-01-04T00:00:00.000Z", "metadata": {"k": "v"},
            }),
        )
        .await;
    json_status(legacy, reqwest::StatusCode::CREATED).await;
    let export = json_status(
        app.post_json(
            "/audit_logs/exports",
            &json!({
                "organization_id": organization,
                "range_start": "2025-01-01T00:00:00Z",
                "range_end": "2027-01-01T00:00:00Z",
            }),
        )
        .await,
        reqwest::StatusCode::CREATED,
    )
    .await;
    let export = export["id"].as_str().unwrap().to_owned();
    // Wait for the file, so that the export is read in its ready state too.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let current: Value = json_ok(app.get(&format!("/audit_logs/exports/{export}")).await).await;
        if current["state"] == "ready" {
            break;
        }
        assert!(Instant::now() < deadline, "the seed export never finished: {current}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Seeded {
        organization,
        external_id,
        event: ids[0].clone(),
        export,
    }
}

/// The config file: each id parameter takes a seeded id in most examples (a dictionary with a
/// probability), and anything the schema allows in the rest. DELETE is left unbound so that the
/// seeded organization survives the run.
/// The live tail is left out: a request it accepts never ends (its refusals are covered by the
/// malformed-input table, which reads a stream's first message).
fn config(seeded: &Seeded) -> String {
    format!(
        r#"[dictionaries]
organization = {{ values = ["{organization}"] }}
external_id = {{ values = ["{external_id}"] }}
event = {{ values = ["{event}"] }}
export = {{ values = ["{export}"] }}
action = {{ values = ["user.signed_in"] }}

[[operations]]
include-path = "/audit_logs/events/stream"
enabled = false

[[operations]]
include-path-regex = "^/organizations/\\{{id\\}}"
exclude-method = "DELETE"
parameters = {{ "path.id" = {{ dictionary = "organization", probability = 0.8 }} }}

[[operations]]
include-path = "/organizations/external_id/{{external_id}}"
parameters = {{ "path.external_id" = {{ dictionary = "external_id", probability = 0.8 }} }}

[[operations]]
include-path = "/audit_logs/events/{{id}}"
parameters = {{ "path.id" = {{ dictionary = "event", probability = 0.8 }} }}

[[operations]]
include-path-regex = "^/audit_logs/exports/\\{{id\\}}"
parameters = {{ "path.id" = {{ dictionary = "export", probability = 0.8 }} }}

[[operations]]
include-path-regex = "^/audit_logs/actions/"
parameters = {{ "path.action" = {{ dictionary = "action", probability = 0.8 }} }}

[[operations]]
include-path-regex = "^/audit_logs/(events|log/|exports$)"
parameters = {{ "query.organization_id" = {{ dictionary = "organization", probability = 0.8 }}, "query.event_id" = {{ dictionary = "event", probability = 0.8 }}, "body.organization_id" = {{ dictionary = "organization", probability = 0.8 }} }}
"#,
        organization = seeded.organization,
        external_id = seeded.external_id,
        event = seeded.event,
        export = seeded.export,
    )
}

/// The checks run: a 5xx, an undocumented status, a content type or a body that breaks the
/// document fails the test. Checks about what the API should refuse or accept
/// (`negative_data_rejection`, `positive_data_acceptance`) are left out: the document describes
/// shapes, and the server's rules (metadata limits, id forms, schemas of actions) go beyond it.
const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_error_and_no_answer_outside_the_document() {
    let executable = schemathesis();
    let app = TestApp::spawn().await;
    let seeded = seed(&app).await;
    let work = tempfile::tempdir().unwrap();
    let config_file = work.path().join("schemathesis.toml");
    std::fs::write(&config_file, config(&seeded)).unwrap();
    let document = repository_root().join("docs/openapi.json");
    let (address, api_key) = (app.address.clone(), app.api_key.clone());
    // Bounded: about 40 seconds on two cores. The seed fixes what is generated; both may be
    // raised for a longer hunt.
    let max_examples = std::env::var("VELLUM_SCHEMATHESIS_MAX_EXAMPLES").unwrap_or_else(|_| "40".to_owned());
    let seed = std::env::var("VELLUM_SCHEMATHESIS_SEED").unwrap_or_else(|_| "20261205".to_owned());
    let work_dir = work.path().to_owned();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(&executable)
            .arg("--config-file")
            .arg(&config_file)
            .arg("run")
            .arg(&document)
            .args(["--url", &address])
            .args(["--header", &format!("Authorization: Bearer {api_key}")])
            .args(["--checks", CHECKS])
            // One worker: with two, the Python 3.11 that runs schemathesis can fail inside its own
            // parser ("AST constructor recursion depth mismatch", a CPython bug of `ast.parse`
            // from two threads), which reads as a failure of the server.
            .args(["--max-examples", &max_examples, "--seed", &seed, "--workers", "1"])
            .args(["--request-timeout", "30", "--warnings", "off", "--no-color"])
            .current_dir(&work_dir)
            .env("NO_COLOR", "1")
            .output()
            .expect("schemathesis runs")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}{stderr}");
    assert!(
        output.status.success(),
        "schemathesis found failures against docs/openapi.json:\n{stdout}{stderr}"
    );
    assert!(
        stdout.contains("passed") && !stdout.contains("Tested: 0"),
        "schemathesis tested nothing:\n{stdout}{stderr}"
    );
    app.stop().await.unwrap();
}
