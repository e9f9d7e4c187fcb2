//! Retention in SQL: candidates found by index scans, each checked with the
//! shared [`TrimPlan`], removed a chunk at a time; and the session leases.

use super::*;

/// The columns a sweep selects: `seq, nsp, rooms, ts_ms`.
const CANDIDATE: &str = "e.seq, e.nsp, e.rooms, e.ts_ms";

/// What one trim removed so far.
#[derive(Default)]
struct Removed {
    count: u64,
    highest: i64,
}

/// Retention, then the sessions of dead nodes and old disconnected
/// sessions, in one transaction taken under the schema's trim lock (nodes
/// trim one at a time; appends are not held up). The candidates are the
/// entries some limit lets go (the default age, the default count per
/// namespace, each stream's own limits); each goes only if none of its
/// streams keeps it (see [`StreamRetention`]). Every scan pages by
/// position, so entries kept by another stream are stepped over.
pub(super) async fn trim(
    client: &mut PgClient,
    shared: &Shared,
    retention: Retention,
    streams: &[StreamRetention],
    sessions_before_ms: i64,
) -> Result<u64, PgError> {
    let tx = client.transaction().await?;
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
        &[&format!("tether trim {}", shared.schema)],
    )
    .await?;
    let mut plan = TrimPlan::new(&retention);
    let mut defaults: Vec<(String, Cuts)> = Vec::new();
    let mut namespace: Option<String> = None;
    loop {
        // Walk the namespaces through the index, one seek each.
        let row = match &namespace {
            None => {
                tx.query_opt("SELECT nsp FROM entries ORDER BY nsp LIMIT 1", &[])
                    .await?
            }
            Some(prev) => {
                tx.query_opt(
                    "SELECT nsp FROM entries WHERE nsp > $1 ORDER BY nsp LIMIT 1",
                    &[prev],
                )
                .await?
            }
        };
        let Some(row) = row else { break };
        let nsp: String = get(&row, 0)?;
        let count_cut = match retention.max_count {
            Some(max_count) => match tx
                .query_opt(
                    "SELECT seq FROM entries WHERE nsp = $1 ORDER BY seq DESC LIMIT 1 OFFSET $2",
                    &[&nsp, &to_i64(max_count)],
                )
                .await?
            {
                Some(row) => Some(to_seq(get(&row, 0)?)?),
                None => None,
            },
            None => None,
        };
        defaults.push((nsp.clone(), plan.namespace(&nsp, count_cut)));
        namespace = Some(nsp);
    }
    let mut overrides: Vec<(&str, &str, Cuts)> = Vec::new();
    for policy in streams {
        let count_cut = match policy.max_count {
            Some(max_count) => match tx
                .query_opt(
                    "SELECT seq FROM entry_targets WHERE nsp = $1 AND room = $2
                     ORDER BY seq DESC LIMIT 1 OFFSET $3",
                    &[&policy.nsp, &policy.room, &to_i64(max_count)],
                )
                .await?
            {
                Some(row) => Some(to_seq(get(&row, 0)?)?),
                None => None,
            },
            None => None,
        };
        overrides.push((&policy.nsp, &policy.room, plan.stream(policy, count_cut)));
    }

    let mut removed = Removed::default();
    if let Some(cutoff) = plan.default_age() {
        // Timestamps never go back: the old entries are a prefix.
        let sql = format!(
            "SELECT {CANDIDATE} FROM entries e WHERE e.seq > $1 AND e.ts_ms < $3 ORDER BY e.seq LIMIT $2"
        );
        sweep(&tx, &plan, &mut removed, &sql, &[&cutoff]).await?;
    }
    for (nsp, cuts) in &defaults {
        if let Some(cut) = cuts.count_cut {
            let sql = format!(
                "SELECT {CANDIDATE} FROM entries e
                 WHERE e.nsp = $3 AND e.seq > $1 AND e.seq <= $4 ORDER BY e.seq LIMIT $2"
            );
            sweep(&tx, &plan, &mut removed, &sql, &[nsp, &to_i64(cut)]).await?;
        }
    }
    for (nsp, room, cuts) in &overrides {
        let from_targets = |condition: &str| {
            format!(
                "SELECT {CANDIDATE} FROM entry_targets t JOIN entries e ON e.seq = t.seq
                 WHERE t.nsp = $3 AND t.room = $4 AND t.seq > $1 AND {condition}
                 ORDER BY t.seq LIMIT $2"
            )
        };
        if let Some(cutoff) = cuts.age_cutoff_ms {
            let sql = from_targets("e.ts_ms < $5");
            sweep(&tx, &plan, &mut removed, &sql, &[nsp, room, &cutoff]).await?;
        }
        if let Some(cut) = cuts.count_cut {
            let sql = from_targets("t.seq <= $5");
            sweep(&tx, &plan, &mut removed, &sql, &[nsp, room, &to_i64(cut)]).await?;
        }
    }
    if removed.highest > 0 {
        tx.execute(
            "UPDATE trimmed SET upto = GREATEST(upto, $1) WHERE id = 1",
            &[&removed.highest],
        )
        .await?;
    }
    expire_leases(&tx, shared).await?;
    tx.execute(
        "DELETE FROM sessions WHERE NOT connected AND updated_ms < $1",
        &[&sessions_before_ms],
    )
    .await?;
    tx.commit().await?;
    Ok(removed.count)
}

/// Renews this node's lease and marks the sessions of nodes whose lease ran
/// out (killed, or cut off from the database) disconnected as of now, so
/// the recovery window applies to them as to any other.
async fn expire_leases(tx: &Transaction<'_>, shared: &Shared) -> Result<(), PgError> {
    let now = now_ms();
    tx.execute(
        "INSERT INTO owners(owner, renewed_ms) VALUES ($1, $2)
         ON CONFLICT (owner) DO UPDATE SET renewed_ms = excluded.renewed_ms",
        &[&shared.owner, &now],
    )
    .await?;
    let lease = *shared.session_lease.lock();
    let expired = now.saturating_sub(i64::try_from(lease.as_millis()).unwrap_or(i64::MAX));
    let orphans = tx
        .execute(
            "UPDATE sessions SET connected = false, updated_ms = $2, owner = NULL
             WHERE connected AND owner IN (SELECT owner FROM owners WHERE renewed_ms < $1)",
            &[&expired, &now],
        )
        .await?;
    if orphans > 0 {
        tracing::info!(
            sessions = orphans,
            "sessions held by nodes gone silent are disconnected as of now"
        );
    }
    tx.execute("DELETE FROM owners WHERE renewed_ms < $1", &[&expired])
        .await?;
    Ok(())
}

/// Removes the candidates `sql` selects that no stream keeps. `sql` selects
/// `seq, nsp, rooms, ts_ms` with `seq > $1`, in position order, `LIMIT $2`;
/// `args` bind `$3...`.
async fn sweep(
    tx: &Transaction<'_>,
    plan: &TrimPlan,
    removed: &mut Removed,
    sql: &str,
    args: &[&(dyn ToSql + Sync)],
) -> Result<(), PgError> {
    let stmt = tx.prepare(sql).await?;
    let limit = len_i64(TRIM_CHUNK);
    let mut after = 0i64;
    loop {
        let mut bound: Vec<&(dyn ToSql + Sync)> = vec![&after, &limit];
        bound.extend_from_slice(args);
        let chunk = tx.query(&stmt, &bound).await?;
        let mut gone = Gone::default();
        for row in &chunk {
            let seq: i64 = get(row, 0)?;
            let nsp: String = get(row, 1)?;
            let rooms = decode_rooms(&get::<String>(row, 2)?, "rooms")?;
            let ts_ms: i64 = get(row, 3)?;
            after = seq;
            if !plan.keeps(&nsp, &rooms, to_seq(seq)?, ts_ms) {
                for room in streams_of(&rooms) {
                    gone.nsp.push(nsp.clone());
                    gone.room.push(room.to_owned());
                    gone.target_seq.push(seq);
                }
                gone.seq.push(seq);
                removed.highest = removed.highest.max(seq);
            }
        }
        removed.count += u64::try_from(gone.seq.len()).unwrap_or(u64::MAX);
        gone.delete(tx).await?;
        if chunk.len() < TRIM_CHUNK {
            return Ok(());
        }
    }
}

/// The entries of a chunk that go, with their stream rows.
#[derive(Default)]
struct Gone {
    seq: Vec<i64>,
    nsp: Vec<String>,
    room: Vec<String>,
    target_seq: Vec<i64>,
}

impl Gone {
    /// Deletes the entries, their stream rows and idempotency records, and
    /// raises each stream's trim mark; one round trip.
    async fn delete(&self, tx: &Transaction<'_>) -> Result<(), PgError> {
        if self.seq.is_empty() {
            return Ok(());
        }
        let by_seq: [&(dyn ToSql + Sync); 1] = [&self.seq];
        let by_stream: [&(dyn ToSql + Sync); 3] = [&self.nsp, &self.room, &self.target_seq];
        let entries = tx.execute("DELETE FROM entries WHERE seq = ANY($1)", &by_seq);
        let keys = tx.execute("DELETE FROM idempotency WHERE seq = ANY($1)", &by_seq);
        let targets = tx.execute(
            "DELETE FROM entry_targets t
             USING unnest($1::text[], $2::text[], $3::bigint[]) AS d(nsp, room, seq)
             WHERE t.nsp = d.nsp AND t.room = d.room AND t.seq = d.seq",
            &by_stream,
        );
        let marks = tx.execute(
            "INSERT INTO stream_trims(nsp, room, upto)
             SELECT d.nsp, d.room, max(d.seq)
             FROM unnest($1::text[], $2::text[], $3::bigint[]) AS d(nsp, room, seq)
             GROUP BY d.nsp, d.room
             ON CONFLICT (nsp, room) DO UPDATE SET upto = GREATEST(stream_trims.upto, excluded.upto)",
            &by_stream,
        );
        tokio::try_join!(entries, keys, targets, marks)?;
        Ok(())
    }
}
