//! Connection state recovery and retries against the official Node server
//! with `connectionStateRecovery` (tests/node/client/recovery-server.mjs).

mod common;

use std::time::Duration;

use common::{init_tracing, wait_for, within, Inbox, NodeServer};
use serde_json::{json, Value};
use tether_client::{Client, DisconnectReason, Lifecycle, Reconnection, Transport};

async fn recovery_server() -> NodeServer {
    NodeServer::start("client/recovery-server.mjs", &[]).await
}

async fn recovery_scenario(transports: Vec<Transport>) {
    init_tracing();
    let server = recovery_server().await;
    // A: reconnects when the test says so, to publish while it is away.
    let a = Client::builder(server.url("/"))
        .transports(transports.clone())
        .reconnection(Reconnection::disabled())
        .connect(false)
        .build()
        .await
        .unwrap();
    let mut a_life = a.manager().lifecycle();
    let mut a_welcome = Inbox::new(&a, "welcome");
    let mut a_msgs = Inbox::new(&a, "msg");
    within("A connects", a.connect()).await.unwrap();
    let hello: Value = a_welcome.next().await.get(0).unwrap();
    assert_eq!(hello["recovered"], false);
    assert!(!a.recovered());
    let id = a.id().unwrap();
    assert!(a.pid().is_some(), "recovery on: the server gave a pid");
    a.emit_with_ack("join", ("r",)).await.unwrap();
    let b = Client::builder(server.url("/"))
        .transports(transports)
        .build()
        .await
        .unwrap();
    for i in 0..5 {
        b.emit_with_ack("publish", ("r", json!({ "i": i })))
            .await
            .unwrap();
    }
    let first = a_msgs.take(5).await;
    // The official rule: the last string argument is the offset.
    let offset = a.last_offset().unwrap();
    assert_eq!(first[4].len(), 2);
    assert_eq!(first[4].get::<String>(1).unwrap(), offset);

    a.emit("drop-transport", ()).unwrap();
    let ev = wait_for(&mut a_life, "A disconnects", |e| {
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
    // Missed while away.
    for i in 5..25 {
        b.emit_with_ack("publish", ("r", json!({ "i": i })))
            .await
            .unwrap();
    }
    within("A reconnects", a.connect()).await.unwrap();
    assert!(a.recovered(), "session recovered");
    assert_eq!(a.id().as_deref(), Some(id.as_str()), "same id");
    let hello: Value = a_welcome.next().await.get(0).unwrap();
    assert_eq!(hello["recovered"], true);
    // Live again (and still in room r).
    for i in 25..30 {
        b.emit_with_ack("publish", ("r", json!({ "i": i })))
            .await
            .unwrap();
    }
    let rest = a_msgs.take(25).await;
    let got: Vec<u64> = first
        .iter()
        .chain(&rest)
        .map(|args| args.get::<Value>(0).unwrap()["i"].as_u64().unwrap())
        .collect();
    assert_eq!(got, (0..30).collect::<Vec<_>>(), "each msg once, in order");
    // Nothing more: a round trip through the server after one more msg.
    b.emit_with_ack("publish", ("r", json!({ "i": 30 })))
        .await
        .unwrap();
    let last: Value = a_msgs.next().await.get(0).unwrap();
    assert_eq!(last["i"], 30);
    a_msgs.assert_empty();
    a_welcome.assert_empty();
    a.close();
    b.close();
}

#[tokio::test]
async fn recovers_missed_events_websocket() {
    recovery_scenario(vec![Transport::WebSocket]).await;
}

#[tokio::test]
async fn recovers_missed_events_polling() {
    recovery_scenario(vec![Transport::Polling]).await;
}

#[tokio::test]
async fn recovers_with_automatic_reconnection() {
    init_tracing();
    let server = recovery_server().await;
    let a = Client::builder(server.url("/"))
        .transports([Transport::WebSocket])
        .reconnection(Reconnection {
            delay: Duration::from_millis(50),
            randomization_factor: 0.0,
            ..Reconnection::default()
        })
        .connect(false)
        .build()
        .await
        .unwrap();
    let mut welcome = Inbox::new(&a, "welcome");
    within("connect", a.connect()).await.unwrap();
    welcome.next().await;
    let mut life = a.manager().lifecycle();
    let id = a.id().unwrap();
    for round in 0..5 {
        a.emit("drop-transport", ()).unwrap();
        let ev = wait_for(&mut life, "connect", |e| {
            matches!(e, Lifecycle::Connect { .. })
        })
        .await;
        assert_eq!(
            ev,
            Lifecycle::Connect {
                nsp: "/".into(),
                recovered: true
            },
            "round {round}"
        );
        assert_eq!(a.id().as_deref(), Some(id.as_str()));
        let hello: Value = welcome.next().await.get(0).unwrap();
        assert_eq!(hello["recovered"], true);
    }
    a.close();
}

#[tokio::test]
async fn retries_with_a_handler_that_acks_late() {
    init_tracing();
    let server = recovery_server().await;
    let client = Client::builder(server.url("/"))
        .transports([Transport::WebSocket])
        .ack_timeout(Duration::from_millis(150))
        .retries(3)
        .build()
        .await
        .unwrap();
    const N: usize = 10;
    // Queued at once; the queue sends one at a time, in order.
    let mut pending = Vec::new();
    for i in 0..N {
        let socket = client.socket().clone();
        pending.push(tokio::spawn(async move {
            socket.emit_with_ack("late", (format!("k{i}"), 400)).await
        }));
    }
    for (i, p) in pending.into_iter().enumerate() {
        let ack: Value = within("late ack", p)
            .await
            .unwrap()
            .unwrap()
            .get(0)
            .unwrap();
        // The first try was acked too late: the answer is the second try's.
        assert_eq!(ack, json!({ "key": format!("k{i}"), "try": 2 }));
    }
    let order: Vec<String> = client
        .emit_with_ack("order", ())
        .await
        .unwrap()
        .get(0)
        .unwrap();
    let expected: Vec<String> = (0..N).map(|i| format!("k{i}")).collect();
    assert_eq!(order, expected, "one in flight at a time, in order");
    for i in 0..N {
        let tries: u32 = client
            .emit_with_ack("tries", (format!("k{i}"),))
            .await
            .unwrap()
            .get(0)
            .unwrap();
        assert_eq!(tries, 2, "k{i}: one late try, one retry");
    }
    assert_eq!(client.queued(), 0);
    client.close();
}

#[tokio::test]
async fn retries_give_up_after_the_last_try() {
    init_tracing();
    let server = recovery_server().await;
    let client = Client::builder(server.url("/"))
        .transports([Transport::WebSocket])
        .ack_timeout(Duration::from_millis(100))
        .retries(2)
        .build()
        .await
        .unwrap();
    // An event nobody acks: 3 tries of 100 ms, then a timeout.
    let started = std::time::Instant::now();
    let r = within("gives up", client.emit_with_ack("nobody-acks", ())).await;
    assert!(matches!(r, Err(tether_client::AckError::Timeout)), "{r:?}");
    assert!(started.elapsed() >= Duration::from_millis(300));
    // The queue goes on with the next emit.
    let ack: Value = client
        .emit_with_ack("late", ("after", 0))
        .await
        .unwrap()
        .get(0)
        .unwrap();
    assert_eq!(ack, json!({ "key": "after", "try": 1 }));
    client.close();
}
