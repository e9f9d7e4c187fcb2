//! Recovery offsets: which argument of a received event is the server's
//! offset, and which events were received already.
//!
//! Tether appends `t.<epoch>.<seq>` to every stored event (epoch: 16 random
//! bytes in base64url). Such a string is taken as an offset, and compared by
//! `seq` to drop duplicates; once a session knows its epoch, a string with
//! another epoch is an application string (a session's epoch never changes:
//! a store reset means a new session). Until a Tether offset has been seen
//! (or when the server is not Tether), the official client's rule applies:
//! with connection state recovery on (the server gave a pid), the last
//! argument of an event, when it is a string, is the offset.

use std::collections::{HashSet, VecDeque};

use tether_proto::tether::Offset;

use crate::args::Args;

/// How offsets are recognised in received events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OffsetRule {
    /// Tether offsets when the server sends them, else the official client's
    /// rule (the last string argument, with recovery on).
    #[default]
    Auto,
    /// Only Tether offsets (`t.<epoch>.<seq>`): an application string is
    /// never taken for an offset.
    Tether,
    /// The official client's rule only.
    LastString,
}

/// Non-Tether offsets remembered to drop duplicates.
const RECENT: usize = 1024;

/// The offset state of one socket.
#[derive(Debug, Default)]
pub(crate) struct Offsets {
    pub(crate) rule: OffsetRule,
    /// The server sent a Tether offset or a Tether recovery report.
    pub(crate) tether: bool,
    /// The offset to present when reconnecting.
    pub(crate) last: Option<String>,
    epoch: Option<String>,
    seq: Option<u64>,
    recent: VecDeque<String>,
    recent_set: HashSet<String>,
}

impl Offsets {
    pub(crate) fn new(rule: OffsetRule) -> Self {
        Self {
            rule,
            ..Self::default()
        }
    }

    /// Records the offset of an event received with recovery on (`pid`
    /// known) or not; false when the event was received already.
    pub(crate) fn observe(&mut self, args: &Args, recovery_on: bool, has_ack: bool) -> bool {
        let Some(last) = args.last_str() else {
            return true;
        };
        if self.rule != OffsetRule::LastString {
            if let Some(Offset { epoch, seq }) = Offset::parse(&last) {
                if self.epoch.as_deref().is_some_and(|e| e != epoch) {
                    // The epoch of a session never changes: an app string.
                    return true;
                }
                self.tether = true;
                if self.epoch.as_deref() == Some(epoch) && self.seq.is_some_and(|s| seq <= s) {
                    return false;
                }
                self.epoch = Some(epoch.to_owned());
                self.seq = Some(seq);
                self.last = Some(last);
                return true;
            }
        }
        let fallback = match self.rule {
            OffsetRule::Auto => !self.tether,
            OffsetRule::Tether => false,
            OffsetRule::LastString => true,
        };
        // Servers append offsets to events sent without an ack request only.
        if !fallback || !recovery_on || has_ack {
            return true;
        }
        if self.recent_set.contains(&last) {
            return false;
        }
        if self.recent.len() == RECENT {
            if let Some(old) = self.recent.pop_front() {
                self.recent_set.remove(&old);
            }
        }
        self.recent.push_back(last.clone());
        self.recent_set.insert(last.clone());
        self.last = Some(last);
        true
    }

    /// A new session started (not recovered): forget its position.
    pub(crate) fn reset(&mut self) {
        self.last = None;
        self.epoch = None;
        self.seq = None;
        self.recent.clear();
        self.recent_set.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::IntoArgs;

    const E: &str = "AAAAAAAAAAAAAAAAAAAAAA";

    fn args(last: &str) -> Args {
        ("x", last).into_args().unwrap()
    }

    #[test]
    fn tether_offsets_dedup_by_seq() {
        let mut o = Offsets::new(OffsetRule::Auto);
        assert!(o.observe(&args(&format!("t.{E}.5")), true, false));
        assert!(o.observe(&args(&format!("t.{E}.6")), true, false));
        assert!(!o.observe(&args(&format!("t.{E}.6")), true, false));
        assert!(!o.observe(&args(&format!("t.{E}.3")), true, false));
        // Once Tether is known, app strings are never offsets.
        assert!(o.observe(&args("hello"), true, false));
        assert!(o.observe(&args("t.BBBBBBBBBBBBBBBBBBBBBB.9"), true, false));
        assert!(o.observe(&args("hello"), true, false));
        assert_eq!(o.last.as_deref(), Some(&*format!("t.{E}.6")));
        o.reset();
        assert!(o.observe(&args(&format!("t.{E}.1")), true, false));
    }

    #[test]
    fn fallback_rule() {
        let mut o = Offsets::new(OffsetRule::Auto);
        assert!(o.observe(&args("a"), false, false));
        assert_eq!(o.last, None);
        assert!(o.observe(&args("a"), true, false));
        assert!(!o.observe(&args("a"), true, false));
        assert!(o.observe(&args("b"), true, true));
        assert_eq!(o.last.as_deref(), Some("a"));
        let mut t = Offsets::new(OffsetRule::Tether);
        assert!(t.observe(&args("a"), true, false));
        assert_eq!(t.last, None);
    }
}
