//! Engine.IO `Packet::decode` on any text or binary frame.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use tether_proto::engine::{Frame, Packet};

fuzz_target!(|data: &[u8]| {
    let bytes = Bytes::copy_from_slice(data);
    // Text frames are UTF-8 on the wire, but the decoder must not rely on it.
    if let Ok(packet) = Packet::decode(Frame::Text(bytes.clone())) {
        let frame = packet.encode();
        // The encoding is the input, or its type character alone for the
        // packets without payload.
        if let Frame::Text(text) = &frame {
            assert!(bytes.starts_with(text), "{bytes:?} -> {text:?}");
        }
        assert_eq!(Packet::decode(frame), Ok(packet));
    }
    assert_eq!(
        Packet::decode(Frame::Binary(bytes.clone())),
        Ok(Packet::Binary(bytes))
    );
});
