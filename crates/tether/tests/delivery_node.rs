//! The official npm `socket.io-client` (pinned in tests/node/package-lock.json)
//! against the delivery contract server, `crates/tether-testkit/examples/delivery_server.rs`, run as
//! a separate process so that it can be killed with SIGKILL and started again
//! on the same SQLite file: every scenario of tests/node/delivery (see
//! tests/node/README.md, "Delivery contract").
//!
//! Needs `npm ci` in tests/node. The server is built here with
//! `cargo build --workspace --example delivery_server`.
//!
//! A script talks to this harness on its stdio: it prints `READY restart`
//! when it wants the server killed (SIGKILL) and started again on the same
//! store; the harness answers `URL http://127.0.0.1:PORT` on its stdin. Its
//! last stdout line is the JSON verdict.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn node_dir() -> PathBuf {
    manifest_dir().join("../../tests/node")
}

/// The delivery server's executable, built once per test binary.
fn server_binary() -> PathBuf {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match BUILT.get_or_init(build_server) {
        Ok(path) => path.clone(),
        Err(e) => panic!("{e}"),
    }
}

/// `cargo build --workspace --example delivery_server`; the executable path comes from
/// cargo's JSON messages (so CARGO_TARGET_DIR and profiles are respected).
fn build_server() -> Result<PathBuf, String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = std::process::Command::new(&cargo)
        .args([
            "build",
            // The whole workspace: the same features as `cargo test --workspace`,
            // so nothing is compiled again.
            "--workspace",
            "--example",
            "delivery_server",
            "--message-format=json-render-diagnostics",
        ])
        .current_dir(manifest_dir())
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {cargo:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "cargo build --workspace --example delivery_server failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == "delivery_server")
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .ok_or_else(|| "cargo did not report the delivery_server executable".to_owned())
}

/// Where the server keeps its store.
#[derive(Debug, Clone, Copy)]
enum StoreKind {
    Memory,
    /// A fresh SQLite file, kept across restarts and removed at the end.
    File,
}

/// Appends everything `reader` yields to `sink` (kept readable while the
/// process runs).
fn collect(reader: impl AsyncRead + Unpin + Send + 'static, sink: Arc<Mutex<String>>) {
    tokio::spawn(async move {
        let mut reader = reader;
        let mut buf = [0u8; 8192];
        while let Ok(n) = reader.read(&mut buf).await {
            if n == 0 {
                break;
            }
            sink.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
}

/// A running delivery server process.
struct Server {
    child: Child,
    url: String,
    stderr: Arc<Mutex<String>>,
}

impl Server {
    async fn start(bin: &Path, args: &[String]) -> Server {
        let mut child = Command::new(bin)
            .args(args)
            .arg("0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let stderr = Arc::new(Mutex::new(String::new()));
        collect(child.stderr.take().unwrap(), stderr.clone());
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let first = tokio::time::timeout(Duration::from_secs(30), lines.next_line()).await;
        let port = match &first {
            Ok(Ok(Some(line))) => line
                .strip_prefix("listening ")
                .and_then(|p| p.trim().parse::<u16>().ok()),
            _ => None,
        };
        let Some(port) = port else {
            panic!(
                "delivery_server {args:?} did not say `listening <port>`: {first:?}\nstderr: {}",
                stderr.lock().unwrap()
            );
        };
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Server {
            child,
            url: format!("http://127.0.0.1:{port}"),
            stderr,
        }
    }

    /// kill -9, and wait until it is gone.
    async fn kill(&mut self) {
        self.child.start_kill().expect("SIGKILL the server");
        let _ = self.child.wait().await;
    }
}

/// One scenario: its script, transport, store and flags.
struct Scenario {
    name: &'static str,
    transport: &'static str,
    store: StoreKind,
    server_flags: &'static [&'static str],
    script_args: &'static [&'static str],
    /// Times the script must ask for a kill -9 + restart.
    restarts: usize,
    budget: Duration,
}

/// Runs one scenario script against a fresh server (restarted when asked),
/// and checks its verdict.
async fn run(s: Scenario) {
    assert!(
        node_dir().join("node_modules/socket.io-client").is_dir(),
        "tests/node/node_modules is missing: run `npm ci` in tests/node"
    );
    let bin = tokio::task::spawn_blocking(server_binary).await.unwrap();
    let store = matches!(s.store, StoreKind::File).then(tether_testkit::TempDb::new);
    let mut args: Vec<String> = Vec::new();
    if let Some(store) = &store {
        args.extend(["--store".to_owned(), store.path().display().to_string()]);
    }
    args.extend(s.server_flags.iter().map(|f| f.to_string()));
    let mut server = Server::start(&bin, &args).await;
    let mut old_stderr = String::new();

    let mut node = Command::new("node")
        .arg(format!("delivery/{}.mjs", s.name))
        .args(["--url", &server.url, "--transport", s.transport])
        .args(s.script_args)
        .current_dir(node_dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node runs");
    let node_stderr = Arc::new(Mutex::new(String::new()));
    collect(node.stderr.take().unwrap(), node_stderr.clone());
    let mut stdin = node.stdin.take().unwrap();
    let mut lines = BufReader::new(node.stdout.take().unwrap()).lines();
    let mut stdout = Vec::new();
    let mut restarts = 0;

    let talk = async {
        while let Some(line) = lines.next_line().await.expect("read node's stdout") {
            if line.trim() == "READY restart" {
                server.kill().await;
                old_stderr.push_str(&server.stderr.lock().unwrap());
                server = Server::start(&bin, &args).await;
                restarts += 1;
                stdin
                    .write_all(format!("URL {}\n", server.url).as_bytes())
                    .await
                    .expect("answer the script");
                stdin.flush().await.expect("answer the script");
            } else {
                stdout.push(line);
            }
        }
        node.wait().await.expect("node exits")
    };
    let status = tokio::time::timeout(s.budget, talk).await;
    let report = || {
        format!(
            "{}/{} stdout:\n{}\nnode stderr:\n{}\nserver stderr:\n{}{}",
            s.name,
            s.transport,
            stdout.join("\n"),
            node_stderr.lock().unwrap(),
            old_stderr,
            server.stderr.lock().unwrap()
        )
    };
    let status = match status {
        Ok(status) => status,
        Err(_) => panic!("no verdict within {:?}\n{}", s.budget, report()),
    };
    assert!(
        status.success(),
        "{} failed ({status})\n{}",
        s.name,
        report()
    );
    let verdict: serde_json::Value = stdout
        .last()
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| panic!("no JSON verdict\n{}", report()));
    assert_eq!(verdict["ok"], true, "{verdict}\n{}", report());
    assert_eq!(verdict["transport"], s.transport, "{verdict}");
    assert_eq!(
        restarts,
        s.restarts,
        "server restarts asked for\n{}",
        report()
    );
    println!("{verdict}");
    server.kill().await;
    drop(store);
}

macro_rules! scenarios {
    ($($test:ident: $name:literal, $transport:literal, $store:ident,
       server [$($flag:literal),*], script [$($arg:literal),*], restarts $restarts:literal, budget $secs:literal;)*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $test() {
                run(Scenario {
                    name: $name,
                    transport: $transport,
                    store: StoreKind::$store,
                    server_flags: &[$($flag),*],
                    script_args: &[$($arg),*],
                    restarts: $restarts,
                    budget: Duration::from_secs($secs),
                })
                .await;
            }
        )*
    };
}

scenarios! {
    recover_transport_close_websocket: "recover-transport-close", "websocket", Memory, server [], script [], restarts 0, budget 60;
    recover_transport_close_polling: "recover-transport-close", "polling", Memory, server [], script [], restarts 0, budget 60;
    recover_after_kill_websocket: "recover-after-kill", "websocket", File, server [], script [], restarts 1, budget 90;
    recover_after_kill_polling: "recover-after-kill", "polling", File, server [], script [], restarts 1, budget 90;
    inbox_websocket: "inbox", "websocket", Memory, server [], script [], restarts 0, budget 60;
    inbox_polling: "inbox", "polling", File, server [], script [], restarts 0, budget 60;
    zero_event_recovery_websocket: "zero-event-recovery", "websocket", Memory, server [], script [], restarts 0, budget 60;
    zero_event_recovery_polling: "zero-event-recovery", "polling", Memory, server [], script [], restarts 0, budget 60;
    ten_recoveries_websocket: "ten-recoveries", "websocket", Memory, server [], script [], restarts 0, budget 90;
    ten_recoveries_polling: "ten-recoveries", "polling", Memory, server [], script [], restarts 0, budget 90;
    concurrent_restore_websocket: "concurrent-restore", "websocket", Memory, server [], script [], restarts 0, budget 60;
    concurrent_restore_polling: "concurrent-restore", "polling", Memory, server [], script [], restarts 0, budget 60;
    middleware_no_leak_websocket: "middleware-no-leak", "websocket", Memory, server ["--no-skip-middlewares"], script [], restarts 0, budget 60;
    middleware_no_leak_polling: "middleware-no-leak", "polling", Memory, server ["--no-skip-middlewares"], script [], restarts 0, budget 60;
    forged_and_expired_offset_websocket: "forged-and-expired-offset", "websocket", Memory, server ["--window-ms", "300"], script ["--window", "300"], restarts 0, budget 60;
    forged_and_expired_offset_polling: "forged-and-expired-offset", "polling", Memory, server ["--window-ms", "300"], script ["--window", "300"], restarts 0, budget 60;
    exactly_once_retries_websocket: "exactly-once-retries", "websocket", Memory, server ["--slow-ms", "1500"], script [], restarts 0, budget 200;
    exactly_once_retries_polling: "exactly-once-retries", "polling", Memory, server ["--slow-ms", "1500"], script [], restarts 0, budget 200;
    seam_under_load_websocket: "seam-under-load", "websocket", Memory, server [], script [], restarts 0, budget 90;
    seam_under_load_polling: "seam-under-load", "polling", Memory, server [], script [], restarts 0, budget 90;
    server_offset_catch_up_websocket: "server-offset-catch-up", "websocket", Memory, server [], script [], restarts 0, budget 60;
    server_offset_catch_up_polling: "server-offset-catch-up", "polling", Memory, server [], script [], restarts 0, budget 60;
    slow_consumer_websocket: "slow-consumer", "websocket", Memory, server [], script [], restarts 0, budget 150;
}
