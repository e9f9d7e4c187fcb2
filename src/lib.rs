//! Tether: a Socket.IO v5 server (Engine.IO v4) for tokio, wire-compatible
//! with the official clients.
//!
//! Layers, bottom up:
//! - [`tether_proto`]: the sans-IO protocol (packets, session state machine);
//! - [`engine`]: Engine.IO over HTTP long-polling and WebSocket (hyper);
//! - the Socket.IO API: [`SocketIo`], [`Socket`], [`BroadcastOperator`].
//!
//! ```no_run
//! use tether::extract::Data;
//! use tether::{AckSender, Config, Socket, SocketIo};
//!
//! #[tokio::main]
//! async fn main() -> std::io::Result<()> {
//!     let io = SocketIo::new(Config::default());
//!     io.ns("/", |socket: Socket| async move {
//!         socket.on(
//!             "chat message",
//!             |socket: Socket, Data(text): Data<String>, ack: Option<AckSender>| async move {
//!                 let _ = socket.broadcast().emit("chat message", (text,));
//!                 if let Some(ack) = ack {
//!                     let _ = ack.send(("ok",));
//!                 }
//!             },
//!         );
//!     });
//!     io.serve(tokio::net::TcpListener::bind("127.0.0.1:3000").await?).await
//! }
//! ```
//!
//! Handlers take extractors as arguments ([`extract`]), as in axum.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod cluster;
mod config;
mod delivery;
pub mod engine;
mod error;
mod id;
pub mod layer;
pub mod metrics;
pub mod server;
mod sio;
pub mod store;

pub use config::Config;
pub use delivery::{delivered_args, format_offset, parse_offset, Recovery};
pub use engine::{Cors, Transports};
pub use error::{AckError, ConnectError, DisconnectReason, EmitError};
pub use layer::{SocketIoLayer, SocketIoMiddleware};
pub use server::SocketIoService;
pub use sio::extract;
pub use sio::{
    AckSender, Args, ArgsExt, BroadcastOperator, Builder, Event, Handshake, History, HistoryEntry,
    HistoryError, Inbox, IntoArgs, NamespaceRef, Socket, SocketIo, MAX_HISTORY_PAGE,
};
pub use tether_proto as proto;
pub use tether_proto::socketio::ArgError;
pub use tether_proto::socketio::Parser;
