//! `/audit_logs/events`: ingest (one event, exactly as WorkOS; or a batch of up to 1,000) and
//! reading events back (Vellum's addition, in WorkOS's list conventions).

use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use utoipa::{IntoParams, ToSchema};
use vellum_core::event::{RawEvent, RawMetadata, RawParty, validate_event};
use vellum_core::filter::{check_filter_values, check_search};
use vellum_core::time_range::{Bound, Instant, TimeRange};
use vellum_core::{Event, EventId, EventInput, OrganizationId, ValidationErrors};
use vellum_ingest::{BatchItem, BatchOutcome, BatchResult, IdempotencyKey};
use vellum_store::EventFilter;

use crate::AppState;
use crate::error::{ApiError, ErrorBody, ErrorResponse, EventBadRequest, ValidationError};
use crate::extract::{JsonBytes, QueryPairs, WirePath, parse_json};
use crate::wire::{ListResponse, PageParams, page_request, wire_const};

/// The most events in one batch request.
pub const MAX_BATCH_EVENTS: usize = 1000;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/audit_logs/events", post(create_event).get(list_events))
        .route("/audit_logs/events/batch", post(create_events_batch))
        .route("/audit_logs/events/stream", get(crate::tail::stream_events))
        .route("/audit_logs/events/{id}", get(get_event))
}

/// Only the reading routes, for the dashboard (a browser session never ingests events).
pub(crate) fn read_routes() -> Router<AppState> {
    Router::new()
        .route("/audit_logs/events", get(list_events))
        .route("/audit_logs/events/stream", get(crate::tail::stream_events))
        .route("/audit_logs/events/{id}", get(get_event))
}

/// The actor of a new event (each target is read the same way).
#[derive(Deserialize, ToSchema)]
#[schema(as = AuditLogEventActorDto)]
pub(crate) struct PartyBody {
    #[schema(required = true, value_type = String, min_length = 1, example = "user_TF4C5938")]
    id: Option<String>,
    #[serde(rename = "type")]
    #[schema(required = true, value_type = String, min_length = 1, example = "user")]
    party_type: Option<String>,
    #[schema(example = "Jon Smith")]
    name: Option<String>,
    #[schema(schema_with = metadata_schema)]
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

/// A target of a new event: the same members as the actor (both are read the same way), under
/// WorkOS's name for it.
#[derive(ToSchema)]
#[schema(as = AuditLogEventTargetDto)]
#[allow(dead_code)] // describes the wire; targets are read as `PartyBody`
pub(crate) struct TargetDoc {
    #[schema(min_length = 1, example = "user_98432YHF")]
    id: String,
    #[schema(rename = "type", min_length = 1, example = "user")]
    target_type: String,
    #[schema(example = "Jon Smith")]
    name: Option<String>,
    #[schema(schema_with = metadata_schema)]
    metadata: Option<RawMetadata>,
}

/// Metadata of a new event, its actor or a target, as WorkOS documents it: at most 50 keys
/// matching `^[a-zA-Z0-9_-]{0,40}$`; values are strings of at most 500 characters, numbers
/// (an integer within ±2^53, or a decimal a double holds exactly) or booleans.
fn metadata_schema() -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::{AnyOfBuilder, ObjectBuilder, Schema, SchemaType, Type};
    let value = AnyOfBuilder::new()
        .item(ObjectBuilder::new().schema_type(Type::String).max_length(Some(500)))
        .item(ObjectBuilder::new().schema_type(Type::Number))
        .item(ObjectBuilder::new().schema_type(Type::Boolean))
        .build();
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Object, Type::Null]))
        .description(Some(
            "At most 50 keys of the form `^[a-zA-Z0-9_-]{0,40}$`; values are strings of at most 500 \
             characters, numbers (an integer within ±2^53, or a decimal a double holds exactly) or booleans.",
        ))
        .max_properties(Some(50))
        .property_names(Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some("^[a-zA-Z0-9_-]{0,40}$")),
        ))
        .additional_properties(Some(Schema::AnyOf(value)))
        .build()
}

/// Where a new event happened.
#[derive(Deserialize, ToSchema)]
#[schema(as = AuditLogEventContextDto)]
pub(crate) struct ContextBody {
    #[schema(required = true, value_type = String, example = "123.123.123.123")]
    location: Option<String>,
    #[schema(example = "Chrome/104.0.0.0")]
    user_agent: Option<String>,
}

/// A new event.
#[derive(Deserialize, ToSchema)]
#[schema(as = AuditLogEventDto)]
pub(crate) struct EventBody {
    #[schema(required = true, value_type = String, example = "user.signed_in")]
    action: Option<String>,
    #[schema(required = true, value_type = String, format = DateTime, example = "2026-02-02T16:35:39.317Z")]
    occurred_at: Option<String>,
    /// The version of the action's schema to check the event against (default: the latest).
    #[schema(minimum = 1, example = 1)]
    version: Option<i64>,
    #[serde(default, deserialize_with = "crate::wire::object_or_null")]
    #[schema(required = true, value_type = PartyBody)]
    actor: Option<PartyBody>,
    #[serde(default, deserialize_with = "crate::wire::objects_or_null")]
    #[schema(required = true, value_type = Vec<TargetDoc>)]
    targets: Option<Vec<PartyBody>>,
    #[serde(default, deserialize_with = "crate::wire::object_or_null")]
    #[schema(required = true, value_type = ContextBody)]
    context: Option<ContextBody>,
    #[schema(schema_with = metadata_schema)]
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

/// The body of `POST /audit_logs/events`.
#[derive(Deserialize, ToSchema)]
#[schema(as = AuditLogEventIngestionDto)]
pub(crate) struct CreateEventBody {
    #[schema(required = true, value_type = String, example = "org_01EHWNCE74X7JSDV0X3SZ3KJNY")]
    organization_id: Option<String>,
    #[serde(default, deserialize_with = "crate::wire::object_or_null")]
    #[schema(required = true, value_type = EventBody)]
    event: Option<EventBody>,
}

/// The body of `POST /audit_logs/events/batch`.
#[derive(Deserialize, ToSchema)]
#[schema(as = AuditLogEventBatchDto)]
pub(crate) struct BatchBody {
    #[schema(required = true, value_type = String, example = "org_01EHWNCE74X7JSDV0X3SZ3KJNY")]
    organization_id: Option<String>,
    /// Kept as the JSON text sent, so that one malformed event fails alone and numbers are
    /// judged as written.
    #[schema(required = true, value_type = Vec<EventBody>, min_items = 1, max_items = 1000)]
    events: Option<Vec<Box<serde_json::value::RawValue>>>,
}

/// The filters of `GET /audit_logs/events`. A list filter is given as repeated parameters
/// (`actions=a&actions=b`, or `actions[]=a`); values are taken whole, never split on commas.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // describes the query for the document; read through `QueryPairs`
pub(crate) struct EventListParams {
    /// The organization whose events to list.
    #[param(required = true, example = "org_01EHWNCE74X7JSDV0X3SZ3KJNY")]
    organization_id: String,
    /// Events that occurred at or after this ISO 8601 date-time.
    #[param(format = DateTime)]
    range_start: Option<String>,
    /// Events that occurred before this ISO 8601 date-time.
    #[param(format = DateTime)]
    range_end: Option<String>,
    /// Matches actions, actor and target names and ids (at most 1,024 characters).
    #[param(max_length = 1024)]
    search: Option<String>,
    /// Only these actions (at most 100).
    #[param(style = Form, explode = true, max_items = 100)]
    actions: Option<Vec<String>>,
    /// Only actors with these ids (at most 100).
    #[param(style = Form, explode = true, max_items = 100)]
    actor_ids: Option<Vec<String>>,
    /// Only actors with these names (at most 100).
    #[param(style = Form, explode = true, max_items = 100)]
    actor_names: Option<Vec<String>>,
    /// Only events with a target of these types (at most 100).
    #[param(style = Form, explode = true, max_items = 100)]
    targets: Option<Vec<String>>,
    /// Only events with a target with these ids (at most 100).
    #[param(style = Form, explode = true, max_items = 100)]
    target_ids: Option<Vec<String>>,
}

/// Reads `organization_id`: missing is a 422; an id that cannot exist is a 404, as for any
/// unknown organization.
fn organization_id(value: Option<String>, errors: &mut ValidationErrors) -> Result<Option<OrganizationId>, ApiError> {
    match value {
        None => {
            errors.push("organization_id", "required", "organization_id is required");
            Ok(None)
        }
        Some(text) => crate::observe::organization_id(&text)
            .map(Some)
            .map_err(|_| ApiError::NotFound {
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

#[utoipa::path(
    post,
    path = "/audit_logs/events",
    tag = "audit-logs",
    operation_id = "AuditLogEventsController_create",
    summary = "Create an event",
    params(("idempotency-key" = Option<String>, Header, nullable = false, description = "Replays the first answer to a later request with the same key and body for 24 hours; the same key with another body is a 409.", example = "884793cd-bef4-46cf-8790-e3d4957a09ce")),
    request_body = CreateEventBody,
    responses(
        (status = 200, description = "Stored.", body = SuccessResponse),
        (status = 400, description = "The event breaks its action's schema (`invalid_audit_log_event`, with `errors`), or the body cannot be read.", body = EventBadRequest),
        (status = 404, description = "No such organization.", body = ErrorResponse),
        (status = 409, description = "The idempotency key was used with another body.", body = ErrorResponse),
        (status = 422, description = "A field is not acceptable.", body = ValidationError),
    ),
)]
pub(crate) async fn create_event(
    State(state): State<AppState>,
    headers: HeaderMap,
    JsonBytes(bytes): JsonBytes,
) -> Result<Json<SuccessResponse>, ApiError> {
    let CreateEventRequest {
        organization_id,
        input,
        key,
    } = read_create_event(&headers, &bytes)?;
    state.ingest.create_event(organization_id, input, key).await?;
    Ok(Json(SuccessResponse { success: true }))
}

/// A request to create one event, read and checked as far as the wire allows: what the ingest
/// service is handed.
pub(crate) struct CreateEventRequest {
    pub(crate) organization_id: OrganizationId,
    pub(crate) input: EventInput,
    pub(crate) key: Option<IdempotencyKey>,
}

/// Reads the body (and `Idempotency-Key`) of `POST /audit_logs/events`.
pub(crate) fn read_create_event(headers: &HeaderMap, bytes: &[u8]) -> Result<CreateEventRequest, ApiError> {
    let body: CreateEventBody = parse_json(bytes)?;
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
    let key = idempotency_key(headers, "/audit_logs/events", bytes)?;
    Ok(CreateEventRequest {
        organization_id,
        input,
        key,
    })
}

/// The answer of a stored event: always `{"success": true}`.
#[derive(Serialize, ToSchema)]
#[schema(as = AuditLogEventCreateResponse)]
pub(crate) struct SuccessResponse {
    pub(crate) success: bool,
}

wire_const!(
    /// `"audit_log_event_batch"`.
    BatchObject = "audit_log_event_batch"
);

/// The answer of a batch: one entry per submitted event, in order.
#[derive(Serialize, ToSchema)]
#[schema(as = AuditLogEventBatchResponse)]
pub(crate) struct BatchResponse {
    object: BatchObject,
    /// How many events were stored.
    succeeded: usize,
    /// How many were refused.
    failed: usize,
    data: Vec<BatchItemResponse>,
}

/// One event of a batch: stored (with its id), or refused (with the error it would have got on
/// its own, and that error's status).
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
#[schema(as = AuditLogEventBatchItem)]
pub(crate) enum BatchItemResponse {
    /// Stored.
    Stored(BatchItemStored),
    /// Refused.
    Refused(BatchItemRefused),
}

/// A stored event of a batch.
#[derive(Serialize, ToSchema)]
#[schema(as = AuditLogEventBatchItemStored)]
pub(crate) struct BatchItemStored {
    /// The event's position in the request, from 0.
    index: usize,
    /// `true`.
    success: bool,
    /// The stored event's id.
    #[schema(example = "01JBZ4Q9E3M0000000000000000")]
    id: String,
}

/// A refused event of a batch.
#[derive(Serialize, ToSchema)]
#[schema(as = AuditLogEventBatchItemRefused)]
pub(crate) struct BatchItemRefused {
    /// The event's position in the request, from 0.
    index: usize,
    /// `false`.
    success: bool,
    /// The status the event would have been refused with on its own (400 or 422).
    status: u16,
    /// The error the event would have been refused with on its own.
    #[serde(flatten)]
    #[schema(inline)]
    error: RefusalBody,
}

/// The members of an error body, for a refused event of a batch.
#[derive(Serialize, ToSchema)]
pub(crate) struct RefusalBody {
    message: String,
    code: String,
    /// The refused fields (as in a 422) or schema violations (as in a 400), when there are any.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Object>>)]
    errors: Option<Value>,
}

/// The batch response: one entry per submitted event, in order, with the ids of those stored.
pub(crate) fn batch_response(outcome: &BatchOutcome) -> BatchResponse {
    let data: Vec<BatchItemResponse> = outcome
        .items
        .iter()
        .enumerate()
        .map(|(index, item)| match item {
            BatchItem::Stored(id) => BatchItemResponse::Stored(BatchItemStored {
                index,
                success: true,
                id: id.to_string(),
            }),
            BatchItem::Rejected(rejection) => {
                let error = ApiError::from(rejection.clone());
                let (message, code, errors) = match error.body() {
                    ErrorBody::Plain(body) => (body.message, body.code, None),
                    other => {
                        let Ok(Value::Object(mut fields)) = serde_json::to_value(&other) else {
                            unreachable!("an error body is an object");
                        };
                        let text = |value: Option<Value>| match value {
                            Some(Value::String(text)) => text,
                            _ => String::new(),
                        };
                        (
                            text(fields.remove("message")),
                            text(fields.remove("code")),
                            fields.remove("errors"),
                        )
                    }
                };
                BatchItemResponse::Refused(BatchItemRefused {
                    index,
                    success: false,
                    status: error.status().as_u16(),
                    error: RefusalBody { message, code, errors },
                })
            }
        })
        .collect();
    let succeeded = outcome.succeeded();
    BatchResponse {
        object: BatchObject::Value,
        succeeded,
        failed: outcome.items.len() - succeeded,
        data,
    }
}

/// The answer of a batch: made now, or the stored answer of a batch an earlier request with the
/// same `Idempotency-Key` claimed (sent back as it was stored).
#[derive(Serialize)]
#[serde(untagged)]
pub(crate) enum BatchAnswer {
    Fresh(BatchResponse),
    Stored(Value),
}

#[utoipa::path(
    post,
    path = "/audit_logs/events/batch",
    tag = "audit-logs",
    operation_id = "AuditLogEventsController_createBatch",
    summary = "Create up to 1,000 events",
    description = "Vellum's addition. Each event is checked on its own: the answer is 200 with one entry per event, stored or refused.",
    params(("idempotency-key" = Option<String>, Header, nullable = false, description = "As for a single event.")),
    request_body = BatchBody,
    responses(
        (status = 200, description = "One entry per event, in order.", body = BatchResponse),
        (status = 404, description = "No such organization.", body = ErrorResponse),
        (status = 409, description = "The idempotency key was used with another body.", body = ErrorResponse),
        (status = 422, description = "`organization_id` or `events` is missing or not acceptable.", body = ValidationError),
    ),
)]
pub(crate) async fn create_events_batch(
    State(state): State<AppState>,
    headers: HeaderMap,
    JsonBytes(bytes): JsonBytes,
) -> Result<Json<BatchAnswer>, ApiError> {
    let BatchRequest {
        organization_id,
        items,
        key,
    } = read_batch(&headers, &bytes)?;
    match state.ingest.create_batch(organization_id, items, key).await? {
        BatchResult::Outcome(outcome) => Ok(Json(BatchAnswer::Fresh(batch_response(&outcome)))),
        // The stored answer of a batch claimed by an earlier version.
        BatchResult::Verbatim(body) => Ok(Json(BatchAnswer::Stored(
            serde_json::from_str(&body)
                .map_err(|error| ApiError::Internal(format!("stored batch response is not JSON: {error}")))?,
        ))),
    }
}

/// A batch request, read and checked as far as the wire allows: each event read on its own (or
/// why its shape was refused), as the ingest service is handed them.
pub(crate) struct BatchRequest {
    pub(crate) organization_id: OrganizationId,
    pub(crate) items: Vec<Result<EventInput, ValidationErrors>>,
    pub(crate) key: Option<IdempotencyKey>,
}

/// Reads the body (and `Idempotency-Key`) of `POST /audit_logs/events/batch`.
pub(crate) fn read_batch(headers: &HeaderMap, bytes: &[u8]) -> Result<BatchRequest, ApiError> {
    let body: BatchBody = parse_json(bytes)?;
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
    let key = idempotency_key(headers, "/audit_logs/events/batch", bytes)?;
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
    Ok(BatchRequest {
        organization_id,
        items,
        key,
    })
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
    // An erased party keeps its type, with an empty id and `erased: true`; the event says which
    // erasure records removed what (`docs/retention.md`).
    if !event.erased_by.is_empty() {
        let mark = |party: &mut Value| {
            if let Value::Object(party) = party
                && party
                    .get("id")
                    .and_then(Value::as_str)
                    .is_some_and(vellum_core::seal::is_erased_id)
            {
                party.insert("erased".into(), json!(true));
            }
        };
        if let Some(actor) = object.get_mut("actor") {
            mark(actor);
        }
        if let Some(Value::Array(targets)) = object.get_mut("targets") {
            targets.iter_mut().for_each(mark);
        }
        object.insert("erased_by".into(), json!(event.erased_by));
    }
    Value::Object(object)
}

/// A stored event on the wire. Its members are the canonical envelope the log commits to
/// (rendered by [`event_json`], so that the read API shows exactly what was committed); its
/// schema is [`AuditLogEventJson`].
#[derive(Serialize)]
#[serde(transparent)]
pub(crate) struct AuditLogEvent(Value);

impl AuditLogEvent {
    pub(crate) fn of(event: &Event) -> Self {
        Self(event_json(event))
    }
}

/// A stored event (Vellum's addition: WorkOS has no read API for events). It allows no other
/// members, so that schemathesis, reading events against the document, catches any drift
/// between this description and what `event_json` renders.
#[derive(ToSchema, Deserialize)]
#[schema(as = AuditLogEvent)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // describes the wire; never built, never read
pub(crate) struct AuditLogEventJson {
    object: EventObjectName,
    #[schema(example = "01JBZ4Q9E3M0000000000000000")]
    id: String,
    #[schema(example = "org_01EHWNCE74X7JSDV0X3SZ3KJNY")]
    organization_id: String,
    /// The event's position in its organization's verifiable log, from 0.
    log_index: u64,
    #[schema(example = "user.signed_in")]
    action: String,
    #[schema(format = DateTime)]
    occurred_at: String,
    /// When Vellum stored the event.
    #[schema(format = DateTime)]
    received_at: String,
    /// The version of the action's schema the event was checked against.
    version: u32,
    actor: EventPartyJson,
    targets: Vec<EventPartyJson>,
    context: EventContextJson,
    /// Only on events that came in through the legacy Audit Trail API.
    #[serde(default)]
    audit_trail: Option<EventAuditTrailJson>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    metadata: Option<Value>,
    /// Only on events a person's data was erased from: the log indexes of the erasure records.
    #[serde(default)]
    erased_by: Option<Vec<u64>>,
}

/// `"audit_log_event"` (for reading).
#[derive(ToSchema, Deserialize)]
#[allow(dead_code)]
enum EventObjectName {
    #[serde(rename = "audit_log_event")]
    Value,
}

/// The actor or a target of a stored event.
#[derive(ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct EventPartyJson {
    id: String,
    #[serde(rename = "type")]
    party_type: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    metadata: Option<Value>,
    /// Only on a party whose personal data was erased (its `id` is then empty).
    #[serde(default)]
    erased: Option<bool>,
}

/// Where a stored event happened.
#[derive(ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct EventContextJson {
    location: String,
    #[serde(default)]
    user_agent: Option<String>,
}

/// The legacy fields of an event that came in through the Audit Trail API.
#[derive(ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct EventAuditTrailJson {
    action_type: String,
    group: String,
    #[serde(default)]
    latitude: Option<String>,
    #[serde(default)]
    longitude: Option<String>,
}

#[utoipa::path(
    get,
    path = "/audit_logs/events",
    tag = "audit-logs",
    operation_id = "AuditLogEventsController_list",
    summary = "List an organization's events",
    description = "Vellum's addition, in WorkOS's list conventions.",
    params(EventListParams, PageParams),
    responses(
        (status = 200, description = "A page of events.", body = ListResponse<AuditLogEventJson>),
        (status = 404, description = "No such organization.", body = ErrorResponse),
        (status = 422, description = "A parameter is missing or not acceptable.", body = ValidationError),
    ),
)]
pub(crate) async fn list_events(
    State(state): State<AppState>,
    query: QueryPairs,
) -> Result<Json<ListResponse<AuditLogEvent>>, ApiError> {
    let mut errors = ValidationErrors::new();
    let (organization, filter) = read_event_filter(&query, &mut errors)?;
    let page = page_request(&query, &mut errors, |text| {
        EventId::parse(text).map_err(|error| format!("not an event id: {error}"))
    });
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
    Ok(Json(ListResponse::from_page(page, |event| AuditLogEvent::of(&event))))
}

/// Reads the organization and the filters of a listing (`GET /audit_logs/events` and the live
/// tail share them), pushing what is wrong into `errors`.
pub(crate) fn read_event_filter(
    query: &QueryPairs,
    errors: &mut ValidationErrors,
) -> Result<(Option<OrganizationId>, EventFilter), ApiError> {
    let organization = match query.single("organization_id") {
        Ok(Some(text)) => Some(crate::observe::organization_id(text).map_err(|_| ApiError::NotFound {
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
            .filter(|text| !text.is_empty() && check_search("search", text, errors))
            .map(str::to_owned),
        Err(_) => {
            errors.push("search", "repeated", "search may be given only once");
            None
        }
    };
    let mut list = |name: &'static str| {
        let values = query.list_exact(name);
        check_filter_values(name, values.len(), errors);
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
    Ok((organization, filter))
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

#[utoipa::path(
    get,
    path = "/audit_logs/events/{id}",
    tag = "audit-logs",
    operation_id = "AuditLogEventsController_find",
    summary = "Get an event",
    description = "Vellum's addition.",
    params(("id" = String, Path, description = "The event's id.")),
    responses(
        (status = 200, description = "The event.", body = AuditLogEventJson),
        (status = 404, description = "No such event.", body = ErrorResponse),
    ),
)]
pub(crate) async fn get_event(
    State(state): State<AppState>,
    WirePath(id): WirePath,
) -> Result<Json<AuditLogEvent>, ApiError> {
    let event_id = EventId::parse(&id).map_err(|_| ApiError::NotFound {
        message: format!("Audit log event not found: '{id}'."),
    })?;
    Ok(Json(AuditLogEvent::of(&state.store.get_event(event_id).await?)))
}

#[cfg(test)]
mod robustness;
