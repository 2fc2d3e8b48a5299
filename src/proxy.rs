//! The gated reverse proxy: forwarding an allowed request to the LMS.
//!
//! By the time a request gets here, the gating rules (`rules.rs`) have allowed its
//! normalised path for one live grant. This module sends exactly that path
//! (plus the query string, which never took part in the decision) to the
//! upstream, with the method, body and end-to-end headers unchanged and
//! streamed both ways. It removes what must not cross: hop-by-hop headers,
//! every client copy of the headers ltigate sets (any case, `_` or `-`),
//! the foreign identity and routing headers other layers trust
//! (`strip.rs`, plus `[upstream] strip_request_headers`), the browser's
//! `Authorization`, and every cookie the LMS did not set through ltigate. It adds what the LMS may
//! trust: the signed assertion and `X-Forwarded-*` set by ltigate.
//!
//! Cookies are kept apart by name. An upstream `Set-Cookie: NAME=V` reaches
//! the browser as `__Host-lms.NAME=V` (over plain HTTP, `lms.NAME=V`), host-only
//! on ltigate's host with `Path=/`; and on the way in only cookies with that
//! prefix are forwarded, with the prefix removed. So the platform's cookies
//! (a Moodle on the same host sends `MoodleSession`), the LMS's own
//! parent-domain cookies (Tutor sets `SESSION_COOKIE_DOMAIN = LMS_HOST`, so a
//! browser logged into the LMS sends its `sessionid` to every subdomain) and
//! anything else stay behind: a launch can never log anyone out of a direct
//! LMS session. The `__Host-` prefix makes browsers refuse such a cookie
//! unless it comes over HTTPS from ltigate's host name itself, host-only, so
//! a sibling or parent domain cannot plant one. Cookies ignore ports, though:
//! another application on the same host name (a platform on another port)
//! could still set one, and over plain HTTP the `lms.` prefix guards nothing.
//! Give ltigate a host name of its own. (What such a planted cookie could do
//! is small: the LMS app logs the assertion's user in over any other
//! session, and Django's Origin check still refuses the other site's POSTs.)
//! A cookie the LMS made readable to scripts (not
//! `HttpOnly`, such as Django's `csrftoken`, which Open edX's JavaScript reads
//! into `X-CSRFToken`) is also given to the browser under its own name, for
//! the page's scripts only: that copy is never forwarded.
//!
//! On HTTPS every upstream cookie gains `Secure; SameSite=None` (and
//! `Partitioned` when configured) so that it works in the platform's iframe.
//!
//! Every forwarded response is `Cache-Control: private` (see
//! `cache.rs`): it was gated on a session, so no shared cache may
//! store it.

use std::future::Future as _;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use cookie::{Cookie, SameSite};
use http::header::{self, HeaderName};
use http::{HeaderMap, HeaderValue, Request, Response, Uri, Version};
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::{BodyExt as _, Limited};
use tokio::time::{Instant, Sleep};

use crate::assertion::AssertionConfig;
use crate::content::ContentPath;
use crate::{Body, BoxError};

mod cache;
mod pool;
mod strip;
use pool::{PoolError, UpstreamPool};

/// The LMS behind the gateway.
#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    /// Scheme, host and port of the LMS.
    pub url: url::Url,
    /// The `Host` header to send, when the LMS expects its public name.
    pub host: Option<http::HeaderValue>,
    pub connect_timeout: std::time::Duration,
    pub response_header_timeout: std::time::Duration,
    pub request_timeout: std::time::Duration,
    /// Template of the LMS page that renders launched content:
    /// `{usage_key}` and `{course_key}` are replaced.
    pub display_path: String,
    /// Query added to the display page request, e.g. `view=student_view`.
    pub display_query: Option<String>,
    pub max_request_body_bytes: u64,
    /// More request headers to remove, on top of the built-in list:
    /// lower-case, `-` for `_`, a trailing `*` for a prefix.
    pub strip_request_headers: Vec<String>,
    /// The LMS's `SESSION_COOKIE_DOMAIN` (Tutor sets it to `LMS_HOST`),
    /// lower-case and without a leading dot: `cookie_domain`, or else the
    /// host name of `host`. Only `ltigate check` reads it.
    pub cookie_domain: Option<String>,
}

impl UpstreamConfig {
    /// `http://lms:8000`, without a trailing slash.
    pub fn origin(&self) -> String {
        self.url.origin().ascii_serialization()
    }

    /// Whether a browser sends cookies of the LMS's `cookie_domain` to
    /// `host` (RFC 6265 §5.1.3 domain matching).
    pub fn shares_cookies_with(&self, host: &str) -> bool {
        let host = host.to_ascii_lowercase();
        self.cookie_domain.as_deref().is_some_and(|domain| {
            host == domain
                || host
                    .strip_suffix(domain)
                    .is_some_and(|head| head.ends_with('.'))
        })
    }
}

/// Why a forward failed.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("the upstream could not be reached: {0}")]
    Connect(String),
    #[error("the upstream did not answer in time")]
    Timeout,
    #[error("the upstream connection failed: {0}")]
    Upstream(String),
    #[error("the request body is larger than {0} bytes")]
    BodyTooLarge(u64),
    #[error("the request body did not arrive in time")]
    BodyTimedOut,
    #[error("protocol upgrades (WebSocket) are not supported")]
    UpgradeRefused,
}

/// The methods a browser's pages use, the only ones forwarded, as an
/// `Allow` header lists them.
pub const FORWARDED_METHODS: &str = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS";

/// Whether `method` is one of [`FORWARDED_METHODS`]. CONNECT would make the
/// LMS's front server a tunnel, TRACE echoes the request (cookies and the
/// assertion included) back to the page, and an extension method (WebDAV's
/// PROPFIND, anything made up) is nothing an Open edX page sends, yet a
/// rule without `methods` would let it through to whatever parses it.
pub fn forwards_method(method: &http::Method) -> bool {
    use http::Method as M;
    // Standard methods compare by their tag.
    [
        M::GET,
        M::HEAD,
        M::POST,
        M::PUT,
        M::PATCH,
        M::DELETE,
        M::OPTIONS,
    ]
    .contains(method)
}

/// Identity headers ltigate sets; any client copy is removed.
pub const USER_HEADER: HeaderName = HeaderName::from_static("x-ltigate-user");
pub const EMAIL_HEADER: HeaderName = HeaderName::from_static("x-ltigate-email");
pub const NAME_HEADER: HeaderName = HeaderName::from_static("x-ltigate-name");
pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
/// The browser-side names of the LMS's cookies start with this (see the module doc).
pub const UPSTREAM_COOKIE_PREFIX_HTTPS: &str = "__Host-lms.";
/// Over plain HTTP (local development), where `__Host-` cookies cannot be set.
pub const UPSTREAM_COOKIE_PREFIX_HTTP: &str = "lms.";

/// Who the request is made for, as the LMS will see it.
pub struct Identity {
    pub assertion: HeaderValue,
    /// For the plain identity headers; `None` when they are off.
    pub username: Option<String>,
    pub email: Option<String>,
    pub name: Option<String>,
}

/// Where the request comes from and what it is.
#[derive(Clone, Copy)]
pub struct Origin<'a> {
    /// The client's IP address, as `X-Forwarded-For` carries it.
    pub peer: Option<&'a HeaderValue>,
    pub request_id: &'a str,
}

/// The upstream and everything needed to talk to it.
pub struct Proxy {
    config: UpstreamConfig,
    /// The parameter names `display_query` sets, decoded.
    display_names: Vec<String>,
    assertion_header: HeaderName,
    identity_headers: bool,
    pool: Arc<UpstreamPool>,
    /// Origins the upstream may use in `Location` that really mean "us".
    upstream_aliases: Vec<String>,
    public_origin: String,
    public_scheme: HeaderValue,
    public_host: HeaderValue,
    host: HeaderValue,
    session_cookie: String,
    https: bool,
    partitioned: bool,
}

/// The public facts about the gateway the proxy needs.
pub struct PublicSide<'a> {
    pub origin: String,
    pub url: &'a url::Url,
    pub session_cookie: &'a str,
    pub partitioned: bool,
}

impl Proxy {
    pub fn new(
        config: UpstreamConfig,
        assertion: &AssertionConfig,
        public: PublicSide<'_>,
    ) -> Self {
        let upstream_origin = config.origin();
        let pool = UpstreamPool::new(
            Uri::try_from(upstream_origin.as_str()).unwrap_or_default(),
            config.connect_timeout,
        );
        let authority = upstream_origin
            .split_once("://")
            .map_or(upstream_origin.as_str(), |(_, a)| a)
            .to_owned();
        let host = config
            .host
            .clone()
            .or_else(|| HeaderValue::from_str(&authority).ok())
            .unwrap_or_else(|| HeaderValue::from_static("localhost"));
        let mut upstream_aliases = vec![upstream_origin.clone()];
        if let Ok(h) = host.to_str() {
            for scheme in ["http", "https"] {
                upstream_aliases.push(format!("{scheme}://{h}"));
            }
        }
        let public_host =
            public.url[url::Position::BeforeHost..url::Position::AfterPort].to_owned();
        let display_names = config
            .display_query
            .as_deref()
            .map(|q| {
                form_urlencoded::parse(q.as_bytes())
                    .map(|(name, _)| name.into_owned())
                    .collect()
            })
            .unwrap_or_default();
        Self {
            display_names,
            assertion_header: assertion.header.clone(),
            identity_headers: assertion.identity_headers,
            pool,
            upstream_aliases,
            public_scheme: HeaderValue::from_str(public.url.scheme())
                .unwrap_or(HeaderValue::from_static("https")),
            public_host: HeaderValue::from_str(&public_host)
                .unwrap_or(HeaderValue::from_static("localhost")),
            https: public.url.scheme() == "https",
            public_origin: public.origin,
            host,
            session_cookie: public.session_cookie.to_owned(),
            partitioned: public.partitioned,
            config,
        }
    }

    pub fn config(&self) -> &UpstreamConfig {
        &self.config
    }

    /// The upstream path and query of the display page for `content`: the
    /// operator's `display_query` first, then the client's query without
    /// any parameter that `display_query` sets.
    ///
    /// The operator's parameters must win, and Django lets the last copy of
    /// a repeated name win: `QueryDict` (django/http/request.py) is a
    /// `MultiValueDict`, whose `__getitem__` and `get` return the last value
    /// (django/utils/datastructures.py), and `render_xblock`
    /// (openedx-platform lms/djangoapps/courseware/views/views.py) reads
    /// `request.GET.get('view', 'student_view')`. So such a client
    /// parameter is dropped, compared by its name as Django decodes it
    /// (percent-decoded, `+` as a space, split on `&` only, as
    /// `urllib.parse.parse_qsl` does), and everything else is passed on
    /// exactly as sent.
    pub fn display_target(&self, content: &ContentPath, client_query: Option<&str>) -> String {
        let mut target = self
            .config
            .display_path
            .replace("{usage_key}", content.usage.as_str())
            .replace("{course_key}", content.course.as_str());
        let mut sep = '?';
        if let Some(q) = &self.config.display_query {
            target.push(sep);
            target.push_str(q);
            sep = '&';
        }
        for param in client_query.unwrap_or_default().split('&') {
            if param.is_empty() || self.display_sets(param) {
                continue;
            }
            target.push(sep);
            target.push_str(param);
            sep = '&';
        }
        target
    }

    /// Whether the one query parameter `param` (no `&`) names a parameter
    /// that `display_query` sets.
    fn display_sets(&self, param: &str) -> bool {
        !self.display_names.is_empty()
            && form_urlencoded::parse(param.as_bytes())
                .next()
                .is_some_and(|(name, _)| self.display_names.iter().any(|n| *n == name))
    }

    /// Checks that the upstream accepts TCP connections.
    pub async fn ping(&self) -> Result<(), String> {
        let url = &self.config.url;
        let host = url.host_str().unwrap_or_default();
        let port = url.port_or_known_default().unwrap_or(80);
        match tokio::time::timeout(
            self.config.connect_timeout,
            tokio::net::TcpStream::connect((host, port)),
        )
        .await
        {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("connect timed out".to_owned()),
        }
    }

    /// Forwards `req` to `target` (the checked path, plus the query).
    pub async fn forward<B>(
        &self,
        req: Request<B>,
        target: &str,
        identity: Identity,
        origin: Origin<'_>,
    ) -> Result<Response<Body>, ProxyError>
    where
        B: HttpBody<Data = Bytes> + Send + Sync + 'static,
        B::Error: Into<BoxError>,
    {
        let deadline = Instant::now() + self.config.request_timeout;
        if is_upgrade(req.headers()) {
            return Err(ProxyError::UpgradeRefused);
        }
        let limit = self.config.max_request_body_bytes;
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > limit) {
            return Err(ProxyError::BodyTooLarge(limit));
        }
        let (parts, body) = req.into_parts();
        let uri = Uri::try_from(target).map_err(|e| ProxyError::Upstream(e.to_string()))?;
        // A body already at its end (most GETs) is sent as an empty one: it
        // counts as sent at once, and needs no limit or wrapper.
        let (body, mut body_sent) = if body.is_end_stream() {
            let empty = http_body_util::Empty::new().map_err(|never| match never {});
            (empty.boxed(), None)
        } else {
            let limited = Limited::new(body, usize::try_from(limit).unwrap_or(usize::MAX));
            let (body, sent) = SignalEnd::new(limited);
            (body.boxed(), Some(sent))
        };
        let mut upstream = Request::builder()
            .method(parts.method)
            .uri(uri)
            .version(Version::HTTP_11)
            .body(body)
            .map_err(|e| ProxyError::Upstream(e.to_string()))?;
        let headers = upstream.headers_mut();
        *headers = parts.headers;
        self.strip_request_headers(headers);
        headers.insert(header::HOST, self.host.clone());
        if let Some(peer) = origin.peer {
            headers.insert(X_FORWARDED_FOR, peer.clone());
        }
        headers.insert(X_FORWARDED_PROTO, self.public_scheme.clone());
        headers.insert(X_FORWARDED_HOST, self.public_host.clone());
        if let Ok(v) = HeaderValue::from_str(origin.request_id) {
            headers.insert(REQUEST_ID_HEADER, v);
        }
        headers.insert(self.assertion_header.clone(), identity.assertion);
        if self.identity_headers {
            let mut put = |name: HeaderName, value: Option<&str>| {
                if let Some(v) = value.and_then(|v| HeaderValue::from_bytes(v.as_bytes()).ok()) {
                    headers.insert(name, v);
                }
            };
            put(USER_HEADER, identity.username.as_deref());
            put(EMAIL_HEADER, identity.email.as_deref());
            put(NAME_HEADER, identity.name.as_deref());
        }

        // One timer bounds the exchange. While the request body is being
        // sent it runs to the request deadline; once the body is sent, to the
        // response-header deadline if that is sooner; once the headers are
        // in, it goes with the response body, back at the request deadline.
        let header_wait = self.config.response_header_timeout;
        let header_deadline = || deadline.min(Instant::now() + header_wait);
        let request = self.pool.send(upstream);
        tokio::pin!(request);
        let mut timer = Box::pin(tokio::time::sleep_until(if body_sent.is_some() {
            deadline
        } else {
            header_deadline()
        }));
        let response = loop {
            tokio::select! {
                result = &mut request => match result {
                    Ok(r) => break r,
                    Err(e) => return Err(classify(&e, limit)),
                },
                () = &mut timer => return Err(ProxyError::Timeout),
                _ = async { body_sent.as_mut().expect("guarded").await }, if body_sent.is_some() => {
                    body_sent = None;
                    timer.as_mut().reset(header_deadline());
                }
            }
        };
        let (mut parts, body) = response.into_parts();
        self.rewrite_response_headers(&mut parts.headers);
        timer.as_mut().reset(deadline);
        let body = Deadline {
            inner: body,
            sleep: timer,
        };
        Ok(Response::from_parts(parts, body.boxed()))
    }

    /// Turns the client's headers into the upstream's, in place: drops
    /// hop-by-hop headers, the client's `Authorization` and anything only
    /// ltigate may set, and ltigate's own cookies. (`Host` is replaced.)
    fn strip_request_headers(&self, headers: &mut HeaderMap) {
        remove_connection_headers(headers, |n| {
            n == header::AUTHORIZATION || self.is_stripped(n.as_str())
        });
        if headers.contains_key(header::COOKIE) {
            let kept = self.upstream_cookies(headers);
            headers.remove(header::COOKIE);
            if let Some(v) = kept {
                headers.insert(header::COOKIE, v);
            }
        }
    }

    /// Headers only ltigate may set, the built-in foreign identity and
    /// routing headers ([`strip`]) and the operator's
    /// `strip_request_headers`, matched in any case and with `_` for `-`
    /// (WSGI servers merge `X_Forwarded_User` into `X-Forwarded-User`).
    fn is_stripped(&self, name: &str) -> bool {
        strip::matches(name, self.assertion_header.as_str())
            || strip::matches(name, "x-ltigate-*")
            || strip::matches(name, "x-forwarded-*")
            || strip::matches(name, REQUEST_ID_HEADER.as_str())
            || strip::is_foreign(name)
            || self
                .config
                .strip_request_headers
                .iter()
                .any(|entry| strip::matches(name, entry))
    }

    /// The one `Cookie` header the LMS gets: the browser's cookies that carry
    /// [`Self::cookie_prefix`], without it, from every `Cookie` header (HTTP/2
    /// splits them; HTTP/1.1 wants one). `None` when there are none.
    fn upstream_cookies(&self, headers: &HeaderMap) -> Option<HeaderValue> {
        let prefix = self.cookie_prefix();
        let mut kept = String::new();
        for (name, value) in crate::cookies::pairs(headers) {
            let Some(name) = name.strip_prefix(prefix) else {
                continue;
            };
            if name.is_empty() || self.is_gateway_cookie(name) {
                continue;
            }
            if !kept.is_empty() {
                kept.push_str("; ");
            }
            kept.push_str(name);
            kept.push('=');
            kept.push_str(value);
        }
        if kept.is_empty() {
            None
        } else {
            HeaderValue::from_str(&kept).ok()
        }
    }

    /// The browser-side name prefix of the LMS's cookies. On HTTPS,
    /// `__Host-`: browsers accept such a cookie only from this very host,
    /// over HTTPS, with `Path=/` and no `Domain`.
    fn cookie_prefix(&self) -> &'static str {
        if self.https {
            UPSTREAM_COOKIE_PREFIX_HTTPS
        } else {
            UPSTREAM_COOKIE_PREFIX_HTTP
        }
    }

    /// ltigate's own session and login-state cookies.
    fn is_gateway_cookie(&self, name: &str) -> bool {
        name == self.session_cookie || name.starts_with("ltigate_state_")
    }

    fn rewrite_response_headers(&self, headers: &mut HeaderMap) {
        remove_connection_headers(headers, |_| false);
        cache::make_private(headers);
        // `Refresh: N; url=...` is a redirect the redirect gate, which reads
        // a 3xx's Location, never sees; no Open edX view sends one (its
        // redirects are 3xx), so it is dropped rather than followed
        // anywhere.
        headers.remove(HeaderName::from_static("refresh"));
        if headers.contains_key(header::SET_COOKIE) {
            let cookies: Vec<HeaderValue> = headers
                .get_all(header::SET_COOKIE)
                .iter()
                .cloned()
                .collect();
            headers.remove(header::SET_COOKIE);
            for value in cookies {
                match self.rewrite_set_cookie(&value) {
                    Some((forwarded, readable)) => {
                        headers.append(header::SET_COOKIE, forwarded);
                        if let Some(v) = readable {
                            headers.append(header::SET_COOKIE, v);
                        }
                    }
                    None => tracing::warn!(
                        "dropped an upstream Set-Cookie that could not be parsed or names a gateway cookie"
                    ),
                }
            }
        }
        let rewritten = headers
            .get(header::LOCATION)
            .and_then(|l| l.to_str().ok())
            .and_then(|location| {
                self.upstream_aliases.iter().find_map(|o| {
                    location
                        .strip_prefix(o.as_str())
                        .filter(|r| r.is_empty() || r.starts_with('/'))
                })
            })
            .and_then(|rest| HeaderValue::from_str(&format!("{}{rest}", self.public_origin)).ok());
        if let Some(v) = rewritten {
            headers.insert(header::LOCATION, v);
        }
    }

    /// An upstream `Set-Cookie` as the browser gets it: the copy ltigate
    /// forwards back (prefixed, host-only, `Path=/`), and for a cookie that
    /// scripts may read, a copy under its own name that is never forwarded.
    fn rewrite_set_cookie(
        &self,
        value: &HeaderValue,
    ) -> Option<(HeaderValue, Option<HeaderValue>)> {
        let mut c = Cookie::parse(value.to_str().ok()?.to_owned()).ok()?;
        if self.is_gateway_cookie(c.name()) {
            return None;
        }
        c.unset_domain();
        if self.https {
            c.set_secure(true);
            c.set_same_site(SameSite::None);
            if self.partitioned {
                c.set_partitioned(true);
            }
        }
        // A readable copy keeps the LMS's own name, which must not look like
        // a forwarded one: the copy is for page scripts only.
        let looks_forwarded = [UPSTREAM_COOKIE_PREFIX_HTTPS, UPSTREAM_COOKIE_PREFIX_HTTP]
            .iter()
            .any(|p| c.name().starts_with(p));
        let readable = (c.http_only() != Some(true) && !looks_forwarded)
            .then(|| HeaderValue::from_str(&c.to_string()).ok())
            .flatten();
        let name = format!("{}{}", self.cookie_prefix(), c.name());
        c.set_name(name);
        c.set_path("/");
        c.set_http_only(true);
        Some((HeaderValue::from_str(&c.to_string()).ok()?, readable))
    }
}

/// RFC 9110 §7.6.1 connection-specific fields, plus the legacy ones.
const HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

fn is_hop_by_hop(name: &HeaderName) -> bool {
    // Standard names compare by their tag, without touching the bytes.
    HOP_BY_HOP.iter().any(|h| h == name)
}

/// Removes the hop-by-hop fields, every field the `Connection` header names,
/// and the fields `also` picks.
fn remove_connection_headers(headers: &mut HeaderMap, also: impl Fn(&HeaderName) -> bool) {
    let dropped: Vec<HeaderName> = {
        let listed = connection_tokens(headers);
        headers
            .keys()
            .filter(|name| {
                is_hop_by_hop(name)
                    || also(name)
                    || listed.iter().any(|t| t.eq_ignore_ascii_case(name.as_str()))
            })
            .cloned()
            .collect()
    };
    for name in &dropped {
        headers.remove(name);
    }
}

/// The field names a `Connection` header lists, as sent (compare them
/// without regard to case).
fn connection_tokens(headers: &HeaderMap) -> Vec<&str> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .collect()
}

fn is_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        || connection_tokens(headers)
            .iter()
            .any(|t| t.eq_ignore_ascii_case("upgrade"))
}

fn classify(e: &PoolError, limit: u64) -> ProxyError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if err.is::<http_body_util::LengthLimitError>() {
            return ProxyError::BodyTooLarge(limit);
        }
        if err.is::<crate::BodyTimedOut>() {
            return ProxyError::BodyTimedOut;
        }
        source = err.source();
    }
    match e {
        PoolError::Connect(message) => ProxyError::Connect(message.clone()),
        PoolError::Http(e) => ProxyError::Upstream(e.to_string()),
    }
}

/// A request body that reports when it has been sent in full (or failed).
struct SignalEnd<B> {
    inner: Pin<Box<B>>,
    sent: Option<tokio::sync::oneshot::Sender<()>>,
}

impl<B: HttpBody> SignalEnd<B> {
    /// The body, and what resolves once it has been sent.
    fn new(inner: B) -> (Self, tokio::sync::oneshot::Receiver<()>) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let body = Self {
            inner: Box::pin(inner),
            sent: Some(tx),
        };
        (body, rx)
    }

    fn signal(&mut self) {
        if let Some(tx) = self.sent.take() {
            let _ = tx.send(());
        }
    }
}

impl<B> HttpBody for SignalEnd<B>
where
    B: HttpBody<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = self.inner.as_mut().poll_frame(cx).map_err(Into::into);
        if matches!(polled, Poll::Ready(None | Some(Err(_)))) || self.inner.is_end_stream() {
            self.signal();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A response body that fails once the whole-request deadline passes.
struct Deadline<B> {
    inner: B,
    sleep: Pin<Box<Sleep>>,
}

impl<B> HttpBody for Deadline<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if self.sleep.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(Err(
                "the upstream response exceeded the request timeout".into(),
            )));
        }
        Pin::new(&mut self.inner).poll_frame(cx).map_err(Into::into)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
