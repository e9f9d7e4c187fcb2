//! A TCP proxy between the clients and the server, on loopback, that can cut
//! a connection (both sides closed at once) or stall it (nothing forwarded
//! either way for a while), and can make its clients slow consumers (a
//! small receive buffer towards the server and a bounded rate towards the
//! client, so that the server's send buffer for them fills up).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How long the proxy tries to reach the server for one client connection.
const UPSTREAM_CONNECT: Duration = Duration::from_secs(2);

/// What a connection does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    /// Forwarding.
    Run,
    /// Holding every byte until [`Flow::Run`] again.
    Stall,
    /// Closing both sides.
    Cut,
}

/// How a proxy shapes its traffic.
#[derive(Debug, Clone, Copy, Default)]
pub struct Shape {
    /// Most bytes per second forwarded from the server to a client.
    pub rate: Option<u64>,
    /// The receive buffer of the proxy's sockets towards the server.
    pub upstream_recv_buffer: Option<u32>,
}

/// Counters of the proxy.
#[derive(Debug, Default)]
pub struct ProxyStats {
    /// Client connections accepted.
    pub accepted: AtomicU64,
    /// Client connections closed at once because the server did not answer.
    pub refused: AtomicU64,
    /// Connections cut by the fault injector.
    pub cut: AtomicU64,
    /// Connections stalled by the fault injector.
    pub stalled: AtomicU64,
}

#[derive(Default)]
struct Registry {
    next: u64,
    conns: BTreeMap<u64, watch::Sender<Flow>>,
}

/// The proxy: clients connect to [`Proxy::addr`], each connection is
/// forwarded to the server's port.
pub struct Proxy {
    addr: SocketAddr,
    down: Arc<AtomicBool>,
    registry: Arc<Mutex<Registry>>,
    stats: Arc<ProxyStats>,
    accept: JoinHandle<()>,
}

fn lock(registry: &Mutex<Registry>) -> MutexGuard<'_, Registry> {
    registry
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Proxy {
    /// Listens on 127.0.0.1 (a free port) and forwards each connection to
    /// one of `upstreams` (in turn; the next one when it does not answer).
    pub async fn start(upstreams: Vec<SocketAddr>, shape: Shape) -> std::io::Result<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let registry = Arc::new(Mutex::new(Registry::default()));
        let stats = Arc::new(ProxyStats::default());
        let down = Arc::new(AtomicBool::new(false));
        let accept = tokio::spawn(accept_loop(
            listener,
            down.clone(),
            Arc::new(upstreams),
            shape,
            registry.clone(),
            stats.clone(),
        ));
        Ok(Proxy {
            addr,
            down,
            registry,
            stats,
            accept,
        })
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The counters.
    pub fn stats(&self) -> &ProxyStats {
        &self.stats
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        lock(&self.registry).conns.len()
    }

    /// Cuts the `pick % open`-th open connection (in opening order); false
    /// when none is open.
    pub fn cut(&self, pick: usize) -> bool {
        let reg = lock(&self.registry);
        let Some((_, ctl)) = reg.conns.iter().nth(pick % reg.conns.len().max(1)) else {
            return false;
        };
        ctl.send_replace(Flow::Cut);
        self.stats.cut.fetch_add(1, Ordering::Relaxed);
        true
    }

    /// Takes the upstream "down" (`true`): every open connection is cut
    /// and new ones are closed at once, until called with `false`.
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
        if down {
            for ctl in lock(&self.registry).conns.values() {
                ctl.send_replace(Flow::Cut);
                self.stats.cut.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Stalls the `pick % open`-th open connection for `duration`; false when
    /// none is open.
    pub fn stall(&self, pick: usize, duration: Duration) -> bool {
        let ctl = {
            let reg = lock(&self.registry);
            let Some((_, ctl)) = reg.conns.iter().nth(pick % reg.conns.len().max(1)) else {
                return false;
            };
            ctl.clone()
        };
        ctl.send_replace(Flow::Stall);
        self.stats.stalled.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(async move {
            tokio::time::sleep(duration).await;
            ctl.send_if_modified(|flow| {
                let stalled = *flow == Flow::Stall;
                if stalled {
                    *flow = Flow::Run;
                }
                stalled
            });
        });
        true
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        for ctl in lock(&self.registry).conns.values() {
            ctl.send_replace(Flow::Cut);
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    down: Arc<AtomicBool>,
    upstreams: Arc<Vec<SocketAddr>>,
    shape: Shape,
    registry: Arc<Mutex<Registry>>,
    stats: Arc<ProxyStats>,
) {
    let mut turn = 0usize;
    loop {
        let client = match listener.accept().await {
            Ok((client, _)) => client,
            Err(_) => {
                // Out of descriptors, say: give the others time to close.
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        stats.accepted.fetch_add(1, Ordering::Relaxed);
        if down.load(Ordering::SeqCst) {
            stats.refused.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        let registry = registry.clone();
        let stats = stats.clone();
        let upstreams = upstreams.clone();
        turn = turn.wrapping_add(1);
        let first = turn;
        tokio::spawn(async move {
            let mut server = None;
            for i in 0..upstreams.len() {
                let upstream = upstreams[(first + i) % upstreams.len()];
                if let Ok(Ok(s)) =
                    tokio::time::timeout(UPSTREAM_CONNECT, connect(upstream, shape)).await
                {
                    server = Some(s);
                    break;
                }
            }
            // Every server is down (killed): the client sees its connection
            // close and tries again later.
            let Some(server) = server else {
                stats.refused.fetch_add(1, Ordering::Relaxed);
                return;
            };
            let _ = client.set_nodelay(true);
            let _ = server.set_nodelay(true);
            let (tx, rx) = watch::channel(Flow::Run);
            let id = {
                let mut reg = lock(&registry);
                let id = reg.next;
                reg.next += 1;
                reg.conns.insert(id, tx);
                id
            };
            let (client_r, client_w) = client.into_split();
            let (server_r, server_w) = server.into_split();
            // Either direction ending (EOF, error, cut) closes both sockets.
            tokio::select! {
                () = pump(client_r, server_w, rx.clone(), None) => {}
                () = pump(server_r, client_w, rx, shape.rate) => {}
            }
            lock(&registry).conns.remove(&id);
        });
    }
}

/// Connects to the server, with the receive buffer of `shape`.
async fn connect(upstream: SocketAddr, shape: Shape) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    if let Some(size) = shape.upstream_recv_buffer {
        socket.set_recv_buffer_size(size)?;
    }
    socket.connect(upstream).await
}

/// Waits while the flow is [`Flow::Stall`]; false once it is [`Flow::Cut`].
async fn flowing(flow: &mut watch::Receiver<Flow>) -> bool {
    loop {
        let now = *flow.borrow_and_update();
        match now {
            Flow::Run => return true,
            Flow::Cut => return false,
            Flow::Stall => {
                if flow.changed().await.is_err() {
                    return false;
                }
            }
        }
    }
}

/// Copies `from` to `to` while the flow is [`Flow::Run`], at most `rate`
/// bytes per second.
async fn pump(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    mut flow: watch::Receiver<Flow>,
    rate: Option<u64>,
) {
    // Small reads when shaping, so that the rate is smooth.
    let mut buf = vec![0u8; if rate.is_some() { 1024 } else { 16 * 1024 }];
    loop {
        if !flowing(&mut flow).await {
            return;
        }
        let n = tokio::select! {
            read = from.read(&mut buf) => match read {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            },
            changed = flow.changed() => {
                if changed.is_err() {
                    return;
                }
                continue;
            }
        };
        // A stall or a cut requested meanwhile applies before these bytes go.
        if !flowing(&mut flow).await {
            return;
        }
        // A write blocked by a slow reader still gives way to a cut.
        tokio::select! {
            written = to.write_all(&buf[..n]) => if written.is_err() { return },
            _ = flow.wait_for(|f| *f == Flow::Cut) => return,
        }
        if let Some(rate) = rate.filter(|r| *r > 0) {
            let pause = Duration::from_nanos(n as u64 * 1_000_000_000 / rate);
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                _ = flow.wait_for(|f| *f == Flow::Cut) => return,
            }
        }
    }
}
