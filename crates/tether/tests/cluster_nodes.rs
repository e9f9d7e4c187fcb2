//! Cluster-wide operations across three Tether nodes sharing one Redis
//! (`SocketIo::with_cluster`), each in this test process on a port and a tokio
//! runtime of its own (as in tests/redis_nodes.rs), with clients of the
//! official npm `socket.io-client` on every node (tests/node/redis/cluster-clients.mjs,
//! two per node: A0, A1 on node A, B0, B1 on B, C0, C1 on C):
//!
//! 1. `fetch_sockets` on node A returns the six sockets, with their rooms,
//!    data, handshake and node; a fetched remote socket joins a room and gets
//!    an event through the cluster;
//! 2. `sockets_join` / `sockets_leave` from A change what a later room
//!    broadcast reaches on B and C; a volatile (not stored) broadcast from A
//!    reaches the sockets of B and C once;
//! 3. `disconnect_sockets` from A disconnects the selected clients of every node;
//! 4. a broadcast with acks from A gathers exactly one ack per client;
//! 5. a node killed while it owes acks: the pending request finishes soon
//!    after its heartbeat lapses, with the live nodes' acks, not at its ack
//!    timeout;
//!    The same with a node closed (`SocketIo::shutdown`: it leaves the
//!    cluster and closes its clients);
//! 6. without a cluster, the same operations act on the node's own sockets;
//! 7. after a Redis restart, every node subscribes again by itself and the
//!    cluster's requests reach every node again.
//!
//! Exactness: events that are stored reach each client in position order, so
//! once every client has a later "probe" broadcast, anything that would have
//! reached it has. Waits are on the clients' reports, each bounded.
//!
//! Needs `npm ci` in tests/node, and Redis (tests/node/redis/support.rs: a
//! missing Redis skips, or fails with CI=true).

use tether_testkit::delivery;
use tether_testkit::redis as support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tether::cluster::{ClusterError, ClusterOptions, RemoteSocket};
use tether::store::RedisStore;
use tether::{AckError, Args, SocketIo};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;

/// Bound on every wait for the clients or the cluster.
const WAIT: Duration = Duration::from_secs(20);

fn node_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/node")
}

fn options() -> ClusterOptions {
    ClusterOptions {
        heartbeat: Duration::from_millis(300),
        node_timeout: Duration::from_secs(3),
        request_timeout: Duration::from_secs(10),
    }
}

use support::Node;

/// A cluster node on the Redis at `url` under `prefix` (outside any runtime).
fn cluster_node(url: &str, prefix: &str) -> Node {
    let (url, prefix) = (url.to_owned(), prefix.to_owned());
    Node::start_with(move || {
        let store = RedisStore::connect(&url, &prefix).expect("the node connects to Redis");
        let opts = delivery::Options::default();
        let io = SocketIo::with_cluster(delivery::config(&opts), Arc::new(store), options())
            .expect("the node joins the cluster");
        delivery::install(&io, opts);
        io
    })
}

/// A node without a cluster (on a MemoryStore): everything stays local.
fn lone_node() -> Node {
    Node::start_with(|| {
        let opts = delivery::Options::default();
        let store = Arc::new(tether::store::MemoryStore::new());
        let io = SocketIo::with_store(delivery::config(&opts), store);
        delivery::install(&io, opts);
        io
    })
}

/// The cluster id of `node`.
fn node_id(node: &Node) -> String {
    node.io
        .cluster()
        .expect("a cluster node")
        .node_id()
        .to_owned()
}

/// The clients: the script's reports, all kept.
struct Fleet {
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::UnboundedReceiver<Value>,
    seen: Vec<Value>,
    stderr: Arc<Mutex<String>>,
    /// Socket id of each client (at its first connection).
    ids: BTreeMap<String, String>,
}

impl Fleet {
    /// Connects `per_node` clients to each of `urls`; returns once all are
    /// connected. `silent` clients never acknowledge "ask".
    async fn start(urls: &[String], per_node: usize, silent: &[&str]) -> Fleet {
        let mut child = Command::new("node")
            .arg("redis/cluster-clients.mjs")
            .args(["--nodes", &urls.join(",")])
            .args(["--per-node", &per_node.to_string()])
            .args(["--silent", &silent.join(",")])
            .current_dir(node_dir())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("node runs");
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = stderr.clone();
        let mut err = child.stderr.take().expect("piped stderr");
        tokio::spawn(async move {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                sink.lock().expect("stderr sink").push_str(&text);
            }
        });
        let (tx, lines) = mpsc::unbounded_channel();
        let mut out = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
        tokio::spawn(async move {
            while let Ok(Some(line)) = out.next_line().await {
                if let Ok(value) = serde_json::from_str::<Value>(&line) {
                    if tx.send(value).is_err() {
                        break;
                    }
                }
            }
        });
        let stdin = child.stdin.take().expect("piped stdin");
        let mut fleet = Fleet {
            child,
            stdin,
            lines,
            seen: Vec::new(),
            stderr,
            ids: BTreeMap::new(),
        };
        fleet
            .until("every client connects", |seen| {
                seen.iter().any(|l| l["kind"] == "ready")
            })
            .await;
        for line in &fleet.seen {
            if line["kind"] == "connect" {
                let name = line["client"].as_str().expect("a name").to_owned();
                let id = line["id"].as_str().expect("an id").to_owned();
                fleet.ids.entry(name).or_insert(id);
            }
        }
        assert_eq!(fleet.ids.len(), urls.len() * per_node, "one id per client");
        fleet
    }

    /// Reads reports until `done` holds for what was seen (bounded by [`WAIT`]).
    async fn until(&mut self, what: &str, done: impl Fn(&[Value]) -> bool) {
        let deadline = tokio::time::Instant::now() + WAIT;
        while !done(&self.seen) {
            match tokio::time::timeout_at(deadline, self.lines.recv()).await {
                Ok(Some(line)) => self.seen.push(line),
                Ok(None) => panic!("{what}: the clients' script ended\n{}", self.report()),
                Err(_) => panic!("{what}: not within {WAIT:?}\n{}", self.report()),
            }
        }
    }

    fn report(&self) -> String {
        let tail: Vec<String> = self
            .seen
            .iter()
            .rev()
            .take(40)
            .map(Value::to_string)
            .collect();
        format!(
            "last reports (newest first):\n{}\nscript stderr:\n{}",
            tail.join("\n"),
            self.stderr.lock().expect("stderr sink")
        )
    }

    /// Sends a command for `client` and waits for its ack.
    async fn command(&mut self, cmd: &str, client: &str, arg: &str) {
        let line = format!("{cmd} {client} {arg}\n");
        self.stdin
            .write_all(line.as_bytes())
            .await
            .expect("the script reads its commands");
        self.stdin.flush().await.expect("flush");
        let before =
            self.count(|l| l["kind"] == "done" && l["client"] == client && l["cmd"] == cmd);
        self.until(&format!("`{}` acknowledged", line.trim()), |seen| {
            seen.iter()
                .filter(|l| l["kind"] == "done" && l["client"] == client && l["cmd"] == cmd)
                .count()
                > before
        })
        .await;
    }

    fn count(&self, pred: impl Fn(&Value) -> bool) -> usize {
        self.seen.iter().filter(|l| pred(l)).count()
    }

    /// How many times each client got `event`.
    fn got(&self, event: &str) -> BTreeMap<String, usize> {
        let mut got = BTreeMap::new();
        for line in &self.seen {
            if line["kind"] == "event" && line["event"] == event {
                let client = line["client"].as_str().unwrap_or_default().to_owned();
                *got.entry(client).or_default() += 1;
            }
        }
        got
    }

    /// Waits until every client got `event` with first argument `tag`.
    async fn all_got(&mut self, event: &str, tag: &Value) {
        let names: Vec<String> = self.ids.keys().cloned().collect();
        self.until(&format!("every client gets {event} {tag}"), |seen| {
            names.iter().all(|name| {
                seen.iter().any(|l| {
                    l["kind"] == "event"
                        && l["client"] == name.as_str()
                        && l["event"] == event
                        && l["args"][0] == *tag
                })
            })
        })
        .await;
    }

    fn name_of(&self, id: &str) -> String {
        self.ids
            .iter()
            .find(|(_, i)| *i == id)
            .map(|(name, _)| name.clone())
            .unwrap_or_else(|| panic!("socket {id} is no client of this test"))
    }

    async fn quit(mut self) {
        let _ = self.stdin.write_all(b"quit\n").await;
        let _ = tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await;
    }
}

fn names(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

/// Every client that got `event` exactly once, and nobody else (panics on
/// a client that got it more than once).
fn exactly_once(fleet: &Fleet, event: &str) -> BTreeSet<String> {
    let got = fleet.got(event);
    for (client, n) in &got {
        assert_eq!(*n, 1, "{client} got {event} {n} times\n{}", fleet.report());
    }
    got.into_keys().collect()
}

fn ack_names(results: &[Result<Args, AckError>]) -> BTreeSet<String> {
    results
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .map(|args| {
            args.get::<String>(0)
                .expect("an ack with the client's name")
        })
        .collect()
}

/// Three cluster nodes on the shared Redis under a prefix of `test`'s own,
/// all seeing each other, and a runtime to drive the test; `None` when
/// Redis or the client is missing (skipped).
fn setup(test: &str) -> Option<(support::Scope, Vec<Node>, tokio::runtime::Runtime)> {
    if !client_installed(test) {
        return None;
    }
    let scope = support::Scope::new(test)?;
    let (nodes, driver) = three_nodes(&scope.url, &scope.prefix);
    Some((scope, nodes, driver))
}

/// True when the official client is installed (else the test is skipped,
/// or fails with CI=true).
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

/// Three cluster nodes on `url` under `prefix`, all seeing each other, and a
/// runtime to drive the test.
fn three_nodes(url: &str, prefix: &str) -> (Vec<Node>, tokio::runtime::Runtime) {
    let nodes: Vec<Node> = (0..3).map(|_| cluster_node(url, prefix)).collect();
    let driver = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime for the driver");
    driver.block_on(async {
        for node in &nodes {
            let cluster = node.io.cluster().expect("a cluster node");
            let seen = cluster
                .wait_nodes(3, WAIT)
                .await
                .expect("every node sees the three");
            assert_eq!(seen.len(), 3, "exactly the three nodes of this test");
        }
    });
    (nodes, driver)
}

/// Every socket of every node, fetched on `node`.
async fn fetch_all(node: &Node) -> Result<Vec<RemoteSocket>, ClusterError> {
    let io = node.io.clone();
    node.run(async move { io.of("/").expect("/").fetch_sockets().await })
        .await
}

fn urls(nodes: &[Node]) -> Vec<String> {
    nodes.iter().map(|n| n.url.clone()).collect()
}

#[test]
fn fetch_sockets_on_one_node_returns_the_sockets_of_every_node() {
    let test = "fetch_sockets_on_one_node_returns_the_sockets_of_every_node";
    let Some((scope, nodes, driver)) = setup(test) else {
        return;
    };
    driver.block_on(async {
        let mut fleet = Fleet::start(&urls(&nodes), 2, &[]).await;
        for client in ["A0", "B0", "C0"] {
            fleet.command("join", client, "blue").await;
        }
        fleet.command("set-data", "B1", r#"{"n":"B1"}"#).await;

        let io = nodes[0].io.clone();
        let all = nodes[0]
            .run(async move { io.of("/").expect("/").fetch_sockets().await })
            .await
            .expect("fetch_sockets");
        assert_eq!(all.len(), 6, "two sockets on each of three nodes");
        let node_ids: Vec<String> = nodes.iter().map(node_id).collect();
        let mut by_name: BTreeMap<String, RemoteSocket> = BTreeMap::new();
        for socket in all {
            let name = fleet.name_of(socket.id());
            let node = usize::from(name.as_bytes()[0] - b'A');
            assert_eq!(socket.node_id(), node_ids[node], "{name}'s node");
            assert_eq!(socket.is_local(), node == 0, "{name} is local on A only");
            let mut rooms = vec![socket.id().to_owned()];
            if name.ends_with('0') {
                rooms.push("blue".to_owned());
            }
            rooms.sort();
            assert_eq!(socket.rooms(), &rooms[..], "{name}'s rooms");
            assert_eq!(
                socket.handshake().auth,
                json!({ "name": name }),
                "{name}'s auth"
            );
            assert!(socket.handshake().uri.contains("EIO=4"), "{name}'s uri");
            assert!(by_name.insert(name, socket).is_none(), "no socket twice");
        }
        assert_eq!(by_name["B1"].data::<Value>(), Some(json!({ "n": "B1" })));
        assert_eq!(by_name["A0"].data::<Value>(), None);

        let io = nodes[0].io.clone();
        let blue = nodes[0]
            .run(async move { io.to("blue").fetch_sockets().await })
            .await
            .expect("fetch_sockets of a room");
        let blue: BTreeSet<String> = blue.iter().map(|s| fleet.name_of(s.id())).collect();
        assert_eq!(blue, names(&["A0", "B0", "C0"]));

        let io = nodes[0].io.clone();
        let local = nodes[0]
            .run(async move { io.of("/").expect("/").local().fetch_sockets().await })
            .await
            .expect("local fetch_sockets");
        let local: BTreeSet<String> = local.iter().map(|s| fleet.name_of(s.id())).collect();
        assert_eq!(local, names(&["A0", "A1"]));

        // A socket of node B, fetched on A, acted on from A.
        let b1 = by_name["B1"].clone();
        nodes[0]
            .run(async move {
                b1.join("green").await?;
                b1.emit("direct", ("to B1",)).await
            })
            .await
            .expect("join and emit through the cluster");
        let io = nodes[2].io.clone();
        let green = nodes[2]
            .run(async move { io.to("green").fetch_sockets().await })
            .await
            .expect("fetch_sockets on C");
        let green: Vec<String> = green.iter().map(|s| fleet.name_of(s.id())).collect();
        assert_eq!(green, ["B1"], "B1 joined green, as C sees it");
        let io = nodes[0].io.clone();
        nodes[0]
            .run(async move { io.emit("probe", (1,)) })
            .await
            .expect("probe stored");
        fleet.all_got("probe", &json!(1)).await;
        assert_eq!(exactly_once(&fleet, "direct"), names(&["B1"]));
        fleet.quit().await;
    });
    drop(nodes);
    drop(scope);
}

#[test]
fn sockets_join_and_leave_from_one_node_apply_on_every_node() {
    let test = "sockets_join_and_leave_from_one_node_apply_on_every_node";
    let Some((scope, nodes, driver)) = setup(test) else {
        return;
    };
    driver.block_on(async {
        let mut fleet = Fleet::start(&urls(&nodes), 2, &[]).await;
        for client in ["A0", "B0", "C0"] {
            fleet.command("join", client, "blue").await;
        }
        let io = nodes[0].io.clone();
        let joined = nodes[0]
            .run(async move {
                let joined = io.to("blue").sockets_join("late").await?;
                io.to("late").emit("news", ("n1",))?;
                io.emit("probe", (1,))?;
                Ok::<_, Box<dyn std::error::Error + Send + Sync>>(joined)
            })
            .await
            .expect("sockets_join, then two broadcasts");
        assert_eq!(joined, 3, "one socket of blue on each node");
        fleet.all_got("probe", &json!(1)).await;
        assert_eq!(exactly_once(&fleet, "news"), names(&["A0", "B0", "C0"]));

        let io = nodes[0].io.clone();
        let left = nodes[0]
            .run(async move {
                let left = io.to("late").sockets_leave("late").await?;
                io.to("late").emit("news", ("n2",))?;
                io.emit("probe", (2,))?;
                Ok::<_, Box<dyn std::error::Error + Send + Sync>>(left)
            })
            .await
            .expect("sockets_leave, then two broadcasts");
        assert_eq!(left, 3);
        fleet.all_got("probe", &json!(2)).await;
        assert_eq!(
            exactly_once(&fleet, "news"),
            names(&["A0", "B0", "C0"]),
            "nobody got n2: every socket left the room"
        );

        // Not stored: over the cluster's channel. Each node sends what it gets
        // in order, so a client that has "vol-end" has every "vol" meant for it.
        let io = nodes[0].io.clone();
        let here = nodes[0]
            .run(async move {
                let here = io.to("blue").volatile().emit("vol", (1,))?;
                io.of("/").expect("/").volatile().emit("vol-end", (1,))?;
                Ok::<_, tether::EmitError>(here)
            })
            .await
            .expect("volatile broadcasts");
        assert_eq!(here, 1, "one socket of blue on node A");
        fleet.all_got("vol-end", &json!(1)).await;
        assert_eq!(exactly_once(&fleet, "vol"), names(&["A0", "B0", "C0"]));
        fleet.quit().await;
    });
    drop(nodes);
    drop(scope);
}

#[test]
fn disconnect_sockets_from_one_node_disconnects_clients_of_every_node() {
    let test = "disconnect_sockets_from_one_node_disconnects_clients_of_every_node";
    let Some((scope, nodes, driver)) = setup(test) else {
        return;
    };
    driver.block_on(async {
        let mut fleet = Fleet::start(&urls(&nodes), 2, &[]).await;
        for client in ["A0", "B0", "C0"] {
            fleet.command("join", client, "blue").await;
        }
        let io = nodes[0].io.clone();
        let count = nodes[0]
            .run(async move { io.to("blue").disconnect_sockets(false).await })
            .await
            .expect("disconnect_sockets");
        assert_eq!(count, 3);
        let doomed = ["A0", "B0", "C0"];
        fleet
            .until("A0, B0 and C0 are disconnected", |seen| {
                doomed.iter().all(|name| {
                    seen.iter().any(|l| {
                        l["kind"] == "disconnect"
                            && l["client"] == *name
                            && l["reason"] == "io server disconnect"
                    })
                })
            })
            .await;
        let io = nodes[0].io.clone();
        let left = nodes[0]
            .run(async move { io.of("/").expect("/").fetch_sockets().await })
            .await
            .expect("fetch_sockets");
        let left: BTreeSet<String> = left.iter().map(|s| fleet.name_of(s.id())).collect();
        assert_eq!(left, names(&["A1", "B1", "C1"]));
        assert_eq!(
            fleet.count(|l| l["kind"] == "disconnect"),
            3,
            "nobody else was disconnected\n{}",
            fleet.report()
        );
        fleet.quit().await;
    });
    drop(nodes);
    drop(scope);
}

#[test]
fn broadcast_with_acks_gathers_one_ack_per_client_of_every_node() {
    let test = "broadcast_with_acks_gathers_one_ack_per_client_of_every_node";
    let Some((scope, nodes, driver)) = setup(test) else {
        return;
    };
    driver.block_on(async {
        let mut fleet = Fleet::start(&urls(&nodes), 2, &[]).await;
        for client in ["A0", "B0", "C0"] {
            fleet.command("join", client, "blue").await;
        }
        let io = nodes[0].io.clone();
        let (all, blue, local) = nodes[0]
            .run(async move {
                let ask = |op: tether::BroadcastOperator| {
                    op.timeout(Duration::from_secs(10))
                        .emit_with_ack("ask", ("q",))
                };
                let all = ask(io.of("/").expect("/")).await?;
                let blue = ask(io.to("blue")).await?;
                let local = ask(io.of("/").expect("/").local()).await?;
                Ok::<_, tether::EmitError>((all, blue, local))
            })
            .await
            .expect("broadcasts with acks");
        assert_eq!(all.len(), 6, "one result per client: {all:?}");
        assert!(all.iter().all(Result::is_ok), "{all:?}");
        assert_eq!(
            ack_names(&all),
            names(&["A0", "A1", "B0", "B1", "C0", "C1"])
        );
        assert_eq!(blue.len(), 3, "{blue:?}");
        assert_eq!(ack_names(&blue), names(&["A0", "B0", "C0"]));
        assert_eq!(local.len(), 2, "{local:?}");
        assert_eq!(ack_names(&local), names(&["A0", "A1"]));
        // Each client reports an event before acknowledging it.
        fleet
            .until("the clients' reports of the asks", |seen| {
                seen.iter()
                    .filter(|l| l["kind"] == "event" && l["event"] == "ask")
                    .count()
                    >= 11
            })
            .await;
        assert_eq!(
            fleet.got("ask"),
            [
                ("A0", 3),
                ("A1", 2),
                ("B0", 2),
                ("B1", 1),
                ("C0", 2),
                ("C1", 1)
            ]
            .into_iter()
            .map(|(n, c)| (n.to_owned(), c))
            .collect(),
            "each ask reached each selected client once"
        );
        fleet.quit().await;
    });
    drop(nodes);
    drop(scope);
}

/// How node C goes away while it owes acks.
#[derive(Clone, Copy, Debug)]
enum Gone {
    /// Its runtime dropped: no goodbye, its heartbeat lapses.
    Killed,
    /// `shutdown()`: it leaves the cluster and closes its clients.
    Closed,
}

/// A broadcast with acks from A reaches C's clients, which never answer; C
/// goes away. The request must end long before its ack timeout, with the 4
/// acks of A and B and C's 2 as `Disconnected`; later requests neither wait
/// for C nor return its sockets.
fn node_c_goes_while_it_owes_acks(test: &str, gone: Gone) {
    let Some((scope, mut nodes, driver)) = setup(test) else {
        return;
    };
    let ack_timeout = Duration::from_secs(60);
    driver.block_on(async {
        let mut fleet = Fleet::start(&urls(&nodes), 2, &["C0", "C1"]).await;
        let io = nodes[0].io.clone();
        let started = Instant::now();
        let pending = nodes[0]
            .runtime
            .as_ref()
            .expect("node A runs")
            .spawn(async move {
                io.of("/")
                    .expect("/")
                    .timeout(ack_timeout)
                    .emit_with_ack("ask", ("q",))
                    .await
            });
        fleet
            .until("C0 and C1 get the ask", |seen| {
                ["C0", "C1"].iter().all(|name| {
                    seen.iter().any(|l| {
                        l["kind"] == "event" && l["client"] == *name && l["event"] == "ask"
                    })
                })
            })
            .await;
        match gone {
            Gone::Killed => nodes[2].kill(),
            Gone::Closed => {
                let io = nodes[2].io.clone();
                nodes[2].run(async move { io.shutdown().await }).await;
            }
        }
        let results = tokio::time::timeout(WAIT, pending)
            .await
            .unwrap_or_else(|_| panic!("{gone:?}: the request ends, not at the ack timeout"))
            .expect("the task completes")
            .expect("emit_with_ack");
        let elapsed = started.elapsed();
        assert!(elapsed < ack_timeout / 2, "ended after {elapsed:?}");
        assert_eq!(results.len(), 6, "{results:?}");
        assert_eq!(ack_names(&results), names(&["A0", "A1", "B0", "B1"]));
        let disconnected = results
            .iter()
            .filter(|r| matches!(r, Err(AckError::Disconnected)))
            .count();
        assert_eq!(disconnected, 2, "C's two acks: {gone:?}: {results:?}");

        // C is not live any more: a new request neither waits for it nor
        // returns its sockets.
        let started = Instant::now();
        let left = fetch_all(&nodes[0]).await.expect("fetch_sockets");
        assert!(started.elapsed() < options().request_timeout);
        let left: BTreeSet<String> = left.iter().map(|s| fleet.name_of(s.id())).collect();
        assert_eq!(left, names(&["A0", "A1", "B0", "B1"]));
        if let Gone::Closed = gone {
            // It said goodbye: A no longer counts it.
            let cluster = nodes[0].io.cluster().expect("a cluster node");
            let c = node_id(&nodes[2]);
            cluster.wait_nodes(2, WAIT).await.expect("A and B live");
            assert!(
                !cluster.nodes().contains(&c),
                "C left: {:?}",
                cluster.nodes()
            );
        }
        fleet.quit().await;
    });
    drop(nodes);
    drop(scope);
}

#[test]
fn a_killed_node_does_not_hang_a_broadcast_with_acks() {
    node_c_goes_while_it_owes_acks(
        "a_killed_node_does_not_hang_a_broadcast_with_acks",
        Gone::Killed,
    );
}

#[test]
fn a_closed_node_does_not_hang_a_broadcast_with_acks() {
    node_c_goes_while_it_owes_acks(
        "a_closed_node_does_not_hang_a_broadcast_with_acks",
        Gone::Closed,
    );
}

#[test]
fn without_a_cluster_the_same_operations_stay_on_the_node() {
    let test = "without_a_cluster_the_same_operations_stay_on_the_node";
    if !client_installed(test) {
        return;
    }
    let node = lone_node();
    assert!(node.io.cluster().is_none());
    let driver = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime for the driver");
    driver.block_on(async {
        let mut fleet = Fleet::start(std::slice::from_ref(&node.url), 2, &[]).await;
        fleet.command("join", "A0", "blue").await;
        let io = node.io.clone();
        let (all, joined, acks, gone) = node
            .run(async move {
                let all = io.of("/").expect("/").fetch_sockets().await?;
                let joined = io.to("blue").sockets_join("late").await?;
                let acks = io
                    .to("late")
                    .timeout(Duration::from_secs(10))
                    .emit_with_ack("ask", ("q",))
                    .await?;
                let gone = io.to("late").disconnect_sockets(false).await?;
                Ok::<_, Box<dyn std::error::Error + Send + Sync>>((all, joined, acks, gone))
            })
            .await
            .expect("local operations");
        let all: BTreeSet<String> = all
            .iter()
            .inspect(|s| assert!(s.is_local() && s.node_id().is_empty()))
            .map(|s| fleet.name_of(s.id()))
            .collect();
        assert_eq!(all, names(&["A0", "A1"]));
        assert_eq!(joined, 1);
        assert_eq!(ack_names(&acks), names(&["A0"]));
        assert_eq!(acks.len(), 1);
        assert_eq!(gone, 1);
        fleet
            .until("A0 is disconnected", |seen| {
                seen.iter()
                    .any(|l| l["kind"] == "disconnect" && l["client"] == "A0")
            })
            .await;
        fleet.quit().await;
    });
    drop(node);
}

#[test]
fn cluster_requests_reach_every_node_again_after_a_redis_restart() {
    let test = "cluster_requests_reach_every_node_again_after_a_redis_restart";
    if !client_installed(test) {
        return;
    }
    let Some(mut redis) = support::PrivateRedis::start(test) else {
        return;
    };
    let (nodes, driver) = three_nodes(&redis.url(), "tether");
    driver.block_on(async {
        let fleet = Fleet::start(&urls(&nodes), 2, &[]).await;

        let before = fetch_all(&nodes[0]).await.expect("fetch_sockets");
        assert_eq!(before.len(), 6);

        redis.stop();
        for node in &nodes {
            let cluster = node.io.cluster().expect("a cluster node");
            assert!(
                cluster.wait_connection(false, WAIT).await,
                "the node sees its subscriber drop"
            );
        }
        let down = fetch_all(&nodes[0]).await;
        assert!(down.is_err(), "no cluster request without Redis: {down:?}");
        redis.start_again();
        for node in &nodes {
            let cluster = node.io.cluster().expect("a cluster node");
            assert!(
                cluster.wait_connection(true, WAIT).await,
                "the node subscribes again by itself"
            );
            cluster.wait_nodes(3, WAIT).await.expect("three live nodes");
        }

        let after = fetch_all(&nodes[1])
            .await
            .expect("fetch_sockets after the restart");
        let after: BTreeSet<String> = after.iter().map(|s| fleet.name_of(s.id())).collect();
        assert_eq!(after, names(&["A0", "A1", "B0", "B1", "C0", "C1"]));
        let io = nodes[2].io.clone();
        let acks = nodes[2]
            .run(async move {
                io.of("/")
                    .expect("/")
                    .timeout(Duration::from_secs(10))
                    .emit_with_ack("ask", ("q",))
                    .await
            })
            .await
            .expect("a broadcast with acks after the restart");
        assert_eq!(acks.len(), 6, "{acks:?}");
        assert_eq!(
            ack_names(&acks),
            names(&["A0", "A1", "B0", "B1", "C0", "C1"])
        );
        fleet.quit().await;
    });
    drop(nodes);
    drop(redis);
}
