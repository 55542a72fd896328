//! `/audit_logs/actions` and schema versions.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, json_ok, json_status};

#[tokio::test]
async fn schemas_are_created_as_numbered_immutable_versions() {
    let app = TestApp::spawn().await;
    let first = app
        .create_schema(
            "user.signed_in",
            &json!({
                "targets": [{"type": "team", "metadata": {"type": "object", "properties": {"plan": {"type": "string"}}}}],
                "actor": {"metadata": {"type": "object", "properties": {"role": {"type": "string"}}}},
                "metadata": {"type": "object", "properties": {"ok": {"type": "boolean"}}},
            }),
        )
        .await;
    assert_eq!(first["object"], "audit_log_schema");
    assert_eq!(first["version"], 1);
    assert_eq!(first["targets"][0]["type"], "team");
    assert_eq!(first["targets"][0]["metadata"]["properties"]["plan"]["type"], "string");
    assert_eq!(first["actor"]["metadata"]["properties"]["role"]["type"], "string");
    assert_eq!(first["metadata"]["properties"]["ok"]["type"], "boolean");
    let second = app
        .create_schema(
            "user.signed_in",
            &json!({"targets": [{"type": "team"}, {"type": "user"}]}),
        )
        .await;
    assert_eq!(second["version"], 2);
    let unchanged = app
        .post_json(
            "/audit_logs/actions/user.signed_in/schemas",
            &json!({"targets": [{"type": "team"}, {"type": "user"}]}),
        )
        .await;
    assert_eq!(
        json_status(unchanged, StatusCode::CREATED).await,
        second,
        "the same definition again creates nothing, and answers 201 as WorkOS's spec says"
    );
    assert!(
        second.get("actor").is_none() && second.get("metadata").is_none(),
        "{second}"
    );

    let versions = json_ok(app.get("/audit_logs/actions/user.signed_in/schemas").await).await;
    assert_eq!(versions["object"], "list");
    assert_eq!(
        versions["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["version"].clone())
            .collect::<Vec<_>>(),
        [json!(2), json!(1)]
    );
    assert_eq!(versions["data"][1], first, "a version reads back exactly as created");

    let actions = json_ok(app.get("/audit_logs/actions").await).await;
    assert_eq!(actions["data"][0]["object"], "audit_log_action");
    assert_eq!(actions["data"][0]["name"], "user.signed_in");
    assert_eq!(
        actions["data"][0]["schema"], second,
        "an action shows its latest version"
    );
    json_status(app.get("/audit_logs/actions/nope/schemas").await, StatusCode::NOT_FOUND).await;
    app.stop().await.unwrap();
}

#[tokio::test]
async fn schema_lists_page_with_cursors() {
    let app = TestApp::spawn().await;
    for version in 0..7 {
        app.create_schema("doc.edited", &json!({"targets": [{"type": format!("doc{version}")}]}))
            .await;
    }
    for index in 0..4 {
        app.create_schema(&format!("action.{index}"), &json!({"targets": [{"type": "doc"}]}))
            .await;
    }
    let mut versions = Vec::new();
    let mut path = "/audit_logs/actions/doc.edited/schemas?limit=3".to_owned();
    loop {
        let page = json_ok(app.get(&path).await).await;
        versions.extend(
            page["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|schema| schema["version"].as_u64().unwrap()),
        );
        match page["list_metadata"]["after"].as_str() {
            Some(after) => path = format!("/audit_logs/actions/doc.edited/schemas?limit=3&after={after}"),
            None => break,
        }
    }
    assert_eq!(versions, [7, 6, 5, 4, 3, 2, 1]);

    let ascending = json_ok(app.get("/audit_logs/actions?order=asc&limit=100").await).await;
    let names: Vec<_> = ascending["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|action| action["name"].clone())
        .collect();
    assert_eq!(names, ["doc.edited", "action.0", "action.1", "action.2", "action.3"]);
    let page = json_ok(app.get("/audit_logs/actions?limit=2").await).await;
    assert_eq!(page["data"].as_array().unwrap().len(), 2);
    assert!(page["list_metadata"]["after"].as_str().unwrap().starts_with("ala_"));
    json_status(
        app.get("/audit_logs/actions?after=org_01EHWNCE74X7JSDV0X3SZ3KJNY")
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    app.stop().await.unwrap();
}

#[tokio::test]
async fn bad_schemas_are_422_and_store_nothing() {
    let app = TestApp::spawn().await;
    let cases: [(&str, Value, &str); 8] = [
        ("a.b", json!({}), "targets"),
        ("a.b", json!({"targets": []}), "targets"),
        ("a.b", json!({"targets": [{}]}), "targets.0.type"),
        (
            "a.b",
            json!({"targets": [{"type": "t"}, {"type": "t"}]}),
            "targets.1.type",
        ),
        (
            "a.b",
            json!({"targets": [{"type": "t"}], "metadata": {"type": "string"}}),
            "metadata",
        ),
        (
            "a.b",
            json!({"targets": [{"type": "t"}], "actor": {"metadata": {"properties": {"x": {"type": 5}}}}}),
            "actor.metadata",
        ),
        (
            "a.b",
            json!({"targets": [{"type": "t"}], "metadata": {"$ref": "https://example.com/s.json"}}),
            "metadata",
        ),
        ("a.b", json!({"targets": "team"}), "targets"),
    ];
    for (action, body, field) in cases {
        let response = app
            .post_json(&format!("/audit_logs/actions/{action}/schemas"), &body)
            .await;
        let error = json_status(response, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert!(
            error["errors"]
                .as_array()
                .unwrap()
                .iter()
                .any(|item| item["field"] == field),
            "{body}: {error}"
        );
    }
    let bad_name = app
        .post_json(
            "/audit_logs/actions/has%20space/schemas",
            &json!({"targets": [{"type": "t"}]}),
        )
        .await;
    json_status(bad_name, StatusCode::UNPROCESSABLE_ENTITY).await;
    let actions = json_ok(app.get("/audit_logs/actions").await).await;
    assert_eq!(actions["data"], json!([]), "nothing was stored");
    app.stop().await.unwrap();
}
