//! `PostgresStore` while its database crashes and comes back: a PostgreSQL
//! instance of the test's own (`initdb` and `pg_ctl` on a temporary
//! directory and a free port; the shared one at 127.0.0.1:5432 is left
//! alone), stopped with `pg_ctl stop -m immediate` (a crash: no checkpoint,
//! recovery from the WAL at the next start) while nodes append.
//!
//! PostgreSQL's server programs missing (`/usr/lib/postgresql/*/bin`): the
//! test says it was skipped, on stderr; with CI=true it fails instead.

use std::collections::HashSet;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tether::store::prelude::*;
use tether::store::{Health, NewEntry, PostgresStore, Target};

fn entry(event: &str) -> NewEntry {
    NewEntry {
        target: Target {
            nsp: "/".into(),
            rooms: vec![],
            except: vec![],
        },
        event: event.into(),
        args: format!(r#"["{event}"]"#),
        attachments: vec![],
    }
}

/// A PostgreSQL server of the test's own. Stopped (immediately) on drop.
struct PrivatePg {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    /// The server programs run as this user (`initdb` refuses root).
    user: Option<&'static str>,
}

impl PrivatePg {
    /// `None`: the server programs are not installed and this is not CI.
    fn new(test: &str) -> Option<PrivatePg> {
        let Some(bin) = server_bin() else {
            let why = "PostgreSQL's server programs (/usr/lib/postgresql/*/bin) are not installed";
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("{test}: {why} (CI=true)");
            }
            let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {why}");
            return None;
        };
        let root = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
        let user = root.then_some("postgres");
        let dir = tempfile::Builder::new()
            .prefix("tether-pg-")
            .tempdir()
            .expect("a temp dir");
        if let Some(user) = user {
            let chown = Command::new("chown")
                .arg("-R")
                .arg(format!("{user}:"))
                .arg(dir.path())
                .status()
                .expect("chown runs");
            assert!(chown.success(), "chown the data directory to {user}");
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let pg = PrivatePg {
            bin,
            dir,
            port,
            user,
        };
        let data = pg.data();
        pg.run(
            "initdb",
            &["-D", &data, "-A", "trust", "-U", "postgres", "--no-sync"],
        );
        pg.start();
        Some(pg)
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    /// Runs one of the server programs (as the server's user), bounded.
    fn run(&self, program: &str, args: &[&str]) {
        let path = self.bin.join(program);
        let mut cmd = match self.user {
            Some(user) => {
                let mut cmd = Command::new("runuser");
                cmd.args(["-u", user, "--"]).arg(&path);
                cmd
            }
            None => Command::new(&path),
        };
        let out = cmd
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("{program} runs: {e}"));
        assert!(
            out.status.success(),
            "{program} {args:?}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn start(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=on",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("server.log").display().to_string();
        let data = self.data();
        self.run(
            "pg_ctl",
            &[
                "-D", &data, "-o", &options, "-l", &log, "-w", "-t", "30", "start",
            ],
        );
    }

    /// A crash: no checkpoint, the next start recovers from the WAL.
    fn crash(&self) {
        let data = self.data();
        self.run("pg_ctl", &["-D", &data, "-m", "immediate", "-w", "stop"]);
    }

    fn url(&self, schema: &str) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/postgres?schema={schema}",
            self.port
        )
    }
}

impl Drop for PrivatePg {
    fn drop(&mut self) {
        let data = self.data();
        let path = self.bin.join("pg_ctl");
        let mut cmd = match self.user {
            Some(user) => {
                let mut cmd = Command::new("runuser");
                cmd.args(["-u", user, "--"]).arg(&path);
                cmd
            }
            None => Command::new(&path),
        };
        // Already stopped is fine.
        let _ = cmd
            .args(["-D", &data, "-m", "immediate", "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// The newest `/usr/lib/postgresql/<version>/bin` with `initdb`.
fn server_bin() -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(Path::new("/usr/lib/postgresql"))
        .ok()?
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|bin| bin.join("initdb").is_file() && bin.join("pg_ctl").is_file())
        .collect();
    found.sort();
    found.pop()
}

/// Nodes append while the database crashes and comes back: appends during
/// the outage fail as unavailable (never corrupt), health says so, service
/// resumes by itself, every acknowledged append is there after the
/// restart, positions have no gap, and a feed resumed from its last entry
/// brings everything once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_crash_loses_nothing_acknowledged_and_service_resumes_by_itself() {
    let Some(pg) = PrivatePg::new("a_database_crash_loses_nothing_acknowledged") else {
        return;
    };
    let url = pg.url("faults");
    let nodes = [
        Arc::new(PostgresStore::connect(&url).await.unwrap()),
        Arc::new(PostgresStore::connect(&url).await.unwrap()),
    ];
    let reader = PostgresStore::connect(&url).await.unwrap();
    let mut feed = reader.shared_feed().unwrap().feed(0);

    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(Mutex::new(Vec::<(u64, String)>::new()));
    let failed = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut writers = Vec::new();
    for (n, node) in nodes.iter().enumerate() {
        for t in 0..3 {
            let (node, stop) = (Arc::clone(node), Arc::clone(&stop));
            let (acked, failed) = (Arc::clone(&acked), Arc::clone(&failed));
            writers.push(tokio::spawn(async move {
                let mut i = 0;
                while !stop.load(Ordering::SeqCst) {
                    let event = format!("n{n}-t{t}-{i}");
                    i += 1;
                    match node.append(vec![entry(&event)]).await {
                        Ok(seqs) => acked.lock().unwrap().push((seqs[0], event)),
                        Err(e) => {
                            assert!(e.is_unavailable(), "an outage is not corrupt data: {e:?}");
                            failed.lock().unwrap().push(event);
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    }
                }
            }));
        }
    }
    let wait_acked = |n: usize| {
        let acked = Arc::clone(&acked);
        async move {
            let deadline = Instant::now() + Duration::from_secs(20);
            while acked.lock().unwrap().len() < n {
                assert!(Instant::now() < deadline, "appends did not reach {n}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    wait_acked(100).await;

    pg.crash();
    let before_restart = acked.lock().unwrap().len();
    let deadline = Instant::now() + Duration::from_secs(15);
    while failed.lock().unwrap().len() < 6 {
        assert!(
            Instant::now() < deadline,
            "no append failed while the database was down"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let health = nodes[0].check_health().await;
    assert!(!health.is_healthy(), "{health:?}");
    assert!(
        nodes[0].bounds().await.is_err_and(|e| e.is_unavailable()),
        "reads fail as unavailable too"
    );

    pg.start();
    wait_acked(before_restart + 100).await;
    stop.store(true, Ordering::SeqCst);
    for writer in writers {
        writer.await.unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while nodes[0].check_health().await != Health::Healthy {
        assert!(Instant::now() < deadline, "health did not come back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let acked = acked.lock().unwrap().clone();
    let failed = failed.lock().unwrap().clone();
    let mut stored = Vec::new();
    let mut after = 0;
    loop {
        let page = reader.read("/", &[], after, 500).await.unwrap();
        let Some(last) = page.last() else { break };
        after = last.seq;
        stored.extend(page);
    }
    let positions: Vec<u64> = stored.iter().map(|e| e.seq).collect();
    assert_eq!(
        positions,
        (1..=stored.len() as u64).collect::<Vec<_>>(),
        "positions have no gap after the crash"
    );
    let by_seq: std::collections::HashMap<u64, &str> = stored
        .iter()
        .map(|e| (e.seq, e.entry.event.as_str()))
        .collect();
    for (seq, event) in &acked {
        assert_eq!(
            by_seq.get(seq).copied(),
            Some(event.as_str()),
            "acknowledged {event} at {seq} is there after the crash"
        );
    }
    // What was stored and not acknowledged can only be an append whose
    // COMMIT went through as the connection died.
    let acked_events: HashSet<&str> = acked.iter().map(|(_, e)| e.as_str()).collect();
    let failed_events: HashSet<&str> = failed.iter().map(String::as_str).collect();
    for e in &stored {
        let event = e.entry.event.as_str();
        assert!(
            acked_events.contains(event) || failed_events.contains(event),
            "{event} was never sent"
        );
    }

    // The feed, resumed from its last entry each time it fails, brings
    // every stored entry once, in order.
    let mut last = 0;
    let mut from_feed = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while from_feed.len() < stored.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, feed.next())
            .await
            .expect("the feed brings everything within 20 s")
        {
            Some(Ok(entry)) => {
                assert!(entry.seq > last, "in order, none twice");
                last = entry.seq;
                from_feed.push(entry.seq);
            }
            Some(Err(e)) => {
                assert!(e.is_unavailable(), "{e:?}");
                feed = reader.shared_feed().unwrap().feed(last);
            }
            None => feed = reader.shared_feed().unwrap().feed(last),
        }
    }
    assert_eq!(from_feed, positions);
    let _ = writeln!(
        std::io::stderr(),
        "{} acknowledged, {} failed during the outage, {} stored",
        acked.len(),
        failed.len(),
        stored.len()
    );
}
