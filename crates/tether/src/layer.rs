//! Mounting Tether in front of another service: [`SocketIoLayer`] answers
//! the Socket.IO endpoint and passes every other request to the inner
//! service (an axum `Router`, a tower service).
//!
//! ```no_run
//! use axum::{routing::get, Router};
//! use tether::{Config, SocketIo};
//!
//! # async fn run() -> std::io::Result<()> {
//! let io = SocketIo::new(Config::default());
//! let app = Router::new()
//!     .route("/hello", get(|| async { "hello" }))
//!     .layer(io.layer());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//! axum::serve(listener, app).await
//! # }
//! ```

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Either;

use crate::engine::{Body, BoxError, Engine};
use crate::SocketIo;

impl SocketIo {
    /// A tower [`Layer`](tower_layer::Layer) that serves the Socket.IO
    /// endpoint (the configured path) and hands every other request to the
    /// service it wraps.
    pub fn layer(&self) -> SocketIoLayer {
        SocketIoLayer {
            engine: self.engine().clone(),
        }
    }
}

/// The layer of [`SocketIo::layer`].
#[derive(Clone)]
pub struct SocketIoLayer {
    engine: Arc<Engine>,
}

impl std::fmt::Debug for SocketIoLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SocketIoLayer")
            .field("path", &self.engine.options().path)
            .finish()
    }
}

impl<S> tower_layer::Layer<S> for SocketIoLayer {
    type Service = SocketIoMiddleware<S>;

    fn layer(&self, inner: S) -> Self::Service {
        SocketIoMiddleware {
            engine: self.engine.clone(),
            inner,
        }
    }
}

/// The Socket.IO endpoint in front of `S` (see [`SocketIo::layer`]).
#[derive(Clone)]
pub struct SocketIoMiddleware<S> {
    engine: Arc<Engine>,
    inner: S,
}

impl<S> std::fmt::Debug for SocketIoMiddleware<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SocketIoMiddleware")
            .field("path", &self.engine.options().path)
            .finish_non_exhaustive()
    }
}

impl<S, B, ResBody> tower_service::Service<Request<B>> for SocketIoMiddleware<S>
where
    S: tower_service::Service<Request<B>, Response = Response<ResBody>>,
    S::Future: Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response<Either<Body, ResBody>>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        if self.engine.matches(req.uri().path()) {
            let engine = self.engine.clone();
            Box::pin(async move { Ok(engine.handle(req).await.map(Either::Left)) })
        } else {
            let fut = self.inner.call(req);
            Box::pin(async move { Ok(fut.await?.map(Either::Right)) })
        }
    }
}
