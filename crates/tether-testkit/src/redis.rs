//! Redis for the `RedisStore` tests (tests/redis_store.rs, tests/redis_nodes.rs):
//! the shared server on 127.0.0.1:6379, where each test works under a key
//! prefix of its own that it deletes at the end, and private servers (their
//! own port and data directory) for tests that stop and restart Redis.
//!
//! Also the in-process Tether node the multi-node tests run (tests/redis_nodes.rs,
//! tests/cluster_nodes.rs): a runtime and a port of its own.
//!
//! When Redis cannot be reached (nor started: `redis-server` not installed), a
//! test says on stderr that it was skipped and why, and passes; with CI=true
//! it fails instead.

#![allow(dead_code)]

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The shared Redis (override with TETHER_TEST_REDIS_URL).
pub fn shared_url() -> String {
    std::env::var("TETHER_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/".into())
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Says (on stderr, not captured by the test harness) that `test` was skipped,
/// and why; with CI=true, fails instead.
pub fn skip(test: &str, why: &str) {
    if in_ci() {
        panic!("{test}: {why} (CI=true: a missing Redis is a failure)");
    }
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED {test}: {why} (set CI=true to make this a failure)"
    );
}

/// PING on a new connection, with short timeouts.
pub fn ping(url: &str) -> Result<(), String> {
    let client = redis::Client::open(url).map_err(|e| e.to_string())?;
    let mut conn = client
        .get_connection_with_timeout(Duration::from_millis(500))
        .map_err(|e| e.to_string())?;
    conn.set_read_timeout(Some(Duration::from_secs(2)))
        .map_err(|e| e.to_string())?;
    redis::cmd("PING")
        .query::<String>(&mut conn)
        .map(drop)
        .map_err(|e| e.to_string())
}

/// Waits (bounded) until `url` answers PING.
pub fn wait_ping(url: &str, within: Duration) -> Result<(), String> {
    let deadline = Instant::now() + within;
    loop {
        match ping(url) {
            Ok(()) => return Ok(()),
            Err(e) if Instant::now() >= deadline => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// The shared Redis's URL, once it answers; started (daemonized, no
/// persistence) if it does not and `redis-server` is installed. `None`: the
/// test was skipped (said on stderr).
pub fn shared(test: &str) -> Option<String> {
    static AVAILABLE: OnceLock<Result<(), String>> = OnceLock::new();
    let url = shared_url();
    let available = AVAILABLE.get_or_init(|| {
        let Err(first) = ping(&url) else {
            return Ok(());
        };
        if std::env::var_os("TETHER_TEST_REDIS_URL").is_some() {
            return Err(format!("Redis unreachable at {url}: {first}"));
        }
        let started = Command::new("redis-server")
            .args(["--daemonize", "yes", "--bind", "127.0.0.1", "--port", "6379"])
            .args(["--save", "", "--appendonly", "no"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        match started {
            Ok(_) => wait_ping(&url, Duration::from_secs(5)).map_err(|e| {
                format!("Redis unreachable at {url} ({first}), and still after starting redis-server: {e}")
            }),
            Err(e) => Err(format!(
                "Redis unreachable at {url} ({first}), and redis-server cannot be started: {e}"
            )),
        }
    });
    match available {
        Ok(()) => Some(url),
        Err(why) => {
            skip(test, why);
            None
        }
    }
}

/// A key prefix of its own for one test.
pub fn unique_prefix(test: &str) -> String {
    format!("tether-test:{test}:{:016x}", rand::random::<u64>())
}

/// Deletes every key under `prefix:` (SCAN + DEL); returns how many.
pub fn delete_prefix(url: &str, prefix: &str) -> Result<usize, redis::RedisError> {
    let client = redis::Client::open(url)?;
    let mut conn = client.get_connection_with_timeout(Duration::from_secs(2))?;
    conn.set_read_timeout(Some(Duration::from_secs(5)))?;
    let pattern = format!("{}:*", glob_escape(prefix));
    let mut cursor = 0u64;
    let mut deleted = 0;
    // Bounded: SCAN returns to cursor 0 after one full pass.
    loop {
        let (next, keys): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(1000)
            .query(&mut conn)?;
        if !keys.is_empty() {
            deleted += redis::cmd("DEL").arg(&keys).query::<usize>(&mut conn)?;
        }
        if next == 0 {
            return Ok(deleted);
        }
        cursor = next;
    }
}

/// Escapes the glob characters of a SCAN pattern.
fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A test's place on the shared Redis: its URL and prefix; the prefix's keys
/// are deleted on drop (after a failure too).
pub struct Scope {
    pub url: String,
    pub prefix: String,
}

impl Scope {
    /// `None`: Redis is unreachable and the test was skipped.
    pub fn new(test: &str) -> Option<Scope> {
        let url = shared(test)?;
        Some(Scope {
            url,
            prefix: unique_prefix(test),
        })
    }

    /// A store (a "node") on this scope.
    pub fn store(&self) -> tether::store::RedisStore {
        tether::store::RedisStore::connect(&self.url, &self.prefix).expect("connect to Redis")
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        if let Err(e) = delete_prefix(&self.url, &self.prefix) {
            let _ = writeln!(
                std::io::stderr(),
                "could not delete the keys of {}: {e}",
                self.prefix
            );
        }
    }
}

/// A redis-server of a test's own: a free port, a data directory in the temp
/// dir, AOF with fsync at every write. Stopped and its directory removed on
/// drop.
pub struct PrivateRedis {
    pub port: u16,
    pub dir: PathBuf,
    child: Option<Child>,
}

impl PrivateRedis {
    /// `None`: redis-server is not installed (the test was skipped).
    pub fn start(test: &str) -> Option<PrivateRedis> {
        if Command::new("redis-server")
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_err()
        {
            skip(
                test,
                "redis-server is not installed (a private Redis is needed)",
            );
            return None;
        }
        let dir = std::env::temp_dir().join(format!(
            "tether-redis-{}-{:016x}",
            std::process::id(),
            rand::random::<u64>()
        ));
        std::fs::create_dir_all(&dir).expect("create the Redis data directory");
        let port = free_port();
        let mut redis = PrivateRedis {
            port,
            dir,
            child: None,
        };
        redis.launch();
        Some(redis)
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    fn launch(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .arg("--dir")
            .arg(&self.dir)
            .args([
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--save",
                "",
            ])
            .args(["--daemonize", "no", "--logfile", "redis.log"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        self.child = Some(child);
        if let Err(e) = wait_ping(&self.url(), Duration::from_secs(10)) {
            panic!(
                "the private redis-server on port {} does not answer: {e}\n{}",
                self.port,
                self.log()
            );
        }
    }

    /// The server's log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("redis.log")).unwrap_or_default()
    }

    /// SHUTDOWN (the AOF is flushed), and waits until the process is gone.
    pub fn stop(&mut self) {
        if let Ok(client) = redis::Client::open(self.url()) {
            if let Ok(mut conn) = client.get_connection_with_timeout(Duration::from_secs(1)) {
                // The server closes the connection: no reply is expected.
                let _ = redis::cmd("SHUTDOWN").query::<()>(&mut conn);
            }
        }
        if let Some(mut child) = self.child.take() {
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                match child.try_wait() {
                    Ok(Some(_)) | Err(_) => break,
                    Ok(None) if Instant::now() >= deadline => {
                        let _ = child.kill();
                        let _ = child.wait();
                        break;
                    }
                    Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        }
    }

    /// Starts the server again on the same port and directory.
    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }

    /// Starts the server again after [`PrivateRedis::stop`].
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "the private Redis is running");
        self.launch();
    }

    pub fn data_dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A port free now on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// One Tether node: a runtime of its own, serving on a port of its own.
pub struct Node {
    pub runtime: Option<tokio::runtime::Runtime>,
    pub url: String,
    pub io: tether::SocketIo,
}

impl Node {
    /// Starts a node serving what `build` makes (called within the node's
    /// runtime; `start_with` itself is called outside any runtime).
    pub fn start_with(build: impl FnOnce() -> tether::SocketIo) -> Node {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("tether-node")
            .enable_all()
            .build()
            .expect("a runtime for the node");
        let (url, io) = runtime.block_on(async {
            let io = build();
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("a port for the node");
            let port = listener.local_addr().expect("the node's port").port();
            tokio::spawn(io.clone().serve(listener));
            (format!("http://127.0.0.1:{port}"), io)
        });
        Node {
            runtime: Some(runtime),
            url,
            io,
        }
    }

    /// Runs `fut` on the node's runtime; its output.
    pub async fn run<T: Send + 'static>(
        &self,
        fut: impl std::future::Future<Output = T> + Send + 'static,
    ) -> T {
        let runtime = self.runtime.as_ref().expect("the node runs");
        runtime.spawn(fut).await.expect("the task completes")
    }

    /// Stops the node abruptly (kill -9, in process): every task dropped, no
    /// goodbye to Redis or to its clients.
    pub fn kill(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        // Outside any runtime: wait for the node's tasks to end, so that no
        // heartbeat or session save lands after the test's keys are deleted.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_timeout(Duration::from_secs(2));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::glob_escape;

    #[test]
    fn glob_characters_are_escaped() {
        assert_eq!(glob_escape("a*b?[c]\\"), "a\\*b\\?\\[c\\]\\\\");
        assert_eq!(glob_escape("tether-bench:1:ff"), "tether-bench:1:ff");
    }
}
