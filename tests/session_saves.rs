//! With connection state recovery on, an acknowledgement waits for the
//! session change made before it (a room joined) to be stored: a crash right
//! after the ack cannot recover the session without the room.
//!
//! The store here is a [`MemoryStore`] whose session saves wait for a gate the
//! test opens, so the window between "joined" and "stored" is held open.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tether::store::{
    AppendOnce, BoxFuture, Entry, InboxEntry, MemoryStore, NewEntry, Retention, Seq, SessionRecord,
    Store, StoreError,
};
use tether::{Config, Event, Socket, SocketIo};
use tokio::sync::watch;
use tokio_websockets::{ClientBuilder, Message};

/// Longest wait for anything expected.
const STEP: Duration = Duration::from_secs(5);

/// A memory store whose `save_session` waits until `gate` is open.
struct GatedSaves {
    inner: MemoryStore,
    gate: watch::Receiver<bool>,
}

impl Store for GatedSaves {
    fn epoch(&self) -> &str {
        self.inner.epoch()
    }
    fn append(&self, entries: Vec<NewEntry>) -> BoxFuture<'_, Result<Vec<Seq>, StoreError>> {
        self.inner.append(entries)
    }
    fn append_once(
        &self,
        key: String,
        entry: NewEntry,
    ) -> BoxFuture<'_, Result<AppendOnce, StoreError>> {
        self.inner.append_once(key, entry)
    }
    fn read(
        &self,
        nsp: &str,
        rooms: &[String],
        after: Seq,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<Entry>, StoreError>> {
        self.inner.read(nsp, rooms, after, limit)
    }
    fn history(
        &self,
        nsp: &str,
        room: Option<&str>,
        before: Seq,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<Entry>, StoreError>> {
        self.inner.history(nsp, room, before, limit)
    }
    fn bounds(&self) -> BoxFuture<'_, Result<(Seq, Seq), StoreError>> {
        self.inner.bounds()
    }
    fn save_session(&self, record: SessionRecord) -> BoxFuture<'_, Result<(), StoreError>> {
        let mut gate = self.gate.clone();
        Box::pin(async move {
            let _ = gate.wait_for(|open| *open).await;
            self.inner.save_session(record).await
        })
    }
    fn load_session(&self, pid: &str) -> BoxFuture<'_, Result<Option<SessionRecord>, StoreError>> {
        self.inner.load_session(pid)
    }
    fn delete_session(&self, pid: &str) -> BoxFuture<'_, Result<(), StoreError>> {
        self.inner.delete_session(pid)
    }
    fn inbox_push(
        &self,
        user: &str,
        event: String,
        args: String,
        attachments: Vec<Bytes>,
    ) -> BoxFuture<'_, Result<Seq, StoreError>> {
        self.inner.inbox_push(user, event, args, attachments)
    }
    fn inbox_pending(
        &self,
        user: &str,
        after: Seq,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<InboxEntry>, StoreError>> {
        self.inner.inbox_pending(user, after, limit)
    }
    fn inbox_ack(&self, user: &str, upto: Seq) -> BoxFuture<'_, Result<(), StoreError>> {
        self.inner.inbox_ack(user, upto)
    }
    fn trim(
        &self,
        retention: Retention,
        sessions_before_ms: i64,
    ) -> BoxFuture<'_, Result<u64, StoreError>> {
        self.inner.trim(retention, sessions_before_ms)
    }
}

async fn next_text<S>(ws: &mut S) -> String
where
    S: futures_util::Stream<Item = Result<Message, tokio_websockets::Error>> + Unpin,
{
    loop {
        let msg = tokio::time::timeout(STEP, ws.next())
            .await
            .expect("a message in time")
            .expect("the connection is open")
            .expect("a message");
        if let Some(text) = msg.as_text() {
            return text.to_owned();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_ack_waits_for_the_session_save() {
    let (open, gate) = watch::channel(false);
    let store = Arc::new(GatedSaves {
        inner: MemoryStore::new(),
        gate,
    });
    let io = SocketIo::with_store(Config::default(), store.clone());
    io.ns("/", |socket: Socket| async move {
        socket.on("join", |socket: Socket, mut ev: Event| async move {
            if let Ok(room) = ev.args().get::<String>(0) {
                socket.join(room);
            }
            let _ = ev.ack(("joined",));
        });
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(io.clone().serve(listener));

    let uri = format!("ws://{addr}/socket.io/?EIO=4&transport=websocket");
    let (mut ws, _) = ClientBuilder::new()
        .uri(&uri)
        .unwrap()
        .connect()
        .await
        .unwrap();
    assert!(next_text(&mut ws).await.starts_with('0'));
    ws.send(Message::text("40")).await.unwrap();
    let hello = next_text(&mut ws).await;
    let hello: serde_json::Value = serde_json::from_str(hello.strip_prefix("40").unwrap()).unwrap();
    let pid = hello["pid"]
        .as_str()
        .expect("a private session id")
        .to_owned();

    ws.send(Message::text(r#"421["join","lobby"]"#))
        .await
        .unwrap();
    // The save is held: no ack may arrive (a bounded look, 300 ms).
    let early = tokio::time::timeout(Duration::from_millis(300), ws.next()).await;
    assert!(
        early.is_err(),
        "acked before the session was stored: {early:?}"
    );
    assert!(store.inner.load_session(&pid).await.unwrap().is_none());

    open.send_replace(true);
    assert_eq!(next_text(&mut ws).await, r#"431["joined"]"#);
    // When the ack arrived, the stored session already had the room.
    let record = store
        .inner
        .load_session(&pid)
        .await
        .unwrap()
        .expect("the session is stored");
    assert!(record.rooms.contains(&"lobby".to_owned()), "{record:?}");
}
