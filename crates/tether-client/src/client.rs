//! The entry point: [`Client::builder`].

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderName, HeaderValue};
use tether_proto::socketio::Parser;

use crate::backoff::Reconnection;
use crate::durable::StateFile;
use crate::engine::{EngineOptions, Transport};
use crate::error::Error;
use crate::manager::{Manager, ManagerConfig};
use crate::offset::OffsetRule;
use crate::socket::{Auth, Event, Socket, SocketOptions};
use crate::stream::Stream;
use crate::url::ServerUrl;

type PendingHandler = Box<dyn FnOnce(&Socket) + Send>;

/// Builds a [`Client`]: a [`Manager`] and the socket of the URL's namespace.
///
/// ```no_run
/// # async fn demo() -> Result<(), tether_client::Error> {
/// use std::time::Duration;
/// use tether_client::{Client, Reconnection, Transport};
///
/// let client = Client::builder("http://127.0.0.1:3000/")
///     .transports([Transport::WebSocket])
///     .auth(serde_json::json!({ "token": "t1" }))
///     .reconnection(Reconnection { delay: Duration::from_millis(200), ..Default::default() })
///     .ack_timeout(Duration::from_secs(5))
///     .retries(3)
///     .on("chat message", |ev| async move { println!("{:?}", ev.args()) })
///     .build()
///     .await?;
/// client.emit("chat message", ("hello",)).ok();
/// # Ok(()) }
/// ```
pub struct ClientBuilder {
    url: String,
    path: String,
    transports: Vec<Transport>,
    upgrade: bool,
    query: Vec<(String, String)>,
    headers: Vec<(String, String)>,
    reconnection: Reconnection,
    parser: Parser,
    open_timeout: Duration,
    max_attachments: usize,
    max_message: usize,
    socket: SocketOptions,
    handlers: Vec<PendingHandler>,
    connect: bool,
    state_file: Option<PathBuf>,
    tls_roots: Vec<Vec<u8>>,
    tls_config: Option<Arc<rustls::ClientConfig>>,
}

impl std::fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("url", &self.url)
            .field("transports", &self.transports)
            .finish_non_exhaustive()
    }
}

impl ClientBuilder {
    fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            path: "/socket.io/".into(),
            transports: vec![Transport::Polling, Transport::WebSocket],
            upgrade: true,
            query: Vec::new(),
            headers: Vec::new(),
            reconnection: Reconnection::default(),
            parser: Parser::Json,
            open_timeout: Duration::from_secs(20),
            max_attachments: 1000,
            max_message: 100 * 1024 * 1024,
            socket: SocketOptions::default(),
            handlers: Vec::new(),
            connect: true,
            state_file: None,
            tls_roots: Vec::new(),
            tls_config: None,
        }
    }

    /// The endpoint path (`/socket.io/` by default).
    pub fn path(mut self, path: impl Into<String>) -> Self {
        let mut path = path.into();
        if !path.starts_with('/') {
            path.insert(0, '/');
        }
        if !path.ends_with('/') {
            path.push('/');
        }
        self.path = path;
        self
    }

    /// Transports in order: `[Polling, WebSocket]` (the default) opens with
    /// polling and upgrades; `[WebSocket]` uses WebSocket only; `[Polling]`
    /// polling only.
    pub fn transports(mut self, transports: impl IntoIterator<Item = Transport>) -> Self {
        self.transports = transports.into_iter().collect();
        self
    }

    /// Whether a polling connection upgrades to WebSocket (default true).
    pub fn upgrade(mut self, upgrade: bool) -> Self {
        self.upgrade = upgrade;
        self
    }

    /// Adds a query parameter to every Engine.IO request.
    pub fn query(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.query.push((key.into(), value.into()));
        self
    }

    /// Adds a header to every HTTP request and to the WebSocket handshake.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// The auth payload, sent with every CONNECT: a JSON value, or an
    /// [`Auth::from_fn`] closure evaluated at each connect.
    pub fn auth(mut self, auth: impl Into<Auth>) -> Self {
        self.socket.auth = auth.into();
        self
    }

    /// Auth computed at each connect.
    pub fn auth_with<F, Fut>(self, f: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = serde_json::Value> + Send + 'static,
    {
        self.auth(Auth::from_fn(f))
    }

    /// Reconnection settings.
    pub fn reconnection(mut self, reconnection: Reconnection) -> Self {
        self.reconnection = reconnection;
        self
    }

    /// The Socket.IO parser (JSON by default; msgpack must match the server).
    pub fn parser(mut self, parser: Parser) -> Self {
        self.parser = parser;
        self
    }

    /// How long each connection attempt may take (20 s by default).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.open_timeout = timeout;
        self
    }

    /// Default timeout of acknowledgements (and of each try of the retry queue).
    pub fn ack_timeout(mut self, timeout: Duration) -> Self {
        self.socket.ack_timeout = Some(timeout);
        self
    }

    /// Sends every emit through the retry queue, tried up to `retries + 1` times.
    pub fn retries(mut self, retries: u32) -> Self {
        self.socket.retries = Some(retries);
        self
    }

    /// Most emits buffered while disconnected (1024 by default).
    pub fn buffer_capacity(mut self, capacity: usize) -> Self {
        self.socket.buffer_capacity = capacity;
        self
    }

    /// How recovery offsets are recognised (see [`OffsetRule`]).
    pub fn offsets(mut self, rule: OffsetRule) -> Self {
        self.socket.offsets = rule;
        self
    }

    /// Default options of the sockets of other namespaces too
    /// ([`Manager::socket`]).
    pub fn socket_options(mut self, opts: SocketOptions) -> Self {
        self.socket = opts;
        self
    }

    /// Most binary attachments accepted in one packet (1000 by default).
    pub fn max_attachments(mut self, max: usize) -> Self {
        self.max_attachments = max;
        self
    }

    /// Registers a handler before connecting, so that events sent right at
    /// connection are not missed.
    pub fn on<F, Fut>(mut self, event: impl Into<String>, handler: F) -> Self
    where
        F: Fn(Event) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let event = event.into();
        self.handlers
            .push(Box::new(move |socket: &Socket| socket.on(event, handler)));
        self
    }

    /// Registers the handler of an inbox event before connecting (pending
    /// entries come right at connection); see [`Socket::on_inbox`].
    pub fn on_inbox<F, Fut>(mut self, event: impl Into<String>, handler: F) -> Self
    where
        F: Fn(Event) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let event = event.into();
        self.handlers.push(Box::new(move |socket: &Socket| {
            socket.on_inbox(event, handler)
        }));
        self
    }

    /// Follows a server delivery stream (see [`Stream`]): its last position
    /// is sent as `auth[field]` at every connect (overriding the auth
    /// payload's field), and events at or before it are dropped. With a
    /// state file, the position is saved once each event is handled and
    /// read back at the next start.
    pub fn stream(mut self, stream: Stream) -> Self {
        self.socket.streams.push(stream);
        self
    }

    /// Keeps the client's durable state in a SQLite file (created if
    /// needed; one client at a time per file):
    ///
    /// - the **outbox**: every [`Socket::emit_reliable`] is recorded (with
    ///   its message id) before it is sent, and removed once acknowledged.
    ///   Entries left by an earlier run are sent again first, in order, with
    ///   their ids, when a socket of their namespace is created. An outbox
    ///   entry is tried until acknowledged (`ack_timeout` per try, no
    ///   `retries` limit); if its socket is closed first, it and every later
    ///   entry stay in the file for the next run.
    /// - the positions of the [`Stream`]s, saved as events are handled.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// use tether_client::{Client, Position, Stream};
    ///
    /// let client = Client::builder("https://chat.example.com")
    ///     .state_file("client-state.db")
    ///     .stream(Stream::new("serverOffset").event("chat message").position(Position::Arg(1)))
    ///     .on("chat message", |ev| async move { println!("{:?}", ev.args()) })
    ///     .build()
    ///     .await?;
    /// // Resumes numbering after a crash: every message below this count is
    /// // stored by the server or still in the outbox (sent again first).
    /// let next = client.manager().outbox_recorded().unwrap_or(0);
    /// client.emit_reliable("chat message", (format!("line {next}"),)).await?;
    /// client.manager().sync_state().await?;
    /// # Ok(()) }
    /// ```
    pub fn state_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.state_file = Some(path.into());
        self
    }

    /// Trusts a root certificate (DER) for `https`/`wss` URLs, besides the
    /// Mozilla roots (webpki-roots) trusted by default: a private CA, or a
    /// self-signed server certificate.
    pub fn tls_root_certificate(mut self, der: impl Into<Vec<u8>>) -> Self {
        self.tls_roots.push(der.into());
        self
    }

    /// The complete TLS settings for `https`/`wss` URLs (replacing the
    /// default ones and [`ClientBuilder::tls_root_certificate`]): client
    /// certificates, other roots, another crypto provider.
    pub fn tls_config(mut self, config: Arc<rustls::ClientConfig>) -> Self {
        self.tls_config = Some(config);
        self
    }

    /// Whether [`ClientBuilder::build`] connects (default true). Without,
    /// call [`Socket::connect`] on the client.
    pub fn connect(mut self, connect: bool) -> Self {
        self.connect = connect;
        self
    }

    /// Creates the client and connects to the URL's namespace (following
    /// the reconnection settings when the server is unreachable).
    pub async fn build(self) -> Result<Client, Error> {
        let url = ServerUrl::parse(&self.url)?;
        let mut headers = http::HeaderMap::new();
        for (name, value) in &self.headers {
            let name = HeaderName::try_from(name.as_str())
                .map_err(|e| Error::InvalidHeader(format!("{name}: {e}")))?;
            let value = HeaderValue::try_from(value.as_str())
                .map_err(|e| Error::InvalidHeader(format!("{name}: {e}")))?;
            headers.append(name, value);
        }
        if self.transports.is_empty() {
            return Err(Error::Open(crate::error::EngineError::NoTransport));
        }
        let tls = match (url.secure, self.tls_config) {
            (false, _) => None,
            (true, Some(config)) => Some(config),
            (true, None) => {
                let roots: Vec<_> = self
                    .tls_roots
                    .into_iter()
                    .map(rustls::pki_types::CertificateDer::from)
                    .collect();
                Some(crate::tls::client_config(&roots)?)
            }
        };
        let mut query = url.query.clone();
        query.extend(self.query);
        let engine = EngineOptions {
            secure: url.secure,
            host: url.host.clone(),
            port: url.port,
            path: self.path,
            query,
            headers,
            transports: self.transports,
            upgrade: self.upgrade,
            open_timeout: self.open_timeout,
            max_message: self.max_message,
            tls,
        };
        let state_file = match self.state_file {
            Some(path) => Some(Arc::new(
                tokio::task::spawn_blocking(move || StateFile::open(&path))
                    .await
                    .map_err(|_| Error::Closed)??,
            )),
            None => None,
        };
        let manager = Manager::start(ManagerConfig {
            engine,
            parser: self.parser,
            reconnection: self.reconnection,
            defaults: self.socket,
            max_attachments: self.max_attachments,
            state_file,
        });
        let socket = manager.socket(&url.nsp);
        for register in self.handlers {
            register(&socket);
        }
        if self.connect {
            socket.connect().await?;
        }
        Ok(Client { manager, socket })
    }
}

/// A Socket.IO client: a [`Manager`] (the connection) and the [`Socket`] of
/// the URL's namespace, which it dereferences to.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let client = tether_client::Client::builder("http://127.0.0.1:3000").build().await?;
/// let ack = client.emit_with_ack("echo", ("hi", 1)).await?;
/// let (s, n): (String, u32) = ack.parse()?;
/// client.close();
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Client {
    manager: Manager,
    socket: Socket,
}

impl Client {
    /// Starts building a client for `url` (`http(s)://host:port/namespace?query`).
    pub fn builder(url: impl Into<String>) -> ClientBuilder {
        ClientBuilder::new(url)
    }

    /// The socket of the URL's namespace.
    pub fn socket(&self) -> &Socket {
        &self.socket
    }

    /// The manager (the connection, and the sockets of other namespaces).
    pub fn manager(&self) -> &Manager {
        &self.manager
    }

    /// Closes the connection (no reconnection).
    pub fn close(&self) {
        self.manager.close();
    }
}

impl std::ops::Deref for Client {
    type Target = Socket;
    fn deref(&self) -> &Socket {
        &self.socket
    }
}
