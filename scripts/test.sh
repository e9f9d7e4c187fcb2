#!/usr/bin/env bash
# The whole test suite, from a fresh clone: installs what it needs first.
#   scripts/test.sh                  # everything
#   FUZZ_SECONDS=0 scripts/test.sh   # skip the bounded fuzz runs
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== npm ci: the chat page's client bundle (crates/tether-server/web/), the official client for tests (tests/node), playwright-core (tests/browser)"
(cd crates/tether-server/web && npm ci --no-audit --no-fund --loglevel=error)
(cd tests/node && npm ci --no-audit --no-fund --loglevel=error)
if [ -d tests/browser ]; then
  (cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)
  bash scripts/install-debian.sh chromium
fi
echo "== nginx (Debian's, for crates/tether-server/tests/nginx.rs)"
bash scripts/install-debian.sh nginx

echo "== services: Redis on 127.0.0.1:6379 (started if it does not answer)"
if ! (exec 3<>/dev/tcp/127.0.0.1/6379) 2>/dev/null; then
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
  for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/6379) 2>/dev/null && break; sleep 0.1; done
fi

echo "== services: PostgreSQL on 127.0.0.1:5432 (started if it does not answer), database test"
pg_answers() { psql -h 127.0.0.1 -p 5432 -U postgres -d postgres -Atqc 'select 1' >/dev/null 2>&1; }
if ! pg_answers; then
  if command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start
    for _ in $(seq 100); do pg_answers && break; sleep 0.1; done
  else
    echo "PostgreSQL is not installed: its tests say they were skipped (with CI=true they fail)"
  fi
fi
if pg_answers && ! psql -h 127.0.0.1 -p 5432 -U postgres -d test -Atqc 'select 1' >/dev/null 2>&1; then
  createdb -h 127.0.0.1 -p 5432 -U postgres test
fi

echo "== cargo test --workspace"
cargo test --workspace --all-targets
cargo test --workspace --doc

fuzz_seconds="${FUZZ_SECONDS:-15}"
if [ "$fuzz_seconds" != "0" ]; then
  echo "== fuzz: every decoder for ${fuzz_seconds}s"
  bash scripts/fuzz.sh "$fuzz_seconds"
fi
