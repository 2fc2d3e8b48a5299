//! The 1EdTech LTI 1.3 certification cases, run against a real gateway.
//!
//! Three sources of cases:
//! - the packback certification payloads in `/work/shared/peer-vectors/` (see
//!   its README), each re-stamped and signed after a real login round trip;
//! - the valid launches of DOMAIN.md §1, for an instructor and a student,
//!   built from the test platform's claims;
//! - the known bad payloads of DOMAIN.md §1, built the same way.
//!
//! Each group runs every case, collects the failures and fails with all of
//! them, each named by its case.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use ltigate::Clock as _;
use serde_json::{Map, Value, json};
use support::*;

const VECTORS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/peer-vectors/packback-certification"
);

const CERT_ISSUER: &str = "https://ltiadvantagevalidator.imsglobal.org";
const CERT_CLIENT_ID: &str = "imstester_3dfad6d";
const CERT_DEPLOYMENT: &str = "testdeploy";

const INSTRUCTOR: &str = "http://purl.imsglobal.org/vocab/lis/v2/membership#Instructor";
const STUDENT: &str = "http://purl.imsglobal.org/vocab/lis/v2/membership#Learner";

const VERSION: &str = "https://purl.imsglobal.org/spec/lti/claim/version";
const MESSAGE_TYPE: &str = "https://purl.imsglobal.org/spec/lti/claim/message_type";
const DEPLOYMENT_ID: &str = "https://purl.imsglobal.org/spec/lti/claim/deployment_id";
const ROLES: &str = "https://purl.imsglobal.org/spec/lti/claim/roles";
const RESOURCE_LINK: &str = "https://purl.imsglobal.org/spec/lti/claim/resource_link";
const TARGET_LINK_URI: &str = "https://purl.imsglobal.org/spec/lti/claim/target_link_uri";
const CONTEXT: &str = "https://purl.imsglobal.org/spec/lti/claim/context";

/// The lifetime given to re-stamped tokens.
const TOKEN_LIFETIME: u64 = 300;

// ---------------------------------------------------------------------------
// Environment and checks
// ---------------------------------------------------------------------------

/// A platform and a gateway registered for it.
struct Env {
    platform: TestPlatform,
    gw: Gateway,
}

impl Env {
    async fn start(issuer: &str, client_id: &str, deployment: &str) -> Self {
        let platform = TestPlatform::start_with(issuer, client_id, deployment).await;
        let gw = Gateway::start(&platform).await;
        Self { platform, gw }
    }

    async fn certification() -> Self {
        Self::start(CERT_ISSUER, CERT_CLIENT_ID, CERT_DEPLOYMENT).await
    }

    fn now(&self) -> u64 {
        self.gw.clock.now()
    }

    fn target(&self) -> String {
        self.gw.target(USAGE)
    }
}

type Check = Result<(), String>;

fn ensure(ok: bool, case: &str, what: impl FnOnce() -> String) -> Check {
    if ok {
        Ok(())
    } else {
        Err(format!("[{case}] {}", what()))
    }
}

/// Fails the test with every failed case, or if no case ran at all.
#[track_caller]
fn report(group: &str, ran: usize, failures: &[String]) {
    assert!(ran > 0, "{group}: no case ran");
    assert!(
        failures.is_empty(),
        "{group}: {} of {ran} case(s) failed:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

/// A launch the gateway must accept: 302 to the target, a session cookie,
/// one more session, and the display path reachable afterwards.
async fn expect_accepted(
    case: &str,
    env: &Env,
    browser: &Browser,
    result: &LaunchResult,
    sessions_before: usize,
) -> Check {
    let target = env.target();
    ensure(result.status == 302, case, || {
        format!(
            "expected 302 to the target, got {}: {}",
            result.status, result.body
        )
    })?;
    ensure(
        result.location.as_deref() == Some(target.as_str()),
        case,
        || {
            format!(
                "expected Location {target}, got {:?}",
                result.location.as_deref()
            )
        },
    )?;
    ensure(result.set_session(), case, || {
        format!(
            "an accepted launch set no session cookie: {:?}",
            result.set_cookies
        )
    })?;
    let sessions = env.gw.session_count().await;
    ensure(sessions == sessions_before + 1, case, || {
        format!("expected one new session, the store went from {sessions_before} to {sessions}")
    })?;
    let (status, body) = browser.get(&env.gw, &display_path(USAGE)).await;
    ensure(status == 200, case, || {
        format!("the display path after the launch gave {status}: {body}")
    })?;
    ensure(body.contains(USAGE), case, || {
        format!("the display page does not name the launched content: {body}")
    })
}

/// A launch the gateway must refuse with `reason` (and, for reasons shared by
/// several checks, a page naming `detail`), leaving no session behind.
async fn expect_rejected(
    case: &str,
    env: &Env,
    browser: &Browser,
    result: &LaunchResult,
    sessions_before: usize,
    reason: &str,
    detail: Option<&str>,
) -> Check {
    ensure(result.status.is_client_error(), case, || {
        format!(
            "expected a 4xx with reason {reason}, got {}: {}",
            result.status, result.body
        )
    })?;
    ensure(
        result.body.contains(&format!("<code>{reason}</code>")),
        case,
        || format!("expected reason {reason}, got page: {}", result.body),
    )?;
    if let Some(detail) = detail {
        ensure(result.body.contains(detail), case, || {
            format!("expected the page to name {detail:?}, got: {}", result.body)
        })?;
    }
    ensure(!result.set_session(), case, || {
        format!(
            "a rejected launch set a session cookie: {:?}",
            result.set_cookies
        )
    })?;
    let sessions = env.gw.session_count().await;
    ensure(sessions == sessions_before, case, || {
        format!("a rejected launch changed the session count from {sessions_before} to {sessions}")
    })?;
    let (status, body) = browser.get(&env.gw, &display_path(USAGE)).await;
    ensure(status == 401, case, || {
        format!("after a rejected launch the display path gave {status}, expected 401: {body}")
    })
}

// ---------------------------------------------------------------------------
// Peer vectors
// ---------------------------------------------------------------------------

/// One certification payload, as found on disk.
struct Vector {
    name: String,
    payload: Map<String, Value>,
    header: Option<Value>,
    keep: BTreeSet<String>,
}

impl Vector {
    fn message_type(&self) -> Option<&str> {
        self.payload.get(MESSAGE_TYPE).and_then(Value::as_str)
    }

    fn deployment_id(&self) -> Option<&str> {
        self.payload.get(DEPLOYMENT_ID).and_then(Value::as_str)
    }
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not valid JSON: {e}", path.display()))
}

/// Every case under `group` (for example `certification/valid`), sorted by
/// name. Panics, never skips, when the vectors are missing or empty.
fn vectors(group: &str) -> Vec<Vector> {
    let root = Path::new(VECTORS);
    assert!(
        root.is_dir(),
        "the peer certification vectors are missing: {} does not exist. The certification \
         suite cannot run without them (see /work/shared/peer-vectors/README.md).",
        root.display()
    );
    let dir = root.join(group);
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| {
        panic!(
            "the peer vector group {group} is missing: cannot read {}: {e}",
            dir.display()
        )
    });
    let mut dirs: Vec<PathBuf> = entries
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    let cases: Vec<Vector> = dirs
        .into_iter()
        .map(|case_dir| {
            let name = case_dir
                .file_name()
                .expect("case name")
                .to_string_lossy()
                .into_owned();
            let payload = match read_json(&case_dir.join("payload.json")) {
                Value::Object(map) => map,
                other => panic!("[{group}/{name}] payload.json is not an object: {other}"),
            };
            let header_path = case_dir.join("header.json");
            let header = header_path.exists().then(|| read_json(&header_path));
            let keep_path = case_dir.join("keep.json");
            let keep = if keep_path.exists() {
                serde_json::from_value(read_json(&keep_path)).unwrap_or_else(|e| {
                    panic!("[{group}/{name}] keep.json is not a list of claim names: {e}")
                })
            } else {
                BTreeSet::new()
            };
            Vector {
                name,
                payload,
                header,
                keep,
            }
        })
        .collect();
    assert!(
        !cases.is_empty(),
        "no peer vectors found in {}: the certification suite needs them",
        dir.display()
    );
    cases
}

/// The vector's claims, re-stamped for this launch: `iat`/`exp` set to now
/// (unless kept), the issued nonce, and the gateway's target.
fn restamp(vector: &Vector, nonce: &str, target: &str, now: u64) -> Value {
    let mut claims = vector.payload.clone();
    if !vector.keep.contains("iat") {
        claims.insert("iat".into(), json!(now));
    }
    if !vector.keep.contains("exp") {
        claims.insert("exp".into(), json!(now + TOKEN_LIFETIME));
    }
    claims.insert("nonce".into(), json!(nonce));
    claims.insert(TARGET_LINK_URI.into(), json!(target));
    Value::Object(claims)
}

/// Signs a vector's claims: under its `header.json` verbatim when it has one,
/// otherwise as the platform normally signs (with its published kid).
fn sign_vector(platform: &TestPlatform, vector: &Vector, claims: &Value) -> String {
    match &vector.header {
        Some(header) => platform.active_key().sign_raw(header, claims),
        None => platform.sign(claims),
    }
}

/// A real login for a fresh browser, then the launch of the vector's token
/// (passed through `mangle` first, to cut it for example).
async fn launch_vector(
    env: &Env,
    browser: &Browser,
    vector: &Vector,
    mangle: fn(String) -> String,
) -> LaunchResult {
    let target = env.target();
    let auth = browser.login(&env.gw, &env.platform, &target).await;
    let claims = restamp(vector, &auth.nonce, &target, env.now());
    let token = mangle(sign_vector(&env.platform, vector, &claims));
    browser.post_launch(&env.gw, &token, &auth.state).await
}

fn as_signed(token: String) -> String {
    token
}

/// The two-segment form: the signature cut off, as that library sends it.
fn without_signature(token: String) -> String {
    let (unsigned, _signature) = token.rsplit_once('.').expect("a three-segment token");
    unsigned.to_owned()
}

/// What a certification case must lead to.
#[derive(Clone, Copy, Debug)]
enum Expect {
    Accept,
    Reject {
        reason: &'static str,
        detail: Option<&'static str>,
    },
}

const fn reject(reason: &'static str) -> Expect {
    Expect::Reject {
        reason,
        detail: None,
    }
}

const fn reject_missing(claim: &'static str) -> Expect {
    Expect::Reject {
        reason: "missing_claim",
        detail: Some(claim),
    }
}

/// The expected outcome of each `certification/invalid` case, following the
/// order of the checks in `src/lti/launch.rs`.
fn invalid_expectations() -> BTreeMap<&'static str, Expect> {
    BTreeMap::from([
        // Header `{"badtestonly": ..., "alg": "RS256"}`: no kid.
        ("Correct KID Required in Header", reject("missing_kid")),
        // exp 22222 and iat 11111, kept: exp is checked first.
        ("Exp and Iat Fields invalid", reject("expired")),
        // kid imstester_66067 is not in the platform's JWKS.
        ("Incorrect KID passed in JWT Header", reject("unknown_kid")),
        // Header `{}`: no alg at all is not a JWS header, refused before the
        // kid is looked at. (The two-segment form is tested separately.)
        ("JWT Passed is Not LTI 1.3 JWT", reject("malformed_token")),
        ("LTI version passed is not 1.3", reject("wrong_version")),
        // Misfiled by the peer library: a valid launch in the 1EdTech guide.
        ("Launch Instructor With Email No Context", Expect::Accept),
        (
            "Launch With Missing resource_link_id",
            reject_missing("the resource_link.id claim"),
        ),
        ("No LTI Version Passed in JWT", reject("missing_version")),
        // No version, no message_type, no roles: the version is checked first.
        ("One or more JWT fields missing", reject("missing_version")),
        (
            "deployment_id Claim Missing",
            reject_missing("the deployment_id claim"),
        ),
        ("message_type Claim Missing", reject("missing_message_type")),
        ("role Claim Missing", reject_missing("the roles claim")),
        // `sub: ""`.
        ("user Claim Missing", reject_missing("the sub claim")),
    ])
}

async fn check_outcome(
    case: &str,
    env: &Env,
    browser: &Browser,
    result: &LaunchResult,
    sessions_before: usize,
    expect: Expect,
) -> Check {
    match expect {
        Expect::Accept => expect_accepted(case, env, browser, result, sessions_before).await,
        Expect::Reject { reason, detail } => {
            expect_rejected(case, env, browser, result, sessions_before, reason, detail).await
        }
    }
}

#[tokio::test]
async fn peer_valid_certification_vectors_are_accepted() {
    let env = Env::certification().await;
    let cases = vectors("certification/valid");
    let mut failures = Vec::new();
    for vector in &cases {
        let case = format!("certification/valid/{}", vector.name);
        let expect = match vector.message_type() {
            Some("LtiResourceLinkRequest") => Expect::Accept,
            // Deep linking is a later issue; until then, the clear refusal.
            Some("LtiDeepLinkingRequest") => reject("deep_linking_not_configured"),
            other => {
                failures.push(format!(
                    "[{case}] unexpected message_type {other:?} in a valid certification vector"
                ));
                continue;
            }
        };
        let browser = Browser::new();
        let before = env.gw.session_count().await;
        let result = launch_vector(&env, &browser, vector, as_signed).await;
        if let Err(e) = check_outcome(&case, &env, &browser, &result, before, expect).await {
            failures.push(e);
        }
    }
    report("certification/valid", cases.len(), &failures);
}

#[tokio::test]
async fn peer_invalid_certification_vectors_are_rejected() {
    let env = Env::certification().await;
    let cases = vectors("certification/invalid");
    let expectations = invalid_expectations();
    let mut failures = Vec::new();
    let mut ran = 0;

    let found: BTreeSet<&str> = cases.iter().map(|v| v.name.as_str()).collect();
    for name in expectations.keys() {
        if !found.contains(name) {
            failures.push(format!(
                "[certification/invalid/{name}] this certification case is missing from the peer vectors"
            ));
        }
    }

    for vector in &cases {
        let case = format!("certification/invalid/{}", vector.name);
        let Some(&expect) = expectations.get(vector.name.as_str()) else {
            failures.push(format!(
                "[{case}] no expected outcome is known for this case: add it to invalid_expectations()"
            ));
            continue;
        };
        let browser = Browser::new();
        let before = env.gw.session_count().await;
        let result = launch_vector(&env, &browser, vector, as_signed).await;
        ran += 1;
        if let Err(e) = check_outcome(&case, &env, &browser, &result, before, expect).await {
            failures.push(e);
        }

        if vector.name == "JWT Passed is Not LTI 1.3 JWT" {
            // The peer library also sends it with the signature cut off.
            let case = format!("{case} (two segments, no signature)");
            let browser = Browser::new();
            let before = env.gw.session_count().await;
            let result = launch_vector(&env, &browser, vector, without_signature).await;
            ran += 1;
            let expect = reject("malformed_token");
            if let Err(e) = check_outcome(&case, &env, &browser, &result, before, expect).await {
                failures.push(e);
            }
        }
    }
    report("certification/invalid", ran, &failures);
}

#[tokio::test]
async fn peer_other_message_types_are_unsupported() {
    let cases = vectors("messages/valid");
    // These vectors carry their own deployment id; register it, so that the
    // launch reaches the message type check instead of stopping at the
    // (correct) unknown_deployment refusal.
    let mut by_deployment: BTreeMap<String, Vec<&Vector>> = BTreeMap::new();
    let mut failures = Vec::new();
    for vector in &cases {
        match vector.deployment_id() {
            Some(d) if !d.is_empty() => by_deployment.entry(d.to_owned()).or_default().push(vector),
            _ => failures.push(format!(
                "[messages/valid/{}] the vector has no deployment_id",
                vector.name
            )),
        }
    }
    let mut ran = 0;
    for (deployment, vectors) in &by_deployment {
        let env = Env::start(CERT_ISSUER, CERT_CLIENT_ID, deployment).await;
        for vector in vectors {
            let case = format!(
                "messages/valid/{} ({:?})",
                vector.name,
                vector.message_type().unwrap_or("no message_type")
            );
            let browser = Browser::new();
            let before = env.gw.session_count().await;
            let result = launch_vector(&env, &browser, vector, as_signed).await;
            ran += 1;
            let expect = reject("unsupported_message_type");
            if let Err(e) = check_outcome(&case, &env, &browser, &result, before, expect).await {
                failures.push(e);
            }
        }
    }
    report("messages/valid", ran, &failures);
}

// ---------------------------------------------------------------------------
// DOMAIN.md §1: the valid launches a certified tool accepts
// ---------------------------------------------------------------------------

/// Who launches: an instructor or a student.
struct Persona {
    label: &'static str,
    sub: &'static str,
    role: &'static str,
    short_role: &'static str,
    more_roles: [&'static str; 2],
}

const PERSONAS: [Persona; 2] = [
    Persona {
        label: "Instructor",
        sub: "instructor-1",
        role: INSTRUCTOR,
        short_role: "Instructor",
        more_roles: [
            "http://purl.imsglobal.org/vocab/lis/v2/institution/person#Staff",
            "http://purl.imsglobal.org/vocab/lis/v2/institution/person#Other",
        ],
    },
    Persona {
        label: "Student",
        sub: "student-1",
        role: STUDENT,
        short_role: "Learner",
        more_roles: [
            "http://purl.imsglobal.org/vocab/lis/v2/institution/person#Student",
            "http://purl.imsglobal.org/vocab/lis/v2/institution/person#Mentor",
        ],
    },
];

type Variant = fn(&mut Map<String, Value>, &Persona);

fn remove_names(claims: &mut Map<String, Value>) {
    for name in ["name", "given_name", "family_name", "middle_name"] {
        claims.remove(name);
    }
}

const VALID_VARIANTS: [(&str, Variant); 9] = [
    ("the plain message", |_, _| {}),
    ("multiple role values", |c, p| {
        c.insert(
            ROLES.into(),
            json!([p.role, p.more_roles[0], p.more_roles[1]]),
        );
    }),
    ("a short role value", |c, p| {
        c.insert(ROLES.into(), json!([p.short_role]));
    }),
    ("an unknown role", |c, _| {
        c.insert(
            ROLES.into(),
            json!(["http://purl.imsglobal.org/vocab/lis/v2/unknown/unknown#Helper"]),
        );
    }),
    ("no role (empty roles array)", |c, _| {
        c.insert(ROLES.into(), json!([]));
    }),
    ("email only", |c, _| remove_names(c)),
    ("names only", |c, _| {
        c.remove("email");
    }),
    ("no PII", |c, _| {
        remove_names(c);
        c.remove("email");
    }),
    ("email with no context", |c, _| {
        c.remove(CONTEXT);
    }),
];

#[tokio::test]
async fn domain_valid_launches_succeed_for_instructor_and_student() {
    let env = Env::certification().await;
    let mut failures = Vec::new();
    let mut ran = 0;
    for persona in &PERSONAS {
        for (variant, modify) in VALID_VARIANTS {
            let case = format!("{} launch: {variant}", persona.label);
            let browser = Browser::new();
            let target = env.target();
            let auth = browser.login(&env.gw, &env.platform, &target).await;
            let Value::Object(mut claims) = env.platform.claims(&auth, &target) else {
                panic!("the test platform's claims are not an object");
            };
            claims.insert("sub".into(), json!(persona.sub));
            claims.insert(ROLES.into(), json!([persona.role]));
            modify(&mut claims, persona);
            let token = env.platform.sign(&Value::Object(claims));
            let before = env.gw.session_count().await;
            let result = browser.post_launch(&env.gw, &token, &auth.state).await;
            ran += 1;
            if let Err(e) = expect_accepted(&case, &env, &browser, &result, before).await {
                failures.push(e);
            }
        }
    }
    report("DOMAIN.md §1 valid launches", ran, &failures);
}

// ---------------------------------------------------------------------------
// DOMAIN.md §1: the known bad payloads a certified tool rejects
// ---------------------------------------------------------------------------

/// Turns a valid claim set into the token to post.
type Forge = fn(&TestPlatform, Map<String, Value>, u64) -> String;

fn signed(platform: &TestPlatform, claims: Map<String, Value>) -> String {
    platform.sign(&Value::Object(claims))
}

fn without(claim: &'static str) -> impl Fn(Map<String, Value>) -> Map<String, Value> {
    move |mut c| {
        c.remove(claim);
        c
    }
}

const BAD_PAYLOADS: [(&str, Forge, Expect); 14] = [
    (
        "no kid in the JWT header",
        |p, c, _| {
            p.active_key()
                .sign_raw(&json!({"alg": "RS256", "typ": "JWT"}), &Value::Object(c))
        },
        reject("missing_kid"),
    ),
    (
        "an incorrect kid in the JWT header",
        |p, c, _| {
            p.active_key().sign_raw(
                &json!({"alg": "RS256", "typ": "JWT", "kid": "imstester_66067"}),
                &Value::Object(c),
            )
        },
        reject("unknown_kid"),
    ),
    (
        "the wrong LTI version",
        |p, mut c, _| {
            c.insert(VERSION.into(), json!("1.2.0"));
            signed(p, c)
        },
        reject("wrong_version"),
    ),
    (
        "no LTI version",
        |p, c, _| signed(p, without(VERSION)(c)),
        reject("missing_version"),
    ),
    (
        "not a JWT at all",
        |_, _, _| "this is not a JWT, just a string".to_owned(),
        reject("malformed_token"),
    ),
    (
        "the message_type claim missing",
        |p, c, _| signed(p, without(MESSAGE_TYPE)(c)),
        reject("missing_message_type"),
    ),
    (
        "the roles claim missing",
        |p, c, _| signed(p, without(ROLES)(c)),
        reject_missing("the roles claim"),
    ),
    (
        "the deployment_id claim missing",
        |p, c, _| signed(p, without(DEPLOYMENT_ID)(c)),
        reject_missing("the deployment_id claim"),
    ),
    (
        "the resource_link id missing",
        |p, mut c, _| {
            c.insert(RESOURCE_LINK.into(), json!({"title": "Problem 1"}));
            signed(p, c)
        },
        reject_missing("the resource_link.id claim"),
    ),
    (
        "the resource_link claim missing",
        |p, c, _| signed(p, without(RESOURCE_LINK)(c)),
        reject_missing("the resource_link.id claim"),
    ),
    (
        "an empty sub (the user claim missing)",
        |p, mut c, _| {
            c.insert("sub".into(), json!(""));
            signed(p, c)
        },
        reject_missing("the sub claim"),
    ),
    (
        "no sub at all",
        |p, c, _| signed(p, without("sub")(c)),
        reject_missing("the sub claim"),
    ),
    (
        "exp in the past, beyond the leeway",
        |p, mut c, now| {
            c.insert("iat".into(), json!(now - 600));
            c.insert("exp".into(), json!(now - 60));
            signed(p, c)
        },
        reject("expired"),
    ),
    (
        "iat in the future, beyond the leeway",
        |p, mut c, now| {
            c.insert("iat".into(), json!(now + 60));
            c.insert("exp".into(), json!(now + 60 + TOKEN_LIFETIME));
            signed(p, c)
        },
        reject("issued_in_future"),
    ),
];

#[tokio::test]
async fn domain_known_bad_payloads_are_rejected() {
    let env = Env::certification().await;
    let mut failures = Vec::new();
    let mut ran = 0;
    for (name, forge, expect) in BAD_PAYLOADS {
        let case = format!("bad payload: {name}");
        let browser = Browser::new();
        let target = env.target();
        let auth = browser.login(&env.gw, &env.platform, &target).await;
        let Value::Object(claims) = env.platform.claims(&auth, &target) else {
            panic!("the test platform's claims are not an object");
        };
        let token = forge(&env.platform, claims, env.now());
        let before = env.gw.session_count().await;
        let result = browser.post_launch(&env.gw, &token, &auth.state).await;
        ran += 1;
        if let Err(e) = check_outcome(&case, &env, &browser, &result, before, expect).await {
            failures.push(e);
        }
    }
    report("DOMAIN.md §1 bad payloads", ran, &failures);
}
