//! Layered configuration: command-line flags, then `VELLUM_*` environment variables, then an
//! optional TOML file (`--config` / `VELLUM_CONFIG`), then defaults. The first layer that sets a
//! value wins.
//!
//! Flags and environment variables are both read by clap (a flag beats its variable); this
//! module merges the result with the file and the defaults.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use serde::Deserialize;
use vellum_core::ApiKeySecret;

/// The default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// The default name of this deployment's logs.
pub const DEFAULT_LOG_NAME: &str = "vellum";
/// The default data directory.
pub const DEFAULT_DATA_DIR: &str = "./vellum-data";

/// How logs are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// How many connections to PostgreSQL a node opens unless configured.
pub const DEFAULT_DATABASE_MAX_CONNECTIONS: usize = 16;

/// What the configuration file may contain. Every key is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// See [`Settings::listen`].
    pub listen: Option<String>,
    /// See [`Settings::metrics_listen`].
    pub metrics_listen: Option<String>,
    /// See [`Settings::trusted_proxies`] (comma-separated).
    pub trusted_proxies: Option<String>,
    /// See [`Settings::data_dir`].
    pub data_dir: Option<PathBuf>,
    /// See [`Settings::database_url`].
    pub database_url: Option<String>,
    /// See [`Settings::database_max_connections`].
    pub database_max_connections: Option<usize>,
    /// See [`Settings::database_ca_file`].
    pub database_ca_file: Option<PathBuf>,
    /// See [`Settings::api_key`].
    pub api_key: Option<String>,
    /// See [`Settings::log_format`].
    pub log_format: Option<LogFormat>,
    /// See [`Settings::max_body_bytes`].
    pub max_body_bytes: Option<usize>,
    /// See [`Settings::shutdown_grace`], in seconds.
    pub shutdown_grace_seconds: Option<u64>,
    /// See [`Settings::rate_limit`], as `REQUESTS/SECONDS`.
    pub rate_limit: Option<String>,
    /// See [`Settings::log_name`].
    pub log_name: Option<String>,
    /// See [`Settings::signing_key_file`].
    pub signing_key_file: Option<PathBuf>,
    /// See [`Settings::public_url`].
    pub public_url: Option<String>,
    /// See [`ExportOptions::workers`].
    pub export_workers: Option<usize>,
    /// See [`Settings::purge_interval`], in seconds.
    pub purge_interval_seconds: Option<u64>,
    /// See [`Settings::stream_allow_private_destinations`].
    pub stream_allow_private_destinations: Option<bool>,
    /// See [`vellum_http::PortalConfig::application_name`].
    pub portal_name: Option<String>,
    /// The logo file of [`vellum_http::PortalConfig::logo`].
    pub portal_logo: Option<PathBuf>,
    /// See [`vellum_http::PortalConfig::viewer_allowed_origins`], comma-separated.
    pub viewer_allowed_origins: Option<String>,
    /// See [`ExportOptions::ttl`], in seconds.
    pub export_ttl_seconds: Option<u64>,
    /// See [`ExportOptions::link_lifetime`], in seconds.
    pub export_link_seconds: Option<u64>,
    /// See [`S3Options::bucket`].
    pub export_s3_bucket: Option<String>,
    /// See [`S3Options::endpoint`].
    pub export_s3_endpoint: Option<String>,
    /// See [`S3Options::region`].
    pub export_s3_region: Option<String>,
    /// See [`S3Options::prefix`].
    pub export_s3_prefix: Option<String>,
    /// See [`ServerLimits::max_connections`](vellum_http::ServerLimits::max_connections).
    pub max_connections: Option<usize>,
    /// See [`ServerLimits::header_read_timeout`](vellum_http::ServerLimits::header_read_timeout), in seconds.
    pub header_read_timeout_seconds: Option<u64>,
    /// See [`ServerLimits::body_read_timeout`](vellum_http::ServerLimits::body_read_timeout), in seconds.
    pub body_read_timeout_seconds: Option<u64>,
    /// See [`ServerLimits::idle_timeout`](vellum_http::ServerLimits::idle_timeout), in seconds.
    pub idle_timeout_seconds: Option<u64>,
    /// See [`ServerLimits::write_stall_timeout`](vellum_http::ServerLimits::write_stall_timeout), in seconds.
    pub write_stall_timeout_seconds: Option<u64>,
    /// See [`Settings::max_password_checks`].
    pub max_password_checks: Option<usize>,
    /// See [`Settings::admin`].
    pub admin_email: Option<String>,
    /// See [`Settings::admin`].
    pub admin_password: Option<String>,
    /// See [`Settings::default_retention_days`].
    pub default_retention_days: Option<i64>,
}

/// Where and how exports run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportOptions {
    /// Exports running at once.
    pub workers: usize,
    /// How long a ready export's file is kept before it is deleted.
    pub ttl: Duration,
    /// How long a download link is valid.
    pub link_lifetime: Duration,
    /// An S3-compatible bucket for export files; `None` keeps them under `DATA_DIR/exports`.
    pub s3: Option<S3Options>,
}

impl Default for ExportOptions {
    fn default() -> Self {
        let defaults = vellum_export::ExportSettings::default();
        Self {
            workers: defaults.workers,
            ttl: defaults.ttl,
            link_lifetime: defaults.link_lifetime,
            s3: None,
        }
    }
}

/// An S3-compatible bucket (credentials from the standard `AWS_*` environment variables).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct S3Options {
    /// The bucket.
    pub bucket: String,
    /// A non-AWS endpoint, e.g. `http://127.0.0.1:9000`.
    pub endpoint: Option<String>,
    /// The region.
    pub region: Option<String>,
    /// A key prefix inside the bucket.
    pub prefix: String,
}

impl FileConfig {
    /// Reads and parses a configuration file.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("cannot read config file {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("invalid config file {}", path.display()))
    }
}

/// Values from flags and environment variables (clap has already applied flag > env).
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    /// `--listen` / `VELLUM_LISTEN`.
    pub listen: Option<String>,
    /// `--metrics-listen` / `VELLUM_METRICS_LISTEN`.
    pub metrics_listen: Option<String>,
    /// `--trusted-proxies` / `VELLUM_TRUSTED_PROXIES`.
    pub trusted_proxies: Option<String>,
    /// `--data-dir` / `VELLUM_DATA_DIR`.
    pub data_dir: Option<PathBuf>,
    /// `--database-url` / `VELLUM_DATABASE_URL`.
    pub database_url: Option<String>,
    /// `--database-max-connections` / `VELLUM_DATABASE_MAX_CONNECTIONS`.
    pub database_max_connections: Option<usize>,
    /// `--database-ca-file` / `VELLUM_DATABASE_CA_FILE`.
    pub database_ca_file: Option<PathBuf>,
    /// `VELLUM_API_KEY` (no flag: a secret on the command line shows in `ps`).
    pub api_key: Option<String>,
    /// `--log-format` / `VELLUM_LOG_FORMAT`.
    pub log_format: Option<LogFormat>,
    /// `--rate-limit` / `VELLUM_RATE_LIMIT`.
    pub rate_limit: Option<String>,
    /// `--log-name` / `VELLUM_LOG_NAME`.
    pub log_name: Option<String>,
    /// `--signing-key-file` / `VELLUM_SIGNING_KEY_FILE`.
    pub signing_key_file: Option<PathBuf>,
    /// `--public-url` / `VELLUM_PUBLIC_URL`.
    pub public_url: Option<String>,
    /// `--export-workers` / `VELLUM_EXPORT_WORKERS`.
    pub export_workers: Option<usize>,
    /// `--purge-interval` / `VELLUM_PURGE_INTERVAL` (seconds).
    pub purge_interval_seconds: Option<u64>,
    /// `--stream-allow-private-destinations` / `VELLUM_STREAM_ALLOW_PRIVATE_DESTINATIONS`.
    pub stream_allow_private_destinations: Option<bool>,
    /// `--portal-name` / `VELLUM_PORTAL_NAME`.
    pub portal_name: Option<String>,
    /// `--portal-logo` / `VELLUM_PORTAL_LOGO`.
    pub portal_logo: Option<PathBuf>,
    /// `--viewer-allowed-origins` / `VELLUM_VIEWER_ALLOWED_ORIGINS`.
    pub viewer_allowed_origins: Option<String>,
    /// `--export-s3-bucket` / `VELLUM_EXPORT_S3_BUCKET`.
    pub export_s3_bucket: Option<String>,
    /// `--export-s3-endpoint` / `VELLUM_EXPORT_S3_ENDPOINT`.
    pub export_s3_endpoint: Option<String>,
    /// `--export-s3-region` / `VELLUM_EXPORT_S3_REGION`.
    pub export_s3_region: Option<String>,
    /// `--max-connections` / `VELLUM_MAX_CONNECTIONS`.
    pub max_connections: Option<usize>,
    /// `--header-read-timeout` / `VELLUM_HEADER_READ_TIMEOUT`, in seconds.
    pub header_read_timeout_seconds: Option<u64>,
    /// `--body-read-timeout` / `VELLUM_BODY_READ_TIMEOUT`, in seconds.
    pub body_read_timeout_seconds: Option<u64>,
    /// `--idle-timeout` / `VELLUM_IDLE_TIMEOUT`, in seconds.
    pub idle_timeout_seconds: Option<u64>,
    /// `--write-stall-timeout` / `VELLUM_WRITE_STALL_TIMEOUT`, in seconds.
    pub write_stall_timeout_seconds: Option<u64>,
    /// `--max-password-checks` / `VELLUM_MAX_PASSWORD_CHECKS`.
    pub max_password_checks: Option<usize>,
    /// `VELLUM_ADMIN_EMAIL`.
    pub admin_email: Option<String>,
    /// `VELLUM_ADMIN_PASSWORD` (no flag: a secret on the command line shows in `ps`).
    pub admin_password: Option<String>,
    /// `VELLUM_DASHBOARD_DIR`: serve the dashboard's files from this folder (front-end work).
    pub dashboard_dir: Option<PathBuf>,
    /// `--default-retention-days` / `VELLUM_DEFAULT_RETENTION_DAYS`.
    pub default_retention_days: Option<u32>,
}

/// An operator account that `vellum serve` makes sure exists, with this password.
#[derive(Clone)]
pub struct AdminBootstrap {
    /// The operator's email.
    pub email: vellum_core::operator::Email,
    /// The password it signs in with.
    pub password: String,
}

impl std::fmt::Debug for AdminBootstrap {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "AdminBootstrap({}, password: <redacted>)", self.email)
    }
}

/// The resolved settings of a `vellum` process.
#[derive(Clone)]
pub struct Settings {
    /// Where `vellum serve` listens.
    pub listen: SocketAddr,
    /// Where `GET /metrics` is served instead of on [`Settings::listen`]; `None`: on the API's
    /// own listener.
    pub metrics_listen: Option<SocketAddr>,
    /// Proxies (addresses and networks) whose `X-Forwarded-For` says who the client is.
    pub trusted_proxies: vellum_http::TrustedProxies,
    /// Where the embedded store keeps its files.
    pub data_dir: PathBuf,
    /// A PostgreSQL URL; when set, it replaces the embedded store. TLS follows its `sslmode`
    /// (`disable`, `prefer`: the default, `require`).
    pub database_url: Option<String>,
    /// The most connections to PostgreSQL this node opens (default 16).
    pub database_max_connections: usize,
    /// Certificate authorities (PEM) to trust for TLS to PostgreSQL, besides the system's.
    pub database_ca_file: Option<PathBuf>,
    /// A secret that `vellum serve` makes sure exists as an active API key.
    pub api_key: Option<ApiKeySecret>,
    /// How logs are written.
    pub log_format: LogFormat,
    /// The largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// How long shutdown waits for in-flight requests.
    pub shutdown_grace: Duration,
    /// A per-API-key request budget; `None` means unlimited.
    pub rate_limit: Option<vellum_http::RateLimit>,
    /// The name of this deployment's logs: the signing key's name and the first part of every
    /// checkpoint origin (`<log_name>/<organization id>`).
    pub log_name: String,
    /// The log signing key; `None` means `log-signing-key` in the data directory, created on
    /// first start.
    pub signing_key_file: Option<PathBuf>,
    /// The URL clients reach this server at, for download links; `None` means `http://` + the
    /// request's `Host` header.
    pub public_url: Option<String>,
    /// Exports.
    pub exports: ExportOptions,
    /// An operator account made sure to exist at start (`VELLUM_ADMIN_EMAIL` and
    /// `VELLUM_ADMIN_PASSWORD`, both or neither).
    pub admin: Option<AdminBootstrap>,
    /// Serve the dashboard's files from this folder instead of the binary's copies.
    pub dashboard_dir: Option<PathBuf>,
    /// Timeouts and the connection limit of the HTTP server. `max_connections` is as
    /// configured; [`Settings::effective_limits`] fits it to the process's file limit.
    pub limits: vellum_http::ServerLimits,
    /// Dashboard sign-in password checks running at once.
    pub max_password_checks: usize,
    /// How many days the events of an organization that set no retention period of its own
    /// are kept: one of the values `retention_period_in_days` accepts.
    pub default_retention_days: u32,
    /// How often `vellum serve` runs a purge pass (`docs/retention.md`); `None`: never (purges
    /// then run only when `vellum purge` is run, from cron for example).
    pub purge_interval: Option<Duration>,
    /// Let log streams reach loopback, private, link-local and other special addresses, and
    /// plain `http://` URLs (development, and destinations on the operator's own network). Off
    /// by default: a stream's URL is chosen by whoever holds an API key.
    pub stream_allow_private_destinations: bool,
    /// The Admin Portal's branding and the origins that may embed the viewer.
    pub portal: vellum_http::PortalConfig,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Settings")
            .field("listen", &self.listen)
            .field("metrics_listen", &self.metrics_listen)
            .field("trusted_proxies", &self.trusted_proxies)
            .field("data_dir", &self.data_dir)
            .field("database_url", &self.database_url.as_ref().map(|_| "<set>"))
            .field("database_max_connections", &self.database_max_connections)
            .field("database_ca_file", &self.database_ca_file)
            .field("api_key", &self.api_key)
            .field("log_format", &self.log_format)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("shutdown_grace", &self.shutdown_grace)
            .field("rate_limit", &self.rate_limit)
            .field("log_name", &self.log_name)
            .field("signing_key_file", &self.signing_key_file)
            .field("public_url", &self.public_url)
            .field("exports", &self.exports)
            .field("admin", &self.admin)
            .field("dashboard_dir", &self.dashboard_dir)
            .field("limits", &self.limits)
            .field("max_password_checks", &self.max_password_checks)
            .field("default_retention_days", &self.default_retention_days)
            .field("purge_interval", &self.purge_interval)
            .field(
                "stream_allow_private_destinations",
                &self.stream_allow_private_destinations,
            )
            .field("portal", &self.portal)
            .finish()
    }
}

impl Settings {
    /// Merges flags and environment (first), the file (second) and defaults (last).
    pub fn resolve(overrides: Overrides, file: FileConfig) -> anyhow::Result<Self> {
        let listen_text = overrides
            .listen
            .or(file.listen)
            .unwrap_or_else(|| DEFAULT_LISTEN.to_owned());
        let listen = listen_text.parse().with_context(|| {
            format!("invalid listen address `{listen_text}` (expected host:port, e.g. 127.0.0.1:8080)")
        })?;
        let metrics_listen = match overrides
            .metrics_listen
            .or(file.metrics_listen)
            .filter(|text| !text.is_empty())
        {
            Some(text) => Some(text.parse().with_context(|| {
                format!("invalid metrics listen address `{text}` (expected host:port, e.g. 127.0.0.1:9464)")
            })?),
            None => None,
        };
        let trusted_proxies = match overrides.trusted_proxies.or(file.trusted_proxies) {
            Some(text) => vellum_http::TrustedProxies::parse(&text)
                .map_err(|error| anyhow::anyhow!("invalid trusted proxies: {error}"))?,
            None => vellum_http::TrustedProxies::default(),
        };
        let api_key = match overrides.api_key.or(file.api_key).filter(|key| !key.is_empty()) {
            Some(text) => {
                Some(ApiKeySecret::parse(&text).map_err(|error| anyhow::anyhow!("invalid VELLUM_API_KEY: {error}"))?)
            }
            None => None,
        };
        let max_body_bytes = file
            .max_body_bytes
            .unwrap_or_else(|| vellum_http::HttpConfig::default().max_body_bytes);
        anyhow::ensure!(max_body_bytes >= 1024, "max_body_bytes must be at least 1024");
        let rate_limit =
            match overrides.rate_limit.or(file.rate_limit).filter(|text| !text.is_empty()) {
                Some(text) => Some(vellum_http::RateLimit::parse(&text).with_context(|| {
                    format!("invalid rate limit `{text}` (expected REQUESTS/SECONDS, e.g. 6000/60)")
                })?),
                None => None,
            };
        let log_name = overrides
            .log_name
            .or(file.log_name)
            .unwrap_or_else(|| DEFAULT_LOG_NAME.to_owned());
        anyhow::ensure!(
            vellum_core::checkpoint::is_valid_key_name(&log_name),
            "invalid log name `{log_name}`: it must be non-empty, without spaces or '+'"
        );
        let public_url = overrides
            .public_url
            .or(file.public_url)
            .filter(|url| !url.is_empty())
            .map(|url| url.trim_end_matches('/').to_owned());
        if let Some(url) = &public_url {
            anyhow::ensure!(
                url.starts_with("http://") || url.starts_with("https://"),
                "invalid public URL `{url}`: it must start with http:// or https://"
            );
        }
        let portal = portal_config(
            overrides.portal_name.or(file.portal_name),
            overrides.portal_logo.or(file.portal_logo),
            overrides
                .viewer_allowed_origins
                .or(file.viewer_allowed_origins)
                .as_deref(),
        )?;
        let defaults = ExportOptions::default();
        let workers = overrides
            .export_workers
            .or(file.export_workers)
            .unwrap_or(defaults.workers);
        anyhow::ensure!((1..=64).contains(&workers), "export_workers must be between 1 and 64");
        let s3 = match overrides
            .export_s3_bucket
            .or(file.export_s3_bucket)
            .filter(|bucket| !bucket.is_empty())
        {
            Some(bucket) => Some(S3Options {
                bucket,
                endpoint: overrides
                    .export_s3_endpoint
                    .or(file.export_s3_endpoint)
                    .filter(|text| !text.is_empty()),
                region: overrides
                    .export_s3_region
                    .or(file.export_s3_region)
                    .filter(|text| !text.is_empty()),
                prefix: file.export_s3_prefix.unwrap_or_default(),
            }),
            None => None,
        };
        let exports = ExportOptions {
            workers,
            ttl: file.export_ttl_seconds.map_or(defaults.ttl, Duration::from_secs),
            link_lifetime: file
                .export_link_seconds
                .map_or(defaults.link_lifetime, Duration::from_secs),
            s3,
        };
        anyhow::ensure!(
            exports.link_lifetime >= Duration::from_secs(1) && exports.ttl >= Duration::from_secs(1),
            "export_link_seconds and export_ttl_seconds must be at least 1"
        );
        let admin = match (
            overrides
                .admin_email
                .or(file.admin_email)
                .filter(|text| !text.is_empty()),
            overrides
                .admin_password
                .or(file.admin_password)
                .filter(|text| !text.is_empty()),
        ) {
            (Some(email), Some(password)) => {
                let email = vellum_core::operator::Email::parse(&email)
                    .map_err(|error| anyhow::anyhow!("invalid VELLUM_ADMIN_EMAIL `{email}`: {error}"))?;
                vellum_core::operator::validate_new_password(&password)
                    .map_err(|error| anyhow::anyhow!("invalid VELLUM_ADMIN_PASSWORD: {error}"))?;
                Some(AdminBootstrap { email, password })
            }
            (None, None) => None,
            _ => anyhow::bail!("VELLUM_ADMIN_EMAIL and VELLUM_ADMIN_PASSWORD go together: set both or neither"),
        };
        let default_limits = vellum_http::ServerLimits::default();
        let seconds =
            |flag: Option<u64>, file: Option<u64>, default: Duration, name: &str| -> anyhow::Result<Duration> {
                let value = flag.or(file).map_or(default, Duration::from_secs);
                anyhow::ensure!(
                    (1..=86_400).contains(&value.as_secs()),
                    "{name} must be between 1 and 86400 seconds"
                );
                Ok(value)
            };
        let limits = vellum_http::ServerLimits {
            header_read_timeout: seconds(
                overrides.header_read_timeout_seconds,
                file.header_read_timeout_seconds,
                default_limits.header_read_timeout,
                "header_read_timeout_seconds",
            )?,
            body_read_timeout: seconds(
                overrides.body_read_timeout_seconds,
                file.body_read_timeout_seconds,
                default_limits.body_read_timeout,
                "body_read_timeout_seconds",
            )?,
            idle_timeout: seconds(
                overrides.idle_timeout_seconds,
                file.idle_timeout_seconds,
                default_limits.idle_timeout,
                "idle_timeout_seconds",
            )?,
            write_stall_timeout: seconds(
                overrides.write_stall_timeout_seconds,
                file.write_stall_timeout_seconds,
                default_limits.write_stall_timeout,
                "write_stall_timeout_seconds",
            )?,
            max_connections: overrides
                .max_connections
                .or(file.max_connections)
                .unwrap_or(default_limits.max_connections),
        };
        anyhow::ensure!(
            (1..=1_000_000).contains(&limits.max_connections),
            "max_connections must be between 1 and 1000000"
        );
        let max_password_checks = overrides
            .max_password_checks
            .or(file.max_password_checks)
            .unwrap_or(vellum_http::DEFAULT_MAX_PASSWORD_CHECKS);
        anyhow::ensure!(
            (1..=64).contains(&max_password_checks),
            "max_password_checks must be between 1 and 64"
        );
        let default_retention_days = match overrides
            .default_retention_days
            .map(i64::from)
            .or(file.default_retention_days)
        {
            None => vellum_core::retention::DEFAULT_RETENTION_DAYS,
            Some(days) => {
                anyhow::ensure!(
                    vellum_core::retention::is_valid_days(days),
                    "invalid default retention of {days} days: use 30 to 330 in steps of 30, or 365 to 3650 in steps of 365 (the periods an organization may set)"
                );
                u32::try_from(days)?
            }
        };
        let purge_interval_seconds = overrides
            .purge_interval_seconds
            .or(file.purge_interval_seconds)
            .unwrap_or(vellum_retention::DEFAULT_PURGE_INTERVAL.as_secs());
        anyhow::ensure!(
            purge_interval_seconds <= 7 * 24 * 3600,
            "purge_interval must be at most 7 days (in seconds; 0 turns the periodic purge off)"
        );
        let database_max_connections = overrides
            .database_max_connections
            .or(file.database_max_connections)
            .unwrap_or(DEFAULT_DATABASE_MAX_CONNECTIONS);
        anyhow::ensure!(
            (2..=1_000).contains(&database_max_connections),
            "database_max_connections must be between 2 and 1000"
        );
        Ok(Self {
            database_max_connections,
            database_ca_file: overrides.database_ca_file.or(file.database_ca_file),
            limits,
            max_password_checks,
            default_retention_days,
            purge_interval: (purge_interval_seconds > 0).then(|| Duration::from_secs(purge_interval_seconds)),
            stream_allow_private_destinations: overrides
                .stream_allow_private_destinations
                .or(file.stream_allow_private_destinations)
                .unwrap_or(false),
            portal,
            admin,
            dashboard_dir: overrides.dashboard_dir,
            log_name,
            public_url,
            exports,
            signing_key_file: overrides.signing_key_file.or(file.signing_key_file),
            rate_limit,
            listen,
            metrics_listen,
            trusted_proxies,
            data_dir: overrides
                .data_dir
                .or(file.data_dir)
                .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)),
            database_url: overrides
                .database_url
                .or(file.database_url)
                .filter(|url| !url.is_empty()),
            api_key,
            log_format: overrides.log_format.or(file.log_format).unwrap_or_default(),
            max_body_bytes,
            shutdown_grace: file
                .shutdown_grace_seconds
                .map_or(vellum_http::DEFAULT_SHUTDOWN_GRACE, Duration::from_secs),
        })
    }

    /// Settings for a test: a fresh data directory, an ephemeral port on loopback.
    pub fn for_tests(data_dir: impl Into<PathBuf>, api_key: ApiKeySecret) -> Self {
        Self {
            listen: "127.0.0.1:0".parse().expect("valid address"),
            metrics_listen: None,
            trusted_proxies: vellum_http::TrustedProxies::default(),
            data_dir: data_dir.into(),
            database_url: None,
            database_max_connections: DEFAULT_DATABASE_MAX_CONNECTIONS,
            database_ca_file: None,
            api_key: Some(api_key),
            log_format: LogFormat::Text,
            max_body_bytes: vellum_http::HttpConfig::default().max_body_bytes,
            shutdown_grace: Duration::from_secs(5),
            rate_limit: None,
            log_name: DEFAULT_LOG_NAME.to_owned(),
            signing_key_file: None,
            public_url: None,
            exports: ExportOptions::default(),
            admin: None,
            dashboard_dir: None,
            limits: vellum_http::ServerLimits::default(),
            max_password_checks: vellum_http::DEFAULT_MAX_PASSWORD_CHECKS,
            default_retention_days: vellum_core::retention::DEFAULT_RETENTION_DAYS,
            // Tests send events from long ago; the ones about purging turn it on.
            purge_interval: None,
            stream_allow_private_destinations: false,
            portal: vellum_http::PortalConfig::default(),
        }
    }

    /// The server limits in force: `max_connections` lowered, when needed, so that every
    /// connection fits in the process's open-file limit with room for the store's files.
    pub fn effective_limits(&self) -> vellum_http::ServerLimits {
        let open_files = rustix::process::getrlimit(rustix::process::Resource::Nofile)
            .current
            .unwrap_or(u64::MAX);
        vellum_http::ServerLimits {
            max_connections: vellum_http::ServerLimits::connections_within(self.limits.max_connections, open_files),
            ..self.limits
        }
    }
}

/// The portal's settings, checked: a name of at most 100 characters, a logo file that is an
/// image of at most 256 KiB, and origins of the form `https://host[:port]`.
fn portal_config(
    name: Option<String>,
    logo: Option<PathBuf>,
    origins: Option<&str>,
) -> anyhow::Result<vellum_http::PortalConfig> {
    let application_name = name.map(|name| name.trim().to_owned()).filter(|name| !name.is_empty());
    if let Some(name) = &application_name {
        anyhow::ensure!(
            name.chars().count() <= 100 && !name.chars().any(char::is_control),
            "portal_name must be at most 100 characters, without control characters"
        );
    }
    let logo = match logo {
        None => None,
        Some(path) => {
            let bytes = std::fs::read(&path)
                .map_err(|error| anyhow::anyhow!("cannot read the portal logo {}: {error}", path.display()))?;
            let name = path.file_name().and_then(|name| name.to_str()).unwrap_or_default();
            Some(
                vellum_http::PortalLogo::from_file(name, bytes)
                    .map_err(|message| anyhow::anyhow!("portal logo {}: {message}", path.display()))?,
            )
        }
    };
    let mut viewer_allowed_origins = Vec::new();
    for origin in origins.into_iter().flat_map(|text| text.split(',')) {
        let origin = origin.trim().trim_end_matches('/');
        if origin.is_empty() {
            continue;
        }
        let rest = origin
            .strip_prefix("https://")
            .or_else(|| origin.strip_prefix("http://"));
        anyhow::ensure!(
            rest.is_some_and(|host| !host.is_empty()
                && host
                    .bytes()
                    .all(|byte| byte.is_ascii_alphanumeric() || b".-:[]".contains(&byte))),
            "invalid viewer origin `{origin}`: it must be scheme://host[:port], without a path"
        );
        // As browsers send it: lower case, without the scheme's default port.
        let origin = origin.to_ascii_lowercase();
        let origin = origin
            .strip_suffix(":443")
            .filter(|_| origin.starts_with("https://"))
            .or_else(|| origin.strip_suffix(":80").filter(|_| origin.starts_with("http://")))
            .map_or_else(|| origin.clone(), str::to_owned);
        viewer_allowed_origins.push(origin);
    }
    Ok(vellum_http::PortalConfig {
        application_name,
        logo,
        viewer_allowed_origins,
        ..vellum_http::PortalConfig::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> FileConfig {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn flags_and_env_beat_the_file_which_beats_defaults() {
        let from_file = file("listen = \"127.0.0.3:9000\"\ndata_dir = \"/from/file\"\nlog_format = \"json\"");
        let settings = Settings::resolve(
            Overrides {
                listen: Some("127.0.0.1:7000".into()),
                ..Overrides::default()
            },
            from_file,
        )
        .unwrap();
        assert_eq!(settings.listen.to_string(), "127.0.0.1:7000");
        assert_eq!(settings.data_dir, PathBuf::from("/from/file"));
        assert_eq!(settings.log_format, LogFormat::Json);

        let defaults = Settings::resolve(Overrides::default(), FileConfig::default()).unwrap();
        assert_eq!(defaults.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(defaults.data_dir, PathBuf::from(DEFAULT_DATA_DIR));
        assert!(defaults.api_key.is_none() && defaults.database_url.is_none());
    }

    #[test]
    fn rejects_unknown_keys_and_bad_values() {
        assert!(toml::from_str::<FileConfig>("lsiten = \"x\"").is_err());
        assert!(
            Settings::resolve(
                Overrides {
                    listen: Some("nope".into()),
                    ..Overrides::default()
                },
                FileConfig::default()
            )
            .is_err()
        );
        assert!(
            Settings::resolve(
                Overrides {
                    api_key: Some("pk_123".into()),
                    ..Overrides::default()
                },
                FileConfig::default()
            )
            .is_err()
        );
    }

    #[test]
    fn the_purge_interval_is_layered_and_zero_turns_the_pass_off() {
        let resolve = |flag: Option<u64>, file_text: &str| {
            Settings::resolve(
                Overrides {
                    purge_interval_seconds: flag,
                    ..Overrides::default()
                },
                file(file_text),
            )
        };
        assert_eq!(
            resolve(None, "").unwrap().purge_interval,
            Some(vellum_retention::DEFAULT_PURGE_INTERVAL)
        );
        assert_eq!(
            resolve(None, "purge_interval_seconds = 60").unwrap().purge_interval,
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            resolve(Some(0), "purge_interval_seconds = 60").unwrap().purge_interval,
            None
        );
        assert!(resolve(Some(8 * 24 * 3600), "").is_err());
    }

    #[test]
    fn the_default_retention_is_layered_and_checked_like_an_organization_s() {
        let resolve = |flag: Option<u32>, file_text: &str| {
            Settings::resolve(
                Overrides {
                    default_retention_days: flag,
                    ..Overrides::default()
                },
                file(file_text),
            )
        };
        assert_eq!(
            resolve(None, "").unwrap().default_retention_days,
            vellum_core::retention::DEFAULT_RETENTION_DAYS
        );
        assert_eq!(
            resolve(None, "default_retention_days = 90")
                .unwrap()
                .default_retention_days,
            90
        );
        assert_eq!(
            resolve(Some(3650), "default_retention_days = 90")
                .unwrap()
                .default_retention_days,
            3650,
            "flag (or environment) beats the file"
        );
        for bad in [0_i64, 31, 360, 3651, -30, 4_294_967_326] {
            let error = resolve(None, &format!("default_retention_days = {bad}")).unwrap_err();
            assert!(
                error.to_string().contains("invalid default retention"),
                "{bad}: {error}"
            );
        }
        assert!(resolve(Some(7), "").is_err());
    }

    #[test]
    fn debug_hides_secrets() {
        let settings = Settings::resolve(
            Overrides {
                api_key: Some("sk_test_supersecretvalue1234".into()),
                database_url: Some("postgres://user:hunter2@db/vellum".into()),
                ..Overrides::default()
            },
            FileConfig::default(),
        )
        .unwrap();
        let debug = format!("{settings:?}");
        assert!(!debug.contains("supersecret") && !debug.contains("hunter2"), "{debug}");
    }

    #[test]
    fn viewer_origins_are_read_as_browsers_send_them() {
        let portal = portal_config(
            Some("  Acme  ".into()),
            None,
            Some("https://App.Example.com:443/, http://localhost:3000,http://intranet:80,, https://x.io:8443"),
        )
        .unwrap();
        assert_eq!(portal.application_name.as_deref(), Some("Acme"));
        assert_eq!(
            portal.viewer_allowed_origins,
            vec![
                "https://app.example.com",
                "http://localhost:3000",
                "http://intranet",
                "https://x.io:8443"
            ]
        );
        for bad in ["app.example.com", "https://x.io/path", "ftp://x.io", "https://"] {
            assert!(portal_config(None, None, Some(bad)).is_err(), "{bad}");
        }
        assert!(portal_config(None, Some(PathBuf::from("/nonexistent/logo.png")), None).is_err());
    }
}
