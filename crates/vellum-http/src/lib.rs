//! Vellum's HTTP layer: the axum router, the WorkOS wire shapes, authentication and the one
//! place where errors become responses.
//!
//! **Invariant:** this is the only crate that knows JSON wire shapes. Handlers parse requests
//! into core types, call the [`Store`], and render core types back; they hold no business rules
//! of their own beyond what the wire needs.

mod audit_trail;
mod auth;
mod ceiling;
mod client;
mod dashboard;
mod error;
mod events;
mod exports;
mod extract;
mod health;
mod log;
mod observe;
mod openapi;
mod organizations;
mod portal;
mod ratelimit;
mod retention;
mod schemas;
mod server;
mod streams;
mod tail;
mod wire;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, Request, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer};
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;
use vellum_store::Store;

pub use audit_trail::audit_trail_event_json;
pub use ceiling::null_ingest_router;
pub use client::{MAX_TRUSTED_PROXIES, TrustedProxies};
pub use error::ApiError;
pub use events::{MAX_BATCH_EVENTS, event_json};
pub use log::MAX_ENTRIES_PER_REQUEST;
pub use openapi::openapi_json;
pub use portal::{DEFAULT_PORTAL_CHANGES_PER_MINUTE, MAX_LOGO_BYTES, PortalConfig, PortalLogo};
pub use ratelimit::RateLimit;
pub use schemas::{schema_definition_from_json, schema_json};
pub use server::{DEFAULT_MAX_CONNECTIONS, ServerLimits, serve};
pub use tail::{KEEP_ALIVE as TAIL_KEEP_ALIVE, MAX_TAILS, SLOW_CLIENT as TAIL_SLOW_CLIENT};
pub use vellum_ingest::AUDIT_TRAIL_SCHEMA_VERSION;

/// The response header that carries the request id.
pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// Settings of the HTTP layer.
#[derive(Clone, Debug)]
pub struct HttpConfig {
    /// The largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// A per-API-key request budget; `None` means unlimited.
    pub rate_limit: Option<RateLimit>,
    /// The URL clients reach this server at (for download links); `None` means `http://` + the
    /// request's `Host` header.
    pub public_url: Option<String>,
    /// Serve the dashboard's files from this folder on each request instead of the copies in
    /// the binary (for working on the page without rebuilding); `None` in production.
    pub dashboard_assets_dir: Option<std::path::PathBuf>,
    /// Dashboard sign-in password checks (argon2id, 19 MiB each) running at once; more wait in
    /// a bounded queue, and beyond it are refused with a 503.
    pub max_password_checks: usize,
    /// The retention, in days, of an organization that set none: what
    /// `GET /organizations/{id}/audit_log_configuration` answers for it.
    pub default_retention_days: u32,
    /// The Admin Portal's branding and the origins allowed to embed the viewer.
    pub portal: PortalConfig,
    /// Metrics are served on a listener of their own: this one does not serve `/metrics`.
    pub metrics_elsewhere: bool,
    /// Proxies whose `X-Forwarded-For` names the client (none: the connection's address).
    pub trusted_proxies: TrustedProxies,
}

/// The default of [`HttpConfig::max_password_checks`].
pub const DEFAULT_MAX_PASSWORD_CHECKS: usize = 2;

impl Default for HttpConfig {
    fn default() -> Self {
        // A batch of 1,000 events of ~1 KB fits with room to spare.
        Self {
            max_body_bytes: 4 * 1024 * 1024,
            rate_limit: None,
            public_url: None,
            dashboard_assets_dir: None,
            max_password_checks: DEFAULT_MAX_PASSWORD_CHECKS,
            default_retention_days: vellum_core::retention::DEFAULT_RETENTION_DAYS,
            portal: PortalConfig::default(),
            metrics_elsewhere: false,
            trusted_proxies: TrustedProxies::default(),
        }
    }
}

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    store: Arc<dyn Store>,
    config: Arc<HttpConfig>,
    ingest: Arc<vellum_ingest::IngestService>,
    rate_limiter: Option<Arc<ratelimit::RateLimiter>>,
    log: Arc<vellum_core::checkpoint::NoteSigner>,
    exports: Option<Arc<vellum_export::ExportService>>,
    streams: Option<Arc<vellum_streams::StreamService>>,
    password_checker: Arc<dashboard::PasswordChecker>,
    body_room: extract::BodyRoom,
    api_keys: Arc<auth::KeyCache>,
    /// Signs and checks viewer tokens; without it, the viewer answers 503.
    viewer_key: Option<[u8; 32]>,
    /// The budget of changes (exports, stream changes and tests) per portal session or viewer
    /// token.
    scoped_changes: Arc<ratelimit::CredentialLimiter>,
    /// Renders `/metrics`; without it, the route is not served.
    metrics: Option<MetricsRenderer>,
    /// The live tails open.
    tails: tail::TailCount,
    /// Wakes the live tails of an organization when it commits.
    tail_wakers: tail::TailWakers,
    /// Becomes `true` when the server starts shutting down: long-lived responses (live tails)
    /// end then.
    stopping: tokio::sync::watch::Receiver<bool>,
}

/// Request bodies being read at once may hold at most this many times the largest body (256 MiB
/// with the default 4 MiB): beyond it, a body waits for room, then gets a 503.
pub const BODY_BUDGET_MULTIPLE: usize = 64;

impl AppState {
    /// Builds the shared state of the router.
    pub fn new(
        store: Arc<dyn Store>,
        config: HttpConfig,
        log_signer: Arc<vellum_core::checkpoint::NoteSigner>,
    ) -> Self {
        let scoped_changes = Arc::new(ratelimit::CredentialLimiter::new(RateLimit {
            requests: config.portal.changes_per_minute.max(1),
            window: Duration::from_secs(60),
        }));
        Self {
            log: log_signer,
            ingest: Arc::new(vellum_ingest::IngestService::new(Arc::clone(&store))),
            store,
            rate_limiter: config
                .rate_limit
                .map(|limit| Arc::new(ratelimit::RateLimiter::new(limit))),
            password_checker: Arc::new(dashboard::PasswordChecker::start(config.max_password_checks)),
            body_room: extract::BodyRoom::new(config.max_body_bytes),
            config: Arc::new(config),
            exports: None,
            streams: None,
            api_keys: Arc::default(),
            viewer_key: None,
            scoped_changes,
            metrics: None,
            tails: tail::TailCount::default(),
            tail_wakers: tail::TailWakers::default(),
            stopping: tokio::sync::watch::channel(false).1,
        }
    }

    /// The ingest service every way in appends through (subscribe to it to hear of commits).
    pub fn ingest(&self) -> Arc<vellum_ingest::IngestService> {
        Arc::clone(&self.ingest)
    }

    /// Serves exports through this service (without one, export requests answer 503).
    #[must_use]
    pub fn with_exports(mut self, exports: Arc<vellum_export::ExportService>) -> Self {
        self.exports = Some(exports);
        self
    }

    /// Signs viewer tokens with this key (without one, the embeddable viewer answers 503).
    /// Every node of a deployment must have the same key.
    #[must_use]
    pub fn with_viewer_key(mut self, key: [u8; 32]) -> Self {
        self.viewer_key = Some(key);
        self
    }

    /// Ends long-lived responses (live tails) once `stopping` turns `true`.
    #[must_use]
    pub fn with_stopping(mut self, stopping: tokio::sync::watch::Receiver<bool>) -> Self {
        self.stopping = stopping;
        self
    }

    /// Serves `GET /metrics` with this renderer (unless [`HttpConfig::metrics_elsewhere`]).
    #[must_use]
    pub fn with_metrics(mut self, render: MetricsRenderer) -> Self {
        self.metrics = Some(render);
        self
    }

    /// Serves log streams through this service (without one, stream requests answer 503).
    #[must_use]
    pub fn with_streams(mut self, streams: Arc<vellum_streams::StreamService>) -> Self {
        self.streams = Some(streams);
        self
    }
}

/// Builds the whole router: health probes, the authenticated API, and JSON fallbacks.
pub fn router(state: AppState) -> Router {
    // Layers run outside-in in the reverse order they are added: authentication first, then the
    // rate limit of the key it found.
    let api = Router::new()
        .merge(organizations::routes())
        .merge(retention::routes())
        .merge(schemas::routes())
        .merge(events::routes())
        .merge(audit_trail::routes())
        .merge(log::routes())
        .merge(exports::routes())
        .merge(streams::routes())
        // The Admin Portal's links and the embedded viewer's tokens (portal/).
        .route("/portal/generate_link", post(portal::generate_link))
        .route("/portal/revoke_link", post(portal::revoke_link))
        .route("/audit_logs/viewer_tokens", post(portal::create_viewer_token))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), ratelimit::enforce))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_api_key,
        ));

    let max_body_bytes = state.config.max_body_bytes;
    let routes = Router::new()
        .route("/health", get(health::health))
        .route("/ready", get(health::ready))
        .route("/openapi.json", get(openapi::serve_document))
        .merge(api)
        .merge(exports::download_routes())
        .merge(dashboard::routes(&state))
        .merge(portal::routes(&state));
    let routes = if state.metrics.is_some() && !state.config.metrics_elsewhere {
        routes.route("/metrics", get(health::metrics))
    } else {
        routes
    };
    let routes = routes
        .route_layer(axum::middleware::from_fn(observe::name_route))
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(state.config.trusted_proxies.clone()),
            client::resolve,
        ));
    with_common_layers(routes, max_body_bytes).with_state(state)
}

/// Renders the metrics exposition (Prometheus text format 0.0.4).
pub type MetricsRenderer = Arc<dyn Fn() -> String + Send + Sync>;

pub(crate) fn metrics_response(render: &MetricsRenderer) -> axum::response::Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        render(),
    )
        .into_response()
}

/// A router serving only `GET /metrics` (for `--metrics-listen`), with the same request ids,
/// log lines and JSON errors as the API's.
pub fn metrics_router(render: MetricsRenderer) -> Router {
    let routes = Router::new()
        .route("/metrics", get(move || std::future::ready(metrics_response(&render))))
        .route_layer(axum::middleware::from_fn(observe::name_route));
    with_common_layers(routes, 1024)
}

/// What every request goes through, whatever its route: JSON answers for unknown routes and
/// methods, the body limits, request ids, the request log and the panic guard.
fn with_common_layers<S>(routes: Router<S>, max_body_bytes: usize) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    routes
        .fallback(error::route_not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(axum::middleware::from_fn_with_state(
            max_body_bytes,
            refuse_oversized_requests,
        ))
        .layer(
            ServiceBuilder::new()
                .map_request(drop_unusable_request_id)
                .layer(SetRequestIdLayer::new(REQUEST_ID_HEADER, MakeVellumRequestId))
                .layer(SetSensitiveRequestHeadersLayer::new([
                    header::AUTHORIZATION,
                    header::COOKIE,
                ]))
                .layer(
                    TraceLayer::new_for_http()
                        .make_span_with(|request: &Request<_>| {
                            let request_id = request
                                .headers()
                                .get(REQUEST_ID_HEADER)
                                .and_then(|value| value.to_str().ok())
                                .unwrap_or_default();
                            // `route` and `organization` are filled in once known
                            // (`observe`): the log line of the response carries them.
                            tracing::info_span!(
                                "request",
                                method = %request.method(),
                                path = %request.uri().path(),
                                route = tracing::field::Empty,
                                organization = tracing::field::Empty,
                                client = tracing::field::Empty,
                                request_id = %request_id,
                            )
                        })
                        .on_request(())
                        .on_response(
                            DefaultOnResponse::new()
                                .level(Level::INFO)
                                .latency_unit(tower_http::LatencyUnit::Micros),
                        ),
                )
                .layer(PropagateRequestIdLayer::new(REQUEST_ID_HEADER))
                .layer(axum::middleware::from_fn(observe::count))
                .layer(CatchPanicLayer::custom(error::panic_response)),
        )
}

/// The most bytes of header fields (names and values) a request may carry. hyper's own bound
/// (about 400 KiB of buffered head) is inexact: a head that arrives in one read may pass it.
pub const MAX_HEADER_BYTES: usize = 64 * 1024;

/// Refuses a request whose header fields exceed [`MAX_HEADER_BYTES`], or whose declared body is
/// over the limit, before reading any of the body (a client announcing 5 GB gets its 413 at
/// once, and the connection is closed rather than drained).
async fn refuse_oversized_requests(
    axum::extract::State(max_body_bytes): axum::extract::State<usize>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let header_bytes: usize = request
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    if header_bytes > MAX_HEADER_BYTES {
        return axum::response::IntoResponse::into_response(ApiError::HeadersTooLarge {
            limit: MAX_HEADER_BYTES,
        });
    }
    let declared = extract::declared_body_length(request.headers());
    if declared.is_some_and(|length| length > max_body_bytes as u64) {
        return axum::response::IntoResponse::into_response(ApiError::PayloadTooLarge { limit: max_body_bytes });
    }
    next.run(request).await
}

/// The longest client-sent `X-Request-ID` kept.
const MAX_REQUEST_ID_BYTES: usize = 128;

/// Drops a client-sent `X-Request-ID` that is too long or holds anything but letters, digits
/// and `-_.:+/=`, so that a fresh id is made instead: the id is echoed in a header and written
/// to every log line of the request, where control characters or megabytes do harm.
fn drop_unusable_request_id<B>(mut request: Request<B>) -> Request<B> {
    let usable = |value: &axum::http::HeaderValue| {
        let bytes = value.as_bytes();
        !bytes.is_empty()
            && bytes.len() <= MAX_REQUEST_ID_BYTES
            && bytes
                .iter()
                .all(|byte| byte.is_ascii_alphanumeric() || b"-_.:+/=".contains(byte))
    };
    let values = request.headers().get_all(REQUEST_ID_HEADER);
    let mut values = values.iter();
    let keep = matches!((values.next(), values.next()), (Some(value), None) if usable(value));
    if !keep {
        request.headers_mut().remove(REQUEST_ID_HEADER);
    }
    request
}

/// Request ids: the client's own `X-Request-ID` when it sent one, else `req_` + a ULID.
#[derive(Clone, Copy, Debug)]
struct MakeVellumRequestId;

impl MakeRequestId for MakeVellumRequestId {
    fn make_request_id<B>(&mut self, _request: &Request<B>) -> Option<RequestId> {
        let id = format!("req_{}", ulid::Ulid::generate());
        axum::http::HeaderValue::from_str(&id).ok().map(RequestId::new)
    }
}

/// How long a graceful shutdown waits for in-flight requests by default.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
