//! The Socket.IO side of one Engine.IO connection: packet decoding and the
//! sockets it holds in each namespace.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use tether_proto::engine::{CloseReason, Frame, SendError};
use tether_proto::socketio::{Decoder, Packet, PacketType};

use super::recovery;
use super::socket::{SocketConn, SocketInit};
use super::IoInner;
use crate::engine::{ConnHandler, EngineConn};
use crate::error::{ConnectError, DisconnectReason, EmitError};
use crate::{Config, Socket};

#[derive(Default)]
struct Sockets {
    by_nsp: HashMap<String, Socket>,
    /// Namespaces with a CONNECT being processed.
    connecting: Vec<String>,
    closed: bool,
    ever_connected: bool,
}

pub(crate) struct SioConn {
    io: Arc<IoInner>,
    engine: Arc<EngineConn>,
    decoder: Mutex<Decoder>,
    sockets: Mutex<Sockets>,
}

impl std::fmt::Debug for SioConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SioConn")
            .field("sid", &self.engine.sid())
            .finish_non_exhaustive()
    }
}

impl SioConn {
    pub(crate) fn new(io: Arc<IoInner>, engine: Arc<EngineConn>) -> Arc<Self> {
        let config = &io.config;
        let decoder = Decoder::new(config.parser, config.max_attachments);
        let conn = Arc::new(Self {
            io,
            engine,
            decoder: Mutex::new(decoder),
            sockets: Mutex::new(Sockets::default()),
        });
        // A client that never connects to a namespace is dropped.
        let weak = Arc::downgrade(&conn);
        let timeout = conn.io.config.connect_timeout;
        tokio::spawn(async move {
            tokio::time::sleep(timeout).await;
            if let Some(conn) = weak.upgrade() {
                let idle = {
                    let s = conn.sockets.lock();
                    !s.ever_connected && s.connecting.is_empty()
                };
                if idle {
                    conn.close_engine(CloseReason::ForcedClose, false);
                }
            }
        });
        conn
    }

    pub(crate) fn io(&self) -> &Arc<IoInner> {
        &self.io
    }

    pub(crate) fn engine(&self) -> &Arc<EngineConn> {
        &self.engine
    }

    pub(crate) fn config(&self) -> &Config {
        &self.io.config
    }

    /// Encodes and queues a packet for this client.
    pub(crate) fn send_packet(&self, packet: &Packet, volatile: bool) -> Result<(), EmitError> {
        if packet.kind.is_event() {
            metrics::counter!(crate::metrics::EVENTS_OUT).increment(1);
        }
        self.send_frames(&packet.encode(self.io.config.parser), volatile)
    }

    /// Queues encoded frames. A full buffer drops a volatile packet, and
    /// closes the connection otherwise (never grows memory without bound).
    pub(crate) fn send_frames(&self, frames: &[Frame], volatile: bool) -> Result<(), EmitError> {
        // A volatile packet may be dropped: it only goes within the budget.
        let sent = if volatile {
            self.engine.send_within_budget(frames)
        } else {
            self.engine.send(frames)
        };
        match sent {
            Ok(()) => Ok(()),
            Err(SendError::Closed) => Err(EmitError::Disconnected),
            Err(SendError::Full) if volatile => Ok(()),
            Err(SendError::Full) => {
                tracing::warn!(
                    sid = self.engine.sid(),
                    "send buffer full: closing the connection"
                );
                self.close_engine(CloseReason::BufferFull, false);
                Err(EmitError::BufferFull)
            }
        }
    }

    /// Queues frames for a stored entry; a full buffer is reported, not fatal
    /// (the socket catches up from the store).
    pub(crate) fn try_send(&self, frames: &[Frame]) -> crate::delivery::SendOutcome {
        use crate::delivery::SendOutcome;
        metrics::counter!(crate::metrics::EVENTS_OUT).increment(1);
        match self.engine.send_within_budget(frames) {
            Ok(()) => SendOutcome::Sent,
            Err(SendError::Full) => SendOutcome::Full,
            Err(SendError::Closed) => SendOutcome::Closed,
        }
    }

    /// Closes the Engine.IO connection (and so every socket on it).
    pub(crate) fn close_engine(&self, reason: CloseReason, notify_peer: bool) {
        if let Some(entry) = self.io.engine().entry(self.engine.sid()) {
            let events = entry.conn.close(reason, notify_peer);
            self.io.engine().dispatch(&entry, events);
        }
    }

    pub(crate) fn forget_socket(&self, nsp: &str, socket: &Socket) {
        let mut sockets = self.sockets.lock();
        if sockets
            .by_nsp
            .get(nsp)
            .is_some_and(|s| Arc::ptr_eq(&s.inner, &socket.inner))
        {
            sockets.by_nsp.remove(nsp);
        }
    }

    fn socket(&self, nsp: &str) -> Option<Socket> {
        self.sockets.lock().by_nsp.get(nsp).cloned()
    }

    fn on_packet(self: &Arc<Self>, packet: Packet) {
        if self.io.engine().is_draining()
            && matches!(
                packet.kind,
                PacketType::Connect | PacketType::Event | PacketType::BinaryEvent
            )
        {
            // Shutting down: no new sockets, no new emits. Not answered, so
            // the client's retries (or its reconnection) take it to the
            // next server; what the server already took in finishes.
            metrics::counter!(crate::metrics::PACKETS_REFUSED_SHUTTING_DOWN).increment(1);
            tracing::debug!(sid = self.engine.sid(), nsp = %packet.nsp, kind = ?packet.kind, "shutting down: packet not taken");
            return;
        }
        match packet.kind {
            PacketType::Connect => {
                {
                    let mut sockets = self.sockets.lock();
                    if sockets.by_nsp.contains_key(&packet.nsp)
                        || sockets.connecting.contains(&packet.nsp)
                    {
                        return;
                    }
                    sockets.connecting.push(packet.nsp.clone());
                }
                tokio::spawn(self.clone().connect(packet));
            }
            PacketType::Disconnect => {
                if let Some(socket) = self.socket(&packet.nsp) {
                    socket.close(DisconnectReason::ClientNamespaceDisconnect, false);
                }
            }
            PacketType::Event | PacketType::BinaryEvent => {
                if let Some(socket) = self.socket(&packet.nsp) {
                    socket.on_event(packet);
                }
            }
            PacketType::Ack | PacketType::BinaryAck => {
                if let Some(socket) = self.socket(&packet.nsp) {
                    socket.resolve_ack(packet);
                }
            }
            PacketType::ConnectError => {
                self.close_engine(CloseReason::ParseError, false);
            }
        }
    }

    async fn connect(self: Arc<Self>, packet: Packet) {
        let nsp = packet.nsp;
        let result = self.try_connect(&nsp, packet.data).await;
        self.sockets.lock().connecting.retain(|n| n != &nsp);
        if let Err(err) = result {
            if err.is_temporary() {
                // Closed, not refused: the client reconnects by itself.
                tracing::warn!(nsp = %nsp, error = %err, "connect failed for now: closing so the client retries");
                self.close_engine(CloseReason::ForcedClose, true);
                return;
            }
            let mut reply = Packet::new(PacketType::ConnectError, nsp);
            reply.data = serde_json::value::to_raw_value(&err).ok();
            let _ = self.send_packet(&reply, false);
        }
    }

    async fn try_connect(
        self: &Arc<Self>,
        nsp: &str,
        auth: Option<Box<serde_json::value::RawValue>>,
    ) -> Result<(), ConnectError> {
        let ns = self
            .io
            .namespace_for(nsp)
            .ok_or_else(|| ConnectError::new("Invalid namespace"))?;
        let auth: serde_json::Value = auth
            .and_then(|raw| serde_json::from_str(raw.get()).ok())
            .unwrap_or_else(|| serde_json::Value::Object(Default::default()));
        let mut init = SocketInit::default();
        let mut report = None;
        if let Some(delivery) = &ns.delivery {
            (init, report) = recovery::start(delivery, &ns, &auth).await?;
        }
        let skip = init.recovered
            && ns
                .delivery
                .as_ref()
                .is_some_and(|d| d.recovery.skip_middlewares);
        let rooms = std::mem::take(&mut init.rooms);
        let socket = Socket::new(ns.clone(), self.clone(), auth, init);
        if !skip {
            let middlewares = ns.middlewares.read().clone();
            for middleware in middlewares {
                middleware(socket.clone()).await?;
            }
        }
        {
            let mut sockets = self.sockets.lock();
            if sockets.closed {
                return Ok(());
            }
            sockets.by_nsp.insert(nsp.to_owned(), socket.clone());
            sockets.ever_connected = true;
        }
        socket.mark_connected();
        ns.add_socket(&socket);
        ns.join(&socket, rooms);
        if self.io.monitors.any() {
            self.io
                .monitors
                .tell(&super::socket::SocketChange::Connected(socket.clone()));
        }
        if let Some(pid) = socket.pid() {
            if let Some(old) = ns.take_pid(pid, &socket) {
                // One live socket per session: the newer one takes it over.
                old.close(DisconnectReason::SessionTakenOver, true);
            }
        }
        socket.save_session();
        if let (Some(user), Some(delivery)) = (socket.user(), &self.io.delivery) {
            self.io.users.add(&user, &socket);
            let (socket, store) = (socket.clone(), delivery.store.clone());
            tokio::spawn(async move {
                if let Err(e) = socket.catch_up_inbox(store, user).await {
                    tracing::warn!(error = %e, "inbox catch-up failed");
                }
            });
        }
        let mut hello = serde_json::json!({ "sid": socket.id() });
        if let Some(pid) = socket.pid() {
            hello["pid"] = pid.into();
        }
        if let Some(report) = report.and_then(|r| serde_json::to_value(r).ok()) {
            hello["recovery"] = report;
        }
        let mut reply = Packet::new(PacketType::Connect, nsp);
        reply.data = serde_json::value::to_raw_value(&hello).ok();
        if self.send_packet(&reply, false).is_err() {
            socket.close(DisconnectReason::TransportClose, false);
            return Ok(());
        }
        // The reply leaves in a write of its own, before anything the handler
        // sends (see `EngineConn::flushed`).
        self.engine.flushed().await;
        // Missed events follow the CONNECT reply, then live ones.
        socket.start_catch_up();
        (ns.on_connect)(socket.clone()).await;
        socket.drain().await;
        Ok(())
    }
}

impl ConnHandler for Arc<SioConn> {
    fn on_message(&self, frame: Frame) {
        let decoded = self.decoder.lock().decode(frame);
        match decoded {
            Ok(Some(packet)) => self.on_packet(packet),
            Ok(None) => {}
            Err(e) => {
                tracing::debug!(sid = self.engine.sid(), error = %e, "invalid packet: closing");
                self.close_engine(CloseReason::ParseError, false);
            }
        }
    }

    fn on_close(&self, reason: CloseReason) {
        let sockets: Vec<Socket> = {
            let mut sockets = self.sockets.lock();
            sockets.closed = true;
            sockets.by_nsp.values().cloned().collect()
        };
        let reason = DisconnectReason::from_engine(reason);
        for socket in sockets {
            socket.close(reason, false);
        }
    }
}

impl SocketConn for SioConn {
    fn io(&self) -> &Arc<IoInner> {
        SioConn::io(self)
    }

    fn engine(&self) -> &Arc<EngineConn> {
        SioConn::engine(self)
    }

    fn config(&self) -> &Config {
        SioConn::config(self)
    }

    fn send_packet(&self, packet: &Packet, volatile: bool) -> Result<(), EmitError> {
        SioConn::send_packet(self, packet, volatile)
    }

    fn send_frames(&self, frames: &[Frame], volatile: bool) -> Result<(), EmitError> {
        SioConn::send_frames(self, frames, volatile)
    }

    fn try_send(&self, frames: &[Frame]) -> crate::delivery::SendOutcome {
        SioConn::try_send(self, frames)
    }

    fn close_engine(&self, reason: CloseReason, notify_peer: bool) {
        SioConn::close_engine(self, reason, notify_peer);
    }

    fn forget_socket(&self, nsp: &str, socket: &Socket) {
        SioConn::forget_socket(self, nsp, socket);
    }
}
