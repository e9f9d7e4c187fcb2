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
use std::time::Duration;

use common::{Node, Server, TempDir};

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
    let url = format!("{}/", server.url());
    let timeout = SCRIPT_TIMEOUT.as_millis().to_string();
    let shot_arg = shot.display().to_string();
    let script = Node::run_in(
        &browser,
        "admin-ui.mjs",
        &["--timeout", &timeout, &url, "--screenshot", &shot_arg],
        &[("ADMIN_USER", USER), ("ADMIN_PASSWORD", PASSWORD)],
    );
    let verdict = script.verdict_with(SCRIPT_TIMEOUT + Duration::from_secs(20), || {
        format!("server:\n{}", server.stderr())
    });
    assert_eq!(verdict["counts"]["sockets_listed_after"], 1, "{verdict}");
    assert!(shot.is_file(), "the script took its screenshot");
    println!("{verdict}");
}
