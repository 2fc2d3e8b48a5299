//! The identity assertion the LMS trusts.
//!
//! Every forwarded request carries a short-lived RS256 JWT, signed by one of
//! ltigate's own keys (published in its JWKS), naming the learner by a stable
//! upstream username: `lti_` followed by the first 24 hex digits of
//! HMAC-SHA256(`assertion.username_key`, issuer NUL client_id NUL sub). The
//! same LTI user of the same registration always gets the same username; it
//! reveals nothing about the LTI `sub`. Changing `username_key` changes every
//! username, so it must be kept for the life of the LMS.
//!
//! Signing costs an RSA operation, so a signed assertion is cached per
//! (session, grant, launch) and reused until shortly before it expires.

use std::fmt::Write as _;
use std::sync::Arc;

use aws_lc_rs::hmac;
use dashmap::DashMap;
use foldhash::fast::RandomState;
use http::HeaderValue;
use serde::Serialize;

use crate::clock::{Clock, UnixTime};
use crate::content::{CourseKey, UsageKey};
use crate::keys::{KeyError, ToolKey};
use crate::session::{Grant, LaunchContext, Session, UserRef};

/// The signed identity assertion sent to the LMS.
#[derive(Clone)]
pub struct AssertionConfig {
    pub header: http::HeaderName,
    pub audience: String,
    /// The `kid` of the tool key that signs assertions.
    pub key: String,
    pub ttl_sec: u64,
    /// Key of the HMAC that derives stable usernames. Never logged.
    pub username_key: Vec<u8>,
    /// Also send `X-Ltigate-User`, `-Email` and `-Name` plain headers.
    pub identity_headers: bool,
}

impl std::fmt::Debug for AssertionConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AssertionConfig")
            .field("header", &self.header)
            .field("audience", &self.audience)
            .field("key", &self.key)
            .field("ttl_sec", &self.ttl_sec)
            .field("identity_headers", &self.identity_headers)
            .finish_non_exhaustive()
    }
}

/// Above this many cached assertions, expired ones are swept on insert.
const CACHE_SWEEP_AT: usize = 50_000;

/// The assertion's claims.
#[derive(Debug, Serialize)]
struct Claims<'a> {
    iss: &'a str,
    aud: &'a str,
    sub: &'a str,
    iat: UnixTime,
    exp: UnixTime,
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    given_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    family_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    locale: Option<&'a str>,
    roles: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    context: Option<&'a serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    resource_link_id: Option<&'a str>,
    course_key: &'a str,
    usage_key: &'a str,
    /// Where the identity came from.
    lti: LtiSource<'a>,
    /// Only in the assertion of a logout: the LMS app's logout view
    /// requires it, and the app refuses it anywhere else, so that no gated
    /// request can end the LMS session and a logout logs nobody in.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    ltigate_logout: bool,
}

#[derive(Debug, Serialize)]
struct LtiSource<'a> {
    issuer: &'a str,
    client_id: &'a str,
    deployment_id: &'a str,
    sub: &'a str,
}

/// Derives the stable upstream username of an LTI user (see the module
/// doc). The grade path uses it too, to find a learner's graded resources.
#[derive(Clone)]
pub struct Usernames {
    key: hmac::Key,
}

impl Usernames {
    pub fn new(username_key: &[u8]) -> Self {
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, username_key),
        }
    }

    /// `lti_` and the first 24 hex digits of the HMAC of (issuer, client_id, sub).
    pub fn of(&self, user: &UserRef) -> String {
        let mut ctx = hmac::Context::with_key(&self.key);
        ctx.update(user.issuer.as_bytes());
        ctx.update(&[0]);
        ctx.update(user.client_id.as_bytes());
        ctx.update(&[0]);
        ctx.update(user.sub.as_bytes());
        let tag = ctx.sign();
        let mut name = String::with_capacity(28);
        name.push_str("lti_");
        for b in &tag.as_ref()[..12] {
            let _ = write!(name, "{b:02x}");
        }
        name
    }
}

/// Signs and caches assertions.
pub struct Asserter {
    config: AssertionConfig,
    key: Arc<ToolKey>,
    issuer: String,
    usernames: Usernames,
    clock: Arc<dyn Clock>,
    cache: DashMap<String, (HeaderValue, UnixTime), RandomState>,
}

impl Asserter {
    /// An assertion for a server-to-server call made on a learner's behalf
    /// (the composite score), without a browser session. Not cached.
    pub fn for_service(
        &self,
        user: &UserRef,
        course: &CourseKey,
        usage: &UsageKey,
    ) -> Result<HeaderValue, KeyError> {
        self.sign(user, None, course, usage, self.clock.now(), false)
    }

    /// The assertion of a logout of `session` (its newest grant's content and
    /// launch), with the `ltigate_logout` claim; never cached. `None` for a
    /// session without grants.
    pub fn for_logout(&self, session: &Session) -> Option<Result<HeaderValue, KeyError>> {
        let grant = session.grants.last()?;
        Some(self.sign(
            &session.user,
            Some(&grant.launch),
            &grant.content.course,
            &grant.content.usage,
            self.clock.now(),
            true,
        ))
    }

    fn sign(
        &self,
        user: &UserRef,
        launch: Option<&LaunchContext>,
        course: &CourseKey,
        usage: &UsageKey,
        now: UnixTime,
        logout: bool,
    ) -> Result<HeaderValue, KeyError> {
        let username = self.usernames.of(user);
        let claims = Claims {
            iss: &self.issuer,
            aud: &self.config.audience,
            sub: &username,
            iat: now,
            exp: now + self.config.ttl_sec,
            email: launch.and_then(|l| l.email.as_deref()),
            name: launch.and_then(|l| l.name.as_deref()),
            given_name: launch.and_then(|l| l.given_name.as_deref()),
            family_name: launch.and_then(|l| l.family_name.as_deref()),
            locale: launch.and_then(|l| l.locale.as_deref()),
            roles: launch.map_or(&[], |l| l.roles.as_slice()),
            context: launch.and_then(|l| l.context.as_ref()),
            resource_link_id: launch
                .and_then(|l| l.resource_link.as_ref())
                .and_then(|r| r.get("id"))
                .and_then(|id| id.as_str()),
            course_key: course.as_str(),
            usage_key: usage.as_str(),
            lti: LtiSource {
                issuer: &user.issuer,
                client_id: &user.client_id,
                deployment_id: launch.map_or("", |l| l.deployment_id.as_str()),
                sub: &user.sub,
            },
            ltigate_logout: logout,
        };
        let token = self.key.sign(&claims)?;
        // A JWT is base64url and dots: always a valid header value.
        HeaderValue::from_str(&token).map_err(|_| KeyError::NotRsa)
    }

    pub fn new(
        config: AssertionConfig,
        key: Arc<ToolKey>,
        issuer: String,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            usernames: Usernames::new(&config.username_key),
            config,
            key,
            issuer,
            clock,
            cache: DashMap::with_hasher(RandomState::default()),
        }
    }

    pub fn config(&self) -> &AssertionConfig {
        &self.config
    }

    /// How this asserter names learners to the LMS.
    pub fn usernames(&self) -> &Usernames {
        &self.usernames
    }

    /// The assertion header value for requests made under `grant`.
    pub fn assertion(
        &self,
        session_id: &str,
        session: &Session,
        grant: &Grant,
    ) -> Result<HeaderValue, KeyError> {
        let now = self.clock.now();
        let usage = grant.content.usage.as_str();
        let mut cache_key =
            String::with_capacity(session_id.len() + usage.len() + grant.launch_id.len() + 2);
        for part in [session_id, "\n", usage, "\n", grant.launch_id.as_str()] {
            cache_key.push_str(part);
        }
        // Reuse while at least a fifth of the lifetime remains.
        let margin = (self.config.ttl_sec / 5).max(1);
        if let Some(hit) = self.cache.get(&cache_key)
            && hit.1 > now + margin
        {
            return Ok(hit.0.clone());
        }
        let exp = now + self.config.ttl_sec;
        let value = self.sign(
            &session.user,
            Some(&grant.launch),
            &grant.content.course,
            &grant.content.usage,
            now,
            false,
        )?;
        if self.cache.len() >= CACHE_SWEEP_AT {
            self.cache.retain(|_, (_, exp)| *exp > now);
        }
        self.cache.insert(cache_key, (value.clone(), exp));
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    fn asserter(secret: &str) -> Asserter {
        let key = crate::keys::generate("a").expect("generate");
        let key = Arc::new(ToolKey::from_pem("a", None, key.private_pem.as_bytes()).expect("key"));
        let config = AssertionConfig {
            header: http::HeaderName::from_static("x-ltigate-assertion"),
            audience: "openedx".into(),
            key: "a".into(),
            ttl_sec: 300,
            username_key: secret.as_bytes().to_vec(),
            identity_headers: false,
        };
        Asserter::new(config, key, "https://gw".into(), ManualClock::new())
    }

    #[test]
    fn usernames_are_stable_keyed_and_short() {
        let a = asserter("0123456789abcdef-secret");
        let user = |sub: &str| UserRef {
            issuer: "https://canvas".into(),
            client_id: "c".into(),
            sub: sub.into(),
        };
        let name = a.usernames().of(&user("42"));
        assert_eq!(name, a.usernames().of(&user("42")));
        assert_ne!(name, a.usernames().of(&user("43")));
        assert!(name.starts_with("lti_") && name.len() == 28, "{name}");
        assert!(name[4..].bytes().all(|b| b.is_ascii_hexdigit()));
        let other_key = asserter("another-secret-of-16+");
        assert_ne!(name, other_key.usernames().of(&user("42")));
        // The separator keeps (issuer, client_id, sub) unambiguous.
        let shifted = UserRef {
            issuer: "https://canvas".into(),
            client_id: "c4".into(),
            sub: "2".into(),
        };
        assert_ne!(name, a.usernames().of(&shifted));
    }
}
