//! A socket: one namespace on a [`crate::Manager`]'s connection.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use serde_json::value::RawValue;
use serde_json::Value;
use tether_proto::engine::Frame;
use tether_proto::socketio::{split_event, Packet, PacketType, Parser};
use tether_proto::tether::RecoveryReport;
use tokio::sync::{mpsc, oneshot, watch};

use crate::args::{Args, IntoArgs};
use crate::durable::{StateFile, StoredPosition};
use crate::engine::EngineTx;
use crate::error::{AckError, ConnectError, DisconnectReason, EmitError, Error};
use crate::manager::{Closer, Hub, Lifecycle, MgrCmd, Shared};
use crate::offset::{OffsetRule, Offsets};
use crate::stream::{Seen, Stream, StreamState};

/// A boxed, sendable future.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The authentication payload sent with every CONNECT.
///
/// ```
/// use tether_client::Auth;
/// let fixed = Auth::from(serde_json::json!({ "token": "t1" }));
/// let fresh = Auth::from_fn(|| async { serde_json::json!({ "token": "evaluated at each connect" }) });
/// # let _ = (fixed, fresh);
/// ```
#[derive(Clone, Default)]
pub enum Auth {
    /// No payload.
    #[default]
    None,
    /// The same value at every connect.
    Static(Value),
    /// A closure evaluated at each connect (a token refreshed, say).
    Dynamic(Arc<dyn Fn() -> BoxFuture<Value> + Send + Sync>),
}

impl Auth {
    /// Auth computed at each connect.
    pub fn from_fn<F, Fut>(f: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Value> + Send + 'static,
    {
        Auth::Dynamic(Arc::new(move || Box::pin(f())))
    }
}

impl From<Value> for Auth {
    fn from(v: Value) -> Self {
        Auth::Static(v)
    }
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Auth::None => f.write_str("None"),
            Auth::Static(v) => f.debug_tuple("Static").field(v).finish(),
            Auth::Dynamic(_) => f.write_str("Dynamic(..)"),
        }
    }
}

/// Settings of one socket (namespace).
///
/// ```
/// use std::time::Duration;
/// let opts = tether_client::SocketOptions {
///     ack_timeout: Some(Duration::from_secs(2)),
///     retries: Some(3),
///     ..Default::default()
/// };
/// assert_eq!(opts.buffer_capacity, 1024);
/// ```
#[derive(Debug, Clone)]
pub struct SocketOptions {
    /// Sent with every CONNECT (merged with `{pid, offset}` when recovering).
    pub auth: Auth,
    /// Default timeout of [`Socket::emit_with_ack`] (and of each try of a
    /// reliable emit); `None`: wait until the ack or a disconnection.
    pub ack_timeout: Option<Duration>,
    /// With `Some(n)`, every emit goes through the retry queue (the official
    /// client's `retries`): one at a time, in order, each try waiting
    /// `ack_timeout` for its ack, up to `n + 1` tries.
    pub retries: Option<u32>,
    /// Most emits buffered while disconnected (and most emits waiting in the
    /// retry queue); past it emits fail with [`EmitError::BufferFull`].
    pub buffer_capacity: usize,
    /// How recovery offsets are recognised in received events.
    pub offsets: OffsetRule,
    /// Server delivery streams followed by the socket: their last positions
    /// are presented in auth at every connect, and events at or before a
    /// position received already are dropped (see [`Stream`]).
    pub streams: Vec<Stream>,
}

impl Default for SocketOptions {
    fn default() -> Self {
        Self {
            auth: Auth::None,
            ack_timeout: None,
            retries: None,
            buffer_capacity: 1024,
            offsets: OffsetRule::Auto,
            streams: Vec::new(),
        }
    }
}

/// Where a socket stands.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Status {
    Idle,
    Connecting,
    Connected,
    Refused(ConnectError),
    Failed(u32),
    Unreachable(crate::error::EngineError),
    Closed,
}

struct Buffered {
    frames: Vec<Frame>,
    ack: Option<u64>,
}

struct State {
    /// Subscribed to the manager: connects whenever it opens.
    active: bool,
    connected: bool,
    tx: Option<EngineTx>,
    id: Option<String>,
    pid: Option<String>,
    recovered: bool,
    report: Option<RecoveryReport>,
    offsets: Offsets,
    next_ack: u64,
    acks: HashMap<u64, oneshot::Sender<Result<Args, AckError>>>,
    buffer: VecDeque<Buffered>,
    auth: Auth,
    /// The connection a CONNECT was sent on (none sent twice).
    connect_gen: Option<u64>,
    streams: Vec<StreamState>,
}

type Handler = Arc<dyn Fn(Event) -> BoxFuture<()> + Send + Sync>;

#[derive(Default)]
struct Handlers {
    by_name: HashMap<String, Handler>,
    /// Events whose handler acknowledges an inbox entry when it returns.
    inbox: std::collections::HashSet<String>,
    any: Option<Handler>,
    stream: Option<mpsc::UnboundedSender<Event>>,
}

struct QueueItem {
    event: String,
    args: Args,
    reply: oneshot::Sender<Result<Args, AckError>>,
    /// Its outbox entry, when it is kept in the state file.
    row: Option<i64>,
}

pub(crate) struct SocketInner {
    pub(crate) nsp: String,
    parser: Parser,
    opts: SocketOptions,
    state: Mutex<State>,
    status: watch::Sender<Status>,
    handlers: Arc<RwLock<Handlers>>,
    incoming: mpsc::UnboundedSender<Event>,
    queue: mpsc::UnboundedSender<QueueItem>,
    queued: AtomicUsize,
    mgr: mpsc::UnboundedSender<MgrCmd>,
    hub: Arc<Hub>,
    ids: Arc<MessageIds>,
    state_file: Option<Arc<StateFile>>,
    /// An outbox entry could not be delivered (the socket was closed): later
    /// ones wait in the file too, to keep the order.
    outbox_stalled: AtomicBool,
    /// Highest inbox position handled, plus one (0: none).
    inbox_handled: Arc<AtomicU64>,
    /// Notified when the retry queue becomes empty.
    idle: tokio::sync::Notify,
}

/// Message ids of reliable emits: unique per client instance.
pub(crate) struct MessageIds {
    prefix: String,
    next: AtomicU64,
}

impl MessageIds {
    pub(crate) fn new() -> Self {
        let n: u64 = rand::random();
        Self {
            prefix: format!("{n:016x}"),
            next: AtomicU64::new(0),
        }
    }

    fn next(&self) -> String {
        format!(
            "{}-{}",
            self.prefix,
            self.next.fetch_add(1, Ordering::Relaxed)
        )
    }
}

const RESERVED: [&str; 6] = [
    "connect",
    "connect_error",
    "disconnect",
    "disconnecting",
    "newListener",
    "removeListener",
];

impl SocketInner {
    pub(crate) fn new(
        nsp: String,
        parser: Parser,
        opts: SocketOptions,
        mgr: mpsc::UnboundedSender<MgrCmd>,
        hub: Arc<Hub>,
        ids: Arc<MessageIds>,
        state_file: Option<Arc<StateFile>>,
    ) -> Arc<Self> {
        let (incoming, incoming_rx) = mpsc::unbounded_channel();
        let (queue, queue_rx) = mpsc::unbounded_channel();
        let streams = opts
            .streams
            .iter()
            .map(|stream| StreamState {
                stream: stream.clone(),
                last: state_file
                    .as_ref()
                    .and_then(|f| f.position(&nsp, stream.field())),
            })
            .collect();
        // Outbox entries of earlier runs go first, in their order.
        let resend = state_file
            .as_ref()
            .map(|f| f.take_pending(&nsp))
            .unwrap_or_default();
        let queued = resend.len();
        for entry in resend {
            let (reply, _) = oneshot::channel();
            let _ = queue.send(QueueItem {
                event: entry.event,
                args: entry.args,
                reply,
                row: Some(entry.row),
            });
        }
        let handlers = Arc::new(RwLock::new(Handlers::default()));
        let (status, status_rx) = watch::channel(Status::Idle);
        let inbox_handled = Arc::new(AtomicU64::new(0));
        let inner = Arc::new(Self {
            state: Mutex::new(State {
                active: false,
                connected: false,
                tx: None,
                id: None,
                pid: None,
                recovered: false,
                report: None,
                offsets: Offsets::new(opts.offsets),
                next_ack: 0,
                acks: HashMap::new(),
                buffer: VecDeque::new(),
                auth: opts.auth.clone(),
                connect_gen: None,
                streams,
            }),
            nsp,
            parser,
            opts,
            status,
            handlers: handlers.clone(),
            incoming,
            queue,
            queued: AtomicUsize::new(queued),
            mgr,
            hub,
            ids,
            state_file,
            outbox_stalled: AtomicBool::new(false),
            inbox_handled: inbox_handled.clone(),
            idle: tokio::sync::Notify::new(),
        });
        tokio::spawn(dispatch(handlers, inbox_handled.clone(), incoming_rx));
        tokio::spawn(run_queue(Arc::downgrade(&inner), status_rx, queue_rx));
        inner
    }

    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    pub(crate) fn is_active(&self) -> bool {
        self.state().active
    }

    fn set_status(&self, status: Status) {
        self.status.send_replace(status);
    }

    // ---- called by the manager task ----

    /// Sends CONNECT (auth evaluated now) on connection `gen`.
    pub(crate) fn send_connect(self: &Arc<Self>, shared: &Arc<Shared>, gen: u64, tx: EngineTx) {
        let auth = {
            let mut st = self.state();
            if st.connected || st.connect_gen == Some(gen) {
                return;
            }
            st.connect_gen = Some(gen);
            st.auth.clone()
        };
        self.set_status(Status::Connecting);
        match auth {
            Auth::None => self.write_connect(None, &tx),
            Auth::Static(v) => self.write_connect(Some(v), &tx),
            Auth::Dynamic(f) => {
                let (me, shared) = (self.clone(), Arc::downgrade(shared));
                tokio::spawn(async move {
                    let v = f().await;
                    if shared
                        .upgrade()
                        .is_some_and(|s| s.generation() == Some(gen))
                    {
                        me.write_connect(Some(v), &tx);
                    }
                });
            }
        }
    }

    fn write_connect(&self, auth: Option<Value>, tx: &EngineTx) {
        let data = {
            let st = self.state();
            let positions: Vec<(String, u64)> = st
                .streams
                .iter()
                .filter_map(|s| Some((s.stream.field().to_owned(), s.last.as_ref()?.seq)))
                .collect();
            let auth = if positions.is_empty() {
                auth
            } else {
                let mut map = match auth {
                    Some(Value::Object(map)) => map,
                    _ => serde_json::Map::new(),
                };
                for (field, seq) in positions {
                    map.insert(field, Value::from(seq));
                }
                Some(Value::Object(map))
            };
            match &st.pid {
                Some(pid) => {
                    let mut map = serde_json::Map::new();
                    map.insert("pid".into(), Value::from(pid.clone()));
                    if let Some(offset) = &st.offsets.last {
                        map.insert("offset".into(), Value::from(offset.clone()));
                    }
                    if let Some(Value::Object(a)) = auth {
                        map.extend(a);
                    }
                    Some(Value::Object(map))
                }
                None => auth.filter(Value::is_object),
            }
        };
        tracing::debug!(nsp = %self.nsp, resume = data.as_ref().is_some_and(|d| d.get("pid").is_some()), "CONNECT");
        let mut packet = Packet::new(PacketType::Connect, self.nsp.clone());
        packet.data = data.and_then(|d| serde_json::value::to_raw_value(&d).ok());
        tx.send(packet.encode(self.parser));
    }

    /// The CONNECT reply.
    pub(crate) fn on_connect(&self, data: Option<&RawValue>, tx: EngineTx) {
        #[derive(serde::Deserialize)]
        struct Reply {
            sid: String,
            #[serde(default)]
            pid: Option<String>,
            #[serde(default)]
            recovery: Option<RecoveryReport>,
        }
        let Some(reply) = data.and_then(|d| serde_json::from_str::<Reply>(d.get()).ok()) else {
            let error = ConnectError {
                message: "invalid CONNECT reply (a Socket.IO v2 server?)".into(),
                data: None,
            };
            self.hub.emit(Lifecycle::ConnectError {
                nsp: self.nsp.clone(),
                error: error.clone(),
            });
            self.set_status(Status::Refused(error));
            return;
        };
        let recovered = {
            let mut st = self.state();
            if !st.active {
                return;
            }
            let recovered = reply.pid.is_some() && st.pid == reply.pid;
            if !recovered {
                st.offsets.reset();
            }
            if reply.recovery.is_some() {
                st.offsets.tether = true;
            }
            st.recovered = recovered;
            st.pid = reply.pid;
            st.report = reply.recovery;
            st.id = Some(reply.sid);
            st.connected = true;
            // Emits buffered while disconnected, in order.
            let buffered: Vec<Frame> = st.buffer.drain(..).flat_map(|b| b.frames).collect();
            if !buffered.is_empty() {
                tx.send(buffered);
            }
            st.tx = Some(tx);
            recovered
        };
        self.hub.emit(Lifecycle::Connect {
            nsp: self.nsp.clone(),
            recovered,
        });
        self.set_status(Status::Connected);
    }

    /// CONNECT_ERROR: the socket is refused and goes inactive.
    pub(crate) fn on_connect_error(&self, data: Option<&RawValue>) {
        #[derive(serde::Deserialize)]
        struct Body {
            message: String,
            #[serde(default)]
            data: Option<Value>,
        }
        let error = match data.map(|d| d.get()) {
            Some(text) => match serde_json::from_str::<Body>(text) {
                Ok(b) => ConnectError {
                    message: b.message,
                    data: b.data,
                },
                Err(_) => ConnectError {
                    message: serde_json::from_str::<String>(text).unwrap_or_else(|_| text.into()),
                    data: None,
                },
            },
            None => ConnectError {
                message: "connection refused".into(),
                data: None,
            },
        };
        {
            let mut st = self.state();
            st.active = false;
            st.connect_gen = None;
        }
        self.hub.emit(Lifecycle::ConnectError {
            nsp: self.nsp.clone(),
            error: error.clone(),
        });
        self.set_status(Status::Refused(error));
        let _ = self.mgr.send(MgrCmd::Inactive);
    }

    /// An EVENT from the server.
    pub(crate) fn on_event(self: &Arc<Self>, packet: Packet) {
        let Some(data) = packet.data.as_deref() else {
            return;
        };
        let Ok((name, values)) = split_event(data) else {
            return;
        };
        let args = Args::from_raw(values, packet.attachments);
        let (save, gen) = {
            let mut st = self.state();
            let recovery_on = st.pid.is_some();
            if !st.offsets.observe(&args, recovery_on, packet.id.is_some()) {
                tracing::debug!(nsp = %self.nsp, event = %name, "duplicate event dropped");
                return;
            }
            let save = match crate::stream::observe(&mut st.streams, &name, &args) {
                Seen::Duplicate => {
                    tracing::debug!(nsp = %self.nsp, event = %name, "event at a position seen already dropped");
                    return;
                }
                Seen::New(save) => save,
                Seen::Unpositioned => Vec::new(),
            };
            (save, st.connect_gen)
        };
        let mut ack = packet.id.map(|id| AckSender {
            socket: Arc::downgrade(self),
            id,
            gen,
        });
        let is_inbox = ack.is_some()
            && self
                .handlers
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .inbox
                .contains(&name);
        let inbox = if is_inbox {
            // The inbox position is the last argument.
            let seq = args
                .values()
                .last()
                .and_then(|v| serde_json::from_str::<u64>(v.get()).ok());
            match (seq, ack.take()) {
                (Some(seq), Some(ack)) => Some((ack, seq)),
                (_, taken) => {
                    ack = taken;
                    None
                }
            }
        } else {
            None
        };
        let inbox_seq = inbox.as_ref().map(|(_, seq)| *seq);
        let done = (!save.is_empty() || inbox.is_some()).then(|| Completion {
            socket: Arc::downgrade(self),
            save,
            inbox,
        });
        let _ = self.incoming.send(Event {
            name,
            args,
            ack,
            inbox_seq,
            done,
        });
    }

    /// An ACK from the server.
    pub(crate) fn on_ack(&self, packet: Packet) {
        let Some(id) = packet.id else { return };
        let Some(waiter) = self.state().acks.remove(&id) else {
            return;
        };
        let values: Vec<Box<RawValue>> = packet
            .data
            .as_deref()
            .and_then(|d| serde_json::from_str(d.get()).ok())
            .unwrap_or_default();
        let _ = waiter.send(Ok(Args::from_raw(values, packet.attachments)));
    }

    /// DISCONNECT from the server: no automatic reconnection.
    pub(crate) fn on_server_disconnect(&self) {
        self.state().active = false;
        self.closed(DisconnectReason::IoServerDisconnect, false);
        let _ = self.mgr.send(MgrCmd::Inactive);
    }

    /// The connection closed.
    pub(crate) fn on_close(&self, reason: DisconnectReason, will_reconnect: bool) {
        self.closed(reason, will_reconnect);
    }

    /// Reconnection gave up.
    pub(crate) fn on_reconnect_failed(&self, attempts: u32) {
        if self.is_active() {
            self.set_status(Status::Failed(attempts));
        }
    }

    /// The connection could not be opened, and no reconnection follows.
    pub(crate) fn on_open_failed(&self, error: crate::error::EngineError) {
        if self.is_active() {
            self.set_status(Status::Unreachable(error));
        }
    }

    fn closed(&self, reason: DisconnectReason, will_reconnect: bool) {
        let was_connected = {
            let mut st = self.state();
            let was = st.connected;
            st.connected = false;
            st.tx = None;
            st.id = None;
            st.connect_gen = None;
            // Acks of emits that left are lost; buffered ones wait.
            let buffered: Vec<u64> = st.buffer.iter().filter_map(|b| b.ack).collect();
            let lost: Vec<u64> = st
                .acks
                .keys()
                .copied()
                .filter(|id| !buffered.contains(id))
                .collect();
            for id in lost {
                if let Some(w) = st.acks.remove(&id) {
                    let _ = w.send(Err(AckError::Disconnected));
                }
            }
            was
        };
        if was_connected {
            self.hub.emit(Lifecycle::Disconnect {
                nsp: self.nsp.clone(),
                reason,
            });
        }
        let active = self.is_active();
        self.set_status(if active && will_reconnect {
            Status::Connecting
        } else {
            Status::Closed
        });
    }

    // ---- used by the application ----

    fn encode_event(
        &self,
        event: &str,
        args: Args,
        id: Option<u64>,
    ) -> Result<Vec<Frame>, EmitError> {
        if RESERVED.contains(&event) {
            return Err(EmitError::Reserved(event.to_owned()));
        }
        let (values, attachments) = args.into_parts();
        Ok(Packet::event(self.nsp.clone(), event, &values, attachments, id).encode(self.parser))
    }

    /// Sends now when connected, else buffers (bounded).
    fn send_or_buffer(
        &self,
        st: &mut State,
        frames: Vec<Frame>,
        ack: Option<u64>,
    ) -> Result<(), EmitError> {
        if st.connected {
            if let Some(tx) = &st.tx {
                if tx.send(frames.clone()) {
                    return Ok(());
                }
            }
        }
        if st.buffer.len() >= self.opts.buffer_capacity {
            return Err(EmitError::BufferFull);
        }
        st.buffer.push_back(Buffered { frames, ack });
        Ok(())
    }

    fn emit(&self, event: &str, args: Args) -> Result<(), EmitError> {
        let frames = self.encode_event(event, args, None)?;
        let mut st = self.state();
        self.send_or_buffer(&mut st, frames, None)
    }

    /// Sends an event with an ack id; the receiver gets the ack.
    fn emit_acked(
        &self,
        event: &str,
        args: Args,
    ) -> Result<(u64, oneshot::Receiver<Result<Args, AckError>>), EmitError> {
        let mut st = self.state();
        let id = st.next_ack;
        let frames = self.encode_event(event, args, Some(id))?;
        st.next_ack += 1;
        let (tx, rx) = oneshot::channel();
        self.send_or_buffer(&mut st, frames, Some(id))?;
        st.acks.insert(id, tx);
        Ok((id, rx))
    }

    /// Forgets an ack (timed out or abandoned), and its emit if still buffered.
    fn forget_ack(&self, id: u64) {
        let mut st = self.state();
        st.acks.remove(&id);
        st.buffer.retain(|b| b.ack != Some(id));
    }

    /// Sends a packet on connection `gen` (the one a request came on) when
    /// still connected on it; dropped otherwise.
    fn send_on(&self, gen: Option<u64>, packet: Packet) -> bool {
        let frames = packet.encode(self.parser);
        let st = self.state();
        match (&st.tx, st.connected) {
            (Some(tx), true) if st.connect_gen == gen => tx.send(frames),
            _ => false,
        }
    }

    /// Sends a packet when connected; dropped otherwise.
    fn send_now(&self, packet: Packet) -> bool {
        let frames = packet.encode(self.parser);
        let st = self.state();
        match (&st.tx, st.connected) {
            (Some(tx), true) => tx.send(frames),
            _ => false,
        }
    }

    async fn ack_result(
        self: &Arc<Self>,
        id: u64,
        rx: oneshot::Receiver<Result<Args, AckError>>,
        timeout: Option<Duration>,
    ) -> Result<Args, AckError> {
        struct Guard<'a>(&'a SocketInner, u64);
        impl Drop for Guard<'_> {
            fn drop(&mut self) {
                self.0.forget_ack(self.1);
            }
        }
        let _guard = Guard(self, id);
        let result = match timeout {
            Some(t) => match tokio::time::timeout(t, rx).await {
                Ok(r) => r,
                Err(_) => return Err(AckError::Timeout),
            },
            None => rx.await,
        };
        result.unwrap_or(Err(AckError::Disconnected))
    }

    fn enqueue(
        &self,
        event: &str,
        args: Args,
    ) -> Result<oneshot::Receiver<Result<Args, AckError>>, EmitError> {
        if RESERVED.contains(&event) {
            return Err(EmitError::Reserved(event.to_owned()));
        }
        if self.queued.load(Ordering::Acquire) >= self.opts.buffer_capacity {
            return Err(EmitError::BufferFull);
        }
        let (reply, rx) = oneshot::channel();
        self.queued.fetch_add(1, Ordering::AcqRel);
        let item = QueueItem {
            event: event.to_owned(),
            args,
            reply,
            row: None,
        };
        if self.queue.send(item).is_err() {
            self.dequeued();
            return Err(EmitError::Closed);
        }
        Ok(rx)
    }
}

impl SocketInner {
    /// One emit left the retry queue.
    fn dequeued(&self) {
        if self.queued.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.idle.notify_waiters();
        }
    }

    /// Records a reliable emit in the outbox, then queues it (on the writer
    /// thread, once committed: the queue order is the outbox order).
    fn enqueue_durable(
        self: &Arc<Self>,
        file: &StateFile,
        event: &str,
        args: Args,
        msg_id: &str,
    ) -> Result<oneshot::Receiver<Result<Args, AckError>>, EmitError> {
        if RESERVED.contains(&event) {
            return Err(EmitError::Reserved(event.to_owned()));
        }
        if self.queued.load(Ordering::Acquire) >= self.opts.buffer_capacity {
            return Err(EmitError::BufferFull);
        }
        let (reply, rx) = oneshot::channel();
        self.queued.fetch_add(1, Ordering::AcqRel);
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

/// Runs the handlers of one socket, one event at a time, in arrival order.
async fn dispatch(
    handlers: Arc<RwLock<Handlers>>,
    inbox_handled: Arc<AtomicU64>,
    mut rx: mpsc::UnboundedReceiver<Event>,
) {
    while let Some(mut ev) = rx.recv().await {
        let done = ev.done.take();
        if let Some((_, seq)) = done.as_ref().and_then(|d| d.inbox.as_ref()) {
            if seq.saturating_add(1) <= inbox_handled.load(Ordering::Acquire) {
                // Delivered again (its ack was lost): acknowledged again,
                // not handled twice.
                tracing::debug!(event = %ev.name, seq, "inbox entry handled already");
                drop(done);
                continue;
            }
        }
        // Events for the stream keep their completion: it runs when the
        // application drops them.
        ev.done = done;
        let target = {
            let h = handlers.read().unwrap_or_else(|e| e.into_inner());
            match h.by_name.get(&ev.name).or(h.any.as_ref()) {
                Some(handler) => Ok(handler.clone()),
                None => Err(h.stream.clone()),
            }
        };
        match target {
            Ok(handler) => {
                let done = ev.done.take();
                handler(ev).await;
                // After the handler returned: positions saved, inbox acked.
                drop(done);
            }
            Err(Some(stream)) => {
                if let Err(mpsc::error::SendError(ev)) = stream.send(ev) {
                    tracing::debug!(event = %ev.name, "event stream dropped: event lost");
                }
            }
            Err(None) => tracing::debug!(event = %ev.name, "no handler: event dropped"),
        }
    }
}

/// The retry queue (the official client's `retries`): one emit in flight at
/// a time, in order; each try is a new packet with a new ack id.
async fn run_queue(
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

async fn deliver(
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

/// A socket: one namespace of a [`crate::Manager`]'s connection. Cheap to clone.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let client = tether_client::Client::builder("http://127.0.0.1:3000").build().await?;
/// let admin = client.manager().socket("/admin");
/// admin.set_auth(serde_json::json!({ "token": "secret" }));
/// admin.on("welcome", |ev| async move { println!("{:?}", ev.args()) });
/// admin.connect().await?;
/// let reply = admin.emit_with_ack("echo", ("hi",)).await?;
/// assert_eq!(reply.get::<String>(0)?, "hi");
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Socket {
    pub(crate) inner: Arc<SocketInner>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) _closer: Arc<Closer>,
}

impl std::fmt::Debug for Socket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Socket")
            .field("nsp", &self.inner.nsp)
            .field("id", &self.id())
            .field("connected", &self.connected())
            .finish()
    }
}

impl Socket {
    /// The namespace.
    pub fn nsp(&self) -> &str {
        &self.inner.nsp
    }

    /// The socket id given by the server, while connected.
    pub fn id(&self) -> Option<String> {
        self.inner.state().id.clone()
    }

    /// True while connected to the namespace.
    pub fn connected(&self) -> bool {
        self.inner.state().connected
    }

    /// True when the last connection restored the previous session
    /// (connection state recovery).
    pub fn recovered(&self) -> bool {
        self.inner.state().recovered
    }

    /// Tether's report when the server refused to restore the session.
    pub fn recovery_report(&self) -> Option<RecoveryReport> {
        self.inner.state().report.clone()
    }

    /// The private session id (connection state recovery on).
    pub fn pid(&self) -> Option<String> {
        self.inner.state().pid.clone()
    }

    /// The offset presented at the next reconnection.
    pub fn last_offset(&self) -> Option<String> {
        self.inner.state().offsets.last.clone()
    }

    /// Sets the session to present at the next connect (to resume, on a new
    /// client, a session saved from another one).
    pub fn resume_session(&self, pid: impl Into<String>, offset: Option<String>) {
        let mut st = self.inner.state();
        st.pid = Some(pid.into());
        st.offsets.last = offset;
    }

    /// Replaces the auth payload (used from the next connect on).
    pub fn set_auth(&self, auth: impl Into<Auth>) {
        self.inner.state().auth = auth.into();
    }

    /// The manager this socket belongs to.
    pub fn manager(&self) -> crate::Manager {
        crate::Manager {
            shared: self.shared.clone(),
            _closer: self._closer.clone(),
        }
    }

    /// Registers the handler of `event`. Handlers of a socket run one at a
    /// time, in the order events arrived (a handler must not wait for
    /// another event of the same socket).
    ///
    /// ```no_run
    /// # async fn demo(socket: tether_client::Socket) {
    /// socket.on("ask", |mut ev| async move {
    ///     let n: u64 = ev.args().get(0).unwrap_or(0);
    ///     let _ = ev.ack((n * 2,));
    /// });
    /// # }
    /// ```
    pub fn on<F, Fut>(&self, event: impl Into<String>, handler: F)
    where
        F: Fn(Event) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let handler: Handler = Arc::new(move |ev| Box::pin(handler(ev)));
        self.inner
            .handlers
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .by_name
            .insert(event.into(), handler);
    }

    /// Registers the handler of every event that has no handler of its own.
    pub fn on_any<F, Fut>(&self, handler: F)
    where
        F: Fn(Event) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let handler: Handler = Arc::new(move |ev| Box::pin(handler(ev)));
        self.inner
            .handlers
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .any = Some(handler);
    }

    /// A stream of the events that have no handler (replaces an earlier stream).
    ///
    /// ```no_run
    /// # async fn demo(socket: tether_client::Socket) {
    /// let mut events = socket.events();
    /// while let Some(ev) = events.recv().await {
    ///     println!("{} {:?}", ev.name(), ev.args());
    /// }
    /// # }
    /// ```
    pub fn events(&self) -> EventStream {
        let (tx, rx) = mpsc::unbounded_channel();
        self.inner
            .handlers
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .stream = Some(tx);
        EventStream { rx }
    }

    /// Connects to the namespace (opening the manager's connection if
    /// needed) and waits for the server's answer.
    pub async fn connect(&self) -> Result<(), Error> {
        let mut status = self.inner.status.subscribe();
        {
            let mut st = self.inner.state();
            if st.connected {
                return Ok(());
            }
            st.active = true;
        }
        self.inner.set_status(Status::Connecting);
        status.mark_unchanged();
        self.inner
            .mgr
            .send(MgrCmd::Connect(self.inner.nsp.clone()))
            .map_err(|_| Error::Closed)?;
        let result = status
            .wait_for(|s| !matches!(s, Status::Connecting | Status::Idle))
            .await
            .map(|s| s.clone());
        match result {
            Ok(Status::Connected) => Ok(()),
            Ok(Status::Refused(e)) => Err(Error::Refused(e)),
            Ok(Status::Failed(n)) => Err(Error::ReconnectFailed(n)),
            Ok(Status::Unreachable(e)) => Err(Error::Open(e)),
            _ => Err(Error::Closed),
        }
    }

    /// Waits until the socket is connected (after a reconnection, say).
    pub async fn wait_connected(&self) -> Result<(), Error> {
        let mut status = self.inner.status.subscribe();
        let result = status
            .wait_for(|s| !matches!(s, Status::Connecting | Status::Idle))
            .await
            .map(|s| s.clone());
        match result {
            Ok(Status::Connected) => Ok(()),
            Ok(Status::Refused(e)) => Err(Error::Refused(e)),
            Ok(Status::Failed(n)) => Err(Error::ReconnectFailed(n)),
            Ok(Status::Unreachable(e)) => Err(Error::Open(e)),
            _ => Err(Error::Closed),
        }
    }

    /// Leaves the namespace; the manager closes when no socket is left.
    pub fn disconnect(&self) {
        let was_connected = {
            let mut st = self.inner.state();
            st.active = false;
            st.connected
        };
        if was_connected {
            self.inner
                .send_now(Packet::new(PacketType::Disconnect, self.inner.nsp.clone()));
        }
        self.inner
            .closed(DisconnectReason::IoClientDisconnect, false);
        let _ = self.inner.mgr.send(MgrCmd::Inactive);
    }

    /// Emits an event. While disconnected, it is buffered (up to
    /// `buffer_capacity`) and sent at the next connection. With `retries`
    /// set, it goes through the retry queue (and the server must ack it).
    ///
    /// ```no_run
    /// # fn demo(socket: &tether_client::Socket) -> Result<(), tether_client::EmitError> {
    /// socket.emit("chat message", ("hello",))?;
    /// let mut args = tether_client::Args::new();
    /// args.push_binary(vec![1u8, 2, 3]);
    /// socket.emit("upload", args)?;
    /// # Ok(()) }
    /// ```
    pub fn emit(&self, event: &str, args: impl IntoArgs) -> Result<(), EmitError> {
        let args = args.into_args()?;
        if self.inner.opts.retries.is_some() {
            self.inner.enqueue(event, args).map(drop)
        } else {
            self.inner.emit(event, args)
        }
    }

    /// Emits an event and waits for its acknowledgement (bounded by
    /// `ack_timeout` when set). With `retries` set, it goes through the
    /// retry queue.
    pub async fn emit_with_ack(&self, event: &str, args: impl IntoArgs) -> Result<Args, AckError> {
        let args = args.into_args().map_err(EmitError::from)?;
        if self.inner.opts.retries.is_some() {
            let rx = self.inner.enqueue(event, args)?;
            return rx.await.unwrap_or(Err(AckError::Emit(EmitError::Closed)));
        }
        self.emit_with_ack_timeout_inner(event, args, self.inner.opts.ack_timeout)
            .await
    }

    /// Emits an event and waits at most `timeout` for its acknowledgement
    /// (no retry).
    pub async fn emit_with_ack_timeout(
        &self,
        event: &str,
        args: impl IntoArgs,
        timeout: Duration,
    ) -> Result<Args, AckError> {
        let args = args.into_args().map_err(EmitError::from)?;
        self.emit_with_ack_timeout_inner(event, args, Some(timeout))
            .await
    }

    async fn emit_with_ack_timeout_inner(
        &self,
        event: &str,
        args: Args,
        timeout: Option<Duration>,
    ) -> Result<Args, AckError> {
        let (id, rx) = self.inner.emit_acked(event, args)?;
        self.inner.ack_result(id, rx, timeout).await
    }

    /// A reliable emit: through the retry queue (one in flight, in order,
    /// `retries` + 1 tries of `ack_timeout` each, surviving reconnections),
    /// with a message id appended as the **last argument** — the same id on
    /// every try, so that the server can store it once (the chat's
    /// `clientOffset`). Returns the id and the server's ack. The emit is
    /// queued when this is called (emits keep the order of the calls).
    ///
    /// With a state file ([`crate::ClientBuilder::state_file`]) the emit is
    /// recorded in its outbox first and kept there until acknowledged, across
    /// restarts of the process.
    ///
    /// ```no_run
    /// # async fn demo(socket: tether_client::Socket) -> Result<(), tether_client::AckError> {
    /// let sent = socket.emit_reliable("chat message", ("hello",)).await?;
    /// println!("{} acked with {:?}", sent.id, sent.ack.values());
    /// # Ok(()) }
    /// ```
    pub fn emit_reliable(
        &self,
        event: &str,
        args: impl IntoArgs,
    ) -> impl Future<Output = Result<Reliable, AckError>> + Send + 'static {
        let id = self.inner.ids.next();
        self.emit_reliable_with_id(event, args, id)
    }

    /// Like [`Socket::emit_reliable`], with the application's message id.
    ///
    /// The emit is queued (recorded in the outbox, with a state file) when
    /// this is called, not when the future is first polled: emits keep the
    /// order of the calls.
    pub fn emit_reliable_with_id(
        &self,
        event: &str,
        args: impl IntoArgs,
        id: impl Into<String>,
    ) -> impl Future<Output = Result<Reliable, AckError>> + Send + 'static {
        let id = id.into();
        let queued = (|| {
            let mut args = args.into_args()?;
            args.push(&id)?;
            match &self.inner.state_file {
                Some(file) => self.inner.enqueue_durable(file, event, args, &id),
                None => self.inner.enqueue(event, args),
            }
        })();
        async move {
            let rx = queued?;
            let ack = rx.await.unwrap_or(Err(AckError::Emit(EmitError::Closed)))?;
            Ok(Reliable { id, ack })
        }
    }

    /// The last position received in the stream presented as
    /// `auth[field]` (see [`SocketOptions::streams`]).
    pub fn stream_position(&self, field: &str) -> Option<u64> {
        self.inner
            .state()
            .streams
            .iter()
            .find(|s| s.stream.field() == field)
            .and_then(|s| Some(s.last.as_ref()?.seq))
    }

    /// Registers the handler of an inbox event (Tether's
    /// `io.inbox(user).push(..)`): the entry, its inbox position as last
    /// argument, is acknowledged once the handler returns (not when it
    /// panics), which removes it from the user's inbox on the server. An
    /// entry delivered again after its ack was lost is acknowledged again
    /// without running the handler a second time.
    ///
    /// ```no_run
    /// # async fn demo(socket: tether_client::Socket) {
    /// socket.on_inbox("dm", |ev| async move {
    ///     let text: String = ev.args().get(0).unwrap_or_default();
    ///     println!("{text} (inbox #{:?})", ev.inbox_seq());
    /// });
    /// # }
    /// ```
    pub fn on_inbox<F, Fut>(&self, event: impl Into<String>, handler: F)
    where
        F: Fn(Event) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let event = event.into();
        let handler: Handler = Arc::new(move |ev| Box::pin(handler(ev)));
        let mut h = self
            .inner
            .handlers
            .write()
            .unwrap_or_else(|e| e.into_inner());
        h.inbox.insert(event.clone());
        h.by_name.insert(event, handler);
    }

    /// Emits waiting in the retry queue (the one in flight included).
    pub fn queued(&self) -> usize {
        self.inner.queued.load(Ordering::Acquire)
    }

    /// Resolves once the retry queue is empty: every reliable emit (those
    /// resent from the outbox included) acknowledged or given up.
    pub async fn drained(&self) {
        loop {
            let notified = self.inner.idle.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.inner.queued.load(Ordering::Acquire) == 0 {
                return;
            }
            notified.await;
        }
    }

    /// Emits buffered while disconnected.
    pub fn buffered(&self) -> usize {
        self.inner.state().buffer.len()
    }
}

/// What is left to do once an event is handled: save its stream positions,
/// acknowledge its inbox entry. Runs when dropped (after the handler
/// returned, or when the application drops an event of the stream).
pub(crate) struct Completion {
    socket: Weak<SocketInner>,
    save: Vec<(String, StoredPosition)>,
    inbox: Option<(AckSender, u64)>,
}

impl Drop for Completion {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // The handler failed: not handled, nothing acknowledged.
            return;
        }
        let Some(socket) = self.socket.upgrade() else {
            return;
        };
        if let Some(file) = &socket.state_file {
            for (field, pos) in self.save.drain(..) {
                file.save_position(&socket.nsp, &field, pos);
            }
        }
        if let Some((ack, seq)) = self.inbox.take() {
            socket
                .inbox_handled
                .fetch_max(seq.saturating_add(1), Ordering::AcqRel);
            let _ = ack.send(());
        }
    }
}

/// The outcome of a reliable emit.
#[derive(Debug, Clone)]
pub struct Reliable {
    /// The message id sent as the last argument.
    pub id: String,
    /// The server's acknowledgement.
    pub ack: Args,
}

/// Events without a handler of their own (see [`Socket::events`]).
#[derive(Debug)]
pub struct EventStream {
    rx: mpsc::UnboundedReceiver<Event>,
}

impl EventStream {
    /// The next event; `None` once the socket is gone.
    pub async fn recv(&mut self) -> Option<Event> {
        self.rx.recv().await
    }
}

impl futures_core::Stream for EventStream {
    type Item = Event;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        self.rx.poll_recv(cx)
    }
}

/// An event received from the server.
pub struct Event {
    name: String,
    args: Args,
    ack: Option<AckSender>,
    inbox_seq: Option<u64>,
    done: Option<Completion>,
}

impl std::fmt::Debug for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Event")
            .field("name", &self.name)
            .field("args", &self.args)
            .field("ack", &self.ack)
            .field("inbox_seq", &self.inbox_seq)
            .finish()
    }
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

    /// Takes the arguments out.
    pub fn take_args(&mut self) -> Args {
        std::mem::take(&mut self.args)
    }

    /// The inbox position of an inbox entry (see [`Socket::on_inbox`]),
    /// acknowledged by the client once it is handled.
    pub fn inbox_seq(&self) -> Option<u64> {
        self.inbox_seq
    }

    /// True when the server asked for an acknowledgement that the
    /// application must send (inbox entries are acknowledged by the client).
    pub fn wants_ack(&self) -> bool {
        self.ack.is_some()
    }

    /// Takes the acknowledgement sender, to answer later.
    pub fn take_ack(&mut self) -> Option<AckSender> {
        self.ack.take()
    }

    /// Acknowledges the event with `args`; does nothing when the server did
    /// not ask for an acknowledgement or it was answered already.
    pub fn ack(&mut self, args: impl IntoArgs) -> Result<(), EmitError> {
        match self.ack.take() {
            Some(ack) => ack.send(args),
            None => Ok(()),
        }
    }
}

/// Answers a server's acknowledgement request.
pub struct AckSender {
    socket: Weak<SocketInner>,
    id: u64,
    /// The connection the request came on: an ack is meaningless on another.
    gen: Option<u64>,
}

impl std::fmt::Debug for AckSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AckSender").field("id", &self.id).finish()
    }
}

impl AckSender {
    /// Sends the acknowledgement (dropped when the connection it was asked
    /// on is gone meanwhile: ack ids belong to one connection).
    pub fn send(self, args: impl IntoArgs) -> Result<(), EmitError> {
        let socket = self.socket.upgrade().ok_or(EmitError::Closed)?;
        let (values, attachments) = args.into_args()?.into_parts();
        let packet = Packet::ack(socket.nsp.clone(), self.id, &values, attachments);
        socket.send_on(self.gen, packet);
        Ok(())
    }
}
