//! Routing for the public listener, and the HTTP layer's state.
//!
//! One immutable [`Gateway`] (the services, built once by
//! `gateway.rs`) is shared by every connection. [`handle`] routes a
//! request to the LTI endpoints, the JWKS documents, the health checks, the
//! picker, the display path, or (when an upstream is configured) the gated
//! proxy. Each handler reads what its service needs from the request (the
//! form, a cookie's value), calls the service, and turns the value it
//! returns into a response; every error becomes a response in
//! [`super::reject`]. It writes one access-log line per request. It takes
//! any request body, so it can be called without a socket.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};

use super::form::{self, FormError};
use super::pages::{Page, html, no_store};
use super::reject::Rejection;
use super::server::ServerConfig;
use super::{RequestId, picker_pages};
use crate::assertion::Asserter;
use crate::clock::{Clock, UnixTime};
use crate::content::{ContentPath, DISPLAY_PREFIX, LAUNCH_PATH, UsageKey};
use crate::cookies::{CookiePolicy, cookie};
use crate::course_tree::CourseTrees;
use crate::deep_linking::{self, DeepLinking};
use crate::grades::Grades;
use crate::keys::ToolKeys;
use crate::lti::launch::{LaunchCookies, LaunchForm, Launched};
use crate::lti::login::LoginParams;
use crate::lti::{Lti, state_cookie_name};
use crate::proxy::{Identity, Origin, Proxy};
use crate::rules::{Decision, Rule};
use crate::session::Presented;
use crate::session::{AccessError, Session, Sessions};
use crate::store::Store;
use crate::{Body, BoxError, full_body};

/// Largest login or launch form accepted. id_tokens with many custom claims
/// run to tens of kilobytes.
const MAX_FORM_BYTES: usize = 256 * 1024;
/// The logout endpoint (see [`logout`]).
pub const LOGOUT_PATH: &str = "/lti/1p3/logout/";

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

/// The gated proxy: where allowed requests go, and who they go as.
pub struct Gated {
    pub proxy: Proxy,
    pub asserter: Arc<Asserter>,
    /// Gating rules for every path other than the LTI endpoints.
    pub rules: Vec<Rule>,
    /// What the rules' `{block_in_course}` opens.
    pub blocks: BlockGate,
}

/// What a `{block_in_course}` rule opens (see [`crate::course_tree`]).
pub enum BlockGate {
    /// The launched block and what lies under it, as the LMS's tree says.
    Subtree(Arc<CourseTrees>),
    /// Any block of the launched course (`block_access = "course"`).
    Course,
    /// Subtree access without a way to read the tree: nothing.
    Unreadable,
}

/// The HTTP layer's state: the services, built once (see
/// `gateway.rs`), and the few facts the layer itself needs.
pub struct Gateway {
    pub server: ServerConfig,
    pub lti: Lti,
    pub sessions: Arc<Sessions>,
    /// `None` without `[deep_linking]`.
    pub deep_linking: Option<Arc<DeepLinking>>,
    /// `None` without `[grades]`.
    pub grades: Option<Arc<Grades>>,
    /// `None` without `[upstream]`: the display path then only confirms a grant.
    pub gated: Option<Gated>,
    /// The tool's keys, for the JWKS documents.
    pub tool_keys: ToolKeys,
    /// The store, for readiness (and for tests to count what it holds).
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    pub cookies: CookiePolicy,
}

fn is(path: &str, endpoint: &str) -> bool {
    path == endpoint || Some(path) == endpoint.strip_suffix('/')
}

/// Handles one request from `peer` and logs it.
pub async fn handle<B>(app: Arc<Gateway>, req: Request<B>, peer: PeerAddr) -> Response<Body>
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
        Err(rejection) => rejection.into_page(id.as_str()),
    };
    crate::logging::access(&crate::logging::Access {
        request_id: id.as_str(),
        method: method.as_str(),
        path: uri.path(),
        status: response.status().as_u16(),
        duration: started.elapsed(),
        decision,
    });
    id.stamp(&mut response);
    response
}

async fn route<B>(app: &Gateway, req: Request<B>, origin: Origin<'_>) -> Result<Answer, Rejection>
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
                    let (parts, body) = req.into_parts();
                    match form::form_pairs(&parts.headers, body, MAX_FORM_BYTES).await {
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
        p if is(p, LOGOUT_PATH) => match method {
            Method::POST => Box::pin(logout(app, req, origin)).await,
            _ => Err(Rejection::MethodNotAllowed("POST")),
        },
        p if p.starts_with("/lti/") => Err(Rejection::NotFound),
        _ => match &app.gated {
            Some(gated_proxy) => gated(app, gated_proxy, req, origin).await,
            None => Err(Rejection::NotFound),
        },
    }
}

async fn picker<B>(app: &Gateway, req: Request<B>) -> Result<Answer, Rejection>
where
    B: http_body::Body<Data = Bytes> + Send,
    B::Error: Into<BoxError>,
{
    let Some(token) = deep_linking::token_of(req.uri().path()).map(str::to_owned) else {
        return Err(Rejection::NotFound);
    };
    let Some(service) = &app.deep_linking else {
        return Err(Rejection::NotFound);
    };
    let binding = app
        .cookies
        .read(req.headers(), &deep_linking::cookie_name(&token));
    let response = match *req.method() {
        Method::GET | Method::HEAD => {
            let search = req.uri().query().and_then(|q| {
                form_urlencoded::parse(q.as_bytes())
                    .find(|(k, _)| k == "q")
                    .map(|(_, v)| v.into_owned())
            });
            let view = service.show(&token, binding.as_deref(), search).await?;
            picker_pages::picker(&view)
        }
        Method::POST => {
            // The token and the browser first: a stranger's body is not read.
            service.open(&token, binding.as_deref()).await?;
            let (parts, body) = req.into_parts();
            let pairs = form::form_pairs(&parts.headers, body, MAX_FORM_BYTES)
                .await
                .map_err(|_| deep_linking::PickerError::BadForm)?;
            let post = service.submit(&token, binding.as_deref(), &pairs).await?;
            picker_pages::autopost(&post)
        }
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

async fn login(app: &Gateway, pairs: Vec<(String, String)>) -> Result<Answer, Rejection> {
    let params = LoginParams::from_pairs(pairs)?;
    let redirect = app.lti.login(params).await?;
    let mut response = redirect_to(&redirect.location)?;
    let ttl = app.sessions.config().login_state_ttl_sec;
    response.headers_mut().append(
        header::SET_COOKIE,
        app.cookies
            .set(&redirect.state_cookie, &redirect.state, ttl),
    );
    Ok((response, "login"))
}

async fn launch<B>(app: &Gateway, req: Request<B>, request_id: &str) -> Result<Answer, Rejection>
where
    B: http_body::Body<Data = Bytes> + Send,
    B::Error: Into<BoxError>,
{
    let (parts, body) = req.into_parts();
    let headers = &parts.headers;
    let pairs = form::form_pairs(headers, body, MAX_FORM_BYTES).await?;
    let form = LaunchForm::from_pairs(pairs);
    let state = form.state.clone();
    let state_cookie = state
        .as_deref()
        .and_then(|s| app.cookies.read(headers, &state_cookie_name(s)));
    let session_cookie = session_cookie(app, headers);
    let cookies = LaunchCookies {
        state: state_cookie.as_deref(),
        session: session_cookie.as_ref().map(SessionCookie::presented),
    };
    match app.lti.launch(form, cookies).await {
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
                    .set(&session.cookie_name, &session_id, session.lifetime_sec),
            );
            if session_cookie.is_some_and(|c| c.legacy || c.legacy_too) {
                h.append(
                    header::SET_COOKIE,
                    app.cookies.clear_exact(&session.cookie_name),
                );
            }
            h.append(
                header::SET_COOKIE,
                app.cookies.clear(&state_cookie_name(&state)),
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
                .deep_linking
                .as_ref()
                .map_or(0, |d| d.config().token_ttl_sec);
            h.append(
                header::SET_COOKIE,
                app.cookies
                    .set(&crate::deep_linking::cookie_name(&token), &binding, ttl),
            );
            h.append(
                header::SET_COOKIE,
                app.cookies.clear(&state_cookie_name(&state)),
            );
            Ok((response, "deep_linking"))
        }
        Err(e) => {
            let (mut response, reason) = Rejection::from(e).into_page(request_id);
            // The login state is spent either way: drop its cookie too.
            if let Some(state) = state.filter(|s| crate::token::is_token(s)) {
                response.headers_mut().append(
                    header::SET_COOKIE,
                    app.cookies.clear(&state_cookie_name(&state)),
                );
            }
            Ok((response, reason))
        }
    }
}

/// The session id a browser sent.
struct SessionCookie {
    id: String,
    /// Sent under the plain name on HTTPS (see [`Presented`]).
    legacy: bool,
    /// The plain name came too, beside the current one (it is expired).
    legacy_too: bool,
}

impl SessionCookie {
    fn presented(&self) -> Presented<'_> {
        Presented {
            id: &self.id,
            legacy_name: self.legacy,
        }
    }
}

/// The browser's session cookie, if it sent one: under the current name
/// (`__Host-<cookie_name>` on HTTPS) or, on HTTPS and failing that, under
/// the plain name an earlier version set, for a session that version wrote.
fn session_cookie(app: &Gateway, headers: &HeaderMap) -> Option<SessionCookie> {
    let base = &app.sessions.config().cookie_name;
    let plain = if app.cookies.https {
        cookie(headers, base)
    } else {
        None
    };
    match app.cookies.read(headers, base) {
        Some(id) => Some(SessionCookie {
            id,
            legacy: false,
            legacy_too: plain.is_some(),
        }),
        None => plain.map(|id| SessionCookie {
            id,
            legacy: true,
            legacy_too: false,
        }),
    }
}

/// Moves a browser off the plain cookie name: an answer allowed on a session
/// presented under it sets the current name for the session's remaining
/// life and expires the plain one (a plain copy sent beside the current name
/// is expired too). A plain cookie set for a parent domain by another host
/// cannot be expired from here; it is simply never read again once the
/// current name is there.
fn migrate(app: &Gateway, cookie: Option<&SessionCookie>, session: &Session, answer: &mut Answer) {
    let Some(cookie) = cookie.filter(|c| c.legacy || c.legacy_too) else {
        return;
    };
    let base = &app.sessions.config().cookie_name;
    let h = answer.0.headers_mut();
    if cookie.legacy {
        let left = session.expires_at.saturating_sub(app.clock.now());
        h.append(header::SET_COOKIE, app.cookies.set(base, &cookie.id, left));
    }
    h.append(header::SET_COOKIE, app.cookies.clear_exact(base));
}

async fn display<B>(app: &Gateway, req: Request<B>, origin: Origin<'_>) -> Result<Answer, Rejection>
where
    B: http_body::Body<Data = Bytes> + Send + Sync + 'static,
    B::Error: Into<BoxError>,
{
    let Ok(content) = ContentPath::from_path(req.uri().path()) else {
        return Err(Rejection::NotFound);
    };
    let browser = session_cookie(app, req.headers());
    let (session, index) = app
        .sessions
        .check_grant(browser.as_ref().map(SessionCookie::presented), &content)
        .await
        .map_err(Rejection::Access)?;
    let Some(gated_proxy) = &app.gated else {
        // Without an upstream, confirm the grant.
        let grant = &session.grants[index];
        let page = Page::new("Access granted")
            .para(format!("Course: {}", content.course))
            .para(format!("Content: {}", content.usage))
            .para(format!(
                "Access until: {} (Unix time)",
                session.grant_expiry(grant)
            ));
        let mut answer = (html(StatusCode::OK, page.render()), "display");
        migrate(app, browser.as_ref(), &session, &mut answer);
        return Ok(answer);
    };
    let target = gated_proxy
        .proxy
        .display_target(&content, req.uri().query());
    let session_id = browser.as_ref().map_or("", |b| b.id.as_str());
    let method = req.method().clone();
    let asked = req.uri().path().to_owned();
    let response = forward_for(
        gated_proxy,
        req,
        &target,
        (session_id, &session),
        index,
        origin,
    )
    .await?;
    if response.status() == StatusCode::NOT_FOUND {
        return Err(Rejection::ContentNotFound);
    }
    let mut answer = within_grant(
        app,
        gated_proxy,
        (session_id, &session),
        (&method, &asked),
        (response, "display"),
        origin.request_id,
    )
    .await;
    migrate(app, browser.as_ref(), &session, &mut answer);
    Ok(answer)
}

async fn gated<B>(
    app: &Gateway,
    gated_proxy: &Gated,
    req: Request<B>,
    origin: Origin<'_>,
) -> Result<Answer, Rejection>
where
    B: http_body::Body<Data = Bytes> + Send + Sync + 'static,
    B::Error: Into<BoxError>,
{
    // Before anything else: a method that is never forwarded needs no
    // session read (CONNECT's authority-form target has no path at all).
    if !crate::proxy::forwards_method(req.method()) {
        return Err(Rejection::MethodNotAllowed(crate::proxy::FORWARDED_METHODS));
    }
    let path = crate::path::normalize(req.uri().path()).map_err(Rejection::BadPath)?;
    let browser = session_cookie(app, req.headers());
    let now = app.clock.now();
    let (session, (grant, rule)) = app
        .sessions
        .authorize(browser.as_ref().map(SessionCookie::presented), |session| {
            crate::rules::check(&gated_proxy.rules, req.method(), &path, session, now)
        })
        .await?;
    let grant = match gated_proxy.rules[rule].block_in(&path) {
        Some(block) => {
            under_a_grant(app, &gated_proxy.blocks, &session, grant, &block, now).await?
        }
        None => grant,
    };
    let target = match req.uri().query() {
        Some(q) => format!("{}?{q}", path.as_str()),
        None => path.as_str().to_owned(),
    };
    let session_id = browser.as_ref().map_or("", |b| b.id.as_str());
    // A standard method clones without allocating; the path is borrowed.
    let method = req.method().clone();
    let response = forward_for(
        gated_proxy,
        req,
        &target,
        (session_id, &session),
        grant,
        origin,
    )
    .await?;
    let decision = match gated_proxy.rules[rule].scope {
        crate::rules::Scope::Usage => "allow:usage",
        crate::rules::Scope::Course => "allow:course",
        crate::rules::Scope::Public => "allow:public",
    };
    let mut answer = within_grant(
        app,
        gated_proxy,
        (session_id, &session),
        (&method, path.as_str()),
        (response, decision),
        origin.request_id,
    )
    .await;
    migrate(app, browser.as_ref(), &session, &mut answer);
    Ok(answer)
}

/// The grant under whose launched block `block` lies: `chosen` (the one the
/// rules matched) if it does, or else another live grant of the same course,
/// newest first. The registration's block filter applies to `block` too.
/// Fails closed: a tree that cannot be read refuses the request.
async fn under_a_grant(
    app: &Gateway,
    blocks: &BlockGate,
    session: &Session,
    chosen: usize,
    block: &UsageKey,
    now: UnixTime,
) -> Result<usize, Rejection> {
    let trees = match blocks {
        BlockGate::Course => return Ok(chosen),
        BlockGate::Unreadable => return Err(Rejection::CourseStructureUnavailable),
        BlockGate::Subtree(trees) => trees,
    };
    let user = &session.user;
    let gate = app
        .lti
        .registry()
        .find(&user.issuer, Some(&user.client_id))
        .map_err(|_| AccessError::NotGranted)?;
    if let Err(refusal) = crate::gate::check_within(gate.platform.gate.as_ref(), block) {
        tracing::warn!(block = %block, refusal = %refusal, "a block the launch gate would refuse, under a launched block");
        return Err(AccessError::NotGranted.into());
    }
    let course = block.course_key();
    let candidates = std::iter::once(chosen)
        .chain((0..session.grants.len()).rev().filter(|&g| g != chosen))
        .filter(|&g| {
            let grant = &session.grants[g];
            grant.content.course == course && session.grant_expiry(grant) > now
        });
    let mut unreadable = None;
    for g in candidates {
        match trees
            .contains(&session.grants[g].content.usage, block)
            .await
        {
            Ok(true) => return Ok(g),
            Ok(false) => {}
            Err(e) => unreadable = Some(e),
        }
    }
    match unreadable {
        Some(e) => {
            tracing::warn!(course = %course, error = %e, "refused: the launched block's subtree could not be read");
            Err(Rejection::CourseStructureUnavailable)
        }
        None => Err(AccessError::NotGranted.into()),
    }
}

/// The upstream's answer, or, when it redirects outside the grant (see
/// [`check_redirect`]), the refusal page. Like every refusal, that one is
/// made on a fresh read of the session (the grant may have just been written
/// by another replica). The page keeps the upstream's cookies, already
/// rewritten by the proxy: a session the LMS started on that response (the
/// assertion's login) is not lost to the refusal.
async fn within_grant(
    app: &Gateway,
    gated_proxy: &Gated,
    (session_id, session): (&str, &Session),
    asked: (&Method, &str),
    (response, decision): Answer,
    request_id: &str,
) -> Answer {
    let rules = &gated_proxy.rules;
    let refused = match check_redirect(app, rules, session, asked, &response) {
        Ok(()) => return (response, decision),
        // Off the gateway, or not a path at all: no session changes that.
        Err(r) if !r.about_the_session => r,
        Err(r) => match app.sessions.load(session_id).await {
            Ok(Some(fresh)) => match check_redirect(app, rules, &fresh, asked, &response) {
                Ok(()) => return (response, decision),
                Err(again) => again,
            },
            // Gone, or the store is down: the refusal stands (fail closed).
            Ok(None) | Err(_) => r,
        },
    };
    tracing::warn!(
        reason = refused.why,
        to = refused.host,
        path = refused.path,
        "upstream redirect outside the grant replaced by the refusal page"
    );
    let (mut page, reason) = Rejection::Access(refused.error).into_page(request_id);
    for cookie in response.headers().get_all(header::SET_COOKIE) {
        page.headers_mut()
            .append(header::SET_COOKIE, cookie.clone());
    }
    (page, reason)
}

/// Why an upstream redirect was refused, and where it led (for the log).
struct RedirectRefused {
    why: &'static str,
    /// Whether another read of the session could change the answer.
    about_the_session: bool,
    error: AccessError,
    host: String,
    path: String,
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
    app: &Gateway,
    rules: &[Rule],
    session: &Session,
    (method, asked): (&Method, &str),
    response: &Response<Body>,
) -> Result<(), RedirectRefused> {
    // Every 3xx with a Location but 304 (which has none to follow): Firefox
    // follows a 300's Location too.
    let status = response.status().as_u16();
    if !(300..400).contains(&status) || status == 304 {
        return Ok(());
    }
    let Some(location) = response.headers().get(header::LOCATION) else {
        return Ok(());
    };
    let public = &app.server.public_url;
    let target = location
        .to_str()
        .ok()
        .and_then(|l| public.join(asked).ok()?.join(l).ok());
    // `about_the_session`: false when the target alone decides.
    let refuse = |why: &'static str, error: AccessError, about_the_session: bool| {
        Err(RedirectRefused {
            why,
            about_the_session,
            error,
            host: target
                .as_ref()
                .map_or("", |t| t.host_str().unwrap_or_default())
                .to_owned(),
            path: target.as_ref().map_or("", |t| t.path()).to_owned(),
        })
    };
    let Some(to) = target.as_ref().filter(|t| t.origin() == public.origin()) else {
        return refuse("redirect_off_gateway", AccessError::NotGranted, false);
    };
    let now = app.clock.now();
    if let Ok(content) = ContentPath::from_path(to.path()) {
        return match session.grants.iter().find(|g| g.content == content) {
            Some(g) if session.grant_expiry(g) > now => Ok(()),
            Some(_) => refuse("redirect_grant_expired", AccessError::GrantExpired, true),
            None => refuse("redirect_not_granted", AccessError::NotGranted, true),
        };
    }
    let Ok(path) = crate::path::normalize(to.path()) else {
        return refuse("redirect_bad_path", AccessError::NotGranted, false);
    };
    // 307 and 308 repeat the method; the others turn into a GET.
    let method = if matches!(status, 307 | 308) {
        method.clone()
    } else {
        Method::GET
    };
    match crate::rules::decide(rules, &method, &path, Some(session), now) {
        Decision::Allow { .. } => Ok(()),
        Decision::Expired | Decision::Relaunch => {
            refuse("redirect_grant_expired", AccessError::GrantExpired, true)
        }
        Decision::Outside => refuse("redirect_not_granted", AccessError::NotGranted, true),
    }
}

/// Forwards `req` to `target` on behalf of grant `grant` of the session,
/// with the signed identity of that grant's launch.
async fn forward_for<B>(
    Gated {
        proxy, asserter, ..
    }: &Gated,
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
        username: plain.then(|| asserter.usernames().of(&session.user)),
        email: plain.then(|| launched.launch.email.clone()).flatten(),
        name: plain.then(|| launched.launch.name.clone()).flatten(),
    };
    Ok(proxy.forward(req, target, identity, origin).await?)
}

/// `POST /lti/1p3/logout/`: ends the browser's gateway session (deleted
/// from the store; every replica stops accepting it once its cached read
/// runs out), expires its cookie and the LMS's cookies the browser sent, and
/// ends the LMS session through the LMS app (see [`lms_logout`]). Answers a
/// page that says so, with or without a session to end.
///
/// POST only: a GET could be fired by any page with an `<img>`, or by a link
/// prefetcher. And only from a page of the gateway's own origin: ltigate's
/// cookies are `SameSite=None` (they must work inside the platform's
/// iframe), so a form on another site would carry them. Browsers send
/// `Origin` with every POST; without one, `Sec-Fetch-Site` must say
/// `same-origin`. A forged logout could only make a learner relaunch, but
/// no other site needs to sign learners out, so none can.
async fn logout<B>(
    app: &Gateway,
    req: Request<B>,
    origin: Origin<'_>,
) -> Result<Answer, Rejection> {
    let headers = req.headers();
    let same_origin = match headers.get(header::ORIGIN) {
        Some(o) => o.as_bytes() == app.server.public_origin().as_bytes(),
        None => headers
            .get("sec-fetch-site")
            .is_some_and(|v| v.as_bytes() == b"same-origin"),
    };
    if !same_origin {
        return Err(Rejection::LogoutCrossSite);
    }
    let browser = session_cookie(app, headers);
    let ended = match &browser {
        Some(c) => app
            .sessions
            .end(c.presented())
            .await
            .map_err(AccessError::from)?,
        None => None,
    };
    let page = Page::new("You are signed out")
        .para("Your session with this activity has ended.")
        .para("To continue, open the activity again from your course.");
    let mut response = html(StatusCode::OK, page.render());
    let session = app.sessions.config();
    if let (Some(ended), Some(gated_proxy), Some(path)) =
        (&ended, &app.gated, session.lms_logout_path.as_deref())
    {
        match lms_logout(gated_proxy, headers, ended, path, origin).await {
            Ok(cookies) => {
                for c in cookies {
                    response.headers_mut().append(header::SET_COOKIE, c);
                }
            }
            Err(e) => tracing::warn!(
                request_id = origin.request_id,
                error = %e,
                "logout: the LMS session could not be ended (the gateway's is, and the browser's LMS cookies are expired)"
            ),
        }
    }
    let h = response.headers_mut();
    h.append(header::SET_COOKIE, app.cookies.clear(&session.cookie_name));
    if app.cookies.https {
        h.append(
            header::SET_COOKIE,
            app.cookies.clear_exact(&session.cookie_name),
        );
    }
    let prefix = if app.cookies.https {
        crate::proxy::UPSTREAM_COOKIE_PREFIX_HTTPS
    } else {
        crate::proxy::UPSTREAM_COOKIE_PREFIX_HTTP
    };
    for (name, _) in crate::cookies::pairs(headers) {
        if name.len() > prefix.len() && name.starts_with(prefix) {
            h.append(header::SET_COOKIE, app.cookies.clear_exact(name));
        }
    }
    no_store(h);
    if let Some(ended) = &ended {
        tracing::info!(
            issuer = %ended.user.issuer,
            client_id = %ended.user.client_id,
            request_id = origin.request_id,
            "session ended by logout"
        );
    }
    Ok((response, "logout"))
}

/// Ends the LMS session of a browser that logs out: a `POST` to the LMS
/// app's logout view (`[session] lms_logout_path`) through the proxy, with
/// the browser's LMS cookies (the proxy forwards only those) and a logout
/// assertion for the session that ended. The view logs out the Django
/// session those cookies name (deploy/openedx, `ltigate_openedx.views.logout`,
/// which calls `django.contrib.auth.logout` as Open edX's own `LogoutView`
/// does); its `Set-Cookie`s, renamed by the proxy, are returned for the
/// browser.
async fn lms_logout(
    gated_proxy: &Gated,
    headers: &HeaderMap,
    session: &Session,
    path: &str,
    origin: Origin<'_>,
) -> Result<Vec<HeaderValue>, String> {
    let assertion = gated_proxy
        .asserter
        .for_logout(session)
        .ok_or("the session holds no grant")?
        .map_err(|e| e.to_string())?;
    let mut req = Request::builder()
        .method(Method::POST)
        .uri(path)
        .body(full_body(Bytes::new()))
        .map_err(|e| e.to_string())?;
    for c in headers.get_all(header::COOKIE) {
        req.headers_mut().append(header::COOKIE, c.clone());
    }
    let identity = Identity {
        assertion,
        username: None,
        email: None,
        name: None,
    };
    let response = gated_proxy
        .proxy
        .forward(req, path, identity, origin)
        .await
        .map_err(|e| e.to_string())?;
    if !response.status().is_success() {
        return Err(format!("the LMS answered {}", response.status()));
    }
    Ok(response
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .cloned()
        .collect())
}

fn org_jwks(app: &Gateway, path: &str) -> Result<Answer, Rejection> {
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

async fn ready(app: &Gateway) -> Answer {
    if let Err(e) = app.store.ping().await {
        tracing::warn!(error = %e, "not ready: store unreachable");
        return text(StatusCode::SERVICE_UNAVAILABLE, "store unreachable\n");
    }
    if let Some(gated_proxy) = &app.gated
        && let Err(e) = gated_proxy.proxy.ping().await
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
