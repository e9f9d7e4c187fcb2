#!/usr/bin/env bash
# Runs the chat app on its embedded store (./tether.db), from a fresh clone:
# installs the pinned browser client bundle, builds, serves on 127.0.0.1:3000.
#   scripts/serve.sh [tether serve flags...]     e.g. --port 8080 --store chat.db
# A second run starts at once: `npm ci` runs only when web/node_modules is
# missing or older than web/package-lock.json (npm ci rewrites the bundle,
# whose file time build.rs watches, so running it every time rebuilt the binary).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
web="$root/crates/tether-server/web"
installed="$web/node_modules/.package-lock.json"  # written by npm ci
bundle="$web/node_modules/socket.io-client/dist/socket.io.min.js"
if [ ! -f "$installed" ] || [ ! -f "$bundle" ] \
  || [ "$web/package-lock.json" -nt "$installed" ] || [ "$web/package.json" -nt "$installed" ]; then
  (cd "$web" && npm ci --no-audit --no-fund --loglevel=error)
fi
cargo build --release --bin tether --manifest-path "$root/Cargo.toml"
exec "$root/target/release/tether" serve "$@"
