//! The writer thread: group commit of queued write commands.

use super::*;

/// What a write command sees while it runs inside the batch's transaction.
pub(super) struct Ctx<'a> {
    pub(super) conn: &'a Connection,
    /// The batch's timestamp: never lower than an earlier batch's.
    pub(super) ts_ms: i64,
}

/// A queued write command.
pub(super) trait Job: Send {
    /// Runs the command inside the batch's transaction.
    fn run(&mut self, ctx: &Ctx<'_>) -> Result<(), DbError>;
    /// Answers the caller once the batch committed (`failure` is `None`) or
    /// was rolled back.
    fn finish(self: Box<Self>, failure: Option<&StoreError>);
}

pub(super) struct Task<T, F> {
    pub(super) op: Option<F>,
    pub(super) out: Option<T>,
    pub(super) reply: oneshot::Sender<Result<T, StoreError>>,
}

impl<T, F> Job for Task<T, F>
where
    T: Send,
    F: FnOnce(&Ctx<'_>) -> Result<T, DbError> + Send,
{
    fn run(&mut self, ctx: &Ctx<'_>) -> Result<(), DbError> {
        if let Some(op) = self.op.take() {
            self.out = Some(op(ctx)?);
        }
        Ok(())
    }

    fn finish(self: Box<Self>, failure: Option<&StoreError>) {
        let Task { out, reply, .. } = *self;
        let answer = match (failure, out) {
            (Some(e), _) => Err(e.clone()),
            (None, Some(out)) => Ok(out),
            (None, None) => Err(StoreError::Unavailable("the write was not run".into())),
        };
        // The caller may have stopped waiting: nothing to do then.
        let _ = reply.send(answer);
    }
}

pub(super) struct Writer {
    pub(super) conn: Connection,
    pub(super) queue: mpsc::Receiver<Box<dyn Job>>,
    /// Timestamp of the last batch, so that timestamps never go back with
    /// increasing positions (age trimming relies on it).
    pub(super) last_ts: i64,
    pub(super) file: Arc<FileWatch>,
    /// Why a batch failed; cleared by a health probe that commits (`None`:
    /// no failure since).
    pub(super) failure: Arc<Mutex<Option<String>>>,
}

impl Writer {
    /// Serves batches until the queue is closed (the store was dropped).
    pub(super) fn run(mut self) {
        while let Ok(first) = self.queue.recv() {
            self.run_batch(first);
        }
    }

    pub(super) fn run_batch(&mut self, first: Box<dyn Job>) {
        let mut batch = vec![first];
        let begun = self.conn.execute_batch("BEGIN IMMEDIATE");
        // Drain only once the write lock is held: whatever was queued while
        // waiting for it joins this batch.
        while batch.len() < MAX_BATCH {
            match self.queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let failure = match begun
            .map_err(DbError::from)
            .and_then(|()| self.execute(&mut batch))
        {
            // Committed, but into a file that is no longer at the path: a
            // restart would not find it, so it is not acknowledged.
            Ok(()) if self.file.replaced() => {
                tracing::error!(
                    path = %self.file.path.display(),
                    commands = batch.len(),
                    "the store file was deleted or replaced: refusing every write until restarted"
                );
                *self.failure.lock() = Some(FILE_REPLACED.into());
                Some(StoreError::Unavailable(FILE_REPLACED.into()))
            }
            // A good commit does not clear a failure: on a nearly full disk
            // small writes (session saves) go through while messages fail.
            // The health check's probe, a large write, does.
            Ok(()) => None,
            Err(e) => {
                if !self.conn.is_autocommit() {
                    if let Err(rollback) = self.conn.execute_batch("ROLLBACK") {
                        tracing::error!(error = %rollback, "store rollback failed");
                    }
                }
                tracing::warn!(error = %e, commands = batch.len(), "store batch failed; rolled back");
                metrics::counter!("tether_store_commit_failures_total").increment(1);
                *self.failure.lock() = Some(format!("last commit failed: {e}"));
                Some(e.into_store())
            }
        };
        for job in batch {
            job.finish(failure.as_ref());
        }
    }

    pub(super) fn execute(&mut self, batch: &mut [Box<dyn Job>]) -> Result<(), DbError> {
        let ts_ms = now_ms().max(self.last_ts);
        self.last_ts = ts_ms;
        let ctx = Ctx {
            conn: &self.conn,
            ts_ms,
        };
        for job in batch.iter_mut() {
            job.run(&ctx)?;
        }
        self.conn.execute_batch("COMMIT")?;
        Ok(())
    }
}

/// Appends one entry of a batch, unless its key was used before.
pub(super) fn append_one(ctx: &Ctx<'_>, append: &Append) -> Result<AppendOnce, DbError> {
    let Some(key) = &append.key else {
        return Ok(AppendOnce::Appended(insert_entry(
            ctx.conn,
            &append.entry,
            ctx.ts_ms,
        )?));
    };
    let nsp = &append.entry.target.nsp;
    let seen: Option<i64> = ctx
        .conn
        .prepare_cached("SELECT seq FROM idempotency WHERE nsp = ?1 AND key = ?2")?
        .query_row(params![nsp, key], |row| row.get(0))
        .optional()?;
    if let Some(seq) = seen {
        return Ok(AppendOnce::Duplicate(to_seq(seq)));
    }
    let seq = insert_entry(ctx.conn, &append.entry, ctx.ts_ms)?;
    ctx.conn
        .prepare_cached("INSERT INTO idempotency(nsp, key, seq, ts_ms) VALUES (?1, ?2, ?3, ?4)")?
        .execute(params![nsp, key, to_i64(seq), ctx.ts_ms])?;
    Ok(AppendOnce::Appended(seq))
}

pub(super) fn insert_entry(
    conn: &Connection,
    entry: &NewEntry,
    ts_ms: i64,
) -> Result<Seq, DbError> {
    let target = &entry.target;
    conn.prepare_cached(
        "INSERT INTO entries(nsp, rooms, except_rooms, event, args, attachments, ts_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        target.nsp,
        serde_json::to_string(&target.rooms)?,
        serde_json::to_string(&target.except)?,
        entry.event,
        entry.args,
        encode_attachments(&entry.attachments),
        ts_ms
    ])?;
    let seq = conn.last_insert_rowid();
    // OR IGNORE: a room listed twice is one stream row.
    let mut stream = conn.prepare_cached(
        "INSERT OR IGNORE INTO entry_targets(nsp, room, seq) VALUES (?1, ?2, ?3)",
    )?;
    for room in streams_of(&target.rooms) {
        stream.execute(params![target.nsp, room, seq])?;
    }
    Ok(to_seq(seq))
}
