#!/usr/bin/env bash
# Set up everything the tests need and run the whole suite:
# .venv with test tools, xxh128sum, the real services (scripts/services.sh: PostgreSQL),
# ruff, mypy, then pytest (arguments are passed on). Services this script started are stopped at exit.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/bootstrap.sh test dev

# Command-line tools the tests compare against (GNU tar is always there).
if ! command -v xxh128sum >/dev/null; then
    if [ "$(id -u)" -eq 0 ]; then
        echo "test: installing Debian's xxhash (xxh128sum)" >&2
        export DEBIAN_FRONTEND=noninteractive
        apt-get install -y -qq xxhash >/dev/null 2>&1 || {
            apt-get update -qq && apt-get install -y -qq xxhash >/dev/null
        }
    else
        echo "test: xxh128sum missing; install Debian's xxhash" >&2
    fi
fi

if scripts/services.sh status | grep -q stopped; then
    trap 'scripts/services.sh down' EXIT
fi
scripts/services.sh up
eval "$(scripts/services.sh env)"
export CCAT_HPC_REQUIRE_SERVICES=postgres,tools

echo "== ruff" >&2
.venv/bin/ruff check ccat_hpc tests benchmarks migrations
echo "== mypy" >&2
.venv/bin/mypy
echo "== pytest" >&2
status=0
.venv/bin/pytest "$@" || status=$?
if [ "$status" -eq 5 ]; then
    echo "test: pytest collected no tests; that is a failure" >&2
    exit 1
fi
exit "$status"
