//! Entry points for the fuzz targets in `fuzz/` (the `fuzzing` feature only).
//!
//! Thin wrappers around parsers that are not part of the public API: the
//! form reader, the cookie reader's pairs, the launch form, and the launch
//! itself (the id_token's JWT header and claims) on a real gateway built
//! from an inline config, with a real embedded store. Nothing here
//! re-implements a parser: each call goes through the code that serves
//! requests. Never built into the binary; see docs/tests.md, "Fuzzing".

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, header};
use http_body_util::Full;

use crate::clock::{Clock, UnixTime};
use crate::config::Config;
use crate::http::app::Gateway;
use crate::lti::LoginState;
use crate::lti::launch::{LaunchCookies, LaunchForm, Launched};
use crate::store::Namespace;

/// Runs a future that never waits (a body that is already in memory).
fn ready<F: Future>(future: F) -> Option<F::Output> {
    let mut cx = Context::from_waker(Waker::noop());
    match pin!(future).poll(&mut cx) {
        Poll::Ready(out) => Some(out),
        Poll::Pending => None,
    }
}

/// The most a form body may hold here (the launch endpoint's limit).
pub const MAX_FORM_BYTES: usize = 256 * 1024;

/// [`crate::http::form::form_pairs`] on an in-memory body, with `content_type`
/// as the request's `Content-Type` (none when it is not a header value).
/// The error is the `FormError`, rendered.
pub fn form_pairs(content_type: &[u8], body: &[u8]) -> Result<Vec<(String, String)>, String> {
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_bytes(content_type) {
        headers.insert(header::CONTENT_TYPE, v);
    }
    let body = Full::new(Bytes::copy_from_slice(body));
    ready(crate::http::form::form_pairs(
        &headers,
        body,
        MAX_FORM_BYTES,
    ))
    .unwrap_or(Err(crate::http::form::FormError::Unreadable))
    .map_err(|e| e.to_string())
}

/// [`crate::cookies::pairs`], owned.
pub fn cookie_pairs(headers: &HeaderMap) -> Vec<(String, String)> {
    crate::cookies::pairs(headers)
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
        .collect()
}

/// [`LaunchForm::from_pairs`]: `[id_token, state, error, error_description]`.
pub fn launch_form(pairs: Vec<(String, String)>) -> [Option<String>; 4] {
    let f = LaunchForm::from_pairs(pairs);
    [f.id_token, f.state, f.error, f.error_description]
}

/// [`crate::token::is_token`].
pub fn is_token(s: &str) -> bool {
    crate::token::is_token(s)
}

/// The gateway's clock in the launcher: fixed, so that seeds keep their times.
pub const NOW: UnixTime = 1_800_000_000;
pub const ISSUER: &str = "https://platform.fuzz.test";
pub const CLIENT_ID: &str = "fuzz-client";
pub const DEPLOYMENT_ID: &str = "fuzz-deployment";
pub const PLATFORM_KID: &str = "fuzz-platform-1";
pub const NONCE: &str = "fuzz-nonce-0123456789";
pub const PUBLIC_ORIGIN: &str = "http://lti.fuzz.test";
pub const COURSE: &str = "course-v1:OrgF+F101+2026";
pub const USAGE: &str = "block-v1:OrgF+F101+2026+type@problem+block@p1";
/// `[session] leeway_sec` in the launcher's config.
pub const LEEWAY_SEC: u64 = 60;

struct FixedClock;

impl Clock for FixedClock {
    fn now(&self) -> UnixTime {
        NOW
    }
}

/// How a launch ended: `Ok("resource")`, `Ok("deep_linking")`, or the
/// `LaunchError`'s `Debug` rendering (its variant name first).
pub type LaunchOutcome = Result<&'static str, String>;

/// A gateway built from an inline config (one platform, whose key set is a
/// key made here, an embedded store in a fresh directory under the temp
/// dir), whose launch is called directly.
pub struct Launcher {
    runtime: tokio::runtime::Runtime,
    app: Arc<Gateway>,
    platform_key: RsaKeyPair,
    rng: SystemRandom,
    /// The session the last accepted launch wrote, reused so that the store
    /// holds one session however long the fuzzer runs.
    session: Mutex<Option<String>>,
    dir: PathBuf,
}

impl Launcher {
    /// Builds the gateway and checks that a well-formed launch is accepted
    /// (panics otherwise: a target that never gets past the signature
    /// fuzzes nothing).
    pub fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("ltigate-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create the launcher's store directory");
        let platform = crate::keys::generate(PLATFORM_KID).expect("platform key");
        let tool = crate::keys::generate("fuzz-tool-1").expect("tool key");
        let der = pem::parse(&platform.private_pem).expect("platform key PEM");
        let platform_key = RsaKeyPair::from_pkcs8(der.contents()).expect("platform key pair");
        let key_set = serde_json::json!({ "keys": [platform.public_jwk] }).to_string();
        let text = format!(
            r#"
[server]
public_url = "{PUBLIC_ORIGIN}"
allow_http = true

[store]
kind = "embedded"
path = {store:?}

[session]
leeway_sec = {LEEWAY_SEC}

[[keys]]
kid = "fuzz-tool-1"
private_key_env = "FUZZ_TOOL_KEY"

[[platforms]]
issuer = "{ISSUER}"
client_id = "{CLIENT_ID}"
auth_login_url = "{ISSUER}/auth"
auth_token_url = "{ISSUER}/token"
key_set = {key_set:?}
key = "fuzz-tool-1"
deployment_ids = ["{DEPLOYMENT_ID}"]
"#,
            store = dir.join("store.redb").display().to_string(),
        );
        let secrets = HashMap::from([("FUZZ_TOOL_KEY".to_owned(), tool.private_pem)]);
        let config = Config::parse(&text, Path::new("fuzz/gateway.toml"), &secrets)
            .unwrap_or_else(|e| panic!("the launcher's config: {e}"));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let app = runtime
            .block_on(async { Gateway::build(config, Arc::new(FixedClock)) })
            .expect("gateway");
        let launcher = Self {
            runtime,
            app,
            platform_key,
            rng: SystemRandom::new(),
            session: Mutex::new(None),
            dir,
        };
        let token = launcher.sign(
            Self::header_json(PLATFORM_KID).as_bytes(),
            Self::claims_json().as_bytes(),
        );
        assert_eq!(
            launcher.launch_token(&token),
            Ok("resource"),
            "the launcher's own well-formed launch"
        );
        launcher
    }

    /// The directory holding the launcher's store (left behind by a fuzzer
    /// that exits; `fuzz/run` removes it).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A JOSE header as platforms send it.
    pub fn header_json(kid: &str) -> String {
        serde_json::json!({ "alg": "RS256", "typ": "JWT", "kid": kid }).to_string()
    }

    /// The claims of a resource-link launch that the launcher accepts.
    pub fn claims_json() -> String {
        serde_json::json!({
            "iss": ISSUER,
            "aud": CLIENT_ID,
            "sub": "learner-1",
            "iat": NOW,
            "exp": NOW + 300,
            "nonce": NONCE,
            "name": "Ada Lovelace",
            "email": "ada@example.edu",
            crate::claims::DEPLOYMENT_ID: DEPLOYMENT_ID,
            crate::claims::VERSION: crate::claims::LTI_VERSION,
            crate::claims::MESSAGE_TYPE: crate::claims::RESOURCE_LINK_REQUEST,
            crate::claims::ROLES: ["http://purl.imsglobal.org/vocab/lis/v2/membership#Learner"],
            crate::claims::RESOURCE_LINK: { "id": "link-1", "title": "Problem 1" },
            crate::claims::TARGET_LINK_URI: Self::target(),
            crate::claims::CONTEXT: { "id": "ctx-1", "label": "F101" },
        })
        .to_string()
    }

    /// The canonical target of the login state every launch consumes.
    pub fn target() -> String {
        format!("{PUBLIC_ORIGIN}/lti/1p3/launch/{COURSE}/{USAGE}")
    }

    /// A compact JWS of the raw `header` and `claims` bytes (any bytes:
    /// they are base64url-encoded as they are), signed RS256 with the
    /// platform's key.
    pub fn sign(&self, header: &[u8], claims: &[u8]) -> String {
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(claims)
        );
        let mut signature = vec![0; self.platform_key.public_modulus_len()];
        self.platform_key
            .sign(
                &RSA_PKCS1_SHA256,
                &self.rng,
                signing_input.as_bytes(),
                &mut signature,
            )
            .expect("sign");
        format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature))
    }

    /// A launch of `id_token` after a login: a fresh login state (with
    /// [`NONCE`] and [`Self::target`]) is stored, and the form and state
    /// cookie carry it.
    pub fn launch_token(&self, id_token: &str) -> LaunchOutcome {
        let state = crate::token::random_token();
        let login = LoginState {
            issuer: ISSUER.to_owned(),
            client_id: CLIENT_ID.to_owned(),
            nonce: NONCE.to_owned(),
            target: Self::target(),
            deployment_id: None,
        };
        let value = serde_json::to_vec(&login).expect("login state");
        self.runtime
            .block_on(
                self.app
                    .store
                    .put(Namespace::LoginState, &state, value, NOW + 600),
            )
            .expect("store the login state");
        let form = LaunchForm {
            id_token: Some(id_token.to_owned()),
            state: Some(state.clone()),
            error: None,
            error_description: None,
        };
        self.run(form, Some(&state))
    }

    /// A launch of a decoded form, its state cookie carrying the form's own
    /// `state` (so that only the login state decides); no login is stored.
    pub fn launch_form(&self, pairs: Vec<(String, String)>) -> LaunchOutcome {
        let form = LaunchForm::from_pairs(pairs);
        let state = form.state.clone();
        self.run(form, state.as_deref())
    }

    fn run(&self, form: LaunchForm, state_cookie: Option<&str>) -> LaunchOutcome {
        let mut session = self.session.lock().unwrap_or_else(|p| p.into_inner());
        let cookies = LaunchCookies {
            state: state_cookie,
            session: session.as_deref().map(crate::session::Presented::current),
        };
        match self.runtime.block_on(self.app.lti.launch(form, cookies)) {
            Ok(Launched::Resource { session_id, .. }) => {
                *session = Some(session_id);
                Ok("resource")
            }
            Ok(Launched::DeepLinking { .. }) => Ok("deep_linking"),
            Err(e) => Err(format!("{e:?}")),
        }
    }
}

impl Default for Launcher {
    fn default() -> Self {
        Self::new()
    }
}
