#!/usr/bin/env bash
# Create .venv and install ccat-hpc into it (editable), with the extras named as arguments.
#   scripts/bootstrap.sh            runtime only (what `ccat-hpc demo` needs)
#   scripts/bootstrap.sh test dev   plus test and lint tools
# Re-running is cheap: nothing is reinstalled unless pyproject.toml or the extras changed.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "bootstrap: ccat-hpc needs Python >= 3.11 (set PYTHON=/path/to/python3.11)" >&2
    exit 1
fi
if [ ! -x .venv/bin/python ]; then
    echo "bootstrap: creating .venv" >&2
    "$PYTHON" -m venv .venv
fi

extras="$(IFS=,; echo "$*")"
target="."
[ -n "$extras" ] && target=".[$extras]"
stamp=".venv/.ccat-hpc-installed"
want="$(sha256sum pyproject.toml | cut -d' ' -f1) $extras"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    exit 0
fi
echo "bootstrap: installing ccat-hpc${extras:+ with $extras}" >&2
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip 2>/dev/null || true
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e "$target"
echo "$want" > "$stamp"
