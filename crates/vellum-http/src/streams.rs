//! Log streams (Vellum's API; WorkOS configures streams in its dashboard): `POST`/`GET
//! /audit_logs/streams`, `GET`/`PUT`/`DELETE /audit_logs/streams/{id}` and `POST
//! /audit_logs/streams/{id}/replay` (`docs/streams.md`). Secrets are write-only: the answer shows
//! the settings without them, and a generic HTTPS stream's signing secret only in the answer
//! that made it.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use vellum_core::stream::{StreamState, StreamType};
use vellum_core::{OrganizationId, StreamId, ValidationErrors};
use vellum_store::Stream;
use vellum_streams::{ReplayFrom, Shown, StreamError, StreamService, Update};

use crate::AppState;
use crate::error::{ApiError, ErrorResponse, ValidationError};
use crate::extract::{QueryPairs, WireJson, WirePath};
use crate::wire::{ListResponse, wire_const};

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/audit_logs/streams", post(create_stream).get(list_streams))
        .route(
            "/audit_logs/streams/{id}",
            get(get_stream).put(update_stream).delete(delete_stream),
        )
        .route("/audit_logs/streams/{id}/replay", post(replay_stream))
        .route("/audit_logs/streams/{id}/test", post(test_stream))
}

fn service(state: &AppState) -> Result<&StreamService, ApiError> {
    state.streams.as_deref().ok_or(ApiError::Unavailable)
}

fn stream_id(text: &str) -> Result<StreamId, ApiError> {
    StreamId::parse(text).map_err(|_| ApiError::NotFound {
        message: format!("Audit Log Stream not found: '{text}'."),
    })
}

impl From<StreamError> for ApiError {
    fn from(error: StreamError) -> Self {
        match error {
            StreamError::Invalid(errors) => Self::Validation(errors),
            StreamError::Limit(message) => Self::Conflict {
                message,
                code: "stream_limit",
            },
            StreamError::Store(error) => error.into(),
            StreamError::Internal(cause) => Self::Internal(cause),
        }
    }
}

wire_const!(
    /// `"audit_log_stream"`.
    StreamObject = "audit_log_stream"
);

/// A log stream.
#[derive(Serialize, ToSchema)]
#[schema(as = AuditLogStream)]
pub(crate) struct StreamResponse {
    object: StreamObject,
    #[schema(example = "audit_log_stream_01HZY3T9J6V7YQ8G3C0W5D2N1M")]
    pub(crate) id: String,
    #[schema(example = "org_01EHWNCE74X7JSDV0X3SZ3KJNY")]
    organization_id: String,
    /// `Datadog`, `Splunk`, `S3`, `GoogleCloudStorage`, `MicrosoftSentinel`, `Snowflake` or
    /// `GenericHttps`.
    #[serde(rename = "type")]
    #[schema(example = "GenericHttps")]
    stream_type: &'static str,
    /// `active`, `error` (retrying), `invalid` (refused by the destination: update the stream)
    /// or `inactive` (disabled).
    #[schema(example = "active")]
    state: &'static str,
    /// The settings, without secrets (`api_key`, `token`, header values, access keys,
    /// `client_secret`, `private_key`).
    #[schema(value_type = Object)]
    config: Value,
    /// When the destination last accepted a batch (ISO 8601), `null` before the first.
    #[schema(required = true)]
    last_synced_at: Option<String>,
    /// The log index of the next event to deliver.
    next_log_index: u64,
    /// Why the last delivery failed, while the state is `error` or `invalid`.
    #[schema(required = true)]
    error: Option<String>,
    /// When the next retry is due, while the state is `error`.
    #[schema(required = true)]
    next_attempt_at: Option<String>,
    created_at: String,
    updated_at: String,
    /// What the stream has done since it was created.
    counters: CountersJson,
    /// How far behind the stream is (only on `GET /audit_logs/streams/{id}`): log positions
    /// not yet delivered, and seconds since the oldest of them was received.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    lag: Option<LagJson>,
    /// A `GenericHttps` stream's Standard Webhooks signing secret (`whsec_…`): only in the
    /// answer that made it (creation, or `rotate_signing_secret`). Store it; it is not shown again.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    signing_secret: Option<String>,
}

impl StreamResponse {
    fn of(stream: Stream, signing_secret: Option<String>) -> Self {
        Self {
            object: StreamObject::Value,
            id: stream.id.to_string(),
            organization_id: stream.organization_id.to_string(),
            stream_type: stream.destination.stream_type().as_str(),
            state: stream.state.as_str(),
            config: stream.destination.to_json(),
            last_synced_at: stream.last_synced_at.map(|time| time.to_wire()),
            next_log_index: stream.cursor,
            error: stream.error.filter(|_| !matches!(stream.state, StreamState::Active)),
            next_attempt_at: stream
                .next_attempt_at
                .filter(|_| stream.state == StreamState::Error)
                .map(|time| time.to_wire()),
            created_at: stream.created_at.to_wire(),
            updated_at: stream.updated_at.to_wire(),
            signing_secret,
            counters: CountersJson {
                deliveries: stream.counters.deliveries,
                events_delivered: stream.counters.events_delivered,
                failed_attempts: stream.counters.failed_attempts,
            },
            lag: None,
        }
    }

    fn shown(shown: Shown) -> Self {
        Self::of(shown.stream, shown.signing_secret)
    }
}

/// What a stream has done since it was created (for operators and metrics).
#[derive(Serialize, ToSchema)]
#[schema(as = AuditLogStreamCounters)]
pub(crate) struct CountersJson {
    /// Requests (or objects) the destination accepted.
    #[schema(example = 96)]
    deliveries: u64,
    /// Events they carried (an object-storage window written again counts again).
    #[schema(example = 48_000)]
    events_delivered: u64,
    /// Attempts that failed (each is retried, or made the stream `invalid`).
    #[schema(example = 2)]
    failed_attempts: u64,
}

/// How far behind a stream is.
#[derive(Serialize, ToSchema)]
#[schema(as = AuditLogStreamLag)]
pub(crate) struct LagJson {
    /// Log positions after the stream's position.
    #[schema(example = 0)]
    events: u64,
    /// Seconds since the oldest event not yet delivered was received; 0 when caught up.
    #[schema(example = 0.0)]
    seconds: f64,
}

/// A stream to create.
#[derive(Deserialize, ToSchema)]
#[schema(as = CreateAuditLogStreamDto)]
pub(crate) struct CreateBody {
    #[schema(example = "org_01EHWNCE74X7JSDV0X3SZ3KJNY")]
    organization_id: Option<Value>,
    /// `Datadog`, `Splunk`, `S3`, `GoogleCloudStorage`, `MicrosoftSentinel`, `Snowflake` or
    /// `GenericHttps`.
    #[serde(rename = "type")]
    #[schema(example = "GenericHttps")]
    stream_type: Option<Value>,
    /// The destination's settings (`docs/streams.md`): Datadog `{region, api_key, url?, source?}`;
    /// Splunk `{url, token, index?, source?}`; S3 `{bucket, region?, prefix?, endpoint?, format?,
    /// access_key_id, secret_access_key}`; GoogleCloudStorage `{bucket, prefix?, endpoint?,
    /// format?, access_key_id, secret_access_key}` (HMAC keys); MicrosoftSentinel `{endpoint,
    /// rule_id, stream_name, tenant_id, client_id, client_secret, authority?}`; Snowflake
    /// `{account, user, database, schema, table, warehouse?, role?, url?, private_key}`;
    /// GenericHttps `{url, format?: json|ndjson, headers?: {name: value}}`.
    #[schema(value_type = Object)]
    config: Option<Value>,
    /// `active` (the default) or `inactive`.
    state: Option<Value>,
}

fn requested_state(value: Option<&Value>, errors: &mut ValidationErrors) -> Option<StreamState> {
    match value? {
        Value::Null => None,
        Value::String(text) if text == "active" => Some(StreamState::Active),
        Value::String(text) if text == "inactive" => Some(StreamState::Inactive),
        _ => {
            errors.push("state", "invalid", "state is `active` or `inactive`");
            None
        }
    }
}

fn organization_in(value: Option<&Value>, errors: &mut ValidationErrors) -> Result<Option<OrganizationId>, ApiError> {
    match value {
        None | Some(Value::Null) => {
            errors.push("organization_id", "required", "organization_id is required");
            Ok(None)
        }
        Some(Value::String(text)) => crate::observe::organization_id(text)
            .map(Some)
            .map_err(|_| ApiError::NotFound {
                message: format!("Organization not found: '{text}'."),
            }),
        Some(_) => {
            errors.push("organization_id", "invalid_type", "organization_id must be a string");
            Ok(None)
        }
    }
}

#[utoipa::path(
    post,
    path = "/audit_logs/streams",
    tag = "audit-logs",
    operation_id = "AuditLogStreamsController_create",
    summary = "Create a log stream (Vellum)",
    description = "Delivers the organization's events from now on, in log order and at least once, to the \
        destination; replay sends older ones. An organization has at most 10 streams.",
    request_body = CreateBody,
    responses(
        (status = 201, description = "The stream (with `signing_secret` for GenericHttps).", body = StreamResponse),
        (status = 404, description = "No such organization.", body = ErrorResponse),
        (status = 409, description = "The organization has 10 streams.", body = ErrorResponse),
        (status = 422, description = "A field is missing or not acceptable.", body = ValidationError),
    ),
)]
pub(crate) async fn create_stream(
    State(state): State<AppState>,
    WireJson(body): WireJson<CreateBody>,
) -> Result<(StatusCode, Json<StreamResponse>), ApiError> {
    let service = service(&state)?;
    let mut errors = ValidationErrors::new();
    let organization = organization_in(body.organization_id.as_ref(), &mut errors)?;
    let kind = match &body.stream_type {
        Some(Value::String(text)) => StreamType::parse(text).or_else(|| {
            errors.push(
                "type",
                "invalid",
                format!("type is one of {}", vellum_core::stream::served_list()),
            );
            None
        }),
        _ => {
            errors.push("type", "required", "type is required");
            None
        }
    };
    let stream_state = requested_state(body.state.as_ref(), &mut errors).unwrap_or(StreamState::Active);
    let config = body.config.unwrap_or(Value::Object(serde_json::Map::new()));
    let (Some(organization), Some(kind)) = (organization, kind) else {
        return Err(errors.into());
    };
    if !errors.is_empty() {
        return Err(errors.into());
    }
    let shown = service.create(organization, kind, &config, stream_state).await?;
    Ok((StatusCode::CREATED, Json(StreamResponse::shown(shown))))
}

#[utoipa::path(
    get,
    path = "/audit_logs/streams",
    tag = "audit-logs",
    operation_id = "AuditLogStreamsController_list",
    summary = "List an organization's log streams (Vellum)",
    params(("organization_id" = String, Query, description = "The organization's id.")),
    responses(
        (status = 200, description = "Its streams, oldest first (one page: at most 10).", body = ListResponse<StreamResponse>),
        (status = 404, description = "No such organization.", body = ErrorResponse),
        (status = 422, description = "`organization_id` missing.", body = ValidationError),
    ),
)]
pub(crate) async fn list_streams(
    State(state): State<AppState>,
    query: QueryPairs,
) -> Result<Json<ListResponse<StreamResponse>>, ApiError> {
    let service = service(&state)?;
    let Some(text) = query.single("organization_id")? else {
        return Err(ApiError::invalid_field(
            "organization_id",
            "required",
            "organization_id is required",
        ));
    };
    let organization = crate::observe::organization_id(text).map_err(|_| ApiError::NotFound {
        message: format!("Organization not found: '{text}'."),
    })?;
    let streams = service.list(organization).await?;
    Ok(Json(ListResponse::all(
        streams
            .into_iter()
            .map(|stream| StreamResponse::of(stream, None))
            .collect(),
    )))
}

#[utoipa::path(
    get,
    path = "/audit_logs/streams/{id}",
    tag = "audit-logs",
    operation_id = "AuditLogStreamsController_get",
    summary = "Get a log stream (Vellum)",
    params(("id" = String, Path, description = "The stream's id.")),
    responses(
        (status = 200, description = "The stream.", body = StreamResponse),
        (status = 404, description = "No such stream.", body = ErrorResponse),
    ),
)]
pub(crate) async fn get_stream(
    State(state): State<AppState>,
    WirePath(id): WirePath,
) -> Result<Json<StreamResponse>, ApiError> {
    let service = service(&state)?;
    let stream = service.get(stream_id(&id)?).await?;
    let lag = service.lag(&stream).await?;
    let mut response = StreamResponse::of(stream, None);
    response.lag = Some(LagJson {
        events: lag.events,
        seconds: lag.seconds,
    });
    Ok(Json(response))
}

/// A stream's new settings or state: at least one of the three.
#[derive(Deserialize, ToSchema)]
#[schema(as = UpdateAuditLogStreamDto)]
pub(crate) struct UpdateBody {
    /// New settings, as at creation; secrets not given again are kept.
    #[schema(value_type = Object)]
    config: Option<Value>,
    /// `active` or `inactive`. Without it, an inactive stream stays inactive and an `error` or
    /// `invalid` one becomes `active`: updating is how a refused stream is retried.
    state: Option<Value>,
    /// `true` to make a new signing secret (GenericHttps); the old one keeps signing beside it for
    /// 24 hours.
    rotate_signing_secret: Option<bool>,
}

#[utoipa::path(
    put,
    path = "/audit_logs/streams/{id}",
    tag = "audit-logs",
    operation_id = "AuditLogStreamsController_update",
    summary = "Update a log stream (Vellum)",
    params(("id" = String, Path, description = "The stream's id.")),
    request_body = UpdateBody,
    responses(
        (status = 200, description = "The stream (with the new `signing_secret` after a rotation).", body = StreamResponse),
        (status = 404, description = "No such stream.", body = ErrorResponse),
        (status = 422, description = "A field is not acceptable.", body = ValidationError),
    ),
)]
pub(crate) async fn update_stream(
    State(state): State<AppState>,
    WirePath(id): WirePath,
    WireJson(body): WireJson<UpdateBody>,
) -> Result<Json<StreamResponse>, ApiError> {
    let service = service(&state)?;
    let id = stream_id(&id)?;
    let mut errors = ValidationErrors::new();
    let stream_state = requested_state(body.state.as_ref(), &mut errors);
    let config = body.config.filter(|config| !config.is_null());
    let rotate = body.rotate_signing_secret.unwrap_or(false);
    if errors.is_empty() && config.is_none() && stream_state.is_none() && !rotate {
        errors.push(
            "config",
            "required",
            "give at least one of config, state and rotate_signing_secret",
        );
    }
    if !errors.is_empty() {
        return Err(errors.into());
    }
    let shown = service
        .update(
            id,
            Update {
                config,
                state: stream_state,
                rotate_signing_secret: rotate,
            },
        )
        .await?;
    Ok(Json(StreamResponse::shown(shown)))
}

#[utoipa::path(
    delete,
    path = "/audit_logs/streams/{id}",
    tag = "audit-logs",
    operation_id = "AuditLogStreamsController_delete",
    summary = "Delete a log stream (Vellum)",
    params(("id" = String, Path, description = "The stream's id.")),
    responses(
        (status = 204, description = "Deleted; deliveries stop."),
        (status = 404, description = "No such stream.", body = ErrorResponse),
    ),
)]
pub(crate) async fn delete_stream(
    State(state): State<AppState>,
    WirePath(id): WirePath,
) -> Result<StatusCode, ApiError> {
    service(&state)?.delete(stream_id(&id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

wire_const!(
    /// `"audit_log_stream_test"`.
    StreamTestObject = "audit_log_stream_test"
);

/// What a connection test found.
#[derive(Serialize, ToSchema)]
#[schema(as = AuditLogStreamTest)]
pub(crate) struct StreamTestResponse {
    object: StreamTestObject,
    /// The stream tested.
    #[schema(example = "audit_log_stream_01HZY3T9J6V7YQ8G3C0W5D2N1M")]
    stream_id: String,
    /// Whether the destination accepted the test event.
    success: bool,
    /// Why not, as the destination or the connection said (empty on success).
    #[schema(example = "")]
    message: String,
}

#[utoipa::path(
    post,
    path = "/audit_logs/streams/{id}/test",
    tag = "audit-logs",
    operation_id = "AuditLogStreamsController_test",
    summary = "Send a test event to a log stream's destination (Vellum)",
    description = "Sends one event with the action `vellum.stream.test` (no `log_index`; in a bucket, an object \
        of its own) to the destination now, with the stream's settings, and answers whether it was accepted. \
        Nothing of the stream changes: its position, state and counters stay as they were.",
    params(("id" = String, Path, description = "The stream's id.")),
    responses(
        (status = 200, description = "What the destination answered.", body = StreamTestResponse),
        (status = 404, description = "No such stream.", body = ErrorResponse),
    ),
)]
pub(crate) async fn test_stream(
    State(state): State<AppState>,
    WirePath(id): WirePath,
) -> Result<Json<StreamTestResponse>, ApiError> {
    let service = service(&state)?;
    let id = stream_id(&id)?;
    let outcome = service.test(id).await?;
    Ok(Json(StreamTestResponse {
        object: StreamTestObject::Value,
        stream_id: id.to_string(),
        success: outcome.success,
        message: outcome.message,
    }))
}

/// Where a replay starts: exactly one of the two.
#[derive(Deserialize, ToSchema)]
#[schema(as = ReplayAuditLogStreamDto)]
pub(crate) struct ReplayBody {
    /// Deliver again from the first event (in log order) that occurred at or after this time.
    #[schema(value_type = Option<String>, example = "2026-12-01T00:00:00.000Z")]
    since: Option<Value>,
    /// Deliver again from this log index (at most the log's size).
    #[schema(value_type = Option<u64>, example = 0)]
    from_log_index: Option<Value>,
}

#[utoipa::path(
    post,
    path = "/audit_logs/streams/{id}/replay",
    tag = "audit-logs",
    operation_id = "AuditLogStreamsController_replay",
    summary = "Deliver a log stream's events again from a point (Vellum)",
    description = "Moves the stream's position back (or forward) and clears its backoff; a batch in flight when \
        the replay lands is delivered and then not counted, so delivery continues from the point asked.",
    params(("id" = String, Path, description = "The stream's id.")),
    request_body = ReplayBody,
    responses(
        (status = 200, description = "The stream, at its new position.", body = StreamResponse),
        (status = 404, description = "No such stream.", body = ErrorResponse),
        (status = 422, description = "Neither or both of `since` and `from_log_index`, or a bad value.", body = ValidationError),
    ),
)]
pub(crate) async fn replay_stream(
    State(state): State<AppState>,
    WirePath(id): WirePath,
    WireJson(body): WireJson<ReplayBody>,
) -> Result<Json<StreamResponse>, ApiError> {
    let service = service(&state)?;
    let id = stream_id(&id)?;
    let from = match (body.since, body.from_log_index) {
        (Some(Value::String(text)), None) => match vellum_core::event::parse_occurred_at(&text) {
            Some(since) => ReplayFrom::Since(since),
            None => {
                return Err(ApiError::invalid_field(
                    "since",
                    "invalid",
                    "since must be an ISO 8601 date string",
                ));
            }
        },
        (None, Some(Value::Number(number))) => match number.as_u64() {
            Some(position) => ReplayFrom::Position(position),
            None => {
                return Err(ApiError::invalid_field(
                    "from_log_index",
                    "invalid",
                    "from_log_index must be a non-negative integer",
                ));
            }
        },
        (Some(_), None) => {
            return Err(ApiError::invalid_field(
                "since",
                "invalid",
                "since must be an ISO 8601 date string",
            ));
        }
        (None, Some(_)) => {
            return Err(ApiError::invalid_field(
                "from_log_index",
                "invalid",
                "from_log_index must be a non-negative integer",
            ));
        }
        _ => {
            return Err(ApiError::invalid_field(
                "since",
                "required",
                "give exactly one of since and from_log_index",
            ));
        }
    };
    let stream = service.replay(id, from).await?;
    Ok(Json(StreamResponse::of(stream, None)))
}
