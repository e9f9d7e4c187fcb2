//! Tether client: a Socket.IO v5 client (Engine.IO v4) for tokio, with
//! delivery guarantees.
//!
//! - Engine.IO: long-polling, WebSocket, polling upgraded to WebSocket,
//!   heartbeat (a connection without ping for `pingInterval + pingTimeout`
//!   is dead), extra headers and query parameters; TLS for `https`/`wss`
//!   URLs (rustls with the ring provider, both transports; the Mozilla roots
//!   of webpki-roots, plus [`ClientBuilder::tls_root_certificate`], or a
//!   complete [`ClientBuilder::tls_config`]).
//! - Socket.IO: one [`Manager`] (connection) with several namespaces
//!   ([`Socket`]s), auth at every connect (a value or a closure), events with
//!   serde-typed arguments ([`Args`]), acknowledgements both ways, binary
//!   both ways, JSON or msgpack parser.
//! - Reconnection with exponential backoff and jitter ([`Reconnection`]);
//!   emits made while disconnected are buffered (bounded) and sent in order.
//! - Delivery: `ack_timeout` + `retries` with the official client's semantics
//!   (one emit in flight, in order, a new ack id per try);
//!   [`Socket::emit_reliable`] adds a message id that every try reuses, for
//!   exactly-once storage on the server; connection state recovery
//!   (`{pid, offset}` sent back at reconnection, Tether offsets
//!   `t.<epoch>.<seq>` recognised, duplicates dropped, [`Socket::recovered`],
//!   [`Socket::recovery_report`]).
//! - Durable state ([`ClientBuilder::state_file`], a SQLite file): an
//!   **outbox** where every reliable emit is recorded before it is sent and
//!   removed once acknowledged, so that emits not acknowledged when the
//!   process dies (even `kill -9`) are sent again, first, in order and with
//!   the same message ids, by the next client on the file (with Tether:
//!   stored exactly once); and the positions of the server delivery streams.
//! - Server delivery streams ([`Stream`], Tether's `catch_up_from_auth`, the
//!   tutorial's `auth.serverOffset`): the last position received is sent in
//!   auth at every connect, events at or before it are dropped, and with a
//!   state file the position of each handled event is saved, so "what did I
//!   miss" works across restarts of the client process.
//! - Inboxes ([`Socket::on_inbox`], Tether's `io.inbox(user)`): an entry is
//!   acknowledged (removed from the user's inbox on the server) once its
//!   handler returns; one delivered again is acknowledged without running
//!   the handler twice.
//!
//! ```no_run
//! use tether_client::Client;
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let client = Client::builder("http://127.0.0.1:3000")
//!         .auth(serde_json::json!({ "name": "ada" }))
//!         .on("chat message", |ev| async move {
//!             let text: String = ev.args().get(0).unwrap_or_default();
//!             println!("{text}");
//!         })
//!         .build()
//!         .await?;
//!     let ack = client.emit_with_ack("echo", ("hello",)).await?;
//!     println!("acked: {:?}", ack.get::<String>(0)?);
//!     client.close();
//!     Ok(())
//! }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod args;
mod backoff;
mod client;
mod durable;
mod engine;
mod error;
mod manager;
mod offset;
mod socket;
mod stream;
mod tls;
mod url;

pub use args::{ArgError, Args, IntoArgs};
pub use backoff::Reconnection;
pub use client::{Client, ClientBuilder};
pub use durable::StateError;
pub use engine::{Handshake, Transport};
pub use error::{AckError, ConnectError, DisconnectReason, EmitError, EngineError, Error};
pub use manager::{Lifecycle, LifecycleStream, Manager};
pub use offset::OffsetRule;
pub use socket::{AckSender, Auth, BoxFuture, Event, EventStream, Reliable, Socket, SocketOptions};
pub use stream::{Position, Stream};
pub use tether_proto::socketio::Parser;
pub use tether_proto::tether::{Offset, RecoveryReport, Refusal};

/// The rustls version the client uses, for [`ClientBuilder::tls_config`].
pub use rustls;
