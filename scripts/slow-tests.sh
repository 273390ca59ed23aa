#!/bin/bash
# The slow tier: the whole fast suite again, built with AddressSanitizer and
# UndefinedBehaviorSanitizer (build-asan/), then a bounded libFuzzer run of every parser
# (scripts/fuzz-smoke.sh), valgrind on short runs, a real single-node Slurm round trip and
# the analysis notebook executed on a fresh sweep, and the turntable video encoded by ffmpeg
# (scripts/video-test.sh installs it).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -f build-asan/build.ninja ]; then
    meson setup build-asan -Dsanitizers=true -Dbuildtype=debugoptimized -Dcuda=disabled >/dev/null
fi
ninja -C build-asan >/dev/null
# Leaks inside system libraries (OpenMP's thread pool, HDF5's global state) are not ours.
export LSAN_OPTIONS="suppressions=$PWD/tests/lsan.supp:print_suppressions=0"
export ASAN_OPTIONS="abort_on_error=1:detect_leaks=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
meson test -C build-asan --suite fast --print-errorlogs --num-processes 2
scripts/fuzz-smoke.sh
scripts/valgrind-quickstart.sh
scripts/slurm-test.sh
scripts/notebook-test.sh
scripts/video-test.sh
