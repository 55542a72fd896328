//! The operator dashboard's server side: sign-in, sessions, CSRF, the mirrored API, API keys,
//! the health summary, the page's assets, and the operator bootstrap and CLI.

use std::io::Write;
use std::process::{Command, Stdio};

use reqwest::{Method, StatusCode, header};
use serde_json::{Value, json};

use crate::helpers::{ServerProcess, TestApp, fresh_secret, json_ok, json_status, vellum_binary};

const EMAIL: &str = "admin@example.com";
const PASSWORD: &str = "correct horse battery";

async fn app() -> TestApp {
    TestApp::spawn_with(|settings| {
        settings.admin = Some(vellum::config::AdminBootstrap {
            email: vellum_core::operator::Email::parse(EMAIL).unwrap(),
            password: PASSWORD.into(),
        });
    })
    .await
}

/// A signed-in browser: its cookie and CSRF token.
struct Browser {
    cookie: String,
    csrf: String,
}

async fn sign_in_response(app: &TestApp, email: &str, password: &str) -> reqwest::Response {
    app.client
        .post(app.url("/dashboard/api/session"))
        .json(&json!({ "email": email, "password": password }))
        .send()
        .await
        .unwrap()
}

async fn sign_in(app: &TestApp) -> Browser {
    let response = sign_in_response(app, EMAIL, PASSWORD).await;
    assert_eq!(response.status(), StatusCode::OK);
    let set_cookie = response
        .headers()
        .get(header::SET_COOKIE)
        .expect("a session cookie")
        .to_str()
        .unwrap()
        .to_owned();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/dashboard"] {
        assert!(set_cookie.contains(attribute), "{set_cookie} lacks {attribute}");
    }
    let cookie = set_cookie.split(';').next().unwrap().to_owned();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["email"], EMAIL);
    Browser {
        cookie,
        csrf: body["csrf_token"].as_str().unwrap().to_owned(),
    }
}

impl Browser {
    fn request(&self, app: &TestApp, method: &Method, path: &str) -> reqwest::RequestBuilder {
        let builder = app
            .client
            .request(method.clone(), app.url(path))
            .header(header::COOKIE, &self.cookie);
        if *method == Method::GET {
            builder
        } else {
            builder.header("x-csrf-token", &self.csrf)
        }
    }

    async fn get(&self, app: &TestApp, path: &str) -> reqwest::Response {
        self.request(app, &Method::GET, path).send().await.unwrap()
    }

    async fn send(&self, app: &TestApp, method: Method, path: &str, body: &Value) -> reqwest::Response {
        self.request(app, &method, path).json(body).send().await.unwrap()
    }
}

#[tokio::test]
async fn without_a_session_nothing_is_read_or_changed() {
    let app = app().await;
    let before = app.count_organizations().await;
    for (method, path) in [
        (Method::GET, "/dashboard/api/session"),
        (Method::GET, "/dashboard/api/organizations"),
        (Method::POST, "/dashboard/api/organizations"),
        (Method::GET, "/dashboard/api/api_keys"),
        (Method::POST, "/dashboard/api/api_keys"),
        (Method::GET, "/dashboard/api/health"),
        (Method::DELETE, "/dashboard/api/session"),
    ] {
        let response = app
            .client
            .request(method.clone(), app.url(path))
            .json(&json!({ "name": "Sneaky" }))
            .send()
            .await
            .unwrap();
        let body = json_status(response, StatusCode::UNAUTHORIZED).await;
        assert_eq!(body["code"], "not_signed_in", "{method} {path}");
    }
    // A made-up or malformed cookie is no session either.
    for cookie in [
        format!("vellum_session={}", "a".repeat(64)),
        "vellum_session=garbage".to_owned(),
    ] {
        let response = app
            .client
            .post(app.url("/dashboard/api/organizations"))
            .header(header::COOKIE, cookie)
            .header("x-csrf-token", "x")
            .json(&json!({ "name": "Sneaky" }))
            .send()
            .await
            .unwrap();
        json_status(response, StatusCode::UNAUTHORIZED).await;
    }
    assert_eq!(app.count_organizations().await, before);
    // The API key, meanwhile, still works on the public API.
    assert_eq!(app.get("/organizations").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_change_without_the_csrf_token_is_refused_and_changes_nothing() {
    let app = app().await;
    let browser = sign_in(&app).await;
    let organization = app.organization("Acme").await;
    let before = app.count_organizations().await;

    let attempts: Vec<(Method, String, Value)> = vec![
        (
            Method::POST,
            "/dashboard/api/organizations".into(),
            json!({ "name": "Forged" }),
        ),
        (
            Method::PUT,
            format!("/dashboard/api/organizations/{organization}"),
            json!({ "name": "Renamed" }),
        ),
        (
            Method::DELETE,
            format!("/dashboard/api/organizations/{organization}"),
            json!({}),
        ),
        (
            Method::POST,
            "/dashboard/api/api_keys".into(),
            json!({ "name": "forged" }),
        ),
        (
            Method::PUT,
            format!("/dashboard/api/organizations/{organization}/audit_logs_retention"),
            json!({ "retention_period_in_days": 30 }),
        ),
        (
            Method::POST,
            "/dashboard/api/audit_logs/actions/user.signed_in/schemas".into(),
            json!({ "targets": [{ "type": "team" }] }),
        ),
        (Method::DELETE, "/dashboard/api/session".into(), json!({})),
    ];
    for (method, path, body) in attempts {
        for token in [None, Some("0".repeat(64)), Some(String::new())] {
            let mut request = app
                .client
                .request(method.clone(), app.url(&path))
                .header(header::COOKIE, &browser.cookie)
                .json(&body);
            if let Some(token) = &token {
                request = request.header("x-csrf-token", token);
            }
            let refused = json_status(request.send().await.unwrap(), StatusCode::FORBIDDEN).await;
            assert_eq!(refused["code"], "invalid_csrf_token", "{method} {path} with {token:?}");
        }
    }
    assert_eq!(app.count_organizations().await, before);
    let organization_now = json_ok(app.get(&format!("/organizations/{organization}")).await).await;
    assert_eq!(organization_now["name"], "Acme");
    let keys = json_ok(browser.get(&app, "/dashboard/api/api_keys").await).await;
    assert_eq!(keys["data"].as_array().unwrap().len(), 1, "only the test's own key");
    let retention = json_ok(
        app.get(&format!("/organizations/{organization}/audit_logs_retention"))
            .await,
    )
    .await;
    assert!(retention["retention_period_in_days"].is_null(), "{retention}");
    json_status(
        app.get("/audit_logs/actions/user.signed_in/schemas").await,
        StatusCode::NOT_FOUND,
    )
    .await;
    // The session survived the forged sign-out.
    json_ok(browser.get(&app, "/dashboard/api/session").await).await;
}

#[tokio::test]
async fn a_session_is_not_an_api_key_and_an_api_key_is_not_a_session() {
    let app = app().await;
    let browser = sign_in(&app).await;
    let response = app
        .client
        .get(app.url("/organizations"))
        .header(header::COOKIE, &browser.cookie)
        .header("x-csrf-token", &browser.csrf)
        .send()
        .await
        .unwrap();
    json_status(response, StatusCode::UNAUTHORIZED).await;
    // The session token itself is no bearer key either.
    let token = browser.cookie.split_once('=').unwrap().1;
    let response = app
        .client
        .get(app.url("/organizations"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    json_status(response, StatusCode::UNAUTHORIZED).await;

    let response = app
        .client
        .get(app.url("/dashboard/api/organizations"))
        .bearer_auth(&app.api_key)
        .send()
        .await
        .unwrap();
    assert_eq!(
        json_status(response, StatusCode::UNAUTHORIZED).await["code"],
        "not_signed_in"
    );
    let response = app
        .client
        .post(app.url("/dashboard/api/organizations"))
        .bearer_auth(&app.api_key)
        .json(&json!({ "name": "Via key" }))
        .send()
        .await
        .unwrap();
    json_status(response, StatusCode::UNAUTHORIZED).await;
    assert_eq!(app.count_organizations().await, 0);
}

#[tokio::test]
async fn wrong_credentials_are_refused_alike_and_repeated_failures_lock_out() {
    let app = app().await;
    for (email, password) in [(EMAIL, "wrong password"), ("nobody@example.com", PASSWORD), (EMAIL, "")] {
        let response = sign_in_response(&app, email, password).await;
        assert!(response.headers().get(header::SET_COOKIE).is_none());
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        if password.is_empty() {
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
            assert_eq!(body["errors"][0]["field"], "password");
        } else {
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
            assert_eq!(body["code"], "invalid_credentials");
            assert_eq!(body["message"], "Incorrect email or password.");
        }
    }
    // A form post (not JSON) is refused: another site cannot sign a browser in.
    let form = app
        .client
        .post(app.url("/dashboard/api/session"))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(format!("email={EMAIL}&password={PASSWORD}"))
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);

    // Upper case is the same account; five failures lock it out from this address, even for the
    // right password, and the answer says for how long.
    sign_in(&app).await;
    for _ in 0..5 {
        let response = sign_in_response(&app, "ADMIN@example.com", "guess").await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    let locked = sign_in_response(&app, EMAIL, PASSWORD).await;
    assert_eq!(locked.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = locked.headers()[header::RETRY_AFTER].to_str().unwrap().parse().unwrap();
    assert!((1..=30).contains(&retry_after), "{retry_after}");
    let body: Value = locked.json().await.unwrap();
    assert_eq!(body["code"], "too_many_attempts");
    assert!(body["message"].as_str().unwrap().contains("Try again in"), "{body}");
    // Another operator is not locked out.
    let other = sign_in_response(&app, "someone@example.com", "guess").await;
    assert_eq!(other.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn sign_out_ends_the_session() {
    let app = app().await;
    let browser = sign_in(&app).await;
    let second = sign_in(&app).await;
    assert_ne!(browser.cookie, second.cookie);
    let session = json_ok(browser.get(&app, "/dashboard/api/session").await).await;
    assert_eq!(session["csrf_token"], browser.csrf.as_str());

    let response = browser
        .send(&app, Method::DELETE, "/dashboard/api/session", &json!({}))
        .await;
    let cleared = response.headers()[header::SET_COOKIE].to_str().unwrap().to_owned();
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    assert_eq!(json_ok(response).await, json!({ "success": true }));
    json_status(
        browser.get(&app, "/dashboard/api/session").await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    json_status(
        browser
            .send(
                &app,
                Method::POST,
                "/dashboard/api/organizations",
                &json!({ "name": "After" }),
            )
            .await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    // Another browser's session is untouched.
    json_ok(second.get(&app, "/dashboard/api/session").await).await;
}

#[tokio::test]
async fn the_dashboard_api_mirrors_the_public_one_but_never_ingests() {
    let app = app().await;
    let browser = sign_in(&app).await;
    let created = browser
        .send(
            &app,
            Method::POST,
            "/dashboard/api/organizations",
            &json!({ "name": "Foo Corp" }),
        )
        .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let created: Value = created.json().await.unwrap();
    let organization = created["id"].as_str().unwrap();
    // The public API sees the same organization, in the same shape.
    assert_eq!(
        json_ok(app.get(&format!("/organizations/{organization}")).await).await,
        created
    );
    let listed = json_ok(browser.get(&app, "/dashboard/api/organizations?search=foo").await).await;
    assert_eq!(listed["data"][0]["id"], organization);

    let schema = browser
        .send(
            &app,
            Method::POST,
            "/dashboard/api/audit_logs/actions/user.signed_in/schemas",
            &json!({ "targets": [{ "type": "team" }] }),
        )
        .await;
    assert_eq!(schema.status(), StatusCode::CREATED);
    let event = json!({
        "action": "user.signed_in", "occurred_at": "2026-01-15T12:00:00.000Z",
        "actor": { "id": "user_1", "type": "user" }, "targets": [{ "id": "team_1", "type": "team" }],
        "context": { "location": "192.0.2.1" },
    });
    let ingest = browser
        .send(
            &app,
            Method::POST,
            "/dashboard/api/audit_logs/events",
            &json!({ "organization_id": organization, "event": event }),
        )
        .await;
    assert_eq!(
        ingest.status(),
        StatusCode::METHOD_NOT_ALLOWED,
        "a session never ingests"
    );
    let batch = browser
        .send(
            &app,
            Method::POST,
            "/dashboard/api/audit_logs/events/batch",
            &json!({ "organization_id": organization, "events": [event] }),
        )
        .await;
    assert!(batch.status().is_client_error(), "{}", batch.status());
    assert!(app.all_events(organization).await.is_empty());

    app.ingest_batch(organization, vec![event.clone(), event]).await;
    let events = json_ok(
        browser
            .get(
                &app,
                &format!("/dashboard/api/audit_logs/events?organization_id={organization}&limit=1"),
            )
            .await,
    )
    .await;
    assert_eq!(events["data"].as_array().unwrap().len(), 1);
    assert!(events["list_metadata"]["after"].is_string());
    let id = events["data"][0]["id"].as_str().unwrap();
    let one = json_ok(
        browser
            .get(&app, &format!("/dashboard/api/audit_logs/events/{id}"))
            .await,
    )
    .await;
    assert_eq!(one["id"], id);
    let entries = json_ok(
        browser
            .get(
                &app,
                &format!("/dashboard/api/audit_logs/log/entries?organization_id={organization}&start=0&end=0"),
            )
            .await,
    )
    .await;
    assert_eq!(entries["tree_size"], 2);
    let checkpoint = browser
        .get(
            &app,
            &format!("/dashboard/api/audit_logs/log/checkpoint?organization_id={organization}"),
        )
        .await;
    assert_eq!(checkpoint.status(), StatusCode::OK);

    let health = browser.get(&app, "/dashboard/api/health").await;
    assert_eq!(health.headers()[header::CACHE_CONTROL], "no-store");
    let health = json_ok(health).await;
    assert_eq!(health["store"]["status"], "ok");
    assert_eq!(health["total_events"], 2);
    assert_eq!(health["organizations"][0]["id"], organization);
    assert_eq!(health["organizations"][0]["name"], "Foo Corp");
    assert_eq!(health["organizations"][0]["events"], 2);
    assert!(
        health["organizations"][0]["checkpoint"]
            .as_str()
            .unwrap()
            .contains(organization)
    );

    // Unknown dashboard API paths are JSON 404s, never the page.
    for path in ["/dashboard/api/nothing/here", "/dashboard/api/nothing"] {
        json_status(browser.get(&app, path).await, StatusCode::NOT_FOUND).await;
    }
}

#[tokio::test]
async fn api_keys_made_in_the_dashboard_work_until_revoked() {
    let app = app().await;
    let browser = sign_in(&app).await;
    let invalid = browser
        .send(&app, Method::POST, "/dashboard/api/api_keys", &json!({ "name": "  " }))
        .await;
    assert_eq!(
        json_status(invalid, StatusCode::UNPROCESSABLE_ENTITY).await["errors"][0]["field"],
        "name"
    );

    let created = browser
        .send(&app, Method::POST, "/dashboard/api/api_keys", &json!({ "name": "ci" }))
        .await;
    let created = json_status(created, StatusCode::CREATED).await;
    let secret = created["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("sk_"));
    assert_eq!(created["status"], "active");
    let id = created["id"].as_str().unwrap().to_owned();

    let listed = json_ok(browser.get(&app, "/dashboard/api/api_keys").await).await;
    let listed_text = listed.to_string();
    assert!(!listed_text.contains(&secret), "a listing never shows a secret");
    assert_eq!(listed["data"][0]["id"], id.as_str(), "newest first");
    assert_eq!(
        listed["data"][0]["redacted_secret"],
        format!("sk_…{}", &secret[secret.len() - 4..])
    );

    let with_new_key = || app.client.get(app.url("/organizations")).bearer_auth(&secret).send();
    assert_eq!(with_new_key().await.unwrap().status(), StatusCode::OK);
    let revoked = browser
        .send(
            &app,
            Method::POST,
            &format!("/dashboard/api/api_keys/{id}/revoke"),
            &json!({}),
        )
        .await;
    let revoked = json_ok(revoked).await;
    assert_eq!(revoked["status"], "revoked");
    assert!(revoked["revoked_at"].is_string());
    assert_eq!(with_new_key().await.unwrap().status(), StatusCode::UNAUTHORIZED);
    json_status(
        browser
            .send(
                &app,
                Method::POST,
                "/dashboard/api/api_keys/key_nope/revoke",
                &json!({}),
            )
            .await,
        StatusCode::NOT_FOUND,
    )
    .await;
}

#[tokio::test]
async fn the_page_and_its_assets_are_served_from_the_binary_with_a_strict_policy() {
    let app = app().await;
    for path in ["/dashboard", "/dashboard/", "/dashboard/organizations/org_1"] {
        let response = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert_eq!(response.headers()[header::CONTENT_TYPE], "text/html; charset=utf-8");
        let policy = response.headers()[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(policy.contains("script-src 'self'") && policy.contains("frame-ancestors 'none'"));
        assert_eq!(response.headers()[header::X_FRAME_OPTIONS], "DENY");
        let html = response.text().await.unwrap();
        assert!(html.contains("/dashboard/assets/dashboard.js"), "{path}");
    }
    for (asset, content_type) in [
        ("dashboard.js", "text/javascript; charset=utf-8"),
        ("viewer.js", "text/javascript; charset=utf-8"),
        ("verify.js", "text/javascript; charset=utf-8"),
        ("api.js", "text/javascript; charset=utf-8"),
        ("dashboard.css", "text/css; charset=utf-8"),
    ] {
        let response = app
            .client
            .get(app.url(&format!("/dashboard/assets/{asset}")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{asset}");
        assert_eq!(response.headers()[header::CONTENT_TYPE], content_type);
        let etag = response.headers()[header::ETAG].clone();
        assert!(!response.bytes().await.unwrap().is_empty(), "{asset} is empty");
        let again = app
            .client
            .get(app.url(&format!("/dashboard/assets/{asset}")))
            .header(header::IF_NONE_MATCH, etag)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    }
    for path in ["/dashboard/assets/secret.txt", "/dashboard/assets/..%2FCargo.toml"] {
        json_status(
            app.client.get(app.url(path)).send().await.unwrap(),
            StatusCode::NOT_FOUND,
        )
        .await;
    }
}

fn vellum(data_dir: &std::path::Path) -> Command {
    let mut command = Command::new(vellum_binary());
    command
        .env("VELLUM_DATA_DIR", data_dir)
        .env_remove("VELLUM_CONFIG")
        .env_remove("VELLUM_ADMIN_EMAIL")
        .env_remove("VELLUM_ADMIN_PASSWORD")
        .envs(crate::helpers::backend_env(data_dir));
    command
}

fn with_stdin(mut command: Command, input: &str) -> std::process::Output {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

async fn sign_in_to(server: &ServerProcess, email: &str, password: &str) -> StatusCode {
    reqwest::Client::new()
        .post(server.url("/dashboard/api/session"))
        .json(&json!({ "email": email, "password": password }))
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn operators_come_from_the_cli_and_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();

    let mut create = vellum(data);
    create.args(["operators", "create", "--email", "Ops@Example.com"]);
    let output = with_stdin(create, "s3cret-passphrase\n");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let mut short = vellum(data);
    short.args(["operators", "create", "--email", "short@example.com"]);
    let output = with_stdin(short, "short\n");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("at least 8 characters"));
    let mut twice = vellum(data);
    twice.args(["operators", "create", "--email", "ops@example.com"]);
    let output = with_stdin(twice, "another-passphrase\n");
    assert!(!output.status.success(), "one account per email, whatever its case");
    let mut bad_email = vellum(data);
    bad_email.args(["operators", "create", "--email", "not-an-email"]);
    assert!(!with_stdin(bad_email, "s3cret-passphrase\n").status.success());

    let listed = vellum(data).args(["operators", "list"]).output().unwrap();
    let listed = String::from_utf8_lossy(&listed.stdout).into_owned();
    assert!(listed.contains("ops@example.com"), "{listed}");
    assert!(
        !listed.contains("short@example.com") && !listed.contains("argon2"),
        "{listed}"
    );

    let secret = fresh_secret();
    let envs = [
        ("VELLUM_API_KEY", secret.expose()),
        ("VELLUM_ADMIN_EMAIL", "root@example.com"),
        ("VELLUM_ADMIN_PASSWORD", "first-password"),
    ];
    let server = ServerProcess::start(data, &[], &envs);
    assert_eq!(
        sign_in_to(&server, "ops@example.com", "s3cret-passphrase").await,
        StatusCode::OK
    );
    assert_eq!(
        sign_in_to(&server, "root@example.com", "first-password").await,
        StatusCode::OK
    );
    drop(server);

    // A changed VELLUM_ADMIN_PASSWORD replaces the old one at the next start.
    let envs = [
        ("VELLUM_API_KEY", secret.expose()),
        ("VELLUM_ADMIN_EMAIL", "root@example.com"),
        ("VELLUM_ADMIN_PASSWORD", "second-password"),
    ];
    let server = ServerProcess::start(data, &[], &envs);
    assert_eq!(
        sign_in_to(&server, "root@example.com", "first-password").await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        sign_in_to(&server, "root@example.com", "second-password").await,
        StatusCode::OK
    );
    drop(server);

    let mut reset = vellum(data);
    reset.args(["operators", "set-password", "--email", "ops@example.com"]);
    let output = with_stdin(reset, "rotated-passphrase\n");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let server = ServerProcess::start(data, &[], &[("VELLUM_API_KEY", secret.expose())]);
    assert_eq!(
        sign_in_to(&server, "ops@example.com", "s3cret-passphrase").await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        sign_in_to(&server, "ops@example.com", "rotated-passphrase").await,
        StatusCode::OK
    );
    drop(server);

    // Half a bootstrap is a start-up error, not a silent no-op.
    let output = vellum(data)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("VELLUM_ADMIN_EMAIL", "root@example.com")
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("set both or neither"));
}
