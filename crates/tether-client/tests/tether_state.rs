//! The client's durable state against an in-process Tether server with a
//! store: the outbox survives a `kill -9` of the sending process, stream
//! positions survive a restart of the client, inbox entries are
//! acknowledged once handled.

mod common;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;
use common::{init_tracing, within, Inbox};
use serde_json::{json, Value};
use tether::store::{
    Append, AppendOnce, BoxFuture, Entry, EventLog, InboxEntry, Inboxes, MemoryStore, Retain,
    Retention, Seq, SessionRecord, Sessions, SharedFeed, Store, StoreError, StreamRetention,
};
use tether::{Event, Socket, SocketIo};
use tether_client::{Client, Stream};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};
use tokio::sync::watch;

/// A file under the temp dir, removed (with SQLite's -wal and -shm) on drop.
struct TempFile(PathBuf);

impl TempFile {
    fn new(what: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let name = format!("tether-client-{what}-{}-{nanos}.db", std::process::id());
        TempFile(std::env::temp_dir().join(name))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let mut p = self.0.clone().into_os_string();
            p.push(suffix);
            let _ = std::fs::remove_file(p);
        }
    }
}

/// `cargo build --example outbox_sender`; the executable path comes from
/// cargo's JSON messages (so CARGO_TARGET_DIR and profiles are respected).
fn sender_exe() -> PathBuf {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let built = BUILT.get_or_init(|| {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let out = std::process::Command::new(&cargo)
            .args([
                "build",
                // The whole workspace: the same features as `cargo test --workspace`,
                // so nothing is compiled again.
                "--workspace",
                "--example",
                "outbox_sender",
                "--message-format=json-render-diagnostics",
            ])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run {cargo:?}: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "cargo build --example outbox_sender failed:\n{}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|m| {
                m["reason"] == "compiler-artifact" && m["target"]["name"] == "outbox_sender"
            })
            .find_map(|m| m["executable"].as_str().map(PathBuf::from))
            .ok_or_else(|| "cargo did not report the outbox_sender executable".to_owned())
    });
    match built {
        Ok(path) => path.clone(),
        Err(e) => panic!("{e}"),
    }
}

// ---------------------------------------------------------------- outbox --

/// Messages sent by the sender process in all.
const N: u64 = 200;
/// The server stores this message at its first try but never acknowledges
/// that try: the sender is killed while it waits for the ack.
const HELD: u64 = 50;

struct ChatServer {
    io: SocketIo,
    port: u16,
    store: Arc<dyn Store>,
    /// Every try received: (content, message id).
    tries: Arc<Mutex<Vec<(String, String)>>>,
    /// Set once the held message was stored (its ack withheld).
    held: watch::Receiver<bool>,
}

async fn chat_server() -> ChatServer {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let io = SocketIo::with_store(tether::Config::default(), store.clone());
    let tries: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let (held_tx, held) = watch::channel(false);
    let held_tx = Arc::new(held_tx);
    let (io2, tries2) = (io.clone(), tries.clone());
    io.ns("/", move |socket: Socket| {
        let (io, tries, held_tx) = (io2.clone(), tries2.clone(), held_tx.clone());
        async move {
            socket.on("chat message", move |_: Socket, mut ev: Event| {
                let (io, tries, held_tx) = (io.clone(), tries.clone(), held_tx.clone());
                async move {
                    let content: String = ev.args().get(0).unwrap_or_default();
                    let id: String = ev.args().get(1).unwrap_or_default();
                    let first_try = {
                        let mut tries = tries.lock().unwrap();
                        let first = !tries.iter().any(|(c, _)| *c == content);
                        tries.push((content.clone(), id.clone()));
                        first
                    };
                    let outcome = match io.of("/") {
                        Some(ns) => {
                            ns.publish_once(id, "chat message", (content.clone(),))
                                .await
                        }
                        None => return,
                    };
                    let ack = match outcome {
                        Ok(outcome) => {
                            json!({ "seq": outcome.seq(), "duplicate": outcome.is_duplicate() })
                        }
                        Err(e) => json!({ "error": e.to_string() }),
                    };
                    if first_try && content == format!("message {HELD}") {
                        // Stored, but the ack never leaves.
                        held_tx.send_replace(true);
                        return;
                    }
                    let _ = ev.ack((ack,));
                }
            });
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(io.clone().serve(listener));
    ChatServer {
        io,
        port,
        store,
        tries,
        held,
    }
}

struct Sender {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Sender {
    fn start(server: &ChatServer, state: &Path) -> Sender {
        let mut child = Command::new(sender_exe())
            .arg(format!("http://127.0.0.1:{}/", server.port))
            .arg(state)
            .arg(N.to_string())
            .args(["--ack-timeout-ms", "30000"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("the sender starts");
        let stdout = child.stdout.take().expect("stdout");
        Sender {
            child,
            lines: BufReader::new(stdout).lines(),
        }
    }

    async fn line(&mut self) -> String {
        within("a line from the sender", self.lines.next_line())
            .await
            .expect("read the sender's stdout")
            .expect("the sender exited early")
    }

    /// `start recorded=R unacked=U`.
    async fn start_line(&mut self) -> (u64, u64) {
        let line = self.line().await;
        let parse = || -> Option<(u64, u64)> {
            let rest = line.strip_prefix("start recorded=")?;
            let (r, u) = rest.split_once(" unacked=")?;
            Some((r.parse().ok()?, u.parse().ok()?))
        };
        parse().unwrap_or_else(|| panic!("unexpected first line {line:?}"))
    }

    /// `acked I ID`.
    fn acked(line: &str) -> Option<(u64, String)> {
        let rest = line.strip_prefix("acked ")?;
        let (i, id) = rest.split_once(' ')?;
        Some((i.parse().ok()?, id.to_owned()))
    }
}

fn contents(entries: &[Entry]) -> Vec<String> {
    let mut entries = entries.to_vec();
    entries.sort_by_key(|e| e.seq);
    entries
        .iter()
        .map(|e| {
            let args: Vec<Value> = serde_json::from_str(&e.entry.args).expect("stored args");
            args[0].as_str().expect("content").to_owned()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbox_survives_kill_9_of_the_sender() {
    init_tracing();
    let server = chat_server().await;
    let state = TempFile::new("outbox");
    let _ = sender_exe();

    // First run: killed while the server holds the ack of message HELD.
    let mut first = Sender::start(&server, state.path());
    assert_eq!(first.start_line().await, (0, 0), "a new outbox");
    let mut acked_first = Vec::new();
    while acked_first.len() < HELD as usize {
        let line = first.line().await;
        let (i, id) = Sender::acked(&line).unwrap_or_else(|| panic!("unexpected line {line:?}"));
        acked_first.push((i, id));
    }
    assert_eq!(
        acked_first.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
        (0..HELD).collect::<Vec<_>>(),
        "acked in order"
    );
    let mut held = server.held.clone();
    within("the held message reaches the server", held.wait_for(|h| *h))
        .await
        .unwrap();
    first.child.start_kill().expect("SIGKILL");
    let status = within("the sender dies", first.child.wait()).await.unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(9), "killed by SIGKILL: {status:?}");
    let stored = server
        .store
        .history("/", None, Seq::MAX, 1_000_000)
        .await
        .unwrap();
    assert_eq!(
        stored.len() as u64,
        HELD + 1,
        "0..=HELD stored before the kill"
    );

    // Second run on the same file: the outbox first, then the rest.
    let mut second = Sender::start(&server, state.path());
    let (recorded, unacked) = second.start_line().await;
    assert!(
        recorded > HELD && recorded < N,
        "recorded {recorded}: the held message and some after it"
    );
    assert!(
        unacked >= recorded - HELD,
        "at least HELD..recorded left in the outbox: {unacked}"
    );
    let mut acked_second = Vec::new();
    loop {
        let line = second.line().await;
        if let Some(rest) = line.strip_prefix("done unacked=") {
            assert_eq!(rest, "0", "the outbox is empty at the end");
            break;
        }
        let (i, id) = Sender::acked(&line).unwrap_or_else(|| panic!("unexpected line {line:?}"));
        acked_second.push((i, id));
    }
    let status = within("the sender exits", second.child.wait())
        .await
        .unwrap();
    assert!(status.success(), "{status:?}");
    assert_eq!(
        acked_second.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
        (recorded..N).collect::<Vec<_>>(),
        "the second run sends what was never recorded, in order"
    );

    // The server stored every message once, in order.
    let stored = server
        .store
        .history("/", None, Seq::MAX, 1_000_000)
        .await
        .unwrap();
    let expected: Vec<String> = (0..N).map(|i| format!("message {i}")).collect();
    assert_eq!(
        contents(&stored),
        expected,
        "stored = sent, once each, in order"
    );

    // Tries: each message came with one id only; the held one came twice
    // (its resend reused the id), every other message once.
    let tries = server.tries.lock().unwrap().clone();
    let mut ids: HashMap<String, HashSet<String>> = HashMap::new();
    for (content, id) in &tries {
        ids.entry(content.clone()).or_default().insert(id.clone());
    }
    assert_eq!(ids.len() as u64, N);
    assert!(ids.values().all(|s| s.len() == 1), "one id per message");
    // Sent twice: the outbox entries at or before HELD left at the restart
    // (HELD itself, and those acked whose removal was not committed yet when
    // the process died); the entries after HELD had never left the first
    // run (one emit in flight at a time).
    let resent = unacked - (recorded - HELD - 1);
    let mut twice: Vec<u64> = (0..N)
        .filter(|i| {
            tries
                .iter()
                .filter(|(c, _)| *c == format!("message {i}"))
                .count()
                > 1
        })
        .collect();
    twice.sort_unstable();
    assert_eq!(
        twice,
        (HELD + 1 - resent..=HELD).collect::<Vec<_>>(),
        "resent: the outbox entries up to HELD (second run from {recorded}, {unacked} in the outbox)"
    );
    assert_eq!(
        tries.len() as u64,
        N + resent,
        "every other message sent once"
    );
    // Ids of the first run's acks match what the server saw.
    for (i, id) in acked_first.iter().chain(&acked_second) {
        assert!(ids[&format!("message {i}")].contains(id));
    }
    // A third run finds nothing left to do.
    let mut third = Sender::start(&server, state.path());
    assert_eq!(third.start_line().await, (N, 0));
    assert_eq!(third.line().await, "done unacked=0");
    let status = within("the sender exits", third.child.wait())
        .await
        .unwrap();
    assert!(status.success());
    assert_eq!(
        server
            .store
            .history("/", None, Seq::MAX, 1_000_000)
            .await
            .unwrap()
            .len() as u64,
        N
    );
    server.io.close();
}

// --------------------------------------------------------------- streams --

/// A server that catches a new client up from `auth.serverOffset`; a
/// `marker` emitted by the client comes back (not stored): every event sent
/// before it has been handled by the time its handler runs.
async fn news_server() -> (SocketIo, u16) {
    let io = SocketIo::with_store(tether::Config::default(), Arc::new(MemoryStore::new()));
    io.ns("/", |socket: Socket| async move {
        socket.on("marker", |socket: Socket, _: Event| async move {
            let _ = socket.emit_volatile("marker", ());
        });
    })
    .catch_up_from_auth("serverOffset");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(io.clone().serve(listener));
    (io, port)
}

async fn publish_news(io: &SocketIo, range: std::ops::Range<u64>) {
    for i in range {
        io.of("/")
            .expect("namespace /")
            .publish("news", (json!({ "i": i }),))
            .await
            .expect("stored");
    }
}

fn news_index(args: &tether_client::Args) -> u64 {
    args.get::<Value>(0).expect("news payload")["i"]
        .as_u64()
        .expect("news index")
}

/// A round trip through the server and the socket's handlers.
async fn marker(client: &Client, markers: &mut Inbox) {
    client.emit("marker", ()).unwrap();
    markers.next().await;
}

#[tokio::test]
async fn stream_positions_survive_a_client_restart() {
    init_tracing();
    let (io, port) = news_server().await;
    let url = format!("http://127.0.0.1:{port}/");
    let state = TempFile::new("streams");
    let client = |with_state: bool| {
        let mut b = Client::builder(url.clone())
            .stream(Stream::new("serverOffset").event("news"))
            .connect(false);
        if with_state {
            b = b.state_file(state.path());
        }
        b.build()
    };

    // Before the first client: history it must not get (it has no position).
    publish_news(&io, 0..3).await;
    let a = client(true).await.unwrap();
    let mut news_a = Inbox::new(&a, "news");
    let mut markers_a = Inbox::new(&a, "marker");
    assert_eq!(a.stream_position("serverOffset"), None);
    within("A connects", a.connect()).await.unwrap();
    publish_news(&io, 3..8).await;
    let got: Vec<u64> = news_a.take(5).await.iter().map(news_index).collect();
    assert_eq!(got, (3..8).collect::<Vec<_>>());
    marker(&a, &mut markers_a).await;
    news_a.assert_empty();
    a.manager().sync_state().await.unwrap();
    let position = a.stream_position("serverOffset").expect("a position");
    a.close();
    drop((a, news_a, markers_a));

    // Missed while no client runs.
    publish_news(&io, 8..15).await;

    let b = client(true).await.unwrap();
    assert_eq!(
        b.stream_position("serverOffset"),
        Some(position),
        "read back from the state file"
    );
    let mut news_b = Inbox::new(&b, "news");
    let mut markers_b = Inbox::new(&b, "marker");
    within("B connects", b.connect()).await.unwrap();
    let got: Vec<u64> = news_b.take(7).await.iter().map(news_index).collect();
    assert_eq!(got, (8..15).collect::<Vec<_>>(), "exactly the missed ones");
    publish_news(&io, 15..16).await;
    assert_eq!(news_index(&news_b.next().await), 15, "then live ones");
    marker(&b, &mut markers_b).await;
    news_b.assert_empty();
    assert!(b.stream_position("serverOffset") > Some(position));

    // Without the state file, a new client has no position: no catch-up.
    let c = client(false).await.unwrap();
    let mut news_c = Inbox::new(&c, "news");
    let mut markers_c = Inbox::new(&c, "marker");
    within("C connects", c.connect()).await.unwrap();
    publish_news(&io, 16..17).await;
    assert_eq!(news_index(&news_c.next().await), 16);
    marker(&c, &mut markers_c).await;
    news_c.assert_empty();
    // B got that one too, once.
    assert_eq!(news_index(&news_b.next().await), 16);
    marker(&b, &mut markers_b).await;
    news_b.assert_empty();
    b.close();
    c.close();
    io.close();
}

// ----------------------------------------------------------------- inbox --

/// A memory store that reports every inbox acknowledgement it commits.
struct AckWatch {
    inner: MemoryStore,
    acks: watch::Sender<Vec<(String, Seq)>>,
}

impl EventLog for AckWatch {
    fn epoch(&self) -> &str {
        self.inner.epoch()
    }
    fn check_health(&self) -> BoxFuture<'_, tether::store::Health> {
        self.inner.check_health()
    }
    fn append_batch(
        &self,
        batch: Vec<Append>,
    ) -> BoxFuture<'_, Result<Vec<AppendOnce>, StoreError>> {
        self.inner.append_batch(batch)
    }
    fn read<'a>(
        &'a self,
        nsp: &'a str,
        rooms: &'a [String],
        after: Seq,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<Entry>, StoreError>> {
        self.inner.read(nsp, rooms, after, limit)
    }
    fn history<'a>(
        &'a self,
        nsp: &'a str,
        room: Option<&'a str>,
        before: Seq,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<Entry>, StoreError>> {
        self.inner.history(nsp, room, before, limit)
    }
    fn bounds(&self) -> BoxFuture<'_, Result<(Seq, Seq), StoreError>> {
        self.inner.bounds()
    }
    fn shared_feed(&self) -> Option<&dyn SharedFeed> {
        self.inner.shared_feed()
    }
}

impl Sessions for AckWatch {
    fn save_session(&self, record: SessionRecord) -> BoxFuture<'_, Result<(), StoreError>> {
        self.inner.save_session(record)
    }
    fn load_session<'a>(
        &'a self,
        pid: &'a str,
    ) -> BoxFuture<'a, Result<Option<SessionRecord>, StoreError>> {
        self.inner.load_session(pid)
    }
    fn delete_session<'a>(&'a self, pid: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        self.inner.delete_session(pid)
    }
}

impl Inboxes for AckWatch {
    fn inbox_push<'a>(
        &'a self,
        user: &'a str,
        event: String,
        args: String,
        attachments: Vec<Bytes>,
    ) -> BoxFuture<'a, Result<Seq, StoreError>> {
        self.inner.inbox_push(user, event, args, attachments)
    }
    fn inbox_pending<'a>(
        &'a self,
        user: &'a str,
        after: Seq,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<InboxEntry>, StoreError>> {
        self.inner.inbox_pending(user, after, limit)
    }
    fn inbox_ack<'a>(&'a self, user: &'a str, upto: Seq) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            self.inner.inbox_ack(user, upto).await?;
            self.acks
                .send_modify(|acks| acks.push((user.to_owned(), upto)));
            Ok(())
        })
    }
}

impl Retain for AckWatch {
    fn trim<'a>(
        &'a self,
        retention: Retention,
        streams: &'a [StreamRetention],
        sessions_before_ms: i64,
    ) -> BoxFuture<'a, Result<u64, StoreError>> {
        self.inner.trim(retention, streams, sessions_before_ms)
    }
    fn supports_stream_retention(&self) -> bool {
        self.inner.supports_stream_retention()
    }
    fn trimmed<'a>(
        &'a self,
        nsp: &'a str,
        streams: &'a [String],
    ) -> BoxFuture<'a, Result<Seq, StoreError>> {
        self.inner.trimmed(nsp, streams)
    }
}

/// What the inbox handler saw: the text, its inbox position, whether the
/// application was asked to ack, and whether the server still had the
/// entry pending while the handler ran.
type Handled = (String, Option<u64>, bool, bool);

/// A server whose sockets belong to the user named in `auth.user`; the
/// watch reports the inbox acknowledgements committed.
async fn inbox_server() -> (SocketIo, u16, watch::Receiver<Vec<(String, Seq)>>) {
    let (acks_tx, acks) = watch::channel(Vec::new());
    let store = Arc::new(AckWatch {
        inner: MemoryStore::new(),
        acks: acks_tx,
    });
    // The user is set by a middleware: run it on recovered sessions too
    // (Tether's default skips middlewares then, and the session record does
    // not keep the user).
    let config = tether::Config::default()
        .recovery(Some(tether::Recovery::default().skip_middlewares(false)));
    let io = SocketIo::with_store(config, store);
    io.ns("/", |socket: Socket| async move {
        socket.on("marker", |socket: Socket, _: Event| async move {
            let _ = socket.emit_volatile("marker", ());
        });
        socket.on("drop-transport", |socket: Socket, _: Event| async move {
            socket.close_transport();
        });
    })
    .with(|socket: Socket| async move {
        if let Some(user) = socket.handshake().auth.get("user").and_then(Value::as_str) {
            socket.set_user(user);
        }
        Ok(())
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(io.clone().serve(listener));
    (io, port, acks)
}

#[tokio::test]
async fn inbox_entries_acknowledged_after_the_handler() {
    init_tracing();
    let (io, port, acks) = inbox_server().await;
    let inbox = io.inbox("alice").expect("a store");

    // Pending before the device connects.
    let mut seqs = Vec::new();
    for i in 0..3 {
        seqs.push(inbox.push("dm", (format!("dm {i}"),)).await.unwrap());
    }
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Handled>();
    let server_inbox = inbox.clone();
    let client = Client::builder(format!("http://127.0.0.1:{port}/"))
        .auth(json!({ "user": "alice" }))
        .on_inbox("dm", move |ev| {
            let (tx, server_inbox) = (tx.clone(), server_inbox.clone());
            async move {
                let text: String = ev.args().get(0).unwrap_or_default();
                let seq = ev.inbox_seq();
                let pending = server_inbox.pending().await.unwrap_or_default();
                let still_pending = pending.iter().any(|e| Some(e.seq) == seq);
                let _ = tx.send((text, seq, ev.wants_ack(), still_pending));
            }
        })
        .build()
        .await
        .unwrap();
    let mut markers = Inbox::new(&client, "marker");
    // Live ones.
    for i in 3..5 {
        seqs.push(inbox.push("dm", (format!("dm {i}"),)).await.unwrap());
    }
    let mut handled = Vec::new();
    for _ in 0..5 {
        handled.push(within("an inbox entry", rx.recv()).await.expect("handler"));
    }
    let expected: Vec<Handled> = (0..5)
        .map(|i| (format!("dm {i}"), Some(seqs[i]), false, true))
        .collect();
    assert_eq!(
        handled, expected,
        "each entry handled once, in order, acked after"
    );
    let mut acks = acks.clone();
    let got = within("5 inbox acks", acks.wait_for(|a| a.len() >= 5))
        .await
        .unwrap()
        .clone();
    let expected_acks: Vec<(String, Seq)> = seqs.iter().map(|s| ("alice".to_owned(), *s)).collect();
    assert_eq!(got, expected_acks, "one ack per entry, in order");
    assert!(inbox.pending().await.unwrap().is_empty(), "nothing pending");
    // Nothing else handled nor acknowledged after a round trip.
    marker(&client, &mut markers).await;
    assert!(rx.try_recv().is_err());
    assert_eq!(acks.borrow().len(), 5);
    client.close();
    io.close();
}

#[tokio::test]
async fn inbox_entry_delivered_again_is_handled_once() {
    init_tracing();
    let (io, port, acks) = inbox_server().await;
    let inbox = io.inbox("bob").expect("a store");
    let seq = inbox.push("dm", ("only once",)).await.unwrap();

    // The first run of the handler loses its connection (so its ack can
    // only be lost) and returns once the client is connected again, by
    // which time the server has delivered the entry again.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(String, Option<u64>)>();
    let resume = Arc::new(tokio::sync::Notify::new());
    let first = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let handler_resume = resume.clone();
    let client = Client::builder(format!("http://127.0.0.1:{port}/"))
        .auth(json!({ "user": "bob" }))
        .reconnection(tether_client::Reconnection {
            delay: std::time::Duration::from_millis(100),
            randomization_factor: 0.0,
            ..Default::default()
        })
        .connect(false)
        .build()
        .await
        .unwrap();
    let socket = client.socket().clone();
    client.on_inbox("dm", move |ev| {
        let (tx, resume, first, socket) = (
            tx.clone(),
            handler_resume.clone(),
            first.clone(),
            socket.clone(),
        );
        async move {
            let text: String = ev.args().get(0).unwrap_or_default();
            let _ = tx.send((text, ev.inbox_seq()));
            if first.swap(false, std::sync::atomic::Ordering::SeqCst) {
                let _ = socket.emit("drop-transport", ());
                resume.notified().await;
            }
        }
    });
    let mut markers = Inbox::new(&client, "marker");
    let mut life = client.manager().lifecycle();
    within("connects", client.connect()).await.unwrap();
    let handled = within("the entry", rx.recv()).await.expect("handler");
    assert_eq!(handled, ("only once".to_owned(), Some(seq)));
    common::wait_for(&mut life, "disconnected", |e| {
        matches!(e, tether_client::Lifecycle::Disconnect { .. })
    })
    .await;
    common::wait_for(&mut life, "connected again", |e| {
        matches!(e, tether_client::Lifecycle::Connect { .. })
    })
    .await;
    resume.notify_one();

    let mut acks = acks.clone();
    let got = within("the inbox ack", acks.wait_for(|a| !a.is_empty()))
        .await
        .unwrap()
        .clone();
    assert_eq!(got, vec![("bob".to_owned(), seq)]);
    assert!(inbox.pending().await.unwrap().is_empty(), "nothing pending");
    marker(&client, &mut markers).await;
    assert!(rx.try_recv().is_err(), "the handler ran once");
    assert_eq!(acks.borrow().len(), 1, "one ack");
    client.close();
    io.close();
}
