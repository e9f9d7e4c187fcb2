//! Error paths on the wire: an in-process server spoken to by hand, raw
//! HTTP/1.1 for long-polling and raw WebSocket frames, checked against the
//! answers of the reference (Node) server.
//!
//! Engine.IO errors are HTTP 400 + `{"code","message"}`: 0 "Transport unknown",
//! 1 "Session ID unknown", 2 "Bad handshake method", 3 "Bad request",
//! 5 "Unsupported protocol version"; 403 with code 4 when `allow_request`
//! refuses. A bad input closes only the client that sent it: every
//! Socket.IO-level test keeps a second client and checks it still works.
//!
//! Nothing here waits on the clock: every await is on an event, bounded by
//! [`STEP`] so that a hang fails instead of blocking the run.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tether::engine::EngineOptions;
use tether::{Config, ConnectError, EmitError, Event, Socket, SocketIo};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_websockets::{ClientBuilder, MaybeTlsStream, Message, WebSocketStream};

// ---------------------------------------------------------------------------
// Test server
// ---------------------------------------------------------------------------

/// Longest wait for any single event.
const STEP: Duration = Duration::from_secs(5);

/// Size of one chunk the "flood" handler emits.
const CHUNK: usize = 1000;
/// The "flood" handler gives up after this many chunks (64 MB).
const FLOOD_CAP: usize = 65_536;

/// Closed until the backpressure test opens it: "gated" handlers wait for it.
static GATE: std::sync::LazyLock<tokio::sync::watch::Sender<bool>> =
    std::sync::LazyLock::new(|| tokio::sync::watch::channel(false).0);

/// Closed until the shutdown test opens it: "held" handlers wait for it.
static HOLD: std::sync::LazyLock<tokio::sync::watch::Sender<bool>> =
    std::sync::LazyLock::new(|| tokio::sync::watch::channel(false).0);

/// What the "flood" handler saw: chunks queued, then the emit error.
#[derive(Debug)]
struct Flood {
    sent: usize,
    error: Option<EmitError>,
    /// The result of one more emit after the error.
    after: Option<EmitError>,
}

struct TestServer {
    addr: SocketAddr,
    io: SocketIo,
    /// `(socket id, disconnect reason)` of every socket that left "/".
    disconnects: mpsc::UnboundedReceiver<(String, String)>,
    floods: mpsc::UnboundedReceiver<Flood>,
}

impl TestServer {
    /// The next socket that left, with its reason.
    async fn next_disconnect(&mut self) -> (String, String) {
        within("a disconnect", self.disconnects.recv())
            .await
            .expect("server gone")
    }

    async fn next_flood(&mut self) -> Flood {
        tokio::time::timeout(Duration::from_secs(30), self.floods.recv())
            .await
            .expect("timed out waiting for the flood handler")
            .expect("server gone")
    }

    fn sessions(&self) -> usize {
        self.io.engine().session_count()
    }
}

async fn start(config: Config) -> TestServer {
    start_with(config, |_| {}).await
}

/// Starts a server on a free loopback port. Namespace "/" has:
/// - "echo": acknowledges with its arguments (binary attachments included);
/// - "gated": the same, once [`GATE`] is open;
/// - "held": the same, once [`HOLD`] is open;
/// - "flood": emits [`CHUNK`]-byte events until an emit fails, and reports;
/// - a middleware refusing `{"token":"bad"}` with data `{"code":401}`;
/// - a disconnect handler reporting `(id, reason)`.
async fn start_with(config: Config, tune: impl FnOnce(&mut EngineOptions)) -> TestServer {
    let io = SocketIo::with_engine_options(config, tune);
    let (disconnect_tx, disconnects) = mpsc::unbounded_channel();
    let (flood_tx, floods) = mpsc::unbounded_channel();
    io.ns("/", move |socket: Socket| {
        let disconnect_tx = disconnect_tx.clone();
        let flood_tx = flood_tx.clone();
        async move {
            socket.on("echo", |_: Socket, mut ev: Event| async move {
                let args = ev.take_args();
                let _ = ev.ack(args);
            });
            socket.on("gated", |_: Socket, mut ev: Event| async move {
                let mut open = GATE.subscribe();
                let _ = open.wait_for(|open| *open).await;
                let args = ev.take_args();
                let _ = ev.ack(args);
            });
            socket.on("held", |_: Socket, mut ev: Event| async move {
                let mut open = HOLD.subscribe();
                let _ = open.wait_for(|open| *open).await;
                let args = ev.take_args();
                let _ = ev.ack(args);
            });
            socket.on("flood", move |socket: Socket, _: Event| {
                let flood_tx = flood_tx.clone();
                async move {
                    let chunk = "x".repeat(CHUNK);
                    let mut sent = 0;
                    let mut error = None;
                    while sent < FLOOD_CAP {
                        if let Err(e) = socket.emit("chunk", (&chunk,)) {
                            error = Some(e);
                            break;
                        }
                        sent += 1;
                        // Let the transport write what it can.
                        tokio::task::yield_now().await;
                    }
                    let after = socket.emit("chunk", (&chunk,)).err();
                    let _ = flood_tx.send(Flood { sent, error, after });
                }
            });
            socket.on_disconnect(move |socket: Socket, reason| {
                let tx = disconnect_tx.clone();
                async move {
                    let _ = tx.send((socket.id().to_owned(), reason.as_str().to_owned()));
                }
            });
        }
    })
    .with(|socket: Socket| async move {
        if socket.handshake().auth.get("token") == Some(&json!("bad")) {
            Err(ConnectError::new("unauthorized").with_data(json!({ "code": 401 })))
        } else {
            Ok(())
        }
    });
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(io.clone().serve(listener));
    TestServer {
        addr,
        io,
        disconnects,
        floods,
    }
}

async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(STEP, fut)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

// ---------------------------------------------------------------------------
// HTTP/1.1 by hand
// ---------------------------------------------------------------------------

#[derive(Debug)]
struct HttpResponse {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl HttpResponse {
    fn text(&self) -> &str {
        std::str::from_utf8(&self.body).expect("UTF-8 body")
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Checks an Engine.IO error answer: status, JSON content type and body.
    #[track_caller]
    fn assert_error(&self, status: u16, code: u8, message: &str) {
        assert_eq!(
            (self.status, self.text()),
            (
                status,
                json!({ "code": code, "message": message })
                    .to_string()
                    .as_str()
            ),
            "{self:?}"
        );
        assert_eq!(self.header("content-type"), Some("application/json"));
    }

    #[track_caller]
    fn assert_ok(&self, body: &str) {
        assert_eq!((self.status, self.text()), (200, body), "{self:?}");
    }
}

/// One HTTP/1.1 connection, to send a request now and read its answer later.
struct HttpConn {
    stream: BufReader<TcpStream>,
}

impl HttpConn {
    async fn open(addr: SocketAddr) -> Self {
        let stream = within("tcp connect", TcpStream::connect(addr))
            .await
            .unwrap();
        Self {
            stream: BufReader::new(stream),
        }
    }

    /// Writes a request for `/socket.io/?{query}`.
    async fn send(&mut self, method: &str, query: &str, headers: &[(&str, &str)], body: &[u8]) {
        let mut req = format!(
            "{method} /socket.io/?{query} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\n",
            body.len()
        );
        for (name, value) in headers {
            req.push_str(&format!("{name}: {value}\r\n"));
        }
        req.push_str("\r\n");
        let mut bytes = req.into_bytes();
        bytes.extend_from_slice(body);
        let stream = self.stream.get_mut();
        stream.write_all(&bytes).await.unwrap();
        stream.flush().await.unwrap();
    }

    /// Reads one response: status line, headers, then Content-Length bytes.
    async fn response(&mut self) -> HttpResponse {
        within("an HTTP response", self.read_response()).await
    }

    async fn read_response(&mut self) -> HttpResponse {
        let mut line = String::new();
        self.stream.read_line(&mut line).await.unwrap();
        let mut parts = line.split_whitespace();
        assert_eq!(parts.next(), Some("HTTP/1.1"), "status line {line:?}");
        let status: u16 = parts.next().and_then(|s| s.parse().ok()).expect("status");
        let mut headers = Vec::new();
        loop {
            line.clear();
            self.stream.read_line(&mut line).await.unwrap();
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            let (name, value) = header.split_once(':').expect("header line");
            headers.push((name.trim().to_owned(), value.trim().to_owned()));
        }
        let mut res = HttpResponse {
            status,
            headers,
            body: Vec::new(),
        };
        assert_eq!(res.header("transfer-encoding"), None, "{res:?}");
        let len: usize = res
            .header("content-length")
            .map_or(0, |v| v.parse().expect("content-length"));
        res.body = vec![0; len];
        self.stream.read_exact(&mut res.body).await.unwrap();
        res
    }
}

/// One request on a fresh connection.
async fn http(
    addr: SocketAddr,
    method: &str,
    query: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> HttpResponse {
    let mut conn = HttpConn::open(addr).await;
    conn.send(method, query, headers, body).await;
    conn.response().await
}

async fn http_get(addr: SocketAddr, query: &str) -> HttpResponse {
    http(addr, "GET", query, &[], b"").await
}

async fn http_post(addr: SocketAddr, query: &str, body: &[u8]) -> HttpResponse {
    http(addr, "POST", query, &[], body).await
}

fn polling(sid: &str) -> String {
    format!("EIO=4&transport=polling&sid={sid}")
}

const HANDSHAKE: &str = "EIO=4&transport=polling";

/// Headers of a WebSocket upgrade request.
const UPGRADE: &[(&str, &str)] = &[
    ("Connection", "Upgrade"),
    ("Upgrade", "websocket"),
    ("Sec-WebSocket-Version", "13"),
    ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
];

/// A polling handshake; returns the sid and the open packet's JSON.
async fn polling_handshake(addr: SocketAddr) -> (String, Value) {
    let res = http_get(addr, HANDSHAKE).await;
    assert_eq!(res.status, 200, "{res:?}");
    let open = res.text().strip_prefix('0').expect("open packet");
    let open: Value = serde_json::from_str(open).unwrap();
    (open["sid"].as_str().expect("sid").to_owned(), open)
}

/// A polling client connected to "/"; returns the Engine.IO sid.
async fn polling_connect(addr: SocketAddr) -> String {
    let (sid, _) = polling_handshake(addr).await;
    http_post(addr, &polling(&sid), b"40").await.assert_ok("ok");
    let res = http_get(addr, &polling(&sid)).await;
    assert_eq!(res.status, 200, "{res:?}");
    assert!(res.text().starts_with("40{\"sid\":\""), "{res:?}");
    sid
}

/// Checks that a polling session is gone.
async fn assert_session_gone(addr: SocketAddr, sid: &str) {
    http_get(addr, &polling(sid))
        .await
        .assert_error(400, 1, "Session ID unknown");
}

/// An acknowledged echo over long-polling.
async fn polling_echo_ok(addr: SocketAddr, sid: &str, id: u64) {
    let event = format!("42{id}[\"echo\",{id}]");
    http_post(addr, &polling(sid), event.as_bytes())
        .await
        .assert_ok("ok");
    http_get(addr, &polling(sid))
        .await
        .assert_ok(&format!("43{id}[{id}]"));
}

// ---------------------------------------------------------------------------
// WebSocket frames by hand
// ---------------------------------------------------------------------------

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// What a WebSocket client got next.
#[derive(Debug, PartialEq)]
enum Recv {
    Text(String),
    Binary(Vec<u8>),
    /// A close frame, the end of the stream, or a connection error.
    Closed,
}

/// Opens a WebSocket to the endpoint (with `sid` to join a session); reads nothing.
async fn ws_open(addr: SocketAddr, sid: Option<&str>) -> Ws {
    let mut uri = format!("ws://{addr}/socket.io/?EIO=4&transport=websocket");
    if let Some(sid) = sid {
        uri.push_str("&sid=");
        uri.push_str(sid);
    }
    let builder = ClientBuilder::new().uri(&uri).unwrap();
    let (ws, _) = within("websocket handshake", builder.connect())
        .await
        .expect("websocket handshake");
    ws
}

/// A fresh WebSocket session; returns the Engine.IO sid and the open packet.
async fn connect_ws(addr: SocketAddr) -> (Ws, String, Value) {
    let mut ws = ws_open(addr, None).await;
    let text = recv_text(&mut ws).await;
    let open: Value = serde_json::from_str(text.strip_prefix('0').expect("open packet")).unwrap();
    let sid = open["sid"].as_str().expect("sid").to_owned();
    (ws, sid, open)
}

/// A WebSocket client connected to "/"; returns the Socket.IO socket id.
async fn connect_sio(addr: SocketAddr) -> (Ws, String) {
    let (mut ws, _, _) = connect_ws(addr).await;
    let id = sio_connect(&mut ws, "40").await;
    (ws, id)
}

/// Sends a CONNECT to "/" and returns the socket id of the answer.
async fn sio_connect(ws: &mut Ws, connect: &str) -> String {
    send_text(ws, connect).await;
    let text = recv_text(ws).await;
    let data = text
        .strip_prefix("40")
        .unwrap_or_else(|| panic!("{text:?}"));
    let data: Value = serde_json::from_str(data).unwrap();
    data["sid"].as_str().expect("socket id").to_owned()
}

async fn send_text(ws: &mut Ws, text: &str) {
    within("a send", ws.send(Message::text(text.to_owned())))
        .await
        .unwrap();
}

/// The next data frame (or the close), skipping WebSocket-level pings.
async fn recv(ws: &mut Ws) -> Recv {
    within("a websocket message", async {
        loop {
            match ws.next().await {
                Some(Ok(msg)) if msg.is_text() => {
                    return Recv::Text(msg.as_text().unwrap_or_default().to_owned())
                }
                Some(Ok(msg)) if msg.is_binary() => return Recv::Binary(msg.as_payload().to_vec()),
                Some(Ok(msg)) if msg.is_close() => return Recv::Closed,
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return Recv::Closed,
            }
        }
    })
    .await
}

async fn recv_text(ws: &mut Ws) -> String {
    match recv(ws).await {
        Recv::Text(text) => text,
        other => panic!("expected a text frame, got {other:?}"),
    }
}

/// Checks that the server closes the WebSocket without sending anything first.
async fn expect_closed(ws: &mut Ws) {
    assert_eq!(recv(ws).await, Recv::Closed);
}

/// An acknowledged echo over WebSocket.
async fn echo_ok(ws: &mut Ws, id: u64) {
    send_text(ws, &format!("42{id}[\"echo\",{id}]")).await;
    assert_eq!(recv_text(ws).await, format!("43{id}[{id}]"));
}

/// Sends `frames` from a fresh client and checks that the server closes it,
/// and only it, with "parse error": a client connected before keeps working.
async fn assert_bad_input_closes_only_that_client(config: Config, frames: Vec<Message>) {
    let mut server = start(config).await;
    let (mut good, _) = connect_sio(server.addr).await;
    let (mut bad, bad_id) = connect_sio(server.addr).await;
    echo_ok(&mut good, 1).await;
    assert_eq!(server.sessions(), 2);

    for frame in frames {
        within("a send", bad.send(frame)).await.unwrap();
    }
    expect_closed(&mut bad).await;
    assert_eq!(
        server.next_disconnect().await,
        (bad_id, "parse error".to_owned())
    );
    assert_eq!(server.sessions(), 1);

    echo_ok(&mut good, 2).await;
    let (mut fresh, _) = connect_sio(server.addr).await;
    echo_ok(&mut fresh, 3).await;
}

fn placeholders(n: usize) -> String {
    (0..n)
        .map(|i| format!(",{{\"_placeholder\":true,\"num\":{i}}}"))
        .collect()
}

// ---------------------------------------------------------------------------
// Handshake errors
// ---------------------------------------------------------------------------

#[tokio::test]
async fn handshake_with_missing_or_unsupported_eio_is_code_5() {
    let server = start(Config::default()).await;
    for query in [
        "transport=polling",
        "EIO=3&transport=polling",
        "EIO=5&transport=polling",
        "EIO=four&transport=polling",
    ] {
        http_get(server.addr, query)
            .await
            .assert_error(400, 5, "Unsupported protocol version");
    }
    assert_eq!(server.sessions(), 0);
    // The same server accepts a well-formed handshake.
    polling_handshake(server.addr).await;
    assert_eq!(server.sessions(), 1);
}

#[tokio::test]
async fn handshake_with_missing_or_unknown_transport_is_code_0() {
    let server = start(Config::default()).await;
    for query in [
        "EIO=4",
        "EIO=4&transport=flashsocket",
        "EIO=4&transport=webtransport",
        "EIO=4&transport=",
    ] {
        http_get(server.addr, query)
            .await
            .assert_error(400, 0, "Transport unknown");
    }
    assert_eq!(server.sessions(), 0);
}

/// A browser page of an allowed origin that uses another method than GET or
/// POST gets the protocol's 400 like the reference, not a CORS failure: the
/// preflight lets the method through, and the error carries the CORS headers.
#[tokio::test]
async fn cross_origin_put_gets_the_protocol_error_not_a_cors_failure() {
    let origin = "http://app.example";
    let server = start(Config::default().cors(tether::Cors {
        origins: vec![origin.to_owned()],
        credentials: false,
    }))
    .await;
    let preflight = http(
        server.addr,
        "OPTIONS",
        HANDSHAKE,
        &[("origin", origin), ("access-control-request-method", "PUT")],
        b"",
    )
    .await;
    assert_eq!(preflight.status, 204, "{preflight:?}");
    assert_eq!(
        preflight.header("access-control-allow-origin"),
        Some(origin)
    );
    let methods = preflight
        .header("access-control-allow-methods")
        .unwrap_or_default();
    assert!(methods.split(", ").any(|m| m == "PUT"), "{preflight:?}");
    let put = http(server.addr, "PUT", HANDSHAKE, &[("origin", origin)], b"").await;
    put.assert_error(400, 2, "Bad handshake method");
    assert_eq!(put.header("access-control-allow-origin"), Some(origin));
    // Another origin is refused at the preflight.
    let other = http(
        server.addr,
        "OPTIONS",
        HANDSHAKE,
        &[
            ("origin", "http://evil.example"),
            ("access-control-request-method", "GET"),
        ],
        b"",
    )
    .await;
    assert_eq!(other.status, 403, "{other:?}");
}

#[tokio::test]
async fn handshake_over_post_is_bad_handshake_method() {
    let server = start(Config::default()).await;
    http_post(server.addr, HANDSHAKE, b"40")
        .await
        .assert_error(400, 2, "Bad handshake method");
    assert_eq!(server.sessions(), 0);
}

#[tokio::test]
async fn websocket_handshake_without_upgrade_is_bad_request() {
    let server = start(Config::default()).await;
    http_get(server.addr, "EIO=4&transport=websocket")
        .await
        .assert_error(400, 3, "Bad request");
    assert_eq!(server.sessions(), 0);
}

#[tokio::test]
async fn unknown_sid_is_code_1_for_get_post_and_websocket() {
    let server = start(Config::default()).await;
    let query = polling("AAAAAAAAAAAAAAAAAAAAAA");
    http_get(server.addr, &query)
        .await
        .assert_error(400, 1, "Session ID unknown");
    http_post(server.addr, &query, b"40")
        .await
        .assert_error(400, 1, "Session ID unknown");
    let res = http(
        server.addr,
        "GET",
        "EIO=4&transport=websocket&sid=AAAAAAAAAAAAAAAAAAAAAA",
        UPGRADE,
        b"",
    )
    .await;
    // The reference answers a refused upgrade with a 400 too.
    assert_eq!(res.status, 400, "{res:?}");
    assert!(res.text().contains("Session ID unknown"), "{res:?}");
    assert_eq!(server.sessions(), 0);
}

#[tokio::test]
async fn websocket_with_an_already_upgraded_sid_is_accepted_then_closed() {
    let server = start(Config::default()).await;
    let (sid, _) = polling_handshake(server.addr).await;

    // Upgrade the polling session to WebSocket.
    let mut ws = ws_open(server.addr, Some(&sid)).await;
    send_text(&mut ws, "2probe").await;
    assert_eq!(recv_text(&mut ws).await, "3probe");
    send_text(&mut ws, "5").await;
    // Answered over the WebSocket: the upgrade is complete.
    sio_connect(&mut ws, "40").await;

    // A second WebSocket for the same sid: the handshake succeeds, then the
    // server closes it at once.
    let mut second = ws_open(server.addr, Some(&sid)).await;
    expect_closed(&mut second).await;

    // Polling is over for this session.
    http_get(server.addr, &polling(&sid))
        .await
        .assert_error(400, 3, "Bad request");
    // The upgraded session is unharmed.
    echo_ok(&mut ws, 1).await;
    assert_eq!(server.sessions(), 1);
}

#[tokio::test]
async fn bad_packet_during_probe_closes_only_the_probe() {
    let server = start(Config::default()).await;
    let sid = polling_connect(server.addr).await;
    // A message before the upgrade completes: the probing WebSocket is closed...
    let mut probe = ws_open(server.addr, Some(&sid)).await;
    send_text(&mut probe, "2probe").await;
    assert_eq!(recv_text(&mut probe).await, "3probe");
    send_text(&mut probe, "42[\"echo\",1]").await;
    expect_closed(&mut probe).await;
    // ...the polling session goes on (the probe released its GET with a noop).
    http_get(server.addr, &polling(&sid)).await.assert_ok("6");
    polling_echo_ok(server.addr, &sid, 1).await;
    assert_eq!(server.sessions(), 1);
}

/// The reference resets its upgrade state when a probe fails
/// (`cleanup()` → `upgrading = false`), so the client may probe again at once.
#[tokio::test]
async fn after_a_failed_probe_a_new_probe_is_accepted_like_reference() {
    let server = start(Config::default()).await;
    let sid = polling_connect(server.addr).await;
    let mut probe = ws_open(server.addr, Some(&sid)).await;
    send_text(&mut probe, "2probe").await;
    assert_eq!(recv_text(&mut probe).await, "3probe");
    send_text(&mut probe, "42[\"echo\",1]").await;
    expect_closed(&mut probe).await;

    let mut ws = ws_open(server.addr, Some(&sid)).await;
    send_text(&mut ws, "2probe").await;
    assert_eq!(
        recv(&mut ws).await,
        Recv::Text("3probe".to_owned()),
        "a new probe is refused until upgrade_timeout after a failed one"
    );
    send_text(&mut ws, "5").await;
    echo_ok(&mut ws, 2).await;
    assert_eq!(server.sessions(), 1);
}

fn deny_header(opts: &mut EngineOptions) {
    opts.allow_request = Some(Arc::new(|parts, _| {
        if parts.headers.contains_key("x-deny") {
            Err("denied by test".to_owned())
        } else {
            Ok(())
        }
    }));
}

#[tokio::test]
async fn allow_request_refusal_is_403_code_4() {
    let server = start_with(Config::default(), deny_header).await;
    let res = http(server.addr, "GET", HANDSHAKE, &[("X-Deny", "1")], b"").await;
    assert_eq!(res.status, 403, "{res:?}");
    assert_eq!(res.header("content-type"), Some("application/json"));
    let body: Value = serde_json::from_slice(&res.body).unwrap();
    assert_eq!(body["code"], 4, "{res:?}");
    assert!(body["message"].is_string(), "{res:?}");
    assert_eq!(server.sessions(), 0);

    // A refused WebSocket handshake is not upgraded either.
    let res = http(
        server.addr,
        "GET",
        "EIO=4&transport=websocket",
        &[UPGRADE, &[("X-Deny", "1")]].concat(),
        b"",
    )
    .await;
    assert_eq!(res.status, 403, "{res:?}");
    assert_eq!(server.sessions(), 0);

    // Requests the hook accepts go through.
    let sid = polling_connect(server.addr).await;
    polling_echo_ok(server.addr, &sid, 1).await;
}

/// The reference sends the hook's reason as the message
/// (`allowRequest(req, cb)` → `cb("denied by test", false)` →
/// `403 {"code":4,"message":"denied by test"}`), "Forbidden" only without one.
#[tokio::test]
async fn allow_request_refusal_message_is_the_hook_reason_like_reference() {
    let server = start_with(Config::default(), deny_header).await;
    http(server.addr, "GET", HANDSHAKE, &[("X-Deny", "1")], b"")
        .await
        .assert_error(403, 4, "denied by test");
}

#[tokio::test]
async fn max_connections_reached_is_503() {
    let server = start(Config::default().max_connections(1)).await;
    let (sid, _) = polling_handshake(server.addr).await;
    http_get(server.addr, HANDSHAKE)
        .await
        .assert_error(503, 3, "Too many connections");
    let res = http(
        server.addr,
        "GET",
        "EIO=4&transport=websocket",
        UPGRADE,
        b"",
    )
    .await;
    assert_eq!(res.status, 503, "{res:?}");
    assert_eq!(server.sessions(), 1);

    // Once the first client leaves (close packet), a new one fits.
    http_post(server.addr, &polling(&sid), b"1")
        .await
        .assert_ok("ok");
    assert_session_gone(server.addr, &sid).await;
    let sid = polling_connect(server.addr).await;
    polling_echo_ok(server.addr, &sid, 1).await;
}

/// The first step of a graceful shutdown: from `stop_accepting` on, a
/// handshake is refused with 503 (on a kept-alive HTTP connection too) and an
/// event a client sends is not taken, while an event taken before finishes
/// and is acknowledged, and acks from the client still resolve.
#[tokio::test]
async fn stop_accepting_refuses_new_sessions_and_emits_and_finishes_what_was_taken() {
    let server = start(Config::default()).await;
    let (mut ws, _) = connect_sio(server.addr).await;
    echo_ok(&mut ws, 1).await;
    // A kept-alive HTTP connection that already served a handshake.
    let mut kept = HttpConn::open(server.addr).await;
    kept.send("GET", HANDSHAKE, &[], b"").await;
    assert_eq!(kept.response().await.status, 200);
    // Taken before the stop: its handler waits for HOLD.
    probe_after(&server, &mut ws, r#"422["held",2]"#).await;

    server.io.stop_accepting();
    assert!(server.io.is_shutting_down());
    kept.send("GET", HANDSHAKE, &[], b"").await;
    kept.response()
        .await
        .assert_error(503, 3, "Server shutting down");
    http_get(server.addr, HANDSHAKE)
        .await
        .assert_error(503, 3, "Server shutting down");
    let res = http(
        server.addr,
        "GET",
        "EIO=4&transport=websocket",
        UPGRADE,
        b"",
    )
    .await;
    assert_eq!(res.status, 503, "{res:?}");
    // Sent after the stop: read (the probe's ack behind it resolved) but not
    // taken.
    probe_after(&server, &mut ws, r#"423["echo",3]"#).await;

    // What was taken before finishes and is answered.
    HOLD.send_replace(true);
    assert_eq!(recv_text(&mut ws).await, "432[2]");
    // Then the transport closes: the refused emit was never answered.
    server.io.close();
    let mut after = Vec::new();
    loop {
        match recv(&mut ws).await {
            Recv::Closed => break,
            Recv::Text(text) => after.push(text),
            Recv::Binary(bytes) => panic!("binary frame {bytes:?}"),
        }
    }
    assert!(
        after.iter().all(|frame| !frame.starts_with("433")),
        "the emit sent after stop_accepting was answered: {after:?}"
    );
}

/// The server emits "probe" with an ack to the client on `ws`, which sends
/// `frame` and then the probe's ack: once the ack resolved on the server,
/// `frame` was read before it.
async fn probe_after(server: &TestServer, ws: &mut Ws, frame: &str) {
    let socket = server.io.sockets().pop().expect("the client's socket");
    let asked = tokio::spawn(async move { socket.emit_with_ack("probe", ()).await });
    let probe = recv_text(ws).await;
    let ack_id = probe
        .strip_prefix("42")
        .and_then(|rest| rest.strip_suffix(r#"["probe"]"#))
        .unwrap_or_else(|| panic!("{probe:?}"))
        .to_owned();
    send_text(ws, frame).await;
    send_text(ws, &format!("43{ack_id}[\"pong\"]")).await;
    let answer = within("the probe's ack", asked).await.unwrap().unwrap();
    assert_eq!(answer.values().len(), 1, "{answer:?}");
}

// ---------------------------------------------------------------------------
// Long-polling
// ---------------------------------------------------------------------------

#[tokio::test]
async fn polling_handshake_body_has_the_reference_format() {
    let server = start(
        Config::default()
            .ping_interval(Duration::from_millis(24_000))
            .ping_timeout(Duration::from_millis(19_000))
            .max_payload(4321),
    )
    .await;
    let res = http_get(server.addr, HANDSHAKE).await;
    assert_eq!(res.status, 200, "{res:?}");
    assert_eq!(
        res.header("content-type"),
        Some("text/plain; charset=UTF-8")
    );
    let (_, open) = polling_handshake(server.addr).await;
    let sid = open["sid"].as_str().unwrap();
    assert_eq!(sid.len(), 22);
    assert!(sid
        .bytes()
        .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
    let text = res.text();
    let first_sid = serde_json::from_str::<Value>(&text[1..]).unwrap()["sid"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(first_sid, sid);
    assert_eq!(
        text,
        format!(
            "0{{\"sid\":\"{first_sid}\",\"upgrades\":[\"websocket\"],\"pingInterval\":24000,\"pingTimeout\":19000,\"maxPayload\":4321}}"
        )
    );

    // Over WebSocket there is nothing to upgrade to.
    let (_ws, ws_sid, open) = connect_ws(server.addr).await;
    assert_eq!(
        open,
        json!({"sid": ws_sid, "upgrades": [], "pingInterval": 24000, "pingTimeout": 19000, "maxPayload": 4321})
    );
}

#[tokio::test]
async fn polling_post_answers_ok_and_get_delivers() {
    let server = start(Config::default()).await;
    let (sid, _) = polling_handshake(server.addr).await;
    let res = http_post(server.addr, &polling(&sid), b"40").await;
    res.assert_ok("ok");
    assert_eq!(
        res.header("content-type"),
        Some("text/plain; charset=UTF-8")
    );
    let res = http_get(server.addr, &polling(&sid)).await;
    assert_eq!(res.status, 200, "{res:?}");
    let data = res.text().strip_prefix("40").expect("CONNECT answer");
    let data: Value = serde_json::from_str(data).unwrap();
    assert_eq!(data["sid"].as_str().map(str::len), Some(22));
    // Several packets in one POST, separated by \x1e.
    http_post(
        server.addr,
        &polling(&sid),
        b"421[\"echo\",\"a\"]\x1e422[\"echo\",\"b\"]",
    )
    .await
    .assert_ok("ok");
    let res = http_get(server.addr, &polling(&sid)).await;
    // Both acks, in one body or across two polls.
    let mut body = res.text().to_owned();
    if body == "431[\"a\"]" {
        body.push('\x1e');
        body.push_str(http_get(server.addr, &polling(&sid)).await.text());
    }
    assert_eq!(body, "431[\"a\"]\x1e432[\"b\"]");
}

#[tokio::test]
async fn second_concurrent_get_closes_the_session() {
    let server = start(Config::default()).await;
    let sid = polling_connect(server.addr).await;
    let query = polling(&sid);
    let mut first = HttpConn::open(server.addr).await;
    let mut second = HttpConn::open(server.addr).await;
    first.send("GET", &query, &[], b"").await;
    second.send("GET", &query, &[], b"").await;
    let (a, b) = tokio::join!(first.response(), second.response());
    // The GET the server saw first is pending and receives a close packet;
    // the other one is refused (which one is first is up to the scheduler).
    let (pending, refused) = if a.status == 200 { (a, b) } else { (b, a) };
    pending.assert_ok("1");
    refused.assert_error(400, 3, "Bad request");
    assert_session_gone(server.addr, &sid).await;
    assert_eq!(server.sessions(), 0);
}

#[tokio::test]
async fn invalid_packet_in_post_is_400_and_closes_the_session() {
    let mut server = start(Config::default()).await;
    let bodies: [&[u8]; 5] = [
        b"9",        // unknown Engine.IO packet type
        b"",         // empty payload
        b"4hi\x1e",  // empty packet after a separator
        b"b!!!",     // invalid base64
        b"0{}\x1e6", // the client may not send an open packet
    ];
    for body in bodies {
        let sid = polling_connect(server.addr).await;
        http_post(server.addr, &polling(&sid), body)
            .await
            .assert_error(400, 3, "Bad request");
        assert_session_gone(server.addr, &sid).await;
        let (_, reason) = server.next_disconnect().await;
        assert_eq!(reason, "parse error", "{body:?}");
    }
    assert_eq!(server.sessions(), 0);
}

#[tokio::test]
async fn post_over_max_payload_is_413_and_closes_the_session() {
    let mut server = start(Config::default().max_payload(1000)).await;
    let sid = polling_connect(server.addr).await;
    // Exactly max_payload bytes are accepted.
    let head = "42[\"echo\",\"";
    let fits = format!("{head}{}\"]", "a".repeat(1000 - head.len() - 2));
    assert_eq!(fits.len(), 1000);
    http_post(server.addr, &polling(&sid), fits.as_bytes())
        .await
        .assert_ok("ok");
    // One more byte is not.
    let over = format!("{head}{}\"]", "a".repeat(1001 - head.len() - 2));
    let res = http_post(server.addr, &polling(&sid), over.as_bytes()).await;
    assert_eq!(res.status, 413, "{res:?}");
    assert_session_gone(server.addr, &sid).await;
    let (_, reason) = server.next_disconnect().await;
    assert_eq!(reason, "transport error");
    assert_eq!(server.sessions(), 0);
}

#[tokio::test]
async fn invalid_utf8_post_is_400_and_closes_the_session() {
    let server = start(Config::default()).await;
    let sid = polling_connect(server.addr).await;
    http_post(server.addr, &polling(&sid), b"42[\"echo\",\"\xff\xfe\"]")
        .await
        .assert_error(400, 3, "Bad request");
    assert_session_gone(server.addr, &sid).await;
    assert_eq!(server.sessions(), 0);
}

#[tokio::test]
async fn sio_parse_error_over_polling_closes_the_session() {
    let mut server = start(Config::default()).await;
    let other = polling_connect(server.addr).await;
    let (sid, _) = polling_handshake(server.addr).await;
    http_post(server.addr, &polling(&sid), b"40")
        .await
        .assert_ok("ok");
    let res = http_get(server.addr, &polling(&sid)).await;
    let id: Value = serde_json::from_str(res.text().strip_prefix("40").unwrap()).unwrap();
    // A valid Engine.IO message carrying an invalid Socket.IO packet: the
    // request itself is fine, the connection is closed.
    http_post(server.addr, &polling(&sid), b"42{}")
        .await
        .assert_ok("ok");
    assert_eq!(
        server.next_disconnect().await,
        (
            id["sid"].as_str().unwrap().to_owned(),
            "parse error".to_owned()
        )
    );
    assert_session_gone(server.addr, &sid).await;
    polling_echo_ok(server.addr, &other, 1).await;
    assert_eq!(server.sessions(), 1);
}

#[tokio::test]
async fn polling_flood_closes_the_session_and_the_server_keeps_serving() {
    let server = start(Config::default()).await;
    let sid = polling_connect(server.addr).await;
    let query = polling(&sid);
    let mut conns = Vec::new();
    for _ in 0..50 {
        let mut conn = HttpConn::open(server.addr).await;
        conn.send("GET", &query, &[], b"").await;
        conns.push(conn);
    }
    let mut closes = 0;
    for conn in &mut conns {
        let res = conn.response().await;
        match res.status {
            200 => {
                res.assert_ok("1");
                closes += 1;
            }
            _ => {
                // Refused while the session closes, or after it is gone.
                let body: Value = serde_json::from_slice(&res.body).unwrap();
                match body["code"].as_u64() {
                    Some(3) => res.assert_error(400, 3, "Bad request"),
                    _ => res.assert_error(400, 1, "Session ID unknown"),
                }
            }
        }
    }
    // Exactly one GET was pending when the session closed.
    assert_eq!(closes, 1);
    assert_session_gone(server.addr, &sid).await;
    assert_eq!(server.sessions(), 0);

    let sid = polling_connect(server.addr).await;
    polling_echo_ok(server.addr, &sid, 1).await;
    let (mut ws, _) = connect_sio(server.addr).await;
    echo_ok(&mut ws, 2).await;
}

// ---------------------------------------------------------------------------
// WebSocket transport
// ---------------------------------------------------------------------------

#[tokio::test]
async fn websocket_frame_over_max_payload_closes_the_connection() {
    let mut server = start(Config::default().max_payload(1000)).await;
    let (mut good, _) = connect_sio(server.addr).await;
    let (mut bad, bad_id) = connect_sio(server.addr).await;

    // Under the limit: fine.
    let big = "a".repeat(900);
    send_text(&mut good, &format!("421[\"echo\",\"{big}\"]")).await;
    assert_eq!(recv_text(&mut good).await, format!("431[\"{big}\"]"));

    let huge = "a".repeat(2000);
    send_text(&mut bad, &format!("421[\"echo\",\"{huge}\"]")).await;
    expect_closed(&mut bad).await;
    assert_eq!(
        server.next_disconnect().await,
        (bad_id, "transport error".to_owned())
    );
    assert_eq!(server.sessions(), 1);
    echo_ok(&mut good, 2).await;
}

#[tokio::test]
async fn websocket_invalid_engine_packet_closes_the_connection() {
    let mut server = start(Config::default()).await;
    let (mut good, _) = connect_sio(server.addr).await;
    for frame in ["9", "x42[\"echo\",1]", "", "0{}", "5"] {
        let (mut bad, bad_id) = connect_sio(server.addr).await;
        send_text(&mut bad, frame).await;
        expect_closed(&mut bad).await;
        assert_eq!(
            server.next_disconnect().await,
            (bad_id, "parse error".to_owned()),
            "{frame:?}"
        );
        echo_ok(&mut good, 1).await;
    }
    assert_eq!(server.sessions(), 1);
}

#[tokio::test]
async fn websocket_ping_timeout_closes_the_connection() {
    let mut server = start(
        Config::default()
            .ping_interval(Duration::from_millis(300))
            .ping_timeout(Duration::from_millis(200)),
    )
    .await;
    let (mut alive, _) = connect_sio(server.addr).await;
    let (mut silent, silent_id) = connect_sio(server.addr).await;

    // The client that answers survives several heartbeats...
    for _ in 0..3 {
        assert_eq!(recv_text(&mut alive).await, "2");
        send_text(&mut alive, "3").await;
    }
    // ...the one that does not was pinged once, then dropped.
    assert_eq!(recv_text(&mut silent).await, "2");
    expect_closed(&mut silent).await;
    assert_eq!(
        server.next_disconnect().await,
        (silent_id, "ping timeout".to_owned())
    );
    assert_eq!(server.sessions(), 1);
    echo_ok(&mut alive, 1).await;
}

// ---------------------------------------------------------------------------
// Socket.IO packets
// ---------------------------------------------------------------------------

#[tokio::test]
async fn sio_unknown_packet_type_closes_only_that_client() {
    assert_bad_input_closes_only_that_client(Config::default(), vec![Message::text("4abc")]).await;
}

#[tokio::test]
async fn sio_packet_type_out_of_range_closes_only_that_client() {
    assert_bad_input_closes_only_that_client(
        Config::default(),
        vec![Message::text("49[\"echo\",1]")],
    )
    .await;
}

#[tokio::test]
async fn sio_event_with_object_payload_closes_only_that_client() {
    assert_bad_input_closes_only_that_client(Config::default(), vec![Message::text("42{}")]).await;
}

#[tokio::test]
async fn sio_event_with_garbage_before_payload_closes_only_that_client() {
    assert_bad_input_closes_only_that_client(
        Config::default(),
        vec![Message::text("42abc[\"x\"]")],
    )
    .await;
}

#[tokio::test]
async fn sio_text_frame_instead_of_attachment_closes_only_that_client() {
    let head = format!("452-[\"echo\"{}]", placeholders(2));
    assert_bad_input_closes_only_that_client(
        Config::default(),
        vec![
            Message::text(head),
            Message::binary(vec![1u8, 2, 3]),
            Message::text("42[\"echo\",1]"),
        ],
    )
    .await;
}

#[tokio::test]
async fn sio_stray_binary_frame_closes_only_that_client() {
    assert_bad_input_closes_only_that_client(
        Config::default(),
        vec![Message::binary(vec![1u8, 2, 3])],
    )
    .await;
}

#[tokio::test]
async fn sio_attachment_count_over_max_attachments_closes_only_that_client() {
    let config = || Config::default().max_attachments(4);
    // At the limit: delivered, and acknowledged with the same attachments.
    let server = start(config()).await;
    let (mut ws, _) = connect_sio(server.addr).await;
    send_text(&mut ws, &format!("454-7[\"echo\"{}]", placeholders(4))).await;
    for i in 0..4u8 {
        within("a send", ws.send(Message::binary(vec![i; 3])))
            .await
            .unwrap();
    }
    let ack = format!("464-7[{}]", &placeholders(4)[1..]);
    assert_eq!(recv(&mut ws).await, Recv::Text(ack));
    for i in 0..4u8 {
        assert_eq!(recv(&mut ws).await, Recv::Binary(vec![i; 3]));
    }

    // One over: refused on the header, before any attachment arrives.
    assert_bad_input_closes_only_that_client(
        config(),
        vec![Message::text(format!("455-[\"echo\"{}]", placeholders(5)))],
    )
    .await;
}

#[tokio::test]
async fn sio_illegal_placeholders_close_only_that_client() {
    // As the reference parser: "illegal attachments", never a raw object
    // handed to the app.
    for num in ["1", "-1", "\"0\"", "0.5", "null"] {
        assert_bad_input_closes_only_that_client(
            Config::default(),
            vec![
                Message::text(format!(
                    "451-[\"echo\",{{\"_placeholder\":true,\"num\":{num}}}]"
                )),
                Message::binary(vec![1u8, 2, 3]),
            ],
        )
        .await;
    }
}

#[tokio::test]
async fn sio_huge_attachment_count_closes_only_that_client() {
    assert_bad_input_closes_only_that_client(
        Config::default(),
        vec![Message::text("45999999999999999999999-[\"echo\"]")],
    )
    .await;
}

#[tokio::test]
async fn sio_deeply_nested_json_closes_only_that_client() {
    let deep = format!("42[\"echo\",{}{}]", "[".repeat(1000), "]".repeat(1000));
    assert_bad_input_closes_only_that_client(Config::default(), vec![Message::text(deep)]).await;
}

#[tokio::test]
async fn sio_connect_to_unknown_namespace_is_connect_error() {
    let server = start(Config::default()).await;
    let (mut other, _) = connect_sio(server.addr).await;
    let (mut ws, _) = connect_sio(server.addr).await;
    send_text(&mut ws, "40/nope,").await;
    assert_eq!(
        recv_text(&mut ws).await,
        "44/nope,{\"message\":\"Invalid namespace\"}"
    );
    // Not a protocol error: both clients go on.
    echo_ok(&mut ws, 1).await;
    echo_ok(&mut other, 2).await;
    assert_eq!(server.sessions(), 2);
}

#[tokio::test]
async fn sio_middleware_refusal_sends_message_and_data() {
    let server = start(Config::default()).await;
    let (mut other, _) = connect_sio(server.addr).await;
    let (mut ws, _, _) = connect_ws(server.addr).await;
    send_text(&mut ws, "40{\"token\":\"bad\"}").await;
    assert_eq!(
        recv_text(&mut ws).await,
        "44{\"message\":\"unauthorized\",\"data\":{\"code\":401}}"
    );
    echo_ok(&mut other, 1).await;
    // The refused client is not connected to "/": its events are ignored...
    send_text(&mut ws, "421[\"echo\",1]").await;
    // ...but it may try again on the same connection.
    sio_connect(&mut ws, "40{\"token\":\"good\"}").await;
    echo_ok(&mut ws, 2).await;
    assert_eq!(server.sessions(), 2);
}

// ---------------------------------------------------------------------------
// Bounded send queue
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_buffer_is_bounded_for_a_client_that_never_reads() {
    let mut server = start(Config::default().max_buffer(4096)).await;
    let (mut other, _) = connect_sio(server.addr).await;
    let (mut ws, id) = connect_sio(server.addr).await;
    send_text(&mut ws, "42[\"flood\"]").await;

    // The client reads nothing while the server emits: the emit must fail
    // once the socket buffers and the 4 KiB queue are full.
    let flood = server.next_flood().await;
    assert!(
        matches!(flood.error, Some(EmitError::BufferFull)),
        "{flood:?} ({} bytes queued without an error)",
        flood.sent * CHUNK
    );
    assert!(
        matches!(flood.after, Some(EmitError::Disconnected)),
        "{flood:?}"
    );
    assert_eq!(
        server.next_disconnect().await,
        (id, "send buffer full".to_owned())
    );
    assert_eq!(server.sessions(), 1);
    echo_ok(&mut other, 1).await;

    // Reading now: what was queued, then the close.
    let chunk = format!("42[\"chunk\",\"{}\"]", "x".repeat(CHUNK));
    let mut received = 0;
    loop {
        match recv(&mut ws).await {
            Recv::Text(text) => {
                assert_eq!(text, chunk);
                received += 1;
            }
            Recv::Binary(b) => panic!("unexpected binary frame {b:?}"),
            Recv::Closed => break,
        }
    }
    assert!(received <= flood.sent, "{received} > {}", flood.sent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_beyond_the_event_queue_is_slowed_down_not_dropped() {
    const MAX_QUEUED: usize = 64;
    const BURST: u64 = 2_000;
    let mut server = start(Config::default().max_queued_events(MAX_QUEUED)).await;
    let (mut other, _) = connect_sio(server.addr).await;
    let (mut ws, _) = connect_sio(server.addr).await;
    // Far more events than the queue holds, while their handler is blocked:
    // the server must stop reading (backpressure), not close the client.
    for id in 0..BURST {
        within(
            "a send",
            ws.feed(Message::text(format!("42{id}[\"gated\",{id}]"))),
        )
        .await
        .unwrap();
    }
    within("a flush", ws.flush()).await.unwrap();
    // The other client is served meanwhile.
    echo_ok(&mut other, 1).await;
    GATE.send_replace(true);
    for id in 0..BURST {
        assert_eq!(recv_text(&mut ws).await, format!("43{id}[{id}]"));
    }
    echo_ok(&mut ws, BURST).await;
    assert!(
        server.disconnects.try_recv().is_err(),
        "nobody was disconnected"
    );
}
