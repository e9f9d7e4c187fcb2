//! A [`MemoryStore`] the test controls: session saves can be held at a gate,
//! and the whole store can be "down" (every operation fails as a store whose
//! backend is unreachable would).
#![allow(dead_code)]

use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use tether::store::{
    Append, AppendOnce, BoxFuture, Entry, EventLog, Health, InboxEntry, Inboxes, MemoryStore,
    Retain, Retention, Seq, SessionRecord, Sessions, SharedFeed, StoreError, StreamRetention,
};
use tokio::sync::watch;

pub struct FaultyStore {
    pub inner: MemoryStore,
    /// Session saves wait until this is true.
    saves_open: watch::Sender<bool>,
    down: AtomicBool,
}

impl Default for FaultyStore {
    fn default() -> Self {
        Self::new()
    }
}

impl FaultyStore {
    /// Session saves go through at once; the store is up.
    pub fn new() -> Self {
        Self {
            inner: MemoryStore::new(),
            saves_open: watch::channel(true).0,
            down: AtomicBool::new(false),
        }
    }

    /// Holds (`false`) or lets through (`true`) session saves.
    pub fn open_saves(&self, open: bool) {
        self.saves_open.send_replace(open);
    }

    /// Takes the store down or brings it back.
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    fn check(&self) -> Result<(), StoreError> {
        if self.down.load(Ordering::SeqCst) {
            Err(StoreError::Unavailable(
                "the test took the store down".into(),
            ))
        } else {
            Ok(())
        }
    }
}

/// Runs `op` on the inner store unless the store is down.
macro_rules! pass {
    ($self:ident, $op:expr) => {
        match $self.check() {
            Ok(()) => $op,
            Err(e) => Box::pin(std::future::ready(Err(e))),
        }
    };
}

impl EventLog for FaultyStore {
    fn epoch(&self) -> &str {
        self.inner.epoch()
    }
    fn check_health(&self) -> BoxFuture<'_, Health> {
        match self.check() {
            Ok(()) => self.inner.check_health(),
            Err(e) => Box::pin(std::future::ready(Health::Unhealthy(e.to_string()))),
        }
    }
    fn append_batch(
        &self,
        batch: Vec<Append>,
    ) -> BoxFuture<'_, Result<Vec<AppendOnce>, StoreError>> {
        pass!(self, self.inner.append_batch(batch))
    }
    fn read<'a>(
        &'a self,
        nsp: &'a str,
        rooms: &'a [String],
        after: Seq,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<Entry>, StoreError>> {
        pass!(self, self.inner.read(nsp, rooms, after, limit))
    }
    fn history<'a>(
        &'a self,
        nsp: &'a str,
        room: Option<&'a str>,
        before: Seq,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<Entry>, StoreError>> {
        pass!(self, self.inner.history(nsp, room, before, limit))
    }
    fn bounds(&self) -> BoxFuture<'_, Result<(Seq, Seq), StoreError>> {
        pass!(self, self.inner.bounds())
    }
    fn shared_feed(&self) -> Option<&dyn SharedFeed> {
        self.inner.shared_feed()
    }
}

impl Sessions for FaultyStore {
    fn save_session(&self, record: SessionRecord) -> BoxFuture<'_, Result<(), StoreError>> {
        let mut open = self.saves_open.subscribe();
        Box::pin(async move {
            let _ = open.wait_for(|open| *open).await;
            self.check()?;
            self.inner.save_session(record).await
        })
    }
    fn load_session<'a>(
        &'a self,
        pid: &'a str,
    ) -> BoxFuture<'a, Result<Option<SessionRecord>, StoreError>> {
        pass!(self, self.inner.load_session(pid))
    }
    fn delete_session<'a>(&'a self, pid: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        pass!(self, self.inner.delete_session(pid))
    }
}

impl Inboxes for FaultyStore {
    fn inbox_push<'a>(
        &'a self,
        user: &'a str,
        event: String,
        args: String,
        attachments: Vec<Bytes>,
    ) -> BoxFuture<'a, Result<Seq, StoreError>> {
        pass!(self, self.inner.inbox_push(user, event, args, attachments))
    }
    fn inbox_pending<'a>(
        &'a self,
        user: &'a str,
        after: Seq,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<InboxEntry>, StoreError>> {
        pass!(self, self.inner.inbox_pending(user, after, limit))
    }
    fn inbox_ack<'a>(&'a self, user: &'a str, upto: Seq) -> BoxFuture<'a, Result<(), StoreError>> {
        pass!(self, self.inner.inbox_ack(user, upto))
    }
}

impl Retain for FaultyStore {
    fn trim<'a>(
        &'a self,
        retention: Retention,
        streams: &'a [StreamRetention],
        sessions_before_ms: i64,
    ) -> BoxFuture<'a, Result<u64, StoreError>> {
        pass!(
            self,
            self.inner.trim(retention, streams, sessions_before_ms)
        )
    }
    fn supports_stream_retention(&self) -> bool {
        self.inner.supports_stream_retention()
    }
    fn trimmed<'a>(
        &'a self,
        nsp: &'a str,
        streams: &'a [String],
    ) -> BoxFuture<'a, Result<Seq, StoreError>> {
        pass!(self, self.inner.trimmed(nsp, streams))
    }
}
