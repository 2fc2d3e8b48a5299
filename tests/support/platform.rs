//! A test LTI platform: its own RSA keys, a JWKS endpoint, and an OIDC auth
//! endpoint that answers with an auto-posting launch form, like a real LMS.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::KeyPair as _;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http_body_util::Full;
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
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let served = shared.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let shared = served.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| {
                        let shared = shared.clone();
                        async move { Ok::<_, std::convert::Infallible>(route(&shared, req)) }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self {
            issuer: issuer.to_owned(),
            client_id: client_id.to_owned(),
            deployment_id: deployment_id.to_owned(),
            addr,
            shared,
        }
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
        "/jwks" => {
            shared.jwks_fetches.fetch_add(1, Ordering::SeqCst);
            let keys: Vec<Value> = shared
                .published
                .lock()
                .expect("lock")
                .iter()
                .map(|k| k.jwk.clone())
                .collect();
            respond(200, "application/json", json!({ "keys": keys }).to_string())
        }
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
