//! The feed: every node's appends, read from the table in position order.
//! LISTEN/NOTIFY only wakes it; a poll every [`FEED_POLL`] covers a
//! listener that is down (or a pooler that does not pass notifications).

use super::*;

/// A connection of its own that LISTENs on the store's channel; each
/// notification wakes the feed.
struct Listener {
    /// Kept so the connection stays open.
    _client: tokio_postgres::Client,
    /// Drives the connection and forwards notifications.
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A feed's state between entries.
pub(super) struct FeedState {
    pub(super) pool: Pool,
    pub(super) shared: Arc<Shared>,
    /// The epoch the feed started in.
    pub(super) epoch: &'static str,
    /// The last position read.
    pub(super) last: Seq,
    /// Entries read and not yet yielded.
    pub(super) ready: VecDeque<Entry>,
    listener: Option<Listener>,
    wake: Arc<tokio::sync::Notify>,
    /// An error was yielded: the feed is over.
    failed: bool,
}

impl FeedState {
    pub(super) fn new(pool: Pool, shared: Arc<Shared>, after: Seq) -> Self {
        FeedState {
            pool,
            epoch: shared.epoch.get(),
            shared,
            last: after,
            ready: VecDeque::new(),
            listener: None,
            wake: Arc::new(tokio::sync::Notify::new()),
            failed: false,
        }
    }

    /// The next entry; an error ends the feed (the caller starts another
    /// from the last entry it got).
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
                return Some((Err(e.into_store()), self));
            }
        }
    }

    /// Reads what is there after `last`; when nothing is, waits for a
    /// notification or the poll interval.
    async fn read_more(&mut self) -> Result<(), PgError> {
        if self.listener.as_ref().is_none_or(|l| l.task.is_finished()) {
            // LISTEN before reading: a commit after the read wakes the wait.
            self.listener = match self.listen().await {
                Ok(listener) => Some(listener),
                Err(e) => {
                    tracing::debug!(error = %e, "postgres feed: no listener, polling");
                    None
                }
            };
        }
        let client = self.pool.get().await?;
        let entries = bounded(read_log(&client, self.last, FEED_COUNT)).await?;
        if let Some(last) = entries.last() {
            self.last = last.seq;
            self.ready.extend(entries);
            return Ok(());
        }
        // Idle: check the life of the store (a schema made anew starts its
        // positions over below `last`, and the feed would wait forever).
        match bounded(read_epoch(&client)).await? {
            Some(epoch) if epoch == self.epoch => {}
            Some(epoch) => {
                self.shared.epoch.adopt(epoch);
                return Err(PgError::Unavailable(
                    "store reset: the feed starts over in the new epoch".into(),
                ));
            }
            None => return Err(PgError::corrupt("the state row is missing")),
        }
        drop(client);
        let _ = tokio::time::timeout(FEED_POLL, self.wake.notified()).await;
        Ok(())
    }

    async fn listen(&self) -> Result<Listener, PgError> {
        let (client, mut connection) =
            bounded(async { Ok(self.shared.config.connect(NoTls).await?) }).await?;
        let wake = Arc::clone(&self.wake);
        let task = tokio::spawn(async move {
            let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
            while let Some(message) = messages.next().await {
                match message {
                    Ok(tokio_postgres::AsyncMessage::Notification(_)) => wake.notify_one(),
                    Ok(_) => {}
                    Err(e) => {
                        tracing::debug!(error = %e, "postgres feed: listener connection lost");
                        break;
                    }
                }
            }
            // The connection is gone: wake the feed so it listens again.
            wake.notify_one();
        });
        let listener = Listener {
            _client: client,
            task,
        };
        // The channel name is made of the checked schema name.
        bounded(async {
            Ok(listener
                ._client
                .batch_execute(&format!("LISTEN {}", self.shared.channel))
                .await?)
        })
        .await?;
        Ok(listener)
    }
}
