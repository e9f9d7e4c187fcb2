//! A client's connection to one namespace.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::{HeaderMap, Uri};
use parking_lot::{Mutex, RwLock};
use serde_json::value::RawValue;
use tether_proto::socketio::{split_event, Packet};
use tokio::sync::oneshot;

use super::conn::SioConn;
use super::namespace::{BroadcastOperator, Namespace};
use super::{BoxFuture, DisconnectHandler, EventHandler};
use crate::error::{AckError, DisconnectReason, EmitError};
use crate::{Args, Event, IntoArgs};

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

#[derive(Default)]
struct State {
    connected: bool,
    /// Events waiting for their handler, in arrival order.
    queue: VecDeque<Packet>,
    /// A task is draining `queue` (or the connection handler still runs).
    draining: bool,
}

pub(crate) struct SocketInner {
    id: Arc<str>,
    pub(crate) ns: Arc<Namespace>,
    pub(crate) conn: Arc<SioConn>,
    handshake: Handshake,
    handlers: RwLock<HashMap<String, EventHandler>>,
    on_disconnect: Mutex<Vec<DisconnectHandler>>,
    on_disconnecting: Mutex<Vec<DisconnectHandler>>,
    acks: Mutex<HashMap<u64, oneshot::Sender<Args>>>,
    next_ack: AtomicU64,
    extensions: RwLock<http::Extensions>,
    state: Mutex<State>,
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
    pub(crate) fn new(ns: Arc<Namespace>, conn: Arc<SioConn>, auth: serde_json::Value) -> Self {
        let request = conn.engine().request();
        let handshake = Handshake {
            auth,
            headers: request.headers.clone(),
            uri: request.uri.clone(),
            address: request.remote_addr,
            issued: SystemTime::now(),
        };
        Self {
            inner: Arc::new(SocketInner {
                id: crate::id::random_id().into(),
                ns,
                conn,
                handshake,
                handlers: RwLock::new(HashMap::new()),
                on_disconnect: Mutex::new(Vec::new()),
                on_disconnecting: Mutex::new(Vec::new()),
                acks: Mutex::new(HashMap::new()),
                next_ack: AtomicU64::new(0),
                extensions: RwLock::new(http::Extensions::new()),
                state: Mutex::new(State::default()),
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

    /// Stores typed data on the socket (one value per type).
    pub fn insert_data<T: Clone + Send + Sync + 'static>(&self, value: T) -> Option<T> {
        self.inner.extensions.write().insert(value)
    }

    /// A copy of the typed data stored on the socket.
    pub fn data<T: Clone + Send + Sync + 'static>(&self) -> Option<T> {
        self.inner.extensions.read().get::<T>().cloned()
    }

    /// Registers the handler of an event (replacing an earlier one).
    pub fn on<F, Fut>(&self, event: impl Into<String>, handler: F)
    where
        F: Fn(Socket, Event) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let handler: EventHandler = Arc::new(move |s, e| Box::pin(handler(s, e)) as BoxFuture);
        self.inner.handlers.write().insert(event.into(), handler);
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

    /// Sends an event to this client.
    pub fn emit(&self, event: &str, args: impl IntoArgs) -> Result<(), EmitError> {
        self.emit_packet(event, args.into_args()?, None)
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
        let args = args.into_args()?;
        let id = self.inner.next_ack.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.inner.acks.lock().insert(id, tx);
        struct Pending<'a>(&'a SocketInner, u64);
        impl Drop for Pending<'_> {
            fn drop(&mut self) {
                self.0.acks.lock().remove(&self.1);
            }
        }
        let _pending = Pending(&self.inner, id);
        self.emit_packet(event, args, Some(id))?;
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(args)) => Ok(args),
            Ok(Err(_)) => Err(AckError::Disconnected),
            Err(_) => Err(AckError::Timeout),
        }
    }

    fn emit_packet(&self, event: &str, args: Args, id: Option<u64>) -> Result<(), EmitError> {
        if !self.connected() {
            return Err(EmitError::Disconnected);
        }
        let (values, attachments) = args.into_parts();
        let packet = Packet::event(self.nsp(), event, &values, attachments, id);
        self.inner.conn.send_packet(&packet, false)
    }

    /// Joins a room.
    pub fn join(&self, room: impl Into<String>) {
        self.inner.ns.join(self, [room.into()]);
    }

    /// Leaves a room.
    pub fn leave(&self, room: &str) {
        self.inner.ns.leave(self.id(), [room.to_owned()]);
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
        if state.queue.len() >= self.inner.conn.config().max_queued_events {
            drop(state);
            tracing::warn!(sid = self.id(), "event queue full: closing the connection");
            self.inner
                .conn
                .close_engine(tether_proto::engine::CloseReason::BufferFull, false);
            return;
        }
        state.queue.push_back(packet);
        if !state.draining {
            state.draining = true;
            tokio::spawn(self.clone().drain());
        }
    }

    /// Runs the handlers of queued events until the queue is empty.
    pub(crate) async fn drain(self) {
        loop {
            let packet = {
                let mut state = self.inner.state.lock();
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
        let Some(handler) = handler else {
            tracing::trace!(event = %name, "no handler");
            return;
        };
        let ack = packet.id.map(|id| AckSender {
            conn: self.inner.conn.clone(),
            nsp: self.nsp().to_owned(),
            id,
        });
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
        }
        if notify_client {
            let packet = Packet::new(tether_proto::socketio::PacketType::Disconnect, self.nsp());
            let _ = self.inner.conn.send_packet(&packet, false);
        }
        self.inner.conn.forget_socket(self.nsp(), self.id());
        // Pending acknowledgements fail with `Disconnected`.
        self.inner.acks.lock().clear();
        let socket = self.clone();
        tokio::spawn(async move {
            let disconnecting: Vec<_> = socket.inner.on_disconnecting.lock().clone();
            for handler in disconnecting {
                handler(socket.clone(), reason).await;
            }
            socket.inner.ns.remove_socket(socket.id());
            let disconnect: Vec<_> = socket.inner.on_disconnect.lock().clone();
            for handler in disconnect {
                handler(socket.clone(), reason).await;
            }
            socket.inner.handlers.write().clear();
        });
    }
}

/// Answers one acknowledgement requested by the client.
#[derive(Debug)]
pub struct AckSender {
    conn: Arc<SioConn>,
    nsp: String,
    id: u64,
}

impl AckSender {
    /// Sends the acknowledgement.
    pub fn send(self, args: impl IntoArgs) -> Result<(), EmitError> {
        let (values, attachments) = args.into_args()?.into_parts();
        let packet = Packet::ack(self.nsp, self.id, &values, attachments);
        self.conn.send_packet(&packet, false)
    }
}
