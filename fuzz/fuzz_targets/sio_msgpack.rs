//! The Socket.IO msgpack decoder on one binary frame (the whole input).
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};
use tether_proto::engine::Frame;
use tether_proto::socketio::{resolve_placeholder, DecodeError, Decoder, Packet, Parser};

const MAX_ATTACHMENTS: usize = 10;

fuzz_target!(|data: &[u8]| {
    let mut decoder = Decoder::new(Parser::MsgPack, MAX_ATTACHMENTS);
    let bytes = Bytes::copy_from_slice(data);
    assert_eq!(
        decoder.decode(Frame::Text(bytes.clone())),
        Err(DecodeError::UnexpectedFrame)
    );
    let Ok(Some(packet)) = decoder.decode(Frame::Binary(bytes)) else {
        return;
    };
    assert!(packet.attachments.len() <= MAX_ATTACHMENTS);
    let frames = packet.encode(Parser::MsgPack);
    assert_eq!(frames.len(), 1);
    let back = decoder.decode(frames[0].clone());

    // Only real binaries become placeholders: no placeholder object without
    // its attachment, and no attachment that the data does not name (a
    // binary map key names it inside the key's text; a client's own string
    // may say "_placeholder" too, so the text alone is only an upper bound).
    let text = packet.data.as_ref().map_or("", |d| d.get());
    let data: Value = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(text).expect("data is JSON")
    };
    let (objects, named) = (placeholders(&data), text.matches("_placeholder").count());
    assert!(
        objects <= packet.attachments.len() && packet.attachments.len() <= named,
        "{objects} placeholder objects, {} attachments, {named} mentions in {text}",
        packet.attachments.len()
    );
    let back = back
        .unwrap_or_else(|e| panic!("re-encoded {packet:?} rejected: {e}"))
        .expect("a msgpack packet is one frame");
    let (a, b) = (canonical(&packet), canonical(&back));
    assert_eq!((a.0, a.1, a.2), (b.0, b.1, b.2));
    assert!(nearly_equal(&a.3, &b.3), "{:?} != {:?}", a.3, b.3);
});

/// The placeholder objects (`{"_placeholder": true, "num": N}`) in `value`,
/// values or map keys (a binary map key becomes the placeholder's JSON text).
fn placeholders(value: &Value) -> usize {
    let is_placeholder = |v: &Value| {
        serde_json::value::to_raw_value(v)
            .ok()
            .and_then(|raw| resolve_placeholder(&raw))
            .is_some()
    };
    match value {
        Value::Object(_) if is_placeholder(value) => 1,
        Value::Object(map) => map
            .iter()
            .map(|(key, v)| {
                let key_is = serde_json::from_str::<Value>(key).is_ok_and(|k| is_placeholder(&k));
                usize::from(key_is) + placeholders(v)
            })
            .sum(),
        Value::Array(items) => items.iter().map(placeholders).sum(),
        _ => 0,
    }
}

/// Kind (without the binary distinction), namespace, id, and data with
/// placeholders replaced by their attachment.
fn canonical(p: &Packet) -> (u8, &str, Option<u64>, Value) {
    fn resolve(value: &mut Value, attachments: &[Bytes]) {
        let raw = serde_json::value::to_raw_value(value).expect("serialisable");
        if let Some(bin) = resolve_placeholder(&raw).and_then(|n| attachments.get(n)) {
            *value = Value::Object(Map::from_iter([("$binary".into(), bin.to_vec().into())]));
            return;
        }
        match value {
            Value::Array(items) => items.iter_mut().for_each(|v| resolve(v, attachments)),
            Value::Object(map) => map.values_mut().for_each(|v| resolve(v, attachments)),
            _ => {}
        }
    }
    let mut data = p.data.as_ref().map_or(Value::Null, |d| {
        serde_json::from_str(d.get()).expect("data is valid JSON")
    });
    resolve(&mut data, &p.attachments);
    (p.kind.with_binary(false).as_u8(), &p.nsp, p.id, data)
}

/// Equal up to a few ulps in floats: without serde_json's `float_roundtrip`
/// feature, re-encoding may move a float by one ulp.
fn nearly_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) if x.is_f64() || y.is_f64() => {
            match (x.as_f64(), y.as_f64()) {
                (Some(x), Some(y)) => {
                    x == y
                        || (x.is_sign_negative() == y.is_sign_negative()
                            && x.to_bits().abs_diff(y.to_bits()) <= 4)
                }
                _ => false,
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| nearly_equal(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|((kx, x), (ky, y))| kx == ky && nearly_equal(x, y))
        }
        _ => a == b,
    }
}
