#!/usr/bin/env bash
# ForeSplat against splatfacto's own start on real captures, one command:
#   configs/real_captures.sh CAPTURES_DIR [heldout|train]
# CAPTURES_DIR holds the captures named in configs/real_split.txt (team-internal; never committed).
# Every capture is read in its own format with its SfM points, shrunk to 240 px on the long side, and
# refined as `ns-train foresplat` does for 2,000 steps from each start; held-out-view PSNR/SSIM, Gaussian
# count and seconds (the start's construction included) at 0..2000 steps. Then splatfacto's start alone
# for PLATEAU_STEPS (default 7000) to find its plateau. Two lanes (one per core), merged; resumable.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
CAPTURES=$(realpath "${1:?usage: configs/real_captures.sh CAPTURES_DIR [heldout|train]}")
SPLIT=${2:-heldout}
OUT=results/real-$SPLIT
PLATEAU_STEPS=${PLATEAU_STEPS:-7000}
mkdir -p "$OUT"
grep "^$SPLIT " configs/real_split.txt | awk -v root="$CAPTURES" '{print root "/" $2}' > "$OUT/scenes.txt"
awk 'NR % 2 == 1' "$OUT/scenes.txt" > "$OUT/lane-0.txt"
awk 'NR % 2 == 0' "$OUT/scenes.txt" > "$OUT/lane-1.txt"
INITS=(splatfacto default "foresplat:shipped" "vanilla:foresplat_ns/checkpoints/compact-vanilla.pt" "union:shipped:union")
COMMON=(--max-image-side 240 --max-eval-views 8)
bench() { $BIN/foresplat-bench refine "${COMMON[@]}" "$@"; }
bench --scenes "$OUT/lane-0.txt" --init "${INITS[@]}" --max-steps 2000 --output "$OUT/lane-0" > "$OUT/lane-0.log" 2>&1 &
bench --scenes "$OUT/lane-1.txt" --init "${INITS[@]}" --max-steps 2000 --output "$OUT/lane-1" > "$OUT/lane-1.log" 2>&1 &
wait
bench --scenes "$OUT/scenes.txt" --init "${INITS[@]}" --max-steps 2000 --output "$OUT/steps" --merge-from "$OUT/lane-0" "$OUT/lane-1"
# splatfacto's plateau: its own schedule stretched to PLATEAU_STEPS (densification stops at 3/4 of it).
bench --scenes "$OUT/scenes.txt" --init splatfacto --max-steps "$PLATEAU_STEPS" --refine.max-steps "$PLATEAU_STEPS" \
    --refine.stop-split-at $((PLATEAU_STEPS * 3 / 4)) --refine.stop-screen-size-at "$PLATEAU_STEPS" --output "$OUT/plateau"
bench --scenes "$OUT/scenes.txt" --init "${INITS[@]}" --max-steps 2000 --output "$OUT/steps" --plateau-from "$OUT/plateau"
