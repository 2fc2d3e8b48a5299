//! The ltigate demo: `cargo run --release --example demo`.
//!
//! Starts three servers on loopback and prints the URL to open:
//!
//! - a demo LTI platform (a stand-in for Canvas or Moodle) with a course page,
//!   a "Launch" button and an iframe, its OIDC auth endpoint and its JWKS;
//! - ltigate itself, in this process, on an embedded store in a temporary
//!   directory, registered with that platform, with the `[[rules]]` shipped in
//!   `gateway.toml`, in front of
//! - a demo upstream (a fake Open edX LMS) that verifies ltigate's assertion and
//!   shows who the learner is, and whose page calls an XBlock handler.
//!
//! Ports default to 8080 (ltigate), 8090 (platform) and 8070 (upstream);
//! `--tls-self-signed DIR` or `--tls CERT KEY` serve ltigate over HTTPS, as
//! in production. `--help` lists every option. Ctrl-C stops it.

// The crate root of an example resolves modules next to it: point into demo/.
#[path = "demo/platform.rs"]
mod platform;
#[path = "demo/serve.rs"]
mod serve;
#[path = "demo/tls.rs"]
mod tls;
#[path = "demo/upstream.rs"]
mod upstream;

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Parser;
use tokio::net::TcpListener;

/// The demo course and its one unit.
const COURSE: &str = "course-v1:DemoX+GW101+2026";
const USAGE: &str = "block-v1:DemoX+GW101+2026+type@vertical+block@welcome";
/// ltigate's tool key.
const TOOL_KID: &str = "ltigate-demo-1";
/// Derives the upstream usernames. A demo value: see `[assertion]` in docs/configuration.md.
const USERNAME_KEY: &str = "demo-only-username-key-0123456789";

#[derive(Parser)]
#[command(
    name = "demo",
    about = "ltigate demo: a demo LTI platform, ltigate, and a fake Open edX LMS on loopback"
)]
struct Args {
    /// ltigate's port on 127.0.0.1 (0: any free port).
    #[arg(long, env = "DEMO_GATEWAY_PORT", default_value_t = 8080)]
    gateway_port: u16,
    /// The demo platform's port on 127.0.0.1 (0: any free port).
    #[arg(long, env = "DEMO_PLATFORM_PORT", default_value_t = 8090)]
    platform_port: u16,
    /// The demo upstream's (fake LMS's) port on 127.0.0.1 (0: any free port).
    #[arg(long, env = "DEMO_UPSTREAM_PORT", default_value_t = 8070)]
    upstream_port: u16,
    /// Serve ltigate over HTTPS at https://localhost:<port> with this PEM
    /// certificate chain and key (or set DEMO_TLS_CERT and DEMO_TLS_KEY).
    #[arg(long, num_args = 2, value_names = ["CERT", "KEY"], conflicts_with = "tls_self_signed")]
    tls: Option<Vec<PathBuf>>,
    /// Serve ltigate over HTTPS with a self-signed certificate for localhost,
    /// written to DIR/cert.pem and DIR/key.pem (reused when they exist).
    #[arg(long, value_name = "DIR", env = "DEMO_TLS_SELF_SIGNED")]
    tls_self_signed: Option<PathBuf>,
}

/// How ltigate is served.
enum Tls {
    None,
    Files { cert: PathBuf, key: PathBuf },
    SelfSigned(tls::CertFiles),
}

fn main() -> ExitCode {
    let args = Args::parse();
    // The gateway's own logging, access log included; the guard flushes it
    // when the demo ends.
    let _log_guard = ltigate::logging::init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("demo: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("demo: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    ltigate::install_crypto_provider();
    let tls = tls_choice(&args)?;

    // Bind everything first, so a taken port fails before anything starts.
    let gateway_listener = bind(
        "ltigate",
        args.gateway_port,
        "--gateway-port",
        "DEMO_GATEWAY_PORT",
    )
    .await?;
    let platform_listener = bind(
        "the demo platform",
        args.platform_port,
        "--platform-port",
        "DEMO_PLATFORM_PORT",
    )
    .await?;
    let upstream_listener = bind(
        "the demo upstream",
        args.upstream_port,
        "--upstream-port",
        "DEMO_UPSTREAM_PORT",
    )
    .await?;
    let gateway_addr = gateway_listener.local_addr()?;
    let platform_base = format!("http://{}", platform_listener.local_addr()?);
    let upstream_base = format!("http://{}", upstream_listener.local_addr()?);
    // Over HTTPS ltigate is on another site than the platform, as in
    // production. Over plain HTTP browsers refuse SameSite=None, so ltigate's
    // cookies are SameSite=Lax and work in the platform's iframe only when both
    // are on the same site: 127.0.0.1, on different ports (different origins).
    let gateway_origin = match tls {
        Tls::None => format!("http://127.0.0.1:{}", gateway_addr.port()),
        _ => format!("https://localhost:{}", gateway_addr.port()),
    };
    let target = format!("{gateway_origin}/lti/1p3/launch/{COURSE}/{USAGE}");

    let platform = platform::Platform::new(platform_base.clone(), gateway_origin.clone(), target)?;

    // ltigate, on an embedded store in a temporary directory.
    let dir = tempfile::Builder::new()
        .prefix("ltigate-demo-")
        .tempdir()
        .context("creating a temporary directory")?;
    let tool_key = ltigate::generate_key(TOOL_KID)?;
    let key_path = dir.path().join(format!("{TOOL_KID}.pem"));
    std::fs::write(&key_path, &tool_key.private_pem).context("writing the tool key")?;
    let config_path = dir.path().join("gateway.toml");
    let text = config_text(
        &ConfigInput {
            listen: gateway_addr,
            public_url: &gateway_origin,
            tls: &tls,
            store: &dir.path().join("ltigate.redb"),
            key: &key_path,
            platform: &platform,
            upstream: &upstream_base,
        },
        &shipped_rules()?,
    );
    std::fs::write(&config_path, &text).context("writing the demo config")?;
    let config = ltigate::Config::parse(&text, &config_path, &HashMap::<String, String>::new())
        .context("the demo's gateway config is invalid")?;
    let app = ltigate::Gateway::build(config, Arc::new(ltigate::SystemClock))
        .context("opening ltigate's store")?;
    let gateway = ltigate::start_on(gateway_listener, app.clone())
        .await
        .context("starting ltigate")?;

    // The fake LMS verifies assertions against ltigate's JWKS: the document
    // ltigate serves at /lti/1p3/pub/jwks/.
    let upstream = upstream::Upstream::new(&app.tool_keys.jwks(), &gateway_origin, "openedx")?;
    let upstream_task = serve::spawn(upstream_listener, move |req| upstream.clone().handle(req));
    let platform_task = serve::spawn(platform_listener, {
        let platform = platform.clone();
        move |req| platform.clone().handle(req)
    });

    print_banner(
        &platform_base,
        &gateway_origin,
        &upstream_base,
        &tls,
        dir.path(),
    );

    wait_for_stop().await;
    println!("\ndemo: stopping");
    platform_task.abort();
    upstream_task.abort();
    gateway.shutdown().await;
    drop(app);
    drop(dir);
    println!("demo: stopped");
    Ok(())
}

fn tls_choice(args: &Args) -> anyhow::Result<Tls> {
    if let Some(dir) = &args.tls_self_signed {
        return Ok(Tls::SelfSigned(tls::self_signed(dir)?));
    }
    let (cert, key) = match &args.tls {
        Some(files) => match files.as_slice() {
            [cert, key] => (cert.clone(), key.clone()),
            _ => anyhow::bail!("--tls takes two files: CERT KEY"),
        },
        None => match (
            std::env::var_os("DEMO_TLS_CERT"),
            std::env::var_os("DEMO_TLS_KEY"),
        ) {
            (None, None) => return Ok(Tls::None),
            (Some(cert), Some(key)) => (cert.into(), key.into()),
            _ => anyhow::bail!("set both DEMO_TLS_CERT and DEMO_TLS_KEY, or neither"),
        },
    };
    for file in [&cert, &key] {
        anyhow::ensure!(file.is_file(), "TLS file {} does not exist", file.display());
    }
    // ltigate resolves relative paths against its config's directory.
    Ok(Tls::Files {
        cert: std::path::absolute(cert)?,
        key: std::path::absolute(key)?,
    })
}

async fn bind(what: &str, port: u16, flag: &str, env: &str) -> anyhow::Result<TcpListener> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    TcpListener::bind(addr).await.map_err(|e| {
        if e.kind() == std::io::ErrorKind::AddrInUse {
            anyhow::anyhow!(
                "port {port} for {what} is already in use on 127.0.0.1. Stop what uses it, \
                 or pick another port with {flag} N (or {env}=N)"
            )
        } else {
            anyhow::anyhow!("cannot listen on {addr} for {what}: {e}")
        }
    })
}

/// Everything from the first line of `gateway.toml` that is exactly
/// `[[rules]]`: the shipped gating rules.
fn shipped_rules() -> anyhow::Result<String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/gateway.toml");
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?;
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        if line.trim_end_matches(['\n', '\r']) == "[[rules]]" {
            return Ok(text[offset..].to_owned());
        }
        offset += line.len();
    }
    anyhow::bail!("{path} has no line that is exactly [[rules]]")
}

struct ConfigInput<'a> {
    listen: SocketAddr,
    public_url: &'a str,
    tls: &'a Tls,
    store: &'a Path,
    key: &'a Path,
    platform: &'a platform::Platform,
    upstream: &'a str,
}

/// A TOML string literal.
fn toml_str(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

fn toml_path(p: &Path) -> String {
    toml_str(&p.display().to_string())
}

fn config_text(c: &ConfigInput<'_>, rules: &str) -> String {
    let tls = match c.tls {
        Tls::None => String::new(),
        Tls::Files { cert, key } => {
            format!(
                "tls_cert = {}\ntls_key = {}\n",
                toml_path(cert),
                toml_path(key)
            )
        }
        Tls::SelfSigned(files) => format!(
            "tls_cert = {}\ntls_key = {}\n",
            toml_path(&std::path::absolute(&files.cert).unwrap_or_else(|_| files.cert.clone())),
            toml_path(&std::path::absolute(&files.key).unwrap_or_else(|_| files.key.clone())),
        ),
    };
    let base = &c.platform.base;
    format!(
        r#"# Written by the ltigate demo (examples/demo.rs).
[server]
listen = "{listen}"
public_url = {public_url}
# The demo platform and upstream are plain HTTP on loopback.
allow_http = true
shutdown_grace_sec = 2
{tls}
[store]
kind = "embedded"
path = {store}

[[keys]]
kid = "{TOOL_KID}"
private_key_file = {key}

[[platforms]]
title = "Demo platform"
issuer = {issuer}
client_id = "{client_id}"
auth_login_url = "{base}/auth"
auth_token_url = "{base}/token"
key_set_url = "{base}/jwks"
key = "{TOOL_KID}"
deployment_ids = ["{deployment}"]
# The demo platform is on loopback.
allow_private_addresses = true

[upstream]
url = {upstream}
# The demo's LMS serves no Course Blocks API to read the launched block's
# subtree from: every block of the launched course is open, as with the
# Open edX LTI tool plugin (docs/configuration.md#upstream).
block_access = "course"

[assertion]
audience = "openedx"
username_key = "{USERNAME_KEY}"

{rules}"#,
        listen = c.listen,
        public_url = toml_str(c.public_url),
        store = toml_path(c.store),
        key = toml_path(c.key),
        issuer = toml_str(c.platform.issuer()),
        client_id = platform::CLIENT_ID,
        deployment = platform::DEPLOYMENT_ID,
        upstream = toml_str(c.upstream),
    )
}

fn print_banner(platform: &str, gateway: &str, upstream: &str, tls: &Tls, dir: &Path) {
    let mode = match tls {
        Tls::None => {
            "plain HTTP: cookies are SameSite=Lax, so the platform is on the same site (127.0.0.1)"
                .to_owned()
        }
        Tls::Files { cert, .. } => format!(
            "HTTPS with {}: cookies are SameSite=None; Secure; Partitioned, as in production",
            cert.display()
        ),
        Tls::SelfSigned(files) => format!(
            "HTTPS with a self-signed certificate ({}{}): cookies are SameSite=None; Secure; Partitioned, as in production",
            files.cert.display(),
            if files.created { ", new" } else { ", reused" },
        ),
    };
    println!(
        r#"
ltigate demo is running. Open the demo platform in a browser:

    {platform}/

and press "Launch": the unit opens in the page's iframe, served through ltigate.

  demo platform  {platform}/   course page, OIDC auth endpoint /auth, JWKS /jwks
  ltigate        {gateway}   {mode}; embedded store in {dir}
  demo upstream  {upstream}/   a fake Open edX LMS, answering only requests that carry ltigate's assertion

In the frame: the learner (from the verified X-Ltigate-Assertion), the granted unit,
a button that POSTs to an XBlock handler with a CSRF token, and a link to /dashboard,
which ltigate refuses because no rule opens it. ltigate's access log below shows
each decision (launch, display, allow:usage, allow:public, not_granted)."#,
        dir = dir.display(),
    );
    if let Tls::SelfSigned(files) = tls {
        println!(
            r#"
The certificate is self-signed: open {gateway}/healthz once and accept the warning,
or start Chromium with --ignore-certificate-errors-spki-list={spki}"#,
            spki = files.spki_sha256,
        );
    }
    println!("\nPress Ctrl-C to stop.");
}

/// Waits for Ctrl-C (SIGINT) or SIGTERM.
async fn wait_for_stop() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
