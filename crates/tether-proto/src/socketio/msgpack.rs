//! The msgpack parser (wire format of the npm `socket.io-msgpack-parser`):
//! each packet is one binary frame holding a map `{type, nsp, data, id}`,
//! with binary values inline.
//!
//! Binary values are turned into placeholders + attachments on the way in,
//! and back on the way out, so the rest of the server sees one model.

use std::fmt::Write as _;

use bytes::Bytes;
use rmpv::Value;
use serde_json::value::RawValue;

use super::packet::{DecodeError, Packet, PacketType};
use crate::engine::Frame;

/// Deepest nesting accepted in a msgpack payload.
const MAX_DEPTH: usize = 128;

pub(crate) fn decode(bin: &[u8], max_attachments: usize) -> Result<Packet, DecodeError> {
    let mut reader = bin;
    let value = rmpv::decode::read_value_with_max_depth(&mut reader, MAX_DEPTH)
        .map_err(|e| DecodeError::InvalidPayload(e.to_string()))?;
    if !reader.is_empty() {
        return Err(DecodeError::InvalidPayload("trailing bytes".into()));
    }
    let Value::Map(entries) = value else {
        return Err(DecodeError::InvalidPayload("packet is not a map".into()));
    };
    let mut kind = None;
    let mut nsp = "/".to_owned();
    let mut id = None;
    let mut data = None;
    for (key, val) in entries {
        match key.as_str() {
            Some("type") => {
                kind = val
                    .as_u64()
                    .and_then(|n| u8::try_from(n).ok())
                    .and_then(PacketType::from_u8);
                if kind.is_none() {
                    return Err(DecodeError::UnknownType);
                }
            }
            Some("nsp") => {
                nsp = val
                    .as_str()
                    .ok_or(DecodeError::InvalidNamespace)?
                    .to_owned();
            }
            Some("id") => match val {
                Value::Nil => {}
                v => id = Some(v.as_u64().ok_or(DecodeError::InvalidAckId)?),
            },
            Some("data") => data = Some(val),
            _ => {}
        }
    }
    let kind = kind.ok_or(DecodeError::UnknownType)?;
    let mut attachments = Vec::new();
    let data = match data {
        None | Some(Value::Nil) => None,
        Some(v) if is_undefined(&v) => None,
        Some(v) => {
            let mut json = String::new();
            to_json(&v, &mut json, &mut attachments)?;
            if attachments.len() > max_attachments {
                return Err(DecodeError::TooManyAttachments(attachments.len()));
            }
            Some(
                RawValue::from_string(json)
                    .map_err(|e| DecodeError::InvalidPayload(e.to_string()))?,
            )
        }
    };
    let kind = kind.with_binary(!attachments.is_empty());
    let valid = match kind {
        PacketType::Connect => data.as_deref().is_none_or(|d| d.get().starts_with('{')),
        PacketType::Disconnect => data.is_none() && id.is_none(),
        PacketType::Event | PacketType::BinaryEvent => {
            data.as_deref().is_some_and(|d| d.get().starts_with("[\""))
        }
        PacketType::Ack | PacketType::BinaryAck => {
            id.is_some() && data.as_deref().is_some_and(|d| d.get().starts_with('['))
        }
        PacketType::ConnectError => data
            .as_deref()
            .is_some_and(|d| d.get().starts_with('{') || d.get().starts_with('"')),
    };
    if !valid {
        return Err(DecodeError::InvalidPayload("payload shape".into()));
    }
    Ok(Packet {
        kind,
        nsp,
        id,
        data,
        attachments,
    })
}

fn to_json(v: &Value, out: &mut String, attachments: &mut Vec<Bytes>) -> Result<(), DecodeError> {
    match v {
        Value::Nil => out.push_str("null"),
        Value::Boolean(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Integer(i) => {
            let _ = write!(out, "{i}");
        }
        Value::F32(f) => push_float(f64::from(*f), out),
        Value::F64(f) => push_float(*f, out),
        Value::String(s) => {
            let s = s
                .as_str()
                .ok_or_else(|| DecodeError::InvalidPayload("string is not UTF-8".into()))?;
            push_str(s, out);
        }
        Value::Binary(b) => {
            let _ = write!(
                out,
                "{{\"_placeholder\":true,\"num\":{}}}",
                attachments.len()
            );
            attachments.push(Bytes::copy_from_slice(b));
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                to_json(item, out, attachments)?;
            }
            out.push(']');
        }
        Value::Map(entries) => {
            out.push('{');
            for (i, (k, item)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                if k.as_str() == Some("_placeholder") {
                    // Only real binary values become placeholders: a client's
                    // look-alike map would alias an attachment.
                    return Err(DecodeError::InvalidPayload(
                        "reserved key _placeholder".into(),
                    ));
                }
                match k {
                    Value::String(s) => push_str(
                        s.as_str().ok_or_else(|| {
                            DecodeError::InvalidPayload("key is not UTF-8".into())
                        })?,
                        out,
                    ),
                    Value::Integer(n) => push_str(&n.to_string(), out),
                    _ => return Err(DecodeError::InvalidPayload("map key".into())),
                }
                out.push(':');
                to_json(item, out, attachments)?;
            }
            out.push('}');
        }
        v if is_undefined(v) => out.push_str("null"),
        Value::Ext(..) => return Err(DecodeError::InvalidPayload("msgpack extension".into())),
    }
    Ok(())
}

/// JavaScript's `undefined`, as the npm msgpack encoder (notepack) writes it:
/// a fixext 1 of type 0.
fn is_undefined(v: &Value) -> bool {
    matches!(v, Value::Ext(0, data) if data.as_slice() == [0])
}

fn push_str(s: &str, out: &mut String) {
    out.push_str(&serde_json::to_string(s).unwrap_or_default());
}

fn push_float(f: f64, out: &mut String) {
    if f.is_finite() {
        out.push_str(&serde_json::to_string(&f).unwrap_or_else(|_| "null".into()));
    } else {
        out.push_str("null");
    }
}

pub(crate) fn encode(packet: &Packet) -> Frame {
    let kind = match packet.kind {
        PacketType::BinaryEvent => PacketType::Event,
        PacketType::BinaryAck => PacketType::Ack,
        k => k,
    };
    let mut entries = vec![
        (Value::from("type"), Value::from(kind.as_u8())),
        (Value::from("nsp"), Value::from(packet.nsp.as_str())),
    ];
    if let Some(data) = &packet.data {
        let json: serde_json::Value = serde_json::from_str(data.get()).unwrap_or_default();
        entries.push((Value::from("data"), from_json(json, &packet.attachments)));
    }
    if let Some(id) = packet.id {
        entries.push((Value::from("id"), Value::from(id)));
    }
    let mut out = Vec::new();
    // Writing into a Vec cannot fail.
    let _ = rmpv::encode::write_value(&mut out, &Value::Map(entries));
    Frame::Binary(out.into())
}

fn from_json(v: serde_json::Value, attachments: &[Bytes]) -> Value {
    use serde_json::Value as J;
    match v {
        J::Null => Value::Nil,
        J::Bool(b) => Value::from(b),
        J::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                Value::from(n.as_f64().unwrap_or(0.0))
            }
        }
        J::String(s) => Value::from(s),
        J::Array(items) => Value::Array(
            items
                .into_iter()
                .map(|i| from_json(i, attachments))
                .collect(),
        ),
        J::Object(map) => {
            if map.get("_placeholder") == Some(&J::Bool(true)) {
                if let Some(bin) = map
                    .get("num")
                    .and_then(J::as_u64)
                    .and_then(|n| attachments.get(usize::try_from(n).ok()?))
                {
                    return Value::Binary(bin.to_vec());
                }
            }
            Value::Map(
                map.into_iter()
                    .map(|(k, v)| (Value::from(k), from_json(v, attachments)))
                    .collect(),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::socketio::{event_array, placeholder, Decoder, Parser};

    #[test]
    fn round_trip_with_binary() {
        let args = vec![
            RawValue::from_string("{\"a\":1,\"b\":[true,null,\"x\"]}".into()).unwrap(),
            placeholder(0),
        ];
        let packet = Packet {
            kind: PacketType::BinaryEvent,
            nsp: "/chat".into(),
            id: Some(12),
            data: Some(event_array(Some("ev"), &args)),
            attachments: vec![Bytes::from_static(&[1, 2, 3])],
        };
        let frames = packet.encode(Parser::MsgPack);
        assert_eq!(frames.len(), 1);
        let mut d = Decoder::new(Parser::MsgPack, 10);
        let back = d.decode(frames[0].clone()).unwrap().unwrap();
        assert_eq!(back, packet);
    }

    #[test]
    fn undefined_is_absent() {
        // {type: 0, nsp: "/", data: undefined} as socket.io-msgpack-parser encodes it.
        let bytes = [
            0x83, 0xa4, b't', b'y', b'p', b'e', 0x00, 0xa3, b'n', b's', b'p', 0xa1, b'/', 0xa4,
            b'd', b'a', b't', b'a', 0xd4, 0x00, 0x00,
        ];
        let mut d = Decoder::new(Parser::MsgPack, 10);
        let p = d
            .decode(Frame::Binary(Bytes::copy_from_slice(&bytes)))
            .unwrap()
            .unwrap();
        assert_eq!(p.kind, PacketType::Connect);
        assert!(p.data.is_none());
    }

    #[test]
    fn rejects_garbage() {
        let mut d = Decoder::new(Parser::MsgPack, 10);
        assert!(d
            .decode(Frame::Binary(Bytes::from_static(&[0xc1])))
            .is_err());
        assert!(d
            .decode(Frame::Binary(Bytes::from_static(&[0x01])))
            .is_err());
        assert!(d.decode(Frame::text_static("2[\"a\"]")).is_err());
    }
}
