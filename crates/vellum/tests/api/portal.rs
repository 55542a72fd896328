//! The Admin Portal and the embeddable viewer, black-box: links generated, opened once and
//! revoked; sessions and viewer tokens that reach one organization only; reads recorded in the
//! organization's own trail.

use std::time::Duration;

use reqwest::{Method, StatusCode, header};
use serde_json::{Value, json};

use crate::helpers::{TestApp, json_ok, json_status};

/// A browser of the portal: the session cookie and its CSRF token.
struct PortalBrowser {
    client: reqwest::Client,
    address: String,
    cookie: String,
    csrf: String,
}

impl PortalBrowser {
    fn request(&self, method: &Method, path: &str) -> reqwest::RequestBuilder {
        let mut builder = self
            .client
            .request(method.clone(), format!("{}/portal/api{path}", self.address))
            .header(header::COOKIE, &self.cookie);
        if *method != Method::GET {
            builder = builder.header("x-csrf-token", &self.csrf);
        }
        builder
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        self.request(&Method::GET, path).send().await.unwrap()
    }

    async fn send(&self, method: Method, path: &str, body: &Value) -> reqwest::Response {
        self.request(&method, path).json(body).send().await.unwrap()
    }
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn generate(app: &TestApp, body: &Value) -> String {
    let answer = json_status(app.post_json("/portal/generate_link", body).await, StatusCode::CREATED).await;
    let link = answer["link"].as_str().expect("link").to_owned();
    assert_eq!(answer.as_object().unwrap().len(), 1, "{answer}");
    link
}

async fn launch(link: &str) -> reqwest::Response {
    no_redirects()
        .get(link)
        .header(header::USER_AGENT, "PortalTest/1.0")
        .send()
        .await
        .unwrap()
}

/// Opens a link as a browser does and returns the session.
async fn open(app: &TestApp, link: &str) -> PortalBrowser {
    let response = launch(link).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(response.headers()[header::LOCATION], "/portal/");
    let set_cookie = response.headers()[header::SET_COOKIE].to_str().unwrap().to_owned();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/portal", "Max-Age=3600"] {
        assert!(set_cookie.contains(attribute), "{set_cookie}");
    }
    let cookie = set_cookie.split(';').next().unwrap().to_owned();
    assert!(cookie.starts_with("vellum_portal="));
    let client = reqwest::Client::new();
    let session = json_ok(
        client
            .get(app.url("/portal/api/session"))
            .header(header::COOKIE, &cookie)
            .send()
            .await
            .unwrap(),
    )
    .await;
    PortalBrowser {
        client,
        address: app.address.clone(),
        cookie,
        csrf: session["csrf_token"].as_str().unwrap().to_owned(),
    }
}

async fn seeded(app: &TestApp, name: &str, actors: &[&str]) -> (String, Vec<String>) {
    let organization = app.organization(name).await;
    app.create_schema("doc.viewed", &json!({"targets": [{"type": "doc"}]}))
        .await;
    let events = actors
        .iter()
        .enumerate()
        .map(|(index, actor)| {
            json!({
                "action": "doc.viewed",
                "occurred_at": format!("2026-03-01T00:00:0{index}Z"),
                "actor": {"id": actor, "type": "user", "name": format!("{actor} of {name}")},
                "targets": [{"id": format!("doc_{index}"), "type": "doc"}],
                "context": {"location": "192.0.2.1"},
            })
        })
        .collect();
    let ids = app.ingest_batch(&organization, events).await;
    (organization, ids)
}

fn actions(events: &[Value]) -> Vec<&str> {
    events.iter().map(|event| event["action"].as_str().unwrap()).collect()
}

#[tokio::test]
async fn links_are_checked_opened_once_and_recorded_in_the_trail() {
    let app = TestApp::spawn().await;
    let organization = app.organization("Portal").await;

    for (body, field, code) in [
        (json!({"intent": "audit_logs"}), "organization", "required"),
        (json!({"organization": organization}), "intent", "required"),
        (
            json!({"organization": organization, "intent": "sso"}),
            "intent",
            "intent_not_served",
        ),
        (
            json!({"organization": organization, "intent": "dsync"}),
            "intent",
            "intent_not_served",
        ),
        (
            json!({"organization": organization, "intent": "everything"}),
            "intent",
            "invalid",
        ),
        (
            json!({"organization": 7, "intent": "audit_logs"}),
            "organization",
            "invalid_type",
        ),
        (
            json!({"organization": organization, "intent": "audit_logs", "return_url": "javascript:alert(1)"}),
            "return_url",
            "invalid",
        ),
        (
            json!({"organization": organization, "intent": "audit_logs", "success_url": "/relative"}),
            "success_url",
            "invalid",
        ),
        (
            json!({"organization": organization, "intent": "audit_logs", "it_contact_emails": ["not an email"]}),
            "it_contact_emails[0]",
            "invalid",
        ),
        (
            json!({"organization": organization, "intent": "audit_logs",
                   "it_contact_emails": (0..21).map(|n| format!("it{n}@customer.test")).collect::<Vec<_>>()}),
            "it_contact_emails",
            "too_many",
        ),
        (
            json!({"organization": organization, "intent": "audit_logs", "external_user_id": ""}),
            "external_user_id",
            "invalid",
        ),
        (
            json!({"organization": organization, "intent": "audit_logs", "intent_options": "x"}),
            "intent_options",
            "invalid_type",
        ),
    ] {
        let refused = json_status(
            app.post_json("/portal/generate_link", &body).await,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
        let errors = refused["errors"].as_array().expect("errors");
        assert!(
            errors
                .iter()
                .any(|error| error["field"] == field && error["code"] == code),
            "{body} → {refused}"
        );
    }
    json_status(
        app.post_json(
            "/portal/generate_link",
            &json!({"organization": "org_01EHWNCE74X7JSDV0X3SZ3KJNY", "intent": "audit_logs"}),
        )
        .await,
        StatusCode::NOT_FOUND,
    )
    .await;
    // Without an API key, nothing.
    let anonymous = reqwest::Client::new()
        .post(app.url("/portal/generate_link"))
        .json(&json!({"organization": organization, "intent": "audit_logs"}))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);

    let link = generate(
        &app,
        &json!({
            "organization": organization,
            "intent": "audit_logs",
            "return_url": "https://app.example.com/settings",
            "external_user_id": "admin_7",
            "admin_emails": ["it@customer.test"],
            "intent_options": {"sso": {"bookmark_slug": "x"}},
        }),
    )
    .await;
    let prefix = app.url("/portal/launch?secret=");
    assert!(link.starts_with(&prefix), "{link}");
    let secret = &link[prefix.len()..];
    assert_eq!(secret.len(), 64);

    // An altered secret, no secret, and a made-up one open nothing; neither does the link's
    // secret used as a session cookie.
    let mut altered = secret.to_owned().into_bytes();
    altered[10] = if altered[10] == b'a' { b'b' } else { b'a' };
    for refused in [
        format!("{prefix}{}", String::from_utf8(altered).unwrap()),
        app.url("/portal/launch"),
        format!("{prefix}{}", "0".repeat(64)),
        format!("{prefix}{secret}x"),
    ] {
        let response = launch(&refused).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{refused}");
        assert!(response.headers().get(header::SET_COOKIE).is_none());
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["code"], "portal_link_invalid");
    }
    let as_cookie = reqwest::Client::new()
        .get(app.url("/portal/api/session"))
        .header(header::COOKIE, format!("vellum_portal={secret}"))
        .send()
        .await
        .unwrap();
    assert_eq!(as_cookie.status(), StatusCode::UNAUTHORIZED);

    let browser = open(&app, &link).await;
    let session = json_ok(browser.get("/session").await).await;
    assert_eq!(session["organization"]["id"], organization.as_str());
    assert_eq!(session["organization"]["name"], "Portal");
    assert_eq!(session["intent"], "audit_logs");
    assert_eq!(session["return_url"], "https://app.example.com/settings");

    // Spent: a second opening, from any browser, is refused (a browser gets a page).
    let again = launch(&link).await;
    assert_eq!(again.status(), StatusCode::FORBIDDEN);
    let page = no_redirects()
        .get(&link)
        .header(header::ACCEPT, "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::FORBIDDEN);
    assert!(page.text().await.unwrap().contains("This link cannot be opened"));

    // The opening is in the organization's own trail.
    let trail = app.all_events(&organization).await;
    assert_eq!(actions(&trail), vec!["vellum.portal.session_started"]);
    let record = &trail[0];
    assert_eq!(record["actor"]["id"], "admin_7");
    assert_eq!(record["actor"]["type"], "portal_user");
    assert_eq!(record["metadata"]["intent"], "audit_logs");
    assert_eq!(record["metadata"]["it_contact_emails"], "it@customer.test");
    assert_eq!(record["context"]["user_agent"], "PortalTest/1.0");
    assert_eq!(record["context"]["location"], "127.0.0.1");

    // Signing out ends the session.
    let ended = json_ok(browser.send(Method::DELETE, "/session", &json!({})).await).await;
    assert_eq!(ended["success"], true);
    let after = json_status(browser.get("/session").await, StatusCode::UNAUTHORIZED).await;
    assert_eq!(after["code"], "portal_session_ended");
}

#[tokio::test]
async fn a_link_expires_unopened() {
    let app = TestApp::spawn_with(|settings| settings.portal.link_lifetime = Duration::from_millis(300)).await;
    let organization = app.organization("Late").await;
    let link = generate(&app, &json!({"organization": organization, "intent": "audit_logs"})).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(launch(&link).await.status(), StatusCode::FORBIDDEN);
    assert!(app.all_events(&organization).await.is_empty(), "nothing was opened");
}

#[tokio::test]
async fn a_portal_session_reaches_only_its_organization_and_intent() {
    let app = TestApp::spawn().await;
    let (mine, my_events) = seeded(&app, "Mine", &["u1", "u2", "u3"]).await;
    let (theirs, their_events) = seeded(&app, "Theirs", &["x1", "x2"]).await;
    let browser = open(
        &app,
        &generate(&app, &json!({"organization": mine, "intent": "audit_logs"})).await,
    )
    .await;

    let listed = json_ok(browser.get("/audit_logs/events?limit=2").await).await;
    assert_eq!(listed["data"].as_array().unwrap().len(), 2);
    assert!(
        listed["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|event| event["organization_id"] == mine.as_str())
    );
    let named = json_ok(browser.get(&format!("/audit_logs/events?organization_id={mine}")).await).await;
    assert_eq!(
        named["data"].as_array().unwrap().len(),
        4,
        "three events and the session's record"
    );
    json_ok(browser.get(&format!("/audit_logs/events/{}", my_events[0])).await).await;

    // Another organization's ids, anywhere, are a 404: in the query, in a path, in a cursor,
    // in a body.
    for path in [
        format!("/audit_logs/events?organization_id={theirs}"),
        format!("/audit_logs/events?organization_id={mine}&organization_id={theirs}"),
        format!("/audit_logs/events/{}", their_events[0]),
        format!("/audit_logs/events?after={}", their_events[0]),
        format!("/audit_logs/events?before={}", their_events[1]),
        format!("/audit_logs/log/checkpoint?organization_id={theirs}"),
        format!("/audit_logs/log/entries?organization_id={theirs}&start=0&end=1"),
        format!(
            "/audit_logs/log/proof/inclusion?event_id={}&tree_size=2",
            their_events[0]
        ),
        format!("/audit_logs/log/proof/consistency?organization_id={theirs}&first=1&second=2"),
        "/audit_logs/exports/audit_log_export_01EHWNCE74X7JSDV0X3SZ3KJNY".to_owned(),
    ] {
        json_status(browser.get(&path).await, StatusCode::NOT_FOUND).await;
    }
    let refused = browser
        .send(
            Method::POST,
            "/audit_logs/exports",
            &json!({"organization_id": theirs, "range_start": "2026-01-01T00:00:00Z", "range_end": "2027-01-01T00:00:00Z"}),
        )
        .await;
    json_status(refused, StatusCode::NOT_FOUND).await;
    let their_export = json_status(
        app.post_json(
            "/audit_logs/exports",
            &json!({"organization_id": theirs, "range_start": "2026-01-01T00:00:00Z", "range_end": "2027-01-01T00:00:00Z"}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    json_status(
        browser
            .get(&format!("/audit_logs/exports/{}", their_export["id"].as_str().unwrap()))
            .await,
        StatusCode::NOT_FOUND,
    )
    .await;

    // The log of its own organization verifies in the browser: checkpoint, entries, proofs.
    let checkpoint = browser.get("/audit_logs/log/checkpoint").await;
    assert_eq!(checkpoint.status(), StatusCode::OK);
    assert!(checkpoint.text().await.unwrap().contains(&format!("/{mine}\n")));
    json_ok(browser.get("/audit_logs/log/public_key").await).await;
    json_ok(browser.get("/audit_logs/log/entries?start=0&end=2").await).await;
    json_ok(
        browser
            .get(&format!(
                "/audit_logs/log/proof/inclusion?event_id={}&tree_size=3",
                my_events[0]
            ))
            .await,
    )
    .await;

    // The intent bounds it: no streams from an audit_logs session, and nothing of the operator's.
    let outside = json_status(browser.get("/audit_logs/streams").await, StatusCode::FORBIDDEN).await;
    assert_eq!(outside["code"], "outside_scope");
    for path in ["/organizations", "/api_keys", "/health", "/audit_logs/actions"] {
        json_status(browser.get(path).await, StatusCode::NOT_FOUND).await;
    }
    // The cookie is no credential of the public API or the dashboard.
    for path in ["/audit_logs/events", "/dashboard/api/organizations"] {
        let response = reqwest::Client::new()
            .get(app.url(path))
            .header(header::COOKIE, &browser.cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{path}");
    }

    // A change needs the CSRF token.
    let no_csrf = browser
        .client
        .post(app.url("/portal/api/audit_logs/exports"))
        .header(header::COOKIE, &browser.cookie)
        .json(&json!({"range_start": "2026-01-01T00:00:00Z", "range_end": "2027-01-01T00:00:00Z"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        json_status(no_csrf, StatusCode::FORBIDDEN).await["code"],
        "invalid_csrf_token"
    );

    // An export through the portal is its own organization's, and is recorded.
    let export = json_status(
        browser
            .send(
                Method::POST,
                "/audit_logs/exports",
                &json!({"range_start": "2026-01-01T00:00:00Z", "range_end": "2027-01-01T00:00:00Z"}),
            )
            .await,
        StatusCode::CREATED,
    )
    .await;
    let export_id = export["id"].as_str().unwrap();
    let ready = loop {
        let polled = json_ok(browser.get(&format!("/audit_logs/exports/{export_id}")).await).await;
        if polled["state"] != "pending" {
            break polled;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(ready["state"], "ready");
    let file = reqwest::get(ready["url"].as_str().unwrap())
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(file.contains("u1 of Mine") && !file.contains("of Theirs"), "{file}");
    let trail = app.all_events(&mine).await;
    let record = trail
        .iter()
        .find(|event| event["action"] == "vellum.portal.export_created")
        .expect("the export is recorded");
    assert_eq!(record["metadata"]["export_id"], export_id);
    assert!(
        app.all_events(&theirs)
            .await
            .iter()
            .all(|event| !event["action"].as_str().unwrap().starts_with("vellum.")),
        "nothing is recorded in another organization's trail"
    );
}

#[tokio::test]
async fn a_log_streams_session_manages_its_organizations_streams_and_is_recorded() {
    let app = TestApp::spawn_with(|settings| settings.stream_allow_private_destinations = true).await;
    let (mine, _) = seeded(&app, "Streams", &["u1"]).await;
    let (theirs, _) = seeded(&app, "Other", &["x1"]).await;
    let their_stream = json_status(
        app.post_json(
            "/audit_logs/streams",
            &json!({"organization_id": theirs, "type": "GenericHttps", "config": {"url": "http://127.0.0.1:9/"}, "state": "inactive"}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let their_id = their_stream["id"].as_str().unwrap();
    let browser = open(
        &app,
        &generate(
            &app,
            &json!({"organization": mine, "intent": "log_streams", "external_user_id": "admin_1"}),
        )
        .await,
    )
    .await;

    let outside = json_status(browser.get("/audit_logs/events").await, StatusCode::FORBIDDEN).await;
    assert_eq!(outside["code"], "outside_scope");
    let created = json_status(
        browser
            .send(
                Method::POST,
                "/audit_logs/streams",
                &json!({"type": "GenericHttps", "config": {"url": "http://127.0.0.1:9/"}, "state": "inactive"}),
            )
            .await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(created["organization_id"], mine.as_str());
    let id = created["id"].as_str().unwrap();
    let listed = json_ok(browser.get("/audit_logs/streams").await).await;
    assert_eq!(listed["data"].as_array().unwrap().len(), 1);
    json_ok(browser.get(&format!("/audit_logs/streams/{id}")).await).await;

    for (method, path, body) in [
        (Method::GET, format!("/audit_logs/streams/{their_id}"), json!({})),
        (
            Method::PUT,
            format!("/audit_logs/streams/{their_id}"),
            json!({"state": "active"}),
        ),
        (Method::DELETE, format!("/audit_logs/streams/{their_id}"), json!({})),
        (
            Method::POST,
            format!("/audit_logs/streams/{their_id}/replay"),
            json!({"from_log_index": 0}),
        ),
        (
            Method::GET,
            format!("/audit_logs/streams?organization_id={theirs}"),
            json!({}),
        ),
        (
            Method::POST,
            "/audit_logs/streams".to_owned(),
            json!({"organization_id": theirs, "type": "GenericHttps", "config": {"url": "http://127.0.0.1:9/"}}),
        ),
    ] {
        json_status(browser.send(method.clone(), &path, &body).await, StatusCode::NOT_FOUND).await;
    }
    let untouched = json_ok(app.get(&format!("/audit_logs/streams/{their_id}")).await).await;
    assert_eq!(untouched["state"], "inactive");

    json_ok(
        browser
            .send(
                Method::PUT,
                &format!("/audit_logs/streams/{id}"),
                &json!({"state": "inactive"}),
            )
            .await,
    )
    .await;
    let deleted = browser
        .send(Method::DELETE, &format!("/audit_logs/streams/{id}"), &json!({}))
        .await;
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);

    let trail = app.all_events(&mine).await;
    let changes: Vec<(&str, &str)> = trail
        .iter()
        .filter(|event| event["action"] == "vellum.portal.stream_changed")
        .map(|event| {
            (
                event["metadata"]["operation"].as_str().unwrap(),
                event["metadata"]["stream_id"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(changes, vec![("deleted", id), ("updated", id), ("created", id)]);
    assert!(
        trail
            .iter()
            .filter(|event| event["action"].as_str().unwrap().starts_with("vellum.portal."))
            .all(|event| event["actor"]["id"] == "admin_1")
    );
    // The records are leaves of the log like any event: the store verifies.
    verify_store(app).await;
}

async fn verify_store(app: TestApp) {
    let data_dir = app.stop_keeping_data().await;
    let (ok, output) = crate::verify::verify(&["verify", "store", "--data-dir", data_dir.path().to_str().unwrap()]);
    assert!(ok, "{output}");
}

#[tokio::test]
async fn revoking_ends_the_sessions_and_links_of_one_admin_only() {
    let app = TestApp::spawn().await;
    let organization = app.organization("Revoked").await;
    let link = |user: &'static str| {
        let app = &app;
        let organization = organization.clone();
        async move {
            generate(
                app,
                &json!({"organization": organization, "intent": "audit_logs", "external_user_id": user}),
            )
            .await
        }
    };
    let opened = open(&app, &link("admin_1").await).await;
    let unopened = link("admin_1").await;
    let colleague = open(&app, &link("admin_2").await).await;

    for body in [
        json!({"organization": organization}),
        json!({"external_user_id": "admin_1"}),
        json!({"organization": organization, "external_user_id": 5}),
    ] {
        json_status(
            app.post_json("/portal/revoke_link", &body).await,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
    }
    let revoked = app
        .post_json(
            "/portal/revoke_link",
            &json!({"organization": organization, "external_user_id": "admin_1"}),
        )
        .await;
    assert_eq!(revoked.status(), StatusCode::NO_CONTENT);
    json_status(opened.get("/session").await, StatusCode::UNAUTHORIZED).await;
    json_status(opened.get("/audit_logs/events").await, StatusCode::UNAUTHORIZED).await;
    assert_eq!(launch(&unopened).await.status(), StatusCode::FORBIDDEN);
    json_ok(colleague.get("/audit_logs/events").await).await;
    // Revoking what is not there succeeds, and an unknown organization is a 404.
    let nothing = app
        .post_json(
            "/portal/revoke_link",
            &json!({"organization": organization, "external_user_id": "nobody"}),
        )
        .await;
    assert_eq!(nothing.status(), StatusCode::NO_CONTENT);
    json_status(
        app.post_json(
            "/portal/revoke_link",
            &json!({"organization": "org_01EHWNCE74X7JSDV0X3SZ3KJNY", "external_user_id": "admin_1"}),
        )
        .await,
        StatusCode::NOT_FOUND,
    )
    .await;

    // Deleting the organization ends every session of it.
    let deleted = app
        .request(Method::DELETE, &format!("/organizations/{organization}"))
        .send()
        .await
        .unwrap();
    assert!(deleted.status().is_success());
    json_status(colleague.get("/audit_logs/events").await, StatusCode::UNAUTHORIZED).await;
}

async fn viewer_token(app: &TestApp, body: &Value) -> Value {
    json_status(
        app.post_json("/audit_logs/viewer_tokens", body).await,
        StatusCode::CREATED,
    )
    .await
}

fn viewer(app: &TestApp, token: &str, path: &str) -> reqwest::RequestBuilder {
    reqwest::Client::new()
        .get(app.url(&format!("/viewer/api{path}")))
        .bearer_auth(token)
}

#[tokio::test]
async fn viewer_tokens_read_one_organization_narrowed_and_never_write() {
    let app = TestApp::spawn_with(|settings| {
        settings.portal.viewer_allowed_origins = vec!["https://app.customer.test".into()];
    })
    .await;
    let (mine, my_events) = seeded(&app, "Viewed", &["u1", "u2", "u1"]).await;
    let (_, their_events) = seeded(&app, "Hidden", &["x1"]).await;

    for (body, field) in [
        (json!({}), "organization_id"),
        (json!({"organization_id": mine, "expires_in": 5}), "expires_in"),
        (json!({"organization_id": mine, "expires_in": 7200}), "expires_in"),
        (json!({"organization_id": mine, "expires_in": "600"}), "expires_in"),
        (json!({"organization_id": mine, "actor_ids": "u1"}), "actor_ids"),
        (json!({"organization_id": mine, "actor_ids": [""]}), "actor_ids[0]"),
        (
            json!({"organization_id": mine, "actions": (0..21).map(|n| format!("a{n}")).collect::<Vec<_>>()}),
            "actions",
        ),
    ] {
        let refused = json_status(
            app.post_json("/audit_logs/viewer_tokens", &body).await,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
        assert!(
            refused["errors"]
                .as_array()
                .unwrap()
                .iter()
                .any(|error| error["field"] == field),
            "{body} → {refused}"
        );
    }

    let whole = viewer_token(&app, &json!({"organization_id": mine, "expires_in": 120})).await;
    let token = whole["token"].as_str().unwrap();
    assert!(token.starts_with("vt_"));
    let described = json_ok(viewer(&app, token, "/token").send().await.unwrap()).await;
    assert_eq!(described["organization_id"], mine.as_str());
    assert_eq!(described["verifiable"], true);
    let listed = json_ok(viewer(&app, token, "/audit_logs/events").send().await.unwrap()).await;
    // Three events and the record of the token's issue.
    assert_eq!(listed["data"].as_array().unwrap().len(), 4);
    assert_eq!(listed["data"][0]["action"], "vellum.viewer.token_issued");
    json_ok(
        viewer(&app, token, "/audit_logs/log/entries?start=0&end=3")
            .send()
            .await
            .unwrap(),
    )
    .await;
    for path in [
        format!("/audit_logs/events/{}", their_events[0]),
        format!("/audit_logs/events?after={}", their_events[0]),
    ] {
        json_status(viewer(&app, token, &path).send().await.unwrap(), StatusCode::NOT_FOUND).await;
    }
    // It never writes: streams are outside it, and so is the public API.
    json_status(
        viewer(&app, token, "/audit_logs/streams").send().await.unwrap(),
        StatusCode::FORBIDDEN,
    )
    .await;
    let public = reqwest::Client::new()
        .get(app.url(&format!("/audit_logs/events?organization_id={mine}")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(public.status(), StatusCode::UNAUTHORIZED);
    let ingest = reqwest::Client::new()
        .post(app.url("/viewer/api/audit_logs/events"))
        .bearer_auth(token)
        .json(&json!({"organization_id": mine, "event": {}}))
        .send()
        .await
        .unwrap();
    assert_eq!(ingest.status(), StatusCode::METHOD_NOT_ALLOWED);

    // Altered or absent tokens are refused.
    let mut altered = token.to_owned();
    altered.insert(5, 'A');
    for bad in [altered.as_str(), "vt_x.y", "sk_test"] {
        let refused = json_status(
            viewer(&app, bad, "/audit_logs/events").send().await.unwrap(),
            StatusCode::UNAUTHORIZED,
        )
        .await;
        assert_eq!(refused["code"], "invalid_viewer_token");
    }

    // Narrowed to one actor: only their events, no raw log, exports narrowed too.
    let narrow = viewer_token(&app, &json!({"organization_id": mine, "actor_ids": ["u1"]})).await;
    let narrow = narrow["token"].as_str().unwrap();
    let listed = json_ok(viewer(&app, narrow, "/audit_logs/events").send().await.unwrap()).await;
    let actors: Vec<&str> = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|event| event["actor"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(actors, vec!["u1", "u1"]);
    json_status(
        viewer(&app, narrow, &format!("/audit_logs/events/{}", my_events[1]))
            .send()
            .await
            .unwrap(),
        StatusCode::NOT_FOUND,
    )
    .await;
    json_status(
        viewer(&app, narrow, "/audit_logs/events?actor_ids=u2")
            .send()
            .await
            .unwrap(),
        StatusCode::FORBIDDEN,
    )
    .await;
    json_status(
        viewer(&app, narrow, "/audit_logs/log/entries?start=0&end=1")
            .send()
            .await
            .unwrap(),
        StatusCode::FORBIDDEN,
    )
    .await;
    let export = json_status(
        reqwest::Client::new()
            .post(app.url("/viewer/api/audit_logs/exports"))
            .bearer_auth(narrow)
            .json(&json!({"range_start": "2026-01-01T00:00:00Z", "range_end": "2027-01-01T00:00:00Z"}))
            .send()
            .await
            .unwrap(),
        StatusCode::CREATED,
    )
    .await;
    let export_id = export["id"].as_str().unwrap();
    let ready = loop {
        let polled = json_ok(
            viewer(&app, narrow, &format!("/audit_logs/exports/{export_id}"))
                .send()
                .await
                .unwrap(),
        )
        .await;
        if polled["state"] != "pending" {
            break polled;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let file = reqwest::get(ready["url"].as_str().unwrap())
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        file.contains("u1 of Viewed") && !file.contains("u2 of Viewed"),
        "{file}"
    );
    let trail = app.all_events(&mine).await;
    assert!(
        trail
            .iter()
            .any(|event| event["action"] == "vellum.viewer.export_created"
                && event["metadata"]["export_id"] == export_id)
    );
    let issued = trail
        .iter()
        .filter(|event| event["action"] == "vellum.viewer.token_issued")
        .count();
    assert_eq!(issued, 2);

    // Cross-origin: allowed origins get CORS answers, others are refused.
    let preflight = reqwest::Client::new()
        .request(Method::OPTIONS, app.url("/viewer/api/audit_logs/events"))
        .header(header::ORIGIN, "https://app.customer.test")
        .header("access-control-request-method", "GET")
        .header("access-control-request-headers", "authorization")
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        preflight.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN],
        "https://app.customer.test"
    );
    let allowed = viewer(&app, token, "/audit_logs/events")
        .header(header::ORIGIN, "https://app.customer.test")
        .send()
        .await
        .unwrap();
    assert_eq!(allowed.status(), StatusCode::OK);
    assert_eq!(
        allowed.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN],
        "https://app.customer.test"
    );
    for origin in ["https://evil.test", "https://app.customer.test.evil.test", "null"] {
        let refused = viewer(&app, token, "/audit_logs/events")
            .header(header::ORIGIN, origin)
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), StatusCode::FORBIDDEN, "{origin}");
        assert!(refused.headers().get(header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
    }
    // The embed script and its modules are served to any page; the dashboard's other files are not.
    let script = reqwest::get(app.url("/embed/viewer.js")).await.unwrap();
    assert_eq!(script.status(), StatusCode::OK);
    assert_eq!(script.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*");
    assert_eq!(
        reqwest::get(app.url("/embed/modules/viewer.js"))
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        reqwest::get(app.url("/embed/modules/dashboard.js"))
            .await
            .unwrap()
            .status(),
        StatusCode::NOT_FOUND
    );
    verify_store(app).await;
}

#[tokio::test]
async fn changes_through_a_session_or_a_token_have_a_budget() {
    let app = TestApp::spawn_with(|settings| settings.portal.changes_per_minute = 2).await;
    let (organization, _) = seeded(&app, "Budget", &["u1"]).await;
    let range = json!({"range_start": "2026-01-01T00:00:00Z", "range_end": "2027-01-01T00:00:00Z"});
    let token = viewer_token(&app, &json!({"organization_id": organization})).await;
    let token = token["token"].as_str().unwrap();
    let export = |token: &str| {
        reqwest::Client::new()
            .post(app.url("/viewer/api/audit_logs/exports"))
            .bearer_auth(token)
            .json(&range)
            .send()
    };
    for _ in 0..2 {
        assert_eq!(export(token).await.unwrap().status(), StatusCode::CREATED);
    }
    let refused = export(token).await.unwrap();
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(refused.headers().contains_key(header::RETRY_AFTER));
    // Reads go on; another token has its own budget.
    json_ok(viewer(&app, token, "/audit_logs/events").send().await.unwrap()).await;
    let other = viewer_token(&app, &json!({"organization_id": organization})).await;
    assert_eq!(
        export(other["token"].as_str().unwrap()).await.unwrap().status(),
        StatusCode::CREATED
    );
    let exports = app
        .all_events(&organization)
        .await
        .iter()
        .filter(|event| event["action"] == "vellum.viewer.export_created")
        .count();
    assert_eq!(exports, 3, "the refused export was neither made nor recorded");
}

#[tokio::test]
async fn a_narrowed_token_reads_only_exports_narrowed_as_much_and_ends_with_its_organization() {
    let app = TestApp::spawn().await;
    let (organization, _) = seeded(&app, "Narrow", &["u1", "u2"]).await;
    let range = json!({"organization_id": organization, "range_start": "2026-01-01T00:00:00Z", "range_end": "2027-01-01T00:00:00Z"});
    let whole = json_status(app.post_json("/audit_logs/exports", &range).await, StatusCode::CREATED).await;
    let mut mine = range.clone();
    mine["actor_ids"] = json!(["u1"]);
    let narrow_export = json_status(app.post_json("/audit_logs/exports", &mine).await, StatusCode::CREATED).await;
    let token = viewer_token(&app, &json!({"organization_id": organization, "actor_ids": ["u1"]})).await;
    let token = token["token"].as_str().unwrap();
    json_status(
        viewer(
            &app,
            token,
            &format!("/audit_logs/exports/{}", whole["id"].as_str().unwrap()),
        )
        .send()
        .await
        .unwrap(),
        StatusCode::NOT_FOUND,
    )
    .await;
    json_ok(
        viewer(
            &app,
            token,
            &format!("/audit_logs/exports/{}", narrow_export["id"].as_str().unwrap()),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    // Too long to be a token: refused when asked for, not when used.
    let long: Vec<String> = (0..20).map(|n| format!("{n}{}", "é".repeat(250))).collect();
    json_status(
        app.post_json(
            "/audit_logs/viewer_tokens",
            &json!({"organization_id": organization, "actor_ids": long, "actions": long}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    // Deleting the organization ends its tokens.
    let deleted = app
        .request(Method::DELETE, &format!("/organizations/{organization}"))
        .send()
        .await
        .unwrap();
    assert!(deleted.status().is_success());
    let ended = json_status(
        viewer(&app, token, "/token").send().await.unwrap(),
        StatusCode::UNAUTHORIZED,
    )
    .await;
    assert_eq!(ended["code"], "invalid_viewer_token");
}
