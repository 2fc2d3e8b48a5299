//! The application: shared state and request routing.
//!
//! One immutable [`AppState`] is built at start-up and shared by every
//! connection. [`handle`] routes a request to the LTI endpoints, the JWKS
//! documents, the display path or the health checks, and turns every refusal
//! into a response through [`crate::reject`]. It takes any request body, so it
//! can be called without a socket.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};

use crate::client::HttpClient;
use crate::clock::Clock;
use crate::config::Config;
use crate::content::{ContentPath, DISPLAY_PREFIX, LAUNCH_PATH};
use crate::cookies::{CookiePolicy, RequestCookies};
use crate::form::{self, FormError};
use crate::keys::ToolKeys;
use crate::lti::launch::{self, BrowserCookies as _, LaunchForm};
use crate::lti::login::{self, LoginParams};
use crate::lti::state_cookie_name;
use crate::pages::{Page, html, no_store};
use crate::registry::Registry;
use crate::reject::Rejection;
use crate::session::Sessions;
use crate::store::{self, Store, StoreError};
use crate::{Body, BoxError, full_body};

/// Largest login or launch form accepted. id_tokens with many custom claims
/// run to tens of kilobytes.
const MAX_FORM_BYTES: usize = 256 * 1024;
/// The state cookie is sent only to the LTI endpoints.
const STATE_COOKIE_PATH: &str = "/lti/1p3/";

/// Everything a request handler needs, built once.
pub struct AppState {
    pub config: Config,
    pub clock: Arc<dyn Clock>,
    pub store: Arc<dyn Store>,
    pub registry: Registry,
    pub tool_keys: ToolKeys,
    pub client: HttpClient,
    pub sessions: Sessions,
    cookies: CookiePolicy,
}

impl AppState {
    /// Builds the state from a validated config. Must run inside a tokio runtime.
    pub fn build(mut config: Config, clock: Arc<dyn Clock>) -> Result<Arc<Self>, StoreError> {
        let store = store::open(&config.store, clock.clone())?;
        let tool_keys = ToolKeys::new(std::mem::take(&mut config.keys));
        let registry = Registry::new(&config.platforms, &tool_keys, &config.jwks);
        let sessions = Sessions::new(store.clone(), clock.clone(), config.session.clone());
        let cookies = CookiePolicy {
            https: config.server.is_https(),
            partitioned: config.session.partitioned_cookies,
        };
        Ok(Arc::new(Self {
            config,
            clock,
            store,
            registry,
            tool_keys,
            client: HttpClient::new(),
            sessions,
            cookies,
        }))
    }

    /// The OIDC redirect URI platforms must register.
    pub fn redirect_uri(&self) -> String {
        format!("{}{LAUNCH_PATH}", self.config.server.public_origin())
    }
}

fn is(path: &str, endpoint: &str) -> bool {
    path == endpoint || Some(path) == endpoint.strip_suffix('/')
}

/// Handles one request.
pub async fn handle<B>(app: Arc<AppState>, req: Request<B>) -> Response<Body>
where
    B: http_body::Body<Data = Bytes> + Send,
    B::Error: Into<BoxError>,
{
    let path = req.uri().path().to_owned();
    let method = req.method().clone();
    let result = match path.as_str() {
        "/healthz" => Ok(text(StatusCode::OK, "ok\n")),
        "/readyz" => Ok(ready(&app).await),
        p if is(p, crate::content::LOGIN_PATH) => match method {
            Method::GET => login(&app, form::query_pairs(&req)).await,
            Method::POST => match form::form_pairs(req, MAX_FORM_BYTES).await {
                Ok(pairs) => login(&app, pairs).await,
                Err(e) => Err(e.into()),
            },
            _ => Err(Rejection::MethodNotAllowed("GET, POST")),
        },
        p if is(p, LAUNCH_PATH) || is(p, crate::content::DEEP_LINKING_LAUNCH_PATH) => {
            match method {
                Method::POST => launch(&app, req).await,
                Method::GET | Method::HEAD => Err(Rejection::LaunchOpenedDirectly),
                _ => Err(Rejection::MethodNotAllowed("POST")),
            }
        }
        p if is(p, crate::content::JWKS_PATH) => {
            get_only(&method).map(|()| json(app.tool_keys.jwks()))
        }
        p if p.starts_with("/lti/1p3/pub/orgs/") => {
            get_only(&method).and_then(|()| org_jwks(&app, p))
        }
        p if p.starts_with(DISPLAY_PREFIX) => match method {
            Method::GET | Method::HEAD => display(&app, &req).await,
            _ => Err(Rejection::MethodNotAllowed("GET, HEAD")),
        },
        _ => Err(Rejection::NotFound),
    };
    result.unwrap_or_else(Rejection::into_response)
}

fn get_only(method: &Method) -> Result<(), Rejection> {
    match *method {
        Method::GET | Method::HEAD => Ok(()),
        _ => Err(Rejection::MethodNotAllowed("GET, HEAD")),
    }
}

async fn login(app: &AppState, pairs: Vec<(String, String)>) -> Result<Response<Body>, Rejection> {
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
    Ok(response)
}

async fn launch<B>(app: &AppState, req: Request<B>) -> Result<Response<Body>, Rejection>
where
    B: http_body::Body<Data = Bytes> + Send,
    B::Error: Into<BoxError>,
{
    let cookies = RequestCookies::from_headers(req.headers());
    let pairs = form::form_pairs(req, MAX_FORM_BYTES).await?;
    let form = LaunchForm::from_pairs(pairs);
    let state = form.state.clone();
    match launch::launch(app, form, &cookies).await {
        Ok(done) => {
            let mut response = redirect_to(&done.location)?;
            let h = response.headers_mut();
            let session = app.sessions.config();
            h.append(
                header::SET_COOKIE,
                app.cookies.set(
                    &session.cookie_name,
                    &done.session_id,
                    "/",
                    session.lifetime_sec,
                ),
            );
            h.append(
                header::SET_COOKIE,
                app.cookies
                    .clear(&state_cookie_name(&done.state), STATE_COOKIE_PATH),
            );
            Ok(response)
        }
        Err(e) => {
            let mut response = Rejection::from(e).into_response();
            // The login state is spent either way: drop its cookie too.
            if let Some(state) = state.filter(|s| crate::session::is_token(s)) {
                response.headers_mut().append(
                    header::SET_COOKIE,
                    app.cookies
                        .clear(&state_cookie_name(&state), STATE_COOKIE_PATH),
                );
            }
            Ok(response)
        }
    }
}

async fn display<B>(app: &AppState, req: &Request<B>) -> Result<Response<Body>, Rejection> {
    let Ok(content) = ContentPath::from_path(req.uri().path()) else {
        return Err(Rejection::NotFound);
    };
    let cookies = RequestCookies::from_headers(req.headers());
    let session_id = cookies.get(&app.sessions.config().cookie_name);
    let (session, index) = app
        .sessions
        .check_grant(session_id, &content)
        .await
        .map_err(Rejection::Display)?;
    let grant = &session.grants[index];
    tracing::info!(usage_key = %content.usage, "display granted");
    // Until the gated proxy forwards this to the LMS, confirm the grant.
    let page = Page::new("Access granted")
        .para(format!("Course: {}", content.course))
        .para(format!("Content: {}", content.usage))
        .para(format!(
            "Access until: {} (Unix time)",
            session.grant_expiry(grant)
        ));
    Ok(html(StatusCode::OK, page.render()))
}

fn org_jwks(app: &AppState, path: &str) -> Result<Response<Body>, Rejection> {
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

async fn ready(app: &AppState) -> Response<Body> {
    match app.store.ping().await {
        Ok(()) => text(StatusCode::OK, "ready\n"),
        Err(e) => {
            tracing::warn!(error = %e, "not ready: store unreachable");
            text(StatusCode::SERVICE_UNAVAILABLE, "store unreachable\n")
        }
    }
}

fn redirect_to(location: &str) -> Result<Response<Body>, Rejection> {
    let value = HeaderValue::from_str(location).map_err(|_| FormError::Unreadable)?;
    let mut response = Response::new(full_body(Bytes::new()));
    *response.status_mut() = StatusCode::FOUND;
    response.headers_mut().insert(header::LOCATION, value);
    no_store(response.headers_mut());
    Ok(response)
}

fn json(body: Bytes) -> Response<Body> {
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
    response
}

fn text(status: StatusCode, body: &'static str) -> Response<Body> {
    let mut response = Response::new(full_body(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    no_store(h);
    response
}
