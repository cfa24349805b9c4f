# shellcheck shell=bash
# stop_all.sh -- sourced by the bench scripts: stops every server they started, by PID.
# Expects the script's associative array PID (name -> the server's process) and STOP_TIMEOUT
# (seconds for a graceful stop before SIGKILL); installed as the EXIT trap.

stop_all() {
    for name in "${!PID[@]}"; do
        local pid=${PID[$name]}
        kill -TERM "$pid" 2>/dev/null || continue
        for _ in $(seq $((STOP_TIMEOUT * 10))); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
}
trap stop_all EXIT
trap 'exit 130' INT TERM
