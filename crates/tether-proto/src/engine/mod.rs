//! Engine.IO v4: packets, payload framing and the session state machine.

mod packet;
mod session;

pub use packet::{decode_payload, encode_payload, Frame, Packet, PacketError};
pub use session::{
    CloseReason, EngineConfig, Event, ProbeReply, SendError, Session, TransportKind, UpgradeState,
};
