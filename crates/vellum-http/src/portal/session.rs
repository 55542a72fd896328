//! Portal sessions: an HttpOnly, `SameSite=Strict` cookie scoped to `/portal`, holding a token
//! of which the store keeps only the hash, with a CSRF token (derived from it) required on
//! every state-changing request, as the operator dashboard's.

use axum::Json;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use vellum_core::operator::SessionToken;
use vellum_core::portal::PortalSession;

use super::scope::{Access, Client, Scope};
use crate::AppState;
use crate::error::ApiError;

/// The cookie that carries the portal session's token.
pub(crate) const PORTAL_COOKIE: &str = "vellum_portal";

fn token_from_cookies(headers: &HeaderMap) -> Option<SessionToken> {
    crate::dashboard::session::token_from_cookie(headers, PORTAL_COOKIE)
}

fn ended() -> ApiError {
    ApiError::Unauthorized {
        code: "portal_session_ended",
    }
}

/// The cookie of a portal session (an empty value and no lifetime end it).
pub(crate) fn cookie(state: &AppState, value: &str, max_age_seconds: u64) -> HeaderValue {
    crate::dashboard::session::session_cookie(state, PORTAL_COOKIE, "/portal", value, max_age_seconds)
}

async fn authenticate(
    state: &AppState,
    method: &Method,
    headers: &HeaderMap,
) -> Result<(PortalSession, SessionToken), ApiError> {
    let token = token_from_cookies(headers).ok_or_else(ended)?;
    let session = state
        .store
        .find_portal_session(token.hash(), vellum_store::now())
        .await?
        .ok_or_else(ended)?;
    crate::dashboard::session::check_csrf(&token, method, headers)?;
    Ok((session, token))
}

/// Admits requests of a live portal session, scoped to its organization and intent.
pub(crate) async fn require_portal_session(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let (session, _) = authenticate(&state, request.method(), request.headers()).await?;
    let scope = Scope {
        organization_id: session.link.organization_id,
        access: Access::Portal(session.link.intent),
        by: super::links::by_of(&session.link),
        actor_ids: Vec::new(),
        actions: Vec::new(),
        client: Client::of(request.extensions(), request.headers()),
        credential: format!("portal:{}", session.link.id),
    };
    request.extensions_mut().insert(scope);
    Ok(next.run(request).await)
}

/// `GET /portal/api/session`: the session's organization, intent, CSRF token and the
/// application's branding.
pub(crate) async fn current(State(state): State<AppState>, headers: HeaderMap) -> Result<Json<Value>, ApiError> {
    let (session, token) = authenticate(&state, &Method::GET, &headers).await?;
    let organization = state.store.get_organization(session.link.organization_id).await?;
    Ok(Json(json!({
        "object": "portal_session",
        "organization": { "id": organization.id.to_string(), "name": organization.name },
        "intent": session.link.intent.as_str(),
        "csrf_token": token.csrf_token(),
        "expires_at": session.expires_at.to_wire(),
        "return_url": session.link.return_url,
        "success_url": session.link.success_url,
        "application": {
            "name": state.config.portal.application_name,
            "logo_url": state.config.portal.logo.as_ref().map(|_| "/portal/logo"),
        },
    })))
}

/// `DELETE /portal/api/session`: ends the session (needs the CSRF token, like every change).
pub(crate) async fn end(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let (session, _) = authenticate(&state, &Method::DELETE, &headers).await?;
    state.store.end_portal_session(session.token_hash).await?;
    let mut response = Json(json!({ "success": true })).into_response();
    response.headers_mut().insert(header::SET_COOKIE, cookie(&state, "", 0));
    Ok(response)
}
