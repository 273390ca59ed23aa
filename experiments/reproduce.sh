#!/bin/bash
# The paper's comparisons on the world prior (method.md section 6; docs/reproduction.md):
# runs the sweeps of experiments/paper/ with `steinlab sweep`, then writes the tables and
# figures into docs/reproduction/ with analysis/paper_report.py.
#
# Usage: experiments/reproduce.sh [STAGE ...]
#                                   (default: probed driven ablations imperfect report)
#   probed     objects-probed (4 object prompts x 3 seeds) and rooms-probed (2 rooms x 3
#              seeds): SDS-driven NeRFs with SDS and SSD variants probed at the same theta
#   driven     objects-driven: runs driven by SDS and by SSD variants (48 cells)
#   ablations  mu shape and fit, guidance scale, t range, probe size K
#   imperfect  objects-imperfect and rooms-imperfect: the probed studies on an over-smoothed
#              world prior, with their tables (experiments/paper/imperfect_table.py)
#   report     tables (Markdown) and figures (PNG) from whatever sweeps exist
#   NAME       one sweep, experiments/paper/NAME.yaml (e.g. ablation-mu)
# Environment: STEINLAB (default build/steinlab), JOBS (default 2), SWEEPS (default
# sweeps/paper), REPORT (default docs/reproduction). A stage re-run skips finished cells
# and resumes interrupted ones (docs/sweeps.md). Each sweep's output is in
# $SWEEPS/NAME.out.
set -euo pipefail
cd "$(dirname "$0")/.."
EXE=${STEINLAB:-build/steinlab}
JOBS=${JOBS:-2}
SWEEPS=${SWEEPS:-sweeps/paper}
REPORT=${REPORT:-docs/reproduction}
mkdir -p "$SWEEPS"

sweep() {
    local name=$1
    shift
    local t0=$SECONDS
    echo "reproduce: $name ($(date -u +%H:%M:%S) UTC)"
    if ! "$EXE" sweep "experiments/paper/$name.yaml" "$@" --jobs "$JOBS" --out "$SWEEPS/$name" \
        >"$SWEEPS/$name.out" 2>&1; then
        tail -5 "$SWEEPS/$name.out"
        echo "reproduce: $name: some cells failed (see $SWEEPS/$name.out); going on"
    fi
    echo "reproduce: $name took $((SECONDS - t0)) s"
}

stages=("$@")
((${#stages[@]})) || stages=(probed driven ablations imperfect report)
for stage in "${stages[@]}"; do
    case $stage in
        probed)
            sweep objects-probed
            sweep rooms-probed ;;
        driven)
            sweep objects-driven ;;
        ablations)
            sweep ablation-mu
            sweep ablation-probe-k
            sweep ablation-guidance
            sweep ablation-trange ;;
        imperfect)
            for name in objects-imperfect rooms-imperfect; do
                sweep "$name"
                experiments/paper/imperfect_table.py "$SWEEPS/$name" | tee "$SWEEPS/$name.md"
            done ;;
        report)
            /usr/bin/python3 analysis/paper_report.py --sweeps "$SWEEPS" --out "$REPORT" ;;
        *)
            if [ -f "experiments/paper/$stage.yaml" ]; then
                sweep "$stage"
                continue
            fi
            echo "reproduce: unknown stage '$stage' (probed, driven, ablations, imperfect, report," \
                 "or a sweep of experiments/paper/)" >&2
            exit 2 ;;
    esac
done
