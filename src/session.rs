//! Gateway sessions and the grants they hold.
//!
//! Owns the session record, the grant model (a launched content path with its
//! own expiry and launch context) and the one fail-closed access check every
//! gated request goes through, [`Sessions::authorize`]: the caller says what
//! a session allows (a grant for this content path, or a rule's match), and
//! a refusal is only ever made on a fresh read of the store. A session
//! is created or extended only by a successful launch; nothing else mints one.
//! A session id is its creation time and 180 random bits (see
//! [`new_session_id`]); a client-supplied id is never adopted, only looked up.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use dashmap::DashMap;
use foldhash::fast::RandomState;
use serde::{Deserialize, Serialize};

use crate::clock::{Clock, UnixTime};
use crate::content::ContentPath;
use crate::store::{Namespace, Store, StoreError};
use crate::token::{is_token, random_token};

#[derive(Debug, Clone)]
pub struct SessionConfig {
    pub cookie_name: String,
    pub lifetime_sec: u64,
    /// When set, a grant lasts this long from its launch; otherwise as long as the session.
    pub access_length_sec: Option<u64>,
    pub login_state_ttl_sec: u64,
    pub leeway_sec: u64,
    pub partitioned_cookies: bool,
    pub max_grants: usize,
}

/// A new session id: the wall-clock time in microseconds as 13 upper-case
/// hex digits, then 30 characters of a [`random_token`] (180 random bits).
///
/// The random part makes it unguessable. The time prefix sorts ids by
/// creation (hex digits sort as their values, and the embedded store's
/// B-tree compares keys byte by byte), so a new session is inserted next to
/// the last one: the launches that share a commit dirty one leaf page
/// instead of one random leaf each. With random ids, the store's writer
/// thread spent 22-31 µs of CPU per launch, more as sessions accumulated;
/// with these, 15-17 µs (runs of 10,000 launches, side by side).
/// The prefix tells the holder of the cookie when the session began, which
/// the browser knows anyway. An id has the shape [`crate::token::is_token`] checks.
pub fn new_session_id(now: SystemTime) -> String {
    // 13 hex digits hold microseconds until the year 2112; past that the
    // ids wrap, still unique and unguessable, only no longer in order.
    const MICROS: u128 = (1 << 52) - 1;
    let micros = now
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_micros()
        & MICROS;
    format!("{micros:013X}{}", &random_token()[..30])
}

/// Who a session belongs to: one LTI user of one registration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRef {
    pub issuer: String,
    pub client_id: String,
    pub sub: String,
}

/// What the platform told us at launch, kept for the upstream assertion and
/// for grade passback.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LaunchContext {
    pub deployment_id: String,
    pub message_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub given_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locale: Option<String>,
    pub roles: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_link: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ags_endpoint: Option<serde_json::Value>,
}

/// Access to one launched content path.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Grant {
    pub content: ContentPath,
    pub granted_at: UnixTime,
    /// Unique per launch, so that anything derived from a launch (the
    /// upstream assertion) is never confused with a relaunch's.
    #[serde(default)]
    pub launch_id: String,
    /// `None`: the grant lasts as long as the session.
    pub expires_at: Option<UnixTime>,
    pub launch: LaunchContext,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Session {
    pub user: UserRef,
    pub created_at: UnixTime,
    pub expires_at: UnixTime,
    pub grants: Vec<Grant>,
}

impl Session {
    /// When `grant` stops giving access: its own expiry, capped by the session's.
    pub fn grant_expiry(&self, grant: &Grant) -> UnixTime {
        grant
            .expires_at
            .map_or(self.expires_at, |g| g.min(self.expires_at))
    }

    /// Adds (or renews) a grant, dropping expired ones and, past `max`, the oldest.
    fn add_grant(&mut self, grant: Grant, now: UnixTime, max: usize) {
        self.grants.retain(|g| g.content != grant.content);
        let expires = self.expires_at;
        self.grants
            .retain(|g| g.expires_at.map_or(expires, |e| e.min(expires)) > now);
        self.grants.push(grant);
        if self.grants.len() > max {
            let excess = self.grants.len() - max;
            self.grants.drain(..excess);
        }
    }
}

/// Why the display path was refused.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    #[error("no session cookie")]
    NoSession,
    #[error("the session is unknown or has expired")]
    SessionExpired,
    #[error("the session holds no grant for this content")]
    NotGranted,
    #[error("the grant for this content has expired")]
    GrantExpired,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// How long a session read may be reused for decisions that allow, with the
/// embedded store (which only this process writes).
pub const CACHE_FOR: Duration = Duration::from_secs(2);
/// The same with a shared store (Redis). It bounds how long allows may go on
/// without a successful store read: once the store is down, every browser's
/// next request after this long fails closed (503). It also bounds how long
/// another replica's view of a session can lag, for decisions that allow.
pub const SHARED_CACHE_FOR: Duration = Duration::from_millis(500);
/// Above this many cached sessions, stale ones are dropped on insert.
const CACHE_SWEEP_AT: usize = 10_000;

/// Whose writes the session cache can see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreSharing {
    /// Only this process writes the store (the embedded store).
    Private,
    /// Other processes write it too (Redis).
    Shared,
}

/// Session operations over the store.
///
/// Reads go through a short-lived in-process cache, used only for decisions
/// that allow: a decision that would refuse is always re-made on a fresh
/// read. This is safe because a session only ever gains grants and expiry
/// time (a launch by another user starts a new session id), expiry is
/// always checked against the clock, and every write made here drops the
/// cached copy. With the embedded store a read is reused for [`CACHE_FOR`];
/// with Redis, where other replicas write, for [`SHARED_CACHE_FOR`], which
/// is also how long allows can outlast a Redis outage.
pub struct Sessions {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    config: SessionConfig,
    cache: DashMap<String, (Arc<Session>, Instant), RandomState>,
    cache_for: Duration,
}

impl Sessions {
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        config: SessionConfig,
        sharing: StoreSharing,
    ) -> Self {
        Self {
            store,
            clock,
            config,
            cache: DashMap::with_hasher(RandomState::default()),
            cache_for: match sharing {
                StoreSharing::Private => CACHE_FOR,
                StoreSharing::Shared => SHARED_CACHE_FOR,
            },
        }
    }

    fn forget(&self, id: &str) {
        self.cache.remove(id);
    }

    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    /// Records a successful launch: extends the browser's session if it is
    /// live and belongs to the same user, otherwise starts a new one. Returns
    /// the session id to put in the cookie.
    pub async fn record_launch(
        &self,
        existing: Option<&str>,
        user: UserRef,
        content: ContentPath,
        launch: LaunchContext,
    ) -> Result<String, StoreError> {
        let now = self.clock.now();
        let session_expires = now + self.config.lifetime_sec;
        let grant = Grant {
            content,
            granted_at: now,
            launch_id: random_token()[..16].to_owned(),
            expires_at: self.config.access_length_sec.map(|a| now + a),
            launch,
        };
        if let Some(id) = existing.filter(|id| is_token(id)) {
            let (user, grant) = (user.clone(), grant.clone());
            let max = self.config.max_grants;
            let extended = self
                .store
                .update(
                    Namespace::Session,
                    id,
                    Arc::new(move |current| {
                        let mut session: Session = serde_json::from_slice(current?).ok()?;
                        if session.user != user {
                            return None;
                        }
                        session.expires_at = session_expires;
                        session.add_grant(grant.clone(), now, max);
                        Some((serde_json::to_vec(&session).ok()?, session_expires))
                    }),
                )
                .await?;
            if extended {
                self.forget(id);
                return Ok(id.to_owned());
            }
        }
        let id = new_session_id(SystemTime::now());
        let session = Session {
            user,
            created_at: now,
            expires_at: session_expires,
            grants: vec![grant],
        };
        let bytes = serde_json::to_vec(&session).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.store
            .put(Namespace::Session, &id, bytes, session_expires)
            .await?;
        Ok(id)
    }

    /// The live session under `id`, read from the store.
    pub async fn load(&self, id: &str) -> Result<Option<Arc<Session>>, StoreError> {
        if !is_token(id) {
            return Ok(None);
        }
        let Some(bytes) = self.store.get(Namespace::Session, id).await? else {
            self.forget(id);
            return Ok(None);
        };
        let session: Arc<Session> = Arc::new(
            serde_json::from_slice(&bytes).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        );
        if self.cache.len() >= CACHE_SWEEP_AT {
            self.cache
                .retain(|_, (_, at)| at.elapsed() < self.cache_for);
        }
        self.cache
            .insert(id.to_owned(), (session.clone(), Instant::now()));
        Ok(Some(session))
    }

    /// The session under `id`, from the cache when it was read a moment ago.
    /// Only for decisions that allow; refusals re-check with [`Self::load`].
    pub async fn load_cached(&self, id: &str) -> Result<Option<Arc<Session>>, StoreError> {
        if let Some(hit) = self.cache.get(id)
            && hit.1.elapsed() < self.cache_for
        {
            return Ok(Some(hit.0.clone()));
        }
        self.load(id).await
    }

    /// The one fail-closed access check. `decide` says what a session allows
    /// (or why it refuses); it is asked first of a session read a moment ago
    /// and, when that refuses, again of a fresh read, so that a refusal is
    /// never made on stale data. No cookie is [`AccessError::NoSession`]; an
    /// id that names no live session is [`AccessError::SessionExpired`]; a
    /// store failure is [`AccessError::Store`] (503), never an allow.
    pub async fn authorize<T>(
        &self,
        id: Option<&str>,
        decide: impl Fn(&Session) -> Result<T, AccessError>,
    ) -> Result<(Arc<Session>, T), AccessError> {
        let id = id.ok_or(AccessError::NoSession)?;
        let check = |session: Option<Arc<Session>>| {
            let session = session.ok_or(AccessError::SessionExpired)?;
            let allowed = decide(&session)?;
            Ok((session, allowed))
        };
        match check(self.load_cached(id).await?) {
            Ok(found) => Ok(found),
            Err(_) => check(self.load(id).await?),
        }
    }

    /// Checks that the session under `id` holds a live grant for `content`;
    /// returns the session and the grant's index.
    pub async fn check_grant(
        &self,
        id: Option<&str>,
        content: &ContentPath,
    ) -> Result<(Arc<Session>, usize), AccessError> {
        let now = self.clock.now();
        self.authorize(id, |session| {
            let index = session
                .grants
                .iter()
                .position(|g| &g.content == content)
                .ok_or(AccessError::NotGranted)?;
            if session.grant_expiry(&session.grants[index]) <= now {
                return Err(AccessError::GrantExpired);
            }
            Ok(index)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::content::{CourseKey, UsageKey};
    use crate::testing::{embedded_store, launch_context};

    fn content(block: &str) -> ContentPath {
        let usage =
            UsageKey::parse(&format!("block-v1:O+C+R+type@html+block@{block}")).expect("usage");
        ContentPath::new(CourseKey::parse("course-v1:O+C+R").expect("course"), usage).expect("path")
    }

    fn grant(block: &str, expires_at: Option<UnixTime>) -> Grant {
        Grant {
            content: content(block),
            granted_at: 0,
            launch_id: String::new(),
            expires_at,
            launch: launch_context(),
        }
    }

    #[test]
    fn session_ids_are_tokens_in_creation_order() {
        let at = |micros: u64| UNIX_EPOCH + Duration::from_micros(micros);
        let now = 1_796_000_000_000_000;
        let (a, b) = (new_session_id(at(now)), new_session_id(at(now)));
        assert!(is_token(&a) && is_token(&b), "{a} {b}");
        assert_eq!(&a[..13], "66173D6044000");
        assert_ne!(a[13..], b[13..], "the random part differs");
        // Ordered by time whatever the random part: a microsecond later
        // sorts after, and so does a later second, minute or year.
        for later in [1, 1_000_000, 60_000_000, 31_536_000_000_000] {
            for _ in 0..32 {
                assert!(new_session_id(at(now + later)) > new_session_id(at(now)));
            }
        }
        assert!(is_token(&new_session_id(UNIX_EPOCH)));
        // Past 2112 the prefix wraps but keeps its shape.
        assert!(is_token(&new_session_id(at(1 << 55))));
    }

    #[test]
    fn grants_are_renewed_pruned_and_capped() {
        let mut s = Session {
            user: UserRef {
                issuer: "i".into(),
                client_id: "c".into(),
                sub: "s".into(),
            },
            created_at: 0,
            expires_at: 1000,
            grants: vec![grant("old", Some(50)), grant("a", None)],
        };
        s.add_grant(grant("a", Some(500)), 100, 2);
        assert_eq!(
            s.grants.len(),
            1,
            "expired grant dropped, renewed grant replaced"
        );
        assert_eq!(s.grants[0].expires_at, Some(500));
        s.add_grant(grant("b", None), 100, 2);
        s.add_grant(grant("c", None), 100, 2);
        let names: Vec<_> = s
            .grants
            .iter()
            .map(|g| g.content.usage.to_string())
            .collect();
        assert_eq!(names.len(), 2);
        assert!(names[0].ends_with("@b") && names[1].ends_with("@c"));
        assert_eq!(s.grant_expiry(&s.grants[0]), 1000);
    }

    fn user(sub: &str) -> UserRef {
        UserRef {
            issuer: "https://platform.example".into(),
            client_id: "tool-1".into(),
            sub: sub.into(),
        }
    }

    /// Sessions over a real embedded store in a temporary directory.
    struct Fixture {
        store: Arc<dyn Store>,
        clock: Arc<crate::clock::ManualClock>,
        _dir: tempfile::TempDir,
    }

    fn fixture() -> Fixture {
        let clock = crate::clock::ManualClock::new();
        let (store, dir) = embedded_store(clock.clone());
        Fixture {
            store,
            clock,
            _dir: dir,
        }
    }

    impl Fixture {
        /// A `Sessions` of its own (its own cache) over the shared store.
        fn sessions(&self) -> Sessions {
            let config = crate::testing::session_config();
            Sessions::new(
                self.store.clone(),
                self.clock.clone(),
                config,
                StoreSharing::Private,
            )
        }
    }

    #[tokio::test]
    async fn authorize_without_an_id_is_no_session() {
        let sessions = fixture().sessions();
        let refused = sessions.authorize(None, |_| Ok(())).await;
        assert!(
            matches!(refused, Err(AccessError::NoSession)),
            "{refused:?}"
        );
    }

    #[tokio::test]
    async fn authorize_an_unknown_id_is_session_expired() {
        let sessions = fixture().sessions();
        let well_formed = new_session_id(SystemTime::now());
        for id in [well_formed.as_str(), "not-a-session-id"] {
            let refused = sessions.authorize(Some(id), |_| Ok(())).await;
            assert!(
                matches!(refused, Err(AccessError::SessionExpired)),
                "{id}: {refused:?}"
            );
        }
    }

    #[tokio::test]
    async fn a_store_error_is_never_an_allow() {
        let f = fixture();
        let sessions = f.sessions();
        let id = new_session_id(SystemTime::now());
        let expires = f.clock.now() + 3600;
        f.store
            .put(Namespace::Session, &id, b"not a session".to_vec(), expires)
            .await
            .expect("put");
        // `decide` would allow anything; the store's failure still refuses.
        let refused = sessions.authorize(Some(&id), |_| Ok(())).await;
        assert!(
            matches!(refused, Err(AccessError::Store(StoreError::Corrupt(_)))),
            "{refused:?}"
        );
    }

    #[tokio::test]
    async fn a_refusal_on_a_cached_read_is_remade_on_a_fresh_read() {
        let f = fixture();
        let (this_replica, other_writer) = (f.sessions(), f.sessions());
        let (a, b) = (content("a"), content("b"));
        let id = this_replica
            .record_launch(None, user("learner-1"), a.clone(), launch_context())
            .await
            .expect("launch a");
        let cached_at = Instant::now();
        this_replica
            .check_grant(Some(&id), &a)
            .await
            .expect("a is granted");
        // A launch of b written where this cache cannot see it.
        let same = other_writer
            .record_launch(Some(&id), user("learner-1"), b.clone(), launch_context())
            .await
            .expect("launch b");
        assert_eq!(same, id, "the session is extended");
        let cached = this_replica.load_cached(&id).await.expect("cached");
        // The cache lives CACHE_FOR of real time; on a machine stalled that
        // long the read is fresh already, and only the checks below apply.
        if cached_at.elapsed() < CACHE_FOR / 2 {
            assert_eq!(
                cached.map(|s| s.grants.len()),
                Some(1),
                "the cached read is stale"
            );
        }

        let (session, index) = this_replica
            .check_grant(Some(&id), &b)
            .await
            .expect("b is granted on the fresh read");
        assert_eq!(session.grants[index].content, b);
        // A refusal that the fresh read confirms stands.
        let refused = this_replica.check_grant(Some(&id), &content("c")).await;
        assert!(
            matches!(refused, Err(AccessError::NotGranted)),
            "{refused:?}"
        );
    }

    #[tokio::test]
    async fn an_expired_session_is_refused_even_while_its_read_is_cached() {
        let f = fixture();
        let sessions = f.sessions();
        let a = content("a");
        let id = sessions
            .record_launch(None, user("learner-1"), a.clone(), launch_context())
            .await
            .expect("launch");
        sessions.check_grant(Some(&id), &a).await.expect("granted");

        f.clock.advance(3601);
        let refused = sessions.check_grant(Some(&id), &a).await;
        // The cached copy says the grant expired; the fresh read finds no
        // live session, and that is the answer.
        assert!(
            matches!(refused, Err(AccessError::SessionExpired)),
            "{refused:?}"
        );
    }
}
