//! The checker: from what publishers sent and had acknowledged, what the store
//! holds and what every subscriber received, counts what was lost, duplicated
//! or delivered out of order. Pure: no I/O, so that tests can feed it faults.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Serialize;

/// One message of the benchmark: its publisher and its sequence number
/// (from 1) in that publisher's stream. Its chat content is `<publisher>#<seq>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MsgId {
    /// The publisher's id (`r0`, `n1`, ...).
    pub publisher: String,
    /// Sequence number, from 1.
    pub seq: u64,
}

impl MsgId {
    /// The chat message content that carries this id.
    pub fn content(&self) -> String {
        format!("{}#{}", self.publisher, self.seq)
    }

    /// The content, followed by `|` and `pad` filler bytes when `pad > 0`.
    pub fn padded_content(&self, pad: usize) -> String {
        let mut content = self.content();
        if pad > 0 {
            content.push('|');
            content.extend(std::iter::repeat_n('x', pad));
        }
        content
    }

    /// The clientOffset under which this message is stored once.
    pub fn client_offset(&self) -> String {
        format!("{}-{}", self.publisher, self.seq)
    }

    /// Parses a content written by [`MsgId::content`] or
    /// [`MsgId::padded_content`].
    pub fn parse(content: &str) -> Option<MsgId> {
        let id = content.split('|').next()?;
        let (publisher, seq) = id.rsplit_once('#')?;
        if publisher.is_empty() {
            return None;
        }
        Some(MsgId {
            publisher: publisher.to_owned(),
            seq: seq.parse().ok()?,
        })
    }
}

/// What one subscriber received, in arrival order.
#[derive(Debug, Clone, Default)]
pub struct SubscriberLog {
    /// The subscriber's name.
    pub name: String,
    /// `rust` or `node`, with `slow` for the slow consumer.
    pub kind: String,
    /// (content, serverOffset) in the order received.
    pub received: Vec<(String, u64)>,
}

/// Everything observed during a run.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    /// Messages whose first emit happened, per publisher (seq 1..=n).
    pub sent: BTreeMap<String, u64>,
    /// Acknowledged messages and the serverOffset in their ack.
    pub acked: HashMap<MsgId, u64>,
    /// The store's entries: (serverOffset, content), in store order.
    pub stored: Vec<(u64, String)>,
    /// Every subscriber.
    pub subscribers: Vec<SubscriberLog>,
}

/// The checker's verdict for one subscriber.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct SubscriberCheck {
    /// The subscriber's name.
    pub name: String,
    /// `rust` or `node` (with `slow` for the slow consumer).
    pub kind: String,
    /// Events received, duplicates included.
    pub delivered: u64,
    /// Distinct messages received.
    pub unique: u64,
    /// Acknowledged messages never received.
    pub lost: u64,
    /// Of `lost`, those stored after the last message received: not yet
    /// delivered when the run stopped (a subscriber behind), rather than gaps.
    pub lost_at_tail: u64,
    /// Stored messages never received (acknowledged or not).
    pub missing_stored: u64,
    /// Receptions of a message received before.
    pub duplicated: u64,
    /// New messages received after one with a greater serverOffset.
    pub out_of_order: u64,
    /// Messages received with another serverOffset than the store's.
    pub offset_mismatch: u64,
    /// Received contents that are not in the store.
    pub unknown: u64,
}

/// The checker's verdict for the run.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Verdict {
    /// Messages sent (first emit), all publishers.
    pub sent: u64,
    /// Messages acknowledged with a position.
    pub acked: u64,
    /// Entries in the store.
    pub stored: u64,
    /// Messages stored more than once (exactly-once broken).
    pub stored_duplicates: u64,
    /// Acknowledged messages absent from the store.
    pub lost_from_store: u64,
    /// Acks whose position is not where the store has the message.
    pub ack_offset_mismatch: u64,
    /// Messages of one publisher stored out of its sending order.
    pub publisher_order_violations: u64,
    /// Store entries that are not benchmark messages.
    pub stored_unknown: u64,
    /// Per subscriber.
    pub subscribers: Vec<SubscriberCheck>,
}

impl Verdict {
    /// Acknowledged messages lost, anywhere (store or a subscriber).
    pub fn lost(&self) -> u64 {
        self.lost_from_store + self.subscribers.iter().map(|s| s.lost).sum::<u64>()
    }

    /// Duplicates, anywhere (store or a subscriber).
    pub fn duplicated(&self) -> u64 {
        self.stored_duplicates + self.subscribers.iter().map(|s| s.duplicated).sum::<u64>()
    }

    /// Out-of-order deliveries and publisher order violations.
    pub fn out_of_order(&self) -> u64 {
        self.publisher_order_violations
            + self.subscribers.iter().map(|s| s.out_of_order).sum::<u64>()
    }

    /// Every other inconsistency: wrong offsets, unknown or undelivered
    /// stored messages.
    pub fn inconsistencies(&self) -> u64 {
        self.ack_offset_mismatch
            + self.stored_unknown
            + self
                .subscribers
                .iter()
                .map(|s| s.offset_mismatch + s.unknown + s.missing_stored)
                .sum::<u64>()
    }

    /// True when no guarantee was broken.
    pub fn ok(&self) -> bool {
        self.lost() == 0
            && self.duplicated() == 0
            && self.out_of_order() == 0
            && self.inconsistencies() == 0
    }
}

/// Checks a run.
pub fn check(obs: &Observed) -> Verdict {
    let mut v = Verdict {
        sent: obs.sent.values().sum(),
        acked: obs.acked.len() as u64,
        stored: obs.stored.len() as u64,
        ..Verdict::default()
    };

    // The store: each message once, publishers' order kept.
    let mut where_stored: HashMap<MsgId, u64> = HashMap::new();
    let mut last_seq: HashMap<String, u64> = HashMap::new();
    for (offset, content) in &obs.stored {
        let Some(id) = MsgId::parse(content) else {
            v.stored_unknown += 1;
            continue;
        };
        if where_stored.contains_key(&id) {
            v.stored_duplicates += 1;
            continue;
        }
        let last = last_seq.entry(id.publisher.clone()).or_insert(0);
        if id.seq <= *last {
            v.publisher_order_violations += 1;
        }
        *last = (*last).max(id.seq);
        where_stored.insert(id, *offset);
    }
    for (id, offset) in &obs.acked {
        match where_stored.get(id) {
            None => v.lost_from_store += 1,
            Some(stored) if stored != offset => v.ack_offset_mismatch += 1,
            Some(_) => {}
        }
    }

    for sub in &obs.subscribers {
        let mut s = SubscriberCheck {
            name: sub.name.clone(),
            kind: sub.kind.clone(),
            delivered: sub.received.len() as u64,
            ..SubscriberCheck::default()
        };
        let mut seen: HashSet<MsgId> = HashSet::new();
        let mut max_offset: Option<u64> = None;
        for (content, offset) in &sub.received {
            let Some(id) = MsgId::parse(content) else {
                s.unknown += 1;
                continue;
            };
            if seen.contains(&id) {
                s.duplicated += 1;
                continue;
            }
            match where_stored.get(&id) {
                None => s.unknown += 1,
                Some(stored) if stored != offset => s.offset_mismatch += 1,
                Some(_) => {}
            }
            if max_offset.is_some_and(|max| *offset <= max) {
                s.out_of_order += 1;
            }
            max_offset = Some(max_offset.map_or(*offset, |max| max.max(*offset)));
            seen.insert(id);
        }
        s.unique = seen.len() as u64;
        s.lost = obs.acked.keys().filter(|id| !seen.contains(*id)).count() as u64;
        s.lost_at_tail = obs
            .acked
            .keys()
            .filter(|id| !seen.contains(*id))
            .filter(|id| {
                let at = where_stored.get(*id).copied().unwrap_or(u64::MAX);
                max_offset.is_none_or(|max| at > max)
            })
            .count() as u64;
        s.missing_stored = where_stored.keys().filter(|id| !seen.contains(*id)).count() as u64;
        v.subscribers.push(s);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(p: &str, seq: u64) -> MsgId {
        MsgId {
            publisher: p.into(),
            seq,
        }
    }

    /// Two publishers, 3 messages each, all acked and stored at 1..=6.
    fn clean() -> Observed {
        let mut obs = Observed::default();
        obs.sent.insert("a".into(), 3);
        obs.sent.insert("b".into(), 3);
        let order = [("a", 1), ("b", 1), ("a", 2), ("b", 2), ("a", 3), ("b", 3)];
        for (i, (p, seq)) in order.iter().enumerate() {
            let offset = i as u64 + 1;
            obs.acked.insert(id(p, *seq), offset);
            obs.stored.push((offset, id(p, *seq).content()));
        }
        let received: Vec<(String, u64)> =
            obs.stored.iter().map(|(o, c)| (c.clone(), *o)).collect();
        for name in ["s1", "s2"] {
            obs.subscribers.push(SubscriberLog {
                name: name.into(),
                kind: "rust".into(),
                received: received.clone(),
            });
        }
        obs
    }

    #[test]
    fn content_round_trips() {
        assert_eq!(MsgId::parse(&id("r0", 17).content()), Some(id("r0", 17)));
        let padded = id("n2", 5).padded_content(10);
        assert_eq!(padded.len(), "n2#5|".len() + 10);
        assert_eq!(MsgId::parse(&padded), Some(id("n2", 5)));
        assert_eq!(id("n1", 3).client_offset(), "n1-3");
        assert_eq!(MsgId::parse("hello"), None);
        assert_eq!(MsgId::parse("#3"), None);
        assert_eq!(MsgId::parse("a#x"), None);
    }

    #[test]
    fn a_clean_run_passes() {
        let v = check(&clean());
        assert!(v.ok(), "{v:?}");
        assert_eq!((v.sent, v.acked, v.stored), (6, 6, 6));
        for s in &v.subscribers {
            assert_eq!((s.delivered, s.unique), (6, 6));
        }
    }

    #[test]
    fn a_lost_message_is_counted() {
        let mut obs = clean();
        obs.subscribers[1].received.remove(2);
        let v = check(&obs);
        assert!(!v.ok());
        assert_eq!(v.lost(), 1);
        assert_eq!(v.subscribers[1].lost, 1);
        assert_eq!(v.subscribers[1].missing_stored, 1);
        assert_eq!(v.subscribers[1].lost_at_tail, 0, "a gap, not a tail");
        assert_eq!((v.duplicated(), v.out_of_order()), (0, 0));
    }

    #[test]
    fn messages_not_yet_delivered_are_lost_at_the_tail() {
        let mut obs = clean();
        obs.subscribers[0].received.truncate(4);
        let v = check(&obs);
        assert_eq!(v.subscribers[0].lost, 2);
        assert_eq!(v.subscribers[0].lost_at_tail, 2);
        assert!(!v.ok());
    }

    #[test]
    fn a_message_lost_by_the_store_is_counted() {
        let mut obs = clean();
        obs.stored.remove(4);
        for s in &mut obs.subscribers {
            s.received.remove(4);
        }
        let v = check(&obs);
        assert_eq!(v.lost_from_store, 1);
        // Both subscribers miss an acknowledged message too.
        assert_eq!(v.lost(), 3);
        assert!(!v.ok());
    }

    #[test]
    fn a_duplicate_is_counted() {
        let mut obs = clean();
        let again = obs.subscribers[0].received[3].clone();
        obs.subscribers[0].received.push(again);
        let v = check(&obs);
        assert!(!v.ok());
        assert_eq!(v.subscribers[0].duplicated, 1);
        assert_eq!(v.subscribers[0].delivered, 7);
        assert_eq!((v.lost(), v.out_of_order()), (0, 0));
    }

    #[test]
    fn a_message_stored_twice_is_counted() {
        let mut obs = clean();
        obs.stored.push((7, id("a", 2).content()));
        let v = check(&obs);
        assert_eq!(v.stored_duplicates, 1);
        assert!(!v.ok());
    }

    #[test]
    fn a_reordered_delivery_is_counted() {
        let mut obs = clean();
        obs.subscribers[0].received.swap(1, 2);
        let v = check(&obs);
        assert!(!v.ok());
        assert_eq!(v.subscribers[0].out_of_order, 1);
        assert_eq!((v.lost(), v.duplicated()), (0, 0));
    }

    #[test]
    fn a_publisher_stored_out_of_order_is_counted() {
        let mut obs = clean();
        // a#2 stored before a#1 (positions swapped).
        obs.stored[0].1 = id("a", 2).content();
        obs.stored[2].1 = id("a", 1).content();
        obs.acked.insert(id("a", 1), 3);
        obs.acked.insert(id("a", 2), 1);
        for s in &mut obs.subscribers {
            s.received = obs.stored.iter().map(|(o, c)| (c.clone(), *o)).collect();
        }
        let v = check(&obs);
        assert_eq!(v.publisher_order_violations, 1);
        assert!(!v.ok());
    }

    #[test]
    fn a_wrong_offset_is_counted() {
        let mut obs = clean();
        obs.acked.insert(id("b", 3), 99);
        obs.subscribers[1].received[0].1 = 0;
        let v = check(&obs);
        assert_eq!(v.ack_offset_mismatch, 1);
        assert_eq!(v.subscribers[1].offset_mismatch, 1);
        assert!(!v.ok());
    }
}
