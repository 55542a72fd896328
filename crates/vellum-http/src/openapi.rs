//! The OpenAPI 3.1 document of the public API, generated from the wire types and the handlers'
//! `#[utoipa::path]` attributes, and served at `GET /openapi.json`.
//!
//! The document is committed as `docs/openapi.json`; a test compares the two byte for byte, and
//! `vellum openapi` prints the document to regenerate the file.

use std::sync::LazyLock;

use axum::http::header;
use axum::response::IntoResponse;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, RefOr, Response};
use utoipa::{Modify, OpenApi, ToSchema};

use crate::error::{
    ErrorResponse, FieldErrorItem, InvalidEventError, LegacyFieldErrorItem, LegacyValidationError, SchemaViolationItem,
    ValidationError,
};
use crate::{audit_trail, events, exports, health, log, organizations, portal, retention, schemas, streams, tail};

const DESCRIPTION: &str = "\
Vellum is a self-hosted audit log service, wire-compatible with WorkOS Audit Logs: the official \
WorkOS SDKs work against it by changing only their base URL.

For the paths WorkOS also serves, shapes, operation ids and component names follow WorkOS's own \
OpenAPI document; where Vellum answers differently (for example `DELETE /organizations/{id}` \
answers 204) the operation says so. Vellum's additions (batches of events, reading events, the \
verifiable log, the legacy Audit Trail API at `/events`, `retention_period`, export `format`) \
are described as Vellum serves them.

Every error is JSON with at least `message` and `code` (the `ErrorResponse` schema), also the \
ones no operation lists because any request may get them: 404 for an unknown path, 405 for a \
method a path does not serve, 414 and 431 for a URI or headers over the limits. Authenticate with an API key as a bearer \
token: `Authorization: Bearer sk_…`. The operator dashboard's session API under `/dashboard/api` \
is not part of this document.";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Vellum",
        description = DESCRIPTION,
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    paths(
        health::health,
        health::ready,
        health::metrics,
        serve_document,
        organizations::list_organizations,
        organizations::create_organization,
        organizations::get_organization,
        organizations::update_organization,
        organizations::delete_organization,
        organizations::get_organization_by_external_id,
        retention::get_retention,
        retention::update_retention,
        retention::get_configuration,
        retention::get_legal_hold,
        retention::update_legal_hold,
        retention::create_erasure,
        schemas::list_actions,
        schemas::list_schemas,
        schemas::create_schema,
        events::create_event,
        events::create_events_batch,
        events::list_events,
        events::get_event,
        tail::stream_events,
        exports::create_export,
        exports::get_export,
        exports::download,
        streams::create_stream,
        streams::list_streams,
        streams::get_stream,
        streams::update_stream,
        streams::delete_stream,
        streams::replay_stream,
        streams::test_stream,
        portal::create_viewer_token,
        portal::generate_link,
        portal::revoke_link,
        audit_trail::create_event,
        audit_trail::list_events,
        log::checkpoint,
        log::public_key,
        log::inclusion_proof,
        log::consistency_proof,
        log::entries,
    ),
    components(schemas(
        ErrorResponse,
        InvalidEventError,
        SchemaViolationItem,
        ValidationError,
        FieldErrorItem,
        LegacyValidationError,
        LegacyFieldErrorItem,
    )),
    modifiers(&Conventions),
    security(("bearer" = [])),
    tags(
        (name = "organizations", description = "Organizations, as WorkOS serves them."),
        (name = "audit-logs", description = "WorkOS's Audit Logs API, with Vellum's additions."),
        (name = "audit-trail", description = "WorkOS's legacy Audit Trail API."),
        (name = "log", description = "Vellum's verifiable log of each organization."),
        (name = "portal", description = "WorkOS's Admin Portal links (intents audit_logs and log_streams)."),
        (name = "health", description = "Probes and this document; no API key needed."),
    ),
)]
struct ApiDoc;

/// What applies to every operation: the bearer scheme, and the errors any operation may answer
/// beyond those it lists itself.
struct Conventions;

impl Modify for Conventions {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An API key, `sk_…`, as a bearer token: `Authorization: Bearer sk_example_123456789`.",
                    ))
                    .build(),
            ),
        );
        let error = |description: &str| -> RefOr<Response> {
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
                            ErrorResponse::name(),
                        ))))
                        .build(),
                )
                .build()
                .into()
        };
        for (path, item) in &mut openapi.paths.paths {
            let probe = matches!(path.as_str(), "/health" | "/openapi.json");
            for operation in [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ]
            .into_iter()
            .flatten()
            {
                let public = operation.security.as_ref().is_some_and(|requirements| {
                    requirements
                        .iter()
                        .all(|requirement| requirement == &Default::default())
                });
                let has_body = operation.request_body.is_some();
                let mut add = |status: &str, description: &str| {
                    operation
                        .responses
                        .responses
                        .entry(status.to_owned())
                        .or_insert_with(|| error(description));
                };
                add(
                    "400",
                    "The request cannot be read: malformed JSON, query string or path.",
                );
                if !public {
                    add("401", "No API key, or one that is not valid.");
                    add(
                        "429",
                        "The API key used up its request budget (`Retry-After` says when to retry).",
                    );
                }
                if has_body {
                    add("408", "The body did not arrive within the body read timeout.");
                    add("413", "The body is larger than the limit.");
                    add("415", "The body is not `application/json`.");
                }
                if !probe {
                    add(
                        "503",
                        "The store (or the export service) is unavailable, or the server is busy; retry after `Retry-After`.",
                    );
                }
            }
        }
    }
}

/// The names utoipa gives the list envelopes, and the names they have in the document:
/// WorkOS's `OrganizationList`, and the same pattern for the other lists.
const LIST_NAMES: [(&str, &str); 6] = [
    ("ListResponse_Organization", "OrganizationList"),
    ("ListResponse_AuditLogActionJson", "AuditLogActionList"),
    ("ListResponse_AuditLogSchemaJson", "AuditLogSchemaList"),
    ("ListResponse_AuditLogEvent", "AuditLogEventList"),
    ("ListResponse_AuditTrailEvent", "AuditTrailEventList"),
    ("ListResponse_AuditLogStream", "AuditLogStreamList"),
];

/// The document, pretty-printed with a final newline, as committed in `docs/openapi.json`.
pub fn openapi_json() -> String {
    let mut document = serde_json::to_value(ApiDoc::openapi()).expect("the OpenAPI document serialises");
    rename_list_schemas(&mut document);
    let mut text = serde_json::to_string_pretty(&document).expect("the OpenAPI document serialises");
    text.push('\n');
    text
}

/// Renames the list envelopes' components (see [`LIST_NAMES`]) and every reference to them,
/// keeping the components in name order.
fn rename_list_schemas(document: &mut serde_json::Value) {
    fn rewrite_references(value: &mut serde_json::Value) {
        match value {
            serde_json::Value::Object(members) => {
                for (name, member) in members.iter_mut() {
                    if name == "$ref"
                        && let serde_json::Value::String(reference) = member
                        && let Some((_, to)) = LIST_NAMES
                            .iter()
                            .find(|(from, _)| reference.strip_prefix("#/components/schemas/") == Some(*from))
                    {
                        *reference = format!("#/components/schemas/{to}");
                    } else {
                        rewrite_references(member);
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(rewrite_references),
            _ => {}
        }
    }
    rewrite_references(document);
    if let Some(serde_json::Value::Object(schemas)) = document.pointer_mut("/components/schemas") {
        let mut renamed: Vec<(String, serde_json::Value)> = std::mem::take(schemas)
            .into_iter()
            .map(|(name, schema)| {
                let name = LIST_NAMES
                    .iter()
                    .find(|(from, _)| *from == name)
                    .map_or(name, |(_, to)| (*to).to_owned());
                (name, schema)
            })
            .collect();
        renamed.sort_by(|(left, _), (right, _)| left.cmp(right));
        schemas.extend(renamed);
    }
}

static DOCUMENT: LazyLock<String> = LazyLock::new(openapi_json);

/// `GET /openapi.json`: the OpenAPI document of the public API.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "health",
    operation_id = "openapi",
    summary = "This document",
    security(()),
    responses((status = 200, description = "The OpenAPI 3.1 document of the public API.", body = Object)),
)]
pub(crate) async fn serve_document() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], DOCUMENT.as_str())
}
