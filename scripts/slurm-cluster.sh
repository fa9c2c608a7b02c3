#!/usr/bin/env bash
# A real single-node Slurm cluster for the tests (called by scripts/services.sh).
#
#   scripts/slurm-cluster.sh up|down|env|status
#
# Debian's slurm-wlm + munge, with accounting (slurmdbd on a private MariaDB), so that
# sbatch, squeue, scontrol, sacct and srun --mpi=pmix behave as on a production cluster.
# Installs the Debian packages when missing (as root). Everything else lives below
# $CCAT_HPC_SERVICES_DIR/slurm; nothing in /etc is changed. Commands find the cluster
# through SLURM_CONF (see `env`).
set -euo pipefail

SERVICES_DIR="${CCAT_HPC_SERVICES_DIR:-${TMPDIR:-/tmp}/ccat-hpc-services}"
DIR="$SERVICES_DIR/slurm"
CONF="$DIR/etc/slurm.conf"
CLUSTER=ccat-test
PORT_BASE="${CCAT_HPC_SLURM_PORT:-56817}"   # slurmctld; slurmd +1, slurmdbd +2
MYSQL_SOCKET=/run/mysqld/mysqld.sock        # slurmdbd 22.05 reaches MariaDB on this socket

log() { echo "services: $*" >&2; }

ensure_installed() {
    local missing=() package
    # libpmix2: slurmd loads the PMIx library once, at start (MpiDefault=pmix); started
    # without it, every `srun --mpi=pmix` step fails until slurmd is restarted
    for package in slurm-wlm munge slurmdbd mariadb-server libpmix2; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" \
            || missing+=("$package")
    done
    [ "${#missing[@]}" -eq 0 ] && return 0
    if [ "$(id -u)" -ne 0 ]; then
        log "Slurm needs Debian's ${missing[*]} (install them as root)"
        exit 1
    fi
    log "installing ${missing[*]} from Debian packages"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null 2>&1 || {
        apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    }
}

write_configs() {
    mkdir -p "$DIR"/{etc,spool/ctld,spool/d,log,run,mysql}
    local cpus memory
    cpus="$(nproc)"
    memory="$(awk '/MemTotal/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)"
    cat >"$CONF" <<EOF
ClusterName=$CLUSTER
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort=$PORT_BASE
SlurmdPort=$((PORT_BASE + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$DIR/spool/ctld
SlurmdSpoolDir=$DIR/spool/d
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerParameters=batch_sched_delay=0
MinJobAge=300
KillWait=5
DependencyParameters=kill_invalid_depend
JobCompType=jobcomp/filetxt
JobCompLoc=$DIR/log/jobcomp.txt
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=$((PORT_BASE + 2))
MpiDefault=pmix
MailProg=/bin/true
ReturnToService=2
MaxArraySize=1001
# a job requeued after its node failed waits cred_expire + 1 s before it runs again
# (120 s by default): short here, so the node-failure tests do not wait minutes
AuthInfo=cred_expire=10
NodeName=localhost NodeAddr=127.0.0.1 NodeHostname=localhost CPUs=$cpus RealMemory=$memory State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
EOF
    cat >"$DIR/etc/slurmdbd.conf" <<EOF
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=$((PORT_BASE + 2))
SlurmUser=root
PidFile=$DIR/run/slurmdbd.pid
LogFile=$DIR/log/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=root
StorageLoc=ccat_test_slurm_acct
EOF
    chmod 600 "$DIR/etc/slurmdbd.conf"
}

# running PIDFILE NAME: the PID file names a live process called NAME. A PID file left
# by an earlier run (its processes gone, e.g. when the machine stopped) may name a PID
# that now belongs to another process: that is not ours, never trusted or signalled.
running() {
    local file="$1" name="$2" pid
    [ -f "$file" ] || return 1
    pid="$(tr -dc 0-9 <"$file")"
    [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$name" ]
}

munge_up() {
    if [ -S /run/munge/munge.socket.2 ] && munge -n </dev/null >/dev/null 2>&1; then
        return 0
    fi
    mkdir -p /run/munge
    chown munge: /run/munge
    runuser -u munge -- munged   # as root munged rejects its key
    touch "$DIR/run/munged.started-here"
}

mariadb_up() {
    local data="$DIR/mysql/data"
    if running "$data/mysqld.pid" mysqld; then
        return 0
    fi
    if [ ! -d "$data/mysql" ]; then
        mkdir -p "$data"
        chown -R mysql: "$DIR/mysql"
        mysql_install_db --user=mysql --datadir="$data" --auth-root-authentication-method=socket \
            >"$DIR/log/mysql-install.log" 2>&1
    fi
    mkdir -p /run/mysqld
    chown mysql: /run/mysqld
    # a socket left by a MariaDB that is gone would pass the wait below at once
    if [ -S "$MYSQL_SOCKET" ] && ! mysqladmin --socket="$MYSQL_SOCKET" ping >/dev/null 2>&1; then
        rm -f "$MYSQL_SOCKET"
    fi
    # pid file and error log inside the data folder, or it fails to start without a word
    (mysqld --user=mysql --datadir="$data" --socket="$MYSQL_SOCKET" --skip-networking \
        --pid-file="$data/mysqld.pid" --log-error="$data/error.log" </dev/null >/dev/null 2>&1 &)
    wait_for "MariaDB" 30 mysqladmin --socket="$MYSQL_SOCKET" ping
}

wait_for() {
    local what="$1" seconds="$2"
    shift 2
    local deadline=$((SECONDS + seconds))
    until "$@" >/dev/null 2>&1; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            log "$what did not come up within ${seconds}s (logs in $DIR/log)"
            show_logs
            exit 1
        fi
        sleep 0.2
    done
}

# The last lines of every log, so that a start-up that failed on a machine nobody can
# log in to (CI) says why.
show_logs() {
    local file
    for file in "$DIR"/log/*.log "$DIR/mysql/data/error.log"; do
        [ -f "$file" ] || continue
        echo "---- last lines of $file" >&2
        tail -n 15 "$file" >&2
    done
}

slurm_up() {
    export SLURM_CONF="$CONF"
    running "$DIR/run/slurmdbd.pid" slurmdbd || slurmdbd
    wait_for "slurmdbd" 30 bash -c "exec 3<>/dev/tcp/127.0.0.1/$((PORT_BASE + 2))"
    running "$DIR/run/slurmctld.pid" slurmctld || slurmctld
    wait_for "slurmctld" 30 scontrol ping
    sacctmgr -i add cluster "$CLUSTER" >/dev/null 2>&1 || true
    running "$DIR/run/slurmd.pid" slurmd || slurmd -N localhost
    wait_for "the node" 30 bash -c "sinfo -h -o %t | grep -qE '^(idle|mix|alloc)'"
}

cluster_up() {
    ensure_installed
    # every daemon, accounting included: a MariaDB that died alone is started again
    if running "$DIR/run/slurmctld.pid" slurmctld && running "$DIR/run/slurmd.pid" slurmd \
        && running "$DIR/run/slurmdbd.pid" slurmdbd \
        && running "$DIR/mysql/data/mysqld.pid" mysqld \
        && SLURM_CONF="$CONF" scontrol ping >/dev/null 2>&1; then
        log "Slurm already running (SLURM_CONF=$CONF)"
        return 0
    fi
    write_configs
    munge_up
    mariadb_up
    slurm_up
    log "Slurm cluster '$CLUSTER' up: node localhost, partition debug (SLURM_CONF=$CONF)"
}

stop_pid() {
    local file="$1" name="$2"
    running "$file" "$name" || return 0
    local pid
    pid="$(cat "$file")"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null || true
}

cluster_down() {
    [ -d "$DIR" ] || return 0
    local any=0
    for daemon in slurmd slurmctld slurmdbd; do
        running "$DIR/run/$daemon.pid" "$daemon" && any=1
        stop_pid "$DIR/run/$daemon.pid" "$daemon"
    done
    stop_pid "$DIR/mysql/data/mysqld.pid" mysqld
    if [ -f "$DIR/run/munged.started-here" ]; then
        stop_pid /run/munge/munged.pid munged
        rm -f "$DIR/run/munged.started-here"
    fi
    [ "$any" -eq 1 ] && log "Slurm stopped"
    return 0
}

case "${1:-}" in
    up) cluster_up ;;
    down) cluster_down ;;
    env) echo "export SLURM_CONF=$CONF" ;;
    status)
        if running "$DIR/run/slurmctld.pid" slurmctld && SLURM_CONF="$CONF" scontrol ping >/dev/null 2>&1; then
            echo "slurm: running (SLURM_CONF=$CONF)"
        else
            echo "slurm: stopped"
        fi
        ;;
    *) echo "usage: $0 up|down|env|status" >&2; exit 2 ;;
esac
