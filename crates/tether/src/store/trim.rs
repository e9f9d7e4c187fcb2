//! The trim rule shared by the stores that trim per stream (memory, SQLite):
//! which limits apply to an entry, and whether an entry is kept. Each store
//! finds the candidates its own way (the entries some limit lets go) and asks
//! [`TrimPlan::keeps`] before removing one.

use std::collections::HashMap;
use std::time::Duration;

use super::{now_ms, Retention, Seq, StreamRetention};

/// The positions at or below which an entry goes, from one set of limits:
/// entries older than `age_cutoff_ms` or at or below `count_cut`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Cuts {
    /// Entries older than this (ms since the Unix epoch) go.
    pub(crate) age_cutoff_ms: Option<i64>,
    /// Entries at or below this position go.
    pub(crate) count_cut: Option<Seq>,
}

impl Cuts {
    /// True when these limits keep an entry.
    pub(crate) fn keeps(&self, seq: Seq, ts_ms: i64) -> bool {
        self.age_cutoff_ms.is_none_or(|c| ts_ms >= c) && self.count_cut.is_none_or(|c| seq > c)
    }
}

/// The cutoff time of `age` from now.
pub(crate) fn age_cutoff(age: Option<Duration>) -> Option<i64> {
    age.map(|a| now_ms().saturating_sub(i64::try_from(a.as_millis()).unwrap_or(i64::MAX)))
}

/// The streams an entry is in: its rooms, or `""` (the whole namespace).
pub(crate) fn streams_of(rooms: &[String]) -> impl Iterator<Item = &str> {
    let whole = rooms.is_empty().then_some("");
    whole.into_iter().chain(rooms.iter().map(String::as_str))
}

/// The limits of one trim: the default ones of each namespace and each
/// stream's own (see [`StreamRetention`]).
///
/// An entry goes only once every stream it belongs to lets it go: a stream
/// with a policy of its own by that policy, any other by its namespace's
/// defaults.
#[derive(Debug, Default)]
pub(crate) struct TrimPlan {
    /// The default age cutoff, the same for every namespace.
    default_age: Option<i64>,
    /// The default limits of each namespace.
    defaults: HashMap<String, Cuts>,
    /// Each stream's own limits: namespace, then room.
    overrides: HashMap<String, HashMap<String, Cuts>>,
}

impl TrimPlan {
    /// A plan with the default age of `retention` (cut from now); namespaces
    /// and streams are added with their count cuts.
    pub(crate) fn new(retention: &Retention) -> Self {
        TrimPlan {
            default_age: age_cutoff(retention.max_age),
            ..TrimPlan::default()
        }
    }

    /// The default age cutoff.
    pub(crate) fn default_age(&self) -> Option<i64> {
        self.default_age
    }

    /// Adds a namespace under the default limits, its count cut being the
    /// position at or below which the default count lets entries go; returns
    /// its limits.
    pub(crate) fn namespace(&mut self, nsp: &str, count_cut: Option<Seq>) -> Cuts {
        let cuts = Cuts {
            age_cutoff_ms: self.default_age,
            count_cut,
        };
        self.defaults.insert(nsp.to_owned(), cuts);
        cuts
    }

    /// Adds a stream with a policy of its own; returns its limits.
    pub(crate) fn stream(&mut self, policy: &StreamRetention, count_cut: Option<Seq>) -> Cuts {
        let cuts = Cuts {
            age_cutoff_ms: age_cutoff(policy.max_age),
            count_cut,
        };
        self.overrides
            .entry(policy.nsp.clone())
            .or_default()
            .insert(policy.room.clone(), cuts);
        cuts
    }

    /// True when some stream of the entry (namespace `nsp`, targeting
    /// `rooms`) keeps it.
    pub(crate) fn keeps(&self, nsp: &str, rooms: &[String], seq: Seq, ts_ms: i64) -> bool {
        let own = self.overrides.get(nsp);
        let default = self.defaults.get(nsp);
        streams_of(rooms).any(|room| {
            own.and_then(|rooms| rooms.get(room))
                .or(default)
                .is_some_and(|cuts| cuts.keeps(seq, ts_ms))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rooms(names: &[&str]) -> Vec<String> {
        names.iter().map(|r| r.to_string()).collect()
    }

    #[test]
    fn an_entry_stays_while_one_of_its_streams_keeps_it() {
        let mut plan = TrimPlan::new(&Retention::default());
        plan.namespace("/", Some(10));
        plan.stream(&StreamRetention::new("/", "news"), None);
        // The default count lets 5 go; `news` keeps everything.
        assert!(!plan.keeps("/", &rooms(&["chat"]), 5, 0));
        assert!(plan.keeps("/", &rooms(&["chat", "news"]), 5, 0));
        assert!(plan.keeps("/", &rooms(&["chat"]), 11, 0));
        // The whole-namespace stream is `""`.
        assert!(!plan.keeps("/", &[], 5, 0));
        // A namespace the plan does not know keeps nothing it is asked about.
        assert!(!plan.keeps("/other", &rooms(&["chat"]), 5, 0));
    }

    #[test]
    fn a_stream_policy_replaces_the_default_for_that_stream() {
        let mut plan = TrimPlan::new(&Retention::default());
        plan.namespace("/", None);
        plan.stream(&StreamRetention::new("/", "typing").max_count(1), Some(7));
        assert!(!plan.keeps("/", &rooms(&["typing"]), 7, 0));
        assert!(plan.keeps("/", &rooms(&["typing"]), 8, 0));
        assert!(plan.keeps("/", &rooms(&["chat"]), 7, 0));
    }
}
