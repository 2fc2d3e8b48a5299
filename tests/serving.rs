mod support;
use support::*;

// How the gateway serves: TLS and HTTP/2, graceful shutdown of the real
// binary on SIGTERM, the health endpoints, the JSON access log, and the
// header read timeout.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::redirect::Policy;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// Upper bound for anything that should happen "at once" on a loaded CI machine.
const PROMPT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------
// Helpers

/// A port that was free a moment ago.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// Writes the test tool key into `dir` and returns its path.
fn write_tool_key(dir: &Path) -> PathBuf {
    let path = dir.join("tool-1.pem");
    if !path.exists() {
        std::fs::write(&path, tool_key_pem()).expect("write key");
    }
    path
}

/// A small config of our own: `[server]` (with `server_extra`), the embedded
/// store in `dir`, and one tool key.
fn minimal_config(dir: &Path, port: u16, public_url: &str, server_extra: &str) -> String {
    let key = write_tool_key(dir);
    format!(
        r#"[server]
listen = "127.0.0.1:{port}"
public_url = "{public_url}"
shutdown_grace_sec = 5
{server_extra}

[store]
kind = "embedded"
path = {store:?}

[[keys]]
kid = "tool-1"
private_key_file = {key:?}
"#,
        store = dir.join("store.redb").display().to_string(),
        key = key.display().to_string(),
    )
}

/// A gateway served in this process from a config text of our own.
struct InProcess {
    addr: SocketAddr,
    running: Option<ltigate::Running>,
    _dir: tempfile::TempDir,
}

impl InProcess {
    /// `config` gets the port and the temp dir and returns the config text.
    async fn start(config: impl FnOnce(u16, &Path) -> String) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let text = config(addr.port(), dir.path());
        let path = dir.path().join("gateway.toml");
        std::fs::write(&path, &text).expect("write config");
        let config = ltigate::Config::parse(&text, &path, &HashMap::<String, String>::new())
            .unwrap_or_else(|e| panic!("test config invalid: {e}\n{text}"));
        let app = ltigate::Gateway::build(config, Arc::new(ltigate::SystemClock)).expect("build");
        let running = ltigate::start_on(listener, app).await.expect("start");
        Self {
            addr,
            running: Some(running),
            _dir: dir,
        }
    }

    async fn stop(mut self) {
        if let Some(r) = self.running.take() {
            tokio::time::timeout(PROMPT, r.shutdown())
                .await
                .expect("the gateway did not stop");
        }
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        if let Some(r) = &self.running {
            r.shutdown_token().cancel();
        }
    }
}

/// Kills and reaps the child when dropped, so a failing test leaves no server behind.
struct ChildGuard {
    child: Option<Child>,
}

impl ChildGuard {
    fn child(&mut self) -> &mut Child {
        self.child.as_mut().expect("child")
    }

    fn id(&self) -> u32 {
        self.child.as_ref().expect("child").id()
    }

    fn exited(&mut self) -> Option<ExitStatus> {
        self.child().try_wait().expect("try_wait")
    }

    /// Waits up to `limit` for the child to exit.
    async fn wait_for(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.exited() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take()
            && child.try_wait().ok().flatten().is_none()
        {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The real `ltigate` binary serving a config we wrote, its stderr in a file.
struct Binary {
    process: ChildGuard,
    addr: SocketAddr,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Binary {
    /// Starts `ltigate serve` on `port` with `config` (written into `dir`)
    /// and waits until the port accepts connections. No request is made, so
    /// the access log holds only what the test sends.
    async fn start(dir: tempfile::TempDir, port: u16, config: &str, json_logs: bool) -> Self {
        Self::start_limited(dir, port, config, json_logs, None).await
    }

    /// [`Binary::start`], under `prlimit --nofile=N:N` when `fds` is given.
    async fn start_limited(
        dir: tempfile::TempDir,
        port: u16,
        config: &str,
        json_logs: bool,
        fds: Option<u64>,
    ) -> Self {
        let path = dir.path().join("gateway.toml");
        std::fs::write(&path, config).expect("write config");
        let log = dir.path().join("stderr.log");
        let mut cmd = match fds {
            None => Command::new(env!("CARGO_BIN_EXE_ltigate")),
            Some(n) => {
                let mut cmd = Command::new("prlimit");
                cmd.arg(format!("--nofile={n}:{n}"))
                    .arg("--")
                    .arg(env!("CARGO_BIN_EXE_ltigate"));
                cmd
            }
        };
        cmd.current_dir(dir.path())
            .arg("serve")
            .arg("--config")
            .arg(&path)
            .env_remove("LTIGATE_CONFIG")
            .env("LTIGATE_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"));
        if json_logs {
            cmd.env("LTIGATE_LOG_FORMAT", "json");
        } else {
            cmd.env_remove("LTIGATE_LOG_FORMAT");
        }
        let process = ChildGuard {
            child: Some(cmd.spawn().expect("spawn ltigate")),
        };
        let mut binary = Self {
            process,
            addr: ([127, 0, 0, 1], port).into(),
            log,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = binary.process.exited() {
                panic!("ltigate exited early with {status:?}:\n{}", binary.logs());
            }
            match tokio::time::timeout(Duration::from_secs(1), TcpStream::connect(binary.addr))
                .await
            {
                Ok(Ok(_)) => break,
                _ if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(25)).await;
                }
                _ => panic!(
                    "ltigate did not listen on {} within 30 s:\n{}",
                    binary.addr,
                    binary.logs()
                ),
            }
        }
        binary
    }

    fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn sigterm(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.process.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM failed");
    }

    /// Sends SIGTERM and waits (bounded) for a clean exit.
    async fn stop(&mut self) {
        self.sigterm();
        let status = self
            .process
            .wait_for(PROMPT)
            .await
            .unwrap_or_else(|| panic!("ltigate did not stop on SIGTERM:\n{}", self.logs()));
        assert_eq!(status.code(), Some(0), "exit {status:?}:\n{}", self.logs());
    }
}

/// A browser for the binary: a cookie jar, no redirects, bounded requests.
fn browser() -> reqwest::Client {
    ltigate::install_crypto_provider();
    reqwest::Client::builder()
        .cookie_provider(Arc::new(reqwest::cookie::Jar::default()))
        .redirect(Policy::none())
        .timeout(PROMPT)
        .build()
        .expect("client")
}

fn request_id(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .expect("every response carries x-request-id")
        .to_owned()
}

/// What a launch through the binary used and produced.
struct Launched {
    session: String,
    id_token: String,
    state: String,
    /// (request id, method, path, status) of each request the gateway answered.
    requests: Vec<(String, &'static str, String, u16)>,
}

/// A full launch against a gateway at `base`: login GET, the platform's auth
/// page, the auto-posted launch form.
async fn launch(http: &reqwest::Client, base: &str, platform: &TestPlatform) -> Launched {
    let mut requests = Vec::new();
    let target = format!("{base}{}", display_path(USAGE));
    let login = http
        .get(format!("{base}/lti/1p3/login/"))
        .query(&[
            ("iss", platform.issuer.as_str()),
            ("login_hint", "user-hint-1"),
            ("target_link_uri", target.as_str()),
            ("lti_message_hint", target.as_str()),
            ("client_id", platform.client_id.as_str()),
        ])
        .send()
        .await
        .expect("login");
    requests.push((
        request_id(&login),
        "GET",
        "/lti/1p3/login/".to_owned(),
        login.status().as_u16(),
    ));
    assert_eq!(login.status(), 302, "login refused");
    let auth_url = login.headers()["location"]
        .to_str()
        .expect("ascii")
        .to_owned();
    let auth = http.get(&auth_url).send().await.expect("auth");
    assert_eq!(auth.status(), 200, "platform auth refused");
    let page = auth.text().await.expect("auth page");
    let (action, fields) = platform::parse_autopost(&page);
    assert_eq!(action, format!("{base}/lti/1p3/launch/"));
    let field = |name: &str| {
        fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("no {name} in the auto-post form"))
    };
    let (id_token, state) = (field("id_token"), field("state"));
    let response = http
        .post(&action)
        .form(&fields)
        .send()
        .await
        .expect("launch");
    requests.push((
        request_id(&response),
        "POST",
        "/lti/1p3/launch/".to_owned(),
        response.status().as_u16(),
    ));
    let set_cookies: Vec<String> = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok().map(str::to_owned))
        .collect();
    let status = response.status();
    assert_eq!(
        status,
        302,
        "launch refused: {}",
        response.text().await.unwrap_or_default()
    );
    let session = set_cookies
        .iter()
        .find_map(|c| c.strip_prefix("ltigate_session="))
        .and_then(|rest| rest.split(';').next())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| panic!("no session cookie in {set_cookies:?}"))
        .to_owned();
    Launched {
        session,
        id_token,
        state,
        requests,
    }
}

/// Reads until the peer closes (EOF or error) or `limit` passes; returns what
/// was read and whether the connection was closed by the peer.
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> (Vec<u8>, bool) {
    let deadline = tokio::time::Instant::now() + limit;
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return (data, false),
            Ok(Ok(0) | Err(_)) => return (data, true),
            Ok(Ok(n)) => data.extend_from_slice(&buf[..n]),
        }
    }
}

// ---------------------------------------------------------------------------
// 1. TLS, HTTP/1.1 and HTTP/2

#[tokio::test(flavor = "multi_thread")]
async fn tls_serves_http1_and_http2_and_refuses_plain_http() {
    ltigate::install_crypto_provider();
    let generated =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .expect("self-signed certificate");
    let cert_pem = generated.cert.pem();
    let gw = InProcess::start(|port, dir| {
        let cert = dir.join("cert.pem");
        let key = dir.join("key.pem");
        std::fs::write(&cert, &cert_pem).expect("write cert");
        std::fs::write(&key, generated.signing_key.serialize_pem()).expect("write key");
        minimal_config(
            dir,
            port,
            &format!("https://localhost:{port}"),
            &format!(
                "tls_cert = {:?}\ntls_key = {:?}\ntls_handshake_timeout_sec = 1",
                cert.display().to_string(),
                key.display().to_string()
            ),
        )
    })
    .await;
    let addr = gw.addr;
    let root = reqwest::Certificate::from_pem(cert_pem.as_bytes()).expect("root");
    let client = |configure: fn(reqwest::ClientBuilder) -> reqwest::ClientBuilder| {
        configure(
            reqwest::Client::builder()
                .add_root_certificate(root.clone())
                .resolve("localhost", addr)
                .timeout(PROMPT),
        )
        .build()
        .expect("client")
    };
    let http1 = client(reqwest::ClientBuilder::http1_only);
    let alpn = client(|b| b);
    let prior_knowledge = client(reqwest::ClientBuilder::http2_prior_knowledge);

    let cases = [
        (&http1, reqwest::Version::HTTP_11, "http1"),
        (&alpn, reqwest::Version::HTTP_2, "ALPN"),
        (
            &prior_knowledge,
            reqwest::Version::HTTP_2,
            "prior knowledge",
        ),
    ];
    for (http, version, label) in cases {
        for host in ["localhost".to_owned(), "127.0.0.1".to_owned()] {
            let base = format!("https://{host}:{}", addr.port());
            let health = http
                .get(format!("{base}/healthz"))
                .send()
                .await
                .unwrap_or_else(|e| panic!("{label} {base}/healthz: {e:?}"));
            assert_eq!(health.version(), version, "{label} {base}");
            assert_eq!(health.status(), 200, "{label} {base}");
            assert_eq!(health.text().await.expect("body"), "ok\n");

            let jwks = http
                .get(format!("{base}/lti/1p3/pub/jwks/"))
                .send()
                .await
                .unwrap_or_else(|e| panic!("{label} {base} jwks: {e:?}"));
            assert_eq!(jwks.version(), version, "{label} {base}");
            assert_eq!(jwks.status(), 200, "{label} {base}");
            let doc: serde_json::Value = jwks.json().await.expect("jwks is JSON");
            assert_eq!(doc["keys"][0]["kid"], "tool-1", "{doc}");
        }
    }

    // A client that does not trust the certificate cannot talk to it.
    let untrusting = reqwest::Client::builder()
        .resolve("localhost", addr)
        .timeout(PROMPT)
        .build()
        .expect("client");
    assert!(
        untrusting
            .get(format!("https://localhost:{}/healthz", addr.port()))
            .send()
            .await
            .is_err(),
        "an untrusted certificate was accepted"
    );

    // Plain HTTP on the TLS port gets no 200 (nor any HTTP response at all).
    let mut plain = tokio::time::timeout(PROMPT, TcpStream::connect(addr))
        .await
        .expect("connect in time")
        .expect("connect");
    plain
        .write_all(
            format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await
        .expect("write");
    let (answer, closed) = read_until_closed(&mut plain, PROMPT).await;
    assert!(closed, "the TLS port kept a plain-HTTP connection open");
    assert!(
        !answer.starts_with(b"HTTP/"),
        "plain HTTP got an HTTP answer on the TLS port: {}",
        String::from_utf8_lossy(&answer)
    );
    let reqwest_plain = reqwest::Client::builder()
        .timeout(PROMPT)
        .build()
        .expect("client")
        .get(format!("http://{addr}/healthz"))
        .send()
        .await;
    assert!(
        reqwest_plain.as_ref().map_or(true, |r| r.status() != 200),
        "plain HTTP got {reqwest_plain:?}"
    );

    // A client that never starts its handshake is cut off by the handshake timeout.
    let (silent_closed, _) = closed_after(addr, b"", Duration::from_secs(4)).await;
    assert!(
        silent_closed.is_some(),
        "a silent client still held a TLS connection 4 s in (tls_handshake_timeout_sec = 1)"
    );

    // The server still serves TLS after the bad clients.
    let again = http1
        .get(format!("https://localhost:{}/healthz", addr.port()))
        .send()
        .await
        .expect("healthz after a plain-HTTP client");
    assert_eq!(again.status(), 200);
    gw.stop().await;
}

// ---------------------------------------------------------------------------
// 2. Graceful shutdown of the binary

/// The `[[rules]]` tables shipped in `gateway.toml`: everything from the first
/// line that is exactly `[[rules]]`. (`support::shipped_rules()` starts at the
/// first `[[rules]]` anywhere, which is inside a comment of `[upstream]`, so
/// its configs do not parse; this file does not depend on it.)
fn shipped_rule_tables() -> String {
    let shipped = include_str!("../gateway.toml");
    let start = shipped
        .find("\n[[rules]]\n")
        .expect("gateway.toml ships [[rules]]");
    shipped[start + 1..].to_owned()
}

/// `[upstream]` at `url`, `[assertion]` with a username key, the shipped
/// rules, and a public rule for the test LMS's `/slow/**`.
fn upstream_tables(url: &str) -> String {
    format!(
        "[upstream]\nurl = \"{url}\"\nblock_access = \"course\"\n\n[assertion]\nusername_key = \"{USERNAME_KEY}\"\n\n{}\n\
         [[rules]]\nscope = \"public\"\npath = \"/slow/**\"\nmethods = [\"GET\"]\n",
        shipped_rule_tables()
    )
}

fn upstream_options(url: &str) -> GatewayOptions {
    GatewayOptions {
        extra: upstream_tables(url),
        ..GatewayOptions::default()
    }
}

/// The harness's config for a gateway on `port` in front of `upstream`.
fn binary_config(platform: &TestPlatform, upstream: &str, port: u16, dir: &Path) -> String {
    let text = Gateway::config_text(platform, &upstream_options(upstream), port, dir);
    assert!(text.contains("shutdown_grace_sec = 5"), "{text}");
    text
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_drains_in_flight_requests_refuses_new_connections_and_exits_0() {
    let grace = Duration::from_secs(5);
    let platform = TestPlatform::start().await;
    let upstream = TestUpstream::start_with(Duration::from_secs(2)).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let config = binary_config(&platform, &upstream.url(), port, dir.path());
    let mut gw = Binary::start(dir, port, &config, false).await;
    let base = gw.url("");
    let http = browser();
    launch(&http, &base, &platform).await;

    // Without a session the slow path is refused: the rule needs a live grant.
    let anonymous = reqwest::Client::builder()
        .timeout(PROMPT)
        .build()
        .expect("client")
        .get(gw.url("/slow/x"))
        .send()
        .await
        .expect("anonymous slow");
    assert_eq!(anonymous.status(), 401);
    assert_eq!(upstream.count(), 0, "a refused request reached the LMS");

    let started = Instant::now();
    let slow = tokio::spawn({
        let http = http.clone();
        let url = gw.url("/slow/x");
        async move {
            let response = http.get(url).send().await?;
            let status = response.status();
            let body = response.text().await?;
            Ok::<_, reqwest::Error>((status, body, Instant::now()))
        }
    });
    // Wait (bounded) until the request is in flight at the LMS, then stop.
    let deadline = Instant::now() + PROMPT;
    while !upstream.seen().iter().any(|s| s.target == "/slow/x") {
        assert!(
            Instant::now() < deadline,
            "the slow request never reached the LMS:\n{}",
            gw.logs()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    gw.sigterm();
    let signalled = Instant::now();

    // A new connection is refused promptly, while the process still drains.
    let refused_within = Duration::from_millis(1500);
    loop {
        let attempt =
            tokio::time::timeout(Duration::from_millis(200), TcpStream::connect(gw.addr)).await;
        match attempt {
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => break,
            // Accepted into the backlog just before the listener closed (then
            // reset), or a slow connect: try again.
            other => {
                assert!(
                    signalled.elapsed() < refused_within,
                    "new connections were not refused {:?} after SIGTERM (last: {other:?}):\n{}",
                    signalled.elapsed(),
                    gw.logs()
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    assert!(
        !slow.is_finished(),
        "the slow request finished before new connections were refused"
    );
    assert!(
        gw.process.exited().is_none(),
        "the process exited with a request in flight:\n{}",
        gw.logs()
    );

    // The in-flight request completes normally.
    let (status, body, finished) = tokio::time::timeout(PROMPT, slow)
        .await
        .expect("the slow request did not finish")
        .expect("join")
        .unwrap_or_else(|e| panic!("the in-flight request failed: {e:?}\n{}", gw.logs()));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, "slow ok");
    assert!(
        finished.duration_since(started) >= Duration::from_millis(1900),
        "the slow request was not slow: {:?}",
        finished.duration_since(started)
    );

    // And the process exits 0 within the grace period.
    let status = gw
        .process
        .wait_for(grace + Duration::from_secs(1))
        .await
        .unwrap_or_else(|| panic!("no exit within the grace period:\n{}", gw.logs()));
    assert_eq!(status.code(), Some(0), "exit {status:?}:\n{}", gw.logs());
    assert!(
        signalled.elapsed() < grace,
        "exit took {:?}, longer than the grace period",
        signalled.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_stops_after_the_grace_period_even_with_a_request_in_flight() {
    let platform = TestPlatform::start().await;
    let upstream = TestUpstream::start_with(Duration::from_secs(8)).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let config = binary_config(&platform, &upstream.url(), port, dir.path())
        .replace("shutdown_grace_sec = 5", "shutdown_grace_sec = 1");
    let mut gw = Binary::start(dir, port, &config, false).await;
    let http = browser();
    launch(&http, &gw.url(""), &platform).await;

    let slow = tokio::spawn({
        let http = http.clone();
        let url = gw.url("/slow/never-done");
        async move { http.get(url).send().await.map(|r| r.status()) }
    });
    let deadline = Instant::now() + PROMPT;
    while upstream.count() == 0 {
        assert!(Instant::now() < deadline, "the slow request never arrived");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    gw.sigterm();
    let signalled = Instant::now();
    let status = gw
        .process
        .wait_for(Duration::from_secs(5))
        .await
        .unwrap_or_else(|| panic!("no exit 5 s after SIGTERM with grace 1 s:\n{}", gw.logs()));
    assert_eq!(status.code(), Some(0), "exit {status:?}:\n{}", gw.logs());
    assert!(
        signalled.elapsed() >= Duration::from_millis(900),
        "exited after {:?}, before the grace period was over",
        signalled.elapsed()
    );
    assert!(gw.logs().contains("grace period over"), "{}", gw.logs());
    // The cut-off request fails rather than hanging.
    let outcome = tokio::time::timeout(PROMPT, slow)
        .await
        .expect("the cut-off request is not left hanging")
        .expect("join");
    assert!(outcome.is_err(), "cut-off request got {outcome:?}");
}

// ---------------------------------------------------------------------------
// 3. Health

#[tokio::test(flavor = "multi_thread")]
async fn readyz_follows_the_upstream_and_healthz_matches_exactly() {
    let platform = TestPlatform::start().await;
    let upstream = TestUpstream::start().await;
    let up = Gateway::start_with(&platform, upstream_options(&upstream.url())).await;
    let dead_port = free_port();
    let down = Gateway::start_with(
        &platform,
        upstream_options(&format!("http://127.0.0.1:{dead_port}")),
    )
    .await;
    let browser = Browser::new();

    assert_eq!(
        browser.get(&up, "/readyz").await,
        (200, "ready\n".to_owned())
    );
    assert_eq!(
        browser.get(&down, "/readyz").await,
        (503, "upstream unreachable\n".to_owned())
    );
    for gw in [&up, &down] {
        assert_eq!(browser.get(gw, "/healthz").await, (200, "ok\n".to_owned()));
        // The query is not part of the path.
        assert_eq!(
            browser.get(gw, "/healthz?x").await,
            (200, "ok\n".to_owned())
        );
        // Exact paths only: these are ordinary (gated) paths.
        for path in ["/healthz/", "/HEALTHZ", "/Healthz", "/readyz/", "/READYZ"] {
            let (status, body) = browser.get(gw, path).await;
            assert_ne!(status, 200, "{path} was answered as a health check: {body}");
            assert_ne!(
                status, 503,
                "{path} was answered as a readiness check: {body}"
            );
            assert!(
                !matches!(body.as_str(), "ok\n" | "ready\n" | "upstream unreachable\n"),
                "{path} was answered as a health check: {body}"
            );
            assert_eq!(status, 401, "{path}: {body}");
            assert!(body.contains("<code>no_session</code>"), "{path}: {body}");
        }
    }
    assert_eq!(upstream.count(), 0, "health checks reached the LMS");
    up.stop().await;
    down.stop().await;
}

// ---------------------------------------------------------------------------
// 4. The access log

/// A field of a JSON log line: under `fields` (tracing's default) or flattened.
fn log_field<'a>(line: &'a serde_json::Value, name: &str) -> Option<&'a serde_json::Value> {
    line.get("fields")
        .and_then(|f| f.get(name))
        .or_else(|| line.get(name))
}

#[tokio::test(flavor = "multi_thread")]
async fn json_access_log_has_one_line_per_request_and_no_secrets() {
    let platform = TestPlatform::start().await;
    let upstream = TestUpstream::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let config = binary_config(&platform, &upstream.url(), port, dir.path());
    let mut gw = Binary::start(dir, port, &config, true).await;
    let http = browser();
    // (request id, method, path, status, expected decision)
    let mut sent: Vec<(String, &str, String, u16, String)> = Vec::new();

    let health = http.get(gw.url("/healthz")).send().await.expect("healthz");
    sent.push((
        request_id(&health),
        "GET",
        "/healthz".to_owned(),
        health.status().as_u16(),
        "health".to_owned(),
    ));

    let launched = launch(&http, &gw.url(""), &platform).await;
    for ((id, method, path, status), decision) in launched.requests.iter().zip(["login", "launch"])
    {
        sent.push((
            id.clone(),
            method,
            path.clone(),
            *status,
            decision.to_owned(),
        ));
    }

    // A refused gated request (with a session, outside every grant), with a
    // query that must not be logged.
    let refused = http
        .get(gw.url("/dashboard?token=query-secret-42"))
        .send()
        .await
        .expect("refused request");
    let refused_id = request_id(&refused);
    let refused_status = refused.status().as_u16();
    let body = refused.text().await.expect("body");
    assert_eq!(refused_status, 403, "{body}");
    assert!(body.contains("<code>not_granted</code>"), "{body}");
    sent.push((
        refused_id,
        "GET",
        "/dashboard".to_owned(),
        refused_status,
        "not_granted".to_owned(),
    ));

    // The display path, forwarded to the LMS with an assertion.
    let display = http
        .get(gw.url(&display_path(USAGE)))
        .send()
        .await
        .expect("display");
    let display_id = request_id(&display);
    let display_status = display.status().as_u16();
    assert_eq!(
        display_status,
        200,
        "{}",
        display.text().await.unwrap_or_default()
    );
    let display_url = reqwest::Url::parse(&gw.url(&display_path(USAGE))).expect("url");
    sent.push((
        display_id.clone(),
        "GET",
        display_url.path().to_owned(),
        display_status,
        "display".to_owned(),
    ));
    let seen = upstream.last();
    let assertion = seen
        .header("x-ltigate-assertion")
        .expect("the LMS got an assertion")
        .to_owned();
    assert_eq!(
        seen.header("x-request-id"),
        Some(display_id.as_str()),
        "the request id is sent upstream"
    );

    gw.stop().await;
    let logs = gw.logs();

    let mut access = Vec::new();
    for line in logs.lines().filter(|l| !l.trim().is_empty()) {
        let value: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}\n---\n{logs}"));
        if value["target"] == "ltigate::access" {
            access.push(value);
        }
    }
    assert_eq!(
        access.len(),
        sent.len(),
        "expected one access line per request:\n{logs}"
    );
    for (id, method, path, status, decision) in &sent {
        let matching: Vec<&serde_json::Value> = access
            .iter()
            .filter(|l| log_field(l, "request_id").and_then(|v| v.as_str()) == Some(id.as_str()))
            .collect();
        assert_eq!(matching.len(), 1, "request {id} ({path}):\n{logs}");
        let line = matching[0];
        assert_eq!(
            log_field(line, "method").and_then(|v| v.as_str()),
            Some(*method),
            "{line}"
        );
        assert_eq!(
            log_field(line, "path").and_then(|v| v.as_str()),
            Some(path.as_str()),
            "{line}"
        );
        assert_eq!(
            log_field(line, "status").and_then(serde_json::Value::as_u64),
            Some(u64::from(*status)),
            "{line}"
        );
        let duration = log_field(line, "duration_ms")
            .and_then(serde_json::Value::as_f64)
            .unwrap_or_else(|| panic!("no numeric duration_ms: {line}"));
        assert!(
            (0.0..10_000.0).contains(&duration),
            "duration {duration}: {line}"
        );
        assert_eq!(
            log_field(line, "decision").and_then(|v| v.as_str()),
            Some(decision.as_str()),
            "decision of {method} {path}: {line}"
        );
    }

    // No secret, whole or as a JWT segment, and no query string, anywhere in the log.
    let mut secrets = vec![
        ("session cookie", launched.session.clone()),
        ("id_token", launched.id_token.clone()),
        ("login state", launched.state.clone()),
        ("assertion", assertion.clone()),
        ("username key", USERNAME_KEY.to_owned()),
        ("query", "query-secret-42".to_owned()),
        ("login hint", "user-hint-1".to_owned()),
    ];
    for (label, jwt) in [("id_token", &launched.id_token), ("assertion", &assertion)] {
        for (i, part) in jwt.split('.').enumerate().skip(1) {
            secrets.push((label, part.to_owned()));
            assert!(part.len() > 16, "{label} segment {i} is too short to check");
        }
    }
    for (label, secret) in &secrets {
        assert!(
            secret.len() >= 8,
            "{label} is too short to check: {secret:?}"
        );
        for line in logs.lines() {
            assert!(
                !line.contains(secret.as_str()),
                "the log holds the {label}: {line}"
            );
        }
    }
    assert!(!logs.contains("PRIVATE KEY"), "the log holds a private key");
}

// ---------------------------------------------------------------------------
// 5. Header read timeout

async fn header_timeout_gateway() -> InProcess {
    InProcess::start(|port, dir| {
        minimal_config(
            dir,
            port,
            &format!("http://127.0.0.1:{port}"),
            "allow_http = true\nheader_read_timeout_sec = 1",
        )
    })
    .await
}

/// Opens a connection, sends `partial`, and returns how long the gateway took
/// to close it (None: still open after `limit`) and what it sent back.
async fn closed_after(
    addr: SocketAddr,
    partial: &[u8],
    limit: Duration,
) -> (Option<Duration>, Vec<u8>) {
    let mut stream = tokio::time::timeout(PROMPT, TcpStream::connect(addr))
        .await
        .expect("connect in time")
        .expect("connect");
    let started = Instant::now();
    if !partial.is_empty() {
        stream.write_all(partial).await.expect("write");
    }
    let (data, closed) = read_until_closed(&mut stream, limit).await;
    (closed.then(|| started.elapsed()), data)
}

#[tokio::test(flavor = "multi_thread")]
async fn slow_headers_are_cut_off_after_the_header_read_timeout() {
    let gw = header_timeout_gateway().await;
    let partials: [&[u8]; 2] = [
        b"GET /healthz HT",
        b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: 1",
    ];
    let limit = Duration::from_secs(3);
    let (first, second) = tokio::join!(
        closed_after(gw.addr, partials[0], limit),
        closed_after(gw.addr, partials[1], limit),
    );
    let results = [first, second];
    for (partial, (closed, data)) in partials.iter().zip(results) {
        let label = String::from_utf8_lossy(partial);
        let after = closed.unwrap_or_else(|| panic!("{label:?}: still connected after 3 s"));
        assert!(
            after >= Duration::from_millis(500),
            "{label:?}: closed after {after:?}, before the timeout"
        );
        assert!(
            !data.starts_with(b"HTTP/1.1 200"),
            "{label:?}: answered {}",
            String::from_utf8_lossy(&data)
        );
    }

    // A client that finishes its headers in time is served.
    let (closed, data) = closed_after(
        gw.addr,
        b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
        Duration::from_secs(3),
    )
    .await;
    assert!(closed.is_some(), "Connection: close was not honoured");
    assert!(
        data.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&data)
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn silent_connections_are_cut_off_after_the_header_read_timeout() {
    let gw = header_timeout_gateway().await;
    // Nothing at all; a partial HTTP/2 preface (which the server cannot yet
    // tell from HTTP/1); an idle keep-alive connection after one request.
    // None of them may hold a connection open for ever.
    let cases: [(&str, &[u8]); 3] = [
        ("nothing", b""),
        ("a partial HTTP/2 preface", b"PRI * HTTP/2.0\r\n"),
        (
            "one keep-alive request, then nothing",
            b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
        ),
    ];
    let limit = Duration::from_secs(3);
    let (a, b, c) = tokio::join!(
        closed_after(gw.addr, cases[0].1, limit),
        closed_after(gw.addr, cases[1].1, limit),
        closed_after(gw.addr, cases[2].1, limit),
    );
    let (idle_closed, idle_answer) = &c;
    assert!(
        idle_answer.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(idle_answer)
    );
    let still_open: Vec<&str> = cases
        .iter()
        .zip([a.0, b.0, *idle_closed])
        .filter(|(_, closed)| closed.is_none())
        .map(|((label, _), _)| *label)
        .collect();
    assert!(
        still_open.is_empty(),
        "with header_read_timeout_sec = 1, these clients were still connected after 3 s: {still_open:?}"
    );
    gw.stop().await;
}

// ---------------------------------------------------------------------------
// 6. Request bodies, HTTP/2 and connection bounds

/// A gateway with short timeouts and small connection bounds, over plain
/// HTTP, with `extra` `[server]` keys.
async fn bounded_gateway(extra: &str) -> InProcess {
    let extra = extra.to_owned();
    InProcess::start(move |port, dir| {
        minimal_config(
            dir,
            port,
            &format!("http://127.0.0.1:{port}"),
            &format!("allow_http = true\n{extra}"),
        )
    })
    .await
}

const SHORT_BODY_TIMEOUT: &str = "body_read_timeout_sec = 1\nbody_min_bytes_per_sec = 100";

/// A request body that never sends a byte and never ends.
struct NeverBody;

impl http_body::Body for NeverBody {
    type Data = bytes::Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, Self::Error>>> {
        std::task::Poll::Pending
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_body_that_never_arrives_or_trickles_is_cut_off_with_408() {
    let gw = bounded_gateway(SHORT_BODY_TIMEOUT).await;
    // HTTP/1.1: the LTI endpoints, headers complete, `Content-Length: 100`,
    // no body.
    for path in ["/lti/1p3/launch/", "/lti/1p3/login/"] {
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\n"
        );
        let (closed, data) = closed_after(gw.addr, head.as_bytes(), PROMPT).await;
        let answer = String::from_utf8_lossy(&data);
        assert!(
            closed.is_some(),
            "{path}: a body that never came held the connection for {PROMPT:?} \
             (body_read_timeout_sec = 1)"
        );
        assert!(answer.starts_with("HTTP/1.1 408"), "{path}: {answer}");
        assert!(answer.contains("body_timeout"), "{path}: {answer}");
    }

    // A trickle: one byte every 250 ms, far below 100 bytes a second.
    let mut stream = TcpStream::connect(gw.addr).await.expect("connect");
    stream
        .write_all(
            b"POST /lti/1p3/launch/ HTTP/1.1\r\nHost: 127.0.0.1\r\n\
              Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\n",
        )
        .await
        .expect("head");
    let (mut read, mut write) = stream.into_split();
    let trickle = tokio::spawn(async move {
        for _ in 0..100 {
            if write.write_all(b"a").await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    });
    let mut data = Vec::new();
    let read_all = tokio::time::timeout(PROMPT, read.read_to_end(&mut data)).await;
    trickle.abort();
    assert!(
        read_all.is_ok(),
        "a 25 s trickle was still being read after {PROMPT:?}"
    );
    let answer = String::from_utf8_lossy(&data);
    assert!(answer.starts_with("HTTP/1.1 408"), "trickle: {answer}");

    // HTTP/2 (h2c prior knowledge): a request whose body never comes gets a
    // 408 on its stream.
    let tcp = TcpStream::connect(gw.addr).await.expect("connect");
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tcp),
    )
    .await
    .expect("h2 handshake");
    tokio::spawn(conn);
    let request = http::Request::post(format!("http://{}/lti/1p3/launch/", gw.addr))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(NeverBody)
        .expect("request");
    let response = tokio::time::timeout(PROMPT, sender.send_request(request))
        .await
        .expect("an h2 request without its body was never answered")
        .expect("response");
    assert_eq!(response.status(), 408);

    // The gateway still serves.
    let (_, ok) = closed_after(
        gw.addr,
        b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
        PROMPT,
    )
    .await;
    assert!(
        ok.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&ok)
    );
    gw.stop().await;
}

// Raw HTTP/2 frames, for what a client library would not do.

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// An empty SETTINGS frame.
const H2_SETTINGS: &[u8] = &[0, 0, 0, 4, 0, 0, 0, 0, 0];

/// One HTTP/2 frame: type, flags, and payload.
struct H2Frame {
    kind: u8,
    flags: u8,
    payload: Vec<u8>,
}

/// Reads frames for up to `limit`; returns them and whether the peer closed.
async fn read_h2_frames<S>(stream: &mut S, limit: Duration) -> (Vec<H2Frame>, bool)
where
    S: tokio::io::AsyncRead + Unpin,
{
    let deadline = tokio::time::Instant::now() + limit;
    let mut buf = Vec::new();
    let mut frames = Vec::new();
    let mut chunk = [0u8; 4096];
    let closed = loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await {
            Err(_) => break false,
            Ok(Ok(0) | Err(_)) => break true,
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
        }
        while buf.len() >= 9 {
            let len = usize::from(buf[0]) << 16 | usize::from(buf[1]) << 8 | usize::from(buf[2]);
            if buf.len() < 9 + len {
                break;
            }
            frames.push(H2Frame {
                kind: buf[3],
                flags: buf[4],
                payload: buf[9..9 + len].to_vec(),
            });
            buf.drain(..9 + len);
        }
    };
    (frames, closed)
}

/// SETTINGS_MAX_CONCURRENT_STREAMS in the server's first SETTINGS frame.
fn max_concurrent_streams(frames: &[H2Frame]) -> Option<u32> {
    let settings = frames.iter().find(|f| f.kind == 4 && f.flags & 1 == 0)?;
    settings.payload.chunks_exact(6).find_map(|s| {
        (u16::from_be_bytes([s[0], s[1]]) == 3)
            .then(|| u32::from_be_bytes([s[2], s[3], s[4], s[5]]))
    })
}

/// Whether the server's connection future ends (it closed the connection)
/// within `limit`, after one request on an h2 connection over `io`.
async fn h2_closed_after_one_request<S>(io: S, authority: &str, limit: Duration) -> bool
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(io),
    )
    .await
    .expect("h2 handshake");
    let conn = tokio::spawn(conn);
    let request = http::Request::get(format!("https://{authority}/healthz"))
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .expect("request");
    let response = tokio::time::timeout(PROMPT, sender.send_request(request))
        .await
        .expect("answer in time")
        .expect("response");
    assert_eq!(response.status(), 200);
    assert_eq!(response.version(), http::Version::HTTP_2);
    drop(response);
    // The client keeps its side open: only the server can end it.
    let closed = tokio::time::timeout(limit, conn).await.is_ok();
    drop(sender);
    closed
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_http2_connections_are_closed_and_pinged_over_h2c_and_tls() {
    ltigate::install_crypto_provider();
    let generated = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])
        .expect("self-signed certificate");
    let cert_pem = generated.cert.pem();
    let extra = "header_read_timeout_sec = 1\nidle_timeout_sec = 1\n\
                 http2_keep_alive_interval_sec = 1\nhttp2_max_concurrent_streams = 7";
    let tls_gw = InProcess::start(|port, dir| {
        let cert = dir.join("cert.pem");
        let key = dir.join("key.pem");
        std::fs::write(&cert, &cert_pem).expect("write cert");
        std::fs::write(&key, generated.signing_key.serialize_pem()).expect("write key");
        minimal_config(
            dir,
            port,
            &format!("https://localhost:{port}"),
            &format!(
                "tls_cert = {:?}\ntls_key = {:?}\n{extra}",
                cert.display().to_string(),
                key.display().to_string()
            ),
        )
    })
    .await;
    let plain_gw = bounded_gateway(extra).await;
    let limit = Duration::from_secs(6);

    // h2c prior knowledge: idle after one request.
    let tcp = TcpStream::connect(plain_gw.addr).await.expect("connect");
    assert!(
        h2_closed_after_one_request(tcp, &plain_gw.addr.to_string(), limit).await,
        "h2c: an idle connection was still open {limit:?} after its request (idle_timeout_sec = 1)"
    );

    // TLS with ALPN h2: idle after one request.
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls_pki_types::CertificateDer::from(
            generated.cert.der().to_vec(),
        ))
        .expect("root");
    let mut client_config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    client_config.alpn_protocols = vec![b"h2".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client_config));
    let tls_connect = || async {
        let tcp = TcpStream::connect(tls_gw.addr).await.expect("connect");
        let name = rustls_pki_types::ServerName::try_from("localhost").expect("name");
        let tls = connector.connect(name, tcp).await.expect("TLS handshake");
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
        tls
    };
    let authority = format!("localhost:{}", tls_gw.addr.port());
    assert!(
        h2_closed_after_one_request(tls_connect().await, &authority, limit).await,
        "TLS h2: an idle connection was still open {limit:?} after its request"
    );

    // The preface and SETTINGS, then no request: cut off by the header
    // read timeout, over both. The server's SETTINGS bound the streams.
    for label in ["h2c", "TLS h2"] {
        let (frames, closed) = if label == "h2c" {
            let mut tcp = TcpStream::connect(plain_gw.addr).await.expect("connect");
            tcp.write_all(&[H2_PREFACE, H2_SETTINGS].concat())
                .await
                .expect("preface");
            read_h2_frames(&mut tcp, limit).await
        } else {
            let mut tls = tls_connect().await;
            tls.write_all(&[H2_PREFACE, H2_SETTINGS].concat())
                .await
                .expect("preface");
            read_h2_frames(&mut tls, limit).await
        };
        assert!(
            closed,
            "{label}: a connection that never sent a request was open after {limit:?}"
        );
        assert_eq!(max_concurrent_streams(&frames), Some(7), "{label}");
        assert!(
            frames.iter().any(|f| f.kind == 7),
            "{label}: closed without a GOAWAY"
        );
    }

    // The preface only (no SETTINGS): also cut off.
    let (closed, _) = closed_after(plain_gw.addr, H2_PREFACE, limit).await;
    assert!(
        closed.is_some(),
        "a preface-only connection was open after {limit:?}"
    );

    // A connection with a request in flight is not idle, but it is pinged:
    // a request whose body does not come for the body timeout (5 s here is
    // longer than the idle timeout and keep-alive interval of 1 s).
    let pinged = bounded_gateway(
        "idle_timeout_sec = 1\nhttp2_keep_alive_interval_sec = 1\nbody_read_timeout_sec = 5",
    )
    .await;
    let mut tcp = TcpStream::connect(pinged.addr).await.expect("connect");
    // HEADERS (END_HEADERS, no END_STREAM) on stream 1: POST /lti/1p3/launch/,
    // :scheme http, :authority x, a form content type; HPACK static-table
    // indexes and literals.
    let mut block = vec![0x83, 0x86];
    block.push(0x44);
    block.push(16);
    block.extend_from_slice(b"/lti/1p3/launch/");
    block.push(0x41);
    block.push(1);
    block.push(b'x');
    // content-type (static index 31), so the form is read.
    block.push(0x5f);
    block.push(33);
    block.extend_from_slice(b"application/x-www-form-urlencoded");
    let mut headers = vec![
        0,
        0,
        u8::try_from(block.len()).expect("short"),
        1,
        4,
        0,
        0,
        0,
        1,
    ];
    headers.extend_from_slice(&block);
    tcp.write_all(&[H2_PREFACE, H2_SETTINGS, &headers].concat())
        .await
        .expect("request");
    let (frames, closed) = read_h2_frames(&mut tcp, Duration::from_secs(4)).await;
    let kinds: Vec<u8> = frames.iter().map(|f| f.kind).collect();
    assert!(
        frames.iter().any(|f| f.kind == 6 && f.flags & 1 == 0),
        "no keep-alive PING (http2_keep_alive_interval_sec = 1); frame types {kinds:?}"
    );
    // This client never answers it: the keep-alive timeout (as long as the
    // interval) closes the connection, before the 5 s body timeout would
    // have answered the request.
    assert!(
        closed,
        "an unanswered PING left the connection open; frame types {kinds:?}"
    );
    assert!(
        !frames.iter().any(|f| f.kind == 1),
        "the request was answered, so the body timeout ended it, not the PING: {kinds:?}"
    );
    pinged.stop().await;
    plain_gw.stop().await;
    tls_gw.stop().await;
}

/// Connects from `source` (any 127.0.0.0/8 address on Linux) to `addr`.
async fn connect_from(source: [u8; 4], addr: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind((source, 0).into())?;
    socket.connect(addr).await
}

/// Whether the server closes `stream` within `limit` without a word.
async fn refused(stream: &mut TcpStream, limit: Duration) -> bool {
    let (data, closed) = read_until_closed(stream, limit).await;
    closed && data.is_empty()
}

async fn served(source: [u8; 4], addr: SocketAddr) -> bool {
    let Ok(mut stream) = connect_from(source, addr).await else {
        return false;
    };
    if stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .is_err()
    {
        return false;
    }
    let (data, _) = read_until_closed(&mut stream, PROMPT).await;
    data.starts_with(b"HTTP/1.1 200")
}

#[tokio::test(flavor = "multi_thread")]
async fn connections_past_the_per_client_and_total_bounds_are_refused() {
    let gw = bounded_gateway("max_connections = 5\nmax_connections_per_ip = 3").await;
    let addr = gw.addr;
    // Three idle connections from one client are kept; the fourth is
    // closed at once, and another client is still served.
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(connect_from([127, 0, 0, 2], addr).await.expect("connect"));
    }
    let mut fourth = connect_from([127, 0, 0, 2], addr).await.expect("connect");
    assert!(
        refused(&mut fourth, Duration::from_secs(3)).await,
        "a fourth connection from one client was kept (max_connections_per_ip = 3)"
    );
    assert!(
        served([127, 0, 0, 1], addr).await,
        "another client was not served"
    );
    // Two more clients fill the global bound of five; a sixth is refused.
    held.push(connect_from([127, 0, 0, 3], addr).await.expect("connect"));
    held.push(connect_from([127, 0, 0, 4], addr).await.expect("connect"));
    let mut sixth = connect_from([127, 0, 0, 5], addr).await.expect("connect");
    assert!(
        refused(&mut sixth, Duration::from_secs(3)).await,
        "a sixth connection was kept (max_connections = 5)"
    );
    // Closing one frees its slot (the server notices the close).
    drop(held.pop());
    let deadline = Instant::now() + PROMPT;
    while !served([127, 0, 0, 1], addr).await {
        assert!(Instant::now() < deadline, "a freed slot was never reused");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(held);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn preface_only_sockets_do_not_lock_clients_out_of_1024_descriptors() {
    // systemd's default soft limit, here as the hard one too, so the
    // gateway cannot raise it: the bounds alone must hold.
    const FDS: u64 = 1024;
    const FLOOD: usize = 1050;
    if Command::new("prlimit")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_err()
    {
        eprintln!("note: prlimit (util-linux) is not installed; skipping the descriptor flood");
        return;
    }
    // This process holds the flood's client side.
    use rustix::process::{Resource, getrlimit};
    let ours = getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX);
    if ours < 2 * FLOOD as u64 {
        eprintln!("note: this process may open only {ours} files; skipping the descriptor flood");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let config = minimal_config(
        dir.path(),
        port,
        &format!("http://127.0.0.1:{port}"),
        "allow_http = true",
    );
    let gw = Binary::start_limited(dir, port, &config, false, Some(FDS)).await;
    let mut flood = Vec::with_capacity(FLOOD);
    for _ in 0..FLOOD {
        let Ok(Ok(mut stream)) = tokio::time::timeout(
            Duration::from_secs(2),
            connect_from([127, 0, 0, 2], gw.addr),
        )
        .await
        else {
            // The backlog is full: the flood got as far as it could.
            break;
        };
        let _ = stream.write_all(H2_PREFACE).await;
        flood.push(stream);
    }
    assert!(
        flood.len() > 512,
        "only {} flood connections were made",
        flood.len()
    );
    // Another client is served at once, while every flood socket is open.
    assert!(
        served([127, 0, 0, 1], gw.addr).await,
        "{} preface-only sockets locked a client out:\n{}",
        flood.len(),
        gw.logs()
            .lines()
            .rev()
            .take(5)
            .collect::<Vec<_>>()
            .join("\n")
    );
    drop(flood);
}
