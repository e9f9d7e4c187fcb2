//! A client's connection to one namespace.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::{HeaderMap, Uri};
use parking_lot::{Mutex, RwLock};
use serde_json::value::RawValue;
use tether_proto::engine::Frame;
use tether_proto::socketio::{split_event, Packet};
use tokio::sync::oneshot;

use super::namespace::{BroadcastOperator, Namespace};
use super::{BoxFuture, DisconnectHandler, EventHandler};
use crate::delivery::{encode_entry, Cursor, Outgoing, PageResult, PAGE};
use crate::engine::SendBudget;
use crate::error::{AckError, DisconnectReason, EmitError};
use crate::store::{Seq, SessionRecord, Target};
use crate::{Args, IntoArgs};

/// What the client sent when it connected to the namespace.
#[derive(Debug, Clone)]
pub struct Handshake {
    /// The CONNECT packet's auth payload (`{}` when absent).
    pub auth: serde_json::Value,
    /// Headers of the Engine.IO handshake request.
    pub headers: HeaderMap,
    /// URI of the Engine.IO handshake request.
    pub uri: Uri,
    /// The peer address, when known.
    pub address: Option<SocketAddr>,
    /// When the socket connected.
    pub issued: SystemTime,
}

/// The client connection a socket sends on ([`super::conn::SioConn`], which
/// holds the sockets: the socket names only this, so that the two modules
/// do not depend on each other).
pub(crate) trait SocketConn: std::fmt::Debug + Send + Sync + 'static {
    /// The server.
    fn io(&self) -> &Arc<super::IoInner>;
    /// The Engine.IO connection.
    fn engine(&self) -> &Arc<crate::engine::EngineConn>;
    /// The server's settings.
    fn config(&self) -> &crate::Config;
    /// Encodes and queues a packet for this client.
    fn send_packet(&self, packet: &Packet, volatile: bool) -> Result<(), EmitError>;
    /// Queues encoded frames (a full buffer drops a volatile packet, and
    /// closes the connection otherwise).
    fn send_frames(&self, frames: &[Frame], volatile: bool) -> Result<(), EmitError>;
    /// Queues frames for a stored entry; a full buffer is reported, not fatal.
    fn try_send(&self, frames: &[Frame]) -> crate::delivery::SendOutcome;
    /// Closes the Engine.IO connection (and so every socket on it).
    fn close_engine(&self, reason: tether_proto::engine::CloseReason, notify_peer: bool);
    /// Live sockets of each user (inboxes).
    /// The socket left its namespace: the connection forgets it.
    fn forget_socket(&self, nsp: &str, socket: &Socket);
}

/// What happened to a socket of this node, as told to the monitors of its
/// server ([`crate::SocketIo::monitor`]).
#[derive(Debug, Clone)]
pub enum SocketChange {
    /// A socket connected to a namespace; it is already in the rooms it
    /// starts with (its own id, and a recovered session's rooms), which are
    /// not told as [`SocketChange::Joined`]. Told before the namespace's
    /// handler runs, so that the handler's joins come after it.
    Connected(Socket),
    /// A connected socket joined a room ([`Socket::join`], and the cluster's
    /// `sockets_join`).
    Joined {
        /// The namespace.
        nsp: String,
        /// The socket id.
        id: String,
        /// The room.
        room: String,
    },
    /// A socket left a room: by [`Socket::leave`], or every room it was in
    /// when it disconnects (each told before its [`SocketChange::Disconnected`]).
    Left {
        /// The namespace.
        nsp: String,
        /// The socket id.
        id: String,
        /// The room.
        room: String,
    },
    /// A socket left its namespace. Not told for a socket whose id a newer
    /// socket of the same session took over (that one is still connected).
    Disconnected {
        /// The namespace.
        nsp: String,
        /// The socket id.
        id: String,
        /// Why.
        reason: DisconnectReason,
    },
}

/// Inbox delivery state of one socket (see [`super::inbox`]).
#[derive(Debug, Default)]
pub(crate) struct InboxCursor {
    pub(super) ready: bool,
    pub(super) last: Seq,
}

#[derive(Default)]
struct State {
    connected: bool,
    /// Events waiting for their handler, in arrival order.
    queue: VecDeque<Packet>,
    /// A task is draining `queue` (or the connection handler still runs).
    draining: bool,
    /// This socket paused reading from the client (its queue is long).
    paused_reading: bool,
}

pub(crate) struct SocketInner {
    id: Arc<str>,
    pub(crate) ns: Arc<Namespace>,
    pub(crate) conn: Arc<dyn SocketConn>,
    handshake: Handshake,
    handlers: RwLock<HashMap<String, EventHandler>>,
    /// The handler of events without one of their own ([`Socket::on_fallback`]).
    fallback: RwLock<Option<EventHandler>>,
    on_disconnect: Mutex<Vec<DisconnectHandler>>,
    on_disconnecting: Mutex<Vec<DisconnectHandler>>,
    acks: Mutex<HashMap<u64, oneshot::Sender<Args>>>,
    next_ack: AtomicU64,
    extensions: RwLock<http::Extensions>,
    state: Mutex<State>,
    /// Private session id (connection state recovery on).
    pid: Option<String>,
    recovered: bool,
    /// Delivery position (connection state recovery on).
    pub(crate) cursor: Option<Cursor>,
    /// App data kept with the session, as JSON.
    data_json: Mutex<Option<String>>,
    /// Serialises session saves so that the last change is the last saved.
    save_lock: tokio::sync::Mutex<()>,
    /// Session saves asked for and done, so that an ack waits for them.
    saves: Arc<Saves>,
    /// Store position when the session began.
    start_seq: Seq,
    /// The user this socket belongs to (inboxes), set by a middleware.
    user: Mutex<Option<String>>,
    inbox: tokio::sync::Mutex<InboxCursor>,
}

/// How a socket starts: fresh, or restored from a stored session.
#[derive(Debug, Default)]
pub(crate) struct SocketInit {
    pub(crate) id: Option<String>,
    pub(crate) pid: Option<String>,
    pub(crate) recovered: bool,
    pub(crate) cursor: Option<Seq>,
    pub(crate) start_seq: Seq,
    pub(crate) data: Option<String>,
    pub(crate) rooms: Vec<String>,
    /// The user of a restored session.
    pub(crate) user: Option<String>,
}

/// A client connected to a namespace. Cheap to clone.
///
/// ```no_run
/// # async fn demo(io: tether::SocketIo) {
/// io.ns("/", |socket: tether::Socket| async move {
///     socket.on("ping", |socket: tether::Socket, mut ev: tether::Event| async move {
///         let _ = ev.ack(("pong",));
///         let _ = socket.emit("pinged", (socket.id(),));
///     });
/// });
/// # }
/// ```
#[derive(Clone)]
pub struct Socket {
    pub(crate) inner: Arc<SocketInner>,
}

impl std::fmt::Debug for Socket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Socket")
            .field("id", &self.inner.id)
            .field("nsp", &self.inner.ns.name())
            .finish_non_exhaustive()
    }
}

impl Socket {
    pub(crate) fn new(
        ns: Arc<Namespace>,
        conn: Arc<dyn SocketConn>,
        auth: serde_json::Value,
        init: SocketInit,
    ) -> Self {
        let request = conn.engine().request();
        let budget = conn.engine().budget().clone();
        let handshake = Handshake {
            auth,
            headers: request.headers.clone(),
            uri: request.uri.clone(),
            address: request.remote_addr,
            issued: SystemTime::now(),
        };
        Self {
            inner: Arc::new(SocketInner {
                id: init.id.unwrap_or_else(crate::id::random_id).into(),
                ns,
                conn,
                handshake,
                handlers: RwLock::new(HashMap::new()),
                fallback: RwLock::new(None),
                on_disconnect: Mutex::new(Vec::new()),
                on_disconnecting: Mutex::new(Vec::new()),
                acks: Mutex::new(HashMap::new()),
                next_ack: AtomicU64::new(0),
                extensions: RwLock::new(http::Extensions::new()),
                state: Mutex::new(State::default()),
                pid: init.pid,
                recovered: init.recovered,
                cursor: init.cursor.map(|last| Cursor::new(last, budget)),
                data_json: Mutex::new(init.data),
                save_lock: tokio::sync::Mutex::new(()),
                saves: Arc::new(Saves::default()),
                start_seq: init.start_seq,
                user: Mutex::new(init.user),
                inbox: tokio::sync::Mutex::new(InboxCursor::default()),
            }),
        }
    }

    /// The socket id (public: other clients may see it).
    pub fn id(&self) -> &str {
        &self.inner.id
    }

    pub(crate) fn id_arc(&self) -> Arc<str> {
        self.inner.id.clone()
    }

    /// The namespace name.
    pub fn nsp(&self) -> &str {
        self.inner.ns.name()
    }

    /// What the client sent when connecting.
    pub fn handshake(&self) -> &Handshake {
        &self.inner.handshake
    }

    /// The transport in use (`polling` or `websocket`).
    pub fn transport(&self) -> &'static str {
        self.inner.conn.engine().transport().as_str()
    }

    /// True while the socket is connected.
    pub fn connected(&self) -> bool {
        self.inner.state.lock().connected
    }

    /// Stores a typed value on the socket (one per type), for this connection
    /// only: it is not kept with the session.
    pub fn insert_extension<T: Clone + Send + Sync + 'static>(&self, value: T) -> Option<T> {
        self.inner.extensions.write().insert(value)
    }

    /// A copy of a typed value stored with [`Socket::insert_extension`].
    pub fn extension<T: Clone + Send + Sync + 'static>(&self) -> Option<T> {
        self.inner.extensions.read().get::<T>().cloned()
    }

    /// Sets the socket's app data. With connection state recovery on, it is
    /// kept with the session and restored with it.
    pub fn set_data<T: serde::Serialize>(&self, data: &T) -> Result<(), serde_json::Error> {
        *self.inner.data_json.lock() = Some(serde_json::to_string(data)?);
        self.save_session();
        Ok(())
    }

    /// The socket's app data, if set and of type `T`.
    pub fn data<T: serde::de::DeserializeOwned>(&self) -> Option<T> {
        let json = self.inner.data_json.lock().clone()?;
        serde_json::from_str(&json).ok()
    }

    /// Says which user this socket belongs to (call it in an auth middleware):
    /// once connected, it receives the user's inbox, pending entries first.
    /// With recovery on, the user is kept with the session: a recovered socket
    /// is the user's again even when middlewares are skipped.
    pub fn set_user(&self, user: impl Into<String>) {
        *self.inner.user.lock() = Some(user.into());
    }

    /// The user set by [`Socket::set_user`].
    pub fn user(&self) -> Option<String> {
        self.inner.user.lock().clone()
    }

    pub(crate) fn inbox_cursor(&self) -> Option<&tokio::sync::Mutex<InboxCursor>> {
        self.inner
            .user
            .lock()
            .is_some()
            .then_some(&self.inner.inbox)
    }

    /// True when this socket restored a previous session (connection state recovery).
    pub fn recovered(&self) -> bool {
        self.inner.recovered
    }

    pub(crate) fn pid(&self) -> Option<&str> {
        self.inner.pid.as_deref()
    }

    /// The server this socket belongs to.
    pub fn io(&self) -> super::SocketIo {
        super::SocketIo {
            inner: self.inner.conn.io().clone(),
        }
    }

    /// Registers the handler of `event` (see [`Socket::on`]).
    pub(super) fn set_handler(&self, event: String, handler: EventHandler) {
        self.inner.handlers.write().insert(event, handler);
    }

    /// Registers the handler of events without one of their own (see
    /// [`Socket::on_fallback`]).
    pub(super) fn set_fallback(&self, handler: EventHandler) {
        *self.inner.fallback.write() = Some(handler);
    }

    /// Registers a handler run when the socket disconnects, after it left its rooms.
    pub fn on_disconnect<F, Fut>(&self, handler: F)
    where
        F: Fn(Socket, DisconnectReason) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let handler: DisconnectHandler = Arc::new(move |s, r| Box::pin(handler(s, r)) as BoxFuture);
        self.inner.on_disconnect.lock().push(handler);
    }

    /// Registers a handler run when the socket is about to disconnect, while
    /// it still is in its rooms.
    pub fn on_disconnecting<F, Fut>(&self, handler: F)
    where
        F: Fn(Socket, DisconnectReason) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let handler: DisconnectHandler = Arc::new(move |s, r| Box::pin(handler(s, r)) as BoxFuture);
        self.inner.on_disconnecting.lock().push(handler);
    }

    /// Sends an event to this client. With recovery on, the event is stored
    /// first; a store failure known when this is called fails it (see
    /// [`crate::BroadcastOperator::emit`]).
    pub fn emit(&self, event: &str, args: impl IntoArgs) -> Result<(), EmitError> {
        self.emit_packet(event, args.into_args()?, None)
    }

    /// Sends an event that is not stored and may be dropped when the client's
    /// send buffer is full (typing indicators, presence).
    pub fn emit_volatile(&self, event: &str, args: impl IntoArgs) -> Result<(), EmitError> {
        if !self.connected() {
            return Err(EmitError::Disconnected);
        }
        let (values, attachments) = args.into_args()?.into_parts();
        let packet = Packet::event(self.nsp(), event, &values, attachments, None);
        self.inner.conn.send_packet(&packet, true)
    }

    /// Sends an event and waits for the client's acknowledgement, for at most
    /// the server's default ack timeout.
    pub async fn emit_with_ack(&self, event: &str, args: impl IntoArgs) -> Result<Args, AckError> {
        let timeout = self.inner.conn.config().ack_timeout;
        self.emit_with_ack_timeout(event, args, timeout).await
    }

    /// Sends an event and waits for the acknowledgement for at most `timeout`.
    /// On timeout the pending entry is freed.
    pub async fn emit_with_ack_timeout(
        &self,
        event: &str,
        args: impl IntoArgs,
        timeout: Duration,
    ) -> Result<Args, AckError> {
        let args = args.into_args().map_err(EmitError::from)?;
        self.send_with_ack(event, args)?.wait(timeout).await
    }

    /// Queues the event now (so that events sent one after the other keep
    /// their order) and returns what waits for its acknowledgement.
    pub(crate) fn send_with_ack(&self, event: &str, args: Args) -> Result<PendingAck, EmitError> {
        let id = self.inner.next_ack.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.inner.acks.lock().insert(id, tx);
        let pending = PendingAck {
            socket: self.inner.clone(),
            id,
            rx,
        };
        self.emit_packet(event, args, Some(id))?;
        Ok(pending)
    }

    fn emit_packet(&self, event: &str, args: Args, id: Option<u64>) -> Result<(), EmitError> {
        if !self.connected() {
            return Err(EmitError::Disconnected);
        }
        if id.is_none() && self.inner.ns.durable() {
            // Stored first, then delivered with its offset.
            let target = Target {
                nsp: self.nsp().to_owned(),
                rooms: vec![self.id().to_owned()],
                except: Vec::new(),
            };
            self.inner.ns.write_failure()?;
            return self.inner.ns.publish(target, event, args, None).map(drop);
        }
        let (values, attachments) = args.into_parts();
        let packet = Packet::event(self.nsp(), event, &values, attachments, id);
        self.inner.conn.send_packet(&packet, false)
    }

    /// Joins a room.
    pub fn join(&self, room: impl Into<String>) {
        let joined = self.inner.ns.join(self, [room.into()]);
        self.save_session();
        self.tell_rooms(joined, true);
    }

    /// Leaves a room.
    pub fn leave(&self, room: &str) {
        let left = self.inner.ns.leave(self.id(), [room.to_owned()]);
        self.save_session();
        self.tell_rooms(left, false);
    }

    /// Tells the server's monitors that this socket joined (or left) `rooms`.
    fn tell_rooms(&self, rooms: Vec<String>, joined: bool) {
        let monitors = &self.inner.conn.io().monitors;
        // Joins before the socket is connected (in a middleware) are told
        // with its rooms in `Connected`.
        if rooms.is_empty() || !monitors.any() || (joined && !self.connected()) {
            return;
        }
        for room in rooms {
            let (nsp, id) = (self.nsp().to_owned(), self.id().to_owned());
            monitors.tell(&if joined {
                SocketChange::Joined { nsp, id, room }
            } else {
                SocketChange::Left { nsp, id, room }
            });
        }
    }

    /// The rooms this socket is in (its own id included).
    pub fn rooms(&self) -> Vec<String> {
        self.inner.ns.rooms_of(self.id())
    }

    /// A broadcast to `room` that excludes this socket.
    pub fn to(&self, room: impl Into<String>) -> BroadcastOperator {
        self.broadcast().to(room)
    }

    /// A broadcast to every socket of the namespace but this one.
    pub fn broadcast(&self) -> BroadcastOperator {
        BroadcastOperator::new(self.inner.ns.clone()).except_socket(self.id_arc())
    }

    /// Disconnects the socket from its namespace; the client is told and does
    /// not reconnect by itself.
    pub fn disconnect(&self) {
        self.close(DisconnectReason::ServerNamespaceDisconnect, true);
    }

    /// Closes the underlying connection (every namespace of this client). The
    /// client sees a transport close and reconnects by itself.
    pub fn close_transport(&self) {
        self.inner
            .conn
            .close_engine(tether_proto::engine::CloseReason::ForcedClose, true);
    }

    /// True when the client answers a ping within a short bound (the ping
    /// timeout, at most 5 s); otherwise its connection closes with a ping
    /// timeout. Tells a live session from one whose transport died unseen.
    pub(crate) async fn answers_ping(&self) -> bool {
        let within = self
            .inner
            .conn
            .config()
            .ping_timeout
            .min(std::time::Duration::from_secs(5));
        self.inner.conn.engine().check_alive(within).await
    }

    /// Acknowledgement arriving from the client.
    pub(crate) fn resolve_ack(&self, packet: Packet) {
        let Some(id) = packet.id else { return };
        let Some(tx) = self.inner.acks.lock().remove(&id) else {
            return;
        };
        let values: Vec<Box<RawValue>> = packet
            .data
            .as_deref()
            .and_then(|d| serde_json::from_str(d.get()).ok())
            .unwrap_or_default();
        let _ = tx.send(Args::from_raw(values, packet.attachments));
    }

    /// Marks the socket connected. Events queue up until [`Socket::drain`]
    /// runs, after the connection handler.
    pub(crate) fn mark_connected(&self) {
        let mut state = self.inner.state.lock();
        state.connected = true;
        state.draining = true;
    }

    /// An EVENT from the client. Handlers of one socket run one at a time, in
    /// arrival order, so that what they emit or store keeps the client's order.
    pub(crate) fn on_event(&self, packet: Packet) {
        let mut state = self.inner.state.lock();
        if !state.connected {
            return;
        }
        let max = self.inner.conn.config().max_queued_events;
        if state.queue.len() >= max {
            // Only a batch of many packets in one polling POST gets here:
            // reading pauses at half of it.
            drop(state);
            tracing::warn!(sid = self.id(), "event queue full: closing the connection");
            self.inner
                .conn
                .close_engine(tether_proto::engine::CloseReason::BufferFull, false);
            return;
        }
        state.queue.push_back(packet);
        // Backpressure: past half the limit, stop reading from the client
        // until the handlers caught up (see `drain`).
        if !state.paused_reading && state.queue.len() >= (max / 2).max(1) {
            state.paused_reading = true;
            self.inner.conn.engine().pause_reading();
        }
        if !state.draining {
            state.draining = true;
            drop(state);
            run_inline_or_spawn(self.clone().drain());
        }
    }

    /// Runs the handlers of queued events until the queue is empty.
    pub(crate) async fn drain(self) {
        loop {
            let packet = {
                let mut state = self.inner.state.lock();
                if state.paused_reading
                    && state.queue.len() <= self.inner.conn.config().max_queued_events / 4
                {
                    state.paused_reading = false;
                    self.inner.conn.engine().resume_reading();
                }
                match state.queue.pop_front() {
                    Some(packet) => packet,
                    None => {
                        state.draining = false;
                        return;
                    }
                }
            };
            self.dispatch_event(packet).await;
        }
    }

    async fn dispatch_event(&self, packet: Packet) {
        let Some(data) = packet.data.as_deref() else {
            return;
        };
        let Ok((name, values)) = split_event(data) else {
            return;
        };
        let handler = self.inner.handlers.read().get(&name).cloned();
        let Some(handler) = handler.or_else(|| self.inner.fallback.read().clone()) else {
            tracing::trace!(event = %name, "no handler");
            return;
        };
        let ack = packet.id.map(|id| AckSender {
            conn: self.inner.conn.clone(),
            nsp: self.nsp().to_owned(),
            id,
            saves: self.inner.pid.is_some().then(|| self.inner.saves.clone()),
        });
        metrics::counter!(crate::metrics::EVENTS_IN).increment(1);
        let event = Event {
            name,
            args: Args::from_raw(values, packet.attachments),
            ack,
        };
        let run = std::panic::AssertUnwindSafe(handler(self.clone(), event));
        if futures_util::FutureExt::catch_unwind(run).await.is_err() {
            tracing::error!(sid = self.id(), "an event handler panicked");
        }
    }

    /// Leaves the namespace. Idempotent.
    pub(crate) fn close(&self, reason: DisconnectReason, notify_client: bool) {
        {
            let mut state = self.inner.state.lock();
            if !state.connected {
                return;
            }
            state.connected = false;
            state.queue.clear();
            if std::mem::take(&mut state.paused_reading) {
                self.inner.conn.engine().resume_reading();
            }
        }
        if notify_client {
            let packet = Packet::new(tether_proto::socketio::PacketType::Disconnect, self.nsp());
            let _ = self.inner.conn.send_packet(&packet, false);
        }
        self.inner.conn.forget_socket(self.nsp(), self);
        if let Some(user) = self.user() {
            self.inner.conn.io().users.remove(&user, self);
        }
        // Pending acknowledgements fail with `Disconnected`.
        self.inner.acks.lock().clear();
        let socket = self.clone();
        tokio::spawn(async move {
            socket.end_session(reason).await;
            let disconnecting: Vec<_> = socket.inner.on_disconnecting.lock().clone();
            for handler in disconnecting {
                handler(socket.clone(), reason).await;
            }
            if let Some(left) = socket.inner.ns.remove_socket(&socket) {
                socket.tell_rooms(left, false);
                let monitors = &socket.inner.conn.io().monitors;
                if monitors.any() {
                    monitors.tell(&SocketChange::Disconnected {
                        nsp: socket.nsp().to_owned(),
                        id: socket.id().to_owned(),
                        reason,
                    });
                }
            }
            let disconnect: Vec<_> = socket.inner.on_disconnect.lock().clone();
            for handler in disconnect {
                handler(socket.clone(), reason).await;
            }
            socket.inner.handlers.write().clear();
            socket.inner.fallback.write().take();
        });
    }
}

impl Socket {
    /// The session record as it stands now.
    fn session_record(&self, connected: bool) -> Option<SessionRecord> {
        let pid = self.inner.pid.clone()?;
        Some(SessionRecord {
            pid,
            sid: self.id().to_owned(),
            nsp: self.nsp().to_owned(),
            rooms: self.rooms(),
            data: self.inner.data_json.lock().clone(),
            user: self.user(),
            start_seq: self.inner.start_seq,
            connected,
            updated_ms: crate::store::now_ms(),
        })
    }

    /// Keeps the stored session current (rooms, data) while connected, so a
    /// crash of the server loses nothing of it.
    pub(crate) fn save_session(&self) {
        let Some(store) = self.inner.ns.store() else {
            return;
        };
        if self.inner.pid.is_none() {
            return;
        }
        let socket = self.clone();
        let ticket = self.inner.saves.asked.fetch_add(1, Ordering::AcqRel) + 1;
        tokio::spawn(async move {
            let _order = socket.inner.save_lock.lock().await;
            if socket.connected() {
                if let Some(record) = socket.session_record(true) {
                    if let Err(e) = store.save_session(record).await {
                        tracing::warn!(error = %e, "saving a session failed");
                    }
                }
            }
            // This save took the state as of now: every ticket up to ours.
            socket
                .inner
                .saves
                .done
                .send_modify(|done| *done = (*done).max(ticket));
        });
    }

    /// After a disconnection: keep the session for recovery, or drop it when
    /// the client or the server ended it on purpose.
    async fn end_session(&self, reason: DisconnectReason) {
        let Some(store) = self.inner.ns.store() else {
            return;
        };
        let Some(pid) = self.inner.pid.clone() else {
            return;
        };
        let _order = self.inner.save_lock.lock().await;
        if !self.inner.ns.owns_pid(&pid, self) {
            // Taken over by a newer socket: the session is its own now.
            return;
        }
        self.inner.ns.forget_pid(&pid, self);
        let result = match reason {
            DisconnectReason::ClientNamespaceDisconnect
            | DisconnectReason::ServerNamespaceDisconnect => store.delete_session(&pid).await,
            _ => match self.session_record(false) {
                Some(record) => store.save_session(record).await,
                None => Ok(()),
            },
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "storing a session at disconnection failed");
        }
    }

    /// A stored entry from the live fan-out.
    pub(crate) fn offer(&self, out: &Outgoing) {
        let Some(cursor) = &self.inner.cursor else {
            return;
        };
        if !self.connected() {
            return;
        }
        let conn = &self.inner.conn;
        if cursor.offer(out, |frames| conn.try_send(frames)) {
            tokio::spawn(self.clone().catch_up());
        }
    }

    /// Starts catching up from the store (after connecting or recovering).
    pub(crate) fn start_catch_up(&self) {
        if let Some(cursor) = &self.inner.cursor {
            if cursor.claim_task() {
                tokio::spawn(self.clone().catch_up());
            }
        }
    }

    /// Reads what the socket missed from the store, page by page, as fast as
    /// the client takes it, then goes live at the seam. A page is read only
    /// when the socket's queue drained below half of `max_buffer` and the
    /// send budget has room for it, and is sized in bytes to that room (its
    /// count from the size of the entries read before); the bytes are
    /// reserved in the budget while the page is read. What the queue could
    /// not take is dropped and read again later.
    async fn catch_up(self) {
        let (Some(cursor), Some(store)) = (&self.inner.cursor, self.inner.ns.store()) else {
            return;
        };
        let conn = &self.inner.conn;
        let engine = conn.engine();
        let budget = engine.budget().clone();
        let max_buffer = conn.config().max_buffer;
        let low_water = max_buffer / 2;
        // Bytes of one encoded entry, as last seen; the first page is small.
        let mut entry_size = 0usize;
        let mut last_count = FIRST_PAGE;
        loop {
            if !self.connected() || !engine.writable(low_water).await {
                cursor.release_task();
                return;
            }
            let queued = engine.queued_bytes();
            let room = max_buffer
                .saturating_sub(queued)
                .min(budget.room(queued))
                .min(PAGE_BYTES);
            if room < entry_size.clamp(1, SendBudget::SHARE) {
                // The budget is spent: paused until some of it comes back.
                budget.wait_for_room(ROOM_TICK).await;
                continue;
            }
            let count = room
                .checked_div(entry_size)
                .map_or(FIRST_PAGE, |fit| fit.clamp(1, PAGE).min(last_count * 4));
            last_count = count;
            let rooms = self.rooms();
            let mut reserved = budget.reserve(room);
            let (outgoing, end) = match store.read(self.nsp(), &rooms, cursor.last(), count).await {
                Ok(page) => {
                    let end = page.len() < count;
                    let epoch = store.epoch().to_owned();
                    let parser = conn.config().parser;
                    let outgoing: Vec<Outgoing> = page
                        .iter()
                        .map(|e| encode_entry(e, &epoch, parser))
                        .collect();
                    (outgoing, end)
                }
                Err(e) => {
                    tracing::warn!(error = %e, sid = self.id(), "catch-up read failed: closing so the client recovers later");
                    cursor.release_task();
                    self.close_transport();
                    return;
                }
            };
            if !outgoing.is_empty() {
                let bytes: usize = outgoing.iter().map(Outgoing::size).sum();
                reserved.resize(bytes);
                entry_size = (bytes / outgoing.len()).max(1);
            }
            // The frames are counted again as they are queued.
            drop(reserved);
            let sent = |frames: &[Frame]| {
                let outcome = conn.try_send(frames);
                if matches!(outcome, crate::delivery::SendOutcome::Sent) {
                    metrics::counter!(crate::metrics::REPLAYED_EVENTS).increment(1);
                }
                outcome
            };
            match cursor.apply_page(&outgoing, end, sent) {
                PageResult::Live => return,
                PageResult::More | PageResult::Full => {}
                PageResult::Closed => {
                    cursor.release_task();
                    return;
                }
            }
        }
    }
}

/// Entries of the first page a catch-up reads (before it knows their size).
const FIRST_PAGE: usize = 16;
/// Most bytes of one catch-up page.
const PAGE_BYTES: usize = 2 * 1024 * 1024;
/// How often a paused catch-up looks at the budget again without a wake-up.
const ROOM_TICK: Duration = Duration::from_millis(50);

/// An acknowledgement the server waits for. Dropping it frees its entry.
pub(crate) struct PendingAck {
    socket: Arc<SocketInner>,
    id: u64,
    rx: oneshot::Receiver<Args>,
}

impl PendingAck {
    /// Waits for the acknowledgement for at most `timeout`.
    pub(crate) async fn wait(mut self, timeout: Duration) -> Result<Args, AckError> {
        match tokio::time::timeout(timeout, &mut self.rx).await {
            Ok(Ok(args)) => Ok(args),
            Ok(Err(_)) => Err(AckError::Disconnected),
            Err(_) => Err(AckError::Timeout),
        }
    }
}

impl Drop for PendingAck {
    fn drop(&mut self) {
        self.socket.acks.lock().remove(&self.id);
    }
}

/// Session saves of one socket: tickets handed out, and the highest ticket
/// whose save finished.
#[derive(Debug)]
struct Saves {
    asked: AtomicU64,
    done: tokio::sync::watch::Sender<u64>,
}

impl Default for Saves {
    fn default() -> Self {
        Self {
            asked: AtomicU64::new(0),
            done: tokio::sync::watch::channel(0).0,
        }
    }
}

/// An event received from a client.
#[derive(Debug)]
pub struct Event {
    pub(crate) name: String,
    pub(crate) args: Args,
    pub(crate) ack: Option<AckSender>,
}

impl Event {
    /// The event name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The arguments.
    pub fn args(&self) -> &Args {
        &self.args
    }

    /// Takes the arguments out (to forward them, say).
    pub fn take_args(&mut self) -> Args {
        std::mem::take(&mut self.args)
    }

    /// True when the client asked for an acknowledgement.
    pub fn wants_ack(&self) -> bool {
        self.ack.is_some()
    }

    /// Takes the acknowledgement callback, to answer later or elsewhere.
    pub fn take_ack(&mut self) -> Option<AckSender> {
        self.ack.take()
    }

    /// Acknowledges the event with `args`. Does nothing if the client did not
    /// ask for an acknowledgement or it was answered already.
    pub fn ack(&mut self, args: impl IntoArgs) -> Result<(), EmitError> {
        match self.ack.take() {
            Some(ack) => ack.send(args),
            None => Ok(()),
        }
    }
}

/// Longest an acknowledgement waits for a session save before it goes anyway
/// (a store that is down must not hold the client's acks forever).
const ACK_SAVE_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Answers one acknowledgement requested by the client.
#[derive(Debug)]
pub struct AckSender {
    conn: Arc<dyn SocketConn>,
    nsp: String,
    id: u64,
    /// With recovery on: the socket's session saves.
    saves: Option<Arc<Saves>>,
}

impl AckSender {
    /// Sends the acknowledgement once `answer` resolves, from a task of its
    /// own: the handler returns at once, so the socket's next event is
    /// handled meanwhile (a store commits several of them together).
    ///
    /// ```no_run
    /// # use tether::{extract::Data, AckSender, Socket};
    /// # fn demo(socket: Socket) {
    /// socket.on("chat message", |socket: Socket, Data(text): Data<String>, ack: AckSender| async move {
    ///     let Some(all) = socket.io().of("/") else { return };
    ///     let stored = all.publish("chat message", (text,));
    ///     ack.send_after(async move { (stored.await.is_ok(),) });
    /// });
    /// # }
    /// ```
    pub fn send_after<F>(self, answer: F)
    where
        F: std::future::Future + Send + 'static,
        F::Output: IntoArgs + Send,
    {
        tokio::spawn(async move {
            let args = answer.await;
            if let Err(e) = self.send(args) {
                tracing::debug!(error = %e, "acknowledgement not sent");
            }
        });
    }

    /// Sends the acknowledgement. With connection state recovery on, a
    /// change of the session made before (a room joined or left, data set)
    /// is stored first: an ack means the change survives a crash.
    pub fn send(self, args: impl IntoArgs) -> Result<(), EmitError> {
        let (values, attachments) = args.into_args()?.into_parts();
        let packet = Packet::ack(self.nsp, self.id, &values, attachments);
        metrics::counter!(crate::metrics::ACKS).increment(1);
        let pending = self.saves.and_then(|saves| {
            let ticket = saves.asked.load(Ordering::Acquire);
            let done = *saves.done.borrow();
            (done < ticket).then_some((saves, ticket))
        });
        match pending {
            None => self.conn.send_packet(&packet, false),
            Some((saves, ticket)) => {
                let conn = self.conn;
                let mut done = saves.done.subscribe();
                tokio::spawn(async move {
                    let saved =
                        tokio::time::timeout(ACK_SAVE_WAIT, done.wait_for(|done| *done >= ticket))
                            .await;
                    if saved.is_err() {
                        tracing::warn!("session save still pending: acknowledging anyway");
                    }
                    let _ = conn.send_packet(&packet, false);
                });
                Ok(())
            }
        }
    }
}

/// Polls `fut` once here and spawns it only if it is not done: a handler
/// that completes at once (an echo, an ack) costs no task and no wake-up of
/// another thread, and its answer is queued before the transport writes
/// what this read brought. A future that is pending is spawned as it is:
/// the task polls it again at once, with its own waker, so the no-op waker
/// of the first poll is never relied upon.
fn run_inline_or_spawn<F>(fut: F)
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let mut fut = Box::pin(fut);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    if fut.as_mut().poll(&mut cx).is_pending() {
        tokio::spawn(fut);
    }
}
