//! Cluster-wide operations across the Tether nodes sharing one store and one
//! message bus (Redis, or PostgreSQL's `LISTEN`/`NOTIFY`).
//!
//! Stored events already reach every node through the store's feed (see
//! `store::RedisStore`). What is not stored travels here, over the bus
//! ([`Transport`]; Redis pub/sub with `RedisTransport`, feature `redis`;
//! `LISTEN`/`NOTIFY` with `PostgresTransport`, feature `postgres`): requests that
//! act on the sockets of every node (`fetch_sockets`, `sockets_join`,
//! `sockets_leave`, `disconnect_sockets`, broadcasts with acknowledgements)
//! and server-side emits that are not stored (volatile). The bus may lose a
//! message when a connection drops; these are control messages with a
//! deadline, never stored deliveries, so a loss shows up as a node that did
//! not answer in time.
//!
//! - Membership: every node has a random id and refreshes its heartbeat in
//!   the transport's registry (Redis: a sorted set `<prefix>:cluster:nodes`
//!   scored by last-seen time, ms). A node is live while its heartbeat is
//!   younger than [`ClusterOptions::node_timeout`]. The nodes' clocks are
//!   assumed to agree to well within that timeout.
//! - Requests go to [`Channel::All`] (every node; Redis `<prefix>:cluster:all`)
//!   or [`Channel::Node`] (one node; `<prefix>:cluster:node:<id>`), with an
//!   id and a timeout; a node answers on the requester's own channel. A
//!   request waits only for the nodes live when it was sent, and stops
//!   waiting for one whose heartbeat lapses, so a dead node's requests
//!   finish cleanly.
//! - Broadcast with acknowledgements: each node first says how many sockets
//!   it sent the event to, then sends their acknowledgements one by one, so
//!   the requester knows how many to expect from every node.
//!
//! A server is part of a cluster when built with [`crate::SocketIo::with_cluster`]
//! (or [`crate::Builder::cluster_with`] on any transport). Without one, every
//! operation stays on the node and costs nothing more.

mod local;
mod membership;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "redis")]
mod redis;
mod remote;
mod request;
mod subscriber;
#[cfg(test)]
mod tests;
mod transport;
mod wire;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

pub use crate::error::{ClusterError, TransportError};
pub(crate) use local::{LocalNode, LocalSocket};
#[cfg(feature = "postgres")]
pub use postgres::PostgresTransport;
#[cfg(feature = "redis")]
pub use redis::RedisTransport;
pub use remote::RemoteSocket;
pub use transport::{BoxFuture, Channel, Subscription, Transport};
pub use wire::HandshakeSummary;
pub(crate) use wire::{Selection, SocketInfo};

use wire::Reply;

/// Fire-and-forget messages (emits) waiting for the transport; more are
/// dropped.
const OUTBOX: usize = 16_384;

/// Settings of the cluster layer.
///
/// ```
/// use std::time::Duration;
/// let options = tether::cluster::ClusterOptions {
///     heartbeat: Duration::from_millis(500),
///     node_timeout: Duration::from_secs(2),
///     ..Default::default()
/// };
/// assert!(options.node_timeout > options.heartbeat);
/// ```
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// How often a node refreshes its heartbeat and reads who is live.
    pub heartbeat: Duration,
    /// A node whose heartbeat is older than this is considered dead: requests
    /// stop waiting for it. Several heartbeats long.
    pub node_timeout: Duration,
    /// How long `fetch_sockets`, `sockets_join`, `sockets_leave` and
    /// `disconnect_sockets` wait for the other nodes (and the grace added to a
    /// broadcast's ack timeout).
    pub request_timeout: Duration,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        Self {
            heartbeat: Duration::from_secs(1),
            node_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(5),
        }
    }
}

/// A store whose backend also carries the cluster: every node shares it
/// (its feed brings the stored events of every node), and it opens a
/// [`Transport`] on the same backend (`store::RedisStore`, feature `redis`).
pub trait ClusterStore: crate::store::Store {
    /// A transport to the other nodes sharing this store. Called within a
    /// tokio runtime.
    fn cluster_transport(&self) -> Result<Arc<dyn Transport>, ClusterError>;
}

/// This node's membership of a cluster: its id, the live nodes, and the
/// request channel to the others. Cheap to clone.
///
/// ```no_run
/// # async fn demo(io: tether::SocketIo) {
/// let cluster = io.cluster().expect("built with SocketIo::with_cluster");
/// let nodes = cluster
///     .wait_nodes(3, std::time::Duration::from_secs(10))
///     .await
///     .expect("three nodes live");
/// println!("{} sees {nodes:?}", cluster.node_id());
/// # }
/// ```
#[derive(Clone)]
pub struct Cluster {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("node", &self.inner.node_id)
            .finish_non_exhaustive()
    }
}

struct Inner {
    node_id: String,
    options: ClusterOptions,
    transport: Arc<dyn Transport>,
    local: Arc<dyn LocalNode>,
    next_id: AtomicU64,
    pending: Mutex<HashMap<u64, mpsc::UnboundedSender<(String, Reply)>>>,
    /// Live nodes (this one included), as of the last heartbeat.
    live: watch::Sender<Arc<HashSet<String>>>,
    /// Successful heartbeats so far.
    beats: watch::Sender<u64>,
    /// When the last successful heartbeat ended.
    last_beat: Mutex<Instant>,
    /// Subscribed to this node's channels.
    ready: watch::Sender<bool>,
    /// Left the cluster on purpose: no more heartbeats.
    left: AtomicBool,
    outbox: mpsc::Sender<(Channel, Vec<u8>)>,
}

impl Drop for Inner {
    /// The server is gone: leave the live set at once (best effort, when a
    /// runtime is at hand), rather than when the heartbeat lapses.
    fn drop(&mut self) {
        if self.left.load(Ordering::SeqCst) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let transport = self.transport.clone();
        let node = std::mem::take(&mut self.node_id);
        runtime.spawn(async move {
            let _ = transport.remove_node(&node).await;
        });
    }
}

impl Cluster {
    /// Joins the cluster of the nodes sharing `transport`: starts the
    /// subscriber, the heartbeat and the outbox (within a tokio runtime).
    pub(crate) fn start(
        transport: Arc<dyn Transport>,
        options: ClusterOptions,
        local: Arc<dyn LocalNode>,
    ) -> Cluster {
        let (outbox, outgoing) = mpsc::channel(OUTBOX);
        let node_id = crate::id::random_id();
        let inner = Arc::new(Inner {
            live: watch::Sender::new(Arc::new(HashSet::from([node_id.clone()]))),
            beats: watch::Sender::new(0),
            last_beat: Mutex::new(Instant::now()),
            node_id,
            options,
            transport: transport.clone(),
            local,
            next_id: AtomicU64::new(1),
            pending: Mutex::new(HashMap::new()),
            ready: watch::Sender::new(false),
            left: AtomicBool::new(false),
            outbox,
        });
        tokio::spawn(request::run_outbox(transport, outgoing));
        tokio::spawn(subscriber::run_subscriber(Arc::downgrade(&inner)));
        tokio::spawn(membership::run_heartbeat(Arc::downgrade(&inner)));
        Cluster { inner }
    }

    /// This node's id (random, new at every start).
    pub fn node_id(&self) -> &str {
        &self.inner.node_id
    }

    /// The live nodes as of the last heartbeat, this one included, sorted.
    pub fn nodes(&self) -> Vec<String> {
        let mut nodes: Vec<String> = self.inner.live.borrow().iter().cloned().collect();
        nodes.sort();
        nodes
    }

    /// True while this node is subscribed to its channels (it answers the
    /// other nodes and gets their replies).
    pub fn is_connected(&self) -> bool {
        *self.inner.ready.borrow()
    }

    /// Waits (at most `within`) until this node's subscriber is connected
    /// (`connected` true) or not; returns whether it got there. A health
    /// check, or a test of a transport outage.
    pub async fn wait_connection(&self, connected: bool, within: Duration) -> bool {
        let mut ready = self.inner.ready.subscribe();
        let seen = tokio::time::timeout(within, ready.wait_for(|r| *r == connected)).await;
        matches!(seen, Ok(Ok(_)))
    }

    /// Waits (at most `within`) until this node is subscribed.
    async fn ready(&self, within: Duration) -> Result<(), ClusterError> {
        let mut ready = self.inner.ready.subscribe();
        let seen = tokio::time::timeout(within, ready.wait_for(|r| *r)).await;
        match seen {
            Ok(Ok(_)) => Ok(()),
            _ => Err(ClusterError::NotReady),
        }
    }
}
