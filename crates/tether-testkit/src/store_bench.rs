//! What the store benchmarks (`examples/store_bench.rs` on SQLite,
//! `examples/pg_store_bench.rs` on PostgreSQL) share: the entries they
//! append, the concurrent appenders of the group-commit figure and the paged
//! replay read.

use std::sync::Arc;
use std::time::Instant;

use tether::store::{EventLog, EventLogExt, NewEntry, StoreError, Target};

/// Default number of appends per run.
pub const DEFAULT_N: usize = 50_000;
/// Concurrent appenders.
pub const APPENDERS: [usize; 2] = [64, 1024];
/// At most this many baseline messages (and at most N)...
pub const BASELINE_MAX: usize = 20_000;
/// ...or this long, in seconds.
pub const BASELINE_SECS: u64 = 5;
/// Page size of the replay.
pub const PAGE: usize = 1000;
/// The room every benchmark entry goes to.
pub const ROOM: &str = "bench-room";

/// The error of a benchmark run.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Benchmark message `i`, to [`ROOM`] of `/`.
pub fn new_entry(i: usize) -> NewEntry {
    NewEntry {
        target: Target {
            nsp: "/".to_owned(),
            rooms: vec![ROOM.to_owned()],
            except: Vec::new(),
        },
        event: "message".to_owned(),
        args: format!(r#"["message",{{"n":{i},"text":"hello from the benchmark"}}]"#),
        attachments: Vec::new(),
    }
}

/// N single-entry appends from `appenders` tasks; returns messages per
/// second.
pub async fn group_commit<S: EventLog>(
    store: &Arc<S>,
    n: usize,
    appenders: usize,
) -> Result<f64, BoxError> {
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(appenders);
    for t in 0..appenders {
        let store = Arc::clone(store);
        // Task t appends messages t, t + appenders, t + 2 * appenders, ...
        let count = n / appenders + usize::from(t < n % appenders);
        tasks.push(tokio::spawn(async move {
            for k in 0..count {
                store.append(vec![new_entry(t + k * appenders)]).await?;
            }
            Ok::<_, StoreError>(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

/// Reads every entry of [`ROOM`] in pages of [`PAGE`]; returns (entries,
/// per second).
pub async fn replay<S: EventLog + ?Sized>(store: &S) -> Result<(usize, f64), BoxError> {
    let rooms = vec!["socket-own-id".to_owned(), ROOM.to_owned()];
    let start = Instant::now();
    let mut after = 0;
    let mut total = 0;
    loop {
        let page = store.read("/", &rooms, after, PAGE).await?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        total += page.len();
    }
    Ok((total, total as f64 / start.elapsed().as_secs_f64()))
}
