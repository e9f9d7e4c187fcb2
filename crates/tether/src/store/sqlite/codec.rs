//! How attachments and positions are kept in SQLite.

use super::*;

/// Attachments as a blob: for each, its length (u32, little-endian) then its
/// bytes. No attachment: an empty blob.
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

pub(super) fn decode_attachments(mut blob: &[u8]) -> Result<Vec<Bytes>, DbError> {
    let corrupt = || DbError::Corrupt {
        what: "corrupt attachments column".into(),
        source: None,
    };
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

/// A position as SQLite's integer (positions never come near `i64::MAX`; a
/// larger bound, such as `Seq::MAX` for "no bound", saturates).
pub(super) fn to_i64(seq: Seq) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
}

pub(super) fn to_i64_len(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// A stored position (always positive) as a [`Seq`].
pub(super) fn to_seq(value: i64) -> Seq {
    Seq::try_from(value).unwrap_or(0)
}
