//! Looking inside a store without serving it (`tether streams`, `tether
//! sessions`, and the other tools on a store that must already exist).

use super::*;

/// The members of a sorted set with their scores.
type Scored = Vec<(String, f64)>;

/// Keys fetched per SCAN round trip.
const SCAN_COUNT: usize = 1000;

/// `text` with the glob characters of a SCAN pattern escaped.
fn glob_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The namespace and room of a stream key's tail (`<len(nsp)>:<nsp>:<room>`).
fn stream_of(tail: &str) -> Option<(String, String)> {
    let (len, rest) = tail.split_once(':')?;
    let len: usize = len.parse().ok()?;
    let nsp = rest.get(..len)?;
    let room = rest.get(len..)?.strip_prefix(':')?;
    Some((nsp.to_owned(), room.to_owned()))
}

impl RedisStore {
    /// [`RedisStore::connect`] to a store that exists (its epoch is there):
    /// an empty Redis, or a prefix without a store, is refused
    /// ([`StoreError::Unavailable`]) instead of given an epoch. For tools
    /// that look inside a store.
    pub fn connect_existing(url: &str, prefix: &str) -> Result<Self, StoreError> {
        let client = Client::open(url).map_err(unavailable)?;
        let mut conn = client
            .get_connection_with_timeout(CONNECT_TIMEOUT)
            .map_err(unavailable)?;
        conn.set_read_timeout(Some(RESPONSE_TIMEOUT))
            .map_err(unavailable)?;
        let epoch: Option<String> = redis::cmd("GET")
            .arg(format!("{prefix}:epoch"))
            .query(&mut conn)
            .map_err(unavailable)?;
        if epoch.is_none() {
            return Err(StoreError::Unavailable(format!(
                "no store under the key prefix {prefix:?}"
            )));
        }
        Self::connect(url, prefix)
    }

    /// Every key matching `pattern` (SCAN; one full pass).
    async fn scan(&self, pattern: &str) -> Result<Vec<String>, StoreError> {
        let mut keys = Vec::new();
        let mut cursor = 0u64;
        loop {
            let (next, found): (u64, Vec<String>) = self
                .retried(|mut conn| {
                    let mut cmd = redis::cmd("SCAN");
                    cmd.arg(cursor)
                        .arg("MATCH")
                        .arg(pattern)
                        .arg("COUNT")
                        .arg(SCAN_COUNT);
                    async move { cmd.query_async(&mut conn).await }
                })
                .await?;
            keys.extend(found);
            if next == 0 {
                return Ok(keys);
            }
            cursor = next;
        }
    }

    /// Every stream with its size and positions (for `tether streams`),
    /// sorted by namespace and room.
    pub fn streams(&self) -> BoxFuture<'_, Result<Vec<StreamInfo>, StoreError>> {
        Box::pin(async move {
            let head = format!("{}:r:", self.prefix);
            let keys = self.scan(&format!("{}*", glob_escape(&head))).await?;
            let mut out = Vec::with_capacity(keys.len());
            for key in keys {
                let Some((nsp, room)) = key.strip_prefix(&head).and_then(stream_of) else {
                    continue;
                };
                let (count, first, last): (u64, Scored, Scored) = self
                    .retried(|mut conn| {
                        let mut pipe = redis::pipe();
                        pipe.cmd("ZCARD").arg(&key);
                        pipe.cmd("ZRANGE").arg(&key).arg(0).arg(0).arg("WITHSCORES");
                        pipe.cmd("ZRANGE")
                            .arg(&key)
                            .arg(-1)
                            .arg(-1)
                            .arg("WITHSCORES");
                        async move { pipe.query_async(&mut conn).await }
                    })
                    .await?;
                // Positions are exact as scores (below 2^53).
                let position =
                    |members: &Scored| members.first().map_or(0, |(_, score)| *score as Seq);
                if count == 0 {
                    continue;
                }
                out.push(StreamInfo {
                    nsp,
                    room,
                    count,
                    first: position(&first),
                    last: position(&last),
                });
            }
            out.sort_by(|a, b| (&a.nsp, &a.room).cmp(&(&b.nsp, &b.room)));
            Ok(out)
        })
    }

    /// Every stored session, oldest change first (for `tether sessions`).
    pub fn sessions(&self) -> BoxFuture<'_, Result<Vec<SessionInfo>, StoreError>> {
        Box::pin(async move {
            let head = format!("{}:s:", self.prefix);
            let keys = self.scan(&format!("{}*", glob_escape(&head))).await?;
            let mut out = Vec::with_capacity(keys.len());
            for chunk in keys.chunks(SCAN_COUNT) {
                let values: Vec<Option<String>> = self
                    .retried(|mut conn| {
                        let mut pipe = redis::pipe();
                        for key in chunk {
                            pipe.cmd("GET").arg(key);
                        }
                        async move { pipe.query_async(&mut conn).await }
                    })
                    .await?;
                for json in values.into_iter().flatten() {
                    let stored: StoredSession =
                        serde_json::from_str(&json).map_err(|e| StoreError::Corrupt {
                            what: format!("redis session: {e}"),
                            source: Some(Arc::new(e)),
                        })?;
                    out.push(SessionInfo {
                        rooms: json_list(&stored.rooms),
                        sid: stored.sid,
                        nsp: stored.nsp,
                        connected: stored.connected,
                        updated_ms: stored.updated_ms,
                    });
                }
            }
            out.sort_by_key(|s| s.updated_ms);
            Ok(out)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_keys_and_patterns() {
        assert_eq!(
            stream_of("1:/:lobby"),
            Some(("/".to_owned(), "lobby".to_owned()))
        );
        assert_eq!(stream_of("1:/:"), Some(("/".to_owned(), String::new())));
        assert_eq!(
            stream_of("6:/a:b:c:room:x"),
            Some(("/a:b:c".to_owned(), "room:x".to_owned()))
        );
        assert_eq!(stream_of("9:/:x"), None);
        assert_eq!(stream_of("x:/:x"), None);
        assert_eq!(glob_escape("a*b?[c]\\"), "a\\*b\\?\\[c\\]\\\\");
    }
}
