//! Shared state: login state, sessions and grants, on an embedded database or Redis.
//!
//! Owns the [`Store`] trait and its two backends, [`embedded`] (redb, the
//! default, survives restarts; login states in memory) and [`redis`] (shared
//! by any number of gateway replicas). Both backends keep the same
//! semantics, pinned by one test suite: every value has an absolute expiry
//! that is checked on read against the gateway's clock; `take` is an atomic
//! get-and-delete, so a single-use value can be consumed once only; `update`
//! is an atomic read-modify-write. One exception: the embedded store holds
//! login states in memory, so they do not survive a restart, and a write
//! beyond its bound evicts the oldest login state even if it is still live.
//!
//! This module never decides access. When a backend cannot answer, it returns
//! [`StoreError::Unavailable`] and callers fail closed.

pub mod embedded;
mod memory;
pub mod redis;

use std::sync::Arc;

use async_trait::async_trait;

use crate::clock::{Clock, UnixTime};

#[derive(Debug, Clone)]
pub enum StoreConfig {
    Embedded {
        path: std::path::PathBuf,
    },
    Redis {
        url: String,
        key_prefix: String,
        /// PEM certificates that alone are trusted for a `rediss://` server,
        /// instead of the public roots: the contents of `ca_file`.
        ca_pem: Option<Vec<u8>>,
    },
}

/// What a key belongs to. Each namespace is a separate key space.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Namespace {
    /// OIDC login state (`state` → nonce, target, registration). Single-use.
    LoginState,
    /// Gateway sessions and their grants.
    Session,
    /// Graded resources, by upstream username and usage key.
    Graded,
    /// The LTI identity behind an upstream username with graded resources.
    GradedUser,
    /// Deep-linking picker tokens. Single-use.
    DeepLinking,
    /// Revocations of a learner's or a registration's sessions.
    Revocation,
}

impl Namespace {
    pub fn as_str(self) -> &'static str {
        match self {
            Namespace::LoginState => "state",
            Namespace::Session => "session",
            Namespace::Graded => "graded",
            Namespace::GradedUser => "graded_user",
            Namespace::DeepLinking => "deep_linking",
            Namespace::Revocation => "revoked",
        }
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
    #[error("a stored value is corrupt: {0}")]
    Corrupt(String),
}

/// The function an atomic `update` applies. It sees the current value (`None`
/// when absent or expired) and returns the new value with its expiry, or
/// `None` to leave the key untouched. It may run more than once.
pub type UpdateFn = Arc<dyn Fn(Option<&[u8]>) -> Option<(Vec<u8>, UnixTime)> + Send + Sync>;

/// A key-value store with per-key expiry.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// The live value under `key`.
    async fn get(&self, ns: Namespace, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Writes `value`, replacing any previous one.
    async fn put(
        &self,
        ns: Namespace,
        key: &str,
        value: Vec<u8>,
        expires_at: UnixTime,
    ) -> Result<(), StoreError>;
    /// Writes `value` only if no live value exists. True when written.
    async fn put_new(
        &self,
        ns: Namespace,
        key: &str,
        value: Vec<u8>,
        expires_at: UnixTime,
    ) -> Result<bool, StoreError> {
        // Through `update`, so that an expired value still stored counts as
        // absent on every backend, exactly as `get` sees it.
        self.update(
            ns,
            key,
            Arc::new(move |current| current.is_none().then(|| (value.clone(), expires_at))),
        )
        .await
    }
    /// Atomically reads and deletes. Of two concurrent callers, one at most gets the value.
    async fn take(&self, ns: Namespace, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    async fn delete(&self, ns: Namespace, key: &str) -> Result<(), StoreError>;
    /// Atomically applies `f` to the value. True when a new value was written.
    async fn update(&self, ns: Namespace, key: &str, f: UpdateFn) -> Result<bool, StoreError>;
    /// How many live values the namespace holds (for operators and tests; O(n)).
    async fn count(&self, ns: Namespace) -> Result<usize, StoreError>;

    /// Puts an item on the work queue in `group`, replacing any item with
    /// the same id. A claimed item keeps its lease, so that no second worker
    /// takes the new payload while the old one is in flight: the holder
    /// finds it superseded when it finishes, and the new payload is then due
    /// at `due_at` (or at once, if that has passed).
    async fn queue_put(
        &self,
        id: &str,
        group: &str,
        payload: Vec<u8>,
        due_at: UnixTime,
    ) -> Result<(), StoreError>;
    /// Atomically takes the earliest item due at `now` whose group is not in
    /// `busy`, leasing it until `lease_until` so that no other worker (or
    /// replica) takes it meanwhile. A worker that dies before finishing
    /// gives the item back when the lease ends.
    async fn queue_claim(
        &self,
        now: UnixTime,
        lease_until: UnixTime,
        busy: &[String],
    ) -> Result<Option<Queued>, StoreError>;
    /// Extends the lease on a claimed item to `lease_until`. False when the
    /// item is not leased (finished, or given back).
    async fn queue_renew(&self, id: &str, lease_until: UnixTime) -> Result<bool, StoreError>;
    /// Finishes a claimed item if its payload is still `claimed`: deletes it
    /// (`next` = None) or replaces it and its due time. False when the item
    /// was superseded or removed meanwhile; then only the lease is given back,
    /// and a superseding payload is due when its `queue_put` asked.
    async fn queue_finish(
        &self,
        id: &str,
        claimed: &[u8],
        next: Option<(Vec<u8>, UnixTime)>,
    ) -> Result<bool, StoreError>;
    /// One item.
    async fn queue_get(&self, id: &str) -> Result<Option<Queued>, StoreError>;
    /// Every item, in due order.
    async fn queue_list(&self) -> Result<Vec<Queued>, StoreError>;
    /// Checks that the backend answers.
    async fn ping(&self) -> Result<(), StoreError>;
}

/// An item of the work queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queued {
    pub id: String,
    /// What the item is limited with: the worker claims no more than a few
    /// items of one group at a time (a platform, for grade deliveries).
    pub group: String,
    pub payload: Vec<u8>,
    pub due_at: UnixTime,
}

/// Opens the configured backend.
pub fn open(config: &StoreConfig, clock: Arc<dyn Clock>) -> Result<Arc<dyn Store>, StoreError> {
    Ok(match config {
        StoreConfig::Embedded { path } => Arc::new(embedded::EmbeddedStore::open(path, clock)?),
        StoreConfig::Redis {
            url,
            key_prefix,
            ca_pem,
        } => Arc::new(redis::RedisStore::open_with_ca(
            url,
            key_prefix,
            ca_pem.as_deref(),
            clock,
        )?),
    })
}

/// Stored form of a value: its absolute expiry (8 bytes, big-endian) then the value.
fn encode_entry(expires_at: UnixTime, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + value.len());
    out.extend_from_slice(&expires_at.to_be_bytes());
    out.extend_from_slice(value);
    out
}

/// The value of a stored entry if it is still live at `now`.
fn live_value(entry: &[u8], now: UnixTime) -> Result<Option<&[u8]>, StoreError> {
    let (head, value) = entry
        .split_first_chunk::<8>()
        .ok_or_else(|| StoreError::Corrupt("entry shorter than its header".to_owned()))?;
    let expires_at = u64::from_be_bytes(*head);
    Ok((now < expires_at).then_some(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire() {
        let e = encode_entry(100, b"v");
        assert_eq!(live_value(&e, 99).expect("ok"), Some(&b"v"[..]));
        assert_eq!(live_value(&e, 100).expect("ok"), None);
        assert!(live_value(b"short", 0).is_err());
    }
}
