//! The server the official protocol test suites run against
//! (github socketio/engine.io-protocol and socketio/socket.io-protocol,
//! folder `test-suite/`).
//!
//! Usage: `cargo run --example conformance -- [--cors ORIGIN] [PORT]` (default
//! 3000), on 127.0.0.1 (`--cors` lets a page from ORIGIN run the suites in a
//! browser):
//! - `/engine.io/`: a bare Engine.IO endpoint echoing every message;
//! - `/socket.io/`: Socket.IO, namespaces `/` and `/custom` (both emit `auth`
//!   with the handshake auth on connection); on `/`, `message` is echoed as
//!   `message-back` and `message-with-ack` is acknowledged with its arguments.

use std::sync::Arc;
use std::time::Duration;

use tether::engine::{ConnHandler, Engine, EngineConn, EngineHandler};
use tether::proto::engine::{CloseReason, Frame};
use tether::{Config, Event, Socket, SocketIo};

/// Echoes every Engine.IO message back to its sender.
struct Echo;

struct EchoConn(Arc<EngineConn>);

impl EngineHandler for Echo {
    fn on_open(&self, conn: &Arc<EngineConn>) -> Arc<dyn ConnHandler> {
        Arc::new(EchoConn(conn.clone()))
    }
}

impl ConnHandler for EchoConn {
    fn on_message(&self, frame: Frame) {
        let frame = match frame {
            Frame::Text(text) => {
                let mut out = Vec::with_capacity(text.len() + 1);
                out.push(b'4');
                out.extend_from_slice(&text);
                Frame::Text(out.into())
            }
            binary => binary,
        };
        let _ = self.0.send(&[frame]);
    }

    fn on_close(&self, _: CloseReason) {}
}

fn config(path: &str, cors: &[String]) -> Config {
    Config::default()
        .cors(tether::Cors {
            origins: cors.to_vec(),
            credentials: false,
        })
        .path(path)
        .ping_interval(Duration::from_millis(300))
        .ping_timeout(Duration::from_millis(200))
        .max_payload(1_000_000)
        .connect_timeout(Duration::from_millis(1_000))
}

async fn on_connect(socket: Socket) {
    let auth = socket.handshake().auth.clone();
    let _ = socket.emit("auth", (auth,));
    socket.on("message", |socket: Socket, mut ev: Event| async move {
        let _ = socket.emit("message-back", ev.take_args());
    });
    socket.on("message-with-ack", |_: Socket, mut ev: Event| async move {
        let args = ev.take_args();
        let _ = ev.ack(args);
    });
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let port: u16 = args.last().and_then(|p| p.parse().ok()).unwrap_or(3000);
    let cors: Vec<String> = args
        .windows(2)
        .filter(|w| w[0] == "--cors")
        .map(|w| w[1].clone())
        .collect();

    let io = SocketIo::new(config("/socket.io/", &cors));
    io.ns("/", on_connect);
    io.ns("/custom", on_connect);

    let engine = Engine::new(
        config("/engine.io/", &cors).engine_options(),
        Arc::new(Echo),
    );
    let sio = io.service();

    let listener = tether::server::bind(([127, 0, 0, 1], port).into()).await?;
    eprintln!("conformance server on http://127.0.0.1:{port}");
    tether::server::serve(
        listener,
        move |req| {
            let engine = engine.clone();
            let sio = sio.clone();
            async move {
                if engine.matches(req.uri().path()) {
                    engine.handle(req).await
                } else {
                    sio.handle(req).await
                }
            }
        },
        std::future::pending(),
    )
    .await
}
