//! The demo platform: a stand-in for Canvas or Moodle.
//!
//! - `/`: a course page with a "Launch" button whose form posts the LTI 1.3
//!   third-party initiated login to ltigate, into an iframe on the page;
//! - `/auth`: the OIDC authorization endpoint. It checks the request the way a
//!   platform does and answers with a form that posts a signed RS256 id_token
//!   (a resource link launch of the demo unit) back to ltigate by itself;
//! - `/jwks`: the platform's public key, which ltigate fetches to verify it.

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;

use crate::serve::{self, BASE_STYLE, Resp, attr, esc};

/// The platform's registration with ltigate, and who the demo learner is.
pub const CLIENT_ID: &str = "ltigate-demo-client";
pub const DEPLOYMENT_ID: &str = "demo-deployment-1";
pub const KID: &str = "demo-platform-key-1";
/// The one resource link of the demo course: `lti_message_hint` names it.
const RESOURCE_LINK: &str = "demo-unit";
const LEARNER_SUB: &str = "demo-learner-1";
pub const LEARNER_NAME: &str = "Ada Lovelace";
pub const LEARNER_EMAIL: &str = "ada@example.edu";
const LEARNER_ROLE: &str = "http://purl.imsglobal.org/vocab/lis/v2/membership#Learner";

pub struct Platform {
    /// `http://127.0.0.1:<port>`: the page's origin, and the issuer.
    pub base: String,
    /// ltigate's origin.
    gateway: String,
    /// The display path of the demo unit on ltigate: the resource link's target.
    target: String,
    encoding: EncodingKey,
    jwks: String,
}

impl Platform {
    pub fn new(base: String, gateway: String, target: String) -> anyhow::Result<Arc<Self>> {
        let key = ltigate::generate_key(KID)?;
        Ok(Arc::new(Self {
            encoding: EncodingKey::from_rsa_pem(key.private_pem.as_bytes())?,
            jwks: json!({ "keys": [key.public_jwk] }).to_string(),
            base,
            gateway,
            target,
        }))
    }

    /// The platform's issuer (`iss`).
    pub fn issuer(&self) -> &str {
        &self.base
    }

    pub async fn handle(self: Arc<Self>, req: Request<Incoming>) -> Resp {
        match (req.method(), req.uri().path()) {
            (&Method::GET | &Method::HEAD, "/") => serve::html(StatusCode::OK, self.course_page()),
            (&Method::GET | &Method::HEAD, "/jwks") => {
                serve::respond(StatusCode::OK, "application/json", self.jwks.clone())
            }
            (&Method::GET, "/auth") => self.auth(&serve::query(&req)),
            (_, "/favicon.ico") => serve::respond(StatusCode::NO_CONTENT, "image/x-icon", ""),
            _ => serve::text(StatusCode::NOT_FOUND, "not found on the demo platform"),
        }
    }

    fn course_page(&self) -> String {
        let login = format!("{}/lti/1p3/login/", self.gateway);
        let hidden = [
            ("iss", self.issuer()),
            ("login_hint", LEARNER_SUB),
            ("target_link_uri", &self.target),
            ("lti_message_hint", RESOURCE_LINK),
            ("client_id", CLIENT_ID),
            ("lti_deployment_id", DEPLOYMENT_ID),
        ]
        .iter()
        .map(|(n, v)| format!("<input type=\"hidden\" name=\"{n}\" value=\"{}\">", attr(v)))
        .collect::<String>();
        format!(
            r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Gateway 101 - Demo platform</title>
<style>{BASE_STYLE}
header{{background:#2d3b45;color:#fff;padding:.7rem 1.5rem;font-weight:600}}
header small{{font-weight:400;opacity:.8;margin-left:1rem}}
.launch{{display:flex;align-items:center;gap:1rem;flex-wrap:wrap}}
button{{font-size:1rem;padding:.45rem 1.3rem;background:#0374b5;color:#fff;border:0;border-radius:4px;cursor:pointer}}
iframe{{width:100%;height:720px;border:1px solid #c7cdd1;border-radius:4px;margin-top:.8rem;background:#fff}}
ol{{margin:.3rem 0;padding-left:1.3rem;line-height:1.5;font-size:.9rem;color:#333}}</style></head>
<body><header>Demo platform <small>a stand-in for Canvas or Moodle, at {origin}</small></header>
<main>
<h1>Gateway 101: Welcome unit</h1>
<p>You are <strong>{name}</strong> ({email}), a learner in this course. The unit is Open edX content,
delivered through ltigate at <code>{gateway}</code>.</p>
<form class="launch" method="post" action="{login}" target="tool">{hidden}
<button type="submit" id="launch">Launch</button>
<span>opens the unit in the frame below, as an LMS does.</span></form>
<iframe name="tool" id="tool" title="Launched LTI tool: the demo unit" src="about:blank"></iframe>
<h2>What happens when you press Launch</h2>
<ol>
<li>This page posts an LTI 1.3 login initiation to ltigate (<code>/lti/1p3/login/</code>) inside the frame.</li>
<li>ltigate remembers a state and nonce (and sets a state cookie) and sends the frame to this platform's <code>/auth</code>.</li>
<li><code>/auth</code> answers with a form that posts an id_token signed with this platform's key to ltigate's <code>/lti/1p3/launch/</code>.</li>
<li>ltigate verifies it against this platform's <code>/jwks</code>, records a grant for the unit in a session (cookie) and redirects to the unit.</li>
<li>Every request the frame then makes goes through ltigate, which forwards it to the LMS with a signed assertion only if a rule allows it for the grant.</li>
</ol>
</main></body></html>
"#,
            origin = esc(&self.base),
            name = esc(LEARNER_NAME),
            email = esc(LEARNER_EMAIL),
            gateway = esc(&self.gateway),
            login = attr(&login),
        )
    }

    /// The OIDC authorization endpoint (`response_mode=form_post`).
    fn auth(&self, params: &[(String, String)]) -> Resp {
        let get = |name: &str| -> Option<&str> {
            params
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        };
        let redirect_uri = format!("{}/lti/1p3/launch/", self.gateway);
        let expected = [
            ("scope", "openid"),
            ("response_type", "id_token"),
            ("response_mode", "form_post"),
            ("prompt", "none"),
            ("client_id", CLIENT_ID),
            ("redirect_uri", redirect_uri.as_str()),
            ("login_hint", LEARNER_SUB),
            ("lti_message_hint", RESOURCE_LINK),
        ];
        for (name, value) in expected {
            if get(name) != Some(value) {
                return serve::text(
                    StatusCode::BAD_REQUEST,
                    format!(
                        "The demo platform refused the authentication request: {name} should be {value:?}, was {:?}",
                        get(name)
                    ),
                );
            }
        }
        let (Some(state), Some(nonce)) = (
            get("state").filter(|s| !s.is_empty()),
            get("nonce").filter(|s| !s.is_empty()),
        ) else {
            return serve::text(
                StatusCode::BAD_REQUEST,
                "The demo platform refused the authentication request: no state or nonce",
            );
        };
        let now = serve::now();
        let claims = json!({
            "iss": self.issuer(),
            "aud": CLIENT_ID,
            "sub": LEARNER_SUB,
            "iat": now,
            "exp": now + 300,
            "nonce": nonce,
            "name": LEARNER_NAME,
            "given_name": "Ada",
            "family_name": "Lovelace",
            "email": LEARNER_EMAIL,
            "locale": "en-GB",
            "https://purl.imsglobal.org/spec/lti/claim/version": "1.3.0",
            "https://purl.imsglobal.org/spec/lti/claim/message_type": "LtiResourceLinkRequest",
            "https://purl.imsglobal.org/spec/lti/claim/deployment_id": DEPLOYMENT_ID,
            "https://purl.imsglobal.org/spec/lti/claim/roles": [LEARNER_ROLE],
            "https://purl.imsglobal.org/spec/lti/claim/resource_link": {
                "id": "demo-resource-link-1", "title": "Welcome unit"
            },
            "https://purl.imsglobal.org/spec/lti/claim/target_link_uri": self.target,
            "https://purl.imsglobal.org/spec/lti/claim/context": {
                "id": "demo-course-1", "label": "GW101", "title": "Gateway 101"
            },
            "https://purl.imsglobal.org/spec/lti/claim/launch_presentation": {
                "document_target": "iframe", "return_url": format!("{}/", self.base)
            },
        });
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(KID.to_owned());
        let id_token = match jsonwebtoken::encode(&header, &claims, &self.encoding) {
            Ok(t) => t,
            Err(e) => {
                return serve::text(StatusCode::INTERNAL_SERVER_ERROR, format!("signing: {e}"));
            }
        };
        let page = format!(
            r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Launching...</title></head>
<body onload="document.forms[0].submit()">
<form method="post" action="{action}">
<input type="hidden" name="id_token" value="{id_token}">
<input type="hidden" name="state" value="{state}">
<noscript><button type="submit">Continue to the activity</button></noscript>
</form></body></html>
"#,
            action = attr(&redirect_uri),
            id_token = attr(&id_token),
            state = attr(state),
        );
        serve::html(StatusCode::OK, page)
    }
}
