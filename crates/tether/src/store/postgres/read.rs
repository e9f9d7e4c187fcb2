//! Reads: per-stream index ranges merged by position, then the entries.

use super::*;

/// The entry columns, as [`decode_entry`] takes them.
const COLS: &str = "e.seq, e.nsp, e.rooms, e.except_rooms, e.event, e.args, e.attachments, e.ts_ms";

/// `EventLog::read`: for each stream (`''` and each room), the next
/// positions after `after` from its index range (at most `chunk` each),
/// merged, then their entries. Entries that exclude one of `rooms` are
/// skipped and the next chunk read, so a page is full unless the streams
/// are exhausted; the work follows what is returned, not other rooms'
/// traffic.
pub(super) async fn read_entries(
    client: &PgClient,
    nsp: &str,
    rooms: &[String],
    after: Seq,
    limit: usize,
) -> Result<Vec<Entry>, PgError> {
    let mut out = Vec::new();
    if limit == 0 {
        return Ok(out);
    }
    let mut streams: Vec<&str> = vec![""];
    for room in rooms {
        if !streams.contains(&room.as_str()) {
            streams.push(room);
        }
    }
    let stmt = client
        .prepare_cached(&format!(
            "SELECT {COLS} FROM entries e
             WHERE e.seq IN (
                 SELECT DISTINCT s.seq FROM unnest($2::text[]) AS r(room)
                 CROSS JOIN LATERAL (
                     SELECT t.seq FROM entry_targets t
                     WHERE t.nsp = $1 AND t.room = r.room AND t.seq > $3
                     ORDER BY t.seq LIMIT $4
                 ) s
                 ORDER BY s.seq LIMIT $4
             )
             ORDER BY e.seq"
        ))
        .await?;
    let chunk = len_i64(limit.min(READ_CHUNK));
    let mut after = to_i64(after);
    loop {
        let found = client
            .query(&stmt, &[&nsp, &streams, &after, &chunk])
            .await?;
        let full = len_i64(found.len()) >= chunk;
        for row in &found {
            let entry = decode_entry(row)?;
            after = to_i64(entry.seq);
            if reaches(&entry.entry.target, rooms) {
                out.push(entry);
                if out.len() >= limit {
                    return Ok(out);
                }
            }
        }
        if !full {
            return Ok(out);
        }
    }
}

/// `EventLog::history`: one stream's index range, backwards.
pub(super) async fn read_history(
    client: &PgClient,
    nsp: &str,
    room: Option<&str>,
    before: Seq,
    limit: usize,
) -> Result<Vec<Entry>, PgError> {
    let mut out = Vec::new();
    if limit == 0 {
        return Ok(out);
    }
    let rooms: Vec<String> = room.map(str::to_owned).into_iter().collect();
    let stream = room.unwrap_or("");
    let stmt = client
        .prepare_cached(&format!(
            "SELECT {COLS} FROM entry_targets t JOIN entries e ON e.seq = t.seq
             WHERE t.nsp = $1 AND t.room = $2 AND t.seq < $3
             ORDER BY t.seq DESC LIMIT $4"
        ))
        .await?;
    let chunk = len_i64(limit.min(READ_CHUNK));
    let mut before = to_i64(before);
    loop {
        let found = client
            .query(&stmt, &[&nsp, &stream, &before, &chunk])
            .await?;
        let full = len_i64(found.len()) >= chunk;
        for row in &found {
            let entry = decode_entry(row)?;
            before = to_i64(entry.seq);
            if reaches(&entry.entry.target, &rooms) {
                out.push(entry);
                if out.len() >= limit {
                    out.reverse();
                    return Ok(out);
                }
            }
        }
        if !full {
            out.reverse();
            return Ok(out);
        }
    }
}

/// Every entry after `after`, at most `limit`, in position order (the feed).
pub(super) async fn read_log(
    client: &PgClient,
    after: Seq,
    limit: usize,
) -> Result<Vec<Entry>, PgError> {
    let stmt = client
        .prepare_cached(&format!(
            "SELECT {COLS} FROM entries e WHERE e.seq > $1 ORDER BY e.seq LIMIT $2"
        ))
        .await?;
    let rows = client
        .query(&stmt, &[&to_i64(after), &len_i64(limit)])
        .await?;
    rows.iter().map(decode_entry).collect()
}

/// The last position handed out and the highest trimmed one.
pub(super) async fn read_bounds(client: &PgClient) -> Result<(Seq, Seq), PgError> {
    let stmt = client
        .prepare_cached(
            "SELECT (SELECT last_seq FROM state WHERE id = 1), (SELECT upto FROM trimmed WHERE id = 1)",
        )
        .await?;
    let row = client.query_one(&stmt, &[]).await?;
    let last: Option<i64> = get(&row, 0)?;
    let trimmed: Option<i64> = get(&row, 1)?;
    Ok((to_seq(last.unwrap_or(0))?, to_seq(trimmed.unwrap_or(0))?))
}

/// The epoch recorded in the schema (`None`: the state row is gone).
pub(super) async fn read_epoch(client: &PgClient) -> Result<Option<String>, PgError> {
    let stmt = client
        .prepare_cached("SELECT epoch FROM state WHERE id = 1")
        .await?;
    match client.query_opt(&stmt, &[]).await? {
        Some(row) => Ok(Some(get(&row, 0)?)),
        None => Ok(None),
    }
}
