#!/bin/bash
# An out-of-tree plugin, built with pkg-config against the installed headers and library,
# loaded by name through STEINLAB_PLUGIN_PATH, and used in a short run.
set -euo pipefail
build=${STEINLAB_BUILD_ROOT:?run through meson test}
src=${STEINLAB_SOURCE_ROOT:?run through meson test}
exe=${STEINLAB_EXE:?run through meson test}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

DESTDIR="$tmp/stage" meson install -C "$build" --no-rebuild --quiet >/dev/null
pc=$(find "$tmp/stage" -name steinlab.pc | head -n 1)
test -n "$pc" || { echo "steinlab.pc was not installed"; exit 1; }
export PKG_CONFIG_PATH=$(dirname "$pc") PKG_CONFIG_SYSROOT_DIR="$tmp/stage"

mkdir "$tmp/plugins"
cc -std=c11 -Wall -Wextra -Wno-unused-parameter -Werror -shared -fPIC -fvisibility=hidden \
    $(pkg-config --cflags steinlab) "$src/tests/out_of_tree/sds_normalized.c" \
    -o "$tmp/plugins/sds_normalized.so" $(pkg-config --libs steinlab)

export STEINLAB_PLUGIN_PATH="$tmp/plugins"
"$exe" plugins | grep -q "sds_normalized" || { echo "plugin not listed"; exit 1; }
"$exe" plugins sds_normalized | grep -q "target_rms" || { echo "parameters not shown"; exit 1; }
"$exe" run "$src/experiments/quickstart-2d.yaml" estimator.plugin=sds_normalized \
    estimator.target_rms=0.5 steps=5 log.path="$tmp/run.h5" log.progress=none > "$tmp/out.txt"
tail -n 1 "$tmp/out.txt" | grep -qx "log: $tmp/run.h5" || { cat "$tmp/out.txt"; exit 1; }
/usr/bin/python3 - "$tmp/run.h5" <<'PY'
import sys, h5py, numpy as np
with h5py.File(sys.argv[1], "r") as f:
    raw = f["steps/delta_rms_raw"][:]
    assert raw.shape == (5,), raw.shape
    assert np.all(np.isfinite(raw)) and np.all(raw > 0), raw
    assert f["plugins/sds_normalized"].attrs["target_rms"] == "0.5"
PY
echo "1 passed, 0 failed"
