//! The official Socket.IO Admin UI, unchanged, as an operator uses it:
//! `tether serve --admin-user U --admin-password P` serves it at `/admin/`,
//! and tests/browser/admin-ui.mjs drives it in Debian's headless Chromium
//! (playwright-core): a wrong password is refused, the right one logs in,
//! the Sockets page lists two chat clients and the Rooms page their rooms,
//! the disconnect button disconnects one, and the list goes from two to one.
//!
//! Needs `npm ci` in tests/browser and /usr/bin/chromium
//! (`bash scripts/install-debian.sh chromium`); neither is done here.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Server, TempDir};

const USER: &str = "operator";
const PASSWORD: &str = "admin-password-0123";
/// The script's own deadline; the harness waits a little longer.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(90);

#[test]
fn the_official_admin_ui_logs_in_lists_and_disconnects() {
    let browser = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/browser");
    assert!(
        browser
            .join("node_modules/playwright-core/package.json")
            .is_file(),
        "tests/browser/node_modules is missing: run `npm ci` in tests/browser"
    );
    assert!(
        Path::new("/usr/bin/chromium").is_file(),
        "/usr/bin/chromium is missing: run `bash scripts/install-debian.sh chromium` as root"
    );
    let dir = TempDir::new("admin-browser");
    let server = Server::start(
        dir.path(),
        &[
            "--port",
            "0",
            "--store",
            "memory",
            "--admin-user",
            USER,
            "--admin-password",
            PASSWORD,
        ],
        &[],
    );
    let shot = dir.path().join("admin-ui.png");
    let mut child = Command::new("node")
        .arg("admin-ui.mjs")
        .arg(format!("{}/", server.url()))
        .args(["--timeout", &SCRIPT_TIMEOUT.as_millis().to_string()])
        .arg("--screenshot")
        .arg(&shot)
        .env("ADMIN_USER", USER)
        .env("ADMIN_PASSWORD", PASSWORD)
        .current_dir(&browser)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node runs (is Node.js installed?)");
    let stdout = common::collect(child.stdout.take().unwrap());
    let stderr = common::collect(child.stderr.take().unwrap());
    let status = common::wait_until(&mut child, SCRIPT_TIMEOUT + Duration::from_secs(20));
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    // Let the readers take the last bytes.
    std::thread::sleep(Duration::from_millis(100));
    let out = stdout.lock().unwrap().clone();
    let err = stderr.lock().unwrap().clone();
    let verdict: serde_json::Value = out
        .lines()
        .last()
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or(serde_json::Value::Null);
    assert!(
        status.is_some_and(|s| s.success()) && verdict["ok"] == true,
        "admin-ui.mjs: {status:?}\n{out}\n{err}\nserver:\n{}",
        server.stderr()
    );
    assert_eq!(verdict["counts"]["sockets_listed_after"], 1, "{verdict}");
    assert!(shot.is_file(), "the script took its screenshot");
    println!("{verdict}");
}
