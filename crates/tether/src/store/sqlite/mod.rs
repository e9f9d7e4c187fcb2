//! [`SqliteStore`]: the embedded, durable backend (one SQLite file in WAL
//! mode). The design is described on [`SqliteStore`]; the tables are in
//! [`SCHEMA`].

use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension, Rows, Statement};
use tokio::sync::oneshot;

mod codec;
mod read;
mod schema;
mod trim;
mod writer;

use codec::*;
use read::*;
use schema::*;
use trim::*;
use writer::*;

use super::trim::{streams_of, Cuts, TrimPlan};
use super::{
    now_ms, reaches, Append, AppendOnce, BoxFuture, Entry, EventLog, Health, InboxEntry, Inboxes,
    NewEntry, Retain, Retention, Seq, SessionInfo, SessionRecord, Sessions, SharedFeed, StoreError,
    StreamInfo, StreamRetention, Target,
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
/// A failure inside this backend; becomes a [`StoreError`] keeping its
/// source.
#[derive(Debug)]
enum DbError {
    /// SQLite failed.
    Sqlite(rusqlite::Error),
    /// A column holds what cannot be decoded.
    Corrupt {
        what: String,
        source: Option<serde_json::Error>,
    },
    /// The file cannot be used as a store (schema version, journal mode).
    Refused(String),
}

impl std::fmt::Display for DbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DbError::Sqlite(e) => e.fmt(f),
            DbError::Corrupt {
                what,
                source: Some(e),
            } => write!(f, "{what}: {e}"),
            DbError::Corrupt { what, source: None } => f.write_str(what),
            DbError::Refused(reason) => f.write_str(reason),
        }
    }
}

impl From<rusqlite::Error> for DbError {
    fn from(e: rusqlite::Error) -> Self {
        DbError::Sqlite(e)
    }
}

impl From<serde_json::Error> for DbError {
    fn from(e: serde_json::Error) -> Self {
        DbError::Corrupt {
            what: "corrupt JSON column".into(),
            source: Some(e),
        }
    }
}

impl DbError {
    fn into_store(self) -> StoreError {
        match self {
            DbError::Sqlite(e) => StoreError::backend(e.to_string(), e),
            DbError::Corrupt { what, source } => {
                let what = match &source {
                    Some(e) => format!("{what}: {e}"),
                    None => what,
                };
                StoreError::Corrupt {
                    what,
                    source: source.map(|e| Arc::new(e) as super::BackendError),
                }
            }
            DbError::Refused(reason) => StoreError::Unavailable(reason),
        }
    }
}

/// The SQLite backend: one file in WAL mode.
///
/// Writes go to ONE writer thread that owns the write connection and does
/// group commit: it waits for a first command, takes the write lock, drains
/// every command already queued (up to 4096), runs them all in one
/// transaction and commits once (one fsync with [`Durability::Fsync`]); only
/// then does it answer each caller. If anything in the batch fails, the whole
/// transaction is rolled back and every command of the batch gets its
/// error ([`StoreError::Backend`], with SQLite's error as the source); the
/// thread goes on with later batches.
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
            .map_err(|e| StoreError::backend(format!("cannot start the writer thread: {e}"), e))?;
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
                Err(e) => Err(StoreError::backend(format!("read task failed: {e}"), e)),
            }
        })
    }
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
