//! Third-party initiated login (`GET|POST /lti/1p3/login/`).
//!
//! Validates the platform's login initiation, remembers a fresh `state` and
//! `nonce` (single-use, short TTL) together with the registration and the
//! `target_link_uri`, and answers with the OIDC authentication request to the
//! platform. It fails early on anything that would make the launch fail
//! later, with a message naming what to fix. It never creates a session.

use super::Lti;
use crate::gate::GateRefusal;
use crate::lti::target::{self, TargetError};
use crate::lti::{LoginState, state_cookie_name};
use crate::registry::LookupError;
use crate::store::{Namespace, StoreError};
use crate::token::random_token;

#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error("the login request has no {0} parameter")]
    MissingParam(&'static str),
    #[error("the login request has the {0} parameter more than once")]
    DuplicateParam(String),
    #[error(transparent)]
    Lookup(#[from] LookupError),
    #[error("deployment {0:?} is not registered for this platform")]
    UnknownDeployment(String),
    #[error(transparent)]
    Target(#[from] TargetError),
    #[error(transparent)]
    Gate(#[from] GateRefusal),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The login initiation parameters.
#[derive(Debug, Default)]
pub struct LoginParams {
    pub iss: String,
    pub login_hint: String,
    pub target_link_uri: String,
    pub lti_message_hint: Option<String>,
    pub client_id: Option<String>,
    pub deployment_id: Option<String>,
}

impl LoginParams {
    /// Reads the parameters from decoded query or form pairs. Unknown
    /// parameters are ignored; a known one given twice is refused.
    pub fn from_pairs(
        pairs: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, LoginError> {
        let mut iss = None;
        let mut login_hint = None;
        let mut target_link_uri = None;
        let mut p = LoginParams::default();
        for (name, value) in pairs {
            let slot = match name.as_str() {
                "iss" => &mut iss,
                "login_hint" => &mut login_hint,
                "target_link_uri" => &mut target_link_uri,
                "lti_message_hint" => &mut p.lti_message_hint,
                "client_id" => &mut p.client_id,
                // Some platforms send `deployment_id` instead of `lti_deployment_id`.
                "lti_deployment_id" | "deployment_id" => &mut p.deployment_id,
                _ => continue,
            };
            if slot.is_some() {
                return Err(LoginError::DuplicateParam(name));
            }
            *slot = Some(value).filter(|v| !v.is_empty());
        }
        p.iss = iss.ok_or(LoginError::MissingParam("iss"))?;
        p.login_hint = login_hint.ok_or(LoginError::MissingParam("login_hint"))?;
        p.target_link_uri = target_link_uri.ok_or(LoginError::MissingParam("target_link_uri"))?;
        Ok(p)
    }
}

/// Where to send the browser, and the state to bind to it.
#[derive(Debug)]
pub struct LoginRedirect {
    pub location: String,
    pub state: String,
    pub state_cookie: String,
}

impl Lti {
    /// Handles a login initiation.
    pub async fn login(&self, params: LoginParams) -> Result<LoginRedirect, LoginError> {
        let reg = self
            .registry
            .find(&params.iss, params.client_id.as_deref())?;
        let platform = &reg.platform;
        if let Some(d) = params
            .deployment_id
            .as_ref()
            .filter(|d| !platform.deployment_ids.contains(*d))
        {
            return Err(LoginError::UnknownDeployment(d.clone()));
        }
        let public_url = &self.public_url;
        let target = target::parse(&params.target_link_uri, public_url)?;
        if let target::Target::Display(content) = &target {
            // Refuse at once what the launch would refuse after a round trip.
            crate::gate::check(platform.gate.as_ref(), &content.usage)?;
        }

        let state = random_token();
        let nonce = random_token();
        let remembered = LoginState {
            issuer: platform.issuer.clone(),
            client_id: platform.client_id.clone(),
            nonce: nonce.clone(),
            target: target.canonical_url(&self.public_origin),
            deployment_id: params.deployment_id.clone(),
        };
        let ttl = self.sessions.config().login_state_ttl_sec;
        let bytes =
            serde_json::to_vec(&remembered).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.store
            .put(Namespace::LoginState, &state, bytes, self.clock.now() + ttl)
            .await?;

        let mut location = platform.auth_login_url.clone();
        {
            let mut q = location.query_pairs_mut();
            q.append_pair("scope", "openid")
                .append_pair("response_type", "id_token")
                .append_pair("response_mode", "form_post")
                .append_pair("prompt", "none")
                .append_pair("client_id", &platform.client_id)
                .append_pair("redirect_uri", &self.redirect_uri())
                .append_pair("login_hint", &params.login_hint)
                .append_pair("state", &state)
                .append_pair("nonce", &nonce);
            if let Some(hint) = &params.lti_message_hint {
                q.append_pair("lti_message_hint", hint);
            }
        }
        tracing::info!(
            issuer = %platform.issuer,
            client_id = %platform.client_id,
            "login initiated"
        );
        Ok(LoginRedirect {
            location: location.into(),
            state_cookie: state_cookie_name(&state),
            state,
        })
    }
}
