//! `scripts/serve.sh` runs `npm ci` only when `web/node_modules` is missing
//! or older than `web/package-lock.json`: `npm ci` rewrites the client
//! bundle, whose file time `build.rs` watches, so running it every time made
//! every run rebuild the binary.
//!
//! The script runs on a copy of its directory layout in a temporary
//! directory, with `npm`, `cargo` and `target/release/tether` replaced by
//! scripts that write down how they were called (nothing is installed or
//! built). Every run is bounded.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

mod common;
use common::{run, EXIT_BUDGET};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn write_exe(path: &Path, body: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, format!("#!/bin/sh\n{body}\n")).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
}

/// A copy of the layout serve.sh works in, with recording stand-ins.
struct Layout {
    dir: tempfile::TempDir,
}

impl Layout {
    fn new() -> Layout {
        let dir = tether_testkit::temp_dir("serve-sh");
        let root = dir.path();
        std::fs::create_dir_all(root.join("scripts")).unwrap();
        std::fs::copy(
            repo().join("scripts/serve.sh"),
            root.join("scripts/serve.sh"),
        )
        .unwrap();
        let web = root.join("crates/tether-server/web");
        std::fs::create_dir_all(&web).unwrap();
        for file in ["package.json", "package-lock.json"] {
            std::fs::copy(
                repo().join("crates/tether-server/web").join(file),
                web.join(file),
            )
            .unwrap();
        }
        let log = root.join("calls.log");
        let log = log.display();
        // npm ci: what it leaves behind (the hidden lock file and the bundle).
        write_exe(
            &root.join("bin/npm"),
            &format!(
                "echo \"npm $* in $(pwd)\" >> '{log}'\n\
                 mkdir -p node_modules/socket.io-client/dist\n\
                 echo '{{}}' > node_modules/.package-lock.json\n\
                 echo 'bundle' > node_modules/socket.io-client/dist/socket.io.min.js"
            ),
        );
        write_exe(
            &root.join("bin/cargo"),
            &format!("echo \"cargo $*\" >> '{log}'"),
        );
        write_exe(
            &root.join("target/release/tether"),
            &format!("echo \"tether $*\" >> '{log}'"),
        );
        Layout { dir }
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn web(&self) -> PathBuf {
        self.root().join("crates/tether-server/web")
    }

    /// Runs serve.sh once; returns the calls it made.
    fn serve(&self) -> Vec<String> {
        let log = self.root().join("calls.log");
        let _ = std::fs::remove_file(&log);
        let path = format!(
            "{}:{}",
            self.root().join("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut cmd = Command::new("bash");
        cmd.arg(self.root().join("scripts/serve.sh"))
            .args(["--port", "4000"])
            .current_dir(self.root())
            .env("PATH", path)
            .stdin(Stdio::null());
        let out = run(&mut cmd, EXIT_BUDGET).expect("serve.sh ends (stand-ins only)");
        assert!(out.status.success(), "serve.sh failed: {out:?}");
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .map(|l| l.replace(&self.root().display().to_string(), "ROOT"))
            .collect()
    }
}

fn age(path: &Path, by: Duration) {
    let file = std::fs::File::options().write(true).open(path).unwrap();
    file.set_modified(SystemTime::now() - by).unwrap();
}

#[test]
fn serve_sh_runs_npm_ci_only_when_node_modules_is_missing_or_stale() {
    let layout = Layout::new();
    let build = "cargo build --release --bin tether --manifest-path ROOT/Cargo.toml";
    let npm = "npm ci --no-audit --no-fund --loglevel=error in ROOT/crates/tether-server/web";
    let serve = "tether serve --port 4000";

    // A fresh clone: no node_modules.
    assert_eq!(layout.serve(), [npm, build, serve], "first run");
    // The second run: node_modules is there and newer than the lock file.
    assert_eq!(
        layout.serve(),
        [build, serve],
        "second run must not run npm ci"
    );
    assert_eq!(layout.serve(), [build, serve], "third run");

    // The lock file changed (a pull, a version bump): install again.
    age(
        &layout.web().join("node_modules/.package-lock.json"),
        Duration::from_secs(3600),
    );
    assert_eq!(
        layout.serve(),
        [npm, build, serve],
        "package-lock.json newer"
    );
    assert_eq!(layout.serve(), [build, serve], "after reinstalling");

    // The bundle was deleted by hand: install again.
    std::fs::remove_file(
        layout
            .web()
            .join("node_modules/socket.io-client/dist/socket.io.min.js"),
    )
    .unwrap();
    assert_eq!(layout.serve(), [npm, build, serve], "bundle missing");
}
