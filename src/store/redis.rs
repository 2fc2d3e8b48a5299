//! The Redis store, shared by any number of gateway replicas.
//!
//! Uses a reconnecting [`ConnectionManager`]: when Redis goes away, calls fail
//! fast with [`StoreError::Unavailable`] and the gateway answers 503; when it
//! comes back, the manager reconnects and service resumes by itself. Each
//! thread that uses the store gets a connection of its own, driven by that
//! thread's runtime: a serving thread's commands then never wait for another
//! thread to wake up and do their I/O. A command whose connection attempt was
//! refused is sent once more on a fresh attempt (see [`Conn`]), and the store
//! speaks RESP3 so that a connection Redis closed is replaced at once (see
//! [`RedisStore::open_with_ca`]): the first request on each thread after Redis
//! returns is served, not refused. Every key carries a Redis TTL.
//! Single-use values are consumed with `GETDEL`, and `update` is a
//! compare-and-set script retried on conflict, so no replica can win a race
//! it should lose.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::thread::ThreadId;
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::{Cmd, IntoConnectionInfo as _, Pipeline, ProtocolVersion, RedisFuture, Value};

use super::{Namespace, Queued, Store, StoreError, UpdateFn, encode_entry, live_value};
use crate::clock::{Clock, UnixTime};

/// How many times `update` retries when another writer got there first.
const MAX_CAS_ATTEMPTS: usize = 32;

/// Sets KEYS[1] to ARGV[3] with TTL ARGV[4] ms if its current value is still
/// the one the caller read: absent when ARGV[1] is "0", ARGV[2] when "1".
const CAS_SCRIPT: &str = r"
local cur = redis.call('GET', KEYS[1])
if ARGV[1] == '0' then
  if cur then return 0 end
elseif cur ~= ARGV[2] then
  return 0
end
redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[4])
return 1
";

/// Queue: a hash of id → payload and a sorted set of id by due time.
const QUEUE_PUT_SCRIPT: &str = r"
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
return 1
";

/// Claims the earliest due item: moves its due time to the lease end.
const QUEUE_CLAIM_SCRIPT: &str = r"
local ids = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1], 'LIMIT', 0, 1)
if #ids == 0 then return nil end
local id = ids[1]
local payload = redis.call('HGET', KEYS[1], id)
if not payload then
  redis.call('ZREM', KEYS[2], id)
  return nil
end
redis.call('ZADD', KEYS[2], ARGV[2], id)
return {id, payload}
";

/// Deletes or replaces an item if its payload is still the claimed one.
const QUEUE_FINISH_SCRIPT: &str = r"
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
if ARGV[3] == '1' then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[4])
  redis.call('ZADD', KEYS[2], ARGV[5], ARGV[1])
else
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('ZREM', KEYS[2], ARGV[1])
end
return 1
";

/// How a Redis URL connects, as far as the config must know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UrlSecurity {
    Plain,
    /// `rediss://`, with the server's certificate checked.
    Tls,
    /// `rediss://…#insecure`: TLS without the certificate check.
    TlsUnchecked,
}

/// Parses a store URL the way the connection will (the redis crate's own
/// parser), for config validation.
pub fn url_security(url: &str) -> Result<UrlSecurity, String> {
    let info = url.into_connection_info().map_err(|e| e.to_string())?;
    Ok(match info.addr() {
        redis::ConnectionAddr::TcpTls { insecure: true, .. } => UrlSecurity::TlsUnchecked,
        redis::ConnectionAddr::TcpTls { .. } => UrlSecurity::Tls,
        _ => UrlSecurity::Plain,
    })
}

pub struct RedisStore {
    client: redis::Client,
    config: ConnectionManagerConfig,
    /// The connection of each thread that has used the store.
    conns: Mutex<HashMap<ThreadId, Conn>>,
    prefix: String,
    clock: Arc<dyn Clock>,
    cas: redis::Script,
    queue_put: redis::Script,
    queue_claim: redis::Script,
    queue_finish: redis::Script,
}

/// A thread's connection, which retries a command once when its connection
/// attempt was refused.
///
/// After a failed connection attempt the manager keeps the failure and hands
/// it to the next command, which only then starts a new attempt. Once Redis is
/// back, that stale refusal would fail the first request on every thread. A
/// refusal happens before anything is sent, so sending the command again on
/// the manager's new attempt cannot run it twice. Other errors are returned as
/// they are: a dropped connection may have run the command already.
#[derive(Clone)]
struct Conn(ConnectionManager);

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            match self.0.send_packed_command(cmd).await {
                Err(e) if e.is_connection_refusal() => self.0.send_packed_command(cmd).await,
                result => result,
            }
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            match self.0.send_packed_commands(pipeline, offset, count).await {
                Err(e) if e.is_connection_refusal() => {
                    self.0.send_packed_commands(pipeline, offset, count).await
                }
                result => result,
            }
        })
    }

    fn get_db(&self) -> i64 {
        self.0.get_db()
    }
}

fn unavailable(e: redis::RedisError) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

impl RedisStore {
    /// Prepares a lazily connecting client: each thread connects on its first
    /// command. See [`open_with_ca`](Self::open_with_ca).
    pub fn open(url: &str, prefix: &str, clock: Arc<dyn Clock>) -> Result<Self, StoreError> {
        Self::open_with_ca(url, prefix, None, clock)
    }

    /// As [`open`](Self::open); with `ca_pem`, a `rediss://` server's
    /// certificate must chain to one of those PEM certificates instead of to a
    /// public root.
    ///
    /// Speaks RESP3 (Redis 6 or later), whatever the URL says: on RESP3 the
    /// manager hears at once when Redis closes a connection, and starts a new
    /// one. A thread that was idle through an outage then has no dead
    /// connection left to fail its first request with.
    pub fn open_with_ca(
        url: &str,
        prefix: &str,
        ca_pem: Option<&[u8]>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, StoreError> {
        let info = url.into_connection_info().map_err(unavailable)?;
        let settings = info
            .redis_settings()
            .clone()
            .set_protocol(ProtocolVersion::RESP3);
        let info = info.set_redis_settings(settings);
        let client = match ca_pem {
            None => redis::Client::open(info),
            Some(pem) => redis::Client::build_with_tls(
                info,
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(pem.to_vec()),
                },
            ),
        }
        .map_err(unavailable)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(2)))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(200));
        Ok(Self {
            client,
            config,
            conns: Mutex::new(HashMap::new()),
            prefix: prefix.to_owned(),
            clock,
            cas: redis::Script::new(CAS_SCRIPT),
            queue_put: redis::Script::new(QUEUE_PUT_SCRIPT),
            queue_claim: redis::Script::new(QUEUE_CLAIM_SCRIPT),
            queue_finish: redis::Script::new(QUEUE_FINISH_SCRIPT),
        })
    }

    /// This thread's connection, made (lazily connecting, on this thread's
    /// runtime) on its first use. Its driver stays on the runtime that first
    /// used it, so a thread keeps one runtime while the store lives, as the
    /// gateway's serving threads and its main runtime do.
    fn conn(&self) -> Result<Conn, StoreError> {
        let thread = std::thread::current().id();
        let mut conns = self.conns.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(conn) = conns.get(&thread) {
            return Ok(conn.clone());
        }
        let conn = Conn(
            ConnectionManager::new_lazy_with_config(self.client.clone(), self.config.clone())
                .map_err(unavailable)?,
        );
        conns.insert(thread, conn.clone());
        Ok(conn)
    }

    fn queue_keys(&self) -> (String, String) {
        (
            format!("{}queue:items", self.prefix),
            format!("{}queue:due", self.prefix),
        )
    }

    fn key(&self, ns: Namespace, key: &str) -> String {
        format!("{}{}:{key}", self.prefix, ns.as_str())
    }

    /// Milliseconds until `expires_at`, at least 1.
    fn ttl_ms(&self, expires_at: UnixTime) -> u64 {
        expires_at.saturating_sub(self.clock.now()).max(1) * 1000
    }

    fn live(&self, raw: Option<Vec<u8>>) -> Result<Option<Vec<u8>>, StoreError> {
        match raw {
            None => Ok(None),
            Some(entry) => Ok(live_value(&entry, self.clock.now())?.map(<[u8]>::to_vec)),
        }
    }
}

/// `text` as a Redis glob pattern that matches only itself: a key prefix
/// may hold `*`, `?`, `[`, `]` or `\`.
fn glob_escaped(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[async_trait]
impl Store for RedisStore {
    async fn get(&self, ns: Namespace, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let raw: Option<Vec<u8>> = redis::cmd("GET")
            .arg(self.key(ns, key))
            .query_async(&mut self.conn()?)
            .await
            .map_err(unavailable)?;
        self.live(raw)
    }

    async fn put(
        &self,
        ns: Namespace,
        key: &str,
        value: Vec<u8>,
        expires_at: UnixTime,
    ) -> Result<(), StoreError> {
        redis::cmd("SET")
            .arg(self.key(ns, key))
            .arg(encode_entry(expires_at, &value))
            .arg("PX")
            .arg(self.ttl_ms(expires_at))
            .query_async::<()>(&mut self.conn()?)
            .await
            .map_err(unavailable)
    }

    async fn take(&self, ns: Namespace, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let raw: Option<Vec<u8>> = redis::cmd("GETDEL")
            .arg(self.key(ns, key))
            .query_async(&mut self.conn()?)
            .await
            .map_err(unavailable)?;
        self.live(raw)
    }

    async fn delete(&self, ns: Namespace, key: &str) -> Result<(), StoreError> {
        redis::cmd("DEL")
            .arg(self.key(ns, key))
            .query_async::<()>(&mut self.conn()?)
            .await
            .map_err(unavailable)
    }

    async fn update(&self, ns: Namespace, key: &str, f: UpdateFn) -> Result<bool, StoreError> {
        let k = self.key(ns, key);
        let mut conn = self.conn()?;
        for _ in 0..MAX_CAS_ATTEMPTS {
            let raw: Option<Vec<u8>> = redis::cmd("GET")
                .arg(&k)
                .query_async(&mut conn)
                .await
                .map_err(unavailable)?;
            let live = match &raw {
                Some(entry) => live_value(entry, self.clock.now())?,
                None => None,
            };
            let Some((value, expires_at)) = f(live) else {
                return Ok(false);
            };
            let mut call = self.cas.key(&k);
            match &raw {
                None => call.arg("0").arg(""),
                Some(entry) => call.arg("1").arg(entry.as_slice()),
            };
            let written: i64 = call
                .arg(encode_entry(expires_at, &value))
                .arg(self.ttl_ms(expires_at))
                .invoke_async(&mut conn)
                .await
                .map_err(unavailable)?;
            if written == 1 {
                return Ok(true);
            }
        }
        Err(StoreError::Unavailable(
            "too much contention on one key".to_owned(),
        ))
    }

    async fn count(&self, ns: Namespace) -> Result<usize, StoreError> {
        let prefix = self.key(ns, "");
        let pattern = format!("{}*", glob_escaped(&prefix));
        let mut conn = self.conn()?;
        let mut cursor: u64 = 0;
        let mut n = 0;
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut conn)
                .await
                .map_err(unavailable)?;
            for k in keys.into_iter().filter(|k| k.starts_with(&prefix)) {
                let raw: Option<Vec<u8>> = redis::cmd("GET")
                    .arg(&k)
                    .query_async(&mut conn)
                    .await
                    .map_err(unavailable)?;
                if self.live(raw)?.is_some() {
                    n += 1;
                }
            }
            if next == 0 {
                return Ok(n);
            }
            cursor = next;
        }
    }

    async fn queue_put(
        &self,
        id: &str,
        payload: Vec<u8>,
        due_at: UnixTime,
    ) -> Result<(), StoreError> {
        let (items, due) = self.queue_keys();
        self.queue_put
            .key(items)
            .key(due)
            .arg(id)
            .arg(payload)
            .arg(due_at)
            .invoke_async::<i64>(&mut self.conn()?)
            .await
            .map(drop)
            .map_err(unavailable)
    }

    async fn queue_claim(
        &self,
        now: UnixTime,
        lease_until: UnixTime,
    ) -> Result<Option<Queued>, StoreError> {
        let (items, due) = self.queue_keys();
        let claimed: Option<(String, Vec<u8>)> = self
            .queue_claim
            .key(items)
            .key(due)
            .arg(now)
            .arg(lease_until)
            .invoke_async(&mut self.conn()?)
            .await
            .map_err(unavailable)?;
        Ok(claimed.map(|(id, payload)| Queued {
            id,
            payload,
            due_at: lease_until,
        }))
    }

    async fn queue_finish(
        &self,
        id: &str,
        claimed: &[u8],
        next: Option<(Vec<u8>, UnixTime)>,
    ) -> Result<bool, StoreError> {
        let (items, due) = self.queue_keys();
        let mut call = self.queue_finish.key(items);
        call.key(due).arg(id).arg(claimed);
        match next {
            Some((payload, at)) => call.arg("1").arg(payload).arg(at),
            None => call.arg("0").arg("").arg(0),
        };
        let done: i64 = call
            .invoke_async(&mut self.conn()?)
            .await
            .map_err(unavailable)?;
        Ok(done == 1)
    }

    async fn queue_get(&self, id: &str) -> Result<Option<Queued>, StoreError> {
        let (items, due) = self.queue_keys();
        let mut conn = self.conn()?;
        let payload: Option<Vec<u8>> = redis::cmd("HGET")
            .arg(&items)
            .arg(id)
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        let Some(payload) = payload else {
            return Ok(None);
        };
        let score: Option<f64> = redis::cmd("ZSCORE")
            .arg(&due)
            .arg(id)
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(Some(Queued {
            id: id.to_owned(),
            payload,
            due_at: score.map_or(0, |s| s as u64),
        }))
    }

    async fn queue_list(&self) -> Result<Vec<Queued>, StoreError> {
        let (_, due) = self.queue_keys();
        let ids: Vec<String> = redis::cmd("ZRANGE")
            .arg(&due)
            .arg(0)
            .arg(-1)
            .query_async(&mut self.conn()?)
            .await
            .map_err(unavailable)?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(item) = self.queue_get(&id).await? {
                out.push(item);
            }
        }
        Ok(out)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        redis::cmd("PING")
            .query_async::<String>(&mut self.conn()?)
            .await
            .map(drop)
            .map_err(unavailable)
    }
}
