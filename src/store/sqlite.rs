//! [`SqliteStore`]: the embedded, durable backend (one SQLite file in WAL
//! mode). The design is described on [`SqliteStore`]; the tables are in
//! [`SCHEMA`].

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension, Rows, Statement};
use tokio::sync::oneshot;

use super::{
    age_cutoff, now_ms, reaches, Append, AppendOnce, BoxFuture, Cuts, Entry, EventLog, Health,
    InboxEntry, Inboxes, NewEntry, Retain, Retention, Seq, SessionRecord, Sessions, SharedFeed,
    StoreError, StreamRetention, Target,
};

/// How durable a write is when it returns `Ok`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Durability {
    /// `synchronous=FULL`: every commit is fsynced; a write that returned `Ok`
    /// survives a power loss or an OS crash.
    #[default]
    Fsync,
    /// `synchronous=NORMAL` in WAL mode: the WAL is fsynced only at
    /// checkpoints; a write that returned `Ok` survives a crash of the
    /// process, not of the OS or the machine.
    Relaxed,
}

/// Most commands run in one transaction by the writer thread.
const MAX_BATCH: usize = 4096;
/// Read connections kept open between reads.
const MAX_IDLE_READERS: usize = 4;
/// How long a connection waits for a lock held by another connection (another
/// process, or a maintenance tool) before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Rows handled per statement while trimming, to bound memory.
const TRIM_CHUNK: usize = 512;
/// Size of a health check's probe write: larger than a big message, so that
/// a disk with room for small writes only (a session save) but not for
/// messages is still reported.
const PROBE_BYTES: i64 = 64 * 1024;
/// How long a health check waits for its probe write.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);
/// The health reason once the store's file is gone from its path.
const FILE_REPLACED: &str = "store file was deleted or replaced";
/// Version of [`SCHEMA`] recorded in `meta`.
const SCHEMA_VERSION: i64 = 1;

/// The tables and indexes (idempotent: run at every open).
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta(
    key TEXT PRIMARY KEY NOT NULL,
    value
);
CREATE TABLE IF NOT EXISTS entries(
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    nsp TEXT NOT NULL,
    rooms TEXT NOT NULL,
    except_rooms TEXT NOT NULL,
    event TEXT NOT NULL,
    args TEXT NOT NULL,
    attachments BLOB NOT NULL,
    ts_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS entries_by_nsp ON entries(nsp, seq);
CREATE TABLE IF NOT EXISTS entry_targets(
    nsp TEXT NOT NULL,
    room TEXT NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (nsp, room, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS stream_trims(
    nsp TEXT NOT NULL,
    room TEXT NOT NULL,
    upto INTEGER NOT NULL,
    PRIMARY KEY (nsp, room)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS idempotency(
    nsp TEXT NOT NULL,
    key TEXT NOT NULL,
    seq INTEGER NOT NULL,
    ts_ms INTEGER NOT NULL,
    PRIMARY KEY (nsp, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS idempotency_by_seq ON idempotency(seq);
CREATE TABLE IF NOT EXISTS sessions(
    pid TEXT PRIMARY KEY NOT NULL,
    sid TEXT NOT NULL,
    nsp TEXT NOT NULL,
    rooms TEXT NOT NULL,
    data TEXT,
    start_seq INTEGER NOT NULL,
    connected INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL,
    user TEXT
);
CREATE INDEX IF NOT EXISTS sessions_disconnected ON sessions(updated_ms) WHERE connected = 0;
CREATE TABLE IF NOT EXISTS inbox(
    user TEXT NOT NULL,
    seq INTEGER NOT NULL,
    ts_ms INTEGER NOT NULL,
    event TEXT NOT NULL,
    args TEXT NOT NULL,
    attachments BLOB NOT NULL,
    PRIMARY KEY (user, seq)
);
CREATE TABLE IF NOT EXISTS inbox_acks(
    user TEXT PRIMARY KEY NOT NULL,
    upto INTEGER NOT NULL,
    last INTEGER NOT NULL
);
";

/// A failure inside this backend; becomes [`StoreError::Unavailable`].
#[derive(Debug)]
struct DbError(String);

impl From<rusqlite::Error> for DbError {
    fn from(e: rusqlite::Error) -> Self {
        DbError(e.to_string())
    }
}

impl From<serde_json::Error> for DbError {
    fn from(e: serde_json::Error) -> Self {
        DbError(format!("corrupt JSON column: {e}"))
    }
}

impl DbError {
    fn into_store(self) -> StoreError {
        StoreError::Unavailable(self.0)
    }
}

/// The SQLite backend: one file in WAL mode.
///
/// Writes go to ONE writer thread that owns the write connection and does
/// group commit: it waits for a first command, takes the write lock, drains
/// every command already queued (up to 4096), runs them all in one
/// transaction and commits once (one fsync with [`Durability::Fsync`]); only
/// then does it answer each caller. If anything in the batch fails, the whole
/// transaction is rolled back and every command of the batch gets
/// [`StoreError::Unavailable`]; the thread goes on with later batches.
/// Commands are queued at the call (not at the first poll), so they run in
/// the order of the calls.
///
/// Reads run on a small pool of read connections through
/// [`tokio::task::spawn_blocking`]; in WAL mode they never wait for the
/// writer.
///
/// Tables:
/// - `meta(key, value)`: the epoch (random, made with the file), the schema
///   version and the trim watermark;
/// - `entries(seq AUTOINCREMENT, nsp, rooms, except_rooms, event, args,
///   attachments, ts_ms)`: AUTOINCREMENT, so positions are never reused, even
///   after every entry was trimmed. `rooms`/`except_rooms` are JSON arrays,
///   `attachments` a length-prefixed blob;
/// - `entry_targets(nsp, room, seq)` WITHOUT ROWID: one row per room an entry
///   targets, room `''` for the whole-namespace stream. A read is one index
///   range scan per room (plus `''`), merged by seq: its cost grows with what
///   it returns, not with other rooms' traffic;
/// - `idempotency(nsp, key, seq, ts_ms)`, `sessions(pid, ...)`,
///   `inbox(user, seq, ...)` and `inbox_acks(user, upto, last)`.
///
/// Health ([`EventLog::check_health`]): unhealthy from a failed batch until the
/// health check's probe (a 64 KiB write: on a nearly full disk small writes
/// still fit while messages do not) commits; and for good once the file at the path is not the file the store
/// has open (deleted, or replaced by another: its device and inode changed).
/// The writer checks that after every commit, before answering: a batch
/// committed into a file a restart would not find is answered with an error,
/// so an ack is only sent for a write the next open finds.
///
/// Dropping it closes the command queue and waits for the writer thread to
/// finish the commands already queued, then closes the file.
pub struct SqliteStore {
    epoch: String,
    jobs: Option<mpsc::Sender<Box<dyn Job>>>,
    writer: Option<JoinHandle<()>>,
    readers: Arc<Readers>,
    file: Arc<FileWatch>,
    /// Why a batch failed; `None` once a health probe committed.
    failure: Arc<Mutex<Option<String>>>,
}

/// The store's file as it was opened, to notice it was deleted or replaced.
struct FileWatch {
    path: PathBuf,
    /// Device and inode at open (`None` where they are not known).
    id: Option<(u64, u64)>,
}

impl FileWatch {
    fn new(path: &Path) -> Self {
        FileWatch {
            path: path.to_path_buf(),
            id: file_id(path),
        }
    }

    /// True when the path no longer leads to the file opened.
    fn replaced(&self) -> bool {
        self.id.is_some_and(|id| file_id(&self.path) != Some(id))
    }
}

#[cfg(unix)]
fn file_id(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

#[cfg(not(unix))]
fn file_id(_path: &Path) -> Option<(u64, u64)> {
    None
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("epoch", &self.epoch)
            .field("path", &self.readers.path)
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the store in the file at `path`.
    ///
    /// A new file gets a new random epoch; reopening a file keeps its epoch
    /// and everything stored. Fails if the file cannot be opened, is not a
    /// Tether store of a known schema version, or cannot be put in WAL mode
    /// (an in-memory database, for example).
    pub fn open(path: impl AsRef<Path>, durability: Durability) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        let (conn, epoch, last_ts) = open_writer(&path, durability).map_err(DbError::into_store)?;
        let (jobs, queue) = mpsc::channel();
        let file = Arc::new(FileWatch::new(&path));
        let failure = Arc::new(Mutex::new(None));
        let writer = Writer {
            conn,
            queue,
            last_ts,
            file: Arc::clone(&file),
            failure: Arc::clone(&failure),
        };
        let handle = std::thread::Builder::new()
            .name("tether-store-writer".into())
            .spawn(move || writer.run())
            .map_err(|e| StoreError::Unavailable(format!("cannot start the writer thread: {e}")))?;
        Ok(SqliteStore {
            epoch,
            jobs: Some(jobs),
            writer: Some(handle),
            readers: Arc::new(Readers {
                path,
                idle: Mutex::new(Vec::new()),
            }),
            file,
            failure,
        })
    }

    /// Queues `op` for the writer thread. The command is queued now, at the
    /// call, so commands run in the order of the calls.
    fn write<T, F>(&self, op: F) -> BoxFuture<'_, Result<T, StoreError>>
    where
        T: Send + 'static,
        F: FnOnce(&Ctx<'_>) -> Result<T, DbError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job = Box::new(Task {
            op: Some(op),
            out: None,
            reply,
        });
        let queued = self
            .jobs
            .as_ref()
            .is_some_and(|jobs| jobs.send(job).is_ok());
        Box::pin(async move {
            if !queued {
                return Err(StoreError::Closed);
            }
            // A dropped reply means the writer thread is gone.
            answer.await.unwrap_or(Err(StoreError::Closed))
        })
    }

    /// Runs `op` on a read connection, in one read transaction (a consistent
    /// snapshot), on tokio's blocking pool.
    fn read_with<T, F>(&self, op: F) -> BoxFuture<'_, Result<T, StoreError>>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, DbError> + Send + 'static,
    {
        let readers = Arc::clone(&self.readers);
        Box::pin(async move {
            match tokio::task::spawn_blocking(move || readers.run(op)).await {
                Ok(result) => result.map_err(DbError::into_store),
                Err(e) => Err(StoreError::Unavailable(format!("read task failed: {e}"))),
            }
        })
    }
}

/// One stream of a store, for inspection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamInfo {
    /// Namespace.
    pub nsp: String,
    /// Room; empty for the whole-namespace stream.
    pub room: String,
    /// Entries kept.
    pub count: u64,
    /// Oldest position kept.
    pub first: Seq,
    /// Latest position.
    pub last: Seq,
}

/// A stored session, for inspection (its private id is not shown).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    /// Public socket id.
    pub sid: String,
    /// Namespace.
    pub nsp: String,
    /// Rooms (JSON array).
    pub rooms: String,
    /// True while a socket of the session is connected.
    pub connected: bool,
    /// Milliseconds since the Unix epoch of the last change.
    pub updated_ms: i64,
}

impl SqliteStore {
    /// Marks every session still recorded as connected as disconnected now;
    /// returns how many. Run it once at start, before serving, in the process
    /// that owns the file: the sessions of a process that died without
    /// closing them (kill -9, a crash, a power loss) then expire after the
    /// recovery window like any other, counted from this restart, instead of
    /// staying recoverable (and kept) forever. A client of the dead process
    /// that comes back within the window still recovers. (Not at open: the
    /// inspection tools open the file of a running server too.)
    pub fn disconnect_sessions(&self) -> BoxFuture<'_, Result<u64, StoreError>> {
        self.write(|ctx| {
            let n = ctx
                .conn
                .prepare_cached(
                    "UPDATE sessions SET connected = 0, updated_ms = ?1 WHERE connected != 0",
                )?
                .execute([ctx.ts_ms])?;
            Ok(u64::try_from(n).unwrap_or(u64::MAX))
        })
    }

    /// Every stream with its size and positions (for `tether streams`).
    pub fn streams(&self) -> BoxFuture<'_, Result<Vec<StreamInfo>, StoreError>> {
        self.read_with(|conn| {
            let mut stmt = conn.prepare(
                "SELECT nsp, room, COUNT(*), MIN(seq), MAX(seq) FROM entry_targets
                 GROUP BY nsp, room ORDER BY nsp, room",
            )?;
            let rows = stmt.query_map([], |row| {
                Ok(StreamInfo {
                    nsp: row.get(0)?,
                    room: row.get(1)?,
                    count: row.get::<_, i64>(2)?.max(0).unsigned_abs(),
                    first: row.get::<_, i64>(3)?.max(0).unsigned_abs(),
                    last: row.get::<_, i64>(4)?.max(0).unsigned_abs(),
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
    }

    /// Every stored session, oldest change first (for `tether sessions`).
    pub fn sessions(&self) -> BoxFuture<'_, Result<Vec<SessionInfo>, StoreError>> {
        self.read_with(|conn| {
            let mut stmt = conn.prepare(
                "SELECT sid, nsp, rooms, connected, updated_ms FROM sessions ORDER BY updated_ms",
            )?;
            let rows = stmt.query_map([], |row| {
                Ok(SessionInfo {
                    sid: row.get(0)?,
                    nsp: row.get(1)?,
                    rooms: row.get(2)?,
                    connected: row.get(3)?,
                    updated_ms: row.get(4)?,
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        // Closing the queue ends the writer's loop once it has run what it took.
        drop(self.jobs.take());
        if let Some(writer) = self.writer.take() {
            if writer.join().is_err() {
                tracing::error!("the store writer thread panicked");
            }
        }
    }
}

impl EventLog for SqliteStore {
    fn epoch(&self) -> &str {
        &self.epoch
    }

    fn check_health(&self) -> BoxFuture<'_, Health> {
        if self.file.replaced() {
            return Box::pin(std::future::ready(Health::Unhealthy(FILE_REPLACED.into())));
        }
        if self.failure.lock().is_none() {
            // Healthy writes: check the read path without writing.
            let bounds = self.bounds();
            return Box::pin(async move {
                match bounds.await {
                    Ok(_) => Health::Healthy,
                    Err(e) => Health::Unhealthy(e.to_string()),
                }
            });
        }
        // The last batch failed: probe with a tiny write, so that recovery
        // shows without traffic.
        let probe = self.write(|ctx| {
            ctx.conn
                .prepare_cached(
                    "INSERT INTO meta(key, value) VALUES ('health_probe', zeroblob(?1))
                     ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                )?
                .execute([PROBE_BYTES])?;
            // Only a good probe clears the failure (see `Writer::failure`).
            Ok(())
        });
        let failure = Arc::clone(&self.failure);
        Box::pin(async move {
            match tokio::time::timeout(PROBE_TIMEOUT, probe).await {
                Ok(Ok(())) => {
                    if failure.lock().take().is_some() {
                        tracing::info!("store writes work again (the health probe committed)");
                    }
                    Health::Healthy
                }
                Ok(Err(_)) => Health::Unhealthy(
                    failure
                        .lock()
                        .clone()
                        .unwrap_or_else(|| "the health probe failed".into()),
                ),
                Err(_) => Health::Unhealthy(format!(
                    "the health probe got no answer within {PROBE_TIMEOUT:?}"
                )),
            }
        })
    }

    fn append_batch(
        &self,
        batch: Vec<Append>,
    ) -> BoxFuture<'_, Result<Vec<AppendOnce>, StoreError>> {
        self.write(move |ctx| batch.iter().map(|append| append_one(ctx, append)).collect())
    }

    fn read<'a>(
        &'a self,
        nsp: &'a str,
        rooms: &'a [String],
        after: Seq,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<Entry>, StoreError>> {
        let nsp = nsp.to_owned();
        let rooms = rooms.to_vec();
        self.read_with(move |conn| read_entries(conn, &nsp, &rooms, after, limit))
    }

    fn history<'a>(
        &'a self,
        nsp: &'a str,
        room: Option<&'a str>,
        before: Seq,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<Entry>, StoreError>> {
        let nsp = nsp.to_owned();
        let room = room.map(str::to_owned);
        self.read_with(move |conn| read_history(conn, &nsp, room, before, limit))
    }

    fn bounds(&self) -> BoxFuture<'_, Result<(Seq, Seq), StoreError>> {
        self.read_with(|conn| {
            let (last, trimmed): (i64, i64) = conn.query_row(
                "SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'entries'), 0),
                        COALESCE((SELECT value FROM meta WHERE key = 'trimmed_upto'), 0)",
                [],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )?;
            Ok((to_seq(last), to_seq(trimmed) + 1))
        })
    }

    fn shared_feed(&self) -> Option<&dyn SharedFeed> {
        // One file, one process.
        None
    }
}

impl Sessions for SqliteStore {
    fn save_session(&self, record: SessionRecord) -> BoxFuture<'_, Result<(), StoreError>> {
        self.write(move |ctx| {
            let rooms = serde_json::to_string(&record.rooms)?;
            ctx.conn
                .prepare_cached(
                    "INSERT OR REPLACE INTO sessions(pid, sid, nsp, rooms, data, start_seq, connected, updated_ms, user)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                )?
                .execute(params![
                    record.pid,
                    record.sid,
                    record.nsp,
                    rooms,
                    record.data,
                    to_i64(record.start_seq),
                    record.connected,
                    record.updated_ms,
                    record.user
                ])?;
            Ok(())
        })
    }

    fn load_session<'a>(
        &'a self,
        pid: &'a str,
    ) -> BoxFuture<'a, Result<Option<SessionRecord>, StoreError>> {
        let pid = pid.to_owned();
        self.read_with(move |conn| {
            let row = conn
                .prepare_cached(
                    "SELECT sid, nsp, rooms, data, start_seq, connected, updated_ms, user
                     FROM sessions WHERE pid = ?1",
                )?
                .query_row([&pid], |row| {
                    Ok((
                        row.get::<_, String>(0)?,
                        row.get::<_, String>(1)?,
                        row.get::<_, String>(2)?,
                        row.get::<_, Option<String>>(3)?,
                        row.get::<_, i64>(4)?,
                        row.get::<_, bool>(5)?,
                        row.get::<_, i64>(6)?,
                        row.get::<_, Option<String>>(7)?,
                    ))
                })
                .optional()?;
            let Some((sid, nsp, rooms, data, start_seq, connected, updated_ms, user)) = row else {
                return Ok(None);
            };
            Ok(Some(SessionRecord {
                pid,
                sid,
                nsp,
                rooms: serde_json::from_str(&rooms)?,
                data,
                user,
                start_seq: to_seq(start_seq),
                connected,
                updated_ms,
            }))
        })
    }

    fn delete_session<'a>(&'a self, pid: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        let pid = pid.to_owned();
        self.write(move |ctx| {
            ctx.conn
                .prepare_cached("DELETE FROM sessions WHERE pid = ?1")?
                .execute([&pid])?;
            Ok(())
        })
    }
}

impl Inboxes for SqliteStore {
    fn inbox_push<'a>(
        &'a self,
        user: &'a str,
        event: String,
        args: String,
        attachments: Vec<Bytes>,
    ) -> BoxFuture<'a, Result<Seq, StoreError>> {
        let user = user.to_owned();
        self.write(move |ctx| {
            let (upto, last): (i64, i64) = ctx
                .conn
                .prepare_cached("SELECT upto, last FROM inbox_acks WHERE user = ?1")?
                .query_row([&user], |row| Ok((row.get(0)?, row.get(1)?)))
                .optional()?
                .unwrap_or((0, 0));
            // Above the ack position too, so that a new entry is never taken
            // as already acknowledged.
            let seq = upto.max(last) + 1;
            ctx.conn
                .prepare_cached(
                    "INSERT INTO inbox_acks(user, upto, last) VALUES (?1, 0, ?2)
                     ON CONFLICT(user) DO UPDATE SET last = excluded.last",
                )?
                .execute(params![user, seq])?;
            ctx.conn
                .prepare_cached(
                    "INSERT INTO inbox(user, seq, ts_ms, event, args, attachments)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )?
                .execute(params![
                    user,
                    seq,
                    ctx.ts_ms,
                    event,
                    args,
                    encode_attachments(&attachments)
                ])?;
            Ok(to_seq(seq))
        })
    }

    fn inbox_pending<'a>(
        &'a self,
        user: &'a str,
        after: Seq,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<InboxEntry>, StoreError>> {
        let user = user.to_owned();
        self.read_with(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT seq, ts_ms, event, args, attachments FROM inbox
                 WHERE user = ?1
                   AND seq > max(?2, COALESCE((SELECT upto FROM inbox_acks WHERE user = ?1), 0))
                 ORDER BY seq LIMIT ?3",
            )?;
            let mut rows = stmt.query(params![user, to_i64(after), to_i64_len(limit)])?;
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                out.push(InboxEntry {
                    seq: to_seq(row.get(0)?),
                    ts_ms: row.get(1)?,
                    event: row.get(2)?,
                    args: row.get(3)?,
                    attachments: decode_attachments(&row.get::<_, Vec<u8>>(4)?)?,
                });
            }
            Ok(out)
        })
    }

    fn inbox_ack<'a>(&'a self, user: &'a str, upto: Seq) -> BoxFuture<'a, Result<(), StoreError>> {
        let user = user.to_owned();
        self.write(move |ctx| {
            let upto = to_i64(upto);
            ctx.conn
                .prepare_cached(
                    "INSERT INTO inbox_acks(user, upto, last) VALUES (?1, ?2, 0)
                     ON CONFLICT(user) DO UPDATE SET upto = max(upto, excluded.upto)",
                )?
                .execute(params![user, upto])?;
            ctx.conn
                .prepare_cached("DELETE FROM inbox WHERE user = ?1 AND seq <= ?2")?
                .execute(params![user, upto])?;
            Ok(())
        })
    }
}

impl Retain for SqliteStore {
    fn trim<'a>(
        &'a self,
        retention: Retention,
        streams: &'a [StreamRetention],
        sessions_before_ms: i64,
    ) -> BoxFuture<'a, Result<u64, StoreError>> {
        let streams = streams.to_vec();
        self.write(move |ctx| trim(ctx.conn, retention, &streams, sessions_before_ms))
    }

    fn supports_stream_retention(&self) -> bool {
        true
    }

    fn trimmed<'a>(
        &'a self,
        nsp: &'a str,
        streams: &'a [String],
    ) -> BoxFuture<'a, Result<Seq, StoreError>> {
        let nsp = nsp.to_owned();
        let streams = streams.to_vec();
        self.read_with(move |conn| {
            let mut mark = 0i64;
            let mut stmt =
                conn.prepare_cached("SELECT upto FROM stream_trims WHERE nsp = ?1 AND room = ?2")?;
            for room in &streams {
                if let Some(upto) = stmt
                    .query_row(params![nsp, room], |row| row.get::<_, i64>(0))
                    .optional()?
                {
                    mark = mark.max(upto);
                }
            }
            Ok(to_seq(mark))
        })
    }
}

// ---------------------------------------------------------------------------
// Opening

/// Opens the write connection, sets the pragmas, creates the schema and the
/// epoch. Returns the connection, the epoch and the last entry's timestamp.
fn open_writer(path: &Path, durability: Durability) -> Result<(Connection, String, i64), DbError> {
    let mut conn = Connection::open(path)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    set_pragmas(&conn, durability)?;
    conn.set_prepared_statement_cache_capacity(64);

    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    tx.execute_batch(SCHEMA)?;
    // Files made before sessions kept their user: add the column.
    let has_user: bool = tx.query_row(
        "SELECT COUNT(*) > 0 FROM pragma_table_info('sessions') WHERE name = 'user'",
        [],
        |r| r.get(0),
    )?;
    if !has_user {
        tx.execute_batch("ALTER TABLE sessions ADD COLUMN user TEXT")?;
    }
    tx.execute(
        "INSERT OR IGNORE INTO meta(key, value) VALUES ('epoch', ?1)",
        [crate::id::random_id()],
    )?;
    tx.execute(
        "INSERT OR IGNORE INTO meta(key, value) VALUES ('schema_version', ?1)",
        [SCHEMA_VERSION],
    )?;
    let version: i64 = tx.query_row(
        "SELECT value FROM meta WHERE key = 'schema_version'",
        [],
        |r| r.get(0),
    )?;
    if version != SCHEMA_VERSION {
        return Err(DbError(format!(
            "store schema version {version} is not supported (expected {SCHEMA_VERSION})"
        )));
    }
    let epoch: String = tx.query_row("SELECT value FROM meta WHERE key = 'epoch'", [], |r| {
        r.get(0)
    })?;
    let last_ts: i64 = tx
        .query_row(
            "SELECT ts_ms FROM entries ORDER BY seq DESC LIMIT 1",
            [],
            |r| r.get(0),
        )
        .optional()?
        .unwrap_or(0);
    tx.commit()?;
    Ok((conn, epoch, last_ts))
}

/// WAL mode and the synchronous level of `durability`.
fn set_pragmas(conn: &Connection, durability: Durability) -> Result<(), DbError> {
    let mode: String =
        conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(DbError(format!(
            "cannot use WAL mode (journal_mode is {mode}); the store needs a file on a local disk"
        )));
    }
    let synchronous = match durability {
        Durability::Fsync => "FULL",
        Durability::Relaxed => "NORMAL",
    };
    conn.pragma_update(None, "synchronous", synchronous)?;
    Ok(())
}

fn open_reader(path: &Path) -> Result<Connection, DbError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "query_only", true)?;
    Ok(conn)
}

// ---------------------------------------------------------------------------
// The writer thread

/// What a write command sees while it runs inside the batch's transaction.
struct Ctx<'a> {
    conn: &'a Connection,
    /// The batch's timestamp: never lower than an earlier batch's.
    ts_ms: i64,
}

/// A queued write command.
trait Job: Send {
    /// Runs the command inside the batch's transaction.
    fn run(&mut self, ctx: &Ctx<'_>) -> Result<(), DbError>;
    /// Answers the caller once the batch committed (`failure` is `None`) or
    /// was rolled back.
    fn finish(self: Box<Self>, failure: Option<&StoreError>);
}

struct Task<T, F> {
    op: Option<F>,
    out: Option<T>,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

impl<T, F> Job for Task<T, F>
where
    T: Send,
    F: FnOnce(&Ctx<'_>) -> Result<T, DbError> + Send,
{
    fn run(&mut self, ctx: &Ctx<'_>) -> Result<(), DbError> {
        if let Some(op) = self.op.take() {
            self.out = Some(op(ctx)?);
        }
        Ok(())
    }

    fn finish(self: Box<Self>, failure: Option<&StoreError>) {
        let Task { out, reply, .. } = *self;
        let answer = match (failure, out) {
            (Some(e), _) => Err(e.clone()),
            (None, Some(out)) => Ok(out),
            (None, None) => Err(StoreError::Unavailable("the write was not run".into())),
        };
        // The caller may have stopped waiting: nothing to do then.
        let _ = reply.send(answer);
    }
}

struct Writer {
    conn: Connection,
    queue: mpsc::Receiver<Box<dyn Job>>,
    /// Timestamp of the last batch, so that timestamps never go back with
    /// increasing positions (age trimming relies on it).
    last_ts: i64,
    file: Arc<FileWatch>,
    /// Why a batch failed; cleared by a health probe that commits (`None`:
    /// no failure since).
    failure: Arc<Mutex<Option<String>>>,
}

impl Writer {
    /// Serves batches until the queue is closed (the store was dropped).
    fn run(mut self) {
        while let Ok(first) = self.queue.recv() {
            self.run_batch(first);
        }
    }

    fn run_batch(&mut self, first: Box<dyn Job>) {
        let mut batch = vec![first];
        let begun = self.conn.execute_batch("BEGIN IMMEDIATE");
        // Drain only once the write lock is held: whatever was queued while
        // waiting for it joins this batch.
        while batch.len() < MAX_BATCH {
            match self.queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let failure = match begun
            .map_err(DbError::from)
            .and_then(|()| self.execute(&mut batch))
        {
            // Committed, but into a file that is no longer at the path: a
            // restart would not find it, so it is not acknowledged.
            Ok(()) if self.file.replaced() => {
                tracing::error!(
                    path = %self.file.path.display(),
                    commands = batch.len(),
                    "the store file was deleted or replaced: refusing every write until restarted"
                );
                *self.failure.lock() = Some(FILE_REPLACED.into());
                Some(StoreError::Unavailable(FILE_REPLACED.into()))
            }
            // A good commit does not clear a failure: on a nearly full disk
            // small writes (session saves) go through while messages fail.
            // The health check's probe, a large write, does.
            Ok(()) => None,
            Err(e) => {
                if !self.conn.is_autocommit() {
                    if let Err(rollback) = self.conn.execute_batch("ROLLBACK") {
                        tracing::error!(error = %rollback, "store rollback failed");
                    }
                }
                tracing::warn!(error = %e.0, commands = batch.len(), "store batch failed; rolled back");
                metrics::counter!("tether_store_commit_failures_total").increment(1);
                *self.failure.lock() = Some(format!("last commit failed: {}", e.0));
                Some(StoreError::Unavailable(e.0))
            }
        };
        for job in batch {
            job.finish(failure.as_ref());
        }
    }

    fn execute(&mut self, batch: &mut [Box<dyn Job>]) -> Result<(), DbError> {
        let ts_ms = now_ms().max(self.last_ts);
        self.last_ts = ts_ms;
        let ctx = Ctx {
            conn: &self.conn,
            ts_ms,
        };
        for job in batch.iter_mut() {
            job.run(&ctx)?;
        }
        self.conn.execute_batch("COMMIT")?;
        Ok(())
    }
}

/// Appends one entry of a batch, unless its key was used before.
fn append_one(ctx: &Ctx<'_>, append: &Append) -> Result<AppendOnce, DbError> {
    let Some(key) = &append.key else {
        return Ok(AppendOnce::Appended(insert_entry(
            ctx.conn,
            &append.entry,
            ctx.ts_ms,
        )?));
    };
    let nsp = &append.entry.target.nsp;
    let seen: Option<i64> = ctx
        .conn
        .prepare_cached("SELECT seq FROM idempotency WHERE nsp = ?1 AND key = ?2")?
        .query_row(params![nsp, key], |row| row.get(0))
        .optional()?;
    if let Some(seq) = seen {
        return Ok(AppendOnce::Duplicate(to_seq(seq)));
    }
    let seq = insert_entry(ctx.conn, &append.entry, ctx.ts_ms)?;
    ctx.conn
        .prepare_cached("INSERT INTO idempotency(nsp, key, seq, ts_ms) VALUES (?1, ?2, ?3, ?4)")?
        .execute(params![nsp, key, to_i64(seq), ctx.ts_ms])?;
    Ok(AppendOnce::Appended(seq))
}

fn insert_entry(conn: &Connection, entry: &NewEntry, ts_ms: i64) -> Result<Seq, DbError> {
    let target = &entry.target;
    conn.prepare_cached(
        "INSERT INTO entries(nsp, rooms, except_rooms, event, args, attachments, ts_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        target.nsp,
        serde_json::to_string(&target.rooms)?,
        serde_json::to_string(&target.except)?,
        entry.event,
        entry.args,
        encode_attachments(&entry.attachments),
        ts_ms
    ])?;
    let seq = conn.last_insert_rowid();
    // OR IGNORE: a room listed twice is one stream row.
    let mut stream = conn.prepare_cached(
        "INSERT OR IGNORE INTO entry_targets(nsp, room, seq) VALUES (?1, ?2, ?3)",
    )?;
    for room in streams_of(&target.rooms) {
        stream.execute(params![target.nsp, room, seq])?;
    }
    Ok(to_seq(seq))
}

/// The streams an entry is in: its rooms, or `''` (the whole namespace).
fn streams_of(rooms: &[String]) -> impl Iterator<Item = &str> {
    let whole = rooms.is_empty().then_some("");
    whole.into_iter().chain(rooms.iter().map(String::as_str))
}

/// Retention, then old disconnected sessions. The candidates are the entries
/// some limit lets go (the default age, the default count per namespace, each
/// stream's own limits); each goes only if none of its streams keeps it (see
/// [`StreamRetention`]). Every scan pages by position, so entries kept by
/// another stream are stepped over, never looped on.
fn trim(
    conn: &Connection,
    retention: Retention,
    streams: &[StreamRetention],
    sessions_before_ms: i64,
) -> Result<u64, DbError> {
    let default_age = age_cutoff(retention.max_age);
    // The default limits of each namespace.
    let mut defaults: HashMap<String, Cuts> = HashMap::new();
    let mut namespace: Option<String> = None;
    loop {
        // Walk the namespaces through the index, one seek each.
        namespace = match &namespace {
            None => conn
                .prepare_cached("SELECT nsp FROM entries ORDER BY nsp LIMIT 1")?
                .query_row([], |row| row.get(0))
                .optional()?,
            Some(prev) => conn
                .prepare_cached("SELECT nsp FROM entries WHERE nsp > ?1 ORDER BY nsp LIMIT 1")?
                .query_row([prev], |row| row.get(0))
                .optional()?,
        };
        let Some(nsp) = &namespace else { break };
        let count_cut = match retention.max_count {
            Some(max_count) => conn
                .prepare_cached(
                    "SELECT seq FROM entries WHERE nsp = ?1 ORDER BY seq DESC LIMIT 1 OFFSET ?2",
                )?
                .query_row(params![nsp, to_i64(max_count)], |row| row.get::<_, i64>(0))
                .optional()?
                .map(to_seq),
            None => None,
        };
        defaults.insert(
            nsp.clone(),
            Cuts {
                age_cutoff_ms: default_age,
                count_cut,
            },
        );
    }
    // Each stream's own limits.
    let mut overrides: HashMap<(String, String), Cuts> = HashMap::new();
    for policy in streams {
        let count_cut = match policy.max_count {
            Some(max_count) => conn
                .prepare_cached(
                    "SELECT seq FROM entry_targets WHERE nsp = ?1 AND room = ?2
                     ORDER BY seq DESC LIMIT 1 OFFSET ?3",
                )?
                .query_row(params![policy.nsp, policy.room, to_i64(max_count)], |row| {
                    row.get::<_, i64>(0)
                })
                .optional()?
                .map(to_seq),
            None => None,
        };
        overrides.insert(
            (policy.nsp.clone(), policy.room.clone()),
            Cuts {
                age_cutoff_ms: age_cutoff(policy.max_age),
                count_cut,
            },
        );
    }
    let keeps = |seq: i64, nsp: &str, rooms: &[String], ts_ms: i64| {
        streams_of(rooms).any(|room| {
            overrides
                .get(&(nsp.to_owned(), room.to_owned()))
                .or_else(|| defaults.get(nsp))
                .is_some_and(|cuts| cuts.keeps(to_seq(seq), ts_ms))
        })
    };
    let mut removed = 0u64;
    let mut highest = 0i64;
    let mut sweep = |sql: &str, args: &[&dyn rusqlite::ToSql]| -> Result<(), DbError> {
        // `sql` selects (seq, nsp, rooms, ts_ms) of candidates with
        // seq > ?1, in position order, LIMIT ?2; `args` bind ?3...
        let mut after = 0i64;
        loop {
            let chunk = {
                let mut stmt = conn.prepare_cached(sql)?;
                let mut bound: Vec<&dyn rusqlite::ToSql> = vec![&after];
                let limit = to_i64_len(TRIM_CHUNK);
                bound.push(&limit);
                bound.extend_from_slice(args);
                let rows = stmt
                    .query_map(bound.as_slice(), |row| {
                        Ok((
                            row.get::<_, i64>(0)?,
                            row.get::<_, String>(1)?,
                            row.get::<_, String>(2)?,
                            row.get::<_, i64>(3)?,
                        ))
                    })?
                    .collect::<Result<Vec<_>, _>>()?;
                rows
            };
            for (seq, nsp, rooms, ts_ms) in &chunk {
                after = *seq;
                let rooms: Vec<String> = serde_json::from_str(rooms)?;
                if !keeps(*seq, nsp, &rooms, *ts_ms) {
                    delete_entry(conn, *seq, nsp, &rooms)?;
                    highest = highest.max(*seq);
                    removed += 1;
                }
            }
            if chunk.len() < TRIM_CHUNK {
                return Ok(());
            }
        }
    };
    const COLS: &str = "e.seq, e.nsp, e.rooms, e.ts_ms";
    if let Some(cutoff) = default_age {
        // Timestamps never go back: the old entries are a prefix.
        sweep(
            &format!("SELECT {COLS} FROM entries e WHERE e.seq > ?1 AND e.ts_ms < ?3 ORDER BY e.seq LIMIT ?2"),
            &[&cutoff],
        )?;
    }
    for (nsp, cuts) in &defaults {
        if let Some(cut) = cuts.count_cut {
            sweep(
                &format!("SELECT {COLS} FROM entries e WHERE e.nsp = ?3 AND e.seq > ?1 AND e.seq <= ?4 ORDER BY e.seq LIMIT ?2"),
                &[nsp, &to_i64(cut)],
            )?;
        }
    }
    for ((nsp, room), cuts) in &overrides {
        let from_targets = format!(
            "SELECT {COLS} FROM entry_targets t JOIN entries e ON e.seq = t.seq
             WHERE t.nsp = ?3 AND t.room = ?4 AND t.seq > ?1 AND {{}} ORDER BY t.seq LIMIT ?2"
        );
        if let Some(cutoff) = cuts.age_cutoff_ms {
            sweep(
                &from_targets.replace("{}", "e.ts_ms < ?5"),
                &[nsp, room, &cutoff],
            )?;
        }
        if let Some(cut) = cuts.count_cut {
            sweep(
                &from_targets.replace("{}", "t.seq <= ?5"),
                &[nsp, room, &to_i64(cut)],
            )?;
        }
    }
    if highest > 0 {
        conn.prepare_cached(
            "INSERT INTO meta(key, value) VALUES ('trimmed_upto', ?1)
             ON CONFLICT(key) DO UPDATE SET value = max(value, excluded.value)",
        )?
        .execute([highest])?;
    }
    conn.prepare_cached("DELETE FROM sessions WHERE connected = 0 AND updated_ms < ?1")?
        .execute([sessions_before_ms])?;
    Ok(removed)
}

/// Deletes an entry with its stream rows and its idempotency record.
fn delete_entry(conn: &Connection, seq: i64, nsp: &str, rooms: &[String]) -> Result<(), DbError> {
    conn.prepare_cached("DELETE FROM entries WHERE seq = ?1")?
        .execute([seq])?;
    let mut stream =
        conn.prepare_cached("DELETE FROM entry_targets WHERE nsp = ?1 AND room = ?2 AND seq = ?3")?;
    let mut mark = conn.prepare_cached(
        "INSERT INTO stream_trims(nsp, room, upto) VALUES (?1, ?2, ?3)
         ON CONFLICT(nsp, room) DO UPDATE SET upto = max(upto, excluded.upto)",
    )?;
    for room in streams_of(rooms) {
        stream.execute(params![nsp, room, seq])?;
        mark.execute(params![nsp, room, seq])?;
    }
    conn.prepare_cached("DELETE FROM idempotency WHERE seq = ?1")?
        .execute([seq])?;
    Ok(())
}

// ---------------------------------------------------------------------------
// Reads

/// The read connections: taken from the idle list, or opened when none is
/// idle; at most [`MAX_IDLE_READERS`] are kept.
struct Readers {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

impl Readers {
    fn run<T>(&self, op: impl FnOnce(&Connection) -> Result<T, DbError>) -> Result<T, DbError> {
        let pooled = self.idle.lock().pop();
        let conn = match pooled {
            Some(conn) => conn,
            None => open_reader(&self.path)?,
        };
        conn.execute_batch("BEGIN")?;
        let out = op(&conn);
        // A read transaction: ending it either way releases the snapshot.
        let ended = conn.execute_batch("COMMIT");
        if ended.is_ok() && conn.is_autocommit() {
            let mut idle = self.idle.lock();
            if idle.len() < MAX_IDLE_READERS {
                idle.push(conn);
            }
        }
        out
    }
}

const LOAD_ENTRY: &str =
    "SELECT nsp, rooms, except_rooms, event, args, attachments, ts_ms FROM entries WHERE seq = ?1";

/// `EventLog::read`: one cursor per stream (`''` and each room), merged by seq.
fn read_entries(
    conn: &Connection,
    nsp: &str,
    rooms: &[String],
    after: Seq,
    limit: usize,
) -> Result<Vec<Entry>, DbError> {
    let mut out = Vec::new();
    if limit == 0 {
        return Ok(out);
    }
    let mut streams: Vec<&str> = vec![""];
    for room in rooms {
        if !streams.contains(&room.as_str()) {
            streams.push(room);
        }
    }
    let mut stmts = Vec::with_capacity(streams.len());
    for _ in &streams {
        stmts.push(conn.prepare_cached(
            "SELECT seq FROM entry_targets WHERE nsp = ?1 AND room = ?2 AND seq > ?3 ORDER BY seq",
        )?);
    }
    let mut cursors = Vec::with_capacity(streams.len());
    for (stmt, room) in stmts.iter_mut().zip(&streams) {
        cursors.push(stmt.query(params![nsp, room, to_i64(after)])?);
    }
    let mut heads = Vec::with_capacity(cursors.len());
    for cursor in &mut cursors {
        heads.push(next_seq(cursor)?);
    }
    let mut load = conn.prepare_cached(LOAD_ENTRY)?;
    while let Some(seq) = heads.iter().flatten().min().copied() {
        for (head, cursor) in heads.iter_mut().zip(&mut cursors) {
            if *head == Some(seq) {
                *head = next_seq(cursor)?;
            }
        }
        if let Some(entry) = load_entry(&mut load, seq)? {
            if reaches(&entry.entry.target, rooms) {
                out.push(entry);
                if out.len() >= limit {
                    break;
                }
            }
        }
    }
    Ok(out)
}

/// `EventLog::history`: one cursor on one stream, backwards.
fn read_history(
    conn: &Connection,
    nsp: &str,
    room: Option<String>,
    before: Seq,
    limit: usize,
) -> Result<Vec<Entry>, DbError> {
    let mut out = Vec::new();
    if limit == 0 {
        return Ok(out);
    }
    let rooms: Vec<String> = room.into_iter().collect();
    let stream = rooms.first().map_or("", String::as_str);
    let mut stmt = conn.prepare_cached(
        "SELECT seq FROM entry_targets WHERE nsp = ?1 AND room = ?2 AND seq < ?3 ORDER BY seq DESC",
    )?;
    let mut cursor = stmt.query(params![nsp, stream, to_i64(before)])?;
    let mut load = conn.prepare_cached(LOAD_ENTRY)?;
    while let Some(seq) = next_seq(&mut cursor)? {
        if let Some(entry) = load_entry(&mut load, seq)? {
            if reaches(&entry.entry.target, &rooms) {
                out.push(entry);
                if out.len() >= limit {
                    break;
                }
            }
        }
    }
    out.reverse();
    Ok(out)
}

fn next_seq(rows: &mut Rows<'_>) -> Result<Option<i64>, DbError> {
    match rows.next()? {
        Some(row) => Ok(Some(row.get(0)?)),
        None => Ok(None),
    }
}

fn load_entry(load: &mut Statement<'_>, seq: i64) -> Result<Option<Entry>, DbError> {
    let row = load
        .query_row([seq], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, String>(2)?,
                row.get::<_, String>(3)?,
                row.get::<_, String>(4)?,
                row.get::<_, Vec<u8>>(5)?,
                row.get::<_, i64>(6)?,
            ))
        })
        .optional()?;
    let Some((nsp, rooms, except, event, args, attachments, ts_ms)) = row else {
        return Ok(None);
    };
    Ok(Some(Entry {
        seq: to_seq(seq),
        ts_ms,
        entry: NewEntry {
            target: Target {
                nsp,
                rooms: serde_json::from_str(&rooms)?,
                except: serde_json::from_str(&except)?,
            },
            event,
            args,
            attachments: decode_attachments(&attachments)?,
        },
    }))
}

// ---------------------------------------------------------------------------
// Encodings

/// Attachments as a blob: for each, its length (u32, little-endian) then its
/// bytes. No attachment: an empty blob.
fn encode_attachments(attachments: &[Bytes]) -> Vec<u8> {
    let size = attachments.iter().map(|a| 4 + a.len()).sum();
    let mut blob = Vec::with_capacity(size);
    for attachment in attachments {
        // An attachment over 4 GiB cannot reach here: frames are far smaller.
        let len = u32::try_from(attachment.len()).unwrap_or(u32::MAX);
        blob.extend_from_slice(&len.to_le_bytes());
        blob.extend_from_slice(attachment);
    }
    blob
}

fn decode_attachments(mut blob: &[u8]) -> Result<Vec<Bytes>, DbError> {
    let corrupt = || DbError("corrupt attachments column".into());
    let mut out = Vec::new();
    while !blob.is_empty() {
        let (len, rest) = blob.split_first_chunk::<4>().ok_or_else(corrupt)?;
        let len = usize::try_from(u32::from_le_bytes(*len)).map_err(|_| corrupt())?;
        if rest.len() < len {
            return Err(corrupt());
        }
        let (attachment, rest) = rest.split_at(len);
        out.push(Bytes::copy_from_slice(attachment));
        blob = rest;
    }
    Ok(out)
}

/// A position as SQLite's integer (positions never come near `i64::MAX`; a
/// larger bound, such as `Seq::MAX` for "no bound", saturates).
fn to_i64(seq: Seq) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
}

fn to_i64_len(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// A stored position (always positive) as a [`Seq`].
fn to_seq(value: i64) -> Seq {
    Seq::try_from(value).unwrap_or(0)
}
