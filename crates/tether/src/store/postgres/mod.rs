//! [`PostgresStore`]: a store shared by several Tether nodes on one
//! PostgreSQL database. The design is described on [`PostgresStore`]; the
//! tables are in [`schema::SCHEMA`].

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use deadpool_postgres::{
    ClientWrapper as PgClient, Manager, ManagerConfig, Pool, RecyclingMethod, Runtime, Transaction,
};
use futures_util::StreamExt;
use parking_lot::{Mutex, RwLock};
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::types::ToSql;
use tokio_postgres::{NoTls, Row};

mod codec;
mod feed;
mod read;
mod schema;
mod trim;
mod writer;

use codec::*;
use read::*;
use writer::{Job, Writer};

use super::trim::{streams_of, Cuts, TrimPlan};
use super::{
    now_ms, reaches, Append, AppendOnce, BoxFuture, Entry, EventLog, Feed, Health, InboxEntry,
    Inboxes, NewEntry, Retain, Retention, Seq, SessionInfo, SessionRecord, Sessions, SharedFeed,
    StoreError, StreamInfo, StreamRetention, Target,
};

/// Each attempt to open a connection gives up after this long.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Upper bound of any one store operation (waiting for a connection
/// included).
const OP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a session of the store may sit idle inside a transaction before
/// the server ends it (a frozen node holding the counter row's lock).
const IDLE_IN_TRANSACTION: Duration = Duration::from_secs(15);
/// How long a health check waits.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(3);
/// Connections of a node's pool (reads, trims, feeds, sessions, inboxes;
/// the writer has one more of its own).
const POOL_SIZE: usize = 8;
/// Most appends committed in one transaction.
const MAX_BATCH: usize = 4096;
/// Entries fetched per round trip by `read` and `history`.
const READ_CHUNK: usize = 1024;
/// Entries a feed reads at most at once.
const FEED_COUNT: usize = 1024;
/// How often an idle feed looks for new entries without a notification.
const FEED_POLL: Duration = Duration::from_secs(1);
/// Rows handled per statement while trimming, to bound memory.
const TRIM_CHUNK: usize = 512;
/// How long a node's connected sessions are held without a renewal of its
/// lease (three trims of a server).
const DEFAULT_SESSION_LEASE: Duration = Duration::from_secs(90);

/// A failure inside this backend; becomes a [`StoreError`] keeping its
/// source.
#[derive(Debug, thiserror::Error)]
enum PgError {
    /// The server (or the connection to it) failed.
    #[error("postgres: {0}")]
    Db(#[from] tokio_postgres::Error),
    /// No connection could be had.
    #[error("postgres: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    /// A row holds what cannot be decoded.
    #[error("{what}")]
    Corrupt {
        what: String,
        source: Option<super::BackendError>,
    },
    /// The store cannot serve now (no answer in time, a reset).
    #[error("{0}")]
    Unavailable(String),
    /// The schema cannot be used as a store (another schema version).
    #[error("{0}")]
    Refused(String),
}

impl PgError {
    fn corrupt(what: impl Into<String>) -> Self {
        PgError::Corrupt {
            what: what.into(),
            source: None,
        }
    }

    fn into_store(self) -> StoreError {
        match self {
            PgError::Db(e) => StoreError::backend(format!("postgres: {e}"), e),
            PgError::Pool(e) => match e {
                deadpool_postgres::PoolError::Backend(e) => {
                    StoreError::backend(format!("postgres: {e}"), e)
                }
                other => StoreError::backend(format!("postgres: {other}"), other),
            },
            PgError::Corrupt { what, source } => StoreError::Corrupt {
                what: format!("postgres {what}"),
                source,
            },
            PgError::Unavailable(why) | PgError::Refused(why) => StoreError::Unavailable(why),
        }
    }
}

/// The reason for health, without the "store unavailable" of the error.
fn reason(e: &StoreError) -> String {
    match e {
        StoreError::Unavailable(m) | StoreError::Backend { message: m, .. } => m.clone(),
        other => other.to_string(),
    }
}

/// Bounds `op` by [`OP_TIMEOUT`].
async fn bounded<T>(op: impl Future<Output = Result<T, PgError>>) -> Result<T, PgError> {
    match tokio::time::timeout(OP_TIMEOUT, op).await {
        Ok(result) => result,
        Err(_) => Err(PgError::Unavailable(format!(
            "postgres: no answer within {OP_TIMEOUT:?}"
        ))),
    }
}

/// A pool of at most `size` connections with `config`, every wait bounded,
/// each connection set up for `schema` ([`schema::session_setup`]) when
/// opened.
fn make_pool(
    config: &tokio_postgres::Config,
    schema: &str,
    size: usize,
) -> Result<Pool, StoreError> {
    let setup = schema::session_setup(schema);
    let manager = Manager::from_config(
        config.clone(),
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(size)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(OP_TIMEOUT))
        .create_timeout(Some(CONNECT_TIMEOUT))
        .recycle_timeout(Some(CONNECT_TIMEOUT))
        .post_create(deadpool_postgres::Hook::async_fn(move |client, _| {
            let setup = setup.clone();
            Box::pin(async move {
                client
                    .batch_execute(&setup)
                    .await
                    .map_err(deadpool_postgres::HookError::Backend)
            })
        }))
        .build()
        .map_err(|e| StoreError::Unavailable(format!("postgres pool: {e}")))
}

/// The epoch a node writes under, replaced when the schema was made anew
/// under it. Each epoch's text is leaked (a few bytes per connect and per
/// reset), so that [`EventLog::epoch`] hands out a `&str` without a lock.
struct EpochCell {
    current: RwLock<&'static str>,
}

impl EpochCell {
    fn get(&self) -> &'static str {
        *self.current.read()
    }

    fn adopt(&self, epoch: String) {
        let mut current = self.current.write();
        if *current != epoch {
            tracing::warn!(
                old = *current,
                new = %epoch,
                "the store was reset (its epoch changed): adopting the new epoch; \
                 clients of the old one start over"
            );
            metrics::counter!("tether_store_resets_total").increment(1);
            *current = Box::leak(epoch.into_boxed_str());
        }
    }
}

/// What the store, its writer and its feeds share.
struct Shared {
    epoch: EpochCell,
    schema: String,
    /// The NOTIFY channel of the schema (`tether_<schema>`).
    channel: String,
    /// Connection settings (feeds open their listener with them).
    config: tokio_postgres::Config,
    /// Why the last commit failed (`None`: the last one went through).
    failure: Mutex<Option<String>>,
    /// This node's id for the sessions it holds connected.
    owner: String,
    /// How long the node's connected sessions are held without a renewal.
    session_lease: Mutex<Duration>,
}

/// The PostgreSQL backend: a store shared by several Tether nodes on one
/// database.
///
/// Every node connects with the same URL
/// (`postgres://USER@HOST:PORT/DB?schema=NAME`); the tables live in a schema
/// of their own (`tether` by default), created on first use with the schema
/// version recorded in `meta`. A node fans out what [`SharedFeed::feed`]
/// brings, its own appends included, so all nodes deliver in one order.
///
/// **Positions.** They are taken from one counter row (`state.last_seq`)
/// inside the transaction that stores the entries, with the row locked
/// (`SELECT ... FOR UPDATE`) from the start of that transaction to its
/// COMMIT. A sequence would not do: ids from a sequence are handed out at
/// once, so position 8 can commit before position 7, and a reader that has
/// read up to 8 skips 7 for good. With the row lock, the next transaction
/// that takes positions (on any node) waits until the previous one has
/// committed, and PostgreSQL releases a transaction's locks only after its
/// commit is visible to every new snapshot: so a snapshot that sees
/// position N sees every position below N that was ever committed, a
/// rolled back transaction takes no position at all (no gaps), and a
/// reader that has read past a position never sees an entry appear below
/// it later. Idempotency keys are checked under the same lock, so two
/// nodes retrying one key store it once.
///
/// **Group commit.** A node's appends go to one writer task (on a
/// connection of its own) that takes a first command, drains everything queued meanwhile (up to 4096), and runs
/// it all in ONE transaction: the lock, one lookup of every key of the
/// batch, then one multi-row INSERT per table (arrays, unnested) sent
/// pipelined in one round trip, then COMMIT; only then is each caller
/// answered. A failed batch rolls back whole and every caller gets the
/// error (nothing of it was kept). The lock is held for one transaction of
/// a few round trips, so nodes take turns per batch, not per message.
///
/// **Streams.** `entry_targets(nsp, room, seq)` has one row per room an
/// entry targets (room `''`: the whole namespace); a read is one index
/// range per room, merged by position, so its cost follows what it
/// returns, not other rooms' traffic.
///
/// **Feed.** Each commit that appends sends `NOTIFY tether_<schema>`; a
/// feed LISTENs on a connection of its own, but only as a wake-up: it reads
/// the entries from the table after the last position it gave, and polls
/// every second as well, so a lost notification or a listener that
/// reconnects loses nothing. LISTEN does not work through a pooler in
/// transaction mode (PgBouncer's `pool_mode = transaction`), nor do the
/// session settings each connection gets when opened (`search_path`, an
/// idle-in-transaction timeout): use PostgreSQL itself or a session-mode
/// pool.
///
/// **Epoch.** A random id in the `state` row, made with the schema. A
/// schema dropped and made anew (by a node connecting to it) is a new
/// life: appends and feeds of a node started before see the other epoch,
/// the node adopts it and its feed starts over (its clients are told
/// "store reset").
///
/// **Sessions of a node that died.** Each node holds its connected
/// sessions under a lease (`owners`: owner -> last renewal, renewed by each
/// connected session save and each trim, which a server runs every 30 s);
/// a trim that finds a lease older than [`PostgresStore::with_session_lease`]
/// (90 s by default) marks that owner's sessions disconnected as of then,
/// so the recovery window applies and the purge takes them.
///
/// **Failures.** A PostgreSQL error or one of the connection is
/// [`StoreError::Backend`] (the driver's error as the source), no answer in
/// time [`StoreError::Unavailable`], a row that cannot be decoded
/// [`StoreError::Corrupt`]. Every operation is bounded in time (10 s) and
/// connections are re-established by the pool, so a database that is down
/// makes operations fail, never hang, and service resumes by itself.
/// PostgreSQL text cannot hold the NUL character: a name, key or payload
/// with one is refused ([`StoreError::Unsupported`]) before it reaches a
/// batch. Durability is the server's: with `synchronous_commit = on` (the
/// default) an acknowledged append survives a crash of PostgreSQL.
pub struct PostgresStore {
    shared: Arc<Shared>,
    pool: Pool,
    jobs: mpsc::UnboundedSender<Job>,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("epoch", &self.shared.epoch.get())
            .field("schema", &self.shared.schema)
            .finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// Connects to the database at `url` (`postgres://USER@HOST:PORT/DB`, or
    /// `postgresql://`; `?schema=NAME` picks the schema, `tether` by
    /// default; other parameters are the driver's) and creates the schema,
    /// its tables and its epoch if missing. Within a tokio runtime.
    ///
    /// Fails with [`StoreError::Unavailable`] for a URL that cannot be used
    /// or a schema of another version, and [`StoreError::Backend`] when the
    /// database cannot be reached (bounded by a few seconds).
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::open(url, true).await
    }

    /// [`PostgresStore::connect`] to a store that exists: a schema holding no
    /// store is refused ([`StoreError::Unavailable`]) instead of created.
    /// For tools that look inside a store.
    pub async fn connect_existing(url: &str) -> Result<Self, StoreError> {
        Self::open(url, false).await
    }

    async fn open(url: &str, create: bool) -> Result<Self, StoreError> {
        let location = schema::parse_url(url)?;
        let pool = make_pool(&location.config, &location.schema, POOL_SIZE)?;
        let epoch = bounded(async {
            let mut client = pool.get().await?;
            schema::setup(&mut client, &location.schema, create).await
        })
        .await
        .map_err(PgError::into_store)?;
        let shared = Arc::new(Shared {
            epoch: EpochCell {
                current: RwLock::new(Box::leak(epoch.into_boxed_str())),
            },
            channel: format!("tether_{}", location.schema),
            schema: location.schema,
            config: location.config,
            failure: Mutex::new(None),
            owner: crate::id::random_id(),
            session_lease: Mutex::new(DEFAULT_SESSION_LEASE),
        });
        // The writer has a connection of its own: reads and trims never
        // keep an append waiting for a connection.
        let writer_pool = make_pool(&shared.config, &shared.schema, 1)?;
        let (jobs, queue) = mpsc::unbounded_channel();
        let writer = Writer {
            pool: writer_pool,
            queue,
            shared: Arc::clone(&shared),
        };
        tokio::spawn(writer.run());
        Ok(PostgresStore { shared, pool, jobs })
    }

    /// The schema holding the store's tables.
    pub fn schema(&self) -> &str {
        &self.shared.schema
    }

    /// The pool (the cluster transport shares it).
    pub(crate) fn pool(&self) -> &Pool {
        &self.pool
    }

    /// The connection settings (the cluster transport opens its listening
    /// connections with them).
    pub(crate) fn config(&self) -> &tokio_postgres::Config {
        &self.shared.config
    }

    /// How long this node's connected sessions are held without a renewal
    /// of its lease (each connected session save and each trim renew it)
    /// before another node's trim takes the node as dead and marks them
    /// disconnected. Longer than the trim interval (30 s in a server) by a
    /// margin; 90 s by default.
    pub fn with_session_lease(self, lease: Duration) -> Self {
        *self.shared.session_lease.lock() = lease;
        self
    }

    /// Runs `op` with a pooled connection, bounded in time.
    async fn with_client<'a, T, F>(&'a self, op: F) -> Result<T, StoreError>
    where
        F: FnOnce(deadpool_postgres::Client) -> BoxFuture<'a, Result<T, PgError>>,
    {
        bounded(async {
            let client = self.pool.get().await?;
            op(client).await
        })
        .await
        .map_err(PgError::into_store)
    }

    /// Queues a job for the writer and waits for its answer.
    async fn submit<T>(
        &self,
        job: impl FnOnce(oneshot::Sender<Result<T, StoreError>>) -> Job,
    ) -> Result<T, StoreError> {
        let (reply, answer) = oneshot::channel();
        if self.jobs.send(job(reply)).is_err() {
            return Err(StoreError::Closed);
        }
        // A dropped reply means the writer is gone.
        answer.await.unwrap_or(Err(StoreError::Closed))
    }

    async fn health(&self) -> Health {
        if self.shared.failure.lock().is_none() {
            // Healthy writes: check the read path without writing.
            return match tokio::time::timeout(HEALTH_TIMEOUT, self.bounds()).await {
                Ok(Ok(_)) => Health::Healthy,
                Ok(Err(e)) => Health::Unhealthy(reason(&e)),
                Err(_) => {
                    Health::Unhealthy(format!("postgres: no answer within {HEALTH_TIMEOUT:?}"))
                }
            };
        }
        // The last commit failed: probe with a tiny write, so that recovery
        // shows without traffic.
        let probe = self.submit(|reply| Job::Probe { reply });
        match tokio::time::timeout(HEALTH_TIMEOUT, probe).await {
            Ok(Ok(())) => Health::Healthy,
            Ok(Err(e)) => Health::Unhealthy(format!("last commit failed: {}", reason(&e))),
            Err(_) => Health::Unhealthy(format!(
                "the health probe got no answer within {HEALTH_TIMEOUT:?}"
            )),
        }
    }

    /// Every stream with its size and positions (for `tether streams`).
    pub fn streams(&self) -> BoxFuture<'_, Result<Vec<StreamInfo>, StoreError>> {
        Box::pin(self.with_client(|client| {
            Box::pin(async move {
                let rows = client
                    .query(
                        "SELECT nsp, room, COUNT(*), MIN(seq), MAX(seq) FROM entry_targets
                         GROUP BY nsp, room ORDER BY nsp, room",
                        &[],
                    )
                    .await?;
                rows.iter()
                    .map(|row| {
                        let count: i64 = get(row, 2)?;
                        Ok(StreamInfo {
                            nsp: get(row, 0)?,
                            room: get(row, 1)?,
                            count: count.unsigned_abs(),
                            first: to_seq(get(row, 3)?)?,
                            last: to_seq(get(row, 4)?)?,
                        })
                    })
                    .collect()
            })
        }))
    }

    /// Every stored session, oldest change first (for `tether sessions`).
    pub fn sessions(&self) -> BoxFuture<'_, Result<Vec<SessionInfo>, StoreError>> {
        Box::pin(self.with_client(|client| {
            Box::pin(async move {
                let rows = client
                    .query(
                        "SELECT sid, nsp, rooms, connected, updated_ms FROM sessions ORDER BY updated_ms",
                        &[],
                    )
                    .await?;
                rows.iter()
                    .map(|row| {
                        Ok(SessionInfo {
                            sid: get(row, 0)?,
                            nsp: get(row, 1)?,
                            rooms: get(row, 2)?,
                            connected: get(row, 3)?,
                            updated_ms: get(row, 4)?,
                        })
                    })
                    .collect()
            })
        }))
    }
}

impl EventLog for PostgresStore {
    fn epoch(&self) -> &str {
        self.shared.epoch.get()
    }

    fn check_health(&self) -> BoxFuture<'_, Health> {
        Box::pin(self.health())
    }

    fn append_batch(
        &self,
        batch: Vec<Append>,
    ) -> BoxFuture<'_, Result<Vec<AppendOnce>, StoreError>> {
        let checked = batch
            .iter()
            .try_for_each(|append| check_entry(&append.entry, append.key.as_deref()));
        // Queued at the call, so that appends run in the order of the calls.
        let queued = match checked {
            Err(e) => Err(e),
            Ok(()) if batch.is_empty() => Ok(None),
            Ok(()) => {
                let (reply, answer) = oneshot::channel();
                match self.jobs.send(Job::Append { batch, reply }) {
                    Ok(()) => Ok(Some(answer)),
                    Err(_) => Err(StoreError::Closed),
                }
            }
        };
        Box::pin(async move {
            match queued? {
                None => Ok(Vec::new()),
                // A dropped reply means the writer is gone.
                Some(answer) => answer.await.unwrap_or(Err(StoreError::Closed)),
            }
        })
    }

    fn read<'a>(
        &'a self,
        nsp: &'a str,
        rooms: &'a [String],
        after: Seq,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<Entry>, StoreError>> {
        Box::pin(self.with_client(move |client| {
            Box::pin(async move { read_entries(&client, nsp, rooms, after, limit).await })
        }))
    }

    fn history<'a>(
        &'a self,
        nsp: &'a str,
        room: Option<&'a str>,
        before: Seq,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<Entry>, StoreError>> {
        Box::pin(self.with_client(move |client| {
            Box::pin(async move { read_history(&client, nsp, room, before, limit).await })
        }))
    }

    fn bounds(&self) -> BoxFuture<'_, Result<(Seq, Seq), StoreError>> {
        Box::pin(async move {
            let (last, trimmed) = self
                .with_client(|client| Box::pin(async move { read_bounds(&client).await }))
                .await?;
            Ok((last, trimmed + 1))
        })
    }

    fn shared_feed(&self) -> Option<&dyn SharedFeed> {
        Some(self)
    }
}

impl SharedFeed for PostgresStore {
    fn feed(&self, after: Seq) -> Feed {
        let state = feed::FeedState::new(self.pool.clone(), Arc::clone(&self.shared), after);
        Box::pin(futures_util::stream::unfold(state, feed::FeedState::next))
    }
}

impl Sessions for PostgresStore {
    fn save_session(&self, record: SessionRecord) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            let rooms = encode_rooms(&record.rooms);
            check_text(&[
                &record.pid,
                &record.sid,
                &record.nsp,
                &rooms,
                record.data.as_deref().unwrap_or(""),
                record.user.as_deref().unwrap_or(""),
            ])?;
            let owner = record.connected.then_some(self.shared.owner.as_str());
            let start_seq = to_i64(record.start_seq);
            let now = now_ms();
            self.with_client(|client| {
                Box::pin(async move {
                    // One statement: the session, and the renewal of this
                    // node's lease when it holds the session connected.
                    let stmt = client
                        .prepare_cached(
                            "WITH lease AS (
                                 INSERT INTO owners(owner, renewed_ms)
                                 SELECT $10, $11 WHERE $10::text IS NOT NULL
                                 ON CONFLICT (owner) DO UPDATE SET renewed_ms = excluded.renewed_ms
                             )
                             INSERT INTO sessions(pid, sid, nsp, rooms, data, user_id, start_seq,
                                                  connected, updated_ms, owner)
                             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
                             ON CONFLICT (pid) DO UPDATE SET
                                 sid = excluded.sid, nsp = excluded.nsp, rooms = excluded.rooms,
                                 data = excluded.data, user_id = excluded.user_id,
                                 start_seq = excluded.start_seq, connected = excluded.connected,
                                 updated_ms = excluded.updated_ms, owner = excluded.owner",
                        )
                        .await?;
                    client
                        .execute(
                            &stmt,
                            &[
                                &record.pid,
                                &record.sid,
                                &record.nsp,
                                &rooms,
                                &record.data,
                                &record.user,
                                &start_seq,
                                &record.connected,
                                &record.updated_ms,
                                &owner,
                                &now,
                            ],
                        )
                        .await?;
                    Ok(())
                })
            })
            .await
        })
    }

    fn load_session<'a>(
        &'a self,
        pid: &'a str,
    ) -> BoxFuture<'a, Result<Option<SessionRecord>, StoreError>> {
        Box::pin(async move {
            check_text(&[pid])?;
            self.with_client(move |client| {
                Box::pin(async move {
                    let stmt = client
                        .prepare_cached(
                            "SELECT sid, nsp, rooms, data, user_id, start_seq, connected, updated_ms
                             FROM sessions WHERE pid = $1",
                        )
                        .await?;
                    let Some(row) = client.query_opt(&stmt, &[&pid]).await? else {
                        return Ok(None);
                    };
                    let rooms: String = get(&row, 2)?;
                    Ok(Some(SessionRecord {
                        pid: pid.to_owned(),
                        sid: get(&row, 0)?,
                        nsp: get(&row, 1)?,
                        rooms: decode_rooms(&rooms, "session rooms")?,
                        data: get(&row, 3)?,
                        user: get(&row, 4)?,
                        start_seq: to_seq(get(&row, 5)?)?,
                        connected: get(&row, 6)?,
                        updated_ms: get(&row, 7)?,
                    }))
                })
            })
            .await
        })
    }

    fn delete_session<'a>(&'a self, pid: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            check_text(&[pid])?;
            self.with_client(move |client| {
                Box::pin(async move {
                    client
                        .execute("DELETE FROM sessions WHERE pid = $1", &[&pid])
                        .await?;
                    Ok(())
                })
            })
            .await
        })
    }
}

impl Inboxes for PostgresStore {
    fn inbox_push<'a>(
        &'a self,
        user: &'a str,
        event: String,
        args: String,
        attachments: Vec<Bytes>,
    ) -> BoxFuture<'a, Result<Seq, StoreError>> {
        Box::pin(async move {
            check_text(&[user, &event, &args])?;
            let blob = encode_attachments(&attachments);
            let now = now_ms();
            self.with_client(move |client| {
                Box::pin(async move {
                    // The user's next position (above the ack position too,
                    // so that a new entry is never taken as acknowledged),
                    // taken under the user's row lock, and the entry: one
                    // statement.
                    let stmt = client
                        .prepare_cached(
                            "WITH pos AS (
                                 INSERT INTO inbox_acks(user_id, upto, last) VALUES ($1, 0, 1)
                                 ON CONFLICT (user_id) DO UPDATE
                                     SET last = GREATEST(inbox_acks.upto, inbox_acks.last) + 1
                                 RETURNING last
                             )
                             INSERT INTO inbox(user_id, seq, ts_ms, event, args, attachments)
                             SELECT $1, pos.last, $2, $3, $4, $5 FROM pos
                             RETURNING seq",
                        )
                        .await?;
                    let row = client
                        .query_one(&stmt, &[&user, &now, &event, &args, &blob])
                        .await?;
                    to_seq(get(&row, 0)?)
                })
            })
            .await
        })
    }

    fn inbox_pending<'a>(
        &'a self,
        user: &'a str,
        after: Seq,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<InboxEntry>, StoreError>> {
        Box::pin(async move {
            check_text(&[user])?;
            if limit == 0 {
                return Ok(Vec::new());
            }
            self.with_client(move |client| {
                Box::pin(async move {
                    let stmt = client
                        .prepare_cached(
                            "SELECT seq, ts_ms, event, args, attachments FROM inbox
                             WHERE user_id = $1
                               AND seq > GREATEST($2, COALESCE(
                                   (SELECT upto FROM inbox_acks WHERE user_id = $1), 0))
                             ORDER BY seq LIMIT $3",
                        )
                        .await?;
                    let rows = client
                        .query(&stmt, &[&user, &to_i64(after), &len_i64(limit)])
                        .await?;
                    rows.iter()
                        .map(|row| {
                            let blob: Vec<u8> = get(row, 4)?;
                            Ok(InboxEntry {
                                seq: to_seq(get(row, 0)?)?,
                                ts_ms: get(row, 1)?,
                                event: get(row, 2)?,
                                args: get(row, 3)?,
                                attachments: decode_attachments(&blob)?,
                            })
                        })
                        .collect()
                })
            })
            .await
        })
    }

    fn inbox_ack<'a>(&'a self, user: &'a str, upto: Seq) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            check_text(&[user])?;
            let upto = to_i64(upto);
            self.with_client(move |mut client| {
                Box::pin(async move {
                    let tx = client.transaction().await?;
                    tx.execute(
                        "INSERT INTO inbox_acks(user_id, upto, last) VALUES ($1, $2, 0)
                         ON CONFLICT (user_id) DO UPDATE
                             SET upto = GREATEST(inbox_acks.upto, excluded.upto)",
                        &[&user, &upto],
                    )
                    .await?;
                    tx.execute(
                        "DELETE FROM inbox WHERE user_id = $1 AND seq <= $2",
                        &[&user, &upto],
                    )
                    .await?;
                    tx.commit().await?;
                    Ok(())
                })
            })
            .await
        })
    }
}

impl Retain for PostgresStore {
    fn trim<'a>(
        &'a self,
        retention: Retention,
        streams: &'a [StreamRetention],
        sessions_before_ms: i64,
    ) -> BoxFuture<'a, Result<u64, StoreError>> {
        Box::pin(async move {
            // A large trim takes longer than one operation's bound.
            let mut client = self
                .pool
                .get()
                .await
                .map_err(|e| PgError::from(e).into_store())?;
            trim::trim(
                &mut client,
                &self.shared,
                retention,
                streams,
                sessions_before_ms,
            )
            .await
            .map_err(PgError::into_store)
        })
    }

    fn supports_stream_retention(&self) -> bool {
        true
    }

    fn trimmed<'a>(
        &'a self,
        nsp: &'a str,
        streams: &'a [String],
    ) -> BoxFuture<'a, Result<Seq, StoreError>> {
        Box::pin(self.with_client(move |client| {
            Box::pin(async move {
                let row = client
                    .query_one(
                        "SELECT COALESCE(MAX(upto), 0) FROM stream_trims
                         WHERE nsp = $1 AND room = ANY($2)",
                        &[&nsp, &streams],
                    )
                    .await?;
                to_seq(get(&row, 0)?)
            })
        }))
    }
}
