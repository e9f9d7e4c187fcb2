//! The Engine.IO session state machine driven by operations decoded from the
//! input, with its invariants checked after each one (as in the proptest
//! `session_invariants` of tether-proto).
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use tether_proto::engine::{
    decode_payload, CloseReason, EngineConfig, Event, Frame, Packet, SendError, Session,
    TransportKind,
};

#[derive(Debug, Arbitrary)]
struct Input {
    ping_interval: u16,
    ping_timeout: u16,
    upgrade_timeout: u16,
    max_buffer: u8,
    websocket: bool,
    ops: Vec<(Op, u16)>,
}

#[derive(Debug, Arbitrary)]
enum Op {
    Frame(ClientFrame),
    Probe(ClientFrame),
    AbortProbe,
    Timeout,
    Send(Vec<ServerFrame>),
    TakePoll,
    TakeFrames,
    BeginPoll,
    EndPoll,
    Close(u8, bool),
}

/// What a client sends: a well-known packet, or any text or binary.
#[derive(Debug, Arbitrary)]
enum ClientFrame {
    Known(u8),
    Text(Vec<u8>),
    Binary(Vec<u8>),
}

const KNOWN: [&str; 11] = [
    "2probe", "3probe", "2", "3", "5", "6", "1", "0{}", "4hello", "", "x",
];

impl ClientFrame {
    fn into_frame(self) -> Frame {
        match self {
            ClientFrame::Known(i) => Frame::text_static(KNOWN[usize::from(i) % KNOWN.len()]),
            ClientFrame::Text(t) => Frame::Text(t.into()),
            ClientFrame::Binary(b) => Frame::Binary(b.into()),
        }
    }
}

/// What the application sends: an Engine.IO message.
#[derive(Debug, Clone, Arbitrary)]
enum ServerFrame {
    Text(String),
    Binary(Vec<u8>),
}

impl ServerFrame {
    fn into_frame(self) -> Frame {
        match self {
            ServerFrame::Text(t) => Frame::text(format!("4{}", t.replace('\x1e', " "))),
            ServerFrame::Binary(b) => Frame::Binary(b.into()),
        }
    }
}

const REASONS: [CloseReason; 6] = [
    CloseReason::TransportClose,
    CloseReason::TransportError,
    CloseReason::PingTimeout,
    CloseReason::ForcedClose,
    CloseReason::ParseError,
    CloseReason::BufferFull,
];

/// Frames the session queues itself (close, ping) or answers a poll with.
fn is_control(frame: &Frame) -> bool {
    matches!(frame, Frame::Text(t) if [&b"1"[..], b"2", b"6"].contains(&&t[..]))
}

fn total_len(frames: &[Frame]) -> usize {
    frames.iter().map(Frame::len).sum()
}

fn ms(n: u16) -> Duration {
    Duration::from_millis(u64::from(n.max(1)))
}

fuzz_target!(|input: Input| {
    let config = EngineConfig {
        ping_interval: ms(input.ping_interval),
        ping_timeout: ms(input.ping_timeout),
        upgrade_timeout: ms(input.upgrade_timeout),
        max_buffer: usize::from(input.max_buffer),
        ..EngineConfig::default()
    };
    let max_buffer = config.max_buffer;
    let transport = if input.websocket {
        TransportKind::WebSocket
    } else {
        TransportKind::Polling
    };
    let mut now = Instant::now();
    let mut s = Session::new(config, transport, now);
    let mut sent: Vec<Frame> = Vec::new();
    let mut delivered: Vec<Frame> = Vec::new();
    let mut events = Vec::new();
    let mut reason = None;

    for (op, dt) in input.ops {
        now += Duration::from_millis(u64::from(dt));
        let queued = s.queued_bytes();
        let was_closed = s.closed().is_some();
        let had_frames = s.has_queued();
        match op {
            Op::Frame(frame) => {
                let _ = s.handle_frame(frame.into_frame(), now);
            }
            Op::Probe(frame) => {
                let _ = s.handle_probe_frame(frame.into_frame(), now);
            }
            Op::AbortProbe => s.abort_probe(),
            Op::Timeout => {
                s.handle_timeout(now);
                assert!(s.poll_timeout().is_none_or(|t| t > now));
            }
            Op::Send(frames) => {
                let frames: Vec<Frame> = frames.into_iter().map(ServerFrame::into_frame).collect();
                let size = total_len(&frames);
                match s.send(frames.clone()) {
                    Ok(()) => {
                        assert!(!was_closed);
                        assert_eq!(s.queued_bytes(), queued + size);
                        assert!(s.queued_bytes() <= max_buffer);
                        sent.extend(frames);
                    }
                    Err(SendError::Full) => {
                        assert!(!was_closed);
                        assert!(queued + size > max_buffer);
                        assert_eq!(s.queued_bytes(), queued);
                    }
                    Err(SendError::Closed) => assert!(was_closed),
                }
            }
            Op::TakePoll => {
                let transport = s.transport();
                let body = s.take_poll();
                if transport == TransportKind::Polling {
                    assert_eq!(s.queued_bytes(), 0);
                } else {
                    assert_eq!(s.queued_bytes(), queued);
                }
                if let Some(body) = body {
                    let frames = decode_payload(body.clone())
                        .unwrap_or_else(|e| panic!("undecodable poll body {body:?}: {e}"));
                    for frame in &frames {
                        assert!(Packet::decode(frame.clone()).is_ok());
                    }
                    // Every queued frame (empty binary ones too), or a noop.
                    if transport == TransportKind::Polling && had_frames {
                        assert_eq!(total_len(&frames), queued);
                    } else {
                        assert_eq!(&body[..], b"6");
                    }
                    delivered.extend(frames.into_iter().filter(|f| !is_control(f)));
                }
            }
            Op::TakeFrames => {
                let mut out = Vec::new();
                s.take_frames(&mut out);
                assert_eq!(total_len(&out), queued);
                assert_eq!(s.queued_bytes(), 0);
                delivered.extend(out.into_iter().filter(|f| !is_control(f)));
            }
            Op::BeginPoll => {
                // A closed session answers one more poll with its last frames.
                let transport = s.transport();
                if s.begin_poll().is_ok() {
                    assert!(!was_closed || (had_frames && transport == TransportKind::Polling));
                }
            }
            Op::EndPoll => s.end_poll(),
            Op::Close(r, notify) => {
                let r = REASONS[usize::from(r) % REASONS.len()];
                s.close(r, notify);
                assert_eq!(s.closed(), Some(reason.unwrap_or(r)));
            }
        }
        events.extend(std::iter::from_fn(|| s.poll_event()));

        match reason {
            Some(r) => assert_eq!(s.closed(), Some(r)),
            None => reason = s.closed(),
        }
        if reason.is_some() {
            assert_eq!(s.poll_timeout(), None);
            assert_eq!(s.send(Vec::new()), Err(SendError::Closed));
            if !(s.has_queued() && s.transport() == TransportKind::Polling) {
                assert_eq!(s.begin_poll(), Err(SendError::Closed));
            }
            assert!(!s.can_upgrade());
        } else {
            assert!(s.poll_timeout().is_some());
        }
        assert!(sent.starts_with(&delivered), "frames lost or reordered");
        let pending = total_len(&sent) - total_len(&delivered);
        assert!(pending <= max_buffer);
        assert!(s.queued_bytes() >= pending);
    }

    let mut rest = Vec::new();
    s.take_frames(&mut rest);
    delivered.extend(rest.into_iter().filter(|f| !is_control(f)));
    assert_eq!(delivered, sent);
    let closes = events
        .iter()
        .filter(|e| matches!(e, Event::Closed(_)))
        .count();
    assert_eq!(closes, usize::from(reason.is_some()));
    // Nothing happens after the close: no message, no upgrade.
    let mut after = events.iter().skip_while(|e| !matches!(e, Event::Closed(_)));
    assert!(!after.any(|e| matches!(e, Event::Message(_) | Event::Upgraded)));
});
