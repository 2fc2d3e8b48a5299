//! A test LTI platform: its own RSA keys, a JWKS endpoint, and an OIDC auth
//! endpoint that answers with an auto-posting launch form, like a real LMS.
//! For grade passback it also serves AGS: `POST /token` (client credentials,
//! verifying the tool's client assertion against the tool's JWKS), a line
//! items container at `/lineitems`, and `POST .../scores` under every line
//! item, recording what it receives and failing on a programmable script;
//! it can stall its scores endpoint, and refuse connections altogether.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::KeyPair as _;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Value, json};

pub const LEARNER: &str = "http://purl.imsglobal.org/vocab/lis/v2/membership#Learner";

/// One platform signing key.
pub struct SigningKey {
    pub kid: String,
    pub encoding: EncodingKey,
    pub jwk: Value,
    pub public_pem: String,
}

impl SigningKey {
    pub fn generate(kid: &str) -> Self {
        let pair = KeyPair::generate(KeySize::Rsa2048).expect("rsa keygen");
        let pkcs8 =
            AsDer::<aws_lc_rs::encoding::Pkcs8V1Der<'static>>::as_der(&pair).expect("pkcs8");
        let pem = pem::encode(&pem::Pem::new("PRIVATE KEY", pkcs8.as_ref().to_vec()));
        let spki =
            AsDer::<aws_lc_rs::encoding::PublicKeyX509Der<'static>>::as_der(pair.public_key())
                .expect("spki");
        let public_pem = pem::encode(&pem::Pem::new("PUBLIC KEY", spki.as_ref().to_vec()));
        let public = pair.public_key();
        let jwk = json!({
            "kty": "RSA",
            "kid": kid,
            "n": URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero()),
            "e": URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero()),
            // Like Open edX's consumer: no alg, no use.
            "key_ops": ["verify"],
        });
        Self {
            kid: kid.to_owned(),
            encoding: EncodingKey::from_rsa_pem(pem.as_bytes()).expect("encoding key"),
            jwk,
            public_pem,
        }
    }

    /// Signs `claims` under an arbitrary header (RS256 signature over it).
    pub fn sign_raw(&self, header: &Value, claims: &Value) -> String {
        let message = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature =
            jsonwebtoken::crypto::sign(message.as_bytes(), &self.encoding, Algorithm::RS256)
                .expect("sign");
        format!("{message}.{signature}")
    }

    pub fn sign(&self, claims: &Value) -> String {
        self.sign_raw(
            &json!({"alg": "RS256", "typ": "JWT", "kid": self.kid}),
            claims,
        )
    }
}

struct Shared {
    issuer: String,
    client_id: String,
    deployment_id: String,
    published: Mutex<Vec<Arc<SigningKey>>>,
    active: Mutex<Arc<SigningKey>>,
    jwks_fetches: AtomicUsize,
    auth_requests: Mutex<Vec<HashMap<String, String>>>,
    /// The AGS services: token endpoint, line items and scores.
    ags: Mutex<Ags>,
    /// How long the scores endpoint takes before it answers (a stalled platform).
    score_stall: Mutex<Duration>,
    /// Score requests that arrived, counting those still stalled.
    score_arrivals: AtomicUsize,
    /// How long the line items container takes before it answers.
    container_stall: Mutex<Duration>,
    /// What the JWKS endpoint does instead of answering at once.
    jwks_fault: Mutex<JwksFault>,
    /// Score requests received and not yet answered.
    scores_in_flight: AtomicUsize,
}

/// The parameters of one OIDC authentication request, as the platform saw them.
#[derive(Debug, Clone)]
pub struct AuthRequest {
    pub params: HashMap<String, String>,
    pub state: String,
    pub nonce: String,
    pub redirect_uri: String,
}

pub struct TestPlatform {
    pub issuer: String,
    pub client_id: String,
    pub deployment_id: String,
    addr: SocketAddr,
    shared: Arc<Shared>,
    /// False while the platform refuses connections.
    up: tokio::sync::watch::Sender<bool>,
}

/// Serves connections while `up` is true; while it is false, the listener
/// is closed and connections are dropped.
async fn accept_loop(
    mut listener: tokio::net::TcpListener,
    shared: Arc<Shared>,
    mut up: tokio::sync::watch::Receiver<bool>,
) {
    let addr = listener.local_addr().expect("addr");
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted.ok(),
            down = up.wait_for(|up| !*up) => match down {
                Ok(_) => None,
                Err(_) => return,
            },
        };
        let Some((stream, _)) = accepted else {
            if !*up.borrow() {
                drop(listener);
                if up.wait_for(|up| *up).await.is_err() {
                    return;
                }
                listener = rebind(addr).await;
            }
            continue;
        };
        let shared = shared.clone();
        let mut down = up.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let shared = shared.clone();
                async move { Ok::<_, std::convert::Infallible>(serve(&shared, req).await) }
            });
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            let connection = builder.serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                _ = connection => {}
                _ = down.wait_for(|up| !*up) => {}
            }
        });
    }
}

/// Binds `addr` again (bounded retries: the port was ours a moment ago).
async fn rebind(addr: SocketAddr) -> tokio::net::TcpListener {
    for _ in 0..100 {
        if let Ok(listener) = tokio::net::TcpListener::bind(addr).await {
            return listener;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the test platform could not listen on {addr} again");
}

impl TestPlatform {
    pub async fn start() -> Self {
        Self::start_with("https://platform.test", "client-1", "deploy-1").await
    }

    pub async fn start_with(issuer: &str, client_id: &str, deployment_id: &str) -> Self {
        let key = Arc::new(SigningKey::generate("platform-key-1"));
        let shared = Arc::new(Shared {
            issuer: issuer.to_owned(),
            client_id: client_id.to_owned(),
            deployment_id: deployment_id.to_owned(),
            published: Mutex::new(vec![key.clone()]),
            active: Mutex::new(key),
            jwks_fetches: AtomicUsize::new(0),
            auth_requests: Mutex::new(Vec::new()),
            ags: Mutex::new(Ags::default()),
            score_stall: Mutex::new(Duration::ZERO),
            score_arrivals: AtomicUsize::new(0),
            container_stall: Mutex::new(Duration::ZERO),
            jwks_fault: Mutex::new(JwksFault::None),
            scores_in_flight: AtomicUsize::new(0),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        shared.ags.lock().expect("lock").base = format!("http://{addr}");
        let (up, up_seen) = tokio::sync::watch::channel(true);
        tokio::spawn(accept_loop(listener, shared.clone(), up_seen));
        Self {
            issuer: issuer.to_owned(),
            client_id: client_id.to_owned(),
            deployment_id: deployment_id.to_owned(),
            addr,
            shared,
            up,
        }
    }

    /// The platform goes down: its listener closes (a connection is
    /// refused) and every open connection is dropped, until
    /// [`Self::accept_connections`].
    pub fn refuse_connections(&self) {
        self.up.send_replace(false);
    }

    /// The platform is back, on the same address.
    pub fn accept_connections(&self) {
        self.up.send_replace(true);
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// How many times the JWKS was fetched.
    pub fn jwks_fetches(&self) -> usize {
        self.shared.jwks_fetches.load(Ordering::SeqCst)
    }

    /// The OIDC auth requests the platform's endpoint received.
    pub fn auth_requests(&self) -> Vec<HashMap<String, String>> {
        self.shared.auth_requests.lock().expect("lock").clone()
    }

    /// The key tokens are signed with.
    pub fn active_key(&self) -> Arc<SigningKey> {
        self.shared.active.lock().expect("lock").clone()
    }

    /// Publishes a new key and signs with it from now on (key rotation).
    pub fn rotate_key(&self, kid: &str) -> Arc<SigningKey> {
        let key = Arc::new(SigningKey::generate(kid));
        self.shared
            .published
            .lock()
            .expect("lock")
            .push(key.clone());
        *self.shared.active.lock().expect("lock") = key.clone();
        key
    }

    /// Checks a redirect to the platform's auth URL the way a platform would.
    pub fn parse_auth_request(&self, location: &str) -> Result<AuthRequest, String> {
        let url = url::Url::parse(location).map_err(|e| e.to_string())?;
        if !location.starts_with(&format!("{}/auth?", self.base_url())) {
            return Err(format!("not our auth URL: {location}"));
        }
        check_auth_params(&self.shared, url.query_pairs().into_owned().collect())
    }

    /// A valid resource-link launch for `auth`, targeting `target`.
    pub fn claims(&self, auth: &AuthRequest, target: &str) -> Value {
        resource_link_claims(&self.shared, &auth.nonce, target)
    }

    /// Signs claims with the active key.
    pub fn sign(&self, claims: &Value) -> String {
        self.active_key().sign(claims)
    }
}

fn check_auth_params(
    shared: &Shared,
    params: HashMap<String, String>,
) -> Result<AuthRequest, String> {
    let expect = |name: &str, value: &str| -> Result<(), String> {
        match params.get(name) {
            Some(v) if v == value => Ok(()),
            other => Err(format!("{name} should be {value:?}, was {other:?}")),
        }
    };
    expect("scope", "openid")?;
    expect("response_type", "id_token")?;
    expect("response_mode", "form_post")?;
    expect("prompt", "none")?;
    expect("client_id", &shared.client_id)?;
    for required in ["redirect_uri", "login_hint", "state", "nonce"] {
        if params.get(required).is_none_or(String::is_empty) {
            return Err(format!("missing {required}"));
        }
    }
    let redirect_uri = params["redirect_uri"].clone();
    if !redirect_uri.ends_with("/lti/1p3/launch/") {
        return Err(format!("unregistered redirect_uri {redirect_uri}"));
    }
    shared
        .auth_requests
        .lock()
        .expect("lock")
        .push(params.clone());
    Ok(AuthRequest {
        state: params["state"].clone(),
        nonce: params["nonce"].clone(),
        redirect_uri,
        params,
    })
}

fn resource_link_claims(shared: &Shared, nonce: &str, target: &str) -> Value {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("time")
        .as_secs();
    json!({
        "iss": shared.issuer,
        "aud": shared.client_id,
        "sub": "learner-1",
        "iat": now,
        "exp": now + 300,
        "nonce": nonce,
        "name": "Ada Lovelace",
        "given_name": "Ada",
        "family_name": "Lovelace",
        "email": "ada@example.edu",
        "locale": "en-US",
        "https://purl.imsglobal.org/spec/lti/claim/version": "1.3.0",
        "https://purl.imsglobal.org/spec/lti/claim/message_type": "LtiResourceLinkRequest",
        "https://purl.imsglobal.org/spec/lti/claim/deployment_id": shared.deployment_id,
        "https://purl.imsglobal.org/spec/lti/claim/roles": [LEARNER],
        "https://purl.imsglobal.org/spec/lti/claim/resource_link": {"id": "rl-1", "title": "Problem 1"},
        "https://purl.imsglobal.org/spec/lti/claim/target_link_uri": target,
        "https://purl.imsglobal.org/spec/lti/claim/context": {"id": "ctx-1", "label": "CS101", "title": "Intro"},
    })
}

fn route(
    shared: &Shared,
    req: hyper::Request<hyper::body::Incoming>,
) -> hyper::Response<Full<Bytes>> {
    let respond = |status: u16, content_type: &str, body: String| {
        hyper::Response::builder()
            .status(status)
            .header("content-type", content_type)
            .body(Full::new(Bytes::from(body)))
            .expect("response")
    };
    match req.uri().path() {
        "/auth" => {
            let params: HashMap<String, String> = req
                .uri()
                .query()
                .map(|q| {
                    url::form_urlencoded::parse(q.as_bytes())
                        .into_owned()
                        .collect()
                })
                .unwrap_or_default();
            let auth = match check_auth_params(shared, params) {
                Ok(a) => a,
                Err(e) => return respond(400, "text/plain", e),
            };
            // This platform's convention: the target rides in lti_message_hint,
            // or is the gateway's display path of the login hint.
            let Some(target) = auth.params.get("lti_message_hint").cloned() else {
                return respond(400, "text/plain", "no lti_message_hint".to_owned());
            };
            let claims = resource_link_claims(shared, &auth.nonce, &target);
            let token = shared.active.lock().expect("lock").sign(&claims);
            let page = format!(
                "<!doctype html><html><body onload=\"document.forms[0].submit()\">\
                 <form method=\"post\" action=\"{}\">\
                 <input type=\"hidden\" name=\"id_token\" value=\"{token}\">\
                 <input type=\"hidden\" name=\"state\" value=\"{}\">\
                 </form></body></html>",
                auth.redirect_uri, auth.state
            );
            respond(200, "text/html", page)
        }
        _ => respond(404, "text/plain", "not found".to_owned()),
    }
}

/// Reads the action and hidden fields of an auto-posting form.
pub fn parse_autopost(page: &str) -> (String, Vec<(String, String)>) {
    let attr = |tag: &str, name: &str| -> Option<String> {
        let start = tag.find(&format!("{name}=\""))? + name.len() + 2;
        let end = tag[start..].find('"')? + start;
        Some(tag[start..end].to_owned())
    };
    let form_start = page.find("<form").expect("a form");
    let form_tag_end = page[form_start..].find('>').expect("form tag") + form_start;
    let action = attr(&page[form_start..form_tag_end], "action").expect("action");
    let mut fields = Vec::new();
    let mut rest = &page[form_tag_end..];
    while let Some(i) = rest.find("<input") {
        let end = rest[i..].find('>').expect("input tag") + i;
        let tag = &rest[i..end];
        if let (Some(n), Some(v)) = (attr(tag, "name"), attr(tag, "value")) {
            fields.push((n, v));
        }
        rest = &rest[end..];
    }
    (action, fields)
}

// ------------------------------------------------------------ AGS services
//
// The platform's side of grade passback: an OAuth2 token endpoint that
// verifies the tool's client assertion against the tool's JWKS, a line items
// container, and scores endpoints under every line item, with a programmable
// script of failures.

pub const SCORE_SCOPE: &str = "https://purl.imsglobal.org/spec/lti-ags/scope/score";
pub const LINEITEM_SCOPE: &str = "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem";
pub const SCORE_CONTENT_TYPE: &str = "application/vnd.ims.lis.v1.score+json";
pub const LINEITEM_CONTENT_TYPE: &str = "application/vnd.ims.lis.v2.lineitem+json";
const KNOWN_SCOPES: &[&str] = &[
    SCORE_SCOPE,
    LINEITEM_SCOPE,
    "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem.readonly",
    "https://purl.imsglobal.org/spec/lti-ags/scope/result.readonly",
];

/// One request to the token endpoint, as the platform saw it.
#[derive(Debug, Clone)]
pub struct TokenRequest {
    /// The form fields.
    pub form: HashMap<String, String>,
    pub user_agent: Option<String>,
    /// The client assertion's claims, when it verified.
    pub assertion: Option<Value>,
    /// The access token issued, or why the request was refused.
    pub outcome: Result<String, String>,
}

/// One request to a line items container or a scores endpoint.
#[derive(Debug, Clone)]
pub struct AgsRequest {
    pub method: String,
    /// Path and query exactly as received.
    pub target: String,
    pub content_type: Option<String>,
    pub accept: Option<String>,
    pub authorization: Option<String>,
    pub user_agent: Option<String>,
    pub body: String,
    /// What the platform answered.
    pub status: u16,
}

impl AgsRequest {
    /// The body as JSON (`Null` if it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }

    /// The bearer token presented.
    pub fn bearer(&self) -> Option<&str> {
        self.authorization.as_deref()?.strip_prefix("Bearer ")
    }
}

/// A programmed answer of the scores endpoint.
#[derive(Debug, Clone)]
pub struct Fault {
    pub status: u16,
    pub retry_after: Option<String>,
}

impl Fault {
    pub fn status(status: u16) -> Self {
        Self {
            status,
            retry_after: None,
        }
    }

    pub fn retry_after(status: u16, after: &str) -> Self {
        Self {
            status,
            retry_after: Some(after.to_owned()),
        }
    }
}

#[derive(Default)]
struct Ags {
    /// `http://<addr>`, set once the listener is bound.
    base: String,
    tool_jwks_url: Option<String>,
    token_requests: Vec<TokenRequest>,
    /// Live access tokens and their scopes.
    issued: HashMap<String, Vec<String>>,
    tokens_minted: usize,
    jtis: HashSet<String>,
    score_faults: VecDeque<Fault>,
    score_requests: Vec<AgsRequest>,
    lineitem_requests: Vec<AgsRequest>,
    lineitems: Vec<Value>,
    /// Line items per page of the container (0: all on one page).
    lineitems_page_size: usize,
    /// The container ignores `resource_link_id` (some platforms do).
    lineitems_unfiltered: bool,
}

impl TestPlatform {
    /// Where the token endpoint fetches the tool's JWKS to verify client
    /// assertions (the gateway's `/lti/1p3/pub/jwks/`).
    pub fn set_tool_jwks_url(&self, url: &str) {
        self.shared.ags.lock().expect("lock").tool_jwks_url = Some(url.to_owned());
    }

    /// Every request to the token endpoint, in order.
    pub fn token_requests(&self) -> Vec<TokenRequest> {
        self.shared.ags.lock().expect("lock").token_requests.clone()
    }

    /// How many access tokens were issued.
    pub fn tokens_issued(&self) -> usize {
        self.shared.ags.lock().expect("lock").tokens_minted
    }

    /// Makes every issued access token unknown (the next AGS call gets 401).
    pub fn revoke_tokens(&self) {
        self.shared.ags.lock().expect("lock").issued.clear();
    }

    /// The scores endpoint takes `stall` before answering each request
    /// (`Duration::ZERO`: at once), as a platform that hangs does.
    pub fn stall_scores(&self, stall: Duration) {
        *self.shared.score_stall.lock().expect("lock") = stall;
    }

    /// The line items container takes `stall` before answering each request.
    pub fn stall_container(&self, stall: Duration) {
        *self.shared.container_stall.lock().expect("lock") = stall;
    }

    /// How many score requests arrived, counting those still stalled (which
    /// [`Self::score_requests`] lists only once they are answered).
    pub fn score_arrivals(&self) -> usize {
        self.shared.score_arrivals.load(Ordering::SeqCst)
    }

    /// The scores endpoint answers `fault` the next `times` times.
    pub fn fail_scores(&self, times: usize, fault: Fault) {
        let mut ags = self.shared.ags.lock().expect("lock");
        for _ in 0..times {
            ags.score_faults.push_back(fault.clone());
        }
    }

    /// Every request to a scores endpoint, accepted or not.
    pub fn score_requests(&self) -> Vec<AgsRequest> {
        self.shared.ags.lock().expect("lock").score_requests.clone()
    }

    /// Score requests received and not answered yet (stalled, for example).
    pub fn scores_in_flight(&self) -> usize {
        self.shared.scores_in_flight.load(Ordering::SeqCst)
    }

    /// The score each learner has on each line item, as a platform that
    /// applies the AGS rule keeps it: of the scores it took for a (`userId`,
    /// scores URL), the one with the newest `timestamp` (a score that is not
    /// newer than the one kept is ignored, so a resend changes nothing).
    /// ltigate sends timestamps in UTC with milliseconds, so they compare as text.
    pub fn final_scores(&self) -> HashMap<(String, String), AgsRequest> {
        let mut kept: HashMap<(String, String), AgsRequest> = HashMap::new();
        for score in self.scores() {
            let body = score.json();
            let user = body["userId"].as_str().unwrap_or_default().to_owned();
            let timestamp = body["timestamp"].as_str().unwrap_or_default().to_owned();
            let newer = |kept: &AgsRequest| {
                kept.json()["timestamp"].as_str().unwrap_or_default() < timestamp.as_str()
            };
            let key = (user, score.target.clone());
            if kept.get(&key).is_none_or(newer) {
                kept.insert(key, score);
            }
        }
        kept
    }

    /// The scores the platform took.
    pub fn scores(&self) -> Vec<AgsRequest> {
        self.score_requests()
            .into_iter()
            .filter(|r| (200..300).contains(&r.status))
            .collect()
    }

    /// Every request to the line items container.
    pub fn lineitem_requests(&self) -> Vec<AgsRequest> {
        self.shared
            .ags
            .lock()
            .expect("lock")
            .lineitem_requests
            .clone()
    }

    /// The line items in the container.
    pub fn lineitems(&self) -> Vec<Value> {
        self.shared.ags.lock().expect("lock").lineitems.clone()
    }

    /// Pages the container: `page_size` items a page, with a `Link` header
    /// to the next page; `filtered` false makes it ignore `resource_link_id`.
    pub fn set_lineitems_paging(&self, page_size: usize, filtered: bool) {
        let mut ags = self.shared.ags.lock().expect("lock");
        ags.lineitems_page_size = page_size;
        ags.lineitems_unfiltered = !filtered;
    }

    /// Adds a line item to the container; returns its URL.
    pub fn add_lineitem(&self, label: &str, resource_link_id: &str) -> String {
        let mut ags = self.shared.ags.lock().expect("lock");
        let item = new_lineitem(
            &mut ags,
            json!({"scoreMaximum": 1, "label": label, "resourceLinkId": resource_link_id}),
        );
        item["id"].as_str().expect("id").to_owned()
    }
}

fn new_lineitem(ags: &mut Ags, mut item: Value) -> Value {
    let id = format!(
        "{}/lineitems/{}/lineitem",
        ags.base,
        100 + ags.lineitems.len()
    );
    item["id"] = Value::String(id);
    ags.lineitems.push(item.clone());
    item
}

// ---------------------------------------------------------------- JWKS faults

/// What the JWKS endpoint does (tests/jwks.rs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JwksFault {
    /// Answers the published keys at once.
    None,
    /// Answers this status with no key set (500: failing, 404: missing).
    Status(u16),
    /// Waits this long, then answers the published keys (a hanging platform).
    Hang(Duration),
}

impl TestPlatform {
    /// Makes every JWKS request from now on meet `fault`.
    pub fn set_jwks_fault(&self, fault: JwksFault) {
        *self.shared.jwks_fault.lock().expect("lock") = fault;
    }
}

/// `GET /jwks`: counted when it arrives, so a hanging fetch counts too.
async fn jwks_route(shared: &Shared) -> hyper::Response<Full<Bytes>> {
    shared.jwks_fetches.fetch_add(1, Ordering::SeqCst);
    let fault = *shared.jwks_fault.lock().expect("lock");
    match fault {
        JwksFault::None => {}
        JwksFault::Status(status) => {
            return ags_respond(status, "text/plain", "no key set here".to_owned());
        }
        JwksFault::Hang(wait) => tokio::time::sleep(wait).await,
    }
    let keys: Vec<Value> = shared
        .published
        .lock()
        .expect("lock")
        .iter()
        .map(|k| k.jwk.clone())
        .collect();
    ags_respond(200, "application/json", json!({ "keys": keys }).to_string())
}

/// Every request: the AGS services, or the launch side.
async fn serve(
    shared: &Shared,
    req: hyper::Request<hyper::body::Incoming>,
) -> hyper::Response<Full<Bytes>> {
    let path = req.uri().path();
    let is_ags = path == "/token"
        || path == "/lineitems"
        || (path.starts_with("/lineitems/") && path.ends_with("/scores"));
    if is_ags {
        ags_route(shared, req).await
    } else if path == "/jwks" {
        jwks_route(shared).await
    } else {
        route(shared, req)
    }
}

fn ags_respond(status: u16, content_type: &str, body: String) -> hyper::Response<Full<Bytes>> {
    hyper::Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(Full::new(Bytes::from(body)))
        .expect("response")
}

fn oauth_error(error: &str, description: &str) -> hyper::Response<Full<Bytes>> {
    ags_respond(
        400,
        "application/json",
        json!({"error": error, "error_description": description}).to_string(),
    )
}

async fn ags_route(
    shared: &Shared,
    req: hyper::Request<hyper::body::Incoming>,
) -> hyper::Response<Full<Bytes>> {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let mut seen = AgsRequest {
        method: req.method().to_string(),
        target: req
            .uri()
            .path_and_query()
            .map(|p| p.to_string())
            .unwrap_or_default(),
        content_type: header("content-type"),
        accept: header("accept"),
        authorization: header("authorization"),
        user_agent: header("user-agent"),
        body: String::new(),
        status: 0,
    };
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or_default().to_owned();
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    seen.body = String::from_utf8_lossy(&body).into_owned();
    if path == "/token" {
        return token_endpoint(shared, seen).await;
    }
    if path != "/lineitems" {
        shared.score_arrivals.fetch_add(1, Ordering::SeqCst);
    }
    let _in_flight = (path != "/lineitems").then(|| InFlight::enter(&shared.scores_in_flight));
    let stall = *shared.score_stall.lock().expect("lock");
    if path != "/lineitems" && !stall.is_zero() {
        tokio::time::sleep(stall).await;
    }
    let container_stall = *shared.container_stall.lock().expect("lock");
    if path == "/lineitems" && !container_stall.is_zero() {
        tokio::time::sleep(container_stall).await;
    }
    let mut ags = shared.ags.lock().expect("lock");
    let is_scores = path != "/lineitems";
    let needed = if is_scores {
        SCORE_SCOPE
    } else {
        LINEITEM_SCOPE
    };
    let answer = match seen.bearer().map(|t| ags.issued.get(t)) {
        None | Some(None) => Answer::json(401, json!({"error": "unknown or missing access token"})),
        Some(Some(scopes)) if !scopes.iter().any(|s| s == needed) => {
            Answer::json(403, json!({"error": format!("the token lacks {needed}")}))
        }
        Some(Some(_)) if is_scores => score(&mut ags, &seen),
        Some(Some(_)) => lineitems(&mut ags, &seen, &query),
    };
    seen.status = answer.status;
    if is_scores {
        ags.score_requests.push(seen);
    } else {
        ags.lineitem_requests.push(seen);
    }
    drop(ags);
    let mut response = ags_respond(answer.status, answer.content_type, answer.body);
    if let Some(link) = answer.link {
        response.headers_mut().insert(
            "link",
            hyper::header::HeaderValue::from_str(&link).expect("header value"),
        );
    }
    if let Some(after) = answer.retry_after {
        response.headers_mut().insert(
            "retry-after",
            hyper::header::HeaderValue::from_str(&after).expect("header value"),
        );
    }
    response
}

/// Counts a request in flight until it is answered or dropped (a client
/// that gives up can make the server drop the request's future).
struct InFlight<'a>(&'a AtomicUsize);

impl<'a> InFlight<'a> {
    fn enter(counter: &'a AtomicUsize) -> Self {
        counter.fetch_add(1, Ordering::SeqCst);
        Self(counter)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// What an AGS endpoint answers.
struct Answer {
    status: u16,
    content_type: &'static str,
    body: String,
    retry_after: Option<String>,
    link: Option<String>,
}

impl Answer {
    fn json(status: u16, body: Value) -> Self {
        Self::with_type(status, "application/json", body.to_string())
    }

    fn with_type(status: u16, content_type: &'static str, body: String) -> Self {
        Self {
            status,
            content_type,
            body,
            retry_after: None,
            link: None,
        }
    }
}

fn score(ags: &mut Ags, seen: &AgsRequest) -> Answer {
    if let Some(fault) = ags.score_faults.pop_front() {
        let mut answer = Answer::json(
            fault.status,
            json!({"error": format!("programmed failure {}", fault.status)}),
        );
        answer.retry_after = fault.retry_after;
        return answer;
    }
    if seen.content_type.as_deref() != Some(SCORE_CONTENT_TYPE) {
        return Answer::json(
            415,
            json!({"error": format!("expected {SCORE_CONTENT_TYPE}")}),
        );
    }
    let body = seen.json();
    let fields_ok = body["userId"].is_string()
        && body["scoreGiven"].is_number()
        && body["scoreMaximum"].is_number()
        && body["activityProgress"].is_string()
        && body["gradingProgress"].is_string()
        && body["timestamp"].is_string();
    if !fields_ok {
        return Answer::json(
            400,
            json!({"error": "a score needs userId, scoreGiven, scoreMaximum, activityProgress, gradingProgress and timestamp"}),
        );
    }
    Answer::json(200, json!({}))
}

fn lineitems(ags: &mut Ags, seen: &AgsRequest, query: &str) -> Answer {
    match seen.method.as_str() {
        "GET" => {
            let params: HashMap<String, String> = url::form_urlencoded::parse(query.as_bytes())
                .into_owned()
                .collect();
            let wanted = params
                .get("resource_link_id")
                .filter(|_| !ags.lineitems_unfiltered);
            let items: Vec<Value> = ags
                .lineitems
                .iter()
                .filter(|i| wanted.is_none_or(|w| i["resourceLinkId"].as_str() == Some(w)))
                .cloned()
                .collect();
            let size = match ags.lineitems_page_size {
                0 => items.len().max(1),
                n => n,
            };
            let page: usize = params.get("page").and_then(|p| p.parse().ok()).unwrap_or(1);
            let shown: Vec<Value> = items
                .iter()
                .skip((page - 1) * size)
                .take(size)
                .cloned()
                .collect();
            let mut answer = Answer::with_type(
                200,
                "application/vnd.ims.lis.v2.lineitemcontainer+json",
                Value::Array(shown).to_string(),
            );
            if page * size < items.len() {
                let mut next = url::form_urlencoded::Serializer::new(String::new());
                if let Some(id) = params.get("resource_link_id") {
                    next.append_pair("resource_link_id", id);
                }
                next.append_pair("page", &(page + 1).to_string());
                answer.link = Some(format!(
                    "<{}/lineitems?{}>; rel=\"next\"",
                    ags.base,
                    next.finish()
                ));
            }
            answer
        }
        "POST" => {
            if seen.content_type.as_deref() != Some(LINEITEM_CONTENT_TYPE) {
                return Answer::json(
                    415,
                    json!({"error": format!("expected {LINEITEM_CONTENT_TYPE}")}),
                );
            }
            let body = seen.json();
            let valid = body["scoreMaximum"].as_f64().is_some_and(|m| m > 0.0)
                && body["label"].as_str().is_some_and(|l| !l.is_empty());
            if !valid {
                return Answer::json(
                    400,
                    json!({"error": "a line item needs scoreMaximum > 0 and a label"}),
                );
            }
            let item = new_lineitem(ags, body);
            Answer::with_type(201, LINEITEM_CONTENT_TYPE, item.to_string())
        }
        _ => Answer::with_type(405, "text/plain", "method not allowed".to_owned()),
    }
}

async fn token_endpoint(shared: &Shared, seen: AgsRequest) -> hyper::Response<Full<Bytes>> {
    let form: HashMap<String, String> = url::form_urlencoded::parse(seen.body.as_bytes())
        .into_owned()
        .collect();
    let mut request = TokenRequest {
        form: form.clone(),
        user_agent: seen.user_agent.clone(),
        assertion: None,
        outcome: Err(String::new()),
    };
    let result = check_token_request(shared, &form, &mut request).await;
    let mut ags = shared.ags.lock().expect("lock");
    let response = match result {
        Ok(scopes) => {
            ags.tokens_minted += 1;
            let token = format!("tok-{}", ags.tokens_minted);
            ags.issued.insert(token.clone(), scopes.clone());
            request.outcome = Ok(token.clone());
            ags_respond(
                200,
                "application/json",
                json!({"access_token": token, "token_type": "Bearer", "expires_in": 3600, "scope": scopes.join(" ")}).to_string(),
            )
        }
        Err((error, description)) => {
            request.outcome = Err(format!("{error}: {description}"));
            oauth_error(error, &description)
        }
    };
    ags.token_requests.push(request);
    response
}

/// Checks a client-credentials request; returns the granted scopes.
async fn check_token_request(
    shared: &Shared,
    form: &HashMap<String, String>,
    request: &mut TokenRequest,
) -> Result<Vec<String>, (&'static str, String)> {
    let field = |name: &str| form.get(name).map(String::as_str).unwrap_or_default();
    if field("grant_type") != "client_credentials" {
        return Err((
            "unsupported_grant_type",
            "expected client_credentials".into(),
        ));
    }
    if field("client_assertion_type") != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" {
        return Err(("invalid_request", "unexpected client_assertion_type".into()));
    }
    let scopes: Vec<String> = field("scope").split(' ').map(str::to_owned).collect();
    if let Some(bad) = scopes.iter().find(|s| !KNOWN_SCOPES.contains(&s.as_str())) {
        return Err(("invalid_scope", format!("unknown scope {bad:?}")));
    }
    let assertion = field("client_assertion");
    let header = jsonwebtoken::decode_header(assertion).map_err(|e| {
        (
            "invalid_client",
            format!("unreadable assertion header: {e}"),
        )
    })?;
    if header.alg != Algorithm::RS256 {
        return Err((
            "invalid_client",
            format!("alg {:?} is not RS256", header.alg),
        ));
    }
    let kid = header
        .kid
        .ok_or(("invalid_client", "the assertion has no kid".to_owned()))?;
    let (jwks_url, token_url) = {
        let ags = shared.ags.lock().expect("lock");
        (ags.tool_jwks_url.clone(), format!("{}/token", ags.base))
    };
    let jwks_url = jwks_url.ok_or((
        "invalid_client",
        "the platform does not know the tool's JWKS URL".to_owned(),
    ))?;
    ltigate::install_crypto_provider();
    let jwks: Value = async { reqwest::get(&jwks_url).await?.json().await }
        .await
        .map_err(|e| ("invalid_client", format!("cannot fetch the tool JWKS: {e}")))?;
    let jwk = jwks["keys"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|k| k["kid"] == kid.as_str())
        .ok_or((
            "invalid_client",
            format!("kid {kid} is not in the tool JWKS"),
        ))?;
    let key = jsonwebtoken::DecodingKey::from_rsa_components(
        jwk["n"].as_str().unwrap_or_default(),
        jwk["e"].as_str().unwrap_or_default(),
    )
    .map_err(|e| ("invalid_client", format!("bad JWK: {e}")))?;
    let mut validation = jsonwebtoken::Validation::new(Algorithm::RS256);
    validation.set_audience(&[token_url.as_str()]);
    validation.set_issuer(&[shared.client_id.as_str()]);
    validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
    validation.leeway = 0;
    let claims = jsonwebtoken::decode::<Value>(assertion, &key, &validation)
        .map_err(|e| {
            (
                "invalid_client",
                format!("the assertion does not verify: {e}"),
            )
        })?
        .claims;
    request.assertion = Some(claims.clone());
    if claims["sub"] != shared.client_id.as_str() {
        return Err(("invalid_client", "sub is not the client_id".into()));
    }
    let jti = claims["jti"]
        .as_str()
        .filter(|j| !j.is_empty())
        .ok_or(("invalid_client", "the assertion has no jti".to_owned()))?;
    if !shared.ags.lock().expect("lock").jtis.insert(jti.to_owned()) {
        return Err(("invalid_grant", format!("jti {jti} was already used")));
    }
    Ok(scopes)
}
