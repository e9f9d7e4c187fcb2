//! The Redis store of a run: its messages read through Tether's own
//! `RedisStore` (as `tether history` reads a SQLite file), and its keys
//! deleted afterwards.

use std::time::Duration;

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
    let client = redis::Client::open(url)?;
    let mut conn = client.get_connection_with_timeout(Duration::from_secs(2))?;
    conn.set_read_timeout(Some(Duration::from_secs(5)))?;
    let pattern = format!("{}:*", glob_escape(prefix));
    let mut cursor = 0u64;
    let mut deleted = 0;
    // Bounded: SCAN returns to cursor 0 after one full pass.
    loop {
        let (next, keys): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(1000)
            .query(&mut conn)?;
        if !keys.is_empty() {
            deleted += redis::cmd("DEL").arg(&keys).query::<usize>(&mut conn)?;
        }
        if next == 0 {
            return Ok(deleted);
        }
        cursor = next;
    }
}

/// Escapes the glob characters of a SCAN pattern.
fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_characters_are_escaped() {
        assert_eq!(glob_escape("a*b?[c]\\"), "a\\*b\\?\\[c\\]\\\\");
        assert_eq!(glob_escape("tether-bench:1:ff"), "tether-bench:1:ff");
    }
}
