//! Server delivery streams: "what did I miss" across restarts of the client.
//!
//! A server that keeps its events in order with positions (Tether's
//! `catch_up_from_auth`, the Socket.IO tutorial's `auth.serverOffset`) sends
//! a new client everything after the position it presents at connect. A
//! [`Stream`] tells the client where the position of an event is and under
//! which auth field to present the last one; with a state file
//! ([`crate::ClientBuilder::state_file`]) the position survives a restart.

use crate::args::Args;
use crate::durable::StoredPosition;
use tether_proto::tether::Offset;

/// Where an event carries its stream position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Position {
    /// The sequence number of the Tether offset (`t.<epoch>.<seq>`) that
    /// Tether appends to every stored event as its last argument (the
    /// default). A new epoch (the server's store was reset) starts over.
    #[default]
    TetherOffset,
    /// Argument `i`, a non-negative integer (or a string of digits): the
    /// chat contract's `serverOffset` is argument 1 of `chat message`.
    Arg(usize),
}

/// A stream of positioned events followed by a socket.
///
/// ```
/// use tether_client::{Position, Stream};
/// // The chat contract: `chat message` (content, serverOffset, meta), and
/// // `auth.serverOffset` at connect.
/// let chat = Stream::new("serverOffset").event("chat message").position(Position::Arg(1));
/// # let _ = chat;
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stream {
    pub(crate) field: String,
    pub(crate) events: Vec<String>,
    pub(crate) position: Position,
}

impl Stream {
    /// A stream presented at connect as `auth[field]` (a number), with
    /// positions read from Tether offsets, for every event until
    /// [`Stream::event`] names some.
    pub fn new(field: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            events: Vec::new(),
            position: Position::TetherOffset,
        }
    }

    /// Restricts the stream to event `name` (call once per event).
    pub fn event(mut self, name: impl Into<String>) -> Self {
        self.events.push(name.into());
        self
    }

    /// Where the position of an event is.
    pub fn position(mut self, position: Position) -> Self {
        self.position = position;
        self
    }

    /// The auth field the position is presented in.
    pub fn field(&self) -> &str {
        &self.field
    }

    fn applies_to(&self, event: &str) -> bool {
        self.events.is_empty() || self.events.iter().any(|e| e == event)
    }

    fn read(&self, args: &Args) -> Option<StoredPosition> {
        match self.position {
            Position::TetherOffset => {
                let last = args.last_str()?;
                let Offset { epoch, seq } = Offset::parse(&last)?;
                Some(StoredPosition {
                    seq,
                    epoch: Some(epoch.to_owned()),
                })
            }
            Position::Arg(i) => {
                let v: serde_json::Value = args.get(i).ok()?;
                let seq = v
                    .as_u64()
                    .or_else(|| v.as_str().and_then(|s| s.parse().ok()))?;
                Some(StoredPosition { seq, epoch: None })
            }
        }
    }
}

/// A stream and where the socket stands in it.
#[derive(Debug)]
pub(crate) struct StreamState {
    pub(crate) stream: Stream,
    /// The last position received.
    pub(crate) last: Option<StoredPosition>,
}

/// What an event is in the socket's streams.
pub(crate) enum Seen {
    /// Not a positioned event of any stream.
    Unpositioned,
    /// New: these positions are to be saved once it is handled.
    New(Vec<(String, StoredPosition)>),
    /// At or before a position received already.
    Duplicate,
}

/// Checks an event against the streams, advancing those it is new in.
pub(crate) fn observe(streams: &mut [StreamState], event: &str, args: &Args) -> Seen {
    let mut found = Vec::new();
    for st in streams.iter_mut() {
        if !st.stream.applies_to(event) {
            continue;
        }
        let Some(pos) = st.stream.read(args) else {
            continue;
        };
        if let Some(last) = &st.last {
            if last.epoch == pos.epoch && pos.seq <= last.seq {
                return Seen::Duplicate;
            }
        }
        found.push((st, pos));
    }
    if found.is_empty() {
        return Seen::Unpositioned;
    }
    let mut save = Vec::with_capacity(found.len());
    for (st, pos) in found {
        st.last = Some(pos.clone());
        save.push((st.stream.field.clone(), pos));
    }
    Seen::New(save)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::IntoArgs;

    const E: &str = "AAAAAAAAAAAAAAAAAAAAAA";

    #[test]
    fn positions_dedup() {
        let mut s = vec![StreamState {
            stream: Stream::new("serverOffset")
                .event("chat message")
                .position(Position::Arg(1)),
            last: None,
        }];
        let ev = |n: u64| ("hi", n).into_args().unwrap();
        assert!(matches!(
            observe(&mut s, "chat message", &ev(3)),
            Seen::New(v) if v[0].1.seq == 3
        ));
        assert!(matches!(
            observe(&mut s, "chat message", &ev(3)),
            Seen::Duplicate
        ));
        assert!(matches!(
            observe(&mut s, "chat message", &ev(2)),
            Seen::Duplicate
        ));
        assert!(matches!(
            observe(&mut s, "other", &ev(1)),
            Seen::Unpositioned
        ));
        assert!(matches!(
            observe(&mut s, "chat message", &("x",).into_args().unwrap()),
            Seen::Unpositioned
        ));
        assert!(matches!(
            observe(&mut s, "chat message", &ev(4)),
            Seen::New(_)
        ));
    }

    #[test]
    fn tether_offsets_and_epochs() {
        let mut s = vec![StreamState {
            stream: Stream::new("serverOffset"),
            last: None,
        }];
        let ev = |epoch: &str, n: u64| ("x", format!("t.{epoch}.{n}")).into_args().unwrap();
        assert!(matches!(observe(&mut s, "m", &ev(E, 7)), Seen::New(_)));
        assert!(matches!(observe(&mut s, "m", &ev(E, 7)), Seen::Duplicate));
        // Another epoch: the store was reset, positions start over.
        assert!(matches!(
            observe(&mut s, "m", &ev("BBBBBBBBBBBBBBBBBBBBBB", 1)),
            Seen::New(_)
        ));
        assert_eq!(s[0].last.as_ref().map(|p| p.seq), Some(1));
    }
}
