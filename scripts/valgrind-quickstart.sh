#!/bin/bash
# The valgrind part of the slow tier: short runs of the steinlab executable under memcheck,
# which sees what the sanitizer build cannot (the plain release build/, the plugins as the
# loader dlopens them, uninitialised reads). Fails on any invalid access, use of
# uninitialised memory or definite leak not covered by tests/valgrind.supp, which lists
# system-library noise only (OpenMP, HDF5, the dynamic loader), never project code.
# See docs/reliability.md, "Valgrind".
#
# Runs (each a short run with its log in a temporary directory):
#   quickstart-2d         experiments/quickstart-2d.yaml, 20 steps
#   world-view-2d-cold    experiments/world-view-2d.yaml, 10 steps, empty cache: renders the
#                         view banks and writes the HDF5 cache with its checksum sidecars
#   world-view-2d-warm    the same again: every bank verified and loaded from the cache
#   world-view-2d-corrupt one cache file cut short and another's sidecar emptied: the loader
#                         rejects both before libhdf5 sees them, renders and rewrites them
#
# Usage: scripts/valgrind-quickstart.sh
# Environment: VALGRIND_KEEP=1 keeps the temporary directory (logs, valgrind reports).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v valgrind >/dev/null; then
    echo "valgrind-quickstart: installing valgrind"
    sudo_cmd=()
    [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
    "${sudo_cmd[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends \
        valgrind >/dev/null
fi

if [ ! -f build/build.ninja ]; then
    meson setup build -Dcuda=disabled >/dev/null
fi
ninja -C build >/dev/null

tmp=$(mktemp -d "${TMPDIR:-/tmp}/valgrind-quickstart.XXXXXX")
if [ -z "${VALGRIND_KEEP:-}" ]; then
    trap 'rm -rf "$tmp"' EXIT
else
    echo "valgrind-quickstart: keeping $tmp"
fi
export STEINLAB_CACHE_DIR=$tmp/cache
# Two threads keep the parallel regions real; passive waiting keeps libgomp's idle threads
# from spinning under valgrind's serialised scheduler.
export OMP_NUM_THREADS=2 OMP_WAIT_POLICY=passive

passed=0
failed=0
# check NAME EXPECT ARGS...: runs build/steinlab ARGS under memcheck; EXPECT, when not
# empty, is an extended regular expression the run's output must match (the path taken).
check() {
    local name=$1 expect=$2
    shift 2
    local report=$tmp/$name.valgrind.txt out=$tmp/$name.out.txt rc=0 t0=$SECONDS
    valgrind --leak-check=full --errors-for-leak-kinds=definite --error-exitcode=1 \
        --suppressions=tests/valgrind.supp --num-callers=40 --log-file="$report" \
        build/steinlab "$@" >"$out" 2>&1 || rc=$?
    local errors
    errors=$(sed -n 's/.*ERROR SUMMARY: \([0-9]*\) errors.*/\1/p' "$report" | tail -n 1)
    if [ "$rc" -eq 0 ] && [ "${errors:-x}" = 0 ]; then
        if [ -n "$expect" ] && ! grep -qE "$expect" "$out"; then
            echo "$name: FAILED (clean under valgrind, but the output never says /$expect/)"
            echo "    output: $out   (rerun with VALGRIND_KEEP=1 to keep it)"
            failed=$((failed + 1))
            return
        fi
        echo "$name: ok ($((SECONDS - t0)) s)"
        passed=$((passed + 1))
    else
        echo "$name: FAILED (exit $rc, ${errors:-?} valgrind errors)"
        # The first report (what and where), then the summaries.
        grep -m 1 -A 25 -E '== (Invalid|Conditional|Use of|Syscall|Mismatched|Source and|Argument)|definitely lost in' \
            "$report" | sed 's/^/    /' || true
        grep -E 'definitely lost:|ERROR SUMMARY' "$report" | sed 's/^/    /' || true
        tail -n 3 "$out" | sed 's/^/    out: /'
        echo "    full report: $report   (rerun with VALGRIND_KEEP=1 to keep it)"
        failed=$((failed + 1))
    fi
}

check quickstart-2d '' run experiments/quickstart-2d.yaml steps=20 log.path="$tmp/q.h5"
check world-view-2d-cold 'cached to' run experiments/world-view-2d.yaml steps=10 log.path="$tmp/w1.h5"
check world-view-2d-warm 'loaded from' run experiments/world-view-2d.yaml steps=10 log.path="$tmp/w2.h5"
# Damage two cache entries (the first two bank files in name order).
mapfile -t banks < <(find "$STEINLAB_CACHE_DIR" -name 'world-bank-*.h5' | sort)
if [ "${#banks[@]}" -ge 2 ]; then
    truncate -s 1000 "${banks[0]}"
    : >"${banks[1]}.sum"
fi
check world-view-2d-corrupt 'rebuilt in' run experiments/world-view-2d.yaml steps=10 log.path="$tmp/w3.h5"
if [ "${#banks[@]}" -lt 2 ]; then
    echo "world-view-2d-corrupt: FAILED (the cold run left ${#banks[@]} cache files, expected at least 2)"
    failed=$((failed + 1))
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
