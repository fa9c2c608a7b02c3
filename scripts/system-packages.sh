#!/usr/bin/env bash
# Install the Debian packages the tests compare against or run on, when missing:
#   xxhash                        xxh128sum (checksums are compared with it)
#   openmpi-bin libopenmpi-dev    mpiexec and the MPI library mpi4py links to
#   rsync                         a transfer method
#   chromium                      the browser the web UI tests drive (Playwright)
# Idempotent and quiet when everything is there. Needs root (or the packages already).
set -euo pipefail

packages=(xxhash openmpi-bin libopenmpi-dev rsync chromium)
missing=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" \
        || missing+=("$package")
done
[ "${#missing[@]}" -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
    echo "system-packages: missing ${missing[*]}; install them as root (apt-get install)" >&2
    exit 0  # the tests that need them fail with the same hint when CCAT_HPC_REQUIRE_SERVICES says so
fi
echo "system-packages: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt_install() { apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; }
apt_install 2>/dev/null || { apt-get update -qq && apt_install; }
