//! The benchmark contract (the project's shared notes, section 1.2) on
//! socketioxide with axum, run by bench/speed.mjs beside Tether's
//! `bench_server` and Node's `bench/node-bench-server.mjs`:
//!
//!   socketioxide-bench-server PORT
//!
//! Namespace `/` at `/socket.io/` on 127.0.0.1:PORT, WebSocket only:
//! - `echo` P: acks with P. (socketioxide's `AckSender` does not say whether
//!   the client asked for an ack, so an `echo` without an ack id is not sent
//!   back; speed.mjs always asks for one.)
//! - `join` ROOM: joins, then acks;
//! - `bcast` ROOM P: emits `msg` P to every socket in ROOM, then acks.
//!
//! socketioxide has no connection state recovery: there is no `--durable`
//! (speed.mjs compares both of Tether's modes with this one). Its queue per
//! socket is raised from 128 to 65 536 packets, so that a fan-out burst is
//! delivered whole rather than partly dropped.

use serde_json::Value;
use socketioxide::extract::{AckSender, Data, SocketRef};
use socketioxide::{SocketIo, TransportType};

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let port: u16 = match std::env::args().last().map(|p| p.parse()) {
        Some(Ok(port)) => port,
        _ => {
            eprintln!("usage: socketioxide-bench-server PORT");
            std::process::exit(2);
        }
    };
    // 10 000 connections: one file descriptor each.
    if let Ok((_, hard)) = rlimit::Resource::NOFILE.get() {
        let _ = rlimit::Resource::NOFILE.set(hard, hard);
    }
    // Room for a fan-out burst: with the default of 128 packets queued per
    // socket, a subscriber behind loses what does not fit (Tether pauses the
    // sender instead), and the fan-out phase never sees every delivery.
    let (layer, io) = SocketIo::builder()
        .transports([TransportType::Websocket])
        .max_buffer_size(1 << 16)
        .build_layer();
    io.ns("/", async |socket: SocketRef| {
        socket.on("echo", async |Data::<Value>(payload), ack: AckSender| {
            let _ = ack.send(&payload);
        });
        socket.on(
            "join",
            async |socket: SocketRef, Data::<String>(room), ack: AckSender| {
                socket.join(room);
                let _ = ack.send(&());
            },
        );
        socket.on(
            "bcast",
            async |io: SocketIo, Data::<(String, Value)>((room, payload)), ack: AckSender| {
                let _ = io.to(room).emit("msg", &payload).await;
                let _ = ack.send(&());
            },
        );
    });
    let app = axum::Router::new().layer(layer);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    eprintln!("socketioxide-bench-server on ws://{}/socket.io/", listener.local_addr()?);
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
}
