//! The `Store` behaviour suite of tests/store.rs, run against `RedisStore` on
//! the real Redis at 127.0.0.1:6379 (each test under a key prefix of its own,
//! deleted at the end), plus Redis-only tests: epochs, the feed shared by
//! several nodes, atomic batches, a Redis that goes away and comes back.
//!
//! The suite functions live in tether_testkit::store_suite, shared with
//! tests/store.rs.
//!
//! Redis unreachable (and not startable): each test says it was skipped, and
//! why, on stderr; with CI=true it fails instead.

use tether_testkit::redis as support;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use tether::store::prelude::*;
use tether::store::{now_ms, AppendOnce, Health, RedisStore, Retention, StoreError};

use store_suite::*;
use tether_testkit::store_suite;

/// Runs each named suite function against a fresh `RedisStore` (a prefix of
/// its own on the shared Redis).
macro_rules! redis_suite {
    ($($name:ident),* $(,)?) => {
        mod redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(scope) = super::support::Scope::new(stringify!($name)) else {
                        return;
                    };
                    super::store_suite::$name(std::sync::Arc::new(scope.store())).await;
                }
            )*
        }
    };
}

redis_suite!(
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

// ---------------------------------------------------------------------------
// Redis only

/// A raw connection to the test's Redis.
fn raw(url: &str) -> ::redis::Connection {
    let conn = ::redis::Client::open(url)
        .unwrap()
        .get_connection_with_timeout(Duration::from_secs(1))
        .unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    conn
}

/// Every key under `prefix:`, without the prefix.
fn keys_of(url: &str, prefix: &str) -> Vec<String> {
    let mut conn = raw(url);
    let mut keys: Vec<String> = ::redis::cmd("KEYS")
        .arg(format!("{prefix}:*"))
        .query(&mut conn)
        .unwrap();
    keys.iter_mut()
        .for_each(|k| *k = k[prefix.len() + 1..].to_owned());
    keys.sort();
    keys
}

fn is_unavailable<T: std::fmt::Debug>(result: &Result<T, StoreError>) -> bool {
    matches!(
        result,
        Err(StoreError::Unavailable(_) | StoreError::Backend { .. })
    )
}

#[test]
fn connect_to_nothing_fails_fast_and_cleanly() {
    let started = Instant::now();
    let port = support::free_port();
    let err = RedisStore::connect(&format!("redis://127.0.0.1:{port}/"), "p").unwrap_err();
    assert!(
        matches!(err, StoreError::Unavailable(_) | StoreError::Backend { .. }),
        "{err:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    let err = RedisStore::connect("http://nope", "p").unwrap_err();
    assert!(
        matches!(err, StoreError::Unavailable(_) | StoreError::Backend { .. }),
        "{err:?}"
    );
    let err = RedisStore::connect("redis://127.0.0.1:1/", "").unwrap_err();
    assert!(
        matches!(err, StoreError::Unavailable(_) | StoreError::Backend { .. }),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn epoch_per_prefix_kept_by_every_node_new_after_a_flush() {
    let Some(scope) = support::Scope::new("epoch_per_prefix_kept_by_every_node_new_after_a_flush")
    else {
        return;
    };
    let (a, b) = (scope.store(), scope.store());
    assert!(!a.epoch().is_empty());
    assert_eq!(
        a.epoch(),
        b.epoch(),
        "every node of a prefix shares its epoch"
    );
    let other = support::Scope::new("epoch_per_prefix_kept_by_every_node_new_after_a_flush_other")
        .expect("Redis answered a moment ago");
    assert_ne!(
        other.store().epoch(),
        a.epoch(),
        "another prefix, another life"
    );
    let seqs = a
        .append(vec![
            entry("/", &["a"], &[], "1"),
            entry("/", &[], &[], "2"),
        ])
        .await
        .unwrap();
    assert_eq!(b.bounds().await.unwrap(), (seqs[1], 1));

    // A flushed Redis (here: the prefix's keys): a new life, positions anew.
    support::delete_prefix(&scope.url, &scope.prefix).unwrap();
    let c = scope.store();
    assert_ne!(c.epoch(), a.epoch());
    assert_eq!(c.bounds().await.unwrap(), (0, 1));
    // A node of the old life refuses to hand out positions of the new one:
    // its write fails, and it adopts the new epoch (its clients' offsets are
    // then refused plainly as "store reset").
    let old_epoch = a.epoch().to_owned();
    let refused = a.append(vec![entry("/", &["a"], &[], "stale")]).await;
    assert!(
        matches!(&refused, Err(StoreError::Unavailable(m)) if m.contains("reset")),
        "{refused:?}"
    );
    assert_eq!(a.epoch(), c.epoch(), "the old node adopted the new epoch");
    assert_ne!(a.epoch(), old_epoch);
    // b (same old life) notices at its health check: "store reset" once
    // (it has no feed to start over), then healthy in the new epoch.
    assert!(matches!(b.check_health().await, Health::Unhealthy(m) if m.starts_with("store reset")));
    assert_eq!(b.epoch(), c.epoch());
    assert_eq!(b.check_health().await, Health::Healthy);
    assert_eq!(
        c.append(vec![entry("/", &["a"], &[], "new")])
            .await
            .unwrap(),
        [1]
    );
    // The nodes of the old life write in the new one now.
    assert_eq!(
        a.append_once("k".into(), entry("/", &[], &[], "again"))
            .await
            .unwrap(),
        AppendOnce::Appended(2)
    );
    assert_eq!(
        events(&c.read("/", &rooms(&["a"]), 0, 10).await.unwrap()),
        ["new", "again"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_ends_the_feed_and_health_says_so_until_a_new_feed() {
    let Some(scope) =
        support::Scope::new("a_reset_ends_the_feed_and_health_says_so_until_a_new_feed")
    else {
        return;
    };
    let a = scope.store();
    assert_eq!(a.check_health().await, Health::Healthy);
    let mut feed = a.shared_feed().expect("a shared store has a feed").feed(0);
    a.append(vec![entry("/", &[], &[], "1")]).await.unwrap();
    assert_eq!(events(&take(&mut feed, 1).await), ["1"]);

    support::delete_prefix(&scope.url, &scope.prefix).unwrap();
    let old = a.epoch().to_owned();
    for _ in 0..2 {
        let health = a.check_health().await;
        assert!(
            matches!(&health, Health::Unhealthy(m) if m.starts_with("store reset")),
            "{health:?}"
        );
    }
    assert_ne!(a.epoch(), old);
    // The feed of the old life ends (within its block time) instead of
    // waiting forever past positions the new life has not reached.
    let end = tokio::time::timeout(Duration::from_secs(10), feed.next())
        .await
        .expect("the feed ends in time");
    assert!(
        matches!(&end, Some(Err(StoreError::Unavailable(m))) if m.contains("reset")),
        "{end:?}"
    );
    // A feed of the new life: the node has started over.
    let mut feed = a.shared_feed().expect("a shared store has a feed").feed(0);
    assert_eq!(a.check_health().await, Health::Healthy);
    assert_eq!(
        a.append(vec![entry("/", &[], &[], "new")]).await.unwrap(),
        [1]
    );
    assert_eq!(events(&take(&mut feed, 1).await), ["new"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_of_a_node_whose_lease_lapsed_are_disconnected_then_purged() {
    let Some(scope) =
        support::Scope::new("sessions_of_a_node_whose_lease_lapsed_are_disconnected_then_purged")
    else {
        return;
    };
    let lease = Duration::from_millis(800);
    let dead = scope.store().with_session_lease(lease);
    let live = scope.store().with_session_lease(lease);
    let mut tricky = session("d2", true, 1);
    // Text that looks like the record's own fields, inside the app data.
    tricky.data = Some(r#"{"connected":true,"updated_ms":5,"owner":"x"}"#.into());
    for record in [
        session("d1", true, 1),
        tricky.clone(),
        session("moved", true, 1),
    ] {
        dead.save_session(record).await.unwrap();
    }
    live.save_session(session("l1", true, 1)).await.unwrap();
    // Taken over by the live node (a client recovered there).
    live.save_session(session("moved", true, 1)).await.unwrap();
    drop(dead); // killed: no more renewals
    tokio::time::sleep(lease + Duration::from_millis(300)).await;

    let before = now_ms();
    live.trim(Retention::default(), &[], 0).await.unwrap();
    for pid in ["d1", "d2"] {
        let record = live.load_session(pid).await.unwrap().unwrap();
        assert!(!record.connected, "{record:?}");
        assert!(record.updated_ms >= before, "{record:?}");
    }
    let d2 = live.load_session("d2").await.unwrap().unwrap();
    assert_eq!(d2.data, tricky.data);
    assert_eq!(d2.rooms, tricky.rooms);
    for pid in ["l1", "moved"] {
        let record = live.load_session(pid).await.unwrap().unwrap();
        assert!(
            record.connected,
            "a live node's session stays connected: {record:?}"
        );
    }
    // The purge takes them like any other disconnected session.
    live.trim(Retention::default(), &[], now_ms() + 1)
        .await
        .unwrap();
    assert!(live.load_session("d1").await.unwrap().is_none());
    assert!(live.load_session("d2").await.unwrap().is_none());
    assert!(live.load_session("l1").await.unwrap().is_some());
    assert!(live.load_session("moved").await.unwrap().is_some());
}

/// Reads `n` entries from `feed`, bounded in time.
async fn take(feed: &mut tether::store::Feed, n: usize) -> Vec<tether::store::Entry> {
    let mut got = Vec::with_capacity(n);
    let wait = tokio::time::timeout(Duration::from_secs(30), async {
        while got.len() < n {
            match feed.next().await {
                Some(Ok(entry)) => got.push(entry),
                other => panic!(
                    "feed ended or failed after {} entries: {other:?}",
                    got.len()
                ),
            }
        }
    })
    .await;
    assert!(
        wait.is_ok(),
        "only {} of {n} entries from the feed",
        got.len()
    );
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feed_brings_every_node_s_appends_once_in_position_order() {
    let Some(scope) =
        support::Scope::new("feed_brings_every_node_s_appends_once_in_position_order")
    else {
        return;
    };
    let nodes: Vec<Arc<RedisStore>> = (0..3).map(|_| Arc::new(scope.store())).collect();
    assert!(nodes.iter().all(|n| n.shared_feed().is_some()));
    let before = nodes[0]
        .append(vec![entry("/", &[], &[], "before")])
        .await
        .unwrap()[0];
    let mut feeds: Vec<_> = nodes
        .iter()
        .map(|n| {
            n.shared_feed()
                .expect("a shared store has a feed")
                .feed(before)
        })
        .collect();

    // 3 nodes x 3 tasks, each 40 appends: plain (some in batches of 3) and
    // idempotent ones, to rooms, the namespace and another namespace.
    const EACH: usize = 40;
    let mut tasks = Vec::new();
    for (n, node) in nodes.iter().enumerate() {
        for t in 0..3 {
            let node = node.clone();
            tasks.push(tokio::spawn(async move {
                let mut seqs = Vec::new();
                let (mut i, mut step) = (0, 0);
                while i < EACH {
                    let tag = |i: usize| format!("n{n}t{t}-{i}");
                    step += 1;
                    match step % 3 {
                        0 if i + 3 <= EACH => {
                            let batch = (i..i + 3)
                                .map(|k| entry("/", &["r"], &[], &tag(k)))
                                .collect();
                            seqs.extend(node.append(batch).await.unwrap());
                            i += 3;
                        }
                        1 => {
                            let once = node
                                .append_once(tag(i), entry("/chat", &[], &[], &tag(i)))
                                .await
                                .unwrap();
                            assert!(matches!(once, AppendOnce::Appended(_)));
                            seqs.push(once.seq());
                            i += 1;
                        }
                        _ => {
                            seqs.extend(
                                node.append(vec![entry("/", &[], &["x"], &tag(i))])
                                    .await
                                    .unwrap(),
                            );
                            i += 1;
                        }
                    }
                }
                seqs
            }));
        }
    }
    let mut appended = HashSet::new();
    for task in tasks {
        appended.extend(task.await.unwrap());
    }
    let total = 3 * 3 * EACH;
    assert_eq!(appended.len(), total);

    let mut first: Option<Vec<u64>> = None;
    for feed in &mut feeds {
        let got = take(feed, total).await;
        let seqs: Vec<u64> = got.iter().map(|e| e.seq).collect();
        assert!(
            seqs.windows(2).all(|w| w[0] < w[1]),
            "a feed is in position order"
        );
        assert_eq!(seqs.iter().copied().collect::<HashSet<_>>(), appended);
        // Each task's entries in the order it appended them.
        let mut next = std::collections::HashMap::new();
        for e in &got {
            let (who, i) = e.entry.event.split_once('-').unwrap();
            let i: usize = i.parse().unwrap();
            let expected = next.entry(who.to_owned()).or_insert(0usize);
            assert_eq!(i, *expected, "{who}'s entries keep their order");
            *expected += 1;
        }
        // Entries come whole.
        let sample = got.iter().find(|e| e.entry.target.nsp == "/chat").unwrap();
        assert_eq!(
            sample.entry.args,
            format!(r#"["{}",{{"n":1}}]"#, sample.entry.event)
        );
        match &first {
            None => first = Some(seqs),
            Some(first) => assert_eq!(first, &seqs, "every node sees one order"),
        }
    }

    // A feed started in the middle gives what follows, only.
    let all = first.unwrap();
    let mut late = nodes[1]
        .shared_feed()
        .expect("a shared store has a feed")
        .feed(all[99]);
    let rest = take(&mut late, total - 100).await;
    assert_eq!(rest.iter().map(|e| e.seq).collect::<Vec<_>>(), all[100..]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_feed_whose_connection_dies_fails_and_a_new_one_resumes() {
    let Some(scope) =
        support::Scope::new("a_feed_whose_connection_dies_fails_and_a_new_one_resumes")
    else {
        return;
    };
    let store = scope.store();
    let seqs = store
        .append(
            (0..3)
                .map(|i| entry("/", &[], &[], &format!("e{i}")))
                .collect(),
        )
        .await
        .unwrap();
    let mut feed = store
        .shared_feed()
        .expect("a shared store has a feed")
        .feed(0);
    assert_eq!(events(&take(&mut feed, 3).await), ["e0", "e1", "e2"]);

    // The feed blocks in XREAD on its own connection: kill that connection.
    let name = format!("name=tether-feed:{}", scope.prefix);
    let mut conn = raw(&scope.url);
    let list: String = ::redis::cmd("CLIENT").arg("LIST").query(&mut conn).unwrap();
    let ids: Vec<&str> = list
        .lines()
        .filter(|l| l.split(' ').any(|f| f == name))
        .filter_map(|l| l.split(' ').find_map(|f| f.strip_prefix("id=")))
        .collect();
    assert_eq!(ids.len(), 1, "one connection of its own: {list}");
    let killed: usize = ::redis::cmd("CLIENT")
        .arg("KILL")
        .arg("ID")
        .arg(ids[0])
        .query(&mut conn)
        .unwrap();
    assert_eq!(killed, 1);
    let failed = tokio::time::timeout(Duration::from_secs(10), feed.next())
        .await
        .expect("the feed notices within 10 s");
    assert!(
        matches!(
            failed,
            Some(Err(StoreError::Unavailable(_) | StoreError::Backend { .. }))
        ),
        "{failed:?}"
    );
    assert!(feed.next().await.is_none(), "a failed feed ends");

    // Resumed from the last entry it gave: nothing lost, nothing repeated.
    let more = store
        .append(vec![entry("/", &[], &[], "e3"), entry("/", &[], &[], "e4")])
        .await
        .unwrap();
    let mut resumed = store
        .shared_feed()
        .expect("a shared store has a feed")
        .feed(seqs[2]);
    let got = take(&mut resumed, 2).await;
    assert_eq!(got.iter().map(|e| e.seq).collect::<Vec<_>>(), more);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_append_is_one_atomic_batch_of_consecutive_positions() {
    let Some(scope) =
        support::Scope::new("one_append_is_one_atomic_batch_of_consecutive_positions")
    else {
        return;
    };
    let (a, b) = (Arc::new(scope.store()), Arc::new(scope.store()));
    let mut tasks = Vec::new();
    for (n, node) in [a.clone(), b.clone(), a.clone(), b.clone()]
        .into_iter()
        .enumerate()
    {
        tasks.push(tokio::spawn(async move {
            let mut batches = Vec::new();
            for k in 0..10 {
                let batch = (0..250)
                    .map(|i| entry("/", &["r"], &[], &format!("{n}-{k}-{i}")))
                    .collect();
                batches.push(node.append(batch).await.unwrap());
            }
            batches
        }));
    }
    for task in tasks {
        for seqs in task.await.unwrap() {
            assert_eq!(seqs.len(), 250);
            assert!(
                seqs.windows(2).all(|w| w[1] == w[0] + 1),
                "a batch is not interleaved with another node's"
            );
        }
    }
    let big = a
        .append(
            (0..5000)
                .map(|i| entry("/big", &[], &[], &format!("b{i}")))
                .collect(),
        )
        .await
        .unwrap();
    assert_eq!(big.len(), 5000);
    assert!(big.windows(2).all(|w| w[1] == w[0] + 1));
    let read = b.read("/big", &[], 0, 10_000).await.unwrap();
    assert_eq!(read.iter().map(|e| e.seq).collect::<Vec<_>>(), big);
    let history = b.history("/big", None, u64::MAX, 3000).await.unwrap();
    assert_eq!(
        history.iter().map(|e| e.seq).collect::<Vec<_>>(),
        big[2000..]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_records_get_the_age_retention_as_ttl() {
    let Some(scope) = support::Scope::new("idempotency_records_get_the_age_retention_as_ttl")
    else {
        return;
    };
    let store = scope.store();
    let pttl = |key: &str| -> i64 {
        ::redis::cmd("PTTL")
            .arg(format!("{}:k:1:/:{key}", scope.prefix))
            .query(&mut raw(&scope.url))
            .unwrap()
    };
    store
        .append_once("k1".into(), entry("/", &[], &[], "1"))
        .await
        .unwrap();
    assert_eq!(pttl("k1"), -1, "no age retention yet: no TTL");
    let hour = Retention {
        max_age: Some(Duration::from_secs(3600)),
        max_count: None,
    };
    store.trim(hour, &[], i64::MIN).await.unwrap();
    store
        .append_once("k2".into(), entry("/", &[], &[], "2"))
        .await
        .unwrap();
    let ttl = pttl("k2");
    assert!(
        ttl > 3_600_000 && ttl <= 7_200_000,
        "the retention plus a margin: {ttl} ms"
    );
    store
        .trim(Retention::default(), &[], i64::MIN)
        .await
        .unwrap();
    store
        .append_once("k3".into(), entry("/", &[], &[], "3"))
        .await
        .unwrap();
    assert_eq!(pttl("k3"), -1, "no age retention any more: no TTL");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trimming_everything_leaves_no_index_behind() {
    let Some(scope) = support::Scope::new("trimming_everything_leaves_no_index_behind") else {
        return;
    };
    let store = scope.store();
    store
        .append(vec![
            entry("/", &["a", "b"], &["c"], "1"),
            entry("/x", &[], &[], "2"),
        ])
        .await
        .unwrap();
    store
        .append_once("key".into(), entry("/", &["a"], &[], "3"))
        .await
        .unwrap();
    store
        .save_session(session("gone", false, 10))
        .await
        .unwrap();
    store.save_session(session("live", true, 10)).await.unwrap();
    let all = Retention {
        max_age: None,
        max_count: Some(0),
    };
    assert_eq!(store.trim(all, &[], 1_000).await.unwrap(), 3);
    store.delete_session("live").await.unwrap();
    assert_eq!(
        keys_of(&scope.url, &scope.prefix),
        // `owners`: the nodes' session leases (this node held a session
        // connected; its entry goes at a trim once its lease lapsed).
        ["epoch", "log", "owners", "seq", "trimmed", "ts"],
        "only the counters, the leases and the (empty) log are left"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_and_odd_names_round_trip() {
    let Some(scope) = support::Scope::new("binary_and_odd_names_round_trip") else {
        return;
    };
    let store = scope.store();
    let mut odd = entry("/n:s", &["r:1", "", "é \"quoted\""], &["x:y"], "ev:t");
    odd.attachments = vec![Bytes::from(vec![0u8, 255, b':', b'\n']), Bytes::new()];
    let seq = store.append(vec![odd.clone()]).await.unwrap()[0];
    let read = store.read("/n:s", &rooms(&["r:1"]), 0, 10).await.unwrap();
    assert_eq!(read.len(), 1);
    assert_eq!((read[0].seq, &read[0].entry), (seq, &odd));
    // Namespaces and rooms that look alike stay apart.
    store
        .append(vec![entry("/n", &["s:r:1"], &[], "other")])
        .await
        .unwrap();
    assert_eq!(
        events(&store.read("/n:s", &rooms(&["r:1"]), 0, 10).await.unwrap()),
        ["ev:t"]
    );
    assert_eq!(
        events(&store.read("/n", &rooms(&["s:r:1"]), 0, 10).await.unwrap()),
        ["other"]
    );
    let pushed = store
        .inbox_push(
            "u:1",
            "m:x".into(),
            "[\"a:b\"]".into(),
            odd.attachments.clone(),
        )
        .await
        .unwrap();
    let pending = store.inbox_pending("u:1", 0, 10).await.unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(
        (
            pending[0].seq,
            pending[0].event.as_str(),
            pending[0].args.as_str()
        ),
        (pushed, "m:x", "[\"a:b\"]")
    );
    assert_eq!(pending[0].attachments, odd.attachments);
    assert!(store.inbox_pending("u", 0, 10).await.unwrap().is_empty());
    // Trimming finds every index of such names again.
    let all = Retention {
        max_age: None,
        max_count: Some(0),
    };
    assert_eq!(store.trim(all, &[], i64::MIN).await.unwrap(), 2);
    assert_eq!(
        keys_of(&scope.url, &scope.prefix),
        ["epoch", "i:u:1", "ia:u:1", "log", "seq", "trimmed", "ts"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_fails_fast_then_service_resumes_by_itself() {
    let Some(mut redis) =
        support::PrivateRedis::start("redis_down_fails_fast_then_service_resumes_by_itself")
    else {
        return;
    };
    let url = redis.url();
    let store = RedisStore::connect(&url, "down").unwrap();
    let epoch = store.epoch().to_owned();
    let first = store
        .append(vec![entry("/", &["a"], &[], "before")])
        .await
        .unwrap()[0];
    store
        .save_session(session("p1", true, now_ms()))
        .await
        .unwrap();
    let mut feed = store
        .shared_feed()
        .expect("a shared store has a feed")
        .feed(first);

    tokio::task::block_in_place(|| redis.stop());
    let started = Instant::now();
    assert!(is_unavailable(
        &store.append(vec![entry("/", &["a"], &[], "lost")]).await
    ));
    assert!(is_unavailable(
        &store.read("/", &rooms(&["a"]), 0, 10).await
    ));
    assert!(is_unavailable(&store.bounds().await));
    assert!(is_unavailable(&store.load_session("p1").await));
    let feed_failed = tokio::time::timeout(Duration::from_secs(15), feed.next()).await;
    assert!(
        matches!(
            feed_failed,
            Ok(Some(Err(
                StoreError::Unavailable(_) | StoreError::Backend { .. }
            )))
        ),
        "{feed_failed:?}"
    );
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_secs(15),
        "failures come within bounds: {elapsed:?}"
    );

    tokio::task::block_in_place(|| redis.start_again());
    // Bounded retry: the connection comes back by itself.
    let deadline = Instant::now() + Duration::from_secs(20);
    let after = loop {
        match store.append(vec![entry("/", &["a"], &[], "after")]).await {
            Ok(seqs) => break seqs[0],
            Err(e) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
                let _ = e;
            }
            Err(e) => panic!("Redis is back but the store is not: {e}\n{}", redis.log()),
        }
    };
    assert_eq!(after, first + 1, "nothing of the failed append was kept");
    assert_eq!(
        events(&store.read("/", &rooms(&["a"]), 0, 10).await.unwrap()),
        ["before", "after"]
    );
    assert!(store.load_session("p1").await.unwrap().is_some());
    let again = RedisStore::connect(&url, "down").unwrap();
    assert_eq!(again.epoch(), epoch, "an AOF restart keeps the life");
    let mut feed = store
        .shared_feed()
        .expect("a shared store has a feed")
        .feed(first);
    assert_eq!(events(&take(&mut feed, 1).await), ["after"]);
}
