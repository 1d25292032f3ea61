#!/usr/bin/env bash
# ForeSplat's refinement learning rates (splatfacto's times 3, decaying to splatfacto's over 200 steps), one command:
#   configs/learning_rates.sh CAPTURES_DIR
# CAPTURES_DIR holds the captures named in configs/real_split.txt (team-internal; never committed). 240 px,
# 8 held-out views, the 2,000-step schedule, the default start (`ns-train foresplat` with no flags).
# 1. the choice, on training captures (refinement seed 0):
#    a. 200 steps on four training captures with splatfacto's learning rates (`--refine.learning-rate-scale 1`)
#       times K = 1-4 for every field, held constant; and on the two with SfM points, one field at a time;
#    b. 2,000 steps on the two training captures with SfM points: constant times 3; times 3 decaying
#       over 500 and over 200 steps (the default); and splatfacto's start refined with the first of those,
#       a control for what the learning rates buy any start;
# 2. the judgement, on the held-out captures: with SfM points, the default and splatfacto's start
#    (refined with splatfacto's own learning rates), refinement seeds 0-2, for both decays, and the
#    zero-step checkpoint's same start (MetaGrad against the zero-step rule); without SfM
#    points, the default, seed 0 (splatfacto's start there: configs/real_captures.sh).
# Two lanes (one per core); resumable.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
CAPTURES=$(realpath "${1:?usage: configs/learning_rates.sh CAPTURES_DIR}")
OUT=results/learning-rates
mkdir -p "$OUT"
split_lists "$OUT"
grep -E "/(scodive_data|vork_statue_liberty|vork_mary_rose|caesar_custom)$" "$OUT/train-all.txt" > "$OUT/train-probe.txt"

# splatfacto's learning rates times the given factors (means, scales and quaternions, opacities, colours),
# constant but for the means' own decay (to their final rate times the same factor)
rates() {
    awk -v m="$1" -v s="$2" -v o="$3" -v f="$4" 'BEGIN {
        printf "--refine.learning-rate-scale 1 --refine.lr-means %g --refine.lr-means-final %g ", 1.6e-4 * m, 1.6e-6 * m
        printf "--refine.lr-scales %g --refine.lr-quats %g --refine.lr-opacities %g ", 0.005 * s, 0.001 * s, 0.05 * o
        printf "--refine.lr-features-dc %g --refine.lr-features-rest %g", 0.0025 * f, 0.0025 / 20 * f }'
}
for probe in "x1 1 1 1 1" "x2 2 2 2 2" "x3 3 3 3 3" "x4 4 4 4 4"; do
    read -r name factors <<< "$probe"
    # shellcheck disable=SC2046,SC2086  # the rates are separate flags
    in_lanes "$OUT/train-probe.txt" "$OUT/probe-$name" --init default --max-steps 200 $(rates $factors)
done
for probe in "means 4 1 1 1" "scales 1 3 1 1" "opacities 1 1 2 1" "colours 1 1 1 4"; do
    read -r name factors <<< "$probe"
    # shellcheck disable=SC2046,SC2086
    in_lanes "$OUT/train-sfm.txt" "$OUT/probe-$name" --init default --max-steps 200 $(rates $factors)
done

# shellcheck disable=SC2046
in_lanes "$OUT/train-sfm.txt" "$OUT/train-x3" --init default --max-steps 2000 $(rates 3 3 3 3)
in_lanes "$OUT/train-sfm.txt" "$OUT/train-x1" --init default --max-steps 2000 --refine.learning-rate-scale 1
in_lanes "$OUT/train-sfm.txt" "$OUT/train-decay500" --init default splatfacto --max-steps 2000 --refine.learning-rate-scale-steps 500
in_lanes "$OUT/train-sfm.txt" "$OUT/train-decay500-control" --init splatfacto --max-steps 2000 \
    --refine.learning-rate-scale-steps 500 --no-splatfacto-own-learning-rates
in_lanes "$OUT/train-sfm.txt" "$OUT/train-decay200" --init default --max-steps 2000

for seed in 0 1 2; do
    in_lanes "$OUT/heldout-sfm.txt" "$OUT/heldout-decay500-seed$seed" --init splatfacto default --max-steps 2000 \
        --seed "$seed" --refine.learning-rate-scale-steps 500
    in_lanes "$OUT/heldout-sfm.txt" "$OUT/heldout-decay200-seed$seed" --init splatfacto default \
        "vanilla-union:foresplat_ns/checkpoints/compact-vanilla.pt:union" --max-steps 2000 --seed "$seed"
done
in_lanes "$OUT/heldout-nosfm.txt" "$OUT/heldout-nosfm-decay200" --init default --max-steps 2000

