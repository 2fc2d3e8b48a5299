//! The benchmark's LTI platform client: makes keys, sessions and launches.
//!
//! `keys DIR` writes a platform key pair and its JWKS. `session` performs one
//! full launch and prints the gateway's session cookie. `launches` measures
//! full login → auth → launch round trips against any LTI 1.3 tool (ltigate
//! or the pylti1p3 baseline): all logins are timed, then every id_token is
//! signed (not timed, so the client's RSA signing is never the bottleneck),
//! then all launches are timed; the rate is launches / (login + launch time).
//!
//! The client shares the cores with the tool it measures, so it is kept
//! lean: one single-threaded runtime, and `concurrency` workers that each
//! keep one HTTP/1.1 connection (reopened when the tool closes it, as
//! gunicorn's sync workers do after every response).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::KeyPair as _;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode, header};
use http_body_util::{BodyExt as _, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

const ISSUER: &str = "https://bench-platform.test";
const CLIENT_ID: &str = "bench-client";
const DEPLOYMENT: &str = "bench-deployment";
const KID: &str = "bench-key";

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn need(args: &[String], name: &str) -> String {
    arg(args, name).unwrap_or_else(|| panic!("missing {name}"))
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    ltigate::install_crypto_provider();
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("keys") => keys(&args[2]),
        Some("session") => {
            let flow = Flow::new(&args);
            let cookies = flow.launch_once().await;
            println!("{cookies}");
        }
        Some("launches") => {
            let flow = Flow::new(&args);
            let n: usize = need(&args, "--n").parse().expect("--n");
            let concurrency: usize =
                arg(&args, "--concurrency").map_or(32, |c| c.parse().expect("--concurrency"));
            let report = flow.launches(n, concurrency).await;
            println!("{report}");
        }
        _ => {
            eprintln!(
                "usage: bench_client keys DIR | session ARGS | launches ARGS --n N [--concurrency C]"
            );
            std::process::exit(64);
        }
    }
}

/// Writes `platform.pem` and `jwks.json` into `dir`.
fn keys(dir: &str) {
    let pair = KeyPair::generate(KeySize::Rsa2048).expect("keygen");
    let pkcs8 = AsDer::<aws_lc_rs::encoding::Pkcs8V1Der<'static>>::as_der(&pair).expect("pkcs8");
    let pem = pem::encode(&pem::Pem::new("PRIVATE KEY", pkcs8.as_ref().to_vec()));
    let public = pair.public_key();
    let jwks = json!({"keys": [{
        "kty": "RSA", "kid": KID, "alg": "RS256", "use": "sig",
        "n": URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero()),
        "e": URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero()),
    }]});
    std::fs::write(format!("{dir}/platform.pem"), pem).expect("write pem");
    std::fs::write(format!("{dir}/jwks.json"), jwks.to_string()).expect("write jwks");
}

struct Flow {
    /// The tool's address: the login URL's and every launch URL's.
    addr: SocketAddr,
    login_url: url::Url,
    target: String,
    key: EncodingKey,
}

/// One login's outcome: what the launch needs.
struct Pending {
    state: String,
    nonce: String,
    /// The launch URL's path and query.
    redirect_path: String,
    cookie: String,
}

/// What the workers do: every login, or every launch of the signed logins.
#[derive(Clone)]
enum Phase {
    Logins,
    Launches(Arc<Vec<(Pending, String)>>),
}

/// One keep-alive HTTP/1.1 connection to the tool, reopened when closed.
struct Conn {
    addr: SocketAddr,
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl Conn {
    fn new(addr: SocketAddr) -> Self {
        Self { addr, sender: None }
    }

    /// Sends `request` and reads the whole response.
    async fn send(&mut self, request: Request<Full<Bytes>>) -> (StatusCode, HeaderMap, Bytes) {
        let sender = loop {
            if let Some(sender) = self.sender.as_mut()
                && sender.ready().await.is_ok()
            {
                break sender;
            }
            let stream = tokio::net::TcpStream::connect(self.addr)
                .await
                .expect("connect to the tool");
            stream.set_nodelay(true).expect("nodelay");
            let (sender, connection) = http1::handshake(TokioIo::new(stream))
                .await
                .expect("handshake");
            tokio::spawn(connection);
            self.sender = Some(sender);
        };
        let response: Response<_> = sender.send_request(request).await.expect("request");
        let (parts, body) = response.into_parts();
        let body = body.collect().await.expect("response body").to_bytes();
        (parts.status, parts.headers, body)
    }
}

/// `name=value` of each `Set-Cookie`, joined as a `Cookie` header.
fn cookies(headers: &HeaderMap, keep: impl Fn(&str) -> bool) -> String {
    headers
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|c| c.split(';').next())
        .filter(|c| keep(c))
        .collect::<Vec<_>>()
        .join("; ")
}

/// CPU time this process has used (user + system), from `/proc/self/stat`,
/// in clock ticks of 10 ms.
fn cpu_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("read /proc/self/stat");
    // Fields after the command name, which is in parentheses.
    let rest = &stat[stat.rfind(')').expect("stat format") + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 here.
    fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime")
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("time")
        .as_secs()
}

impl Flow {
    fn new(args: &[String]) -> Self {
        let pem = std::fs::read(need(args, "--key")).expect("read key");
        let login_url = url::Url::parse(&need(args, "--login")).expect("--login");
        let addr = login_url
            .socket_addrs(|| None)
            .expect("login address")
            .into_iter()
            .next()
            .expect("login address");
        Self {
            addr,
            login_url,
            target: need(args, "--target"),
            key: EncodingKey::from_rsa_pem(&pem).expect("key"),
        }
    }

    fn host(&self) -> String {
        self.login_url[url::Position::BeforeHost..url::Position::AfterPort].to_owned()
    }

    async fn login(&self, conn: &mut Conn, hint: usize) -> Pending {
        let query = form_urlencoded::Serializer::new(String::new())
            .append_pair("iss", ISSUER)
            .append_pair("login_hint", &format!("learner-{hint}"))
            .append_pair("target_link_uri", &self.target)
            .append_pair("client_id", CLIENT_ID)
            .append_pair("lti_deployment_id", DEPLOYMENT)
            .finish();
        let request = Request::get(format!("{}?{query}", self.login_url.path()))
            .header(header::HOST, self.host())
            .body(Full::default())
            .expect("login request");
        let (status, headers, _) = conn.send(request).await;
        assert!(status.is_redirection(), "login answered {status}");
        let location = headers[header::LOCATION].to_str().expect("location");
        let auth = url::Url::parse(location).expect("auth url");
        let param = |name: &str| {
            auth.query_pairs()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.into_owned())
                .unwrap_or_else(|| panic!("no {name} in the auth redirect"))
        };
        let redirect = url::Url::parse(&param("redirect_uri")).expect("redirect_uri");
        assert_eq!(
            redirect.socket_addrs(|| None).expect("redirect address")[0],
            self.addr,
            "the launch goes to the login's host"
        );
        Pending {
            state: param("state"),
            nonce: param("nonce"),
            redirect_path: redirect[url::Position::BeforePath..url::Position::AfterQuery]
                .to_owned(),
            cookie: cookies(&headers, |_| true),
        }
    }

    fn sign(&self, p: &Pending, sub: usize) -> String {
        let t = now();
        let claims = json!({
            "iss": ISSUER, "aud": CLIENT_ID, "sub": format!("learner-{sub}"),
            "iat": t, "exp": t + 600, "nonce": p.nonce,
            "name": "Bench Learner", "email": "bench@example.edu",
            "https://purl.imsglobal.org/spec/lti/claim/version": "1.3.0",
            "https://purl.imsglobal.org/spec/lti/claim/message_type": "LtiResourceLinkRequest",
            "https://purl.imsglobal.org/spec/lti/claim/deployment_id": DEPLOYMENT,
            "https://purl.imsglobal.org/spec/lti/claim/roles": ["http://purl.imsglobal.org/vocab/lis/v2/membership#Learner"],
            "https://purl.imsglobal.org/spec/lti/claim/resource_link": {"id": "bench-link"},
            "https://purl.imsglobal.org/spec/lti/claim/target_link_uri": self.target,
        });
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(KID.to_owned());
        jsonwebtoken::encode(&header, &claims, &self.key).expect("sign")
    }

    /// Posts a launch; returns the cookies it set.
    async fn launch(&self, conn: &mut Conn, p: &Pending, token: &str) -> String {
        let form = form_urlencoded::Serializer::new(String::new())
            .append_pair("id_token", token)
            .append_pair("state", &p.state)
            .finish();
        let request = Request::post(p.redirect_path.as_str())
            .header(header::HOST, self.host())
            .header(header::COOKIE, p.cookie.as_str())
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Full::new(Bytes::from(form)))
            .expect("launch request");
        let (status, headers, body) = conn.send(request).await;
        assert!(
            status.is_success() || status.is_redirection(),
            "launch answered {status}: {}",
            String::from_utf8_lossy(&body)
                .chars()
                .take(300)
                .collect::<String>()
        );
        cookies(&headers, |c| !c.ends_with('='))
    }

    async fn launch_once(&self) -> String {
        let mut conn = Conn::new(self.addr);
        let p = self.login(&mut conn, 0).await;
        let token = self.sign(&p, 0);
        self.launch(&mut conn, &p, &token).await
    }

    /// Runs `phase` for every `i` in `0..n` on `concurrency` workers, each
    /// with its own connection; returns the logins' outcomes in order.
    async fn run_all(self: &Arc<Self>, n: usize, concurrency: usize, phase: Phase) -> Vec<Pending> {
        let next = Arc::new(AtomicUsize::new(0));
        let mut workers = Vec::with_capacity(concurrency);
        for _ in 0..concurrency {
            let (flow, next, phase) = (self.clone(), next.clone(), phase.clone());
            workers.push(tokio::spawn(async move {
                let mut conn = Conn::new(flow.addr);
                let mut logins = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        return logins;
                    }
                    match &phase {
                        Phase::Logins => logins.push((i, flow.login(&mut conn, i).await)),
                        Phase::Launches(signed) => {
                            let (p, token) = &signed[i];
                            flow.launch(&mut conn, p, token).await;
                        }
                    }
                }
            }));
        }
        let mut logins = Vec::with_capacity(n);
        for w in workers {
            logins.extend(w.await.expect("worker"));
        }
        logins.sort_by_key(|(i, _)| *i);
        logins.into_iter().map(|(_, p)| p).collect()
    }

    async fn launches(self, n: usize, concurrency: usize) -> Value {
        let flow = Arc::new(self);
        let cpu_before_logins = cpu_ticks();
        let started = Instant::now();
        let pending = flow.run_all(n, concurrency, Phase::Logins).await;
        let login_secs = started.elapsed().as_secs_f64();
        let login_ticks = cpu_ticks() - cpu_before_logins;
        // Not timed: the platform's signing, on every core (it is most of
        // the benchmark's wall time otherwise).
        let threads = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        let chunk = pending.len().div_ceil(threads).max(1);
        let tokens: Vec<String> = std::thread::scope(|scope| {
            let workers: Vec<_> = pending
                .chunks(chunk)
                .enumerate()
                .map(|(c, part)| {
                    let flow = &flow;
                    scope.spawn(move || {
                        part.iter()
                            .enumerate()
                            .map(|(i, p)| flow.sign(p, c * chunk + i))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            workers
                .into_iter()
                .flat_map(|w| w.join().expect("signing thread"))
                .collect()
        });
        let signed: Arc<Vec<(Pending, String)>> =
            Arc::new(pending.into_iter().zip(tokens).collect());
        let cpu_before_launches = cpu_ticks();
        let started = Instant::now();
        flow.run_all(n, concurrency, Phase::Launches(signed)).await;
        let launch_secs = started.elapsed().as_secs_f64();
        let timed_ticks = login_ticks + cpu_ticks() - cpu_before_launches;
        json!({
            "n": n,
            "login_secs": login_secs,
            "launch_secs": launch_secs,
            "per_sec": n as f64 / (login_secs + launch_secs),
            // This client's own CPU in the timed phases: it shares the cores.
            "client_cpu_us_per_round_trip": timed_ticks as f64 * 10_000.0 / n as f64,
        })
    }
}
