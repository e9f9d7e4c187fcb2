//! Error types of the server API.

use serde::Serialize;

/// Why an emit failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EmitError {
    /// An argument could not be serialised to JSON.
    #[error("cannot serialise the arguments: {0}")]
    Serialize(#[from] serde_json::Error),
    /// The socket is not connected any more.
    #[error("the socket is disconnected")]
    Disconnected,
    /// The client does not read fast enough: its send buffer is full, so the
    /// connection was closed (the client reconnects and recovers).
    #[error("the client's send buffer is full")]
    BufferFull,
    /// The store could not keep the event: it was not sent.
    #[error("store: {0}")]
    Store(#[from] crate::store::StoreError),
    /// Publishing needs a store (connection state recovery on), and this
    /// server has none.
    #[error("no store: publishing needs connection state recovery on (SocketIo::with_store)")]
    NoStore,
    /// The other nodes of the cluster could not be reached (a broadcast
    /// with acknowledgements, see [`crate::BroadcastOperator::emit_with_ack`]).
    #[error("{0}")]
    Cluster(#[source] Box<ClusterError>),
}

/// Why an acknowledgement did not arrive.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AckError {
    /// The client did not answer in time.
    #[error("acknowledgement timed out")]
    Timeout,
    /// The socket disconnected before answering.
    #[error("the socket disconnected before acknowledging")]
    Disconnected,
    /// The emit itself failed.
    #[error(transparent)]
    Emit(#[from] EmitError),
}

/// A refusal sent to the client as CONNECT_ERROR by a namespace middleware.
///
/// ```
/// let err = tether::ConnectError::new("unauthorized").with_data(serde_json::json!({"code": 401}));
/// assert_eq!(err.message(), "unauthorized");
/// ```
#[derive(Debug, Clone, Serialize, thiserror::Error)]
#[error("connection refused: {message}")]
pub struct ConnectError {
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<serde_json::Value>,
    #[serde(skip)]
    temporary: bool,
}

impl ConnectError {
    /// A refusal with a message for the client.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            data: None,
            temporary: false,
        }
    }

    /// A failure that should pass (a store or an auth backend that is
    /// down). The official clients take a CONNECT_ERROR as final and never
    /// retry it, so the server closes the connection instead: the client
    /// reconnects with its backoff and gets in once the cause is gone.
    ///
    /// ```
    /// let err = tether::ConnectError::temporary("auth backend unreachable");
    /// assert!(err.is_temporary());
    /// ```
    pub fn temporary(message: impl Into<String>) -> Self {
        Self {
            temporary: true,
            ..Self::new(message)
        }
    }

    /// True for a [`ConnectError::temporary`] failure.
    pub fn is_temporary(&self) -> bool {
        self.temporary
    }

    /// Adds data the client receives in `err.data`.
    pub fn with_data(mut self, data: serde_json::Value) -> Self {
        self.data = Some(data);
        self
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

/// Why a socket left its namespace. The strings are the reference server's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DisconnectReason {
    /// The transport closed (client left, network cut).
    TransportClose,
    /// The transport failed.
    TransportError,
    /// The client stopped answering pings.
    PingTimeout,
    /// The client sent a packet that could not be decoded.
    ParseError,
    /// The server closed the connection.
    ForcedClose,
    /// The client's send buffer overflowed.
    BufferFull,
    /// The server is shutting down.
    ServerShuttingDown,
    /// A newer connection recovered the same session.
    SessionTakenOver,
    /// The client left the namespace.
    ClientNamespaceDisconnect,
    /// The server disconnected the socket.
    ServerNamespaceDisconnect,
}

impl DisconnectReason {
    /// The reason as the reference server names it.
    pub fn as_str(self) -> &'static str {
        match self {
            DisconnectReason::TransportClose => "transport close",
            DisconnectReason::TransportError => "transport error",
            DisconnectReason::PingTimeout => "ping timeout",
            DisconnectReason::ParseError => "parse error",
            DisconnectReason::ForcedClose => "forced close",
            DisconnectReason::BufferFull => "send buffer full",
            DisconnectReason::ServerShuttingDown => "server shutting down",
            DisconnectReason::SessionTakenOver => "session taken over",
            DisconnectReason::ClientNamespaceDisconnect => "client namespace disconnect",
            DisconnectReason::ServerNamespaceDisconnect => "server namespace disconnect",
        }
    }

    pub(crate) fn from_engine(reason: tether_proto::engine::CloseReason) -> Self {
        use tether_proto::engine::CloseReason as C;
        match reason {
            C::TransportClose => DisconnectReason::TransportClose,
            C::TransportError => DisconnectReason::TransportError,
            C::PingTimeout => DisconnectReason::PingTimeout,
            C::ForcedClose => DisconnectReason::ForcedClose,
            C::ParseError => DisconnectReason::ParseError,
            C::BufferFull => DisconnectReason::BufferFull,
        }
    }
}

impl std::fmt::Display for DisconnectReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a cluster operation failed (see [`crate::cluster`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClusterError {
    /// The transport between the nodes (Redis) failed or did not answer.
    #[error("cluster: {0}")]
    Transport(#[from] TransportError),
    /// The node is not subscribed to its channels (the transport unreachable
    /// since it started, or reconnecting).
    #[error("cluster: this node is not connected to the other nodes")]
    NotReady,
    /// The node holding a remote socket is not live any more.
    #[error("cluster: node {0} is gone")]
    NodeGone(String),
    /// The node holding a remote socket did not answer in time.
    #[error("cluster: node {0} did not answer in time")]
    NoAnswer(String),
    /// Fewer nodes than expected were live at the end of the wait
    /// ([`crate::cluster::Cluster::wait_nodes`]).
    #[error("cluster: {live} live of {expected} expected")]
    TooFewNodes {
        /// The live nodes seen last, this one included.
        live: usize,
        /// The number waited for.
        expected: usize,
    },
    /// A message could not be encoded.
    #[error("cluster: cannot encode a message: {0}")]
    Encode(#[from] serde_json::Error),
    /// An emit on this node failed.
    #[error(transparent)]
    Emit(#[from] EmitError),
}

impl From<ClusterError> for EmitError {
    fn from(e: ClusterError) -> Self {
        match e {
            ClusterError::Emit(e) => e,
            other => EmitError::Cluster(Box::new(other)),
        }
    }
}

/// Why the transport of a cluster ([`crate::cluster::Transport`]) failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// The backend did not answer within the transport's bound.
    #[error("{transport}: no answer within {after:?}")]
    Timeout {
        /// The transport (`redis`).
        transport: &'static str,
        /// The bound.
        after: std::time::Duration,
    },
    /// The backend failed.
    #[error("{transport}: {source}")]
    Backend {
        /// The transport (`redis`).
        transport: &'static str,
        /// The backend's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

#[cfg(test)]
mod tests {
    use std::error::Error;

    use super::*;
    use crate::cluster::ClusterError;
    use crate::store::StoreError;

    #[test]
    fn emit_errors_keep_their_sources() {
        let store = EmitError::from(StoreError::Closed);
        assert!(store
            .source()
            .is_some_and(|s| s.downcast_ref::<StoreError>().is_some()));
        let cluster = EmitError::from(ClusterError::NotReady);
        assert_eq!(cluster.to_string(), ClusterError::NotReady.to_string());
        // Boxed: a cluster error may carry an emit error.
        assert!(cluster
            .source()
            .is_some_and(|s| s.downcast_ref::<Box<ClusterError>>().is_some()));
        let ack = AckError::from(EmitError::from(StoreError::Closed));
        assert!(ack.source().is_some_and(|s| s.is::<StoreError>()));
    }
}
