//! Per-recipient inboxes: messages for a user are stored until a client of
//! that user acknowledges them. Every device of the user that connects gets
//! the pending ones in order, then live ones; an ack of position N
//! acknowledges everything up to N.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::RwLock;
use serde_json::value::RawValue;

use crate::error::EmitError;
use crate::store::{InboxEntry, Seq, Store, StoreError};
use crate::{Args, IntoArgs, Socket};

/// Entries read per page when a device catches up.
const PAGE: usize = 256;

/// Live sockets of each user.
#[derive(Default)]
pub(crate) struct Users {
    by_user: RwLock<HashMap<String, Vec<Socket>>>,
}

impl Users {
    pub(crate) fn add(&self, user: &str, socket: &Socket) {
        self.by_user
            .write()
            .entry(user.to_owned())
            .or_default()
            .push(socket.clone());
    }

    pub(crate) fn remove(&self, user: &str, socket: &Socket) {
        let mut users = self.by_user.write();
        if let Some(list) = users.get_mut(user) {
            list.retain(|s| s.id() != socket.id());
            if list.is_empty() {
                users.remove(user);
            }
        }
    }

    fn sockets(&self, user: &str) -> Vec<Socket> {
        self.by_user.read().get(user).cloned().unwrap_or_default()
    }
}

/// A user's inbox. Get one with [`crate::SocketIo::inbox`].
///
/// ```no_run
/// # async fn demo(io: tether::SocketIo) -> Result<(), tether::EmitError> {
/// let inbox = io.inbox("alice").expect("the server has a store");
/// let seq = inbox.push("dm", ("hi from bob",)).await?;
/// let pending = inbox.pending().await?;
/// assert!(pending.iter().any(|e| e.seq == seq));
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Inbox {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) users: Arc<Users>,
    pub(crate) user: String,
}

impl std::fmt::Debug for Inbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inbox")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

impl Inbox {
    /// Stores an event for the user, then delivers it to every connected
    /// device of theirs. Resolves with its inbox position once stored.
    pub async fn push(&self, event: &str, args: impl IntoArgs) -> Result<Seq, EmitError> {
        let (values, attachments) = args.into_args()?.into_parts();
        let json = tether_proto::socketio::event_array(None, &values)
            .get()
            .to_owned();
        let seq = self
            .store
            .inbox_push(
                &self.user,
                event.to_owned(),
                json.clone(),
                attachments.clone(),
            )
            .await?;
        let entry = InboxEntry {
            seq,
            ts_ms: crate::store::now_ms(),
            event: event.to_owned(),
            args: json,
            attachments,
        };
        for socket in self.users.sockets(&self.user) {
            socket
                .deliver_inbox_live(&self.store, &self.user, &entry)
                .await;
        }
        Ok(seq)
    }

    /// What the user has not acknowledged yet, oldest first (with the time
    /// each was stored, to decide on a push notification, say).
    pub async fn pending(&self) -> Result<Vec<InboxEntry>, EmitError> {
        let mut all = Vec::new();
        let mut after = 0;
        loop {
            let page = self.store.inbox_pending(&self.user, after, PAGE).await?;
            let done = page.len() < PAGE;
            after = page.last().map_or(after, |e| e.seq);
            all.extend(page);
            if done {
                return Ok(all);
            }
        }
    }
}

/// The event a device receives: the stored arguments, then the inbox position.
/// The client acknowledges it (the official client: by calling the ack callback).
fn args_of(entry: &InboxEntry) -> Args {
    let mut values: Vec<Box<RawValue>> = serde_json::from_str(&entry.args).unwrap_or_default();
    if let Ok(seq) = serde_json::value::to_raw_value(&entry.seq) {
        values.push(seq);
    }
    Args::from_raw(values, entry.attachments.clone())
}

impl Socket {
    /// Sends one inbox entry with an ack request; the ack acknowledges
    /// everything up to it in the store.
    fn send_inbox(&self, store: &Arc<dyn Store>, user: &str, entry: &InboxEntry) {
        // Queued now, in inbox order; only the wait for the ack is a task.
        let pending = match self.send_with_ack(&entry.event, args_of(entry)) {
            Ok(pending) => pending,
            Err(e) => return tracing::debug!(error = %e, seq = entry.seq, "inbox entry not sent"),
        };
        let store = store.clone();
        let user = user.to_owned();
        let seq = entry.seq;
        let timeout = self.inner.conn.config().ack_timeout;
        tokio::spawn(async move {
            match pending.wait(timeout).await {
                Ok(_) => {
                    if let Err(e) = store.inbox_ack(&user, seq).await {
                        tracing::warn!(error = %e, "inbox ack not stored");
                    }
                }
                Err(e) => tracing::debug!(error = %e, seq, "inbox entry not acknowledged"),
            }
        });
    }

    /// A live inbox entry: sent unless the device is still catching up (its
    /// catch-up read sees the entry) or got it already.
    async fn deliver_inbox_live(&self, store: &Arc<dyn Store>, user: &str, entry: &InboxEntry) {
        let Some(cursor) = self.inbox_cursor() else {
            return;
        };
        let mut c = cursor.lock().await;
        if !c.ready || entry.seq <= c.last {
            return;
        }
        c.last = entry.seq;
        self.send_inbox(store, user, entry);
    }

    /// Sends every pending entry of the user, then lets live ones through.
    pub(crate) async fn catch_up_inbox(
        &self,
        store: Arc<dyn Store>,
        user: String,
    ) -> Result<(), StoreError> {
        let Some(cursor) = self.inbox_cursor() else {
            return Ok(());
        };
        let mut c = cursor.lock().await;
        loop {
            let page = store.inbox_pending(&user, c.last, PAGE).await?;
            let done = page.len() < PAGE;
            for entry in &page {
                c.last = entry.seq;
                self.send_inbox(&store, &user, entry);
            }
            if done {
                c.ready = true;
                return Ok(());
            }
        }
    }
}
