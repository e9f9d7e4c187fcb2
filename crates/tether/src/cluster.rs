//! Cluster-wide operations across the Tether nodes sharing one Redis.
//!
//! Stored events already reach every node through the store's feed (see
//! [`crate::store::RedisStore`]). What is not stored travels here, over Redis
//! pub/sub: requests that act on the sockets of every node (`fetch_sockets`,
//! `sockets_join`, `sockets_leave`, `disconnect_sockets`, broadcasts with
//! acknowledgements) and server-side emits that are not stored (volatile).
//! Pub/sub may lose a message when a connection drops; these are control
//! messages with a deadline, never stored deliveries, so a loss shows up as a
//! node that did not answer in time.
//!
//! - Membership: every node has a random id and refreshes its heartbeat, a
//!   sorted set `<prefix>:cluster:nodes` scored by last-seen time (ms). A node
//!   is live while its heartbeat is younger than
//!   [`ClusterOptions::node_timeout`]. The nodes' clocks are assumed to agree
//!   to well within that timeout.
//! - Requests go to `<prefix>:cluster:all` (every node) or
//!   `<prefix>:cluster:node:<id>` (one node), with an id and a timeout; a node
//!   answers on the requester's own channel. A request waits only for the
//!   nodes live when it was sent, and stops waiting for one whose heartbeat
//!   lapses, so a dead node's requests finish cleanly.
//! - Broadcast with acknowledgements: each node first says how many sockets
//!   it sent the event to, then sends their acknowledgements one by one, so
//!   the requester knows how many to expect from every node.
//!
//! A server is part of a cluster when built with [`crate::SocketIo::with_cluster`].
//! Without one, every operation stays on the node and costs nothing more.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use futures_util::StreamExt;
use parking_lot::Mutex;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::Client;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::error::{AckError, EmitError};
use crate::{Args, IntoArgs, Socket};

/// Bound on one Redis command of the cluster layer.
const OP_TIMEOUT: Duration = Duration::from_secs(3);
/// Fire-and-forget messages (emits) waiting for Redis; more are dropped.
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

/// Why a cluster operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClusterError {
    /// Redis failed or did not answer.
    #[error("cluster: redis: {0}")]
    Redis(String),
    /// The node is not subscribed to its channels (Redis unreachable since
    /// it started, or reconnecting).
    #[error("cluster: this node is not connected to Redis")]
    NotReady,
    /// The node holding a remote socket is not live any more.
    #[error("cluster: node {0} is gone")]
    NodeGone(String),
    /// The node holding a remote socket did not answer in time.
    #[error("cluster: node {0} did not answer in time")]
    NoAnswer(String),
    /// A message could not be encoded.
    #[error("cluster: cannot encode a message: {0}")]
    Encode(#[from] serde_json::Error),
    /// An emit on this node failed.
    #[error(transparent)]
    Emit(#[from] EmitError),
}

fn redis_error(e: redis::RedisError) -> ClusterError {
    ClusterError::Redis(e.to_string())
}

async fn bounded<T>(
    op: impl std::future::Future<Output = redis::RedisResult<T>>,
) -> Result<T, ClusterError> {
    match tokio::time::timeout(OP_TIMEOUT, op).await {
        Ok(result) => result.map_err(redis_error),
        Err(_) => Err(ClusterError::Redis(format!(
            "no answer within {OP_TIMEOUT:?}"
        ))),
    }
}

// ---------------------------------------------------------------------------
// What travels between nodes

/// The sockets an operation acts on: those of a namespace in any of `rooms`
/// (every socket when empty) and in none of `except`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Selection {
    pub(crate) nsp: String,
    pub(crate) rooms: Vec<String>,
    pub(crate) except: Vec<String>,
}

impl Selection {
    fn socket(nsp: &str, id: &str) -> Self {
        Selection {
            nsp: nsp.to_owned(),
            rooms: vec![id.to_owned()],
            except: Vec::new(),
        }
    }
}

/// Event arguments on the wire: the JSON values, and binary attachments in
/// base64. (Raw values are why the message enums are externally tagged:
/// serde buffers internally tagged content, which a `RawValue` refuses.)
#[derive(Debug, Clone, Serialize, Deserialize)]
struct WireArgs {
    values: Vec<Box<RawValue>>,
    attachments: Vec<String>,
}

impl WireArgs {
    fn new(args: &Args) -> Self {
        let b64 = base64::engine::general_purpose::STANDARD;
        WireArgs {
            values: args.values().to_vec(),
            attachments: args.attachments().iter().map(|b| b64.encode(b)).collect(),
        }
    }

    fn into_args(self) -> Option<Args> {
        let b64 = base64::engine::general_purpose::STANDARD;
        let attachments = self
            .attachments
            .iter()
            .map(|a| b64.decode(a).ok().map(Bytes::from))
            .collect::<Option<Vec<_>>>()?;
        Some(Args::from_raw(self.values, attachments))
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Op {
    Fetch,
    Join {
        rooms: Vec<String>,
    },
    Leave {
        rooms: Vec<String>,
    },
    Disconnect {
        close: bool,
    },
    /// Not answered.
    Emit {
        event: String,
        args: WireArgs,
        volatile: bool,
        /// Store it (a durable namespace), rather than send it directly.
        stored: bool,
    },
    EmitWithAck {
        event: String,
        args: WireArgs,
        ack_timeout_ms: u64,
    },
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Reply {
    Sockets { sockets: Vec<SocketInfo> },
    Done { count: usize },
    AckCount { count: usize },
    Ack { result: WireAck },
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum WireAck {
    Ok(WireArgs),
    Timeout,
    Disconnected,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Message {
    Request {
        id: u64,
        from: String,
        timeout_ms: u64,
        sel: Selection,
        op: Op,
    },
    Reply {
        id: u64,
        from: String,
        reply: Reply,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct SocketInfo {
    id: String,
    rooms: Vec<String>,
    data: Option<serde_json::Value>,
    handshake: HandshakeSummary,
}

impl SocketInfo {
    fn of(socket: &Socket) -> Self {
        SocketInfo {
            id: socket.id().to_owned(),
            rooms: socket.rooms(),
            data: socket.data(),
            handshake: HandshakeSummary::of(socket),
        }
    }
}

/// What a socket sent when it connected, as every node sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HandshakeSummary {
    /// The CONNECT packet's auth payload.
    pub auth: serde_json::Value,
    /// URI of the Engine.IO handshake request.
    pub uri: String,
    /// Headers of the handshake request (those that are valid UTF-8).
    pub headers: Vec<(String, String)>,
    /// The peer address, when known.
    pub address: Option<String>,
    /// When the socket connected, in milliseconds since the Unix epoch.
    pub issued_ms: i64,
}

impl HandshakeSummary {
    fn of(socket: &Socket) -> Self {
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
}

// ---------------------------------------------------------------------------
// This node, as the cluster sees it

/// What the cluster layer needs of the local server (implemented by the
/// Socket.IO layer).
pub(crate) trait LocalNode: Send + Sync + 'static {
    /// The connected sockets of this node selected by `sel`.
    fn sockets(&self, sel: &Selection) -> Vec<Socket>;
    /// Sends an event to the selected sockets of this node, not stored;
    /// returns to how many.
    fn emit(&self, sel: &Selection, event: &str, args: Args, volatile: bool) -> usize;
    /// Stores an event for `sel` (delivered on every node by the store's
    /// feed); `None` when the namespace has no store.
    fn store_emit(&self, sel: &Selection, event: &str, args: Args)
        -> Option<Result<(), EmitError>>;
}

// ---------------------------------------------------------------------------
// The cluster

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
            .field("prefix", &self.inner.prefix)
            .finish_non_exhaustive()
    }
}

struct Inner {
    node_id: String,
    prefix: String,
    options: ClusterOptions,
    conn: ConnectionManager,
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
    outbox: mpsc::Sender<(String, Vec<u8>)>,
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
        let mut conn = self.conn.clone();
        let key = self.nodes_key();
        let node = std::mem::take(&mut self.node_id);
        runtime.spawn(async move {
            let _ = bounded(
                redis::cmd("ZREM")
                    .arg(key)
                    .arg(node)
                    .query_async::<()>(&mut conn),
            )
            .await;
        });
    }
}

impl Inner {
    fn nodes_key(&self) -> String {
        format!("{}:cluster:nodes", self.prefix)
    }

    fn all_channel(&self) -> String {
        format!("{}:cluster:all", self.prefix)
    }

    fn node_channel(&self, node: &str) -> String {
        format!("{}:cluster:node:{node}", self.prefix)
    }
}

/// Which nodes a request goes to.
enum To {
    All,
    Node(String),
}

/// Removes a pending request's entry however its wait ends.
struct PendingGuard<'a> {
    inner: &'a Inner,
    id: u64,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        self.inner.pending.lock().remove(&self.id);
    }
}

/// How a gathering ended for the nodes that did not finish answering.
#[derive(Default)]
struct Unfinished {
    /// Their heartbeat lapsed.
    dead: Vec<String>,
    /// Still live at the deadline.
    late: Vec<String>,
}

impl Cluster {
    /// Joins the cluster of the nodes using `client` under `prefix`: starts
    /// the subscriber, the heartbeat and the outbox (within a tokio runtime).
    pub(crate) fn start(
        client: Client,
        prefix: &str,
        options: ClusterOptions,
        local: Arc<dyn LocalNode>,
    ) -> Result<Cluster, ClusterError> {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(OP_TIMEOUT))
            .set_response_timeout(Some(OP_TIMEOUT))
            .set_number_of_retries(2)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_millis(500));
        let conn =
            ConnectionManager::new_lazy_with_config(client.clone(), config).map_err(redis_error)?;
        let (outbox, outgoing) = mpsc::channel(OUTBOX);
        let node_id = crate::id::random_id();
        let inner = Arc::new(Inner {
            live: watch::Sender::new(Arc::new(HashSet::from([node_id.clone()]))),
            beats: watch::Sender::new(0),
            last_beat: Mutex::new(Instant::now()),
            node_id,
            prefix: prefix.to_owned(),
            options,
            conn: conn.clone(),
            local,
            next_id: AtomicU64::new(1),
            pending: Mutex::new(HashMap::new()),
            ready: watch::Sender::new(false),
            left: AtomicBool::new(false),
            outbox,
        });
        tokio::spawn(run_outbox(conn, outgoing));
        tokio::spawn(run_subscriber(Arc::downgrade(&inner), client));
        tokio::spawn(run_heartbeat(Arc::downgrade(&inner)));
        Ok(Cluster { inner })
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

    /// Waits (at most `within`) until at least `count` nodes are live, this
    /// one included; returns them.
    ///
    /// Only heartbeats that start after the call count: what it returns is
    /// never a view from before (a Redis outage, say).
    pub async fn wait_nodes(
        &self,
        count: usize,
        within: Duration,
    ) -> Result<Vec<String>, ClusterError> {
        let mut beats = self.inner.beats.subscribe();
        beats.borrow_and_update();
        let seen = tokio::time::timeout(within, async {
            // The first beat to end may have started before the call.
            beats.changed().await.map_err(|_| ClusterError::NotReady)?;
            loop {
                beats.changed().await.map_err(|_| ClusterError::NotReady)?;
                if self.inner.live.borrow().len() >= count {
                    return Ok(());
                }
            }
        })
        .await;
        match seen {
            Ok(Ok(())) => Ok(self.nodes()),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(ClusterError::NoAnswer(format!(
                "{} live of {count} expected",
                self.nodes().len()
            ))),
        }
    }

    /// True while this node is subscribed to its channels (it answers the
    /// other nodes and gets their replies).
    pub fn is_connected(&self) -> bool {
        *self.inner.ready.borrow()
    }

    /// Waits (at most `within`) until this node's subscriber is connected
    /// (`connected` true) or not; returns whether it got there. A health
    /// check, or a test of a Redis outage.
    pub async fn wait_connection(&self, connected: bool, within: Duration) -> bool {
        let mut ready = self.inner.ready.subscribe();
        let seen = tokio::time::timeout(within, ready.wait_for(|r| *r == connected)).await;
        matches!(seen, Ok(Ok(_)))
    }

    /// Leaves the cluster on purpose: stops the heartbeat and removes this
    /// node from the live set, so that requests stop waiting for it at once.
    /// (A node that dies without leaving is dropped when its heartbeat
    /// lapses.)
    pub async fn leave(&self) -> Result<(), ClusterError> {
        self.inner.left.store(true, Ordering::SeqCst);
        let mut conn = self.inner.conn.clone();
        bounded(
            redis::cmd("ZREM")
                .arg(self.inner.nodes_key())
                .arg(&self.inner.node_id)
                .query_async::<()>(&mut conn),
        )
        .await
    }

    // -- operations the namespace calls -------------------------------------

    /// The selected sockets of the other nodes.
    pub(crate) async fn fetch(&self, sel: &Selection) -> Result<Vec<RemoteSocket>, ClusterError> {
        let mut found: Vec<(String, SocketInfo)> = Vec::new();
        let timeout = self.inner.options.request_timeout;
        self.request(To::All, sel, Op::Fetch, timeout, |from, reply| {
            if let Reply::Sockets { sockets } = reply {
                found.extend(sockets.into_iter().map(|s| (from.to_owned(), s)));
            }
            true
        })
        .await?;
        Ok(found
            .into_iter()
            .map(|(node, info)| RemoteSocket {
                nsp: sel.nsp.clone(),
                info,
                node,
                via: Via::Remote(self.clone()),
            })
            .collect())
    }

    /// Runs join (`leave` false) or leave on the selected sockets of the
    /// other nodes; returns how many sockets it was applied to.
    pub(crate) async fn join_or_leave(
        &self,
        sel: &Selection,
        rooms: Vec<String>,
        leave: bool,
    ) -> Result<usize, ClusterError> {
        let op = if leave {
            Op::Leave { rooms }
        } else {
            Op::Join { rooms }
        };
        self.count_request(To::All, sel, op).await
    }

    /// Disconnects the selected sockets of the other nodes; returns how many.
    pub(crate) async fn disconnect(
        &self,
        sel: &Selection,
        close: bool,
    ) -> Result<usize, ClusterError> {
        self.count_request(To::All, sel, Op::Disconnect { close })
            .await
    }

    /// Sends a non-stored event to the selected sockets of the other nodes,
    /// without waiting (in order with the other emits of this node). Dropped,
    /// with a warning, when Redis is too far behind.
    pub(crate) fn forward_emit(&self, sel: &Selection, event: &str, args: &Args, volatile: bool) {
        let op = Op::Emit {
            event: event.to_owned(),
            args: WireArgs::new(args),
            volatile,
            stored: false,
        };
        let channel = self.inner.all_channel();
        self.send_nowait(channel, sel, op);
    }

    fn send_nowait(&self, channel: String, sel: &Selection, op: Op) {
        let message = Message::Request {
            id: 0,
            from: self.inner.node_id.clone(),
            timeout_ms: 0,
            sel: sel.clone(),
            op,
        };
        match serde_json::to_vec(&message) {
            Ok(bytes) => {
                if self.inner.outbox.try_send((channel, bytes)).is_err() {
                    tracing::warn!("cluster outbox full: an emit to other nodes was dropped");
                }
            }
            Err(e) => tracing::warn!(error = %e, "cluster: cannot encode an emit"),
        }
    }

    /// Sends an event to the selected sockets of the other nodes and gathers
    /// their acknowledgements: every node first reports how many sockets it
    /// sent to, then their acks. A node whose heartbeat lapses gives
    /// `Disconnected` for the acks it still owed; past `ack_timeout` (plus
    /// the request timeout as grace), what is missing is `Timeout`.
    pub(crate) async fn emit_with_ack(
        &self,
        sel: &Selection,
        event: &str,
        args: &Args,
        ack_timeout: Duration,
    ) -> Result<Vec<Result<Args, AckError>>, ClusterError> {
        let op = Op::EmitWithAck {
            event: event.to_owned(),
            args: WireArgs::new(args),
            ack_timeout_ms: u64::try_from(ack_timeout.as_millis()).unwrap_or(u64::MAX),
        };
        let mut expected: HashMap<String, usize> = HashMap::new();
        let mut received: HashMap<String, usize> = HashMap::new();
        let mut results = Vec::new();
        let wait = ack_timeout + self.inner.options.request_timeout;
        let unfinished = self
            .request(To::All, sel, op, wait, |from, reply| {
                match reply {
                    Reply::AckCount { count } => {
                        expected.insert(from.to_owned(), count);
                    }
                    Reply::Ack { result } => {
                        *received.entry(from.to_owned()).or_default() += 1;
                        results.push(match result {
                            WireAck::Ok(args) => args.into_args().ok_or(AckError::Disconnected),
                            WireAck::Timeout => Err(AckError::Timeout),
                            WireAck::Disconnected => Err(AckError::Disconnected),
                        });
                    }
                    _ => {}
                }
                expected
                    .get(from)
                    .is_some_and(|&n| received.get(from).copied().unwrap_or(0) >= n)
            })
            .await?;
        let owed = |node: &String| {
            expected
                .get(node)
                .copied()
                .unwrap_or(0)
                .saturating_sub(received.get(node).copied().unwrap_or(0))
        };
        for node in &unfinished.dead {
            results.extend((0..owed(node)).map(|_| Err(AckError::Disconnected)));
        }
        for node in &unfinished.late {
            results.extend((0..owed(node)).map(|_| Err(AckError::Timeout)));
        }
        Ok(results)
    }

    /// A request answered by one `Done { count }` per node; the sum.
    async fn count_request(&self, to: To, sel: &Selection, op: Op) -> Result<usize, ClusterError> {
        let node = match &to {
            To::Node(node) => Some(node.clone()),
            To::All => None,
        };
        let mut total = 0;
        let timeout = self.inner.options.request_timeout;
        let unfinished = self
            .request(to, sel, op, timeout, |_, reply| {
                if let Reply::Done { count } = reply {
                    total += count;
                }
                true
            })
            .await?;
        if let Some(node) = node {
            if !unfinished.dead.is_empty() {
                return Err(ClusterError::NodeGone(node));
            }
            if !unfinished.late.is_empty() {
                return Err(ClusterError::NoAnswer(node));
            }
        }
        Ok(total)
    }

    /// Sends a request to the live nodes (`To::All`: every other live node)
    /// and hands every reply to `on_reply`, which says whether its node is
    /// done. Ends when every node is done, dead, or `timeout` passed.
    async fn request(
        &self,
        to: To,
        sel: &Selection,
        op: Op,
        timeout: Duration,
        mut on_reply: impl FnMut(&str, Reply) -> bool,
    ) -> Result<Unfinished, ClusterError> {
        let inner = &*self.inner;
        let deadline = Instant::now() + timeout;
        self.ready(timeout.min(inner.options.node_timeout)).await?;
        let live = self.read_live().await?;
        let (channel, mut waiting): (String, HashSet<String>) = match to {
            To::All => (
                inner.all_channel(),
                live.iter()
                    .filter(|n| **n != inner.node_id)
                    .cloned()
                    .collect(),
            ),
            To::Node(node) => {
                if !live.contains(&node) {
                    return Err(ClusterError::NodeGone(node));
                }
                (inner.node_channel(&node), HashSet::from([node]))
            }
        };
        if waiting.is_empty() {
            return Ok(Unfinished::default());
        }
        let id = inner.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, mut rx) = mpsc::unbounded_channel();
        inner.pending.lock().insert(id, tx);
        let _guard = PendingGuard { inner, id };
        let message = Message::Request {
            id,
            from: inner.node_id.clone(),
            timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
            sel: sel.clone(),
            op,
        };
        let bytes = serde_json::to_vec(&message)?;
        publish(inner.conn.clone(), &channel, &bytes).await?;
        let mut unfinished = Unfinished::default();
        let mut membership = inner.live.subscribe();
        while !waiting.is_empty() {
            tokio::select! {
                reply = rx.recv() => {
                    let Some((from, reply)) = reply else { break };
                    if waiting.contains(&from) && on_reply(&from, reply) {
                        waiting.remove(&from);
                    }
                }
                changed = membership.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    let now = membership.borrow_and_update().clone();
                    waiting.retain(|node| {
                        let alive = now.contains(node);
                        if !alive {
                            unfinished.dead.push(node.clone());
                        }
                        alive
                    });
                }
                () = tokio::time::sleep_until(deadline) => {
                    unfinished.late.extend(waiting.drain());
                }
            }
        }
        Ok(unfinished)
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

    /// The live nodes, read from Redis now.
    async fn read_live(&self) -> Result<HashSet<String>, ClusterError> {
        let inner = &*self.inner;
        let since = crate::store::now_ms().saturating_sub(millis(inner.options.node_timeout));
        let mut conn = inner.conn.clone();
        let nodes: Vec<String> = bounded(
            redis::cmd("ZRANGEBYSCORE")
                .arg(inner.nodes_key())
                .arg(since)
                .arg("+inf")
                .query_async(&mut conn),
        )
        .await?;
        Ok(nodes.into_iter().collect())
    }
}

/// PUBLISH, once more on a new connection if the connection was found lost
/// (the first command after a Redis restart fails so).
async fn publish(
    mut conn: ConnectionManager,
    channel: &str,
    bytes: &[u8],
) -> Result<(), ClusterError> {
    bounded(async {
        let once = redis::cmd("PUBLISH")
            .arg(channel)
            .arg(bytes)
            .query_async::<i64>(&mut conn)
            .await;
        match once {
            Err(e)
                if e.is_io_error() || e.is_connection_dropped() || e.is_unrecoverable_error() =>
            {
                redis::cmd("PUBLISH")
                    .arg(channel)
                    .arg(bytes)
                    .query_async::<i64>(&mut conn)
                    .await
            }
            other => other,
        }
    })
    .await
    .map(drop)
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

// ---------------------------------------------------------------------------
// Background tasks

/// Publishes fire-and-forget messages in order; ends with the cluster.
async fn run_outbox(conn: ConnectionManager, mut outgoing: mpsc::Receiver<(String, Vec<u8>)>) {
    while let Some((channel, bytes)) = outgoing.recv().await {
        if let Err(e) = publish(conn.clone(), &channel, &bytes).await {
            tracing::warn!(error = %e, "cluster: an emit to other nodes was lost");
        }
    }
}

/// Refreshes this node's heartbeat and reads the live nodes, every
/// `heartbeat`, once subscribed.
async fn run_heartbeat(weak: Weak<Inner>) {
    let period = match weak.upgrade() {
        Some(inner) => inner.options.heartbeat,
        None => return,
    };
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(inner) = weak.upgrade() else { return };
        if inner.left.load(Ordering::SeqCst) {
            continue;
        }
        if *inner.ready.borrow() {
            match beat(&inner).await {
                Ok(()) => continue,
                Err(e) => tracing::warn!(error = %e, "cluster heartbeat failed"),
            }
        }
        // Not subscribed, or Redis unreachable: past the node timeout, what
        // this node knows of the others is too old to wait for any of them
        // (and they count it dead too).
        if inner.last_beat.lock().elapsed() > inner.options.node_timeout {
            let alone = HashSet::from([inner.node_id.clone()]);
            inner.live.send_if_modified(|live| {
                if **live == alone {
                    false
                } else {
                    *live = Arc::new(alone);
                    true
                }
            });
        }
    }
}

/// One heartbeat: refresh, forget long-dead nodes, read who is live.
async fn beat(inner: &Inner) -> Result<(), ClusterError> {
    let now = crate::store::now_ms();
    let since = now.saturating_sub(millis(inner.options.node_timeout));
    let key = inner.nodes_key();
    let mut conn = inner.conn.clone();
    let (nodes,): (Vec<String>,) = bounded(
        redis::pipe()
            .cmd("ZADD")
            .arg(&key)
            .arg(now)
            .arg(&inner.node_id)
            .ignore()
            .cmd("ZREMRANGEBYSCORE")
            .arg(&key)
            .arg("-inf")
            .arg(format!(
                "({}",
                since.saturating_sub(millis(inner.options.node_timeout) * 10)
            ))
            .ignore()
            .cmd("ZRANGEBYSCORE")
            .arg(&key)
            .arg(since)
            .arg("+inf")
            .query_async(&mut conn),
    )
    .await?;
    let set: HashSet<String> = nodes.into_iter().collect();
    inner.live.send_if_modified(|live| {
        if **live == set {
            false
        } else {
            *live = Arc::new(set);
            true
        }
    });
    *inner.last_beat.lock() = Instant::now();
    inner.beats.send_modify(|n| *n += 1);
    Ok(())
}

/// Subscribes to the cluster's channel and this node's own, dispatches what
/// arrives, and subscribes again after a connection loss.
async fn run_subscriber(weak: Weak<Inner>, client: Client) {
    const MIN_BACKOFF: Duration = Duration::from_millis(50);
    const MAX_BACKOFF: Duration = Duration::from_secs(2);
    const ALIVE_CHECK: Duration = Duration::from_secs(1);
    let mut backoff = MIN_BACKOFF;
    loop {
        let channels = match weak.upgrade() {
            Some(inner) => [inner.all_channel(), inner.node_channel(&inner.node_id)],
            None => return,
        };
        let subscribed = async {
            let mut pubsub = bounded(client.get_async_pubsub()).await?;
            bounded(pubsub.subscribe(&channels)).await?;
            Ok::<_, ClusterError>(pubsub)
        }
        .await;
        match subscribed {
            Ok(pubsub) => {
                backoff = MIN_BACKOFF;
                let (mut sink, mut messages) = pubsub.split();
                {
                    let Some(inner) = weak.upgrade() else { return };
                    inner.ready.send_replace(true);
                    let left = inner.left.load(Ordering::SeqCst);
                    if let Err(e) = if left { Ok(()) } else { beat(&inner).await } {
                        tracing::warn!(error = %e, "cluster: announcing this node failed");
                    }
                }
                loop {
                    let message = tokio::select! {
                        message = messages.next() => message,
                        () = tokio::time::sleep(ALIVE_CHECK) => {
                            if weak.strong_count() == 0 {
                                return;
                            }
                            // A quiet subscriber checks its connection: one
                            // that hangs silently would miss every request.
                            if let Err(e) = bounded(sink.ping::<redis::Value>()).await {
                                tracing::warn!(error = %e, "cluster subscriber does not answer");
                                break;
                            }
                            continue;
                        }
                    };
                    let Some(message) = message else { break };
                    let Some(inner) = weak.upgrade() else { return };
                    on_message(&inner, message.get_payload_bytes());
                }
                if let Some(inner) = weak.upgrade() {
                    inner.ready.send_replace(false);
                }
                tracing::warn!("cluster subscriber disconnected: subscribing again");
            }
            Err(e) => tracing::warn!(error = %e, "cluster: cannot subscribe"),
        }
        if weak.strong_count() == 0 {
            return;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

fn on_message(inner: &Arc<Inner>, payload: &[u8]) {
    let message: Message = match serde_json::from_slice(payload) {
        Ok(message) => message,
        Err(e) => {
            tracing::warn!(error = %e, "cluster: an undecodable message was ignored");
            return;
        }
    };
    match message {
        Message::Request { from, .. } if from == inner.node_id => {}
        Message::Request {
            id,
            from,
            timeout_ms,
            sel,
            op,
        } => {
            let inner = inner.clone();
            tokio::spawn(async move {
                serve(&inner, id, &from, timeout_ms, &sel, op).await;
            });
        }
        Message::Reply { id, from, reply } => {
            if let Some(tx) = inner.pending.lock().get(&id) {
                let _ = tx.send((from, reply));
            }
        }
    }
}

/// Answers a request of node `from` on this node's sockets.
async fn serve(inner: &Inner, id: u64, from: &str, timeout_ms: u64, sel: &Selection, op: Op) {
    let local = &inner.local;
    let reply = match op {
        Op::Fetch => Reply::Sockets {
            sockets: local.sockets(sel).iter().map(SocketInfo::of).collect(),
        },
        Op::Join { rooms } | Op::Leave { rooms } if rooms.is_empty() => Reply::Done { count: 0 },
        Op::Join { rooms } => {
            let sockets = local.sockets(sel);
            for socket in &sockets {
                for room in &rooms {
                    socket.join(room.clone());
                }
            }
            Reply::Done {
                count: sockets.len(),
            }
        }
        Op::Leave { rooms } => {
            let sockets = local.sockets(sel);
            for socket in &sockets {
                for room in &rooms {
                    socket.leave(room);
                }
            }
            Reply::Done {
                count: sockets.len(),
            }
        }
        Op::Disconnect { close } => {
            let sockets = local.sockets(sel);
            for socket in &sockets {
                if close {
                    socket.close_transport();
                } else {
                    socket.disconnect();
                }
            }
            Reply::Done {
                count: sockets.len(),
            }
        }
        Op::Emit {
            event,
            args,
            volatile,
            stored,
        } => {
            let Some(args) = args.into_args() else {
                tracing::warn!("cluster: an emit with undecodable attachments was ignored");
                return;
            };
            if stored {
                if let Some(Err(e)) = local.store_emit(sel, &event, args) {
                    tracing::warn!(error = %e, "cluster: storing a remote socket's emit failed");
                }
            } else {
                local.emit(sel, &event, args, volatile);
            }
            return;
        }
        Op::EmitWithAck {
            event,
            args,
            ack_timeout_ms,
        } => {
            let Some(args) = args.into_args() else {
                tracing::warn!("cluster: an emit with undecodable attachments was ignored");
                return;
            };
            let sockets = local.sockets(sel);
            let count = Reply::AckCount {
                count: sockets.len(),
            };
            if publish_reply(inner, id, from, count).await.is_err() {
                return;
            }
            let timeout = Duration::from_millis(ack_timeout_ms.min(timeout_ms));
            let waits = sockets.into_iter().map(|socket| {
                let args = args.clone();
                let event = event.clone();
                async move {
                    let result = match socket.emit_with_ack_timeout(&event, args, timeout).await {
                        Ok(args) => WireAck::Ok(WireArgs::new(&args)),
                        Err(AckError::Timeout) => WireAck::Timeout,
                        Err(_) => WireAck::Disconnected,
                    };
                    let _ = publish_reply(inner, id, from, Reply::Ack { result }).await;
                }
            });
            futures_util::future::join_all(waits).await;
            return;
        }
    };
    let _ = publish_reply(inner, id, from, reply).await;
}

async fn publish_reply(inner: &Inner, id: u64, to: &str, reply: Reply) -> Result<(), ClusterError> {
    let message = Message::Reply {
        id,
        from: inner.node_id.clone(),
        reply,
    };
    let bytes = serde_json::to_vec(&message)?;
    let sent = publish(inner.conn.clone(), &inner.node_channel(to), &bytes).await;
    if let Err(e) = &sent {
        tracing::warn!(error = %e, "cluster: a reply was lost");
    }
    sent.map(drop)
}

// ---------------------------------------------------------------------------
// Sockets of any node

/// A socket of this node or of another node of the cluster, as returned by
/// [`crate::BroadcastOperator::fetch_sockets`]: a snapshot of its id, rooms,
/// data and handshake, and methods that act on it wherever it is.
///
/// ```no_run
/// # async fn demo(io: tether::SocketIo) -> Result<(), tether::cluster::ClusterError> {
/// for socket in io.to("lobby").fetch_sockets().await? {
///     println!("{} on node {} in {:?}", socket.id(), socket.node_id(), socket.rooms());
///     socket.join("game").await?;
///     socket.emit("moved", ("game",)).await?;
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct RemoteSocket {
    nsp: String,
    info: SocketInfo,
    node: String,
    via: Via,
}

#[derive(Debug, Clone)]
enum Via {
    Local(Socket),
    Remote(Cluster),
}

impl RemoteSocket {
    /// A socket of this node.
    pub(crate) fn local(socket: Socket, node: Option<&str>) -> Self {
        RemoteSocket {
            nsp: socket.nsp().to_owned(),
            info: SocketInfo::of(&socket),
            node: node.unwrap_or_default().to_owned(),
            via: Via::Local(socket),
        }
    }

    /// The socket id.
    pub fn id(&self) -> &str {
        &self.info.id
    }

    /// The namespace.
    pub fn nsp(&self) -> &str {
        &self.nsp
    }

    /// The rooms it was in when fetched (its own id room included), sorted.
    pub fn rooms(&self) -> &[String] {
        &self.info.rooms
    }

    /// Its app data when fetched (`socket.set_data`), if set and of type `T`.
    pub fn data<T: serde::de::DeserializeOwned>(&self) -> Option<T> {
        serde_json::from_value(self.info.data.clone()?).ok()
    }

    /// What it sent when connecting.
    pub fn handshake(&self) -> &HandshakeSummary {
        &self.info.handshake
    }

    /// The id of the node it is connected to (empty without a cluster).
    pub fn node_id(&self) -> &str {
        &self.node
    }

    /// True for a socket of this node.
    pub fn is_local(&self) -> bool {
        matches!(self.via, Via::Local(_))
    }

    /// The socket itself, when it is on this node.
    pub fn as_local(&self) -> Option<&Socket> {
        match &self.via {
            Via::Local(socket) => Some(socket),
            Via::Remote(_) => None,
        }
    }

    /// Sends it an event: stored first when the namespace has a store (and
    /// then delivered by its node with an offset), else sent by its node.
    /// Does not wait for the delivery.
    pub async fn emit(&self, event: &str, args: impl IntoArgs) -> Result<(), ClusterError> {
        let args = args.into_args().map_err(EmitError::from)?;
        match &self.via {
            Via::Local(socket) => Ok(socket.emit(event, args)?),
            Via::Remote(cluster) => {
                let sel = Selection::socket(&self.nsp, self.id());
                match cluster.inner.local.store_emit(&sel, event, args.clone()) {
                    Some(stored) => Ok(stored?),
                    None => {
                        let op = Op::Emit {
                            event: event.to_owned(),
                            args: WireArgs::new(&args),
                            volatile: false,
                            stored: false,
                        };
                        let channel = cluster.inner.node_channel(&self.node);
                        cluster.send_nowait(channel, &sel, op);
                        Ok(())
                    }
                }
            }
        }
    }

    /// Makes it join `room`; resolves once its node did.
    pub async fn join(&self, room: impl Into<String>) -> Result<(), ClusterError> {
        let room = room.into();
        match &self.via {
            Via::Local(socket) => {
                socket.join(room);
                Ok(())
            }
            Via::Remote(cluster) => {
                let sel = Selection::socket(&self.nsp, self.id());
                let op = Op::Join { rooms: vec![room] };
                cluster
                    .count_request(To::Node(self.node.clone()), &sel, op)
                    .await
                    .map(drop)
            }
        }
    }

    /// Makes it leave `room`; resolves once its node did.
    pub async fn leave(&self, room: &str) -> Result<(), ClusterError> {
        match &self.via {
            Via::Local(socket) => {
                socket.leave(room);
                Ok(())
            }
            Via::Remote(cluster) => {
                let sel = Selection::socket(&self.nsp, self.id());
                let op = Op::Leave {
                    rooms: vec![room.to_owned()],
                };
                cluster
                    .count_request(To::Node(self.node.clone()), &sel, op)
                    .await
                    .map(drop)
            }
        }
    }

    /// Disconnects it from the namespace (`close`: closes its whole
    /// connection instead, and the client reconnects by itself); resolves
    /// once its node did.
    pub async fn disconnect(&self, close: bool) -> Result<(), ClusterError> {
        match &self.via {
            Via::Local(socket) => {
                if close {
                    socket.close_transport();
                } else {
                    socket.disconnect();
                }
                Ok(())
            }
            Via::Remote(cluster) => {
                let sel = Selection::socket(&self.nsp, self.id());
                cluster
                    .count_request(To::Node(self.node.clone()), &sel, Op::Disconnect { close })
                    .await
                    .map(drop)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip() {
        let mut args = Args::new();
        args.push(&"hi").expect("a string serialises");
        args.push_binary(vec![1u8, 2, 3]);
        let message = Message::Request {
            id: 7,
            from: "n1".into(),
            timeout_ms: 100,
            sel: Selection {
                nsp: "/".into(),
                rooms: vec!["r".into()],
                except: vec![],
            },
            op: Op::EmitWithAck {
                event: "ask".into(),
                args: WireArgs::new(&args),
                ack_timeout_ms: 50,
            },
        };
        let bytes = serde_json::to_vec(&message).expect("encodes");
        let back: Message = serde_json::from_slice(&bytes).expect("decodes");
        let Message::Request {
            id,
            op: Op::EmitWithAck { args, .. },
            ..
        } = back
        else {
            panic!("a request with acks");
        };
        assert_eq!(id, 7);
        let args = args.into_args().expect("valid base64");
        assert_eq!(args.get::<String>(0).expect("a string"), "hi");
        assert_eq!(args.attachments(), &[Bytes::from_static(&[1, 2, 3])]);
    }

    #[test]
    fn bad_input_is_refused_not_panicking() {
        assert!(serde_json::from_slice::<Message>(br#"{"reply":{"id":1}}"#).is_err());
        let bad = WireArgs {
            values: vec![],
            attachments: vec!["not base64!".into()],
        };
        assert!(bad.into_args().is_none());
    }
}
