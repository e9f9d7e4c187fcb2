//! The subscriber: reads this node's channels, answers the other nodes'
//! requests, and hands replies to the requests waiting for them.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use super::membership::beat;
use super::transport::Channel;
use super::wire::{Message, Op, Reply, Selection, WireAck, WireArgs};
use super::{ClusterError, Inner};
use crate::error::AckError;

/// Subscribes to the cluster's channel and this node's own, dispatches what
/// arrives, and subscribes again after a connection loss.
pub(super) async fn run_subscriber(weak: Weak<Inner>) {
    const MIN_BACKOFF: Duration = Duration::from_millis(50);
    const MAX_BACKOFF: Duration = Duration::from_secs(2);
    const ALIVE_CHECK: Duration = Duration::from_secs(1);
    let mut backoff = MIN_BACKOFF;
    loop {
        let (transport, channels) = match weak.upgrade() {
            Some(inner) => (
                inner.transport.clone(),
                [Channel::All, Channel::Node(inner.node_id.clone())],
            ),
            None => return,
        };
        match transport.subscribe(&channels).await {
            Ok(mut subscription) => {
                backoff = MIN_BACKOFF;
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
                        message = subscription.next() => message,
                        () = tokio::time::sleep(ALIVE_CHECK) => {
                            if weak.strong_count() == 0 {
                                return;
                            }
                            // A quiet subscriber checks its connection: one
                            // that hangs silently would miss every request.
                            if let Err(e) = subscription.check().await {
                                tracing::warn!(error = %e, "cluster subscriber does not answer");
                                break;
                            }
                            continue;
                        }
                    };
                    let Some(message) = message else { break };
                    let Some(inner) = weak.upgrade() else { return };
                    on_message(&inner, &message);
                }
                if let Some(inner) = weak.upgrade() {
                    inner.ready.send_replace(false);
                }
                tracing::warn!("cluster subscriber disconnected: subscribing again");
            }
            Err(e) => tracing::warn!(error = %e, "cluster: cannot subscribe"),
        }
        drop(transport);
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
            sockets: local.sockets(sel).iter().map(|s| s.info()).collect(),
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
                socket.disconnect(close);
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
                let ack = socket.emit_with_ack(event.clone(), args.clone(), timeout);
                async move {
                    let result = match ack.await {
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
    let channel = Channel::Node(to.to_owned());
    let sent = inner.transport.publish(&channel, &bytes).await;
    if let Err(e) = &sent {
        tracing::warn!(error = %e, "cluster: a reply was lost");
    }
    Ok(sent?)
}
