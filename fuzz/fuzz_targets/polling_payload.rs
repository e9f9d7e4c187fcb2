//! `decode_payload` on any long-polling request body.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use tether_proto::engine::{decode_payload, encode_payload, Packet};

fuzz_target!(|data: &[u8]| {
    let body = Bytes::copy_from_slice(data);
    let Ok(frames) = decode_payload(body.clone()) else {
        return;
    };
    assert!(!frames.is_empty());
    // Base64 is decoded strictly, so a body that decodes is the one encoding
    // of its frames.
    assert_eq!(encode_payload(&frames), body);
    for frame in frames {
        let _ = Packet::decode(frame);
    }
});
