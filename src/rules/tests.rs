use super::*;
use crate::content::ContentPath;
use crate::path::normalize;
use crate::session::{Grant, UserRef};

const COURSE: &str = "course-v1:OrgX+CS101+2026";
const UNIT: &str = "block-v1:OrgX+CS101+2026+type@vertical+block@u1";
const CHILD: &str = "block-v1:OrgX+CS101+2026+type@problem+block@p1";
const OTHER_COURSE_BLOCK: &str = "block-v1:OrgX+CS999+2026+type@problem+block@p9";

fn rule(scope: &str, path: &str, methods: Option<&[&str]>) -> Rule {
    let methods: Option<Vec<String>> = methods.map(|m| m.iter().map(|s| (*s).to_owned()).collect());
    Rule::parse(scope, path, methods.as_deref()).expect("rule")
}

fn openedx_rules() -> Vec<Rule> {
    vec![
        rule("usage", "/xblock/{usage_key}", Some(&["GET"])),
        rule(
            "usage",
            "/courses/{course_key}/xblock/{usage_key}/handler/**",
            None,
        ),
        rule(
            "course",
            "/courses/{course_key}/xblock/{block_in_course}/handler/**",
            None,
        ),
        rule("course", "/{asset_in_course}", Some(&["GET"])),
        rule(
            "course",
            "/assets/courseware/*/*/{asset_in_course}/**",
            Some(&["GET"]),
        ),
        rule(
            "course",
            "/c4x/{course_org}/{course_number}/asset/**",
            Some(&["GET"]),
        ),
        rule("public", "/static/**", Some(&["GET"])),
        rule("public", "/event", Some(&["POST"])),
    ]
}

fn session(expires: Option<u64>) -> Session {
    let content = ContentPath::new(
        CourseKey::parse(COURSE).expect("course"),
        UsageKey::parse(UNIT).expect("usage"),
    )
    .expect("content");
    Session {
        user: UserRef {
            issuer: "i".into(),
            client_id: "c".into(),
            sub: "s".into(),
        },
        created_at: 0,
        expires_at: 10_000,
        host_cookie: true,
        grants: vec![Grant {
            content,
            granted_at: 0,
            launch_id: String::new(),
            expires_at: expires,
            launch: crate::testing::launch_context(),
        }],
    }
}

fn check(method: Method, raw: &str, s: Option<&Session>, now: u64) -> Decision {
    let path = normalize(raw).expect("normal path");
    decide(&openedx_rules(), &method, &path, s, now)
}

#[test]
fn scopes() {
    let s = session(None);
    let allow = |m: Method, p: &str| matches!(check(m, p, Some(&s), 100), Decision::Allow { .. });
    assert!(allow(Method::GET, &format!("/xblock/{UNIT}")));
    assert!(
        !allow(Method::POST, &format!("/xblock/{UNIT}")),
        "method-limited"
    );
    assert!(
        !allow(Method::GET, &format!("/xblock/{CHILD}")),
        "usage scope is the launched key only"
    );
    assert!(allow(
        Method::POST,
        &format!("/courses/{COURSE}/xblock/{UNIT}/handler/xmodule_handler/problem_check")
    ));
    assert!(allow(
        Method::POST,
        &format!("/courses/{COURSE}/xblock/{CHILD}/handler/publish_completion")
    ));
    assert!(!allow(
        Method::POST,
        &format!("/courses/course-v1:OrgX+CS999+2026/xblock/{OTHER_COURSE_BLOCK}/handler/x")
    ));
    assert!(
        !allow(
            Method::POST,
            &format!("/courses/{COURSE}/xblock/{OTHER_COURSE_BLOCK}/handler/x")
        ),
        "block must be in the course"
    );
    assert!(allow(
        Method::GET,
        "/asset-v1:OrgX+CS101+2026+type@asset+block@logo.png"
    ));
    assert!(allow(
        Method::GET,
        "/assets/courseware/v1/abc123/asset-v1:OrgX+CS101+2026+type@asset+block/images/x.png"
    ));
    assert!(!allow(
        Method::GET,
        "/asset-v1:OrgX+CS999+2026+type@asset+block@logo.png"
    ));
    assert!(allow(Method::GET, "/c4x/OrgX/CS101/asset/logo.png"));
    assert!(!allow(Method::GET, "/c4x/OrgX/CS999/asset/logo.png"));
    assert!(allow(Method::GET, "/static/js/i18n/en/djangojs.js"));
    assert!(allow(Method::HEAD, "/static/x.css"), "HEAD follows GET");
    assert!(allow(Method::POST, "/event"));
    for denied in [
        "/admin",
        "/login",
        "/dashboard",
        "/courses/x/xqueue/y",
        "/eventx",
        "/static",
    ] {
        assert_eq!(
            check(Method::GET, denied, Some(&s), 100),
            Decision::Outside,
            "{denied}"
        );
    }
    assert_eq!(
        check(
            Method::POST,
            &format!("/courses/{COURSE}/xqueue/1/{CHILD}/score_update"),
            Some(&s),
            100
        ),
        Decision::Outside
    );
}

#[test]
fn sessions_and_expiry() {
    let display = format!("/xblock/{UNIT}");
    assert_eq!(check(Method::GET, &display, None, 100), Decision::Relaunch);
    let s = session(Some(500));
    assert!(matches!(
        check(Method::GET, &display, Some(&s), 499),
        Decision::Allow { .. }
    ));
    assert_eq!(
        check(Method::GET, &display, Some(&s), 500),
        Decision::Relaunch,
        "nothing live"
    );
    let mut two = session(Some(500));
    let mut live = two.grants[0].clone();
    live.content = ContentPath::new(
        CourseKey::parse("course-v1:OrgX+CS999+2026").expect("c"),
        UsageKey::parse(OTHER_COURSE_BLOCK).expect("u"),
    )
    .expect("content");
    live.expires_at = None;
    two.grants.push(live);
    assert_eq!(
        check(Method::GET, &display, Some(&two), 600),
        Decision::Expired
    );
    assert_eq!(
        check(Method::GET, "/admin", Some(&two), 600),
        Decision::Outside
    );
}

#[test]
fn bad_rules_are_refused() {
    for (scope, path, field) in [
        ("everything", "/x", "scope"),
        ("usage", "/xblock/{course_key}", "path"),
        ("course", "/xblock/{usage_key}", "path"),
        ("course", "/static/**", "path"),
        ("public", "/xblock/{usage_key}", "path"),
        ("public", "static/**", "path"),
        ("public", "/static/**/x", "path"),
        ("public", "/static/{unknown}", "path"),
        ("public", "/static/../admin", "path"),
        ("public", "/static/a*b", "path"),
        ("public", "//x", "path"),
    ] {
        let err = Rule::parse(scope, path, None).expect_err(path);
        assert_eq!(err.0, field, "{scope} {path}");
    }
    assert_eq!(
        Rule::parse("public", "/event", Some(&["PO ST".to_owned()]))
            .expect_err("method")
            .0,
        "methods"
    );
}
