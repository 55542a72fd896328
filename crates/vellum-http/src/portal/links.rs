//! WorkOS's Admin Portal links: `POST /portal/generate_link` and `POST /portal/revoke_link`
//! (API key), and `GET /portal/launch?secret=…`, which spends a link and opens a session.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use vellum_core::log_record::{self, RecordedBy};
use vellum_core::operator::{Email, SessionToken};
use vellum_core::portal::{
    self, LINK_LIFETIME_MILLIS, MAX_CONTACT_EMAILS, NewPortalLink, PortalIntent, SESSION_LIFETIME_MILLIS,
    UNSERVED_INTENTS,
};
use vellum_core::{OrganizationId, Timestamp, ValidationErrors};

use super::scope::{Access, Client, Scope};
use super::session;
use crate::AppState;
use crate::error::{ApiError, ErrorResponse, ValidationError};
use crate::extract::{QueryPairs, WireJson};

/// A request for a portal link, as every WorkOS SDK sends it.
#[derive(Deserialize, ToSchema)]
#[schema(as = GenerateLinkDto)]
pub(crate) struct GenerateLinkBody {
    /// The organization whose portal it opens.
    #[schema(required = true, value_type = String, example = "org_01EHWNCE74X7JSDV0X3SZ3KJNY")]
    organization: Option<Value>,
    /// `audit_logs` or `log_streams` (WorkOS's other intents are not served).
    #[schema(required = true, value_type = String, example = "audit_logs")]
    intent: Option<Value>,
    /// Where the portal's logo leads back to.
    #[schema(value_type = Option<String>, example = "https://app.example.com/settings")]
    return_url: Option<Value>,
    /// Where the admin is sent when done.
    #[schema(value_type = Option<String>)]
    success_url: Option<Value>,
    /// The application's id of the admin; links can be revoked by it.
    #[schema(value_type = Option<String>, example = "user_2x1")]
    external_user_id: Option<Value>,
    /// The IT contacts the link is for (at most 20).
    #[schema(value_type = Option<Vec<String>>)]
    it_contact_emails: Option<Value>,
    /// What older SDKs send instead of `it_contact_emails`.
    #[schema(value_type = Option<Vec<String>>)]
    admin_emails: Option<Value>,
    /// Options of WorkOS's `sso` intent; accepted and unused.
    #[schema(value_type = Option<Object>)]
    intent_options: Option<Value>,
}

/// A portal link.
#[derive(Serialize, ToSchema)]
#[schema(as = PortalLinkResponse)]
pub(crate) struct LinkResponse {
    /// Opens the portal once, within 5 minutes of its creation.
    #[schema(example = "https://vellum.example.com/portal/launch?secret=4f1c…")]
    link: String,
}

fn text_field<'a>(value: Option<&'a Value>, name: &'static str, errors: &mut ValidationErrors) -> Option<&'a str> {
    match value {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) => Some(text),
        Some(_) => {
            errors.push(name, "invalid_type", format!("{name} must be a string"));
            None
        }
    }
}

fn organization_of(text: &str) -> Result<OrganizationId, ApiError> {
    crate::observe::organization_id(text).map_err(|_| ApiError::NotFound {
        message: format!("Organization not found: '{text}'."),
    })
}

fn emails(body: &GenerateLinkBody, errors: &mut ValidationErrors) -> Vec<Email> {
    let mut found: Vec<Email> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for name in ["it_contact_emails", "admin_emails"] {
        let value = if name == "admin_emails" {
            &body.admin_emails
        } else {
            &body.it_contact_emails
        };
        match value {
            None | Some(Value::Null) => {}
            // Counted before any is read: a list of a million is refused at once.
            Some(Value::Array(values)) if values.len() > MAX_CONTACT_EMAILS => errors.push(
                name,
                "too_many",
                format!("at most {MAX_CONTACT_EMAILS} email addresses"),
            ),
            Some(Value::Array(values)) => {
                for (index, value) in values.iter().enumerate() {
                    match value.as_str().map(Email::parse) {
                        Some(Ok(email)) => {
                            if seen.insert(email.as_str().to_owned()) {
                                found.push(email);
                            }
                        }
                        _ => errors.push(format!("{name}[{index}]"), "invalid", "must be an email address"),
                    }
                }
            }
            Some(_) => errors.push(
                name,
                "invalid_type",
                format!("{name} must be an array of email addresses"),
            ),
        }
    }
    if found.len() > MAX_CONTACT_EMAILS {
        errors.push(
            "it_contact_emails",
            "too_many",
            format!("at most {MAX_CONTACT_EMAILS} email addresses"),
        );
    }
    found
}

#[utoipa::path(
    post,
    path = "/portal/generate_link",
    tag = "portal",
    operation_id = "PortalController_generateLink",
    summary = "Generate a portal link",
    description = "A one-time link to the Admin Portal of one organization, for the `audit_logs` or `log_streams` \
        intent. It can be opened within 5 minutes; opening it starts a session of one hour scoped to that \
        organization and intent, recorded in the organization's trail (`vellum.portal.session_started`).",
    request_body = GenerateLinkBody,
    responses(
        (status = 201, description = "The link.", body = LinkResponse),
        (status = 404, description = "No such organization.", body = ErrorResponse),
        (status = 422, description = "A missing or invalid field, or an intent Vellum does not serve.", body = ValidationError),
    ),
)]
pub(crate) async fn generate_link(
    State(state): State<AppState>,
    headers: HeaderMap,
    WireJson(body): WireJson<GenerateLinkBody>,
) -> Result<Response, ApiError> {
    let mut errors = ValidationErrors::new();
    let organization = text_field(body.organization.as_ref(), "organization", &mut errors);
    if organization.is_none() && errors.is_empty() {
        errors.push("organization", "required", "organization is required");
    }
    let intent = match text_field(body.intent.as_ref(), "intent", &mut errors) {
        None => {
            errors.push("intent", "required", "intent is required: audit_logs or log_streams");
            None
        }
        Some(text) => match PortalIntent::parse(text) {
            Some(intent) => Some(intent),
            None if UNSERVED_INTENTS.contains(&text) => {
                errors.push(
                    "intent",
                    "intent_not_served",
                    format!("Vellum serves the Admin Portal for audit_logs and log_streams only, not {text}"),
                );
                None
            }
            None => {
                errors.push("intent", "invalid", "intent must be audit_logs or log_streams");
                None
            }
        },
    };
    let mut url = |value: Option<&Value>, name: &'static str| {
        let text = text_field(value, name, &mut errors)?;
        match portal::check_page_url(text) {
            Ok(()) => Some(text.to_owned()),
            Err(message) => {
                errors.push(name, "invalid", format!("{name} {message}"));
                None
            }
        }
    };
    let return_url = url(body.return_url.as_ref(), "return_url");
    let success_url = url(body.success_url.as_ref(), "success_url");
    let external_user_id =
        text_field(body.external_user_id.as_ref(), "external_user_id", &mut errors).and_then(|text| {
            match portal::check_external_user_id(text) {
                Ok(()) => Some(text.to_owned()),
                Err(message) => {
                    errors.push("external_user_id", "invalid", format!("external_user_id {message}"));
                    None
                }
            }
        });
    let it_contact_emails = emails(&body, &mut errors);
    if !matches!(body.intent_options, None | Some(Value::Null | Value::Object(_))) {
        errors.push("intent_options", "invalid_type", "intent_options must be an object");
    }
    let (Some(organization), Some(intent)) = (organization.filter(|_| errors.is_empty()), intent) else {
        return Err(errors.into());
    };
    let organization_id = organization_of(organization)?;

    let secret = SessionToken::from_random_bytes(random()?);
    let now = vellum_store::now();
    state
        .store
        .create_portal_link(NewPortalLink {
            organization_id,
            intent,
            external_user_id,
            return_url,
            success_url,
            it_contact_emails,
            secret_hash: secret.hash(),
            created_at: now,
            expires_at: later(
                now,
                i64::try_from(state.config.portal.link_lifetime.as_millis()).unwrap_or(LINK_LIFETIME_MILLIS),
            )?,
        })
        .await?;
    let link = format!(
        "{}/portal/launch?secret={}",
        crate::exports::base_url(&state, &headers),
        secret.expose()
    );
    Ok((StatusCode::CREATED, Json(LinkResponse { link })).into_response())
}

/// Revokes the links made for one admin.
#[derive(Deserialize, ToSchema)]
#[schema(as = RevokeLinkDto)]
pub(crate) struct RevokeLinkBody {
    /// The organization.
    #[schema(required = true, value_type = String, example = "org_01EHWNCE74X7JSDV0X3SZ3KJNY")]
    organization: Option<Value>,
    /// The `external_user_id` the links were made with.
    #[schema(required = true, value_type = String, example = "user_2x1")]
    external_user_id: Option<Value>,
}

#[utoipa::path(
    post,
    path = "/portal/revoke_link",
    tag = "portal",
    operation_id = "PortalController_revokeLink",
    summary = "Revoke portal links",
    description = "Revokes every link of the organization generated with this `external_user_id`: unopened ones \
        stop working and sessions opened from them end at once.",
    request_body = RevokeLinkBody,
    responses(
        (status = 204, description = "Revoked (also when there was nothing to revoke)."),
        (status = 404, description = "No such organization.", body = ErrorResponse),
        (status = 422, description = "A missing or invalid field.", body = ValidationError),
    ),
)]
pub(crate) async fn revoke_link(
    State(state): State<AppState>,
    WireJson(body): WireJson<RevokeLinkBody>,
) -> Result<StatusCode, ApiError> {
    let mut errors = ValidationErrors::new();
    let organization = text_field(body.organization.as_ref(), "organization", &mut errors);
    if organization.is_none() && errors.is_empty() {
        errors.push("organization", "required", "organization is required");
    }
    let external_user_id = match text_field(body.external_user_id.as_ref(), "external_user_id", &mut errors) {
        None => {
            errors.push("external_user_id", "required", "external_user_id is required");
            None
        }
        Some(text) => match portal::check_external_user_id(text) {
            Ok(()) => Some(text.to_owned()),
            Err(message) => {
                errors.push("external_user_id", "invalid", format!("external_user_id {message}"));
                None
            }
        },
    };
    let (Some(organization), Some(external_user_id)) = (organization.filter(|_| errors.is_empty()), external_user_id)
    else {
        return Err(errors.into());
    };
    let organization_id = organization_of(organization)?;
    let revoked = state
        .store
        .revoke_portal_links(organization_id, external_user_id, vellum_store::now())
        .await?;
    tracing::info!(organization = %organization_id, revoked, "portal links revoked");
    Ok(StatusCode::NO_CONTENT)
}

fn random() -> Result<[u8; 32], ApiError> {
    vellum_store::random_bytes().map_err(|error| ApiError::Internal(format!("no randomness: {error}")))
}

fn later(now: Timestamp, millis: i64) -> Result<Timestamp, ApiError> {
    Timestamp::from_unix_millis(now.unix_millis().saturating_add(millis))
        .ok_or_else(|| ApiError::Internal("a time out of range".into()))
}

/// The page a refused link shows: it says why links are refused, never which reason applied.
const REFUSED_PAGE: &str = "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>Link not valid</title>\
<link rel=\"stylesheet\" href=\"/portal/assets/dashboard.css\"></head><body><main class=\"portal-refused\">\
<h1>This link cannot be opened</h1><p>Admin Portal links work once, for five minutes after they are made, \
until they are revoked. Go back to the application and open the portal again for a new link.</p>\
</main></body></html>";

/// `GET /portal/launch?secret=…`: spends the link and opens its session (a cookie), then sends
/// the browser to the portal's page, so that the secret leaves the address bar.
pub(crate) async fn launch(
    State(state): State<AppState>,
    extensions: axum::http::Extensions,
    headers: HeaderMap,
    query: QueryPairs,
) -> Result<Response, ApiError> {
    let secret = query.single("secret").ok().flatten().and_then(SessionToken::parse);
    let now = vellum_store::now();
    let opened = match secret {
        Some(secret) => {
            let token = SessionToken::from_random_bytes(random()?);
            state
                .store
                .open_portal_link(secret.hash(), token.hash(), now, later(now, SESSION_LIFETIME_MILLIS)?)
                .await?
                .map(|session| (session, token))
        }
        None => None,
    };
    let Some((session, token)) = opened else {
        tracing::warn!("a portal link was refused");
        let wants_html = headers
            .get(header::ACCEPT)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|accept| accept.contains("text/html"));
        if wants_html {
            let mut response = (StatusCode::FORBIDDEN, axum::response::Html(REFUSED_PAGE)).into_response();
            super::page_headers(response.headers_mut());
            return Ok(response);
        }
        return Err(ApiError::Forbidden {
            message: "This portal link is not valid: it expired, was already used, or was revoked.".into(),
            code: "portal_link_invalid",
        });
    };
    let link = &session.link;
    let scope = Scope {
        organization_id: link.organization_id,
        access: Access::Portal(link.intent),
        by: by_of(link),
        actor_ids: Vec::new(),
        actions: Vec::new(),
        client: Client::of(&extensions, &headers),
        credential: format!("portal:{}", link.id),
    };
    let contacts: Vec<&str> = link.it_contact_emails.iter().map(Email::as_str).collect();
    let contacts = contacts.join(", ");
    let link_id = link.id.to_string();
    let mut details = vec![("intent", link.intent.as_str()), ("portal_link_id", link_id.as_str())];
    if !contacts.is_empty() {
        details.push(("it_contact_emails", contacts.as_str()));
    }
    if let Err(error) = scope
        .record(&state, log_record::PORTAL_SESSION_STARTED_ACTION, &details)
        .await
    {
        // A session that cannot be recorded is not opened.
        state.store.end_portal_session(token.hash()).await?;
        return Err(error);
    }
    tracing::info!(organization = %link.organization_id, intent = %link.intent, link = %link.id, "portal session opened");
    let mut response = StatusCode::SEE_OTHER.into_response();
    let response_headers = response.headers_mut();
    response_headers.insert(header::LOCATION, HeaderValue::from_static("/portal/"));
    response_headers.insert(
        header::SET_COOKIE,
        session::cookie(&state, token.expose(), SESSION_LIFETIME_MILLIS.unsigned_abs() / 1000),
    );
    super::page_headers(response_headers);
    Ok(response)
}

/// Who a portal session is, in the trail: the application's id of the admin when the link
/// carries one, else the link.
pub(crate) fn by_of(link: &vellum_core::portal::PortalLink) -> RecordedBy {
    match &link.external_user_id {
        Some(user) => RecordedBy {
            id: user.clone(),
            actor_type: "portal_user".into(),
            name: None,
        },
        None => RecordedBy {
            id: link.id.to_string(),
            actor_type: "portal_link".into(),
            name: None,
        },
    }
}
