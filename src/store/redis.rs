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

// The work queue. KEYS, in every queue script:
//   1 items:  hash, id → payload;
//   2 due:    the base name of the due sets: one sorted set of id by due
//             time per group (`<due>:<group>`; group "" is `<due>` itself,
//             which is where items written before groups existed are);
//   3 groups: hash, id → group (absent: group "");
//   4 leases: hash, id of a claimed item → when it is due once given back;
//   5 groupset: set of the groups that may hold items.
// The due-set names are made inside the scripts from KEYS[2]; they share its
// prefix, so a hash tag in `key_prefix` keeps them on one Cluster slot.
const QUEUE_LUA_PRELUDE: &str = r"
local function due_key(group)
  if group == '' then return KEYS[2] end
  return KEYS[2] .. ':' .. group
end
local function group_of(id)
  return redis.call('HGET', KEYS[3], id) or ''
end
";

/// Puts an item (ARGV: id, payload, due, group). A leased item keeps its
/// lease end as its due time, and the lease records the new due time.
const QUEUE_PUT_SCRIPT: &str = r"
local id, due, group = ARGV[1], ARGV[3], ARGV[4]
local old = group_of(id)
local score = due
if redis.call('HEXISTS', KEYS[4], id) == 1 then
  score = redis.call('ZSCORE', due_key(old), id) or due
  redis.call('HSET', KEYS[4], id, due)
end
if old ~= group then redis.call('ZREM', due_key(old), id) end
redis.call('HSET', KEYS[1], id, ARGV[2])
if group == '' then
  redis.call('HDEL', KEYS[3], id)
else
  redis.call('HSET', KEYS[3], id, group)
  redis.call('SADD', KEYS[5], group)
end
redis.call('ZADD', due_key(group), score, id)
return 1
";

/// Claims the earliest item due at ARGV[1] in a group not listed after
/// ARGV[2] (the lease end): moves its due time to the lease end and records
/// the due time it had in the lease. Returns {id, payload, group}.
const QUEUE_CLAIM_SCRIPT: &str = r"
local now = tonumber(ARGV[1])
local busy = {}
for i = 3, #ARGV do busy[ARGV[i]] = true end
local best_id, best_due, best_group, best_at
local function consider(group)
  if busy[group] then return end
  local head = redis.call('ZRANGE', due_key(group), 0, 0, 'WITHSCORES')
  if #head == 0 then
    if group ~= '' then redis.call('SREM', KEYS[5], group) end
    return
  end
  local due = tonumber(head[2])
  if due <= now and (best_at == nil or due < best_at) then
    best_id, best_due, best_group, best_at = head[1], head[2], group, due
  end
end
consider('')
for _, group in ipairs(redis.call('SMEMBERS', KEYS[5])) do consider(group) end
if not best_id then return nil end
local payload = redis.call('HGET', KEYS[1], best_id)
if not payload then
  redis.call('ZREM', due_key(best_group), best_id)
  return nil
end
-- A lease left by a holder that died (it ran out) may record a later due
-- time for a payload put meanwhile (a composite score's delay): honour it.
local after = redis.call('HGET', KEYS[4], best_id)
if after and tonumber(after) > now then
  redis.call('ZADD', due_key(best_group), after, best_id)
  redis.call('HDEL', KEYS[4], best_id)
  return nil
end
redis.call('ZADD', due_key(best_group), ARGV[2], best_id)
redis.call('HSET', KEYS[4], best_id, after or best_due)
return {best_id, payload, best_group}
";

/// Extends a lease (ARGV: id, lease end). 0 when the item is not leased.
const QUEUE_RENEW_SCRIPT: &str = r"
if redis.call('HEXISTS', KEYS[4], ARGV[1]) == 0 then return 0 end
local key = due_key(group_of(ARGV[1]))
if not redis.call('ZSCORE', key, ARGV[1]) then return 0 end
redis.call('ZADD', key, ARGV[2], ARGV[1])
return 1
";

/// Deletes or replaces an item if its payload is still the claimed one
/// (ARGV: id, claimed, '1' or '0', next payload, next due). Otherwise gives
/// the lease back: a superseding payload becomes due when its put asked.
const QUEUE_FINISH_SCRIPT: &str = r"
local id = ARGV[1]
local group = group_of(id)
local current = redis.call('HGET', KEYS[1], id)
local after = redis.call('HGET', KEYS[4], id)
redis.call('HDEL', KEYS[4], id)
if current ~= ARGV[2] then
  if current and after then redis.call('ZADD', due_key(group), after, id) end
  return 0
end
if ARGV[3] == '1' then
  redis.call('HSET', KEYS[1], id, ARGV[4])
  redis.call('ZADD', due_key(group), ARGV[5], id)
else
  redis.call('HDEL', KEYS[1], id)
  redis.call('HDEL', KEYS[3], id)
  redis.call('ZREM', due_key(group), id)
end
return 1
";

/// One item: {payload, due, group}, or nil.
const QUEUE_GET_SCRIPT: &str = r"
local payload = redis.call('HGET', KEYS[1], ARGV[1])
if not payload then return nil end
local group = group_of(ARGV[1])
return {payload, redis.call('ZSCORE', due_key(group), ARGV[1]) or '0', group}
";

/// Every item's id, group and due time: {id, group, due, ...}.
const QUEUE_LIST_SCRIPT: &str = r"
local out = {}
local function add(group)
  local entries = redis.call('ZRANGE', due_key(group), 0, -1, 'WITHSCORES')
  for i = 1, #entries, 2 do
    out[#out + 1] = entries[i]
    out[#out + 1] = group
    out[#out + 1] = entries[i + 1]
  end
end
add('')
for _, group in ipairs(redis.call('SMEMBERS', KEYS[5])) do add(group) end
return out
";

/// A queue script: the shared Lua functions, then `body`.
fn queue_script(body: &str) -> redis::Script {
    redis::Script::new(&format!("{QUEUE_LUA_PRELUDE}{body}"))
}

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
    queue_renew: redis::Script,
    queue_finish: redis::Script,
    queue_get: redis::Script,
    queue_list: redis::Script,
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
            queue_put: queue_script(QUEUE_PUT_SCRIPT),
            queue_claim: queue_script(QUEUE_CLAIM_SCRIPT),
            queue_renew: queue_script(QUEUE_RENEW_SCRIPT),
            queue_finish: queue_script(QUEUE_FINISH_SCRIPT),
            queue_get: queue_script(QUEUE_GET_SCRIPT),
            queue_list: queue_script(QUEUE_LIST_SCRIPT),
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

    /// A queue script's call with its five keys (see `QUEUE_LUA_PRELUDE`).
    fn queue_call<'s>(&self, script: &'s redis::Script) -> redis::ScriptInvocation<'s> {
        let mut call = script.prepare_invoke();
        for name in ["items", "due", "groups", "leases", "groupset"] {
            call.key(format!("{}queue:{name}", self.prefix));
        }
        call
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
        group: &str,
        payload: Vec<u8>,
        due_at: UnixTime,
    ) -> Result<(), StoreError> {
        self.queue_call(&self.queue_put)
            .arg(id)
            .arg(payload)
            .arg(due_at)
            .arg(group)
            .invoke_async::<i64>(&mut self.conn()?)
            .await
            .map(drop)
            .map_err(unavailable)
    }

    async fn queue_claim(
        &self,
        now: UnixTime,
        lease_until: UnixTime,
        busy: &[String],
    ) -> Result<Option<Queued>, StoreError> {
        let mut call = self.queue_call(&self.queue_claim);
        call.arg(now).arg(lease_until).arg(busy);
        let claimed: Option<(String, Vec<u8>, String)> = call
            .invoke_async(&mut self.conn()?)
            .await
            .map_err(unavailable)?;
        Ok(claimed.map(|(id, payload, group)| Queued {
            id,
            group,
            payload,
            due_at: lease_until,
        }))
    }

    async fn queue_renew(&self, id: &str, lease_until: UnixTime) -> Result<bool, StoreError> {
        let renewed: i64 = self
            .queue_call(&self.queue_renew)
            .arg(id)
            .arg(lease_until)
            .invoke_async(&mut self.conn()?)
            .await
            .map_err(unavailable)?;
        Ok(renewed > 0)
    }

    async fn queue_finish(
        &self,
        id: &str,
        claimed: &[u8],
        next: Option<(Vec<u8>, UnixTime)>,
    ) -> Result<bool, StoreError> {
        let mut call = self.queue_call(&self.queue_finish);
        call.arg(id).arg(claimed);
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
        let found: Option<(Vec<u8>, f64, String)> = self
            .queue_call(&self.queue_get)
            .arg(id)
            .invoke_async(&mut self.conn()?)
            .await
            .map_err(unavailable)?;
        Ok(found.map(|(payload, due, group)| Queued {
            id: id.to_owned(),
            group,
            payload,
            due_at: due as UnixTime,
        }))
    }

    async fn queue_list(&self) -> Result<Vec<Queued>, StoreError> {
        let entries: Vec<(String, String, f64)> = self
            .queue_call(&self.queue_list)
            .invoke_async(&mut self.conn()?)
            .await
            .map_err(unavailable)?;
        let mut out = Vec::with_capacity(entries.len());
        // One item at a time: a queue of thousands is listed by an operator,
        // not on a request path.
        for (id, _, _) in entries {
            if let Some(item) = self.queue_get(&id).await? {
                out.push(item);
            }
        }
        out.sort_by(|a, b| (a.due_at, &a.id).cmp(&(b.due_at, &b.id)));
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
