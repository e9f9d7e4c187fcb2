//! Requests to the other nodes, and the gathering of their replies.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tether_proto::socketio::Args;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::transport::{Channel, Transport};
use super::wire::{Message, Op, Reply, Selection, WireAck, WireArgs};
use super::{Cluster, ClusterError, Inner};
use crate::error::AckError;

/// Which nodes a request goes to.
pub(super) enum To {
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
pub(super) struct Unfinished {
    /// Their heartbeat lapsed.
    pub(super) dead: Vec<String>,
    /// Still live at the deadline.
    pub(super) late: Vec<String>,
}

impl Cluster {
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
    /// with a warning, when the transport is too far behind.
    pub(crate) fn forward_emit(&self, sel: &Selection, event: &str, args: &Args, volatile: bool) {
        let op = Op::Emit {
            event: event.to_owned(),
            args: WireArgs::new(args),
            volatile,
            stored: false,
        };
        self.send_nowait(Channel::All, sel, op);
    }

    /// Queues a request nobody answers for the outbox.
    pub(super) fn send_nowait(&self, channel: Channel, sel: &Selection, op: Op) {
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
    pub(super) async fn count_request(
        &self,
        to: To,
        sel: &Selection,
        op: Op,
    ) -> Result<usize, ClusterError> {
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
    pub(super) async fn request(
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
        let (channel, mut waiting): (Channel, HashSet<String>) = match to {
            To::All => (
                Channel::All,
                live.iter()
                    .filter(|n| **n != inner.node_id)
                    .cloned()
                    .collect(),
            ),
            To::Node(node) => {
                if !live.contains(&node) {
                    return Err(ClusterError::NodeGone(node));
                }
                (Channel::Node(node.clone()), HashSet::from([node]))
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
        inner.transport.publish(&channel, &bytes).await?;
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
}

/// Publishes fire-and-forget messages in order; ends with the cluster.
pub(super) async fn run_outbox(
    transport: Arc<dyn Transport>,
    mut outgoing: mpsc::Receiver<(Channel, Vec<u8>)>,
) {
    while let Some((channel, bytes)) = outgoing.recv().await {
        if let Err(e) = transport.publish(&channel, &bytes).await {
            tracing::warn!(error = %e, "cluster: an emit to other nodes was lost");
        }
    }
}
