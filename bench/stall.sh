#!/usr/bin/env bash
# stall.sh -- does a slow call hold up other clients? The measurement of docs/handlers.md.
#
# For each arrpcd configuration: a fast open-loop load (arrpc-bench --rate, latency counted from
# each request's scheduled time, so a stalled server cannot hide) runs alone, then again beside
# slow clients that send {"sleep": SLOW_S} back to back (or {"defer": SLOW_S} for the deferred
# configuration). Prints the fast load's p50/p99/max in both runs and their p99 ratio, and saves
# the raw JSON in STALL_OUT.
#
# Environment (defaults in brackets):
#   STALL_SECONDS [5]  measured seconds per run      STALL_RATE [1600] fast requests per second
#   STALL_FAST_CONNS [16]  fast connections          STALL_SLOW_CONNS [2] slow connections
#   STALL_SLOW_S [0.05]    seconds each slow call takes
#   STALL_CONFIGS ["threads0 threads8"] names: threads0 (--threads 0), threads8 (--threads 8),
#                  defer0 (--threads 0, slow calls deferred instead of sleeping)
#   STALL_WORKERS [2]  worker processes              BENCH_BIN_DIR, BENCH_LIB_DIR [build/bin, build/lib]
#   STALL_OUT [a new /tmp/arrpc-stall.*]
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${BENCH_BIN_DIR:-$ROOT/build/bin}
LIB=${BENCH_LIB_DIR:-$ROOT/build/lib}
SECONDS_RUN=${STALL_SECONDS:-5}
RATE=${STALL_RATE:-1600}
FAST=${STALL_FAST_CONNS:-16}
SLOW=${STALL_SLOW_CONNS:-2}
SLOW_S=${STALL_SLOW_S:-0.05}
CONFIGS=${STALL_CONFIGS:-"threads0 threads8"}
WORKERS=${STALL_WORKERS:-2}
OUT=${STALL_OUT:-$(mktemp -d /tmp/arrpc-stall.XXXXXX)}
mkdir -p "$OUT"
PY=/usr/bin/python3
START_TIMEOUT=10

die() { echo "stall.sh: $*" >&2; exit 1; }
[ -x "$BIN/arrpcd" ] && [ -x "$BIN/arrpc-bench" ] || die "build first (cmake --build build)"

SERVER_PID=""
stop_server() {
    [ -n "$SERVER_PID" ] || return 0
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
}
trap stop_server EXIT

# start_server NAME ARRPCD-OPTIONS...: sets PORT.
start_server() {
    local log=$OUT/$1.log
    shift
    "$BIN/arrpcd" --listen 127.0.0.1:0 --handler "$LIB/arrpc-demo.so" --workers "$WORKERS" \
        "$@" >/dev/null 2>"$log" &
    SERVER_PID=$!
    PORT=""
    for _ in $(seq $((START_TIMEOUT * 20))); do
        PORT=$(sed -n 's/.*listening on [^ ]*:\([0-9][0-9]*\).*/\1/p' "$log" | head -1)
        [ -n "$PORT" ] && return 0
        sleep 0.05
    done
    die "arrpcd did not start: $log"
}

fast_load() { # OUTPUT-FILE
    "$BIN/arrpc-bench" -q --json --rate "$RATE" -c "$FAST" -w 1 -d "$SECONDS_RUN" \
        "127.0.0.1:$PORT" >"$1"
}

slow_load() { # REQUEST-JSON OUTPUT-FILE
    "$BIN/arrpc-bench" -q --json --request "$1" -c "$SLOW" -d "$((SECONDS_RUN + 2))" \
        "127.0.0.1:$PORT" >"$2"
}

for config in $CONFIGS; do
    case $config in
        threads0) opts=(--threads 0) slow_request="{\"sleep\": $SLOW_S}" ;;
        threads8) opts=(--threads 8) slow_request="{\"sleep\": $SLOW_S}" ;;
        defer0) opts=(--threads 0) slow_request="{\"defer\": $SLOW_S}" ;;
        *) die "unknown configuration $config" ;;
    esac
    start_server "$config" "${opts[@]}"
    fast_load "$OUT/$config-alone.json"
    slow_load "$slow_request" "$OUT/$config-slow.json" &
    slow_pid=$!
    fast_load "$OUT/$config-beside-slow.json"
    wait "$slow_pid"
    stop_server
done

"$PY" - "$OUT" $CONFIGS <<'PYEOF' | tee "$OUT/summary.txt"
import json, sys
out, configs = sys.argv[1], sys.argv[2:]
def load(name):
    with open("%s/%s.json" % (out, name)) as f:
        return json.load(f)
print("fast load: latency from each request's scheduled time, ms (p50 / p99 / max)")
print("%-10s %28s %28s %10s %14s" % ("config", "alone", "beside slow clients", "p99 ratio",
                                    "slow replies"))
for c in configs:
    a, b, s = load(c + "-alone"), load(c + "-beside-slow"), load(c + "-slow")
    def lat(r):
        l = r["latency_us"]
        return "%.2f / %.2f / %.2f" % (l["p50"] / 1e3, l["p99"] / 1e3, l["max"] / 1e3)
    ratio = b["latency_us"]["p99"] / max(a["latency_us"]["p99"], 1)
    print("%-10s %28s %28s %10.1f %14d" % (c, lat(a), lat(b), ratio, s["replies"]))
PYEOF
echo "raw results: $OUT"
