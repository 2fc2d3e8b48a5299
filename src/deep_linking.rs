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
//!
//! The [`DeepLinking`] service returns view values ([`Picker`],
//! [`AutoPost`]); the HTTP layer renders them (`http/picker_pages.rs`).

pub mod catalog;

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use subtle::ConstantTimeEq as _;

use crate::claims;
use crate::clock::{Clock, UnixTime};
use crate::content::{DISPLAY_PREFIX, UsageKey};
use crate::registry::{Registration, Registry};
use crate::store::{Namespace, Store, StoreError};
use crate::token::random_token;

pub use catalog::{Catalog, CatalogError, CourseListing};

/// Deep linking settings.
#[derive(Debug, Clone)]
pub struct DeepLinkingConfig {
    pub token_ttl_sec: u64,
    pub accepted_roles: Vec<String>,
    /// How long the picker keeps the LMS's course and block lists.
    pub cache_ttl: std::time::Duration,
}

/// Where the picker lives; the token follows.
pub const PICKER_PREFIX: &str = "/lti/1p3/deep-linking/select-content/";
/// The binding cookie is sent only to the picker.
const RESOURCE_LINK_TYPE: &str = "ltiResourceLink";

/// The browser-bound cookie of one picker token.
pub fn cookie_name(token: &str) -> String {
    format!("ltigate_dl_{token}")
}

/// Why a verified deep-linking request was refused at launch.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("the {0} claim is missing or empty")]
    MissingClaim(&'static str),
    #[error("the deep-linking request does not accept ltiResourceLink items")]
    UnsupportedTypes,
    #[error("deep linking is open to instructors and content developers only")]
    Role,
    #[error(
        "this registration has no launch gate allowing any content, so there is nothing to pick"
    )]
    NoGate,
    #[error("the deep_link_return_url is not allowed: {0}")]
    ReturnUrlNotAllowed(#[from] crate::registry::ServiceUrlRefused),
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

/// The picker, to be shown: what the gate allows, for this picker token.
#[derive(Debug)]
pub struct Picker {
    pub listing: Vec<CourseListing>,
    pub session: PickerSession,
    pub token: String,
    /// The learner's search, if any.
    pub search: Option<String>,
}

/// The signed deep-linking response, to be posted to the platform by the
/// browser (an auto-submitting form).
#[derive(Debug)]
pub struct AutoPost {
    pub return_url: String,
    pub jwt: String,
}

/// The deep-linking service: picker sessions, the catalog, the response.
pub struct DeepLinking {
    config: DeepLinkingConfig,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    registry: Arc<Registry>,
    catalog: Catalog,
    /// The gateway's public origin, for the content items' URLs.
    public_origin: String,
    /// Whether `http` return URLs are accepted (`server.allow_http`).
    allow_http: bool,
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

impl DeepLinking {
    pub fn new(
        config: DeepLinkingConfig,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        catalog: Catalog,
        registry: Arc<Registry>,
        public_origin: String,
        allow_http: bool,
    ) -> Self {
        Self {
            catalog,
            config,
            store,
            clock,
            registry,
            public_origin,
            allow_http,
        }
    }

    pub fn config(&self) -> &DeepLinkingConfig {
        &self.config
    }

    /// The deep-linking checks of a verified launch.
    pub fn check_request(
        &self,
        reg: &Registration,
        roles: &[String],
        claims_map: &Map<String, Value>,
    ) -> Result<PickerSession, RequestError> {
        let config = &self.config;
        let settings = claims_map
            .get(claims::DEEP_LINKING_SETTINGS)
            .and_then(Value::as_object)
            .ok_or(RequestError::MissingClaim("deep_linking_settings"))?;
        let return_url = settings
            .get("deep_link_return_url")
            .and_then(Value::as_str)
            .filter(|u| !u.is_empty())
            .ok_or(RequestError::MissingClaim("deep_link_return_url"))?;
        let parsed = url::Url::parse(return_url)
            .map_err(|_| RequestError::MissingClaim("deep_link_return_url"))?;
        let http_ok = self.allow_http && parsed.scheme() == "http";
        if parsed.scheme() != "https" && !http_ok {
            return Err(RequestError::MissingClaim("deep_link_return_url"));
        }
        // The signed response goes there: only to where this platform is.
        reg.check_service_url(&parsed)?;
        let accepts_links = settings
            .get("accept_types")
            .and_then(Value::as_array)
            .is_some_and(|t| t.iter().any(|t| t == RESOURCE_LINK_TYPE));
        if !accepts_links {
            return Err(RequestError::UnsupportedTypes);
        }
        let accepted = roles
            .iter()
            .map(|r| full_role(r))
            .any(|r| config.accepted_roles.contains(&r));
        if !accepted {
            return Err(RequestError::Role);
        }
        if reg.platform.gate.as_ref().is_none_or(|g| g.is_empty()) {
            return Err(RequestError::NoGate);
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
            expires_at: self.clock.now() + config.token_ttl_sec,
        })
    }

    /// Stores a picker session; returns its token.
    pub async fn start(&self, session: &PickerSession) -> Result<String, StoreError> {
        let token = random_token();
        let bytes = serde_json::to_vec(session).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.store
            .put(Namespace::DeepLinking, &token, bytes, session.expires_at)
            .await?;
        Ok(token)
    }
}

/// The picker's URL path for a token.
pub fn picker_path(token: &str) -> String {
    format!("{PICKER_PREFIX}{token}/")
}

/// The token in a picker path.
pub fn token_of(path: &str) -> Option<&str> {
    let token = path.strip_prefix(PICKER_PREFIX)?;
    let token = token.strip_suffix('/').unwrap_or(token);
    crate::token::is_token(token).then_some(token)
}

impl DeepLinking {
    /// Checks that `token` is a live picker and `binding` (the browser's
    /// binding cookie) the one it was issued to, before its submission is
    /// read. [`Self::submit`] checks the same again.
    pub async fn open(&self, token: &str, binding: Option<&str>) -> Result<(), PickerError> {
        self.load(token, binding).await.map(drop)
    }

    /// The picker session under `token`, if `binding` (the browser's binding
    /// cookie) is the one it was issued to.
    async fn load(&self, token: &str, binding: Option<&str>) -> Result<PickerSession, PickerError> {
        let bytes = self
            .store
            .get(Namespace::DeepLinking, token)
            .await?
            .ok_or(PickerError::TokenUnknown)?;
        let session: PickerSession =
            serde_json::from_slice(&bytes).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        match binding {
            Some(v) if bool::from(v.as_bytes().ct_eq(session.binding.as_bytes())) => Ok(session),
            _ => Err(PickerError::WrongBrowser),
        }
    }

    /// The picker for `token`, listing what the gate allows (narrowed by
    /// `search` when the page shows it).
    pub async fn show(
        &self,
        token: &str,
        binding: Option<&str>,
        search: Option<String>,
    ) -> Result<Picker, PickerError> {
        let session = self.load(token, binding).await?;
        let reg = self.registration(&session)?;
        let gate = reg.platform.gate.clone().unwrap_or_default();
        let listing = self.catalog.listing(&gate).await?;
        Ok(Picker {
            listing,
            session,
            token: token.to_owned(),
            search: search.filter(|q| !q.trim().is_empty()),
        })
    }

    fn registration(&self, session: &PickerSession) -> Result<Arc<Registration>, PickerError> {
        self.registry
            .find(&session.issuer, Some(&session.client_id))
            .map_err(|_| PickerError::TokenUnknown)
    }

    /// The picker's submission (`form`: its fields): re-check, consume the
    /// token, and sign the response for the platform.
    pub async fn submit(
        &self,
        token: &str,
        binding: Option<&str>,
        pairs: &[(String, String)],
    ) -> Result<AutoPost, PickerError> {
        let session = self.load(token, binding).await?;
        let csrf = pairs
            .iter()
            .find(|(k, _)| k == "csrf")
            .map(|(_, v)| v.as_str())
            .unwrap_or_default();
        if !bool::from(csrf.as_bytes().ct_eq(session.csrf.as_bytes())) {
            return Err(PickerError::BadCsrf);
        }
        let reg = self.registration(&session)?;
        let gate = reg.platform.gate.clone().unwrap_or_default();
        let mut selected = Vec::new();
        for (_, value) in pairs.iter().filter(|(k, _)| k == "item") {
            let usage =
                UsageKey::parse(value).map_err(|_| PickerError::NotAllowed(value.clone()))?;
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
        let listing = self.catalog.listing(&gate).await?;
        let titles = catalog::titles(&listing);
        // Only what the picker could have shown: listed by the LMS, allowed by the gate.
        if let Some(unlisted) = selected.iter().find(|u| !titles.contains_key(*u)) {
            return Err(PickerError::NotAllowed(unlisted.to_string()));
        }
        // Single use: of two concurrent submissions, one wins.
        if self
            .store
            .take(Namespace::DeepLinking, token)
            .await?
            .is_none()
        {
            return Err(PickerError::TokenUnknown);
        }
        let origin = &self.public_origin;
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
        let now = self.clock.now();
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
        Ok(AutoPost {
            return_url: session.return_url,
            jwt,
        })
    }
}

#[cfg(test)]
mod tests;
