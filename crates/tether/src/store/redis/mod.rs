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

mod codec;
mod feed;
mod inspect;
mod read;
mod scripts;
mod trim;

use codec::*;
use feed::FeedState;
use scripts::Scripts;

use super::{
    reaches, Append, AppendOnce, BoxFuture, Entry, EventLog, Feed, Health, InboxEntry, Inboxes,
    NewEntry, Retain, Retention, Seq, SessionInfo, SessionRecord, Sessions, SharedFeed, StoreError,
    StreamInfo, StreamRetention, Target,
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
/// Failures: a Redis error is [`StoreError::Backend`] (with the error as its
/// source), a timeout or a reset [`StoreError::Unavailable`], and what cannot
/// be decoded [`StoreError::Corrupt`]. Connections are
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
    matches!(
        e,
        StoreError::Unavailable(m) | StoreError::Backend { message: m, .. }
            if m.contains("TETHERRESET")
    )
}

/// The reason for health, without the "store unavailable" of the error.
fn reason(e: &StoreError) -> String {
    match e {
        StoreError::Unavailable(m) | StoreError::Backend { message: m, .. } => m.clone(),
        other => other.to_string(),
    }
}

/// A Redis error, kept as the source.
fn unavailable(e: RedisError) -> StoreError {
    StoreError::backend(format!("redis: {e}"), e)
}

/// What Redis holds (or answered) cannot be decoded.
fn corrupt(what: &str) -> StoreError {
    StoreError::corrupt(format!("redis {what}"))
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
                .map_err(|e| StoreError::backend(format!("cannot encode a session: {e}"), e))?;
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
                serde_json::from_str(&json).map_err(|e| StoreError::Corrupt {
                    what: format!("redis session: {e}"),
                    source: Some(Arc::new(e)),
                })?;
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
