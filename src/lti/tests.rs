//! The login and launch, driven on the [`Lti`] service itself: a real
//! embedded store, a real registry whose platform key set is inline, and
//! id_tokens signed with a real RSA key. No socket, no TOML.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use super::launch::{LaunchCookies, LaunchError, LaunchForm, Launched};
use super::login::{LoginParams, LoginRedirect};
use super::{LoginState, Lti, state_cookie_name};
use crate::claims;
use crate::client::HttpClient;
use crate::clock::{Clock, ManualClock};
use crate::jwks::{JwksConfig, KeySetSource};
use crate::keys::{ToolKey, ToolKeys};
use crate::registry::{PlatformConfig, Registry};
use crate::session::{Sessions, StoreSharing};
use crate::store::{Namespace, Store};

const ISSUER: &str = "https://platform.example";
const CLIENT_ID: &str = "tool-1";
const DEPLOYMENT: &str = "d1";
const PUBLIC: &str = "https://gw.example";
const CONTENT: &str = "/lti/1p3/launch/course-v1:O+C+R/block-v1:O+C+R+type@problem+block@p1";

/// One gateway's login and launch, and the platform's signing key.
struct Fixture {
    lti: Lti,
    store: Arc<dyn Store>,
    sessions: Arc<Sessions>,
    platform_key: ToolKey,
    _dir: tempfile::TempDir,
}

fn fixture() -> Fixture {
    let clock: Arc<dyn Clock> = ManualClock::new();
    let (store, dir) = crate::testing::embedded_store(clock.clone());
    let platform_key = crate::testing::rsa_key("platform-key");
    let tool_keys = ToolKeys::new(vec![crate::testing::rsa_key("tool-key")]);
    let registration = PlatformConfig {
        title: "Test platform".into(),
        active: true,
        issuer: ISSUER.into(),
        client_id: CLIENT_ID.into(),
        auth_login_url: format!("{ISSUER}/auth").parse().expect("url"),
        auth_token_url: format!("{ISSUER}/token").parse().expect("url"),
        auth_audience: None,
        key_set: KeySetSource::Inline(json!({ "keys": [platform_key.public_jwk()] })),
        key: "tool-key".into(),
        deployment_ids: [DEPLOYMENT.to_owned()].into(),
        org: None,
        gate: None,
        service_origins: Vec::new(),
        allow_private_addresses: false,
    };
    let jwks = JwksConfig {
        cache_ttl: Duration::from_secs(300),
        min_refetch_interval: Duration::from_secs(60),
        fetch_timeout: Duration::from_secs(5),
    };
    let registry = Arc::new(Registry::new(&[registration], &tool_keys, &jwks));
    let sessions = Arc::new(Sessions::new(
        store.clone(),
        clock.clone(),
        crate::testing::session_config(),
        StoreSharing::Private,
    ));
    let lti = Lti::new(
        registry,
        store.clone(),
        clock,
        HttpClient::default(),
        sessions.clone(),
        PUBLIC.parse().expect("url"),
        None,
        None,
    );
    Fixture {
        lti,
        store,
        sessions,
        platform_key,
        _dir: dir,
    }
}

impl Fixture {
    async fn login(&self) -> LoginRedirect {
        self.lti
            .login(LoginParams {
                iss: ISSUER.into(),
                login_hint: "hint-1".into(),
                target_link_uri: format!("{PUBLIC}{CONTENT}"),
                client_id: Some(CLIENT_ID.into()),
                ..LoginParams::default()
            })
            .await
            .expect("login")
    }

    /// A valid resource-link launch's claims for the login `redirect` began.
    fn claims(&self, redirect: &LoginRedirect) -> Value {
        let now = self.lti.clock.now();
        json!({
            "iss": ISSUER,
            "aud": CLIENT_ID,
            "sub": "learner-1",
            "iat": now,
            "exp": now + 300,
            "nonce": query(&redirect.location, "nonce"),
            claims::VERSION: claims::LTI_VERSION,
            claims::MESSAGE_TYPE: claims::RESOURCE_LINK_REQUEST,
            claims::DEPLOYMENT_ID: DEPLOYMENT,
            claims::ROLES: ["http://purl.imsglobal.org/vocab/lis/v2/membership#Learner"],
            claims::RESOURCE_LINK: { "id": "rl-1" },
            claims::TARGET_LINK_URI: format!("{PUBLIC}{CONTENT}"),
        })
    }

    /// Posts `claims`, signed by the platform, with `state_cookie` as the
    /// browser's state cookie.
    async fn launch(
        &self,
        state: &str,
        claims: &Value,
        state_cookie: Option<&str>,
    ) -> Result<Launched, LaunchError> {
        let form = LaunchForm {
            id_token: Some(self.platform_key.sign(claims).expect("sign")),
            state: Some(state.to_owned()),
            ..LaunchForm::default()
        };
        let cookies = LaunchCookies {
            state: state_cookie,
            session: None,
        };
        self.lti.launch(form, cookies).await
    }

    async fn count(&self, ns: Namespace) -> usize {
        self.store.count(ns).await.expect("count")
    }
}

/// The one value of query parameter `name` in `url`.
fn query(url: &str, name: &str) -> String {
    let url = url::Url::parse(url).expect("url");
    let mut values = url.query_pairs().filter(|(n, _)| n == name);
    let value = values.next().expect(name).1.into_owned();
    assert!(values.next().is_none(), "{name} given twice");
    value
}

#[tokio::test]
async fn login_redirects_to_the_platform_and_stores_state_and_nonce() {
    let f = fixture();
    let redirect = f.login().await;

    assert!(
        redirect.location.starts_with(&format!("{ISSUER}/auth?")),
        "{}",
        redirect.location
    );
    assert_eq!(query(&redirect.location, "state"), redirect.state);
    assert_eq!(redirect.state_cookie, state_cookie_name(&redirect.state));
    assert_eq!(
        query(&redirect.location, "redirect_uri"),
        format!("{PUBLIC}/lti/1p3/launch/")
    );
    let stored = f
        .store
        .get(Namespace::LoginState, &redirect.state)
        .await
        .expect("get")
        .expect("the login state is stored under its state");
    let stored: LoginState = serde_json::from_slice(&stored).expect("login state");
    assert_eq!(stored.nonce, query(&redirect.location, "nonce"));
    assert_eq!(
        (stored.issuer.as_str(), stored.client_id.as_str()),
        (ISSUER, CLIENT_ID)
    );
    assert_eq!(stored.target, format!("{PUBLIC}{CONTENT}"));
    assert_eq!(
        f.count(Namespace::Session).await,
        0,
        "a login opens no session"
    );
}

#[tokio::test]
async fn a_signed_launch_records_the_grant_and_goes_to_the_content() {
    let f = fixture();
    let redirect = f.login().await;
    let launched = f
        .launch(&redirect.state, &f.claims(&redirect), Some(&redirect.state))
        .await
        .expect("launch");

    let Launched::Resource {
        session_id,
        location,
        state,
    } = launched
    else {
        panic!("a resource link launch, got {launched:?}");
    };
    assert_eq!(location, format!("{PUBLIC}{CONTENT}"));
    assert_eq!(state, redirect.state);
    let session = f
        .sessions
        .load(&session_id)
        .await
        .expect("load")
        .expect("the session is stored");
    assert_eq!(session.user.sub, "learner-1");
    assert_eq!(session.user.issuer, ISSUER);
    assert_eq!(session.grants.len(), 1);
    assert_eq!(session.grants[0].content.display_path(), CONTENT);
    assert_eq!(session.grants[0].launch.deployment_id, DEPLOYMENT);
    assert_eq!(
        f.count(Namespace::LoginState).await,
        0,
        "the state is consumed"
    );
}

#[tokio::test]
async fn a_login_state_launches_once() {
    let f = fixture();
    let redirect = f.login().await;
    let claims = f.claims(&redirect);
    f.launch(&redirect.state, &claims, Some(&redirect.state))
        .await
        .expect("first launch");

    let again = f
        .launch(&redirect.state, &claims, Some(&redirect.state))
        .await;
    assert!(matches!(again, Err(LaunchError::StateUnknown)), "{again:?}");
    assert_eq!(f.count(Namespace::Session).await, 1, "no second session");
}

#[tokio::test]
async fn a_wrong_nonce_leaves_no_session_and_burns_the_state() {
    let f = fixture();
    let redirect = f.login().await;
    let mut claims = f.claims(&redirect);
    claims["nonce"] = json!("not-the-nonce-of-this-login");

    let refused = f
        .launch(&redirect.state, &claims, Some(&redirect.state))
        .await;
    assert!(
        matches!(refused, Err(LaunchError::NonceMismatch)),
        "{refused:?}"
    );
    assert_eq!(f.count(Namespace::Session).await, 0);
    // The state was consumed by the refused launch: a correct token for it
    // cannot be tried afterwards.
    let retried = f
        .launch(&redirect.state, &f.claims(&redirect), Some(&redirect.state))
        .await;
    assert!(
        matches!(retried, Err(LaunchError::StateUnknown)),
        "{retried:?}"
    );
    assert_eq!(f.count(Namespace::Session).await, 0);
}

#[tokio::test]
async fn a_forged_signature_leaves_no_session_and_burns_the_state() {
    let f = fixture();
    let redirect = f.login().await;
    // Another key under the platform's kid: the header passes, the signature does not.
    let forger = crate::testing::rsa_key("platform-key");
    let form = LaunchForm {
        id_token: Some(forger.sign(&f.claims(&redirect)).expect("sign")),
        state: Some(redirect.state.clone()),
        ..LaunchForm::default()
    };
    let cookies = LaunchCookies {
        state: Some(&redirect.state),
        session: None,
    };
    let refused = f.lti.launch(form, cookies).await;
    assert!(
        matches!(refused, Err(LaunchError::BadSignature)),
        "{refused:?}"
    );
    assert_eq!(f.count(Namespace::Session).await, 0);
    assert_eq!(
        f.count(Namespace::LoginState).await,
        0,
        "the state is consumed"
    );
}

#[tokio::test]
async fn a_launch_from_another_browser_leaves_no_session_and_keeps_the_state() {
    let f = fixture();
    let redirect = f.login().await;
    let claims = f.claims(&redirect);

    for cookie in [None, Some("another-browsers-state")] {
        let refused = f.launch(&redirect.state, &claims, cookie).await;
        assert!(
            matches!(refused, Err(LaunchError::StateCookieMissing)),
            "{cookie:?}: {refused:?}"
        );
    }
    assert_eq!(f.count(Namespace::Session).await, 0);
    // Checked before the state is consumed, so another browser cannot burn
    // the learner's login: the learner's own launch still goes through.
    assert_eq!(f.count(Namespace::LoginState).await, 1);
    let launched = f
        .launch(&redirect.state, &claims, Some(&redirect.state))
        .await;
    assert!(
        matches!(launched, Ok(Launched::Resource { .. })),
        "{launched:?}"
    );
}
