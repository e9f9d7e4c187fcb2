//! The delivery contract (tests/node/README.md, "Delivery contract"): the
//! handlers the Node delivery scenarios expect, shared by the integration
//! tests and `examples/delivery_server.rs`.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tether::store::Store;
use tether::{Args, ConnectError, Event, Socket, SocketIo};

/// Settings of a delivery contract server.
#[derive(Debug, Clone)]
pub struct Options {
    /// Delay before a `chat message` is stored (to make clients retry).
    pub slow: Duration,
    /// Middlewares run again on recovery.
    pub no_skip_middlewares: bool,
    /// Recovery window.
    pub window: Option<Duration>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            slow: Duration::ZERO,
            no_skip_middlewares: false,
            window: Some(Duration::from_secs(60)),
        }
    }
}

/// clientOffsets whose first try was seen (`--slow-ms` delays only that one).
static FIRST_TRIES: std::sync::Mutex<std::collections::BTreeSet<String>> =
    std::sync::Mutex::new(std::collections::BTreeSet::new());

fn welcome(socket: &Socket) {
    let hello = json!({
        "id": socket.id(),
        "nsp": socket.nsp(),
        "recovered": socket.recovered(),
        "rooms": socket.rooms(),
    });
    let _ = socket.emit_volatile("welcome", (hello,));
}

fn arg(args: &Args, i: usize) -> Args {
    let value = args.values().get(i).cloned().into_iter().collect();
    Args::from_raw(value, args.attachments().to_vec())
}

fn error(e: impl std::fmt::Display) -> serde_json::Value {
    json!({ "error": e.to_string() })
}

fn handlers(io: &SocketIo, store: &Arc<dyn Store>, opts: &Options, socket: &Socket) {
    welcome(socket);
    socket.on("join", |socket: Socket, mut ev: Event| async move {
        if let Ok(room) = ev.args().get::<String>(0) {
            socket.join(room);
        }
        let _ = ev.ack((socket.rooms(),));
    });
    socket.on("leave", |socket: Socket, mut ev: Event| async move {
        if let Ok(room) = ev.args().get::<String>(0) {
            socket.leave(&room);
        }
        let _ = ev.ack((socket.rooms(),));
    });
    socket.on("set-data", |socket: Socket, mut ev: Event| async move {
        let value: serde_json::Value = ev.args().get(0).unwrap_or_default();
        let _ = match socket.set_data(&value) {
            Ok(()) => ev.ack(("ok",)),
            Err(e) => ev.ack((error(e),)),
        };
    });
    socket.on("get-data", |socket: Socket, mut ev: Event| async move {
        let value: Option<serde_json::Value> = socket.data();
        let _ = ev.ack((value,));
    });
    let io2 = io.clone();
    socket.on("publish", move |socket: Socket, mut ev: Event| {
        let io = io2.clone();
        async move {
            let room: String = ev.args().get(0).unwrap_or_default();
            let ns = io.of(socket.nsp()).expect("the caller's namespace exists");
            let result = ns.to(room).publish("msg", arg(ev.args(), 1)).await;
            let _ = match result {
                Ok(seq) => ev.ack((json!({ "seq": seq }),)),
                Err(e) => ev.ack((error(e),)),
            };
        }
    });
    let io3 = io.clone();
    socket.on("publish-burst", move |socket: Socket, mut ev: Event| {
        let io = io3.clone();
        let nsp = socket.nsp().to_owned();
        async move {
            let room: String = ev.args().get(0).unwrap_or_default();
            let count: u64 = ev.args().get(1).unwrap_or_default();
            let tag: String = ev.args().get(2).unwrap_or_default();
            // Published from a task of its own, so that it runs while clients
            // disconnect and recover.
            tokio::spawn(async move {
                for i in 0..count {
                    let payload = json!({ "tag": tag, "i": i });
                    let ns = io.of(&nsp).expect("the caller's namespace exists");
                    if let Err(e) = ns.to(room.clone()).publish("msg", (payload,)).await {
                        tracing::warn!(error = %e, "burst publish failed");
                    }
                }
            });
            let _ = ev.ack(("started",));
        }
    });
    let io4 = io.clone();
    let slow = opts.slow;
    socket.on("chat message", move |_: Socket, mut ev: Event| {
        let io = io4.clone();
        async move {
            let content: String = ev.args().get(0).unwrap_or_default();
            let Ok(client_offset) = ev.args().get::<String>(1) else {
                let _ = ev.ack((error("clientOffset missing"),));
                return;
            };
            // Only a message's first try is slow: later tries find it stored.
            if !slow.is_zero()
                && FIRST_TRIES
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .insert(client_offset.clone())
            {
                tokio::time::sleep(slow).await;
            }
            let result = io
                .of("/")
                .expect("namespace / exists")
                .publish_once(client_offset, "chat message", (content,))
                .await;
            let _ = match result {
                Ok(outcome) => ev.ack((json!({
                    "seq": outcome.seq(),
                    "duplicate": outcome.is_duplicate()
                }),)),
                Err(e) => ev.ack((error(e),)),
            };
        }
    });
    let store2 = store.clone();
    socket.on("count", move |socket: Socket, mut ev: Event| {
        let store = store2.clone();
        async move {
            let room: Option<String> = ev.args().get(0).ok();
            let page = store
                .history(socket.nsp(), room.as_deref(), u64::MAX, 1_000_000)
                .await;
            let _ = match page {
                Ok(entries) => ev.ack((entries.len(),)),
                Err(e) => ev.ack((error(e),)),
            };
        }
    });
    socket.on("drop-transport", |socket: Socket, _: Event| async move {
        socket.close_transport();
    });
}

/// Registers the delivery contract's namespaces on `io` (built with a store).
pub fn install(io: &SocketIo, opts: Options) {
    install_inbox(io);
    let store = io.store().expect("the delivery contract needs a store");
    let (io2, store2, opts2) = (io.clone(), store.clone(), opts.clone());
    io.ns("/", move |socket: Socket| {
        let (io, store, opts) = (io2.clone(), store2.clone(), opts2.clone());
        async move { handlers(&io, &store, &opts, &socket) }
    })
    .catch_up_from_auth("serverOffset");
    let (io3, store3, opts3) = (io.clone(), store, opts);
    io.ns("/guarded", move |socket: Socket| {
        let (io, store, opts) = (io3.clone(), store3.clone(), opts3.clone());
        async move { handlers(&io, &store, &opts, &socket) }
    })
    .with(|socket: Socket| async move {
        if socket
            .handshake()
            .auth
            .get("token")
            .and_then(|t| t.as_str())
            == Some("ok")
        {
            Ok(())
        } else {
            Err(ConnectError::new("unauthorized"))
        }
    });
}

/// Namespace `/inbox`: the user is `auth.user` (refused without one);
/// `push` (user, payload) stores `dm` (payload) in that user's inbox and acks
/// `{ seq }`; `pending` (user) acks the positions still unacknowledged.
pub fn install_inbox(io: &SocketIo) {
    let io2 = io.clone();
    io.ns("/inbox", move |socket: Socket| {
        let io = io2.clone();
        async move {
            let io3 = io.clone();
            socket.on("push", move |_: Socket, mut ev: Event| {
                let io = io3.clone();
                async move {
                    let user: String = ev.args().get(0).unwrap_or_default();
                    let Some(inbox) = io.inbox(user) else { return };
                    let _ = match inbox.push("dm", arg(ev.args(), 1)).await {
                        Ok(seq) => ev.ack((json!({ "seq": seq }),)),
                        Err(e) => ev.ack((error(e),)),
                    };
                }
            });
            socket.on("pending", move |_: Socket, mut ev: Event| {
                let io = io.clone();
                async move {
                    let user: String = ev.args().get(0).unwrap_or_default();
                    let Some(inbox) = io.inbox(user) else { return };
                    let _ = match inbox.pending().await {
                        Ok(entries) => {
                            let seqs: Vec<u64> = entries.iter().map(|e| e.seq).collect();
                            ev.ack((seqs,))
                        }
                        Err(e) => ev.ack((error(e),)),
                    };
                }
            });
        }
    })
    .with(|socket: Socket| async move {
        match socket.handshake().auth.get("user").and_then(|u| u.as_str()) {
            Some(user) if !user.is_empty() => {
                socket.set_user(user);
                Ok(())
            }
            _ => Err(ConnectError::new("auth.user is required")),
        }
    });
}

/// The contract's settings.
pub fn config(opts: &Options) -> tether::Config {
    tether::Config::default()
        .ping_interval(Duration::from_millis(1_000))
        .ping_timeout(Duration::from_millis(2_000))
        .recovery(
            tether::Recovery::default()
                .max_disconnection(opts.window)
                .skip_middlewares(!opts.no_skip_middlewares),
        )
}
