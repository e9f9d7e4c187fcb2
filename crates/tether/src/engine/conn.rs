//! One Engine.IO connection: the sans-IO session behind a lock, plus the
//! wake-ups its transports and timer wait on.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use http::{HeaderMap, Uri};
use parking_lot::Mutex;
use tether_proto::engine::{CloseReason, Event, Frame, SendError, Session, TransportKind};
use tokio::sync::Notify;

use super::budget::SendBudget;

/// Most bytes the WebSocket writer takes from the queue at once: the rest
/// stays queued (and counted as such) until the client read those.
pub(crate) const WRITE_CHUNK: usize = 64 * 1024;

/// What the client's HTTP request said when the connection was opened.
#[derive(Debug, Clone)]
pub struct RequestInfo {
    /// Request headers of the handshake.
    pub headers: HeaderMap,
    /// The full request URI of the handshake (query included).
    pub uri: Uri,
    /// The peer address, when the server knows it.
    pub remote_addr: Option<SocketAddr>,
}

/// A live Engine.IO connection, shared by its transports, its timer task and
/// the layer above.
#[derive(Debug)]
pub struct EngineConn {
    sid: Arc<str>,
    session: Mutex<Session>,
    /// Woken when frames were queued or the session changed state.
    pub(crate) outgoing: Notify,
    /// Woken when the session's next deadline may have moved earlier.
    pub(crate) timer: Notify,
    /// Woken when a transport took queued frames (room in the send buffer).
    written: Notify,
    /// True while the WebSocket writer holds frames it took from the queue
    /// but has not written yet.
    writing: AtomicBool,
    /// How many holders (sockets with a full event queue) asked the
    /// transports to stop reading from the client; 0: reading.
    read_pauses: AtomicUsize,
    /// Woken when reading resumes.
    resumed: Notify,
    request: RequestInfo,
    /// The server's send budget, and what this connection counts in it:
    /// its queue (kept equal to the session's queued bytes, under the
    /// session lock) and the frames the WebSocket writer holds.
    budget: Arc<SendBudget>,
    charged: AtomicUsize,
    in_hand: AtomicUsize,
}

impl EngineConn {
    pub(crate) fn new(
        sid: Arc<str>,
        session: Session,
        request: RequestInfo,
        budget: Arc<SendBudget>,
    ) -> Self {
        Self {
            sid,
            session: Mutex::new(session),
            outgoing: Notify::new(),
            timer: Notify::new(),
            written: Notify::new(),
            writing: AtomicBool::new(false),
            read_pauses: AtomicUsize::new(0),
            resumed: Notify::new(),
            request,
            budget,
            charged: AtomicUsize::new(0),
            in_hand: AtomicUsize::new(0),
        }
    }

    /// The server's send budget.
    pub fn budget(&self) -> &Arc<SendBudget> {
        &self.budget
    }

    /// Brings what this connection counts in the budget for its queue in
    /// line with the session's (call with the session lock held).
    fn settle(&self, session: &Session) {
        let now = session.queued_bytes();
        let before = self.charged.swap(now, Ordering::AcqRel);
        if now > before {
            self.budget.charge(now - before);
        } else {
            self.budget.release(before - now);
        }
    }

    /// True while frames wait in the session's queue.
    pub(crate) fn has_queued(&self) -> bool {
        self.session.lock().has_queued()
    }

    /// Bytes queued for the client: in the session, and taken by the
    /// WebSocket writer but not written yet.
    pub fn queued_bytes(&self) -> usize {
        self.session.lock().queued_bytes() + self.in_hand.load(Ordering::Acquire)
    }

    /// The Engine.IO session id.
    pub fn sid(&self) -> &str {
        &self.sid
    }

    /// The handshake request.
    pub fn request(&self) -> &RequestInfo {
        &self.request
    }

    /// The transport in use now.
    pub fn transport(&self) -> TransportKind {
        self.session.lock().transport()
    }

    /// True once the session has ended.
    pub fn is_closed(&self) -> bool {
        self.session.lock().closed().is_some()
    }

    /// Queues frames for the client, all or none.
    pub fn send(&self, frames: &[Frame]) -> Result<(), SendError> {
        let result = self.queue(&mut self.session.lock(), frames);
        self.notify_if_queued(result)
    }

    /// Queues frames for the client, all or none, only if the server's send
    /// budget has room for them (see [`SendBudget`]): otherwise
    /// [`SendError::Full`], as when this connection's own buffer is full.
    pub fn send_within_budget(&self, frames: &[Frame]) -> Result<(), SendError> {
        let size: usize = frames.iter().map(Frame::len).sum();
        let result = {
            let mut session = self.session.lock();
            let queued = session.queued_bytes() + self.in_hand.load(Ordering::Acquire);
            if session.closed().is_some() {
                Err(SendError::Closed)
            } else if queued + size > session.config().max_buffer
                || !self.budget.try_charge_counted(size, queued)
            {
                Err(SendError::Full)
            } else {
                // Counted already: the queue's share grows by as much.
                self.charged.fetch_add(size, Ordering::AcqRel);
                self.queue(&mut session, frames)
            }
        };
        self.notify_if_queued(result)
    }

    /// Queues `frames` on the locked `session` and settles its accounting.
    fn queue(&self, session: &mut Session, frames: &[Frame]) -> Result<(), SendError> {
        let result = session.send(frames.iter().cloned());
        self.settle(session);
        result
    }

    /// Wakes the writer when frames were queued; passes `result` on.
    fn notify_if_queued(&self, result: Result<(), SendError>) -> Result<(), SendError> {
        if result.is_ok() {
            self.outgoing.notify_waiters();
        }
        result
    }

    /// Asks the transports to stop reading from the client (backpressure:
    /// the layer above has too much to process). Each call must be matched by
    /// one [`EngineConn::resume_reading`]. Frames to the client, pings
    /// included, keep flowing.
    pub fn pause_reading(&self) {
        self.read_pauses.fetch_add(1, Ordering::AcqRel);
    }

    /// Undoes one [`EngineConn::pause_reading`].
    pub fn resume_reading(&self) {
        if self.read_pauses.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.resumed.notify_waiters();
            self.outgoing.notify_waiters();
        }
    }

    /// True while reading is paused.
    pub fn reading_paused(&self) -> bool {
        self.read_pauses.load(Ordering::Acquire) > 0
    }

    /// Waits until reading is not paused, or the session closed (false).
    pub(crate) async fn read_allowed(&self) -> bool {
        loop {
            let resumed = self.resumed.notified();
            tokio::pin!(resumed);
            resumed.as_mut().enable();
            let closed = self.written.notified();
            tokio::pin!(closed);
            closed.as_mut().enable();
            if self.is_closed() {
                return false;
            }
            if !self.reading_paused() {
                return true;
            }
            tokio::select! {
                () = resumed => {}
                () = closed => {}
            }
        }
    }

    /// Closes the session from the server side. With `notify_peer` the client
    /// receives a close packet first. Returns the session's events (the close),
    /// which the caller must dispatch.
    pub(crate) fn close(&self, reason: CloseReason, notify_peer: bool) -> Vec<Event> {
        self.with_session(|s| s.close(reason, notify_peer)).1
    }

    /// Asks the client to answer a ping within `within` (see
    /// [`Session::check_alive`]): true once it did, false if the session
    /// closed instead (it closes with a ping timeout when no pong comes).
    /// The caller dispatches nothing: the timer task closes the session.
    pub(crate) async fn check_alive(&self, within: std::time::Duration) -> bool {
        let now = Instant::now();
        let (before, _) = self.with_session(|s| {
            let before = s.pongs();
            s.check_alive(now, now + within);
            before
        });
        // A little past the deadline, in case the timer task is late.
        let give_up = tokio::time::Instant::from_std(now + within * 2);
        loop {
            let notified = self.outgoing.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let session = self.session.lock();
                if session.pongs() > before {
                    return true;
                }
                if session.closed().is_some() {
                    return false;
                }
            }
            if tokio::time::timeout_at(give_up, notified).await.is_err() {
                return false;
            }
        }
    }

    /// Runs `f` on the session, then collects the events it produced and wakes
    /// the transports.
    pub(crate) fn with_session<R>(&self, f: impl FnOnce(&mut Session) -> R) -> (R, Vec<Event>) {
        let mut session = self.session.lock();
        let result = f(&mut session);
        self.settle(&session);
        let closed = session.closed().is_some();
        let mut events = Vec::new();
        while let Some(event) = session.poll_event() {
            events.push(event);
        }
        drop(session);
        self.outgoing.notify_waiters();
        self.timer.notify_waiters();
        if closed {
            self.written.notify_waiters();
        }
        (result, events)
    }

    /// The body for a pending long-polling GET, if one is ready (see
    /// [`Session::take_poll`]). Does not wake anyone.
    pub(crate) fn take_poll(&self) -> Option<bytes::Bytes> {
        let body = {
            let mut session = self.session.lock();
            let body = session.take_poll();
            self.settle(&session);
            body
        };
        self.written.notify_waiters();
        body
    }

    /// Waits until at most `threshold` bytes are queued. Returns false if the
    /// session closed meanwhile.
    pub async fn writable(&self, threshold: usize) -> bool {
        self.wait_written(|session| {
            session.queued_bytes() + self.in_hand.load(Ordering::Acquire) <= threshold
        })
        .await
    }

    /// Waits, through the writer's wake-ups, until `ready` holds for the
    /// session (true) or the session closed (false).
    async fn wait_written(&self, ready: impl Fn(&Session) -> bool) -> bool {
        loop {
            let notified = self.written.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let session = self.session.lock();
                if session.closed().is_some() {
                    return false;
                }
                if ready(&session) {
                    return true;
                }
            }
            notified.await;
        }
    }

    /// Moves queued frames into `out` for the WebSocket writer (at most
    /// about [`WRITE_CHUNK`] bytes), which calls [`EngineConn::written`] for
    /// each and [`EngineConn::written_all`] once it wrote them. Returns
    /// whether the session is closed and whether frames are left in the queue.
    pub(crate) fn take_frames(&self, out: &mut Vec<Frame>) -> (bool, bool) {
        let mut session = self.session.lock();
        let taken = session.take_frames_up_to(out, WRITE_CHUNK);
        if !out.is_empty() {
            self.writing.store(true, Ordering::Release);
        }
        // Still counted in the budget, now as the writer's.
        self.in_hand.fetch_add(taken, Ordering::AcqRel);
        self.charged.fetch_sub(taken, Ordering::AcqRel);
        self.settle(&session);
        let closed = session.closed().is_some();
        let more = session.has_queued();
        drop(session);
        self.written.notify_waiters();
        (closed, more)
    }

    /// The WebSocket writer wrote a frame of `len` bytes that it took.
    pub(crate) fn written(&self, len: usize) {
        self.in_hand.fetch_sub(len, Ordering::AcqRel);
        self.budget.release(len);
    }

    /// The WebSocket writer wrote every frame it took.
    pub(crate) fn written_all(&self) {
        self.writing.store(false, Ordering::Release);
        self.written.notify_waiters();
    }

    /// Waits until every frame queued so far has been written to the
    /// WebSocket, so that what is queued next leaves in a later write.
    /// Returns at once on long-polling (frames leave with the client's next
    /// GET), and false if the session closed.
    ///
    /// The Socket.IO layer waits for this between a CONNECT reply and the
    /// connection handler, as the reference server (whose WebSocket transport
    /// has one write in flight at a time) effectively does: some clients read
    /// the reply and only then listen for the next message.
    pub async fn flushed(&self) -> bool {
        self.wait_written(|session| {
            session.transport() != TransportKind::WebSocket
                || (session.queued_bytes() == 0 && !self.writing.load(Ordering::Acquire))
        })
        .await
    }

    pub(crate) fn end_poll(&self) {
        self.session.lock().end_poll();
    }

    pub(crate) fn upgrade_state(&self) -> tether_proto::engine::UpgradeState {
        self.session.lock().upgrade_state()
    }

    /// Advances the session's timers.
    pub(crate) fn handle_timeout(&self) -> (Option<Instant>, Vec<Event>) {
        self.with_session(|s| {
            s.handle_timeout(Instant::now());
            s.poll_timeout()
        })
    }

    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.session.lock().poll_timeout()
    }
}

impl Drop for EngineConn {
    fn drop(&mut self) {
        // Whatever is still queued or in the writer's hands goes with it.
        let held = *self.charged.get_mut() + *self.in_hand.get_mut();
        self.budget.release(held);
    }
}
