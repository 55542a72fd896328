//! The one mapping from errors to responses. Every error body is JSON with at least `message`,
//! plus `code` and `errors` where WorkOS has them, so the official SDKs raise their typed errors.

use std::any::Any;

use axum::Json;
use axum::http::{Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;
use vellum_core::ValidationErrors;
use vellum_core::schema::SchemaViolation;
use vellum_store::StoreError;

/// An error a handler returns.
#[derive(Debug)]
pub enum ApiError {
    /// 400: a request that cannot be read (malformed JSON, bad query string).
    BadRequest {
        /// For people.
        message: String,
        /// Machine-readable.
        code: &'static str,
    },
    /// 401: no API key, or one that is not valid.
    Unauthorized {
        /// Why, machine-readable.
        code: &'static str,
    },
    /// 403: the credential is valid in form but does not grant this (an altered or expired
    /// download link).
    Forbidden {
        /// For people.
        message: String,
        /// Machine-readable.
        code: &'static str,
    },
    /// 404: the object does not exist.
    NotFound {
        /// WorkOS-style: `Organization not found: 'org_…'.`
        message: String,
    },
    /// 404: a request for an API of WorkOS that Vellum does not serve, at a path it shares
    /// with one Vellum does serve (WorkOS's Events API at `GET /events`).
    NotServed {
        /// For people: which API is not served, and where to look instead.
        message: String,
        /// Machine-readable.
        code: &'static str,
    },
    /// 405: the path exists but not with this method.
    MethodNotAllowed {
        /// The method used.
        method: Method,
        /// The path requested.
        path: String,
    },
    /// 409: the request conflicts with stored state.
    Conflict {
        /// For people.
        message: String,
        /// Machine-readable.
        code: &'static str,
    },
    /// 400: an event that does not match its action's schema (WorkOS's Ajv-style shape).
    InvalidEvent(Vec<SchemaViolation>),
    /// 429: the API key used up its request budget.
    RateLimited {
        /// Seconds until a request will be accepted again.
        retry_after_seconds: u64,
    },
    /// 429: too many failed sign-ins of one operator from one address.
    TooManyAttempts {
        /// Seconds until a sign-in will be tried again.
        retry_after_seconds: u64,
    },
    /// 413: the body is larger than allowed.
    PayloadTooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// 408: the request body did not arrive within the body read timeout.
    RequestTimeout,
    /// 431: the request's header fields are larger in total than allowed.
    HeadersTooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// 415: the body is not JSON.
    UnsupportedMediaType,
    /// 422: the request is well-formed but some fields are not acceptable.
    Validation(ValidationErrors),
    /// 422 in the legacy Audit Trail API's shape: each error's `code` is its sentence.
    LegacyValidation(ValidationErrors),
    /// 503: the store cannot serve requests now.
    Unavailable,
    /// 503: a bounded resource (password checks, connections) is in full use; retry shortly.
    Busy {
        /// For people.
        message: String,
        /// Machine-readable.
        code: &'static str,
        /// Seconds after which a retry is likely to be served.
        retry_after_seconds: u64,
    },
    /// 500: anything else. The cause is logged, never sent.
    Internal(String),
}

impl From<vellum_ingest::Rejection> for ApiError {
    fn from(rejection: vellum_ingest::Rejection) -> Self {
        match rejection {
            vellum_ingest::Rejection::Fields(errors) => Self::Validation(errors),
            vellum_ingest::Rejection::Schema(violations) => Self::InvalidEvent(violations),
        }
    }
}

impl From<vellum_ingest::IngestError> for ApiError {
    fn from(error: vellum_ingest::IngestError) -> Self {
        match error {
            vellum_ingest::IngestError::Rejected(rejection) => rejection.into(),
            vellum_ingest::IngestError::KeyReused => Self::Conflict {
                message: "This Idempotency-Key was already used with a different request in the last 24 hours.".into(),
                code: "idempotency_key_reused",
            },
            vellum_ingest::IngestError::Store(error) => error.into(),
        }
    }
}

impl ApiError {
    /// A 422 for one field.
    pub fn invalid_field(field: impl Into<String>, code: &'static str, message: impl Into<String>) -> Self {
        let mut errors = ValidationErrors::new();
        errors.push(field, code, message);
        Self::Validation(errors)
    }

    pub(crate) fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            Self::Forbidden { .. } => StatusCode::FORBIDDEN,
            Self::NotFound { .. } | Self::NotServed { .. } => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict { .. } => StatusCode::CONFLICT,
            Self::InvalidEvent(_) => StatusCode::BAD_REQUEST,
            Self::RateLimited { .. } | Self::TooManyAttempts { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::HeadersTooLarge { .. } => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Validation(_) | Self::LegacyValidation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Unavailable | Self::Busy { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The JSON body of this error, as a typed [`ErrorBody`].
    pub(crate) fn body(&self) -> ErrorBody {
        let plain = |message: String, code: &str| {
            ErrorBody::Plain(ErrorResponse {
                message,
                code: code.to_owned(),
            })
        };
        match self {
            Self::BadRequest { message, code }
            | Self::Forbidden { message, code }
            | Self::NotServed { message, code }
            | Self::Conflict { message, code }
            | Self::Busy { message, code, .. } => plain(message.clone(), code),
            Self::Unauthorized { code } => plain(
                match *code {
                    "not_signed_in" => "Sign in to continue.",
                    "invalid_credentials" => "Incorrect email or password.",
                    "portal_session_ended" => "This portal session has ended; open a new portal link.",
                    "invalid_viewer_token" => "The viewer token is missing or not valid.",
                    "viewer_token_expired" => "The viewer token has expired; ask the application for a new one.",
                    _ => "Unauthorized",
                }
                .to_owned(),
                code,
            ),
            Self::NotFound { message } => plain(message.clone(), "entity_not_found"),
            Self::MethodNotAllowed { method, path } => plain(format!("Cannot {method} {path}"), "method_not_allowed"),
            Self::InvalidEvent(violations) => ErrorBody::InvalidEvent(InvalidEventError {
                message: "Invalid Audit Log event.".to_owned(),
                code: "invalid_audit_log_event".to_owned(),
                errors: violations
                    .iter()
                    .map(|violation| SchemaViolationItem {
                        instance_path: violation.instance_path.clone(),
                        message: violation.message.clone(),
                    })
                    .collect(),
            }),
            Self::RateLimited { .. } => plain("Too many requests.".to_owned(), "rate_limit_exceeded"),
            Self::TooManyAttempts { retry_after_seconds } => plain(
                format!("Too many failed sign-ins. Try again in {retry_after_seconds} seconds."),
                "too_many_attempts",
            ),
            Self::PayloadTooLarge { limit } => plain(
                format!("The request body is larger than the limit of {limit} bytes."),
                "payload_too_large",
            ),
            Self::HeadersTooLarge { limit } => plain(
                format!("The request's headers are larger than the limit of {limit} bytes in total."),
                "request_headers_too_large",
            ),
            Self::RequestTimeout => plain("The request body did not arrive in time.".to_owned(), "request_timeout"),
            Self::UnsupportedMediaType => plain(
                "Expected a JSON body with `Content-Type: application/json`.".to_owned(),
                "unsupported_media_type",
            ),
            Self::Validation(errors) => ErrorBody::Validation(ValidationError {
                message: "Validation failed.".to_owned(),
                code: "validation_failed".to_owned(),
                errors: errors
                    .errors()
                    .iter()
                    .map(|error| FieldErrorItem {
                        field: error.field.clone(),
                        code: error.code.to_string(),
                        message: error.message.clone(),
                    })
                    .collect(),
            }),
            Self::LegacyValidation(errors) => ErrorBody::LegacyValidation(LegacyValidationError {
                message: "Validation failed".to_owned(),
                code: "validation_failed".to_owned(),
                errors: errors
                    .errors()
                    .iter()
                    .map(|error| LegacyFieldErrorItem {
                        field: error.field.clone(),
                        code: error.message.clone(),
                    })
                    .collect(),
            }),
            Self::Unavailable => plain(
                "The service is temporarily unavailable; retry shortly.".to_owned(),
                "service_unavailable",
            ),
            Self::Internal(_) => plain("Internal server error.".to_owned(), "internal_error"),
        }
    }
}

/// Every error body Vellum sends: one of the shapes below, each with at least `message` and
/// `code`, so that a client may read any error as an [`ErrorResponse`].
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub(crate) enum ErrorBody {
    /// `{message, code}`.
    Plain(ErrorResponse),
    /// A 400 for an event its action's schema refuses.
    InvalidEvent(InvalidEventError),
    /// A 422 naming each field.
    Validation(ValidationError),
    /// A 422 of the legacy Audit Trail API.
    LegacyValidation(LegacyValidationError),
}

/// An error: `message` for people, `code` for programs. Every error Vellum answers has both
/// (WorkOS documents most errors as `{message}` and adds `code` to some; the SDKs read both).
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ErrorResponse {
    /// For people.
    #[schema(example = "Organization not found: 'org_01EHQMYV6MBK39QC5PZXHY59C3'.")]
    pub(crate) message: String,
    /// Machine-readable, e.g. `entity_not_found`, `invalid_json`, `unauthorized`.
    #[schema(example = "entity_not_found")]
    pub(crate) code: String,
}

/// 400 for an event that its action's schema refuses (WorkOS's Ajv-style shape).
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct InvalidEventError {
    #[schema(example = "Invalid Audit Log event.")]
    message: String,
    #[schema(example = "invalid_audit_log_event")]
    code: String,
    errors: Vec<SchemaViolationItem>,
}

/// The 400 of `POST /audit_logs/events`: an [`InvalidEventError`] for an event its schema
/// refuses, or an [`ErrorResponse`] for a body that cannot be read (as WorkOS documents it, an
/// `anyOf` of the two).
pub(crate) struct EventBadRequest;

impl utoipa::PartialSchema for EventBadRequest {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::AnyOfBuilder::new()
            .item(utoipa::openapi::Ref::from_schema_name(InvalidEventError::name()))
            .item(utoipa::openapi::Ref::from_schema_name(ErrorResponse::name()))
            .into()
    }
}

impl ToSchema for EventBadRequest {
    fn schemas(schemas: &mut Vec<(String, utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>)>) {
        schemas.push((
            InvalidEventError::name().into(),
            <InvalidEventError as utoipa::PartialSchema>::schema(),
        ));
        schemas.push((
            ErrorResponse::name().into(),
            <ErrorResponse as utoipa::PartialSchema>::schema(),
        ));
        InvalidEventError::schemas(schemas);
    }
}

/// One place where an event breaks its schema.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SchemaViolationItem {
    /// A JSON pointer into the event, e.g. `/targets`.
    #[serde(rename = "instancePath")]
    #[schema(rename = "instancePath", example = "/targets")]
    instance_path: String,
    message: String,
}

/// 422: the request is well-formed but some fields are not acceptable; one item per field.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ValidationError {
    #[schema(example = "Validation failed.")]
    message: String,
    #[schema(example = "validation_failed")]
    code: String,
    errors: Vec<FieldErrorItem>,
}

/// One refused field.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct FieldErrorItem {
    /// The field's path, members joined with `.`, e.g. `event.action` or `targets.0.type`.
    #[schema(example = "event.action")]
    field: String,
    #[schema(example = "required")]
    code: String,
    message: String,
}

/// 422 of the legacy Audit Trail API: `code` is a sentence, as the legacy SDKs show it.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct LegacyValidationError {
    #[schema(example = "Validation failed")]
    message: String,
    #[schema(example = "validation_failed")]
    code: String,
    errors: Vec<LegacyFieldErrorItem>,
}

/// One refused field of a legacy request.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct LegacyFieldErrorItem {
    #[schema(example = "target_id")]
    field: String,
    #[schema(example = "target_id must be a string")]
    code: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match &self {
            Self::Internal(cause) => tracing::error!(error = %cause, "request failed"),
            Self::Unavailable => tracing::warn!("request refused: store unavailable"),
            _ => {}
        }
        let mut response = (self.status(), Json(self.body())).into_response();
        if let Self::RateLimited { retry_after_seconds }
        | Self::TooManyAttempts { retry_after_seconds }
        | Self::Busy {
            retry_after_seconds, ..
        } = self
        {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from(retry_after_seconds));
        }
        // The rest of the body was not read: the connection cannot carry another request.
        if matches!(
            self,
            Self::PayloadTooLarge { .. } | Self::RequestTimeout | Self::HeadersTooLarge { .. }
        ) {
            response
                .headers_mut()
                .insert(header::CONNECTION, header::HeaderValue::from_static("close"));
        }
        // A dashboard session is not a bearer credential, so its refusals name no scheme.
        if matches!(&self, Self::Unauthorized { code } if !matches!(*code, "not_signed_in" | "invalid_credentials" | "portal_session_ended"))
        {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound { kind, id } => Self::NotFound {
                message: format!("{kind} not found: '{id}'."),
            },
            StoreError::Conflict(message) => Self::Conflict {
                message,
                code: "conflict",
            },
            StoreError::InvalidInput { field, message } => Self::invalid_field(field, "invalid", message),
            StoreError::Unavailable(cause) => {
                tracing::warn!(error = %cause, "store unavailable");
                Self::Unavailable
            }
            StoreError::Internal(cause) => Self::Internal(cause),
        }
    }
}

impl From<ValidationErrors> for ApiError {
    fn from(errors: ValidationErrors) -> Self {
        Self::Validation(errors)
    }
}

/// The fallback for paths no route serves (NestJS-style message, as WorkOS answers).
pub(crate) async fn route_not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::NotFound {
        message: format!("Cannot {method} {}", uri.path()),
    }
}

/// The fallback for a path served under other methods.
pub(crate) async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::MethodNotAllowed {
        method,
        path: uri.path().to_owned(),
    }
}

/// Turns a panic in a handler into a JSON 500 (the panic message is logged, not sent).
#[allow(clippy::needless_pass_by_value)] // the signature CatchPanicLayer requires
pub(crate) fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response {
    let detail = panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|text| (*text).to_owned()))
        .unwrap_or_else(|| "unknown panic".to_owned());
    ApiError::Internal(format!("handler panicked: {detail}")).into_response()
}
