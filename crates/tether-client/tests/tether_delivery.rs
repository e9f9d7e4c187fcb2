//! Delivery guarantees against an in-process Tether server with a store:
//! exactly-once under retries, recovery after a dropped transport.

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{init_tracing, wait_for, within, Inbox};
use serde_json::{json, Value};
use tether::store::{MemoryStore, Store};
use tether::{Event, Socket, SocketIo};
use tether_client::{Client, DisconnectReason, Lifecycle, Reconnection, Transport};

/// How long the first try of each chat message takes on the server.
const SLOW_FIRST: Duration = Duration::from_millis(500);

struct Server {
    io: SocketIo,
    port: u16,
    tries: Arc<Mutex<HashMap<String, u32>>>,
    /// First tries answered (late).
    late_done: tokio::sync::watch::Receiver<usize>,
}

impl Server {
    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }
}

async fn publish_chat(io: &SocketIo, content: String, key: String) -> Value {
    let outcome = io
        .of("/")
        .expect("namespace /")
        .publish_once(key, "chat message", (content,))
        .await;
    match outcome {
        Ok(outcome) => {
            json!({ "seq": outcome.seq(), "duplicate": outcome.is_duplicate() })
        }
        Err(e) => json!({ "error": e.to_string() }),
    }
}

async fn tether_server() -> Server {
    let config = tether::Config::default()
        .ping_interval(Duration::from_millis(1000))
        .ping_timeout(Duration::from_millis(2000));
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let io = SocketIo::with_store(config, store.clone());
    let tries: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
    let (late_tx, late_done) = tokio::sync::watch::channel(0usize);
    let late_tx = Arc::new(late_tx);
    let (io2, tries2, late2) = (io.clone(), tries.clone(), late_tx.clone());
    io.ns("/", move |socket: Socket| {
        let (io, tries, store, late) = (io2.clone(), tries2.clone(), store.clone(), late2.clone());
        async move {
            socket.on("join", |socket: Socket, mut ev: Event| async move {
                if let Ok(room) = ev.args().get::<String>(0) {
                    socket.join(room);
                }
                let _ = ev.ack((socket.rooms(),));
            });
            let io_p = io.clone();
            socket.on("publish", move |_: Socket, mut ev: Event| {
                let io = io_p.clone();
                async move {
                    let room: String = ev.args().get(0).unwrap_or_default();
                    let payload: Value = ev.args().get(1).unwrap_or_default();
                    let seq = io.to(room).publish("msg", (payload,)).await.unwrap();
                    let _ = ev.ack((json!({ "seq": seq }),));
                }
            });
            // The first try of each message is slower than the client's
            // ack timeout (a storage hiccup); later tries answer at once.
            let (io_c, tries_c) = (io.clone(), tries.clone());
            socket.on("chat message", move |_: Socket, mut ev: Event| {
                let (io, tries, late) = (io_c.clone(), tries_c.clone(), late.clone());
                async move {
                    let content: String = ev.args().get(0).unwrap_or_default();
                    let key: String = ev.args().get(1).unwrap_or_default();
                    let first = {
                        let mut tries = tries.lock().unwrap();
                        let n = tries.entry(key.clone()).or_insert(0);
                        *n += 1;
                        *n == 1
                    };
                    let Some(ack) = ev.take_ack() else { return };
                    if first {
                        tokio::spawn(async move {
                            tokio::time::sleep(SLOW_FIRST).await;
                            let _ = ack.send((publish_chat(&io, content, key).await,));
                            late.send_modify(|n| *n += 1);
                        });
                    } else {
                        let _ = ack.send((publish_chat(&io, content, key).await,));
                    }
                }
            });
            socket.on("count", move |_: Socket, mut ev: Event| {
                let store = store.clone();
                async move {
                    let n = store
                        .history("/", None, u64::MAX, 1_000_000)
                        .await
                        .unwrap()
                        .len();
                    let _ = ev.ack((n,));
                }
            });
            // Not stored (no offset appended): its last argument is an
            // application string shaped like an offset of another epoch.
            socket.on("note", |socket: Socket, _: Event| async move {
                let _ = socket.emit_volatile("note", ("x", "t.notAnOffsetButLooksLikeOne.5"));
            });
            socket.on("drop-transport", |socket: Socket, _: Event| async move {
                socket.close_transport();
            });
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(io.clone().serve(listener));
    Server {
        io,
        port,
        tries,
        late_done,
    }
}

async fn exactly_once_scenario(transports: Vec<Transport>) {
    init_tracing();
    let server = tether_server().await;
    let listener = Client::builder(server.url())
        .transports(transports.clone())
        .connect(false)
        .build()
        .await
        .unwrap();
    let mut heard = Inbox::new(&listener, "chat message");
    within("listener connects", listener.connect())
        .await
        .unwrap();
    let sender = Client::builder(server.url())
        .transports(transports)
        .ack_timeout(Duration::from_millis(200))
        .retries(3)
        .connect(false)
        .build()
        .await
        .unwrap();
    let mut echoed = Inbox::new(&sender, "chat message");
    within("sender connects", sender.connect()).await.unwrap();

    const N: usize = 20;
    let sends = (0..N).map(|i| sender.emit_reliable("chat message", (format!("message {i}"),)));
    let results = within("every message acked", futures_util::future::join_all(sends)).await;
    let mut seqs = Vec::new();
    let mut ids = HashSet::new();
    for (i, r) in results.into_iter().enumerate() {
        let sent = r.unwrap_or_else(|e| panic!("message {i}: {e}"));
        let ack: Value = sent.ack.get(0).unwrap();
        // The retry stored it; the late first try found it stored.
        assert_eq!(ack["duplicate"], false, "message {i}: {ack}");
        seqs.push(ack["seq"].as_u64().unwrap());
        assert!(ids.insert(sent.id.clone()), "one id per message");
        assert_eq!(
            server.tries.lock().unwrap()[&sent.id],
            2,
            "message {i}: tried twice"
        );
    }
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "stored in order: {seqs:?}"
    );
    // Once the late first tries are done too (each found its message stored):
    let mut late = server.late_done.clone();
    within("late first tries", late.wait_for(|n| *n == N))
        .await
        .unwrap();
    let count: usize = sender
        .emit_with_ack("count", ())
        .await
        .unwrap()
        .get(0)
        .unwrap();
    assert_eq!(count, N, "count stored = count sent");

    let expected: Vec<String> = (0..N).map(|i| format!("message {i}")).collect();
    for inbox in [&mut heard, &mut echoed] {
        let got: Vec<String> = inbox
            .take(N)
            .await
            .iter()
            .map(|a| a.get(0).unwrap())
            .collect();
        assert_eq!(got, expected, "each chat message once, in order");
    }
    // Nothing more: one more message comes right after the N.
    sender
        .emit_reliable("chat message", ("extra",))
        .await
        .unwrap();
    for inbox in [&mut heard, &mut echoed] {
        let extra: String = inbox.next().await.get(0).unwrap();
        assert_eq!(extra, "extra");
        inbox.assert_empty();
    }
    listener.close();
    sender.close();
    server.io.close();
}

#[tokio::test]
async fn exactly_once_under_retries_websocket() {
    exactly_once_scenario(vec![Transport::WebSocket]).await;
}

#[tokio::test]
async fn exactly_once_under_retries_polling() {
    exactly_once_scenario(vec![Transport::Polling]).await;
}

async fn recovery_scenario(transports: Vec<Transport>, automatic: bool) {
    init_tracing();
    let server = tether_server().await;
    let reconnection = if automatic {
        Reconnection {
            delay: Duration::from_millis(300),
            randomization_factor: 0.0,
            ..Reconnection::default()
        }
    } else {
        Reconnection::disabled()
    };
    let a = Client::builder(server.url())
        .transports(transports.clone())
        .reconnection(reconnection)
        .connect(false)
        .build()
        .await
        .unwrap();
    let mut msgs = Inbox::new(&a, "msg");
    let mut notes = Inbox::new(&a, "note");
    within("A connects", a.connect()).await.unwrap();
    a.emit_with_ack("join", ("r",)).await.unwrap();
    let b = Client::builder(server.url()).build().await.unwrap();
    for i in 0..5 {
        b.emit_with_ack("publish", ("r", json!({ "i": i })))
            .await
            .unwrap();
    }
    let first = msgs.take(5).await;
    let offset = a.last_offset().expect("a Tether offset");
    let parsed = tether_client::Offset::parse(&offset)
        .map(|o| (o.epoch, o.seq))
        .expect("Tether-shaped");
    assert_eq!(first[4].get::<String>(1).unwrap(), offset);
    // An application string in last position is never taken for an offset.
    a.emit("note", ()).unwrap();
    notes.next().await;
    assert_eq!(a.last_offset().as_deref(), Some(offset.as_str()));

    let id = a.id().unwrap();
    let mut life = a.manager().lifecycle();
    a.emit("drop-transport", ()).unwrap();
    let ev = wait_for(&mut life, "A disconnects", |e| {
        matches!(e, Lifecycle::Disconnect { .. })
    })
    .await;
    assert_eq!(
        ev,
        Lifecycle::Disconnect {
            nsp: "/".into(),
            reason: DisconnectReason::TransportClose
        }
    );
    // Missed while away (with automatic reconnection, A is back after 300 ms).
    let missed = 20;
    for i in 5..5 + missed {
        b.emit_with_ack("publish", ("r", json!({ "i": i })))
            .await
            .unwrap();
    }
    if automatic {
        wait_for(&mut life, "A reconnects", |e| {
            matches!(e, Lifecycle::Connect { .. })
        })
        .await;
    } else {
        within("A reconnects", a.connect()).await.unwrap();
    }
    assert!(a.recovered(), "recovered");
    assert_eq!(a.recovery_report(), None);
    assert_eq!(a.id().as_deref(), Some(id.as_str()), "same id");
    let got: Vec<u64> = msgs
        .take(missed)
        .await
        .iter()
        .map(|args| args.get::<Value>(0).unwrap()["i"].as_u64().unwrap())
        .collect();
    assert_eq!(
        got,
        (5..5 + missed as u64).collect::<Vec<_>>(),
        "exactly the missed events"
    );
    // Live again, and nothing else came.
    b.emit_with_ack("publish", ("r", json!({ "i": 99 })))
        .await
        .unwrap();
    let live: Value = msgs.next().await.get(0).unwrap();
    assert_eq!(live["i"], 99);
    msgs.assert_empty();
    let now = a.last_offset().unwrap();
    let tether_client::Offset { epoch, seq } = tether_client::Offset::parse(&now).unwrap();
    assert_eq!(epoch, parsed.0);
    assert!(seq > parsed.1);

    // A forged offset (another store's epoch): a new session, and Tether says why.
    let c = Client::builder(server.url())
        .connect(false)
        .build()
        .await
        .unwrap();
    c.resume_session(a.pid().unwrap(), Some("t.AAAAAAAAAAAAAAAAAAAAAA.5".into()));
    within("C connects", c.connect()).await.unwrap();
    assert!(!c.recovered());
    let report = c.recovery_report().expect("a recovery report");
    assert_eq!(report.reason, tether_client::Refusal::StoreReset);
    assert_eq!(
        report.requested.as_deref(),
        Some("t.AAAAAAAAAAAAAAAAAAAAAA.5")
    );
    a.close();
    b.close();
    c.close();
    server.io.close();
}

#[tokio::test]
async fn recovery_after_drop_transport_websocket() {
    recovery_scenario(vec![Transport::WebSocket], false).await;
}

#[tokio::test]
async fn recovery_after_drop_transport_polling() {
    recovery_scenario(vec![Transport::Polling], false).await;
}

#[tokio::test]
async fn recovery_with_automatic_reconnection_upgrade() {
    recovery_scenario(vec![Transport::Polling, Transport::WebSocket], true).await;
}
