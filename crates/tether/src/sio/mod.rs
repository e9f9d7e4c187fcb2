//! The Socket.IO v5 server: namespaces, sockets, rooms, acknowledgements.

mod args;
mod builder;
mod conn;
pub mod extract;
mod history;
mod inbox;
mod monitor;
mod namespace;
mod node;
mod recovery;
mod socket;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Weak};

use parking_lot::RwLock;

pub use args::{Args, ArgsExt, IntoArgs};
pub use builder::Builder;
pub use history::{History, HistoryEntry, HistoryError, MAX_HISTORY_PAGE};
pub use inbox::Inbox;
pub use namespace::BroadcastOperator;
pub use socket::{AckSender, Event, Handshake, Socket, SocketChange};

use crate::delivery::{Publisher, Recovery};
use crate::engine::{ConnHandler, Engine, EngineConn, EngineHandler};
use crate::error::{ConnectError, DisconnectReason, EmitError};
use crate::store::{MemoryStore, Retention, Store};
use crate::Config;
use namespace::{DeliveryCtx, Namespace};

pub(crate) type BoxFuture = Pin<Box<dyn Future<Output = ()> + Send>>;
pub(crate) type EventHandler = Arc<dyn Fn(Socket, Event) -> BoxFuture + Send + Sync>;
pub(crate) type ConnectHandler = Arc<dyn Fn(Socket) -> BoxFuture + Send + Sync>;
pub(crate) type DisconnectHandler =
    Arc<dyn Fn(Socket, DisconnectReason) -> BoxFuture + Send + Sync>;
pub(crate) type Middleware = Arc<
    dyn Fn(Socket) -> Pin<Box<dyn Future<Output = Result<(), ConnectError>> + Send>> + Send + Sync,
>;
type Predicate = Arc<dyn Fn(&str) -> bool + Send + Sync>;

struct DynNamespace {
    predicate: Predicate,
    on_connect: ConnectHandler,
    middlewares: Arc<RwLock<Vec<Middleware>>>,
    catch_up_field: Arc<RwLock<Option<namespace::CatchUpFields>>>,
}

pub(crate) struct IoInner {
    pub(crate) config: Config,
    engine: Arc<Engine>,
    pub(crate) delivery: Option<Arc<DeliveryCtx>>,
    pub(crate) users: Arc<inbox::Users>,
    namespaces: RwLock<HashMap<String, Arc<Namespace>>>,
    dynamic: RwLock<Vec<DynNamespace>>,
    /// Shared state for handlers ([`extract::State`]).
    states: RwLock<http::Extensions>,
    /// Told of every socket change ([`SocketIo::monitor`]).
    pub(crate) monitors: monitor::Monitors,
}

impl IoInner {
    pub(crate) fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// The namespace a CONNECT addresses: a registered one, or a new child of
    /// a matching dynamic namespace.
    pub(crate) fn namespace_for(&self, name: &str) -> Option<Arc<Namespace>> {
        if let Some(ns) = self.namespaces.read().get(name) {
            return Some(ns.clone());
        }
        let dynamic = self.dynamic.read();
        let parent = dynamic.iter().find(|d| (d.predicate)(name))?;
        let ns = Arc::new(Namespace::new(
            name.to_owned(),
            self.config.parser,
            self.config.ack_timeout,
            parent.on_connect.clone(),
            parent.middlewares.read().clone(),
            self.delivery.clone(),
        ));
        *ns.catch_up_field.write() = parent.catch_up_field.read().clone();
        Some(
            self.namespaces
                .write()
                .entry(name.to_owned())
                .or_insert(ns)
                .clone(),
        )
    }
}

struct Handler(Weak<IoInner>);

impl EngineHandler for Handler {
    fn on_open(&self, conn: &Arc<EngineConn>) -> Arc<dyn ConnHandler> {
        match self.0.upgrade() {
            Some(io) => Arc::new(conn::SioConn::new(io, conn.clone())),
            None => Arc::new(Gone),
        }
    }
}

/// Handler of connections that outlive their server.
struct Gone;

impl ConnHandler for Gone {
    fn on_message(&self, _: tether_proto::engine::Frame) {}
    fn on_close(&self, _: tether_proto::engine::CloseReason) {}
}

/// A Socket.IO server. Cheap to clone; every clone is the same server.
///
/// ```no_run
/// use tether::{Config, Event, Socket, SocketIo};
///
/// # async fn run() -> std::io::Result<()> {
/// let io = SocketIo::new(Config::default());
/// io.ns("/", |socket: Socket| async move {
///     socket.on("chat message", |socket: Socket, ev: Event| async move {
///         let text: String = ev.args().get(0).unwrap_or_default();
///         let _ = socket.broadcast().emit("chat message", (text,));
///     });
/// });
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
/// io.serve(listener).await
/// # }
/// ```
#[derive(Clone)]
pub struct SocketIo {
    inner: Arc<IoInner>,
}

impl std::fmt::Debug for SocketIo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SocketIo")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

/// Handle on a namespace, to add middlewares and options.
#[derive(Clone)]
pub struct NamespaceRef {
    middlewares: NsMiddlewares,
}

#[derive(Clone)]
enum NsMiddlewares {
    Static(Arc<Namespace>),
    Dynamic(
        Arc<RwLock<Vec<Middleware>>>,
        Arc<RwLock<Option<namespace::CatchUpFields>>>,
    ),
}

impl NamespaceRef {
    /// Adds a middleware, run in order for every CONNECT before the socket is
    /// accepted; an `Err` refuses the client with CONNECT_ERROR.
    pub fn with<F, Fut>(self, middleware: F) -> Self
    where
        F: Fn(Socket) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), ConnectError>> + Send + 'static,
    {
        let middleware: Middleware = Arc::new(move |s| Box::pin(middleware(s)));
        match &self.middlewares {
            NsMiddlewares::Static(ns) => ns.middlewares.write().push(middleware),
            NsMiddlewares::Dynamic(list, _) => list.write().push(middleware),
        }
        self
    }

    /// A client that connects without recovering a session, with a position
    /// in auth field `field` (the chat tutorial's `serverOffset`), first gets
    /// every stored event of its rooms after that position, then live ones,
    /// with no gap and no duplicate at the seam. Needs a store.
    ///
    /// A position beyond the store's last one comes from another life of the
    /// store (it was reset): such a client catches up from the start (0).
    pub fn catch_up_from_auth(self, field: impl Into<String>) -> Self {
        self.set_catch_up(namespace::CatchUpFields {
            offset: field.into(),
            epoch: None,
        })
    }

    /// [`NamespaceRef::catch_up_from_auth`], with the client's position
    /// checked against the store's epoch too: a client whose auth field
    /// `epoch_field` names another epoch than the store's (its position
    /// comes from another life of the store) catches up from the start (0).
    /// Clients without `epoch_field` are taken as of the current epoch. A
    /// client learns the epoch from the recovery offset of any stored event
    /// (`t.<epoch>.<position>`, the last argument).
    pub fn catch_up_from_auth_with_epoch(
        self,
        field: impl Into<String>,
        epoch_field: impl Into<String>,
    ) -> Self {
        self.set_catch_up(namespace::CatchUpFields {
            offset: field.into(),
            epoch: Some(epoch_field.into()),
        })
    }

    fn set_catch_up(self, fields: namespace::CatchUpFields) -> Self {
        let field = Some(fields);
        match &self.middlewares {
            NsMiddlewares::Static(ns) => *ns.catch_up_field.write() = field,
            NsMiddlewares::Dynamic(_, slot) => *slot.write() = field,
        }
        self
    }
}

impl SocketIo {
    /// Composes a server: settings, store, cluster, handshake filter, state
    /// (see [`Builder`]).
    pub fn builder() -> Builder {
        Builder::new()
    }

    /// A server with `config`.
    ///
    /// With `config.recovery` set, sessions and events are kept in memory
    /// (lost with the process); use [`SocketIo::with_store`] for a durable store.
    /// Must be called within a tokio runtime.
    pub fn new(config: Config) -> Self {
        Self::with_engine_options(config, |_| {})
    }

    /// A server with connection state recovery and guaranteed delivery on
    /// `store` (`config.recovery`, or the default recovery settings).
    /// Must be called within a tokio runtime.
    pub fn with_store(mut config: Config, store: Arc<dyn Store>) -> Self {
        config.recovery.get_or_insert_with(Recovery::default);
        Self::build(config, Some(store), |_| {})
    }

    /// A node of a cluster: [`SocketIo::with_store`] on the shared `store`,
    /// plus cluster-wide `fetch_sockets`, `sockets_join`/`sockets_leave`,
    /// `disconnect_sockets`, broadcasts with acks and non-stored emits across
    /// every node sharing it (see [`crate::cluster`]). Must be called within a
    /// tokio runtime.
    ///
    /// With the Redis store (feature `redis`):
    ///
    /// ```no_run
    /// # #[cfg(feature = "redis")]
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::sync::Arc;
    /// use tether::{cluster::ClusterOptions, store::RedisStore, Config, SocketIo};
    ///
    /// let store = Arc::new(RedisStore::connect("redis://127.0.0.1:6379/", "tether")?);
    /// let io = SocketIo::with_cluster(Config::default(), store, ClusterOptions::default())?;
    /// let everywhere = io.to("lobby").fetch_sockets().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn with_cluster<S: crate::cluster::ClusterStore>(
        config: Config,
        store: Arc<S>,
        options: crate::cluster::ClusterOptions,
    ) -> Result<Self, crate::cluster::ClusterError> {
        Self::builder()
            .config(config)
            .cluster(store, options)
            .build()
    }

    /// This node's place in its cluster ([`SocketIo::with_cluster`]).
    pub fn cluster(&self) -> Option<crate::cluster::Cluster> {
        self.inner.delivery.as_ref()?.cluster.get().cloned()
    }

    /// A server with `config`, letting `tune` adjust the Engine.IO options
    /// (an `allow_request` hook, say).
    pub fn with_engine_options(
        config: Config,
        tune: impl FnOnce(&mut crate::engine::EngineOptions),
    ) -> Self {
        let store: Option<Arc<dyn Store>> = config
            .recovery
            .is_some()
            .then(|| Arc::new(MemoryStore::new()) as Arc<dyn Store>);
        Self::build(config, store, tune)
    }

    fn build(
        config: Config,
        store: Option<Arc<dyn Store>>,
        tune: impl FnOnce(&mut crate::engine::EngineOptions),
    ) -> Self {
        crate::metrics::describe();
        // A shared store (Redis) brings every node's entries back through its
        // feed, in one order for all nodes; a local one is fanned out directly.
        let mut feed = None;
        let delivery = store.map(|store| {
            let recovery = config.recovery.clone().unwrap_or_default();
            spawn_retention(
                store.clone(),
                config.retention,
                config.stream_retention.clone(),
                recovery.max_disconnection,
            );
            feed = store.shared_feed().is_some().then(|| store.clone());
            Arc::new(DeliveryCtx {
                publisher: Publisher::start(store.clone(), feed.is_none()),
                store,
                recovery,
                cluster: std::sync::OnceLock::new(),
            })
        });
        let inner = Arc::new_cyclic(|weak: &Weak<IoInner>| {
            let mut opts = config.engine_options();
            tune(&mut opts);
            let engine = Engine::new(opts, Arc::new(Handler(weak.clone())));
            IoInner {
                config,
                engine,
                delivery,
                users: Arc::default(),
                namespaces: RwLock::new(HashMap::new()),
                dynamic: RwLock::new(Vec::new()),
                states: RwLock::new(http::Extensions::new()),
                monitors: monitor::Monitors::default(),
            }
        });
        if let Some(store) = feed {
            tokio::spawn(run_feed(Arc::downgrade(&inner), store));
        }
        Self { inner }
    }

    /// Adds state that handlers take with [`extract::State`] (one value per
    /// type; a second of the same type replaces the first).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let io = tether::SocketIo::new(tether::Config::default()).with_state(42u32);
    /// assert_eq!(io.state::<u32>(), Some(42));
    /// # }
    /// ```
    pub fn with_state<T: Clone + Send + Sync + 'static>(self, state: T) -> Self {
        self.inner.states.write().insert(state);
        self
    }

    /// The state of type `T` given with [`SocketIo::with_state`].
    pub fn state<T: Clone + Send + Sync + 'static>(&self) -> Option<T> {
        self.inner.states.read().get::<T>().cloned()
    }

    /// The server's settings.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The Engine.IO layer.
    pub fn engine(&self) -> &Arc<Engine> {
        &self.inner.engine
    }

    /// Registers namespace `name`; `handler` runs for every socket that
    /// connects to it. Events that arrive while it runs are dispatched after
    /// it returns, so handlers registered in it see every event.
    ///
    /// The handler takes extractors ([`extract::FromConnect`]): the
    /// [`Socket`], the CONNECT auth as [`extract::Data`] or
    /// [`extract::TryData`], [`extract::State`], the [`SocketIo`]. When one
    /// refuses, the handler is not called and the socket is disconnected.
    ///
    /// ```no_run
    /// use tether::extract::{Data, State};
    /// use tether::{Config, Socket, SocketIo};
    ///
    /// #[derive(serde::Deserialize)]
    /// struct Auth {
    ///     token: String,
    /// }
    ///
    /// let io = SocketIo::new(Config::default()).with_state(String::from("welcome"));
    /// io.ns("/", |socket: Socket| async move {
    ///     let _ = socket.emit("hello", ());
    /// });
    /// io.ns(
    ///     "/admin",
    ///     |socket: Socket, Data(auth): Data<Auth>, State(motd): State<String>| async move {
    ///         let _ = socket.emit("motd", (motd, auth.token.len()));
    ///     },
    /// );
    /// ```
    pub fn ns<H, T>(&self, name: impl Into<String>, handler: H) -> NamespaceRef
    where
        H: extract::ConnectHandler<T>,
    {
        let name = name.into();
        let on_connect = extract::boxed_connect(handler);
        let ns = Arc::new(Namespace::new(
            name.clone(),
            self.inner.config.parser,
            self.inner.config.ack_timeout,
            on_connect,
            Vec::new(),
            self.inner.delivery.clone(),
        ));
        self.inner.namespaces.write().insert(name, ns.clone());
        NamespaceRef {
            middlewares: NsMiddlewares::Static(ns),
        }
    }

    /// Registers a dynamic namespace: any name for which `predicate` is true
    /// is created on first connection, with this handler and middlewares.
    pub fn dyn_ns<P, H, T>(&self, predicate: P, handler: H) -> NamespaceRef
    where
        P: Fn(&str) -> bool + Send + Sync + 'static,
        H: extract::ConnectHandler<T>,
    {
        let middlewares = Arc::new(RwLock::new(Vec::new()));
        let catch_up_field = Arc::new(RwLock::new(None));
        self.inner.dynamic.write().push(DynNamespace {
            predicate: Arc::new(predicate),
            on_connect: extract::boxed_connect(handler),
            middlewares: middlewares.clone(),
            catch_up_field: catch_up_field.clone(),
        });
        NamespaceRef {
            middlewares: NsMiddlewares::Dynamic(middlewares, catch_up_field),
        }
    }

    /// Calls `monitor` for every socket of this node that connects, joins or
    /// leaves a room, or disconnects, in every namespace (see
    /// [`SocketChange`]), as it happens: keep it short and non-blocking
    /// (hand the change to a task). For dashboards such as the Socket.IO
    /// Admin UI; every node of a cluster tells its own sockets' changes.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use tether::{Config, SocketChange, SocketIo};
    ///
    /// let io = SocketIo::new(Config::default());
    /// io.monitor(|change: &SocketChange| {
    ///     if let SocketChange::Joined { nsp, id, room } = change {
    ///         println!("{id} joined {room} in {nsp}");
    ///     }
    /// });
    /// # }
    /// ```
    pub fn monitor(&self, monitor: impl Fn(&SocketChange) + Send + Sync + 'static) {
        self.inner.monitors.add(Arc::new(monitor));
    }

    /// The namespaces this node has, with how many sockets of this node
    /// each holds, sorted by name (children of dynamic namespaces included
    /// once created).
    pub fn namespaces(&self) -> Vec<(String, usize)> {
        let mut list: Vec<(String, usize)> = self
            .inner
            .namespaces
            .read()
            .values()
            .map(|ns| (ns.name().to_owned(), ns.socket_count()))
            .collect();
        list.sort();
        list
    }

    /// A broadcast on namespace `name`, if it exists.
    pub fn of(&self, name: &str) -> Option<BroadcastOperator> {
        let ns = self.inner.namespaces.read().get(name).cloned()?;
        Some(BroadcastOperator::new(ns))
    }

    fn main_ns(&self) -> BroadcastOperator {
        self.of("/").unwrap_or_else(|| {
            self.ns("/", |_: Socket| async {});
            self.of("/").expect("just registered")
        })
    }

    /// A broadcast to `room` of the main namespace.
    pub fn to(&self, room: impl Into<String>) -> BroadcastOperator {
        self.main_ns().to(room)
    }

    /// Sends an event to every socket of the main namespace (see
    /// [`BroadcastOperator::emit`]: with recovery on, a store failure known
    /// when it is called fails it).
    pub fn emit(&self, event: &str, args: impl IntoArgs) -> Result<usize, EmitError> {
        self.main_ns().emit(event, args)
    }

    /// The sockets of the main namespace.
    pub fn sockets(&self) -> Vec<Socket> {
        self.main_ns().sockets()
    }

    /// The inbox of `user` (needs a store: `None` without one).
    pub fn inbox(&self, user: impl Into<String>) -> Option<Inbox> {
        let delivery = self.inner.delivery.as_ref()?;
        Some(Inbox {
            store: delivery.store.clone(),
            users: self.inner.users.clone(),
            user: user.into(),
        })
    }

    /// The store, when connection state recovery is on.
    pub fn store(&self) -> Option<Arc<dyn Store>> {
        self.inner.delivery.as_ref().map(|d| d.store.clone())
    }

    /// Stops taking new work: handshakes answer 503 "Server shutting down"
    /// (kept-alive HTTP connections included), and CONNECT and EVENT packets
    /// from clients are not taken (not answered: a client's ack times out
    /// and it sends again, to the next server). What was taken before goes
    /// on: handlers finish, acks from clients still resolve, events still go
    /// out. The first step of [`SocketIo::shutdown`], which calls it.
    pub fn stop_accepting(&self) {
        self.inner.engine.stop_accepting();
    }

    /// True once [`SocketIo::stop_accepting`] (or [`SocketIo::shutdown`])
    /// was called: a health check should then answer "unavailable".
    pub fn is_shutting_down(&self) -> bool {
        self.inner.engine.is_draining()
    }

    /// Graceful shutdown: stops taking new work ([`SocketIo::stop_accepting`]),
    /// waits until every event published so far is stored and handed to its
    /// sockets, then closes every transport. Sessions stay in the store, so
    /// clients recover on the next server.
    pub async fn shutdown(&self) {
        self.stop_accepting();
        if let Some(delivery) = &self.inner.delivery {
            delivery.publisher.flush().await;
        }
        if let Some(cluster) = self.cluster() {
            if let Err(e) = cluster.leave().await {
                tracing::warn!(error = %e, "leaving the cluster failed");
            }
        }
        let limit = self
            .inner
            .config
            .ping_timeout
            .min(std::time::Duration::from_secs(3));
        self.inner.engine.close_all_gracefully(limit).await;
        self.inner
            .engine
            .close_all(tether_proto::engine::CloseReason::ForcedClose);
    }

    /// Disconnects every client (server shutdown): sockets see
    /// "server shutting down"... as a transport close on the client side.
    pub fn close(&self) {
        self.inner
            .engine
            .close_all(tether_proto::engine::CloseReason::ForcedClose);
    }
}

/// Trims stream entries past `retention` (`streams` by their own) and
/// sessions past the recovery window, in the background, every 30 seconds.
fn spawn_retention(
    store: Arc<dyn Store>,
    retention: Retention,
    streams: Vec<crate::store::StreamRetention>,
    window: Option<std::time::Duration>,
) {
    if !streams.is_empty() && !store.supports_stream_retention() {
        tracing::error!(
            "this store does not support per-stream retention: nothing is trimmed \
             until `stream_retention` is emptied"
        );
    }
    let weak = Arc::downgrade(&store);
    drop(store);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(30));
        loop {
            tick.tick().await;
            let Some(store) = weak.upgrade() else { return };
            let before = window.map_or(i64::MIN, |w| {
                crate::store::now_ms()
                    .saturating_sub(i64::try_from(w.as_millis()).unwrap_or(i64::MAX))
            });
            if let Err(e) = store.trim(retention, &streams, before).await {
                tracing::warn!(error = %e, "retention trim failed");
            }
        }
    });
}

/// Fans out what a shared store's feed brings, resuming after the last entry
/// on failure (a Redis blip loses nothing).
async fn run_feed(io: Weak<IoInner>, store: Arc<dyn Store>) {
    use futures_util::StreamExt;
    const MIN_BACKOFF: std::time::Duration = std::time::Duration::from_millis(50);
    const MAX_BACKOFF: std::time::Duration = std::time::Duration::from_secs(2);
    /// How often a quiet feed checks that its server still exists.
    const ALIVE_CHECK: std::time::Duration = std::time::Duration::from_secs(1);
    let mut backoff = MIN_BACKOFF;
    // Start at the store's end (never replay the whole log to every socket):
    // wait for the store rather than guess.
    let mut after = loop {
        match store.bounds().await {
            Ok((last, _)) => break last,
            Err(e) => tracing::warn!(error = %e, "store unavailable: feed waits"),
        }
        if io.strong_count() == 0 {
            return;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    };
    let mut epoch = store.epoch().to_owned();
    loop {
        if store.epoch() != epoch {
            // The store was reset (a Redis that came back empty): positions
            // start over. Every connection of the old life is closed (a
            // transport close: clients reconnect by themselves and are told
            // "store reset"), and the feed starts from the new life's start.
            tracing::warn!(
                old = %epoch,
                new = %store.epoch(),
                "store reset: closing every connection, the feed starts over"
            );
            epoch = store.epoch().to_owned();
            after = 0;
            let Some(io) = io.upgrade() else { return };
            io.engine
                .close_all(tether_proto::engine::CloseReason::ForcedClose);
        }
        let Some(mut feed) = store.shared_feed().map(|shared| shared.feed(after)) else {
            return;
        };
        loop {
            let item = tokio::select! {
                item = feed.next() => item,
                () = tokio::time::sleep(ALIVE_CHECK) => {
                    if io.strong_count() == 0 {
                        return;
                    }
                    continue;
                }
            };
            let Some(item) = item else { break };
            let Some(io) = io.upgrade() else { return };
            match item {
                Ok(entry) => {
                    backoff = MIN_BACKOFF;
                    if entry.seq <= after {
                        continue;
                    }
                    after = entry.seq;
                    let ns = io.namespaces.read().get(&entry.entry.target.nsp).cloned();
                    if let Some(ns) = ns {
                        ns.fan_out(&entry);
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, after, "store feed failed: resuming");
                    break;
                }
            }
        }
        if io.strong_count() == 0 {
            return;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}
