//! Serving HTTP: a standalone accept loop, and a tower service for mounting
//! Tether in an existing server (axum, hyper, tower).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
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

/// Accepts connections on `listener` and answers each request with `handler`,
/// until `shutdown` completes. WebSocket upgrades are enabled, and every
/// request carries its peer address as a [`RemoteAddr`] extension.
pub async fn serve<H, F>(
    listener: TcpListener,
    handler: H,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()>
where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<Body>> + Send + 'static,
{
    tokio::pin!(shutdown);
    loop {
        let (stream, addr) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of file descriptors and the like: keep serving the others.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::task::yield_now().await;
                    continue;
                }
            },
            () = &mut shutdown => return Ok(()),
        };
        let _ = stream.set_nodelay(true);
        let handler = handler.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
                req.extensions_mut().insert(RemoteAddr(addr));
                let fut = handler(req);
                async move { Ok::<_, Infallible>(fut.await) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades();
            if let Err(e) = conn.await {
                tracing::trace!(error = %e, "http connection ended");
            }
        });
    }
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
