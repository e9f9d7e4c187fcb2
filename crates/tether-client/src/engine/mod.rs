//! Engine.IO v4 client: handshake, long-polling, WebSocket, upgrade from
//! polling to WebSocket, heartbeat.
//!
//! [`open`] performs the handshake and spawns a driver task that owns the
//! transport. Frames to send go in through an [`EngineTx`]; what arrives comes
//! out as [`EngineEvent`]s. The driver answers pings and closes the
//! connection when no ping arrives within `pingInterval + pingTimeout`.

pub(crate) mod polling;
pub(crate) mod ws;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tether_proto::engine::{decode_payload, encode_payload, Frame, Packet};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::error::EngineError;
use polling::HttpClient;
use ws::WsStream;

/// An Engine.IO transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// HTTP long-polling.
    Polling,
    /// WebSocket.
    WebSocket,
}

impl Transport {
    /// The name used in the `transport` query parameter.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Polling => "polling",
            Transport::WebSocket => "websocket",
        }
    }
}

/// Settings of the Engine.IO connection.
#[derive(Debug, Clone)]
pub(crate) struct EngineOptions {
    pub(crate) secure: bool,
    pub(crate) host: String,
    pub(crate) port: u16,
    /// Endpoint path, with a trailing slash.
    pub(crate) path: String,
    pub(crate) query: Vec<(String, String)>,
    pub(crate) headers: http::HeaderMap,
    /// Transports in order of preference; the first one opens the connection.
    pub(crate) transports: Vec<Transport>,
    /// Upgrade a polling connection to WebSocket when the server offers it.
    pub(crate) upgrade: bool,
    /// How long the handshake may take.
    pub(crate) open_timeout: Duration,
    /// Largest WebSocket message accepted from the server.
    pub(crate) max_message: usize,
    /// TLS settings (`https`/`wss`).
    pub(crate) tls: Option<std::sync::Arc<rustls::ClientConfig>>,
}

static CACHE_BUSTER: AtomicU64 = AtomicU64::new(0);

impl EngineOptions {
    /// The endpoint URI for `transport` (`ws` selects the WebSocket scheme).
    pub(crate) fn uri(&self, ws: bool, transport: Transport, sid: Option<&str>) -> String {
        let scheme = match (ws, self.secure) {
            (true, true) => "wss",
            (true, false) => "ws",
            (false, true) => "https",
            (false, false) => "http",
        };
        let mut uri = format!(
            "{scheme}://{}:{}{}?EIO=4&transport={}",
            self.host,
            self.port,
            self.path,
            transport.as_str()
        );
        if let Some(sid) = sid {
            uri.push_str("&sid=");
            crate::url::encode(sid, &mut uri);
        }
        if transport == Transport::Polling {
            let n = CACHE_BUSTER.fetch_add(1, Ordering::Relaxed);
            uri.push_str(&format!("&t={n:x}"));
        }
        for (k, v) in &self.query {
            if matches!(k.as_str(), "EIO" | "transport" | "sid" | "t") {
                continue;
            }
            uri.push('&');
            crate::url::encode(k, &mut uri);
            uri.push('=');
            crate::url::encode(v, &mut uri);
        }
        uri
    }
}

/// The server's handshake (the Engine.IO `open` packet).
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Handshake {
    /// Engine.IO session id.
    pub sid: String,
    /// Transports the connection may upgrade to.
    #[serde(default)]
    pub upgrades: Vec<String>,
    /// Milliseconds between two server pings.
    pub ping_interval: u64,
    /// Milliseconds the server waits for a pong.
    pub ping_timeout: u64,
    /// Largest payload the server accepts, in bytes.
    #[serde(default)]
    pub max_payload: Option<u64>,
}

impl Handshake {
    fn parse(data: &[u8]) -> Result<Self, EngineError> {
        serde_json::from_slice(data).map_err(|e| EngineError::Handshake(e.to_string()))
    }

    /// How long without a ping before the connection is considered dead.
    fn heartbeat(&self) -> Duration {
        Duration::from_millis(self.ping_interval.saturating_add(self.ping_timeout))
    }
}

/// Why an Engine.IO connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CloseReason {
    /// The server closed it (close packet, or the transport ended).
    TransportClose,
    /// A request failed, or the WebSocket errored.
    TransportError,
    /// No ping within `pingInterval + pingTimeout`.
    PingTimeout,
    /// The client closed it.
    ForcedClose,
}

/// What the driver reports.
#[derive(Debug)]
pub(crate) enum EngineEvent {
    /// A message: text (without the `4`) or binary.
    Message(Frame),
    /// The connection now runs on WebSocket.
    Upgraded,
    /// The connection ended.
    Closed(CloseReason),
}

enum Cmd {
    Send(Vec<Frame>),
    Close,
}

/// Sends frames on an open connection. Cheap to clone.
#[derive(Clone, Debug)]
pub(crate) struct EngineTx {
    tx: mpsc::UnboundedSender<Cmd>,
}

impl std::fmt::Debug for Cmd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Cmd::Send(frames) => write!(f, "Send({} frames)", frames.len()),
            Cmd::Close => f.write_str("Close"),
        }
    }
}

impl EngineTx {
    /// Queues frames (Engine.IO frames: text with their type character).
    /// False when the connection is closed.
    pub(crate) fn send(&self, frames: Vec<Frame>) -> bool {
        self.tx.send(Cmd::Send(frames)).is_ok()
    }

    /// Closes the connection (a close packet is sent first).
    pub(crate) fn close(&self) {
        let _ = self.tx.send(Cmd::Close);
    }
}

/// A task aborted when dropped.
struct Task(Option<JoinHandle<()>>);

impl Task {
    fn spawn(fut: impl std::future::Future<Output = ()> + Send + 'static) -> Self {
        Task(Some(tokio::spawn(fut)))
    }

    /// Waits for the task to end by itself.
    async fn join(mut self) {
        if let Some(handle) = self.0.take() {
            let _ = handle.await;
        }
    }
}

impl Drop for Task {
    fn drop(&mut self) {
        if let Some(handle) = self.0.take() {
            handle.abort();
        }
    }
}

/// What the transport tasks tell the driver.
enum Inbound {
    Packets(Vec<Packet>),
    Failed(String),
    Closed,
    Probed(Box<WsStream>),
    ProbeFailed(String),
    Paused,
}

enum Active {
    Polling {
        writer: mpsc::UnboundedSender<Frame>,
        writer_task: Task,
        poller: Task,
        stop: Arc<AtomicBool>,
    },
    WebSocket {
        writer: mpsc::UnboundedSender<Frame>,
        _writer_task: Task,
        _reader: Task,
    },
    /// Polling paused for the upgrade; frames wait in the driver.
    Pausing {
        ws: Option<Box<WsStream>>,
        _pause: Task,
    },
}

/// Opens an Engine.IO connection: the handshake over the first transport of
/// `opts`, then a driver task. Events go to `events`.
pub(crate) async fn open(
    opts: Arc<EngineOptions>,
    http: HttpClient,
    events: mpsc::UnboundedSender<EngineEvent>,
) -> Result<(EngineTx, Handshake, Transport), EngineError> {
    let first = *opts.transports.first().ok_or(EngineError::NoTransport)?;
    let limit = opts.open_timeout;
    tokio::time::timeout(limit, open_inner(opts, http, events, first))
        .await
        .map_err(|_| EngineError::Timeout)?
}

async fn open_inner(
    opts: Arc<EngineOptions>,
    http: HttpClient,
    events: mpsc::UnboundedSender<EngineEvent>,
    first: Transport,
) -> Result<(EngineTx, Handshake, Transport), EngineError> {
    let (in_tx, in_rx) = mpsc::unbounded_channel();
    let (handshake, active, rest) = match first {
        Transport::Polling => {
            let body = polling::get(&http, &opts, None).await?;
            let frames = decode_payload(body).map_err(|e| EngineError::Handshake(e.to_string()))?;
            let mut packets = frames
                .into_iter()
                .map(Packet::decode)
                .collect::<Result<VecDeque<_>, _>>()
                .map_err(|e| EngineError::Handshake(e.to_string()))?;
            let handshake = match packets.pop_front() {
                Some(Packet::Open(data)) => Handshake::parse(&data)?,
                other => {
                    return Err(EngineError::Handshake(format!(
                        "expected an open packet, got {other:?}"
                    )))
                }
            };
            let active = start_polling(&opts, &http, &handshake, in_tx.clone());
            (handshake, active, Vec::from(packets))
        }
        Transport::WebSocket => {
            let mut ws = ws::connect(&opts, None).await?;
            let handshake = loop {
                let msg = ws
                    .next()
                    .await
                    .ok_or_else(|| EngineError::Handshake("websocket closed".into()))?
                    .map_err(|e| EngineError::WebSocket(e.to_string()))?;
                let Some(frame) = ws::to_frame(msg) else {
                    continue;
                };
                match Packet::decode(frame) {
                    Ok(Packet::Open(data)) => break Handshake::parse(&data)?,
                    other => {
                        return Err(EngineError::Handshake(format!(
                            "expected an open packet, got {other:?}"
                        )))
                    }
                }
            };
            (handshake, start_ws(ws, in_tx.clone(), None), Vec::new())
        }
    };
    let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
    let mut driver = Driver {
        deadline: Instant::now() + handshake.heartbeat(),
        opts: opts.clone(),
        handshake: handshake.clone(),
        events,
        cmds: cmd_rx,
        in_tx,
        in_rx,
        active,
        held: Vec::new(),
        _probe: None,
    };
    // Packets that came with the handshake.
    if let Some(reason) = driver.on_packets(rest) {
        driver.finish(reason);
        return Err(EngineError::Handshake("closed at once".into()));
    }
    let may_upgrade = first == Transport::Polling
        && opts.upgrade
        && opts.transports.contains(&Transport::WebSocket)
        && handshake.upgrades.iter().any(|u| u == "websocket");
    if may_upgrade {
        driver.start_probe();
    }
    tokio::spawn(driver.run());
    Ok((EngineTx { tx: cmd_tx }, handshake, first))
}

fn start_polling(
    opts: &Arc<EngineOptions>,
    http: &HttpClient,
    handshake: &Handshake,
    in_tx: mpsc::UnboundedSender<Inbound>,
) -> Active {
    let stop = Arc::new(AtomicBool::new(false));
    let (writer, writer_rx) = mpsc::unbounded_channel();
    let max = handshake
        .max_payload
        .and_then(|m| usize::try_from(m).ok())
        .unwrap_or(1_000_000);
    let writer_task = Task::spawn(poll_writer(
        opts.clone(),
        http.clone(),
        handshake.sid.clone(),
        writer_rx,
        max,
        in_tx.clone(),
    ));
    let poller = Task::spawn(poll_reader(
        opts.clone(),
        http.clone(),
        handshake.sid.clone(),
        stop.clone(),
        in_tx,
    ));
    Active::Polling {
        writer,
        writer_task,
        poller,
        stop,
    }
}

/// The long-polling GET loop.
async fn poll_reader(
    opts: Arc<EngineOptions>,
    http: HttpClient,
    sid: String,
    stop: Arc<AtomicBool>,
    in_tx: mpsc::UnboundedSender<Inbound>,
) {
    while !stop.load(Ordering::Acquire) {
        let body = match polling::get(&http, &opts, Some(&sid)).await {
            Ok(body) => body,
            Err(e) => {
                let _ = in_tx.send(Inbound::Failed(e.to_string()));
                return;
            }
        };
        let packets = decode_payload(body)
            .map_err(|e| e.to_string())
            .and_then(|frames| {
                frames
                    .into_iter()
                    .map(|f| Packet::decode(f).map_err(|e| e.to_string()))
                    .collect::<Result<Vec<_>, _>>()
            });
        match packets {
            Ok(packets) => {
                let closed = packets.iter().any(|p| matches!(p, Packet::Close));
                if in_tx.send(Inbound::Packets(packets)).is_err() || closed {
                    return;
                }
            }
            Err(e) => {
                let _ = in_tx.send(Inbound::Failed(format!("bad payload: {e}")));
                return;
            }
        }
    }
}

/// Sends queued frames, one POST at a time, batching what waits (up to the
/// server's maxPayload). Ends once its channel is closed and drained.
async fn poll_writer(
    opts: Arc<EngineOptions>,
    http: HttpClient,
    sid: String,
    mut rx: mpsc::UnboundedReceiver<Frame>,
    max_payload: usize,
    in_tx: mpsc::UnboundedSender<Inbound>,
) {
    let mut carry: Option<Frame> = None;
    loop {
        let first = match carry.take() {
            Some(f) => f,
            None => match rx.recv().await {
                Some(f) => f,
                None => return,
            },
        };
        let mut size = first.len() + 1;
        let mut batch = vec![first];
        while let Ok(frame) = rx.try_recv() {
            let len = frame.len() + 1;
            if size + len > max_payload {
                carry = Some(frame);
                break;
            }
            size += len;
            batch.push(frame);
        }
        let body = encode_payload(&batch);
        if let Err(e) = polling::post(&http, &opts, &sid, body).await {
            let _ = in_tx.send(Inbound::Failed(e.to_string()));
            return;
        }
    }
}

fn start_ws(ws: WsStream, in_tx: mpsc::UnboundedSender<Inbound>, first: Option<Frame>) -> Active {
    let (mut sink, mut stream) = ws.split();
    let (writer, mut rx) = mpsc::unbounded_channel::<Frame>();
    if let Some(first) = first {
        let _ = writer.send(first);
    }
    let in_tx2 = in_tx.clone();
    let writer_task = Task::spawn(async move {
        while let Some(frame) = rx.recv().await {
            let mut result = sink.feed(ws::to_message(frame)).await;
            while result.is_ok() {
                match rx.try_recv() {
                    Ok(frame) => result = sink.feed(ws::to_message(frame)).await,
                    Err(_) => break,
                }
            }
            if let Err(e) = result.and(sink.flush().await) {
                let _ = in_tx2.send(Inbound::Failed(e.to_string()));
                return;
            }
        }
        let _ = sink.close().await;
    });
    let reader = Task::spawn(async move {
        while let Some(msg) = stream.next().await {
            match msg {
                Ok(msg) if msg.is_close() => break,
                Ok(msg) => {
                    let Some(frame) = ws::to_frame(msg) else {
                        continue;
                    };
                    match Packet::decode(frame) {
                        Ok(packet) => {
                            if in_tx.send(Inbound::Packets(vec![packet])).is_err() {
                                return;
                            }
                        }
                        Err(e) => {
                            let _ = in_tx.send(Inbound::Failed(format!("bad packet: {e}")));
                            return;
                        }
                    }
                }
                Err(e) => {
                    let _ = in_tx.send(Inbound::Failed(e.to_string()));
                    return;
                }
            }
        }
        let _ = in_tx.send(Inbound::Closed);
    });
    Active::WebSocket {
        writer,
        _writer_task: writer_task,
        _reader: reader,
    }
}

struct Driver {
    opts: Arc<EngineOptions>,
    handshake: Handshake,
    events: mpsc::UnboundedSender<EngineEvent>,
    cmds: mpsc::UnboundedReceiver<Cmd>,
    in_tx: mpsc::UnboundedSender<Inbound>,
    in_rx: mpsc::UnboundedReceiver<Inbound>,
    active: Active,
    /// Frames held while polling pauses for the upgrade.
    held: Vec<Frame>,
    deadline: Instant,
    _probe: Option<Task>,
}

impl Driver {
    fn start_probe(&mut self) {
        let (opts, sid, in_tx) = (
            self.opts.clone(),
            self.handshake.sid.clone(),
            self.in_tx.clone(),
        );
        self._probe = Some(Task::spawn(async move {
            let result = probe(&opts, &sid).await;
            let _ = in_tx.send(match result {
                Ok(ws) => Inbound::Probed(Box::new(ws)),
                Err(e) => Inbound::ProbeFailed(e),
            });
        }));
    }

    fn write(&mut self, frames: impl IntoIterator<Item = Frame>) {
        match &self.active {
            Active::Polling { writer, .. } | Active::WebSocket { writer, .. } => {
                for frame in frames {
                    let _ = writer.send(frame);
                }
            }
            Active::Pausing { .. } => self.held.extend(frames),
        }
    }

    /// Handles packets from the server; `Some` when the connection ends.
    fn on_packets(&mut self, packets: Vec<Packet>) -> Option<CloseReason> {
        for packet in packets {
            match packet {
                Packet::Ping(data) => {
                    self.deadline = Instant::now() + self.handshake.heartbeat();
                    self.write([Packet::Pong(data).encode()]);
                }
                Packet::Message(text) => {
                    let _ = self.events.send(EngineEvent::Message(Frame::Text(text)));
                }
                Packet::Binary(bin) => {
                    let _ = self.events.send(EngineEvent::Message(Frame::Binary(bin)));
                }
                Packet::Close => return Some(CloseReason::TransportClose),
                Packet::Open(_) | Packet::Pong(_) | Packet::Upgrade | Packet::Noop => {}
            }
        }
        None
    }

    fn finish(&mut self, reason: CloseReason) {
        tracing::debug!(sid = %self.handshake.sid, ?reason, "engine.io connection closed");
        let _ = self.events.send(EngineEvent::Closed(reason));
    }

    async fn run(mut self) {
        let reason = loop {
            tokio::select! {
                cmd = self.cmds.recv() => match cmd {
                    Some(Cmd::Send(frames)) => self.write(frames),
                    Some(Cmd::Close) | None => {
                        self.close_gracefully().await;
                        break CloseReason::ForcedClose;
                    }
                },
                inbound = self.in_rx.recv() => {
                    // The driver holds a sender: the channel never ends.
                    let Some(inbound) = inbound else { break CloseReason::TransportError };
                    if let Some(reason) = self.on_inbound(inbound) {
                        break reason;
                    }
                }
                () = tokio::time::sleep_until(self.deadline) => break CloseReason::PingTimeout,
            }
        };
        self.finish(reason);
    }

    fn on_inbound(&mut self, inbound: Inbound) -> Option<CloseReason> {
        match inbound {
            Inbound::Packets(packets) => self.on_packets(packets),
            Inbound::Failed(e) => {
                tracing::debug!(error = %e, "transport error");
                Some(CloseReason::TransportError)
            }
            Inbound::Closed => Some(CloseReason::TransportClose),
            Inbound::ProbeFailed(e) => {
                tracing::debug!(error = %e, "upgrade probe failed; staying on polling");
                None
            }
            Inbound::Probed(ws) => {
                let Active::Polling { .. } = self.active else {
                    return None;
                };
                let placeholder = Active::Pausing {
                    ws: None,
                    _pause: Task(None),
                };
                let Active::Polling {
                    writer,
                    writer_task,
                    poller,
                    stop,
                } = std::mem::replace(&mut self.active, placeholder)
                else {
                    return None;
                };
                // Pause polling: no new GET, and the writer ends once drained.
                stop.store(true, Ordering::Release);
                drop(writer);
                let in_tx = self.in_tx.clone();
                let pause = Task::spawn(async move {
                    writer_task.join().await;
                    poller.join().await;
                    let _ = in_tx.send(Inbound::Paused);
                });
                self.active = Active::Pausing {
                    ws: Some(ws),
                    _pause: pause,
                };
                None
            }
            Inbound::Paused => {
                let Active::Pausing { ws, .. } = &mut self.active else {
                    return None;
                };
                let ws = ws.take()?;
                self.active = start_ws(*ws, self.in_tx.clone(), Some(Packet::Upgrade.encode()));
                let held = std::mem::take(&mut self.held);
                self.write(held);
                let _ = self.events.send(EngineEvent::Upgraded);
                None
            }
        }
    }

    /// Sends a close packet and lets the writer flush it (bounded).
    async fn close_gracefully(&mut self) {
        self.write([Packet::Close.encode()]);
        let placeholder = Active::Pausing {
            ws: None,
            _pause: Task(None),
        };
        let writer_task = match std::mem::replace(&mut self.active, placeholder) {
            Active::Polling {
                writer,
                writer_task,
                ..
            } => {
                drop(writer);
                writer_task
            }
            Active::WebSocket {
                writer,
                _writer_task,
                ..
            } => {
                drop(writer);
                _writer_task
            }
            Active::Pausing { .. } => return,
        };
        let _ = tokio::time::timeout(Duration::from_secs(2), writer_task.join()).await;
    }
}

/// Opens a WebSocket for session `sid` and exchanges the probe.
async fn probe(opts: &EngineOptions, sid: &str) -> Result<WsStream, String> {
    let mut ws = ws::connect(opts, Some(sid))
        .await
        .map_err(|e| e.to_string())?;
    ws.send(ws::to_message(
        Packet::Ping(Bytes::from_static(b"probe")).encode(),
    ))
    .await
    .map_err(|e| e.to_string())?;
    loop {
        let msg = ws
            .next()
            .await
            .ok_or("closed during the probe")?
            .map_err(|e| e.to_string())?;
        let Some(frame) = ws::to_frame(msg) else {
            continue;
        };
        return match Packet::decode(frame) {
            Ok(Packet::Pong(data)) if &data[..] == b"probe" => Ok(ws),
            other => Err(format!("unexpected probe answer {other:?}")),
        };
    }
}
