//! The legacy Audit Trail API (`POST /events`, `GET /events`): the flat shape, every filter in
//! both array spellings, keyword search, keyset paging both ways and in every order, idempotent
//! replay, every validation error (each changing nothing), the group → organization mapping,
//! and that legacy events are ordinary events of their organization's log and exports.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::exports::{download, finished_export, verify_export};
use crate::helpers::{TestApp, json_ok, json_status};
use crate::verify::verify;

fn legacy_event(group: &str) -> Value {
    json!({
        "group": group,
        "location": "192.0.2.8",
        "action": "document.updated",
        "action_type": "U",
        "actor_name": "jane@foo-corp.com",
        "actor_id": "user_1",
        "target_name": "Security Audit 2018",
        "target_id": "document_39127",
        "occurred_at": "2020-08-14T05:04:17.957Z",
        "metadata": {"description": "Changed the title"}
    })
}

async fn create(app: &TestApp, body: &Value) {
    let created = json_status(app.post_json("/events", body).await, StatusCode::CREATED).await;
    assert_eq!(created, json!({"success": true}));
}

async fn list(app: &TestApp, query: &str) -> Value {
    json_ok(app.get(&format!("/events?{query}")).await).await
}

/// The `occurred_at` seconds of the listed events, in order.
async fn seconds(app: &TestApp, query: &str) -> Vec<u64> {
    list(app, &format!("limit=100&{query}")).await["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|event| event["occurred_at"].as_str().unwrap()[17..19].parse().unwrap())
        .collect()
}

fn ids(page: &Value) -> Vec<String> {
    page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|event| event["id"].as_str().unwrap().to_owned())
        .collect()
}

/// Five events in two groups, one per second from :01 to :05.
async fn seed(app: &TestApp) {
    let rows = [
        ("acme.com", "user.login", "R", "Jane", "user_1", "Console", "app_1"),
        ("acme.com", "document.created", "C", "Jane", "user_1", "Plan", "doc_1"),
        (
            "globex.com",
            "document.updated",
            "U",
            "Bob, Jr.",
            "user_2",
            "Plan",
            "doc_2",
        ),
        (
            "acme.com",
            "document.deleted",
            "D",
            "Bob, Jr.",
            "user_2",
            "Budget",
            "doc_3",
        ),
        ("globex.com", "user.login", "r", "Ann", "user_3", "Console", "app_1"),
    ];
    for (second, (group, action, action_type, actor_name, actor_id, target_name, target_id)) in (1..).zip(rows) {
        create(
            app,
            &json!({
                "group": group,
                "location": format!("10.0.0.{second}"),
                "action": action,
                "action_type": action_type,
                "actor_name": actor_name,
                "actor_id": actor_id,
                "target_name": target_name,
                "target_id": target_id,
                "occurred_at": format!("2021-01-01T00:00:0{second}.000Z"),
                "metadata": {"note": format!("row {second}")}
            }),
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_legacy_event_reads_back_flat_and_in_its_organizations_log() {
    let app = TestApp::spawn().await;
    let mut body = legacy_event("foo-corp.com");
    body["latitude"] = json!("37.7749");
    body["action_type"] = json!("u");
    create(&app, &body).await;

    let page = list(&app, "").await;
    assert_eq!(page["object"], "list");
    assert_eq!(page["list_metadata"], json!({"before": null, "after": null}));
    let event = &page["data"][0];
    let id = event["id"].as_str().unwrap();
    assert!(id.starts_with("evt_") && id.len() == 4 + 26, "{id}");
    let action_id = event["action"]["id"].as_str().unwrap();
    assert!(
        action_id.starts_with("evt_action_") && action_id.len() == 11 + 26,
        "{action_id}"
    );
    let organization_id = event["organization_id"].as_str().unwrap().to_owned();
    assert_eq!(
        event,
        &json!({
            "object": "event",
            "id": id,
            "group": "foo-corp.com",
            "location": "192.0.2.8",
            "latitude": "37.7749",
            "longitude": null,
            "action": {"object": "event_action", "id": action_id, "name": "document.updated"},
            "action_type": "u",
            "type": "u",
            "actor_name": "jane@foo-corp.com",
            "actor_id": "user_1",
            "target_name": "Security Audit 2018",
            "target_id": "document_39127",
            "metadata": {"description": "Changed the title"},
            "occurred_at": "2020-08-14T05:04:17.957Z",
            "organization_id": organization_id,
            "audit_log_event_id": id.replacen("evt_", "audit_log_event_", 1),
        })
    );

    // The group became an organization (name and external id = group); a second event of the
    // group goes to the same one, and the action id is the same for the same action.
    let organization = json_ok(app.get(&format!("/organizations/{organization_id}")).await).await;
    assert_eq!(
        (organization["name"].as_str(), organization["external_id"].as_str()),
        (Some("foo-corp.com"), Some("foo-corp.com"))
    );
    create(&app, &legacy_event("foo-corp.com")).await;
    let page = list(&app, "").await;
    assert_eq!(page["data"].as_array().unwrap().len(), 2);
    assert_eq!(page["data"][0]["organization_id"], organization_id);
    assert_eq!(page["data"][0]["action"]["id"], action_id);
    assert_eq!(app.count_organizations().await, 1);

    // The newer read API shows the same event, with its legacy fields.
    let newer = app.all_events(&organization_id).await;
    assert_eq!(newer.len(), 2);
    let same = newer.iter().find(|event| event["id"] == event_id(id)).unwrap();
    assert_eq!(same["version"], 0);
    assert_eq!(
        same["actor"],
        json!({"id": "user_1", "type": "actor", "name": "jane@foo-corp.com"})
    );
    assert_eq!(
        same["targets"],
        json!([{"id": "document_39127", "type": "target", "name": "Security Audit 2018"}])
    );
    assert_eq!(
        same["audit_trail"],
        json!({"action_type": "u", "group": "foo-corp.com", "latitude": "37.7749"})
    );
    let got = json_ok(app.get(&format!("/audit_logs/events/{}", event_id(id))).await).await;
    assert_eq!(&got, same);

    // It is in the organization's verifiable log: `vellum verify log` recomputes it.
    let (ok, output) = verify(&[
        "verify",
        "log",
        "--url",
        &app.address,
        "--api-key",
        &app.api_key,
        "--organization",
        &organization_id,
    ]);
    assert!(ok, "{output}");
    assert!(output.contains("2 entries"), "{output}");

    // And in its NDJSON export, which verifies offline.
    let keys = json_ok(app.get("/audit_logs/log/public_key").await).await;
    let export = finished_export(
        &app,
        json!({
            "organization_id": organization_id,
            "range_start": "2020-01-01T00:00:00Z",
            "range_end": "2021-01-01T00:00:00Z",
            "format": "ndjson",
        }),
    )
    .await;
    assert_eq!(export["state"], "ready", "{export}");
    let text = download(export["url"].as_str().unwrap()).await;
    assert!(text.contains("\"audit_trail\":{\"action_type\":\"u\""), "{text}");
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("export.ndjson");
    std::fs::write(&path, &text).unwrap();
    let (ok, output) = verify_export(&path, keys["verifier_key"].as_str().unwrap());
    assert!(ok, "{output}");

    // The store verifies too, after a clean stop.
    let data_dir = app.stop_keeping_data().await;
    let (ok, output) = verify(&["verify", "store", "--data-dir", data_dir.path().to_str().unwrap()]);
    assert!(ok, "{output}");
}

/// Sends `count` identical `POST /events` at once and returns their statuses.
async fn concurrently(app: &TestApp, count: usize, idempotency_key: Option<&str>, body: &Value) -> Vec<StatusCode> {
    let mut requests = tokio::task::JoinSet::new();
    for _ in 0..count {
        let mut request = app.request(Method::POST, "/events").json(body);
        if let Some(key) = idempotency_key {
            request = request.header("Idempotency-Key", key);
        }
        requests.spawn(async move { request.send().await.unwrap().status() });
    }
    requests.join_all().await
}

fn event_id(legacy_id: &str) -> String {
    legacy_id.replacen("evt_", "audit_log_event_", 1)
}

#[tokio::test]
async fn a_group_names_an_organization_by_id_or_external_id_else_gets_one() {
    let app = TestApp::spawn().await;
    let by_id = app.organization("Initech").await;
    let by_external = app
        .create_organization(&json!({"name": "Umbrella", "external_id": "umbrella-123"}))
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    create(&app, &legacy_event(&by_id)).await;
    create(&app, &legacy_event("umbrella-123")).await;
    assert_eq!(app.count_organizations().await, 2, "no organization was created");
    let page = list(&app, "").await;
    assert_eq!(page["data"][0]["organization_id"], by_external);
    assert_eq!(page["data"][0]["group"], "umbrella-123");
    assert_eq!(page["data"][1]["organization_id"], by_id);
    assert_eq!(page["data"][1]["group"], by_id);

    // An organization id that names no live organization is refused, and creates nothing.
    let unknown = "org_01EHWNCE74X7JSDV0X3SZ3KJNY";
    let refused = json_status(
        app.post_json("/events", &legacy_event(unknown)).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(
        refused["errors"],
        json!([{"field": "group", "code": format!("group {unknown} names no live organization")}])
    );
    assert_eq!(app.count_organizations().await, 2);

    // Many first events of one new group at once create exactly one organization.
    for status in concurrently(&app, 16, None, &legacy_event("newcorp.example")).await {
        assert_eq!(status, StatusCode::CREATED);
    }
    assert_eq!(app.count_organizations().await, 3);
    let page = list(&app, "group=newcorp.example&limit=100").await;
    let organizations: std::collections::BTreeSet<_> = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|event| event["organization_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!((page["data"].as_array().unwrap().len(), organizations.len()), (16, 1));

    // A deleted organization's events leave /events (its log is kept), and its group starts a
    // new organization.
    let response = app
        .request(Method::DELETE, &format!("/organizations/{by_external}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(seconds(&app, "group=umbrella-123").await, Vec::<u64>::new());
    create(&app, &legacy_event("umbrella-123")).await;
    let page = list(&app, "group=umbrella-123").await;
    assert_ne!(page["data"][0]["organization_id"], by_external);
}

#[tokio::test]
async fn only_legacy_events_are_listed_and_the_api_key_is_required() {
    let app = TestApp::spawn().await;
    let organization = app.organization("Acme").await;
    app.create_schema("user.signed_in", &json!({"targets": [{"type": "team"}]}))
        .await;
    let newer = json!({
        "action": "user.signed_in",
        "occurred_at": "2026-01-15T12:00:00.000Z",
        "actor": {"id": "user_1", "type": "user"},
        "targets": [{"id": "team_1", "type": "team"}],
        "context": {"location": "192.0.2.1"}
    });
    let ids = app.ingest_batch(&organization, vec![newer]).await;
    create(&app, &legacy_event(&organization)).await;
    let page = list(&app, "").await;
    assert_eq!(page["data"].as_array().unwrap().len(), 1);
    assert_eq!(page["data"][0]["group"], organization);
    // A newer event's id is no cursor here.
    let cursor = ids[0].replacen("audit_log_event_", "evt_", 1);
    let refused = json_status(
        app.get(&format!("/events?after={cursor}")).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(refused["errors"][0]["field"], "after");

    for (method, body) in [(Method::GET, None), (Method::POST, Some(legacy_event("x.com")))] {
        let mut request = app.client.request(method, app.url("/events"));
        if let Some(body) = &body {
            request = request.json(body);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    assert_eq!(app.count_organizations().await, 1);
}

#[tokio::test]
async fn every_filter_in_both_array_forms_combinations_and_search() {
    let app = TestApp::spawn().await;
    seed(&app).await;
    assert_eq!(seconds(&app, "").await, [5, 4, 3, 2, 1]);
    for (query, expected) in [
        ("group=acme.com", vec![4, 2, 1]),
        ("group[]=globex.com", vec![5, 3]),
        ("group=acme.com&group=globex.com", vec![5, 4, 3, 2, 1]),
        ("group[]=acme.com&group[]=nobody.com", vec![4, 2, 1]),
        ("action=user.login", vec![5, 1]),
        ("action[]=document.created&action[]=document.deleted", vec![4, 2]),
        ("action_type=R", vec![5, 1]),
        ("action_type=r", vec![5, 1]),
        ("action_type[]=c&action_type[]=D", vec![4, 2]),
        ("actor_name=Bob,%20Jr.", vec![4, 3]),
        ("actor_name[]=Ann&actor_name[]=Jane", vec![5, 2, 1]),
        ("actor_id=user_2", vec![4, 3]),
        ("actor_id=user_1&actor_id=user_3", vec![5, 2, 1]),
        ("target_name=Plan", vec![3, 2]),
        ("target_name[]=Budget&target_name[]=Console", vec![5, 4, 1]),
        ("target_id=app_1", vec![5, 1]),
        ("target_id[]=doc_1&target_id=doc_2", vec![3, 2]),
        ("occurred_at=2021-01-01T00:00:03.000Z", vec![3]),
        ("occurred_at=2021-01-01T00:00:03Z", vec![3]),
        ("occurred_at_gt=2021-01-01T00:00:03.000Z", vec![5, 4]),
        ("occurred_at_gte=2021-01-01T00:00:03.000Z", vec![5, 4, 3]),
        ("occurred_at_lt=2021-01-01T00:00:03.000Z", vec![2, 1]),
        ("occurred_at_lte=2021-01-01T00:00:03.000Z", vec![3, 2, 1]),
        (
            "occurred_at_gt=2021-01-01T00:00:01.000Z&occurred_at_lte=2021-01-01T00:00:04.000Z",
            vec![4, 3, 2],
        ),
        (
            "occurred_at_gte=2021-01-01T00:00:04.000Z&occurred_at_lt=2021-01-01T00:00:02.000Z",
            vec![],
        ),
        ("occurred_at_gte=2021-01-01T02:00:02%2B02:00", vec![5, 4, 3, 2]),
        // Combinations.
        ("group=acme.com&actor_id=user_2", vec![4]),
        ("action=user.login&target_id=app_1&actor_name=Jane", vec![1]),
        (
            "action_type=C&action_type=U&action_type=D&occurred_at_gte=2021-01-01T00:00:03Z",
            vec![4, 3],
        ),
        ("group=globex.com&action_type=C", vec![]),
        ("group=acme.com&search=plan", vec![2]),
        // Keyword search: every text field and metadata, ignoring case.
        ("search=budget", vec![4]),
        ("search=ROW%203", vec![3]),
        ("search=document.", vec![4, 3, 2]),
        ("search=globex", vec![5, 3]),
        ("search=10.0.0.5", vec![5]),
        ("search=bob,%20jr", vec![4, 3]),
        ("search=user_3", vec![5]),
        ("search=100%25", vec![]),
        ("search=", vec![5, 4, 3, 2, 1]),
    ] {
        assert_eq!(seconds(&app, query).await, expected, "{query}");
    }
}

#[tokio::test]
async fn cursors_page_both_ways_in_every_order() {
    let app = TestApp::spawn().await;
    seed(&app).await;
    let newest_first = ids(&list(&app, "limit=100").await);
    let oldest_first: Vec<String> = newest_first.iter().rev().cloned().collect();

    for (order, expected) in [
        ("desc", &newest_first),
        ("normal", &newest_first),
        ("asc", &oldest_first),
        ("Order.Asc", &oldest_first),
        ("Order.Desc", &newest_first),
    ] {
        // Forward with `after` (with `normal`, forward is `before`).
        let (forward, backward) = if order == "normal" {
            ("before", "after")
        } else {
            ("after", "before")
        };
        let mut walked = Vec::new();
        let mut cursor: Option<String> = None;
        let last_page = loop {
            let mut query = format!("limit=2&order={order}");
            if let Some(cursor) = &cursor {
                query.push_str(&format!("&{forward}={cursor}"));
            }
            let page = list(&app, &query).await;
            walked.extend(ids(&page));
            match page["list_metadata"][forward].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => break page,
            }
        };
        assert_eq!(&walked, expected, "order {order}");
        // And back from the last page.
        let mut walked_back = ids(&last_page);
        let mut cursor = last_page["list_metadata"][backward].as_str().map(str::to_owned);
        while let Some(previous) = cursor {
            let page = list(&app, &format!("limit=2&order={order}&{backward}={previous}")).await;
            walked_back.splice(0..0, ids(&page));
            cursor = page["list_metadata"][backward].as_str().map(str::to_owned);
        }
        assert_eq!(&walked_back, expected, "order {order}, backwards");
    }

    // A cursor with a filter and a time range.
    let page = list(&app, "limit=1&group=acme.com&occurred_at_lt=2021-01-01T00:00:04Z").await;
    assert_eq!(ids(&page), [newest_first[3].clone()]);
    let next = list(
        &app,
        &format!(
            "limit=1&group=acme.com&occurred_at_lt=2021-01-01T00:00:04Z&after={}",
            page["list_metadata"]["after"].as_str().unwrap()
        ),
    )
    .await;
    assert_eq!(ids(&next), [newest_first[4].clone()]);
    assert_eq!(next["list_metadata"]["after"], Value::Null);
}

#[tokio::test]
async fn an_idempotency_key_replays_and_refuses_reuse() {
    let app = TestApp::spawn().await;
    let send = |key: &str, body: &Value| {
        app.request(Method::POST, "/events")
            .header("Idempotency-Key", key)
            .json(body)
            .send()
    };
    let body = legacy_event("acme.com");
    for _ in 0..3 {
        let response = send("key-1", &body).await.unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
        assert_eq!(response.json::<Value>().await.unwrap(), json!({"success": true}));
    }
    assert_eq!(seconds(&app, "").await.len(), 1);
    let mut other = body.clone();
    other["actor_id"] = json!("user_2");
    let refused = send("key-1", &other).await.unwrap();
    assert_eq!(refused.status(), StatusCode::CONFLICT);
    assert_eq!(refused.json::<Value>().await.unwrap()["code"], "idempotency_key_reused");
    assert_eq!(send("key-2", &other).await.unwrap().status(), StatusCode::CREATED);
    assert_eq!(seconds(&app, "").await.len(), 2);

    // Concurrent retries of one request store it once.
    for status in concurrently(&app, 8, Some("key-3"), &body).await {
        assert_eq!(status, StatusCode::CREATED);
    }
    assert_eq!(seconds(&app, "").await.len(), 3);

    let too_long = "k".repeat(1025);
    let refused = json_status(send(&too_long, &body).await.unwrap(), StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(refused["errors"][0]["field"], "Idempotency-Key");
    assert!(
        refused["errors"][0]["code"]
            .as_str()
            .unwrap()
            .contains("1 to 1024 bytes"),
        "{refused}"
    );
    assert_eq!(seconds(&app, "").await.len(), 3);
}

#[tokio::test]
async fn every_invalid_event_is_a_legacy_422_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let with = |changes: Value| {
        let mut body = legacy_event("acme.com");
        for (name, value) in changes.as_object().unwrap() {
            if value.is_null() {
                body.as_object_mut().unwrap().remove(name);
            } else {
                body[name] = value.clone();
            }
        }
        body
    };
    let many_keys: serde_json::Map<String, Value> = (0..51).map(|n| (format!("k{n}"), json!("v"))).collect();
    let cases = [
        (with(json!({"group": null})), "group", "group must be a string"),
        (with(json!({"group": ""})), "group", "group must be a non-empty string"),
        (
            with(json!({"group": "g".repeat(256)})),
            "group",
            "group must be at most 255 characters long",
        ),
        (with(json!({"location": null})), "location", "location must be a string"),
        (with(json!({"location": 7})), "location", "location must be a string"),
        (with(json!({"latitude": true})), "latitude", "latitude must be a string"),
        (
            with(json!({"longitude": {}})),
            "longitude",
            "longitude must be a string",
        ),
        (with(json!({"action": null})), "action", "action must be a string"),
        (
            with(json!({"action": ""})),
            "action",
            "action must be a non-empty string",
        ),
        (
            with(json!({"action": "a".repeat(129)})),
            "action",
            "action must be at most 128 characters long",
        ),
        (
            with(json!({"action": "user\nlogin"})),
            "action",
            "action must not contain control characters",
        ),
        (
            with(json!({"action_type": null})),
            "action_type",
            "action_type must be a string",
        ),
        (
            with(json!({"action_type": "X"})),
            "action_type",
            "action_type must be one of C, R, U or D",
        ),
        (
            with(json!({"action_type": "create"})),
            "action_type",
            "action_type must be one of C, R, U or D",
        ),
        (
            with(json!({"actor_name": null})),
            "actor_name",
            "actor_name must be a string",
        ),
        (
            with(json!({"actor_id": ["user_1"]})),
            "actor_id",
            "actor_id must be a string",
        ),
        (
            with(json!({"target_name": null})),
            "target_name",
            "target_name must be a string",
        ),
        (
            with(json!({"target_id": 39127})),
            "target_id",
            "target_id must be a string",
        ),
        (
            with(json!({"target_id": "t".repeat(1025)})),
            "target_id",
            "target_id must be at most 1024 characters long",
        ),
        (
            with(json!({"occurred_at": null})),
            "occurred_at",
            "occurred_at must be a string",
        ),
        (
            with(json!({"occurred_at": "yesterday"})),
            "occurred_at",
            "occurred_at must be an ISO 8601 date string",
        ),
        (
            with(json!({"occurred_at": 1_597_381_457})),
            "occurred_at",
            "occurred_at must be a string",
        ),
        (
            with(json!({"metadata": "text"})),
            "metadata",
            "metadata must be an object",
        ),
        (
            with(json!({"metadata": Value::Object(many_keys)})),
            "metadata",
            "metadata must have at most 50 keys",
        ),
        (
            with(json!({"metadata": {"k".repeat(41): "v"}})),
            &*format!("metadata.{}", "k".repeat(41)),
            "metadata keys must be at most 40 printable ASCII characters",
        ),
        (
            with(json!({"metadata": {"long": "x".repeat(501)}})),
            "metadata.long",
            "metadata values must be at most 500 characters long",
        ),
        (
            with(json!({"metadata": {"nested": {"a": "b"}}})),
            "metadata.nested",
            "metadata.nested must be a string",
        ),
        (
            with(json!({"metadata": {"list": ["a"]}})),
            "metadata.list",
            "metadata.list must be a string",
        ),
    ];
    for (body, field, code) in &cases {
        let refused = json_status(app.post_json("/events", body).await, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert_eq!(refused["message"], "Validation failed", "{body}");
        assert_eq!(refused["errors"], json!([{"field": field, "code": code}]), "{body}");
    }
    // Every problem is reported at once, in field order.
    let refused = json_status(
        app.post_json("/events", &json!({})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    let fields: Vec<&str> = refused["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|error| error["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        [
            "group",
            "location",
            "action",
            "action_type",
            "actor_name",
            "actor_id",
            "target_name",
            "target_id",
            "occurred_at"
        ]
    );

    // Malformed JSON is a 400, JSON that is not an object a 422; a body that is not JSON is a 415.
    for body in ["[]", "\"text\"", "{\"group\": "] {
        let response = app
            .request(Method::POST, "/events")
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let expected = if body.starts_with('{') {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::UNPROCESSABLE_ENTITY
        };
        assert_eq!(response.status(), expected, "{body}");
    }
    let response = app
        .request(Method::POST, "/events")
        .header("content-type", "text/plain")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);

    // Limits that hold: 50 keys of 40 characters, values of 500, empty names and ids.
    let fifty: serde_json::Map<String, Value> =
        (0..50).map(|n| (format!("{n:0>40}"), json!("x".repeat(500)))).collect();
    create(
        &app,
        &with(json!({"metadata": Value::Object(fifty), "target_id": "", "actor_name": "", "location": ""})),
    )
    .await;
    assert_eq!(seconds(&app, "").await.len(), 1, "only the valid event was stored");
    assert_eq!(
        app.count_organizations().await,
        1,
        "refused events created no organization"
    );
}

#[tokio::test]
async fn invalid_list_parameters_are_legacy_422s() {
    let app = TestApp::spawn().await;
    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=ten", "limit"),
        ("order=sideways", "order"),
        ("after=evt_123", "after"),
        ("before=audit_log_event_01EHWNCE74X7JSDV0X3SZ3KJNY", "before"),
        (
            "before=evt_01EHWNCE74X7JSDV0X3SZ3KJNY&after=evt_01EHWNCE74X7JSDV0X3SZ3KJNY",
            "before",
        ),
        ("action_type=create", "action_type"),
        ("occurred_at=yesterday", "occurred_at"),
        ("occurred_at_gt=2021-13-01T00:00:00Z", "occurred_at_gt"),
        ("occurred_at_gte=1", "occurred_at_gte"),
        ("occurred_at_lt=x", "occurred_at_lt"),
        ("occurred_at_lte=x", "occurred_at_lte"),
        (
            "occurred_at_lte=2021-01-01T00:00:00Z&occurred_at_lte=2021-01-02T00:00:00Z",
            "occurred_at_lte",
        ),
        ("search=a&search=b", "search"),
    ] {
        let refused = json_status(
            app.get(&format!("/events?{query}")).await,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
        assert_eq!(refused["message"], "Validation failed", "{query}");
        assert_eq!(refused["errors"][0]["field"], field, "{query}: {refused}");
        assert!(
            refused["errors"][0]["code"].as_str().unwrap().contains(' '),
            "a sentence: {refused}"
        );
    }
    // A well-formed cursor of no event.
    let refused = json_status(
        app.get("/events?after=evt_01EHWNCE74X7JSDV0X3SZ3KJNY").await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(refused["errors"][0]["field"], "after");
}

/// WorkOS's newer Events API shares `GET /events`; its SDKs always send `events` (comma-joined
/// event types, empty for an empty list). Vellum does not serve it: such a request gets a 404
/// that says so, whatever else it carries, and changes nothing.
#[tokio::test]
async fn the_newer_events_api_is_a_404_that_names_it() {
    let app = TestApp::spawn().await;
    let organization = app.organization("Acme").await;
    create(&app, &legacy_event(&organization)).await;
    let before = list(&app, "limit=100").await;
    assert_eq!(before["data"].as_array().unwrap().len(), 1);

    for query in [
        "events=dsync.user.created".to_owned(),
        format!(
            "events=dsync.user.created%2Cdsync.user.updated&organization_id={organization}\
             &range_start=2025-01-01T00%3A00%3A00.000Z&range_end=2025-12-31T00%3A00%3A00.000Z&limit=10"
        ),
        "events=".to_owned(),
        "events[]=dsync.user.created".to_owned(),
        // The 404 comes before any check of the other parameters.
        "events=dsync.user.created&limit=0&order=sideways".to_owned(),
        "group=acme.com&events=dsync.user.created".to_owned(),
    ] {
        let refused = json_status(app.get(&format!("/events?{query}")).await, StatusCode::NOT_FOUND).await;
        assert_eq!(refused["code"], "events_api_not_supported", "{query}: {refused}");
        let message = refused["message"].as_str().unwrap();
        assert!(
            message.contains("does not serve WorkOS's Events API") && message.contains("GET /audit_logs/events"),
            "{query}: {message}"
        );
    }

    // Without a key the answer is still the 401: nothing is said about the API before the key.
    let anonymous = app
        .client
        .get(app.url("/events?events=dsync.user.created"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);

    // The legacy list is untouched, parameters named like `events` but not it included.
    assert_eq!(list(&app, "limit=100").await, before);
    assert_eq!(list(&app, "limit=100&eventsx=1&event=1").await, before);
    assert_eq!(app.count_organizations().await, 1);
    app.stop().await.unwrap();
}
