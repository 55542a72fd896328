//! The optional per-API-key rate limit.

use reqwest::StatusCode;

use crate::helpers::{TestApp, json_status};

#[tokio::test]
async fn a_key_over_its_budget_gets_429_with_retry_after() {
    let app = TestApp::spawn_with(|settings| {
        settings.rate_limit = vellum_http::RateLimit::parse("5/3600");
    })
    .await;
    for _ in 0..5 {
        assert_eq!(app.get("/organizations").await.status(), StatusCode::OK);
    }
    let response = app.get("/organizations").await;
    let retry_after: u64 = response.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(
        (1..=720).contains(&retry_after),
        "one token refills in 720 s: {retry_after}"
    );
    let body = json_status(response, StatusCode::TOO_MANY_REQUESTS).await;
    assert_eq!(
        body,
        serde_json::json!({"message": "Too many requests.", "code": "rate_limit_exceeded"})
    );

    // Health probes and other keys are not limited.
    assert_eq!(
        app.client.get(app.url("/health")).send().await.unwrap().status(),
        StatusCode::OK
    );
    let output = std::process::Command::new(crate::helpers::vellum_binary())
        .args(["api-keys", "create", "--name", "second"])
        .env("VELLUM_DATA_DIR", app.data_dir.path())
        .envs(crate::helpers::backend_env(app.data_dir.path()))
        .output()
        .unwrap();
    let second = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .last()
        .unwrap()
        .to_owned();
    let other = app
        .client
        .get(app.url("/organizations"))
        .bearer_auth(second)
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), StatusCode::OK);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn without_configuration_there_is_no_limit() {
    let app = TestApp::spawn().await;
    for _ in 0..200 {
        assert_eq!(app.get("/health").await.status(), StatusCode::OK);
        assert_eq!(app.get("/organizations?limit=1").await.status(), StatusCode::OK);
    }
    app.stop().await.unwrap();
}
