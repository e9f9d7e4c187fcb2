//! What a socket is set up with: its CONNECT auth and its options.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::offset::OffsetRule;
use crate::stream::Stream;

use super::BoxFuture;

/// The authentication payload sent with every CONNECT.
///
/// ```
/// use tether_client::Auth;
/// let fixed = Auth::from(serde_json::json!({ "token": "t1" }));
/// let fresh = Auth::from_fn(|| async { serde_json::json!({ "token": "evaluated at each connect" }) });
/// # let _ = (fixed, fresh);
/// ```
#[derive(Clone, Default)]
pub enum Auth {
    /// No payload.
    #[default]
    None,
    /// The same value at every connect.
    Static(Value),
    /// A closure evaluated at each connect (a token refreshed, say).
    Dynamic(Arc<dyn Fn() -> BoxFuture<Value> + Send + Sync>),
}

impl Auth {
    /// Auth computed at each connect.
    pub fn from_fn<F, Fut>(f: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Value> + Send + 'static,
    {
        Auth::Dynamic(Arc::new(move || Box::pin(f())))
    }
}

impl From<Value> for Auth {
    fn from(v: Value) -> Self {
        Auth::Static(v)
    }
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Auth::None => f.write_str("None"),
            Auth::Static(v) => f.debug_tuple("Static").field(v).finish(),
            Auth::Dynamic(_) => f.write_str("Dynamic(..)"),
        }
    }
}

/// Settings of one socket (namespace).
///
/// ```
/// use std::time::Duration;
/// let opts = tether_client::SocketOptions {
///     ack_timeout: Some(Duration::from_secs(2)),
///     retries: Some(3),
///     ..Default::default()
/// };
/// assert_eq!(opts.buffer_capacity, 1024);
/// ```
#[derive(Debug, Clone)]
pub struct SocketOptions {
    /// Sent with every CONNECT (merged with `{pid, offset}` when recovering).
    pub auth: Auth,
    /// Default timeout of [`Socket::emit_with_ack`](super::Socket::emit_with_ack) (and of each try of a
    /// reliable emit); `None`: wait until the ack or a disconnection.
    pub ack_timeout: Option<Duration>,
    /// With `Some(n)`, every emit goes through the retry queue (the official
    /// client's `retries`): one at a time, in order, each try waiting
    /// `ack_timeout` for its ack, up to `n + 1` tries.
    pub retries: Option<u32>,
    /// Most emits buffered while disconnected (and most emits waiting in the
    /// retry queue); past it emits fail with [`EmitError::BufferFull`](crate::EmitError::BufferFull).
    pub buffer_capacity: usize,
    /// How recovery offsets are recognised in received events.
    pub offsets: OffsetRule,
    /// Server delivery streams followed by the socket: their last positions
    /// are presented in auth at every connect, and events at or before a
    /// position received already are dropped (see [`Stream`]).
    pub streams: Vec<Stream>,
}

impl Default for SocketOptions {
    fn default() -> Self {
        Self {
            auth: Auth::None,
            ack_timeout: None,
            retries: None,
            buffer_capacity: 1024,
            offsets: OffsetRule::Auto,
            streams: Vec::new(),
        }
    }
}
