use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestApp, json_ok, json_status};

fn is_wire_timestamp(value: &Value) -> bool {
    let text = value.as_str().unwrap_or_default();
    let bytes = text.as_bytes();
    text.len() == 24
        && bytes[4] == b'-'
        && bytes[10] == b'T'
        && bytes[19] == b'.'
        && text.ends_with('Z')
        && bytes[20..23].iter().all(u8::is_ascii_digit)
}

async fn assert_validation_error(response: reqwest::Response, field: &str, code: &str) -> Value {
    let body = json_status(response, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(body["message"], "Validation failed.");
    let errors = body["errors"].as_array().expect("errors array");
    assert!(
        errors
            .iter()
            .any(|error| error["field"] == field && error["code"] == code),
        "expected {field}/{code} in {body}"
    );
    body
}

#[tokio::test]
async fn create_returns_the_workos_shape_and_get_returns_the_same() {
    let app = TestApp::spawn().await;
    let created = app
        .create_organization(&json!({
            "name": "  Foo Corp  ",
            "domain_data": [{"domain": "Foo-Corp.com", "state": "verified"}, {"domain": "foo.io"}],
            "external_id": "crm-42",
            "metadata": {"tier": "enterprise"},
        }))
        .await;
    assert_eq!(created["object"], "organization");
    let id = created["id"].as_str().unwrap();
    assert!(id.starts_with("org_") && id.len() == 30, "{id}");
    assert_eq!(created["name"], "Foo Corp");
    assert_eq!(created["external_id"], "crm-42");
    assert_eq!(created["metadata"], json!({"tier": "enterprise"}));
    assert_eq!(created["allow_profiles_outside_organization"], false);
    assert!(
        is_wire_timestamp(&created["created_at"]) && is_wire_timestamp(&created["updated_at"]),
        "{created}"
    );
    let domains = created["domains"].as_array().unwrap();
    assert_eq!(domains.len(), 2);
    assert_eq!(domains[0]["object"], "organization_domain");
    assert_eq!(domains[0]["domain"], "foo-corp.com");
    assert_eq!(domains[0]["state"], "verified");
    assert_eq!(domains[1]["state"], "pending");
    assert_eq!(domains[0]["organization_id"], id);
    assert!(domains[0]["id"].as_str().unwrap().starts_with("org_domain_"));

    let fetched = json_ok(app.get(&format!("/organizations/{id}")).await).await;
    assert_eq!(fetched, created);
    let by_external_id = json_ok(app.get("/organizations/external_id/crm-42").await).await;
    assert_eq!(by_external_id, created);

    let minimal = app
        .create_organization(&json!({"name": "Bare", "domains": ["bare.dev"]}))
        .await;
    assert_eq!(minimal["external_id"], Value::Null, "external_id is present and null");
    assert_eq!(minimal["metadata"], json!({}));
    assert_eq!(minimal["domains"][0]["domain"], "bare.dev");
    app.stop().await.unwrap();
}

#[tokio::test]
async fn invalid_creations_name_the_field_and_store_nothing() {
    let app = TestApp::spawn().await;
    let many_keys: serde_json::Map<String, Value> = (0..51).map(|n| (format!("k{n}"), json!("v"))).collect();
    let cases = [
        (json!({}), "name", "required"),
        (json!({"name": "   "}), "name", "required"),
        (json!({"name": "x".repeat(256)}), "name", "too_long"),
        (json!({"name": 42}), "name", "invalid_type"),
        (
            json!({"name": "A", "domains": ["not a domain"]}),
            "domains.0.domain",
            "invalid_domain",
        ),
        (
            json!({"name": "A", "domains": ["a.com", "A.com"]}),
            "domains.1.domain",
            "duplicate",
        ),
        (
            json!({"name": "A", "domains": ["a.com"], "domain_data": []}),
            "domains",
            "conflict",
        ),
        (
            json!({"name": "A", "domain_data": [{"domain": "a.com", "state": "sure"}]}),
            "domain_data.0.state",
            "invalid",
        ),
        (
            json!({"name": "A", "domain_data": [{"state": "pending"}]}),
            "domain_data.0.domain",
            "required",
        ),
        (json!({"name": "A", "external_id": ""}), "external_id", "invalid"),
        (json!({"name": "A", "metadata": {"k": 5}}), "metadata.k", "invalid_type"),
        (
            json!({"name": "A", "metadata": {"k": "v".repeat(601)}}),
            "metadata.k",
            "too_long",
        ),
        (
            json!({"name": "A", "metadata": {"k".repeat(41): "v"}}),
            &format!("metadata.{}", "k".repeat(41)),
            "invalid_key",
        ),
        (json!({"name": "A", "metadata": many_keys}), "metadata", "too_many_keys"),
        (json!(["name"]), "body", "invalid_type"),
    ];
    for (body, field, code) in cases {
        assert_validation_error(app.post_json("/organizations", &body).await, field, code).await;
    }
    let both = assert_validation_error(
        app.post_json("/organizations", &json!({"domains": ["bad"]})).await,
        "name",
        "required",
    )
    .await;
    assert_eq!(
        both["errors"].as_array().unwrap().len(),
        2,
        "every problem is reported at once: {both}"
    );
    assert_eq!(app.count_organizations().await, 0);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn external_ids_are_unique_among_live_organizations() {
    let app = TestApp::spawn().await;
    let first = app
        .create_organization(&json!({"name": "One", "external_id": "ext-1"}))
        .await;
    let conflict = json_status(
        app.post_json("/organizations", &json!({"name": "Two", "external_id": "ext-1"}))
            .await,
        StatusCode::CONFLICT,
    )
    .await;
    assert!(conflict["message"].as_str().unwrap().contains("ext-1"), "{conflict}");
    assert_eq!(app.count_organizations().await, 1);

    let second = app.create_organization(&json!({"name": "Two"})).await;
    let path = format!("/organizations/{}", second["id"].as_str().unwrap());
    json_status(
        app.send_json(Method::PUT, &path, &json!({"external_id": "ext-1"}))
            .await,
        StatusCode::CONFLICT,
    )
    .await;
    assert_eq!(
        json_ok(app.get(&path).await).await,
        second,
        "a refused update changes nothing"
    );

    let first_path = format!("/organizations/{}", first["id"].as_str().unwrap());
    assert_eq!(
        app.request(Method::DELETE, &first_path).send().await.unwrap().status(),
        StatusCode::NO_CONTENT
    );
    let reused = json_ok(
        app.send_json(Method::PUT, &path, &json!({"external_id": "ext-1"}))
            .await,
    )
    .await;
    assert_eq!(reused["external_id"], "ext-1", "deleting frees the external id");
    app.stop().await.unwrap();
}

#[tokio::test]
async fn updates_change_only_what_they_name() {
    let app = TestApp::spawn().await;
    let created = app
        .create_organization(&json!({
            "name": "Acme",
            "external_id": "acme",
            "metadata": {"a": "1"},
            "domain_data": [{"domain": "acme.com", "state": "pending"}],
        }))
        .await;
    let path = format!("/organizations/{}", created["id"].as_str().unwrap());

    let renamed = json_ok(app.send_json(Method::PUT, &path, &json!({"name": "Acme Inc"})).await).await;
    assert_eq!(renamed["name"], "Acme Inc");
    for field in ["external_id", "metadata", "domains", "created_at", "id"] {
        assert_eq!(renamed[field], created[field], "{field} unchanged");
    }

    let changed = json_ok(
        app.send_json(
            Method::PUT,
            &path,
            &json!({
                "external_id": null,
                "metadata": {"b": "2"},
                "domain_data": [{"domain": "acme.com", "state": "verified"}, {"domain": "acme.io", "state": "pending"}],
                "stripe_customer_id": "cus_123",
            }),
        )
        .await,
    )
    .await;
    assert_eq!(changed["external_id"], Value::Null);
    assert_eq!(changed["metadata"], json!({"b": "2"}));
    assert_eq!(changed["stripe_customer_id"], "cus_123");
    assert_eq!(
        changed["domains"][0]["id"], created["domains"][0]["id"],
        "a kept domain keeps its id"
    );
    assert_eq!(changed["domains"][0]["state"], "verified");
    assert_eq!(changed["domains"][1]["domain"], "acme.io");
    assert!(changed["updated_at"].as_str() >= created["updated_at"].as_str());
    assert_eq!(json_ok(app.get(&path).await).await, changed);

    assert_validation_error(
        app.send_json(Method::PUT, &path, &json!({"name": ""})).await,
        "name",
        "required",
    )
    .await;
    assert_eq!(
        json_ok(app.get(&path).await).await,
        changed,
        "a rejected update changes nothing"
    );

    let missing = json_status(
        app.send_json(
            Method::PUT,
            "/organizations/org_01EHWNCE74X7JSDV0X3SZ3KJNY",
            &json!({"name": "X"}),
        )
        .await,
        StatusCode::NOT_FOUND,
    )
    .await;
    assert_eq!(
        missing["message"],
        "Organization not found: 'org_01EHWNCE74X7JSDV0X3SZ3KJNY'."
    );
    app.stop().await.unwrap();
}

#[tokio::test]
async fn deleted_organizations_answer_404_everywhere() {
    let app = TestApp::spawn().await;
    let created = app.create_organization(&json!({"name": "Doomed"})).await;
    let id = created["id"].as_str().unwrap();
    let path = format!("/organizations/{id}");
    let response = app.request(Method::DELETE, &path).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert!(response.headers().contains_key("x-request-id"));

    let body = json_status(app.get(&path).await, StatusCode::NOT_FOUND).await;
    assert_eq!(body["message"], format!("Organization not found: '{id}'."));
    json_status(
        app.request(Method::DELETE, &path).send().await.unwrap(),
        StatusCode::NOT_FOUND,
    )
    .await;
    json_status(
        app.send_json(Method::PUT, &path, &json!({"name": "Back"})).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    assert_eq!(app.count_organizations().await, 0);
    json_status(app.get("/organizations/not-an-id").await, StatusCode::NOT_FOUND).await;
    app.stop().await.unwrap();
}

async fn page(app: &TestApp, query: &str) -> (Vec<String>, Value) {
    let body = json_ok(app.get(&format!("/organizations?{query}")).await).await;
    assert_eq!(body["object"], "list");
    let ids = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["id"].as_str().unwrap().to_owned())
        .collect();
    (ids, body["list_metadata"].clone())
}

#[tokio::test]
async fn listing_pages_through_every_organization_in_every_order() {
    let app = TestApp::spawn().await;
    let mut ids = Vec::new();
    for index in 0..25 {
        ids.push(
            app.create_organization(&json!({"name": format!("Org {index:02}")}))
                .await["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let newest_first: Vec<String> = ids.iter().rev().cloned().collect();

    let (first, metadata) = page(&app, "").await;
    assert_eq!(first, newest_first[..10], "default: newest first, 10 per page");
    assert_eq!(metadata["before"], Value::Null);
    assert_eq!(metadata["after"], newest_first[9]);

    let mut seen = Vec::new();
    let mut query = "limit=10".to_owned();
    loop {
        let (ids_on_page, metadata) = page(&app, &query).await;
        seen.extend(ids_on_page);
        match metadata["after"].as_str() {
            Some(after) => query = format!("limit=10&after={after}"),
            None => break,
        }
    }
    assert_eq!(seen, newest_first);

    let (ascending, metadata) = page(&app, "order=asc&limit=100").await;
    assert_eq!(ascending, ids);
    assert_eq!(metadata, json!({"before": null, "after": null}));

    // Walk back up with `before` from the last page.
    let (last, metadata) = page(&app, &format!("limit=10&after={}", newest_first[19])).await;
    assert_eq!(last, newest_first[20..]);
    let (previous, _) = page(
        &app,
        &format!("limit=10&before={}", metadata["before"].as_str().unwrap()),
    )
    .await;
    assert_eq!(previous, newest_first[10..20]);

    // `normal`: newest first, `before` moves to older objects.
    let (normal, metadata) = page(&app, "order=normal&limit=5").await;
    assert_eq!(normal, newest_first[..5]);
    let (older, _) = page(
        &app,
        &format!("order=normal&limit=5&before={}", metadata["before"].as_str().unwrap()),
    )
    .await;
    assert_eq!(older, newest_first[5..10]);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn listing_filters_by_domain_and_name() {
    let app = TestApp::spawn().await;
    let alpha = app
        .create_organization(&json!({"name": "Alpha Widgets", "domains": ["alpha.com"]}))
        .await;
    let beta = app
        .create_organization(&json!({"name": "Beta", "domains": ["beta.com", "beta.io"]}))
        .await;
    app.create_organization(&json!({"name": "Gamma"})).await;
    let alpha_id = alpha["id"].as_str().unwrap().to_owned();
    let beta_id = beta["id"].as_str().unwrap().to_owned();

    assert_eq!(page(&app, "domains=beta.io").await.0, std::slice::from_ref(&beta_id));
    assert_eq!(
        page(&app, "domains=ALPHA.com,beta.com").await.0,
        [beta_id.clone(), alpha_id.clone()]
    );
    assert_eq!(
        page(&app, "domains=alpha.com&domains=beta.com").await.0,
        [beta_id.clone(), alpha_id.clone()]
    );
    assert_eq!(
        page(&app, "domains[]=alpha.com").await.0,
        std::slice::from_ref(&alpha_id)
    );
    assert_eq!(page(&app, "search=widget").await.0, [alpha_id]);
    assert!(page(&app, "search=zeta").await.0.is_empty());
    app.stop().await.unwrap();
}

#[tokio::test]
async fn bad_list_parameters_are_422() {
    let app = TestApp::spawn().await;
    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=ten", "limit"),
        ("limit=1&limit=2", "limit"),
        ("order=sideways", "order"),
        ("after=nope", "after"),
        ("before=key_01EHWNCE74X7JSDV0X3SZ3KJNY", "before"),
        (
            "before=org_01EHWNCE74X7JSDV0X3SZ3KJNY&after=org_01EHWNCE74X7JSDV0X3SZ3KJNY",
            "before",
        ),
    ] {
        let body = json_status(
            app.get(&format!("/organizations?{query}")).await,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
        assert!(
            body["errors"]
                .as_array()
                .unwrap()
                .iter()
                .any(|error| error["field"] == field),
            "{query}: {body}"
        );
    }
    app.stop().await.unwrap();
}
