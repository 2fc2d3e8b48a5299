//! Regression guard for the per-request hot paths (Criterion; `cargo bench`).
//! Figures are for comparing runs side by side on one machine, not targets.

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use http::{HeaderMap, HeaderValue, Method, header};
use ltigate::cookie;

fn shipped_rules() -> Vec<ltigate::Rule> {
    let text = include_str!("../gateway.toml");
    let start = text.find("\n[[rules]]\n").expect("shipped rules") + 1;
    #[derive(serde::Deserialize)]
    struct Rules {
        rules: Vec<Raw>,
    }
    #[derive(serde::Deserialize)]
    struct Raw {
        scope: String,
        path: String,
        methods: Option<Vec<String>>,
    }
    let parsed: Rules = toml::from_str(&text[start..]).expect("rules parse");
    parsed
        .rules
        .iter()
        .map(|r| ltigate::Rule::parse(&r.scope, &r.path, r.methods.as_deref()).expect("rule"))
        .collect()
}

const COURSE: &str = "course-v1:Bench+B1+2026";

fn session(grants: usize) -> ltigate::Session {
    use ltigate::{ContentPath, CourseKey, UsageKey};
    use ltigate::{Grant, LaunchContext, Session, UserRef};
    let grant = |i: usize| Grant {
        content: ContentPath::new(
            CourseKey::parse(COURSE).expect("course"),
            UsageKey::parse(&format!("block-v1:Bench+B1+2026+type@problem+block@p{i}"))
                .expect("usage"),
        )
        .expect("content"),
        granted_at: 0,
        launch_id: String::new(),
        expires_at: None,
        launch: LaunchContext {
            deployment_id: "d".into(),
            message_type: "LtiResourceLinkRequest".into(),
            name: Some("Bench Learner".into()),
            given_name: None,
            family_name: None,
            email: Some("bench@example.edu".into()),
            locale: None,
            roles: vec!["http://purl.imsglobal.org/vocab/lis/v2/membership#Learner".into()],
            context: None,
            resource_link: Some(serde_json::json!({"id": "rl"})),
            ags_endpoint: None,
        },
    };
    Session {
        user: UserRef {
            issuer: "https://bench".into(),
            client_id: "c".into(),
            sub: "s".into(),
        },
        created_at: 0,
        expires_at: u64::MAX / 2,
        grants: (0..grants).map(grant).collect(),
        host_cookie: true,
    }
}

fn gating(c: &mut Criterion) {
    let rules = shipped_rules();
    let s = session(3);
    let mut group = c.benchmark_group("gating");
    for (name, method, path) in [
        (
            "static",
            Method::GET,
            "/static/js/i18n/en/djangojs.js".to_owned(),
        ),
        (
            "display",
            Method::GET,
            "/xblock/block-v1:Bench+B1+2026+type@problem+block@p2".to_owned(),
        ),
        (
            "handler",
            Method::POST,
            format!(
                "/courses/{COURSE}/xblock/block-v1:Bench+B1+2026+type@problem+block@p9/handler/xmodule_handler/problem_check"
            ),
        ),
        ("denied", Method::GET, "/dashboard".to_owned()),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| {
                let normal = ltigate::normalize_path(black_box(&path)).expect("path");
                black_box(ltigate::decide(&rules, &method, &normal, Some(&s), 1))
            })
        });
    }
    group.finish();
}

fn cookie_and_session(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let store_path = dir.path().join("bench.redb");
    let (sessions, id) = runtime.block_on(async {
        let clock: Arc<dyn ltigate::Clock> = Arc::new(ltigate::SystemClock);
        let store: Arc<dyn ltigate::Store> =
            Arc::new(ltigate::EmbeddedStore::open(&store_path, clock.clone()).expect("store"));
        let config = ltigate::Config::parse(
            "[server]\npublic_url = \"http://127.0.0.1\"\nallow_http = true\n[[keys]]\nkid = \"k\"\nprivate_key_env = \"K\"\n",
            std::path::Path::new("bench.toml"),
            &HashMap::from([(
                "K".to_owned(),
                ltigate::generate_key("k").expect("key").private_pem,
            )]),
        )
        .expect("config");
        // `load` always reads the store (the cache is for `load_cached`):
        // this measures the store read itself.
        let sessions = ltigate::Sessions::new(
            store,
            clock,
            config.session.clone(),
            ltigate::StoreSharing::Private,
        );
        let s = session(1);
        let id = sessions
            .record_launch(None, s.user.clone(), s.grants[0].content.clone(), s.grants[0].launch.clone())
            .await
            .expect("session");
        (sessions, id)
    });
    let mut headers = HeaderMap::new();
    headers.insert(
        header::COOKIE,
        HeaderValue::from_str(&format!(
            "csrftoken=abc; sessionid=xyz; ltigate_session={id}"
        ))
        .expect("cookie"),
    );
    // The gated path looks up only the session cookie.
    c.bench_function("cookie_decode", |b| {
        b.iter(|| black_box(cookie(black_box(&headers), "ltigate_session")))
    });
    cookie_lookup_both_ways(c, &id);
    c.bench_function("session_lookup_embedded", |b| {
        b.iter(|| runtime.block_on(async { black_box(sessions.load(&id).await.expect("load")) }))
    });
}

/// The `cookie` crate's reading of the same lookup, for the comparison kept in
/// `cookies::pairs`: `Cookie::split_parse` over each header (made UTF-8 first,
/// lossily, as it takes a `&str`), then the same visible-ASCII filter on what
/// it returns.
fn crate_split_parse_one(headers: &HeaderMap, name: &str) -> Option<String> {
    let visible = |s: &str| {
        s.bytes()
            .all(|b| b == b' ' || b == b'\t' || b.is_ascii_graphic())
    };
    headers
        .get_all(header::COOKIE)
        .iter()
        .flat_map(|v| cookie::Cookie::split_parse(String::from_utf8_lossy(v.as_bytes())))
        .filter_map(Result::ok)
        .filter(|c| visible(c.name()) && visible(c.value()))
        .take(256)
        .find(|c| c.name() == name)
        .map(|c| c.value().to_owned())
}

/// The session-cookie lookup, ours and the crate's, on the short header above
/// and on a browser's header behind the gateway (the LMS's prefixed cookies,
/// its quoted `edx-user-info`, a login's state cookie, ours last).
fn cookie_lookup_both_ways(c: &mut Criterion, id: &str) {
    let short = format!("csrftoken=abc; sessionid=xyz; ltigate_session={id}");
    let browser = format!(
        "__Host-lms.csrftoken=Qm9vZ2xlQ1NSRlRva2VuMTIzNDU2Nzg5MDEy; \
         __Host-lms.sessionid=1|q3j4k5l6m7n8o9p0a1b2c3d4e5f6g7h8|Zm9vYmFy|0123456789abcdef; \
         __Host-lms.edxloggedin=true; \
         __Host-lms.edx-user-info=\"{{\\\"version\\\": 1\\054 \\\"username\\\": \\\"learner\\\"}}\"; \
         __Host-lms.openedx-language-preference=en; \
         ltigate_state_Zm9vYmFyYmF6=c3RhdGV2YWx1ZQ; ltigate_session={id}"
    );
    let mut group = c.benchmark_group("cookie_lookup");
    for (label, value) in [("short", short), ("browser", browser)] {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_str(&value).expect("cookie"),
        );
        assert_eq!(
            cookie(&headers, "ltigate_session"),
            crate_split_parse_one(&headers, "ltigate_session")
        );
        group.bench_function(format!("{label}/ours"), |b| {
            b.iter(|| black_box(cookie(black_box(&headers), "ltigate_session")))
        });
        group.bench_function(format!("{label}/cookie_split_parse"), |b| {
            b.iter(|| {
                black_box(crate_split_parse_one(
                    black_box(&headers),
                    "ltigate_session",
                ))
            })
        });
    }
    group.finish();
}

fn id_token(c: &mut Criterion) {
    let key = ltigate::generate_key("platform").expect("key");
    let tool =
        ltigate::ToolKey::from_pem("platform", None, key.private_pem.as_bytes()).expect("tool key");
    let now = 1_800_000_000u64;
    let token = tool
        .sign(&serde_json::json!({
            "iss": "https://bench", "aud": "c", "sub": "s", "iat": now, "exp": now + 300, "nonce": "n",
            "https://purl.imsglobal.org/spec/lti/claim/version": "1.3.0",
            "https://purl.imsglobal.org/spec/lti/claim/message_type": "LtiResourceLinkRequest",
        }))
        .expect("sign");
    let jwk = key.public_jwk;
    let (n, e) = (jwk["n"].as_str().expect("n"), jwk["e"].as_str().expect("e"));
    let platform_key = ltigate::PlatformKey::from_jwk_components(n, e).expect("platform key");
    let mut group = c.benchmark_group("id_token_verify");
    group.bench_function("ltigate", |b| {
        b.iter(|| {
            black_box(ltigate::verify_signature(black_box(&token), &platform_key).expect("verify"))
        })
    });
    // The baseline, side by side: jsonwebtoken's decode, which rebuilds the
    // RSA key from its components on every call.
    let decoding = jsonwebtoken::DecodingKey::from_rsa_components(n, e).expect("decoding key");
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.validate_exp = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    group.bench_function("jsonwebtoken_decode", |b| {
        b.iter(|| {
            black_box(
                jsonwebtoken::decode::<serde_json::Value>(
                    black_box(&token),
                    &decoding,
                    &validation,
                )
                .expect("verify"),
            )
        })
    });
    group.finish();
}

criterion_group!(benches, gating, cookie_and_session, id_token);
criterion_main!(benches);
