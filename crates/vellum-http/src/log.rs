//! `/audit_logs/log/*`: the verifiable log of each organization (docs/log-format.md).

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::Serialize;
use utoipa::ToSchema;
use vellum_core::{EventId, OrganizationId, ValidationErrors};

use crate::AppState;
use crate::error::{ApiError, ErrorResponse, ValidationError};
use crate::events::AuditLogEvent;
use crate::extract::QueryPairs;
use crate::wire::{ListObject, wire_const};

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
        Ok(Some(text)) => crate::observe::organization_id(text)
            .map(Some)
            .map_err(|_| ApiError::NotFound {
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

#[utoipa::path(
    get,
    path = "/audit_logs/log/checkpoint",
    tag = "log",
    operation_id = "LogController_checkpoint",
    summary = "Get the latest signed checkpoint of an organization's log",
    description = "Vellum's addition: a signed note (see docs/log-format.md).",
    params(("organization_id" = String, Query, description = "The organization whose log this is.", example = "org_01EHWNCE74X7JSDV0X3SZ3KJNY")),
    responses(
        (status = 200, description = "The signed checkpoint.", body = String, content_type = "text/plain"),
        (status = 404, description = "No such organization.", body = ErrorResponse),
        (status = 422, description = "A parameter is missing or not acceptable.", body = ValidationError),
    ),
)]
pub(crate) async fn checkpoint(
    State(state): State<AppState>,
    query: QueryPairs,
) -> Result<impl IntoResponse, ApiError> {
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

wire_const!(
    /// `"ed25519"`.
    Ed25519 = "ed25519"
);

/// The key the server signs checkpoints with.
#[derive(Serialize, ToSchema)]
pub(crate) struct LogPublicKey {
    algorithm: Ed25519,
    /// The key's name, as in the checkpoint's signature line.
    key_name: String,
    /// The raw public key, base64.
    public_key: String,
    /// The key in the note verifier format (`name+hash+base64`).
    verifier_key: String,
}

#[utoipa::path(
    get,
    path = "/audit_logs/log/public_key",
    tag = "log",
    operation_id = "LogController_publicKey",
    summary = "Get the key checkpoints are signed with",
    responses((status = 200, description = "The public key.", body = LogPublicKey)),
)]
pub(crate) async fn public_key(State(state): State<AppState>) -> Json<LogPublicKey> {
    Json(LogPublicKey {
        algorithm: Ed25519::Value,
        key_name: state.log.name().to_owned(),
        public_key: BASE64.encode(state.log.public_key()),
        verifier_key: state.log.verifier_key(),
    })
}

/// A proof that an event is in the log at a tree size.
#[derive(Serialize, ToSchema)]
pub(crate) struct LogInclusionProof {
    leaf_index: u64,
    tree_size: u64,
    /// The audit path, leaf side first, each hash base64.
    hashes: Vec<String>,
}

/// A proof that the log at `second` entries extends the log at `first`.
#[derive(Serialize, ToSchema)]
pub(crate) struct LogConsistencyProof {
    first: u64,
    second: u64,
    /// Each hash base64.
    hashes: Vec<String>,
}

/// A run of log entries.
#[derive(Serialize, ToSchema)]
pub(crate) struct LogEntries {
    object: ListObject,
    /// The log's size now.
    tree_size: u64,
    data: Vec<LogEntry>,
}

/// One entry of the log: the event, and the exact bytes its leaf hash is taken over; or, for a
/// position whose event a purge removed, its leaf hash and the position of the purge record that
/// accounts for it (`docs/retention.md`).
#[derive(Serialize, ToSchema)]
pub(crate) struct LogEntry {
    log_index: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    id: Option<String>,
    /// The canonical encoding of the event, base64.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    canonical: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<crate::events::AuditLogEventJson>, nullable = false)]
    event: Option<AuditLogEvent>,
    /// For an event whose parties are sealed (format v2): each party's salt, base64, the actor's
    /// first; `null` for an erased party (its seal is in `canonical`). With them a reader
    /// recomputes the seals from the values `event` shows (docs/log-format.md §8b).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    salts: Option<Vec<Option<String>>>,
    /// For a purged position, and for an event an erasure redacted (logged before sealed parties;
    /// it then has no `canonical`): the leaf hash the log holds, base64.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    leaf_hash: Option<String>,
    /// Only for a purged position: the log index of the purge record that removed its event.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    purged_by: Option<u64>,
}

fn hashes_json(hashes: &[vellum_core::merkle::Hash]) -> Vec<String> {
    hashes.iter().map(|hash| BASE64.encode(hash)).collect()
}

#[utoipa::path(
    get,
    path = "/audit_logs/log/proof/inclusion",
    tag = "log",
    operation_id = "LogController_inclusionProof",
    summary = "Prove that an event is in the log",
    params(
        ("organization_id" = String, Query, description = "The organization whose log this is.", example = "org_01EHWNCE74X7JSDV0X3SZ3KJNY"),
        ("event_id" = String, Query, description = "The event."),
        ("tree_size" = Option<u64>, Query, nullable = false, description = "The tree size to prove inclusion at (default: the latest)."),
    ),
    responses(
        (status = 200, description = "The proof.", body = LogInclusionProof),
        (status = 404, description = "No such organization or event.", body = ErrorResponse),
        (status = 422, description = "A parameter is missing or not acceptable.", body = ValidationError),
    ),
)]
pub(crate) async fn inclusion_proof(
    State(state): State<AppState>,
    query: QueryPairs,
) -> Result<Json<LogInclusionProof>, ApiError> {
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
    Ok(Json(LogInclusionProof {
        leaf_index: proof.leaf_index,
        tree_size: proof.tree_size,
        hashes: hashes_json(&proof.hashes),
    }))
}

#[utoipa::path(
    get,
    path = "/audit_logs/log/proof/consistency",
    tag = "log",
    operation_id = "LogController_consistencyProof",
    summary = "Prove that one tree size extends another",
    params(
        ("organization_id" = String, Query, description = "The organization whose log this is.", example = "org_01EHWNCE74X7JSDV0X3SZ3KJNY"),
        ("first" = u64, Query, description = "The smaller tree size."),
        ("second" = u64, Query, description = "The larger tree size."),
    ),
    responses(
        (status = 200, description = "The proof.", body = LogConsistencyProof),
        (status = 404, description = "No such organization.", body = ErrorResponse),
        (status = 422, description = "A parameter is missing or not acceptable.", body = ValidationError),
    ),
)]
pub(crate) async fn consistency_proof(
    State(state): State<AppState>,
    query: QueryPairs,
) -> Result<Json<LogConsistencyProof>, ApiError> {
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
    Ok(Json(LogConsistencyProof {
        first,
        second,
        hashes: hashes_json(&hashes),
    }))
}

#[utoipa::path(
    get,
    path = "/audit_logs/log/entries",
    tag = "log",
    operation_id = "LogController_entries",
    summary = "Read entries of the log",
    params(
        ("organization_id" = String, Query, description = "The organization whose log this is.", example = "org_01EHWNCE74X7JSDV0X3SZ3KJNY"),
        ("start" = Option<u64>, Query, nullable = false, description = "The first log index (default 0)."),
        ("end" = Option<u64>, Query, nullable = false, description = "The log index after the last (default and at most `start` + 1000)."),
    ),
    responses(
        (status = 200, description = "The entries.", body = LogEntries),
        (status = 404, description = "No such organization.", body = ErrorResponse),
        (status = 422, description = "A parameter is not acceptable.", body = ValidationError),
    ),
)]
pub(crate) async fn entries(State(state): State<AppState>, query: QueryPairs) -> Result<Json<LogEntries>, ApiError> {
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
    // An event an erasure redacted (logged before seals) no longer hashes to its leaf: it is
    // served with the leaf the log holds, which verifiers take on its erasure record's word.
    let redacted = events.iter().any(|entry| {
        matches!(entry, vellum_store::LogEntry::Event(event) if !vellum_core::canonical::leaf_is_recomputable(event))
    });
    let stored_leaves: std::collections::HashMap<u64, vellum_core::merkle::Hash> = if redacted {
        let scan = state
            .store
            .log_scan(organization_id, start, end.saturating_sub(start))
            .await?;
        scan.records
            .iter()
            .filter_map(|record| Some((u64::try_from(record.log_index).ok()?, record.stored_leaf?)))
            .collect()
    } else {
        std::collections::HashMap::new()
    };
    let data = events
        .iter()
        .map(|entry| match entry {
            vellum_store::LogEntry::Event(event) if !vellum_core::canonical::leaf_is_recomputable(event) => LogEntry {
                log_index: event.log_index,
                id: Some(event.id.to_string()),
                canonical: None,
                event: Some(AuditLogEvent::of(event)),
                salts: None,
                leaf_hash: stored_leaves.get(&event.log_index).map(|leaf| BASE64.encode(leaf)),
                purged_by: None,
            },
            vellum_store::LogEntry::Event(event) => LogEntry {
                log_index: event.log_index,
                id: Some(event.id.to_string()),
                canonical: Some(BASE64.encode(vellum_core::canonical::canonical_event_bytes(event))),
                event: Some(AuditLogEvent::of(event)),
                salts: vellum_core::seal::salts_text(event),
                leaf_hash: None,
                purged_by: None,
            },
            vellum_store::LogEntry::Purged(position) => LogEntry {
                log_index: position.log_index,
                id: None,
                canonical: None,
                event: None,
                salts: None,
                leaf_hash: Some(BASE64.encode(position.leaf)),
                purged_by: Some(position.purged_by),
            },
        })
        .collect();
    Ok(Json(LogEntries {
        object: ListObject::Value,
        tree_size,
        data,
    }))
}
