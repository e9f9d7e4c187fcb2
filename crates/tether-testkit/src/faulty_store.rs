//! A [`MemoryStore`] the test controls: session saves can be held at a gate,
//! and the whole store can be "down" (every operation fails as a store whose
//! backend is unreachable would).
#![allow(dead_code)]

use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use tether::store::{
    AppendOnce, BoxFuture, Entry, Health, InboxEntry, MemoryStore, NewEntry, Retention, Seq,
    SessionRecord, Store, StoreError,
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

impl Store for FaultyStore {
    fn epoch(&self) -> &str {
        self.inner.epoch()
    }
    fn check_health(&self) -> BoxFuture<'_, Health> {
        match self.check() {
            Ok(()) => self.inner.check_health(),
            Err(e) => Box::pin(std::future::ready(Health::Unhealthy(e.to_string()))),
        }
    }
    fn append(&self, entries: Vec<NewEntry>) -> BoxFuture<'_, Result<Vec<Seq>, StoreError>> {
        pass!(self, self.inner.append(entries))
    }
    fn append_once(
        &self,
        key: String,
        entry: NewEntry,
    ) -> BoxFuture<'_, Result<AppendOnce, StoreError>> {
        pass!(self, self.inner.append_once(key, entry))
    }
    fn read(
        &self,
        nsp: &str,
        rooms: &[String],
        after: Seq,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<Entry>, StoreError>> {
        pass!(self, self.inner.read(nsp, rooms, after, limit))
    }
    fn history(
        &self,
        nsp: &str,
        room: Option<&str>,
        before: Seq,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<Entry>, StoreError>> {
        pass!(self, self.inner.history(nsp, room, before, limit))
    }
    fn bounds(&self) -> BoxFuture<'_, Result<(Seq, Seq), StoreError>> {
        pass!(self, self.inner.bounds())
    }
    fn save_session(&self, record: SessionRecord) -> BoxFuture<'_, Result<(), StoreError>> {
        let mut open = self.saves_open.subscribe();
        Box::pin(async move {
            let _ = open.wait_for(|open| *open).await;
            self.check()?;
            self.inner.save_session(record).await
        })
    }
    fn load_session(&self, pid: &str) -> BoxFuture<'_, Result<Option<SessionRecord>, StoreError>> {
        pass!(self, self.inner.load_session(pid))
    }
    fn delete_session(&self, pid: &str) -> BoxFuture<'_, Result<(), StoreError>> {
        pass!(self, self.inner.delete_session(pid))
    }
    fn inbox_push(
        &self,
        user: &str,
        event: String,
        args: String,
        attachments: Vec<Bytes>,
    ) -> BoxFuture<'_, Result<Seq, StoreError>> {
        pass!(self, self.inner.inbox_push(user, event, args, attachments))
    }
    fn inbox_pending(
        &self,
        user: &str,
        after: Seq,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<InboxEntry>, StoreError>> {
        pass!(self, self.inner.inbox_pending(user, after, limit))
    }
    fn inbox_ack(&self, user: &str, upto: Seq) -> BoxFuture<'_, Result<(), StoreError>> {
        pass!(self, self.inner.inbox_ack(user, upto))
    }
    fn trim(
        &self,
        retention: Retention,
        sessions_before_ms: i64,
    ) -> BoxFuture<'_, Result<u64, StoreError>> {
        pass!(self, self.inner.trim(retention, sessions_before_ms))
    }
}
