//! The history API for apps: pages of a room's (or the whole namespace's)
//! stored events, before or after a position, as clients received them.

use std::sync::Arc;

use tether::store::MemoryStore;
use tether::{Config, HistoryError, Socket, SocketIo};

async fn server_with(published: &[(&str, u32)]) -> SocketIo {
    let io = SocketIo::with_store(Config::default(), Arc::new(MemoryStore::new()));
    io.ns("/", |_: Socket| async move {});
    for (room, i) in published {
        let op = io.of("/").expect("namespace /");
        let op = if room.is_empty() { op } else { op.to(*room) };
        op.publish("m", (format!("{room}:{i}"),))
            .await
            .expect("stored");
    }
    io
}

fn texts(page: &[tether::HistoryEntry]) -> Vec<String> {
    page.iter()
        .map(|e| e.args.get::<String>(0).expect("a string"))
        .collect()
}

#[tokio::test]
async fn pages_of_one_room_before_and_after() {
    // Room "a" interleaved with room "b" and whole-namespace events.
    let mut published = Vec::new();
    for i in 0..10 {
        published.push(("a", i));
        published.push(("b", i));
        if i % 3 == 0 {
            published.push(("", i));
        }
    }
    let io = server_with(&published).await;
    let a = io.history("/").room("a").limit(4);

    let latest = a.latest().await.unwrap();
    assert_eq!(texts(&latest), ["a:6", "a:7", "a:8", "a:9"]);
    let older = a.before(latest[0].seq).await.unwrap();
    assert_eq!(texts(&older), ["a:2", "a:3", "a:4", "a:5"]);
    let oldest = a.before_offset(&older[0].offset).await.unwrap();
    assert_eq!(texts(&oldest), ["a:0", "a:1"]);
    assert!(a.before(oldest[0].seq).await.unwrap().is_empty());

    // Forward from a position: the room's entries only, never another's nor
    // the whole-namespace ones, pages full while there is more.
    let first = a.after(0).await.unwrap();
    assert_eq!(texts(&first), ["a:0", "a:1", "a:2", "a:3"]);
    let next = a.after_offset(&first[3].offset).await.unwrap();
    assert_eq!(texts(&next), ["a:4", "a:5", "a:6", "a:7"]);
    let last = a.after(next[3].seq).await.unwrap();
    assert_eq!(texts(&last), ["a:8", "a:9"]);
    assert!(last.iter().all(|e| e.event == "m" && e.ts_ms > 0));

    // The whole-namespace stream.
    let everyone = io.history("/").limit(100).after(0).await.unwrap();
    assert_eq!(texts(&everyone), [":0", ":3", ":6", ":9"]);
}

#[tokio::test]
async fn foreign_offsets_and_no_store_are_errors() {
    let io = server_with(&[("a", 0)]).await;
    let err = io
        .history("/")
        .room("a")
        .after_offset("t.someone-else.1")
        .await
        .unwrap_err();
    assert!(matches!(err, HistoryError::UnknownOffset(_)), "{err:?}");
    let plain = SocketIo::new(Config::default());
    let err = plain.history("/").latest().await.unwrap_err();
    assert!(matches!(err, HistoryError::NoStore), "{err:?}");
}
