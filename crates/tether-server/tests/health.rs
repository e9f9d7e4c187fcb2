//! `/healthz` and the store's write path, against `tether serve` as its users
//! run it (a child process in a temporary directory), faults made for real:
//! - a full disk (the store on a 2 MiB tmpfs, filled up; needs root to mount,
//!   as CI has): acks refused, 503 with SQLite's reason, 200 again by itself
//!   once space is back, and what was acknowledged is there after a restart;
//! - the store file deleted under the server: 503 with the reason, acks
//!   refused (they would go into a file no restart finds);
//! - a Redis that comes back empty (FLUSHALL on a redis-server of the test's
//!   own): 503 "store reset", then 200 and emits work again, in a new epoch;
//! - a `serverOffset` from another life of the store (beyond the last
//!   position, or of another epoch): the client catches up from the start;
//! - sessions left connected by a SIGKILLed server expire after the recovery
//!   window, counted from the restart (and still recover within it).
//!
//! The chat client is a raw Engine.IO/Socket.IO WebSocket client, speaking
//! what the tutorial client sends (`auth: {serverOffset}`, `emit("chat
//! message", content, clientOffset, ack)`). Every wait is bounded.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_websockets::{ClientBuilder, MaybeTlsStream, Message, WebSocketStream};

const BIN: &str = env!("CARGO_BIN_EXE_tether");
/// Longest wait for one expected thing.
const STEP: Duration = Duration::from_secs(10);

// ------------------------------------------------------------------ helpers --

/// A tmpfs of `size` mounted at `dir`, unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    /// `None` when it cannot be mounted (not root): the caller skips.
    fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(dir).ok()?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .ok()?;
        if !out.status.success() {
            eprintln!(
                "note: cannot mount a tmpfs ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
            return None;
        }
        Some(Tmpfs(dir.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral port")
}

/// A minimal HTTP/1.1 GET: (status, body).
fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(STEP))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let bad = |why: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, why.to_owned());
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| bad("no end of headers"))?;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("no status"))?;
    // Small bodies: one chunk at most.
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body.split_once("\r\n")
            .map(|(_, rest)| rest.split("\r\n").next().unwrap_or("").to_owned())
            .unwrap_or_default()
    } else {
        body.to_owned()
    };
    Ok((status, body))
}

/// Polls `/healthz` until `want(status, body)`, within `budget`; returns the
/// last answer (and whether `want` held).
fn wait_health(
    addr: SocketAddr,
    budget: Duration,
    want: impl Fn(u16, &str) -> bool,
) -> (bool, u16, String) {
    let deadline = Instant::now() + budget;
    loop {
        let (status, body) = http_get(addr, "/healthz").unwrap_or((0, String::new()));
        if want(status, &body) {
            return (true, status, body);
        }
        if Instant::now() >= deadline {
            return (false, status, body);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A running `tether serve`, killed on drop.
struct Server {
    child: Child,
    addr: SocketAddr,
    stderr: Arc<Mutex<String>>,
}

impl Server {
    fn start(dir: &Path, args: &[&str]) -> Server {
        let mut child = Command::new(BIN)
            .arg("serve")
            .args(["--port", "0"])
            .args(args)
            .current_dir(dir)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start tether serve");
        let stderr = Arc::new(Mutex::new(String::new()));
        {
            let sink = stderr.clone();
            let mut err = child.stderr.take().unwrap();
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = err.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    sink.lock()
                        .unwrap()
                        .push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            });
        }
        let (tx, rx) = std::sync::mpsc::channel();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line);
            }
        });
        let first = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|e| {
                panic!(
                    "tether serve {args:?}: no first line ({e}); stderr:\n{}",
                    stderr.lock().unwrap()
                )
            });
        let addr: SocketAddr = first
            .strip_prefix("Tether chat on http://")
            .and_then(|rest| rest.split_once('/'))
            .and_then(|(addr, _)| addr.parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line {first:?}"));
        let server = Server {
            child,
            addr,
            stderr,
        };
        let (ok, status, body) = wait_health(addr, Duration::from_secs(30), |s, _| s == 200);
        assert!(
            ok,
            "/healthz not 200 at start: {status} {body}\n{}",
            server.stderr()
        );
        server
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM and wait (bounded) for the exit.
    fn stop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("tether serve did not stop on SIGTERM\n{}", self.stderr());
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}

// --------------------------------------------------------------- the client --

type Ws = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

/// A chat client speaking the protocol by hand.
struct Chat {
    ws: Ws,
    next_ack: u64,
    /// `chat message` broadcasts received: (content, serverOffset, recovery offset).
    messages: Vec<(String, u64, String)>,
    /// The CONNECT reply.
    hello: Value,
    closed: bool,
}

impl Chat {
    async fn connect(addr: SocketAddr, auth: Value) -> Chat {
        let uri = format!("ws://{addr}/socket.io/?EIO=4&transport=websocket");
        let (ws, _) = tokio::time::timeout(STEP, ClientBuilder::new().uri(&uri).unwrap().connect())
            .await
            .expect("WebSocket open in time")
            .expect("WebSocket open");
        let mut chat = Chat {
            ws,
            next_ack: 0,
            messages: Vec::new(),
            hello: Value::Null,
            closed: false,
        };
        let open = chat.packet(STEP).await.expect("an Engine.IO open packet");
        assert!(open.starts_with('0'), "{open}");
        chat.ws
            .send(Message::text(format!("40{auth}")))
            .await
            .unwrap();
        loop {
            let p = chat.packet(STEP).await.expect("a CONNECT reply");
            if let Some(hello) = p.strip_prefix("40") {
                chat.hello = serde_json::from_str(hello).unwrap();
                break;
            }
            assert!(!p.starts_with("44"), "CONNECT refused: {p}");
        }
        chat
    }

    /// The next Socket.IO packet (pings answered, broadcasts recorded too);
    /// `None` when closed or nothing came within `wait`.
    async fn packet(&mut self, wait: Duration) -> Option<String> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let msg = match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_) => return None,
                Ok(Some(Ok(msg))) => msg,
                Ok(_) => {
                    self.closed = true;
                    return None;
                }
            };
            if msg.is_close() {
                self.closed = true;
                return None;
            }
            let Some(text) = msg.as_text() else { continue };
            if text == "2" {
                let _ = self.ws.send(Message::text("3")).await;
                continue;
            }
            if let Some(event) = text.strip_prefix("42") {
                let v: Value = serde_json::from_str(event).unwrap();
                if v[0] == "chat message" {
                    self.messages.push((
                        v[1].as_str().unwrap_or_default().to_owned(),
                        v[2].as_u64().unwrap_or(0),
                        v[v.as_array().map_or(0, Vec::len) - 1]
                            .as_str()
                            .unwrap_or_default()
                            .to_owned(),
                    ));
                }
            }
            return Some(text.to_owned());
        }
    }

    /// `emit("chat message", content, client_offset, ack)`: the ack's argument.
    async fn send(&mut self, content: &str, client_offset: &str) -> Value {
        let id = self.next_ack;
        self.next_ack += 1;
        let frame = format!("42{id}{}", json!(["chat message", content, client_offset]));
        self.ws.send(Message::text(frame)).await.unwrap();
        let prefix = format!("43{id}");
        loop {
            let p = self
                .packet(STEP)
                .await
                .unwrap_or_else(|| panic!("no ack for {content:?}"));
            if let Some(ack) = p.strip_prefix(&prefix) {
                let v: Value = serde_json::from_str(ack).unwrap();
                return v[0].clone();
            }
        }
    }

    /// Reads until `n` messages were received (or `wait` passed in silence).
    async fn wait_messages(&mut self, n: usize, wait: Duration) -> bool {
        while self.messages.len() < n {
            if self.packet(wait).await.is_none() {
                return false;
            }
        }
        true
    }

    fn contents(&self) -> Vec<String> {
        self.messages.iter().map(|m| m.0.clone()).collect()
    }
}

fn acked(ack: &Value) -> bool {
    ack.get("seq").and_then(Value::as_u64).is_some()
}

// ------------------------------------------------------------------- tests --

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_full_is_503_with_the_reason_then_200_by_itself() {
    let dir = tether_testkit::temp_dir("health-full");
    let Some(_fs) = Tmpfs::mount(&dir.path().join("fs"), "2M") else {
        eprintln!("SKIPPED disk_full_is_503_with_the_reason_then_200_by_itself: needs root (mount -t tmpfs)");
        return;
    };
    let store = dir.path().join("fs/tether.db");
    let store = store.to_str().unwrap();
    let mut server = Server::start(dir.path(), &["--store", store]);
    let mut chat = Chat::connect(server.addr, json!({ "serverOffset": 0 })).await;
    let mut stored = Vec::new();
    for i in 0..3 {
        let content = format!("before {i}");
        assert!(acked(&chat.send(&content, &format!("b{i}")).await));
        stored.push(content);
    }

    // Fill the file system up.
    let filler = dir.path().join("fs/filler");
    {
        let mut f = std::fs::File::create(&filler).unwrap();
        let block = vec![0x5au8; 64 * 1024];
        while f.write_all(&block).is_ok() {}
        let _ = f.write_all(&[0u8; 512]);
        let _ = f.sync_all();
    }
    // Writes that still fit in the WAL's pages may go through (they are
    // durable); the first that needs space must be refused, not acked.
    let mut refused = None;
    let big = "x".repeat(3900);
    for i in 0..200 {
        let content = format!("full {i} {big}");
        let ack = chat.send(&content, &format!("f{i}")).await;
        if acked(&ack) {
            stored.push(content);
        } else {
            refused = Some(ack);
            break;
        }
    }
    let refused = refused.expect("a write refused on a full disk");
    assert_eq!(refused["error"], "not stored, retry", "{refused}");
    let (ok, status, body) = wait_health(server.addr, STEP, |s, _| s == 503);
    assert!(ok, "/healthz during a full disk: {status} {body:?}");
    assert_eq!(
        body.trim(),
        "store unavailable: last commit failed: database or disk is full"
    );
    // Still 503 after small writes that may still fit (a client comes and
    // goes: its session saves), and without traffic (the probe fails too).
    let visitor = Chat::connect(server.addr, json!({})).await;
    drop(visitor);
    tokio::time::sleep(Duration::from_millis(300)).await;
    for _ in 0..2 {
        let (status, body) = http_get(server.addr, "/healthz").unwrap();
        assert_eq!(status, 503, "{body}");
    }

    // Space comes back: healthy again without any traffic (the probe).
    std::fs::remove_file(&filler).unwrap();
    let (ok, status, body) = wait_health(server.addr, STEP, |s, _| s == 200);
    assert!(
        ok,
        "/healthz after the disk has space again: {status} {body:?}"
    );
    assert_eq!(body.trim(), "ok");
    let ack = chat.send("after", "a0").await;
    assert!(acked(&ack), "{ack}");
    stored.push("after".into());

    // Everything acknowledged is there after a restart, in order.
    server.stop();
    let server = Server::start(dir.path(), &["--store", store]);
    let mut reader = Chat::connect(server.addr, json!({ "serverOffset": 0 })).await;
    assert!(
        reader.wait_messages(stored.len(), STEP).await,
        "{} of {}",
        reader.messages.len(),
        stored.len()
    );
    assert_eq!(reader.contents(), stored);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_store_file_is_503_and_refuses_acks() {
    let dir = tether_testkit::temp_dir("health-deleted");
    let mut server = Server::start(dir.path(), &["--store", "tether.db"]);
    let mut chat = Chat::connect(server.addr, json!({ "serverOffset": 0 })).await;
    assert!(acked(&chat.send("kept", "k0").await));

    for name in ["tether.db", "tether.db-wal", "tether.db-shm"] {
        let _ = std::fs::remove_file(dir.path().join(name));
    }
    // Noticed without traffic.
    let (ok, status, body) = wait_health(server.addr, STEP, |s, _| s == 503);
    assert!(
        ok,
        "/healthz after the store file was deleted: {status} {body:?}"
    );
    assert_eq!(
        body.trim(),
        "store unavailable: store file was deleted or replaced"
    );
    // Writes would go into a file no restart finds: refused.
    let mut acked_after = Vec::new();
    for i in 0..5 {
        let ack = chat.send(&format!("lost {i}"), &format!("l{i}")).await;
        if acked(&ack) {
            acked_after.push(i);
        }
    }
    assert!(
        acked_after.is_empty(),
        "acked into a deleted file: {acked_after:?}"
    );
    let (status, body) = http_get(server.addr, "/healthz").unwrap();
    assert_eq!(
        (status, body.trim()),
        (503, "store unavailable: store file was deleted or replaced")
    );
    assert!(
        server.stderr().contains("deleted or replaced"),
        "{}",
        server.stderr()
    );

    // A restart makes a new file: healthy, and what is acked now is kept.
    server.stop();
    let mut server = Server::start(dir.path(), &["--store", "tether.db"]);
    let mut chat = Chat::connect(server.addr, json!({ "serverOffset": 0 })).await;
    assert!(acked(&chat.send("new life", "n0").await));
    server.stop();
    let server = Server::start(dir.path(), &["--store", "tether.db"]);
    let mut reader = Chat::connect(server.addr, json!({ "serverOffset": 0 })).await;
    assert!(reader.wait_messages(1, STEP).await);
    assert_eq!(reader.contents(), ["new life"]);
}

/// A redis-server of the test's own (nothing on disk), killed on drop.
struct PrivateRedis {
    port: u16,
    child: Child,
}

impl PrivateRedis {
    fn start() -> Option<PrivateRedis> {
        let port = free_port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let redis = PrivateRedis { port, child };
        let deadline = Instant::now() + STEP;
        while redis.cmd(&["PING"]).as_deref() != Some("+PONG") {
            assert!(
                Instant::now() < deadline,
                "the private redis-server does not answer"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(redis)
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// One command, inline protocol: the first line of the answer.
    fn cmd(&self, args: &[&str]) -> Option<String> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        s.set_read_timeout(Some(STEP)).ok()?;
        write!(s, "{}\r\n", args.join(" ")).ok()?;
        let mut line = String::new();
        BufReader::new(s).read_line(&mut line).ok()?;
        Some(line.trim_end().to_owned())
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_reset_is_503_then_the_node_starts_over() {
    let Some(redis) = PrivateRedis::start() else {
        eprintln!(
            "SKIPPED redis_reset_is_503_then_the_node_starts_over: redis-server is not installed"
        );
        return;
    };
    let dir = tether_testkit::temp_dir("health-redis");
    let url = redis.url();
    let server = Server::start(dir.path(), &["--store", &url]);
    let mut old = Chat::connect(server.addr, json!({ "serverOffset": 0 })).await;
    for i in 0..5 {
        assert!(acked(
            &old.send(&format!("old {i}"), &format!("o{i}")).await
        ));
    }
    assert!(old.wait_messages(5, STEP).await);
    let old_epoch = old.messages[4].2.clone();

    assert_eq!(redis.cmd(&["FLUSHALL"]).as_deref(), Some("+OK"));
    // The next health check notices: the node adopts a new epoch and says so
    // until it has started over.
    let (status, body) = http_get(server.addr, "/healthz").unwrap();
    if status == 200 {
        // Only if the node's feed noticed first (its read returned in the
        // few ms since FLUSHALL) and it has started over already.
        assert!(
            server
                .stderr()
                .contains("store reset: closing every connection"),
            "/healthz 200 right after FLUSHALL, the node not started over\n{}",
            server.stderr()
        );
    } else {
        assert_eq!(status, 503, "/healthz right after FLUSHALL: {body}");
        assert!(body.starts_with("store unavailable: store reset"), "{body}");
    }
    let (ok, status, body) = wait_health(server.addr, STEP, |s, _| s == 200);
    assert!(ok, "/healthz after the node started over: {status} {body}");

    // The connections of the old life were closed (clients reconnect).
    let deadline = tokio::time::Instant::now() + STEP;
    while !old.closed && tokio::time::Instant::now() < deadline {
        old.packet(Duration::from_millis(200)).await;
    }
    assert!(old.closed, "a connection of the old life stays open");

    // Emits work again, from position 1 of the new life.
    let mut chat = Chat::connect(server.addr, json!({ "serverOffset": 0 })).await;
    let ack = chat.send("new 0", "n0").await;
    assert_eq!(ack["seq"], 1, "{ack}");
    assert!(acked(&chat.send("new 1", "n1").await));
    // A client of the old life (offset 5, old epoch): from the start of the new one.
    let epoch = old_epoch.split('.').nth(1).unwrap().to_owned();
    let mut back = Chat::connect(server.addr, json!({ "serverOffset": 5, "epoch": epoch })).await;
    assert!(back.wait_messages(2, STEP).await, "{:?}", back.messages);
    assert_eq!(back.contents(), ["new 0", "new 1"]);
    assert_ne!(back.messages[0].2, old_epoch);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_offset_from_another_life_catches_up_from_the_start() {
    let dir = tether_testkit::temp_dir("health-offset");
    let server = Server::start(dir.path(), &["--store", "tether.db"]);
    let mut chat = Chat::connect(server.addr, json!({ "serverOffset": 0 })).await;
    for i in 1..=3 {
        assert!(acked(&chat.send(&format!("m{i}"), &format!("c{i}")).await));
    }
    assert!(chat.wait_messages(3, STEP).await);
    let epoch = chat.messages[0].2.split('.').nth(1).unwrap().to_owned();

    // The tutorial client after a reset: its offset (50) is beyond the
    // store's last position (3). It gets every message of this life.
    let mut tutorial = Chat::connect(server.addr, json!({ "serverOffset": 50 })).await;
    assert!(
        tutorial.wait_messages(3, STEP).await,
        "{:?}",
        tutorial.messages
    );
    assert_eq!(tutorial.contents(), ["m1", "m2", "m3"]);
    // The page: an offset of another epoch starts from 0 too.
    let mut page = Chat::connect(
        server.addr,
        json!({ "serverOffset": 2, "epoch": "another" }),
    )
    .await;
    assert!(page.wait_messages(3, STEP).await, "{:?}", page.messages);
    assert_eq!(page.contents(), ["m1", "m2", "m3"]);
    // Of this epoch: from where it stands.
    let mut same = Chat::connect(server.addr, json!({ "serverOffset": 2, "epoch": epoch })).await;
    assert!(same.wait_messages(1, STEP).await);
    assert!(same.packet(Duration::from_millis(300)).await.is_none());
    assert_eq!(same.contents(), ["m3"]);
    // Live messages reach all of them, once.
    assert!(acked(&chat.send("m4", "c4").await));
    for c in [&mut tutorial, &mut page, &mut same] {
        assert!(c.wait_messages(c.messages.len() + 1, STEP).await);
        assert_eq!(c.contents().last().map(String::as_str), Some("m4"));
    }
    // The same with the official client (socket.io-client 4.8.1, the
    // tutorial's own client logic: tests/node/chat/after-reset.mjs).
    official_client_after_reset(server.addr, 50, 4);
}

/// Runs tests/node/chat/after-reset.mjs (bounded) and checks its verdict.
fn official_client_after_reset(addr: SocketAddr, offset: u64, expect: usize) {
    let node_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/node");
    assert!(
        node_dir.join("node_modules/socket.io-client").is_dir(),
        "tests/node/node_modules is missing: run `npm ci` in tests/node"
    );
    let mut child = Command::new("node")
        .arg("chat/after-reset.mjs")
        .args(["--url", &format!("http://{addr}")])
        .args([
            "--offset",
            &offset.to_string(),
            "--expect",
            &expect.to_string(),
        ])
        .current_dir(&node_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node runs (is Node.js installed?)");
    let deadline = Instant::now() + Duration::from_secs(40);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chat/after-reset.mjs gave no verdict in time");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut out = String::new();
    let mut err = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let verdict: Value = out
        .lines()
        .last()
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or(Value::Null);
    assert!(
        status.success() && verdict["ok"] == true,
        "chat/after-reset.mjs: {status}\n{out}\n{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_of_a_killed_server_expire_after_the_window() {
    let dir = tether_testkit::temp_dir("health-sessions");
    let args = ["--store", "tether.db", "--recovery-window", "3s"];
    let mut server = Server::start(dir.path(), &args);
    let mut a = Chat::connect(server.addr, json!({})).await;
    let mut b = Chat::connect(server.addr, json!({})).await;
    assert!(acked(&a.send("hello", "h0").await));
    assert!(a.wait_messages(1, STEP).await && b.wait_messages(1, STEP).await);
    let session = |c: &Chat| {
        (
            c.hello["sid"].as_str().unwrap().to_owned(),
            c.hello["pid"].as_str().unwrap().to_owned(),
            c.messages[0].2.clone(),
        )
    };
    let (sid_a, pid_a, offset_a) = session(&a);
    let (_, pid_b, offset_b) = session(&b);
    server.kill9();
    drop((a, b));

    let server = Server::start(dir.path(), &args);
    // The sessions were disconnected before the server listened.
    let started = Instant::now();
    // Within the window (from the restart): recovered, same socket id.
    let a = Chat::connect(server.addr, json!({ "pid": pid_a, "offset": offset_a })).await;
    assert_eq!(a.hello["sid"], sid_a.as_str(), "{}", a.hello);
    assert!(a.hello.get("recovery").is_none(), "{}", a.hello);
    // After the window: expired, like any disconnected session.
    let wait = Duration::from_millis(3500).saturating_sub(started.elapsed());
    tokio::time::sleep(wait).await;
    let b = Chat::connect(server.addr, json!({ "pid": pid_b, "offset": offset_b })).await;
    assert_eq!(b.hello["recovery"]["reason"], "expired", "{}", b.hello);
}
