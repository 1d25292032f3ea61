#!/usr/bin/env bash
# ForeSplat against splatfacto's own start on real captures, one command:
#   configs/real_captures.sh CAPTURES_DIR [heldout|train]
# CAPTURES_DIR holds the captures named in configs/real_split.txt (team-internal; never committed).
# Every capture is read in its own format with its SfM points, shrunk to 240 px on the long side, and
# refined as `ns-train foresplat` does for 2,000 steps from each start: held-out-view PSNR/SSIM, Gaussian
# count and seconds (the start's construction included) at 0..2000 steps. Then splatfacto's start alone
# for PLATEAU_STEPS (default 5000; its schedule stretched to match) on the captures with SfM points, to
# find its plateau, and the summary of each start against it. Two lanes (one per core); resumable.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
CAPTURES=$(realpath "${1:?usage: configs/real_captures.sh CAPTURES_DIR [heldout|train]}")
SPLIT=${2:-heldout}
OUT=results/real-$SPLIT
mkdir -p "$OUT"
split_captures "$SPLIT" > "$OUT/scenes.txt"
INITS=(splatfacto default "foresplat:shipped" "vanilla:foresplat_ns/checkpoints/compact-vanilla.pt"
    "generated-foresplat:foresplat_ns/checkpoints/compact-foresplat-generated.pt")

in_lanes "$OUT/scenes.txt" "$OUT/steps" --init "${INITS[@]}" --max-steps 2000
with_sfm_points < "$OUT/scenes.txt" > "$OUT/with-sfm.txt"
in_lanes "$OUT/with-sfm.txt" "$OUT/plateau" --init splatfacto "${PLATEAU_SCHEDULE[@]}"
bench --scenes "$OUT/with-sfm.txt" --output "$OUT/steps-vs-plateau" --merge-from "$OUT/steps" --plateau-from "$OUT/plateau" \
    --init "${INITS[@]}" --max-steps 2000
