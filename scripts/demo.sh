#!/usr/bin/env bash
# The main job end to end on the embedded default (SQLite + folders, no services):
# sets up .venv, then `ccat-hpc demo` (ops-db, sites, catalog, a synthetic observation,
# the manifest watcher, status). Extra arguments go to `ccat-hpc demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh api
exec .venv/bin/ccat-hpc demo "$@"
