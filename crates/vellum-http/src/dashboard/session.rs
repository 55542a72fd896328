//! Operator sign-in: sessions in an HttpOnly cookie, a CSRF token on every state-changing
//! request, and failed sign-ins slowed down and then refused for a while (the rules are
//! `vellum_core::sign_in_throttle`; the records live in the store, shared by every node).
//!
//! **Invariant:** a session authenticates only `/dashboard/api/*`; an API key authenticates only
//! the public API. Neither middleware looks at the other's credential.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use axum::Json;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use vellum_core::Timestamp;
use vellum_core::operator::{Email, OperatorSession, PasswordHash, SessionToken, csrf_token_matches};
use vellum_core::sign_in_throttle::{Outcome, Step, ThrottleKey};
use vellum_store::Store;

use super::passwords;
use crate::AppState;
use crate::error::ApiError;
use crate::extract::WireJson;

/// The cookie that carries the session token.
pub(crate) const SESSION_COOKIE: &str = "vellum_session";
/// The header that carries the CSRF token on state-changing requests.
pub(crate) const CSRF_HEADER: &str = "x-csrf-token";
/// How long a session lasts after sign-in.
pub(crate) const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 60 * 60);

/// The largest sign-in request body: an email (254) and a password (1,024) with room to spare.
pub(crate) const MAX_SIGN_IN_BODY_BYTES: usize = 16 * 1024;

/// Every failed sign-in is answered only after this delay.
const FAILURE_DELAY: Duration = Duration::from_millis(750);

/// The session that authenticated a dashboard request.
#[derive(Clone, Debug)]
pub(crate) struct SignedIn {
    pub(crate) session: OperatorSession,
    pub(crate) csrf_token: String,
}

/// One reserved sign-in attempt. Dropped without being settled (the client went away while its
/// password was being checked), it counts as a failure, so disconnecting early cannot be used to
/// guess without being counted.
struct Attempt {
    store: Arc<dyn Store>,
    keys: Vec<ThrottleKey>,
    settled: bool,
}

impl Attempt {
    /// Reserves an attempt under every key in the store's throttle (shared by every node), or
    /// refuses it with the seconds to wait.
    async fn begin(store: &Arc<dyn Store>, keys: Vec<ThrottleKey>) -> Result<Self, ApiError> {
        store
            .sign_in_throttle(keys.clone(), Step::Begin, vellum_store::now())
            .await?
            .map_err(too_many_attempts)?;
        Ok(Self {
            store: Arc::clone(store),
            keys,
            settled: false,
        })
    }

    async fn settle(mut self, outcome: Outcome) -> Result<(), ApiError> {
        self.settled = true;
        let keys = std::mem::take(&mut self.keys);
        self.store
            .sign_in_throttle(keys, Step::Finish(outcome), vellum_store::now())
            .await?
            .map_err(too_many_attempts)
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        let store = Arc::clone(&self.store);
        let keys = std::mem::take(&mut self.keys);
        let settle = async move {
            let step = Step::Finish(Outcome::Failed);
            if let Err(error) = store.sign_in_throttle(keys, step, vellum_store::now()).await {
                tracing::warn!(%error, "could not count an abandoned sign-in attempt");
            }
        };
        // An unsettled reservation also lapses on its own, so a drop outside a runtime (never
        // the case in the server) only loses the failure's count.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(settle);
        }
    }
}

/// A hash to verify against when the email is unknown, so that the answer takes as long as for
/// a known one and does not tell which emails have accounts.
static DECOY_HASH: LazyLock<PasswordHash> = LazyLock::new(|| PasswordHash::create("vellum decoy password", [0x5a; 16]));

/// The session token in the cookie `name`, if the request carries a well-formed one (the
/// dashboard's and the Admin Portal's sessions alike).
pub(crate) fn token_from_cookie(headers: &HeaderMap, cookie_name: &str) -> Option<SessionToken> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == cookie_name)
        .and_then(|(_, value)| SessionToken::parse(value.trim()))
}

fn session_token_from_cookies(headers: &HeaderMap) -> Option<SessionToken> {
    token_from_cookie(headers, SESSION_COOKIE)
}

fn is_state_changing(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

fn not_signed_in() -> ApiError {
    ApiError::Unauthorized { code: "not_signed_in" }
}

/// For a state-changing request, checks that it carries the CSRF token of the session `token`
/// (the dashboard's and the Admin Portal's sessions alike).
pub(crate) fn check_csrf(token: &SessionToken, method: &Method, headers: &HeaderMap) -> Result<(), ApiError> {
    if !is_state_changing(method) {
        return Ok(());
    }
    let presented = headers
        .get(CSRF_HEADER)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    if csrf_token_matches(&token.csrf_token(), presented) {
        Ok(())
    } else {
        Err(ApiError::Forbidden {
            message: "This request needs the session's CSRF token in the X-CSRF-Token header.".into(),
            code: "invalid_csrf_token",
        })
    }
}

/// Finds the request's session and, for a state-changing request, checks its CSRF token.
async fn authenticate(state: &AppState, method: &Method, headers: &HeaderMap) -> Result<SignedIn, ApiError> {
    let token = session_token_from_cookies(headers).ok_or_else(not_signed_in)?;
    let session = state
        .store
        .find_operator_session(token.hash(), vellum_store::now())
        .await?
        .ok_or_else(not_signed_in)?;
    check_csrf(&token, method, headers)?;
    Ok(SignedIn {
        session,
        csrf_token: token.csrf_token(),
    })
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

/// A session cookie (an empty value and no lifetime end it): HttpOnly, `SameSite=Strict`, for
/// `path` only, and `Secure` when the server's public URL is https.
pub(crate) fn session_cookie(
    state: &AppState,
    name: &str,
    path: &str,
    value: &str,
    max_age_seconds: u64,
) -> HeaderValue {
    let secure = state
        .config
        .public_url
        .as_deref()
        .is_some_and(|url| url.starts_with("https://"));
    let text = format!(
        "{name}={value}; Path={path}; HttpOnly; SameSite=Strict; Max-Age={max_age_seconds}{}",
        if secure { "; Secure" } else { "" }
    );
    HeaderValue::from_str(&text).expect("cookie text is ASCII")
}

fn cookie(state: &AppState, value: &str, max_age_seconds: u64) -> HeaderValue {
    session_cookie(state, SESSION_COOKIE, "/dashboard", value, max_age_seconds)
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
    let client = crate::client::address_of(&request_extensions).unwrap_or_default();
    // Keyed on the parsed address (at most 254 characters, case-folded), never on the text as
    // sent, so that the key is bounded and `A@x.io` and `a@x.io` share one budget.
    let email = Email::parse(&email_text).ok();
    let mut keys = vec![ThrottleKey::Address(client.clone())];
    if let Some(email) = &email {
        keys.push(ThrottleKey::EmailFromAddress(email.clone(), client.clone()));
    }
    let attempt = Attempt::begin(&state.store, keys).await?;

    let operator = match &email {
        Some(email) => state.store.find_operator(email.clone()).await?,
        None => None,
    };
    // An address that cannot be an account's is refused without hashing anything.
    let verified = if email.is_some() {
        let hash = operator
            .as_ref()
            .map_or_else(|| DECOY_HASH.clone(), |operator| operator.password_hash.clone());
        match state.password_checker.verify(hash, password).await {
            Ok(verified) => verified,
            Err(passwords::Busy) => {
                attempt.settle(Outcome::NotChecked).await?;
                return Err(ApiError::Busy {
                    message: "Too many sign-ins are being checked right now; retry in a moment.".into(),
                    code: "sign_in_busy",
                    retry_after_seconds: 1,
                });
            }
        }
    } else {
        false
    };
    let Some(operator) = operator.filter(|_| verified) else {
        attempt.settle(Outcome::Failed).await?;
        tracing::warn!(client = %client, "failed operator sign-in");
        tokio::time::sleep(FAILURE_DELAY).await;
        return Err(ApiError::Unauthorized {
            code: "invalid_credentials",
        });
    };
    attempt.settle(Outcome::Succeeded).await?;

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
