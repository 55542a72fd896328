//! `/audit_logs/log/*`: the verifiable log of each organization (docs/log-format.md).

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Value, json};
use vellum_core::{EventId, OrganizationId, ValidationErrors};

use crate::AppState;
use crate::error::ApiError;
use crate::events::event_json;
use crate::extract::QueryPairs;

/// The most entries one `entries` request returns.
pub const MAX_ENTRIES_PER_REQUEST: u64 = 1000;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/audit_logs/log/checkpoint", get(checkpoint))
        .route("/audit_logs/log/public_key", get(public_key))
        .route("/audit_logs/log/proof/inclusion", get(inclusion_proof))
        .route("/audit_logs/log/proof/consistency", get(consistency_proof))
        .route("/audit_logs/log/entries", get(entries))
}

fn organization(query: &QueryPairs, errors: &mut ValidationErrors) -> Result<Option<OrganizationId>, ApiError> {
    match query.single("organization_id") {
        Ok(Some(text)) => OrganizationId::parse(text).map(Some).map_err(|_| ApiError::NotFound {
            message: format!("Organization not found: '{text}'."),
        }),
        Ok(None) => {
            errors.push("organization_id", "required", "organization_id is required");
            Ok(None)
        }
        Err(_) => {
            errors.push("organization_id", "repeated", "organization_id may be given only once");
            Ok(None)
        }
    }
}

fn number(query: &QueryPairs, name: &'static str, errors: &mut ValidationErrors) -> Option<u64> {
    match query.single(name) {
        Ok(Some(text)) => match text.parse::<u64>() {
            Ok(value) => Some(value),
            Err(_) => {
                errors.push(name, "invalid", format!("{name} is a non-negative integer"));
                None
            }
        },
        Ok(None) => None,
        Err(_) => {
            errors.push(name, "repeated", format!("{name} may be given only once"));
            None
        }
    }
}

fn origin(state: &AppState, organization_id: OrganizationId) -> String {
    format!("{}/{organization_id}", state.log.name())
}

async fn checkpoint(State(state): State<AppState>, query: QueryPairs) -> Result<impl IntoResponse, ApiError> {
    let mut errors = ValidationErrors::new();
    let Some(organization_id) = organization(&query, &mut errors)?.filter(|_| errors.is_empty()) else {
        return Err(errors.into());
    };
    let signed = state
        .store
        .log_checkpoint(organization_id, state.log.clone(), origin(&state, organization_id))
        .await?;
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], signed.note))
}

async fn public_key(State(state): State<AppState>) -> Json<Value> {
    Json(json!({
        "algorithm": "ed25519",
        "key_name": state.log.name(),
        "public_key": BASE64.encode(state.log.public_key()),
        "verifier_key": state.log.verifier_key(),
    }))
}

fn hashes_json(hashes: &[vellum_core::merkle::Hash]) -> Vec<String> {
    hashes.iter().map(|hash| BASE64.encode(hash)).collect()
}

async fn inclusion_proof(State(state): State<AppState>, query: QueryPairs) -> Result<Json<Value>, ApiError> {
    let mut errors = ValidationErrors::new();
    let organization_id = organization(&query, &mut errors)?;
    let event_id = match query.single("event_id") {
        Ok(Some(text)) => Some(EventId::parse(text).map_err(|_| ApiError::NotFound {
            message: format!("Audit log event not found: '{text}'."),
        })?),
        _ => {
            errors.push("event_id", "required", "event_id is required");
            None
        }
    };
    let tree_size = number(&query, "tree_size", &mut errors);
    let (Some(organization_id), Some(event_id), true) = (organization_id, event_id, errors.is_empty()) else {
        return Err(errors.into());
    };
    let proof = state
        .store
        .log_inclusion_proof(organization_id, event_id, tree_size)
        .await?;
    Ok(Json(json!({
        "leaf_index": proof.leaf_index,
        "tree_size": proof.tree_size,
        "hashes": hashes_json(&proof.hashes),
    })))
}

async fn consistency_proof(State(state): State<AppState>, query: QueryPairs) -> Result<Json<Value>, ApiError> {
    let mut errors = ValidationErrors::new();
    let organization_id = organization(&query, &mut errors)?;
    let first = number(&query, "first", &mut errors);
    let second = number(&query, "second", &mut errors);
    if first.is_none() && errors.is_empty() {
        errors.push("first", "required", "first is required");
    }
    if second.is_none() && errors.is_empty() {
        errors.push("second", "required", "second is required");
    }
    let (Some(organization_id), Some(first), Some(second), true) = (organization_id, first, second, errors.is_empty())
    else {
        return Err(errors.into());
    };
    let hashes = state
        .store
        .log_consistency_proof(organization_id, first, second)
        .await?;
    Ok(Json(
        json!({ "first": first, "second": second, "hashes": hashes_json(&hashes) }),
    ))
}

async fn entries(State(state): State<AppState>, query: QueryPairs) -> Result<Json<Value>, ApiError> {
    let mut errors = ValidationErrors::new();
    let organization_id = organization(&query, &mut errors)?;
    let start = number(&query, "start", &mut errors).unwrap_or(0);
    let end = number(&query, "end", &mut errors);
    if let Some(end) = end
        && (end < start || end - start > MAX_ENTRIES_PER_REQUEST)
    {
        errors.push(
            "end",
            "invalid",
            format!("end is at least start and at most start + {MAX_ENTRIES_PER_REQUEST}"),
        );
    }
    let Some(organization_id) = organization_id.filter(|_| errors.is_empty()) else {
        return Err(errors.into());
    };
    let end = end.unwrap_or(start.saturating_add(MAX_ENTRIES_PER_REQUEST));
    let tree_size = state.store.log_tree_head(organization_id).await?.size;
    let events = state
        .store
        .log_entries(organization_id, start, end.min(tree_size).max(start))
        .await?;
    let data: Vec<Value> = events
        .iter()
        .map(|event| {
            json!({
                "log_index": event.log_index,
                "id": event.id.to_string(),
                "canonical": BASE64.encode(vellum_core::canonical::canonical_event_bytes(event)),
                "event": event_json(event),
            })
        })
        .collect();
    Ok(Json(json!({ "object": "list", "tree_size": tree_size, "data": data })))
}
