//! Typed errors.

use std::time::Duration;

/// A namespace refused the connection (CONNECT_ERROR): a middleware's error,
/// or `Invalid namespace`.
///
/// ```
/// let e = tether_client::ConnectError { message: "unauthorized".into(), data: None };
/// assert_eq!(e.to_string(), "unauthorized");
/// ```
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct ConnectError {
    /// The error message (`err.message` on the server).
    pub message: String,
    /// The error's data (`err.data` on the server), if any.
    pub data: Option<serde_json::Value>,
}

/// Why a client could not connect.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The URL could not be used.
    #[error("invalid url: {0}")]
    InvalidUrl(String),
    /// An extra header name or value was invalid.
    #[error("invalid header: {0}")]
    InvalidHeader(String),
    /// The Engine.IO connection could not be opened.
    #[error("cannot open the connection: {0}")]
    Open(#[from] EngineError),
    /// The namespace refused the connection.
    #[error("namespace refused the connection: {0}")]
    Refused(#[from] ConnectError),
    /// Every reconnection attempt failed.
    #[error("could not connect after {0} attempts")]
    ReconnectFailed(u32),
    /// The client was closed (or the server closed the namespace) before the
    /// connection completed.
    #[error("the client is closed")]
    Closed,
    /// The connection did not complete within the configured time.
    #[error("connection timed out after {0:?}")]
    Timeout(Duration),
    /// The TLS settings are invalid (a root certificate that cannot be used, say).
    #[error("tls: {0}")]
    Tls(#[from] rustls::Error),
    /// The state file could not be opened or read.
    #[error(transparent)]
    State(#[from] crate::durable::StateError),
}

/// Why the Engine.IO connection could not be opened or was lost.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// An HTTP request failed or was answered with an error status.
    #[error("http: {0}")]
    Http(String),
    /// The WebSocket could not be opened or failed.
    #[error("websocket: {0}")]
    WebSocket(String),
    /// The server's answer was not an Engine.IO v4 handshake.
    #[error("bad handshake: {0}")]
    Handshake(String),
    /// The handshake did not complete in time.
    #[error("timeout")]
    Timeout,
    /// No transport is allowed by the settings.
    #[error("no transport available")]
    NoTransport,
}

/// Why an emit failed before reaching the wire.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EmitError {
    /// An argument could not be serialised to JSON.
    #[error("cannot serialise an argument: {0}")]
    Serialize(#[from] serde_json::Error),
    /// Disconnected, and the buffer of emits waiting for the reconnection is full.
    #[error("the send buffer is full")]
    BufferFull,
    /// The socket was closed by the application, or refused by the server.
    #[error("the socket is closed")]
    Closed,
    /// The event name is reserved (`connect`, `connect_error`, `disconnect`,
    /// `disconnecting`, `newListener`, `removeListener`).
    #[error("{0:?} is a reserved event name")]
    Reserved(String),
    /// The emit could not be recorded in the outbox of the state file.
    #[error("cannot record the emit in the outbox: {0}")]
    State(#[from] crate::durable::StateError),
}

/// Why an acknowledgement did not arrive.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AckError {
    /// The emit itself failed.
    #[error(transparent)]
    Emit(#[from] EmitError),
    /// No acknowledgement within the timeout (after every retry, for
    /// reliable emits).
    #[error("operation has timed out")]
    Timeout,
    /// The connection was lost while the acknowledgement was awaited.
    #[error("socket has been disconnected")]
    Disconnected,
}

/// Why a socket disconnected, with the official client's reason strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DisconnectReason {
    /// The server disconnected the socket (`socket.disconnect()`): no
    /// automatic reconnection.
    IoServerDisconnect,
    /// The application disconnected the socket.
    IoClientDisconnect,
    /// No ping from the server within `pingInterval + pingTimeout`.
    PingTimeout,
    /// The connection was closed (the server closed it, or it was lost).
    TransportClose,
    /// The connection failed.
    TransportError,
    /// The server sent a packet that could not be decoded.
    ParseError,
    /// The manager was closed.
    ForcedClose,
}

impl DisconnectReason {
    /// The reason as the official client names it.
    pub fn as_str(self) -> &'static str {
        match self {
            DisconnectReason::IoServerDisconnect => "io server disconnect",
            DisconnectReason::IoClientDisconnect => "io client disconnect",
            DisconnectReason::PingTimeout => "ping timeout",
            DisconnectReason::TransportClose => "transport close",
            DisconnectReason::TransportError => "transport error",
            DisconnectReason::ParseError => "parse error",
            DisconnectReason::ForcedClose => "forced close",
        }
    }

    /// True when the client reconnects by itself after this reason.
    pub fn reconnects(self) -> bool {
        !matches!(
            self,
            DisconnectReason::IoServerDisconnect
                | DisconnectReason::IoClientDisconnect
                | DisconnectReason::ForcedClose
        )
    }
}

impl std::fmt::Display for DisconnectReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
