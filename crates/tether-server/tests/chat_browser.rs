//! The chat app as people use it: `tether serve` (the real binary, page at `/`,
//! the official socket.io-client bundle at /socket.io/socket.io.js) driven in
//! Debian's headless Chromium by the playwright-core scripts of tests/browser
//! (see tests/browser/README.md).
//!
//! Needs `npm ci` in tests/browser and /usr/bin/chromium
//! (`bash scripts/install-debian.sh chromium`); neither is done here.
//!
//! Each test starts `tether serve` on a free port with a fresh SQLite store
//! file, waits for `/healthz`, runs one script and checks its verdict (its
//! last stdout line, JSON), then kills the server and checks that the store
//! holds exactly the history the pages showed (`tether history`).
//!
//! A script may print `READY kill`: the server is killed with SIGKILL (the
//! harness answers `KILLED` on the script's stdin), started again on the same
//! store file and the same port, and once it answers `/healthz` the harness
//! answers `RESTARTED`. `SCREENSHOT PATH` names a screenshot it took.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

/// Debian's Chromium, the only browser these tests use.
const CHROMIUM: &str = "/usr/bin/chromium";
/// How long the server may take to say it listens.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one `/healthz` request may take.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(5);

/// One scenario at a time: each runs two Chromiums, and the machine is small.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn browser_dir() -> PathBuf {
    manifest_dir().join("../../tests/browser")
}

/// Fails with what to run when the browser or the scripts' packages are missing.
fn preflight() {
    assert!(
        browser_dir()
            .join("node_modules/playwright-core/package.json")
            .is_file(),
        "tests/browser/node_modules is missing: run `npm ci` in tests/browser \
         (it installs playwright-core, pinned by tests/browser/package-lock.json)"
    );
    assert!(
        Path::new(CHROMIUM).is_file(),
        "{CHROMIUM} is missing: run `bash scripts/install-debian.sh chromium` as root \
         (Debian's chromium package; no other browser is used)"
    );
}

/// A port nobody listens on now (bound to 127.0.0.1:0, then released).
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local address").port()
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

/// One `GET /healthz`; Ok when it answers 200 `ok`.
async fn healthz(port: u16) -> Result<(), String> {
    let ask = async {
        let mut stream = TcpStream::connect(("127.0.0.1", port))
            .await
            .map_err(|e| format!("connect: {e}"))?;
        stream
            .write_all(
                format!(
                    "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
                )
                .as_bytes(),
            )
            .await
            .map_err(|e| format!("write: {e}"))?;
        let mut answer = Vec::new();
        stream
            .read_to_end(&mut answer)
            .await
            .map_err(|e| format!("read: {e}"))?;
        let answer = String::from_utf8_lossy(&answer).into_owned();
        if answer.starts_with("HTTP/1.1 200") && answer.ends_with("ok\n") {
            Ok(())
        } else {
            Err(format!("answered {answer:?}"))
        }
    };
    match tokio::time::timeout(HEALTH_TIMEOUT, ask).await {
        Ok(result) => result,
        Err(_) => Err(format!("no answer within {HEALTH_TIMEOUT:?}")),
    }
}

/// A running `tether serve`.
struct Server {
    child: Child,
    stderr: Arc<Mutex<String>>,
}

impl Server {
    /// Starts `tether serve` on `port` with `store`; returns once it said it
    /// listens and answered `/healthz`.
    async fn start(store: &Path, port: u16) -> Result<Server, String> {
        Server::start_with(&[std::ffi::OsStr::new("--store"), store.as_os_str()], port).await
    }

    /// Starts `tether serve` on `port` with the store flags `store_args`.
    async fn start_with(store_args: &[&std::ffi::OsStr], port: u16) -> Result<Server, String> {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tether"));
        cmd.args(["serve", "--host", "127.0.0.1", "--port"])
            .arg(port.to_string())
            .args(store_args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        // The flags above are the whole configuration.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("TETHER_") {
                cmd.env_remove(key);
            }
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot start tether serve: {e}"))?;
        let stderr = Arc::new(Mutex::new(String::new()));
        collect(child.stderr.take().unwrap(), stderr.clone());
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let first = tokio::time::timeout(START_TIMEOUT, lines.next_line()).await;
        let listening =
            matches!(&first, Ok(Ok(Some(line))) if line.starts_with("Tether chat on http://"));
        if !listening {
            let _ = child.start_kill();
            let _ = child.wait().await;
            return Err(format!(
                "tether serve on port {port} did not say it listens: {first:?}\nstderr:\n{}",
                stderr.lock().unwrap()
            ));
        }
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let mut server = Server { child, stderr };
        if let Err(e) = healthz(port).await {
            server.kill().await;
            return Err(format!(
                "/healthz on port {port}: {e}\nstderr:\n{}",
                server.stderr()
            ));
        }
        Ok(server)
    }

    /// Starts it on a port that was just in use (the same port after a
    /// kill): a few tries while the port is being released.
    async fn restart(store: &Path, port: u16) -> Server {
        let mut last = String::new();
        for _ in 0..10 {
            match Server::start(store, port).await {
                Ok(server) => return server,
                Err(e) => last = e,
            }
            // Nothing to await for a port to be free again.
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        panic!("cannot restart tether serve on port {port}: {last}");
    }

    /// kill -9, and wait until it is gone.
    async fn kill(&mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }
}

/// `[offset, content, client id]` of every stored chat message, in order
/// (`tether history` on the store, the server stopped).
async fn stored_history(store: &Path) -> Vec<(u64, String, String)> {
    let out = tokio::time::timeout(
        Duration::from_secs(30),
        Command::new(env!("CARGO_BIN_EXE_tether"))
            .args(["history", "--limit", "1000000", "--store"])
            .arg(store)
            .stdin(Stdio::null())
            .output(),
    )
    .await
    .expect("tether history within 30 s")
    .expect("tether history runs");
    assert!(
        out.status.success(),
        "tether history failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|line| {
            let cols: Vec<&str> = line.splitn(4, '\t').collect();
            assert_eq!(cols.len(), 4, "tether history line {line:?}");
            assert_eq!(cols[2], "chat message", "stored event in {line:?}");
            let seq: u64 = cols[0].parse().expect("position");
            let args: serde_json::Value = serde_json::from_str(cols[3]).expect("stored args");
            let content = args[0].as_str().expect("stored content").to_owned();
            let id = args[2]["id"].as_str().expect("stored client id").to_owned();
            (seq, content, id)
        })
        .collect()
}

/// Asks a script to stop (SIGTERM: it closes its browsers and prints its
/// verdict), then kills it if it does not.
async fn stop_script(node: &mut Child) {
    if let Some(pid) = node.id() {
        let _ = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .await;
        if tokio::time::timeout(Duration::from_secs(15), node.wait())
            .await
            .is_ok()
        {
            return;
        }
    }
    let _ = node.start_kill();
    let _ = node.wait().await;
}

/// One scenario: a script of tests/browser.
struct Scenario {
    script: &'static str,
    /// Kill -9 + restart the script must ask for.
    kills: usize,
    /// Where the script saves its screenshot, if it takes one.
    screenshot: Option<PathBuf>,
    budget: Duration,
    /// More `tether serve` flags (after the store).
    server_args: &'static [&'static str],
    /// More environment variables for the script.
    env: Vec<(&'static str, String)>,
}

/// What a run gave: the verdict and the script's other stdout lines.
struct Outcome {
    verdict: serde_json::Value,
    stdout: Vec<String>,
}

async fn run(s: Scenario) -> Outcome {
    preflight();
    let _serial = SERIAL.lock().await;
    let store = tether_testkit::TempDb::new();
    let port = free_port();
    let mut flags = vec![std::ffi::OsStr::new("--store"), store.path().as_os_str()];
    flags.extend(s.server_args.iter().map(std::ffi::OsStr::new));
    let mut server = Server::start_with(&flags, port)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut old_stderr = String::new();
    let url = format!("http://127.0.0.1:{port}/");

    // The script's own deadline comes first, so that it can say what it saw.
    let script_timeout = s.budget.saturating_sub(Duration::from_secs(30));
    let mut cmd = Command::new("node");
    cmd.arg(s.script)
        .arg(&url)
        .arg("--timeout")
        .arg(script_timeout.as_millis().to_string());
    if let Some(path) = &s.screenshot {
        cmd.arg("--screenshot").arg(path);
    }
    let mut node = cmd
        .envs(s.env.iter().map(|(k, v)| (k, v)))
        .current_dir(browser_dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run node (is Node.js installed?): {e}"));
    let node_stderr = Arc::new(Mutex::new(String::new()));
    collect(node.stderr.take().unwrap(), node_stderr.clone());
    let mut stdin = node.stdin.take().unwrap();
    let mut lines = BufReader::new(node.stdout.take().unwrap()).lines();
    let mut stdout = Vec::new();
    let mut kills = 0;

    let talk = async {
        while let Some(line) = lines.next_line().await.expect("read the script's stdout") {
            if line.trim() == "READY kill" || line.trim() == "READY reset" {
                server.kill().await;
                if line.trim() == "READY reset" {
                    // A new life of the store: the file and its WAL gone.
                    for suffix in ["", "-wal", "-shm"] {
                        let mut path = store.path().to_path_buf().into_os_string();
                        path.push(suffix);
                        let _ = std::fs::remove_file(path);
                    }
                }
                kills += 1;
                old_stderr.push_str(&server.stderr());
                old_stderr.push_str("---- killed (SIGKILL) ----\n");
                let _ = stdin.write_all(b"KILLED\n").await;
                let _ = stdin.flush().await;
                server = Server::restart(store.path(), port).await;
                let _ = stdin.write_all(b"RESTARTED\n").await;
                let _ = stdin.flush().await;
            } else {
                stdout.push(line);
            }
        }
    };
    let in_time = tokio::time::timeout(s.budget, talk).await.is_ok();
    if !in_time {
        stop_script(&mut node).await;
        while let Ok(Ok(Some(line))) =
            tokio::time::timeout(Duration::from_secs(1), lines.next_line()).await
        {
            stdout.push(line);
        }
    }
    let status = match tokio::time::timeout(Duration::from_secs(15), node.wait()).await {
        Ok(status) => Some(status.expect("wait for node")),
        Err(_) => {
            stop_script(&mut node).await;
            None
        }
    };
    server.kill().await;
    let report = || {
        format!(
            "{} stdout:\n{}\nnode stderr:\n{}\nserver stderr:\n{}{}",
            s.script,
            stdout.join("\n"),
            node_stderr.lock().unwrap(),
            old_stderr,
            server.stderr()
        )
    };
    assert!(
        in_time,
        "{} gave no verdict within {:?}\n{}",
        s.script,
        s.budget,
        report()
    );
    let verdict: serde_json::Value = stdout
        .last()
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| panic!("{}: no JSON verdict ({status:?})\n{}", s.script, report()));
    assert!(
        status.is_some_and(|st| st.success()) && verdict["ok"] == true,
        "{} failed ({status:?}): {verdict}\n{}",
        s.script,
        report()
    );
    assert_eq!(kills, s.kills, "kill -9 + restarts asked for\n{}", report());

    // The store holds exactly what the pages showed: each message once, at
    // the positions the pages showed.
    let shown: Vec<(u64, String, String)> = verdict["messages"]
        .as_array()
        .expect("verdict lists the messages shown")
        .iter()
        .map(|m| {
            (
                m[0].as_u64().expect("position"),
                m[1].as_str().expect("text").to_owned(),
                m[2].as_str().expect("client id").to_owned(),
            )
        })
        .collect();
    let stored = stored_history(store.path()).await;
    assert_eq!(
        stored,
        shown,
        "the store and the pages disagree\n{}",
        report()
    );
    println!("{} stored {} messages", s.script, stored.len());
    println!("{verdict}");
    drop(store);
    Outcome { verdict, stdout }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_pages_chat() {
    let out = run(Scenario {
        script: "two-pages.mjs",
        kills: 0,
        screenshot: None,
        budget: Duration::from_secs(150),
        server_args: &[],
        env: Vec::new(),
    })
    .await;
    assert_eq!(out.verdict["messages"].as_array().map(Vec::len), Some(20));
    assert_eq!(out.verdict["counts"]["A_shown"], 20);
    assert_eq!(out.verdict["counts"]["B_shown"], 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_page_catches_up() {
    let out = run(Scenario {
        script: "offline-catch-up.mjs",
        kills: 0,
        screenshot: None,
        budget: Duration::from_secs(150),
        server_args: &[],
        env: Vec::new(),
    })
    .await;
    assert_eq!(out.verdict["messages"].as_array().map(Vec::len), Some(50));
    assert_eq!(out.verdict["counts"]["A_shown_while_offline"], 0);
    assert_eq!(out.verdict["counts"]["A_shown"], 50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_typing_survives_reload() {
    let out = run(Scenario {
        script: "offline-then-reload.mjs",
        kills: 0,
        screenshot: None,
        budget: Duration::from_secs(150),
        server_args: &[],
        env: Vec::new(),
    })
    .await;
    assert_eq!(out.verdict["messages"].as_array().map(Vec::len), Some(20));
    assert_eq!(out.verdict["counts"]["A_pending_after_reload"], 20);
    assert_eq!(out.verdict["counts"]["B_shown"], 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_killed_and_restarted() {
    let out = run(Scenario {
        script: "kill-restart.mjs",
        kills: 1,
        screenshot: None,
        budget: Duration::from_secs(180),
        server_args: &[],
        env: Vec::new(),
    })
    .await;
    assert_eq!(out.verdict["messages"].as_array().map(Vec::len), Some(55));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_reset_pages_start_over() {
    let out = run(Scenario {
        script: "store-reset.mjs",
        kills: 1,
        screenshot: None,
        budget: Duration::from_secs(150),
        server_args: &[],
        env: Vec::new(),
    })
    .await;
    assert_eq!(out.verdict["messages"].as_array().map(Vec::len), Some(3));
    assert_eq!(out.verdict["counts"]["A_shown_before"], 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn screenshot_with_a_pending_message() {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|p| {
            if p.is_absolute() {
                p
            } else {
                manifest_dir().join(p)
            }
        })
        .unwrap_or_else(|| {
            // The workspace's target dir, spelt without `..` (the script prints it resolved).
            manifest_dir().ancestors().nth(2).map_or_else(
                || manifest_dir().join("../../target"),
                |root| root.join("target"),
            )
        });
    let path = target.join("chat-screenshot.png");
    let _ = std::fs::remove_file(&path);
    let out = run(Scenario {
        script: "screenshot.mjs",
        kills: 0,
        screenshot: Some(path.clone()),
        budget: Duration::from_secs(150),
        server_args: &[],
        env: Vec::new(),
    })
    .await;
    let said = format!("SCREENSHOT {}", path.display());
    assert!(
        out.stdout.contains(&said),
        "the script did not say `{said}`"
    );
    let png = std::fs::read(&path).expect("the screenshot file");
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n"),
        "{} is not a PNG",
        path.display()
    );
    assert_eq!(out.verdict["counts"]["pending_in_screenshot"], 1);
    println!("screenshot: {}", path.display());
    // The README's screenshot is this one: TETHER_UPDATE_SCREENSHOT=1 puts
    // it at docs/screenshot.png (not on every run: it shows the time).
    if std::env::var_os("TETHER_UPDATE_SCREENSHOT").is_some() {
        let docs = manifest_dir().join("../../docs/screenshot.png");
        std::fs::copy(&path, &docs).expect("copy the screenshot to docs/screenshot.png");
        println!("README screenshot updated: {}", docs.display());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_history_shows_at_once_and_pages_back() {
    let out = run(Scenario {
        script: "long-history.mjs",
        kills: 0,
        screenshot: None,
        budget: Duration::from_secs(400),
        server_args: &[],
        env: Vec::new(),
    })
    .await;
    assert_eq!(out.verdict["messages"].as_array().map(Vec::len), Some(8000));
    assert_eq!(out.verdict["counts"]["A_shown_after_scrolling_up"], 5000);
    // The figures, printed for the record (not compared with a time).
    println!("long history figures: {}", out.verdict["figures"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn phone_widths_fit() {
    let out = run(Scenario {
        script: "phone.mjs",
        kills: 0,
        screenshot: None,
        budget: Duration::from_secs(150),
        server_args: &[],
        env: Vec::new(),
    })
    .await;
    assert_eq!(out.verdict["messages"].as_array().map(Vec::len), Some(6));
    println!("phone layout: {}", out.verdict["layout"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dark_and_light_schemes_are_readable() {
    let out = run(Scenario {
        script: "dark-mode.mjs",
        kills: 0,
        screenshot: None,
        budget: Duration::from_secs(150),
        server_args: &[],
        env: Vec::new(),
    })
    .await;
    assert_eq!(out.verdict["messages"].as_array().map(Vec::len), Some(8));
    println!("contrast ratios: {}", out.verdict["contrast"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_show_author_time_and_state() {
    let out = run(Scenario {
        script: "message-details.mjs",
        kills: 1,
        screenshot: None,
        budget: Duration::from_secs(180),
        server_args: &[],
        env: Vec::new(),
    })
    .await;
    assert_eq!(out.verdict["messages"].as_array().map(Vec::len), Some(7));
    println!("pending look: {}", out.verdict["pending_look"]);
    println!("status texts: {}", out.verdict["status_texts"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_and_typing() {
    let out = run(Scenario {
        script: "presence-typing.mjs",
        kills: 0,
        screenshot: None,
        budget: Duration::from_secs(150),
        server_args: &[],
        env: Vec::new(),
    })
    .await;
    assert_eq!(out.verdict["messages"].as_array().map(Vec::len), Some(1));
    assert_eq!(out.verdict["presence_after_b_left"], "1 online: Ana");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_with_their_own_streams() {
    let out = run(Scenario {
        script: "rooms.mjs",
        kills: 0,
        screenshot: None,
        budget: Duration::from_secs(150),
        server_args: &[],
        env: Vec::new(),
    })
    .await;
    // The whole-namespace stream (`tether history`) holds #general's only.
    assert_eq!(out.verdict["messages"].as_array().map(Vec::len), Some(3));
    assert_eq!(
        out.verdict["rooms"]["dev"].as_array().map(Vec::len),
        Some(4)
    );
}

/// With `--jwt-secret`, a page opened at `/#token=JWT` posts as the token's
/// user (its name shown, the name field ignored), stays signed in across a
/// reload, and a page without a token is told it was refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_signs_in_with_a_token() {
    const SECRET: &str = "a-browser-test-secret-of-32-bytes";
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &serde_json::json!({ "sub": "alice", "name": "Alice Liddell", "exp": exp }),
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap();
    let out = run(Scenario {
        script: "signed-in.mjs",
        kills: 0,
        screenshot: None,
        budget: Duration::from_secs(150),
        server_args: &["--jwt-secret", SECRET],
        env: vec![("TETHER_TEST_TOKEN", token)],
    })
    .await;
    assert_eq!(out.verdict["messages"].as_array().map(Vec::len), Some(2));
}

/// A script against two `tether serve` nodes of one cluster (the Redis store,
/// a prefix of the test's own), its URLs in order; no kills, and no store
/// check (`tether history` reads SQLite files). Returns the verdict.
async fn run_on_two_nodes(test: &str, script: &str, budget: Duration) -> Option<serde_json::Value> {
    preflight();
    let scope = tether_testkit::redis::Scope::new(test)?;
    let _serial = SERIAL.lock().await;
    let store: Vec<&std::ffi::OsStr> = ["--store", &scope.url, "--redis-prefix", &scope.prefix]
        .into_iter()
        .map(std::ffi::OsStr::new)
        .collect();
    let mut nodes = Vec::new();
    for _ in 0..2 {
        let port = free_port();
        let server = Server::start_with(&store, port)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        nodes.push((server, format!("http://127.0.0.1:{port}/")));
    }
    let script_timeout = budget.saturating_sub(Duration::from_secs(30));
    let mut node = Command::new("node")
        .arg(script)
        .args(nodes.iter().map(|(_, url)| url))
        .arg("--timeout")
        .arg(script_timeout.as_millis().to_string())
        .current_dir(browser_dir())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run node (is Node.js installed?): {e}"));
    let node_stderr = Arc::new(Mutex::new(String::new()));
    collect(node.stderr.take().unwrap(), node_stderr.clone());
    let mut lines = BufReader::new(node.stdout.take().unwrap()).lines();
    let mut stdout = Vec::new();
    let talk = async {
        while let Ok(Some(line)) = lines.next_line().await {
            stdout.push(line);
        }
    };
    let in_time = tokio::time::timeout(budget, talk).await.is_ok();
    if !in_time {
        stop_script(&mut node).await;
    }
    let status = tokio::time::timeout(Duration::from_secs(15), node.wait()).await;
    let mut stderr = String::new();
    for (server, url) in &mut nodes {
        server.kill().await;
        stderr.push_str(&format!("---- node {url} ----\n{}", server.stderr()));
    }
    let report = format!(
        "{script} stdout:\n{}\nnode stderr:\n{}\nservers:\n{stderr}",
        stdout.join("\n"),
        node_stderr.lock().unwrap()
    );
    assert!(
        in_time,
        "{script} gave no verdict within {budget:?}\n{report}"
    );
    let verdict: serde_json::Value = stdout
        .last()
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| panic!("{script}: no JSON verdict\n{report}"));
    let exited_ok = matches!(&status, Ok(Ok(st)) if st.success());
    assert!(
        exited_ok && verdict["ok"] == true,
        "{script} failed ({status:?}): {verdict}\n{report}"
    );
    println!("{verdict}");
    Some(verdict)
}

/// Presence and typing when A and B are on two nodes of a cluster (Redis).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_and_typing_across_two_nodes() {
    let test = "presence_and_typing_across_two_nodes";
    let Some(verdict) =
        run_on_two_nodes(test, "presence-typing.mjs", Duration::from_secs(150)).await
    else {
        return; // no Redis: said on stderr (a failure under CI=true)
    };
    assert_eq!(verdict["presence_after_b_left"], "1 online: Ana");
    assert_eq!(verdict["nodes"], 2);
}
