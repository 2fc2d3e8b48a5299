//! Block access after a launch: `{block_in_course}` rules (XBlock handlers,
//! chromeless renders) open only the launched block and what lies under it,
//! as the LMS's Course Blocks API says (a real test LMS API serving the
//! catalog's trees, through a real gateway in front of a recording LMS), and
//! only blocks the registration's launch gate would allow.
//!
//! The catalog's CS101 (tests/support/lms_api.rs): course → ch1 → s1 → v1
//! → {p1 problem, h1 html}, and course → ch2 → s2 → v2 → {vid1 video, p2
//! problem}.

mod support;

use support::lms_api::{self, CLIENT_ID, CLIENT_SECRET, CS101, TestLmsApi};
use support::*;

fn key(kind: &str, id: &str) -> String {
    lms_api::usage(CS101, kind, id)
}

/// A handler URL of block `usage` in CS101.
fn handler(usage: &str) -> String {
    format!("/courses/{CS101}/xblock/{usage}/handler/xmodule_handler/problem_check")
}

struct Setup {
    platform: TestPlatform,
    lms: TestLmsApi,
    upstream: TestUpstream,
    gw: Gateway,
    browser: Browser,
}

/// A gateway in front of a recording LMS, reading block trees from a test
/// LMS API; `block_access` and the `[platforms.gate]` lines as given.
async fn start(block_access: &str, gate: &str) -> Setup {
    let platform = TestPlatform::start().await;
    let lms = TestLmsApi::start().await;
    let upstream = TestUpstream::start().await;
    let shipped = include_str!("../gateway.toml");
    let rules = &shipped[shipped
        .find("\n[[rules]]\n")
        .expect("gateway.toml ships [[rules]]")
        + 1..];
    let extra = format!(
        "[upstream]\nurl = \"{}\"\nblock_access = \"{block_access}\"\n\n\
         [lms_api]\nurl = \"{}\"\nclient_id = \"{CLIENT_ID}\"\nclient_secret = \"{CLIENT_SECRET}\"\n\n\
         [assertion]\nusername_key = \"{USERNAME_KEY}\"\n\n{rules}",
        upstream.url(),
        lms.url(),
    );
    let opts = GatewayOptions {
        platform_extra: if gate.is_empty() {
            String::new()
        } else {
            format!("[platforms.gate]\n{gate}\n")
        },
        extra,
        ..Default::default()
    };
    let gw = Gateway::start_with(&platform, opts).await;
    Setup {
        platform,
        lms,
        upstream,
        gw,
        browser: Browser::new(),
    }
}

impl Setup {
    async fn launch(&self, usage: &str) {
        let r = self.browser.launch(&self.gw, &self.platform, usage).await;
        assert_eq!(r.status, 302, "launch of {usage}: {}", r.body);
    }

    /// POSTs to `path`; the status and body, and whether the LMS saw it.
    async fn post(&self, path: &str) -> (u16, String, bool) {
        let before = self.upstream.count();
        let r = self
            .browser
            .http
            .post(self.gw.url(path))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("answer=1")
            .send()
            .await
            .expect("POST");
        let status = r.status().as_u16();
        let body = r.text().await.expect("body");
        let forwarded = self.upstream.count() > before;
        (status, body, forwarded)
    }

    #[track_caller]
    fn refused(&self, (status, body, forwarded): (u16, String, bool), code: u16, reason: &str) {
        assert_eq!(status, code, "{body}");
        assert!(
            body.contains(&format!("<code>{reason}</code>")),
            "expected {reason}: {body}"
        );
        assert!(!forwarded, "a refused request reached the LMS");
    }
}

/// After a launch of unit v1, its children's handlers pass; a block of
/// another unit of the same course is refused with 403 `not_granted` and
/// never reaches the LMS, as is a render of v1's own sequence (above it).
/// (Before, any block of the launched course was open.)
#[tokio::test]
async fn only_the_launched_subtree_is_open() {
    let s = start("subtree", "").await;
    s.launch(&key("vertical", "v1")).await;

    for child in [
        key("problem", "p1"),
        key("html", "h1"),
        key("vertical", "v1"),
    ] {
        let (status, body, forwarded) = s.post(&handler(&child)).await;
        assert_eq!((status, forwarded), (200, true), "{child}: {body}");
    }
    s.refused(
        s.post(&handler(&key("problem", "p2"))).await,
        403,
        "not_granted",
    );
    let (status, body) = s
        .browser
        .get(&s.gw, &format!("/xblock/{}", key("sequential", "s1")))
        .await;
    assert_eq!(status, 403, "the parent sequence's render: {body}");
    // One read of the tree served all of it.
    assert_eq!(s.lms.blocks_calls(), 1);
}

/// The registration's block filter applies to the blocks under a launched
/// one: with `block_filter = ["html", "vertical"]`, a launched unit's html
/// child is open and its problem child is refused, as a launch of that
/// problem is. (Before, the problem's `problem_check` went through under
/// the unit's grant.)
#[tokio::test]
async fn the_launch_gate_applies_under_a_launched_block() {
    let s = start(
        "subtree",
        &format!("allowed_courses = [\"{CS101}\"]\nblock_filter = [\"html\", \"vertical\"]"),
    )
    .await;
    let login = initiate_login(
        &s.browser.http,
        &s.gw.url("/lti/1p3/login/"),
        &s.platform,
        &s.gw.target(&key("problem", "p1")),
    )
    .await;
    assert_eq!(login.status(), 403, "a launch of the problem is refused");
    s.launch(&key("vertical", "v1")).await;
    let (status, body, forwarded) = s.post(&handler(&key("html", "h1"))).await;
    assert_eq!((status, forwarded), (200, true), "{body}");
    s.refused(
        s.post(&handler(&key("problem", "p1"))).await,
        403,
        "not_granted",
    );
}

/// A learner with two launches in one course reaches the subtrees of both.
#[tokio::test]
async fn every_launched_subtree_of_the_session_is_open() {
    let s = start("subtree", "").await;
    s.launch(&key("vertical", "v1")).await;
    s.launch(&key("vertical", "v2")).await;
    for child in [key("problem", "p1"), key("problem", "p2")] {
        let (status, body, forwarded) = s.post(&handler(&child)).await;
        assert_eq!((status, forwarded), (200, true), "{child}: {body}");
    }
}

/// When the tree cannot be read, the request is refused with a 503 page
/// that says why, and nothing reaches the LMS; once the LMS API answers
/// again, the same request passes. The launched block itself needs no tree.
#[tokio::test]
async fn an_unreadable_tree_fails_closed() {
    let s = start("subtree", "").await;
    s.launch(&key("vertical", "v1")).await;
    s.lms.set_failing(true);
    let p1 = handler(&key("problem", "p1"));
    let refused = s.post(&p1).await;
    assert!(
        refused.1.contains("could not read the course") && refused.1.contains("Try again"),
        "{}",
        refused.1
    );
    s.refused(refused, 503, "course_structure_unavailable");
    let (status, body, forwarded) = s.post(&handler(&key("vertical", "v1"))).await;
    assert_eq!((status, forwarded), (200, true), "{body}");

    s.lms.set_failing(false);
    // A failed read pauses the next one for a few seconds.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let (status, body, forwarded) = s.post(&p1).await;
        if status == 200 {
            assert!(forwarded);
            break;
        }
        assert_eq!(status, 503, "{body}");
        assert!(
            std::time::Instant::now() < deadline,
            "the tree was never read again"
        );
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
}

/// `block_access = "course"` is the plugin's behaviour, as an explicit
/// opt-in: any block of the launched course is open, and no tree is read.
#[tokio::test]
async fn course_wide_access_is_an_explicit_opt_in() {
    let s = start("course", "").await;
    s.launch(&key("vertical", "v1")).await;
    let (status, body, forwarded) = s.post(&handler(&key("problem", "p2"))).await;
    assert_eq!((status, forwarded), (200, true), "{body}");
    assert_eq!(s.lms.blocks_calls(), 0);
}
