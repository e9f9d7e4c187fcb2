//! The library's API, end to end with the Rust client: `SocketIo::builder()`
//! composing a store, a handshake filter and state; handler extractors (typed
//! data, the ack, state, the server handle, the raw event), a handler whose
//! extractor refuses an event not being called; connect handlers taking
//! extractors (the CONNECT auth, state, the server handle), a socket whose
//! auth does not fit being disconnected without the handler running; the
//! fallback handler (`Socket::on_fallback`) taking every event without a
//! handler of its own, in order, and only those.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tether::extract::{Data, State, TryData};
use tether::{AckSender, Config, Event, Socket, SocketIo};
use tether_client::Client;

#[derive(Clone)]
struct Greeting(&'static str);

/// Handler calls that an extractor should have prevented.
#[derive(Clone, Default)]
struct Calls(Arc<AtomicUsize>);

async fn server() -> (u16, Calls) {
    let calls = Calls::default();
    let io = SocketIo::new(Config::default())
        .with_state(Greeting("hello"))
        .with_state(calls.clone());
    io.ns("/", |socket: Socket| async move {
        socket.on(
            "greet",
            |Data(name): Data<String>, State(g): State<Greeting>, ack: AckSender| async move {
                let _ = ack.send((format!("{}, {name}", g.0),));
            },
        );
        socket.on(
            "add",
            |Data((a, b)): Data<(i64, i64)>, State(calls): State<Calls>, ack: AckSender| async move {
                calls.0.fetch_add(1, Ordering::SeqCst);
                let _ = ack.send((a + b,));
            },
        );
        socket.on("try", |TryData(n): TryData<u32>, ack: AckSender| async move {
            let _ = match n {
                Ok(n) => ack.send(("ok", n)),
                Err(e) => ack.send(("error", e.to_string())),
            };
        });
        socket.on(
            "whoami",
            |socket: Socket, io: SocketIo, ack: Option<AckSender>| async move {
                let count = io.sockets().len();
                if let Some(ack) = ack {
                    let _ = ack.send((socket.id().to_owned(), count));
                }
            },
        );
        socket.on("raw", |_s: Socket, mut ev: Event| async move {
            let name = ev.name().to_owned();
            let n = ev.args().len();
            let _ = ev.ack((name, n));
        });
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(io.serve(listener));
    (port, calls)
}

async fn within<T>(what: &str, fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), fut)
        .await
        .unwrap_or_else(|_| panic!("timed out: {what}"))
}

#[tokio::test]
async fn handlers_take_typed_data_state_acks_and_the_raw_event() {
    let (port, calls) = server().await;
    let client = Client::builder(format!("http://127.0.0.1:{port}/"))
        .build()
        .await
        .unwrap();
    within("connect", client.connect()).await.unwrap();

    let reply = within("greet", client.emit_with_ack("greet", ("Ana",)))
        .await
        .unwrap();
    assert_eq!(reply.get::<String>(0).unwrap(), "hello, Ana");

    let reply = within("add", client.emit_with_ack("add", (2, 40)))
        .await
        .unwrap();
    assert_eq!(reply.get::<i64>(0).unwrap(), 42);

    let reply = within("try ok", client.emit_with_ack("try", (7,)))
        .await
        .unwrap();
    assert_eq!(reply.parse::<(String, u32)>().unwrap(), ("ok".into(), 7));
    let reply = within("try error", client.emit_with_ack("try", ("seven",)))
        .await
        .unwrap();
    assert_eq!(reply.get::<String>(0).unwrap(), "error");

    let reply = within("whoami", client.emit_with_ack("whoami", ()))
        .await
        .unwrap();
    assert_eq!(reply.get::<String>(0).unwrap(), client.id().unwrap());
    assert_eq!(reply.get::<usize>(1).unwrap(), 1);

    let reply = within("raw", client.emit_with_ack("raw", (1, "two", [3])))
        .await
        .unwrap();
    assert_eq!(reply.parse::<(String, usize)>().unwrap(), ("raw".into(), 3));

    // Refused by an extractor: the handler is not called, so no ack comes.
    // Wrong shape for Data<(i64, i64)>:
    let bad = client
        .emit_with_ack_timeout("add", ("two", "forty"), Duration::from_millis(300))
        .await;
    assert!(bad.is_err(), "{bad:?}");
    // No ack asked, but the handler takes an AckSender:
    client.emit("add", (1, 1)).unwrap();
    // A later call still works, and counts only the calls that happened.
    let reply = within("add again", client.emit_with_ack("add", (1, 2)))
        .await
        .unwrap();
    assert_eq!(reply.get::<i64>(0).unwrap(), 3);
    assert_eq!(
        calls.0.load(Ordering::SeqCst),
        2,
        "only the two valid adds ran"
    );
}

#[tokio::test]
async fn builder_composes_a_store_a_handshake_filter_and_state() {
    let io = SocketIo::builder()
        .store(Arc::new(tether::store::MemoryStore::new()))
        .allow_request(|parts, addr| {
            assert!(addr.is_some(), "the peer address reaches the filter");
            match parts.headers.get("x-token").map(|v| v.as_bytes()) {
                Some(b"letmein") => Ok(()),
                _ => Err("bad token".into()),
            }
        })
        .with_state(Greeting("welcome"))
        .build()
        .unwrap();
    assert!(io.store().is_some(), "a store turns delivery on");
    io.ns("/", |socket: Socket| async move {
        socket.on(
            "greet",
            |State(g): State<Greeting>, ack: AckSender| async move {
                let _ = ack.send((g.0,));
            },
        );
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://127.0.0.1:{}/",
        listener.local_addr().unwrap().port()
    );
    tokio::spawn(io.serve(listener));

    let refused = Client::builder(&url)
        .reconnection(tether_client::Reconnection::disabled())
        .build()
        .await;
    let err = refused.expect_err("no token: refused").to_string();
    assert!(err.contains("403") && err.contains("bad token"), "{err}");

    let client = Client::builder(&url)
        .header("x-token", "letmein")
        .build()
        .await
        .unwrap();
    within("connect", client.connect()).await.unwrap();
    assert!(
        client.pid().is_some(),
        "recovery is on: the CONNECT reply has a pid"
    );
    let reply = within("greet", client.emit_with_ack("greet", ()))
        .await
        .unwrap();
    assert_eq!(reply.get::<String>(0).unwrap(), "welcome");
}

#[derive(serde::Deserialize)]
struct Auth {
    name: String,
}

#[tokio::test]
async fn connect_handlers_take_the_auth_state_and_the_server() {
    let calls = Calls::default();
    let io = SocketIo::new(Config::default())
        .with_state(Greeting("welcome"))
        .with_state(calls.clone());
    io.ns(
        "/",
        |socket: Socket,
         Data(auth): Data<Auth>,
         State(g): State<Greeting>,
         State(calls): State<Calls>,
         io: SocketIo| async move {
            calls.0.fetch_add(1, Ordering::SeqCst);
            let text = format!("{}, {}", g.0, auth.name);
            socket.on("hello", move |ack: AckSender| {
                let (text, io) = (text.clone(), io.clone());
                async move {
                    let _ = ack.send((text, io.sockets().len()));
                }
            });
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://127.0.0.1:{}/",
        listener.local_addr().unwrap().port()
    );
    tokio::spawn(io.serve(listener));

    let client = Client::builder(&url)
        .auth(serde_json::json!({ "name": "Ana" }))
        .build()
        .await
        .unwrap();
    within("connect", client.connect()).await.unwrap();
    let reply = within("hello", client.emit_with_ack("hello", ()))
        .await
        .unwrap();
    assert_eq!(
        reply.parse::<(String, usize)>().unwrap(),
        ("welcome, Ana".into(), 1)
    );

    // An auth that is not an `Auth`: the handler does not run, and the
    // socket is disconnected from the namespace.
    let wrong = Client::builder(&url)
        .auth(serde_json::json!({ "name": 42 }))
        .reconnection(tether_client::Reconnection::disabled())
        .connect(false)
        .build()
        .await
        .unwrap();
    // Connected, then disconnected at once (or already gone when the
    // connect resolves).
    let _ = within("connect", wrong.connect()).await;
    within("the server disconnects it", async {
        while wrong.connected() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert_eq!(calls.0.load(Ordering::SeqCst), 1, "only Ana's handler ran");
}

/// `on_fallback` gets the events without a handler of their own (name,
/// arguments and ack), in the order sent with the others, and not the
/// events that have one; without a fallback an unknown event is dropped.
#[tokio::test]
async fn the_fallback_takes_every_event_without_a_handler() {
    let io = SocketIo::new(Config::default());
    let seen = Arc::new(parking_lot::Mutex::new(Vec::<String>::new()));
    let log = seen.clone();
    io.ns("/", move |socket: Socket| {
        let log = log.clone();
        async move {
            let known = log.clone();
            socket.on("known", move |mut ev: Event| {
                let known = known.clone();
                async move {
                    known.lock().push("known".into());
                    let _ = ev.ack(("handled",));
                }
            });
            socket.on_fallback(move |socket: Socket, mut ev: Event| {
                let log = log.clone();
                async move {
                    log.lock().push(format!("fallback {}", ev.name()));
                    let reply = (
                        ev.name().to_owned(),
                        ev.args().len(),
                        socket.id().to_owned(),
                    );
                    let _ = ev.ack(reply);
                }
            });
        }
    });
    io.ns("/bare", |_socket: Socket| async move {});
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(io.serve(listener));

    let client = Client::builder(format!("http://127.0.0.1:{port}/"))
        .build()
        .await
        .unwrap();
    within("connect", client.connect()).await.unwrap();
    let reply = within("unknown", client.emit_with_ack("unknown", (1, "two")))
        .await
        .unwrap();
    assert_eq!(
        reply.parse::<(String, usize, String)>().unwrap(),
        ("unknown".into(), 2, client.id().unwrap())
    );
    let reply = within("known", client.emit_with_ack("known", ()))
        .await
        .unwrap();
    assert_eq!(reply.get::<String>(0).unwrap(), "handled");
    client.emit("other", ("no ack",)).unwrap();
    let reply = within("last", client.emit_with_ack("last", ()))
        .await
        .unwrap();
    assert_eq!(reply.get::<String>(0).unwrap(), "last");
    assert_eq!(
        *seen.lock(),
        [
            "fallback unknown",
            "known",
            "fallback other",
            "fallback last"
        ]
    );

    // No fallback: an unknown event gets no answer.
    let bare = Client::builder(format!("http://127.0.0.1:{port}/bare"))
        .build()
        .await
        .unwrap();
    within("connect /bare", bare.connect()).await.unwrap();
    let none = bare
        .emit_with_ack_timeout("unknown", (), Duration::from_millis(300))
        .await;
    assert!(none.is_err(), "{none:?}");
}
