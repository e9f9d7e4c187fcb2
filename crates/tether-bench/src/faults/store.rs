//! The Redis store of a run: its messages read through Tether's own
//! `RedisStore` (as `tether history` reads a SQLite file), and its keys
//! deleted afterwards.

use tether::store::{EventLog, RedisStore};

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
    Ok(entries
        .into_iter()
        .filter(|e| e.entry.event == "chat message")
        .map(|e| {
            let content = tether::delivered_args(&e)
                .first()
                .and_then(|raw| serde_json::from_str::<String>(raw.get()).ok())
                .unwrap_or_default();
            (e.seq, content)
        })
        .collect())
}

/// Deletes every key under `prefix:` (SCAN + DEL); returns how many.
pub fn delete_prefix(url: &str, prefix: &str) -> Result<usize, RedisError> {
    Ok(tether_testkit::redis::delete_prefix(url, prefix)?)
}
