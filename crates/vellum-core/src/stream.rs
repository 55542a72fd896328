//! Log streams: where an organization's events are delivered, the settings of each destination
//! (the part shown back and the write-only secrets), the states a stream goes through, what is
//! sent to each destination, how its answer is read, and when to try again.
//!
//! Everything here is pure: the delivery service draws the random bytes (signing secrets,
//! jitter), reads the clock and does the I/O, and asks this module what to send and what an
//! answer means.
//!
//! **Invariants:**
//! - Secrets never appear in [`Destination`] (which is shown back and logged) and [`StreamSecrets`]'s
//!   `Debug` prints none of them.
//! - A batch is a run of consecutive deliverable events in log order; an encoder takes as many of
//!   them as fit its destination's limits, and always at least one.
//! - An answer is [`Verdict::Accepted`] only when the destination said it took the whole batch.

use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::Sha256;

use crate::ValidationErrors;

/// The destinations WorkOS names (`type` on the wire).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StreamType {
    /// Datadog's logs intake (v2).
    Datadog,
    /// Splunk's HTTP Event Collector.
    Splunk,
    /// An Amazon S3 bucket.
    S3,
    /// A Google Cloud Storage bucket.
    GoogleCloudStorage,
    /// Any HTTPS endpoint, signed per Standard Webhooks.
    GenericHttps,
    /// Azure Monitor's Logs Ingestion API.
    MicrosoftSentinel,
    /// Snowflake's SQL API.
    Snowflake,
}

impl StreamType {
    /// Every type, in the order the docs list them.
    pub const ALL: [Self; 7] = [
        Self::Datadog,
        Self::Splunk,
        Self::S3,
        Self::GoogleCloudStorage,
        Self::GenericHttps,
        Self::MicrosoftSentinel,
        Self::Snowflake,
    ];

    /// The types this release delivers to.
    pub const SERVED: [Self; 7] = [
        Self::Datadog,
        Self::Splunk,
        Self::S3,
        Self::GoogleCloudStorage,
        Self::GenericHttps,
        Self::MicrosoftSentinel,
        Self::Snowflake,
    ];

    /// The wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Datadog => "Datadog",
            Self::Splunk => "Splunk",
            Self::S3 => "S3",
            Self::GoogleCloudStorage => "GoogleCloudStorage",
            Self::GenericHttps => "GenericHttps",
            Self::MicrosoftSentinel => "MicrosoftSentinel",
            Self::Snowflake => "Snowflake",
        }
    }

    /// Parses the wire name (exactly).
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == text)
    }

    /// Whether this release delivers to this type.
    pub fn is_served(self) -> bool {
        Self::SERVED.contains(&self)
    }
}

/// A stream's state, as WorkOS names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StreamState {
    /// Delivering (or caught up).
    Active,
    /// The last delivery failed in a way worth retrying; retries continue, and the state goes
    /// back to `active` with the first accepted batch.
    Error,
    /// The destination refused the credentials or the settings; nothing is retried until the
    /// stream is updated.
    Invalid,
    /// Disabled by hand; its position is kept.
    Inactive,
}

impl StreamState {
    /// The wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Error => "error",
            Self::Invalid => "invalid",
            Self::Inactive => "inactive",
        }
    }

    /// Parses the wire name.
    pub fn parse(text: &str) -> Option<Self> {
        [Self::Active, Self::Error, Self::Invalid, Self::Inactive]
            .into_iter()
            .find(|state| state.as_str() == text)
    }

    /// Whether deliveries run in this state.
    pub const fn delivers(self) -> bool {
        matches!(self, Self::Active | Self::Error)
    }
}

/// Datadog sites (WorkOS's regions, and the sites Datadog lists since).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DatadogRegion {
    /// `datadoghq.com`.
    Us1,
    /// `us3.datadoghq.com`.
    Us3,
    /// `us5.datadoghq.com`.
    Us5,
    /// `datadoghq.eu`.
    Eu1,
    /// `ap1.datadoghq.com`.
    Ap1,
    /// `ap2.datadoghq.com`.
    Ap2,
    /// `ddog-gov.com`.
    Us1Fed,
}

impl DatadogRegion {
    const ALL: [Self; 7] = [
        Self::Us1,
        Self::Us3,
        Self::Us5,
        Self::Eu1,
        Self::Ap1,
        Self::Ap2,
        Self::Us1Fed,
    ];

    /// The wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Us1 => "US1",
            Self::Us3 => "US3",
            Self::Us5 => "US5",
            Self::Eu1 => "EU1",
            Self::Ap1 => "AP1",
            Self::Ap2 => "AP2",
            Self::Us1Fed => "US1-FED",
        }
    }

    /// Parses the wire name, in any case.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|region| region.as_str().eq_ignore_ascii_case(text))
    }

    /// The logs intake endpoint of the site.
    pub const fn intake_url(self) -> &'static str {
        match self {
            Self::Us1 => "https://http-intake.logs.datadoghq.com/api/v2/logs",
            Self::Us3 => "https://http-intake.logs.us3.datadoghq.com/api/v2/logs",
            Self::Us5 => "https://http-intake.logs.us5.datadoghq.com/api/v2/logs",
            Self::Eu1 => "https://http-intake.logs.datadoghq.eu/api/v2/logs",
            Self::Ap1 => "https://http-intake.logs.ap1.datadoghq.com/api/v2/logs",
            Self::Ap2 => "https://http-intake.logs.ap2.datadoghq.com/api/v2/logs",
            Self::Us1Fed => "https://http-intake.logs.ddog-gov.com/api/v2/logs",
        }
    }
}

/// How a generic HTTPS destination receives a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyFormat {
    /// One JSON array of items (`application/json`).
    Json,
    /// One item per line (`application/x-ndjson`).
    Ndjson,
}

impl BodyFormat {
    /// The wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Json => "json",
            Self::Ndjson => "ndjson",
        }
    }
}

/// A destination and its settings that may be shown back (no secrets).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Destination {
    /// Datadog's logs intake.
    Datadog {
        /// The site.
        region: DatadogRegion,
        /// An intake URL used instead of the site's (a proxy, or a test receiver).
        url: Option<String>,
        /// `ddsource` of every entry.
        source: String,
    },
    /// Splunk's HTTP Event Collector.
    Splunk {
        /// The collector's base URL (`https://host:8088`); events go to `/services/collector/event`.
        url: String,
        /// The index events go to, when not the token's default.
        index: Option<String>,
        /// `source` of every event.
        source: String,
    },
    /// Any HTTPS endpoint.
    GenericHttps {
        /// Where batches are posted.
        url: String,
        /// JSON array or NDJSON.
        format: BodyFormat,
        /// The names of the extra headers sent (their values are secrets).
        header_names: Vec<String>,
    },
    /// A bucket of Amazon S3 or an S3-compatible store.
    S3 {
        /// The bucket.
        bucket: String,
        /// Its region.
        region: String,
        /// Prepended to every object key (`audit/` puts objects under `audit/`).
        prefix: String,
        /// An S3-compatible endpoint instead of AWS's.
        endpoint: Option<String>,
        /// JSON array or NDJSON objects.
        format: BodyFormat,
    },
    /// Microsoft Sentinel, through Azure Monitor's Logs Ingestion API.
    MicrosoftSentinel {
        /// The data collection endpoint (or the rule's own logs ingestion endpoint).
        endpoint: String,
        /// The data collection rule's immutable id (`dcr-…`).
        rule_id: String,
        /// The stream declared in the rule (`Custom-…`).
        stream_name: String,
        /// The Entra tenant of the app registration.
        tenant_id: String,
        /// The app registration's client id.
        client_id: String,
        /// Another token authority than Entra's public one (a sovereign cloud, a test).
        authority: Option<String>,
    },
    /// A Snowflake table, through the SQL API with key-pair authentication.
    Snowflake {
        /// The account identifier (`orgname-account` or an account locator).
        account: String,
        /// The user whose public key is registered.
        user: String,
        /// Where rows go: database, schema and table.
        database: String,
        /// See `database`.
        schema: String,
        /// See `database`.
        table: String,
        /// The warehouse that runs the inserts, when not the user's default.
        warehouse: Option<String>,
        /// The role that runs them, when not the user's default.
        role: Option<String>,
        /// Another base URL than `https://{account}.snowflakecomputing.com` (private link, a test).
        url: Option<String>,
    },
    /// A bucket of Google Cloud Storage, through its S3-compatible XML API and HMAC keys.
    GoogleCloudStorage {
        /// The bucket.
        bucket: String,
        /// Prepended to every object key.
        prefix: String,
        /// Another endpoint than `https://storage.googleapis.com`.
        endpoint: Option<String>,
        /// JSON array or NDJSON objects.
        format: BodyFormat,
    },
}

/// Microsoft Entra ID, which issues the tokens of the Logs Ingestion API.
pub const ENTRA_AUTHORITY: &str = "https://login.microsoftonline.com";

/// The scope of a token for the Logs Ingestion API.
pub const AZURE_MONITOR_SCOPE: &str = "https://monitor.azure.com//.default";

/// The Logs Ingestion API version used.
pub const LOGS_INGESTION_API_VERSION: &str = "2023-01-01";

/// Google Cloud Storage's S3-compatible endpoint.
pub const GCS_ENDPOINT: &str = "https://storage.googleapis.com";

/// Object-storage streams write one object per window of this many log positions, named by the
/// window's first position: a window delivered again (a replay, a retry, a window that grew)
/// replaces its object, so a bucket never holds an event twice.
pub const OBJECT_WINDOW: u64 = 1_000;

/// The first position of the object window holding `position`.
pub const fn object_window(position: u64) -> u64 {
    position - position % OBJECT_WINDOW
}

impl Destination {
    /// Its type.
    pub const fn stream_type(&self) -> StreamType {
        match self {
            Self::Datadog { .. } => StreamType::Datadog,
            Self::Splunk { .. } => StreamType::Splunk,
            Self::GenericHttps { .. } => StreamType::GenericHttps,
            Self::S3 { .. } => StreamType::S3,
            Self::GoogleCloudStorage { .. } => StreamType::GoogleCloudStorage,
            Self::MicrosoftSentinel { .. } => StreamType::MicrosoftSentinel,
            Self::Snowflake { .. } => StreamType::Snowflake,
        }
    }

    /// Whether batches go to object storage (one object per window) rather than to an HTTP
    /// endpoint.
    pub const fn is_object_storage(&self) -> bool {
        matches!(self, Self::S3 { .. } | Self::GoogleCloudStorage { .. })
    }

    /// The settings as shown back and stored in the clear: the `config` object of the wire.
    pub fn to_json(&self) -> Value {
        match self {
            Self::Datadog { region, url, source } => {
                let mut object = serde_json::json!({"region": region.as_str(), "source": source});
                if let Some(url) = url {
                    object["url"] = Value::from(url.as_str());
                }
                object
            }
            Self::Splunk { url, index, source } => {
                let mut object = serde_json::json!({"url": url, "source": source});
                if let Some(index) = index {
                    object["index"] = Value::from(index.as_str());
                }
                object
            }
            Self::GenericHttps {
                url,
                format,
                header_names,
            } => serde_json::json!({"url": url, "format": format.as_str(), "header_names": header_names}),
            Self::S3 {
                bucket,
                region,
                prefix,
                endpoint,
                format,
            } => {
                let mut object = serde_json::json!({"bucket": bucket, "region": region, "prefix": prefix, "format": format.as_str()});
                if let Some(endpoint) = endpoint {
                    object["endpoint"] = Value::from(endpoint.as_str());
                }
                object
            }
            Self::GoogleCloudStorage {
                bucket,
                prefix,
                endpoint,
                format,
            } => {
                let mut object = serde_json::json!({"bucket": bucket, "prefix": prefix, "format": format.as_str()});
                if let Some(endpoint) = endpoint {
                    object["endpoint"] = Value::from(endpoint.as_str());
                }
                object
            }
            Self::MicrosoftSentinel {
                endpoint,
                rule_id,
                stream_name,
                tenant_id,
                client_id,
                authority,
            } => {
                let mut object = serde_json::json!({"endpoint": endpoint, "rule_id": rule_id, "stream_name": stream_name,
                                                    "tenant_id": tenant_id, "client_id": client_id});
                if let Some(authority) = authority {
                    object["authority"] = Value::from(authority.as_str());
                }
                object
            }
            Self::Snowflake {
                account,
                user,
                database,
                schema,
                table,
                warehouse,
                role,
                url,
            } => {
                let mut object = serde_json::json!({"account": account, "user": user, "database": database,
                                                    "schema": schema, "table": table});
                for (name, value) in [("warehouse", warehouse), ("role", role), ("url", url)] {
                    if let Some(value) = value {
                        object[name] = Value::from(value.as_str());
                    }
                }
                object
            }
        }
    }

    /// Reads what [`Destination::to_json`] wrote.
    pub fn from_json(kind: StreamType, value: &Value) -> Option<Self> {
        let text = |name: &str| value.get(name).and_then(Value::as_str).map(str::to_owned);
        Some(match kind {
            StreamType::Datadog => Self::Datadog {
                region: DatadogRegion::parse(value.get("region")?.as_str()?)?,
                url: text("url"),
                source: text("source")?,
            },
            StreamType::Splunk => Self::Splunk {
                url: text("url")?,
                index: text("index"),
                source: text("source")?,
            },
            StreamType::GenericHttps => Self::GenericHttps {
                url: text("url")?,
                format: stored_format(value)?,
                header_names: value
                    .get("header_names")?
                    .as_array()?
                    .iter()
                    .map(|name| name.as_str().map(str::to_owned))
                    .collect::<Option<_>>()?,
            },
            StreamType::S3 => Self::S3 {
                bucket: text("bucket")?,
                region: text("region")?,
                prefix: text("prefix")?,
                endpoint: text("endpoint"),
                format: stored_format(value)?,
            },
            StreamType::GoogleCloudStorage => Self::GoogleCloudStorage {
                bucket: text("bucket")?,
                prefix: text("prefix")?,
                endpoint: text("endpoint"),
                format: stored_format(value)?,
            },
            StreamType::MicrosoftSentinel => Self::MicrosoftSentinel {
                endpoint: text("endpoint")?,
                rule_id: text("rule_id")?,
                stream_name: text("stream_name")?,
                tenant_id: text("tenant_id")?,
                client_id: text("client_id")?,
                authority: text("authority"),
            },
            StreamType::Snowflake => Self::Snowflake {
                account: text("account")?,
                user: text("user")?,
                database: text("database")?,
                schema: text("schema")?,
                table: text("table")?,
                warehouse: text("warehouse"),
                role: text("role"),
                url: text("url"),
            },
        })
    }

    /// The URL requests go to (for object storage, the store's endpoint).
    pub fn endpoint(&self) -> String {
        match self {
            Self::Datadog { region, url, .. } => url.clone().unwrap_or_else(|| region.intake_url().to_owned()),
            Self::Splunk { url, .. } => format!("{}/services/collector/event", url.trim_end_matches('/')),
            Self::GenericHttps { url, .. } => url.clone(),
            Self::S3 { region, endpoint, .. } => endpoint
                .clone()
                .unwrap_or_else(|| format!("https://s3.{region}.amazonaws.com")),
            Self::GoogleCloudStorage { endpoint, .. } => endpoint.clone().unwrap_or_else(|| GCS_ENDPOINT.to_owned()),
            Self::MicrosoftSentinel {
                endpoint,
                rule_id,
                stream_name,
                ..
            } => format!(
                "{}/dataCollectionRules/{rule_id}/streams/{stream_name}?api-version={LOGS_INGESTION_API_VERSION}",
                endpoint.trim_end_matches('/')
            ),
            Self::Snowflake { account, url, .. } => format!(
                "{}/api/v2/statements",
                url.clone()
                    .unwrap_or_else(|| format!("https://{}.snowflakecomputing.com", account.to_ascii_lowercase()))
                    .trim_end_matches('/')
            ),
        }
    }

    /// The statement a Snowflake stream runs for each batch: the batch is bound once as a JSON
    /// array, and each element becomes a row (`event_id`, `event_type`, `occurred_at`,
    /// `organization_id`, `log_index`, `data`). Identifiers were checked to be plain (letters,
    /// digits, `_`, `$`), so they are written as they are.
    pub fn snowflake_statement(&self) -> Option<String> {
        match self {
            Self::Snowflake {
                database,
                schema,
                table,
                ..
            } => Some(format!(
                "INSERT INTO {database}.{schema}.{table} (event_id, event_type, occurred_at, organization_id, log_index, data) \
                 SELECT f.value:id::STRING, f.value:action::STRING, f.value:occurred_at::TIMESTAMP_TZ, \
                 f.value:organization_id::STRING, f.value:log_index::NUMBER, f.value \
                 FROM TABLE(FLATTEN(INPUT => PARSE_JSON(?))) f"
            )),
            _ => None,
        }
    }

    /// Where a Sentinel stream asks for its tokens (OAuth 2.0 client credentials).
    pub fn token_url(&self) -> Option<String> {
        match self {
            Self::MicrosoftSentinel {
                tenant_id, authority, ..
            } => Some(format!(
                "{}/{tenant_id}/oauth2/v2.0/token",
                authority.as_deref().unwrap_or(ENTRA_AUTHORITY).trim_end_matches('/')
            )),
            _ => None,
        }
    }
}

/// The form a Sentinel stream posts to its token URL.
pub fn token_request(client_id: &str, client_secret: &str) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", "client_credentials")
        .append_pair("client_id", client_id)
        .append_pair("client_secret", client_secret)
        .append_pair("scope", AZURE_MONITOR_SCOPE)
        .finish()
}

fn stored_format(value: &Value) -> Option<BodyFormat> {
    match value.get("format")?.as_str()? {
        "json" => Some(BodyFormat::Json),
        "ndjson" => Some(BodyFormat::Ndjson),
        _ => None,
    }
}

/// One signing secret of a generic HTTPS stream (`whsec_` + base64 of 32 bytes).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SigningSecret {
    /// The 32 key bytes.
    #[serde(with = "base64_bytes")]
    pub key: Vec<u8>,
    /// When a rotation replaced it: it keeps signing beside the new one until then plus
    /// [`ROTATION_OVERLAP`] (milliseconds).
    pub retired_at: Option<i64>,
}

impl SigningSecret {
    /// The text shown once, `whsec_…`.
    pub fn display(&self) -> String {
        format!("whsec_{}", STANDARD.encode(&self.key))
    }
}

/// How long a replaced signing secret keeps signing beside the new one.
pub const ROTATION_OVERLAP: Duration = Duration::from_secs(24 * 3600);

/// A stream's write-only settings, stored encrypted.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamSecrets {
    /// Datadog's API key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
    /// Splunk's HEC token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// Extra headers of a generic HTTPS stream (names and values).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<(String, String)>,
    /// Snowflake: the user's private key (PKCS #8 PEM, unencrypted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key: Option<String>,
    /// Microsoft Sentinel: the app registration's client secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    /// Object storage: the access key id (S3) or HMAC access id (Google Cloud Storage).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_key_id: Option<String>,
    /// Object storage: the secret access key or HMAC secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_access_key: Option<String>,
    /// A generic HTTPS stream's signing secrets, newest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub signing_secrets: Vec<SigningSecret>,
}

impl fmt::Debug for StreamSecrets {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("StreamSecrets")
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("client_secret", &self.client_secret.as_ref().map(|_| "<redacted>"))
            .field("private_key", &self.private_key.as_ref().map(|_| "<redacted>"))
            .field("access_key_id", &self.access_key_id)
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| "<redacted>"),
            )
            .field(
                "headers",
                &self.headers.iter().map(|(name, _)| name).collect::<Vec<_>>(),
            )
            .field("signing_secrets", &self.signing_secrets.len())
            .finish()
    }
}

mod base64_bytes {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&STANDARD.encode(bytes))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(deserializer)?;
        STANDARD.decode(text).map_err(serde::de::Error::custom)
    }
}

/// Longest URL accepted.
pub const MAX_URL_LENGTH: usize = 2_048;
/// Longest secret, header value, index or source accepted.
pub const MAX_SETTING_LENGTH: usize = 4_096;
/// Most extra headers of a generic HTTPS stream.
pub const MAX_HEADERS: usize = 20;
/// Streams one organization may have.
pub const MAX_STREAMS_PER_ORGANIZATION: usize = 10;

/// Headers a stream may not set: Vellum sets them, or they would change how the request is framed.
const RESERVED_HEADERS: [&str; 9] = [
    "host",
    "content-length",
    "content-type",
    "content-encoding",
    "transfer-encoding",
    "connection",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
];

/// What a create or an update asks for, read from the wire's `config`.
#[derive(Debug)]
pub struct ParsedSettings {
    /// The settings shown back.
    pub destination: Destination,
    /// The write-only ones (secrets given now, or kept from before).
    pub secrets: StreamSecrets,
}

/// Reads a `config` object for `kind`. On an update, `previous` supplies secrets that are not
/// given again. `allow_plain_http` admits `http://` URLs (only with the operator's setting for
/// private destinations, for development and tests).
pub fn parse_settings(
    kind: StreamType,
    config: &Value,
    previous: Option<&StreamSecrets>,
    allow_plain_http: bool,
) -> Result<ParsedSettings, ValidationErrors> {
    let mut errors = ValidationErrors::new();
    let Some(object) = config.as_object() else {
        errors.push("config", "invalid_type", "config must be an object");
        return Err(errors);
    };
    let known: &[&str] = match kind {
        StreamType::Datadog => &["region", "api_key", "url", "source"],
        StreamType::Splunk => &["url", "token", "index", "source"],
        StreamType::GenericHttps => &["url", "format", "headers"],
        StreamType::S3 => &[
            "bucket",
            "region",
            "prefix",
            "endpoint",
            "format",
            "access_key_id",
            "secret_access_key",
        ],
        StreamType::GoogleCloudStorage => &[
            "bucket",
            "prefix",
            "endpoint",
            "format",
            "access_key_id",
            "secret_access_key",
        ],
        StreamType::MicrosoftSentinel => &[
            "endpoint",
            "rule_id",
            "stream_name",
            "tenant_id",
            "client_id",
            "client_secret",
            "authority",
        ],
        StreamType::Snowflake => &[
            "account",
            "user",
            "database",
            "schema",
            "table",
            "warehouse",
            "role",
            "url",
            "private_key",
        ],
    };
    for name in object.keys() {
        if !known.contains(&name.as_str()) {
            errors.push(
                format!("config.{}", clip(name)),
                "unknown_field",
                format!("{} streams have no setting with this name", kind.as_str()),
            );
        }
    }
    let previous = previous.cloned().unwrap_or_default();
    let parsed = match kind {
        StreamType::Datadog => {
            let region = match object.get("region") {
                None => Some(DatadogRegion::Us1),
                Some(value) => match value.as_str().and_then(DatadogRegion::parse) {
                    Some(region) => Some(region),
                    None => {
                        errors.push(
                            "config.region",
                            "invalid",
                            "region must be one of US1, US3, US5, EU1, AP1, AP2, US1-FED",
                        );
                        None
                    }
                },
            };
            let url = optional_url(object, "url", allow_plain_http, &mut errors);
            let source = optional_text(object, "source", &mut errors).unwrap_or_else(|| "vellum".to_owned());
            let api_key = secret(object, "api_key", previous.api_key, &mut errors);
            region.map(|region| ParsedSettings {
                destination: Destination::Datadog { region, url, source },
                secrets: StreamSecrets {
                    api_key,
                    ..StreamSecrets::default()
                },
            })
        }
        StreamType::Splunk => {
            let url = required_url(object, "url", allow_plain_http, &mut errors);
            let index = optional_text(object, "index", &mut errors);
            let source = optional_text(object, "source", &mut errors).unwrap_or_else(|| "vellum".to_owned());
            let token = secret(object, "token", previous.token, &mut errors);
            url.map(|url| ParsedSettings {
                destination: Destination::Splunk { url, index, source },
                secrets: StreamSecrets {
                    token,
                    ..StreamSecrets::default()
                },
            })
        }
        StreamType::MicrosoftSentinel => {
            let endpoint = required_url(object, "endpoint", allow_plain_http, &mut errors);
            let authority = optional_url(object, "authority", allow_plain_http, &mut errors);
            let mut name = |field: &str| {
                if !object.contains_key(field) {
                    errors.push(format!("config.{field}"), "required", format!("{field} is required"));
                    return None;
                }
                let value = optional_text(object, field, &mut errors)?;
                if value.len() <= 256
                    && value
                        .bytes()
                        .all(|byte| byte.is_ascii_alphanumeric() || b"-_.".contains(&byte))
                {
                    Some(value)
                } else {
                    errors.push(
                        format!("config.{field}"),
                        "invalid",
                        format!("{field} is at most 256 letters, digits, hyphens, underscores and dots"),
                    );
                    None
                }
            };
            let (rule_id, stream_name, tenant_id, client_id) = (
                name("rule_id"),
                name("stream_name"),
                name("tenant_id"),
                name("client_id"),
            );
            let client_secret = secret(object, "client_secret", previous.client_secret, &mut errors);
            match (endpoint, rule_id, stream_name, tenant_id, client_id) {
                (Some(endpoint), Some(rule_id), Some(stream_name), Some(tenant_id), Some(client_id)) => {
                    Some(ParsedSettings {
                        destination: Destination::MicrosoftSentinel {
                            endpoint,
                            rule_id,
                            stream_name,
                            tenant_id,
                            client_id,
                            authority,
                        },
                        secrets: StreamSecrets {
                            client_secret,
                            ..StreamSecrets::default()
                        },
                    })
                }
                _ => None,
            }
        }
        StreamType::Snowflake => {
            let url = optional_url(object, "url", allow_plain_http, &mut errors);
            let mut identifier = |field: &str, required: bool, account: bool| {
                if !object.contains_key(field) {
                    if required {
                        errors.push(format!("config.{field}"), "required", format!("{field} is required"));
                    }
                    return None;
                }
                let value = optional_text(object, field, &mut errors)?;
                let plain = value.len() <= 255
                    && value
                        .bytes()
                        .next()
                        .is_some_and(|byte| byte.is_ascii_alphabetic() || byte == b'_')
                    && value.bytes().all(|byte| {
                        byte.is_ascii_alphanumeric()
                            || byte == b'_'
                            || (if account { &b"-."[..] } else { &b"$"[..] }).contains(&byte)
                    });
                if plain {
                    Some(value)
                } else {
                    errors.push(
                        format!("config.{field}"),
                        "invalid",
                        if account {
                            format!("{field} is an account identifier: letters, digits, `_`, `-` and `.`")
                        } else {
                            format!(
                                "{field} is a plain identifier: letters, digits, `_` and `$`, not starting with a digit"
                            )
                        },
                    );
                    None
                }
            };
            let account = identifier("account", true, true);
            let user = identifier("user", true, false);
            let database = identifier("database", true, false);
            let schema = identifier("schema", true, false);
            let table = identifier("table", true, false);
            let warehouse = identifier("warehouse", false, false);
            let role = identifier("role", false, false);
            // A PEM key spans lines: the one secret that may hold line breaks.
            let private_key = match object.get("private_key") {
                None => {
                    if previous.private_key.is_none() {
                        errors.push("config.private_key", "required", "private_key is required");
                    }
                    previous.private_key
                }
                Some(Value::String(pem))
                    if !pem.is_empty()
                        && pem.len() <= 16 * 1024
                        && pem
                            .chars()
                            .all(|char| char == '\n' || char == '\r' || !char.is_control()) =>
                {
                    Some(pem.clone())
                }
                Some(_) => {
                    errors.push(
                        "config.private_key",
                        "invalid",
                        "private_key is a PEM key of at most 16 KiB",
                    );
                    None
                }
            };
            if let Some(key) = &private_key
                && !key.contains("-----BEGIN PRIVATE KEY-----")
            {
                errors.push(
                    "config.private_key",
                    "invalid",
                    "private_key is an unencrypted PKCS #8 PEM key (-----BEGIN PRIVATE KEY-----)",
                );
            }
            match (account, user, database, schema, table) {
                (Some(account), Some(user), Some(database), Some(schema), Some(table)) => Some(ParsedSettings {
                    destination: Destination::Snowflake {
                        account,
                        user,
                        database,
                        schema,
                        table,
                        warehouse,
                        role,
                        url,
                    },
                    secrets: StreamSecrets {
                        private_key,
                        ..StreamSecrets::default()
                    },
                }),
                _ => None,
            }
        }
        StreamType::S3 | StreamType::GoogleCloudStorage => {
            let bucket = bucket(object, &mut errors);
            let prefix = prefix(object, &mut errors);
            let endpoint = optional_url(object, "endpoint", allow_plain_http, &mut errors);
            let format = body_format(object, BodyFormat::Ndjson, &mut errors);
            let region = if kind == StreamType::S3 {
                match optional_text(object, "region", &mut errors) {
                    None => Some("us-east-1".to_owned()),
                    Some(region)
                        if region.len() <= 32
                            && region
                                .bytes()
                                .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'-') =>
                    {
                        Some(region)
                    }
                    Some(_) => {
                        errors.push(
                            "config.region",
                            "invalid",
                            "region is an AWS region name, such as us-east-1",
                        );
                        None
                    }
                }
            } else {
                None
            };
            let access_key_id = secret(object, "access_key_id", previous.access_key_id, &mut errors);
            let secret_access_key = secret(object, "secret_access_key", previous.secret_access_key, &mut errors);
            bucket.map(|bucket| ParsedSettings {
                destination: match kind {
                    StreamType::S3 => Destination::S3 {
                        bucket,
                        region: region.unwrap_or_default(),
                        prefix,
                        endpoint,
                        format,
                    },
                    _ => Destination::GoogleCloudStorage {
                        bucket,
                        prefix,
                        endpoint,
                        format,
                    },
                },
                secrets: StreamSecrets {
                    access_key_id,
                    secret_access_key,
                    ..StreamSecrets::default()
                },
            })
        }
        StreamType::GenericHttps => {
            let url = required_url(object, "url", allow_plain_http, &mut errors);
            let format = body_format(object, BodyFormat::Json, &mut errors);
            let headers = match object.get("headers") {
                None => previous.headers.clone(),
                Some(value) => headers(value, &mut errors),
            };
            url.map(|url| ParsedSettings {
                destination: Destination::GenericHttps {
                    url,
                    format,
                    header_names: headers.iter().map(|(name, _)| name.clone()).collect(),
                },
                secrets: StreamSecrets {
                    headers,
                    signing_secrets: previous.signing_secrets.clone(),
                    ..StreamSecrets::default()
                },
            })
        }
    };
    match parsed {
        Some(parsed) if errors.is_empty() => Ok(parsed),
        _ => Err(errors),
    }
}

fn body_format(object: &Map<String, Value>, default: BodyFormat, errors: &mut ValidationErrors) -> BodyFormat {
    match object.get("format").map(Value::as_str) {
        None => default,
        Some(Some("json")) => BodyFormat::Json,
        Some(Some("ndjson")) => BodyFormat::Ndjson,
        Some(_) => {
            errors.push("config.format", "invalid", "format must be `json` or `ndjson`");
            default
        }
    }
}

/// A bucket name as S3 and Google Cloud Storage both accept it: 3 to 63 lowercase letters,
/// digits, dots and hyphens, starting and ending with a letter or digit.
fn bucket(object: &Map<String, Value>, errors: &mut ValidationErrors) -> Option<String> {
    if !object.contains_key("bucket") {
        errors.push("config.bucket", "required", "bucket is required");
        return None;
    }
    let name = optional_text(object, "bucket", errors)?;
    let edges = |byte: Option<&u8>| byte.is_some_and(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit());
    if (3..=63).contains(&name.len())
        && name
            .bytes()
            .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'.' || byte == b'-')
        && edges(name.as_bytes().first())
        && edges(name.as_bytes().last())
    {
        Some(name)
    } else {
        errors.push(
            "config.bucket",
            "invalid",
            "bucket is 3 to 63 lowercase letters, digits, dots and hyphens",
        );
        None
    }
}

/// An object key prefix: at most 512 bytes of letters, digits and `!-_.*'()/`, no `..` segment,
/// not starting with `/`; a `/` is added at its end when missing.
fn prefix(object: &Map<String, Value>, errors: &mut ValidationErrors) -> String {
    let Some(prefix) = optional_text(object, "prefix", errors) else {
        return String::new();
    };
    let valid = prefix.len() <= 512
        && !prefix.starts_with('/')
        && prefix
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || b"!-_.*'()/".contains(&byte))
        && !prefix.split('/').any(|segment| segment == ".." || segment == ".");
    if !valid {
        errors.push(
            "config.prefix",
            "invalid",
            "prefix is at most 512 letters, digits and !-_.*'()/ characters, without `.` or `..` segments or a leading /",
        );
        return String::new();
    }
    if prefix.ends_with('/') {
        prefix
    } else {
        format!("{prefix}/")
    }
}

/// The served types, for messages.
pub fn served_list() -> String {
    StreamType::SERVED.map(StreamType::as_str).join(", ")
}

fn clip(text: &str) -> String {
    text.chars().take(64).collect()
}

fn optional_text(object: &Map<String, Value>, name: &str, errors: &mut ValidationErrors) -> Option<String> {
    match object.get(name)? {
        Value::Null => None,
        Value::String(text) if text.is_empty() || text.len() > MAX_SETTING_LENGTH => {
            errors.push(
                format!("config.{name}"),
                "invalid_length",
                format!("{name} must be 1 to {MAX_SETTING_LENGTH} bytes"),
            );
            None
        }
        Value::String(text) if crate::validation::has_control_characters(text) => {
            errors.push(
                format!("config.{name}"),
                "invalid",
                format!("{name} must not contain control characters"),
            );
            None
        }
        Value::String(text) => Some(text.clone()),
        _ => {
            errors.push(
                format!("config.{name}"),
                "invalid_type",
                format!("{name} must be a string"),
            );
            None
        }
    }
}

/// A secret given now, else the one kept from before; required either way.
fn secret(
    object: &Map<String, Value>,
    name: &str,
    previous: Option<String>,
    errors: &mut ValidationErrors,
) -> Option<String> {
    let given = optional_text(object, name, errors);
    if given.is_none() && previous.is_none() && !object.contains_key(name) {
        errors.push(format!("config.{name}"), "required", format!("{name} is required"));
    }
    given.or(previous)
}

fn required_url(
    object: &Map<String, Value>,
    name: &str,
    allow_plain_http: bool,
    errors: &mut ValidationErrors,
) -> Option<String> {
    if !object.contains_key(name) {
        errors.push(format!("config.{name}"), "required", format!("{name} is required"));
        return None;
    }
    optional_url(object, name, allow_plain_http, errors)
}

fn optional_url(
    object: &Map<String, Value>,
    name: &str,
    allow_plain_http: bool,
    errors: &mut ValidationErrors,
) -> Option<String> {
    let text = optional_text(object, name, errors)?;
    match check_url(&text, allow_plain_http) {
        Ok(()) => Some(text),
        Err(message) => {
            errors.push(format!("config.{name}"), "invalid_url", message);
            None
        }
    }
}

/// The rules for a destination URL: absolute, `https` (or `http` when allowed), a host, no user
/// name or password (credentials belong in the secrets), at most [`MAX_URL_LENGTH`] bytes.
pub fn check_url(text: &str, allow_plain_http: bool) -> Result<(), String> {
    if text.len() > MAX_URL_LENGTH {
        return Err(format!("the URL must be at most {MAX_URL_LENGTH} bytes"));
    }
    let url = url::Url::parse(text).map_err(|error| format!("not an absolute URL: {error}"))?;
    match url.scheme() {
        "https" => {}
        "http" if allow_plain_http => {}
        "http" => {
            return Err(
                "the URL must use https (plain http only with the operator's private-destinations setting)".to_owned(),
            );
        }
        _ => return Err("the URL must use https".to_owned()),
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("the URL has no host".to_owned());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("the URL must not carry a user name or password; put credentials in the settings".to_owned());
    }
    if url.fragment().is_some() {
        return Err("the URL must not have a fragment".to_owned());
    }
    Ok(())
}

fn headers(value: &Value, errors: &mut ValidationErrors) -> Vec<(String, String)> {
    let Some(object) = value.as_object() else {
        errors.push(
            "config.headers",
            "invalid_type",
            "headers must be an object of names to values",
        );
        return Vec::new();
    };
    if object.len() > MAX_HEADERS {
        errors.push("config.headers", "too_many", format!("at most {MAX_HEADERS} headers"));
        return Vec::new();
    }
    let mut headers = Vec::new();
    for (name, value) in object {
        let field = format!("config.headers.{}", clip(name));
        let valid_name = !name.is_empty()
            && name.len() <= 128
            && name
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte));
        if !valid_name {
            errors.push(
                field,
                "invalid",
                "a header name must be an HTTP token of at most 128 bytes",
            );
            continue;
        }
        if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
            errors.push(field, "reserved", "Vellum sets this header itself");
            continue;
        }
        match value.as_str() {
            Some(text)
                if text.len() <= MAX_SETTING_LENGTH
                    && text.bytes().all(|byte| byte == b'\t' || (0x20..0x7f).contains(&byte)) =>
            {
                headers.push((name.clone(), text.to_owned()));
            }
            _ => errors.push(
                field,
                "invalid",
                format!("a header value must be visible ASCII text of at most {MAX_SETTING_LENGTH} bytes"),
            ),
        }
    }
    headers
}

/// Whether a destination may be reached at this address without the operator's setting for
/// private destinations: not loopback, private, shared (CGNAT), link-local (cloud metadata
/// services live there), unspecified, multicast, broadcast, documentation or reserved space,
/// nor an IPv6 form that embeds such an IPv4 address.
pub fn is_public_address(address: std::net::IpAddr) -> bool {
    use std::net::{IpAddr, Ipv4Addr};
    fn public_v4(address: Ipv4Addr) -> bool {
        let [a, b, c, _] = address.octets();
        !(a == 0
            || a == 10
            || a == 127
            || (a == 100 && (64..128).contains(&b))
            || (a == 169 && b == 254)
            || (a == 172 && (16..32).contains(&b))
            || (a == 192 && b == 168)
            || (a == 192 && b == 0 && (c == 0 || c == 2))
            || (a == 198 && (b == 18 || b == 19))
            || (a == 198 && b == 51 && c == 100)
            || (a == 203 && b == 0 && c == 113)
            || a >= 224)
    }
    match address {
        IpAddr::V4(address) => public_v4(address),
        IpAddr::V6(address) => {
            if let Some(mapped) = address.to_ipv4_mapped() {
                return public_v4(mapped);
            }
            let segments = address.segments();
            // NAT64 (64:ff9b::/96) and the deprecated IPv4-compatible form (::a.b.c.d).
            if (segments[0] == 0x64 && segments[1] == 0xff9b && segments[2..6] == [0; 4]) || segments[..6] == [0; 6] {
                let embedded = Ipv4Addr::new(
                    (segments[6] >> 8) as u8,
                    segments[6] as u8,
                    (segments[7] >> 8) as u8,
                    segments[7] as u8,
                );
                return public_v4(embedded);
            }
            !(address.is_loopback()
                || address.is_unspecified()
                || address.is_multicast()
                || (segments[0] & 0xfe00) == 0xfc00
                || (segments[0] & 0xffc0) == 0xfe80
                || (segments[0] & 0xffc0) == 0xfec0
                || (segments[0] == 0x2001 && segments[1] == 0x0db8))
        }
    }
}

/// One event to deliver: its position and the JSON the API returns for it.
#[derive(Clone, Debug)]
pub struct StreamItem {
    /// Its position in the organization's log.
    pub log_index: u64,
    /// When it occurred (milliseconds since the epoch).
    pub occurred_at_millis: i64,
    /// The event as the API renders it, `log_index` included.
    pub event: Value,
}

/// The action of the event a connection test sends (`docs/streams.md` § Testing a stream).
pub const TEST_ACTION: &str = "vellum.stream.test";

/// The key a connection test writes in a bucket, beside the windows of the day: the key of the
/// window object `key` with its file name replaced, so that a test never touches events.
pub fn test_object_key(key: &str) -> String {
    let (directory, file) = key.rsplit_once('/').unwrap_or(("", key));
    let extension = file.rsplit_once('.').map_or("ndjson", |(_, extension)| extension);
    if directory.is_empty() {
        format!("vellum-connection-test.{extension}")
    } else {
        format!("{directory}/vellum-connection-test.{extension}")
    }
}

/// One request to make.
#[derive(Clone, Debug)]
pub struct Delivery {
    /// Where to.
    pub url: String,
    /// Headers, secrets included (never log them).
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
    /// How many of the items given it carries (from the first).
    pub items: usize,
}

/// Limits of one request, per destination.
struct Limits {
    items: usize,
    bytes: usize,
}

const fn limits(kind: StreamType) -> Limits {
    match kind {
        // Datadog: 1,000 entries and 5 MB per request.
        StreamType::Datadog => Limits {
            items: 1_000,
            bytes: 4_500_000,
        },
        // Splunk's own forwarders send about 1 MB per request.
        StreamType::Splunk => Limits {
            items: 1_000,
            bytes: 1_000_000,
        },
        // A statement binding about 4 MB of events at most.
        StreamType::Snowflake => Limits {
            items: 1_000,
            bytes: 4_000_000,
        },
        // The Logs Ingestion API takes at most 1 MB per call.
        StreamType::MicrosoftSentinel => Limits {
            items: 1_000,
            bytes: 950_000,
        },
        _ => Limits {
            items: 500,
            bytes: 1_000_000,
        },
    }
}

/// Builds the request carrying the first items of `items` that fit the destination's limits (at
/// least one). The batch is named for receivers `{message_prefix}_{first}_{last}` (its first and
/// last log indexes: the same across retries of the same batch); `now_seconds` is the signing
/// time.
pub fn encode(
    destination: &Destination,
    secrets: &StreamSecrets,
    items: &[StreamItem],
    message_prefix: &str,
    now_seconds: i64,
) -> Delivery {
    let kind = destination.stream_type();
    let limits = limits(kind);
    let mut entries: Vec<Vec<u8>> = Vec::new();
    let mut size = 2;
    for item in items.iter().take(limits.items) {
        let entry = match destination {
            Destination::Datadog { source, .. } => serde_json::json!({
                "message": item.event,
                "ddsource": source,
                "service": "audit-logs",
            }),
            Destination::Splunk { index, source, .. } => {
                let mut envelope = serde_json::json!({
                    // Epoch seconds with milliseconds, as HEC reads `time`.
                    "time": item.occurred_at_millis as f64 / 1_000.0,
                    "source": source,
                    "sourcetype": "_json",
                    "event": item.event,
                });
                if let Some(index) = index {
                    envelope["index"] = Value::from(index.as_str());
                }
                envelope
            }
            // Sentinel: the columns WorkOS sends (the rule's stream declares them).
            Destination::MicrosoftSentinel { .. } => serde_json::json!({
                "TimeGenerated": item.event.get("occurred_at").cloned().unwrap_or(Value::Null),
                "id": item.event.get("id").cloned().unwrap_or(Value::Null),
                "event_type": item.event.get("action").cloned().unwrap_or(Value::Null),
                "organization_id": item.event.get("organization_id").cloned().unwrap_or(Value::Null),
                "log_index": item.log_index,
                "data": item.event,
            }),
            // Snowflake: the events themselves, bound as one JSON array.
            Destination::Snowflake { .. } => item.event.clone(),
            // Object storage is written by `encode_object`; as a request, a plain list.
            Destination::GenericHttps { .. } | Destination::S3 { .. } | Destination::GoogleCloudStorage { .. } => {
                item.event.clone()
            }
        };
        let bytes = serde_json::to_vec(&entry).expect("JSON values serialize");
        if !entries.is_empty() && size + bytes.len() + 1 > limits.bytes {
            break;
        }
        size += bytes.len() + 1;
        entries.push(bytes);
    }
    let count = entries.len();
    let message_id = match (items.first(), items.get(count.saturating_sub(1))) {
        (Some(first), Some(last)) => format!("{message_prefix}_{}_{}", first.log_index, last.log_index),
        _ => message_prefix.to_owned(),
    };
    let message_id = message_id.as_str();
    let mut headers = Vec::new();
    let body = match destination {
        Destination::Datadog { .. } => {
            headers.push(("content-type".to_owned(), "application/json".to_owned()));
            if let Some(key) = &secrets.api_key {
                headers.push(("dd-api-key".to_owned(), key.clone()));
            }
            json_array(&entries)
        }
        Destination::Splunk { .. } => {
            headers.push(("content-type".to_owned(), "application/json".to_owned()));
            if let Some(token) = &secrets.token {
                headers.push(("authorization".to_owned(), format!("Splunk {token}")));
            }
            // HEC takes a batch as envelopes one after another.
            lines(&entries)
        }
        Destination::GenericHttps { format, .. } => {
            let body = match format {
                BodyFormat::Json => {
                    headers.push(("content-type".to_owned(), "application/json".to_owned()));
                    json_array(&entries)
                }
                BodyFormat::Ndjson => {
                    headers.push(("content-type".to_owned(), "application/x-ndjson".to_owned()));
                    lines(&entries)
                }
            };
            headers.extend(secrets.headers.iter().cloned());
            let keys: Vec<&[u8]> = signing_keys(secrets, now_seconds.saturating_mul(1_000));
            headers.push(("webhook-id".to_owned(), message_id.to_owned()));
            headers.push(("webhook-timestamp".to_owned(), now_seconds.to_string()));
            headers.push((
                "webhook-signature".to_owned(),
                keys.iter()
                    .map(|key| webhook_signature(key, message_id, now_seconds, &body))
                    .collect::<Vec<_>>()
                    .join(" "),
            ));
            body
        }
        // The statement, with the batch bound as its one parameter; the key-pair JWT is the
        // service's to add.
        Destination::Snowflake {
            database,
            schema,
            warehouse,
            role,
            ..
        } => {
            headers.push(("content-type".to_owned(), "application/json".to_owned()));
            headers.push(("accept".to_owned(), "application/json".to_owned()));
            headers.push((
                "x-snowflake-authorization-token-type".to_owned(),
                "KEYPAIR_JWT".to_owned(),
            ));
            let batch = String::from_utf8(json_array(&entries)).expect("JSON is UTF-8");
            let mut request = serde_json::json!({
                "statement": destination.snowflake_statement(),
                "timeout": 60,
                "database": database,
                "schema": schema,
                "bindings": {"1": {"type": "TEXT", "value": batch}},
                "requestId": message_id,
            });
            if let Some(warehouse) = warehouse {
                request["warehouse"] = Value::from(warehouse.as_str());
            }
            if let Some(role) = role {
                request["role"] = Value::from(role.as_str());
            }
            serde_json::to_vec(&request).expect("JSON values serialize")
        }
        // The bearer token is the service's to add: it is fetched, not configured.
        Destination::MicrosoftSentinel { .. } => {
            headers.push(("content-type".to_owned(), "application/json".to_owned()));
            headers.push(("x-ms-client-request-id".to_owned(), message_id.to_owned()));
            json_array(&entries)
        }
        Destination::S3 { .. } | Destination::GoogleCloudStorage { .. } => {
            headers.push(("content-type".to_owned(), "application/x-ndjson".to_owned()));
            lines(&entries)
        }
    };
    Delivery {
        url: destination.endpoint(),
        headers,
        body,
        items: count,
    }
}

/// One object to write.
#[derive(Clone, Debug)]
pub struct ObjectDelivery {
    /// Its key in the bucket.
    pub key: String,
    /// Its content type.
    pub content_type: &'static str,
    /// Its content.
    pub body: Vec<u8>,
}

/// The object of one window: every item given, which must all lie in the window of the first
/// ([`object_window`]). Its key is `{prefix}{organization}/{YYYY-MM-DD}/{window start, 20
/// digits}.{ndjson|json}`, the date being the day (UTC) the window's first event was received:
/// the same whenever the window is written again.
pub fn encode_object(
    destination: &Destination,
    organization_id: &str,
    items: &[StreamItem],
    received_at_millis: i64,
) -> ObjectDelivery {
    let (prefix, format) = match destination {
        Destination::S3 { prefix, format, .. } | Destination::GoogleCloudStorage { prefix, format, .. } => {
            (prefix.as_str(), *format)
        }
        _ => ("", BodyFormat::Ndjson),
    };
    let window = items.first().map_or(0, |item| object_window(item.log_index));
    let date = time::OffsetDateTime::from_unix_timestamp(received_at_millis.div_euclid(1_000))
        .map(|time| time.date())
        .unwrap_or(time::Date::MIN);
    let entries: Vec<Vec<u8>> = items
        .iter()
        .map(|item| serde_json::to_vec(&item.event).expect("JSON values serialize"))
        .collect();
    let (body, content_type, extension) = match format {
        BodyFormat::Json => (json_array(&entries), "application/json", "json"),
        BodyFormat::Ndjson => (lines(&entries), "application/x-ndjson", "ndjson"),
    };
    ObjectDelivery {
        key: format!(
            "{prefix}{organization_id}/{:04}-{:02}-{:02}/{window:020}.{extension}",
            date.year(),
            u8::from(date.month()),
            date.day()
        ),
        content_type,
        body,
    }
}

fn json_array(entries: &[Vec<u8>]) -> Vec<u8> {
    let mut body = Vec::with_capacity(entries.iter().map(|entry| entry.len() + 1).sum::<usize>() + 2);
    body.push(b'[');
    for (position, entry) in entries.iter().enumerate() {
        if position > 0 {
            body.push(b',');
        }
        body.extend_from_slice(entry);
    }
    body.push(b']');
    body
}

fn lines(entries: &[Vec<u8>]) -> Vec<u8> {
    let mut body = Vec::with_capacity(entries.iter().map(|entry| entry.len() + 1).sum());
    for entry in entries {
        body.extend_from_slice(entry);
        body.push(b'\n');
    }
    body
}

/// The secrets that sign at `now_millis`: the newest, and replaced ones within their overlap.
fn signing_keys(secrets: &StreamSecrets, now_millis: i64) -> Vec<&[u8]> {
    let overlap = i64::try_from(ROTATION_OVERLAP.as_millis()).unwrap_or(i64::MAX);
    secrets
        .signing_secrets
        .iter()
        .filter(|secret| {
            secret
                .retired_at
                .is_none_or(|retired| now_millis < retired.saturating_add(overlap))
        })
        .map(|secret| secret.key.as_slice())
        .collect()
}

/// Standard Webhooks' symmetric signature: `v1,` + base64 of HMAC-SHA256 over
/// `{id}.{timestamp}.{body}`.
pub fn webhook_signature(key: &[u8], message_id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(message_id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

/// What a destination's answer means.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The batch was taken: advance.
    Accepted,
    /// Try again later (after `retry_after` when the destination said so).
    Retry {
        /// Why, for the stream's `error`.
        reason: String,
        /// The destination's `Retry-After`, when given.
        retry_after: Option<Duration>,
    },
    /// The credentials or settings are refused: stop until the stream is updated.
    Invalid {
        /// Why.
        reason: String,
    },
}

/// The longest `Retry-After` honoured; a longer one is cut to this.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3_600);

/// Reads a destination's answer: its status, its `Retry-After` (seconds or an HTTP date, given
/// with `now_seconds`), and the start of its body.
pub fn judge(kind: StreamType, status: u16, retry_after: Option<&str>, body: &[u8], now_seconds: i64) -> Verdict {
    let retry_after = retry_after.and_then(|value| parse_retry_after(value, now_seconds));
    let snippet = String::from_utf8_lossy(&body[..body.len().min(200)]).trim().to_owned();
    let said = if snippet.is_empty() {
        String::new()
    } else {
        format!(": {snippet}")
    };
    if (200..300).contains(&status) {
        return Verdict::Accepted;
    }
    if kind == StreamType::Splunk
        && let Some(code) = splunk_code(body)
    {
        return match code {
            // Token disabled, required, invalid authorization, invalid token, incorrect index.
            1..=4 | 7 => Verdict::Invalid {
                reason: format!("Splunk refused the request (HTTP {status}, code {code}){said}"),
            },
            // Internal error, server busy.
            8 | 9 => Verdict::Retry {
                reason: format!("Splunk is unavailable (HTTP {status}, code {code}){said}"),
                retry_after,
            },
            _ => Verdict::Invalid {
                reason: format!("Splunk refused the data (HTTP {status}, code {code}){said}"),
            },
        };
    }
    match status {
        401 | 403 => Verdict::Invalid {
            reason: format!("the destination refused the credentials (HTTP {status}){said}"),
        },
        300..=399 => Verdict::Invalid {
            reason: format!("the destination answered a redirect (HTTP {status}); give the final URL"),
        },
        404 | 405 | 410 => Verdict::Invalid {
            reason: format!("the destination has no such endpoint (HTTP {status}){said}"),
        },
        408 | 409 | 425 | 429 | 500..=599 => Verdict::Retry {
            reason: format!("the destination is unavailable (HTTP {status}){said}"),
            retry_after,
        },
        _ => Verdict::Invalid {
            reason: format!("the destination refused the batch (HTTP {status}){said}"),
        },
    }
}

fn splunk_code(body: &[u8]) -> Option<u64> {
    serde_json::from_slice::<Value>(body).ok()?.get("code")?.as_u64()
}

/// `Retry-After` as seconds or an HTTP date, capped at [`MAX_RETRY_AFTER`].
pub fn parse_retry_after(value: &str, now_seconds: i64) -> Option<Duration> {
    let value = value.trim();
    let seconds = if let Ok(seconds) = value.parse::<u64>() {
        seconds
    } else {
        let date = time::OffsetDateTime::parse(value, &time::format_description::well_known::Rfc2822).ok()?;
        u64::try_from(date.unix_timestamp().saturating_sub(now_seconds)).unwrap_or(0)
    };
    Some(Duration::from_secs(seconds).min(MAX_RETRY_AFTER))
}

/// The first retry's base delay.
pub const FIRST_RETRY: Duration = Duration::from_secs(1);
/// The longest delay between retries without a `Retry-After`.
pub const MAX_RETRY: Duration = Duration::from_secs(300);

/// The shortest wait even when `Retry-After` says 0 (no busy loop against a destination).
pub const MIN_RETRY_AFTER: Duration = Duration::from_millis(200);

/// How long to wait before attempt `failures + 1`: exponential from [`FIRST_RETRY`], capped at
/// [`MAX_RETRY`], with "equal jitter" (`jitter` in `[0, 1]` picks a point in the upper half);
/// when the destination gave a `Retry-After`, that instead (at least [`MIN_RETRY_AFTER`]).
pub fn retry_delay(failures: u32, jitter: f64, retry_after: Option<Duration>) -> Duration {
    let exponent = failures.saturating_sub(1).min(20);
    let base = FIRST_RETRY.saturating_mul(1 << exponent).min(MAX_RETRY);
    let jittered = base.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0));
    retry_after.map_or(jittered, |after| after.max(MIN_RETRY_AFTER))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(log_index: u64) -> StreamItem {
        StreamItem {
            log_index,
            occurred_at_millis: 1_700_000_000_123,
            event: serde_json::json!({"id": format!("e{log_index}"), "log_index": log_index}),
        }
    }

    #[test]
    fn private_and_special_addresses_are_not_public() {
        for address in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "192.0.2.1",
            "::1",
            "::",
            "fd00:ec2::254",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
            "::7f00:1",
            "2001:db8::1",
            "ff02::1",
        ] {
            assert!(!is_public_address(address.parse().unwrap()), "{address}");
        }
        for address in [
            "8.8.8.8",
            "172.32.0.1",
            "100.128.0.1",
            "2606:4700::1111",
            "::ffff:1.1.1.1",
        ] {
            assert!(is_public_address(address.parse().unwrap()), "{address}");
        }
    }

    #[test]
    fn types_and_states_round_trip_their_wire_names() {
        for kind in StreamType::ALL {
            assert_eq!(StreamType::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(StreamType::parse("datadog"), None);
        for state in [
            StreamState::Active,
            StreamState::Error,
            StreamState::Invalid,
            StreamState::Inactive,
        ] {
            assert_eq!(StreamState::parse(state.as_str()), Some(state));
        }
        assert!(StreamState::Error.delivers());
        assert!(!StreamState::Invalid.delivers());
    }

    #[test]
    fn settings_are_checked_and_secrets_kept_apart() {
        let parsed = parse_settings(
            StreamType::Datadog,
            &serde_json::json!({"region": "eu1", "api_key": "k"}),
            None,
            false,
        )
        .unwrap();
        assert_eq!(
            parsed.destination.to_json(),
            serde_json::json!({"region": "EU1", "source": "vellum"})
        );
        assert_eq!(parsed.secrets.api_key.as_deref(), Some("k"));
        assert!(!format!("{:?}", parsed.secrets).contains("\"k\""));

        let refused = parse_settings(StreamType::Datadog, &serde_json::json!({"region": "Mars"}), None, false)
            .unwrap_err()
            .to_string();
        assert!(refused.contains("region"), "{refused}");
        assert!(refused.contains("api_key"), "{refused}");

        // An update keeps the secret it does not repeat.
        let previous = parsed.secrets;
        let updated = parse_settings(
            StreamType::Datadog,
            &serde_json::json!({"region": "US3"}),
            Some(&previous),
            false,
        )
        .unwrap();
        assert_eq!(updated.secrets.api_key.as_deref(), Some("k"));

        for (url, plain) in [
            ("http://example.com/hook", false),
            ("ftp://example.com/", true),
            ("https://user:pw@example.com/", false),
            ("not a url", false),
            ("https://example.com/#x", false),
        ] {
            assert!(
                parse_settings(StreamType::GenericHttps, &serde_json::json!({"url": url}), None, plain).is_err(),
                "{url}"
            );
        }
        assert!(
            parse_settings(
                StreamType::GenericHttps,
                &serde_json::json!({"url": "http://127.0.0.1:1/"}),
                None,
                true
            )
            .is_ok()
        );
        let reserved = parse_settings(
            StreamType::GenericHttps,
            &serde_json::json!({"url": "https://example.com/", "headers": {"Webhook-Signature": "x"}}),
            None,
            false,
        )
        .unwrap_err()
        .to_string();
        assert!(reserved.contains("Vellum sets this header"), "{reserved}");
        let snowflake = parse_settings(
            StreamType::Snowflake,
            &serde_json::json!({"account": "myorg-acct1", "user": "VELLUM", "database": "AUDIT", "schema": "PUBLIC",
                                "table": "EVENTS; DROP TABLE X", "private_key": "not a key"}),
            None,
            false,
        )
        .unwrap_err()
        .to_string();
        assert!(snowflake.contains("table is a plain identifier"), "{snowflake}");
        assert!(snowflake.contains("PKCS #8"), "{snowflake}");
    }

    #[test]
    fn destinations_round_trip_their_stored_form() {
        for (kind, config) in [
            (
                StreamType::Datadog,
                serde_json::json!({"region": "AP1", "api_key": "k", "url": "https://x.test/"}),
            ),
            (
                StreamType::Splunk,
                serde_json::json!({"url": "https://s.test:8088", "token": "t", "index": "main"}),
            ),
            (
                StreamType::GenericHttps,
                serde_json::json!({"url": "https://h.test/", "format": "ndjson", "headers": {"X-A": "1"}}),
            ),
        ] {
            let parsed = parse_settings(kind, &config, None, false).unwrap();
            assert_eq!(
                Destination::from_json(kind, &parsed.destination.to_json()),
                Some(parsed.destination)
            );
        }
    }

    #[test]
    fn generic_batches_are_signed_per_standard_webhooks() {
        let secrets = StreamSecrets {
            signing_secrets: vec![
                SigningSecret {
                    key: vec![7; 32],
                    retired_at: None,
                },
                SigningSecret {
                    key: vec![9; 32],
                    retired_at: Some(0),
                },
            ],
            headers: vec![("X-Team".to_owned(), "a".to_owned())],
            ..StreamSecrets::default()
        };
        let destination = Destination::GenericHttps {
            url: "https://h.test/".to_owned(),
            format: BodyFormat::Json,
            header_names: vec!["X-Team".to_owned()],
        };
        let items = [item(0), item(1)];
        let delivery = encode(&destination, &secrets, &items, "msg", 1_700_000_000);
        assert_eq!(delivery.items, 2);
        let body: Value = serde_json::from_slice(&delivery.body).unwrap();
        assert_eq!(body[1]["log_index"], 1);
        let header = |name: &str| {
            delivery
                .headers
                .iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.clone())
                .unwrap()
        };
        assert_eq!(header("X-Team"), "a");
        assert_eq!(header("webhook-id"), "msg_0_1");
        // Only the current secret signs: the retired one's overlap ended long ago.
        assert_eq!(
            header("webhook-signature"),
            webhook_signature(&[7; 32], "msg_0_1", 1_700_000_000, &delivery.body)
        );
        // The signature is Standard Webhooks' (checked against an independent computation).
        let mut mac = Hmac::<Sha256>::new_from_slice(&[7; 32]).unwrap();
        mac.update(format!("msg_0_1.1700000000.{}", String::from_utf8_lossy(&delivery.body)).as_bytes());
        assert_eq!(
            header("webhook-signature"),
            format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
        );
        // Within the overlap both sign.
        let mut rotated = secrets;
        rotated.signing_secrets[1].retired_at = Some(1_700_000_000_000 - 1_000);
        let both = encode(&destination, &rotated, &items, "msg", 1_700_000_000);
        let signature = both
            .headers
            .iter()
            .find(|(key, _)| key == "webhook-signature")
            .unwrap()
            .1
            .clone();
        assert_eq!(signature.split(' ').count(), 2);
    }

    #[test]
    fn batches_respect_the_destination_limits() {
        let destination = Destination::Datadog {
            region: DatadogRegion::Us1,
            url: None,
            source: "s".to_owned(),
        };
        let secrets = StreamSecrets {
            api_key: Some("k".to_owned()),
            ..StreamSecrets::default()
        };
        let items: Vec<_> = (0..1_500).map(item).collect();
        let delivery = encode(&destination, &secrets, &items, "m", 0);
        assert_eq!(delivery.items, 1_000);
        let body: Value = serde_json::from_slice(&delivery.body).unwrap();
        assert_eq!(body[999]["message"]["log_index"], 999);
        assert_eq!(body[0]["service"], "audit-logs");
        // One item larger than the limit still goes alone.
        let mut huge = item(0);
        huge.event["blob"] = Value::from("x".repeat(5_000_000));
        assert_eq!(encode(&destination, &secrets, &[huge, item(1)], "m", 0).items, 1);

        let splunk = Destination::Splunk {
            url: "https://s.test:8088/".to_owned(),
            index: Some("audit".to_owned()),
            source: "vellum".to_owned(),
        };
        let secrets = StreamSecrets {
            token: Some("t".to_owned()),
            ..StreamSecrets::default()
        };
        let delivery = encode(&splunk, &secrets, &items[..2], "m", 0);
        assert_eq!(delivery.url, "https://s.test:8088/services/collector/event");
        let envelopes: Vec<Value> = serde_json::Deserializer::from_slice(&delivery.body)
            .into_iter()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(envelopes.len(), 2);
        assert_eq!(envelopes[0]["time"].to_string(), "1700000000.123");
        assert_eq!(envelopes[0]["index"], "audit");
        assert!(
            delivery
                .headers
                .contains(&("authorization".to_owned(), "Splunk t".to_owned()))
        );
    }

    #[test]
    fn object_storage_settings_and_objects() {
        let parsed = parse_settings(
            StreamType::S3,
            &serde_json::json!({"bucket": "audit-logs", "region": "eu-west-1", "prefix": "vellum",
                                "access_key_id": "AKIA", "secret_access_key": "s3cr3t"}),
            None,
            false,
        )
        .unwrap();
        assert_eq!(
            parsed.destination.to_json(),
            serde_json::json!({"bucket": "audit-logs", "region": "eu-west-1", "prefix": "vellum/", "format": "ndjson"})
        );
        assert_eq!(
            Destination::from_json(StreamType::S3, &parsed.destination.to_json()),
            Some(parsed.destination.clone())
        );
        assert_eq!(parsed.destination.endpoint(), "https://s3.eu-west-1.amazonaws.com");
        assert!(!format!("{:?}", parsed.secrets).contains("s3cr3t"));
        for config in [
            serde_json::json!({"bucket": "A", "access_key_id": "a", "secret_access_key": "s"}),
            serde_json::json!({"bucket": "ok-bucket", "prefix": "../up", "access_key_id": "a", "secret_access_key": "s"}),
            serde_json::json!({"bucket": "ok-bucket", "prefix": "/abs", "access_key_id": "a", "secret_access_key": "s"}),
            serde_json::json!({"bucket": "ok-bucket", "access_key_id": "a"}),
            serde_json::json!({"bucket": "ok-bucket", "region": "EU WEST", "access_key_id": "a", "secret_access_key": "s"}),
        ] {
            assert!(
                parse_settings(StreamType::S3, &config, None, false).is_err(),
                "{config}"
            );
        }
        let gcs = parse_settings(
            StreamType::GoogleCloudStorage,
            &serde_json::json!({"bucket": "audit", "access_key_id": "GOOG1", "secret_access_key": "s", "format": "json"}),
            None,
            false,
        )
        .unwrap();
        assert_eq!(gcs.destination.endpoint(), GCS_ENDPOINT);

        assert_eq!(
            (
                object_window(0),
                object_window(999),
                object_window(1_000),
                object_window(2_345)
            ),
            (0, 0, 1_000, 2_000)
        );
        let items: Vec<_> = (2_000..2_003).map(item).collect();
        // 2026-12-06T09:00:00Z.
        let object = encode_object(&parsed.destination, "org_1", &items, 1_796_547_600_000);
        assert_eq!(object.key, "vellum/org_1/2026-12-06/00000000000000002000.ndjson");
        assert_eq!(object.content_type, "application/x-ndjson");
        assert_eq!(object.body.iter().filter(|byte| **byte == b'\n').count(), 3);
        let json = encode_object(&gcs.destination, "org_1", &items, 1_796_547_600_000);
        assert_eq!(json.key, "org_1/2026-12-06/00000000000000002000.json");
        assert_eq!(
            serde_json::from_slice::<Value>(&json.body)
                .unwrap()
                .as_array()
                .unwrap()
                .len(),
            3
        );
    }

    #[test]
    fn sentinel_settings_requests_and_rows() {
        let parsed = parse_settings(
            StreamType::MicrosoftSentinel,
            &serde_json::json!({"endpoint": "https://dce-1.westeurope-1.ingest.monitor.azure.com", "rule_id": "dcr-000a",
                                "stream_name": "Custom-WorkOSAuditLogs_CL", "tenant_id": "72f988bf-86f1", "client_id": "app-1",
                                "client_secret": "entra-secret"}),
            None,
            false,
        )
        .unwrap();
        assert_eq!(
            Destination::from_json(StreamType::MicrosoftSentinel, &parsed.destination.to_json()),
            Some(parsed.destination.clone())
        );
        assert!(!parsed.destination.to_json().to_string().contains("entra-secret"));
        assert_eq!(
            parsed.destination.endpoint(),
            "https://dce-1.westeurope-1.ingest.monitor.azure.com/dataCollectionRules/dcr-000a/streams/Custom-WorkOSAuditLogs_CL?api-version=2023-01-01"
        );
        assert_eq!(
            parsed.destination.token_url().unwrap(),
            "https://login.microsoftonline.com/72f988bf-86f1/oauth2/v2.0/token"
        );
        assert_eq!(
            token_request("app-1", "a&b"),
            "grant_type=client_credentials&client_id=app-1&client_secret=a%26b&scope=https%3A%2F%2Fmonitor.azure.com%2F%2F.default"
        );
        let refused = parse_settings(
            StreamType::MicrosoftSentinel,
            &serde_json::json!({"endpoint": "https://dce.test", "rule_id": "dcr/../x", "client_secret": "s"}),
            None,
            false,
        )
        .unwrap_err()
        .to_string();
        for field in ["rule_id", "stream_name", "tenant_id", "client_id"] {
            assert!(refused.contains(field), "{refused}");
        }
        let mut event = item(7);
        event.event = serde_json::json!({"id": "e7", "action": "user.signed_in", "occurred_at": "2026-12-06T09:00:00.000Z",
                                         "organization_id": "org_1", "log_index": 7});
        let delivery = encode(&parsed.destination, &parsed.secrets, &[event], "m", 0);
        let rows: Value = serde_json::from_slice(&delivery.body).unwrap();
        assert_eq!(
            rows[0],
            serde_json::json!({"TimeGenerated": "2026-12-06T09:00:00.000Z", "id": "e7", "event_type": "user.signed_in",
                               "organization_id": "org_1", "log_index": 7, "data": rows[0]["data"]})
        );
        assert!(delivery.headers.iter().all(|(name, _)| name != "authorization"));
    }

    #[test]
    fn snowflake_binds_a_batch_to_one_insert() {
        let parsed = parse_settings(
            StreamType::Snowflake,
            &serde_json::json!({"account": "MYORG-ACCT1", "user": "VELLUM", "database": "AUDIT", "schema": "PUBLIC",
                                "table": "EVENTS", "warehouse": "LOAD_WH",
                                "private_key": "-----BEGIN PRIVATE KEY-----\nMII\n-----END PRIVATE KEY-----"}),
            None,
            false,
        )
        .unwrap();
        assert_eq!(
            parsed.destination.endpoint(),
            "https://myorg-acct1.snowflakecomputing.com/api/v2/statements"
        );
        assert!(!parsed.destination.to_json().to_string().contains("PRIVATE KEY"));
        let delivery = encode(&parsed.destination, &parsed.secrets, &[item(3), item(4)], "m", 0);
        let body: Value = serde_json::from_slice(&delivery.body).unwrap();
        assert!(
            body["statement"]
                .as_str()
                .unwrap()
                .starts_with("INSERT INTO AUDIT.PUBLIC.EVENTS (")
        );
        assert_eq!(
            (&body["warehouse"], &body["timeout"]),
            (&serde_json::json!("LOAD_WH"), &serde_json::json!(60))
        );
        let bound: Value = serde_json::from_str(body["bindings"]["1"]["value"].as_str().unwrap()).unwrap();
        assert_eq!(bound[1]["log_index"], 4);
        assert!(delivery.headers.contains(&(
            "x-snowflake-authorization-token-type".to_owned(),
            "KEYPAIR_JWT".to_owned()
        )));
    }

    #[test]
    fn answers_are_judged() {
        assert_eq!(judge(StreamType::Datadog, 202, None, b"{}", 0), Verdict::Accepted);
        assert!(matches!(
            judge(StreamType::Datadog, 403, None, b"", 0),
            Verdict::Invalid { .. }
        ));
        assert_eq!(
            judge(StreamType::GenericHttps, 503, Some("7"), b"", 0),
            Verdict::Retry {
                reason: "the destination is unavailable (HTTP 503)".to_owned(),
                retry_after: Some(Duration::from_secs(7))
            }
        );
        assert!(matches!(
            judge(
                StreamType::Splunk,
                403,
                None,
                br#"{"text":"Invalid token","code":4}"#,
                0
            ),
            Verdict::Invalid { .. }
        ));
        assert!(matches!(
            judge(
                StreamType::Splunk,
                503,
                None,
                br#"{"text":"Server is busy","code":9}"#,
                0
            ),
            Verdict::Retry { .. }
        ));
        assert!(matches!(
            judge(StreamType::GenericHttps, 302, None, b"", 0),
            Verdict::Invalid { .. }
        ));
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", 784_111_777 - 10),
            Some(Duration::from_secs(10))
        );
        assert_eq!(parse_retry_after("999999", 0), Some(MAX_RETRY_AFTER));
        assert_eq!(parse_retry_after("soon", 0), None);
    }

    #[test]
    fn retries_back_off_exponentially_with_jitter_and_honour_retry_after() {
        assert_eq!(retry_delay(1, 1.0, None), Duration::from_secs(1));
        assert_eq!(retry_delay(1, 0.0, None), Duration::from_millis(500));
        assert_eq!(retry_delay(4, 1.0, None), Duration::from_secs(8));
        assert_eq!(retry_delay(40, 1.0, None), MAX_RETRY);
        assert_eq!(
            retry_delay(1, 0.5, Some(Duration::from_secs(30))),
            Duration::from_secs(30)
        );
    }
}
