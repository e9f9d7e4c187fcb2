//! The Socket.IO tutorial's chat with every message stored and nothing lost,
//! standalone: one SQLite file, or a Redis server shared by several nodes.
//!
//! ```sh
//! cargo run --example chat -- 3000                 # SQLite file chat.db
//! cargo run --example chat --features redis -- 3001 redis://127.0.0.1:6379/
//! cargo run --example chat --features redis -- 3002 redis://127.0.0.1:6379/
//! ```
//!
//! Open http://127.0.0.1:3000/. With Redis, every node started on the same
//! server is one cluster: a message sent to one node reaches the pages of
//! every node, and a page that moves to another node catches up there.

mod tutorial;

use std::sync::Arc;

use http::{header, HeaderValue, Response};
use tether::engine::Body;
use tether::SocketIo;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let port: u16 = args.next().map_or(Ok(3000), |p| p.parse())?;
    let store = args.next().unwrap_or_else(|| "chat.db".into());

    let mut io = SocketIo::builder();
    if store.starts_with("redis://") {
        io = with_redis(io, &store)?;
    } else {
        let file = tether::store::SqliteStore::open(&store, Default::default())?;
        io = io.store(Arc::new(file));
    }
    if let Some(js) = tutorial::client_bundle() {
        io = io.client_bundle(js);
    }
    let io = io.build()?;
    tutorial::chat(&io);

    // The page at `/`, Socket.IO at `/socket.io/`.
    let service = io.service();
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    println!(
        "listening on http://{}/ (store: {store})",
        listener.local_addr()?
    );
    let handler = move |req: http::Request<_>| {
        let service = service.clone();
        async move {
            if req.uri().path() == "/" {
                let mut page = Response::new(Body::from(tutorial::PAGE));
                page.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/html; charset=utf-8"),
                );
                page
            } else {
                service.handle(req).await
            }
        }
    };
    tether::server::serve(listener, handler, std::future::pending()).await?;
    Ok(())
}

/// A cluster node on the Redis server at `url`: the store every node shares,
/// and the cluster layer for what is not stored (fetch_sockets, volatile emits).
#[cfg(feature = "redis")]
fn with_redis(
    io: tether::Builder,
    url: &str,
) -> Result<tether::Builder, Box<dyn std::error::Error>> {
    let store = Arc::new(tether::store::RedisStore::connect(url, "tether-chat")?);
    Ok(io.cluster(store, Default::default()))
}

#[cfg(not(feature = "redis"))]
fn with_redis(
    _io: tether::Builder,
    url: &str,
) -> Result<tether::Builder, Box<dyn std::error::Error>> {
    Err(format!("{url}: build with `--features redis` for the Redis store").into())
}
