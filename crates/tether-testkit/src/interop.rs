//! The interop contract (see tests/node/README.md): the handlers the Node
//! scenario scripts expect, shared by the integration tests and
//! `examples/interop_server.rs`.

use std::time::Duration;

use serde_json::json;
use tether::{Args, ConnectError, Event, Socket, SocketIo};

fn welcome(socket: &Socket) {
    let hello = json!({ "id": socket.id(), "nsp": socket.nsp(), "auth": socket.handshake().auth });
    let _ = socket.emit("welcome", (hello,));
}

fn on_echo(socket: &Socket) {
    socket.on("echo", |socket: Socket, mut ev: Event| async move {
        let args = ev.take_args();
        if ev.wants_ack() {
            let _ = ev.ack(args);
        } else {
            let _ = socket.emit("echo", args);
        }
    });
}

/// Argument `i` alone, binary attachments kept.
fn arg(args: &Args, i: usize) -> Args {
    let value = args.values().get(i).cloned().into_iter().collect();
    Args::from_raw(value, args.attachments().to_vec())
}

fn on_main(io: &SocketIo, socket: &Socket) {
    on_echo(socket);
    socket.on("server-ack", |socket: Socket, mut ev: Event| async move {
        let n: i64 = ev.args().get(0).unwrap_or_default();
        let reply = socket
            .emit_with_ack_timeout("ask", (n,), Duration::from_secs(5))
            .await;
        let _ = match reply {
            Ok(args) => ev.ack(args),
            Err(e) => ev.ack((json!({ "error": e.to_string() }),)),
        };
    });
    socket.on("join", |socket: Socket, mut ev: Event| async move {
        if let Ok(room) = ev.args().get::<String>(0) {
            socket.join(room);
        }
        let _ = ev.ack(("joined",));
    });
    socket.on("leave", |socket: Socket, mut ev: Event| async move {
        if let Ok(room) = ev.args().get::<String>(0) {
            socket.leave(&room);
        }
        let _ = ev.ack(("left",));
    });
    let io2 = io.clone();
    socket.on("bcast", move |_: Socket, mut ev: Event| {
        let io = io2.clone();
        async move {
            let room: String = ev.args().get(0).unwrap_or_default();
            let _ = io.to(room).emit("msg", arg(ev.args(), 1));
            let _ = ev.ack(("sent",));
        }
    });
    socket.on("bcast-others", |socket: Socket, mut ev: Event| async move {
        let room: String = ev.args().get(0).unwrap_or_default();
        let _ = socket.to(room).emit("msg", arg(ev.args(), 1));
        let _ = ev.ack(("sent",));
    });
    let io3 = io.clone();
    socket.on("gather", move |_: Socket, mut ev: Event| {
        let io = io3.clone();
        async move {
            let room: String = ev.args().get(0).unwrap_or_default();
            let replies = io
                .to(room)
                .timeout(Duration::from_secs(2))
                .emit_with_ack("ask", (1,))
                .await;
            let answer = match replies {
                Ok(replies) => {
                    let mut values = Vec::new();
                    for reply in replies {
                        match reply.map(|args| args.get::<serde_json::Value>(0)) {
                            Ok(Ok(v)) => values.push(v),
                            Ok(Err(e)) => {
                                return drop(ev.ack((json!({ "error": e.to_string() }),)))
                            }
                            Err(e) => return drop(ev.ack((json!({ "error": e.to_string() }),))),
                        }
                    }
                    values.sort_by_key(|v| v.as_i64());
                    json!(values)
                }
                Err(e) => json!({ "error": e.to_string() }),
            };
            let _ = ev.ack((answer,));
        }
    });
    socket.on("disconnect-me", |socket: Socket, _: Event| async move {
        socket.disconnect();
    });
    socket.on("drop-transport", |socket: Socket, _: Event| async move {
        socket.close_transport();
    });
}

fn is_dyn(name: &str) -> bool {
    name.strip_prefix("/dyn-")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|c| c.is_ascii_digit()))
}

/// Registers the contract's namespaces on `io`.
pub fn install(io: &SocketIo) {
    let io2 = io.clone();
    io.ns("/", move |socket: Socket| {
        let io = io2.clone();
        async move {
            welcome(&socket);
            on_main(&io, &socket);
        }
    });
    io.ns("/custom", |socket: Socket| async move {
        welcome(&socket);
        on_echo(&socket);
    });
    io.ns("/admin", |socket: Socket| async move {
        welcome(&socket);
        on_echo(&socket);
    })
    .with(|socket: Socket| async move {
        if socket
            .handshake()
            .auth
            .get("token")
            .and_then(|t| t.as_str())
            == Some("secret")
        {
            Ok(())
        } else {
            Err(ConnectError::new("unauthorized").with_data(json!({ "code": 401 })))
        }
    });
    io.dyn_ns(is_dyn, |socket: Socket| async move {
        welcome(&socket);
        on_echo(&socket);
    });
}

/// The contract's settings: quick heartbeats so that dead peers show up fast.
pub fn config() -> tether::Config {
    tether::Config::default()
        .ping_interval(Duration::from_millis(1_000))
        .ping_timeout(Duration::from_millis(2_000))
}
