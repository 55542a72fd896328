//! Liveness and readiness probes. Neither needs an API key.

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use crate::AppState;
use crate::error::ApiError;

/// `GET /health`: 200 whenever the server accepts requests.
pub(crate) async fn health() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// `GET /ready`: 200 when the store can serve requests, 503 otherwise.
pub(crate) async fn ready(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    state.store.check_ready().await?;
    Ok(Json(json!({ "status": "ready" })))
}
