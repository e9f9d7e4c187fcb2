//! The feed: every node's appends, read from the log with a blocking XREAD.

use super::*;

/// A feed: a blocking XREAD loop on a connection of its own.
pub(super) struct FeedState {
    pub(super) client: Client,
    pub(super) log: String,
    pub(super) prefix: String,
    /// The node's epoch, which the feed checks with every read.
    pub(super) cell: Arc<EpochCell>,
    /// The epoch the feed started in.
    pub(super) epoch: &'static str,
    /// The connection's name (`CLIENT SETNAME`), to tell feeds apart.
    pub(super) name: String,
    pub(super) conn: Option<MultiplexedConnection>,
    /// The last position read.
    pub(super) last: Seq,
    /// Entries read and not yet yielded.
    pub(super) ready: VecDeque<Entry>,
    /// An error was yielded: the feed is over.
    pub(super) failed: bool,
}

impl FeedState {
    /// The next entry; an error ends the feed (the caller starts another from
    /// the last entry it got).
    pub(super) async fn next(mut self) -> Option<(Result<Entry, StoreError>, Self)> {
        if self.failed {
            return None;
        }
        loop {
            if let Some(entry) = self.ready.pop_front() {
                return Some((Ok(entry), self));
            }
            if let Err(e) = self.read_more().await {
                self.failed = true;
                self.conn = None;
                return Some((Err(e), self));
            }
        }
    }

    pub(super) async fn read_more(&mut self) -> Result<(), StoreError> {
        let conn = match &mut self.conn {
            Some(conn) => conn,
            None => {
                let config = AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(CONNECT_TIMEOUT))
                    .set_response_timeout(Some(FEED_BLOCK + RESPONSE_TIMEOUT));
                let mut conn = bounded(
                    self.client
                        .get_multiplexed_async_connection_with_config(&config),
                )
                .await?;
                // Only to tell feeds apart (CLIENT LIST): a Redis user not
                // allowed to name its connection still gets its feed.
                if let Err(e) = bounded(
                    redis::cmd("CLIENT")
                        .arg("SETNAME")
                        .arg(&self.name)
                        .query_async::<()>(&mut conn),
                )
                .await
                {
                    tracing::debug!(error = %e, "redis feed: cannot name its connection");
                }
                self.conn.insert(conn)
            }
        };
        let block_ms = u64::try_from(FEED_BLOCK.as_millis()).unwrap_or(u64::MAX);
        // The epoch with every read (one round trip; read after the XREAD
        // returns, so it is as of the reply): after a reset the log starts
        // over below `last`, and this feed would wait forever.
        let (reply, epoch): (Option<StreamReadReply>, Option<String>) = redis::pipe()
            .cmd("XREAD")
            .arg("COUNT")
            .arg(FEED_COUNT)
            .arg("BLOCK")
            .arg(block_ms)
            .arg("STREAMS")
            .arg(&self.log)
            .arg(format!("{}-0", self.last))
            .cmd("GET")
            .arg(format!("{}:epoch", self.prefix))
            .query_async(conn)
            .await
            .map_err(unavailable)?;
        if epoch.as_deref() != Some(self.epoch) {
            let adopted = bounded(self.cell.sync(conn, &self.prefix)).await;
            if let Err(e) = adopted {
                tracing::warn!(error = %e, "cannot adopt the new store epoch");
            }
            return Err(StoreError::Unavailable(
                "store reset: the feed starts over in the new epoch".into(),
            ));
        }
        for id in reply.iter().flat_map(|r| &r.keys).flat_map(|k| &k.ids) {
            let seq = match id_seq(&id.id) {
                Some(seq) => seq,
                None => {
                    tracing::error!(id = %id.id, "redis feed: skipping a log entry with a foreign id");
                    continue;
                }
            };
            self.last = self.last.max(seq);
            match decode_entry(id) {
                Ok(entry) => self.ready.push_back(entry),
                // Stopping here would stop every node's fan-out for good.
                Err(e) => tracing::error!(seq, error = %e, "redis feed: skipping a corrupt entry"),
            }
        }
        Ok(())
    }
}
