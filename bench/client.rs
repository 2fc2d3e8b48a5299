//! The benchmark's LTI platform client: makes keys, sessions and launches.
//!
//! `keys DIR` writes a platform key pair and its JWKS. `session` performs one
//! full launch and prints the gateway's session cookie. `launches` measures
//! full login → auth → launch round trips against any LTI 1.3 tool (ltigate
//! or the pylti1p3 baseline): all logins are timed, then every id_token is
//! signed (not timed, so the client's RSA signing is never the bottleneck),
//! then all launches are timed; the rate is launches / (login + launch time).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::KeyPair as _;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use tokio::sync::Semaphore;

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

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
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
    http: reqwest::Client,
    login_url: String,
    target: String,
    key: EncodingKey,
}

/// One login's outcome: what the launch needs.
struct Pending {
    state: String,
    nonce: String,
    redirect_uri: String,
    cookie: String,
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
        Self {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .pool_max_idle_per_host(256)
                .build()
                .expect("client"),
            login_url: need(args, "--login"),
            target: need(args, "--target"),
            key: EncodingKey::from_rsa_pem(&pem).expect("key"),
        }
    }

    async fn login(&self, hint: usize) -> Pending {
        let r = self
            .http
            .get(&self.login_url)
            .query(&[
                ("iss", ISSUER),
                ("login_hint", &format!("learner-{hint}")),
                ("target_link_uri", &self.target),
                ("client_id", CLIENT_ID),
                ("lti_deployment_id", DEPLOYMENT),
            ])
            .send()
            .await
            .expect("login request");
        assert!(r.status().is_redirection(), "login answered {}", r.status());
        let location = r.headers()["location"]
            .to_str()
            .expect("location")
            .to_owned();
        let cookie = r
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(|c| c.split(';').next())
            .collect::<Vec<_>>()
            .join("; ");
        let query: HashMap<String, String> = url::Url::parse(&location)
            .expect("auth url")
            .query_pairs()
            .into_owned()
            .collect();
        Pending {
            state: query["state"].clone(),
            nonce: query["nonce"].clone(),
            redirect_uri: query["redirect_uri"].clone(),
            cookie,
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
    async fn launch(&self, p: &Pending, token: &str) -> String {
        let r = self
            .http
            .post(&p.redirect_uri)
            .header("cookie", &p.cookie)
            .form(&[("id_token", token), ("state", p.state.as_str())])
            .send()
            .await
            .expect("launch request");
        let status = r.status();
        let cookies = r
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(|c| c.split(';').next())
            .filter(|c| !c.ends_with('='))
            .collect::<Vec<_>>()
            .join("; ");
        let body = r.text().await.unwrap_or_default();
        assert!(
            status.is_success() || status.is_redirection(),
            "launch answered {status}: {}",
            body.chars().take(300).collect::<String>()
        );
        cookies
    }

    async fn launch_once(&self) -> String {
        let p = self.login(0).await;
        let token = self.sign(&p, 0);
        self.launch(&p, &token).await
    }

    async fn launches(self, n: usize, concurrency: usize) -> Value {
        let flow = Arc::new(self);
        let gate = Arc::new(Semaphore::new(concurrency));
        let cpu_before_logins = cpu_ticks();
        let started = Instant::now();
        let mut tasks = Vec::with_capacity(n);
        for i in 0..n {
            let (flow, gate) = (flow.clone(), gate.clone());
            tasks.push(tokio::spawn(async move {
                let _permit = gate.acquire_owned().await.expect("semaphore");
                flow.login(i).await
            }));
        }
        let mut pending = Vec::with_capacity(n);
        for t in tasks {
            pending.push(t.await.expect("login task"));
        }
        let login_secs = started.elapsed().as_secs_f64();
        let login_ticks = cpu_ticks() - cpu_before_logins;
        // Not timed: the platform's signing.
        let signed: Vec<(Pending, String)> = pending
            .into_iter()
            .enumerate()
            .map(|(i, p)| {
                let t = flow.sign(&p, i);
                (p, t)
            })
            .collect();
        let cpu_before_launches = cpu_ticks();
        let started = Instant::now();
        let mut tasks = Vec::with_capacity(n);
        for (p, token) in signed {
            let (flow, gate) = (flow.clone(), gate.clone());
            tasks.push(tokio::spawn(async move {
                let _permit = gate.acquire_owned().await.expect("semaphore");
                flow.launch(&p, &token).await
            }));
        }
        for t in tasks {
            t.await.expect("launch task");
        }
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
