//! [`SocketIo::builder`]: one place to compose a server's settings, store,
//! cluster, handshake filter and shared state.

use std::net::SocketAddr;
use std::sync::Arc;

use super::SocketIo;
use crate::cluster::{ClusterError, ClusterOptions, ClusterStore, Transport};
use crate::delivery::Recovery;
use crate::store::Store;
use crate::Config;

/// Opens the cluster's transport when the server is built (within its
/// runtime).
type TransportSource = Box<dyn FnOnce() -> Result<Arc<dyn Transport>, ClusterError> + Send + Sync>;

/// Builds a [`SocketIo`]: settings, a store for guaranteed delivery, a
/// cluster, a handshake filter and shared state, in any combination.
///
/// ```no_run
/// use std::sync::Arc;
/// use tether::store::MemoryStore;
/// use tether::{Config, SocketIo};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let io = SocketIo::builder()
///     .config(Config::default())
///     .store(Arc::new(MemoryStore::new()))
///     .allow_request(|parts, _addr| match parts.headers.get("x-token") {
///         Some(_) => Ok(()),
///         None => Err("no token".into()),
///     })
///     .with_state(String::from("shared"))
///     .build()?;
/// # let _ = io;
/// # Ok(()) }
/// ```
#[must_use]
pub struct Builder {
    config: Config,
    store: Option<Arc<dyn Store>>,
    cluster: Option<(TransportSource, ClusterOptions)>,
    allow_request: Option<crate::engine::AllowRequest>,
    client_bundle: Option<bytes::Bytes>,
    states: http::Extensions,
}

impl std::fmt::Debug for Builder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Builder")
            .field("config", &self.config)
            .field("store", &self.store.is_some())
            .field("cluster", &self.cluster.is_some())
            .field("allow_request", &self.allow_request.is_some())
            .finish_non_exhaustive()
    }
}

impl Builder {
    pub(super) fn new() -> Self {
        Self {
            config: Config::default(),
            store: None,
            cluster: None,
            allow_request: None,
            client_bundle: None,
            states: http::Extensions::new(),
        }
    }

    /// The server's settings (default: [`Config::default`]).
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// Guaranteed delivery and connection state recovery on `store` (with
    /// the default [`Recovery`] settings unless [`Builder::recovery`] says
    /// otherwise).
    pub fn store(mut self, store: Arc<dyn Store>) -> Self {
        self.store = Some(store);
        self
    }

    /// Connection state recovery settings. Without a store, sessions and
    /// events are kept in memory (lost with the process).
    pub fn recovery(mut self, recovery: Recovery) -> Self {
        self.config.recovery = Some(recovery);
        self
    }

    /// A node of the cluster of every server sharing `store` (see
    /// [`SocketIo::cluster`]), over a transport on the store's own backend
    /// (`store::RedisStore`, feature `redis`: Redis pub/sub); the store is also the
    /// delivery store.
    pub fn cluster<S: ClusterStore>(mut self, store: Arc<S>, options: ClusterOptions) -> Self {
        self.store = Some(store.clone());
        let source: TransportSource = Box::new(move || store.cluster_transport());
        self.cluster = Some((source, options));
        self
    }

    /// A node of the cluster of every server on `transport` (see
    /// [`crate::cluster::Transport`]), with `store` as the delivery store.
    /// The store must be shared by every node (its feed brings them each
    /// other's stored events), as `store::RedisStore` is.
    pub fn cluster_with(
        mut self,
        store: Arc<dyn Store>,
        transport: Arc<dyn Transport>,
        options: ClusterOptions,
    ) -> Self {
        self.store = Some(store);
        let source: TransportSource = Box::new(move || Ok(transport));
        self.cluster = Some((source, options));
        self
    }

    /// A handshake filter: a refusal answers 403 with its reason (Engine.IO
    /// error code 4), as the reference server's `allowRequest`.
    pub fn allow_request<F>(mut self, filter: F) -> Self
    where
        F: Fn(&http::request::Parts, Option<SocketAddr>) -> Result<(), String>
            + Send
            + Sync
            + 'static,
    {
        self.allow_request = Some(Arc::new(filter));
        self
    }

    /// Serves the official client's browser bundle (`socket.io.min.js` of
    /// the npm `socket.io-client`) at `<path>socket.io.js`, as the Node
    /// server does, so a page loads it from its own origin.
    pub fn client_bundle(mut self, js: impl Into<bytes::Bytes>) -> Self {
        self.client_bundle = Some(js.into());
        self
    }

    /// State that handlers take with [`crate::extract::State`].
    pub fn with_state<T: Clone + Send + Sync + 'static>(mut self, state: T) -> Self {
        self.states.insert(state);
        self
    }

    /// The server. Must be called within a tokio runtime; fails only when
    /// joining the cluster does.
    pub fn build(self) -> Result<SocketIo, ClusterError> {
        let Builder {
            mut config,
            store,
            cluster,
            allow_request,
            client_bundle,
            states,
        } = self;
        let store = match store {
            Some(store) => {
                config.recovery.get_or_insert_with(Recovery::default);
                Some(store)
            }
            None => config
                .recovery
                .is_some()
                .then(|| Arc::new(crate::store::MemoryStore::new()) as Arc<dyn Store>),
        };
        let io = SocketIo::build(config, store, |opts| {
            if allow_request.is_some() {
                opts.allow_request = allow_request;
            }
            opts.client_bundle = client_bundle;
        });
        io.inner.states.write().extend(states);
        if let Some((transport, options)) = cluster {
            super::namespace::attach_cluster(&io.inner, transport()?, options)?;
        }
        Ok(io)
    }
}
