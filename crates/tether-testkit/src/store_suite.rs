//! The `Store` behaviour suite: what every backend must do. Included by
//! tests/store.rs (memory, SQLite) and tests/redis_store.rs (Redis).
#![allow(dead_code)]

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tether::store::prelude::*;
use tether::store::{
    now_ms, Append, AppendOnce, NewEntry, Retention, SessionRecord, StreamRetention, Target,
};

// ---------------------------------------------------------------------------
// Helpers

pub fn entry(nsp: &str, rooms: &[&str], except: &[&str], event: &str) -> NewEntry {
    NewEntry {
        target: Target {
            nsp: nsp.to_owned(),
            rooms: rooms.iter().map(|r| r.to_string()).collect(),
            except: except.iter().map(|r| r.to_string()).collect(),
        },
        event: event.to_owned(),
        args: format!(r#"["{event}",{{"n":1}}]"#),
        attachments: Vec::new(),
    }
}

pub fn rooms(names: &[&str]) -> Vec<String> {
    names.iter().map(|r| r.to_string()).collect()
}

pub fn events(entries: &[tether::store::Entry]) -> Vec<String> {
    entries.iter().map(|e| e.entry.event.clone()).collect()
}

pub fn session(pid: &str, connected: bool, updated_ms: i64) -> SessionRecord {
    SessionRecord {
        pid: pid.to_owned(),
        sid: format!("sid-{pid}"),
        nsp: "/".to_owned(),
        rooms: rooms(&[&format!("sid-{pid}"), "lobby"]),
        data: Some(r#"{"user":"ann"}"#.to_owned()),
        user: Some("ann".to_owned()),
        start_seq: 7,
        connected,
        updated_ms,
    }
}

pub fn clock_past(ts_ms: i64) {
    while now_ms() <= ts_ms {
        std::thread::yield_now();
    }
}

// ---------------------------------------------------------------------------
// The suite

pub async fn append_order_and_positions(store: Arc<dyn Store>) {
    assert!(!store.epoch().is_empty());
    let mut first = entry("/", &["a"], &[], "one");
    first.attachments = vec![
        Bytes::from_static(b"\x00\x01\x02"),
        Bytes::new(),
        Bytes::from(vec![7u8; 300]),
    ];
    let seqs = store
        .append(vec![
            first.clone(),
            entry("/", &[], &[], "two"),
            entry("/", &["a"], &[], "three"),
        ])
        .await
        .unwrap();
    assert_eq!(seqs.len(), 3);
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    assert!(seqs[0] >= 1);

    let more = store
        .append(vec![entry("/", &["a"], &[], "four")])
        .await
        .unwrap();
    assert!(more[0] > seqs[2]);
    assert!(store.append(vec![]).await.unwrap().is_empty());

    let read = store.read("/", &rooms(&["a"]), 0, 100).await.unwrap();
    assert_eq!(events(&read), ["one", "two", "three", "four"]);
    assert_eq!(
        read.iter().map(|e| e.seq).collect::<Vec<_>>(),
        [seqs[0], seqs[1], seqs[2], more[0]]
    );
    assert_eq!(
        read[0].entry, first,
        "the entry comes back as appended, attachments included"
    );
    let now = now_ms();
    assert!(read.iter().all(|e| e.ts_ms > 0 && e.ts_ms <= now));
    assert!(read.windows(2).all(|w| w[0].ts_ms <= w[1].ts_ms));
}

pub async fn read_filters_rooms_namespaces_and_except(store: Arc<dyn Store>) {
    store
        .append(vec![
            entry("/", &["a"], &[], "to-a"),
            entry("/", &["b"], &[], "to-b"),
            entry("/", &[], &[], "to-all"),
            entry("/", &["a"], &["c"], "to-a-but-c"),
            entry("/", &["a", "b"], &[], "to-a-and-b"),
            entry("/", &[], &["b"], "to-all-but-b"),
            entry("/admin", &["a"], &[], "admin-a"),
            entry("/admin", &[], &[], "admin-all"),
        ])
        .await
        .unwrap();

    let only_a = store.read("/", &rooms(&["a"]), 0, 100).await.unwrap();
    assert_eq!(
        events(&only_a),
        ["to-a", "to-all", "to-a-but-c", "to-a-and-b", "to-all-but-b"]
    );

    let a_and_c = store
        .read("/", &rooms(&["sid1", "a", "c"]), 0, 100)
        .await
        .unwrap();
    assert_eq!(
        events(&a_and_c),
        ["to-a", "to-all", "to-a-and-b", "to-all-but-b"]
    );

    let a_and_b = store.read("/", &rooms(&["a", "b"]), 0, 100).await.unwrap();
    assert_eq!(
        events(&a_and_b),
        ["to-a", "to-b", "to-all", "to-a-but-c", "to-a-and-b"],
        "an entry to two rooms comes once"
    );

    let none = store.read("/", &[], 0, 100).await.unwrap();
    assert_eq!(
        events(&none),
        ["to-all", "to-all-but-b"],
        "no room: the whole-namespace stream only"
    );

    let unknown = store.read("/", &rooms(&["zzz"]), 0, 100).await.unwrap();
    assert_eq!(events(&unknown), ["to-all", "to-all-but-b"]);

    let admin = store.read("/admin", &rooms(&["a"]), 0, 100).await.unwrap();
    assert_eq!(events(&admin), ["admin-a", "admin-all"]);

    assert!(store
        .read("/nobody", &rooms(&["a"]), 0, 100)
        .await
        .unwrap()
        .is_empty());
    assert!(store
        .read("/", &rooms(&["a"]), 0, 0)
        .await
        .unwrap()
        .is_empty());
}

pub async fn read_pages_with_after_and_limit(store: Arc<dyn Store>) {
    let mut expected = Vec::new();
    for i in 0..25 {
        store
            .append(vec![entry("/", &["a"], &[], &format!("a{i}"))])
            .await
            .unwrap();
        store
            .append(vec![entry("/", &["b"], &[], &format!("b{i}"))])
            .await
            .unwrap();
        expected.push(format!("a{i}"));
    }
    let mut got = Vec::new();
    let mut after = 0;
    let mut pages = Vec::new();
    loop {
        let page = store.read("/", &rooms(&["a"]), after, 10).await.unwrap();
        pages.push(page.len());
        let Some(last) = page.last() else { break };
        assert!(page.iter().all(|e| e.seq > after));
        after = last.seq;
        got.extend(events(&page));
    }
    assert_eq!(pages, [10, 10, 5, 0]);
    assert_eq!(got, expected);
    assert!(store
        .read("/", &rooms(&["a"]), u64::MAX, 10)
        .await
        .unwrap()
        .is_empty());
}

pub async fn history_pages_backwards(store: Arc<dyn Store>) {
    for i in 0..25 {
        store
            .append(vec![
                entry("/", &["a"], &[], &format!("a{i}")),
                entry("/", &["b"], &[], &format!("b{i}")),
            ])
            .await
            .unwrap();
    }
    store
        .append(vec![
            entry("/", &[], &[], "all-1"),
            entry("/", &["a"], &["a"], "a-but-a"),
        ])
        .await
        .unwrap();
    store
        .append(vec![entry("/", &[], &[], "all-2")])
        .await
        .unwrap();

    let mut before = u64::MAX;
    let mut pages = Vec::new();
    loop {
        let page = store.history("/", Some("a"), before, 10).await.unwrap();
        if page.is_empty() {
            break;
        }
        assert!(
            page.windows(2).all(|w| w[0].seq < w[1].seq),
            "oldest first within a page"
        );
        before = page[0].seq;
        pages.push(events(&page));
    }
    assert_eq!(pages.len(), 3);
    assert_eq!(
        pages[0],
        (15..25).map(|i| format!("a{i}")).collect::<Vec<_>>(),
        "newest page first"
    );
    assert_eq!(
        pages[1],
        (5..15).map(|i| format!("a{i}")).collect::<Vec<_>>()
    );
    assert_eq!(
        pages[2],
        (0..5).map(|i| format!("a{i}")).collect::<Vec<_>>()
    );

    let whole = store.history("/", None, u64::MAX, 10).await.unwrap();
    assert_eq!(events(&whole), ["all-1", "all-2"]);
    let older = store.history("/", None, whole[1].seq, 10).await.unwrap();
    assert_eq!(events(&older), ["all-1"]);
    assert!(store
        .history("/other", Some("a"), u64::MAX, 10)
        .await
        .unwrap()
        .is_empty());
}

pub async fn append_once_first_time_and_duplicate(store: Arc<dyn Store>) {
    let first = store
        .append_once("k1".into(), entry("/", &["a"], &[], "once"))
        .await
        .unwrap();
    let AppendOnce::Appended(seq) = first else {
        panic!("first time: {first:?}")
    };
    store
        .append(vec![entry("/", &["a"], &[], "between")])
        .await
        .unwrap();
    let again = store
        .append_once("k1".into(), entry("/", &["a"], &[], "once-retry"))
        .await
        .unwrap();
    assert_eq!(again, AppendOnce::Duplicate(seq));
    assert_eq!(again.seq(), seq);

    let read = store.read("/", &rooms(&["a"]), 0, 100).await.unwrap();
    assert_eq!(
        events(&read),
        ["once", "between"],
        "the duplicate appended nothing"
    );

    // Keys are per namespace.
    let other = store
        .append_once("k1".into(), entry("/chat", &[], &[], "other-nsp"))
        .await
        .unwrap();
    assert!(matches!(other, AppendOnce::Appended(s) if s > seq));
}

/// One batch of plain and keyed entries: positions in batch order, a key
/// seen before (earlier, or earlier in the same batch) stores nothing and
/// answers the first position.
pub async fn append_batch_mixes_plain_and_keyed(store: Arc<dyn Store>) {
    let first = store
        .append_once("k1".into(), entry("/", &["a"], &[], "first"))
        .await
        .unwrap();
    let out = store
        .append_batch(vec![
            Append::plain(entry("/", &["a"], &[], "p1")),
            Append::keyed("k1", entry("/", &["a"], &[], "k1-again")),
            Append::keyed("k2", entry("/", &["a"], &[], "k2")),
            Append::plain(entry("/", &["a"], &[], "p2")),
            Append::keyed("k2", entry("/", &["a"], &[], "k2-again")),
            Append::keyed("k2", entry("/chat", &[], &[], "k2-other-nsp")),
        ])
        .await
        .unwrap();
    let s = first.seq();
    assert_eq!(
        out,
        vec![
            AppendOnce::Appended(s + 1),
            AppendOnce::Duplicate(s),
            AppendOnce::Appended(s + 2),
            AppendOnce::Appended(s + 3),
            AppendOnce::Duplicate(s + 2),
            AppendOnce::Appended(s + 4),
        ]
    );
    let events: Vec<String> = store
        .read("/", &rooms(&["a"]), 0, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.entry.event)
        .collect();
    assert_eq!(events, ["first", "p1", "k2", "p2"]);
    assert!(store.append_batch(vec![]).await.unwrap().is_empty());
}

pub async fn append_once_concurrent_same_key(store: Arc<dyn Store>) {
    let (x, y) = tokio::join!(
        store.append_once("same".into(), entry("/", &["a"], &[], "x")),
        store.append_once("same".into(), entry("/", &["a"], &[], "y")),
    );
    let (x, y) = (x.unwrap(), y.unwrap());
    assert_eq!(x.seq(), y.seq());
    let appended = [&x, &y]
        .iter()
        .filter(|r| matches!(r, AppendOnce::Appended(_)))
        .count();
    assert_eq!(appended, 1, "{x:?} {y:?}");
    let read = store.read("/", &rooms(&["a"]), 0, 100).await.unwrap();
    assert_eq!(read.len(), 1);
    assert_eq!(read[0].seq, x.seq());

    // The same key twice from 20 tasks at once: one entry.
    let mut tasks = Vec::new();
    for i in 0..20 {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            store
                .append_once("race".into(), entry("/", &["r"], &[], &format!("r{i}")))
                .await
        }));
    }
    let mut seqs = HashSet::new();
    let mut appended = 0;
    for task in tasks {
        let result = task.await.unwrap().unwrap();
        appended += matches!(result, AppendOnce::Appended(_)) as usize;
        seqs.insert(result.seq());
    }
    assert_eq!((appended, seqs.len()), (1, 1));
    assert_eq!(
        store.read("/", &rooms(&["r"]), 0, 100).await.unwrap().len(),
        1
    );
}

pub async fn sessions_save_load_replace_delete(store: Arc<dyn Store>) {
    assert_eq!(store.load_session("p1").await.unwrap(), None);
    let record = session("p1", true, 1_000);
    store.save_session(record.clone()).await.unwrap();
    store
        .save_session(session("p2", true, 1_000))
        .await
        .unwrap();
    assert_eq!(
        store.load_session("p1").await.unwrap(),
        Some(record.clone())
    );

    let replaced = SessionRecord {
        rooms: rooms(&["sid-p1"]),
        data: None,
        user: None,
        connected: false,
        updated_ms: 2_000,
        ..record
    };
    store.save_session(replaced.clone()).await.unwrap();
    assert_eq!(store.load_session("p1").await.unwrap(), Some(replaced));

    store.delete_session("p1").await.unwrap();
    assert_eq!(store.load_session("p1").await.unwrap(), None);
    store.delete_session("p1").await.unwrap();
    assert_eq!(
        store.load_session("p2").await.unwrap().map(|s| s.pid),
        Some("p2".to_owned())
    );
}

pub async fn inbox_push_pending_ack(store: Arc<dyn Store>) {
    let a1 = store
        .inbox_push("ann", "m".into(), r#"["one"]"#.into(), vec![])
        .await
        .unwrap();
    let a2 = store
        .inbox_push(
            "ann",
            "m".into(),
            r#"["two"]"#.into(),
            vec![Bytes::from_static(b"bin")],
        )
        .await
        .unwrap();
    let a3 = store
        .inbox_push("ann", "m".into(), r#"["three"]"#.into(), vec![])
        .await
        .unwrap();
    let b1 = store
        .inbox_push("bob", "m".into(), r#"["bob"]"#.into(), vec![])
        .await
        .unwrap();
    assert!(a1 < a2 && a2 < a3);
    assert!(b1 >= 1);

    let pending = store.inbox_pending("ann", 0, 100).await.unwrap();
    assert_eq!(
        pending.iter().map(|e| e.seq).collect::<Vec<_>>(),
        [a1, a2, a3]
    );
    assert_eq!(pending[0].args, r#"["one"]"#);
    assert_eq!(pending[1].attachments, [Bytes::from_static(b"bin")]);
    assert!(pending.iter().all(|e| e.event == "m" && e.ts_ms > 0));

    let page = store.inbox_pending("ann", 0, 2).await.unwrap();
    assert_eq!(page.iter().map(|e| e.seq).collect::<Vec<_>>(), [a1, a2]);
    let after = store.inbox_pending("ann", a1, 100).await.unwrap();
    assert_eq!(after.iter().map(|e| e.seq).collect::<Vec<_>>(), [a2, a3]);

    store.inbox_ack("ann", a2).await.unwrap();
    let pending = store.inbox_pending("ann", 0, 100).await.unwrap();
    assert_eq!(pending.iter().map(|e| e.seq).collect::<Vec<_>>(), [a3]);
    // An older ack does not move the position back.
    store.inbox_ack("ann", a1).await.unwrap();
    assert_eq!(store.inbox_pending("ann", 0, 100).await.unwrap().len(), 1);

    let bob = store.inbox_pending("bob", 0, 100).await.unwrap();
    assert_eq!(
        bob.iter().map(|e| e.seq).collect::<Vec<_>>(),
        [b1],
        "another user's ack does not touch bob"
    );

    store.inbox_ack("ann", a3).await.unwrap();
    assert!(store.inbox_pending("ann", 0, 100).await.unwrap().is_empty());
    let a4 = store
        .inbox_push("ann", "m".into(), r#"["four"]"#.into(), vec![])
        .await
        .unwrap();
    assert!(a4 > a3);
    let pending = store.inbox_pending("ann", 0, 100).await.unwrap();
    assert_eq!(pending.iter().map(|e| e.seq).collect::<Vec<_>>(), [a4]);

    // An ack ahead of every push: later pushes are still pending.
    store.inbox_ack("cid", 50).await.unwrap();
    let c = store
        .inbox_push("cid", "m".into(), "[]".into(), vec![])
        .await
        .unwrap();
    assert!(c > 50);
    assert_eq!(store.inbox_pending("cid", 0, 10).await.unwrap().len(), 1);
    assert!(store
        .inbox_pending("nobody", 0, 10)
        .await
        .unwrap()
        .is_empty());
}

pub async fn trim_by_count(store: Arc<dyn Store>) {
    let mut main = Vec::new();
    for i in 0..10 {
        let key = format!("k{i}");
        let result = store
            .append_once(key, entry("/", &["a"], &[], &format!("m{i}")))
            .await
            .unwrap();
        main.push(result.seq());
        store
            .append(vec![entry("/other", &["a"], &[], &format!("o{i}"))])
            .await
            .unwrap();
    }
    let removed = store
        .trim(
            Retention {
                max_age: None,
                max_count: Some(4),
            },
            &[],
            i64::MIN,
        )
        .await
        .unwrap();
    assert_eq!(removed, 12, "6 of '/' and 6 of '/other'");
    let kept = store.read("/", &rooms(&["a"]), 0, 100).await.unwrap();
    assert_eq!(events(&kept), ["m6", "m7", "m8", "m9"]);
    let other = store.read("/other", &rooms(&["a"]), 0, 100).await.unwrap();
    assert_eq!(events(&other), ["o6", "o7", "o8", "o9"]);
    let history = store.history("/", Some("a"), u64::MAX, 100).await.unwrap();
    assert_eq!(history.len(), 4);

    // Idempotency records go with their entries.
    let again = store
        .append_once("k0".into(), entry("/", &["a"], &[], "m0-again"))
        .await
        .unwrap();
    assert!(
        matches!(again, AppendOnce::Appended(s) if s > main[9]),
        "{again:?}"
    );
    let kept_key = store
        .append_once("k9".into(), entry("/", &["a"], &[], "m9-again"))
        .await
        .unwrap();
    assert_eq!(kept_key, AppendOnce::Duplicate(main[9]));

    let (last, oldest) = store.bounds().await.unwrap();
    assert!(last > main[9]);
    assert!(oldest > main[5], "positions before {oldest} may be gone");
    assert!(oldest <= main[6] + 1);

    let none = Retention {
        max_age: None,
        max_count: Some(100),
    };
    assert_eq!(store.trim(none, &[], i64::MIN).await.unwrap(), 0);
}

pub async fn trim_by_age(store: Arc<dyn Store>) {
    let seqs = store
        .append(vec![
            entry("/", &["a"], &[], "old-1"),
            entry("/", &[], &[], "old-2"),
        ])
        .await
        .unwrap();
    let hour = Retention {
        max_age: Some(Duration::from_secs(3600)),
        max_count: None,
    };
    assert_eq!(
        store.trim(hour, &[], i64::MIN).await.unwrap(),
        0,
        "nothing is an hour old"
    );
    assert_eq!(
        store.read("/", &rooms(&["a"]), 0, 100).await.unwrap().len(),
        2
    );

    let ts = store.read("/", &rooms(&["a"]), 0, 100).await.unwrap()[1].ts_ms;
    clock_past(ts);
    let zero = Retention {
        max_age: Some(Duration::ZERO),
        max_count: None,
    };
    assert_eq!(store.trim(zero, &[], i64::MIN).await.unwrap(), 2);
    assert!(store
        .read("/", &rooms(&["a"]), 0, 100)
        .await
        .unwrap()
        .is_empty());
    assert!(store
        .history("/", None, u64::MAX, 100)
        .await
        .unwrap()
        .is_empty());
    let next = store
        .append(vec![entry("/", &["a"], &[], "new")])
        .await
        .unwrap();
    assert!(next[0] > seqs[1]);
    assert_eq!(
        events(&store.read("/", &rooms(&["a"]), 0, 100).await.unwrap()),
        ["new"]
    );
}

pub async fn trim_everything_never_reuses_positions(store: Arc<dyn Store>) {
    let seqs = store
        .append(vec![
            entry("/", &["a"], &[], "1"),
            entry("/x", &["a"], &[], "2"),
            entry("/", &[], &[], "3"),
        ])
        .await
        .unwrap();
    let all = Retention {
        max_age: None,
        max_count: Some(0),
    };
    assert_eq!(store.trim(all, &[], i64::MIN).await.unwrap(), 3);
    assert!(store
        .read("/", &rooms(&["a"]), 0, 100)
        .await
        .unwrap()
        .is_empty());
    assert!(store
        .read("/x", &rooms(&["a"]), 0, 100)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(store.bounds().await.unwrap(), (seqs[2], seqs[2] + 1));

    let next = store
        .append(vec![entry("/", &["a"], &[], "4")])
        .await
        .unwrap();
    assert_eq!(
        next,
        [seqs[2] + 1],
        "positions continue after trimming everything"
    );
    let read = store.read("/", &rooms(&["a"]), 0, 100).await.unwrap();
    assert_eq!(events(&read), ["4"]);
}

pub async fn trim_drops_old_disconnected_sessions(store: Arc<dyn Store>) {
    store
        .save_session(session("live-old", true, 100))
        .await
        .unwrap();
    store
        .save_session(session("gone-old", false, 100))
        .await
        .unwrap();
    store
        .save_session(session("gone-new", false, 5_000))
        .await
        .unwrap();
    store.trim(Retention::default(), &[], 1_000).await.unwrap();
    assert!(
        store.load_session("live-old").await.unwrap().is_some(),
        "connected sessions stay"
    );
    assert!(store.load_session("gone-old").await.unwrap().is_none());
    assert!(store.load_session("gone-new").await.unwrap().is_some());
}

pub async fn bounds_track_last_and_oldest(store: Arc<dyn Store>) {
    assert_eq!(
        store.bounds().await.unwrap(),
        (0, 1),
        "empty: nothing handed out, nothing trimmed"
    );
    let seqs = store
        .append(vec![
            entry("/", &["a"], &[], "1"),
            entry("/", &["a"], &[], "2"),
            entry("/", &["a"], &[], "3"),
        ])
        .await
        .unwrap();
    assert_eq!(store.bounds().await.unwrap(), (seqs[2], 1));
    let two = Retention {
        max_age: None,
        max_count: Some(2),
    };
    assert_eq!(store.trim(two, &[], i64::MIN).await.unwrap(), 1);
    assert_eq!(store.bounds().await.unwrap(), (seqs[2], seqs[0] + 1));
    // The inbox has its own positions.
    store
        .inbox_push("ann", "m".into(), "[]".into(), vec![])
        .await
        .unwrap();
    assert_eq!(store.bounds().await.unwrap().0, seqs[2]);
}

pub async fn concurrent_appends_from_many_tasks(store: Arc<dyn Store>) {
    const TASKS: usize = 50;
    const EACH: usize = 20;
    let mut handles = Vec::new();
    for t in 0..TASKS {
        let store = Arc::clone(&store);
        handles.push(tokio::spawn(async move {
            let mut seqs = Vec::with_capacity(EACH);
            for i in 0..EACH {
                let room = format!("r{}", t % 5);
                let seq = store
                    .append(vec![entry("/", &[&room], &[], &format!("t{t}-{i}"))])
                    .await
                    .unwrap();
                seqs.push(seq[0]);
            }
            seqs
        }));
    }
    let mut all = HashSet::new();
    for handle in handles {
        let seqs = handle.await.unwrap();
        assert!(
            seqs.windows(2).all(|w| w[0] < w[1]),
            "a task's appends keep their order"
        );
        all.extend(seqs);
    }
    assert_eq!(all.len(), TASKS * EACH, "every position is distinct");

    let every_room = rooms(&["r0", "r1", "r2", "r3", "r4"]);
    let mut read = Vec::new();
    let mut after = 0;
    loop {
        let page = store.read("/", &every_room, after, 128).await.unwrap();
        let Some(last) = page.last() else { break };
        after = last.seq;
        read.extend(page);
    }
    assert_eq!(read.len(), TASKS * EACH, "every entry is readable");
    assert!(read.iter().all(|e| all.contains(&e.seq)));
    let mut next = vec![0usize; TASKS];
    for e in &read {
        let (t, i) = e.entry.event[1..].split_once('-').unwrap();
        let (t, i): (usize, usize) = (t.parse().unwrap(), i.parse().unwrap());
        assert_eq!(
            i, next[t],
            "task {t}'s entries come in the order it appended them"
        );
        next[t] += 1;
    }
    // One room alone sees exactly its tasks' entries.
    let r3 = store.read("/", &rooms(&["r3"]), 0, 10_000).await.unwrap();
    assert_eq!(r3.len(), TASKS / 5 * EACH);
}

/// Per-stream retention (stores whose `supports_stream_retention` is true):
/// each stream by its own limits, an entry shared by two streams kept while
/// either keeps it, trim marks per stream.
pub async fn per_stream_retention(store: Arc<dyn Store>) {
    assert!(store.supports_stream_retention());
    let mut seq_of = std::collections::HashMap::new();
    let mut add = |seqs: Vec<u64>, names: Vec<String>| {
        for (seq, name) in seqs.into_iter().zip(names) {
            seq_of.insert(name, seq);
        }
    };
    let mut batch = vec![entry("/", &["typing", "news"], &[], "shared")];
    let mut names = vec!["shared".to_owned()];
    batch.push(entry("/", &["news"], &[], "n0"));
    names.push("n0".into());
    for i in 0..10 {
        batch.push(entry("/", &["typing"], &[], &format!("t{i}")));
        names.push(format!("t{i}"));
    }
    for i in 0..5 {
        batch.push(entry("/", &["chat"], &[], &format!("c{i}")));
        names.push(format!("c{i}"));
    }
    for name in ["n1", "n2"] {
        batch.push(entry("/", &["news"], &[], name));
        names.push(name.into());
    }
    add(store.append(batch).await.unwrap(), names);
    let newest = store.read("/", &rooms(&["news"]), 0, 100).await.unwrap();
    clock_past(newest.last().unwrap().ts_ms);

    // By default everything has expired; "typing" keeps its last 3 and
    // "news" keeps an hour.
    let default = Retention {
        max_age: Some(Duration::ZERO),
        max_count: None,
    };
    let streams = vec![
        StreamRetention::new("/", "typing").max_count(3),
        StreamRetention::new("/", "news").max_age(Duration::from_secs(3600)),
    ];
    let removed = store.trim(default, &streams, i64::MIN).await.unwrap();
    assert_eq!(removed, 5 + 7, "every chat entry and t0..t6");
    let typing = store.read("/", &rooms(&["typing"]), 0, 100).await.unwrap();
    assert_eq!(
        events(&typing),
        ["shared", "t7", "t8", "t9"],
        "'shared' is kept by 'news'"
    );
    let news = store.read("/", &rooms(&["news"]), 0, 100).await.unwrap();
    assert_eq!(events(&news), ["shared", "n0", "n1", "n2"]);
    assert!(store
        .read("/", &rooms(&["chat"]), 0, 100)
        .await
        .unwrap()
        .is_empty());

    // Marks per stream: a reader of "news" lost nothing; one of "typing"
    // or "chat" standing before the trimmed entries did.
    assert_eq!(store.trimmed("/", &rooms(&["news", ""])).await.unwrap(), 0);
    assert_eq!(
        store.trimmed("/", &rooms(&["typing"])).await.unwrap(),
        seq_of["t6"]
    );
    assert_eq!(
        store.trimmed("/", &rooms(&["news", "chat"])).await.unwrap(),
        seq_of["c4"]
    );
    assert_eq!(store.trimmed("/other", &rooms(&["chat"])).await.unwrap(), 0);

    // Trimming again steps over the kept entries and removes nothing.
    assert_eq!(store.trim(default, &streams, i64::MIN).await.unwrap(), 0);
    // Without the overrides, the default takes the rest.
    assert_eq!(store.trim(default, &[], i64::MIN).await.unwrap(), 7);
    assert!(store
        .read("/", &rooms(&["typing", "news"]), 0, 100)
        .await
        .unwrap()
        .is_empty());
}
