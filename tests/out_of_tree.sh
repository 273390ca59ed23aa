#!/bin/bash
# Out-of-tree plugins, built with pkg-config against the installed headers and library,
# loaded by name through STEINLAB_PLUGIN_PATH, and used in short runs: an estimator
# (sds_normalized) and a Stein baseline in an SSD run (mean_intensity).
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

cc -std=c11 -Wall -Wextra -Wno-unused-parameter -Werror -shared -fPIC -fvisibility=hidden \
    $(pkg-config --cflags steinlab) "$src/tests/out_of_tree/mean_intensity.c" \
    -o "$tmp/plugins/mean_intensity.so" $(pkg-config --libs steinlab)

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

"$exe" plugins mean_intensity | grep -q "scale" || { echo "baseline parameters not shown"; exit 1; }
"$exe" run "$src/experiments/ssd-2d.yaml" \
    "estimator.baselines=[constant, {plugin: mean_intensity, scale: 2}]" steps=6 \
    log.eval_every=3 log.render_every=3 log.path="$tmp/ssd.h5" log.progress=none > "$tmp/out.txt"
tail -n 1 "$tmp/out.txt" | grep -qx "log: $tmp/ssd.h5" || { cat "$tmp/out.txt"; exit 1; }
/usr/bin/python3 - "$tmp/ssd.h5" <<'PY'
import sys, h5py, numpy as np
with h5py.File(sys.argv[1], "r") as f:
    mu = f["steps/ssd_mu_mean_intensity_mean"][:]
    assert mu.shape == (6,) and np.all(np.isfinite(mu)), mu
    assert mu[0] == 1.0 and not np.all(mu == 1.0), mu   # fitted on earlier steps
    assert f["plugins/ssd/mean_intensity"].attrs["kind"] == "baseline"
    assert f["plugins/ssd/mean_intensity"].attrs["scale"] == "2", dict(f["plugins/ssd/mean_intensity"].attrs)
PY
echo "2 passed, 0 failed"
