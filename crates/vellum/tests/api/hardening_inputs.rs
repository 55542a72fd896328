//! Hardening of client input, each rule as a class: list filters are bounded, time bounds are
//! exact, deleted organizations take their exports with them, stored text holds no control
//! characters where a terminal would show them raw, and numbers read back as they were accepted.

use std::process::Command;

use reqwest::StatusCode;
use serde_json::{Value, json};
use vellum_core::event::{Actor, Context, EventInput, MetadataValue, Target};
use vellum_store::NewEvent;

use crate::helpers::{TestApp, json_ok, json_status, vellum_binary};

/// An organization with a schema for `user.signed_in` (targets: `team`).
async fn organization_with_schema(app: &TestApp) -> String {
    let organization = app.organization("Hardened").await;
    app.create_schema("user.signed_in", &json!({"targets": [{"type": "team"}]}))
        .await;
    organization
}

fn event_at(occurred_at: &str) -> Value {
    json!({
        "action": "user.signed_in", "occurred_at": occurred_at,
        "actor": {"id": "u1", "type": "user", "name": "Alice"},
        "targets": [{"id": "t1", "type": "team"}],
        "context": {"location": "192.0.2.1"},
    })
}

/// The `field`s of a WorkOS-shaped 422.
fn fields(body: &Value) -> Vec<String> {
    assert_eq!(body["code"], "validation_failed", "{body}");
    body["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|error| error["field"].as_str().expect("field").to_owned())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Control characters

#[tokio::test]
async fn identifiers_names_and_context_refuse_control_characters_naming_the_path() {
    let app = TestApp::spawn().await;
    let organization = organization_with_schema(&app).await;
    let mut event = event_at("2026-01-15T12:00:00Z");
    event["actor"]["id"] = json!("a\u{0}b");
    event["actor"]["name"] = json!("del\u{7f}");
    event["targets"][0]["type"] = json!("te\u{9b}31mam");
    event["context"]["location"] = json!("\u{1b}[31m192.0.2.1");
    event["context"]["user_agent"] = json!("agent\r\nX-Injected: 1");
    let body = json_status(
        app.post_json(
            "/audit_logs/events",
            &json!({"organization_id": organization, "event": event}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(
        fields(&body),
        [
            "event.actor.id",
            "event.actor.name",
            "event.targets.0.type",
            "event.context.location",
            "event.context.user_agent"
        ]
    );

    // The batch endpoint refuses the item alone, with the same paths.
    let batch = json_ok(
        app.post_json(
            "/audit_logs/events/batch",
            &json!({"organization_id": organization, "events": [event, event_at("2026-01-15T12:00:00Z")]}),
        )
        .await,
    )
    .await;
    assert_eq!(batch["succeeded"], 1, "{batch}");
    assert_eq!(batch["data"][0]["status"], 422);
    assert_eq!(batch["data"][0]["errors"][0]["field"], "events.0.actor.id");

    // Metadata string values are free text: line breaks and other controls are kept verbatim.
    let mut free_text = event_at("2026-01-15T12:00:01Z");
    free_text["metadata"] = json!({"note": "two\nlines\u{1b}[0m\u{7f}"});
    json_ok(
        app.post_json(
            "/audit_logs/events",
            &json!({"organization_id": organization, "event": free_text}),
        )
        .await,
    )
    .await;
    let events = app.all_events(&organization).await;
    assert_eq!(events[0]["metadata"]["note"], "two\nlines\u{1b}[0m\u{7f}");

    // The legacy API already refused them; it still does.
    let legacy = json_status(
        app.post_json(
            "/events",
            &json!({
                "group": "g", "location": "\u{1b}[2J", "action": "a.b", "action_type": "C",
                "actor_name": "n", "actor_id": "i", "target_name": "t", "target_id": "x",
                "occurred_at": "2026-01-15T12:00:00Z",
            }),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(legacy["errors"][0]["field"], "location");
}

#[tokio::test]
async fn organizations_and_schemas_refuse_control_characters_naming_the_path() {
    let app = TestApp::spawn().await;
    let body = json_status(
        app.post_json(
            "/organizations",
            &json!({"name": "Acme\u{1b}[31m", "external_id": "x\u{85}", "metadata": {"k\u{0}": "v"}}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(fields(&body), ["name", "external_id", "metadata.k\u{0}"]);

    let body = json_status(
        app.post_json(
            "/audit_logs/actions/user.signed_in/schemas",
            &json!({"targets": [{"type": "team"}, {"type": "te\u{1b}am"}]}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(fields(&body), ["targets.1.type"]);
    let body = json_status(
        app.post_json(
            "/audit_logs/actions/user.%C2%9Bx/schemas",
            &json!({"targets": [{"type": "team"}]}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(fields(&body), ["action"]);
}

/// Text stored before the rule (or free text) reaches the CLI's output escaped, never raw.
#[tokio::test]
async fn cli_output_escapes_control_characters_in_stored_text() {
    let dir = tempfile::tempdir().unwrap();
    let hostile = "\u{1b}]0;owned\u{7}\u{1b}[31mred\u{9b}2J\u{7f}\u{202e}";
    let store = crate::helpers::open_store_of(dir.path()).await;
    // Written straight into the store: the API no longer accepts this text.
    let organization = store
        .create_organization(vellum_core::NewOrganization {
            name: format!("Org{hostile}"),
            external_id: Some(format!("ext{hostile}")),
            metadata: Default::default(),
            domains: Vec::new(),
            allow_profiles_outside_organization: false,
        })
        .await
        .unwrap();
    store
        .create_api_key(
            format!("key{hostile}"),
            vellum_store::generate_api_key_secret().unwrap(),
        )
        .await
        .unwrap();
    let definition = vellum_core::schema::SchemaDefinition {
        targets: vec![vellum_core::schema::TargetSchema {
            target_type: format!("team{hostile}"),
            metadata: None,
        }],
        actor_metadata: None,
        metadata: None,
    };
    store
        .create_schema(format!("user.signed_in{hostile}"), definition)
        .await
        .unwrap();
    // A NUL, which only an embedded store from before the rule can hold: PostgreSQL cannot store
    // one in text, and refuses it as bad input, storing nothing.
    let nul = if crate::helpers::on_postgres() { "" } else { "\u{0}" };
    let input = EventInput {
        action: format!("user.signed_in{hostile}"),
        occurred_at: vellum_core::Timestamp::from_unix_millis(1_768_478_400_000).unwrap(),
        version: None,
        actor: Actor {
            id: format!("a{nul}b{hostile}"),
            actor_type: "user".into(),
            name: None,
            metadata: None,
        },
        targets: vec![Target {
            id: format!("t{hostile}"),
            target_type: format!("team{hostile}"),
            name: None,
            metadata: None,
        }],
        context: Context {
            location: format!("\u{1b}[31m{hostile}"),
            user_agent: None,
        },
        metadata: Some([("note".to_owned(), MetadataValue::String(format!("free{hostile}")))].into()),
        audit_trail: None,
        system: false,
    };
    if crate::helpers::on_postgres() {
        let mut with_nul = input.clone();
        with_nul.actor.id = format!("a\u{0}b{hostile}");
        let refused = store
            .append_events(
                organization.id,
                vec![NewEvent {
                    input: with_nul,
                    schema_version: 1,
                }],
                None,
            )
            .await;
        assert!(
            matches!(refused, Err(vellum_store::StoreError::InvalidInput { .. })),
            "{refused:?}"
        );
    }
    store
        .append_events(
            organization.id,
            vec![NewEvent {
                input,
                schema_version: 1,
            }],
            None,
        )
        .await
        .unwrap();
    store.close().await.unwrap();

    let organization_id = organization.id.to_string();
    let commands: [&[&str]; 6] = [
        &["events", "list", "--organization", &organization_id],
        &["events", "list", "--organization", &organization_id, "--json"],
        &["organizations", "list"],
        &["api-keys", "list"],
        &["schemas", "list"],
        &["schemas", "list", &format!("user.signed_in{hostile}")],
    ];
    for args in commands {
        let output = Command::new(vellum_binary())
            .args(args)
            .env("VELLUM_DATA_DIR", dir.path())
            .env_remove("VELLUM_CONFIG")
            .env_remove("VELLUM_DATABASE_URL")
            .envs(crate::helpers::backend_env(dir.path()))
            .output()
            .unwrap();
        let stdout = String::from_utf8(output.stdout).unwrap();
        assert!(
            output.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let raw: Vec<char> = stdout
            .chars()
            .filter(|character| (character.is_control() && *character != '\n') || *character == '\u{202e}')
            .collect();
        assert!(raw.is_empty(), "{args:?} printed raw {raw:?}: {stdout}");
        assert!(
            stdout.contains("\\u{1b}") || stdout.contains("\\u001b"),
            "{args:?} shows the escape: {stdout}"
        );
        if args.contains(&"--json") {
            let event: Value = serde_json::from_str(stdout.trim()).expect("one JSON line");
            assert_eq!(
                event["metadata"]["note"],
                format!("free{hostile}"),
                "JSON reads back exactly"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Numbers

/// Posts a body given as text, so that numbers reach the server exactly as written.
async fn post_text(app: &TestApp, path: &str, body: String) -> reqwest::Response {
    app.request(reqwest::Method::POST, path)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap()
}

fn event_with_metadata(metadata: &str) -> String {
    format!(
        r#"{{"action": "user.signed_in", "occurred_at": "2026-01-15T12:00:00Z",
            "actor": {{"id": "u1", "type": "user", "metadata": {metadata}}},
            "targets": [{{"id": "t1", "type": "team", "metadata": {metadata}}}],
            "context": {{"location": "192.0.2.1"}}, "metadata": {metadata}}}"#
    )
}

#[tokio::test]
async fn numbers_that_would_read_back_changed_are_refused_naming_the_path() {
    let app = TestApp::spawn().await;
    let organization = organization_with_schema(&app).await;
    for number in [
        "123456789012345678901234567890",
        "18446744073709551615",
        "9007199254740993",
        "-9007199254740993",
        "1e20",
        "1e400",
        "1e-400",
        "0.10000000000000000001",
    ] {
        let event = event_with_metadata(&format!(r#"{{"n": {number}}}"#));
        let body = json_status(
            post_text(
                &app,
                "/audit_logs/events",
                format!(r#"{{"organization_id": "{organization}", "event": {event}}}"#),
            )
            .await,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
        assert_eq!(
            fields(&body),
            [
                "event.actor.metadata.n",
                "event.targets.0.metadata.n",
                "event.metadata.n"
            ],
            "{number}"
        );
        assert!(
            body["errors"]
                .as_array()
                .unwrap()
                .iter()
                .all(|error| error["code"] == "invalid_number")
        );

        let batch = json_ok(
            post_text(
                &app,
                "/audit_logs/events/batch",
                format!(r#"{{"organization_id": "{organization}", "events": [{event}]}}"#),
            )
            .await,
        )
        .await;
        assert_eq!(batch["failed"], 1, "{number}: {batch}");
        assert_eq!(batch["data"][0]["errors"][0]["field"], "events.0.actor.metadata.n");

        let legacy = format!(
            r#"{{"group": "numbers", "location": "192.0.2.1", "action": "a.b", "action_type": "C",
                "actor_name": "n", "actor_id": "i", "target_name": "t", "target_id": "x",
                "occurred_at": "2026-01-15T12:00:00Z", "latitude": {number}, "metadata": {{"n": {number}}}}}"#
        );
        let body = json_status(
            post_text(&app, "/events", legacy).await,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
        let legacy_fields: Vec<_> = body["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|error| error["field"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(legacy_fields, ["latitude", "metadata.n"], "{number}");
    }
    assert!(app.all_events(&organization).await.is_empty(), "nothing was stored");
}

#[tokio::test]
async fn accepted_numbers_read_back_with_the_value_sent() {
    let app = TestApp::spawn().await;
    let organization = organization_with_schema(&app).await;
    let metadata = r#"{"max": 9007199254740992, "min": -9007199254740992, "tenth": 0.1, "small": 1.5e-7,
                       "hundred": 1e2, "half": -0.5, "tiny": 5e-324, "sum": 0.30000000000000004}"#;
    json_ok(
        post_text(
            &app,
            "/audit_logs/events",
            format!(
                r#"{{"organization_id": "{organization}", "event": {}}}"#,
                event_with_metadata(metadata)
            ),
        )
        .await,
    )
    .await;
    let events = app.all_events(&organization).await;
    let sent: Value = serde_json::from_str(metadata).unwrap();
    for read in [
        &events[0]["metadata"],
        &events[0]["actor"]["metadata"],
        &events[0]["targets"][0]["metadata"],
    ] {
        for (key, value) in sent.as_object().unwrap() {
            assert_eq!(read[key].as_f64(), value.as_f64(), "{key}: {read}");
        }
        assert_eq!(read["max"].as_u64(), Some(9_007_199_254_740_992));
        assert_eq!(read["min"].as_i64(), Some(-9_007_199_254_740_992));
    }
    let legacy = r#"{"group": "numbers", "location": "192.0.2.1", "action": "a.b", "action_type": "C",
        "actor_name": "n", "actor_id": "i", "target_name": "t", "target_id": "x",
        "occurred_at": "2026-01-15T12:00:00Z", "latitude": 40.7128, "longitude": -74.0060,
        "metadata": {"n": 9007199254740992}}"#;
    json_status(post_text(&app, "/events", legacy.to_owned()).await, StatusCode::CREATED).await;
    let listed = json_ok(app.get("/events").await).await;
    assert_eq!(listed["data"][0]["latitude"], "40.7128");
    assert_eq!(listed["data"][0]["longitude"], "-74.006");
    assert_eq!(listed["data"][0]["metadata"]["n"].as_u64(), Some(9_007_199_254_740_992));
}

// ---------------------------------------------------------------------------------------------
// Time bounds

fn legacy_event_at(occurred_at: &str) -> Value {
    json!({
        "group": "time-bounds", "location": "192.0.2.1", "action": "doc.read", "action_type": "R",
        "actor_name": "n", "actor_id": "i", "target_name": "t", "target_id": occurred_at,
        "occurred_at": occurred_at,
    })
}

/// The `target_id`s (= the times sent) of the legacy events a query lists, oldest first.
async fn legacy_listed(app: &TestApp, query: &str) -> Vec<String> {
    let page = json_ok(app.get(&format!("/events?order=asc&limit=100&{query}")).await).await;
    page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|event| event["target_id"].as_str().unwrap().to_owned())
        .collect()
}

/// The `occurred_at`s of the events a query lists, oldest first.
async fn listed(app: &TestApp, organization: &str, query: &str) -> Vec<String> {
    let page = json_ok(
        app.get(&format!(
            "/audit_logs/events?organization_id={organization}&order=asc&limit=100&{query}"
        ))
        .await,
    )
    .await;
    page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|event| event["occurred_at"].as_str().unwrap().to_owned())
        .collect()
}

const FIRST: &str = "0000-01-01T00:00:00.000Z";
const BEFORE_EPOCH: &str = "1969-12-31T23:59:59.999Z";
const ZERO: &str = "2026-01-15T12:00:00.000Z";
const ONE: &str = "2026-01-15T12:00:00.001Z";
const LAST: &str = "9999-12-31T23:59:59.999Z";

#[tokio::test]
async fn legacy_time_bounds_are_exact_at_the_ends_of_time_and_inside_a_millisecond() {
    let app = TestApp::spawn().await;
    for time in [FIRST, BEFORE_EPOCH, ZERO, ONE, LAST] {
        json_status(
            app.post_json("/events", &legacy_event_at(time)).await,
            StatusCode::CREATED,
        )
        .await;
    }
    let all = [FIRST, BEFORE_EPOCH, ZERO, ONE, LAST].map(str::to_owned).to_vec();
    assert_eq!(legacy_listed(&app, "").await, all);
    let cases: Vec<(String, Vec<&str>)> = vec![
        // The bound plus one millisecond does not exist: nothing is after the last instant.
        (format!("occurred_at_gt={LAST}"), vec![]),
        (format!("occurred_at_gte={LAST}"), vec![LAST]),
        (format!("occurred_at={LAST}"), vec![LAST]),
        (
            format!("occurred_at_lte={LAST}"),
            all.iter().map(String::as_str).collect(),
        ),
        (format!("occurred_at_lt={LAST}"), vec![FIRST, BEFORE_EPOCH, ZERO, ONE]),
        (format!("occurred_at_lt={FIRST}"), vec![]),
        (format!("occurred_at_lte={FIRST}"), vec![FIRST]),
        (
            format!("occurred_at_gt={FIRST}&occurred_at_lt=1970-01-01T00:00:00Z"),
            vec![BEFORE_EPOCH],
        ),
        // Inside a millisecond: compared exactly, not rounded first.
        ("occurred_at_gte=2026-01-15T12:00:00.0005Z".into(), vec![ONE, LAST]),
        ("occurred_at_gt=2026-01-15T12:00:00.0005Z".into(), vec![ONE, LAST]),
        (
            "occurred_at_lt=2026-01-15T12:00:00.0005Z".into(),
            vec![FIRST, BEFORE_EPOCH, ZERO],
        ),
        (
            "occurred_at_lte=2026-01-15T12:00:00.0005Z".into(),
            vec![FIRST, BEFORE_EPOCH, ZERO],
        ),
        ("occurred_at=2026-01-15T12:00:00.0005Z".into(), vec![]),
        ("occurred_at=2026-01-15T12:00:00.000999Z".into(), vec![]),
        ("occurred_at=2026-01-15T12:00:00.001000Z".into(), vec![ONE]),
        // Offsets are applied first.
        ("occurred_at=2026-01-15T14:00:00.001%2B02:00".into(), vec![ONE]),
        ("occurred_at_gt=9999-12-31T21:59:59.999-02:00".into(), vec![]),
    ];
    for (query, expected) in cases {
        assert_eq!(legacy_listed(&app, &query).await, expected, "{query}");
    }
    // Paging through an empty range still checks the cursor.
    let body = json_status(
        app.get(&format!(
            "/events?occurred_at_gt={LAST}&after=evt_01ARZ3NDEKTSV4RRFFQ69G5FAV"
        ))
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(body["errors"][0]["field"], "after");
}

#[tokio::test]
async fn time_bounds_outside_the_four_digit_years_are_refused_naming_the_parameter() {
    let app = TestApp::spawn().await;
    let organization = organization_with_schema(&app).await;
    app.ingest_batch(&organization, vec![event_at(ZERO)]).await;
    let unreadable = [
        "10000-01-01T00:00:00Z",
        "%2B10000-01-01T00:00:00Z",
        "9999-12-31T23:00:00-02:00",
        "0000-01-01T00:00:00%2B01:00",
        "-0001-01-01T00:00:00Z",
    ];
    for text in unreadable {
        for name in [
            "occurred_at",
            "occurred_at_gt",
            "occurred_at_gte",
            "occurred_at_lt",
            "occurred_at_lte",
        ] {
            let body = json_status(
                app.get(&format!("/events?{name}={text}")).await,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await;
            assert_eq!(body["errors"][0]["field"], name, "{text}");
        }
        for name in ["range_start", "range_end"] {
            let body = json_status(
                app.get(&format!(
                    "/audit_logs/events?organization_id={organization}&{name}={text}"
                ))
                .await,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await;
            assert_eq!(fields(&body), [name], "{text}");
        }
    }
    for (start, end, field) in [
        ("9999-12-31T23:00:00-02:00", ZERO, "range_start"),
        (ZERO, "10000-01-01T00:00:00Z", "range_end"),
        (ZERO, "9999-12-31T23:59:59.9995Z", "range_end"),
    ] {
        let body = json_status(
            app.post_json(
                "/audit_logs/exports",
                &json!({"organization_id": organization, "range_start": start, "range_end": end}),
            )
            .await,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
        assert_eq!(fields(&body), [field], "{start} {end}");
    }
}

#[tokio::test]
async fn listing_and_export_ranges_are_exact_inside_a_millisecond_and_before_1970() {
    let app = TestApp::spawn().await;
    let organization = organization_with_schema(&app).await;
    app.ingest_batch(
        &organization,
        [FIRST, BEFORE_EPOCH, ZERO, ONE, LAST]
            .into_iter()
            .map(event_at)
            .collect(),
    )
    .await;
    for (query, expected) in [
        ("range_start=2026-01-15T12:00:00.0005Z", vec![ONE, LAST]),
        ("range_end=2026-01-15T12:00:00.0005Z", vec![FIRST, BEFORE_EPOCH, ZERO]),
        (
            "range_start=2026-01-15T12:00:00.0001Z&range_end=2026-01-15T12:00:00.0009Z",
            vec![],
        ),
        (
            "range_start=1969-12-31T23:59:59.9985Z&range_end=1970-01-01T00:00:00Z",
            vec![BEFORE_EPOCH],
        ),
        (&format!("range_start={LAST}"), vec![LAST]),
        (
            "range_end=9999-12-31T23:59:59.9995Z",
            vec![FIRST, BEFORE_EPOCH, ZERO, ONE, LAST],
        ),
    ] {
        assert_eq!(listed(&app, &organization, query).await, expected, "{query}");
    }

    let export = crate::exports::finished_export(
        &app,
        json!({"organization_id": organization, "range_start": "1969-12-31T23:59:59.9985Z",
               "range_end": "2026-01-15T12:00:00.0005Z"}),
    )
    .await;
    assert_eq!(export["state"], "ready", "{export}");
    let csv = crate::exports::download(export["url"].as_str().unwrap()).await;
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let occurred: Vec<String> = reader.records().map(|record| record.unwrap()[3].to_owned()).collect();
    assert_eq!(occurred, [BEFORE_EPOCH, ZERO]);

    // A range that holds no stored millisecond is an empty export (refused as WorkOS does).
    let body = json_status(
        app.post_json(
            "/audit_logs/exports",
            &json!({"organization_id": organization, "range_start": "2026-01-15T12:00:00.0001Z",
                    "range_end": "2026-01-15T12:00:00.0009Z"}),
        )
        .await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(body["code"], "no_audit_log_events_found");
}

// ---------------------------------------------------------------------------------------------
// List filters

fn values(prefix: &str, count: usize) -> Vec<String> {
    (0..count).map(|index| format!("{prefix}{index}")).collect()
}

/// `name[]=v&name[]=v…` for a query string.
fn repeated(name: &str, items: &[String]) -> String {
    items
        .iter()
        .map(|item| format!("{name}[]={item}"))
        .collect::<Vec<_>>()
        .join("&")
}

#[tokio::test]
async fn export_lists_are_bounded_with_a_422_naming_the_field_never_a_500() {
    let app = TestApp::spawn().await;
    let organization = organization_with_schema(&app).await;
    app.ingest_batch(&organization, vec![event_at(ZERO)]).await;
    let base = json!({"organization_id": organization, "range_start": FIRST, "range_end": LAST});
    let with = |name: &str, list: Vec<String>| {
        let mut body = base.clone();
        body[name] = json!(list);
        body
    };
    // The reported case: about 33,000 values, once a 500 ("too many SQL variables").
    for name in ["actions", "actor_ids", "actor_names", "actors", "targets"] {
        let response = app
            .post_json("/audit_logs/exports", &with(name, values("x", 33_000)))
            .await;
        let body = json_status(response, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert_eq!(fields(&body), [name], "{name}");
        let body = json_status(
            app.post_json("/audit_logs/exports", &with(name, values("x", 101)))
                .await,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
        assert_eq!(fields(&body), [name], "{name}");
    }
    // `actors` and `actor_names` are one list.
    let mut body = with("actor_names", values("a", 60));
    body["actors"] = json!(values("b", 60));
    let body = json_status(
        app.post_json("/audit_logs/exports", &body).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(fields(&body), ["actor_names"]);

    // The limit itself, in every list at once, is a query the store runs.
    let mut body = base.clone();
    for (name, first) in [
        ("actions", "user.signed_in"),
        ("actor_ids", "u1"),
        ("actor_names", "Alice"),
        ("targets", "team"),
    ] {
        let mut list = values("x", 99);
        list.push(first.to_owned());
        body[name] = json!(list);
    }
    let export = crate::exports::finished_export(&app, body).await;
    assert_eq!(export["state"], "ready", "{export}");
    assert_eq!(export["events"], 1);
}

#[tokio::test]
async fn listing_filters_are_bounded_in_both_apis_and_organizations() {
    let app = TestApp::spawn().await;
    let organization = organization_with_schema(&app).await;
    app.ingest_batch(&organization, vec![event_at(ZERO)]).await;
    json_status(
        app.post_json("/events", &legacy_event_at(ZERO)).await,
        StatusCode::CREATED,
    )
    .await;

    for name in ["actions", "actor_ids", "actor_names", "targets", "target_ids"] {
        let body = json_status(
            app.get(&format!(
                "/audit_logs/events?organization_id={organization}&{}",
                repeated(name, &values("x", 101))
            ))
            .await,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
        assert_eq!(fields(&body), [name]);
    }
    let mut all_lists = format!("/audit_logs/events?organization_id={organization}");
    for (name, first) in [
        ("actions", "user.signed_in"),
        ("actor_ids", "u1"),
        ("actor_names", "Alice"),
        ("targets", "team"),
        ("target_ids", "t1"),
    ] {
        let mut list = values("x", 99);
        list.push(first.to_owned());
        all_lists.push('&');
        all_lists.push_str(&repeated(name, &list));
    }
    let page = json_ok(app.get(&all_lists).await).await;
    assert_eq!(page["data"].as_array().unwrap().len(), 1, "{page}");

    let legacy_lists = [
        "group",
        "action",
        "action_type",
        "actor_name",
        "actor_id",
        "target_name",
        "target_id",
    ];
    for name in legacy_lists {
        let body = json_status(
            app.get(&format!("/events?{}", repeated(name, &values("x", 101)))).await,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
        assert_eq!(
            body["errors"].as_array().unwrap().len(),
            1,
            "one error, not one per value"
        );
        assert_eq!(body["errors"][0]["field"], name);
    }
    let mut all_lists = "/events?".to_owned();
    for (name, first) in [
        ("group", "time-bounds"),
        ("action", "doc.read"),
        ("action_type", "R"),
        ("actor_name", "n"),
        ("actor_id", "i"),
        ("target_name", "t"),
        ("target_id", ZERO),
    ] {
        let mut list = if name == "action_type" {
            ["C", "U", "D", "c", "u", "d"]
                .iter()
                .cycle()
                .take(99)
                .map(|letter| (*letter).to_owned())
                .collect()
        } else {
            values("x", 99)
        };
        list.push(first.to_owned());
        all_lists.push_str(&repeated(name, &list));
        all_lists.push('&');
    }
    let page = json_ok(app.get(&all_lists).await).await;
    assert_eq!(page["data"].as_array().unwrap().len(), 1, "{page}");

    let domains: Vec<String> = (0..101).map(|index| format!("d{index}.example.com")).collect();
    let body = json_status(
        app.get(&format!("/organizations?domains={}", domains.join(","))).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(fields(&body), ["domains"]);
    json_ok(
        app.get(&format!("/organizations?domains={}", domains[..100].join(",")))
            .await,
    )
    .await;
}

#[tokio::test]
async fn search_terms_are_bounded_and_nothing_long_is_a_500() {
    let app = TestApp::spawn().await;
    let organization = organization_with_schema(&app).await;
    app.ingest_batch(&organization, vec![event_at(ZERO)]).await;
    // 30,000 underscores once made SQLite refuse the escaped LIKE pattern (over 50,000 bytes,
    // "too complex"): a 500.
    for (length, status) in [
        (1024, StatusCode::OK),
        (1025, StatusCode::UNPROCESSABLE_ENTITY),
        (30_000, StatusCode::UNPROCESSABLE_ENTITY),
    ] {
        let term = "_".repeat(length);
        for path in [
            format!("/audit_logs/events?organization_id={organization}&search={term}"),
            format!("/events?search={term}"),
            format!("/organizations?search={term}"),
        ] {
            let body = json_status(app.get(&path).await, status).await;
            if status != StatusCode::OK {
                assert_eq!(body["errors"][0]["field"], "search", "{length}");
            }
        }
    }
    // Arithmetic on client numbers never overflows into a 500 either.
    let response = app
        .get(&format!(
            "/audit_logs/log/entries?organization_id={organization}&start={}",
            u64::MAX
        ))
        .await;
    assert!(response.status().is_client_error(), "{}", response.status());
}

// ---------------------------------------------------------------------------------------------
// Deleted organizations

/// Asserts the WorkOS-shaped 404 of an unknown object.
async fn not_found(response: reqwest::Response, message: &str) {
    let body = json_status(response, StatusCode::NOT_FOUND).await;
    assert_eq!(body, json!({"message": message, "code": "entity_not_found"}));
}

#[tokio::test]
async fn a_deleted_organizations_exports_and_other_objects_answer_404() {
    let app = TestApp::spawn().await;
    let organization = organization_with_schema(&app).await;
    let ids = app
        .ingest_batch(&organization, vec![event_at(ZERO), event_at(ONE)])
        .await;
    let range = json!({"organization_id": organization, "range_start": FIRST, "range_end": LAST});
    let csv = crate::exports::finished_export(&app, range.clone()).await;
    let mut ndjson_request = range.clone();
    ndjson_request["format"] = json!("ndjson");
    let ndjson = crate::exports::finished_export(&app, ndjson_request).await;
    let links: Vec<String> = [&csv, &ndjson]
        .iter()
        .map(|export| export["url"].as_str().unwrap().to_owned())
        .collect();
    for link in &links {
        crate::exports::download(link).await;
    }
    // A fresh link, signed before the deletion and still within its 10 minutes.
    let fresh = json_ok(
        app.get(&format!("/audit_logs/exports/{}", csv["id"].as_str().unwrap()))
            .await,
    )
    .await;

    let response = app
        .request(reqwest::Method::DELETE, &format!("/organizations/{organization}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);

    for export in [&csv, &ndjson] {
        let id = export["id"].as_str().unwrap();
        not_found(
            app.get(&format!("/audit_logs/exports/{id}")).await,
            &format!("Audit Log Export not found: '{id}'."),
        )
        .await;
    }
    for (link, export) in links
        .iter()
        .chain([fresh["url"].as_str().unwrap().to_owned()].iter())
        .zip([&csv, &ndjson, &csv])
    {
        let id = export["id"].as_str().unwrap();
        not_found(
            app.client.get(link).send().await.unwrap(),
            &format!("Audit Log Export not found: '{id}'."),
        )
        .await;
    }
    // Exactly as an export that never existed.
    let unknown = "audit_log_export_01ARZ3NDEKTSV4RRFFQ69G5FAV";
    not_found(
        app.get(&format!("/audit_logs/exports/{unknown}")).await,
        &format!("Audit Log Export not found: '{unknown}'."),
    )
    .await;

    // Every other route that names an object of the organization.
    let event = &ids[0];
    not_found(
        app.get(&format!("/audit_logs/events/{event}")).await,
        &format!("Audit log event not found: '{event}'."),
    )
    .await;
    let organization_gone = format!("Organization not found: '{organization}'.");
    for path in [
        format!("/audit_logs/events?organization_id={organization}"),
        format!("/audit_logs/log/checkpoint?organization_id={organization}"),
        format!("/audit_logs/log/proof/inclusion?organization_id={organization}&event_id={event}"),
        format!("/audit_logs/log/proof/consistency?organization_id={organization}&first=1&second=2"),
        format!("/audit_logs/log/entries?organization_id={organization}"),
        format!("/organizations/{organization}/audit_logs_retention"),
        format!("/organizations/{organization}/audit_log_configuration"),
        format!("/organizations/{organization}"),
    ] {
        not_found(app.get(&path).await, &organization_gone).await;
    }
    not_found(app.post_json("/audit_logs/exports", &range).await, &organization_gone).await;
}

#[tokio::test]
async fn a_pending_export_of_a_deleted_organization_is_never_written() {
    let data = tempfile::tempdir().unwrap();
    // Left pending by an earlier process, whose organization was deleted since.
    let store = crate::helpers::open_store_of(data.path()).await;
    let organization = store
        .create_organization(vellum_core::NewOrganization {
            name: "Gone".into(),
            external_id: None,
            metadata: Default::default(),
            domains: Vec::new(),
            allow_profiles_outside_organization: false,
        })
        .await
        .unwrap();
    let input = EventInput {
        action: "user.signed_in".into(),
        occurred_at: vellum_core::Timestamp::from_unix_millis(1_768_478_400_000).unwrap(),
        version: None,
        actor: Actor {
            id: "u1".into(),
            actor_type: "user".into(),
            name: None,
            metadata: None,
        },
        targets: Vec::new(),
        context: Context {
            location: "192.0.2.1".into(),
            user_agent: None,
        },
        metadata: None,
        audit_trail: None,
        system: false,
    };
    store
        .append_events(
            organization.id,
            vec![NewEvent {
                input,
                schema_version: 1,
            }],
            None,
        )
        .await
        .unwrap();
    let filter = vellum_core::export::ExportFilter {
        range_start: vellum_core::Timestamp::MIN,
        range_end: vellum_core::Timestamp::MAX,
        actions: Vec::new(),
        actor_names: Vec::new(),
        actor_ids: Vec::new(),
        target_types: Vec::new(),
    };
    let export = store
        .create_export(organization.id, vellum_core::export::ExportFormat::Csv, filter)
        .await
        .unwrap();
    store.delete_organization(organization.id).await.unwrap();
    store.close().await.unwrap();

    // The server resumes pending exports at start.
    let data_dir = data.path().to_owned();
    let app = TestApp::spawn_with(move |settings| settings.data_dir = data_dir).await;
    let reader = crate::helpers::open_store_of(data.path()).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let finished = loop {
        let current = reader.get_export(export.id).await.unwrap();
        if current.state != vellum_core::export::ExportState::Pending {
            break current;
        }
        assert!(std::time::Instant::now() < deadline, "the export stayed pending");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    reader.close().await.unwrap();
    assert_eq!(finished.state, vellum_core::export::ExportState::Error);
    assert_eq!(finished.error.as_deref(), Some(vellum_export::DELETED_ORGANIZATION));
    assert_eq!(finished.object_path, None);
    let files: Vec<_> = walk(&data.path().join("exports"));
    assert!(files.is_empty(), "no export file was written: {files:?}");
    not_found(
        app.get(&format!("/audit_logs/exports/{}", export.id)).await,
        &format!("Audit Log Export not found: '{}'.", export.id),
    )
    .await;
}

/// Every file under a directory (none when it does not exist).
fn walk(directory: &std::path::Path) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(directory) else {
        return Vec::new();
    };
    entries
        .flatten()
        .flat_map(|entry| {
            let path = entry.path();
            if path.is_dir() { walk(&path) } else { vec![path] }
        })
        .collect()
}
