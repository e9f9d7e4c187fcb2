//! The WebSocket transport: the HTTP upgrade, the probe of a polling session,
//! and the frame pump between a socket and its session.

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{header, HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tether_proto::engine::{CloseReason, Frame, ProbeReply, UpgradeState};
use tokio_websockets::{Limits, Message, ServerBuilder, WebSocketStream};

use super::{Body, Engine, Entry};

type Ws = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

/// How the WebSocket joins its session.
pub(super) enum Mode {
    /// A new session opened over WebSocket: send the open packet first.
    Fresh(Entry, Bytes),
    /// A polling session probing an upgrade.
    Probe(Entry),
    /// A WebSocket that may not join its session: closed right away.
    Refuse,
}

/// True when the request asks for a WebSocket upgrade.
pub(super) fn is_upgrade_request<B>(req: &Request<B>) -> bool {
    let has_token = |name: header::HeaderName, token: &str| {
        req.headers().get_all(name).iter().any(|v| {
            v.to_str()
                .map(|s| s.split(',').any(|p| p.trim().eq_ignore_ascii_case(token)))
                .unwrap_or(false)
        })
    };
    has_token(header::CONNECTION, "upgrade") && has_token(header::UPGRADE, "websocket")
}

/// Validates the handshake and builds the `101 Switching Protocols` answer.
pub(super) fn accept<B>(req: &mut Request<B>) -> Option<(Response<Body>, OnUpgrade)> {
    if req.headers().get(header::SEC_WEBSOCKET_VERSION)? != "13" {
        return None;
    }
    let key = req.headers().get(header::SEC_WEBSOCKET_KEY)?;
    let mut sha = sha1_smol::Sha1::new();
    sha.update(key.as_bytes());
    sha.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    let accept = BASE64.encode(sha.digest().bytes());
    let upgrade = req.extensions_mut().remove::<OnUpgrade>()?;
    let mut res = Response::new(Full::new(Bytes::new()));
    *res.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = res.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(
        header::SEC_WEBSOCKET_ACCEPT,
        HeaderValue::from_str(&accept).ok()?,
    );
    Some((res, upgrade))
}

fn to_message(frame: Frame) -> Message {
    match frame {
        Frame::Text(t) => Message::text(t),
        Frame::Binary(b) => Message::binary(b),
    }
}

/// A data frame from a message; `None` for control frames.
fn to_frame(msg: Message) -> Option<Frame> {
    if msg.is_text() {
        Some(Frame::Text(Bytes::from(msg.into_payload())))
    } else if msg.is_binary() {
        Some(Frame::Binary(Bytes::from(msg.into_payload())))
    } else {
        None
    }
}

/// Runs a WebSocket transport until its session ends.
pub(super) async fn run(engine: Arc<Engine>, upgrade: OnUpgrade, mode: Mode) {
    let Ok(upgraded) = upgrade.await else {
        if let Mode::Fresh(entry, _) = mode {
            engine.close(&entry, CloseReason::TransportError);
        }
        return;
    };
    let limits = Limits::default().max_payload_len(Some(engine.opts.session.max_payload));
    let mut ws = ServerBuilder::new()
        .limits(limits)
        .serve(TokioIo::new(upgraded));
    let entry = match mode {
        Mode::Fresh(entry, open) => {
            if ws.send(Message::text(open)).await.is_err() {
                engine.close(&entry, CloseReason::TransportError);
                return;
            }
            entry
        }
        Mode::Refuse => {
            close(&mut ws).await;
            return;
        }
        Mode::Probe(entry) => {
            if !probe(&engine, &entry, &mut ws).await {
                entry.conn.with_session(|s| s.abort_probe());
                close(&mut ws).await;
                return;
            }
            entry
        }
    };
    pump(&engine, &entry, &mut ws).await;
}

/// How long the server waits for the client's answer to its close frame
/// (and for the frame to be written) before it drops the TCP connection.
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// Closes the WebSocket: sends a close frame and waits for the client's, for
/// at most [`CLOSE_TIMEOUT`]; then the connection is dropped either way, so a
/// client that never answers (or never reads) does not hold it open.
async fn close(ws: &mut Ws) {
    if tokio::time::timeout(CLOSE_TIMEOUT, ws.close())
        .await
        .is_err()
    {
        tracing::debug!("websocket close handshake timed out; dropping the connection");
    }
}

/// Answers the probe of a polling session; true once the upgrade completed.
async fn probe(engine: &Engine, entry: &Entry, ws: &mut Ws) -> bool {
    let conn = &entry.conn;
    let mut probed = false;
    loop {
        let notified = conn.outgoing.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if conn.is_closed() || (probed && conn.upgrade_state() == UpgradeState::None) {
            return false;
        }
        tokio::select! {
            msg = ws.next() => {
                let Some(Ok(msg)) = msg else { return false };
                let Some(frame) = to_frame(msg) else { continue };
                let (reply, events) = conn.with_session(|s| s.handle_probe_frame(frame, Instant::now()));
                engine.dispatch(entry, events);
                match reply {
                    Ok(ProbeReply::Send(frame)) => {
                        probed = true;
                        if ws.send(to_message(frame)).await.is_err() {
                            return false;
                        }
                    }
                    Ok(ProbeReply::Upgraded) => return true,
                    Err(_) => return false,
                }
            }
            () = notified => {}
        }
    }
}

/// Writes `frames` (emptying it) as one message each, flushing once at the
/// end; the stream flushes on its own meanwhile when its buffer fills.
async fn write_all(ws: &mut Ws, frames: &mut Vec<Frame>) -> Result<(), tokio_websockets::Error> {
    for frame in frames.drain(..) {
        ws.feed(to_message(frame)).await?;
    }
    ws.flush().await
}

/// Moves frames both ways until the session closes.
async fn pump(engine: &Engine, entry: &Entry, ws: &mut Ws) {
    let conn = &entry.conn;
    let cfg = &engine.opts.session;
    let write_timeout = cfg.ping_interval + cfg.ping_timeout;
    let mut out = Vec::new();
    loop {
        let notified = conn.outgoing.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let (closed, more) = conn.take_frames(&mut out);
        if !out.is_empty() {
            // One WebSocket message per packet, all of the chunk in as few
            // writes as the socket takes (fed, then flushed once).
            let len: usize = out.iter().map(Frame::len).sum();
            // A client that stops reading for a whole heartbeat is gone.
            let sent = tokio::time::timeout(write_timeout, write_all(ws, &mut out)).await;
            if !matches!(sent, Ok(Ok(()))) {
                engine.close(entry, CloseReason::TransportError);
                return;
            }
            conn.written(len);
        }
        conn.written_all();
        if closed && !more {
            close(ws).await;
            return;
        }
        // Backpressure: while the layer above cannot take more, frames stay
        // unread (in the socket buffers, then in the client's).
        let paused = conn.reading_paused();
        tokio::select! {
            // The writer takes the queue a chunk at a time: go on with the
            // next one (a message from the client may come first).
            () = std::future::ready(()), if more => {}
            msg = ws.next(), if !paused => match msg {
                Some(Ok(msg)) => {
                    if msg.is_close() {
                        engine.close(entry, CloseReason::TransportClose);
                        continue;
                    }
                    let Some(frame) = to_frame(msg) else { continue };
                    let (_, events) = conn.with_session(|s| s.handle_frame(frame, Instant::now()));
                    engine.dispatch(entry, events);
                }
                Some(Err(e)) => {
                    tracing::debug!(sid = conn.sid(), error = %e, "websocket error");
                    engine.close(entry, CloseReason::TransportError);
                }
                None => engine.close(entry, CloseReason::TransportClose),
            },
            () = notified => {}
        }
    }
}
