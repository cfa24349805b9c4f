#!/bin/bash
# python.sh -- the Python package's measurements (docs/python.md), side by side in one run:
#   1. server: an asyncio echo server written as 0.5.0 works, and arrpc.Server with a Python echo
#      handler (threads 16 and 0, workers 0 and 2), each driven by arrpc-bench -c 16 -P 1 with
#      --server-pid: requests/s and server CPU per reply;
#   1b. workers: the same servers with a handler bound by the CPU and the GIL ({"work": N}, about
#      40 us of Python per call at N=2000), so that the load generator needs little CPU and a
#      second worker process has a core to use: requests/s of workers=2 against workers=0;
#   2. client: arrpc.Client.send and send_batch(100) against a plain socket + msgpack client,
#      sequential calls/s against arrpcd's built-in echo (one worker);
#   3. stall: a fast open-loop load alone and beside 2 connections calling {"sleep": 0.05}
#      (time.sleep in the Python handler), arrpc.Server with its defaults.
# Environment: PYBENCH_SECONDS [5], BENCH_BIN_DIR [build/bin], BENCH_PYTHON_DIR [build/python],
#   PYBENCH_OUT [a new /tmp/arrpc-pybench.*], STALL_RATE [800] fast requests/s,
#   PYBENCH_WORK [2000] loop steps of the CPU-bound request.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_RUN=${PYBENCH_SECONDS:-5}
BIN=${BENCH_BIN_DIR:-build/bin}
export PYTHONPATH=${BENCH_PYTHON_DIR:-build/python}
OUT=${PYBENCH_OUT:-$(mktemp -d /tmp/arrpc-pybench.XXXXXX)}
RATE=${STALL_RATE:-800}
WORK=${PYBENCH_WORK:-2000}
PY=/usr/bin/python3
mkdir -p "$OUT"
die() { echo "python.sh: $*" >&2; exit 1; }
[ -x "$BIN/arrpc-bench" ] || die "build first (cmake --build build)"

SERVER_PID=""
stop_server() {
    [ -n "$SERVER_PID" ] || return 0
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
}
trap stop_server EXIT

start() { # LOG COMMAND...: sets PORT and SERVER_PID
    local log=$1
    shift
    : >"$log" # before the server starts: a sed of a log not yet made would end the script (set -e)
    "$@" >/dev/null 2>"$log" &
    SERVER_PID=$!
    PORT=""
    for _ in $(seq 400); do
        PORT=$(sed -n 's/.*listening on [^ ]*:\([0-9][0-9]*\).*/\1/p' "$log" | head -1)
        [ -n "$PORT" ] && sleep 0.3 && return 0
        sleep 0.05
    done
    die "server did not start: $log"
}

serve_each() { # PREFIX REQUEST CONFIG...: one arrpc-bench -c 16 -P 1 run per server config
    local prefix=$1 config t w request=()   # REQUEST "": arrpc-bench's own
    [ -z "$2" ] || request=(--request "$2")
    shift 2
    for config in "$@"; do
        case $config in
            asyncio) start "$OUT/$prefix$config.log" $PY bench/py_echo_server.py asyncio ;;
            arrpc-t*) t=${config#arrpc-t}; t=${t%%-*}; w=${config##*-w}
                start "$OUT/$prefix$config.log" $PY bench/py_echo_server.py arrpc --threads "$t" \
                    --workers "$w" ;;
        esac
        "$BIN/arrpc-bench" -q --json "${request[@]}" -c 16 -P 1 -w 1 -d "$SECONDS_RUN" \
            --server-pid "$SERVER_PID" "127.0.0.1:$PORT" >"$OUT/$prefix$config.json"
        stop_server
    done
}

echo "== server: arrpc-bench -c 16 -P 1 -w 1 -d $SECONDS_RUN --server-pid PID"
serve_each "" "" asyncio arrpc-t16-w0 arrpc-t0-w0 arrpc-t16-w2 arrpc-t0-w2
$PY - "$OUT" <<'PYEOF' | tee "$OUT/server.txt"
import json, sys
out = sys.argv[1]
def load(n):
    with open("%s/%s.json" % (out, n)) as f:
        return json.load(f)
print("%-14s %10s %14s %12s" % ("server", "qps", "server us/reply", "errors"))
for n in ("asyncio", "arrpc-t16-w0", "arrpc-t0-w0", "arrpc-t16-w2", "arrpc-t0-w2"):
    r = load(n)
    print("%-14s %10.0f %14.2f %12d" % (n, r["qps"], r["server_cpu"]["us_per_reply"], r["errors"]))
PYEOF

echo "== workers: {\"work\": $WORK} (Python bound by the CPU and the GIL), arrpc-bench -c 16 -P 1"
serve_each work- "{\"work\": $WORK}" arrpc-t16-w0 arrpc-t16-w2 arrpc-t0-w0 arrpc-t0-w2
$PY - "$OUT" <<'PYEOF' | tee "$OUT/workers.txt"
import json, sys
out = sys.argv[1]
def load(n):
    with open("%s/work-%s.json" % (out, n)) as f:
        return json.load(f)
print("%-14s %10s %14s %12s %10s" % ("server", "qps", "server us/reply", "client %core", "w2 / w0"))
for t in ("16", "0"):
    base = load("arrpc-t%s-w0" % t)["qps"]
    for w in ("0", "2"):
        r = load("arrpc-t%s-w%s" % (t, w))
        print("%-14s %10.0f %14.2f %12.0f %10.2f" % ("arrpc-t%s-w%s" % (t, w), r["qps"],
              r["server_cpu"]["us_per_reply"], r["cpu"]["percent_of_core"], r["qps"] / base))
PYEOF

echo "== client: sequential calls/s against arrpcd --handler echo --workers 1"
start "$OUT/arrpcd.log" "$BIN/arrpcd" --listen 127.0.0.1:0 --handler echo --workers 1
$PY bench/py_client_bench.py "$PORT" "$SECONDS_RUN" | tee "$OUT/client.txt"
stop_server

echo "== stall: $RATE fast requests/s over 16 connections, alone and beside 2 x {\"sleep\": 0.05}"
start "$OUT/stall.log" $PY bench/py_echo_server.py arrpc
"$BIN/arrpc-bench" -q --json --rate "$RATE" -c 16 -w 1 -d "$SECONDS_RUN" "127.0.0.1:$PORT" \
    >"$OUT/stall-alone.json"
"$BIN/arrpc-bench" -q --json --request '{"sleep": 0.05}' -c 2 -d "$((SECONDS_RUN + 2))" \
    "127.0.0.1:$PORT" >"$OUT/stall-slow.json" &
slow=$!
"$BIN/arrpc-bench" -q --json --rate "$RATE" -c 16 -w 1 -d "$SECONDS_RUN" "127.0.0.1:$PORT" \
    >"$OUT/stall-beside.json"
wait "$slow"
stop_server
$PY - "$OUT" <<'PYEOF' | tee "$OUT/stall.txt"
import json, sys
out = sys.argv[1]
def load(n):
    with open("%s/stall-%s.json" % (out, n)) as f:
        return json.load(f)
a, b, s = load("alone"), load("beside"), load("slow")
lat = lambda r: "%.2f / %.2f / %.2f" % tuple(r["latency_us"][k] / 1e3 for k in ("p50", "p99", "max"))
print("fast p50 / p99 / max ms: alone %s, beside slow %s; p99 ratio %.2f; slow replies %d"
      % (lat(a), lat(b), b["latency_us"]["p99"] / max(a["latency_us"]["p99"], 1), s["replies"]))
PYEOF
echo "raw results: $OUT"
