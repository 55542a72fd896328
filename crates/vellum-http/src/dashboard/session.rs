//! Operator sign-in: sessions in an HttpOnly cookie, a CSRF token on every state-changing
//! request, and failed sign-ins slowed down and then refused for a while.
//!
//! **Invariant:** a session authenticates only `/dashboard/api/*`; an API key authenticates only
//! the public API. Neither middleware looks at the other's credential.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use vellum_core::Timestamp;
use vellum_core::operator::{Email, OperatorSession, PasswordHash, SessionToken, csrf_token_matches};

use crate::AppState;
use crate::error::ApiError;
use crate::extract::WireJson;

/// The cookie that carries the session token.
pub(crate) const SESSION_COOKIE: &str = "vellum_session";
/// The header that carries the CSRF token on state-changing requests.
pub(crate) const CSRF_HEADER: &str = "x-csrf-token";
/// How long a session lasts after sign-in.
pub(crate) const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 60 * 60);

/// Failed sign-ins of one email from one address before further attempts are refused.
const FREE_FAILURES: u32 = 5;
/// The first lockout; each further failure doubles it, up to [`MAX_LOCKOUT`].
const FIRST_LOCKOUT: Duration = Duration::from_secs(30);
const MAX_LOCKOUT: Duration = Duration::from_secs(15 * 60);
/// Failures older than this are forgotten.
const FAILURE_WINDOW: Duration = Duration::from_secs(15 * 60);
/// Every failed sign-in is answered only after this delay.
const FAILURE_DELAY: Duration = Duration::from_millis(750);

/// The session that authenticated a dashboard request.
#[derive(Clone, Debug)]
pub(crate) struct SignedIn {
    pub(crate) session: OperatorSession,
    pub(crate) csrf_token: String,
}

/// Failed sign-ins per (email, client address), kept in memory: a restart forgets them, which
/// costs an attacker a restart per few guesses.
#[derive(Default)]
pub(crate) struct SignInThrottle {
    failures: Mutex<HashMap<String, Failures>>,
}

#[derive(Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
    locked_until: Option<Instant>,
}

impl SignInThrottle {
    /// Seconds to wait before this key may try again, if it is locked out now.
    fn locked_for(&self, key: &str, now: Instant) -> Option<u64> {
        let failures = self.failures.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let until = failures.get(key)?.locked_until?;
        (until > now).then(|| (until - now).as_secs().max(1))
    }

    fn record_failure(&self, key: String, now: Instant) {
        let mut failures = self.failures.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        // Bound the map: forget stale entries when it grows.
        if failures.len() > 10_000 {
            failures.retain(|_, entry| now.duration_since(entry.last) < FAILURE_WINDOW);
        }
        let entry = failures.entry(key).or_insert(Failures {
            count: 0,
            last: now,
            locked_until: None,
        });
        if now.duration_since(entry.last) >= FAILURE_WINDOW {
            entry.count = 0;
        }
        entry.count += 1;
        entry.last = now;
        if entry.count >= FREE_FAILURES {
            let doublings = (entry.count - FREE_FAILURES).min(10);
            let lockout = FIRST_LOCKOUT.saturating_mul(1 << doublings).min(MAX_LOCKOUT);
            entry.locked_until = Some(now + lockout);
        }
    }

    fn record_success(&self, key: &str) {
        self.failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(key);
    }
}

/// A hash to verify against when the email is unknown, so that the answer takes as long as for
/// a known one and does not tell which emails have accounts.
static DECOY_HASH: LazyLock<PasswordHash> = LazyLock::new(|| PasswordHash::create("vellum decoy password", [0x5a; 16]));

fn session_token_from_cookies(headers: &HeaderMap) -> Option<SessionToken> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .and_then(|(_, value)| SessionToken::parse(value.trim()))
}

fn is_state_changing(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

fn not_signed_in() -> ApiError {
    ApiError::Unauthorized { code: "not_signed_in" }
}

/// Finds the request's session and, for a state-changing request, checks its CSRF token.
async fn authenticate(state: &AppState, method: &Method, headers: &HeaderMap) -> Result<SignedIn, ApiError> {
    let token = session_token_from_cookies(headers).ok_or_else(not_signed_in)?;
    let session = state
        .store
        .find_operator_session(token.hash(), vellum_store::now())
        .await?
        .ok_or_else(not_signed_in)?;
    let csrf_token = token.csrf_token();
    if is_state_changing(method) {
        let presented = headers
            .get(CSRF_HEADER)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default();
        if !csrf_token_matches(&csrf_token, presented) {
            return Err(ApiError::Forbidden {
                message: "This request needs the session's CSRF token in the X-CSRF-Token header.".into(),
                code: "invalid_csrf_token",
            });
        }
    }
    Ok(SignedIn { session, csrf_token })
}

/// Refuses dashboard API requests without a valid session (401) or, when they change
/// something, without its CSRF token (403).
pub(crate) async fn require_session(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let signed_in = authenticate(&state, request.method(), request.headers()).await?;
    request.extensions_mut().insert(signed_in);
    Ok(next.run(request).await)
}

fn session_json(signed_in: &SignedIn) -> Value {
    json!({
        "object": "operator_session",
        "email": signed_in.session.email.as_str(),
        "csrf_token": signed_in.csrf_token,
        "expires_at": signed_in.session.expires_at.to_wire(),
    })
}

fn cookie(state: &AppState, value: &str, max_age_seconds: u64) -> HeaderValue {
    let secure = state
        .config
        .public_url
        .as_deref()
        .is_some_and(|url| url.starts_with("https://"));
    let text = format!(
        "{SESSION_COOKIE}={value}; Path=/dashboard; HttpOnly; SameSite=Strict; Max-Age={max_age_seconds}{}",
        if secure { "; Secure" } else { "" }
    );
    HeaderValue::from_str(&text).expect("cookie text is ASCII")
}

/// `GET /dashboard/api/session`: who is signed in, and the CSRF token to send.
pub(crate) async fn current(State(state): State<AppState>, headers: HeaderMap) -> Result<Json<Value>, ApiError> {
    let signed_in = authenticate(&state, &Method::GET, &headers).await?;
    Ok(Json(session_json(&signed_in)))
}

#[derive(Deserialize)]
pub(crate) struct SignInBody {
    email: Option<String>,
    password: Option<String>,
}

/// `POST /dashboard/api/session`: signs in with email and password.
///
/// The body must be JSON (a cross-site form cannot send that without a CORS preflight, which
/// this server never grants), and the cookie is `SameSite=Strict`, so another site cannot sign
/// a browser in to an account of its choosing.
pub(crate) async fn sign_in(
    State(state): State<AppState>,
    request_extensions: axum::http::Extensions,
    WireJson(body): WireJson<SignInBody>,
) -> Result<Response, ApiError> {
    let mut errors = vellum_core::ValidationErrors::new();
    let email_text = body.email.unwrap_or_default();
    let password = body.password.unwrap_or_default();
    if email_text.trim().is_empty() {
        errors.push("email", "required", "email is required");
    }
    if password.is_empty() {
        errors.push("password", "required", "password is required");
    }
    if !errors.is_empty() {
        return Err(errors.into());
    }
    let client = request_extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0.ip().to_string())
        .unwrap_or_default();
    let throttle_key = format!("{}|{client}", email_text.trim().to_lowercase());
    if let Some(seconds) = state.sign_in_throttle.locked_for(&throttle_key, Instant::now()) {
        return Err(too_many_attempts(seconds));
    }

    let operator = match Email::parse(&email_text) {
        Ok(email) => state.store.find_operator(email).await?,
        Err(_) => None,
    };
    let hash = operator
        .as_ref()
        .map_or_else(|| DECOY_HASH.clone(), |operator| operator.password_hash.clone());
    let verified = tokio::task::spawn_blocking(move || hash.verify(&password))
        .await
        .map_err(|error| ApiError::Internal(format!("password check failed: {error}")))?;
    let Some(operator) = operator.filter(|_| verified) else {
        state.sign_in_throttle.record_failure(throttle_key, Instant::now());
        tracing::warn!(client = %client, "failed operator sign-in");
        tokio::time::sleep(FAILURE_DELAY).await;
        return Err(ApiError::Unauthorized {
            code: "invalid_credentials",
        });
    };
    state.sign_in_throttle.record_success(&throttle_key);

    let token = SessionToken::from_random_bytes(
        vellum_store::random_bytes().map_err(|error| ApiError::Internal(format!("no randomness: {error}")))?,
    );
    let lifetime_millis = i64::try_from(SESSION_LIFETIME.as_millis()).unwrap_or(i64::MAX);
    let expires_at = Timestamp::from_unix_millis(vellum_store::now().unix_millis() + lifetime_millis)
        .ok_or_else(|| ApiError::Internal("session expiry out of range".into()))?;
    let session = state
        .store
        .create_operator_session(operator.id, token.hash(), expires_at)
        .await?;
    tracing::info!(operator = %operator.id, "operator signed in");
    let signed_in = SignedIn {
        session,
        csrf_token: token.csrf_token(),
    };
    let mut response = Json(session_json(&signed_in)).into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        cookie(&state, token.expose(), SESSION_LIFETIME.as_secs()),
    );
    Ok(response)
}

fn too_many_attempts(seconds: u64) -> ApiError {
    ApiError::TooManyAttempts {
        retry_after_seconds: seconds,
    }
}

/// `DELETE /dashboard/api/session`: signs out (needs the CSRF token, like every change).
pub(crate) async fn sign_out(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let signed_in = authenticate(&state, &Method::DELETE, &headers).await?;
    state
        .store
        .delete_operator_session(signed_in.session.token_hash)
        .await?;
    let mut response = (StatusCode::OK, Json(json!({ "success": true }))).into_response();
    response.headers_mut().insert(header::SET_COOKIE, cookie(&state, "", 0));
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lockout_starts_after_the_free_failures_and_grows() {
        let throttle = SignInThrottle::default();
        let start = Instant::now();
        for _ in 0..FREE_FAILURES - 1 {
            throttle.record_failure("a".into(), start);
            assert_eq!(throttle.locked_for("a", start), None);
        }
        throttle.record_failure("a".into(), start);
        assert_eq!(throttle.locked_for("a", start), Some(30));
        assert_eq!(throttle.locked_for("b", start), None, "other keys are not affected");
        throttle.record_failure("a".into(), start);
        assert_eq!(throttle.locked_for("a", start), Some(60));
        assert_eq!(throttle.locked_for("a", start + Duration::from_secs(61)), None);
        throttle.record_success("a");
        assert_eq!(throttle.locked_for("a", start), None);
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let token = SessionToken::from_random_bytes([9; 32]);
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("theme=dark; {SESSION_COOKIE}={}; x=1", token.expose())).unwrap(),
        );
        assert_eq!(session_token_from_cookies(&headers), Some(token));
        headers.insert(header::COOKIE, HeaderValue::from_static("vellum_session=nothex"));
        assert_eq!(session_token_from_cookies(&headers), None);
    }
}
