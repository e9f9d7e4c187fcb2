//! The cluster's transport on PostgreSQL: `LISTEN`/`NOTIFY` channels, a
//! table of heartbeats, and a side table for messages too large for a
//! notification. Every PostgreSQL-specific line of the cluster is here.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::mpsc;

use super::transport::{BoxFuture, Channel, Subscription, Transport};
use super::{ClusterError, ClusterStore};
use crate::error::TransportError;
use crate::store::PostgresStore;

/// Bound on one operation of the cluster layer.
const OP_TIMEOUT: Duration = Duration::from_secs(3);
/// The largest payload sent inside a notification (PostgreSQL takes up to
/// 8000 bytes); a larger one goes through `cluster_messages`.
const INLINE_MAX: usize = 7900;
/// How long a message of the side table is kept for its readers.
const SIDE_TABLE_KEEP: Duration = Duration::from_secs(60);

/// The cluster's [`Transport`] on the PostgreSQL database of a
/// [`PostgresStore`], in its schema: channels `tc_<h>_all` and
/// `tc_<h>_<node h>` (`h`: a hash of the schema, so that stores in other
/// schemas of the same database are other clusters; names stay within
/// PostgreSQL's 63 bytes), the table `cluster_nodes(node, seen_ms)` of
/// heartbeats, and `cluster_messages(id, payload, created_ms)` for payloads
/// over 7900 bytes (the notification then carries the row's id; rows are
/// removed after a minute).
///
/// A subscription is a connection of its own that LISTENs. Notifications do
/// not pass a pooler in transaction mode: point the nodes at PostgreSQL or
/// a session-mode pool.
///
/// ```no_run
/// use std::sync::Arc;
/// use tether::cluster::ClusterOptions;
/// use tether::store::PostgresStore;
/// use tether::SocketIo;
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let store = Arc::new(PostgresStore::connect("postgres://postgres@127.0.0.1:5432/test").await?);
/// let io = SocketIo::with_cluster(Default::default(), store, ClusterOptions::default())?;
/// # let _ = io;
/// # Ok(()) }
/// ```
pub struct PostgresTransport {
    pool: deadpool_postgres::Pool,
    config: tokio_postgres::Config,
    /// `tc_<hash of the schema>`.
    prefix: String,
}

impl std::fmt::Debug for PostgresTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresTransport")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

fn backend(source: impl std::error::Error + Send + Sync + 'static) -> TransportError {
    TransportError::Backend {
        transport: "postgres",
        source: Box::new(source),
    }
}

/// A failure of the transport's own making, as a backend error.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Refused(&'static str);

async fn bounded<T, E>(
    op: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, TransportError>
where
    E: std::error::Error + Send + Sync + 'static,
{
    match tokio::time::timeout(OP_TIMEOUT, op).await {
        Ok(result) => result.map_err(backend),
        Err(_) => Err(TransportError::Timeout {
            transport: "postgres",
            after: OP_TIMEOUT,
        }),
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// FNV-1a, 64 bits: the same on every node (unlike the std hasher).
fn hash(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

impl PostgresTransport {
    /// The transport of `store`'s database and schema (its pool is shared).
    pub fn new(store: &PostgresStore) -> Self {
        PostgresTransport {
            pool: store.pool().clone(),
            config: store.config().clone(),
            prefix: format!("tc_{:016x}", hash(store.schema())),
        }
    }

    fn channel(&self, channel: &Channel) -> String {
        match channel {
            Channel::All => format!("{}_all", self.prefix),
            Channel::Node(node) => format!("{}_{:016x}", self.prefix, hash(node)),
        }
    }
}

impl ClusterStore for PostgresStore {
    /// A [`PostgresTransport`] on the store's database, in its schema.
    fn cluster_transport(&self) -> Result<Arc<dyn Transport>, ClusterError> {
        Ok(Arc::new(PostgresTransport::new(self)))
    }
}

impl Transport for PostgresTransport {
    /// `pg_notify`, the payload inline when it fits in a notification (UTF-8
    /// text without NUL), through `cluster_messages` otherwise.
    fn publish<'a>(
        &'a self,
        channel: &'a Channel,
        payload: &'a [u8],
    ) -> BoxFuture<'a, Result<(), TransportError>> {
        let channel = self.channel(channel);
        Box::pin(async move {
            let client = bounded(self.pool.get()).await?;
            let inline = std::str::from_utf8(payload)
                .ok()
                .filter(|text| text.len() <= INLINE_MAX && !text.contains('\0'));
            match inline {
                Some(text) => {
                    let message = format!("m{text}");
                    bounded(client.execute("SELECT pg_notify($1, $2)", &[&channel, &message]))
                        .await?;
                }
                None => {
                    bounded(client.execute(
                        "WITH m AS (
                             INSERT INTO cluster_messages(payload, created_ms) VALUES ($2, $3)
                             RETURNING id
                         )
                         SELECT pg_notify($1, 'r' || m.id) FROM m",
                        &[&channel, &payload, &crate::store::now_ms()],
                    ))
                    .await?;
                }
            }
            Ok(())
        })
    }

    fn subscribe<'a>(
        &'a self,
        channels: &'a [Channel],
    ) -> BoxFuture<'a, Result<Box<dyn Subscription>, TransportError>> {
        let names: Vec<String> = channels.iter().map(|c| self.channel(c)).collect();
        Box::pin(async move {
            let (client, mut connection) =
                bounded(self.config.connect(tokio_postgres::NoTls)).await?;
            let (tx, messages) = mpsc::unbounded_channel();
            let task = tokio::spawn(async move {
                let mut stream =
                    futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
                while let Some(message) = stream.next().await {
                    match message {
                        Ok(tokio_postgres::AsyncMessage::Notification(n)) => {
                            if tx.send(n.payload().to_owned()).is_err() {
                                return;
                            }
                        }
                        Ok(_) => {}
                        Err(e) => {
                            tracing::debug!(error = %e, "postgres cluster subscription lost");
                            return;
                        }
                    }
                }
            });
            let subscription = PostgresSubscription {
                client,
                task,
                messages,
                pending: None,
                pool: self.pool.clone(),
            };
            // The channel names are made of hex digits and a fixed prefix.
            let listen: String = names.iter().map(|n| format!("LISTEN {n};")).collect();
            bounded(subscription.client.batch_execute(&listen)).await?;
            Ok(Box::new(subscription) as Box<dyn Subscription>)
        })
    }

    /// Upserts this node, forgets the nodes silent for ten timeouts (and the
    /// side table's old messages), returns the live ones.
    fn heartbeat<'a>(
        &'a self,
        node: &'a str,
        node_timeout: Duration,
    ) -> BoxFuture<'a, Result<Vec<String>, TransportError>> {
        Box::pin(async move {
            let now = crate::store::now_ms();
            let since = now.saturating_sub(millis(node_timeout));
            let forget = since.saturating_sub(millis(node_timeout).saturating_mul(10));
            let keep = now.saturating_sub(millis(SIDE_TABLE_KEEP));
            let client = bounded(self.pool.get()).await?;
            // One statement; its SELECT sees the table as it was before the
            // upsert, so this node is added below when it is new.
            let rows = bounded(client.query(
                "WITH up AS (
                     INSERT INTO cluster_nodes(node, seen_ms) VALUES ($1, $2)
                     ON CONFLICT (node) DO UPDATE
                         SET seen_ms = GREATEST(cluster_nodes.seen_ms, excluded.seen_ms)
                 ), old_nodes AS (
                     DELETE FROM cluster_nodes WHERE seen_ms < $3
                 ), old_messages AS (
                     DELETE FROM cluster_messages WHERE created_ms < $4
                 )
                 SELECT node FROM cluster_nodes WHERE seen_ms >= $5 ORDER BY node",
                &[&node, &now, &forget, &keep, &since],
            ))
            .await?;
            let mut nodes = Vec::with_capacity(rows.len() + 1);
            for row in rows {
                nodes.push(row.try_get::<_, String>(0).map_err(backend)?);
            }
            if !nodes.iter().any(|n| n == node) {
                nodes.push(node.to_owned());
            }
            Ok(nodes)
        })
    }

    fn live_nodes(
        &self,
        node_timeout: Duration,
    ) -> BoxFuture<'_, Result<Vec<String>, TransportError>> {
        Box::pin(async move {
            let since = crate::store::now_ms().saturating_sub(millis(node_timeout));
            let client = bounded(self.pool.get()).await?;
            let rows = bounded(client.query(
                "SELECT node FROM cluster_nodes WHERE seen_ms >= $1 ORDER BY node",
                &[&since],
            ))
            .await?;
            rows.iter()
                .map(|row| row.try_get::<_, String>(0).map_err(backend))
                .collect()
        })
    }

    fn remove_node<'a>(&'a self, node: &'a str) -> BoxFuture<'a, Result<(), TransportError>> {
        Box::pin(async move {
            let client = bounded(self.pool.get()).await?;
            bounded(client.execute("DELETE FROM cluster_nodes WHERE node = $1", &[&node])).await?;
            Ok(())
        })
    }
}

/// A LISTENing connection and the notifications it brought.
struct PostgresSubscription {
    client: tokio_postgres::Client,
    task: tokio::task::JoinHandle<()>,
    messages: mpsc::UnboundedReceiver<String>,
    /// A notification taken and not yet turned into its payload (kept so
    /// that a `next` dropped while reading the side table loses nothing).
    pending: Option<String>,
    /// To read the payloads kept in `cluster_messages`.
    pool: deadpool_postgres::Pool,
}

impl Drop for PostgresSubscription {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl PostgresSubscription {
    /// The payload of a notification: inline (`m...`), or the row of the
    /// side table it names (`r<id>`). `None`: lost (a row already removed,
    /// or a notification that is not the transport's).
    async fn payload(&self, message: &str) -> Option<Vec<u8>> {
        if let Some(text) = message.strip_prefix('m') {
            return Some(text.as_bytes().to_vec());
        }
        let id: i64 = message.strip_prefix('r')?.parse().ok()?;
        let read = async {
            let client = self.pool.get().await.map_err(backend)?;
            let row = bounded(
                client.query_opt("SELECT payload FROM cluster_messages WHERE id = $1", &[&id]),
            )
            .await?;
            match row {
                Some(row) => row.try_get::<_, Vec<u8>>(0).map(Some).map_err(backend),
                None => Ok(None),
            }
        };
        match read.await {
            Ok(payload) => payload,
            Err(e) => {
                tracing::debug!(error = %e, id, "postgres cluster: a large message was lost");
                None
            }
        }
    }
}

impl Subscription for PostgresSubscription {
    fn next(&mut self) -> BoxFuture<'_, Option<Vec<u8>>> {
        Box::pin(async move {
            loop {
                let message = match self.pending.take() {
                    Some(message) => message,
                    None => self.messages.recv().await?,
                };
                self.pending = Some(message);
                let payload = match self.pending.as_deref() {
                    Some(message) => self.payload(message).await,
                    None => None,
                };
                self.pending = None;
                if payload.is_some() {
                    return payload;
                }
            }
        })
    }

    fn check(&mut self) -> BoxFuture<'_, Result<(), TransportError>> {
        Box::pin(async move {
            if self.task.is_finished() {
                return Err(backend(Refused("the listening connection is gone")));
            }
            bounded(self.client.simple_query("SELECT 1"))
                .await
                .map(drop)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::hash;

    #[test]
    fn channel_hashes_are_stable_across_processes() {
        // FNV-1a: no per-process seed, so every node names the same channel.
        assert_eq!(hash(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(hash("a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(hash("tether"), hash("tether"));
        assert_ne!(hash("tether"), hash("tether2"));
        // Well within PostgreSQL's 63 bytes for a channel name.
        assert_eq!(
            format!("tc_{:016x}_{:016x}", hash("a"), hash("b")).len(),
            36
        );
    }
}
