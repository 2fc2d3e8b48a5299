//! Store behaviour seen through the gateway's real HTTP interface, and what
//! survives a SIGKILL: a restart on
//! the embedded store keeps sessions, two gateway processes share sessions
//! through Redis, and a Redis outage turns into 503s that heal by themselves.

mod support;

use std::sync::Arc;
use std::time::Duration;

use support::process::{GatewayProcess, free_port};
use support::*;

fn session_cookie_set(set_cookies: &[String]) -> bool {
    set_cookies
        .iter()
        .any(|c| c.starts_with("ltigate_session=") && !c.contains("Max-Age=0"))
}

fn set_cookies(response: &reqwest::Response) -> Vec<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok().map(str::to_owned))
        .collect()
}

/// Options for gateways that share one embedded store file, so that a
/// second gateway started with them is the first one restarted.
fn on_disk() -> GatewayOptions {
    GatewayOptions {
        dir: Some(Arc::new(tempfile::tempdir().expect("tempdir"))),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_store_keeps_a_session_across_a_gateway_restart() {
    let platform = TestPlatform::start().await;
    let opts = on_disk();
    let gw = Gateway::start_with(&platform, opts.clone()).await;
    let browser = Browser::new();
    let launch = browser.launch(&gw, &platform, USAGE).await;
    assert_eq!(launch.status, 302, "{}", launch.body);
    assert!(launch.set_session());
    let (status, body) = browser.get(&gw, &display_path(USAGE)).await;
    assert_eq!(status, 200, "{body}");
    gw.stop().await;

    let gw2 = Gateway::start_with(&platform, opts).await;
    assert_eq!(gw2.session_count().await, 1, "the session is still stored");
    let (status, body) = browser.get(&gw2, &display_path(USAGE)).await;
    assert_eq!(
        status, 200,
        "the session from before the restart still opens the content: {body}"
    );
    assert!(body.contains(USAGE));
    // The 200 comes from the session, not from the restarted gateway being open.
    let (status, _) = Browser::new().get(&gw2, &display_path(USAGE)).await;
    assert_eq!(status, 401, "a browser without a session is refused");
    let (status, _) = browser.get(&gw2, &display_path(USAGE_2)).await;
    assert_eq!(status, 403, "the session grants only what was launched");
}

/// Login states are kept in memory on the embedded store: a login in flight
/// across a restart ends on the "launch again" page, leaves nothing behind,
/// and launching again works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_store_drops_logins_in_flight_across_a_restart() {
    let platform = TestPlatform::start().await;
    let opts = on_disk();
    let gw = Gateway::start_with(&platform, opts.clone()).await;
    let browser = Browser::new();
    let target = gw.target(USAGE);
    let auth = browser.login(&gw, &platform, &target).await;
    assert_eq!(gw.login_state_count().await, 1);
    let token = platform.sign(&platform.claims(&auth, &target));
    gw.stop().await;

    let gw2 = Gateway::start_with(&platform, opts).await;
    assert_eq!(gw2.login_state_count().await, 0);
    let refused = browser.post_launch(&gw2, &token, &auth.state).await;
    refused.assert_rejected(400, "state_unknown");
    assert!(
        refused.body.contains("open the activity again"),
        "the page says what to do: {}",
        refused.body
    );
    assert_eq!(
        gw2.session_count().await,
        0,
        "a refused launch stores nothing"
    );
    let launch = browser.launch(&gw2, &platform, USAGE).await;
    assert_eq!(launch.status, 302, "launching again works: {}", launch.body);
}

fn redis_store(redis: &RedisServer) -> String {
    format!(
        "kind = \"redis\"\nurl = \"{}\"\nkey_prefix = \"ltigate:\"",
        redis.url()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_launch_works_with_redis_over_tls() {
    let redis = RedisServer::start_tls();
    let platform = TestPlatform::start().await;
    let store = format!(
        "{}\nca_file = \"{}\"",
        redis_store(&redis),
        redis.ca_file().display()
    );
    let gw = Gateway::start_with(
        &platform,
        GatewayOptions {
            store: Some(store),
            ..Default::default()
        },
    )
    .await;
    let browser = Browser::new();
    let launch = browser.launch(&gw, &platform, USAGE).await;
    assert_eq!(launch.status, 302, "{}", launch.body);
    let (status, body) = browser.get(&gw, &display_path(USAGE)).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = browser.get(&gw, "/readyz").await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateway_processes_share_a_session_through_redis() {
    let redis = RedisServer::start();
    let platform = TestPlatform::start().await;
    let (port1, port2) = (free_port(), free_port());
    assert_ne!(port1, port2);
    let public = format!("http://127.0.0.1:{port1}");
    let opts = GatewayOptions {
        store: Some(redis_store(&redis)),
        // Both replicas sit behind one public address, as behind a load balancer.
        public_url: Some(public.clone()),
        ..Default::default()
    };
    let mut processes = Vec::new();
    let mut dirs = Vec::new();
    for port in [port1, port2] {
        let dir = tempfile::tempdir().expect("tempdir");
        let text = Gateway::config_text(&platform, &opts, port, dir.path());
        let config = dir.path().join("gateway.toml");
        std::fs::write(&config, text).expect("write config");
        processes.push(GatewayProcess::spawn(
            &config,
            port,
            dir.path().join("ltigate.log"),
        ));
        dirs.push(dir);
    }
    let browser = Browser::new();
    for p in &mut processes {
        p.wait_healthy(&browser.http).await;
    }
    let (p1, p2) = (&processes[0], &processes[1]);

    // Login on process 1.
    let target = format!("{public}{}", display_path(USAGE));
    let login = initiate_login(
        &browser.http,
        &p1.url("/lti/1p3/login/"),
        &platform,
        &target,
    )
    .await;
    assert_eq!(
        login.status(),
        302,
        "login on process 1: {}\n{}",
        login.text().await.unwrap_or_default(),
        p1.log()
    );
    let auth_url = login.headers()["location"]
        .to_str()
        .expect("ascii")
        .to_owned();

    // The platform answers with its auto-posting launch form.
    let auth = browser.http.get(&auth_url).send().await.expect("auth");
    assert_eq!(auth.status(), 200, "platform auth refused");
    let page = auth.text().await.expect("auth page");
    let (action, fields) = support::platform::parse_autopost(&page);
    assert_eq!(action, format!("{public}/lti/1p3/launch/"));

    // The load balancer sends the launch POST to process 2.
    let launch = browser
        .http
        .post(p2.url("/lti/1p3/launch/"))
        .form(&fields)
        .send()
        .await
        .expect("launch");
    let launch_cookies = set_cookies(&launch);
    let launch_status = launch.status();
    let launch_location = launch
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let launch_body = launch.text().await.unwrap_or_default();
    assert_eq!(
        launch_status,
        302,
        "launch on process 2 with the state from process 1: {launch_body}\n{}",
        p2.log()
    );
    assert_eq!(launch_location.as_deref(), Some(target.as_str()));
    assert!(session_cookie_set(&launch_cookies), "{launch_cookies:?}");

    // The display request lands on process 1, which never saw the launch.
    for (name, p) in [("process 1", p1), ("process 2", p2)] {
        let display = browser
            .http
            .get(p.url(&display_path(USAGE)))
            .send()
            .await
            .expect("display");
        let status = display.status();
        let body = display.text().await.unwrap_or_default();
        assert_eq!(status, 200, "display on {name}: {body}\n{}", p.log());
        assert!(body.contains(USAGE));
    }

    // The login state was consumed in the shared store: replaying the launch
    // form on process 1 is refused and mints no session.
    let replay = browser
        .http
        .post(p1.url("/lti/1p3/launch/"))
        .form(&fields)
        .send()
        .await
        .expect("replay");
    let replay_cookies = set_cookies(&replay);
    let replay_status = replay.status().as_u16();
    let replay_body = replay.text().await.unwrap_or_default();
    assert!(
        (400..500).contains(&replay_status),
        "a replayed launch must be refused, got {replay_status}: {replay_body}"
    );
    assert!(
        !session_cookie_set(&replay_cookies),
        "a replayed launch set a session cookie"
    );

    drop(processes);
    drop(dirs);
}

/// Checks a 503 page says nothing about Redis or where it runs.
#[track_caller]
fn assert_leaks_nothing(body: &str, redis: &RedisServer) {
    let lower = body.to_ascii_lowercase();
    for secret in [
        redis.url().to_ascii_lowercase(),
        redis.port.to_string(),
        "redis".to_owned(),
        "127.0.0.1".to_owned(),
        "connection refused".to_owned(),
        "os error".to_owned(),
    ] {
        assert!(
            !lower.contains(&secret),
            "the 503 page leaks {secret:?}: {body}"
        );
    }
    assert!(body.contains("store_unavailable"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_outage_gives_503_and_service_resumes_when_redis_returns() {
    let mut redis = RedisServer::start();
    let platform = TestPlatform::start().await;
    let gw = Gateway::start_with(
        &platform,
        GatewayOptions {
            store: Some(redis_store(&redis)),
            ..Default::default()
        },
    )
    .await;
    let browser = Browser::new();
    let launch = browser.launch(&gw, &platform, USAGE).await;
    assert_eq!(launch.status, 302, "{}", launch.body);
    let (status, body) = browser.get(&gw, &display_path(USAGE)).await;
    assert_eq!(status, 200, "{body}");

    redis.stop();

    // An allow may reuse a session read for SHARED_CACHE_FOR; after that,
    // the first request of the outage fails closed.
    tokio::time::sleep(ltigate::SHARED_CACHE_FOR).await;
    let (status, body) = browser.get(&gw, &display_path(USAGE)).await;
    assert_eq!(status, 503, "display during the outage: {body}");
    assert_leaks_nothing(&body, &redis);

    let target = gw.target(USAGE);
    let login = initiate_login(
        &browser.http,
        &gw.url("/lti/1p3/login/"),
        &platform,
        &target,
    )
    .await;
    let status = login.status();
    let cookies = set_cookies(&login);
    let body = login.text().await.unwrap_or_default();
    assert_eq!(status, 503, "login during the outage: {body}");
    assert!(
        !cookies.iter().any(|c| !c.contains("Max-Age=0")),
        "a failed login sets no cookie: {cookies:?}"
    );
    assert_leaks_nothing(&body, &redis);

    let (status, body) = browser.get(&gw, "/readyz").await;
    assert_eq!(status, 503, "readyz during the outage: {body}");
    assert!(!body.contains(&redis.port.to_string()), "{body}");
    let (status, _) = browser.get(&gw, "/healthz").await;
    assert_eq!(status, 200, "liveness does not depend on the store");

    redis.restart();

    // `restart` waits until Redis answers PING. The same gateway serves the
    // same request at once: no restart, and no leftover refusal from the outage.
    let last = browser.get(&gw, &display_path(USAGE)).await;
    assert_eq!(
        last.0, 200,
        "the display path recovers without a gateway restart: {}",
        last.1
    );
    assert!(last.1.contains(USAGE));
    let (status, body) = browser.get(&gw, "/readyz").await;
    assert_eq!(status, 200, "{body}");
    // And new launches work again.
    let again = Browser::new().launch(&gw, &platform, USAGE_2).await;
    assert_eq!(again.status, 302, "{}", again.body);
}

/// A whole launch of `usage` through one gateway process: login, the
/// platform's auth step, the launch POST. Returns the launch's status.
async fn launch_on(
    browser: &Browser,
    platform: &TestPlatform,
    p: &GatewayProcess,
    public: &str,
    usage: &str,
) -> u16 {
    let target = format!("{public}{}", display_path(usage));
    let login = initiate_login(&browser.http, &p.url("/lti/1p3/login/"), platform, &target).await;
    assert_eq!(login.status(), 302, "login: {}", p.log());
    let auth_url = login.headers()["location"]
        .to_str()
        .expect("ascii")
        .to_owned();
    let page = browser.http.get(&auth_url).send().await.expect("auth");
    let (_, fields) = support::platform::parse_autopost(&page.text().await.expect("auth page"));
    let launch = browser
        .http
        .post(p.url("/lti/1p3/launch/"))
        .form(&fields)
        .send()
        .await
        .expect("launch");
    launch.status().as_u16()
}

/// An acknowledged launch is durable: launches answered with a 302 a moment
/// before the process is SIGKILLed still open their content after a
/// restart on the same embedded store. (Before, only a commit 100 ms after
/// the previous durable one was made durable: the second of two quick
/// launches was lost.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_launches_survive_a_sigkill_on_the_embedded_store() {
    let platform = TestPlatform::start().await;
    let port = free_port();
    let public = format!("http://127.0.0.1:{port}");
    let opts = GatewayOptions {
        public_url: Some(public.clone()),
        ..Default::default()
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let text = Gateway::config_text(&platform, &opts, port, dir.path());
    let config = dir.path().join("gateway.toml");
    std::fs::write(&config, text).expect("write config");

    let learners: Vec<Browser> = (0..4).map(|_| Browser::new()).collect();
    let mut first = GatewayProcess::spawn(&config, port, dir.path().join("first.log"));
    first.wait_healthy(&learners[0].http).await;
    for browser in &learners {
        let status = launch_on(browser, &platform, &first, &public, USAGE).await;
        assert_eq!(status, 302, "launch: {}", first.log());
    }
    first.sigkill();

    let mut second = GatewayProcess::spawn(&config, port, dir.path().join("second.log"));
    second.wait_healthy(&learners[0].http).await;
    for (i, browser) in learners.iter().enumerate() {
        let (status, body) = match browser
            .http
            .get(second.url(&display_path(USAGE)))
            .send()
            .await
        {
            Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
            Err(e) => (0, e.to_string()),
        };
        assert_eq!(
            status, 200,
            "learner {i}'s acknowledged launch was lost with the SIGKILL: {body}"
        );
    }
    let stranger = Browser::new();
    let refused = stranger
        .http
        .get(second.url(&display_path(USAGE)))
        .send()
        .await
        .expect("display");
    assert_eq!(
        refused.status(),
        401,
        "a browser without a session is refused"
    );
}

/// A warning is on disk (here: in the log file) as soon as it is logged: a
/// refusal's WARN line survives a SIGKILL that comes right after the
/// response. (Lines were flushed every 100 ms only, so a kill within that
/// window lost them.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_warning_survives_a_sigkill_right_after_it() {
    let platform = TestPlatform::start().await;
    let port = free_port();
    let dir = tempfile::tempdir().expect("tempdir");
    let text = Gateway::config_text(&platform, &GatewayOptions::default(), port, dir.path());
    let config = dir.path().join("gateway.toml");
    std::fs::write(&config, text).expect("write config");
    let browser = Browser::new();
    let mut p = GatewayProcess::spawn(&config, port, dir.path().join("ltigate.log"));
    p.wait_healthy(&browser.http).await;
    // Let the periodic flush write out the start-up lines first.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let refused = browser
        .http
        .get(p.url("/lti/1p3/launch/"))
        .send()
        .await
        .expect("GET launch");
    assert_eq!(refused.status(), 405);
    p.sigkill();
    let log = p.log();
    assert!(
        log.contains("reason=\"launch_opened_directly\""),
        "the refusal's warning was lost with the SIGKILL:\n{log}"
    );
}
