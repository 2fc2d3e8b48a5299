//! The one outbound HTTP client.
//!
//! Built once at start-up and shared for every outbound call (platform JWKS
//! now; OAuth2 tokens, AGS and the LMS later). It pools connections, speaks
//! HTTP/1.1 and HTTP/2 over rustls, sends a `User-Agent` (Canvas refuses
//! requests without one), bounds every call with a timeout and every response
//! body with a size limit. It never follows redirects.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Request, StatusCode, header};
use http_body_util::{BodyExt as _, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
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
    inner: Client<HttpsConnector<HttpConnector>, Body>,
}

impl Default for HttpClient {
    fn default() -> Self {
        Self::new(DEFAULT_CONNECT_TIMEOUT)
    }
}

/// Dials `http` and `https` URLs (web PKI roots), with `TCP_NODELAY` and a
/// connect timeout; `http2` also offers HTTP/2 by ALPN.
pub fn connector(connect_timeout: Duration, http2: bool) -> HttpsConnector<HttpConnector> {
    crate::install_crypto_provider();
    let mut http = HttpConnector::new();
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

impl HttpClient {
    pub fn new(connect_timeout: Duration) -> Self {
        let connector = connector(connect_timeout, true);
        let inner = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(256)
            .build(connector);
        Self { inner }
    }

    /// Sends a request and returns the streaming response (no timeout: the caller sets them).
    pub async fn request(
        &self,
        request: Request<Body>,
    ) -> Result<http::Response<hyper::body::Incoming>, hyper_util::client::legacy::Error> {
        self.inner.request(request).await
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
                .inner
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
