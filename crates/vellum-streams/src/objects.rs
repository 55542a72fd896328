//! Object-storage destinations (S3, S3-compatible stores, Google Cloud Storage through its XML
//! API): one `PutObject` per window of log positions, through the same guarded HTTP client as
//! every other delivery (no proxy, no redirects, private addresses refused after DNS).
//!
//! Each object is sent with an `x-amz-checksum-sha256`, which buckets under Object Lock accept in
//! place of `Content-MD5`. The client's own retries are off: the delivery loop owns retries,
//! backoff and the stream's state.

use std::time::Duration;

use object_store::aws::{AmazonS3Builder, Checksum};
use object_store::client::{ClientOptions, HttpClient, HttpConnector};
use object_store::{Attribute, Attributes, ObjectStore, PutOptions, PutPayload, RetryConfig};
use vellum_core::stream::{Destination, ObjectDelivery, StreamSecrets, Verdict};

use crate::transport::{PrivateDestination, Transport};

/// Hands object_store the deliveries' own client.
#[derive(Debug)]
struct Guarded(reqwest::Client);

impl HttpConnector for Guarded {
    fn connect(&self, _options: &ClientOptions) -> object_store::Result<HttpClient> {
        Ok(HttpClient::new(self.0.clone()))
    }
}

/// The store a stream writes to.
pub(crate) fn open(
    destination: &Destination,
    secrets: &StreamSecrets,
    transport: &Transport,
    timeout: Duration,
) -> Result<Box<dyn ObjectStore>, Verdict> {
    let (bucket, region, virtual_hosted) = match destination {
        Destination::S3 {
            bucket,
            region,
            endpoint,
            ..
        } => (bucket, region.as_str(), endpoint.is_none()),
        Destination::GoogleCloudStorage { bucket, .. } => (bucket, "auto", false),
        _ => {
            return Err(Verdict::Invalid {
                reason: "not an object-storage destination".to_owned(),
            });
        }
    };
    transport
        .check_literal(&destination.endpoint())
        .map_err(|reason| Verdict::Invalid { reason })?;
    let retry = RetryConfig {
        max_retries: 0,
        retry_timeout: timeout,
        ..RetryConfig::default()
    };
    let mut builder = AmazonS3Builder::new()
        .with_bucket_name(bucket)
        .with_region(region)
        .with_access_key_id(secrets.access_key_id.clone().unwrap_or_default())
        .with_secret_access_key(secrets.secret_access_key.clone().unwrap_or_default())
        .with_virtual_hosted_style_request(virtual_hosted)
        .with_allow_http(transport.allows_private())
        .with_checksum_algorithm(Checksum::SHA256)
        .with_retry(retry)
        .with_client_options(
            ClientOptions::new()
                .with_timeout(timeout)
                .with_connect_timeout(timeout.min(Duration::from_secs(10))),
        )
        .with_http_connector(Guarded(transport.client()));
    // Without an endpoint, AWS's own (virtual-hosted); otherwise the one given (path style).
    if !virtual_hosted {
        builder = builder.with_endpoint(destination.endpoint());
    }
    builder
        .build()
        .map(|store| Box::new(store) as Box<dyn ObjectStore>)
        .map_err(|error| Verdict::Invalid {
            reason: format!("the bucket settings are not usable: {error}"),
        })
}

/// Writes one object and reads the outcome as a verdict.
pub(crate) async fn put(store: &dyn ObjectStore, object: ObjectDelivery) -> Verdict {
    let mut attributes = Attributes::new();
    attributes.insert(Attribute::ContentType, object.content_type.into());
    let options = PutOptions {
        attributes,
        ..PutOptions::default()
    };
    let path = object_store::path::Path::from(object.key.as_str());
    match store.put_opts(&path, PutPayload::from(object.body), options).await {
        Ok(_) => Verdict::Accepted,
        Err(error) => judge(&error),
    }
}

/// Credentials or a bucket refused, a private address: the settings are wrong. Anything else
/// (the network, a 5xx, throttling) is worth retrying.
fn judge(error: &object_store::Error) -> Verdict {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(current) = source {
        if let Some(refused) = current.downcast_ref::<PrivateDestination>() {
            return Verdict::Invalid {
                reason: refused.to_string(),
            };
        }
        source = current.source();
    }
    match error {
        object_store::Error::PermissionDenied { .. } | object_store::Error::Unauthenticated { .. } => {
            Verdict::Invalid {
                reason: format!("the bucket refused the credentials: {}", chain(error)),
            }
        }
        object_store::Error::NotFound { .. } => Verdict::Invalid {
            reason: format!("no such bucket: {}", chain(error)),
        },
        _ => Verdict::Retry {
            reason: format!("the bucket is unavailable: {}", chain(error)),
            retry_after: None,
        },
    }
}

/// An error and its causes, cut short: enough to tell what went wrong, never a secret (the
/// request's signature is not part of object_store's messages).
fn chain(error: &object_store::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(current) = source {
        let next = current.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = current.source();
    }
    text.chars().take(500).collect()
}
