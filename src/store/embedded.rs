//! The embedded store: one redb file on local disk, and login states in
//! memory.
//!
//! Login states live seconds (from the OIDC login to the launch POST) and
//! are written once and taken once, so they are kept in a bounded
//! [`MemoryTable`] of [`MAX_LOGIN_STATES`] instead of costing two redb
//! commits per launch. The table's lock makes `take` and `update` atomic
//! there. A restart loses only the logins in flight; those learners launch
//! again. A flood of anonymous logins can hold no more than the table's
//! bound (it evicts the oldest first), where on disk it would grow the file
//! until the expiry sweep; but a flood of that many logins within one
//! learner's login and launch pushes that learner's login out.
//!
//! Everything else is in redb, which serialises write transactions: that
//! makes `take`, `put_new` and `update` atomic. redb is blocking: reads and
//! work-queue writes run on tokio's blocking pool, and key-value writes
//! (sessions, deep-linking tokens) go to one writer thread that applies
//! every write waiting for it in one transaction, in arrival order, and
//! answers each caller once that transaction has committed (group commit).
//! Under load the launches' writes then share commits instead of queueing
//! for redb's write lock one by one. Expired entries are invisible to
//! readers at once and removed by a periodic sweep.
//!
//! Durability: every write is durable before it is acknowledged. Work-queue
//! writes (grade deliveries) are committed one fsync each; key-value writes
//! (sessions, graded resources) are group-committed: the writer thread
//! applies every write that is waiting in one transaction and one fsync, so
//! concurrent launches share the disk's latency instead of queueing for it.
//! A launch answered with its redirect survives a crash (SIGKILL, power
//! loss) of the gateway. Login states are kept in memory and are lost on a
//! restart: a login in flight ends on the "launch again" page.

use std::path::Path;
use std::sync::{Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use super::memory::{Limits, MemoryTable};
use super::{Namespace, Queued, Store, StoreError, UpdateFn, encode_entry, live_value};
use crate::clock::{Clock, UnixTime};

const KV: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("kv");
/// Queue items: id → due time (8 bytes) + payload.
const QUEUE_ITEMS: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("queue_items");
/// Queue items' groups: id → group (absent: group "").
const QUEUE_GROUPS: TableDefinition<'_, &str, &str> = TableDefinition::new("queue_groups");
/// Queue order: (group, due time, id), so that each group's earliest item
/// is one seek away.
const QUEUE_ORDER: TableDefinition<'_, (&str, u64, &str), ()> = TableDefinition::new("queue_order");
/// Queue order before groups existed: (due time, id). Its entries are moved
/// to [`QUEUE_ORDER`], in group "", when the file is opened.
const LEGACY_QUEUE_DUE: TableDefinition<'_, (u64, &str), ()> = TableDefinition::new("queue_due");
/// Claimed items: the due time each has once its lease is given back (the
/// one it had before its claim, or the one a superseding put asked for).
/// One process owns the file, so a lease found at open belongs to a process
/// that died (or stopped mid-delivery): [`EmbeddedStore::open`] makes its
/// item due again.
const QUEUE_LEASES: TableDefinition<'_, &str, u64> = TableDefinition::new("queue_leases");
const SWEEP_EVERY: Duration = Duration::from_secs(60);
/// redb's page cache. Sessions live on disk; memory holds only the hot part,
/// so a gateway's memory does not grow with the number of sessions (reads
/// that miss it are served from the OS page cache). Measured with 100,000
/// sessions: a 32 MiB cache cost 1.4 KiB of RSS per session, 4 MiB 0.3 KiB.
const CACHE_BYTES: usize = 16 * 1024 * 1024;
/// Login states held in memory at most: 100,000 take about 45 MiB
/// (measured: 470 bytes each, with a typical ~150-byte target). To push out
/// a learner's state in the second or so between their login and their
/// launch, a flood would need this many logins in that second, about what
/// a whole 2-core gateway serves. The byte budget bounds logins with long
/// targets (up to `lti::target::MAX_TARGET_BYTES`
/// bytes each).
pub const MAX_LOGIN_STATES: Limits = Limits {
    values: 100_000,
    bytes: 48 * 1024 * 1024,
};

/// The database (every write to it is durable on commit).
type Db = Database;

/// One key-value write, applied by the writer thread inside a shared
/// transaction. It returns what answers its caller once the transaction's
/// fate is known.
type KvWrite = Box<dyn FnOnce(&mut redb::Table<'_, &str, &[u8]>) -> Reply + Send>;
type Reply = Box<dyn FnOnce(Result<(), &StoreError>) + Send>;

/// Writes applied in one transaction at most.
const MAX_BATCH: usize = 256;

pub struct EmbeddedStore {
    db: Arc<Db>,
    login_states: Arc<MemoryTable>,
    clock: Arc<dyn Clock>,
    /// To the writer thread; `None` only while dropping.
    writes: Option<std::sync::mpsc::Sender<KvWrite>>,
    writer: Option<std::thread::JoinHandle<()>>,
}

impl Drop for EmbeddedStore {
    /// Stops the writer thread once it has committed what it holds, so that
    /// the file is closed when the store is gone.
    fn drop(&mut self) {
        self.writes = None;
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

/// The writer thread: takes every write waiting, applies them in one
/// transaction, commits, then answers each.
fn run_writer(db: &Db, writes: &std::sync::mpsc::Receiver<KvWrite>) {
    while let Ok(first) = writes.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match writes.try_recv() {
                Ok(write) => batch.push(write),
                Err(_) => break,
            }
        }
        let mut replies = Vec::with_capacity(batch.len());
        let committed = (|| {
            let tx = EmbeddedStore::begin_kv_write(db)?;
            {
                let mut table = tx.open_table(KV).map_err(unavailable)?;
                for write in batch {
                    replies.push(write(&mut table));
                }
            }
            tx.commit().map_err(unavailable)
        })();
        // Writes never applied (the transaction could not start) are
        // dropped with their reply channels: their callers see an error.
        for reply in replies {
            reply(committed.as_ref().map(|_| ()));
        }
    }
}

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

fn full_key(ns: Namespace, key: &str) -> String {
    format!("{}:{key}", ns.as_str())
}

impl EmbeddedStore {
    /// Opens (or creates) the database file, creating its directory if needed.
    /// Must be called inside a tokio runtime: it starts the expiry sweep.
    pub fn open(path: &Path, clock: Arc<dyn Clock>) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| unavailable(format!("cannot create {}: {e}", dir.display())))?;
        }
        let db = Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create(path)
            .map_err(|e| unavailable(format!("cannot open {}: {e}", path.display())))?;
        let tx = db.begin_write().map_err(unavailable)?;
        tx.open_table(KV).map_err(unavailable)?;
        tx.open_table(QUEUE_ITEMS).map_err(unavailable)?;
        tx.open_table(QUEUE_GROUPS).map_err(unavailable)?;
        tx.open_table(QUEUE_ORDER).map_err(unavailable)?;
        tx.open_table(QUEUE_LEASES).map_err(unavailable)?;
        tx.commit().map_err(unavailable)?;
        let db = Arc::new(db);
        Self::move_legacy_queue_order(&db)?;
        let reclaimed = Self::queue_write(&db, |q| q.reclaim_leases())?;
        if reclaimed > 0 {
            tracing::info!(
                deliveries = reclaimed,
                "grade deliveries claimed by a process that stopped mid-delivery are due again"
            );
        }
        let login_states = Arc::new(MemoryTable::new(MAX_LOGIN_STATES));
        spawn_sweeper(
            Arc::downgrade(&db),
            Arc::downgrade(&login_states),
            clock.clone(),
        );
        let (writes, queued) = std::sync::mpsc::channel::<KvWrite>();
        let writer_db = db.clone();
        let writer = std::thread::Builder::new()
            .name("ltigate-store".into())
            .spawn(move || run_writer(&writer_db, &queued))
            .map_err(|e| unavailable(format!("cannot start the store writer: {e}")))?;
        Ok(Self {
            db,
            login_states,
            clock,
            writes: Some(writes),
            writer: Some(writer),
        })
    }

    /// Runs `f` on the key-value table in the writer thread's next
    /// transaction; its result is returned once that transaction commits.
    async fn kv_write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut redb::Table<'_, &str, &[u8]>, UnixTime) -> Result<T, StoreError>
        + Send
        + 'static,
    ) -> Result<T, StoreError> {
        let (answer, answered) = tokio::sync::oneshot::channel();
        let now = self.clock.now();
        let write: KvWrite = Box::new(move |table| {
            let result = f(table, now);
            Box::new(move |committed: Result<(), &StoreError>| {
                let _ = answer.send(committed.map_err(Clone::clone).and(result));
            })
        });
        self.writes
            .as_ref()
            .ok_or_else(|| unavailable("the store is closed"))?
            .send(write)
            .map_err(|_| unavailable("the store writer has stopped"))?;
        answered
            .await
            .map_err(|_| unavailable("the write was not applied"))?
    }

    /// The in-memory table that holds `ns`, if it is not kept in redb.
    fn in_memory(&self, ns: Namespace) -> Option<&MemoryTable> {
        (ns == Namespace::LoginState).then_some(&*self.login_states)
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Db, UnixTime) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let db = self.db.clone();
        let now = self.clock.now();
        tokio::task::spawn_blocking(move || f(&db, now))
            .await
            .map_err(unavailable)?
    }

    /// A write transaction for key-value writes, durable on commit (redb's
    /// default).
    fn begin_kv_write(db: &Db) -> Result<redb::WriteTransaction, StoreError> {
        db.begin_write().map_err(unavailable)
    }

    /// A key-value write in a transaction of its own (the expiry sweep).
    fn write<T>(
        db: &Db,
        f: impl FnOnce(&mut redb::Table<'_, &str, &[u8]>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let tx = Self::begin_kv_write(db)?;
        let out = {
            let mut table = tx.open_table(KV).map_err(unavailable)?;
            f(&mut table)?
        };
        tx.commit().map_err(unavailable)?;
        Ok(out)
    }
}

/// The queue tables, open in one write transaction.
struct QueueTables<'t> {
    items: redb::Table<'t, &'static str, &'static [u8]>,
    groups: redb::Table<'t, &'static str, &'static str>,
    order: redb::Table<'t, (&'static str, u64, &'static str), ()>,
    leases: redb::Table<'t, &'static str, u64>,
}

impl QueueTables<'_> {
    /// An item: its due time, payload and group.
    fn get(&self, id: &str) -> Result<Option<(u64, Vec<u8>, String)>, StoreError> {
        let Some(entry) = self.items.get(id).map_err(unavailable)? else {
            return Ok(None);
        };
        let (due, payload) = split_due(entry.value());
        Ok(Some((due, payload, self.group_of(id)?)))
    }

    fn group_of(&self, id: &str) -> Result<String, StoreError> {
        Ok(self
            .groups
            .get(id)
            .map_err(unavailable)?
            .map(|g| g.value().to_owned())
            .unwrap_or_default())
    }

    /// Writes an item in `group` with `due_at`.
    fn set(
        &mut self,
        id: &str,
        group: &str,
        payload: &[u8],
        due_at: u64,
    ) -> Result<(), StoreError> {
        if let Some((old_due, _, old_group)) = self.get(id)? {
            self.order
                .remove((old_group.as_str(), old_due, id))
                .map_err(unavailable)?;
        }
        self.items
            .insert(id, encode_entry(due_at, payload).as_slice())
            .map_err(unavailable)?;
        if group.is_empty() {
            self.groups.remove(id).map_err(unavailable)?;
        } else {
            self.groups.insert(id, group).map_err(unavailable)?;
        }
        self.order
            .insert((group, due_at, id), ())
            .map_err(unavailable)?;
        Ok(())
    }

    fn remove(&mut self, id: &str) -> Result<(), StoreError> {
        if let Some((old_due, _, old_group)) = self.get(id)? {
            self.order
                .remove((old_group.as_str(), old_due, id))
                .map_err(unavailable)?;
        }
        self.items.remove(id).map_err(unavailable)?;
        self.groups.remove(id).map_err(unavailable)?;
        self.leases.remove(id).map_err(unavailable)?;
        Ok(())
    }

    /// The earliest item of each group, in group order.
    fn group_heads(&self) -> Result<Vec<(String, u64, String)>, StoreError> {
        let mut heads = Vec::new();
        let mut after: Option<String> = None;
        loop {
            // Every real due time is below u64::MAX (parked is 2^52), so
            // (group, MAX, "") sorts after all of the group's entries.
            let mut range = match &after {
                None => self.order.range::<(&str, u64, &str)>(..),
                Some(group) => self.order.range((group.as_str(), u64::MAX, "")..),
            }
            .map_err(unavailable)?;
            let Some(entry) = range.next().transpose().map_err(unavailable)? else {
                return Ok(heads);
            };
            let (group, due, id) = entry.0.value();
            heads.push((group.to_owned(), due, id.to_owned()));
            after = Some(group.to_owned());
        }
    }

    /// Makes every leased item due again at the time its lease recorded,
    /// and drops the leases. Returns how many there were.
    fn reclaim_leases(&mut self) -> Result<usize, StoreError> {
        let mut leased = Vec::new();
        for entry in self.leases.iter().map_err(unavailable)? {
            let (id, after) = entry.map_err(unavailable)?;
            leased.push((id.value().to_owned(), after.value()));
        }
        for (id, after) in &leased {
            if let Some((_, payload, group)) = self.get(id)? {
                self.set(id, &group, &payload, *after)?;
            }
            self.leases.remove(id.as_str()).map_err(unavailable)?;
        }
        Ok(leased.len())
    }
}

fn split_due(v: &[u8]) -> (u64, Vec<u8>) {
    let (head, payload) = v.split_at(8.min(v.len()));
    let mut due = [0u8; 8];
    due[..head.len()].copy_from_slice(head);
    (u64::from_be_bytes(due), payload.to_vec())
}

impl EmbeddedStore {
    /// A work-queue write, committed durably.
    fn queue_write<T>(
        db: &Db,
        f: impl FnOnce(&mut QueueTables<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let tx = db.begin_write().map_err(unavailable)?;
        let out = {
            let mut tables = QueueTables {
                items: tx.open_table(QUEUE_ITEMS).map_err(unavailable)?,
                groups: tx.open_table(QUEUE_GROUPS).map_err(unavailable)?,
                order: tx.open_table(QUEUE_ORDER).map_err(unavailable)?,
                leases: tx.open_table(QUEUE_LEASES).map_err(unavailable)?,
            };
            f(&mut tables)?
        };
        tx.commit().map_err(unavailable)?;
        Ok(out)
    }

    /// Moves a queue written before groups existed (`queue_due`) into
    /// [`QUEUE_ORDER`], in group "", and deletes the old table.
    fn move_legacy_queue_order(db: &Db) -> Result<(), StoreError> {
        // A write transaction would create the table: ask a read one.
        match db
            .begin_read()
            .map_err(unavailable)?
            .open_table(LEGACY_QUEUE_DUE)
        {
            Ok(_) => {}
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(()),
            Err(e) => return Err(unavailable(e)),
        }
        let tx = db.begin_write().map_err(unavailable)?;
        let moved = {
            let mut order = tx.open_table(QUEUE_ORDER).map_err(unavailable)?;
            let legacy = tx.open_table(LEGACY_QUEUE_DUE).map_err(unavailable)?;
            let mut moved = 0usize;
            for entry in legacy.iter().map_err(unavailable)? {
                let (key, _) = entry.map_err(unavailable)?;
                let (due, id) = key.value();
                order.insert(("", due, id), ()).map_err(unavailable)?;
                moved += 1;
            }
            moved
        };
        tx.delete_table(LEGACY_QUEUE_DUE).map_err(unavailable)?;
        tx.commit().map_err(unavailable)?;
        if moved > 0 {
            tracing::info!(
                deliveries = moved,
                "grade queue moved to its per-platform order"
            );
        }
        Ok(())
    }
}

fn spawn_sweeper(db: Weak<Db>, memory: Weak<MemoryTable>, clock: Arc<dyn Clock>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(SWEEP_EVERY);
        tick.tick().await;
        loop {
            tick.tick().await;
            let (Some(db), Some(memory)) = (db.upgrade(), memory.upgrade()) else {
                return;
            };
            let now = clock.now();
            memory.sweep(now);
            drop(memory);
            let swept = tokio::task::spawn_blocking(move || {
                EmbeddedStore::write(&db, |t| {
                    t.retain(|_, v| matches!(live_value(v, now), Ok(Some(_))))
                        .map_err(unavailable)
                })
            })
            .await;
            if let Ok(Err(e)) | Err(e) = swept.map_err(unavailable) {
                tracing::warn!(error = %e, "embedded store sweep failed");
            }
        }
    });
}

#[async_trait]
impl Store for EmbeddedStore {
    async fn get(&self, ns: Namespace, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        if let Some(memory) = self.in_memory(ns) {
            return Ok(memory.get(key, self.clock.now()));
        }
        let k = full_key(ns, key);
        self.blocking(move |db, now| {
            let tx = db.begin_read().map_err(unavailable)?;
            let table = tx.open_table(KV).map_err(unavailable)?;
            let Some(entry) = table.get(k.as_str()).map_err(unavailable)? else {
                return Ok(None);
            };
            Ok(live_value(entry.value(), now)?.map(<[u8]>::to_vec))
        })
        .await
    }

    async fn put(
        &self,
        ns: Namespace,
        key: &str,
        value: Vec<u8>,
        expires_at: UnixTime,
    ) -> Result<(), StoreError> {
        if let Some(memory) = self.in_memory(ns) {
            memory.put(key, value, expires_at, self.clock.now());
            return Ok(());
        }
        let k = full_key(ns, key);
        self.kv_write(move |t, _| {
            t.insert(k.as_str(), encode_entry(expires_at, &value).as_slice())
                .map_err(unavailable)?;
            Ok(())
        })
        .await
    }

    async fn take(&self, ns: Namespace, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        if let Some(memory) = self.in_memory(ns) {
            return Ok(memory.take(key, self.clock.now()));
        }
        let k = full_key(ns, key);
        self.kv_write(move |t, now| {
            let Some(entry) = t.remove(k.as_str()).map_err(unavailable)? else {
                return Ok(None);
            };
            Ok(live_value(entry.value(), now)?.map(<[u8]>::to_vec))
        })
        .await
    }

    async fn delete(&self, ns: Namespace, key: &str) -> Result<(), StoreError> {
        if let Some(memory) = self.in_memory(ns) {
            memory.delete(key);
            return Ok(());
        }
        let k = full_key(ns, key);
        self.kv_write(move |t, _| {
            t.remove(k.as_str()).map_err(unavailable)?;
            Ok(())
        })
        .await
    }

    async fn update(&self, ns: Namespace, key: &str, f: UpdateFn) -> Result<bool, StoreError> {
        if let Some(memory) = self.in_memory(ns) {
            return Ok(memory.update(key, &f, self.clock.now()));
        }
        let k = full_key(ns, key);
        self.kv_write(move |t, now| {
            let current = t
                .get(k.as_str())
                .map_err(unavailable)?
                .map(|entry| entry.value().to_vec());
            let live = match &current {
                Some(entry) => live_value(entry, now)?,
                None => None,
            };
            let Some((value, expires_at)) = f(live) else {
                return Ok(false);
            };
            t.insert(k.as_str(), encode_entry(expires_at, &value).as_slice())
                .map_err(unavailable)?;
            Ok(true)
        })
        .await
    }

    async fn count(&self, ns: Namespace) -> Result<usize, StoreError> {
        if let Some(memory) = self.in_memory(ns) {
            return Ok(memory.count(self.clock.now()));
        }
        let prefix = full_key(ns, "");
        self.blocking(move |db, now| {
            let tx = db.begin_read().map_err(unavailable)?;
            let table = tx.open_table(KV).map_err(unavailable)?;
            let mut n = 0;
            for item in table.range(prefix.as_str()..).map_err(unavailable)? {
                let (k, v) = item.map_err(unavailable)?;
                if !k.value().starts_with(prefix.as_str()) {
                    break;
                }
                if live_value(v.value(), now)?.is_some() {
                    n += 1;
                }
            }
            Ok(n)
        })
        .await
    }

    async fn queue_put(
        &self,
        id: &str,
        group: &str,
        payload: Vec<u8>,
        due_at: UnixTime,
    ) -> Result<(), StoreError> {
        let (id, group) = (id.to_owned(), group.to_owned());
        // Every real due time stays below u64::MAX: `group_heads` seeks past a
        // group with (group, u64::MAX, "").
        let due_at = due_at.min(u64::MAX - 1);
        self.blocking(move |db, _| {
            Self::queue_write(db, |q| {
                // A leased item keeps its lease end as its due time; the
                // lease remembers when the new payload is due.
                let leased = q.leases.get(id.as_str()).map_err(unavailable)?.is_some();
                let due = match q.get(&id)? {
                    Some((lease_end, _, _)) if leased => {
                        q.leases.insert(id.as_str(), due_at).map_err(unavailable)?;
                        lease_end
                    }
                    _ => due_at,
                };
                q.set(&id, &group, &payload, due)
            })
        })
        .await
    }

    async fn queue_claim(
        &self,
        now: UnixTime,
        lease_until: UnixTime,
        busy: &[String],
    ) -> Result<Option<Queued>, StoreError> {
        let busy = busy.to_vec();
        self.blocking(move |db, _| {
            Self::queue_write(db, |q| {
                let first = q
                    .group_heads()?
                    .into_iter()
                    .filter(|(group, due, _)| *due <= now && !busy.contains(group))
                    .min_by_key(|(_, due, _)| *due);
                let Some((group, due, id)) = first else {
                    return Ok(None);
                };
                let Some((_, payload, _)) = q.get(&id)? else {
                    // An order entry without its item: drop it, or it
                    // would stay first and hide every other item.
                    q.order
                        .remove((group.as_str(), due, id.as_str()))
                        .map_err(unavailable)?;
                    return Ok(None);
                };
                // A lease that ran out may record a later due time for a
                // payload put meanwhile (a composite score's delay).
                let after = q
                    .leases
                    .get(id.as_str())
                    .map_err(unavailable)?
                    .map(|a| a.value());
                if let Some(after) = after.filter(|a| *a > now) {
                    q.set(&id, &group, &payload, after)?;
                    q.leases.remove(id.as_str()).map_err(unavailable)?;
                    return Ok(None);
                }
                q.set(&id, &group, &payload, lease_until)?;
                q.leases
                    .insert(id.as_str(), after.unwrap_or(due))
                    .map_err(unavailable)?;
                Ok(Some(Queued {
                    id,
                    group,
                    payload,
                    due_at: lease_until,
                }))
            })
        })
        .await
    }

    async fn queue_renew(&self, id: &str, lease_until: UnixTime) -> Result<bool, StoreError> {
        let id = id.to_owned();
        self.blocking(move |db, _| {
            Self::queue_write(db, |q| {
                if q.leases.get(id.as_str()).map_err(unavailable)?.is_none() {
                    return Ok(false);
                }
                let Some((_, payload, group)) = q.get(&id)? else {
                    return Ok(false);
                };
                q.set(&id, &group, &payload, lease_until)?;
                Ok(true)
            })
        })
        .await
    }

    async fn queue_finish(
        &self,
        id: &str,
        claimed: &[u8],
        next: Option<(Vec<u8>, UnixTime)>,
    ) -> Result<bool, StoreError> {
        let (id, claimed) = (id.to_owned(), claimed.to_vec());
        self.blocking(move |db, _| {
            Self::queue_write(db, |q| {
                let after = q
                    .leases
                    .remove(id.as_str())
                    .map_err(unavailable)?
                    .map(|a| a.value());
                let Some((_, current, group)) = q.get(&id)? else {
                    return Ok(false);
                };
                if current != claimed {
                    // Superseded: the new payload is due when its put asked.
                    if let Some(after) = after {
                        q.set(&id, &group, &current, after)?;
                    }
                    return Ok(false);
                }
                match next {
                    None => q.remove(&id)?,
                    Some((payload, due)) => q.set(&id, &group, &payload, due)?,
                }
                Ok(true)
            })
        })
        .await
    }

    async fn queue_get(&self, id: &str) -> Result<Option<Queued>, StoreError> {
        let id = id.to_owned();
        self.blocking(move |db, _| {
            let tx = db.begin_read().map_err(unavailable)?;
            let items = tx.open_table(QUEUE_ITEMS).map_err(unavailable)?;
            let groups = tx.open_table(QUEUE_GROUPS).map_err(unavailable)?;
            let Some(entry) = items.get(id.as_str()).map_err(unavailable)? else {
                return Ok(None);
            };
            let (due_at, payload) = split_due(entry.value());
            let group = groups.get(id.as_str()).map_err(unavailable)?;
            Ok(Some(Queued {
                group: group.map(|g| g.value().to_owned()).unwrap_or_default(),
                id,
                payload,
                due_at,
            }))
        })
        .await
    }

    async fn queue_list(&self) -> Result<Vec<Queued>, StoreError> {
        self.blocking(move |db, _| {
            let tx = db.begin_read().map_err(unavailable)?;
            let items = tx.open_table(QUEUE_ITEMS).map_err(unavailable)?;
            let groups = tx.open_table(QUEUE_GROUPS).map_err(unavailable)?;
            let mut out = Vec::new();
            for item in items.iter().map_err(unavailable)? {
                let (k, v) = item.map_err(unavailable)?;
                let (due_at, payload) = split_due(v.value());
                let group = groups.get(k.value()).map_err(unavailable)?;
                out.push(Queued {
                    id: k.value().to_owned(),
                    group: group.map(|g| g.value().to_owned()).unwrap_or_default(),
                    payload,
                    due_at,
                });
            }
            out.sort_by(|a, b| (a.due_at, &a.id).cmp(&(b.due_at, &b.id)));
            Ok(out)
        })
        .await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.blocking(|db, _| {
            let tx = db.begin_read().map_err(unavailable)?;
            tx.open_table(KV).map_err(unavailable)?;
            Ok(())
        })
        .await
    }
}
