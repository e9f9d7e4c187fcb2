//! Event arguments: [`Args`] and [`IntoArgs`] come from tether-proto; the
//! server adds [`ArgsExt`].

pub use tether_proto::socketio::{Args, IntoArgs};

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
