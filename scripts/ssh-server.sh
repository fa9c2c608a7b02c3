#!/usr/bin/env bash
# An ssh server on 127.0.0.1 for the tests of rsync over ssh (called by scripts/services.sh):
# Debian's openssh-server with its own host key, a client key allowed to log in as the
# current user, and everything below $CCAT_HPC_SERVICES_DIR/ssh (nothing in /etc changed).
#
#   scripts/ssh-server.sh up|down|env|status
#
# Port: $CCAT_HPC_SSH_PORT (default 58322). `env` prints CCAT_RSYNC_SSH, the ssh command
# the rsync transfer method uses to reach it.
set -euo pipefail

SERVICES_DIR="${CCAT_HPC_SERVICES_DIR:-${TMPDIR:-/tmp}/ccat-hpc-services}"
DIR="$SERVICES_DIR/ssh"
PORT="${CCAT_HPC_SSH_PORT:-58322}"

log() { echo "services: $*" >&2; }
# shellcheck source=scripts/daemon-lib.sh
. "$(dirname "$0")/daemon-lib.sh"

ensure_installed() {
    [ -x /usr/sbin/sshd ] && command -v ssh >/dev/null && return 0
    if [ "$(id -u)" -ne 0 ]; then
        log "the ssh server needs Debian's openssh-server (install it as root)"
        exit 1
    fi
    log "installing openssh-server from Debian packages"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq --no-install-recommends openssh-server openssh-client >/dev/null 2>&1 || {
        apt-get update -qq && apt-get install -y -qq --no-install-recommends openssh-server openssh-client >/dev/null
    }
}

running() {
    local pid
    [ -f "$DIR/sshd.pid" ] || return 1
    pid="$(tr -dc 0-9 <"$DIR/sshd.pid")"
    [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = sshd ]
}

answers() { bash -c "exec 3<>/dev/tcp/127.0.0.1/$PORT" 2>/dev/null; }

write_config() {
    mkdir -p "$DIR"
    chmod 700 "$DIR"
    [ -f "$DIR/host_key" ] || ssh-keygen -q -t ed25519 -N "" -f "$DIR/host_key"
    [ -f "$DIR/client_key" ] || ssh-keygen -q -t ed25519 -N "" -f "$DIR/client_key"
    cp "$DIR/client_key.pub" "$DIR/authorized_keys"
    cat >"$DIR/sshd_config" <<EOF
Port $PORT
ListenAddress 127.0.0.1
HostKey $DIR/host_key
PidFile $DIR/sshd.pid
AuthorizedKeysFile $DIR/authorized_keys
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
StrictModes no
UsePAM no
AllowUsers $(id -un)
EOF
}

server_up() {
    ensure_installed
    if running && answers; then
        log "ssh server already running on 127.0.0.1:$PORT"
        return 0
    fi
    write_config
    mkdir -p /run/sshd 2>/dev/null || true   # its privilege separation folder
    /usr/sbin/sshd -f "$DIR/sshd_config" -E "$DIR/sshd.log"
    wait_until_up "ssh server" 30 "$DIR/sshd.log"
    log "ssh server up on 127.0.0.1:$PORT"
}

server_down() {
    running || return 0
    kill "$(cat "$DIR/sshd.pid")" 2>/dev/null || true
    rm -f "$DIR/sshd.pid"
    log "ssh server stopped"
}

print_env() {
    local options="-p $PORT -i $DIR/client_key -o BatchMode=yes -o StrictHostKeyChecking=no"
    echo "export CCAT_RSYNC_SSH='ssh $options -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR'"
    echo "export CCAT_HPC_TEST_SSH_HOST=127.0.0.1"
}

case "${1:-}" in
    up) server_up ;;
    down) server_down ;;
    env) print_env ;;
    status)
        if running && answers; then
            echo "ssh: running on 127.0.0.1:$PORT"
        else
            echo "ssh: stopped"
        fi
        ;;
    *) echo "usage: $0 up|down|env|status" >&2; exit 2 ;;
esac
