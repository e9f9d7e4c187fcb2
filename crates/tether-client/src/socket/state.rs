//! The protocol state of a socket: connecting, CONNECT replies, events and
//! acks from the server, disconnections, and the dispatch of handlers.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;

use serde_json::value::RawValue;
use serde_json::Value;
use tether_proto::engine::Frame;
use tether_proto::socketio::{split_event, Packet, PacketType, Parser};
use tether_proto::tether::RecoveryReport;
use tokio::sync::{mpsc, oneshot, watch};

use crate::args::Args;
use crate::durable::StateFile;
use crate::engine::EngineTx;
use crate::error::{AckError, ConnectError, DisconnectReason, EmitError};
use crate::manager::{Hub, Lifecycle, MgrCmd, Shared};
use crate::offset::Offsets;
use crate::stream::{Seen, StreamState};

use super::queue::{run_queue, MessageIds, QueueItem};
use super::{lock, AckSender, Auth, BoxFuture, Completion, Event, SocketOptions};

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

pub(super) struct Buffered {
    pub(super) frames: Vec<Frame>,
    pub(super) ack: Option<u64>,
}

pub(super) struct State {
    /// Subscribed to the manager: connects whenever it opens.
    pub(super) active: bool,
    pub(super) connected: bool,
    pub(super) tx: Option<EngineTx>,
    pub(super) id: Option<String>,
    pub(super) pid: Option<String>,
    pub(super) recovered: bool,
    pub(super) report: Option<RecoveryReport>,
    pub(super) offsets: Offsets,
    pub(super) next_ack: u64,
    pub(super) acks: HashMap<u64, oneshot::Sender<Result<Args, AckError>>>,
    pub(super) buffer: VecDeque<Buffered>,
    pub(super) auth: Auth,
    /// The connection a CONNECT was sent on (none sent twice).
    pub(super) connect_gen: Option<u64>,
    pub(super) streams: Vec<StreamState>,
}

pub(super) type Handler = Arc<dyn Fn(Event) -> BoxFuture<()> + Send + Sync>;

#[derive(Default)]
pub(super) struct Handlers {
    pub(super) by_name: HashMap<String, Handler>,
    /// Events whose handler acknowledges an inbox entry when it returns.
    pub(super) inbox: std::collections::HashSet<String>,
    pub(super) any: Option<Handler>,
    pub(super) stream: Option<mpsc::UnboundedSender<Event>>,
}

pub(crate) struct SocketInner {
    pub(crate) nsp: String,
    pub(super) parser: Parser,
    pub(super) opts: SocketOptions,
    pub(super) state: Mutex<State>,
    pub(super) status: watch::Sender<Status>,
    pub(super) handlers: Arc<RwLock<Handlers>>,
    pub(super) incoming: mpsc::UnboundedSender<Event>,
    pub(super) queue: mpsc::UnboundedSender<QueueItem>,
    pub(super) queued: AtomicUsize,
    pub(super) mgr: mpsc::UnboundedSender<MgrCmd>,
    pub(super) hub: Arc<Hub>,
    pub(super) ids: Arc<MessageIds>,
    pub(super) state_file: Option<Arc<StateFile>>,
    /// An outbox entry could not be delivered (the socket was closed): later
    /// ones wait in the file too, to keep the order.
    pub(super) outbox_stalled: AtomicBool,
    /// Highest inbox position handled, plus one (0: none).
    pub(super) inbox_handled: Arc<AtomicU64>,
    /// Notified when the retry queue becomes empty.
    pub(super) idle: tokio::sync::Notify,
}

pub(super) const RESERVED: [&str; 6] = [
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

    pub(super) fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    pub(crate) fn is_active(&self) -> bool {
        self.state().active
    }

    pub(super) fn set_status(&self, status: Status) {
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

    pub(super) fn write_connect(&self, auth: Option<Value>, tx: &EngineTx) {
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

    pub(super) fn closed(&self, reason: DisconnectReason, will_reconnect: bool) {
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

    pub(super) fn encode_event(
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
    pub(super) fn send_or_buffer(
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

    pub(super) fn emit(&self, event: &str, args: Args) -> Result<(), EmitError> {
        let frames = self.encode_event(event, args, None)?;
        let mut st = self.state();
        self.send_or_buffer(&mut st, frames, None)
    }

    /// Sends an event with an ack id; the receiver gets the ack.
    pub(super) fn emit_acked(
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
    pub(super) fn forget_ack(&self, id: u64) {
        let mut st = self.state();
        st.acks.remove(&id);
        st.buffer.retain(|b| b.ack != Some(id));
    }

    /// Sends a packet on connection `gen` (the one a request came on) when
    /// still connected on it; dropped otherwise.
    pub(super) fn send_on(&self, gen: Option<u64>, packet: Packet) -> bool {
        let frames = packet.encode(self.parser);
        let st = self.state();
        match (&st.tx, st.connected) {
            (Some(tx), true) if st.connect_gen == gen => tx.send(frames),
            _ => false,
        }
    }

    /// Sends a packet when connected; dropped otherwise.
    pub(super) fn send_now(&self, packet: Packet) -> bool {
        let frames = packet.encode(self.parser);
        let st = self.state();
        match (&st.tx, st.connected) {
            (Some(tx), true) => tx.send(frames),
            _ => false,
        }
    }

    pub(super) async fn ack_result(
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

    pub(super) fn enqueue(
        &self,
        event: &str,
        args: Args,
    ) -> Result<oneshot::Receiver<Result<Args, AckError>>, EmitError> {
        self.take_slot(event)?;
        let (reply, rx) = oneshot::channel();
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

/// Runs the handlers of one socket, one event at a time, in arrival order.
pub(super) async fn dispatch(
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
