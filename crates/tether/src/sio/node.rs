//! A socket of this node as the cluster layer acts on it
//! ([`crate::cluster`] defines what it needs; this implements it, so that
//! the cluster does not depend on the Socket.IO layer).

use std::any::Any;
use std::time::Duration;

use super::socket::Socket;
use super::Args;
use crate::cluster::{BoxFuture, HandshakeSummary, LocalSocket, RemoteSocket, SocketInfo};
use crate::error::{AckError, EmitError};

impl LocalSocket for Socket {
    fn nsp(&self) -> &str {
        Socket::nsp(self)
    }

    fn info(&self) -> SocketInfo {
        SocketInfo {
            id: self.id().to_owned(),
            rooms: self.rooms(),
            data: self.data(),
            handshake: summary(self),
        }
    }

    fn join(&self, room: String) {
        Socket::join(self, room);
    }

    fn leave(&self, room: &str) {
        Socket::leave(self, room);
    }

    fn disconnect(&self, close: bool) {
        if close {
            self.close_transport();
        } else {
            Socket::disconnect(self);
        }
    }

    fn emit(&self, event: &str, args: Args) -> Result<(), EmitError> {
        Socket::emit(self, event, args)
    }

    fn emit_with_ack(
        &self,
        event: String,
        args: Args,
        timeout: Duration,
    ) -> BoxFuture<'static, Result<Args, AckError>> {
        let socket = self.clone();
        Box::pin(async move { socket.emit_with_ack_timeout(&event, args, timeout).await })
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// What `socket` sent when it connected, as every node sees it.
fn summary(socket: &Socket) -> HandshakeSummary {
    let h = socket.handshake();
    HandshakeSummary {
        auth: h.auth.clone(),
        uri: h.uri.to_string(),
        headers: h
            .headers
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
            .collect(),
        address: h.address.map(|a| a.to_string()),
        issued_ms: h
            .issued
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0),
    }
}

impl RemoteSocket {
    /// The socket itself, when it is on this node.
    pub fn as_local(&self) -> Option<&Socket> {
        self.local_socket()?.as_any().downcast_ref::<Socket>()
    }
}
