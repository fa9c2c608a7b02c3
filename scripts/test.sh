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
# Two workers (pytest-xdist): tests of the one Slurm node run one after another on one
# of them, those of the metrics server likewise; then, alone, the tests that stop a
# shared service (marker "exclusive"). --durations shows the slowest: the CI budget.
shared=0
.venv/bin/pytest -n 2 --dist loadgroup -m "not exclusive" --durations=30 "$@" || shared=$?
alone=0
.venv/bin/pytest -m exclusive --durations=10 "$@" || alone=$?
if [ "$shared" -eq 5 ] && [ "$alone" -eq 5 ]; then
    echo "test: pytest collected no tests; that is a failure" >&2
    exit 1
fi
for status in "$shared" "$alone"; do
    if [ "$status" -ne 0 ] && [ "$status" -ne 5 ]; then
        exit "$status"
    fi
done
exit 0
