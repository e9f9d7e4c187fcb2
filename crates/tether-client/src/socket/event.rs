//! What handlers get: received events, their ack, the event stream, and
//! the completion that runs once an event is handled.

use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Weak;
use std::task::{Context, Poll};

use tether_proto::socketio::Packet;
use tokio::sync::mpsc;

use crate::args::{Args, IntoArgs};
use crate::durable::StoredPosition;
use crate::error::EmitError;

use super::SocketInner;

/// What is left to do once an event is handled: save its stream positions,
/// acknowledge its inbox entry. Runs when dropped (after the handler
/// returned, or when the application drops an event of the stream).
pub(crate) struct Completion {
    pub(super) socket: Weak<SocketInner>,
    pub(super) save: Vec<(String, StoredPosition)>,
    pub(super) inbox: Option<(AckSender, u64)>,
}

impl Drop for Completion {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // The handler failed: not handled, nothing acknowledged.
            return;
        }
        let Some(socket) = self.socket.upgrade() else {
            return;
        };
        if let Some(file) = &socket.state_file {
            for (field, pos) in self.save.drain(..) {
                file.save_position(&socket.nsp, &field, pos);
            }
        }
        if let Some((ack, seq)) = self.inbox.take() {
            socket
                .inbox_handled
                .fetch_max(seq.saturating_add(1), Ordering::AcqRel);
            let _ = ack.send(());
        }
    }
}

/// The outcome of a reliable emit.
#[derive(Debug, Clone)]
pub struct Reliable {
    /// The message id sent as the last argument.
    pub id: String,
    /// The server's acknowledgement.
    pub ack: Args,
}

/// Events without a handler of their own (see [`Socket::events`](super::Socket::events)).
#[derive(Debug)]
pub struct EventStream {
    pub(super) rx: mpsc::UnboundedReceiver<Event>,
}

impl EventStream {
    /// The next event; `None` once the socket is gone.
    pub async fn recv(&mut self) -> Option<Event> {
        self.rx.recv().await
    }
}

impl futures_core::Stream for EventStream {
    type Item = Event;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        self.rx.poll_recv(cx)
    }
}

/// An event received from the server.
pub struct Event {
    pub(super) name: String,
    pub(super) args: Args,
    pub(super) ack: Option<AckSender>,
    pub(super) inbox_seq: Option<u64>,
    pub(super) done: Option<Completion>,
}

impl std::fmt::Debug for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Event")
            .field("name", &self.name)
            .field("args", &self.args)
            .field("ack", &self.ack)
            .field("inbox_seq", &self.inbox_seq)
            .finish()
    }
}

impl Event {
    /// The event name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The arguments.
    pub fn args(&self) -> &Args {
        &self.args
    }

    /// Takes the arguments out.
    pub fn take_args(&mut self) -> Args {
        std::mem::take(&mut self.args)
    }

    /// The inbox position of an inbox entry (see [`Socket::on_inbox`](super::Socket::on_inbox)),
    /// acknowledged by the client once it is handled.
    pub fn inbox_seq(&self) -> Option<u64> {
        self.inbox_seq
    }

    /// True when the server asked for an acknowledgement that the
    /// application must send (inbox entries are acknowledged by the client).
    pub fn wants_ack(&self) -> bool {
        self.ack.is_some()
    }

    /// Takes the acknowledgement sender, to answer later.
    pub fn take_ack(&mut self) -> Option<AckSender> {
        self.ack.take()
    }

    /// Acknowledges the event with `args`; does nothing when the server did
    /// not ask for an acknowledgement or it was answered already.
    pub fn ack(&mut self, args: impl IntoArgs) -> Result<(), EmitError> {
        match self.ack.take() {
            Some(ack) => ack.send(args),
            None => Ok(()),
        }
    }
}

/// Answers a server's acknowledgement request.
pub struct AckSender {
    pub(super) socket: Weak<SocketInner>,
    pub(super) id: u64,
    /// The connection the request came on: an ack is meaningless on another.
    pub(super) gen: Option<u64>,
}

impl std::fmt::Debug for AckSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AckSender").field("id", &self.id).finish()
    }
}

impl AckSender {
    /// Sends the acknowledgement (dropped when the connection it was asked
    /// on is gone meanwhile: ack ids belong to one connection).
    pub fn send(self, args: impl IntoArgs) -> Result<(), EmitError> {
        let socket = self.socket.upgrade().ok_or(EmitError::Closed)?;
        let (values, attachments) = args.into_args()?.into_parts();
        let packet = Packet::ack(socket.nsp.clone(), self.id, &values, attachments);
        socket.send_on(self.gen, packet);
        Ok(())
    }
}
