//! `/audit_logs/events`: ingest (one event, exactly as WorkOS; or a batch of up to 1,000) and
//! reading events back (Vellum's addition, in WorkOS's list conventions).

use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use vellum_core::event::{RawEvent, RawMetadata, RawParty, validate_event};
use vellum_core::filter::{check_filter_values, check_search};
use vellum_core::time_range::{Bound, Instant, TimeRange};
use vellum_core::{Event, EventId, OrganizationId, ValidationErrors};
use vellum_ingest::{BatchItem, BatchOutcome, BatchResult, IdempotencyKey};
use vellum_store::EventFilter;

use crate::AppState;
use crate::error::ApiError;
use crate::extract::{JsonBytes, QueryPairs, WirePath, parse_json};
use crate::wire::{ListResponse, page_request};

/// The most events in one batch request.
pub const MAX_BATCH_EVENTS: usize = 1000;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/audit_logs/events", post(create_event).get(list_events))
        .route("/audit_logs/events/batch", post(create_events_batch))
        .route("/audit_logs/events/{id}", get(get_event))
}

/// Only the reading routes, for the dashboard (a browser session never ingests events).
pub(crate) fn read_routes() -> Router<AppState> {
    Router::new()
        .route("/audit_logs/events", get(list_events))
        .route("/audit_logs/events/{id}", get(get_event))
}

#[derive(Deserialize)]
struct PartyBody {
    id: Option<String>,
    #[serde(rename = "type")]
    party_type: Option<String>,
    name: Option<String>,
    metadata: Option<RawMetadata>,
}

impl From<PartyBody> for RawParty {
    fn from(body: PartyBody) -> Self {
        Self {
            id: body.id,
            party_type: body.party_type,
            name: body.name,
            metadata: body.metadata,
        }
    }
}

#[derive(Deserialize)]
struct ContextBody {
    location: Option<String>,
    user_agent: Option<String>,
}

#[derive(Deserialize)]
struct EventBody {
    action: Option<String>,
    occurred_at: Option<String>,
    version: Option<i64>,
    #[serde(default, deserialize_with = "crate::wire::object_or_null")]
    actor: Option<PartyBody>,
    #[serde(default, deserialize_with = "crate::wire::objects_or_null")]
    targets: Option<Vec<PartyBody>>,
    #[serde(default, deserialize_with = "crate::wire::object_or_null")]
    context: Option<ContextBody>,
    metadata: Option<RawMetadata>,
}

impl From<EventBody> for RawEvent {
    fn from(body: EventBody) -> Self {
        Self {
            action: body.action,
            occurred_at: body.occurred_at,
            version: body.version,
            actor: body.actor.map(RawParty::from),
            targets: body
                .targets
                .map(|targets| targets.into_iter().map(RawParty::from).collect()),
            context: body.context.map(|context| (context.location, context.user_agent)),
            metadata: body.metadata,
        }
    }
}

#[derive(Deserialize)]
struct CreateEventBody {
    organization_id: Option<String>,
    #[serde(default, deserialize_with = "crate::wire::object_or_null")]
    event: Option<EventBody>,
}

#[derive(Deserialize)]
struct BatchBody {
    organization_id: Option<String>,
    /// Kept as the JSON text sent, so that one malformed event fails alone and numbers are
    /// judged as written.
    events: Option<Vec<Box<serde_json::value::RawValue>>>,
}

/// Reads `organization_id`: missing is a 422; an id that cannot exist is a 404, as for any
/// unknown organization.
fn organization_id(value: Option<String>, errors: &mut ValidationErrors) -> Result<Option<OrganizationId>, ApiError> {
    match value {
        None => {
            errors.push("organization_id", "required", "organization_id is required");
            Ok(None)
        }
        Some(text) => OrganizationId::parse(&text).map(Some).map_err(|_| ApiError::NotFound {
            message: format!("Organization not found: '{text}'."),
        }),
    }
}

/// Reads the `Idempotency-Key` header into a key bound to this exact request.
pub(crate) fn idempotency_key(
    headers: &HeaderMap,
    path: &str,
    body: &[u8],
) -> Result<Option<IdempotencyKey>, ApiError> {
    headers
        .get("idempotency-key")
        .map(|value| IdempotencyKey::new(value.as_bytes(), path, body))
        .transpose()
        .map_err(ApiError::Validation)
}

async fn create_event(
    State(state): State<AppState>,
    headers: HeaderMap,
    JsonBytes(bytes): JsonBytes,
) -> Result<Json<Value>, ApiError> {
    let body: CreateEventBody = parse_json(&bytes)?;
    let mut errors = ValidationErrors::new();
    let organization_id = organization_id(body.organization_id, &mut errors)?;
    let input = match body.event {
        None => {
            errors.push("event", "required", "event is required");
            None
        }
        Some(event) => validate_event(event.into(), "event", &mut errors),
    };
    let (Some(organization_id), Some(input)) = (organization_id, input) else {
        return Err(errors.into());
    };
    let key = idempotency_key(&headers, "/audit_logs/events", &bytes)?;
    state.ingest.create_event(organization_id, input, key).await?;
    Ok(Json(json!({ "success": true })))
}

/// The batch response: one entry per submitted event, in order, with the ids of those stored.
fn batch_response(outcome: &BatchOutcome) -> Value {
    let data: Vec<Value> = outcome
        .items
        .iter()
        .enumerate()
        .map(|(index, item)| match item {
            BatchItem::Stored(id) => json!({ "index": index, "success": true, "id": id.to_string() }),
            BatchItem::Rejected(rejection) => {
                let error = ApiError::from(rejection.clone());
                let mut entry = Map::new();
                entry.insert("index".into(), json!(index));
                entry.insert("success".into(), json!(false));
                entry.insert("status".into(), json!(error.status().as_u16()));
                if let Value::Object(fields) = error.body() {
                    entry.extend(fields);
                }
                Value::Object(entry)
            }
        })
        .collect();
    let succeeded = outcome.succeeded();
    json!({
        "object": "audit_log_event_batch",
        "succeeded": succeeded,
        "failed": outcome.items.len() - succeeded,
        "data": data,
    })
}

async fn create_events_batch(
    State(state): State<AppState>,
    headers: HeaderMap,
    JsonBytes(bytes): JsonBytes,
) -> Result<Json<Value>, ApiError> {
    let body: BatchBody = parse_json(&bytes)?;
    let mut errors = ValidationErrors::new();
    let organization_id = organization_id(body.organization_id, &mut errors)?;
    match &body.events {
        None => errors.push("events", "required", "events is required: a list of 1 to 1000 events"),
        Some(events) if events.is_empty() || events.len() > MAX_BATCH_EVENTS => {
            errors.push(
                "events",
                "invalid",
                format!("a batch holds 1 to {MAX_BATCH_EVENTS} events"),
            );
        }
        Some(_) => {}
    }
    let (Some(organization_id), Some(raw_events), true) = (organization_id, body.events, errors.is_empty()) else {
        return Err(errors.into());
    };
    let key = idempotency_key(&headers, "/audit_logs/events/batch", &bytes)?;
    let items = raw_events
        .into_iter()
        .enumerate()
        .map(|(index, raw)| {
            let prefix = format!("events.{index}");
            let mut deserializer = serde_json::Deserializer::from_str(raw.get());
            let event_body: EventBody = match serde_path_to_error::deserialize(&mut deserializer) {
                Ok(crate::wire::ObjectOnly(event_body)) => event_body,
                Err(error) => {
                    let path = error.path().to_string().replace('[', ".").replace(']', "");
                    let field = if path == "." {
                        prefix
                    } else {
                        format!("{prefix}.{path}")
                    };
                    let mut errors = ValidationErrors::new();
                    errors.push(
                        field,
                        "invalid_type",
                        crate::extract::strip_position(&error.into_inner().to_string()),
                    );
                    return Err(errors);
                }
            };
            let mut errors = ValidationErrors::new();
            validate_event(event_body.into(), &prefix, &mut errors).ok_or(errors)
        })
        .collect();
    match state.ingest.create_batch(organization_id, items, key).await? {
        BatchResult::Outcome(outcome) => Ok(Json(batch_response(&outcome))),
        // The stored answer of a batch claimed by an earlier version.
        BatchResult::Verbatim(body) => {
            Ok(Json(serde_json::from_str(&body).map_err(|error| {
                ApiError::Internal(format!("stored batch response is not JSON: {error}"))
            })?))
        }
    }
}

/// The wire form of a stored event: the canonical envelope the log commits to (so the read API
/// shows exactly what was committed), with `object`, and `version` for the schema version.
pub fn event_json(event: &Event) -> Value {
    let Value::Object(envelope) = vellum_core::canonical::event_envelope(event) else {
        unreachable!("the envelope is an object");
    };
    let mut object = Map::new();
    object.insert("object".into(), json!("audit_log_event"));
    for (name, value) in envelope {
        match name.as_str() {
            "format" => {}
            "schema_version" => {
                object.insert("version".into(), value);
            }
            _ => {
                object.insert(name, value);
            }
        }
    }
    Value::Object(object)
}

async fn list_events(State(state): State<AppState>, query: QueryPairs) -> Result<Json<ListResponse<Value>>, ApiError> {
    let mut errors = ValidationErrors::new();
    let organization = match query.single("organization_id") {
        Ok(Some(text)) => Some(OrganizationId::parse(text).map_err(|_| ApiError::NotFound {
            message: format!("Organization not found: '{text}'."),
        })?),
        Ok(None) => {
            errors.push("organization_id", "required", "organization_id is required");
            None
        }
        Err(_) => {
            errors.push("organization_id", "repeated", "organization_id may be given only once");
            None
        }
    };
    let page = page_request(&query, &mut errors, |text| {
        EventId::parse(text).map_err(|error| format!("not an event id: {error}"))
    });
    let mut time = |name: &'static str| match query.single(name) {
        Ok(Some(text)) => match Instant::parse(text) {
            Some(instant) => Some(instant),
            None => {
                errors.push(
                    name,
                    "invalid_date",
                    format!("{name} must be an ISO 8601 date-time from year 0000 to 9999"),
                );
                None
            }
        },
        Ok(None) => None,
        Err(_) => {
            errors.push(name, "repeated", format!("{name} may be given only once"));
            None
        }
    };
    let range_start = time("range_start");
    let range_end = time("range_end");
    if let (Some(start), Some(end)) = (range_start, range_end)
        && start > end
    {
        errors.push("range_end", "invalid", "range_end must not be before range_start");
    }
    // Compared exactly with the stored milliseconds (a bound may fall inside one).
    let (range_start, range_end) = TimeRange::of(
        range_start
            .map(Bound::AtOrAfter)
            .into_iter()
            .chain(range_end.map(Bound::Before)),
    )
    .filter_bounds();
    let search = match query.single("search") {
        Ok(search) => search
            .filter(|text| !text.is_empty() && check_search("search", text, &mut errors))
            .map(str::to_owned),
        Err(_) => {
            errors.push("search", "repeated", "search may be given only once");
            None
        }
    };
    let mut list = |name: &'static str| {
        let values = query.list_exact(name);
        check_filter_values(name, values.len(), &mut errors);
        values
    };
    let filter = EventFilter {
        actions: list("actions"),
        actor_ids: list("actor_ids"),
        actor_names: list("actor_names"),
        target_types: list("targets"),
        target_ids: list("target_ids"),
        range_start,
        range_end,
        search,
    };
    let Some(organization) = organization.filter(|_| errors.is_empty()) else {
        return Err(errors.into());
    };
    let cursor_parameter = match &page.cursor {
        Some(vellum_core::Cursor::Before(_)) => "before",
        _ => "after",
    };
    let page = state
        .store
        .list_events(organization, filter, page)
        .await
        .map_err(|error| cursor_error(error, cursor_parameter))?;
    Ok(Json(ListResponse::from_page(page, |event| event_json(&event))))
}

/// A cursor from another organization's list is a 422 on the parameter that carried it.
fn cursor_error(error: vellum_store::StoreError, parameter: &'static str) -> ApiError {
    match error {
        vellum_store::StoreError::InvalidInput {
            field: "cursor",
            message,
        } => ApiError::invalid_field(parameter, "invalid_cursor", message),
        other => other.into(),
    }
}

async fn get_event(State(state): State<AppState>, WirePath(id): WirePath) -> Result<Json<Value>, ApiError> {
    let event_id = EventId::parse(&id).map_err(|_| ApiError::NotFound {
        message: format!("Audit log event not found: '{id}'."),
    })?;
    Ok(Json(event_json(&state.store.get_event(event_id).await?)))
}

#[cfg(test)]
mod robustness;
