#!/usr/bin/env bash
# Set up everything the tests need and run the whole suite: Debian packages (xxh128sum,
# Open MPI), .venv with test tools and mpi4py, the real services (scripts/services.sh:
# PostgreSQL, Slurm, SeaweedFS for S3, sshd, victoria-metrics), then ruff, mypy and
# pytest (arguments go to pytest).
# Services this script started are stopped at exit.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages first: mpi4py (extra "mpi") links to the system's Open MPI.
scripts/system-packages.sh
scripts/bootstrap.sh test dev api mpi submitit s3 metrics

# (status is read whole: `grep -q` would close the pipe early and fail it under pipefail)
if [[ "$(scripts/services.sh status)" == *stopped* ]]; then
    trap 'scripts/services.sh down' EXIT
fi
scripts/services.sh up
eval "$(scripts/services.sh env)"
export CCAT_HPC_REQUIRE_SERVICES=postgres,tools,mpi,slurm,s3,ssh,metrics
# Open MPI refuses to start ranks as root unless told that it is meant (CI runs as root).
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

echo "== ruff" >&2
.venv/bin/ruff check ccat_hpc tests benchmarks
echo "== mypy" >&2
.venv/bin/mypy
echo "== pytest" >&2
pytest=(.venv/bin/pytest --durations=20)
for arg in "$@"; do  # a selection of the caller's own (-m, -n): one plain run
    case "$arg" in -m|-m*|-n|-n*|--numprocesses*) exec "${pytest[@]}" "$@" ;; esac
done
# Two pytest processes at once (the machine's two cores): the tests of the one Slurm
# node and the metrics server (marker "serial", set by tests/conftest.py) one after
# another in one, the rest in the other; then, alone, the tests that stop a shared
# service (marker "exclusive"). The first one's output follows the second's.
serial_log="$(mktemp)"
"${pytest[@]}" -m "serial and not exclusive" "$@" >"$serial_log" 2>&1 &
serial_pid=$!
others=0
"${pytest[@]}" -m "not serial and not exclusive" "$@" || others=$?
serial=0
wait "$serial_pid" || serial=$?
echo "== pytest: the serial tests (Slurm, metrics)" >&2
cat "$serial_log"
rm -f "$serial_log"
alone=0
if [ "$others" -ne 2 ] && [ "$serial" -ne 2 ]; then  # 2: interrupted or a usage error
    echo "== pytest: the tests that stop a shared service, alone" >&2
    "${pytest[@]}" -m exclusive "$@" || alone=$?
fi
if [ "$others" -eq 5 ] && [ "$serial" -eq 5 ] && [ "$alone" -eq 5 ]; then
    echo "test: pytest collected no tests; that is a failure" >&2
    exit 1
fi
for status in "$others" "$serial" "$alone"; do
    if [ "$status" -ne 0 ] && [ "$status" -ne 5 ]; then
        exit "$status"
    fi
done
exit 0
