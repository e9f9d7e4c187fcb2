//! Tether: a Socket.IO v5 server (Engine.IO v4) for tokio that does not lose
//! messages. The official clients (npm `socket.io-client` 4.x in Node and the
//! browser, and the Rust `tether-client`) work unchanged: long-polling,
//! WebSocket, upgrade, namespaces, rooms, acks, binary.
//!
//! - [A chat in 30 lines](#a-chat-in-30-lines)
//! - [Handlers and extractors](#handlers-and-extractors)
//! - [Stores and delivery guarantees](#stores-and-delivery-guarantees)
//! - [Mounting: standalone, tower, axum](#mounting-standalone-tower-axum)
//! - [Clusters](#clusters)
//! - [Feature flags](#feature-flags)
//!
//! # A chat in 30 lines
//!
//! The Socket.IO tutorial's chat with every message stored once (a client's
//! retry is acknowledged, not stored again), a reconnecting page catching up
//! from its last `serverOffset`, and acks that mean "stored durably":
//!
//! ```no_run
//! use std::sync::Arc;
//! use tether::extract::Data;
//! use tether::store::SqliteStore;
//! use tether::{AckSender, Args, ArgsExt, Socket, SocketIo};
//!
//! async fn on_message(
//!     socket: Socket,
//!     Data((text, client_offset)): Data<(String, String)>,
//!     ack: Option<AckSender>,
//! ) {
//!     let mut args = Args::new();
//!     if args.push(&text).is_err() {
//!         return;
//!     }
//!     args.push_seq(); // the message's position: the client's serverOffset
//!     let Some(all) = socket.io().of("/") else { return };
//!     let stored = all.publish_once(client_offset, "chat message", args);
//!     if let Some(ack) = ack {
//!         ack.send_after(async move { (stored.await.is_ok(),) });
//!     }
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let store = Arc::new(SqliteStore::open("chat.db", Default::default())?);
//!     let io = SocketIo::builder().store(store).build()?;
//!     io.ns("/", |socket: Socket| async move {
//!         socket.on("chat message", on_message);
//!     })
//!     .catch_up_from_auth("serverOffset");
//!     io.serve(tokio::net::TcpListener::bind("127.0.0.1:3000").await?).await?;
//!     Ok(())
//! }
//! ```
//!
//! The crate's `examples/` hold the same chat standalone with its page
//! (`chat.rs`, on SQLite or Redis) and inside axum next to other routes
//! (`axum_chat.rs`).
//!
//! # Handlers and extractors
//!
//! An event handler is an async function whose arguments are extractors
//! ([`extract`]), as in axum: the [`Socket`]; [`extract::Data<T>`] (the event's
//! arguments deserialised with serde: the handler is not called when they are
//! not a `T`); [`extract::TryData<T>`] (the `Result`, to answer a bad argument
//! yourself); [`AckSender`] or `Option<AckSender>` (the client's ack, which may
//! answer once a future resolves with [`AckSender::send_after`]);
//! [`extract::State<T>`] (given with [`Builder::with_state`]); the
//! [`SocketIo`] handle; or the raw [`Event`]. The handlers of one socket run one
//! at a time in the order the client sent its events.
//!
//! Emitting: `socket.emit(..)`, `io.to("room").except("other").emit(..)`,
//! `.volatile()`, `.timeout(d).emit_with_ack(..)` gathering every receiver's
//! ack; a broadcast is encoded once and shares its bytes with every receiver.
//!
//! # Stores and delivery guarantees
//!
//! Without a store, Tether is Socket.IO as usual: at most once. With one
//! ([`Builder::store`]):
//!
//! - **Connection state recovery** the official client understands (private
//!   session id and packet offset), kept in the store: it survives a restart
//!   and works across nodes.
//! - **Stored events** ([`BroadcastOperator::publish`]) have a position in an
//!   ordered stream; a reconnecting client gets exactly what it missed, then
//!   live events, with no gap, duplicate or reordering between the two.
//! - **Exactly-once from clients**: [`BroadcastOperator::publish_once`] stores
//!   an event at most once per client-chosen key.
//! - **Inboxes** ([`Inbox`]): messages for a user kept until that user's client
//!   acknowledges them.
//!
//! Stores: [`store::SqliteStore`] (one file, group commit, feature `sqlite`),
//! `store::RedisStore` (Redis Streams, shared by several nodes, feature
//! `redis`), `store::PostgresStore` (PostgreSQL, shared by several nodes,
//! feature `postgres`), [`store::MemoryStore`] (tests, lost with the process), or your
//! own implementing the [`store`] traits.
//!
//! # Mounting: standalone, tower, axum
//!
//! [`SocketIo::serve`] runs a server of its own; [`SocketIo::layer`] is a tower
//! `Layer` that answers the Socket.IO path and passes every other request to
//! the service it wraps (`Router::new().route("/hello", ..).layer(io.layer())`
//! in axum); [`SocketIo::service`] is the tower `Service` for the Socket.IO
//! path alone. [`server::serve`] is the hardened accept loop (header, body and
//! write timeouts, back-off when out of file descriptors) for your own handler.
//! Limits on payloads, buffers, connections and idle time are on by default
//! ([`Config`]).
//!
//! # Clusters
//!
//! Several servers on one Redis are one cluster (`Builder::cluster`): stored
//! events reach every node through the store (on one PostgreSQL database
//! too, with a `store::PostgresStore`), and [`cluster`] carries what is
//! not stored (`fetch_sockets`, `sockets_join`, `disconnect_sockets`,
//! broadcasts with acks, volatile emits).
//!
//! # Feature flags
//!
//! | feature | default | what |
//! |---|---|---|
//! | `sqlite` | yes | [`store::SqliteStore`], the embedded store (bundled SQLite) |
//! | `redis` | no | `store::RedisStore` and the cluster transport over Redis |
//! | `postgres` | no | `store::PostgresStore` and the cluster transport over LISTEN/NOTIFY (tokio-postgres with a deadpool pool; no TLS) |
//! | `tls` | no | HTTPS and WSS in the server loop: `tls::Tls`, `server::ServeOptions::tls` (rustls, ring) |
//!
//! Metrics go through the [`metrics`](https://docs.rs/metrics) facade
//! ([`metrics::describe`] names every series); install any recorder.
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
#[cfg(feature = "tls")]
pub mod tls;

pub use config::Config;
pub use delivery::{delivered_args, Recovery};
pub use engine::{Cors, Transports};
pub use error::{AckError, ConnectError, DisconnectReason, EmitError};
pub use layer::{SocketIoLayer, SocketIoMiddleware};
pub use server::SocketIoService;
pub use sio::extract;
pub use sio::{
    AckSender, Args, ArgsExt, BroadcastOperator, Builder, Event, Handshake, History, HistoryEntry,
    HistoryError, Inbox, IntoArgs, NamespaceRef, Socket, SocketChange, SocketIo, MAX_HISTORY_PAGE,
};
pub use tether_proto as proto;
pub use tether_proto::socketio::ArgError;
pub use tether_proto::socketio::Parser;
pub use tether_proto::tether::{Offset, RecoveryReport, Refusal};
