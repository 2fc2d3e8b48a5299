//! Sessions end and move: `__Host-` cookie names on HTTPS (and the move off
//! the plain name), logout (the gateway's session and the LMS's), and an
//! operator's revocation, through the real `ltigate` binary too.

mod support;

use ltigate::Namespace;
use support::*;

const PUBLIC: &str = "https://lti.example.test";
const TOKEN: &str = "test-internal-api-token-0123456789";

/// A free loopback port (for an internal API the CLI must find in the config).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

struct Setup {
    platform: TestPlatform,
    upstream: TestUpstream,
    gw: Gateway,
}

async fn setup(public_url: Option<&str>, extra: &str) -> Setup {
    let platform = TestPlatform::start().await;
    let upstream = TestUpstream::start().await;
    let gw = Gateway::start_with(
        &platform,
        GatewayOptions {
            upstream: Some(upstream.url()),
            public_url: public_url.map(str::to_owned),
            extra: extra.to_owned(),
            ..Default::default()
        },
    )
    .await;
    platform.set_tool_jwks_url(&gw.url("/lti/1p3/pub/jwks/"));
    Setup {
        platform,
        upstream,
        gw,
    }
}

fn set_cookies(r: &reqwest::Response) -> Vec<String> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok().map(str::to_owned))
        .collect()
}

/// The `name=value` pair of the first `Set-Cookie` starting with `prefix`.
fn pair(cookies: &[String], prefix: &str) -> String {
    cookies
        .iter()
        .find(|c| c.starts_with(prefix))
        .and_then(|c| c.split(';').next())
        .unwrap_or_else(|| panic!("no {prefix} cookie in {cookies:?}"))
        .to_owned()
}

/// A launch behind the https public URL, driven by hand (a `Secure` cookie
/// does not ride plain HTTP in a cookie jar). Returns the launch's cookies.
async fn https_launch(s: &Setup, http: &reqwest::Client, sub: &str) -> Vec<String> {
    let target = format!("{PUBLIC}{}", display_path(USAGE));
    let login = http
        .get(s.gw.url("/lti/1p3/login/"))
        .query(&[
            ("iss", s.platform.issuer.as_str()),
            ("login_hint", "h"),
            ("target_link_uri", target.as_str()),
            ("client_id", s.platform.client_id.as_str()),
        ])
        .send()
        .await
        .expect("login");
    assert_eq!(login.status(), 302);
    let login_cookies = set_cookies(&login);
    let state = login_cookies
        .iter()
        .find(|c| c.starts_with("__Host-ltigate_state_"))
        .unwrap_or_else(|| panic!("no __Host- state cookie: {login_cookies:?}"));
    assert!(
        state.contains("Path=/;") || state.ends_with("Path=/"),
        "{state}"
    );
    assert!(
        state.contains("Secure") && !state.contains("Domain"),
        "{state}"
    );
    let auth = s
        .platform
        .parse_auth_request(login.headers()["location"].to_str().expect("ascii"))
        .expect("auth");
    let mut claims = s.platform.claims(&auth, &target);
    claims["sub"] = sub.into();
    let launch = http
        .post(s.gw.url("/lti/1p3/launch/"))
        .header("cookie", pair(&login_cookies, "__Host-ltigate_state_"))
        .form(&[
            ("id_token", s.platform.sign(&claims).as_str()),
            ("state", auth.state.as_str()),
        ])
        .send()
        .await
        .expect("launch");
    assert_eq!(launch.status(), 302);
    set_cookies(&launch)
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

async fn get_with(s: &Setup, http: &reqwest::Client, cookie: &str) -> reqwest::Response {
    http.get(s.gw.url(&display_path(USAGE)))
        .header("cookie", cookie)
        .send()
        .await
        .expect("display")
}

/// Rewrites a stored session as an earlier version wrote it: without
/// `host_cookie` (its browser got the id under the plain name).
async fn make_it_a_pre_prefix_session(gw: &Gateway, id: &str) {
    let store = &gw.app.store;
    let bytes = store
        .get(Namespace::Session, id)
        .await
        .expect("get")
        .expect("a session");
    let mut session: serde_json::Value = serde_json::from_slice(&bytes).expect("json");
    let expires = session["expires_at"].as_u64().expect("expiry");
    session
        .as_object_mut()
        .expect("object")
        .remove("host_cookie")
        .expect("written by this version");
    store
        .put(
            Namespace::Session,
            id,
            serde_json::to_vec(&session).expect("json"),
            expires,
        )
        .await
        .expect("put");
}

#[tokio::test]
async fn https_session_cookies_are_host_prefixed_and_the_plain_name_is_refused_for_them() {
    let s = setup(Some(PUBLIC), "").await;
    let http = client();
    let cookies = https_launch(&s, &http, "learner-1").await;
    let session = cookies
        .iter()
        .find(|c| c.starts_with("__Host-ltigate_session="))
        .unwrap_or_else(|| panic!("no __Host- session cookie: {cookies:?}"));
    for attr in ["Secure", "HttpOnly", "SameSite=None", "Path=/"] {
        assert!(session.contains(attr), "{session} lacks {attr}");
    }
    assert!(!session.contains("Domain"), "{session}");
    assert!(
        !cookies.iter().any(|c| c.starts_with("ltigate_session=")),
        "{cookies:?}"
    );
    let current = pair(&cookies, "__Host-ltigate_session=");
    let id = current.split_once('=').expect("pair").1.to_owned();
    assert_eq!(get_with(&s, &http, &current).await.status(), 200);
    // The same id under the plain name, as a sibling host could toss it:
    // this session was never given out under that name.
    let tossed = get_with(&s, &http, &format!("ltigate_session={id}")).await;
    assert_eq!(tossed.status(), 401);
    assert!(
        tossed
            .text()
            .await
            .expect("body")
            .contains("session_expired")
    );
    // Beside the current cookie, a tossed plain one is not read.
    let both = get_with(
        &s,
        &http,
        &format!("ltigate_session=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA; {current}"),
    )
    .await;
    assert_eq!(both.status(), 200);
}

#[tokio::test]
async fn a_session_from_before_the_prefix_moves_to_the_host_prefixed_name() {
    let s = setup(Some(PUBLIC), "").await;
    let http = client();
    let cookies = https_launch(&s, &http, "learner-1").await;
    let current = pair(&cookies, "__Host-ltigate_session=");
    let id = current.split_once('=').expect("pair").1.to_owned();
    make_it_a_pre_prefix_session(&s.gw, &id).await;

    let old = format!("ltigate_session={id}");
    let r = get_with(&s, &http, &old).await;
    assert_eq!(r.status(), 200, "still accepted for the rest of its life");
    let moved = set_cookies(&r);
    let set = moved
        .iter()
        .find(|c| c.starts_with(&format!("__Host-ltigate_session={id};")))
        .unwrap_or_else(|| panic!("not re-set under the new name: {moved:?}"));
    assert!(
        !set.contains("Max-Age=0") && set.contains("Secure"),
        "{set}"
    );
    assert!(
        moved
            .iter()
            .any(|c| c.starts_with("ltigate_session=;") && c.contains("Max-Age=0")),
        "the plain name is not expired: {moved:?}"
    );
    // The browser now sends the new name; a relaunch marks the session as
    // given out under it, and the plain name stops working for it.
    assert_eq!(get_with(&s, &http, &set_pair(set)).await.status(), 200);
    let relaunch = https_relaunch_with(&s, &http, &old).await;
    assert_eq!(pair(&relaunch, "__Host-ltigate_session="), set_pair(set));
    assert_eq!(get_with(&s, &http, &old).await.status(), 401);
}

fn set_pair(set_cookie: &str) -> String {
    set_cookie.split(';').next().expect("pair").to_owned()
}

/// A relaunch of the same learner in a browser that sends `session_cookie`.
async fn https_relaunch_with(
    s: &Setup,
    http: &reqwest::Client,
    session_cookie: &str,
) -> Vec<String> {
    let target = format!("{PUBLIC}{}", display_path(USAGE));
    let login = http
        .get(s.gw.url("/lti/1p3/login/"))
        .query(&[
            ("iss", s.platform.issuer.as_str()),
            ("login_hint", "h"),
            ("target_link_uri", target.as_str()),
            ("client_id", s.platform.client_id.as_str()),
        ])
        .send()
        .await
        .expect("login");
    let login_cookies = set_cookies(&login);
    let auth = s
        .platform
        .parse_auth_request(login.headers()["location"].to_str().expect("ascii"))
        .expect("auth");
    let mut claims = s.platform.claims(&auth, &target);
    claims["sub"] = "learner-1".into();
    let launch = http
        .post(s.gw.url("/lti/1p3/launch/"))
        .header(
            "cookie",
            format!(
                "{}; {session_cookie}",
                pair(&login_cookies, "__Host-ltigate_state_")
            ),
        )
        .form(&[
            ("id_token", s.platform.sign(&claims).as_str()),
            ("state", auth.state.as_str()),
        ])
        .send()
        .await
        .expect("launch");
    assert_eq!(launch.status(), 302);
    let cookies = set_cookies(&launch);
    assert!(
        cookies
            .iter()
            .any(|c| c.starts_with("ltigate_session=;") && c.contains("Max-Age=0")),
        "the launch expires the plain name: {cookies:?}"
    );
    cookies
}

async fn logout(gw: &Gateway, browser: &Browser, origin: Option<&str>) -> reqwest::Response {
    let mut request = browser.http.post(gw.url("/lti/1p3/logout/"));
    if let Some(o) = origin {
        request = request.header("origin", o);
    }
    request.send().await.expect("logout")
}

#[tokio::test]
async fn logout_deletes_the_session_expires_the_cookies_and_ends_the_lms_session() {
    let s = setup(None, "").await;
    let browser = Browser::new();
    assert_eq!(browser.launch(&s.gw, &s.platform, USAGE).await.status, 302);
    assert_eq!(browser.get(&s.gw, &display_path(USAGE)).await.0, 200);
    assert_eq!(s.gw.session_count().await, 1);
    // The LMS session cookie the proxy gave the browser, renamed.
    let lms: url::Url = s.gw.url("/").parse().expect("url");
    browser
        .jar
        .add_cookie_str("lms.sessionid=lms-session-1; Path=/", &lms);
    let before = s.upstream.count();

    let r = logout(&s.gw, &browser, Some(&s.gw.origin())).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let cookies = set_cookies(&r);
    let page = r.text().await.expect("page");
    assert!(page.contains("signed out"), "{page}");
    assert_eq!(s.gw.session_count().await, 0, "deleted from the store");
    for name in ["ltigate_session=", "lms.sessionid="] {
        assert!(
            cookies
                .iter()
                .any(|c| c.starts_with(name) && c.contains("Max-Age=0")),
            "{name} not expired: {cookies:?}"
        );
    }
    // The LMS half: the LMS app's logout view, with the browser's LMS
    // cookie and a logout assertion for the learner.
    assert_eq!(s.upstream.count(), before + 1);
    let seen = s.upstream.last();
    assert_eq!(
        (seen.method.as_str(), seen.target.as_str()),
        ("POST", "/ltigate/logout")
    );
    assert_eq!(seen.header("cookie"), Some("sessionid=lms-session-1"));
    let claims = verify_assertion(
        &s.gw,
        seen.header("x-ltigate-assertion").expect("an assertion"),
    )
    .await;
    assert_eq!(claims["ltigate_logout"], true);
    assert_eq!(claims["lti"]["sub"], "learner-1");
    // The content is closed to this browser now.
    assert_eq!(browser.get(&s.gw, &display_path(USAGE)).await.0, 401);
}

#[tokio::test]
async fn an_ordinary_gated_assertion_never_carries_the_logout_claim() {
    let s = setup(None, "").await;
    let browser = Browser::new();
    assert_eq!(browser.launch(&s.gw, &s.platform, USAGE).await.status, 302);
    assert_eq!(browser.get(&s.gw, &display_path(USAGE)).await.0, 200);
    let seen = s.upstream.last();
    let claims = verify_assertion(
        &s.gw,
        seen.header("x-ltigate-assertion").expect("assertion"),
    )
    .await;
    assert!(claims.get("ltigate_logout").is_none(), "{claims}");
}

#[tokio::test]
async fn logout_from_another_site_or_by_get_is_refused_and_the_session_stays() {
    let s = setup(None, "").await;
    let browser = Browser::new();
    assert_eq!(browser.launch(&s.gw, &s.platform, USAGE).await.status, 302);
    let before = s.upstream.count();
    for origin in [Some("https://evil.example"), Some("null"), None] {
        let r = logout(&s.gw, &browser, origin).await;
        assert_eq!(r.status(), 403, "{origin:?}");
        assert!(set_cookies(&r).is_empty(), "{origin:?}");
        let page = r.text().await.expect("page");
        assert!(
            page.contains("logout_cross_site") && page.contains("request <code>"),
            "{page}"
        );
    }
    let same_origin_fetch = browser
        .http
        .post(s.gw.url("/lti/1p3/logout/"))
        .header("sec-fetch-site", "cross-site")
        .send()
        .await
        .expect("logout");
    assert_eq!(same_origin_fetch.status(), 403);
    let get = browser
        .http
        .get(s.gw.url("/lti/1p3/logout/"))
        .send()
        .await
        .expect("get");
    assert_eq!(get.status(), 405);
    assert_eq!(s.gw.session_count().await, 1);
    assert_eq!(s.upstream.count(), before, "nothing reached the LMS");
    assert_eq!(browser.get(&s.gw, &display_path(USAGE)).await.0, 200);
    // Without Origin, a same-origin fetch says so.
    let r = browser
        .http
        .post(s.gw.url("/lti/1p3/logout/"))
        .header("sec-fetch-site", "same-origin")
        .send()
        .await
        .expect("logout");
    assert_eq!(r.status(), 200);
    assert_eq!(s.gw.session_count().await, 0);
}

#[tokio::test]
async fn logout_without_a_session_still_answers_signed_out() {
    let s = setup(None, "").await;
    let browser = Browser::new();
    let before = s.upstream.count();
    let r = logout(&s.gw, &browser, Some(&s.gw.origin())).await;
    assert_eq!(r.status(), 200);
    assert_eq!(s.upstream.count(), before, "no session: no LMS logout");
}

fn internal_api(port: u16) -> String {
    format!("[grades]\nlisten = \"127.0.0.1:{port}\"\ntoken = \"{TOKEN}\"\n")
}

async fn revoke(s: &Setup, query: &str) -> (u16, serde_json::Value) {
    let port = s.gw.grades_url();
    let r = reqwest::Client::new()
        .post(format!("{port}/sessions/revoke?{query}"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("revoke");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or_default())
}

async fn launched_as(s: &Setup, sub: &str) -> Browser {
    let browser = Browser::new();
    let r = launch_with(&s.gw, &s.platform, &browser, USAGE, |c| {
        c["sub"] = sub.into();
    })
    .await;
    assert_eq!(r.status, 302, "{}", r.body);
    assert_eq!(browser.get(&s.gw, &display_path(USAGE)).await.0, 200);
    browser
}

#[tokio::test]
async fn revoking_a_learner_ends_their_sessions_at_once_and_a_relaunch_works() {
    let s = setup(None, &internal_api(0)).await;
    let (alice, alice_2, bob) = (
        launched_as(&s, "alice").await,
        launched_as(&s, "alice").await,
        launched_as(&s, "bob").await,
    );
    let query = format!(
        "issuer={}&client_id={}&sub=alice",
        s.platform.issuer, s.platform.client_id
    );
    let (status, body) = revoke(&s, &query).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["revoked"], "user");
    // At once, although both reads were cached a moment ago.
    for b in [&alice, &alice_2] {
        let (status, page) = b.get(&s.gw, &display_path(USAGE)).await;
        assert_eq!(status, 401, "{page}");
        assert!(page.contains("session_expired"), "{page}");
    }
    assert_eq!(bob.get(&s.gw, &display_path(USAGE)).await.0, 200);
    // A relaunch, in the same second, starts a new session that works; the
    // revoked one is not extended.
    let r = launch_with(&s.gw, &s.platform, &alice, USAGE, |c| {
        c["sub"] = "alice".into();
    })
    .await;
    assert_eq!(r.status, 302);
    assert_eq!(alice.get(&s.gw, &display_path(USAGE)).await.0, 200);
    // Another replica over the same store, with no cached read: refused too.
    assert_eq!(alice_2.get(&s.gw, &display_path(USAGE)).await.0, 401);
}

#[tokio::test]
async fn revoking_a_registration_ends_every_learners_session() {
    let s = setup(None, &internal_api(0)).await;
    let (alice, bob) = (launched_as(&s, "alice").await, launched_as(&s, "bob").await);
    let query = format!(
        "issuer={}&client_id={}",
        s.platform.issuer, s.platform.client_id
    );
    let (status, body) = revoke(&s, &query).await;
    assert_eq!(
        (status, body["revoked"].as_str()),
        (200, Some("registration"))
    );
    for b in [&alice, &bob] {
        assert_eq!(b.get(&s.gw, &display_path(USAGE)).await.0, 401);
    }
    // Time passes: a revoked session never comes back, new ones work.
    s.gw.clock.advance(120);
    assert_eq!(alice.get(&s.gw, &display_path(USAGE)).await.0, 401);
    let carol = launched_as(&s, "carol").await;
    assert_eq!(carol.get(&s.gw, &display_path(USAGE)).await.0, 200);
}

#[tokio::test]
async fn revocation_refuses_unknown_registrations_missing_fields_and_bad_tokens() {
    let s = setup(None, &internal_api(0)).await;
    let (status, body) = revoke(&s, "issuer=https%3A%2F%2Fnope&client_id=x").await;
    assert_eq!(
        (status, body["error"].as_str().is_some()),
        (404, true),
        "{body}"
    );
    assert_eq!(body["field"], "client_id");
    let (status, body) = revoke(&s, "client_id=x").await;
    assert_eq!(
        (status, body["field"].as_str()),
        (400, Some("issuer")),
        "{body}"
    );
    let (status, _) = revoke(
        &s,
        &format!(
            "issuer={}&client_id={}&sub=",
            s.platform.issuer, s.platform.client_id
        ),
    )
    .await;
    assert_eq!(status, 400);
    let r = reqwest::Client::new()
        .post(format!("{}/sessions/revoke?client_id=x", s.gw.grades_url()))
        .bearer_auth("wrong")
        .send()
        .await
        .expect("revoke");
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn ltigate_sessions_revoke_asks_the_running_gateway() {
    let port = free_port();
    let s = setup(None, &internal_api(port)).await;
    let alice = launched_as(&s, "alice").await;
    let bob = launched_as(&s, "bob").await;
    let config = s.gw.dir.path().join("gateway.toml");
    let (issuer, client_id) = (s.platform.issuer.clone(), s.platform.client_id.clone());
    let run = move |args: Vec<String>| {
        let config = config.clone();
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_ltigate"))
                .args(&args)
                .arg("--config")
                .arg(&config)
                .env_remove("LTIGATE_CONFIG")
                .output()
                .expect("run ltigate")
        })
    };
    let out = run(vec![
        "sessions".into(),
        "revoke".into(),
        "--user".into(),
        issuer.clone(),
        client_id.clone(),
        "alice".into(),
    ])
    .await
    .expect("join");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("Revoked the sessions of learner \"alice\""),
        "{stdout}"
    );
    assert_eq!(alice.get(&s.gw, &display_path(USAGE)).await.0, 401);
    assert_eq!(bob.get(&s.gw, &display_path(USAGE)).await.0, 200);

    let out = run(vec![
        "sessions".into(),
        "revoke".into(),
        "--registration".into(),
        issuer.clone(),
        client_id.clone(),
    ])
    .await
    .expect("join");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(bob.get(&s.gw, &display_path(USAGE)).await.0, 401);

    let out = run(vec![
        "sessions".into(),
        "revoke".into(),
        "--registration".into(),
        "https://nope.example".into(),
        client_id,
    ])
    .await
    .expect("join");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("no_such_registration") || stderr.contains("no [[platforms]]"),
        "{stderr}"
    );
}
