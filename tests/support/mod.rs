//! Test harness shared by the integration tests: a real test platform that
//! signs real RS256 id_tokens and serves its JWKS and OIDC auth endpoint over
//! HTTP, a real gateway on 127.0.0.1:0, a browser with a cookie jar, and a real
//! `redis-server` on a free port.
#![allow(dead_code)]

pub mod lms_api;
pub mod platform;
pub mod process;
pub mod redis_server;
pub mod upstream;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use ltigate::Namespace;
use ltigate::{ManualClock, Running};
use reqwest::redirect::Policy;
use tokio::net::TcpListener;

pub use platform::{AuthRequest, TestPlatform};
#[allow(unused_imports)]
pub use redis_server::RedisServer;
#[allow(unused_imports)]
pub use upstream::TestUpstream;

pub const COURSE: &str = "course-v1:OrgX+CS101+2026";
pub const USAGE: &str = "block-v1:OrgX+CS101+2026+type@problem+block@p1";
pub const USAGE_2: &str = "block-v1:OrgX+CS101+2026+type@html+block@h1";

/// The display path of a usage key in [`COURSE`].
pub fn display_path(usage: &str) -> String {
    format!("/lti/1p3/launch/{COURSE}/{usage}")
}

/// A gateway running in this process, on a real socket.
pub struct Gateway {
    pub addr: SocketAddr,
    pub app: Arc<ltigate::Gateway>,
    pub clock: Arc<ManualClock>,
    pub dir: Arc<tempfile::TempDir>,
    running: Option<Running>,
}

/// How to build a gateway's config.
#[derive(Clone, Default)]
pub struct GatewayOptions {
    /// `[store]` table body; default: embedded in the gateway's temp dir.
    pub store: Option<String>,
    /// Extra lines for `[session]`.
    pub session: String,
    /// Extra lines for `[server]`.
    pub server_extra: String,
    /// The `[jwks]` table body; default: `min_refetch_interval_sec = 60`.
    pub jwks: Option<String>,
    /// Extra lines for the platform's table (for example a gate).
    pub platform_extra: String,
    /// Extra TOML appended at the end (more platforms, more keys).
    pub extra: String,
    /// Override the public URL (default: http://127.0.0.1:<port>).
    pub public_url: Option<String>,
    /// Reuse a directory (to restart on the same embedded store).
    pub dir: Option<Arc<tempfile::TempDir>>,
    /// An upstream URL: adds `[upstream]`, `[assertion]` and the shipped
    /// gating rules from `gateway.toml`.
    pub upstream: Option<String>,
    /// Extra lines for `[upstream]`.
    pub upstream_extra: String,
    /// Extra lines for `[assertion]`.
    pub assertion_extra: String,
}

/// The username key the test configs use.
pub const USERNAME_KEY: &str = "test-username-key-0123456789";

/// `block_access = "course"` unless `upstream_extra` sets `block_access`.
/// Most tests exercise the proxy, not the subtree gate, whose default
/// (`"subtree"`) needs an `[lms_api]` to read block trees from; the subtree
/// tests in tests/subtree.rs set it.
pub fn course_wide_unless_set(upstream_extra: &str) -> &'static str {
    if upstream_extra.contains("block_access") {
        ""
    } else {
        "block_access = \"course\"\n"
    }
}

/// The `[[rules]]` shipped in `gateway.toml`, verbatim: from the first line
/// that starts a `[[rules]]` table (the file's comments mention `[[rules]]`
/// earlier).
pub fn shipped_rules() -> String {
    let shipped = include_str!("../../gateway.toml");
    let start = shipped
        .find("\n[[rules]]\n")
        .expect("gateway.toml ships [[rules]]")
        + 1;
    shipped[start..].to_owned()
}

/// A tool key generated once per test binary (RSA generation is slow).
pub fn tool_key_pem() -> &'static str {
    use std::sync::OnceLock;
    static KEY: OnceLock<String> = OnceLock::new();
    KEY.get_or_init(|| {
        ltigate::generate_key("tool-1")
            .expect("generate")
            .private_pem
    })
}

impl Gateway {
    pub async fn start(platform: &TestPlatform) -> Self {
        Self::start_with(platform, GatewayOptions::default()).await
    }

    /// The config text a gateway on `port` would use.
    pub fn config_text(
        platform: &TestPlatform,
        opts: &GatewayOptions,
        port: u16,
        dir: &std::path::Path,
    ) -> String {
        let public_url = opts
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://127.0.0.1:{port}"));
        let key_path = dir.join("tool-1.pem");
        if !key_path.exists() {
            std::fs::write(&key_path, tool_key_pem()).expect("write key");
        }
        let store = opts.store.clone().unwrap_or_else(|| {
            format!(
                "kind = \"embedded\"\npath = {:?}",
                dir.join("store.redb").display().to_string()
            )
        });
        format!(
            r#"
[server]
listen = "127.0.0.1:{port}"
public_url = "{public_url}"
allow_http = true
shutdown_grace_sec = 5
{server_extra}

[store]
{store}

[session]
leeway_sec = 5
{session}

[jwks]
{jwks}

[[keys]]
kid = "tool-1"
private_key_file = {key_path:?}

[[platforms]]
title = "Test platform"
issuer = "{issuer}"
client_id = "{client_id}"
auth_login_url = "{base}/auth"
auth_token_url = "{base}/token"
key_set_url = "{base}/jwks"
key = "tool-1"
deployment_ids = ["{deployment}"]
{private}
{platform_extra}

{upstream}

{extra}
"#,
            upstream = match &opts.upstream {
                None => String::new(),
                Some(url) => format!(
                    "[upstream]\nurl = \"{url}\"\n{}{}\n\n[assertion]\nusername_key = \"{USERNAME_KEY}\"\n{}\n\n{}",
                    course_wide_unless_set(&opts.upstream_extra),
                    opts.upstream_extra,
                    opts.assertion_extra,
                    shipped_rules()
                ),
            },
            key_path = key_path.display().to_string(),
            session = opts.session,
            jwks = opts
                .jwks
                .as_deref()
                .unwrap_or("min_refetch_interval_sec = 60"),
            issuer = platform.issuer,
            client_id = platform.client_id,
            base = platform.base_url(),
            deployment = platform.deployment_id,
            platform_extra = opts.platform_extra,
            server_extra = opts.server_extra,
            // The test platform is on loopback.
            private = if opts.platform_extra.contains("allow_private_addresses") {
                ""
            } else {
                "allow_private_addresses = true"
            },
            extra = opts.extra,
        )
    }

    pub async fn start_with(platform: &TestPlatform, opts: GatewayOptions) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let dir = opts
            .dir
            .clone()
            .unwrap_or_else(|| Arc::new(tempfile::tempdir().expect("tempdir")));
        let text = Self::config_text(platform, &opts, addr.port(), dir.path());
        let config_path: PathBuf = dir.path().join("gateway.toml");
        std::fs::write(&config_path, &text).expect("write config");
        let config = ltigate::Config::parse(&text, &config_path, &std::collections::HashMap::new())
            .unwrap_or_else(|e| panic!("test config invalid: {e}\n{text}"));
        let clock = ManualClock::new();
        let app = ltigate::Gateway::build(config, clock.clone()).expect("build app");
        let running = ltigate::start_on(listener, app.clone())
            .await
            .expect("start");
        Self {
            addr,
            app,
            clock,
            dir,
            running: Some(running),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The internal score API's base URL, when `[grades]` is configured.
    pub fn grades_url(&self) -> String {
        let addr = self
            .running
            .as_ref()
            .and_then(Running::grades_addr)
            .expect("the gateway has a [grades] listener");
        format!("http://{addr}")
    }

    /// The full target link URI of a usage key in [`COURSE`].
    pub fn target(&self, usage: &str) -> String {
        self.url(&display_path(usage))
    }

    /// How many live sessions the store holds.
    pub async fn session_count(&self) -> usize {
        self.app
            .store
            .count(Namespace::Session)
            .await
            .expect("count sessions")
    }

    /// How many unconsumed login states the store holds.
    pub async fn login_state_count(&self) -> usize {
        self.app
            .store
            .count(Namespace::LoginState)
            .await
            .expect("count states")
    }

    /// Stops the gateway and waits until its store is closed.
    pub async fn stop(mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown().await;
        }
        // The store closes when the last reference to the app goes.
        let weak = Arc::downgrade(&self.app);
        drop(self);
        for _ in 0..200 {
            if weak.strong_count() == 0 {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("gateway state still referenced after shutdown");
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(r) = &self.running {
            r.shutdown_token().cancel();
        }
    }
}

/// A browser: a cookie jar and no automatic redirects.
#[derive(Clone)]
pub struct Browser {
    pub http: reqwest::Client,
    pub jar: Arc<reqwest::cookie::Jar>,
}

impl Default for Browser {
    fn default() -> Self {
        Self::new()
    }
}

/// What the browser ended with after a launch POST.
pub struct LaunchResult {
    pub status: reqwest::StatusCode,
    pub location: Option<String>,
    pub set_cookies: Vec<String>,
    pub body: String,
}

impl LaunchResult {
    /// True if the gateway set its session cookie.
    pub fn set_session(&self) -> bool {
        self.set_cookies
            .iter()
            .any(|c| c.starts_with("ltigate_session=") && !c.contains("Max-Age=0"))
    }

    #[track_caller]
    pub fn assert_rejected(&self, status: u16, reason: &str) {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.body);
        assert!(
            self.body.contains(&format!("<code>{reason}</code>")),
            "expected reason {reason}, got body: {}",
            self.body
        );
        assert!(
            !self.set_session(),
            "a rejected launch set a session cookie"
        );
    }
}

impl Browser {
    pub fn new() -> Self {
        ltigate::install_crypto_provider();
        let jar = Arc::new(reqwest::cookie::Jar::default());
        let http = reqwest::Client::builder()
            .cookie_provider(jar.clone())
            .redirect(Policy::none())
            .build()
            .expect("client");
        Self { http, jar }
    }

    /// Starts a login (GET) and returns the platform's view of the auth request.
    pub async fn login(&self, gw: &Gateway, platform: &TestPlatform, target: &str) -> AuthRequest {
        let response = self
            .http
            .get(gw.url("/lti/1p3/login/"))
            .query(&[
                ("iss", platform.issuer.as_str()),
                ("login_hint", "user-hint-1"),
                ("target_link_uri", target),
                ("lti_message_hint", "msg-hint-1"),
                ("client_id", platform.client_id.as_str()),
                ("lti_deployment_id", platform.deployment_id.as_str()),
            ])
            .send()
            .await
            .expect("login request");
        assert_eq!(
            response.status(),
            302,
            "login: {}",
            response.text().await.unwrap_or_default()
        );
        let location = response
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .expect("location")
            .to_owned();
        platform
            .parse_auth_request(&location)
            .expect("a valid OIDC auth request")
    }

    /// POSTs a launch form to the gateway.
    pub async fn post_launch(&self, gw: &Gateway, id_token: &str, state: &str) -> LaunchResult {
        self.post_form(
            gw,
            "/lti/1p3/launch/",
            &[("id_token", id_token), ("state", state)],
        )
        .await
    }

    pub async fn post_form(&self, gw: &Gateway, path: &str, form: &[(&str, &str)]) -> LaunchResult {
        let response = self
            .http
            .post(gw.url(path))
            .form(form)
            .send()
            .await
            .expect("launch request");
        let status = response.status();
        let location = response
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let set_cookies = response
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_owned))
            .collect();
        let body = response.text().await.unwrap_or_default();
        LaunchResult {
            status,
            location,
            set_cookies,
            body,
        }
    }

    /// A complete launch through the platform's real auth endpoint:
    /// login → platform /auth (auto-post form) → launch → 302 to the target.
    pub async fn launch(&self, gw: &Gateway, platform: &TestPlatform, usage: &str) -> LaunchResult {
        let target = gw.target(usage);
        let login = initiate_login(&self.http, &gw.url("/lti/1p3/login/"), platform, &target).await;
        assert_eq!(
            login.status(),
            302,
            "login refused: {}",
            login.text().await.unwrap_or_default()
        );
        let auth_url = login.headers()["location"]
            .to_str()
            .expect("ascii")
            .to_owned();
        let auth = self.http.get(&auth_url).send().await.expect("auth");
        assert_eq!(auth.status(), 200, "platform auth refused");
        let page = auth.text().await.expect("auth page");
        let (action, fields) = platform::parse_autopost(&page);
        let fields: Vec<(&str, &str)> = fields
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let path = action
            .strip_prefix(&gw.origin())
            .expect("form posts to the gateway");
        self.post_form(gw, path, &fields).await
    }

    /// GETs a gateway path.
    pub async fn get(&self, gw: &Gateway, path: &str) -> (u16, String) {
        let response = self.http.get(gw.url(path)).send().await.expect("get");
        let status = response.status().as_u16();
        (status, response.text().await.unwrap_or_default())
    }
}

/// Verifies an upstream assertion against the gateway's JWKS, fetched over
/// HTTP, as the LMS does, and returns its claims.
pub async fn verify_assertion(gw: &Gateway, token: &str) -> serde_json::Value {
    use jsonwebtoken::{Algorithm, DecodingKey, Validation};
    let jwks: serde_json::Value = reqwest::get(gw.url("/lti/1p3/pub/jwks/"))
        .await
        .expect("jwks")
        .json()
        .await
        .expect("jwks is JSON");
    let header = jsonwebtoken::decode_header(token).expect("a JWT header");
    assert_eq!(header.alg, Algorithm::RS256);
    let kid = header.kid.expect("the assertion names its kid");
    let jwk = jwks["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .find(|k| k["kid"] == kid.as_str())
        .unwrap_or_else(|| panic!("kid {kid} is not in the JWKS: {jwks}"));
    let key = DecodingKey::from_rsa_components(
        jwk["n"].as_str().expect("n"),
        jwk["e"].as_str().expect("e"),
    )
    .expect("an RSA key");
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_audience(&["openedx"]);
    validation.set_issuer(&[gw.origin()]);
    validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
    jsonwebtoken::decode::<serde_json::Value>(token, &key, &validation)
        .unwrap_or_else(|e| panic!("the assertion does not verify: {e}"))
        .claims
}

/// Logs in for `usage`, lets `edit` change the claims, signs and posts.
pub async fn launch_with(
    gw: &Gateway,
    platform: &TestPlatform,
    browser: &Browser,
    usage: &str,
    edit: impl FnOnce(&mut serde_json::Value),
) -> LaunchResult {
    let target = gw.target(usage);
    let auth = browser.login(gw, platform, &target).await;
    let mut claims = platform.claims(&auth, &target);
    edit(&mut claims);
    browser
        .post_launch(gw, &platform.sign(&claims), &auth.state)
        .await
}

/// Starts a login at `login_url` the way `Browser::launch` does: the
/// platform's convention carries the target in `lti_message_hint`.
pub async fn initiate_login(
    http: &reqwest::Client,
    login_url: &str,
    platform: &TestPlatform,
    target: &str,
) -> reqwest::Response {
    http.get(login_url)
        .query(&[
            ("iss", platform.issuer.as_str()),
            ("login_hint", "user-hint-1"),
            ("target_link_uri", target),
            ("lti_message_hint", target),
            ("client_id", platform.client_id.as_str()),
        ])
        .send()
        .await
        .expect("login")
}
