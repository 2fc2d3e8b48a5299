//! Every refusal becomes an HTTP response here, and only here, for both
//! listeners.
//!
//! One table: [`Rejection::entry`] gives each condition its status, its
//! stable reason code (for logs, pages, metrics and tests) and what the
//! person who meets it should read, in one exhaustive match per error type
//! with no catch-all arm, so a new error variant cannot ship without all
//! three. 400 means the request (or the platform's configuration) was wrong,
//! 401/403 that access was refused, 502/503/504 that a dependency failed,
//! 500 that the gateway itself is at fault. The public listener renders the
//! entry as an HTML page ([`Rejection::into_page`]), the internal score API
//! as JSON ([`Rejection::into_json`]). Every refusal is logged with
//! structured fields; the page says what happened and what to do, with the
//! reason and the request id, and shows no internals.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use serde_json::json;

use super::form::FormError;
use super::pages::{Page, html};
use crate::deep_linking::{PickerError, RequestError};
use crate::gate::GateRefusal;
use crate::grades::ScoreError;
use crate::lti::launch::LaunchError;
use crate::lti::login::LoginError;
use crate::lti::target::TargetError;
use crate::path::PathError;
use crate::proxy::ProxyError;
use crate::registry::LookupError;
use crate::session::AccessError;
use crate::{Body, full_body};

/// Anything the gateway refuses, on either listener.
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
    /// The launched block's subtree could not be read from the LMS.
    #[error("the course structure could not be read")]
    CourseStructureUnavailable,
    #[error(transparent)]
    Picker(#[from] PickerError),
    #[error(transparent)]
    Score(#[from] ScoreError),
    #[error("no such delivery")]
    NoSuchDelivery,
    /// The score API has no such endpoint.
    #[error("no such endpoint")]
    NoSuchEndpoint,
    #[error("a valid bearer token is required")]
    Unauthorized,
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
    /// A logout request that did not come from a page of the gateway's own
    /// origin (see the logout route in `app.rs`).
    #[error("a logout request from another site")]
    LogoutCrossSite,
    /// `ltigate sessions revoke` named a registration the config does not have.
    #[error("no such registration")]
    NoSuchRegistration,
}

/// One row of the table.
pub struct Entry {
    pub status: StatusCode,
    pub reason: &'static str,
    /// What a person reads (the JSON answer uses its title).
    pub page: Page,
    /// For the score API: the input field at fault.
    pub field: Option<String>,
}

const RELAUNCH: &str = "Go back to your course and open the activity again.";
const ASK_ADMIN: &str = "If this keeps happening, tell your platform administrator; the reference below helps them find the cause.";

use StatusCode as S;

fn row(status: StatusCode, reason: &'static str, page: Page) -> Entry {
    Entry {
        status,
        reason,
        page,
        field: None,
    }
}

impl Rejection {
    /// The table: status, reason code and page, decided together.
    pub fn entry(&self) -> Entry {
        let mut entry = match self {
            Rejection::Login(e) => login(e),
            Rejection::Launch(e) => launch(e),
            Rejection::Access(e) => access(e),
            Rejection::Form(e) => {
                let status = match e {
                    FormError::TooLarge(_) => S::PAYLOAD_TOO_LARGE,
                    FormError::NotAForm => S::UNSUPPORTED_MEDIA_TYPE,
                    FormError::Unreadable => S::BAD_REQUEST,
                    FormError::TimedOut => S::REQUEST_TIMEOUT,
                };
                match e {
                    FormError::TimedOut => row(
                        status,
                        "body_timeout",
                        Page::new("The request took too long to arrive")
                            .para("The connection was too slow, or the request was cut short.")
                            .para(RELAUNCH),
                    ),
                    FormError::TooLarge(_) | FormError::NotAForm | FormError::Unreadable => row(
                        status,
                        "bad_form",
                        Page::new("The request could not be read").para(e.to_string()),
                    ),
                }
            }
            Rejection::BadPath(_) => row(
                S::BAD_REQUEST,
                "bad_path",
                Page::new("This address is not valid")
                    .para("The address contains characters or segments the gateway does not accept. Use the links inside the course content."),
            ),
            Rejection::Proxy(e) => proxy(e),
            Rejection::ContentNotFound => row(
                S::NOT_FOUND,
                "content_not_found",
                Page::new("Content not found: is it published?")
                    .para("The learning management system has no published content at this address. If you are the course author, publish the unit in Studio and relaunch; otherwise tell your instructor.")
                    .para(RELAUNCH),
            ),
            Rejection::CourseStructureUnavailable => row(
                S::SERVICE_UNAVAILABLE,
                "course_structure_unavailable",
                Page::new("This part of the course cannot be opened right now")
                    .para("The gateway opens only what belongs to the activity you launched, and it could not read the course's structure from the learning management system to check this request. Nothing was sent. Try again in a minute.")
                    .para(ASK_ADMIN),
            ),
            Rejection::Picker(e) => picker(e),
            Rejection::Score(e) => score(e),
            Rejection::NoSuchDelivery => Entry {
                field: Some("id".into()),
                ..row(S::NOT_FOUND, "no_such_delivery", Page::new("no such delivery"))
            },
            Rejection::NoSuchEndpoint => {
                row(S::NOT_FOUND, "not_found", Page::new("no such endpoint"))
            }
            Rejection::Unauthorized => row(
                S::UNAUTHORIZED,
                "bad_token",
                Page::new("a valid bearer token is required"),
            ),
            Rejection::Internal(_) => row(
                S::INTERNAL_SERVER_ERROR,
                "internal_error",
                Page::new("Something went wrong in the gateway")
                    .para("The gateway could not complete this request. Please try again; if it keeps happening, tell your administrator."),
            ),
            Rejection::LaunchOpenedDirectly => row(
                S::METHOD_NOT_ALLOWED,
                "launch_opened_directly",
                Page::new("This address cannot be opened directly")
                    .para("This is the LTI launch endpoint. Your learning platform sends you here with a form when you open an activity; opening it in the address bar does nothing.")
                    .para(RELAUNCH),
            ),
            Rejection::MethodNotAllowed(_) => row(
                S::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                Page::new("Method not allowed")
                    .para("This address does not accept that kind of request."),
            ),
            Rejection::NotFound => row(
                S::NOT_FOUND,
                "not_found",
                Page::new("Page not found")
                    .para("There is nothing at this address. Launch content from your course."),
            ),
            Rejection::LogoutCrossSite => row(
                S::FORBIDDEN,
                "logout_cross_site",
                Page::new("You were not signed out")
                    .para("This sign-out request came from another site, so the gateway ignored it and your session goes on. To sign out, use the sign-out button inside the activity.")
                    .para(ASK_ADMIN),
            ),
            Rejection::NoSuchRegistration => Entry {
                field: Some("client_id".into()),
                ..row(
                    S::NOT_FOUND,
                    "no_such_registration",
                    Page::new("no [[platforms]] entry has this issuer and client_id; check them against `ltigate check`"),
                )
            },
        };
        entry.page = entry.page.reference(entry.reason);
        entry
    }

    #[cfg(test)]
    fn status(&self) -> StatusCode {
        self.entry().status
    }

    fn log(&self, entry: &Entry, request_id: &str) {
        let (status, reason) = (entry.status.as_u16(), entry.reason);
        if entry.status.is_server_error() {
            tracing::error!(status, reason, request_id, error = %self, "request refused");
        } else {
            tracing::warn!(status, reason, request_id, error = %self, "request refused");
        }
    }

    /// Logs the refusal and renders it for a person: an HTML page that
    /// names the reason and the request's id, so that a report leads to the
    /// log lines. Returns the reason too, for the access log.
    pub fn into_page(self, request_id: &str) -> (Response<Body>, &'static str) {
        let entry = self.entry();
        self.log(&entry, request_id);
        let mut response = html(entry.status, entry.page.request_id(request_id).render());
        if let Some(allow) = match self {
            Rejection::LaunchOpenedDirectly => Some("POST"),
            Rejection::MethodNotAllowed(allow) => Some(allow),
            _ => None,
        } {
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static(allow));
        }
        (response, entry.reason)
    }

    /// Logs the refusal and renders it for a program (the score API's
    /// client): `{"error", "reason", "request_id"}`, and `"field"` when one
    /// input field is at fault.
    pub fn into_json(self, request_id: &str) -> (Response<Body>, &'static str) {
        let entry = self.entry();
        self.log(&entry, request_id);
        let mut body = json!({
            "error": entry.page.title,
            "reason": entry.reason,
            "request_id": request_id,
        });
        if let Some(field) = entry.field {
            body["field"] = field.into();
        }
        let mut response = Response::new(full_body(Bytes::from(body.to_string())));
        *response.status_mut() = entry.status;
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        (response, entry.reason)
    }
}

fn access(e: &AccessError) -> Entry {
    match e {
        AccessError::NoSession => row(
            S::UNAUTHORIZED,
            "no_session",
            Page::new("Please launch this activity from your course")
                .para("This content opens only through your learning platform.")
                .para(RELAUNCH),
        ),
        AccessError::SessionExpired => row(
            S::UNAUTHORIZED,
            "session_expired",
            Page::new("Your session has expired or is invalid")
                .para("Please relaunch from your course.")
                .para(RELAUNCH),
        ),
        AccessError::GrantExpired => row(
            S::UNAUTHORIZED,
            "grant_expired",
            Page::new("Your access to this activity has expired")
                .para("Access to launched content lasts a limited time. Please relaunch from your course.")
                .para(RELAUNCH),
        ),
        AccessError::NotGranted => row(
            S::FORBIDDEN,
            "not_granted",
            Page::new("This content was not part of your launch")
                .para("You can open only the activity your course launched. To see this content, launch it from your course."),
        ),
        AccessError::Store(_) => store_unavailable(),
    }
}

fn proxy(e: &ProxyError) -> Entry {
    let unreachable = || {
        Page::new("The course content is not reachable right now")
            .para("The gateway could not get an answer from the learning management system. This is usually temporary.")
            .para("Please wait a minute and try again.")
    };
    match e {
        ProxyError::Connect(_) => row(S::BAD_GATEWAY, "upstream_unreachable", unreachable()),
        ProxyError::Upstream(_) => row(S::BAD_GATEWAY, "upstream_failed", unreachable()),
        ProxyError::Timeout => row(
            S::GATEWAY_TIMEOUT,
            "upstream_timeout",
            Page::new("The course content took too long to answer")
                .para("The learning management system did not answer in time. Please try again in a moment."),
        ),
        ProxyError::BodyTooLarge(limit) => row(
            S::PAYLOAD_TOO_LARGE,
            "body_too_large",
            Page::new("The upload is too large").para(format!(
                "Uploads through this gateway are limited to {} MB.",
                limit / (1024 * 1024)
            )),
        ),
        ProxyError::BodyTimedOut => row(
            S::REQUEST_TIMEOUT,
            "body_timeout",
            Page::new("The upload took too long to arrive")
                .para("The connection was too slow, or the upload was cut short. Nothing was saved; try again on a faster connection."),
        ),
        ProxyError::UpgradeRefused => row(
            S::NOT_IMPLEMENTED,
            "upgrade_refused",
            Page::new("This kind of connection is not supported")
                .para("The gateway does not forward WebSocket or other protocol upgrades."),
        ),
    }
}

fn store_unavailable() -> Entry {
    row(
        S::SERVICE_UNAVAILABLE,
        "store_unavailable",
        Page::new("The service is temporarily unavailable")
            .para("The gateway cannot reach its session store right now. Nothing is wrong with your account.")
            .para("Please wait a minute, then launch the activity again from your course."),
    )
}

fn target_advice(e: &TargetError) -> String {
    format!(
        "The platform's target link URI is misconfigured: {e}. An administrator must set the \
         link's target to this gateway's address followed by /lti/1p3/launch/<course_key>/<usage_key>."
    )
}

fn target_page(e: &TargetError) -> Page {
    Page::new("The link's target is misconfigured")
        .para(target_advice(e))
        .para(ASK_ADMIN)
}

fn gate_page(e: &GateRefusal) -> Page {
    Page::new("This content is not available from your course")
        .para(format!(
            "The gateway's launch gate for this platform refused the content: {e}."
        ))
        .para("An administrator can allow it in the platform's [platforms.gate] settings.")
}

/// A registration the login or launch named: unknown, ambiguous or disabled.
fn lookup(e: &LookupError) -> Entry {
    match e {
        LookupError::Unknown => row(
            S::BAD_REQUEST,
            "unknown_platform",
            Page::new("This platform is not registered")
                .para("No registration matches the issuer and client_id this platform sent. An administrator must add the platform to the gateway's configuration, with exactly the issuer and client id the platform shows.")
                .para(ASK_ADMIN),
        ),
        LookupError::Ambiguous => row(
            S::BAD_REQUEST,
            "ambiguous_platform",
            Page::new("The platform registration is ambiguous")
                .para("Several registrations share this platform's issuer, and the login did not say which one (no client_id). An administrator must configure the platform to send client_id in its login request.")
                .para(ASK_ADMIN),
        ),
        LookupError::Inactive => row(
            S::FORBIDDEN,
            "platform_inactive",
            Page::new("This platform registration is disabled")
                .para("An administrator has turned off launches from this platform.")
                .para(ASK_ADMIN),
        ),
    }
}

fn login(e: &LoginError) -> Entry {
    let incomplete = || {
        Page::new("The login request from your platform is incomplete")
            .para(format!("{e}."))
            .para(ASK_ADMIN)
    };
    match e {
        LoginError::MissingParam(_) => row(S::BAD_REQUEST, "login_missing_param", incomplete()),
        LoginError::DuplicateParam(_) => {
            row(S::BAD_REQUEST, "login_duplicate_param", incomplete())
        }
        LoginError::Lookup(l) => lookup(l),
        LoginError::UnknownDeployment(_) => row(
            S::BAD_REQUEST,
            "unknown_deployment",
            Page::new("This deployment is not registered")
                .para("The platform sent a deployment id that is not in this registration's deployment_ids. An administrator must add it.")
                .para(ASK_ADMIN),
        ),
        LoginError::Target(t) => row(S::BAD_REQUEST, "target_misconfigured", target_page(t)),
        LoginError::Gate(g) => row(S::FORBIDDEN, "launch_gate", gate_page(g)),
        LoginError::Store(_) => store_unavailable(),
    }
}

fn launch(e: &LaunchError) -> Entry {
    use LaunchError as E;
    // The checks of the id_token itself: the platform (or an attacker) sent
    // something that does not verify. One page for all; the reason differs.
    let unverified = |reason| {
        row(
            S::BAD_REQUEST,
            reason,
            Page::new("The launch could not be verified")
                .para(format!("Check that failed: {e}."))
                .para(ASK_ADMIN),
        )
    };
    match e {
        E::PlatformError { .. } => row(
            S::BAD_REQUEST,
            "platform_error",
            Page::new("Your platform did not complete the launch")
                .para("The learning platform answered the login with an error instead of a launch. You may need to sign in to your platform again.")
                .para(RELAUNCH),
        ),
        E::MissingField(_) => unverified("missing_field"),
        E::StateCookieMissing => row(
            S::BAD_REQUEST,
            "state_cookie_missing",
            Page::new("Your browser blocked a cookie this launch needs")
                .para("The launch started in this browser, but the cookie set at its start did not come back. Safari and private windows often block cookies inside embedded pages.")
                .para("Open the activity in a new window, or allow cross-site cookies for this site, then launch it again from your course."),
        ),
        E::StateUnknown => row(
            S::BAD_REQUEST,
            "state_unknown",
            Page::new("This launch has expired or was already used")
                .para("Each launch can be used once, within a few minutes. Reloading or going back resubmits an old launch.")
                .para(RELAUNCH),
        ),
        E::Registration(l) => Entry {
            status: match l {
                LookupError::Inactive => S::FORBIDDEN,
                LookupError::Unknown | LookupError::Ambiguous => S::BAD_REQUEST,
            },
            ..unverified("registration_unusable")
        },
        E::MalformedToken => unverified("malformed_token"),
        E::UnsupportedAlgorithm(_) => unverified("unsupported_algorithm"),
        E::MissingKid => unverified("missing_kid"),
        E::UnknownKid => unverified("unknown_kid"),
        E::KeySetUnavailable(_) => row(
            S::BAD_GATEWAY,
            "key_set_unavailable",
            Page::new("The platform's keys could not be fetched")
                .para("The gateway could not download the platform's public keys to check this launch. This is usually temporary.")
                .para("Please wait a minute, then launch the activity again from your course."),
        ),
        E::BadSignature => unverified("bad_signature"),
        E::WrongIssuer => unverified("wrong_issuer"),
        E::WrongAudience => unverified("wrong_audience"),
        E::MissingAzp => unverified("missing_azp"),
        E::WrongAzp => unverified("wrong_azp"),
        E::MissingTime(_) => unverified("missing_time"),
        E::Expired => unverified("expired"),
        E::IssuedInFuture => unverified("issued_in_future"),
        E::NotYetValid => unverified("not_yet_valid"),
        E::NonceMismatch => unverified("nonce_mismatch"),
        E::UnknownDeployment => unverified("unknown_deployment"),
        E::MissingVersion => unverified("missing_version"),
        E::WrongVersion(_) => unverified("wrong_version"),
        E::MissingMessageType => unverified("missing_message_type"),
        E::UnsupportedMessageType(_) => row(
            S::BAD_REQUEST,
            "unsupported_message_type",
            Page::new("This kind of launch is not supported")
                .para(format!("{e}. This gateway accepts resource link launches."))
                .para(ASK_ADMIN),
        ),
        E::MissingClaim(_) => unverified("missing_claim"),
        E::DeepLinkingNotConfigured => row(
            S::BAD_REQUEST,
            "deep_linking_not_configured",
            Page::new("Deep linking is not available here")
                .para("This gateway is not set up for deep linking. Add content by pasting its launch URL into the platform instead, or ask an administrator to configure [deep_linking].")
                .para(ASK_ADMIN),
        ),
        E::DeepLinking(d) => deep_linking_request(e, d),
        E::Target(t) => row(S::BAD_REQUEST, "target_misconfigured", target_page(t)),
        E::TargetMismatch => row(
            S::BAD_REQUEST,
            "target_mismatch",
            Page::new("The link's target changed during the launch")
                .para("The target link URI in the platform's launch differs from the one it sent at login. An administrator should check the link's configuration on the platform.")
                .para(ASK_ADMIN),
        ),
        E::Gate(g) => row(S::FORBIDDEN, "launch_gate", gate_page(g)),
        E::Store(_) => store_unavailable(),
    }
}

fn deep_linking_request(e: &LaunchError, d: &RequestError) -> Entry {
    match d {
        RequestError::MissingClaim(_) => row(
            S::BAD_REQUEST,
            "missing_claim",
            Page::new("The launch could not be verified")
                .para(format!("Check that failed: {e}."))
                .para(ASK_ADMIN),
        ),
        RequestError::UnsupportedTypes => row(
            S::BAD_REQUEST,
            "deep_linking_unsupported_types",
            Page::new("The platform cannot receive LTI links here")
                .para("The platform's deep-linking request does not accept LTI resource links, which is all this gateway can return.")
                .para(ASK_ADMIN),
        ),
        RequestError::Role => row(
            S::FORBIDDEN,
            "deep_linking_role",
            Page::new("Only instructors can add content")
                .para("Choosing content for a course is open to instructors, administrators and content developers. Ask your instructor to add this content."),
        ),
        RequestError::ReturnUrlNotAllowed(refused) => row(
            S::BAD_REQUEST,
            "deep_linking_return_url_not_allowed",
            Page::new("The platform's return address is not allowed")
                .para(format!("The platform asked for the chosen content to be sent to an address this registration does not allow: {refused}. An administrator can list the platform's origin in its service_origins setting."))
                .para(ASK_ADMIN),
        ),
        RequestError::NoGate => row(
            S::FORBIDDEN,
            "deep_linking_no_gate",
            Page::new("No content is available to add")
                .para("This platform's registration has no launch gate allowing any course, org or content key, so there is nothing to pick. An administrator can allow content in the platform's [platforms.gate] settings.")
                .para(ASK_ADMIN),
        ),
    }
}

fn picker(e: &PickerError) -> Entry {
    use PickerError as P;
    let not_from_picker = || {
        Page::new("The selection could not be accepted")
            .para("The form did not come from this picker. Start again from your platform's \"add content\" button.")
    };
    match e {
        P::TokenUnknown => row(
            S::GONE,
            "picker_token_unknown",
            Page::new("This content picker has expired or was already used")
                .para("Each picker can be submitted once, within 30 minutes. Start again from your platform's \"add content\" button."),
        ),
        P::WrongBrowser => row(
            S::FORBIDDEN,
            "picker_wrong_browser",
            Page::new("This content picker belongs to another browser")
                .para("Open the picker from your platform in this browser; picker links cannot be shared. If your browser blocks cross-site cookies, allow them for this site or open the platform in a new window."),
        ),
        P::BadCsrf => row(S::FORBIDDEN, "picker_bad_csrf", not_from_picker()),
        P::BadForm => row(S::BAD_REQUEST, "picker_bad_form", not_from_picker()),
        P::NothingSelected => row(
            S::BAD_REQUEST,
            "picker_nothing_selected",
            Page::new("Nothing was selected").para("Go back and choose at least one item."),
        ),
        P::TooMany => row(
            S::BAD_REQUEST,
            "picker_too_many",
            Page::new("Choose one item only")
                .para("Your platform accepts one item at a time here. Go back and choose a single item."),
        ),
        P::NotAllowed(_) => row(
            S::FORBIDDEN,
            "picker_not_allowed",
            Page::new("That content is not available to this platform")
                .para("A selected item is outside what this platform's launch gate allows. Go back and choose from the list."),
        ),
        P::Catalog(_) => row(
            S::BAD_GATEWAY,
            "lms_api_failed",
            Page::new("The content list could not be loaded")
                .para("The gateway could not get the list of courses and content from the learning management system. The list is not shown rather than shown incomplete.")
                .para("Try again in a minute. If it keeps failing, an administrator should check the [deep_linking] LMS client credentials and that the LMS is reachable."),
        ),
        P::Store(_) => store_unavailable(),
        P::Signing(_) => row(
            S::INTERNAL_SERVER_ERROR,
            "internal_error",
            Page::new("Something went wrong in the gateway")
                .para("The gateway could not sign the response for your platform. Please tell your administrator."),
        ),
    }
}

fn score(e: &ScoreError) -> Entry {
    match e {
        ScoreError::Invalid { field, error } => Entry {
            field: Some(field.clone()),
            ..row(S::BAD_REQUEST, "bad_score", Page::new(error.clone()))
        },
        ScoreError::UnknownUser => Entry {
            field: Some("username".into()),
            ..row(S::NOT_FOUND, "unknown_user", Page::new(e.to_string()))
        },
        ScoreError::Store(_) => Entry {
            page: Page::new("the store is unavailable; retry later"),
            ..store_unavailable()
        },
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
    fn logout_and_revocation_statuses() {
        assert_eq!(Rejection::LogoutCrossSite.status(), StatusCode::FORBIDDEN);
        let entry = Rejection::NoSuchRegistration.entry();
        assert_eq!(
            (entry.status, entry.reason, entry.field.as_deref()),
            (
                StatusCode::NOT_FOUND,
                "no_such_registration",
                Some("client_id")
            )
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
    fn a_late_body_is_408_body_timeout() {
        let entry = Rejection::Form(FormError::TimedOut).entry();
        assert_eq!(entry.status, StatusCode::REQUEST_TIMEOUT);
        assert_eq!(entry.reason, "body_timeout");
        assert_eq!(
            Rejection::Form(FormError::Unreadable).entry().reason,
            "bad_form"
        );
    }

    #[test]
    fn store_errors_leak_nothing() {
        let r = Rejection::Access(AccessError::Store(StoreError::Unavailable(
            "redis://secret-host:6379 refused".into(),
        )));
        let html = r.entry().page.render();
        assert!(!html.contains("secret-host"));
        assert!(html.contains("store_unavailable"));
    }
}
