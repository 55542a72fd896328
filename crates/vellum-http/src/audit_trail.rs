//! `/events`: WorkOS's legacy Audit Trail API, on the same store and logs as everything else.
//!
//! `POST /events` takes the flat body, maps its `group` to an organization (an `org_` id, else
//! the organization with that external id, else a new one created for the group) and appends
//! the event to that organization's log. `GET /events` lists the events received this way, of
//! every organization, in the flat shape. See `docs/audit-trail.md`.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use serde::Serialize;
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};
use vellum_core::audit_trail::{FlatEvent, action_id, parse_crud, validate_audit_trail_event};
use vellum_core::filter::{check_filter_values, check_search};
use vellum_core::time_range::{Bound, Instant, TimeRange};
use vellum_core::{AuditTrailEventId, Cursor, Event, EventId, Timestamp, ValidationErrors};
use vellum_store::{AuditTrailFilter, StoreError};

use crate::AppState;
use crate::error::{ApiError, ErrorResponse, LegacyValidationError};
use crate::events::SuccessResponse;
use crate::events::idempotency_key;
use crate::extract::{JsonBytes, QueryPairs, parse_json};
use crate::wire::{ListResponse, PageParams, page_request, wire_const};

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/events", post(create_event).get(list_events))
}

/// A legacy 422: `{"message", "errors": [{"field", "code"}]}`, where `code` is a sentence
/// (`target_id must be a string`), as the legacy SDKs show it.
fn legacy(error: ApiError) -> ApiError {
    match error {
        ApiError::Validation(errors) => ApiError::LegacyValidation(errors),
        other => other,
    }
}

#[utoipa::path(
    post,
    path = "/events",
    tag = "audit-trail",
    operation_id = "AuditTrailController_create",
    summary = "Create a legacy Audit Trail event",
    description = "WorkOS's earlier Audit Trail API (no longer in WorkOS's document).",
    params(("idempotency-key" = Option<String>, Header, nullable = false, description = "As for `POST /audit_logs/events`.")),
    request_body = AuditTrailEventBody,
    responses(
        (status = 201, description = "Stored.", body = SuccessResponse),
        (status = 409, description = "The idempotency key was used with another body.", body = ErrorResponse),
        (status = 422, description = "A field is not acceptable (legacy shape).", body = LegacyValidationError),
    ),
)]
pub(crate) async fn create_event(
    State(state): State<AppState>,
    headers: HeaderMap,
    JsonBytes(bytes): JsonBytes,
) -> Result<(StatusCode, Json<SuccessResponse>), ApiError> {
    // Values kept as sent, so that numbers are judged as written.
    let body: vellum_core::json::RawObject = parse_json(&bytes)?;
    let mut errors = ValidationErrors::new();
    let Some(input) = validate_audit_trail_event(&body, &mut errors) else {
        return Err(ApiError::LegacyValidation(errors));
    };
    let key = idempotency_key(&headers, "/events", &bytes).map_err(legacy)?;
    state
        .ingest
        .create_legacy_event(input, key)
        .await
        .map_err(|error| legacy(error.into()))?;
    Ok((StatusCode::CREATED, Json(SuccessResponse { success: true })))
}

/// The flat body of a legacy event (`POST /events`). Read as sent (numbers are judged as
/// written) by `vellum_core::audit_trail`; this type describes it for the document.
#[derive(ToSchema)]
#[schema(as = AuditTrailEventDto)]
#[allow(dead_code)] // describes the wire only
pub(crate) struct AuditTrailEventBody {
    /// An `org_…` id, else an organization's external id, else a new organization's name.
    #[schema(min_length = 1, max_length = 255, example = "foo-corp.com")]
    group: String,
    #[schema(max_length = 1024, example = "192.0.2.1")]
    location: String,
    #[schema(min_length = 1, max_length = 128, example = "user.login")]
    action: String,
    /// `C`, `R`, `U` or `D`, in either case.
    #[schema(pattern = "^[CRUDcrud]$", example = "C")]
    action_type: String,
    #[schema(max_length = 1024)]
    actor_name: String,
    #[schema(max_length = 1024)]
    actor_id: String,
    #[schema(max_length = 1024)]
    target_name: String,
    #[schema(max_length = 1024)]
    target_id: String,
    #[schema(format = DateTime)]
    occurred_at: String,
    /// At most 50 keys; values are strings of at most 500 characters, numbers or booleans.
    #[schema(value_type = Option<Object>)]
    metadata: Option<Value>,
    /// A string of at most 64 characters, or a number.
    #[schema(value_type = Option<String>)]
    latitude: Option<Value>,
    /// A string of at most 64 characters, or a number.
    #[schema(value_type = Option<String>)]
    longitude: Option<Value>,
}

/// The filters of `GET /events`. A list filter is given as repeated parameters
/// (`group=a&group=b`, or `group[]=a&group[]=b` as the legacy SDKs send it); values are taken
/// whole.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // describes the query for the document; read through `QueryPairs`
pub(crate) struct AuditTrailListParams {
    /// Only these groups (at most 100).
    #[param(style = Form, explode = true, max_items = 100)]
    group: Option<Vec<String>>,
    /// Only these actions (at most 100).
    #[param(style = Form, explode = true, max_items = 100)]
    action: Option<Vec<String>>,
    /// Only these CRUD letters, `C`, `R`, `U` or `D` in either case (at most 100).
    #[param(style = Form, explode = true, max_items = 100)]
    action_type: Option<Vec<String>>,
    /// Only actors with these names (at most 100).
    #[param(style = Form, explode = true, max_items = 100)]
    actor_name: Option<Vec<String>>,
    /// Only actors with these ids (at most 100).
    #[param(style = Form, explode = true, max_items = 100)]
    actor_id: Option<Vec<String>>,
    /// Only targets with these names (at most 100).
    #[param(style = Form, explode = true, max_items = 100)]
    target_name: Option<Vec<String>>,
    /// Only targets with these ids (at most 100).
    #[param(style = Form, explode = true, max_items = 100)]
    target_id: Option<Vec<String>>,
    /// Events that occurred at this ISO 8601 date-time.
    #[param(format = DateTime)]
    occurred_at: Option<String>,
    /// Events that occurred after this ISO 8601 date-time.
    #[param(format = DateTime)]
    occurred_at_gt: Option<String>,
    /// Events that occurred at or after this ISO 8601 date-time.
    #[param(format = DateTime)]
    occurred_at_gte: Option<String>,
    /// Events that occurred before this ISO 8601 date-time.
    #[param(format = DateTime)]
    occurred_at_lt: Option<String>,
    /// Events that occurred at or before this ISO 8601 date-time.
    #[param(format = DateTime)]
    occurred_at_lte: Option<String>,
    /// Matches actions, groups, actor and target names and ids (at most 1,024 characters).
    #[param(max_length = 1024)]
    search: Option<String>,
}

wire_const!(
    /// `"event"`.
    LegacyEventObject = "event"
);
wire_const!(
    /// `"event_action"`.
    LegacyActionObject = "event_action"
);

/// A legacy event in its flat wire form.
#[derive(Serialize, ToSchema)]
#[schema(as = AuditTrailEvent)]
pub(crate) struct AuditTrailEventResponse {
    object: LegacyEventObject,
    #[schema(example = "evt_01JBZ4Q9E3M0000000000000000")]
    id: String,
    group: String,
    location: String,
    /// As sent, or `null`.
    #[schema(required = true)]
    latitude: Option<String>,
    /// As sent, or `null`.
    #[schema(required = true)]
    longitude: Option<String>,
    action: AuditTrailActionResponse,
    action_type: String,
    /// The same as `action_type`.
    #[serde(rename = "type")]
    action_type_again: String,
    actor_name: String,
    actor_id: String,
    target_name: String,
    target_id: String,
    #[schema(value_type = Object)]
    metadata: Value,
    #[schema(format = DateTime)]
    occurred_at: String,
    organization_id: String,
    /// The same event's id in the newer API.
    audit_log_event_id: String,
}

/// The action of a legacy event.
#[derive(Serialize, ToSchema)]
#[schema(as = AuditTrailEventAction)]
pub(crate) struct AuditTrailActionResponse {
    object: LegacyActionObject,
    id: String,
    name: String,
}

impl AuditTrailEventResponse {
    /// The flat wire form of a legacy event; `None` for an event of the newer API.
    fn of(event: &Event) -> Option<Self> {
        let flat = FlatEvent::of(&event.input)?;
        let input = &event.input;
        let metadata = input
            .metadata
            .as_ref()
            .map_or_else(|| json!({}), vellum_core::event::metadata_to_json);
        Some(Self {
            object: LegacyEventObject::Value,
            id: AuditTrailEventId::from(event.id).to_string(),
            group: flat.fields.group.clone(),
            location: input.context.location.clone(),
            latitude: flat.fields.latitude.clone(),
            longitude: flat.fields.longitude.clone(),
            action: AuditTrailActionResponse {
                object: LegacyActionObject::Value,
                id: action_id(&input.action).to_string(),
                name: input.action.clone(),
            },
            action_type: flat.fields.action_type.clone(),
            action_type_again: flat.fields.action_type.clone(),
            actor_name: flat.actor_name.to_owned(),
            actor_id: flat.actor_id.to_owned(),
            target_name: flat.target_name.to_owned(),
            target_id: flat.target_id.to_owned(),
            metadata,
            occurred_at: input.occurred_at.to_wire(),
            organization_id: event.organization_id.to_string(),
            audit_log_event_id: event.id.to_string(),
        })
    }
}

/// The flat wire form of a legacy event; `None` for an event of the newer API.
pub fn audit_trail_event_json(event: &Event) -> Option<Value> {
    AuditTrailEventResponse::of(event).and_then(|flat| serde_json::to_value(flat).ok())
}

/// One time parameter, recorded in `errors` when it is not a date-time (of the years 0000 to
/// 9999) or is repeated.
fn time_parameter(query: &QueryPairs, name: &'static str, errors: &mut ValidationErrors) -> Option<Instant> {
    match query.single(name) {
        Ok(Some(text)) => {
            let parsed = Instant::parse(text);
            if parsed.is_none() {
                errors.push(
                    name,
                    "invalid_date",
                    format!("{name} must be an ISO 8601 date string from year 0000 to 9999"),
                );
            }
            parsed
        }
        Ok(None) => None,
        Err(_) => {
            errors.push(name, "repeated", format!("{name} must be given at most once"));
            None
        }
    }
}

/// The `[start, end)` range all time parameters allow together, compared exactly with the
/// stored milliseconds: `gt` the last instant there is selects nothing, a bound inside a
/// millisecond is not rounded first (see `vellum_core::time_range`).
fn time_range(query: &QueryPairs, errors: &mut ValidationErrors) -> (Option<Timestamp>, Option<Timestamp>) {
    let exact = time_parameter(query, "occurred_at", errors);
    let gt = time_parameter(query, "occurred_at_gt", errors);
    let gte = time_parameter(query, "occurred_at_gte", errors);
    let lt = time_parameter(query, "occurred_at_lt", errors);
    let lte = time_parameter(query, "occurred_at_lte", errors);
    let bounds = [
        exact.map(Bound::AtOrAfter),
        exact.map(Bound::AtOrBefore),
        gt.map(Bound::After),
        gte.map(Bound::AtOrAfter),
        lt.map(Bound::Before),
        lte.map(Bound::AtOrBefore),
    ];
    TimeRange::of(bounds.into_iter().flatten()).filter_bounds()
}

/// The query with the legacy Python SDK's own `order` spelling (`Order.Asc`, the text of its
/// enum) read as `asc`.
fn normalised(query: QueryPairs) -> QueryPairs {
    QueryPairs(
        query
            .0
            .into_iter()
            .map(|(key, value)| match (key.as_str(), value.as_str()) {
                ("order", "Order.Asc") => (key, "asc".to_owned()),
                ("order", "Order.Desc") => (key, "desc".to_owned()),
                _ => (key, value),
            })
            .collect(),
    )
}

/// Refuses a request of WorkOS's newer Events API, which shares `GET /events` with the legacy
/// list: its SDKs (Node `workos.events.listEvents`, Python `client.events.list_events`) always
/// send `events`, the event types comma-joined, and no legacy Audit Trail client ever does.
/// Vellum does not serve that API, and a legacy list would be misread as its answer, so it gets
/// a 404 that says so before anything else about the request is looked at.
fn refuse_events_api(query: &QueryPairs) -> Result<(), ApiError> {
    if query.0.iter().any(|(key, _)| key == "events" || key == "events[]") {
        return Err(ApiError::NotServed {
            message: "Vellum does not serve WorkOS's Events API: GET /events here is the legacy Audit Trail \
                      list, which takes no `events` parameter. Read audit log events with \
                      GET /audit_logs/events."
                .to_owned(),
            code: "events_api_not_supported",
        });
    }
    Ok(())
}

#[utoipa::path(
    get,
    path = "/events",
    tag = "audit-trail",
    operation_id = "AuditTrailController_list",
    summary = "List legacy Audit Trail events",
    description = "The legacy Audit Trail list, not WorkOS's newer Events API (`EventsController_list`), which Vellum does not serve: a request with its `events` parameter gets a 404 `events_api_not_supported`.",
    params(AuditTrailListParams, PageParams),
    responses(
        (status = 200, description = "A page of legacy events, of every organization.", body = ListResponse<AuditTrailEventResponse>),
        (status = 404, description = "A request of WorkOS's Events API.", body = ErrorResponse),
        (status = 422, description = "A parameter is not acceptable (legacy shape).", body = LegacyValidationError),
    ),
)]
pub(crate) async fn list_events(
    State(state): State<AppState>,
    query: QueryPairs,
) -> Result<Json<ListResponse<AuditTrailEventResponse>>, ApiError> {
    refuse_events_api(&query)?;
    let query = normalised(query);
    let mut errors = ValidationErrors::new();
    let page = page_request(&query, &mut errors, |text| {
        AuditTrailEventId::parse(text)
            .map(EventId::from)
            .map_err(|error| format!("not an Audit Trail event id: {error}"))
    });
    let mut list = |name: &'static str| {
        let values = query.list_exact(name);
        // Counted before anything else is done with the values.
        if check_filter_values(name, values.len(), &mut errors) {
            values
        } else {
            Vec::new()
        }
    };
    let groups = list("group");
    let actions = list("action");
    let crud_letters = list("action_type");
    let actor_names = list("actor_name");
    let actor_ids = list("actor_id");
    let target_names = list("target_name");
    let target_ids = list("target_id");
    let mut action_types = Vec::new();
    for value in crud_letters {
        match parse_crud(&value) {
            Some(letter) => action_types.push(letter),
            None => errors.push("action_type", "invalid", "action_type must be one of C, R, U or D"),
        }
    }
    let (range_start, range_end) = time_range(&query, &mut errors);
    let search = match query.single("search") {
        Ok(search) => search
            .filter(|text| !text.is_empty() && check_search("search", text, &mut errors))
            .map(str::to_owned),
        Err(_) => {
            errors.push("search", "repeated", "search must be given at most once");
            None
        }
    };
    if !errors.is_empty() {
        return Err(ApiError::LegacyValidation(errors));
    }
    let filter = AuditTrailFilter {
        groups,
        actions,
        action_types,
        actor_names,
        actor_ids,
        target_names,
        target_ids,
        range_start,
        range_end,
        search,
    };
    let cursor_parameter = match &page.cursor {
        Some(Cursor::Before(_)) => "before",
        _ => "after",
    };
    let page = state
        .store
        .list_audit_trail_events(filter, page)
        .await
        .map_err(|error| match error {
            StoreError::InvalidInput {
                field: "cursor",
                message,
            } => legacy(ApiError::invalid_field(cursor_parameter, "invalid_cursor", message)),
            other => other.into(),
        })?;
    let data = page
        .data
        .iter()
        .map(|event| {
            AuditTrailEventResponse::of(event).ok_or_else(|| {
                ApiError::Internal(format!("{} is listed as an Audit Trail event but is not one", event.id))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let page = vellum_core::Page {
        data,
        list_metadata: vellum_core::ListMetadata {
            before: page.list_metadata.before.map(AuditTrailEventId::from),
            after: page.list_metadata.after.map(AuditTrailEventId::from),
        },
    };
    Ok(Json(ListResponse::from_page(page, |event| event)))
}
