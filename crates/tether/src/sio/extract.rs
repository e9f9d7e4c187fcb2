//! Extractors: handlers take what they need as arguments, as in axum.
//!
//! An event handler is an async function (or closure) whose arguments each
//! implement [`FromEvent`]: the [`Socket`], the typed arguments
//! ([`Data<T>`], [`TryData<T>`]), the acknowledgement ([`AckSender`]), the
//! server ([`SocketIo`]), shared state ([`State<T>`]), or the whole raw
//! [`Event`] (last, since it takes what the others did not). When an
//! extractor refuses the event (a [`Data<T>`] of the wrong shape, say), the
//! handler is not called and the refusal is logged.
//!
//! A connect handler ([`SocketIo::ns`]) takes extractors too, each
//! implementing [`FromConnect`]: the [`Socket`], the CONNECT auth
//! ([`Data<T>`], [`TryData<T>`]), the server ([`SocketIo`]) and shared
//! state ([`State<T>`]). When one refuses (an auth of the wrong shape, say),
//! the handler is not called and the socket is disconnected from the
//! namespace (to refuse the connection itself with a CONNECT_ERROR, use a
//! namespace middleware).
//!
//! ```no_run
//! use tether::extract::Data;
//! use tether::{Config, Socket, SocketIo};
//!
//! #[derive(serde::Deserialize)]
//! struct Auth {
//!     name: String,
//! }
//!
//! let io = SocketIo::new(Config::default());
//! io.ns("/", |socket: Socket, Data(auth): Data<Auth>| async move {
//!     let _ = socket.emit("welcome", (auth.name,));
//! });
//! ```
//!
//! ```no_run
//! use tether::extract::{Data, State};
//! use tether::{AckSender, Config, Socket, SocketIo};
//!
//! #[derive(Clone)]
//! struct Greeting(&'static str);
//!
//! # async fn run() -> std::io::Result<()> {
//! let io = SocketIo::new(Config::default()).with_state(Greeting("hello"));
//! io.ns("/", |socket: Socket| async move {
//!     socket.on(
//!         "greet",
//!         |Data(name): Data<String>, State(greeting): State<Greeting>, ack: AckSender| async move {
//!             let _ = ack.send((format!("{}, {name}", greeting.0),));
//!         },
//!     );
//! });
//! # Ok(()) }
//! ```

use std::future::Future;
use std::sync::Arc;

use serde::de::DeserializeOwned;

use super::{BoxFuture, Event, Socket, SocketIo};
use crate::{AckSender, ArgError};

/// Why an extractor refused an event; the handler is not called.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Rejection {
    /// The arguments do not have the requested type.
    #[error("the arguments do not match the handler's type: {0}")]
    Args(#[from] ArgError),
    /// The handler takes an acknowledgement the client did not ask for.
    #[error("the client asked for no acknowledgement")]
    NoAck,
    /// No state of this type was given to the server.
    #[error("no state of type {0} (see SocketIo::with_state)")]
    NoState(&'static str),
    /// The CONNECT auth does not have the requested type.
    #[error("the CONNECT auth does not match the handler's type: {0}")]
    Auth(#[source] ArgError),
}

/// Takes a part of an event for a handler argument.
pub trait FromEvent: Sized {
    /// Extracts `Self` from the event (taking from it what it owns).
    fn from_event(socket: &Socket, event: &mut Event) -> Result<Self, Rejection>;
}

impl FromEvent for Socket {
    fn from_event(socket: &Socket, _: &mut Event) -> Result<Self, Rejection> {
        Ok(socket.clone())
    }
}

impl FromEvent for SocketIo {
    fn from_event(socket: &Socket, _: &mut Event) -> Result<Self, Rejection> {
        Ok(socket.io())
    }
}

/// The whole event: its name, the arguments and the acknowledgement that
/// earlier extractors left.
impl FromEvent for Event {
    fn from_event(_: &Socket, event: &mut Event) -> Result<Self, Rejection> {
        Ok(Event {
            name: event.name.clone(),
            args: std::mem::take(&mut event.args),
            ack: event.ack.take(),
        })
    }
}

/// The acknowledgement the client asked for: a handler taking it is not
/// called for an event sent without one (take `Option<AckSender>` to be
/// called either way).
impl FromEvent for AckSender {
    fn from_event(_: &Socket, event: &mut Event) -> Result<Self, Rejection> {
        event.ack.take().ok_or(Rejection::NoAck)
    }
}

impl FromEvent for Option<AckSender> {
    fn from_event(_: &Socket, event: &mut Event) -> Result<Self, Rejection> {
        Ok(event.ack.take())
    }
}

/// The event's arguments deserialised as `T`: with one argument, from it;
/// otherwise (or when that fails) from the array of every argument, so a
/// tuple takes several. A handler taking `Data<T>` is not called when the
/// arguments are not a `T`: use [`TryData`] to see the error.
///
/// ```
/// # use tether::extract::Data;
/// # use tether::Socket;
/// // `emit("chat message", "hi", "client-1")`
/// let handler = |Data((text, client_id)): Data<(String, String)>| async move {
///     let _ = (text, client_id);
/// };
/// # let _ = handler;
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Data<T>(pub T);

impl<T: DeserializeOwned> FromEvent for Data<T> {
    fn from_event(_: &Socket, event: &mut Event) -> Result<Self, Rejection> {
        parse(event).map(Data).map_err(Rejection::from)
    }
}

/// Like [`Data`], but the handler is called either way, with the error when
/// the arguments are not a `T`.
#[derive(Debug)]
pub struct TryData<T>(pub Result<T, ArgError>);

impl<T: DeserializeOwned> FromEvent for TryData<T> {
    fn from_event(_: &Socket, event: &mut Event) -> Result<Self, Rejection> {
        Ok(TryData(parse(event)))
    }
}

fn parse<T: DeserializeOwned>(event: &Event) -> Result<T, ArgError> {
    let args = event.args();
    if args.len() == 1 {
        if let Ok(value) = args.get(0) {
            return Ok(value);
        }
    }
    args.parse()
}

/// State shared by every handler, given with [`SocketIo::with_state`]
/// (cloned for each handler call: wrap what is large in an `Arc`).
#[derive(Debug, Clone)]
pub struct State<T>(pub T);

impl<T: Clone + Send + Sync + 'static> FromEvent for State<T> {
    fn from_event(socket: &Socket, _: &mut Event) -> Result<Self, Rejection> {
        socket
            .io()
            .state::<T>()
            .map(State)
            .ok_or(Rejection::NoState(std::any::type_name::<T>()))
    }
}

/// An event handler: an async function whose arguments are extractors
/// ([`FromEvent`]), up to eight of them. `T` is the tuple of their types.
pub trait EventHandler<T>: Send + Sync + 'static {
    /// Runs the handler on an event, unless an extractor refuses it.
    fn call(&self, socket: Socket, event: Event) -> BoxFuture;
}

macro_rules! event_handler {
    ($($ty:ident),*) => {
        impl<F, Fut, $($ty,)*> EventHandler<($($ty,)*)> for F
        where
            F: Fn($($ty),*) -> Fut + Send + Sync + 'static,
            Fut: Future<Output = ()> + Send + 'static,
            $($ty: FromEvent + Send + 'static,)*
        {
            #[allow(non_snake_case, unused_mut, unused_variables)]
            fn call(&self, socket: Socket, mut event: Event) -> BoxFuture {
                $(
                    let $ty = match $ty::from_event(&socket, &mut event) {
                        Ok(value) => value,
                        Err(rejection) => {
                            tracing::debug!(
                                sid = socket.id(),
                                event = event.name(),
                                error = %rejection,
                                "handler not called"
                            );
                            return Box::pin(async {});
                        }
                    };
                )*
                Box::pin((self)($($ty),*))
            }
        }
    };
}

event_handler!();
event_handler!(T1);
event_handler!(T1, T2);
event_handler!(T1, T2, T3);
event_handler!(T1, T2, T3, T4);
event_handler!(T1, T2, T3, T4, T5);
event_handler!(T1, T2, T3, T4, T5, T6);
event_handler!(T1, T2, T3, T4, T5, T6, T7);
event_handler!(T1, T2, T3, T4, T5, T6, T7, T8);

/// The handler, type-erased.
pub(crate) fn boxed<H: EventHandler<T>, T>(handler: H) -> super::EventHandler {
    Arc::new(move |socket, event| handler.call(socket, event))
}

/// Takes a part of a socket that just connected for a connect handler
/// argument.
pub trait FromConnect: Sized {
    /// Extracts `Self` from the socket.
    fn from_connect(socket: &Socket) -> Result<Self, Rejection>;
}

impl FromConnect for Socket {
    fn from_connect(socket: &Socket) -> Result<Self, Rejection> {
        Ok(socket.clone())
    }
}

impl FromConnect for SocketIo {
    fn from_connect(socket: &Socket) -> Result<Self, Rejection> {
        Ok(socket.io())
    }
}

/// The CONNECT auth deserialised as `T` (`{}` when the client sent none).
impl<T: DeserializeOwned> FromConnect for Data<T> {
    fn from_connect(socket: &Socket) -> Result<Self, Rejection> {
        parse_auth(socket).map(Data).map_err(Rejection::Auth)
    }
}

/// The CONNECT auth deserialised as `T`, or why it is not one.
impl<T: DeserializeOwned> FromConnect for TryData<T> {
    fn from_connect(socket: &Socket) -> Result<Self, Rejection> {
        Ok(TryData(parse_auth(socket)))
    }
}

fn parse_auth<T: DeserializeOwned>(socket: &Socket) -> Result<T, ArgError> {
    T::deserialize(&socket.handshake().auth).map_err(ArgError::Type)
}

impl<T: Clone + Send + Sync + 'static> FromConnect for State<T> {
    fn from_connect(socket: &Socket) -> Result<Self, Rejection> {
        socket
            .io()
            .state::<T>()
            .map(State)
            .ok_or(Rejection::NoState(std::any::type_name::<T>()))
    }
}

/// A connect handler: an async function whose arguments are extractors
/// ([`FromConnect`]), up to eight of them (`|socket: Socket| async {}` is
/// one). `T` is the tuple of their types.
pub trait ConnectHandler<T>: Send + Sync + 'static {
    /// Runs the handler on a socket that connected, unless an extractor
    /// refuses it (the socket is then disconnected).
    fn call(&self, socket: Socket) -> BoxFuture;
}

macro_rules! connect_handler {
    ($($ty:ident),*) => {
        impl<F, Fut, $($ty,)*> ConnectHandler<($($ty,)*)> for F
        where
            F: Fn($($ty),*) -> Fut + Send + Sync + 'static,
            Fut: Future<Output = ()> + Send + 'static,
            $($ty: FromConnect + Send + 'static,)*
        {
            #[allow(non_snake_case, unused_variables)]
            fn call(&self, socket: Socket) -> BoxFuture {
                $(
                    let $ty = match $ty::from_connect(&socket) {
                        Ok(value) => value,
                        Err(rejection) => {
                            tracing::debug!(
                                sid = socket.id(),
                                nsp = socket.nsp(),
                                error = %rejection,
                                "connect handler not called: disconnecting"
                            );
                            socket.disconnect();
                            return Box::pin(async {});
                        }
                    };
                )*
                Box::pin((self)($($ty),*))
            }
        }
    };
}

connect_handler!();
connect_handler!(T1);
connect_handler!(T1, T2);
connect_handler!(T1, T2, T3);
connect_handler!(T1, T2, T3, T4);
connect_handler!(T1, T2, T3, T4, T5);
connect_handler!(T1, T2, T3, T4, T5, T6);
connect_handler!(T1, T2, T3, T4, T5, T6, T7);
connect_handler!(T1, T2, T3, T4, T5, T6, T7, T8);

/// The connect handler, type-erased.
pub(crate) fn boxed_connect<H: ConnectHandler<T>, T>(handler: H) -> super::ConnectHandler {
    Arc::new(move |socket| handler.call(socket))
}

impl Socket {
    /// Registers the handler of an event (replacing an earlier one). The
    /// handler's arguments are extractors ([`crate::extract`]): the socket,
    /// typed data, the ack, state, or the raw [`Event`].
    ///
    /// ```no_run
    /// use tether::extract::Data;
    /// use tether::{AckSender, Event, Socket};
    /// # fn demo(socket: Socket) {
    /// // Raw: the socket and the whole event.
    /// socket.on("ping", |_socket: Socket, mut ev: Event| async move {
    ///     let _ = ev.ack(("pong",));
    /// });
    /// // Typed: not called unless the arguments are (String, u32).
    /// socket.on("move", |Data((piece, square)): Data<(String, u32)>, ack: AckSender| async move {
    ///     let _ = ack.send((piece, square));
    /// });
    /// # }
    /// ```
    pub fn on<H, T>(&self, event: impl Into<String>, handler: H)
    where
        H: EventHandler<T>,
    {
        self.set_handler(event.into(), boxed(handler));
    }

    /// Registers the handler of every event that has no handler of its own
    /// (replacing an earlier one): a catch-all, to forward the events the
    /// server does not handle itself to a backend, say. Its arguments are
    /// extractors as for [`Socket::on`]; the event's name is
    /// [`Event::name`]. Events keep their order with the other handlers'.
    ///
    /// ```no_run
    /// use tether::{Event, Socket};
    /// # fn demo(socket: Socket) {
    /// socket.on("ping", |mut ev: Event| async move {
    ///     let _ = ev.ack(("pong",));
    /// });
    /// // Anything else: answered with its name.
    /// socket.on_fallback(|mut ev: Event| async move {
    ///     let name = ev.name().to_owned();
    ///     let _ = ev.ack(("unknown event", name));
    /// });
    /// # }
    /// ```
    pub fn on_fallback<H, T>(&self, handler: H)
    where
        H: EventHandler<T>,
    {
        self.set_fallback(boxed(handler));
    }
}
