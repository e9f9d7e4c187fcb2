//! `examples/axum_chat.rs` (the tutorial chat with stored messages inside
//! axum, next to ordinary routes) driven by the official `socket.io-client`
//! (tests/node, pinned) with the tutorial's own client logic
//! (tests/node/chat/tutorial.mjs), over WebSocket, long-polling and the
//! upgrade between them; axum's own routes keep answering beside it.
//!
//! Needs `npm ci` in tests/node and crates/tether-server/web/ (the client bundle the page loads).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The example's executable, built once per test binary.
fn example() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
            let out = Command::new(cargo)
                .args([
                    "build",
                    // The whole workspace: the same features as `cargo test --workspace`,
                    // so nothing is compiled again.
                    "--workspace",
                    "--example",
                    "axum_chat",
                    "--message-format=json-render-diagnostics",
                ])
                .current_dir(manifest_dir())
                .stdin(Stdio::null())
                .output()
                .expect("cargo runs");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .filter(|m| {
                    m["reason"] == "compiler-artifact" && m["target"]["name"] == "axum_chat"
                })
                .find_map(|m| m["executable"].as_str().map(PathBuf::from))
                .expect("cargo reports the example's executable")
        })
        .clone()
}

/// The example on a free port with a store file of its own, killed on drop.
struct Example {
    child: Child,
    addr: SocketAddr,
    dir: PathBuf,
}

impl Example {
    fn start(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("tether-axum-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut child = Command::new(example())
            .arg("0")
            .env("CHAT_DB", dir.join("chat.db"))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the example starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("the example prints its address");
        let addr = line
            .trim()
            .strip_prefix("listening on http://")
            .and_then(|rest| rest.trim_end_matches('/').parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line: {line:?}"));
        Self { child, addr, dir }
    }
}

impl Drop for Example {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A GET over a plain HTTP/1.1 connection: status and body.
fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_owned();
    (status, body)
}

/// Runs the tutorial's client logic against the example; returns its verdict.
fn tutorial(addr: SocketAddr, transport: &str) -> serde_json::Value {
    let node = manifest_dir().join("../../tests/node");
    assert!(
        node.join("node_modules/socket.io-client").exists(),
        "run `npm ci` in tests/node"
    );
    let mut child = Command::new("node")
        .args([
            "chat/tutorial.mjs",
            "--url",
            &format!("http://{addr}"),
            "--transport",
            transport,
        ])
        .args(["--count", "30"])
        .current_dir(node)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("node runs");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if child.try_wait().expect("wait").is_some() {
            break;
        }
        assert!(Instant::now() < deadline, "the tutorial script hung");
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut out = String::new();
    child
        .stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut out)
        .unwrap();
    let last = out.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|_| panic!("no verdict: {out}"))
}

fn run(transport: &str) {
    let example = Example::start(transport);
    let (status, body) = get(example.addr, "/hello");
    assert_eq!((status, body.as_str()), (200, "hello from axum"));
    let (status, page) = get(example.addr, "/");
    assert_eq!(status, 200);
    for id in [
        "id=\"form\"",
        "id=\"input\"",
        "id=\"messages\"",
        "/socket.io/socket.io.js",
    ] {
        assert!(page.contains(id), "the page has {id}");
    }
    let (status, js) = get(example.addr, "/socket.io/socket.io.js");
    assert_eq!(status, 200, "the client bundle is served");
    assert!(
        js.len() > 10_000,
        "the bundle is the real one ({} bytes)",
        js.len()
    );
    let (status, _) = get(example.addr, "/nope");
    assert_eq!(status, 404, "unknown paths are axum's 404");

    let verdict = tutorial(example.addr, transport);
    assert_eq!(verdict["ok"], true, "{verdict}");
    assert_eq!(verdict["exchanged"], 60, "{verdict}");
}

#[test]
fn axum_example_tutorial_chat_websocket() {
    run("websocket");
}

#[test]
fn axum_example_tutorial_chat_polling() {
    run("polling");
}

#[test]
fn axum_example_tutorial_chat_upgrade() {
    run("upgrade");
}
