//! Sans-IO implementation of the Engine.IO v4 and Socket.IO v5 protocols.
//!
//! Nothing in this crate performs I/O or reads a clock: bytes and instants go in,
//! events and bytes come out. The `tether` crate drives these types from tokio.
//!
//! - [`engine`]: Engine.IO packets, the long-polling payload framing and the
//!   per-session state machine (heartbeats, upgrade, outgoing queue).
//! - [`socketio`]: Socket.IO packets, with the default JSON parser (binary
//!   attachments included) and the msgpack parser.
//! - [`tether`]: Tether's own additions, shared by its server and client
//!   (recovery offsets, the report on a refused recovery).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod engine;
pub mod socketio;
pub mod tether;
