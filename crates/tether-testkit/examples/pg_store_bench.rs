//! Throughput of the PostgreSQL store.
//!
//! ```text
//! cargo run --release --example pg_store_bench -- [N] [URL]
//! ```
//!
//! N single-entry appends from 64, then 1024, concurrent tasks (a server with
//! that many clients writing at once) through `PostgresStore` (group commit:
//! the more writers wait, the more one transaction carries), against a
//! baseline of one transaction (one INSERT of each table and COMMIT) per
//! message: the same store fed by one task, one append at a time, at most
//! `BASELINE_MAX` (and N) messages or `BASELINE_SECS` seconds; figures are
//! per second. Then the replay speed: reading the N entries of one room back
//! through `EventLog::read` in pages of 1000.
//!
//! URL: the database (default `postgres://postgres@127.0.0.1:5432/test`);
//! each run works in a schema of its own, dropped at the end.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tether::store::{EventLogExt, PostgresStore};
use tether_testkit::store_bench::{
    group_commit, new_entry, replay, BoxError, APPENDERS, BASELINE_MAX, BASELINE_SECS, DEFAULT_N,
    PAGE,
};

/// One append at a time (each its own transaction); returns (messages,
/// per second).
async fn baseline(store: &PostgresStore, max: usize) -> Result<(usize, f64), BoxError> {
    let start = Instant::now();
    let limit = Duration::from_secs(BASELINE_SECS);
    let mut done = 0;
    while done < max && start.elapsed() < limit {
        store.append(vec![new_entry(done)]).await?;
        done += 1;
    }
    Ok((done, done as f64 / start.elapsed().as_secs_f64()))
}

/// Drops `schema` from the database at `url`.
async fn drop_schema(url: &str, schema: &str) -> Result<(), BoxError> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    client
        .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
        .await?;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let mut args = std::env::args().skip(1);
    let n = match args.next() {
        Some(n) => n
            .parse::<usize>()
            .map_err(|e| format!("N must be a number: {e}"))?,
        None => DEFAULT_N,
    };
    let url = args
        .next()
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    println!(
        "pg_store_bench: N = {n}, {APPENDERS:?} appenders, baseline up to {BASELINE_MAX} messages or {BASELINE_SECS} s, database {url}"
    );
    let mut rows = Vec::new();
    let mut replayed = None;
    let mut base = None;
    for appenders in APPENDERS {
        let schema = format!("bench_{}_{appenders}", std::process::id());
        let store = Arc::new(PostgresStore::connect(&format!("{url}?schema={schema}")).await?);
        let run = async {
            if base.is_none() {
                base = Some(baseline(&store, n.min(BASELINE_MAX)).await?);
            }
            let grouped = group_commit(&store, n, appenders).await?;
            if replayed.is_none() {
                replayed = Some(replay(&*store).await?);
            }
            Ok::<_, BoxError>(grouped)
        }
        .await;
        drop(store);
        drop_schema(&url, &schema).await?;
        rows.push((appenders, run?));
    }
    let (base_n, base) = base.unwrap_or((0, 0.0));
    println!();
    println!(
        "{:>9} | {:>24} | {:>24} | {:>7}",
        "appenders", "group commit (msg/s)", "txn per message (msg/s)", "ratio"
    );
    println!("{}", "-".repeat(72));
    for (appenders, grouped) in rows {
        println!(
            "{:>9} | {:>13.0} (N={:<6}) | {:>13.0} (n={:<6}) | {:>6.1}x",
            appenders,
            grouped,
            n,
            base,
            base_n,
            grouped / base
        );
    }
    if let Some((total, rate)) = replayed {
        println!();
        println!("replay: {total} entries of one room through EventLog::read, pages of {PAGE}: {rate:.0} msg/s");
    }
    Ok(())
}
