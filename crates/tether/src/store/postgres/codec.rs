//! How values are kept in PostgreSQL: attachments as one `bytea`, rooms as
//! JSON text, positions as `bigint`; and the checks on what text columns
//! can hold.

use super::*;

/// Attachments as one `bytea`: for each, its length (u32, little-endian)
/// then its bytes. No attachment: an empty value.
pub(super) fn encode_attachments(attachments: &[Bytes]) -> Vec<u8> {
    let size = attachments.iter().map(|a| 4 + a.len()).sum();
    let mut blob = Vec::with_capacity(size);
    for attachment in attachments {
        // An attachment over 4 GiB cannot reach here: frames are far smaller.
        let len = u32::try_from(attachment.len()).unwrap_or(u32::MAX);
        blob.extend_from_slice(&len.to_le_bytes());
        blob.extend_from_slice(attachment);
    }
    blob
}

/// The attachments of [`encode_attachments`].
pub(super) fn decode_attachments(mut blob: &[u8]) -> Result<Vec<Bytes>, PgError> {
    let corrupt = || PgError::corrupt("corrupt attachments column");
    let mut out = Vec::new();
    while !blob.is_empty() {
        let (len, rest) = blob.split_first_chunk::<4>().ok_or_else(corrupt)?;
        let len = usize::try_from(u32::from_le_bytes(*len)).map_err(|_| corrupt())?;
        if rest.len() < len {
            return Err(corrupt());
        }
        let (attachment, rest) = rest.split_at(len);
        out.push(Bytes::copy_from_slice(attachment));
        blob = rest;
    }
    Ok(out)
}

/// A list of rooms as JSON text.
pub(super) fn encode_rooms(rooms: &[String]) -> String {
    serde_json::to_string(rooms).unwrap_or_else(|_| "[]".to_owned())
}

/// The rooms of [`encode_rooms`].
pub(super) fn decode_rooms(json: &str, what: &str) -> Result<Vec<String>, PgError> {
    serde_json::from_str(json).map_err(|e| PgError::Corrupt {
        what: format!("corrupt {what} column: {e}"),
        source: Some(Arc::new(e)),
    })
}

/// A position as PostgreSQL's `bigint` (positions never come near
/// `i64::MAX`; a larger bound, such as `Seq::MAX` for "no bound",
/// saturates).
pub(super) fn to_i64(seq: Seq) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
}

/// A count or a limit as `bigint`.
pub(super) fn len_i64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// A stored position as a [`Seq`]: a negative one is damage.
pub(super) fn to_seq(value: i64) -> Result<Seq, PgError> {
    Seq::try_from(value).map_err(|_| PgError::corrupt(format!("negative position {value}")))
}

/// Column `idx` of `row`, as `T`: a column of another type (a table changed
/// by something else) is corrupt data, not a failure of the server.
pub(super) fn get<'a, T: tokio_postgres::types::FromSql<'a>>(
    row: &'a Row,
    idx: usize,
) -> Result<T, PgError> {
    row.try_get(idx).map_err(|e| PgError::Corrupt {
        what: format!("unexpected column {idx}: {e}"),
        source: Some(Arc::new(e)),
    })
}

/// PostgreSQL text cannot hold the NUL character: a name, key or payload
/// with one is refused before it reaches a batch (where it would fail every
/// other write of the batch too).
pub(super) fn check_text(values: &[&str]) -> Result<(), StoreError> {
    if values.iter().any(|v| v.contains('\0')) {
        return Err(StoreError::Unsupported(
            "a NUL character in a name, key or payload (PostgreSQL text cannot hold it)",
        ));
    }
    Ok(())
}

/// [`check_text`] on everything of an entry that is stored as text.
pub(super) fn check_entry(entry: &NewEntry, key: Option<&str>) -> Result<(), StoreError> {
    let target = &entry.target;
    check_text(&[&target.nsp, &entry.event, &entry.args, key.unwrap_or("")])?;
    for room in target.rooms.iter().chain(&target.except) {
        check_text(&[room])?;
    }
    Ok(())
}

/// An entry from the columns `seq, nsp, rooms, except_rooms, event, args,
/// attachments, ts_ms`.
pub(super) fn decode_entry(row: &Row) -> Result<Entry, PgError> {
    let seq = to_seq(get(row, 0)?)?;
    let rooms: String = get(row, 2)?;
    let except: String = get(row, 3)?;
    let attachments: Vec<u8> = get(row, 6)?;
    Ok(Entry {
        seq,
        ts_ms: get(row, 7)?,
        entry: NewEntry {
            target: Target {
                nsp: get(row, 1)?,
                rooms: decode_rooms(&rooms, "rooms")?,
                except: decode_rooms(&except, "except_rooms")?,
            },
            event: get(row, 4)?,
            args: get(row, 5)?,
            attachments: decode_attachments(&attachments)?,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attachments_round_trip_and_damage_is_corrupt() {
        let list = vec![
            Bytes::from_static(b"\x00\x01"),
            Bytes::new(),
            Bytes::from(vec![9u8; 300]),
        ];
        let blob = encode_attachments(&list);
        assert_eq!(decode_attachments(&blob).ok(), Some(list));
        assert!(decode_attachments(&[]).is_ok_and(|a| a.is_empty()));
        assert!(matches!(
            decode_attachments(&blob[..blob.len() - 1]),
            Err(PgError::Corrupt { .. })
        ));
        assert!(matches!(
            decode_attachments(&[1, 0]),
            Err(PgError::Corrupt { .. })
        ));
    }

    #[test]
    fn nul_characters_are_refused_before_a_batch() {
        assert!(check_text(&["a", "b"]).is_ok());
        assert!(matches!(
            check_text(&["a\0b"]),
            Err(StoreError::Unsupported(_))
        ));
        let mut entry = NewEntry {
            target: Target {
                nsp: "/".into(),
                rooms: vec!["ok".into()],
                except: vec![],
            },
            event: "e".into(),
            args: "[]".into(),
            attachments: vec![],
        };
        assert!(check_entry(&entry, Some("k")).is_ok());
        assert!(check_entry(&entry, Some("k\0")).is_err());
        entry.target.except.push("x\0".into());
        assert!(check_entry(&entry, None).is_err());
    }

    #[test]
    fn negative_positions_are_corrupt() {
        assert_eq!(to_seq(5).ok(), Some(5));
        assert!(matches!(to_seq(-1), Err(PgError::Corrupt { .. })));
        assert_eq!(to_i64(u64::MAX), i64::MAX);
    }
}
