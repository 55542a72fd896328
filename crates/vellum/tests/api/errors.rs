use reqwest::{Method, StatusCode};

use crate::helpers::{TestApp, json_status};

#[tokio::test]
async fn malformed_and_mistyped_bodies_get_json_errors_and_change_nothing() {
    let app = TestApp::spawn().await;
    let post = |body: &'static str, content_type: Option<&'static str>| {
        let mut request = app.request(Method::POST, "/organizations").body(body);
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        request.send()
    };

    let body = json_status(
        post("{\"name\":", Some("application/json")).await.unwrap(),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(body["code"], "invalid_json");
    let body = json_status(
        post("{\"name\": \"A\"} trailing", Some("application/json"))
            .await
            .unwrap(),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(body["code"], "invalid_json");
    let body = json_status(
        post("", Some("application/json")).await.unwrap(),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(body["code"], "invalid_json");

    let body = json_status(
        post("{\"name\": \"A\"}", Some("text/plain")).await.unwrap(),
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
    )
    .await;
    assert_eq!(body["code"], "unsupported_media_type");
    json_status(
        post("{\"name\": \"A\"}", None).await.unwrap(),
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
    )
    .await;

    // Parameters on the media type and `+json` types are fine.
    let created = post("{\"name\": \"A\"}", Some("application/json; charset=utf-8"))
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    assert_eq!(app.count_organizations().await, 1);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn oversized_bodies_are_refused_with_413() {
    let app = TestApp::spawn().await;
    let huge = format!("{{\"name\": \"{}\"}}", "x".repeat(5 * 1024 * 1024));
    let response = app
        .request(Method::POST, "/organizations")
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .unwrap();
    let body = json_status(response, StatusCode::PAYLOAD_TOO_LARGE).await;
    assert_eq!(body["code"], "payload_too_large");
    assert!(body["message"].as_str().unwrap().contains("4194304"), "{body}");
    assert_eq!(app.count_organizations().await, 0);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn unknown_routes_and_wrong_methods_answer_json() {
    let app = TestApp::spawn().await;
    let body = json_status(app.get("/no/such/route").await, StatusCode::NOT_FOUND).await;
    assert_eq!(body["message"], "Cannot GET /no/such/route");
    // Unknown routes answer 404 even without a key, so probing reveals nothing more.
    json_status(
        app.client.get(app.url("/no/such/route")).send().await.unwrap(),
        StatusCode::NOT_FOUND,
    )
    .await;

    // A path parameter that is not valid UTF-8 gets a JSON error too.
    let body = json_status(app.get("/audit_logs/events/%FF").await, StatusCode::BAD_REQUEST).await;
    assert_eq!(body["code"], "invalid_path");
    json_status(app.get("/organizations/%C3%28").await, StatusCode::BAD_REQUEST).await;

    let response = app.request(Method::PATCH, "/organizations").send().await.unwrap();
    let allow = response
        .headers()
        .get("allow")
        .map(|value| value.to_str().unwrap().to_owned());
    let body = json_status(response, StatusCode::METHOD_NOT_ALLOWED).await;
    assert_eq!(body["message"], "Cannot PATCH /organizations");
    assert!(allow.is_some_and(|allow| allow.contains("POST")));
    app.stop().await.unwrap();
}
