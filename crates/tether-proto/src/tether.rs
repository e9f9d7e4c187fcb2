//! Tether's own additions to the wire, shared by its server and its client:
//! the recovery offset carried by stored events, and the report on a refused
//! connection state recovery.
//!
//! Both stay inside what Socket.IO v5 allows, so the official clients work
//! unchanged: an offset is the last (string) argument of an event, as the
//! official client expects; a report is an extra field of the CONNECT reply,
//! which it ignores.

use std::fmt;

/// The recovery offset of a stored event: `t.<epoch>.<seq>`.
///
/// The epoch identifies one life of the store (at least 16 base64url
/// characters: Tether makes 22 from 128 random bits); `seq` is the event's
/// position in it.
///
/// ```
/// use tether_proto::tether::Offset;
/// let offset = Offset::parse("t.AAAAAAAAAAAAAAAAAAAAAA.42").unwrap();
/// assert_eq!((offset.epoch, offset.seq), ("AAAAAAAAAAAAAAAAAAAAAA", 42));
/// assert_eq!(offset.to_string(), "t.AAAAAAAAAAAAAAAAAAAAAA.42");
/// assert_eq!(Offset::parse("t.short.42"), None);
/// assert_eq!(Offset::parse("hello"), None);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Offset<'a> {
    /// The store's epoch.
    pub epoch: &'a str,
    /// The position in the store.
    pub seq: u64,
}

impl<'a> Offset<'a> {
    /// An offset of `seq` in the store life `epoch`.
    pub fn new(epoch: &'a str, seq: u64) -> Self {
        Self { epoch, seq }
    }

    /// Parses `t.<epoch>.<seq>`; `None` for anything else (an application
    /// string, a malformed or truncated offset).
    pub fn parse(s: &'a str) -> Option<Self> {
        let rest = s.strip_prefix("t.")?;
        let (epoch, seq) = rest.rsplit_once('.')?;
        let epoch_ok = epoch.len() >= 16
            && epoch
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        let seq_ok = !seq.is_empty() && seq.len() <= 20 && seq.bytes().all(|b| b.is_ascii_digit());
        if !(epoch_ok && seq_ok) {
            return None;
        }
        Some(Self {
            epoch,
            seq: seq.parse().ok()?,
        })
    }
}

impl fmt::Display for Offset<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "t.{}.{}", self.epoch, self.seq)
    }
}

/// Why a connection state recovery was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum Refusal {
    /// No such session: never issued, deleted, or of another namespace.
    #[serde(rename = "unknown session")]
    UnknownSession,
    /// Disconnected for longer than the recovery window, or what the client
    /// missed was trimmed by retention.
    #[serde(rename = "expired")]
    Expired,
    /// The offset was not issued by this store.
    #[serde(rename = "unknown offset")]
    UnknownOffset,
    /// The offset comes from another life of the store (it was reset).
    #[serde(rename = "store reset")]
    StoreReset,
    /// The session's socket is connected and answers: another client holding
    /// its private id does not take it.
    #[serde(rename = "session in use")]
    InUse,
    /// A reason this version does not know (from a newer server).
    #[serde(other)]
    Other,
}

impl Refusal {
    /// Every reason a server of this version gives.
    pub const ALL: [Refusal; 5] = [
        Refusal::UnknownSession,
        Refusal::Expired,
        Refusal::UnknownOffset,
        Refusal::StoreReset,
        Refusal::InUse,
    ];

    /// The reason as it is on the wire (`unknown session`).
    pub fn as_str(&self) -> &'static str {
        match self {
            Refusal::UnknownSession => "unknown session",
            Refusal::Expired => "expired",
            Refusal::UnknownOffset => "unknown offset",
            Refusal::StoreReset => "store reset",
            Refusal::InUse => "session in use",
            Refusal::Other => "other",
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Tether's report on a refused recovery: the `recovery` field of its CONNECT
/// reply (a recovered session has none).
///
/// ```
/// use tether_proto::tether::{RecoveryReport, Refusal};
/// let report: RecoveryReport = serde_json::from_str(
///     r#"{"recovered":false,"reason":"expired","requested":"t.AAAAAAAAAAAAAAAAAAAAAA.3",
///         "available_from":"t.AAAAAAAAAAAAAAAAAAAAAA.10","latest":"t.AAAAAAAAAAAAAAAAAAAAAA.12"}"#,
/// ).unwrap();
/// assert_eq!(report.reason, Refusal::Expired);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct RecoveryReport {
    /// Always false.
    pub recovered: bool,
    /// Why the session was not restored.
    pub reason: Refusal,
    /// The offset the client presented, if any.
    #[serde(default)]
    pub requested: Option<String>,
    /// The oldest offset still available: events after it can be replayed.
    #[serde(default)]
    pub available_from: Option<String>,
    /// The newest offset of the store.
    #[serde(default)]
    pub latest: Option<String>,
}

impl RecoveryReport {
    /// A refusal for `reason`, with what was asked and what is available.
    pub fn refused(
        reason: Refusal,
        requested: Option<String>,
        available_from: Option<String>,
        latest: Option<String>,
    ) -> Self {
        Self {
            recovered: false,
            reason,
            requested,
            available_from,
            latest,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_round_trip_and_refuse_lookalikes() {
        let epoch = "abcdefghijklmnop_-AB12";
        let text = Offset::new(epoch, 7).to_string();
        assert_eq!(Offset::parse(&text), Some(Offset::new(epoch, 7)));
        // The epoch may not hide a dot, the seq must be digits (20 at most).
        for bad in [
            "t..1",
            "t.abcdefghijklmnop.",
            "t.abcdefghijklmnop.x1",
            "t.abcdefghijklmnop.-1",
            "t.abcdefghijklmnop.123456789012345678901",
            "t.abcdefghijklmnop.99999999999999999999",
            "t.abcdefgh.ijklmnop.1",
            "x.abcdefghijklmnop.1",
        ] {
            assert_eq!(Offset::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn reports_serialise_with_the_wire_reasons() {
        for reason in Refusal::ALL {
            let report = RecoveryReport::refused(reason, None, None, None);
            let json = serde_json::to_value(&report).unwrap();
            assert_eq!(json["reason"], reason.as_str());
            let back: RecoveryReport = serde_json::from_value(json).unwrap();
            assert_eq!(back, report);
        }
        let newer: RecoveryReport =
            serde_json::from_str(r#"{"recovered":false,"reason":"something new"}"#).unwrap();
        assert_eq!(newer.reason, Refusal::Other);
    }
}
