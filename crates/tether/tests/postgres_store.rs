//! The `Store` behaviour suite of tests/store.rs, run against `PostgresStore`
//! on the real PostgreSQL at 127.0.0.1:5432 (user `postgres`, database
//! `test`; override with TETHER_TEST_POSTGRES_URL), each test in a schema of
//! its own that it drops at the end; plus PostgreSQL-only tests: reopening,
//! the schema version, several nodes appending concurrently while a reader
//! follows positions, the feed, and errors that say what happened.
//!
//! PostgreSQL unreachable: each test says it was skipped, and why, on
//! stderr; with CI=true it fails instead (scripts/test.sh starts it).

use std::collections::HashSet;
use std::io::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tether::store::prelude::*;
use tether::store::{AppendOnce, Health, PostgresStore, StoreError};

use store_suite::*;
use tether_testkit::store_suite;

// ---------------------------------------------------------------------------
// Helpers

/// The shared PostgreSQL, without a schema.
fn shared_url() -> String {
    std::env::var("TETHER_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// A raw connection to the shared PostgreSQL (its driver task spawned).
async fn raw() -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let (client, connection) =
        tokio_postgres::connect(&shared_url(), tokio_postgres::NoTls).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// A schema of its own for one test, dropped (with everything in it) when
/// the scope is dropped.
struct Scope {
    schema: String,
}

impl Scope {
    /// `None`: PostgreSQL does not answer and this is not CI (said on
    /// stderr); in CI that is a failure.
    async fn new(test: &str) -> Option<Scope> {
        let reachable = match tokio::time::timeout(Duration::from_secs(5), raw()).await {
            Ok(Ok(client)) => client
                .simple_query("SELECT 1")
                .await
                .map(drop)
                .map_err(|e| e.to_string()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("no answer within 5 s".to_owned()),
        };
        if let Err(why) = reachable {
            let why = format!("PostgreSQL unreachable at {}: {why}", shared_url());
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("{test}: {why} (CI=true: a missing PostgreSQL is a failure)");
            }
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED {test}: {why} (set CI=true to make this a failure)"
            );
            return None;
        }
        let short: String = test
            .chars()
            .filter(|c| c.is_ascii_lowercase())
            .take(16)
            .collect();
        Some(Scope {
            schema: format!("t_{short}_{:012x}", rand_u64() & 0xffff_ffff_ffff),
        })
    }

    /// The store's URL: the shared database, the test's schema, and an
    /// application name of its own (to find the test's connections).
    fn url(&self) -> String {
        format!(
            "{}?schema={}&application_name={}",
            shared_url(),
            self.schema,
            self.schema
        )
    }

    async fn store(&self) -> PostgresStore {
        PostgresStore::connect(&self.url())
            .await
            .expect("connect to the test's schema")
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        let schema = self.schema.clone();
        // A runtime of its own: drop runs inside the test's runtime.
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            rt.block_on(async {
                let client = raw().await?;
                client
                    .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                    .await
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            let _ = writeln!(
                std::io::stderr(),
                "could not drop schema {}: {dropped:?}",
                self.schema
            );
        }
    }
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    hasher.finish()
}

/// Runs each named suite function against a fresh `PostgresStore` (a schema
/// of its own on the shared database).
macro_rules! postgres_suite {
    ($($name:ident),* $(,)?) => {
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(scope) = super::Scope::new(stringify!($name)).await else {
                        return;
                    };
                    super::store_suite::$name(std::sync::Arc::new(scope.store().await)).await;
                }
            )*
        }
    };
}

postgres_suite!(
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
    per_stream_retention,
);

fn is_unavailable<T: std::fmt::Debug>(result: &Result<T, StoreError>) -> bool {
    matches!(
        result,
        Err(StoreError::Unavailable(_) | StoreError::Backend { .. })
    )
}

/// The next `n` entries of a feed, bounded in time.
async fn take(feed: &mut tether::store::Feed, n: usize) -> Vec<tether::store::Entry> {
    let mut out = Vec::new();
    while out.len() < n {
        let next = tokio::time::timeout(Duration::from_secs(10), feed.next())
            .await
            .expect("the feed brings the entries within 10 s")
            .expect("the feed does not end");
        out.push(next.expect("a feed entry"));
    }
    out
}

/// The next `n` entries after `last` from `feed`, starting a new feed from
/// the last entry given when one fails (as a node does).
async fn take_resuming(
    store: &PostgresStore,
    feed: &mut tether::store::Feed,
    mut last: u64,
    n: usize,
) -> Vec<tether::store::Entry> {
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut out = Vec::new();
    while out.len() < n {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, feed.next())
            .await
            .expect("the feed brings the entries within 15 s")
        {
            Some(Ok(entry)) => {
                assert!(entry.seq > last, "in order, none twice");
                last = entry.seq;
                out.push(entry);
            }
            Some(Err(e)) => {
                assert!(e.is_unavailable(), "{e:?}");
                *feed = store.shared_feed().unwrap().feed(last);
            }
            None => *feed = store.shared_feed().unwrap().feed(last),
        }
    }
    out
}

// ---------------------------------------------------------------------------
// PostgreSQL only

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reopen_keeps_epoch_and_data_and_records_the_schema_version() {
    let Some(scope) = Scope::new("reopen_keeps_epoch_and_data").await else {
        return;
    };
    let store = scope.store().await;
    assert_eq!(store.schema(), scope.schema);
    let epoch = store.epoch().to_owned();
    assert!(!epoch.is_empty());
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
            vec![bytes::Bytes::from_static(b"x")],
        )
        .await
        .unwrap();
    drop(store);

    let again = scope.store().await;
    assert_eq!(again.epoch(), epoch, "the same schema, the same life");
    assert_eq!(again.bounds().await.unwrap(), (once.seq(), 1));
    let read = again.read("/", &rooms(&["a"]), 0, 10).await.unwrap();
    assert_eq!(events(&read), ["kept", "all", "once"]);
    assert_eq!(read[0].seq, seqs[0]);
    assert_eq!(read[0].entry.target.except, ["c"]);
    assert_eq!(
        again
            .append_once("key".into(), entry("/", &["a"], &[], "twice"))
            .await
            .unwrap(),
        AppendOnce::Duplicate(once.seq()),
        "idempotency keys survive a reopen"
    );
    assert_eq!(
        again.load_session("p1").await.unwrap(),
        Some(session("p1", false, 1_234))
    );
    let pending = again.inbox_pending("ann", 0, 10).await.unwrap();
    assert_eq!(pending.iter().map(|e| e.seq).collect::<Vec<_>>(), [pushed]);
    assert_eq!(pending[0].attachments, [bytes::Bytes::from_static(b"x")]);
    assert_eq!(
        again
            .append(vec![entry("/", &[], &[], "next")])
            .await
            .unwrap(),
        [once.seq() + 1],
        "positions go on"
    );

    // Another schema of the same database is another store.
    let other = Scope::new("reopen_keeps_epoch_and_data_other")
        .await
        .unwrap();
    let other_store = other.store().await;
    assert_ne!(other_store.epoch(), epoch);
    assert_eq!(other_store.bounds().await.unwrap(), (0, 1));

    // The schema version is recorded; a schema of another version is refused.
    let client = raw().await.unwrap();
    let version: String = client
        .query_one(
            &format!(
                "SELECT value FROM {}.meta WHERE key = 'schema_version'",
                scope.schema
            ),
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(version, "1");
    client
        .batch_execute(&format!(
            "UPDATE {}.meta SET value = '99' WHERE key = 'schema_version'",
            scope.schema
        ))
        .await
        .unwrap();
    let refused = PostgresStore::connect(&scope.url()).await;
    assert!(
        matches!(&refused, Err(StoreError::Unavailable(m)) if m.contains("version 99")),
        "{refused:?}"
    );
}

/// Several nodes (stores) append concurrently while a reader follows the
/// positions with `read` pages and another with the feed: every position a
/// reader has read past stays complete (nothing appears later below it),
/// the positions have no gaps, and every entry sent is seen exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_on_several_nodes_never_commit_below_a_read_position() {
    let Some(scope) = Scope::new("concurrent_writers_race").await else {
        return;
    };
    const NODES: usize = 4;
    const TASKS: usize = 6;
    const EACH: usize = 40;
    const SENT: usize = NODES * TASKS * EACH;
    let reader = scope.store().await;
    let mut feed = reader
        .shared_feed()
        .expect("a shared store has a feed")
        .feed(0);
    let mut nodes = Vec::new();
    for _ in 0..NODES {
        nodes.push(Arc::new(scope.store().await));
    }
    let writers_done = Arc::new(std::sync::atomic::AtomicBool::new(false));

    // The follower: pages after the last position it read, as a
    // reconnecting client does, for as long as the writers write.
    let follower = {
        let store = scope.store().await;
        let done = Arc::clone(&writers_done);
        tokio::spawn(async move {
            let mut seen = Vec::new();
            let mut after = 0;
            let mut pages = 0usize;
            loop {
                let finished = done.load(std::sync::atomic::Ordering::SeqCst);
                let page = store.read("/", &[], after, 64).await.unwrap();
                pages += 1;
                for e in &page {
                    assert!(e.seq > after);
                    after = e.seq;
                    seen.push(e.seq);
                }
                if finished && page.is_empty() {
                    return (seen, pages);
                }
            }
        })
    };

    let started = Instant::now();
    let mut writers = Vec::new();
    for (n, node) in nodes.iter().enumerate() {
        for t in 0..TASKS {
            let node = Arc::clone(node);
            writers.push(tokio::spawn(async move {
                let mut mine = Vec::new();
                let mut i = 0;
                while i < EACH {
                    // Batches of 1 to 3, some keyed.
                    let size = 1 + (i + t) % 3;
                    let mut batch = Vec::new();
                    for _ in 0..size.min(EACH - i) {
                        let e = entry("/", &[], &[], &format!("n{n}-t{t}-{i}"));
                        batch.push(if i % 5 == 0 {
                            tether::store::Append::keyed(format!("k{n}-{t}-{i}"), e)
                        } else {
                            tether::store::Append::plain(e)
                        });
                        i += 1;
                    }
                    for outcome in node.append_batch(batch).await.unwrap() {
                        assert!(outcome.is_appended());
                        mine.push(outcome.seq());
                    }
                }
                mine
            }));
        }
    }
    let mut sent = Vec::new();
    for writer in writers {
        sent.extend(writer.await.unwrap());
    }
    writers_done.store(true, std::sync::atomic::Ordering::SeqCst);
    let elapsed = started.elapsed();
    let (seen, pages) = follower.await.unwrap();

    assert_eq!(sent.len(), SENT);
    let mut sorted = sent.clone();
    sorted.sort_unstable();
    assert_eq!(
        sorted,
        (1..=SENT as u64).collect::<Vec<_>>(),
        "positions are 1..{SENT}, no gap, none twice"
    );
    let seen_set: HashSet<u64> = seen.iter().copied().collect();
    let missed: Vec<u64> = sorted
        .iter()
        .copied()
        .filter(|s| !seen_set.contains(s))
        .collect();
    assert!(
        missed.is_empty() && seen == sorted,
        "the follower missed {} entries (committed below a position it had read past), \
         first {:?}; it saw {} of {SENT}",
        missed.len(),
        &missed[..missed.len().min(10)],
        seen.len()
    );
    let from_feed: Vec<u64> = take(&mut feed, SENT).await.iter().map(|e| e.seq).collect();
    assert_eq!(
        from_feed, sorted,
        "the feed brings every entry once, in order"
    );
    let _ = writeln!(
        std::io::stderr(),
        "{SENT} appends from {NODES} nodes x {TASKS} tasks in {elapsed:?}; the follower read {pages} pages"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_feed_brings_every_nodes_appends_and_resumes_after_its_connections_are_cut() {
    let Some(scope) = Scope::new("feed_resumes").await else {
        return;
    };
    let (a, b) = (scope.store().await, scope.store().await);
    let mut feed = a.shared_feed().unwrap().feed(0);
    b.append(vec![
        entry("/", &[], &[], "1"),
        entry("/x", &["r"], &[], "2"),
    ])
    .await
    .unwrap();
    a.append(vec![entry("/", &["r"], &[], "3")]).await.unwrap();
    assert_eq!(events(&take(&mut feed, 3).await), ["1", "2", "3"]);

    // Every connection of the test's stores is terminated (its listener
    // included): the next operations may fail, then service resumes by
    // itself and the feed goes on from where it was.
    let client = raw().await.unwrap();
    let cut: i64 = client
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1",
            &[&scope.schema],
        )
        .await
        .unwrap()
        .get(0);
    assert!(
        cut >= 2,
        "the writer and the listener were connected: {cut}"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut failures = 0;
    loop {
        match b.append(vec![entry("/", &[], &[], "4")]).await {
            Ok(_) => break,
            Err(e) => {
                assert!(
                    e.is_unavailable(),
                    "a cut connection is not corrupt data: {e:?}"
                );
                failures += 1;
                assert!(Instant::now() < deadline, "writes did not come back: {e}");
            }
        }
    }
    let _ = writeln!(
        std::io::stderr(),
        "{failures} appends failed before the pool reconnected"
    );
    // A feed that fails is resumed from the last entry it gave (as a node
    // does): nothing is lost.
    let next = take_resuming(&a, &mut feed, 3, 1).await;
    assert_eq!(events(&next), ["4"]);
    let (last, _) = a.bounds().await.unwrap();
    assert_eq!(next[0].seq, last);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_server_is_unavailable_quickly_not_corrupt() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let started = Instant::now();
    let result =
        PostgresStore::connect(&format!("postgres://postgres@127.0.0.1:{port}/test")).await;
    let err = result.unwrap_err();
    assert!(err.is_unavailable(), "{err:?}");
    assert!(
        err.to_string().contains("postgres") && err.to_string().to_lowercase().contains("connect"),
        "says what happened: {err}"
    );
    assert!(
        std::error::Error::source(&err).is_some(),
        "keeps the driver's error as its source"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );

    for url in [
        "redis://127.0.0.1:6379/",
        "postgres://postgres@127.0.0.1/test?schema=Bad-Name",
    ] {
        let err = PostgresStore::connect(url).await.unwrap_err();
        assert!(
            matches!(&err, StoreError::Unavailable(m) if m.contains(url)),
            "names the URL: {err:?}"
        );
    }
}

/// A TCP relay to the shared PostgreSQL that the test can take down: the
/// database "goes away" for the store without stopping the shared server.
struct Relay {
    port: u16,
    task: tokio::task::JoinHandle<()>,
}

impl Relay {
    async fn start(port: u16) -> Relay {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap();
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            let mut links = tokio::task::JoinSet::new();
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                links.spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect("127.0.0.1:5432").await
                    {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
            // Dropping the JoinSet (the task aborted) aborts every link.
        });
        Relay { port, task }
    }

    fn stop(self) {
        self.task.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_gone_is_unavailable_and_unhealthy_then_resumes_by_itself() {
    let Some(scope) = Scope::new("database_gone").await else {
        return;
    };
    if shared_url() != "postgres://postgres@127.0.0.1:5432/test" {
        // The relay forwards to 127.0.0.1:5432 only.
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED database_gone: TETHER_TEST_POSTGRES_URL is set"
        );
        return;
    }
    let relay = Relay::start(0).await;
    let port = relay.port;
    let url = format!(
        "postgres://postgres@127.0.0.1:{port}/test?schema={}",
        scope.schema
    );
    let store = PostgresStore::connect(&url).await.unwrap();
    let first = store
        .append(vec![entry("/", &[], &[], "before")])
        .await
        .unwrap();
    assert_eq!(store.check_health().await, Health::Healthy);

    relay.stop();
    let started = Instant::now();
    let failed = store.append(vec![entry("/", &[], &[], "during")]).await;
    assert!(is_unavailable(&failed), "{failed:?}");
    let read = store.read("/", &[], 0, 10).await;
    assert!(is_unavailable(&read), "{read:?}");
    assert!(
        started.elapsed() < Duration::from_secs(25),
        "failures come within the bounds: {:?}",
        started.elapsed()
    );
    let health = store.check_health().await;
    assert!(!health.is_healthy(), "{health:?}");

    // The database comes back (on the same address): service resumes.
    let relay = Relay::start(port).await;
    let deadline = Instant::now() + Duration::from_secs(15);
    let after = loop {
        match store.append(vec![entry("/", &[], &[], "after")]).await {
            Ok(seqs) => break seqs,
            Err(e) => {
                assert!(e.is_unavailable(), "{e:?}");
                assert!(Instant::now() < deadline, "writes did not resume: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    assert_eq!(store.check_health().await, Health::Healthy);
    assert_eq!(after, [first[0] + 1], "the failed append took no position");
    assert_eq!(
        events(&store.read("/", &[], 0, 10).await.unwrap()),
        ["before", "after"],
        "nothing of the failed append was kept"
    );
    relay.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_rows_are_corrupt_and_nul_text_is_refused_alone() {
    let Some(scope) = Scope::new("damaged_rows").await else {
        return;
    };
    let store = scope.store().await;
    let seqs = store
        .append(vec![
            entry("/", &["a"], &[], "good"),
            entry("/", &["a"], &[], "bad"),
        ])
        .await
        .unwrap();

    // A NUL character cannot be stored in PostgreSQL text: refused for that
    // call only, while a concurrent append goes through.
    let mut nul = entry("/", &["a"], &[], "nul");
    nul.event = "bad\0event".into();
    let (refused, fine) = tokio::join!(
        store.append(vec![nul]),
        store.append(vec![entry("/", &["a"], &[], "fine")])
    );
    assert!(
        matches!(refused, Err(StoreError::Unsupported(_))),
        "{refused:?}"
    );
    assert_eq!(fine.unwrap(), [seqs[1] + 1]);
    let keyed = store
        .append_once("k\0".into(), entry("/", &[], &[], "x"))
        .await;
    assert!(
        matches!(keyed, Err(StoreError::Unsupported(_))),
        "{keyed:?}"
    );

    let client = raw().await.unwrap();
    client
        .execute(
            &format!(
                "UPDATE {}.entries SET rooms = 'not json' WHERE seq = $1",
                scope.schema
            ),
            &[&i64::try_from(seqs[1]).unwrap()],
        )
        .await
        .unwrap();
    let read = store.read("/", &rooms(&["a"]), 0, 10).await;
    assert!(matches!(read, Err(StoreError::Corrupt { .. })), "{read:?}");
    assert_eq!(
        events(&store.read("/", &rooms(&["a"]), 0, 1).await.unwrap()),
        ["good"],
        "the entries before it still read"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_of_a_node_whose_lease_ran_out_are_disconnected_by_a_trim() {
    let Some(scope) = Scope::new("session_leases").await else {
        return;
    };
    let dead = scope
        .store()
        .await
        .with_session_lease(Duration::from_millis(200));
    let alive = scope
        .store()
        .await
        .with_session_lease(Duration::from_millis(200));
    dead.save_session(session("dead", true, 1)).await.unwrap();
    alive.save_session(session("alive", true, 1)).await.unwrap();
    drop(dead);
    tokio::time::sleep(Duration::from_millis(300)).await;
    alive.save_session(session("alive", true, 2)).await.unwrap();
    alive
        .trim(tether::store::Retention::default(), &[], i64::MIN)
        .await
        .unwrap();
    let dead = alive.load_session("dead").await.unwrap().unwrap();
    assert!(!dead.connected, "the silent node's session is disconnected");
    assert!(
        dead.updated_ms >= tether::store::now_ms() - 5_000,
        "as of the trim"
    );
    assert!(
        alive
            .load_session("alive")
            .await
            .unwrap()
            .unwrap()
            .connected
    );

    // Many nodes racing for the same keys on one database: stored once.
    let nodes = [
        scope.store().await,
        scope.store().await,
        scope.store().await,
    ];
    let mut seqs = HashSet::new();
    let mut appended = 0;
    let outcomes = futures_util::future::join_all(
        nodes
            .iter()
            .map(|n| n.append_once("shared-key".into(), entry("/", &["k"], &[], "once"))),
    )
    .await;
    for outcome in outcomes {
        let outcome = outcome.unwrap();
        appended += outcome.is_appended() as usize;
        seqs.insert(outcome.seq());
    }
    assert_eq!((appended, seqs.len()), (1, 1));
}

// ---------------------------------------------------------------------------
// The cluster's transport on PostgreSQL

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cluster_transport_carries_small_and_large_messages_and_keeps_heartbeats() {
    use tether::cluster::{Channel, PostgresTransport, Transport};
    let Some(scope) = Scope::new("cluster_transport").await else {
        return;
    };
    let Some(other) = Scope::new("cluster_transport_other").await else {
        return;
    };
    let (a, b) = (
        PostgresTransport::new(&scope.store().await),
        PostgresTransport::new(&scope.store().await),
    );
    let elsewhere = PostgresTransport::new(&other.store().await);
    let mut to_b = b
        .subscribe(&[Channel::All, Channel::Node("node-b".into())])
        .await
        .unwrap();
    let mut to_other = elsewhere.subscribe(&[Channel::All]).await.unwrap();

    let small = br#"{"kind":"hello"}"#.to_vec();
    // Over a notification's 8000 bytes, and not UTF-8: through the side table.
    let large: Vec<u8> = (0..20_000u32).map(|i| (i % 251) as u8).collect();
    a.publish(&Channel::All, &small).await.unwrap();
    a.publish(&Channel::Node("node-b".into()), &large)
        .await
        .unwrap();
    a.publish(&Channel::Node("node-c".into()), b"not for b")
        .await
        .unwrap();
    a.publish(&Channel::All, b"last").await.unwrap();
    let mut got = Vec::new();
    for _ in 0..3 {
        let next = tokio::time::timeout(Duration::from_secs(5), to_b.next())
            .await
            .expect("a message within 5 s")
            .expect("the subscription lives");
        got.push(next);
    }
    assert_eq!(
        got,
        [small, large, b"last".to_vec()],
        "in order, whole, only b's"
    );
    to_b.check().await.unwrap();
    let quiet = tokio::time::timeout(Duration::from_millis(300), to_other.next()).await;
    assert!(
        quiet.is_err(),
        "a store in another schema is another cluster: {quiet:?}"
    );

    let timeout = Duration::from_secs(5);
    assert_eq!(a.heartbeat("node-a", timeout).await.unwrap(), ["node-a"]);
    let live = b.heartbeat("node-b", timeout).await.unwrap();
    assert_eq!(live, ["node-a", "node-b"]);
    assert!(elsewhere.live_nodes(timeout).await.unwrap().is_empty());
    a.remove_node("node-a").await.unwrap();
    assert_eq!(b.live_nodes(timeout).await.unwrap(), ["node-b"]);
}

/// Two nodes of one cluster on one PostgreSQL schema, a client on each:
/// `fetch_sockets` on either returns both sockets, a remote join takes
/// effect on the other node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_on_one_database_are_one_cluster() {
    use tether::cluster::ClusterOptions;
    use tether::{AckSender, Config, Socket, SocketIo};
    let Some(scope) = Scope::new("two_nodes_cluster").await else {
        return;
    };
    let options = ClusterOptions {
        heartbeat: Duration::from_millis(200),
        node_timeout: Duration::from_secs(3),
        request_timeout: Duration::from_secs(5),
    };
    let mut nodes = Vec::new();
    let mut urls = Vec::new();
    for _ in 0..2 {
        let store = Arc::new(scope.store().await);
        let io = SocketIo::with_cluster(Config::default(), store, options.clone()).unwrap();
        io.ns("/", |socket: Socket| async move {
            socket.on("ping", |ack: AckSender| async move {
                let _ = ack.send(("pong",));
            });
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        urls.push(format!(
            "http://127.0.0.1:{}/",
            listener.local_addr().unwrap().port()
        ));
        tokio::spawn(io.clone().serve(listener));
        nodes.push(io);
    }
    let cluster = nodes[0].cluster().expect("a cluster node");
    let live = cluster
        .wait_nodes(2, Duration::from_secs(10))
        .await
        .expect("both nodes live");
    assert_eq!(live.len(), 2);

    let mut clients = Vec::new();
    for url in &urls {
        let client = tether_client::Client::builder(url).build().await.unwrap();
        tokio::time::timeout(Duration::from_secs(10), client.connect())
            .await
            .expect("connects within 10 s")
            .unwrap();
        clients.push(client);
    }
    for io in &nodes {
        let sockets = io.of("/").unwrap().fetch_sockets().await.unwrap();
        assert_eq!(sockets.len(), 2, "every node's sockets");
        assert_eq!(sockets.iter().filter(|s| s.is_local()).count(), 1);
    }
    // A socket of node b joins a room from node a.
    let remote = nodes[0]
        .of("/")
        .unwrap()
        .fetch_sockets()
        .await
        .unwrap()
        .into_iter()
        .find(|s| !s.is_local())
        .expect("node b's socket");
    remote.join("remote-room").await.unwrap();
    let in_room = nodes[1]
        .of("/")
        .unwrap()
        .to("remote-room")
        .fetch_sockets()
        .await
        .unwrap();
    assert_eq!(in_room.len(), 1);
    assert!(in_room[0].is_local(), "it joined on node b");
    assert_eq!(in_room[0].id(), remote.id());
    let _ = clients;
}

/// The schema dropped and made anew under a running node (another node
/// connected to the empty database): a new life. The old node's next
/// append is refused as a reset and it adopts the new epoch, its feed ends
/// with "store reset", and afterwards it writes in the new life.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_made_anew_is_a_new_epoch_that_running_nodes_adopt() {
    let Some(scope) = Scope::new("schema_made_anew").await else {
        return;
    };
    let old = scope.store().await;
    let mut feed = old.shared_feed().unwrap().feed(0);
    old.append(vec![entry("/", &[], &[], "first life")])
        .await
        .unwrap();
    assert_eq!(events(&take(&mut feed, 1).await), ["first life"]);
    let old_epoch = old.epoch().to_owned();

    raw()
        .await
        .unwrap()
        .batch_execute(&format!("DROP SCHEMA {} CASCADE", scope.schema))
        .await
        .unwrap();
    let new = scope.store().await;
    assert_ne!(new.epoch(), old_epoch, "a new life");
    assert_eq!(new.bounds().await.unwrap(), (0, 1));

    let refused = old.append(vec![entry("/", &[], &[], "stale")]).await;
    assert!(
        matches!(&refused, Err(StoreError::Unavailable(m)) if m.contains("reset")),
        "{refused:?}"
    );
    assert_eq!(
        old.epoch(),
        new.epoch(),
        "the old node adopted the new epoch"
    );
    let ended = tokio::time::timeout(Duration::from_secs(10), feed.next())
        .await
        .expect("the feed notices within 10 s");
    assert!(
        matches!(&ended, Some(Err(StoreError::Unavailable(m))) if m.contains("reset")),
        "{ended:?}"
    );
    assert_eq!(
        old.append(vec![entry("/", &[], &[], "second life")])
            .await
            .unwrap(),
        [1],
        "positions start over in the new life"
    );
    assert_eq!(
        events(&new.read("/", &[], 0, 10).await.unwrap()),
        ["second life"]
    );
}

/// The race of several nodes again, with their connections terminated
/// (`pg_terminate_backend`) every 150 ms meanwhile: transactions die
/// mid-batch and roll back. Still no gap, nothing below a read position
/// appears later, and every acknowledged append is stored at its position.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_whose_connections_are_cut_leave_no_gap_and_lose_no_ack() {
    let Some(scope) = Scope::new("writers_cut").await else {
        return;
    };
    let reader = scope.store().await;
    let mut nodes = Vec::new();
    for _ in 0..3 {
        nodes.push(Arc::new(scope.store().await));
    }
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    // Set once every writer is done: the follower then reads to the end.
    let written = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let follower = {
        let store = scope.store().await;
        let done = Arc::clone(&written);
        tokio::spawn(async move {
            let mut seen = Vec::new();
            let mut after = 0;
            loop {
                let finished = done.load(std::sync::atomic::Ordering::SeqCst);
                // The follower's own connections are cut too: it retries.
                let Ok(page) = store.read("/", &[], after, 64).await else {
                    continue;
                };
                for e in &page {
                    after = e.seq;
                    seen.push(e.seq);
                }
                if finished && page.is_empty() {
                    return seen;
                }
            }
        })
    };
    let mut writers = Vec::new();
    for (n, node) in nodes.iter().enumerate() {
        for t in 0..4 {
            let (node, stop) = (Arc::clone(node), Arc::clone(&stop));
            writers.push(tokio::spawn(async move {
                let (mut acked, mut failed) = (Vec::new(), 0usize);
                let mut i = 0;
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    let event = format!("n{n}-t{t}-{i}");
                    i += 1;
                    match node.append(vec![entry("/", &[], &[], &event)]).await {
                        Ok(seqs) => acked.push((seqs[0], event)),
                        Err(e) => {
                            assert!(e.is_unavailable(), "a cut is not corrupt data: {e:?}");
                            failed += 1;
                        }
                    }
                }
                (acked, failed)
            }));
        }
    }
    let killer = {
        let application = scope.schema.clone();
        tokio::spawn(async move {
            let client = raw().await.unwrap();
            let mut cut = 0i64;
            for _ in 0..12 {
                tokio::time::sleep(Duration::from_millis(150)).await;
                let row = client
                    .query_one(
                        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
                         WHERE application_name = $1",
                        &[&application],
                    )
                    .await
                    .unwrap();
                cut += row.get::<_, i64>(0);
            }
            cut
        })
    };
    let cut = killer.await.unwrap();
    // Let the writers go on a moment once the cuts are over.
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let (mut acked, mut failed) = (Vec::new(), 0);
    for writer in writers {
        let (a, f) = writer.await.unwrap();
        acked.extend(a);
        failed += f;
    }
    written.store(true, std::sync::atomic::Ordering::SeqCst);
    let seen = follower.await.unwrap();

    let mut stored = Vec::new();
    let mut after = 0;
    loop {
        let page = reader.read("/", &[], after, 500).await.unwrap();
        let Some(last) = page.last() else { break };
        after = last.seq;
        stored.extend(page);
    }
    let positions: Vec<u64> = stored.iter().map(|e| e.seq).collect();
    let gaps = positions
        .iter()
        .zip(1u64..)
        .filter(|(seq, want)| **seq != *want)
        .count();
    assert_eq!(gaps, 0, "no gap, though transactions died mid-batch");
    let seen_set: HashSet<u64> = seen.iter().copied().collect();
    let missed: Vec<u64> = positions
        .iter()
        .copied()
        .filter(|s| !seen_set.contains(s))
        .collect();
    assert!(
        missed.is_empty() && seen == positions,
        "the follower missed {} entries (they appeared below its position), first {:?}",
        missed.len(),
        &missed[..missed.len().min(10)]
    );
    let by_seq: std::collections::HashMap<u64, &str> = stored
        .iter()
        .map(|e| (e.seq, e.entry.event.as_str()))
        .collect();
    for (seq, event) in &acked {
        assert_eq!(
            by_seq.get(seq).copied(),
            Some(event.as_str()),
            "acked {event}"
        );
    }
    assert!(
        cut > 0 && failed > 0,
        "the cuts hit the writers: {cut} cut, {failed} failed"
    );
    let _ = writeln!(
        std::io::stderr(),
        "{} acked, {failed} failed, {} stored, {cut} connections cut",
        acked.len(),
        stored.len()
    );
}
