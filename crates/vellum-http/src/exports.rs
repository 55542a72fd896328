//! `/audit_logs/exports`: WorkOS's asynchronous exports (CSV), plus Vellum's verifiable NDJSON
//! (`format: "ndjson"`), and the signed download links of files kept on local disk.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Map, Value, json};
use vellum_core::export::{Export, ExportFilter, ExportFormat, ExportState};
use vellum_core::filter::{MAX_FILTER_VALUES, check_filter_values};
use vellum_core::time_range::{Bound, Instant, TimeRange};
use vellum_core::{ExportId, OrganizationId, Timestamp, ValidationErrors};
use vellum_export::{CreateError, DownloadError, ExportService, LinkError};

use crate::AppState;
use crate::error::ApiError;
use crate::extract::{QueryPairs, WireJson, WirePath};

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

/// The export as WorkOS renders it (`url` only when ready).
async fn export_json(service: &ExportService, export: &Export, base_url: &str) -> Result<Value, ApiError> {
    let url = service
        .download_url(export, base_url)
        .await
        .map_err(|error| ApiError::Internal(format!("cannot sign a download link: {error}")))?;
    let mut object = json!({
        "object": "audit_log_export",
        "id": export.id.to_string(),
        "state": export.state.as_str(),
        "url": url,
        "created_at": export.created_at.to_wire(),
        "updated_at": export.updated_at.to_wire(),
        "format": export.format.as_str(),
    });
    if export.state == ExportState::Ready {
        object["events"] = json!(export.rows);
        object["bytes"] = json!(export.bytes);
    }
    if let Some(error) = &export.error {
        object["error"] = json!(error);
    }
    Ok(object)
}

/// The URL clients reached this server at: the configured public URL, else the `Host` header.
fn base_url(state: &AppState, headers: &HeaderMap) -> String {
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

/// A list filter: an array of at most [`MAX_FILTER_VALUES`] strings.
fn string_list(body: &Map<String, Value>, name: &'static str, errors: &mut ValidationErrors) -> Vec<String> {
    match body.get(name) {
        None | Some(Value::Null) => Vec::new(),
        // Counted before the items are looked at, so a huge list costs one error, not one each.
        Some(Value::Array(items)) if !check_filter_values(name, items.len(), errors) => Vec::new(),
        Some(Value::Array(items)) => {
            let mut list = Vec::with_capacity(items.len());
            for (index, item) in items.iter().enumerate() {
                match item.as_str() {
                    Some(text) => list.push(text.to_owned()),
                    None => errors.push(
                        format!("{name}.{index}"),
                        "invalid",
                        format!("{name} holds strings only"),
                    ),
                }
            }
            list
        }
        Some(_) => {
            errors.push(name, "invalid", format!("{name} must be an array of strings"));
            Vec::new()
        }
    }
}

async fn create_export(
    State(state): State<AppState>,
    headers: HeaderMap,
    WireJson(body): WireJson<Map<String, Value>>,
) -> Result<impl IntoResponse, ApiError> {
    let service = service(&state)?;
    let mut errors = ValidationErrors::new();
    let organization = match body.get("organization_id") {
        Some(Value::String(text)) => Some(text.clone()),
        Some(_) => {
            errors.push("organization_id", "invalid", "organization_id must be a string");
            None
        }
        None => {
            errors.push("organization_id", "required", "organization_id is required");
            None
        }
    };
    let mut time = |name: &'static str| match body.get(name) {
        Some(Value::String(text)) => {
            let parsed = Instant::parse(text);
            if parsed.is_none() {
                errors.push(
                    name,
                    "invalid",
                    format!("{name} must be an ISO 8601 date string from year 0000 to 9999"),
                );
            }
            parsed
        }
        Some(_) => {
            errors.push(name, "invalid", format!("{name} must be an ISO 8601 date string"));
            None
        }
        None => {
            errors.push(name, "required", format!("{name} is required"));
            None
        }
    };
    let range_start = time("range_start");
    let range_end = time("range_end");
    let actions = string_list(&body, "actions", &mut errors);
    let mut actor_names = string_list(&body, "actor_names", &mut errors);
    // `actors` is WorkOS's deprecated name for `actor_names`; together they are one list.
    for name in string_list(&body, "actors", &mut errors) {
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
    let actor_ids = string_list(&body, "actor_ids", &mut errors);
    let target_types = string_list(&body, "targets", &mut errors);
    let format = match body.get("format") {
        None | Some(Value::Null) => Some(ExportFormat::Csv),
        Some(Value::String(text)) => ExportFormat::parse(text).or_else(|| {
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
    let organization_id = OrganizationId::parse(&organization).map_err(|_| ApiError::NotFound {
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
    let body = export_json(service, &export, &base_url(&state, &headers)).await?;
    Ok((axum::http::StatusCode::CREATED, Json(body)))
}

async fn get_export(
    State(state): State<AppState>,
    headers: HeaderMap,
    WirePath(id): WirePath,
) -> Result<Json<Value>, ApiError> {
    let service = service(&state)?;
    let export_id = ExportId::parse(&id).map_err(|_| not_found(&id))?;
    let export = match service.get(export_id).await {
        Ok(export) => export,
        Err(vellum_store::StoreError::NotFound { .. }) => return Err(not_found(&id)),
        Err(error) => return Err(error.into()),
    };
    Ok(Json(export_json(service, &export, &base_url(&state, &headers)).await?))
}

async fn download(
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
