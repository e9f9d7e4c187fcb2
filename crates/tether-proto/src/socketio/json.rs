//! The default Socket.IO parser: `<type>[<attachments>-][<nsp>,][<id>][<json>]`.

use std::fmt::Write as _;

use bytes::{BufMut, BytesMut};
use serde_json::value::RawValue;

use super::packet::{DecodeError, Packet, PacketType};
use crate::engine::Frame;

/// Decodes one text packet. Returns the packet and the number of binary
/// attachments still to come.
pub(crate) fn decode(text: &str, max_attachments: usize) -> Result<(Packet, usize), DecodeError> {
    let bytes = text.as_bytes();
    let first = *bytes.first().ok_or(DecodeError::Empty)?;
    let kind = first
        .checked_sub(b'0')
        .and_then(PacketType::from_u8)
        .ok_or(DecodeError::UnknownType)?;
    let mut pos = 1;

    let mut attachments = 0;
    if matches!(kind, PacketType::BinaryEvent | PacketType::BinaryAck) {
        let digits = count_digits(&bytes[pos..]);
        if digits == 0 || bytes.get(pos + digits) != Some(&b'-') {
            return Err(DecodeError::InvalidAttachments);
        }
        attachments = text[pos..pos + digits]
            .parse::<usize>()
            .map_err(|_| DecodeError::InvalidAttachments)?;
        if attachments > max_attachments {
            return Err(DecodeError::TooManyAttachments(attachments));
        }
        pos += digits + 1;
    }

    let mut nsp = "/";
    if bytes.get(pos) == Some(&b'/') {
        let end = text[pos..].find(',').map_or(text.len(), |i| pos + i);
        nsp = &text[pos..end];
        pos = (end + 1).min(text.len());
    }

    let digits = count_digits(&bytes[pos..]);
    let mut id = None;
    if digits > 0 {
        id = Some(
            text[pos..pos + digits]
                .parse::<u64>()
                .map_err(|_| DecodeError::InvalidAckId)?,
        );
        pos += digits;
    }

    let rest = &text[pos..];
    if nesting_depth(rest) > MAX_DEPTH {
        return Err(DecodeError::InvalidPayload("nested too deeply".into()));
    }
    let data = if rest.is_empty() {
        None
    } else {
        Some(
            serde_json::from_str::<Box<RawValue>>(rest)
                .map_err(|e| DecodeError::InvalidPayload(e.to_string()))?,
        )
    };
    validate(kind, id, data.as_deref())?;
    if matches!(kind, PacketType::BinaryEvent | PacketType::BinaryAck) {
        if let Some(data) = &data {
            super::packet::check_placeholders(data, attachments)?;
        }
    }
    let packet = Packet {
        kind,
        nsp: nsp.to_owned(),
        id,
        data,
        attachments: Vec::with_capacity(attachments),
    };
    Ok((packet, attachments))
}

/// Deepest nesting of arrays and objects accepted in a payload.
const MAX_DEPTH: usize = 128;

/// The deepest nesting of `[` and `{` in JSON text, ignoring string contents.
fn nesting_depth(json: &str) -> usize {
    let (mut depth, mut max, mut in_string, mut escaped) = (0usize, 0usize, false, false);
    for c in json.bytes() {
        if in_string {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                max = max.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

fn count_digits(bytes: &[u8]) -> usize {
    bytes.iter().take_while(|c| c.is_ascii_digit()).count()
}

/// Checks that a payload has the shape its packet type requires.
fn validate(kind: PacketType, id: Option<u64>, data: Option<&RawValue>) -> Result<(), DecodeError> {
    let shape = data.map(|d| d.get().trim_start().as_bytes().first().copied());
    let invalid = |why: &str| Err(DecodeError::InvalidPayload(why.to_owned()));
    match kind {
        PacketType::Connect => match shape {
            None | Some(Some(b'{')) => Ok(()),
            _ => invalid("CONNECT payload must be an object"),
        },
        PacketType::Disconnect => match (shape, id) {
            (None, None) => Ok(()),
            _ => invalid("DISCONNECT takes no payload"),
        },
        PacketType::Event | PacketType::BinaryEvent => {
            let Some(data) = data else {
                return invalid("EVENT needs a payload");
            };
            let items: Vec<&RawValue> = serde_json::from_str(data.get()).map_err(|_| {
                DecodeError::InvalidPayload("EVENT payload must be an array".into())
            })?;
            match items.first().map(|v| v.get().as_bytes().first()) {
                Some(Some(b'"')) => Ok(()),
                _ => invalid("EVENT payload must start with the event name"),
            }
        }
        PacketType::Ack | PacketType::BinaryAck => match (shape, id) {
            (Some(Some(b'[')), Some(_)) => Ok(()),
            _ => invalid("ACK needs an id and an array payload"),
        },
        PacketType::ConnectError => match shape {
            Some(Some(b'{' | b'"')) => Ok(()),
            _ => invalid("CONNECT_ERROR payload must be an object or a string"),
        },
    }
}

/// Encodes a packet: one text frame (with the Engine.IO `4`), then its attachments.
pub(crate) fn encode(packet: &Packet) -> Vec<Frame> {
    let kind = packet.kind.with_binary(!packet.attachments.is_empty());
    let data = packet
        .data
        .as_deref()
        .map(RawValue::get)
        .unwrap_or_default();
    let mut head = String::with_capacity(24);
    head.push('4');
    head.push(char::from(b'0' + kind.as_u8()));
    if matches!(kind, PacketType::BinaryEvent | PacketType::BinaryAck) {
        let _ = write!(head, "{}-", packet.attachments.len());
    }
    if packet.nsp != "/" {
        head.push_str(&packet.nsp);
        head.push(',');
    }
    if let Some(id) = packet.id {
        let _ = write!(head, "{id}");
    }
    let mut text = BytesMut::with_capacity(head.len() + data.len());
    text.put_slice(head.as_bytes());
    text.put_slice(data.as_bytes());
    let mut frames = Vec::with_capacity(1 + packet.attachments.len());
    frames.push(Frame::Text(text.freeze()));
    frames.extend(packet.attachments.iter().cloned().map(Frame::Binary));
    frames
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::socketio::{Decoder, Parser};
    use bytes::Bytes;

    fn decode_one(s: &str) -> Result<Packet, DecodeError> {
        let mut d = Decoder::new(Parser::Json, 10);
        d.decode(Frame::Text(Bytes::copy_from_slice(s.as_bytes())))
            .map(|p| p.expect("complete"))
    }

    fn text_of(p: &Packet) -> String {
        match &p.encode(Parser::Json)[0] {
            Frame::Text(t) => String::from_utf8(t[1..].to_vec()).unwrap(),
            Frame::Binary(_) => panic!("text expected"),
        }
    }

    #[test]
    fn round_trips_reference_examples() {
        for wire in [
            "0",
            "0{\"token\":\"123\"}",
            "0/admin,{\"sid\":\"oSO0OpakMV_3jnilAAAA\"}",
            "1/admin,",
            "2[\"hello\",1]",
            "2/admin,456[\"project:delete\",123]",
            "3/admin,456[]",
            "4{\"message\":\"Not authorized\"}",
            "4/random,{\"message\":\"Invalid namespace\"}",
        ] {
            let p = decode_one(wire).unwrap();
            assert_eq!(text_of(&p), wire, "{wire}");
        }
    }

    #[test]
    fn namespace_without_comma() {
        let p = decode_one("0/custom").unwrap();
        assert_eq!(p.nsp, "/custom");
        assert!(p.data.is_none());
    }

    #[test]
    fn binary_event_collects_attachments() {
        let mut d = Decoder::new(Parser::Json, 10);
        let head =
            "52-789[\"m\",{\"_placeholder\":true,\"num\":0},{\"_placeholder\":true,\"num\":1}]";
        assert!(d.decode(Frame::Text(head.into())).unwrap().is_none());
        assert!(d.decode(Frame::Binary(vec![1].into())).unwrap().is_none());
        let p = d.decode(Frame::Binary(vec![2].into())).unwrap().unwrap();
        assert_eq!(p.kind, PacketType::BinaryEvent);
        assert_eq!(p.id, Some(789));
        assert_eq!(
            p.attachments,
            vec![Bytes::from(vec![1]), Bytes::from(vec![2])]
        );
        let frames = p.encode(Parser::Json);
        assert_eq!(frames.len(), 3);
        assert_eq!(frames[0], Frame::Text(format!("4{head}").into()));
    }

    #[test]
    fn rejects_malformed() {
        assert_eq!(decode_one("abc"), Err(DecodeError::UnknownType));
        assert_eq!(decode_one("9"), Err(DecodeError::UnknownType));
        assert!(matches!(
            decode_one("2{}"),
            Err(DecodeError::InvalidPayload(_))
        ));
        assert!(matches!(
            decode_one("2abc[\"a\"]"),
            Err(DecodeError::InvalidPayload(_))
        ));
        assert!(matches!(
            decode_one("2[]"),
            Err(DecodeError::InvalidPayload(_))
        ));
        assert!(matches!(
            decode_one("2[1]"),
            Err(DecodeError::InvalidPayload(_))
        ));
        assert!(matches!(
            decode_one("2"),
            Err(DecodeError::InvalidPayload(_))
        ));
        assert_eq!(decode_one("5[\"a\"]"), Err(DecodeError::InvalidAttachments));
        assert_eq!(
            decode_one("511-[\"a\"]"),
            Err(DecodeError::TooManyAttachments(11))
        );
        assert_eq!(
            decode_one("299999999999999999999999[\"a\"]"),
            Err(DecodeError::InvalidAckId)
        );
        assert!(matches!(
            decode_one("3[1]"),
            Err(DecodeError::InvalidPayload(_))
        ));
        let ok = format!("2[\"a\",{}{}]", "[".repeat(100), "]".repeat(100));
        assert!(decode_one(&ok).is_ok());
        let tricky = format!("2[\"a\",\"{}\\\"\"]", "[".repeat(1000));
        assert!(decode_one(&tricky).is_ok());
        let deep = format!("2[\"a\",{}{}]", "[".repeat(1000), "]".repeat(1000));
        assert!(matches!(
            decode_one(&deep),
            Err(DecodeError::InvalidPayload(_))
        ));
    }

    #[test]
    fn illegal_placeholders_are_refused() {
        for bad in [
            // out of range, negative, a string, a float, missing
            "51-[\"m\",{\"_placeholder\":true,\"num\":1}]",
            "51-[\"m\",{\"_placeholder\":true,\"num\":-1}]",
            "51-[\"m\",{\"_placeholder\":true,\"num\":\"0\"}]",
            "51-[\"m\",{\"_placeholder\":true,\"num\":0.5}]",
            "51-[\"m\",{\"_placeholder\":true}]",
            // nested, and in an ack
            "51-[\"m\",{\"a\":[{\"_placeholder\":true,\"num\":7}]}]",
            "61-3[{\"_placeholder\":true,\"num\":1}]",
            "50-[\"m\",{\"_placeholder\":true,\"num\":0}]",
        ] {
            assert_eq!(
                decode_one(bad).map(|_| ()),
                Err(DecodeError::IllegalAttachments),
                "{bad}"
            );
        }
        // `_placeholder` that is not `true` is app data, as in the reference.
        let mut d = Decoder::new(Parser::Json, 10);
        let head = "51-[\"m\",{\"_placeholder\":false,\"num\":9},{\"x\":{\"_placeholder\":true,\"num\":0}}]";
        assert!(d.decode(Frame::Text(head.into())).unwrap().is_none());
        assert!(d.decode(Frame::Binary(vec![1].into())).unwrap().is_some());
    }

    #[test]
    fn stray_binary_frame_is_an_error() {
        let mut d = Decoder::new(Parser::Json, 10);
        assert_eq!(
            d.decode(Frame::Binary(vec![1].into())),
            Err(DecodeError::UnexpectedFrame)
        );
    }
}
