//! Test helpers: Node servers, bounded waits, event inboxes.
#![allow(dead_code)]

use std::future::Future;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tether_client::{Args, Lifecycle, LifecycleStream, Socket};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

/// Every wait in the tests is bounded by this.
pub const LIMIT: Duration = Duration::from_secs(20);

/// Awaits `fut`, failing the test after `LIMIT` with `what`.
pub async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(LIMIT, fut).await {
        Ok(v) => v,
        Err(_) => panic!("timed out: {what}"),
    }
}

/// The repository's tests/node folder.
pub fn node_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/node")
}

/// A Node server started from tests/node, killed when dropped.
pub struct NodeServer {
    child: Child,
    pub port: u16,
}

impl NodeServer {
    /// Starts `node <script> <args..> 0` in tests/node and waits for `listening <port>`.
    pub async fn start(script: &str, args: &[&str]) -> NodeServer {
        let dir = node_dir();
        assert!(
            dir.join("node_modules/socket.io").exists(),
            "run `npm ci` in tests/node first"
        );
        let mut child = Command::new("node")
            .arg(script)
            .args(args)
            .arg("0")
            .current_dir(&dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("node runs");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let port = within("node server prints its port", async {
            loop {
                let line = lines.next_line().await.expect("read").expect("node exited");
                if let Some(p) = line.strip_prefix("listening ") {
                    break p.trim().parse::<u16>().expect("port");
                }
            }
        })
        .await;
        // Keep draining stdout so that the server never blocks on it.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        NodeServer { child, port }
    }

    /// The reference server of the interop contract.
    pub async fn reference() -> NodeServer {
        Self::start("reference-server.mjs", &[]).await
    }

    pub fn url(&self, nsp: &str) -> String {
        format!("http://127.0.0.1:{}{nsp}", self.port)
    }
}

impl Drop for NodeServer {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// Collects the events `name` of a socket, in order.
pub struct Inbox {
    rx: mpsc::UnboundedReceiver<Args>,
    name: String,
}

impl Inbox {
    pub fn new(socket: &Socket, name: &str) -> Inbox {
        let (tx, rx) = mpsc::unbounded_channel();
        socket.on(name, move |mut ev| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(ev.take_args());
            }
        });
        Inbox {
            rx,
            name: name.to_owned(),
        }
    }

    pub async fn next(&mut self) -> Args {
        let what = format!("event {:?}", self.name);
        within(&what, self.rx.recv()).await.expect("socket alive")
    }

    pub async fn take(&mut self, n: usize) -> Vec<Args> {
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(self.next().await);
        }
        out
    }

    /// Nothing more arrived (checked after a round trip that follows it).
    pub fn assert_empty(&mut self) {
        if let Ok(args) = self.rx.try_recv() {
            panic!(
                "unexpected extra {:?} event: {:?}",
                self.name,
                args.values()
            );
        }
    }
}

/// Waits for the first lifecycle event matching `pred`.
pub async fn wait_for(
    stream: &mut LifecycleStream,
    what: &str,
    pred: impl Fn(&Lifecycle) -> bool,
) -> Lifecycle {
    within(what, async {
        loop {
            let ev = stream.recv().await.expect("manager alive");
            if pred(&ev) {
                return ev;
            }
        }
    })
    .await
}

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}
