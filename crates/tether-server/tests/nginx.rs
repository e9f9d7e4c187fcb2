//! `tether serve` behind nginx (Debian's package, installed by
//! scripts/test.sh), set up exactly as deploy/nginx.conf says: that file is
//! included into a minimal nginx configuration of the test's own, with its
//! `listen` and upstream `server` lines moved to free loopback ports.
//!
//! Checked: the official client through the proxy over long-polling, the
//! upgrade to WebSocket and WebSocket alone (sends, acks, broadcasts); with
//! `--trusted-proxies 127.0.0.1` the client's address is the one nginx
//! puts in X-Forwarded-For (a client on 127.0.0.2 that forges the header
//! is still 127.0.0.2), and without it the proxy's own.

mod common;
use common::*;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const NGINX: &str = "/usr/sbin/nginx";

/// nginx in the foreground on a configuration of its own, stopped on drop.
struct Nginx {
    child: Child,
    port: u16,
    stderr: Arc<Mutex<String>>,
    dir: PathBuf,
}

impl Nginx {
    /// Serves deploy/nginx.conf on a free port, proxying to `upstream`.
    fn start(dir: &TempDir, upstream: SocketAddr) -> Nginx {
        assert!(
            Path::new(NGINX).exists(),
            "{NGINX} is missing: scripts/test.sh installs Debian's nginx (apt-get install nginx)"
        );
        let site = std::fs::read_to_string(
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../deploy/nginx.conf"),
        )
        .expect("read deploy/nginx.conf");
        let port = free_port();
        for line in ["    listen 80;", "    server 127.0.0.1:3000;"] {
            assert!(
                site.contains(line),
                "deploy/nginx.conf lost `{}`",
                line.trim()
            );
        }
        let site = site
            .replace("    listen 80;", &format!("    listen 127.0.0.1:{port};"))
            .replace(
                "    server 127.0.0.1:3000;",
                &format!("    server {upstream};"),
            );
        let root = dir.path().join("nginx");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::write(root.join("tether.conf"), site).unwrap();
        // As root, workers would switch to `nobody`, which cannot read the
        // temporary directory.
        let user = if is_root() { "user root;\n" } else { "" };
        let d = root.display();
        let conf = format!(
            "{user}daemon off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log info;\n\
             events {{ worker_connections 256; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  \
             fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n  \
             include {d}/tether.conf;\n}}\n"
        );
        std::fs::write(root.join("nginx.conf"), conf).unwrap();
        let mut child = Command::new(NGINX)
            .arg("-p")
            .arg(&root)
            .arg("-c")
            .arg(root.join("nginx.conf"))
            .arg("-e")
            .arg(root.join("error.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start nginx");
        let stderr = collect(child.stderr.take().unwrap());
        let nginx = Nginx {
            child,
            port,
            stderr,
            dir: root,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        while std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            assert!(
                Instant::now() < deadline,
                "nginx does not listen on {addr}: {}",
                nginx.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        nginx
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn log(&self) -> String {
        let file = std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default();
        format!("{}\n{file}", self.stderr.lock().unwrap())
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// A long-polling handshake through the proxy from a socket bound to
/// `from`, with `headers`: the HTTP status.
fn handshake_from(from: &str, to: u16, headers: &str) -> u16 {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket
            .bind(format!("{from}:0").parse().unwrap())
            .expect("bind a loopback source address");
        let mut stream = tokio::time::timeout(
            Duration::from_secs(5),
            socket.connect(format!("127.0.0.1:{to}").parse().unwrap()),
        )
        .await
        .expect("connect in time")
        .expect("connect to nginx");
        let req = format!(
            "GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: 127.0.0.1:{to}\r\n{headers}Connection: close\r\n\r\n"
        );
        stream.write_all(req.as_bytes()).await.unwrap();
        let mut raw = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut raw))
            .await
            .expect("an answer in time")
            .unwrap();
        let text = String::from_utf8_lossy(&raw);
        text.split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no status in {text:?}"))
    })
}

/// The client addresses the server logged (`--log-format json`) for the
/// sessions it opened.
fn logged_clients(server: &Server) -> Vec<String> {
    server
        .stderr()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|l| l["fields"]["message"] == "session opened")
        .filter_map(|l| l["fields"]["client"].as_str().map(str::to_owned))
        .collect()
}

const DEBUG: &[(&str, &str)] = &[("RUST_LOG", "info,tether::engine=debug")];

#[test]
fn the_official_client_through_nginx_as_deploy_says() {
    let dir = TempDir::new("nginx");
    let mut server = Server::start(
        dir.path(),
        &[
            "--port",
            "0",
            "--store",
            "memory",
            "--trusted-proxies",
            "127.0.0.1",
            "--log-format",
            "json",
        ],
        DEBUG,
    );
    let nginx = Nginx::start(&dir, server.addr);
    for transport in ["polling", "upgrade", "websocket"] {
        let verdict = Node::start(
            "roundtrip",
            &["--url", &nginx.url(), "--transport", transport],
        )
        .verdict(Duration::from_secs(60));
        let want = if transport == "polling" {
            "polling"
        } else {
            "websocket"
        };
        assert_eq!(verdict["transport"], want, "{verdict}\n{}", nginx.log());
        assert_eq!(verdict["heard"], 3, "{verdict}");
    }

    // The client's address: what nginx appended, not what the client sent.
    let before = logged_clients(&server).len();
    assert_eq!(
        handshake_from("127.0.0.2", nginx.port, "X-Forwarded-For: 6.6.6.6\r\n"),
        200
    );
    let clients = server.wait_stderr(
        |log| log.matches("session opened").count() > before,
        Duration::from_secs(10),
    );
    let logged = logged_clients(&server);
    assert_eq!(
        logged.get(before).map(String::as_str),
        Some("Some(127.0.0.2:0)"),
        "{logged:?}\n{clients}"
    );
    assert!(server.stop(Duration::from_secs(10)).success());
}

#[test]
fn without_trusted_proxies_the_client_is_the_proxy() {
    let dir = TempDir::new("nginx-untrusted");
    let mut server = Server::start(
        dir.path(),
        &["--port", "0", "--store", "memory", "--log-format", "json"],
        DEBUG,
    );
    let nginx = Nginx::start(&dir, server.addr);
    assert_eq!(handshake_from("127.0.0.2", nginx.port, ""), 200);
    server.wait_stderr(
        |log| log.contains("session opened"),
        Duration::from_secs(10),
    );
    let logged = logged_clients(&server);
    assert_eq!(logged.len(), 1, "{logged:?}");
    assert!(
        logged[0].starts_with("Some(127.0.0.1:") && logged[0] != "Some(127.0.0.1:0)",
        "the proxy's own address and port: {logged:?}"
    );
    assert!(server.stop(Duration::from_secs(10)).success());
}
