//! How entries, sessions and inbox entries are kept in Redis.

use super::*;

/// A session as stored (the pid is in the key).
#[derive(serde::Serialize, serde::Deserialize)]
pub(super) struct StoredSession {
    pub(super) sid: String,
    pub(super) nsp: String,
    pub(super) rooms: Vec<String>,
    pub(super) data: Option<String>,
    /// Absent from sessions stored before users were kept.
    #[serde(default)]
    pub(super) user: Option<String>,
    pub(super) start_seq: Seq,
    pub(super) connected: bool,
    pub(super) updated_ms: i64,
    /// The node holding it connected (see `LUA_RELEASE_OWNER`: stays last).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) owner: Option<String>,
}

impl From<&SessionRecord> for StoredSession {
    fn from(r: &SessionRecord) -> Self {
        StoredSession {
            sid: r.sid.clone(),
            nsp: r.nsp.clone(),
            rooms: r.rooms.clone(),
            data: r.data.clone(),
            user: r.user.clone(),
            start_seq: r.start_seq,
            connected: r.connected,
            updated_ms: r.updated_ms,
            owner: None,
        }
    }
}

impl StoredSession {
    pub(super) fn into_record(self, pid: String) -> SessionRecord {
        SessionRecord {
            pid,
            sid: self.sid,
            nsp: self.nsp,
            rooms: self.rooms,
            data: self.data,
            user: self.user,
            start_seq: self.start_seq,
            connected: self.connected,
            updated_ms: self.updated_ms,
        }
    }
}

pub(super) fn json_list(list: &[String]) -> String {
    serde_json::to_string(list).unwrap_or_else(|_| "[]".to_owned())
}

/// Merges sorted position lists (ascending, or descending with `desc`) into
/// one without repeats, keeping the first `want`. Also says whether positions
/// beyond those may exist (a list was cut at `want`, or some were left out).
pub(super) fn merge(lists: Vec<Vec<Seq>>, want: usize, desc: bool) -> (Vec<Seq>, bool) {
    let truncated = lists.iter().any(|l| l.len() >= want);
    let mut all: Vec<Seq> = lists.into_iter().flatten().collect();
    all.sort_unstable();
    all.dedup();
    if desc {
        all.reverse();
    }
    let more = truncated || all.len() > want;
    all.truncate(want);
    (all, more)
}

/// The position of a log id `<seq>-0`.
pub(super) fn id_seq(id: &str) -> Option<Seq> {
    id.split_once('-')?.0.parse().ok()
}

pub(super) fn field<'a>(id: &'a StreamId, name: &str) -> Result<&'a [u8], StoreError> {
    match id.map.get(name) {
        Some(Value::BulkString(bytes)) => Ok(bytes),
        Some(Value::SimpleString(s)) => Ok(s.as_bytes()),
        _ => Err(corrupt("log entry")),
    }
}

pub(super) fn text_field(id: &StreamId, name: &str) -> Result<String, StoreError> {
    String::from_utf8(field(id, name)?.to_vec()).map_err(|_| corrupt("log entry"))
}

pub(super) fn decode_entry(id: &StreamId) -> Result<Entry, StoreError> {
    let seq = id_seq(&id.id).ok_or_else(|| corrupt("log id"))?;
    let list = |name| -> Result<Vec<String>, StoreError> {
        serde_json::from_slice(field(id, name)?).map_err(|_| corrupt("log entry"))
    };
    let ts_ms = text_field(id, "t")?
        .parse()
        .map_err(|_| corrupt("log entry"))?;
    Ok(Entry {
        seq,
        ts_ms,
        entry: NewEntry {
            target: Target {
                nsp: text_field(id, "n")?,
                rooms: list("r")?,
                except: list("x")?,
            },
            event: text_field(id, "e")?,
            args: text_field(id, "a")?,
            attachments: decode_attachments(field(id, "b")?)?,
        },
    })
}

/// Attachments as a blob: for each, its length (u32, little-endian) then its
/// bytes (the SQLite store's format).
pub(super) fn encode_attachments(attachments: &[Bytes]) -> Vec<u8> {
    let mut blob = Vec::with_capacity(attachments.iter().map(|a| 4 + a.len()).sum());
    for attachment in attachments {
        put_chunk(&mut blob, attachment);
    }
    blob
}

pub(super) fn put_chunk(blob: &mut Vec<u8>, chunk: &[u8]) {
    // A chunk over 4 GiB cannot reach here: frames are far smaller.
    let len = u32::try_from(chunk.len()).unwrap_or(u32::MAX);
    blob.extend_from_slice(&len.to_le_bytes());
    blob.extend_from_slice(chunk);
}

/// Splits a length-prefixed chunk off `blob`.
pub(super) fn take_chunk<'a>(blob: &mut &'a [u8]) -> Option<&'a [u8]> {
    let (len, rest) = blob.split_first_chunk::<4>()?;
    let len = usize::try_from(u32::from_le_bytes(*len)).ok()?;
    if rest.len() < len {
        return None;
    }
    let (chunk, rest) = rest.split_at(len);
    *blob = rest;
    Some(chunk)
}

pub(super) fn decode_attachments(mut blob: &[u8]) -> Result<Vec<Bytes>, StoreError> {
    let mut out = Vec::new();
    while !blob.is_empty() {
        let chunk = take_chunk(&mut blob).ok_or_else(|| corrupt("attachments"))?;
        out.push(Bytes::copy_from_slice(chunk));
    }
    Ok(out)
}

/// An inbox entry's payload: event and args (length-prefixed), then the
/// attachments blob.
pub(super) fn encode_inbox_payload(event: &str, args: &str, attachments: &[Bytes]) -> Vec<u8> {
    let mut blob = Vec::new();
    put_chunk(&mut blob, event.as_bytes());
    put_chunk(&mut blob, args.as_bytes());
    blob.extend_from_slice(&encode_attachments(attachments));
    blob
}

/// An inbox member: `<seq>:<ts_ms>:<payload>`.
pub(super) fn decode_inbox_member(member: &[u8]) -> Result<InboxEntry, StoreError> {
    let bad = || corrupt("inbox entry");
    let mut parts = member.splitn(3, |&b| b == b':');
    let number = |parts: &mut std::slice::SplitN<'_, u8, _>| {
        std::str::from_utf8(parts.next().ok_or_else(bad)?)
            .ok()
            .and_then(|s| s.parse::<i64>().ok())
            .ok_or_else(bad)
    };
    let seq = Seq::try_from(number(&mut parts)?).map_err(|_| bad())?;
    let ts_ms = number(&mut parts)?;
    let mut payload = parts.next().ok_or_else(bad)?;
    let event = take_chunk(&mut payload).ok_or_else(bad)?;
    let args = take_chunk(&mut payload).ok_or_else(bad)?;
    let text = |b: &[u8]| String::from_utf8(b.to_vec()).map_err(|_| bad());
    Ok(InboxEntry {
        seq,
        ts_ms,
        event: text(event)?,
        args: text(args)?,
        attachments: decode_attachments(payload)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_keeps_order_without_repeats() {
        let (seqs, more) = merge(vec![vec![1, 4, 6], vec![2, 4, 9], vec![]], 4, false);
        assert_eq!(seqs, [1, 2, 4, 6]);
        assert!(more, "a list was cut or some were left out");
        let (seqs, more) = merge(vec![vec![1, 4], vec![2]], 10, false);
        assert_eq!((seqs, more), (vec![1, 2, 4], false));
        let (seqs, more) = merge(vec![vec![9, 5, 1]], 3, true);
        assert_eq!((seqs, more), (vec![9, 5, 1], true));
    }

    #[test]
    fn inbox_members_round_trip() {
        let attachments = vec![Bytes::from_static(b"a:b"), Bytes::new()];
        let payload = encode_inbox_payload("ev:x", "[\"a:b\"]", &attachments);
        let mut member = b"12:1700000000000:".to_vec();
        member.extend_from_slice(&payload);
        let entry = decode_inbox_member(&member).unwrap();
        assert_eq!(entry.seq, 12);
        assert_eq!(entry.ts_ms, 1_700_000_000_000);
        assert_eq!(entry.event, "ev:x");
        assert_eq!(entry.args, "[\"a:b\"]");
        assert_eq!(entry.attachments, attachments);
        assert!(decode_inbox_member(b"12:x:").is_err());
    }

    #[test]
    fn log_ids() {
        assert_eq!(id_seq("42-0"), Some(42));
        assert_eq!(id_seq("42"), None);
        assert_eq!(id_seq("x-0"), None);
    }
}
