#!/usr/bin/env bash
# pinned_workers.sh -- what a second worker costs when it cannot add a CPU: the experiment of
# docs/performance.md ("Workers on one pinned CPU").
#
# Every arrpcd configuration (--workers N for each N in PIN_WORKERS) is started under
# `taskset -c PIN_SERVER_CPU`, so its master and the workers it forks (which inherit the mask)
# share one CPU; arrpc-bench runs under `taskset -c PIN_CLIENT_CPU`. Both configurations run
# side by side, each cell against each in turn, PIN_ROUNDS times (interleaved, so a busy phase of
# the machine hits all of them). On one CPU, more workers cannot add throughput: what changes is
# the cost of running several (context switches between them, fewer requests per wake-up, the
# master, each worker's share of the shared counters), which shows in the server's CPU per reply
# (arrpc-bench --server-pid, the master and all its workers) and in context switches per reply.
# Prints medians and saves the raw JSON in PIN_OUT.
#
# Environment (defaults in brackets):
#   PIN_SECONDS [5]  measured seconds per run     PIN_WARMUP [1] warm-up seconds per run
#   PIN_ROUNDS [5]   interleaved rounds (median)  PIN_CELLS ["16:1 16:16"] connections:pipeline
#   PIN_WORKERS ["1 2"] worker counts to compare   PIN_SIZE [16] payload bytes
#   PIN_SERVER_CPU [0], PIN_CLIENT_CPU [1]  CPUs (taskset -c lists) of the servers and the client
#   BENCH_BIN_DIR, BENCH_LIB_DIR [build/bin, build/lib]   PIN_OUT [a new /tmp/arrpc-pinned.*]
# Quick check: PIN_SECONDS=1 PIN_WARMUP=0.5 PIN_ROUNDS=1 bench/pinned_workers.sh
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${BENCH_BIN_DIR:-$ROOT/build/bin}
LIB=${BENCH_LIB_DIR:-$ROOT/build/lib}
DURATION=${PIN_SECONDS:-5}
WARMUP=${PIN_WARMUP:-1}
ROUNDS=${PIN_ROUNDS:-5}
CELLS=${PIN_CELLS:-"16:1 16:16"}
WORKER_COUNTS=${PIN_WORKERS:-"1 2"}
SIZE=${PIN_SIZE:-16}
SERVER_CPU=${PIN_SERVER_CPU:-0}
CLIENT_CPU=${PIN_CLIENT_CPU:-1}
OUT=${PIN_OUT:-$(mktemp -d /tmp/arrpc-pinned.XXXXXX)}
PY=/usr/bin/python3
START_TIMEOUT=10 # seconds for a server to listen and fork its workers
STOP_TIMEOUT=10  # seconds for a graceful stop before SIGKILL
mkdir -p "$OUT/raw"

die() { echo "pinned_workers.sh: $*" >&2; exit 1; }
for f in "$BIN/arrpcd" "$BIN/arrpc-bench"; do [ -x "$f" ] || die "$f is missing: build first"; done
[ -f "$LIB/arrpc-demo.so" ] || die "$LIB/arrpc-demo.so is missing: build first"
command -v taskset >/dev/null || die "taskset is missing (Debian package util-linux)"
[ -x "$PY" ] || die "$PY is needed to summarise the results"
taskset -c "$SERVER_CPU" true 2>/dev/null || die "CPU list '$SERVER_CPU' is not usable here"
taskset -c "$CLIENT_CPU" true 2>/dev/null || die "CPU list '$CLIENT_CPU' is not usable here"

declare -A PID PORT BASE # per worker count: the master's pid, its port, its run time once started

# shellcheck source=bench/stop_all.sh
source "$ROOT/bench/stop_all.sh"

children() { cat "/proc/$1/task/$1/children" 2>/dev/null || true; }

# Context switches of the master and its workers, voluntary and not, summed.
switches() {
    local total=0 pid
    for pid in "$1" $(children "$1"); do
        total=$((total + $(awk '/ctxt_switches/ { s += $2 } END { print s + 0 }' \
            "/proc/$pid/status" 2>/dev/null || echo 0)))
    done
    echo "$total"
}

# Nanoseconds on a CPU of every thread of one process (/proc/PID/task/*/schedstat).
run_ns() { cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{ s += $1 } END { printf "%.0f", s }'; }

# Where each configuration's CPU time went while it served (start-up excluded): master, workers.
split_report() {
    echo "CPU time while serving (warm-ups included, start-up not), master / workers:"
    for n in $WORKER_COUNTS; do
        local w total=0
        for w in $(children "${PID[$n]}"); do total=$((total + $(run_ns "$w"))); done
        printf '  --workers %s: master %.1f ms, workers %.0f ms\n' "$n" \
            "$(awk -v v="$(run_ns "${PID[$n]}")" -v b="${BASE[$n]%:*}" 'BEGIN { print (v - b) / 1e6 }')" \
            "$(awk -v v="$total" -v b="${BASE[$n]#*:}" 'BEGIN { print (v - b) / 1e6 }')"
    done
}

# start N: arrpcd --workers N pinned to SERVER_CPU; waits for its port and its N workers, and
# checks that every worker inherited the master's CPU mask.
start() {
    local n=$1 log=$OUT/arrpcd-w$1.log port=""
    : >"$log"
    taskset -c "$SERVER_CPU" "$BIN/arrpcd" --workers "$n" --listen 127.0.0.1:0 \
        --handler "$LIB/arrpc-demo.so" >/dev/null 2>"$log" &
    local pid=$!
    for _ in $(seq $((START_TIMEOUT * 20))); do
        port=$(sed -n 's/.*listening on [^ ]*:\([0-9][0-9]*\).*/\1/p' "$log" | head -1)
        [ -n "$port" ] && [ "$(children "$pid" | wc -w)" -ge "$n" ] && break
        kill -0 "$pid" 2>/dev/null || die "arrpcd --workers $n exited; see $log"
        sleep 0.05
    done
    [ -n "$port" ] || die "arrpcd --workers $n did not start; see $log"
    PID[$n]=$pid PORT[$n]=$port
    local mask want
    want=$(taskset -cp "$pid" | sed 's/.*: //')
    for w in $(children "$pid"); do
        mask=$(taskset -cp "$w" | sed 's/.*: //')
        [ "$mask" = "$want" ] || die "worker $w of --workers $n runs on CPUs $mask, not $want"
    done
    local started=0
    for w in $(children "$pid"); do started=$((started + $(run_ns "$w"))); done
    BASE[$n]=$(run_ns "$pid"):$started
    echo "arrpcd --workers $n: master $pid, workers $(children "$pid" | xargs), CPUs $want" >&2
}

for n in $WORKER_COUNTS; do start "$n"; done
{
    echo "date:     $(date -u +%Y-%m-%dT%H:%M:%SZ)   commit: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo -)"
    echo "cpu:      $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1), $(nproc) online"
    echo "load:     $(cut -d' ' -f1-3 /proc/loadavg) (1/5/15 min, before the runs)"
    echo "pinning:  servers on CPU $SERVER_CPU, arrpc-bench on CPU $CLIENT_CPU"
    echo "settings: ${DURATION}s measured after ${WARMUP}s warm-up, $ROUNDS round(s), payload $SIZE bytes"
} | tee "$OUT/machine.txt" >&2

total=$((ROUNDS * $(wc -w <<<"$CELLS") * $(wc -w <<<"$WORKER_COUNTS")))
i=0
for round in $(seq "$ROUNDS"); do
    for cell in $CELLS; do
        c=${cell%%:*} p=${cell##*:}
        for n in $WORKER_COUNTS; do
            i=$((i + 1))
            out=$OUT/raw/w${n}_c${c}_P${p}_r${round}.json
            printf '[%d/%d] round %d  --workers %s  c=%-3s P=%-3s ' "$i" "$total" "$round" "$n" "$c" "$p" >&2
            before=$(switches "${PID[$n]}")
            taskset -c "$CLIENT_CPU" "$BIN/arrpc-bench" --json --quiet -c "$c" -P "$p" -w "$WARMUP" \
                -d "$DURATION" --size "$SIZE" --server-pid "${PID[$n]}" \
                "127.0.0.1:${PORT[$n]}" >"$out.tmp" 2>"$out.err" || true
            after=$(switches "${PID[$n]}")
            # the switches cover the warm-up too: the summary divides by all replies sent
            "$PY" -c 'import json,sys; r=json.load(open(sys.argv[1])); r["server_switches"]=int(sys.argv[2]); json.dump(r,open(sys.argv[3],"w"))' \
                "$out.tmp" "$((after - before))" "$out" && rm -f "$out.tmp"
            "$PY" -c 'import json,sys; r=json.load(open(sys.argv[1])); s=r.get("server_cpu") or {}; print("%10.0f qps  p99 %8.1f us  server %6.3f us/reply  errors %d" % (r["qps"], r["latency_us"]["p99"], s.get("us_per_reply", 0), r["errors"]))' "$out" >&2 ||
                echo "(no summary)" >&2
        done
    done
done

# shellcheck disable=SC2086 # one argument per worker count
"$PY" - "$OUT" "$CELLS" "$WARMUP" "$DURATION" $WORKER_COUNTS <<'PYEOF' | tee "$OUT/summary.txt"
import glob, json, os, statistics, sys

out, cells, warmup, duration = sys.argv[1], sys.argv[2].split(), float(sys.argv[3]), float(sys.argv[4])
counts = sys.argv[5:]

def med(values):
    return statistics.median(values) if values else None

def fmt(v, spec):
    return "-" if v is None else format(v, spec)

def stats(n, c, p):
    rs = []
    for f in sorted(glob.glob(os.path.join(out, "raw", "w%s_c%s_P%s_r*.json" % (n, c, p)))):
        with open(f) as fh:
            rs.append(json.load(fh))
    # switches were counted over warm-up and window: per reply, at the window's rate
    per_k = [1000.0 * r["server_switches"] / (r["qps"] * (warmup + duration))
             for r in rs if r["qps"]]
    return {"qps": med([r["qps"] for r in rs]), "p99": med([r["latency_us"]["p99"] for r in rs]),
            "cpu": med([r["server_cpu"]["us_per_reply"] for r in rs if r.get("server_cpu")]),
            "sw": med(per_k), "errors": sum(r["errors"] for r in rs)}

base = counts[0]
print("medians over rounds; server CPU: the master and its workers, pinned to one CPU")
print("%-8s %-8s %10s %8s %12s %14s %8s" % ("cell", "workers", "qps", "p99 us", "CPU us/reply",
                                             "switches/1000", "errors"))
for cell in cells:
    c, p = cell.split(":")
    rows = {n: stats(n, c, p) for n in counts}
    for n in counts:
        t = rows[n]
        print("%-8s %-8s %10s %8s %12s %14s %8d" % ("c%s P%s" % (c, p), n, fmt(t["qps"], ".0f"),
              fmt(t["p99"], ".0f"), fmt(t["cpu"], ".3f"), fmt(t["sw"], ".1f"), t["errors"]))
    for n in counts[1:]:
        a, b = rows[n], rows[base]
        q = a["qps"] / b["qps"] if a["qps"] and b["qps"] else None
        d = a["cpu"] - b["cpu"] if a["cpu"] is not None and b["cpu"] is not None else None
        print("%-8s %s/%s: qps %s, CPU per reply %s us" % ("", n, base, fmt(q, ".2f"),
                                                               fmt(d, "+.3f")))
PYEOF
split_report | tee -a "$OUT/summary.txt"
echo "raw results and logs: $OUT"
