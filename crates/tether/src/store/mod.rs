//! Durable storage for delivery: stream entries, sessions, idempotency
//! records, inbox entries, retention.
//!
//! [`Store`] is async and batched so that a networked backend (Redis) fits the
//! same shape as the embedded ones: [`MemoryStore`] (tests, ephemeral servers)
//! and [`SqliteStore`] (the default: one file, one writer thread with group
//! commit). Positions ("offsets") are one sequence per store, increasing; a
//! stream (a room of a namespace) sees a subsequence of it, so one offset tells
//! where a client stands in every stream at once.
//!
//! A store is four concerns, one trait each, every method stated by every
//! store (no default bodies, so a store that wraps another forwards all of
//! them): [`EventLog`] (appends, reads, bounds, health, and
//! [`EventLog::shared_feed`] for a store several nodes share: a
//! [`SharedFeed`]), [`Sessions`], [`Inboxes`] and [`Retain`] (trimming).
//! [`Store`] is all four, implemented for every type that has them.
//! [`EventLogExt`] adds shorthands over the batch append
//! ([`EventLogExt::append`], [`EventLogExt::append_once`]); to call the
//! methods on a concrete store, `use tether::store::prelude::*`.

mod memory;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "redis")]
mod redis;
#[cfg(feature = "sqlite")]
mod sqlite;
mod trim;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

pub use memory::MemoryStore;
#[cfg(feature = "postgres")]
pub use postgres::PostgresStore;
#[cfg(feature = "redis")]
pub use redis::RedisStore;
#[cfg(feature = "sqlite")]
pub use sqlite::{Durability, SqliteStore};

/// One stream of a store, for inspection (`SqliteStore::streams`,
/// `PostgresStore::streams`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamInfo {
    /// Namespace.
    pub nsp: String,
    /// Room; empty for the whole-namespace stream.
    pub room: String,
    /// Entries kept.
    pub count: u64,
    /// Oldest position kept.
    pub first: Seq,
    /// Latest position.
    pub last: Seq,
}

/// A stored session, for inspection (its private id is not shown;
/// `SqliteStore::sessions`, `PostgresStore::sessions`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    /// Public socket id.
    pub sid: String,
    /// Namespace.
    pub nsp: String,
    /// Rooms (JSON array).
    pub rooms: String,
    /// True while a socket of the session is connected.
    pub connected: bool,
    /// Milliseconds since the Unix epoch of the last change.
    pub updated_ms: i64,
}

/// A position in the store. Increasing; never reused within one epoch.
pub type Seq = u64;

/// An error of a backend, kept as the source of a [`StoreError`].
pub type BackendError = Arc<dyn std::error::Error + Send + Sync + 'static>;

/// Why a store operation failed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The store cannot serve the operation now (a full publish queue, an
    /// answer that did not come in time, a store reset under the node, a
    /// file replaced). Nothing of the failed operation was kept.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The backend failed (I/O, disk full, connection lost); its own error is
    /// the source. Nothing of the failed operation was kept.
    #[error("store unavailable: {message}")]
    Backend {
        /// What failed, for humans (the backend error's text, with context).
        message: String,
        /// The backend's error (`rusqlite::Error`, `redis::RedisError`).
        #[source]
        source: BackendError,
    },
    /// What the store holds cannot be decoded (an entry, a session or an
    /// inbox entry written by something else, or damaged): the data is bad,
    /// not the backend, and trying again does not help.
    #[error("corrupt store data: {what}")]
    Corrupt {
        /// What was being decoded, and how it failed.
        what: String,
        /// The decoding error, when there is one.
        #[source]
        source: Option<BackendError>,
    },
    /// The store was closed.
    #[error("store closed")]
    Closed,
    /// The store does not support this operation.
    #[error("not supported by this store: {0}")]
    Unsupported(&'static str),
}

impl StoreError {
    /// A failure of the backend, with its error as the source.
    pub fn backend(
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        StoreError::Backend {
            message: message.into(),
            source: Arc::new(source),
        }
    }

    /// Data that cannot be decoded, without a decoding error of its own.
    pub fn corrupt(what: impl Into<String>) -> Self {
        StoreError::Corrupt {
            what: what.into(),
            source: None,
        }
    }

    /// True when the store could not serve the operation now
    /// ([`StoreError::Unavailable`] or [`StoreError::Backend`]): trying
    /// again later may work.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            StoreError::Unavailable(_) | StoreError::Backend { .. }
        )
    }
}

/// Whether a store can keep what it is given now (see
/// [`EventLog::check_health`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Health {
    /// Writes go through.
    Healthy,
    /// Writes fail or would not be found after a restart; the reason, for
    /// humans (`last commit failed: database or disk is full`, `store file
    /// was deleted or replaced`, `store reset`).
    Unhealthy(String),
}

impl Health {
    /// True for [`Health::Healthy`].
    pub fn is_healthy(&self) -> bool {
        matches!(self, Health::Healthy)
    }

    /// Why the store is unhealthy; `None` when healthy.
    pub fn reason(&self) -> Option<&str> {
        match self {
            Health::Healthy => None,
            Health::Unhealthy(reason) => Some(reason),
        }
    }
}

/// Where an entry goes: a namespace, the rooms it targets, the rooms and
/// socket it excludes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Target {
    /// Namespace name (`/`).
    pub nsp: String,
    /// Rooms the entry is for; empty means every socket of the namespace.
    pub rooms: Vec<String>,
    /// Rooms whose sockets are excluded.
    pub except: Vec<String>,
}

/// An entry to append.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEntry {
    /// Where it goes.
    pub target: Target,
    /// Event name.
    pub event: String,
    /// Raw JSON of the arguments array (binary values as placeholders).
    pub args: String,
    /// Binary attachments.
    pub attachments: Vec<Bytes>,
}

/// A stored entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// Its position.
    pub seq: Seq,
    /// Milliseconds since the Unix epoch when it was appended.
    pub ts_ms: i64,
    /// The entry as appended.
    pub entry: NewEntry,
}

/// One entry of a batch append ([`EventLog::append_batch`]): plain, or keyed
/// (idempotent).
#[derive(Debug, Clone, PartialEq)]
pub struct Append {
    /// The entry.
    pub entry: NewEntry,
    /// An idempotency key, unique within the entry's namespace: when it was
    /// used before (by an earlier append, or earlier in the same batch), the
    /// entry is not stored again. The key is recorded with the entry, in the
    /// same transaction, and lives as long as the entry.
    pub key: Option<String>,
}

impl Append {
    /// An entry appended whatever was appended before.
    pub fn plain(entry: NewEntry) -> Self {
        Append { entry, key: None }
    }

    /// An entry appended unless `key` was used before in its namespace.
    pub fn keyed(key: impl Into<String>, entry: NewEntry) -> Self {
        Append {
            entry,
            key: Some(key.into()),
        }
    }
}

impl From<NewEntry> for Append {
    fn from(entry: NewEntry) -> Self {
        Append::plain(entry)
    }
}

/// The outcome of one entry of an append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AppendOnce {
    /// The entry was appended at this position (a plain entry, or the first
    /// time its key was seen).
    Appended(Seq),
    /// The key was seen before: nothing was appended; this is the position the
    /// first append got.
    Duplicate(Seq),
}

impl AppendOnce {
    /// The position of the entry, new or earlier.
    pub fn seq(&self) -> Seq {
        match self {
            AppendOnce::Appended(s) | AppendOnce::Duplicate(s) => *s,
        }
    }

    /// True when this append stored the entry.
    pub fn is_appended(&self) -> bool {
        matches!(self, AppendOnce::Appended(_))
    }

    /// True when the key was seen before and nothing was stored.
    pub fn is_duplicate(&self) -> bool {
        matches!(self, AppendOnce::Duplicate(_))
    }
}

/// What is kept of a socket's session while it is connected and after, for
/// connection state recovery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    /// Private session id: known only to its owner.
    pub pid: String,
    /// Public socket id, restored on recovery.
    pub sid: String,
    /// Namespace.
    pub nsp: String,
    /// Rooms joined (the socket's own id room included).
    pub rooms: Vec<String>,
    /// App data as JSON (`socket.set_data`), if any.
    pub data: Option<String>,
    /// The user the socket belongs to (`socket.set_user`, inboxes), if any:
    /// a recovered socket is that user's again, middlewares skipped or not.
    pub user: Option<String>,
    /// The store position when the session began: a client that received no
    /// event yet recovers from here.
    pub start_seq: Seq,
    /// True while a socket of the session is connected.
    pub connected: bool,
    /// Milliseconds since the Unix epoch of the last change (the disconnection
    /// time when not connected).
    pub updated_ms: i64,
}

/// An entry of a user's inbox.
#[derive(Debug, Clone, PartialEq)]
pub struct InboxEntry {
    /// Position in the user's inbox (increasing per user).
    pub seq: Seq,
    /// Milliseconds since the Unix epoch when it was stored.
    pub ts_ms: i64,
    /// Event name.
    pub event: String,
    /// Raw JSON arguments array.
    pub args: String,
    /// Binary attachments.
    pub attachments: Vec<Bytes>,
}

/// Retention of stream entries (and idempotency records, which live as long).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Retention {
    /// Drop entries older than this.
    pub max_age: Option<Duration>,
    /// Keep at most this many entries per namespace.
    pub max_count: Option<u64>,
}

/// Retention of one stream (a room of a namespace, or `""`: the entries sent
/// to the whole namespace), instead of the default [`Retention`].
///
/// An entry is dropped once every stream it belongs to lets it go: an entry
/// sent to rooms `a` and `b` stays while either keeps it. So a stream keeps at
/// least what its retention promises, and more only when an entry is shared
/// with a stream that keeps it longer.
///
/// ```
/// use std::time::Duration;
/// use tether::store::StreamRetention;
///
/// // Typing indicators: the last 100 are plenty.
/// let typing = StreamRetention::new("/", "typing").max_count(100);
/// // Announcements: a year, whatever the default says.
/// let news = StreamRetention::new("/", "news").max_age(Duration::from_secs(365 * 86_400));
/// # let _ = (typing, news);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamRetention {
    /// Namespace.
    pub nsp: String,
    /// Room; `""` for the entries sent to the whole namespace.
    pub room: String,
    /// Drop the stream's entries older than this.
    pub max_age: Option<Duration>,
    /// Keep at most this many of the stream's entries.
    pub max_count: Option<u64>,
}

impl StreamRetention {
    /// A stream whose entries are kept forever (until limits are set).
    pub fn new(nsp: impl Into<String>, room: impl Into<String>) -> Self {
        Self {
            nsp: nsp.into(),
            room: room.into(),
            max_age: None,
            max_count: None,
        }
    }

    /// Drops the stream's entries older than `age`.
    pub fn max_age(mut self, age: Duration) -> Self {
        self.max_age = Some(age);
        self
    }

    /// Keeps at most `count` of the stream's entries.
    pub fn max_count(mut self, count: u64) -> Self {
        self.max_count = Some(count);
        self
    }
}

/// The event log: entries appended in position order and read back by
/// stream. Every method is atomic: it either happens whole, or fails with
/// nothing kept. Writes are durable when they return `Ok` (per the backend's
/// durability setting).
pub trait EventLog: Send + Sync + 'static {
    /// Identifies this life of the store: it changes when the store is reset
    /// (a new file, a flushed database), so offsets from another life are
    /// recognised.
    fn epoch(&self) -> &str;

    /// The state of the write path: unhealthy after a failed commit (until
    /// the write path is seen working again: for SQLite, a probe of the
    /// health check, for Redis, any write), when the store's file was deleted or replaced, or when
    /// the store was reset under the node. While unhealthy, a store may probe
    /// its write path with a tiny write, so that it notices recovery without
    /// traffic; a healthy store checks without writing. Called by health
    /// checks (`/healthz`), so it is cheap and bounded in time.
    fn check_health(&self) -> BoxFuture<'_, Health>;

    /// Appends a batch of plain and keyed entries, in order, in one
    /// transaction (one round trip for a networked store); returns per entry
    /// its new position, or the position its key got before. Positions of one
    /// batch increase in batch order.
    fn append_batch(
        &self,
        batch: Vec<Append>,
    ) -> BoxFuture<'_, Result<Vec<AppendOnce>, StoreError>>;

    /// Entries after `after` (exclusive) targeting any of `rooms` in `nsp`, or
    /// the whole namespace, in order, at most `limit`. Cost grows with what is
    /// returned, not with other rooms' traffic.
    fn read<'a>(
        &'a self,
        nsp: &'a str,
        rooms: &'a [String],
        after: Seq,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<Entry>, StoreError>>;

    /// Entries of one room (or `None`: the whole-namespace stream) before
    /// `before` (exclusive), newest last, at most `limit`: a history page.
    fn history<'a>(
        &'a self,
        nsp: &'a str,
        room: Option<&'a str>,
        before: Seq,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<Entry>, StoreError>>;

    /// The last position handed out (0 when empty) and the oldest position
    /// still kept (entries before it were trimmed).
    fn bounds(&self) -> BoxFuture<'_, Result<(Seq, Seq), StoreError>>;

    /// For a store shared by several nodes, its feed of every node's appends
    /// (see [`SharedFeed`]); `None` for a store owned by one process: the
    /// node then fans out its own appends directly. A store that wraps
    /// another answers what the inner one does.
    fn shared_feed(&self) -> Option<&dyn SharedFeed>;
}

/// Shorthands over [`EventLog::append_batch`], for every event log.
pub trait EventLogExt: EventLog {
    /// Appends plain entries in order; returns their positions.
    fn append(&self, entries: Vec<NewEntry>) -> BoxFuture<'_, Result<Vec<Seq>, StoreError>> {
        let batch = entries.into_iter().map(Append::plain).collect();
        let appended = self.append_batch(batch);
        Box::pin(async move {
            Ok(appended
                .await?
                .into_iter()
                .map(|outcome| outcome.seq())
                .collect())
        })
    }

    /// Appends `entry` unless `key` was used before (in the entry's
    /// namespace); the key is recorded in the same transaction.
    fn append_once(
        &self,
        key: String,
        entry: NewEntry,
    ) -> BoxFuture<'_, Result<AppendOnce, StoreError>> {
        let appended = self.append_batch(vec![Append::keyed(key, entry)]);
        Box::pin(async move {
            appended.await?.pop().ok_or(StoreError::Unavailable(
                "the store answered no position".into(),
            ))
        })
    }
}

impl<T: EventLog + ?Sized> EventLogExt for T {}

/// For a store shared by several nodes: the entries every node appends.
pub trait SharedFeed: Send + Sync {
    /// A feed of every entry appended after `after`, by any node, in position
    /// order (a node fans out what the feed brings, its own appends included,
    /// so every node delivers in the same order). A feed that fails is resumed
    /// from the last entry it gave, so a connection blip loses nothing.
    fn feed(&self, after: Seq) -> Feed;
}

/// Session records, for connection state recovery.
pub trait Sessions: Send + Sync + 'static {
    /// Creates or replaces a session record.
    fn save_session(&self, record: SessionRecord) -> BoxFuture<'_, Result<(), StoreError>>;

    /// The session record of `pid`.
    fn load_session<'a>(
        &'a self,
        pid: &'a str,
    ) -> BoxFuture<'a, Result<Option<SessionRecord>, StoreError>>;

    /// Removes a session record.
    fn delete_session<'a>(&'a self, pid: &'a str) -> BoxFuture<'a, Result<(), StoreError>>;
}

/// Per-user inboxes: entries kept until their user acknowledges them.
pub trait Inboxes: Send + Sync + 'static {
    /// Stores an entry in `user`'s inbox; returns its position.
    fn inbox_push<'a>(
        &'a self,
        user: &'a str,
        event: String,
        args: String,
        attachments: Vec<Bytes>,
    ) -> BoxFuture<'a, Result<Seq, StoreError>>;

    /// Unacknowledged entries of `user`'s inbox after `after`, oldest first.
    fn inbox_pending<'a>(
        &'a self,
        user: &'a str,
        after: Seq,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<InboxEntry>, StoreError>>;

    /// Acknowledges every entry of `user`'s inbox up to `upto` (inclusive).
    fn inbox_ack<'a>(&'a self, user: &'a str, upto: Seq) -> BoxFuture<'a, Result<(), StoreError>>;
}

/// Retention: what goes, and what a reader missed because it went.
pub trait Retain: Send + Sync + 'static {
    /// Drops entries and idempotency records past `retention` (or, for
    /// `streams`, past their own retention: see [`StreamRetention`]), and
    /// sessions disconnected before `sessions_before_ms`. Returns how many
    /// entries went. A store that trims only globally (see
    /// [`Retain::supports_stream_retention`]) fails with
    /// [`StoreError::Unsupported`] when `streams` is not empty, keeping
    /// everything.
    fn trim<'a>(
        &'a self,
        retention: Retention,
        streams: &'a [StreamRetention],
        sessions_before_ms: i64,
    ) -> BoxFuture<'a, Result<u64, StoreError>>;

    /// True when [`Retain::trim`] takes per-stream retention.
    fn supports_stream_retention(&self) -> bool;

    /// The highest position trimmed from any of `streams` of `nsp` (rooms;
    /// `""` for the whole-namespace stream), 0 if none: a reader of those
    /// streams standing before it missed something that is gone. A store
    /// that trims every stream alike answers its store-wide mark (the
    /// oldest position of [`EventLog::bounds`], less one).
    fn trimmed<'a>(
        &'a self,
        nsp: &'a str,
        streams: &'a [String],
    ) -> BoxFuture<'a, Result<Seq, StoreError>>;
}

/// Storage for delivery: an [`EventLog`] with [`Sessions`], [`Inboxes`] and
/// [`Retain`]. Implemented for every type that has all four; used as
/// `Arc<dyn Store>`.
pub trait Store: EventLog + Sessions + Inboxes + Retain {}

impl<T: EventLog + Sessions + Inboxes + Retain + ?Sized> Store for T {}

/// The store-wide trim mark, for a store that trims every stream alike: the
/// answer of [`Retain::trimmed`] from [`EventLog::bounds`].
pub async fn trimmed_from_bounds<S: EventLog + ?Sized>(store: &S) -> Result<Seq, StoreError> {
    let (_, first) = store.bounds().await?;
    Ok(first.saturating_sub(1))
}

/// Every entry appended to a shared store, by any node, in position order.
pub type Feed =
    std::pin::Pin<Box<dyn futures_core::Stream<Item = Result<Entry, StoreError>> + Send>>;

/// The store traits, to call their methods on a concrete store
/// (`use tether::store::prelude::*`).
pub mod prelude {
    pub use super::{EventLog, EventLogExt, Inboxes, Retain, Sessions, SharedFeed, Store};
}

/// A boxed future, so that the store traits can be used as `dyn Store`.
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// True when `entry` reaches a socket in `rooms` (its own id room included).
pub fn reaches(target: &Target, rooms: &[String]) -> bool {
    let in_target = target.rooms.is_empty() || target.rooms.iter().any(|r| rooms.contains(r));
    in_target && !target.except.iter().any(|r| rooms.contains(r))
}
