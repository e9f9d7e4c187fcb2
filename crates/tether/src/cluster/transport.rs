//! What the cluster needs from the bus its nodes share: channels to publish
//! on and subscribe to, and a registry of the nodes' heartbeats.
//!
//! `RedisTransport` (feature `redis`) is the Redis one (pub/sub and a sorted
//! set). Another backend fits when it has a publish/subscribe of its own
//! (PostgreSQL's `LISTEN`/`NOTIFY` and a table of heartbeats, say): the
//! messages are small JSON documents, loss is tolerated (requests have
//! deadlines), and nothing is stored.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use crate::error::TransportError;

/// A future of a transport, boxed so that [`Transport`] is object safe.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A channel of the cluster. The transport names it in its own namespace
/// (Redis: `<prefix>:cluster:all`, `<prefix>:cluster:node:<id>`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Channel {
    /// Read by every node.
    All,
    /// Read by one node: its requests and the replies to its own requests.
    Node(String),
}

/// The bus shared by the nodes of a cluster.
///
/// Every operation must end within a bound of the transport's choosing (a
/// few seconds): the cluster relies on failures showing up as errors, not
/// as waits. Delivery is best effort: a message may be lost when a
/// connection drops (the cluster's requests have deadlines, and nothing
/// stored travels here).
pub trait Transport: Send + Sync + 'static {
    /// Sends `payload` to every node subscribed to `channel`.
    fn publish<'a>(
        &'a self,
        channel: &'a Channel,
        payload: &'a [u8],
    ) -> BoxFuture<'a, Result<(), TransportError>>;

    /// Subscribes to `channels`. The subscription lasts until its
    /// [`Subscription::next`] returns `None` (the connection was lost): the
    /// cluster then subscribes again.
    fn subscribe<'a>(
        &'a self,
        channels: &'a [Channel],
    ) -> BoxFuture<'a, Result<Box<dyn Subscription>, TransportError>>;

    /// Records that `node` is live now, forgets the nodes silent for much
    /// longer than `node_timeout` (ten times), and returns the nodes heard
    /// from within `node_timeout`, `node` included.
    fn heartbeat<'a>(
        &'a self,
        node: &'a str,
        node_timeout: Duration,
    ) -> BoxFuture<'a, Result<Vec<String>, TransportError>>;

    /// The nodes heard from within `node_timeout`.
    fn live_nodes(
        &self,
        node_timeout: Duration,
    ) -> BoxFuture<'_, Result<Vec<String>, TransportError>>;

    /// Removes `node` from the registry (it left on purpose).
    fn remove_node<'a>(&'a self, node: &'a str) -> BoxFuture<'a, Result<(), TransportError>>;
}

/// A subscription to some channels of a [`Transport`].
pub trait Subscription: Send {
    /// The next message's payload; `None` once the subscription is lost.
    /// Cancel safe: dropping the future loses no message.
    fn next(&mut self) -> BoxFuture<'_, Option<Vec<u8>>>;

    /// Checks that a quiet subscription is still connected (called after a
    /// second without messages): an error ends the subscription, and the
    /// cluster subscribes again. A connection that hangs silently would
    /// otherwise miss every request.
    fn check(&mut self) -> BoxFuture<'_, Result<(), TransportError>>;
}
