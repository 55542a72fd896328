//! Sending one request to a destination, safely: no proxy, no redirects, a timeout on every
//! request, the answer's body read only up to a cap, and (unless the operator allows private
//! destinations) no connection to a loopback, private, link-local or otherwise special address.
//!
//! The address check runs in the client's own resolver, on the addresses the connection then
//! uses, so a name that resolves to a public address when checked and to a private one a moment
//! later (DNS rebinding) cannot slip through; a URL naming an address directly is checked before
//! the request.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use vellum_core::stream::{Delivery, is_public_address};

/// The most of an answer's body read (for the reason a delivery failed).
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// A refused destination address.
#[derive(Debug, thiserror::Error)]
#[error(
    "the destination resolves to a private or special address ({0}); Vellum refuses those unless the operator \
     allows private destinations"
)]
pub struct PrivateDestination(pub String);

/// What came back.
#[derive(Debug)]
pub struct Answer {
    /// The HTTP status.
    pub status: u16,
    /// Its `Retry-After`, if any.
    pub retry_after: Option<String>,
    /// The start of its body.
    pub body: Vec<u8>,
}

/// Why no answer came back.
#[derive(Debug)]
pub enum SendError {
    /// The destination is refused by the address rules: a configuration problem.
    Refused(String),
    /// The network failed or timed out: worth retrying.
    Failed(String),
}

struct CheckedResolver {
    allow_private: bool,
}

impl Resolve for CheckedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let kept: Vec<SocketAddr> = found
                .iter()
                .copied()
                .filter(|address| allow_private || is_public_address(address.ip()))
                .collect();
            if kept.is_empty() {
                let shown = found
                    .first()
                    .map_or_else(|| host.clone(), |address| address.ip().to_string());
                return Err(Box::new(PrivateDestination(shown)) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(kept.into_iter()) as Addrs)
        })
    }
}

/// The HTTP client of deliveries.
#[derive(Clone)]
pub struct Transport {
    client: reqwest::Client,
    allow_private: bool,
}

impl Transport {
    /// A client with the given per-request timeout.
    pub fn new(allow_private: bool, timeout: Duration) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .timeout(timeout)
            .user_agent(concat!("vellum/", env!("CARGO_PKG_VERSION")))
            .dns_resolver(Arc::new(CheckedResolver { allow_private }))
            .build()?;
        Ok(Self { client, allow_private })
    }

    /// Parses a destination URL and, unless private destinations are allowed, refuses one that
    /// names a private or special address directly (the resolver sees only names).
    pub(crate) fn check_literal(&self, text: &str) -> Result<url::Url, String> {
        let url = url::Url::parse(text).map_err(|error| format!("bad URL: {error}"))?;
        if !self.allow_private {
            let literal = match url.host() {
                Some(url::Host::Ipv4(address)) => Some(IpAddr::V4(address)),
                Some(url::Host::Ipv6(address)) => Some(IpAddr::V6(address)),
                _ => None,
            };
            if let Some(address) = literal
                && !is_public_address(address)
            {
                return Err(PrivateDestination(address.to_string()).to_string());
            }
        }
        Ok(url)
    }

    /// Whether private destinations (and plain http) are allowed.
    pub fn allows_private(&self) -> bool {
        self.allow_private
    }

    /// The guarded client itself (object storage sends through it too). It checks addresses
    /// only after DNS: a URL naming an address must also pass `check_literal`.
    pub(crate) fn client(&self) -> reqwest::Client {
        self.client.clone()
    }

    /// Sends one delivery and reads the answer.
    pub async fn send(&self, delivery: &Delivery) -> Result<Answer, SendError> {
        let url = self.check_literal(&delivery.url).map_err(SendError::Refused)?;
        let mut request = self.client.post(url).body(delivery.body.clone());
        for (name, value) in &delivery.headers {
            request = request.header(name.as_str(), value.as_str());
        }
        let mut response = request.send().await.map_err(|error| classify(&error))?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        let mut body = Vec::new();
        while body.len() < MAX_ANSWER_BYTES {
            match response.chunk().await {
                Ok(Some(chunk)) => body.extend_from_slice(&chunk[..chunk.len().min(MAX_ANSWER_BYTES - body.len())]),
                // The status is what counts; a body cut short is still read as far as it came.
                Ok(None) | Err(_) => break,
            }
        }
        Ok(Answer {
            status,
            retry_after,
            body,
        })
    }
}

/// A refused address anywhere in the error's chain is a configuration problem; anything else is
/// the network's. The message never carries the request's headers.
fn classify(error: &reqwest::Error) -> SendError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(current) = source {
        if let Some(refused) = current.downcast_ref::<PrivateDestination>() {
            return SendError::Refused(refused.to_string());
        }
        source = current.source();
    }
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "could not connect"
    } else {
        "failed"
    };
    let mut message = format!("the request {kind}");
    let mut source = std::error::Error::source(error);
    while let Some(current) = source {
        message.push_str(": ");
        message.push_str(&current.to_string());
        source = current.source();
    }
    SendError::Failed(message)
}
