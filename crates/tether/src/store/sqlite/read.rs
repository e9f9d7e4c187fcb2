//! Reads: stream cursors merged by position, on a pool of read connections.

use super::*;

/// The read connections: taken from the idle list, or opened when none is
/// idle; at most [`MAX_IDLE_READERS`] are kept.
pub(super) struct Readers {
    pub(super) path: PathBuf,
    pub(super) idle: Mutex<Vec<Connection>>,
}

impl Readers {
    pub(super) fn run<T>(
        &self,
        op: impl FnOnce(&Connection) -> Result<T, DbError>,
    ) -> Result<T, DbError> {
        let pooled = self.idle.lock().pop();
        let conn = match pooled {
            Some(conn) => conn,
            None => open_reader(&self.path)?,
        };
        conn.execute_batch("BEGIN")?;
        let out = op(&conn);
        // A read transaction: ending it either way releases the snapshot.
        let ended = conn.execute_batch("COMMIT");
        if ended.is_ok() && conn.is_autocommit() {
            let mut idle = self.idle.lock();
            if idle.len() < MAX_IDLE_READERS {
                idle.push(conn);
            }
        }
        out
    }
}

pub(super) const LOAD_ENTRY: &str =
    "SELECT nsp, rooms, except_rooms, event, args, attachments, ts_ms FROM entries WHERE seq = ?1";

/// `EventLog::read`: one cursor per stream (`''` and each room), merged by seq.
pub(super) fn read_entries(
    conn: &Connection,
    nsp: &str,
    rooms: &[String],
    after: Seq,
    limit: usize,
) -> Result<Vec<Entry>, DbError> {
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
    let mut stmts = Vec::with_capacity(streams.len());
    for _ in &streams {
        stmts.push(conn.prepare_cached(
            "SELECT seq FROM entry_targets WHERE nsp = ?1 AND room = ?2 AND seq > ?3 ORDER BY seq",
        )?);
    }
    let mut cursors = Vec::with_capacity(streams.len());
    for (stmt, room) in stmts.iter_mut().zip(&streams) {
        cursors.push(stmt.query(params![nsp, room, to_i64(after)])?);
    }
    let mut heads = Vec::with_capacity(cursors.len());
    for cursor in &mut cursors {
        heads.push(next_seq(cursor)?);
    }
    let mut load = conn.prepare_cached(LOAD_ENTRY)?;
    while let Some(seq) = heads.iter().flatten().min().copied() {
        for (head, cursor) in heads.iter_mut().zip(&mut cursors) {
            if *head == Some(seq) {
                *head = next_seq(cursor)?;
            }
        }
        if let Some(entry) = load_entry(&mut load, seq)? {
            if reaches(&entry.entry.target, rooms) {
                out.push(entry);
                if out.len() >= limit {
                    break;
                }
            }
        }
    }
    Ok(out)
}

/// `EventLog::history`: one cursor on one stream, backwards.
pub(super) fn read_history(
    conn: &Connection,
    nsp: &str,
    room: Option<String>,
    before: Seq,
    limit: usize,
) -> Result<Vec<Entry>, DbError> {
    let mut out = Vec::new();
    if limit == 0 {
        return Ok(out);
    }
    let rooms: Vec<String> = room.into_iter().collect();
    let stream = rooms.first().map_or("", String::as_str);
    let mut stmt = conn.prepare_cached(
        "SELECT seq FROM entry_targets WHERE nsp = ?1 AND room = ?2 AND seq < ?3 ORDER BY seq DESC",
    )?;
    let mut cursor = stmt.query(params![nsp, stream, to_i64(before)])?;
    let mut load = conn.prepare_cached(LOAD_ENTRY)?;
    while let Some(seq) = next_seq(&mut cursor)? {
        if let Some(entry) = load_entry(&mut load, seq)? {
            if reaches(&entry.entry.target, &rooms) {
                out.push(entry);
                if out.len() >= limit {
                    break;
                }
            }
        }
    }
    out.reverse();
    Ok(out)
}

pub(super) fn next_seq(rows: &mut Rows<'_>) -> Result<Option<i64>, DbError> {
    match rows.next()? {
        Some(row) => Ok(Some(row.get(0)?)),
        None => Ok(None),
    }
}

pub(super) fn load_entry(load: &mut Statement<'_>, seq: i64) -> Result<Option<Entry>, DbError> {
    let row = load
        .query_row([seq], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, String>(2)?,
                row.get::<_, String>(3)?,
                row.get::<_, String>(4)?,
                row.get::<_, Vec<u8>>(5)?,
                row.get::<_, i64>(6)?,
            ))
        })
        .optional()?;
    let Some((nsp, rooms, except, event, args, attachments, ts_ms)) = row else {
        return Ok(None);
    };
    Ok(Some(Entry {
        seq: to_seq(seq),
        ts_ms,
        entry: NewEntry {
            target: Target {
                nsp,
                rooms: serde_json::from_str(&rooms)?,
                except: serde_json::from_str(&except)?,
            },
            event,
            args,
            attachments: decode_attachments(&attachments)?,
        },
    }))
}
