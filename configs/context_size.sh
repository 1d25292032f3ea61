#!/usr/bin/env bash
# How large the compact backbone should see a capture's context views, one command:
#   configs/context_size.sh CAPTURES_DIR FRESH_CAPTURES_DIR
# The default's start and splatfacto's, unrefined (--max-steps 0), at 480 px with the backbone's context
# views shrunk to 480, 320, 240 and 160 px on the long side: held-out-view PSNR on 8 held-out views, every
# capture of configs/real_split.txt (CAPTURES_DIR: the train and heldout splits; FRESH_CAPTURES_DIR:
# scripts/pack_fresh_captures.sh's folder). The training captures chose `CompactBackbone.preferred_context_side`;
# the rest are judged only. Two lanes (one per core); resumable. Into results/context-size.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
CAPTURES=$(realpath "${1:?usage: configs/context_size.sh CAPTURES_DIR FRESH_CAPTURES_DIR}")
FRESH=$(realpath "${2:?usage: configs/context_size.sh CAPTURES_DIR FRESH_CAPTURES_DIR}")
export MAX_IMAGE_SIDE=480
OUT=results/context-size
mkdir -p "$OUT"
{
    split_captures train
    split_captures heldout
    CAPTURES=$FRESH split_captures fresh
    CAPTURES=$FRESH split_captures fresh2
} > "$OUT/captures.txt"
for side in 480 320 240 160; do
    in_lanes "$OUT/captures.txt" "$OUT/context-$side" --init splatfacto default --max-steps 0 --start.context-max-side "$side"
done
