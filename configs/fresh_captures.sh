#!/usr/bin/env bash
# The shipped default against splatfacto's own start on captures nothing was chosen on, one command:
#   configs/fresh_captures.sh CAPTURES_DIR [SPLIT]
# CAPTURES_DIR holds the captures named in configs/real_split.txt (team-internal; never committed); this
# preset judges its split SPLIT (default "fresh"; "fresh2" and "fresh3" were added later still), added after every
# setting and checkpoint had been chosen, into results/SPLIT. As
# configs/real_captures.sh: 240 px, 8 held-out views, 2,000 steps of `ns-train foresplat`'s refinement
# from each start, refinement seeds $SEEDS (default 0 1). Inits: splatfacto's start, the default, and on
# captures with SfM points the zero-step rule's checkpoint for that start (MetaGrad against the
# zero-step rule). Then, on the captures with SfM points, splatfacto's start alone for PLATEAU_STEPS (default
# 5000, its schedule stretched to match) to find its plateau, and the default on the same long schedule.
# Each seed's runs are pooled (paired differences, the headline, each start against the plateau). Both
# cores (lanes, then a queue for the long runs); resumable. scripts/pack_fresh_captures.sh makes CAPTURES_DIR.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
CAPTURES=$(realpath "${1:?usage: configs/fresh_captures.sh CAPTURES_DIR}")
SPLIT=${2:-fresh}
OUT=results/$SPLIT
mkdir -p "$OUT"
split_captures "$SPLIT" > "$OUT/all.txt"
with_sfm_points < "$OUT/all.txt" > "$OUT/sfm.txt"
ZERO_STEP="zero-step:foresplat_ns/checkpoints/compact-vanilla-sfm.pt:sfm-union-else-best"

runs=() rules=()
for seed in ${SEEDS:-0 1}; do
    in_lanes "$OUT/all.txt" "$OUT/seed$seed" --init splatfacto default --max-steps 2000 --seed "$seed"
    in_lanes "$OUT/sfm.txt" "$OUT/zero-step-seed$seed" --init "$ZERO_STEP" --max-steps 2000 --seed "$seed"
    # both rules' runs side by side, on the captures with SfM points only (every pair is there: nothing runs)
    bench --scenes "$OUT/sfm.txt" --output "$OUT/rules-seed$seed" --merge-from "$OUT/seed$seed" "$OUT/zero-step-seed$seed" \
        --init default "$ZERO_STEP" --max-steps 2000 --seed "$seed"
    runs+=("$OUT/seed$seed") rules+=("$OUT/rules-seed$seed")
done
in_queue "$OUT/sfm.txt" "$OUT/plateau" --init splatfacto "${PLATEAU_SCHEDULE[@]}"
$BIN/foresplat-bench pool --runs "${runs[@]}" --init default splatfacto --reference splatfacto --output "$OUT/pooled" \
    --plateau-from "$OUT/plateau"
$BIN/foresplat-bench pool --runs "${rules[@]}" --init default zero-step --reference zero-step --output "$OUT/pooled-rules"
# both starts to convergence
in_queue "$OUT/sfm.txt" "$OUT/long-default" --init default "${PLATEAU_SCHEDULE[@]}"
bench --scenes "$OUT/sfm.txt" --output "$OUT/long" --merge-from "$OUT/plateau" "$OUT/long-default" --init splatfacto default "${PLATEAU_SCHEDULE[@]}"
