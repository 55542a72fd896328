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
use serde_json::{Value, json};
use vellum_core::audit_trail::{FlatEvent, action_id, parse_crud, validate_audit_trail_event};
use vellum_core::filter::{check_filter_values, check_search};
use vellum_core::time_range::{Bound, Instant, TimeRange};
use vellum_core::{AuditTrailEventId, Cursor, Event, EventId, Timestamp, ValidationErrors};
use vellum_store::{AuditTrailFilter, StoreError};

use crate::AppState;
use crate::error::ApiError;
use crate::events::idempotency_key;
use crate::extract::{JsonBytes, QueryPairs, parse_json};
use crate::wire::{ListResponse, page_request};

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

async fn create_event(
    State(state): State<AppState>,
    headers: HeaderMap,
    JsonBytes(bytes): JsonBytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
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
    Ok((StatusCode::CREATED, Json(json!({ "success": true }))))
}

/// The flat wire form of a legacy event; `None` for an event of the newer API.
pub fn audit_trail_event_json(event: &Event) -> Option<Value> {
    let flat = FlatEvent::of(&event.input)?;
    let input = &event.input;
    let metadata = input
        .metadata
        .as_ref()
        .map_or_else(|| json!({}), vellum_core::event::metadata_to_json);
    Some(json!({
        "object": "event",
        "id": AuditTrailEventId::from(event.id).to_string(),
        "group": flat.fields.group,
        "location": input.context.location,
        "latitude": flat.fields.latitude,
        "longitude": flat.fields.longitude,
        "action": {
            "object": "event_action",
            "id": action_id(&input.action).to_string(),
            "name": input.action,
        },
        "action_type": flat.fields.action_type,
        "type": flat.fields.action_type,
        "actor_name": flat.actor_name,
        "actor_id": flat.actor_id,
        "target_name": flat.target_name,
        "target_id": flat.target_id,
        "metadata": metadata,
        "occurred_at": input.occurred_at.to_wire(),
        "organization_id": event.organization_id.to_string(),
        "audit_log_event_id": event.id.to_string(),
    }))
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

async fn list_events(State(state): State<AppState>, query: QueryPairs) -> Result<Json<ListResponse<Value>>, ApiError> {
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
            audit_trail_event_json(event).ok_or_else(|| {
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
