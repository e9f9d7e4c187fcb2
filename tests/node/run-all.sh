#!/usr/bin/env bash
# Run every scenario for every transport against a server on 127.0.0.1:PORT.
#   ./run-all.sh PORT                 # server already running (e.g. Tether)
#   ./run-all.sh --reference [PORT]   # start reference-server.mjs first (default: a free port)
# Extra env: TRANSPORTS="polling websocket upgrade", SCENARIOS="events acks ...",
#            PARSER=msgpack (both for the scenarios and the reference server).
set -u
cd "$(dirname "$0")"

reference=0
if [ "${1:-}" = "--reference" ]; then reference=1; shift; fi
port="${1:-}"
if [ -z "$port" ] && [ "$reference" = 0 ]; then echo "usage: run-all.sh [--reference] PORT" >&2; exit 2; fi
transports="${TRANSPORTS:-polling websocket upgrade}"
scenarios="${SCENARIOS:-events acks binary namespaces rooms disconnect reconnect}"
parser="${PARSER:-default}"

if [ ! -d node_modules ]; then npm ci --no-audit --no-fund >/dev/null || exit 2; fi

if [ "$reference" = 1 ]; then
  log=$(mktemp)
  node reference-server.mjs --parser "$parser" "${port:-0}" >"$log" &
  server_pid=$!
  trap 'kill "$server_pid" 2>/dev/null; rm -f "$log"' EXIT
  for _ in $(seq 100); do
    grep -q '^listening ' "$log" && break
    kill -0 "$server_pid" 2>/dev/null || { echo "reference server failed to start" >&2; exit 2; }
    sleep 0.1
  done
  port=$(sed -n 's/^listening //p' "$log")
  [ -n "$port" ] || { echo "reference server did not report its port" >&2; exit 2; }
  echo "reference server (parser: $parser) on port $port"
fi
url="http://127.0.0.1:$port"

pass=0; fail=0; failed=()
for s in $scenarios; do
  for t in $transports; do
    if out=$(node "scenarios/$s.mjs" --url "$url" --transport "$t" --parser "$parser"); then
      pass=$((pass + 1)); echo "PASS $s/$t $out"
    else
      fail=$((fail + 1)); failed+=("$s/$t"); echo "FAIL $s/$t $out"
    fi
  done
done

echo "passed: $pass, failed: $fail${failed:+ (${failed[*]})}"
[ "$fail" = 0 ]
