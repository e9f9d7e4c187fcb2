//! Engine.IO details: extra headers and query, heartbeat timeout, pings
//! answered.

mod common;

use std::time::{Duration, Instant};

use common::{init_tracing, wait_for, within};
use tether_client::{Client, DisconnectReason, Error, Lifecycle, Reconnection, Transport};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// A fake Engine.IO polling server that completes the handshake and then
/// never pings (nor answers polls). Sends each request head to the channel.
async fn silent_server(ping_ms: u64) -> (u16, mpsc::UnboundedReceiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                loop {
                    // One request: head, then Content-Length bytes of body.
                    let head_end = loop {
                        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            break p + 4;
                        }
                        let mut chunk = [0u8; 4096];
                        match stream.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    };
                    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
                    let len = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    while buf.len() < head_end + len {
                        let mut chunk = [0u8; 4096];
                        match stream.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    buf.drain(..head_end + len);
                    let _ = tx.send(head.clone());
                    let body = if head.starts_with("POST") {
                        "ok".to_owned()
                    } else if !head.contains("sid=") {
                        format!("0{{\"sid\":\"fake\",\"upgrades\":[],\"pingInterval\":{ping_ms},\"pingTimeout\":{ping_ms},\"maxPayload\":1000000}}")
                    } else {
                        // A poll: never answered.
                        std::future::pending::<()>().await;
                        unreachable!()
                    };
                    let res = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    if stream.write_all(res.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (port, rx)
}

#[tokio::test]
async fn headers_query_and_ping_timeout() {
    init_tracing();
    let (port, mut heads) = silent_server(150).await;
    let client = Client::builder(format!("http://127.0.0.1:{port}/?from=url"))
        .transports([Transport::Polling])
        .query("extra", "a b")
        .header("x-tether-test", "yes")
        .reconnection(Reconnection::disabled())
        .connect(false)
        .build()
        .await
        .unwrap();
    let mut life = client.manager().lifecycle();
    let started = Instant::now();
    let socket = client.socket().clone();
    let connecting = tokio::spawn(async move { socket.connect().await });
    let handshake = within("handshake request", heads.recv()).await.unwrap();
    let line = handshake.lines().next().unwrap().to_owned();
    assert!(
        line.starts_with("GET /socket.io/?EIO=4&transport=polling"),
        "{line}"
    );
    assert!(
        line.contains("from=url") && line.contains("extra=a%20b"),
        "{line}"
    );
    assert!(
        handshake
            .to_ascii_lowercase()
            .contains("x-tether-test: yes"),
        "{handshake}"
    );
    let ev = wait_for(&mut life, "close", |e| matches!(e, Lifecycle::Close { .. })).await;
    assert_eq!(
        ev,
        Lifecycle::Close {
            reason: DisconnectReason::PingTimeout
        }
    );
    // Dead after pingInterval + pingTimeout without a ping, not before.
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "{:?}",
        started.elapsed()
    );
    let result = within("connect ends", connecting).await.unwrap();
    assert!(matches!(result, Err(Error::Closed)), "{result:?}");
    // Every request carried the header.
    while let Ok(head) = heads.try_recv() {
        assert!(
            head.to_ascii_lowercase().contains("x-tether-test: yes"),
            "{head}"
        );
    }
}

async fn heartbeat_scenario(transports: Vec<Transport>) {
    init_tracing();
    let config = tether::Config::default()
        .ping_interval(Duration::from_millis(50))
        .ping_timeout(Duration::from_millis(100));
    let io = tether::SocketIo::new(config);
    io.ns("/", |_socket: tether::Socket| async move {});
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(io.clone().serve(listener));
    let client = Client::builder(format!("http://127.0.0.1:{port}/"))
        .transports(transports)
        .build()
        .await
        .unwrap();
    let mut life = client.manager().lifecycle();
    // Ten heartbeats go by (each answered), and the connection stays up.
    let quiet = tokio::time::timeout(Duration::from_millis(1000), async {
        loop {
            match life.recv().await {
                Some(Lifecycle::Upgrade) => continue,
                other => return other,
            }
        }
    })
    .await;
    assert!(quiet.is_err(), "unexpected {quiet:?}");
    assert!(client.connected());
    client.close();
    io.close();
}

#[tokio::test]
async fn answers_pings_polling() {
    heartbeat_scenario(vec![Transport::Polling]).await;
}

#[tokio::test]
async fn answers_pings_websocket() {
    heartbeat_scenario(vec![Transport::WebSocket]).await;
}

#[tokio::test]
async fn answers_pings_upgrade() {
    heartbeat_scenario(vec![Transport::Polling, Transport::WebSocket]).await;
}
