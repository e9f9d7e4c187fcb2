//! Membership: this node's heartbeat, and the live nodes.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::time::Instant;

use super::{Cluster, ClusterError, Inner};

impl Cluster {
    /// Waits (at most `within`) until at least `count` nodes are live, this
    /// one included; returns them.
    ///
    /// Only heartbeats that start after the call count: what it returns is
    /// never a view from before (a transport outage, say).
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
            Err(_) => Err(ClusterError::TooFewNodes {
                live: self.nodes().len(),
                expected: count,
            }),
        }
    }

    /// Leaves the cluster on purpose: stops the heartbeat and removes this
    /// node from the live set, so that requests stop waiting for it at once.
    /// (A node that dies without leaving is dropped when its heartbeat
    /// lapses.)
    pub async fn leave(&self) -> Result<(), ClusterError> {
        self.inner.left.store(true, Ordering::SeqCst);
        Ok(self
            .inner
            .transport
            .remove_node(&self.inner.node_id)
            .await?)
    }

    /// The live nodes, read from the transport now.
    pub(super) async fn read_live(&self) -> Result<HashSet<String>, ClusterError> {
        let inner = &*self.inner;
        let nodes = inner
            .transport
            .live_nodes(inner.options.node_timeout)
            .await?;
        Ok(nodes.into_iter().collect())
    }
}

/// Refreshes this node's heartbeat and reads the live nodes, every
/// `heartbeat`, once subscribed.
pub(super) async fn run_heartbeat(weak: Weak<Inner>) {
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
        // Not subscribed, or the transport unreachable: past the node
        // timeout, what this node knows of the others is too old to wait for
        // any of them (and they count it dead too).
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
pub(super) async fn beat(inner: &Inner) -> Result<(), ClusterError> {
    let nodes = inner
        .transport
        .heartbeat(&inner.node_id, inner.options.node_timeout)
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
