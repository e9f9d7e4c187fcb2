//! Three Tether nodes sharing one Redis (`RedisStore`), in this test process,
//! each on a port and a tokio runtime of its own with the delivery contract
//! (tether_testkit::delivery), driven by the official npm `socket.io-client`
//! (scripts in tests/node/redis/):
//!
//! 1. a broadcast published on node A reaches the clients of A, B and C exactly
//!    once each, in order;
//! 2. a client of node A is recovered on node B, with exactly what it missed,
//!    after node A stopped abruptly;
//! 3. a "chat message" sent with one clientOffset to A then to B is stored once;
//! 4. a Redis restart (AOF, fsync at every write) mid-stream loses nothing
//!    acknowledged and stores nothing twice.
//!
//! Stopping a node abruptly: its runtime is shut down at once, dropping every
//! task (accept loop, connections, publisher, feed) without a goodbye to
//! anyone, as kill -9 would; its stored sessions still say "connected".
//!
//! A script talks to this harness on its stdio: it prints `READY <what>`
//! (`kill-a`, `redis-stop`, `redis-start`) and reads `OK` once done. Its last
//! stdout line is the JSON verdict.
//!
//! Needs `npm ci` in tests/node, and Redis (tests/node/redis/support.rs: a
//! missing Redis skips, or fails with CI=true).

use tether_testkit::delivery;
use tether_testkit::redis as support;

use std::io::Write as _;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tether::store::{Durability, MemoryStore, RedisStore, SqliteStore, Store};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;

fn node_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/node")
}

use support::Node;

/// A node on the store at `redis_url` under `prefix` (outside any runtime).
fn redis_node(redis_url: &str, prefix: &str) -> Node {
    let (url, prefix) = (redis_url.to_owned(), prefix.to_owned());
    node_on(move || {
        Arc::new(RedisStore::connect(&url, &prefix).expect("the node connects to Redis"))
    })
}

/// A node on the store `store` makes (within the node's runtime).
fn node_on(store: impl FnOnce() -> Arc<dyn Store>) -> Node {
    Node::start_with(|| {
        let opts = delivery::Options::default();
        let io = tether::SocketIo::with_store(delivery::config(&opts), store());
        delivery::install(&io, opts);
        io
    })
}

/// Where the nodes keep their store.
enum Backing {
    /// The shared Redis, under a prefix of the test's own.
    Shared(support::Scope),
    /// A private Redis (AOF, fsync always), stopped and started by the script.
    Private(support::PrivateRedis),
}

impl Backing {
    fn url_and_prefix(&self) -> (String, String) {
        match self {
            Backing::Shared(scope) => (scope.url.clone(), scope.prefix.clone()),
            Backing::Private(redis) => (redis.url(), "tether".to_owned()),
        }
    }
}

/// Appends what `reader` yields to `sink`.
fn collect(reader: impl tokio::io::AsyncRead + Unpin + Send + 'static, sink: Arc<Mutex<String>>) {
    tokio::spawn(async move {
        let mut reader = reader;
        let mut buf = [0u8; 8192];
        while let Ok(n) = reader.read(&mut buf).await {
            if n == 0 {
                break;
            }
            sink.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
}

/// True when the official client is installed; otherwise the test is skipped
/// (or fails with CI=true).
fn client_installed(test: &str) -> bool {
    let installed = node_dir().join("node_modules/socket.io-client").is_dir();
    if !installed {
        support::skip(
            test,
            "tests/node/node_modules is missing: run `npm ci` in tests/node",
        );
    }
    installed
}

/// Starts three nodes on `backing`, runs `script` against them (A is
/// `--url`, B `--b`, C `--c`), answering its `READY` lines, and returns its
/// verdict once checked.
fn scenario(
    test: &str,
    script: &str,
    backing: Backing,
    extra: &[&str],
    budget: Duration,
) -> serde_json::Value {
    let (redis_url, prefix) = backing.url_and_prefix();
    let mut backing = backing;
    let mut nodes: Vec<Node> = (0..3).map(|_| redis_node(&redis_url, &prefix)).collect();
    let urls: Vec<String> = nodes.iter().map(|n| n.url.clone()).collect();
    let driver = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime for the driver");
    let verdict = driver.block_on(async {
        let mut child = Command::new("node")
            .arg(format!("redis/{script}"))
            .args(["--url", &urls[0], "--b", &urls[1], "--c", &urls[2]])
            .args(["--transport", "websocket"])
            .args(extra)
            .current_dir(node_dir())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("node runs");
        let stderr = Arc::new(Mutex::new(String::new()));
        collect(child.stderr.take().unwrap(), stderr.clone());
        let mut stdin = child.stdin.take().unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut stdout = Vec::new();
        let mut asked = Vec::new();
        let talk = async {
            while let Some(line) = lines.next_line().await.expect("read node's stdout") {
                let Some(what) = line.trim().strip_prefix("READY ") else {
                    stdout.push(line);
                    continue;
                };
                match (what, &mut backing) {
                    ("kill-a", _) => nodes[0].kill(),
                    ("redis-stop", Backing::Private(redis)) => redis.stop(),
                    ("redis-start", Backing::Private(redis)) => redis.start_again(),
                    (other, _) => panic!("{test}: unexpected request `READY {other}`"),
                }
                asked.push(what.to_owned());
                stdin.write_all(b"OK\n").await.expect("answer the script");
                stdin.flush().await.expect("answer the script");
            }
            child.wait().await.expect("node exits")
        };
        let status = tokio::time::timeout(budget, talk).await;
        let report = || {
            format!(
                "{test}: stdout:\n{}\nnode stderr:\n{}\nasked: {asked:?}",
                stdout.join("\n"),
                stderr.lock().unwrap()
            )
        };
        let Ok(status) = status else {
            panic!("no verdict within {budget:?}\n{}", report());
        };
        assert!(status.success(), "{script} failed ({status})\n{}", report());
        let verdict: serde_json::Value = stdout
            .last()
            .and_then(|l| serde_json::from_str(l).ok())
            .unwrap_or_else(|| panic!("no JSON verdict\n{}", report()));
        assert_eq!(verdict["ok"], true, "{verdict}\n{}", report());
        verdict
    });
    let _ = writeln!(std::io::stderr(), "{test}: {verdict}");
    drop(nodes);
    verdict
}

/// Runs `script` against three nodes on the shared Redis, under a prefix of
/// the test's own; `None` when the test is skipped (no client, no Redis).
fn shared_scenario(
    test: &str,
    script: &str,
    args: &[&str],
    budget: Duration,
) -> Option<serde_json::Value> {
    if !client_installed(test) {
        return None;
    }
    let scope = support::Scope::new(test)?;
    Some(scenario(test, script, Backing::Shared(scope), args, budget))
}

#[test]
fn broadcast_from_one_node_reaches_every_node_once_in_order() {
    let test = "broadcast_from_one_node_reaches_every_node_once_in_order";
    let Some(verdict) = shared_scenario(
        test,
        "broadcast.mjs",
        &["--count", "500"],
        Duration::from_secs(150),
    ) else {
        return;
    };
    assert_eq!(verdict["published"], 500);
    assert_eq!(verdict["delivered"], 3 * 501, "500 + a probe, on 3 nodes");
}

#[test]
fn client_of_a_dead_node_recovers_on_another_with_exactly_what_it_missed() {
    let test = "client_of_a_dead_node_recovers_on_another_with_exactly_what_it_missed";
    let Some(verdict) = shared_scenario(
        test,
        "failover.mjs",
        &["--count", "50"],
        Duration::from_secs(150),
    ) else {
        return;
    };
    assert_eq!(verdict["missed"], 50);
}

#[test]
fn same_client_offset_on_two_nodes_is_stored_once() {
    let test = "same_client_offset_on_two_nodes_is_stored_once";
    // `scenario` fails the test unless the script's verdict is ok.
    shared_scenario(test, "exactly-once.mjs", &[], Duration::from_secs(90));
}

#[test]
fn redis_restart_mid_stream_loses_nothing_acknowledged() {
    let test = "redis_restart_mid_stream_loses_nothing_acknowledged";
    if !client_installed(test) {
        return;
    }
    let Some(redis) = support::PrivateRedis::start(test) else {
        return;
    };
    let verdict = scenario(
        test,
        "redis-restart.mjs",
        Backing::Private(redis),
        &["--count", "100", "--outage", "10"],
        Duration::from_secs(200),
    );
    assert_eq!(verdict["acked"], 100);
    assert_eq!(verdict["outageErrors"], 10);
}

// ---------------------------------------------------------------------------
// A measurement: fan-out rate

type Ws =
    tokio_websockets::WebSocketStream<tokio_websockets::MaybeTlsStream<tokio::net::TcpStream>>;

/// A raw Socket.IO client on `url` ("http://..."), connected to "/" and in
/// room "r" (through the contract's `join`).
async fn raw_member(url: &str) -> Ws {
    use futures_util::SinkExt;
    let uri = format!(
        "{}/socket.io/?EIO=4&transport=websocket",
        url.replacen("http", "ws", 1)
    );
    let (mut ws, _) = tokio_websockets::ClientBuilder::new()
        .uri(&uri)
        .unwrap()
        .connect()
        .await
        .expect("websocket handshake");
    let send = |text: &str| tokio_websockets::Message::text(text.to_owned());
    assert!(next_text(&mut ws).await.starts_with('0'), "an open packet");
    ws.send(send("40")).await.unwrap();
    loop {
        let text = next_text(&mut ws).await;
        if text.starts_with("40") {
            break;
        }
    }
    ws.send(send(r#"421["join","r"]"#)).await.unwrap();
    loop {
        let text = next_text(&mut ws).await;
        if text.starts_with("431") {
            return ws;
        }
    }
}

/// The next frame's text (bounded wait).
async fn next_text(ws: &mut Ws) -> String {
    use futures_util::StreamExt;
    let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
        .await
        .expect("an answer within 10 s")
        .expect("the connection is open")
        .expect("a frame");
    msg.as_text().unwrap_or_default().to_owned()
}

/// Counts `msg` events on `ws` until `n` (answering pings); the instant the
/// last came.
async fn receive(mut ws: Ws, n: usize) -> std::time::Instant {
    use futures_util::{SinkExt, StreamExt};
    let mut got = 0;
    while got < n {
        let msg = tokio::time::timeout(Duration::from_secs(60), ws.next())
            .await
            .expect("msgs keep coming")
            .expect("the connection is open")
            .expect("a frame");
        let text = msg.as_text().unwrap_or_default();
        if text == "2" {
            ws.send(tokio_websockets::Message::text("3".to_owned()))
                .await
                .unwrap();
        } else if text.starts_with(r#"42["msg""#) {
            got += 1;
        }
    }
    std::time::Instant::now()
}

/// Deliveries per second: `clients` raw clients spread over `nodes`, `msgs`
/// stored broadcasts to their room emitted on the first node.
fn fanout_rate(nodes: &[Node], clients: usize, msgs: usize) -> f64 {
    let driver = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    driver.block_on(async {
        let mut members = Vec::new();
        for i in 0..clients {
            members.push(raw_member(&nodes[i % nodes.len()].url).await);
        }
        let receivers: Vec<_> = members
            .into_iter()
            .map(|ws| tokio::spawn(receive(ws, msgs)))
            .collect();
        let io = nodes[0].io.clone();
        let started = std::time::Instant::now();
        nodes[0].runtime.as_ref().unwrap().spawn(async move {
            for i in 0..msgs {
                io.to("r").emit("msg", (i,)).expect("queued");
            }
        });
        let mut last = started;
        for receiver in receivers {
            last = last.max(receiver.await.unwrap());
        }
        (clients * msgs) as f64 / (last - started).as_secs_f64()
    })
}

/// Every raw client on one node (MemoryStore, SQLite with fsync at every
/// commit, Redis), then on two nodes sharing Redis, receives every stored
/// broadcast (a client missing one fails after its bounded wait); prints
/// deliveries per second. A bigger run, for the figures:
/// `TETHER_FANOUT="100 2000" cargo test --release --test redis_nodes fanout -- --nocapture`.
#[test]
fn fanout_reaches_every_client_on_one_and_two_nodes() {
    let sizes: Vec<usize> = std::env::var("TETHER_FANOUT")
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|n| n.parse().ok())
        .collect();
    let (clients, msgs) = match sizes[..] {
        [clients, msgs] => (clients, msgs),
        _ => (20, 200),
    };
    let test = "fanout_reaches_every_client_on_one_and_two_nodes";
    let memory = {
        let node = node_on(|| Arc::new(MemoryStore::new()));
        fanout_rate(&[node], clients, msgs)
    };
    let sqlite = {
        let path = std::env::temp_dir().join(format!(
            "tether-fanout-{}-{:016x}.db",
            std::process::id(),
            rand::random::<u64>()
        ));
        let db = path.clone();
        let node = node_on(move || {
            Arc::new(SqliteStore::open(&db, Durability::default()).expect("a SQLite store"))
        });
        let rate = fanout_rate(&[node], clients, msgs);
        for suffix in ["", "-wal", "-shm"] {
            let mut file = path.clone().into_os_string();
            file.push(suffix);
            let _ = std::fs::remove_file(file);
        }
        rate
    };
    let mut rates = Vec::new();
    for count in [1, 2] {
        let Some(scope) = support::Scope::new(test) else {
            return;
        };
        let nodes: Vec<Node> = (0..count)
            .map(|_| redis_node(&scope.url, &scope.prefix))
            .collect();
        rates.push(fanout_rate(&nodes, clients, msgs));
    }
    let _ = writeln!(
        std::io::stderr(),
        "fan-out, {clients} clients x {msgs} stored broadcasts: one node on MemoryStore \
         {memory:.0}/s; one node on SQLite {sqlite:.0}/s; one node on Redis {:.0}/s; \
         two nodes sharing Redis {:.0}/s",
        rates[0],
        rates[1]
    );
}
