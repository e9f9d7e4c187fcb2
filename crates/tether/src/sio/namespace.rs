//! Namespaces, their rooms, and broadcasts.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;
use tether_proto::socketio::{Packet, Parser};

use tokio::sync::oneshot;

use super::{ConnectHandler, IoInner, Middleware};
use crate::cluster::{
    Cluster, ClusterError, ClusterOptions, LocalNode, LocalSocket, RemoteSocket, Selection,
    Transport,
};
use crate::delivery::{encode_entry, Publish, Publisher, Recovery};
use crate::error::{AckError, DisconnectReason, EmitError};
use crate::store::{AppendOnce, Entry, NewEntry, Seq, Store, StoreError, Target};
use crate::{Args, IntoArgs, Socket};

#[derive(Default)]
struct Rooms {
    by_room: HashMap<String, HashSet<Arc<str>>>,
    by_socket: HashMap<Arc<str>, HashSet<String>>,
}

/// Store and publisher shared by the namespaces of a server with
/// connection state recovery on.
pub(crate) struct DeliveryCtx {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) publisher: Publisher,
    pub(crate) recovery: Recovery,
    /// The other nodes sharing the store, once joined
    /// ([`crate::SocketIo::with_cluster`]).
    pub(crate) cluster: std::sync::OnceLock<Cluster>,
}

/// The auth fields a new client says where it stands in (see
/// `NamespaceRef::catch_up_from_auth`): its position, and optionally the
/// store epoch that position belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CatchUpFields {
    pub(crate) offset: String,
    pub(crate) epoch: Option<String>,
}

/// A namespace: its handlers, sockets and rooms.
pub(crate) struct Namespace {
    name: String,
    parser: Parser,
    ack_timeout: Duration,
    pub(crate) delivery: Option<Arc<DeliveryCtx>>,
    /// Live socket of each private session id.
    pids: RwLock<HashMap<String, Socket>>,
    /// Auth field holding the offset a new client catches up from (the chat
    /// tutorial's `serverOffset`).
    pub(crate) catch_up_field: RwLock<Option<CatchUpFields>>,
    pub(crate) on_connect: ConnectHandler,
    pub(crate) middlewares: RwLock<Vec<Middleware>>,
    sockets: RwLock<HashMap<Arc<str>, Socket>>,
    rooms: RwLock<Rooms>,
}

impl Namespace {
    pub(crate) fn new(
        name: String,
        parser: Parser,
        ack_timeout: Duration,
        on_connect: ConnectHandler,
        middlewares: Vec<Middleware>,
        delivery: Option<Arc<DeliveryCtx>>,
    ) -> Self {
        Self {
            name,
            parser,
            ack_timeout,
            delivery,
            pids: RwLock::new(HashMap::new()),
            catch_up_field: RwLock::new(None),
            on_connect,
            middlewares: RwLock::new(middlewares),
            sockets: RwLock::new(HashMap::new()),
            rooms: RwLock::new(Rooms::default()),
        }
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// True when emits are stored before delivery (recovery on).
    pub(crate) fn durable(&self) -> bool {
        self.delivery.is_some()
    }

    pub(crate) fn store(&self) -> Option<Arc<dyn Store>> {
        self.delivery.as_ref().map(|d| d.store.clone())
    }

    /// Registers `socket` as the live socket of its session; returns the one it
    /// takes over, if any.
    pub(crate) fn take_pid(&self, pid: &str, socket: &Socket) -> Option<Socket> {
        self.pids.write().insert(pid.to_owned(), socket.clone())
    }

    /// The live socket of session `pid`, if it is on this node.
    pub(crate) fn live_socket(&self, pid: &str) -> Option<Socket> {
        self.pids.read().get(pid).cloned()
    }

    pub(crate) fn owns_pid(&self, pid: &str, socket: &Socket) -> bool {
        self.pids
            .read()
            .get(pid)
            .is_some_and(|s| Arc::ptr_eq(&s.inner, &socket.inner))
    }

    pub(crate) fn forget_pid(&self, pid: &str, socket: &Socket) {
        let mut pids = self.pids.write();
        if pids
            .get(pid)
            .is_some_and(|s| Arc::ptr_eq(&s.inner, &socket.inner))
        {
            pids.remove(pid);
        }
    }

    /// For emits that do not wait for the commit: the failure of the store's
    /// last commit, if it was not seen working since (nothing is sent then).
    pub(crate) fn write_failure(&self) -> Result<(), EmitError> {
        match &self.delivery {
            Some(delivery) => delivery.publisher.write_failure().map_err(EmitError::Store),
            None => Ok(()),
        }
    }

    /// Stores an event for `target`, then fans it out to the sockets it
    /// reaches. Returns the receiver of the store's answer.
    pub(crate) fn publish(
        self: &Arc<Self>,
        target: Target,
        event: &str,
        args: Args,
        key: Option<String>,
    ) -> Result<oneshot::Receiver<Result<AppendOnce, StoreError>>, EmitError> {
        let delivery = self.delivery.as_ref().ok_or(EmitError::NoStore)?;
        let (values, attachments) = args.into_parts();
        let entry = NewEntry {
            target,
            event: event.to_owned(),
            args: tether_proto::socketio::event_array(None, &values)
                .get()
                .to_owned(),
            attachments,
        };
        let (tx, rx) = oneshot::channel();
        let ns = Arc::downgrade(self);
        delivery
            .publisher
            .publish(Publish {
                entry,
                key,
                fan_out: Arc::new(move |entry: &Entry| {
                    if let Some(ns) = ns.upgrade() {
                        ns.fan_out(entry);
                    }
                }),
                reply: Some(tx),
            })
            .map_err(EmitError::Store)?;
        Ok(rx)
    }

    /// Hands a stored entry to every live socket it reaches, encoded once.
    pub(crate) fn fan_out(&self, entry: &Entry) {
        let Some(delivery) = &self.delivery else {
            return;
        };
        let target = &entry.entry.target;
        let sockets = self.select(&target.rooms, &target.except, None);
        if sockets.is_empty() {
            return;
        }
        let out = encode_entry(entry, delivery.store.epoch(), self.parser);
        for socket in sockets {
            socket.offer(&out);
        }
    }

    pub(crate) fn add_socket(&self, socket: &Socket) {
        self.sockets.write().insert(socket.id_arc(), socket.clone());
        self.join(socket, [socket.id().to_owned()]);
    }

    /// Takes `socket` out of the namespace and its rooms; returns the rooms
    /// it left, or `None` when a newer socket of the same session holds its
    /// id now (then nothing changes).
    pub(crate) fn remove_socket(&self, socket: &Socket) -> Option<Vec<String>> {
        let id = socket.id();
        if !self
            .sockets
            .read()
            .get(id)
            .is_some_and(|s| Arc::ptr_eq(&s.inner, &socket.inner))
        {
            return None; // a newer socket of the same session holds this id now
        }
        let left = self.leave(id, self.rooms_of(id));
        self.sockets.write().remove(id);
        Some(left)
    }

    /// Puts `socket` in `rooms`; returns those it was not in yet.
    pub(crate) fn join(
        &self,
        socket: &Socket,
        rooms: impl IntoIterator<Item = String>,
    ) -> Vec<String> {
        let mut index = self.rooms.write();
        let id = socket.id_arc();
        let mut joined = Vec::new();
        for room in rooms {
            index
                .by_room
                .entry(room.clone())
                .or_default()
                .insert(id.clone());
            if index
                .by_socket
                .entry(id.clone())
                .or_default()
                .insert(room.clone())
            {
                joined.push(room);
            }
        }
        joined
    }

    /// Takes socket `id` out of `rooms`; returns those it was in.
    pub(crate) fn leave(&self, id: &str, rooms: impl IntoIterator<Item = String>) -> Vec<String> {
        let mut index = self.rooms.write();
        let mut left = Vec::new();
        for room in rooms {
            if let Some(members) = index.by_room.get_mut(&room) {
                members.remove(id);
                if members.is_empty() {
                    index.by_room.remove(&room);
                }
            }
            if let Some(joined) = index.by_socket.get_mut(id) {
                if joined.remove(&room) {
                    left.push(room);
                }
                if joined.is_empty() {
                    index.by_socket.remove(id);
                }
            }
        }
        left
    }

    /// How many sockets are in this namespace on this node.
    pub(crate) fn socket_count(&self) -> usize {
        self.sockets.read().len()
    }

    pub(crate) fn rooms_of(&self, id: &str) -> Vec<String> {
        let mut rooms: Vec<String> = self
            .rooms
            .read()
            .by_socket
            .get(id)
            .map(|r| r.iter().cloned().collect())
            .unwrap_or_default();
        rooms.sort();
        rooms
    }

    /// The sockets a broadcast reaches.
    fn targets(&self, op: &BroadcastOperator) -> Vec<Socket> {
        self.select(&op.rooms, &op.except, op.except_socket.as_ref())
    }

    /// The sockets in any of `rooms` (every socket when empty), minus those in
    /// `except` rooms and `except_socket`.
    fn select(
        &self,
        rooms: &[String],
        except: &[String],
        except_socket: Option<&Arc<str>>,
    ) -> Vec<Socket> {
        let index = self.rooms.read();
        let sockets = self.sockets.read();
        let excluded: HashSet<&Arc<str>> = except
            .iter()
            .filter_map(|room| index.by_room.get(room))
            .flatten()
            .chain(except_socket)
            .collect();
        let pick = |id: &Arc<str>| -> Option<Socket> {
            if excluded.contains(id) {
                None
            } else {
                sockets.get(id).cloned()
            }
        };
        if rooms.is_empty() {
            sockets.keys().filter_map(pick).collect()
        } else {
            let ids: HashSet<&Arc<str>> = rooms
                .iter()
                .filter_map(|room| index.by_room.get(room))
                .flatten()
                .collect();
            ids.into_iter().filter_map(pick).collect()
        }
    }
}

/// Selects sockets of a namespace, then acts on them: emit (encoded once for
/// all), emit with acknowledgements, fetch, join, leave, disconnect.
///
/// ```no_run
/// # fn demo(io: &tether::SocketIo) {
/// io.to("room1").except("muted").emit("news", ("hello",)).unwrap();
/// # }
/// ```
#[derive(Clone)]
pub struct BroadcastOperator {
    ns: Arc<Namespace>,
    rooms: Vec<String>,
    except: Vec<String>,
    except_socket: Option<Arc<str>>,
    volatile: bool,
    local: bool,
    timeout: Option<Duration>,
}

impl std::fmt::Debug for BroadcastOperator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BroadcastOperator")
            .field("nsp", &self.ns.name())
            .field("rooms", &self.rooms)
            .field("except", &self.except)
            .field("volatile", &self.volatile)
            .field("local", &self.local)
            .finish_non_exhaustive()
    }
}

impl BroadcastOperator {
    pub(crate) fn new(ns: Arc<Namespace>) -> Self {
        Self {
            ns,
            rooms: Vec::new(),
            except: Vec::new(),
            except_socket: None,
            volatile: false,
            local: false,
            timeout: None,
        }
    }

    /// The other nodes this operation reaches too: `None` with `.local()` or
    /// without a cluster (then everything stays on this node, at no cost).
    fn cluster(&self) -> Option<&Cluster> {
        if self.local {
            return None;
        }
        self.ns.delivery.as_ref()?.cluster.get()
    }

    /// This selection, as sent to other nodes.
    fn selection(&self) -> Selection {
        let target = self.target();
        Selection {
            nsp: target.nsp,
            rooms: target.rooms,
            except: target.except,
        }
    }

    pub(crate) fn except_socket(mut self, id: Arc<str>) -> Self {
        self.except_socket = Some(id);
        self
    }

    /// Adds a room to the selection (sockets in any selected room are reached).
    pub fn to(mut self, room: impl Into<String>) -> Self {
        self.rooms.push(room.into());
        self
    }

    /// Same as [`BroadcastOperator::to`].
    pub fn within(self, room: impl Into<String>) -> Self {
        self.to(room)
    }

    /// Excludes the sockets of a room.
    pub fn except(mut self, room: impl Into<String>) -> Self {
        self.except.push(room.into());
        self
    }

    /// Only this node's sockets: with a cluster
    /// ([`crate::SocketIo::with_cluster`]), emits, acknowledgements, fetches,
    /// joins, leaves and disconnections otherwise reach every node. (Stored
    /// events reach every node through the store whatever this says.)
    pub fn local(mut self) -> Self {
        self.local = true;
        self
    }

    /// The event may be dropped for a client whose send buffer is full,
    /// instead of closing its connection.
    pub fn volatile(mut self) -> Self {
        self.volatile = true;
        self
    }

    /// Timeout of [`BroadcastOperator::emit_with_ack`].
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Sends an event to every selected socket. The packet is encoded once and
    /// its bytes shared by every receiver. Returns how many sockets of this
    /// node it was queued for: 0 with recovery on, where the event goes to the
    /// store first and reaches its sockets once committed (see
    /// [`BroadcastOperator::publish`]). With a cluster, an event that is not
    /// stored (volatile) is also sent to the other nodes, without waiting.
    ///
    /// With recovery on, an emit does not wait for its commit, so it fails
    /// with [`EmitError::Store`] (nothing sent) for a store failure it knows
    /// of: the store's last commit failed, and the store was not seen working
    /// since (an append that succeeded, or a health check, which refused
    /// emits start now and then). To know that a given event was stored, use
    /// [`BroadcastOperator::publish`].
    pub fn emit(self, event: &str, args: impl IntoArgs) -> Result<usize, EmitError> {
        let args = args.into_args()?;
        if !self.volatile && self.ns.durable() {
            // Stored first; delivered with its offset once committed.
            self.ns.write_failure()?;
            self.ns.publish(self.target(), event, args, None)?;
            return Ok(0);
        }
        if let Some(cluster) = self.cluster() {
            cluster.forward_emit(&self.selection(), event, &args, self.volatile);
        }
        Ok(self.send_direct(event, args))
    }

    /// Sends an event, not stored, to the selected sockets of this node.
    fn send_direct(&self, event: &str, args: Args) -> usize {
        let (values, attachments) = args.into_parts();
        let packet = Packet::event(self.ns.name(), event, &values, attachments, None);
        let frames = packet.encode(self.ns.parser);
        let mut sent = 0;
        for socket in self.ns.targets(self) {
            if socket
                .inner
                .conn
                .send_frames(&frames, self.volatile)
                .is_ok()
            {
                sent += 1;
            }
        }
        sent
    }

    /// The store target of this selection.
    fn target(&self) -> Target {
        let mut except = self.except.clone();
        if let Some(id) = &self.except_socket {
            except.push(id.to_string());
        }
        Target {
            nsp: self.ns.name().to_owned(),
            rooms: self.rooms.clone(),
            except,
        }
    }

    /// Stores the event, then delivers it to every selected socket, live or
    /// when they come back; resolves with its position once committed.
    /// Needs connection state recovery on (a store).
    ///
    /// The event is queued when this is called, so calls made one after the
    /// other are stored in that order even if their futures are awaited
    /// elsewhere (a handler can ack from a task and take the next event).
    pub fn publish(
        self,
        event: &str,
        args: impl IntoArgs,
    ) -> impl Future<Output = Result<Seq, EmitError>> + Send + 'static {
        let stored = self.publish_keyed(None, event, args);
        async move { stored.await.map(|outcome| outcome.seq()) }
    }

    /// Like [`BroadcastOperator::publish`], at most once per `key` (the
    /// client's message id): a retry gets the first delivery's position back
    /// and is neither stored nor delivered again.
    pub fn publish_once(
        self,
        key: impl Into<String>,
        event: &str,
        args: impl IntoArgs,
    ) -> impl Future<Output = Result<AppendOnce, EmitError>> + Send + 'static {
        self.publish_keyed(Some(key.into()), event, args)
    }

    fn publish_keyed(
        self,
        key: Option<String>,
        event: &str,
        args: impl IntoArgs,
    ) -> impl Future<Output = Result<AppendOnce, EmitError>> + Send + 'static {
        let queued = args
            .into_args()
            .map_err(EmitError::from)
            .and_then(|args| self.ns.publish(self.target(), event, args, key));
        async move {
            match queued?.await {
                Ok(Ok(outcome)) => Ok(outcome),
                Ok(Err(e)) => Err(EmitError::Store(e)),
                Err(_) => Err(EmitError::Store(StoreError::Closed)),
            }
        }
    }

    /// Sends an event to every selected socket and gathers their
    /// acknowledgements (one result per socket, in no particular order).
    ///
    /// With a cluster, the sockets of every node are reached: each node says
    /// how many sockets it sent the event to, then sends their acks, so
    /// exactly one result comes back per receiver. The acks a node still owed
    /// when its heartbeat lapsed are `Err(Disconnected)`; the request never
    /// waits past the ack timeout (plus the cluster's request timeout). A
    /// cluster that cannot reach the other nodes fails the call with
    /// [`EmitError::Cluster`].
    ///
    /// ```no_run
    /// # async fn demo(io: tether::SocketIo) -> Result<(), tether::EmitError> {
    /// let acks = io
    ///     .to("players")
    ///     .timeout(std::time::Duration::from_secs(5))
    ///     .emit_with_ack("ready?", ())
    ///     .await?;
    /// let ready = acks.iter().filter(|a| a.is_ok()).count();
    /// # Ok(())
    /// # }
    /// ```
    pub async fn emit_with_ack(
        self,
        event: &str,
        args: impl IntoArgs,
    ) -> Result<Vec<Result<Args, AckError>>, EmitError> {
        let args = args.into_args()?;
        let timeout = self.timeout.unwrap_or(self.ns.ack_timeout);
        let waits = self.ns.targets(&self).into_iter().map(|socket| {
            let args = args.clone();
            let event = event.to_owned();
            async move { socket.emit_with_ack_timeout(&event, args, timeout).await }
        });
        let local = futures_util::future::join_all(waits);
        let Some(cluster) = self.cluster() else {
            return Ok(local.await);
        };
        let sel = self.selection();
        let remote = cluster.emit_with_ack(&sel, event, &args, timeout);
        let (mut results, remote) = futures_util::future::join(local, remote).await;
        let remote = remote.map_err(EmitError::from)?;
        results.extend(remote);
        Ok(results)
    }

    /// The selected sockets of this node.
    pub fn sockets(&self) -> Vec<Socket> {
        self.ns.targets(self)
    }

    /// Makes every selected socket of this node join `room` (see
    /// [`BroadcastOperator::sockets_join`] for every node).
    pub fn join(&self, room: impl Into<String>) {
        let room = room.into();
        for socket in self.sockets() {
            socket.join(room.clone());
        }
    }

    /// Makes every selected socket of this node leave `room` (see
    /// [`BroadcastOperator::sockets_leave`] for every node).
    pub fn leave(&self, room: &str) {
        for socket in self.sockets() {
            socket.leave(room);
        }
    }

    /// Disconnects every selected socket of this node from the namespace (see
    /// [`BroadcastOperator::disconnect_sockets`] for every node).
    pub fn disconnect(&self) {
        for socket in self.sockets() {
            socket.close(DisconnectReason::ServerNamespaceDisconnect, true);
        }
    }

    /// The selected sockets of every node (of this node only with `.local()`
    /// or without a cluster), connected at the time of the call.
    ///
    /// ```no_run
    /// # async fn demo(io: tether::SocketIo) -> Result<(), tether::cluster::ClusterError> {
    /// let sockets = io.to("lobby").fetch_sockets().await?;
    /// for socket in &sockets {
    ///     println!("{} {:?} on {}", socket.id(), socket.rooms(), socket.node_id());
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn fetch_sockets(&self) -> Result<Vec<RemoteSocket>, ClusterError> {
        let cluster = self.cluster();
        let node = cluster.map(Cluster::node_id);
        let mut sockets: Vec<RemoteSocket> = self
            .sockets()
            .into_iter()
            .filter(Socket::connected)
            .map(|socket| RemoteSocket::local(Arc::new(socket), node))
            .collect();
        if let Some(cluster) = cluster {
            sockets.extend(cluster.fetch(&self.selection()).await?);
        }
        Ok(sockets)
    }

    /// Makes the selected sockets of every node join `room`; resolves once
    /// every live node did, with how many sockets joined.
    pub async fn sockets_join(&self, room: impl Into<String>) -> Result<usize, ClusterError> {
        let room = room.into();
        let here = self.sockets();
        let mut count = here.len();
        for socket in here {
            socket.join(room.clone());
        }
        if let Some(cluster) = self.cluster() {
            count += cluster
                .join_or_leave(&self.selection(), vec![room], false)
                .await?;
        }
        Ok(count)
    }

    /// Makes the selected sockets of every node leave `room`; resolves once
    /// every live node did, with how many sockets it applied to.
    pub async fn sockets_leave(&self, room: &str) -> Result<usize, ClusterError> {
        let here = self.sockets();
        let mut count = here.len();
        for socket in here {
            socket.leave(room);
        }
        if let Some(cluster) = self.cluster() {
            count += cluster
                .join_or_leave(&self.selection(), vec![room.to_owned()], true)
                .await?;
        }
        Ok(count)
    }

    /// Disconnects the selected sockets of every node (`close`: closes their
    /// whole connections instead, and the clients reconnect by themselves);
    /// resolves once every live node did, with how many.
    pub async fn disconnect_sockets(&self, close: bool) -> Result<usize, ClusterError> {
        let here: Vec<Socket> = self
            .sockets()
            .into_iter()
            .filter(Socket::connected)
            .collect();
        let count = here.len();
        for socket in here {
            if close {
                socket.close_transport();
            } else {
                socket.disconnect();
            }
        }
        let remote = match self.cluster() {
            Some(cluster) => cluster.disconnect(&self.selection(), close).await?,
            None => 0,
        };
        Ok(count + remote)
    }
}

/// This node's sockets, as the cluster layer acts on them.
struct LocalOps(std::sync::Weak<IoInner>);

impl LocalOps {
    fn namespace(&self, nsp: &str) -> Option<Arc<Namespace>> {
        let io = self.0.upgrade()?;
        let ns = io.namespaces.read().get(nsp).cloned();
        ns
    }
}

impl LocalNode for LocalOps {
    fn sockets(&self, sel: &Selection) -> Vec<Arc<dyn LocalSocket>> {
        let Some(ns) = self.namespace(&sel.nsp) else {
            return Vec::new();
        };
        ns.select(&sel.rooms, &sel.except, None)
            .into_iter()
            .filter(Socket::connected)
            .map(|socket| Arc::new(socket) as Arc<dyn LocalSocket>)
            .collect()
    }

    fn emit(&self, sel: &Selection, event: &str, args: Args, volatile: bool) -> usize {
        let Some(ns) = self.namespace(&sel.nsp) else {
            return 0;
        };
        let mut op = BroadcastOperator::new(ns).local();
        op.rooms.clone_from(&sel.rooms);
        op.except.clone_from(&sel.except);
        op.volatile = volatile;
        op.send_direct(event, args)
    }

    fn store_emit(
        &self,
        sel: &Selection,
        event: &str,
        args: Args,
    ) -> Option<Result<(), EmitError>> {
        let ns = self.namespace(&sel.nsp).filter(|ns| ns.durable())?;
        let target = Target {
            nsp: sel.nsp.clone(),
            rooms: sel.rooms.clone(),
            except: sel.except.clone(),
        };
        Some(ns.publish(target, event, args, None).map(drop))
    }
}

/// Makes the server `io` a node of the cluster of every node on `transport`.
pub(crate) fn attach_cluster(
    io: &Arc<IoInner>,
    transport: Arc<dyn Transport>,
    options: ClusterOptions,
) -> Result<(), ClusterError> {
    let Some(delivery) = &io.delivery else {
        return Err(ClusterError::NotReady);
    };
    let local = Arc::new(LocalOps(Arc::downgrade(io)));
    let cluster = Cluster::start(transport, options, local);
    let _ = delivery.cluster.set(cluster);
    Ok(())
}
