//! The application: shared state and request routing.
//!
//! One immutable [`AppState`] is built at start-up and shared by every
//! connection. [`handle`] routes a request to the LTI endpoints, the JWKS
//! documents, the health checks, the display path, or (when an upstream is
//! configured) the gated proxy, and turns every refusal into a response
//! through [`crate::reject`]. It writes one access-log line per request. It
//! takes any request body, so it can be called without a socket.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use rand::RngCore as _;

use crate::assertion::Asserter;
use crate::client::HttpClient;
use crate::clock::Clock;
use crate::config::Config;
use crate::content::{ContentPath, DISPLAY_PREFIX, LAUNCH_PATH};
use crate::cookies::{CookiePolicy, RequestCookies};
use crate::form::{self, FormError};
use crate::keys::ToolKeys;
use crate::lti::launch::{self, BrowserCookies as _, LaunchForm, Launched};
use crate::lti::login::{self, LoginParams};
use crate::lti::state_cookie_name;
use crate::pages::{Page, html, no_store};
use crate::proxy::{Identity, Origin, Proxy, PublicSide};
use crate::registry::Registry;
use crate::reject::Rejection;
use crate::rules::{Decision, Rule};
use crate::session::{AccessError, Session, Sessions, StoreSharing};
use crate::store::{self, Store, StoreError};
use crate::{Body, BoxError, full_body};

/// Largest login or launch form accepted. id_tokens with many custom claims
/// run to tens of kilobytes.
const MAX_FORM_BYTES: usize = 256 * 1024;
/// The state cookie is sent only to the LTI endpoints.
const STATE_COOKIE_PATH: &str = "/lti/1p3/";

/// The client's address, given with each request by the server in its
/// `X-Forwarded-For` form, rendered once per connection.
#[derive(Debug, Clone)]
pub struct PeerAddr {
    pub forwarded_for: Option<HeaderValue>,
}

impl PeerAddr {
    pub fn new(addr: SocketAddr) -> Self {
        Self {
            forwarded_for: HeaderValue::from_str(&addr.ip().to_string()).ok(),
        }
    }
}

/// A response, and what the gateway decided for the access log.
type Answer = (Response<Body>, &'static str);

/// Everything a request handler needs, built once.
pub struct AppState {
    pub config: Config,
    pub clock: Arc<dyn Clock>,
    pub store: Arc<dyn Store>,
    pub registry: Registry,
    pub tool_keys: ToolKeys,
    pub client: HttpClient,
    pub sessions: Sessions,
    /// The gated proxy and its assertions; `None` without `[upstream]`.
    pub proxy: Option<(Proxy, Asserter)>,
    /// Grade delivery state; `None` without `[grades]`.
    pub grades: Option<crate::grades::worker::GradesRuntime>,
    /// The LMS content catalog for deep linking; `None` without `[deep_linking]`.
    pub catalog: Option<crate::deep_linking::Catalog>,
    /// `config.server.public_origin()`, rendered once: launches use it
    /// several times each.
    pub public_origin: String,
    cookies: CookiePolicy,
}

impl AppState {
    /// Builds the state from a validated config. Must run inside a tokio runtime.
    pub fn build(mut config: Config, clock: Arc<dyn Clock>) -> Result<Arc<Self>, StoreError> {
        let store = store::open(&config.store, clock.clone())?;
        let tool_keys = ToolKeys::new(std::mem::take(&mut config.keys));
        let registry = Registry::new(&config.platforms, &tool_keys, &config.jwks);
        let sharing = match config.store {
            crate::config::StoreConfig::Embedded { .. } => StoreSharing::Private,
            crate::config::StoreConfig::Redis { .. } => StoreSharing::Shared,
        };
        let sessions = Sessions::new(
            store.clone(),
            clock.clone(),
            config.session.clone(),
            sharing,
        );
        let public_origin = config.server.public_origin();
        let cookies = CookiePolicy {
            https: config.server.is_https(),
            partitioned: config.session.partitioned_cookies,
        };
        let client = HttpClient::new(
            config
                .upstream
                .as_ref()
                .map_or(std::time::Duration::from_secs(5), |u| u.connect_timeout),
        );
        let proxy = match (&config.upstream, &config.assertion) {
            (Some(upstream), Some(assertion)) => tool_keys.get(&assertion.key).map(|key| {
                let proxy = Proxy::new(
                    upstream.clone(),
                    assertion,
                    PublicSide {
                        origin: public_origin.clone(),
                        url: &config.server.public_url,
                        session_cookie: &config.session.cookie_name,
                        partitioned: config.session.partitioned_cookies,
                    },
                );
                let asserter = Asserter::new(
                    assertion.clone(),
                    key.clone(),
                    public_origin.clone(),
                    clock.clone(),
                );
                (proxy, asserter)
            }),
            _ => None,
        };
        let grades = config.grades.as_ref().map(|_| Default::default());
        let catalog = config
            .deep_linking
            .clone()
            .map(crate::deep_linking::Catalog::new);
        Ok(Arc::new(Self {
            public_origin,
            config,
            clock,
            store,
            registry,
            tool_keys,
            client,
            sessions,
            grades,
            catalog,
            proxy,
            cookies,
        }))
    }

    /// The OIDC redirect URI platforms must register.
    pub fn redirect_uri(&self) -> String {
        format!("{}{LAUNCH_PATH}", self.public_origin)
    }

    fn rules(&self) -> &[Rule] {
        &self.config.rules
    }
}

fn is(path: &str, endpoint: &str) -> bool {
    path == endpoint || Some(path) == endpoint.strip_suffix('/')
}

/// A request's id: 64 random bits as 16 hex digits, returned to the client,
/// sent upstream and logged.
pub struct RequestId([u8; 16]);

impl RequestId {
    fn new() -> Self {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let bits = rand::rng().next_u64();
        let mut digits = [0u8; 16];
        for (i, d) in digits.iter_mut().enumerate() {
            *d = HEX[((bits >> (60 - 4 * i)) & 0xf) as usize];
        }
        Self(digits)
    }

    pub fn as_str(&self) -> &str {
        // Hex digits only.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

/// Handles one request from `peer` and logs it.
pub async fn handle<B>(app: Arc<AppState>, req: Request<B>, peer: PeerAddr) -> Response<Body>
where
    B: http_body::Body<Data = Bytes> + Send + Sync + 'static,
    B::Error: Into<BoxError>,
{
    let started = Instant::now();
    let id = RequestId::new();
    let method = req.method().clone();
    let uri = req.uri().clone();
    let origin = Origin {
        peer: peer.forwarded_for.as_ref(),
        request_id: id.as_str(),
    };
    let (mut response, decision) = match route(&app, req, origin).await {
        Ok(answer) => answer,
        Err(rejection) => {
            let reason = rejection.reason();
            (rejection.into_response(id.as_str()), reason)
        }
    };
    crate::logging::access(&crate::logging::Access {
        request_id: id.as_str(),
        method: method.as_str(),
        path: uri.path(),
        status: response.status().as_u16(),
        duration: started.elapsed(),
        decision,
    });
    if let Ok(v) = HeaderValue::from_str(id.as_str()) {
        response
            .headers_mut()
            .insert(crate::proxy::REQUEST_ID_HEADER, v);
    }
    response
}

async fn route<B>(app: &AppState, req: Request<B>, origin: Origin<'_>) -> Result<Answer, Rejection>
where
    B: http_body::Body<Data = Bytes> + Send + Sync + 'static,
    B::Error: Into<BoxError>,
{
    let path = req.uri().path().to_owned();
    let method = req.method().clone();
    // The LTI endpoints' futures are large and rare; boxing them keeps this
    // future (moved into a box for every request) as small as the gated
    // path's own.
    match path.as_str() {
        "/healthz" => Ok(text(StatusCode::OK, "ok\n")),
        "/readyz" => Ok(Box::pin(ready(app)).await),
        p if is(p, crate::content::LOGIN_PATH) => match method {
            Method::GET => Box::pin(login(app, form::query_pairs(&req))).await,
            Method::POST => {
                Box::pin(async {
                    match form::form_pairs(req, MAX_FORM_BYTES).await {
                        Ok(pairs) => login(app, pairs).await,
                        Err(e) => Err(e.into()),
                    }
                })
                .await
            }
            _ => Err(Rejection::MethodNotAllowed("GET, POST")),
        },
        p if is(p, LAUNCH_PATH) || is(p, crate::content::DEEP_LINKING_LAUNCH_PATH) => {
            match method {
                Method::POST => Box::pin(launch(app, req, origin.request_id)).await,
                Method::GET | Method::HEAD => Err(Rejection::LaunchOpenedDirectly),
                _ => Err(Rejection::MethodNotAllowed("POST")),
            }
        }
        p if is(p, crate::content::JWKS_PATH) => {
            get_only(&method).map(|()| json(app.tool_keys.jwks()))
        }
        p if p.starts_with("/lti/1p3/pub/orgs/") => {
            get_only(&method).and_then(|()| org_jwks(app, p))
        }
        p if p.starts_with(crate::deep_linking::PICKER_PREFIX) => Box::pin(picker(app, req)).await,
        p if p.starts_with(DISPLAY_PREFIX) => match method {
            Method::GET | Method::HEAD => display(app, req, origin).await,
            _ => Err(Rejection::MethodNotAllowed("GET, HEAD")),
        },
        p if p.starts_with("/lti/") => Err(Rejection::NotFound),
        _ => match &app.proxy {
            Some(_) => gated(app, req, origin).await,
            None => Err(Rejection::NotFound),
        },
    }
}

async fn picker<B>(app: &AppState, req: Request<B>) -> Result<Answer, Rejection>
where
    B: http_body::Body<Data = Bytes> + Send,
    B::Error: Into<BoxError>,
{
    let Some(token) = crate::deep_linking::token_of(req.uri().path()).map(str::to_owned) else {
        return Err(Rejection::NotFound);
    };
    let cookies = RequestCookies::from_headers(req.headers());
    let response = match *req.method() {
        Method::GET | Method::HEAD => {
            crate::deep_linking::show(app, &token, req.uri().query(), &cookies).await?
        }
        Method::POST => crate::deep_linking::submit(app, &token, req, &cookies).await?,
        _ => return Err(Rejection::MethodNotAllowed("GET, POST")),
    };
    Ok((response, "deep_linking"))
}

fn get_only(method: &Method) -> Result<(), Rejection> {
    match *method {
        Method::GET | Method::HEAD => Ok(()),
        _ => Err(Rejection::MethodNotAllowed("GET, HEAD")),
    }
}

async fn login(app: &AppState, pairs: Vec<(String, String)>) -> Result<Answer, Rejection> {
    let params = LoginParams::from_pairs(pairs)?;
    let redirect = login::login(app, params).await?;
    let mut response = redirect_to(&redirect.location)?;
    let ttl = app.sessions.config().login_state_ttl_sec;
    response.headers_mut().append(
        header::SET_COOKIE,
        app.cookies.set(
            &redirect.state_cookie,
            &redirect.state,
            STATE_COOKIE_PATH,
            ttl,
        ),
    );
    Ok((response, "login"))
}

async fn launch<B>(app: &AppState, req: Request<B>, request_id: &str) -> Result<Answer, Rejection>
where
    B: http_body::Body<Data = Bytes> + Send,
    B::Error: Into<BoxError>,
{
    let cookies = RequestCookies::from_headers(req.headers());
    let pairs = form::form_pairs(req, MAX_FORM_BYTES).await?;
    let form = LaunchForm::from_pairs(pairs);
    let state = form.state.clone();
    match launch::launch(app, form, &cookies).await {
        Ok(Launched::Resource {
            session_id,
            location,
            state,
        }) => {
            let mut response = redirect_to(&location)?;
            let h = response.headers_mut();
            let session = app.sessions.config();
            h.append(
                header::SET_COOKIE,
                app.cookies
                    .set(&session.cookie_name, &session_id, "/", session.lifetime_sec),
            );
            h.append(
                header::SET_COOKIE,
                app.cookies
                    .clear(&state_cookie_name(&state), STATE_COOKIE_PATH),
            );
            Ok((response, "launch"))
        }
        Ok(Launched::DeepLinking {
            location,
            state,
            token,
            binding,
        }) => {
            let mut response = redirect_to(&location)?;
            let h = response.headers_mut();
            let ttl = app
                .config
                .deep_linking
                .as_ref()
                .map_or(0, |d| d.token_ttl_sec);
            h.append(
                header::SET_COOKIE,
                app.cookies.set(
                    &crate::deep_linking::cookie_name(&token),
                    &binding,
                    crate::deep_linking::COOKIE_PATH,
                    ttl,
                ),
            );
            h.append(
                header::SET_COOKIE,
                app.cookies
                    .clear(&state_cookie_name(&state), STATE_COOKIE_PATH),
            );
            Ok((response, "deep_linking"))
        }
        Err(e) => {
            let rejection = Rejection::from(e);
            let reason = rejection.reason();
            let mut response = rejection.into_response(request_id);
            // The login state is spent either way: drop its cookie too.
            if let Some(state) = state.filter(|s| crate::session::is_token(s)) {
                response.headers_mut().append(
                    header::SET_COOKIE,
                    app.cookies
                        .clear(&state_cookie_name(&state), STATE_COOKIE_PATH),
                );
            }
            Ok((response, reason))
        }
    }
}

/// The browser's session cookie, if it sent one.
fn session_cookie<B>(app: &AppState, req: &Request<B>) -> Option<String> {
    RequestCookies::one(req.headers(), &app.sessions.config().cookie_name)
}

async fn display<B>(
    app: &AppState,
    req: Request<B>,
    origin: Origin<'_>,
) -> Result<Answer, Rejection>
where
    B: http_body::Body<Data = Bytes> + Send + Sync + 'static,
    B::Error: Into<BoxError>,
{
    let Ok(content) = ContentPath::from_path(req.uri().path()) else {
        return Err(Rejection::NotFound);
    };
    let cookies = RequestCookies::from_headers(req.headers());
    let session_id = cookies
        .get(&app.sessions.config().cookie_name)
        .map(str::to_owned);
    let (session, index) = app
        .sessions
        .check_grant(session_id.as_deref(), &content)
        .await
        .map_err(Rejection::Access)?;
    let Some((proxy, asserter)) = &app.proxy else {
        // Without an upstream, confirm the grant.
        let grant = &session.grants[index];
        let page = Page::new("Access granted")
            .para(format!("Course: {}", content.course))
            .para(format!("Content: {}", content.usage))
            .para(format!(
                "Access until: {} (Unix time)",
                session.grant_expiry(grant)
            ));
        return Ok((html(StatusCode::OK, page.render()), "display"));
    };
    let target = proxy.display_target(&content, req.uri().query());
    let session_id = session_id.unwrap_or_default();
    let method = req.method().clone();
    let asked = req.uri().path().to_owned();
    let response = forward_for(
        (proxy, asserter),
        req,
        &target,
        (&session_id, &session),
        index,
        origin,
    )
    .await?;
    if response.status() == StatusCode::NOT_FOUND {
        return Err(Rejection::ContentNotFound);
    }
    Ok(within_grant(
        app,
        &session,
        (&method, &asked),
        (response, "display"),
        origin.request_id,
    ))
}

async fn gated<B>(app: &AppState, req: Request<B>, origin: Origin<'_>) -> Result<Answer, Rejection>
where
    B: http_body::Body<Data = Bytes> + Send + Sync + 'static,
    B::Error: Into<BoxError>,
{
    let Some((proxy, asserter)) = &app.proxy else {
        return Err(Rejection::NotFound);
    };
    let path = crate::path::normalize(req.uri().path()).map_err(Rejection::BadPath)?;
    let session_id = session_cookie(app, &req);
    let had_cookie = session_id.is_some();
    let store_down = |e: StoreError| Rejection::Access(e.into());
    let decide = |session: Option<&Session>| {
        crate::rules::decide(app.rules(), req.method(), &path, session, app.clock.now())
    };
    let (mut session, mut decision) = (None, Decision::Relaunch);
    if let Some(id) = &session_id {
        session = app.sessions.load_cached(id).await.map_err(store_down)?;
        decision = decide(session.as_deref());
        if !matches!(decision, Decision::Allow { .. }) {
            // Refusals are re-made on a fresh read.
            session = app.sessions.load(id).await.map_err(store_down)?;
            decision = decide(session.as_deref());
        }
    }
    let (grant, rule) = match decision {
        Decision::Allow { grant, rule } => (grant, rule),
        Decision::Relaunch if had_cookie => {
            return Err(Rejection::Access(AccessError::SessionExpired));
        }
        Decision::Relaunch => return Err(Rejection::Access(AccessError::NoSession)),
        Decision::Expired => return Err(Rejection::Access(AccessError::GrantExpired)),
        Decision::Outside => return Err(Rejection::Access(AccessError::NotGranted)),
    };
    let Some(session) = session else {
        return Err(Rejection::Access(AccessError::NoSession));
    };
    let target = match req.uri().query() {
        Some(q) => format!("{}?{q}", path.as_str()),
        None => path.as_str().to_owned(),
    };
    let session_id = session_id.unwrap_or_default();
    // A standard method clones without allocating; the path is borrowed.
    let method = req.method().clone();
    let response = forward_for(
        (proxy, asserter),
        req,
        &target,
        (&session_id, &session),
        grant,
        origin,
    )
    .await?;
    let decision = match app.rules()[rule].scope {
        crate::rules::Scope::Usage => "allow:usage",
        crate::rules::Scope::Course => "allow:course",
        crate::rules::Scope::Public => "allow:public",
    };
    Ok(within_grant(
        app,
        &session,
        (&method, path.as_str()),
        (response, decision),
        origin.request_id,
    ))
}

/// The upstream's answer, or, when it redirects outside the grant (see
/// [`check_redirect`]), the refusal page. The page keeps the upstream's
/// cookies, already rewritten by the proxy: a session the LMS started on that
/// response (the assertion's login) is not lost to the refusal.
fn within_grant(
    app: &AppState,
    session: &Session,
    asked: (&Method, &str),
    (response, decision): Answer,
    request_id: &str,
) -> Answer {
    let Err(rejection) = check_redirect(app, session, asked, &response) else {
        return (response, decision);
    };
    let reason = rejection.reason();
    let mut page = rejection.into_response(request_id);
    for cookie in response.headers().get_all(header::SET_COOKIE) {
        page.headers_mut()
            .append(header::SET_COOKIE, cookie.clone());
    }
    (page, reason)
}

/// An upstream redirect may lead only where the session may go itself: to
/// content it holds a live grant for, or to a path the rules allow it. Any
/// other redirect (to another host, such as the learning MFE that Open edX's
/// `jump_to` sends a learner to; to the LMS's login page; into another
/// course) is replaced by ltigate's refusal page, so that a learner never
/// leaves the gate through a redirect and gets a page that says why. A
/// redirect's target is resolved against the path that was asked for, as a
/// browser would, after the proxy has mapped the upstream's own origins to
/// ltigate's.
fn check_redirect(
    app: &AppState,
    session: &Session,
    (method, asked): (&Method, &str),
    response: &Response<Body>,
) -> Result<(), Rejection> {
    // Every 3xx with a Location but 304 (which has none to follow): Firefox
    // follows a 300's Location too.
    let status = response.status().as_u16();
    if !(300..400).contains(&status) || status == 304 {
        return Ok(());
    }
    let Some(location) = response.headers().get(header::LOCATION) else {
        return Ok(());
    };
    let public = &app.config.server.public_url;
    let target = location
        .to_str()
        .ok()
        .and_then(|l| public.join(asked).ok()?.join(l).ok());
    let refuse = |why: &'static str, error: AccessError| {
        tracing::warn!(
            reason = why,
            to = target
                .as_ref()
                .map_or("", |t| t.host_str().unwrap_or_default()),
            path = target.as_ref().map_or("", |t| t.path()),
            "upstream redirect outside the grant replaced by the refusal page"
        );
        Err(Rejection::Access(error))
    };
    let Some(to) = target.as_ref().filter(|t| t.origin() == public.origin()) else {
        return refuse("redirect_off_gateway", AccessError::NotGranted);
    };
    let now = app.clock.now();
    if let Ok(content) = ContentPath::from_path(to.path()) {
        return match session.grants.iter().find(|g| g.content == content) {
            Some(g) if session.grant_expiry(g) > now => Ok(()),
            Some(_) => refuse("redirect_grant_expired", AccessError::GrantExpired),
            None => refuse("redirect_not_granted", AccessError::NotGranted),
        };
    }
    let Ok(path) = crate::path::normalize(to.path()) else {
        return refuse("redirect_bad_path", AccessError::NotGranted);
    };
    // 307 and 308 repeat the method; the others turn into a GET.
    let method = if matches!(status, 307 | 308) {
        method.clone()
    } else {
        Method::GET
    };
    match crate::rules::decide(app.rules(), &method, &path, Some(session), now) {
        Decision::Allow { .. } => Ok(()),
        Decision::Expired | Decision::Relaunch => {
            refuse("redirect_grant_expired", AccessError::GrantExpired)
        }
        Decision::Outside => refuse("redirect_not_granted", AccessError::NotGranted),
    }
}

/// Forwards `req` to `target` on behalf of grant `grant` of the session,
/// with the signed identity of that grant's launch.
async fn forward_for<B>(
    (proxy, asserter): (&Proxy, &Asserter),
    req: Request<B>,
    target: &str,
    (session_id, session): (&str, &Session),
    grant: usize,
    origin: Origin<'_>,
) -> Result<Response<Body>, Rejection>
where
    B: http_body::Body<Data = Bytes> + Send + Sync + 'static,
    B::Error: Into<BoxError>,
{
    let launched = &session.grants[grant];
    let assertion = asserter
        .assertion(session_id, session, launched)
        .map_err(|e| Rejection::Internal(e.to_string()))?;
    // The assertion carries the identity; the plain headers, when on, need
    // their own copies (and the username computed).
    let plain = asserter.config().identity_headers;
    let identity = Identity {
        assertion,
        username: plain.then(|| asserter.username(&session.user)),
        email: plain.then(|| launched.launch.email.clone()).flatten(),
        name: plain.then(|| launched.launch.name.clone()).flatten(),
    };
    Ok(proxy.forward(req, target, identity, origin).await?)
}

fn org_jwks(app: &AppState, path: &str) -> Result<Answer, Rejection> {
    let org = path
        .strip_prefix("/lti/1p3/pub/orgs/")
        .and_then(|rest| {
            rest.strip_suffix("/jwks/")
                .or_else(|| rest.strip_suffix("/jwks"))
        })
        .ok_or(Rejection::NotFound)?;
    app.tool_keys
        .org_jwks(org)
        .map(json)
        .ok_or(Rejection::NotFound)
}

async fn ready(app: &AppState) -> Answer {
    if let Err(e) = app.store.ping().await {
        tracing::warn!(error = %e, "not ready: store unreachable");
        return text(StatusCode::SERVICE_UNAVAILABLE, "store unreachable\n");
    }
    if let Some((proxy, _)) = &app.proxy
        && let Err(e) = proxy.ping().await
    {
        tracing::warn!(error = %e, "not ready: upstream unreachable");
        return text(StatusCode::SERVICE_UNAVAILABLE, "upstream unreachable\n");
    }
    text(StatusCode::OK, "ready\n")
}

fn redirect_to(location: &str) -> Result<Response<Body>, Rejection> {
    let value = HeaderValue::from_str(location).map_err(|_| FormError::Unreadable)?;
    let mut response = Response::new(full_body(Bytes::new()));
    *response.status_mut() = StatusCode::FOUND;
    response.headers_mut().insert(header::LOCATION, value);
    no_store(response.headers_mut());
    Ok(response)
}

fn json(body: Bytes) -> Answer {
    let mut response = Response::new(full_body(body));
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    (response, "jwks")
}

fn text(status: StatusCode, body: &'static str) -> Answer {
    let mut response = Response::new(full_body(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    no_store(h);
    (response, "health")
}
