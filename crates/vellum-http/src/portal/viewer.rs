//! The embeddable viewer: `POST /audit_logs/viewer_tokens` (API key) issues a short-lived token,
//! and `/viewer/api/*` serves the scoped API to its holder, cross-origin only to the origins the
//! operator allowed.

use axum::Json;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use vellum_core::portal::{
    DEFAULT_VIEWER_TOKEN_SECONDS, MAX_VIEWER_TOKEN_BYTES, MAX_VIEWER_TOKEN_SECONDS, MIN_VIEWER_TOKEN_SECONDS,
    ViewerClaims, ViewerTokenError, check_viewer_filters, open_viewer_token, sign_viewer_token,
};
use vellum_core::{OrganizationId, Timestamp, ValidationErrors};

use super::scope::{Access, Client, Scope};
use crate::AppState;
use crate::error::{ApiError, ErrorResponse, ValidationError};
use crate::extract::WireJson;
use crate::retention::Caller;
use crate::wire::wire_const;

/// A request for a viewer token.
#[derive(Deserialize, ToSchema)]
#[schema(as = CreateViewerTokenDto)]
pub(crate) struct CreateViewerTokenBody {
    /// The organization whose trail the token reads.
    #[schema(required = true, value_type = String, example = "org_01EHWNCE74X7JSDV0X3SZ3KJNY")]
    organization_id: Option<Value>,
    /// Seconds until it expires: 30 to 3,600 (600 when absent).
    #[schema(value_type = Option<u64>, example = 600)]
    expires_in: Option<Value>,
    /// Only events of these actor ids (at most 20).
    #[schema(value_type = Option<Vec<String>>)]
    actor_ids: Option<Value>,
    /// Only events of these actions (at most 20).
    #[schema(value_type = Option<Vec<String>>)]
    actions: Option<Value>,
}

wire_const!(
    /// `"audit_log_viewer_token"`.
    ViewerTokenObject = "audit_log_viewer_token"
);

/// A viewer token.
#[derive(Serialize, ToSchema)]
#[schema(as = AuditLogViewerToken)]
pub(crate) struct ViewerTokenResponse {
    object: ViewerTokenObject,
    /// Give it to `<vellum-audit-log token="…">`; it reads one organization's trail until it expires.
    token: String,
    organization_id: String,
    expires_at: String,
    actor_ids: Vec<String>,
    actions: Vec<String>,
}

fn strings(value: Option<&Value>, name: &'static str, errors: &mut ValidationErrors) -> Vec<String> {
    match value {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(values)) if values.iter().all(Value::is_string) => values
            .iter()
            .filter_map(|value| value.as_str().map(str::to_owned))
            .collect(),
        Some(_) => {
            errors.push(name, "invalid_type", format!("{name} must be an array of strings"));
            Vec::new()
        }
    }
}

#[utoipa::path(
    post,
    path = "/audit_logs/viewer_tokens",
    tag = "audit-logs",
    operation_id = "AuditLogViewerTokensController_create",
    summary = "Create a viewer token (Vellum)",
    description = "A short-lived token for the embeddable viewer (`<vellum-audit-log token=…>`): it reads and exports \
        one organization's trail, optionally only some actors' or actions' events; it changes nothing else. \
        Issuing one is recorded in the organization's trail (`vellum.viewer.token_issued`).",
    request_body = CreateViewerTokenBody,
    responses(
        (status = 201, description = "The token.", body = ViewerTokenResponse),
        (status = 404, description = "No such organization.", body = ErrorResponse),
        (status = 422, description = "A missing or invalid field.", body = ValidationError),
    ),
)]
pub(crate) async fn create_viewer_token(
    State(state): State<AppState>,
    Caller(by): Caller,
    extensions: axum::http::Extensions,
    headers: HeaderMap,
    WireJson(body): WireJson<CreateViewerTokenBody>,
) -> Result<Response, ApiError> {
    let key = state.viewer_key.ok_or(ApiError::Unavailable)?;
    let mut errors = ValidationErrors::new();
    let organization = match &body.organization_id {
        Some(Value::String(text)) => Some(text.clone()),
        None | Some(Value::Null) => {
            errors.push("organization_id", "required", "organization_id is required");
            None
        }
        Some(_) => {
            errors.push("organization_id", "invalid_type", "organization_id must be a string");
            None
        }
    };
    let expires_in = match &body.expires_in {
        None | Some(Value::Null) => Some(DEFAULT_VIEWER_TOKEN_SECONDS),
        Some(value) => match value.as_u64() {
            Some(seconds) if (MIN_VIEWER_TOKEN_SECONDS..=MAX_VIEWER_TOKEN_SECONDS).contains(&seconds) => Some(seconds),
            _ => {
                errors.push(
                    "expires_in",
                    "invalid",
                    format!(
                        "expires_in must be whole seconds from {MIN_VIEWER_TOKEN_SECONDS} to {MAX_VIEWER_TOKEN_SECONDS}"
                    ),
                );
                None
            }
        },
    };
    let actor_ids = strings(body.actor_ids.as_ref(), "actor_ids", &mut errors);
    let actions = strings(body.actions.as_ref(), "actions", &mut errors);
    check_viewer_filters(&actor_ids, &actions, &mut errors);
    let (Some(organization), Some(expires_in)) = (organization.filter(|_| errors.is_empty()), expires_in) else {
        return Err(errors.into());
    };
    let organization_id = crate::observe::organization_id(&organization).map_err(|_| ApiError::NotFound {
        message: format!("Organization not found: '{organization}'."),
    })?;
    // The organization must be live now (the token's reads find its events either way).
    state.store.get_organization(organization_id).await?;
    let now = vellum_store::now();
    let expires_at = Timestamp::from_unix_millis(now.unix_millis() + i64::try_from(expires_in).unwrap_or(0) * 1000)
        .ok_or_else(|| ApiError::Internal("a time out of range".into()))?;
    let claims = ViewerClaims {
        id: format!("viewer_token_{}", ulid::Ulid::generate()),
        organization_id: organization_id.to_string(),
        expires_at_millis: expires_at.unix_millis(),
        actor_ids,
        actions,
    };
    let token = sign_viewer_token(&claims, &key);
    if token.len() > MAX_VIEWER_TOKEN_BYTES {
        let mut errors = ValidationErrors::new();
        errors.push(
            "actor_ids",
            "too_long",
            format!(
                "the filters make the token longer than {MAX_VIEWER_TOKEN_BYTES} bytes: list fewer or shorter values"
            ),
        );
        return Err(errors.into());
    }
    let scope = Scope {
        organization_id,
        access: Access::Viewer,
        by,
        actor_ids: Vec::new(),
        actions: Vec::new(),
        client: Client::of(&extensions, &headers),
        credential: String::new(),
    };
    let expires_text = expires_at.to_wire();
    // As JSON arrays, so that values holding commas stay apart.
    let list = |values: &[String]| {
        if values.is_empty() {
            String::new()
        } else {
            serde_json::to_string(values).expect("strings serialize")
        }
    };
    let actor_text = list(&claims.actor_ids);
    let action_text = list(&claims.actions);
    let mut details = vec![
        ("viewer_token_id", claims.id.as_str()),
        ("expires_at", expires_text.as_str()),
    ];
    if !actor_text.is_empty() {
        details.push(("actor_ids", &actor_text));
    }
    if !action_text.is_empty() {
        details.push(("actions", &action_text));
    }
    scope
        .record(&state, vellum_core::log_record::VIEWER_TOKEN_ISSUED_ACTION, &details)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(ViewerTokenResponse {
            object: ViewerTokenObject::Value,
            token,
            organization_id: claims.organization_id,
            expires_at: expires_text,
            actor_ids: claims.actor_ids,
            actions: claims.actions,
        }),
    )
        .into_response())
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

fn claims_of(state: &AppState, headers: &HeaderMap) -> Result<ViewerClaims, ApiError> {
    let key = state.viewer_key.ok_or(ApiError::Unavailable)?;
    let token = bearer(headers).ok_or(ApiError::Unauthorized {
        code: "invalid_viewer_token",
    })?;
    open_viewer_token(token, &key, vellum_store::now()).map_err(|error| ApiError::Unauthorized {
        code: match error {
            ViewerTokenError::Expired => "viewer_token_expired",
            ViewerTokenError::Invalid => "invalid_viewer_token",
        },
    })
}

/// The claims of the request's token, and its organization, which must still be live (a deleted
/// organization's tokens end with it).
async fn authenticate(state: &AppState, headers: &HeaderMap) -> Result<(ViewerClaims, OrganizationId), ApiError> {
    let claims = claims_of(state, headers)?;
    let invalid = || ApiError::Unauthorized {
        code: "invalid_viewer_token",
    };
    let organization_id = crate::observe::organization_id(&claims.organization_id).map_err(|_| invalid())?;
    match state.store.get_organization(organization_id).await {
        Ok(_) => Ok((claims, organization_id)),
        Err(vellum_store::StoreError::NotFound { .. }) => Err(invalid()),
        Err(error) => Err(error.into()),
    }
}

/// Admits requests carrying a valid viewer token, scoped to its organization and filters.
pub(crate) async fn require_viewer_token(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let (claims, organization_id) = authenticate(&state, request.headers()).await?;
    let scope = Scope {
        organization_id,
        access: Access::Viewer,
        by: vellum_core::log_record::RecordedBy {
            id: claims.id.clone(),
            actor_type: "viewer_token".into(),
            name: None,
        },
        client: Client::of(request.extensions(), request.headers()),
        credential: format!("viewer:{}", claims.id),
        actor_ids: claims.actor_ids,
        actions: claims.actions,
    };
    request.extensions_mut().insert(scope);
    Ok(next.run(request).await)
}

/// `GET /viewer/api/token`: what the token reads, for the component to render.
pub(crate) async fn token(State(state): State<AppState>, headers: HeaderMap) -> Result<Json<Value>, ApiError> {
    let (claims, _) = authenticate(&state, &headers).await?;
    let expires_at = Timestamp::from_unix_millis(claims.expires_at_millis).map(Timestamp::to_wire);
    Ok(Json(serde_json::json!({
        "object": "audit_log_viewer_token",
        "organization_id": claims.organization_id,
        "expires_at": expires_at,
        "actor_ids": claims.actor_ids,
        "actions": claims.actions,
        "verifiable": claims.actor_ids.is_empty() && claims.actions.is_empty(),
    })))
}

/// Cross-origin use of the viewer's API: only from the origins the operator allowed, or from
/// this server's own pages. A preflight from an allowed origin is answered here; any request
/// from another origin is refused before it reaches a handler.
pub(crate) async fn cors(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let Some(origin) = request
        .headers()
        .get(header::ORIGIN)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
    else {
        return next.run(request).await;
    };
    let own = crate::exports::base_url(&state, request.headers());
    let allowed = origin == own || state.config.portal.viewer_allowed_origins.contains(&origin);
    if !allowed {
        let mut response = ApiError::Forbidden {
            message: format!("The origin {origin} may not embed this server's viewer."),
            code: "origin_not_allowed",
        }
        .into_response();
        response
            .headers_mut()
            .append(header::VARY, HeaderValue::from_static("Origin"));
        return response;
    }
    let origin_value = HeaderValue::from_str(&origin).ok();
    let mut response = if request.method() == Method::OPTIONS {
        let mut response = StatusCode::NO_CONTENT.into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET, POST"),
        );
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static("authorization, content-type, last-event-id"),
        );
        headers.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
        response
    } else {
        next.run(request).await
    };
    let headers = response.headers_mut();
    if let Some(origin) = origin_value {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    }
    headers.append(header::VARY, HeaderValue::from_static("Origin"));
    response
}
