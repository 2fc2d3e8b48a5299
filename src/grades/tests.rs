//! Grade passback, driven on the [`Grades`] service itself: launches are
//! recorded with [`Grades::record_launch`] and score events accepted with
//! [`Grades::accept_score`], on a real embedded store with a real asserter.
//! No socket, no TOML; nothing is delivered (the worker is not run).

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value, json};

use super::queue::{Score, State};
use super::{Grades, GradesConfig, LINEITEM_SCOPE, Lms, SCORE_SCOPE, ScoreError};
use crate::assertion::{Asserter, AssertionConfig};
use crate::client::HttpClient;
use crate::clock::{Clock, ManualClock};
use crate::content::{ContentPath, CourseKey, UsageKey};
use crate::jwks::JwksConfig;
use crate::keys::ToolKeys;
use crate::registry::Registry;
use crate::session::{LaunchContext, UserRef};
use crate::store::{Namespace, Store};

const ISSUER: &str = "https://platform.example";
const COURSE: &str = "course-v1:O+C+R";
const PROBLEM: &str = "block-v1:O+C+R+type@problem+block@p1";
const SEQUENCE: &str = "block-v1:O+C+R+type@sequential+block@s1";
const LINEITEM: &str = "https://platform.example/lineitems/1";
const DELAY: u64 = 45;

struct Fixture {
    grades: Grades,
    store: Arc<dyn Store>,
    _dir: tempfile::TempDir,
}

fn fixture() -> Fixture {
    let clock: Arc<dyn Clock> = ManualClock::new();
    let (store, dir) = crate::testing::embedded_store(clock.clone());
    let key = Arc::new(crate::testing::rsa_key("assertion-key"));
    let asserter = Arc::new(Asserter::new(
        AssertionConfig {
            header: http::HeaderName::from_static("x-ltigate-assertion"),
            audience: "openedx".into(),
            key: "assertion-key".into(),
            ttl_sec: 300,
            username_key: b"0123456789abcdef-username-key".to_vec(),
            identity_headers: false,
        },
        key,
        "https://gw.example".into(),
        clock.clone(),
    ));
    let jwks = JwksConfig {
        cache_ttl: Duration::from_secs(300),
        min_refetch_interval: Duration::from_secs(60),
        fetch_timeout: Duration::from_secs(5),
    };
    // Accepting a score needs no registration; only delivery looks one up.
    let registry = Arc::new(Registry::new(&[], &ToolKeys::new(vec![]), &jwks));
    let config = GradesConfig {
        listen: "127.0.0.1:0".parse().expect("addr"),
        token: "score-api-token".into(),
        aggregate_delay_sec: DELAY,
        max_attempts: 5,
        composite_score_url: "{upstream}/api/grades/{username}/{usage_key}".into(),
        resource_ttl_sec: 86_400,
        request_timeout: Duration::from_secs(5),
        poll_interval: Duration::from_secs(30),
        concurrent_per_platform: 4,
        concurrent_total: 32,
    };
    let lms = Lms {
        asserter,
        origin: "http://lms.invalid".into(),
        url: "http://lms.invalid".parse().expect("url"),
        host: None,
    };
    let grades = Grades::new(
        config,
        store.clone(),
        clock,
        HttpClient::default(),
        registry,
        lms,
    );
    Fixture {
        grades,
        store,
        _dir: dir,
    }
}

fn user(sub: &str) -> UserRef {
    UserRef {
        issuer: ISSUER.into(),
        client_id: "tool-1".into(),
        sub: sub.into(),
    }
}

fn content(usage: &str) -> ContentPath {
    ContentPath::new(
        CourseKey::parse(COURSE).expect("course"),
        UsageKey::parse(usage).expect("usage"),
    )
    .expect("content")
}

impl Fixture {
    /// Records `sub`'s launch of `PROBLEM` as resource link `rl-1`, graded.
    async fn graded_launch(&self, sub: &str) {
        self.grades
            .record_launch(
                &user(sub),
                &content(PROBLEM),
                &launch("rl-1", &[SCORE_SCOPE]),
            )
            .await
            .expect("record the launch");
    }
}

/// A launch of resource link `link` whose AGS claim grants `scopes`.
fn launch(link: &str, scopes: &[&str]) -> LaunchContext {
    LaunchContext {
        resource_link: Some(json!({ "id": link })),
        ags_endpoint: Some(json!({ "scope": scopes, "lineitem": LINEITEM })),
        ..crate::testing::launch_context()
    }
}

/// A score event for `PROBLEM`, naming the learner by LTI identity.
fn score_event(sub: &str, earned: f64, ancestors: &[&str]) -> Map<String, Value> {
    let event = json!({
        "lti": { "issuer": ISSUER, "client_id": "tool-1", "sub": sub },
        "course_key": COURSE,
        "usage_key": PROBLEM,
        "earned": earned,
        "possible": 2.0,
        "modified": "2026-11-27T11:00:00.25+01:00",
        "ancestors": ancestors,
    });
    event.as_object().expect("object").clone()
}

impl Fixture {
    async fn queue_len(&self) -> usize {
        self.grades.deliveries(false).await.expect("list").len()
    }
}

#[tokio::test]
async fn a_score_for_a_graded_launch_queues_one_leaf_delivery_due_now() {
    let f = fixture();
    f.graded_launch("learner-1").await;

    let before = f.grades.clock.now();
    let queued = f
        .grades
        .accept_score(&score_event("learner-1", 1.5, &[]))
        .await
        .expect("accepted");
    let after = f.grades.clock.now();
    assert_eq!(queued.len(), 1, "{queued:?}");
    assert_eq!(queued[0].kind, "leaf");
    assert!((before..=after).contains(&queued[0].due_at), "{queued:?}");

    let listed = f.grades.deliveries(false).await.expect("list");
    assert_eq!(listed.len(), 1);
    let d = &listed[0];
    assert_eq!(d.id, queued[0].id);
    assert_eq!(d.due_at, Some(queued[0].due_at));
    assert_eq!(
        d.delivery.score,
        Score::Leaf {
            earned: 1.5,
            possible: 2.0
        }
    );
    assert_eq!(d.delivery.state, State::Pending);
    assert_eq!(d.delivery.timestamp, "2026-11-27T10:00:00.250Z");
    assert_eq!(d.delivery.resource.sub, "learner-1");
    assert_eq!(d.delivery.resource.lineitem.as_deref(), Some(LINEITEM));
}

#[tokio::test]
async fn a_newer_score_by_username_supersedes_the_pending_one() {
    let f = fixture();
    let learner = user("learner-1");
    f.grades
        .record_launch(&learner, &content(PROBLEM), &launch("rl-1", &[SCORE_SCOPE]))
        .await
        .expect("record the launch");
    let first = f
        .grades
        .accept_score(&score_event("learner-1", 0.5, &[]))
        .await
        .expect("first");
    // The same learner, named by the username the LMS knows them by.
    let mut by_username = score_event("learner-1", 2.0, &[]);
    by_username.remove("lti");
    by_username.insert("username".into(), json!(f.grades.usernames.of(&learner)));
    let second = f.grades.accept_score(&by_username).await.expect("second");

    assert_eq!(first[0].id, second[0].id, "one delivery per resource");
    let listed = f.grades.deliveries(false).await.expect("list");
    assert_eq!(listed.len(), 1, "the pending delivery was replaced");
    assert_eq!(
        listed[0].delivery.score,
        Score::Leaf {
            earned: 2.0,
            possible: 2.0
        }
    );
}

#[tokio::test]
async fn a_graded_ancestor_gets_a_composite_delivery_after_the_delay() {
    let f = fixture();
    let learner = user("learner-1");
    f.grades
        .record_launch(&learner, &content(PROBLEM), &launch("rl-p", &[SCORE_SCOPE]))
        .await
        .expect("record the launch");
    f.grades
        .record_launch(
            &learner,
            &content(SEQUENCE),
            &launch("rl-s", &[SCORE_SCOPE]),
        )
        .await
        .expect("record the launch");

    let queued = f
        .grades
        .accept_score(&score_event("learner-1", 1.0, &[SEQUENCE]))
        .await
        .expect("accepted");
    let kinds: Vec<&str> = queued.iter().map(|q| q.kind).collect();
    assert_eq!(kinds, ["leaf", "composite"], "{queued:?}");
    assert_eq!(queued[1].due_at, queued[0].due_at + DELAY);

    let listed = f.grades.deliveries(false).await.expect("list");
    let composite = listed
        .iter()
        .find(|l| l.id == queued[1].id)
        .expect("the composite delivery is stored");
    assert_eq!(composite.delivery.score, Score::Composite);
    assert_eq!(composite.delivery.resource.usage_key.as_str(), SEQUENCE);
    assert_eq!(composite.due_at, Some(queued[1].due_at));
}

#[tokio::test]
async fn an_unknown_field_is_refused_before_anything_is_queued() {
    let f = fixture();
    f.graded_launch("learner-1").await;
    let mut event = score_event("learner-1", 1.0, &[]);
    event.insert("score".into(), json!(1.0));

    let refused = f.grades.accept_score(&event).await;
    assert!(
        matches!(&refused, Err(ScoreError::Invalid { field, .. }) if field == "score"),
        "{refused:?}"
    );
    assert_eq!(f.queue_len().await, 0);
}

#[tokio::test]
async fn a_score_for_a_learner_without_a_graded_launch_is_refused() {
    let f = fixture();
    // A launch that grants line items but not scores records no graded resource.
    f.grades
        .record_launch(
            &user("learner-1"),
            &content(PROBLEM),
            &launch("rl-1", &[LINEITEM_SCOPE]),
        )
        .await
        .expect("record the launch");
    assert_eq!(
        f.store.count(Namespace::GradedUser).await.expect("count"),
        0
    );

    for sub in ["learner-1", "never-launched"] {
        let refused = f.grades.accept_score(&score_event(sub, 1.0, &[])).await;
        assert!(
            matches!(refused, Err(ScoreError::UnknownUser)),
            "{sub}: {refused:?}"
        );
    }
    assert_eq!(f.queue_len().await, 0);
}
