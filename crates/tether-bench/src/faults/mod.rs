//! `tether-bench faults`: publishers and subscribers (Rust and the official
//! Node client) exchange messages through the chat contract of `tether serve`
//! while a seeded fault injector kills the server (`kill -9`, restart on the
//! same store and port), cuts and stalls client connections (through a TCP
//! proxy), makes the store unreachable (with several nodes on Redis or
//! PostgreSQL) and a slow consumer lags behind; then the checker counts what was
//! lost, duplicated or reordered.

pub mod check;
pub mod clients;
pub mod proxy;
pub mod report;
pub mod schedule;
pub mod server;
pub mod store;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio::sync::mpsc;

use check::{MsgId, Observed, SubscriberLog};
use clients::{Common, Lib, Obs, Role, Running};
use proxy::{Proxy, Shape};
use report::{FaultCounts, Recoveries, Report};
use schedule::{Fault, Plan};
use server::Server;

/// Flags of `tether-bench faults`.
#[derive(Debug, Clone, clap::Args)]
pub struct FaultsArgs {
    /// Seed of the fault schedule.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Messages per publisher.
    #[arg(long, default_value_t = 300)]
    pub messages: u64,
    /// Publishers on the Rust client.
    #[arg(long, default_value_t = 1)]
    pub rust_publishers: usize,
    /// Publishers on the official Node client.
    #[arg(long, default_value_t = 1)]
    pub node_publishers: usize,
    /// Subscribers on the Rust client.
    #[arg(long, default_value_t = 1)]
    pub rust_subscribers: usize,
    /// Subscribers on the official Node client.
    #[arg(long, default_value_t = 1)]
    pub node_subscribers: usize,
    /// Slow subscribers (official Node client, busy for --slow-ms per
    /// message, behind a proxy that forwards at most --slow-rate bytes/s).
    #[arg(long, default_value_t = 1)]
    pub slow_subscribers: usize,
    /// Time a slow subscriber spends on each message.
    #[arg(long, default_value_t = 5)]
    pub slow_ms: u64,
    /// Bytes per second forwarded to a slow subscriber.
    #[arg(long, default_value_t = 16 * 1024)]
    pub slow_rate: u64,
    /// Filler bytes in each message (at most 3900: the chat takes 4000
    /// characters), so that a slow consumer fills its buffers sooner.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u16).range(0..=3900))]
    pub payload_bytes: u16,
    /// Server kills (`kill -9`, then a restart on the same store and port).
    #[arg(long, default_value_t = 2)]
    pub kills: u32,
    /// Client connections cut by the proxy.
    #[arg(long, default_value_t = 6)]
    pub cuts: u32,
    /// Client connections stalled by the proxy.
    #[arg(long, default_value_t = 3)]
    pub stalls: u32,
    /// The fault window, in seconds: faults fall in its 10 %..90 %, and
    /// publishers pace their messages over it.
    #[arg(long, default_value_t = 10)]
    pub window_secs: u64,
    /// Pause between two messages of a publisher (default: the window
    /// divided by --messages).
    #[arg(long)]
    pub pace_ms: Option<u64>,
    /// Ack timeout of one try of a publisher.
    #[arg(long, default_value_t = 1000)]
    pub ack_timeout_ms: u64,
    /// Longest time the server stays down after a kill.
    #[arg(long, default_value_t = 800)]
    pub max_down_ms: u64,
    /// Longest stall of a connection (longer than --ack-timeout-ms: a
    /// publisher's try times out and the retry reaches the server too).
    #[arg(long, default_value_t = 3000)]
    pub max_stall_ms: u64,
    /// Everything stops after this many seconds, finished or not.
    #[arg(long, default_value_t = 300)]
    pub deadline_secs: u64,
    /// After publishing, how long subscribers may take to receive everything.
    #[arg(long, default_value_t = 30)]
    pub drain_secs: u64,
    /// Once every subscriber has everything, how long to keep listening for
    /// late duplicates.
    #[arg(long, default_value_t = 500)]
    pub settle_ms: u64,
    /// The server's send buffer per client (`tether serve --max-buffer`):
    /// small, so that the slow consumer is paused and caught up from the store.
    #[arg(long, default_value_t = 8 * 1024)]
    pub max_buffer: usize,
    /// The store: a SQLite file in a temporary directory (the default), a
    /// `redis://127.0.0.1:PORT` URL or a `postgres://USER@HOST:PORT/DB` URL:
    /// then --nodes servers share it (under a key prefix, or in a schema, of
    /// their own, deleted afterwards) and a kill takes down one node at a
    /// time, its clients moving to the others.
    #[arg(long)]
    pub store: Option<String>,
    /// Servers sharing a Redis or PostgreSQL store.
    #[arg(long, default_value_t = 3)]
    pub nodes: usize,
    /// Store outages (with --store redis://... or postgres://...): the
    /// servers reach the store through a proxy of the benchmark, which cuts
    /// every connection and refuses new ones for a while (the shared Redis
    /// or PostgreSQL itself keeps running).
    #[arg(long, default_value_t = 0)]
    pub redis_outages: u32,
    /// Longest Redis outage.
    #[arg(long, default_value_t = 2000)]
    pub max_redis_outage_ms: u64,
    /// An extra flag for `tether serve` (repeatable), e.g.
    /// `--server-arg=--recovery-window=1s` so that sessions expire and
    /// reconnections go through the chat's catch-up from `auth.serverOffset`.
    #[arg(long, allow_hyphen_values = true)]
    pub server_arg: Vec<String>,
    /// The `tether` binary (default: `tether` next to this executable).
    #[arg(long, env = "TETHER_BIN")]
    pub server_bin: Option<PathBuf>,
    /// The Node script (default: bench/faults-node.mjs of this repository).
    #[arg(long)]
    pub node_script: Option<PathBuf>,
    /// Transports of the Node clients: `websocket`, or `polling,websocket`
    /// (long-polling upgraded to WebSocket; not with several Redis nodes: a
    /// polling session lives on one node and the proxy is not sticky).
    #[arg(long, default_value = "websocket")]
    pub node_transports: String,
    /// Transports of the Rust clients (same values as --node-transports).
    #[arg(long, default_value = "websocket")]
    pub rust_transports: String,
    /// The Node.js executable.
    #[arg(long, default_value = "node")]
    pub node: PathBuf,
    /// Keep the temporary directory (store, server log).
    #[arg(long)]
    pub keep: bool,
    /// Print the report as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
    /// Self-test of the checker: alter what the first subscriber received
    /// before checking (drop one message, duplicate one, or swap two), so
    /// the run must fail.
    #[arg(long, hide = true, value_enum)]
    pub sabotage: Option<Sabotage>,
}

/// An alteration of a subscriber's log (see `--sabotage`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Sabotage {
    /// One message removed.
    Drop,
    /// One message received twice.
    Duplicate,
    /// Two messages swapped.
    Reorder,
}

impl Sabotage {
    /// Alters `log` (left alone when too short).
    fn apply(self, log: &mut Vec<(String, u64)>) {
        let mid = log.len() / 2;
        if log.len() < 2 {
            return;
        }
        match self {
            Sabotage::Drop => {
                log.remove(mid);
            }
            Sabotage::Duplicate => {
                let again = log[mid].clone();
                log.push(again);
            }
            Sabotage::Reorder => log.swap(mid - 1, mid),
        }
    }
}

/// The result of a run: the report and the process's exit code.
pub struct Outcome {
    /// The report.
    pub report: Report,
    /// 0: no guarantee broken and the run complete; 1: a guarantee broken;
    /// 2: the run did not complete (deadline) but broke nothing seen.
    pub code: u8,
}

/// The `tether` binary: the flag, else next to this executable.
fn server_bin(args: &FaultsArgs) -> anyhow::Result<PathBuf> {
    if let Some(bin) = &args.server_bin {
        return Ok(bin.clone());
    }
    let exe = std::env::current_exe().context("cannot find this executable")?;
    let dir = exe.parent().context("this executable has no directory")?;
    // target/<profile>/tether-bench, or target/<profile>/deps/... in tests.
    for dir in [dir, dir.parent().unwrap_or(dir)] {
        let bin = dir.join("tether");
        if bin.is_file() {
            return Ok(bin);
        }
    }
    anyhow::bail!(
        "no `tether` binary next to {}: build it (`cargo build --bin tether`) or pass --server-bin",
        exe.display()
    )
}

/// The Node script: the flag, else bench/faults-node.mjs of this repository.
fn node_script(args: &FaultsArgs) -> anyhow::Result<PathBuf> {
    let script = args.node_script.clone().unwrap_or_else(|| {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench/faults-node.mjs")
    });
    anyhow::ensure!(script.is_file(), "no Node script at {}", script.display());
    let modules = script
        .parent()
        .map(|bench| bench.join("../tests/node/node_modules/socket.io-client"));
    if let Some(modules) = modules {
        anyhow::ensure!(
            modules.is_dir(),
            "{} is missing: run `npm ci --prefix tests/node`",
            modules.display()
        );
    }
    Ok(script)
}

/// A fresh directory under the temp dir.
fn temp_dir() -> anyhow::Result<PathBuf> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let dir = std::env::temp_dir().join(format!("tether-bench-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir)
}

/// The address of a `redis://host:port[/db]` URL, and its `/db` part.
/// The parts of `postgres://[USER@]HOST[:PORT]/DB` around the address:
/// (`USER@` or nothing, the address, `/DB`).
fn postgres_address(url: &str) -> anyhow::Result<(String, std::net::SocketAddr, String)> {
    use std::net::ToSocketAddrs as _;
    let rest = url
        .strip_prefix("postgres://")
        .or_else(|| url.strip_prefix("postgresql://"))
        .context("a PostgreSQL URL starts with postgres://")?;
    let (authority, database) = match rest.find('/') {
        Some(i) => (&rest[..i], rest[i..].to_owned()),
        None => (rest, String::new()),
    };
    let (user, host) = match authority.rfind('@') {
        Some(i) => (authority[..=i].to_owned(), &authority[i + 1..]),
        None => (String::new(), authority),
    };
    let host = if host.contains(':') {
        host.to_owned()
    } else {
        format!("{host}:5432")
    };
    let addr = host
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve {host}"))?
        .next()
        .with_context(|| format!("{host} has no address"))?;
    Ok((user, addr, database))
}

fn redis_address(url: &str) -> anyhow::Result<(std::net::SocketAddr, String)> {
    use std::net::ToSocketAddrs as _;
    let rest = url
        .strip_prefix("redis://")
        .context("a Redis URL starts with redis://")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], rest[i..].to_owned()),
        None => (rest, String::new()),
    };
    anyhow::ensure!(
        !authority.contains('@'),
        "a Redis URL with credentials is not supported here"
    );
    let authority = if authority.contains(':') {
        authority.to_owned()
    } else {
        format!("{authority}:6379")
    };
    let addr = authority
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve {authority}"))?
        .next()
        .with_context(|| format!("{authority} has no address"))?;
    Ok((addr, path))
}

/// Resolves at the first SIGINT or SIGTERM, with its name.
async fn interrupted() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            return tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
            };
        }
    }
    let _ = tokio::signal::ctrl_c().await;
    "Ctrl-C"
}

/// A port free now on 127.0.0.1.
fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("cannot bind a port")?;
    Ok(listener.local_addr()?.port())
}

/// Everything the clients reported.
#[derive(Default)]
struct Tally {
    sent: BTreeMap<String, u64>,
    acked: HashMap<MsgId, u64>,
    duplicate_acks: u64,
    retries: u64,
    received: HashMap<usize, Vec<(String, u64)>>,
    unique: HashMap<usize, HashSet<String>>,
    connected: HashSet<usize>,
    done: HashSet<usize>,
    ended: HashSet<usize>,
    errors: Vec<String>,
    malformed: Vec<String>,
    recoveries: Recoveries,
    /// The clients are being stopped: their disconnections are not faults.
    stopping: bool,
    /// Whether each client is connected now.
    online: HashMap<usize, bool>,
    /// Disconnections by library and reason.
    disconnect_reasons: BTreeMap<String, u64>,
    /// Refused connections by library and message.
    connect_errors: BTreeMap<String, u64>,
}

impl Tally {
    fn apply(&mut self, roles: &[Role], ev: Obs) {
        let name = |who: usize| roles.get(who).map(|r| r.name.clone()).unwrap_or_default();
        match ev {
            Obs::Sent { who, seq } => {
                let n = self.sent.entry(name(who)).or_insert(0);
                *n = (*n).max(seq);
            }
            Obs::Acked {
                who,
                seq,
                offset,
                duplicate,
            } => {
                self.acked.insert(
                    MsgId {
                        publisher: name(who),
                        seq,
                    },
                    offset,
                );
                self.duplicate_acks += u64::from(duplicate);
            }
            Obs::Retried => self.retries += 1,
            Obs::Done { who } => {
                self.done.insert(who);
            }
            Obs::Received {
                who,
                content,
                offset,
            } => {
                self.unique.entry(who).or_default().insert(content.clone());
                self.received
                    .entry(who)
                    .or_default()
                    .push((content, offset));
            }
            Obs::Malformed { who, what } => {
                if self.malformed.len() < 20 {
                    self.malformed.push(format!("{}: {what}", name(who)));
                }
            }
            Obs::Connected {
                who,
                recovered,
                after,
            } => {
                self.connected.insert(who);
                self.online.insert(who, true);
                if let Some(after) = after {
                    let lib = roles.get(who).map_or(Lib::Rust, |r| r.lib);
                    self.recoveries.record(lib, recovered, after);
                }
            }
            Obs::Disconnected { .. } if self.stopping => {}
            Obs::Disconnected { who, reason } => {
                let lib = roles.get(who).map_or(Lib::Rust, |r| r.lib);
                self.recoveries.disconnected(lib);
                self.online.insert(who, false);
                *self
                    .disconnect_reasons
                    .entry(format!("{} {reason}", lib.name()))
                    .or_default() += 1;
            }
            Obs::ConnectError {
                who,
                message,
                gave_up,
            } => {
                let lib = roles.get(who).map_or(Lib::Rust, |r| r.lib);
                let what = if gave_up { "gave up" } else { "retrying" };
                *self
                    .connect_errors
                    .entry(format!("{} {message} ({what})", lib.name()))
                    .or_default() += 1;
            }
            Obs::Ended { who, error } => {
                self.ended.insert(who);
                if let Some(error) = error {
                    self.errors.push(format!("{}: {error}", name(who)));
                }
            }
        }
    }
}

/// Receives observations until `done` holds or `budget` runs out; true if
/// `done` held.
async fn pump_until(
    rx: &mut mpsc::UnboundedReceiver<Obs>,
    tally: &mut Tally,
    roles: &[Role],
    budget: Duration,
    mut done: impl FnMut(&Tally) -> bool,
) -> bool {
    let until = tokio::time::Instant::now() + budget;
    while !done(tally) {
        match tokio::time::timeout_at(until, rx.recv()).await {
            Ok(Some(ev)) => tally.apply(roles, ev),
            Ok(None) | Err(_) => return done(tally),
        }
    }
    true
}

/// Where the servers keep their messages.
enum StoreKind {
    /// One server on a SQLite file.
    Sqlite(PathBuf),
    /// Several servers on one Redis, under a key prefix of this run.
    Redis {
        /// `redis://...`
        url: String,
        /// The key prefix.
        prefix: String,
    },
    /// Several servers on one PostgreSQL database, in a schema of this run.
    Postgres {
        /// `postgres://USER@HOST:PORT/DB`, without parameters.
        url: String,
        /// The schema.
        schema: String,
    },
}

/// What the fault injector did.
#[derive(Debug, Default)]
struct Injected {
    kills: u32,
    restart_ms: Vec<u64>,
    cuts: u32,
    cuts_missed: u32,
    stalls: u32,
    stalls_missed: u32,
    redis_outages: u32,
}

/// Runs the schedule against the server and the proxy; the server is
/// running when it returns.
async fn inject(
    schedule: Vec<(Duration, Fault)>,
    servers: &mut [Server],
    proxy: &Proxy,
    redis_proxy: Option<&Proxy>,
    started: Instant,
    deadline: Instant,
) -> anyhow::Result<Injected> {
    let mut done = Injected::default();
    for (at, fault) in schedule {
        let when = started + at;
        if when >= deadline {
            break;
        }
        tokio::time::sleep_until(when.into()).await;
        let t = started.elapsed().as_secs_f64();
        match fault {
            Fault::Kill { down } => {
                // One node at a time, in turn.
                let node = done.kills as usize % servers.len().max(1);
                let Some(server) = servers.get_mut(node) else {
                    break;
                };
                server.kill().await;
                done.kills += 1;
                tokio::time::sleep(down).await;
                let took = server.start().await.context("restarting the server")?;
                done.restart_ms.push(took.as_millis() as u64);
                eprintln!(
                    "[{t:6.2}s] kill -9 of server {node}, down {} ms, restarted in {} ms",
                    down.as_millis(),
                    took.as_millis()
                );
            }
            Fault::Cut { pick } => {
                let open = proxy.open();
                if proxy.cut(pick) {
                    done.cuts += 1;
                    eprintln!("[{t:6.2}s] cut connection {} of {open}", pick % open.max(1));
                } else {
                    done.cuts_missed += 1;
                }
            }
            Fault::RedisOutage { pause } => {
                let Some(redis) = redis_proxy else {
                    continue;
                };
                redis.set_down(true);
                done.redis_outages += 1;
                tokio::time::sleep(pause).await;
                redis.set_down(false);
                eprintln!(
                    "[{t:6.2}s] the store unreachable for {} ms (every connection cut, new ones refused)",
                    pause.as_millis()
                );
            }
            Fault::Stall { pick, pause } => {
                let open = proxy.open();
                if proxy.stall(pick, pause) {
                    done.stalls += 1;
                    eprintln!(
                        "[{t:6.2}s] stall connection {} of {open} for {} ms",
                        pick % open.max(1),
                        pause.as_millis()
                    );
                } else {
                    done.stalls_missed += 1;
                }
            }
        }
    }
    Ok(done)
}

/// Runs the benchmark.
pub async fn run(args: FaultsArgs) -> anyhow::Result<Outcome> {
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.deadline_secs);
    let bin = server_bin(&args)?;
    let script = node_script(&args)?;
    let dir = temp_dir()?;
    let store = match &args.store {
        Some(url) if url.starts_with("redis://") => {
            anyhow::ensure!(args.nodes > 0, "--nodes must be at least 1");
            StoreKind::Redis {
                url: url.clone(),
                prefix: format!(
                    "tether-bench:{}:{:016x}",
                    std::process::id(),
                    rand::random::<u64>()
                ),
            }
        }
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            anyhow::ensure!(args.nodes > 0, "--nodes must be at least 1");
            anyhow::ensure!(
                !url.contains('?'),
                "--store {url}: give the database URL without parameters (the run uses a schema of its own)"
            );
            StoreKind::Postgres {
                url: url.clone(),
                schema: format!(
                    "bench_{}_{:012x}",
                    std::process::id(),
                    rand::random::<u64>() & 0xffff_ffff_ffff
                ),
            }
        }
        Some(other) => anyhow::bail!(
            "--store wants a redis:// or postgres:// URL (got {other}); the default is a temporary SQLite file"
        ),
        None => StoreKind::Sqlite(dir.join("faults.db")),
    };
    // SIGINT/SIGTERM end the run early: its servers and Node processes are
    // killed as they are dropped, and the Redis keys deleted below.
    let result = tokio::select! {
        result = run_in(&args, &bin, &script, &store, &dir, started, deadline) => result,
        signal = interrupted() => Err(anyhow::anyhow!("interrupted by {signal}")),
    };
    if let StoreKind::Redis { url, prefix } = &store {
        // Tried again once: a signal that ended the run may interrupt the
        // first connection (EINTR).
        let deleted =
            store::delete_prefix(url, prefix).or_else(|_| store::delete_prefix(url, prefix));
        match deleted {
            Ok(n) => eprintln!("deleted {n} Redis keys under {prefix}:"),
            Err(e) => eprintln!("could not delete the Redis keys under {prefix}: {e}"),
        }
    }
    if let StoreKind::Postgres { url, schema } = &store {
        match store::drop_schema(url, schema).await {
            Ok(()) => eprintln!("dropped the PostgreSQL schema {schema}"),
            Err(e) => eprintln!("could not drop the PostgreSQL schema {schema}: {e}"),
        }
    }
    if args.keep || result.is_err() {
        eprintln!("store and server log kept in {}", dir.display());
    } else {
        let _ = std::fs::remove_dir_all(&dir);
    }
    result
}

async fn run_in(
    args: &FaultsArgs,
    bin: &Path,
    script: &Path,
    store: &StoreKind,
    dir: &Path,
    started: Instant,
    deadline: Instant,
) -> anyhow::Result<Outcome> {
    // The buffer may not be smaller than the largest message: both small.
    let mut extra = vec![
        "--max-buffer".to_owned(),
        args.max_buffer.to_string(),
        "--max-payload".to_owned(),
        args.max_buffer.min(1_000_000).to_string(),
    ];
    extra.extend(args.server_arg.iter().cloned());
    let mut redis_proxy = None;
    let (location, nodes) = match store {
        StoreKind::Sqlite(path) => (path.to_string_lossy().into_owned(), 1),
        StoreKind::Redis { url, prefix } => {
            extra.extend(["--redis-prefix".to_owned(), prefix.clone()]);
            // The servers reach Redis through a proxy (for the outages).
            let (redis_addr, path) = redis_address(url)?;
            let proxy = Proxy::start(vec![redis_addr], Shape::default())
                .await
                .context("starting the Redis proxy")?;
            let proxied = format!("redis://{}{path}", proxy.addr());
            redis_proxy = Some(Arc::new(proxy));
            (proxied, args.nodes)
        }
        StoreKind::Postgres { url, schema } => {
            // The servers reach PostgreSQL through a proxy (for the outages).
            let (user, addr, database) = postgres_address(url)?;
            let proxy = Proxy::start(vec![addr], Shape::default())
                .await
                .context("starting the PostgreSQL proxy")?;
            let proxied = format!(
                "postgres://{user}{}{database}?schema={schema}",
                proxy.addr()
            );
            redis_proxy = Some(Arc::new(proxy));
            (proxied, args.nodes)
        }
    };
    let mut servers = Vec::new();
    let mut upstreams = Vec::new();
    for node in 0..nodes {
        let port = free_port()?;
        let log = dir.join(format!("server-{node}.log"));
        let mut server = Server::new(bin, port, &location, &extra, &log);
        server
            .start()
            .await
            .with_context(|| format!("starting server {node}"))?;
        servers.push(server);
        upstreams.push(std::net::SocketAddr::from(([127, 0, 0, 1], port)));
    }
    let proxy = Arc::new(
        Proxy::start(upstreams.clone(), Shape::default())
            .await
            .context("starting the proxy")?,
    );
    // The slow subscribers' own proxy: a small receive buffer towards the
    // server and a bounded rate, so that the server's buffer for them fills.
    let slow_proxy = Proxy::start(
        upstreams.clone(),
        Shape {
            rate: Some(args.slow_rate),
            upstream_recv_buffer: Some(4096),
        },
    )
    .await
    .context("starting the slow proxy")?;
    let window = Duration::from_secs(args.window_secs);
    let pace = Duration::from_millis(
        args.pace_ms
            .unwrap_or_else(|| window.as_millis() as u64 / args.messages.max(1)),
    );
    let common = Common {
        url: format!("http://{}", proxy.addr()),
        ack_timeout: Duration::from_millis(args.ack_timeout_ms),
        deadline,
        node_script: script.to_owned(),
        node: args.node.clone(),
        node_transports: args.node_transports.clone(),
        rust_transports: clients::parse_transports(&args.rust_transports)
            .map_err(|e| anyhow::anyhow!("--rust-transports: {e}"))?,
    };

    // The cast: subscribers first (they must see every message), then publishers.
    let mut roles = Vec::new();
    let slow_url = format!("http://{}", slow_proxy.addr());
    let mut add = |name: String, lib: Lib, publish: Option<u64>, slow: u64| {
        let who = roles.len();
        roles.push(Role {
            who,
            name,
            lib,
            publish,
            via: (slow > 0).then(|| slow_url.clone()),
            pace,
            slow: Duration::from_millis(slow),
            pad: usize::from(args.payload_bytes),
        });
    };
    for i in 0..args.rust_subscribers {
        add(format!("rust-sub{i}"), Lib::Rust, None, 0);
    }
    for i in 0..args.node_subscribers {
        add(format!("node-sub{i}"), Lib::Node, None, 0);
    }
    for i in 0..args.slow_subscribers {
        add(format!("slow-node-sub{i}"), Lib::Node, None, args.slow_ms);
    }
    for i in 0..args.rust_publishers {
        add(format!("r{i}"), Lib::Rust, Some(args.messages), 0);
    }
    for i in 0..args.node_publishers {
        add(format!("n{i}"), Lib::Node, Some(args.messages), 0);
    }
    let subs: Vec<usize> = roles
        .iter()
        .filter(|r| r.publish.is_none())
        .map(|r| r.who)
        .collect();
    let pubs: Vec<usize> = roles
        .iter()
        .filter(|r| r.publish.is_some())
        .map(|r| r.who)
        .collect();

    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut tally = Tally::default();
    let mut running: Vec<Running> = Vec::new();
    for &who in &subs {
        running.push(clients::start(roles[who].clone(), &common, tx.clone())?);
    }
    let all_subs_connected =
        pump_until(&mut rx, &mut tally, &roles, Duration::from_secs(30), |t| {
            subs.iter()
                .all(|w| t.connected.contains(w) || t.ended.contains(w))
        })
        .await;
    anyhow::ensure!(
        all_subs_connected && subs.iter().all(|w| !tally.ended.contains(w)),
        "subscribers did not connect within 30 s: {:?}",
        tally.errors
    );
    eprintln!(
        "{} server(s) on {upstreams:?} ({location}), proxy on {}, {} subscribers connected; publishing {} x {} messages",
        servers.len(),
        proxy.addr(),
        subs.len(),
        pubs.len(),
        args.messages
    );

    // Publishers, and the faults meanwhile.
    let publish_start = Instant::now();
    for &who in &pubs {
        running.push(clients::start(roles[who].clone(), &common, tx.clone())?);
    }
    let schedule = schedule::draw(&Plan {
        seed: args.seed,
        window,
        kills: args.kills,
        cuts: args.cuts,
        stalls: args.stalls,
        max_down: Duration::from_millis(args.max_down_ms),
        max_stall: Duration::from_millis(args.max_stall_ms),
        redis_outages: if redis_proxy.is_some() {
            args.redis_outages
        } else {
            0
        },
        max_outage: Duration::from_millis(args.max_redis_outage_ms),
    });
    let injector = {
        let proxy = proxy.clone();
        let redis_proxy = redis_proxy.clone();
        tokio::spawn(async move {
            let injected = inject(
                schedule,
                &mut servers,
                &proxy,
                redis_proxy.as_deref(),
                publish_start,
                deadline,
            )
            .await;
            (servers, injected)
        })
    };
    let budget = deadline.saturating_duration_since(Instant::now());
    let published = pump_until(&mut rx, &mut tally, &roles, budget, |t| {
        pubs.iter()
            .all(|w| t.done.contains(w) || t.ended.contains(w))
    })
    .await;
    let publish_secs = publish_start.elapsed().as_secs_f64();
    // The injector stops by itself (its schedule ends before the window does).
    let (mut servers, injected) = {
        let wait = deadline.saturating_duration_since(Instant::now()) + Duration::from_secs(35);
        let give_up = tokio::time::sleep(wait);
        tokio::pin!(give_up);
        let mut injector = injector;
        loop {
            tokio::select! {
                joined = &mut injector => break joined.context("the fault injector panicked")?,
                ev = rx.recv() => match ev {
                    Some(ev) => tally.apply(&roles, ev),
                    None => anyhow::bail!("observation channel closed"),
                },
                () = &mut give_up => anyhow::bail!("the fault injector did not finish"),
            }
        }
    };
    let injected = injected?;

    // Every subscriber must receive every acknowledged message.
    let want = tally.acked.len();
    let drain = Duration::from_secs(args.drain_secs)
        .min(deadline.saturating_duration_since(Instant::now()));
    let drained = pump_until(&mut rx, &mut tally, &roles, drain, |t| {
        subs.iter()
            .all(|w| t.unique.get(w).map_or(0, HashSet::len) >= want)
    })
    .await;
    // Late duplicates, if any, show up now.
    pump_until(
        &mut rx,
        &mut tally,
        &roles,
        Duration::from_millis(args.settle_ms),
        |_| false,
    )
    .await;

    tally.stopping = true;
    // Where each subscriber stands before being stopped.
    let standing: Vec<report::Standing> = subs
        .iter()
        .map(|&who| report::Standing {
            name: roles[who].name.clone(),
            connected: tally.online.get(&who).copied().unwrap_or(false),
            last_offset: tally
                .received
                .get(&who)
                .and_then(|r| r.iter().map(|(_, o)| *o).max()),
        })
        .collect();
    for client in running {
        client.stop().await;
    }
    drop(tx);
    while let Ok(ev) = rx.try_recv() {
        tally.apply(&roles, ev);
    }
    let mut counters: BTreeMap<String, f64> = BTreeMap::new();
    let mut restarts = 0;
    for server in &mut servers {
        server.kill().await;
        restarts += server.starts().saturating_sub(1);
        for (name, value) in server.metrics() {
            *counters.entry(name.clone()).or_default() += value;
        }
    }
    let stored = match store {
        StoreKind::Sqlite(path) => server::stored_messages(bin, path)
            .await
            .context("reading the store")?,
        StoreKind::Redis { url, prefix } => store::redis_messages(url, prefix)
            .await
            .context("reading the store")?,
        StoreKind::Postgres { url, schema } => {
            store::postgres_messages(&format!("{url}?schema={schema}"))
                .await
                .context("reading the store")?
        }
    };

    if let (Some(sabotage), Some(first)) = (args.sabotage, subs.first()) {
        sabotage.apply(tally.received.entry(*first).or_default());
    }
    let observed = Observed {
        sent: tally.sent.clone(),
        acked: tally.acked.clone(),
        stored,
        subscribers: subs
            .iter()
            .map(|&who| SubscriberLog {
                name: roles[who].name.clone(),
                kind: if roles[who].slow.is_zero() {
                    roles[who].lib.name().to_owned()
                } else {
                    format!("{} (slow)", roles[who].lib.name())
                },
                received: tally.received.remove(&who).unwrap_or_default(),
            })
            .collect(),
    };
    let verdict = check::check(&observed);
    let expected_sent = args.messages * pubs.len() as u64;
    let complete =
        published && drained && verdict.sent == expected_sent && verdict.acked == expected_sent;
    let stats = proxy.stats();
    let slow_stats = slow_proxy.stats();
    let report = Report::new(
        args,
        verdict,
        complete,
        started.elapsed(),
        publish_secs,
        tally.duplicate_acks,
        tally.retries,
        FaultCounts {
            kills: injected.kills,
            restarts,
            restart_ms: injected.restart_ms,
            cuts: injected.cuts,
            cuts_missed: injected.cuts_missed,
            stalls: injected.stalls,
            stalls_missed: injected.stalls_missed,
            redis_outages: injected.redis_outages,
            proxy_connections: stats.accepted.load(Ordering::Relaxed)
                + slow_stats.accepted.load(Ordering::Relaxed),
            proxy_refused: stats.refused.load(Ordering::Relaxed)
                + slow_stats.refused.load(Ordering::Relaxed),
        },
        tally.recoveries,
        counters,
        standing,
        std::mem::take(&mut tally.disconnect_reasons),
        std::mem::take(&mut tally.connect_errors),
        tally.malformed,
        tally.errors,
    );
    let code = if !report.ok {
        1
    } else if !complete {
        2
    } else {
        0
    };
    Ok(Outcome { report, code })
}
