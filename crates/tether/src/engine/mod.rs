//! The Engine.IO v4 server: HTTP long-polling, WebSocket, and the upgrade
//! between them, driving one [`tether_proto::engine::Session`] per client.
//!
//! The layer above (Socket.IO, or any app) plugs in through [`EngineHandler`].

mod budget;
mod conn;
mod policy;
mod ws;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use parking_lot::RwLock;
use tether_proto::engine::{
    decode_payload, CloseReason, EngineConfig, Event, Frame, Session, TransportKind,
};

pub use budget::SendBudget;
pub use conn::{EngineConn, RequestInfo};
pub use policy::{Cors, Transports};

/// The response body of every Tether HTTP response.
pub type Body = Full<Bytes>;

/// Boxed error type accepted from request bodies.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The peer address of a request, put in its extensions by the server loop
/// (or by the app when it mounts Tether in its own server).
#[derive(Debug, Clone, Copy)]
pub struct RemoteAddr(pub SocketAddr);

/// Creates the per-connection handler when a session opens.
pub trait EngineHandler: Send + Sync + 'static {
    /// A session opened; return what handles its messages.
    fn on_open(&self, conn: &Arc<EngineConn>) -> Arc<dyn ConnHandler>;
}

/// Receives what one Engine.IO connection delivers, in order.
pub trait ConnHandler: Send + Sync + 'static {
    /// A message arrived (text without its `4`, or binary).
    fn on_message(&self, frame: Frame);
    /// The session ended.
    fn on_close(&self, reason: CloseReason);
}

/// A hook that accepts or refuses a handshake from its request parts and peer address.
pub type AllowRequest =
    Arc<dyn Fn(&http::request::Parts, Option<SocketAddr>) -> Result<(), String> + Send + Sync>;

/// Settings of the Engine.IO endpoint.
#[derive(Clone)]
pub struct EngineOptions {
    /// Path the endpoint answers under, with a trailing slash (`/socket.io/`).
    pub path: String,
    /// Session settings: heartbeat, payload and buffer limits.
    pub session: EngineConfig,
    /// Which transports clients may use.
    pub transports: Transports,
    /// Handshake filter; a refusal answers 403.
    pub allow_request: Option<AllowRequest>,
    /// Most sessions at once; past it a handshake answers 503.
    pub max_connections: usize,
    /// Cross-origin policy (none: same origin only). It also filters every
    /// request by its `Origin` ([`Cors::allows_request`]): a refused one
    /// answers 403.
    pub cors: Cors,
    /// The official client's browser bundle, served at `<path>socket.io.js`
    /// (and `socket.io.min.js`) as the Node server does; `None`: not served.
    pub client_bundle: Option<Bytes>,
    /// The memory budget shared by every session's outgoing queue.
    pub budget: Arc<SendBudget>,
    /// How long a long-polling POST may take to send its body; past it the
    /// request answers 408 and the session closes.
    pub body_read_timeout: std::time::Duration,
}

impl std::fmt::Debug for EngineOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineOptions")
            .field("path", &self.path)
            .field("session", &self.session)
            .field("transports", &self.transports)
            .field("max_connections", &self.max_connections)
            .field("cors", &self.cors)
            .field("budget", &self.budget.limit())
            .field("body_read_timeout", &self.body_read_timeout)
            .finish_non_exhaustive()
    }
}

#[derive(Clone)]
pub(crate) struct Entry {
    pub(crate) conn: Arc<EngineConn>,
    pub(crate) handler: Arc<dyn ConnHandler>,
}

/// The Engine.IO server: a registry of sessions and the HTTP entry point.
pub struct Engine {
    self_ref: std::sync::Weak<Engine>,
    opts: EngineOptions,
    sessions: RwLock<HashMap<Arc<str>, Entry>>,
    handler: Arc<dyn EngineHandler>,
    /// Set by [`Engine::stop_accepting`]: handshakes are refused.
    draining: AtomicBool,
}

/// Reference error codes of the Engine.IO server.
#[derive(Debug, Clone)]
enum EngineError {
    UnknownTransport,
    UnknownSid,
    BadHandshakeMethod,
    BadRequest,
    Forbidden(String),
    UnsupportedProtocolVersion,
    PayloadTooLarge,
    BodyTimeout,
    TooManyConnections,
    ShuttingDown,
}

impl EngineError {
    fn response(self, cors: &Cors, origin: Option<&HeaderValue>) -> Response<Body> {
        let (status, code, message) = match &self {
            EngineError::UnknownTransport => (StatusCode::BAD_REQUEST, 0, "Transport unknown"),
            EngineError::UnknownSid => (StatusCode::BAD_REQUEST, 1, "Session ID unknown"),
            EngineError::BadHandshakeMethod => (StatusCode::BAD_REQUEST, 2, "Bad handshake method"),
            EngineError::BadRequest => (StatusCode::BAD_REQUEST, 3, "Bad request"),
            // Like the reference, the hook's reason is the message.
            EngineError::Forbidden(why) => (StatusCode::FORBIDDEN, 4, why.as_str()),
            EngineError::UnsupportedProtocolVersion => {
                (StatusCode::BAD_REQUEST, 5, "Unsupported protocol version")
            }
            EngineError::PayloadTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, 3, "Payload too large"),
            EngineError::BodyTimeout => (StatusCode::REQUEST_TIMEOUT, 3, "Body read timeout"),
            EngineError::TooManyConnections => {
                (StatusCode::SERVICE_UNAVAILABLE, 3, "Too many connections")
            }
            EngineError::ShuttingDown => {
                (StatusCode::SERVICE_UNAVAILABLE, 3, "Server shutting down")
            }
        };
        let body = serde_json::json!({ "code": code, "message": message }).to_string();
        let mut res = Response::new(Full::new(Bytes::from(body)));
        *res.status_mut() = status;
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        cors.apply(origin, res.headers_mut());
        res
    }
}

/// The query parameters Engine.IO reads.
#[derive(Debug, Default)]
struct Query {
    eio: Option<String>,
    transport: Option<String>,
    sid: Option<String>,
}

impl Query {
    fn parse(query: Option<&str>) -> Self {
        let mut q = Query::default();
        for (k, v) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
            match &*k {
                "EIO" => q.eio = Some(v.into_owned()),
                "transport" => q.transport = Some(v.into_owned()),
                "sid" => q.sid = Some(v.into_owned()),
                _ => {}
            }
        }
        q
    }
}

impl Engine {
    /// A new engine that hands every session to `handler`.
    pub fn new(opts: EngineOptions, handler: Arc<dyn EngineHandler>) -> Arc<Self> {
        Arc::new_cyclic(|self_ref| Self {
            self_ref: self_ref.clone(),
            opts,
            sessions: RwLock::new(HashMap::new()),
            handler,
            draining: AtomicBool::new(false),
        })
    }

    /// The engine's settings.
    pub fn options(&self) -> &EngineOptions {
        &self.opts
    }

    /// Refuses every new session from now on (a handshake answers 503
    /// "Server shutting down", on new and kept-alive HTTP connections alike);
    /// live sessions go on until they are closed. The first step of a
    /// graceful shutdown.
    pub fn stop_accepting(&self) {
        self.draining.store(true, Ordering::Release);
    }

    /// True once [`Engine::stop_accepting`] was called.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// Number of live sessions.
    pub fn session_count(&self) -> usize {
        self.sessions.read().len()
    }

    /// Number of live sessions on HTTP long-polling (not upgraded).
    pub fn polling_count(&self) -> usize {
        self.sessions
            .read()
            .values()
            .filter(|e| e.conn.transport() == TransportKind::Polling)
            .count()
    }

    /// True when `path` is under this engine's path.
    pub fn matches(&self, path: &str) -> bool {
        path.starts_with(&self.opts.path) || path == self.opts.path.trim_end_matches('/')
    }

    /// Closes every session once its client has read what was sent to it
    /// (see [`Session::close_gracefully`]), and waits until they are all
    /// closed, for at most `limit`.
    pub async fn close_all_gracefully(&self, limit: std::time::Duration) {
        let deadline = Instant::now() + limit;
        let entries: Vec<Entry> = self.sessions.read().values().cloned().collect();
        for entry in &entries {
            let (_, events) = entry.conn.with_session(|s| s.close_gracefully(deadline));
            self.dispatch(entry, events);
        }
        for entry in entries {
            loop {
                let notified = entry.conn.outgoing.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                if entry.conn.is_closed() {
                    break;
                }
                let left = deadline.saturating_duration_since(Instant::now());
                if tokio::time::timeout(left, notified).await.is_err() {
                    break;
                }
            }
        }
    }

    /// Closes every session (server shutdown).
    pub fn close_all(&self, reason: CloseReason) {
        let entries: Vec<Entry> = self.sessions.read().values().cloned().collect();
        for entry in entries {
            let events = entry.conn.close(reason, true);
            self.dispatch(&entry, events);
        }
    }

    /// Handles one HTTP request addressed to the endpoint.
    pub async fn handle<B>(self: Arc<Self>, req: Request<B>) -> Response<Body>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        if let Some(res) = self.client_bundle(&req) {
            return res;
        }
        let origin = req.headers().get(header::ORIGIN).cloned();
        let cors = &self.opts.cors;
        if req.method() == Method::OPTIONS {
            return cors.preflight(origin.as_ref());
        }
        if !cors.allows_request(req.headers()) {
            // Like a refusal of `allowRequest` in the reference server (its
            // code 4); the WebSocket upgrade is not accepted either.
            tracing::debug!(?origin, "request from a foreign origin refused");
            return EngineError::Forbidden("Origin not allowed".into()).response(cors, None);
        }
        let mut res = match self.route(req).await {
            Ok(res) => res,
            Err(e) => return e.response(cors, origin.as_ref()),
        };
        cors.apply(origin.as_ref(), res.headers_mut());
        res
    }

    /// The client bundle, when the request asks for it and it is served.
    fn client_bundle<B>(&self, req: &Request<B>) -> Option<Response<Body>> {
        let bundle = self.opts.client_bundle.as_ref()?;
        if req.method() != Method::GET && req.method() != Method::HEAD {
            return None;
        }
        let name = req.uri().path().strip_prefix(self.opts.path.as_str())?;
        if name != "socket.io.js" && name != "socket.io.min.js" {
            return None;
        }
        let mut res = Response::new(Full::new(bundle.clone()));
        let headers = res.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/javascript; charset=utf-8"),
        );
        headers.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=3600"),
        );
        Some(res)
    }

    async fn route<B>(self: &Arc<Self>, mut req: Request<B>) -> Result<Response<Body>, EngineError>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let query = Query::parse(req.uri().query());
        let transport = match query.transport.as_deref() {
            Some("polling") if self.opts.transports.polling => TransportKind::Polling,
            Some("websocket") if self.opts.transports.websocket => TransportKind::WebSocket,
            _ => return Err(EngineError::UnknownTransport),
        };
        if query.eio.as_deref() != Some("4") {
            return Err(EngineError::UnsupportedProtocolVersion);
        }
        let is_upgrade = ws::is_upgrade_request(&req);
        let Some(sid) = query.sid else {
            return self.handshake(req, transport, is_upgrade);
        };
        let entry = self
            .sessions
            .read()
            .get(sid.as_str())
            .cloned()
            .ok_or(EngineError::UnknownSid)?;
        match transport {
            TransportKind::Polling => {
                if entry.conn.transport() != TransportKind::Polling {
                    return Err(EngineError::BadRequest);
                }
                match *req.method() {
                    Method::GET => self.poll(&entry).await,
                    Method::POST => self.post(&entry, req.into_body()).await,
                    _ => Err(EngineError::BadRequest),
                }
            }
            TransportKind::WebSocket => {
                if !is_upgrade {
                    return Err(EngineError::BadRequest);
                }
                let (res, upgrade) = ws::accept(&mut req).ok_or(EngineError::BadRequest)?;
                let mode = if entry.conn.with_session(|s| s.can_upgrade()).0 {
                    ws::Mode::Probe(entry)
                } else {
                    // Upgraded or upgrading already: like the reference, the
                    // second WebSocket is accepted, then closed at once.
                    ws::Mode::Refuse
                };
                tokio::spawn(ws::run(self.clone(), upgrade, mode));
                Ok(res)
            }
        }
    }

    fn handshake<B>(
        self: &Arc<Self>,
        mut req: Request<B>,
        transport: TransportKind,
        is_upgrade: bool,
    ) -> Result<Response<Body>, EngineError> {
        match transport {
            TransportKind::Polling if req.method() != Method::GET => {
                return Err(EngineError::BadHandshakeMethod)
            }
            TransportKind::WebSocket if !is_upgrade => return Err(EngineError::BadRequest),
            _ => {}
        }
        if self.is_draining() {
            return Err(EngineError::ShuttingDown);
        }
        let remote_addr = req.extensions().get::<RemoteAddr>().map(|a| a.0);
        if let Some(allow) = &self.opts.allow_request {
            let (parts, body) = req.into_parts();
            if let Err(why) = allow(&parts, remote_addr) {
                tracing::debug!(%why, "handshake refused");
                return Err(EngineError::Forbidden(why));
            }
            req = Request::from_parts(parts, body);
        }
        if self.session_count() >= self.opts.max_connections {
            return Err(EngineError::TooManyConnections);
        }
        let upgrade = match transport {
            TransportKind::WebSocket => Some(ws::accept(&mut req).ok_or(EngineError::BadRequest)?),
            TransportKind::Polling => None,
        };
        let sid: Arc<str> = crate::id::random_id().into();
        // The sid stays out of logs: it is all a polling request needs.
        tracing::debug!(client = ?remote_addr, ?transport, "session opened");
        let session = Session::new(self.opts.session.clone(), transport, Instant::now());
        let info = RequestInfo {
            headers: detached_headers(req.headers()),
            uri: detached_uri(req.uri()),
            remote_addr,
        };
        let conn = Arc::new(EngineConn::new(
            sid.clone(),
            session,
            info,
            self.opts.budget.clone(),
        ));
        let open = self.open_packet(&sid, transport);
        let handler = self.handler.on_open(&conn);
        let entry = Entry { conn, handler };
        self.sessions.write().insert(sid, entry.clone());
        metrics::gauge!(crate::metrics::CONNECTIONS).increment(1.0);
        tokio::spawn(self.clone().drive_timers(entry.clone()));
        match upgrade {
            Some((res, upgrade)) => {
                tokio::spawn(ws::run(self.clone(), upgrade, ws::Mode::Fresh(entry, open)));
                Ok(res)
            }
            None => Ok(text_response(open)),
        }
    }

    fn open_packet(&self, sid: &str, transport: TransportKind) -> Bytes {
        let upgrades = if transport == TransportKind::Polling && self.opts.transports.websocket {
            "[\"websocket\"]"
        } else {
            "[]"
        };
        let cfg = &self.opts.session;
        Bytes::from(format!(
            "0{{\"sid\":\"{sid}\",\"upgrades\":{upgrades},\"pingInterval\":{},\"pingTimeout\":{},\"maxPayload\":{}}}",
            cfg.ping_interval.as_millis(),
            cfg.ping_timeout.as_millis(),
            cfg.max_payload
        ))
    }

    async fn poll(&self, entry: &Entry) -> Result<Response<Body>, EngineError> {
        let conn = &entry.conn;
        // Deadlines that passed before the timer task ran apply first: a poll
        // after the ping timeout finds the session closed.
        let (started, events) = conn.with_session(|s| {
            s.handle_timeout(Instant::now());
            s.begin_poll()
        });
        self.dispatch(entry, events);
        if started.is_err() {
            return Err(EngineError::BadRequest);
        }
        struct PollGuard<'a>(&'a EngineConn);
        impl Drop for PollGuard<'_> {
            fn drop(&mut self) {
                self.0.end_poll();
            }
        }
        let _guard = PollGuard(conn);
        loop {
            let notified = conn.outgoing.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(body) = conn.take_poll() {
                // A closed session's last frames may take more than one GET.
                if conn.is_closed() && !conn.has_queued() {
                    self.sessions.write().remove(conn.sid());
                }
                return Ok(text_response(body));
            }
            notified.await;
        }
    }

    async fn post<B>(&self, entry: &Entry, body: B) -> Result<Response<Body>, EngineError>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let limit = self.opts.session.max_payload;
        // A `Content-Length` over the limit is refused before any of the
        // body is read.
        if body.size_hint().lower() > limit as u64 {
            self.close(entry, CloseReason::TransportError);
            return Err(EngineError::PayloadTooLarge);
        }
        let read = tokio::time::timeout(
            self.opts.body_read_timeout,
            Limited::new(body, limit).collect(),
        );
        let Ok(read) = read.await else {
            tracing::debug!(sid = entry.conn.sid(), "polling body not sent in time");
            self.close(entry, CloseReason::TransportError);
            return Err(EngineError::BodyTimeout);
        };
        let bytes = match read {
            Ok(collected) => collected.to_bytes(),
            Err(e) => {
                let too_large = e
                    .downcast_ref::<http_body_util::LengthLimitError>()
                    .is_some();
                self.close(entry, CloseReason::TransportError);
                return Err(if too_large {
                    EngineError::PayloadTooLarge
                } else {
                    EngineError::BadRequest
                });
            }
        };
        let Ok(frames) = decode_payload(bytes) else {
            self.close(entry, CloseReason::ParseError);
            return Err(EngineError::BadRequest);
        };
        let now = Instant::now();
        let (result, events) = entry.conn.with_session(|s| {
            frames
                .into_iter()
                .try_for_each(|frame| s.handle_frame(frame, now))
        });
        self.dispatch(entry, events);
        // Backpressure: the client sends its next POST once this one is
        // answered, so hold the answer while the layer above is full.
        if result.is_ok() && entry.conn.reading_paused() {
            entry.conn.read_allowed().await;
        }
        match result {
            Ok(()) => Ok(text_response(Bytes::from_static(b"ok"))),
            Err(_) => Err(EngineError::BadRequest),
        }
    }

    /// Closes a session from the server side and dispatches the close.
    pub(crate) fn close(&self, entry: &Entry, reason: CloseReason) {
        let events = entry.conn.close(reason, false);
        self.dispatch(entry, events);
    }

    /// Hands the session's events to the layer above, in order.
    pub(crate) fn dispatch(&self, entry: &Entry, events: Vec<Event>) {
        for event in events {
            match event {
                Event::Message(frame) => entry.handler.on_message(frame),
                Event::Closed(reason) => {
                    let (lingers, linger) = entry
                        .conn
                        .with_session(|s| {
                            let lingers = s.transport() == TransportKind::Polling && s.has_queued();
                            (lingers, s.config().ping_interval + s.config().ping_timeout)
                        })
                        .0;
                    if lingers {
                        // A polling client fetches the close packet with its next
                        // GET; the session stays reachable until then.
                        let sid = entry.conn.sid().to_owned();
                        let engine = self.self_ref.upgrade();
                        tokio::spawn(async move {
                            tokio::time::sleep(linger).await;
                            if let Some(engine) = engine {
                                engine.sessions.write().remove(sid.as_str());
                            }
                        });
                    } else {
                        self.sessions.write().remove(entry.conn.sid());
                    }
                    metrics::gauge!(crate::metrics::CONNECTIONS).decrement(1.0);
                    entry.handler.on_close(reason);
                }
                // The probing WebSocket task watches the upgrade state itself.
                Event::Upgraded | Event::UpgradeTimedOut => {}
            }
        }
    }

    /// Looks up a live session.
    pub(crate) fn entry(&self, sid: &str) -> Option<Entry> {
        self.sessions.read().get(sid).cloned()
    }

    /// The timer task of one session: pings, ping timeout, upgrade timeout.
    async fn drive_timers(self: Arc<Self>, entry: Entry) {
        loop {
            let notified = entry.conn.timer.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            match entry.conn.poll_timeout() {
                None if entry.conn.is_closed() => return,
                None => notified.await,
                Some(deadline) => {
                    let sleep = tokio::time::sleep_until(tokio::time::Instant::from_std(deadline));
                    tokio::select! {
                        () = sleep => {
                            let (_, events) = entry.conn.handle_timeout();
                            self.dispatch(&entry, events);
                        }
                        () = notified => {}
                    }
                }
            }
        }
    }
}

fn text_response(body: Bytes) -> Response<Body> {
    let mut res = Response::new(Full::new(body));
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=UTF-8"),
    );
    res
}

/// A copy of `headers` in allocations of its own. Header values parsed by
/// hyper are slices of the connection's 8 KiB read buffer: keeping them for
/// the life of a session would keep that whole buffer alive for each one.
fn detached_headers(headers: &http::HeaderMap) -> http::HeaderMap {
    let mut copy = http::HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        let mut fresh = HeaderValue::from_maybe_shared(Bytes::copy_from_slice(value.as_bytes()))
            .unwrap_or_else(|_| value.clone());
        fresh.set_sensitive(value.is_sensitive());
        copy.append(name.clone(), fresh);
    }
    copy
}

/// A copy of `uri` in an allocation of its own (see [`detached_headers`]).
fn detached_uri(uri: &http::Uri) -> http::Uri {
    http::Uri::from_maybe_shared(Bytes::copy_from_slice(uri.to_string().as_bytes()))
        .unwrap_or_else(|_| uri.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detached_copies_keep_every_header_and_the_uri() {
        let mut headers = http::HeaderMap::new();
        headers.append(header::COOKIE, HeaderValue::from_static("a=1"));
        headers.append(header::COOKIE, HeaderValue::from_static("b=2"));
        let mut secret = HeaderValue::from_static("Bearer x");
        secret.set_sensitive(true);
        headers.insert(header::AUTHORIZATION, secret);
        headers.insert("x-custom", HeaderValue::from_static("yes"));
        let copy = detached_headers(&headers);
        assert_eq!(copy, headers);
        assert!(copy[header::AUTHORIZATION].is_sensitive());
        assert_eq!(copy.get_all(header::COOKIE).iter().count(), 2);

        let uri: http::Uri = "/socket.io/?EIO=4&transport=websocket&token=%20x"
            .parse()
            .unwrap();
        assert_eq!(detached_uri(&uri), uri);
    }
}
