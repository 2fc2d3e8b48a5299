//! Claim names and message types from the LTI 1.3 core, AGS and Deep
//! Linking specs: the vocabulary the launch, deep linking and grades share.
//! Constants only.

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
