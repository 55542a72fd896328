//! The dashboard's files, compiled into the binary (nothing is fetched at run time).
//!
//! For front-end work, `HttpConfig::dashboard_assets_dir` serves the same files from a folder
//! on each request instead, so a page can be edited without rebuilding.

use std::sync::LazyLock;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use crate::AppState;
use crate::error::ApiError;
use crate::extract::WirePath;

/// The page's security policy: only its own scripts, styles and connections; never framed.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

struct Asset {
    name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

macro_rules! asset {
    ($name:literal, $content_type:literal) => {
        Asset {
            name: $name,
            content_type: $content_type,
            bytes: include_bytes!(concat!("../../assets/dashboard/", $name)),
        }
    };
}

const ASSETS: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("dashboard.css", "text/css; charset=utf-8"),
    asset!("api.js", "text/javascript; charset=utf-8"),
    asset!("dom.js", "text/javascript; charset=utf-8"),
    asset!("viewer.js", "text/javascript; charset=utf-8"),
    asset!("verify.js", "text/javascript; charset=utf-8"),
    asset!("ui.js", "text/javascript; charset=utf-8"),
    asset!("exports.js", "text/javascript; charset=utf-8"),
    asset!("streams.js", "text/javascript; charset=utf-8"),
    asset!("dashboard.js", "text/javascript; charset=utf-8"),
    asset!("portal.html", "text/html; charset=utf-8"),
    asset!("portal.js", "text/javascript; charset=utf-8"),
    asset!("embed.js", "text/javascript; charset=utf-8"),
];

/// An ETag per embedded file, computed once.
static ETAGS: LazyLock<Vec<String>> = LazyLock::new(|| {
    ASSETS
        .iter()
        .map(|asset| {
            let digest = Sha256::digest(asset.bytes);
            let hex: String = digest[..12].iter().map(|byte| format!("{byte:02x}")).collect();
            format!("\"{hex}\"")
        })
        .collect()
});

pub(crate) fn security_headers(headers: &mut HeaderMap) {
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
}

/// Serves one of the embedded files. `cross_origin` files (the embeddable viewer's) may be
/// loaded by any site's pages: they are public code, read without credentials.
pub(crate) async fn serve(
    state: &AppState,
    name: &str,
    request_headers: &HeaderMap,
    cross_origin: bool,
) -> Result<Response, ApiError> {
    let Some(position) = ASSETS.iter().position(|asset| asset.name == name) else {
        return Err(ApiError::NotFound {
            message: format!("No such file: {name}"),
        });
    };
    let asset = &ASSETS[position];
    let (body, etag) = if let Some(dir) = &state.config.dashboard_assets_dir {
        let bytes = tokio::fs::read(dir.join(asset.name))
            .await
            .map_err(|error| ApiError::Internal(format!("dashboard asset {name}: {error}")))?;
        (axum::body::Body::from(bytes), None)
    } else {
        (axum::body::Body::from(asset.bytes), Some(ETAGS[position].as_str()))
    };
    let mut response = if let Some(etag) = etag
        && request_headers
            .get(header::IF_NONE_MATCH)
            .is_some_and(|value| value.as_bytes() == etag.as_bytes())
    {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut response = body.into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
        response
    };
    let headers = response.headers_mut();
    if let Some(etag) = etag {
        headers.insert(header::ETAG, HeaderValue::from_str(etag).expect("hex etag"));
    }
    // Revalidate every time: a new binary must never run against an old cached script.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    security_headers(headers);
    if cross_origin {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
        headers.insert(
            HeaderName::from_static("cross-origin-resource-policy"),
            HeaderValue::from_static("cross-origin"),
        );
    }
    Ok(response)
}

/// The page itself, for `/dashboard` and every client-side route below it (but an unknown API
/// path or asset is a JSON 404, not the page).
pub(super) async fn index(
    State(state): State<AppState>,
    uri: axum::http::Uri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let path = uri.path();
    if path.starts_with("/dashboard/api/") || path.starts_with("/dashboard/assets/") {
        return Err(ApiError::NotFound {
            message: format!("Cannot GET {path}"),
        });
    }
    serve(&state, "index.html", &headers, false).await
}

/// `/dashboard/assets/{file}`.
pub(super) async fn asset(
    State(state): State<AppState>,
    headers: HeaderMap,
    WirePath(name): WirePath,
) -> Result<Response, ApiError> {
    serve(&state, &name, &headers, false).await
}
