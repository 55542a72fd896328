//! Extractors that keep every rejection in Vellum's error shape.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRef, FromRequest, FromRequestParts, Request};
use axum::http::header;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use std::sync::Arc;

use crate::AppState;
use crate::error::ApiError;

/// A JSON request body, parsed into `T`.
///
/// Malformed JSON is a 400 (`invalid_json`); JSON of the wrong shape is a 422 naming the field
/// (`domain_data[0].state`); a body over the limit is a 413; a non-JSON content type is a 415.
/// Unknown fields are ignored, so newer SDKs that send more than Vellum knows keep working.
pub(crate) struct WireJson<T>(pub(crate) T);

fn is_json_content_type(parts_headers: &axum::http::HeaderMap) -> bool {
    let Some(value) = parts_headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
    else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
}

impl<T> FromRequest<AppState> for WireJson<T>
where
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let JsonBytes(bytes) = JsonBytes::from_request(request, state).await?;
        parse_json(&bytes).map(WireJson)
    }
}

/// What reading a request body needs from a router's state: the largest body accepted, and
/// the room shared by every body being read at once.
#[derive(Clone, Debug)]
pub(crate) struct BodyRoom {
    max_body_bytes: usize,
    budget: Arc<tokio::sync::Semaphore>,
}

impl BodyRoom {
    /// Bodies of at most `max_body_bytes`, at most [`crate::BODY_BUDGET_MULTIPLE`] times that
    /// being read at once.
    pub(crate) fn new(max_body_bytes: usize) -> Self {
        Self {
            max_body_bytes,
            budget: Arc::new(tokio::sync::Semaphore::new(budget_units(
                max_body_bytes.saturating_mul(crate::BODY_BUDGET_MULTIPLE),
            ))),
        }
    }
}

impl FromRef<AppState> for BodyRoom {
    fn from_ref(state: &AppState) -> Self {
        state.body_room.clone()
    }
}

/// The raw bytes of a JSON request body, after the content-type and size checks of
/// [`WireJson`]; for handlers that also hash the body (idempotency).
pub(crate) struct JsonBytes(pub(crate) Bytes);

impl<S> FromRequest<S> for JsonBytes
where
    S: Send + Sync,
    BodyRoom: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json_content_type(request.headers()) {
            return Err(ApiError::UnsupportedMediaType);
        }
        let body_room = BodyRoom::from_ref(state);
        let limit = request
            .extensions()
            .get::<RouteBodyLimit>()
            .map_or(body_room.max_body_bytes, |route_limit| route_limit.0);
        // Room for the body among all bodies being read, held while this one is read: without
        // it, thousands of slow uploads could make the server buffer gigabytes at once.
        let declared = declared_body_length(request.headers());
        let reserved = declared.map_or(limit, |length| usize::try_from(length).unwrap_or(limit).min(limit));
        let units = u32::try_from(budget_units(reserved)).unwrap_or(u32::MAX);
        let room = body_room.budget;
        // Almost always there is room at once; only a full budget waits (and arms a timer).
        let _room = match Arc::clone(&room).try_acquire_many_owned(units) {
            Ok(permit) => permit,
            Err(_) => tokio::time::timeout(BODY_BUDGET_WAIT, room.acquire_many_owned(units))
                .await
                .ok()
                .and_then(Result::ok)
                .ok_or_else(|| ApiError::Busy {
                    message: "The server is reading too many request bodies at once; retry shortly.".into(),
                    code: "server_busy",
                    retry_after_seconds: 1,
                })?,
        };
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| match rejection {
                BytesRejection::FailedToBufferBody(failure)
                    if failure.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE =>
                {
                    ApiError::PayloadTooLarge { limit }
                }
                other if caused_by_body_timeout(&other) => ApiError::RequestTimeout,
                other => ApiError::BadRequest {
                    message: format!("Could not read the request body: {other}."),
                    code: "invalid_body",
                },
            })?;
        Ok(JsonBytes(bytes))
    }
}

/// The body length a request declares in `Content-Length`, if it declares a readable one.
pub(crate) fn declared_body_length(headers: &axum::http::HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|text| text.trim().parse::<u64>().ok())
}

/// How long a body waits for room in the body budget before a 503.
const BODY_BUDGET_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// The body budget counts kibibytes (a semaphore has at most `u32::MAX >> 3` permits).
pub(crate) fn budget_units(bytes: usize) -> usize {
    bytes.div_ceil(1024).clamp(1, tokio::sync::Semaphore::MAX_PERMITS)
}

/// A smaller body limit than the server's for one route, set by [`limit_body`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct RouteBodyLimit(pub(crate) usize);

/// Limits the bodies of the routes it wraps to `limit` bytes (for routes without
/// authentication, such as sign-in, which need no more than a few hundred bytes and must not
/// let anonymous clients make the server buffer megabytes each).
pub(crate) fn limit_body<S: Clone + Send + Sync + 'static>(router: axum::Router<S>, limit: usize) -> axum::Router<S> {
    router
        .layer(axum::extract::DefaultBodyLimit::max(limit))
        .layer(axum::Extension(RouteBodyLimit(limit)))
}

/// Whether reading the body failed because it did not arrive within the body read timeout.
fn caused_by_body_timeout(rejection: &BytesRejection) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(rejection);
    while let Some(error) = cause {
        if error.is::<crate::server::BodyReadTimeout>() {
            return true;
        }
        cause = error.source();
    }
    false
}

/// Parses a JSON document into `T` with the error mapping of [`WireJson`].
pub(crate) fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer)
        .map(|crate::wire::ObjectOnly(value)| value)
        .map_err(|error| {
            let path = error.path().to_string();
            let inner = error.into_inner();
            match inner.classify() {
                serde_json::error::Category::Data => {
                    // `event.targets[0].type` → `event.targets.0.type`, the form validation uses.
                    let field = if path == "." {
                        "body".to_owned()
                    } else {
                        path.replace('[', ".").replace(']', "")
                    };
                    ApiError::invalid_field(field, "invalid_type", strip_position(&inner.to_string()))
                }
                _ => ApiError::BadRequest {
                    message: format!("The request body is not valid JSON: {inner}."),
                    code: "invalid_json",
                },
            }
        })?;
    deserializer.end().map_err(|error| ApiError::BadRequest {
        message: format!("The request body is not valid JSON: {error}."),
        code: "invalid_json",
    })?;
    Ok(value)
}

/// serde_json appends " at line 1 column 17" to data errors; the field path says more.
pub(crate) fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(index) => message[..index].to_owned(),
        None => message.to_owned(),
    }
}

/// The query string as ordered `(key, value)` pairs, so that handlers can accept the several
/// array spellings SDKs use (`domains=a,b`, `domains=a&domains=b`, `domains[]=a`).
pub(crate) struct QueryPairs(pub(crate) Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for QueryPairs {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        serde_urlencoded_pairs(query).map(QueryPairs)
    }
}

fn serde_urlencoded_pairs(query: &str) -> Result<Vec<(String, String)>, ApiError> {
    axum::extract::Query::<Vec<(String, String)>>::try_from_uri(&format!("/?{query}").parse().map_err(|_| bad_query())?)
        .map(|axum::extract::Query(pairs)| pairs)
        .map_err(|_| bad_query())
}

fn bad_query() -> ApiError {
    ApiError::BadRequest {
        message: "The query string is malformed.".into(),
        code: "invalid_query",
    }
}

impl QueryPairs {
    /// The single value of a parameter; a repeated parameter is a 422.
    pub(crate) fn single(&self, name: &str) -> Result<Option<&str>, ApiError> {
        let mut values = self
            .0
            .iter()
            .filter(|(key, _)| key == name)
            .map(|(_, value)| value.as_str());
        let first = values.next();
        if values.next().is_some() {
            return Err(ApiError::invalid_field(
                name,
                "repeated",
                format!("`{name}` may be given only once"),
            ));
        }
        Ok(first)
    }

    /// Every value of an array parameter, as `name=a&name=b` or `name[]=a&name[]=b`; values are
    /// taken whole (an actor name may contain a comma).
    pub(crate) fn list_exact(&self, name: &str) -> Vec<String> {
        let bracketed = format!("{name}[]");
        self.0
            .iter()
            .filter(|(key, _)| *key == name || *key == bracketed)
            .map(|(_, value)| value.clone())
            .filter(|value| !value.is_empty())
            .collect()
    }

    /// Every value of an array parameter, in any of the spellings SDKs use, split on commas.
    pub(crate) fn list(&self, name: &str) -> Vec<String> {
        let bracketed = format!("{name}[]");
        self.0
            .iter()
            .filter(|(key, _)| *key == name || *key == bracketed)
            .flat_map(|(_, value)| value.split(','))
            .map(str::trim)
            .filter(|value| !value.is_empty())
            .map(str::to_owned)
            .collect()
    }
}

/// A single path parameter, with a malformed one (bad percent-encoding, invalid UTF-8) answered
/// in Vellum's error shape instead of axum's plain text.
pub(crate) struct WirePath(pub(crate) String);

impl<S: Send + Sync> FromRequestParts<S> for WirePath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<String>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(value)| WirePath(value))
            .map_err(|rejection| ApiError::BadRequest {
                message: format!("The URL path is malformed: {}.", rejection.body_text()),
                code: "invalid_path",
            })
    }
}
