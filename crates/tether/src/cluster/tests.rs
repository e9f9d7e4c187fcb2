//! The cluster on an in-memory transport: what the core does with any
//! [`Transport`], without Redis.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tether_proto::socketio::Args;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::local::{LocalNode, LocalSocket};
use super::transport::{BoxFuture, Channel, Subscription, Transport};
use super::wire::{HandshakeSummary, Selection, SocketInfo};
use super::{Cluster, ClusterError, ClusterOptions, RemoteSocket};
use crate::error::{AckError, EmitError, TransportError};

type Subscribers = Vec<(Vec<Channel>, mpsc::UnboundedSender<Vec<u8>>)>;

/// One process-wide bus: every node of a test shares it.
#[derive(Default)]
struct Bus {
    seen: Mutex<HashMap<String, Instant>>,
    subscribers: Mutex<Subscribers>,
}

impl Bus {
    fn live(&self, node_timeout: Duration) -> Vec<String> {
        let now = Instant::now();
        self.seen
            .lock()
            .iter()
            .filter(|(_, at)| now.duration_since(**at) <= node_timeout)
            .map(|(node, _)| node.clone())
            .collect()
    }
}

struct MemoryTransport(Arc<Bus>);

impl Transport for MemoryTransport {
    fn publish<'a>(
        &'a self,
        channel: &'a Channel,
        payload: &'a [u8],
    ) -> BoxFuture<'a, Result<(), TransportError>> {
        self.0.subscribers.lock().retain(|(channels, tx)| {
            !channels.contains(channel) || tx.send(payload.to_vec()).is_ok()
        });
        Box::pin(async { Ok(()) })
    }

    fn subscribe<'a>(
        &'a self,
        channels: &'a [Channel],
    ) -> BoxFuture<'a, Result<Box<dyn Subscription>, TransportError>> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.0.subscribers.lock().push((channels.to_vec(), tx));
        Box::pin(async { Ok(Box::new(MemorySubscription(rx)) as Box<dyn Subscription>) })
    }

    fn heartbeat<'a>(
        &'a self,
        node: &'a str,
        node_timeout: Duration,
    ) -> BoxFuture<'a, Result<Vec<String>, TransportError>> {
        self.0.seen.lock().insert(node.to_owned(), Instant::now());
        let live = self.0.live(node_timeout);
        Box::pin(async { Ok(live) })
    }

    fn live_nodes(
        &self,
        node_timeout: Duration,
    ) -> BoxFuture<'_, Result<Vec<String>, TransportError>> {
        let live = self.0.live(node_timeout);
        Box::pin(async { Ok(live) })
    }

    fn remove_node<'a>(&'a self, node: &'a str) -> BoxFuture<'a, Result<(), TransportError>> {
        self.0.seen.lock().remove(node);
        Box::pin(async { Ok(()) })
    }
}

struct MemorySubscription(mpsc::UnboundedReceiver<Vec<u8>>);

impl Subscription for MemorySubscription {
    fn next(&mut self) -> BoxFuture<'_, Option<Vec<u8>>> {
        Box::pin(self.0.recv())
    }

    fn check(&mut self) -> BoxFuture<'_, Result<(), TransportError>> {
        Box::pin(async { Ok(()) })
    }
}

/// A socket of a node: its rooms, and an ack that echoes the arguments.
#[derive(Debug)]
struct FakeSocket {
    id: String,
    rooms: Mutex<Vec<String>>,
}

impl LocalSocket for FakeSocket {
    fn nsp(&self) -> &str {
        "/"
    }

    fn info(&self) -> SocketInfo {
        SocketInfo {
            id: self.id.clone(),
            rooms: self.rooms.lock().clone(),
            data: None,
            handshake: HandshakeSummary {
                auth: serde_json::Value::Null,
                uri: "/socket.io/".into(),
                headers: Vec::new(),
                address: None,
                issued_ms: 0,
            },
        }
    }

    fn join(&self, room: String) {
        self.rooms.lock().push(room);
    }

    fn leave(&self, room: &str) {
        self.rooms.lock().retain(|r| r != room);
    }

    fn disconnect(&self, _close: bool) {}

    fn emit(&self, _event: &str, _args: Args) -> Result<(), EmitError> {
        Ok(())
    }

    fn emit_with_ack(
        &self,
        _event: String,
        args: Args,
        _timeout: Duration,
    ) -> BoxFuture<'static, Result<Args, AckError>> {
        Box::pin(async move { Ok(args) })
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

struct FakeNode(Vec<Arc<FakeSocket>>);

impl LocalNode for FakeNode {
    fn sockets(&self, _sel: &Selection) -> Vec<Arc<dyn LocalSocket>> {
        self.0
            .iter()
            .map(|s| s.clone() as Arc<dyn LocalSocket>)
            .collect()
    }

    fn emit(&self, _sel: &Selection, _event: &str, _args: Args, _volatile: bool) -> usize {
        self.0.len()
    }

    fn store_emit(
        &self,
        _sel: &Selection,
        _event: &str,
        _args: Args,
    ) -> Option<Result<(), EmitError>> {
        None
    }
}

fn options() -> ClusterOptions {
    ClusterOptions {
        heartbeat: Duration::from_millis(20),
        node_timeout: Duration::from_millis(400),
        request_timeout: Duration::from_secs(2),
    }
}

fn node(bus: &Arc<Bus>, sockets: &[&str]) -> (Cluster, Vec<Arc<FakeSocket>>) {
    let sockets: Vec<Arc<FakeSocket>> = sockets
        .iter()
        .map(|id| {
            Arc::new(FakeSocket {
                id: (*id).to_owned(),
                rooms: Mutex::new(vec![(*id).to_owned()]),
            })
        })
        .collect();
    let transport = Arc::new(MemoryTransport(bus.clone()));
    let local = Arc::new(FakeNode(sockets.clone()));
    (Cluster::start(transport, options(), local), sockets)
}

fn everyone() -> Selection {
    Selection {
        nsp: "/".into(),
        rooms: Vec::new(),
        except: Vec::new(),
    }
}

#[tokio::test]
async fn requests_reach_the_other_nodes_of_any_transport() {
    let bus = Arc::new(Bus::default());
    let (a, _) = node(&bus, &["a1"]);
    let (b, b_sockets) = node(&bus, &["b1", "b2"]);
    let within = Duration::from_secs(5);
    let nodes = a.wait_nodes(2, within).await.expect("both nodes live");
    assert_eq!(nodes.len(), 2);
    assert!(b.wait_connection(true, within).await);

    let fetched: Vec<RemoteSocket> = a.fetch(&everyone()).await.expect("fetch");
    let mut ids: Vec<&str> = fetched.iter().map(RemoteSocket::id).collect();
    ids.sort_unstable();
    assert_eq!(ids, ["b1", "b2"]);
    assert!(fetched
        .iter()
        .all(|s| s.node_id() == b.node_id() && !s.is_local()));

    let joined = a
        .join_or_leave(&everyone(), vec!["lobby".into()], false)
        .await
        .expect("join");
    assert_eq!(joined, 2);
    assert!(b_sockets
        .iter()
        .all(|s| s.rooms.lock().contains(&"lobby".to_owned())));

    let mut args = Args::new();
    args.push(&"hi").expect("a string serialises");
    let acks = a
        .emit_with_ack(&everyone(), "ask", &args, Duration::from_secs(1))
        .await
        .expect("acks");
    assert_eq!(acks.len(), 2);
    for ack in acks {
        let back = ack.expect("acknowledged");
        assert_eq!(back.get::<String>(0).expect("a string"), "hi");
    }

    // A node that left is not waited for, and its sockets are gone.
    let remote = fetched.into_iter().next().expect("a socket of b");
    b.leave().await.expect("leave");
    assert!(matches!(
        remote.join("game").await,
        Err(ClusterError::NodeGone(_))
    ));
    assert_eq!(
        a.disconnect(&everyone(), false)
            .await
            .expect("no one to ask"),
        0
    );
}

#[tokio::test]
async fn waiting_for_more_nodes_than_live_says_how_many() {
    let bus = Arc::new(Bus::default());
    let (a, _) = node(&bus, &[]);
    let err = a
        .wait_nodes(2, Duration::from_millis(300))
        .await
        .expect_err("one node only");
    assert!(matches!(
        err,
        ClusterError::TooFewNodes {
            live: 1,
            expected: 2
        }
    ));
}
