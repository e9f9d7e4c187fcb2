#!/usr/bin/env bash
# Fuzzes every cargo-fuzz target of fuzz/ for a while, one after the other.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET]     (default 20)
#
# Installs cargo-fuzz when missing, builds the targets, seeds a temporary
# corpus per target with a few valid packets (plus fuzz/corpus/<target> when
# it exists, read only), runs each target, and prints one line per target
# with the runs executed. Exits non-zero if any target crashed; the crashing
# input is kept in fuzz/artifacts/<target>/ (not committed).
#
# Works on the stable toolchain. FUZZ_SANITIZER picks the sanitizer: none
# (default; tether-proto forbids unsafe code) builds on plain stable;
# "address" needs -Zsanitizer, which RUSTC_BOOTSTRAP=1 (set below) unlocks,
# and runs 3 to 8 times slower. FUZZ_TARGETS restricts the run to some
# targets ("sio_json sio_msgpack").
set -euo pipefail

seconds="${1:-20}"
if ! [[ "$seconds" =~ ^[1-9][0-9]*$ ]]; then
    echo "usage: $0 [SECONDS_PER_TARGET]" >&2
    exit 2
fi
sanitizer="${FUZZ_SANITIZER:-none}"

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
fi

targets="${FUZZ_TARGETS:-$(cargo fuzz list --fuzz-dir fuzz)}"

echo "building fuzz targets (sanitizer: $sanitizer)" >&2
cargo fuzz build --fuzz-dir fuzz -s "$sanitizer"

work="$(mktemp -d "${TMPDIR:-/tmp}/tether-fuzz.XXXXXX")"
keep_work=0
trap '[ "$keep_work" = 1 ] || rm -rf "$work"' EXIT

# seed TARGET NAME BYTES: one seed file (printf escapes are interpreted).
seed() {
    mkdir -p "$work/corpus/$1"
    printf "$3" >"$work/corpus/$1/$2"
}

seed engine_packet open '0{"sid":"abc","upgrades":["websocket"],"pingInterval":25000}'
seed engine_packet ping '2probe'
seed engine_packet message '4hello'
seed engine_packet noop '6'
seed engine_packet binary '\x01\x02\x03\xff'

seed polling_payload mixed '4hello\x1ebAQIDBA=='
seed polling_payload several '2\x1e3probe\x1e4["a"]\x1eb\x1e6\x1e1'
seed polling_payload one '42["chat","hi"]'

seed sio_json connect '0/admin,{"token":"123"}'
seed sio_json disconnect '1/admin,'
seed sio_json event '2/chat,7["message",{"text":"hi"},1.5,null]'
seed sio_json ack '3/admin,456[true]'
seed sio_json error '4{"message":"Not authorized"}'
seed sio_json binary_event '52-/up,9["file",{"_placeholder":true,"num":0},[{"_placeholder":true,"num":1}]]\x1eb\x01\x02\x1eb'
seed sio_json binary_ack '61-12[{"_placeholder":true,"num":0}]\x1eb\xff'
# Illegal placeholders (refused): out of range, negative, a string, nested.
seed sio_json bad_num '51-["f",{"_placeholder":true,"num":3}]\x1eb\x01'
seed sio_json bad_neg '51-["f",{"_placeholder":true,"num":-1}]\x1eb\x01'
seed sio_json bad_str '51-["f",{"a":[{"_placeholder":true,"num":"0"}]}]\x1eb\x01'

# Msgpack maps {type, nsp, data, id}, encoded by hand.
seed sio_msgpack event '\x84\xa4type\x02\xa3nsp\xa1/\xa4data\x92\xa2hi\x01\xa2id\x03'
seed sio_msgpack connect '\x83\xa4type\x00\xa3nsp\xa6/admin\xa4data\x81\xa5token\xa3abc'
seed sio_msgpack binary '\x83\xa4type\x02\xa3nsp\xa1/\xa4data\x93\xa2up\xc4\x03\x01\x02\x03\xcb\x3f\xf8\x00\x00\x00\x00\x00\x00'
seed sio_msgpack ack '\x84\xa4type\x03\xa3nsp\xa1/\xa4data\x92\xc0\xc3\xa2id\x07'
seed sio_msgpack error '\x83\xa4type\x04\xa3nsp\xa2/x\xa4data\x81\xa7message\xa1x'
seed sio_msgpack undefined '\x83\xa4type\x02\xa3nsp\xa1/\xa4data\x92\xa1e\xd4\x00\x00'

# The session target decodes its operations with `arbitrary`: any bytes do.
seed engine_session a '\x10\x00\x20\x00\x30\x00\x08\x00\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a'
seed engine_session b '\xff\xff\x00\x01\x00\x01\x40\x01\x03\x00\x00\x05\x00\x00\x04\x01\x02\x00\x00\x06\x00\x00'

failed=0
summary=()
for target in $targets; do
    corpus=("$work/corpus/$target")
    mkdir -p "${corpus[0]}"
    if [ -d "fuzz/corpus/$target" ]; then
        corpus+=("fuzz/corpus/$target")
    fi
    log="$work/$target.log"
    echo "fuzzing $target for ${seconds}s" >&2
    status=ok
    if ! cargo fuzz run --fuzz-dir fuzz -s "$sanitizer" "$target" "${corpus[@]}" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 >"$log" 2>&1; then
        status=FAILED
        failed=1
        {
            echo "---- $target failed; log: $log (kept) ----"
            grep -E -A4 'panicked at|==ERROR|ERROR: libFuzzer' "$log" | head -n 30 || true
            tail -n 25 "$log"
        } >&2
        keep_work=1
    fi
    runs="$(sed -n 's/^stat::number_of_executed_units: *\([0-9]*\).*/\1/p' "$log" | tail -n 1)"
    if [ -z "$runs" ]; then
        runs="$(sed -n 's/^Done \([0-9]*\) runs.*/\1/p; s/^#\([0-9]*\)[[:space:]].*/\1/p' "$log" | tail -n 1)"
    fi
    line="$(printf '%-16s %-6s %12s runs  %9s runs/s' "$target" "$status" "${runs:-?}" \
        "$(( ${runs:-0} / seconds ))")"
    artifact="$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n 1)"
    if [ -n "$artifact" ]; then
        line="$line  crash: $artifact"
    fi
    summary+=("$line")
done

echo
printf '%s\n' "${summary[@]}"
exit "$failed"
