//! The client's durable state in one SQLite file: the outbox of reliable
//! emits not acknowledged yet, and the last position of each stream.
//!
//! One writer thread owns the connection and commits in groups (every
//! command waiting when it wakes up goes in one transaction, one fsync). What
//! the file holds when it is opened is read at once and handed to the
//! sockets as they are created.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use rusqlite::{params, Connection, OptionalExtension};
use serde_json::value::RawValue;
use tokio::sync::oneshot;

use crate::args::Args;
use crate::socket::lock;

/// Why the client's state file could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// SQLite refused an operation (the file cannot be opened, is not a
    /// client state file, the disk is full...).
    #[error("state file {path}: {source}")]
    Sqlite {
        /// The file.
        path: PathBuf,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
    /// A stored entry could not be read back.
    #[error("state file {path}: corrupt entry {entry}: {what}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The outbox entry.
        entry: i64,
        /// What is wrong with it.
        what: String,
    },
    /// A group of writes could not be committed.
    #[error("state file {path}: write failed: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// SQLite's error (shared by every write of the group).
        #[source]
        source: Arc<rusqlite::Error>,
    },
    /// The writer thread could not be started.
    #[error("cannot start the state file's writer thread: {0}")]
    Thread(#[source] std::io::Error),
    /// The writer thread is gone (the client was dropped).
    #[error("the state file is closed")]
    Closed,
}

/// An outbox entry read back from the file.
pub(crate) struct StoredEmit {
    pub(crate) row: i64,
    pub(crate) event: String,
    pub(crate) args: Args,
}

/// A stream position read back from the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoredPosition {
    pub(crate) seq: u64,
    pub(crate) epoch: Option<String>,
}

type InsertDone = Box<dyn FnOnce(Result<i64, StateError>) + Send>;

enum Cmd {
    Insert {
        nsp: String,
        event: String,
        msg_id: String,
        args: String,
        attachments: Vec<u8>,
        done: InsertDone,
    },
    Delete(i64),
    Position {
        nsp: String,
        stream: String,
        position: StoredPosition,
    },
    Sync(oneshot::Sender<Result<(), StateError>>),
}

/// The open state file.
pub(crate) struct StateFile {
    path: PathBuf,
    tx: Mutex<std_mpsc::Sender<Cmd>>,
    /// Outbox entries of the previous runs, by namespace, until a socket takes them.
    pending: Mutex<HashMap<String, Vec<StoredEmit>>>,
    positions: HashMap<(String, String), StoredPosition>,
    counters: Arc<Counters>,
}

#[derive(Default)]
struct Counters {
    recorded: AtomicU64,
    unacked: AtomicU64,
}

impl std::fmt::Debug for StateFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateFile")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

const SCHEMA: &str = "
PRAGMA journal_mode = WAL;
PRAGMA synchronous = FULL;
CREATE TABLE IF NOT EXISTS outbox (
    row INTEGER PRIMARY KEY AUTOINCREMENT,
    nsp TEXT NOT NULL,
    event TEXT NOT NULL,
    msg_id TEXT NOT NULL,
    args TEXT NOT NULL,
    attachments BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS positions (
    nsp TEXT NOT NULL,
    stream TEXT NOT NULL,
    seq INTEGER NOT NULL,
    epoch TEXT,
    PRIMARY KEY (nsp, stream)
);
";

/// Attachments as one blob: for each, its length (8 bytes, little endian)
/// then its bytes.
fn encode_attachments(attachments: &[Bytes]) -> Vec<u8> {
    let mut out = Vec::with_capacity(attachments.iter().map(|a| a.len() + 8).sum());
    for a in attachments {
        out.extend_from_slice(&(a.len() as u64).to_le_bytes());
        out.extend_from_slice(a);
    }
    out
}

fn decode_attachments(mut blob: &[u8]) -> Option<Vec<Bytes>> {
    let mut out = Vec::new();
    while !blob.is_empty() {
        let (len, rest) = blob.split_at_checked(8)?;
        let len = usize::try_from(u64::from_le_bytes(len.try_into().ok()?)).ok()?;
        let (data, rest) = rest.split_at_checked(len)?;
        out.push(Bytes::copy_from_slice(data));
        blob = rest;
    }
    Some(out)
}

impl StateFile {
    /// Opens (or creates) the file and reads what it holds. Blocking.
    pub(crate) fn open(path: &Path) -> Result<StateFile, StateError> {
        let sql = |source| StateError::Sqlite {
            path: path.to_owned(),
            source,
        };
        let conn = Connection::open(path).map_err(sql)?;
        conn.execute_batch(SCHEMA).map_err(sql)?;
        let recorded: u64 = conn
            .query_row(
                "SELECT value FROM counters WHERE name = 'recorded'",
                [],
                |r| r.get::<_, i64>(0),
            )
            .optional()
            .map_err(sql)?
            .map_or(0, |v| u64::try_from(v).unwrap_or(0));
        let mut pending: HashMap<String, Vec<StoredEmit>> = HashMap::new();
        let mut unacked = 0;
        {
            let mut stmt = conn
                .prepare("SELECT row, nsp, event, args, attachments FROM outbox ORDER BY row")
                .map_err(sql)?;
            let rows = stmt
                .query_map([], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, Vec<u8>>(4)?,
                    ))
                })
                .map_err(sql)?;
            for row in rows {
                let (row, nsp, event, args, blob) = row.map_err(sql)?;
                let corrupt = |what: String| StateError::Corrupt {
                    path: path.to_owned(),
                    entry: row,
                    what,
                };
                let values: Vec<Box<RawValue>> =
                    serde_json::from_str(&args).map_err(|e| corrupt(e.to_string()))?;
                let attachments = decode_attachments(&blob)
                    .ok_or_else(|| corrupt("truncated attachments".into()))?;
                pending.entry(nsp).or_default().push(StoredEmit {
                    row,
                    event,
                    args: Args::from_raw(values, attachments),
                });
                unacked += 1;
            }
        }
        let mut positions = HashMap::new();
        {
            let mut stmt = conn
                .prepare("SELECT nsp, stream, seq, epoch FROM positions")
                .map_err(sql)?;
            let rows = stmt
                .query_map([], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, i64>(2)?,
                        r.get::<_, Option<String>>(3)?,
                    ))
                })
                .map_err(sql)?;
            for row in rows {
                let (nsp, stream, seq, epoch) = row.map_err(sql)?;
                let seq = u64::try_from(seq).unwrap_or(0);
                positions.insert((nsp, stream), StoredPosition { seq, epoch });
            }
        }
        let (tx, rx) = std_mpsc::channel();
        let counters = Arc::new(Counters {
            recorded: AtomicU64::new(recorded),
            unacked: AtomicU64::new(unacked),
        });
        let (thread_path, thread_counters) = (path.to_owned(), counters.clone());
        std::thread::Builder::new()
            .name("tether-client-state".into())
            .spawn(move || writer(conn, thread_path, thread_counters, rx))
            .map_err(StateError::Thread)?;
        Ok(StateFile {
            path: path.to_owned(),
            tx: Mutex::new(tx),
            pending: Mutex::new(pending),
            positions,
            counters,
        })
    }

    /// False when the writer thread is gone.
    fn send(&self, cmd: Cmd) -> bool {
        match lock(&self.tx).send(cmd) {
            Ok(()) => true,
            Err(std_mpsc::SendError(Cmd::Insert { done, .. })) => {
                done(Err(StateError::Closed));
                false
            }
            Err(std_mpsc::SendError(Cmd::Sync(reply))) => {
                let _ = reply.send(Err(StateError::Closed));
                false
            }
            Err(_) => false,
        }
    }

    /// The outbox entries of `nsp` left by earlier runs, oldest first (once).
    pub(crate) fn take_pending(&self, nsp: &str) -> Vec<StoredEmit> {
        lock(&self.pending).remove(nsp).unwrap_or_default()
    }

    /// The stored position of stream `stream` of `nsp`.
    pub(crate) fn position(&self, nsp: &str, stream: &str) -> Option<StoredPosition> {
        self.positions
            .get(&(nsp.to_owned(), stream.to_owned()))
            .cloned()
    }

    /// Records an emit; `done` runs on the writer thread once it is
    /// committed (with its row) or failed.
    pub(crate) fn insert(
        &self,
        nsp: &str,
        event: &str,
        msg_id: &str,
        args: &Args,
        done: InsertDone,
    ) {
        let array = tether_proto::socketio::event_array(None, args.values());
        let cmd = Cmd::Insert {
            nsp: nsp.to_owned(),
            event: event.to_owned(),
            msg_id: msg_id.to_owned(),
            args: array.get().to_owned(),
            attachments: encode_attachments(args.attachments()),
            done,
        };
        self.send(cmd);
    }

    /// Deletes an acknowledged outbox entry.
    pub(crate) fn delete(&self, row: i64) {
        if self.send(Cmd::Delete(row)) {
            self.counters.unacked.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// Saves a stream position.
    pub(crate) fn save_position(&self, nsp: &str, stream: &str, position: StoredPosition) {
        self.send(Cmd::Position {
            nsp: nsp.to_owned(),
            stream: stream.to_owned(),
            position,
        });
    }

    /// Resolves once every earlier write is committed.
    pub(crate) async fn sync(&self) -> Result<(), StateError> {
        let (tx, rx) = oneshot::channel();
        self.send(Cmd::Sync(tx));
        rx.await.unwrap_or(Err(StateError::Closed))
    }

    /// Emits ever recorded in this file's outbox (by every run).
    pub(crate) fn recorded(&self) -> u64 {
        self.counters.recorded.load(Ordering::Acquire)
    }

    /// Outbox entries recorded and not acknowledged yet.
    pub(crate) fn unacked(&self) -> u64 {
        self.counters.unacked.load(Ordering::Acquire)
    }
}

/// Most commands committed in one transaction.
const GROUP: usize = 512;

fn writer(
    mut conn: Connection,
    path: PathBuf,
    counters: Arc<Counters>,
    rx: std_mpsc::Receiver<Cmd>,
) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < GROUP {
            match rx.try_recv() {
                Ok(cmd) => batch.push(cmd),
                Err(_) => break,
            }
        }
        let rows = match apply(&mut conn, &batch) {
            Ok(rows) => {
                let n = rows.len() as u64;
                counters.recorded.fetch_add(n, Ordering::AcqRel);
                counters.unacked.fetch_add(n, Ordering::AcqRel);
                Ok(rows)
            }
            Err(source) => {
                tracing::warn!(path = %path.display(), error = %source, "state file write failed");
                Err(Arc::new(source))
            }
        };
        let failed = |source: &Arc<rusqlite::Error>| StateError::Write {
            path: path.clone(),
            source: source.clone(),
        };
        let mut inserted = 0;
        for cmd in batch {
            match cmd {
                Cmd::Insert { done, .. } => {
                    let result = match &rows {
                        Ok(rows) => rows.get(inserted).copied().ok_or(StateError::Closed),
                        Err(e) => Err(failed(e)),
                    };
                    inserted += 1;
                    done(result);
                }
                Cmd::Sync(reply) => {
                    let _ = reply.send(rows.as_ref().map(drop).map_err(failed));
                }
                Cmd::Delete(_) | Cmd::Position { .. } => {}
            }
        }
    }
}

/// Applies a batch in one transaction; the rows of its inserts, in order.
fn apply(conn: &mut Connection, batch: &[Cmd]) -> Result<Vec<i64>, rusqlite::Error> {
    let tx = conn.transaction()?;
    let mut rows = Vec::new();
    for cmd in batch {
        match cmd {
            Cmd::Insert {
                nsp,
                event,
                msg_id,
                args,
                attachments,
                ..
            } => {
                tx.execute(
                    "INSERT INTO outbox (nsp, event, msg_id, args, attachments) VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![nsp, event, msg_id, args, attachments],
                )?;
                rows.push(tx.last_insert_rowid());
                tx.execute(
                    "INSERT INTO counters (name, value) VALUES ('recorded', 1)
                     ON CONFLICT (name) DO UPDATE SET value = value + 1",
                    [],
                )?;
            }
            Cmd::Delete(row) => {
                tx.execute("DELETE FROM outbox WHERE row = ?1", params![row])?;
            }
            Cmd::Position {
                nsp,
                stream,
                position,
            } => {
                let seq = i64::try_from(position.seq).unwrap_or(i64::MAX);
                tx.execute(
                    "INSERT INTO positions (nsp, stream, seq, epoch) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (nsp, stream) DO UPDATE SET seq = excluded.seq, epoch = excluded.epoch",
                    params![nsp, stream, seq, position.epoch],
                )?;
            }
            Cmd::Sync(_) => {}
        }
    }
    tx.commit()?;
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attachments_round_trip() {
        let a = vec![Bytes::from_static(b""), Bytes::from_static(b"abc")];
        assert_eq!(decode_attachments(&encode_attachments(&a)), Some(a));
        assert_eq!(decode_attachments(&[1, 0, 0]), None);
        assert_eq!(decode_attachments(&[5, 0, 0, 0, 0, 0, 0, 0, 1]), None);
    }
}
