//! The demo upstream: a fake Open edX LMS behind ltigate.
//!
//! It does what docs/in-front-of-the-lms.md asks of a real LMS: every request must carry an
//! `X-Ltigate-Assertion` JWT that verifies (RS256 only) against ltigate's
//! JWKS, with ltigate's public URL as `iss` and `openedx` as `aud`; a request
//! without one is not served, one that fails verification is refused.
//!
//! - `/ltigate/xblock/<usage_key>` (and `/xblock/<usage_key>`): the unit ltigate displays. It shows who the learner
//!   is (the assertion's claims), what was granted, and a button whose inline
//!   script POSTs to an XBlock handler of the same course with `X-CSRFToken`
//!   taken from the `csrftoken` cookie this page sets (Django's double-submit
//!   CSRF check);
//! - `/courses/<course>/xblock/<block>/handler/<name>`: the handler stand-in,
//!   answering JSON;
//! - `/static/demo/demo.css`: a small shared static file;
//! - `/dashboard`: an LMS page no ltigate rule opens.

use std::collections::HashMap;
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode, header};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use rand::RngCore as _;
use serde_json::{Value, json};

use crate::serve::{self, BASE_STYLE, Resp, esc, js_string};

const ASSERTION_HEADER: &str = "x-ltigate-assertion";
const CSRF_COOKIE: &str = "csrftoken";
const STATIC_CSS: &str = "/* Served by the demo LMS at /static/demo/demo.css, through ltigate's public rule. */\n\
.lms{background:#fdf6e3;border-bottom:1px solid #e5d9b6;padding:.5rem 1.5rem;margin:0;font-size:.85rem}\n\
section{border:1px solid #dde3e7;border-radius:6px;padding:.4rem 1rem .8rem;margin:.7rem 0}\n\
button{font-size:.95rem;padding:.35rem 1rem;background:#00262b;color:#fff;border:0;border-radius:4px;cursor:pointer}\n\
#static-status::after{content:\"loaded through the gate\";color:#1a7f37;font-weight:600}\n";

/// Verifies assertions against ltigate's JWKS.
pub struct Upstream {
    keys: HashMap<String, DecodingKey>,
    validation: Validation,
    /// Where ltigate publishes the keys (for the page).
    jwks_url: String,
}

/// A verified assertion.
struct Verified {
    kid: String,
    claims: Value,
}

impl Upstream {
    /// `jwks` is the JWKS document ltigate serves at `/lti/1p3/pub/jwks/`.
    pub fn new(jwks: &[u8], issuer: &str, audience: &str) -> anyhow::Result<Arc<Self>> {
        let set: JwkSet = serde_json::from_slice(jwks)?;
        let mut keys = HashMap::new();
        for jwk in &set.keys {
            if let Some(kid) = &jwk.common.key_id {
                keys.insert(kid.clone(), DecodingKey::from_jwk(jwk)?);
            }
        }
        anyhow::ensure!(!keys.is_empty(), "ltigate's JWKS holds no key with a kid");
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        Ok(Arc::new(Self {
            keys,
            validation,
            jwks_url: format!("{issuer}{}", ltigate::JWKS_PATH),
        }))
    }

    /// `Ok(None)` without the header; `Err` when it fails verification.
    fn verify<B>(&self, req: &Request<B>) -> Result<Option<Verified>, String> {
        let Some(value) = req.headers().get(ASSERTION_HEADER) else {
            return Ok(None);
        };
        let token = value.to_str().map_err(|_| "not ASCII".to_owned())?;
        let header = jsonwebtoken::decode_header(token).map_err(|e| e.to_string())?;
        let kid = header.kid.ok_or("no kid")?;
        let key = self
            .keys
            .get(&kid)
            .ok_or_else(|| format!("unknown kid {kid:?}"))?;
        let data = jsonwebtoken::decode::<Value>(token, key, &self.validation)
            .map_err(|e| e.to_string())?;
        Ok(Some(Verified {
            kid,
            claims: data.claims,
        }))
    }

    pub async fn handle(self: Arc<Self>, req: Request<Incoming>) -> Resp {
        let path = req.uri().path().to_owned();
        if path == "/static/demo/demo.css" && matches!(*req.method(), Method::GET | Method::HEAD) {
            return serve::respond(StatusCode::OK, "text/css; charset=utf-8", STATIC_CSS);
        }
        if path == "/favicon.ico" {
            return serve::respond(StatusCode::NO_CONTENT, "image/x-icon", "");
        }
        let verified = match self.verify(&req) {
            Ok(Some(v)) => v,
            Ok(None) => return anonymous(&path),
            Err(reason) => {
                // A header that fails verification is refused, never treated as anonymous.
                return serve::html(
                    StatusCode::FORBIDDEN,
                    page(
                        "Assertion refused",
                        &format!(
                            "<p>The X-Ltigate-Assertion header failed verification: {}</p>",
                            esc(&reason)
                        ),
                    ),
                );
            }
        };
        // The LMS app's display view (deploy/openedx), where ltigate's default
        // display_path points; the stock render_xblock path renders the same.
        if let Some(usage) = path
            .strip_prefix("/ltigate/xblock/")
            .or_else(|| path.strip_prefix("/xblock/"))
        {
            return match *req.method() {
                Method::GET | Method::HEAD => self.unit(&req, usage, &verified),
                _ => serve::text(StatusCode::METHOD_NOT_ALLOWED, "GET only"),
            };
        }
        if let Some((course, block, handler)) = handler_path(&path) {
            let (course, block, handler) =
                (course.to_owned(), block.to_owned(), handler.to_owned());
            return handle_xblock(req, &course, &block, &handler, &verified).await;
        }
        if path == "/dashboard" {
            return serve::html(
                StatusCode::OK,
                page(
                    "LMS dashboard",
                    "<p id=\"lms-dashboard\">The demo LMS's dashboard. ltigate has no rule for this page, so a learner never sees it through the gate.</p>",
                ),
            );
        }
        serve::html(
            StatusCode::NOT_FOUND,
            page(
                "Page not found (demo LMS)",
                "<p>The demo LMS has no page here.</p>",
            ),
        )
    }

    /// The launched unit.
    fn unit(&self, req: &Request<Incoming>, usage: &str, v: &Verified) -> Resp {
        let c = &v.claims;
        let s = |name: &str| c.get(name).and_then(Value::as_str).unwrap_or("(not sent)");
        let granted_usage = s("usage_key");
        let course = s("course_key");
        let roles = c
            .get("roles")
            .and_then(Value::as_array)
            .map(|r| {
                r.iter()
                    .filter_map(Value::as_str)
                    .map(|r| r.rsplit(['#', '/']).next().unwrap_or(r))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default();
        let context = c
            .pointer("/context/title")
            .and_then(Value::as_str)
            .unwrap_or("(none)");
        let lifetime = c
            .get("exp")
            .and_then(Value::as_u64)
            .map_or(0, |exp| exp.saturating_sub(serve::now()));
        let request_id = req
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-");
        let handler_url = format!("/courses/{course}/xblock/{granted_usage}/handler/demo_submit");
        let claims_json = serde_json::to_string_pretty(c).unwrap_or_default();
        let body = format!(
            r#"<h1>Welcome unit</h1>
<section><h2>Who you are</h2>
<p>Signed in as <strong id="learner-name">{name}</strong> (<span id="learner-email">{email}</span>), LMS username <code id="learner-username">{sub}</code>, roles: {roles}.</p>
<p id="assertion-status">The <code>X-Ltigate-Assertion</code> on this request verified: RS256, key <code>{kid}</code> from ltigate's JWKS (<code>{jwks}</code>), <code>iss</code> {iss}, <code>aud</code> {aud}; it is valid for {lifetime} more seconds. Request id <code>{request_id}</code>.</p>
</section>
<section><h2>What was granted</h2>
<dl><dt>Course</dt><dd id="granted-course">{course_e}</dd>
<dt>Content</dt><dd id="granted-usage">{granted_e}</dd>
<dt>This page</dt><dd>/xblock/{usage_e}</dd>
<dt>Course title</dt><dd>{context}</dd></dl>
</section>
<section><h2>An XBlock handler</h2>
<p>The button posts JSON to <code>{handler_e}</code> with an <code>X-CSRFToken</code> header copied from the <code>csrftoken</code> cookie this page set, as Open edX's JavaScript does.</p>
<button type="button" id="call-handler">Call the handler</button>
<pre id="handler-result">not called yet</pre>
</section>
<section><h2>Outside the grant</h2>
<p>Shared static file <code>/static/demo/demo.css</code>: <span id="static-status"></span></p>
<p><a id="dashboard-link" href="/dashboard">Open the LMS dashboard (/dashboard)</a>: no ltigate rule opens it, so ltigate answers instead of the LMS.</p>
</section>
<details><summary>All assertion claims</summary><pre id="claims">{claims}</pre></details>
<script>
(function () {{
  var url = {handler_js};
  function cookie(name) {{
    var parts = document.cookie ? document.cookie.split('; ') : [];
    for (var i = 0; i < parts.length; i++) {{
      var eq = parts[i].indexOf('=');
      if (parts[i].slice(0, eq) === name) return decodeURIComponent(parts[i].slice(eq + 1));
    }}
    return '';
  }}
  document.getElementById('call-handler').addEventListener('click', function () {{
    var out = document.getElementById('handler-result');
    out.textContent = 'calling ' + url + ' ...';
    fetch(url, {{
      method: 'POST',
      credentials: 'same-origin',
      headers: {{ 'Content-Type': 'application/json', 'X-CSRFToken': cookie('csrftoken') }},
      body: JSON.stringify({{ answer: 42 }})
    }}).then(function (r) {{
      return r.text().then(function (t) {{
        out.dataset.status = String(r.status);
        var shown = t;
        try {{ shown = JSON.stringify(JSON.parse(t), null, 1); }} catch (e) {{}}
        out.textContent = 'HTTP ' + r.status + '\n' + shown;
      }});
    }}).catch(function (e) {{
      out.dataset.status = 'error';
      out.textContent = 'request failed: ' + e;
    }});
  }});
}})();
</script>"#,
            name = esc(s("name")),
            email = esc(s("email")),
            sub = esc(s("sub")),
            roles = esc(&roles),
            kid = esc(&v.kid),
            jwks = esc(&self.jwks_url),
            iss = esc(s("iss")),
            aud = esc(s("aud")),
            course_e = esc(course),
            granted_e = esc(granted_usage),
            usage_e = esc(usage),
            context = esc(context),
            handler_e = esc(&handler_url),
            handler_js = js_string(&handler_url),
            claims = esc(&claims_json),
        );
        let mut response = serve::html(StatusCode::OK, page("Welcome unit", &body));
        if serve::cookie(req, CSRF_COOKIE).is_none() {
            let mut token = [0u8; 16];
            rand::rng().fill_bytes(&mut token);
            let token: String = token.iter().map(|b| format!("{b:02x}")).collect();
            // Django's defaults: readable by scripts, SameSite=Lax. Through
            // ltigate on HTTPS it becomes Secure; SameSite=None; Partitioned.
            if let Ok(v) = format!("{CSRF_COOKIE}={token}; Path=/; SameSite=Lax").parse() {
                response.headers_mut().append(header::SET_COOKIE, v);
            }
        }
        response
    }
}

/// `/courses/<course>/xblock/<block>/handler/<name>`.
fn handler_path(path: &str) -> Option<(&str, &str, &str)> {
    let rest = path.strip_prefix("/courses/")?;
    let (course, rest) = rest.split_once("/xblock/")?;
    let (block, handler) = rest
        .split_once("/handler/")
        .or_else(|| rest.split_once("/handler_noauth/"))?;
    Some((course, block, handler))
}

async fn handle_xblock(
    req: Request<Incoming>,
    course: &str,
    block: &str,
    handler: &str,
    v: &Verified,
) -> Resp {
    if req.method() != Method::POST {
        return serve::json(
            StatusCode::METHOD_NOT_ALLOWED,
            &json!({"error": "handlers take POST"}),
        );
    }
    // Django's double-submit check: the header must equal the cookie.
    let cookie = serve::cookie(&req, CSRF_COOKIE).unwrap_or_default();
    let header = req
        .headers()
        .get("x-csrftoken")
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    if cookie.is_empty() || header != cookie {
        return serve::json(
            StatusCode::FORBIDDEN,
            &json!({"error": "CSRF verification failed", "cookie_sent": !cookie.is_empty(), "header_sent": !header.is_empty()}),
        );
    }
    let Some(body) = serve::body(req, 64 * 1024).await else {
        return serve::json(
            StatusCode::PAYLOAD_TOO_LARGE,
            &json!({"error": "body too large"}),
        );
    };
    let received: Value = serde_json::from_slice(&body)
        .unwrap_or_else(|_| Value::from(String::from_utf8_lossy(&body).into_owned()));
    serve::json(
        StatusCode::OK,
        &json!({
            "ok": true,
            "handler": handler,
            "course": course,
            "block": block,
            "user": v.claims.get("sub"),
            "name": v.claims.get("name"),
            "csrf": "verified",
            "received": received,
        }),
    )
}

/// A request that did not come through ltigate.
fn anonymous(path: &str) -> Resp {
    serve::html(
        StatusCode::UNAUTHORIZED,
        page(
            "Not through the gateway",
            &format!(
                "<p>The demo LMS serves <code>{}</code> only to requests that carry ltigate's signed \
                 <code>X-Ltigate-Assertion</code>. Open the platform page and press Launch instead.</p>",
                esc(path)
            ),
        ),
    )
}

fn page(title: &str, body: &str) -> String {
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title} - Demo LMS</title>
<style>{BASE_STYLE}</style>
<link rel="stylesheet" href="/static/demo/demo.css"></head>
<body><p class="lms">Demo LMS: a fake Open edX behind ltigate</p>
<main>{body}</main></body></html>
"#,
        title = esc(title),
    )
}
