//! Throughput of the SQLite store.
//!
//! ```text
//! cargo run --release --example store_bench -- [N] [DIR]
//! ```
//!
//! For each durability level: N single-entry appends from 64, then 1024,
//! concurrent tasks (a server with that many clients writing at once)
//! through `SqliteStore` (group commit: the more writers wait, the more one
//! commit carries), against a baseline on plain rusqlite
//! with the same schema and pragmas where every message is its own
//! transaction (one commit, one fsync with `synchronous=FULL`). The baseline is
//! slow, so it runs at most `BASELINE_MAX` (and N) messages or `BASELINE_SECS`
//! seconds; figures are per second. Then the replay speed: reading the N
//! entries of one room back through `EventLog::read` in pages of 1000.
//!
//! Files go to DIR (default: the system temp dir) and are removed at the end.
//! Fsync figures mean something only on a real disk, not a tmpfs.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tether::store::{Durability, SqliteStore};
use tether_testkit::store_bench::{
    group_commit, new_entry, replay, BoxError, APPENDERS, BASELINE_MAX, BASELINE_SECS, DEFAULT_N,
    PAGE, ROOM,
};

/// A database path in `dir`, with its WAL side files removed on drop.
struct BenchFile(PathBuf);

impl BenchFile {
    fn new(dir: &Path, name: &str) -> Self {
        BenchFile(dir.join(format!(
            "tether-store-bench-{}-{name}.db",
            std::process::id()
        )))
    }
}

impl Drop for BenchFile {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let mut file = self.0.clone().into_os_string();
            file.push(suffix);
            let _ = std::fs::remove_file(file);
        }
    }
}

/// One transaction (entry row + stream row) per message on plain rusqlite, with
/// the schema made by `SqliteStore::open` and the same pragmas. Returns
/// (messages, messages per second).
fn baseline(path: &Path, durability: Durability, max: usize) -> Result<(usize, f64), BoxError> {
    // Let the store create the schema, then close it.
    drop(SqliteStore::open(path, durability)?);
    let conn = rusqlite::Connection::open(path)?;
    let mode: String = conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
    assert_eq!(mode, "wal");
    let synchronous = match durability {
        Durability::Fsync => "FULL",
        _ => "NORMAL",
    };
    conn.pragma_update(None, "synchronous", synchronous)?;

    let rooms = serde_json::to_string(&[ROOM])?;
    let deadline = Instant::now() + Duration::from_secs(BASELINE_SECS);
    let start = Instant::now();
    let mut done = 0;
    while done < max && Instant::now() < deadline {
        let entry = new_entry(done);
        let ts_ms = tether::store::now_ms();
        conn.execute_batch("BEGIN IMMEDIATE")?;
        conn.prepare_cached(
            "INSERT INTO entries(nsp, rooms, except_rooms, event, args, attachments, ts_ms)
             VALUES (?1, ?2, '[]', ?3, ?4, X'', ?5)",
        )?
        .execute(rusqlite::params![
            entry.target.nsp,
            rooms,
            entry.event,
            entry.args,
            ts_ms
        ])?;
        let seq = conn.last_insert_rowid();
        conn.prepare_cached("INSERT INTO entry_targets(nsp, room, seq) VALUES (?1, ?2, ?3)")?
            .execute(rusqlite::params![entry.target.nsp, ROOM, seq])?;
        conn.execute_batch("COMMIT")?;
        done += 1;
    }
    Ok((done, done as f64 / start.elapsed().as_secs_f64()))
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let mut args = std::env::args().skip(1);
    let n = match args.next() {
        Some(n) => n
            .parse::<usize>()
            .map_err(|e| format!("N must be a number: {e}"))?,
        None => DEFAULT_N,
    };
    let dir = args.next().map_or_else(std::env::temp_dir, PathBuf::from);
    println!(
        "store_bench: N = {n}, {APPENDERS:?} appenders, baseline up to {BASELINE_MAX} messages or {BASELINE_SECS} s, files in {}",
        dir.display()
    );

    let mut rows = Vec::new();
    let mut replayed = None;
    for (name, durability) in [
        ("fsync", Durability::Fsync),
        ("relaxed", Durability::Relaxed),
    ] {
        let base_file = BenchFile::new(&dir, &format!("{name}-baseline"));
        let (base_n, base) = baseline(&base_file.0, durability, n.min(BASELINE_MAX))?;
        for appenders in APPENDERS {
            let file = BenchFile::new(&dir, &format!("{name}-{appenders}"));
            let store = Arc::new(SqliteStore::open(&file.0, durability)?);
            let grouped = group_commit(&store, n, appenders).await?;
            if durability == Durability::Fsync && replayed.is_none() {
                replayed = Some(replay(&*store).await?);
            }
            drop(store);
            rows.push((name, appenders, grouped, base_n, base));
        }
    }

    println!();
    println!(
        "{:<10} | {:>9} | {:>24} | {:>24} | {:>7}",
        "durability", "appenders", "group commit (msg/s)", "txn per message (msg/s)", "ratio"
    );
    println!("{}", "-".repeat(85));
    for (name, appenders, grouped, base_n, base) in rows {
        println!(
            "{:<10} | {:>9} | {:>13.0} (N={:<6}) | {:>13.0} (n={:<6}) | {:>6.1}x",
            name,
            appenders,
            grouped,
            n,
            base,
            base_n,
            grouped / base
        );
    }
    if let Some((total, rate)) = replayed {
        println!();
        println!("replay: {total} entries of one room through EventLog::read, pages of {PAGE}: {rate:.0} msg/s");
    }
    Ok(())
}
