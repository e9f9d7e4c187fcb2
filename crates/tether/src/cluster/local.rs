//! This node, as the cluster sees it: what the cluster needs of the local
//! server (implemented by the Socket.IO layer, so that the cluster does not
//! depend on it).

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

use tether_proto::socketio::Args;

use super::transport::BoxFuture;
use super::wire::{Selection, SocketInfo};
use crate::error::{AckError, EmitError};

/// A connected socket of this node.
pub(crate) trait LocalSocket: std::fmt::Debug + Send + Sync + 'static {
    /// Its namespace.
    fn nsp(&self) -> &str;
    /// A snapshot of its id, rooms, data and handshake.
    fn info(&self) -> SocketInfo;
    /// Makes it join `room`.
    fn join(&self, room: String);
    /// Makes it leave `room`.
    fn leave(&self, room: &str);
    /// Disconnects it from its namespace, or (`close`) closes its connection.
    fn disconnect(&self, close: bool);
    /// Sends it an event.
    fn emit(&self, event: &str, args: Args) -> Result<(), EmitError>;
    /// Sends it an event (queued on the first poll) and waits at most
    /// `timeout` for its acknowledgement.
    fn emit_with_ack(
        &self,
        event: String,
        args: Args,
        timeout: Duration,
    ) -> BoxFuture<'static, Result<Args, AckError>>;
    /// The concrete socket, for [`crate::cluster::RemoteSocket::as_local`].
    fn as_any(&self) -> &dyn Any;
}

/// The sockets of this node, by selection.
pub(crate) trait LocalNode: Send + Sync + 'static {
    /// The connected sockets of this node selected by `sel`.
    fn sockets(&self, sel: &Selection) -> Vec<Arc<dyn LocalSocket>>;
    /// Sends an event to the selected sockets of this node, not stored;
    /// returns to how many.
    fn emit(&self, sel: &Selection, event: &str, args: Args, volatile: bool) -> usize;
    /// Stores an event for `sel` (delivered on every node by the store's
    /// feed); `None` when the namespace has no store.
    fn store_emit(&self, sel: &Selection, event: &str, args: Args)
        -> Option<Result<(), EmitError>>;
}
