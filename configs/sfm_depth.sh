#!/usr/bin/env bash
# The capture's SfM points as the compact backbone's depth, one command:
#   configs/sfm_depth.sh CAPTURES_DIR
# CAPTURES_DIR holds the captures named in configs/real_split.txt (team-internal; never committed). On the
# captures with SfM points, at 240 px, refined as `ns-train foresplat` does (2,000-step schedule):
# 1. the choice, on the training captures: splatfacto's start, the shipped checkpoint's prediction at the
#    SfM points' depth, and that prediction with splatfacto's start (union), to 1,000 steps;
# 2. the judgement, on the held-out captures: splatfacto's start, the default (`ns-train foresplat` with no
#    flags) and the same start from the zero-step rule's checkpoint, to 2,000 steps, refinement seeds 0-2;
#    and 20k random Gaussians (seed 0), for scale.
# Two lanes (one per core); resumable.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
CAPTURES=$(realpath "${1:?usage: configs/sfm_depth.sh CAPTURES_DIR}")
OUT=results/sfm-depth
mkdir -p "$OUT"
for split in train heldout; do
    split_captures "$split" | with_sfm_points > "$OUT/$split.txt"
done

in_lanes "$OUT/train.txt" "$OUT/train" --init splatfacto sfm-depth:shipped sfm-depth-union:shipped:union --max-steps 1000
for seed in 0 1 2; do
    in_lanes "$OUT/heldout.txt" "$OUT/heldout-seed$seed" --max-steps 2000 --seed "$seed" \
        --init splatfacto default "vanilla-union:foresplat_ns/checkpoints/compact-vanilla.pt:union"
done
in_lanes "$OUT/heldout.txt" "$OUT/random" --init random --max-steps 2000  # 20k random Gaussians, for scale
