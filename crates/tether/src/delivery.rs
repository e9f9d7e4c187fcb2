//! Guaranteed delivery: every stored event goes through the store before any
//! client sees it, carries its position, and reaches each socket exactly once,
//! in order — live, or caught up from the store after a disconnection or while
//! the socket was too slow.
//!
//! - [`Publisher`]: one task that appends what sockets emit in batches (the
//!   store groups them into one commit), then fans each entry out in position
//!   order, encoded once for every receiver.
//! - [`Cursor`]: per socket, the last position delivered and whether the socket
//!   is live or catching up from the store; a catching-up socket buffers what
//!   the fan-out brings (bounded) and switches to live at the seam without a
//!   gap or a duplicate.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde_json::value::RawValue;
use tether_proto::engine::Frame;
use tether_proto::socketio::{Packet, Parser};
use tether_proto::tether::Offset;
use tokio::sync::{mpsc, oneshot};

use crate::engine::SendBudget;
use crate::store::{Append, AppendOnce, Entry, NewEntry, Seq, Store, StoreError};

/// Connection state recovery settings.
///
/// ```
/// use std::time::Duration;
/// let recovery = tether::Recovery::default()
///     .max_disconnection(Duration::from_secs(30))
///     .skip_middlewares(false);
/// assert_eq!(recovery.max_disconnection, Some(Duration::from_secs(30)));
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Recovery {
    /// How long a disconnected session stays recoverable; `None`: forever
    /// (as long as the store keeps the entries).
    pub max_disconnection: Option<Duration>,
    /// Skip the namespace middlewares when a session is recovered.
    pub skip_middlewares: bool,
}

impl Default for Recovery {
    fn default() -> Self {
        Self {
            max_disconnection: Some(Duration::from_secs(120)),
            skip_middlewares: true,
        }
    }
}

impl Recovery {
    /// How long a disconnected session stays recoverable (`None`: as long as
    /// the store keeps its entries).
    #[must_use]
    pub fn max_disconnection(mut self, max_disconnection: impl Into<Option<Duration>>) -> Self {
        self.max_disconnection = max_disconnection.into();
        self
    }

    /// Whether the namespace middlewares are skipped when a session is
    /// recovered.
    #[must_use]
    pub fn skip_middlewares(mut self, skip_middlewares: bool) -> Self {
        self.skip_middlewares = skip_middlewares;
        self
    }
}

/// Entries a catching-up socket buffers from the live fan-out before it falls
/// back to re-reading the store (fewer when the send budget is full).
const CATCH_UP_BUFFER: usize = 1024;
/// Most entries read from the store per page while catching up; a page is
/// also sized by bytes, to what the socket's queue and the send budget can
/// take (see `Socket::catch_up`).
pub(crate) const PAGE: usize = 512;

/// An entry ready to send: its position and its encoded frames (shared by
/// every receiver).
#[derive(Debug, Clone)]
pub(crate) struct Outgoing {
    pub(crate) seq: Seq,
    pub(crate) frames: Arc<[Frame]>,
}

impl Outgoing {
    /// Bytes of its frames.
    pub(crate) fn size(&self) -> usize {
        self.frames.iter().map(Frame::len).sum()
    }
}

/// Stands for the entry's own position in stored arguments (see
/// [`crate::ArgsExt::push_seq`]).
const SEQ_PLACEHOLDER: &str = "{\"_tether_seq\":true}";

pub(crate) fn seq_placeholder() -> Box<RawValue> {
    RawValue::from_string(SEQ_PLACEHOLDER.to_owned()).unwrap_or_else(|_| RawValue::NULL.to_owned())
}

/// The arguments of a stored entry as clients receive them (its own
/// position filled in where [`crate::ArgsExt::push_seq`] put it), without the
/// recovery offset.
pub fn delivered_args(entry: &Entry) -> Vec<Box<RawValue>> {
    let mut values: Vec<Box<RawValue>> =
        serde_json::from_str(&entry.entry.args).unwrap_or_default();
    for value in &mut values {
        if value.get() == SEQ_PLACEHOLDER {
            if let Ok(seq) = serde_json::value::to_raw_value(&entry.seq) {
                *value = seq;
            }
        }
    }
    values
}

/// Encodes a stored entry as an EVENT whose last argument is its offset.
pub(crate) fn encode_entry(entry: &Entry, epoch: &str, parser: Parser) -> Outgoing {
    let mut values = delivered_args(entry);
    let offset = Offset::new(epoch, entry.seq).to_string();
    if let Ok(raw) = serde_json::value::to_raw_value(&offset) {
        values.push(raw);
    }
    let packet = Packet::event(
        entry.entry.target.nsp.clone(),
        &entry.entry.event,
        &values,
        entry.entry.attachments.clone(),
        None,
    );
    Outgoing {
        seq: entry.seq,
        frames: packet.encode(parser).into(),
    }
}

/// Where a socket stands in the store.
#[derive(Debug)]
enum Mode {
    Live,
    CatchingUp {
        buffer: VecDeque<Outgoing>,
        overflowed: bool,
    },
}

/// The delivery state of one socket.
#[derive(Debug)]
pub(crate) struct Cursor {
    inner: Mutex<CursorState>,
    /// Where the live entries a catching-up socket holds are counted.
    budget: Arc<SendBudget>,
}

#[derive(Debug)]
struct CursorState {
    last: Seq,
    mode: Mode,
    task: bool,
    /// Bytes of the entries in the catch-up buffer (counted in the budget).
    buffered: usize,
}

impl Drop for Cursor {
    fn drop(&mut self) {
        self.budget.release(self.inner.get_mut().buffered);
    }
}

/// What a send attempt did.
pub(crate) enum SendOutcome {
    Sent,
    Full,
    Closed,
}

impl Cursor {
    /// A cursor at `last`, catching up (the first pass reads what was stored
    /// after `last`).
    pub(crate) fn new(last: Seq, budget: Arc<SendBudget>) -> Self {
        Self {
            inner: Mutex::new(CursorState {
                last,
                mode: Mode::CatchingUp {
                    buffer: VecDeque::new(),
                    overflowed: false,
                },
                task: false,
                buffered: 0,
            }),
            budget,
        }
    }

    /// The last position delivered.
    pub(crate) fn last(&self) -> Seq {
        self.inner.lock().last
    }

    /// An entry from the live fan-out. Returns true when a catch-up task must
    /// be started (the socket could not take it).
    pub(crate) fn offer(&self, out: &Outgoing, send: impl Fn(&[Frame]) -> SendOutcome) -> bool {
        let mut guard = self.inner.lock();
        let s = &mut *guard;
        if out.seq <= s.last {
            return false;
        }
        match &mut s.mode {
            Mode::Live => match send(&out.frames) {
                SendOutcome::Sent => {
                    s.last = out.seq;
                    false
                }
                SendOutcome::Closed => false,
                SendOutcome::Full => {
                    metrics::counter!(crate::metrics::SEND_QUEUE_PAUSES).increment(1);
                    s.mode = Mode::CatchingUp {
                        buffer: VecDeque::new(),
                        overflowed: false,
                    };
                    !std::mem::replace(&mut s.task, true)
                }
            },
            Mode::CatchingUp { buffer, overflowed } => {
                let size = out.size();
                // Over the budget (and this buffer's own share), the buffer
                // goes: the store has it all.
                if buffer.len() < CATCH_UP_BUFFER && self.budget.try_charge(size, s.buffered) {
                    buffer.push_back(out.clone());
                    s.buffered += size;
                } else {
                    buffer.clear();
                    self.budget.release(std::mem::take(&mut s.buffered));
                    *overflowed = true;
                }
                false
            }
        }
    }

    /// Claims the catch-up task (false if one runs already).
    pub(crate) fn claim_task(&self) -> bool {
        !std::mem::replace(&mut self.inner.lock().task, true)
    }

    /// Delivers a page read from the store, then, if the page was the end of
    /// the store, the buffered live entries, and goes live. Returns true once
    /// live (the catch-up task ends), false to read another page.
    pub(crate) fn apply_page(
        &self,
        page: &[Outgoing],
        end_of_store: bool,
        send: impl Fn(&[Frame]) -> SendOutcome,
    ) -> PageResult {
        let mut guard = self.inner.lock();
        let s = &mut *guard;
        for out in page {
            if out.seq <= s.last {
                continue;
            }
            match send(&out.frames) {
                SendOutcome::Sent => s.last = out.seq,
                SendOutcome::Full => return PageResult::Full,
                SendOutcome::Closed => return PageResult::Closed,
            }
        }
        if !end_of_store {
            return PageResult::More;
        }
        let Mode::CatchingUp { buffer, overflowed } = &mut s.mode else {
            s.task = false;
            return PageResult::Live;
        };
        let buffered: Vec<Outgoing> = buffer.drain(..).collect();
        // Taken out of the buffer: counted again as they are queued.
        self.budget.release(std::mem::take(&mut s.buffered));
        if std::mem::take(overflowed) {
            return PageResult::More;
        }
        for out in buffered {
            if out.seq <= s.last {
                continue;
            }
            match send(&out.frames) {
                SendOutcome::Sent => s.last = out.seq,
                SendOutcome::Full => return PageResult::Full,
                SendOutcome::Closed => return PageResult::Closed,
            }
        }
        s.mode = Mode::Live;
        s.task = false;
        PageResult::Live
    }

    /// The catch-up task stops (socket closed, store failure).
    pub(crate) fn release_task(&self) {
        self.inner.lock().task = false;
    }
}

/// Result of [`Cursor::apply_page`].
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum PageResult {
    Live,
    More,
    Full,
    Closed,
}

/// A request to store an event, then fan it out.
pub(crate) struct Publish {
    pub(crate) entry: NewEntry,
    pub(crate) key: Option<String>,
    /// Sockets of this namespace receive it after commit.
    pub(crate) fan_out: Arc<dyn Fn(&Entry) + Send + Sync>,
    pub(crate) reply: Option<oneshot::Sender<Result<AppendOnce, StoreError>>>,
}

/// What the publisher task receives.
enum Command {
    Publish(Publish),
    /// Answered once every publish queued before it is stored and fanned out.
    Flush(oneshot::Sender<()>),
}

/// Appends in batches, then fans out in position order.
pub(crate) struct Publisher {
    tx: mpsc::Sender<Command>,
    store: Arc<dyn Store>,
    write_path: Arc<Mutex<WritePath>>,
}

/// Least time between two health checks started by refused emits.
const PROBE_INTERVAL: Duration = Duration::from_millis(200);

/// What the publisher knows of the store's write path: the failure of the
/// last commit, until an append succeeds or a health check passes.
#[derive(Debug, Default)]
struct WritePath {
    failure: Option<StoreError>,
    /// Counts failures, so that a health check started before a newer one
    /// does not clear it.
    generation: u64,
    probing: bool,
    last_probe: Option<std::time::Instant>,
}

impl WritePath {
    /// Records what a batch's appends gave.
    fn committed(&mut self, results: &[Result<AppendOnce, StoreError>]) {
        if results.iter().any(Result::is_ok) {
            self.failure = None;
        } else if let Some(Err(e)) = results.first() {
            self.failure = Some(e.clone());
            self.generation += 1;
        }
    }
}

impl Publisher {
    /// Starts the publisher task on `store`. With `fan_out` false, entries are
    /// only stored: the store's feed brings them back to be fanned out.
    pub(crate) fn start(store: Arc<dyn Store>, fan_out: bool) -> Self {
        let (tx, rx) = mpsc::channel(65_536);
        let write_path = Arc::new(Mutex::new(WritePath::default()));
        tokio::spawn(run_publisher(
            store.clone(),
            rx,
            fan_out,
            write_path.clone(),
        ));
        Self {
            tx,
            store,
            write_path,
        }
    }

    /// The failure of the store's last commit, if it has not been seen
    /// working since (an append that succeeded, or a health check that
    /// passed). While it fails, a health check is started now and then
    /// (at most every [`PROBE_INTERVAL`]), so that the store is seen back
    /// even if nothing but refused emits comes.
    pub(crate) fn write_failure(&self) -> Result<(), StoreError> {
        let mut state = self.write_path.lock();
        let Some(failure) = state.failure.clone() else {
            return Ok(());
        };
        let due = state
            .last_probe
            .is_none_or(|at| at.elapsed() >= PROBE_INTERVAL);
        if !state.probing && due {
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                state.probing = true;
                state.last_probe = Some(std::time::Instant::now());
                let generation = state.generation;
                let (store, write_path) = (self.store.clone(), self.write_path.clone());
                runtime.spawn(async move {
                    let healthy = store.check_health().await.is_healthy();
                    let mut state = write_path.lock();
                    state.probing = false;
                    if healthy && state.generation == generation {
                        state.failure = None;
                    }
                });
            }
        }
        Err(failure)
    }

    /// Queues a publish; fails at once when the queue is full or closed.
    pub(crate) fn publish(&self, publish: Publish) -> Result<(), StoreError> {
        self.tx
            .try_send(Command::Publish(publish))
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => {
                    StoreError::Unavailable("publish queue full".into())
                }
                mpsc::error::TrySendError::Closed(_) => StoreError::Closed,
            })
    }
}

impl Publisher {
    /// Waits until everything published so far is stored and fanned out.
    pub(crate) async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Command::Flush(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }
}

async fn run_publisher(
    store: Arc<dyn Store>,
    mut rx: mpsc::Receiver<Command>,
    fan_out: bool,
    write_path: Arc<Mutex<WritePath>>,
) {
    let mut commands = Vec::with_capacity(4096);
    let mut batch = Vec::with_capacity(4096);
    let mut flushes = Vec::new();
    while rx.recv_many(&mut commands, 4096).await > 0 {
        for command in commands.drain(..) {
            match command {
                Command::Publish(p) => batch.push(p),
                Command::Flush(done) => flushes.push(done),
            }
        }
        publish_batch(&store, &mut batch, fan_out, &write_path).await;
        for done in flushes.drain(..) {
            let _ = done.send(());
        }
    }
}

async fn publish_batch(
    store: &Arc<dyn Store>,
    batch: &mut Vec<Publish>,
    fan_out: bool,
    write_path: &Mutex<WritePath>,
) {
    {
        let started = std::time::Instant::now();
        // Every request of the batch, plain and keyed, goes to the store in
        // one append, so the store commits them together (one round trip for
        // a networked store); none is fanned out before all are stored, and
        // each batch's positions follow the previous batch's.
        let appends: Vec<Append> = batch
            .iter()
            .map(|p| Append {
                entry: p.entry.clone(),
                key: p.key.clone(),
            })
            .collect();
        let results: Vec<Result<AppendOnce, StoreError>> = match store.append_batch(appends).await {
            Ok(outcomes) if outcomes.len() == batch.len() => outcomes.into_iter().map(Ok).collect(),
            Ok(_) => vec![
                Err(StoreError::Unavailable(
                    "the store answered a batch with the wrong number of positions".into()
                ));
                batch.len()
            ],
            Err(e) => vec![Err(e); batch.len()],
        };
        metrics::histogram!(crate::metrics::STORE_COMMIT_SECONDS)
            .record(started.elapsed().as_secs_f64());
        let duplicates = results
            .iter()
            .filter(|r| matches!(r, Ok(AppendOnce::Duplicate(_))))
            .count();
        metrics::counter!(crate::metrics::DUPLICATES).increment(duplicates as u64);
        let failed = results.iter().filter(|r| r.is_err()).count();
        metrics::counter!(crate::metrics::STORE_ERRORS).increment(failed as u64);
        write_path.lock().committed(&results);
        let mut appended: Vec<(Seq, usize)> = results
            .iter()
            .enumerate()
            .filter_map(|(i, r)| match r {
                Ok(AppendOnce::Appended(seq)) => Some((*seq, i)),
                _ => None,
            })
            .collect();
        appended.sort_unstable();
        if !fan_out {
            appended.clear();
        }
        let now = crate::store::now_ms();
        for (seq, i) in appended {
            let p = &batch[i];
            let entry = Entry {
                seq,
                ts_ms: now,
                entry: p.entry.clone(),
            };
            (p.fan_out)(&entry);
        }
        for (p, result) in batch.drain(..).zip(results) {
            if let Some(reply) = p.reply {
                let _ = reply.send(result);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ArgsExt;

    #[test]
    fn seq_placeholder_becomes_the_position() {
        let mut args = crate::Args::new();
        args.push(&"hi").unwrap();
        args.push_seq();
        let (values, _) = args.into_parts();
        let entry = Entry {
            seq: 42,
            ts_ms: 0,
            entry: NewEntry {
                target: crate::store::Target {
                    nsp: "/".into(),
                    ..Default::default()
                },
                event: "chat message".into(),
                args: tether_proto::socketio::event_array(None, &values)
                    .get()
                    .to_owned(),
                attachments: Vec::new(),
            },
        };
        let out = encode_entry(&entry, "E", Parser::Json);
        assert_eq!(
            out.frames[0],
            Frame::text("42[\"chat message\",\"hi\",42,\"t.E.42\"]".into())
        );
    }

    #[test]
    fn stored_events_carry_the_proto_offset() {
        let epoch = crate::id::random_id();
        let entry = Entry {
            seq: 7,
            ts_ms: 0,
            entry: NewEntry {
                target: crate::store::Target {
                    nsp: "/".into(),
                    ..Default::default()
                },
                event: "e".into(),
                args: "[]".into(),
                attachments: Vec::new(),
            },
        };
        let out = encode_entry(&entry, &epoch, Parser::Json);
        let Frame::Text(text) = &out.frames[0] else {
            panic!("a text frame");
        };
        let text = std::str::from_utf8(text).unwrap();
        let values: Vec<String> = serde_json::from_str(text.strip_prefix("42").unwrap()).unwrap();
        assert_eq!(Offset::parse(&values[1]), Some(Offset::new(&epoch, 7)));
    }

    fn test_budget() -> Arc<SendBudget> {
        Arc::new(SendBudget::new(usize::MAX))
    }

    fn out(seq: Seq) -> Outgoing {
        Outgoing {
            seq,
            frames: vec![Frame::text(format!("{seq}"))].into(),
        }
    }

    #[test]
    fn seam_has_no_gap_and_no_duplicate() {
        let sent = Mutex::new(Vec::new());
        let send = |f: &[Frame]| {
            if let Frame::Text(t) = &f[0] {
                sent.lock()
                    .push(String::from_utf8_lossy(t).parse::<u64>().unwrap());
            }
            SendOutcome::Sent
        };
        let c = Cursor::new(10, test_budget());
        // Live entries 12..=14 arrive while the store read (11..=13) runs.
        for s in 12..=14 {
            assert!(!c.offer(&out(s), send));
        }
        let page: Vec<_> = (11..=13).map(out).collect();
        assert_eq!(c.apply_page(&page, true, send), PageResult::Live);
        c.offer(&out(15), send);
        assert_eq!(*sent.lock(), vec![11, 12, 13, 14, 15]);
        assert_eq!(c.last(), 15);
    }

    #[test]
    fn overflow_rereads_the_store() {
        let send = |_: &[Frame]| SendOutcome::Sent;
        let c = Cursor::new(0, test_budget());
        for s in 1..=(CATCH_UP_BUFFER as u64 + 5) {
            c.offer(&out(s), send);
        }
        assert_eq!(c.apply_page(&[out(1)], true, send), PageResult::More);
        assert_eq!(c.last(), 1);
    }

    #[test]
    fn catch_up_buffer_stays_within_the_budget() {
        let budget = Arc::new(SendBudget::new(40));
        // Someone else holds the budget: this buffer only has its share.
        budget.charge(40);
        let c = Cursor::new(0, budget.clone());
        let big = |seq: Seq| Outgoing {
            seq,
            frames: vec![Frame::Text(vec![b'x'; 1000].into())].into(),
        };
        for s in 1..=200 {
            c.offer(&big(s), |_| SendOutcome::Sent);
            let held = budget.used() - 40;
            assert!(held <= SendBudget::SHARE, "{held} bytes held");
        }
        budget.release(40);
        assert!(budget.used() > 0);
        // The buffer overflowed: the store is read again, the budget freed.
        assert_eq!(
            c.apply_page(&[out(1)], true, |_| SendOutcome::Sent),
            PageResult::More
        );
        assert_eq!(budget.used(), 0);
        c.offer(&out(101), |_| SendOutcome::Sent);
        assert!(budget.used() > 0);
        drop(c);
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn full_socket_switches_to_catch_up() {
        let c = Cursor::new(0, test_budget());
        assert_eq!(
            c.apply_page(&[], true, |_| SendOutcome::Sent),
            PageResult::Live
        );
        assert!(c.offer(&out(1), |_| SendOutcome::Full));
        assert_eq!(c.last(), 0);
        assert!(!c.offer(&out(2), |_| SendOutcome::Sent));
        assert_eq!(
            c.apply_page(&[out(1), out(2)], true, |_| SendOutcome::Sent),
            PageResult::Live
        );
        assert_eq!(c.last(), 2);
    }
}
