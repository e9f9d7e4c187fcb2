//! The Socket.IO tutorial's chat, with every message stored and nothing lost,
//! inside an axum app next to ordinary routes.
//!
//! ```sh
//! cargo run --example axum_chat -- 3000     # then open http://127.0.0.1:3000/
//! ```
//!
//! - The official client sends `chat message` (content, clientOffset): the
//!   message is stored once per clientOffset (a retry is acknowledged, not
//!   stored again), then everyone gets `chat message` (content, serverOffset).
//! - A client that connects with `auth.serverOffset` first gets every message
//!   after it, then live ones; a short disconnection is recovered.
//! - Everything that is not Socket.IO (`/`, `/hello`) is axum's.

use std::sync::Arc;

use axum::response::Html;
use axum::routing::get;
use axum::Router;
use tether::extract::Data;
use tether::store::{Durability, SqliteStore};
use tether::{AckSender, Args, ArgsExt, Config, Socket, SocketIo};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let port: u16 = std::env::args().nth(1).map_or(Ok(3000), |p| p.parse())?;
    // One file, created on first use.
    let path = std::env::var("CHAT_DB").unwrap_or_else(|_| "chat.db".into());
    let store = Arc::new(SqliteStore::open(&path, Durability::Fsync)?);
    let mut io = SocketIo::builder().config(Config::default()).store(store);
    // The official client's bundle (npm socket.io-client), served at
    // /socket.io/socket.io.js as the Node server does.
    let bundle = std::env::var("SOCKET_IO_CLIENT_JS").unwrap_or_else(|_| {
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/web/node_modules/socket.io-client/dist/socket.io.min.js"
        )
        .into()
    });
    match std::fs::read(&bundle) {
        Ok(js) => io = io.client_bundle(js),
        Err(e) => eprintln!("no client bundle at {bundle} ({e}): run `npm ci` in web/"),
    }
    let io = io.build()?;

    io.ns("/", |socket: Socket| async move {
        socket.on(
            "chat message",
            |socket: Socket,
             Data((content, client_offset)): Data<(String, String)>,
             ack: Option<AckSender>| async move {
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
            },
        );
    })
    .catch_up_from_auth("serverOffset");

    let app = Router::new()
        .route("/", get(|| async { Html(PAGE) }))
        .route("/hello", get(|| async { "hello from axum" }))
        .layer(io.layer());
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    println!("listening on http://{}/", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}

/// The tutorial's page (its final step).
const PAGE: &str = r#"<!DOCTYPE html>
<html>
  <head><meta charset="utf-8"><title>Socket.IO chat</title></head>
  <body>
    <ul id="messages"></ul>
    <form id="form" action=""><input id="input" autocomplete="off" /><button>Send</button></form>
    <script src="/socket.io/socket.io.js"></script>
    <script>
      let counter = 0;
      const socket = io({ auth: { serverOffset: 0 }, ackTimeout: 10000, retries: 3 });
      const form = document.getElementById('form');
      const input = document.getElementById('input');
      const messages = document.getElementById('messages');
      form.addEventListener('submit', (e) => {
        e.preventDefault();
        if (input.value) {
          const clientOffset = `${socket.id}-${counter++}`;
          socket.emit('chat message', input.value, clientOffset);
          input.value = '';
        }
      });
      socket.on('chat message', (msg, serverOffset) => {
        const item = document.createElement('li');
        item.textContent = msg;
        messages.appendChild(item);
        window.scrollTo(0, document.body.scrollHeight);
        socket.auth.serverOffset = serverOffset;
      });
    </script>
  </body>
</html>
"#;
