//! The Socket.IO JSON decoder on a sequence of frames.
//!
//! The input is split on `\x1e` (as in a polling payload); a part that starts
//! with `b` is a binary frame (the rest, raw), any other part a text frame.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use tether_proto::engine::Frame;
use tether_proto::socketio::{Decoder, PacketType, Parser};

const MAX_ATTACHMENTS: usize = 10;

fn placeholders_ok(value: &serde_json::Value, attachments: usize) -> bool {
    match value {
        serde_json::Value::Array(items) => items.iter().all(|v| placeholders_ok(v, attachments)),
        serde_json::Value::Object(map) if map.get("_placeholder") == Some(&true.into()) => map
            .get("num")
            .and_then(serde_json::Value::as_u64)
            .is_some_and(|n| n < attachments as u64),
        serde_json::Value::Object(map) => map.values().all(|v| placeholders_ok(v, attachments)),
        _ => true,
    }
}

fuzz_target!(|data: &[u8]| {
    let mut decoder = Decoder::new(Parser::Json, MAX_ATTACHMENTS);
    for part in data.split(|&b| b == 0x1e) {
        let frame = match part.split_first() {
            Some((b'b', bin)) => Frame::Binary(Bytes::copy_from_slice(bin)),
            _ => Frame::Text(Bytes::copy_from_slice(part)),
        };
        let Ok(Some(packet)) = decoder.decode(frame) else {
            continue;
        };
        assert!(packet.attachments.len() <= MAX_ATTACHMENTS);
        // The placeholder rule: in an accepted binary packet, every
        // `{"_placeholder": true, ..}` indexes one of its attachments.
        if matches!(packet.kind, PacketType::BinaryEvent | PacketType::BinaryAck) {
            if let Some(data) = &packet.data {
                let value: serde_json::Value = serde_json::from_str(data.get()).expect("valid JSON");
                assert!(
                    placeholders_ok(&value, packet.attachments.len()),
                    "illegal placeholder accepted: {}",
                    data.get()
                );
            }
        }
        // What was accepted encodes back to the same packet (BINARY_EVENT
        // without attachments is normalised to EVENT).
        let mut expected = packet.clone();
        expected.kind = packet.kind.with_binary(!packet.attachments.is_empty());
        let frames = packet.encode(Parser::Json);
        assert_eq!(frames.len(), 1 + packet.attachments.len());
        let mut again = Decoder::new(Parser::Json, MAX_ATTACHMENTS);
        let mut back = None;
        for (i, frame) in frames.into_iter().enumerate() {
            let frame = match frame {
                Frame::Text(t) if i == 0 => {
                    assert_eq!(t.first(), Some(&b'4'));
                    Frame::Text(t.slice(1..))
                }
                Frame::Binary(b) if i > 0 => Frame::Binary(b),
                other => panic!("unexpected frame {i}: {other:?}"),
            };
            let out = again.decode(frame);
            let out = out.unwrap_or_else(|e| panic!("re-encoded {packet:?} rejected: {e}"));
            back = back.or(out);
        }
        assert_eq!(back, Some(expected));
    }
});
