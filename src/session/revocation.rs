//! Revocation records: an operator's "end every session of this learner" or
//! "of this registration", without a scan of the store.
//!
//! The store has no key scan (by design: Redis `SCAN` over every replica's
//! sessions is neither atomic nor cheap), so a revocation does not look for
//! the sessions it ends. It writes a record, under a key derived from the
//! learner (issuer, client_id, sub) or the registration (issuer,
//! client_id), holding a `not_before` time: a session of that learner or
//! registration created before it is refused, and no launch extends one.
//! A record lives as long as a session can (`lifetime_sec`), after which
//! every session it names has expired by itself.
//!
//! Beside the records, one `latest` record holds the newest `not_before` of
//! all. A session read from the store is checked against the two records
//! that could name it only when `latest` is newer than the session, so while
//! no revocation is recent the check costs no store read of its own (see
//! [`super::Sessions::load`]). This module never decides access; it only
//! names and encodes the records.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::UserRef;
use crate::clock::UnixTime;
use crate::store::{StoreError, UpdateFn};

/// The key of the record that holds the newest `not_before` of all.
pub(super) const LATEST: &str = "latest";

/// What an operator revokes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revoke {
    /// Every session of one learner of one registration.
    User(UserRef),
    /// Every session of every learner of one registration.
    Registration { issuer: String, client_id: String },
}

impl Revoke {
    /// The record's key.
    pub(super) fn key(&self) -> String {
        match self {
            Revoke::User(user) => user_key(user),
            Revoke::Registration { issuer, client_id } => registration_key(issuer, client_id),
        }
    }
}

/// The key of a learner's record: a digest, so that a key has one length and
/// one alphabet whatever the platform puts in `sub`.
pub(super) fn user_key(user: &UserRef) -> String {
    digest_key("user", &[&user.issuer, &user.client_id, &user.sub])
}

/// The key of a registration's record.
pub(super) fn registration_key(issuer: &str, client_id: &str) -> String {
    digest_key("registration", &[issuer, client_id])
}

fn digest_key(kind: &str, parts: &[&str]) -> String {
    use std::fmt::Write as _;
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, parts.join("\0").as_bytes());
    let mut key = String::with_capacity(kind.len() + 65);
    key.push_str(kind);
    key.push(':');
    for b in digest.as_ref() {
        let _ = write!(key, "{b:02x}");
    }
    key
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct Record {
    /// Sessions created before this are refused.
    not_before: UnixTime,
    /// When the record may go: no session it refuses outlives it.
    expires_at: UnixTime,
}

/// The `not_before` of a stored record.
pub(super) fn not_before(bytes: &[u8]) -> Result<UnixTime, StoreError> {
    serde_json::from_slice::<Record>(bytes)
        .map(|r| r.not_before)
        .map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// An update that raises a record to `not_before` and `expires_at`, never
/// lowering either (two revocations in a row keep the later of each).
pub(super) fn raise(not_before: UnixTime, expires_at: UnixTime) -> UpdateFn {
    Arc::new(move |current| {
        let mut record = Record {
            not_before,
            expires_at,
        };
        if let Some(old) = current.and_then(|b| serde_json::from_slice::<Record>(b).ok()) {
            record.not_before = record.not_before.max(old.not_before);
            record.expires_at = record.expires_at.max(old.expires_at);
        }
        Some((serde_json::to_vec(&record).ok()?, record.expires_at))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_digests_that_tell_learners_and_registrations_apart() {
        let user = |sub: &str| UserRef {
            issuer: "https://canvas".into(),
            client_id: "c".into(),
            sub: sub.into(),
        };
        let a = Revoke::User(user("42")).key();
        assert!(a.starts_with("user:") && a.len() == 5 + 64, "{a}");
        assert_ne!(a, Revoke::User(user("43")).key());
        let r = Revoke::Registration {
            issuer: "https://canvas".into(),
            client_id: "c".into(),
        }
        .key();
        assert!(r.starts_with("registration:"), "{r}");
        // The separator keeps ("ab", "c") apart from ("a", "bc").
        assert_ne!(registration_key("ab", "c"), registration_key("a", "bc"));
    }

    #[test]
    fn a_record_is_only_ever_raised() {
        let first = raise(100, 500);
        let (bytes, exp) = first(None).expect("written");
        assert_eq!((not_before(&bytes).expect("record"), exp), (100, 500));
        let earlier = raise(50, 400);
        let (bytes, exp) = earlier(Some(&bytes)).expect("written");
        assert_eq!((not_before(&bytes).expect("record"), exp), (100, 500));
        assert!(not_before(b"junk").is_err());
    }
}
