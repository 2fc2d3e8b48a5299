//! The one outbound HTTP client.
//!
//! Built once at start-up and shared for every outbound call (platform JWKS,
//! OAuth2 tokens, AGS, the LMS's APIs). It pools connections, speaks
//! HTTP/1.1 and HTTP/2 over rustls, sends a `User-Agent` on every request
//! (Canvas refuses API calls without one), bounds every call with a timeout
//! and every response body with a size limit. It never follows redirects.
//! [`HttpClient::public_only`] also refuses to connect to loopback,
//! link-local and private addresses that a host name resolves to. An IP
//! literal in a URL is not resolved, so it never reaches that check: the
//! caller checks it first (`Registration::check_service_url`).

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Request, StatusCode, header};
use http_body_util::{BodyExt as _, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::dns::{GaiResolver, Name};
use hyper_util::rt::TokioExecutor;
use url::Url;

use crate::Body;

pub const USER_AGENT: &str = concat!("ltigate/", env!("CARGO_PKG_VERSION"));

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("request to {host} timed out")]
    Timeout { host: String },
    #[error("request to {host} failed: {message}")]
    Network { host: String, message: String },
    #[error("response from {host} is larger than {limit} bytes")]
    TooLarge { host: String, limit: usize },
    #[error("invalid request: {0}")]
    Request(String),
}

/// A response, fully read.
#[derive(Debug)]
pub struct Fetched {
    pub status: StatusCode,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

/// Connect timeout when no upstream sets one.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub struct HttpClient {
    inner: Inner,
}

#[derive(Clone)]
enum Inner {
    Any(Client<HttpsConnector<HttpConnector>, Body>),
    Public(Client<HttpsConnector<HttpConnector<PublicOnly>>, Body>),
}

/// Whether `ip` is an address on the public internet: not loopback,
/// unspecified, private (RFC 1918, IPv6 unique local), link-local, shared
/// (RFC 6598, carrier-grade NAT), broadcast, multicast, documentation,
/// benchmarking (198.18/15), IETF protocol assignments (192.0.0/24) or
/// reserved (240/4). IPv6 forms that carry an IPv4 address are judged by
/// that address (IPv4-mapped, IPv4-compatible, NAT64 `64:ff9b::/96`), and
/// those that reach one through a translator are refused outright (local
/// NAT64 `64:ff9b:1::/48`, 6to4 `2002::/16`), as are site-local `fec0::/10`
/// and documentation `2001:db8::/32`.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            !(v4.is_loopback()
                || v4.is_unspecified()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                || a >= 240
                || (a == 100 && (64..128).contains(&b))
                || (a == 198 && (18..20).contains(&b))
                || (a == 192 && b == 0 && c == 0))
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            // IPv4-compatible (::a.b.c.d, deprecated) and NAT64 well-known.
            let embedded = || std::net::Ipv4Addr::from(((s[6] as u32) << 16) | s[7] as u32);
            if s[..6] == [0; 6] && !v6.is_loopback() && !v6.is_unspecified() {
                return is_public(IpAddr::V4(embedded()));
            }
            if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                return is_public(IpAddr::V4(embedded()));
            }
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_unique_local()
                || v6.is_unicast_link_local()
                || v6.is_multicast()
                || (s[0] == 0x64 && s[1] == 0xff9b && s[2] == 1)
                || s[0] == 0x2002
                || (s[0] & 0xffc0) == 0xfec0
                || (s[0] == 0x2001 && s[1] == 0x0db8))
        }
    }
}

/// A resolver that keeps only public addresses (see [`is_public`]), so that
/// a host name that resolves (or is rebound) to an internal address is not
/// connected to. A name with no public address fails to resolve.
#[derive(Clone)]
pub struct PublicOnly(GaiResolver);

impl tower_service::Service<Name> for PublicOnly {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let host = name.as_str().to_owned();
        let lookup = self.0.call(name);
        Box::pin(async move {
            let public: Vec<SocketAddr> = lookup.await?.filter(|a| is_public(a.ip())).collect();
            if public.is_empty() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::PermissionDenied,
                    format!(
                        "{host} has no public address (loopback, link-local and private ones are not used)"
                    ),
                ));
            }
            Ok(public.into_iter())
        })
    }
}

impl Default for HttpClient {
    fn default() -> Self {
        Self::new(DEFAULT_CONNECT_TIMEOUT)
    }
}

/// Dials `http` and `https` URLs (web PKI roots), with `TCP_NODELAY` and a
/// connect timeout; `http2` also offers HTTP/2 by ALPN.
pub fn connector(connect_timeout: Duration, http2: bool) -> HttpsConnector<HttpConnector> {
    connector_with(HttpConnector::new(), connect_timeout, http2)
}

fn connector_with<R>(
    mut http: HttpConnector<R>,
    connect_timeout: Duration,
    http2: bool,
) -> HttpsConnector<HttpConnector<R>> {
    crate::install_crypto_provider();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(connect_timeout));
    let builder = hyper_rustls::HttpsConnectorBuilder::new()
        .with_webpki_roots()
        .https_or_http()
        .enable_http1();
    if http2 {
        builder.enable_http2().wrap_connector(http)
    } else {
        builder.wrap_connector(http)
    }
}

fn pooled() -> hyper_util::client::legacy::Builder {
    let mut builder = Client::builder(TokioExecutor::new());
    builder
        .pool_idle_timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(256);
    builder
}

impl HttpClient {
    pub fn new(connect_timeout: Duration) -> Self {
        let connector = connector(connect_timeout, true);
        Self {
            inner: Inner::Any(pooled().build(connector)),
        }
    }

    /// A client that connects to public addresses only (see [`PublicOnly`]):
    /// for URLs a platform's launch handed over.
    pub fn public_only(connect_timeout: Duration) -> Self {
        let http = HttpConnector::new_with_resolver(PublicOnly(GaiResolver::new()));
        let connector = connector_with(http, connect_timeout, true);
        Self {
            inner: Inner::Public(pooled().build(connector)),
        }
    }

    /// Sends a request and returns the streaming response (no timeout: the caller sets them).
    pub async fn request(
        &self,
        mut request: Request<Body>,
    ) -> Result<http::Response<hyper::body::Incoming>, hyper_util::client::legacy::Error> {
        if !request.headers().contains_key(header::USER_AGENT) {
            request
                .headers_mut()
                .insert(header::USER_AGENT, HeaderValue::from_static(USER_AGENT));
        }
        match &self.inner {
            Inner::Any(c) => c.request(request).await,
            Inner::Public(c) => c.request(request).await,
        }
    }

    /// GETs `url` with the given `Accept`, reading at most `limit` bytes of body.
    pub async fn get(
        &self,
        url: &Url,
        accept: &'static str,
        limit: usize,
        timeout: Duration,
    ) -> Result<Fetched, ClientError> {
        let request = Request::get(url.as_str())
            .header(header::ACCEPT, HeaderValue::from_static(accept))
            .header(header::USER_AGENT, HeaderValue::from_static(USER_AGENT))
            .body(crate::full_body(Bytes::new()))
            .map_err(|e| ClientError::Request(e.to_string()))?;
        self.send(url, request, limit, timeout).await
    }

    /// Sends a request and reads the whole (size-limited) response.
    pub async fn send(
        &self,
        url: &Url,
        request: Request<Body>,
        limit: usize,
        timeout: Duration,
    ) -> Result<Fetched, ClientError> {
        let host = url.host_str().unwrap_or_default().to_owned();
        let call = async {
            let response = self
                .request(request)
                .await
                .map_err(|e| ClientError::Network {
                    host: host.clone(),
                    message: e.to_string(),
                })?;
            let (parts, body) = response.into_parts();
            let body = Limited::new(body, limit)
                .collect()
                .await
                .map_err(|e| {
                    if e.is::<http_body_util::LengthLimitError>() {
                        ClientError::TooLarge {
                            host: host.clone(),
                            limit,
                        }
                    } else {
                        ClientError::Network {
                            host: host.clone(),
                            message: e.to_string(),
                        }
                    }
                })?
                .to_bytes();
            Ok(Fetched {
                status: parts.status,
                headers: parts.headers,
                body,
            })
        };
        tokio::time::timeout(timeout, call)
            .await
            .map_err(|_| ClientError::Timeout { host: host.clone() })?
    }
}

#[cfg(test)]
mod tests {
    use super::is_public;

    #[test]
    fn internal_addresses_in_every_spelling_are_not_public() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.1.2.3",
            "198.18.0.1",
            "192.0.0.8",
            "240.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fc00::1",
            "fe80::1",
            "fec0::1",
            "::ffff:127.0.0.1",
            "::127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b:1::1",
            "2002:c0a8:101::1",
            "2001:db8::1",
            "ff02::1",
        ] {
            assert!(!is_public(ip.parse().expect(ip)), "{ip} counted as public");
        }
        for ip in [
            "93.184.216.34",
            "2606:4700::1111",
            "::ffff:93.184.216.34",
            "64:ff9b::5db8:d822",
        ] {
            assert!(is_public(ip.parse().expect(ip)), "{ip} counted as internal");
        }
    }
}
