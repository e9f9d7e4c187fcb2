//! Embeds, from web/node_modules (installed by `npm ci` in web/, pinned by
//! web/package-lock.json), into the `tether` binary:
//! - the official socket.io-client browser bundle (the chat page's client);
//! - the files of the official Socket.IO Admin UI (`@socket.io/admin-ui`'s
//!   `ui/dist`, unchanged; source maps left out), served at `/admin/`.
//!
//! Without them the pages say how to install them.

use std::path::{Path, PathBuf};

fn main() {
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    println!("cargo:rerun-if-changed=web/package-lock.json");
    client_bundle(&out_dir);
    admin_ui(&out_dir);
}

fn client_bundle(out_dir: &Path) {
    let bundle = Path::new("web/node_modules/socket.io-client/dist/socket.io.min.js");
    println!("cargo:rerun-if-changed={}", bundle.display());
    let content = std::fs::read_to_string(bundle).unwrap_or_else(|_| {
        println!("cargo:warning=web/node_modules is missing: run `npm ci` in web/ for the chat page's client bundle");
        "document.body.insertAdjacentHTML('afterbegin','<p style=\"color:red\">The socket.io-client bundle is missing: run <code>npm ci</code> in web/ and rebuild.</p>');".to_owned()
    });
    std::fs::write(out_dir.join("socket.io.min.js"), content).expect("OUT_DIR is writable");
}

/// Writes `admin_ui.rs`: `&[(path under /admin/, bytes)]`, empty when the
/// package is not installed.
fn admin_ui(out_dir: &Path) {
    let dist = Path::new("web/node_modules/@socket.io/admin-ui/ui/dist");
    println!("cargo:rerun-if-changed={}", dist.display());
    let mut files = Vec::new();
    if dist.is_dir() {
        walk(dist, dist, &mut files);
    } else {
        println!("cargo:warning=web/node_modules/@socket.io/admin-ui is missing: run `npm ci` in web/ for the Admin UI's files");
    }
    files.sort();
    let mut code = String::from("&[\n");
    for (name, path) in files {
        code.push_str(&format!("    ({name:?}, include_bytes!({path:?})),\n"));
    }
    code.push(']');
    std::fs::write(out_dir.join("admin_ui.rs"), code).expect("OUT_DIR is writable");
}

fn walk(root: &Path, dir: &Path, files: &mut Vec<(String, String)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            walk(root, &path, files);
        } else if path.extension().is_none_or(|e| e != "map") {
            let name = path
                .strip_prefix(root)
                .expect("under the root")
                .to_string_lossy()
                .replace('\\', "/");
            let absolute = std::fs::canonicalize(&path).expect("the file exists");
            files.push((name, absolute.to_string_lossy().into_owned()));
        }
    }
}
