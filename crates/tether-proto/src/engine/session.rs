//! The Engine.IO session state machine: heartbeat, upgrade and outgoing queue.
//!
//! A [`Session`] is driven by its caller: frames that arrived go in through
//! `handle_*`, the clock through [`Session::handle_timeout`], and what must
//! happen next comes out of the `poll_*` / `take_*` methods. It never blocks,
//! spawns or reads a clock itself, so tests drive it with made-up instants.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::packet::{encode_payload, Frame, Packet, PacketError};

/// Most bytes of frames one long-polling response carries (a client that
/// does not read holds at most that much in its response, outside the queue).
pub const MAX_POLL_BYTES: usize = 256 * 1024;

/// Settings of an Engine.IO session.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Time between two server pings.
    pub ping_interval: Duration,
    /// How long the server waits for a pong before closing.
    pub ping_timeout: Duration,
    /// Largest message (or polling request body) accepted from a client, in bytes.
    pub max_payload: usize,
    /// How long a WebSocket may take between the `probe` and the `upgrade` packet.
    pub upgrade_timeout: Duration,
    /// Most bytes queued for a client before sending fails with [`SendError::Full`].
    pub max_buffer: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            ping_interval: Duration::from_millis(25_000),
            ping_timeout: Duration::from_millis(20_000),
            max_payload: 1_000_000,
            upgrade_timeout: Duration::from_millis(10_000),
            max_buffer: 4 * 1024 * 1024,
        }
    }
}

/// The transport that carries a session's packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportKind {
    /// HTTP long-polling.
    Polling,
    /// WebSocket.
    WebSocket,
}

impl TransportKind {
    /// The name used in the `transport` query parameter.
    pub fn as_str(self) -> &'static str {
        match self {
            TransportKind::Polling => "polling",
            TransportKind::WebSocket => "websocket",
        }
    }
}

/// Where a polling session stands in its upgrade to WebSocket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpgradeState {
    /// No WebSocket has probed yet.
    None,
    /// A WebSocket answered the probe; waiting for its `upgrade` packet.
    Probing,
    /// The session moved to WebSocket.
    Done,
}

/// Why a session ended. The strings are the reference server's reasons.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The client closed the transport, or sent a close packet.
    TransportClose,
    /// The transport failed (I/O error, duplicate poll, bad frame at the transport level).
    TransportError,
    /// No pong arrived within the ping timeout.
    PingTimeout,
    /// The server closed the session.
    ForcedClose,
    /// The client sent a packet that could not be decoded.
    ParseError,
    /// The client could not keep up: its send buffer was full.
    BufferFull,
}

impl CloseReason {
    /// The reason as the reference implementation names it.
    pub fn as_str(self) -> &'static str {
        match self {
            CloseReason::TransportClose => "transport close",
            CloseReason::TransportError => "transport error",
            CloseReason::PingTimeout => "ping timeout",
            CloseReason::ForcedClose => "forced close",
            CloseReason::ParseError => "parse error",
            CloseReason::BufferFull => "send buffer full",
        }
    }
}

/// What the session tells its driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A message arrived: text (without the `4` type character) or binary.
    Message(Frame),
    /// The session now runs on WebSocket.
    Upgraded,
    /// The probing WebSocket did not complete the upgrade in time and must be closed.
    UpgradeTimedOut,
    /// The session ended; no frame is accepted or sent afterwards.
    Closed(CloseReason),
}

/// Why a frame could not be queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The session is closed.
    #[error("the session is closed")]
    Closed,
    /// The outgoing buffer holds `max_buffer` bytes already.
    #[error("the send buffer is full")]
    Full,
}

/// Answer to a frame received on a probing WebSocket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeReply {
    /// Send this frame on the probing WebSocket (`3probe`).
    Send(Frame),
    /// The upgrade completed: the WebSocket is now the session's transport.
    Upgraded,
}

/// One Engine.IO session, independent of any I/O.
#[derive(Debug)]
pub struct Session {
    config: EngineConfig,
    transport: TransportKind,
    upgrade: UpgradeState,
    upgrade_deadline: Option<Instant>,
    queue: VecDeque<Frame>,
    queued_bytes: usize,
    next_ping: Option<Instant>,
    pong_deadline: Option<Instant>,
    /// A graceful close waits for this pong (or this deadline).
    closing: Option<Instant>,
    poll_active: bool,
    release_poll: bool,
    closed: Option<CloseReason>,
    /// The close packet was queued for the client (a close with `notify_peer`).
    close_queued: bool,
    /// Pongs received so far (see [`Session::check_alive`]).
    pongs: u64,
    events: VecDeque<Event>,
}

impl Session {
    /// A new session opened on `transport` at `now`. The first ping is due one
    /// ping interval later.
    pub fn new(config: EngineConfig, transport: TransportKind, now: Instant) -> Self {
        let next_ping = Some(now + config.ping_interval);
        Self {
            config,
            transport,
            upgrade: UpgradeState::None,
            upgrade_deadline: None,
            queue: VecDeque::new(),
            queued_bytes: 0,
            next_ping,
            pong_deadline: None,
            closing: None,
            poll_active: false,
            release_poll: false,
            closed: None,
            close_queued: false,
            pongs: 0,
            events: VecDeque::new(),
        }
    }

    /// The settings of this session.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// The transport that currently carries the session.
    pub fn transport(&self) -> TransportKind {
        self.transport
    }

    /// Where the upgrade to WebSocket stands.
    pub fn upgrade_state(&self) -> UpgradeState {
        self.upgrade
    }

    /// Why the session closed, if it did.
    pub fn closed(&self) -> Option<CloseReason> {
        self.closed
    }

    /// True when frames wait to be sent.
    pub fn has_queued(&self) -> bool {
        !self.queue.is_empty()
    }

    /// Bytes waiting to be sent.
    pub fn queued_bytes(&self) -> usize {
        self.queued_bytes
    }

    /// Handles a frame received on the session's current transport.
    ///
    /// A frame that cannot be decoded closes the session with
    /// [`CloseReason::ParseError`] and returns the error.
    pub fn handle_frame(&mut self, frame: Frame, now: Instant) -> Result<(), PacketError> {
        if self.closed.is_some() {
            return Ok(());
        }
        let packet = match Packet::decode(frame) {
            Ok(p) => p,
            Err(e) => {
                self.close(CloseReason::ParseError, false);
                return Err(e);
            }
        };
        match packet {
            Packet::Pong(_) if self.closing.is_some() => {
                // The client has read everything sent before the ping.
                self.close(CloseReason::ForcedClose, true);
            }
            Packet::Pong(_) => {
                self.pongs += 1;
                self.pong_deadline = None;
                self.next_ping = Some(now + self.config.ping_interval);
            }
            Packet::Message(text) => self.events.push_back(Event::Message(Frame::Text(text))),
            Packet::Binary(bin) => self.events.push_back(Event::Message(Frame::Binary(bin))),
            Packet::Close => {
                // The client leaves: a pending poll is released with a noop.
                self.close(CloseReason::TransportClose, false);
            }
            // Clients of v4 do not ping; a noop carries nothing.
            Packet::Ping(_) | Packet::Noop => {}
            Packet::Open(_) | Packet::Upgrade => {
                self.close(CloseReason::ParseError, false);
                return Err(PacketError::UnknownType('?'));
            }
        }
        Ok(())
    }

    /// Handles a frame received on a WebSocket that probes an upgrade of this
    /// polling session. An error means the probe must be closed; the session
    /// itself stays open on polling.
    pub fn handle_probe_frame(
        &mut self,
        frame: Frame,
        now: Instant,
    ) -> Result<ProbeReply, PacketError> {
        if self.closed.is_some() || self.transport != TransportKind::Polling {
            return Err(PacketError::UnknownType('?'));
        }
        let packet = match Packet::decode(frame) {
            Ok(packet) => packet,
            Err(e) => {
                self.abort_probe();
                return Err(e);
            }
        };
        match (packet, self.upgrade) {
            (Packet::Ping(payload), UpgradeState::None) if &payload[..] == b"probe" => {
                self.upgrade = UpgradeState::Probing;
                self.upgrade_deadline = Some(now + self.config.upgrade_timeout);
                // A pending GET must end now, so that the client can pause polling.
                self.release_poll = true;
                Ok(ProbeReply::Send(Packet::Pong(payload).encode()))
            }
            (Packet::Upgrade, UpgradeState::Probing) => {
                self.upgrade = UpgradeState::Done;
                self.upgrade_deadline = None;
                self.transport = TransportKind::WebSocket;
                self.release_poll = true;
                self.events.push_back(Event::Upgraded);
                Ok(ProbeReply::Upgraded)
            }
            (Packet::Noop, _) => Ok(ProbeReply::Send(Packet::Noop.encode())),
            (_, _) => {
                self.abort_probe();
                Err(PacketError::UnknownType('?'))
            }
        }
    }

    /// The probing WebSocket failed or closed before the upgrade completed:
    /// the session stays on polling and may be probed again.
    pub fn abort_probe(&mut self) {
        if self.upgrade == UpgradeState::Probing {
            self.upgrade = UpgradeState::None;
            self.upgrade_deadline = None;
        }
    }

    /// True when a WebSocket may start probing this session.
    pub fn can_upgrade(&self) -> bool {
        self.closed.is_none()
            && self.transport == TransportKind::Polling
            && self.upgrade == UpgradeState::None
    }

    /// Advances timers to `now`: sends due pings, closes on ping timeout,
    /// abandons a stale upgrade.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.closed.is_some() {
            return;
        }
        if self.closing.is_some_and(|d| d <= now) {
            self.close(CloseReason::ForcedClose, true);
            return;
        }
        if self.pong_deadline.is_some_and(|d| d <= now) {
            self.close(CloseReason::PingTimeout, false);
            return;
        }
        if self.next_ping.is_some_and(|d| d <= now) {
            self.next_ping = None;
            self.pong_deadline = Some(now + self.config.ping_timeout);
            self.push(Packet::Ping(Bytes::new()).encode());
        }
        if self.upgrade_deadline.is_some_and(|d| d <= now) {
            self.upgrade_deadline = None;
            self.upgrade = UpgradeState::None;
            self.events.push_back(Event::UpgradeTimedOut);
        }
    }

    /// Asks the client to prove it is still there: a ping now (unless one is
    /// waiting for its pong already), whose pong must arrive by `deadline`
    /// instead of the usual ping timeout, or the session closes with
    /// [`CloseReason::PingTimeout`]. The pong shows in [`Session::pongs`].
    pub fn check_alive(&mut self, now: Instant, deadline: Instant) {
        if self.closed.is_some() || self.closing.is_some() {
            return;
        }
        if self.pong_deadline.is_none() {
            self.push(Packet::Ping(Bytes::new()).encode());
            self.next_ping = None;
        }
        let deadline = deadline.max(now);
        self.pong_deadline = Some(self.pong_deadline.map_or(deadline, |d| d.min(deadline)));
    }

    /// How many pongs the client sent so far.
    pub fn pongs(&self) -> u64 {
        self.pongs
    }

    /// The next instant at which [`Session::handle_timeout`] has work to do.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.closed.is_some() {
            return None;
        }
        [
            self.next_ping,
            self.pong_deadline,
            self.upgrade_deadline,
            self.closing,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// The next event for the driver.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Queues frames to send, all or none (a binary Socket.IO packet is several
    /// frames that must stay together).
    pub fn send(
        &mut self,
        frames: impl IntoIterator<Item = Frame> + Clone,
    ) -> Result<(), SendError> {
        if self.closed.is_some() || self.closing.is_some() {
            return Err(SendError::Closed);
        }
        let size: usize = frames.clone().into_iter().map(|f| f.len()).sum();
        if self.queued_bytes + size > self.config.max_buffer {
            return Err(SendError::Full);
        }
        for frame in frames {
            self.push(frame);
        }
        Ok(())
    }

    fn push(&mut self, frame: Frame) {
        self.queued_bytes += frame.len();
        self.queue.push_back(frame);
    }

    /// Closes the session once the client has read everything queued so far:
    /// a ping goes out after it, and the close packet only after its pong (or
    /// at `deadline`). A client that gets events and the close in one read may
    /// hold those events back until it reconnects, past the recovery offset it
    /// sends; this keeps them apart. Nothing more is accepted meanwhile.
    pub fn close_gracefully(&mut self, deadline: Instant) {
        if self.closed.is_some() || self.closing.is_some() {
            return;
        }
        self.push(Packet::Ping(Bytes::new()).encode());
        self.closing = Some(deadline);
        self.next_ping = None;
        self.pong_deadline = None;
    }

    /// Closes the session. With `notify_peer`, a close packet is queued first
    /// so that the client learns the session is over.
    pub fn close(&mut self, reason: CloseReason, notify_peer: bool) {
        if self.closed.is_some() {
            return;
        }
        if notify_peer {
            self.push(Packet::Close.encode());
        }
        self.close_queued = notify_peer;
        self.closed = Some(reason);
        self.closing = None;
        self.release_poll = true;
        self.upgrade_deadline = None;
        self.events.push_back(Event::Closed(reason));
    }

    /// Marks the start of a long-polling GET. A second concurrent GET closes
    /// the session (the pending one receives a close packet) and is refused.
    pub fn begin_poll(&mut self) -> Result<(), SendError> {
        // A session closed with a close packet for the client still hands
        // its last frames to one more poll, so that the client learns why it
        // ended; one closed without (ping timeout, transport error) is gone.
        if self.closed.is_some()
            && (!self.close_queued
                || self.queue.is_empty()
                || self.transport != TransportKind::Polling)
        {
            return Err(SendError::Closed);
        }
        if self.poll_active {
            self.close(CloseReason::TransportError, true);
            return Err(SendError::Closed);
        }
        self.poll_active = true;
        Ok(())
    }

    /// Marks the end of a long-polling GET (answered or abandoned).
    pub fn end_poll(&mut self) {
        self.poll_active = false;
    }

    /// The body for a pending long-polling GET, if it can be answered now:
    /// the queued frames (the first one, then more while they total at most
    /// [`MAX_POLL_BYTES`]; the rest goes with the next GET), or a noop when
    /// the poll must be released (upgrade, close). `None` means: wait for more.
    pub fn take_poll(&mut self) -> Option<Bytes> {
        if self.transport == TransportKind::Polling && !self.queue.is_empty() {
            self.release_poll = false;
            let mut count = 0;
            let mut bytes = 0;
            for frame in &self.queue {
                if count > 0 && bytes + frame.len() > MAX_POLL_BYTES {
                    break;
                }
                count += 1;
                bytes += frame.len();
            }
            let body = encode_payload(self.queue.iter().take(count));
            self.queue.drain(..count);
            self.queued_bytes -= bytes;
            return Some(body);
        }
        if self.release_poll || self.closed.is_some() || self.upgrade != UpgradeState::None {
            self.release_poll = false;
            return Some(Bytes::from_static(b"6"));
        }
        None
    }

    /// Moves every frame queued for a WebSocket transport into `out`.
    pub fn take_frames(&mut self, out: &mut Vec<Frame>) {
        out.extend(self.queue.drain(..));
        self.queued_bytes = 0;
    }

    /// Moves frames queued for a WebSocket transport into `out`, in order:
    /// the first one, then more while they total at most `max_bytes`, so that
    /// what is not taken yet still counts as queued. Returns the bytes moved.
    pub fn take_frames_up_to(&mut self, out: &mut Vec<Frame>, max_bytes: usize) -> usize {
        let mut taken = 0;
        while let Some(next) = self.queue.front() {
            if taken > 0 && taken + next.len() > max_bytes {
                break;
            }
            taken += next.len();
            if let Some(frame) = self.queue.pop_front() {
                out.push(frame);
            }
        }
        self.queued_bytes -= taken;
        taken
    }
}

#[cfg(test)]
mod liveness_tests {
    use super::*;

    fn frames(s: &mut Session) -> Vec<Frame> {
        let mut out = Vec::new();
        s.take_frames(&mut out);
        out
    }

    #[test]
    fn check_alive_pings_now_and_closes_without_a_pong() {
        let t0 = Instant::now();
        let mut s = Session::new(EngineConfig::default(), TransportKind::WebSocket, t0);
        s.check_alive(t0, t0 + Duration::from_secs(1));
        assert_eq!(frames(&mut s), vec![Frame::text_static("2")]);
        assert_eq!(s.poll_timeout(), Some(t0 + Duration::from_secs(1)));
        s.handle_timeout(t0 + Duration::from_secs(1));
        assert_eq!(s.closed(), Some(CloseReason::PingTimeout));
    }

    #[test]
    fn check_alive_counts_the_pong_and_keeps_the_session() {
        let t0 = Instant::now();
        let mut s = Session::new(EngineConfig::default(), TransportKind::WebSocket, t0);
        s.check_alive(t0, t0 + Duration::from_secs(1));
        s.handle_frame(Frame::text_static("3"), t0).unwrap();
        assert_eq!(s.pongs(), 1);
        s.handle_timeout(t0 + Duration::from_secs(5));
        assert_eq!(s.closed(), None);
    }

    #[test]
    fn check_alive_while_a_ping_waits_only_shortens_its_deadline() {
        let t0 = Instant::now();
        let cfg = EngineConfig::default();
        let mut s = Session::new(cfg.clone(), TransportKind::WebSocket, t0);
        let t1 = t0 + cfg.ping_interval;
        s.handle_timeout(t1);
        assert_eq!(frames(&mut s).len(), 1);
        s.check_alive(t1, t1 + Duration::from_millis(10));
        assert!(frames(&mut s).is_empty());
        assert_eq!(s.poll_timeout(), Some(t1 + Duration::from_millis(10)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> EngineConfig {
        EngineConfig {
            ping_interval: Duration::from_millis(300),
            ping_timeout: Duration::from_millis(200),
            max_buffer: 16,
            ..EngineConfig::default()
        }
    }

    #[test]
    fn heartbeat_then_timeout() {
        let t0 = Instant::now();
        let mut s = Session::new(config(), TransportKind::Polling, t0);
        assert_eq!(s.poll_timeout(), Some(t0 + Duration::from_millis(300)));
        s.handle_timeout(t0 + Duration::from_millis(300));
        assert_eq!(s.take_poll().as_deref(), Some(&b"2"[..]));
        s.handle_frame(Frame::text_static("3"), t0 + Duration::from_millis(350))
            .unwrap();
        assert_eq!(s.poll_timeout(), Some(t0 + Duration::from_millis(650)));
        s.handle_timeout(t0 + Duration::from_millis(650));
        s.handle_timeout(t0 + Duration::from_millis(850));
        assert_eq!(
            s.poll_event(),
            Some(Event::Closed(CloseReason::PingTimeout))
        );
        assert_eq!(s.poll_timeout(), None);
    }

    #[test]
    fn upgrade_flow() {
        let t0 = Instant::now();
        let mut s = Session::new(config(), TransportKind::Polling, t0);
        assert!(s.can_upgrade());
        assert_eq!(s.take_poll(), None);
        let reply = s
            .handle_probe_frame(Frame::text_static("2probe"), t0)
            .unwrap();
        assert_eq!(reply, ProbeReply::Send(Frame::text_static("3probe")));
        assert!(!s.can_upgrade());
        assert_eq!(s.take_poll().as_deref(), Some(&b"6"[..]));
        let reply = s.handle_probe_frame(Frame::text_static("5"), t0).unwrap();
        assert_eq!(reply, ProbeReply::Upgraded);
        assert_eq!(s.transport(), TransportKind::WebSocket);
        assert_eq!(s.poll_event(), Some(Event::Upgraded));
        s.send([Frame::text_static("4a")]).unwrap();
        let mut out = Vec::new();
        s.take_frames(&mut out);
        assert_eq!(out, vec![Frame::text_static("4a")]);
    }

    #[test]
    fn upgrade_times_out() {
        let t0 = Instant::now();
        let mut s = Session::new(config(), TransportKind::Polling, t0);
        s.handle_probe_frame(Frame::text_static("2probe"), t0)
            .unwrap();
        s.handle_timeout(t0 + Duration::from_secs(11));
        assert!(s
            .poll_event()
            .into_iter()
            .chain(s.poll_event())
            .any(|e| e == Event::UpgradeTimedOut));
        assert!(s.can_upgrade());
    }

    #[test]
    fn bounded_buffer() {
        let mut s = Session::new(config(), TransportKind::WebSocket, Instant::now());
        s.send([Frame::text_static("4123456789")]).unwrap();
        assert_eq!(
            s.send([Frame::text_static("4123456789")]),
            Err(SendError::Full)
        );
        assert_eq!(s.queued_bytes(), 10);
    }

    #[test]
    fn a_poll_carries_at_most_max_poll_bytes() {
        let mut s = Session::new(
            EngineConfig {
                max_buffer: 4 * MAX_POLL_BYTES,
                ..config()
            },
            TransportKind::Polling,
            Instant::now(),
        );
        let frame = Frame::Text(vec![b'4'; MAX_POLL_BYTES / 2].into());
        for _ in 0..3 {
            s.send([frame.clone()]).unwrap();
        }
        let first = s.take_poll().unwrap();
        assert_eq!(first.len(), MAX_POLL_BYTES + 1);
        assert_eq!(s.queued_bytes(), MAX_POLL_BYTES / 2);
        assert_eq!(s.take_poll().unwrap().len(), MAX_POLL_BYTES / 2);
        assert_eq!(s.take_poll(), None);
    }

    #[test]
    fn frames_are_taken_in_chunks() {
        let mut s = Session::new(config(), TransportKind::WebSocket, Instant::now());
        for _ in 0..3 {
            s.send([Frame::text_static("4ab")]).unwrap();
        }
        let mut out = Vec::new();
        assert_eq!(s.take_frames_up_to(&mut out, 6), 6);
        assert_eq!(out.len(), 2);
        assert_eq!(s.queued_bytes(), 3);
        // The first frame is taken even when larger than the chunk.
        assert_eq!(s.take_frames_up_to(&mut out, 1), 3);
        assert_eq!(s.queued_bytes(), 0);
        assert_eq!(s.take_frames_up_to(&mut out, 1), 0);
    }

    #[test]
    fn poll_after_ping_timeout_is_refused() {
        let t0 = Instant::now();
        let mut s = Session::new(config(), TransportKind::Polling, t0);
        // The ping goes unread (no GET), then its pong deadline passes.
        s.handle_timeout(t0 + Duration::from_millis(300));
        assert!(s.queued_bytes() > 0);
        s.handle_timeout(t0 + Duration::from_millis(500));
        assert_eq!(s.closed(), Some(CloseReason::PingTimeout));
        // The unread ping is not handed to a later GET: the session is gone.
        assert_eq!(s.begin_poll(), Err(SendError::Closed));
    }

    #[test]
    fn poll_after_notified_close_gets_the_close_packet() {
        let mut s = Session::new(config(), TransportKind::Polling, Instant::now());
        s.close(CloseReason::ForcedClose, true);
        assert_eq!(s.begin_poll(), Ok(()));
        assert_eq!(s.take_poll().as_deref(), Some(&b"1"[..]));
    }

    #[test]
    fn duplicate_poll_closes() {
        let mut s = Session::new(config(), TransportKind::Polling, Instant::now());
        s.begin_poll().unwrap();
        assert!(s.begin_poll().is_err());
        assert_eq!(s.take_poll().as_deref(), Some(&b"1"[..]));
        assert_eq!(s.closed(), Some(CloseReason::TransportError));
    }

    #[test]
    fn graceful_close_waits_for_the_pong() {
        let t0 = Instant::now();
        let mut s = Session::new(config(), TransportKind::Polling, t0);
        s.send([Frame::text_static("4a")]).unwrap();
        s.close_gracefully(t0 + Duration::from_secs(1));
        assert_eq!(s.send([Frame::text_static("4b")]), Err(SendError::Closed));
        // Data and ping go out together; the close packet is not among them.
        assert_eq!(s.take_poll().as_deref(), Some(&b"4a\x1e2"[..]));
        assert_eq!(s.closed(), None);
        s.handle_frame(Frame::text_static("3"), t0).unwrap();
        assert_eq!(s.closed(), Some(CloseReason::ForcedClose));
        assert_eq!(s.take_poll().as_deref(), Some(&b"1"[..]));
    }

    #[test]
    fn graceful_close_gives_up_at_the_deadline() {
        let t0 = Instant::now();
        let mut s = Session::new(config(), TransportKind::WebSocket, t0);
        s.close_gracefully(t0 + Duration::from_millis(50));
        assert_eq!(s.poll_timeout(), Some(t0 + Duration::from_millis(50)));
        s.handle_timeout(t0 + Duration::from_millis(50));
        assert_eq!(s.closed(), Some(CloseReason::ForcedClose));
    }

    #[test]
    fn bad_frame_closes_with_parse_error() {
        let mut s = Session::new(config(), TransportKind::WebSocket, Instant::now());
        assert!(s
            .handle_frame(Frame::text_static("abc"), Instant::now())
            .is_err());
        assert_eq!(s.closed(), Some(CloseReason::ParseError));
    }
}
