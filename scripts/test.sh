#!/usr/bin/env bash
# The whole test suite, from a fresh clone: installs what it needs first.
#   scripts/test.sh                  # everything
#   FUZZ_SECONDS=0 scripts/test.sh   # skip the bounded fuzz runs
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== npm ci: the chat page's client bundle (web/), the official client for tests (tests/node), playwright-core (tests/browser)"
(cd web && npm ci --no-audit --no-fund --loglevel=error)
(cd tests/node && npm ci --no-audit --no-fund --loglevel=error)
if [ -d tests/browser ]; then
  (cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)
  bash scripts/install-chromium.sh
fi

echo "== cargo test --workspace"
cargo test --workspace --all-targets
cargo test --workspace --doc

fuzz_seconds="${FUZZ_SECONDS:-15}"
if [ "$fuzz_seconds" != "0" ]; then
  echo "== fuzz: every decoder for ${fuzz_seconds}s"
  bash scripts/fuzz.sh "$fuzz_seconds"
fi
