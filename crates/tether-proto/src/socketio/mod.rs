//! Socket.IO v5 packets and their two wire formats.
//!
//! A [`Packet`] keeps its payload as raw JSON text in which binary values are
//! replaced by placeholders (`{"_placeholder":true,"num":N}`) that index
//! [`Packet::attachments`]. Both parsers decode into and encode from this one
//! model, so the server forwards payloads without re-serialising them.

mod args;
mod json;
mod msgpack;
mod packet;

pub use args::{ArgError, Args, IntoArgs};
pub use packet::{
    event_array, placeholder, resolve_placeholder, split_event, DecodeError, Decoder, Packet,
    PacketType, Parser,
};
