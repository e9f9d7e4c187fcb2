//! The manager: one Engine.IO connection shared by several namespaces, and
//! its reconnection.

use std::collections::HashMap;
use std::future::pending;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tether_proto::socketio::{Decoder, Packet, PacketType, Parser};
use tokio::sync::mpsc;
use tokio::time::Sleep;

use crate::backoff::{Backoff, Reconnection};
use crate::durable::{StateError, StateFile};
use crate::engine::{
    self, polling::HttpClient, CloseReason, EngineEvent, EngineOptions, EngineTx, Handshake,
    Transport,
};
use crate::error::{ConnectError, DisconnectReason, EngineError};
use crate::socket::{lock, BoxFuture, MessageIds, Socket, SocketInner, SocketOptions};

/// What happens to the connection and its sockets, in order (see
/// [`Manager::lifecycle`]).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Lifecycle {
    /// The Engine.IO connection opened.
    Open {
        /// Its first transport.
        transport: Transport,
    },
    /// The connection moved from polling to WebSocket.
    Upgrade,
    /// A socket connected to its namespace.
    Connect {
        /// The namespace.
        nsp: String,
        /// True when its previous session was restored.
        recovered: bool,
    },
    /// A namespace refused a socket.
    ConnectError {
        /// The namespace.
        nsp: String,
        /// The server's error.
        error: ConnectError,
    },
    /// A socket disconnected.
    Disconnect {
        /// The namespace.
        nsp: String,
        /// Why.
        reason: DisconnectReason,
    },
    /// The Engine.IO connection closed.
    Close {
        /// Why.
        reason: DisconnectReason,
    },
    /// The first connection attempt failed.
    OpenError {
        /// What failed.
        error: String,
    },
    /// A reconnection attempt starts (numbered from 1).
    ReconnectAttempt {
        /// The attempt number.
        attempt: u32,
    },
    /// A reconnection attempt failed.
    ReconnectError {
        /// What failed.
        error: String,
    },
    /// Reconnected after this many attempts.
    Reconnect {
        /// Attempts it took.
        attempts: u32,
    },
    /// Every reconnection attempt failed: the manager gives up.
    ReconnectFailed,
}

/// The lifecycle events of a manager (see [`Manager::lifecycle`]).
#[derive(Debug)]
pub struct LifecycleStream {
    rx: mpsc::UnboundedReceiver<Lifecycle>,
}

impl LifecycleStream {
    /// The next event; `None` once the manager is gone.
    pub async fn recv(&mut self) -> Option<Lifecycle> {
        self.rx.recv().await
    }
}

impl futures_core::Stream for LifecycleStream {
    type Item = Lifecycle;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Lifecycle>> {
        self.rx.poll_recv(cx)
    }
}

/// Fans lifecycle events out to subscribers.
#[derive(Default)]
pub(crate) struct Hub {
    subs: Mutex<Vec<mpsc::UnboundedSender<Lifecycle>>>,
}

impl Hub {
    pub(crate) fn emit(&self, ev: Lifecycle) {
        tracing::debug!(event = ?ev, "lifecycle");
        lock(&self.subs).retain(|s| s.send(ev.clone()).is_ok());
    }

    fn subscribe(&self) -> LifecycleStream {
        let (tx, rx) = mpsc::unbounded_channel();
        lock(&self.subs).push(tx);
        LifecycleStream { rx }
    }
}

pub(crate) enum MgrCmd {
    /// A socket wants to connect.
    Connect(String),
    /// A socket went inactive: close when none is left.
    Inactive,
    /// The application closes the manager.
    Close,
    /// Every handle was dropped.
    Shutdown,
}

/// Shuts the manager down when the last handle is dropped.
pub(crate) struct Closer {
    tx: mpsc::UnboundedSender<MgrCmd>,
}

impl Drop for Closer {
    fn drop(&mut self) {
        let _ = self.tx.send(MgrCmd::Shutdown);
    }
}

/// Settings of a manager.
pub(crate) struct ManagerConfig {
    pub(crate) engine: EngineOptions,
    pub(crate) parser: Parser,
    pub(crate) reconnection: Reconnection,
    pub(crate) defaults: SocketOptions,
    pub(crate) max_attachments: usize,
    pub(crate) state_file: Option<Arc<StateFile>>,
}

struct MgrState {
    sockets: HashMap<String, Arc<SocketInner>>,
    gen: u64,
    engine: Option<EngineTx>,
    transport: Option<Transport>,
    sid: Option<String>,
}

pub(crate) struct Shared {
    engine_opts: Arc<EngineOptions>,
    http: HttpClient,
    parser: Parser,
    reconnection: Reconnection,
    defaults: SocketOptions,
    max_attachments: usize,
    state: Mutex<MgrState>,
    cmd_tx: mpsc::UnboundedSender<MgrCmd>,
    hub: Arc<Hub>,
    ids: Arc<MessageIds>,
    state_file: Option<Arc<StateFile>>,
}

impl Shared {
    /// The generation of the open connection, if any.
    pub(crate) fn generation(&self) -> Option<u64> {
        let st = lock(&self.state);
        st.engine.as_ref().map(|_| st.gen)
    }

    fn sockets(&self) -> Vec<Arc<SocketInner>> {
        lock(&self.state).sockets.values().cloned().collect()
    }
}

/// The connection to a server, shared by the sockets of its namespaces
/// (the official client's `Manager`). Cheap to clone; the connection closes
/// when every handle (managers and sockets) is dropped, or on [`Manager::close`].
/// A handle captured by an event handler keeps the connection alive: close
/// such clients explicitly.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use tether_client::{Client, Lifecycle};
/// let client = Client::builder("http://127.0.0.1:3000").build().await?;
/// let mut lifecycle = client.manager().lifecycle();
/// let custom = client.manager().socket("/custom");
/// custom.connect().await?;
/// while let Some(ev) = lifecycle.recv().await {
///     if let Lifecycle::Disconnect { nsp, reason } = ev {
///         println!("{nsp} disconnected: {reason}");
///     }
/// }
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Manager {
    pub(crate) shared: Arc<Shared>,
    pub(crate) _closer: Arc<Closer>,
}

impl std::fmt::Debug for Manager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Manager")
            .field("host", &self.shared.engine_opts.host)
            .field("port", &self.shared.engine_opts.port)
            .field("transport", &self.transport())
            .finish()
    }
}

impl Manager {
    pub(crate) fn start(config: ManagerConfig) -> Manager {
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let http = engine::polling::client(config.engine.tls.clone());
        let shared = Arc::new(Shared {
            engine_opts: Arc::new(config.engine),
            http,
            parser: config.parser,
            reconnection: config.reconnection,
            defaults: config.defaults,
            max_attachments: config.max_attachments,
            state: Mutex::new(MgrState {
                sockets: HashMap::new(),
                gen: 0,
                engine: None,
                transport: None,
                sid: None,
            }),
            cmd_tx: cmd_tx.clone(),
            hub: Arc::new(Hub::default()),
            ids: Arc::new(MessageIds::new()),
            state_file: config.state_file,
        });
        let task = Task {
            shared: shared.clone(),
            cmds: cmd_rx,
            backoff: Backoff::new(),
            reconnecting: false,
            skip_reconnect: false,
            opening: None,
            timer: None,
            events: None,
            decoder: Decoder::new(config.parser, config.max_attachments),
        };
        tokio::spawn(task.run());
        Manager {
            shared,
            _closer: Arc::new(Closer { tx: cmd_tx }),
        }
    }

    /// The socket of namespace `nsp` (created with the default options if
    /// needed; not connected: call [`Socket::connect`]).
    pub fn socket(&self, nsp: &str) -> Socket {
        self.socket_with(nsp, self.shared.defaults.clone())
    }

    /// The socket of namespace `nsp`, created with `opts` if it does not
    /// exist yet.
    pub fn socket_with(&self, nsp: &str, opts: SocketOptions) -> Socket {
        let nsp = if nsp.starts_with('/') {
            nsp.to_owned()
        } else {
            format!("/{nsp}")
        };
        let inner = {
            let mut st = lock(&self.shared.state);
            st.sockets
                .entry(nsp.clone())
                .or_insert_with(|| {
                    SocketInner::new(
                        nsp,
                        self.shared.parser,
                        opts,
                        self.shared.cmd_tx.clone(),
                        self.shared.hub.clone(),
                        self.shared.ids.clone(),
                        self.shared.state_file.clone(),
                    )
                })
                .clone()
        };
        Socket {
            inner,
            shared: self.shared.clone(),
            _closer: self._closer.clone(),
        }
    }

    /// Subscribes to the lifecycle events (from now on).
    pub fn lifecycle(&self) -> LifecycleStream {
        self.shared.hub.subscribe()
    }

    /// Closes the connection; no reconnection follows. A later
    /// [`Socket::connect`] opens it again.
    pub fn close(&self) {
        let _ = self.shared.cmd_tx.send(MgrCmd::Close);
    }

    /// The transport in use, while open.
    pub fn transport(&self) -> Option<Transport> {
        lock(&self.shared.state).transport
    }

    /// The Engine.IO session id, while open.
    pub fn engine_id(&self) -> Option<String> {
        lock(&self.shared.state).sid.clone()
    }

    /// How many reliable emits were ever recorded in the outbox of the state
    /// file, by this run and the earlier ones (`None` without a state file).
    /// A sender that numbers its messages resumes after a crash from this
    /// count: an emit is recorded entirely or not at all.
    pub fn outbox_recorded(&self) -> Option<u64> {
        self.shared.state_file.as_ref().map(|f| f.recorded())
    }

    /// Reliable emits recorded in the outbox and not acknowledged yet
    /// (`None` without a state file).
    pub fn outbox_unacked(&self) -> Option<u64> {
        self.shared.state_file.as_ref().map(|f| f.unacked())
    }

    /// Resolves once everything written to the state file so far (outbox
    /// entries recorded and removed, stream positions) is committed to disk.
    pub async fn sync_state(&self) -> Result<(), StateError> {
        match &self.shared.state_file {
            Some(file) => file.sync().await,
            None => Ok(()),
        }
    }
}

type Opened = (
    EngineTx,
    Handshake,
    Transport,
    mpsc::UnboundedReceiver<EngineEvent>,
);

struct Task {
    shared: Arc<Shared>,
    cmds: mpsc::UnboundedReceiver<MgrCmd>,
    backoff: Backoff,
    reconnecting: bool,
    skip_reconnect: bool,
    opening: Option<BoxFuture<Result<Opened, EngineError>>>,
    timer: Option<Pin<Box<Sleep>>>,
    events: Option<mpsc::UnboundedReceiver<EngineEvent>>,
    decoder: Decoder,
}

async fn poll_opt<T>(f: &mut Option<BoxFuture<T>>) -> T {
    match f {
        Some(f) => f.await,
        None => pending().await,
    }
}

async fn recv_opt<T>(rx: &mut Option<mpsc::UnboundedReceiver<T>>) -> Option<T> {
    match rx {
        Some(rx) => rx.recv().await,
        None => pending().await,
    }
}

async fn sleep_opt(t: &mut Option<Pin<Box<Sleep>>>) {
    match t {
        Some(t) => t.await,
        None => pending().await,
    }
}

fn reason_of(reason: CloseReason) -> DisconnectReason {
    match reason {
        CloseReason::TransportClose => DisconnectReason::TransportClose,
        CloseReason::TransportError => DisconnectReason::TransportError,
        CloseReason::PingTimeout => DisconnectReason::PingTimeout,
        CloseReason::ForcedClose => DisconnectReason::ForcedClose,
    }
}

impl Task {
    async fn run(mut self) {
        loop {
            tokio::select! {
                cmd = self.cmds.recv() => match cmd {
                    Some(MgrCmd::Connect(nsp)) => self.on_connect_cmd(&nsp),
                    Some(MgrCmd::Inactive) => {
                        let any_active = self.shared.sockets().iter().any(|s| s.is_active());
                        if !any_active {
                            self.close();
                        }
                    }
                    Some(MgrCmd::Close) => self.close(),
                    Some(MgrCmd::Shutdown) | None => {
                        self.close();
                        return;
                    }
                },
                res = poll_opt(&mut self.opening) => {
                    self.opening = None;
                    self.on_opened(res);
                }
                () = sleep_opt(&mut self.timer) => {
                    self.timer = None;
                    self.shared.hub.emit(Lifecycle::ReconnectAttempt { attempt: self.backoff.attempts });
                    self.open();
                }
                ev = recv_opt(&mut self.events) => self.on_engine_event(ev),
            }
        }
    }

    fn on_connect_cmd(&mut self, nsp: &str) {
        let (socket, engine, gen) = {
            let st = lock(&self.shared.state);
            (st.sockets.get(nsp).cloned(), st.engine.clone(), st.gen)
        };
        let Some(socket) = socket else { return };
        match engine {
            Some(tx) => socket.send_connect(&self.shared, gen, tx),
            None if self.opening.is_none() && self.timer.is_none() => {
                self.skip_reconnect = false;
                self.open();
            }
            None => {}
        }
    }

    fn open(&mut self) {
        let (opts, http) = (self.shared.engine_opts.clone(), self.shared.http.clone());
        self.opening = Some(Box::pin(async move {
            let (tx, rx) = mpsc::unbounded_channel();
            let (engine, handshake, transport) = engine::open(opts, http, tx).await?;
            Ok((engine, handshake, transport, rx))
        }));
    }

    fn on_opened(&mut self, res: Result<Opened, EngineError>) {
        match res {
            Ok((tx, handshake, transport, rx)) => {
                let gen = {
                    let mut st = lock(&self.shared.state);
                    st.gen += 1;
                    st.engine = Some(tx.clone());
                    st.transport = Some(transport);
                    st.sid = Some(handshake.sid.clone());
                    st.gen
                };
                self.decoder = Decoder::new(self.shared.parser, self.shared.max_attachments);
                self.events = Some(rx);
                if self.reconnecting {
                    let attempts = self.backoff.attempts;
                    self.reconnecting = false;
                    self.backoff.reset();
                    self.shared.hub.emit(Lifecycle::Reconnect { attempts });
                }
                self.shared.hub.emit(Lifecycle::Open { transport });
                for socket in self.shared.sockets() {
                    if socket.is_active() {
                        socket.send_connect(&self.shared, gen, tx.clone());
                    }
                }
            }
            Err(e) => {
                tracing::debug!(error = %e, "cannot open the connection");
                if self.reconnecting {
                    self.reconnecting = false;
                    self.shared.hub.emit(Lifecycle::ReconnectError {
                        error: e.to_string(),
                    });
                    self.schedule_reconnect();
                } else {
                    self.shared.hub.emit(Lifecycle::OpenError {
                        error: e.to_string(),
                    });
                    if self.shared.reconnection.enabled && self.backoff.attempts == 0 {
                        self.schedule_reconnect();
                    } else {
                        for socket in self.shared.sockets() {
                            socket.on_open_failed(e.clone());
                        }
                    }
                }
            }
        }
    }

    fn schedule_reconnect(&mut self) {
        if self.reconnecting || self.skip_reconnect {
            return;
        }
        let r = &self.shared.reconnection;
        if r.max_attempts
            .is_some_and(|max| self.backoff.attempts >= max)
        {
            let attempts = self.backoff.attempts;
            self.backoff.reset();
            self.shared.hub.emit(Lifecycle::ReconnectFailed);
            for socket in self.shared.sockets() {
                socket.on_reconnect_failed(attempts);
            }
        } else {
            let delay = self.backoff.next_delay(r);
            tracing::debug!(?delay, attempt = self.backoff.attempts, "reconnecting");
            self.reconnecting = true;
            self.timer = Some(Box::pin(tokio::time::sleep(delay)));
        }
    }

    fn on_engine_event(&mut self, ev: Option<EngineEvent>) {
        match ev {
            Some(EngineEvent::Message(frame)) => match self.decoder.decode(frame) {
                Ok(Some(packet)) => self.dispatch(packet),
                Ok(None) => {}
                Err(e) => {
                    tracing::debug!(error = %e, "parse error: closing");
                    if let Some(tx) = lock(&self.shared.state).engine.take() {
                        tx.close();
                    }
                    self.on_close(DisconnectReason::ParseError);
                }
            },
            Some(EngineEvent::Upgraded) => {
                lock(&self.shared.state).transport = Some(Transport::WebSocket);
                self.shared.hub.emit(Lifecycle::Upgrade);
            }
            Some(EngineEvent::Closed(reason)) => self.on_close(reason_of(reason)),
            None => self.on_close(DisconnectReason::TransportError),
        }
    }

    fn dispatch(&mut self, packet: Packet) {
        let (socket, tx) = {
            let st = lock(&self.shared.state);
            (st.sockets.get(&packet.nsp).cloned(), st.engine.clone())
        };
        let (Some(socket), Some(tx)) = (socket, tx) else {
            return;
        };
        match packet.kind {
            PacketType::Connect => socket.on_connect(packet.data.as_deref(), tx),
            PacketType::ConnectError => socket.on_connect_error(packet.data.as_deref()),
            PacketType::Event | PacketType::BinaryEvent => socket.on_event(packet),
            PacketType::Ack | PacketType::BinaryAck => socket.on_ack(packet),
            PacketType::Disconnect => socket.on_server_disconnect(),
        }
    }

    /// The connection ended (not closed by the application).
    fn on_close(&mut self, reason: DisconnectReason) {
        self.events = None;
        {
            let mut st = lock(&self.shared.state);
            st.engine = None;
            st.transport = None;
            st.sid = None;
        }
        self.backoff.reset();
        let will_reconnect = self.shared.reconnection.enabled && !self.skip_reconnect;
        for socket in self.shared.sockets() {
            socket.on_close(reason, will_reconnect);
        }
        self.shared.hub.emit(Lifecycle::Close { reason });
        if will_reconnect {
            self.schedule_reconnect();
        }
    }

    /// The application closes the connection: no reconnection.
    fn close(&mut self) {
        self.skip_reconnect = true;
        self.reconnecting = false;
        self.opening = None;
        self.timer = None;
        let engine = lock(&self.shared.state).engine.take();
        let was_open = engine.is_some();
        if let Some(tx) = engine {
            tx.close();
        }
        self.events = None;
        {
            let mut st = lock(&self.shared.state);
            st.transport = None;
            st.sid = None;
        }
        self.backoff.reset();
        for socket in self.shared.sockets() {
            socket.on_close(DisconnectReason::ForcedClose, false);
        }
        if was_open {
            self.shared.hub.emit(Lifecycle::Close {
                reason: DisconnectReason::ForcedClose,
            });
        }
    }
}
