use reqwest::StatusCode;

use crate::helpers::{ServerProcess, TestApp, fresh_secret, json_status, vellum_binary};

async fn assert_unauthorized(response: reqwest::Response, code: &str) {
    assert_eq!(
        response
            .headers()
            .get("www-authenticate")
            .map(|value| value.to_str().unwrap()),
        Some("Bearer")
    );
    let body = json_status(response, StatusCode::UNAUTHORIZED).await;
    assert_eq!(body["message"], "Unauthorized");
    assert_eq!(body["code"], code);
}

#[tokio::test]
async fn api_routes_need_a_valid_bearer_key() {
    let app = TestApp::spawn().await;
    let url = app.url("/organizations");

    assert_unauthorized(app.client.get(&url).send().await.unwrap(), "missing_api_key").await;
    assert_unauthorized(
        app.client
            .get(&url)
            .header("authorization", format!("Basic {}", app.api_key))
            .send()
            .await
            .unwrap(),
        "invalid_authorization_header",
    )
    .await;
    assert_unauthorized(
        app.client.get(&url).bearer_auth("sk_short").send().await.unwrap(),
        "invalid_api_key",
    )
    .await;
    assert_unauthorized(
        app.client
            .get(&url)
            .bearer_auth(fresh_secret().expose())
            .send()
            .await
            .unwrap(),
        "invalid_api_key",
    )
    .await;
    // A prefix of the real key is not the key.
    assert_unauthorized(
        app.client
            .get(&url)
            .bearer_auth(&app.api_key[..app.api_key.len() - 1])
            .send()
            .await
            .unwrap(),
        "invalid_api_key",
    )
    .await;
    // Writes are refused too, and change nothing.
    let refused = app
        .client
        .post(&url)
        .bearer_auth(fresh_secret().expose())
        .json(&serde_json::json!({"name": "Nope"}))
        .send()
        .await
        .unwrap();
    assert_unauthorized(refused, "invalid_api_key").await;
    assert_eq!(app.count_organizations().await, 0);

    let ok = app
        .client
        .get(&url)
        .header("authorization", format!("bearer  {}", app.api_key))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK, "the scheme is case-insensitive");
    app.stop().await.unwrap();
}

fn run_cli(data_dir: &std::path::Path, args: &[&str]) -> (bool, String, String) {
    let output = std::process::Command::new(vellum_binary())
        .args(args)
        .env("VELLUM_DATA_DIR", data_dir)
        .env_remove("VELLUM_CONFIG")
        .env_remove("VELLUM_DATABASE_URL")
        .envs(crate::helpers::backend_env(data_dir))
        .output()
        .expect("vellum runs");
    (
        output.status.success(),
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

#[tokio::test]
async fn keys_created_and_revoked_by_the_cli_take_effect_on_a_running_server() {
    let app = TestApp::spawn().await;
    let (ok, stdout, stderr) = run_cli(app.data_dir.path(), &["api-keys", "create", "--name", "deploy bot"]);
    assert!(ok, "{stderr}");
    let secret = stdout.lines().last().unwrap().trim().to_owned();
    assert!(secret.starts_with("sk_"), "the secret is the last line: {stdout}");
    let key_id = stdout
        .split_whitespace()
        .find(|word| word.starts_with("key_"))
        .unwrap()
        .to_owned();

    let url = app.url("/organizations");
    let response = app.client.get(&url).bearer_auth(&secret).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    let (ok, listing, _) = run_cli(app.data_dir.path(), &["api-keys", "list"]);
    assert!(ok);
    assert!(listing.contains(&key_id) && listing.contains("deploy bot") && listing.contains("active"));
    assert!(!listing.contains(&secret), "list never shows secrets");
    assert!(!listing.contains(&app.api_key));

    let (ok, _, stderr) = run_cli(app.data_dir.path(), &["api-keys", "revoke", &key_id]);
    assert!(ok, "{stderr}");
    // The server trusts a key it found valid for a second (docs/security.md): a key revoked by
    // another process is refused once that has passed.
    let revoked_at = std::time::Instant::now();
    loop {
        let response = app.client.get(&url).bearer_auth(&secret).send().await.unwrap();
        if response.status() == StatusCode::UNAUTHORIZED {
            assert_unauthorized(response, "invalid_api_key").await;
            break;
        }
        assert_eq!(response.status(), StatusCode::OK);
        assert!(
            revoked_at.elapsed() < std::time::Duration::from_secs(5),
            "a key revoked by the CLI was still accepted after 5 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let (_, listing, _) = run_cli(app.data_dir.path(), &["api-keys", "list"]);
    assert!(listing.contains("revoked"));

    let (ok, _, stderr) = run_cli(
        app.data_dir.path(),
        &["api-keys", "revoke", "key_01EHWNCE74X7JSDV0X3SZ3KJNY"],
    );
    assert!(!ok && stderr.contains("not found"), "{stderr}");
    let (ok, _, stderr) = run_cli(app.data_dir.path(), &["api-keys", "revoke", "nonsense"]);
    assert!(!ok && stderr.contains("not an API key id"), "{stderr}");
    let (ok, _, stderr) = run_cli(app.data_dir.path(), &["api-keys", "create", "--name", "  "]);
    assert!(!ok && stderr.contains("empty"), "{stderr}");
    app.stop().await.unwrap();
}

#[tokio::test]
async fn secrets_never_reach_the_logs() {
    let data_dir = tempfile::tempdir().unwrap();
    let log_file = data_dir.path().join("server.log");
    let secret = fresh_secret();
    let wrong = fresh_secret();
    let server = ServerProcess::start_logging_to(
        &data_dir.path().join("data"),
        &[],
        &[
            ("VELLUM_API_KEY", secret.expose()),
            ("VELLUM_LOG", "trace"),
            ("VELLUM_LOG_FORMAT", "json"),
        ],
        Some(&log_file),
    );
    let client = reqwest::Client::new();
    for key in [secret.expose(), wrong.expose()] {
        client
            .get(server.url("/organizations"))
            .bearer_auth(key)
            .send()
            .await
            .unwrap();
        client
            .post(server.url("/organizations"))
            .bearer_auth(key)
            .json(&serde_json::json!({"name": "Logged"}))
            .send()
            .await
            .unwrap();
    }
    drop(server);
    let logs = std::fs::read_to_string(&log_file).unwrap();
    assert!(logs.contains("/organizations"), "requests were logged at all: {logs}");
    for key in [secret.expose(), wrong.expose()] {
        assert!(!logs.contains(key), "a secret leaked into the logs");
        assert!(!logs.contains(&key[3..20]), "part of a secret leaked into the logs");
    }
}
