//! History pages for apps: what a stream (a room, or the whole namespace)
//! holds before or after a position, as clients received it.

use std::sync::Arc;

use crate::delivery::delivered_args;
use crate::store::{Entry, Seq, Store, StoreError};
use crate::{Args, SocketIo};
use tether_proto::tether::Offset;

/// Most entries one page returns.
pub const MAX_HISTORY_PAGE: usize = 1_000;

/// Why a history page could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HistoryError {
    /// The server has no store (connection state recovery is off).
    #[error("no store: history needs connection state recovery on")]
    NoStore,
    /// The offset was not issued by this store (or by this life of it).
    #[error("offset {0:?} was not issued by this store")]
    UnknownOffset(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One stored event, as its receivers got it.
#[derive(Debug, Clone)]
pub struct HistoryEntry {
    /// Its position in the store.
    pub seq: Seq,
    /// Its offset, as sent to clients (`t.<epoch>.<seq>`).
    pub offset: String,
    /// Milliseconds since the Unix epoch when it was stored.
    pub ts_ms: i64,
    /// The event name.
    pub event: String,
    /// Its arguments (the recovery offset not included).
    pub args: Args,
    /// The rooms it was sent to (empty: the whole namespace).
    pub rooms: Vec<String>,
}

/// A query for pages of one stream's history; see [`SocketIo::history`].
#[derive(Clone)]
pub struct History {
    store: Option<Arc<dyn Store>>,
    nsp: String,
    room: Option<String>,
    limit: usize,
}

impl std::fmt::Debug for History {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("History")
            .field("nsp", &self.nsp)
            .field("room", &self.room)
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

impl SocketIo {
    /// Pages of the history of namespace `nsp`: by default its
    /// whole-namespace stream (events emitted to everyone), or one room's
    /// with [`History::room`]; 100 entries a page.
    ///
    /// ```no_run
    /// # async fn demo(io: tether::SocketIo) -> Result<(), tether::HistoryError> {
    /// // The last 50 messages of room "general", oldest first.
    /// let page = io.history("/").room("general").limit(50).latest().await?;
    /// // The 50 before those.
    /// if let Some(first) = page.first() {
    ///     let older = io.history("/").room("general").limit(50).before(first.seq).await?;
    /// #   let _ = older;
    /// }
    /// # Ok(()) }
    /// ```
    pub fn history(&self, nsp: impl Into<String>) -> History {
        History {
            store: self.store(),
            nsp: nsp.into(),
            room: None,
            limit: 100,
        }
    }
}

impl History {
    /// One room's stream instead of the whole-namespace one.
    pub fn room(mut self, room: impl Into<String>) -> Self {
        self.room = Some(room.into());
        self
    }

    /// At most `limit` entries a page (capped at [`MAX_HISTORY_PAGE`]).
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = limit.clamp(1, MAX_HISTORY_PAGE);
        self
    }

    fn store(&self) -> Result<&Arc<dyn Store>, HistoryError> {
        self.store.as_ref().ok_or(HistoryError::NoStore)
    }

    /// The newest entries, oldest first.
    pub async fn latest(&self) -> Result<Vec<HistoryEntry>, HistoryError> {
        self.before(Seq::MAX).await
    }

    /// The entries just before position `seq` (exclusive), oldest first.
    pub async fn before(&self, seq: Seq) -> Result<Vec<HistoryEntry>, HistoryError> {
        let store = self.store()?;
        let entries = store
            .history(&self.nsp, self.room.as_deref(), seq, self.limit)
            .await?;
        Ok(self.entries(store, entries))
    }

    /// The entries just after position `seq` (exclusive), oldest first: what
    /// a client that stands at `seq` missed.
    pub async fn after(&self, seq: Seq) -> Result<Vec<HistoryEntry>, HistoryError> {
        let store = self.store()?;
        let rooms: Vec<String> = self.room.iter().cloned().collect();
        let mut out = Vec::new();
        let mut from = seq;
        // A room's reader also gets the whole-namespace entries: skip those,
        // page by page, until the page is full or the stream ends.
        loop {
            let page = store.read(&self.nsp, &rooms, from, self.limit).await?;
            let full = page.len() == self.limit;
            if let Some(last) = page.last() {
                from = last.seq;
            }
            out.extend(page.into_iter().filter(|e| self.in_stream(e)));
            if !full || out.len() >= self.limit {
                break;
            }
        }
        out.truncate(self.limit);
        Ok(self.entries(store, out))
    }

    /// Like [`History::before`], from an offset a client was sent.
    pub async fn before_offset(&self, offset: &str) -> Result<Vec<HistoryEntry>, HistoryError> {
        let seq = self.seq_of(offset)?;
        self.before(seq).await
    }

    /// Like [`History::after`], from an offset a client was sent.
    pub async fn after_offset(&self, offset: &str) -> Result<Vec<HistoryEntry>, HistoryError> {
        let seq = self.seq_of(offset)?;
        self.after(seq).await
    }

    fn seq_of(&self, offset: &str) -> Result<Seq, HistoryError> {
        let store = self.store()?;
        match Offset::parse(offset) {
            Some(Offset { epoch, seq }) if epoch == store.epoch() => Ok(seq),
            _ => Err(HistoryError::UnknownOffset(offset.to_owned())),
        }
    }

    fn in_stream(&self, entry: &Entry) -> bool {
        match &self.room {
            Some(room) => entry.entry.target.rooms.contains(room),
            None => entry.entry.target.rooms.is_empty(),
        }
    }

    fn entries(&self, store: &Arc<dyn Store>, entries: Vec<Entry>) -> Vec<HistoryEntry> {
        entries
            .into_iter()
            .map(|entry| HistoryEntry {
                seq: entry.seq,
                offset: Offset::new(store.epoch(), entry.seq).to_string(),
                ts_ms: entry.ts_ms,
                args: Args::from_raw(delivered_args(&entry), entry.entry.attachments.clone()),
                event: entry.entry.event,
                rooms: entry.entry.target.rooms,
            })
            .collect()
    }
}
