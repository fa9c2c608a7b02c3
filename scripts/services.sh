#!/usr/bin/env bash
# Start, stop and describe the real services the ccat-hpc test suite runs against.
#
#   scripts/services.sh up     start every service (idempotent: a running one is left alone)
#   scripts/services.sh down   stop what `up` started (by PID file, nothing else)
#   scripts/services.sh env    print `export` lines with the services' URLs
#   scripts/services.sh status one line per service
#   scripts/services.sh restart-postgres   stop and start PostgreSQL (fault tests)
#
# Services: PostgreSQL (ops-db) as a throwaway cluster, a single-node Slurm cluster
# with accounting (scripts/slurm-cluster.sh: slurm-wlm, munge, slurmdbd, MariaDB), an
# S3 server for the long-term archive (scripts/s3-server.sh: SeaweedFS), and an ssh
# server on 127.0.0.1 for rsync over ssh (scripts/ssh-server.sh: openssh-server), and a
# metrics server (scripts/victoria-metrics.sh: Debian's victoria-metrics).
# Everything lives below $CCAT_HPC_SERVICES_DIR (default /tmp/ccat-hpc-services).
# Ports: $CCAT_HPC_PG_PORT (default 55432), $CCAT_HPC_SLURM_PORT (default 56817-56819),
# $CCAT_HPC_S3_PORT (default 58300-58309), $CCAT_HPC_SSH_PORT (default 58322),
# $CCAT_HPC_METRICS_PORT (default 58428).
set -euo pipefail

SERVICES_DIR="${CCAT_HPC_SERVICES_DIR:-${TMPDIR:-/tmp}/ccat-hpc-services}"
PG_PORT="${CCAT_HPC_PG_PORT:-55432}"
PG_DIR="$SERVICES_DIR/postgres"
SLURM="$(dirname "$0")/slurm-cluster.sh"
S3="$(dirname "$0")/s3-server.sh"
SSH="$(dirname "$0")/ssh-server.sh"
METRICS="$(dirname "$0")/victoria-metrics.sh"
export CCAT_HPC_SERVICES_DIR="$SERVICES_DIR"

log() { echo "services: $*" >&2; }

pg_bindir() {
    local candidate
    for candidate in "${CCAT_HPC_PG_BINDIR:-}" /usr/lib/postgresql/*/bin; do
        if [ -n "$candidate" ] && [ -x "$candidate/initdb" ]; then
            echo "$candidate"
            return 0
        fi
    done
    return 1
}

ensure_postgres_installed() {
    if pg_bindir >/dev/null; then
        return 0
    fi
    if [ "$(id -u)" -ne 0 ]; then
        log "PostgreSQL server binaries not found; install Debian's 'postgresql' package (needs root)"
        exit 1
    fi
    log "installing PostgreSQL from Debian packages"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends postgresql >/dev/null
}

# Run a PostgreSQL tool as the cluster's owner: `postgres` when we are root
# (initdb refuses root), else ourselves.
as_pg_owner() {
    if [ "$(id -u)" -eq 0 ]; then
        su postgres -s /bin/sh -c "$*"
    else
        sh -c "$*"
    fi
}

pg_running() {
    local bindir
    bindir="$(pg_bindir)" || return 1
    [ -f "$PG_DIR/data/postmaster.pid" ] && \
        "$bindir/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" 2>/dev/null
}

# A postmaster.pid left by a server that is gone (the machine stopped) names a PID that
# may belong to another process by now, and PostgreSQL would refuse to start.
remove_stale_postmaster_pid() {
    local file="$PG_DIR/data/postmaster.pid" pid
    [ -f "$file" ] || return 0
    pid="$(head -n 1 "$file" | tr -dc 0-9)"
    if [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = postgres ]; then
        return 0
    fi
    log "removing $file left by a PostgreSQL that is no longer running"
    rm -f "$file"
}

postgres_up() {
    ensure_postgres_installed
    local bindir
    bindir="$(pg_bindir)"
    if pg_running; then
        log "PostgreSQL already running on 127.0.0.1:$PG_PORT"
        return 0
    fi
    mkdir -p "$PG_DIR"
    remove_stale_postmaster_pid
    if [ "$(id -u)" -eq 0 ]; then
        chown postgres: "$PG_DIR"
    fi
    if [ ! -f "$PG_DIR/data/PG_VERSION" ]; then
        as_pg_owner "'$bindir/initdb' -D '$PG_DIR/data' -U postgres -A trust -E UTF8 --locale=C.UTF-8 -N >'$PG_DIR/initdb.log' 2>&1"
    fi
    as_pg_owner "'$bindir/pg_ctl' -D '$PG_DIR/data' -l '$PG_DIR/server.log' -w -t 60 \
        -o \"-p $PG_PORT -k '$PG_DIR' -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200\" start >/dev/null"
    log "PostgreSQL started on 127.0.0.1:$PG_PORT (data in $PG_DIR/data)"
}

postgres_down() {
    local bindir
    bindir="$(pg_bindir)" || return 0
    if [ -f "$PG_DIR/data/postmaster.pid" ]; then
        as_pg_owner "'$bindir/pg_ctl' -D '$PG_DIR/data' -m fast -w stop >/dev/null" || true
        log "PostgreSQL stopped"
    fi
}

print_env() {
    echo "export CCAT_HPC_TEST_PG_URL=postgresql+psycopg://postgres@127.0.0.1:$PG_PORT/postgres"
    "$SLURM" env
    "$S3" env
    "$SSH" env
    "$METRICS" env
}

print_status() {
    if pg_running; then
        echo "postgres: running on 127.0.0.1:$PG_PORT"
    else
        echo "postgres: stopped"
    fi
    "$SLURM" status
    "$S3" status
    "$SSH" status
    "$METRICS" status
}

case "${1:-}" in
    up) mkdir -p "$SERVICES_DIR"; postgres_up; "$SLURM" up; "$S3" up; "$SSH" up; "$METRICS" up ;;
    down) "$METRICS" down; "$SSH" down; "$S3" down; "$SLURM" down; postgres_down ;;
    restart-postgres) postgres_down; postgres_up ;;  # fault tests: ops-db goes away mid-run
    env) print_env ;;
    status) print_status ;;
    *) echo "usage: $0 up|down|env|status|restart-postgres" >&2; exit 2 ;;
esac
