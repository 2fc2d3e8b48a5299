//! What a `target_link_uri` may point at.
//!
//! A target must be on the gateway's own public origin. At launch it must name
//! a display path (`/lti/1p3/launch/<course_key>/<usage_key>`); at login it
//! may also name the launch or deep-linking endpoint, because a deep-linking
//! request carries no content yet. Each way a target can be wrong has its own
//! error, so an administrator is told which setting to fix.

use url::Url;

use crate::content::{
    ContentPath, DEEP_LINKING_LAUNCH_PATH, DISPLAY_PREFIX, JWKS_PATH, KeyError, LAUNCH_PATH,
    LOGIN_PATH,
};

/// Longest `target_link_uri` accepted. An Open edX launch URL is a few
/// hundred bytes; the bound keeps what a login remembers small.
pub const MAX_TARGET_BYTES: usize = 2048;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("the target link URI is longer than {MAX_TARGET_BYTES} bytes")]
    TooLong,
    #[error("the target link URI is not an absolute URL")]
    NotAUrl,
    #[error("the target link URI is on {found}, not on this gateway ({expected})")]
    ForeignHost { found: String, expected: String },
    #[error("the target link URI must not carry a query string, fragment or credentials")]
    HasExtras,
    #[error("the target link URI points at the {0} endpoint, not at content")]
    Endpoint(&'static str),
    #[error(
        "the target link URI is not a content path {DISPLAY_PREFIX}<course_key>/<usage_key>: {0}"
    )]
    NotDisplayPath(KeyError),
}

/// A valid target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Display(ContentPath),
    /// The launch or deep-linking endpoint: only a deep-linking request may use it.
    DeepLinkingEndpoint,
}

impl Target {
    /// The canonical URL of this target on `public_url`.
    pub fn canonical_url(&self, public_origin: &str) -> String {
        match self {
            Target::Display(c) => format!("{public_origin}{}", c.display_path()),
            Target::DeepLinkingEndpoint => format!("{public_origin}{DEEP_LINKING_LAUNCH_PATH}"),
        }
    }
}

/// Parses and checks a `target_link_uri` against the gateway's public URL.
pub fn parse(raw: &str, public_url: &Url) -> Result<Target, TargetError> {
    if raw.len() > MAX_TARGET_BYTES {
        return Err(TargetError::TooLong);
    }
    let url = Url::parse(raw).map_err(|_| TargetError::NotAUrl)?;
    if url.origin() != public_url.origin() {
        return Err(TargetError::ForeignHost {
            found: url.origin().ascii_serialization(),
            expected: public_url.origin().ascii_serialization(),
        });
    }
    if url.query().is_some()
        || url.fragment().is_some()
        || !url.username().is_empty()
        || url.password().is_some()
    {
        return Err(TargetError::HasExtras);
    }
    let path = url.path();
    let trimmed = path.trim_end_matches('/');
    if trimmed == LOGIN_PATH.trim_end_matches('/') {
        return Err(TargetError::Endpoint("login"));
    }
    if trimmed == JWKS_PATH.trim_end_matches('/') {
        return Err(TargetError::Endpoint("JWKS"));
    }
    if trimmed == LAUNCH_PATH.trim_end_matches('/')
        || trimmed == DEEP_LINKING_LAUNCH_PATH.trim_end_matches('/')
    {
        return Ok(Target::DeepLinkingEndpoint);
    }
    ContentPath::from_path(path)
        .map(Target::Display)
        .map_err(TargetError::NotDisplayPath)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn public() -> Url {
        Url::parse("https://lti.example.com").expect("url")
    }

    const CONTENT: &str = "/lti/1p3/launch/course-v1:O+C+R/block-v1:O+C+R+type@html+block@b";

    #[test]
    fn accepts_display_paths_on_our_origin() {
        let t = parse(&format!("https://LTI.example.com:443{CONTENT}"), &public()).expect("ok");
        assert_eq!(
            t.canonical_url("https://lti.example.com"),
            format!("https://lti.example.com{CONTENT}")
        );
    }

    #[test]
    fn names_each_misconfiguration() {
        let p = public();
        let long_block = "b".repeat(MAX_TARGET_BYTES);
        assert_eq!(
            parse(&format!("https://lti.example.com{CONTENT}{long_block}"), &p),
            Err(TargetError::TooLong)
        );
        assert_eq!(parse("not a url", &p), Err(TargetError::NotAUrl));
        assert!(matches!(
            parse(&format!("https://evil.example.com{CONTENT}"), &p),
            Err(TargetError::ForeignHost { .. })
        ));
        assert!(matches!(
            parse(&format!("https://lti.example.com.evil.net{CONTENT}"), &p),
            Err(TargetError::ForeignHost { .. })
        ));
        assert!(matches!(
            parse(&format!("http://lti.example.com{CONTENT}"), &p),
            Err(TargetError::ForeignHost { .. })
        ));
        assert!(matches!(
            parse(&format!("https://lti.example.com:8443{CONTENT}"), &p),
            Err(TargetError::ForeignHost { .. })
        ));
        assert_eq!(
            parse(&format!("https://lti.example.com{CONTENT}?x=1"), &p),
            Err(TargetError::HasExtras)
        );
        assert_eq!(
            parse("https://lti.example.com/lti/1p3/login/", &p),
            Err(TargetError::Endpoint("login"))
        );
        assert_eq!(
            parse("https://lti.example.com/lti/1p3/launch/", &p),
            Ok(Target::DeepLinkingEndpoint)
        );
        assert!(matches!(
            parse("https://lti.example.com/courses/x", &p),
            Err(TargetError::NotDisplayPath(_))
        ));
    }
}
