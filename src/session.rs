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
//! A session ends early in two ways: its browser logs out ([`Sessions::end`]
//! deletes it), or an operator revokes its learner or registration
//! ([`Sessions::revoke`], see [`revocation`]).

mod revocation;

pub use revocation::Revoke;

use std::sync::{Arc, Mutex, PoisonError};
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
    /// The LMS path a logout ends the LMS session at (the LMS app's
    /// logout view); `None`: a logout ends only the gateway's session.
    pub lms_logout_path: Option<String>,
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
    /// Whether the browser was given this id under the current cookie name
    /// (`__Host-` on HTTPS). Absent, so false, only in sessions an earlier
    /// version wrote under the plain name: only those are still accepted
    /// under that name (see [`Presented`]). Every launch sets it.
    #[serde(default)]
    pub host_cookie: bool,
}

/// A session id as the browser presented it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Presented<'a> {
    pub id: &'a str,
    /// Under the plain cookie name on HTTPS, where the current name is
    /// `__Host-<name>`. Any host under the parent domain can set such a
    /// cookie (see [`crate::cookies::HOST_PREFIX`]), so it is accepted only
    /// for a session written before the prefix, for the rest of that
    /// session's life: a session ltigate ever gave out under the prefixed
    /// name is refused under the plain one.
    pub legacy_name: bool,
}

impl<'a> Presented<'a> {
    /// An id presented under the current cookie name.
    pub fn current(id: &'a str) -> Self {
        Self {
            id,
            legacy_name: false,
        }
    }

    /// Whether `session` may be used with this cookie.
    pub fn allows(&self, session: &Session) -> bool {
        !self.legacy_name || !session.host_cookie
    }
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
/// cached copy. The two ways a session ends early are bounded the same
/// way: a logout or a revocation made on another replica is seen here once
/// the cached read runs out (the browser that logged out has lost its
/// cookie already). With the embedded store a read is reused for [`CACHE_FOR`];
/// with Redis, where other replicas write, for [`SHARED_CACHE_FOR`], which
/// is also how long allows can outlast a Redis outage.
pub struct Sessions {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    config: SessionConfig,
    cache: DashMap<String, (Arc<Session>, Instant), RandomState>,
    cache_for: Duration,
    /// The newest revocation's `not_before` (`None`: none is live), and
    /// when it was read; reused for `cache_for`, like a session read.
    latest_revocation: Mutex<Option<(Option<UnixTime>, Instant)>>,
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
            latest_revocation: Mutex::new(None),
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
    ///
    /// A session its learner's or registration's revocation refuses is
    /// never extended, and a session begun in the second of a revocation
    /// counts as begun after it (its `created_at` is the revocation's
    /// `not_before`), so that a relaunch right after a revocation works.
    pub async fn record_launch(
        &self,
        existing: Option<Presented<'_>>,
        user: UserRef,
        content: ContentPath,
        launch: LaunchContext,
    ) -> Result<String, StoreError> {
        let not_before = self.not_before(&user).await?;
        let now = self.clock.now();
        let created_at = not_before.map_or(now, |nb| nb.max(now));
        let session_expires = now + self.config.lifetime_sec;
        let grant = Grant {
            content,
            granted_at: now,
            launch_id: random_token()[..16].to_owned(),
            expires_at: self.config.access_length_sec.map(|a| now + a),
            launch,
        };
        if let Some(cookie) = existing.filter(|c| is_token(c.id)) {
            let (user, grant) = (user.clone(), grant.clone());
            let max = self.config.max_grants;
            let (id, legacy_name) = (cookie.id, cookie.legacy_name);
            let extended = self
                .store
                .update(
                    Namespace::Session,
                    id,
                    Arc::new(move |current| {
                        let mut session: Session = serde_json::from_slice(current?).ok()?;
                        if session.user != user
                            || (legacy_name && session.host_cookie)
                            || not_before.is_some_and(|nb| session.created_at < nb)
                        {
                            return None;
                        }
                        // The launch's answer sets the current name.
                        session.host_cookie = true;
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
            created_at,
            expires_at: session_expires,
            grants: vec![grant],
            host_cookie: true,
        };
        let bytes = serde_json::to_vec(&session).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.store
            .put(Namespace::Session, &id, bytes, session_expires)
            .await?;
        Ok(id)
    }

    /// The live session under `id`, read from the store; `None` when there
    /// is none or an operator revoked it.
    ///
    /// The newest revocation's time is read beside the session, in parallel
    /// (and at most every `cache_for`, shared by every session); only a
    /// session older than it pays a second round trip, for the two records
    /// that could name it. So a read costs one round trip unless a
    /// revocation is as recent as the session. The read is cached as of the
    /// older of the two reads, so that a revocation made anywhere is seen
    /// within `cache_for`, as any other write is.
    pub async fn load(&self, id: &str) -> Result<Option<Arc<Session>>, StoreError> {
        if !is_token(id) {
            return Ok(None);
        }
        let (bytes, latest) = tokio::join!(
            self.store.get(Namespace::Session, id),
            self.latest_revocation()
        );
        let Some(bytes) = bytes? else {
            self.forget(id);
            return Ok(None);
        };
        let (latest, read_at) = latest?;
        let session: Arc<Session> = Arc::new(
            serde_json::from_slice(&bytes).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        );
        if latest.is_some_and(|nb| session.created_at < nb)
            && self
                .not_before(&session.user)
                .await?
                .is_some_and(|nb| session.created_at < nb)
        {
            self.forget(id);
            // Gone for good: the next read need not check again.
            if let Err(e) = self.store.delete(Namespace::Session, id).await {
                tracing::debug!(error = %e, "a revoked session could not be deleted yet");
            }
            return Ok(None);
        }
        if self.cache.len() >= CACHE_SWEEP_AT {
            self.cache
                .retain(|_, (_, at)| at.elapsed() < self.cache_for);
        }
        self.cache.insert(id.to_owned(), (session.clone(), read_at));
        Ok(Some(session))
    }

    /// The newest revocation's `not_before`, and when it was read (now, or
    /// less than `cache_for` ago).
    async fn latest_revocation(&self) -> Result<(Option<UnixTime>, Instant), StoreError> {
        if let Some((latest, at)) = *self
            .latest_revocation
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            && at.elapsed() < self.cache_for
        {
            return Ok((latest, at));
        }
        let at = Instant::now();
        let latest = match self
            .store
            .get(Namespace::Revocation, revocation::LATEST)
            .await?
        {
            Some(bytes) => Some(revocation::not_before(&bytes)?),
            None => None,
        };
        *self
            .latest_revocation
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some((latest, at));
        Ok((latest, at))
    }

    /// The later `not_before` of `user`'s revocation and their
    /// registration's, read from the store.
    async fn not_before(&self, user: &UserRef) -> Result<Option<UnixTime>, StoreError> {
        let user_key = revocation::user_key(user);
        let registration_key = revocation::registration_key(&user.issuer, &user.client_id);
        let (by_user, by_registration) = tokio::join!(
            self.store.get(Namespace::Revocation, &user_key),
            self.store.get(Namespace::Revocation, &registration_key)
        );
        let mut not_before = None;
        for bytes in [by_user?, by_registration?].into_iter().flatten() {
            not_before = not_before.max(Some(revocation::not_before(&bytes)?));
        }
        Ok(not_before)
    }

    /// Revokes every session of a learner or a registration, on every
    /// replica: this one at once (its cached reads are dropped), the others
    /// within `cache_for`, when their cached reads run out. Sessions begun
    /// in the same second are revoked too. Returns the `not_before` written.
    pub async fn revoke(&self, what: &Revoke) -> Result<UnixTime, StoreError> {
        let now = self.clock.now();
        let not_before = now + 1;
        // No session it refuses outlives this: none is extended after it.
        let expires_at = now + self.config.lifetime_sec + 1;
        let raise = revocation::raise(not_before, expires_at);
        // The record first, then `latest`: a reader that sees the new
        // `latest` finds the record.
        self.store
            .update(Namespace::Revocation, &what.key(), raise.clone())
            .await?;
        self.store
            .update(Namespace::Revocation, revocation::LATEST, raise)
            .await?;
        *self
            .latest_revocation
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = None;
        self.cache.clear();
        Ok(not_before)
    }

    /// Ends the session the browser presented (logout): deletes it from the
    /// store and returns it, unless `cookie` may not use it (then it is
    /// deleted all the same, and `None` is returned). `None` as well when
    /// there was no such session.
    pub async fn end(&self, cookie: Presented<'_>) -> Result<Option<Session>, StoreError> {
        if !is_token(cookie.id) {
            return Ok(None);
        }
        let taken = self.store.take(Namespace::Session, cookie.id).await;
        self.forget(cookie.id);
        let Some(bytes) = taken? else {
            return Ok(None);
        };
        Ok(serde_json::from_slice::<Session>(&bytes)
            .ok()
            .filter(|s| cookie.allows(s)))
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
    /// A session that `cookie` may not use (see [`Presented`]) is
    /// [`AccessError::SessionExpired`] too.
    pub async fn authorize<T>(
        &self,
        cookie: Option<Presented<'_>>,
        decide: impl Fn(&Session) -> Result<T, AccessError>,
    ) -> Result<(Arc<Session>, T), AccessError> {
        let cookie = cookie.ok_or(AccessError::NoSession)?;
        let check = |session: Option<Arc<Session>>| {
            let session = session
                .filter(|s| cookie.allows(s))
                .ok_or(AccessError::SessionExpired)?;
            let allowed = decide(&session)?;
            Ok((session, allowed))
        };
        match check(self.load_cached(cookie.id).await?) {
            Ok(found) => Ok(found),
            Err(_) => check(self.load(cookie.id).await?),
        }
    }

    /// Checks that the session under `id` holds a live grant for `content`;
    /// returns the session and the grant's index.
    pub async fn check_grant(
        &self,
        cookie: Option<Presented<'_>>,
        content: &ContentPath,
    ) -> Result<(Arc<Session>, usize), AccessError> {
        let now = self.clock.now();
        self.authorize(cookie, |session| {
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
            host_cookie: true,
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
            let refused = sessions
                .authorize(Some(Presented::current(id)), |_| Ok(()))
                .await;
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
        let refused = sessions
            .authorize(Some(Presented::current(&id)), |_| Ok(()))
            .await;
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
            .check_grant(Some(Presented::current(&id)), &a)
            .await
            .expect("a is granted");
        // A launch of b written where this cache cannot see it.
        let same = other_writer
            .record_launch(
                Some(Presented::current(&id)),
                user("learner-1"),
                b.clone(),
                launch_context(),
            )
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
            .check_grant(Some(Presented::current(&id)), &b)
            .await
            .expect("b is granted on the fresh read");
        assert_eq!(session.grants[index].content, b);
        // A refusal that the fresh read confirms stands.
        let refused = this_replica
            .check_grant(Some(Presented::current(&id)), &content("c"))
            .await;
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
        sessions
            .check_grant(Some(Presented::current(&id)), &a)
            .await
            .expect("granted");

        f.clock.advance(3601);
        let refused = sessions
            .check_grant(Some(Presented::current(&id)), &a)
            .await;
        // The cached copy says the grant expired; the fresh read finds no
        // live session, and that is the answer.
        assert!(
            matches!(refused, Err(AccessError::SessionExpired)),
            "{refused:?}"
        );
    }

    #[tokio::test]
    async fn a_revocation_refuses_earlier_sessions_of_its_learner_only() {
        let f = fixture();
        let (this_replica, other) = (f.sessions(), f.sessions());
        let a = content("a");
        let id = this_replica
            .record_launch(None, user("learner-1"), a.clone(), launch_context())
            .await
            .expect("launch");
        let bob = this_replica
            .record_launch(None, user("learner-2"), a.clone(), launch_context())
            .await
            .expect("launch");
        let cookie = Some(Presented::current(&id));
        this_replica.check_grant(cookie, &a).await.expect("cached");

        other
            .revoke(&Revoke::User(user("learner-1")))
            .await
            .expect("revoke");
        // Another replica with no cached read refuses at once; this one
        // once its cached read runs out (here: dropped by its own revoke).
        let fresh = f.sessions();
        let refused = fresh.check_grant(cookie, &a).await;
        assert!(
            matches!(refused, Err(AccessError::SessionExpired)),
            "{refused:?}"
        );
        this_replica
            .revoke(&Revoke::User(user("learner-3")))
            .await
            .expect("revoke");
        let refused = this_replica.check_grant(cookie, &a).await;
        assert!(
            matches!(refused, Err(AccessError::SessionExpired)),
            "{refused:?}"
        );
        fresh
            .check_grant(Some(Presented::current(&bob)), &a)
            .await
            .expect("another learner is untouched");
        // A relaunch in the same second is not an extension of the revoked
        // session, and its new session works.
        let again = fresh
            .record_launch(cookie, user("learner-1"), a.clone(), launch_context())
            .await
            .expect("relaunch");
        assert_ne!(again, id);
        fresh
            .check_grant(Some(Presented::current(&again)), &a)
            .await
            .expect("the new session is live");
    }

    #[tokio::test]
    async fn the_plain_cookie_name_works_only_for_sessions_from_before_the_prefix() {
        let f = fixture();
        let sessions = f.sessions();
        let a = content("a");
        let id = sessions
            .record_launch(None, user("learner-1"), a.clone(), launch_context())
            .await
            .expect("launch");
        let legacy = Presented {
            id: &id,
            legacy_name: true,
        };
        let refused = sessions.check_grant(Some(legacy), &a).await;
        assert!(
            matches!(refused, Err(AccessError::SessionExpired)),
            "{refused:?}"
        );
        // A launch with that cookie does not adopt the session either.
        let other = sessions
            .record_launch(Some(legacy), user("learner-1"), a.clone(), launch_context())
            .await
            .expect("launch");
        assert_ne!(other, id);

        // As an earlier version wrote it: no host_cookie.
        let old = new_session_id(SystemTime::now());
        let mut record: serde_json::Value = serde_json::to_value(Session {
            user: user("learner-1"),
            created_at: f.clock.now(),
            expires_at: f.clock.now() + 3600,
            grants: vec![grant("a", None)],
            host_cookie: false,
        })
        .expect("json");
        record
            .as_object_mut()
            .expect("object")
            .remove("host_cookie");
        f.store
            .put(
                Namespace::Session,
                &old,
                serde_json::to_vec(&record).expect("json"),
                f.clock.now() + 3600,
            )
            .await
            .expect("put");
        let legacy = Presented {
            id: &old,
            legacy_name: true,
        };
        sessions
            .check_grant(Some(legacy), &content("a"))
            .await
            .expect("an old session under the old name");
        let ended = sessions.end(legacy).await.expect("logout");
        assert!(ended.is_some());
        let refused = sessions.check_grant(Some(legacy), &content("a")).await;
        assert!(
            matches!(refused, Err(AccessError::SessionExpired)),
            "{refused:?}"
        );
    }
}
