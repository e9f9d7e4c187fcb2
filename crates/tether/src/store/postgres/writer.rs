//! The writer: group commit of the node's appends, positions taken under
//! the counter row's lock inside the committing transaction.

use super::*;

/// A command for the writer task.
pub(super) enum Job {
    /// Appends a batch; answered once the transaction holding it committed.
    Append {
        batch: Vec<Append>,
        reply: oneshot::Sender<Result<Vec<AppendOnce>, StoreError>>,
    },
    /// A tiny write for the health check after a failure.
    Probe {
        reply: oneshot::Sender<Result<(), StoreError>>,
    },
}

impl Job {
    fn fail(self, e: &StoreError) {
        // The caller may have stopped waiting: nothing to do then.
        match self {
            Job::Append { reply, .. } => drop(reply.send(Err(e.clone()))),
            Job::Probe { reply } => drop(reply.send(Err(e.clone()))),
        }
    }
}

/// The writer task of one store (one node): takes a first command, drains
/// what else is queued (up to [`MAX_BATCH`]), runs it all in one
/// transaction and answers every caller after the COMMIT.
pub(super) struct Writer {
    pub(super) pool: Pool,
    pub(super) queue: mpsc::UnboundedReceiver<Job>,
    pub(super) shared: Arc<Shared>,
}

/// The columns of the rows a batch inserts, one vector per column (sent as
/// arrays and unnested: one statement per table, whatever the batch size).
#[derive(Default)]
struct Rows {
    seq: Vec<i64>,
    nsp: Vec<String>,
    rooms: Vec<String>,
    except: Vec<String>,
    event: Vec<String>,
    args: Vec<String>,
    attachments: Vec<Vec<u8>>,
    target_nsp: Vec<String>,
    target_room: Vec<String>,
    target_seq: Vec<i64>,
    key_nsp: Vec<String>,
    key: Vec<String>,
    key_seq: Vec<i64>,
}

impl Rows {
    fn push(&mut self, seq: i64, entry: &NewEntry) {
        let target = &entry.target;
        self.seq.push(seq);
        self.nsp.push(target.nsp.clone());
        self.rooms.push(encode_rooms(&target.rooms));
        self.except.push(encode_rooms(&target.except));
        self.event.push(entry.event.clone());
        self.args.push(entry.args.clone());
        self.attachments
            .push(encode_attachments(&entry.attachments));
        for room in streams_of(&target.rooms) {
            self.target_nsp.push(target.nsp.clone());
            self.target_room.push(room.to_owned());
            self.target_seq.push(seq);
        }
    }
}

impl Writer {
    /// Serves batches until the store is dropped.
    pub(super) async fn run(mut self) {
        while let Some(first) = self.queue.recv().await {
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match self.queue.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            self.run_batch(batch).await;
        }
    }

    async fn run_batch(&mut self, batch: Vec<Job>) {
        let outcome = match tokio::time::timeout(OP_TIMEOUT, self.commit(&batch)).await {
            Ok(Ok(out)) => Ok(out),
            Ok(Err(e)) => Err(e.into_store()),
            Err(_) => Err(StoreError::Unavailable(format!(
                "postgres: the commit got no answer within {OP_TIMEOUT:?} (it may or may not have been applied)"
            ))),
        };
        match outcome {
            Ok(mut outputs) => {
                if self.shared.failure.lock().take().is_some() {
                    tracing::info!("postgres store writes work again");
                }
                for job in batch {
                    match job {
                        Job::Append { reply, .. } => {
                            let out = outputs.pop_front().unwrap_or_default();
                            let _ = reply.send(Ok(out));
                        }
                        Job::Probe { reply } => {
                            let _ = reply.send(Ok(()));
                        }
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, commands = batch.len(), "postgres batch failed; rolled back");
                metrics::counter!("tether_store_commit_failures_total").increment(1);
                *self.shared.failure.lock() = Some(format!("last commit failed: {}", reason(&e)));
                for job in batch {
                    job.fail(&e);
                }
            }
        }
    }

    /// One transaction for the whole batch; returns the outcome of each
    /// append, in batch order. Dropped before the COMMIT (an error, a
    /// timeout), the transaction rolls back and positions are not taken.
    async fn commit(&self, batch: &[Job]) -> Result<VecDeque<Vec<AppendOnce>>, PgError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        // The counter row's lock: held from here to the COMMIT. Every
        // transaction that takes positions waits here for the previous one
        // to commit or roll back (see `PostgresStore`).
        let lock = tx
            .prepare_cached("SELECT epoch, last_seq, last_ts FROM state WHERE id = 1 FOR UPDATE")
            .await?;
        let Some(state) = tx.query_opt(&lock, &[]).await? else {
            return Err(PgError::corrupt("the state row is missing"));
        };
        let epoch: String = get(&state, 0)?;
        if epoch != self.shared.epoch.get() {
            self.shared.epoch.adopt(epoch);
            return Err(PgError::Unavailable(
                "store reset: the schema was made anew under this node; retry".into(),
            ));
        }
        let last_seq: i64 = get(&state, 1)?;
        let last_ts: i64 = get(&state, 2)?;
        let ts_ms = now_ms().max(last_ts);

        // Keys seen before, in one query for the whole batch.
        let (mut key_nsp, mut keys) = (Vec::new(), Vec::new());
        for job in batch {
            if let Job::Append { batch, .. } = job {
                for append in batch {
                    if let Some(key) = &append.key {
                        key_nsp.push(append.entry.target.nsp.as_str());
                        keys.push(key.as_str());
                    }
                }
            }
        }
        let mut seen: HashMap<(String, String), i64> = HashMap::new();
        if !keys.is_empty() {
            let lookup = tx
                .prepare_cached(
                    "SELECT i.nsp, i.key, i.seq FROM idempotency i
                     JOIN unnest($1::text[], $2::text[]) AS k(nsp, key)
                       ON i.nsp = k.nsp AND i.key = k.key",
                )
                .await?;
            for row in tx.query(&lookup, &[&key_nsp, &keys]).await? {
                seen.insert((get(&row, 0)?, get(&row, 1)?), get(&row, 2)?);
            }
        }

        let mut rows = Rows::default();
        let mut next = last_seq;
        let mut outputs = VecDeque::new();
        for job in batch {
            let Job::Append { batch, .. } = job else {
                continue;
            };
            let mut out = Vec::with_capacity(batch.len());
            for Append { entry, key } in batch {
                if let Some(key) = key {
                    let id = (entry.target.nsp.clone(), key.clone());
                    if let Some(seq) = seen.get(&id) {
                        out.push(AppendOnce::Duplicate(to_seq(*seq)?));
                        continue;
                    }
                    next += 1;
                    seen.insert(id, next);
                    rows.key_nsp.push(entry.target.nsp.clone());
                    rows.key.push(key.clone());
                    rows.key_seq.push(next);
                } else {
                    next += 1;
                }
                rows.push(next, entry);
                out.push(AppendOnce::Appended(to_seq(next)?));
            }
            outputs.push_back(out);
        }

        let probes = batch.iter().any(|job| matches!(job, Job::Probe { .. }));
        if next > last_seq {
            // One round trip for all of them: tokio-postgres pipelines the
            // statements of concurrent futures on one connection.
            let entries = async {
                let stmt = tx
                    .prepare_cached(
                        "INSERT INTO entries(seq, nsp, rooms, except_rooms, event, args, attachments, ts_ms)
                         SELECT u.seq, u.nsp, u.rooms, u.except_rooms, u.event, u.args, u.attachments, $8
                         FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[],
                                     $6::text[], $7::bytea[])
                           AS u(seq, nsp, rooms, except_rooms, event, args, attachments)",
                    )
                    .await?;
                tx.execute(
                    &stmt,
                    &[
                        &rows.seq,
                        &rows.nsp,
                        &rows.rooms,
                        &rows.except,
                        &rows.event,
                        &rows.args,
                        &rows.attachments,
                        &ts_ms,
                    ],
                )
                .await
            };
            let targets = async {
                // ON CONFLICT: a room listed twice is one stream row.
                let stmt = tx
                    .prepare_cached(
                        "INSERT INTO entry_targets(nsp, room, seq)
                         SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[])
                         ON CONFLICT DO NOTHING",
                    )
                    .await?;
                tx.execute(
                    &stmt,
                    &[&rows.target_nsp, &rows.target_room, &rows.target_seq],
                )
                .await
            };
            let keyed = async {
                if rows.key.is_empty() {
                    return Ok(0);
                }
                let stmt = tx
                    .prepare_cached(
                        "INSERT INTO idempotency(nsp, key, seq, ts_ms)
                         SELECT u.nsp, u.key, u.seq, $4
                         FROM unnest($1::text[], $2::text[], $3::bigint[]) AS u(nsp, key, seq)",
                    )
                    .await?;
                tx.execute(&stmt, &[&rows.key_nsp, &rows.key, &rows.key_seq, &ts_ms])
                    .await
            };
            let counter = async {
                let stmt = tx
                    .prepare_cached("UPDATE state SET last_seq = $1, last_ts = $2 WHERE id = 1")
                    .await?;
                tx.execute(&stmt, &[&next, &ts_ms]).await
            };
            let notify = async {
                // Delivered at COMMIT, to the feeds of every node: a wake-up
                // only, the entries are read from the table.
                let stmt = tx.prepare_cached("SELECT pg_notify($1, '')").await?;
                tx.execute(&stmt, &[&self.shared.channel]).await
            };
            tokio::try_join!(entries, targets, keyed, counter, notify)?;
        }
        if probes {
            let stmt = tx
                .prepare_cached(
                    "INSERT INTO meta(key, value) VALUES ('health_probe', $1)
                     ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                )
                .await?;
            tx.execute(&stmt, &[&now_ms().to_string()]).await?;
        }
        tx.commit().await?;
        Ok(outputs)
    }
}
