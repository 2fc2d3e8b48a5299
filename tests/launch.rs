//! End-to-end launches through a real gateway and a real test platform:
//! the happy path, login errors, launch attacks, target attacks, the launch
//! gate, and what the display path does with grants.

mod support;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use support::platform::SigningKey;
use support::*;

const TARGET: &str = "https://purl.imsglobal.org/spec/lti/claim/target_link_uri";
const DEPLOYMENT: &str = "https://purl.imsglobal.org/spec/lti/claim/deployment_id";

async fn start() -> (TestPlatform, Gateway, Browser) {
    let platform = TestPlatform::start().await;
    let gw = Gateway::start(&platform).await;
    (platform, gw, Browser::new())
}

/// Sends a raw HTTP/1.1 GET (the path exactly as given) with the browser's cookies.
async fn raw_get(gw: &Gateway, browser: &Browser, path: &str) -> u16 {
    use reqwest::cookie::CookieStore as _;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let url = reqwest::Url::parse(&gw.url("/")).expect("url");
    let cookie = browser
        .jar
        .cookies(&url)
        .map(|c| c.to_str().expect("ascii").to_owned())
        .unwrap_or_default();
    let mut stream = tokio::net::TcpStream::connect(gw.addr)
        .await
        .expect("connect");
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {}\r\nCookie: {cookie}\r\nConnection: close\r\n\r\n",
        gw.addr
    );
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response).await;
    let response = String::from_utf8_lossy(&response);
    response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line for {path}: {response:?}"))
}

// ---------------------------------------------------------------- happy path

#[tokio::test]
async fn full_launch_reaches_the_display_path() {
    let (platform, gw, browser) = start().await;
    let result = browser.launch(&gw, &platform, USAGE).await;
    assert_eq!(result.status, 302, "{}", result.body);
    assert_eq!(result.location.as_deref(), Some(gw.target(USAGE).as_str()));
    assert!(result.set_session());
    let cleared_state = result
        .set_cookies
        .iter()
        .any(|c| c.starts_with("ltigate_state_") && c.contains("Max-Age=0"));
    assert!(
        cleared_state,
        "the state cookie is cleared: {:?}",
        result.set_cookies
    );
    let (status, body) = browser.get(&gw, &display_path(USAGE)).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(USAGE));
    assert_eq!(gw.session_count().await, 1);
    assert_eq!(
        gw.login_state_count().await,
        0,
        "the login state is consumed"
    );
}

#[tokio::test]
async fn login_sends_every_oidc_parameter_and_binds_state() {
    let (platform, gw, browser) = start().await;
    let target = gw.target(USAGE);
    let response = browser
        .http
        .post(gw.url("/lti/1p3/login/"))
        .form(&[
            ("iss", platform.issuer.as_str()),
            ("login_hint", "hint-42"),
            ("target_link_uri", target.as_str()),
            ("lti_message_hint", "m-7"),
            ("client_id", platform.client_id.as_str()),
            ("deployment_id", platform.deployment_id.as_str()),
        ])
        .send()
        .await
        .expect("login");
    assert_eq!(response.status(), 302);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let cookie = response.headers()["set-cookie"]
        .to_str()
        .expect("ascii")
        .to_owned();
    let location = response.headers()["location"]
        .to_str()
        .expect("ascii")
        .to_owned();
    let auth = platform
        .parse_auth_request(&location)
        .expect("valid auth request");
    assert_eq!(auth.params["login_hint"], "hint-42");
    assert_eq!(auth.params["lti_message_hint"], "m-7");
    assert_eq!(auth.redirect_uri, gw.url("/lti/1p3/launch/"));
    assert!(
        auth.state.len() >= 22 && auth.nonce.len() >= 22,
        "128 bits or more"
    );
    assert_ne!(auth.state, auth.nonce);
    assert!(cookie.starts_with(&format!("ltigate_state_{}={}", auth.state, auth.state)));
    assert!(cookie.contains("HttpOnly") && cookie.contains("Path=/"));
    assert_eq!(gw.login_state_count().await, 1);
}

#[tokio::test]
async fn https_cookies_are_secure_samesite_none_and_partitioned() {
    let platform = TestPlatform::start().await;
    let gw = Gateway::start_with(
        &platform,
        GatewayOptions {
            public_url: Some("https://lti.example.test".into()),
            ..Default::default()
        },
    )
    .await;
    let target = format!("https://lti.example.test{}", display_path(USAGE));
    let response = Browser::new()
        .http
        .get(gw.url("/lti/1p3/login/"))
        .query(&[
            ("iss", platform.issuer.as_str()),
            ("login_hint", "h"),
            ("target_link_uri", target.as_str()),
        ])
        .send()
        .await
        .expect("login");
    assert_eq!(response.status(), 302);
    let cookie = response.headers()["set-cookie"].to_str().expect("ascii");
    for attr in ["Secure", "HttpOnly", "SameSite=None", "Partitioned"] {
        assert!(cookie.contains(attr), "{cookie} lacks {attr}");
    }
    let location = response.headers()["location"].to_str().expect("ascii");
    let auth = platform.parse_auth_request(location).expect("auth");
    assert_eq!(
        auth.redirect_uri,
        "https://lti.example.test/lti/1p3/launch/"
    );
}

#[tokio::test]
async fn one_session_holds_grants_for_several_targets() {
    let (platform, gw, browser) = start().await;
    assert_eq!(browser.launch(&gw, &platform, USAGE).await.status, 302);
    assert_eq!(browser.launch(&gw, &platform, USAGE_2).await.status, 302);
    assert_eq!(browser.get(&gw, &display_path(USAGE)).await.0, 200);
    assert_eq!(browser.get(&gw, &display_path(USAGE_2)).await.0, 200);
    assert_eq!(
        gw.session_count().await,
        1,
        "the second launch extended the session"
    );
}

#[tokio::test]
async fn concurrent_launches_in_one_browser_keep_both_grants() {
    let (platform, gw, browser) = start().await;
    assert_eq!(browser.launch(&gw, &platform, USAGE).await.status, 302);
    // Two iframes on one page: two logins, then both launches at once.
    let t1 = gw.target(USAGE);
    let t2 = gw.target(USAGE_2);
    let a1 = browser.login(&gw, &platform, &t1).await;
    let a2 = browser.login(&gw, &platform, &t2).await;
    let j1 = platform.sign(&platform.claims(&a1, &t1));
    let j2 = platform.sign(&platform.claims(&a2, &t2));
    let (r1, r2) = tokio::join!(
        browser.post_launch(&gw, &j1, &a1.state),
        browser.post_launch(&gw, &j2, &a2.state)
    );
    assert_eq!((r1.status.as_u16(), r2.status.as_u16()), (302, 302));
    assert_eq!(browser.get(&gw, &display_path(USAGE)).await.0, 200);
    assert_eq!(browser.get(&gw, &display_path(USAGE_2)).await.0, 200);
}

#[tokio::test]
async fn another_user_in_the_same_browser_gets_a_new_session() {
    let (platform, gw, browser) = start().await;
    assert_eq!(browser.launch(&gw, &platform, USAGE).await.status, 302);
    let r = launch_with(&gw, &platform, &browser, USAGE_2, |c| {
        c["sub"] = json!("someone-else")
    })
    .await;
    assert_eq!(r.status, 302);
    assert_eq!(gw.session_count().await, 2);
    assert_eq!(browser.get(&gw, &display_path(USAGE_2)).await.0, 200);
    assert_eq!(
        browser.get(&gw, &display_path(USAGE)).await.0,
        403,
        "the first user's grant does not carry over to the second user"
    );
}

// ---------------------------------------------------------------- login errors

#[tokio::test]
async fn login_errors_are_named() {
    let (platform, gw, browser) = start().await;
    let target = gw.target(USAGE);
    let login = |params: Vec<(&'static str, String)>| {
        let browser = browser.clone();
        let url = gw.url("/lti/1p3/login/");
        async move {
            let r = browser
                .http
                .get(url)
                .query(&params)
                .send()
                .await
                .expect("login");
            (r.status().as_u16(), r.text().await.expect("body"))
        }
    };
    let base = vec![
        ("iss", platform.issuer.clone()),
        ("login_hint", "h".to_owned()),
        ("target_link_uri", target.clone()),
    ];
    let without = |name: &str| {
        base.iter()
            .filter(|(k, _)| *k != name)
            .cloned()
            .collect::<Vec<_>>()
    };
    let with = |name: &'static str, value: &str| {
        let mut p = without(name);
        p.push((name, value.to_owned()));
        p
    };
    for missing in ["iss", "login_hint", "target_link_uri"] {
        let (status, body) = login(without(missing)).await;
        assert_eq!(status, 400, "{missing}");
        assert!(
            body.contains("login_missing_param") && body.contains(missing),
            "{body}"
        );
    }
    let (status, body) = login(with("iss", "https://unknown.test")).await;
    assert!(status == 400 && body.contains("unknown_platform"), "{body}");
    let (status, body) = login(with("client_id", "nope")).await;
    assert!(status == 400 && body.contains("unknown_platform"), "{body}");
    let mut p = base.clone();
    p.push(("lti_deployment_id", "other-deployment".into()));
    let (status, body) = login(p).await;
    assert!(
        status == 400 && body.contains("unknown_deployment"),
        "{body}"
    );
    let mut p = base.clone();
    p.push(("iss", platform.issuer.clone()));
    let (status, body) = login(p).await;
    assert!(
        status == 400 && body.contains("login_duplicate_param"),
        "{body}"
    );
    let (status, body) = login(with(
        "target_link_uri",
        "https://evil.example.com/lti/1p3/launch/course-v1:A+B+C/block-v1:A+B+C+type@html+block@x",
    ))
    .await;
    assert!(
        status == 400 && body.contains("target_misconfigured") && body.contains("evil.example.com"),
        "{body}"
    );
    let (status, body) = login(with("target_link_uri", &gw.url("/lti/1p3/login/"))).await;
    assert!(status == 400 && body.contains("login endpoint"), "{body}");
    let (status, body) = login(with("target_link_uri", &gw.url("/courses/whatever"))).await;
    assert!(
        status == 400 && body.contains("target_misconfigured"),
        "{body}"
    );
    assert!(!body.contains("<script"), "pages carry no script");
    // A target whose block id is long enough to make a login state costly.
    let long = format!("{target}{}", "x".repeat(2048));
    let (status, body) = login(with("target_link_uri", &long)).await;
    assert!(
        status == 400 && body.contains("target_misconfigured") && body.contains("2048 bytes"),
        "{body}"
    );
    assert_eq!(
        gw.login_state_count().await,
        0,
        "a refused login stores nothing"
    );
}

#[tokio::test]
async fn registrations_are_keyed_by_issuer_and_client_id() {
    let platform = TestPlatform::start().await;
    let second = format!(
        r#"
[[platforms]]
issuer = "{issuer}"
client_id = "client-2"
auth_login_url = "{base}/auth"
auth_token_url = "{base}/token"
key_set_url = "{base}/jwks"
key = "tool-1"
deployment_ids = ["deploy-1"]

[[platforms]]
issuer = "https://inactive.test"
client_id = "c"
active = false
auth_login_url = "{base}/auth"
auth_token_url = "{base}/token"
key_set_url = "{base}/jwks"
key = "tool-1"
deployment_ids = ["d"]
"#,
        issuer = platform.issuer,
        base = platform.base_url()
    );
    let gw = Gateway::start_with(
        &platform,
        GatewayOptions {
            extra: second,
            ..Default::default()
        },
    )
    .await;
    let browser = Browser::new();
    let target = gw.target(USAGE);
    let get = |params: Vec<(&str, &str)>| {
        let req = browser.http.get(gw.url("/lti/1p3/login/")).query(&params);
        async move {
            let r = req.send().await.expect("login");
            (r.status().as_u16(), r.text().await.expect("body"))
        }
    };
    let (status, body) = get(vec![
        ("iss", &platform.issuer),
        ("login_hint", "h"),
        ("target_link_uri", &target),
    ])
    .await;
    assert!(
        status == 400 && body.contains("ambiguous_platform") && body.contains("client_id"),
        "{body}"
    );
    let (status, _) = get(vec![
        ("iss", &platform.issuer),
        ("login_hint", "h"),
        ("target_link_uri", &target),
        ("client_id", "client-2"),
    ])
    .await;
    assert_eq!(status, 302);
    let (status, body) = get(vec![
        ("iss", "https://inactive.test"),
        ("login_hint", "h"),
        ("target_link_uri", &target),
    ])
    .await;
    assert!(
        status == 403 && body.contains("platform_inactive"),
        "{body}"
    );
}

#[tokio::test]
async fn get_on_launch_is_405_with_an_explanation() {
    let (_platform, gw, browser) = start().await;
    let response = browser
        .http
        .get(gw.url("/lti/1p3/launch/"))
        .send()
        .await
        .expect("get");
    assert_eq!(response.status(), 405);
    assert_eq!(response.headers()["allow"], "POST");
    let body = response.text().await.expect("body");
    assert!(body.contains("cannot be opened directly"), "{body}");
}

#[tokio::test]
async fn platform_error_and_missing_fields() {
    let (_platform, gw, browser) = start().await;
    let r = browser
        .post_form(
            &gw,
            "/lti/1p3/launch/",
            &[("error", "login_required"), ("state", "x")],
        )
        .await;
    r.assert_rejected(400, "platform_error");
    let r = browser
        .post_form(&gw, "/lti/1p3/launch/", &[("state", "x")])
        .await;
    r.assert_rejected(400, "missing_field");
    let r = browser
        .post_form(
            &gw,
            "/lti/1p3/launch/",
            &[("id_token", "a.b.c"), ("state", "not-a-real-state")],
        )
        .await;
    r.assert_rejected(400, "state_unknown");
}

// ---------------------------------------------------------------- launch attacks

#[tokio::test]
async fn replayed_id_token_is_refused() {
    let (platform, gw, browser) = start().await;
    let target = gw.target(USAGE);
    let auth = browser.login(&gw, &platform, &target).await;
    let token = platform.sign(&platform.claims(&auth, &target));
    assert_eq!(
        browser.post_launch(&gw, &token, &auth.state).await.status,
        302
    );
    let sessions = gw.session_count().await;

    // Same token, same state: the cookie is gone, and so is the state.
    browser
        .post_launch(&gw, &token, &auth.state)
        .await
        .assert_rejected(400, "state_cookie_missing");
    let url = reqwest::Url::parse(&gw.url("/")).expect("url");
    browser.jar.add_cookie_str(
        &format!(
            "ltigate_state_{}={}; Path=/lti/1p3/",
            auth.state, auth.state
        ),
        &url,
    );
    browser
        .post_launch(&gw, &token, &auth.state)
        .await
        .assert_rejected(400, "state_unknown");

    // Same token with a fresh state: the nonce belongs to the old login.
    let fresh = browser.login(&gw, &platform, &target).await;
    browser
        .post_launch(&gw, &token, &fresh.state)
        .await
        .assert_rejected(400, "nonce_mismatch");
    assert_eq!(gw.session_count().await, sessions);
}

#[tokio::test]
async fn state_from_another_browser_is_refused_without_burning_it() {
    let (platform, gw, victim) = start().await;
    let attacker = Browser::new();
    let target = gw.target(USAGE);
    let auth = victim.login(&gw, &platform, &target).await;
    let token = platform.sign(&platform.claims(&auth, &target));
    attacker
        .post_launch(&gw, &token, &auth.state)
        .await
        .assert_rejected(400, "state_cookie_missing");
    assert_eq!(gw.session_count().await, 0);
    assert_eq!(
        victim.post_launch(&gw, &token, &auth.state).await.status,
        302
    );
}

#[tokio::test]
async fn forged_algorithms_are_refused() {
    let (platform, gw, browser) = start().await;
    let target = gw.target(USAGE);
    let kid = platform.active_key().kid.clone();

    // alg: none, no signature.
    let auth = browser.login(&gw, &platform, &target).await;
    let claims = platform.claims(&auth, &target);
    let b64 = |v: &Value| {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "kid": kid})),
        b64(&claims)
    );
    browser
        .post_launch(&gw, &none, &auth.state)
        .await
        .assert_rejected(400, "unsupported_algorithm");

    // HS256 keyed with the platform's public key (key confusion).
    let auth = browser.login(&gw, &platform, &target).await;
    let claims = platform.claims(&auth, &target);
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(kid.clone());
    let secret = EncodingKey::from_secret(platform.active_key().public_pem.as_bytes());
    let hs = jsonwebtoken::encode(&header, &claims, &secret).expect("hs256");
    browser
        .post_launch(&gw, &hs, &auth.state)
        .await
        .assert_rejected(400, "unsupported_algorithm");

    // A valid RS256 header over a tampered payload.
    let auth = browser.login(&gw, &platform, &target).await;
    let good = platform.sign(&platform.claims(&auth, &target));
    let mut parts: Vec<String> = good.split('.').map(str::to_owned).collect();
    let mut tampered = platform.claims(&auth, &target);
    tampered["sub"] = json!("admin");
    parts[1] = b64(&tampered);
    browser
        .post_launch(&gw, &parts.join("."), &auth.state)
        .await
        .assert_rejected(400, "bad_signature");
    assert_eq!(gw.session_count().await, 0);
}

#[tokio::test]
async fn claim_attacks_are_refused_with_their_reason() {
    let (platform, gw, browser) = start().await;
    type Edit = Box<dyn FnOnce(&mut Value)>;
    let cases: Vec<(&str, Edit)> = vec![
        (
            "wrong_issuer",
            Box::new(|c| c["iss"] = json!("https://evil.test")),
        ),
        (
            "wrong_audience",
            Box::new(|c| c["aud"] = json!("other-client")),
        ),
        (
            "missing_azp",
            Box::new(|c| c["aud"] = json!(["client-1", "other"])),
        ),
        (
            "wrong_azp",
            Box::new(|c| {
                c["aud"] = json!(["client-1", "other"]);
                c["azp"] = json!("other");
            }),
        ),
        (
            "unknown_deployment",
            Box::new(|c| c[DEPLOYMENT] = json!("deploy-2")),
        ),
        (
            "expired",
            Box::new(|c| {
                let now = c["iat"].as_u64().expect("iat");
                c["iat"] = json!(now - 600);
                c["exp"] = json!(now - 300);
            }),
        ),
        (
            "issued_in_future",
            Box::new(|c| {
                let now = c["iat"].as_u64().expect("iat");
                c["iat"] = json!(now + 600);
                c["exp"] = json!(now + 900);
            }),
        ),
        (
            "not_yet_valid",
            Box::new(|c| {
                let now = c["iat"].as_u64().expect("iat");
                c["nbf"] = json!(now + 600);
            }),
        ),
        (
            "nonce_mismatch",
            Box::new(|c| c["nonce"] = json!("forged-nonce")),
        ),
        (
            "missing_time",
            Box::new(|c| {
                c.as_object_mut().expect("object").remove("exp");
            }),
        ),
        (
            "unsupported_message_type",
            Box::new(|c| {
                c["https://purl.imsglobal.org/spec/lti/claim/message_type"] =
                    json!("LtiSubmissionReviewRequest")
            }),
        ),
    ];
    for (reason, edit) in cases {
        let r = launch_with(&gw, &platform, &browser, USAGE, edit).await;
        r.assert_rejected(400, reason);
        assert_eq!(gw.session_count().await, 0, "{reason} left a session");
    }
}

#[tokio::test]
async fn multiple_audiences_with_matching_azp_and_small_clock_skew_pass() {
    let (platform, gw, browser) = start().await;
    let r = launch_with(&gw, &platform, &browser, USAGE, |c| {
        c["aud"] = json!(["other", "client-1"]);
        c["azp"] = json!("client-1");
        // Platform clock 3 s ahead, within the 5 s leeway.
        let now = c["iat"].as_u64().expect("iat");
        c["iat"] = json!(now + 3);
        c["nbf"] = json!(now + 3);
    })
    .await;
    assert_eq!(r.status, 302, "{}", r.body);
}

#[tokio::test]
async fn deep_linking_without_configuration_gets_a_clear_400() {
    let (platform, gw, browser) = start().await;
    let target = gw.url("/lti/1p3/launch/");
    let auth = browser.login(&gw, &platform, &target).await;
    let mut claims = platform.claims(&auth, &target);
    claims["https://purl.imsglobal.org/spec/lti/claim/message_type"] =
        json!("LtiDeepLinkingRequest");
    claims["https://purl.imsglobal.org/spec/lti-dl/claim/deep_linking_settings"] = json!({"deep_link_return_url": "https://platform.test/dl", "accept_types": ["ltiResourceLink"]});
    let r = browser
        .post_launch(&gw, &platform.sign(&claims), &auth.state)
        .await;
    r.assert_rejected(400, "deep_linking_not_configured");
    assert_eq!(gw.session_count().await, 0);
}

#[tokio::test]
async fn unknown_kid_refetches_once_then_is_rate_limited() {
    let (platform, gw, browser) = start().await;
    assert_eq!(browser.launch(&gw, &platform, USAGE).await.status, 302);
    assert_eq!(platform.jwks_fetches(), 1);

    // Key rotation: the new kid triggers one refetch and the launch passes.
    platform.rotate_key("platform-key-2");
    assert_eq!(browser.launch(&gw, &platform, USAGE_2).await.status, 302);
    assert_eq!(platform.jwks_fetches(), 2);

    // A kid the platform never published: refused, and no new fetch within
    // the refetch interval however many tokens arrive.
    let rogue = SigningKey::generate("rogue-kid");
    for _ in 0..3 {
        let target = gw.target(USAGE);
        let auth = browser.login(&gw, &platform, &target).await;
        let token = rogue.sign(&platform.claims(&auth, &target));
        browser
            .post_launch(&gw, &token, &auth.state)
            .await
            .assert_rejected(400, "unknown_kid");
    }
    assert_eq!(
        platform.jwks_fetches(),
        2,
        "unknown-kid refetches are rate-limited"
    );
}

#[tokio::test]
async fn login_state_expires() {
    let (platform, gw, browser) = start().await;
    let target = gw.target(USAGE);
    let auth = browser.login(&gw, &platform, &target).await;
    let token = platform.sign(&platform.claims(&auth, &target));
    gw.clock.advance(601);
    browser
        .post_launch(&gw, &token, &auth.state)
        .await
        .assert_rejected(400, "state_unknown");
}

// ---------------------------------------------------------------- target attacks

#[tokio::test]
async fn target_attacks_are_refused() {
    let (platform, gw, browser) = start().await;
    // Launch claims a foreign target.
    let r = launch_with(&gw, &platform, &browser, USAGE, |c| {
        c[TARGET] = json!(format!("https://evil.example.com{}", display_path(USAGE)))
    })
    .await;
    r.assert_rejected(400, "target_misconfigured");
    assert!(
        r.body.contains("evil.example.com"),
        "the page says which host is wrong"
    );

    // Target at the launch endpoint.
    let launch_url = gw.url("/lti/1p3/launch/");
    let auth = browser.login(&gw, &platform, &launch_url).await;
    let claims = platform.claims(&auth, &launch_url);
    let r = browser
        .post_launch(&gw, &platform.sign(&claims), &auth.state)
        .await;
    r.assert_rejected(400, "target_misconfigured");
    assert!(r.body.contains("launch endpoint"), "{}", r.body);

    // A different target than at login.
    let r = launch_with(&gw, &platform, &browser, USAGE, |c| {
        c[TARGET] = json!(gw.target(USAGE_2))
    })
    .await;
    r.assert_rejected(400, "target_mismatch");
    assert_eq!(gw.session_count().await, 0);
}

#[tokio::test]
async fn launch_gate_refuses_outside_content() {
    let platform = TestPlatform::start().await;
    let gw = Gateway::start_with(
        &platform,
        GatewayOptions {
            platform_extra: format!(
                "[platforms.gate]\nallowed_courses = [\"{COURSE}\"]\nblock_filter = [\"html\"]\n"
            ),
            ..Default::default()
        },
    )
    .await;
    let browser = Browser::new();
    let response = browser
        .http
        .get(gw.url("/lti/1p3/login/"))
        .query(&[
            ("iss", platform.issuer.as_str()),
            ("login_hint", "h"),
            ("target_link_uri", gw.target(USAGE).as_str()),
        ])
        .send()
        .await
        .expect("login");
    assert_eq!(response.status(), 403);
    let body = response.text().await.expect("body");
    assert!(
        body.contains("launch_gate") && body.contains("problem"),
        "{body}"
    );
    let other = "block-v1:OrgY+X+Y+type@html+block@h";
    let response = browser
        .http
        .get(gw.url("/lti/1p3/login/"))
        .query(&[
            ("iss", platform.issuer.as_str()),
            ("login_hint", "h"),
            (
                "target_link_uri",
                gw.url(&format!("/lti/1p3/launch/course-v1:OrgY+X+Y/{other}"))
                    .as_str(),
            ),
        ])
        .send()
        .await
        .expect("login");
    assert_eq!(response.status(), 403);
    assert_eq!(gw.login_state_count().await, 0);
    assert_eq!(
        browser.launch(&gw, &platform, USAGE_2).await.status,
        302,
        "html in the course passes"
    );
    assert_eq!(gw.session_count().await, 1);
}

// ---------------------------------------------------------------- display path

#[tokio::test]
async fn display_without_a_session_is_401() {
    let (_platform, gw, browser) = start().await;
    let (status, body) = browser.get(&gw, &display_path(USAGE)).await;
    assert_eq!(status, 401);
    assert!(
        body.contains("no_session") && body.contains("course"),
        "{body}"
    );
    let url = reqwest::Url::parse(&gw.url("/")).expect("url");
    browser.jar.add_cookie_str(
        "ltigate_session=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA; Path=/",
        &url,
    );
    let (status, body) = browser.get(&gw, &display_path(USAGE)).await;
    assert_eq!(status, 401);
    assert!(
        body.contains("session_expired") && body.contains("relaunch"),
        "{body}"
    );
}

#[tokio::test]
async fn grants_expire_with_access_length() {
    let platform = TestPlatform::start().await;
    let gw = Gateway::start_with(
        &platform,
        GatewayOptions {
            session: "access_length_sec = 60\nlifetime_sec = 3600".into(),
            ..Default::default()
        },
    )
    .await;
    let browser = Browser::new();
    assert_eq!(browser.launch(&gw, &platform, USAGE).await.status, 302);
    assert_eq!(browser.get(&gw, &display_path(USAGE)).await.0, 200);
    gw.clock.advance(30);
    assert_eq!(browser.get(&gw, &display_path(USAGE)).await.0, 200);
    gw.clock.advance(31);
    let (status, body) = browser.get(&gw, &display_path(USAGE)).await;
    assert_eq!(status, 401);
    assert!(
        body.contains("grant_expired") && body.contains("relaunch"),
        "{body}"
    );
    // A relaunch grants again.
    assert_eq!(browser.launch(&gw, &platform, USAGE).await.status, 302);
    assert_eq!(browser.get(&gw, &display_path(USAGE)).await.0, 200);
}

#[tokio::test]
async fn grants_without_access_length_last_as_long_as_the_session() {
    let platform = TestPlatform::start().await;
    let gw = Gateway::start_with(
        &platform,
        GatewayOptions {
            session: "lifetime_sec = 600".into(),
            ..Default::default()
        },
    )
    .await;
    let browser = Browser::new();
    assert_eq!(browser.launch(&gw, &platform, USAGE).await.status, 302);
    gw.clock.advance(599);
    assert_eq!(browser.get(&gw, &display_path(USAGE)).await.0, 200);
    gw.clock.advance(2);
    let (status, body) = browser.get(&gw, &display_path(USAGE)).await;
    assert_eq!(status, 401);
    assert!(body.contains("session_expired"), "{body}");
}

#[tokio::test]
async fn a_grant_for_one_path_does_not_open_another() {
    let (platform, gw, browser) = start().await;
    assert_eq!(browser.launch(&gw, &platform, USAGE).await.status, 302);
    let granted = display_path(USAGE);
    let other = display_path(USAGE_2);
    assert_eq!(raw_get(&gw, &browser, &granted).await, 200);
    assert_eq!(raw_get(&gw, &browser, &other).await, 403);

    // Spellings of the granted path that normalise to it pass.
    let encoded = granted
        .replace('+', "%2B")
        .replace("@", "%40")
        .replace("v1:", "v1%3A");
    assert_eq!(raw_get(&gw, &browser, &encoded).await, 200);
    assert_eq!(raw_get(&gw, &browser, &format!("{granted}/")).await, 200);
    assert_eq!(
        raw_get(&gw, &browser, &format!("{granted}?view=student_view")).await,
        200
    );

    // Tricks that would reach other content, or are ambiguous, never pass.
    let usage2_tail = USAGE_2.rsplit('@').next().expect("id");
    let tricks = [
        format!("{granted}/../{}", USAGE_2),
        format!("{granted}/%2e%2e/{USAGE_2}"),
        format!("{other}?{granted}"),
        format!("{other}#{granted}"),
        format!("/lti/1p3/launch/{COURSE}//{USAGE_2}"),
        format!("{granted}%2F..%2F{USAGE_2}"),
        format!("{granted}%5C..%5C{USAGE_2}"),
        format!("{granted};{usage2_tail}"),
        format!("{granted}//"),
        format!("/lti/1p3/launch//{COURSE}/{USAGE}"),
        format!("/lti/1p3/launch/{COURSE}/{USAGE}%00"),
        format!(
            "/lti/1p3/launch/course-v1:OrgX+CS101+2027/{}",
            USAGE.replace("2026", "2027")
        ),
    ];
    for path in &tricks {
        let status = raw_get(&gw, &browser, path).await;
        assert!(
            matches!(status, 400 | 403 | 404),
            "{path} was answered {status}"
        );
    }
}

// ---------------------------------------------------------------- JWKS and health

#[tokio::test]
async fn jwks_endpoints_publish_tool_keys() {
    let platform = TestPlatform::start().await;
    let dir = std::sync::Arc::new(tempfile::tempdir().expect("tempdir"));
    let org_key = ltigate::generate_key("org-key").expect("generate");
    std::fs::write(dir.path().join("org.pem"), &org_key.private_pem).expect("write");
    let gw = Gateway::start_with(
        &platform,
        GatewayOptions {
            dir: Some(dir.clone()),
            extra: format!(
                "[[keys]]\nkid = \"org-key\"\norg = \"OrgX\"\nprivate_key_file = {:?}\n",
                dir.path().join("org.pem").display().to_string()
            ),
            ..Default::default()
        },
    )
    .await;
    let browser = Browser::new();
    let (status, body) = browser.get(&gw, "/lti/1p3/pub/jwks/").await;
    assert_eq!(status, 200);
    let jwks: Value = serde_json::from_str(&body).expect("json");
    let keys = jwks["keys"].as_array().expect("keys");
    assert_eq!(keys.len(), 2);
    for k in keys {
        assert_eq!(
            (k["kty"].as_str(), k["alg"].as_str(), k["use"].as_str()),
            (Some("RSA"), Some("RS256"), Some("sig"))
        );
        assert!(k["n"].as_str().is_some_and(|n| n.len() > 300) && k["e"] == "AQAB");
        assert!(k.get("d").is_none(), "no private parts");
    }
    let (status, body) = browser.get(&gw, "/lti/1p3/pub/orgs/OrgX/jwks/").await;
    assert_eq!(status, 200);
    let org: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(org["keys"].as_array().map(Vec::len), Some(1));
    assert_eq!(org["keys"][0], org_key.public_jwk);
    assert_eq!(
        browser.get(&gw, "/lti/1p3/pub/orgs/OrgY/jwks/").await.0,
        404
    );
}

#[tokio::test]
async fn health_endpoints_match_exact_paths_only() {
    let (_platform, gw, browser) = start().await;
    assert_eq!(browser.get(&gw, "/healthz").await.0, 200);
    assert_eq!(browser.get(&gw, "/readyz").await.0, 200);
    assert_eq!(browser.get(&gw, "/healthz/../admin").await.0, 404);
    assert_eq!(browser.get(&gw, "/healthzx").await.0, 404);
    assert_eq!(raw_get(&gw, &browser, "/healthz/x").await, 404);
}
