//! [`MemoryStore`]: everything in memory, behind one lock. For tests and for
//! servers that need no durability across restarts.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::ops::Bound;

use bytes::Bytes;
use parking_lot::Mutex;

use super::trim::{streams_of, TrimPlan};
use super::{
    now_ms, reaches, Append, AppendOnce, BoxFuture, Entry, EventLog, Health, InboxEntry, Inboxes,
    NewEntry, Retain, Retention, Seq, SessionRecord, Sessions, SharedFeed, StoreError,
    StreamRetention,
};

/// A [`Store`](super::Store) in memory: nothing survives the process, and every instance
/// has its own random epoch.
///
/// Every operation runs at the call, under one [`parking_lot::Mutex`], and
/// returns a ready future; it never fails.
#[derive(Debug)]
pub struct MemoryStore {
    epoch: String,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// The last position handed out.
    last_seq: Seq,
    /// The highest position trimmed (0: none).
    trimmed_upto: Seq,
    /// The highest position trimmed from each stream, by (namespace, room).
    stream_trims: HashMap<(String, String), Seq>,
    /// The last timestamp given: timestamps never go back with increasing
    /// positions, so age trimming removes a prefix.
    last_ts: i64,
    /// Every entry kept, by position.
    entries: BTreeMap<Seq, Entry>,
    namespaces: HashMap<String, Namespace>,
    sessions: HashMap<String, SessionRecord>,
    inboxes: HashMap<String, Inbox>,
}

#[derive(Debug, Default)]
struct Namespace {
    /// Positions of the namespace's entries, oldest first.
    seqs: VecDeque<Seq>,
    /// Positions per stream: each room, and `""` for the whole namespace.
    streams: HashMap<String, BTreeSet<Seq>>,
    /// Idempotency keys and the position their entry got.
    keys: HashMap<String, Seq>,
    /// The key of an entry appended with one, to drop it with the entry.
    key_of: HashMap<Seq, String>,
}

#[derive(Debug, Default)]
struct Inbox {
    /// The last position handed out in this inbox.
    last: Seq,
    /// Acknowledged up to here (inclusive).
    upto: Seq,
    /// Unacknowledged entries.
    entries: BTreeMap<Seq, InboxEntry>,
}

impl MemoryStore {
    /// An empty store with a new random epoch.
    pub fn new() -> Self {
        MemoryStore {
            epoch: crate::id::random_id(),
            state: Mutex::new(State::default()),
        }
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

/// The answer of an operation done at the call.
fn ready<'a, T: Send + 'a>(value: T) -> BoxFuture<'a, Result<T, StoreError>> {
    Box::pin(std::future::ready(Ok(value)))
}

impl State {
    fn next_ts(&mut self) -> i64 {
        self.last_ts = now_ms().max(self.last_ts);
        self.last_ts
    }

    fn append(&mut self, entry: NewEntry, ts_ms: i64) -> Seq {
        self.last_seq += 1;
        let seq = self.last_seq;
        let ns = self.namespaces.entry(entry.target.nsp.clone()).or_default();
        ns.seqs.push_back(seq);
        for room in streams_of(&entry.target.rooms) {
            ns.streams.entry(room.to_owned()).or_default().insert(seq);
        }
        self.entries.insert(seq, Entry { seq, ts_ms, entry });
        seq
    }

    /// Removes an entry with its stream positions and idempotency key.
    fn remove(&mut self, seq: Seq) {
        let Some(entry) = self.entries.remove(&seq) else {
            return;
        };
        self.trimmed_upto = self.trimmed_upto.max(seq);
        let target = &entry.entry.target;
        for room in streams_of(&target.rooms) {
            let mark = self
                .stream_trims
                .entry((target.nsp.clone(), room.to_owned()))
                .or_default();
            *mark = (*mark).max(seq);
        }
        let Some(ns) = self.namespaces.get_mut(&target.nsp) else {
            return;
        };
        // Trimming removes the oldest entries of a namespace: the front.
        if ns.seqs.front() == Some(&seq) {
            ns.seqs.pop_front();
        } else if let Ok(i) = ns.seqs.binary_search(&seq) {
            ns.seqs.remove(i);
        }
        for room in streams_of(&target.rooms) {
            if let Some(stream) = ns.streams.get_mut(room) {
                stream.remove(&seq);
                if stream.is_empty() {
                    ns.streams.remove(room);
                }
            }
        }
        if let Some(key) = ns.key_of.remove(&seq) {
            ns.keys.remove(&key);
        }
        if ns.seqs.is_empty() && ns.keys.is_empty() {
            self.namespaces.remove(&target.nsp);
        }
    }

    fn read(&self, nsp: &str, rooms: &[String], after: Seq, limit: usize) -> Vec<Entry> {
        let mut out = Vec::new();
        let Some(ns) = self.namespaces.get(nsp) else {
            return out;
        };
        let mut names: Vec<&str> = vec![""];
        for room in rooms {
            if !names.contains(&room.as_str()) {
                names.push(room);
            }
        }
        let mut cursors: Vec<_> = names
            .iter()
            .filter_map(|name| ns.streams.get(*name))
            .map(|stream| {
                stream
                    .range((Bound::Excluded(after), Bound::Unbounded))
                    .peekable()
            })
            .collect();
        while out.len() < limit {
            let Some(seq) = cursors
                .iter_mut()
                .filter_map(|c| c.peek().copied())
                .min()
                .copied()
            else {
                break;
            };
            for cursor in &mut cursors {
                cursor.next_if_eq(&&seq);
            }
            if let Some(entry) = self.entries.get(&seq) {
                if reaches(&entry.entry.target, rooms) {
                    out.push(entry.clone());
                }
            }
        }
        out
    }

    fn history(&self, nsp: &str, room: Option<&str>, before: Seq, limit: usize) -> Vec<Entry> {
        let rooms: Vec<String> = room.map(str::to_owned).into_iter().collect();
        let stream = self
            .namespaces
            .get(nsp)
            .and_then(|ns| ns.streams.get(room.unwrap_or("")));
        let mut out: Vec<Entry> = stream
            .into_iter()
            .flat_map(|s| s.range(..before).rev())
            .filter_map(|seq| self.entries.get(seq))
            .filter(|entry| reaches(&entry.entry.target, &rooms))
            .take(limit)
            .cloned()
            .collect();
        out.reverse();
        out
    }

    /// Trimming with per-stream retention: the candidates are the entries
    /// some limit lets go; each goes only if none of its streams keeps it.
    fn trim_streams(
        &mut self,
        retention: Retention,
        streams: &[StreamRetention],
        sessions_before_ms: i64,
    ) -> u64 {
        let mut plan = TrimPlan::new(&retention);
        let mut candidates = BTreeSet::new();
        if let Some(cutoff) = plan.default_age() {
            candidates.extend(
                self.entries
                    .values()
                    .take_while(|e| e.ts_ms < cutoff)
                    .map(|e| e.seq),
            );
        }
        for (name, ns) in &self.namespaces {
            let mut count_cut = None;
            if let Some(max_count) = retention.max_count {
                let excess = ns
                    .seqs
                    .len()
                    .saturating_sub(usize::try_from(max_count).unwrap_or(usize::MAX));
                if excess > 0 {
                    count_cut = ns.seqs.get(excess - 1).copied();
                    candidates.extend(ns.seqs.iter().take(excess));
                }
            }
            plan.namespace(name, count_cut);
        }
        for policy in streams {
            let stream = self
                .namespaces
                .get(&policy.nsp)
                .and_then(|ns| ns.streams.get(&policy.room));
            let mut count_cut = None;
            if let (Some(stream), Some(max_count)) = (stream, policy.max_count) {
                let excess = stream
                    .len()
                    .saturating_sub(usize::try_from(max_count).unwrap_or(usize::MAX));
                if excess > 0 {
                    count_cut = stream.iter().nth(excess - 1).copied();
                    candidates.extend(stream.iter().take(excess));
                }
            }
            let cuts = plan.stream(policy, count_cut);
            if let (Some(stream), Some(cutoff)) = (stream, cuts.age_cutoff_ms) {
                candidates.extend(
                    stream
                        .iter()
                        .take_while(|seq| self.entries.get(seq).is_some_and(|e| e.ts_ms < cutoff)),
                );
            }
        }
        let doomed: Vec<Seq> = candidates
            .into_iter()
            .filter(|seq| {
                self.entries.get(seq).is_some_and(|entry| {
                    let target = &entry.entry.target;
                    !plan.keeps(&target.nsp, &target.rooms, entry.seq, entry.ts_ms)
                })
            })
            .collect();
        let removed = doomed.len() as u64;
        for seq in doomed {
            self.remove(seq);
        }
        self.sessions
            .retain(|_, s| s.connected || s.updated_ms >= sessions_before_ms);
        removed
    }

    /// Appends `entry` unless its `key` was used before in its namespace.
    fn append_keyed(&mut self, key: Option<String>, entry: NewEntry, ts_ms: i64) -> AppendOnce {
        let Some(key) = key else {
            return AppendOnce::Appended(self.append(entry, ts_ms));
        };
        let seen = self
            .namespaces
            .get(&entry.target.nsp)
            .and_then(|ns| ns.keys.get(&key))
            .copied();
        if let Some(seq) = seen {
            return AppendOnce::Duplicate(seq);
        }
        let nsp = entry.target.nsp.clone();
        let seq = self.append(entry, ts_ms);
        let ns = self.namespaces.entry(nsp).or_default();
        ns.key_of.insert(seq, key.clone());
        ns.keys.insert(key, seq);
        AppendOnce::Appended(seq)
    }
}

impl EventLog for MemoryStore {
    fn epoch(&self) -> &str {
        &self.epoch
    }

    fn check_health(&self) -> BoxFuture<'_, Health> {
        // Nothing here can fail.
        Box::pin(std::future::ready(Health::Healthy))
    }

    fn append_batch(
        &self,
        batch: Vec<Append>,
    ) -> BoxFuture<'_, Result<Vec<AppendOnce>, StoreError>> {
        let mut state = self.state.lock();
        let ts = state.next_ts();
        let outcomes = batch
            .into_iter()
            .map(|Append { entry, key }| state.append_keyed(key, entry, ts))
            .collect();
        ready(outcomes)
    }

    fn read<'a>(
        &'a self,
        nsp: &'a str,
        rooms: &'a [String],
        after: Seq,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<Entry>, StoreError>> {
        ready(self.state.lock().read(nsp, rooms, after, limit))
    }

    fn history<'a>(
        &'a self,
        nsp: &'a str,
        room: Option<&'a str>,
        before: Seq,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<Entry>, StoreError>> {
        ready(self.state.lock().history(nsp, room, before, limit))
    }

    fn bounds(&self) -> BoxFuture<'_, Result<(Seq, Seq), StoreError>> {
        let state = self.state.lock();
        ready((state.last_seq, state.trimmed_upto + 1))
    }

    fn shared_feed(&self) -> Option<&dyn SharedFeed> {
        // Owned by one process.
        None
    }
}

impl Sessions for MemoryStore {
    fn save_session(&self, record: SessionRecord) -> BoxFuture<'_, Result<(), StoreError>> {
        self.state
            .lock()
            .sessions
            .insert(record.pid.clone(), record);
        ready(())
    }

    fn load_session<'a>(
        &'a self,
        pid: &'a str,
    ) -> BoxFuture<'a, Result<Option<SessionRecord>, StoreError>> {
        ready(self.state.lock().sessions.get(pid).cloned())
    }

    fn delete_session<'a>(&'a self, pid: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        self.state.lock().sessions.remove(pid);
        ready(())
    }
}

impl Inboxes for MemoryStore {
    fn inbox_push<'a>(
        &'a self,
        user: &'a str,
        event: String,
        args: String,
        attachments: Vec<Bytes>,
    ) -> BoxFuture<'a, Result<Seq, StoreError>> {
        let mut state = self.state.lock();
        let ts_ms = state.next_ts();
        let inbox = state.inboxes.entry(user.to_owned()).or_default();
        // Above the ack position too, so that a new entry is never taken as
        // already acknowledged.
        let seq = inbox.last.max(inbox.upto) + 1;
        inbox.last = seq;
        inbox.entries.insert(
            seq,
            InboxEntry {
                seq,
                ts_ms,
                event,
                args,
                attachments,
            },
        );
        ready(seq)
    }

    fn inbox_pending<'a>(
        &'a self,
        user: &'a str,
        after: Seq,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<InboxEntry>, StoreError>> {
        let state = self.state.lock();
        let pending = state
            .inboxes
            .get(user)
            .map(|inbox| {
                let from = after.max(inbox.upto);
                inbox
                    .entries
                    .range((Bound::Excluded(from), Bound::Unbounded))
                    .take(limit)
                    .map(|(_, entry)| entry.clone())
                    .collect()
            })
            .unwrap_or_default();
        ready(pending)
    }

    fn inbox_ack<'a>(&'a self, user: &'a str, upto: Seq) -> BoxFuture<'a, Result<(), StoreError>> {
        let mut state = self.state.lock();
        let inbox = state.inboxes.entry(user.to_owned()).or_default();
        inbox.upto = inbox.upto.max(upto);
        let kept = inbox.entries.split_off(&inbox.upto.saturating_add(1));
        inbox.entries = kept;
        ready(())
    }
}

impl Retain for MemoryStore {
    fn trim<'a>(
        &'a self,
        retention: Retention,
        streams: &'a [StreamRetention],
        sessions_before_ms: i64,
    ) -> BoxFuture<'a, Result<u64, StoreError>> {
        ready(
            self.state
                .lock()
                .trim_streams(retention, streams, sessions_before_ms),
        )
    }

    fn supports_stream_retention(&self) -> bool {
        true
    }

    fn trimmed<'a>(
        &'a self,
        nsp: &'a str,
        streams: &'a [String],
    ) -> BoxFuture<'a, Result<Seq, StoreError>> {
        let state = self.state.lock();
        let mark = streams
            .iter()
            .filter_map(|room| state.stream_trims.get(&(nsp.to_owned(), room.clone())))
            .max()
            .copied()
            .unwrap_or(0);
        ready(mark)
    }
}
