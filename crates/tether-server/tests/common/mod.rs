//! Helpers of the tests that run the `tether` binary (tests/cli.rs,
//! tests/hardening_http.rs): temporary directories, a `tether serve` child
//! with its stdout and stderr, a minimal HTTP client, the Prometheus text
//! format. Every wait is bounded.
#![allow(dead_code)] // each test binary uses a part of them

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_tether");

/// How long a process that must fail at start may take to exit.
pub const EXIT_BUDGET: Duration = Duration::from_secs(10);
/// How long a server may take to print its address and answer `/healthz`.
pub const START_BUDGET: Duration = Duration::from_secs(30);

// ------------------------------------------------------------------ helpers --

/// A fresh directory under the temp dir, removed on drop.
pub struct TempDir(tempfile::TempDir);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        Self(tether_testkit::temp_dir(&format!("cli-{tag}")))
    }

    pub fn path(&self) -> &Path {
        self.0.path()
    }

    pub fn write(&self, name: &str, content: &str) -> PathBuf {
        let path = self.0.path().join(name);
        std::fs::write(&path, content).expect("write a file in the temp dir");
        path
    }

    /// Names of the entries of the directory, sorted.
    pub fn entries(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.0.path())
            .map(|d| {
                d.filter_map(Result::ok)
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }
}

/// `tether ARGS` in `dir`, with only PATH and `env` in its environment.
pub fn tether(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args).current_dir(dir).env_clear();
    if let Some(path) = std::env::var_os("PATH") {
        cmd.env("PATH", path);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.stdin(Stdio::null());
    cmd
}

/// Appends everything `reader` yields to the returned buffer, from a thread.
pub fn collect(mut reader: impl Read + Send + 'static) -> Arc<Mutex<String>> {
    let sink = Arc::new(Mutex::new(String::new()));
    let out = sink.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 {
                break;
            }
            out.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    sink
}

/// Sends every line `reader` yields on the returned channel, from a thread.
pub fn lines(reader: impl Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(reader).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Waits for `child` until `budget` has passed; `None` if it still runs.
pub fn wait_until(child: &mut Child, budget: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + budget;
    loop {
        if let Some(status) = child.try_wait().expect("wait for a child") {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// What a finished `tether` printed.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// Runs a `tether` command that must end by itself within `budget` (killed
/// and reported as a failure otherwise).
pub fn run(cmd: &mut Command, budget: Duration) -> Result<Finished, String> {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {BIN}: {e}"))?;
    let stdout = collect(child.stdout.take().unwrap());
    let stderr = collect(child.stderr.take().unwrap());
    let status = wait_until(&mut child, budget);
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    // The pipes close with the process; give the readers a moment to drain.
    let deadline = Instant::now() + Duration::from_secs(2);
    while Arc::strong_count(&stdout) + Arc::strong_count(&stderr) > 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let stdout = stdout.lock().unwrap().clone();
    let stderr = stderr.lock().unwrap().clone();
    match status {
        Some(status) => Ok(Finished {
            status,
            stdout,
            stderr,
        }),
        None => Err(format!(
            "still running after {budget:?} (killed)\nstdout: {stdout}\nstderr: {stderr}"
        )),
    }
}

/// A port nobody listens on right now.
/// A self-signed certificate for 127.0.0.1 and localhost, written to
/// `cert.pem` and `key.pem` in `dir`: (certificate PEM, its path, the key's path).
pub fn self_signed(dir: &TempDir) -> (String, PathBuf, PathBuf) {
    let key = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()])
        .expect("a self-signed certificate");
    let pem = key.cert.pem();
    let cert = dir.write("cert.pem", &pem);
    let private = dir.write("key.pem", &key.signing_key.serialize_pem());
    (pem, cert, private)
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral port")
}

/// A minimal HTTP/1.1 GET: (status, body).
pub fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.set_write_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let bad = |why: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, why.to_owned());
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| bad("no end of headers"))?;
    let status: u16 = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("no status"))?;
    let chunked = head.lines().any(|l| {
        l.to_ascii_lowercase()
            .starts_with("transfer-encoding: chunked")
    });
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_owned()
    };
    Ok((status, body))
}

pub fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
}

// ------------------------------------------------------------------- server --

/// A running `tether serve`.
pub struct Server {
    pub child: Child,
    pub addr: SocketAddr,
    pub first_line: String,
    pub stderr: Arc<Mutex<String>>,
}

impl Server {
    /// Starts `tether serve ARGS` in `dir` with `env`, reads its first stdout
    /// line (`Tether chat on http://ADDR/ ...`), and waits (bounded) until
    /// `/healthz` answers 200 on that address.
    pub fn start(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Server {
        let mut server = Server::spawn(dir, args, env);
        server.wait_healthy();
        server
    }

    /// Starts `tether serve ARGS` and reads its first stdout line only.
    pub fn spawn(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Server {
        let mut full = vec!["serve"];
        full.extend_from_slice(args);
        Server::spawn_command(tether(dir, &full, env), args)
    }

    /// Starts `cmd` (a `tether serve`, possibly behind a wrapper that
    /// `exec`s it, so that the child's pid is the server's) and reads its
    /// first stdout line only.
    pub fn spawn_command(mut cmd: Command, args: &[&str]) -> Server {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {BIN}: {e}"));
        let stderr = collect(child.stderr.take().unwrap());
        let stdout = lines(child.stdout.take().unwrap());
        let first = stdout.recv_timeout(START_BUDGET);
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || while stdout.recv().is_ok() {});
        let first_line = match first {
            Ok(line) => line,
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "tether serve {args:?} printed no first line ({e}); stderr:\n{}",
                    stderr.lock().unwrap()
                );
            }
        };
        let addr = first_line
            .strip_prefix("Tether chat on http://")
            .or_else(|| first_line.strip_prefix("Tether chat on https://"))
            .and_then(|rest| rest.split_once('/'))
            .and_then(|(addr, _)| addr.parse::<SocketAddr>().ok());
        let Some(addr) = addr else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("unexpected first line {first_line:?} (want `Tether chat on http://ADDR/ ...`)");
        };
        Server {
            child,
            addr,
            first_line,
            stderr,
        }
    }

    /// Polls `/healthz` until it answers 200 "ok", with a deadline.
    pub fn wait_healthy(&mut self) {
        let deadline = Instant::now() + START_BUDGET;
        loop {
            let last = http_get(self.addr, "/healthz");
            if let Ok((200, body)) = &last {
                assert_eq!(body.trim(), "ok", "/healthz body");
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "server exited ({status}) before /healthz answered; stderr:\n{}",
                    self.stderr()
                );
            }
            if Instant::now() >= deadline {
                panic!(
                    "/healthz on {} not 200 within {START_BUDGET:?}: {last:?}; stderr:\n{}",
                    self.addr,
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits (bounded) until what the server wrote on stderr satisfies `done`.
    pub fn wait_stderr(&self, done: impl Fn(&str) -> bool, budget: Duration) -> String {
        let deadline = Instant::now() + budget;
        loop {
            let text = self.stderr();
            if done(&text) || Instant::now() >= deadline {
                return text;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// `kill -TERM <pid>`.
    pub fn sigterm(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(
            status.success(),
            "kill -TERM {} failed: {status}",
            self.child.id()
        );
    }

    /// SIGTERM, then the exit status (within `budget`, else a panic).
    pub fn stop(&mut self, budget: Duration) -> ExitStatus {
        self.sigterm();
        match wait_until(&mut self.child, budget) {
            Some(status) => status,
            None => panic!(
                "server still running {budget:?} after SIGTERM; stderr:\n{}",
                self.stderr()
            ),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

// --------------------------------------------------------------- prometheus --

/// One sample of the Prometheus text format: `name{labels} value [timestamp]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// Parses the Prometheus text exposition format (comments and blank lines
/// skipped); a line that is not a sample is an error.
pub fn parse_prometheus(text: &str) -> Result<Vec<Sample>, String> {
    let mut samples = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        samples.push(parse_sample(line).map_err(|e| format!("line {}: {e}: {line:?}", n + 1))?);
    }
    Ok(samples)
}

pub fn parse_sample(line: &str) -> Result<Sample, String> {
    let name_end = line
        .find(|c: char| c == '{' || c.is_whitespace())
        .ok_or("no value")?;
    let name = &line[..name_end];
    let name_ok = !name.is_empty()
        && name.chars().enumerate().all(|(i, c)| {
            c.is_ascii_alphabetic() || c == '_' || c == ':' || (i > 0 && c.is_ascii_digit())
        });
    if !name_ok {
        return Err(format!("bad metric name {name:?}"));
    }
    let mut rest = &line[name_end..];
    let mut labels = BTreeMap::new();
    if let Some(inner) = rest.strip_prefix('{') {
        let mut chars = inner.char_indices().peekable();
        let mut end = None;
        loop {
            // Skip separators, stop at '}'.
            while let Some(&(_, c)) = chars.peek() {
                if c == ',' || c.is_whitespace() {
                    chars.next();
                } else {
                    break;
                }
            }
            match chars.peek() {
                Some(&(i, '}')) => {
                    end = Some(i);
                    break;
                }
                None => break,
                _ => {}
            }
            let mut key = String::new();
            for (_, c) in chars.by_ref() {
                if c == '=' {
                    break;
                }
                key.push(c);
            }
            if chars.next().map(|(_, c)| c) != Some('"') {
                return Err(format!("label {key:?}: value not quoted"));
            }
            let mut value = String::new();
            let mut closed = false;
            while let Some((_, c)) = chars.next() {
                match c {
                    '\\' => match chars.next().map(|(_, c)| c) {
                        Some('n') => value.push('\n'),
                        Some(c) => value.push(c),
                        None => break,
                    },
                    '"' => {
                        closed = true;
                        break;
                    }
                    c => value.push(c),
                }
            }
            if !closed {
                return Err(format!("label {key:?}: unterminated value"));
            }
            labels.insert(key.trim().to_owned(), value);
        }
        let end = end.ok_or("unterminated labels")?;
        rest = &inner[end + 1..];
    }
    let mut fields = rest.split_whitespace();
    let value = fields.next().ok_or("no value")?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        v => v.parse::<f64>().map_err(|e| format!("value {v:?}: {e}"))?,
    };
    if let Some(ts) = fields.next() {
        ts.parse::<i64>()
            .map_err(|e| format!("timestamp {ts:?}: {e}"))?;
    }
    if fields.next().is_some() {
        return Err("trailing fields".into());
    }
    Ok(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

/// The value of the unlabelled sample `name`.
pub fn metric(samples: &[Sample], name: &str) -> Option<f64> {
    samples
        .iter()
        .find(|s| s.name == name && s.labels.is_empty())
        .map(|s| s.value)
}

// --------------------------------------------------------------------- node --

pub fn node_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/node")
}

/// A running script of tests/node.
pub struct Node {
    child: Child,
    script: String,
    lines: Receiver<String>,
    stdout: Vec<String>,
    stderr: Arc<Mutex<String>>,
}

impl Node {
    /// `node chat/<script>.mjs ARGS`.
    pub fn start(script: &str, args: &[&str]) -> Node {
        Node::run(&format!("chat/{script}.mjs"), args)
    }

    /// `node <path> ARGS`, `path` relative to tests/node.
    pub fn run(path: &str, args: &[&str]) -> Node {
        assert!(
            node_dir().join("node_modules/socket.io-client").is_dir(),
            "tests/node/node_modules is missing: run `npm ci` in tests/node"
        );
        Node::run_in(&node_dir(), path, args, &[])
    }

    /// `node <path> ARGS` in `dir`, with `env` added to the environment.
    pub fn run_in(dir: &Path, path: &str, args: &[&str], env: &[(&str, &str)]) -> Node {
        let mut child = Command::new("node")
            .arg(path)
            .args(args)
            .envs(env.iter().copied())
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("node runs (is Node.js installed?)");
        let stderr = collect(child.stderr.take().unwrap());
        let lines = lines(child.stdout.take().unwrap());
        Node {
            child,
            script: path.to_owned(),
            lines,
            stdout: Vec::new(),
            stderr,
        }
    }

    pub fn report(&self) -> String {
        format!(
            "{} stdout:\n{}\nstderr:\n{}",
            self.script,
            self.stdout.join("\n"),
            self.stderr.lock().unwrap()
        )
    }

    /// Waits (bounded) for the stdout line `want`.
    pub fn expect_line(&mut self, want: &str, budget: Duration) {
        let deadline = Instant::now() + budget;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.trim() == want => return,
                Ok(line) => self.stdout.push(line),
                Err(RecvTimeoutError::Timeout) => {
                    panic!("no `{want}` within {budget:?}\n{}", self.report())
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let _ = wait_until(&mut self.child, Duration::from_secs(5));
                    panic!("script ended without `{want}`\n{}", self.report())
                }
            }
        }
    }

    /// Reads stdout to its end and the exit status (within `budget`), and
    /// checks the JSON verdict (last line): exit 0 and `"ok": true`.
    pub fn verdict(self, budget: Duration) -> serde_json::Value {
        self.verdict_with(budget, String::new)
    }

    /// [`Node::verdict`], with `extra()` (the server's log, say) added to
    /// what a failure shows.
    pub fn verdict_with(
        mut self,
        budget: Duration,
        extra: impl Fn() -> String,
    ) -> serde_json::Value {
        let report = |node: &Node| format!("{}\n{}", node.report(), extra());
        let deadline = Instant::now() + budget;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.stdout.push(line),
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => {
                    panic!("no verdict within {budget:?}\n{}", report(&self))
                }
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let Some(status) = wait_until(&mut self.child, left.max(Duration::from_secs(1))) else {
            panic!("script did not exit within {budget:?}\n{}", report(&self));
        };
        let verdict: Option<serde_json::Value> = self
            .stdout
            .last()
            .and_then(|l| serde_json::from_str(l).ok());
        assert!(
            status.success(),
            "{} failed ({status})\n{}",
            self.script,
            report(&self)
        );
        let verdict = verdict.unwrap_or_else(|| panic!("no JSON verdict\n{}", report(&self)));
        assert_eq!(verdict["ok"], true, "{verdict}\n{}", report(&self));
        verdict
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
