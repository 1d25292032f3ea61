#!/usr/bin/env bash
# The default against splatfacto's start at twice the benchmark's resolution (480 px on the long side, the
# size the team's capture copies are stored at), one command:
#   configs/higher_resolution.sh CAPTURES_DIR FRESH_CAPTURES_DIR
# CAPTURES_DIR: the held-out captures of configs/real_split.txt (yhuoyuh_db and mouse_colmap, with SfM
# points); FRESH_CAPTURES_DIR: scripts/pack_fresh_captures.sh's folder, all eight captures added after every
# choice (mamechun_room, by far the slowest at this size, last). 2,000 steps, refinement seed 0, one capture
# per core; resumable. Into results/res480.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
CAPTURES=$(realpath "${1:?usage: configs/higher_resolution.sh CAPTURES_DIR FRESH_CAPTURES_DIR}")
FRESH=$(realpath "${2:?usage: configs/higher_resolution.sh CAPTURES_DIR FRESH_CAPTURES_DIR}")
export MAX_IMAGE_SIDE=480
OUT=results/res480
mkdir -p "$OUT"
printf '%s\n' "$CAPTURES/yhuoyuh_db" "$CAPTURES/mouse_colmap" "$FRESH/pradyumnak_desk" "$FRESH/tensorf_figurine" \
    "$FRESH/pavan_corridor" "$FRESH/kwrous_cup" "$FRESH/binbin_thermos" "$FRESH/vork_blowtorch" "$FRESH/ingp_fox" \
    "$FRESH/mamechun_room" > "$OUT/captures.txt"
in_queue "$OUT/captures.txt" "$OUT/all" --init splatfacto default --max-steps 2000 --seed 0
