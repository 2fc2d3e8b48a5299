//! A bounded in-memory table with per-key expiry, for values that live
//! seconds and need not survive a restart (the embedded store's login
//! states).
//!
//! It holds at most a number of values and a number of bytes (keys and
//! values); a write beyond either evicts the oldest writes first. Expired
//! values are invisible at once, dropped from the oldest end on every
//! write, and all of them by [`MemoryTable::sweep`].

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use super::UpdateFn;
use crate::clock::UnixTime;

pub struct MemoryTable {
    limits: Limits,
    inner: Mutex<Inner>,
}

/// What a table may hold at most.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub values: usize,
    /// Bytes of keys and values, not counting the maps' own overhead.
    pub bytes: usize,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<String, Entry>,
    /// Write order (a sequence number per write) → key: the oldest first.
    order: BTreeMap<u64, String>,
    next_seq: u64,
    /// Bytes of the keys and values held.
    bytes: usize,
}

struct Entry {
    value: Vec<u8>,
    expires_at: UnixTime,
    seq: u64,
}

impl Entry {
    fn live(&self, now: UnixTime) -> bool {
        now < self.expires_at
    }
}

fn size(key: &str, value: &[u8]) -> usize {
    key.len() + value.len()
}

impl Inner {
    fn remove(&mut self, key: &str) -> Option<Entry> {
        let entry = self.entries.remove(key)?;
        self.order.remove(&entry.seq);
        self.bytes -= size(key, &entry.value);
        Some(entry)
    }

    /// Writes `key` as the newest value, after dropping expired values from
    /// the oldest end, then evicts the oldest while over `limits`.
    fn insert(
        &mut self,
        key: &str,
        value: Vec<u8>,
        expires_at: UnixTime,
        now: UnixTime,
        limits: Limits,
    ) {
        self.drop_expired_oldest(now);
        self.remove(key);
        let seq = self.next_seq;
        self.next_seq += 1;
        self.bytes += size(key, &value);
        self.entries.insert(
            key.to_owned(),
            Entry {
                value,
                expires_at,
                seq,
            },
        );
        self.order.insert(seq, key.to_owned());
        while self.entries.len() > limits.values || self.bytes > limits.bytes {
            self.pop_oldest();
        }
    }

    fn pop_oldest(&mut self) {
        if let Some((_, key)) = self.order.pop_first() {
            self.remove(&key);
        }
    }

    /// Drops expired values from the oldest end, up to the first live one.
    fn drop_expired_oldest(&mut self, now: UnixTime) {
        while let Some((_, key)) = self.order.first_key_value() {
            if self.entries.get(key).is_some_and(|e| e.live(now)) {
                return;
            }
            self.pop_oldest();
        }
    }
}

impl MemoryTable {
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            inner: Mutex::new(Inner::default()),
        }
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        // Every critical section leaves the maps consistent before it can
        // panic (allocation aside), so a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn get(&self, key: &str, now: UnixTime) -> Option<Vec<u8>> {
        let inner = self.inner();
        let entry = inner.entries.get(key)?;
        entry.live(now).then(|| entry.value.clone())
    }

    pub fn put(&self, key: &str, value: Vec<u8>, expires_at: UnixTime, now: UnixTime) {
        self.inner()
            .insert(key, value, expires_at, now, self.limits);
    }

    /// Removes and returns the live value: of two callers, one at most gets it.
    pub fn take(&self, key: &str, now: UnixTime) -> Option<Vec<u8>> {
        let entry = self.inner().remove(key)?;
        entry.live(now).then_some(entry.value)
    }

    pub fn delete(&self, key: &str) {
        self.inner().remove(key);
    }

    /// Applies `f` to the live value atomically. True when it wrote.
    pub fn update(&self, key: &str, f: &UpdateFn, now: UnixTime) -> bool {
        let mut inner = self.inner();
        let current = inner
            .entries
            .get(key)
            .filter(|e| e.live(now))
            .map(|e| e.value.as_slice());
        let Some((value, expires_at)) = f(current) else {
            return false;
        };
        inner.insert(key, value, expires_at, now, self.limits);
        true
    }

    pub fn count(&self, now: UnixTime) -> usize {
        self.inner()
            .entries
            .values()
            .filter(|e| e.live(now))
            .count()
    }

    /// Drops every expired value.
    pub fn sweep(&self, now: UnixTime) {
        let mut inner = self.inner();
        let Inner {
            entries,
            order,
            bytes,
            ..
        } = &mut *inner;
        entries.retain(|key, e| {
            let live = e.live(now);
            if !live {
                order.remove(&e.seq);
                *bytes -= size(key, &e.value);
            }
            live
        });
    }

    /// Values held, expired or not, after checking that the two maps and
    /// the byte count agree.
    #[cfg(test)]
    fn held(&self) -> usize {
        let inner = self.inner();
        assert_eq!(inner.entries.len(), inner.order.len());
        let bytes: usize = inner.entries.iter().map(|(k, e)| size(k, &e.value)).sum();
        assert_eq!(inner.bytes, bytes);
        inner.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn table(values: usize) -> MemoryTable {
        MemoryTable::new(Limits {
            values,
            bytes: usize::MAX,
        })
    }

    #[test]
    fn a_full_table_evicts_the_oldest_write_first() {
        let t = table(3);
        for k in ["a", "b", "c"] {
            t.put(k, k.into(), 100, 0);
        }
        // Rewriting "a" makes it the newest, so "b" is now the oldest.
        t.put("a", b"a2".to_vec(), 100, 0);
        t.put("d", b"d".to_vec(), 100, 0);
        assert_eq!(t.get("b", 0), None);
        assert_eq!(t.get("a", 0), Some(b"a2".to_vec()));
        assert_eq!(t.get("c", 0), Some(b"c".to_vec()));
        assert_eq!(t.get("d", 0), Some(b"d".to_vec()));
        assert_eq!(t.held(), 3);
    }

    #[test]
    fn a_table_over_its_bytes_evicts_the_oldest_writes_first() {
        let t = MemoryTable::new(Limits {
            values: 100,
            bytes: 30,
        });
        t.put("a", vec![0; 9], 100, 0);
        t.put("b", vec![0; 9], 100, 0);
        t.put("c", vec![0; 9], 100, 0);
        assert_eq!(t.held(), 3, "30 bytes fit");
        // 15 more bytes push out the two oldest (45 - 20 = 25).
        t.put("d", vec![0; 14], 100, 0);
        assert_eq!(t.get("a", 0), None);
        assert_eq!(t.get("b", 0), None);
        assert_eq!(t.get("c", 0), Some(vec![0; 9]));
        assert_eq!(t.held(), 2);
        // A value larger than the whole budget is not kept at all.
        t.put("e", vec![0; 40], 100, 0);
        assert_eq!(t.held(), 0);
    }

    #[test]
    fn taken_and_deleted_values_leave_nothing_behind() {
        let t = table(10);
        t.put("a", b"a".to_vec(), 100, 0);
        t.put("b", b"b".to_vec(), 100, 0);
        assert_eq!(t.take("a", 0), Some(b"a".to_vec()));
        assert_eq!(t.take("a", 0), None);
        t.delete("b");
        assert_eq!(t.held(), 0);
    }

    #[test]
    fn expired_values_are_invisible_and_dropped() {
        let t = table(10);
        t.put("old", b"o".to_vec(), 10, 0);
        t.put("late", b"l".to_vec(), 30, 0);
        t.put("mid", b"m".to_vec(), 20, 0);
        assert_eq!(t.get("old", 10), None);
        assert_eq!(t.take("old", 10), None, "an expired value is not taken");
        t.put("old", b"o".to_vec(), 10, 0);
        assert_eq!(t.count(15), 2);
        // A write drops expired values from the oldest end up to a live one.
        t.put("new", b"n".to_vec(), 100, 25);
        assert_eq!(
            t.held(),
            4,
            "\"late\" is live, so \"mid\" and \"old\" behind it wait"
        );
        t.sweep(25);
        assert_eq!(t.held(), 2);
        assert_eq!(t.get("late", 25), Some(b"l".to_vec()));
        t.put("newer", b"n".to_vec(), 100, 30);
        assert_eq!(t.held(), 2, "\"late\" went at the oldest end");
    }

    #[test]
    fn update_sees_only_live_values() {
        let t = table(10);
        let f: UpdateFn = Arc::new(|cur| cur.is_none().then(|| (b"new".to_vec(), 50)));
        assert!(t.update("k", &f, 0));
        assert!(!t.update("k", &f, 49), "a live value is there");
        assert!(t.update("k", &f, 50), "an expired value counts as absent");
        assert_eq!(t.get("k", 0), Some(b"new".to_vec()));
        assert_eq!(t.held(), 1);
    }
}
