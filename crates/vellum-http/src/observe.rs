//! What the HTTP layer tells operators about each request: the `vellum_http_requests_total`
//! counter and `vellum_http_request_duration_seconds` histogram, labelled by method, matched
//! route template (never the path itself, so cardinality stays bounded) and status; and the
//! request span's `route` and `organization` fields, which the request log carries.
//!
//! The route is known only once the router has matched, inside it, while the figures are taken
//! outside it (so that refusals before routing count too): [`count`] leaves an empty slot in
//! the request's extensions, [`name_route`] (a route layer) fills it in.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use vellum_core::OrganizationId;

/// The route template of a request, filled in once the router matched it.
#[derive(Clone, Default)]
struct RouteSlot(Arc<OnceLock<String>>);

/// The route label of requests that matched no route.
const UNMATCHED: &str = "unmatched";

/// Counts and times every request (outermost but for the request id and span).
pub(crate) async fn count(mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let slot = RouteSlot::default();
    request.extensions_mut().insert(slot.clone());
    let method = method_label(request.method());
    let response = next.run(request).await;
    let route = slot.0.get().map_or(UNMATCHED, String::as_str).to_owned();
    let status = response.status().as_u16().to_string();
    metrics::counter!(
        "vellum_http_requests_total",
        "method" => method,
        "route" => route.clone(),
        "status" => status
    )
    .increment(1);
    metrics::histogram!(
        "vellum_http_request_duration_seconds",
        "method" => method,
        "route" => route
    )
    .record(started.elapsed().as_secs_f64());
    response
}

/// Names the matched route: in the slot [`count`] left, and in the request's span.
pub(crate) async fn name_route(request: Request, next: Next) -> Response {
    if let Some(matched) = request.extensions().get::<MatchedPath>() {
        let route = matched.as_str();
        tracing::Span::current().record("route", route);
        if let Some(slot) = request.extensions().get::<RouteSlot>() {
            let _ = slot.0.set(route.to_owned());
        }
    }
    next.run(request).await
}

/// Methods as labels: the standard ones by name, anything else as `other` (a client may send
/// any token as a method).
fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Parses an organization id a request names, and, when it is one, records it in the request's
/// span (so that the request's log line says which organization it was about).
pub(crate) fn organization_id(text: &str) -> Result<OrganizationId, vellum_core::id::IdParseError> {
    let parsed = OrganizationId::parse(text)?;
    record_organization(parsed);
    Ok(parsed)
}

/// Records the organization a request is about in its span.
pub(crate) fn record_organization(organization: OrganizationId) {
    tracing::Span::current().record("organization", tracing::field::display(organization));
}
