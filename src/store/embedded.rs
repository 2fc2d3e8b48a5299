//! The embedded store: one redb file on local disk.
//!
//! Every write is a redb transaction committed durably, so sessions and login
//! state survive a restart. redb serialises write transactions, which is what
//! makes `take`, `put_new` and `update` atomic here. redb is blocking, so every
//! call runs on tokio's blocking pool. Expired entries are invisible to readers
//! at once and removed by a periodic sweep.

use std::path::Path;
use std::sync::{Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use super::{Namespace, Store, StoreError, UpdateFn, encode_entry, live_value};
use crate::clock::{Clock, UnixTime};

const KV: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("kv");
const SWEEP_EVERY: Duration = Duration::from_secs(60);

pub struct EmbeddedStore {
    db: Arc<Database>,
    clock: Arc<dyn Clock>,
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
        let db = Database::create(path)
            .map_err(|e| unavailable(format!("cannot open {}: {e}", path.display())))?;
        let tx = db.begin_write().map_err(unavailable)?;
        tx.open_table(KV).map_err(unavailable)?;
        tx.commit().map_err(unavailable)?;
        let db = Arc::new(db);
        spawn_sweeper(Arc::downgrade(&db), clock.clone());
        Ok(Self { db, clock })
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Database, UnixTime) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let db = self.db.clone();
        let now = self.clock.now();
        tokio::task::spawn_blocking(move || f(&db, now))
            .await
            .map_err(unavailable)?
    }

    fn write<T>(
        db: &Database,
        f: impl FnOnce(&mut redb::Table<'_, &str, &[u8]>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let tx = db.begin_write().map_err(unavailable)?;
        let out = {
            let mut table = tx.open_table(KV).map_err(unavailable)?;
            f(&mut table)?
        };
        tx.commit().map_err(unavailable)?;
        Ok(out)
    }
}

fn spawn_sweeper(db: Weak<Database>, clock: Arc<dyn Clock>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(SWEEP_EVERY);
        tick.tick().await;
        loop {
            tick.tick().await;
            let Some(db) = db.upgrade() else { return };
            let now = clock.now();
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
        let k = full_key(ns, key);
        self.blocking(move |db, _| {
            Self::write(db, |t| {
                t.insert(k.as_str(), encode_entry(expires_at, &value).as_slice())
                    .map_err(unavailable)?;
                Ok(())
            })
        })
        .await
    }

    async fn take(&self, ns: Namespace, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let k = full_key(ns, key);
        self.blocking(move |db, now| {
            Self::write(db, |t| {
                let Some(entry) = t.remove(k.as_str()).map_err(unavailable)? else {
                    return Ok(None);
                };
                Ok(live_value(entry.value(), now)?.map(<[u8]>::to_vec))
            })
        })
        .await
    }

    async fn delete(&self, ns: Namespace, key: &str) -> Result<(), StoreError> {
        let k = full_key(ns, key);
        self.blocking(move |db, _| {
            Self::write(db, |t| {
                t.remove(k.as_str()).map_err(unavailable)?;
                Ok(())
            })
        })
        .await
    }

    async fn update(&self, ns: Namespace, key: &str, f: UpdateFn) -> Result<bool, StoreError> {
        let k = full_key(ns, key);
        self.blocking(move |db, now| {
            Self::write(db, |t| {
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
        })
        .await
    }

    async fn count(&self, ns: Namespace) -> Result<usize, StoreError> {
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

    async fn ping(&self) -> Result<(), StoreError> {
        self.blocking(|db, _| {
            let tx = db.begin_read().map_err(unavailable)?;
            tx.open_table(KV).map_err(unavailable)?;
            Ok(())
        })
        .await
    }
}
