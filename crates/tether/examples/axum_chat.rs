//! The Socket.IO tutorial's chat, with every message stored and nothing lost,
//! inside an axum app next to ordinary routes.
//!
//! ```sh
//! cargo run --example axum_chat -- 3000     # then open http://127.0.0.1:3000/
//! ```
//!
//! Everything that is not Socket.IO (`/`, `/hello`) is axum's; the chat
//! itself is in `tutorial/mod.rs`.

mod tutorial;

use std::sync::Arc;

use axum::response::Html;
use axum::routing::get;
use axum::Router;
use tether::store::{Durability, SqliteStore};
use tether::SocketIo;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let port: u16 = std::env::args().nth(1).map_or(Ok(3000), |p| p.parse())?;
    // One file, created on first use.
    let path = std::env::var("CHAT_DB").unwrap_or_else(|_| "chat.db".into());
    let store = Arc::new(SqliteStore::open(&path, Durability::Fsync)?);
    let mut io = SocketIo::builder().store(store);
    // Served at /socket.io/socket.io.js, as the Node server does.
    if let Some(js) = tutorial::client_bundle() {
        io = io.client_bundle(js);
    }
    let io = io.build()?;
    tutorial::chat(&io);

    let app = Router::new()
        .route("/", get(|| async { Html(tutorial::PAGE) }))
        .route("/hello", get(|| async { "hello from axum" }))
        .layer(io.layer());
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    println!("listening on http://{}/", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}
