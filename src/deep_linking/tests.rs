//! Deep linking, driven on the [`DeepLinking`] service itself: a real
//! embedded store and a real registry, no socket, no TOML. The LMS catalog
//! is never reached: every case here is refused before the listing is asked
//! for (a submission that passes these checks needs the LMS REST APIs, which
//! `tests/deep_linking.rs` serves).

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value, json};

use super::{Catalog, DeepLinking, DeepLinkingConfig, PickerError, PickerSession, RequestError};
use crate::claims;
use crate::client::HttpClient;
use crate::clock::{Clock, ManualClock};
use crate::gate::LaunchGate;
use crate::jwks::{JwksConfig, KeySetSource};
use crate::keys::ToolKeys;
use crate::lms_api::{LmsApi, LmsApiConfig};
use crate::registry::{PlatformConfig, Registration, Registry};
use crate::store::{Namespace, Store};
use crate::token::random_token;

const ISSUER: &str = "https://platform.example";
/// A registration whose gate allows org `O`.
const GATED: &str = "gated";
/// A registration without a gate.
const UNGATED: &str = "ungated";
const INSTRUCTOR: &str = "http://purl.imsglobal.org/vocab/lis/v2/membership#Instructor";
const LEARNER: &str = "http://purl.imsglobal.org/vocab/lis/v2/membership#Learner";
const ALLOWED: &str = "block-v1:O+C+R+type@problem+block@p1";

struct Fixture {
    dl: DeepLinking,
    registry: Arc<Registry>,
    store: Arc<dyn Store>,
    _dir: tempfile::TempDir,
}

fn fixture(allow_http: bool) -> Fixture {
    let clock: Arc<dyn Clock> = ManualClock::new();
    let (store, dir) = crate::testing::embedded_store(clock.clone());
    let tool_keys = ToolKeys::new(vec![crate::testing::rsa_key("tool-key")]);
    let platform = |client_id: &str, gate: Option<LaunchGate>| PlatformConfig {
        title: client_id.into(),
        active: true,
        issuer: ISSUER.into(),
        client_id: client_id.into(),
        auth_login_url: format!("{ISSUER}/auth").parse().expect("url"),
        auth_token_url: format!("{ISSUER}/token").parse().expect("url"),
        auth_audience: None,
        key_set: KeySetSource::Inline(json!({ "keys": [] })),
        key: "tool-key".into(),
        deployment_ids: ["d1".to_owned()].into(),
        org: None,
        gate,
        service_origins: Vec::new(),
        allow_private_addresses: false,
    };
    let gate = LaunchGate {
        allowed_orgs: ["O".to_owned()].into(),
        ..LaunchGate::default()
    };
    let jwks = JwksConfig {
        cache_ttl: Duration::from_secs(300),
        min_refetch_interval: Duration::from_secs(60),
        fetch_timeout: Duration::from_secs(5),
    };
    let registry = Arc::new(Registry::new(
        &[platform(GATED, Some(gate)), platform(UNGATED, None)],
        &tool_keys,
        &jwks,
    ));
    let config = DeepLinkingConfig {
        token_ttl_sec: 600,
        accepted_roles: vec![INSTRUCTOR.into()],
        cache_ttl: Duration::from_secs(60),
    };
    let lms = Arc::new(LmsApi::new(LmsApiConfig {
        url: "http://lms.invalid".parse().expect("url"),
        client_id: "dl-client".into(),
        client_secret: "dl-secret".into(),
        request_timeout: Duration::from_secs(5),
    }));
    let dl = DeepLinking::new(
        config,
        store.clone(),
        clock,
        Catalog::new(lms, HttpClient::default(), Duration::from_secs(60)),
        registry.clone(),
        "https://gw.example".into(),
        allow_http,
    );
    Fixture {
        dl,
        registry,
        store,
        _dir: dir,
    }
}

/// The claims of a deep-linking request the gateway accepts.
fn request_claims(return_url: &str, accept_types: &[&str]) -> Map<String, Value> {
    let claims = json!({
        claims::DEPLOYMENT_ID: "d1",
        claims::DEEP_LINKING_SETTINGS: {
            "deep_link_return_url": return_url,
            "accept_types": accept_types,
            "data": "opaque-platform-data",
        },
    });
    claims.as_object().expect("object").clone()
}

impl Fixture {
    fn reg(&self, client_id: &str) -> Arc<Registration> {
        self.registry
            .find(ISSUER, Some(client_id))
            .expect("registration")
    }

    fn check(
        &self,
        client_id: &str,
        role: &str,
        claims: &Map<String, Value>,
    ) -> Result<PickerSession, RequestError> {
        self.dl
            .check_request(&self.reg(client_id), &[role.to_owned()], claims)
    }

    /// A started picker session of the gated registration, and its token.
    async fn started(&self) -> (PickerSession, String) {
        let claims = request_claims("https://platform.example/dl/return", &["ltiResourceLink"]);
        let session = self.check(GATED, INSTRUCTOR, &claims).expect("accepted");
        let token = self.dl.start(&session).await.expect("start");
        (session, token)
    }

    async fn token_live(&self, token: &str) -> bool {
        self.store
            .get(Namespace::DeepLinking, token)
            .await
            .expect("get")
            .is_some()
    }
}

fn form(csrf: &str, items: &[&str]) -> Vec<(String, String)> {
    std::iter::once(("csrf".to_owned(), csrf.to_owned()))
        .chain(items.iter().map(|i| ("item".to_owned(), (*i).to_owned())))
        .collect()
}

#[tokio::test]
async fn an_instructor_request_on_a_gated_registration_is_accepted() {
    let f = fixture(false);
    let claims = request_claims("https://platform.example/dl/return", &["ltiResourceLink"]);
    // A short role name is a context role of the LIS vocabulary.
    let session = f.check(GATED, "Instructor", &claims).expect("accepted");
    assert_eq!(session.client_id, GATED);
    assert_eq!(session.deployment_id, "d1");
    assert_eq!(session.return_url, "https://platform.example/dl/return");
    assert_eq!(session.data, Some(json!("opaque-platform-data")));
    assert!(!session.accept_multiple);
    assert_ne!(session.binding, session.csrf);
}

#[tokio::test]
async fn request_checks_refuse_each_failing_condition() {
    let f = fixture(false);
    let good = request_claims("https://platform.example/dl/return", &["ltiResourceLink"]);

    let learner = f.check(GATED, LEARNER, &good);
    assert!(matches!(learner, Err(RequestError::Role)), "{learner:?}");

    let ungated = f.check(UNGATED, INSTRUCTOR, &good);
    assert!(matches!(ungated, Err(RequestError::NoGate)), "{ungated:?}");

    let no_links = request_claims("https://platform.example/dl/return", &["file", "html"]);
    let no_links = f.check(GATED, INSTRUCTOR, &no_links);
    assert!(
        matches!(no_links, Err(RequestError::UnsupportedTypes)),
        "{no_links:?}"
    );

    let no_settings = Map::new();
    let no_settings = f.check(GATED, INSTRUCTOR, &no_settings);
    assert!(
        matches!(
            no_settings,
            Err(RequestError::MissingClaim("deep_linking_settings"))
        ),
        "{no_settings:?}"
    );
}

#[tokio::test]
async fn an_http_return_url_needs_allow_http() {
    let claims = request_claims("http://platform.example/dl/return", &["ltiResourceLink"]);
    let refused = fixture(false).check(GATED, INSTRUCTOR, &claims);
    assert!(
        matches!(
            refused,
            Err(RequestError::MissingClaim("deep_link_return_url"))
        ),
        "{refused:?}"
    );
    // With allow_http the scheme passes; the URL must still be on one of
    // the registration's origins, and http://platform.example is not
    // https://platform.example.
    let elsewhere = fixture(true).check(GATED, INSTRUCTOR, &claims);
    assert!(
        matches!(elsewhere, Err(RequestError::ReturnUrlNotAllowed(_))),
        "{elsewhere:?}"
    );
    // Nothing but http and https, even with allow_http.
    let other = request_claims("ftp://platform.example/dl/return", &["ltiResourceLink"]);
    let other = fixture(true).check(GATED, INSTRUCTOR, &other);
    assert!(
        matches!(other, Err(RequestError::MissingClaim(_))),
        "{other:?}"
    );
}

#[tokio::test]
async fn a_submission_from_another_browser_is_refused_and_keeps_the_token() {
    let f = fixture(false);
    let (session, token) = f.started().await;
    let form = form(&session.csrf, &[ALLOWED]);
    for binding in [
        None,
        Some("another-browsers-binding"),
        Some(session.csrf.as_str()),
    ] {
        let refused = f.dl.submit(&token, binding, &form).await;
        assert!(
            matches!(refused, Err(PickerError::WrongBrowser)),
            "{binding:?}: {refused:?}"
        );
    }
    assert!(
        f.token_live(&token).await,
        "the picker token is not consumed"
    );
}

#[tokio::test]
async fn a_submission_with_a_wrong_csrf_token_is_refused_and_keeps_the_token() {
    let f = fixture(false);
    let (session, token) = f.started().await;
    let binding = Some(session.binding.as_str());
    for csrf in ["", "not-the-csrf-token", session.binding.as_str()] {
        let refused = f.dl.submit(&token, binding, &form(csrf, &[ALLOWED])).await;
        assert!(
            matches!(refused, Err(PickerError::BadCsrf)),
            "{csrf:?}: {refused:?}"
        );
    }
    assert!(
        f.token_live(&token).await,
        "the picker token is not consumed"
    );
}

#[tokio::test]
async fn a_submission_is_rechecked_against_the_gate_before_the_catalog() {
    let f = fixture(false);
    let (session, token) = f.started().await;
    let binding = Some(session.binding.as_str());
    let csrf = session.csrf.as_str();

    let outside = "block-v1:Other+C+R+type@problem+block@p1";
    let refused = f.dl.submit(&token, binding, &form(csrf, &[outside])).await;
    assert!(
        matches!(&refused, Err(PickerError::NotAllowed(u)) if u == outside),
        "{refused:?}"
    );
    let refused =
        f.dl.submit(&token, binding, &form(csrf, &["not a key"]))
            .await;
    assert!(
        matches!(refused, Err(PickerError::NotAllowed(_))),
        "{refused:?}"
    );
    let refused = f.dl.submit(&token, binding, &form(csrf, &[])).await;
    assert!(
        matches!(refused, Err(PickerError::NothingSelected)),
        "{refused:?}"
    );
    // The platform did not set accept_multiple.
    let two = [ALLOWED, "block-v1:O+C+R+type@problem+block@p2"];
    let refused = f.dl.submit(&token, binding, &form(csrf, &two)).await;
    assert!(matches!(refused, Err(PickerError::TooMany)), "{refused:?}");
    assert!(
        f.token_live(&token).await,
        "the picker token is not consumed"
    );
}

#[tokio::test]
async fn an_unknown_picker_token_is_refused() {
    let f = fixture(false);
    let (session, _) = f.started().await;
    let refused =
        f.dl.submit(
            &random_token(),
            Some(&session.binding),
            &form(&session.csrf, &[ALLOWED]),
        )
        .await;
    assert!(
        matches!(refused, Err(PickerError::TokenUnknown)),
        "{refused:?}"
    );
}
