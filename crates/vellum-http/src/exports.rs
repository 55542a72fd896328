//! `/audit_logs/exports`: WorkOS's asynchronous exports (CSV), plus Vellum's verifiable NDJSON
//! (`format: "ndjson"`), and the signed download links of files kept on local disk.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use vellum_core::export::{Export, ExportFilter, ExportFormat, ExportState};
use vellum_core::filter::{MAX_FILTER_VALUES, check_filter_values};
use vellum_core::time_range::{Bound, Instant, TimeRange};
use vellum_core::{ExportId, Timestamp, ValidationErrors};
use vellum_export::{CreateError, DownloadError, ExportService, LinkError};

use crate::AppState;
use crate::error::{ApiError, ErrorResponse, ValidationError};
use crate::extract::{QueryPairs, WireJson, WirePath};
use crate::wire::wire_const;

/// Routes that need an API key.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/audit_logs/exports", post(create_export))
        .route("/audit_logs/exports/{id}", get(get_export))
}

/// The download route: its signed link is its credential, so it takes no API key.
pub(crate) fn download_routes() -> Router<AppState> {
    Router::new().route("/audit_logs/exports/{id}/download", get(download))
}

fn service(state: &AppState) -> Result<&ExportService, ApiError> {
    state.exports.as_deref().ok_or(ApiError::Unavailable)
}

fn not_found(id: &str) -> ApiError {
    ApiError::NotFound {
        message: format!("Audit Log Export not found: '{id}'."),
    }
}

wire_const!(
    /// `"audit_log_export"`.
    ExportObject = "audit_log_export"
);

/// An export, as WorkOS renders it (`url` is `null` until the export is ready), with Vellum's
/// additions: `format`, and `events` and `bytes` once ready, `error` once failed.
#[derive(Serialize, ToSchema)]
#[schema(as = AuditLogExportJson)]
pub(crate) struct ExportResponse {
    object: ExportObject,
    #[schema(example = "audit_log_export_01GBZK5MP7TD1YCFQHFR22180V")]
    pub(crate) id: String,
    #[schema(value_type = ExportStateName)]
    state: &'static str,
    /// A signed download link, valid for a limited time; only when the export is ready.
    url: Option<String>,
    #[schema(format = DateTime)]
    created_at: String,
    #[schema(format = DateTime)]
    updated_at: String,
    #[schema(value_type = ExportFormatName)]
    format: &'static str,
    /// The number of events in the file (when ready).
    #[serde(skip_serializing_if = "Option::is_none")]
    events: Option<Option<u64>>,
    /// The size of the file in bytes (when ready).
    #[serde(skip_serializing_if = "Option::is_none")]
    bytes: Option<Option<u64>>,
    /// Why the export failed (when it did).
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// The state of an export.
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)] // names the values of `ExportResponse::state` for the document
pub(crate) enum ExportStateName {
    Pending,
    Ready,
    Error,
    Expired,
}

/// The file format of an export.
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)] // names the values of `ExportResponse::format` and the request's `format`
pub(crate) enum ExportFormatName {
    Csv,
    Ndjson,
}

/// The export as WorkOS renders it (`url` only when ready).
async fn export_response(service: &ExportService, export: &Export, base_url: &str) -> Result<ExportResponse, ApiError> {
    let url = service
        .download_url(export, base_url)
        .await
        .map_err(|error| ApiError::Internal(format!("cannot sign a download link: {error}")))?;
    let ready = export.state == ExportState::Ready;
    Ok(ExportResponse {
        object: ExportObject::Value,
        id: export.id.to_string(),
        state: export.state.as_str(),
        url,
        created_at: export.created_at.to_wire(),
        updated_at: export.updated_at.to_wire(),
        format: export.format.as_str(),
        events: ready.then_some(export.rows),
        bytes: ready.then_some(export.bytes),
        error: export.error.clone(),
    })
}

/// The URL clients reached this server at: the configured public URL, else the `Host` header.
pub(crate) fn base_url(state: &AppState, headers: &HeaderMap) -> String {
    if let Some(url) = &state.config.public_url {
        return url.clone();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|value| value.to_str().ok())
        .filter(|host| !host.is_empty() && host.bytes().all(|byte| byte.is_ascii_graphic()))
        .unwrap_or("localhost");
    format!("http://{host}")
}

/// A member of a request body as sent: of the expected type, or anything else (kept, so that
/// the handler refuses it with its own message rather than serde's).
#[derive(Deserialize)]
#[serde(untagged)]
pub(crate) enum Sent<T> {
    Expected(T),
    Other(Value),
}

/// For `#[serde(default, deserialize_with = "present")]`: an absent member is `None`, and any
/// value, `null` too, is `Some`.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(deserializer: D) -> Result<Option<T>, D::Error> {
    T::deserialize(deserializer).map(Some)
}

/// The body of `POST /audit_logs/exports`. Every member is read as sent so that each problem is
/// reported with the others, in the messages WorkOS clients see.
#[derive(Deserialize, ToSchema)]
#[schema(as = AuditLogExportCreationDto)]
pub(crate) struct CreateExportBody {
    #[serde(default, deserialize_with = "present")]
    #[schema(required = true, value_type = String, example = "org_01EHWNCE74X7JSDV0X3SZ3KJNY")]
    organization_id: Option<Sent<String>>,
    /// The start of the range, inclusive: an ISO 8601 date-time of the years 0000 to 9999.
    #[serde(default, deserialize_with = "present")]
    #[schema(required = true, value_type = String, format = DateTime, example = "2022-07-02T18:09:06.996Z")]
    range_start: Option<Sent<String>>,
    /// The end of the range, exclusive; after `range_start`.
    #[serde(default, deserialize_with = "present")]
    #[schema(required = true, value_type = String, format = DateTime, example = "2022-09-02T18:09:06.996Z")]
    range_end: Option<Sent<String>>,
    /// Only events with these actions.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Vec<String>>, max_items = 100)]
    actions: Option<Sent<Vec<Sent<String>>>>,
    /// Deprecated: use `actor_names` (the two lists are joined).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Vec<String>>, max_items = 100, deprecated)]
    actors: Option<Sent<Vec<Sent<String>>>>,
    /// Only events by actors with these names.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Vec<String>>, max_items = 100)]
    actor_names: Option<Sent<Vec<Sent<String>>>>,
    /// Only events by actors with these ids.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Vec<String>>, max_items = 100)]
    actor_ids: Option<Sent<Vec<Sent<String>>>>,
    /// Only events with a target of these types.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Vec<String>>, max_items = 100)]
    targets: Option<Sent<Vec<Sent<String>>>>,
    /// Vellum's addition: `csv` (the default, WorkOS's columns) or `ndjson` (verifiable).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<ExportFormatName>)]
    format: Option<Sent<String>>,
}

/// A list filter: an array of at most [`MAX_FILTER_VALUES`] strings.
fn string_list(
    sent: Option<Sent<Vec<Sent<String>>>>,
    name: &'static str,
    errors: &mut ValidationErrors,
) -> Vec<String> {
    match sent {
        None | Some(Sent::Other(Value::Null)) => Vec::new(),
        // Counted before the items are looked at, so a huge list costs one error, not one each.
        Some(Sent::Expected(items)) if !check_filter_values(name, items.len(), errors) => Vec::new(),
        Some(Sent::Expected(items)) => {
            let mut list = Vec::with_capacity(items.len());
            for (index, item) in items.into_iter().enumerate() {
                match item {
                    Sent::Expected(text) => list.push(text),
                    Sent::Other(_) => errors.push(
                        format!("{name}.{index}"),
                        "invalid",
                        format!("{name} holds strings only"),
                    ),
                }
            }
            list
        }
        Some(Sent::Other(_)) => {
            errors.push(name, "invalid", format!("{name} must be an array of strings"));
            Vec::new()
        }
    }
}

#[utoipa::path(
    post,
    path = "/audit_logs/exports",
    tag = "audit-logs",
    operation_id = "AuditLogExportsController_exports",
    summary = "Create an export",
    request_body = CreateExportBody,
    responses(
        (status = 201, description = "The export, pending.", body = ExportResponse),
        (status = 400, description = "An empty or inverted range (`invalid_audit_log_export_range_date`), or no events match (`no_audit_log_events_found`).", body = ErrorResponse),
        (status = 404, description = "No such organization.", body = ErrorResponse),
        (status = 422, description = "A field is missing or not acceptable.", body = ValidationError),
    ),
)]
pub(crate) async fn create_export(
    State(state): State<AppState>,
    headers: HeaderMap,
    WireJson(body): WireJson<CreateExportBody>,
) -> Result<(axum::http::StatusCode, Json<ExportResponse>), ApiError> {
    let service = service(&state)?;
    let mut errors = ValidationErrors::new();
    let organization = match body.organization_id {
        Some(Sent::Expected(text)) => Some(text),
        Some(Sent::Other(_)) => {
            errors.push("organization_id", "invalid", "organization_id must be a string");
            None
        }
        None => {
            errors.push("organization_id", "required", "organization_id is required");
            None
        }
    };
    let mut time = |name: &'static str, sent: Option<Sent<String>>| match sent {
        Some(Sent::Expected(text)) => {
            let parsed = Instant::parse(&text);
            if parsed.is_none() {
                errors.push(
                    name,
                    "invalid",
                    format!("{name} must be an ISO 8601 date string from year 0000 to 9999"),
                );
            }
            parsed
        }
        Some(Sent::Other(_)) => {
            errors.push(name, "invalid", format!("{name} must be an ISO 8601 date string"));
            None
        }
        None => {
            errors.push(name, "required", format!("{name} is required"));
            None
        }
    };
    let range_start = time("range_start", body.range_start);
    let range_end = time("range_end", body.range_end);
    let actions = string_list(body.actions, "actions", &mut errors);
    let mut actor_names = string_list(body.actor_names, "actor_names", &mut errors);
    // `actors` is WorkOS's deprecated name for `actor_names`; together they are one list.
    for name in string_list(body.actors, "actors", &mut errors) {
        if !actor_names.contains(&name) {
            actor_names.push(name);
        }
    }
    if actor_names.len() > MAX_FILTER_VALUES {
        errors.push(
            "actor_names",
            "too_many",
            format!("actor_names and actors take at most {MAX_FILTER_VALUES} values together"),
        );
    }
    let actor_ids = string_list(body.actor_ids, "actor_ids", &mut errors);
    let target_types = string_list(body.targets, "targets", &mut errors);
    let format = match body.format {
        None | Some(Sent::Other(Value::Null)) => Some(ExportFormat::Csv),
        Some(Sent::Expected(text)) => ExportFormat::parse(&text).or_else(|| {
            errors.push("format", "invalid", "format is `csv` or `ndjson`");
            None
        }),
        Some(_) => {
            errors.push("format", "invalid", "format is `csv` or `ndjson`");
            None
        }
    };
    let (Some(organization), Some(range_start), Some(range_end), Some(format), true) =
        (organization, range_start, range_end, format, errors.is_empty())
    else {
        return Err(errors.into());
    };
    if range_start >= range_end {
        return Err(ApiError::BadRequest {
            message: "Invalid date range".into(),
            code: "invalid_audit_log_export_range_date",
        });
    }
    // The stored milliseconds the range selects, exactly (a bound may fall inside one). A range
    // that selects none becomes [MAX, MAX): the export is then refused as empty, after the
    // organization is looked up.
    let (start, end) = TimeRange::of([Bound::AtOrAfter(range_start), Bound::Before(range_end)]).filter_bounds();
    let Some(range_end) = end else {
        return Err(ApiError::invalid_field(
            "range_end",
            "invalid",
            format!(
                "range_end must be at most {} (the last instant an event can have, exclusive)",
                Timestamp::MAX
            ),
        ));
    };
    let range_start = start.unwrap_or(Timestamp::MIN);
    let organization_id = crate::observe::organization_id(&organization).map_err(|_| ApiError::NotFound {
        message: format!("Organization not found: '{organization}'."),
    })?;
    let filter = ExportFilter {
        range_start,
        range_end,
        actions,
        actor_names,
        actor_ids,
        target_types,
    };
    let export = service
        .create(organization_id, format, filter)
        .await
        .map_err(|error| match error {
            CreateError::NoEvents => ApiError::BadRequest {
                message: "No audit log events found".into(),
                code: "no_audit_log_events_found",
            },
            CreateError::Store(error) => error.into(),
        })?;
    let body = export_response(service, &export, &base_url(&state, &headers)).await?;
    Ok((axum::http::StatusCode::CREATED, Json(body)))
}

#[utoipa::path(
    get,
    path = "/audit_logs/exports/{id}",
    tag = "audit-logs",
    operation_id = "AuditLogExportsController_export",
    summary = "Get an export",
    description = "Once ready, `url` is a signed link that expires; getting the export again gives a fresh one.",
    params(("id" = String, Path, description = "The export's id.", example = "audit_log_export_01GBZK5MP7TD1YCFQHFR22180V")),
    responses(
        (status = 200, description = "The export.", body = ExportResponse),
        (status = 404, description = "No such export.", body = ErrorResponse),
    ),
)]
pub(crate) async fn get_export(
    State(state): State<AppState>,
    headers: HeaderMap,
    WirePath(id): WirePath,
) -> Result<Json<ExportResponse>, ApiError> {
    let service = service(&state)?;
    let export_id = ExportId::parse(&id).map_err(|_| not_found(&id))?;
    let export = match service.get(export_id).await {
        Ok(export) => export,
        Err(vellum_store::StoreError::NotFound { .. }) => return Err(not_found(&id)),
        Err(error) => return Err(error.into()),
    };
    Ok(Json(
        export_response(service, &export, &base_url(&state, &headers)).await?,
    ))
}

#[utoipa::path(
    get,
    path = "/audit_logs/exports/{id}/download",
    tag = "audit-logs",
    operation_id = "AuditLogExportsController_download",
    summary = "Download an export's file",
    description = "The signed link an export's `url` gives: the signature is the credential, so no API key is needed.",
    security(()),
    params(
        ("id" = String, Path, description = "The export's id."),
        ("expires" = i64, Query, description = "When the link expires (Unix seconds)."),
        ("signature" = String, Query, description = "The link's signature."),
    ),
    responses(
        (status = 200, description = "The file.", content(
            (String = "text/csv"),
            (String = "application/x-ndjson"),
        )),
        (status = 403, description = "The link is altered or expired.", body = ErrorResponse),
        (status = 404, description = "No such export, or its file is gone.", body = ErrorResponse),
    ),
)]
pub(crate) async fn download(
    State(state): State<AppState>,
    WirePath(id): WirePath,
    query: QueryPairs,
) -> Result<Response, ApiError> {
    let service = service(&state)?;
    let refused = |message: &str, code: &'static str| ApiError::Forbidden {
        message: message.to_owned(),
        code,
    };
    let invalid = || refused("This download link is not valid.", "invalid_download_link");
    let export_id = ExportId::parse(&id).map_err(|_| invalid())?;
    let expires = query
        .single("expires")
        .ok()
        .flatten()
        .and_then(|text| text.parse::<i64>().ok())
        .ok_or_else(invalid)?;
    let signature = query.single("signature").ok().flatten().ok_or_else(invalid)?;
    let (export, file) = service
        .open_download(export_id, expires, signature)
        .await
        .map_err(|error| match error {
            DownloadError::Link(LinkError::BadSignature) => invalid(),
            DownloadError::Link(LinkError::Expired) => refused(
                "This download link has expired; get the export again for a new link.",
                "download_link_expired",
            ),
            DownloadError::NoFile => not_found(&id),
            DownloadError::Store(error) => error.into(),
            DownloadError::Storage(error) => ApiError::Internal(error.to_string()),
        })?;
    let size = file.meta.size;
    let file_name = format!("{}.{}", export.id, export.format.extension());
    Ok((
        [
            (header::CONTENT_TYPE, export.format.content_type().to_owned()),
            (header::CONTENT_LENGTH, size.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{file_name}\""),
            ),
            (header::CACHE_CONTROL, "private, no-store".to_owned()),
        ],
        Body::from_stream(file.into_stream()),
    )
        .into_response())
}
