//! The Socket.IO Admin UI (`--admin-user`, `--admin-password`), against the
//! real `tether serve` binary, with the official socket.io-client acting as
//! the UI does (tests/node/admin/ui.mjs):
//! - a wrong password or user is refused ("invalid credentials"); the right
//!   one gets `session`, `config`, `all_sockets` (a chat client with its
//!   rooms) and `server_stats` (namespaces, Tether's delivery figures); a
//!   client connecting and joining a room is told live; the session id logs
//!   in again; `join`, `leave` and `_disconnect` act on the chat client and
//!   are told; the count of sockets in `server_stats` goes down;
//! - a bcrypt hash as the password works the same (`$2b$...`);
//! - two nodes on Redis: the UI on one lists (with its rooms) and
//!   disconnects a client of the other, is told of its disconnection, and
//!   gets both nodes' statistics;
//! - `--admin-read-only`: no feature claimed, `_disconnect` refused, the
//!   chat client still connected;
//! - without the settings `/admin` is an unknown namespace and `/admin/` 404;
//! - with them the UI's files are served at `/admin/` with their types;
//! - the settings: flag, environment variables, TOML; `--check` hides the
//!   password; a user without a password, a broken hash, read-only alone are
//!   refused naming the setting; the password is never logged.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::{http_get, run, tether, Node, Server, TempDir, EXIT_BUDGET};

/// One GET: (status, lowercased head, body).
fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String, String) {
    use std::io::{Read, Write};
    let mut stream =
        std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP answer");
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap();
    (status, head.to_ascii_lowercase(), body.to_owned())
}

const USER: &str = "operator";
const PASSWORD: &str = "admin-password-0123";

fn start(dir: &TempDir, args: &[&str], env: &[(&str, &str)]) -> Server {
    let mut all = vec!["--port", "0", "--store", "memory"];
    all.extend_from_slice(args);
    let mut env = env.to_vec();
    // Debug logs: whatever is logged, the password is not.
    env.push(("RUST_LOG", "debug"));
    Server::start(dir.path(), &all, &env)
}

/// Runs tests/node/admin/ui.mjs (bounded) in `mode` and checks its verdict.
fn ui_script(server: &Server, password: &str, mode: &str) -> serde_json::Value {
    ui_script_with(server, password, mode, &[])
}

fn ui_script_with(
    server: &Server,
    password: &str,
    mode: &str,
    extra: &[&str],
) -> serde_json::Value {
    let url = server.url();
    let mut args = vec![
        "--url",
        &url,
        "--user",
        USER,
        "--password",
        password,
        "--mode",
        mode,
    ];
    args.extend_from_slice(extra);
    let script = Node::run("admin/ui.mjs", &args);
    script.verdict_with(Duration::from_secs(60), || {
        format!("server:\n{}", server.stderr())
    })
}

fn no_password_logged(server: &Server) {
    let logs = server.stderr();
    assert!(!logs.contains(PASSWORD), "the password is logged:\n{logs}");
}

#[test]
fn the_ui_protocol_logs_in_lists_and_acts() {
    let dir = TempDir::new("admin-full");
    let server = start(
        &dir,
        &["--admin-user", USER, "--admin-password", PASSWORD],
        &[],
    );
    let verdict = ui_script(&server, PASSWORD, "full");
    assert!(verdict["sockets_listed"].as_u64() >= Some(2), "{verdict}");
    no_password_logged(&server);
}

/// Two nodes on one Redis: the UI on one node lists, is told of and
/// disconnects a client of the other; both send their statistics. Skipped
/// (said on stderr) without Redis, except in CI.
#[test]
fn every_node_of_a_cluster_reports_its_own_sockets() {
    let Some(scope) = tether_testkit::redis::Scope::new("admin-cluster") else {
        return;
    };
    let dir = TempDir::new("admin-cluster");
    let args = [
        "--store",
        scope.url.as_str(),
        "--redis-prefix",
        scope.prefix.as_str(),
        "--admin-user",
        USER,
        "--admin-password",
        PASSWORD,
    ];
    let start_node = || {
        let mut all = vec!["--port", "0"];
        all.extend_from_slice(&args);
        Server::start(dir.path(), &all, &[])
    };
    let a = start_node();
    let b = start_node();
    ui_script_with(&a, PASSWORD, "cluster", &["--url2", &b.url()]);
    no_password_logged(&a);
    no_password_logged(&b);
}

#[test]
fn a_bcrypt_hash_is_accepted_as_the_password() {
    let dir = TempDir::new("admin-bcrypt");
    let hash = bcrypt::hash(PASSWORD, 4).expect("hash");
    let server = start(
        &dir,
        &[],
        &[
            ("TETHER_ADMIN_USER", USER),
            ("TETHER_ADMIN_PASSWORD", &hash),
        ],
    );
    ui_script(&server, PASSWORD, "full");
    let logs = server.stderr();
    assert!(!logs.contains(&hash), "the hash is logged:\n{logs}");
}

#[test]
fn read_only_refuses_the_actions() {
    let dir = TempDir::new("admin-ro");
    let toml = dir.write(
        "t.toml",
        &format!(
            "admin_user = \"{USER}\"\nadmin_password = \"{PASSWORD}\"\nadmin_read_only = true\n"
        ),
    );
    let server = start(&dir, &["--config", toml.to_str().unwrap()], &[]);
    ui_script(&server, PASSWORD, "read-only");
    no_password_logged(&server);
}

#[test]
fn without_the_settings_there_is_no_admin() {
    let dir = TempDir::new("admin-off");
    let server = start(&dir, &[], &[]);
    ui_script(&server, PASSWORD, "off");
    let (status, _) = http_get(server.addr, "/admin/").expect("GET /admin/");
    assert_eq!(status, 404);
}

#[test]
fn the_ui_files_are_served_at_admin() {
    let web = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("web/node_modules/@socket.io/admin-ui/ui/dist");
    assert!(
        web.join("index.html").is_file(),
        "web/node_modules is missing: run `npm ci` in crates/tether-server/web (then rebuild)"
    );
    let dir = TempDir::new("admin-files");
    let server = start(
        &dir,
        &["--admin-user", USER, "--admin-password", PASSWORD],
        &[],
    );
    let index = std::fs::read_to_string(web.join("index.html")).unwrap();
    for path in ["/admin/", "/admin"] {
        let (status, head, body) = get(server.addr, path);
        assert_eq!(status, 200, "{path}");
        assert!(head.contains("content-type: text/html"), "{path}: {head}");
        assert_eq!(body, index, "{path}: the package's index.html, unchanged");
    }
    // Every script and stylesheet the page names, with its type, unchanged.
    let mut named = 0;
    for part in index.split(['"', '\'']) {
        let kind = if part.starts_with("js/") && part.ends_with(".js") {
            "application/javascript"
        } else if part.starts_with("css/") && part.ends_with(".css") {
            "text/css"
        } else {
            continue;
        };
        let (status, head, body) = get(server.addr, &format!("/admin/{part}"));
        assert_eq!(status, 200, "{part}");
        assert!(
            head.contains(&format!("content-type: {kind}")),
            "{part}: {head}"
        );
        let file = std::fs::read_to_string(web.join(part)).unwrap();
        assert!(body == file, "{part}: not the package's file, unchanged");
        named += 1;
    }
    assert!(named >= 4, "the page names its scripts and stylesheets");
    let (status, _) = http_get(server.addr, "/admin/no-such-file.js").expect("GET");
    assert_eq!(status, 404);
}

#[test]
fn admin_settings_are_checked_and_the_password_is_hidden() {
    let dir = TempDir::new("admin-settings");
    let check = |args: &[&str], env: &[(&str, &str)]| {
        let mut all = vec!["serve", "--check", "--store", "memory"];
        all.extend_from_slice(args);
        run(&mut tether(dir.path(), &all, env), EXIT_BUDGET).unwrap()
    };
    let toml = dir.write(
        "t.toml",
        &format!("admin_user = \"{USER}\"\nadmin_password = \"{PASSWORD}\"\n"),
    );
    for (how, out) in [
        (
            "flag",
            check(&["--admin-user", USER, "--admin-password", PASSWORD], &[]),
        ),
        (
            "env",
            check(
                &[],
                &[
                    ("TETHER_ADMIN_USER", USER),
                    ("TETHER_ADMIN_PASSWORD", PASSWORD),
                ],
            ),
        ),
        ("toml", check(&["--config", toml.to_str().unwrap()], &[])),
    ] {
        assert!(out.status.success(), "{how}: {out:?}");
        assert!(
            out.stdout.contains("admin_password = \"(hidden)\""),
            "{how}: {}",
            out.stdout
        );
        assert!(
            out.stdout.contains(&format!("admin_user = \"{USER}\"")),
            "{how}: {}",
            out.stdout
        );
        assert!(
            out.stdout.contains("admin_read_only = false"),
            "{how}: {}",
            out.stdout
        );
        assert!(
            !out.stdout.contains(PASSWORD),
            "{how}: the password is printed"
        );
    }
    let ro = check(
        &[
            "--admin-user",
            USER,
            "--admin-password",
            PASSWORD,
            "--admin-read-only",
        ],
        &[],
    );
    assert!(
        ro.status.success() && ro.stdout.contains("admin_read_only = true"),
        "{ro:?}"
    );
    let off = check(&[], &[]);
    assert!(
        off.status.success() && off.stdout.contains("admin_password = \"\""),
        "{off:?}"
    );

    let refused = |args: &[&str], env: &[(&str, &str)], wants: &[&str]| {
        let out = check(args, env);
        assert!(!out.status.success(), "{args:?} accepted: {out:?}");
        for want in wants {
            assert!(
                out.stderr.contains(want),
                "{args:?}: no {want:?} in {out:?}"
            );
        }
        assert!(
            !out.stderr.contains(PASSWORD),
            "the password is echoed: {out:?}"
        );
    };
    refused(&["--admin-user", USER], &[], &["admin_password", "empty"]);
    refused(
        &[],
        &[("TETHER_ADMIN_PASSWORD", PASSWORD)],
        &["admin_user", "empty"],
    );
    refused(
        &["--admin-user", USER, "--admin-password", "$2b$10$broken"],
        &[],
        &[
            "admin_password",
            "--admin-password",
            "not a valid bcrypt hash",
        ],
    );
    refused(
        &["--admin-read-only"],
        &[],
        &["admin_read_only", "no Admin UI"],
    );
}
