//! The WebSocket transport (tokio-websockets).

use bytes::Bytes;
use http::{HeaderName, HeaderValue};
use tether_proto::engine::Frame;
use tokio_websockets::{ClientBuilder, Limits, Message, WebSocketStream};

use super::{EngineOptions, Transport};
use crate::error::EngineError;

/// An open WebSocket.
pub(crate) type WsStream = WebSocketStream<crate::tls::Stream>;

/// Opens a WebSocket to the Engine.IO endpoint (`sid` set: to upgrade that session).
pub(crate) async fn connect(
    opts: &EngineOptions,
    sid: Option<&str>,
) -> Result<WsStream, EngineError> {
    let uri = opts.uri(true, Transport::WebSocket, sid);
    let err = |e: &dyn std::fmt::Display| EngineError::WebSocket(format!("{uri}: {e}"));
    let mut builder = ClientBuilder::new()
        .uri(&uri)
        .map_err(|e| err(&e))?
        .limits(Limits::default().max_payload_len(Some(opts.max_message)));
    for (name, value) in &opts.headers {
        let (name, value): (HeaderName, HeaderValue) = (name.clone(), value.clone());
        builder = builder.add_header(name, value).map_err(|e| err(&e))?;
    }
    let tls = if opts.secure {
        Some(
            opts.tls
                .as_ref()
                .ok_or_else(|| err(&"wss without TLS settings"))?,
        )
    } else {
        None
    };
    let stream = crate::tls::connect(&opts.host, opts.port, tls)
        .await
        .map_err(|e| err(&e))?;
    let (ws, _) = builder.connect_on(stream).await.map_err(|e| err(&e))?;
    Ok(ws)
}

/// The WebSocket message for an Engine.IO frame.
pub(crate) fn to_message(frame: Frame) -> Message {
    match frame {
        Frame::Text(t) => Message::text(t),
        Frame::Binary(b) => Message::binary(b),
    }
}

/// The Engine.IO frame of a data message; `None` for control messages.
pub(crate) fn to_frame(msg: Message) -> Option<Frame> {
    if msg.is_text() {
        Some(Frame::Text(Bytes::from(msg.into_payload())))
    } else if msg.is_binary() {
        Some(Frame::Binary(Bytes::from(msg.into_payload())))
    } else {
        None
    }
}
