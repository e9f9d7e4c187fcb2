//! The client against the official Node `socket.io` 4.8.1 server
//! (tests/node/reference-server.mjs, the interop contract).

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{init_tracing, within, Inbox, NodeServer};
use serde_json::{json, Value};
use tether_client::{
    AckError, Args, Client, DisconnectReason, Error, Lifecycle, Parser, Reconnection, Transport,
};

fn transports(mode: &str) -> Vec<Transport> {
    match mode {
        "polling" => vec![Transport::Polling],
        "websocket" => vec![Transport::WebSocket],
        _ => vec![Transport::Polling, Transport::WebSocket],
    }
}

async fn events_scenario(mode: &str) {
    init_tracing();
    let server = NodeServer::reference().await;
    let client = Client::builder(server.url("/"))
        .transports(transports(mode))
        .auth(json!({ "token": "t1" }))
        .connect(false)
        .build()
        .await
        .unwrap();
    let mut lifecycle = client.manager().lifecycle();
    let mut welcome = Inbox::new(&client, "welcome");
    let mut echo = Inbox::new(&client, "echo");
    within("connect", client.connect()).await.unwrap();
    let hello: Value = welcome.next().await.get(0).unwrap();
    assert_eq!(hello["nsp"], "/");
    assert_eq!(hello["auth"], json!({ "token": "t1" }));
    assert_eq!(hello["id"].as_str(), client.id().as_deref());
    if mode == "upgrade" {
        common::wait_for(&mut lifecycle, "upgrade", |e| *e == Lifecycle::Upgrade).await;
    }
    const N: usize = 1000;
    for i in 0..N {
        client.emit("echo", (i, format!("m{i}"))).unwrap();
    }
    let got = echo.take(N).await;
    for (i, args) in got.iter().enumerate() {
        let (n, s): (usize, String) = args.parse().unwrap();
        assert_eq!((n, s), (i, format!("m{i}")));
    }
    // A round trip after the last one: nothing more came.
    let ack = client.emit_with_ack("echo", ("last",)).await.unwrap();
    assert_eq!(ack.get::<String>(0).unwrap(), "last");
    echo.assert_empty();
    let expected = if mode == "polling" {
        Transport::Polling
    } else {
        Transport::WebSocket
    };
    assert_eq!(client.manager().transport(), Some(expected));
    client.close();
}

#[tokio::test]
async fn events_polling() {
    events_scenario("polling").await;
}

#[tokio::test]
async fn events_websocket() {
    events_scenario("websocket").await;
}

#[tokio::test]
async fn events_upgrade() {
    events_scenario("upgrade").await;
}

#[tokio::test]
async fn namespaces_on_one_manager() {
    init_tracing();
    let server = NodeServer::reference().await;
    let client = Client::builder(server.url("/"))
        .connect(false)
        .build()
        .await
        .unwrap();
    let mut root_welcome = Inbox::new(&client, "welcome");
    within("connect /", client.connect()).await.unwrap();
    let manager = client.manager();
    let engine_id = manager.engine_id();

    let custom = manager.socket("/custom");
    let mut custom_welcome = Inbox::new(&custom, "welcome");
    within("connect /custom", custom.connect()).await.unwrap();
    let hello: Value = custom_welcome.next().await.get(0).unwrap();
    assert_eq!(hello["nsp"], "/custom");
    let ack = custom.emit_with_ack("echo", ("c",)).await.unwrap();
    assert_eq!(ack.get::<String>(0).unwrap(), "c");

    // Middleware refusal with data, then accepted with the right auth.
    let admin = manager.socket("/admin");
    let mut admin_welcome = Inbox::new(&admin, "welcome");
    match within("connect /admin", admin.connect()).await {
        Err(Error::Refused(e)) => {
            assert_eq!(e.message, "unauthorized");
            assert_eq!(e.data, Some(json!({ "code": 401 })));
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert!(!admin.connected());
    admin.set_auth(json!({ "token": "secret" }));
    within("connect /admin again", admin.connect())
        .await
        .unwrap();
    let hello: Value = admin_welcome.next().await.get(0).unwrap();
    assert_eq!(hello["nsp"], "/admin");
    assert_eq!(hello["auth"], json!({ "token": "secret" }));

    // A dynamic namespace, then an unknown one.
    let dynamic = manager.socket("/dyn-42");
    let mut dyn_welcome = Inbox::new(&dynamic, "welcome");
    within("connect /dyn-42", dynamic.connect()).await.unwrap();
    let hello: Value = dyn_welcome.next().await.get(0).unwrap();
    assert_eq!(hello["nsp"], "/dyn-42");
    match within("connect /nope", manager.socket("/nope").connect()).await {
        Err(Error::Refused(e)) => {
            assert_eq!(e.message, "Invalid namespace");
            assert_eq!(e.data, None);
        }
        other => panic!("expected Invalid namespace, got {other:?}"),
    }

    // All of it on one Engine.IO connection, and / still works.
    assert_eq!(manager.engine_id(), engine_id);
    let hello: Value = root_welcome.next().await.get(0).unwrap();
    assert_eq!(hello["nsp"], "/");
    let ack = client.emit_with_ack("echo", ("root",)).await.unwrap();
    assert_eq!(ack.get::<String>(0).unwrap(), "root");
    root_welcome.assert_empty();
    custom_welcome.assert_empty();
    admin_welcome.assert_empty();
    client.close();
}

async fn acks_scenario(mode: &str, parser: Parser) {
    init_tracing();
    let server = match parser {
        Parser::MsgPack => {
            NodeServer::start("reference-server.mjs", &["--parser", "msgpack"]).await
        }
        Parser::Json => NodeServer::reference().await,
    };
    let client = Client::builder(server.url("/"))
        .transports(transports(mode))
        .parser(parser)
        .ack_timeout(Duration::from_secs(5))
        .on("ask", |mut ev| async move {
            let n: u64 = ev.args().get(0).unwrap();
            assert!(ev.wants_ack());
            ev.ack((n * 2,)).unwrap();
        })
        .build()
        .await
        .unwrap();
    // Client -> server acks, many in flight.
    const N: usize = 2000;
    let mut pending = Vec::with_capacity(N);
    for i in 0..N {
        let socket = client.socket().clone();
        pending.push(tokio::spawn(async move {
            socket.emit_with_ack("echo", (i, json!({ "i": i }))).await
        }));
    }
    for (i, p) in pending.into_iter().enumerate() {
        let args = within("ack", p).await.unwrap().unwrap();
        let (n, obj): (usize, Value) = args.parse().unwrap();
        assert_eq!((n, obj), (i, json!({ "i": i })));
    }
    // A multi-argument ack.
    let args = client
        .emit_with_ack("echo", ("a", 1, true, Value::Null))
        .await
        .unwrap();
    assert_eq!(args.len(), 4);
    assert_eq!(args.parse::<(String, u8, bool, Value)>().unwrap().0, "a");
    // Server -> client acks: the server asks "ask" n and acks us with our reply.
    for n in 0..100u64 {
        let reply = client.emit_with_ack("server-ack", (n,)).await.unwrap();
        assert_eq!(reply.get::<u64>(0).unwrap(), n * 2, "server-ack {n}");
    }
    client.close();
}

#[tokio::test]
async fn acks_both_ways_websocket() {
    acks_scenario("websocket", Parser::Json).await;
}

#[tokio::test]
async fn acks_both_ways_polling() {
    acks_scenario("polling", Parser::Json).await;
}

#[tokio::test]
async fn acks_both_ways_msgpack() {
    acks_scenario("upgrade", Parser::MsgPack).await;
}

async fn binary_scenario(mode: &str, parser: Parser) {
    init_tracing();
    let server = match parser {
        Parser::MsgPack => {
            NodeServer::start("reference-server.mjs", &["--parser", "msgpack"]).await
        }
        Parser::Json => NodeServer::reference().await,
    };
    let client = Client::builder(server.url("/"))
        .transports(transports(mode))
        .parser(parser)
        .build()
        .await
        .unwrap();
    let mut echo = Inbox::new(&client, "echo");
    let sizes = [0usize, 1, 1000, 100_000];
    let blob = |n: usize| Bytes::from((0..n).map(|i| (i % 251) as u8).collect::<Vec<u8>>());
    for &n in &sizes {
        // Via the ack.
        let mut args = Args::new();
        args.push_binary(blob(n));
        let ack = client.emit_with_ack("echo", args.clone()).await.unwrap();
        assert_eq!(ack.binary(0), Some(&blob(n)), "ack of {n} bytes");
        // Via an echo event.
        client.emit("echo", args).unwrap();
        let got = echo.next().await;
        assert_eq!(got.binary(0), Some(&blob(n)), "echo of {n} bytes");
    }
    // Nested: {a: Buffer, b: [Buffer, "str"]}.
    let mut args = Args::new();
    let a = args.attach(blob(3));
    let b = args.attach(blob(5));
    args.push(&json!({ "a": a, "b": [b, "str"] })).unwrap();
    let expected = json!({ "a": [0, 1, 2], "b": [[0, 1, 2, 3, 4], "str"] });
    let ack = client.emit_with_ack("echo", args.clone()).await.unwrap();
    assert_eq!(ack.value_with_binary(0).unwrap(), expected);
    client.emit("echo", args).unwrap();
    assert_eq!(echo.next().await.value_with_binary(0).unwrap(), expected);
    echo.assert_empty();
    client.close();
}

#[tokio::test]
async fn binary_both_ways_polling() {
    binary_scenario("polling", Parser::Json).await;
}

#[tokio::test]
async fn binary_both_ways_websocket() {
    binary_scenario("websocket", Parser::Json).await;
}

#[tokio::test]
async fn binary_both_ways_upgrade_msgpack() {
    binary_scenario("upgrade", Parser::MsgPack).await;
}

fn fast_reconnection() -> Reconnection {
    Reconnection {
        delay: Duration::from_millis(50),
        max_delay: Duration::from_millis(200),
        ..Reconnection::default()
    }
}

async fn reconnect_scenario(mode: &str) {
    init_tracing();
    let server = NodeServer::reference().await;
    let client = Client::builder(server.url("/"))
        .transports(transports(mode))
        .reconnection(fast_reconnection())
        .connect(false)
        .build()
        .await
        .unwrap();
    let mut lifecycle = client.manager().lifecycle();
    let mut welcome = Inbox::new(&client, "welcome");
    let mut echo = Inbox::new(&client, "echo");
    within("connect", client.connect()).await.unwrap();
    let mut ids = vec![client.id().unwrap()];
    let first: Value = welcome.next().await.get(0).unwrap();
    assert_eq!(first["id"].as_str(), Some(ids[0].as_str()));
    const DROPS: usize = 3;
    let mut sent = 0usize;
    for round in 0..DROPS {
        client.emit("drop-transport", ()).unwrap();
        let ev = common::wait_for(&mut lifecycle, "disconnect", |e| {
            matches!(e, Lifecycle::Disconnect { .. })
        })
        .await;
        assert_eq!(
            ev,
            Lifecycle::Disconnect {
                nsp: "/".into(),
                reason: DisconnectReason::TransportClose
            },
            "round {round}"
        );
        // Emitted while disconnected: buffered, then sent in order.
        for _ in 0..10 {
            client.emit("echo", (sent,)).unwrap();
            sent += 1;
        }
        let mut seen = Vec::new();
        within("reconnect", async {
            loop {
                let ev = lifecycle.recv().await.unwrap();
                let done = matches!(ev, Lifecycle::Connect { .. });
                // The upgrade may complete before or after the CONNECT reply.
                if ev != Lifecycle::Upgrade {
                    seen.push(ev);
                }
                if done {
                    break;
                }
            }
        })
        .await;
        let first_transport = transports(mode)[0];
        assert_eq!(
            seen,
            vec![
                Lifecycle::Close {
                    reason: DisconnectReason::TransportClose
                },
                Lifecycle::ReconnectAttempt { attempt: 1 },
                Lifecycle::Reconnect { attempts: 1 },
                Lifecycle::Open {
                    transport: first_transport
                },
                Lifecycle::Connect {
                    nsp: "/".into(),
                    recovered: false
                },
            ],
            "round {round}"
        );
        let hello: Value = welcome.next().await.get(0).unwrap();
        let id = client.id().unwrap();
        assert_eq!(hello["id"].as_str(), Some(id.as_str()));
        assert!(!ids.contains(&id), "a new id after each reconnection");
        ids.push(id);
    }
    let got = echo.take(sent).await;
    let got: Vec<usize> = got.iter().map(|a| a.get(0).unwrap()).collect();
    assert_eq!(got, (0..sent).collect::<Vec<_>>());
    let ack = client.emit_with_ack("echo", ("after",)).await.unwrap();
    assert_eq!(ack.get::<String>(0).unwrap(), "after");
    echo.assert_empty();
    welcome.assert_empty();
    assert_eq!(ids.len(), DROPS + 1);
    client.close();
}

#[tokio::test]
async fn reconnects_after_drop_transport_websocket() {
    reconnect_scenario("websocket").await;
}

#[tokio::test]
async fn reconnects_after_drop_transport_polling() {
    reconnect_scenario("polling").await;
}

#[tokio::test]
async fn reconnects_after_drop_transport_upgrade() {
    reconnect_scenario("upgrade").await;
}

#[tokio::test]
async fn server_disconnect_does_not_reconnect() {
    init_tracing();
    let server = NodeServer::reference().await;
    let client = Client::builder(server.url("/"))
        .reconnection(fast_reconnection())
        .build()
        .await
        .unwrap();
    let mut lifecycle = client.manager().lifecycle();
    client.emit("disconnect-me", ()).unwrap();
    let ev = common::wait_for(&mut lifecycle, "disconnect", |e| {
        matches!(e, Lifecycle::Disconnect { .. })
    })
    .await;
    assert_eq!(
        ev,
        Lifecycle::Disconnect {
            nsp: "/".into(),
            reason: DisconnectReason::IoServerDisconnect
        }
    );
    // The manager closes (no socket left) and does not reconnect.
    common::wait_for(&mut lifecycle, "close", |e| {
        matches!(e, Lifecycle::Close { .. })
    })
    .await;
    assert!(
        tokio::time::timeout(Duration::from_millis(600), lifecycle.recv())
            .await
            .is_err(),
        "no reconnection"
    );
    assert!(!client.connected());
    // Emits fail cleanly (no ack while disconnected for good)...
    let r = client
        .emit_with_ack_timeout("echo", (1,), Duration::from_millis(100))
        .await;
    assert!(matches!(r, Err(AckError::Timeout)), "{r:?}");
    // ...until the application connects again.
    within("connect again", client.connect()).await.unwrap();
    let ack = client.emit_with_ack("echo", ("back",)).await.unwrap();
    assert_eq!(ack.get::<String>(0).unwrap(), "back");
    client.close();
}

#[tokio::test]
async fn reconnect_failed_after_max_attempts() {
    init_tracing();
    // A port with nothing listening.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let result = within(
        "build",
        Client::builder(format!("http://127.0.0.1:{port}/"))
            .reconnection(Reconnection {
                delay: Duration::from_millis(10),
                max_delay: Duration::from_millis(20),
                max_attempts: Some(3),
                ..Reconnection::default()
            })
            .build(),
    )
    .await;
    assert!(
        matches!(result, Err(Error::ReconnectFailed(3))),
        "{result:?}"
    );
}

#[tokio::test]
async fn auth_closure_evaluated_at_each_connect() {
    init_tracing();
    let server = NodeServer::reference().await;
    let counter = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let c = counter.clone();
    let client = Client::builder(server.url("/"))
        .transports([Transport::WebSocket])
        .reconnection(fast_reconnection())
        .auth_with(move || {
            let n = c.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
            async move { json!({ "token": format!("t{n}") }) }
        })
        .connect(false)
        .build()
        .await
        .unwrap();
    let mut welcome = Inbox::new(&client, "welcome");
    within("connect", client.connect()).await.unwrap();
    for n in 1..=3 {
        let hello: Value = welcome.next().await.get(0).unwrap();
        assert_eq!(hello["auth"], json!({ "token": format!("t{n}") }));
        if n < 3 {
            client.emit("drop-transport", ()).unwrap();
        }
    }
    assert_eq!(counter.load(std::sync::atomic::Ordering::SeqCst), 3);
    client.close();
}

#[tokio::test]
async fn buffer_while_disconnected_is_bounded() {
    init_tracing();
    let server = NodeServer::reference().await;
    let client = Client::builder(server.url("/"))
        .transports([Transport::WebSocket])
        .reconnection(Reconnection::disabled())
        .buffer_capacity(5)
        .build()
        .await
        .unwrap();
    let mut life = client.manager().lifecycle();
    let mut echo = Inbox::new(&client, "echo");
    client.emit("drop-transport", ()).unwrap();
    common::wait_for(&mut life, "disconnect", |e| {
        matches!(e, Lifecycle::Disconnect { .. })
    })
    .await;
    for i in 0..5 {
        client.emit("echo", (i,)).unwrap();
    }
    assert_eq!(client.buffered(), 5);
    let full = client.emit("echo", (5,));
    assert!(
        matches!(full, Err(tether_client::EmitError::BufferFull)),
        "{full:?}"
    );
    within("connect again", client.connect()).await.unwrap();
    let got: Vec<u32> = echo
        .take(5)
        .await
        .iter()
        .map(|a| a.get(0).unwrap())
        .collect();
    assert_eq!(got, vec![0, 1, 2, 3, 4]);
    assert_eq!(client.buffered(), 0);
    client.emit_with_ack("echo", ()).await.unwrap();
    echo.assert_empty();
    client.close();
}

#[tokio::test]
async fn events_as_a_stream() {
    use futures_util::StreamExt;
    init_tracing();
    let server = NodeServer::reference().await;
    let client = Client::builder(server.url("/"))
        .transports([Transport::WebSocket])
        .connect(false)
        .build()
        .await
        .unwrap();
    let mut events = client.events();
    // "echo" has a handler of its own: it does not reach the stream.
    let mut echo = Inbox::new(&client, "echo");
    within("connect", client.connect()).await.unwrap();
    let welcome = within("welcome", events.next()).await.unwrap();
    assert_eq!(welcome.name(), "welcome");
    client.emit("echo", ("x",)).unwrap();
    assert_eq!(echo.next().await.get::<String>(0).unwrap(), "x");
    // The server asks us (with an ack) through the stream.
    let asking = client.socket().clone();
    let reply = tokio::spawn(async move { asking.emit_with_ack("server-ack", (21,)).await });
    let mut ask = within("ask", events.next()).await.unwrap();
    assert_eq!(ask.name(), "ask");
    let n: u64 = ask.args().get(0).unwrap();
    ask.ack((n * 2,)).unwrap();
    let reply = within("server-ack", reply).await.unwrap().unwrap();
    assert_eq!(reply.get::<u64>(0).unwrap(), 42);
    client.close();
}
