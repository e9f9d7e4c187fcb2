//! Server settings.

use std::time::Duration;

use crate::engine::{Cors, Transports};

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
