//! Serving HTTP: a standalone accept loop, and a tower service for mounting
//! Tether in an existing server (axum, hyper, tower).

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

use crate::engine::{Body, BoxError, Engine, RemoteAddr};
use crate::SocketIo;

/// A `404 Not Found` response.
pub fn not_found() -> Response<Body> {
    let mut res = Response::new(Body::from(Bytes::from_static(b"Not Found")));
    *res.status_mut() = StatusCode::NOT_FOUND;
    res
}

/// Backlog of listeners made by [`bind`] (the kernel caps it at
/// `net.core.somaxconn`).
pub const LISTEN_BACKLOG: u32 = 4096;

/// Binds a TCP listener with a backlog of [`LISTEN_BACKLOG`]: with the
/// default of 128, a burst of connections arriving while the server is busy
/// overflows the accept queue and those clients wait a whole SYN
/// retransmission (one second) to connect.
///
/// ```no_run
/// # async fn run() -> std::io::Result<()> {
/// let listener = tether::server::bind("127.0.0.1:3000".parse().unwrap()).await?;
/// # Ok(()) }
/// ```
pub async fn bind(addr: std::net::SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Settings of the HTTP server loop ([`serve_with_options`]). Every limit is
/// on by default, except the per-address connection limit.
///
/// ```
/// use std::time::Duration;
/// let opts = tether::server::ServeOptions::default()
///     .header_read_timeout(Duration::from_secs(5))
///     .write_timeout(None);
/// assert_eq!(opts.header_read_timeout, Some(Duration::from_secs(5)));
/// assert_eq!(opts.max_connections_per_ip, None);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServeOptions {
    /// How long a connection may take to send a whole request head. It runs
    /// from the moment the connection is accepted, and again from the end of
    /// each response while a keep-alive connection waits for its next
    /// request: an idle connection, or one whose headers trickle in
    /// (slowloris), is closed when it expires. It never applies while a
    /// request is being answered (a long-polling GET waits as long as it
    /// needs), nor to a WebSocket. `None`: no limit.
    pub header_read_timeout: Option<Duration>,
    /// Most TCP connections open at once from one IP address; past it a new
    /// connection is closed at once. `None`: no limit.
    pub max_connections_per_ip: Option<usize>,
    /// How long a write to a connection may stay blocked (a client that
    /// stops reading a response or a WebSocket) before the connection is
    /// closed. Longer than the WebSocket heartbeat (45 s by default), whose
    /// own timeout closes a silent WebSocket session first. `None`: no limit.
    pub write_timeout: Option<Duration>,
    /// TLS for every accepted connection (feature `tls`); the handshake
    /// must end within `header_read_timeout`. `None`: plain HTTP.
    #[cfg(feature = "tls")]
    pub tls: Option<crate::tls::Tls>,
    /// Reverse proxies whose `X-Forwarded-For` is believed: for a request
    /// from one of these networks, the client's address ([`RemoteAddr`],
    /// so `Handshake::address`) is the rightmost address of that header
    /// that is not itself a trusted proxy, with port 0 (unknown). Requests
    /// from anywhere else keep their TCP peer, whatever they send. Empty
    /// (the default): no proxy is trusted. The per-address connection limit
    /// counts TCP peers either way.
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            header_read_timeout: Some(Duration::from_secs(10)),
            max_connections_per_ip: None,
            write_timeout: Some(Duration::from_secs(60)),
            #[cfg(feature = "tls")]
            tls: None,
            trusted_proxies: Vec::new(),
        }
    }
}

impl ServeOptions {
    /// How long a connection may take to send a whole request head
    /// (`None`: no limit).
    #[must_use]
    pub fn header_read_timeout(mut self, timeout: impl Into<Option<Duration>>) -> Self {
        self.header_read_timeout = timeout.into();
        self
    }

    /// Most TCP connections open at once from one IP address (`None`: no
    /// limit).
    #[must_use]
    pub fn max_connections_per_ip(mut self, max: impl Into<Option<usize>>) -> Self {
        self.max_connections_per_ip = max.into();
        self
    }

    /// How long a write to a connection may stay blocked before the
    /// connection is closed (`None`: no limit).
    #[must_use]
    pub fn write_timeout(mut self, timeout: impl Into<Option<Duration>>) -> Self {
        self.write_timeout = timeout.into();
        self
    }

    /// Believes `X-Forwarded-For` from these networks (see
    /// [`ServeOptions::trusted_proxies`]).
    ///
    /// ```
    /// let opts = tether::server::ServeOptions::default()
    ///     .trusted_proxies(vec!["127.0.0.1/32".parse().unwrap()]);
    /// assert_eq!(opts.trusted_proxies.len(), 1);
    /// ```
    #[must_use]
    pub fn trusted_proxies(mut self, proxies: Vec<ipnet::IpNet>) -> Self {
        self.trusted_proxies = proxies;
        self
    }

    /// Serves HTTPS (and WebSocket over TLS) with `tls` (feature `tls`).
    #[cfg(feature = "tls")]
    #[must_use]
    pub fn tls(mut self, tls: crate::tls::Tls) -> Self {
        self.tls = Some(tls);
        self
    }
}

/// Accepts connections on `listener` and answers each request with `handler`,
/// until `shutdown` completes, with the default [`ServeOptions`]. WebSocket
/// upgrades are enabled, and every request carries its peer address as a
/// [`RemoteAddr`] extension.
pub async fn serve<H, F>(
    listener: TcpListener,
    handler: H,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()>
where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<Body>> + Send + 'static,
{
    serve_with_options(listener, handler, shutdown, ServeOptions::default()).await
}

/// First pause after a failed `accept`; it doubles on each failure in a row
/// up to [`ACCEPT_BACKOFF_MAX`], and starts over after a success.
pub const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(5);
/// Longest pause between two `accept` attempts while they fail.
pub const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// Counter of failed `accept` calls (out of file descriptors and the like).
pub const ACCEPT_ERRORS_METRIC: &str = crate::metrics::ACCEPT_ERRORS;
/// Counter of connections closed at once for [`ServeOptions::max_connections_per_ip`].
pub const PER_IP_REFUSED_METRIC: &str = crate::metrics::CONNECTIONS_REFUSED_PER_IP;

/// Like [`serve`], with `opts`.
///
/// When `accept` fails (`EMFILE` when the process is out of file
/// descriptors, `ENFILE`, ...) the loop pauses, from
/// [`ACCEPT_BACKOFF_MIN`] doubling up to [`ACCEPT_BACKOFF_MAX`], while the
/// connections already open are served; it logs at most one warning a
/// second (with the number of failures since the last one) and counts each
/// failure in [`ACCEPT_ERRORS_METRIC`].
pub async fn serve_with_options<H, F>(
    listener: TcpListener,
    handler: H,
    shutdown: impl Future<Output = ()>,
    opts: ServeOptions,
) -> std::io::Result<()>
where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<Body>> + Send + 'static,
{
    crate::metrics::describe();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(opts.header_read_timeout);
    let per_ip = opts.max_connections_per_ip.map(PerIp::new);
    let trusted: Arc<[ipnet::IpNet]> = opts.trusted_proxies.clone().into();
    let mut backoff = Duration::ZERO;
    let mut errors = ErrorLog::default();
    tokio::pin!(shutdown);
    loop {
        let (stream, addr) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => {
                    backoff = Duration::ZERO;
                    conn
                }
                Err(e) => {
                    // Out of file descriptors and the like: the connection
                    // waits in the backlog; keep serving the others and try
                    // again later instead of spinning.
                    metrics::counter!(crate::metrics::ACCEPT_ERRORS).increment(1);
                    errors.failed(&e);
                    backoff = (backoff * 2).clamp(ACCEPT_BACKOFF_MIN, ACCEPT_BACKOFF_MAX);
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => continue,
                        () = &mut shutdown => return Ok(()),
                    }
                }
            },
            () = &mut shutdown => return Ok(()),
        };
        let slot = match &per_ip {
            Some(per_ip) => match per_ip.take(addr.ip()) {
                Some(slot) => Some(slot),
                None => {
                    metrics::counter!(crate::metrics::CONNECTIONS_REFUSED_PER_IP).increment(1);
                    tracing::debug!(%addr, "too many connections from this address");
                    continue;
                }
            },
            None => None,
        };
        let _ = stream.set_nodelay(true);
        let handler = handler.clone();
        let http = http.clone();
        let io = WriteTimeout::new(stream, opts.write_timeout);
        let peer = Peer {
            addr,
            trusted: trusted.clone(),
        };
        #[cfg(feature = "tls")]
        if let Some(tls) = &opts.tls {
            let acceptor = tls.acceptor().clone();
            let limit = opts.header_read_timeout;
            tokio::spawn(async move {
                let _slot = slot;
                let handshake = acceptor.accept(io);
                let stream = match limit {
                    Some(limit) => match tokio::time::timeout(limit, handshake).await {
                        Ok(done) => done,
                        Err(_) => {
                            tracing::debug!(%addr, "TLS handshake timed out");
                            return;
                        }
                    },
                    None => handshake.await,
                };
                match stream {
                    Ok(stream) => serve_connection(http, stream, peer, handler).await,
                    Err(e) => tracing::debug!(%addr, error = %e, "TLS handshake failed"),
                }
            });
            continue;
        }
        tokio::spawn(async move {
            let _slot = slot;
            serve_connection(http, io, peer, handler).await;
        });
    }
}

/// The TCP peer of a connection, and the proxies whose word is taken for
/// the client's address.
struct Peer {
    addr: SocketAddr,
    trusted: Arc<[ipnet::IpNet]>,
}

impl Peer {
    /// The client's address for a request with `headers`.
    fn client(&self, headers: &http::HeaderMap) -> SocketAddr {
        if !self.trusted.iter().any(|net| net.contains(&self.addr.ip())) {
            return self.addr;
        }
        forwarded_client(headers, &self.trusted).map_or(self.addr, |ip| SocketAddr::new(ip, 0))
    }
}

/// The client named by `X-Forwarded-For` (every such header, in order):
/// from the right, the first address that is not a trusted proxy; the
/// leftmost if all are. `None` when there is no such header or an entry on
/// the way is not an address (nothing left of it can be believed).
fn forwarded_client(headers: &http::HeaderMap, trusted: &[ipnet::IpNet]) -> Option<IpAddr> {
    let mut entries = Vec::new();
    for value in headers.get_all("x-forwarded-for") {
        let value = value.to_str().ok()?;
        entries.extend(value.split(',').map(str::trim));
    }
    let mut last = None;
    for entry in entries.iter().rev() {
        let ip: IpAddr = entry.parse().ok()?;
        if !trusted.iter().any(|net| net.contains(&ip)) {
            return Some(ip);
        }
        last = Some(ip);
    }
    last
}

/// Answers the requests of one connection with `handler` until it ends.
async fn serve_connection<S, H, F>(
    http: hyper::server::conn::http1::Builder,
    io: S,
    peer: Peer,
    handler: H,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    H: Fn(Request<Incoming>) -> F + Send + Sync + 'static,
    F: Future<Output = Response<Body>> + Send + 'static,
{
    let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
        let client = peer.client(req.headers());
        req.extensions_mut().insert(RemoteAddr(client));
        let fut = handler(req);
        async move { Ok::<_, Infallible>(fut.await) }
    });
    let conn = http
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    if let Err(e) = conn.await {
        tracing::trace!(error = %e, "http connection ended");
    }
}

/// A stream whose writes fail with `TimedOut` once they stayed blocked for
/// longer than `limit` ([`ServeOptions::write_timeout`]).
#[derive(Debug)]
struct WriteTimeout<S> {
    inner: S,
    limit: Option<Duration>,
    /// Armed by the first blocked write, disarmed by any write that completes.
    stalled: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<S> WriteTimeout<S> {
    fn new(inner: S, limit: Option<Duration>) -> Self {
        Self {
            inner,
            limit,
            stalled: None,
        }
    }

    /// Passes on a write's result; a pending one arms the timer, and fails
    /// once it has expired.
    fn check<T>(
        &mut self,
        cx: &mut Context<'_>,
        poll: Poll<std::io::Result<T>>,
    ) -> Poll<std::io::Result<T>> {
        let Some(limit) = self.limit else {
            return poll;
        };
        if poll.is_ready() {
            self.stalled = None;
            return poll;
        }
        let timer = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        if timer.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "write blocked for longer than the write timeout",
            )));
        }
        Poll::Pending
    }
}

impl<S: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for WriteTimeout<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for WriteTimeout<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.check(cx, poll)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.check(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let poll = Pin::new(&mut self.inner).poll_flush(cx);
        self.check(cx, poll)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let poll = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.check(cx, poll)
    }
}

/// Rate-limited warnings of failed `accept` calls: the first one, then at
/// most one a second with the count of those not logged.
#[derive(Debug, Default)]
struct ErrorLog {
    last: Option<std::time::Instant>,
    suppressed: u64,
}

impl ErrorLog {
    const EVERY: Duration = Duration::from_secs(1);

    fn failed(&mut self, e: &std::io::Error) {
        let now = std::time::Instant::now();
        if self.last.is_some_and(|last| now - last < Self::EVERY) {
            self.suppressed += 1;
            return;
        }
        tracing::warn!(
            error = %e,
            suppressed = self.suppressed,
            "accept failed; backing off (later failures within a second are counted, not logged)"
        );
        self.last = Some(now);
        self.suppressed = 0;
    }
}

/// Open connections per IP address, for [`ServeOptions::max_connections_per_ip`].
#[derive(Debug, Clone)]
struct PerIp {
    max: usize,
    open: Arc<parking_lot::Mutex<HashMap<IpAddr, usize>>>,
}

impl PerIp {
    fn new(max: usize) -> Self {
        Self {
            max,
            open: Arc::default(),
        }
    }

    /// A slot for one more connection from `ip`, if it has fewer than `max`.
    fn take(&self, ip: IpAddr) -> Option<PerIpSlot> {
        let mut open = self.open.lock();
        let count = open.entry(ip).or_insert(0);
        if *count >= self.max {
            return None;
        }
        *count += 1;
        Some(PerIpSlot {
            ip,
            open: self.open.clone(),
        })
    }
}

/// One open connection of an address; released on drop.
#[derive(Debug)]
struct PerIpSlot {
    ip: IpAddr,
    open: Arc<parking_lot::Mutex<HashMap<IpAddr, usize>>>,
}

impl Drop for PerIpSlot {
    fn drop(&mut self) {
        let mut open = self.open.lock();
        if let Some(count) = open.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// Raises the soft limit of open files (`RLIMIT_NOFILE`) to the hard limit,
/// and returns the new soft limit: each connection costs one file
/// descriptor, and the usual soft default (1024) is far below what a server
/// holds. Best effort: on error the limit stays as it was.
pub fn raise_fd_limit() -> std::io::Result<u64> {
    rlimit::increase_nofile_limit(u64::MAX)
}

impl SocketIo {
    /// Serves the endpoint on `listener` forever (other paths answer 404).
    pub async fn serve(self, listener: TcpListener) -> std::io::Result<()> {
        self.serve_with_shutdown(listener, std::future::pending())
            .await
    }

    /// Serves the endpoint until `shutdown` completes.
    pub async fn serve_with_shutdown(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> std::io::Result<()> {
        let service = self.service();
        serve(listener, move |req| service.clone().handle(req), shutdown).await
    }

    /// A tower service answering the endpoint's requests (others get 404),
    /// to mount under the configured path in an existing server.
    pub fn service(&self) -> SocketIoService {
        SocketIoService {
            engine: self.engine().clone(),
        }
    }
}

/// The Socket.IO endpoint as a tower [`Service`](tower_service::Service).
#[derive(Clone)]
pub struct SocketIoService {
    engine: Arc<Engine>,
}

impl std::fmt::Debug for SocketIoService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SocketIoService").finish_non_exhaustive()
    }
}

impl SocketIoService {
    /// Answers one request.
    pub async fn handle<B>(self, req: Request<B>) -> Response<Body>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        if self.engine.matches(req.uri().path()) {
            self.engine.handle(req).await
        } else {
            not_found()
        }
    }
}

impl<B> tower_service::Service<Request<B>> for SocketIoService
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let this = self.clone();
        Box::pin(async move { Ok(this.handle(req).await) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&str]) -> http::HeaderMap {
        let mut map = http::HeaderMap::new();
        for v in values {
            map.append("x-forwarded-for", v.parse().unwrap());
        }
        map
    }

    fn nets(list: &[&str]) -> Vec<ipnet::IpNet> {
        list.iter().map(|n| n.parse().unwrap()).collect()
    }

    #[test]
    fn the_client_is_the_rightmost_untrusted_forwarded_address() {
        let trusted = nets(&["127.0.0.1/32", "10.0.0.0/8"]);
        let client = |v: &[&str]| forwarded_client(&headers(v), &trusted);
        assert_eq!(
            client(&["203.0.113.7"]),
            Some("203.0.113.7".parse().unwrap())
        );
        // What the client sent itself, left of what the proxies added, is
        // not believed.
        assert_eq!(
            client(&["6.6.6.6, 203.0.113.7, 10.1.2.3"]),
            Some("203.0.113.7".parse().unwrap())
        );
        assert_eq!(
            client(&["6.6.6.6", "203.0.113.7"]),
            Some("203.0.113.7".parse().unwrap())
        );
        assert_eq!(
            client(&["10.0.0.9, 127.0.0.1"]),
            Some("10.0.0.9".parse().unwrap())
        );
        assert_eq!(
            client(&["2001:db8::1"]),
            Some("2001:db8::1".parse().unwrap())
        );
        assert_eq!(client(&[]), None);
        // Garbage on the way: nothing from there on is believed.
        assert_eq!(client(&["203.0.113.7, junk"]), None);
        assert_eq!(
            client(&["junk, 203.0.113.7"]),
            Some("203.0.113.7".parse().unwrap())
        );
    }

    #[test]
    fn only_a_trusted_peer_is_believed() {
        let peer = |addr: &str| Peer {
            addr: addr.parse().unwrap(),
            trusted: nets(&["127.0.0.1/32"]).into(),
        };
        let forwarded = headers(&["203.0.113.7"]);
        assert_eq!(
            peer("127.0.0.1:5000").client(&forwarded),
            "203.0.113.7:0".parse().unwrap()
        );
        assert_eq!(
            peer("127.0.0.2:5000").client(&forwarded),
            "127.0.0.2:5000".parse().unwrap()
        );
        assert_eq!(
            peer("127.0.0.1:5000").client(&http::HeaderMap::new()),
            "127.0.0.1:5000".parse().unwrap()
        );
    }
}
