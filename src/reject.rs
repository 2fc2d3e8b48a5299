//! Every refusal becomes an HTTP response here, and only here.
//!
//! The status mapping is one exhaustive match per error type, with no
//! catch-all arm, so a new error variant cannot ship without a decision. 400
//! means the request (or the platform's configuration) was wrong, 401/403 that
//! access was refused, 502/503 that a dependency failed. Every refusal is
//! logged with structured fields; the page says what happened and what to do,
//! and shows no internals.

use http::{HeaderValue, Response, StatusCode, header};

use crate::Body;
use crate::form::FormError;
use crate::gate::GateRefusal;
use crate::lti::launch::LaunchError;
use crate::lti::login::LoginError;
use crate::lti::target::TargetError;
use crate::pages::{Page, html};
use crate::path::PathError;
use crate::proxy::ProxyError;
use crate::registry::LookupError;
use crate::session::AccessError;

/// Anything the gateway refuses.
#[derive(Debug, thiserror::Error)]
pub enum Rejection {
    #[error(transparent)]
    Login(#[from] LoginError),
    #[error(transparent)]
    Launch(#[from] LaunchError),
    #[error(transparent)]
    Access(#[from] AccessError),
    #[error(transparent)]
    BadPath(#[from] PathError),
    #[error(transparent)]
    Proxy(#[from] ProxyError),
    #[error("the LMS has no such content")]
    ContentNotFound,
    #[error(transparent)]
    Picker(#[from] crate::deep_linking::PickerError),
    #[error("internal error: {0}")]
    Internal(String),
    #[error(transparent)]
    Form(#[from] FormError),
    #[error("the launch endpoint was opened directly")]
    LaunchOpenedDirectly,
    #[error("method not allowed")]
    MethodNotAllowed(&'static str),
    #[error("no such page")]
    NotFound,
}

const RELAUNCH: &str = "Go back to your course and open the activity again.";
const ASK_ADMIN: &str = "If this keeps happening, tell your platform administrator; the reference below helps them find the cause.";

impl Rejection {
    pub fn status(&self) -> StatusCode {
        match self {
            Rejection::Login(e) => login_status(e),
            Rejection::Launch(e) => launch_status(e),
            Rejection::Access(e) => match e {
                AccessError::NoSession
                | AccessError::SessionExpired
                | AccessError::GrantExpired => StatusCode::UNAUTHORIZED,
                AccessError::NotGranted => StatusCode::FORBIDDEN,
                AccessError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
            },
            Rejection::Form(e) => match e {
                FormError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
                FormError::NotAForm => StatusCode::UNSUPPORTED_MEDIA_TYPE,
                FormError::Unreadable => StatusCode::BAD_REQUEST,
            },
            Rejection::BadPath(_) => StatusCode::BAD_REQUEST,
            Rejection::Proxy(e) => match e {
                ProxyError::Connect(_) | ProxyError::Upstream(_) => StatusCode::BAD_GATEWAY,
                ProxyError::Timeout => StatusCode::GATEWAY_TIMEOUT,
                ProxyError::BodyTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
                ProxyError::UpgradeRefused => StatusCode::NOT_IMPLEMENTED,
            },
            Rejection::ContentNotFound | Rejection::NotFound => StatusCode::NOT_FOUND,
            Rejection::Picker(e) => picker_status(e),
            Rejection::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Rejection::LaunchOpenedDirectly | Rejection::MethodNotAllowed(_) => {
                StatusCode::METHOD_NOT_ALLOWED
            }
        }
    }

    /// A stable name for logs and the page's reference line.
    pub fn reason(&self) -> &'static str {
        match self {
            Rejection::Login(e) => match e {
                LoginError::MissingParam(_) => "login_missing_param",
                LoginError::DuplicateParam(_) => "login_duplicate_param",
                LoginError::Lookup(LookupError::Unknown) => "unknown_platform",
                LoginError::Lookup(LookupError::Ambiguous) => "ambiguous_platform",
                LoginError::Lookup(LookupError::Inactive) => "platform_inactive",
                LoginError::UnknownDeployment(_) => "unknown_deployment",
                LoginError::Target(_) => "target_misconfigured",
                LoginError::Gate(_) => "launch_gate",
                LoginError::Store(_) => "store_unavailable",
            },
            Rejection::Launch(e) => e.reason(),
            Rejection::Access(e) => match e {
                AccessError::NoSession => "no_session",
                AccessError::SessionExpired => "session_expired",
                AccessError::GrantExpired => "grant_expired",
                AccessError::NotGranted => "not_granted",
                AccessError::Store(_) => "store_unavailable",
            },
            Rejection::Form(_) => "bad_form",
            Rejection::BadPath(_) => "bad_path",
            Rejection::Proxy(e) => match e {
                ProxyError::Connect(_) => "upstream_unreachable",
                ProxyError::Upstream(_) => "upstream_failed",
                ProxyError::Timeout => "upstream_timeout",
                ProxyError::BodyTooLarge(_) => "body_too_large",
                ProxyError::UpgradeRefused => "upgrade_refused",
            },
            Rejection::ContentNotFound => "content_not_found",
            Rejection::Picker(e) => e.reason(),
            Rejection::Internal(_) => "internal_error",
            Rejection::LaunchOpenedDirectly => "launch_opened_directly",
            Rejection::MethodNotAllowed(_) => "method_not_allowed",
            Rejection::NotFound => "not_found",
        }
    }

    fn page(&self) -> Page {
        match self {
            Rejection::Login(e) => login_page(e),
            Rejection::Launch(e) => launch_page(e),
            Rejection::Access(e) => match e {
                AccessError::NoSession => Page::new("Please launch this activity from your course")
                    .para("This content opens only through your learning platform.")
                    .para(RELAUNCH),
                AccessError::SessionExpired => Page::new("Your session has expired or is invalid")
                    .para("Please relaunch from your course.")
                    .para(RELAUNCH),
                AccessError::GrantExpired => Page::new("Your access to this activity has expired")
                    .para("Access to launched content lasts a limited time. Please relaunch from your course.")
                    .para(RELAUNCH),
                AccessError::NotGranted => Page::new("This content was not part of your launch")
                    .para("You can open only the activity your course launched. To see this content, launch it from your course."),
                AccessError::Store(_) => unavailable_page(),
            },
            Rejection::Form(e) => Page::new("The request could not be read").para(e.to_string()),
            Rejection::LaunchOpenedDirectly => Page::new("This address cannot be opened directly")
                .para("This is the LTI launch endpoint. Your learning platform sends you here with a form when you open an activity; opening it in the address bar does nothing.")
                .para(RELAUNCH),
            Rejection::MethodNotAllowed(_) => Page::new("Method not allowed")
                .para("This address does not accept that kind of request."),
            Rejection::NotFound => Page::new("Page not found")
                .para("There is nothing at this address. Launch content from your course."),
            Rejection::BadPath(_) => Page::new("This address is not valid")
                .para("The address contains characters or segments the gateway does not accept. Use the links inside the course content."),
            Rejection::Proxy(e) => match e {
                ProxyError::Connect(_) | ProxyError::Upstream(_) => Page::new("The course content is not reachable right now")
                    .para("The gateway could not get an answer from the learning management system. This is usually temporary.")
                    .para("Please wait a minute and try again."),
                ProxyError::Timeout => Page::new("The course content took too long to answer")
                    .para("The learning management system did not answer in time. Please try again in a moment."),
                ProxyError::BodyTooLarge(limit) => Page::new("The upload is too large")
                    .para(format!("Uploads through this gateway are limited to {} MB.", limit / (1024 * 1024))),
                ProxyError::UpgradeRefused => Page::new("This kind of connection is not supported")
                    .para("The gateway does not forward WebSocket or other protocol upgrades."),
            },
            Rejection::ContentNotFound => Page::new("Content not found: is it published?")
                .para("The learning management system has no published content at this address. If you are the course author, publish the unit in Studio and relaunch; otherwise tell your instructor.")
                .para(RELAUNCH),
            Rejection::Picker(e) => picker_page(e),
            Rejection::Internal(_) => Page::new("Something went wrong in the gateway")
                .para("The gateway could not complete this request. Please try again; if it keeps happening, tell your administrator."),
        }
        .reference(self.reason())
    }

    /// Logs the refusal and renders its response, whose page names the
    /// reason and the request's id, so that a person's report leads to the
    /// log lines.
    pub fn into_response(self, request_id: &str) -> Response<Body> {
        let status = self.status();
        let reason = self.reason();
        if status.is_server_error() {
            tracing::error!(status = status.as_u16(), reason, request_id, error = %self, "request refused");
        } else {
            tracing::warn!(status = status.as_u16(), reason, request_id, error = %self, "request refused");
        }
        let mut response = html(status, self.page().request_id(request_id).render());
        if let Some(allow) = match self {
            Rejection::LaunchOpenedDirectly => Some("POST"),
            Rejection::MethodNotAllowed(allow) => Some(allow),
            _ => None,
        } {
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static(allow));
        }
        response
    }
}

fn login_status(e: &LoginError) -> StatusCode {
    match e {
        LoginError::MissingParam(_)
        | LoginError::DuplicateParam(_)
        | LoginError::Lookup(LookupError::Unknown | LookupError::Ambiguous)
        | LoginError::UnknownDeployment(_)
        | LoginError::Target(_) => StatusCode::BAD_REQUEST,
        LoginError::Lookup(LookupError::Inactive) | LoginError::Gate(_) => StatusCode::FORBIDDEN,
        LoginError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
    }
}

fn launch_status(e: &LaunchError) -> StatusCode {
    use LaunchError as E;
    match e {
        E::PlatformError { .. }
        | E::MissingField(_)
        | E::StateCookieMissing
        | E::StateUnknown
        | E::Registration(LookupError::Unknown | LookupError::Ambiguous)
        | E::MalformedToken
        | E::UnsupportedAlgorithm(_)
        | E::MissingKid
        | E::UnknownKid
        | E::BadSignature
        | E::WrongIssuer
        | E::WrongAudience
        | E::MissingAzp
        | E::WrongAzp
        | E::MissingTime(_)
        | E::Expired
        | E::IssuedInFuture
        | E::NotYetValid
        | E::NonceMismatch
        | E::UnknownDeployment
        | E::MissingVersion
        | E::WrongVersion(_)
        | E::MissingMessageType
        | E::UnsupportedMessageType(_)
        | E::MissingClaim(_)
        | E::DeepLinkingNotConfigured
        | E::DeepLinkingUnsupportedTypes
        | E::Target(_)
        | E::TargetMismatch => StatusCode::BAD_REQUEST,
        E::Registration(LookupError::Inactive)
        | E::Gate(_)
        | E::DeepLinkingRole
        | E::DeepLinkingNoGate => StatusCode::FORBIDDEN,
        E::KeySetUnavailable(_) => StatusCode::BAD_GATEWAY,
        E::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
    }
}

fn picker_status(e: &crate::deep_linking::PickerError) -> StatusCode {
    use crate::deep_linking::PickerError as P;
    match e {
        P::TokenUnknown => StatusCode::GONE,
        P::WrongBrowser | P::BadCsrf | P::NotAllowed(_) => StatusCode::FORBIDDEN,
        P::NothingSelected | P::TooMany | P::BadForm => StatusCode::BAD_REQUEST,
        P::Catalog(_) => StatusCode::BAD_GATEWAY,
        P::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
        P::Signing(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn picker_page(e: &crate::deep_linking::PickerError) -> Page {
    use crate::deep_linking::PickerError as P;
    match e {
        P::TokenUnknown => Page::new("This content picker has expired or was already used")
            .para("Each picker can be submitted once, within 30 minutes. Start again from your platform's \"add content\" button."),
        P::WrongBrowser => Page::new("This content picker belongs to another browser")
            .para("Open the picker from your platform in this browser; picker links cannot be shared. If your browser blocks cross-site cookies, allow them for this site or open the platform in a new window."),
        P::BadCsrf | P::BadForm => Page::new("The selection could not be accepted")
            .para("The form did not come from this picker. Start again from your platform's \"add content\" button."),
        P::NothingSelected => Page::new("Nothing was selected")
            .para("Go back and choose at least one item."),
        P::TooMany => Page::new("Choose one item only")
            .para("Your platform accepts one item at a time here. Go back and choose a single item."),
        P::NotAllowed(_) => Page::new("That content is not available to this platform")
            .para("A selected item is outside what this platform's launch gate allows. Go back and choose from the list."),
        P::Catalog(_) => Page::new("The content list could not be loaded")
            .para("The gateway could not get the list of courses and content from the learning management system. The list is not shown rather than shown incomplete.")
            .para("Try again in a minute. If it keeps failing, an administrator should check the [deep_linking] LMS client credentials and that the LMS is reachable."),
        P::Store(_) => unavailable_page(),
        P::Signing(_) => Page::new("Something went wrong in the gateway")
            .para("The gateway could not sign the response for your platform. Please tell your administrator."),
    }
}

fn unavailable_page() -> Page {
    Page::new("The service is temporarily unavailable")
        .para("The gateway cannot reach its session store right now. Nothing is wrong with your account.")
        .para("Please wait a minute, then launch the activity again from your course.")
}

fn target_advice(e: &TargetError) -> String {
    format!(
        "The platform's target link URI is misconfigured: {e}. An administrator must set the \
         link's target to this gateway's address followed by /lti/1p3/launch/<course_key>/<usage_key>."
    )
}

fn gate_page(e: &GateRefusal) -> Page {
    Page::new("This content is not available from your course")
        .para(format!(
            "The gateway's launch gate for this platform refused the content: {e}."
        ))
        .para("An administrator can allow it in the platform's [platforms.gate] settings.")
}

fn login_page(e: &LoginError) -> Page {
    match e {
        LoginError::MissingParam(_) | LoginError::DuplicateParam(_) => {
            Page::new("The login request from your platform is incomplete")
                .para(format!("{e}."))
                .para(ASK_ADMIN)
        }
        LoginError::Lookup(LookupError::Unknown) => Page::new("This platform is not registered")
            .para("No registration matches the issuer and client_id this platform sent. An administrator must add the platform to the gateway's configuration, with exactly the issuer and client id the platform shows.")
            .para(ASK_ADMIN),
        LoginError::Lookup(LookupError::Ambiguous) => Page::new("The platform registration is ambiguous")
            .para("Several registrations share this platform's issuer, and the login did not say which one (no client_id). An administrator must configure the platform to send client_id in its login request.")
            .para(ASK_ADMIN),
        LoginError::Lookup(LookupError::Inactive) => Page::new("This platform registration is disabled")
            .para("An administrator has turned off launches from this platform.")
            .para(ASK_ADMIN),
        LoginError::UnknownDeployment(_) => Page::new("This deployment is not registered")
            .para("The platform sent a deployment id that is not in this registration's deployment_ids. An administrator must add it.")
            .para(ASK_ADMIN),
        LoginError::Target(t) => Page::new("The link's target is misconfigured")
            .para(target_advice(t))
            .para(ASK_ADMIN),
        LoginError::Gate(g) => gate_page(g),
        LoginError::Store(_) => unavailable_page(),
    }
}

fn launch_page(e: &LaunchError) -> Page {
    use LaunchError as E;
    match e {
        E::PlatformError { .. } => Page::new("Your platform did not complete the launch")
            .para("The learning platform answered the login with an error instead of a launch. You may need to sign in to your platform again.")
            .para(RELAUNCH),
        E::StateCookieMissing => Page::new("Your browser blocked a cookie this launch needs")
            .para("The launch started in this browser, but the cookie set at its start did not come back. Safari and private windows often block cookies inside embedded pages.")
            .para("Open the activity in a new window, or allow cross-site cookies for this site, then launch it again from your course."),
        E::StateUnknown => Page::new("This launch has expired or was already used")
            .para("Each launch can be used once, within a few minutes. Reloading or going back resubmits an old launch.")
            .para(RELAUNCH),
        E::Target(t) => Page::new("The link's target is misconfigured")
            .para(target_advice(t))
            .para(ASK_ADMIN),
        E::TargetMismatch => Page::new("The link's target changed during the launch")
            .para("The target link URI in the platform's launch differs from the one it sent at login. An administrator should check the link's configuration on the platform.")
            .para(ASK_ADMIN),
        E::Gate(g) => gate_page(g),
        E::DeepLinkingNotConfigured => Page::new("Deep linking is not available here")
            .para("This gateway is not set up for deep linking. Add content by pasting its launch URL into the platform instead, or ask an administrator to configure [deep_linking].")
            .para(ASK_ADMIN),
        E::DeepLinkingUnsupportedTypes => Page::new("The platform cannot receive LTI links here")
            .para("The platform's deep-linking request does not accept LTI resource links, which is all this gateway can return.")
            .para(ASK_ADMIN),
        E::DeepLinkingRole => Page::new("Only instructors can add content")
            .para("Choosing content for a course is open to instructors, administrators and content developers. Ask your instructor to add this content."),
        E::DeepLinkingNoGate => Page::new("No content is available to add")
            .para("This platform's registration has no launch gate allowing any course, org or content key, so there is nothing to pick. An administrator can allow content in the platform's [platforms.gate] settings.")
            .para(ASK_ADMIN),
        E::UnsupportedMessageType(_) => Page::new("This kind of launch is not supported")
            .para(format!("{e}. This gateway accepts resource link launches."))
            .para(ASK_ADMIN),
        E::KeySetUnavailable(_) => Page::new("The platform's keys could not be fetched")
            .para("The gateway could not download the platform's public keys to check this launch. This is usually temporary.")
            .para("Please wait a minute, then launch the activity again from your course."),
        E::Store(_) => unavailable_page(),
        E::Registration(_)
        | E::MissingField(_)
        | E::MalformedToken
        | E::UnsupportedAlgorithm(_)
        | E::MissingKid
        | E::UnknownKid
        | E::BadSignature
        | E::WrongIssuer
        | E::WrongAudience
        | E::MissingAzp
        | E::WrongAzp
        | E::MissingTime(_)
        | E::Expired
        | E::IssuedInFuture
        | E::NotYetValid
        | E::NonceMismatch
        | E::UnknownDeployment
        | E::MissingVersion
        | E::WrongVersion(_)
        | E::MissingMessageType
        | E::MissingClaim(_) => Page::new("The launch could not be verified")
            .para(format!("Check that failed: {e}."))
            .para(ASK_ADMIN),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreError;

    #[test]
    fn display_statuses() {
        let s = |e| Rejection::Access(e).status();
        assert_eq!(s(AccessError::NoSession), StatusCode::UNAUTHORIZED);
        assert_eq!(s(AccessError::SessionExpired), StatusCode::UNAUTHORIZED);
        assert_eq!(s(AccessError::GrantExpired), StatusCode::UNAUTHORIZED);
        assert_eq!(s(AccessError::NotGranted), StatusCode::FORBIDDEN);
        assert_eq!(
            s(AccessError::Store(StoreError::Unavailable("x".into()))),
            StatusCode::SERVICE_UNAVAILABLE
        );
    }

    #[test]
    fn launch_statuses() {
        let s = |e| Rejection::Launch(e).status();
        assert_eq!(s(LaunchError::NonceMismatch), StatusCode::BAD_REQUEST);
        assert_eq!(s(LaunchError::StateCookieMissing), StatusCode::BAD_REQUEST);
        assert_eq!(
            s(LaunchError::Gate(GateRefusal::NotAllowed)),
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            s(LaunchError::Registration(LookupError::Inactive)),
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            s(LaunchError::KeySetUnavailable(
                crate::jwks::JwksError::NotJwks
            )),
            StatusCode::BAD_GATEWAY
        );
        assert_eq!(
            s(LaunchError::Store(StoreError::Unavailable("x".into()))),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            Rejection::LaunchOpenedDirectly.status(),
            StatusCode::METHOD_NOT_ALLOWED
        );
    }

    #[test]
    fn login_statuses() {
        let s = |e| Rejection::Login(e).status();
        assert_eq!(s(LoginError::MissingParam("iss")), StatusCode::BAD_REQUEST);
        assert_eq!(
            s(LoginError::Lookup(LookupError::Ambiguous)),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            s(LoginError::Lookup(LookupError::Inactive)),
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            s(LoginError::Gate(GateRefusal::NotAllowed)),
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            s(LoginError::Store(StoreError::Unavailable("x".into()))),
            StatusCode::SERVICE_UNAVAILABLE
        );
    }

    #[test]
    fn store_errors_leak_nothing() {
        let r = Rejection::Access(AccessError::Store(StoreError::Unavailable(
            "redis://secret-host:6379 refused".into(),
        )));
        let html = r.page().render();
        assert!(!html.contains("secret-host"));
        assert!(html.contains("store_unavailable"));
    }
}
