//! The retry queue (the official client's `retries`) and the durable
//! outbox of reliable emits.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use tokio::sync::{mpsc, oneshot, watch};

use crate::args::Args;
use crate::durable::StateFile;
use crate::error::{AckError, EmitError};

use super::state::{Status, RESERVED};
use super::SocketInner;

pub(super) struct QueueItem {
    pub(super) event: String,
    pub(super) args: Args,
    pub(super) reply: oneshot::Sender<Result<Args, AckError>>,
    /// Its outbox entry, when it is kept in the state file.
    pub(super) row: Option<i64>,
}

/// Message ids of reliable emits: unique per client instance.
pub(crate) struct MessageIds {
    pub(super) prefix: String,
    pub(super) next: AtomicU64,
}

impl MessageIds {
    pub(crate) fn new() -> Self {
        let n: u64 = rand::random();
        Self {
            prefix: format!("{n:016x}"),
            next: AtomicU64::new(0),
        }
    }

    pub(super) fn next(&self) -> String {
        format!(
            "{}-{}",
            self.prefix,
            self.next.fetch_add(1, Ordering::Relaxed)
        )
    }
}

impl SocketInner {
    /// Admits one emit of `event` to the retry queue (a reserved name or a
    /// full queue is refused); [`SocketInner::dequeued`] gives the slot back.
    pub(super) fn take_slot(&self, event: &str) -> Result<(), EmitError> {
        if RESERVED.contains(&event) {
            return Err(EmitError::Reserved(event.to_owned()));
        }
        if self.queued.load(Ordering::Acquire) >= self.opts.buffer_capacity {
            return Err(EmitError::BufferFull);
        }
        self.queued.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }

    /// One emit left the retry queue.
    pub(super) fn dequeued(&self) {
        if self.queued.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.idle.notify_waiters();
        }
    }

    /// Records a reliable emit in the outbox, then queues it (on the writer
    /// thread, once committed: the queue order is the outbox order).
    pub(super) fn enqueue_durable(
        self: &Arc<Self>,
        file: &StateFile,
        event: &str,
        args: Args,
        msg_id: &str,
    ) -> Result<oneshot::Receiver<Result<Args, AckError>>, EmitError> {
        self.take_slot(event)?;
        let (reply, rx) = oneshot::channel();
        let (socket, queue, name) = (Arc::downgrade(self), self.queue.clone(), event.to_owned());
        let stored = args.clone();
        file.insert(
            &self.nsp,
            event,
            msg_id,
            &stored,
            Box::new(move |result| {
                let failed = match result {
                    Ok(row) => {
                        let item = QueueItem {
                            event: name,
                            args,
                            reply,
                            row: Some(row),
                        };
                        match queue.send(item) {
                            Ok(()) => return,
                            Err(mpsc::error::SendError(item)) => {
                                (item.reply, AckError::Emit(EmitError::Closed))
                            }
                        }
                    }
                    Err(e) => (reply, AckError::Emit(EmitError::State(e))),
                };
                if let Some(socket) = socket.upgrade() {
                    socket.dequeued();
                }
                let _ = failed.0.send(Err(failed.1));
            }),
        );
        Ok(rx)
    }
}

/// The retry queue (the official client's `retries`): one emit in flight at
/// a time, in order; each try is a new packet with a new ack id.
pub(super) async fn run_queue(
    socket: Weak<SocketInner>,
    mut status: watch::Receiver<Status>,
    mut rx: mpsc::UnboundedReceiver<QueueItem>,
) {
    while let Some(item) = rx.recv().await {
        let stalled = item.row.is_some()
            && socket
                .upgrade()
                .is_some_and(|s| s.outbox_stalled.load(Ordering::Acquire));
        let result = if stalled {
            Err(AckError::Emit(EmitError::Closed))
        } else {
            deliver(&socket, &mut status, &item).await
        };
        let Some(inner) = socket.upgrade() else {
            return;
        };
        inner.dequeued();
        if let (Some(row), Some(file)) = (item.row, &inner.state_file) {
            match &result {
                // Acknowledged: out of the outbox.
                Ok(_) => file.delete(row),
                // Kept in the file; later entries wait behind it.
                Err(_) => inner.outbox_stalled.store(true, Ordering::Release),
            }
        }
        drop(inner);
        let _ = item.reply.send(result);
    }
}

pub(super) async fn deliver(
    socket: &Weak<SocketInner>,
    status: &mut watch::Receiver<Status>,
    item: &QueueItem,
) -> Result<Args, AckError> {
    let mut tries = 0u32;
    loop {
        // Wait for a connection; give up when the socket is closed for good.
        let st = status
            .wait_for(|s| {
                matches!(
                    s,
                    Status::Connected | Status::Closed | Status::Failed(_) | Status::Unreachable(_)
                )
            })
            .await
            .map(|s| s.clone());
        match st {
            Ok(Status::Connected) => {}
            _ => return Err(AckError::Emit(EmitError::Closed)),
        }
        let Some(inner) = socket.upgrade() else {
            return Err(AckError::Emit(EmitError::Closed));
        };
        // An outbox entry is tried until acknowledged (or the socket closes).
        let retries = match item.row {
            Some(_) => u32::MAX,
            None => inner.opts.retries.unwrap_or(0),
        };
        let timeout = inner.opts.ack_timeout;
        let sent = {
            let mut st = inner.state();
            if st.connected {
                let id = st.next_ack;
                st.next_ack += 1;
                let frames = inner.encode_event(&item.event, item.args.clone(), Some(id))?;
                let (tx, rx) = oneshot::channel();
                st.acks.insert(id, tx);
                if let Some(engine) = &st.tx {
                    engine.send(frames);
                }
                Some((id, rx))
            } else {
                None
            }
        };
        let Some((id, rx)) = sent else {
            drop(inner);
            tokio::task::yield_now().await;
            continue;
        };
        tries = tries.saturating_add(1);
        let result = inner.ack_result(id, rx, timeout).await;
        drop(inner);
        match result {
            Ok(args) => return Ok(args),
            Err(e) if tries > retries && retries != u32::MAX => return Err(e),
            Err(e) => tracing::debug!(tries, error = %e, "retrying"),
        }
    }
}
