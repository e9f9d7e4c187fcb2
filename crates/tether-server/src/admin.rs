//! The server side of the official Socket.IO Admin UI (npm
//! `@socket.io/admin-ui` 0.5), on namespace `/admin`, and the UI's own files
//! at `/admin/` (embedded from the pinned package by build.rs, unchanged).
//!
//! The protocol, as the package's server (`instrument()`) speaks it:
//! - CONNECT auth `{username, password}`, or `{sessionId}` from an earlier
//!   login (the UI keeps it to reconnect after a reload); a bad one is
//!   refused with CONNECT_ERROR "invalid credentials" (the UI says so);
//! - then `session` (a new login's session id), `config`
//!   (`supportedFeatures`), `all_sockets` (every namespace's sockets, of
//!   every node of a cluster); `server_stats` every 2 s (per node);
//!   `socket_connected`, `socket_disconnected`, `room_joined`, `room_left`
//!   as they happen (each node tells its own);
//! - from the UI: `emit`, `join`, `leave`, `_disconnect`, each with a
//!   namespace and a filter (a room: the UI gives a socket's id, its own
//!   room, or a room's name). Refused in read-only mode (not in
//!   `supportedFeatures`; an ack, when asked for, says `read-only`).
//!
//! Left out, and so not claimed in `supportedFeatures`: the per-event feed
//! (`ALL_EVENTS`: `event_received`/`event_sent`) and the packet and byte
//! charts (`AGGREGATED_EVENTS`). `server_stats` has Tether's delivery
//! figures in a `tether` field the UI ignores.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use serde_json::{json, Map, Value};
use std::sync::Mutex;
use tether::cluster::RemoteSocket;
use tether::store::Store;
use tether::{ConnectError, Event, Socket, SocketChange, SocketIo};

/// The namespace of the Admin UI.
pub const NAMESPACE: &str = "/admin";
/// How often each node sends its `server_stats`.
const STATS_EVERY: Duration = Duration::from_secs(2);
/// How long a login's session id lets the UI reconnect without the password.
const SESSION_TTL: Duration = Duration::from_secs(24 * 3600);
/// Most sessions kept; the oldest goes first.
const MAX_SESSIONS: usize = 1000;

/// The UI's files (path under `/admin/`, content), from build.rs.
const FILES: &[(&str, &[u8])] = include!(concat!(env!("OUT_DIR"), "/admin_ui.rs"));

/// The user and password the UI logs in with.
#[derive(Clone)]
pub struct Login {
    user: String,
    password: Password,
}

#[derive(Clone)]
enum Password {
    Plain(String),
    /// A bcrypt hash (`$2a$`, `$2b$`, `$2y$`).
    Bcrypt(String),
}

impl std::fmt::Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Login")
            .field("user", &self.user)
            .field("password", &"(hidden)")
            .finish()
    }
}

impl Login {
    /// `password` is a bcrypt hash when it starts with `$2` (then it must be
    /// a valid one), else the password itself. The reason names no part of
    /// the password.
    pub fn new(user: &str, password: &str) -> Result<Self, String> {
        let password = if password.starts_with("$2") {
            password.parse::<bcrypt::HashParts>().map_err(|_| {
                "starts with `$2` but is not a valid bcrypt hash \
                 (give the hash whole, `$2b$10$` and 53 more characters, or a password not starting with `$2`)"
                    .to_owned()
            })?;
            Password::Bcrypt(password.to_owned())
        } else {
            Password::Plain(password.to_owned())
        };
        Ok(Self {
            user: user.to_owned(),
            password,
        })
    }

    /// True when `user` and `password` are these. In constant time for a
    /// plain password (bcrypt's own check for a hash, which is slow on
    /// purpose: call it off the async threads).
    fn check(&self, user: &str, password: &str) -> bool {
        let user_ok: bool = crate::api::same_secret(self.user.as_bytes(), user.as_bytes()).into();
        let password_ok = match &self.password {
            Password::Plain(p) => crate::api::same_secret(p.as_bytes(), password.as_bytes()).into(),
            Password::Bcrypt(hash) => bcrypt::verify(password, hash).unwrap_or(false),
        };
        user_ok & password_ok
    }
}

/// What `tether serve` gives the Admin UI.
pub struct Options {
    pub login: Login,
    pub read_only: bool,
    /// The process's metrics, for the delivery figures.
    pub metrics: metrics_exporter_prometheus::PrometheusHandle,
    pub store: Arc<dyn Store>,
    /// Served over TLS (the handshakes' `secure`).
    pub secure: bool,
}

/// Session ids of logins, with when each was made.
#[derive(Default)]
struct Sessions(Mutex<HashMap<String, Instant>>);

impl Sessions {
    fn new_session(&self) -> String {
        let id: String = rand::random::<[u8; 16]>()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let mut map = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.retain(|_, made| made.elapsed() < SESSION_TTL);
        if map.len() >= MAX_SESSIONS {
            if let Some(oldest) = map.iter().min_by_key(|(_, t)| **t).map(|(k, _)| k.clone()) {
                map.remove(&oldest);
            }
        }
        map.insert(id.clone(), Instant::now());
        id
    }

    fn valid(&self, id: &str) -> bool {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(id)
            .is_some_and(|made| made.elapsed() < SESSION_TTL)
    }
}

/// The session id a new login gets, kept on its socket until the handler
/// sends it.
#[derive(Clone)]
struct NewSession(String);

/// Installs namespace `/admin` on `io`, its change feed and its statistics.
pub fn install(io: &SocketIo, options: Options) {
    let options = Arc::new(options);
    let sessions = Arc::new(Sessions::default());

    let opts = options.clone();
    let login = options.login.clone();
    io.ns(NAMESPACE, move |socket: Socket| {
        let opts = opts.clone();
        async move { on_admin(socket, opts).await }
    })
    .with(move |socket: Socket| {
        let (login, sessions) = (login.clone(), sessions.clone());
        async move { authenticate(&socket, &login, &sessions).await }
    });

    // Every socket change of this node, as it happens, in order; sent to
    // the UIs of every node (volatile: never stored).
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(&'static str, Vec<Value>)>();
    let secure = options.secure;
    spawn_stats(io, &options);
    io.monitor(move |change| {
        let now = Value::String(crate::rfc3339(now_ms()));
        let message = match change {
            SocketChange::Connected(socket) => (
                "socket_connected",
                vec![local_socket_json(socket, secure), now],
            ),
            SocketChange::Joined { nsp, id, room } => {
                ("room_joined", vec![json!(nsp), json!(room), json!(id), now])
            }
            SocketChange::Left { nsp, id, room } => {
                ("room_left", vec![json!(nsp), json!(room), json!(id), now])
            }
            SocketChange::Disconnected { nsp, id, reason } => (
                "socket_disconnected",
                vec![json!(nsp), json!(id), json!(reason.as_str()), now],
            ),
        };
        let _ = tx.send(message);
    });
    let feed_io = io.clone();
    tokio::spawn(async move {
        while let Some((event, args)) = rx.recv().await {
            if let Some(admin) = feed_io.of(NAMESPACE) {
                let _ = admin.volatile().emit(event, args_of(&args));
            }
        }
    });
}

/// Sends this node's `server_stats` every 2 s, until the server is gone.
fn spawn_stats(io: &SocketIo, options: &Options) {
    let weak = io.clone();
    let metrics = options.metrics.clone();
    let store = options.store.clone();
    let started = Instant::now();
    let hostname = hostname();
    let server_id = io
        .cluster()
        .map(|c| c.node_id().to_owned())
        .unwrap_or_else(|| hostname.clone());
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(STATS_EVERY);
        loop {
            tick.tick().await;
            if weak.is_shutting_down() {
                return;
            }
            let Some(admin) = weak.of(NAMESPACE) else {
                return;
            };
            let namespaces: Vec<Value> = weak
                .namespaces()
                .into_iter()
                .map(|(name, count)| json!({ "name": name, "socketsCount": count }))
                .collect();
            let bounds = tokio::time::timeout(Duration::from_secs(1), store.bounds()).await;
            let (last, oldest) = match bounds {
                Ok(Ok((last, oldest))) => (json!(last), json!(oldest)),
                _ => (Value::Null, Value::Null),
            };
            let figures = counters(&metrics.render());
            let stats = json!({
                "serverId": server_id,
                "hostname": hostname,
                "pid": std::process::id(),
                "uptime": started.elapsed().as_secs_f64(),
                "clientsCount": weak.engine().session_count(),
                "pollingClientsCount": weak.engine().polling_count(),
                "namespaces": namespaces,
                // Tether's delivery figures (the UI shows none of them).
                "tether": {
                    "storeEpoch": store.epoch(),
                    "lastPosition": last,
                    "oldestPosition": oldest,
                    "recoveries": figures.get(tether::metrics::RECOVERIES).copied().unwrap_or(0.0),
                    "replayedEvents": figures.get(tether::metrics::REPLAYED_EVENTS).copied().unwrap_or(0.0),
                    "duplicatesDropped": figures.get(tether::metrics::DUPLICATES).copied().unwrap_or(0.0),
                    "storeErrors": figures.get(tether::metrics::STORE_ERRORS).copied().unwrap_or(0.0),
                },
            });
            let _ = admin.volatile().emit("server_stats", (stats,));
        }
    });
}

/// The sum over labels of each counter in a Prometheus text rendering.
fn counters(text: &str) -> HashMap<String, f64> {
    let mut sums = HashMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((name_labels, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let name = name_labels.split('{').next().unwrap_or(name_labels);
        if let Ok(v) = value.parse::<f64>() {
            *sums.entry(name.to_owned()).or_insert(0.0) += v;
        }
    }
    sums
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "tether".to_owned())
}

fn args_of(values: &[Value]) -> tether::Args {
    let mut args = tether::Args::new();
    for v in values {
        // A JSON value always serialises.
        let _ = args.push(v);
    }
    args
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The CONNECT auth of the UI: a valid session id, or the user and password.
async fn authenticate(
    socket: &Socket,
    login: &Login,
    sessions: &Sessions,
) -> Result<(), ConnectError> {
    let auth = &socket.handshake().auth;
    if let Some(id) = auth.get("sessionId").and_then(Value::as_str) {
        if sessions.valid(id) {
            return Ok(());
        }
    }
    let user = auth.get("username").and_then(Value::as_str);
    let password = auth.get("password").and_then(Value::as_str);
    if let (Some(user), Some(password)) = (user, password) {
        let (login, user, password) = (login.clone(), user.to_owned(), password.to_owned());
        let ok = tokio::task::spawn_blocking(move || login.check(&user, &password))
            .await
            .unwrap_or(false);
        if ok {
            socket.insert_extension(NewSession(sessions.new_session()));
            return Ok(());
        }
    }
    tracing::info!(address = ?socket.handshake().address, "Admin UI: invalid credentials");
    Err(ConnectError::new("invalid credentials"))
}

/// A logged-in UI: its session, the features, every socket; then its actions.
async fn on_admin(socket: Socket, options: Arc<Options>) {
    if let Some(NewSession(id)) = socket.extension::<NewSession>() {
        let _ = socket.emit("session", (id,));
    }
    let features: &[&str] = if options.read_only {
        &[]
    } else {
        &[
            "EMIT",
            "JOIN",
            "LEAVE",
            "DISCONNECT",
            "MJOIN",
            "MLEAVE",
            "MDISCONNECT",
        ]
    };
    let _ = socket.emit("config", (json!({ "supportedFeatures": features }),));
    for action in ["emit", "join", "leave", "_disconnect"] {
        let read_only = options.read_only;
        socket.on(action, move |socket: Socket, ev: Event| async move {
            act(socket, ev, read_only).await;
        });
    }
    let io = socket.io();
    let secure = options.secure;
    let mut all = Vec::new();
    for (name, _) in io.namespaces() {
        let Some(op) = io.of(&name) else { continue };
        let local: HashMap<String, Socket> = op
            .sockets()
            .into_iter()
            .map(|s| (s.id().to_owned(), s))
            .collect();
        match op.fetch_sockets().await {
            Ok(sockets) => {
                for remote in sockets {
                    all.push(match local.get(remote.id()) {
                        Some(s) if remote.is_local() => local_socket_json(s, secure),
                        _ => remote_socket_json(&remote),
                    });
                }
            }
            Err(e) => {
                tracing::warn!(nsp = %name, error = %e, "Admin UI: fetching the sockets of other nodes failed");
                all.extend(local.values().map(|s| local_socket_json(s, secure)));
            }
        }
    }
    let _ = socket.emit("all_sockets", (all,));
}

/// One action of the UI: `emit(nsp, filter, event, ...args)`,
/// `join(nsp, room, filter)`, `leave(nsp, room, filter)`,
/// `_disconnect(nsp, close, filter)`. A filter is a room (a socket's id is
/// its own room); none: the whole namespace. Answers an ack when asked:
/// `{ok: how many sockets}` or `{error}`.
async fn act(socket: Socket, mut ev: Event, read_only: bool) {
    let name = ev.name().to_owned();
    let ack = ev.take_ack();
    let answer = |value: Value| {
        if let Some(ack) = ack {
            let _ = ack.send((value,));
        }
    };
    if read_only {
        tracing::info!(action = %name, "Admin UI: refused (read-only)");
        answer(json!({ "error": "read-only" }));
        return;
    }
    let args = ev.args();
    let nsp: String = match args.get(0) {
        Ok(nsp) => nsp,
        Err(_) => return answer(json!({ "error": "the first argument must be a namespace" })),
    };
    let io = socket.io();
    let Some(mut op) = io.of(&nsp) else {
        return answer(json!({ "error": format!("no namespace {nsp}") }));
    };
    let filter_at = if name == "emit" { 1 } else { 2 };
    if let Ok(Some(room)) = args.get::<Option<String>>(filter_at) {
        op = op.to(room);
    }
    let done: Result<usize, String> = match name.as_str() {
        "emit" => match args.get::<String>(2) {
            Ok(event) => {
                let mut rest = tether::Args::new();
                for value in args.values().iter().skip(3) {
                    rest.push_raw(value.clone());
                }
                op.emit(&event, rest).map_err(|e| e.to_string())
            }
            Err(_) => Err("the third argument must be an event name".into()),
        },
        "join" | "leave" => match args.get::<String>(1) {
            Ok(room) if name == "join" => op.sockets_join(room).await.map_err(|e| e.to_string()),
            Ok(room) => op.sockets_leave(&room).await.map_err(|e| e.to_string()),
            Err(_) => Err("the second argument must be a room".into()),
        },
        _ => {
            let close = args.get::<bool>(1).unwrap_or(false);
            op.disconnect_sockets(close)
                .await
                .map_err(|e| e.to_string())
        }
    };
    match done {
        Ok(count) => {
            tracing::info!(action = %name, %nsp, sockets = count, "Admin UI action");
            answer(json!({ "ok": count }));
        }
        Err(error) => {
            tracing::warn!(action = %name, %nsp, %error, "Admin UI action failed");
            answer(json!({ "error": error }));
        }
    }
}

/// Header values the UI is not shown.
fn shown_header(name: &str, value: &str) -> String {
    if matches!(name, "authorization" | "cookie" | "proxy-authorization") {
        "(hidden)".to_owned()
    } else {
        value.to_owned()
    }
}

/// A socket of this node as the UI lists it.
fn local_socket_json(socket: &Socket, secure: bool) -> Value {
    let hs = socket.handshake();
    let headers: Vec<(String, String)> = hs
        .headers
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
        .collect();
    let issued = hs
        .issued
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    socket_json(SocketFields {
        id: socket.id(),
        nsp: socket.nsp(),
        transport: socket.transport(),
        rooms: &socket.rooms(),
        data: socket.data::<Value>(),
        headers: &headers,
        address: hs.address.map(|a| a.ip().to_string()),
        uri: &hs.uri.to_string(),
        issued_ms: issued,
        secure,
    })
}

/// A socket of another node, as `fetch_sockets` tells it.
fn remote_socket_json(socket: &RemoteSocket) -> Value {
    let hs = socket.handshake();
    socket_json(SocketFields {
        id: socket.id(),
        nsp: socket.nsp(),
        transport: "unknown",
        rooms: socket.rooms(),
        data: socket.data::<Value>(),
        headers: &hs.headers,
        address: hs.address.clone(),
        uri: &hs.uri,
        issued_ms: hs.issued_ms,
        secure: false,
    })
}

struct SocketFields<'a> {
    id: &'a str,
    nsp: &'a str,
    transport: &'a str,
    rooms: &'a [String],
    data: Option<Value>,
    headers: &'a [(String, String)],
    address: Option<String>,
    uri: &'a str,
    issued_ms: i64,
    secure: bool,
}

/// The shape of the package's `serialize()`: id, clientId, transport, nsp,
/// data, handshake {address, headers, query, issued, secure, time, url,
/// xdomain} (no auth), rooms. Each socket is its own client here.
fn socket_json(f: SocketFields<'_>) -> Value {
    let mut headers = Map::new();
    for (name, value) in f.headers {
        headers.insert(name.clone(), Value::String(shown_header(name, value)));
    }
    let forwarded = ["cf-connecting-ip", "x-forwarded-for"]
        .iter()
        .find_map(|h| headers.get(*h).and_then(Value::as_str).map(str::to_owned));
    let url = f
        .uri
        .find("://")
        .and_then(|i| f.uri[i + 3..].find('/').map(|j| &f.uri[i + 3 + j..]))
        .unwrap_or(f.uri);
    let query: Map<String, Value> = url
        .split_once('?')
        .map(|(_, q)| {
            form_urlencoded::parse(q.as_bytes())
                .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
                .collect()
        })
        .unwrap_or_default();
    let xdomain = headers.contains_key("origin");
    json!({
        "id": f.id,
        "clientId": f.id,
        "transport": f.transport,
        "nsp": f.nsp,
        "data": f.data.filter(Value::is_object).unwrap_or_else(|| json!({})),
        "handshake": {
            "address": forwarded.or(f.address).unwrap_or_default(),
            "headers": headers,
            "query": query,
            "issued": f.issued_ms,
            "secure": f.secure,
            "time": crate::rfc3339(f.issued_ms),
            "url": url,
            "xdomain": xdomain,
        },
        "rooms": f.rooms,
    })
}

/// `GET /admin` and under it: the UI's files, with their content types;
/// `None` for another path (or when the Admin UI is off: 404).
pub fn file(path: &str) -> Option<(&'static [u8], &'static str)> {
    let rest = path.strip_prefix("/admin")?;
    let name = match rest {
        "" | "/" => "index.html",
        rest => rest.strip_prefix('/')?,
    };
    if FILES.is_empty() && name == "index.html" {
        return Some((
            b"The Admin UI files are missing: run `npm ci` in crates/tether-server/web and rebuild.\n",
            "text/plain; charset=utf-8",
        ));
    }
    let (_, bytes) = FILES.iter().find(|(n, _)| *n == name)?;
    Some((bytes, content_type(name)))
}

fn content_type(name: &str) -> &'static str {
    match name.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "application/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("json") => "application/json",
        Some("woff2") => "font/woff2",
        Some("woff") => "font/woff",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_and_bcrypt_passwords() {
        let plain = Login::new("admin", "s3cret").unwrap();
        assert!(plain.check("admin", "s3cret"));
        assert!(!plain.check("admin", "s3cret!"));
        assert!(!plain.check("admin", ""));
        assert!(!plain.check("root", "s3cret"));
        let hash = bcrypt::hash("s3cret", 4).unwrap();
        let hashed = Login::new("admin", &hash).unwrap();
        assert!(hashed.check("admin", "s3cret"));
        assert!(
            !hashed.check("admin", &hash),
            "the hash is not the password"
        );
        assert!(Login::new("admin", "$2b$10$short").is_err());
        assert!(!format!("{hashed:?}").contains(&hash));
    }

    #[test]
    fn the_ui_files_are_served_with_their_types() {
        let (index, kind) = file("/admin/").expect("index");
        assert_eq!(kind, "text/html; charset=utf-8");
        assert_eq!(file("/admin").map(|f| f.0), Some(index));
        assert!(file("/administrator").is_none());
        assert!(file("/admin/nothing.js").is_none());
        if !FILES.is_empty() {
            let text = String::from_utf8_lossy(index);
            assert!(text.contains("Socket.IO Admin UI"), "{text}");
            for (name, _) in FILES {
                assert!(file(&format!("/admin/{name}")).is_some(), "{name}");
            }
            let js = FILES.iter().find(|(n, _)| n.ends_with(".js")).unwrap().0;
            assert!(file(&format!("/admin/{js}"))
                .unwrap()
                .1
                .starts_with("application/javascript"));
        }
    }

    #[test]
    fn counters_sum_over_labels() {
        let text = "# TYPE x counter\nx{a=\"1\"} 2\nx{a=\"2\"} 3\ny 1.5\n";
        let sums = counters(text);
        assert_eq!(sums.get("x"), Some(&5.0));
        assert_eq!(sums.get("y"), Some(&1.5));
    }
}
