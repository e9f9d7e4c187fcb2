//! Embeds the official socket.io-client browser bundle (installed by
//! `npm ci` in web/, pinned by web/package-lock.json) into the `tether`
//! binary. Without it the page says how to install it.

use std::path::Path;

fn main() {
    let bundle = Path::new("web/node_modules/socket.io-client/dist/socket.io.min.js");
    println!("cargo:rerun-if-changed={}", bundle.display());
    println!("cargo:rerun-if-changed=web/package-lock.json");
    let out =
        Path::new(&std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("socket.io.min.js");
    let content = std::fs::read_to_string(bundle).unwrap_or_else(|_| {
        println!("cargo:warning=web/node_modules is missing: run `npm ci` in web/ for the chat page's client bundle");
        "document.body.insertAdjacentHTML('afterbegin','<p style=\"color:red\">The socket.io-client bundle is missing: run <code>npm ci</code> in web/ and rebuild.</p>');".to_owned()
    });
    std::fs::write(out, content).expect("OUT_DIR is writable");
}
