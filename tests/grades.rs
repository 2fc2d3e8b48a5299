//! Grade passback end to end: a real gateway, a real test platform with a
//! token endpoint that verifies the client assertion against the gateway's
//! JWKS, a line items container and scores endpoints, and a real test LMS
//! that answers composite scores. Scores enter through the internal score
//! API, as the LMS would post them; time moves with the gateway's
//! `ManualClock`, and asynchronous arrival is awaited with bounded polling.

mod support;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ltigate::Clock as _;
use serde_json::{Value, json};
use support::platform::{
    AgsRequest, Fault, LINEITEM_CONTENT_TYPE, LINEITEM_SCOPE, SCORE_CONTENT_TYPE, SCORE_SCOPE,
};
use support::*;

const SCORE_TOKEN: &str = "test-score-token-0123456789";
const P1: &str = USAGE;
const P2: &str = "block-v1:OrgX+CS101+2026+type@problem+block@p2";
const P3: &str = "block-v1:OrgX+CS101+2026+type@problem+block@p3";
const UNIT: &str = "block-v1:OrgX+CS101+2026+type@vertical+block@u1";
const SEQUENTIAL: &str = "block-v1:OrgX+CS101+2026+type@sequential+block@s1";
const OTHER_COURSE: &str = "course-v1:OrgY+Other+2026";
const OTHER_USAGE: &str = "block-v1:OrgY+Other+2026+type@problem+block@p9";
const MODIFIED: &str = "2026-11-27T10:00:00.123Z";
/// How long a test watches for something that must not happen. The worker
/// polls every 50 ms, so this spans several of its rounds.
const QUIET: Duration = Duration::from_millis(400);

// ---------------------------------------------------------------- helpers

/// The `[grades]` table; `listen` is the score API's address, `more` are
/// extra lines for the table.
fn grades_table(listen: &str, more: &str) -> String {
    format!(
        "[grades]\nlisten = \"{listen}\"\ntoken = \"{SCORE_TOKEN}\"\npoll_interval_ms = 50\n\
         aggregate_delay_sec = 900\n\
         composite_score_url = \"{{upstream}}/ltigate/score?user={{username}}&usage_key={{usage_key}}\"\n\
         {more}\n"
    )
}

/// Options for a gateway in front of `upstream` with grade passback.
///
/// `support::shipped_rules()` cuts `gateway.toml` at the first `[[rules]]`,
/// which is inside a comment, so a config built with `upstream: Some(..)`
/// does not parse. Until it is fixed, `[upstream]`, `[assertion]` and the
/// shipped rules are put in `extra` from the first line that starts a
/// `[[rules]]` table (as tests/proxy.rs does).
fn grades_options(upstream: &str, grades: &str, base: GatewayOptions) -> GatewayOptions {
    if shipped_rules().lines().next() == Some("[[rules]]") {
        return GatewayOptions {
            upstream: Some(upstream.to_owned()),
            extra: format!("{}\n{grades}", base.extra),
            ..base
        };
    }
    let shipped = include_str!("../gateway.toml");
    let start = shipped
        .find("\n[[rules]]\n")
        .expect("gateway.toml ships [[rules]]")
        + 1;
    let extra = format!(
        "[upstream]\nurl = \"{upstream}\"\nblock_access = \"course\"\n\n[assertion]\nusername_key = \"{USERNAME_KEY}\"\n\n{}\n{grades}\n{}",
        &shipped[start..],
        base.extra
    );
    GatewayOptions {
        upstream: None,
        extra,
        ..base
    }
}

/// Options for a gateway on `redis` (several share it as replicas do).
fn on_redis(redis: &RedisServer) -> GatewayOptions {
    GatewayOptions {
        store: Some(format!(
            "kind = \"redis\"\nurl = \"{}\"\nkey_prefix = \"ltigate:\"",
            redis.url()
        )),
        ..Default::default()
    }
}

/// A free loopback port (for a score API the CLI must reach by config).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// A platform, a test LMS, a gateway with `[grades]`, a browser and a client.
struct Setup {
    platform: TestPlatform,
    upstream: TestUpstream,
    gw: Gateway,
    browser: Browser,
    http: reqwest::Client,
}

impl Setup {
    fn new(platform: TestPlatform, upstream: TestUpstream, gw: Gateway) -> Self {
        Self {
            platform,
            upstream,
            gw,
            browser: Browser::new(),
            http: reqwest::Client::new(),
        }
    }
}

/// Launches problems q1..=q`n` of the course, each graded with line item
/// 10 + i, in the setup's browser; their usage keys.
async fn launch_problems(s: &Setup, n: u32) -> Vec<String> {
    let problems: Vec<String> = (1..=n)
        .map(|i| format!("block-v1:OrgX+CS101+2026+type@problem+block@q{i}"))
        .collect();
    for (i, p) in problems.iter().enumerate() {
        launch_graded(s, p, &format!("rl-q{i}"), 10 + i as u32).await;
    }
    problems
}

async fn start_gateway(
    platform: &TestPlatform,
    upstream: &TestUpstream,
    grades: &str,
    base: GatewayOptions,
) -> Gateway {
    let gw = Gateway::start_with(platform, grades_options(&upstream.url(), grades, base)).await;
    platform.set_tool_jwks_url(&gw.url("/lti/1p3/pub/jwks/"));
    gw
}

async fn setup_with(grades: &str) -> Setup {
    let platform = TestPlatform::start().await;
    let upstream = TestUpstream::start().await;
    let gw = start_gateway(&platform, &upstream, grades, GatewayOptions::default()).await;
    Setup {
        platform,
        upstream,
        gw,
        browser: Browser::new(),
        http: reqwest::Client::new(),
    }
}

async fn setup() -> Setup {
    setup_with(&grades_table("127.0.0.1:0", "")).await
}

/// An AGS endpoint claim granting the score and line item scopes.
fn ags_claim(lineitem: Option<&str>, lineitems: Option<&str>) -> Value {
    let mut claim = json!({"scope": [SCORE_SCOPE, LINEITEM_SCOPE]});
    if let Some(l) = lineitem {
        claim["lineitem"] = json!(l);
    }
    if let Some(l) = lineitems {
        claim["lineitems"] = json!(l);
    }
    claim
}

/// Launches `usage` through `gw` with resource link `link` and, if given,
/// the AGS endpoint claim `ags`.
async fn launch(
    gw: &Gateway,
    platform: &TestPlatform,
    browser: &Browser,
    usage: &str,
    link: (&str, &str),
    ags: Option<Value>,
) {
    let target = gw.target(usage);
    let auth = browser.login(gw, platform, &target).await;
    let mut claims = platform.claims(&auth, &target);
    claims["https://purl.imsglobal.org/spec/lti/claim/resource_link"] =
        json!({"id": link.0, "title": link.1});
    if let Some(ags) = ags {
        claims["https://purl.imsglobal.org/spec/lti-ags/claim/endpoint"] = ags;
    }
    let r = browser
        .post_launch(gw, &platform.sign(&claims), &auth.state)
        .await;
    assert_eq!(r.status, 302, "launch of {usage} refused: {}", r.body);
}

/// A line item URL on the test platform.
fn lineitem(platform: &TestPlatform, n: u32) -> String {
    format!("{}/lineitems/{n}/lineitem", platform.base_url())
}

/// Launches `usage` with a `lineitem` claim (line item `n`).
async fn launch_graded(s: &Setup, usage: &str, link_id: &str, n: u32) {
    let claim = ags_claim(Some(&lineitem(&s.platform, n)), None);
    launch(
        &s.gw,
        &s.platform,
        &s.browser,
        usage,
        (link_id, "Graded"),
        Some(claim),
    )
    .await;
}

/// The LMS username of the browser's learner: GETs the display path of a
/// launched `usage` and reads the verified assertion the LMS received.
async fn username(s: &Setup, usage: &str) -> String {
    let (status, body) = s.browser.get(&s.gw, &display_path(usage)).await;
    assert_eq!(status, 200, "{body}");
    let seen = s.upstream.last();
    let token = seen
        .header("x-ltigate-assertion")
        .expect("the LMS received an assertion");
    let claims = verify_assertion(&s.gw, token).await;
    claims["sub"].as_str().expect("sub").to_owned()
}

/// A score event for `username` on `usage` in [`COURSE`].
fn event(username: &str, usage: &str, earned: f64, possible: f64, modified: &str) -> Value {
    json!({
        "username": username,
        "course_key": COURSE,
        "usage_key": usage,
        "earned": earned,
        "possible": possible,
        "modified": modified,
        "ancestors": [UNIT, SEQUENTIAL],
    })
}

/// POSTs a raw body to the score API with `bearer`; returns status and JSON.
async fn post_raw(
    http: &reqwest::Client,
    gw: &Gateway,
    bearer: Option<&str>,
    body: String,
) -> (u16, Value) {
    let mut request = http
        .post(format!("{}/scores", gw.grades_url()))
        .header("content-type", "application/json")
        .body(body);
    if let Some(b) = bearer {
        request = request.header("authorization", format!("Bearer {b}"));
    }
    let response = request.send().await.expect("score API");
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let text = response.text().await.unwrap_or_default();
    assert_eq!(content_type, "application/json", "{status}: {text}");
    let json = serde_json::from_str(&text)
        .unwrap_or_else(|_| panic!("the score API answered non-JSON: {text}"));
    (status, json)
}

/// POSTs a score event; returns status and JSON.
async fn post_score(http: &reqwest::Client, gw: &Gateway, event: &Value) -> (u16, Value) {
    post_raw(http, gw, Some(SCORE_TOKEN), event.to_string()).await
}

/// POSTs a score event that must be accepted; returns its `queued` list.
async fn accepted(s: &Setup, event: &Value) -> Vec<Value> {
    let (status, body) = post_score(&s.http, &s.gw, event).await;
    assert_eq!(status, 202, "{body}");
    body["queued"].as_array().expect("queued").clone()
}

/// The deliveries the gateway lists.
async fn deliveries(http: &reqwest::Client, gw: &Gateway, failed: bool) -> Vec<Value> {
    let query = if failed { "?failed=1" } else { "" };
    let response = http
        .get(format!("{}/deliveries{query}", gw.grades_url()))
        .bearer_auth(SCORE_TOKEN)
        .send()
        .await
        .expect("deliveries");
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("JSON");
    body["deliveries"].as_array().expect("deliveries").clone()
}

/// Polls `check` every 20 ms for up to 5 s.
async fn until<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until the platform took `n` scores; returns them.
async fn landed(platform: &TestPlatform, n: usize) -> Vec<AgsRequest> {
    until(&format!("{n} score(s) to land"), || async {
        let scores = platform.scores();
        assert!(
            scores.len() <= n,
            "more scores landed than expected: {scores:#?}"
        );
        (scores.len() == n).then_some(scores)
    })
    .await
}

/// Waits until the platform saw `n` score requests (accepted or not).
async fn attempted(platform: &TestPlatform, n: usize) -> Vec<AgsRequest> {
    until(&format!("{n} score request(s)"), || async {
        let all = platform.score_requests();
        assert!(
            all.len() <= n,
            "more score requests than expected: {all:#?}"
        );
        (all.len() == n).then_some(all)
    })
    .await
}

/// Waits until one delivery is parked; its last error.
async fn parked_error(s: &Setup) -> String {
    let failed = until("the delivery to be parked", || async {
        let list = deliveries(&s.http, &s.gw, true).await;
        (list.len() == 1).then_some(list)
    })
    .await;
    failed[0]["last_error"]
        .as_str()
        .expect("last_error")
        .to_owned()
}

/// Waits until the queue is empty.
async fn drained(http: &reqwest::Client, gw: &Gateway) {
    until("the queue to drain", || async {
        deliveries(http, gw, false).await.is_empty().then_some(())
    })
    .await;
}

/// Waits until the single delivery has made `attempts` attempts; returns it.
async fn after_attempts(http: &reqwest::Client, gw: &Gateway, attempts: u64) -> Value {
    until(
        &format!("a delivery with {attempts} attempt(s)"),
        || async {
            let list = deliveries(http, gw, false).await;
            assert_eq!(list.len(), 1, "{list:#?}");
            (list[0]["attempts"] == attempts).then(|| list[0].clone())
        },
    )
    .await
}

fn number(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

/// Checks a landed score against the AGS wire format.
#[track_caller]
fn assert_score(r: &AgsRequest, target: &str, given: f64, maximum: f64, timestamp: &str) {
    assert_eq!(r.method, "POST");
    assert_eq!(r.target, target);
    assert_eq!(r.content_type.as_deref(), Some(SCORE_CONTENT_TYPE));
    assert!(
        r.user_agent.as_deref().is_some_and(|ua| !ua.is_empty()),
        "no User-Agent on the score request"
    );
    let body = r.json();
    let keys: Vec<&str> = body
        .as_object()
        .expect("a JSON object")
        .keys()
        .map(String::as_str)
        .collect();
    let mut sorted = keys.clone();
    sorted.sort_unstable();
    assert_eq!(
        sorted,
        [
            "activityProgress",
            "gradingProgress",
            "scoreGiven",
            "scoreMaximum",
            "timestamp",
            "userId"
        ],
        "{body}"
    );
    assert_eq!(body["userId"], "learner-1", "userId is the LTI sub");
    assert_eq!(number(&body["scoreGiven"]), given);
    assert_eq!(number(&body["scoreMaximum"]), maximum);
    assert_eq!(body["activityProgress"], "Completed");
    assert_eq!(body["gradingProgress"], "FullyGraded");
    assert_eq!(body["timestamp"], timestamp);
}

/// The path and query of a line item's scores endpoint.
fn scores_path(n: u32) -> String {
    format!("/lineitems/{n}/lineitem/scores")
}

// ---------------------------------------------------------------- 1. leaf scores

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leaf_score_arrives_once_and_the_token_is_reused() {
    let s = setup().await;
    launch_graded(&s, P1, "rl-1", 1).await;
    let user = username(&s, P1).await;
    assert!(user.starts_with("lti_"), "{user}");

    let queued = accepted(&s, &event(&user, P1, 7.0, 10.0, MODIFIED)).await;
    assert_eq!(queued.len(), 1, "{queued:?}");
    assert_eq!(queued[0]["kind"], "leaf");

    let scores = landed(&s.platform, 1).await;
    assert_score(&scores[0], &scores_path(1), 7.0, 10.0, MODIFIED);
    assert_eq!(scores[0].bearer(), Some("tok-1"));
    drained(&s.http, &s.gw).await;

    // The token request: client credentials with a verified assertion.
    let tokens = s.platform.token_requests();
    assert_eq!(tokens.len(), 1, "{tokens:#?}");
    let t = &tokens[0];
    assert_eq!(t.outcome, Ok("tok-1".to_owned()), "{t:#?}");
    let scopes: Vec<&str> = t.form["scope"].split(' ').collect();
    assert!(scopes.contains(&SCORE_SCOPE), "{scopes:?}");
    let claims = t.assertion.as_ref().expect("a verified assertion");
    assert_eq!(claims["iss"], s.platform.client_id.as_str());
    assert_eq!(claims["sub"], s.platform.client_id.as_str());
    assert_eq!(
        claims["aud"],
        format!("{}/token", s.platform.base_url()).as_str()
    );
    assert!(t.user_agent.as_deref().is_some_and(|ua| !ua.is_empty()));

    // Another problem, named by its LTI identity, with a non-UTC timestamp.
    launch_graded(&s, P2, "rl-2", 2).await;
    let mut second = event(&user, P2, 1.0, 2.0, "2026-11-27T11:00:05.5+01:00");
    second.as_object_mut().expect("object").remove("username");
    second["lti"] = json!({
        "issuer": s.platform.issuer,
        "client_id": s.platform.client_id,
        "sub": "learner-1",
    });
    let queued = accepted(&s, &second).await;
    assert_eq!(queued.len(), 1, "{queued:?}");
    let scores = landed(&s.platform, 2).await;
    assert_score(
        &scores[1],
        &scores_path(2),
        1.0,
        2.0,
        "2026-11-27T10:00:05.500Z",
    );
    assert_eq!(scores[1].bearer(), Some("tok-1"), "the token is reused");
    assert_eq!(s.platform.token_requests().len(), 1);
    drained(&s.http, &s.gw).await;

    // Each arrived once.
    tokio::time::sleep(QUIET).await;
    assert_eq!(s.platform.score_requests().len(), 2);

    // The assertion is single-use: the platform refuses a replay of it.
    let replay = s
        .http
        .post(format!("{}/token", s.platform.base_url()))
        .form(&tokens[0].form)
        .send()
        .await
        .expect("replay");
    assert_eq!(replay.status(), 400);
    assert_eq!(
        replay.json::<Value>().await.expect("JSON")["error"],
        "invalid_grant"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_is_renewed_shortly_before_it_expires() {
    let s = setup().await;
    launch_graded(&s, P1, "rl-1", 1).await;
    let user = username(&s, P1).await;
    accepted(&s, &event(&user, P1, 1.0, 3.0, MODIFIED)).await;
    assert_eq!(landed(&s.platform, 1).await[0].bearer(), Some("tok-1"));

    // expires_in is 3600: still cached after 3000 s...
    s.gw.clock.advance(3000);
    accepted(&s, &event(&user, P1, 2.0, 3.0, MODIFIED)).await;
    assert_eq!(landed(&s.platform, 2).await[1].bearer(), Some("tok-1"));
    // ...and renewed within the last minute of its life.
    s.gw.clock.advance(541);
    accepted(&s, &event(&user, P1, 3.0, 3.0, MODIFIED)).await;
    assert_eq!(landed(&s.platform, 3).await[2].bearer(), Some("tok-2"));
    assert_eq!(s.platform.token_requests().len(), 2);
}

// ---------------------------------------------------------------- 2. composites

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_composite_burst_sends_the_last_lms_score_once_after_the_delay() {
    let s = setup().await;
    launch_graded(&s, UNIT, "rl-unit", 3).await;
    let user = username(&s, UNIT).await;
    s.upstream.set_composite_score(1.0, 4.0);

    // Three changes inside the unit, each within the delay of the last.
    for (i, problem) in [P1, P2, P3].into_iter().enumerate() {
        if i > 0 {
            s.gw.clock.advance(400);
        }
        let modified = format!("2026-11-27T10:00:0{i}.250Z");
        let queued = accepted(&s, &event(&user, problem, 1.0, 1.0, &modified)).await;
        assert_eq!(queued.len(), 1, "{queued:?}");
        assert_eq!(queued[0]["kind"], "composite");
    }
    let list = deliveries(&s.http, &s.gw, false).await;
    assert_eq!(list.len(), 1, "one pending delivery: {list:#?}");
    assert_eq!(list[0]["state"], "pending");
    let now = s.gw.clock.now();
    assert!(
        number(&list[0]["due_at"]) as u64 > now + 800,
        "due {} at {now}",
        list[0]["due_at"]
    );

    // 600 s after the last change, 1400 s after the first: nothing yet.
    s.gw.clock.advance(600);
    tokio::time::sleep(QUIET).await;
    assert!(s.platform.score_requests().is_empty());
    assert!(s.upstream.score_requests().is_empty());

    // The LMS's composite score changes; it is read when the delay is over.
    s.upstream.set_composite_score(3.0, 4.0);
    s.gw.clock.advance(301);
    let scores = landed(&s.platform, 1).await;
    assert_score(
        &scores[0],
        &scores_path(3),
        0.75,
        1.0,
        "2026-11-27T10:00:02.250Z",
    );
    drained(&s.http, &s.gw).await;

    // The LMS was asked once, with an assertion it can verify.
    let asked = s.upstream.score_requests();
    assert_eq!(asked.len(), 1, "{asked:#?}");
    let url = url::Url::parse(&format!("http://lms{}", asked[0].target)).expect("url");
    let query: std::collections::HashMap<String, String> = url.query_pairs().into_owned().collect();
    assert_eq!(query["user"], user);
    assert_eq!(query["usage_key"], UNIT);
    let claims = verify_assertion(
        &s.gw,
        asked[0]
            .header("x-ltigate-assertion")
            .expect("an assertion"),
    )
    .await;
    assert_eq!(claims["sub"], user.as_str());
    assert_eq!(claims["usage_key"], UNIT);
    assert_eq!(claims["course_key"], COURSE);
    assert_eq!(claims["lti"]["sub"], "learner-1");
    assert_eq!(claims["lti"]["issuer"], s.platform.issuer.as_str());

    tokio::time::sleep(QUIET).await;
    assert_eq!(s.platform.score_requests().len(), 1, "sent once");
}

// ---------------------------------------------------------------- 3. line item URLs

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_moodle_line_item_keeps_its_query_after_scores() {
    let s = setup().await;
    let moodle = format!("{}?type_id=2", lineitem(&s.platform, 7));
    launch(
        &s.gw,
        &s.platform,
        &s.browser,
        P1,
        ("rl-m", "Moodle"),
        Some(ags_claim(Some(&moodle), None)),
    )
    .await;
    let user = username(&s, P1).await;
    accepted(&s, &event(&user, P1, 4.0, 5.0, MODIFIED)).await;
    let scores = landed(&s.platform, 1).await;
    assert_score(
        &scores[0],
        "/lineitems/7/lineitem/scores?type_id=2",
        4.0,
        5.0,
        MODIFIED,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_line_item_is_created_once_from_the_container_and_reused() {
    let s = setup().await;
    let container = format!("{}/lineitems", s.platform.base_url());
    let claim = ags_claim(None, Some(&container));
    launch(
        &s.gw,
        &s.platform,
        &s.browser,
        P1,
        ("rl-li", "Quiz 3"),
        Some(claim.clone()),
    )
    .await;
    let user = username(&s, P1).await;
    accepted(&s, &event(&user, P1, 2.0, 4.0, MODIFIED)).await;
    let scores = landed(&s.platform, 1).await;

    // Looked up by resource link, not found, created.
    let requests = s.platform.lineitem_requests();
    assert_eq!(requests.len(), 2, "{requests:#?}");
    assert_eq!(requests[0].method, "GET");
    assert_eq!(requests[0].target, "/lineitems?resource_link_id=rl-li");
    assert_eq!(
        requests[0].accept.as_deref(),
        Some("application/vnd.ims.lis.v2.lineitemcontainer+json")
    );
    assert_eq!(requests[1].method, "POST");
    assert_eq!(requests[1].status, 201);
    assert!(
        requests
            .iter()
            .all(|r| r.user_agent.as_deref().is_some_and(|ua| !ua.is_empty())
                && r.bearer() == Some("tok-1")),
        "{requests:#?}"
    );
    assert_eq!(
        requests[1].content_type.as_deref(),
        Some(LINEITEM_CONTENT_TYPE)
    );
    let created = requests[1].json();
    assert_eq!(created["label"], "Quiz 3");
    assert_eq!(number(&created["scoreMaximum"]), 1.0);
    assert_eq!(created["resourceLinkId"], "rl-li");
    let items = s.platform.lineitems();
    assert_eq!(items.len(), 1);
    let id = items[0]["id"].as_str().expect("id");
    let path = url::Url::parse(id).expect("id URL").path().to_owned();
    assert_score(&scores[0], &format!("{path}/scores"), 2.0, 4.0, MODIFIED);

    // A second score uses the remembered line item.
    accepted(&s, &event(&user, P1, 3.0, 4.0, "2026-11-27T10:05:00.000Z")).await;
    let scores = landed(&s.platform, 2).await;
    assert_eq!(scores[1].target, format!("{path}/scores"));
    assert_eq!(s.platform.lineitem_requests().len(), 2, "nothing new asked");

    // So does a score after a relaunch of the same link.
    launch(
        &s.gw,
        &s.platform,
        &s.browser,
        P1,
        ("rl-li", "Quiz 3"),
        Some(claim),
    )
    .await;
    accepted(&s, &event(&user, P1, 4.0, 4.0, "2026-11-27T10:06:00.000Z")).await;
    let scores = landed(&s.platform, 3).await;
    assert_eq!(scores[2].target, format!("{path}/scores"));
    assert_eq!(s.platform.lineitem_requests().len(), 2, "nothing new asked");
    assert_eq!(s.platform.lineitems().len(), 1, "one line item");
    // The token covered both scopes.
    let tokens = s.platform.token_requests();
    assert_eq!(tokens.len(), 1);
    let scopes: Vec<&str> = tokens[0].form["scope"].split(' ').collect();
    assert!(scopes.contains(&SCORE_SCOPE) && scopes.contains(&LINEITEM_SCOPE));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_existing_line_item_is_found_by_resource_link() {
    let s = setup().await;
    let existing = s.platform.add_lineitem("Made by the teacher", "rl-found");
    let container = format!("{}/lineitems", s.platform.base_url());
    launch(
        &s.gw,
        &s.platform,
        &s.browser,
        P1,
        ("rl-found", "Quiz 4"),
        Some(ags_claim(None, Some(&container))),
    )
    .await;
    let user = username(&s, P1).await;
    accepted(&s, &event(&user, P1, 1.0, 1.0, MODIFIED)).await;
    let scores = landed(&s.platform, 1).await;
    let path = url::Url::parse(&existing).expect("url").path().to_owned();
    assert_eq!(scores[0].target, format!("{path}/scores"));
    let requests = s.platform.lineitem_requests();
    assert_eq!(requests.len(), 1, "found, not created: {requests:#?}");
    assert_eq!(requests[0].method, "GET");
    assert_eq!(s.platform.lineitems().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_line_item_is_found_on_a_later_page() {
    let s = setup().await;
    // A platform that ignores the filter and pages two items at a time.
    s.platform.set_lineitems_paging(2, false);
    for other in ["rl-a", "rl-b", "rl-c"] {
        s.platform.add_lineitem("Another", other);
    }
    let existing = s.platform.add_lineitem("Ours", "rl-paged");
    let container = format!("{}/lineitems", s.platform.base_url());
    launch(
        &s.gw,
        &s.platform,
        &s.browser,
        P1,
        ("rl-paged", "Quiz 6"),
        Some(ags_claim(None, Some(&container))),
    )
    .await;
    let user = username(&s, P1).await;
    accepted(&s, &event(&user, P1, 1.0, 1.0, MODIFIED)).await;
    let scores = landed(&s.platform, 1).await;
    let path = url::Url::parse(&existing).expect("url").path().to_owned();
    assert_eq!(scores[0].target, format!("{path}/scores"));
    let requests = s.platform.lineitem_requests();
    let targets: Vec<&str> = requests.iter().map(|r| r.target.as_str()).collect();
    assert_eq!(
        targets,
        [
            "/lineitems?resource_link_id=rl-paged",
            "/lineitems?resource_link_id=rl-paged&page=2"
        ],
        "followed the Link header, created nothing"
    );
    assert_eq!(s.platform.lineitems().len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_launch_without_the_ags_claim_records_nothing() {
    let s = setup().await;
    launch(&s.gw, &s.platform, &s.browser, P1, ("rl-1", "Plain"), None).await;
    let user = username(&s, P1).await;

    // The user has no graded launch at all: unknown.
    let (status, body) = post_score(&s.http, &s.gw, &event(&user, P1, 1.0, 1.0, MODIFIED)).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["field"], "username");

    // Once the same user has a graded launch elsewhere, a score of the
    // ungraded block is accepted with nothing to deliver.
    launch_graded(&s, P2, "rl-2", 2).await;
    let queued = accepted(&s, &event(&user, P1, 1.0, 1.0, MODIFIED)).await;
    assert!(queued.is_empty(), "{queued:?}");
    assert!(deliveries(&s.http, &s.gw, false).await.is_empty());
    tokio::time::sleep(QUIET).await;
    assert!(s.platform.score_requests().is_empty());
    assert!(s.platform.token_requests().is_empty());
}

// ---------------------------------------------------------------- 4. platform faults

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_are_retried_after_a_back_off() {
    let s = setup().await;
    launch_graded(&s, P1, "rl-1", 1).await;
    let user = username(&s, P1).await;
    s.platform.fail_scores(2, Fault::status(503));
    accepted(&s, &event(&user, P1, 5.0, 10.0, MODIFIED)).await;

    for attempt in 1..=2 {
        attempted(&s.platform, attempt).await;
        let d = after_attempts(&s.http, &s.gw, attempt as u64).await;
        assert_eq!(d["state"], "pending");
        assert!(
            d["last_error"].as_str().is_some_and(|e| e.contains("503")),
            "{d}"
        );
        let due = number(&d["due_at"]) as u64;
        let now = s.gw.clock.now();
        assert!(due > now, "the retry is due later ({due} at {now})");
        // Not retried before it is due.
        tokio::time::sleep(QUIET).await;
        assert_eq!(s.platform.score_requests().len(), attempt);
        s.gw.clock.advance((due - now + 1) as i64);
    }
    let scores = landed(&s.platform, 1).await;
    assert_score(&scores[0], &scores_path(1), 5.0, 10.0, MODIFIED);
    drained(&s.http, &s.gw).await;
    assert_eq!(s.platform.score_requests().len(), 3);
    tokio::time::sleep(QUIET).await;
    assert_eq!(s.platform.scores().len(), 1, "exactly one score landed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_requests_honours_retry_after() {
    let s = setup().await;
    launch_graded(&s, P1, "rl-1", 1).await;
    let user = username(&s, P1).await;
    s.platform.fail_scores(1, Fault::retry_after(429, "600"));
    accepted(&s, &event(&user, P1, 5.0, 10.0, MODIFIED)).await;
    attempted(&s.platform, 1).await;
    let d = after_attempts(&s.http, &s.gw, 1).await;
    let due = number(&d["due_at"]) as u64;
    let now = s.gw.clock.now();
    // The back-off after one attempt is at most 20 s: this is Retry-After.
    assert!(due >= now + 590, "due {due} at {now}");
    s.gw.clock.advance((due - now + 1) as i64);
    landed(&s.platform, 1).await;
    drained(&s.http, &s.gw).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_token_is_replaced_once() {
    let s = setup().await;
    launch_graded(&s, P1, "rl-1", 1).await;
    let user = username(&s, P1).await;

    // A 401 on the score: a fresh token, and the score lands.
    s.platform.fail_scores(1, Fault::status(401));
    accepted(&s, &event(&user, P1, 5.0, 10.0, MODIFIED)).await;
    let scores = landed(&s.platform, 1).await;
    assert_eq!(scores[0].bearer(), Some("tok-2"));
    let all = s.platform.score_requests();
    assert_eq!(all.len(), 2, "{all:#?}");
    assert_eq!((all[0].status, all[0].bearer()), (401, Some("tok-1")));
    assert_eq!(s.platform.token_requests().len(), 2);
    assert!(
        s.platform
            .token_requests()
            .iter()
            .all(|t| t.outcome.is_ok()),
        "{:#?}",
        s.platform.token_requests()
    );
    drained(&s.http, &s.gw).await;

    // The platform forgets its tokens: the cached one is refused, once.
    s.platform.revoke_tokens();
    accepted(&s, &event(&user, P1, 6.0, 10.0, "2026-11-27T10:01:00.000Z")).await;
    let scores = landed(&s.platform, 2).await;
    assert_eq!(scores[1].bearer(), Some("tok-3"));
    assert_eq!(s.platform.score_requests().len(), 4);
    assert_eq!(s.platform.token_requests().len(), 3);
    drained(&s.http, &s.gw).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_token_on_the_line_items_container_is_replaced_once() {
    let s = setup().await;
    // A graded launch with a line item, to get a token cached.
    launch_graded(&s, P2, "rl-2", 2).await;
    let user = username(&s, P2).await;
    accepted(&s, &event(&user, P2, 1.0, 1.0, MODIFIED)).await;
    landed(&s.platform, 1).await;
    // A launch with only the container.
    let container = format!("{}/lineitems", s.platform.base_url());
    launch(
        &s.gw,
        &s.platform,
        &s.browser,
        P1,
        ("rl-li", "Quiz 5"),
        Some(ags_claim(None, Some(&container))),
    )
    .await;

    // The platform forgets its tokens: the container refuses the cached one.
    s.platform.revoke_tokens();
    accepted(&s, &event(&user, P1, 2.0, 2.0, MODIFIED)).await;
    until("the score to land or be parked", || async {
        let done =
            s.platform.scores().len() == 2 || !deliveries(&s.http, &s.gw, true).await.is_empty();
        done.then_some(())
    })
    .await;
    let parked = deliveries(&s.http, &s.gw, true).await;
    assert!(
        parked.is_empty(),
        "a 401 from the line items container parks the delivery instead of \
         getting a fresh token: {parked:#?}"
    );
    let scores = landed(&s.platform, 2).await;
    assert_eq!(scores[1].bearer(), Some("tok-2"));
    assert_eq!(s.platform.token_requests().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_attempts_failures_park_the_delivery() {
    let s = setup_with(&grades_table("127.0.0.1:0", "max_attempts = 2")).await;
    launch_graded(&s, P1, "rl-1", 1).await;
    let user = username(&s, P1).await;
    s.platform.fail_scores(2, Fault::status(502));
    accepted(&s, &event(&user, P1, 5.0, 10.0, MODIFIED)).await;
    let d = after_attempts(&s.http, &s.gw, 1).await;
    assert_eq!(d["state"], "pending");
    let due = number(&d["due_at"]) as u64;
    s.gw.clock.advance((due - s.gw.clock.now() + 1) as i64);
    attempted(&s.platform, 2).await;
    let d = until("the delivery to be parked", || async {
        deliveries(&s.http, &s.gw, true).await.into_iter().next()
    })
    .await;
    assert_eq!(d["attempts"], 2);
    assert_eq!(d["due_at"], Value::Null);
    assert!(
        d["last_error"].as_str().is_some_and(|e| e.contains("502")),
        "{d}"
    );
    s.gw.clock.advance(86_400);
    tokio::time::sleep(QUIET).await;
    assert_eq!(s.platform.score_requests().len(), 2, "parked: not retried");
}

// ---------------------------------------------------------------- 5. parking

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_score_is_parked_listed_by_the_cli_and_retried() {
    let listen = format!("127.0.0.1:{}", free_port());
    let s = setup_with(&grades_table(&listen, "")).await;
    launch_graded(&s, P1, "rl-1", 1).await;
    let user = username(&s, P1).await;
    s.platform.fail_scores(1, Fault::status(400));
    accepted(&s, &event(&user, P1, 8.0, 10.0, MODIFIED)).await;
    attempted(&s.platform, 1).await;

    let failed = until("the delivery to be parked", || async {
        let list = deliveries(&s.http, &s.gw, true).await;
        (!list.is_empty()).then_some(list)
    })
    .await;
    assert_eq!(failed.len(), 1, "{failed:#?}");
    let d = &failed[0];
    assert_eq!(d["state"], "failed");
    assert_eq!(d["due_at"], Value::Null, "parked: never due");
    assert_eq!(d["attempts"], 1);
    let error = d["last_error"].as_str().expect("a last error");
    assert!(error.contains("400"), "{error}");
    let id = d["id"].as_str().expect("id").to_owned();

    // Parked: not retried, however much time passes.
    s.gw.clock.advance(7 * 86_400);
    tokio::time::sleep(QUIET).await;
    assert_eq!(s.platform.score_requests().len(), 1);

    // The operator's view, through the real CLI.
    let config = s.gw.dir.path().join("gateway.toml");
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_ltigate"))
            .args(["grades", "list", "--failed", "--config"])
            .arg(&config)
            .output()
            .expect("run ltigate")
    })
    .await
    .expect("join");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "ltigate grades list failed: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains(&id), "{stdout}");
    assert!(stdout.contains("failed"), "{stdout}");
    assert!(stdout.contains(&user), "{stdout}");
    assert!(
        stdout.contains("last error:") && stdout.contains("400"),
        "{stdout}"
    );

    // Retrying an unknown delivery is a 404; this one delivers it.
    let retry = |id: String| {
        let http = s.http.clone();
        let url = format!("{}/deliveries/{id}/retry", s.gw.grades_url());
        async move {
            http.post(url)
                .bearer_auth(SCORE_TOKEN)
                .send()
                .await
                .expect("retry")
        }
    };
    assert_eq!(retry("000000000000".into()).await.status(), 404);
    let r = retry(id).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.expect("JSON")["requeued"], 1);
    let scores = landed(&s.platform, 1).await;
    assert_score(&scores[0], &scores_path(1), 8.0, 10.0, MODIFIED);
    drained(&s.http, &s.gw).await;
}

// ---------------------------------------------------------------- 6. durability

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_composite_survives_a_restart() {
    let s = setup().await;
    launch_graded(&s, UNIT, "rl-unit", 3).await;
    let user = username(&s, UNIT).await;
    s.upstream.set_composite_score(2.0, 5.0);
    accepted(&s, &event(&user, P1, 1.0, 1.0, MODIFIED)).await;
    assert_eq!(deliveries(&s.http, &s.gw, false).await.len(), 1);

    let Setup {
        platform,
        upstream,
        gw,
        http,
        ..
    } = s;
    let dir = gw.dir.clone();
    gw.stop().await;
    let gw = start_gateway(
        &platform,
        &upstream,
        &grades_table("127.0.0.1:0", ""),
        GatewayOptions {
            dir: Some(Arc::clone(&dir)),
            ..Default::default()
        },
    )
    .await;
    let list = deliveries(&http, &gw, false).await;
    assert_eq!(list.len(), 1, "the delivery survived: {list:#?}");
    assert_eq!(list[0]["state"], "pending");
    tokio::time::sleep(QUIET).await;
    assert!(platform.score_requests().is_empty());

    gw.clock.advance(901);
    let scores = landed(&platform, 1).await;
    assert_score(&scores[0], &scores_path(3), 0.4, 1.0, MODIFIED);
    drained(&http, &gw).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_gateways_on_one_redis_deliver_each_score_once() {
    let redis = RedisServer::start();
    let platform = TestPlatform::start().await;
    let upstream = TestUpstream::start().await;
    let opts = on_redis(&redis);
    let b = start_gateway(
        &platform,
        &upstream,
        &grades_table("127.0.0.1:0", ""),
        opts.clone(),
    )
    .await;
    let a = start_gateway(&platform, &upstream, &grades_table("127.0.0.1:0", ""), opts).await;
    let s = Setup::new(platform, upstream, a);
    let problems = launch_problems(&s, 5).await;
    let user = username(&s, &problems[0]).await;

    // The first attempt of each fails, so both workers race for the retries.
    s.platform.fail_scores(5, Fault::status(503));
    for p in &problems {
        let queued = accepted(&s, &event(&user, p, 1.0, 2.0, MODIFIED)).await;
        assert_eq!(queued.len(), 1);
    }
    attempted(&s.platform, 5).await;
    for gw in [&s.gw, &b] {
        until("five retries pending in the shared queue", || async {
            let list = deliveries(&s.http, gw, false).await;
            (list.len() == 5 && list.iter().all(|d| d["attempts"] == 1)).then_some(())
        })
        .await;
    }
    s.gw.clock.advance(60);
    b.clock.advance(60);

    let scores = landed(&s.platform, 5).await;
    drained(&s.http, &s.gw).await;
    tokio::time::sleep(QUIET).await;
    let scores_after = s.platform.scores();
    assert_eq!(scores_after.len(), 5, "no duplicates: {scores_after:#?}");
    let mut targets: Vec<String> = scores.iter().map(|r| r.target.clone()).collect();
    targets.sort();
    let mut expected: Vec<String> = (10..15).map(scores_path).collect();
    expected.sort();
    assert_eq!(targets, expected, "each line item got its score once");
    assert_eq!(s.platform.score_requests().len(), 10);
    assert!(deliveries(&s.http, &b, false).await.is_empty());
}

// ---------------------------------------------------------------- 7. the score API

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_score_api_refuses_bad_input_and_queues_nothing() {
    let s = setup().await;
    launch_graded(&s, P1, "rl-1", 1).await;
    let user = username(&s, P1).await;
    let good = event(&user, P1, 7.0, 10.0, MODIFIED);

    // Without the right bearer token.
    for bearer in [None, Some("wrong-token-0123456789"), Some("")] {
        let (status, body) = post_raw(&s.http, &s.gw, bearer, good.to_string()).await;
        assert_eq!(status, 401, "{bearer:?}: {body}");
        assert!(body["error"].is_string());
    }
    let listing = s
        .http
        .get(format!("{}/deliveries", s.gw.grades_url()))
        .bearer_auth("wrong-token-0123456789")
        .send()
        .await
        .expect("deliveries");
    assert_eq!(listing.status(), 401);

    let with = |field: &str, value: Value| {
        let mut e = good.clone();
        e[field] = value;
        e
    };
    let without = |field: &str| {
        let mut e = good.clone();
        e.as_object_mut().expect("object").remove(field);
        e
    };
    let mut both = good.clone();
    both["lti"] =
        json!({"issuer": s.platform.issuer, "client_id": s.platform.client_id, "sub": "learner-1"});
    let mut stranger = without("username");
    stranger["lti"] =
        json!({"issuer": s.platform.issuer, "client_id": s.platform.client_id, "sub": "nobody"});
    let cases: Vec<(&str, Value, u16, &str)> = vec![
        ("missing usage_key", without("usage_key"), 400, "usage_key"),
        (
            "missing course_key",
            without("course_key"),
            400,
            "course_key",
        ),
        ("missing earned", without("earned"), 400, "earned"),
        ("missing modified", without("modified"), 400, "modified"),
        ("missing user", without("username"), 400, "username"),
        (
            "non-numeric earned",
            with("earned", json!("7")),
            400,
            "earned",
        ),
        ("negative earned", with("earned", json!(-1)), 400, "earned"),
        (
            "earned above possible",
            with("earned", json!(11)),
            400,
            "earned",
        ),
        ("zero possible", with("possible", json!(0)), 400, "possible"),
        (
            "bad modified",
            with("modified", json!("yesterday")),
            400,
            "modified",
        ),
        (
            "modified without a zone",
            with("modified", json!("2026-11-27T10:00:00")),
            400,
            "modified",
        ),
        (
            "usage key outside the course",
            with("usage_key", json!(OTHER_USAGE)),
            400,
            "usage_key",
        ),
        (
            "course of another usage key",
            with("course_key", json!(OTHER_COURSE)),
            400,
            "usage_key",
        ),
        (
            "an ancestor outside the course",
            with("ancestors", json!([UNIT, OTHER_USAGE])),
            400,
            "ancestors",
        ),
        (
            "ancestors not a list",
            with("ancestors", json!(UNIT)),
            400,
            "ancestors",
        ),
        ("an unknown field", with("grade", json!("A")), 400, "grade"),
        ("username and lti", both, 400, "username"),
        (
            "an unknown user",
            with("username", json!("lti_000000000000000000000000")),
            404,
            "username",
        ),
        ("an unknown LTI identity", stranger, 404, "username"),
    ];
    for (what, body, status, field) in cases {
        let (got, answer) = post_score(&s.http, &s.gw, &body).await;
        assert_eq!(got, status, "{what}: {answer}");
        assert_eq!(answer["field"], field, "{what}: {answer}");
        assert!(answer["error"].is_string(), "{what}: {answer}");
        assert!(
            deliveries(&s.http, &s.gw, false).await.is_empty(),
            "{what}: something was queued"
        );
    }
    let (status, answer) = post_raw(&s.http, &s.gw, Some(SCORE_TOKEN), "not json".into()).await;
    assert_eq!(
        (status, &answer["field"]),
        (400, &json!("body")),
        "{answer}"
    );

    tokio::time::sleep(QUIET).await;
    assert!(deliveries(&s.http, &s.gw, false).await.is_empty());
    assert!(s.platform.score_requests().is_empty(), "nothing was sent");
    assert!(s.platform.token_requests().is_empty());
}

/// Shutdown is bounded while a delivery hangs: the gateway stops within its
/// grace period (5 s here) although the platform takes two minutes, and
/// gives the delivery back unchanged and due at once, for the next process.
/// (Before, shutdown waited for the AGS call's 15 s timeout, and the
/// delivery came back as a failed attempt, due after a back-off.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_abandons_a_hung_delivery_and_gives_it_back() {
    let s = setup().await;
    launch_graded(&s, P1, "rl-1", 1).await;
    let user = username(&s, P1).await;
    s.platform.stall_scores(Duration::from_secs(120));
    accepted(&s, &event(&user, P1, 5.0, 10.0, MODIFIED)).await;
    let now = s.gw.clock.now();
    // Claimed (leased, so due only when the lease ends), its token fetched:
    // what is left is the score POST, which hangs.
    until("the delivery to be claimed", || async {
        let list = deliveries(&s.http, &s.gw, false).await;
        (list.len() == 1 && number(&list[0]["due_at"]) as u64 > now).then_some(())
    })
    .await;
    until("the access token", || async {
        (s.platform.tokens_issued() == 1).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    let Setup { gw, platform, .. } = s;
    let (store, clock) = (gw.app.store.clone(), gw.clock.clone());
    let started = Instant::now();
    gw.stop().await;
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(12),
        "shutdown took {took:?} with a delivery hung (grace 5 s, the platform hangs 120 s)"
    );
    let left = store.queue_list().await.expect("queue");
    assert_eq!(left.len(), 1, "the delivery is kept");
    let now = clock.now();
    assert!(
        left[0].due_at <= now,
        "the abandoned delivery is due again at once (due {} at {now}): {}",
        left[0].due_at,
        String::from_utf8_lossy(&left[0].payload)
    );
    let delivery: Value = serde_json::from_slice(&left[0].payload).expect("delivery");
    assert_eq!(
        delivery["attempts"], 0,
        "an abandoned delivery is not a failed attempt"
    );
    assert_eq!(delivery["timestamp"], MODIFIED);
    assert!(platform.scores().is_empty());
}

/// A slow platform delays only its own scores: with one platform hanging on
/// every score, another platform's scores are delivered at once, and the
/// hanging one never has more than `concurrent_per_platform` deliveries in
/// flight (here 3 of 6 queued). (Before, deliveries went out one at a time
/// across all platforms, so the second platform waited behind the first's
/// timeouts.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hanging_platform_delays_only_its_own_scores() {
    let slow = TestPlatform::start().await;
    let fast = TestPlatform::start_with("https://fast.test", "client-fast", "deploy-fast").await;
    let upstream = TestUpstream::start().await;
    let fast_platform = format!(
        "[[platforms]]\ntitle = \"Fast\"\nissuer = \"{}\"\nclient_id = \"{}\"\n\
         auth_login_url = \"{base}/auth\"\nauth_token_url = \"{base}/token\"\n\
         key_set_url = \"{base}/jwks\"\nkey = \"tool-1\"\ndeployment_ids = [\"{}\"]\n\
         allow_private_addresses = true\n",
        fast.issuer,
        fast.client_id,
        fast.deployment_id,
        base = fast.base_url()
    );
    let opts = GatewayOptions {
        extra: fast_platform,
        ..Default::default()
    };
    let gw = start_gateway(
        &slow,
        &upstream,
        &grades_table("127.0.0.1:0", "concurrent_per_platform = 3"),
        opts,
    )
    .await;
    fast.set_tool_jwks_url(&gw.url("/lti/1p3/pub/jwks/"));
    let s = Setup::new(slow, upstream, gw);
    let problems = launch_problems(&s, 6).await;
    let slow_user = username(&s, &problems[0]).await;
    let fast_browser = Browser::new();
    for (i, p) in [P2, P3].iter().enumerate() {
        let claim = ags_claim(Some(&lineitem(&fast, 20 + i as u32)), None);
        launch(
            &s.gw,
            &fast,
            &fast_browser,
            p,
            (&format!("rl-fast-{i}"), "Graded"),
            Some(claim),
        )
        .await;
    }
    let (status, body) = fast_browser.get(&s.gw, &display_path(P2)).await;
    assert_eq!(status, 200, "{body}");
    let token = s.upstream.last();
    let token = token.header("x-ltigate-assertion").expect("an assertion");
    let fast_user = verify_assertion(&s.gw, token).await["sub"]
        .as_str()
        .expect("sub")
        .to_owned();
    assert_ne!(slow_user, fast_user);

    s.platform.stall_scores(Duration::from_secs(120));
    for p in &problems {
        accepted(&s, &event(&slow_user, p, 1.0, 2.0, MODIFIED)).await;
    }
    until(
        "three deliveries in flight to the hanging platform",
        || async { (s.platform.score_arrivals() == 3).then_some(()) },
    )
    .await;
    for p in [P2, P3] {
        accepted(&s, &event(&fast_user, p, 3.0, 4.0, MODIFIED)).await;
    }
    let fast_scores = landed(&fast, 2).await;
    for score in &fast_scores {
        assert_eq!(score.json()["scoreGiven"], 3.0);
    }
    tokio::time::sleep(QUIET).await;
    assert_eq!(
        s.platform.score_arrivals(),
        3,
        "no more than concurrent_per_platform deliveries in flight to one platform"
    );
    assert!(s.platform.scores().is_empty());
    assert_eq!(deliveries(&s.http, &s.gw, false).await.len(), 6);
}

/// A newer score for a resource whose delivery is in flight waits for that
/// delivery, then goes: the two are never in flight together, and the
/// platform ends with the newer one (last wins).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_newer_score_waits_for_the_one_in_flight_then_wins() {
    let s = setup().await;
    launch_graded(&s, P1, "rl-1", 1).await;
    let user = username(&s, P1).await;
    s.platform.stall_scores(Duration::from_millis(1500));
    accepted(&s, &event(&user, P1, 1.0, 10.0, "2026-11-27T10:00:00.000Z")).await;
    until("the first score in flight", || async {
        (s.platform.score_arrivals() == 1).then_some(())
    })
    .await;
    accepted(&s, &event(&user, P1, 9.0, 10.0, "2026-11-27T10:05:00.000Z")).await;
    tokio::time::sleep(QUIET).await;
    assert_eq!(
        s.platform.score_arrivals(),
        1,
        "the newer score is not sent while the older one is in flight"
    );
    s.platform.stall_scores(Duration::ZERO);
    let scores = until("both scores to land", || async {
        let scores = s.platform.scores();
        (scores.len() == 2).then_some(scores)
    })
    .await;
    let given: Vec<f64> = scores
        .iter()
        .map(|r| r.json()["scoreGiven"].as_f64().expect("scoreGiven"))
        .collect();
    assert_eq!(given, [1.0, 9.0], "in order, the newer last");
    drained(&s.http, &s.gw).await;
}

/// On Redis a claim is a short lease (15 s) that the replica sending the
/// delivery renews (every 5 s), so a delivery that takes longer than the
/// lease is not taken by a second replica; and when the first replica goes
/// away, the second sends it at once. (Before, a lease was 300 s and never
/// renewed: a dead replica's delivery waited five minutes.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replica_renews_its_lease_while_a_delivery_runs_long() {
    let redis = RedisServer::start();
    let platform = TestPlatform::start().await;
    let upstream = TestUpstream::start().await;
    let opts = on_redis(&redis);
    let grades = grades_table("127.0.0.1:0", "");
    let a = start_gateway(&platform, &upstream, &grades, opts.clone()).await;
    let s = Setup::new(platform, upstream, a);
    launch_graded(&s, P1, "rl-1", 1).await;
    let user = username(&s, P1).await;
    s.platform.stall_scores(Duration::from_secs(120));
    accepted(&s, &event(&user, P1, 5.0, 10.0, MODIFIED)).await;
    until("the first replica to send it", || async {
        (s.platform.score_arrivals() == 1).then_some(())
    })
    .await;
    // The second replica starts once the first holds the lease.
    let b = start_gateway(&s.platform, &s.upstream, &grades, opts).await;
    let both = |secs: i64| {
        s.gw.clock.advance(secs);
        b.clock.advance(secs);
    };
    // The clocks follow real time plus what the test adds. The lease taken
    // at T ends at T + 15; the renewal 5 s (real) after the claim moves it
    // to about T + 5 + 5 + 15 = T + 25. The check below runs at about
    // T + 5 + 6 + 8 = T + 19: past the first lease, well inside the renewed one.
    both(5);
    tokio::time::sleep(Duration::from_millis(5500)).await;
    both(8);
    tokio::time::sleep(QUIET).await;
    assert_eq!(
        s.platform.score_arrivals(),
        1,
        "the renewed lease keeps the second replica off the delivery"
    );
    // The first replica goes away; the second sends the delivery at once.
    s.platform.stall_scores(Duration::ZERO);
    let Setup { gw, platform, .. } = s;
    gw.stop().await;
    let scores = landed(&platform, 1).await;
    assert_eq!(scores[0].json()["scoreGiven"], 5.0);
    assert_eq!(scores[0].json()["timestamp"], MODIFIED);
    drained(&reqwest::Client::new(), &b).await;
}

/// A line item URL that a launch hands over must be on the registration's
/// origins: one elsewhere gets no token and no score, and the delivery is
/// parked with an error that names the setting. (Before, a registered
/// platform could make ltigate POST its bearer token to any address.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_line_item_on_another_origin_gets_no_token() {
    let s = setup().await;
    let elsewhere = TestPlatform::start().await;
    launch(
        &s.gw,
        &s.platform,
        &s.browser,
        P1,
        ("rl-1", "Graded"),
        Some(ags_claim(Some(&lineitem(&elsewhere, 1)), None)),
    )
    .await;
    let user = username(&s, P1).await;
    accepted(&s, &event(&user, P1, 5.0, 10.0, MODIFIED)).await;
    let error = parked_error(&s).await;
    let error = error.as_str();
    assert!(
        error.contains("service_origins") && error.contains(&elsewhere.base_url()),
        "{error}"
    );
    assert!(elsewhere.score_requests().is_empty());
    assert!(elsewhere.token_requests().is_empty());
    assert!(s.platform.score_requests().is_empty());
}

/// Without `allow_private_addresses`, a registration's calls go to public
/// addresses only: a loopback platform gets no token request (the address
/// is checked before anything is sent), and the delivery is parked saying
/// which setting allows it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_addresses_need_the_registration_to_allow_them() {
    let platform = TestPlatform::start().await;
    let upstream = TestUpstream::start().await;
    let gw = start_gateway(
        &platform,
        &upstream,
        &grades_table("127.0.0.1:0", ""),
        GatewayOptions {
            platform_extra: "allow_private_addresses = false".into(),
            ..Default::default()
        },
    )
    .await;
    let s = Setup::new(platform, upstream, gw);
    launch_graded(&s, P1, "rl-1", 1).await;
    let user = username(&s, P1).await;
    accepted(&s, &event(&user, P1, 5.0, 10.0, MODIFIED)).await;
    let error = parked_error(&s).await;
    let error = error.as_str();
    assert!(error.contains("allow_private_addresses"), "{error}");
    assert!(s.platform.token_requests().is_empty());
    assert!(s.platform.score_requests().is_empty());
}

/// Learners of one resource link are delivered concurrently, yet the link's
/// line item is created once: the second delivery waits for the first
/// lookup instead of also finding nothing and creating a second gradebook
/// column.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_first_scores_of_one_link_create_one_line_item() {
    let s = setup().await;
    let container = format!("{}/lineitems", s.platform.base_url());
    let mut users = Vec::new();
    for n in 0..4 {
        let browser = Browser::new();
        let target = s.gw.target(P1);
        let auth = browser.login(&s.gw, &s.platform, &target).await;
        let mut claims = s.platform.claims(&auth, &target);
        claims["sub"] = json!(format!("learner-{n}"));
        claims["https://purl.imsglobal.org/spec/lti/claim/resource_link"] =
            json!({"id": "rl-shared", "title": "Shared quiz"});
        claims["https://purl.imsglobal.org/spec/lti-ags/claim/endpoint"] =
            ags_claim(None, Some(&container));
        let r = browser
            .post_launch(&s.gw, &s.platform.sign(&claims), &auth.state)
            .await;
        assert_eq!(r.status, 302, "{}", r.body);
        let (status, body) = browser.get(&s.gw, &display_path(P1)).await;
        assert_eq!(status, 200, "{body}");
        let token = s.upstream.last();
        let token = token.header("x-ltigate-assertion").expect("assertion");
        users.push(
            verify_assertion(&s.gw, token).await["sub"]
                .as_str()
                .expect("sub")
                .to_owned(),
        );
    }
    // Each lookup takes long enough for all four to be in flight at once.
    s.platform.stall_container(Duration::from_millis(300));
    for user in &users {
        accepted(&s, &event(user, P1, 1.0, 2.0, MODIFIED)).await;
    }
    landed(&s.platform, 4).await;
    assert_eq!(
        s.platform.lineitems().len(),
        1,
        "one line item for the link: {:#?}",
        s.platform.lineitem_requests()
    );
}
