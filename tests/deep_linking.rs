//! Deep Linking 2.0 end to end: a real gateway, the real test platform and a
//! real test LMS API (OAuth2 + the course and block REST APIs). The test
//! plays the platform: it sends `LtiDeepLinkingRequest` launches, drives the
//! picker like a browser (cookie jar, HTML form), and verifies the signed
//! `LtiDeepLinkingResponse` against the gateway's JWKS fetched over HTTP.
//!
//! Covered: the round trip through both launch endpoints; the picker page
//! (grouping, labels, control types, self-contained HTML, CSP); the response
//! page's CSP; every claim of the response JWT; the launch refusals (role, no
//! gate, empty gate, accept_types, no `[deep_linking]`); the picker token
//! (expiry, browser binding, single use, CSRF); tampered selections; what the
//! gate lists (block filters, course filters, allowed keys, orgs with paged
//! course lists); LMS failures and caching; and launching a created link.

mod support;

use std::collections::HashMap;

use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use ltigate::Namespace;
use serde_json::{Value, json};
use support::lms_api::{self, CS101, CS102, ORG_PAGED, PAGED_COURSES, SECRET_COURSE, TestLmsApi};
use support::platform::LEARNER;
use support::*;

const DL_LAUNCH: &str = "/lti/1p3/deep-linking/launch/";
const PICKER_PREFIX: &str = "/lti/1p3/deep-linking/select-content/";
const JWKS: &str = "/lti/1p3/pub/jwks/";
const MESSAGE_TYPE: &str = "https://purl.imsglobal.org/spec/lti/claim/message_type";
const ROLES: &str = "https://purl.imsglobal.org/spec/lti/claim/roles";
const RESOURCE_LINK: &str = "https://purl.imsglobal.org/spec/lti/claim/resource_link";
const DEPLOYMENT: &str = "https://purl.imsglobal.org/spec/lti/claim/deployment_id";
const VERSION: &str = "https://purl.imsglobal.org/spec/lti/claim/version";
const SETTINGS: &str = "https://purl.imsglobal.org/spec/lti-dl/claim/deep_linking_settings";
const CONTENT_ITEMS: &str = "https://purl.imsglobal.org/spec/lti-dl/claim/content_items";
const DATA: &str = "https://purl.imsglobal.org/spec/lti-dl/claim/data";
const INSTRUCTOR: &str = "http://purl.imsglobal.org/vocab/lis/v2/membership#Instructor";
const OPAQUE: &str = "opaque-123";

/// A `[platforms.gate]` table with `lines` in it.
fn gate(lines: &str) -> String {
    format!("[platforms.gate]\n{lines}\n")
}

/// `allowed_courses = [...]`.
fn courses(list: &[&str]) -> String {
    format!("allowed_courses = {list:?}")
}

/// The usage key of a block of the test catalog.
fn key(course: &str, kind: &str, id: &str) -> String {
    lms_api::usage(course, kind, id)
}

/// One test's world: a platform, an LMS API and a gateway reading it.
struct World {
    platform: TestPlatform,
    lms: TestLmsApi,
    gw: Gateway,
}

impl World {
    /// `platform_extra` goes in the platform's table (its gate).
    async fn start(platform_extra: &str) -> Self {
        Self::start_with(platform_extra, TestLmsApi::config).await
    }

    /// `deep_linking` writes the `[deep_linking]` table ("" for none).
    async fn start_with(
        platform_extra: &str,
        deep_linking: impl FnOnce(&TestLmsApi) -> String,
    ) -> Self {
        let platform = TestPlatform::start().await;
        let lms = TestLmsApi::start().await;
        let gw = Gateway::start_with(
            &platform,
            GatewayOptions {
                extra: deep_linking(&lms),
                platform_extra: platform_extra.to_owned(),
                ..Default::default()
            },
        )
        .await;
        Self { platform, lms, gw }
    }

    /// Where the platform wants the response posted.
    /// Moodle-style: a query with several parameters, so `&` must survive
    /// HTML escaping in the response form.
    fn return_url(&self) -> String {
        format!(
            "{}/dl-return?course=2&id=1&sesskey=k%2By",
            self.platform.base_url()
        )
    }

    /// The default deep_linking_settings claim.
    fn settings(&self) -> Value {
        json!({
            "deep_link_return_url": self.return_url(),
            "accept_types": ["ltiResourceLink"],
            "accept_presentation_document_targets": ["iframe", "window"],
            "accept_multiple": true,
            "auto_create": true,
            "data": OPAQUE,
        })
    }

    /// A deep-linking launch by an instructor, posted to `endpoint`; `edit`
    /// changes the claims before they are signed.
    async fn dl_launch(
        &self,
        browser: &Browser,
        endpoint: &str,
        edit: impl FnOnce(&mut Value),
    ) -> (AuthRequest, LaunchResult) {
        let target = self.gw.url(DL_LAUNCH);
        let auth = browser.login(&self.gw, &self.platform, &target).await;
        let mut claims = self.platform.claims(&auth, &target);
        claims[MESSAGE_TYPE] = json!("LtiDeepLinkingRequest");
        claims[ROLES] = json!([INSTRUCTOR]);
        claims
            .as_object_mut()
            .expect("claims are an object")
            .remove(RESOURCE_LINK);
        claims[SETTINGS] = self.settings();
        edit(&mut claims);
        let id_token = self.platform.sign(&claims);
        let result = browser
            .post_form(
                &self.gw,
                endpoint,
                &[
                    ("id_token", id_token.as_str()),
                    ("state", auth.state.as_str()),
                ],
            )
            .await;
        (auth, result)
    }

    /// A successful deep-linking launch: the picker's path.
    async fn open(&self, browser: &Browser, edit: impl FnOnce(&mut Value)) -> String {
        let (_, result) = self.dl_launch(browser, DL_LAUNCH, edit).await;
        picker_path_of(&self.gw, &result)
    }

    /// How many live picker tokens the store holds.
    async fn tokens(&self) -> usize {
        self.gw
            .app
            .store
            .count(Namespace::DeepLinking)
            .await
            .expect("count picker tokens")
    }

    /// The content item the gateway should return for a block.
    fn item(&self, course: &str, usage: &str, title: &str) -> Value {
        json!({
            "type": "ltiResourceLink",
            "title": title,
            "url": format!("{}/lti/1p3/launch/{course}/{usage}", self.gw.origin()),
        })
    }

    /// A refused deep-linking launch leaves no picker behind.
    async fn assert_no_picker(&self, result: &LaunchResult) {
        assert_eq!(result.location, None, "a refused launch redirects nowhere");
        assert!(
            !result
                .set_cookies
                .iter()
                .any(|c| c.starts_with("ltigate_dl_")),
            "a refused launch sets no picker cookie: {:?}",
            result.set_cookies
        );
        assert_eq!(
            self.tokens().await,
            0,
            "a refused launch stores no picker token"
        );
        assert_eq!(self.gw.session_count().await, 0);
    }
}

/// The picker path a deep-linking launch redirected to.
#[track_caller]
fn picker_path_of(gw: &Gateway, result: &LaunchResult) -> String {
    assert_eq!(
        result.status, 302,
        "deep-linking launch refused: {}",
        result.body
    );
    let location = result.location.as_deref().expect("a Location");
    let path = location
        .strip_prefix(&gw.origin())
        .unwrap_or_else(|| panic!("the picker is on the gateway: {location}"));
    let token = path
        .strip_prefix(PICKER_PREFIX)
        .and_then(|t| t.strip_suffix('/'))
        .unwrap_or_else(|| panic!("not a picker path: {path}"));
    assert!(
        token.len() >= 22 && !token.contains('/'),
        "a picker token of 128 bits or more: {token}"
    );
    path.to_owned()
}

/// A response, read.
struct Page {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: String,
}

impl Page {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    #[track_caller]
    fn assert_ok(&self) {
        assert_eq!(self.status, 200, "{}", self.body);
    }

    #[track_caller]
    fn assert_refused(&self, status: u16, reason: &str) {
        assert_eq!(self.status, status, "{}", self.body);
        assert!(
            self.body.contains(&format!("<code>{reason}</code>")),
            "expected reason {reason}: {}",
            self.body
        );
        assert!(
            !self.body.contains("name=\"JWT\""),
            "a refusal carries no response JWT"
        );
    }
}

async fn read(response: reqwest::Response) -> Page {
    Page {
        status: response.status().as_u16(),
        headers: response.headers().clone(),
        body: response.text().await.expect("body"),
    }
}

async fn get(browser: &Browser, gw: &Gateway, path: &str) -> Page {
    read(browser.http.get(gw.url(path)).send().await.expect("GET")).await
}

async fn post(browser: &Browser, gw: &Gateway, path: &str, form: &[(&str, &str)]) -> Page {
    read(
        browser
            .http
            .post(gw.url(path))
            .form(form)
            .send()
            .await
            .expect("POST"),
    )
    .await
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

/// An attribute of a tag (the text after the tag name).
fn attr(tag: &str, name: &str) -> Option<String> {
    let needle = format!(" {name}=\"");
    let start = tag.find(&needle)? + needle.len();
    let end = tag[start..].find('"')? + start;
    Some(unescape(&tag[start..end]))
}

/// Every tag `<name ...>` of a page, without its brackets.
fn tags<'a>(html: &'a str, name: &str) -> Vec<&'a str> {
    let open = format!("<{name} ");
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(i) = rest.find(&open) {
        let end = rest[i..].find('>').expect("a closed tag") + i;
        out.push(&rest[i + 1..end]);
        rest = &rest[end..];
    }
    out
}

/// One listed block.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Listed {
    /// The legend of its fieldset.
    course: String,
    /// `checkbox` or `radio`.
    control: String,
    value: String,
    title: String,
    block_type: String,
}

/// The picker form, read the way a browser shows it.
#[derive(Debug)]
struct Picker {
    action: String,
    csrf: String,
    legends: Vec<String>,
    items: Vec<Listed>,
}

impl Picker {
    fn values(&self) -> Vec<&str> {
        self.items.iter().map(|i| i.value.as_str()).collect()
    }
}

/// Parses the picker, checking that every item control is labelled.
fn parse_picker(html: &str) -> Picker {
    let form = tags(html, "form")
        .into_iter()
        .find(|t| attr(t, "method").as_deref() == Some("post"))
        .expect("a POST form");
    let action = attr(form, "action").expect("the form's action");
    let inputs = tags(html, "input");
    let csrf = inputs
        .iter()
        .find(|t| attr(t, "name").as_deref() == Some("csrf"))
        .and_then(|t| {
            assert_eq!(attr(t, "type").as_deref(), Some("hidden"));
            attr(t, "value")
        })
        .expect("a csrf input");
    let item_inputs = inputs
        .iter()
        .filter(|t| attr(t, "name").as_deref() == Some("item"))
        .count();
    let mut legends = Vec::new();
    let mut items = Vec::new();
    let mut ids = std::collections::HashSet::new();
    for chunk in html.split("<fieldset>").skip(1) {
        let chunk = &chunk[..chunk.find("</fieldset>").expect("a closed fieldset")];
        let legend = chunk
            .strip_prefix("<legend>")
            .and_then(|l| l.find("</legend>").map(|end| unescape(&l[..end])))
            .expect("each fieldset starts with its legend");
        legends.push(legend.clone());
        for label in chunk.split("<label").skip(1) {
            let label = &label[..label.find("</label>").expect("a closed label")];
            let tag_end = label.find('>').expect("label tag");
            let label_for = attr(&label[..tag_end], "for").expect("label for=");
            let inner = &label[tag_end + 1..];
            let input = inner
                .strip_prefix("<input")
                .map(|i| &i[..i.find('>').expect("input tag")])
                .expect("the control inside its label");
            let id = attr(input, "id").expect("the control has an id");
            assert_eq!(label_for, id, "the label is for its control");
            assert!(ids.insert(id.clone()), "control ids are unique: {id}");
            assert_eq!(attr(input, "name").as_deref(), Some("item"));
            let rest = &inner[inner.find('>').expect("input end") + 1..];
            let (title, kind) = rest
                .split_once("<span class=\"t\">(")
                .expect("the block type is shown");
            let kind = kind.strip_suffix(")</span>").expect("the type's span");
            items.push(Listed {
                course: legend.clone(),
                control: attr(input, "type").expect("type"),
                value: attr(input, "value").expect("value"),
                title: unescape(title.trim()),
                block_type: unescape(kind),
            });
        }
    }
    assert_eq!(
        items.len(),
        item_inputs,
        "every item control is inside a labelled fieldset"
    );
    Picker {
        action,
        csrf,
        legends,
        items,
    }
}

/// Opens the picker; it must answer 200.
async fn picker(browser: &Browser, gw: &Gateway, path: &str) -> Picker {
    let page = get(browser, gw, path).await;
    page.assert_ok();
    parse_picker(&page.body)
}

/// The listing a gate should give for whole courses, in course order.
fn listing_of(course_id: &str, keep: impl Fn(&str) -> bool) -> Vec<Listed> {
    let course = lms_api::course(course_id);
    course
        .blocks()
        .into_iter()
        .filter(|(_, kind, _)| keep(kind))
        .map(|(usage, kind, title)| Listed {
            course: course.name.to_owned(),
            control: "checkbox".to_owned(),
            value: usage,
            title: title.to_owned(),
            block_type: kind.to_owned(),
        })
        .collect()
}

/// Submits the picker with `items`; the answer must be the response page.
/// Returns the page and the JWT it posts.
async fn submit(
    browser: &Browser,
    w: &World,
    path: &str,
    csrf: &str,
    items: &[&str],
) -> (Page, String) {
    let mut form = vec![("csrf", csrf)];
    form.extend(items.iter().map(|i| ("item", *i)));
    let page = post(browser, &w.gw, path, &form).await;
    page.assert_ok();
    let form = tags(&page.body, "form");
    assert_eq!(form.len(), 1, "one form");
    assert_eq!(attr(form[0], "method").as_deref(), Some("post"));
    assert_eq!(
        attr(form[0], "action"),
        Some(w.return_url()),
        "the form posts to deep_link_return_url"
    );
    let fields: Vec<(String, String)> = tags(&page.body, "input")
        .iter()
        .filter_map(|t| Some((attr(t, "name")?, attr(t, "value")?)))
        .collect();
    assert_eq!(fields.len(), 1, "one field: {fields:?}");
    assert_eq!(fields[0].0, "JWT");
    let jwt = fields[0].1.clone();
    (page, jwt)
}

/// Verifies a response JWT as the platform does: against the gateway's JWKS
/// over HTTP, RS256, by the header's kid, `iss` = client_id, `aud` = issuer.
async fn verify(w: &World, jwt: &str) -> Value {
    let header = jsonwebtoken::decode_header(jwt).expect("a JWT header");
    assert_eq!(header.alg, Algorithm::RS256);
    assert_eq!(header.typ.as_deref(), Some("JWT"));
    let kid = header.kid.expect("the response JWT header carries a kid");
    assert!(!kid.is_empty());
    let jwks: Value = reqwest::get(w.gw.url(JWKS))
        .await
        .expect("JWKS")
        .json()
        .await
        .expect("JWKS is JSON");
    let jwk = jwks["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .find(|k| k["kid"] == kid.as_str())
        .unwrap_or_else(|| panic!("kid {kid} is not in the gateway's JWKS: {jwks}"));
    let key = DecodingKey::from_rsa_components(
        jwk["n"].as_str().expect("n"),
        jwk["e"].as_str().expect("e"),
    )
    .expect("an RSA key");
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_audience(&[w.platform.issuer.as_str()]);
    validation.set_issuer(&[w.platform.client_id.as_str()]);
    validation.set_required_spec_claims(&["exp", "iat", "iss", "aud"]);
    validation.leeway = 0;
    jsonwebtoken::decode::<Value>(jwt, &key, &validation)
        .unwrap_or_else(|e| panic!("the response JWT does not verify: {e}"))
        .claims
}

/// No key named `custom` (or ending in `/custom`) anywhere in `v`.
fn assert_no_custom(v: &Value) {
    match v {
        Value::Object(map) => {
            for (k, inner) in map {
                assert!(
                    k != "custom" && !k.ends_with("/custom"),
                    "a custom key was sent: {k}"
                );
                assert_no_custom(inner);
            }
        }
        Value::Array(list) => list.iter().for_each(assert_no_custom),
        _ => {}
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("time")
        .as_secs()
}

/// Checks every claim of a verified response.
fn check_claims(w: &World, auth: &AuthRequest, claims: &Value, items: &Value, data: Option<&str>) {
    assert_eq!(claims["iss"], w.platform.client_id.as_str());
    assert_eq!(claims["aud"], w.platform.issuer.as_str());
    let iat = claims["iat"].as_u64().expect("iat is a NumericDate");
    let exp = claims["exp"].as_u64().expect("exp is a NumericDate");
    let t = now();
    assert!(iat + 10 >= t && iat <= t + 10, "iat {iat} is now ({t})");
    assert!(
        exp > iat && exp <= iat + 3600,
        "exp {exp} is soon after iat {iat}"
    );
    let nonce = claims["nonce"].as_str().expect("a nonce");
    assert!(nonce.len() >= 16, "a random nonce: {nonce:?}");
    assert_ne!(nonce, auth.nonce, "the nonce is fresh, not the request's");
    assert_eq!(claims[DEPLOYMENT], w.platform.deployment_id.as_str());
    assert_eq!(claims[MESSAGE_TYPE], "LtiDeepLinkingResponse");
    assert_eq!(claims[VERSION], "1.3.0");
    assert_eq!(&claims[CONTENT_ITEMS], items);
    match data {
        Some(d) => assert_eq!(claims[DATA], d, "data is echoed"),
        None => assert!(
            claims.get(DATA).is_none(),
            "no data claim without request data: {claims}"
        ),
    }
    assert_no_custom(claims);
}

/// The directives of a Content-Security-Policy.
fn csp(policy: &str) -> HashMap<String, Vec<String>> {
    policy
        .split(';')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(|d| {
            let mut parts = d.split_whitespace();
            let name = parts.next().expect("a directive name").to_ascii_lowercase();
            (name, parts.map(str::to_owned).collect())
        })
        .collect()
}

/// The page loads nothing from anywhere: no external script, style or image.
fn assert_self_contained(html: &str, origin: &str) {
    for attribute in ["src=\"", "href=\"", "src='", "href='"] {
        let mut rest = html;
        while let Some(i) = rest.find(attribute) {
            let value = &rest[i + attribute.len()..];
            assert!(
                (value.starts_with('/') && !value.starts_with("//")) || value.starts_with(origin),
                "a reference to another origin: {}",
                &value[..value.len().min(80)]
            );
            rest = value;
        }
    }
    assert!(!html.contains("<link"), "no linked stylesheet");
    assert!(
        !html.contains("@import") && !html.contains("url("),
        "no style imports"
    );
}

// ---------------------------------------------------------------- round trips

#[tokio::test]
async fn instructor_round_trip_returns_a_verified_response() {
    let w = World::start(&gate(&courses(&[CS101, CS102]))).await;
    let browser = Browser::new();
    let (auth, result) = w.dl_launch(&browser, DL_LAUNCH, |_| {}).await;
    let path = picker_path_of(&w.gw, &result);
    let token = path
        .trim_start_matches(PICKER_PREFIX)
        .trim_end_matches('/')
        .to_owned();
    let cookie = result
        .set_cookies
        .iter()
        .find(|c| c.starts_with(&format!("ltigate_dl_{token}=")))
        .unwrap_or_else(|| panic!("a picker cookie: {:?}", result.set_cookies));
    for part in ["HttpOnly", "Path=/", "Max-Age=1800"] {
        assert!(cookie.contains(part), "{cookie} lacks {part}");
    }
    assert!(
        result
            .set_cookies
            .iter()
            .any(|c| c.starts_with("ltigate_state_") && c.contains("Max-Age=0")),
        "the login state cookie is cleared"
    );
    assert!(!result.set_session(), "deep linking creates no session");
    assert_eq!(w.gw.session_count().await, 0);
    assert_eq!(w.tokens().await, 1);

    // The picker.
    let page = get(&browser, &w.gw, &path).await;
    page.assert_ok();
    assert!(page.header("content-type").starts_with("text/html"));
    assert_eq!(page.header("cache-control"), "no-store");
    let policy = csp(page.header("content-security-policy"));
    assert_eq!(policy["default-src"], ["'none'"]);
    assert!(
        !policy.contains_key("script-src"),
        "the picker runs no script"
    );
    assert!(!page.body.contains("<script"));
    assert_self_contained(&page.body, &w.gw.origin());
    let p = parse_picker(&page.body);
    assert_eq!(p.action, path, "the form posts back to the picker");
    assert_eq!(p.legends, ["Intro to Computing", "Data Structures"]);
    let mut expected = listing_of(CS101, |_| true);
    expected.extend(listing_of(CS102, |_| true));
    assert_eq!(
        p.items, expected,
        "every block, grouped by course, in order"
    );
    assert!(
        page.body.contains("Reading: Q&amp;A &lt;Intro&gt;"),
        "titles are HTML-escaped"
    );
    assert!(
        tags(&page.body, "label")
            .iter()
            .any(|l| attr(l, "for").as_deref() == Some("q")),
        "from 15 items on, a labelled search box"
    );

    // The selection.
    let p1 = key(CS101, "problem", "p1");
    let h1 = key(CS101, "html", "h1");
    let (response, jwt) = submit(&browser, &w, &path, &p.csrf, &[&p1, &h1]).await;
    assert_eq!(response.header("cache-control"), "no-store");
    assert_self_contained(&response.body, &w.gw.origin());
    let policy = csp(response.header("content-security-policy"));
    assert_eq!(policy["default-src"], ["'none'"]);
    let script = response
        .body
        .split_once("<script>")
        .and_then(|(_, s)| s.split_once("</script>"))
        .map(|(s, _)| s)
        .expect("an inline auto-submit script");
    assert_eq!(
        response.body.matches("<script").count(),
        1,
        "one script only"
    );
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, script.as_bytes());
    let hash = format!(
        "'sha256-{}'",
        base64::engine::general_purpose::STANDARD.encode(digest.as_ref())
    );
    assert_eq!(
        policy["script-src"],
        [hash],
        "only the inline script, by its hash"
    );
    assert_eq!(
        policy["form-action"],
        [w.platform.base_url()],
        "the form may post only to the return URL's origin"
    );
    assert!(
        response.body.contains("<button type=\"submit\""),
        "a visible button works without the script"
    );

    let claims = verify(&w, &jwt).await;
    let items = json!([
        w.item(CS101, &p1, "Problem 1"),
        w.item(CS101, &h1, "Reading: Q&A <Intro>"),
    ]);
    check_claims(&w, &auth, &claims, &items, Some(OPAQUE));
    assert_eq!(w.tokens().await, 0, "the token is consumed");
}

#[tokio::test]
async fn the_resource_launch_endpoint_takes_deep_linking_requests_too() {
    let w = World::start(&gate(&courses(&[CS101]))).await;
    let browser = Browser::new();
    let target = w.gw.url(DL_LAUNCH);
    let auth = browser.login(&w.gw, &w.platform, &target).await;
    let mut claims = w.platform.claims(&auth, &target);
    claims[MESSAGE_TYPE] = json!("LtiDeepLinkingRequest");
    claims[ROLES] = json!([INSTRUCTOR]);
    claims
        .as_object_mut()
        .expect("object")
        .remove(RESOURCE_LINK);
    let mut settings = w.settings();
    settings["accept_multiple"] = json!(false);
    claims[SETTINGS] = settings;
    let result = browser
        .post_launch(&w.gw, &w.platform.sign(&claims), &auth.state)
        .await;
    let path = picker_path_of(&w.gw, &result);

    let p = picker(&browser, &w.gw, &path).await;
    assert!(!p.items.is_empty());
    assert!(
        p.items.iter().all(|i| i.control == "radio"),
        "one choice only: radios"
    );
    let vid = key(CS101, "video", "vid1");
    let (_, jwt) = submit(&browser, &w, &path, &p.csrf, &[&vid]).await;
    let claims = verify(&w, &jwt).await;
    check_claims(
        &w,
        &auth,
        &claims,
        &json!([w.item(CS101, &vid, "Lecture video")]),
        Some(OPAQUE),
    );
}

#[tokio::test]
async fn data_is_echoed_only_when_present() {
    let w = World::start(&gate(&courses(&[CS101]))).await;
    let browser = Browser::new();
    let (auth, result) = w
        .dl_launch(&browser, DL_LAUNCH, |c| {
            c[SETTINGS]
                .as_object_mut()
                .expect("settings")
                .remove("data");
        })
        .await;
    let path = picker_path_of(&w.gw, &result);
    let p = picker(&browser, &w.gw, &path).await;
    let p2 = key(CS101, "problem", "p2");
    let (_, jwt) = submit(&browser, &w, &path, &p.csrf, &[&p2]).await;
    let claims = verify(&w, &jwt).await;
    check_claims(
        &w,
        &auth,
        &claims,
        &json!([w.item(CS101, &p2, "Problem 2")]),
        None,
    );
}

#[tokio::test]
async fn a_deep_linked_resource_launches_through_the_normal_flow() {
    let w = World::start(&gate(&courses(&[CS101]))).await;
    let instructor = Browser::new();
    let path = w.open(&instructor, |_| {}).await;
    let p = picker(&instructor, &w.gw, &path).await;
    let p1 = key(CS101, "problem", "p1");
    let (_, jwt) = submit(&instructor, &w, &path, &p.csrf, &[&p1]).await;
    let claims = verify(&w, &jwt).await;
    let url = claims[CONTENT_ITEMS][0]["url"]
        .as_str()
        .expect("a url")
        .to_owned();

    // The platform now launches the link it stored, for a learner.
    let learner = Browser::new();
    let auth = learner.login(&w.gw, &w.platform, &url).await;
    let claims = w.platform.claims(&auth, &url);
    assert_eq!(claims[ROLES], json!([LEARNER]));
    let result = learner
        .post_launch(&w.gw, &w.platform.sign(&claims), &auth.state)
        .await;
    assert_eq!(result.status, 302, "{}", result.body);
    assert_eq!(result.location.as_deref(), Some(url.as_str()));
    assert!(result.set_session());
    let display = url.strip_prefix(&w.gw.origin()).expect("on the gateway");
    assert_eq!(display, display_path(&p1));
    let (status, body) = learner.get(&w.gw, display).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(&p1), "{body}");
}

// ---------------------------------------------------------------- refusals

#[tokio::test]
async fn learners_may_not_deep_link() {
    let w = World::start(&gate(&courses(&[CS101]))).await;
    for role in [LEARNER, "Learner"] {
        let (_, result) = w
            .dl_launch(&Browser::new(), DL_LAUNCH, |c| c[ROLES] = json!([role]))
            .await;
        result.assert_rejected(403, "deep_linking_role");
        w.assert_no_picker(&result).await;
    }
}

#[tokio::test]
async fn short_instructor_role_is_accepted() {
    let w = World::start(&gate(&courses(&[CS101]))).await;
    let browser = Browser::new();
    let path = w.open(&browser, |c| c[ROLES] = json!(["Instructor"])).await;
    assert!(!picker(&browser, &w.gw, &path).await.items.is_empty());
    let (_, result) = w
        .dl_launch(&Browser::new(), DL_LAUNCH, |c| {
            c[ROLES] = json!([
                LEARNER,
                "http://purl.imsglobal.org/vocab/lis/v2/membership#ContentDeveloper"
            ]);
        })
        .await;
    picker_path_of(&w.gw, &result);
}

#[tokio::test]
async fn a_registration_without_a_gate_is_refused() {
    let w = World::start("").await;
    let (_, result) = w.dl_launch(&Browser::new(), DL_LAUNCH, |_| {}).await;
    result.assert_rejected(403, "deep_linking_no_gate");
    w.assert_no_picker(&result).await;
    assert_eq!(w.lms.requests().len(), 0, "the LMS is not asked");
}

#[tokio::test]
async fn a_registration_with_an_empty_gate_is_refused() {
    let w = World::start("[platforms.gate]\n").await;
    let (_, result) = w.dl_launch(&Browser::new(), DL_LAUNCH, |_| {}).await;
    result.assert_rejected(403, "deep_linking_no_gate");
    w.assert_no_picker(&result).await;
}

#[tokio::test]
async fn a_platform_that_cannot_take_resource_links_is_refused() {
    let w = World::start(&gate(&courses(&[CS101]))).await;
    let (_, result) = w
        .dl_launch(&Browser::new(), DL_LAUNCH, |c| {
            c[SETTINGS]["accept_types"] = json!(["link", "file", "html"]);
        })
        .await;
    result.assert_rejected(400, "deep_linking_unsupported_types");
    w.assert_no_picker(&result).await;
    let (_, result) = w
        .dl_launch(&Browser::new(), DL_LAUNCH, |c| {
            c[SETTINGS]
                .as_object_mut()
                .expect("settings")
                .remove("accept_types");
        })
        .await;
    result.assert_rejected(400, "deep_linking_unsupported_types");
    w.assert_no_picker(&result).await;
}

/// The signed deep-linking response goes only where the platform is: a
/// return URL on another origin than the registration's auth and token
/// URLs (and its `service_origins`) is refused before the picker opens.
/// (Before, any http(s) URL was accepted.)
#[tokio::test]
async fn a_return_url_on_another_origin_is_refused() {
    let w = World::start(&gate(&courses(&[CS101]))).await;
    for url in [
        "https://attacker.example/collect",
        "http://127.0.0.1:9/return",
        "http://169.254.169.254/latest/meta-data/",
    ] {
        let (_, result) = w
            .dl_launch(&Browser::new(), DL_LAUNCH, |c| {
                c[SETTINGS]["deep_link_return_url"] = json!(url);
            })
            .await;
        result.assert_rejected(400, "deep_linking_return_url_not_allowed");
        assert!(
            result.body.contains("service_origins"),
            "the page names the setting: {}",
            result.body
        );
        w.assert_no_picker(&result).await;
    }
}

#[tokio::test]
async fn a_return_url_that_is_not_http_is_refused() {
    let w = World::start(&gate(&courses(&[CS101]))).await;
    for url in [
        json!("javascript:alert(document.cookie)"),
        json!("data:text/html,<form>"),
        json!("/relative/return"),
        json!(""),
        Value::Null,
    ] {
        let (_, result) = w
            .dl_launch(&Browser::new(), DL_LAUNCH, |c| {
                c[SETTINGS]["deep_link_return_url"] = url.clone();
            })
            .await;
        result.assert_rejected(400, "missing_claim");
        w.assert_no_picker(&result).await;
    }
}

#[tokio::test]
async fn a_gate_that_matches_nothing_explains_the_empty_picker() {
    let w = World::start(&gate(&format!(
        "{}\nblock_filter = [\"survey\"]",
        courses(&[CS101])
    )))
    .await;
    let browser = Browser::new();
    let path = w.open(&browser, |_| {}).await;
    let page = get(&browser, &w.gw, &path).await;
    page.assert_ok();
    assert!(parse_picker(&page.body).items.is_empty());
    assert!(
        page.body.contains("[platforms.gate]"),
        "the page says why the list is empty: {}",
        page.body
    );
    assert!(
        !page.body.contains("<button type=\"submit\">Add"),
        "nothing to submit"
    );
}

#[tokio::test]
async fn a_gateway_without_deep_linking_refuses_the_request() {
    let w = World::start_with(&gate(&courses(&[CS101])), |_| String::new()).await;
    for endpoint in [DL_LAUNCH, "/lti/1p3/launch/"] {
        let (_, result) = w.dl_launch(&Browser::new(), endpoint, |_| {}).await;
        result.assert_rejected(400, "deep_linking_not_configured");
        w.assert_no_picker(&result).await;
    }
}

// ---------------------------------------------------------------- the token

#[tokio::test]
async fn an_expired_picker_is_refused() {
    let w = World::start(&gate(&courses(&[CS101]))).await;
    let browser = Browser::new();
    let path = w.open(&browser, |_| {}).await;
    let p = picker(&browser, &w.gw, &path).await;
    w.gw.clock.advance(1700);
    picker(&browser, &w.gw, &path).await;
    w.gw.clock.advance(101);
    get(&browser, &w.gw, &path)
        .await
        .assert_refused(410, "picker_token_unknown");
    let p1 = key(CS101, "problem", "p1");
    post(&browser, &w.gw, &path, &[("csrf", &p.csrf), ("item", &p1)])
        .await
        .assert_refused(410, "picker_token_unknown");
    assert_eq!(w.tokens().await, 0);
}

#[tokio::test]
async fn the_picker_belongs_to_the_launching_browser() {
    let w = World::start(&gate(&courses(&[CS101]))).await;
    let owner = Browser::new();
    let path = w.open(&owner, |_| {}).await;
    let p = picker(&owner, &w.gw, &path).await;
    let p1 = key(CS101, "problem", "p1");

    let stranger = Browser::new();
    get(&stranger, &w.gw, &path)
        .await
        .assert_refused(403, "picker_wrong_browser");
    post(&stranger, &w.gw, &path, &[("csrf", &p.csrf), ("item", &p1)])
        .await
        .assert_refused(403, "picker_wrong_browser");
    // The browser is checked before the body is read: a stranger's body that
    // is not even a form gets the same answer.
    let not_a_form = stranger
        .http
        .post(w.gw.url(&path))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .expect("POST");
    read(not_a_form)
        .await
        .assert_refused(403, "picker_wrong_browser");

    // A browser with a picker of its own cannot use this one either.
    let other = Browser::new();
    let own = w.open(&other, |_| {}).await;
    assert_ne!(own, path);
    get(&other, &w.gw, &path)
        .await
        .assert_refused(403, "picker_wrong_browser");
    post(&other, &w.gw, &path, &[("csrf", &p.csrf), ("item", &p1)])
        .await
        .assert_refused(403, "picker_wrong_browser");

    assert_eq!(w.tokens().await, 2, "nothing was consumed");
    let (_, jwt) = submit(&owner, &w, &path, &p.csrf, &[&p1]).await;
    verify(&w, &jwt).await;
}

#[tokio::test]
async fn a_picker_is_submitted_once() {
    let w = World::start(&gate(&courses(&[CS101]))).await;
    let browser = Browser::new();
    let path = w.open(&browser, |_| {}).await;
    let p = picker(&browser, &w.gw, &path).await;
    let p1 = key(CS101, "problem", "p1");
    submit(&browser, &w, &path, &p.csrf, &[&p1]).await;
    post(&browser, &w.gw, &path, &[("csrf", &p.csrf), ("item", &p1)])
        .await
        .assert_refused(410, "picker_token_unknown");
    get(&browser, &w.gw, &path)
        .await
        .assert_refused(410, "picker_token_unknown");
    assert_eq!(w.tokens().await, 0);
}

#[tokio::test]
async fn of_two_concurrent_submissions_one_wins() {
    let w = World::start(&gate(&courses(&[CS101]))).await;
    let browser = Browser::new();
    let path = w.open(&browser, |_| {}).await;
    let p = picker(&browser, &w.gw, &path).await;
    let p1 = key(CS101, "problem", "p1");
    let form = [("csrf", p.csrf.as_str()), ("item", p1.as_str())];
    let (a, b) = tokio::join!(
        post(&browser, &w.gw, &path, &form),
        post(&browser, &w.gw, &path, &form)
    );
    let mut statuses = [a.status, b.status];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 410], "{}\n{}", a.body, b.body);
    let jwts = [&a, &b]
        .iter()
        .filter(|r| r.body.contains("name=\"JWT\""))
        .count();
    assert_eq!(jwts, 1, "one response JWT");
}

#[tokio::test]
async fn a_wrong_csrf_token_is_refused() {
    let w = World::start(&gate(&courses(&[CS101]))).await;
    let browser = Browser::new();
    let path = w.open(&browser, |_| {}).await;
    let p = picker(&browser, &w.gw, &path).await;
    let p1 = key(CS101, "problem", "p1");
    let other_path = w.open(&browser, |_| {}).await;
    let other = picker(&browser, &w.gw, &other_path).await;
    assert_ne!(other.csrf, p.csrf);
    let forged = format!("{}x", p.csrf);
    for form in [
        vec![("csrf", forged.as_str()), ("item", p1.as_str())],
        vec![("csrf", ""), ("item", p1.as_str())],
        vec![("item", p1.as_str())],
        vec![("csrf", other.csrf.as_str()), ("item", p1.as_str())],
    ] {
        post(&browser, &w.gw, &path, &form)
            .await
            .assert_refused(403, "picker_bad_csrf");
    }
    assert_eq!(w.tokens().await, 2, "nothing was consumed");
    let (_, jwt) = submit(&browser, &w, &path, &p.csrf, &[&p1]).await;
    verify(&w, &jwt).await;
}

// ---------------------------------------------------------------- tampering

#[tokio::test]
async fn a_selection_outside_the_gate_is_refused_and_keeps_the_token() {
    let w = World::start(&gate(&format!(
        "{}\nblock_filter = [\"problem\", \"html\"]",
        courses(&[CS101])
    )))
    .await;
    let browser = Browser::new();
    let (auth, result) = w.dl_launch(&browser, DL_LAUNCH, |_| {}).await;
    let path = picker_path_of(&w.gw, &result);
    let p = picker(&browser, &w.gw, &path).await;
    let p1 = key(CS101, "problem", "p1");
    let secret = key(SECRET_COURSE, "problem", "p1");
    let other_course = key(CS102, "problem", "p3");
    let filtered = key(CS101, "video", "vid1");
    assert!(p.values().contains(&p1.as_str()));
    for outside in [&secret, &other_course, &filtered] {
        assert!(
            !p.values().contains(&outside.as_str()),
            "{outside} is not listed"
        );
    }
    for items in [
        vec![secret.as_str()],
        vec![other_course.as_str()],
        vec![filtered.as_str()],
        vec![p1.as_str(), secret.as_str()],
        vec!["not-a-usage-key"],
        vec![COURSE],
    ] {
        let mut form = vec![("csrf", p.csrf.as_str())];
        form.extend(items.iter().map(|i| ("item", *i)));
        post(&browser, &w.gw, &path, &form)
            .await
            .assert_refused(403, "picker_not_allowed");
        assert_eq!(w.tokens().await, 1, "a refused selection keeps the token");
    }
    let (_, jwt) = submit(&browser, &w, &path, &p.csrf, &[&p1]).await;
    let claims = verify(&w, &jwt).await;
    check_claims(
        &w,
        &auth,
        &claims,
        &json!([w.item(CS101, &p1, "Problem 1")]),
        Some(OPAQUE),
    );
}

#[tokio::test]
async fn one_item_only_when_the_platform_takes_one() {
    let w = World::start(&gate(&courses(&[CS101]))).await;
    let browser = Browser::new();
    let (auth, result) = w
        .dl_launch(&browser, DL_LAUNCH, |c| {
            c[SETTINGS]["accept_multiple"] = json!(false);
        })
        .await;
    let path = picker_path_of(&w.gw, &result);
    let p = picker(&browser, &w.gw, &path).await;
    let p1 = key(CS101, "problem", "p1");
    let p2 = key(CS101, "problem", "p2");
    post(
        &browser,
        &w.gw,
        &path,
        &[("csrf", &p.csrf), ("item", &p1), ("item", &p2)],
    )
    .await
    .assert_refused(400, "picker_too_many");
    post(&browser, &w.gw, &path, &[("csrf", &p.csrf)])
        .await
        .assert_refused(400, "picker_nothing_selected");
    assert_eq!(w.tokens().await, 1);
    // The same item twice is one item.
    let (_, jwt) = submit(&browser, &w, &path, &p.csrf, &[&p2, &p2]).await;
    let claims = verify(&w, &jwt).await;
    check_claims(
        &w,
        &auth,
        &claims,
        &json!([w.item(CS101, &p2, "Problem 2")]),
        Some(OPAQUE),
    );
}

// ---------------------------------------------------------------- the gate decides

#[tokio::test]
async fn a_block_filter_limits_the_listing() {
    let w = World::start(&gate(&format!(
        "{}\nblock_filter = [\"problem\"]",
        courses(&[CS101, CS102])
    )))
    .await;
    let browser = Browser::new();
    let path = w.open(&browser, |_| {}).await;
    let p = picker(&browser, &w.gw, &path).await;
    let mut expected = listing_of(CS101, |k| k == "problem");
    expected.extend(listing_of(CS102, |k| k == "problem"));
    assert_eq!(p.items, expected);
    assert_eq!(
        p.values(),
        [
            key(CS101, "problem", "p1"),
            key(CS101, "problem", "p2"),
            key(CS102, "problem", "p3")
        ]
    );
}

#[tokio::test]
async fn a_course_block_filter_applies_to_its_course() {
    let w = World::start(&gate(&format!(
        "{}\nblock_filter = [\"problem\"]\ncourse_block_filter = {{ \"{CS102}\" = [\"html\"] }}",
        courses(&[CS101, CS102])
    )))
    .await;
    let browser = Browser::new();
    let path = w.open(&browser, |_| {}).await;
    let p = picker(&browser, &w.gw, &path).await;
    let mut expected = listing_of(CS101, |k| k == "problem");
    expected.extend(listing_of(CS102, |k| k == "html"));
    assert_eq!(p.items, expected);
    assert_eq!(p.legends, ["Intro to Computing", "Data Structures"]);
}

#[tokio::test]
async fn allowed_keys_are_listed_without_their_course() {
    let h3 = key(CS102, "html", "h3");
    let w = World::start(&gate(&format!("allowed_keys = [\"{h3}\"]"))).await;
    let browser = Browser::new();
    let (auth, result) = w.dl_launch(&browser, DL_LAUNCH, |_| {}).await;
    let path = picker_path_of(&w.gw, &result);
    let p = picker(&browser, &w.gw, &path).await;
    assert_eq!(
        p.items,
        [Listed {
            course: "Data Structures".into(),
            control: "checkbox".into(),
            value: h3.clone(),
            title: "Tree notes".into(),
            block_type: "html".into(),
        }]
    );
    let asked: Vec<String> = w
        .lms
        .requests_to("/api/courses/v1/blocks/")
        .iter()
        .map(|r| r.query["course_id"].clone())
        .collect();
    assert_eq!(asked, [CS102], "only the key's course is read");
    // Its siblings are not allowed.
    let p3 = key(CS102, "problem", "p3");
    post(&browser, &w.gw, &path, &[("csrf", &p.csrf), ("item", &p3)])
        .await
        .assert_refused(403, "picker_not_allowed");
    let (_, jwt) = submit(&browser, &w, &path, &p.csrf, &[&h3]).await;
    let claims = verify(&w, &jwt).await;
    check_claims(
        &w,
        &auth,
        &claims,
        &json!([w.item(CS102, &h3, "Tree notes")]),
        Some(OPAQUE),
    );
}

#[tokio::test]
async fn allowed_orgs_list_every_course_of_the_org_across_pages() {
    let w = World::start(&gate(&format!("allowed_orgs = [\"{ORG_PAGED}\"]"))).await;
    let browser = Browser::new();
    let path = w.open(&browser, |_| {}).await;
    let p = picker(&browser, &w.gw, &path).await;
    let expected: Vec<Listed> = PAGED_COURSES
        .iter()
        .flat_map(|c| listing_of(c, |_| true))
        .collect();
    assert_eq!(p.items, expected);
    assert_eq!(
        p.legends,
        ["Y course One", "Y course Two", "Y course Three"]
    );

    let lists = w.lms.requests_to("/api/courses/v1/courses/");
    assert_eq!(lists.len(), 2, "two pages: {lists:?}");
    for r in &lists {
        assert_eq!(r.status, 200);
        assert_eq!(r.query["org"], ORG_PAGED);
        assert!(
            r.authorization
                .as_deref()
                .is_some_and(|a| a.starts_with("JWT ")),
            "the API is called with the JWT access token"
        );
    }
    assert_eq!(lists[1].query.get("page").map(String::as_str), Some("2"));
    let blocks = w.lms.requests_to("/api/courses/v1/blocks/");
    assert_eq!(blocks.len(), PAGED_COURSES.len());
    let token = &w.lms.requests_to("/oauth2/access_token");
    assert_eq!(token.len(), 1, "one access token for every call");

    let y3 = key(PAGED_COURSES[2], "problem", "p1");
    let (_, jwt) = submit(&browser, &w, &path, &p.csrf, &[&y3]).await;
    let claims = verify(&w, &jwt).await;
    assert_eq!(
        claims[CONTENT_ITEMS],
        json!([w.item(PAGED_COURSES[2], &y3, "Y3 problem")])
    );
}

#[tokio::test]
async fn the_lms_access_token_is_not_sent_to_another_origin() {
    // The LMS's paging link points at another server: the gateway must not
    // hand that server its LMS access token (Open edX builds `next` from the
    // request's own host, so a foreign origin is a misconfiguration or worse).
    let w = World::start(&gate(&format!("allowed_orgs = [\"{ORG_PAGED}\"]"))).await;
    let elsewhere = TestLmsApi::start().await;
    w.lms.set_next_origin(&elsewhere.url());
    let browser = Browser::new();
    let path = w.open(&browser, |_| {}).await;
    let page = get(&browser, &w.gw, &path).await;
    let leaked: Vec<_> = elsewhere
        .requests()
        .into_iter()
        .filter(|r| r.authorization.is_some())
        .collect();
    assert!(
        leaked.is_empty(),
        "the LMS access token went to {}: {leaked:?}",
        elsewhere.url()
    );
    if page.status == 200 {
        assert_eq!(
            parse_picker(&page.body).legends,
            ["Y course One", "Y course Two", "Y course Three"],
            "a list that is shown is complete"
        );
    } else {
        page.assert_refused(502, "lms_api_failed");
    }
}

#[tokio::test]
async fn search_filters_the_listing_on_the_server() {
    let w = World::start(&gate(&courses(&[CS101, CS102]))).await;
    let browser = Browser::new();
    let path = w.open(&browser, |_| {}).await;
    let p = picker(&browser, &w.gw, &format!("{path}?q=TREE")).await;
    assert_eq!(p.legends, ["Data Structures"]);
    assert_eq!(
        p.items.iter().map(|i| i.title.as_str()).collect::<Vec<_>>(),
        [
            "Trees",
            "Binary trees",
            "Unit: trees",
            "Tree quiz",
            "Tree notes"
        ]
    );
    let none = get(&browser, &w.gw, &format!("{path}?q=nothing-like-this")).await;
    none.assert_ok();
    assert!(parse_picker(&none.body).items.is_empty());
    assert!(none.body.contains("Nothing matches"));
}

// ---------------------------------------------------------------- the LMS API

#[tokio::test]
async fn a_failing_lms_api_gives_an_error_page_not_an_empty_list() {
    let w = World::start(&gate(&courses(&[CS101]))).await;
    let browser = Browser::new();
    let path = w.open(&browser, |_| {}).await;
    w.lms.set_failing(true);
    let page = get(&browser, &w.gw, &path).await;
    page.assert_refused(502, "lms_api_failed");
    assert!(page.body.contains("could not be loaded"), "{}", page.body);
    assert!(!page.body.contains("name=\"item\""));
    assert!(!page.body.contains("allows no published content"));

    // A submission cannot be answered without titles either; the token stays.
    let p1 = key(CS101, "problem", "p1");
    w.lms.set_failing(false);
    let p = picker(&browser, &w.gw, &path).await;
    assert_eq!(w.tokens().await, 1);
    let (_, jwt) = submit(&browser, &w, &path, &p.csrf, &[&p1]).await;
    verify(&w, &jwt).await;
}

#[tokio::test]
async fn a_wrong_lms_client_secret_gives_an_error_page() {
    let w = World::start_with(&gate(&courses(&[CS101])), |lms| {
        lms.config_with_secret("not-the-secret")
    })
    .await;
    let browser = Browser::new();
    let path = w.open(&browser, |_| {}).await;
    let page = get(&browser, &w.gw, &path).await;
    page.assert_refused(502, "lms_api_failed");
    assert!(!page.body.contains("name=\"item\""));
    assert!(
        !page.body.contains("not-the-secret"),
        "no secret on the page"
    );
    let tokens = w.lms.requests_to("/oauth2/access_token");
    assert_eq!(tokens.len(), 1);
    assert_eq!(tokens[0].status, 401);
    assert_eq!(w.lms.blocks_calls(), 0);
    assert_eq!(w.tokens().await, 1, "a failed load keeps the token");
}

#[tokio::test]
async fn lms_answers_are_cached() {
    let w = World::start(&gate("allowed_orgs = [\"OrgX\"]")).await;
    let browser = Browser::new();
    let path = w.open(&browser, |_| {}).await;
    let p = picker(&browser, &w.gw, &path).await;
    assert_eq!(p.legends, ["Intro to Computing", "Data Structures"]);
    let counts = |lms: &TestLmsApi| (lms.token_calls(), lms.course_calls(), lms.blocks_calls());
    assert_eq!(counts(&w.lms), (1, 1, 2));

    // Reloading, another instructor's picker, and the submission read the cache.
    picker(&browser, &w.gw, &path).await;
    let other = Browser::new();
    let other_path = w.open(&other, |_| {}).await;
    picker(&other, &w.gw, &other_path).await;
    let p1 = key(CS101, "problem", "p1");
    submit(&browser, &w, &path, &p.csrf, &[&p1]).await;
    assert_eq!(counts(&w.lms), (1, 1, 2), "served from the cache");
}
