//! A lean HTTP/1.1 client: one kept-alive connection through hyper's low-level client, so that
//! the load generator spends as little of the machine as it can (the server shares it).

use std::net::SocketAddr;

use anyhow::{Context, bail};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST, HeaderValue};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpStream;

/// The longest a request may take, answer read included, before the run fails: far beyond any
/// measurement's, so that a server that stopped answering fails the run instead of hanging it.
const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(300);

/// An answer: its status and whole body.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) body: Bytes,
}

impl Reply {
    /// The body as text, shortened, for error messages.
    pub(crate) fn excerpt(&self) -> String {
        let text = String::from_utf8_lossy(&self.body);
        text.chars().take(300).collect()
    }
}

/// The headers every request of a run carries.
#[derive(Clone, Debug)]
pub(crate) struct Target {
    /// Where the server listens.
    pub(crate) address: SocketAddr,
    host: HeaderValue,
    authorization: HeaderValue,
}

impl Target {
    /// A server at `address`, reached with `api_key`.
    pub(crate) fn new(address: SocketAddr, api_key: &str) -> anyhow::Result<Self> {
        Ok(Self {
            address,
            host: HeaderValue::from_str(&address.to_string()).context("the server address as a Host header")?,
            authorization: HeaderValue::from_str(&format!("Bearer {api_key}")).context("the API key as a header")?,
        })
    }
}

/// One connection to the server, reopened if the server closed it.
pub(crate) struct Client {
    target: Target,
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl Client {
    /// Connects to the target.
    pub(crate) async fn connect(target: &Target) -> anyhow::Result<Self> {
        let mut client = Self {
            target: target.clone(),
            sender: None,
        };
        client.ready().await?;
        Ok(client)
    }

    async fn ready(&mut self) -> anyhow::Result<&mut SendRequest<Full<Bytes>>> {
        if self.sender.as_ref().is_none_or(SendRequest::is_closed) {
            let stream = TcpStream::connect(self.target.address)
                .await
                .with_context(|| format!("cannot connect to {}", self.target.address))?;
            stream.set_nodelay(true).context("cannot set TCP_NODELAY")?;
            let (sender, connection) = http1::handshake(TokioIo::new(stream))
                .await
                .context("HTTP/1.1 handshake failed")?;
            // The connection ends when the sender is dropped or the server closes it; either
            // way the next request learns of it from the sender.
            tokio::spawn(async move {
                let _ = connection.await;
            });
            self.sender = Some(sender);
        }
        let sender = self.sender.as_mut().context("no connection")?;
        sender.ready().await.context("the connection closed")?;
        Ok(sender)
    }

    /// Sends a request and reads the whole answer. `path` includes the query string.
    pub(crate) async fn send(
        &mut self,
        method: Method,
        path: &str,
        body: Option<Bytes>,
        idempotency_key: Option<HeaderValue>,
    ) -> anyhow::Result<Reply> {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(HOST, self.target.host.clone())
            .header(AUTHORIZATION, self.target.authorization.clone());
        if body.is_some() {
            request = request.header(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        if let Some(key) = idempotency_key {
            request = request.header("idempotency-key", key);
        }
        let request = request
            .body(Full::new(body.unwrap_or_default()))
            .context("cannot build the request")?;
        let sender = self.ready().await?;
        let exchange = async {
            let response = sender
                .send_request(request)
                .await
                .with_context(|| format!("request to {path} failed"))?;
            let status = response.status();
            let body = response
                .into_body()
                .collect()
                .await
                .with_context(|| format!("reading the answer of {path} failed"))?
                .to_bytes();
            anyhow::Ok(Reply { status, body })
        };
        tokio::time::timeout(REQUEST_TIMEOUT, exchange)
            .await
            .with_context(|| format!("no answer to {path} within {REQUEST_TIMEOUT:?}"))?
    }

    /// A GET that must answer `200` with JSON.
    pub(crate) async fn get_json(&mut self, path: &str) -> anyhow::Result<Value> {
        let reply = self.send(Method::GET, path, None, None).await?;
        if reply.status != StatusCode::OK {
            bail!("GET {path} answered {}: {}", reply.status, reply.excerpt());
        }
        serde_json::from_slice(&reply.body).with_context(|| format!("GET {path} did not answer JSON"))
    }

    /// A POST of JSON; answers the status and the JSON body.
    pub(crate) async fn post_json(&mut self, path: &str, body: &Value) -> anyhow::Result<(StatusCode, Value)> {
        let reply = self
            .send(Method::POST, path, Some(Bytes::from(body.to_string())), None)
            .await?;
        let json = serde_json::from_slice(&reply.body).with_context(|| {
            format!(
                "POST {path} answered {} without JSON: {}",
                reply.status,
                reply.excerpt()
            )
        })?;
        Ok((reply.status, json))
    }
}

/// `text` escaped for a query string value.
pub(crate) fn query_value(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            escaped.push(char::from(byte));
        } else {
            escaped.push_str(&format!("%{byte:02X}"));
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    #[test]
    fn query_values_are_escaped() {
        assert_eq!(super::query_value("Olivia Smith"), "Olivia%20Smith");
        assert_eq!(
            super::query_value("2026-01-01T00:00:00.000Z"),
            "2026-01-01T00%3A00%3A00.000Z"
        );
    }
}
