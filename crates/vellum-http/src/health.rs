//! Liveness and readiness probes. Neither needs an API key.

use axum::Json;
use axum::extract::State;
use axum::response::IntoResponse;
use serde::Serialize;
use utoipa::ToSchema;

use crate::AppState;
use crate::error::{ApiError, ErrorResponse};
use crate::wire::wire_const;

wire_const!(
    /// `"ok"`.
    HealthOk = "ok"
);
wire_const!(
    /// `"ready"`.
    ReadyStatus = "ready"
);

/// The answer of `GET /health`.
#[derive(Serialize, ToSchema)]
pub(crate) struct HealthResponse {
    status: HealthOk,
}

/// The answer of `GET /ready`.
#[derive(Serialize, ToSchema)]
pub(crate) struct ReadyResponse {
    status: ReadyStatus,
}

/// `GET /health`: 200 whenever the server accepts requests.
#[utoipa::path(
    get,
    path = "/health",
    tag = "health",
    operation_id = "health",
    summary = "Liveness probe",
    security(()),
    responses((status = 200, description = "The server accepts requests.", body = HealthResponse)),
)]
pub(crate) async fn health() -> Json<HealthResponse> {
    Json(HealthResponse {
        status: HealthOk::Value,
    })
}

/// `GET /ready`: 200 when the store can serve requests, 503 otherwise.
#[utoipa::path(
    get,
    path = "/ready",
    tag = "health",
    operation_id = "ready",
    summary = "Readiness probe",
    security(()),
    responses(
        (status = 200, description = "The store can serve requests.", body = ReadyResponse),
        (status = 503, description = "The store cannot serve requests.", body = ErrorResponse),
    ),
)]
pub(crate) async fn ready(State(state): State<AppState>) -> Result<Json<ReadyResponse>, ApiError> {
    state.store.check_ready().await?;
    Ok(Json(ReadyResponse {
        status: ReadyStatus::Value,
    }))
}

#[utoipa::path(
    get,
    path = "/metrics",
    tag = "health",
    operation_id = "metrics",
    summary = "Prometheus metrics",
    description = "Vellum's addition: the Prometheus text exposition (format 0.0.4) of the server's metrics (see docs/operations.md). Not served here when `--metrics-listen` gives metrics a listener of their own.",
    security(()),
    responses((status = 200, description = "The metrics.", content_type = "text/plain; version=0.0.4", body = String)),
)]
pub(crate) async fn metrics(State(state): State<AppState>) -> axum::response::Response {
    match &state.metrics {
        Some(render) => crate::metrics_response(render),
        None => ApiError::NotFound {
            message: "Metrics are not served on this listener.".into(),
        }
        .into_response(),
    }
}
