//! API-key authentication: `Authorization: Bearer sk_…` on every API route.
//!
//! Keys found valid are remembered for [`KEY_CACHE_TTL`], so that a request does not read the
//! store to authenticate. Besides sparing a read per request, that keeps the embedded store's
//! write-ahead log short under load: every read holds a snapshot of the log, and the log can only
//! start again from its beginning once no reader holds one. A key revoked through this server (the
//! dashboard) is forgotten at once; one revoked by another process (the CLI, another node) is
//! refused within [`KEY_CACHE_TTL`].

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::Response;
use vellum_core::{ApiKey, ApiKeyHash, ApiKeySecret};

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
    let key = match state.api_keys.get(&presented) {
        Some(key) => key,
        None => {
            let found = state
                .store
                .find_api_key(presented)
                .await?
                .filter(|key| key.secret_hash.constant_time_eq(&presented) && key.is_active())
                .ok_or(ApiError::Unauthorized {
                    code: "invalid_api_key",
                })?;
            state.api_keys.remember(&found);
            found
        }
    };
    request.extensions_mut().insert(Authenticated(key));
    Ok(next.run(request).await)
}

/// How long a key found valid is trusted without reading the store again.
pub(crate) const KEY_CACHE_TTL: Duration = Duration::from_secs(1);

/// The most keys remembered at once; past it the cache starts over. Only keys that exist and
/// are active are remembered, so nobody can fill it with made-up secrets.
const KEY_CACHE_CAPACITY: usize = 4096;

/// Active API keys recently found in the store, by the hash of their secret.
#[derive(Debug, Default)]
pub(crate) struct KeyCache {
    keys: Mutex<HashMap<ApiKeyHash, (ApiKey, Instant)>>,
}

impl KeyCache {
    fn get(&self, presented: &ApiKeyHash) -> Option<ApiKey> {
        let keys = self.keys.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let (key, found_at) = keys.get(presented)?;
        (found_at.elapsed() < KEY_CACHE_TTL && key.secret_hash.constant_time_eq(presented)).then(|| key.clone())
    }

    fn remember(&self, key: &ApiKey) {
        let mut keys = self.keys.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if keys.len() >= KEY_CACHE_CAPACITY {
            keys.retain(|_, (_, found_at)| found_at.elapsed() < KEY_CACHE_TTL);
            if keys.len() >= KEY_CACHE_CAPACITY {
                keys.clear();
            }
        }
        keys.insert(key.secret_hash, (key.clone(), Instant::now()));
    }

    /// Forgets every key: called when this server revokes one.
    pub(crate) fn forget_all(&self) {
        self.keys
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clear();
    }
}
