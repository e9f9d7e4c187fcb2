//! The schema, and opening the write and read connections.

use super::*;

/// Version of [`SCHEMA`] recorded in `meta`.
pub(super) const SCHEMA_VERSION: i64 = 1;

/// The tables and indexes (idempotent: run at every open).
pub(super) const SCHEMA: &str = "
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

/// Opens the write connection, sets the pragmas, creates the schema and the
/// epoch. Returns the connection, the epoch and the last entry's timestamp.
pub(super) fn open_writer(
    path: &Path,
    durability: Durability,
) -> Result<(Connection, String, i64), DbError> {
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
        return Err(DbError::Refused(format!(
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
pub(super) fn set_pragmas(conn: &Connection, durability: Durability) -> Result<(), DbError> {
    let mode: String =
        conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(DbError::Refused(format!(
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

pub(super) fn open_reader(path: &Path) -> Result<Connection, DbError> {
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
