//! The memory budget of everything queued for clients: one counter shared by
//! every connection of a server, in bytes of frames waiting to be written
//! (engine queues and the writer's chunk in hand), of live entries a
//! catching-up socket holds, and of store pages being read for catch-up.
//!
//! Stored events never make it grow past its limit: a socket that would go
//! over is paused and caught up from the store once there is room again.
//! So that a few clients that stopped reading cannot hold the whole budget
//! and starve everyone else, each connection may always have
//! [`SendBudget::SHARE`] bytes queued, over the limit or not (and as much
//! held by its catch-up buffer, made of frames shared by every receiver). Frames that
//! cannot wait (acknowledgements, CONNECT replies, pings, events of a server
//! without a store) are counted but not refused: each connection bounds them
//! by its own `max_buffer`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::Notify;

/// The shared send budget of one server (see the module docs).
#[derive(Debug)]
pub struct SendBudget {
    limit: usize,
    used: AtomicUsize,
    /// Tasks waiting for room ([`SendBudget::wait_for_room`]).
    waiting: AtomicUsize,
    released: Notify,
    gauge: metrics::Gauge,
}

impl SendBudget {
    /// Bytes each connection may have queued whatever the budget's use.
    pub const SHARE: usize = 64 * 1024;

    /// A budget of `limit` bytes (`usize::MAX`: no limit).
    pub fn new(limit: usize) -> Self {
        metrics::gauge!(crate::metrics::SEND_BUFFER_LIMIT_BYTES).set(limit as f64);
        let gauge = metrics::gauge!(crate::metrics::SEND_BUFFER_BYTES);
        gauge.set(0.0);
        Self {
            limit,
            used: AtomicUsize::new(0),
            waiting: AtomicUsize::new(0),
            released: Notify::new(),
            gauge,
        }
    }

    /// The limit, in bytes.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Bytes counted now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }

    /// How many more bytes a connection that has `queued` bytes queued may
    /// take now (before its own `max_buffer`).
    pub fn room(&self, queued: usize) -> usize {
        let free = self.limit.saturating_sub(self.used());
        free.max(Self::SHARE.saturating_sub(queued))
    }

    /// Counts `bytes` if a connection with `queued` bytes may take them now
    /// (`queued` `usize::MAX`: only if under the limit).
    pub(crate) fn try_charge(&self, bytes: usize, queued: usize) -> bool {
        if queued.saturating_add(bytes) <= Self::SHARE {
            self.charge(bytes);
            return true;
        }
        let mut used = self.used.load(Ordering::Acquire);
        loop {
            if used.saturating_add(bytes) > self.limit {
                return false;
            }
            match self.used.compare_exchange_weak(
                used,
                used + bytes,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    self.gauge.set((used + bytes) as f64);
                    return true;
                }
                Err(now) => used = now,
            }
        }
    }

    /// Like [`SendBudget::try_charge`], counting a refusal in
    /// `tether_send_budget_refusals_total`.
    pub(crate) fn try_charge_counted(&self, bytes: usize, queued: usize) -> bool {
        let ok = self.try_charge(bytes, queued);
        if !ok {
            metrics::counter!(crate::metrics::SEND_BUDGET_REFUSALS).increment(1);
        }
        ok
    }

    /// Counts `bytes` whatever the use.
    pub(crate) fn charge(&self, bytes: usize) {
        if bytes == 0 {
            return;
        }
        let used = self.used.fetch_add(bytes, Ordering::AcqRel) + bytes;
        self.gauge.set(used as f64);
    }

    /// Stops counting `bytes`.
    pub(crate) fn release(&self, bytes: usize) {
        if bytes == 0 {
            return;
        }
        let used = self.used.fetch_sub(bytes, Ordering::AcqRel) - bytes;
        self.gauge.set(used as f64);
        if self.waiting.load(Ordering::Acquire) > 0 {
            self.released.notify_waiters();
        }
    }

    /// Counts `bytes` until the returned guard is dropped.
    pub(crate) fn reserve(&self, bytes: usize) -> Reservation<'_> {
        self.charge(bytes);
        Reservation {
            budget: self,
            bytes,
        }
    }

    /// Waits until some bytes were released, or `tick` passed (the caller
    /// checks its room again either way).
    pub(crate) async fn wait_for_room(&self, tick: Duration) {
        self.waiting.fetch_add(1, Ordering::AcqRel);
        let released = self.released.notified();
        let _ = tokio::time::timeout(tick, released).await;
        self.waiting.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Bytes counted in a [`SendBudget`] while held.
#[derive(Debug)]
pub(crate) struct Reservation<'a> {
    budget: &'a SendBudget,
    bytes: usize,
}

impl Reservation<'_> {
    /// Counts `bytes` instead of what was reserved.
    pub(crate) fn resize(&mut self, bytes: usize) {
        if bytes > self.bytes {
            self.budget.charge(bytes - self.bytes);
        } else {
            self.budget.release(self.bytes - bytes);
        }
        self.bytes = bytes;
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        self.budget.release(self.bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn share_then_limit() {
        let b = SendBudget::new(100 * 1024);
        // Within its share a connection always gets room.
        assert!(b.try_charge(SendBudget::SHARE, 0));
        assert!(b.try_charge(30 * 1024, SendBudget::SHARE));
        assert!(!b.try_charge(10 * 1024, SendBudget::SHARE + 30 * 1024));
        assert!(b.try_charge(SendBudget::SHARE, 0));
        assert!(b.used() > b.limit());
        assert_eq!(b.room(SendBudget::SHARE), 0);
        assert_eq!(b.room(0), SendBudget::SHARE);
        b.release(2 * SendBudget::SHARE + 30 * 1024);
        assert_eq!(b.used(), 0);
        {
            let mut r = b.reserve(10);
            r.resize(20);
            assert_eq!(b.used(), 20);
        }
        assert_eq!(b.used(), 0);
    }
}
