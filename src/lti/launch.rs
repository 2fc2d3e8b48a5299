//! The launch (`POST /lti/1p3/launch/`): verify the id_token, then grant.
//!
//! Runs every check of the LTI 1.3 core and the 1EdTech Security Framework, in
//! this order: the platform's own error, the form, the state cookie, the
//! single-use login state, the JWT header (RS256 only, `kid` required), the
//! signature against the registration's key set, `iss`, `aud`/`azp`,
//! `exp`/`iat`/`nbf` with leeway, the nonce, the deployment, the version, the
//! message type, the required claims, the target and the launch gate. Only
//! after all of them pass is a session written. A rejected launch leaves no
//! session and no grant behind; its login state is consumed all the same, so
//! nothing can be retried with it.
//!
//! The nonce is single-use by construction: it lives only inside the login
//! state, which is consumed atomically before the token is even looked at.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};
use subtle::ConstantTimeEq as _;

use super::Lti;
use crate::claims;
use crate::deep_linking::RequestError;
use crate::gate::GateRefusal;
use crate::jwks::{JwksError, PlatformKey};
use crate::lti::LoginState;
use crate::lti::target::{self, Target, TargetError};
use crate::registry::{LookupError, Registration};
use crate::session::{LaunchContext, UserRef};
use crate::store::{Namespace, StoreError};
use crate::token::is_token;

/// Why a launch was refused. Each variant names one failed check.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error("the platform reported an error instead of a launch: {error}")]
    PlatformError {
        error: String,
        description: Option<String>,
    },
    #[error("the launch has no {0} field")]
    MissingField(&'static str),
    #[error("the state cookie set at login did not come back with the launch")]
    StateCookieMissing,
    #[error("the login state is unknown, expired or already used")]
    StateUnknown,
    #[error("the platform registration of this login is no longer usable: {0}")]
    Registration(LookupError),
    #[error("the id_token is not a well-formed JWT")]
    MalformedToken,
    #[error("the id_token is signed with {0:?}; only RS256 is accepted")]
    UnsupportedAlgorithm(String),
    #[error("the id_token header has no kid")]
    MissingKid,
    #[error("the id_token's kid is not in the platform's key set")]
    UnknownKid,
    #[error("the platform's key set is unavailable: {0}")]
    KeySetUnavailable(JwksError),
    #[error("the id_token signature does not verify")]
    BadSignature,
    #[error("the id_token's iss is not this registration's issuer")]
    WrongIssuer,
    #[error("the id_token's aud does not contain this registration's client_id")]
    WrongAudience,
    #[error("the id_token has several audiences and no azp")]
    MissingAzp,
    #[error("the id_token's azp is not this registration's client_id")]
    WrongAzp,
    #[error("the id_token has no valid {0} time")]
    MissingTime(&'static str),
    #[error("the id_token has expired")]
    Expired,
    #[error("the id_token was issued in the future")]
    IssuedInFuture,
    #[error("the id_token is not valid yet (nbf)")]
    NotYetValid,
    #[error("the id_token's nonce is not the one issued at login")]
    NonceMismatch,
    #[error("the deployment_id is not registered for this platform")]
    UnknownDeployment,
    #[error("the LTI version claim is missing")]
    MissingVersion,
    #[error("the LTI version is {0:?}, not 1.3.0")]
    WrongVersion(String),
    #[error("the message_type claim is missing")]
    MissingMessageType,
    #[error("the message type {0:?} is not supported")]
    UnsupportedMessageType(String),
    #[error("the {0} claim is missing or empty")]
    MissingClaim(&'static str),
    #[error("deep linking is not configured on this gateway")]
    DeepLinkingNotConfigured,
    #[error(transparent)]
    DeepLinking(RequestError),
    #[error(transparent)]
    Target(TargetError),
    #[error("the target link URI differs from the one given at login")]
    TargetMismatch,
    #[error(transparent)]
    Gate(GateRefusal),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The launch form, as posted by the platform.
#[derive(Debug, Default)]
pub struct LaunchForm {
    pub id_token: Option<String>,
    pub state: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
}

impl LaunchForm {
    pub fn from_pairs(pairs: impl IntoIterator<Item = (String, String)>) -> Self {
        let mut form = Self::default();
        for (name, value) in pairs {
            let slot = match name.as_str() {
                "id_token" => &mut form.id_token,
                "state" => &mut form.state,
                "error" => &mut form.error,
                "error_description" => &mut form.error_description,
                _ => continue,
            };
            // First value wins; an empty value counts as absent.
            if slot.is_none() && !value.is_empty() {
                *slot = Some(value);
            }
        }
        form
    }
}

/// A launch that passed every check.
#[derive(Debug)]
pub enum Launched {
    /// A resource link: the grant is recorded; go to the content.
    Resource {
        session_id: String,
        location: String,
        state: String,
    },
    /// A deep-linking request: go to the picker, bound to this browser.
    DeepLinking {
        location: String,
        state: String,
        token: String,
        binding: String,
    },
}

/// What a verified message asks for.
enum Message {
    ResourceLink {
        user: UserRef,
        content: crate::content::ContentPath,
        context: Box<LaunchContext>,
    },
    DeepLinking(crate::deep_linking::PickerSession),
}

/// What the browser brought to the launch besides the form: the values of
/// the cookies the HTTP layer found for it.
#[derive(Debug, Default)]
pub struct LaunchCookies<'a> {
    /// The state cookie named for the form's `state` (see
    /// [`super::state_cookie_name`]).
    pub state: Option<&'a str>,
    /// The session cookie, if the browser has a session already.
    pub session: Option<crate::session::Presented<'a>>,
}

impl Lti {
    /// Verifies a launch and, if it passes, records the grant.
    pub async fn launch(
        &self,
        form: LaunchForm,
        cookies: LaunchCookies<'_>,
    ) -> Result<Launched, LaunchError> {
        if let Some(error) = form.error {
            return Err(LaunchError::PlatformError {
                error,
                description: form.error_description,
            });
        }
        let state = form.state.ok_or(LaunchError::MissingField("state"))?;
        let id_token = form.id_token.ok_or(LaunchError::MissingField("id_token"))?;
        if !is_token(&state) {
            return Err(LaunchError::StateUnknown);
        }
        // The cookie binds the state to the browser that started the login. Its
        // absence is checked before the state is consumed, so a request from
        // another browser cannot burn a victim's login.
        match cookies.state {
            Some(v) if bool::from(v.as_bytes().ct_eq(state.as_bytes())) => {}
            _ => return Err(LaunchError::StateCookieMissing),
        }
        let login: LoginState = match self.store.take(Namespace::LoginState, &state).await? {
            None => return Err(LaunchError::StateUnknown),
            Some(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| LaunchError::Store(StoreError::Corrupt(e.to_string())))?,
        };
        let reg = self
            .registry
            .find(&login.issuer, Some(&login.client_id))
            .map_err(LaunchError::Registration)?;

        let claims = self.verify_token(&reg, &id_token).await?;
        self.check_claims(&reg, &login, &claims)?;
        let (user, content, context) = match self.accept_message(&reg, &login, &claims)? {
            Message::ResourceLink {
                user,
                content,
                context,
            } => (user, content, *context),
            Message::DeepLinking(picker) => {
                let deep_linking = self
                    .deep_linking
                    .as_ref()
                    .ok_or(LaunchError::DeepLinkingNotConfigured)?;
                let token = deep_linking.start(&picker).await?;
                tracing::info!(
                    issuer = %reg.platform.issuer,
                    client_id = %reg.platform.client_id,
                    "deep-linking request accepted"
                );
                return Ok(Launched::DeepLinking {
                    location: format!(
                        "{}{}",
                        self.public_origin,
                        crate::deep_linking::picker_path(&token)
                    ),
                    state,
                    token,
                    binding: picker.binding,
                });
            }
        };

        // The graded resource first: a launch is acknowledged only once
        // what its scores need is stored. If the session write then fails,
        // the launch is refused and the record waits, harmless, for the
        // relaunch that rewrites it.
        if let Some(grades) = &self.grades {
            grades.record_launch(&user, &content, &context).await?;
        }
        let session_id = self
            .sessions
            .record_launch(
                cookies.session,
                user.clone(),
                content.clone(),
                context.clone(),
            )
            .await?;
        tracing::info!(
            issuer = %reg.platform.issuer,
            client_id = %reg.platform.client_id,
            usage_key = %content.usage,
            "launch accepted"
        );
        Ok(Launched::Resource {
            session_id,
            location: Target::Display(content).canonical_url(&self.public_origin),
            state,
        })
    }

    /// Checks the JWT header, finds the key and verifies the signature.
    async fn verify_token(
        &self,
        reg: &Registration,
        token: &str,
    ) -> Result<Map<String, Value>, LaunchError> {
        let mut parts = token.split('.');
        let (Some(header), Some(_), Some(_), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(LaunchError::MalformedToken);
        };
        let header: Value = URL_SAFE_NO_PAD
            .decode(header)
            .ok()
            .and_then(|h| serde_json::from_slice(&h).ok())
            .filter(Value::is_object)
            .ok_or(LaunchError::MalformedToken)?;
        match header.get("alg").and_then(Value::as_str) {
            Some("RS256") => {}
            Some(other) => return Err(LaunchError::UnsupportedAlgorithm(other.to_owned())),
            None => return Err(LaunchError::MalformedToken),
        }
        let kid = header
            .get("kid")
            .and_then(Value::as_str)
            .filter(|k| !k.is_empty())
            .ok_or(LaunchError::MissingKid)?;
        let key = reg
            .platform_keys
            .key(kid, &self.client)
            .await
            .map_err(|e| match e {
                JwksError::UnknownKid(_) => LaunchError::UnknownKid,
                other => LaunchError::KeySetUnavailable(other),
            })?;

        verify_signature(token, &key)
    }
}

/// Verifies an RS256 signature and returns the claims, unchecked. Every claim
/// is checked afterwards against the gateway's own clock, so that each
/// failure gets its own name. (The header's `alg` is checked before this.)
///
/// Kept beside `jsonwebtoken` (which signs): its `decode` rebuilds the RSA
/// key from `n` and `e` on every call, where [`PlatformKey`] is parsed once
/// when its JWKS is loaded. `cargo bench --bench hot_paths -- id_token_verify`
/// on a 2-core machine: 17.0 µs per token here, 21.5 µs through
/// `jsonwebtoken::decode` with validation off (this, at 0.79× its time, on
/// every launch). Its header decoding would also fold `alg: none` into a
/// parse error, where the launch names it `unsupported_algorithm`.
pub fn verify_signature(token: &str, key: &PlatformKey) -> Result<Map<String, Value>, LaunchError> {
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(LaunchError::MalformedToken);
    };
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|_| LaunchError::MalformedToken)?;
    let signed = &token[..header.len() + 1 + payload.len()];
    if !key.verifies(signed.as_bytes(), &signature) {
        return Err(LaunchError::BadSignature);
    }
    URL_SAFE_NO_PAD
        .decode(payload)
        .ok()
        .and_then(|claims| serde_json::from_slice(&claims).ok())
        .ok_or(LaunchError::MalformedToken)
}

fn string<'a>(claims: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    claims.get(name).and_then(Value::as_str)
}

/// A NumericDate claim, as whole seconds.
fn time(claims: &Map<String, Value>, name: &'static str) -> Result<Option<u64>, LaunchError> {
    match claims.get(name) {
        None => Ok(None),
        Some(v) => v
            .as_u64()
            .or_else(|| {
                v.as_f64()
                    .filter(|f| *f >= 0.0 && f.is_finite())
                    .map(|f| f as u64)
            })
            .map(Some)
            .ok_or(LaunchError::MissingTime(name)),
    }
}

impl Lti {
    /// The registration-level checks: issuer, audience, time, nonce, deployment, version.
    fn check_claims(
        &self,
        reg: &Registration,
        login: &LoginState,
        claims: &Map<String, Value>,
    ) -> Result<(), LaunchError> {
        let platform = &reg.platform;
        if string(claims, "iss") != Some(platform.issuer.as_str()) {
            return Err(LaunchError::WrongIssuer);
        }
        let audiences: Vec<&str> = match claims.get("aud") {
            Some(Value::String(a)) => vec![a.as_str()],
            Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        };
        if !audiences.contains(&platform.client_id.as_str()) {
            return Err(LaunchError::WrongAudience);
        }
        match string(claims, "azp") {
            Some(azp) if azp != platform.client_id => return Err(LaunchError::WrongAzp),
            None if audiences.len() > 1 => return Err(LaunchError::MissingAzp),
            _ => {}
        }

        let now = self.clock.now();
        let leeway = self.sessions.config().leeway_sec;
        let exp = time(claims, "exp")?.ok_or(LaunchError::MissingTime("exp"))?;
        let iat = time(claims, "iat")?.ok_or(LaunchError::MissingTime("iat"))?;
        if now > exp.saturating_add(leeway) {
            return Err(LaunchError::Expired);
        }
        if iat > now.saturating_add(leeway) {
            return Err(LaunchError::IssuedInFuture);
        }
        if time(claims, "nbf")?.is_some_and(|nbf| nbf > now.saturating_add(leeway)) {
            return Err(LaunchError::NotYetValid);
        }

        let nonce = string(claims, "nonce").unwrap_or_default();
        if !bool::from(nonce.as_bytes().ct_eq(login.nonce.as_bytes())) {
            return Err(LaunchError::NonceMismatch);
        }

        let deployment = string(claims, claims::DEPLOYMENT_ID)
            .filter(|d| !d.is_empty())
            .ok_or(LaunchError::MissingClaim("deployment_id"))?;
        if !platform.deployment_ids.contains(deployment) {
            return Err(LaunchError::UnknownDeployment);
        }

        match claims.get(claims::VERSION) {
            None => return Err(LaunchError::MissingVersion),
            Some(Value::String(v)) if v == claims::LTI_VERSION => {}
            Some(other) => {
                return Err(LaunchError::WrongVersion(
                    other
                        .as_str()
                        .map_or_else(|| other.to_string(), str::to_owned),
                ));
            }
        }
        Ok(())
    }

    /// The message-level checks, producing what the session records.
    fn accept_message(
        &self,
        reg: &Registration,
        login: &LoginState,
        claims: &Map<String, Value>,
    ) -> Result<Message, LaunchError> {
        let message_type = string(claims, claims::MESSAGE_TYPE)
            .filter(|m| !m.is_empty())
            .ok_or(LaunchError::MissingMessageType)?;
        let sub = string(claims, "sub")
            .filter(|s| !s.is_empty())
            .ok_or(LaunchError::MissingClaim("sub"))?;
        let roles: Vec<String> = match claims.get(claims::ROLES) {
            Some(Value::Array(list)) => list
                .iter()
                .map(|r| r.as_str().map(str::to_owned))
                .collect::<Option<_>>()
                .ok_or(LaunchError::MissingClaim("roles"))?,
            _ => return Err(LaunchError::MissingClaim("roles")),
        };

        match message_type {
            claims::RESOURCE_LINK_REQUEST => {}
            claims::DEEP_LINKING_REQUEST => {
                let deep_linking = self
                    .deep_linking
                    .as_ref()
                    .ok_or(LaunchError::DeepLinkingNotConfigured)?;
                return deep_linking
                    .check_request(reg, &roles, claims)
                    .map(Message::DeepLinking)
                    .map_err(LaunchError::DeepLinking);
            }
            other => return Err(LaunchError::UnsupportedMessageType(other.to_owned())),
        }

        let resource_link = claims.get(claims::RESOURCE_LINK);
        resource_link
            .and_then(|r| r.get("id"))
            .and_then(Value::as_str)
            .filter(|id| !id.is_empty())
            .ok_or(LaunchError::MissingClaim("resource_link.id"))?;
        let raw_target = string(claims, claims::TARGET_LINK_URI)
            .filter(|t| !t.is_empty())
            .ok_or(LaunchError::MissingClaim("target_link_uri"))?;
        let target = target::parse(raw_target, &self.public_url).map_err(LaunchError::Target)?;
        let content = match target {
            Target::Display(content) => content,
            Target::DeepLinkingEndpoint => {
                return Err(LaunchError::Target(TargetError::Endpoint("launch")));
            }
        };
        if Target::Display(content.clone()).canonical_url(&self.public_origin) != login.target {
            return Err(LaunchError::TargetMismatch);
        }
        crate::gate::check(reg.platform.gate.as_ref(), &content.usage)
            .map_err(LaunchError::Gate)?;

        let text = |name: &str| {
            string(claims, name)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        let context = LaunchContext {
            deployment_id: string(claims, claims::DEPLOYMENT_ID)
                .unwrap_or_default()
                .to_owned(),
            message_type: message_type.to_owned(),
            name: text("name"),
            given_name: text("given_name"),
            family_name: text("family_name"),
            email: text("email"),
            locale: text("locale"),
            roles,
            context: claims.get(claims::CONTEXT).cloned(),
            resource_link: resource_link.cloned(),
            ags_endpoint: claims.get(claims::AGS_ENDPOINT).cloned(),
        };
        let user = UserRef {
            issuer: reg.platform.issuer.clone(),
            client_id: reg.platform.client_id.clone(),
            sub: sub.to_owned(),
        };
        Ok(Message::ResourceLink {
            user,
            content,
            context: Box::new(context),
        })
    }
}
