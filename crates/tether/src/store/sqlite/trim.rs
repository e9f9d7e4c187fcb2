//! Retention in SQL: candidates found by index scans, each checked with the
//! shared [`TrimPlan`].

use super::*;

/// Retention, then old disconnected sessions. The candidates are the entries
/// some limit lets go (the default age, the default count per namespace, each
/// stream's own limits); each goes only if none of its streams keeps it (see
/// [`StreamRetention`]). Every scan pages by position, so entries kept by
/// another stream are stepped over, never looped on.
pub(super) fn trim(
    conn: &Connection,
    retention: Retention,
    streams: &[StreamRetention],
    sessions_before_ms: i64,
) -> Result<u64, DbError> {
    let mut plan = TrimPlan::new(&retention);
    // The limits to sweep by: each namespace's defaults, each stream's own.
    let mut defaults: Vec<(String, Cuts)> = Vec::new();
    let mut overrides: Vec<(&str, &str, Cuts)> = Vec::new();
    let mut namespace: Option<String> = None;
    loop {
        // Walk the namespaces through the index, one seek each.
        namespace = match &namespace {
            None => conn
                .prepare_cached("SELECT nsp FROM entries ORDER BY nsp LIMIT 1")?
                .query_row([], |row| row.get(0))
                .optional()?,
            Some(prev) => conn
                .prepare_cached("SELECT nsp FROM entries WHERE nsp > ?1 ORDER BY nsp LIMIT 1")?
                .query_row([prev], |row| row.get(0))
                .optional()?,
        };
        let Some(nsp) = &namespace else { break };
        let count_cut = match retention.max_count {
            Some(max_count) => conn
                .prepare_cached(
                    "SELECT seq FROM entries WHERE nsp = ?1 ORDER BY seq DESC LIMIT 1 OFFSET ?2",
                )?
                .query_row(params![nsp, to_i64(max_count)], |row| row.get::<_, i64>(0))
                .optional()?
                .map(to_seq),
            None => None,
        };
        defaults.push((nsp.clone(), plan.namespace(nsp, count_cut)));
    }
    // Each stream's own limits.
    for policy in streams {
        let count_cut = match policy.max_count {
            Some(max_count) => conn
                .prepare_cached(
                    "SELECT seq FROM entry_targets WHERE nsp = ?1 AND room = ?2
                     ORDER BY seq DESC LIMIT 1 OFFSET ?3",
                )?
                .query_row(params![policy.nsp, policy.room, to_i64(max_count)], |row| {
                    row.get::<_, i64>(0)
                })
                .optional()?
                .map(to_seq),
            None => None,
        };
        overrides.push((&policy.nsp, &policy.room, plan.stream(policy, count_cut)));
    }
    let keeps = |seq: i64, nsp: &str, rooms: &[String], ts_ms: i64| {
        plan.keeps(nsp, rooms, to_seq(seq), ts_ms)
    };
    let mut removed = 0u64;
    let mut highest = 0i64;
    let mut sweep = |sql: &str, args: &[&dyn rusqlite::ToSql]| -> Result<(), DbError> {
        // `sql` selects (seq, nsp, rooms, ts_ms) of candidates with
        // seq > ?1, in position order, LIMIT ?2; `args` bind ?3...
        let mut after = 0i64;
        loop {
            let chunk = {
                let mut stmt = conn.prepare_cached(sql)?;
                let mut bound: Vec<&dyn rusqlite::ToSql> = vec![&after];
                let limit = to_i64_len(TRIM_CHUNK);
                bound.push(&limit);
                bound.extend_from_slice(args);
                let rows = stmt
                    .query_map(bound.as_slice(), |row| {
                        Ok((
                            row.get::<_, i64>(0)?,
                            row.get::<_, String>(1)?,
                            row.get::<_, String>(2)?,
                            row.get::<_, i64>(3)?,
                        ))
                    })?
                    .collect::<Result<Vec<_>, _>>()?;
                rows
            };
            for (seq, nsp, rooms, ts_ms) in &chunk {
                after = *seq;
                let rooms: Vec<String> = serde_json::from_str(rooms)?;
                if !keeps(*seq, nsp, &rooms, *ts_ms) {
                    delete_entry(conn, *seq, nsp, &rooms)?;
                    highest = highest.max(*seq);
                    removed += 1;
                }
            }
            if chunk.len() < TRIM_CHUNK {
                return Ok(());
            }
        }
    };
    const COLS: &str = "e.seq, e.nsp, e.rooms, e.ts_ms";
    if let Some(cutoff) = plan.default_age() {
        // Timestamps never go back: the old entries are a prefix.
        sweep(
            &format!("SELECT {COLS} FROM entries e WHERE e.seq > ?1 AND e.ts_ms < ?3 ORDER BY e.seq LIMIT ?2"),
            &[&cutoff],
        )?;
    }
    for (nsp, cuts) in &defaults {
        if let Some(cut) = cuts.count_cut {
            sweep(
                &format!("SELECT {COLS} FROM entries e WHERE e.nsp = ?3 AND e.seq > ?1 AND e.seq <= ?4 ORDER BY e.seq LIMIT ?2"),
                &[nsp, &to_i64(cut)],
            )?;
        }
    }
    for (nsp, room, cuts) in &overrides {
        let from_targets = format!(
            "SELECT {COLS} FROM entry_targets t JOIN entries e ON e.seq = t.seq
             WHERE t.nsp = ?3 AND t.room = ?4 AND t.seq > ?1 AND {{}} ORDER BY t.seq LIMIT ?2"
        );
        if let Some(cutoff) = cuts.age_cutoff_ms {
            sweep(
                &from_targets.replace("{}", "e.ts_ms < ?5"),
                &[&nsp, &room, &cutoff],
            )?;
        }
        if let Some(cut) = cuts.count_cut {
            sweep(
                &from_targets.replace("{}", "t.seq <= ?5"),
                &[&nsp, &room, &to_i64(cut)],
            )?;
        }
    }
    if highest > 0 {
        conn.prepare_cached(
            "INSERT INTO meta(key, value) VALUES ('trimmed_upto', ?1)
             ON CONFLICT(key) DO UPDATE SET value = max(value, excluded.value)",
        )?
        .execute([highest])?;
    }
    conn.prepare_cached("DELETE FROM sessions WHERE connected = 0 AND updated_ms < ?1")?
        .execute([sessions_before_ms])?;
    Ok(removed)
}

/// Deletes an entry with its stream rows and its idempotency record.
pub(super) fn delete_entry(
    conn: &Connection,
    seq: i64,
    nsp: &str,
    rooms: &[String],
) -> Result<(), DbError> {
    conn.prepare_cached("DELETE FROM entries WHERE seq = ?1")?
        .execute([seq])?;
    let mut stream =
        conn.prepare_cached("DELETE FROM entry_targets WHERE nsp = ?1 AND room = ?2 AND seq = ?3")?;
    let mut mark = conn.prepare_cached(
        "INSERT INTO stream_trims(nsp, room, upto) VALUES (?1, ?2, ?3)
         ON CONFLICT(nsp, room) DO UPDATE SET upto = max(upto, excluded.upto)",
    )?;
    for room in streams_of(rooms) {
        stream.execute(params![nsp, room, seq])?;
        mark.execute(params![nsp, room, seq])?;
    }
    conn.prepare_cached("DELETE FROM idempotency WHERE seq = ?1")?
        .execute([seq])?;
    Ok(())
}
