//! Per-organization audit log settings, as WorkOS serves them:
//! `GET`/`PUT /organizations/{id}/audit_logs_retention` and
//! `GET /organizations/{id}/audit_log_configuration`.
//!
//! `audit_logs_retention` answers the organization's own setting (`null` until it sets one, as
//! WorkOS's `AuditLogsRetentionJson` allows); `audit_log_configuration` answers the retention in
//! force, which is never `null` (WorkOS's `AuditLogConfiguration` requires an integer there, and
//! SDKs such as PHP, .NET and Kotlin read it into a non-null one).

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use vellum_core::retention::{days_for_period, effective_retention_days, is_valid_days};
use vellum_core::{OrganizationId, ValidationErrors};

use crate::AppState;
use crate::error::{ApiError, ErrorResponse, ValidationError};
use crate::extract::{WireJson, WirePath};
use crate::wire::wire_const;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/organizations/{id}/audit_logs_retention",
            get(get_retention).put(update_retention),
        )
        .route("/organizations/{id}/audit_log_configuration", get(get_configuration))
}

fn organization_id(text: &str) -> Result<OrganizationId, ApiError> {
    OrganizationId::parse(text).map_err(|_| ApiError::NotFound {
        message: format!("Organization not found: '{text}'."),
    })
}

/// An organization's own retention setting.
#[derive(Serialize, ToSchema)]
#[schema(as = AuditLogsRetentionJson)]
pub(crate) struct RetentionResponse {
    /// The days events are kept; `null` until the organization sets a retention.
    #[schema(required = true, example = 30)]
    retention_period_in_days: Option<u32>,
}

#[utoipa::path(
    get,
    path = "/organizations/{id}/audit_logs_retention",
    tag = "audit-logs",
    operation_id = "AuditLogsRetentionController_auditLogsRetention",
    summary = "Get an organization's retention setting",
    params(("id" = String, Path, description = "The organization's id.", example = "org_01EHWNCE74X7JSDV0X3SZ3KJNY")),
    responses(
        (status = 200, description = "The organization's own setting (`null` until it sets one).", body = RetentionResponse),
        (status = 404, description = "No such organization.", body = ErrorResponse),
    ),
)]
pub(crate) async fn get_retention(
    State(state): State<AppState>,
    WirePath(id): WirePath,
) -> Result<Json<RetentionResponse>, ApiError> {
    let days = state.store.get_retention(organization_id(&id)?).await?;
    Ok(Json(RetentionResponse {
        retention_period_in_days: days,
    }))
}

/// Either form WorkOS has accepted: `retention_period` (current SDKs) or
/// `retention_period_in_days` (WorkOS's public document, older SDKs). Exactly one is required.
#[derive(Deserialize, ToSchema)]
#[schema(as = UpdateAuditLogsRetentionDto)]
pub(crate) struct RetentionBody {
    /// `1_MONTH` to `11_MONTHS`, or `1_YEAR` to `10_YEARS`.
    #[schema(pattern = "^([1-9]|1[01])_MONTHS?$|^([1-9]|10)_YEARS?$", example = "1_YEAR")]
    retention_period: Option<String>,
    /// Deprecated form: 30 to 330 in steps of 30, or 365 to 3650 in steps of 365.
    #[schema(example = 30)]
    retention_period_in_days: Option<i64>,
}

#[utoipa::path(
    put,
    path = "/organizations/{id}/audit_logs_retention",
    tag = "audit-logs",
    operation_id = "AuditLogsRetentionController_updateAuditLogsRetention",
    summary = "Set an organization's retention",
    params(("id" = String, Path, description = "The organization's id.", example = "org_01EHWNCE74X7JSDV0X3SZ3KJNY")),
    request_body = RetentionBody,
    responses(
        (status = 200, description = "The new setting.", body = RetentionResponse),
        (status = 404, description = "No such organization.", body = ErrorResponse),
        (status = 422, description = "Neither or both forms, or a value not allowed.", body = ValidationError),
    ),
)]
pub(crate) async fn update_retention(
    State(state): State<AppState>,
    WirePath(id): WirePath,
    WireJson(body): WireJson<RetentionBody>,
) -> Result<Json<RetentionResponse>, ApiError> {
    let organization = organization_id(&id)?;
    let mut errors = ValidationErrors::new();
    let days = match (body.retention_period, body.retention_period_in_days) {
        (Some(_), Some(_)) => {
            errors.push(
                "retention_period",
                "conflict",
                "give either retention_period or retention_period_in_days, not both",
            );
            None
        }
        (None, None) => {
            errors.push(
                "retention_period",
                "required",
                "retention_period (e.g. \"1_YEAR\") is required",
            );
            None
        }
        (Some(period), None) => {
            let days = days_for_period(&period);
            if days.is_none() {
                errors.push(
                    "retention_period",
                    "invalid",
                    format!("`{period}` is not a retention period: use 1_MONTH to 11_MONTHS or 1_YEAR to 10_YEARS"),
                );
            }
            days
        }
        (None, Some(days)) if is_valid_days(days) => u32::try_from(days).ok(),
        (None, Some(days)) => {
            errors.push(
                "retention_period_in_days",
                "invalid",
                format!("{days} is not allowed: use 30 to 330 in steps of 30, or 365 to 3650 in steps of 365"),
            );
            None
        }
    };
    let Some(days) = days.filter(|_| errors.is_empty()) else {
        return Err(errors.into());
    };
    state.store.set_retention(organization, days).await?;
    Ok(Json(RetentionResponse {
        retention_period_in_days: Some(days),
    }))
}

wire_const!(
    /// `"active"`: audit logs are on for every organization.
    ConfigurationState = "active"
);

/// An organization's audit log configuration (without `log_stream`: Vellum has no log streams,
/// and WorkOS omits the member for an organization without one).
#[derive(Serialize, ToSchema)]
#[schema(as = AuditLogConfiguration)]
pub(crate) struct ConfigurationResponse {
    #[schema(example = "org_01EHWNCE74X7JSDV0X3SZ3KJNY")]
    organization_id: String,
    /// The retention in force: the organization's own, else the server's default.
    #[schema(example = 365)]
    retention_period_in_days: u32,
    state: ConfigurationState,
}

#[utoipa::path(
    get,
    path = "/organizations/{id}/audit_log_configuration",
    tag = "organizations",
    operation_id = "OrganizationsController_getAuditLogConfiguration",
    summary = "Get an organization's audit log configuration",
    params(("id" = String, Path, description = "The organization's id.", example = "org_01EHWNCE74X7JSDV0X3SZ3KJNY")),
    responses(
        (status = 200, description = "The configuration in force.", body = ConfigurationResponse),
        (status = 404, description = "No such organization.", body = ErrorResponse),
    ),
)]
pub(crate) async fn get_configuration(
    State(state): State<AppState>,
    WirePath(id): WirePath,
) -> Result<Json<ConfigurationResponse>, ApiError> {
    let organization = organization_id(&id)?;
    let own_days = state.store.get_retention(organization).await?;
    let days = effective_retention_days(own_days, state.config.default_retention_days);
    // Log streams are not built yet, so `log_stream` is absent, as WorkOS answers for an
    // organization without one (the member is optional and only present for a stream).
    Ok(Json(ConfigurationResponse {
        organization_id: organization.to_string(),
        retention_period_in_days: days,
        state: ConfigurationState::Value,
    }))
}
