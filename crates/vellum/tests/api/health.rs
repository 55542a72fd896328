use reqwest::StatusCode;

use crate::helpers::{TestApp, json_status};

#[tokio::test]
async fn health_and_ready_answer_without_an_api_key() {
    let app = TestApp::spawn().await;
    let health = json_status(app.client.get(app.url("/health")).send().await.unwrap(), StatusCode::OK).await;
    assert_eq!(health["status"], "ok");
    let ready = json_status(app.client.get(app.url("/ready")).send().await.unwrap(), StatusCode::OK).await;
    assert_eq!(ready["status"], "ready");
    app.stop().await.unwrap();
}

#[tokio::test]
async fn request_ids_are_generated_or_echoed() {
    let app = TestApp::spawn().await;
    let response = app.client.get(app.url("/health")).send().await.unwrap();
    let generated = response.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert!(generated.starts_with("req_") && generated.len() == 30, "{generated}");

    let second = app.client.get(app.url("/health")).send().await.unwrap();
    assert_ne!(
        second.headers()["x-request-id"].to_str().unwrap(),
        generated,
        "ids are unique"
    );

    let echoed = app
        .client
        .get(app.url("/health"))
        .header("x-request-id", "trace-123")
        .send()
        .await
        .unwrap();
    assert_eq!(echoed.headers()["x-request-id"], "trace-123");
    app.stop().await.unwrap();
}
