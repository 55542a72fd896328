//! `POST /audit_logs/events` and the batch endpoint: validation, schemas, idempotency.

use std::sync::Arc;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, json_ok, json_status};

/// A server with one organization and a schema for `user.signed_in` (targets `team`, `user`;
/// event metadata must carry boolean `ok` when present, actor `role` a string).
async fn app_with_schema() -> (TestApp, String) {
    let app = TestApp::spawn().await;
    let organization = app.organization("Acme").await;
    app.create_schema(
        "user.signed_in",
        &json!({
            "targets": [
                {"type": "team"},
                {"type": "user", "metadata": {"type": "object", "properties": {"seats": {"type": "number"}}, "required": ["seats"]}},
            ],
            "actor": {"metadata": {"type": "object", "properties": {"role": {"type": "string"}}}},
            "metadata": {"type": "object", "properties": {"ok": {"type": "boolean"}}},
        }),
    )
    .await;
    (app, organization)
}

fn event() -> Value {
    json!({
        "action": "user.signed_in",
        "occurred_at": "2026-01-15T12:00:00.000Z",
        "actor": {"id": "user_1", "type": "user", "name": "Jon Smith", "metadata": {"role": "admin"}},
        "targets": [{"id": "team_1", "type": "team", "name": "Team One"}],
        "context": {"location": "192.0.2.1", "user_agent": "Mozilla/5.0"},
        "metadata": {"ok": true},
    })
}

/// Sets `value` at a dotted path inside `target` (`actor.metadata.role`), or removes the field
/// when `value` is `None`.
fn with(mut target: Value, path: &str, value: Option<Value>) -> Value {
    let mut parts: Vec<&str> = path.split('.').collect();
    let last = parts.pop().unwrap();
    let mut cursor = &mut target;
    for part in parts {
        cursor = match part.parse::<usize>() {
            Ok(index) => &mut cursor[index],
            Err(_) => &mut cursor[part],
        };
    }
    match value {
        Some(value) => match last.parse::<usize>() {
            Ok(index) => cursor[index] = value,
            Err(_) => {
                cursor.as_object_mut().unwrap().insert(last.to_owned(), value);
            }
        },
        None => {
            cursor.as_object_mut().unwrap().remove(last);
        }
    }
    target
}

async fn post_event(app: &TestApp, organization: &str, event: &Value) -> reqwest::Response {
    app.post_json(
        "/audit_logs/events",
        &json!({ "organization_id": organization, "event": event }),
    )
    .await
}

#[tokio::test]
async fn a_valid_event_is_acknowledged_and_stored_with_id_time_and_version() {
    let (app, organization) = app_with_schema().await;
    let response = post_event(&app, &organization, &event()).await;
    assert_eq!(json_status(response, StatusCode::OK).await, json!({"success": true}));
    let events = app.all_events(&organization).await;
    assert_eq!(events.len(), 1);
    let stored = &events[0];
    assert!(stored["id"].as_str().unwrap().starts_with("audit_log_event_"));
    assert_eq!(stored["object"], "audit_log_event");
    assert_eq!(stored["organization_id"], organization);
    assert_eq!(stored["version"], 1);
    assert_eq!(stored["occurred_at"], "2026-01-15T12:00:00.000Z");
    assert!(stored["received_at"].as_str().unwrap() > "2026-01-16");
    for field in ["action", "actor", "targets", "context", "metadata"] {
        assert_eq!(stored[field], event()[field], "{field} is stored as sent");
    }
    let by_id = json_ok(
        app.get(&format!("/audit_logs/events/{}", stored["id"].as_str().unwrap()))
            .await,
    )
    .await;
    assert_eq!(&by_id, stored);
    json_status(
        app.get("/audit_logs/events/audit_log_event_01EHWNCE74X7JSDV0X3SZ3KJNY")
            .await,
        StatusCode::NOT_FOUND,
    )
    .await;
    json_status(app.get("/audit_logs/events/nonsense").await, StatusCode::NOT_FOUND).await;
    app.stop().await.unwrap();
}

#[tokio::test]
async fn occurred_at_accepts_every_sdk_form() {
    let (app, organization) = app_with_schema().await;
    let accepted = [
        ("2026-01-15T12:00:00Z", "2026-01-15T12:00:00.000Z"),
        ("2026-01-15T12:00:00.5Z", "2026-01-15T12:00:00.500Z"),
        ("2026-01-15T12:00:00.123456Z", "2026-01-15T12:00:00.123Z"),
        ("2026-01-15T12:00:00.123456789+02:00", "2026-01-15T10:00:00.123Z"),
        ("2026-01-15T12:00:00.000-05:30", "2026-01-15T17:30:00.000Z"),
        ("2026-01-15T12:00:00.250", "2026-01-15T12:00:00.250Z"),
    ];
    for (sent, _) in accepted {
        let response = post_event(&app, &organization, &with(event(), "occurred_at", Some(json!(sent)))).await;
        assert_eq!(response.status(), StatusCode::OK, "{sent}");
    }
    let mut stored: Vec<String> = app
        .all_events(&organization)
        .await
        .iter()
        .map(|event| event["occurred_at"].as_str().unwrap().to_owned())
        .collect();
    stored.sort();
    let mut expected: Vec<String> = accepted
        .iter()
        .map(|(_, normalised)| (*normalised).to_owned())
        .collect();
    expected.sort();
    assert_eq!(stored, expected);

    for sent in [
        json!("yesterday"),
        json!("2026-01-15"),
        json!("2026-02-30T00:00:00Z"),
        json!(1736942400),
    ] {
        let response = post_event(&app, &organization, &with(event(), "occurred_at", Some(sent.clone()))).await;
        let body = json_status(response, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert_eq!(body["errors"][0]["field"], "event.occurred_at", "{sent}: {body}");
    }
    assert_eq!(app.all_events(&organization).await.len(), accepted.len());
    app.stop().await.unwrap();
}

#[tokio::test]
async fn malformed_events_are_422_naming_the_field_and_store_nothing() {
    let (app, organization) = app_with_schema().await;
    let many: serde_json::Map<String, Value> = (0..51).map(|n| (format!("k{n}"), json!("v"))).collect();
    let cases: Vec<(Value, &str, &str)> = vec![
        (with(event(), "action", None), "event.action", "required"),
        (with(event(), "occurred_at", None), "event.occurred_at", "required"),
        (with(event(), "actor", None), "event.actor", "required"),
        (with(event(), "actor.id", None), "event.actor.id", "required"),
        (with(event(), "actor.type", None), "event.actor.type", "required"),
        (with(event(), "targets", None), "event.targets", "required"),
        (with(event(), "targets.0.id", None), "event.targets.0.id", "required"),
        (
            with(event(), "targets.0.type", Some(json!(""))),
            "event.targets.0.type",
            "required",
        ),
        (with(event(), "context", None), "event.context", "required"),
        (
            with(event(), "context.location", None),
            "event.context.location",
            "required",
        ),
        (with(event(), "version", Some(json!(0))), "event.version", "invalid"),
        (
            with(event(), "version", Some(json!("2"))),
            "event.version",
            "invalid_type",
        ),
        (
            with(event(), "actor.id", Some(json!(5))),
            "event.actor.id",
            "invalid_type",
        ),
        (
            with(event(), "metadata", Some(Value::Object(many))),
            "event.metadata",
            "too_many_keys",
        ),
        (
            with(event(), "metadata", Some(json!({"bad key": "x"}))),
            "event.metadata.bad key",
            "invalid_key",
        ),
        (
            with(event(), "metadata", Some(json!({"k": "x".repeat(501)}))),
            "event.metadata.k",
            "too_long",
        ),
        (
            with(event(), "metadata", Some(json!({"k": {"nested": 1}}))),
            "event.metadata.k",
            "invalid_type",
        ),
        (
            with(event(), "metadata", Some(json!({"k": [1]}))),
            "event.metadata.k",
            "invalid_type",
        ),
        (
            with(event(), "metadata", Some(json!({"k": null}))),
            "event.metadata.k",
            "invalid_type",
        ),
        (
            with(event(), "actor.metadata", Some(json!({"k": {}}))),
            "event.actor.metadata.k",
            "invalid_type",
        ),
        (
            with(event(), "targets.0.metadata", Some(json!({"k": []}))),
            "event.targets.0.metadata.k",
            "invalid_type",
        ),
    ];
    for (body, field, code) in cases {
        let error = json_status(
            post_event(&app, &organization, &body).await,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
        assert_eq!(error["message"], "Validation failed.");
        assert!(
            error["errors"]
                .as_array()
                .unwrap()
                .iter()
                .any(|item| item["field"] == field && item["code"] == code),
            "expected {field}/{code}: {error}"
        );
    }
    let missing = json_status(
        app.post_json("/audit_logs/events", &json!({})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    let fields: Vec<_> = missing["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["field"].clone())
        .collect();
    assert_eq!(fields, ["organization_id", "event"]);

    // The limits themselves are accepted.
    let fifty: serde_json::Map<String, Value> = (0..50).map(|n| (format!("k{n}"), json!(n))).collect();
    let at_limits = with(
        with(event(), "metadata", Some(Value::Object(fifty))),
        "actor.metadata",
        Some(json!({"role": "x".repeat(500), "n": 1.5, "b": false})),
    );
    assert_eq!(
        post_event(&app, &organization, &at_limits).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        app.all_events(&organization).await.len(),
        1,
        "only the valid event was stored"
    );
    app.stop().await.unwrap();
}

#[tokio::test]
async fn events_that_do_not_match_their_schema_are_400_with_instance_paths() {
    let (app, organization) = app_with_schema().await;
    let cases: Vec<(Value, &str)> = vec![
        (with(event(), "action", Some(json!("no.schema"))), "/action"),
        (with(event(), "version", Some(json!(9))), "/version"),
        (with(event(), "targets.0.type", Some(json!("repo"))), "/targets/0/type"),
        (with(event(), "metadata.ok", Some(json!("yes"))), "/metadata/ok"),
        (
            with(event(), "actor.metadata.role", Some(json!(7))),
            "/actor/metadata/role",
        ),
        (
            with(event(), "targets", Some(json!([{"id": "u", "type": "user"}]))),
            "/targets/0/metadata",
        ),
        (
            with(
                event(),
                "targets",
                Some(json!([{"id": "u", "type": "user", "metadata": {"seats": "ten"}}])),
            ),
            "/targets/0/metadata/seats",
        ),
    ];
    for (body, path) in cases {
        let error = json_status(post_event(&app, &organization, &body).await, StatusCode::BAD_REQUEST).await;
        assert_eq!(error["message"], "Invalid Audit Log event.");
        assert_eq!(error["code"], "invalid_audit_log_event");
        assert!(
            error["errors"]
                .as_array()
                .unwrap()
                .iter()
                .any(|item| item["instancePath"] == path),
            "{path}: {error}"
        );
    }
    let ok_target = with(
        event(),
        "targets",
        Some(json!([{"id": "u", "type": "user", "metadata": {"seats": 10}}])),
    );
    assert_eq!(
        post_event(&app, &organization, &ok_target).await.status(),
        StatusCode::OK
    );
    assert_eq!(app.all_events(&organization).await.len(), 1);

    let unknown = json_status(
        post_event(&app, "org_01EHWNCE74X7JSDV0X3SZ3KJNY", &event()).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    assert_eq!(
        unknown["message"],
        "Organization not found: 'org_01EHWNCE74X7JSDV0X3SZ3KJNY'."
    );
    json_status(post_event(&app, "not-an-org", &event()).await, StatusCode::NOT_FOUND).await;
    app.stop().await.unwrap();
}

#[tokio::test]
async fn omitted_version_means_the_latest_and_a_named_version_is_honoured() {
    let (app, organization) = app_with_schema().await;
    // Version 2 allows only `repo` targets.
    app.create_schema("user.signed_in", &json!({"targets": [{"type": "repo"}]}))
        .await;
    let team_event = event();
    let repo_event = with(event(), "targets", Some(json!([{"id": "r", "type": "repo"}])));

    json_status(
        post_event(&app, &organization, &team_event).await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(
        post_event(&app, &organization, &repo_event).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        post_event(&app, &organization, &with(team_event, "version", Some(json!(1))))
            .await
            .status(),
        StatusCode::OK
    );
    json_status(
        post_event(&app, &organization, &with(repo_event, "version", Some(json!(1)))).await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    let versions: Vec<_> = app
        .all_events(&organization)
        .await
        .iter()
        .map(|event| event["version"].clone())
        .collect();
    // Same occurred_at: the later arrival (validated against version 1) lists first.
    assert_eq!(versions, [json!(1), json!(2)]);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn idempotency_keys_replay_refuse_and_are_scoped_per_organization() {
    let (app, organization) = app_with_schema().await;
    let other = app.organization("Other").await;
    let send = |organization: String, key: &'static str, event: Value| {
        let request = app
            .request(reqwest::Method::POST, "/audit_logs/events")
            .header("Idempotency-Key", key)
            .json(&json!({ "organization_id": organization, "event": event }));
        async move { request.send().await.unwrap() }
    };
    for _ in 0..3 {
        let response = send(organization.clone(), "key-1", event()).await;
        assert_eq!(json_status(response, StatusCode::OK).await, json!({"success": true}));
    }
    assert_eq!(app.all_events(&organization).await.len(), 1, "replays store nothing");

    // A retry is answered as the first request was, even after the schema changed under it.
    app.create_schema("user.signed_in", &json!({"targets": [{"type": "repo"}]}))
        .await;
    let retried = send(organization.clone(), "key-1", event()).await;
    assert_eq!(json_status(retried, StatusCode::OK).await, json!({"success": true}));
    assert_eq!(app.all_events(&organization).await.len(), 1);
    app.create_schema(
        "user.signed_in",
        &json!({"targets": [{"type": "team"}, {"type": "user"}]}),
    )
    .await;

    let reused = json_status(
        send(
            organization.clone(),
            "key-1",
            with(event(), "actor.id", Some(json!("user_2"))),
        )
        .await,
        StatusCode::CONFLICT,
    )
    .await;
    assert_eq!(reused["code"], "idempotency_key_reused");
    assert_eq!(
        send(organization.clone(), "key-2", event()).await.status(),
        StatusCode::OK,
        "a new key is a new event"
    );
    assert_eq!(
        send(other.clone(), "key-1", event()).await.status(),
        StatusCode::OK,
        "keys are per organization"
    );
    assert_eq!(app.all_events(&organization).await.len(), 2);
    assert_eq!(app.all_events(&other).await.len(), 1);

    let empty_key = app
        .request(reqwest::Method::POST, "/audit_logs/events")
        .header("Idempotency-Key", "")
        .json(&json!({ "organization_id": organization, "event": event() }))
        .send()
        .await
        .unwrap();
    json_status(empty_key, StatusCode::UNPROCESSABLE_ENTITY).await;
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_concurrent_identical_requests_store_one_event() {
    let (app, organization) = app_with_schema().await;
    let app = Arc::new(app);
    let mut requests = Vec::new();
    for _ in 0..20 {
        let app = Arc::clone(&app);
        let organization = organization.clone();
        requests.push(tokio::spawn(async move {
            app.request(reqwest::Method::POST, "/audit_logs/events")
                .header("Idempotency-Key", "workos-node-6f1c2d0a-concurrent")
                .json(&json!({ "organization_id": organization, "event": event() }))
                .send()
                .await
                .unwrap()
                .status()
        }));
    }
    for request in requests {
        assert_eq!(request.await.unwrap(), StatusCode::OK);
    }
    assert_eq!(app.all_events(&organization).await.len(), 1);
}

#[tokio::test]
async fn a_batch_commits_the_valid_events_and_reports_each_failure() {
    let (app, organization) = app_with_schema().await;
    let batch = json!({
        "organization_id": organization,
        "events": [
            event(),
            with(event(), "actor", None),
            with(event(), "targets.0.type", Some(json!("repo"))),
            with(event(), "occurred_at", Some(json!("2026-01-15T13:00:00Z"))),
            "not an event",
        ],
    });
    let result = json_ok(app.post_json("/audit_logs/events/batch", &batch).await).await;
    assert_eq!(result["succeeded"], 2);
    assert_eq!(result["failed"], 3);
    let items = result["data"].as_array().unwrap();
    assert_eq!(items.len(), 5);
    assert_eq!(items[0]["success"], true);
    assert!(items[0]["id"].as_str().unwrap().starts_with("audit_log_event_"));
    assert_eq!(
        (items[1]["status"].clone(), items[1]["errors"][0]["field"].clone()),
        (json!(422), json!("events.1.actor"))
    );
    assert_eq!(
        (items[2]["status"].clone(), items[2]["code"].clone()),
        (json!(400), json!("invalid_audit_log_event"))
    );
    assert_eq!(items[2]["errors"][0]["instancePath"], "/targets/0/type");
    assert_eq!(items[3]["success"], true);
    assert_eq!(items[4]["errors"][0]["field"], "events.4");

    let stored = app.all_events(&organization).await;
    let stored_ids: Vec<_> = stored.iter().map(|event| event["id"].clone()).collect();
    assert_eq!(stored_ids, [items[3]["id"].clone(), items[0]["id"].clone()]);

    // The same batch with an Idempotency-Key replays the same answer.
    let send = || {
        app.request(reqwest::Method::POST, "/audit_logs/events/batch")
            .header("Idempotency-Key", "batch-1")
            .json(&batch)
            .send()
    };
    let first = json_ok(send().await.unwrap()).await;
    let replayed = json_ok(send().await.unwrap()).await;
    assert_eq!(first, replayed);
    assert_eq!(app.all_events(&organization).await.len(), 4);

    for (body, field) in [
        (json!({"organization_id": organization}), "events"),
        (json!({"organization_id": organization, "events": []}), "events"),
        (
            json!({"organization_id": organization, "events": vec![event(); 1001]}),
            "events",
        ),
        (json!({"events": [event()]}), "organization_id"),
    ] {
        let error = json_status(
            app.post_json("/audit_logs/events/batch", &body).await,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
        assert_eq!(error["errors"][0]["field"], field);
    }
    let full = json!({"organization_id": organization, "events": vec![event(); 1000]});
    assert_eq!(
        json_ok(app.post_json("/audit_logs/events/batch", &full).await).await["succeeded"],
        1000
    );
    assert_eq!(app.all_events(&organization).await.len(), 1004);
    app.stop().await.unwrap();
}
