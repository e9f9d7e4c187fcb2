//! The chat app: the Socket.IO tutorial's chat, with nothing lost.
//!
//! Wire contract (kept from the tutorial):
//! - client -> server: `chat message` (content, clientOffset, [name], ack):
//!   stored once per clientOffset, then acked with `{ seq, duplicate }`;
//! - server -> everyone: `chat message` (content, serverOffset, meta), where
//!   serverOffset is the message's position in the store and meta is
//!   `{ id: clientOffset, name }` (with `--jwt-*`: the token's name, and
//!   `user`, its `sub`), followed by Tether's recovery offset;
//! - a client that connects with `auth.serverOffset` (and is not recovering a
//!   session) first gets every message after it, in order, then live ones.
//!   With `auth.epoch` (the store epoch of that offset, as the page learns it
//!   from the recovery offset `t.<epoch>.<seq>` of the messages), an offset
//!   of another epoch (the store was reset) starts from 0; so does an offset
//!   beyond the store's last position (a tutorial client after a reset).

use serde_json::json;
use tether::{Args, ArgsExt, Event, NamespaceRef, Socket, SocketIo};

use crate::auth::Identity;
use crate::forward::Forwarder;

/// Longest message accepted, in characters.
const MAX_MESSAGE_CHARS: usize = 4000;
/// Longest name accepted, in characters.
const MAX_NAME_CHARS: usize = 40;

/// Registers the chat on namespace `/` (the handle adds middlewares); with
/// a forwarder, the events it does not handle go to the backend.
pub fn install(io: &SocketIo, forward: Option<Forwarder>) -> NamespaceRef {
    let io2 = io.clone();
    io.ns("/", move |socket: Socket| {
        let io = io2.clone();
        if let Some(forward) = &forward {
            forward.attach(&socket);
        }
        async move {
            socket.on("chat message", move |socket: Socket, ev: Event| {
                let io = io.clone();
                async move { on_message(&io, &socket, ev).await }
            });
        }
    })
    .catch_up_from_auth_with_epoch("serverOffset", "epoch")
}

async fn on_message(io: &SocketIo, socket: &Socket, mut ev: Event) {
    let content: String = match ev.args().get(0) {
        Ok(content) => content,
        Err(_) => return drop(ev.ack((json!({ "error": "content must be a string" }),))),
    };
    let Ok(client_offset) = ev.args().get::<String>(1) else {
        return drop(ev.ack((json!({ "error": "clientOffset must be a string" }),)));
    };
    if content.chars().count() > MAX_MESSAGE_CHARS || client_offset.len() > 200 {
        return drop(ev.ack((json!({ "error": "message too long" }),)));
    }
    // The name: an authenticated user's from the token, whatever the client
    // says; else an optional third argument, else the one given at connection.
    let identity = socket.extension::<Identity>();
    let name = match &identity {
        Some(identity) => Some(identity.name.clone()),
        None => ev.args().get::<String>(2).ok().or_else(|| {
            let auth = &socket.handshake().auth;
            auth.get("name").and_then(|n| n.as_str()).map(str::to_owned)
        }),
    }
    .filter(|n| !n.is_empty())
    .map(|n| n.chars().take(MAX_NAME_CHARS).collect::<String>());
    let mut args = Args::new();
    let meta = match &identity {
        Some(identity) => json!({ "id": client_offset, "name": name, "user": identity.user }),
        None => json!({ "id": client_offset, "name": name }),
    };
    if args.push(&content).is_err() || {
        args.push_seq();
        args.push(&meta).is_err()
    } {
        return drop(ev.ack((json!({ "error": "cannot encode" }),)));
    }
    let Some(all) = io.of("/") else { return };
    // Queued now, in the order the client sent; acked from a task once
    // stored, so the next message of this client is taken meanwhile and the
    // store commits them together.
    let stored = all.publish_once(client_offset, "chat message", args);
    let ack = ev.take_ack();
    tokio::spawn(async move {
        let answer = match stored.await {
            Ok(outcome) => json!({
                "seq": outcome.seq(),
                "duplicate": matches!(outcome, tether::store::AppendOnce::Duplicate(_)),
            }),
            Err(e) => {
                tracing::warn!(error = %e, "message not stored");
                json!({ "error": "not stored, retry" })
            }
        };
        if let Some(ack) = ack {
            let _ = ack.send((answer,));
        }
    });
}
