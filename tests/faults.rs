//! The fault suite (issue 17, "Nothing lost"): faults injected while load
//! runs, and an account of what every acknowledgement promised.
//!
//! - SIGKILL cycles of the real `ltigate` binary under launch and score
//!   load, on the embedded store and on Redis;
//! - Redis killed and restarted under load, with persistence
//!   (`appendfsync always`) and without;
//! - a platform that refuses connections, answers 500, answers 429 with
//!   `Retry-After`, stalls, then recovers;
//! - SIGTERM with a delivery and a long request in flight.
//!
//! Everything is real: the binary (or, for the platform case, the gateway
//! in process), the test platform's OIDC and AGS endpoints with real signed
//! JWTs, a test LMS behind the gated proxy, and `redis-server`. Each case
//! prints its figures to stderr; the assertions are about correctness
//! (nothing acknowledged is lost, refusals fail closed, the last score
//! wins). Timing figures are printed, never asserted: every wait has a
//! generous bound that only catches a hang.
//!
//! `cargo nextest run` runs the short cases; `faults/run` the full suite.
//! `LTIGATE_FAULT_ROUNDS` (SIGKILLs per store, default 3),
//! `LTIGATE_FAULT_OUTAGES` (Redis outages per case, default 1) and
//! `LTIGATE_FAULT_DRAIN_SEC` (how long deliveries may take to land after
//! the faults, default 30) size it; see faults/README.md.

mod support;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rand::Rng as _;
use serde_json::{Value, json};
use support::platform::{Fault, SCORE_SCOPE};
use support::process::{GatewayProcess, free_port};
use support::*;

const SCORE_TOKEN: &str = "fault-suite-score-token-0123456789";
/// Every score is `earned / POSSIBLE`, `earned` being the change's number:
/// each change's value is unique, so a landed score names its change.
const POSSIBLE: f64 = 1e9;
/// The bound of every request and wait: a hang detector, not a timing
/// assertion.
const HANG: Duration = Duration::from_secs(30);
const RESOURCE_LINK: &str = "https://purl.imsglobal.org/spec/lti/claim/resource_link";
const AGS_ENDPOINT: &str = "https://purl.imsglobal.org/spec/lti-ags/claim/endpoint";

/// A numeric setting from the environment.
fn setting(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a whole number")),
        Err(_) => default,
    }
}

fn drain_bound() -> Duration {
    Duration::from_secs(setting("LTIGATE_FAULT_DRAIN_SEC", 30))
}

/// The `modified` time of score change `seq`: one millisecond apart, in
/// the format ltigate sends, so that they order as text.
fn stamp(seq: u64) -> String {
    assert!(seq < 86_400_000, "one day of milliseconds is enough");
    let (s, ms) = (seq / 1000, seq % 1000);
    format!(
        "2026-01-01T{:02}:{:02}:{:02}.{ms:03}Z",
        s / 3600,
        (s / 60) % 60,
        s % 60
    )
}

fn seconds(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

fn redis_store(redis: &RedisServer) -> String {
    format!(
        "kind = \"redis\"\nurl = \"{}\"\nkey_prefix = \"ltigate:\"",
        redis.url()
    )
}

/// A case's figures, printed to stderr as a two-column table.
struct Figures {
    case: String,
    rows: Vec<(String, String)>,
}

impl Figures {
    fn new(case: &str) -> Self {
        Self {
            case: case.to_owned(),
            rows: Vec::new(),
        }
    }

    fn add(&mut self, name: &str, value: impl std::fmt::Display) {
        self.rows.push((name.to_owned(), value.to_string()));
    }

    fn print(&self) {
        let width = self.rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        let mut out = format!("\n== faults: {} ==\n", self.case);
        for (k, v) in &self.rows {
            out.push_str(&format!("  {k:<width$}  {v}\n"));
        }
        eprint!("{out}");
    }
}

/// Counts by outcome, printed as `302: 40, login 503: 3`.
fn tally(counts: &BTreeMap<String, usize>) -> String {
    if counts.is_empty() {
        return "none".to_owned();
    }
    counts
        .iter()
        .map(|(k, n)| format!("{k}: {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The first `n` items of a list of failures, for a message.
fn some(list: &[String], n: usize) -> String {
    let mut shown: Vec<&str> = list.iter().take(n).map(String::as_str).collect();
    if list.len() > n {
        shown.push("…");
    }
    shown.join("\n  ")
}

// ---------------------------------------------------------------- the ledger

/// A learner whose launch was acknowledged: 302 with a session cookie.
struct Learner {
    n: usize,
    browser: Browser,
    /// How many Redis restarts had happened when it was acknowledged.
    epoch: usize,
}

/// One score change the LMS posted.
#[derive(Clone)]
struct Change {
    timestamp: String,
    earned: f64,
    /// Answered 202 with one delivery queued.
    acked: bool,
}

/// What was asked of the gateway and what it answered.
#[derive(Default)]
struct Ledger {
    learners: Vec<Arc<Learner>>,
    launch_outcomes: BTreeMap<String, usize>,
    score_outcomes: BTreeMap<String, usize>,
    /// Every change posted, per learner, in order.
    changes: HashMap<usize, Vec<Change>>,
    /// Acknowledged learners whose score change the gateway did not know
    /// (404, or 202 with nothing queued): a lost graded resource, with the
    /// first answer. The load posts no more changes for them.
    unknown: BTreeMap<usize, String>,
    /// Requests that got no answer within [`HANG`].
    hung: usize,
    epoch: usize,
}

/// What became of a launch attempt.
enum Launched {
    Acked,
    Refused(String),
    Failed(String),
}

/// What became of a score change.
enum Posted {
    Acked,
    Unknown(String),
    Refused(String),
    Failed(String),
}

/// Where the platform sees learner `n`'s scores arrive.
fn scores_target(n: usize) -> String {
    format!("/lineitems/{n}/lineitem/scores")
}

/// The score API's body for `change` of learner `n`, who is named by LTI
/// identity, on [`USAGE`] (a leaf: sent at once).
fn score_event(platform: &TestPlatform, n: usize, change: &Change) -> Value {
    json!({
        "lti": {
            "issuer": platform.issuer,
            "client_id": platform.client_id,
            "sub": format!("learner-{n}"),
        },
        "course_key": COURSE,
        "usage_key": USAGE,
        "earned": change.earned,
        "possible": POSSIBLE,
        "modified": change.timestamp,
    })
}

/// The AGS endpoint claim of learner `n`'s graded launch: line item `n`.
fn ags_claim(platform: &TestPlatform, n: usize) -> Value {
    json!({
        "scope": [SCORE_SCOPE],
        "lineitem": format!("{}/lineitems/{n}/lineitem", platform.base_url()),
    })
}

fn transport(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "hung".to_owned()
    } else {
        "no answer".to_owned()
    }
}

// ---------------------------------------------------------------- the rig

/// A test platform, a test LMS, a gateway config with `[grades]` on a store,
/// and the ledger of the load driven through it.
struct Rig {
    platform: TestPlatform,
    upstream: TestUpstream,
    dir: tempfile::TempDir,
    config: PathBuf,
    port: u16,
    grades_port: u16,
    grace: Duration,
    /// The LMS's client of the score API.
    lms: reqwest::Client,
    ledger: Mutex<Ledger>,
    next_learner: AtomicUsize,
    next_change: AtomicU64,
}

impl Rig {
    /// `rules` are extra `[[rules]]` after the shipped ones.
    async fn new(store: Option<String>, upstream: TestUpstream, rules: &str) -> Arc<Self> {
        let platform = TestPlatform::start().await;
        let port = free_port();
        let grades_port = loop {
            let p = free_port();
            if p != port {
                break p;
            }
        };
        let public = format!("http://127.0.0.1:{port}");
        let opts = GatewayOptions {
            store,
            // Every simulated learner connects from 127.0.0.1.
            server_extra: "max_connections_per_ip = 10000".into(),
            public_url: Some(public.clone()),
            upstream: Some(upstream.url()),
            extra: format!(
                "{rules}\n[grades]\nlisten = \"127.0.0.1:{grades_port}\"\n\
                 token = \"{SCORE_TOKEN}\"\npoll_interval_ms = 50\nmax_attempts = 100\n"
            ),
            ..Default::default()
        };
        let dir = tempfile::tempdir().expect("tempdir");
        let text = Gateway::config_text(&platform, &opts, port, dir.path());
        let grace = text
            .lines()
            .find_map(|l| l.strip_prefix("shutdown_grace_sec = "))
            .and_then(|v| v.trim().parse().ok())
            .map(Duration::from_secs)
            .expect("the test config sets shutdown_grace_sec");
        let config = dir.path().join("gateway.toml");
        std::fs::write(&config, text).expect("write config");
        platform.set_tool_jwks_url(&format!("{public}/lti/1p3/pub/jwks/"));
        ltigate::install_crypto_provider();
        let lms = reqwest::Client::builder()
            .timeout(HANG)
            .build()
            .expect("client");
        Arc::new(Self {
            platform,
            upstream,
            dir,
            config,
            port,
            grades_port,
            grace,
            lms,
            ledger: Mutex::new(Ledger::default()),
            next_learner: AtomicUsize::new(1),
            next_change: AtomicU64::new(1),
        })
    }

    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn grades(&self) -> String {
        format!("http://127.0.0.1:{}", self.grades_port)
    }

    fn ledger(&self) -> std::sync::MutexGuard<'_, Ledger> {
        self.ledger.lock().expect("ledger")
    }

    /// Starts `ltigate serve` on this rig's config and store and waits
    /// until it is healthy.
    async fn start(&self, name: &str) -> GatewayProcess {
        let log = self.dir.path().join(format!("{name}.log"));
        let mut p = GatewayProcess::spawn(&self.config, self.port, log);
        p.wait_healthy(&self.lms).await;
        p
    }

    /// A graded launch of learner `n`: the OIDC login at the gateway, the
    /// platform's check of the auth request it was sent to and its signed
    /// id_token (learner `n`, resource link `rl-n`, an AGS claim for line
    /// item `n`), the launch POST.
    async fn launch(&self, browser: &Browser, n: usize) -> Launched {
        let target = format!("{}{}", self.base(), display_path(USAGE));
        let login = browser
            .http
            .get(format!("{}/lti/1p3/login/", self.base()))
            .query(&[
                ("iss", self.platform.issuer.as_str()),
                ("login_hint", &format!("learner-{n}")),
                ("target_link_uri", &target),
                ("lti_message_hint", &target),
                ("client_id", self.platform.client_id.as_str()),
            ])
            .timeout(HANG)
            .send()
            .await;
        let login = match login {
            Ok(r) => r,
            Err(e) => return Launched::Failed(format!("login {}", transport(&e))),
        };
        if login.status() != 302 {
            return Launched::Refused(format!("login {}", login.status().as_u16()));
        }
        let location = login.headers()["location"]
            .to_str()
            .expect("ascii")
            .to_owned();
        let auth = self
            .platform
            .parse_auth_request(&location)
            .unwrap_or_else(|e| panic!("the platform refuses the gateway's auth request: {e}"));
        let mut claims = self.platform.claims(&auth, &target);
        claims["sub"] = json!(format!("learner-{n}"));
        claims[RESOURCE_LINK] = json!({"id": format!("rl-{n}"), "title": format!("Problem {n}")});
        claims[AGS_ENDPOINT] = ags_claim(&self.platform, n);
        let id_token = self.platform.sign(&claims);
        let launch = browser
            .http
            .post(&auth.redirect_uri)
            .form(&[
                ("id_token", id_token.as_str()),
                ("state", auth.state.as_str()),
            ])
            .timeout(HANG)
            .send()
            .await;
        let launch = match launch {
            Ok(r) => r,
            Err(e) => return Launched::Failed(format!("launch {}", transport(&e))),
        };
        let status = launch.status().as_u16();
        let session = launch.headers().get_all("set-cookie").iter().any(|c| {
            c.to_str()
                .is_ok_and(|c| c.starts_with("ltigate_session=") && !c.contains("Max-Age=0"))
        });
        if status == 302 && session {
            return Launched::Acked;
        }
        let body = launch.text().await.unwrap_or_default();
        let reason = body
            .split_once("<code>")
            .and_then(|(_, rest)| rest.split_once("</code>"))
            .map(|(code, _)| format!(" {code}"))
            .unwrap_or_default();
        Launched::Refused(format!("launch {status}{reason}"))
    }

    fn record_launch(&self, n: usize, browser: Browser, outcome: &Launched) {
        let mut ledger = self.ledger();
        let key = match outcome {
            Launched::Acked => {
                let epoch = ledger.epoch;
                ledger
                    .learners
                    .push(Arc::new(Learner { n, browser, epoch }));
                "302 with a session".to_owned()
            }
            Launched::Refused(what) => what.clone(),
            Launched::Failed(what) => {
                if what.ends_with("hung") {
                    ledger.hung += 1;
                }
                what.clone()
            }
        };
        *ledger.launch_outcomes.entry(key).or_default() += 1;
    }

    /// Posts learner `n`'s next score change to the score API, as the LMS
    /// does (naming the learner by LTI identity), and records it.
    async fn score_change(&self, n: usize) -> Posted {
        let seq = self.next_change.fetch_add(1, Ordering::SeqCst);
        let change = Change {
            timestamp: stamp(seq),
            earned: seq as f64,
            acked: false,
        };
        self.ledger()
            .changes
            .entry(n)
            .or_default()
            .push(change.clone());
        let body = score_event(&self.platform, n, &change);
        let answer = self
            .lms
            .post(format!("{}/scores", self.grades()))
            .bearer_auth(SCORE_TOKEN)
            .json(&body)
            .send()
            .await;
        let posted = match answer {
            Err(e) => Posted::Failed(transport(&e)),
            Ok(r) => {
                let status = r.status().as_u16();
                let body: Value = r.json().await.unwrap_or(Value::Null);
                let queued = body["queued"].as_array().map_or(0, Vec::len);
                match (status, queued) {
                    (202, 1) => Posted::Acked,
                    (202, 0) => Posted::Unknown("202 with nothing queued".to_owned()),
                    (404, _) => Posted::Unknown(format!("404 {}", body["reason"])),
                    _ => Posted::Refused(format!("{status} {}", body["reason"])),
                }
            }
        };
        let mut ledger = self.ledger();
        let key = match &posted {
            Posted::Acked => {
                if let Some(c) = ledger.changes.get_mut(&n).and_then(|list| {
                    list.iter_mut()
                        .rev()
                        .find(|c| c.timestamp == change.timestamp)
                }) {
                    c.acked = true;
                }
                "202".to_owned()
            }
            Posted::Unknown(what) => {
                ledger.unknown.entry(n).or_insert_with(|| what.clone());
                what.clone()
            }
            Posted::Refused(what) => what.clone(),
            Posted::Failed(what) => {
                if what == "hung" {
                    ledger.hung += 1;
                }
                what.clone()
            }
        };
        *ledger.score_outcomes.entry(key).or_default() += 1;
        posted
    }

    /// The deliveries the gateway has queued (pending or failed).
    async fn queued(&self) -> Vec<Value> {
        let r = self
            .lms
            .get(format!("{}/deliveries", self.grades()))
            .bearer_auth(SCORE_TOKEN)
            .send()
            .await
            .expect("the delivery list");
        assert_eq!(r.status(), 200, "the delivery list");
        let body: Value = r.json().await.expect("JSON");
        body["deliveries"].as_array().cloned().unwrap_or_default()
    }

    /// GETs the launched content with each learner's browser; returns each
    /// learner's status (0: no answer, after retries of a transport error,
    /// which a connection pooled to a killed process gives).
    async fn open_all(&self, learners: &[Arc<Learner>]) -> Vec<(Arc<Learner>, u16)> {
        let url = format!("{}{}", self.base(), display_path(USAGE));
        let limit = Arc::new(tokio::sync::Semaphore::new(8));
        let mut set = tokio::task::JoinSet::new();
        for learner in learners {
            let (learner, url, limit) = (learner.clone(), url.clone(), limit.clone());
            set.spawn(async move {
                let _permit = limit.acquire().await.expect("semaphore");
                let mut status = 0;
                for _ in 0..3 {
                    if let Ok(r) = learner.browser.http.get(&url).timeout(HANG).send().await {
                        status = r.status().as_u16();
                        break;
                    }
                }
                (learner, status)
            });
        }
        let mut out = Vec::new();
        while let Some(done) = set.join_next().await {
            out.push(done.expect("a content check panicked"));
        }
        out.sort_by_key(|(l, _)| l.n);
        out
    }

    /// Posts one more change for each of `who`, a probe that their graded
    /// resource is still known; returns those that were not accepted.
    async fn probe_resources(self: &Arc<Self>, who: &[usize]) -> Vec<(usize, String)> {
        let limit = Arc::new(tokio::sync::Semaphore::new(8));
        let mut set = tokio::task::JoinSet::new();
        for &n in who {
            let (rig, limit) = (self.clone(), limit.clone());
            set.spawn(async move {
                let _permit = limit.acquire().await.expect("semaphore");
                let mut last = String::new();
                for _ in 0..3 {
                    match rig.score_change(n).await {
                        Posted::Acked => return None,
                        Posted::Unknown(what) | Posted::Refused(what) => return Some((n, what)),
                        Posted::Failed(what) => last = what,
                    }
                }
                Some((n, last))
            });
        }
        let mut refused = Vec::new();
        while let Some(done) = set.join_next().await {
            refused.extend(done.expect("a probe panicked"));
        }
        refused.sort();
        refused
    }

    /// Compares the platform's scores with the last acknowledged change of
    /// each learner: returns those not there yet, and scores the platform
    /// keeps that nobody posted.
    fn compare(&self, owed: &[(usize, Change)]) -> (Vec<(usize, Change)>, Vec<String>) {
        let finals = self.platform.final_scores();
        let ledger = self.ledger();
        let (mut pending, mut wrong) = (Vec::new(), Vec::new());
        for (n, last) in owed {
            let key = (format!("learner-{n}"), scores_target(*n));
            let Some(kept) = finals.get(&key).map(|r| r.json()) else {
                pending.push((*n, last.clone()));
                continue;
            };
            let timestamp = kept["timestamp"].as_str().unwrap_or_default();
            let given = kept["scoreGiven"].as_f64().unwrap_or(-1.0);
            if timestamp < last.timestamp.as_str() {
                pending.push((*n, last.clone()));
            } else if !ledger.changes[n]
                .iter()
                .any(|c| c.timestamp == timestamp && c.earned == given)
            {
                wrong.push(format!(
                    "learner {n}: the platform keeps {given} at {timestamp}, a score that was never posted"
                ));
            }
        }
        (pending, wrong)
    }

    /// Waits (up to `drain`) until the platform's score of each of `who`
    /// (the AGS rule: the newest timestamp wins) is their last acknowledged
    /// change, or a later one that was sent; then sorts the rest into
    /// stalled (still queued in the gateway, so not lost) and lost.
    async fn await_owed(&self, who: &[usize], drain: Duration) -> Owed {
        let owed: Vec<(usize, Change)> = {
            let ledger = self.ledger();
            who.iter()
                .filter_map(|n| {
                    let last = ledger.changes.get(n)?.iter().rev().find(|c| c.acked)?;
                    Some((*n, last.clone()))
                })
                .collect()
        };
        let started = Instant::now();
        let mut result = Owed {
            owed: owed.len(),
            ..Owed::default()
        };
        let pending = loop {
            let (pending, wrong) = self.compare(&owed);
            result.wrong = wrong;
            if pending.is_empty() || started.elapsed() > drain {
                break pending;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        result.waited = started.elapsed();
        result.delivered = owed.len() - pending.len();
        let queued = if pending.is_empty() {
            Vec::new()
        } else {
            self.queued().await
        };
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("time")
            .as_secs();
        for (n, last) in pending {
            let sub = format!("learner-{n}");
            let waiting = queued.iter().find(|d| {
                d["resource"]["sub"] == sub.as_str()
                    && d["state"] == "pending"
                    && d["timestamp"].as_str().unwrap_or_default() >= last.timestamp.as_str()
            });
            match waiting {
                Some(d) => result
                    .stalled
                    .push((n, d["due_at"].as_u64().unwrap_or(0).saturating_sub(now))),
                None => result.lost.push(format!(
                    "learner {n}: the change at {} was acknowledged, never delivered, and is not queued",
                    last.timestamp
                )),
            }
        }
        result
    }
}

/// What became of the score changes owed to a set of learners.
#[derive(Default)]
struct Owed {
    /// Learners with an acknowledged change.
    owed: usize,
    delivered: usize,
    /// Not delivered within the drain bound but still queued: (learner,
    /// seconds until the delivery is due, or its lease ends).
    stalled: Vec<(usize, u64)>,
    lost: Vec<String>,
    /// A platform score that matches no change posted: always a bug.
    wrong: Vec<String>,
    waited: Duration,
}

impl Owed {
    fn summary(&self) -> String {
        let mut s = format!(
            "{} of {} delivered in {}",
            self.delivered,
            self.owed,
            seconds(self.waited)
        );
        if !self.stalled.is_empty() {
            let longest = self.stalled.iter().map(|(_, due)| *due).max().unwrap_or(0);
            s.push_str(&format!(
                "; {} stalled, still queued (due in up to {longest} s)",
                self.stalled.len()
            ));
        }
        if !self.lost.is_empty() {
            s.push_str(&format!("; {} LOST", self.lost.len()));
        }
        s
    }
}

/// The platform's view: scores taken, resends, arrival out of order, and
/// resends that differ (never allowed).
struct Taken {
    accepted: usize,
    duplicates: usize,
    reordered: usize,
    inconsistent: Vec<String>,
}

fn taken(platform: &TestPlatform) -> Taken {
    let scores = platform.scores();
    let mut by_item: BTreeMap<(String, String), Vec<(String, f64)>> = BTreeMap::new();
    for s in &scores {
        let body = s.json();
        by_item
            .entry((
                body["userId"].as_str().unwrap_or_default().to_owned(),
                s.target.clone(),
            ))
            .or_default()
            .push((
                body["timestamp"].as_str().unwrap_or_default().to_owned(),
                body["scoreGiven"].as_f64().unwrap_or(-1.0),
            ));
    }
    let (mut duplicates, mut reordered, mut inconsistent) = (0, 0, Vec::new());
    for ((user, target), list) in &by_item {
        let mut seen: HashMap<&str, f64> = HashMap::new();
        for (timestamp, given) in list {
            match seen.insert(timestamp, *given) {
                Some(before) if before != *given => inconsistent.push(format!(
                    "{user} on {target}: {before} and then {given}, both at {timestamp}"
                )),
                Some(_) => duplicates += 1,
                None => {}
            }
        }
        let newest = list.iter().map(|(t, _)| t).max();
        if list.last().map(|(t, _)| t) != newest {
            reordered += 1;
        }
    }
    Taken {
        accepted: scores.len(),
        duplicates,
        reordered,
        inconsistent,
    }
}

// ---------------------------------------------------------------- load

/// Launch and score load: `launchers` tasks launching new learners, one
/// after another, and `scorers` tasks posting score changes for the
/// acknowledged learners (each learner belongs to one scorer, so its
/// changes go out in order, as the LMS sends them).
struct Load {
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(rig: &Arc<Rig>, launchers: usize, scorers: usize) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let mut tasks = Vec::new();
        for _ in 0..launchers {
            let (rig, stop) = (rig.clone(), stop.clone());
            tasks.push(tokio::spawn(async move {
                while !stop.load(Ordering::SeqCst) {
                    let n = rig.next_learner.fetch_add(1, Ordering::SeqCst);
                    let browser = Browser::new();
                    let outcome = rig.launch(&browser, n).await;
                    let acked = matches!(outcome, Launched::Acked);
                    rig.record_launch(n, browser, &outcome);
                    if !acked {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            }));
        }
        for i in 0..scorers {
            let (rig, stop) = (rig.clone(), stop.clone());
            tasks.push(tokio::spawn(async move {
                while !stop.load(Ordering::SeqCst) {
                    let mine: Vec<usize> = {
                        let ledger = rig.ledger();
                        ledger
                            .learners
                            .iter()
                            .map(|l| l.n)
                            .filter(|n| n % scorers == i && !ledger.unknown.contains_key(n))
                            .collect()
                    };
                    if mine.is_empty() {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    for n in mine {
                        if stop.load(Ordering::SeqCst) {
                            break;
                        }
                        // A gateway that is down or without its store: do not spin.
                        if matches!(
                            rig.score_change(n).await,
                            Posted::Refused(_) | Posted::Failed(_)
                        ) {
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                    }
                }
            }));
        }
        Self { stop, tasks }
    }

    async fn stop(self) {
        self.stop.store(true, Ordering::SeqCst);
        for task in self.tasks {
            task.await.expect("a load task panicked");
        }
    }
}

// ---------------------------------------------------------------- checks

/// Checks that everything acknowledged to `learners` survived: each opens
/// its content, its graded resource is known, and its last acknowledged
/// score change reached the platform. Adds the figures; returns failures.
async fn nothing_lost(rig: &Arc<Rig>, learners: &[Arc<Learner>], f: &mut Figures) -> Vec<String> {
    let mut failures = Vec::new();
    let opened = rig.open_all(learners).await;
    let lost: Vec<String> = opened
        .iter()
        .filter(|(_, status)| *status != 200)
        .map(|(l, status)| format!("learner {}: content answered {status}", l.n))
        .collect();
    f.add(
        "sessions lost",
        format!("{} of {}", lost.len(), learners.len()),
    );
    if !lost.is_empty() {
        failures.push(format!(
            "acknowledged launches lost their session:\n  {}",
            some(&lost, 10)
        ));
    }
    let stranger = Browser::new()
        .http
        .get(format!("{}{}", rig.base(), display_path(USAGE)))
        .timeout(HANG)
        .send()
        .await
        .expect("content without a session");
    if stranger.status() != 401 {
        failures.push(format!(
            "a browser without a session got {}: the 200s above prove nothing",
            stranger.status()
        ));
    }

    let who: Vec<usize> = learners.iter().map(|l| l.n).collect();
    let drain = drain_bound();
    let load_scores = rig.await_owed(&who, drain).await;
    f.add("scores owed after load", load_scores.summary());
    let refused = rig.probe_resources(&who).await;
    let unknown: Vec<String> = rig
        .ledger()
        .unknown
        .iter()
        .filter(|(n, _)| who.contains(n))
        .map(|(n, what)| (*n, what.clone()))
        .chain(refused.iter().cloned())
        .collect::<BTreeMap<usize, String>>()
        .into_iter()
        .map(|(n, what)| format!("learner {n}: {what}"))
        .collect();
    f.add(
        "graded resources lost",
        format!(
            "{} learners (a score change answered 404 or queued nothing)",
            unknown.len()
        ),
    );
    if !unknown.is_empty() {
        failures.push(format!(
            "graded resources of acknowledged launches were lost:\n  {}",
            some(&unknown, 10)
        ));
    }
    let probes = rig.await_owed(&who, drain).await;
    f.add("probe scores", probes.summary());
    for owed in [&load_scores, &probes] {
        if !owed.lost.is_empty() {
            failures.push(format!(
                "acknowledged score changes were lost:\n  {}",
                some(&owed.lost, 10)
            ));
        }
        if !owed.wrong.is_empty() {
            failures.push(format!(
                "the platform keeps a score nobody posted:\n  {}",
                some(&owed.wrong, 10)
            ));
        }
    }
    failures
}

/// Adds the load's and the platform's figures; returns failures.
fn load_figures(rig: &Rig, f: &mut Figures) -> Vec<String> {
    let ledger = rig.ledger();
    let tried: usize = ledger.launch_outcomes.values().sum();
    f.add(
        "launches acked/tried",
        format!("{} / {tried}", ledger.learners.len()),
    );
    f.add("launch outcomes", tally(&ledger.launch_outcomes));
    let acked = ledger
        .changes
        .values()
        .flatten()
        .filter(|c| c.acked)
        .count();
    let posted: usize = ledger.changes.values().map(Vec::len).sum();
    f.add("score changes acked/posted", format!("{acked} / {posted}"));
    f.add("score outcomes", tally(&ledger.score_outcomes));
    let t = taken(&rig.platform);
    f.add("scores the platform took", t.accepted);
    f.add("duplicates (same timestamp resent)", t.duplicates);
    f.add(
        "arrived out of order (AGS rule keeps the newest)",
        t.reordered,
    );
    f.add("hung requests", ledger.hung);
    let mut failures = Vec::new();
    if !t.inconsistent.is_empty() {
        failures.push(format!(
            "a resend carried another score under the same timestamp:\n  {}",
            some(&t.inconsistent, 10)
        ));
    }
    if ledger.hung > 0 {
        failures.push(format!(
            "{} requests got no answer within {HANG:?}",
            ledger.hung
        ));
    }
    failures
}

/// Fails with every failure and the warnings and errors the last gateway
/// process logged (the first 30).
#[track_caller]
fn assert_none(failures: &[String], logs: &str) {
    let warnings: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
        .take(30)
        .collect();
    assert!(
        failures.is_empty(),
        "{}\n\nwarnings and errors of the last gateway process:\n{}",
        failures.join("\n"),
        warnings.join("\n")
    );
}

// ---------------------------------------------------------------- 1. SIGKILL cycles

/// SIGKILLs the gateway at a random moment while launches and score
/// changes run, restarts it on the same store, `LTIGATE_FAULT_ROUNDS`
/// times; then checks that every acknowledged launch and score survived.
async fn sigkill_cycles(case: &str, store: Option<String>) {
    let rounds = setting("LTIGATE_FAULT_ROUNDS", 3);
    let rig = Rig::new(store, TestUpstream::start().await, "").await;
    let mut gw = rig.start("process-0").await;
    let load = Load::start(&rig, 4, 4);
    let mut restarts = Vec::new();
    for round in 1..=rounds {
        let ms = rand::rng().random_range(300..1500);
        tokio::time::sleep(Duration::from_millis(ms)).await;
        gw.sigkill();
        let killed = Instant::now();
        gw = rig.start(&format!("process-{round}")).await;
        restarts.push(killed.elapsed());
    }
    // The last process takes load too before the load stops.
    tokio::time::sleep(Duration::from_millis(500)).await;
    load.stop().await;

    let mut f = Figures::new(case);
    f.add("SIGKILL rounds", rounds);
    let longest = restarts.iter().max().copied().unwrap_or_default();
    f.add("kill to healthy again (longest)", seconds(longest));
    let mut failures = load_figures(&rig, &mut f);
    let learners = rig.ledger().learners.clone();
    assert!(
        !learners.is_empty(),
        "no launch was acknowledged: the case tested nothing"
    );
    failures.extend(nothing_lost(&rig, &learners, &mut f).await);
    f.print();
    assert_none(&failures, &gw.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_cycles_under_load_lose_nothing_on_the_embedded_store() {
    sigkill_cycles("SIGKILL cycles, embedded store", None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_cycles_under_load_lose_nothing_on_redis() {
    let redis = RedisServer::start();
    sigkill_cycles("SIGKILL cycles, Redis", Some(redis_store(&redis))).await;
}

// ---------------------------------------------------------------- 2. Redis outages

/// What requests got while Redis was down.
#[derive(Default)]
struct Outage {
    answers: BTreeMap<String, usize>,
    slowest: Duration,
    violations: Vec<String>,
}

impl Outage {
    /// Sends `request`; its answer must be one of `allowed`, and come.
    async fn probe(&mut self, what: &str, request: reqwest::RequestBuilder, allowed: &[u16]) {
        let sent = Instant::now();
        let answer = request.timeout(HANG).send().await;
        self.slowest = self.slowest.max(sent.elapsed());
        match answer {
            Ok(r) => {
                let status = r.status().as_u16();
                *self.answers.entry(format!("{what} {status}")).or_default() += 1;
                if !allowed.contains(&status) {
                    self.violations
                        .push(format!("{what}: {status} while Redis was down"));
                }
            }
            Err(e) => self
                .violations
                .push(format!("{what}: {} while Redis was down", transport(&e))),
        }
    }
}

/// A well-formed session id the store never had (the gateway's form: 13
/// hex digits of time, then 30 base64url characters).
fn forged_session_id() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut rng = rand::rng();
    let tail: String = (0..30)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect();
    format!("{:013X}{tail}", rng.random_range(0u64..1 << 52))
}

impl Rig {
    /// For `span` while Redis is down, requests that need the store: each
    /// must fail closed (503; 401 for a session the store cannot confirm;
    /// 200 only for a live session read a moment before, which the gateway
    /// may reuse for `SHARED_CACHE_FOR`), and answer within [`HANG`].
    async fn probe_outage(&self, out: &mut Outage, span: Duration) {
        let content = format!("{}{}", self.base(), display_path(USAGE));
        let forged = Browser::new();
        let url = url::Url::parse(&self.base()).expect("url");
        forged.jar.add_cookie_str(
            &format!("ltigate_session={}; Path=/", forged_session_id()),
            &url,
        );
        let live = self.ledger().learners.first().cloned();
        let stranger = Browser::new();
        let deadline = Instant::now() + span;
        while Instant::now() < deadline {
            out.probe(
                "content with an unknown session:",
                forged.http.get(&content),
                &[401, 503],
            )
            .await;
            if let Some(l) = &live {
                out.probe(
                    "content with a live session:",
                    l.browser.http.get(&content),
                    &[200, 503],
                )
                .await;
            }
            out.probe(
                "login:",
                stranger
                    .http
                    .get(format!("{}/lti/1p3/login/", self.base()))
                    .query(&[
                        ("iss", self.platform.issuer.as_str()),
                        ("login_hint", "outage"),
                        ("target_link_uri", &content),
                        ("lti_message_hint", &content),
                        ("client_id", self.platform.client_id.as_str()),
                    ]),
                &[503],
            )
            .await;
            let score = json!({
                "lti": {"issuer": self.platform.issuer, "client_id": self.platform.client_id, "sub": "learner-1"},
                "course_key": COURSE, "usage_key": USAGE, "earned": 1, "possible": POSSIBLE,
                "modified": stamp(0),
            });
            out.probe(
                "score change:",
                self.lms
                    .post(format!("{}/scores", self.grades()))
                    .bearer_auth(SCORE_TOKEN)
                    .json(&score),
                &[503],
            )
            .await;
            out.probe(
                "readyz:",
                self.lms.get(format!("{}/readyz", self.base())),
                &[503],
            )
            .await;
        }
    }

    /// Waits (bounded) until `/readyz` answers 200 again; returns how long.
    async fn until_ready(&self) -> Duration {
        let started = Instant::now();
        loop {
            if let Ok(r) = self.lms.get(format!("{}/readyz", self.base())).send().await
                && r.status() == 200
            {
                return started.elapsed();
            }
            assert!(
                started.elapsed() < HANG,
                "the gateway was not ready {HANG:?} after Redis came back"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Kills Redis (SIGKILL) at a random moment under load, keeps sending
/// requests through the outage, starts Redis again on the same port and
/// data directory, `LTIGATE_FAULT_OUTAGES` times; then checks what
/// survived: with persistence everything acknowledged, without it only
/// what came after the last restart, and what was lost fails closed.
async fn redis_outages(case: &str, mut redis: RedisServer, persistent: bool) {
    let outages = setting("LTIGATE_FAULT_OUTAGES", 1);
    let rig = Rig::new(Some(redis_store(&redis)), TestUpstream::start().await, "").await;
    let gw = rig.start("gateway").await;
    let load = Load::start(&rig, 3, 3);
    let mut outage = Outage::default();
    let mut recoveries = Vec::new();
    for _ in 0..outages {
        let ms = rand::rng().random_range(500..1500);
        tokio::time::sleep(Duration::from_millis(ms)).await;
        redis.stop();
        rig.probe_outage(&mut outage, Duration::from_secs(2)).await;
        redis.restart();
        rig.ledger().epoch += 1;
        recoveries.push(rig.until_ready().await);
    }
    let before = rig.ledger().learners.len();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    load.stop().await;

    let mut f = Figures::new(case);
    f.add("Redis outages (SIGKILL, 2 s each)", outages);
    f.add("requests during the outages", tally(&outage.answers));
    f.add("slowest answer during an outage", seconds(outage.slowest));
    let longest = recoveries.iter().max().copied().unwrap_or_default();
    f.add("Redis back to gateway ready (longest)", seconds(longest));
    let mut failures = load_figures(&rig, &mut f);
    failures.extend(outage.violations.iter().cloned());
    let learners = rig.ledger().learners.clone();
    let after = learners.len() - before;
    f.add("launches acked after the last restart", after);
    if after == 0 {
        failures.push("no launch was acknowledged after Redis came back".to_owned());
    }
    assert!(before > 0, "no launch was acknowledged before the outage");

    if persistent {
        failures.extend(nothing_lost(&rig, &learners, &mut f).await);
    } else {
        failures.extend(unpersisted(&rig, &learners, outages as usize, &mut f).await);
    }
    f.print();
    assert_none(&failures, &gw.log());
}

/// Without persistence: what was acknowledged before the last restart of
/// Redis may be gone, and must then fail closed; what came after must
/// all be there. Learners who lost their session can launch again.
async fn unpersisted(
    rig: &Arc<Rig>,
    learners: &[Arc<Learner>],
    epoch: usize,
    f: &mut Figures,
) -> Vec<String> {
    let mut failures = Vec::new();
    let (old, new): (Vec<_>, Vec<_>) = learners.iter().cloned().partition(|l| l.epoch < epoch);
    let opened = rig.open_all(&old).await;
    let mut gone = Vec::new();
    for (l, status) in &opened {
        match status {
            200 => {}
            401 | 300..=399 => gone.push(l.clone()),
            other => failures.push(format!(
                "learner {}: a session lost with Redis answered {other}, not a refusal",
                l.n
            )),
        }
    }
    f.add(
        "sessions lost (acked before the restart)",
        format!(
            "{} of {} (expected without persistence: they must launch again)",
            gone.len(),
            old.len()
        ),
    );
    let old_ns: Vec<usize> = old.iter().map(|l| l.n).collect();
    // Their score changes: delivered before the outage, or gone with the
    // store (no longer queued). Nothing waits for them.
    let old_scores = rig.await_owed(&old_ns, Duration::ZERO).await;
    let owed_old = {
        let ledger = rig.ledger();
        old_ns
            .iter()
            .filter(|n| {
                ledger
                    .changes
                    .get(n)
                    .is_some_and(|c| c.iter().any(|c| c.acked))
            })
            .count()
    };
    let refused = rig.probe_resources(&old_ns).await;
    f.add(
        "graded resources lost (acked before the restart)",
        format!("{} of {}", refused.len(), old.len()),
    );
    for (n, what) in &refused {
        if !what.starts_with("404") {
            failures.push(format!(
                "learner {n}: a score for a learner Redis forgot answered {what}, not 404"
            ));
        }
    }

    // What came after the last restart is all there.
    let mut after = Figures::new("");
    failures.extend(nothing_lost(rig, &new, &mut after).await);
    for (k, v) in after.rows {
        f.add(&format!("{k} (acked after the restart)"), v);
    }
    f.add(
        "score changes lost (acked before the restart)",
        format!(
            "{} of {} learners' last changes (the rest reached the platform before the outage)",
            old_scores.lost.len() + old_scores.stalled.len(),
            owed_old
        ),
    );
    if !old_scores.wrong.is_empty() {
        failures.push(some(&old_scores.wrong, 10));
    }

    // A learner who lost the session launches again, and is in.
    if let Some(l) = gone.first() {
        let again = Browser::new();
        match rig.launch(&again, l.n).await {
            Launched::Acked => {
                let (_, status) = rig
                    .open_all(&[Arc::new(Learner {
                        n: l.n,
                        browser: again,
                        epoch,
                    })])
                    .await[0];
                if status != 200 {
                    failures.push(format!("a relaunch after the loss opened with {status}"));
                }
            }
            Launched::Refused(what) | Launched::Failed(what) => {
                failures.push(format!("a relaunch after the loss failed: {what}"));
            }
        }
    }
    failures
}

/// Redis killed and restarted under load, with every write persisted: no
/// acknowledged session, graded resource or score is lost. (This found a
/// bug: a launch whose graded resource could not be stored was still
/// acknowledged, so that learner's scores were answered 202 with nothing
/// queued and never reached the platform. The launch now stores the graded
/// resource first and is refused when it cannot.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_under_load_with_persistence_loses_nothing() {
    redis_outages(
        "Redis killed under load, appendonly + appendfsync always",
        RedisServer::start(),
        true,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_under_load_without_persistence_fails_closed() {
    redis_outages(
        "Redis killed under load, no persistence",
        RedisServer::start_without_persistence(),
        false,
    )
    .await;
}

// ---------------------------------------------------------------- 3. a failing platform

/// A gateway in this process, a platform that misbehaves, and the score
/// changes posted to it.
struct Scene {
    gw: Gateway,
    platform: TestPlatform,
    _upstream: TestUpstream,
    http: reqwest::Client,
    posted: BTreeMap<usize, Vec<Change>>,
    next_change: u64,
    /// Clock time advanced, in seconds.
    advanced: u64,
    /// The wait the gateway chose after each 429 with `Retry-After: 120`,
    /// by (delivery, attempts), as first seen.
    waits_after_429: HashMap<(String, u64), u64>,
}

impl Scene {
    async fn deliveries(&self) -> Vec<Value> {
        let r = self
            .http
            .get(format!("{}/deliveries", self.gw.grades_url()))
            .bearer_auth(SCORE_TOKEN)
            .send()
            .await
            .expect("the delivery list");
        assert_eq!(r.status(), 200);
        let body: Value = r.json().await.expect("JSON");
        body["deliveries"].as_array().cloned().unwrap_or_default()
    }

    /// Posts learner `n`'s next change; the score API must accept it.
    async fn post(&mut self, n: usize) {
        let change = Change {
            timestamp: stamp(self.next_change),
            earned: self.next_change as f64,
            acked: true,
        };
        self.next_change += 1;
        let r = self
            .http
            .post(format!("{}/scores", self.gw.grades_url()))
            .bearer_auth(SCORE_TOKEN)
            .json(&score_event(&self.platform, n, &change))
            .send()
            .await
            .expect("score API");
        let status = r.status();
        let body: Value = r.json().await.expect("JSON");
        assert_eq!(status, 202, "{body}");
        assert_eq!(body["queued"].as_array().map(Vec::len), Some(1), "{body}");
        self.posted.entry(n).or_default().push(change);
    }

    /// Lets the worker run, then moves the gateway's clock to the next due
    /// delivery, until `done` holds for the delivery list. The clock moves
    /// only once the platform has no score request in flight and the
    /// worker has had a moment, so no lease of a delivery being sent is
    /// overrun (a real clock never jumps).
    async fn advance_until(&mut self, what: &str, done: impl Fn(&Scene, &[Value]) -> bool) {
        let started = Instant::now();
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            while self.platform.scores_in_flight() > 0 {
                assert!(started.elapsed() < HANG, "{what}: a score request hangs");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let list = self.deliveries().await;
            let now = ltigate::Clock::now(self.gw.clock.as_ref());
            for d in &list {
                if d["last_error"].as_str().is_some_and(|e| e.contains("429"))
                    && let Some(due) = d["due_at"].as_u64()
                {
                    let key = (d["id"].as_str().unwrap_or_default().to_owned(), attempts(d));
                    self.waits_after_429
                        .entry(key)
                        .or_insert(due.saturating_sub(now));
                }
            }
            if done(self, &list) {
                return;
            }
            assert!(
                started.elapsed() < HANG,
                "{what}: not reached within {HANG:?}; deliveries: {list:#?}"
            );
            let next = list
                .iter()
                .filter(|d| d["state"] == "pending")
                .filter_map(|d| d["due_at"].as_u64())
                .min();
            if let Some(due) = next
                && due > now
            {
                self.gw.clock.advance((due - now + 1) as i64);
                self.advanced += due - now + 1;
            }
        }
    }

    /// How many score requests the platform answered with `status`.
    fn answered(&self, status: u16) -> usize {
        self.platform
            .score_requests()
            .iter()
            .filter(|r| r.status == status)
            .count()
    }
}

fn attempts(d: &Value) -> u64 {
    d["attempts"].as_u64().unwrap_or(0)
}

fn of_learner(list: &[Value], n: usize) -> Option<&Value> {
    list.iter()
        .find(|d| d["resource"]["sub"] == format!("learner-{n}").as_str())
}

/// A platform that refuses connections, then answers 500, then 429 with
/// `Retry-After`, then stalls past the request timeout, then recovers,
/// while the LMS keeps posting newer changes: each learner ends with the
/// last change posted (the AGS rule applied to what the platform took),
/// and nothing is parked.
///
/// Run in process, not as the binary: the retry back-off is 20 s to an
/// hour of the gateway's `Clock`, and the binary runs on the system clock,
/// so recovering from these faults would take real minutes. With the
/// gateway's `ManualClock` the test moves time to each due retry instead
/// (as tests/grades.rs does); the gateway, its store, the platform and its
/// faults are all real.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_platform_ends_with_each_learners_last_score() {
    const LEARNERS: usize = 4;
    let platform = TestPlatform::start().await;
    let upstream = TestUpstream::start().await;
    let grades = format!(
        "[grades]\nlisten = \"127.0.0.1:0\"\ntoken = \"{SCORE_TOKEN}\"\npoll_interval_ms = 50\n\
         max_attempts = 100\nrequest_timeout_sec = 1\n"
    );
    let gw = Gateway::start_with(
        &platform,
        GatewayOptions {
            upstream: Some(upstream.url()),
            extra: grades,
            ..Default::default()
        },
    )
    .await;
    platform.set_tool_jwks_url(&gw.url("/lti/1p3/pub/jwks/"));
    for n in 1..=LEARNERS {
        let r = launch_with(&gw, &platform, &Browser::new(), USAGE, |claims| {
            claims["sub"] = json!(format!("learner-{n}"));
            claims[RESOURCE_LINK] = json!({"id": format!("rl-{n}"), "title": "Graded"});
            claims[AGS_ENDPOINT] = ags_claim(&platform, n);
        })
        .await;
        assert_eq!(r.status, 302, "{}", r.body);
    }
    let mut s = Scene {
        gw,
        platform,
        _upstream: upstream,
        http: reqwest::Client::builder()
            .timeout(HANG)
            .build()
            .expect("client"),
        posted: BTreeMap::new(),
        next_change: 1,
        advanced: 0,
        waits_after_429: HashMap::new(),
    };
    let real = Instant::now();

    // 1. Connections refused: every delivery fails (its token request
    // first), twice; a newer change replaces a failing one.
    s.platform.refuse_connections();
    for n in 1..=LEARNERS {
        s.post(n).await;
    }
    s.advance_until("every delivery refused twice", |_, list| {
        list.len() == LEARNERS && list.iter().all(|d| attempts(d) >= 2)
    })
    .await;
    let refused_error = s.deliveries().await[0]["last_error"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    s.post(1).await;
    s.advance_until("the newer change refused too", |_, list| {
        of_learner(list, 1).is_some_and(|d| attempts(d) >= 1)
    })
    .await;

    // 2. Back, but answering 500.
    s.platform.fail_scores(6, Fault::status(500));
    s.platform.accept_connections();
    s.post(2).await;
    s.post(3).await;
    s.advance_until("six 500s", |s, _| s.answered(500) >= 6)
        .await;

    // 3. 429 with Retry-After.
    s.platform.fail_scores(4, Fault::retry_after(429, "120"));
    s.post(1).await;
    s.post(4).await;
    s.advance_until("four 429s", |s, _| s.answered(429) >= 4)
        .await;

    // 4. Stalled past the gateway's request timeout (1 s); a newer change
    // arrives meanwhile.
    s.platform.stall_scores(Duration::from_millis(2500));
    s.post(2).await;
    s.post(3).await;
    let timed_out = |list: &[Value]| {
        list.iter()
            .filter(|d| {
                d["last_error"]
                    .as_str()
                    .is_some_and(|e| e.contains("timed out"))
            })
            .count()
    };
    s.advance_until("a stalled score timed out", |_, list| timed_out(list) >= 1)
        .await;
    s.post(2).await;
    s.advance_until("two stalled scores timed out", |_, list| {
        timed_out(list) >= 2
    })
    .await;

    // 5. Recovered.
    s.platform.stall_scores(Duration::ZERO);
    s.advance_until("the queue to drain", |_, list| list.is_empty())
        .await;

    let finals = s.platform.final_scores();
    let t = taken(&s.platform);
    let mut f = Figures::new("a platform that refuses, 500s, 429s, stalls, recovers");
    f.add("learners", LEARNERS);
    f.add(
        "score changes posted (all acked)",
        s.posted.values().map(Vec::len).sum::<usize>(),
    );
    let mut statuses: BTreeMap<String, usize> = BTreeMap::new();
    for r in s.platform.score_requests() {
        *statuses.entry(r.status.to_string()).or_default() += 1;
    }
    f.add("score requests the platform answered", tally(&statuses));
    f.add("error while refused", &refused_error);
    f.add(
        "shortest wait after a 429 (Retry-After: 120)",
        s.waits_after_429
            .values()
            .min()
            .map_or("none seen".to_owned(), |w| format!("{w} s")),
    );
    f.add("scores the platform took", t.accepted);
    f.add("duplicates (same timestamp resent)", t.duplicates);
    f.add(
        "arrived out of order (AGS rule keeps the newest)",
        t.reordered,
    );
    f.add("clock advanced", format!("{} s", s.advanced));
    f.add("real time", seconds(real.elapsed()));
    let mut failures = Vec::new();
    for (n, changes) in &s.posted {
        let last = changes.last().expect("a change");
        let kept = finals
            .get(&(format!("learner-{n}"), scores_target(*n)))
            .map(|r| r.json());
        let ok = kept.as_ref().is_some_and(|k| {
            k["timestamp"] == last.timestamp.as_str()
                && k["scoreGiven"].as_f64() == Some(last.earned)
                && k["scoreMaximum"].as_f64() == Some(POSSIBLE)
        });
        f.add(
            &format!("learner {n}"),
            format!(
                "{} changes, last {} at {}: platform keeps {}",
                changes.len(),
                last.earned,
                last.timestamp,
                kept.as_ref().map_or("nothing".to_owned(), |k| format!(
                    "{} at {}",
                    k["scoreGiven"], k["timestamp"]
                ))
            ),
        );
        if !ok {
            failures.push(format!(
                "learner {n}: the platform does not end with the last change ({} at {}): {kept:?}",
                last.earned, last.timestamp
            ));
        }
    }
    failures.extend(t.inconsistent);
    f.print();
    let parked = s.deliveries().await;
    assert!(parked.is_empty(), "nothing is left or parked: {parked:#?}");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

// ---------------------------------------------------------------- 4. SIGTERM

/// SIGTERM while a score delivery hangs at the platform and a slow request
/// runs through the gated proxy, on Redis: the process exits (its grace is
/// `shutdown_grace_sec`), the slow request, shorter than the grace,
/// completes, and the abandoned delivery, handed back due at once, is
/// delivered by the next process without waiting for its lease to end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_long_requests_and_hands_back_deliveries() {
    const SLOW: Duration = Duration::from_secs(2);
    let redis = RedisServer::start();
    let rig = Rig::new(
        Some(redis_store(&redis)),
        TestUpstream::start_with(SLOW).await,
        "[[rules]]\nscope = \"public\"\npath = \"/slow/**\"\nmethods = [\"GET\"]\n",
    )
    .await;
    let mut first = rig.start("first").await;
    let browser = Browser::new();
    assert!(
        matches!(rig.launch(&browser, 1).await, Launched::Acked),
        "launch:\n{}",
        first.log()
    );

    // A delivery in flight, hanging at the platform.
    rig.platform.stall_scores(Duration::from_secs(120));
    assert!(matches!(rig.score_change(1).await, Posted::Acked));
    let started = Instant::now();
    while rig.platform.scores_in_flight() == 0 {
        assert!(
            started.elapsed() < HANG,
            "the score never reached the platform"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A long request in flight through the gated proxy.
    let slow = tokio::spawn({
        let http = browser.http.clone();
        let url = format!("{}/slow/x", rig.base());
        async move {
            let sent = Instant::now();
            let r = http.get(url).timeout(HANG).send().await;
            let r = match r {
                Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
                Err(e) => (0, e.to_string()),
            };
            (r, sent.elapsed())
        }
    });
    while !rig.upstream.seen().iter().any(|s| s.target == "/slow/x") {
        assert!(
            started.elapsed() < HANG,
            "the slow request never reached the LMS"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let signalled = Instant::now();
    first.sigterm();
    let status = first.wait_exit(HANG).await;
    let exit = signalled.elapsed();
    let ((slow_status, slow_body), slow_took) = slow.await.expect("slow request task");

    // The next process, on the same store, with the platform recovered.
    rig.platform.stall_scores(Duration::ZERO);
    let restarted = Instant::now();
    let second = rig.start("second").await;
    let who = [1];
    let owed = rig.await_owed(&who, HANG).await;
    let redelivered = restarted.elapsed();

    let mut f = Figures::new("SIGTERM with a delivery and a long request in flight, Redis");
    f.add("shutdown_grace_sec", rig.grace.as_secs());
    f.add("SIGTERM to exit", seconds(exit));
    f.add("exit status", format!("{status:?}"));
    f.add(
        "slow request (LMS takes 2 s)",
        format!("{slow_status} after {}", seconds(slow_took)),
    );
    f.add(
        "next process start to score delivered",
        seconds(redelivered),
    );
    f.add("abandoned delivery", owed.summary());
    f.add("duplicates", taken(&rig.platform).duplicates);
    f.print();
    let status = status.unwrap_or_else(|| {
        panic!(
            "ltigate did not exit within {HANG:?} of SIGTERM:\n{}",
            first.log()
        )
    });
    assert_eq!(status.code(), Some(0), "exit {status:?}:\n{}", first.log());
    assert_eq!(
        (slow_status, slow_body.as_str()),
        (200, "slow ok"),
        "the long request, within the grace period, completes:\n{}",
        first.log()
    );
    assert!(
        owed.lost.is_empty() && owed.wrong.is_empty() && owed.delivered == 1,
        "the abandoned delivery is delivered by the next process within {HANG:?}: {}\n{}\n{}",
        owed.summary(),
        first.log(),
        second.log()
    );
    // Handed back, not left to its lease (15 s, which the bound above would
    // also allow).
    assert!(
        first.log().contains("abandoned; it is due again at once"),
        "the first process gave the delivery back at shutdown:\n{}",
        first.log()
    );
}
