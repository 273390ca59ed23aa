#!/bin/bash
# Installs what is missing on a Debian 12 machine, then configures and builds steinlab in
# ./build. Safe to run again: it installs nothing that is present and rebuilds only what
# changed. Usage: scripts/bootstrap.sh [extra meson options...]
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
    gcc pkg-config meson ninja-build git
    libyaml-dev libhdf5-dev hdf5-tools libpng-dev check
    # The OpenMP build of OpenBLAS: inside steinlab's OpenMP regions it runs single-threaded
    # instead of spawning its own threads.
    libopenblas-openmp-dev
    # Reference checks and log reading in the tests (Debian's interpreter: /usr/bin/python3).
    python3 python3-numpy python3-h5py
    # The analysis package (analysis/steinlab_analysis) and its tests.
    python3-pandas python3-matplotlib
)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    echo "bootstrap: installing ${missing[*]}"
    sudo_cmd=()
    [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
    "${sudo_cmd[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null
fi

if [ ! -f build/build.ninja ]; then
    meson setup build "$@" >/dev/null
elif (($#)); then
    meson configure build "$@" >/dev/null
fi
ninja -C build >/dev/null
echo "bootstrap: built build/steinlab"
