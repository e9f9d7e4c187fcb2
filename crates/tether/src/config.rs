//! Server settings.

use std::time::Duration;

use http::{header, HeaderMap, HeaderValue, Response, StatusCode};

use crate::engine::Body;

/// Which Engine.IO transports clients may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transports {
    /// HTTP long-polling.
    pub polling: bool,
    /// WebSocket.
    pub websocket: bool,
}

impl Default for Transports {
    fn default() -> Self {
        Self {
            polling: true,
            websocket: true,
        }
    }
}

/// Cross-origin policy. The default allows no other origin: browsers may only
/// connect from pages served by the same origin.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cors {
    /// Origins allowed to connect (`https://app.example.com`); `*` allows any
    /// origin (without credentials).
    pub origins: Vec<String>,
    /// Whether browsers may send cookies and auth headers.
    pub credentials: bool,
}

impl Cors {
    fn allowed(&self, origin: Option<&HeaderValue>) -> Option<HeaderValue> {
        let origin = origin?;
        let text = origin.to_str().ok()?;
        if self.origins.iter().any(|o| o == text) {
            Some(origin.clone())
        } else if !self.credentials && self.origins.iter().any(|o| o == "*") {
            Some(HeaderValue::from_static("*"))
        } else {
            None
        }
    }

    /// Whether a request with these headers may reach the endpoint: it has
    /// no `Origin` (not a browser, or a same-origin GET), its `Origin` is
    /// the request's own (its host and port are the `Host` header, or the
    /// first `X-Forwarded-Host` of a reverse proxy), or the
    /// origin is allowed (listed, or `*`). Browsers send `Origin` on every
    /// WebSocket upgrade and cross-origin request, so this refuses pages of
    /// other sites (cross-site WebSocket hijacking) even where CORS does not
    /// apply.
    pub fn allows_request(&self, headers: &HeaderMap) -> bool {
        let Some(origin) = headers.get(header::ORIGIN) else {
            return true;
        };
        let Ok(text) = origin.to_str() else {
            return false;
        };
        if self.origins.iter().any(|o| o == text || o == "*") {
            return true;
        }
        // Behind a reverse proxy that rewrites `Host`, the public host is in
        // `X-Forwarded-Host`. A page cannot forge either: browsers set `Host`
        // themselves, add no header to a WebSocket upgrade, and send a
        // cross-origin request with a custom header only after a preflight,
        // which the endpoint refuses to foreign origins.
        let forwarded = headers
            .get("x-forwarded-host")
            .and_then(|h| h.to_str().ok())
            .and_then(|h| h.split(',').next());
        let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
        [host, forwarded]
            .into_iter()
            .flatten()
            .any(|host| same_origin(text, host))
    }

    /// Adds the CORS headers of an allowed origin to a response.
    pub(crate) fn apply(&self, origin: Option<&HeaderValue>, headers: &mut HeaderMap) {
        if let Some(allowed) = self.allowed(origin) {
            headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, allowed);
            headers.insert(header::VARY, HeaderValue::from_static("Origin"));
            if self.credentials {
                headers.insert(
                    header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                    HeaderValue::from_static("true"),
                );
            }
        }
    }

    /// The answer to a preflight `OPTIONS` request.
    pub(crate) fn preflight(&self, origin: Option<&HeaderValue>) -> Response<Body> {
        let mut res = Response::new(Body::default());
        if self.allowed(origin).is_none() {
            *res.status_mut() = StatusCode::FORBIDDEN;
            return res;
        }
        *res.status_mut() = StatusCode::NO_CONTENT;
        let headers = res.headers_mut();
        self.apply(origin, headers);
        // The reference server's list: a browser that sends another method
        // than GET or POST gets the protocol's 400 ("Bad handshake method")
        // instead of an opaque CORS failure.
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET, HEAD, PUT, PATCH, POST, DELETE"),
        );
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static("content-type"),
        );
        res
    }
}

/// True when `origin` (`http://host[:port]`) names the same host and port as
/// the `Host` header `host` (default ports omitted or not, any case).
fn same_origin(origin: &str, host: &str) -> bool {
    let (rest, default_port) = if let Some(rest) = origin.strip_prefix("http://") {
        (rest, ":80")
    } else if let Some(rest) = origin.strip_prefix("https://") {
        (rest, ":443")
    } else {
        return false;
    };
    let trim = |h: &str| {
        let h = h.trim().trim_end_matches('.');
        h.strip_suffix(default_port)
            .unwrap_or(h)
            .to_ascii_lowercase()
    };
    !rest.contains('/') && trim(rest) == trim(host)
}

/// Settings of a Socket.IO server. Every limit is on by default.
///
/// Built from [`Config::default`] with one chainable setter per field; the
/// fields stay public for reading (and for changing a `Config` in place).
///
/// ```
/// use std::time::Duration;
/// let config = tether::Config::default()
///     .ping_interval(Duration::from_secs(10))
///     .max_connections(10_000);
/// assert_eq!(config.ping_interval, Duration::from_secs(10));
/// assert_eq!(config.path, "/socket.io/");
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    /// Path of the endpoint, with a trailing slash.
    pub path: String,
    /// Time between two server pings.
    pub ping_interval: Duration,
    /// How long to wait for a pong.
    pub ping_timeout: Duration,
    /// Largest message or polling body accepted from a client, in bytes.
    pub max_payload: usize,
    /// How long an upgrade to WebSocket may take.
    pub upgrade_timeout: Duration,
    /// Most bytes queued for one client.
    pub max_buffer: usize,
    /// Most bytes queued for all clients together: frames waiting to be
    /// written, live events held by sockets catching up, store pages being
    /// read for them. Stored events never take it past this: a socket that
    /// would go over is paused and caught up from the store later (each
    /// connection may still have 64 KiB queued and 64 KiB of live events
    /// held while catching up, so that clients that stopped reading cannot
    /// starve the others). Frames that cannot wait (acks,
    /// pings, events of a server without a store) are counted, not refused.
    /// `usize::MAX`: no limit. Default 256 MiB.
    pub max_buffer_total: usize,
    /// Most simultaneous connections.
    pub max_connections: usize,
    /// Most binary attachments in one packet.
    pub max_attachments: usize,
    /// Most events of one socket waiting for their handler. Past half of it
    /// the server stops reading from the client until the handlers caught up
    /// (to a quarter): a client sending faster than its handlers run is
    /// slowed down, not dropped. Past all of it (only a long-polling POST
    /// carrying that many packets gets there) the connection closes.
    pub max_queued_events: usize,
    /// How long a client may take to send the whole body of a long-polling
    /// POST; past it the request answers 408 and the session closes.
    pub body_read_timeout: Duration,
    /// How long a client may take to connect to a namespace after the handshake.
    pub connect_timeout: Duration,
    /// Default timeout of acknowledgements requested by the server.
    pub ack_timeout: Duration,
    /// Allowed transports.
    pub transports: Transports,
    /// Cross-origin policy.
    pub cors: Cors,
    /// The Socket.IO parser.
    pub parser: tether_proto::socketio::Parser,
    /// Connection state recovery and guaranteed delivery (off by default;
    /// [`crate::SocketIo::with_store`] turns it on).
    pub recovery: Option<crate::Recovery>,
    /// How long stored events (and idempotency records) are kept.
    pub retention: crate::store::Retention,
    /// Streams (rooms) kept by their own retention instead of `retention`
    /// (see [`crate::store::StreamRetention`]); enforced in the background
    /// with the default one. Needs a store that supports it (SQLite, memory).
    pub stream_retention: Vec<crate::store::StreamRetention>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            path: "/socket.io/".into(),
            ping_interval: Duration::from_millis(25_000),
            ping_timeout: Duration::from_millis(20_000),
            max_payload: 1_000_000,
            upgrade_timeout: Duration::from_millis(10_000),
            max_buffer: 4 * 1024 * 1024,
            max_buffer_total: 256 * 1024 * 1024,
            max_connections: 100_000,
            max_attachments: 64,
            max_queued_events: 1_024,
            body_read_timeout: Duration::from_secs(20),
            connect_timeout: Duration::from_millis(45_000),
            ack_timeout: Duration::from_millis(10_000),
            transports: Transports::default(),
            cors: Cors::default(),
            parser: tether_proto::socketio::Parser::Json,
            recovery: None,
            retention: crate::store::Retention {
                max_age: Some(Duration::from_secs(24 * 3600)),
                max_count: None,
            },
            stream_retention: Vec::new(),
        }
    }
}

impl Config {
    /// The path of the endpoint (`/socket.io/`), with a trailing slash.
    #[must_use]
    pub fn path(mut self, path: impl Into<String>) -> Self {
        self.path = path.into();
        self
    }

    /// The time between two server pings.
    #[must_use]
    pub fn ping_interval(mut self, ping_interval: Duration) -> Self {
        self.ping_interval = ping_interval;
        self
    }

    /// How long to wait for a pong.
    #[must_use]
    pub fn ping_timeout(mut self, ping_timeout: Duration) -> Self {
        self.ping_timeout = ping_timeout;
        self
    }

    /// The largest message or polling body accepted from a client, in bytes.
    #[must_use]
    pub fn max_payload(mut self, max_payload: usize) -> Self {
        self.max_payload = max_payload;
        self
    }

    /// How long an upgrade to WebSocket may take.
    #[must_use]
    pub fn upgrade_timeout(mut self, upgrade_timeout: Duration) -> Self {
        self.upgrade_timeout = upgrade_timeout;
        self
    }

    /// The most bytes queued for one client.
    #[must_use]
    pub fn max_buffer(mut self, max_buffer: usize) -> Self {
        self.max_buffer = max_buffer;
        self
    }

    /// The most bytes queued for all clients together: frames waiting to be written, live events held by sockets catching up, store pages being read (see the field).
    #[must_use]
    pub fn max_buffer_total(mut self, max_buffer_total: usize) -> Self {
        self.max_buffer_total = max_buffer_total;
        self
    }

    /// The most simultaneous connections.
    #[must_use]
    pub fn max_connections(mut self, max_connections: usize) -> Self {
        self.max_connections = max_connections;
        self
    }

    /// The most binary attachments in one packet.
    #[must_use]
    pub fn max_attachments(mut self, max_attachments: usize) -> Self {
        self.max_attachments = max_attachments;
        self
    }

    /// The most events of one socket waiting for their handler (see the field).
    #[must_use]
    pub fn max_queued_events(mut self, max_queued_events: usize) -> Self {
        self.max_queued_events = max_queued_events;
        self
    }

    /// How long a client may take to send the body of a long-polling POST.
    #[must_use]
    pub fn body_read_timeout(mut self, body_read_timeout: Duration) -> Self {
        self.body_read_timeout = body_read_timeout;
        self
    }

    /// How long a client may take to connect to a namespace after the handshake.
    #[must_use]
    pub fn connect_timeout(mut self, connect_timeout: Duration) -> Self {
        self.connect_timeout = connect_timeout;
        self
    }

    /// The default timeout of acknowledgements requested by the server.
    #[must_use]
    pub fn ack_timeout(mut self, ack_timeout: Duration) -> Self {
        self.ack_timeout = ack_timeout;
        self
    }

    /// The transports clients may use.
    #[must_use]
    pub fn transports(mut self, transports: Transports) -> Self {
        self.transports = transports;
        self
    }

    /// The cross-origin policy.
    #[must_use]
    pub fn cors(mut self, cors: Cors) -> Self {
        self.cors = cors;
        self
    }

    /// The Socket.IO parser.
    #[must_use]
    pub fn parser(mut self, parser: tether_proto::socketio::Parser) -> Self {
        self.parser = parser;
        self
    }

    /// Connection state recovery settings (`None`: off). A server with a
    /// store ([`crate::SocketIo::with_store`]) has recovery on, with these
    /// settings or the default ones.
    ///
    /// ```
    /// let config = tether::Config::default()
    ///     .recovery(tether::Recovery::default().skip_middlewares(false));
    /// assert!(config.recovery.is_some_and(|r| !r.skip_middlewares));
    /// ```
    #[must_use]
    pub fn recovery(mut self, recovery: impl Into<Option<crate::Recovery>>) -> Self {
        self.recovery = recovery.into();
        self
    }

    /// How long stored events (and idempotency records) are kept.
    #[must_use]
    pub fn retention(mut self, retention: crate::store::Retention) -> Self {
        self.retention = retention;
        self
    }

    /// Streams (rooms) kept by their own retention instead of the default
    /// one (see [`crate::store::StreamRetention`]).
    #[must_use]
    pub fn stream_retention(
        mut self,
        stream_retention: impl IntoIterator<Item = crate::store::StreamRetention>,
    ) -> Self {
        self.stream_retention = stream_retention.into_iter().collect();
        self
    }

    /// The Engine.IO options these settings give.
    pub fn engine_options(&self) -> crate::engine::EngineOptions {
        crate::engine::EngineOptions {
            path: self.path.clone(),
            session: tether_proto::engine::EngineConfig {
                ping_interval: self.ping_interval,
                ping_timeout: self.ping_timeout,
                max_payload: self.max_payload,
                upgrade_timeout: self.upgrade_timeout,
                max_buffer: self.max_buffer,
            },
            transports: self.transports,
            allow_request: None,
            max_connections: self.max_connections,
            cors: self.cors.clone(),
            client_bundle: None,
            budget: std::sync::Arc::new(crate::engine::SendBudget::new(self.max_buffer_total)),
            body_read_timeout: self.body_read_timeout,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(origin: Option<&'static str>, host: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static(host));
        if let Some(o) = origin {
            h.insert(header::ORIGIN, HeaderValue::from_static(o));
        }
        h
    }

    #[test]
    fn origins_allowed_by_default_are_none_and_the_own() {
        let cors = Cors::default();
        assert!(cors.allows_request(&headers(None, "127.0.0.1:3000")));
        assert!(cors.allows_request(&headers(Some("http://127.0.0.1:3000"), "127.0.0.1:3000")));
        assert!(cors.allows_request(&headers(Some("http://Chat.Example"), "chat.example:80")));
        assert!(cors.allows_request(&headers(Some("https://chat.example"), "chat.example")));
        assert!(!cors.allows_request(&headers(Some("https://chat.example"), "chat.example:80")));
        assert!(!cors.allows_request(&headers(Some("http://127.0.0.1:3001"), "127.0.0.1:3000")));
        assert!(!cors.allows_request(&headers(Some("http://evil.example"), "chat.example")));
        assert!(!cors.allows_request(&headers(Some("null"), "chat.example")));
        let mut proxied = headers(Some("https://chat.example"), "127.0.0.1:3000");
        proxied.insert("x-forwarded-host", HeaderValue::from_static("chat.example"));
        assert!(cors.allows_request(&proxied));
        let mut no_host = HeaderMap::new();
        no_host.insert(header::ORIGIN, HeaderValue::from_static("http://a.example"));
        assert!(!cors.allows_request(&no_host));
    }

    #[test]
    fn listed_origins_and_star_are_allowed() {
        let listed = Cors {
            origins: vec!["http://app.example".into()],
            credentials: true,
        };
        assert!(listed.allows_request(&headers(Some("http://app.example"), "api.example")));
        assert!(!listed.allows_request(&headers(Some("http://evil.example"), "api.example")));
        let any = Cors {
            origins: vec!["*".into()],
            credentials: false,
        };
        assert!(any.allows_request(&headers(Some("http://evil.example"), "api.example")));
    }
}
