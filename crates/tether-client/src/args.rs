//! Event arguments: the same [`Args`] and [`IntoArgs`] as the server, from
//! tether-proto (raw JSON values plus binary attachments).

pub use tether_proto::socketio::{ArgError, Args, IntoArgs};
