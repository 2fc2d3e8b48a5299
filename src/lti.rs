//! The LTI 1.3 tool side: third-party initiated login and the launch.
//!
//! [`login`] answers the platform's login initiation with an OIDC
//! authentication request; [`launch`] verifies the id_token the platform posts
//! back and, only when every check passes, records a grant. [`target`] decides
//! what a `target_link_uri` may point at. Nothing in here writes a session
//! before the last check has passed, and nothing here talks to the LMS.

pub mod launch;
pub mod login;
pub mod target;

/// Claim names from the LTI 1.3 core, AGS and Deep Linking specs.
pub mod claims {
    pub const VERSION: &str = "https://purl.imsglobal.org/spec/lti/claim/version";
    pub const MESSAGE_TYPE: &str = "https://purl.imsglobal.org/spec/lti/claim/message_type";
    pub const DEPLOYMENT_ID: &str = "https://purl.imsglobal.org/spec/lti/claim/deployment_id";
    pub const ROLES: &str = "https://purl.imsglobal.org/spec/lti/claim/roles";
    pub const RESOURCE_LINK: &str = "https://purl.imsglobal.org/spec/lti/claim/resource_link";
    pub const TARGET_LINK_URI: &str = "https://purl.imsglobal.org/spec/lti/claim/target_link_uri";
    pub const CONTEXT: &str = "https://purl.imsglobal.org/spec/lti/claim/context";
    pub const AGS_ENDPOINT: &str = "https://purl.imsglobal.org/spec/lti-ags/claim/endpoint";
    pub const DEEP_LINKING_SETTINGS: &str =
        "https://purl.imsglobal.org/spec/lti-dl/claim/deep_linking_settings";

    pub const LTI_VERSION: &str = "1.3.0";
    pub const RESOURCE_LINK_REQUEST: &str = "LtiResourceLinkRequest";
    pub const DEEP_LINKING_REQUEST: &str = "LtiDeepLinkingRequest";
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
