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
# Three pytest processes at once: the tests of the one Slurm node and the metrics
# server (marker "serial", set by tests/conftest.py), which mostly wait, one after
# another in one; the rest, module by module in turn, in two (CCAT_HPC_TEST_SHARD);
# then, alone, the tests that stop a shared service (marker "exclusive"). The
# background runs' output follows the foreground's.
serial_log="$(mktemp)"
shard_log="$(mktemp)"
"${pytest[@]}" -m "serial and not exclusive" "$@" >"$serial_log" 2>&1 &
serial_pid=$!
CCAT_HPC_TEST_SHARD=1/2 "${pytest[@]}" -m "not serial and not exclusive" "$@" \
    >"$shard_log" 2>&1 &
shard_pid=$!
others=0
CCAT_HPC_TEST_SHARD=0/2 "${pytest[@]}" -m "not serial and not exclusive" "$@" || others=$?
shard=0
wait "$shard_pid" || shard=$?
serial=0
wait "$serial_pid" || serial=$?
echo "== pytest: the other half of the tests" >&2
cat "$shard_log"
echo "== pytest: the serial tests (Slurm, metrics)" >&2
cat "$serial_log"
rm -f "$serial_log" "$shard_log"
alone=0
if [ "$others" -ne 2 ] && [ "$shard" -ne 2 ] && [ "$serial" -ne 2 ]; then  # 2: interrupted
    echo "== pytest: the tests that stop a shared service, alone" >&2
    "${pytest[@]}" -m exclusive "$@" || alone=$?
fi
if [ "$others" -eq 5 ] && [ "$shard" -eq 5 ] && [ "$serial" -eq 5 ] && [ "$alone" -eq 5 ]; then
    echo "test: pytest collected no tests; that is a failure" >&2
    exit 1
fi
for status in "$others" "$shard" "$serial" "$alone"; do
    if [ "$status" -ne 0 ] && [ "$status" -ne 5 ]; then
        exit "$status"
    fi
done
exit 0
