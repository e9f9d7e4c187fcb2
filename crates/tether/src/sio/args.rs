//! Events from clients; [`Args`] and [`IntoArgs`] come from tether-proto.

pub use tether_proto::socketio::{Args, IntoArgs};

use crate::error::EmitError;
use crate::sio::socket::AckSender;

/// Server-side additions to [`Args`].
pub trait ArgsExt {
    /// Appends the stored position of the event itself (a number), filled in
    /// when a published event is delivered, live or replayed: the chat
    /// tutorial's `serverOffset`.
    ///
    /// ```
    /// use tether::{Args, ArgsExt};
    /// let mut args = Args::new();
    /// args.push(&"hello").unwrap();
    /// args.push_seq();
    /// assert_eq!(args.len(), 2);
    /// ```
    fn push_seq(&mut self);
}

impl ArgsExt for Args {
    fn push_seq(&mut self) {
        self.push_raw(crate::delivery::seq_placeholder());
    }
}

/// An event received from a client.
#[derive(Debug)]
pub struct Event {
    pub(crate) name: String,
    pub(crate) args: Args,
    pub(crate) ack: Option<AckSender>,
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

    /// Takes the arguments out (to forward them, say).
    pub fn take_args(&mut self) -> Args {
        std::mem::take(&mut self.args)
    }

    /// True when the client asked for an acknowledgement.
    pub fn wants_ack(&self) -> bool {
        self.ack.is_some()
    }

    /// Takes the acknowledgement callback, to answer later or elsewhere.
    pub fn take_ack(&mut self) -> Option<AckSender> {
        self.ack.take()
    }

    /// Acknowledges the event with `args`. Does nothing if the client did not
    /// ask for an acknowledgement or it was answered already.
    pub fn ack(&mut self, args: impl IntoArgs) -> Result<(), EmitError> {
        match self.ack.take() {
            Some(ack) => ack.send(args),
            None => Ok(()),
        }
    }
}
