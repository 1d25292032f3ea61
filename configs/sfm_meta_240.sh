#!/usr/bin/env bash
# The -sfm pair fine-tuned at the size the real-capture benchmark refines at, one command:
#   configs/sfm_meta_240.sh CAPTURES_DIR FRESH_CAPTURES_DIR
# configs/sfm_meta.sh trained the -sfm pair on real images of at most 160 px, and the benchmark refines at
# 240 px. 300 more outer steps of each of its union pair (MetaGrad seed 0 from union-metagrad-s0, the
# zero-step rule from union-vanilla-s0; its scenes and flags), the real images at 240 px (recorded in the
# checkpoint as image_side 240), and as a control MetaGrad the same at 160 px (the extra steps alone). Then,
# refined as `ns-train foresplat` refines (240 px, 8 held-out views, 2,000 steps):
# 1. the choice, on the two training captures with SfM points, refinement seeds 0 and 1: the previous
#    default against both MetaGrad runs;
# 2. the judgement, on the seven held-out captures with SfM points (CAPTURES_DIR's two held-out ones and
#    FRESH_CAPTURES_DIR's five, scripts/pack_fresh_captures.sh's folder), seed 0: the previous default
#    against the 240 px MetaGrad run, and the zero-step rule's 240 px run (MetaGrad against the zero-step
#    rule), one capture per core;
# 3. at 480 px, on the two held-out captures of CAPTURES_DIR, seed 0: the previous default against the 240 px
#    MetaGrad run as `ns-train foresplat` would use it (context views at 1.5x its recorded 240 px: 360 px).
# Resumable. Not shipped (docs/RESULTS.md, "The -sfm checkpoint fine-tuned at 240 px").
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
CAPTURES=$(realpath "${1:?usage: configs/sfm_meta_240.sh CAPTURES_DIR FRESH_CAPTURES_DIR}")
FRESH=$(realpath "${2:?usage: configs/sfm_meta_240.sh CAPTURES_DIR FRESH_CAPTURES_DIR}")
OUT=results/sfm-meta-240
[ -f "$RUNS/union-vanilla-s0/backbone.pt" ] || configs/sfm_meta.sh "$CAPTURES"
mkdir -p "$OUT"
real_and_generated_scenes > "$OUT/scenes.txt"
export SCENES=$OUT/scenes.txt
train() {  # train RULE SIDE
    local flags=(--pipeline.datamanager.max-image-side "$2" --pipeline.datamanager.backbone-sees-sfm-points True
        --pipeline.datamanager.refine-with-sfm-start True)
    [ "$1" = vanilla ] && flags+=(--pipeline.rule zero-step)
    INIT=$RUNS/union-$1-s0/backbone.pt configs/meta_train.sh "union-$1-$2px" 300 0 "${flags[@]}"
}
train metagrad 240 > "$OUT/lane-240.log" 2>&1 &
train metagrad 160 > "$OUT/lane-160.log" 2>&1 &
wait
train vanilla 240 > "$OUT/lane-vanilla.log" 2>&1

tuned() { echo "$1:$RUNS/union-$2/backbone.pt:sfm-union-else-best"; }  # LABEL RUN
PREVIOUS=$(tuned previous metagrad-s0)
printf '%s\n' "$CAPTURES/scodive_data" "$CAPTURES/vork_statue_liberty" > "$OUT/train-sfm.txt"
for seed in 0 1; do
    in_lanes "$OUT/train-sfm.txt" "$OUT/choice-seed$seed" --init "$PREVIOUS" "$(tuned 160px metagrad-160px)" \
        "$(tuned 240px metagrad-240px)" --max-steps 2000 --seed "$seed"
done
printf '%s\n' "$FRESH/mamechun_room" "$CAPTURES/yhuoyuh_db" "$CAPTURES/mouse_colmap" "$FRESH/kwrous_cup" \
    "$FRESH/binbin_thermos" "$FRESH/pradyumnak_desk" "$FRESH/pavan_corridor" > "$OUT/heldout-sfm.txt"
in_queue "$OUT/heldout-sfm.txt" "$OUT/heldout" --init "$PREVIOUS" "$(tuned 240px metagrad-240px)" \
    "$(tuned zero-step-240px vanilla-240px)" --max-steps 2000 --seed 0
printf '%s\n' "$CAPTURES/mouse_colmap" "$CAPTURES/yhuoyuh_db" > "$OUT/heldout-480.txt"
MAX_IMAGE_SIDE=480 in_queue "$OUT/heldout-480.txt" "$OUT/heldout-480" --init "$PREVIOUS" "$(tuned 240px metagrad-240px)" \
    --max-steps 2000 --seed 0
