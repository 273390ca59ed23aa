#!/bin/sh
# The SSD-vs-score-error study (docs/neural-prior-study.md; issue 8 item 6), from the
# repository root, after `ninja -C build`:
#
#   experiments/neural-prior/run.sh train     # the less-trained UNets (30, 100, 300 steps)
#   experiments/neural-prior/run.sh eval      # their score-error tables (and the 1000-step one)
#   experiments/neural-prior/run.sh probes    # SDS-driven NeRF runs with the probes
#   PRIORS="world64 unet64" experiments/neural-prior/run.sh probes   # the same at 64x64
#   /usr/bin/python3 experiments/neural-prior/analyze.py    # table + figure
#
# The 1000-step model is experiments/prior-unet-32.yaml's output, runs/prior-unet-32.safetensors
# (train it first: `build/steinlab prior train experiments/prior-unet-32.yaml`, ~32 min).
# The 64x64 pair (world64: the exact prior at 64x64; unet64: experiments/prior-unet-64.yaml's
# output, runs/prior-unet-64.safetensors) renders and probes at 64x64, the rest unchanged.
# Outputs go to runs/np/ (git-ignored). Environment: STEINLAB (the executable, default
# build/steinlab; a separate build keeps a study safe from rebuilds), JOBS (parallel runs,
# default 1), SEEDS (default "0 1"), PRIORS (default "world unet1000 unet300 unet100 unet30").
set -eu
cd "$(dirname "$0")/../.."
export OMP_WAIT_POLICY=passive
out=runs/np
mkdir -p "$out"
exe=${STEINLAB:-build/steinlab}
jobs=${JOBS:-1}
seeds=${SEEDS:-"0 1"}
priors=${PRIORS:-"world unet1000 unet300 unet100 unet30"}
unet_spec=experiments/prior-unet-32.yaml

# prior label -> weights (relative to the repository root); "world" is the exact prior
weights_of() {
    case "$1" in
    unet1000) echo runs/prior-unet-32.safetensors ;;
    unet64) echo runs/prior-unet-64.safetensors ;;
    unet*) echo "$out/prior-unet-32-s${1#unet}.safetensors" ;;
    esac
}

cmd_train() {
    for s in 30 100 300; do
        nice "$exe" prior train "$unet_spec" train.steps=$s \
            out.weights="$out/prior-unet-32-s$s.safetensors" out.log="$out/prior-unet-32-s$s.h5" \
            --threads 1 > "$out/train-s$s.log" 2>&1 &
    done
    wait
}

cmd_eval() {
    for p in unet30 unet100 unet300 unet1000; do
        nice "$exe" prior eval "$unet_spec" --weights "$(weights_of $p)" --threads 1 \
            > "$out/eval-$p.txt" 2>&1
    done
    if [ -f "$(weights_of unet64)" ]; then
        nice "$exe" prior eval experiments/prior-unet-64.yaml --threads 1 \
            > "$out/eval-unet64.txt" 2>&1
    fi
}

# one cell: prior label, prompt slug, prompt, seed
cell() {
    prior=$1 slug=$2 prompt=$3 seed=$4
    log="$out/$prior-$slug-s$seed.h5"
    case "$prior" in
    world) set -- experiments/neural-prior/probes-world.yaml ;;
    world64) set -- experiments/neural-prior/probes-world.yaml prior.resolution=64 \
        cameras.resolution=64 ;;
    unet64) set -- experiments/neural-prior/probes-unet.yaml \
        prior.weights="../../$(weights_of "$prior")" cameras.resolution=64 ;;
    *) set -- experiments/neural-prior/probes-unet.yaml prior.weights="../../$(weights_of "$prior")" ;;
    esac
    /usr/bin/time -f "%e s wall" -o "$log.time" nice "$exe" run "$@" \
        "prior.prompt=$prompt" seed="$seed" log.path="$log" --threads 1 > "$log.txt" 2>&1
}

cmd_probes() {
    n=0
    for seed in $seeds; do
        for prior in $priors; do
            for pp in "redsphere-bluebox:a red sphere on a blue box" "greentorus:a green torus"; do
                cell "$prior" "${pp%%:*}" "${pp#*:}" "$seed" &
                n=$((n + 1))
                if [ $((n % jobs)) -eq 0 ]; then wait; fi
            done
        done
    done
    wait
}

case "${1:-}" in
train) cmd_train ;;
eval) cmd_eval ;;
probes) cmd_probes ;;
*) echo "usage: $0 train|eval|probes" >&2; exit 2 ;;
esac
