//! How the server behaves when its store is slow or down, with a store the
//! test controls (tether_testkit::faulty_store):
//! - an acknowledgement waits for the session change made before it (a room
//!   joined) to be stored: a crash right after the ack cannot recover the
//!   session without the room;
//! - a CONNECT while the store is down closes the connection (the client
//!   retries with its backoff) instead of a CONNECT_ERROR, which the official
//!   clients take as final; once the store is back, clients get in;
//! - an emit while the store fails reports the failure (`EmitError::Store`,
//!   the `StoreError` as its source) instead of `Ok(0)`, and works again
//!   once the store is back.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tether::store::Sessions;
use tether::{Config, EmitError, Event, Socket, SocketIo};
use tokio_websockets::{ClientBuilder, Message};

use faulty_store::FaultyStore;
use tether_testkit::faulty_store;

/// Longest wait for anything expected.
const STEP: Duration = Duration::from_secs(5);

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
    let store = Arc::new(FaultyStore::new());
    store.open_saves(false);
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

    store.open_saves(true);
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

/// Opens a WebSocket session and sends CONNECT to "/"; returns the stream and
/// the first Socket.IO-level answer (or "closed").
async fn try_connect(
    addr: std::net::SocketAddr,
) -> (
    tokio_websockets::WebSocketStream<tokio_websockets::MaybeTlsStream<tokio::net::TcpStream>>,
    String,
) {
    let uri = format!("ws://{addr}/socket.io/?EIO=4&transport=websocket");
    let (mut ws, _) = ClientBuilder::new()
        .uri(&uri)
        .unwrap()
        .connect()
        .await
        .unwrap();
    assert!(next_text(&mut ws).await.starts_with('0'));
    ws.send(Message::text("40")).await.unwrap();
    let answer = loop {
        match tokio::time::timeout(STEP, ws.next())
            .await
            .expect("an answer in time")
        {
            Some(Ok(msg)) if msg.is_text() => break msg.as_text().unwrap_or_default().to_owned(),
            Some(Ok(msg)) if msg.is_close() => break "closed".to_owned(),
            Some(Ok(_)) => continue,
            Some(Err(_)) | None => break "closed".to_owned(),
        }
    };
    (ws, answer)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_while_the_store_is_down_closes_then_works_once_it_is_back() {
    let store = Arc::new(FaultyStore::new());
    let io = SocketIo::with_store(Config::default(), store.clone());
    io.ns("/", |socket: Socket| async move {
        socket.on("echo", |_: Socket, mut ev: Event| async move {
            let args = ev.take_args();
            let _ = ev.ack(args);
        });
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(io.clone().serve(listener));

    // A client connected before the store goes down keeps its connection.
    let (mut before, hello) = try_connect(addr).await;
    assert!(hello.starts_with("40{"), "{hello}");
    // A stored event reaches it once its catch-up from the store is over (a
    // catch-up that finds the store down closes the transport, by design).
    io.emit("hello", ("x",)).unwrap();
    let event = next_text(&mut before).await;
    assert!(event.starts_with(r#"42["hello","x","t."#), "{event}");
    store.set_down(true);

    // Down: the answer is the Engine.IO close packet (or the close itself),
    // never a CONNECT_ERROR ("44..."), which would stop the client for good.
    for _ in 0..3 {
        let (_ws, answer) = try_connect(addr).await;
        assert!(answer == "1" || answer == "closed", "{answer}");
    }
    before
        .send(Message::text(r#"421["echo","still here"]"#))
        .await
        .unwrap();
    assert_eq!(next_text(&mut before).await, r#"431["still here"]"#);

    // Back: the next try gets in.
    store.set_down(false);
    let (_ws, answer) = try_connect(addr).await;
    assert!(answer.starts_with("40{"), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emit_while_the_store_fails_reports_it_then_works_once_it_is_back() {
    let store = Arc::new(FaultyStore::new());
    let io = SocketIo::with_store(Config::default(), store.clone());
    io.ns("/", |_: Socket| async move {});
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(io.clone().serve(listener));
    let (mut ws, hello) = try_connect(addr).await;
    assert!(hello.starts_with("40{"), "{hello}");
    assert_eq!(io.emit("before", ("x",)).unwrap(), 0);
    assert!(next_text(&mut ws)
        .await
        .starts_with(r#"42["before","x","t."#));

    // Down: an emit does not wait for its commit, so the first ones may
    // still be taken; once a commit failed, emits say so.
    store.set_down(true);
    let err = tokio::time::timeout(STEP, async {
        loop {
            match io.emit("while down", ("x",)) {
                Ok(n) => assert_eq!(n, 0),
                Err(e) => break e,
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("an emit reports the store failure");
    assert!(matches!(err, EmitError::Store(_)), "{err:?}");
    let source = std::error::Error::source(&err).expect("the store error as source");
    assert!(
        source.downcast_ref::<tether::store::StoreError>().is_some(),
        "{source:?}"
    );
    // To one socket too.
    let socket = io.sockets().pop().expect("the connected socket");
    assert!(matches!(socket.emit("one", ()), Err(EmitError::Store(_))));

    // Back: emits are taken again (a health check sees the store working),
    // and delivered.
    store.set_down(false);
    tokio::time::timeout(STEP, async {
        while io.emit("after", ("y",)).is_err() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("emits work again once the store is back");
    loop {
        let text = next_text(&mut ws).await;
        if text.starts_with(r#"42["after","y","t."#) {
            break;
        }
        assert!(
            !text.contains("while down"),
            "an emit refused was sent: {text}"
        );
    }
}
