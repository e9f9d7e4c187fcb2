//! Tether client: a Socket.IO v5 client (Engine.IO v4) for tokio, with
//! delivery guarantees.
//!
//! - Engine.IO: long-polling, WebSocket, polling upgraded to WebSocket,
//!   heartbeat (a connection without ping for `pingInterval + pingTimeout`
//!   is dead), extra headers and query parameters.
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
mod engine;
mod error;
mod manager;
mod offset;
mod socket;
mod url;

pub use args::{ArgError, Args, IntoArgs};
pub use backoff::Reconnection;
pub use client::{Client, ClientBuilder};
pub use engine::{Handshake, Transport};
pub use error::{AckError, ConnectError, DisconnectReason, EmitError, EngineError, Error};
pub use manager::{Lifecycle, LifecycleStream, Manager};
pub use offset::{parse_tether_offset, OffsetRule};
pub use socket::{
    AckSender, Auth, BoxFuture, Event, EventStream, RecoveryReport, Reliable, Socket, SocketOptions,
};
pub use tether_proto::socketio::Parser;
