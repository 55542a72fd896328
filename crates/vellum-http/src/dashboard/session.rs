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

/// Failed sign-ins of one address, across emails, before further attempts are refused (slows
/// password spraying: a few guesses at many accounts).
const FREE_FAILURES_PER_ADDRESS: u32 = 30;
/// Throttle entries kept at most; beyond that the least recently used idle entry is dropped, so
/// an attacker sending endless distinct emails cannot grow memory.
const MAX_THROTTLE_ENTRIES: usize = 10_000;

/// What a throttle entry counts: one email from one address, or one address.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum ThrottleKey {
    EmailFromAddress(Email, String),
    Address(String),
}

impl ThrottleKey {
    fn free_failures(&self) -> u32 {
        match self {
            Self::EmailFromAddress(..) => FREE_FAILURES,
            Self::Address(_) => FREE_FAILURES_PER_ADDRESS,
        }
    }
}

/// Failed sign-ins per (email, client address) and per client address, kept in memory: a
/// restart forgets them, which costs an attacker a restart per few guesses.
///
/// An attempt is reserved before its password is checked and settled after, under one lock, so
/// that attempts sent at once are counted as if sent one after another: while failures are
/// still free, at most the remaining number are checked at once; after that, one at a time,
/// each only once the lockout of the previous one has passed.
#[derive(Default)]
pub(crate) struct SignInThrottle {
    entries: Mutex<HashMap<ThrottleKey, Failures>>,
}

#[derive(Clone, Copy)]
struct Failures {
    count: u32,
    in_flight: u32,
    last: Instant,
    locked_until: Option<Instant>,
}

impl Failures {
    fn fresh(now: Instant) -> Self {
        Self {
            count: 0,
            in_flight: 0,
            last: now,
            locked_until: None,
        }
    }

    fn is_idle(&self, now: Instant) -> bool {
        self.in_flight == 0 && self.locked_until.is_none_or(|until| until <= now)
    }
}

/// How an attempt ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Failed,
    Succeeded,
    /// The password was never checked (the checkers were busy): it counts for nothing.
    NotChecked,
}

impl SignInThrottle {
    /// Reserves one attempt under every key, or returns the seconds to wait before trying again.
    fn begin(&self, keys: &[ThrottleKey], now: Instant) -> Result<(), u64> {
        let mut entries = self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for key in keys {
            let Some(entry) = entries.get_mut(key) else { continue };
            if now.duration_since(entry.last) >= FAILURE_WINDOW && entry.is_idle(now) {
                *entry = Failures::fresh(now);
            }
            if let Some(until) = entry.locked_until.filter(|until| *until > now) {
                return Err((until - now).as_secs().max(1));
            }
            let free = key.free_failures();
            let allowed = if entry.count < free {
                entry.count + entry.in_flight < free
            } else {
                entry.in_flight == 0
            };
            if !allowed {
                return Err(1);
            }
        }
        for key in keys {
            if !entries.contains_key(key) {
                make_room(&mut entries, now);
            }
            let entry = entries.entry(key.clone()).or_insert_with(|| Failures::fresh(now));
            entry.in_flight += 1;
            entry.last = now;
        }
        Ok(())
    }

    /// Settles an attempt reserved by [`SignInThrottle::begin`].
    fn finish(&self, keys: &[ThrottleKey], outcome: Outcome, now: Instant) {
        let mut entries = self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for key in keys {
            let Some(entry) = entries.get_mut(key) else { continue };
            entry.in_flight = entry.in_flight.saturating_sub(1);
            match outcome {
                Outcome::NotChecked => {}
                // A success clears its own email's record, but not its address's: one valid
                // account must not reset the spraying budget of the address it signs in from.
                Outcome::Succeeded => {
                    if matches!(key, ThrottleKey::EmailFromAddress(..)) {
                        entry.count = 0;
                        entry.locked_until = None;
                    }
                }
                Outcome::Failed => {
                    entry.count += 1;
                    entry.last = now;
                    let free = key.free_failures();
                    if entry.count >= free {
                        let doublings = (entry.count - free).min(10);
                        let lockout = FIRST_LOCKOUT.saturating_mul(1 << doublings).min(MAX_LOCKOUT);
                        entry.locked_until = Some(now + lockout);
                    }
                }
            }
            if entry.count == 0 && entry.in_flight == 0 && entry.locked_until.is_none() {
                entries.remove(key);
            }
        }
    }

    /// Seconds to wait before `key` may try again, if it is locked out now.
    #[cfg(test)]
    fn locked_for(&self, key: &ThrottleKey, now: Instant) -> Option<u64> {
        let entries = self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let until = entries.get(key)?.locked_until?;
        (until > now).then(|| (until - now).as_secs().max(1))
    }
}

/// Keeps the map below [`MAX_THROTTLE_ENTRIES`]: forgets stale idle entries, then the least
/// recently used idle one. Entries with an attempt in flight or a running lockout are kept.
fn make_room(entries: &mut HashMap<ThrottleKey, Failures>, now: Instant) {
    if entries.len() < MAX_THROTTLE_ENTRIES {
        return;
    }
    entries.retain(|_, entry| !(entry.is_idle(now) && now.duration_since(entry.last) >= FAILURE_WINDOW));
    while entries.len() >= MAX_THROTTLE_ENTRIES {
        let oldest = entries
            .iter()
            .filter(|(_, entry)| entry.is_idle(now))
            .min_by_key(|(_, entry)| entry.last)
            .map(|(key, _)| key.clone());
        match oldest {
            Some(key) => {
                entries.remove(&key);
            }
            None => {
                // Every entry is active; drop the least recently used all the same rather than
                // grow without bound.
                let Some(key) = entries
                    .iter()
                    .min_by_key(|(_, entry)| entry.last)
                    .map(|(key, _)| key.clone())
                else {
                    return;
                };
                entries.remove(&key);
            }
        }
    }
}

/// One reserved sign-in attempt. Dropped without being settled (the client went away while its
/// password was being checked), it counts as a failure, so disconnecting early cannot be used to
/// guess without being counted.
struct Attempt<'a> {
    throttle: &'a SignInThrottle,
    keys: Vec<ThrottleKey>,
    settled: bool,
}

impl Attempt<'_> {
    fn settle(mut self, outcome: Outcome) {
        self.settled = true;
        self.throttle.finish(&self.keys, outcome, Instant::now());
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        if !self.settled {
            self.throttle.finish(&self.keys, Outcome::Failed, Instant::now());
        }
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
    // Keyed on the parsed address (at most 254 characters, case-folded), never on the text as
    // sent, so that the key is bounded and `A@x.io` and `a@x.io` share one budget.
    let email = Email::parse(&email_text).ok();
    let mut keys = vec![ThrottleKey::Address(client.clone())];
    if let Some(email) = &email {
        keys.push(ThrottleKey::EmailFromAddress(email.clone(), client.clone()));
    }
    state
        .sign_in_throttle
        .begin(&keys, Instant::now())
        .map_err(too_many_attempts)?;
    let attempt = Attempt {
        throttle: &state.sign_in_throttle,
        keys,
        settled: false,
    };

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
                attempt.settle(Outcome::NotChecked);
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
        attempt.settle(Outcome::Failed);
        tracing::warn!(client = %client, "failed operator sign-in");
        tokio::time::sleep(FAILURE_DELAY).await;
        return Err(ApiError::Unauthorized {
            code: "invalid_credentials",
        });
    };
    attempt.settle(Outcome::Succeeded);

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

    fn email_key(email: &str) -> ThrottleKey {
        ThrottleKey::EmailFromAddress(Email::parse(email).unwrap(), "192.0.2.1".into())
    }

    #[test]
    fn lockout_starts_after_the_free_failures_and_grows() {
        let throttle = SignInThrottle::default();
        let start = Instant::now();
        let a = [email_key("a@example.com")];
        for _ in 0..FREE_FAILURES - 1 {
            throttle.begin(&a, start).unwrap();
            throttle.finish(&a, Outcome::Failed, start);
            assert_eq!(throttle.locked_for(&a[0], start), None);
        }
        throttle.begin(&a, start).unwrap();
        throttle.finish(&a, Outcome::Failed, start);
        assert_eq!(throttle.locked_for(&a[0], start), Some(30));
        assert_eq!(throttle.begin(&a, start), Err(30));
        assert_eq!(
            throttle.begin(&[email_key("b@example.com")], start),
            Ok(()),
            "other keys are not affected"
        );
        let later = start + Duration::from_secs(31);
        throttle.begin(&a, later).unwrap();
        throttle.finish(&a, Outcome::Failed, later);
        assert_eq!(throttle.locked_for(&a[0], later), Some(60));
        let much_later = later + Duration::from_secs(61);
        throttle.begin(&a, much_later).unwrap();
        throttle.finish(&a, Outcome::Succeeded, much_later);
        assert_eq!(throttle.locked_for(&a[0], much_later), None);
        assert!(
            throttle.entries.lock().unwrap().get(&a[0]).is_none(),
            "a success forgets the email"
        );
    }

    #[test]
    fn attempts_at_once_are_counted_as_if_one_after_another() {
        let throttle = SignInThrottle::default();
        let now = Instant::now();
        let a = [email_key("a@example.com")];
        let admitted = (0..40).filter(|_| throttle.begin(&a, now).is_ok()).count();
        assert_eq!(
            admitted, FREE_FAILURES as usize,
            "only the free failures are checked at once"
        );
        // One of them succeeding does not admit the others that were refused.
        throttle.finish(&a, Outcome::Failed, now);
        assert_eq!(throttle.begin(&a, now), Err(1), "four still in flight use the budget");
    }

    #[test]
    fn an_abandoned_attempt_counts_as_a_failure() {
        let throttle = SignInThrottle::default();
        let now = Instant::now();
        let keys = vec![email_key("a@example.com")];
        for _ in 0..FREE_FAILURES {
            throttle.begin(&keys, now).unwrap();
            drop(Attempt {
                throttle: &throttle,
                keys: keys.clone(),
                settled: false,
            });
        }
        assert!(throttle.locked_for(&keys[0], Instant::now()).is_some());
    }

    #[test]
    fn the_address_budget_spans_emails_and_survives_a_success() {
        let throttle = SignInThrottle::default();
        let now = Instant::now();
        let address = ThrottleKey::Address("192.0.2.1".into());
        for index in 0..FREE_FAILURES_PER_ADDRESS {
            let keys = [address.clone(), email_key(&format!("user{index}@example.com"))];
            throttle.begin(&keys, now).unwrap();
            throttle.finish(
                &keys,
                if index == 3 {
                    Outcome::Succeeded
                } else {
                    Outcome::Failed
                },
                now,
            );
        }
        let keys = [address, email_key("fresh@example.com")];
        assert!(
            throttle.begin(&keys, now).is_ok(),
            "one success among the failures leaves one free"
        );
        throttle.finish(&keys, Outcome::Failed, now);
        assert!(throttle.begin(&keys, now).is_err());
    }

    #[test]
    fn the_throttle_map_stays_bounded() {
        let throttle = SignInThrottle::default();
        let now = Instant::now();
        for index in 0..MAX_THROTTLE_ENTRIES + 500 {
            let keys = [ThrottleKey::Address(format!("198.51.100.{index}"))];
            throttle.begin(&keys, now).unwrap();
            throttle.finish(&keys, Outcome::Failed, now);
        }
        assert!(throttle.entries.lock().unwrap().len() <= MAX_THROTTLE_ENTRIES);
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
