# Shared by the service scripts (sourced, not run): start-up waits and shutdowns of a
# daemon they started. The sourcing script defines log() and answers() (whether the
# daemon takes requests yet).

# wait_until_up WHAT SECONDS LOG [PID]: until answers succeeds; on a timeout, or when the
# process PID (if given) is gone, say so with the last lines of LOG and exit 1.
wait_until_up() {
    local what="$1" seconds="$2" logfile="$3" pid="${4:-}"
    local deadline=$((SECONDS + seconds))
    until answers; do
        if { [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; } || [ "$SECONDS" -ge "$deadline" ]; then
            log "the $what did not come up (log: $logfile)"
            tail -n 20 "$logfile" >&2 || true
            exit 1
        fi
        sleep 0.1
    done
}

# stop_by_pid_file FILE: SIGTERM to the process FILE names, up to 10 s for it to end
# (these daemons flush their data first), then SIGKILL; the file is removed. The caller
# has checked that FILE names its daemon (see running() in each script).
stop_by_pid_file() {
    local file="$1" pid
    pid="$(cat "$file")"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$file"
}
