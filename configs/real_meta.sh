#!/usr/bin/env bash
# Backbones trained on real photos as well as generated scenes, one command:
#   configs/real_meta.sh CAPTURES_DIR
# CAPTURES_DIR holds the captures of configs/real_split.txt (team-internal; never committed); only the
# "train" ones are trained on, each listed REAL_REPEATS times so that about 40% of outer steps draw a
# real capture, beside 64 generated 128² scenes (orbits, hemispheres and forward-facing grids, like the
# captures). Images at most 160 px on the long side. Both rules, two seeds each, the same 1,000 outer
# steps, all from the generated-only zero-step checkpoint; two lanes, one per core; resumable. Then every
# checkpoint's prediction on the held-out captures, 500 steps, against the generated-only pair's.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
CAPTURES=$(realpath "${1:?usage: configs/real_meta.sh CAPTURES_DIR}")
OUT=results/real-meta
mkdir -p "$OUT"
real_and_generated_scenes > "$OUT/scenes.txt"
export SCENES=$OUT/scenes.txt INIT=foresplat_ns/checkpoints/compact-vanilla-generated.pt
train() { configs/meta_train.sh "real-$1-s$2" "$STEPS" "$2" --pipeline.datamanager.max-image-side 160 "${@:3}"; }
for seed in 0 1; do
    { train metagrad "$seed"; train vanilla "$seed" --pipeline.rule zero-step; } > "$OUT/lane-$seed.log" 2>&1 &
done
wait
split_captures heldout > "$OUT/heldout.txt"
INITS=("generated-foresplat:foresplat_ns/checkpoints/compact-foresplat-generated.pt"
    "generated-vanilla:foresplat_ns/checkpoints/compact-vanilla-generated.pt")
for run in real-metagrad-s0 real-metagrad-s1 real-vanilla-s0 real-vanilla-s1; do INITS+=("$run:$RUNS/$run/backbone.pt"); done
# Each checkpoint's prediction alone (LABEL:CHECKPOINT starts from it), against the generated-only pair's.
in_lanes "$OUT/heldout.txt" "$OUT/heldout" --init "${INITS[@]}" --reference generated-foresplat --max-steps "${EVAL_STEPS:-500}"
