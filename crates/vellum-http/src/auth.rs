//! API-key authentication: `Authorization: Bearer sk_…` on every API route.

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::Response;
use vellum_core::{ApiKey, ApiKeySecret};

use crate::AppState;
use crate::error::ApiError;

/// The key that authenticated a request, for handlers that want to know.
#[derive(Clone, Debug)]
pub(crate) struct Authenticated(pub(crate) ApiKey);

/// Refuses requests without a valid, active API key.
pub(crate) async fn require_api_key(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let header_value = request
        .headers()
        .get(header::AUTHORIZATION)
        .ok_or(ApiError::Unauthorized {
            code: "missing_api_key",
        })?;
    let token = header_value
        .to_str()
        .ok()
        .and_then(|value| {
            let (scheme, token) = value.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        })
        .ok_or(ApiError::Unauthorized {
            code: "invalid_authorization_header",
        })?;
    let secret = ApiKeySecret::parse(token).map_err(|_| ApiError::Unauthorized {
        code: "invalid_api_key",
    })?;
    let presented = secret.hash();
    let key = state
        .store
        .find_api_key(presented)
        .await?
        .filter(|key| key.secret_hash.constant_time_eq(&presented) && key.is_active())
        .ok_or(ApiError::Unauthorized {
            code: "invalid_api_key",
        })?;
    request.extensions_mut().insert(Authenticated(key));
    Ok(next.run(request).await)
}
