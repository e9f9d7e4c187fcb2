//! Engine.IO v4 packets and the HTTP long-polling payload format.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use bytes::{BufMut, Bytes, BytesMut};

/// Separator between packets of a long-polling payload (ASCII record separator).
const SEPARATOR: u8 = 0x1e;

/// One unit carried by a transport: a WebSocket frame, or one packet of a
/// long-polling payload.
///
/// `Text` always holds valid UTF-8: every constructor in this crate checks it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A text frame: an encoded Engine.IO packet (`4hello`).
    Text(Bytes),
    /// A binary frame: the raw bytes of a binary message.
    Binary(Bytes),
}

impl Frame {
    /// Number of payload bytes in the frame.
    pub fn len(&self) -> usize {
        match self {
            Frame::Text(b) | Frame::Binary(b) => b.len(),
        }
    }

    /// True when the frame carries no byte at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A text frame from a static string (for fixed packets such as `6`).
    pub fn text_static(s: &'static str) -> Self {
        Frame::Text(Bytes::from_static(s.as_bytes()))
    }

    /// A text frame from an owned string.
    pub fn text(s: String) -> Self {
        Frame::Text(Bytes::from(s))
    }
}

/// Why a frame or payload could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PacketError {
    /// The frame was empty.
    #[error("empty packet")]
    Empty,
    /// The first character is not a known packet type.
    #[error("unknown packet type {0:?}")]
    UnknownType(char),
    /// The text was not valid UTF-8.
    #[error("invalid UTF-8 in a text packet")]
    InvalidUtf8,
    /// A `b`-prefixed packet in a polling payload was not valid base64.
    #[error("invalid base64 in a binary packet")]
    InvalidBase64,
}

/// An Engine.IO v4 packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet {
    /// `0`: the handshake, a JSON object (server to client only).
    Open(Bytes),
    /// `1`: close the session.
    Close,
    /// `2`: ping, with an optional payload (`probe` during an upgrade).
    Ping(Bytes),
    /// `3`: pong, echoing the ping's payload.
    Pong(Bytes),
    /// `4`: a text message (its UTF-8 payload, without the type character).
    Message(Bytes),
    /// A binary message.
    Binary(Bytes),
    /// `5`: complete an upgrade.
    Upgrade,
    /// `6`: no operation (releases a pending long-polling request).
    Noop,
}

impl Packet {
    /// Decodes one frame.
    ///
    /// ```
    /// use tether_proto::engine::{Frame, Packet};
    /// let p = Packet::decode(Frame::text_static("4hello")).unwrap();
    /// assert_eq!(p, Packet::Message("hello".into()));
    /// ```
    pub fn decode(frame: Frame) -> Result<Packet, PacketError> {
        let text = match frame {
            Frame::Binary(b) => return Ok(Packet::Binary(b)),
            Frame::Text(t) => t,
        };
        let first = *text.first().ok_or(PacketError::Empty)?;
        let rest = text.slice(1..);
        Ok(match first {
            b'0' => Packet::Open(rest),
            b'1' => Packet::Close,
            b'2' => Packet::Ping(rest),
            b'3' => Packet::Pong(rest),
            b'4' => Packet::Message(rest),
            b'5' => Packet::Upgrade,
            b'6' => Packet::Noop,
            other => return Err(PacketError::UnknownType(char::from(other))),
        })
    }

    /// Encodes the packet as one frame.
    pub fn encode(&self) -> Frame {
        let (ty, body) = match self {
            Packet::Binary(b) => return Frame::Binary(b.clone()),
            Packet::Open(b) => (b'0', Some(b)),
            Packet::Close => (b'1', None),
            Packet::Ping(b) => (b'2', Some(b)),
            Packet::Pong(b) => (b'3', Some(b)),
            Packet::Message(b) => (b'4', Some(b)),
            Packet::Upgrade => (b'5', None),
            Packet::Noop => (b'6', None),
        };
        let body = body.map(|b| &b[..]).unwrap_or_default();
        let mut out = BytesMut::with_capacity(1 + body.len());
        out.put_u8(ty);
        out.put_slice(body);
        Frame::Text(out.freeze())
    }
}

/// Joins frames into one long-polling payload: text as is, binary as `b` +
/// base64, separated by `\x1e`.
///
/// ```
/// use tether_proto::engine::{encode_payload, Frame};
/// let body = encode_payload(&[Frame::text_static("4hi"), Frame::Binary(vec![1, 2].into())]);
/// assert_eq!(&body[..], b"4hi\x1ebAQI=");
/// ```
pub fn encode_payload<'a>(frames: impl IntoIterator<Item = &'a Frame>) -> Bytes {
    let mut out = BytesMut::new();
    for (i, frame) in frames.into_iter().enumerate() {
        if i > 0 {
            out.put_u8(SEPARATOR);
        }
        match frame {
            Frame::Text(t) => out.put_slice(t),
            Frame::Binary(b) => {
                out.put_u8(b'b');
                let start = out.len();
                out.resize(start + base64::encoded_len(b.len(), true).unwrap_or(0), 0);
                let written = BASE64
                    .encode_slice(b, &mut out[start..])
                    .unwrap_or_default();
                out.truncate(start + written);
            }
        }
    }
    out.freeze()
}

/// Splits a long-polling request body into frames.
///
/// The body must be UTF-8; `b`-prefixed packets are base64-decoded into
/// binary frames. Packets themselves are not validated here (see
/// [`Packet::decode`]).
pub fn decode_payload(body: Bytes) -> Result<Vec<Frame>, PacketError> {
    if std::str::from_utf8(&body).is_err() {
        return Err(PacketError::InvalidUtf8);
    }
    let mut frames = Vec::new();
    let mut start = 0;
    loop {
        let end = body[start..]
            .iter()
            .position(|&c| c == SEPARATOR)
            .map_or(body.len(), |p| start + p);
        let part = body.slice(start..end);
        match part.first() {
            None => return Err(PacketError::Empty),
            Some(b'b') => {
                let raw = BASE64
                    .decode(&part[1..])
                    .map_err(|_| PacketError::InvalidBase64)?;
                frames.push(Frame::Binary(raw.into()));
            }
            // A cut inside a multi-byte character cannot happen: 0x1e is ASCII.
            Some(_) => frames.push(Frame::Text(part)),
        }
        if end == body.len() {
            return Ok(frames);
        }
        start = end + 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_every_type() {
        let cases: [(&str, Packet); 7] = [
            ("1", Packet::Close),
            ("2", Packet::Ping(Bytes::new())),
            ("2probe", Packet::Ping("probe".into())),
            ("3probe", Packet::Pong("probe".into())),
            ("4héllo", Packet::Message("héllo".into())),
            ("5", Packet::Upgrade),
            ("6", Packet::Noop),
        ];
        for (wire, packet) in cases {
            assert_eq!(Packet::decode(Frame::text_static(wire)).unwrap(), packet);
            assert_eq!(packet.encode(), Frame::text_static(wire));
        }
    }

    #[test]
    fn rejects_bad_packets() {
        assert_eq!(
            Packet::decode(Frame::text_static("")),
            Err(PacketError::Empty)
        );
        assert_eq!(
            Packet::decode(Frame::text_static("abc")),
            Err(PacketError::UnknownType('a'))
        );
    }

    #[test]
    fn payload_round_trip() {
        let body = Bytes::from_static(b"4hello\x1ebAQIDBA==");
        let frames = decode_payload(body.clone()).unwrap();
        assert_eq!(
            frames,
            vec![
                Frame::text_static("4hello"),
                Frame::Binary(vec![1, 2, 3, 4].into())
            ]
        );
        assert_eq!(encode_payload(&frames), body);
    }

    #[test]
    fn payload_errors() {
        assert_eq!(
            decode_payload(Bytes::from_static(b"4a\x1e")),
            Err(PacketError::Empty)
        );
        assert_eq!(
            decode_payload(Bytes::from_static(b"b!!")),
            Err(PacketError::InvalidBase64)
        );
        assert_eq!(
            decode_payload(Bytes::from_static(b"4\xff")),
            Err(PacketError::InvalidUtf8)
        );
    }
}
