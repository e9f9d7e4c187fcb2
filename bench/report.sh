#!/usr/bin/env bash
# Runs every benchmark and writes docs/benchmarks.md from what they print
# (nothing in that file is typed by hand):
#   bash bench/report.sh [OUT]        # default OUT: docs/benchmarks.md
# - the speed benchmark against Node socket.io 4.8.1 and socketioxide
#   (bench/speed.mjs, which also runs crates/tether-testkit/examples/store_bench.rs);
# - instructions and system calls per echo round trip (bench/callgrind-echo.mjs);
# - the PostgreSQL store's own figures (pg_store_bench) and the correctness
#   benchmark on three nodes sharing one PostgreSQL database;
# - the correctness benchmark under faults, a long run (tether-bench faults);
# - one Rust client's messages per second (tether-client's throughput example);
# - fan-out through one and two nodes on Redis against SQLite (redis_nodes).
# Needs what scripts/test.sh installs (npm packages, Redis on 127.0.0.1:6379,
# PostgreSQL on 127.0.0.1:5432 with database test).
# Takes about 25 minutes on 2 cores; every part is bounded and stops by itself.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-docs/benchmarks.md}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

(cd tests/node && npm ci --no-audit --no-fund --loglevel=error)
cargo build --release --workspace --bin tether --bin tether-bench --example bench_server --example store_bench --example pg_store_bench
cargo build --release --locked --manifest-path bench/socketioxide/Cargo.toml
pg_url=postgres://postgres@127.0.0.1:5432/test

echo "== speed" >&2
node bench/speed.mjs --no-build --markdown "$tmp/speed.md" | tee "$tmp/speed.txt" >&2

faults_args=(--seed 11 --rust-publishers 2 --node-publishers 2 --messages 5000
  --rust-subscribers 2 --node-subscribers 2 --slow-subscribers 1 --slow-ms 1
  --slow-rate 262144 --kills 5 --cuts 30 --stalls 10 --window-secs 60
  --deadline-secs 500 --drain-secs 120)
echo "== instructions and system calls per echo" >&2
node bench/callgrind-echo.mjs > "$tmp/count-off.txt"
node bench/callgrind-echo.mjs --args --durable > "$tmp/count-on.txt"
node bench/callgrind-echo.mjs --bin bench/socketioxide/target/release/socketioxide-bench-server > "$tmp/count-sx.txt"

echo "== PostgreSQL store" >&2
target/release/examples/pg_store_bench 50000 "$pg_url" > "$tmp/pg.txt"

echo "== faults (SQLite)" >&2
faults_status=0
target/release/tether-bench faults "${faults_args[@]}" > "$tmp/faults.txt" || faults_status=$?
redis_args=(--store redis://127.0.0.1:6379 --nodes 3 --kills 3 --seed 13)
echo "== faults (three nodes on Redis)" >&2
redis_status=0
target/release/tether-bench faults "${redis_args[@]}" > "$tmp/faults-redis.txt" || redis_status=$?

pg_args=(--store "$pg_url" --nodes 3 --kills 3 --redis-outages 2 --seed 17)
echo "== faults (three nodes on PostgreSQL)" >&2
pg_status=0
target/release/tether-bench faults "${pg_args[@]}" > "$tmp/faults-pg.txt" || pg_status=$?

echo "== client throughput" >&2
cargo run --quiet --release -p tether-client --example throughput > "$tmp/client.txt"

echo "== fan-out on Redis" >&2
TETHER_FANOUT="100 5000" cargo test --quiet --release -p tether --test redis_nodes fanout -- --nocapture \
  2>&1 | grep '^fan-out' > "$tmp/fanout.txt"

mkdir -p "$(dirname "$out")"
{
  echo "# Benchmarks"
  echo
  echo "Written by \`bash bench/report.sh\` on $(date -u '+%Y-%m-%d %H:%M UTC') at commit"
  echo "\`$(git rev-parse --short HEAD)\`$(git diff --quiet HEAD -- . ':!docs' || echo ' (with uncommitted changes)'),"
  echo "on $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')),"
  echo "$(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr); Node $(node --version), $(rustc --version)."
  echo "Every figure below is as the command printed it. Loopback only; the machine may have"
  echo "had other work at the time (figures vary from run to run by up to about 2x here)."
  echo
  cat "$tmp/speed.md"
  echo
  echo "## Correctness under faults (\`target/release/tether-bench faults ${faults_args[*]}\`)"
  echo
  echo "Exit code $faults_status (0: nothing acknowledged lost, duplicated or reordered)."
  echo
  echo '```'
  cat "$tmp/faults.txt"
  echo '```'
  echo
  echo "Three nodes on Redis, one killed at a time (\`target/release/tether-bench faults ${redis_args[*]}\`): exit code $redis_status."
  echo
  echo '```'
  cat "$tmp/faults-redis.txt"
  echo '```'
  echo
  echo "Three nodes on PostgreSQL, one killed at a time, the database unreachable twice (\`target/release/tether-bench faults ${pg_args[*]}\`): exit code $pg_status."
  echo
  echo '```'
  cat "$tmp/faults-pg.txt"
  echo '```'
  echo
  echo "## Instructions and system calls per echo round trip (\`node bench/callgrind-echo.mjs\`)"
  echo
  echo "User-space instructions (valgrind's callgrind) and system calls (strace -c) of the"
  echo "server per acked echo, one client, one echo in flight: counts, not times, so the"
  echo "machine's other work does not move them (a few percent from run to run: the runtime's"
  echo "threads do not always meet the same way)."
  echo
  echo '```'
  cat "$tmp/count-off.txt" "$tmp/count-on.txt" "$tmp/count-sx.txt"
  echo '```'
  echo
  echo "## PostgreSQL store (\`target/release/examples/pg_store_bench 50000 $pg_url\`)"
  echo
  echo '```'
  cat "$tmp/pg.txt"
  echo '```'
  echo
  echo "## One Rust client (\`cargo run --release -p tether-client --example throughput\`)"
  echo
  echo '```'
  cat "$tmp/client.txt"
  echo '```'
  echo
  echo "## Fan-out on Redis against SQLite (\`TETHER_FANOUT=\"100 5000\" cargo test --release -p tether --test redis_nodes fanout -- --nocapture\`)"
  echo
  echo "100 clients in the test process receive 5 000 stored broadcasts each; the receiving"
  echo "clients share one test thread, which may be what limits these figures."
  echo
  echo '```'
  cat "$tmp/fanout.txt"
  echo '```'
} > "$out"
echo "wrote $out" >&2
