//! Liveness and readiness probes. Neither needs an API key.

use axum::Json;
use axum::extract::State;
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
