//! [`RedisStore`]: a store shared by several Tether nodes, on one Redis
//! (standalone, or the primary of a replicated setup). The design is described
//! on [`RedisStore`]; the keys are listed there too.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};
use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::streams::{StreamId, StreamRangeReply, StreamReadReply};
use redis::{AsyncConnectionConfig, Client, RedisError, RedisResult, Script, Value};

use super::{
    reaches, Append, AppendOnce, BoxFuture, Entry, EventLog, Feed, Health, InboxEntry, Inboxes,
    NewEntry, Retain, Retention, Seq, SessionRecord, Sessions, SharedFeed, StoreError,
    StreamRetention, Target,
};

/// Each attempt to open a connection gives up after this long.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// A command without an answer after this long fails (the connection is then
/// replaced).
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);
/// Upper bound of any one store operation, reconnection attempts included.
const OP_TIMEOUT: Duration = Duration::from_secs(10);
/// Reconnection attempts of one reconnection, after the first.
const RECONNECT_RETRIES: usize = 2;
/// How long a feed's XREAD blocks waiting for new entries before asking again.
const FEED_BLOCK: Duration = Duration::from_secs(2);
/// Entries a feed's XREAD brings at most at once.
const FEED_COUNT: usize = 1024;
/// Positions fetched per round trip by `read` and `history`.
const READ_CHUNK: usize = 1024;
/// Entries or sessions removed per trim script run (one script blocks Redis
/// while it runs, so each does a bounded amount of work).
const TRIM_CHUNK: usize = 512;
/// How much longer than the age retention an idempotency record lives. Trim
/// deletes a record with its entry; the TTL only reclaims a record whose entry
/// went some other way, so it must outlive the entry (trims run every 30 s).
const IDEMPOTENCY_TTL_MARGIN: Duration = Duration::from_secs(3600);
/// How long a node's connected sessions are held without a renewal of its
/// lease (three trims of a server).
const DEFAULT_SESSION_LEASE: Duration = Duration::from_secs(90);
/// Positions are Lua numbers (doubles) inside the scripts: exact up to 2^53.
const MAX_SEQ: Seq = (1 << 53) - 1;

/// Shared by every script: `ARGV[1]` is always the key prefix.
const LUA_COMMON: &str = r"
local P = ARGV[1]
local function fmt(n) return string.format('%d', n) end
local function room_key(nsp, room) return P .. ':r:' .. #nsp .. ':' .. nsp .. ':' .. room end
local function ns_key(nsp) return P .. ':n:' .. nsp end
local function idem_key(nsp, key) return P .. ':k:' .. #nsp .. ':' .. nsp .. ':' .. key end
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function epoch_ok()
  return redis.call('GET', P .. ':epoch') == ARGV[2]
end
local EPOCH_ERR = 'TETHERRESET the store was reset (its epoch changed): the node adopts the new one'
";

/// `append` and `append_once`: ARGV = prefix, epoch, count, then per entry:
/// has_key ('0'/'1'), key, nsp, room count, rooms..., rooms JSON, except JSON,
/// event, args, attachments. Returns per entry its position, negated for a
/// duplicate (the first append's position).
const LUA_APPEND: &str = r"
if not epoch_ok() then return redis.error_reply(EPOCH_ERR) end
local ts = now_ms()
local last_ts = tonumber(redis.call('GET', P .. ':ts') or '0')
if ts < last_ts then ts = last_ts end
local ttl = tonumber(redis.call('GET', P .. ':idem_ttl') or '0')
local out = {}
local appended = false
local i = 4
for _ = 1, tonumber(ARGV[3]) do
  local has_key, key, nsp, nrooms = ARGV[i], ARGV[i + 1], ARGV[i + 2], tonumber(ARGV[i + 3])
  local first_room = i + 4
  local j = first_room + nrooms
  i = j + 5
  local ikey = nil
  local prev = false
  if has_key == '1' then
    ikey = idem_key(nsp, key)
    prev = redis.call('GET', ikey)
  end
  if prev then
    out[#out + 1] = -tonumber(prev)
  else
    local seq = redis.call('INCR', P .. ':seq')
    local s = fmt(seq)
    if ikey then
      redis.call('XADD', P .. ':log', s .. '-0', 'n', nsp, 'r', ARGV[j], 'x', ARGV[j + 1],
        'e', ARGV[j + 2], 'a', ARGV[j + 3], 'b', ARGV[j + 4], 't', fmt(ts), 'k', key)
      if ttl > 0 then
        redis.call('SET', ikey, s, 'PX', ttl)
      else
        redis.call('SET', ikey, s)
      end
    else
      redis.call('XADD', P .. ':log', s .. '-0', 'n', nsp, 'r', ARGV[j], 'x', ARGV[j + 1],
        'e', ARGV[j + 2], 'a', ARGV[j + 3], 'b', ARGV[j + 4], 't', fmt(ts))
    end
    if nrooms == 0 then
      redis.call('ZADD', room_key(nsp, ''), seq, s)
    else
      for r = first_room, j - 1 do
        redis.call('ZADD', room_key(nsp, ARGV[r]), seq, s)
      end
    end
    redis.call('ZADD', ns_key(nsp), seq, s)
    redis.call('SADD', P .. ':nss', nsp)
    appended = true
    out[#out + 1] = seq
  end
end
if appended then redis.call('SET', P .. ':ts', fmt(ts)) end
return out
";

/// Removing entries, shared by the trim scripts.
const LUA_TRIM_COMMON: &str = r"
local trimmed_max = 0
local function fields_of(flat)
  local f = {}
  for j = 1, #flat, 2 do f[flat[j]] = flat[j + 1] end
  return f
end
local function del_entry(id, f)
  local s = string.match(id, '^(%d+)')
  local seq = tonumber(s)
  local nsp = f['n']
  local rooms = cjson.decode(f['r'])
  if #rooms == 0 then
    redis.call('ZREM', room_key(nsp, ''), s)
  else
    for _, room in ipairs(rooms) do redis.call('ZREM', room_key(nsp, room), s) end
  end
  redis.call('ZREM', ns_key(nsp), s)
  if redis.call('EXISTS', ns_key(nsp)) == 0 then redis.call('SREM', P .. ':nss', nsp) end
  if f['k'] then
    local ikey = idem_key(nsp, f['k'])
    if redis.call('GET', ikey) == s then redis.call('DEL', ikey) end
  end
  redis.call('XDEL', P .. ':log', id)
  if seq > trimmed_max then trimmed_max = seq end
end
local function finish()
  if trimmed_max > 0 then
    local old = tonumber(redis.call('GET', P .. ':trimmed') or '0')
    if trimmed_max > old then redis.call('SET', P .. ':trimmed', fmt(trimmed_max)) end
  end
end
";

/// Age retention, one chunk: ARGV = prefix, max age (ms), chunk. Entries are
/// in position order and timestamps never go back, so the expired ones are a
/// prefix of the log. Returns {removed, more}.
const LUA_TRIM_AGE: &str = r"
local chunk = tonumber(ARGV[3])
local cutoff = now_ms() - tonumber(ARGV[2])
local items = redis.call('XRANGE', P .. ':log', '-', '+', 'COUNT', chunk)
local removed = 0
local more = #items == chunk
for _, item in ipairs(items) do
  local f = fields_of(item[2])
  if tonumber(f['t']) >= cutoff then
    more = false
    break
  end
  del_entry(item[1], f)
  removed = removed + 1
end
finish()
return {removed, more and 1 or 0}
";

/// Count retention of one namespace, one chunk: ARGV = prefix, nsp, keep,
/// chunk. Returns {removed, more}.
const LUA_TRIM_COUNT: &str = r"
local nk = ns_key(ARGV[2])
local excess = redis.call('ZCARD', nk) - tonumber(ARGV[3])
if excess <= 0 then return {0, 0} end
local take = math.min(excess, tonumber(ARGV[4]))
local seqs = redis.call('ZRANGE', nk, 0, take - 1)
local removed = 0
for _, s in ipairs(seqs) do
  local items = redis.call('XRANGE', P .. ':log', s .. '-0', s .. '-0')
  if #items > 0 then
    del_entry(items[1][1], fields_of(items[1][2]))
    removed = removed + 1
  else
    redis.call('ZREM', nk, s)
  end
end
if redis.call('EXISTS', nk) == 0 then redis.call('SREM', P .. ':nss', ARGV[2]) end
finish()
return {removed, excess > take and 1 or 0}
";

/// Old disconnected sessions, one chunk: ARGV = prefix, before (ms), chunk.
/// Returns how many went.
const LUA_TRIM_SESSIONS: &str = r"
local idx = P .. ':sd'
local pids = redis.call('ZRANGEBYSCORE', idx, '-inf', '(' .. ARGV[2], 'LIMIT', 0, tonumber(ARGV[3]))
for _, pid in ipairs(pids) do
  redis.call('DEL', P .. ':s:' .. pid)
  redis.call('ZREM', idx, pid)
end
return #pids
";

/// The connected sessions of a node whose lease lapsed (it died without
/// closing them), one chunk: ARGV = prefix, owner, now (ms), chunk. Each
/// still connected and owned by it becomes disconnected as of now (then the
/// recovery window applies and the purge takes it). The session JSON is
/// edited as text: serde writes its fields in order, `connected` and
/// `updated_ms` just before `owner`, which is last, and only the top level
/// has unescaped quotes. Returns 1 while more may be left.
const LUA_RELEASE_OWNER: &str = r#"
local owner = ARGV[2]
local set = P .. ':so:' .. owner
local head = ',"connected":true,"updated_ms":'
local tail = ',"owner":"' .. owner .. '"}'
for _, pid in ipairs(redis.call('SRANDMEMBER', set, tonumber(ARGV[4]))) do
  local key = P .. ':s:' .. pid
  local json = redis.call('GET', key)
  if json and string.sub(json, -#tail) == tail then
    local i = string.find(json, head, 1, true)
    if i then
      json = string.sub(json, 1, i - 1) .. ',"connected":false,"updated_ms":' .. ARGV[3] .. '}'
      redis.call('SET', key, json)
      redis.call('ZADD', P .. ':sd', ARGV[3], pid)
    end
  end
  redis.call('SREM', set, pid)
end
if redis.call('SCARD', set) == 0 then
  redis.call('ZREM', P .. ':owners', owner)
  return 0
end
return 1
"#;

/// `inbox_push`: ARGV = prefix, epoch, user, payload. Returns the position.
const LUA_INBOX_PUSH: &str = r"
if not epoch_ok() then return redis.error_reply(EPOCH_ERR) end
local meta = P .. ':ia:' .. ARGV[3]
local upto = tonumber(redis.call('HGET', meta, 'upto') or '0')
local last = tonumber(redis.call('HGET', meta, 'last') or '0')
local seq = math.max(upto, last) + 1
redis.call('HSET', meta, 'last', fmt(seq))
redis.call('ZADD', P .. ':i:' .. ARGV[3], seq, fmt(seq) .. ':' .. fmt(now_ms()) .. ':' .. ARGV[4])
return seq
";

/// `inbox_ack`: ARGV = prefix, user, upto.
const LUA_INBOX_ACK: &str = r"
local meta = P .. ':ia:' .. ARGV[2]
local upto = tonumber(ARGV[3])
local old = tonumber(redis.call('HGET', meta, 'upto') or '0')
if upto > old then redis.call('HSET', meta, 'upto', fmt(upto)) end
redis.call('ZREMRANGEBYSCORE', P .. ':i:' .. ARGV[2], '-inf', fmt(upto))
return 0
";

/// The Lua scripts (sent once by SHA, loaded again after a Redis restart).
struct Scripts {
    append: Script,
    trim_age: Script,
    trim_count: Script,
    trim_sessions: Script,
    release_owner: Script,
    inbox_push: Script,
    inbox_ack: Script,
}

impl Scripts {
    fn new() -> Self {
        let with_common = |body: &str| Script::new(&format!("{LUA_COMMON}{body}"));
        let with_trim = |body: &str| Script::new(&format!("{LUA_COMMON}{LUA_TRIM_COMMON}{body}"));
        Scripts {
            append: with_common(LUA_APPEND),
            trim_age: with_trim(LUA_TRIM_AGE),
            trim_count: with_trim(LUA_TRIM_COUNT),
            trim_sessions: with_common(LUA_TRIM_SESSIONS),
            release_owner: with_common(LUA_RELEASE_OWNER),
            inbox_push: with_common(LUA_INBOX_PUSH),
            inbox_ack: with_common(LUA_INBOX_ACK),
        }
    }
}

/// The Redis backend: a store shared by several Tether nodes.
///
/// Every node connects with the same URL and prefix. A node's publisher only
/// appends; every node fans out what [`SharedFeed::feed`] brings, its own appends
/// included, in position order, so all nodes deliver in one order.
///
/// - Positions: one counter (`INCR`) per prefix. An append is ONE Lua script
///   (sent by SHA) that takes positions, writes the entries, indexes them and
///   records idempotency keys, atomically; a call of
///   [`EventLog::append_batch`] with several entries, plain and keyed, is one
///   script, one round trip. Concurrent calls share
///   one multiplexed connection, so they are pipelined.
/// - The log: one stream, `<prefix>:log`, with ids `<seq>-0` (so it is in
///   position order whichever node appended), holding each entry whole.
///   Feeds read it with a blocking `XREAD`, each on a connection of its own.
/// - Streams (rooms): a sorted set per (namespace, room), scored by position;
///   room `''` is the whole-namespace stream. A read is one `ZRANGEBYSCORE`
///   per room, merged by position, then the entries from the log: its cost
///   grows with what it returns, not with other rooms' traffic.
/// - Timestamps come from the Redis clock (`TIME`), never going back with
///   positions, so age retention removes a prefix of the log and every node
///   agrees on ages whatever its own clock.
/// - The epoch: a random id at `<prefix>:epoch`, set if absent when a node
///   connects. A flushed Redis (or a new prefix) is a new epoch. Appends check
///   it: after a flush, an append of a node started before it fails (its
///   clients' offsets would name positions of another life), and the node
///   adopts a new epoch (set if absent, as at connect): so do its feeds, which
///   check the epoch with every read, and health checks. The feed then ends
///   with an error and the next one starts in the new epoch, so the node
///   (see `SocketIo`) starts over from position 0 and closes its
///   connections: clients come back and are told "store reset". Health says
///   "store reset" from the adoption until a feed starts in the new epoch.
///
/// Keys (`P` is the prefix): `P:epoch`, `P:seq` (last position), `P:ts` (last
/// timestamp), `P:trimmed` (highest position trimmed), `P:log`,
/// `P:r:<len(nsp)>:<nsp>:<room>` and `P:n:<nsp>` (sorted sets of positions),
/// `P:nss` (namespaces with entries), `P:k:<len(nsp)>:<nsp>:<key>`
/// (idempotency record: the position), `P:idem_ttl`, `P:s:<pid>` (session, as
/// JSON), `P:sd` (disconnected sessions by time), `P:i:<user>` (inbox: sorted
/// set of entries), `P:ia:<user>` (inbox positions: `upto`, `last`),
/// `P:owners` (session leases: owner -> last renewal), `P:so:<owner>` (the
/// pids an owner holds connected) and `P:health_probe` (the probe write of a
/// health check after a failed write).
///
/// Deployment: one Redis server, not Redis Cluster (the scripts compute their
/// keys). Plain TCP (`redis://`); TLS would need one of the `redis` crate's
/// TLS features. Replication is asynchronous in Redis: a failover to a replica
/// may lose the last acknowledged writes and hand out their positions again
/// under the same epoch, so a promoted replica needs a new epoch (delete
/// `P:epoch` before the nodes reconnect).
///
/// Sessions of a node that died: each store (each node) has a random owner
/// id and holds its connected sessions under a lease, `P:owners` (owner ->
/// last renewal, renewed by each connected session save and each trim, which
/// a server runs every 30 s) with `P:so:<owner>` (its connected pids). A trim
/// that finds a lease older than [`RedisStore::with_session_lease`] (90 s by
/// default) marks that owner's sessions still connected as disconnected as of
/// then: the recovery window applies and the purge takes them, as on SQLite.
///
/// Durability is Redis's: with `appendonly yes` and `appendfsync always`, a
/// write that returned `Ok` survives a crash of Redis. Use
/// `maxmemory-policy noeviction`: an evicted key loses data silently.
///
/// Failures: every error is [`StoreError::Unavailable`]. Connections are
/// opened with a timeout, commands have a response timeout and every
/// operation an overall bound, so a Redis that is down makes operations fail,
/// never hang; the connection is re-established by itself when Redis returns.
/// Reads and idempotent writes are tried once more when the connection was
/// found dropped (the first command after a Redis restart); appends are not
/// (the first try may have been applied).
///
/// `trim` runs in chunks of bounded work (each chunk atomic), so a large trim
/// never blocks Redis for long; a trim that fails part way has removed whole
/// entries only, and the next one goes on.
pub struct RedisStore {
    epoch: Arc<EpochCell>,
    /// Why the last append failed (`None`: it went through).
    failure: Mutex<Option<String>>,
    /// Feeds made so far.
    feeds: AtomicUsize,
    /// This node's id for the sessions it holds connected.
    owner: String,
    /// How long an owner's sessions stay connected without a renewal.
    session_lease: Duration,
    prefix: String,
    client: Client,
    manager: Mutex<Option<ConnectionManager>>,
    scripts: Scripts,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("epoch", &self.epoch.get())
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

/// The epoch a node writes under, replaced when the store was reset. Each
/// epoch's text is leaked (a few bytes per connect and per reset), so that
/// [`EventLog::epoch`] can hand out a `&str` without a lock held.
struct EpochCell {
    current: RwLock<&'static str>,
    /// A new epoch was adopted and no feed started from it yet.
    reset_pending: AtomicBool,
}

impl EpochCell {
    fn new(epoch: String) -> Self {
        EpochCell {
            current: RwLock::new(Box::leak(epoch.into_boxed_str())),
            reset_pending: AtomicBool::new(false),
        }
    }

    fn get(&self) -> &'static str {
        *self.current.read()
    }

    /// Checks `P:epoch` against the node's; when it is gone (a flushed Redis)
    /// or another, sets a new one unless another node just did, and adopts
    /// what is there. True when the node's epoch changed.
    async fn sync<C>(&self, conn: &mut C, prefix: &str) -> RedisResult<bool>
    where
        C: redis::aio::ConnectionLike + Send,
    {
        let key = format!("{prefix}:epoch");
        let stored: Option<String> = redis::cmd("GET").arg(&key).query_async(conn).await?;
        if stored.as_deref() == Some(self.get()) {
            return Ok(false);
        }
        let (_, stored): (Value, Option<String>) = redis::pipe()
            .cmd("SET")
            .arg(&key)
            .arg(crate::id::random_id())
            .arg("NX")
            .cmd("GET")
            .arg(&key)
            .query_async(conn)
            .await?;
        let Some(stored) = stored else {
            return Ok(false);
        };
        let mut current = self.current.write();
        if *current == stored {
            return Ok(false);
        }
        tracing::warn!(
            old = *current,
            new = %stored,
            "the store was reset (its epoch changed): adopting the new epoch; \
             clients of the old one start over"
        );
        metrics::counter!("tether_store_resets_total").increment(1);
        *current = Box::leak(stored.into_boxed_str());
        self.reset_pending.store(true, Ordering::SeqCst);
        Ok(true)
    }
}

/// True when a store error is the scripts' epoch check failing.
fn is_reset(e: &StoreError) -> bool {
    matches!(e, StoreError::Unavailable(m) if m.contains("TETHERRESET"))
}

/// The reason for health, without the "store unavailable" of the error.
fn reason(e: &StoreError) -> String {
    match e {
        StoreError::Unavailable(m) => m.clone(),
        other => other.to_string(),
    }
}

fn unavailable(e: RedisError) -> StoreError {
    StoreError::Unavailable(format!("redis: {e}"))
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Unavailable(format!("redis: corrupt {what}"))
}

/// True for an error after which the same command may succeed on a new
/// connection.
fn connection_lost(e: &RedisError) -> bool {
    e.is_io_error() || e.is_connection_dropped() || e.is_unrecoverable_error()
}

/// Bounds `op` by [`OP_TIMEOUT`] and maps its error.
async fn bounded<T>(op: impl Future<Output = RedisResult<T>>) -> Result<T, StoreError> {
    match tokio::time::timeout(OP_TIMEOUT, op).await {
        Ok(result) => result.map_err(unavailable),
        Err(_) => Err(StoreError::Unavailable(format!(
            "redis: no answer within {OP_TIMEOUT:?}"
        ))),
    }
}

impl RedisStore {
    /// Connects to the Redis at `url` (`redis://host:port/db`, with
    /// `redis://user:pass@...` for ACLs) and uses the keys under `prefix:`.
    ///
    /// Every node sharing the store uses the same URL and prefix. The first
    /// node to connect to an empty Redis (or prefix) makes the epoch. This
    /// blocks for one round trip (bounded by a few seconds); the connection
    /// used by operations is opened at the first one (within a tokio runtime).
    pub fn connect(url: &str, prefix: &str) -> Result<Self, StoreError> {
        if prefix.is_empty() {
            return Err(StoreError::Unavailable(
                "redis: the key prefix must not be empty".into(),
            ));
        }
        let client = Client::open(url).map_err(unavailable)?;
        let mut conn = client
            .get_connection_with_timeout(CONNECT_TIMEOUT)
            .map_err(unavailable)?;
        conn.set_read_timeout(Some(RESPONSE_TIMEOUT))
            .and_then(|()| conn.set_write_timeout(Some(RESPONSE_TIMEOUT)))
            .map_err(unavailable)?;
        let key = format!("{prefix}:epoch");
        let (_, epoch): (Value, Option<String>) = redis::pipe()
            .cmd("SET")
            .arg(&key)
            .arg(crate::id::random_id())
            .arg("NX")
            .cmd("GET")
            .arg(&key)
            .query(&mut conn)
            .map_err(unavailable)?;
        let epoch = epoch.ok_or_else(|| corrupt("epoch"))?;
        Ok(RedisStore {
            epoch: Arc::new(EpochCell::new(epoch)),
            failure: Mutex::new(None),
            feeds: AtomicUsize::new(0),
            owner: crate::id::random_id(),
            session_lease: DEFAULT_SESSION_LEASE,
            prefix: prefix.to_owned(),
            client,
            manager: Mutex::new(None),
            scripts: Scripts::new(),
        })
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// How long this node's connected sessions are held without a renewal
    /// of its lease (each connected session save and each trim renew it)
    /// before another node's trim takes the node as dead and marks them
    /// disconnected. Longer than the trim interval (30 s in a server) by a
    /// margin; 90 s by default.
    pub fn with_session_lease(mut self, lease: Duration) -> Self {
        self.session_lease = lease;
        self
    }

    /// Renews this node's lease, then releases the sessions of every node
    /// whose lease lapsed.
    async fn release_dead_owners(&self) -> Result<(), StoreError> {
        let now = crate::store::now_ms();
        let owners_key = self.key("owners");
        let lease = i64::try_from(self.session_lease.as_millis()).unwrap_or(i64::MAX);
        let dead: Vec<String> = self
            .retried(|mut conn| {
                let mut pipe = redis::pipe();
                // Renewed only if held (XX): a node without connected
                // sessions leaves no key behind.
                pipe.cmd("ZADD")
                    .arg(&owners_key)
                    .arg("XX")
                    .arg(now)
                    .arg(&self.owner)
                    .ignore()
                    .cmd("ZRANGEBYSCORE")
                    .arg(&owners_key)
                    .arg("-inf")
                    .arg(format!("({}", now.saturating_sub(lease)));
                async move {
                    let (dead,): (Vec<String>,) = pipe.query_async(&mut conn).await?;
                    Ok(dead)
                }
            })
            .await?;
        for owner in dead.iter().filter(|o| **o != self.owner) {
            tracing::info!(owner = %owner, "a node's session lease lapsed: its sessions are disconnected as of now");
            loop {
                let mut invocation = self.scripts.release_owner.prepare_invoke();
                invocation
                    .arg(&self.prefix)
                    .arg(owner)
                    .arg(now)
                    .arg(TRIM_CHUNK);
                let more: u8 = self
                    .retried(|mut conn| {
                        let invocation = &invocation;
                        async move { invocation.invoke_async(&mut conn).await }
                    })
                    .await?;
                if more == 0 {
                    break;
                }
            }
        }
        Ok(())
    }

    /// The Redis client (the cluster layer opens connections of its own with
    /// it: a command connection and a pub/sub subscriber).
    pub(crate) fn client(&self) -> &Client {
        &self.client
    }

    /// The shared connection (opened at the first use, in the runtime of the
    /// caller; it reconnects by itself).
    fn conn(&self) -> Result<ConnectionManager, StoreError> {
        let mut slot = self.manager.lock();
        if let Some(manager) = &*slot {
            return Ok(manager.clone());
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_number_of_retries(RECONNECT_RETRIES)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_millis(500));
        let manager = ConnectionManager::new_lazy_with_config(self.client.clone(), config)
            .map_err(unavailable)?;
        *slot = Some(manager.clone());
        Ok(manager)
    }

    /// Runs `op` on the shared connection; once more if the connection was
    /// found lost (only for operations that may safely run twice).
    async fn retried<T, F, Fut>(&self, op: F) -> Result<T, StoreError>
    where
        F: Fn(ConnectionManager) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        let conn = self.conn()?;
        bounded(async {
            match op(conn.clone()).await {
                Err(e) if connection_lost(&e) => op(conn).await,
                other => other,
            }
        })
        .await
    }

    /// Runs `op` on the shared connection, once.
    async fn once<T, F, Fut>(&self, op: F) -> Result<T, StoreError>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        let conn = self.conn()?;
        bounded(op(conn)).await
    }

    /// Notes the outcome of a write for health; a write refused because the
    /// store was reset makes the node adopt the new epoch (the write itself
    /// fails: its caller retries, in the new epoch).
    async fn written<T>(
        &self,
        write: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let result = write.await;
        match &result {
            Ok(_) => {
                if self.failure.lock().take().is_some() {
                    tracing::info!("redis store writes work again");
                }
            }
            Err(e) if is_reset(e) => {
                if let Err(e) = self.sync_epoch().await {
                    tracing::warn!(error = %e, "cannot adopt the new store epoch");
                }
                return Err(StoreError::Unavailable(
                    "store reset: the write was refused; retry".into(),
                ));
            }
            Err(e) => *self.failure.lock() = Some(format!("last write failed: {}", reason(e))),
        }
        result
    }

    /// [`EpochCell::sync`] on the shared connection.
    async fn sync_epoch(&self) -> Result<bool, StoreError> {
        let conn = self.conn()?;
        let cell = &self.epoch;
        let prefix = &self.prefix;
        bounded(async move {
            let mut conn = conn;
            cell.sync(&mut conn, prefix).await
        })
        .await
    }

    async fn health(&self) -> Health {
        if let Err(e) = self.sync_epoch().await {
            return Health::Unhealthy(reason(&e));
        }
        if self.epoch.reset_pending.load(Ordering::SeqCst) {
            // Without a feed nobody starts over: the reset was reported once.
            if self.feeds.load(Ordering::SeqCst) == 0 {
                self.epoch.reset_pending.store(false, Ordering::SeqCst);
            }
            return Health::Unhealthy("store reset: starting over in a new epoch".into());
        }
        if self.failure.lock().is_none() {
            return Health::Healthy;
        }
        // The last write failed: probe with a tiny one.
        let key = self.key("health_probe");
        let probe = self
            .written(self.once(|mut conn| async move {
                redis::cmd("SET")
                    .arg(&key)
                    .arg(crate::store::now_ms())
                    .query_async::<()>(&mut conn)
                    .await
            }))
            .await;
        match probe {
            Ok(()) => Health::Healthy,
            Err(e) => Health::Unhealthy(format!("last write failed: {}", reason(&e))),
        }
    }

    fn key(&self, name: &str) -> String {
        format!("{}:{name}", self.prefix)
    }

    fn room_key(&self, nsp: &str, room: &str) -> String {
        format!("{}:r:{}:{nsp}:{room}", self.prefix, nsp.len())
    }

    /// Runs the append script on `entries` (with their idempotency keys).
    async fn append_script(&self, entries: &[Append]) -> Result<Vec<i64>, StoreError> {
        let mut invocation = self.scripts.append.prepare_invoke();
        invocation
            .arg(&self.prefix)
            .arg(self.epoch.get())
            .arg(entries.len());
        for Append { entry, key } in entries {
            let target = &entry.target;
            invocation
                .arg(if key.is_some() { "1" } else { "0" })
                .arg(key.as_deref().unwrap_or(""))
                .arg(&target.nsp)
                .arg(target.rooms.len());
            for room in &target.rooms {
                invocation.arg(room);
            }
            invocation
                .arg(json_list(&target.rooms))
                .arg(json_list(&target.except))
                .arg(&entry.event)
                .arg(&entry.args)
                .arg(encode_attachments(&entry.attachments));
        }
        let out: Vec<i64> = self
            .written(self.once(|mut conn| async move { invocation.invoke_async(&mut conn).await }))
            .await?;
        if out.len() != entries.len() {
            return Err(corrupt("append reply"));
        }
        Ok(out)
    }

    /// Fetches the entries at `seqs` from the log, in the order given; those
    /// trimmed meanwhile are left out.
    async fn fetch(&self, seqs: &[Seq]) -> Result<Vec<Entry>, StoreError> {
        if seqs.is_empty() {
            return Ok(Vec::new());
        }
        let log = self.key("log");
        let replies: Vec<StreamRangeReply> = self
            .retried(|mut conn| {
                let mut pipe = redis::pipe();
                for seq in seqs {
                    let id = format!("{seq}-0");
                    pipe.cmd("XRANGE").arg(&log).arg(&id).arg(&id);
                }
                async move { pipe.query_async(&mut conn).await }
            })
            .await?;
        replies
            .iter()
            .flat_map(|reply| reply.ids.first())
            .map(decode_entry)
            .collect()
    }

    /// Positions of `streams` after `after`, merged: at most `want`, and
    /// whether more may follow.
    async fn positions_after(
        &self,
        streams: &[String],
        after: Seq,
        want: usize,
    ) -> Result<(Vec<Seq>, bool), StoreError> {
        let min = format!("({after}");
        let lists: Vec<Vec<Seq>> = self
            .retried(|mut conn| {
                let mut pipe = redis::pipe();
                for key in streams {
                    pipe.cmd("ZRANGEBYSCORE")
                        .arg(key)
                        .arg(&min)
                        .arg("+inf")
                        .arg("LIMIT")
                        .arg(0)
                        .arg(want);
                }
                async move { pipe.query_async(&mut conn).await }
            })
            .await?;
        Ok(merge(lists, want, false))
    }

    /// Positions of `stream` before `before`, newest first: at most `want`,
    /// and whether more may follow.
    async fn positions_before(
        &self,
        stream: &str,
        before: Seq,
        want: usize,
    ) -> Result<(Vec<Seq>, bool), StoreError> {
        let max = format!("({before}");
        let list: Vec<Seq> = self
            .retried(|mut conn| {
                let mut cmd = redis::cmd("ZREVRANGEBYSCORE");
                cmd.arg(stream)
                    .arg(&max)
                    .arg("-inf")
                    .arg("LIMIT")
                    .arg(0)
                    .arg(want);
                async move { cmd.query_async(&mut conn).await }
            })
            .await?;
        Ok(merge(vec![list], want, true))
    }

    async fn read_entries(
        &self,
        nsp: &str,
        rooms: &[String],
        after: Seq,
        limit: usize,
    ) -> Result<Vec<Entry>, StoreError> {
        let mut out = Vec::new();
        if limit == 0 {
            return Ok(out);
        }
        let mut streams = vec![self.room_key(nsp, "")];
        for room in rooms {
            let key = self.room_key(nsp, room);
            if !streams.contains(&key) {
                streams.push(key);
            }
        }
        let mut cursor = after;
        loop {
            let want = (limit - out.len()).min(READ_CHUNK);
            let (seqs, more) = self.positions_after(&streams, cursor, want).await?;
            let Some(&last) = seqs.last() else {
                return Ok(out);
            };
            for entry in self.fetch(&seqs).await? {
                if reaches(&entry.entry.target, rooms) {
                    out.push(entry);
                    if out.len() >= limit {
                        return Ok(out);
                    }
                }
            }
            if !more {
                return Ok(out);
            }
            cursor = last;
        }
    }

    async fn read_history(
        &self,
        nsp: &str,
        room: Option<&str>,
        before: Seq,
        limit: usize,
    ) -> Result<Vec<Entry>, StoreError> {
        let mut out = Vec::new();
        if limit == 0 {
            return Ok(out);
        }
        let rooms: Vec<String> = room.map(str::to_owned).into_iter().collect();
        let stream = self.room_key(nsp, room.unwrap_or(""));
        let mut cursor = before;
        'pages: loop {
            let want = (limit - out.len()).min(READ_CHUNK);
            let (seqs, more) = self.positions_before(&stream, cursor, want).await?;
            let Some(&oldest) = seqs.last() else {
                break;
            };
            for entry in self.fetch(&seqs).await? {
                if reaches(&entry.entry.target, &rooms) {
                    out.push(entry);
                    if out.len() >= limit {
                        break 'pages;
                    }
                }
            }
            if !more {
                break;
            }
            cursor = oldest;
        }
        out.reverse();
        Ok(out)
    }

    async fn trim_all(
        &self,
        retention: Retention,
        sessions_before_ms: i64,
    ) -> Result<u64, StoreError> {
        let mut removed = 0u64;
        let ttl_key = self.key("idem_ttl");
        match retention.max_age {
            Some(max_age) => {
                let ttl = max_age.saturating_add(IDEMPOTENCY_TTL_MARGIN);
                let ttl_ms = u64::try_from(ttl.as_millis())
                    .unwrap_or(u64::MAX)
                    .min(MAX_SEQ);
                self.retried(|mut conn| {
                    let mut cmd = redis::cmd("SET");
                    cmd.arg(&ttl_key).arg(ttl_ms);
                    async move { cmd.query_async::<()>(&mut conn).await }
                })
                .await?;
                let age_ms = u64::try_from(max_age.as_millis())
                    .unwrap_or(u64::MAX)
                    .min(MAX_SEQ);
                loop {
                    let (n, more) = self
                        .trim_chunk(&self.scripts.trim_age, &[&age_ms.to_string()])
                        .await?;
                    removed += n;
                    if !more {
                        break;
                    }
                }
            }
            None => {
                self.retried(|mut conn| {
                    let mut cmd = redis::cmd("DEL");
                    cmd.arg(&ttl_key);
                    async move { cmd.query_async::<()>(&mut conn).await }
                })
                .await?;
            }
        }
        if let Some(max_count) = retention.max_count {
            let keep = max_count.min(MAX_SEQ).to_string();
            let nss_key = self.key("nss");
            let namespaces: Vec<String> = self
                .retried(|mut conn| {
                    let mut cmd = redis::cmd("SMEMBERS");
                    cmd.arg(&nss_key);
                    async move { cmd.query_async(&mut conn).await }
                })
                .await?;
            for nsp in &namespaces {
                loop {
                    let (n, more) = self
                        .trim_chunk(&self.scripts.trim_count, &[nsp, &keep])
                        .await?;
                    removed += n;
                    if !more {
                        break;
                    }
                }
            }
        }
        self.release_dead_owners().await?;
        let before = sessions_before_ms.to_string();
        loop {
            let mut invocation = self.scripts.trim_sessions.prepare_invoke();
            invocation.arg(&self.prefix).arg(&before).arg(TRIM_CHUNK);
            let gone: usize = self
                .retried(|mut conn| {
                    let invocation = &invocation;
                    async move { invocation.invoke_async(&mut conn).await }
                })
                .await?;
            if gone < TRIM_CHUNK {
                break;
            }
        }
        Ok(removed)
    }

    /// One chunk of an entry trim script: (removed, more to do).
    async fn trim_chunk(&self, script: &Script, args: &[&str]) -> Result<(u64, bool), StoreError> {
        let mut invocation = script.prepare_invoke();
        invocation.arg(&self.prefix);
        for arg in args {
            invocation.arg(*arg);
        }
        invocation.arg(TRIM_CHUNK);
        // Trimming twice is harmless: safe to retry.
        let (removed, more): (u64, u8) = self
            .retried(|mut conn| {
                let invocation = &invocation;
                async move { invocation.invoke_async(&mut conn).await }
            })
            .await?;
        Ok((removed, more == 1))
    }
}

impl EventLog for RedisStore {
    fn epoch(&self) -> &str {
        self.epoch.get()
    }

    fn check_health(&self) -> BoxFuture<'_, Health> {
        Box::pin(self.health())
    }

    fn append_batch(
        &self,
        batch: Vec<Append>,
    ) -> BoxFuture<'_, Result<Vec<AppendOnce>, StoreError>> {
        Box::pin(async move {
            if batch.is_empty() {
                return Ok(Vec::new());
            }
            let out = self.append_script(&batch).await?;
            out.into_iter()
                .map(|seq| {
                    let position =
                        Seq::try_from(seq.unsigned_abs()).map_err(|_| corrupt("append reply"))?;
                    Ok(if seq < 0 {
                        AppendOnce::Duplicate(position)
                    } else {
                        AppendOnce::Appended(position)
                    })
                })
                .collect()
        })
    }

    fn read<'a>(
        &'a self,
        nsp: &'a str,
        rooms: &'a [String],
        after: Seq,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<Entry>, StoreError>> {
        Box::pin(self.read_entries(nsp, rooms, after, limit))
    }

    fn history<'a>(
        &'a self,
        nsp: &'a str,
        room: Option<&'a str>,
        before: Seq,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<Entry>, StoreError>> {
        Box::pin(self.read_history(nsp, room, before, limit))
    }

    fn bounds(&self) -> BoxFuture<'_, Result<(Seq, Seq), StoreError>> {
        Box::pin(async move {
            let (seq_key, trimmed_key) = (self.key("seq"), self.key("trimmed"));
            let (last, trimmed): (Option<Seq>, Option<Seq>) = self
                .retried(|mut conn| {
                    let mut pipe = redis::pipe();
                    pipe.cmd("GET").arg(&seq_key).cmd("GET").arg(&trimmed_key);
                    async move { pipe.query_async(&mut conn).await }
                })
                .await?;
            Ok((last.unwrap_or(0), trimmed.unwrap_or(0) + 1))
        })
    }

    fn shared_feed(&self) -> Option<&dyn SharedFeed> {
        Some(self)
    }
}

impl Sessions for RedisStore {
    fn save_session(&self, record: SessionRecord) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            let mut stored = StoredSession::from(&record);
            // Held connected under this node's lease.
            stored.owner = record.connected.then(|| self.owner.clone());
            let json = serde_json::to_string(&stored)
                .map_err(|e| StoreError::Unavailable(format!("cannot encode a session: {e}")))?;
            let (key, index) = (self.key(&format!("s:{}", record.pid)), self.key("sd"));
            let (owned, owners) = (self.key(&format!("so:{}", self.owner)), self.key("owners"));
            self.retried(|mut conn| {
                let mut pipe = redis::pipe();
                pipe.atomic().cmd("SET").arg(&key).arg(&json).ignore();
                if record.connected {
                    pipe.cmd("ZREM").arg(&index).arg(&record.pid).ignore();
                    pipe.cmd("SADD").arg(&owned).arg(&record.pid).ignore();
                    pipe.cmd("ZADD")
                        .arg(&owners)
                        .arg(crate::store::now_ms())
                        .arg(&self.owner)
                        .ignore();
                } else {
                    pipe.cmd("SREM").arg(&owned).arg(&record.pid).ignore();
                    pipe.cmd("ZADD")
                        .arg(&index)
                        .arg(record.updated_ms)
                        .arg(&record.pid)
                        .ignore();
                }
                async move { pipe.query_async::<()>(&mut conn).await }
            })
            .await
        })
    }

    fn load_session<'a>(
        &'a self,
        pid: &'a str,
    ) -> BoxFuture<'a, Result<Option<SessionRecord>, StoreError>> {
        Box::pin(async move {
            let key = self.key(&format!("s:{pid}"));
            let json: Option<String> = self
                .retried(|mut conn| {
                    let mut cmd = redis::cmd("GET");
                    cmd.arg(&key);
                    async move { cmd.query_async(&mut conn).await }
                })
                .await?;
            let Some(json) = json else {
                return Ok(None);
            };
            let stored: StoredSession =
                serde_json::from_str(&json).map_err(|_| corrupt("session"))?;
            Ok(Some(stored.into_record(pid.to_owned())))
        })
    }

    fn delete_session<'a>(&'a self, pid: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let (key, index) = (self.key(&format!("s:{pid}")), self.key("sd"));
            let owned = self.key(&format!("so:{}", self.owner));
            self.retried(|mut conn| {
                let mut pipe = redis::pipe();
                pipe.atomic()
                    .cmd("DEL")
                    .arg(&key)
                    .ignore()
                    .cmd("SREM")
                    .arg(&owned)
                    .arg(pid)
                    .ignore()
                    .cmd("ZREM")
                    .arg(&index)
                    .arg(pid)
                    .ignore();
                async move { pipe.query_async::<()>(&mut conn).await }
            })
            .await
        })
    }
}

impl Inboxes for RedisStore {
    fn inbox_push<'a>(
        &'a self,
        user: &'a str,
        event: String,
        args: String,
        attachments: Vec<Bytes>,
    ) -> BoxFuture<'a, Result<Seq, StoreError>> {
        Box::pin(async move {
            let payload = encode_inbox_payload(&event, &args, &attachments);
            let mut invocation = self.scripts.inbox_push.prepare_invoke();
            invocation
                .arg(&self.prefix)
                .arg(self.epoch.get())
                .arg(user)
                .arg(payload);
            self.written(
                self.once(|mut conn| async move { invocation.invoke_async(&mut conn).await }),
            )
            .await
        })
    }

    fn inbox_pending<'a>(
        &'a self,
        user: &'a str,
        after: Seq,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<InboxEntry>, StoreError>> {
        let key = self.key(&format!("i:{user}"));
        Box::pin(async move {
            if limit == 0 {
                return Ok(Vec::new());
            }
            // Acknowledged entries are removed with the ack, in the same
            // script: whatever is left is pending.
            let min = format!("({after}");
            let members: Vec<Vec<u8>> = self
                .retried(|mut conn| {
                    let mut cmd = redis::cmd("ZRANGEBYSCORE");
                    cmd.arg(&key)
                        .arg(&min)
                        .arg("+inf")
                        .arg("LIMIT")
                        .arg(0)
                        .arg(limit);
                    async move { cmd.query_async(&mut conn).await }
                })
                .await?;
            members.iter().map(|m| decode_inbox_member(m)).collect()
        })
    }

    fn inbox_ack<'a>(&'a self, user: &'a str, upto: Seq) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let mut invocation = self.scripts.inbox_ack.prepare_invoke();
            invocation
                .arg(&self.prefix)
                .arg(user)
                .arg(upto.min(MAX_SEQ));
            // Acknowledging twice is harmless: safe to retry.
            self.retried(|mut conn| {
                let invocation = &invocation;
                async move { invocation.invoke_async::<()>(&mut conn).await }
            })
            .await
        })
    }
}

impl Retain for RedisStore {
    fn trim<'a>(
        &'a self,
        retention: Retention,
        streams: &'a [StreamRetention],
        sessions_before_ms: i64,
    ) -> BoxFuture<'a, Result<u64, StoreError>> {
        if !streams.is_empty() {
            return Box::pin(std::future::ready(Err(StoreError::Unsupported(
                "per-stream retention",
            ))));
        }
        Box::pin(self.trim_all(retention, sessions_before_ms))
    }

    fn supports_stream_retention(&self) -> bool {
        // Every stream is trimmed alike.
        false
    }

    fn trimmed<'a>(
        &'a self,
        _nsp: &'a str,
        _streams: &'a [String],
    ) -> BoxFuture<'a, Result<Seq, StoreError>> {
        Box::pin(super::trimmed_from_bounds(self))
    }
}

impl SharedFeed for RedisStore {
    fn feed(&self, after: Seq) -> Feed {
        self.feeds.fetch_add(1, Ordering::SeqCst);
        let epoch = self.epoch.get();
        // A feed made in the current epoch: the node has started over.
        self.epoch.reset_pending.store(false, Ordering::SeqCst);
        let state = FeedState {
            client: self.client.clone(),
            log: self.key("log"),
            prefix: self.prefix.clone(),
            cell: Arc::clone(&self.epoch),
            epoch,
            // Client names allow no spaces nor special characters.
            name: format!("tether-feed:{}", self.prefix)
                .chars()
                .map(|c| if c.is_ascii_graphic() { c } else { '_' })
                .collect(),
            conn: None,
            last: after,
            ready: VecDeque::new(),
            failed: false,
        };
        Box::pin(futures_util::stream::unfold(state, FeedState::next))
    }
}

// ---------------------------------------------------------------------------
// The feed

/// A feed: a blocking XREAD loop on a connection of its own.
struct FeedState {
    client: Client,
    log: String,
    prefix: String,
    /// The node's epoch, which the feed checks with every read.
    cell: Arc<EpochCell>,
    /// The epoch the feed started in.
    epoch: &'static str,
    /// The connection's name (`CLIENT SETNAME`), to tell feeds apart.
    name: String,
    conn: Option<MultiplexedConnection>,
    /// The last position read.
    last: Seq,
    /// Entries read and not yet yielded.
    ready: VecDeque<Entry>,
    /// An error was yielded: the feed is over.
    failed: bool,
}

impl FeedState {
    /// The next entry; an error ends the feed (the caller starts another from
    /// the last entry it got).
    async fn next(mut self) -> Option<(Result<Entry, StoreError>, Self)> {
        if self.failed {
            return None;
        }
        loop {
            if let Some(entry) = self.ready.pop_front() {
                return Some((Ok(entry), self));
            }
            if let Err(e) = self.read_more().await {
                self.failed = true;
                self.conn = None;
                return Some((Err(e), self));
            }
        }
    }

    async fn read_more(&mut self) -> Result<(), StoreError> {
        let conn = match &mut self.conn {
            Some(conn) => conn,
            None => {
                let config = AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(CONNECT_TIMEOUT))
                    .set_response_timeout(Some(FEED_BLOCK + RESPONSE_TIMEOUT));
                let mut conn = bounded(
                    self.client
                        .get_multiplexed_async_connection_with_config(&config),
                )
                .await?;
                // Only to tell feeds apart (CLIENT LIST): a Redis user not
                // allowed to name its connection still gets its feed.
                if let Err(e) = bounded(
                    redis::cmd("CLIENT")
                        .arg("SETNAME")
                        .arg(&self.name)
                        .query_async::<()>(&mut conn),
                )
                .await
                {
                    tracing::debug!(error = %e, "redis feed: cannot name its connection");
                }
                self.conn.insert(conn)
            }
        };
        let block_ms = u64::try_from(FEED_BLOCK.as_millis()).unwrap_or(u64::MAX);
        // The epoch with every read (one round trip; read after the XREAD
        // returns, so it is as of the reply): after a reset the log starts
        // over below `last`, and this feed would wait forever.
        let (reply, epoch): (Option<StreamReadReply>, Option<String>) = redis::pipe()
            .cmd("XREAD")
            .arg("COUNT")
            .arg(FEED_COUNT)
            .arg("BLOCK")
            .arg(block_ms)
            .arg("STREAMS")
            .arg(&self.log)
            .arg(format!("{}-0", self.last))
            .cmd("GET")
            .arg(format!("{}:epoch", self.prefix))
            .query_async(conn)
            .await
            .map_err(unavailable)?;
        if epoch.as_deref() != Some(self.epoch) {
            let adopted = bounded(self.cell.sync(conn, &self.prefix)).await;
            if let Err(e) = adopted {
                tracing::warn!(error = %e, "cannot adopt the new store epoch");
            }
            return Err(StoreError::Unavailable(
                "store reset: the feed starts over in the new epoch".into(),
            ));
        }
        for id in reply.iter().flat_map(|r| &r.keys).flat_map(|k| &k.ids) {
            let seq = match id_seq(&id.id) {
                Some(seq) => seq,
                None => {
                    tracing::error!(id = %id.id, "redis feed: skipping a log entry with a foreign id");
                    continue;
                }
            };
            self.last = self.last.max(seq);
            match decode_entry(id) {
                Ok(entry) => self.ready.push_back(entry),
                // Stopping here would stop every node's fan-out for good.
                Err(e) => tracing::error!(seq, error = %e, "redis feed: skipping a corrupt entry"),
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// Encodings

/// A session as stored (the pid is in the key).
#[derive(serde::Serialize, serde::Deserialize)]
struct StoredSession {
    sid: String,
    nsp: String,
    rooms: Vec<String>,
    data: Option<String>,
    /// Absent from sessions stored before users were kept.
    #[serde(default)]
    user: Option<String>,
    start_seq: Seq,
    connected: bool,
    updated_ms: i64,
    /// The node holding it connected (see `LUA_RELEASE_OWNER`: stays last).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    owner: Option<String>,
}

impl From<&SessionRecord> for StoredSession {
    fn from(r: &SessionRecord) -> Self {
        StoredSession {
            sid: r.sid.clone(),
            nsp: r.nsp.clone(),
            rooms: r.rooms.clone(),
            data: r.data.clone(),
            user: r.user.clone(),
            start_seq: r.start_seq,
            connected: r.connected,
            updated_ms: r.updated_ms,
            owner: None,
        }
    }
}

impl StoredSession {
    fn into_record(self, pid: String) -> SessionRecord {
        SessionRecord {
            pid,
            sid: self.sid,
            nsp: self.nsp,
            rooms: self.rooms,
            data: self.data,
            user: self.user,
            start_seq: self.start_seq,
            connected: self.connected,
            updated_ms: self.updated_ms,
        }
    }
}

fn json_list(list: &[String]) -> String {
    serde_json::to_string(list).unwrap_or_else(|_| "[]".to_owned())
}

/// Merges sorted position lists (ascending, or descending with `desc`) into
/// one without repeats, keeping the first `want`. Also says whether positions
/// beyond those may exist (a list was cut at `want`, or some were left out).
fn merge(lists: Vec<Vec<Seq>>, want: usize, desc: bool) -> (Vec<Seq>, bool) {
    let truncated = lists.iter().any(|l| l.len() >= want);
    let mut all: Vec<Seq> = lists.into_iter().flatten().collect();
    all.sort_unstable();
    all.dedup();
    if desc {
        all.reverse();
    }
    let more = truncated || all.len() > want;
    all.truncate(want);
    (all, more)
}

/// The position of a log id `<seq>-0`.
fn id_seq(id: &str) -> Option<Seq> {
    id.split_once('-')?.0.parse().ok()
}

fn field<'a>(id: &'a StreamId, name: &str) -> Result<&'a [u8], StoreError> {
    match id.map.get(name) {
        Some(Value::BulkString(bytes)) => Ok(bytes),
        Some(Value::SimpleString(s)) => Ok(s.as_bytes()),
        _ => Err(corrupt("log entry")),
    }
}

fn text_field(id: &StreamId, name: &str) -> Result<String, StoreError> {
    String::from_utf8(field(id, name)?.to_vec()).map_err(|_| corrupt("log entry"))
}

fn decode_entry(id: &StreamId) -> Result<Entry, StoreError> {
    let seq = id_seq(&id.id).ok_or_else(|| corrupt("log id"))?;
    let list = |name| -> Result<Vec<String>, StoreError> {
        serde_json::from_slice(field(id, name)?).map_err(|_| corrupt("log entry"))
    };
    let ts_ms = text_field(id, "t")?
        .parse()
        .map_err(|_| corrupt("log entry"))?;
    Ok(Entry {
        seq,
        ts_ms,
        entry: NewEntry {
            target: Target {
                nsp: text_field(id, "n")?,
                rooms: list("r")?,
                except: list("x")?,
            },
            event: text_field(id, "e")?,
            args: text_field(id, "a")?,
            attachments: decode_attachments(field(id, "b")?)?,
        },
    })
}

/// Attachments as a blob: for each, its length (u32, little-endian) then its
/// bytes (the SQLite store's format).
fn encode_attachments(attachments: &[Bytes]) -> Vec<u8> {
    let mut blob = Vec::with_capacity(attachments.iter().map(|a| 4 + a.len()).sum());
    for attachment in attachments {
        put_chunk(&mut blob, attachment);
    }
    blob
}

fn put_chunk(blob: &mut Vec<u8>, chunk: &[u8]) {
    // A chunk over 4 GiB cannot reach here: frames are far smaller.
    let len = u32::try_from(chunk.len()).unwrap_or(u32::MAX);
    blob.extend_from_slice(&len.to_le_bytes());
    blob.extend_from_slice(chunk);
}

/// Splits a length-prefixed chunk off `blob`.
fn take_chunk<'a>(blob: &mut &'a [u8]) -> Option<&'a [u8]> {
    let (len, rest) = blob.split_first_chunk::<4>()?;
    let len = usize::try_from(u32::from_le_bytes(*len)).ok()?;
    if rest.len() < len {
        return None;
    }
    let (chunk, rest) = rest.split_at(len);
    *blob = rest;
    Some(chunk)
}

fn decode_attachments(mut blob: &[u8]) -> Result<Vec<Bytes>, StoreError> {
    let mut out = Vec::new();
    while !blob.is_empty() {
        let chunk = take_chunk(&mut blob).ok_or_else(|| corrupt("attachments"))?;
        out.push(Bytes::copy_from_slice(chunk));
    }
    Ok(out)
}

/// An inbox entry's payload: event and args (length-prefixed), then the
/// attachments blob.
fn encode_inbox_payload(event: &str, args: &str, attachments: &[Bytes]) -> Vec<u8> {
    let mut blob = Vec::new();
    put_chunk(&mut blob, event.as_bytes());
    put_chunk(&mut blob, args.as_bytes());
    blob.extend_from_slice(&encode_attachments(attachments));
    blob
}

/// An inbox member: `<seq>:<ts_ms>:<payload>`.
fn decode_inbox_member(member: &[u8]) -> Result<InboxEntry, StoreError> {
    let bad = || corrupt("inbox entry");
    let mut parts = member.splitn(3, |&b| b == b':');
    let number = |parts: &mut std::slice::SplitN<'_, u8, _>| {
        std::str::from_utf8(parts.next().ok_or_else(bad)?)
            .ok()
            .and_then(|s| s.parse::<i64>().ok())
            .ok_or_else(bad)
    };
    let seq = Seq::try_from(number(&mut parts)?).map_err(|_| bad())?;
    let ts_ms = number(&mut parts)?;
    let mut payload = parts.next().ok_or_else(bad)?;
    let event = take_chunk(&mut payload).ok_or_else(bad)?;
    let args = take_chunk(&mut payload).ok_or_else(bad)?;
    let text = |b: &[u8]| String::from_utf8(b.to_vec()).map_err(|_| bad());
    Ok(InboxEntry {
        seq,
        ts_ms,
        event: text(event)?,
        args: text(args)?,
        attachments: decode_attachments(payload)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_keeps_order_without_repeats() {
        let (seqs, more) = merge(vec![vec![1, 4, 6], vec![2, 4, 9], vec![]], 4, false);
        assert_eq!(seqs, [1, 2, 4, 6]);
        assert!(more, "a list was cut or some were left out");
        let (seqs, more) = merge(vec![vec![1, 4], vec![2]], 10, false);
        assert_eq!((seqs, more), (vec![1, 2, 4], false));
        let (seqs, more) = merge(vec![vec![9, 5, 1]], 3, true);
        assert_eq!((seqs, more), (vec![9, 5, 1], true));
    }

    #[test]
    fn inbox_members_round_trip() {
        let attachments = vec![Bytes::from_static(b"a:b"), Bytes::new()];
        let payload = encode_inbox_payload("ev:x", "[\"a:b\"]", &attachments);
        let mut member = b"12:1700000000000:".to_vec();
        member.extend_from_slice(&payload);
        let entry = decode_inbox_member(&member).unwrap();
        assert_eq!(entry.seq, 12);
        assert_eq!(entry.ts_ms, 1_700_000_000_000);
        assert_eq!(entry.event, "ev:x");
        assert_eq!(entry.args, "[\"a:b\"]");
        assert_eq!(entry.attachments, attachments);
        assert!(decode_inbox_member(b"12:x:").is_err());
    }

    #[test]
    fn log_ids() {
        assert_eq!(id_seq("42-0"), Some(42));
        assert_eq!(id_seq("42"), None);
        assert_eq!(id_seq("x-0"), None);
    }
}
