//! Who sent a request: the client's address, taken from the connection, or, when the connection
//! comes from a proxy the operator trusts (`--trusted-proxies`), from the `X-Forwarded-For`
//! header that proxy set. The sign-in throttle, the Admin Portal's records and the request log
//! use it.
//!
//! `X-Forwarded-For` is read from the right: each trusted proxy appends the address it received
//! the request from, so the rightmost address that is not a trusted proxy is the first one no
//! trusted party vouches for: the client. Addresses to its left were written by the client
//! itself and are never believed. A header that cannot be read counts as absent.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;

/// The client's address as resolved for this request (in the request's extensions).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ClientAddress(pub(crate) IpAddr);

/// The most networks `--trusted-proxies` takes.
pub const MAX_TRUSTED_PROXIES: usize = 64;

/// The networks whose connections may say, in `X-Forwarded-For`, whom they forward.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<(IpAddr, u8)>);

impl TrustedProxies {
    /// Parses a comma-separated list of addresses and CIDR networks (`10.0.0.0/8, ::1`).
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut networks = Vec::new();
        for item in text.split(',').map(str::trim).filter(|item| !item.is_empty()) {
            let (address, bits) = match item.split_once('/') {
                Some((address, bits)) => (address, Some(bits)),
                None => (item, None),
            };
            let address: IpAddr = address
                .parse()
                .map_err(|_| format!("`{item}` is not an IP address or network (e.g. 10.0.0.0/8)"))?;
            let address = address.to_canonical();
            let most = if address.is_ipv4() { 32 } else { 128 };
            let bits = match bits {
                None => most,
                Some(bits) => bits
                    .parse::<u8>()
                    .ok()
                    .filter(|bits| *bits <= most)
                    .ok_or_else(|| format!("`{item}`: the prefix length must be 0 to {most}"))?,
            };
            networks.push((address, bits));
        }
        if networks.len() > MAX_TRUSTED_PROXIES {
            return Err(format!("at most {MAX_TRUSTED_PROXIES} trusted proxy networks"));
        }
        Ok(Self(networks))
    }

    /// Whether no proxy is trusted.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `address` is one of the trusted proxies.
    pub fn contains(&self, address: IpAddr) -> bool {
        let address = address.to_canonical();
        self.0.iter().any(|(network, bits)| match (network, address) {
            (IpAddr::V4(network), IpAddr::V4(address)) => prefix_matches(&network.octets(), &address.octets(), *bits),
            (IpAddr::V6(network), IpAddr::V6(address)) => prefix_matches(&network.octets(), &address.octets(), *bits),
            _ => false,
        })
    }

    /// The client of a request that arrived from `peer` with these headers.
    pub(crate) fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = peer.to_canonical();
        if !self.contains(peer) {
            return peer;
        }
        let mut forwarded = Vec::new();
        for value in headers.get_all("x-forwarded-for") {
            let Ok(text) = value.to_str() else {
                return peer;
            };
            for item in text.split(',') {
                match parse_forwarded(item.trim()) {
                    Some(address) => forwarded.push(address),
                    None => return peer,
                }
            }
        }
        let mut client = peer;
        for address in forwarded.into_iter().rev() {
            client = address;
            if !self.contains(address) {
                break;
            }
        }
        client
    }
}

fn prefix_matches(network: &[u8], address: &[u8], bits: u8) -> bool {
    let (whole, rest) = (usize::from(bits / 8), bits % 8);
    network[..whole] == address[..whole]
        && (rest == 0 || {
            let mask = 0xff_u8 << (8 - rest);
            network[whole] & mask == address[whole] & mask
        })
}

/// One `X-Forwarded-For` entry: an address, possibly with a port (`[::1]:443`, `1.2.3.4:80`).
fn parse_forwarded(item: &str) -> Option<IpAddr> {
    if item.len() > 64 {
        return None;
    }
    if let Ok(address) = item.parse::<IpAddr>() {
        return Some(address.to_canonical());
    }
    item.parse::<SocketAddr>().ok().map(|socket| socket.ip().to_canonical())
}

/// Resolves the client's address once per request and records it in the request's span.
pub(crate) async fn resolve(
    State(trusted): State<std::sync::Arc<TrustedProxies>>,
    mut request: Request,
    next: Next,
) -> Response {
    if let Some(ConnectInfo(peer)) = request.extensions().get::<ConnectInfo<SocketAddr>>().copied() {
        let client = trusted.client(peer.ip(), request.headers());
        tracing::Span::current().record("client", tracing::field::display(client));
        request.extensions_mut().insert(ClientAddress(client));
    }
    next.run(request).await
}

/// The client's address of a request, as text (empty when unknown: a request that did not come
/// through a socket).
pub(crate) fn address_of(extensions: &axum::http::Extensions) -> Option<String> {
    extensions.get::<ClientAddress>().map(|client| client.0.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append("x-forwarded-for", value.parse().unwrap());
        }
        headers
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn without_trusted_proxies_the_connection_is_the_client() {
        let none = TrustedProxies::default();
        assert_eq!(none.client(ip("10.0.0.5"), &headers(&["203.0.113.9"])), ip("10.0.0.5"));
    }

    #[test]
    fn the_rightmost_untrusted_forwarded_address_is_the_client() {
        let trusted = TrustedProxies::parse("10.0.0.0/8, 192.168.1.1").unwrap();
        // The client wrote a lie on the left; the proxies appended the truth on the right.
        let forwarded = headers(&["198.51.100.1, 203.0.113.9", "192.168.1.1"]);
        assert_eq!(trusted.client(ip("10.1.2.3"), &forwarded), ip("203.0.113.9"));
        // From an untrusted peer, the header is ignored.
        assert_eq!(trusted.client(ip("203.0.113.50"), &forwarded), ip("203.0.113.50"));
        // No header, or one that cannot be read: the proxy itself.
        assert_eq!(trusted.client(ip("10.1.2.3"), &HeaderMap::new()), ip("10.1.2.3"));
        assert_eq!(
            trusted.client(ip("10.1.2.3"), &headers(&["nonsense, 1.2.3.4"])),
            ip("10.1.2.3")
        );
        // Only trusted addresses: the leftmost.
        assert_eq!(
            trusted.client(ip("10.1.2.3"), &headers(&["10.9.9.9, 10.8.8.8"])),
            ip("10.9.9.9")
        );
        // Ports and IPv6, IPv4-mapped peers.
        assert_eq!(
            trusted.client(ip("::ffff:10.1.2.3"), &headers(&["[2001:db8::1]:443"])),
            ip("2001:db8::1")
        );
    }

    #[test]
    fn networks_are_checked_and_matched_by_prefix() {
        let trusted = TrustedProxies::parse("172.16.0.0/12, fd00::/8").unwrap();
        assert!(trusted.contains(ip("172.31.255.255")));
        assert!(!trusted.contains(ip("172.32.0.0")));
        assert!(trusted.contains(ip("fdab::1")));
        assert!(!trusted.contains(ip("fe80::1")));
        assert!(TrustedProxies::parse("").unwrap().is_empty());
        for bad in ["10.0.0.0/33", "proxy.internal", "::1/129", "10.0.0.0/x"] {
            assert!(TrustedProxies::parse(bad).is_err(), "{bad}");
        }
        let many = vec!["10.0.0.1"; MAX_TRUSTED_PROXIES + 1].join(",");
        assert!(TrustedProxies::parse(&many).is_err());
    }
}
