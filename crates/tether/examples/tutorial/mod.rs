//! The Socket.IO tutorial's chat, with every message stored once: the part
//! the examples share (`chat.rs`, `axum_chat.rs`).
//!
//! - The official client sends `chat message` (content, clientOffset): the
//!   message is stored once per clientOffset (a retry is acknowledged, not
//!   stored again), then everyone gets `chat message` (content, serverOffset).
//! - A client that connects with `auth.serverOffset` first gets every message
//!   after it, then live ones; a short disconnection is recovered.

use tether::extract::Data;
use tether::{AckSender, Args, ArgsExt, Socket, SocketIo};

/// The tutorial's page (its final step), loading the client from
/// `/socket.io/socket.io.js`.
pub const PAGE: &str = include_str!("index.html");

/// The official client's bundle (npm `socket.io-client`, installed by
/// `npm ci` in crates/tether-server/web/), or `SOCKET_IO_CLIENT_JS`.
pub fn client_bundle() -> Option<Vec<u8>> {
    let path = std::env::var("SOCKET_IO_CLIENT_JS").unwrap_or_else(|_| {
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tether-server/web/node_modules/socket.io-client/dist/socket.io.min.js"
        )
        .into()
    });
    match std::fs::read(&path) {
        Ok(js) => Some(js),
        Err(e) => {
            eprintln!(
                "no client bundle at {path} ({e}): run `npm ci` in crates/tether-server/web/"
            );
            None
        }
    }
}

/// Registers the chat on namespace `/` of `io` (which has a store).
pub fn chat(io: &SocketIo) {
    io.ns("/", |socket: Socket| async move {
        socket.on("chat message", on_message);
    })
    .catch_up_from_auth("serverOffset");
}

async fn on_message(
    socket: Socket,
    Data((content, client_offset)): Data<(String, String)>,
    ack: Option<AckSender>,
) {
    let mut args = Args::new();
    if args.push(&content).is_err() {
        return;
    }
    args.push_seq(); // the message's own position: the tutorial's serverOffset
    let Some(all) = socket.io().of("/") else {
        return;
    };
    let stored = all.publish_once(client_offset, "chat message", args);
    if let Some(ack) = ack {
        // Acknowledged once stored, without holding up the next message.
        ack.send_after(async move { (stored.await.is_ok(),) });
    }
}
