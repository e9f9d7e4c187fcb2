//! The Socket.IO packet model and the stateful decoder.

use bytes::Bytes;
use serde_json::value::RawValue;

use crate::engine::Frame;

/// The type of a Socket.IO packet, with its wire number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PacketType {
    /// `0`: connect to a namespace (client), or accept the connection (server).
    Connect,
    /// `1`: leave a namespace.
    Disconnect,
    /// `2`: an event.
    Event,
    /// `3`: an acknowledgement.
    Ack,
    /// `4`: the connection to a namespace was refused.
    ConnectError,
    /// `5`: an event with binary attachments.
    BinaryEvent,
    /// `6`: an acknowledgement with binary attachments.
    BinaryAck,
}

impl PacketType {
    /// The packet type for a wire number.
    pub fn from_u8(n: u8) -> Option<Self> {
        Some(match n {
            0 => PacketType::Connect,
            1 => PacketType::Disconnect,
            2 => PacketType::Event,
            3 => PacketType::Ack,
            4 => PacketType::ConnectError,
            5 => PacketType::BinaryEvent,
            6 => PacketType::BinaryAck,
            _ => return None,
        })
    }

    /// The wire number.
    pub fn as_u8(self) -> u8 {
        match self {
            PacketType::Connect => 0,
            PacketType::Disconnect => 1,
            PacketType::Event => 2,
            PacketType::Ack => 3,
            PacketType::ConnectError => 4,
            PacketType::BinaryEvent => 5,
            PacketType::BinaryAck => 6,
        }
    }

    /// The same kind of packet, with or without attachments.
    pub fn with_binary(self, binary: bool) -> Self {
        match (self, binary) {
            (PacketType::Event | PacketType::BinaryEvent, true) => PacketType::BinaryEvent,
            (PacketType::Event | PacketType::BinaryEvent, false) => PacketType::Event,
            (PacketType::Ack | PacketType::BinaryAck, true) => PacketType::BinaryAck,
            (PacketType::Ack | PacketType::BinaryAck, false) => PacketType::Ack,
            (other, _) => other,
        }
    }

    /// True for EVENT and BINARY_EVENT.
    pub fn is_event(self) -> bool {
        matches!(self, PacketType::Event | PacketType::BinaryEvent)
    }

    /// True for ACK and BINARY_ACK.
    pub fn is_ack(self) -> bool {
        matches!(self, PacketType::Ack | PacketType::BinaryAck)
    }
}

/// A Socket.IO packet.
#[derive(Debug, Clone)]
pub struct Packet {
    /// The packet type.
    pub kind: PacketType,
    /// The namespace (`/` by default).
    pub nsp: String,
    /// The acknowledgement id.
    pub id: Option<u64>,
    /// The payload as raw JSON, binary values replaced by placeholders.
    pub data: Option<Box<RawValue>>,
    /// Binary attachments, in placeholder order.
    pub attachments: Vec<Bytes>,
}

impl PartialEq for Packet {
    fn eq(&self, other: &Self) -> bool {
        self.kind == other.kind
            && self.nsp == other.nsp
            && self.id == other.id
            && self.data.as_deref().map(RawValue::get) == other.data.as_deref().map(RawValue::get)
            && self.attachments == other.attachments
    }
}

impl Packet {
    /// A packet with no id, data or attachment.
    pub fn new(kind: PacketType, nsp: impl Into<String>) -> Self {
        Self {
            kind,
            nsp: nsp.into(),
            id: None,
            data: None,
            attachments: Vec::new(),
        }
    }

    /// An EVENT (or BINARY_EVENT when `attachments` is not empty) from raw JSON args.
    pub fn event(
        nsp: impl Into<String>,
        name: &str,
        args: &[Box<RawValue>],
        attachments: Vec<Bytes>,
        id: Option<u64>,
    ) -> Self {
        Self {
            kind: PacketType::Event.with_binary(!attachments.is_empty()),
            nsp: nsp.into(),
            id,
            data: Some(event_array(Some(name), args)),
            attachments,
        }
    }

    /// An ACK (or BINARY_ACK) from raw JSON args.
    pub fn ack(
        nsp: impl Into<String>,
        id: u64,
        args: &[Box<RawValue>],
        attachments: Vec<Bytes>,
    ) -> Self {
        Self {
            kind: PacketType::Ack.with_binary(!attachments.is_empty()),
            nsp: nsp.into(),
            id: Some(id),
            data: Some(event_array(None, args)),
            attachments,
        }
    }

    /// Encodes the packet with `parser` into Engine.IO message frames (text
    /// frames carry the Engine.IO `4` type character already).
    pub fn encode(&self, parser: Parser) -> Vec<Frame> {
        match parser {
            Parser::Json => super::json::encode(self),
            Parser::MsgPack => vec![super::msgpack::encode(self)],
        }
    }
}

/// The Socket.IO parser: the default JSON one, or msgpack
/// (the npm `socket.io-msgpack-parser` format).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Parser {
    /// Text packets with binary attachments in separate frames.
    #[default]
    Json,
    /// One binary frame per packet, binary values inline.
    MsgPack,
}

/// Why a Socket.IO packet was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The packet was empty.
    #[error("empty packet")]
    Empty,
    /// A text packet was not valid UTF-8.
    #[error("invalid UTF-8")]
    InvalidUtf8,
    /// Unknown packet type.
    #[error("unknown packet type")]
    UnknownType,
    /// The attachment count was missing or malformed.
    #[error("invalid attachment count")]
    InvalidAttachments,
    /// A placeholder of a binary packet does not index one of its
    /// attachments (`num` out of range, negative, not an integer, missing).
    #[error("illegal attachments")]
    IllegalAttachments,
    /// More attachments than allowed.
    #[error("too many attachments ({0})")]
    TooManyAttachments(usize),
    /// The ack id was malformed or too large.
    #[error("invalid ack id")]
    InvalidAckId,
    /// The namespace was malformed.
    #[error("invalid namespace")]
    InvalidNamespace,
    /// The payload was not valid JSON, or not of the shape the type requires.
    #[error("invalid payload: {0}")]
    InvalidPayload(String),
    /// A binary frame arrived when no packet expected one (JSON parser), or a
    /// text frame arrived with the msgpack parser.
    #[error("unexpected frame")]
    UnexpectedFrame,
}

/// Turns Engine.IO messages into Socket.IO packets, collecting binary
/// attachments for BINARY_EVENT and BINARY_ACK.
#[derive(Debug)]
pub struct Decoder {
    parser: Parser,
    max_attachments: usize,
    pending: Option<(Packet, usize)>,
}

impl Decoder {
    /// A decoder for `parser` that refuses packets with more than
    /// `max_attachments` attachments.
    pub fn new(parser: Parser, max_attachments: usize) -> Self {
        Self {
            parser,
            max_attachments,
            pending: None,
        }
    }

    /// True while a binary packet waits for attachments.
    pub fn is_waiting_for_attachments(&self) -> bool {
        self.pending.is_some()
    }

    /// Decodes one Engine.IO message (without its `4` type character for text).
    /// Returns a packet once it is complete.
    ///
    /// ```
    /// use tether_proto::engine::Frame;
    /// use tether_proto::socketio::{Decoder, PacketType, Parser};
    /// let mut d = Decoder::new(Parser::Json, 10);
    /// let p = d.decode(Frame::text_static("2/chat,7[\"hi\",1]")).unwrap().unwrap();
    /// assert_eq!((p.kind, p.nsp.as_str(), p.id), (PacketType::Event, "/chat", Some(7)));
    /// ```
    pub fn decode(&mut self, frame: Frame) -> Result<Option<Packet>, DecodeError> {
        match (self.parser, frame) {
            (Parser::Json, Frame::Text(text)) => {
                if self.pending.is_some() {
                    return Err(DecodeError::UnexpectedFrame);
                }
                let text = std::str::from_utf8(&text).map_err(|_| DecodeError::InvalidUtf8)?;
                let (packet, expected) = super::json::decode(text, self.max_attachments)?;
                if expected == 0 {
                    Ok(Some(packet))
                } else {
                    self.pending = Some((packet, expected));
                    Ok(None)
                }
            }
            (Parser::Json, Frame::Binary(bin)) => {
                let (packet, expected) =
                    self.pending.as_mut().ok_or(DecodeError::UnexpectedFrame)?;
                packet.attachments.push(bin);
                if packet.attachments.len() == *expected {
                    Ok(self.pending.take().map(|(p, _)| p))
                } else {
                    Ok(None)
                }
            }
            (Parser::MsgPack, Frame::Binary(bin)) => {
                super::msgpack::decode(&bin, self.max_attachments).map(Some)
            }
            (Parser::MsgPack, Frame::Text(_)) => Err(DecodeError::UnexpectedFrame),
        }
    }
}

/// Builds the JSON array of an event (`["name", ...args]`) or an ack (`[...args]`).
pub fn event_array(name: Option<&str>, args: &[Box<RawValue>]) -> Box<RawValue> {
    let mut out = String::with_capacity(2 + args.iter().map(|a| a.get().len() + 1).sum::<usize>());
    out.push('[');
    if let Some(name) = name {
        // Serialising a str cannot fail.
        out.push_str(&serde_json::to_string(name).unwrap_or_default());
    }
    for (i, arg) in args.iter().enumerate() {
        if i > 0 || name.is_some() {
            out.push(',');
        }
        out.push_str(arg.get());
    }
    out.push(']');
    // The pieces are valid JSON values, so the array is valid JSON.
    RawValue::from_string(out).unwrap_or_else(|_| empty_array())
}

fn empty_array() -> Box<RawValue> {
    RawValue::from_string("[]".to_owned()).unwrap_or_default()
}

/// Splits an event payload (`["name", ...args]`) into its name and raw args.
pub fn split_event(data: &RawValue) -> Result<(String, Vec<Box<RawValue>>), DecodeError> {
    let mut items: Vec<Box<RawValue>> =
        serde_json::from_str(data.get()).map_err(|e| DecodeError::InvalidPayload(e.to_string()))?;
    if items.is_empty() {
        return Err(DecodeError::InvalidPayload("empty event".into()));
    }
    let name: String = serde_json::from_str(items[0].get())
        .map_err(|_| DecodeError::InvalidPayload("event name is not a string".into()))?;
    items.remove(0);
    Ok((name, items))
}

/// The placeholder that stands for attachment `num`.
pub fn placeholder(num: usize) -> Box<RawValue> {
    RawValue::from_string(format!("{{\"_placeholder\":true,\"num\":{num}}}"))
        .unwrap_or_else(|_| empty_array())
}

/// Checks that every placeholder (an object whose `_placeholder` is `true`)
/// in the payload of a binary packet indexes one of its `attachments`, as the
/// reference parser does ("illegal attachments" otherwise).
pub(crate) fn check_placeholders(data: &RawValue, attachments: usize) -> Result<(), DecodeError> {
    fn walk(value: &serde_json::Value, attachments: usize) -> Result<(), DecodeError> {
        match value {
            serde_json::Value::Array(items) => items.iter().try_for_each(|v| walk(v, attachments)),
            serde_json::Value::Object(map) => {
                if map.get("_placeholder") == Some(&serde_json::Value::Bool(true)) {
                    let num = map.get("num").and_then(serde_json::Value::as_u64);
                    match num.and_then(|n| usize::try_from(n).ok()) {
                        Some(n) if n < attachments => Ok(()),
                        _ => Err(DecodeError::IllegalAttachments),
                    }
                } else {
                    map.values().try_for_each(|v| walk(v, attachments))
                }
            }
            _ => Ok(()),
        }
    }
    let value: serde_json::Value =
        serde_json::from_str(data.get()).map_err(|e| DecodeError::InvalidPayload(e.to_string()))?;
    walk(&value, attachments)
}

/// If `value` is a placeholder, the index of the attachment it stands for.
pub fn resolve_placeholder(value: &RawValue) -> Option<usize> {
    #[derive(serde::Deserialize)]
    struct Placeholder {
        #[serde(rename = "_placeholder")]
        placeholder: bool,
        num: usize,
    }
    let p: Placeholder = serde_json::from_str(value.get()).ok()?;
    p.placeholder.then_some(p.num)
}
