//! The scoped API: the public API's handlers, reachable by a portal session or a viewer token
//! for one organization only (`docs/portal.md` § Security model).
//!
//! **Invariant:** every handler of a scoped router is in this file, and each one narrows its
//! input to the [`Scope`] before it delegates to the public handler: an `organization_id` in a
//! query or body must be the scope's (it is filled in when absent), and an object named by id
//! in a path or a cursor must belong to it. Anything else answers 404, exactly as a request
//! for an object that does not exist, so a scope learns nothing of other organizations.

use axum::body::Bytes;
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::Value;
use vellum_core::event::{Metadata, MetadataValue};
use vellum_core::log_record::{self, RecordedBy};
use vellum_core::portal::PortalIntent;
use vellum_core::{Event, EventId, ExportId, OrganizationId, StreamId};

use crate::AppState;
use crate::error::ApiError;
use crate::extract::{JsonBytes, QueryPairs, WireJson, WirePath, parse_json};

/// What a scoped request may reach, set by the middleware that authenticated it.
#[derive(Clone, Debug)]
pub(crate) struct Scope {
    /// The one organization it may read.
    pub(crate) organization_id: OrganizationId,
    /// How it came in.
    pub(crate) access: Access,
    /// Who it is, as the trail's records name them.
    pub(crate) by: RecordedBy,
    /// Only events of these actor ids, when not empty (viewer tokens).
    pub(crate) actor_ids: Vec<String>,
    /// Only events of these actions, when not empty (viewer tokens).
    pub(crate) actions: Vec<String>,
    /// The client's address and user agent, for the trail's records.
    pub(crate) client: Client,
    /// What the budget of changes is counted against (`portal:<link id>`, `viewer:<token id>`).
    pub(crate) credential: String,
}

/// The way in of a scoped request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Access {
    /// An Admin Portal session of this intent.
    Portal(PortalIntent),
    /// An embedded viewer's token: reads the trail and exports it, nothing else.
    Viewer,
}

/// Where a request came from, as an access record tells it.
#[derive(Clone, Debug, Default)]
pub(crate) struct Client {
    pub(crate) address: Option<String>,
    pub(crate) user_agent: Option<String>,
}

impl Client {
    pub(crate) fn of(extensions: &axum::http::Extensions, headers: &HeaderMap) -> Self {
        Self {
            address: crate::client::address_of(extensions),
            user_agent: headers
                .get(axum::http::header::USER_AGENT)
                .and_then(|value| value.to_str().ok())
                .map(str::to_owned),
        }
    }
}

/// What a handler of the scoped API serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Feature {
    /// Reading, verifying and exporting the trail.
    Trail,
    /// Log streams.
    Streams,
}

fn organization_not_found(text: &str) -> ApiError {
    ApiError::NotFound {
        message: format!("Organization not found: '{text}'."),
    }
}

fn event_not_found(text: &str) -> ApiError {
    ApiError::NotFound {
        message: format!("Audit log event not found: '{text}'."),
    }
}

impl Scope {
    fn allow(&self, feature: Feature) -> Result<(), ApiError> {
        let allowed = matches!(
            (self.access, feature),
            (Access::Portal(PortalIntent::AuditLogs) | Access::Viewer, Feature::Trail)
                | (Access::Portal(PortalIntent::LogStreams), Feature::Streams)
        );
        if allowed {
            Ok(())
        } else {
            Err(ApiError::Forbidden {
                message: match self.access {
                    Access::Portal(intent) => format!("This portal session ({intent}) does not reach this."),
                    Access::Viewer => "A viewer token only reads and exports its organization's trail.".into(),
                },
                code: "outside_scope",
            })
        }
    }

    /// Counts one change (an export, a stream change or test) against the credential's budget.
    fn allow_change(&self, state: &AppState) -> Result<(), ApiError> {
        state.scoped_changes.take(&self.credential, std::time::Instant::now())
    }

    fn is_narrowed(&self) -> bool {
        !self.actor_ids.is_empty() || !self.actions.is_empty()
    }

    /// The query with the scope's organization: any `organization_id` given must be it.
    fn query(&self, QueryPairs(mut pairs): QueryPairs) -> Result<QueryPairs, ApiError> {
        let own = self.organization_id.to_string();
        let mut given = false;
        for (name, value) in &pairs {
            if name == "organization_id" {
                if *value != own {
                    return Err(organization_not_found(value));
                }
                given = true;
            }
        }
        if !given {
            pairs.push(("organization_id".into(), own));
        }
        Ok(QueryPairs(pairs))
    }

    /// The narrowing filters applied to a listing's query: values asked for must be among the
    /// token's, and none asked for means all of the token's.
    fn narrow_query(&self, QueryPairs(mut pairs): QueryPairs) -> Result<QueryPairs, ApiError> {
        for (name, allowed) in [("actor_ids", &self.actor_ids), ("actions", &self.actions)] {
            if allowed.is_empty() {
                continue;
            }
            let asked = QueryPairs(pairs.clone()).list_exact(name);
            if asked.is_empty() {
                pairs.extend(allowed.iter().map(|value| (name.to_owned(), value.clone())));
            } else if let Some(outside) = asked.iter().find(|value| !allowed.contains(value)) {
                return Err(outside_filter(name, outside));
            }
        }
        Ok(QueryPairs(pairs))
    }

    /// A JSON body with the scope's organization (any `organization_id` given must be it), and,
    /// with `narrow`, the token's narrowing filters.
    fn body(&self, bytes: &[u8], narrow: bool) -> Result<Bytes, ApiError> {
        let mut body: serde_json::Map<String, Value> = parse_json(bytes)?;
        let own = self.organization_id.to_string();
        match body.get("organization_id") {
            None | Some(Value::Null) => {
                body.insert("organization_id".into(), Value::String(own));
            }
            Some(Value::String(text)) if *text == own => {}
            Some(Value::String(text)) => return Err(organization_not_found(text)),
            // The handler names the wrong type.
            Some(_) => {}
        }
        if narrow {
            for (name, allowed) in [("actor_ids", &self.actor_ids), ("actions", &self.actions)] {
                if allowed.is_empty() {
                    continue;
                }
                match body.get(name) {
                    None | Some(Value::Null) => {
                        body.insert(name.into(), Value::from(allowed.clone()));
                    }
                    Some(Value::Array(asked)) if !asked.is_empty() => {
                        for value in asked {
                            let text = value.as_str().unwrap_or_default();
                            if !allowed.iter().any(|allowed| allowed == text) {
                                return Err(outside_filter(name, text));
                            }
                        }
                    }
                    Some(_) => {
                        body.insert(name.into(), Value::from(allowed.clone()));
                    }
                }
            }
        }
        Ok(Bytes::from(serde_json::to_vec(&body).expect("JSON serializes")))
    }

    /// Whether an event is one the scope may see.
    fn sees(&self, event: &Event) -> bool {
        event.organization_id == self.organization_id
            && (self.actor_ids.is_empty() || self.actor_ids.contains(&event.input.actor.id))
            && (self.actions.is_empty() || self.actions.contains(&event.input.action))
    }

    async fn event(&self, state: &AppState, text: &str) -> Result<(), ApiError> {
        let id = EventId::parse(text).map_err(|_| event_not_found(text))?;
        match state.store.get_event(id).await {
            Ok(event) if self.sees(&event) => Ok(()),
            Ok(_) | Err(vellum_store::StoreError::NotFound { .. }) => Err(event_not_found(text)),
            Err(error) => Err(error.into()),
        }
    }

    async fn export(&self, state: &AppState, text: &str) -> Result<(), ApiError> {
        let not_found = || ApiError::NotFound {
            message: format!("Audit Log Export not found: '{text}'."),
        };
        let id = ExportId::parse(text).map_err(|_| not_found())?;
        // A narrowed token sees an export only if the export is narrowed at least as much.
        let within = |asked: &[String], allowed: &[String]| {
            allowed.is_empty() || (!asked.is_empty() && asked.iter().all(|value| allowed.contains(value)))
        };
        match state.store.get_export(id).await {
            Ok(export)
                if export.organization_id == self.organization_id
                    && within(&export.filter.actor_ids, &self.actor_ids)
                    && within(&export.filter.actions, &self.actions) =>
            {
                Ok(())
            }
            Ok(_) | Err(vellum_store::StoreError::NotFound { .. }) => Err(not_found()),
            Err(error) => Err(error.into()),
        }
    }

    /// A change to one of the scope's streams: its intent, its budget, and the stream its own.
    async fn change_stream(&self, state: &AppState, text: &str) -> Result<(), ApiError> {
        self.allow(Feature::Streams)?;
        self.allow_change(state)?;
        self.stream(state, text).await
    }

    async fn stream(&self, state: &AppState, text: &str) -> Result<(), ApiError> {
        let not_found = || ApiError::NotFound {
            message: format!("Audit Log Stream not found: '{text}'."),
        };
        let id = StreamId::parse(text).map_err(|_| not_found())?;
        match state.store.get_stream(id).await {
            Ok(stream) if stream.organization_id == self.organization_id => Ok(()),
            Ok(_) | Err(vellum_store::StoreError::NotFound { .. }) => Err(not_found()),
            Err(error) => Err(error.into()),
        }
    }

    /// Appends an access record to the organization's trail.
    pub(crate) async fn record(
        &self,
        state: &AppState,
        action: &str,
        details: &[(&str, &str)],
    ) -> Result<(), ApiError> {
        let metadata: Metadata = details
            .iter()
            .map(|(name, value)| ((*name).to_owned(), MetadataValue::String((*value).to_owned())))
            .collect();
        let input = log_record::access_input(
            action,
            &self.organization_id.to_string(),
            &self.by,
            vellum_store::now(),
            metadata,
            self.client.address.as_deref(),
            self.client.user_agent.as_deref(),
        );
        state.ingest.record(self.organization_id, input).await?;
        Ok(())
    }
}

fn outside_filter(name: &str, value: &str) -> ApiError {
    ApiError::Forbidden {
        message: format!("This viewer token does not show {name} '{value}'."),
        code: "outside_scope",
    }
}

/// The scoped API's routes (the middleware that sets the [`Scope`] wraps them).
pub(crate) fn routes() -> Router<AppState> {
    // Each route also answers OPTIONS, so that a cross-origin preflight reaches the viewer's
    // CORS check (which answers it) instead of a 405.
    Router::new()
        .route("/audit_logs/events", get(list_events).options(preflight))
        .route("/audit_logs/events/stream", get(stream_events).options(preflight))
        .route("/audit_logs/events/{id}", get(get_event).options(preflight))
        .route("/audit_logs/log/checkpoint", get(checkpoint).options(preflight))
        .route("/audit_logs/log/public_key", get(public_key).options(preflight))
        .route(
            "/audit_logs/log/proof/inclusion",
            get(inclusion_proof).options(preflight),
        )
        .route(
            "/audit_logs/log/proof/consistency",
            get(consistency_proof).options(preflight),
        )
        .route("/audit_logs/log/entries", get(entries).options(preflight))
        .route("/audit_logs/exports", post(create_export).options(preflight))
        .route("/audit_logs/exports/{id}", get(get_export).options(preflight))
        .route(
            "/audit_logs/streams",
            post(create_stream).get(list_streams).options(preflight),
        )
        .route(
            "/audit_logs/streams/{id}",
            get(get_stream)
                .put(update_stream)
                .delete(delete_stream)
                .options(preflight),
        )
        .route(
            "/audit_logs/streams/{id}/replay",
            post(replay_stream).options(preflight),
        )
        .route("/audit_logs/streams/{id}/test", post(test_stream).options(preflight))
}

/// `OPTIONS`: nothing to do here (the viewer's CORS check answers preflights before this).
pub(crate) async fn preflight() -> StatusCode {
    StatusCode::NO_CONTENT
}

async fn list_events(
    State(state): State<AppState>,
    Extension(scope): Extension<Scope>,
    query: QueryPairs,
) -> Result<Response, ApiError> {
    scope.allow(Feature::Trail)?;
    let query = scope.narrow_query(scope.query(query)?)?;
    for cursor in ["before", "after"] {
        if let Ok(Some(text)) = query.single(cursor)
            && !text.is_empty()
        {
            scope.event(&state, text).await?;
        }
    }
    Ok(crate::events::list_events(State(state), query).await?.into_response())
}

async fn stream_events(
    State(state): State<AppState>,
    Extension(scope): Extension<Scope>,
    headers: HeaderMap,
    query: QueryPairs,
) -> Result<Response, ApiError> {
    scope.allow(Feature::Trail)?;
    let query = scope.narrow_query(scope.query(query)?)?;
    crate::tail::stream_events(State(state), headers, query).await
}

async fn get_event(
    State(state): State<AppState>,
    Extension(scope): Extension<Scope>,
    WirePath(id): WirePath,
) -> Result<Response, ApiError> {
    scope.allow(Feature::Trail)?;
    scope.event(&state, &id).await?;
    Ok(crate::events::get_event(State(state), WirePath(id))
        .await?
        .into_response())
}

async fn checkpoint(
    State(state): State<AppState>,
    Extension(scope): Extension<Scope>,
    query: QueryPairs,
) -> Result<Response, ApiError> {
    scope.allow(Feature::Trail)?;
    Ok(crate::log::checkpoint(State(state), scope.query(query)?)
        .await?
        .into_response())
}

async fn public_key(State(state): State<AppState>, Extension(scope): Extension<Scope>) -> Result<Response, ApiError> {
    scope.allow(Feature::Trail)?;
    Ok(crate::log::public_key(State(state)).await.into_response())
}

async fn inclusion_proof(
    State(state): State<AppState>,
    Extension(scope): Extension<Scope>,
    query: QueryPairs,
) -> Result<Response, ApiError> {
    scope.allow(Feature::Trail)?;
    let query = scope.query(query)?;
    if let Ok(Some(text)) = query.single("event_id") {
        scope.event(&state, text).await?;
    }
    Ok(crate::log::inclusion_proof(State(state), query).await?.into_response())
}

async fn consistency_proof(
    State(state): State<AppState>,
    Extension(scope): Extension<Scope>,
    query: QueryPairs,
) -> Result<Response, ApiError> {
    scope.allow(Feature::Trail)?;
    Ok(crate::log::consistency_proof(State(state), scope.query(query)?)
        .await?
        .into_response())
}

async fn entries(
    State(state): State<AppState>,
    Extension(scope): Extension<Scope>,
    query: QueryPairs,
) -> Result<Response, ApiError> {
    scope.allow(Feature::Trail)?;
    if scope.is_narrowed() {
        // Entries are whole events, whoever their actor: a narrowed token reads events only.
        return Err(ApiError::Forbidden {
            message: "A viewer token narrowed to some actors or actions cannot read the raw log.".into(),
            code: "outside_scope",
        });
    }
    Ok(crate::log::entries(State(state), scope.query(query)?)
        .await?
        .into_response())
}

async fn create_export(
    State(state): State<AppState>,
    Extension(scope): Extension<Scope>,
    headers: HeaderMap,
    JsonBytes(bytes): JsonBytes,
) -> Result<Response, ApiError> {
    scope.allow(Feature::Trail)?;
    scope.allow_change(&state)?;
    let body = parse_json(&scope.body(&bytes, true)?)?;
    let (status, Json(export)) = crate::exports::create_export(State(state.clone()), headers, WireJson(body)).await?;
    let action = match scope.access {
        Access::Viewer => log_record::VIEWER_EXPORT_CREATED_ACTION,
        Access::Portal(_) => log_record::PORTAL_EXPORT_CREATED_ACTION,
    };
    scope.record(&state, action, &[("export_id", &export.id)]).await?;
    Ok((status, Json(export)).into_response())
}

async fn get_export(
    State(state): State<AppState>,
    Extension(scope): Extension<Scope>,
    headers: HeaderMap,
    WirePath(id): WirePath,
) -> Result<Response, ApiError> {
    scope.allow(Feature::Trail)?;
    scope.export(&state, &id).await?;
    Ok(crate::exports::get_export(State(state), headers, WirePath(id))
        .await?
        .into_response())
}

async fn stream_changed(state: &AppState, scope: &Scope, operation: &str, stream_id: &str) -> Result<(), ApiError> {
    scope
        .record(
            state,
            log_record::PORTAL_STREAM_CHANGED_ACTION,
            &[("operation", operation), ("stream_id", stream_id)],
        )
        .await
}

async fn create_stream(
    State(state): State<AppState>,
    Extension(scope): Extension<Scope>,
    JsonBytes(bytes): JsonBytes,
) -> Result<Response, ApiError> {
    scope.allow(Feature::Streams)?;
    scope.allow_change(&state)?;
    let body = parse_json(&scope.body(&bytes, false)?)?;
    let (status, Json(stream)) = crate::streams::create_stream(State(state.clone()), WireJson(body)).await?;
    stream_changed(&state, &scope, "created", &stream.id).await?;
    Ok((status, Json(stream)).into_response())
}

async fn list_streams(
    State(state): State<AppState>,
    Extension(scope): Extension<Scope>,
    query: QueryPairs,
) -> Result<Response, ApiError> {
    scope.allow(Feature::Streams)?;
    Ok(crate::streams::list_streams(State(state), scope.query(query)?)
        .await?
        .into_response())
}

async fn get_stream(
    State(state): State<AppState>,
    Extension(scope): Extension<Scope>,
    WirePath(id): WirePath,
) -> Result<Response, ApiError> {
    scope.allow(Feature::Streams)?;
    scope.stream(&state, &id).await?;
    Ok(crate::streams::get_stream(State(state), WirePath(id))
        .await?
        .into_response())
}

async fn update_stream(
    State(state): State<AppState>,
    Extension(scope): Extension<Scope>,
    WirePath(id): WirePath,
    WireJson(body): WireJson<crate::streams::UpdateBody>,
) -> Result<Response, ApiError> {
    scope.change_stream(&state, &id).await?;
    let answer = crate::streams::update_stream(State(state.clone()), WirePath(id.clone()), WireJson(body)).await?;
    stream_changed(&state, &scope, "updated", &id).await?;
    Ok(answer.into_response())
}

async fn delete_stream(
    State(state): State<AppState>,
    Extension(scope): Extension<Scope>,
    WirePath(id): WirePath,
) -> Result<Response, ApiError> {
    scope.change_stream(&state, &id).await?;
    let status: StatusCode = crate::streams::delete_stream(State(state.clone()), WirePath(id.clone())).await?;
    stream_changed(&state, &scope, "deleted", &id).await?;
    Ok(status.into_response())
}

async fn test_stream(
    State(state): State<AppState>,
    Extension(scope): Extension<Scope>,
    WirePath(id): WirePath,
) -> Result<Response, ApiError> {
    scope.change_stream(&state, &id).await?;
    Ok(crate::streams::test_stream(State(state), WirePath(id))
        .await?
        .into_response())
}

async fn replay_stream(
    State(state): State<AppState>,
    Extension(scope): Extension<Scope>,
    WirePath(id): WirePath,
    WireJson(body): WireJson<crate::streams::ReplayBody>,
) -> Result<Response, ApiError> {
    scope.change_stream(&state, &id).await?;
    let answer = crate::streams::replay_stream(State(state.clone()), WirePath(id.clone()), WireJson(body)).await?;
    stream_changed(&state, &scope, "replayed", &id).await?;
    Ok(answer.into_response())
}
