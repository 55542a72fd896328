//! The Admin Portal and the embeddable viewer (`docs/portal.md`): what a customer's IT admin
//! reaches, for their own organization only.
//!
//! - `POST /portal/generate_link`, `POST /portal/revoke_link` (WorkOS's, API key) and
//!   `POST /audit_logs/viewer_tokens` (Vellum's, API key) hand out credentials.
//! - `GET /portal/launch?secret=…` spends a link and opens a cookie session; `/portal/` is the
//!   portal's page and `/portal/api/*` its API.
//! - `/viewer/api/*` is the same API for a viewer token (`Authorization: Bearer vt_…`),
//!   cross-origin from allowed origins; `/embed/viewer.js` defines `<vellum-audit-log>`.
//!
//! Both APIs are [`scope::routes`]: the public handlers, each behind a check that keeps it to
//! the credential's organization (and intent, or filters).

mod links;
mod scope;
pub(crate) mod session;
mod viewer;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

pub(crate) use links::{__path_generate_link, __path_revoke_link, generate_link, revoke_link};
pub(crate) use viewer::{__path_create_viewer_token, create_viewer_token};

use crate::AppState;
use crate::error::ApiError;

/// The portal's branding and the viewer's allowed origins (operator configuration).
#[derive(Clone, Debug)]
pub struct PortalConfig {
    /// How long after its creation a link can be opened: WorkOS's 5 minutes (tests shorten it).
    pub link_lifetime: std::time::Duration,
    /// The application's name, shown at the top of the portal.
    pub application_name: Option<String>,
    /// The application's logo, served at `/portal/logo`.
    pub logo: Option<PortalLogo>,
    /// Origins (`https://app.example.com`) whose pages may embed the viewer.
    pub viewer_allowed_origins: Vec<String>,
    /// Changes (exports started, streams created, changed, replayed or tested) one portal
    /// session or viewer token may make per minute.
    pub changes_per_minute: u32,
}

/// The default of [`PortalConfig::changes_per_minute`].
pub const DEFAULT_PORTAL_CHANGES_PER_MINUTE: u32 = 30;

impl Default for PortalConfig {
    fn default() -> Self {
        Self {
            link_lifetime: std::time::Duration::from_millis(vellum_core::portal::LINK_LIFETIME_MILLIS.unsigned_abs()),
            application_name: None,
            logo: None,
            viewer_allowed_origins: Vec::new(),
            changes_per_minute: DEFAULT_PORTAL_CHANGES_PER_MINUTE,
        }
    }
}

/// An image file of at most [`MAX_LOGO_BYTES`].
#[derive(Clone)]
pub struct PortalLogo {
    /// The file's bytes.
    pub bytes: axum::body::Bytes,
    /// `image/png`, `image/svg+xml`, `image/jpeg` or `image/webp`.
    pub content_type: &'static str,
}

/// The largest logo accepted.
pub const MAX_LOGO_BYTES: usize = 256 * 1024;

impl std::fmt::Debug for PortalLogo {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            formatter,
            "PortalLogo({}, {} bytes)",
            self.content_type,
            self.bytes.len()
        )
    }
}

impl PortalLogo {
    /// A logo from a file's name and bytes; `Err` says why it cannot be one.
    pub fn from_file(name: &str, bytes: Vec<u8>) -> Result<Self, String> {
        if bytes.len() > MAX_LOGO_BYTES {
            return Err(format!("the logo must be at most {MAX_LOGO_BYTES} bytes"));
        }
        let extension = name.rsplit('.').next().unwrap_or_default().to_ascii_lowercase();
        let content_type = match extension.as_str() {
            "png" => "image/png",
            "svg" => "image/svg+xml",
            "jpg" | "jpeg" => "image/jpeg",
            "webp" => "image/webp",
            _ => return Err("the logo must be a .png, .svg, .jpg or .webp file".into()),
        };
        Ok(Self {
            bytes: bytes.into(),
            content_type,
        })
    }
}

/// The portal's pages and APIs, the viewer's API, and the embed script.
pub(crate) fn routes(state: &AppState) -> Router<AppState> {
    let portal_api = Router::new()
        .merge(scope::routes())
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            session::require_portal_session,
        ))
        .route("/session", get(session::current).delete(session::end))
        .fallback(crate::error::route_not_found)
        .layer(axum::middleware::map_response(no_store));
    let viewer_api = Router::new()
        .merge(scope::routes())
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            viewer::require_viewer_token,
        ))
        .route("/token", get(viewer::token).options(scope::preflight))
        .fallback(crate::error::route_not_found)
        .layer(axum::middleware::map_response(no_store))
        .layer(axum::middleware::from_fn_with_state(state.clone(), viewer::cors));
    Router::new()
        .route("/portal/launch", get(links::launch))
        .route("/portal", get(page))
        .route("/portal/", get(page))
        .route("/portal/logo", get(logo))
        .route("/portal/assets/{file}", get(portal_asset))
        .route("/embed/viewer.js", get(embed_script))
        .route("/embed/modules/{file}", get(embed_module))
        .nest("/portal/api", portal_api)
        .nest("/viewer/api", viewer_api)
}

async fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The headers of every portal page: never cached, never framed, no referrer.
pub(crate) fn page_headers(headers: &mut HeaderMap) {
    crate::dashboard::security_headers(headers);
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

async fn page(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    crate::dashboard::serve_asset(&state, "portal.html", &headers, false).await
}

async fn portal_asset(
    State(state): State<AppState>,
    headers: HeaderMap,
    crate::extract::WirePath(name): crate::extract::WirePath,
) -> Result<Response, ApiError> {
    crate::dashboard::serve_asset(&state, &name, &headers, false).await
}

async fn embed_script(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    crate::dashboard::serve_asset(&state, "embed.js", &headers, true).await
}

/// The files `embed.js` loads, and only those, are served to other sites' pages.
const EMBED_MODULES: &[&str] = &["api.js", "dom.js", "viewer.js", "verify.js", "dashboard.css"];

async fn embed_module(
    State(state): State<AppState>,
    headers: HeaderMap,
    crate::extract::WirePath(name): crate::extract::WirePath,
) -> Result<Response, ApiError> {
    if !EMBED_MODULES.contains(&name.as_str()) {
        return Err(ApiError::NotFound {
            message: format!("No such file: {name}"),
        });
    }
    crate::dashboard::serve_asset(&state, &name, &headers, true).await
}

async fn logo(State(state): State<AppState>) -> Result<Response, ApiError> {
    let Some(logo) = &state.config.portal.logo else {
        return Err(ApiError::NotFound {
            message: "No logo is configured.".into(),
        });
    };
    let mut response = (StatusCode::OK, logo.bytes.clone()).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(logo.content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("max-age=300"));
    // An SVG opened directly is a document: it may run nothing.
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'; sandbox"),
    );
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    Ok(response)
}
