#!/usr/bin/env bash
# compare.sh -- arrpcd against Debian's redis-server and against arrpc-echo-limit (the least a
# server of arrpcd's shape can do: framing and echo, no decoding) on 127.0.0.1, driven by the same
# arrpc-bench.
#
# Starts every server once on an ephemeral loopback port, then runs each cell (connections x
# pipeline) against every server in turn, and repeats the whole sweep BENCH_ROUNDS times, so slow
# phases of a noisy machine spread over all servers instead of hitting one. Prints medians (qps,
# p99), the ratio of each arrpcd configuration to redis and to echo-limit, and of each arrpcd
# variant (workers, auth, TLS, metrics) to plain arrpcd; saves the raw JSON and the summary in
# BENCH_OUT.
#
# Environment (defaults in brackets):
#   BENCH_SECONDS [10] measured seconds per run     BENCH_WARMUP [1] warm-up seconds per run
#   BENCH_ROUNDS [3]   sweeps (median over them)    BENCH_THREADS [1] arrpc-bench threads
#   BENCH_CELLS ["1:1 16:1 64:1 16:16"] connections:pipeline pairs
#   BENCH_SERVERS [all]  a subset, e.g. "redis arrpcd"; names: redis echo-limit arrpcd arrpcd-wN
#                        arrpcd-auth
#                        arrpcd-tls arrpcd-metrics arrpcd-threads (--threads BENCH_HANDLER_THREADS)
#                        arrpcd-accesslog (--access-log to a file in BENCH_OUT, emptied after
#                        each run; BENCH_ACCESS_LOG_FORMAT [json] or logfmt)
#   BENCH_HANDLER_THREADS [8] handler threads of the arrpcd-threads variant
#   BENCH_SIZE [16]    payload bytes of an arrpc request (redis gets a plain PING)
#   BENCH_BIN_DIR, BENCH_LIB_DIR [build/bin, build/lib]   BENCH_OUT [a new /tmp/arrpc-compare.*]
#   BENCH_BASE_BIN_DIR, BENCH_BASE_LIB_DIR [unset, BASE_BIN_DIR/../lib]  another build (an older
#                      commit, say) whose arrpcd runs as a twin "NAME@base" of every arrpcd
#                      configuration, in the same rounds, with the same arrpc-bench: before/after
#                      ratios from one invocation, so the machine's mood cancels out
# Quick check: BENCH_SECONDS=2 BENCH_WARMUP=0.5 BENCH_ROUNDS=1 bench/compare.sh
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${BENCH_BIN_DIR:-$ROOT/build/bin}
LIB=${BENCH_LIB_DIR:-$ROOT/build/lib}
DURATION=${BENCH_SECONDS:-10}
WARMUP=${BENCH_WARMUP:-1}
ROUNDS=${BENCH_ROUNDS:-3}
THREADS=${BENCH_THREADS:-1}
CELLS=${BENCH_CELLS:-"1:1 16:1 64:1 16:16"}
WANTED=${BENCH_SERVERS:-}
SIZE=${BENCH_SIZE:-16}
OUT=${BENCH_OUT:-$(mktemp -d /tmp/arrpc-compare.XXXXXX)}
PY=/usr/bin/python3
START_TIMEOUT=10 # seconds for a server to start listening
STOP_TIMEOUT=10  # seconds for a graceful stop before SIGKILL

ARRPCD=$BIN/arrpcd
BENCH=$BIN/arrpc-bench
ECHO_LIMIT=$BIN/arrpc-echo-limit
PLUGIN=$LIB/arrpc-demo.so
BASE_BIN=${BENCH_BASE_BIN_DIR:-}
BASE_ARRPCD="" BASE_PLUGIN=""
if [ -n "$BASE_BIN" ]; then
    BASE_ARRPCD=$BASE_BIN/arrpcd
    BASE_PLUGIN=${BENCH_BASE_LIB_DIR:-$BASE_BIN/../lib}/arrpc-demo.so
fi
mkdir -p "$OUT/raw"

die() { echo "compare.sh: $*" >&2; exit 1; }
note() { echo "note: $*" | tee -a "$OUT/notes.txt" >&2; }

for f in "$ARRPCD" "$BENCH" ${BASE_ARRPCD:+"$BASE_ARRPCD"}; do
    [ -x "$f" ] || die "$f is missing: build first (cmake --build build)"
done
for f in "$PLUGIN" ${BASE_PLUGIN:+"$BASE_PLUGIN"}; do [ -f "$f" ] || die "$f is missing: build first"; done
[ -x "$PY" ] || die "$PY is needed to summarise the results"

# redis-server from Debian, installed here when missing (needs root, as the project's scripts do).
if ! command -v redis-server >/dev/null; then
    echo "installing redis-server (Debian package)..." >&2
    if [ "$(id -u)" = 0 ]; then
        apt-get install -y redis-server >"$OUT/apt.log" 2>&1 ||
            { apt-get update >>"$OUT/apt.log" 2>&1 && apt-get install -y redis-server >>"$OUT/apt.log" 2>&1; } ||
            die "apt-get install redis-server failed; see $OUT/apt.log"
    else
        die "redis-server is not installed; run: sudo apt-get install redis-server"
    fi
fi

# ---- servers: started once, stopped by PID on exit ----------------------------------------------

declare -A PID PORT EXTRA   # per server name: its process, its port, arrpc-bench's extra options
declare -A EMPTY_AFTER      # per server name: a file emptied after each of its runs (an access log)
SERVERS=()

# shellcheck source=bench/stop_all.sh
source "$ROOT/bench/stop_all.sh"

wanted() { [ -z "$WANTED" ] || [[ " $WANTED " == *" $1 "* ]]; }

free_port() {
    "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# start_listening NAME BENCH-OPTIONS PROGRAM ARGS...: starts a server that prints "listening on
# HOST:PORT" on stderr and waits for that line.
start_listening() {
    local name=$1 extra=$2 log=$OUT/$1.log
    shift 2
    : >"$log" # exists before the loop below reads it, however late the child opens it
    "$@" >/dev/null 2>"$log" &
    local pid=$! port=""
    for _ in $(seq $((START_TIMEOUT * 20))); do
        port=$(sed -n 's/.*listening on [^ ]*:\([0-9][0-9]*\).*/\1/p' "$log" | head -1)
        [ -n "$port" ] && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    if [ -z "$port" ]; then
        kill -KILL "$pid" 2>/dev/null || true
        note "$name did not start ($*); skipped. Its log: $log"
        return 0
    fi
    PID[$name]=$pid PORT[$name]=$port EXTRA[$name]=$extra
    SERVERS+=("$name")
}

# start_one NAME ARRPCD PLUGIN BENCH-OPTIONS ARRPCD-OPTIONS...
start_one() {
    local name=$1 arrpcd=$2 plugin=$3 extra=$4
    shift 4
    start_listening "$name" "$extra" "$arrpcd" --listen 127.0.0.1:0 --handler "$plugin" "$@"
}

# echo-limit: arrpc-echo-limit, the reference "framing and echo, nothing else" of the same shape.
start_echo_limit() {
    if [ ! -x "$ECHO_LIMIT" ]; then
        note "$ECHO_LIMIT is missing (an older build?): the echo-limit reference is skipped"
        return 0
    fi
    start_listening echo-limit "--size $SIZE" "$ECHO_LIMIT" --listen 127.0.0.1:0
}

# start_arrpcd NAME BENCH-OPTIONS ARRPCD-OPTIONS...: this build's arrpcd, and its NAME@base twin
# from BENCH_BASE_BIN_DIR when that is set.
start_arrpcd() {
    local name=$1 extra=$2
    shift 2
    start_one "$name" "$ARRPCD" "$PLUGIN" "$extra" "$@"
    if [ -n "$BASE_ARRPCD" ]; then start_one "$name@base" "$BASE_ARRPCD" "$BASE_PLUGIN" "$extra" "$@"; fi
}

start_redis() {
    local port
    port=$(free_port)
    redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --daemonize no \
        --logfile "$OUT/redis.log" &
    local pid=$!
    for _ in $(seq $((START_TIMEOUT * 20))); do
        "$PY" -c 'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1)' \
            "$port" 2>/dev/null && break
        kill -0 "$pid" 2>/dev/null || die "redis-server exited; see $OUT/redis.log"
        sleep 0.05
    done
    PID[redis]=$pid PORT[redis]=$port EXTRA[redis]="--proto resp"
    SERVERS+=(redis)
}

HELP=$("$ARRPCD" --help 2>&1 || true)
has_option() { grep -q -- "^ *$1[ ,=]" <<<"$HELP" || grep -q -- "^ *$1\$" <<<"$HELP"; }
NPROC=$(nproc)
ONE_WORKER=()
if has_option --workers; then ONE_WORKER=(--workers 1); fi
ARRPC_EXTRA="--size $SIZE"

wanted redis && start_redis
wanted echo-limit && start_echo_limit
wanted arrpcd && start_arrpcd arrpcd "$ARRPC_EXTRA" "${ONE_WORKER[@]}"
if wanted arrpcd-wN; then
    if has_option --workers; then
        start_arrpcd arrpcd-wN "$ARRPC_EXTRA" --workers "$NPROC"
    else
        note "arrpcd has no --workers option: the nproc-workers configuration is skipped"
    fi
fi
if wanted arrpcd-auth; then
    if has_option --auth-secret-file; then
        printf 'compare-sh-bench-secret\n' >"$OUT/secret"
        start_arrpcd arrpcd-auth "$ARRPC_EXTRA --auth-secret-file $OUT/secret" "${ONE_WORKER[@]}" \
            --auth-secret-file "$OUT/secret"
    else
        note "arrpcd has no --auth-secret-file option: the auth variant is skipped"
    fi
fi
if wanted arrpcd-tls; then
    if ! grep -q -- '--tls' <<<"$HELP"; then
        note "arrpcd has no TLS options: the TLS variant is skipped"
    elif ! "$BENCH" --help | grep -q -- '--tls'; then
        note "arrpcd has TLS options but arrpc-bench has none yet: the TLS variant is skipped"
    else
        # A throwaway CA and a server certificate for 127.0.0.1, made with the openssl CLI.
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
            -subj /CN=compare-sh-ca -keyout "$OUT/ca.key" -out "$OUT/ca.crt" >/dev/null 2>&1 &&
            openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=localhost \
                -keyout "$OUT/server.key" -out "$OUT/server.csr" >/dev/null 2>&1 &&
            printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >"$OUT/server.ext" &&
            openssl x509 -req -in "$OUT/server.csr" -CA "$OUT/ca.crt" -CAkey "$OUT/ca.key" \
                -set_serial 1 -days 2 -extfile "$OUT/server.ext" -out "$OUT/server.crt" >/dev/null 2>&1 ||
            die "openssl could not make the TLS variant's certificates (apt-get install openssl)"
        start_arrpcd arrpcd-tls "$ARRPC_EXTRA --tls-cafile $OUT/ca.crt" "${ONE_WORKER[@]}" \
            --tls-cert "$OUT/server.crt" --tls-key "$OUT/server.key"
    fi
fi
if wanted arrpcd-threads; then
    if has_option --threads; then
        start_one arrpcd-threads "$ARRPCD" "$PLUGIN" "$ARRPC_EXTRA" "${ONE_WORKER[@]}" \
            --threads "${BENCH_HANDLER_THREADS:-8}"
        # its twin: the base build's inline handlers, when that build has no threads
        if [ -n "$BASE_ARRPCD" ]; then
            if "$BASE_ARRPCD" --help 2>&1 | grep -q -- '--threads'; then
                start_one arrpcd-threads@base "$BASE_ARRPCD" "$BASE_PLUGIN" "$ARRPC_EXTRA" \
                    "${ONE_WORKER[@]}" --threads "${BENCH_HANDLER_THREADS:-8}"
            else
                start_one arrpcd-threads@base "$BASE_ARRPCD" "$BASE_PLUGIN" "$ARRPC_EXTRA" \
                    "${ONE_WORKER[@]}"
            fi
        fi
    else
        note "arrpcd has no --threads option: the threads variant is skipped"
    fi
fi
if wanted arrpcd-metrics; then
    # The first option whose name starts with --metrics; given an address when it takes one.
    mline=$(grep -- '^ *--metrics' <<<"$HELP" | head -1 || true)
    if [ -z "$mline" ]; then
        note "arrpcd has no --metrics option: the metrics variant is skipped"
    else
        mopt=$(awk '{print $1}' <<<"$mline")
        marg=$(awk '{print $2}' <<<"$mline")
        if [[ "$marg" =~ ^[A-Z:_]+$ ]]; then # port 0: the kernel picks a free one, no race
            start_arrpcd arrpcd-metrics "$ARRPC_EXTRA" "${ONE_WORKER[@]}" "$mopt" "127.0.0.1:0"
        else
            start_arrpcd arrpcd-metrics "$ARRPC_EXTRA" "${ONE_WORKER[@]}" "$mopt"
        fi
    fi
fi
if wanted arrpcd-accesslog; then
    if has_option --access-log; then # no @base twin: a base build may not have the option
        start_one arrpcd-accesslog "$ARRPCD" "$PLUGIN" "$ARRPC_EXTRA" "${ONE_WORKER[@]}" \
            --access-log "$OUT/access.log" --access-log-format "${BENCH_ACCESS_LOG_FORMAT:-json}"
        EMPTY_AFTER[arrpcd-accesslog]=$OUT/access.log
    else
        note "arrpcd has no --access-log option: the access-log variant is skipped"
    fi
fi
[ ${#SERVERS[@]} -gt 0 ] || die "no server to benchmark"

# ---- the machine ------------------------------------------------------------------------------

{
    echo "date:     $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "nproc:    $NPROC"
    echo "cpu:      $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)"
    echo "kernel:   $(uname -srm)"
    echo "redis:    $(redis-server --version | head -1)"
    echo "arrpcd:   $("$ARRPCD" --version 2>&1 | tr '\n' ' ')($ARRPCD)"
    if [ -n "$BASE_ARRPCD" ]; then echo "base:     $("$BASE_ARRPCD" --version 2>&1 | head -1) ($BASE_ARRPCD)"; fi
    echo "load:     $(cut -d' ' -f1-3 /proc/loadavg) (1/5/15 min, before the runs)"
    echo "settings: ${DURATION}s measured after ${WARMUP}s warm-up, $ROUNDS round(s), arrpc-bench --threads $THREADS, payload $SIZE bytes"
    echo "servers:  ${SERVERS[*]}"
} >"$OUT/machine.txt"
cat "$OUT/machine.txt"
echo

# ---- the runs: every server once per cell, then the next round --------------------------------

total=$((ROUNDS * $(wc -w <<<"$CELLS") * ${#SERVERS[@]}))
n=0
for round in $(seq "$ROUNDS"); do
    for cell in $CELLS; do
        c=${cell%%:*} p=${cell##*:}
        for name in "${SERVERS[@]}"; do
            n=$((n + 1))
            out=$OUT/raw/${name}_c${c}_P${p}_r${round}.json
            printf '[%d/%d] round %d  %-15s c=%-3s P=%-3s ' "$n" "$total" "$round" "$name" "$c" "$p" >&2
            # shellcheck disable=SC2086 # EXTRA holds several options on purpose
            if ! "$BENCH" --json --quiet -c "$c" -P "$p" --threads "$THREADS" -w "$WARMUP" \
                -d "$DURATION" --server-pid "${PID[$name]}" ${EXTRA[$name]} \
                "127.0.0.1:${PORT[$name]}" >"$out" 2>"$out.err"; then
                echo "(exit $?: no reply counted)" >&2
            fi
            # a log of millions of lines per run would fill the disk; its writers use O_APPEND
            if [ -n "${EMPTY_AFTER[$name]:-}" ]; then : >"${EMPTY_AFTER[$name]}"; fi
            "$PY" -c 'import json,sys; r=json.load(open(sys.argv[1])); s=r.get("server_cpu") or {}; print("%10.0f qps  p99 %8.1f us  server %6.2f us/reply  errors %d" % (r["qps"], r["latency_us"]["p99"], s.get("us_per_reply", 0), r["errors"]))' "$out" >&2 ||
                echo "(no summary)" >&2
        done
    done
done

# ---- the table ------------------------------------------------------------------------------------

"$PY" - "$OUT" "$CELLS" "${SERVERS[@]}" <<'PYEOF' | tee "$OUT/summary.txt"
import glob, json, os, statistics, sys

out, cells, servers = sys.argv[1], sys.argv[2].split(), sys.argv[3:]

def runs(name, c, p):
    res = []
    for f in sorted(glob.glob(os.path.join(out, "raw", "%s_c%s_P%s_r*.json" % (name, c, p)))):
        try:
            with open(f) as fh:
                res.append(json.load(fh))
        except ValueError:
            pass
    return res

def med(values):
    return statistics.median(values) if values else None

table = {}
for cell in cells:
    c, p = cell.split(":")
    for name in servers:
        rs = runs(name, c, p)
        table[cell, name] = {
            "qps": med([r["qps"] for r in rs]),
            "p99": med([r["latency_us"]["p99"] for r in rs]),
            "errors": sum(r["errors"] for r in rs),
            "cpu": med([r["cpu"]["percent_of_core"] for r in rs]),
            "srv": med([r["server_cpu"]["us_per_reply"] for r in rs if r.get("server_cpu")]),
            "n": len(rs),
        }

def fmt(v, spec):
    return "-" if v is None else format(v, spec)

def ratio(a, b):
    return None if a is None or not b else a / b

print("medians over rounds: qps, p99 latency (us); [errors summed over rounds]")
head = "%-8s" % "cell" + "".join("%26s" % n for n in servers)
print(head)
for cell in cells:
    c, p = cell.split(":")
    row = "%-8s" % ("c%s P%s" % (c, p))
    for name in servers:
        t = table[cell, name]
        s = "%s / %s" % (fmt(t["qps"], ".0f"), fmt(t["p99"], ".0f"))
        if t["errors"]:
            s += " [%d]" % t["errors"]
        row += "%26s" % s
    print(row)

print()
print("server CPU per reply, microseconds (median; the server process and its workers)")
print(head)
for cell in cells:
    c, p = cell.split(":")
    print("%-8s" % ("c%s P%s" % (c, p)) + "".join("%26s" % fmt(table[cell, n]["srv"], ".3f")
                                                  for n in servers))

def ratios(title, bases, others):
    """Each of others against each present base: a figure per base, "/"-separated in bases' order."""
    bases = [b for b in bases if b in servers]
    if not bases or not others:
        return
    width = 22 + 18 * len(bases)
    print()
    print(title)
    print("%-8s" % "cell" + "".join("%*s" % (width, "%s/%s" % (o, "|".join(bases))) for o in others))
    for cell in cells:
        c, p = cell.split(":")
        row = "%-8s" % ("c%s P%s" % (c, p))
        for o in others:
            figs = ["/".join(fmt(ratio(table[cell, o][k], table[cell, b][k]), ".2f") for b in bases)
                    for k in ("qps", "p99", "srv")]
            row += "%*s" % (width, "qps %s  p99 %s  cpu %s" % tuple(figs))
        print(row)

arrpcds = [s for s in servers if s.startswith("arrpcd") and not s.endswith("@base")]
ratios("arrpcd configurations against redis and against echo-limit, the limit of arrpcd's design "
       "(qps > 1: arrpcd faster; p99 and cpu < 1: arrpcd lower)", ["redis", "echo-limit"], arrpcds)
ratios("variants against plain arrpcd (1 worker)", ["arrpcd"], [s for s in arrpcds if s != "arrpcd"])
twins = [s for s in arrpcds if s + "@base" in servers]
if twins:
    print()
    print("this build against the base build (BENCH_BASE_BIN_DIR), each configuration with its twin")
    print("%-8s" % "cell" + "".join("%34s" % ("%s/base" % s) for s in twins))
    for cell in cells:
        c, p = cell.split(":")
        row = "%-8s" % ("c%s P%s" % (c, p))
        for s in twins:
            t, b = table[cell, s], table[cell, s + "@base"]
            row += "%34s" % ("qps %s  p99 %s  cpu %s" % (
                fmt(ratio(t["qps"], b["qps"]), ".2f"), fmt(ratio(t["p99"], b["p99"]), ".2f"),
                fmt(ratio(t["srv"], b["srv"]), ".2f")))
        print(row)
print()
print("client CPU, % of one core (median): " + "  ".join(
    "%s %s" % (n, "/".join(fmt(table[cell, n]["cpu"], ".0f") for cell in cells)) for n in servers))
PYEOF
if [ -f "$OUT/notes.txt" ]; then
    echo
    cat "$OUT/notes.txt"
fi | tee -a "$OUT/summary.txt"
cat "$OUT/machine.txt" >>"$OUT/summary.txt"
echo
echo "raw results and logs: $OUT"
