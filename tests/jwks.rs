//! Fetching the platform's JWKS under load and faults, through a real gateway
//! and a test platform whose JWKS endpoint can fail, be missing or hang: one
//! fetch at a time per key set, a rate limit on unknown kids that still lets a
//! real key rotation through, back-off while the endpoint fails, and cached
//! keys served while a refresh hangs. Fetches are counted at the platform.
//!
//! The wall-clock bounds below are hang detectors (a launch that queued behind
//! a 5 s fetch would blow them by seconds), not performance figures.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use support::platform::{JwksFault, SigningKey};
use support::*;

async fn start(jwks: Option<&str>) -> (Arc<TestPlatform>, Arc<Gateway>) {
    let platform = TestPlatform::start().await;
    let opts = GatewayOptions {
        jwks: jwks.map(str::to_owned),
        ..GatewayOptions::default()
    };
    let gw = Gateway::start_with(&platform, opts).await;
    (Arc::new(platform), Arc::new(gw))
}

/// A login whose launch is ready to post: the browser, the id token, the state.
struct Ready {
    browser: Browser,
    token: String,
    state: String,
}

/// A launch signed with the platform's active key.
async fn real(platform: &TestPlatform, gw: &Gateway) -> Ready {
    let browser = Browser::new();
    let target = gw.target(USAGE);
    let auth = browser.login(gw, platform, &target).await;
    let token = platform.sign(&platform.claims(&auth, &target));
    Ready {
        browser,
        token,
        state: auth.state,
    }
}

/// A launch signed by a key the platform never published, under `kid`.
async fn forged(platform: &TestPlatform, gw: &Gateway, rogue: &SigningKey, kid: &str) -> Ready {
    let browser = Browser::new();
    let target = gw.target(USAGE);
    let auth = browser.login(gw, platform, &target).await;
    let token = rogue.sign_raw(
        &json!({"alg": "RS256", "typ": "JWT", "kid": kid}),
        &platform.claims(&auth, &target),
    );
    Ready {
        browser,
        token,
        state: auth.state,
    }
}

/// Posts every launch at once; each result comes with how long it took.
async fn post_all(gw: &Arc<Gateway>, launches: Vec<Ready>) -> Vec<(LaunchResult, Duration)> {
    let mut set = tokio::task::JoinSet::new();
    for (i, ready) in launches.into_iter().enumerate() {
        let gw = gw.clone();
        set.spawn(async move {
            let began = Instant::now();
            let result = ready
                .browser
                .post_launch(&gw, &ready.token, &ready.state)
                .await;
            (i, result, began.elapsed())
        });
    }
    let mut results: Vec<_> = set.join_all().await;
    results.sort_by_key(|(i, _, _)| *i);
    results.into_iter().map(|(_, r, d)| (r, d)).collect()
}

async fn post(gw: &Arc<Gateway>, ready: Ready) -> LaunchResult {
    ready
        .browser
        .post_launch(gw, &ready.token, &ready.state)
        .await
}

fn forged_kids(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("forged-kid-{i}")).collect()
}

// Today: 30 launches, 30 fetches (each takes the fetch lock in turn and finds
// no key set, so nothing rate-limits it).
#[tokio::test]
async fn forged_kids_against_a_failing_or_missing_jwks_make_one_fetch() {
    let rogue = SigningKey::generate("rogue");
    for status in [500, 404] {
        let (platform, gw) = start(None).await;
        platform.set_jwks_fault(JwksFault::Status(status));
        let mut launches = Vec::new();
        for kid in forged_kids(30) {
            launches.push(forged(&platform, &gw, &rogue, &kid).await);
        }
        for (r, _) in post_all(&gw, launches).await {
            r.assert_rejected(502, "key_set_unavailable");
        }
        // More forged kids, and a real launch, one after another: the
        // failure backs off every fetch, so none of them fetches again.
        for kid in forged_kids(5) {
            post(&gw, forged(&platform, &gw, &rogue, &kid).await)
                .await
                .assert_rejected(502, "key_set_unavailable");
        }
        post(&gw, real(&platform, &gw).await)
            .await
            .assert_rejected(502, "key_set_unavailable");
        assert_eq!(
            platform.jwks_fetches(),
            1,
            "a JWKS answering {status} is fetched once, not once per launch"
        );
    }
}

// Today: the fetches run one after another behind a lock, each until its
// timeout, so the last of these 11 launches finishes after about 11 s.
#[tokio::test]
async fn a_hanging_jwks_is_fetched_once_for_all_waiting_launches() {
    let (platform, gw) = start(Some("min_refetch_interval_sec = 60\nfetch_timeout_sec = 1")).await;
    platform.set_jwks_fault(JwksFault::Hang(Duration::from_secs(60)));
    let rogue = SigningKey::generate("rogue");
    let mut launches = Vec::new();
    for kid in forged_kids(10) {
        launches.push(forged(&platform, &gw, &rogue, &kid).await);
    }
    launches.push(real(&platform, &gw).await);
    let results = tokio::time::timeout(Duration::from_secs(4), post_all(&gw, launches))
        .await
        .expect("every launch waits for one fetch (1 s timeout), not for a queue of them");
    for (r, took) in &results {
        r.assert_rejected(502, "key_set_unavailable");
        assert!(took < &Duration::from_secs(3), "a launch took {took:?}");
    }
    assert_eq!(platform.jwks_fetches(), 1);
}

// Today: past the TTL every launch refetches under one lock, each paying the
// 5 s fetch timeout: these 8 finish at 5, 10, ..., 40 s.
#[tokio::test]
async fn past_the_ttl_a_hanging_jwks_does_not_hold_up_launches_with_known_kids() {
    let (platform, gw) = start(Some("min_refetch_interval_sec = 60\ncache_ttl_sec = 1")).await;
    assert_eq!(post(&gw, real(&platform, &gw).await).await.status, 302);
    assert_eq!(platform.jwks_fetches(), 1);

    platform.set_jwks_fault(JwksFault::Hang(Duration::from_secs(60)));
    // Let the 1 s TTL pass (a config in whole seconds; the gateway's JWKS
    // cache runs on tokio's clock, which a test with real sockets cannot pause).
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let mut launches = Vec::new();
    for _ in 0..8 {
        launches.push(real(&platform, &gw).await);
    }
    let results = tokio::time::timeout(Duration::from_secs(4), post_all(&gw, launches))
        .await
        .expect("launches with a cached kid do not wait for the 5 s fetch timeout");
    for (r, took) in &results {
        assert_eq!(r.status, 302, "{}", r.body);
        assert!(took < &Duration::from_secs(3), "a launch took {took:?}");
    }
    // One refresh runs in the background for all of them, and later launches
    // while it hangs do not start another.
    assert_eq!(post(&gw, real(&platform, &gw).await).await.status, 302);
    assert_eq!(platform.jwks_fetches(), 2, "one background refresh");
}

// Today: the forged kid spends the rate limit (10 s by default), and the
// rotated key is refused with `unknown_kid` until it passes.
#[tokio::test]
async fn a_key_rotation_right_after_a_forged_kid_is_picked_up() {
    // The defaults: no [jwks] settings at all.
    let (platform, gw) = start(Some("")).await;
    assert_eq!(post(&gw, real(&platform, &gw).await).await.status, 302);
    assert_eq!(platform.jwks_fetches(), 1);

    let rogue = SigningKey::generate("rogue");
    post(&gw, forged(&platform, &gw, &rogue, "forged-kid").await)
        .await
        .assert_rejected(400, "unknown_kid");
    assert_eq!(platform.jwks_fetches(), 2, "an unknown kid refetches once");

    platform.rotate_key("platform-key-2");
    let r = post(&gw, real(&platform, &gw).await).await;
    assert_eq!(r.status, 302, "the rotated key is picked up: {}", r.body);
    assert_eq!(platform.jwks_fetches(), 3);

    // A flood of forged kids now: they share one fetch at the next slot.
    let mut launches = Vec::new();
    for kid in forged_kids(30) {
        launches.push(forged(&platform, &gw, &rogue, &kid).await);
    }
    for (r, _) in post_all(&gw, launches).await {
        r.assert_rejected(400, "unknown_kid");
    }
    assert!(
        platform.jwks_fetches() <= 4,
        "30 forged kids make at most one fetch, made {}",
        platform.jwks_fetches() - 3
    );
}

// Today: every launch refetches at once while the JWKS fails.
#[tokio::test]
async fn a_failing_jwks_is_retried_after_a_back_off_and_recovers() {
    let (platform, gw) = start(Some("min_refetch_interval_sec = 1")).await;
    platform.set_jwks_fault(JwksFault::Status(500));
    post(&gw, real(&platform, &gw).await)
        .await
        .assert_rejected(502, "key_set_unavailable");
    post(&gw, real(&platform, &gw).await)
        .await
        .assert_rejected(502, "key_set_unavailable");
    assert_eq!(
        platform.jwks_fetches(),
        1,
        "the second launch is backed off"
    );

    platform.set_jwks_fault(JwksFault::None);
    // The first back-off is at most min_refetch_interval_sec (1 s).
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let r = post(&gw, real(&platform, &gw).await).await;
    assert_eq!(r.status, 302, "{}", r.body);
    assert_eq!(platform.jwks_fetches(), 2);
}
