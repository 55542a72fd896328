//! Retention settings and the audit log configuration of an organization.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{TestApp, json_ok, json_status};

#[tokio::test]
async fn retention_accepts_both_request_forms() {
    let app = TestApp::spawn().await;
    let organization = app.organization("Keep").await;
    let path = format!("/organizations/{organization}/audit_logs_retention");
    assert_eq!(
        json_ok(app.get(&path).await).await,
        json!({"retention_period_in_days": null})
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
