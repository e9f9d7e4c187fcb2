//! A socket: one namespace on a [`crate::Manager`]'s connection.
//!
//! - [`Socket`] (this file): the public handle;
//! - `options`: what it is set up with ([`Auth`], [`SocketOptions`]);
//! - `state`: the protocol state (CONNECT, events and acks from the server,
//!   disconnections, the dispatch of handlers);
//! - `queue`: the retry queue and the durable outbox of reliable emits;
//! - `event`: what handlers get ([`Event`], [`AckSender`], [`EventStream`]).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tether_proto::socketio::{Packet, PacketType};
use tether_proto::tether::RecoveryReport;
use tokio::sync::mpsc;

use crate::args::{Args, IntoArgs};
use crate::error::{AckError, DisconnectReason, EmitError, Error};
use crate::manager::{Closer, MgrCmd, Shared};

mod event;
mod options;
mod queue;
mod state;

pub(crate) use event::Completion;
pub use event::{AckSender, Event, EventStream, Reliable};
pub use options::{Auth, SocketOptions};
pub(crate) use queue::MessageIds;
pub(crate) use state::SocketInner;
use state::{Handler, Status};

/// A boxed, sendable future.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A socket: one namespace of a [`crate::Manager`]'s connection. Cheap to clone.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let client = tether_client::Client::builder("http://127.0.0.1:3000").build().await?;
/// let admin = client.manager().socket("/admin");
/// admin.set_auth(serde_json::json!({ "token": "secret" }));
/// admin.on("welcome", |ev| async move { println!("{:?}", ev.args()) });
/// admin.connect().await?;
/// let reply = admin.emit_with_ack("echo", ("hi",)).await?;
/// assert_eq!(reply.get::<String>(0)?, "hi");
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Socket {
    pub(crate) inner: Arc<SocketInner>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) _closer: Arc<Closer>,
}

impl std::fmt::Debug for Socket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Socket")
            .field("nsp", &self.inner.nsp)
            .field("id", &self.id())
            .field("connected", &self.connected())
            .finish()
    }
}

impl Socket {
    /// The namespace.
    pub fn nsp(&self) -> &str {
        &self.inner.nsp
    }

    /// The socket id given by the server, while connected.
    pub fn id(&self) -> Option<String> {
        self.inner.state().id.clone()
    }

    /// True while connected to the namespace.
    pub fn connected(&self) -> bool {
        self.inner.state().connected
    }

    /// True when the last connection restored the previous session
    /// (connection state recovery).
    pub fn recovered(&self) -> bool {
        self.inner.state().recovered
    }

    /// Tether's report when the server refused to restore the session.
    pub fn recovery_report(&self) -> Option<RecoveryReport> {
        self.inner.state().report.clone()
    }

    /// The private session id (connection state recovery on).
    pub fn pid(&self) -> Option<String> {
        self.inner.state().pid.clone()
    }

    /// The offset presented at the next reconnection.
    pub fn last_offset(&self) -> Option<String> {
        self.inner.state().offsets.last.clone()
    }

    /// Sets the session to present at the next connect (to resume, on a new
    /// client, a session saved from another one).
    pub fn resume_session(&self, pid: impl Into<String>, offset: Option<String>) {
        let mut st = self.inner.state();
        st.pid = Some(pid.into());
        st.offsets.last = offset;
    }

    /// Replaces the auth payload (used from the next connect on).
    pub fn set_auth(&self, auth: impl Into<Auth>) {
        self.inner.state().auth = auth.into();
    }

    /// The manager this socket belongs to.
    pub fn manager(&self) -> crate::Manager {
        crate::Manager {
            shared: self.shared.clone(),
            _closer: self._closer.clone(),
        }
    }

    /// Registers the handler of `event`. Handlers of a socket run one at a
    /// time, in the order events arrived (a handler must not wait for
    /// another event of the same socket).
    ///
    /// ```no_run
    /// # async fn demo(socket: tether_client::Socket) {
    /// socket.on("ask", |mut ev| async move {
    ///     let n: u64 = ev.args().get(0).unwrap_or(0);
    ///     let _ = ev.ack((n * 2,));
    /// });
    /// # }
    /// ```
    pub fn on<F, Fut>(&self, event: impl Into<String>, handler: F)
    where
        F: Fn(Event) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let handler: Handler = Arc::new(move |ev| Box::pin(handler(ev)));
        self.inner
            .handlers
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .by_name
            .insert(event.into(), handler);
    }

    /// Registers the handler of every event that has no handler of its own.
    pub fn on_any<F, Fut>(&self, handler: F)
    where
        F: Fn(Event) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let handler: Handler = Arc::new(move |ev| Box::pin(handler(ev)));
        self.inner
            .handlers
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .any = Some(handler);
    }

    /// A stream of the events that have no handler (replaces an earlier stream).
    ///
    /// ```no_run
    /// # async fn demo(socket: tether_client::Socket) {
    /// let mut events = socket.events();
    /// while let Some(ev) = events.recv().await {
    ///     println!("{} {:?}", ev.name(), ev.args());
    /// }
    /// # }
    /// ```
    pub fn events(&self) -> EventStream {
        let (tx, rx) = mpsc::unbounded_channel();
        self.inner
            .handlers
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .stream = Some(tx);
        EventStream { rx }
    }

    /// Connects to the namespace (opening the manager's connection if
    /// needed) and waits for the server's answer.
    pub async fn connect(&self) -> Result<(), Error> {
        let mut status = self.inner.status.subscribe();
        {
            let mut st = self.inner.state();
            if st.connected {
                return Ok(());
            }
            st.active = true;
        }
        self.inner.set_status(Status::Connecting);
        status.mark_unchanged();
        self.inner
            .mgr
            .send(MgrCmd::Connect(self.inner.nsp.clone()))
            .map_err(|_| Error::Closed)?;
        settled(&mut status).await
    }

    /// Waits until the socket is connected (after a reconnection, say).
    pub async fn wait_connected(&self) -> Result<(), Error> {
        settled(&mut self.inner.status.subscribe()).await
    }

    /// Leaves the namespace; the manager closes when no socket is left.
    pub fn disconnect(&self) {
        let was_connected = {
            let mut st = self.inner.state();
            st.active = false;
            st.connected
        };
        if was_connected {
            self.inner
                .send_now(Packet::new(PacketType::Disconnect, self.inner.nsp.clone()));
        }
        self.inner
            .closed(DisconnectReason::IoClientDisconnect, false);
        let _ = self.inner.mgr.send(MgrCmd::Inactive);
    }

    /// Emits an event. While disconnected, it is buffered (up to
    /// `buffer_capacity`) and sent at the next connection. With `retries`
    /// set, it goes through the retry queue (and the server must ack it).
    ///
    /// ```no_run
    /// # fn demo(socket: &tether_client::Socket) -> Result<(), tether_client::EmitError> {
    /// socket.emit("chat message", ("hello",))?;
    /// let mut args = tether_client::Args::new();
    /// args.push_binary(vec![1u8, 2, 3]);
    /// socket.emit("upload", args)?;
    /// # Ok(()) }
    /// ```
    pub fn emit(&self, event: &str, args: impl IntoArgs) -> Result<(), EmitError> {
        let args = args.into_args()?;
        if self.inner.opts.retries.is_some() {
            self.inner.enqueue(event, args).map(drop)
        } else {
            self.inner.emit(event, args)
        }
    }

    /// Emits an event and waits for its acknowledgement (bounded by
    /// `ack_timeout` when set). With `retries` set, it goes through the
    /// retry queue.
    pub async fn emit_with_ack(&self, event: &str, args: impl IntoArgs) -> Result<Args, AckError> {
        let args = args.into_args().map_err(EmitError::from)?;
        if self.inner.opts.retries.is_some() {
            let rx = self.inner.enqueue(event, args)?;
            return rx.await.unwrap_or(Err(AckError::Emit(EmitError::Closed)));
        }
        self.emit_with_ack_timeout_inner(event, args, self.inner.opts.ack_timeout)
            .await
    }

    /// Emits an event and waits at most `timeout` for its acknowledgement
    /// (no retry).
    pub async fn emit_with_ack_timeout(
        &self,
        event: &str,
        args: impl IntoArgs,
        timeout: Duration,
    ) -> Result<Args, AckError> {
        let args = args.into_args().map_err(EmitError::from)?;
        self.emit_with_ack_timeout_inner(event, args, Some(timeout))
            .await
    }

    async fn emit_with_ack_timeout_inner(
        &self,
        event: &str,
        args: Args,
        timeout: Option<Duration>,
    ) -> Result<Args, AckError> {
        let (id, rx) = self.inner.emit_acked(event, args)?;
        self.inner.ack_result(id, rx, timeout).await
    }

    /// A reliable emit: through the retry queue (one in flight, in order,
    /// `retries` + 1 tries of `ack_timeout` each, surviving reconnections),
    /// with a message id appended as the **last argument** — the same id on
    /// every try, so that the server can store it once (the chat's
    /// `clientOffset`). Returns the id and the server's ack. The emit is
    /// queued when this is called (emits keep the order of the calls).
    ///
    /// With a state file ([`crate::ClientBuilder::state_file`]) the emit is
    /// recorded in its outbox first and kept there until acknowledged, across
    /// restarts of the process.
    ///
    /// ```no_run
    /// # async fn demo(socket: tether_client::Socket) -> Result<(), tether_client::AckError> {
    /// let sent = socket.emit_reliable("chat message", ("hello",)).await?;
    /// println!("{} acked with {:?}", sent.id, sent.ack.values());
    /// # Ok(()) }
    /// ```
    pub fn emit_reliable(
        &self,
        event: &str,
        args: impl IntoArgs,
    ) -> impl Future<Output = Result<Reliable, AckError>> + Send + 'static {
        let id = self.inner.ids.next();
        self.emit_reliable_with_id(event, args, id)
    }

    /// Like [`Socket::emit_reliable`], with the application's message id.
    ///
    /// The emit is queued (recorded in the outbox, with a state file) when
    /// this is called, not when the future is first polled: emits keep the
    /// order of the calls.
    pub fn emit_reliable_with_id(
        &self,
        event: &str,
        args: impl IntoArgs,
        id: impl Into<String>,
    ) -> impl Future<Output = Result<Reliable, AckError>> + Send + 'static {
        let id = id.into();
        let queued = (|| {
            let mut args = args.into_args()?;
            args.push(&id)?;
            match &self.inner.state_file {
                Some(file) => self.inner.enqueue_durable(file, event, args, &id),
                None => self.inner.enqueue(event, args),
            }
        })();
        async move {
            let rx = queued?;
            let ack = rx.await.unwrap_or(Err(AckError::Emit(EmitError::Closed)))?;
            Ok(Reliable { id, ack })
        }
    }

    /// The last position received in the stream presented as
    /// `auth[field]` (see [`SocketOptions::streams`]).
    pub fn stream_position(&self, field: &str) -> Option<u64> {
        self.inner
            .state()
            .streams
            .iter()
            .find(|s| s.stream.field() == field)
            .and_then(|s| Some(s.last.as_ref()?.seq))
    }

    /// Registers the handler of an inbox event (Tether's
    /// `io.inbox(user).push(..)`): the entry, its inbox position as last
    /// argument, is acknowledged once the handler returns (not when it
    /// panics), which removes it from the user's inbox on the server. An
    /// entry delivered again after its ack was lost is acknowledged again
    /// without running the handler a second time.
    ///
    /// ```no_run
    /// # async fn demo(socket: tether_client::Socket) {
    /// socket.on_inbox("dm", |ev| async move {
    ///     let text: String = ev.args().get(0).unwrap_or_default();
    ///     println!("{text} (inbox #{:?})", ev.inbox_seq());
    /// });
    /// # }
    /// ```
    pub fn on_inbox<F, Fut>(&self, event: impl Into<String>, handler: F)
    where
        F: Fn(Event) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let event = event.into();
        let handler: Handler = Arc::new(move |ev| Box::pin(handler(ev)));
        let mut h = self
            .inner
            .handlers
            .write()
            .unwrap_or_else(|e| e.into_inner());
        h.inbox.insert(event.clone());
        h.by_name.insert(event, handler);
    }

    /// Emits waiting in the retry queue (the one in flight included).
    pub fn queued(&self) -> usize {
        self.inner.queued.load(Ordering::Acquire)
    }

    /// Resolves once the retry queue is empty: every reliable emit (those
    /// resent from the outbox included) acknowledged or given up.
    pub async fn drained(&self) {
        loop {
            let notified = self.inner.idle.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.inner.queued.load(Ordering::Acquire) == 0 {
                return;
            }
            notified.await;
        }
    }

    /// Emits buffered while disconnected.
    pub fn buffered(&self) -> usize {
        self.inner.state().buffer.len()
    }
}

/// Waits until `status` leaves connecting: `Ok` once connected, else why not.
async fn settled(status: &mut tokio::sync::watch::Receiver<Status>) -> Result<(), Error> {
    let result = status
        .wait_for(|s| !matches!(s, Status::Connecting | Status::Idle))
        .await
        .map(|s| s.clone());
    match result {
        Ok(Status::Connected) => Ok(()),
        Ok(Status::Refused(e)) => Err(Error::Refused(e)),
        Ok(Status::Failed(n)) => Err(Error::ReconnectFailed(n)),
        Ok(Status::Unreachable(e)) => Err(Error::Open(e)),
        _ => Err(Error::Closed),
    }
}
