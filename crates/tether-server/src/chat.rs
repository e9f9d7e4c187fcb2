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
//!
//! Added for the page (the tutorial's clients need none of it):
//! - meta also holds `time` (milliseconds since the Unix epoch, when the
//!   server took the message);
//! - rooms: `#general` is the tutorial's stream (the whole namespace, no
//!   room). `join room` (name, ack) joins another (names: 1 to 32 of
//!   `a-z 0-9 - _`, lowercase; stored as Socket.IO room `room:<name>`,
//!   a stream of its own), acked with `{ room }`; `chat message` takes the
//!   room as a fourth argument (content, clientOffset, name, room, ack):
//!   then it goes to that room only, and meta holds `room`;
//! - `chat history` ({ room, before, after, limit }, ack): a page of the
//!   stored messages of a room (absent: `#general`) before position `before`
//!   (absent: the newest), or just after position `after`, oldest first,
//!   acked with `{ messages: [{ content, position, offset, id, name, time }],
//!   before, last, more }`, `before` being where the next older page starts,
//!   `last` the page's last position and `more` whether there may be more in
//!   that direction;
//! - `chat limits` (ack): `{ message, name }`, the longest message and name
//!   accepted, in characters;
//! - presence: `chat name` (name, [ack]) says who this socket is (kept as its
//!   data); then everyone gets `presence` ({ count, names }: the sockets
//!   connected to the namespace on every node, and their names), again when
//!   a socket disconnects; `chat presence` (ack) answers the same;
//! - `typing` ({ room }): everyone else gets `typing` ({ id, name, room }),
//!   volatile: never stored, never replayed.
//!
//! Volatile events end with an object: the official client takes a last
//! string argument for a recovery offset.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use serde_json::{json, Value};
use tether::{Args, ArgsExt, Event, HistoryEntry, NamespaceRef, Socket, SocketIo};

use crate::auth::Identity;
use crate::forward::Forwarder;

/// Longest message accepted, in characters.
const MAX_MESSAGE_CHARS: usize = 4000;
/// Longest name accepted, in characters.
const MAX_NAME_CHARS: usize = 40;
/// Messages of a history page when the page asks for no number.
const HISTORY_PAGE: usize = 200;
/// Most messages of one history page.
const MAX_HISTORY_PAGE: usize = 500;
/// The default room: the tutorial's stream.
const GENERAL: &str = "general";
/// Longest room name.
const MAX_ROOM_CHARS: usize = 32;

/// Most rooms one socket may be in (its own id room included).
const MAX_ROOMS: usize = 50;
/// Presence changes within this time are announced once.
const PRESENCE_DELAY: std::time::Duration = std::time::Duration::from_millis(200);

/// Registers the chat on namespace `/` (the handle adds middlewares); with
/// a forwarder, the events it does not handle go to the backend.
pub fn install(io: &SocketIo, forward: Option<Forwarder>) -> NamespaceRef {
    let io2 = io.clone();
    let announcing = Arc::new(AtomicBool::new(false));
    io.ns("/", move |socket: Socket| {
        let io = io2.clone();
        if let Some(forward) = &forward {
            forward.attach(&socket);
        }
        let announcing = announcing.clone();
        async move {
            let io1 = io.clone();
            socket.on("chat message", move |socket: Socket, ev: Event| {
                let io = io1.clone();
                async move { on_message(&io, &socket, ev).await }
            });
            socket.on("join room", |socket: Socket, mut ev: Event| async move {
                let answer = match ev.args().get::<String>(0).ok().and_then(|r| room_name(&r)) {
                    Some(Room::General) => json!({ "room": GENERAL }),
                    Some(Room::Named(name)) => match join(&socket, &name) {
                        Ok(()) => json!({ "room": name }),
                        Err(e) => json!({ "error": e }),
                    },
                    None => json!({ "error": "bad room name (1 to 32 of a-z 0-9 - _)" }),
                };
                let _ = ev.ack((answer,));
            });
            let io1 = io.clone();
            socket.on("chat history", move |_socket: Socket, ev: Event| {
                let io = io1.clone();
                async move { on_history(&io, ev).await }
            });
            socket.on("chat limits", |_socket: Socket, mut ev: Event| async move {
                let limits = json!({ "message": MAX_MESSAGE_CHARS, "name": MAX_NAME_CHARS });
                let _ = ev.ack((limits,));
            });
            if let Some(name) = auth_name(&socket) {
                let _ = socket.set_data(&json!({ "name": name }));
            }
            let (io1, flag) = (io.clone(), announcing.clone());
            socket.on("chat name", move |socket: Socket, mut ev: Event| {
                let (io, flag) = (io1.clone(), flag.clone());
                async move {
                    // An authenticated user keeps the token's name.
                    let name = match socket.extension::<Identity>() {
                        Some(identity) => clean_name(&identity.name),
                        None => ev.args().get::<String>(0).ok().and_then(|n| clean_name(&n)),
                    };
                    let _ = socket.set_data(&json!({ "name": name }));
                    let _ = ev.ack((json!({ "name": name }),));
                    announce_presence(io, flag);
                }
            });
            let io1 = io.clone();
            socket.on("chat presence", move |_socket: Socket, mut ev: Event| {
                let io = io1.clone();
                async move {
                    let _ = ev.ack((presence(&io).await,));
                }
            });
            socket.on("typing", |socket: Socket, ev: Event| async move {
                let name = name_of(&socket);
                let given: Value = ev.args().get(0).unwrap_or(Value::Null);
                let room = match given
                    .get("room")
                    .and_then(Value::as_str)
                    .and_then(room_name)
                {
                    Some(Room::Named(room)) => room,
                    _ => GENERAL.to_owned(),
                };
                let typing = json!({ "id": socket.id(), "name": name, "room": room });
                let _ = socket.broadcast().volatile().emit("typing", (typing,));
            });
            let (io1, flag) = (io.clone(), announcing.clone());
            socket.on_disconnect(move |_socket: Socket, _reason| {
                announce_presence(io1.clone(), flag.clone());
                async {}
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
        Some(identity) => clean_name(&identity.name),
        None => ev
            .args()
            .get::<String>(2)
            .ok()
            .and_then(|n| clean_name(&n))
            .or_else(|| auth_name(socket)),
    };
    let mut args = Args::new();
    let time = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let room = match ev.args().get::<String>(3) {
        Err(_) => Room::General,
        Ok(r) if r.is_empty() => Room::General,
        Ok(r) => match room_name(&r) {
            Some(room) => room,
            None => return drop(ev.ack((json!({ "error": "bad room name" }),))),
        },
    };
    let mut meta = json!({ "id": client_offset, "name": name, "time": time });
    if let Some(identity) = &identity {
        meta["user"] = json!(identity.user);
    }
    if let Room::Named(room) = &room {
        meta["room"] = json!(room);
    }
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
    let stored = match &room {
        Room::General => all.publish_once(client_offset, "chat message", args),
        Room::Named(room) => {
            // The sender hears its room's messages (it joined, or joins now).
            if let Err(e) = join(socket, room) {
                return drop(ev.ack((json!({ "error": e }),)));
            }
            all.to(room_key(room))
                .publish_once(client_offset, "chat message", args)
        }
    };
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

/// `chat history`: a page of the whole-namespace stream (the chat's
/// messages) before a position, for the page's "older messages".
async fn on_history(io: &SocketIo, mut ev: Event) {
    let query: Value = ev.args().get(0).unwrap_or(Value::Null);
    let before = match query.get("before") {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_u64() {
            Some(n) => Some(n),
            None => {
                let _ = ev.ack((json!({ "error": "before must be a position" }),));
                return;
            }
        },
    };
    let limit = query
        .get("limit")
        .and_then(Value::as_u64)
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or(HISTORY_PAGE)
        .clamp(1, MAX_HISTORY_PAGE);
    let after = query.get("after").and_then(Value::as_u64);
    let room = match query.get("room").and_then(Value::as_str) {
        None => Room::General,
        Some(r) => match room_name(r) {
            Some(room) => room,
            None => {
                let _ = ev.ack((json!({ "error": "bad room name" }),));
                return;
            }
        },
    };
    let mut history = io.history("/").limit(limit);
    if let Room::Named(name) = &room {
        history = history.room(room_key(name));
    }
    let page = match (after, before) {
        (Some(seq), _) => history.after(seq).await,
        (None, Some(seq)) => history.before(seq).await,
        (None, None) => history.latest().await,
    };
    let answer = match page {
        Ok(page) => {
            let more = page.len() == limit;
            let start = page.first().map(|e| e.seq);
            let last = page.last().map(|e| e.seq);
            let messages: Vec<Value> = page.iter().filter_map(message_of).collect();
            json!({ "messages": messages, "before": start, "last": last, "more": more })
        }
        Err(e) => {
            tracing::warn!(error = %e, "history page not read");
            json!({ "error": "history unavailable, retry" })
        }
    };
    let _ = ev.ack((answer,));
}

/// A stored chat message as the page shows it; None for other events.
fn message_of(entry: &HistoryEntry) -> Option<Value> {
    if entry.event != "chat message" {
        return None;
    }
    let content: String = entry.args.get(0).ok()?;
    let meta: Value = entry.args.get(2).unwrap_or(Value::Null);
    let time = meta
        .get("time")
        .and_then(Value::as_u64)
        .unwrap_or_else(|| u64::try_from(entry.ts_ms).unwrap_or(0));
    Some(json!({
        "content": content,
        "position": entry.seq,
        "offset": entry.offset,
        "id": meta.get("id"),
        "name": meta.get("name"),
        "time": time,
    }))
}

/// A name as shown: not empty, at most [`MAX_NAME_CHARS`].
fn clean_name(name: &str) -> Option<String> {
    let name = name.trim();
    (!name.is_empty()).then(|| name.chars().take(MAX_NAME_CHARS).collect())
}

/// The name given at connection: an authenticated user's (the token's),
/// else `auth.name`.
fn auth_name(socket: &Socket) -> Option<String> {
    if let Some(identity) = socket.extension::<Identity>() {
        return clean_name(&identity.name);
    }
    let auth = &socket.handshake().auth;
    auth.get("name")
        .and_then(Value::as_str)
        .and_then(clean_name)
}

/// The socket's name: the last `chat name`, else the one given at connection.
fn name_of(socket: &Socket) -> Option<String> {
    match socket.data::<Value>() {
        Some(data) => data
            .get("name")
            .and_then(Value::as_str)
            .and_then(clean_name),
        None => auth_name(socket),
    }
}

/// Who is connected to the chat, on every node: `{ count, names }`, names
/// sorted, each once; `count` counts every socket, named or not.
async fn presence(io: &SocketIo) -> Value {
    let Some(all) = io.of("/") else {
        return json!({ "count": 0, "names": [] });
    };
    match all.fetch_sockets().await {
        Ok(sockets) => {
            let mut names: Vec<String> = sockets
                .iter()
                .filter_map(|s| {
                    let data = s.data::<Value>()?;
                    data.get("name")
                        .and_then(Value::as_str)
                        .and_then(clean_name)
                })
                .collect();
            names.sort();
            names.dedup();
            json!({ "count": sockets.len(), "names": names })
        }
        Err(e) => {
            tracing::warn!(error = %e, "presence: sockets not fetched");
            json!({ "error": "presence unavailable" })
        }
    }
}

/// Sends everyone who is connected (volatile: not stored), once for the
/// changes of the next [`PRESENCE_DELAY`] (`scheduled` says one is on its
/// way), so that many disconnections at once (a shutdown) are one fetch.
fn announce_presence(io: SocketIo, scheduled: Arc<AtomicBool>) {
    if scheduled.swap(true, Ordering::AcqRel) {
        return;
    }
    tokio::spawn(async move {
        tokio::time::sleep(PRESENCE_DELAY).await;
        scheduled.store(false, Ordering::Release);
        let now = presence(&io).await;
        if now.get("error").is_some() {
            return;
        }
        if let Some(all) = io.of("/") {
            let _ = all.volatile().emit("presence", (now,));
        }
    });
}

/// Joins the socket to a named room, up to [`MAX_ROOMS`].
fn join(socket: &Socket, name: &str) -> Result<(), &'static str> {
    let key = room_key(name);
    let rooms = socket.rooms();
    if !rooms.contains(&key) && rooms.len() >= MAX_ROOMS {
        return Err("too many rooms");
    }
    socket.join(key);
    Ok(())
}

/// A room of the chat.
enum Room {
    /// `#general`: the whole-namespace stream of the tutorial.
    General,
    /// Another room, by its name.
    Named(String),
}

/// A room name as given (`#` and case aside), if valid.
fn room_name(given: &str) -> Option<Room> {
    let name = given.trim().trim_start_matches('#').to_lowercase();
    let valid = !name.is_empty()
        && name.chars().count() <= MAX_ROOM_CHARS
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    match name.as_str() {
        _ if !valid => None,
        GENERAL => Some(Room::General),
        _ => Some(Room::Named(name)),
    }
}

/// The Socket.IO room (and store stream) of a named room.
fn room_key(name: &str) -> String {
    format!("room:{name}")
}
