//! The Redis or PostgreSQL store of a run: its messages read through
//! Tether's own `RedisStore` / `PostgresStore` (as `tether history` reads a
//! SQLite file), and its keys (or schema) deleted afterwards.

use tether::store::{Entry, EventLog, PostgresStore, RedisStore};

/// Errors reading or cleaning the Redis store.
#[derive(Debug, thiserror::Error)]
pub enum RedisError {
    /// Tether's store refused.
    #[error("redis store: {0}")]
    Store(String),
    /// A Redis command failed.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
}

/// Every stored chat message under `prefix`: (serverOffset, content), in
/// store order.
pub async fn redis_messages(url: &str, prefix: &str) -> Result<Vec<(u64, String)>, RedisError> {
    let (url, prefix) = (url.to_owned(), prefix.to_owned());
    // `connect` blocks for one round trip.
    let store = tokio::task::spawn_blocking(move || RedisStore::connect(&url, &prefix))
        .await
        .map_err(|e| RedisError::Store(e.to_string()))?
        .map_err(|e| RedisError::Store(e.to_string()))?;
    let entries = store
        .history("/", None, u64::MAX, 100_000_000)
        .await
        .map_err(|e| RedisError::Store(e.to_string()))?;
    Ok(chat_messages(entries))
}

/// The chat messages of `entries`: (serverOffset, content).
fn chat_messages(entries: Vec<Entry>) -> Vec<(u64, String)> {
    entries
        .into_iter()
        .filter(|e| e.entry.event == "chat message")
        .map(|e| {
            let content = tether::delivered_args(&e)
                .first()
                .and_then(|raw| serde_json::from_str::<String>(raw.get()).ok())
                .unwrap_or_default();
            (e.seq, content)
        })
        .collect()
}

/// Errors reading or cleaning the PostgreSQL store.
#[derive(Debug, thiserror::Error)]
pub enum PostgresError {
    /// Tether's store refused.
    #[error("postgres store: {0}")]
    Store(#[from] tether::store::StoreError),
    /// A statement failed.
    #[error("postgres: {0}")]
    Postgres(#[from] tokio_postgres::Error),
}

/// Every stored chat message of the store at `url` (with its `?schema=`):
/// (serverOffset, content), in store order.
pub async fn postgres_messages(url: &str) -> Result<Vec<(u64, String)>, PostgresError> {
    let store = PostgresStore::connect_existing(url).await?;
    let entries = store.history("/", None, u64::MAX, 100_000_000).await?;
    Ok(chat_messages(entries))
}

/// Drops `schema` (the run's tables) from the database at `url` (without
/// a schema parameter).
pub async fn drop_schema(url: &str, schema: &str) -> Result<(), PostgresError> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    let driver = tokio::spawn(connection);
    // The name is the run's own: `bench_<pid>_<hex>`.
    let dropped = client
        .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
        .await;
    drop(client);
    let _ = driver.await;
    Ok(dropped?)
}

/// Deletes every key under `prefix:` (SCAN + DEL); returns how many.
pub fn delete_prefix(url: &str, prefix: &str) -> Result<usize, RedisError> {
    Ok(tether_testkit::redis::delete_prefix(url, prefix)?)
}
