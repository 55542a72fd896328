//! Per-organization audit log settings, as WorkOS serves them:
//! `GET`/`PUT /organizations/{id}/audit_logs_retention` and
//! `GET /organizations/{id}/audit_log_configuration`; and Vellum's legal hold,
//! `GET`/`PUT /organizations/{id}/audit_logs_legal_hold` (`docs/retention.md`).
//!
//! `audit_logs_retention` answers the organization's own setting (`null` until it sets one, as
//! WorkOS's `AuditLogsRetentionJson` allows); `audit_log_configuration` answers the retention in
//! force, which is never `null` (WorkOS's `AuditLogConfiguration` requires an integer there, and
//! SDKs such as PHP, .NET and Kotlin read it into a non-null one).

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
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
        .route(
            "/organizations/{id}/audit_logs_legal_hold",
            get(get_legal_hold).put(update_legal_hold),
        )
        .route("/audit_logs/erasures", post(create_erasure))
}

fn organization_id(text: &str) -> Result<OrganizationId, ApiError> {
    crate::observe::organization_id(text).map_err(|_| ApiError::NotFound {
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

/// An organization's audit log configuration. `log_stream` is its oldest log stream; WorkOS
/// omits the member for an organization without one, and so does Vellum.
#[derive(Serialize, ToSchema)]
#[schema(as = AuditLogConfiguration)]
pub(crate) struct ConfigurationResponse {
    #[schema(example = "org_01EHWNCE74X7JSDV0X3SZ3KJNY")]
    organization_id: String,
    /// The retention in force: the organization's own, else the server's default.
    #[schema(example = 365)]
    retention_period_in_days: u32,
    state: ConfigurationState,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    log_stream: Option<LogStreamSummary>,
}

/// A log stream as WorkOS's SDKs read it from the configuration.
#[derive(Serialize, ToSchema)]
#[schema(as = AuditLogStreamSummary)]
pub(crate) struct LogStreamSummary {
    #[schema(example = "audit_log_stream_01HZY3T9J6V7YQ8G3C0W5D2N1M")]
    id: String,
    /// `Datadog`, `Splunk`, `S3`, `GoogleCloudStorage`, `GenericHttps`, …
    #[serde(rename = "type")]
    #[schema(example = "Datadog")]
    stream_type: &'static str,
    /// `active`, `inactive`, `error` or `invalid`.
    #[schema(example = "active")]
    state: &'static str,
    /// When the destination last accepted a batch (ISO 8601), `null` before the first.
    #[schema(required = true)]
    last_synced_at: Option<String>,
    created_at: String,
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
    let log_stream = state
        .store
        .list_streams(organization)
        .await?
        .into_iter()
        .next()
        .map(|stream| LogStreamSummary {
            id: stream.id.to_string(),
            stream_type: stream.destination.stream_type().as_str(),
            state: stream.state.as_str(),
            last_synced_at: stream.last_synced_at.map(|time| time.to_wire()),
            created_at: stream.created_at.to_wire(),
        });
    Ok(Json(ConfigurationResponse {
        organization_id: organization.to_string(),
        retention_period_in_days: days,
        state: ConfigurationState::Value,
        log_stream,
    }))
}

wire_const!(
    /// `"audit_logs_legal_hold"`.
    LegalHoldObject = "audit_logs_legal_hold"
);

/// An organization's legal hold: while it is in force, nothing of the organization is purged.
#[derive(Serialize, ToSchema)]
#[schema(as = AuditLogsLegalHold)]
pub(crate) struct LegalHoldResponse {
    object: LegalHoldObject,
    #[schema(example = "org_01EHWNCE74X7JSDV0X3SZ3KJNY")]
    organization_id: String,
    /// Whether a hold is in force.
    legal_hold: bool,
    /// Why, as given when it was set; `null` when none was given or no hold is in force.
    #[schema(required = true, example = "Litigation 2026-114")]
    reason: Option<String>,
    /// When the hold in force was set (ISO 8601); `null` without one.
    #[schema(required = true, example = "2026-12-06T10:00:00.000Z")]
    since: Option<String>,
    /// The log index of the record of this change in the organization's log, when the request
    /// changed the hold (absent on reads and on requests that changed nothing).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    recorded_at_log_index: Option<u64>,
}

impl LegalHoldResponse {
    fn of(
        organization: OrganizationId,
        hold: Option<vellum_store::LegalHold>,
        record: Option<&vellum_core::Event>,
    ) -> Self {
        Self {
            object: LegalHoldObject::Value,
            organization_id: organization.to_string(),
            legal_hold: hold.is_some(),
            since: hold.as_ref().map(|hold| hold.since.to_wire()),
            reason: hold.and_then(|hold| hold.reason),
            recorded_at_log_index: record.map(|event| event.log_index),
        }
    }
}

#[utoipa::path(
    get,
    path = "/organizations/{id}/audit_logs_legal_hold",
    tag = "audit-logs",
    operation_id = "AuditLogsLegalHoldController_legalHold",
    summary = "Get an organization's legal hold (Vellum)",
    params(("id" = String, Path, description = "The organization's id.", example = "org_01EHWNCE74X7JSDV0X3SZ3KJNY")),
    responses(
        (status = 200, description = "The hold, or `legal_hold: false`.", body = LegalHoldResponse),
        (status = 404, description = "No such organization.", body = ErrorResponse),
    ),
)]
pub(crate) async fn get_legal_hold(
    State(state): State<AppState>,
    WirePath(id): WirePath,
) -> Result<Json<LegalHoldResponse>, ApiError> {
    let organization = organization_id(&id)?;
    let hold = state.store.legal_hold(organization).await?;
    Ok(Json(LegalHoldResponse::of(organization, hold, None)))
}

/// Sets or lifts the hold.
#[derive(Deserialize, ToSchema)]
#[schema(as = UpdateAuditLogsLegalHoldDto)]
pub(crate) struct LegalHoldBody {
    /// `true` to set a hold, `false` to lift it.
    legal_hold: Option<bool>,
    /// Why (at most 500 characters); recorded with the change in the organization's log.
    #[schema(example = "Litigation 2026-114")]
    reason: Option<String>,
}

#[utoipa::path(
    put,
    path = "/organizations/{id}/audit_logs_legal_hold",
    tag = "audit-logs",
    operation_id = "AuditLogsLegalHoldController_updateLegalHold",
    summary = "Set or lift an organization's legal hold (Vellum)",
    description = "While a hold is in force, no purge removes anything of the organization. Setting or lifting it \
        appends a record (`vellum.legal_hold.set` or `vellum.legal_hold.lifted`) to the organization's log; \
        a request that changes nothing records nothing.",
    params(("id" = String, Path, description = "The organization's id.", example = "org_01EHWNCE74X7JSDV0X3SZ3KJNY")),
    request_body = LegalHoldBody,
    responses(
        (status = 200, description = "The hold now in force.", body = LegalHoldResponse),
        (status = 404, description = "No such organization.", body = ErrorResponse),
        (status = 422, description = "`legal_hold` missing, or the reason too long.", body = ValidationError),
    ),
)]
pub(crate) async fn update_legal_hold(
    State(state): State<AppState>,
    Caller(by): Caller,
    WirePath(id): WirePath,
    WireJson(body): WireJson<LegalHoldBody>,
) -> Result<Json<LegalHoldResponse>, ApiError> {
    let organization = organization_id(&id)?;
    let Some(held) = body.legal_hold else {
        let mut errors = ValidationErrors::new();
        errors.push("legal_hold", "required", "legal_hold (true or false) is required");
        return Err(errors.into());
    };
    match vellum_retention::set_legal_hold(&*state.store, organization, held, body.reason, &by).await {
        Ok(change) => Ok(Json(LegalHoldResponse::of(
            organization,
            change.hold,
            change.record.as_ref(),
        ))),
        Err(vellum_retention::HoldError::InvalidReason(message)) => {
            let mut errors = ValidationErrors::new();
            errors.push("reason", "invalid", message);
            Err(errors.into())
        }
        Err(vellum_retention::HoldError::Store(error)) => Err(error.into()),
    }
}

/// Whose personal data to erase from an organization's trail.
#[derive(Deserialize, ToSchema)]
#[schema(as = CreateAuditLogErasureDto)]
pub(crate) struct ErasureBody {
    #[schema(example = "org_01EHWNCE74X7JSDV0X3SZ3KJNY")]
    organization_id: Option<String>,
    /// The person's id as an actor; every party (actor or target) with this id is erased.
    #[schema(example = "user_TF4C5938")]
    actor_id: Option<String>,
    /// Another id under which the person appears as a target, if the application names them
    /// differently there; every party with this id is erased too.
    #[schema(example = "member_0042")]
    target_id: Option<String>,
}

wire_const!(
    /// `"audit_log_erasure"`.
    ErasureObject = "audit_log_erasure"
);

/// What an erasure did.
#[derive(Serialize, ToSchema)]
#[schema(as = AuditLogErasure)]
pub(crate) struct ErasureResponse {
    object: ErasureObject,
    #[schema(example = "org_01EHWNCE74X7JSDV0X3SZ3KJNY")]
    organization_id: String,
    /// How many events had the person's data removed.
    #[schema(example = 42)]
    events_erased: u64,
    /// The log indexes of the erasure records appended (`vellum.personal_data.erased`), one per
    /// step of at most 2,000 events; empty when no event named the person.
    records: Vec<u64>,
}

/// The ids an erasure names: present, not empty, bounded, no control characters.
fn erasure_ids(body: &ErasureBody, errors: &mut ValidationErrors) -> Vec<String> {
    let mut ids = Vec::new();
    for (field, value, required) in [
        ("actor_id", &body.actor_id, true),
        ("target_id", &body.target_id, false),
    ] {
        match value {
            None if required => errors.push(field, "required", format!("{field} is required")),
            None => {}
            Some(id)
                if id.is_empty()
                    || id.chars().count() > vellum_core::event::MAX_TEXT_CHARS
                    || vellum_core::validation::has_control_characters(id) =>
            {
                errors.push(
                    field,
                    "invalid",
                    format!(
                        "{field} is 1 to {} characters, without control characters",
                        vellum_core::event::MAX_TEXT_CHARS
                    ),
                );
            }
            Some(id) => ids.push(id.clone()),
        }
    }
    ids
}

#[utoipa::path(
    post,
    path = "/audit_logs/erasures",
    tag = "audit-logs",
    operation_id = "AuditLogErasuresController_create",
    summary = "Erase one person's personal data from an organization's trail (Vellum)",
    description = "Removes the ids, names and metadata of every party (actor or target) with the given ids, and \
        an erased actor's location and user agent, from every event of the organization. The events stay, their \
        parties marked erased; each step of at most 2,000 events appends a record (`vellum.personal_data.erased`) \
        naming the positions it erased, so the log still verifies. Refused while the organization is under a \
        legal hold. The organization's ready exports end (their files are deleted, their links answer as \
        expired ones'), since they were made before. See docs/retention.md.",
    request_body = ErasureBody,
    responses(
        (status = 201, description = "The erasure is done.", body = ErasureResponse),
        (status = 404, description = "No such organization.", body = ErrorResponse),
        (status = 409, description = "The organization is under a legal hold.", body = ErrorResponse),
        (status = 422, description = "A field is missing or not acceptable.", body = ValidationError),
    ),
)]
pub(crate) async fn create_erasure(
    State(state): State<AppState>,
    Caller(by): Caller,
    WireJson(body): WireJson<ErasureBody>,
) -> Result<(StatusCode, Json<ErasureResponse>), ApiError> {
    let mut errors = ValidationErrors::new();
    let organization = match &body.organization_id {
        None => {
            errors.push("organization_id", "required", "organization_id is required");
            None
        }
        Some(text) => Some(organization_id(text)?),
    };
    let ids = erasure_ids(&body, &mut errors);
    let Some(organization) = organization.filter(|_| errors.is_empty()) else {
        return Err(errors.into());
    };
    // A deleted or unknown organization is not found (its events follow retention only).
    state.store.legal_hold(organization).await?;
    let subject = vellum_core::seal::ErasureSubject { ids };
    match vellum_retention::erase(&*state.store, organization, &subject, &by).await {
        Ok(erasure) => {
            // Files exported before the erasure would still serve what it removed.
            if erasure.events_erased > 0
                && let Some(exports) = &state.exports
            {
                exports.expire_exports_of(organization).await?;
            }
            Ok((
                StatusCode::CREATED,
                Json(ErasureResponse {
                    object: ErasureObject::Value,
                    organization_id: organization.to_string(),
                    events_erased: erasure.events_erased,
                    records: erasure.records.iter().map(|record| record.log_index).collect(),
                }),
            ))
        }
        Err(vellum_retention::ErasureError::Held) => Err(ApiError::Conflict {
            message: "The organization is under a legal hold: nothing of its trail is erased until the hold is lifted."
                .into(),
            code: "legal_hold",
        }),
        Err(vellum_retention::ErasureError::Store(error)) => Err(error.into()),
    }
}

/// Who made a request, as the actor of the record it writes: the API key, or the dashboard's
/// signed-in operator (by id: an operator's email is not written into customers' trails).
pub(crate) struct Caller(pub(crate) vellum_core::log_record::RecordedBy);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, _state: &S) -> Result<Self, Self::Rejection> {
        if let Some(crate::auth::Authenticated(key)) = parts.extensions.get::<crate::auth::Authenticated>() {
            return Ok(Self(vellum_core::log_record::RecordedBy {
                id: key.id.to_string(),
                actor_type: "api_key".into(),
                name: Some(key.name.clone()),
            }));
        }
        if let Some(signed_in) = parts.extensions.get::<crate::dashboard::session::SignedIn>() {
            return Ok(Self(vellum_core::log_record::RecordedBy {
                id: signed_in.session.operator_id.to_string(),
                actor_type: "operator".into(),
                name: None,
            }));
        }
        Err(ApiError::Unauthorized {
            code: "missing_api_key",
        })
    }
}
