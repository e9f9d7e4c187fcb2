//! Memory under many slow readers: clients that catch up from a large
//! history and stop reading are paused within the server's send budget
//! (`--max-buffer-total`), not buffered in memory, and once they read again
//! each gets every entry exactly once, in order, live ones included.
//!
//! Runs `tether serve` as a child process (its RSS from /proc/PID/status, its
//! budget gauge from /metrics), on loopback, every wait with a deadline.
//! `TETHER_BIN` runs another `tether` executable instead (to check that an
//! older build fails it).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tether::store::{Durability, EventLogExt, NewEntry, SqliteStore, Target};
use tokio::net::TcpSocket;
use tokio_websockets::{ClientBuilder, Message};

/// Stored entries the readers catch up from.
const HISTORY: u64 = 1500;
/// Entries published while the readers do not read.
const LIVE: u64 = 100;
/// Characters of each message.
const CONTENT: usize = 4000;
/// Readers.
const READERS: usize = 20;
/// The send budget given to the server.
const BUDGET: usize = 1024 * 1024;
/// What each connection may hold over the budget: `SendBudget::SHARE`
/// queued, as much in its catch-up buffer.
const SHARE: usize = 2 * 64 * 1024;
/// Allowed over budget + readers x share: frames counted in the race
/// between two sends, the writer's connection.
const SLACK: usize = 256 * 1024;
/// Allowed growth of the server's RSS while the readers hold back, over the
/// bytes the budget allows (allocator, SQLite page cache, runtime).
const RSS_SLACK_KIB: u64 = 32 * 1024;

struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn start(db: &std::path::Path) -> Self {
        let bin = std::env::var_os("TETHER_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_tether")));
        let mut child = Command::new(bin)
            .args(["serve", "--port", "0", "--durability", "relaxed"])
            .arg("--store")
            .arg(db)
            .args(["--max-payload", "65536"])
            // By its environment variable, which older builds ignore.
            .env("TETHER_MAX_BUFFER_TOTAL", BUDGET.to_string())
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("tether serve starts");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(line)) = lines.next() {
                let _ = tx.send(line);
            }
            for _ in lines {}
        });
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("tether serve announces its address");
        let addr = line
            .split_once("http://")
            .and_then(|(_, rest)| rest.split_once('/'))
            .and_then(|(addr, _)| addr.parse().ok())
            .unwrap_or_else(|| panic!("no address in {line:?}"));
        Self { child, addr }
    }

    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }

    /// A sample of /metrics, `None` when the series is absent.
    fn metric(&self, name: &str) -> Option<f64> {
        let mut stream = std::net::TcpStream::connect(self.addr).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        write!(
            stream,
            "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .ok()?;
        let mut text = String::new();
        stream.read_to_string(&mut text).ok()?;
        text.lines().find_map(|l| {
            let rest = l.strip_prefix(name)?;
            let rest = rest.strip_prefix(' ').or_else(|| {
                rest.starts_with('{')
                    .then(|| rest.split_once("} ").map(|(_, v)| v))
                    .flatten()
            })?;
            rest.trim().parse().ok()
        })
    }
}

/// Fills the store before the server starts: chat messages as the chat
/// stores them (content, position, meta).
async fn fill(db: &std::path::Path) {
    let store = SqliteStore::open(db, Durability::Relaxed).unwrap();
    let content = "h".repeat(CONTENT);
    let mut seq = 0;
    while seq < HISTORY {
        let batch: Vec<NewEntry> = (0..500.min(HISTORY - seq))
            .map(|_| NewEntry {
                target: Target {
                    nsp: "/".into(),
                    ..Target::default()
                },
                event: "chat message".into(),
                args: format!("[\"{content}\",{{\"_tether_seq\":true}},{{}}]"),
                attachments: Vec::new(),
            })
            .collect();
        seq += batch.len() as u64;
        store.append(batch).await.unwrap();
    }
}

type Ws = tokio_websockets::WebSocketStream<tokio::net::TcpStream>;

/// A raw Engine.IO/Socket.IO client connected to `/` with `auth`, its
/// receive buffer small so that what it does not read stays in the server.
async fn connect(addr: SocketAddr, auth: &str) -> Ws {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(16 * 1024).unwrap();
    let stream = socket.connect(addr).await.unwrap();
    let uri = format!("ws://{addr}/socket.io/?EIO=4&transport=websocket");
    let (mut ws, _) = ClientBuilder::new()
        .uri(&uri)
        .unwrap()
        .connect_on(stream)
        .await
        .unwrap();
    let open = next_text(&mut ws).await;
    assert!(open.starts_with('0'), "{open}");
    ws.send(Message::text(format!("40{auth}"))).await.unwrap();
    loop {
        let text = next_text(&mut ws).await;
        if text.starts_with("40") {
            return ws;
        }
        assert!(text.starts_with('2'), "unexpected {text}");
        ws.send(Message::text("3")).await.unwrap();
    }
}

async fn next_text(ws: &mut Ws) -> String {
    let msg = tokio::time::timeout(Duration::from_secs(30), ws.next())
        .await
        .expect("a message within 30 s")
        .expect("the connection stays open")
        .expect("no WebSocket error");
    msg.as_text().expect("a text frame").to_owned()
}

/// Reads until `want` chat messages came; returns their positions.
async fn read_all(mut ws: Ws, want: u64) -> Vec<u64> {
    let mut seqs = Vec::new();
    while (seqs.len() as u64) < want {
        let text = next_text(&mut ws).await;
        if text == "2" {
            ws.send(Message::text("3")).await.unwrap();
            continue;
        }
        let Some(json) = text.strip_prefix("42") else {
            continue;
        };
        let value: serde_json::Value = serde_json::from_str(json).unwrap();
        assert_eq!(value[0], "chat message");
        assert_eq!(value[1].as_str().map(str::len), Some(CONTENT));
        seqs.push(value[2].as_u64().unwrap());
    }
    let _ = ws.close().await;
    seqs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_readers_stay_within_the_budget_and_get_everything_once() {
    let dir = tether_testkit::temp_dir("slow");
    let db = dir.path().join("chat.db");
    fill(&db).await;
    let server = Server::start(&db);
    let addr = server.addr;
    let rss_before = server.rss_kib();

    // Readers catch up from 0 and do not read.
    let mut readers = Vec::new();
    for _ in 0..READERS {
        readers.push(connect(addr, r#"{"serverOffset":0}"#).await);
    }
    // A writer adds live messages meanwhile (acked once stored).
    let mut writer = connect(addr, "{}").await;
    let content = "l".repeat(CONTENT);
    for i in 0..LIVE {
        let packet = format!("42{i}[\"chat message\",\"{content}\",\"live-{i}\"]");
        writer.send(Message::text(packet)).await.unwrap();
    }
    let mut acked = 0;
    while acked < LIVE {
        let text = next_text(&mut writer).await;
        if text.starts_with("43") {
            assert!(text.contains("\"seq\""), "{text}");
            acked += 1;
        } else if text == "2" {
            writer.send(Message::text("3")).await.unwrap();
        }
    }

    // Held back for a while: the server's memory stays within the budget.
    let bound = BUDGET + (READERS + 1) * SHARE + SLACK;
    let mut max_rss = 0;
    let mut max_buffered = 0.0f64;
    let deadline = Instant::now() + Duration::from_secs(4);
    while Instant::now() < deadline {
        max_rss = max_rss.max(server.rss_kib());
        if let Some(buffered) = server.metric("tether_send_buffer_bytes") {
            max_buffered = max_buffered.max(buffered);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let growth = max_rss.saturating_sub(rss_before);
    eprintln!(
        "RSS {rss_before} KiB before, at most {max_rss} KiB with {READERS} readers held back \
         (+{growth} KiB); at most {max_buffered} bytes buffered (bound {bound})"
    );
    assert!(
        growth <= (bound / 1024) as u64 + RSS_SLACK_KIB,
        "RSS grew by {growth} KiB with {READERS} non-reading readers"
    );
    let limit = server
        .metric("tether_send_buffer_limit_bytes")
        .expect("the budget is in /metrics");
    assert_eq!(limit, BUDGET as f64);
    assert!(max_buffered > 0.0, "nothing was ever buffered");
    assert!(
        max_buffered <= bound as f64,
        "{max_buffered} bytes buffered, over {bound}"
    );

    // Now they read: every entry exactly once, in order.
    let total = HISTORY + LIVE;
    let reads: Vec<_> = readers
        .into_iter()
        .map(|ws| tokio::spawn(read_all(ws, total)))
        .collect();
    let reading = async {
        let mut all = Vec::new();
        for read in reads {
            all.push(read.await.unwrap());
        }
        all
    };
    let all = tokio::time::timeout(Duration::from_secs(120), reading)
        .await
        .expect("every reader caught up within 120 s");
    let want: Vec<u64> = (1..=total).collect();
    for seqs in &all {
        assert_eq!(seqs.len(), want.len());
        assert!(
            seqs == &want,
            "a reader got a gap, a duplicate or a reorder"
        );
    }
    let _ = writer.close().await;

    // Everything delivered and gone: nothing stays counted.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let buffered = server.metric("tether_send_buffer_bytes").unwrap_or(-1.0);
        if buffered == 0.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{buffered} bytes still counted once every client left"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
