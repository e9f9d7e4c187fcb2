//! The cluster's transport on Redis: pub/sub channels, and a sorted set of
//! heartbeats. Every Redis-specific line of the cluster is here.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use redis::aio::{ConnectionManager, ConnectionManagerConfig, PubSubSink, PubSubStream};
use redis::Client;

use super::transport::{BoxFuture, Channel, Subscription, Transport};
use super::{ClusterError, ClusterStore};
use crate::error::TransportError;
use crate::store::RedisStore;

/// Bound on one Redis command of the cluster layer.
const OP_TIMEOUT: Duration = Duration::from_secs(3);

/// The cluster's [`Transport`] on Redis, under a key prefix: channels
/// `<prefix>:cluster:all` and `<prefix>:cluster:node:<id>`, and the sorted
/// set `<prefix>:cluster:nodes` of heartbeats (scored by last-seen time, ms).
///
/// ```no_run
/// use std::sync::Arc;
/// use tether::cluster::{ClusterOptions, RedisTransport};
/// use tether::store::RedisStore;
/// use tether::SocketIo;
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let store = Arc::new(RedisStore::connect("redis://127.0.0.1:6379/", "tether")?);
/// let transport = RedisTransport::open("redis://127.0.0.1:6379/", "tether")?;
/// let io = SocketIo::builder()
///     .cluster_with(store, Arc::new(transport), ClusterOptions::default())
///     .build()?;
/// # let _ = io;
/// # Ok(()) }
/// ```
pub struct RedisTransport {
    client: Client,
    conn: ConnectionManager,
    prefix: String,
}

impl std::fmt::Debug for RedisTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisTransport")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

fn redis_error(e: redis::RedisError) -> TransportError {
    TransportError::Backend {
        transport: "redis",
        source: Box::new(e),
    }
}

async fn bounded<T>(
    op: impl std::future::Future<Output = redis::RedisResult<T>>,
) -> Result<T, TransportError> {
    match tokio::time::timeout(OP_TIMEOUT, op).await {
        Ok(result) => result.map_err(redis_error),
        Err(_) => Err(TransportError::Timeout {
            transport: "redis",
            after: OP_TIMEOUT,
        }),
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl RedisTransport {
    /// A transport on the Redis at `url` (`redis://host:port/db`) under
    /// `prefix`. Connects lazily; must be called within a tokio runtime.
    pub fn open(url: &str, prefix: &str) -> Result<Self, ClusterError> {
        let client = Client::open(url).map_err(redis_error)?;
        Self::new(client, prefix)
    }

    /// A transport on the Redis of `client` under `prefix`. Connects lazily;
    /// must be called within a tokio runtime.
    pub fn new(client: Client, prefix: &str) -> Result<Self, ClusterError> {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(OP_TIMEOUT))
            .set_response_timeout(Some(OP_TIMEOUT))
            .set_number_of_retries(2)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_millis(500));
        let conn =
            ConnectionManager::new_lazy_with_config(client.clone(), config).map_err(redis_error)?;
        Ok(RedisTransport {
            client,
            conn,
            prefix: prefix.to_owned(),
        })
    }

    fn nodes_key(&self) -> String {
        format!("{}:cluster:nodes", self.prefix)
    }

    fn channel(&self, channel: &Channel) -> String {
        match channel {
            Channel::All => format!("{}:cluster:all", self.prefix),
            Channel::Node(node) => format!("{}:cluster:node:{node}", self.prefix),
        }
    }
}

impl ClusterStore for RedisStore {
    /// A [`RedisTransport`] on the store's Redis, under its prefix.
    fn cluster_transport(&self) -> Result<Arc<dyn Transport>, ClusterError> {
        let transport = RedisTransport::new(self.client().clone(), self.prefix())?;
        Ok(Arc::new(transport))
    }
}

impl Transport for RedisTransport {
    /// PUBLISH, once more on a new connection if the connection was found
    /// lost (the first command after a Redis restart fails so).
    fn publish<'a>(
        &'a self,
        channel: &'a Channel,
        payload: &'a [u8],
    ) -> BoxFuture<'a, Result<(), TransportError>> {
        let channel = self.channel(channel);
        let mut conn = self.conn.clone();
        Box::pin(async move {
            bounded(async {
                let once = redis::cmd("PUBLISH")
                    .arg(&channel)
                    .arg(payload)
                    .query_async::<i64>(&mut conn)
                    .await;
                match once {
                    Err(e)
                        if e.is_io_error()
                            || e.is_connection_dropped()
                            || e.is_unrecoverable_error() =>
                    {
                        redis::cmd("PUBLISH")
                            .arg(&channel)
                            .arg(payload)
                            .query_async::<i64>(&mut conn)
                            .await
                    }
                    other => other,
                }
            })
            .await
            .map(drop)
        })
    }

    fn subscribe<'a>(
        &'a self,
        channels: &'a [Channel],
    ) -> BoxFuture<'a, Result<Box<dyn Subscription>, TransportError>> {
        let names: Vec<String> = channels.iter().map(|c| self.channel(c)).collect();
        Box::pin(async move {
            let mut pubsub = bounded(self.client.get_async_pubsub()).await?;
            bounded(pubsub.subscribe(&names)).await?;
            let (sink, messages) = pubsub.split();
            Ok(Box::new(RedisSubscription { sink, messages }) as Box<dyn Subscription>)
        })
    }

    /// ZADD this node, ZREMRANGEBYSCORE the nodes silent for ten timeouts,
    /// ZRANGEBYSCORE the live ones: one pipeline.
    fn heartbeat<'a>(
        &'a self,
        node: &'a str,
        node_timeout: Duration,
    ) -> BoxFuture<'a, Result<Vec<String>, TransportError>> {
        Box::pin(async move {
            let now = crate::store::now_ms();
            let since = now.saturating_sub(millis(node_timeout));
            let key = self.nodes_key();
            let mut conn = self.conn.clone();
            let (nodes,): (Vec<String>,) = bounded(
                redis::pipe()
                    .cmd("ZADD")
                    .arg(&key)
                    .arg(now)
                    .arg(node)
                    .ignore()
                    .cmd("ZREMRANGEBYSCORE")
                    .arg(&key)
                    .arg("-inf")
                    .arg(format!(
                        "({}",
                        since.saturating_sub(millis(node_timeout) * 10)
                    ))
                    .ignore()
                    .cmd("ZRANGEBYSCORE")
                    .arg(&key)
                    .arg(since)
                    .arg("+inf")
                    .query_async(&mut conn),
            )
            .await?;
            Ok(nodes)
        })
    }

    fn live_nodes(
        &self,
        node_timeout: Duration,
    ) -> BoxFuture<'_, Result<Vec<String>, TransportError>> {
        Box::pin(async move {
            let since = crate::store::now_ms().saturating_sub(millis(node_timeout));
            let mut conn = self.conn.clone();
            bounded(
                redis::cmd("ZRANGEBYSCORE")
                    .arg(self.nodes_key())
                    .arg(since)
                    .arg("+inf")
                    .query_async(&mut conn),
            )
            .await
        })
    }

    fn remove_node<'a>(&'a self, node: &'a str) -> BoxFuture<'a, Result<(), TransportError>> {
        Box::pin(async move {
            let mut conn = self.conn.clone();
            bounded(
                redis::cmd("ZREM")
                    .arg(self.nodes_key())
                    .arg(node)
                    .query_async::<()>(&mut conn),
            )
            .await
        })
    }
}

/// A Redis pub/sub connection, split.
struct RedisSubscription {
    sink: PubSubSink,
    messages: PubSubStream,
}

impl Subscription for RedisSubscription {
    fn next(&mut self) -> BoxFuture<'_, Option<Vec<u8>>> {
        Box::pin(async move {
            let message = self.messages.next().await?;
            Some(message.get_payload_bytes().to_vec())
        })
    }

    fn check(&mut self) -> BoxFuture<'_, Result<(), TransportError>> {
        Box::pin(async move { bounded(self.sink.ping::<redis::Value>()).await.map(drop) })
    }
}
