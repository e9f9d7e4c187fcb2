#!/usr/bin/env bash
# Runs the chat app on its embedded store (./tether.db), from a fresh clone:
# installs the pinned browser client bundle, builds, serves on 127.0.0.1:3000.
#   scripts/serve.sh [tether serve flags...]     e.g. --port 8080 --store chat.db
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
(cd "$root/crates/tether-server/web" && npm ci --no-audit --no-fund --loglevel=error)
cargo build --release --bin tether --manifest-path "$root/Cargo.toml"
exec "$root/target/release/tether" serve "$@"
