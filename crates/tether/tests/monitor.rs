//! `SocketIo::monitor` and `SocketIo::namespaces`, end to end with the Rust
//! client: a socket that connects is told with the rooms it starts in, then
//! its joins and leaves (each once: joining a room twice is told once), then,
//! when it disconnects, every room it left and its disconnection, in that
//! order; `namespaces()` counts the sockets of each namespace.

use std::time::Duration;

use tether::{Config, Event, Socket, SocketChange, SocketIo};
use tether_client::Client;
use tokio::sync::mpsc;

async fn within<T>(what: &str, fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), fut)
        .await
        .unwrap_or_else(|_| panic!("timed out: {what}"))
}

/// A change as compared here: (kind, nsp, id, room or reason).
fn describe(change: &SocketChange) -> Change {
    match change {
        SocketChange::Connected(s) => (
            "connected".into(),
            s.nsp().into(),
            s.id().into(),
            s.rooms().join(","),
        ),
        SocketChange::Joined { nsp, id, room } => {
            ("joined".into(), nsp.clone(), id.clone(), room.clone())
        }
        SocketChange::Left { nsp, id, room } => {
            ("left".into(), nsp.clone(), id.clone(), room.clone())
        }
        SocketChange::Disconnected { nsp, id, reason } => (
            "disconnected".into(),
            nsp.clone(),
            id.clone(),
            reason.as_str().into(),
        ),
    }
}

type Change = (String, String, String, String);

async fn next(rx: &mut mpsc::UnboundedReceiver<Change>) -> Change {
    within("a change", rx.recv()).await.expect("a change")
}

#[tokio::test]
async fn monitors_see_connections_rooms_and_disconnections() {
    let io = SocketIo::new(Config::default());
    io.ns("/", |socket: Socket| async move {
        socket.join("lobby");
        socket.on("enter", |socket: Socket, ev: Event| async move {
            let room: String = ev.args().get(0).unwrap_or_default();
            socket.join(room.clone());
            socket.join(room);
            let _ = socket.emit("entered", ());
        });
        socket.on("exit", |socket: Socket, ev: Event| async move {
            let room: String = ev.args().get(0).unwrap_or_default();
            socket.leave(&room);
            socket.leave(&room);
            let _ = socket.emit("exited", ());
        });
    });
    let (tx, mut rx) = mpsc::unbounded_channel();
    io.monitor(move |change| {
        let _ = tx.send(describe(change));
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(io.clone().serve(listener));

    let (seen_tx, mut seen) = mpsc::unbounded_channel::<&'static str>();
    let (t1, t2) = (seen_tx.clone(), seen_tx);
    let client = Client::builder(format!("http://127.0.0.1:{port}/"))
        .on("entered", move |_| {
            let t = t1.clone();
            async move {
                let _ = t.send("entered");
            }
        })
        .on("exited", move |_| {
            let t = t2.clone();
            async move {
                let _ = t.send("exited");
            }
        })
        .build()
        .await
        .unwrap();
    within("connect", client.connect()).await.unwrap();
    let id = client.id().unwrap();
    let c = |kind: &str, room: &str| (kind.to_owned(), "/".to_owned(), id.clone(), room.to_owned());
    // Connected with its own room only: the handler's join comes after.
    assert_eq!(next(&mut rx).await, c("connected", &id));
    assert_eq!(next(&mut rx).await, c("joined", "lobby"));
    assert_eq!(io.namespaces(), vec![("/".to_owned(), 1)]);

    client.emit("enter", ("blue",)).unwrap();
    assert_eq!(within("entered", seen.recv()).await, Some("entered"));
    assert_eq!(next(&mut rx).await, c("joined", "blue"), "told once");
    client.emit("exit", ("blue",)).unwrap();
    assert_eq!(within("exited", seen.recv()).await, Some("exited"));
    assert_eq!(next(&mut rx).await, c("left", "blue"), "told once");

    client.disconnect();
    let mut left = Vec::new();
    loop {
        let change = next(&mut rx).await;
        if change.0 == "disconnected" {
            assert_eq!(change, c("disconnected", "client namespace disconnect"));
            break;
        }
        assert_eq!(change.0, "left", "{change:?}");
        left.push(change.3);
    }
    left.sort();
    let mut want = vec![id.clone(), "lobby".to_owned()];
    want.sort();
    assert_eq!(left, want, "every room it was in, before its disconnection");
    assert_eq!(io.namespaces(), vec![("/".to_owned(), 0)]);
    assert!(rx.try_recv().is_err(), "nothing more");
}
