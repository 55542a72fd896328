//! Retention settings and the audit log configuration of an organization.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{ServerProcess, TestApp, fresh_secret, json_ok, json_status};

#[tokio::test]
async fn retention_accepts_both_request_forms() {
    let app = TestApp::spawn().await;
    let organization = app.organization("Keep").await;
    let path = format!("/organizations/{organization}/audit_logs_retention");
    assert_eq!(
        json_ok(app.get(&path).await).await,
        json!({"retention_period_in_days": null})
    );
    assert_eq!(
        json_ok(
            app.get(&format!("/organizations/{organization}/audit_log_configuration"))
                .await
        )
        .await,
        json!({"organization_id": organization, "retention_period_in_days": 365, "state": "active"}),
        "an organization without a period of its own has the server's default, 365 days"
    );

    for (body, days) in [
        (json!({"retention_period": "1_YEAR"}), 365),
        (json!({"retention_period": "3_MONTHS"}), 90),
        (json!({"retention_period_in_days": 30}), 30),
        (json!({"retention_period_in_days": 3650}), 3650),
    ] {
        let updated = json_ok(app.send_json(Method::PUT, &path, &body).await).await;
        assert_eq!(updated, json!({"retention_period_in_days": days}), "{body}");
        assert_eq!(json_ok(app.get(&path).await).await, updated);
    }
    for body in [
        json!({}),
        json!({"retention_period": "12_MONTHS"}),
        json!({"retention_period": "forever"}),
        json!({"retention_period_in_days": 31}),
        json!({"retention_period_in_days": 0}),
        json!({"retention_period": "1_YEAR", "retention_period_in_days": 365}),
    ] {
        json_status(
            app.send_json(Method::PUT, &path, &body).await,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
    }
    assert_eq!(
        json_ok(app.get(&path).await).await,
        json!({"retention_period_in_days": 3650}),
        "refusals change nothing"
    );

    let configuration = json_ok(
        app.get(&format!("/organizations/{organization}/audit_log_configuration"))
            .await,
    )
    .await;
    assert_eq!(
        configuration,
        json!({"organization_id": organization, "retention_period_in_days": 3650, "state": "active"})
    );
    let missing = "/organizations/org_01EHWNCE74X7JSDV0X3SZ3KJNY";
    json_status(
        app.get(&format!("{missing}/audit_logs_retention")).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    json_status(
        app.get(&format!("{missing}/audit_log_configuration")).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    json_status(
        app.send_json(
            Method::PUT,
            &format!("{missing}/audit_logs_retention"),
            &json!({"retention_period": "1_YEAR"}),
        )
        .await,
        StatusCode::NOT_FOUND,
    )
    .await;
    app.stop().await.unwrap();
}

#[tokio::test]
async fn the_configuration_answers_the_server_default_until_the_organization_sets_a_period() {
    let app = TestApp::spawn_with(|settings| settings.default_retention_days = 90).await;
    let organization = app.organization("Defaults").await;
    let retention = format!("/organizations/{organization}/audit_logs_retention");
    let configuration = format!("/organizations/{organization}/audit_log_configuration");

    // The organization's own setting stays unset; the configuration answers what is in force.
    assert_eq!(
        json_ok(app.get(&retention).await).await,
        json!({"retention_period_in_days": null})
    );
    let answer = json_ok(app.get(&configuration).await).await;
    assert_eq!(
        answer,
        json!({"organization_id": organization, "retention_period_in_days": 90, "state": "active"})
    );
    assert!(
        answer.get("log_stream").is_none(),
        "no stream: the member is absent, not null"
    );

    // A period of its own, even a longer one than the default, wins.
    json_ok(
        app.send_json(Method::PUT, &retention, &json!({"retention_period": "2_YEARS"}))
            .await,
    )
    .await;
    assert_eq!(
        json_ok(app.get(&configuration).await).await["retention_period_in_days"],
        730
    );

    // A deleted organization has no configuration.
    let deleted = app
        .request(Method::DELETE, &format!("/organizations/{organization}"))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    json_status(app.get(&configuration).await, StatusCode::NOT_FOUND).await;
    app.stop().await.unwrap();
}

/// The default comes from `--default-retention-days`, else `VELLUM_DEFAULT_RETENTION_DAYS`.
#[tokio::test]
async fn the_default_retention_is_read_from_the_flag_then_the_environment() {
    let secret = fresh_secret();
    for (args, expected) in [(&[][..], 1095), (&["--default-retention-days", "60"][..], 60)] {
        let data = tempfile::tempdir().unwrap();
        let server = ServerProcess::start(
            data.path(),
            args,
            &[
                ("VELLUM_API_KEY", secret.expose()),
                ("VELLUM_DEFAULT_RETENTION_DAYS", "1095"),
            ],
        );
        let client = reqwest::Client::new();
        let organization = json_status(
            client
                .post(server.url("/organizations"))
                .bearer_auth(secret.expose())
                .json(&json!({"name": "Configured"}))
                .send()
                .await
                .unwrap(),
            StatusCode::CREATED,
        )
        .await;
        let id = organization["id"].as_str().unwrap();
        let configuration = json_ok(
            client
                .get(server.url(&format!("/organizations/{id}/audit_log_configuration")))
                .bearer_auth(secret.expose())
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(
            configuration["retention_period_in_days"], expected,
            "{args:?}: {configuration}"
        );
    }
}
