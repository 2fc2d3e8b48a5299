//! Tests of the real `ltigate` binary: `check`, `keygen`, `serve`, exit codes
//! and shutdown on SIGTERM.

use std::fs::File;
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

const SHIPPED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/gateway.toml");

/// The binary, with a clean environment for the variables it reads, run in `cwd`.
fn ltigate(cwd: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ltigate"));
    cmd.current_dir(cwd)
        .env_remove("LTIGATE_CONFIG")
        .env_remove("LTIGATE_LOG_FORMAT")
        .env("LTIGATE_LOG", "info")
        .stdin(Stdio::null());
    cmd
}

/// Kills and reaps the child when dropped, so a failing test leaves no server behind.
struct ChildGuard {
    child: Option<Child>,
}

impl ChildGuard {
    fn spawn(cmd: &mut Command) -> Self {
        Self {
            child: Some(cmd.spawn().expect("spawn ltigate")),
        }
    }

    fn child(&mut self) -> &mut Child {
        self.child.as_mut().expect("child")
    }

    fn id(&self) -> u32 {
        self.child.as_ref().expect("child").id()
    }

    /// Waits up to `limit` for the child to exit.
    fn wait_for(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child().try_wait().expect("try_wait") {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(25));
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

/// Runs a command that must finish on its own within 60 s (a `serve` that
/// unexpectedly starts is killed rather than hanging the test run).
fn run(cmd: &mut Command) -> Output {
    let dir = tempfile::tempdir().expect("tempdir");
    let out_path = dir.path().join("stdout");
    let err_path = dir.path().join("stderr");
    cmd.stdout(File::create(&out_path).expect("stdout file"))
        .stderr(File::create(&err_path).expect("stderr file"));
    let mut guard = ChildGuard::spawn(cmd);
    let status = guard
        .wait_for(Duration::from_secs(60))
        .unwrap_or_else(|| panic!("{cmd:?} did not exit within 60 s"));
    Output {
        status,
        stdout: std::fs::read(&out_path).expect("read stdout"),
        stderr: std::fs::read(&err_path).expect("read stderr"),
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o777
}

/// A port that was free a moment ago.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// A plain HTTP/1.1 GET; returns the status code and body.
fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let response = text(&response);
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, "no end of headers"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, "no status"))?;
    Ok((status, body.to_owned()))
}

/// A temp dir holding a config file.
struct ConfigDir {
    dir: tempfile::TempDir,
    path: PathBuf,
}

impl ConfigDir {
    fn new(config: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("gateway.toml");
        std::fs::write(&path, config).expect("write config");
        Self { dir, path }
    }

    fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn run(&self, subcommand: &str) -> Output {
        run(ltigate(self.dir())
            .arg(subcommand)
            .arg("--config")
            .arg(&self.path))
    }
}

/// Writes a fresh private key to `path` and returns its public JWK.
fn write_key(path: &Path) -> serde_json::Value {
    let generated = ltigate::generate_key("cli-1").expect("generate");
    std::fs::write(path, generated.private_pem).expect("write key");
    generated.public_jwk
}

// ---------------------------------------------------------------------------
// check

#[test]
fn check_accepts_the_shipped_config_and_prints_the_platform_values() {
    let cfg = ConfigDir::new(&std::fs::read_to_string(SHIPPED).expect("read shipped config"));
    // Run from an unrelated directory: relative paths follow the config file.
    let cwd = tempfile::tempdir().expect("cwd");
    let out = run(ltigate(cwd.path())
        .arg("check")
        .arg("--config")
        .arg(&cfg.path));
    let stdout = text(&out.stdout);
    assert!(
        out.status.success(),
        "check failed: {:?}\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        text(&out.stderr)
    );
    for expected in [
        "OIDC login initiation URL: http://localhost:8080/lti/1p3/login/",
        "Redirect URI:              http://localhost:8080/lti/1p3/launch/",
        "Target link URI pattern:   http://localhost:8080/lti/1p3/launch/<course_key>/<usage_key>",
        "Public JWK set URL:        http://localhost:8080/lti/1p3/pub/jwks/",
        "ltigate-dev-1",
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?} in:\n{stdout}"
        );
    }

    let key = cfg.dir().join("data/keys/ltigate-dev-1.pem");
    assert!(key.is_file(), "generate_if_missing did not create {key:?}");
    #[cfg(unix)]
    assert_eq!(mode(&key), 0o600);
    let pem = std::fs::read(&key).expect("read key");
    ltigate::ToolKey::from_pem("ltigate-dev-1", None, &pem).expect("a loadable key");
    assert_eq!(
        std::fs::read_dir(cwd.path()).expect("ls").count(),
        0,
        "check wrote into the working directory"
    );

    // A second check reuses the key.
    let again = run(ltigate(cwd.path())
        .arg("check")
        .arg("--config")
        .arg(&cfg.path));
    assert!(again.status.success(), "{}", text(&again.stderr));
    assert_eq!(std::fs::read(&key).expect("read key"), pem);
}

// ---------------------------------------------------------------------------
// Bad configs: exit 64, and stderr names the file and the key

fn assert_config_refused(cfg: &ConfigDir, needle: &str) {
    for subcommand in ["check", "serve"] {
        let out = cfg.run(subcommand);
        let stderr = text(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(64),
            "`{subcommand}` exited {:?}; stderr:\n{stderr}",
            out.status
        );
        assert!(
            stderr.contains(&cfg.path.display().to_string()),
            "`{subcommand}` stderr does not name the file:\n{stderr}"
        );
        assert!(
            stderr.contains(needle),
            "`{subcommand}` stderr does not name {needle:?}:\n{stderr}"
        );
    }
}

#[test]
fn unknown_key_exits_64_naming_file_and_key() {
    let cfg = ConfigDir::new(
        r#"[server]
listen = "127.0.0.1:0"
public_url = "http://127.0.0.1:8080"
allow_http = true
tls_certificate = "cert.pem"

[[keys]]
kid = "k"
private_key_file = "k.pem"
"#,
    );
    write_key(&cfg.dir().join("k.pem"));
    assert_config_refused(&cfg, "tls_certificate");
}

#[test]
fn missing_key_file_exits_64_naming_file_and_key() {
    let cfg = ConfigDir::new(
        r#"[server]
listen = "127.0.0.1:0"
public_url = "http://127.0.0.1:8080"
allow_http = true

[[keys]]
kid = "k"
private_key_file = "keys/absent.pem"
"#,
    );
    assert_config_refused(&cfg, "keys[0].private_key_file");
    assert!(!cfg.dir().join("keys/absent.pem").exists());
}

#[test]
fn unreadable_config_file_exits_64() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("nope.toml");
    for subcommand in ["check", "serve"] {
        let out = run(ltigate(dir.path())
            .arg(subcommand)
            .arg("--config")
            .arg(&path));
        assert_eq!(out.status.code(), Some(64), "{}", text(&out.stderr));
        assert!(
            text(&out.stderr).contains(&path.display().to_string()),
            "{}",
            text(&out.stderr)
        );
    }
}

// ---------------------------------------------------------------------------
// keygen

/// The `[[keys]]` snippet keygen prints: from `[[keys]]` to the first blank line.
fn keys_snippet(stdout: &str) -> String {
    let start = stdout.find("[[keys]]").expect("no [[keys]] snippet");
    let rest = &stdout[start..];
    let end = rest.find("\n\n").unwrap_or(rest.len());
    format!("{}\n", &rest[..end])
}

/// The public JWK keygen prints: the JSON object after the snippet.
fn printed_jwk(stdout: &str) -> serde_json::Value {
    let start = stdout.find('{').expect("no JWK printed");
    let end = stdout.rfind('}').expect("no JWK printed");
    serde_json::from_str(&stdout[start..=end]).expect("the printed JWK is JSON")
}

#[test]
fn keygen_writes_a_pair_prints_a_working_snippet_and_never_overwrites() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out_dir = dir.path().join("keys");
    let out = run(ltigate(dir.path())
        .args(["keygen", "--kid", "cli-key", "--out"])
        .arg(&out_dir));
    let stdout = text(&out.stdout);
    assert!(
        out.status.success(),
        "keygen failed: {}\n{stdout}",
        text(&out.stderr)
    );

    let private = out_dir.join("cli-key.pem");
    let public = out_dir.join("cli-key.pub.pem");
    assert!(private.is_file() && public.is_file(), "{stdout}");
    #[cfg(unix)]
    assert_eq!(mode(&private), 0o600);
    let private_pem = std::fs::read(&private).expect("read");
    let public_pem = std::fs::read(&public).expect("read");
    assert!(text(&public_pem).starts_with("-----BEGIN PUBLIC KEY-----"));
    assert!(
        !stdout.contains("PRIVATE KEY"),
        "keygen printed private material"
    );

    let jwk = printed_jwk(&stdout);
    assert_eq!(jwk["kty"], "RSA");
    assert_eq!(jwk["alg"], "RS256");
    assert_eq!(jwk["use"], "sig");
    assert_eq!(jwk["kid"], "cli-key");
    for field in ["n", "e"] {
        assert!(
            jwk[field].as_str().is_some_and(|s| !s.is_empty()),
            "{field} missing in {jwk}"
        );
    }
    let loaded = ltigate::ToolKey::from_pem("cli-key", None, &private_pem).expect("a loadable key");
    assert_eq!(
        loaded.public_jwk(),
        &jwk,
        "the printed JWK is not the key's"
    );

    // The snippet, pasted into a config elsewhere, passes `check`.
    let snippet = keys_snippet(&stdout);
    assert!(snippet.contains("kid = \"cli-key\""), "{snippet}");
    let cfg = ConfigDir::new(&format!(
        "[server]\npublic_url = \"https://lti.example.com\"\n\n{snippet}"
    ));
    let check = cfg.run("check");
    assert!(
        check.status.success(),
        "check refused the keygen snippet:\n{snippet}\n{}",
        text(&check.stderr)
    );
    assert!(text(&check.stdout).contains("cli-key"));

    // Again with the same kid: refused, and nothing is overwritten.
    let again = run(ltigate(dir.path())
        .args(["keygen", "--kid", "cli-key", "--out"])
        .arg(&out_dir));
    assert!(!again.status.success(), "keygen overwrote an existing key");
    assert!(
        text(&again.stderr).contains("already exists"),
        "{}",
        text(&again.stderr)
    );
    assert_eq!(std::fs::read(&private).expect("read"), private_pem);
    assert_eq!(std::fs::read(&public).expect("read"), public_pem);
}

#[test]
fn keygen_snippet_with_a_relative_out_dir_works_from_any_config_dir() {
    // `--out keys` run in one directory; the snippet pasted into a config in
    // another. The snippet must still point at the key that was written.
    let work = tempfile::tempdir().expect("tempdir");
    let out = run(ltigate(work.path()).args(["keygen", "--kid", "rel", "--out", "keys"]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(work.path().join("keys/rel.pem").is_file());
    let snippet = keys_snippet(&text(&out.stdout));
    let cfg = ConfigDir::new(&format!(
        "[server]\npublic_url = \"https://lti.example.com\"\n\n{snippet}"
    ));
    let check = cfg.run("check");
    assert!(
        check.status.success(),
        "check refused the keygen snippet:\n{snippet}\n{}",
        text(&check.stderr)
    );
}

#[test]
fn keygen_refuses_a_kid_that_is_not_a_file_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = run(ltigate(dir.path()).args(["keygen", "--kid", "../evil", "--out", "keys"]));
    assert!(!out.status.success());
    assert!(!dir.path().join("evil.pem").exists());
}

// ---------------------------------------------------------------------------
// serve

/// Starts `serve` on `cfg` (stderr to `log`) and waits up to 30 s for
/// `/healthz` on `addr`; returns the process and that answer.
fn serve_until_healthy(
    cfg: &ConfigDir,
    addr: SocketAddr,
    log: &Path,
) -> (ChildGuard, (u16, String)) {
    let mut server = ChildGuard::spawn(
        ltigate(cfg.dir())
            .arg("serve")
            .arg("--config")
            .arg(&cfg.path)
            .stdout(Stdio::null())
            .stderr(File::create(log).expect("log file")),
    );
    let logs = || std::fs::read_to_string(log).unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(30);
    let health = loop {
        if let Some(status) = server.child().try_wait().expect("try_wait") {
            panic!("serve exited early with {status:?}:\n{}", logs());
        }
        match http_get(addr, "/healthz") {
            Ok(answer) => break answer,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => panic!("no answer on {addr} within 30 s: {e}\n{}", logs()),
        }
    };
    (server, health)
}

#[test]
fn serve_answers_health_and_jwks_then_stops_on_sigterm() {
    let port = free_port();
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let cfg = ConfigDir::new(&format!(
        r#"[server]
listen = "127.0.0.1:{port}"
public_url = "http://127.0.0.1:{port}"
allow_http = true
shutdown_grace_sec = 3

[store]
kind = "embedded"
path = "data/ltigate.redb"

[[keys]]
kid = "cli-1"
private_key_file = "k.pem"
"#
    ));
    let jwk = write_key(&cfg.dir().join("k.pem"));
    let log = cfg.dir().join("serve.log");
    let (mut server, health) = serve_until_healthy(&cfg, addr, &log);
    let logs = || std::fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(health.0, 200, "healthz: {health:?}");

    let (status, body) = http_get(addr, "/lti/1p3/pub/jwks/").expect("jwks");
    assert_eq!(status, 200, "{body}");
    let doc: serde_json::Value = serde_json::from_str(&body).expect("jwks is JSON");
    assert_eq!(doc["keys"].as_array().map(Vec::len), Some(1), "{doc}");
    assert_eq!(doc["keys"][0], jwk, "{doc}");
    assert!(
        cfg.dir().join("data/ltigate.redb").is_file(),
        "the embedded store was not created beside the config"
    );

    let kill = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .expect("run kill");
    assert!(kill.success());
    let status = server
        .wait_for(Duration::from_secs(10))
        .unwrap_or_else(|| panic!("serve did not stop within 10 s of SIGTERM:\n{}", logs()));
    assert_eq!(
        status.code(),
        Some(0),
        "serve exited {status:?}:\n{}",
        logs()
    );
    assert!(
        http_get(addr, "/healthz").is_err(),
        "still answering after exit"
    );
}

/// A config for `serve` on `port`, with its own directory, key and store.
fn serve_config(port: u16) -> ConfigDir {
    let cfg = ConfigDir::new(&format!(
        r#"[server]
listen = "127.0.0.1:{port}"
public_url = "http://127.0.0.1:{port}"
allow_http = true

[[keys]]
kid = "cli-1"
private_key_file = "k.pem"
"#
    ));
    write_key(&cfg.dir().join("k.pem"));
    cfg
}

/// Runs `serve` on `port` with a fresh config and checks that it exits 1
/// saying it cannot listen.
fn assert_serve_refuses(port: u16) {
    let cfg = serve_config(port);
    let out = run(ltigate(cfg.dir())
        .arg("serve")
        .arg("--config")
        .arg(&cfg.path));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("cannot listen on"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn serve_refuses_an_address_in_use_even_by_another_gateway() {
    // Another program's listener.
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    assert_serve_refuses(port);
    drop(taken);

    // A running gateway (its sockets use SO_REUSEPORT): a second one on the
    // same address must fail rather than share its connections.
    let first_cfg = serve_config(port);
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let (_first, _) = serve_until_healthy(&first_cfg, addr, &first_cfg.dir().join("serve.log"));
    assert_serve_refuses(port);
}

// ---------------------------------------------------------------------------
// usage

#[test]
fn unknown_subcommand_exits_non_zero_with_usage() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = run(ltigate(dir.path()).arg("frobnicate"));
    assert!(!out.status.success(), "exited {:?}", out.status);
    let stderr = text(&out.stderr);
    assert!(stderr.contains("Usage:"), "{stderr}");
    assert!(stderr.contains("frobnicate"), "{stderr}");
    assert!(out.stdout.is_empty(), "{}", text(&out.stdout));
}
