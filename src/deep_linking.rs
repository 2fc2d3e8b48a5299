//! Deep Linking 2.0: instructors pick gated content from inside their platform.
//!
//! A verified `LtiDeepLinkingRequest` from an accepted role, on a registration
//! whose launch gate allows something, gets a single-use picker token bound to
//! the browser (a cookie) and is redirected to the picker. The picker lists
//! what the gate allows (from the LMS's REST APIs, see [`catalog`]); its
//! submission re-checks every selection against the gate, consumes the token,
//! and answers with an auto-submitting form that posts a signed
//! `LtiDeepLinkingResponse` to the platform's `deep_link_return_url`. No
//! session or grant is created by deep linking.

pub mod catalog;
mod pages;

use std::sync::Arc;

use bytes::Bytes;
use http::Response;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use subtle::ConstantTimeEq as _;

use crate::app::AppState;
use crate::clock::UnixTime;
use crate::content::{DISPLAY_PREFIX, UsageKey};
use crate::lti::claims;
use crate::lti::launch::{BrowserCookies, LaunchError};
use crate::registry::Registration;
use crate::session::random_token;
use crate::store::{Namespace, StoreError};
use crate::{Body, BoxError};

pub use catalog::{Catalog, CatalogError};

/// Where the picker lives; the token follows.
pub const PICKER_PREFIX: &str = "/lti/1p3/deep-linking/select-content/";
/// The binding cookie is sent only to the picker.
pub const COOKIE_PATH: &str = "/lti/1p3/deep-linking/";
const RESOURCE_LINK_TYPE: &str = "ltiResourceLink";

/// The browser-bound cookie of one picker token.
pub fn cookie_name(token: &str) -> String {
    format!("ltigate_dl_{token}")
}

/// Why the picker refused.
#[derive(Debug, thiserror::Error)]
pub enum PickerError {
    #[error("the picker link is unknown, expired or already used")]
    TokenUnknown,
    #[error("the picker was opened in another browser than the launch")]
    WrongBrowser,
    #[error("the form's CSRF token does not match")]
    BadCsrf,
    #[error("nothing was selected")]
    NothingSelected,
    #[error("the platform accepts one item only")]
    TooMany,
    #[error("{0} is not allowed by the launch gate")]
    NotAllowed(String),
    #[error("the picker form could not be read")]
    BadForm,
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("signing the response failed: {0}")]
    Signing(String),
}

/// A deep-linking request that passed every check, kept under the picker token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PickerSession {
    pub issuer: String,
    pub client_id: String,
    pub deployment_id: String,
    pub return_url: String,
    /// Echoed back only if the platform sent it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
    pub accept_multiple: bool,
    pub binding: String,
    pub csrf: String,
    pub expires_at: UnixTime,
}

/// Short role names (`Instructor`) are context roles in the LIS vocabulary.
fn full_role(role: &str) -> String {
    if role.contains(['/', '#', ':']) {
        role.to_owned()
    } else {
        format!("http://purl.imsglobal.org/vocab/lis/v2/membership#{role}")
    }
}

/// The deep-linking checks of a verified launch.
pub fn check_request(
    app: &AppState,
    reg: &Registration,
    roles: &[String],
    claims_map: &Map<String, Value>,
) -> Result<PickerSession, LaunchError> {
    let Some(config) = &app.config.deep_linking else {
        return Err(LaunchError::DeepLinkingNotConfigured);
    };
    let settings = claims_map
        .get(claims::DEEP_LINKING_SETTINGS)
        .and_then(Value::as_object)
        .ok_or(LaunchError::MissingClaim("deep_linking_settings"))?;
    let return_url = settings
        .get("deep_link_return_url")
        .and_then(Value::as_str)
        .filter(|u| !u.is_empty())
        .ok_or(LaunchError::MissingClaim("deep_link_return_url"))?;
    let parsed = url::Url::parse(return_url)
        .map_err(|_| LaunchError::MissingClaim("deep_link_return_url"))?;
    let http_ok = app.config.server.allow_http && parsed.scheme() == "http";
    if parsed.scheme() != "https" && !http_ok {
        return Err(LaunchError::MissingClaim("deep_link_return_url"));
    }
    let accepts_links = settings
        .get("accept_types")
        .and_then(Value::as_array)
        .is_some_and(|t| t.iter().any(|t| t == RESOURCE_LINK_TYPE));
    if !accepts_links {
        return Err(LaunchError::DeepLinkingUnsupportedTypes);
    }
    let accepted = roles
        .iter()
        .map(|r| full_role(r))
        .any(|r| config.accepted_roles.contains(&r));
    if !accepted {
        return Err(LaunchError::DeepLinkingRole);
    }
    if reg.platform.gate.as_ref().is_none_or(|g| g.is_empty()) {
        return Err(LaunchError::DeepLinkingNoGate);
    }
    Ok(PickerSession {
        issuer: reg.platform.issuer.clone(),
        client_id: reg.platform.client_id.clone(),
        deployment_id: claims_map
            .get(claims::DEPLOYMENT_ID)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        return_url: return_url.to_owned(),
        data: settings.get("data").cloned(),
        accept_multiple: settings
            .get("accept_multiple")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        binding: random_token(),
        csrf: random_token(),
        expires_at: app.clock.now() + config.token_ttl_sec,
    })
}

/// Stores a picker session; returns its token.
pub async fn start(app: &AppState, session: &PickerSession) -> Result<String, LaunchError> {
    let token = random_token();
    let bytes = serde_json::to_vec(session)
        .map_err(|e| LaunchError::Store(StoreError::Corrupt(e.to_string())))?;
    app.store
        .put(Namespace::DeepLinking, &token, bytes, session.expires_at)
        .await?;
    Ok(token)
}

/// The picker's URL path for a token.
pub fn picker_path(token: &str) -> String {
    format!("{PICKER_PREFIX}{token}/")
}

/// The token in a picker path.
pub fn token_of(path: &str) -> Option<&str> {
    let token = path.strip_prefix(PICKER_PREFIX)?;
    let token = token.strip_suffix('/').unwrap_or(token);
    crate::session::is_token(token).then_some(token)
}

async fn load(
    app: &AppState,
    token: &str,
    cookies: &(dyn BrowserCookies + Sync),
) -> Result<PickerSession, PickerError> {
    let bytes = app
        .store
        .get(Namespace::DeepLinking, token)
        .await?
        .ok_or(PickerError::TokenUnknown)?;
    let session: PickerSession =
        serde_json::from_slice(&bytes).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    match cookies.get(&cookie_name(token)) {
        Some(v) if bool::from(v.as_bytes().ct_eq(session.binding.as_bytes())) => Ok(session),
        _ => Err(PickerError::WrongBrowser),
    }
}

fn catalog_of(app: &AppState) -> Result<&Catalog, PickerError> {
    app.catalog
        .as_ref()
        .ok_or(PickerError::Catalog(CatalogError::Unreachable(
            "deep linking is not configured".into(),
        )))
}

/// `GET` the picker.
pub async fn show(
    app: &AppState,
    token: &str,
    query: Option<&str>,
    cookies: &(dyn BrowserCookies + Sync),
) -> Result<Response<Body>, PickerError> {
    let session = load(app, token, cookies).await?;
    let reg = registration(app, &session)?;
    let gate = reg.platform.gate.clone().unwrap_or_default();
    let listing = catalog_of(app)?.listing(&app.client, &gate).await?;
    let search = query
        .and_then(|q| {
            form_urlencoded::parse(q.as_bytes())
                .find(|(k, _)| k == "q")
                .map(|(_, v)| v.into_owned())
        })
        .filter(|q| !q.trim().is_empty());
    Ok(pages::picker(&listing, &session, token, search.as_deref()))
}

fn registration(app: &AppState, session: &PickerSession) -> Result<Arc<Registration>, PickerError> {
    app.registry
        .find(&session.issuer, Some(&session.client_id))
        .map_err(|_| PickerError::TokenUnknown)
}

/// `POST` the picker: re-check, consume the token, answer with the response form.
pub async fn submit<B>(
    app: &AppState,
    token: &str,
    req: http::Request<B>,
    cookies: &(dyn BrowserCookies + Sync),
) -> Result<Response<Body>, PickerError>
where
    B: http_body::Body<Data = Bytes> + Send,
    B::Error: Into<BoxError>,
{
    let session = load(app, token, cookies).await?;
    let pairs = crate::form::form_pairs(req, 256 * 1024)
        .await
        .map_err(|_| PickerError::BadForm)?;
    let csrf = pairs
        .iter()
        .find(|(k, _)| k == "csrf")
        .map(|(_, v)| v.as_str())
        .unwrap_or_default();
    if !bool::from(csrf.as_bytes().ct_eq(session.csrf.as_bytes())) {
        return Err(PickerError::BadCsrf);
    }
    let reg = registration(app, &session)?;
    let gate = reg.platform.gate.clone().unwrap_or_default();
    let mut selected = Vec::new();
    for (_, value) in pairs.iter().filter(|(k, _)| k == "item") {
        let usage = UsageKey::parse(value).map_err(|_| PickerError::NotAllowed(value.clone()))?;
        gate.check(&usage)
            .map_err(|_| PickerError::NotAllowed(value.clone()))?;
        if !selected.contains(&usage) {
            selected.push(usage);
        }
    }
    if selected.is_empty() {
        return Err(PickerError::NothingSelected);
    }
    if selected.len() > 1 && !session.accept_multiple {
        return Err(PickerError::TooMany);
    }
    let listing = catalog_of(app)?.listing(&app.client, &gate).await?;
    let titles = catalog::titles(&listing);
    // Only what the picker could have shown: listed by the LMS, allowed by the gate.
    if let Some(unlisted) = selected.iter().find(|u| !titles.contains_key(*u)) {
        return Err(PickerError::NotAllowed(unlisted.to_string()));
    }
    // Single use: of two concurrent submissions, one wins.
    if app
        .store
        .take(Namespace::DeepLinking, token)
        .await?
        .is_none()
    {
        return Err(PickerError::TokenUnknown);
    }
    let origin = &app.public_origin;
    let items: Vec<Value> = selected
        .iter()
        .map(|usage| {
            json!({
                "type": RESOURCE_LINK_TYPE,
                "title": titles.get(usage).cloned().unwrap_or_else(|| usage.to_string()),
                "url": format!("{origin}{DISPLAY_PREFIX}{}/{usage}", usage.course_key()),
            })
        })
        .collect();
    let now = app.clock.now();
    let mut claims_map = json!({
        "iss": session.client_id,
        "aud": session.issuer,
        "iat": now,
        "exp": now + 600,
        "nonce": random_token(),
        claims::DEPLOYMENT_ID: session.deployment_id,
        claims::MESSAGE_TYPE: "LtiDeepLinkingResponse",
        claims::VERSION: claims::LTI_VERSION,
        "https://purl.imsglobal.org/spec/lti-dl/claim/content_items": items,
    });
    if let Some(data) = &session.data {
        claims_map["https://purl.imsglobal.org/spec/lti-dl/claim/data"] = data.clone();
    }
    let jwt = reg
        .tool_key
        .sign(&claims_map)
        .map_err(|e| PickerError::Signing(e.to_string()))?;
    tracing::info!(
        issuer = %session.issuer,
        client_id = %session.client_id,
        items = selected.len(),
        "deep linking response sent"
    );
    Ok(pages::autopost(&session.return_url, &jwt))
}

impl PickerError {
    pub fn reason(&self) -> &'static str {
        match self {
            PickerError::TokenUnknown => "picker_token_unknown",
            PickerError::WrongBrowser => "picker_wrong_browser",
            PickerError::BadCsrf => "picker_bad_csrf",
            PickerError::NothingSelected => "picker_nothing_selected",
            PickerError::TooMany => "picker_too_many",
            PickerError::NotAllowed(_) => "picker_not_allowed",
            PickerError::BadForm => "picker_bad_form",
            PickerError::Catalog(_) => "lms_api_failed",
            PickerError::Store(_) => "store_unavailable",
            PickerError::Signing(_) => "internal_error",
        }
    }
}
