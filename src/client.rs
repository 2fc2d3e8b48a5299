//! The one outbound HTTP client.
//!
//! Built once at start-up and shared for every outbound call (platform JWKS,
//! OAuth2 tokens, AGS, the LMS's APIs). It pools connections, speaks
//! HTTP/1.1 and HTTP/2 over rustls, sends a `User-Agent` on every request
//! (Canvas refuses API calls without one), bounds every call with a timeout
//! and every response body with a size limit. It never follows redirects.
//! [`HttpClient::public_only`] also refuses to connect to loopback,
//! link-local and private addresses, whatever a host name resolves to.

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
/// (RFC 6598, carrier-grade NAT), broadcast, multicast or documentation,
/// also when written as an IPv4-mapped IPv6 address.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_unspecified()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b)))
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_public(IpAddr::V4(v4)),
            None => {
                !(v6.is_loopback()
                    || v6.is_unspecified()
                    || v6.is_unique_local()
                    || v6.is_unicast_link_local()
                    || v6.is_multicast())
            }
        },
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
