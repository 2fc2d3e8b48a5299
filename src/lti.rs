//! The LTI 1.3 tool side: third-party initiated login and the launch.
//!
//! The [`Lti`] service answers the platform's login initiation with an OIDC
//! authentication request ([`login`]) and verifies the id_token the platform
//! posts back ([`launch`]); only when every check passes does it record a
//! grant (or, for a deep-linking request, open a picker). [`target`] decides
//! what a `target_link_uri` may point at. It takes plain inputs (the form,
//! the cookies' values) and returns values; the HTTP layer reads and writes
//! cookies. Nothing in here writes a session before the last check has
//! passed, and nothing here talks to the LMS.

pub mod launch;
pub mod login;
pub mod target;

use std::sync::Arc;

use url::Url;

use crate::client::HttpClient;
use crate::clock::Clock;
use crate::content::LAUNCH_PATH;
use crate::deep_linking::DeepLinking;
use crate::grades::Grades;
use crate::registry::Registry;
use crate::session::Sessions;
use crate::store::Store;

/// The login and launch service.
pub struct Lti {
    registry: Arc<Registry>,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    client: HttpClient,
    sessions: Arc<Sessions>,
    /// The gateway's public URL (scheme and host) and its origin, rendered once.
    public_url: Url,
    public_origin: String,
    /// Deep linking; `None` without `[deep_linking]`.
    deep_linking: Option<Arc<DeepLinking>>,
    /// Grade passback; `None` without `[grades]`.
    grades: Option<Arc<Grades>>,
}

impl Lti {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        registry: Arc<Registry>,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        client: HttpClient,
        sessions: Arc<Sessions>,
        public_url: Url,
        deep_linking: Option<Arc<DeepLinking>>,
        grades: Option<Arc<Grades>>,
    ) -> Self {
        Self {
            public_origin: public_url.origin().ascii_serialization(),
            registry,
            store,
            clock,
            client,
            sessions,
            public_url,
            deep_linking,
            grades,
        }
    }

    /// The OIDC redirect URI platforms must register.
    pub fn redirect_uri(&self) -> String {
        format!("{}{LAUNCH_PATH}", self.public_origin)
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }
}

/// The name of the cookie that binds one login's `state` to the browser.
/// Each login gets its own cookie, so two launches in two iframes of one page
/// do not overwrite each other's state.
pub fn state_cookie_name(state: &str) -> String {
    format!("ltigate_state_{state}")
}

/// What was remembered at login, consumed (once) at launch.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct LoginState {
    pub issuer: String,
    pub client_id: String,
    pub nonce: String,
    /// The canonical `target_link_uri` given at login.
    pub target: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment_id: Option<String>,
}

#[cfg(test)]
mod tests;
