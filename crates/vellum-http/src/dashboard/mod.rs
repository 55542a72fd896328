//! The operator dashboard at `/dashboard`: a page of plain HTML, CSS and JavaScript modules
//! embedded in the binary, and its JSON API at `/dashboard/api`.
//!
//! The dashboard's API is the public WorkOS-shaped API itself, mounted a second time under
//! `/dashboard/api` behind a session cookie instead of an API key (so the page renders the same
//! wire shapes the SDKs read, and no handler exists twice), plus what only operators do: sign-in,
//! API keys and a health summary. Event ingest is not mounted there: a browser session reads
//! trails, it never writes to them.

mod assets;
mod passwords;
pub(crate) mod session;

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use vellum_core::{ApiKey, ApiKeyId, OrganizationId};

use crate::AppState;
use crate::error::ApiError;
use crate::extract::{WireJson, WirePath};

pub(crate) use assets::{security_headers, serve as serve_asset};
pub(crate) use passwords::PasswordChecker;

/// The most organizations the health summary describes one by one.
const HEALTH_ORGANIZATIONS: usize = 100;

pub(crate) fn routes(state: &AppState) -> Router<AppState> {
    let signed_in = Router::new()
        .merge(crate::organizations::routes())
        .merge(crate::retention::routes())
        .merge(crate::schemas::routes())
        .merge(crate::events::read_routes())
        .merge(crate::log::routes())
        .merge(crate::exports::routes())
        .merge(crate::streams::routes())
        .route("/api_keys", get(list_api_keys).post(create_api_key))
        .route("/api_keys/{id}/revoke", post(revoke_api_key))
        .route("/health", get(health))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            session::require_session,
        ));
    // Sign-in is the one body anyone may send without a credential: a few hundred bytes do.
    let session = crate::extract::limit_body(
        Router::new().route(
            "/session",
            get(session::current).post(session::sign_in).delete(session::sign_out),
        ),
        session::MAX_SIGN_IN_BODY_BYTES,
    );
    let api = Router::new()
        .merge(session)
        .merge(signed_in)
        .fallback(crate::error::route_not_found)
        .layer(axum::middleware::map_response(no_store));
    Router::new()
        .nest("/dashboard/api", api)
        .route("/dashboard", get(assets::index))
        .route("/dashboard/", get(assets::index))
        .route("/dashboard/assets/{file}", get(assets::asset))
        .route("/dashboard/{*page}", get(assets::index))
}

/// Dashboard API answers are about one operator's view: never cached anywhere.
async fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn api_key_json(key: &ApiKey) -> Value {
    json!({
        "object": "api_key",
        "id": key.id.to_string(),
        "name": key.name,
        "redacted_secret": key.redacted_secret,
        "status": if key.is_active() { "active" } else { "revoked" },
        "created_at": key.created_at.to_wire(),
        "revoked_at": key.revoked_at.map(vellum_core::Timestamp::to_wire),
    })
}

/// `GET /dashboard/api/api_keys`: every key, newest first, never a secret.
async fn list_api_keys(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let mut keys = state.store.list_api_keys().await?;
    keys.reverse();
    let data: Vec<Value> = keys.iter().map(api_key_json).collect();
    Ok(Json(json!({ "object": "list", "data": data })))
}

#[derive(Deserialize)]
struct CreateApiKeyBody {
    name: Option<String>,
}

/// `POST /dashboard/api/api_keys`: a new key; its secret is in this answer only.
async fn create_api_key(
    State(state): State<AppState>,
    WireJson(body): WireJson<CreateApiKeyBody>,
) -> Result<Response, ApiError> {
    let name = body.name.unwrap_or_default();
    let name = name.trim();
    if let Err(message) = vellum_core::api_key::validate_api_key_name(name) {
        return Err(ApiError::invalid_field("name", "invalid", message.to_string()));
    }
    let secret = vellum_store::generate_api_key_secret()
        .map_err(|error| ApiError::Internal(format!("no randomness: {error}")))?;
    let key = state.store.create_api_key(name.to_owned(), secret.clone()).await?;
    tracing::info!(key_id = %key.id, "api key created from the dashboard");
    let mut body = api_key_json(&key);
    body["secret"] = Value::String(secret.expose().to_owned());
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// `POST /dashboard/api/api_keys/{id}/revoke`: a running server refuses it from the next request.
async fn revoke_api_key(State(state): State<AppState>, WirePath(id): WirePath) -> Result<Json<Value>, ApiError> {
    let key_id = ApiKeyId::parse(&id).map_err(|_| ApiError::NotFound {
        message: format!("API key not found: '{id}'."),
    })?;
    let key = state.store.revoke_api_key(key_id).await?;
    state.api_keys.forget_all();
    tracing::info!(key_id = %key.id, "api key revoked from the dashboard");
    Ok(Json(api_key_json(&key)))
}

/// `GET /dashboard/api/health`: the store's state, event counts and the latest checkpoints.
async fn health(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let store_status = match state.store.check_ready().await {
        Ok(()) => json!({ "status": "ok" }),
        Err(error) => json!({ "status": "unavailable", "message": error.to_string() }),
    };
    let logs = state.store.log_organizations().await.unwrap_or_default();
    let mut total_events: u64 = 0;
    let mut organizations = Vec::new();
    for (index, owner) in logs.iter().rev().enumerate() {
        let scan = state.store.log_scan(owner.organization_id, 0, 0).await?;
        total_events += scan.tree_size;
        if index < HEALTH_ORGANIZATIONS {
            organizations.push(
                health_organization(
                    &state,
                    owner.organization_id,
                    owner.deleted,
                    scan.tree_size,
                    scan.checkpoint_note,
                )
                .await?,
            );
        }
    }
    Ok(Json(json!({
        "object": "health",
        "version": env!("CARGO_PKG_VERSION"),
        "store": store_status,
        "total_events": total_events,
        "organizations": organizations,
        "organizations_truncated": logs.len() > HEALTH_ORGANIZATIONS,
    })))
}

async fn health_organization(
    state: &AppState,
    organization_id: OrganizationId,
    deleted: bool,
    events: u64,
    checkpoint: Option<String>,
) -> Result<Value, ApiError> {
    let name = match state.store.get_organization(organization_id).await {
        Ok(organization) => Some(organization.name),
        Err(vellum_store::StoreError::NotFound { .. }) => None,
        Err(error) => return Err(error.into()),
    };
    Ok(json!({
        "id": organization_id.to_string(),
        "name": name,
        "deleted": deleted,
        "events": events,
        "checkpoint": checkpoint,
    }))
}
