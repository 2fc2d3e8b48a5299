//! One suite of store semantics, run against both backends: the embedded redb
//! store (in a temp dir) and the Redis store (on a real `redis-server`).
//!
//! Every property is a generic `async fn` over a [`Backend`]; the `suite!`
//! macro instantiates each one twice, once per backend. Time moves with a
//! [`ManualClock`], never with sleeps. Backend-specific properties
//! (persistence across reopen for redb, TTL on every key for Redis) follow the
//! shared suite.

mod support;

use std::sync::Arc;
use std::time::Duration;

use ltigate::EmbeddedStore;
use ltigate::RedisStore;
use ltigate::{Clock, ManualClock};
use ltigate::{Namespace, Store, UpdateFn};
use support::RedisServer;
use tokio::sync::Barrier;

/// The Redis key prefix the suite uses.
const PREFIX: &str = "test:";

/// Keeps a backend's resources alive for the duration of a test.
enum Guard {
    Dir(#[allow(dead_code)] tempfile::TempDir),
    Redis(RedisServer),
}

/// A store under test, its clock, and what keeps it running.
struct Backend {
    store: Arc<dyn Store>,
    clock: Arc<ManualClock>,
    guard: Guard,
}

impl Backend {
    fn embedded() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let clock = ManualClock::new();
        let store = EmbeddedStore::open(
            &dir.path().join("store.redb"),
            clock.clone() as Arc<dyn Clock>,
        )
        .expect("open embedded store");
        Self {
            store: Arc::new(store),
            clock,
            guard: Guard::Dir(dir),
        }
    }

    fn redis() -> Self {
        let redis = RedisServer::start();
        let clock = ManualClock::new();
        let store = RedisStore::open(&redis.url(), PREFIX, clock.clone() as Arc<dyn Clock>)
            .expect("open redis store");
        Self {
            store: Arc::new(store),
            clock,
            guard: Guard::Redis(redis),
        }
    }

    fn now(&self) -> u64 {
        self.clock.now()
    }

    /// The `redis-server` behind a Redis backend, to stop or restart it.
    fn redis_server(&mut self) -> &mut RedisServer {
        let Guard::Redis(redis) = &mut self.guard else {
            unreachable!("a redis backend")
        };
        redis
    }
}

/// A counter stored as 8 big-endian bytes.
fn counter(bytes: Option<&[u8]>) -> u64 {
    bytes.map_or(0, |b| {
        u64::from_be_bytes(b.try_into().expect("a counter is 8 bytes"))
    })
}

// ---------------------------------------------------------------------------
// The shared suite.
// ---------------------------------------------------------------------------

async fn put_get_delete_round_trip(b: &Backend) {
    let s = &b.store;
    let exp = b.now() + 600;
    assert_eq!(s.get(Namespace::Session, "k").await.expect("get"), None);
    s.put(Namespace::Session, "k", b"hello".to_vec(), exp)
        .await
        .expect("put");
    assert_eq!(
        s.get(Namespace::Session, "k").await.expect("get"),
        Some(b"hello".to_vec())
    );
    // Reading does not consume.
    assert_eq!(
        s.get(Namespace::Session, "k").await.expect("get"),
        Some(b"hello".to_vec())
    );
    // put replaces.
    s.put(Namespace::Session, "k", b"world".to_vec(), exp)
        .await
        .expect("put again");
    assert_eq!(
        s.get(Namespace::Session, "k").await.expect("get"),
        Some(b"world".to_vec())
    );
    // Empty and binary values survive intact.
    s.put(Namespace::Session, "empty", Vec::new(), exp)
        .await
        .expect("put empty");
    assert_eq!(
        s.get(Namespace::Session, "empty").await.expect("get"),
        Some(Vec::new())
    );
    let binary: Vec<u8> = (0..=255).collect();
    s.put(Namespace::Session, "bin", binary.clone(), exp)
        .await
        .expect("put binary");
    assert_eq!(
        s.get(Namespace::Session, "bin").await.expect("get"),
        Some(binary)
    );
    s.delete(Namespace::Session, "k").await.expect("delete");
    assert_eq!(s.get(Namespace::Session, "k").await.expect("get"), None);
    // Deleting what is not there is fine.
    s.delete(Namespace::Session, "k")
        .await
        .expect("delete absent");
    s.delete(Namespace::Session, "never-written")
        .await
        .expect("delete never written");
    // Only the deleted key went.
    assert_eq!(
        s.get(Namespace::Session, "empty").await.expect("get"),
        Some(Vec::new())
    );
}

async fn namespaces_are_separate(b: &Backend) {
    let s = &b.store;
    let exp = b.now() + 600;
    s.put(Namespace::LoginState, "same", b"state".to_vec(), exp)
        .await
        .expect("put state");
    assert_eq!(
        s.get(Namespace::Session, "same").await.expect("get"),
        None,
        "a login state is not a session"
    );
    s.put(Namespace::Session, "same", b"session".to_vec(), exp)
        .await
        .expect("put session");
    assert_eq!(
        s.get(Namespace::LoginState, "same").await.expect("get"),
        Some(b"state".to_vec())
    );
    assert_eq!(
        s.get(Namespace::Session, "same").await.expect("get"),
        Some(b"session".to_vec())
    );
    // take and delete touch one namespace only.
    assert_eq!(
        s.take(Namespace::LoginState, "same").await.expect("take"),
        Some(b"state".to_vec())
    );
    assert_eq!(
        s.get(Namespace::Session, "same").await.expect("get"),
        Some(b"session".to_vec())
    );
    s.put(Namespace::LoginState, "same", b"state2".to_vec(), exp)
        .await
        .expect("put state");
    s.delete(Namespace::Session, "same").await.expect("delete");
    assert_eq!(
        s.get(Namespace::LoginState, "same").await.expect("get"),
        Some(b"state2".to_vec())
    );
    // put_new in one namespace ignores a live value in the other.
    assert!(
        s.put_new(Namespace::Session, "same", b"fresh".to_vec(), exp)
            .await
            .expect("put_new")
    );
    // A key that looks like it names the other namespace stays in its own.
    s.put(Namespace::Session, "state:x", b"tricky".to_vec(), exp)
        .await
        .expect("put");
    assert_eq!(s.get(Namespace::LoginState, "x").await.expect("get"), None);
}

async fn values_are_invisible_after_expiry(b: &Backend) {
    let s = &b.store;
    let now = b.now();
    s.put(Namespace::Session, "short", b"s".to_vec(), now + 100)
        .await
        .expect("put");
    s.put(Namespace::Session, "long", b"l".to_vec(), now + 10_000)
        .await
        .expect("put");
    for ns in SINGLE_USE {
        s.put(ns, "st", b"t".to_vec(), now + 100)
            .await
            .expect("put");
    }
    b.clock.advance(50);
    assert_eq!(
        s.get(Namespace::Session, "short").await.expect("get"),
        Some(b"s".to_vec()),
        "still live half-way"
    );
    b.clock.advance(60);
    assert_eq!(
        s.get(Namespace::Session, "short").await.expect("get"),
        None,
        "expired"
    );
    for ns in SINGLE_USE {
        assert_eq!(
            s.take(ns, "st").await.expect("take"),
            None,
            "{ns:?}: an expired single-use value cannot be taken"
        );
    }
    assert_eq!(
        s.get(Namespace::Session, "long").await.expect("get"),
        Some(b"l".to_vec()),
        "a longer expiry is unaffected"
    );
    // A value written already expired is never visible.
    let now = b.now();
    s.put(Namespace::Session, "past", b"p".to_vec(), now - 1)
        .await
        .expect("put past");
    assert_eq!(s.get(Namespace::Session, "past").await.expect("get"), None);
    // The expiry is exclusive: a value expiring at `now` is gone.
    s.put(Namespace::Session, "edge", b"e".to_vec(), now)
        .await
        .expect("put edge");
    assert_eq!(s.get(Namespace::Session, "edge").await.expect("get"), None);
    // put replaces the expiry along with the value.
    let now = b.now();
    s.put(Namespace::Session, "long", b"l2".to_vec(), now + 100)
        .await
        .expect("shorten");
    b.clock.advance(200);
    assert_eq!(
        s.get(Namespace::Session, "long").await.expect("get"),
        None,
        "the replacing put's shorter expiry applies"
    );
}

/// The single-use namespaces: the embedded store keeps login states in
/// memory and picker tokens in redb, so both kinds of table are covered.
const SINGLE_USE: [Namespace; 2] = [Namespace::LoginState, Namespace::DeepLinking];

async fn take_returns_the_value_once(b: &Backend) {
    for ns in SINGLE_USE {
        take_returns_the_value_once_in(b, ns).await;
    }
}

async fn take_returns_the_value_once_in(b: &Backend, ns: Namespace) {
    let s = &b.store;
    let exp = b.now() + 600;
    s.put(ns, "once", b"v".to_vec(), exp).await.expect("put");
    assert_eq!(s.take(ns, "once").await.expect("take"), Some(b"v".to_vec()));
    assert_eq!(s.take(ns, "once").await.expect("take"), None);
    assert_eq!(s.get(ns, "once").await.expect("get"), None);
    assert_eq!(s.take(ns, "absent").await.expect("take"), None);
    // A taken key can be written again, and taken again, once.
    s.put(ns, "once", b"v2".to_vec(), exp).await.expect("put");
    assert_eq!(
        s.take(ns, "once").await.expect("take"),
        Some(b"v2".to_vec())
    );
    assert_eq!(s.take(ns, "once").await.expect("take"), None);
}

async fn concurrent_takes_have_one_winner(b: &Backend) {
    const TAKERS: usize = 24;
    for (round, ns) in (0..10).zip(SINGLE_USE.into_iter().cycle()) {
        let key = format!("race-{round}");
        let value = format!("secret-{round}").into_bytes();
        b.store
            .put(ns, &key, value.clone(), b.now() + 600)
            .await
            .expect("put");
        let barrier = Arc::new(Barrier::new(TAKERS));
        let tasks: Vec<_> = (0..TAKERS)
            .map(|_| {
                let store = b.store.clone();
                let barrier = barrier.clone();
                let key = key.clone();
                tokio::spawn(async move {
                    barrier.wait().await;
                    store.take(ns, &key).await
                })
            })
            .collect();
        let mut winners = Vec::new();
        for task in tasks {
            if let Some(v) = task.await.expect("join").expect("take") {
                winners.push(v);
            }
        }
        assert_eq!(
            winners.len(),
            1,
            "round {round} ({ns:?}): exactly one of {TAKERS} concurrent takes gets the value"
        );
        assert_eq!(winners[0], value);
        assert_eq!(b.store.get(ns, &key).await.expect("get"), None);
    }
}

async fn put_new_writes_only_without_a_live_value(b: &Backend) {
    let s = &b.store;
    let exp = b.now() + 100;
    assert!(
        s.put_new(Namespace::Session, "n", b"first".to_vec(), exp)
            .await
            .expect("put_new"),
        "absent: written"
    );
    assert!(
        !s.put_new(Namespace::Session, "n", b"second".to_vec(), exp + 1000)
            .await
            .expect("put_new"),
        "live: not written"
    );
    assert_eq!(
        s.get(Namespace::Session, "n").await.expect("get"),
        Some(b"first".to_vec()),
        "the refused put_new changed nothing"
    );
    // The refused put_new did not extend the expiry either.
    b.clock.advance(150);
    assert_eq!(s.get(Namespace::Session, "n").await.expect("get"), None);
    // After a delete it writes again.
    s.put(Namespace::Session, "d", b"x".to_vec(), b.now() + 100)
        .await
        .expect("put");
    s.delete(Namespace::Session, "d").await.expect("delete");
    assert!(
        s.put_new(Namespace::Session, "d", b"y".to_vec(), b.now() + 100)
            .await
            .expect("put_new after delete")
    );
    assert_eq!(
        s.get(Namespace::Session, "d").await.expect("get"),
        Some(b"y".to_vec())
    );
}

async fn put_new_writes_over_an_expired_value(b: &Backend) {
    let s = &b.store;
    s.put(Namespace::Session, "e", b"old".to_vec(), b.now() + 100)
        .await
        .expect("put");
    b.clock.advance(150);
    assert_eq!(
        s.get(Namespace::Session, "e").await.expect("get"),
        None,
        "the old value has expired"
    );
    assert!(
        s.put_new(Namespace::Session, "e", b"new".to_vec(), b.now() + 100)
            .await
            .expect("put_new"),
        "put_new must write when the only value under the key has expired \
         (no live value exists)"
    );
    assert_eq!(
        s.get(Namespace::Session, "e").await.expect("get"),
        Some(b"new".to_vec())
    );
}

async fn update_reads_modifies_and_writes(b: &Backend) {
    let s = &b.store;
    let exp = b.now() + 600;
    // Absent: the closure sees None.
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    let f: UpdateFn = Arc::new(move |cur| {
        log.lock().expect("lock").push(cur.map(<[u8]>::to_vec));
        let mut v = cur.map(<[u8]>::to_vec).unwrap_or_default();
        v.push(b'+');
        Some((v, exp))
    });
    assert!(
        s.update(Namespace::Session, "u", f.clone())
            .await
            .expect("update")
    );
    assert_eq!(
        s.get(Namespace::Session, "u").await.expect("get"),
        Some(b"+".to_vec())
    );
    assert!(s.update(Namespace::Session, "u", f).await.expect("update"));
    assert_eq!(
        s.get(Namespace::Session, "u").await.expect("get"),
        Some(b"++".to_vec())
    );
    let seen = seen.lock().expect("lock").clone();
    assert_eq!(seen.first(), Some(&None));
    assert_eq!(seen.last(), Some(&Some(b"+".to_vec())));

    // The closure sets the new expiry.
    let short = b.now() + 50;
    assert!(
        s.update(
            Namespace::Session,
            "u",
            Arc::new(move |cur| Some((cur?.to_vec(), short)))
        )
        .await
        .expect("update")
    );
    b.clock.advance(100);
    assert_eq!(s.get(Namespace::Session, "u").await.expect("get"), None);

    // An expired value looks absent to the closure.
    let exp = b.now() + 600;
    assert!(
        s.update(
            Namespace::Session,
            "u",
            Arc::new(move |cur| {
                assert_eq!(cur, None, "an expired value is not shown to update");
                Some((b"reborn".to_vec(), exp))
            })
        )
        .await
        .expect("update over expired")
    );
    assert_eq!(
        s.get(Namespace::Session, "u").await.expect("get"),
        Some(b"reborn".to_vec())
    );
}

async fn update_returning_none_writes_nothing(b: &Backend) {
    let s = &b.store;
    let nothing: UpdateFn = Arc::new(|_| None);
    // Absent stays absent.
    assert!(
        !s.update(Namespace::Session, "none", nothing.clone())
            .await
            .expect("update")
    );
    assert_eq!(s.get(Namespace::Session, "none").await.expect("get"), None);
    assert_eq!(s.count(Namespace::Session).await.expect("count"), 0);
    // A present value is left exactly as it was, expiry included.
    let exp = b.now() + 100;
    s.put(Namespace::Session, "none", b"keep".to_vec(), exp)
        .await
        .expect("put");
    assert!(
        !s.update(Namespace::Session, "none", nothing)
            .await
            .expect("update")
    );
    assert_eq!(
        s.get(Namespace::Session, "none").await.expect("get"),
        Some(b"keep".to_vec())
    );
    b.clock.advance(150);
    assert_eq!(
        s.get(Namespace::Session, "none").await.expect("get"),
        None,
        "the untouched value kept its expiry"
    );
}

async fn concurrent_updates_all_land(b: &Backend) {
    const WRITERS: usize = 30;
    let exp = b.now() + 600;
    let barrier = Arc::new(Barrier::new(WRITERS));
    let tasks: Vec<_> = (0..WRITERS)
        .map(|_| {
            let store = b.store.clone();
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                store
                    .update(
                        Namespace::Session,
                        "counter",
                        Arc::new(move |cur| Some(((counter(cur) + 1).to_be_bytes().to_vec(), exp))),
                    )
                    .await
            })
        })
        .collect();
    for task in tasks {
        assert!(
            task.await.expect("join").expect("update"),
            "every increment reports a write"
        );
    }
    let value = b
        .store
        .get(Namespace::Session, "counter")
        .await
        .expect("get");
    assert_eq!(
        counter(value.as_deref()),
        WRITERS as u64,
        "all {WRITERS} concurrent increments landed"
    );
}

async fn count_counts_live_values_of_one_namespace(b: &Backend) {
    let s = &b.store;
    assert_eq!(s.count(Namespace::Session).await.expect("count"), 0);
    assert_eq!(s.count(Namespace::LoginState).await.expect("count"), 0);
    let now = b.now();
    for i in 0..5 {
        s.put(Namespace::Session, &format!("s{i}"), vec![i], now + 1000)
            .await
            .expect("put");
    }
    for i in 0..3 {
        s.put(Namespace::Session, &format!("short{i}"), vec![i], now + 100)
            .await
            .expect("put");
    }
    for i in 0..2 {
        s.put(Namespace::LoginState, &format!("t{i}"), vec![i], now + 1000)
            .await
            .expect("put");
    }
    assert_eq!(s.count(Namespace::Session).await.expect("count"), 8);
    assert_eq!(s.count(Namespace::LoginState).await.expect("count"), 2);
    b.clock.advance(200);
    assert_eq!(
        s.count(Namespace::Session).await.expect("count"),
        5,
        "expired values are not counted"
    );
    s.delete(Namespace::Session, "s0").await.expect("delete");
    assert_eq!(
        s.take(Namespace::LoginState, "t0").await.expect("take"),
        Some(vec![0])
    );
    assert_eq!(s.count(Namespace::Session).await.expect("count"), 4);
    assert_eq!(s.count(Namespace::LoginState).await.expect("count"), 1);
}

async fn ping_answers(b: &Backend) {
    b.store.ping().await.expect("ping");
    // And the store still works after a ping.
    b.store
        .put(Namespace::Session, "p", b"v".to_vec(), b.now() + 10)
        .await
        .expect("put");
    b.store.ping().await.expect("ping again");
}

/// Claims `now` with no group busy, as (id, payload).
async fn claim(b: &Backend, busy: &[&str]) -> Option<(String, Vec<u8>)> {
    let busy: Vec<String> = busy.iter().map(|g| (*g).to_owned()).collect();
    let now = b.now();
    b.store
        .queue_claim(now, now + 15, &busy)
        .await
        .expect("claim")
        .map(|q| (q.id, q.payload))
}

/// The queue hands out the earliest due item, once, and nothing not yet due.
async fn queue_claims_in_due_order_once(b: &Backend) {
    let s = &b.store;
    let now = b.now();
    s.queue_put("late", "p1", b"3".to_vec(), now - 1)
        .await
        .expect("put");
    s.queue_put("early", "p2", b"1".to_vec(), now - 30)
        .await
        .expect("put");
    s.queue_put("middle", "p1", b"2".to_vec(), now - 10)
        .await
        .expect("put");
    s.queue_put("future", "p2", b"4".to_vec(), now + 60)
        .await
        .expect("put");
    let order: Vec<String> = [
        claim(b, &[]).await,
        claim(b, &[]).await,
        claim(b, &[]).await,
        claim(b, &[]).await,
    ]
    .into_iter()
    .map(|c| c.map_or_else(|| "-".to_owned(), |(id, _)| id))
    .collect();
    assert_eq!(order, ["early", "middle", "late", "-"]);
    let listed: Vec<(String, String)> = s
        .queue_list()
        .await
        .expect("list")
        .into_iter()
        .map(|q| (q.id, q.group))
        .collect();
    assert_eq!(listed.len(), 4, "claimed items stay listed: {listed:?}");
    assert!(listed.contains(&("future".to_owned(), "p2".to_owned())));
}

/// A claim skips the groups it is told are busy, however early their items
/// are due: a platform at its limit does not hold up the others.
async fn queue_claim_skips_busy_groups(b: &Backend) {
    let s = &b.store;
    let now = b.now();
    for i in 0..5 {
        s.queue_put(&format!("slow{i}"), "slow", b"s".to_vec(), now - 100 + i)
            .await
            .expect("put");
    }
    s.queue_put("fast", "fast", b"f".to_vec(), now)
        .await
        .expect("put");
    assert_eq!(
        claim(b, &["slow"]).await.map(|(id, _)| id).as_deref(),
        Some("fast")
    );
    assert_eq!(claim(b, &["slow", "fast"]).await, None);
    assert_eq!(
        claim(b, &["fast"]).await.map(|(id, _)| id).as_deref(),
        Some("slow0")
    );
    let got = s.queue_get("slow1").await.expect("get").expect("item");
    assert_eq!(got.group, "slow");
}

/// A lease keeps an item from a second claim until it ends; a renewal
/// extends it; once it ends the item is claimable again (a dead worker's
/// item is picked up).
async fn queue_leases_end_unless_renewed(b: &Backend) {
    let s = &b.store;
    let now = b.now();
    s.queue_put("a", "g", b"x".to_vec(), now)
        .await
        .expect("put");
    s.queue_put("b", "g", b"y".to_vec(), now)
        .await
        .expect("put");
    let a = s.queue_claim(now, now + 15, &[]).await.expect("claim");
    let c = s.queue_claim(now, now + 15, &[]).await.expect("claim");
    let (a, c) = (a.expect("a"), c.expect("b"));
    assert_eq!((a.id.as_str(), c.id.as_str()), ("a", "b"));
    assert!(s.queue_renew("a", now + 30).await.expect("renew"));
    b.clock.advance(16);
    let after = b.now();
    let again = s.queue_claim(after, after + 15, &[]).await.expect("claim");
    assert_eq!(
        again.map(|q| q.id).as_deref(),
        Some("b"),
        "b's lease ended; a's was renewed"
    );
    assert!(
        s.queue_claim(after, after + 15, &[])
            .await
            .expect("claim")
            .is_none()
    );
    assert!(s.queue_finish("a", b"x", None).await.expect("finish"));
    assert!(
        !s.queue_renew("a", after + 30).await.expect("renew"),
        "a finished item has no lease to renew"
    );
    assert!(!s.queue_renew("never", after + 30).await.expect("renew"));
}

/// A newer payload put while the old one is in flight is not handed out
/// until the holder finishes (one id is never in flight twice); the holder
/// then finds it superseded, and the new payload is due at once.
async fn queue_put_on_a_leased_item_waits_for_its_holder(b: &Backend) {
    let s = &b.store;
    let now = b.now();
    s.queue_put("r", "g", b"old".to_vec(), now)
        .await
        .expect("put");
    let held = claim(b, &[]).await.expect("claimed");
    assert_eq!(held.1, b"old");
    s.queue_put("r", "g", b"new".to_vec(), now)
        .await
        .expect("put newer");
    assert_eq!(
        claim(b, &[]).await,
        None,
        "the newer payload waits while the old one is in flight"
    );
    assert!(
        !s.queue_finish("r", b"old", None).await.expect("finish"),
        "the holder finds its payload superseded"
    );
    assert_eq!(
        claim(b, &[]).await,
        Some(("r".to_owned(), b"new".to_vec())),
        "the newer payload is due once the holder is done"
    );
    // Finished with a next payload: it is due when asked, and not before.
    assert!(
        s.queue_finish("r", b"new", Some((b"retry".to_vec(), now + 20)))
            .await
            .expect("finish")
    );
    assert_eq!(claim(b, &[]).await, None);
    b.clock.advance(20);
    assert_eq!(
        claim(b, &[]).await,
        Some(("r".to_owned(), b"retry".to_vec()))
    );
    assert!(s.queue_finish("r", b"retry", None).await.expect("finish"));
    assert_eq!(s.queue_get("r").await.expect("get"), None);
    assert!(s.queue_list().await.expect("list").is_empty());
}

/// A payload put while its item was leased asks for a later due time (a
/// composite score's delay); when the holder dies and its lease runs out,
/// that due time still holds: the next claim does not take it early.
async fn queue_a_dead_holders_item_keeps_the_due_time_put_asked(b: &Backend) {
    let s = &b.store;
    let now = b.now();
    s.queue_put("r", "g", b"first".to_vec(), now)
        .await
        .expect("put");
    assert!(claim(b, &[]).await.is_some());
    s.queue_put("r", "g", b"later".to_vec(), now + 900)
        .await
        .expect("put while leased");
    // The holder dies: no finish. Its 15 s lease runs out.
    b.clock.advance(16);
    assert_eq!(
        claim(b, &[]).await,
        None,
        "not before the due time its put asked"
    );
    b.clock.advance(900);
    assert_eq!(
        claim(b, &[]).await,
        Some(("r".to_owned(), b"later".to_vec()))
    );
}

/// Moving an item to another group (a re-registered platform) leaves no
/// trace in the old one.
async fn queue_put_moves_an_item_between_groups(b: &Backend) {
    let s = &b.store;
    let now = b.now();
    s.queue_put("r", "one", b"1".to_vec(), now)
        .await
        .expect("put");
    s.queue_put("r", "two", b"2".to_vec(), now)
        .await
        .expect("put");
    assert_eq!(claim(b, &["two"]).await, None);
    assert_eq!(
        claim(b, &["one"]).await,
        Some(("r".to_owned(), b"2".to_vec()))
    );
    assert_eq!(s.queue_list().await.expect("list").len(), 1);
}

/// Instantiates every shared property once per backend.
macro_rules! suite {
    ($($name:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let backend = super::Backend::embedded();
                    super::$name(&backend).await;
                }
            )*
        }
        mod redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let backend = super::Backend::redis();
                    super::$name(&backend).await;
                }
            )*
        }
    };
}

suite!(
    put_get_delete_round_trip,
    namespaces_are_separate,
    values_are_invisible_after_expiry,
    take_returns_the_value_once,
    concurrent_takes_have_one_winner,
    put_new_writes_only_without_a_live_value,
    put_new_writes_over_an_expired_value,
    update_reads_modifies_and_writes,
    update_returning_none_writes_nothing,
    concurrent_updates_all_land,
    count_counts_live_values_of_one_namespace,
    ping_answers,
    queue_claims_in_due_order_once,
    queue_claim_skips_busy_groups,
    queue_leases_end_unless_renewed,
    queue_put_on_a_leased_item_waits_for_its_holder,
    queue_put_moves_an_item_between_groups,
    queue_a_dead_holders_item_keeps_the_due_time_put_asked,
);

// ---------------------------------------------------------------------------
// Backend-specific properties.
// ---------------------------------------------------------------------------

/// Drops the last reference to `store` and waits until its background tasks
/// have let go of it too, so that its file can be opened again.
async fn close(store: Arc<EmbeddedStore>) {
    let weak = Arc::downgrade(&store);
    drop(store);
    for _ in 0..200 {
        if weak.strong_count() == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the store is still referenced");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn embedded_keeps_data_across_close_and_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("nested").join("store.redb");
    let clock = ManualClock::new();
    let now = clock.now();
    {
        let store =
            Arc::new(EmbeddedStore::open(&path, clock.clone() as Arc<dyn Clock>).expect("open"));
        store
            .put(Namespace::Session, "kept", b"session".to_vec(), now + 1000)
            .await
            .expect("put");
        store
            .put(Namespace::DeepLinking, "picker", b"dl".to_vec(), now + 1000)
            .await
            .expect("put");
        store
            .put(Namespace::LoginState, "state", b"st".to_vec(), now + 1000)
            .await
            .expect("put");
        store
            .put(Namespace::Session, "short", b"x".to_vec(), now + 100)
            .await
            .expect("put");
        store
            .put(Namespace::Session, "gone", b"x".to_vec(), now + 1000)
            .await
            .expect("put");
        store
            .delete(Namespace::Session, "gone")
            .await
            .expect("delete");
        store
            .update(
                Namespace::Session,
                "counter",
                Arc::new(move |cur| Some(((counter(cur) + 7).to_be_bytes().to_vec(), now + 1000))),
            )
            .await
            .expect("update");
        close(store).await;
    }
    let store = EmbeddedStore::open(&path, clock.clone() as Arc<dyn Clock>).expect("reopen");
    assert_eq!(
        store.get(Namespace::Session, "kept").await.expect("get"),
        Some(b"session".to_vec())
    );
    assert_eq!(
        store.get(Namespace::Session, "gone").await.expect("get"),
        None,
        "a delete is durable too"
    );
    assert_eq!(
        counter(
            store
                .get(Namespace::Session, "counter")
                .await
                .expect("get")
                .as_deref()
        ),
        7
    );
    assert_eq!(store.count(Namespace::Session).await.expect("count"), 3);
    assert_eq!(store.count(Namespace::DeepLinking).await.expect("count"), 1);
    // Login states are kept in memory: a restart drops the logins in flight.
    assert_eq!(store.count(Namespace::LoginState).await.expect("count"), 0);
    assert_eq!(
        store
            .get(Namespace::LoginState, "state")
            .await
            .expect("get"),
        None
    );
    // Expiries survive the reopen as well.
    clock.advance(200);
    assert_eq!(
        store.get(Namespace::Session, "short").await.expect("get"),
        None
    );
    assert_eq!(store.count(Namespace::Session).await.expect("count"), 2);
    // The single-use value is still single-use.
    assert_eq!(
        store
            .take(Namespace::DeepLinking, "picker")
            .await
            .expect("take"),
        Some(b"dl".to_vec())
    );
    assert_eq!(
        store
            .take(Namespace::DeepLinking, "picker")
            .await
            .expect("take"),
        None
    );
}

/// Every key under the suite's prefix, with its PTTL in milliseconds.
async fn redis_key_ttls(url: &str) -> Vec<(String, i64)> {
    let client = ::redis::Client::open(url).expect("client");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    let mut keys: Vec<String> = Vec::new();
    let mut cursor: u64 = 0;
    loop {
        let (next, batch): (u64, Vec<String>) = ::redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{PREFIX}*"))
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut conn)
            .await
            .expect("scan");
        keys.extend(batch);
        if next == 0 {
            break;
        }
        cursor = next;
    }
    keys.sort();
    let mut out = Vec::new();
    for key in keys {
        let pttl: i64 = ::redis::cmd("PTTL")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .expect("pttl");
        out.push((key, pttl));
    }
    out
}

/// `count` counts its own prefix's keys only, even when the prefix holds
/// glob characters that would match another deployment's keys.
#[tokio::test]
async fn redis_count_takes_the_key_prefix_literally() {
    let redis = RedisServer::start();
    let clock = ManualClock::new();
    let now = clock.now();
    let open = |prefix: &str| {
        RedisStore::open(&redis.url(), prefix, clock.clone() as Arc<dyn Clock>).expect("open")
    };
    let globby = open("app[1]*:");
    let other = open("app1x:");
    other
        .put(Namespace::Session, "theirs", b"v".to_vec(), now + 60)
        .await
        .expect("put");
    assert_eq!(other.count(Namespace::Session).await.expect("count"), 1);
    assert_eq!(globby.count(Namespace::Session).await.expect("count"), 0);
    globby
        .put(Namespace::Session, "mine", b"v".to_vec(), now + 60)
        .await
        .expect("put");
    assert_eq!(globby.count(Namespace::Session).await.expect("count"), 1);
    assert_eq!(other.count(Namespace::Session).await.expect("count"), 1);
}

/// Clients connected to the Redis server, other than the one asking.
async fn redis_other_clients(url: &str) -> usize {
    let client = ::redis::Client::open(url).expect("client");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    let list: String = ::redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(&mut conn)
        .await
        .expect("client list");
    list.lines().count() - 1
}

/// Over TLS, the store trusts the CA it is given, and only that: a server
/// whose certificate chains to no trusted root gets no commands.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_store_over_tls_trusts_the_given_ca_and_no_other() {
    let redis = RedisServer::start_tls();
    let clock = ManualClock::new();
    let ca = redis.ca_pem.clone().expect("a TLS server");
    let store = RedisStore::open_with_ca(
        &redis.url(),
        PREFIX,
        Some(ca.as_bytes()),
        clock.clone() as Arc<dyn Clock>,
    )
    .expect("open");
    store
        .put(Namespace::Session, "k", b"v".to_vec(), clock.now() + 60)
        .await
        .expect("put over TLS");
    assert_eq!(
        store.take(Namespace::Session, "k").await.expect("take"),
        Some(b"v".to_vec())
    );

    // The public roots do not include the test CA.
    let untrusting =
        RedisStore::open(&redis.url(), PREFIX, clock.clone() as Arc<dyn Clock>).expect("open");
    let err = untrusting.ping().await.expect_err("an unknown issuer");
    assert!(
        matches!(&err, ltigate::StoreError::Unavailable(m) if m.contains("certificate")),
        "{err:?}"
    );
    // Nor does another CA.
    let other = RedisServer::start_tls();
    let wrong_ca = RedisStore::open_with_ca(
        &redis.url(),
        PREFIX,
        other.ca_pem.as_deref().map(str::as_bytes),
        clock as Arc<dyn Clock>,
    )
    .expect("open");
    assert!(wrong_ca.ping().await.is_err());
}

/// Each thread that uses the Redis store (as each of the gateway's serving
/// threads does, on a runtime of its own) gets its own connection, driven
/// by its own runtime, and sees what the others wrote.
#[test]
fn redis_store_gives_each_thread_its_own_connection() {
    let redis = RedisServer::start();
    let clock = ManualClock::new();
    let now = clock.now();
    let store =
        Arc::new(RedisStore::open(&redis.url(), PREFIX, clock as Arc<dyn Clock>).expect("open"));
    let on_own_runtime = |i: usize| {
        let store = store.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async {
                let mine = format!("thread-{i}");
                store
                    .put(
                        Namespace::Session,
                        &mine,
                        mine.clone().into_bytes(),
                        now + 60,
                    )
                    .await
                    .expect("put");
                for _ in 0..3 {
                    assert_eq!(
                        store.get(Namespace::Session, &mine).await.expect("get"),
                        Some(mine.clone().into_bytes())
                    );
                }
            });
            // Kept (not dropped), so that its connection stays open for the
            // count below.
            rt
        })
    };
    let threads: Vec<_> = (0..2).map(on_own_runtime).collect();
    let runtimes: Vec<_> = threads
        .into_iter()
        .map(|t| t.join().expect("thread"))
        .collect();
    let check = tokio::runtime::Runtime::new().expect("runtime");
    check.block_on(async {
        assert_eq!(
            redis_other_clients(&redis.url()).await,
            2,
            "one connection per thread that used the store"
        );
        for i in 0..2 {
            let key = format!("thread-{i}");
            assert_eq!(
                store.get(Namespace::Session, &key).await.expect("get"),
                Some(key.clone().into_bytes()),
                "another thread's write is visible"
            );
        }
    });
    drop(runtimes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_every_key_carries_a_ttl() {
    let b = Backend::redis();
    let Guard::Redis(redis) = &b.guard else {
        unreachable!("a redis backend")
    };
    let s = &b.store;
    let now = b.now();
    s.put(Namespace::Session, "put", b"v".to_vec(), now + 600)
        .await
        .expect("put");
    s.put(Namespace::LoginState, "state", b"v".to_vec(), now + 300)
        .await
        .expect("put");
    assert!(
        s.put_new(Namespace::Session, "put_new", b"v".to_vec(), now + 600)
            .await
            .expect("put_new")
    );
    // update on an absent key, then on a present one.
    let f: UpdateFn =
        Arc::new(move |cur| Some(((counter(cur) + 1).to_be_bytes().to_vec(), now + 600)));
    assert!(
        s.update(Namespace::Session, "update", f.clone())
            .await
            .expect("update")
    );
    assert!(
        s.update(Namespace::Session, "update", f)
            .await
            .expect("update")
    );
    // A value written already expired still gets a TTL.
    s.put(Namespace::Session, "past", b"v".to_vec(), now - 10)
        .await
        .expect("put past");

    let ttls = redis_key_ttls(&redis.url()).await;
    let names: Vec<&str> = ttls.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        names,
        [
            "test:session:past",
            "test:session:put",
            "test:session:put_new",
            "test:session:update",
            "test:state:state",
        ],
        "keys are namespaced under the prefix"
    );
    for (key, pttl) in &ttls {
        assert!(*pttl > 0, "{key} has no TTL (PTTL {pttl})");
    }
    let ttl = |name: &str| {
        ttls.iter()
            .find(|(k, _)| k == name)
            .map(|(_, t)| *t)
            .expect("key")
    };
    // The TTL follows the expiry (whole seconds, so allow a second of slack).
    for key in [
        "test:session:put",
        "test:session:put_new",
        "test:session:update",
    ] {
        let t = ttl(key);
        assert!(
            (598_000..=601_000).contains(&t),
            "{key}: PTTL {t} ms for an expiry 600 s away"
        );
    }
    let t = ttl("test:state:state");
    assert!(
        (298_000..=301_000).contains(&t),
        "state: PTTL {t} ms for an expiry 300 s away"
    );
    assert!(ttl("test:session:past") <= 1_000);
}

/// A Redis backend holding "k" = "v" for 10 minutes.
async fn redis_holding_k() -> Backend {
    let b = Backend::redis();
    b.store
        .put(Namespace::Session, "k", b"v".to_vec(), b.now() + 600)
        .await
        .expect("put");
    b
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_store_serves_at_once_after_a_restart_it_was_idle_through() {
    let mut b = redis_holding_k().await;
    // No command while Redis is away: the store's connection from before the
    // restart was closed under it, and its first command must not fail on it.
    b.redis_server().restart();
    let value = b
        .store
        .get(Namespace::Session, "k")
        .await
        .map_err(|e| format!("{e:?}"));
    assert_eq!(value, Ok(Some(b"v".to_vec())));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_store_answers_unavailable_when_redis_is_down_and_recovers() {
    let mut b = redis_holding_k().await;
    b.redis_server().stop();
    let err = b
        .store
        .get(Namespace::Session, "k")
        .await
        .expect_err("a stopped Redis cannot answer");
    assert!(
        matches!(err, ltigate::StoreError::Unavailable(_)),
        "{err:?}"
    );
    assert!(b.store.ping().await.is_err());
    // Each failure starts a new connection attempt in the background; let the
    // last one fail too, so the connection holds a refusal when Redis returns.
    tokio::time::sleep(Duration::from_secs(1)).await;
    b.redis_server().restart();
    // `restart` waits until Redis answers PING: the very first command after
    // it is served, not failed with the refusal left over from the outage.
    let value = b
        .store
        .get(Namespace::Session, "k")
        .await
        .map_err(|e| format!("{e:?}"));
    assert_eq!(
        value,
        Ok(Some(b"v".to_vec())),
        "the store works again after Redis restarts, with its data"
    );
}

/// A delivery leased by a gateway that then died (no queue_finish) is due
/// again as soon as the embedded store is reopened: one process owns the
/// file, so every lease found at open is a dead process's. Items that were
/// not leased keep their due times. (Before, the delivery waited for the
/// whole lease, about 300 s.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn embedded_reclaims_a_dead_process_leases_on_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("store.redb");
    let clock = ManualClock::new();
    let now = clock.now();
    {
        let store =
            Arc::new(EmbeddedStore::open(&path, clock.clone() as Arc<dyn Clock>).expect("open"));
        store
            .queue_put("leased", "", b"one".to_vec(), now)
            .await
            .expect("put");
        store
            .queue_put("later", "", b"two".to_vec(), now + 900)
            .await
            .expect("put");
        let claimed = store
            .queue_claim(now, now + 300, &[])
            .await
            .expect("claim")
            .expect("one due");
        assert_eq!(claimed.id, "leased");
        assert!(
            store
                .queue_claim(now, now + 300, &[])
                .await
                .expect("claim")
                .is_none()
        );
        // The process dies here, with the lease held.
        close(store).await;
    }
    let store = EmbeddedStore::open(&path, clock.clone() as Arc<dyn Clock>).expect("reopen");
    let again = store
        .queue_claim(now, now + 300, &[])
        .await
        .expect("claim")
        .expect("the dead process's lease was reclaimed at open");
    assert_eq!(
        (again.id.as_str(), again.payload.as_slice()),
        ("leased", &b"one"[..])
    );
    assert!(
        store
            .queue_claim(now, now + 300, &[])
            .await
            .expect("claim")
            .is_none(),
        "an item that was not leased keeps its due time"
    );
    assert_eq!(
        store
            .queue_get("later")
            .await
            .expect("get")
            .map(|q| q.due_at),
        Some(now + 900)
    );
    // A lease taken by this process is not reclaimed by anything but its end.
    assert!(
        store
            .queue_claim(now, now + 300, &[])
            .await
            .expect("claim")
            .is_none()
    );
}

/// A grade queue written before deliveries had groups (one `queue_due`
/// order table) is moved into group "" when the embedded store opens: its
/// items are claimed as before, and a newer put moves one to its group.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn embedded_opens_a_queue_written_before_groups() {
    const ITEMS: redb::TableDefinition<'_, &str, &[u8]> = redb::TableDefinition::new("queue_items");
    const DUE: redb::TableDefinition<'_, (u64, &str), ()> = redb::TableDefinition::new("queue_due");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("store.redb");
    let clock = ManualClock::new();
    let now = clock.now();
    {
        // The old layout: id → due (8 bytes, big-endian) + payload, and (due, id).
        let db = redb::Database::create(&path).expect("create");
        let tx = db.begin_write().expect("write");
        {
            let mut items = tx.open_table(ITEMS).expect("items");
            let mut due = tx.open_table(DUE).expect("due");
            for (id, at, payload) in [("old1", now - 5, &b"one"[..]), ("old2", now + 60, b"two")] {
                let mut entry = at.to_be_bytes().to_vec();
                entry.extend_from_slice(payload);
                items.insert(id, entry.as_slice()).expect("insert");
                due.insert((at, id), ()).expect("insert");
            }
        }
        tx.commit().expect("commit");
    }
    let store = EmbeddedStore::open(&path, clock.clone() as Arc<dyn Clock>).expect("open");
    let first = store
        .queue_claim(now, now + 15, &[])
        .await
        .expect("claim")
        .expect("the old item that is due");
    assert_eq!(
        (
            first.id.as_str(),
            first.group.as_str(),
            first.payload.as_slice()
        ),
        ("old1", "", &b"one"[..])
    );
    assert!(
        store
            .queue_claim(now, now + 15, &[])
            .await
            .expect("claim")
            .is_none(),
        "old2 keeps its due time"
    );
    store
        .queue_put("old2", "p", b"newer".to_vec(), now)
        .await
        .expect("put");
    let moved = store
        .queue_claim(now, now + 15, &[String::new()])
        .await
        .expect("claim")
        .expect("old2, now in group p");
    assert_eq!((moved.id.as_str(), moved.group.as_str()), ("old2", "p"));
    assert_eq!(store.queue_list().await.expect("list").len(), 2);
}

/// The same on Redis: items written with the old layout (a hash and one
/// sorted set, `<prefix>queue:due`) are group "" and claimed as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_serves_a_queue_written_before_groups() {
    let b = Backend::redis();
    let Guard::Redis(redis) = &b.guard else {
        unreachable!("a redis backend")
    };
    let now = b.now();
    let client = ::redis::Client::open(redis.url()).expect("client");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    for (id, at, payload) in [("old1", now - 5, "one"), ("old2", now + 60, "two")] {
        let () = ::redis::cmd("HSET")
            .arg(format!("{PREFIX}queue:items"))
            .arg(id)
            .arg(payload)
            .query_async::<i64>(&mut conn)
            .await
            .map(drop)
            .expect("hset");
        let () = ::redis::cmd("ZADD")
            .arg(format!("{PREFIX}queue:due"))
            .arg(at)
            .arg(id)
            .query_async::<i64>(&mut conn)
            .await
            .map(drop)
            .expect("zadd");
    }
    assert_eq!(
        claim(&b, &[]).await,
        Some(("old1".to_owned(), b"one".to_vec()))
    );
    assert_eq!(claim(&b, &[]).await, None, "old2 keeps its due time");
    b.store
        .queue_put("old2", "p", b"newer".to_vec(), now)
        .await
        .expect("put");
    assert_eq!(claim(&b, &["p"]).await, None);
    assert_eq!(
        claim(&b, &[""]).await,
        Some(("old2".to_owned(), b"newer".to_vec()))
    );
    let listed = b.store.queue_list().await.expect("list");
    assert_eq!(
        listed
            .iter()
            .map(|q| (q.id.as_str(), q.group.as_str()))
            .collect::<Vec<_>>(),
        [("old1", ""), ("old2", "p")]
    );
}
