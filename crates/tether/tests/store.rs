//! The `Store` behaviour suite, run against both backends (`MemoryStore` and
//! `SqliteStore`), plus SQLite-only tests: reopening, epochs, failing batches.

use std::time::Duration;

use bytes::Bytes;
use tether::store::prelude::*;
use tether::store::{
    now_ms, AppendOnce, Durability, Health, MemoryStore, Retention, SqliteStore, StoreError,
};

use store_suite::*;
use tether_testkit::store_suite;
use tether_testkit::TempDb;

// ---------------------------------------------------------------------------
// Helpers

/// Runs each named suite function against a fresh store of each backend.
macro_rules! suite {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test]
                async fn $name() {
                    super::store_suite::$name(std::sync::Arc::new(tether::store::MemoryStore::new())).await;
                }
            )*
        }
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let db = tether_testkit::TempDb::new();
                    let store = tether::store::SqliteStore::open(db.path(), Default::default())
                        .expect("open the store");
                    super::store_suite::$name(std::sync::Arc::new(store)).await;
                }
            )*
        }
    };
}

suite!(
    append_order_and_positions,
    read_filters_rooms_namespaces_and_except,
    read_pages_with_after_and_limit,
    history_pages_backwards,
    append_once_first_time_and_duplicate,
    append_once_concurrent_same_key,
    append_batch_mixes_plain_and_keyed,
    sessions_save_load_replace_delete,
    inbox_push_pending_ack,
    trim_by_count,
    trim_by_age,
    trim_everything_never_reuses_positions,
    trim_drops_old_disconnected_sessions,
    bounds_track_last_and_oldest,
    concurrent_appends_from_many_tasks,
);

mod per_stream {
    //! Per-stream retention: memory and SQLite (the Redis store trims every
    //! stream alike and says so: `supports_stream_retention` is false).
    use super::store_suite;
    suite!(per_stream_retention);
}

use tether_testkit::faulty_store;

/// A store that wraps another (here a `MemoryStore` the test can take down)
/// keeps the inner store's per-stream retention and trim marks: every method
/// is stated, none falls back to a default that changes them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrapping_store_keeps_per_stream_retention() {
    store_suite::per_stream_retention(std::sync::Arc::new(faulty_store::FaultyStore::new())).await;
}

// ---------------------------------------------------------------------------
// SQLite only

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_reopen_keeps_epoch_and_data() {
    let db = TempDb::new();
    let store = SqliteStore::open(db.path(), Durability::Fsync).unwrap();
    let epoch = store.epoch().to_owned();
    let seqs = store
        .append(vec![
            entry("/", &["a"], &["c"], "kept"),
            entry("/", &[], &[], "all"),
        ])
        .await
        .unwrap();
    let once = store
        .append_once("key".into(), entry("/", &["a"], &[], "once"))
        .await
        .unwrap();
    store
        .save_session(session("p1", false, 1_234))
        .await
        .unwrap();
    let pushed = store
        .inbox_push(
            "ann",
            "m".into(),
            "[1]".into(),
            vec![Bytes::from_static(b"x")],
        )
        .await
        .unwrap();
    let trimmed = store
        .trim(
            Retention {
                max_age: None,
                max_count: Some(2),
            },
            &[],
            i64::MIN,
        )
        .await
        .unwrap();
    assert_eq!(trimmed, 1);
    let bounds = store.bounds().await.unwrap();
    drop(store);

    let store = SqliteStore::open(db.path(), Durability::Relaxed).unwrap();
    assert_eq!(store.epoch(), epoch);
    assert_eq!(store.bounds().await.unwrap(), bounds);
    let read = store.read("/", &rooms(&["a"]), 0, 100).await.unwrap();
    assert_eq!(events(&read), ["all", "once"]);
    assert_eq!(read[1].seq, once.seq());
    assert_eq!(
        store
            .append_once("key".into(), entry("/", &["a"], &[], "once"))
            .await
            .unwrap(),
        AppendOnce::Duplicate(once.seq())
    );
    assert_eq!(
        store.load_session("p1").await.unwrap(),
        Some(session("p1", false, 1_234))
    );
    let inbox = store.inbox_pending("ann", 0, 10).await.unwrap();
    assert_eq!(inbox.iter().map(|e| e.seq).collect::<Vec<_>>(), [pushed]);
    let next = store
        .append(vec![entry("/", &["a"], &[], "after-reopen")])
        .await
        .unwrap();
    assert!(next[0] > seqs[1].max(once.seq()));
}

#[tokio::test]
async fn sqlite_new_file_new_epoch() {
    let (one, two) = (TempDb::new(), TempDb::new());
    let a = SqliteStore::open(one.path(), Durability::Fsync).unwrap();
    let b = SqliteStore::open(two.path(), Durability::Fsync).unwrap();
    assert_ne!(a.epoch(), b.epoch());
    assert_ne!(a.epoch(), MemoryStore::new().epoch());
    drop(a);
    std::fs::remove_file(one.path()).unwrap();
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", one.path().display()));
    }
    let again = SqliteStore::open(one.path(), Durability::Fsync).unwrap();
    assert_ne!(again.epoch(), b.epoch());
    assert_eq!(again.bounds().await.unwrap(), (0, 1));
}

#[tokio::test]
async fn sqlite_open_fails_cleanly() {
    let dir = TempDb::new();
    let missing_dir = dir.path().join("no-such-dir").join("store.db");
    let err = SqliteStore::open(&missing_dir, Durability::Fsync).unwrap_err();
    assert!(
        matches!(err, StoreError::Unavailable(_) | StoreError::Backend { .. }),
        "{err:?}"
    );
}

/// An entry whose columns cannot be decoded is reported as corrupt (the
/// data is bad, not the backend), with the decoding error as the source.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_corrupt_entry_is_corrupt_not_unavailable() {
    let db = TempDb::new();
    let store = SqliteStore::open(db.path(), Durability::Fsync).unwrap();
    let seqs = store
        .append(vec![entry("/", &["a"], &[], "fine")])
        .await
        .unwrap();
    let raw = rusqlite::Connection::open(db.path()).unwrap();
    raw.execute(
        "UPDATE entries SET except_rooms = 'not json' WHERE seq = ?1",
        [seqs[0] as i64],
    )
    .unwrap();
    let err = store.read("/", &rooms(&["a"]), 0, 10).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Corrupt { what, .. } if what.contains("JSON")),
        "{err:?}"
    );
    assert!(std::error::Error::source(&err).is_some(), "{err:?}");
    assert!(!err.is_unavailable());
    assert!(err.to_string().starts_with("corrupt store data: "), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_failing_batch_fails_whole_and_keeps_the_rest() {
    let db = TempDb::new();
    let store = SqliteStore::open(db.path(), Durability::Fsync).unwrap();
    let before = store
        .append(vec![entry("/", &["a"], &[], "before")])
        .await
        .unwrap();
    store.save_session(session("p0", true, 1)).await.unwrap();

    let raw = rusqlite::Connection::open(db.path()).unwrap();
    raw.execute_batch(
        "CREATE TRIGGER poison BEFORE INSERT ON entries WHEN NEW.event = 'poison'
         BEGIN SELECT RAISE(ABORT, 'poisoned entry'); END;",
    )
    .unwrap();

    // Hold the write lock: the writer takes its next batch's commands only
    // once it has the lock, so every command queued meanwhile (the calls
    // queue at once) lands in that one batch.
    raw.execute_batch("BEGIN IMMEDIATE").unwrap();
    let ok_append = store.append(vec![entry("/", &["a"], &[], "same-batch-1")]);
    let poisoned = store.append(vec![entry("/", &["a"], &[], "poison")]);
    let once = store.append_once("k".into(), entry("/", &["a"], &[], "same-batch-2"));
    let save = store.save_session(session("p1", true, 1));
    let delete = store.delete_session("p0");
    let push = store.inbox_push("ann", "m".into(), "[]".into(), vec![]);
    raw.execute_batch("COMMIT").unwrap();
    let (r1, r2, r3, r4, r5, r6) = tokio::join!(ok_append, poisoned, once, save, delete, push);
    assert!(
        matches!(
            r1,
            Err(StoreError::Unavailable(_) | StoreError::Backend { .. })
        ),
        "{r1:?}"
    );
    assert!(
        matches!(&r2, Err(e @ StoreError::Backend { .. })
            if e.to_string().contains("poisoned") && std::error::Error::source(e).is_some()),
        "{r2:?}"
    );
    assert!(
        matches!(
            r3,
            Err(StoreError::Unavailable(_) | StoreError::Backend { .. })
        ),
        "{r3:?}"
    );
    assert!(
        matches!(
            r4,
            Err(StoreError::Unavailable(_) | StoreError::Backend { .. })
        ),
        "{r4:?}"
    );
    assert!(
        matches!(
            r5,
            Err(StoreError::Unavailable(_) | StoreError::Backend { .. })
        ),
        "{r5:?}"
    );
    assert!(
        matches!(
            r6,
            Err(StoreError::Unavailable(_) | StoreError::Backend { .. })
        ),
        "{r6:?}"
    );

    // Nothing of the batch was kept; what was there before is intact.
    let read = store.read("/", &rooms(&["a"]), 0, 100).await.unwrap();
    assert_eq!(events(&read), ["before"]);
    assert_eq!(read[0].seq, before[0]);
    assert!(store.load_session("p0").await.unwrap().is_some());
    assert!(store.load_session("p1").await.unwrap().is_none());
    assert!(store.inbox_pending("ann", 0, 10).await.unwrap().is_empty());

    // The writer goes on: later writes succeed, the key was never used.
    let after = store
        .append(vec![entry("/", &["a"], &[], "after")])
        .await
        .unwrap();
    assert!(after[0] > before[0]);
    let once = store
        .append_once("k".into(), entry("/", &["a"], &[], "once"))
        .await
        .unwrap();
    assert!(matches!(once, AppendOnce::Appended(_)));
    let poisoned_alone = store.append(vec![entry("/", &["a"], &[], "poison")]).await;
    assert!(poisoned_alone.is_err());
    let read = store.read("/", &rooms(&["a"]), 0, 100).await.unwrap();
    assert_eq!(events(&read), ["before", "after", "once"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_health_reports_a_failed_commit_until_the_probe_commits() {
    let db = TempDb::new();
    let store = SqliteStore::open(db.path(), Durability::Fsync).unwrap();
    assert_eq!(store.check_health().await, Health::Healthy);
    let raw = rusqlite::Connection::open(db.path()).unwrap();
    raw.execute_batch(
        "CREATE TRIGGER poison BEFORE INSERT ON entries WHEN NEW.event = 'poison'
         BEGIN SELECT RAISE(ABORT, 'poisoned entry'); END;",
    )
    .unwrap();
    assert!(store
        .append(vec![entry("/", &[], &[], "poison")])
        .await
        .is_err());
    // The check's probe is a write of its own: it commits, so healthy again.
    let health = store.check_health().await;
    assert_eq!(health, Health::Healthy, "the probe commits");
    // A failed commit is reported until one goes through.
    assert!(store
        .append(vec![entry("/", &[], &[], "poison")])
        .await
        .is_err());
    raw.execute_batch("DROP TRIGGER poison; CREATE TRIGGER stuck BEFORE INSERT ON meta BEGIN SELECT RAISE(ABORT, 'no meta'); END;")
        .unwrap();
    let health = store.check_health().await;
    assert!(
        matches!(&health, Health::Unhealthy(m) if m.starts_with("last commit failed: ") && m.contains("no meta")),
        "{health:?}"
    );
    // A small good commit does not clear it (on a nearly full disk session
    // saves fit while messages do not): the probe must commit.
    store
        .append(vec![entry("/", &[], &[], "fine")])
        .await
        .unwrap();
    assert!(matches!(store.check_health().await, Health::Unhealthy(_)));
    raw.execute_batch("DROP TRIGGER stuck").unwrap();
    assert_eq!(store.check_health().await, Health::Healthy);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_replaced_or_deleted_file_refuses_writes() {
    let db = TempDb::new();
    let store = SqliteStore::open(db.path(), Durability::Fsync).unwrap();
    store
        .append(vec![entry("/", &[], &[], "kept")])
        .await
        .unwrap();
    // Another file put at the path (a restore from a backup, say).
    let copy = db.path().with_extension("copy");
    std::fs::copy(db.path(), &copy).unwrap();
    std::fs::rename(&copy, db.path()).unwrap();
    let unhealthy = Health::Unhealthy("store file was deleted or replaced".into());
    assert_eq!(store.check_health().await, unhealthy);
    let refused = store.append(vec![entry("/", &[], &[], "lost")]).await;
    assert!(
        matches!(&refused, Err(StoreError::Unavailable(m)) if m.contains("deleted or replaced")),
        "{refused:?}"
    );
    // For good: the file the store has open is not the one a restart opens.
    assert_eq!(store.check_health().await, unhealthy);
    std::fs::remove_file(db.path()).unwrap();
    assert_eq!(store.check_health().await, unhealthy);
    assert!(store.save_session(session("p", true, 1)).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_disconnect_sessions_starts_their_window_now() {
    let db = TempDb::new();
    let store = SqliteStore::open(db.path(), Durability::Fsync).unwrap();
    store.save_session(session("live", true, 1)).await.unwrap();
    store.save_session(session("gone", false, 1)).await.unwrap();
    let before = now_ms();
    assert_eq!(store.disconnect_sessions().await.unwrap(), 1);
    let live = store.load_session("live").await.unwrap().unwrap();
    assert!(!live.connected);
    assert!(live.updated_ms >= before, "{live:?}");
    let gone = store.load_session("gone").await.unwrap().unwrap();
    assert_eq!(gone.updated_ms, 1, "already disconnected: unchanged");
    // The purge takes them like any other disconnected session.
    store.trim(Retention::default(), &[], before).await.unwrap();
    assert!(store.load_session("gone").await.unwrap().is_none());
    assert!(store.load_session("live").await.unwrap().is_some());
    store
        .trim(Retention::default(), &[], now_ms() + 1)
        .await
        .unwrap();
    assert!(store.load_session("live").await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_trim_by_age_keeps_newer_entries() {
    let db = TempDb::new();
    let store = SqliteStore::open(db.path(), Durability::Relaxed).unwrap();
    let seqs = store
        .append(
            (0..5)
                .map(|i| entry("/", &["a"], &[], &format!("e{i}")))
                .collect(),
        )
        .await
        .unwrap();
    // Age the first three (a prefix: timestamps never go back with positions).
    let raw = rusqlite::Connection::open(db.path()).unwrap();
    raw.execute(
        "UPDATE entries SET ts_ms = 1000 WHERE seq <= ?1",
        [seqs[2] as i64],
    )
    .unwrap();
    let hour = Retention {
        max_age: Some(Duration::from_secs(3600)),
        max_count: None,
    };
    assert_eq!(store.trim(hour, &[], i64::MIN).await.unwrap(), 3);
    let read = store.read("/", &rooms(&["a"]), 0, 100).await.unwrap();
    assert_eq!(events(&read), ["e3", "e4"]);
    assert_eq!(store.bounds().await.unwrap(), (seqs[4], seqs[2] + 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_reads_do_not_wait_for_the_writer() {
    let db = TempDb::new();
    let store = SqliteStore::open(db.path(), Durability::Fsync).unwrap();
    store
        .append(vec![entry("/", &["a"], &[], "first")])
        .await
        .unwrap();

    // Another connection holds the write lock: the writer is stuck on it.
    let raw = rusqlite::Connection::open(db.path()).unwrap();
    raw.execute_batch("BEGIN IMMEDIATE").unwrap();
    let write = store.append(vec![entry("/", &["a"], &[], "second")]);
    let read = tokio::time::timeout(
        Duration::from_secs(3),
        store.read("/", &rooms(&["a"]), 0, 100),
    )
    .await
    .expect("a read does not wait for the writer")
    .unwrap();
    assert_eq!(events(&read), ["first"]);
    let bounds = store.bounds().await.unwrap();
    raw.execute_batch("COMMIT").unwrap();

    let seqs = write.await.unwrap();
    assert!(seqs[0] > bounds.0);
    let read = store.read("/", &rooms(&["a"]), 0, 100).await.unwrap();
    assert_eq!(events(&read), ["first", "second"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_drop_finishes_queued_writes_and_releases_the_file() {
    let db = TempDb::new();
    let store = SqliteStore::open(db.path(), Durability::Fsync).unwrap();
    // Commands queue at the call: one whose future is dropped unawaited is
    // still run before the writer thread stops.
    drop(store.append(vec![entry("/", &["a"], &[], "queued")]));
    drop(store);

    let store = SqliteStore::open(db.path(), Durability::Fsync).unwrap();
    let read = store.read("/", &rooms(&["a"]), 0, 100).await.unwrap();
    assert_eq!(events(&read), ["queued"]);
    store
        .append(vec![entry("/", &["a"], &[], "next")])
        .await
        .unwrap();
}

/// A file made before sessions kept their user opens, its sessions load
/// (without a user), and new ones keep theirs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_file_without_the_session_user_column_is_upgraded() {
    let db = TempDb::new();
    drop(SqliteStore::open(db.path(), Durability::Fsync).unwrap());
    {
        let conn = rusqlite::Connection::open(db.path()).unwrap();
        conn.execute_batch(
            "ALTER TABLE sessions DROP COLUMN user;
             INSERT INTO sessions(pid, sid, nsp, rooms, data, start_seq, connected, updated_ms)
             VALUES ('old', 'sid-old', '/', '[\"sid-old\"]', NULL, 0, 0, 1000);",
        )
        .unwrap();
    }
    let store = SqliteStore::open(db.path(), Durability::Fsync).unwrap();
    let old = store.load_session("old").await.unwrap().expect("kept");
    assert_eq!((old.sid.as_str(), old.user.as_deref()), ("sid-old", None));
    let mut new = session("new", true, 2_000);
    new.user = Some("ann".into());
    store.save_session(new.clone()).await.unwrap();
    assert_eq!(store.load_session("new").await.unwrap(), Some(new));
}
