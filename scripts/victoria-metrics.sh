#!/usr/bin/env bash
# A metrics server for the tests (called by scripts/services.sh): Debian's victoria-metrics,
# which takes InfluxDB v2 writes (`/api/v2/write`, what influxdb-client sends) and answers
# Prometheus queries (what the Grafana dashboard in dashboards/ asks).
#
#   scripts/victoria-metrics.sh up|down|env|status
#
# Data and log live below $CCAT_HPC_SERVICES_DIR/victoria-metrics (nothing in /etc changed;
# the package's own systemd unit is not used). Port: $CCAT_HPC_METRICS_PORT (default 58428),
# on 127.0.0.1. `env` prints CCAT_TEST_METRICS_URL, not CCAT_HPC_METRICS_URL: a test opts in
# to writing metrics, nothing else does by having the services' environment.
set -euo pipefail

SERVICES_DIR="${CCAT_HPC_SERVICES_DIR:-${TMPDIR:-/tmp}/ccat-hpc-services}"
DIR="$SERVICES_DIR/victoria-metrics"
PORT="${CCAT_HPC_METRICS_PORT:-58428}"
BINARY=/usr/bin/victoria-metrics
# /proc/PID/comm holds 15 characters: "victoria-metrics" shows as "victoria-metric"
COMM=victoria-metric

log() { echo "services: $*" >&2; }
# shellcheck source=scripts/daemon-lib.sh
. "$(dirname "$0")/daemon-lib.sh"

ensure_installed() {
    [ -x "$BINARY" ] && return 0
    if [ "$(id -u)" -ne 0 ]; then
        log "the metrics server needs Debian's victoria-metrics (install it as root)"
        exit 1
    fi
    log "installing victoria-metrics from Debian packages"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq --no-install-recommends victoria-metrics >/dev/null 2>&1 || {
        apt-get update -qq && apt-get install -y -qq --no-install-recommends victoria-metrics >/dev/null
    }
}

running() {
    local pid
    [ -f "$DIR/victoria-metrics.pid" ] || return 1
    pid="$(tr -dc 0-9 <"$DIR/victoria-metrics.pid")"
    [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$COMM" ]
}

# /health answers "OK" once the server takes writes and queries
answers() {
    bash -c "exec 3<>/dev/tcp/127.0.0.1/$PORT && printf 'GET /health HTTP/1.0\r\n\r\n' >&3 \
        && grep -q '^OK' <&3" 2>/dev/null
}

server_up() {
    ensure_installed
    if running && answers; then
        log "metrics server already running on 127.0.0.1:$PORT"
        return 0
    fi
    mkdir -p "$DIR/data"
    # latencyOffset=0s: a point is found by queries as soon as it is flushed (tests read back)
    "$BINARY" -httpListenAddr="127.0.0.1:$PORT" -storageDataPath="$DIR/data" \
        -retentionPeriod=1 -search.latencyOffset=0s -loggerOutput=stderr \
        </dev/null >"$DIR/victoria-metrics.log" 2>&1 &
    local pid=$!
    echo "$pid" >"$DIR/victoria-metrics.pid"
    wait_until_up "metrics server" 30 "$DIR/victoria-metrics.log" "$pid"
    log "metrics server (victoria-metrics) up on 127.0.0.1:$PORT"
}

server_down() {
    running || return 0
    stop_by_pid_file "$DIR/victoria-metrics.pid"
    log "metrics server stopped"
}

print_env() {
    echo "export CCAT_TEST_METRICS_URL=http://127.0.0.1:$PORT"
}

case "${1:-}" in
    up) server_up ;;
    down) server_down ;;
    env) print_env ;;
    status)
        if running && answers; then
            echo "metrics: running on 127.0.0.1:$PORT"
        else
            echo "metrics: stopped"
        fi
        ;;
    *) echo "usage: $0 up|down|env|status" >&2; exit 2 ;;
esac
