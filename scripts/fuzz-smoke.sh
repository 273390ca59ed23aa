#!/bin/bash
# The fuzzing part of the slow tier: builds the libFuzzer targets of tests/fuzz with clang
# in ./build-fuzz and runs each for a bounded time on a copy of its seed corpus (plus its
# regression inputs). Fails on any crash, sanitizer report, leak or timeout, naming the
# input that reproduces it. See docs/reliability.md, "Fuzzing".
#
# Usage: scripts/fuzz-smoke.sh [TARGET...]     (default: every target; e.g. `spec png`)
# Environment: FUZZ_SECONDS (per target, default 60), FUZZ_RSS_MB (default 2048),
#              FUZZ_MALLOC_MB (largest single allocation, default 512: no valid input of a
#              few KB needs more, and an input that makes the parser ask for gigabytes is
#              a finding even when the machine could give them), FUZZ_TIMEOUT (seconds per
#              input, default 10).
# Reproduce a failure: build-fuzz/tests/fuzz/fuzz_TARGET PATH-OF-THE-INPUT
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${FUZZ_SECONDS:-60}
rss_mb=${FUZZ_RSS_MB:-2048}
malloc_mb=${FUZZ_MALLOC_MB:-512}
timeout_s=${FUZZ_TIMEOUT:-10}
all_targets=(spec override png safetensors ply world_prompt world_bank)
targets=("$@")
((${#targets[@]})) || targets=("${all_targets[@]}")

# Debian's clang package (clang-14 on Debian 12) carries libFuzzer and the sanitizer
# runtimes; everything else the build needs is what scripts/bootstrap.sh installs.
if ! command -v clang >/dev/null; then
    echo "fuzz-smoke: installing clang"
    sudo_cmd=()
    [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
    "${sudo_cmd[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends \
        clang >/dev/null
fi

if [ ! -f build-fuzz/build.ninja ]; then
    CC=clang meson setup build-fuzz -Dfuzz=enabled -Dcuda=disabled -Dbuildtype=debugoptimized \
        >/dev/null
fi
meson compile -C build-fuzz "${targets[@]/#/fuzz_}" >/dev/null

# Leaks inside system libraries are not ours (the same list as the sanitizer tier).
export LSAN_OPTIONS="suppressions=$PWD/tests/lsan.supp:print_suppressions=0"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"

passed=0
failed=0
for t in "${targets[@]}"; do
    bin=build-fuzz/tests/fuzz/fuzz_$t
    work=build-fuzz/fuzz-smoke/$t
    rm -rf "$work"
    mkdir -p "$work/corpus" "$work/artifacts"
    # The fuzzer adds to its corpus directory: give it a copy, never the committed seeds.
    for d in tests/fuzz/corpus/$t tests/fuzz/regressions/$t; do
        [ -d "$d" ] && cp "$d"/* "$work/corpus/" 2>/dev/null || true
    done
    rc=0
    "$bin" -max_total_time="$seconds" -rss_limit_mb="$rss_mb" -malloc_limit_mb="$malloc_mb" \
        -timeout="$timeout_s" \
        -artifact_prefix="$work/artifacts/" -print_final_stats=1 "$work/corpus" \
        >"$work/log.txt" 2>&1 || rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/log.txt")
    speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$work/log.txt")
    cov=$(grep -aoE 'cov: [0-9]+ ft: [0-9]+' "$work/log.txt" | tail -n 1 || true)
    artifacts=$(find "$work/artifacts" -type f | sort)
    if [ "$rc" -eq 0 ] && [ -z "$artifacts" ]; then
        echo "fuzz_$t: ok (${execs:-?} runs, ${speed:-?} exec/s, ${cov:-no coverage line})"
        passed=$((passed + 1))
    else
        echo "fuzz_$t: FAILED (exit $rc); the fuzzer's report ends with:"
        grep -aE 'ERROR|SUMMARY|fuzz invariant|runtime error' "$work/log.txt" | head -n 5 | sed 's/^/    /'
        for a in $artifacts; do
            echo "    reproducer: $a   (run: $bin $a)"
        done
        echo "    full log: $work/log.txt"
        failed=$((failed + 1))
    fi
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
