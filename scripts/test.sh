#!/usr/bin/env bash
# Set up everything the tests need and run the whole suite:
# .venv with test tools, the real services (scripts/services.sh: PostgreSQL), lint, types,
# then pytest (arguments are passed on). Services this script started are stopped at exit.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/bootstrap.sh test dev

if scripts/services.sh status | grep -q stopped; then
    trap 'scripts/services.sh down' EXIT
fi
scripts/services.sh up
eval "$(scripts/services.sh env)"
export CCAT_HPC_REQUIRE_SERVICES=postgres

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
