//! The server under test: the `tether` binary (`tether serve`), started,
//! killed with SIGKILL and started again on the same store and port.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

/// How long a server may take to print its address.
const START_BUDGET: Duration = Duration::from_secs(30);

/// Errors of the server's process.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The binary could not be run.
    #[error("cannot run {bin}: {source}")]
    Spawn {
        /// The binary.
        bin: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The server exited or said nothing in time.
    #[error("the server did not start within {budget:?} ({why}); see its log {log}")]
    NotStarted {
        /// The time allowed.
        budget: Duration,
        /// What happened.
        why: String,
        /// Its stderr.
        log: PathBuf,
    },
    /// `tether history` failed.
    #[error("tether history failed: {0}")]
    History(String),
}

/// A `tether serve` child process and how to start it again.
pub struct Server {
    bin: PathBuf,
    port: u16,
    /// Counters of `/metrics` summed over the server's past lives.
    metrics: BTreeMap<String, f64>,
    args: Vec<String>,
    log: PathBuf,
    child: Option<Child>,
    starts: u32,
}

impl Server {
    /// A server of `bin` listening on 127.0.0.1:`port` with the store
    /// `store` (a SQLite file or a `redis://` URL), logging to `log`.
    pub fn new(bin: &Path, port: u16, store: &str, extra: &[String], log: &Path) -> Server {
        let mut args: Vec<String> = vec![
            "serve".into(),
            "--host".into(),
            "127.0.0.1".into(),
            "--port".into(),
            port.to_string(),
            "--store".into(),
            store.into(),
        ];
        args.extend(extra.iter().cloned());
        Server {
            bin: bin.to_owned(),
            port,
            metrics: BTreeMap::new(),
            args,
            log: log.to_owned(),
            child: None,
            starts: 0,
        }
    }

    /// Starts the server and waits (bounded) until it listens; returns how
    /// long that took.
    pub async fn start(&mut self) -> Result<Duration, ServerError> {
        let began = Instant::now();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(|source| ServerError::Spawn {
                bin: self.log.clone(),
                source,
            })?;
        let mut child = Command::new(&self.bin)
            .args(&self.args)
            .env(
                "RUST_LOG",
                std::env::var("TETHER_BENCH_SERVER_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| ServerError::Spawn {
                bin: self.bin.clone(),
                source,
            })?;
        self.starts += 1;
        let not_started = |why: String| ServerError::NotStarted {
            budget: START_BUDGET,
            why,
            log: self.log.clone(),
        };
        let Some(stdout) = child.stdout.take() else {
            return Err(not_started("no stdout".into()));
        };
        let mut lines = BufReader::new(stdout).lines();
        // `tether serve` prints `Tether chat on http://ADDR/ ...` once it listens.
        let ready = tokio::time::timeout(START_BUDGET, async {
            loop {
                match lines.next_line().await {
                    Ok(Some(line)) if line.starts_with("Tether chat on") => return Ok(()),
                    Ok(Some(_)) => {}
                    Ok(None) => return Err("it exited".to_owned()),
                    Err(e) => return Err(e.to_string()),
                }
            }
        })
        .await;
        match ready {
            Ok(Ok(())) => {}
            Ok(Err(why)) => return Err(not_started(why)),
            Err(_) => return Err(not_started("timed out".into())),
        }
        // Keep reading stdout so that the server never blocks on it.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        self.child = Some(child);
        Ok(began.elapsed())
    }

    /// `kill -9`, and waits for the process to be gone. Its counters are
    /// read from `/metrics` first (a process killed loses them).
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            if let Ok(counters) = scrape(self.port).await {
                for (name, value) in counters {
                    *self.metrics.entry(name).or_default() += value;
                }
            }
            let _ = child.start_kill();
            let _ = tokio::time::timeout(Duration::from_secs(10), child.wait()).await;
        }
    }

    /// The `tether_*_total` counters of `/metrics`, summed over every life
    /// of the server (read at each kill).
    pub fn metrics(&self) -> &BTreeMap<String, f64> {
        &self.metrics
    }

    /// How many times the server was started.
    pub fn starts(&self) -> u32 {
        self.starts
    }
}

/// Reads the `tether_*_total` counters of the server's `/metrics` (one line
/// each, labels included in the name).
async fn scrape(port: u16) -> std::io::Result<BTreeMap<String, f64>> {
    let fetch = async {
        let mut conn = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        conn.write_all(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            .await?;
        let mut body = Vec::new();
        conn.take(4 * 1024 * 1024).read_to_end(&mut body).await?;
        Ok::<_, std::io::Error>(body)
    };
    let body = tokio::time::timeout(Duration::from_secs(2), fetch)
        .await
        .map_err(|_| std::io::Error::other("timed out"))??;
    Ok(parse_counters(&String::from_utf8_lossy(&body)))
}

/// The `tether_*_total` samples of a Prometheus text exposition.
fn parse_counters(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| l.starts_with("tether_"))
        .filter_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            let base = name.split('{').next()?;
            base.ends_with("_total")
                .then_some(())
                .and_then(|()| Some((name.to_owned(), value.parse().ok()?)))
        })
        .collect()
}

/// Reads every stored chat message of the SQLite store `store` with
/// `tether history`: (serverOffset, content) in store order.
pub async fn stored_messages(bin: &Path, store: &Path) -> Result<Vec<(u64, String)>, ServerError> {
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        Command::new(bin)
            .arg("history")
            .arg("--store")
            .arg(store)
            .arg("--limit")
            .arg("100000000")
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .map_err(|_| ServerError::History("timed out".into()))?
    .map_err(|e| ServerError::History(e.to_string()))?;
    if !out.status.success() {
        return Err(ServerError::History(
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ));
    }
    parse_history(&String::from_utf8_lossy(&out.stdout))
}

/// Parses `tether history` output: `seq \t ts_ms \t event \t [args..]`
/// per line, the chat message's content being the first argument.
pub fn parse_history(text: &str) -> Result<Vec<(u64, String)>, ServerError> {
    let mut entries = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let mut fields = line.splitn(4, '\t');
        let bad = || ServerError::History(format!("unexpected line: {line}"));
        let seq: u64 = fields.next().and_then(|s| s.parse().ok()).ok_or_else(bad)?;
        let _ts = fields.next().ok_or_else(bad)?;
        let event = fields.next().ok_or_else(bad)?;
        let array: serde_json::Value = fields
            .next()
            .and_then(|a| serde_json::from_str(a).ok())
            .ok_or_else(bad)?;
        if event != "chat message" {
            continue;
        }
        let content = array
            .get(0)
            .and_then(|c| c.as_str())
            .ok_or_else(bad)?
            .to_owned();
        entries.push((seq, content));
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_parse() {
        let text = "HTTP/1.0 200 OK\r\n\r\n# TYPE tether_duplicates_total counter\n\
                    tether_duplicates_total 3\n\
                    tether_recoveries_total{result=\"recovered\"} 12\n\
                    tether_connections 4\n";
        let counters = parse_counters(text);
        assert_eq!(counters.get("tether_duplicates_total"), Some(&3.0));
        assert_eq!(
            counters.get("tether_recoveries_total{result=\"recovered\"}"),
            Some(&12.0)
        );
        assert_eq!(counters.len(), 2);
    }

    #[test]
    fn history_lines_parse() {
        let text = "1\t17\tchat message\t[\"r0#1\",1,{\"id\":\"r0-1\"}]\n\
                    2\t18\tchat message\t[\"n0#1\",2,{\"id\":\"n0-1\"}]\n";
        let entries = parse_history(text).expect("parses");
        assert_eq!(
            entries,
            vec![(1, "r0#1".to_owned()), (2, "n0#1".to_owned())]
        );
        assert!(parse_history("x\ty").is_err());
    }
}
